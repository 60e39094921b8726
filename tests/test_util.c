/*
 * Tests for the small helpers: the tevent_timeval_* family and
 * tevent_cached_getpid().
 *
 * The timeval helpers are pure arithmetic, so most expectations are exact.
 * Where the wall clock is involved we only check that a value lies between
 * two gettimeofday() readings taken around the call, which holds however
 * slow the machine is.
 */

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>

#include "common/tt.h"

static struct timeval tv(long sec, long usec)
{
	struct timeval t = { .tv_sec = sec, .tv_usec = usec };
	return t;
}

static void assert_tv(struct timeval t, long sec, long usec)
{
	assert_int_equal(t.tv_sec, sec);
	assert_int_equal(t.tv_usec, usec);
}

static void test_zero_and_is_zero(void **state)
{
	struct timeval z = tevent_timeval_zero();
	struct timeval t;

	(void)state;
	assert_tv(z, 0, 0);
	assert_true(tevent_timeval_is_zero(&z));

	t = tv(0, 1);
	assert_false(tevent_timeval_is_zero(&t));
	t = tv(1, 0);
	assert_false(tevent_timeval_is_zero(&t));
}

static void test_set(void **state)
{
	struct timeval t;

	(void)state;
	assert_tv(tevent_timeval_set(0, 0), 0, 0);
	assert_tv(tevent_timeval_set(12, 345678), 12, 345678);
	/* set() stores the fields as given: no carrying of microseconds */
	t = tevent_timeval_set(1, 2500000);
	assert_int_equal(t.tv_sec, 1);
	assert_int_equal(t.tv_usec, 2500000);
	/* the arguments are unsigned 32 bit */
	t = tevent_timeval_set(UINT32_MAX, 0);
	assert_true((uint64_t)t.tv_sec == (uint64_t)UINT32_MAX);
}

static void test_compare(void **state)
{
	struct timeval a, b;

	(void)state;
	a = tv(5, 10);
	b = tv(5, 10);
	assert_int_equal(tevent_timeval_compare(&a, &b), 0);

	/* seconds decide first */
	a = tv(6, 0);
	b = tv(5, 999999);
	assert_int_equal(tevent_timeval_compare(&a, &b), 1);
	assert_int_equal(tevent_timeval_compare(&b, &a), -1);

	/* then microseconds */
	a = tv(5, 11);
	b = tv(5, 10);
	assert_int_equal(tevent_timeval_compare(&a, &b), 1);
	assert_int_equal(tevent_timeval_compare(&b, &a), -1);

	/* the result is exactly -1/0/1, not a difference */
	a = tv(1000, 0);
	b = tv(1, 0);
	assert_int_equal(tevent_timeval_compare(&a, &b), 1);
	assert_int_equal(tevent_timeval_compare(&b, &a), -1);

	a = tevent_timeval_zero();
	b = tv(0, 1);
	assert_int_equal(tevent_timeval_compare(&a, &b), -1);
}

static void test_until(void **state)
{
	struct timeval a, b;

	(void)state;
	/* tv2 - tv1 */
	a = tv(10, 100);
	b = tv(12, 300);
	assert_tv(tevent_timeval_until(&a, &b), 2, 200);

	/* borrowing a second */
	a = tv(10, 900000);
	b = tv(12, 100000);
	assert_tv(tevent_timeval_until(&a, &b), 1, 200000);

	a = tv(10, 999999);
	b = tv(11, 0);
	assert_tv(tevent_timeval_until(&a, &b), 0, 1);

	/* equal or already passed: zero, never negative */
	a = tv(10, 5);
	b = tv(10, 5);
	assert_tv(tevent_timeval_until(&a, &b), 0, 0);
	a = tv(11, 0);
	b = tv(10, 5);
	assert_tv(tevent_timeval_until(&a, &b), 0, 0);
	a = tv(10, 6);
	b = tv(10, 5);
	assert_tv(tevent_timeval_until(&a, &b), 0, 0);
}

static void test_add(void **state)
{
	struct timeval a, r;

	(void)state;
	a = tv(10, 100);
	assert_tv(tevent_timeval_add(&a, 0, 0), 10, 100);
	assert_tv(tevent_timeval_add(&a, 5, 0), 15, 100);
	assert_tv(tevent_timeval_add(&a, 0, 200), 10, 300);

	/* microseconds carry into seconds */
	a = tv(10, 999999);
	assert_tv(tevent_timeval_add(&a, 0, 1), 11, 0);
	a = tv(10, 500000);
	assert_tv(tevent_timeval_add(&a, 1, 700000), 12, 200000);

	/* more than a second worth of microseconds */
	a = tv(0, 0);
	assert_tv(tevent_timeval_add(&a, 0, 3500000), 3, 500000);
	a = tv(1, 999999);
	assert_tv(tevent_timeval_add(&a, 2, 2000001), 6, 0);

	/* the largest microsecond argument does not overflow */
	a = tv(0, 0);
	r = tevent_timeval_add(&a, 0, UINT32_MAX);
	assert_int_equal(r.tv_sec, UINT32_MAX / 1000000);
	assert_int_equal(r.tv_usec, UINT32_MAX % 1000000);

	/* the input is not modified */
	a = tv(7, 7);
	(void)tevent_timeval_add(&a, 100, 100);
	assert_tv(a, 7, 7);
}

static void test_current(void **state)
{
	struct timeval before, now, after;
	int i;

	(void)state;
	for (i = 0; i < 100; i++) {
		gettimeofday(&before, NULL);
		now = tevent_timeval_current();
		gettimeofday(&after, NULL);

		assert_true(now.tv_usec >= 0 && now.tv_usec < 1000000);
		assert_true(tevent_timeval_compare(&before, &now) <= 0);
		assert_true(tevent_timeval_compare(&now, &after) <= 0);
	}
}

static void test_current_ofs(void **state)
{
	struct timeval before, now, after, lo, hi;
	static const uint32_t secs[] = { 0, 1, 3, 100, 0 };
	static const uint32_t usecs[] = { 0, 0, 999999, 1, 2500000 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
		gettimeofday(&before, NULL);
		now = tevent_timeval_current_ofs(secs[i], usecs[i]);
		gettimeofday(&after, NULL);

		lo = tevent_timeval_add(&before, secs[i], usecs[i]);
		hi = tevent_timeval_add(&after, secs[i], usecs[i]);

		assert_true(now.tv_usec >= 0 && now.tv_usec < 1000000);
		assert_true(tevent_timeval_compare(&lo, &now) <= 0);
		assert_true(tevent_timeval_compare(&now, &hi) <= 0);
	}
}

static void test_cached_getpid(void **state)
{
	pid_t a, b;

	(void)state;
	a = tevent_cached_getpid();
	b = tevent_cached_getpid();
	assert_int_equal(a, getpid());
	assert_int_equal(b, getpid());
}

/*
 * After fork() the cache must not hand out the parent's pid: the child has
 * to see its own pid, also when the parent had already filled the cache,
 * and a grandchild its own again.
 */
static void test_cached_getpid_after_fork(void **state)
{
	pid_t parent = getpid();
	pid_t child;
	int status = 0;

	(void)state;
	assert_int_equal(tevent_cached_getpid(), parent);

	child = fork();
	assert_true(child != -1);
	if (child == 0) {
		pid_t me = getpid();
		pid_t grandchild;
		int gstatus = 0;

		if (tevent_cached_getpid() != me) {
			_exit(10);
		}
		if (tevent_cached_getpid() == parent) {
			_exit(11);
		}
		grandchild = fork();
		if (grandchild == -1) {
			_exit(12);
		}
		if (grandchild == 0) {
			if (tevent_cached_getpid() != getpid()) {
				_exit(20);
			}
			if (tevent_cached_getpid() == me) {
				_exit(21);
			}
			_exit(0);
		}
		if (waitpid(grandchild, &gstatus, 0) != grandchild) {
			_exit(13);
		}
		if (!WIFEXITED(gstatus) || WEXITSTATUS(gstatus) != 0) {
			_exit(WIFEXITED(gstatus) ? WEXITSTATUS(gstatus) : 14);
		}
		/* still right in the child after its own fork */
		if (tevent_cached_getpid() != me) {
			_exit(15);
		}
		_exit(0);
	}

	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	/* the parent's value is unaffected */
	assert_int_equal(tevent_cached_getpid(), parent);
}

static void *thread_pid(void *arg)
{
	pid_t *out = arg;

	*out = tevent_cached_getpid();
	return NULL;
}

/* Threads share the process id, and so the cached value. */
static void test_cached_getpid_thread(void **state)
{
	pthread_t t;
	pid_t seen = 0;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, thread_pid, &seen), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(seen, getpid());
	assert_int_equal(tevent_cached_getpid(), getpid());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zero_and_is_zero),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_compare),
		cmocka_unit_test(test_until),
		cmocka_unit_test(test_add),
		cmocka_unit_test(test_current),
		cmocka_unit_test(test_current_ofs),
		cmocka_unit_test(test_cached_getpid),
		cmocka_unit_test(test_cached_getpid_after_fork),
		cmocka_unit_test(test_cached_getpid_thread),
	};

	tt_check_library();
	return cmocka_run_group_tests(tests, NULL, NULL);
}

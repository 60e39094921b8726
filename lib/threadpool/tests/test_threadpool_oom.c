/*
 * Out-of-memory sweep of libtevent_threadpool (the machinery is in
 * tests/common/tt_oom.h): every allocation made by the pool library, and
 * by libtevent on its behalf or for the loop, fails in turn, alone and
 * with all later ones, and the program must carry on.
 *
 * The scenario creates a loop and a pool, sends three jobs
 * (tevent_threadpool_job_send) and enqueues one task with a sync and a
 * cleanup function, runs the loop until everything that was set up has
 * reported back, dumps the pool and frees it all.  A job request that was
 * returned completes exactly once (0, or an error such as ENOMEM); its
 * function ran if it reported 0; an enqueued task ends, is reaped, and
 * its cleanup runs exactly once; a failed enqueue takes nothing over.
 * Pool threads allocate too, so the order of the counted allocations may
 * differ between runs; the checks do not depend on it.
 *
 * No abort is allowed: a job request that fails early is completed
 * through tevent_req_post(), which needs no memory of its own.
 */
#define TEVENT_DEPRECATED 1

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>
#include <tevent_threadpool.h>

#include "tt.h"
#include "tt_oom.h"

#define NJOBS 3

struct tp_scenario {
	bool job_sent[NJOBS];
	int job_done[NJOBS];
	int job_ret[NJOBS];
	atomic_int job_ran[NJOBS];
	bool task_enqueued;
	int task_ends;             /* sync calls with an end state */
	int task_cleanups;
	struct tevent_threadpool_task *task;
};

struct job_slot {
	struct tp_scenario *s;
	int i;
};

static struct job_slot slots[NJOBS];

static void job_fn(void *private_data)
{
	struct job_slot *sl = private_data;

	atomic_fetch_add(&sl->s->job_ran[sl->i], 1);
}

static void job_done(struct tevent_req *req)
{
	struct job_slot *sl = tevent_req_callback_data_void(req);

	sl->s->job_done[sl->i]++;
	sl->s->job_ret[sl->i] = tevent_threadpool_job_recv(req);
	talloc_free(req);
}

static int task_fn(void *user, enum tevent_threadpool_task_state state)
{
	(void)user;
	(void)state;
	return TEVENT_TP_RETURN_FINISHED;
}

static void task_sync(struct tevent_threadpool_task *task, void *user,
		      enum tevent_threadpool_task_state state)
{
	struct tp_scenario *s = user;

	if (state == TEVENT_TP_STATE_FINISHED ||
	    state == TEVENT_TP_STATE_STOPPED) {
		s->task_ends++;
		(void)tevent_threadpool_task_status(task);  /* reaps it */
		s->task = NULL;
	}
}

static void task_cleanup(void *user,
			 enum tevent_threadpool_task_state final_state)
{
	struct tp_scenario *s = user;

	(void)final_state;
	s->task_cleanups++;
}

static void watchdog(struct tevent_context *ev, struct tevent_timer *te,
		     struct timeval now, void *private_data)
{
	(void)ev, (void)te, (void)now;
	*(bool *)private_data = true;
}

static bool all_reported(const struct tp_scenario *s)
{
	int i;

	for (i = 0; i < NJOBS; i++) {
		if (s->job_sent[i] && s->job_done[i] == 0) {
			return false;
		}
	}
	return !s->task_enqueued || s->task_ends > 0;
}

static void pool_scenario(const char *backend)
{
	static struct tp_scenario s;
	struct tevent_context *ev;
	struct tevent_threadpool *pool;
	bool stuck = false, loop_failed = false;
	int i, turns = 0;

	memset(&s, 0, sizeof(s));
	ev = tevent_context_init_byname(NULL, backend);
	if (ev == NULL) {
		return;
	}
	pool = tevent_threadpool_create(ev, 2, 8, "oom-%s", backend);
	if (pool == NULL) {
		tt_oom_check(errno != 0, "tevent_threadpool_create: no errno");
		talloc_free(ev);
		return;
	}
	for (i = 0; i < NJOBS; i++) {
		struct tevent_req *req;

		slots[i] = (struct job_slot){&s, i};
		req = tevent_threadpool_job_send(ev, ev, pool, job_fn,
						 &slots[i]);
		if (req != NULL) {
			tevent_req_set_callback(req, job_done, &slots[i]);
			s.job_sent[i] = true;
		}
	}
	{
		struct tevent_threadpool_task_args args = {
			.ev = ev,
			.owner = ev,
			.user = &s,
			.task = task_fn,
			.sync = task_sync,
			.cleanup = task_cleanup,
		};

		s.task = tevent_threadpool_enqueue(pool, &args, "task %d", 1);
		s.task_enqueued = s.task != NULL;
		tt_oom_check(s.task_enqueued || errno == ENOMEM ||
			     errno == EAGAIN,
			     "tevent_threadpool_enqueue: %s", strerror(errno));
	}

	tt_oom_count(false);
	tt_oom_check(tevent_add_timer(ev, ev, tevent_timeval_current_ofs(10, 0),
				      watchdog, &stuck) != NULL, "watchdog");
	tt_oom_count(true);
	while (!all_reported(&s) && !stuck && turns++ < 1000) {
		if (tevent_loop_once(ev) != 0) {
			tt_oom_check(errno == ENOMEM && tt_oom_failed_any(),
				     "loop_once failed: %s", strerror(errno));
			loop_failed = true;
			break;
		}
	}
	tt_oom_check(!stuck, "stuck: jobs %d %d %d, task ends %d",
		     s.job_done[0], s.job_done[1], s.job_done[2],
		     s.task_ends);
	talloc_free(tevent_threadpool_dump(ev, pool));
	tt_oom_count(false);

	for (i = 0; i < NJOBS; i++) {
		tt_oom_check(s.job_done[i] == (s.job_sent[i] ? 1 : 0) ||
			     (loop_failed && s.job_done[i] == 0),
			     "job %d: sent %d, completed %d times", i,
			     s.job_sent[i], s.job_done[i]);
		tt_oom_check(!s.job_done[i] || s.job_ret[i] != 0 ||
			     atomic_load(&s.job_ran[i]) == 1,
			     "job %d reported success but ran %d times", i,
			     atomic_load(&s.job_ran[i]));
		tt_oom_check(atomic_load(&s.job_ran[i]) <= 1,
			     "job %d ran %d times", i,
			     atomic_load(&s.job_ran[i]));
	}
	talloc_free(pool);  /* reaps a task that was not reaped yet */
	tt_oom_check(s.task_cleanups == (s.task_enqueued ? 1 : 0),
		     "task: enqueued %d, cleaned up %d times",
		     s.task_enqueued, s.task_cleanups);
	talloc_free(ev);
}

/* tevent_loop_wait() with nothing but a task that ends later: an enqueue
 * that succeeded must keep the loop waiting until the task's end was
 * delivered, whatever allocation failed. */
static int slow_task_fn(void *user, enum tevent_threadpool_task_state state)
{
	(void)user;
	(void)state;
	usleep(20000);  /* ends after the loop is waiting */
	return TEVENT_TP_RETURN_FINISHED;
}

static void wait_scenario(const char *backend)
{
	static struct tp_scenario s;
	struct tevent_context *ev;
	struct tevent_threadpool *pool;
	struct tevent_threadpool_task_args args = {
		.user = &s,
		.task = slow_task_fn,
		.sync = task_sync,
		.cleanup = task_cleanup,
	};
	int ret;

	memset(&s, 0, sizeof(s));
	ev = tevent_context_init_byname(NULL, backend);
	if (ev == NULL) {
		return;
	}
	pool = tevent_threadpool_create(ev, 1, 1, "wait-%s", backend);
	if (pool == NULL) {
		talloc_free(ev);
		return;
	}
	args.ev = ev;
	args.owner = ev;
	s.task = tevent_threadpool_enqueue(pool, &args, "slow");
	s.task_enqueued = s.task != NULL;
	tt_oom_check(s.task_enqueued || errno == ENOMEM || errno == EAGAIN,
		     "tevent_threadpool_enqueue: %s", strerror(errno));

	ret = tevent_loop_wait(ev);
	tt_oom_count(false);
	if (ret != 0) {
		tt_oom_check(errno == ENOMEM && tt_oom_failed_any(),
			     "tevent_loop_wait failed: %s", strerror(errno));
	} else {
		tt_oom_check(s.task_ends == (s.task_enqueued ? 1 : 0),
			     "loop_wait returned: task enqueued %d, ended %d",
			     s.task_enqueued, s.task_ends);
	}
	talloc_free(pool);
	tt_oom_check(s.task_cleanups == (s.task_enqueued ? 1 : 0),
		     "task: enqueued %d, cleaned up %d times",
		     s.task_enqueued, s.task_cleanups);
	talloc_free(ev);
}

static void test_pool_oom_single(void **state)
{
	(void)state;
	tt_oom_sweep(pool_scenario, "standard", false, NULL);
}

static void test_pool_oom_from_then_on(void **state)
{
	(void)state;
	if (TT_ON_VALGRIND()) {
		skip();  /* the single-failure sweep covers the paths */
	}
	tt_oom_sweep(pool_scenario, "standard", true, NULL);
}

static void test_pool_oom_wait_single(void **state)
{
	(void)state;
	tt_oom_sweep(wait_scenario, "standard", false, NULL);
}

static void test_pool_oom_wait_from_then_on(void **state)
{
	(void)state;
	if (TT_ON_VALGRIND()) {
		skip();  /* the single-failure sweep covers the paths */
	}
	tt_oom_sweep(wait_scenario, "standard", true, NULL);
}

/*
 * The keepalive itself cannot be made again.  A's end callback waits in a
 * nested loop while every allocation fails.  B's end arrives there and
 * needs a new wake-up immediate (both of the port's own are busy), which
 * cannot be made; the keepalive then fires to retry, cannot be re-made
 * either, and the retry immediate takes over, once per turn.  C ends
 * meanwhile and has no wake-up to send.  Once memory is back, the retry
 * must deliver C's end.
 */
struct retry {
	struct tevent_context *ev;
	struct tevent_threadpool *pool;
	int ends[3];              /* A, B, C */
	int turns_without_memory;
	bool c_nested;            /* C's end came inside A's callback */
	bool watchdog;
};

static int retry_task(void *user, enum tevent_threadpool_task_state state)
{
	(void)state;
	usleep((useconds_t)(uintptr_t)user);
	return TEVENT_TP_RETURN_FINISHED;
}

static void retry_end(struct tevent_threadpool_task *task, void *user,
		      enum tevent_threadpool_task_state state);

static struct retry *the_retry;

static struct tevent_threadpool_task *retry_enqueue(struct retry *r,
						    int which,
						    useconds_t usec)
{
	struct tevent_threadpool_task_args args = {
		.ev = r->ev,
		.owner = r->ev,
		.user = (void *)(uintptr_t)usec,
		.task = retry_task,
		.sync = retry_end,
	};
	char name[2] = {(char)('a' + which), 0};

	return tevent_threadpool_enqueue(r->pool, &args, "%s", name);
}

static void retry_end(struct tevent_threadpool_task *task, void *user,
		      enum tevent_threadpool_task_state state)
{
	struct retry *r = the_retry;
	int which = tevent_threadpool_task_name(task)[0] - 'a';

	(void)user;
	if (state != TEVENT_TP_STATE_FINISHED) {
		return;
	}
	r->ends[which]++;
	(void)tevent_threadpool_task_status(task);  /* reaps it */
	if (which != 0) {
		return;
	}
	assert_non_null(retry_enqueue(r, 1, 10000));
	assert_non_null(retry_enqueue(r, 2, 50000));
	tt_oom_fail_all(true);
	/* B's end, the keepalive's retry and then the retry immediate each
	 * take turns; C ends after 50 ms */
	while (r->turns_without_memory < 200 && !r->watchdog) {
		assert_int_equal(tevent_loop_once(r->ev), 0);
		r->turns_without_memory++;
		if (r->ends[1] == 1 && r->turns_without_memory > 100) {
			usleep(1000);  /* let C end while we spin */
		}
	}
	tt_oom_fail_all(false);
	while (r->ends[2] == 0 && !r->watchdog) {
		assert_int_equal(tevent_loop_once(r->ev), 0);
	}
	r->c_nested = r->ends[2] == 1;
}

static void test_pool_oom_keepalive_retry(void **state)
{
	struct retry r = {0};
	TALLOC_CTX *tmp = talloc_new(NULL);

	(void)state;
#ifdef TT_OOM_TSAN
	skip();
#endif
	the_retry = &r;
	r.ev = tevent_context_init_byname(tmp, "standard");
	assert_non_null(r.ev);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	tevent_loop_allow_nesting(r.ev);
#pragma GCC diagnostic pop
	r.pool = tevent_threadpool_create(tmp, 2, 8, "retry");
	assert_non_null(r.pool);
	assert_non_null(tevent_add_timer(r.ev, tmp,
					 tevent_timeval_current_ofs(60, 0),
					 watchdog, &r.watchdog));
	assert_non_null(retry_enqueue(&r, 0, 0));
	while (r.ends[0] == 0 && !r.watchdog) {
		assert_int_equal(tevent_loop_once(r.ev), 0);
	}
	assert_false(r.watchdog);
	assert_true(tt_oom_failed_any());
	assert_int_equal(r.ends[1], 1);
	assert_true(r.c_nested);
	talloc_free(tmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_oom_single),
		cmocka_unit_test(test_pool_oom_from_then_on),
		cmocka_unit_test(test_pool_oom_wait_single),
		cmocka_unit_test(test_pool_oom_wait_from_then_on),
		cmocka_unit_test(test_pool_oom_keepalive_retry),
	};

	tt_check_library();
	tt_oom_watch("libtevent.so");
	tt_oom_watch("libtevent_threadpool.so");
	return cmocka_run_group_tests(tests, NULL, NULL);
}

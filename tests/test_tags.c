/*
 * Tests for the caller defined tags of fd, timer, immediate and signal
 * events: they start at 0, hold any 64 bit value, and survive everything
 * short of freeing the event (running, rescheduling, moving a timer,
 * tevent_re_initialise(), and the context going away).
 */

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>

#include "common/tt.h"

/* handlers have fixed signatures and rarely use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"

struct fixture {
	struct tevent_context *ev;
	int sp[2];
};

static int setup(void **state)
{
	struct fixture *f = talloc_zero(NULL, struct fixture);

	assert_non_null(f);
	f->ev = tevent_context_init(f);
	assert_non_null(f->ev);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, f->sp), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	close(f->sp[0]);
	close(f->sp[1]);
	talloc_free(f);
	return 0;
}

struct seen {
	int calls;
	uint64_t tag;
};

static void fd_handler(struct tevent_context *ev, struct tevent_fd *fde,
		       uint16_t flags, void *private_data)
{
	struct seen *s = private_data;

	s->calls++;
	s->tag = tevent_fd_get_tag(fde);
	tevent_fd_set_flags(fde, 0);
}

static void timer_handler(struct tevent_context *ev, struct tevent_timer *te,
			  struct timeval now, void *private_data)
{
	struct seen *s = private_data;

	s->calls++;
	s->tag = tevent_timer_get_tag(te);
}

static void imm_handler(struct tevent_context *ev, struct tevent_immediate *im,
			void *private_data)
{
	struct seen *s = private_data;

	s->calls++;
	s->tag = tevent_immediate_get_tag(im);
}

static void signal_handler(struct tevent_context *ev, struct tevent_signal *se,
			   int signum, int count, void *siginfo,
			   void *private_data)
{
	struct seen *s = private_data;

	s->calls++;
	s->tag = tevent_signal_get_tag(se);
}

static void test_fd_tag(void **state)
{
	struct fixture *f = *state;
	struct seen s = { 0 };
	struct tevent_fd *fde, *other;

	fde = tevent_add_fd(f->ev, f, f->sp[0], TEVENT_FD_WRITE,
			    fd_handler, &s);
	other = tevent_add_fd(f->ev, f, f->sp[1], 0, fd_handler, &s);
	assert_non_null(fde);
	assert_non_null(other);

	assert_int_equal(tevent_fd_get_tag(fde), 0);
	tevent_fd_set_tag(fde, 1);
	assert_int_equal(tevent_fd_get_tag(fde), 1);
	tevent_fd_set_tag(fde, UINT64_MAX);
	assert_true(tevent_fd_get_tag(fde) == UINT64_MAX);
	tevent_fd_set_tag(fde, 0x123456789abcdef0ULL);
	/* tags are per event */
	assert_int_equal(tevent_fd_get_tag(other), 0);

	/* flag changes and a run keep it; the handler sees it */
	tevent_fd_set_flags(fde, TEVENT_FD_READ | TEVENT_FD_WRITE);
	tevent_fd_set_flags(fde, TEVENT_FD_WRITE);
	while (s.calls == 0) {
		assert_int_equal(tevent_loop_once(f->ev), 0);
	}
	assert_true(s.tag == 0x123456789abcdef0ULL);
	assert_true(tevent_fd_get_tag(fde) == 0x123456789abcdef0ULL);

	/* detached by tevent_re_initialise(): still there */
	assert_int_equal(tevent_re_initialise(f->ev), 0);
	assert_true(tevent_fd_get_tag(fde) == 0x123456789abcdef0ULL);
	tevent_fd_set_tag(fde, 7);
	assert_int_equal(tevent_fd_get_tag(fde), 7);

	talloc_free(fde);
	talloc_free(other);
}

static void test_timer_tag(void **state)
{
	struct fixture *f = *state;
	struct seen s = { 0 };
	struct tevent_timer *te, *later;

	te = tevent_add_timer(f->ev, f, tevent_timeval_current_ofs(100, 0),
			      timer_handler, &s);
	later = tevent_add_timer(f->ev, f, tevent_timeval_current_ofs(200, 0),
				 timer_handler, &s);
	assert_non_null(te);
	assert_non_null(later);

	assert_int_equal(tevent_timer_get_tag(te), 0);
	tevent_timer_set_tag(te, 1);
	assert_int_equal(tevent_timer_get_tag(te), 1);
	tevent_timer_set_tag(te, UINT64_MAX);
	assert_true(tevent_timer_get_tag(te) == UINT64_MAX);
	tevent_timer_set_tag(later, 99);

	/* moving the timer keeps the tag; the handler sees it */
	tevent_update_timer(te, tevent_timeval_current());
	assert_true(tevent_timer_get_tag(te) == UINT64_MAX);
	assert_int_equal(tevent_loop_once(f->ev), 0);
	assert_int_equal(s.calls, 1);
	assert_true(s.tag == UINT64_MAX);

	assert_int_equal(tevent_re_initialise(f->ev), 0);
	assert_int_equal(tevent_timer_get_tag(later), 99);
	talloc_free(later);
}

static void test_immediate_tag(void **state)
{
	struct fixture *f = *state;
	struct seen s = { 0 };
	struct tevent_immediate *im = tevent_create_immediate(f);

	assert_non_null(im);
	/* set before it is ever scheduled */
	assert_int_equal(tevent_immediate_get_tag(im), 0);
	tevent_immediate_set_tag(im, 1);
	assert_int_equal(tevent_immediate_get_tag(im), 1);

	tevent_schedule_immediate(im, f->ev, imm_handler, &s);
	assert_int_equal(tevent_immediate_get_tag(im), 1);
	/* rescheduling and cancelling keep it */
	tevent_schedule_immediate(im, f->ev, imm_handler, &s);
	tevent_schedule_immediate(im, f->ev, NULL, NULL);
	assert_int_equal(tevent_immediate_get_tag(im), 1);
	tevent_immediate_set_tag(im, UINT64_MAX);
	tevent_schedule_immediate(im, f->ev, imm_handler, &s);

	assert_int_equal(tevent_loop_once(f->ev), 0);
	assert_int_equal(s.calls, 1);
	assert_true(s.tag == UINT64_MAX);
	/* after the run the object still carries it */
	assert_true(tevent_immediate_get_tag(im) == UINT64_MAX);

	tevent_immediate_set_tag(im, 5);
	tevent_schedule_immediate(im, f->ev, imm_handler, &s);
	assert_int_equal(tevent_re_initialise(f->ev), 0);
	assert_int_equal(tevent_immediate_get_tag(im), 5);

	talloc_free(im);
}

static void test_signal_tag(void **state)
{
	struct fixture *f = *state;
	struct seen s = { 0 };
	struct tevent_signal *se;

	se = tevent_add_signal(f->ev, f, SIGUSR1, 0, signal_handler, &s);
	assert_non_null(se);
	assert_int_equal(tevent_signal_get_tag(se), 0);
	tevent_signal_set_tag(se, 1);
	assert_int_equal(tevent_signal_get_tag(se), 1);
	tevent_signal_set_tag(se, UINT64_MAX - 1);

	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	assert_int_equal(tevent_loop_once(f->ev), 0);
	assert_int_equal(s.calls, 1);
	assert_true(s.tag == UINT64_MAX - 1);
	assert_true(tevent_signal_get_tag(se) == UINT64_MAX - 1);

	assert_int_equal(tevent_re_initialise(f->ev), 0);
	assert_true(tevent_signal_get_tag(se) == UINT64_MAX - 1);
	talloc_free(se);
}

/* Events left behind by a freed context keep their tags. */
static void test_tags_after_context_free(void **state)
{
	struct fixture *f = *state;
	TALLOC_CTX *owner = talloc_new(NULL);
	struct tevent_context *ev = tevent_context_init(NULL);
	struct seen s = { 0 };
	struct tevent_fd *fde;
	struct tevent_timer *te;
	struct tevent_immediate *im;
	struct tevent_signal *se;

	assert_non_null(ev);
	fde = tevent_add_fd(ev, owner, f->sp[0], TEVENT_FD_READ,
			    fd_handler, &s);
	te = tevent_add_timer(ev, owner, tevent_timeval_current_ofs(100, 0),
			      timer_handler, &s);
	im = tevent_create_immediate(owner);
	se = tevent_add_signal(ev, owner, SIGUSR2, 0, signal_handler, &s);
	assert_non_null(fde);
	assert_non_null(te);
	assert_non_null(im);
	assert_non_null(se);
	tevent_schedule_immediate(im, ev, imm_handler, &s);

	tevent_fd_set_tag(fde, 11);
	tevent_timer_set_tag(te, 12);
	tevent_immediate_set_tag(im, 13);
	tevent_signal_set_tag(se, 14);

	talloc_free(ev);

	assert_int_equal(tevent_fd_get_tag(fde), 11);
	assert_int_equal(tevent_timer_get_tag(te), 12);
	assert_int_equal(tevent_immediate_get_tag(im), 13);
	assert_int_equal(tevent_signal_get_tag(se), 14);
	assert_int_equal(s.calls, 0);

	talloc_free(owner);
}

/* No event: setting is ignored and the tag reads 0, as upstream. */
static void test_tags_of_null(void **state)
{
	(void)state;
	tevent_fd_set_tag(NULL, 1);
	tevent_timer_set_tag(NULL, 2);
	tevent_immediate_set_tag(NULL, 3);
	tevent_signal_set_tag(NULL, 4);
	assert_int_equal(tevent_fd_get_tag(NULL), 0);
	assert_int_equal(tevent_timer_get_tag(NULL), 0);
	assert_int_equal(tevent_immediate_get_tag(NULL), 0);
	assert_int_equal(tevent_signal_get_tag(NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fd_tag, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_tag, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_immediate_tag, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_signal_tag, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tags_after_context_free,
						setup, teardown),
		cmocka_unit_test(test_tags_of_null),
	};

	tt_check_library();
	return cmocka_run_group_tests(tests, NULL, NULL);
}

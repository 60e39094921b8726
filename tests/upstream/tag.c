/*
 * Port of upstream tevent's lib/tevent/tests/test_tevent_tag.c to our own
 * cmocka code: an event's tag starts at 0, keeps what it is set to, and
 * survives rescheduling and tevent_re_initialise().  Upstream case ->
 * function here:
 *
 *   test_fd_tag           up_fd_tag
 *   test_timer_tag        up_timer_tag
 *   test_signal_tag       up_signal_tag
 *   test_immediate_tag    up_immediate_tag
 *   test_queue_entry_tag  up_queue_entry_tag
 *
 * Upstream watches fd 0 in up_fd_tag; we watch a pipe, so that what the
 * test was started with as stdin does not matter.
 */

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>

#include "tt.h"
#include "up.h"

#pragma GCC diagnostic ignored "-Wunused-parameter"

/* None of the handlers ever runs: no loop is driven here. */
static void on_fd(struct tevent_context *ev, struct tevent_fd *fde,
		  uint16_t flags, void *priv)
{
}

static void on_timer(struct tevent_context *ev, struct tevent_timer *te,
		     struct timeval now, void *priv)
{
}

static void on_signal(struct tevent_context *ev, struct tevent_signal *se,
		      int signum, int count, void *siginfo, void *priv)
{
}

static void on_immediate(struct tevent_context *ev,
			 struct tevent_immediate *im, void *priv)
{
}

static void on_queue_trigger(struct tevent_req *req, void *priv)
{
}

struct fixture {
	struct tevent_context *ev;
	int p[2];
};

static int setup(void **state)
{
	struct fixture *f = talloc_zero(NULL, struct fixture);

	assert_non_null(f);
	f->ev = tevent_context_init(f);
	assert_non_null(f->ev);
	assert_int_equal(pipe(f->p), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int p0 = f->p[0], p1 = f->p[1];

	talloc_free(f);
	close(p0);
	close(p1);
	return 0;
}

static void up_fd_tag(void **state)
{
	struct fixture *f = *state;
	struct tevent_fd *fde;

	fde = tevent_add_fd(f->ev, f->ev, f->p[0], TEVENT_FD_READ, on_fd, NULL);
	assert_non_null(fde);
	assert_int_equal(tevent_fd_get_tag(fde), 0);

	tevent_fd_set_tag(fde, 1);
	assert_int_equal(tevent_fd_get_tag(fde), 1);

	tevent_re_initialise(f->ev);
	assert_int_equal(tevent_fd_get_tag(fde), 1);

	TALLOC_FREE(fde);
}

static void up_timer_tag(void **state)
{
	struct fixture *f = *state;
	struct tevent_timer *te;

	te = tevent_add_timer(f->ev, f->ev, tevent_timeval_current(),
			      on_timer, NULL);
	assert_non_null(te);
	assert_int_equal(tevent_timer_get_tag(te), 0);

	tevent_timer_set_tag(te, 1);
	assert_int_equal(tevent_timer_get_tag(te), 1);

	/* moving the deadline keeps the tag */
	tevent_update_timer(te, tevent_timeval_current());
	assert_int_equal(tevent_timer_get_tag(te), 1);

	tevent_re_initialise(f->ev);
	assert_int_equal(tevent_timer_get_tag(te), 1);

	TALLOC_FREE(te);
}

static void up_signal_tag(void **state)
{
	struct fixture *f = *state;
	struct tevent_signal *se;

	se = tevent_add_signal(f->ev, f->ev, SIGUSR1, 0, on_signal, NULL);
	assert_non_null(se);
	assert_int_equal(tevent_signal_get_tag(se), 0);

	tevent_signal_set_tag(se, 1);
	assert_int_equal(tevent_signal_get_tag(se), 1);

	tevent_re_initialise(f->ev);
	assert_int_equal(tevent_signal_get_tag(se), 1);

	TALLOC_FREE(se);
}

static void up_immediate_tag(void **state)
{
	struct fixture *f = *state;
	struct tevent_immediate *im;

	im = tevent_create_immediate(f->ev);
	assert_non_null(im);
	assert_int_equal(tevent_immediate_get_tag(im), 0);

	tevent_immediate_set_tag(im, 1);
	assert_int_equal(tevent_immediate_get_tag(im), 1);

	/* scheduling keeps the tag */
	tevent_schedule_immediate(im, f->ev, on_immediate, NULL);
	assert_int_equal(tevent_immediate_get_tag(im), 1);

	tevent_re_initialise(f->ev);
	assert_int_equal(tevent_immediate_get_tag(im), 1);

	TALLOC_FREE(im);
}

static void up_queue_entry_tag(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q;
	struct tevent_queue_entry *e1, *e2;
	struct tevent_req *r1, *r2;
	int *s1, *s2;

	q = tevent_queue_create(f->ev, "up_tag_queue");
	assert_non_null(q);

	r1 = tevent_req_create(f->ev, &s1, int);
	r2 = tevent_req_create(f->ev, &s2, int);
	assert_non_null(r1);
	assert_non_null(r2);
	e1 = tevent_queue_add_entry(q, f->ev, r1, on_queue_trigger, NULL);
	e2 = tevent_queue_add_entry(q, f->ev, r2, on_queue_trigger, NULL);
	assert_non_null(e1);
	assert_non_null(e2);

	assert_int_equal(tevent_queue_entry_get_tag(e1), 0);
	assert_int_equal(tevent_queue_entry_get_tag(e2), 0);

	tevent_queue_entry_set_tag(e1, 1);
	tevent_queue_entry_set_tag(e2, 2);
	assert_int_equal(tevent_queue_entry_get_tag(e1), 1);
	assert_int_equal(tevent_queue_entry_get_tag(e2), 2);

	TALLOC_FREE(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(up_fd_tag, setup, teardown),
		cmocka_unit_test_setup_teardown(up_timer_tag, setup, teardown),
		cmocka_unit_test_setup_teardown(up_signal_tag, setup, teardown),
		cmocka_unit_test_setup_teardown(up_immediate_tag, setup,
						teardown),
		cmocka_unit_test_setup_teardown(up_queue_entry_tag, setup,
						teardown),
	};

	tt_check_library();
	return cmocka_run_group_tests_name("upstream tests/test_tevent_tag.c",
					   tests, NULL, NULL);
}

/*
 * Tests for the loop functions: tevent_loop_once(), tevent_loop_wait(),
 * tevent_loop_until(), nesting, the wait timeout, and the order in which
 * the kinds of events are served.  Run on every backend.
 *
 * Upstream serves exactly one source per turn, looked at in this order:
 * recorded signals (all their handlers), then one immediate, then one due
 * timer, then (after waiting if nothing else was due) one ready fd event.
 */

/* tevent_loop_until() and the nesting API are only declared with this */
#define TEVENT_DEPRECATED 1

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>

#include "common/tt.h"

/* handlers have fixed signatures and rarely use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"

/* the deprecated API is exactly what is being tested here */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#ifdef TEVENT_FD_ERROR
#define TT_NEW_API 1
#endif

/* ------------------------------------------------------------------ */
/* one cmocka test per (case, backend)                                 */

/* ------------------------------------------------------------------ */
/* helpers                                                             */

static void make_pair(int sp[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	assert_int_equal(fcntl(sp[0], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(fcntl(sp[1], F_SETFL, O_NONBLOCK), 0);
}

/* A log of short names of the handlers that ran. */
struct log {
	int n;
	char what[64][8];
};

static void log_add(struct log *l, const char *what)
{
	assert_true(l->n < 64);
	snprintf(l->what[l->n], sizeof(l->what[0]), "%s", what);
	l->n++;
}

static void assert_log(struct log *l, const char *const *want, int n)
{
	int i;

	for (i = 0; i < n && i < l->n; i++) {
		if (strcmp(l->what[i], want[i]) != 0) {
			fail_msg("position %d: %s ran, expected %s",
				 i, l->what[i], want[i]);
		}
	}
	assert_int_equal(l->n, n);
}

#ifdef TT_NEW_API
static void tick_imm(struct tevent_context *ev,
		     struct tevent_immediate *im,
		     void *private_data)
{
	int *n = private_data;

	if (n != NULL) {
		(*n)++;
	}
}

static void never_fd(struct tevent_context *ev,
		     struct tevent_fd *fde,
		     uint16_t flags,
		     void *private_data)
{
	fail_msg("fd handler ran");
}

static void never_signal(struct tevent_context *ev,
			 struct tevent_signal *se,
			 int signum, int count, void *siginfo,
			 void *private_data)
{
	fail_msg("signal handler ran");
}
#endif

/* ------------------------------------------------------------------ */
/* order of event kinds                                                */

struct order_state {
	struct log log;
	struct tevent_context *ev;
	struct tevent_immediate *i1, *i2, *i3, *i4;
	int fd;
};

static void o_signal(struct tevent_context *ev, struct tevent_signal *se,
		     int signum, int count, void *siginfo, void *private_data)
{
	struct order_state *s = private_data;

	log_add(&s->log, signum == SIGUSR1 ? "S1" : "S2");
}

static void o_imm(struct tevent_context *ev, struct tevent_immediate *im,
		  void *private_data)
{
	struct order_state *s = private_data;

	if (im == s->i1) {
		log_add(&s->log, "I1");
		/* a signal raised here is served before the next immediate */
		kill(getpid(), SIGUSR2);
	} else if (im == s->i2) {
		log_add(&s->log, "I2");
	} else if (im == s->i3) {
		log_add(&s->log, "I3");
	} else {
		log_add(&s->log, "I4");
	}
}

static void o_timer_t2(struct tevent_context *ev, struct tevent_timer *te,
		       struct timeval now, void *private_data)
{
	struct order_state *s = private_data;

	log_add(&s->log, "T2");
}

static void o_timer(struct tevent_context *ev, struct tevent_timer *te,
		    struct timeval now, void *private_data)
{
	struct order_state *s = private_data;

	if (tevent_timeval_is_zero(&now)) {
		log_add(&s->log, "T0");
		/* an immediate from a timer runs before the next timer */
		tevent_schedule_immediate(s->i3, ev, o_imm, s);
	} else {
		log_add(&s->log, "T1");
	}
}

static void o_fd(struct tevent_context *ev, struct tevent_fd *fde,
		 uint16_t flags, void *private_data)
{
	struct order_state *s = private_data;
	char buf[8];

	log_add(&s->log, "F");
	assert_int_equal(read(s->fd, buf, sizeof(buf)), 1);
	/* both run before the descriptor would be looked at again */
	assert_non_null(tevent_add_timer(ev, ev, tevent_timeval_zero(),
					 o_timer_t2, s));
	tevent_schedule_immediate(s->i4, ev, o_imm, s);
}

static void test_loop_order_of_kinds(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct order_state s = { .ev = ev };
	static const char *const want[] = {
		"S1", "I1", "S2", "I2", "T0", "I3", "T1", "F", "I4", "T2",
	};
	struct timeval past = tevent_timeval_current();
	int sp[2];
	int turns = 0;

	past.tv_sec -= 100;
	make_pair(sp);
	s.fd = sp[0];
	s.i1 = tevent_create_immediate(ev);
	s.i2 = tevent_create_immediate(ev);
	s.i3 = tevent_create_immediate(ev);
	s.i4 = tevent_create_immediate(ev);
	assert_non_null(s.i1);
	assert_non_null(s.i2);
	assert_non_null(s.i3);
	assert_non_null(s.i4);

	/* registered in the "wrong" order on purpose */
	assert_non_null(tevent_add_fd(ev, ev, sp[0], TEVENT_FD_READ, o_fd, &s));
	assert_non_null(tevent_add_timer(ev, ev, past, o_timer, &s));
	assert_non_null(tevent_add_timer(ev, ev, tevent_timeval_zero(),
					 o_timer, &s));
	tevent_schedule_immediate(s.i1, ev, o_imm, &s);
	tevent_schedule_immediate(s.i2, ev, o_imm, &s);
	assert_non_null(tevent_add_signal(ev, ev, SIGUSR1, 0, o_signal, &s));
	assert_non_null(tevent_add_signal(ev, ev, SIGUSR2, 0, o_signal, &s));
	assert_int_equal(write(sp[1], "x", 1), 1);
	assert_int_equal(kill(getpid(), SIGUSR1), 0);

	while (s.log.n < 10) {
		int before = s.log.n;

		assert_int_equal(tevent_loop_once(ev), 0);
		/* one source per turn */
		assert_true(s.log.n - before <= 1);
		assert_true(++turns < 50);
	}
	assert_log(&s.log, want, 10);
	tt_finish(ev);
	close(sp[0]);
	close(sp[1]);
}

/* All recorded signals are served in a single turn. */
static void test_loop_signals_in_one_turn(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct order_state s = { .ev = ev };

	assert_non_null(tevent_add_signal(ev, ev, SIGUSR1, 0, o_signal, &s));
	assert_non_null(tevent_add_signal(ev, ev, SIGUSR2, 0, o_signal, &s));
	assert_int_equal(kill(getpid(), SIGUSR2), 0);
	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(s.log.n, 2);
	/* by signal number, not by arrival */
	assert_string_equal(s.log.what[0], "S1");
	assert_string_equal(s.log.what[1], "S2");
	tt_finish(ev);
}

/* ------------------------------------------------------------------ */
/* tevent_loop_wait                                                    */

static void test_loop_wait_empty(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);

	/* nothing registered: returns at once */
	assert_int_equal(tevent_loop_wait(ev), 0);
	assert_int_equal(tevent_loop_wait(ev), 0);
	tt_finish(ev);
}

struct wait_state {
	int fd_calls;
	int timer_calls;
	int imm_calls;
	int fd;
	struct tevent_immediate *im;
};

static void w_fd(struct tevent_context *ev, struct tevent_fd *fde,
		 uint16_t flags, void *private_data)
{
	struct wait_state *s = private_data;
	char buf[8];

	s->fd_calls++;
	assert_int_equal(read(s->fd, buf, sizeof(buf)), 1);
	/* the last event removes itself: the loop then ends */
	talloc_free(fde);
}

static void w_imm(struct tevent_context *ev, struct tevent_immediate *im,
		  void *private_data)
{
	struct wait_state *s = private_data;

	s->imm_calls++;
}

static void w_timer(struct tevent_context *ev, struct tevent_timer *te,
		    struct timeval now, void *private_data)
{
	struct wait_state *s = private_data;

	s->timer_calls++;
	tevent_schedule_immediate(s->im, ev, w_imm, s);
}

static void test_loop_wait_until_no_events(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct wait_state s = { 0 };
	int sp[2];

	make_pair(sp);
	s.fd = sp[0];
	s.im = tevent_create_immediate(ev);
	assert_non_null(s.im);
	assert_non_null(tevent_add_fd(ev, ev, sp[0], TEVENT_FD_READ, w_fd, &s));
	assert_non_null(tevent_add_timer(ev, ev,
					 tevent_timeval_current_ofs(0, 1000),
					 w_timer, &s));
	assert_int_equal(write(sp[1], "x", 1), 1);

	assert_int_equal(tevent_loop_wait(ev), 0);
	assert_int_equal(s.fd_calls, 1);
	assert_int_equal(s.timer_calls, 1);
	assert_int_equal(s.imm_calls, 1);
	tt_finish(ev);
	close(sp[0]);
	close(sp[1]);
}

/*
 * The loop waits in the backend until a descriptor becomes readable
 * because another process wrote to it.
 */
static void test_loop_blocks_until_fd(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct wait_state s = { 0 };
	int sp[2];
	pid_t child;
	int status = 0;

	make_pair(sp);
	s.fd = sp[0];
	assert_non_null(tevent_add_fd(ev, ev, sp[0], TEVENT_FD_READ, w_fd, &s));
	child = fork();
	assert_true(child != -1);
	if (child == 0) {
		ssize_t n = write(sp[1], "x", 1);
		_exit(n == 1 ? 0 : 1);
	}
	assert_int_equal(tevent_loop_wait(ev), 0);
	assert_int_equal(s.fd_calls, 1);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	tt_finish(ev);
	close(sp[0]);
	close(sp[1]);
}

/* ------------------------------------------------------------------ */
/* tevent_loop_until                                                   */

struct until_state {
	int checks;
	int runs;
	int stop_after;
};

static bool until_finished(void *private_data)
{
	struct until_state *u = private_data;

	u->checks++;
	return u->runs >= u->stop_after;
}

static void until_imm(struct tevent_context *ev, struct tevent_immediate *im,
		      void *private_data)
{
	struct until_state *u = private_data;

	u->runs++;
	/* always more work: only the finish function ends the loop */
	tevent_schedule_immediate(im, ev, until_imm, u);
}

static void test_loop_until(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct until_state u = { .stop_after = 5 };
	struct tevent_immediate *im = tevent_create_immediate(ev);

	assert_non_null(im);
	tevent_schedule_immediate(im, ev, until_imm, &u);
	assert_int_equal(tevent_loop_until(ev, until_finished, &u), 0);
	assert_int_equal(u.runs, 5);
	/* asked before every turn and once more at the end */
	assert_int_equal(u.checks, 6);

	/* already finished: not a single turn */
	u.checks = 0;
	assert_int_equal(tevent_loop_until(ev, until_finished, &u), 0);
	assert_int_equal(u.runs, 5);
	assert_int_equal(u.checks, 1);

	tt_finish(ev);
}

/* ------------------------------------------------------------------ */
/* nesting                                                             */

struct nest_state {
	int outer_calls;
	int inner_calls;
	int inner_ret;
	int inner_errno;
	bool use_until;
	struct tevent_immediate *inner_im;
};

static void nest_inner_imm(struct tevent_context *ev,
			   struct tevent_immediate *im,
			   void *private_data)
{
	struct nest_state *s = private_data;

	s->inner_calls++;
}

static bool nest_until_done(void *private_data)
{
	struct nest_state *s = private_data;

	return s->inner_calls > 0;
}

static void nest_outer_timer(struct tevent_context *ev,
			     struct tevent_timer *te,
			     struct timeval now,
			     void *private_data)
{
	struct nest_state *s = private_data;

	s->outer_calls++;
	tevent_schedule_immediate(s->inner_im, ev, nest_inner_imm, s);
	errno = 0;
	if (s->use_until) {
		s->inner_ret = tevent_loop_until(ev, nest_until_done, s);
	} else {
		s->inner_ret = tevent_loop_once(ev);
	}
	s->inner_errno = errno;
}

/*
 * Running the loop from inside one of its handlers without
 * tevent_loop_allow_nesting() is a fatal error: the abort function gets a
 * reason mentioning the nesting and, if it returns, the inner call fails
 * with ELOOP without running anything.  (Upstream then leaves the context
 * counted as nested, so it is freed right away here.)
 */
static void check_nesting_forbidden(void **state, bool use_until)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct nest_state s = { .use_until = use_until };

	s.inner_im = tevent_create_immediate(ev);
	assert_non_null(s.inner_im);
	assert_non_null(tevent_add_timer(ev, ev, tevent_timeval_zero(),
					 nest_outer_timer, &s));
	tt_aborts = 0;
	tt_abort_reason[0] = '\0';
	tevent_set_abort_fn(tt_record_abort);

	assert_int_equal(tevent_loop_once(ev), 0);

	tevent_set_abort_fn(NULL);
	assert_int_equal(s.outer_calls, 1);
	assert_int_equal(tt_aborts, 1);
	assert_non_null(strstr(tt_abort_reason, "nesting"));
	assert_int_equal(s.inner_ret, -1);
	assert_int_equal(s.inner_errno, ELOOP);
	assert_int_equal(s.inner_calls, 0);
	tt_finish(ev);
}

static void test_loop_nesting_forbidden(void **state)
{
	check_nesting_forbidden(state, false);
}

static void test_loop_until_nesting_forbidden(void **state)
{
	check_nesting_forbidden(state, true);
}

/* Without an abort function the process is aborted (SIGABRT). */
static void nest_without_abort_fn(void *arg)
{
	struct tevent_context *ev;
	struct nest_state s = { 0 };

	ev = tevent_context_init_byname(NULL, arg);
	if (ev == NULL) {
		_exit(2);
	}
	s.inner_im = tevent_create_immediate(ev);
	tevent_add_timer(ev, ev, tevent_timeval_zero(), nest_outer_timer, &s);
	tevent_loop_once(ev);
	_exit(3);
}

static void test_loop_nesting_aborts_process(void **state)
{
	tt_expect_sigabrt(nest_without_abort_fn, *state);
}

static void check_nesting_allowed(void **state, bool use_until)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct nest_state s = { .use_until = use_until };

	tevent_loop_allow_nesting(ev);
	s.inner_im = tevent_create_immediate(ev);
	assert_non_null(s.inner_im);
	assert_non_null(tevent_add_timer(ev, ev, tevent_timeval_zero(),
					 nest_outer_timer, &s));
	tt_aborts = 0;
	tevent_set_abort_fn(tt_record_abort);

	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(s.outer_calls, 1);
	assert_int_equal(s.inner_calls, 1);
	assert_int_equal(s.inner_ret, 0);
	assert_int_equal(tt_aborts, 0);

	/* the context is fine afterwards */
	assert_non_null(tevent_add_timer(ev, ev, tevent_timeval_zero(),
					 nest_outer_timer, &s));
	assert_int_equal(tevent_loop_wait(ev), 0);
	assert_int_equal(s.outer_calls, 2);
	assert_int_equal(s.inner_calls, 2);
	assert_int_equal(tt_aborts, 0);

	tevent_set_abort_fn(NULL);
	tt_finish(ev);
}

static void test_loop_nesting_allowed(void **state)
{
	check_nesting_allowed(state, false);
}

static void test_loop_until_nesting_allowed(void **state)
{
	check_nesting_allowed(state, true);
}

/* ------------------------------------------------------------------ */
/* the wait timeout                                                    */

#ifdef TT_NEW_API
static void test_loop_wait_timeout_value(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct tevent_context *ev2 = tt_backend_ev(state);

	/* the default: at most 30 seconds per wait */
	assert_int_equal(tevent_context_set_wait_timeout(ev, 5), 30);
	assert_int_equal(tevent_context_set_wait_timeout(ev, 7), 5);
	assert_int_equal(tevent_context_set_wait_timeout(ev, 0), 7);
	assert_int_equal(tevent_context_set_wait_timeout(ev, 30), 0);
	/* per context */
	assert_int_equal(tevent_context_set_wait_timeout(ev2, 30), 30);
	talloc_free(ev2);
	tt_finish(ev);
}

/*
 * A wait timeout of 0 turns waiting into polling: a turn with nothing to
 * do fails at once instead of blocking, while work that is ready is done
 * as usual.
 */
static void test_loop_wait_timeout_zero(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct tevent_immediate *im = tevent_create_immediate(ev);
	struct wait_state s = { 0 };
	struct tevent_fd *idle;
	int sp[2];
	int ret;
	int ticks = 0;

	assert_non_null(im);
	make_pair(sp);
	s.fd = sp[0];
	idle = tevent_add_fd(ev, ev, sp[1], TEVENT_FD_READ, never_fd, NULL);
	assert_non_null(idle);
	tevent_context_set_wait_timeout(ev, 0);
	tt_spend_poll_mt_wakeup(state, ev);

	errno = 0;
	ret = tevent_loop_once(ev);
	assert_int_not_equal(ret, 0);
	assert_int_not_equal(errno, 0);

	/* tevent_loop_wait gives up the same way instead of hanging */
	assert_int_not_equal(tevent_loop_wait(ev), 0);

	/* ready work still runs and the turn succeeds */
	tevent_schedule_immediate(im, ev, tick_imm, &ticks);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(ticks, 1);
	assert_non_null(tevent_add_timer(ev, ev, tevent_timeval_zero(),
					 w_timer, &s));
	s.im = im;
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(s.timer_calls, 1);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(s.imm_calls, 1);
	assert_non_null(tevent_add_fd(ev, ev, sp[0], TEVENT_FD_READ, w_fd, &s));
	tt_spend_poll_mt_wakeup(state, ev);
	assert_int_equal(write(sp[1], "x", 1), 1);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(s.fd_calls, 1);

	/* a signal event alone also keeps tevent_loop_wait going */
	talloc_free(idle);
	assert_int_equal(tevent_loop_wait(ev), 0);
	{
		struct tevent_signal *se;

		se = tevent_add_signal(ev, ev, SIGUSR1, 0,
				       never_signal, NULL);
		assert_non_null(se);
		assert_int_not_equal(tevent_loop_wait(ev), 0);
		talloc_free(se);
	}
	/* so does an fd event without flags */
	idle = tevent_add_fd(ev, ev, sp[1], 0, never_fd, NULL);
	assert_non_null(idle);
	assert_int_not_equal(tevent_loop_wait(ev), 0);
	talloc_free(idle);
	assert_int_equal(tevent_loop_wait(ev), 0);

	tt_finish(ev);
	close(sp[0]);
	close(sp[1]);
}

/* A short wait timeout ends an idle turn successfully. */
static void test_loop_wait_timeout_short(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct timeval start, end, limit;
	int sp[2];

	make_pair(sp);
	assert_non_null(tevent_add_fd(ev, ev, sp[0], TEVENT_FD_READ,
				      never_fd, NULL));
	assert_int_equal(tevent_context_set_wait_timeout(ev, 1), 30);

	start = tevent_timeval_current();
	assert_int_equal(tevent_loop_once(ev), 0);
	end = tevent_timeval_current();
	/* only a generous upper bound: the default would be 30s */
	limit = tevent_timeval_add(&start, 20, 0);
	assert_true(tevent_timeval_compare(&end, &limit) < 0);

	tt_finish(ev);
	close(sp[0]);
	close(sp[1]);
}

static void counting_timer(struct tevent_context *ev, struct tevent_timer *te,
			   struct timeval now, void *private_data)
{
	int *calls = private_data;

	(*calls)++;
}

/*
 * With a wait timeout of 0 a timer that is not due yet does not make the
 * turn wait for it either: tevent_common_loop_timer_delay() hands the
 * backend the "do not wait" value instead of the timer's delay, so the
 * turn fails at once with EAGAIN and the timer stays pending.
 */
static void test_loop_wait_timeout_zero_future_timer(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct tevent_timer *te;
	struct timeval start, end, limit;
	int calls = 0;
	int ret;

	te = tevent_add_timer(ev, ev, tevent_timeval_current_ofs(3, 0),
			      counting_timer, &calls);
	assert_non_null(te);
	tevent_context_set_wait_timeout(ev, 0);

	start = tevent_timeval_current();
	errno = 0;
	ret = tevent_loop_once(ev);
	end = tevent_timeval_current();
	limit = tevent_timeval_add(&start, 1, 0);

	assert_int_equal(calls, 0);
	assert_true(tevent_timeval_compare(&end, &limit) < 0);
	assert_int_equal(ret, -1);
	assert_int_equal(errno, EAGAIN);
	if (calls == 0) {
		talloc_free(te);
	}
	tt_finish(ev);
}

/*
 * A wrapper context keeps a wait timeout of its own, which the loop never
 * reads: it starts out as 0 (the wrapper is not set up like a main
 * context), setting it reports the wrapper's previous value and leaves the
 * main context's timeout alone.
 */
static void test_loop_wait_timeout_on_wrapper(void **state)
{
	static const struct tevent_wrapper_ops ops = { .name = "tt_wait" };
	struct tevent_context *ev = tt_backend_ev(state);
	struct tevent_context *wrap;
	void *ws = NULL;

	wrap = _tevent_context_wrapper_create(ev, ev, &ops, &ws, 8,
					      "tt_wait_state", __location__);
	assert_non_null(wrap);

	assert_int_equal(tevent_context_set_wait_timeout(wrap, 5), 0);
	assert_int_equal(tevent_context_set_wait_timeout(wrap, 7), 5);
	/* the main context still has its default */
	assert_int_equal(tevent_context_set_wait_timeout(ev, 30), 30);

	talloc_free(wrap);
	tt_finish(ev);
}

/*
 * poll_mt wakes its own poll() whenever the set of fds changes (here:
 * tevent_add_fd()). The wakeup is an ordinary fd event of the context,
 * so the turn that consumes it counts as a served event: with a wait
 * timeout of 0 that turn succeeds, and only the next one finds nothing
 * to do.
 */
static void test_loop_poll_mt_wakeup_turn(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct tevent_fd *fde;
	int sp[2];
	int ret;

	make_pair(sp);
	tevent_context_set_wait_timeout(ev, 0);
	fde = tevent_add_fd(ev, ev, sp[0], TEVENT_FD_READ, never_fd, NULL);
	assert_non_null(fde);

	/* the pending self-wakeup is what this turn serves */
	assert_int_equal(tevent_loop_once(ev), 0);

	errno = 0;
	ret = tevent_loop_once(ev);
	assert_int_equal(ret, -1);
	assert_int_equal(errno, EAGAIN);

	talloc_free(fde);
	tt_finish(ev);
	close(sp[0]);
	close(sp[1]);
}
#endif /* TT_NEW_API */

/*
 * A handler left with longjmp() (what a failed cmocka assertion inside a
 * handler does) never returns to the loop. Freeing the context afterwards,
 * with the stack that handler ran on reused meanwhile, must not crash:
 * the library still has that run on record and must not trust what the
 * stack now holds. The escaped event stays busy for good, as with
 * upstream; it is kept reachable here so that leak checkers stay quiet,
 * and never freed (it may still owe the freed context a trace point).
 */
static jmp_buf escape_jb;
static void *escaped_events[32];
static unsigned escaped_count;

static void escaping_imm(struct tevent_context *ev, struct tevent_immediate *im,
			 void *private_data)
{
	longjmp(escape_jb, 1);
}

static void escaping_timer(struct tevent_context *ev, struct tevent_timer *te,
			   struct timeval now, void *private_data)
{
	longjmp(escape_jb, 1);
}

static __attribute__((noinline)) void scribble_stack(void)
{
	volatile unsigned char junk[16384];

	memset((void *)junk, 0xa5, sizeof(junk));
	(void)junk[0];
}

static void escape_and_free(void **state, bool timer, bool scribble)
{
	struct tevent_context *volatile ev = tt_backend_ev(state);
	void *volatile event;

	assert_true(escaped_count < 32);
	if (timer) {
		event = tevent_add_timer(ev, NULL, tevent_timeval_zero(),
					 escaping_timer, NULL);
	} else {
		event = tevent_create_immediate(NULL);
		assert_non_null(event);
		tevent_schedule_immediate((struct tevent_immediate *)event,
					  ev, escaping_imm, NULL);
	}
	assert_non_null(event);
	if (setjmp(escape_jb) == 0) {
		(void)tevent_loop_once(ev);
		fail_msg("the handler did not escape");
	}
	if (scribble) {
		scribble_stack();
	}
	/* a timer's owner is the context: freeing it orphans the timer */
	escaped_events[escaped_count++] = event;
	tt_finish(ev);
}

static void test_loop_handler_left_by_longjmp(void **state)
{
	if (TT_ON_VALGRIND()) {
		/* memcheck rightly reports the library reading the dead stack */
		skip();
	}
	escape_and_free(state, false, false);
	escape_and_free(state, false, true);
	escape_and_free(state, true, false);
	escape_and_free(state, true, true);
}

static void escaping_signal(struct tevent_context *ev,
			    struct tevent_signal *se, int signum, int count,
			    void *siginfo, void *private_data)
{
	longjmp(escape_jb, 1);
}

static void counting_signal(struct tevent_context *ev,
			    struct tevent_signal *se, int signum, int count,
			    void *siginfo, void *private_data)
{
	*(int *)private_data += count;
}

/*
 * The same for a signal handler, whose dispatch keeps a record of its walk
 * over the handler list: after the escape and a scribbled stack, freeing
 * the context (which retires the escaped event) and later deliveries of
 * the same signal must work.
 */
static void test_loop_signal_handler_left_by_longjmp(void **state)
{
	TT_SKIP_ON_UPSTREAM("the escaped dispatch's signal is delivered again "
			    "to the next context's handler");
	struct tevent_context *volatile ev = tt_backend_ev(state);
	void *volatile event;
	int delivered = 0;

	assert_true(escaped_count < 32);
	event = tevent_add_signal(ev, NULL, SIGUSR2, 0, escaping_signal, NULL);
	assert_non_null(event);
	assert_int_equal(kill(getpid(), SIGUSR2), 0);
	if (setjmp(escape_jb) == 0) {
		(void)tevent_loop_once(ev);
		fail_msg("the handler did not escape");
	}
	scribble_stack();
	escaped_events[escaped_count++] = event;
	tt_finish(ev);

	ev = tt_backend_ev(state);
	assert_non_null(tevent_add_signal(ev, ev, SIGUSR2, 0, counting_signal,
					  &delivered));
	assert_int_equal(kill(getpid(), SIGUSR2), 0);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(delivered, 1);
	assert_int_equal(kill(getpid(), SIGUSR2), 0);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(delivered, 2);
	tt_finish(ev);
}

/*
 * poll() itself failing, not with EINTR: here EINVAL, for more descriptors
 * than RLIMIT_NOFILE allows.  Ours says so: a fatal debug message, and
 * tevent_loop_once() returns -1 with poll()'s errno.  Once the cause is
 * gone the next turn works.  (Upstream returns 0 as if nothing were ready,
 * so a loop spins while the failure lasts: README, intended differences.)
 */
enum { POLL_FAIL_PIPES = 8 };

static void count_and_free_fd(struct tevent_context *ev,
			      struct tevent_fd *fde, uint16_t flags,
			      void *private_data)
{
	int *calls = private_data;

	(*calls)++;
	talloc_free(fde);
}

static void test_loop_poll_failure_reported(void **state)
{
	struct tevent_context *ev;
	struct tt_debug_log log;
	struct rlimit old, low;
	int p[POLL_FAIL_PIPES][2];
	int i, ret, err, calls = 0;

	TT_SKIP_ON_UPSTREAM("its poll backends ignore a failed poll()");
	if (TT_ON_VALGRIND()) {
		/* valgrind keeps the descriptor limit to itself */
		skip();
	}
	ev = tt_backend_ev(state);
	for (i = 0; i < POLL_FAIL_PIPES; i++) {
		assert_int_equal(pipe(p[i]), 0);
		assert_non_null(tevent_add_fd(ev, ev, p[i][0], TEVENT_FD_READ,
					      count_and_free_fd, &calls));
	}
	tt_keep_debug(ev, &log);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = 4;

	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	errno = 0;
	ret = tevent_loop_once(ev);
	err = errno;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);

	assert_int_equal(ret, -1);
	assert_int_equal(err, EINVAL);
	assert_true(tt_debug_find(&log, TEVENT_DEBUG_FATAL,
				  "poll() failed: Invalid argument\n") >= 0);
	assert_int_equal(calls, 0);

	assert_int_equal(write(p[3][1], "x", 1), 1);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(calls, 1);

	tt_finish(ev);
	for (i = 0; i < POLL_FAIL_PIPES; i++) {
		close(p[i][0]);
		close(p[i][1]);
	}
}

int main(void)
{
	static const struct tt_case cases[] = {
		TT_BACKEND_CASE(test_loop_order_of_kinds),
		TT_BACKEND_CASE(test_loop_signals_in_one_turn),
		TT_BACKEND_CASE(test_loop_wait_empty),
		TT_BACKEND_CASE(test_loop_wait_until_no_events),
		TT_BACKEND_CASE(test_loop_blocks_until_fd),
		TT_BACKEND_CASE(test_loop_until),
		TT_BACKEND_CASE(test_loop_nesting_forbidden),
		TT_BACKEND_CASE(test_loop_until_nesting_forbidden),
		TT_BACKEND_CASE(test_loop_nesting_aborts_process),
		TT_BACKEND_CASE(test_loop_nesting_allowed),
		TT_BACKEND_CASE(test_loop_until_nesting_allowed),
		TT_BACKEND_CASE(test_loop_handler_left_by_longjmp),
		TT_BACKEND_CASE(test_loop_signal_handler_left_by_longjmp),
		TT_CASE_ON(test_loop_poll_failure_reported, "poll poll_mt"),
#ifdef TT_NEW_API
		TT_BACKEND_CASE(test_loop_wait_timeout_value),
		TT_BACKEND_CASE(test_loop_wait_timeout_zero),
		TT_BACKEND_CASE(test_loop_wait_timeout_short),
		TT_BACKEND_CASE(test_loop_wait_timeout_zero_future_timer),
		TT_BACKEND_CASE(test_loop_wait_timeout_on_wrapper),
		TT_CASE_ON(test_loop_poll_mt_wakeup_turn, "poll_mt"),
#endif
	};

	tt_check_library();
	return tt_run_cases("loop", cases, sizeof(cases) / sizeof(cases[0]));
}

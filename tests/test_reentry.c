/*
 * Tests for an event whose handler a nested loop runs again while the
 * first run is still on the stack, on every backend.
 *
 * With nesting allowed, a handler can make its own event due again (an fd
 * left readable, an immediate or timer re-armed, its signal raised) and
 * call tevent_loop_once(): the inner loop runs the same handler for the
 * same event.  A free of a running event is deferred until its handler
 * returns; the question is which return.  Upstream keeps a flag, which the
 * inner run clears, so the outer run then works on freed memory; its
 * signal dispatch also hands the nested loop the delivery being handled.
 * (Debian's 0.14.1 fails 13 of these 14 cases, by a crash, a failed check
 * or a valgrind error; only immediate_kept passes.)  Ours counts the runs,
 * only the outermost one finishes the free, and a signal's deliveries are
 * claimed before its handlers run.
 *
 * Each case hangs a marker (a talloc child with a destructor) on the event
 * under test: the marker's destructor tells when the event is really
 * freed.  Every case checks that the handler ran twice, that no free
 * happened while a run was on the stack, and that it happened exactly once
 * after the outer run returned.  Valgrind and ASan (make test-valgrind,
 * make test-asan) check that nothing touched the event after that.
 */

/* tevent_loop_allow_nesting() is only declared with this */
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
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>

#include "common/tt.h"

/* the deprecated nesting API is what the cases need */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
/* handlers have fixed signatures */
#pragma GCC diagnostic ignored "-Wunused-parameter"

/* ------------------------------------------------------------------ */
/* the run recorder shared by every kind of event                      */

/* Who frees the event under test. */
enum who_frees {
	NOBODY,         /* the test, once the loop returned (timers: the
			   library, they are one-shot) */
	INNER_RUN,      /* the nested run, from its handler */
	OUTER_RUN,      /* the outer run, after its nested loop returned */
};

struct reentry {
	struct tevent_context *ev;
	void *event;                 /* the event under test */
	enum who_frees who;
	void (*rearm)(struct reentry *r);  /* make the event due again */

	int runs;                    /* handler calls so far */
	int depth;                   /* handler calls on the stack */
	int max_depth;
	int nested_ret;              /* what the outer run's loop call gave */
	int frees;                   /* marker destructor calls */
	int frees_seen_by_outer;     /* frees once the nested loop returned */
	int frees_right_after_free;  /* frees just after the handler's free */
};

static int marker_destructor(struct reentry **marker)
{
	(*marker)->frees++;
	return 0;
}

/* Hangs the marker on r->event. */
static void add_marker(struct reentry *r)
{
	struct reentry **marker = talloc(r->event, struct reentry *);

	assert_non_null(marker);
	*marker = r;
	talloc_set_destructor(marker, marker_destructor);
}

static void free_event(struct reentry *r)
{
	talloc_free(r->event);
	r->frees_right_after_free = r->frees;
}

/* The body of every handler under test. */
static void handler_run(struct reentry *r)
{
	r->runs++;
	r->depth++;
	if (r->depth > r->max_depth) {
		r->max_depth = r->depth;
	}
	if (r->depth == 1) {
		r->rearm(r);
		r->nested_ret = tevent_loop_once(r->ev);
		r->frees_seen_by_outer = r->frees;
		if (r->who == OUTER_RUN) {
			free_event(r);
		}
	} else if (r->who == INNER_RUN) {
		free_event(r);
	}
	r->depth--;
}

/* What every case expects once the outer loop call returned. */
static void check_runs(const struct reentry *r, int frees_expected)
{
	assert_int_equal(r->runs, 2);
	assert_int_equal(r->max_depth, 2);
	assert_int_equal(r->depth, 0);
	assert_int_equal(r->nested_ret, 0);
	/* nothing freed while a run of the event was on the stack */
	assert_int_equal(r->frees_seen_by_outer, 0);
	assert_int_equal(r->frees_right_after_free, 0);
	assert_int_equal(r->frees, frees_expected);
}

static struct tevent_context *nesting_ev(void **state, struct reentry *r,
					 enum who_frees who)
{
	struct tevent_context *ev = tt_backend_ev(state);

	tevent_loop_allow_nesting(ev);
	*r = (struct reentry){ .ev = ev, .who = who };
	return ev;
}

/* ------------------------------------------------------------------ */
/* fd events: the handler leaves its byte unread, so the fd stays ready */

static void fd_handler(struct tevent_context *ev, struct tevent_fd *fde,
		       uint16_t flags, void *private_data)
{
	assert_true(flags & TEVENT_FD_READ);
	handler_run(private_data);
}

static void fd_rearm(struct reentry *r)
{
	(void)r;
}

/*
 * Once the fd event on sp[0] (a socketpair) is added: settles poll_mt's
 * self-wakeup while nothing is readable yet, then puts one byte on sp[0].
 */
static void make_ready(void **state, struct tevent_context *ev, int sp[2])
{
	tt_spend_poll_mt_wakeup(state, ev);
	assert_int_equal(write(sp[1], "x", 1), 1);
}

static void check_fd(void **state, enum who_frees who)
{
	struct reentry r;
	struct tevent_context *ev = nesting_ev(state, &r, who);
	int sp[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	r.rearm = fd_rearm;
	r.event = tevent_add_fd(ev, ev, sp[0], TEVENT_FD_READ, fd_handler, &r);
	assert_non_null(r.event);
	add_marker(&r);
	make_ready(state, ev, sp);

	assert_int_equal(tevent_loop_once(ev), 0);
	if (who == NOBODY) {
		check_runs(&r, 0);
		talloc_free(r.event);
	}
	check_runs(&r, 1);
	close(sp[0]);
	close(sp[1]);
	tt_finish(ev);
}

static void test_reentry_fd_inner_frees(void **state)
{
	check_fd(state, INNER_RUN);
}

static void test_reentry_fd_outer_frees(void **state)
{
	check_fd(state, OUTER_RUN);
}

static void test_reentry_fd_kept(void **state)
{
	check_fd(state, NOBODY);
}

/* ------------------------------------------------------------------ */
/* immediates: the handler schedules its own immediate again            */

static void imm_handler(struct tevent_context *ev, struct tevent_immediate *im,
			void *private_data)
{
	handler_run(private_data);
}

static void count_handler(struct tevent_context *ev,
			  struct tevent_immediate *im, void *private_data)
{
	(*(int *)private_data)++;
}

static void imm_rearm(struct reentry *r)
{
	tevent_schedule_immediate(r->event, r->ev, imm_handler, r);
}

static void check_immediate(void **state, enum who_frees who)
{
	struct reentry r;
	struct tevent_context *ev = nesting_ev(state, &r, who);

	r.rearm = imm_rearm;
	r.event = tevent_create_immediate(ev);
	assert_non_null(r.event);
	add_marker(&r);
	tevent_schedule_immediate(r.event, ev, imm_handler, &r);

	assert_int_equal(tevent_loop_once(ev), 0);
	if (who == NOBODY) {
		int later_runs = 0;

		check_runs(&r, 0);
		/* spent, and still usable */
		tevent_schedule_immediate(r.event, ev, count_handler,
					  &later_runs);
		assert_int_equal(tevent_loop_once(ev), 0);
		assert_int_equal(later_runs, 1);
		talloc_free(r.event);
	}
	check_runs(&r, 1);
	tt_finish(ev);
}

static void test_reentry_immediate_inner_frees(void **state)
{
	check_immediate(state, INNER_RUN);
}

static void test_reentry_immediate_outer_frees(void **state)
{
	check_immediate(state, OUTER_RUN);
}

static void test_reentry_immediate_kept(void **state)
{
	check_immediate(state, NOBODY);
}

/* ------------------------------------------------------------------ */
/* timers: the handler moves its own timer to now                      */

static void timer_handler(struct tevent_context *ev, struct tevent_timer *te,
			  struct timeval now, void *private_data)
{
	handler_run(private_data);
}

static void timer_rearm(struct reentry *r)
{
	tevent_update_timer(r->event, tevent_timeval_current());
}

static void check_timer(void **state, enum who_frees who)
{
	struct reentry r;
	struct tevent_context *ev = nesting_ev(state, &r, who);

	r.rearm = timer_rearm;
	r.event = tevent_add_timer(ev, ev, tevent_timeval_current(),
				   timer_handler, &r);
	assert_non_null(r.event);
	add_marker(&r);

	assert_int_equal(tevent_loop_once(ev), 0);
	/* one-shot: the library frees it however it was re-armed */
	check_runs(&r, 1);
	tt_finish(ev);
}

static void test_reentry_timer_inner_frees(void **state)
{
	check_timer(state, INNER_RUN);
}

static void test_reentry_timer_outer_frees(void **state)
{
	check_timer(state, OUTER_RUN);
}

static void test_reentry_timer_kept(void **state)
{
	check_timer(state, NOBODY);
}

/* ------------------------------------------------------------------ */
/* signal events: the handler raises its signal again                  */

static void signal_handler(struct tevent_context *ev, struct tevent_signal *se,
			   int signum, int count, void *siginfo,
			   void *private_data)
{
	assert_int_equal(signum, SIGUSR2);
	handler_run(private_data);
}

static void signal_rearm(struct reentry *r)
{
	assert_int_equal(kill(getpid(), SIGUSR2), 0);
}

static void check_signal(void **state, enum who_frees who)
{
	struct reentry r;
	struct tevent_context *ev = nesting_ev(state, &r, who);

	r.rearm = signal_rearm;
	r.event = tevent_add_signal(ev, ev, SIGUSR2, 0, signal_handler, &r);
	assert_non_null(r.event);
	add_marker(&r);
	assert_int_equal(kill(getpid(), SIGUSR2), 0);

	assert_int_equal(tevent_loop_once(ev), 0);
	if (who == NOBODY) {
		check_runs(&r, 0);
		talloc_free(r.event);
	}
	check_runs(&r, 1);
	tt_finish(ev);
}

static void test_reentry_signal_inner_frees(void **state)
{
	check_signal(state, INNER_RUN);
}

static void test_reentry_signal_outer_frees(void **state)
{
	check_signal(state, OUTER_RUN);
}

static void test_reentry_signal_kept(void **state)
{
	check_signal(state, NOBODY);
}

/*
 * Two handlers of one signal, the first nesting a loop in its first run.
 * Each delivery must reach each handler once, with a count of one: the
 * nested dispatch may neither deliver the outer one again (which would
 * also swallow the next signal) nor cut the outer walk short (the second
 * handler would miss a delivery).
 */
struct signal_pair {
	struct tevent_context *ev;
	int first_runs, second_runs;
	int count_sum;   /* of the counts both handlers were given */
};

static void first_of_pair(struct tevent_context *ev, struct tevent_signal *se,
			  int signum, int count, void *siginfo,
			  void *private_data)
{
	struct signal_pair *p = private_data;

	p->count_sum += count;
	if (++p->first_runs == 1) {
		assert_int_equal(kill(getpid(), SIGUSR2), 0);
		assert_int_equal(tevent_loop_once(ev), 0);
	}
}

static void second_of_pair(struct tevent_context *ev, struct tevent_signal *se,
			   int signum, int count, void *siginfo,
			   void *private_data)
{
	struct signal_pair *p = private_data;

	p->count_sum += count;
	p->second_runs++;
}

/* Raises the signal, runs one turn, and checks that each handler has had
 * `runs` deliveries by then, every one with a count of one. */
static void raise_and_check(struct tevent_context *ev, struct signal_pair *p,
			    int runs)
{
	assert_int_equal(kill(getpid(), SIGUSR2), 0);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(p->first_runs, runs);
	assert_int_equal(p->second_runs, runs);
	assert_int_equal(p->count_sum, 2 * runs);
}

static void test_reentry_signal_deliveries_counted_once(void **state)
{
	struct signal_pair p = { 0 };
	struct tevent_context *ev = tt_backend_ev(state);

	tevent_loop_allow_nesting(ev);
	assert_non_null(tevent_add_signal(ev, ev, SIGUSR2, 0, first_of_pair,
					  &p));
	assert_non_null(tevent_add_signal(ev, ev, SIGUSR2, 0, second_of_pair,
					  &p));
	/* the first handler's nested loop takes the second delivery */
	raise_and_check(ev, &p, 2);
	/* the next signal is neither lost nor doubled */
	raise_and_check(ev, &p, 3);
	tt_finish(ev);
}

/* ------------------------------------------------------------------ */
/* an fd event freed through its parent, a timer the nested run fires   */

struct owned_fd {
	struct reentry r;
	struct tevent_timer *parent;
	int parent_runs;
};

static void parent_timer_handler(struct tevent_context *ev,
				 struct tevent_timer *te, struct timeval now,
				 void *private_data)
{
	struct owned_fd *o = private_data;

	o->parent_runs++;
	o->parent = NULL;  /* one-shot: freed, with the fd event, after us */
}

static void owned_fd_handler(struct tevent_context *ev, struct tevent_fd *fde,
			     uint16_t flags, void *private_data)
{
	struct owned_fd *o = private_data;

	if (o->r.runs == 1) {
		/* the inner run: fire the parent from a loop of our own */
		o->r.runs++;
		o->r.depth++;
		o->r.max_depth = o->r.depth;
		tevent_update_timer(o->parent, tevent_timeval_current());
		assert_int_equal(tevent_loop_once(ev), 0);
		assert_int_equal(o->parent_runs, 1);
		o->r.frees_right_after_free = o->r.frees;
		o->r.depth--;
		return;
	}
	handler_run(&o->r);
}

/*
 * The case run-diff met (seed 1016760, both libraries crashed): the fd
 * event's talloc parent is a timer; the nested run fires that timer in a
 * loop of its own, and the library frees the timer and with it the fd
 * event, which outlives it while its handler runs.
 */
static void test_reentry_fd_freed_with_parent_timer(void **state)
{
	struct owned_fd o;
	struct tevent_context *ev = nesting_ev(state, &o.r, NOBODY);
	int sp[2];

	o.parent_runs = 0;
	o.parent = tevent_add_timer(ev, ev, tevent_timeval_current_ofs(3600, 0),
				    parent_timer_handler, &o);
	assert_non_null(o.parent);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	o.r.rearm = fd_rearm;
	o.r.event = tevent_add_fd(ev, o.parent, sp[0], TEVENT_FD_READ,
				  owned_fd_handler, &o);
	assert_non_null(o.r.event);
	add_marker(&o.r);
	make_ready(state, ev, sp);

	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(o.parent_runs, 1);
	check_runs(&o.r, 1);
	close(sp[0]);
	close(sp[1]);
	tt_finish(ev);
}

/* ------------------------------------------------------------------ */
/* how deep                                                            */

/*
 * An fd event counts the runs of its handler on the stack in one byte, so
 * the 256th nested run of the same fd handler is refused: tevent_abort()
 * with "event handler re-entered too deeply by nested loops".  When the
 * abort function returns, that run simply does not happen and the
 * descriptor stays ready: the next turn at the top runs the handler again.
 * (Timers, immediates and signals count in 16 bits.  Upstream has no
 * limit; real programs nest a few levels.)
 */
struct deep {
	int depth, max_depth, runs;
};

static void deep_fd_handler(struct tevent_context *ev, struct tevent_fd *fde,
			    uint16_t flags, void *private_data)
{
	struct deep *d = private_data;

	d->runs++;
	d->depth++;
	if (d->depth > d->max_depth) {
		d->max_depth = d->depth;
	}
	if (tt_aborts == 0) {
		/* the byte stays unread: the nested turn runs us again */
		assert_int_equal(tevent_loop_once(ev), 0);
	}
	d->depth--;
}

static void test_reentry_fd_too_deep(void **state)
{
	struct tevent_context *ev;
	struct tevent_fd *fde;
	struct deep d = { 0 };
	int sp[2];

	TT_SKIP_ON_UPSTREAM("it nests without a limit");
	ev = tt_backend_ev(state);
	tevent_loop_allow_nesting(ev);
	tt_record_aborts();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	fde = tevent_add_fd(ev, ev, sp[0], TEVENT_FD_READ, deep_fd_handler, &d);
	assert_non_null(fde);
	make_ready(state, ev, sp);

	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(tt_aborts, 1);
	assert_string_equal(tt_abort_reason,
			    "event handler re-entered too deeply by nested loops");
	assert_int_equal(d.max_depth, 255);
	assert_int_equal(d.runs, 255);
	assert_int_equal(d.depth, 0);

	/* still ready, and served as usual from the top */
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(d.runs, 256);
	assert_int_equal(d.max_depth, 255);
	assert_int_equal(tt_aborts, 1);

	tevent_set_abort_fn(NULL);
	talloc_free(fde);
	close(sp[0]);
	close(sp[1]);
	tt_finish(ev);
}

int main(void)
{
	static const struct tt_case cases[] = {
		TT_BACKEND_CASE(test_reentry_fd_inner_frees),
		TT_BACKEND_CASE(test_reentry_fd_outer_frees),
		TT_BACKEND_CASE(test_reentry_fd_kept),
		TT_BACKEND_CASE(test_reentry_immediate_inner_frees),
		TT_BACKEND_CASE(test_reentry_immediate_outer_frees),
		TT_BACKEND_CASE(test_reentry_immediate_kept),
		TT_BACKEND_CASE(test_reentry_timer_inner_frees),
		TT_BACKEND_CASE(test_reentry_timer_outer_frees),
		TT_BACKEND_CASE(test_reentry_timer_kept),
		TT_BACKEND_CASE(test_reentry_signal_inner_frees),
		TT_BACKEND_CASE(test_reentry_signal_outer_frees),
		TT_BACKEND_CASE(test_reentry_signal_kept),
		TT_BACKEND_CASE(test_reentry_signal_deliveries_counted_once),
		TT_BACKEND_CASE(test_reentry_fd_freed_with_parent_timer),
		TT_BACKEND_CASE(test_reentry_fd_too_deep),
	};

	tt_check_library();
	return tt_run_cases("reentry", cases, sizeof(cases) / sizeof(cases[0]));
}

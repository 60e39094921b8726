/*
 * Tests for immediate events, run on every backend.
 *
 * An immediate is a reusable object: scheduling queues it at the end of
 * the context's immediate queue, running it unqueues it (the object stays),
 * and one loop turn runs at most one immediate, before any timer or fd.
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
#include "common/tt_never.h"

/* handlers have fixed signatures and rarely use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"

#ifdef TEVENT_FD_ERROR
#define TT_NEW_API 1
#endif

/* ------------------------------------------------------------------ */
/* one cmocka test per (case, backend)                                 */

/* ------------------------------------------------------------------ */
/* helpers                                                             */

/* Logs the order of handler calls as small integers. */
struct run_log {
	int n;
	int ids[256];
};

struct imm_item {
	struct run_log *log;
	int id;
	struct tevent_context *ev;
	struct tevent_immediate *im;
};

static void log_imm(struct tevent_context *ev,
		    struct tevent_immediate *im,
		    void *private_data)
{
	struct imm_item *it = private_data;

	assert_true(it->log->n < 256);
	it->log->ids[it->log->n++] = it->id;
}

static void log_timer(struct tevent_context *ev,
		      struct tevent_timer *te,
		      struct timeval now,
		      void *private_data)
{
	struct imm_item *it = private_data;

	assert_true(it->log->n < 256);
	it->log->ids[it->log->n++] = it->id;
}

static void assert_log(struct run_log *log, const int *ids, int n)
{
	int i;

	assert_int_equal(log->n, n);
	for (i = 0; i < n; i++) {
		if (log->ids[i] != ids[i]) {
			fail_msg("position %d: %d ran, expected %d",
				 i, log->ids[i], ids[i]);
		}
	}
}

static struct imm_item *new_item(TALLOC_CTX *mem, struct tevent_context *ev,
				 struct run_log *log, int id)
{
	struct imm_item *it = talloc_zero(mem, struct imm_item);

	assert_non_null(it);
	it->log = log;
	it->id = id;
	it->ev = ev;
	it->im = tevent_create_immediate(it);
	assert_non_null(it->im);
	return it;
}

static void schedule_item(struct imm_item *it)
{
	tevent_schedule_immediate(it->im, it->ev, log_imm, it);
}

static int gone_destructor(int **marker)
{
	(**marker)++;
	return 0;
}

static void attach_gone_marker(const void *parent, int *counter)
{
	int **m = talloc(parent, int *);

	assert_non_null(m);
	*m = counter;
	talloc_set_destructor(m, gone_destructor);
}

/* ------------------------------------------------------------------ */

struct basic_state {
	struct tevent_context *ev;
	struct tevent_immediate *im;
	int calls;
};

static void basic_handler(struct tevent_context *ev,
			  struct tevent_immediate *im,
			  void *private_data)
{
	struct basic_state *s = private_data;

	s->calls++;
	assert_ptr_equal(ev, s->ev);
	assert_ptr_equal(im, s->im);
}

static void test_imm_basic_and_reuse(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct basic_state s = { 0 };
	int gone = 0;

	s.ev = ev;
	s.im = tevent_create_immediate(ev);
	assert_non_null(s.im);
	attach_gone_marker(s.im, &gone);

	/* an immediate that was never scheduled does nothing */
	assert_int_equal(tevent_loop_wait(ev), 0);
	assert_int_equal(s.calls, 0);

	tevent_schedule_immediate(s.im, ev, basic_handler, &s);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(s.calls, 1);
	/* unlike a timer, the object survives its run */
	assert_int_equal(gone, 0);

	/* and can be scheduled again, any number of times */
	tevent_schedule_immediate(s.im, ev, basic_handler, &s);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(s.calls, 2);
	tevent_schedule_immediate(s.im, ev, basic_handler, &s);
	assert_int_equal(tevent_loop_wait(ev), 0);
	assert_int_equal(s.calls, 3);
	assert_int_equal(gone, 0);

	talloc_free(s.im);
	assert_int_equal(gone, 1);
	tt_finish(ev);
}

static void test_imm_fifo_one_per_turn(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct run_log log = { 0 };
	static const int want[] = { 1, 2, 3, 4, 5 };
	int i;

	for (i = 1; i <= 5; i++) {
		schedule_item(new_item(ev, ev, &log, i));
	}
	for (i = 0; i < 5; i++) {
		assert_int_equal(tevent_loop_once(ev), 0);
		assert_int_equal(log.n, i + 1);
	}
	assert_log(&log, want, 5);
	tt_finish(ev);
}

/*
 * Scheduling an immediate that is already queued moves it to the end of
 * the queue, with the handler and data of the latest call.
 */
static void second_handler(struct tevent_context *ev,
			   struct tevent_immediate *im,
			   void *private_data)
{
	struct imm_item *it = private_data;

	it->log->ids[it->log->n++] = 100 + it->id;
}

static void test_imm_reschedule_moves_to_end(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct run_log log = { 0 };
	struct imm_item *a, *b, *c;
	static const int want[] = { 2, 3, 101 };

	a = new_item(ev, ev, &log, 1);
	b = new_item(ev, ev, &log, 2);
	c = new_item(ev, ev, &log, 3);
	schedule_item(a);
	schedule_item(b);
	schedule_item(c);
	tevent_schedule_immediate(a->im, ev, second_handler, a);

	assert_int_equal(tevent_loop_wait(ev), 0);
	assert_log(&log, want, 3);
	tt_finish(ev);
}

/*
 * An immediate that schedules itself again from its own handler runs on a
 * later turn, behind the immediates that were already queued.
 */
struct again_state {
	struct run_log *log;
	int runs;
};

static void again_handler(struct tevent_context *ev,
			  struct tevent_immediate *im,
			  void *private_data)
{
	struct again_state *s = private_data;

	s->log->ids[s->log->n++] = 1;
	s->runs++;
	if (s->runs < 3) {
		tevent_schedule_immediate(im, ev, again_handler, s);
	}
}

static void test_imm_reschedule_in_handler(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct run_log log = { 0 };
	struct again_state s = { .log = &log };
	struct tevent_immediate *im = tevent_create_immediate(ev);
	static const int want[] = { 1, 2, 3, 1, 1 };

	assert_non_null(im);
	tevent_schedule_immediate(im, ev, again_handler, &s);
	schedule_item(new_item(ev, ev, &log, 2));
	schedule_item(new_item(ev, ev, &log, 3));

	/* the rescheduled run is not in the same turn */
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(log.n, 1);

	assert_int_equal(tevent_loop_wait(ev), 0);
	assert_log(&log, want, 5);
	tt_finish(ev);
}

/* Immediates run before due timers; a timer's immediate before others. */
struct timer_imm_state {
	struct run_log *log;
	struct imm_item *item;
};

static void timer_schedules_imm(struct tevent_context *ev,
				struct tevent_timer *te,
				struct timeval now,
				void *private_data)
{
	struct timer_imm_state *s = private_data;

	s->log->ids[s->log->n++] = 10;
	schedule_item(s->item);
}

static void test_imm_before_timers(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct run_log log = { 0 };
	struct timer_imm_state ts = { .log = &log };
	struct imm_item *t2 = new_item(ev, ev, &log, 20);
	static const int want[] = { 1, 10, 2, 20 };

	ts.item = new_item(ev, ev, &log, 2);
	assert_non_null(tevent_add_timer(ev, ev, tevent_timeval_zero(),
					 timer_schedules_imm, &ts));
	assert_non_null(tevent_add_timer(ev, ev, tevent_timeval_zero(),
					 log_timer, t2));
	schedule_item(new_item(ev, ev, &log, 1));

	assert_int_equal(tevent_loop_wait(ev), 0);
	assert_log(&log, want, 4);
	tt_finish(ev);
}

static void test_imm_cancel(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct run_log log = { 0 };
	struct imm_item *a = new_item(ev, ev, &log, 1);
	struct imm_item *b = new_item(ev, ev, &log, 2);
	static const int want[] = { 2, 1 };

	/* a NULL handler unschedules */
	tevent_schedule_immediate(a->im, ev, tt_never_imm, NULL);
	tevent_schedule_immediate(a->im, ev, NULL, NULL);
	assert_int_equal(tevent_loop_wait(ev), 0);
	assert_int_equal(log.n, 0);

	/* cancelling one that is not queued is harmless */
	tevent_schedule_immediate(a->im, ev, NULL, NULL);

#ifdef TT_NEW_API
	tevent_schedule_immediate(b->im, ev, tt_never_imm, NULL);
	tevent_reset_immediate(b->im);
	assert_int_equal(tevent_loop_wait(ev), 0);
	assert_int_equal(log.n, 0);
	/* resetting an idle immediate is harmless too */
	tevent_reset_immediate(b->im);
#endif

	/* the objects are still usable */
	schedule_item(b);
	schedule_item(a);
	assert_int_equal(tevent_loop_wait(ev), 0);
	assert_log(&log, want, 2);
	tt_finish(ev);
}

#ifdef TT_NEW_API
/* Counts trace-level messages that announce a cancelled immediate. */
struct cancel_msgs {
	int cancels;
	int with_name;
};

static void count_cancel_msgs(void *context, enum tevent_debug_level level,
			      const char *fmt, va_list ap)
{
	struct cancel_msgs *m = context;
	char text[256];

	vsnprintf(text, sizeof(text), fmt, ap);
	if (level != TEVENT_DEBUG_TRACE ||
	    strstr(text, "Cancel immediate event") == NULL) {
		return;
	}
	m->cancels++;
	if (strstr(text, "tt_never_imm") != NULL) {
		m->with_name++;
	}
}

/*
 * Taking a queued immediate off its queue other than to run it (scheduling
 * it again, tevent_reset_immediate(), freeing it) is announced by a
 * trace-level debug message naming the handler. Running it, or resetting
 * one that is not queued, says nothing of the kind.
 */
static void test_imm_cancel_debug_message(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct run_log log = { 0 };
	struct imm_item *a = new_item(ev, ev, &log, 1);
	struct tevent_immediate *im = tevent_create_immediate(ev);
	struct cancel_msgs m = { 0 };

	assert_non_null(im);
	assert_int_equal(tevent_set_debug(ev, count_cancel_msgs, &m), 0);
	tevent_set_max_debug_level(ev, TEVENT_DEBUG_TRACE);

	tevent_schedule_immediate(im, ev, tt_never_imm, NULL);
	assert_int_equal(m.cancels, 0);
	tevent_schedule_immediate(im, ev, tt_never_imm, NULL);
	assert_int_equal(m.cancels, 1);
	tevent_reset_immediate(im);
	assert_int_equal(m.cancels, 2);
	tevent_reset_immediate(im);
	assert_int_equal(m.cancels, 2);
	tevent_schedule_immediate(im, ev, tt_never_imm, NULL);
	talloc_free(im);
	assert_int_equal(m.cancels, 3);
	assert_int_equal(m.with_name, 3);

	/* running one is not a cancel */
	schedule_item(a);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(log.n, 1);
	assert_int_equal(m.cancels, 3);

	tevent_set_debug(ev, NULL, NULL);
	tt_finish(ev);
}
#endif

/* Scheduling on another context moves the immediate there. */
static void test_imm_move_between_contexts(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct tevent_context *ev2 = tevent_context_init(ev);
	struct run_log log = { 0 };
	struct imm_item *a = new_item(NULL, ev, &log, 1);
	static const int want[] = { 1 };

	assert_non_null(ev2);
	schedule_item(a);
	a->ev = ev2;
	schedule_item(a);

	assert_int_equal(tevent_loop_wait(ev), 0);
	assert_int_equal(log.n, 0);
	assert_int_equal(tevent_loop_wait(ev2), 0);
	assert_log(&log, want, 1);

	talloc_free(a);
	tt_finish(ev);
}

static void test_imm_free_pending(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct run_log log = { 0 };
	TALLOC_CTX *owner = talloc_new(ev);
	struct imm_item *a = new_item(ev, ev, &log, 1);
	struct imm_item *b = new_item(owner, ev, &log, 2);
	struct imm_item *c = new_item(ev, ev, &log, 3);
	static const int want[] = { 3 };

	schedule_item(a);
	schedule_item(b);
	schedule_item(c);
	assert_int_equal(talloc_free(a->im), 0);
	assert_int_equal(talloc_free(owner), 0);

	assert_int_equal(tevent_loop_wait(ev), 0);
	assert_log(&log, want, 1);
	tt_finish(ev);
}

struct self_free_state {
	int calls;
	int free_ret;
	int gone_in_handler;
	int gone;
};

static void self_free_handler(struct tevent_context *ev,
			      struct tevent_immediate *im,
			      void *private_data)
{
	struct self_free_state *s = private_data;

	s->calls++;
	/* deferred until the handler returns, as for every event kind */
	s->free_ret = talloc_free(im);
	s->gone_in_handler = s->gone;
}

static void test_imm_free_self_in_handler(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct self_free_state s = { 0 };
	struct tevent_immediate *im = tevent_create_immediate(NULL);

	assert_non_null(im);
	attach_gone_marker(im, &s.gone);
	tevent_schedule_immediate(im, ev, self_free_handler, &s);

	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.free_ret, -1);
	assert_int_equal(s.gone_in_handler, 0);
	assert_int_equal(s.gone, 1);
	assert_int_equal(tevent_loop_wait(ev), 0);
	assert_int_equal(s.calls, 1);
	tt_finish(ev);
}

/*
 * Freed from its own handler (the free waits for the handler's end) and
 * then scheduled again by the same handler: tevent_abort() with "tevent_
 * immediate use after free".  With an abort function that returns, the
 * scheduling goes ahead and takes the free back, as upstream (0.14.1 and
 * 0.17.1): the new handler runs in a later turn, and the immediate lives
 * until it is freed again.
 */
static void handler_after_revival(struct tevent_context *ev,
			   struct tevent_immediate *im, void *private_data)
{
	struct self_free_state *s = private_data;

	s->calls += 10;
}

static void free_then_schedule(struct tevent_context *ev,
			       struct tevent_immediate *im, void *private_data)
{
	struct self_free_state *s = private_data;

	s->calls++;
	s->free_ret = talloc_free(im);
	tevent_schedule_immediate(im, ev, handler_after_revival, s);
	s->gone_in_handler = s->gone;
}

static void test_imm_schedule_after_free_in_handler(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct self_free_state s = { 0 };
	struct tevent_immediate *im = tevent_create_immediate(NULL);

	assert_non_null(im);
	attach_gone_marker(im, &s.gone);
	tt_record_aborts();
	tevent_schedule_immediate(im, ev, free_then_schedule, &s);

	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.free_ret, -1);
	assert_int_equal(tt_aborts, 1);
	assert_string_equal(tt_abort_reason, "tevent_immediate use after free");
	assert_int_equal(s.gone_in_handler, 0);
	assert_int_equal(s.gone, 0);

	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(s.calls, 11);
	assert_int_equal(s.gone, 0);
	assert_int_equal(talloc_free(im), 0);
	assert_int_equal(s.gone, 1);
	assert_int_equal(tt_aborts, 1);
	tevent_set_abort_fn(NULL);
	tt_finish(ev);
}

/*
 * Scheduling arms the immediate's destructor again, as upstream: code that
 * cleared it (talloc_set_destructor(im, NULL)) on an idle immediate still
 * gets the deferred free from inside the handler.
 */
static void test_imm_schedule_rearms_destructor(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct self_free_state s = { 0 };
	struct tevent_immediate *im = tevent_create_immediate(NULL);

	assert_non_null(im);
	attach_gone_marker(im, &s.gone);
	talloc_set_destructor(im, NULL);
	tevent_schedule_immediate(im, ev, self_free_handler, &s);

	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.free_ret, -1);
	assert_int_equal(s.gone_in_handler, 0);
	assert_int_equal(s.gone, 1);
	tt_finish(ev);
}

struct free_others_state {
	struct tevent_immediate *next_im;
	struct tevent_timer *te;
	struct tevent_fd *fde;
	struct tevent_signal *se;
	int calls;
};

static void noop_imm(struct tevent_context *ev,
		     struct tevent_immediate *im,
		     void *private_data)
{
}

static void free_others_handler(struct tevent_context *ev,
				struct tevent_immediate *im,
				void *private_data)
{
	struct free_others_state *s = private_data;

	s->calls++;
	/* the next queued immediate */
	assert_int_equal(talloc_free(s->next_im), 0);
	/* a due timer */
	assert_int_equal(talloc_free(s->te), 0);
	/* a ready fd event */
	assert_int_equal(talloc_free(s->fde), 0);
	/* a signal event whose signal is recorded already */
	assert_int_equal(kill(getpid(), SIGUSR2), 0);
	assert_int_equal(talloc_free(s->se), 0);
}

static void test_imm_free_others_in_handler(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct free_others_state s = { 0 };
	struct tevent_immediate *im = tevent_create_immediate(ev);
	struct tevent_signal *flush;
	int sp[2];
	int stale = 0;
	int i;

	assert_non_null(im);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	s.next_im = tevent_create_immediate(ev);
	s.te = tevent_add_timer(ev, ev, tevent_timeval_zero(),
				tt_never_timer, NULL);
	s.fde = tevent_add_fd(ev, ev, sp[0], TEVENT_FD_WRITE, tt_never_fd,
			      NULL);
	s.se = tevent_add_signal(ev, ev, SIGUSR2, 0, tt_never_signal, NULL);
	assert_non_null(s.next_im);
	assert_non_null(s.te);
	assert_non_null(s.fde);
	assert_non_null(s.se);
	tevent_schedule_immediate(im, ev, free_others_handler, &s);
	tevent_schedule_immediate(s.next_im, ev, tt_never_imm, NULL);

	assert_int_equal(tevent_loop_wait(ev), 0);
	assert_int_equal(s.calls, 1);

	/* see test_fd.c: collect the SIGUSR2 left recorded above */
	flush = tevent_add_signal(ev, ev, SIGUSR2, 0, tt_count_signal, &stale);
	assert_non_null(flush);
	for (i = 0; i < 3; i++) {
		struct tevent_immediate *tick = tevent_create_immediate(ev);
		tevent_schedule_immediate(tick, ev, noop_imm, NULL);
		assert_int_equal(tevent_loop_once(ev), 0);
	}
	assert_true(stale <= 1);
	talloc_free(flush);

	tt_finish(ev);
	close(sp[0]);
	close(sp[1]);
}

/* A long chain of self-rescheduling immediates under tevent_loop_wait. */
struct chain_state {
	int runs;
};

static void chain_handler(struct tevent_context *ev,
			  struct tevent_immediate *im,
			  void *private_data)
{
	struct chain_state *c = private_data;

	c->runs++;
	if (c->runs < 10000) {
		tevent_schedule_immediate(im, ev, chain_handler, c);
	}
}

static void test_imm_chain(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct chain_state c = { 0 };
	struct tevent_immediate *im = tevent_create_immediate(ev);

	assert_non_null(im);
	tevent_schedule_immediate(im, ev, chain_handler, &c);
	assert_int_equal(tevent_loop_wait(ev), 0);
	assert_int_equal(c.runs, 10000);
	tt_finish(ev);
}

/*
 * Once its context is freed an immediate is inert; it can be freed, or
 * scheduled on a different context.
 */
static void test_imm_context_freed(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct tevent_context *ev2;
	struct run_log log = { 0 };
	struct imm_item *a = new_item(NULL, ev, &log, 1);
	struct imm_item *b = new_item(NULL, ev, &log, 2);
	static const int want[] = { 1 };

	schedule_item(a);
	schedule_item(b);
	tt_finish(ev);

	ev2 = tt_backend_ev(state);
	a->ev = ev2;
	schedule_item(a);
	assert_int_equal(tevent_loop_wait(ev2), 0);
	assert_log(&log, want, 1);

	assert_int_equal(talloc_free(b), 0);
	assert_int_equal(talloc_free(a), 0);
	tt_finish(ev2);
}

int main(void)
{
	static const struct tt_case cases[] = {
		TT_BACKEND_CASE(test_imm_basic_and_reuse),
		TT_BACKEND_CASE(test_imm_fifo_one_per_turn),
		TT_BACKEND_CASE(test_imm_reschedule_moves_to_end),
		TT_BACKEND_CASE(test_imm_reschedule_in_handler),
		TT_BACKEND_CASE(test_imm_before_timers),
		TT_BACKEND_CASE(test_imm_cancel),
#ifdef TT_NEW_API
		TT_BACKEND_CASE(test_imm_cancel_debug_message),
#endif
		TT_BACKEND_CASE(test_imm_move_between_contexts),
		TT_BACKEND_CASE(test_imm_free_pending),
		TT_BACKEND_CASE(test_imm_free_self_in_handler),
		TT_BACKEND_CASE(test_imm_schedule_after_free_in_handler),
		TT_BACKEND_CASE(test_imm_schedule_rearms_destructor),
		TT_BACKEND_CASE(test_imm_free_others_in_handler),
		TT_BACKEND_CASE(test_imm_chain),
		TT_BACKEND_CASE(test_imm_context_freed),
	};

	tt_check_library();
	return tt_run_cases("immediate", cases, sizeof(cases) / sizeof(cases[0]));
}

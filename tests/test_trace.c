/*
 * Tests for the trace callbacks: the loop trace points and the per event
 * ATTACH / BEFORE_HANDLER / DETACH points of fd, timer, immediate and
 * signal events, plus getting and setting every callback.  Run on every
 * backend.
 *
 * Everything is written to one log.  Per event expectations are checked
 * on the log filtered by the event's pointer, written as a string:
 *   A = ATTACH, B = BEFORE_HANDLER, D = DETACH,
 *   H = the handler starts, h = the handler returns.
 * So "ABHhD" is a timer that was added, ran, and detached after its
 * handler; "ABHDh" is an event freed from inside its own handler.
 */

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
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>

#include "common/tt.h"

/* handlers have fixed signatures and rarely use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"

/* tevent_loop_allow_nesting() is deprecated API, tested on purpose */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

/* ------------------------------------------------------------------ */
/* one cmocka test per (case, backend)                                 */

/* ------------------------------------------------------------------ */
/* the log                                                             */

enum entry_kind { K_POINT, K_FD, K_TIMER, K_IMM, K_SIGNAL, K_HANDLER };

struct entry {
	enum entry_kind kind;
	const void *ptr;
	char code;
};

#define LOG_MAX 4096

static struct entry tlog[LOG_MAX];
static int tlog_n;

static void log_entry(enum entry_kind kind, const void *ptr, char code)
{
	assert_true(tlog_n < LOG_MAX);
	tlog[tlog_n].kind = kind;
	tlog[tlog_n].ptr = ptr;
	tlog[tlog_n].code = code;
	tlog_n++;
}

static char event_code(enum tevent_event_trace_point p)
{
	switch (p) {
	case TEVENT_EVENT_TRACE_ATTACH:
		return 'A';
	case TEVENT_EVENT_TRACE_DETACH:
		return 'D';
	case TEVENT_EVENT_TRACE_BEFORE_HANDLER:
		return 'B';
	}
	return '?';
}

static char point_code(enum tevent_trace_point p)
{
	switch (p) {
	case TEVENT_TRACE_BEFORE_WAIT:
		return 'w';
	case TEVENT_TRACE_AFTER_WAIT:
		return 'W';
	case TEVENT_TRACE_BEFORE_LOOP_ONCE:
		return '(';
	case TEVENT_TRACE_AFTER_LOOP_ONCE:
		return ')';
	}
	return '?';
}

/* What happened to one event, as a string of codes. */
static const char *history(const void *ptr)
{
	static char buf[LOG_MAX + 1];
	int i, n = 0;

	for (i = 0; i < tlog_n; i++) {
		if (tlog[i].kind != K_POINT && tlog[i].ptr == ptr) {
			buf[n++] = tlog[i].code;
		}
	}
	buf[n] = '\0';
	return buf;
}

/* Loop trace points and handler starts/ends, from entry "from" on. */
static const char *points_since(int from)
{
	static char buf[LOG_MAX + 1];
	int i, n = 0;

	for (i = from; i < tlog_n; i++) {
		if (tlog[i].kind == K_POINT ||
		    tlog[i].kind == K_HANDLER) {
			buf[n++] = tlog[i].code;
		}
	}
	buf[n] = '\0';
	return buf;
}

static void trace_point_cb(enum tevent_trace_point p, void *private_data)
{
	int *calls = private_data;

	if (calls != NULL) {
		(*calls)++;
	}
	log_entry(K_POINT, NULL, point_code(p));
}

/*
 * The per event trace callbacks log every point.  Given a uint64_t * as
 * private data they also hand each event the next tag on ATTACH.
 */
static void trace_fd_cb(struct tevent_fd *fde,
			enum tevent_event_trace_point p,
			void *private_data)
{
	uint64_t *next_tag = private_data;

	if (next_tag != NULL && p == TEVENT_EVENT_TRACE_ATTACH) {
		tevent_fd_set_tag(fde, (*next_tag)++);
	}
	log_entry(K_FD, fde, event_code(p));
}

static void trace_timer_cb(struct tevent_timer *te,
			   enum tevent_event_trace_point p,
			   void *private_data)
{
	uint64_t *next_tag = private_data;

	if (next_tag != NULL && p == TEVENT_EVENT_TRACE_ATTACH) {
		tevent_timer_set_tag(te, (*next_tag)++);
	}
	log_entry(K_TIMER, te, event_code(p));
}

static void trace_imm_cb(struct tevent_immediate *im,
			 enum tevent_event_trace_point p,
			 void *private_data)
{
	uint64_t *next_tag = private_data;

	if (next_tag != NULL && p == TEVENT_EVENT_TRACE_ATTACH) {
		tevent_immediate_set_tag(im, (*next_tag)++);
	}
	log_entry(K_IMM, im, event_code(p));
}

static void trace_signal_cb(struct tevent_signal *se,
			    enum tevent_event_trace_point p,
			    void *private_data)
{
	uint64_t *next_tag = private_data;

	if (next_tag != NULL && p == TEVENT_EVENT_TRACE_ATTACH) {
		tevent_signal_set_tag(se, (*next_tag)++);
	}
	log_entry(K_SIGNAL, se, event_code(p));
}

static void open_pair(int sp[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
}

static void close_pair(int sp[2])
{
	close(sp[0]);
	close(sp[1]);
}

/* A context on the case's backend, with an empty trace log. */
static struct tevent_context *backend_ev(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);

	tlog_n = 0;
	return ev;
}

static void trace_all(struct tevent_context *ev)
{
	tevent_set_trace_fd_callback(ev, trace_fd_cb, NULL);
	tevent_set_trace_timer_callback(ev, trace_timer_cb, NULL);
	tevent_set_trace_immediate_callback(ev, trace_imm_cb, NULL);
	tevent_set_trace_signal_callback(ev, trace_signal_cb, NULL);
}

/* ------------------------------------------------------------------ */
/* handlers that log their start and end                               */

struct hstate {
	bool free_self;
	bool reschedule;
	int free_ret;
	int runs;
	uint64_t tag_seen;
};

static void fd_handler(struct tevent_context *ev, struct tevent_fd *fde,
		       uint16_t flags, void *private_data)
{
	struct hstate *h = private_data;

	log_entry(K_HANDLER, fde, 'H');
	h->runs++;
	h->tag_seen = tevent_fd_get_tag(fde);
	if (h->free_self) {
		h->free_ret = talloc_free(fde);
	} else {
		tevent_fd_set_flags(fde, 0);
	}
	log_entry(K_HANDLER, fde, 'h');
}

static void timer_handler(struct tevent_context *ev, struct tevent_timer *te,
			  struct timeval now, void *private_data)
{
	struct hstate *h = private_data;

	log_entry(K_HANDLER, te, 'H');
	h->runs++;
	h->tag_seen = tevent_timer_get_tag(te);
	if (h->free_self) {
		h->free_ret = talloc_free(te);
	}
	log_entry(K_HANDLER, te, 'h');
}

static void imm_handler(struct tevent_context *ev, struct tevent_immediate *im,
			void *private_data)
{
	struct hstate *h = private_data;

	log_entry(K_HANDLER, im, 'H');
	h->runs++;
	h->tag_seen = tevent_immediate_get_tag(im);
	if (h->free_self) {
		h->free_ret = talloc_free(im);
	} else if (h->reschedule) {
		h->reschedule = false;
		tevent_schedule_immediate(im, ev, imm_handler, h);
	}
	log_entry(K_HANDLER, im, 'h');
}

static void signal_handler(struct tevent_context *ev, struct tevent_signal *se,
			   int signum, int count, void *siginfo,
			   void *private_data)
{
	struct hstate *h = private_data;

	log_entry(K_HANDLER, se, 'H');
	h->runs++;
	h->tag_seen = tevent_signal_get_tag(se);
	if (h->free_self) {
		h->free_ret = talloc_free(se);
	}
	log_entry(K_HANDLER, se, 'h');
}

/* ------------------------------------------------------------------ */
/* getters and setters                                                 */

/* Every getter reports no callback and no private data. */
static void assert_no_trace_callbacks(struct tevent_context *ev)
{
	tevent_trace_callback_t pcb = NULL;
	tevent_trace_fd_callback_t fcb = NULL;
	tevent_trace_timer_callback_t tcb = NULL;
	tevent_trace_immediate_callback_t icb = NULL;
	tevent_trace_signal_callback_t scb = NULL;
	void *pvt;

	pvt = (void *)1;
	tevent_get_trace_callback(ev, &pcb, &pvt);
	assert_null(pcb);
	assert_null(pvt);
	pvt = (void *)1;
	tevent_get_trace_fd_callback(ev, &fcb, &pvt);
	assert_null(fcb);
	assert_null(pvt);
	pvt = (void *)1;
	tevent_get_trace_timer_callback(ev, &tcb, &pvt);
	assert_null(tcb);
	assert_null(pvt);
	pvt = (void *)1;
	tevent_get_trace_immediate_callback(ev, &icb, &pvt);
	assert_null(icb);
	assert_null(pvt);
	pvt = (void *)1;
	tevent_get_trace_signal_callback(ev, &scb, &pvt);
	assert_null(scb);
	assert_null(pvt);
}

static void test_trace_get_set(void **state)
{
	struct tevent_context *ev = backend_ev(state);
	tevent_trace_callback_t pcb = NULL;
	tevent_trace_fd_callback_t fcb = NULL;
	tevent_trace_timer_callback_t tcb = NULL;
	tevent_trace_immediate_callback_t icb = NULL;
	tevent_trace_signal_callback_t scb = NULL;
	void *pvt = NULL;
	uint64_t marker;	/* only its address is used */

	/* nothing installed at first */
	assert_no_trace_callbacks(ev);

	/* the getter's private data argument is really a void ** */
	tevent_set_trace_callback(ev, trace_point_cb, &marker);
	tevent_get_trace_callback(ev, &pcb, &pvt);
	assert_ptr_equal(pcb, trace_point_cb);
	assert_ptr_equal(pvt, &marker);

	tevent_set_trace_fd_callback(ev, trace_fd_cb, &marker);
	tevent_get_trace_fd_callback(ev, &fcb, &pvt);
	assert_ptr_equal(fcb, trace_fd_cb);
	assert_ptr_equal(pvt, &marker);

	tevent_set_trace_timer_callback(ev, trace_timer_cb, &marker);
	tevent_get_trace_timer_callback(ev, &tcb, &pvt);
	assert_ptr_equal(tcb, trace_timer_cb);
	assert_ptr_equal(pvt, &marker);

	tevent_set_trace_immediate_callback(ev, trace_imm_cb, &marker);
	tevent_get_trace_immediate_callback(ev, &icb, &pvt);
	assert_ptr_equal(icb, trace_imm_cb);
	assert_ptr_equal(pvt, &marker);

	tevent_set_trace_signal_callback(ev, trace_signal_cb, &marker);
	tevent_get_trace_signal_callback(ev, &scb, &pvt);
	assert_ptr_equal(scb, trace_signal_cb);
	assert_ptr_equal(pvt, &marker);

	/* setting NULL removes */
	tevent_set_trace_callback(ev, NULL, NULL);
	tevent_set_trace_fd_callback(ev, NULL, NULL);
	tevent_set_trace_timer_callback(ev, NULL, NULL);
	tevent_set_trace_immediate_callback(ev, NULL, NULL);
	tevent_set_trace_signal_callback(ev, NULL, NULL);
	assert_no_trace_callbacks(ev);

	tt_finish(ev);
}

/* ------------------------------------------------------------------ */
/* loop trace points                                                   */

/*
 * Turns that find an immediate, a due timer or a recorded signal do not
 * wait: only BEFORE/AFTER_LOOP_ONCE surround the handler.
 */
static void test_trace_points_no_wait(void **state)
{
	struct tevent_context *ev = backend_ev(state);
	struct hstate hi = { 0 }, ht = { 0 }, hs = { 0 };
	struct tevent_immediate *im = tevent_create_immediate(ev);
	int calls = 0;
	int from;

	assert_non_null(im);
	tevent_set_trace_callback(ev, trace_point_cb, &calls);

	from = tlog_n;
	tevent_schedule_immediate(im, ev, imm_handler, &hi);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_string_equal(points_since(from), "(Hh)");
	assert_int_equal(calls, 2);

	from = tlog_n;
	assert_non_null(tevent_add_timer(ev, ev, tevent_timeval_zero(),
					 timer_handler, &ht));
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_string_equal(points_since(from), "(Hh)");

	from = tlog_n;
	assert_non_null(tevent_add_timer(ev, ev, tevent_timeval_current(),
					 timer_handler, &ht));
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_string_equal(points_since(from), "(Hh)");

	assert_non_null(tevent_add_signal(ev, ev, SIGUSR1, 0,
					  signal_handler, &hs));
	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	from = tlog_n;
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_string_equal(points_since(from), "(Hh)");

	/* removing the callback stops the points */
	tevent_set_trace_callback(ev, NULL, NULL);
	from = tlog_n;
	tevent_schedule_immediate(im, ev, imm_handler, &hi);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_string_equal(points_since(from), "Hh");
	tt_finish(ev);
}

/* An fd turn waits in the backend: BEFORE_WAIT and AFTER_WAIT inside. */
static void test_trace_points_fd_turn(void **state)
{
	struct tevent_context *ev = backend_ev(state);
	struct hstate h = { 0 };
	int sp[2];
	int from = 0;
	int turns = 0;

	open_pair(sp);
	assert_non_null(tevent_add_fd(ev, ev, sp[0], TEVENT_FD_WRITE,
				      fd_handler, &h));
	tevent_set_trace_callback(ev, trace_point_cb, NULL);

	/* a turn may go to library internals first; look at the last one */
	while (h.runs == 0) {
		from = tlog_n;
		assert_int_equal(tevent_loop_once(ev), 0);
		assert_true(++turns < 10);
	}
	assert_string_equal(points_since(from), "(wWHh)");
	tt_finish(ev);
	close_pair(sp);
}

/* A timer that is not due yet: the turn waits, then runs it (or, should
 * the wait end early, a later turn does). */
static void test_trace_points_future_timer(void **state)
{
	struct tevent_context *ev = backend_ev(state);
	struct hstate h = { 0 };
	int from = 0;
	int turns = 0;
	const char *last;

	tevent_set_trace_callback(ev, trace_point_cb, NULL);
	assert_non_null(tevent_add_timer(ev, ev,
					 tevent_timeval_current_ofs(0, 5000),
					 timer_handler, &h));
	while (h.runs == 0) {
		from = tlog_n;
		assert_int_equal(tevent_loop_once(ev), 0);
		assert_true(++turns < 1000);
	}
	last = points_since(from);
	if (strcmp(last, "(wWHh)") != 0 && strcmp(last, "(Hh)") != 0) {
		fail_msg("unexpected points: %s", last);
	}
	tt_finish(ev);
}

/* Every turn of tevent_loop_wait and tevent_loop_until is bracketed. */
static bool until_three(void *private_data)
{
	struct hstate *h = private_data;

	return h->runs >= 3;
}

static void check_brackets(const char *s)
{
	int depth = 0;
	bool waiting = false;
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		switch (s[i]) {
		case '(':
			depth++;
			break;
		case ')':
			assert_false(waiting);
			depth--;
			assert_true(depth >= 0);
			break;
		case 'w':
			assert_true(depth > 0);
			assert_false(waiting);
			waiting = true;
			break;
		case 'W':
			assert_true(waiting);
			waiting = false;
			break;
		default:
			/* handlers only run inside a turn, never in a wait */
			assert_true(depth > 0);
			assert_false(waiting);
			break;
		}
	}
	assert_int_equal(depth, 0);
}

static void test_trace_points_wait_and_until(void **state)
{
	struct tevent_context *ev = backend_ev(state);
	struct hstate ht = { 0 }, hu = { 0 };
	struct tevent_immediate *im = tevent_create_immediate(ev);
	int sp[2];
	int from;
	int i;

	assert_non_null(im);
	open_pair(sp);
	tevent_set_trace_callback(ev, trace_point_cb, NULL);

	from = tlog_n;
	for (i = 0; i < 3; i++) {
		assert_non_null(tevent_add_timer(
			ev, ev, tevent_timeval_current_ofs(0, 1000 * i),
			timer_handler, &ht));
	}
	assert_non_null(tevent_add_fd(ev, ev, sp[0], TEVENT_FD_WRITE,
				      fd_handler, &(struct hstate){
					      .free_self = true }));
	assert_int_equal(tevent_loop_wait(ev), 0);
	assert_int_equal(ht.runs, 3);
	check_brackets(points_since(from));
	/* three timers and the fd: at least four turns */
	assert_true(strlen(points_since(from)) >= 16);

	hu.reschedule = false;
	from = tlog_n;
	tevent_schedule_immediate(im, ev, imm_handler, &hu);
	tevent_schedule_immediate(tevent_create_immediate(ev), ev,
				  imm_handler, &hu);
	tevent_schedule_immediate(tevent_create_immediate(ev), ev,
				  imm_handler, &hu);
	assert_int_equal(tevent_loop_until(ev, until_three, &hu), 0);
	assert_string_equal(points_since(from), "(Hh)(Hh)(Hh)");

	tt_finish(ev);
	close_pair(sp);
}

/* A nested turn's points appear inside the outer turn. */
struct nest_state {
	struct hstate inner;
	struct tevent_immediate *im;
};

static void nest_timer(struct tevent_context *ev, struct tevent_timer *te,
		       struct timeval now, void *private_data)
{
	struct nest_state *n = private_data;

	log_entry(K_HANDLER, te, 'N');
	tevent_schedule_immediate(n->im, ev, imm_handler, &n->inner);
	assert_int_equal(tevent_loop_once(ev), 0);
	log_entry(K_HANDLER, te, 'n');
}

static void test_trace_points_nested(void **state)
{
	struct tevent_context *ev = backend_ev(state);
	struct nest_state n = { .im = NULL };
	int from;

	n.im = tevent_create_immediate(ev);
	assert_non_null(n.im);
	tevent_loop_allow_nesting(ev);
	tevent_set_trace_callback(ev, trace_point_cb, NULL);
	assert_non_null(tevent_add_timer(ev, ev, tevent_timeval_zero(),
					 nest_timer, &n));
	from = tlog_n;
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_string_equal(points_since(from), "(N(Hh)n)");
	tt_finish(ev);
}

/* ------------------------------------------------------------------ */
/* fd events                                                           */

static void test_trace_fd(void **state)
{
	struct tevent_context *ev = backend_ev(state);
	struct hstate h = { 0 };
	struct tevent_fd *fde;
	int sp[2];
	int from = 0;

	open_pair(sp);
	trace_all(ev);
	tevent_set_trace_callback(ev, trace_point_cb, NULL);

	fde = tevent_add_fd(ev, ev, sp[0], TEVENT_FD_WRITE, fd_handler, &h);
	assert_non_null(fde);
	assert_string_equal(history(fde), "A");

	/* flag changes are not traced */
	tevent_fd_set_flags(fde, TEVENT_FD_READ | TEVENT_FD_WRITE);
	tevent_fd_set_flags(fde, TEVENT_FD_WRITE);
	assert_string_equal(history(fde), "A");

	while (h.runs == 0) {
		from = tlog_n;
		assert_int_equal(tevent_loop_once(ev), 0);
	}
	assert_string_equal(history(fde), "ABHh");
	/* BEFORE_HANDLER comes right before the handler, after the wait */
	{
		int i, seen_after_wait = 0;

		for (i = from; i < tlog_n; i++) {
			if (tlog[i].kind == K_POINT && tlog[i].code == 'W') {
				seen_after_wait = 1;
			}
			if (tlog[i].ptr == fde && tlog[i].code == 'B') {
				assert_true(seen_after_wait);
				assert_true(i + 1 < tlog_n);
				assert_int_equal(tlog[i + 1].code, 'H');
			}
		}
	}

	assert_int_equal(talloc_free(fde), 0);
	assert_string_equal(history(fde), "ABHhD");
	tt_finish(ev);
	close_pair(sp);
}

static void test_trace_fd_free_in_handler(void **state)
{
	struct tevent_context *ev = backend_ev(state);
	struct hstate h = { .free_self = true };
	struct tevent_fd *fde;
	int sp[2];

	open_pair(sp);
	trace_all(ev);
	fde = tevent_add_fd(ev, ev, sp[0], TEVENT_FD_WRITE, fd_handler, &h);
	assert_non_null(fde);
	while (h.runs == 0) {
		assert_int_equal(tevent_loop_once(ev), 0);
	}
	/* detached inside the handler, not again afterwards */
	assert_string_equal(history(fde), "ABHDh");
	assert_int_equal(h.free_ret, -1);
	tt_finish(ev);
	assert_string_equal(history(fde), "ABHDh");
	close_pair(sp);
}

static void test_trace_fd_free_and_reinit(void **state)
{
	struct tevent_context *ev = backend_ev(state);
	struct hstate h = { 0 };
	struct tevent_fd *a, *b;
	int sp[2];

	open_pair(sp);
	trace_all(ev);
	a = tevent_add_fd(ev, ev, sp[0], TEVENT_FD_READ, fd_handler, &h);
	b = tevent_add_fd(ev, ev, sp[1], TEVENT_FD_READ, fd_handler, &h);
	assert_non_null(a);
	assert_non_null(b);

	/* freed without ever running */
	talloc_free(a);
	assert_string_equal(history(a), "AD");

	/* tevent_re_initialise() detaches what was registered */
	assert_int_equal(tevent_re_initialise(ev), 0);
	assert_string_equal(history(b), "AD");
	/* and the event, now inert, is freed quietly */
	talloc_free(b);
	assert_string_equal(history(b), "AD");
	assert_int_equal(h.runs, 0);
	tt_finish(ev);
	close_pair(sp);
}

/* ------------------------------------------------------------------ */
/* timers                                                              */

static void test_trace_timer(void **state)
{
	struct tevent_context *ev = backend_ev(state);
	struct hstate h = { 0 };
	struct tevent_timer *te;

	trace_all(ev);
	te = tevent_add_timer(ev, ev, tevent_timeval_current(),
			      timer_handler, &h);
	assert_non_null(te);
	assert_string_equal(history(te), "A");

	/* moving a timer detaches and attaches it again */
	tevent_update_timer(te, tevent_timeval_current());
	assert_string_equal(history(te), "ADA");

	assert_int_equal(tevent_loop_once(ev), 0);
	/* timers free themselves after the handler: DETACH comes last */
	assert_string_equal(history(te), "ADABHhD");
	tt_finish(ev);
}

static void test_trace_timer_free(void **state)
{
	struct tevent_context *ev = backend_ev(state);
	struct hstate h = { 0 }, hf = { .free_self = true };
	struct tevent_timer *a, *b, *c;

	trace_all(ev);
	a = tevent_add_timer(ev, ev, tevent_timeval_zero(), timer_handler, &h);
	b = tevent_add_timer(ev, ev, tevent_timeval_zero(), timer_handler,
			     &hf);
	c = tevent_add_timer(ev, ev, tevent_timeval_current_ofs(100, 0),
			     timer_handler, &h);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);

	talloc_free(a);
	assert_string_equal(history(a), "AD");

	assert_int_equal(tevent_loop_once(ev), 0);
	assert_string_equal(history(b), "ABHDh");
	assert_int_equal(hf.free_ret, -1);

	assert_int_equal(tevent_re_initialise(ev), 0);
	assert_string_equal(history(c), "AD");
	talloc_free(c);
	assert_string_equal(history(c), "AD");
	assert_int_equal(h.runs, 0);
	tt_finish(ev);
}

/* ------------------------------------------------------------------ */
/* immediates                                                          */

static void test_trace_immediate(void **state)
{
	struct tevent_context *ev = backend_ev(state);
	struct hstate h = { 0 };
	struct tevent_immediate *im = tevent_create_immediate(ev);

	assert_non_null(im);
	trace_all(ev);
	/* creating is not attaching */
	assert_string_equal(history(im), "");

	tevent_schedule_immediate(im, ev, imm_handler, &h);
	assert_string_equal(history(im), "A");

	/* rescheduling a queued one: detach, attach */
	tevent_schedule_immediate(im, ev, imm_handler, &h);
	assert_string_equal(history(im), "ADA");

	/* after running it is detached (the object stays) */
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_string_equal(history(im), "ADABHhD");

	/* cancelling */
	tlog_n = 0;
	tevent_schedule_immediate(im, ev, imm_handler, &h);
	tevent_schedule_immediate(im, ev, NULL, NULL);
	assert_string_equal(history(im), "AD");
	/* cancelling again is silent */
	tevent_schedule_immediate(im, ev, NULL, NULL);
	assert_string_equal(history(im), "AD");

	/* freeing a queued one detaches it, an idle one is silent */
	tlog_n = 0;
	tevent_schedule_immediate(im, ev, imm_handler, &h);
	talloc_free(im);
	assert_string_equal(history(im), "AD");
	im = tevent_create_immediate(ev);
	assert_non_null(im);
	tlog_n = 0;
	talloc_free(im);
	assert_string_equal(history(im), "");

	assert_int_equal(h.runs, 1);
	tt_finish(ev);
}

/*
 * Rescheduled from its own handler: the detach of the finished run and the
 * new attach both happen inside the handler, and nothing is reported when
 * the handler returns.
 */
static void test_trace_immediate_reschedule_in_handler(void **state)
{
	struct tevent_context *ev = backend_ev(state);
	struct hstate h = { .reschedule = true };
	struct tevent_immediate *im = tevent_create_immediate(ev);

	assert_non_null(im);
	trace_all(ev);
	tevent_schedule_immediate(im, ev, imm_handler, &h);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_string_equal(history(im), "ABHDAh");
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_string_equal(history(im), "ABHDAhBHhD");
	assert_int_equal(h.runs, 2);
	tt_finish(ev);
}

/*
 * Rescheduled from its own handler onto another context that nobody
 * traces: the first context still hears the DETACH of the finished run,
 * inside the handler, and nothing of the run on the other context.
 */
struct move_state {
	struct tevent_context *to;
	int runs;
};

static void move_handler(struct tevent_context *ev,
			 struct tevent_immediate *im, void *private_data)
{
	struct move_state *m = private_data;

	log_entry(K_HANDLER, im, 'H');
	m->runs++;
	if (ev != m->to) {
		tevent_schedule_immediate(im, m->to, move_handler, m);
	}
	log_entry(K_HANDLER, im, 'h');
}

static void test_trace_immediate_moved_in_handler(void **state)
{
	struct tevent_context *ev = backend_ev(state);
	struct tevent_context *other = tevent_context_init(ev);
	struct move_state m = { .to = other };
	struct tevent_immediate *im = tevent_create_immediate(ev);

	assert_non_null(other);
	assert_non_null(im);
	trace_all(ev);
	tevent_schedule_immediate(im, ev, move_handler, &m);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_string_equal(history(im), "ABHDh");
	assert_int_equal(tevent_loop_once(other), 0);
	assert_int_equal(m.runs, 2);
	assert_string_equal(history(im), "ABHDhHh");
	talloc_free(im);
	talloc_free(other);
	tt_finish(ev);
}

static void test_trace_immediate_free_and_reinit(void **state)
{
	struct tevent_context *ev = backend_ev(state);
	struct hstate hf = { .free_self = true }, h = { 0 };
	struct tevent_immediate *a = tevent_create_immediate(ev);
	struct tevent_immediate *b = tevent_create_immediate(NULL);

	assert_non_null(a);
	assert_non_null(b);
	trace_all(ev);
	tevent_schedule_immediate(a, ev, imm_handler, &hf);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_string_equal(history(a), "ABHDh");
	assert_int_equal(hf.free_ret, -1);

	tevent_schedule_immediate(b, ev, imm_handler, &h);
	assert_int_equal(tevent_re_initialise(ev), 0);
	assert_string_equal(history(b), "AD");
	talloc_free(b);
	assert_string_equal(history(b), "AD");
	assert_int_equal(h.runs, 0);
	tt_finish(ev);
}

/* ------------------------------------------------------------------ */
/* signals                                                             */

static void test_trace_signal(void **state)
{
	struct tevent_context *ev = backend_ev(state);
	struct hstate h = { 0 }, hr = { 0 }, hf = { .free_self = true };
	struct tevent_signal *se, *reset, *self;

	/* only the signal callback: signals use an internal fd event */
	tevent_set_trace_signal_callback(ev, trace_signal_cb, NULL);

	se = tevent_add_signal(ev, ev, SIGUSR1, 0, signal_handler, &h);
	assert_non_null(se);
	assert_string_equal(history(se), "A");
	reset = tevent_add_signal(ev, ev, SIGUSR1, SA_RESETHAND,
				  signal_handler, &hr);
	assert_non_null(reset);
	self = tevent_add_signal(ev, ev, SIGUSR1, 0, signal_handler, &hf);
	assert_non_null(self);

	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	assert_int_equal(tevent_loop_once(ev), 0);
	/* signal events stay */
	assert_string_equal(history(se), "ABHh");
	/* SA_RESETHAND: removed once its handler returned */
	assert_string_equal(history(reset), "ABHhD");
	/* freed inside: detached right there */
	assert_string_equal(history(self), "ABHDh");
	assert_int_equal(hf.free_ret, -1);

	talloc_free(se);
	assert_string_equal(history(se), "ABHhD");

	/* the allocator may hand out the same address again */
	tlog_n = 0;
	se = tevent_add_signal(ev, ev, SIGUSR1, 0, signal_handler, &h);
	assert_non_null(se);
	assert_int_equal(tevent_re_initialise(ev), 0);
	assert_string_equal(history(se), "AD");
	talloc_free(se);
	assert_string_equal(history(se), "AD");
	tt_finish(ev);
}

/* ------------------------------------------------------------------ */
/* freeing the context and tags                                        */

/* Each event was attached once and detached once, nothing else. */
static void assert_all_detached(const void *fde, const void *te,
				const void *im, const void *se)
{
	assert_string_equal(history(fde), "AD");
	assert_string_equal(history(te), "AD");
	assert_string_equal(history(im), "AD");
	assert_string_equal(history(se), "AD");
}

static void test_trace_context_free(void **state)
{
	struct tevent_context *ev = backend_ev(state);
	struct hstate h = { 0 };
	TALLOC_CTX *owner = talloc_new(NULL);
	struct tevent_fd *fde;
	struct tevent_timer *te;
	struct tevent_immediate *im;
	struct tevent_signal *se;
	int sp[2];

	open_pair(sp);
	trace_all(ev);
	fde = tevent_add_fd(ev, owner, sp[0], TEVENT_FD_READ, fd_handler, &h);
	te = tevent_add_timer(ev, owner, tevent_timeval_current_ofs(100, 0),
			      timer_handler, &h);
	im = tevent_create_immediate(owner);
	assert_non_null(im);
	tevent_schedule_immediate(im, ev, imm_handler, &h);
	se = tevent_add_signal(ev, owner, SIGUSR2, 0, signal_handler, &h);
	assert_non_null(fde);
	assert_non_null(te);
	assert_non_null(se);

	/* every event still attached is detached when the context goes */
	tt_finish(ev);
	assert_all_detached(fde, te, im, se);

	/* freeing the inert events reports nothing more */
	talloc_free(owner);
	assert_all_detached(fde, te, im, se);
	close_pair(sp);
}

/*
 * Timers still pending when the context goes are detached earliest
 * deadline first, equal deadlines in the order they were added (upstream
 * walks its sorted list; a heap must not leak its own order here).
 */
static void test_trace_context_free_timer_order(void **state)
{
	struct tevent_context *ev = backend_ev(state);
	struct hstate h = { 0 };
	TALLOC_CTX *owner = talloc_new(NULL);
	/* offsets in seconds; -1 is a zero timer (due at once) */
	static const int ofs[] = {300, 100, -1, 200, 100, 50, 300, 150};
	/* the order in which their DETACH must come */
	static const int want[] = {2, 5, 1, 4, 7, 3, 0, 6};
	struct tevent_timer *te[8];
	int i, n = 0;

	trace_all(ev);
	for (i = 0; i < 8; i++) {
		struct timeval tv = ofs[i] < 0 ? tevent_timeval_zero() :
				tevent_timeval_current_ofs(ofs[i], 0);

		te[i] = tevent_add_timer(ev, owner, tv, timer_handler, &h);
		assert_non_null(te[i]);
	}
	tt_finish(ev);
	for (i = 0; i < tlog_n; i++) {
		if (tlog[i].kind == K_TIMER && tlog[i].code == 'D') {
			assert_true(n < 8);
			assert_ptr_equal(tlog[i].ptr, te[want[n]]);
			n++;
		}
	}
	assert_int_equal(n, 8);
	assert_int_equal(h.runs, 0);
	talloc_free(owner);
}

/* A tag set from the ATTACH callback is there when the handler runs. */
static void test_trace_tag_from_attach(void **state)
{
	struct tevent_context *ev = backend_ev(state);
	struct hstate ht = { 0 }, hi = { 0 }, hf = { 0 }, hs = { 0 };
	struct tevent_immediate *im = tevent_create_immediate(ev);
	struct tevent_timer *te;
	struct tevent_fd *fde;
	struct tevent_signal *se;
	uint64_t tt, ti, tf, ts;
	uint64_t next_tag = 1000;
	int sp[2];

	assert_non_null(im);
	open_pair(sp);
	tevent_set_trace_timer_callback(ev, trace_timer_cb, &next_tag);
	tevent_set_trace_immediate_callback(ev, trace_imm_cb, &next_tag);
	tevent_set_trace_signal_callback(ev, trace_signal_cb, &next_tag);

	te = tevent_add_timer(ev, ev, tevent_timeval_zero(), timer_handler,
			      &ht);
	assert_non_null(te);
	tt = tevent_timer_get_tag(te);
	assert_true(tt >= 1000);
	tevent_schedule_immediate(im, ev, imm_handler, &hi);
	ti = tevent_immediate_get_tag(im);
	assert_int_equal(ti, tt + 1);
	se = tevent_add_signal(ev, ev, SIGUSR2, 0, signal_handler, &hs);
	assert_non_null(se);
	ts = tevent_signal_get_tag(se);
	assert_int_equal(ts, ti + 1);
	/* installed late so the internal signal fd event is not tagged */
	tevent_set_trace_fd_callback(ev, trace_fd_cb, &next_tag);
	fde = tevent_add_fd(ev, ev, sp[0], TEVENT_FD_WRITE, fd_handler, &hf);
	assert_non_null(fde);
	tf = tevent_fd_get_tag(fde);
	assert_int_equal(tf, ts + 1);

	assert_int_equal(kill(getpid(), SIGUSR2), 0);
	while (hf.runs == 0) {
		assert_int_equal(tevent_loop_once(ev), 0);
	}
	assert_int_equal(hs.tag_seen, ts);
	assert_int_equal(hi.tag_seen, ti);
	assert_int_equal(ht.tag_seen, tt);
	assert_int_equal(hf.tag_seen, tf);

	tt_finish(ev);
	close_pair(sp);
}

int main(void)
{
	static const struct tt_case cases[] = {
		TT_BACKEND_CASE(test_trace_get_set),
		TT_BACKEND_CASE(test_trace_points_no_wait),
		TT_BACKEND_CASE(test_trace_points_fd_turn),
		TT_BACKEND_CASE(test_trace_points_future_timer),
		TT_BACKEND_CASE(test_trace_points_wait_and_until),
		TT_BACKEND_CASE(test_trace_points_nested),
		TT_BACKEND_CASE(test_trace_fd),
		TT_BACKEND_CASE(test_trace_fd_free_in_handler),
		TT_BACKEND_CASE(test_trace_fd_free_and_reinit),
		TT_BACKEND_CASE(test_trace_timer),
		TT_BACKEND_CASE(test_trace_timer_free),
		TT_BACKEND_CASE(test_trace_immediate),
		TT_BACKEND_CASE(test_trace_immediate_reschedule_in_handler),
		TT_BACKEND_CASE(test_trace_immediate_moved_in_handler),
		TT_BACKEND_CASE(test_trace_immediate_free_and_reinit),
		TT_BACKEND_CASE(test_trace_signal),
		TT_BACKEND_CASE(test_trace_context_free),
		TT_BACKEND_CASE(test_trace_context_free_timer_order),
		TT_BACKEND_CASE(test_trace_tag_from_attach),
	};

	tt_check_library();
	return tt_run_cases("trace", cases, sizeof(cases) / sizeof(cases[0]));
}

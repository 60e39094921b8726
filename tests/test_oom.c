/*
 * Out-of-memory sweep of libtevent (the machinery is in common/tt_oom.h):
 * every allocation the library makes is made to fail in turn, and the
 * program must carry on.
 *
 * One scenario uses most of the library on one context: fd, timer,
 * immediate and signal events, a threaded context and a thread proxy (both
 * used from the loop thread), a wrapper context, requests (posted, with an
 * end time and a profile, as subrequests, a wakeup request) and a queue
 * with a waiter.  It checks every result: a call that fails must say so
 * (NULL, false, an error in the request), and whatever was set up must run
 * exactly once.  It runs for every backend, with each allocation failing
 * alone and with all later ones failing too.
 *
 * No abort is allowed.  A tevent_loop_once() that returns -1 with ENOMEM
 * (the poll backend could not grow its array) ends the run; then nothing
 * may have run twice.
 *
 * The cases after the sweeps post requests while every allocation fails:
 * ours makes a request's post immediate only when the request is first
 * posted (upstream makes it with the request), so those posts wait on
 * the context's fallback list instead.  Each callback must still run
 * once, from the loop, one per turn and in order, through a wrapper's
 * hooks when posted on a wrapper, and not at all once the request, the
 * context or the wrapper is gone or the context starts over.
 */

#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <link.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>

#define TEVENT_DEPRECATED 1
#include <tevent.h>

#include "common/tt.h"
#include "common/tt_threads.h"
#include "common/tt_oom.h"
#include "common/tt_random.h"
#include "common/tt_never.h"

#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

/* ------------------------------------------------------------------ */
/* the scenario                                                        */

enum {
	E_FD, E_TIMER, E_IMM, E_SIGNAL, E_THREADED, E_PROXY, E_WRAP_TIMER,
	E_REQ_POST, E_REQ_SUB, E_QUEUE_1, E_QUEUE_2, E_QUEUE_WAIT, E_WAKEUP,
	E_COUNT
};

static const char *const event_names[E_COUNT] = {
	"fd", "timer", "immediate", "signal", "threaded immediate",
	"proxy immediate", "wrapper timer", "posted request",
	"subrequest", "queue entry 1", "queue entry 2", "queue waiter",
	"wakeup request",
};

struct scenario {
	struct tevent_context *ev;
	bool expected[E_COUNT];   /* set up successfully: must run once */
	int ran[E_COUNT];
	int sv[2];
	int queue_order[2];
	int nqueued;
	struct tevent_req *queued[2];
	bool loop_failed;         /* tevent_loop_once() ran out of memory */
};

static void ran(struct scenario *s, int which)
{
	s->ran[which]++;
}

static void fd_handler(struct tevent_context *ev, struct tevent_fd *fde,
		       uint16_t flags, void *private_data)
{
	struct scenario *s = private_data;
	char c;

	if (read(s->sv[0], &c, 1) == 1) {
		ran(s, E_FD);
	}
	tevent_fd_set_flags(fde, 0);
}

static void timer_handler(struct tevent_context *ev, struct tevent_timer *te,
			  struct timeval now, void *private_data)
{
	ran(private_data, E_TIMER);
}

static void wrap_timer_handler(struct tevent_context *ev,
			       struct tevent_timer *te, struct timeval now,
			       void *private_data)
{
	ran(private_data, E_WRAP_TIMER);
}

static void imm_handler(struct tevent_context *ev, struct tevent_immediate *im,
			void *private_data)
{
	ran(private_data, E_IMM);
}

static void threaded_handler(struct tevent_context *ev,
			     struct tevent_immediate *im, void *private_data)
{
	ran(private_data, E_THREADED);
}

static void proxy_handler(struct tevent_context *ev,
			  struct tevent_immediate *im, void *private_data)
{
	struct scenario **ps = private_data;

	ran(*ps, E_PROXY);
}

static void signal_handler(struct tevent_context *ev, struct tevent_signal *se,
			   int signum, int count, void *siginfo,
			   void *private_data)
{
	ran(private_data, E_SIGNAL);
}

static const struct tevent_wrapper_ops wrap_ops =
	TT_QUIET_WRAPPER_OPS("oom");

struct wrap_state {
	int unused;
};

struct plain_state {
	int unused;
};

/* ------------------------------------------------------------------ */
/* requests                                                            */

static void posted_done(struct tevent_req *req)
{
	struct scenario *s = tevent_req_callback_data_void(req);

	ran(s, E_REQ_POST);
	talloc_free(req);
}

/* The usual shape of a _send function: an end time, a subrequest that a
 * timer finishes, and every allocation failure reported through the
 * request (tevent_req_nomem, then tevent_req_post). */
static void sub_timer(struct tevent_context *ev, struct tevent_timer *te,
		      struct timeval now, void *private_data)
{
	tevent_req_done(private_data);
}

static void outer_sub_done(struct tevent_req *sub)
{
	struct tevent_req *req = tevent_req_callback_data(sub,
							  struct tevent_req);

	talloc_free(sub);
	tevent_req_done(req);
}

static struct tevent_req *outer_send(TALLOC_CTX *mem_ctx,
				     struct tevent_context *ev)
{
	struct plain_state *st, *sst;
	struct tevent_req *req, *sub;

	req = tevent_req_create(mem_ctx, &st, struct plain_state);
	if (req == NULL) {
		return NULL;
	}
	/* a profile makes the subrequest allocate its own; optional */
	(void)tevent_req_set_profile(req);
	if (!tevent_req_set_endtime(req, ev,
				    tevent_timeval_current_ofs(60, 0))) {
		return tevent_req_post(req, ev);
	}
	/* under the state, as usual: the subrequest joins the profile */
	sub = tevent_req_create(st, &sst, struct plain_state);
	if (tevent_req_nomem(sub, req)) {
		return tevent_req_post(req, ev);
	}
	if (tevent_req_nomem(tevent_add_timer(ev, sub, tevent_timeval_zero(),
					      sub_timer, sub),
			     req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(sub, outer_sub_done, req);
	return req;
}

static void outer_done(struct tevent_req *req)
{
	struct scenario *s = tevent_req_callback_data_void(req);
	char *text = tevent_req_print(NULL, req);

	ran(s, E_REQ_SUB);
	talloc_free(text);
	talloc_free(tevent_req_move_profile(req, NULL));
	talloc_free(req);
}

static void wakeup_done(struct tevent_req *req)
{
	struct scenario *s = tevent_req_callback_data_void(req);

	ran(s, E_WAKEUP);
	talloc_free(req);
}

static void queue_trigger(struct tevent_req *req, void *private_data)
{
	struct scenario *s = private_data;
	int i = req == s->queued[0] ? 0 : 1;

	ran(s, E_QUEUE_1 + i);
	s->queue_order[i] = ++s->nqueued;
	tevent_req_done(req);
}

static void queued_done(struct tevent_req *req)
{
	talloc_free(req);
}

static void wait_done(struct tevent_req *req)
{
	struct scenario *s = tevent_req_callback_data_void(req);

	ran(s, E_QUEUE_WAIT);
	talloc_free(req);
}

/* ------------------------------------------------------------------ */

static void setup_events(struct scenario *s, struct tevent_context *ev)
{
	struct tevent_immediate *im;
	struct tevent_threaded_context *tctx;
	struct tevent_thread_proxy *tp;
	struct tevent_context *wev;
	struct wrap_state *wst;
	struct tevent_queue *q;
	struct tevent_req *req;
	struct plain_state *st;
	int i;

	if (tevent_add_fd(ev, ev, s->sv[0], TEVENT_FD_READ, fd_handler, s)) {
		s->expected[E_FD] = true;
	}
	if (tevent_add_timer(ev, ev, tevent_timeval_zero(), timer_handler,
			     s)) {
		s->expected[E_TIMER] = true;
	}
	im = tevent_create_immediate(ev);
	if (im != NULL) {
		tevent_schedule_immediate(im, ev, imm_handler, s);
		s->expected[E_IMM] = true;
	}
	if (tevent_add_signal(ev, ev, SIGUSR1, SA_SIGINFO, signal_handler,
			      s)) {
		kill(getpid(), SIGUSR1);
		s->expected[E_SIGNAL] = true;
	}
	tctx = tevent_threaded_context_create(ev, ev);
	im = tevent_create_immediate(ev);
	if (tctx != NULL && im != NULL) {
		tevent_threaded_schedule_immediate(tctx, im, threaded_handler,
						   s);
		s->expected[E_THREADED] = true;
	}
	tp = tevent_thread_proxy_create(ev);
	if (tp != NULL) {
		struct tevent_immediate *pim = tevent_create_immediate(NULL);
		struct scenario **ps = talloc(NULL, struct scenario *);

		if (ps != NULL) {
			*ps = s;
		}
		if (pim != NULL && ps != NULL) {
			tevent_thread_proxy_schedule(tp, &pim, proxy_handler,
						     &ps);
			/* sent: both now belong to the proxy */
			s->expected[E_PROXY] = pim == NULL;
		}
		talloc_free(pim);
		talloc_free(ps);
	}
	wev = tevent_context_wrapper_create(ev, ev, &wrap_ops, &wst,
					    struct wrap_state);
	if (wev != NULL &&
	    tevent_add_timer(wev, wev, tevent_timeval_zero(),
			     wrap_timer_handler, s)) {
		s->expected[E_WRAP_TIMER] = true;
	}

	req = tevent_req_create(ev, &st, struct plain_state);
	if (req != NULL) {
		/* finished in its _send function, reported from the loop */
		tevent_req_done(req);
		tevent_req_post(req, ev);
		tevent_req_set_callback(req, posted_done, s);
		s->expected[E_REQ_POST] = true;
	}
	req = outer_send(ev, ev);
	if (req != NULL) {
		tevent_req_set_callback(req, outer_done, s);
		s->expected[E_REQ_SUB] = true;
	}

	req = tevent_wakeup_send(ev, ev, tevent_timeval_current());
	if (req != NULL) {
		tevent_req_set_callback(req, wakeup_done, s);
		s->expected[E_WAKEUP] = true;
	}
	talloc_free(tevent_backend_list(ev));

	q = tevent_queue_create(ev, "oom");
	if (q == NULL) {
		return;
	}
	for (i = 0; i < 2; i++) {
		req = tevent_req_create(ev, &st, struct plain_state);
		if (req == NULL) {
			continue;
		}
		s->queued[i] = req;
		tevent_req_set_callback(req, queued_done, s);
		if (tevent_queue_add_entry(q, ev, req, queue_trigger, s)) {
			s->expected[E_QUEUE_1 + i] = true;
		} else {
			talloc_free(req);
			s->queued[i] = NULL;
		}
	}
	req = tevent_queue_wait_send(ev, ev, q);
	if (req != NULL) {
		tevent_req_set_callback(req, wait_done, s);
		s->expected[E_QUEUE_WAIT] = true;
	}
}

static void watchdog(struct tevent_context *ev, struct tevent_timer *te,
		     struct timeval now, void *private_data)
{
	*(bool *)private_data = true;
}

static bool all_ran(const struct scenario *s)
{
	int i;

	for (i = 0; i < E_COUNT; i++) {
		if (s->expected[i] && s->ran[i] == 0) {
			return false;
		}
	}
	return true;
}

/* ------------------------------------------------------------------ */

static void events_scenario(const char *backend)
{
	struct scenario s;
	struct tevent_context *ev;
	int turns = 0, i;

	memset(&s, 0, sizeof(s));
	tt_oom_check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
				s.sv) == 0, "socketpair");
	tt_oom_check(write(s.sv[1], "x", 1) == 1, "write");

	ev = tevent_context_init_byname(NULL, backend);
	if (ev != NULL) {
		bool stuck = false;

		setup_events(&s, ev);
		/* not counted: ends a loop that waits for nothing */
		tt_oom_count(false);
		tt_oom_check(tevent_add_timer(ev, ev,
					      tevent_timeval_current_ofs(5, 0),
					      watchdog, &stuck) != NULL,
			     "watchdog");
		tt_oom_count(true);
		while (!all_ran(&s) && !stuck && turns++ < 200) {
			if (tevent_loop_once(ev) != 0) {
				/* fine if it says why: no memory */
				tt_oom_check(errno == ENOMEM &&
					     tt_oom_failed_any(),
					     "loop_once failed: %s",
					     strerror(errno));
				s.loop_failed = true;
				break;
			}
		}
		for (i = 0; i < E_COUNT && stuck; i++) {
			tt_oom_check(!s.expected[i] || s.ran[i],
				     "stuck: %s never ran", event_names[i]);
		}
	}
	tt_oom_count(false);

	for (i = 0; i < E_COUNT; i++) {
		/* a loop that could not go on: at most once each */
		int want = s.expected[i] ? 1 : 0;

		tt_oom_check(s.loop_failed ? s.ran[i] <= want
					   : s.ran[i] == want,
			     "%s: set up %d, ran %d times", event_names[i],
			     s.expected[i], s.ran[i]);
	}
	if (s.expected[E_QUEUE_1] && s.expected[E_QUEUE_2]) {
		tt_oom_check(s.queue_order[0] < s.queue_order[1],
			     "queue entries out of order");
	}
	talloc_free(ev);
	close(s.sv[0]);
	close(s.sv[1]);
}

static void test_oom_single(void **state)
{
	tt_oom_sweep(events_scenario, *state, false, NULL);
}

static void test_oom_from_then_on(void **state)
{
	if (TT_ON_VALGRIND()) {
		skip();  /* the single-failure sweep covers the paths */
	}
	tt_oom_sweep(events_scenario, *state, true, NULL);
}

/* ------------------------------------------------------------------ */
/* tevent_req_post() and deferred callbacks while nothing can be        */
/* allocated: each callback still runs once, from the loop, in order    */

#define NLOG 16

struct post_log {
	char seen[NLOG + 1];     /* one letter per callback or handler run */
	int wrapped;             /* immediate handlers run under the wrapper */
};

static void log_run(struct post_log *log, char c)
{
	size_t n = strlen(log->seen);

	assert_true(n < NLOG);
	log->seen[n] = c;
}

struct letter_state {
	struct post_log *log;
	char letter;
};

static void letter_done(struct tevent_req *req)
{
	struct letter_state *st = tevent_req_callback_data(
		req, struct letter_state);

	assert_true(tevent_req_is_in_progress(req) == false);
	log_run(st->log, st->letter);
}

static void letter_imm(struct tevent_context *ev, struct tevent_immediate *im,
		       void *private_data)
{
	log_run(private_data, 'i');
}

/* A finished request, as a _send function that fails early returns it;
 * its callback logs `letter`. */
static struct tevent_req *finished_req(TALLOC_CTX *mem_ctx,
				       struct post_log *log, char letter)
{
	struct letter_state *st;
	struct tevent_req *req = tevent_req_create(mem_ctx, &st,
						   struct letter_state);

	assert_non_null(req);
	st->log = log;
	st->letter = letter;
	tevent_req_done(req);
	tevent_req_set_callback(req, letter_done, st);
	return req;
}

/* tevent_req_post() with every allocation failing. */
static void post_without_memory(struct tevent_req *req,
				struct tevent_context *ev)
{
	tt_oom_fail_all(true);
	assert_ptr_equal(tevent_req_post(req, ev), req);
	tt_oom_fail_all(false);
}

static void nop_timer(struct tevent_context *ev, struct tevent_timer *te,
		      struct timeval now, void *private_data)
{
}

/* One loop turn that cannot block: a timer due now comes last. */
static void turn(struct tevent_context *ev)
{
	TALLOC_CTX *tmp = talloc_new(NULL);

	assert_non_null(tevent_add_timer(ev, tmp, tevent_timeval_zero(),
					 nop_timer, NULL));
	assert_int_equal(tevent_loop_once(ev), 0);
	talloc_free(tmp);
}

static void test_post_oom_order(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct post_log log = {.wrapped = 0};
	struct tevent_immediate *im = tevent_create_immediate(ev);
	struct tevent_req *a = finished_req(ev, &log, 'a');
	struct tevent_req *b = finished_req(ev, &log, 'b');
	struct tevent_req *c = finished_req(ev, &log, 'c');

	assert_non_null(im);
	post_without_memory(a, ev);
	tevent_schedule_immediate(im, ev, letter_imm, &log);
	post_without_memory(b, ev);
	post_without_memory(c, ev);
	assert_true(tt_oom_failed_any());
	assert_string_equal(log.seen, "");  /* nothing runs inside post */

	/* one callback per turn, in the order of scheduling, as with an
	 * immediate per request */
	turn(ev);
	assert_string_equal(log.seen, "a");
	turn(ev);
	assert_string_equal(log.seen, "ai");
	turn(ev);
	assert_string_equal(log.seen, "aib");
	turn(ev);
	assert_string_equal(log.seen, "aibc");
	turn(ev);
	assert_string_equal(log.seen, "aibc");
	tt_finish(ev);
}

static void test_post_oom_freed_or_posted_again(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct post_log log = {.wrapped = 0};
	struct tevent_req *a = finished_req(ev, &log, 'a');
	struct tevent_req *b = finished_req(ev, &log, 'b');
	struct tevent_req *c = finished_req(ev, &log, 'c');
	struct tevent_req *d = finished_req(ev, &log, 'd');

	post_without_memory(a, ev);
	post_without_memory(b, ev);
	post_without_memory(c, ev);
	talloc_free(a);          /* first in line */
	talloc_free(c);          /* last in line */
	tevent_req_post(b, ev);  /* with memory: replaces the waiting post */
	post_without_memory(d, ev);
	post_without_memory(d, ev);  /* twice: still one callback */
	tevent_req_received(d);      /* received: nothing left to deliver */
	post_without_memory(b, ev);  /* and back again */

	turn(ev);
	turn(ev);
	turn(ev);
	assert_string_equal(log.seen, "b");
	tt_finish(ev);
}

static void test_post_oom_defer_callback(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct post_log log = {.wrapped = 0};
	struct letter_state *st;
	struct tevent_req *req = tevent_req_create(ev, &st,
						   struct letter_state);

	assert_non_null(req);
	st->log = &log;
	st->letter = 'd';
	tevent_req_set_callback(req, letter_done, st);
	tevent_req_defer_callback(req, ev);
	tt_oom_fail_all(true);
	tevent_req_done(req);
	tt_oom_fail_all(false);
	assert_string_equal(log.seen, "");
	turn(ev);
	assert_string_equal(log.seen, "d");
	tt_finish(ev);
}

static void count_wrapped(struct tevent_context *wrap_ev, void *private_state,
			  struct tevent_context *main_ev,
			  struct tevent_immediate *im, const char *handler_name,
			  const char *location)
{
	struct post_log **log = private_state;

	(*log)->wrapped++;
}

static bool wrap_use(struct tevent_context *wrap_ev, void *private_state,
		     struct tevent_context *main_ev, const char *location)
{
	return true;
}

static void wrap_unuse(struct tevent_context *wrap_ev, void *private_state,
		       struct tevent_context *main_ev, const char *location)
{
}

static const struct tevent_wrapper_ops counting_ops = {
	.name = "counting",
	.before_use = wrap_use,
	.after_use = wrap_unuse,
	.before_immediate_handler = count_wrapped,
	.after_immediate_handler = count_wrapped,
};

static void test_post_oom_wrapper(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct post_log log = {.wrapped = 0};
	struct post_log **wlog;
	struct tevent_context *wev = tevent_context_wrapper_create(
		ev, ev, &counting_ops, &wlog, struct post_log *);
	struct tevent_req *a = finished_req(ev, &log, 'a');
	struct tevent_req *b = finished_req(ev, &log, 'b');

	assert_non_null(wev);
	*wlog = &log;
	/* delivered through the wrapper: its hooks run around the callback */
	post_without_memory(a, wev);
	turn(ev);
	assert_string_equal(log.seen, "a");
	assert_int_equal(log.wrapped, 2);

	/* a wrapper freed with a post waiting takes the post with it */
	post_without_memory(b, wev);
	talloc_free(wev);
	turn(ev);
	assert_string_equal(log.seen, "a");
	tevent_req_post(b, ev);
	turn(ev);
	assert_string_equal(log.seen, "ab");
	tt_finish(ev);
}

/* The main context goes first: requests waiting on a wrapper of it are
 * dropped, and the wrapper and the requests are freed later without
 * touching it. */
static void test_post_oom_main_gone_first(void **state)
{
	struct tevent_context *ev = tevent_context_init_byname(NULL, *state);
	struct post_log log = {.wrapped = 0};
	struct post_log **wlog;
	struct tevent_context *wev;
	struct tevent_req *a = finished_req(NULL, &log, 'a');
	struct tevent_req *b = finished_req(NULL, &log, 'b');

	assert_non_null(ev);
	wev = tevent_context_wrapper_create(ev, NULL, &counting_ops, &wlog,
					    struct post_log *);
	assert_non_null(wev);
	*wlog = &log;
	post_without_memory(a, wev);
	post_without_memory(b, wev);
	talloc_free(ev);
	talloc_free(a);
	talloc_free(wev);
	talloc_free(b);
	assert_string_equal(log.seen, "");
	assert_int_equal(log.wrapped, 0);
}

static void test_post_oom_context_gone(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct tevent_context *ev2 = tevent_context_init_byname(NULL, *state);
	struct post_log log = {.wrapped = 0};
	struct tevent_req *a = finished_req(NULL, &log, 'a');
	struct tevent_req *b = finished_req(NULL, &log, 'b');

	assert_non_null(ev2);
	/* starting the context over drops what was posted, as it drops
	 * every scheduled immediate */
	post_without_memory(a, ev);
	assert_int_equal(tevent_re_initialise(ev), 0);
	turn(ev);
	assert_string_equal(log.seen, "");
	tevent_req_post(a, ev);
	turn(ev);
	assert_string_equal(log.seen, "a");

	/* so does freeing it; the requests outlive it */
	post_without_memory(a, ev2);
	post_without_memory(b, ev2);
	talloc_free(ev2);
	talloc_free(a);
	tevent_req_post(b, ev);
	turn(ev);
	assert_string_equal(log.seen, "ab");
	talloc_free(b);
	tt_finish(ev);
}

/* tevent_update_timer() on the timer whose handler runs, while nothing
 * can be allocated: upstream's sorted list needs no memory there, so
 * neither may ours, however full the timer storage is.  Each round's
 * handler adds one more lasting timer and then re-arms itself, so the
 * re-arm meets every fill level up to 100 timers. */
struct rearm {
	int runs;
	TALLOC_CTX *others;
};

static void rearm_handler(struct tevent_context *ev, struct tevent_timer *te,
			  struct timeval now, void *private_data)
{
	struct rearm *r = private_data;

	r->runs++;
	assert_non_null(tevent_add_timer(ev, r->others,
					 tevent_timeval_current_ofs(3600, 0),
					 tt_never_timer, NULL));
	tt_oom_fail_all(true);
	tevent_update_timer(te, tevent_timeval_current_ofs(3600, 0));
	tt_oom_fail_all(false);
}

static void test_update_running_timer_oom(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct rearm r = {.others = talloc_new(NULL)};
	int round;

	for (round = 1; round <= 100; round++) {
		assert_non_null(tevent_add_timer(ev, ev, tevent_timeval_zero(),
						 rearm_handler, &r));
		turn(ev);
		/* fired once: timers are one-shot, re-armed or not */
		assert_int_equal(r.runs, round);
	}
	turn(ev);
	assert_int_equal(r.runs, 100);
	talloc_free(r.others);
	tt_finish(ev);
}

/* The same, from every kind of place: the running timer is re-armed,
 * while nothing can be allocated, to before all others, between them, to
 * a tie with one of them or after all of them, while up to 40 timers wait
 * in deadline order and up to 20 more wait out of order.  The handler
 * then adds one more timer just after its new deadline, which only lands
 * in the right place if the re-armed timer did.  The re-armed timer is
 * freed after its run; the others must fire in (deadline, order of
 * adding) order. */
struct placed {
	struct timeval target;
	struct placed_ref *late;  /* added by the handler */
	int *log;
	int n_log;
};

struct placed_ref {
	struct placed *p;
	int id;
};

static void placed_log_handler(struct tevent_context *ev,
			       struct tevent_timer *te, struct timeval now,
			       void *private_data)
{
	struct placed_ref *ref = private_data;

	ref->p->log[ref->p->n_log++] = ref->id;
}

static struct timeval usec_after_one(long usec)
{
	return (struct timeval){ .tv_sec = 1, .tv_usec = usec };
}

static void placed_rearm_handler(struct tevent_context *ev,
				 struct tevent_timer *te, struct timeval now,
				 void *private_data)
{
	struct placed_ref *ref = private_data;
	struct placed *p = ref->p;

	p->log[p->n_log++] = ref->id;
	tt_oom_fail_all(true);
	tevent_update_timer(te, p->target);
	tt_oom_fail_all(false);
	assert_non_null(tevent_add_timer(
		ev, ev, usec_after_one(p->target.tv_usec + 10),
		placed_log_handler, p->late));
}

static void placed_round(int in_order, int out_of_order, int where)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	int waiting = in_order + out_of_order;
	int n = waiting + 2;  /* and the re-armed one, and the late one */
	struct placed p = { .log = talloc_array(ev, int, n) };
	struct placed_ref *refs = talloc_array(ev, struct placed_ref, n);
	long deadline[64];
	int want[64];
	int i, j;

	assert_non_null(ev);
	assert_non_null(p.log);
	assert_non_null(refs);
	for (i = 0; i < n; i++) {
		refs[i] = (struct placed_ref){ .p = &p, .id = i };
	}
	/* in order: 100, 200, ...; then out of order: 150, 250, ..., and
	 * every third one a tie with an earlier one */
	for (i = 0; i < waiting; i++) {
		int k = i < in_order ? i : i - in_order;

		deadline[i] = i < in_order ? 100L * (k + 1) : 100L * k + 150;
		if (i >= in_order && k % 3 == 2) {
			deadline[i] = 100L * (k + 1);
		}
		assert_non_null(tevent_add_timer(ev, ev,
						 usec_after_one(deadline[i]),
						 placed_log_handler, &refs[i]));
	}
	switch (where) {
	case 0: p.target = usec_after_one(50); break;
	case 1: p.target = usec_after_one(100L * (in_order / 2) + 75); break;
	case 2: p.target = usec_after_one(100L * (in_order / 2 + 1)); break;
	default: p.target = usec_after_one(100L * (in_order + 40)); break;
	}
	p.late = &refs[waiting + 1];
	deadline[waiting + 1] = p.target.tv_usec + 10;
	/* the one that fires first and re-arms itself */
	assert_non_null(tevent_add_timer(ev, ev, tevent_timeval_zero(),
					 placed_rearm_handler,
					 &refs[waiting]));

	/* what must fire after it: by deadline, ties in order of adding */
	for (i = 0; i < waiting; i++) {
		want[i] = i;
	}
	want[waiting] = waiting + 1;
	for (i = 1; i <= waiting; i++) {
		int v = want[i];

		for (j = i; j > 0 && deadline[want[j - 1]] > deadline[v]; j--) {
			want[j] = want[j - 1];
		}
		want[j] = v;
	}

	for (i = 0; i < n; i++) {
		assert_int_equal(tevent_loop_once(ev), 0);
	}
	assert_int_equal(p.n_log, n);
	assert_int_equal(p.log[0], waiting);
	for (i = 0; i <= waiting; i++) {
		if (p.log[i + 1] != want[i]) {
			fail_msg("%d in order, %d out of order, place %d: "
				 "position %d fired timer %d, want %d",
				 in_order, out_of_order, where, i,
				 p.log[i + 1], want[i]);
		}
	}
	talloc_free(ev);
}

static void test_update_running_timer_oom_placed(void **state)
{
	int in_order, out_of_order, where;

	for (in_order = 0; in_order <= 40; in_order++) {
		for (out_of_order = 0; out_of_order <= 20; out_of_order += 4) {
			for (where = 0; where < 4; where++) {
				placed_round(in_order, out_of_order, where);
			}
		}
	}
}

/*
 * The timer queue sorts a big heap into its sorted run when the heap's
 * earliest timer is due (lib/tevent/timer_queue.cc).  The sort needs
 * memory: scratch memory for the keys (mapped) and, when the heap's array
 * is too small to take over, a new array for the run (malloc).  Without
 * either the queue must go on as a heap, losing and repeating nothing.
 * R timers at increasing deadlines and H at random ones between them are
 * added, then the k-th allocation the library makes fails (k = 1: the
 * mapping, k = 2: the new array, where there is one) and every timer is
 * fired: the order must be (deadline, order added).
 */
struct sort_log {
	uint32_t *fired;
	uint32_t n;
};

static void sort_fired(struct tevent_context *ev, struct tevent_timer *te,
		       struct timeval now, void *private_data)
{
	struct sort_log *log = private_data;

	log->fired[log->n++] = (uint32_t)tevent_timer_get_tag(te);
}

/* Keys are microseconds after the epoch's first second: all long due. */
static struct timeval sort_tv(int64_t key)
{
	return tevent_timeval_set((uint32_t)(1 + key / 1000000),
				  (uint32_t)(key % 1000000));
}

static void sort_round(uint32_t r, uint32_t h, long k, bool expect_failure)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	uint32_t n = r + h;
	struct tt_keyed *t = talloc_array(ev, struct tt_keyed, n);
	struct sort_log log = { .fired = talloc_array(ev, uint32_t, n) };
	uint64_t rng = 0x5eed0000u + (uint64_t)k;
	uint32_t i;

	assert_non_null(ev);
	assert_non_null(t);
	assert_non_null(log.fired);
	for (i = 0; i < n; i++) {
		struct tevent_timer *te;

		t[i].idx = i;
		t[i].key = i < r ? 2 * (int64_t)i
				 : (int64_t)(tt_splitmix64(&rng) %
					     (2 * (uint64_t)r));
		te = tevent_add_timer(ev, ev, sort_tv(t[i].key), sort_fired,
				      &log);
		assert_non_null(te);
		tevent_timer_set_tag(te, i);
	}
	qsort(t, n, sizeof(*t), tt_keyed_cmp);

	tt_oom_fail_nth(k);
	for (i = 0; i < n; i++) {
		assert_int_equal(tevent_loop_once(ev), 0);
		assert_int_equal(log.n, i + 1);
		if (log.fired[i] != t[i].idx) {
			tt_oom_fail_all(false);
			fail_msg("R %u H %u, allocation %ld failing: turn %u "
				 "fired timer %u, expected %u",
				 r, h, k, i, log.fired[i], t[i].idx);
		}
	}
	tt_oom_fail_all(false);
	if (expect_failure && !tt_oom_failed_any()) {
		fail_msg("R %u H %u: allocation %ld of the sort never failed",
			 r, h, k);
	}
	talloc_free(ev);
}

static void test_timer_sort_oom(void **state)
{
#ifdef TT_OOM_TSAN
	skip();  /* tt_oom.h cannot fail mmap under TSan */
#endif
	/* the heap's array takes the run over: only the keys' mapping */
	sort_round(8000, 40000, 1, true);
	/* a new array for the run as well */
	sort_round(33000, 34000, 1, true);
	if (tt_oom_counts_malloc()) {
		sort_round(33000, 34000, 2, true);
	}
}

int main(void)
{
	static const struct tt_case cases[] = {
		TT_BACKEND_CASE(test_oom_single),
		TT_BACKEND_CASE(test_oom_from_then_on),
		TT_BACKEND_CASE(test_post_oom_order),
		TT_BACKEND_CASE(test_post_oom_freed_or_posted_again),
		TT_BACKEND_CASE(test_post_oom_defer_callback),
		TT_BACKEND_CASE(test_post_oom_wrapper),
		TT_BACKEND_CASE(test_post_oom_context_gone),
		TT_BACKEND_CASE(test_post_oom_main_gone_first),
		TT_BACKEND_CASE(test_update_running_timer_oom),
		TT_CASE(test_update_running_timer_oom_placed),
		TT_CASE(test_timer_sort_oom),
	};

	tt_check_library();
	tt_oom_watch("libtevent.so");
	return tt_run_cases("oom", cases, sizeof(cases) / sizeof(cases[0]));
}

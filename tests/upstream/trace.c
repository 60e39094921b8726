/*
 * Port of upstream tevent's lib/tevent/tests/test_tevent_trace.c to our
 * own cmocka code.  Every event goes through ATTACH, BEFORE_HANDLER and
 * DETACH in that order (BEFORE_HANDLER and the handler left out when the
 * event goes away unrun); the ATTACH point stamps the event with a fresh
 * tag and every later point and the handler must see that tag.
 * Upstream case -> function here:
 *
 *   test_trace_event_fd__loop                 up_trace_fd__loop
 *   test_trace_event_fd__reset                up_trace_fd__reset
 *   test_trace_event_fd__free                 up_trace_fd__free
 *   test_trace_event_fd__free_in_handler      up_trace_fd__free_in_handler
 *   test_trace_event_timer__loop              up_trace_timer__loop
 *   test_trace_event_timer__reset             up_trace_timer__reset
 *   test_trace_event_timer__free              up_trace_timer__free
 *   test_trace_event_timer__free_in_handler   up_trace_timer__free_in_handler
 *   test_trace_event_signal__loop             up_trace_signal__loop
 *   test_trace_event_signal__reset            up_trace_signal__reset
 *   test_trace_event_signal__free             up_trace_signal__free
 *   test_trace_event_signal__free_in_handler  up_trace_signal__free_in_handler
 *   test_trace_event_immediate__loop          up_trace_immediate__loop
 *   test_trace_event_immediate__reset         up_trace_immediate__reset
 *   test_trace_event_immediate__free          up_trace_immediate__free
 *   test_trace_event_immediate__free_in_handler
 *                                       up_trace_immediate__free_in_handler
 *   test_trace_event_immediate__reschedule    up_trace_immediate__reschedule
 *   test_get_set_trace_fd_callback            up_get_set_trace_fd_callback
 *   test_get_set_trace_timer_callback         up_get_set_trace_timer_callback
 *   test_get_set_trace_signal_callback        up_get_set_trace_signal_callback
 *   test_get_set_trace_immediate_callback     up_get_set_trace_immediate_callback
 *
 * Two more cases apply the same checks to queue entries, whose trace
 * callback 0.13 added (the copy of upstream's file we worked from has
 * none): up_trace_queue__loop, up_get_set_trace_queue_callback.
 *
 * Upstream watches fd 0 for WRITE; we use a socket, so that what the test
 * was started with as stdin does not matter.  Upstream registers one
 * untyped callback cast to each callback type; we forward from properly
 * typed ones.
 */

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>

#include "tt.h"
#include "up.h"

#pragma GCC diagnostic ignored "-Wunused-parameter"

struct tracer {
	struct tevent_context *ev;
	int s[2];

	/* the event goes away (or is re-attached) without its handler */
	bool skipped;
	/* the next ATTACH starts a new life cycle of the same event */
	bool restart;

	uint64_t (*get_tag)(const void *event);
	void (*set_tag)(void *event, uint64_t tag);
	uint64_t tag;

	bool attached;
	bool before;
	bool ran;
	bool detached;
};

/* Compare the four life-cycle flags in one go. */
#define EXPECT(t, a, b, r, d) do {				\
		assert_int_equal((t)->attached, (a));		\
		assert_int_equal((t)->before, (b));		\
		assert_int_equal((t)->ran, (r));		\
		assert_int_equal((t)->detached, (d));		\
	} while (0)

static void trace_point(void *event, enum tevent_event_trace_point point,
			struct tracer *t)
{
	uint64_t tag = t->get_tag(event);

	switch (point) {
	case TEVENT_EVENT_TRACE_ATTACH:
		if (t->restart) {
			/* the previous cycle must have ended with DETACH */
			assert_true(t->attached);
			assert_true(t->detached);
			t->attached = t->before = t->ran = t->detached = false;
			t->skipped = false;
			t->restart = false;
		}
		EXPECT(t, false, false, false, false);
		t->attached = true;
		assert_int_equal(tag, t->tag);
		t->tag++;
		t->set_tag(event, t->tag);
		break;
	case TEVENT_EVENT_TRACE_BEFORE_HANDLER:
		EXPECT(t, true, false, false, false);
		t->before = true;
		assert_int_equal(tag, t->tag);
		break;
	case TEVENT_EVENT_TRACE_DETACH:
		assert_true(t->attached);
		assert_int_equal(t->before, !t->skipped);
		assert_int_equal(t->ran, !t->skipped);
		assert_false(t->detached);
		t->detached = true;
		assert_int_equal(tag, t->tag);
		break;
	}
}

static void trace_fd(struct tevent_fd *fde,
		     enum tevent_event_trace_point point, void *priv)
{
	trace_point(fde, point, priv);
}

static void trace_timer(struct tevent_timer *te,
			enum tevent_event_trace_point point, void *priv)
{
	trace_point(te, point, priv);
}

static void trace_signal(struct tevent_signal *se,
			 enum tevent_event_trace_point point, void *priv)
{
	trace_point(se, point, priv);
}

static void trace_immediate(struct tevent_immediate *im,
			    enum tevent_event_trace_point point, void *priv)
{
	trace_point(im, point, priv);
}

static void trace_queue(struct tevent_queue_entry *qe,
			enum tevent_event_trace_point point, void *priv)
{
	trace_point(qe, point, priv);
}

/* What every handler checks on entry. */
static void handler_runs(struct tracer *t, uint64_t tag)
{
	EXPECT(t, true, true, false, false);
	t->ran = true;
	assert_int_equal(tag, t->tag);
}

static void on_fd(struct tevent_context *ev, struct tevent_fd *fde,
		  uint16_t flags, void *priv)
{
	handler_runs(priv, tevent_fd_get_tag(fde));
}

static void on_timer(struct tevent_context *ev, struct tevent_timer *te,
		     struct timeval now, void *priv)
{
	handler_runs(priv, tevent_timer_get_tag(te));
}

static void on_signal(struct tevent_context *ev, struct tevent_signal *se,
		      int signum, int count, void *siginfo, void *priv)
{
	handler_runs(priv, tevent_signal_get_tag(se));
}

static void on_immediate(struct tevent_context *ev,
			 struct tevent_immediate *im, void *priv)
{
	handler_runs(priv, tevent_immediate_get_tag(im));
}

/* The *_free handlers free their own event: DETACH happens right there. */
static void on_fd_free(struct tevent_context *ev, struct tevent_fd *fde,
		       uint16_t flags, void *priv)
{
	struct tracer *t = priv;

	handler_runs(t, tevent_fd_get_tag(fde));
	TALLOC_FREE(fde);
	assert_true(t->detached);
}

static void on_timer_free(struct tevent_context *ev, struct tevent_timer *te,
			  struct timeval now, void *priv)
{
	struct tracer *t = priv;

	handler_runs(t, tevent_timer_get_tag(te));
	TALLOC_FREE(te);
	assert_true(t->detached);
}

static void on_signal_free(struct tevent_context *ev,
			   struct tevent_signal *se, int signum, int count,
			   void *siginfo, void *priv)
{
	struct tracer *t = priv;

	handler_runs(t, tevent_signal_get_tag(se));
	TALLOC_FREE(se);
	assert_true(t->detached);
}

static void on_immediate_free(struct tevent_context *ev,
			      struct tevent_immediate *im, void *priv)
{
	struct tracer *t = priv;

	handler_runs(t, tevent_immediate_get_tag(im));
	TALLOC_FREE(im);
	assert_true(t->detached);
}

/*
 * Reschedules its own immediate twice from inside the handler: each
 * schedule ends the running cycle (DETACH) and starts a new one (ATTACH
 * with a new tag); the second one also counts as a skipped cycle.
 */
static void on_immediate_reschedule(struct tevent_context *ev,
				    struct tevent_immediate *im, void *priv)
{
	struct tracer *t = priv;
	uint64_t tag = tevent_immediate_get_tag(im);

	handler_runs(t, tag);

	assert_false(t->restart);
	t->restart = true;
	tevent_schedule_immediate(im, t->ev, on_immediate, t);
	assert_false(t->restart);
	assert_false(t->skipped);
	EXPECT(t, true, false, false, false);
	assert_int_not_equal(tag, t->tag);
	tag = tevent_immediate_get_tag(im);
	assert_int_equal(tag, t->tag);

	t->skipped = true;
	t->restart = true;
	tevent_schedule_immediate(im, t->ev, on_immediate, t);
	assert_false(t->restart);
	assert_false(t->skipped);
	EXPECT(t, true, false, false, false);
	assert_int_not_equal(tag, t->tag);
	tag = tevent_immediate_get_tag(im);
	assert_int_equal(tag, t->tag);
}

static uint64_t fd_gettag(const void *e) { return tevent_fd_get_tag(e); }
static void fd_settag(void *e, uint64_t v) { tevent_fd_set_tag(e, v); }
static uint64_t timer_tag(const void *e) { return tevent_timer_get_tag(e); }
static void timer_set(void *e, uint64_t v) { tevent_timer_set_tag(e, v); }
static uint64_t signal_tag(const void *e) { return tevent_signal_get_tag(e); }
static void signal_set(void *e, uint64_t v) { tevent_signal_set_tag(e, v); }
static uint64_t imm_tag(const void *e) { return tevent_immediate_get_tag(e); }
static void imm_set(void *e, uint64_t v) { tevent_immediate_set_tag(e, v); }
static uint64_t qe_tag(const void *e) { return tevent_queue_entry_get_tag(e); }
static void qe_set(void *e, uint64_t v) { tevent_queue_entry_set_tag(e, v); }

static int setup(void **state)
{
	struct tracer *t = talloc_zero(NULL, struct tracer);

	assert_non_null(t);
	t->ev = tevent_context_init(t);
	assert_non_null(t->ev);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, t->s), 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tracer *t = *state;
	int s0, s1;

	t->get_tag = NULL;
	t->set_tag = NULL;
	tevent_set_trace_fd_callback(t->ev, NULL, NULL);
	tevent_set_trace_timer_callback(t->ev, NULL, NULL);
	tevent_set_trace_signal_callback(t->ev, NULL, NULL);
	tevent_set_trace_immediate_callback(t->ev, NULL, NULL);
	tevent_set_trace_queue_callback(t->ev, NULL, NULL);
	s0 = t->s[0];
	s1 = t->s[1];
	/* events still watching the socket go first */
	TALLOC_FREE(t);
	close(s0);
	close(s1);
	return 0;
}

static void watch_fds(struct tracer *t)
{
	t->get_tag = fd_gettag;
	t->set_tag = fd_settag;
	tevent_set_trace_fd_callback(t->ev, trace_fd, t);
	EXPECT(t, false, false, false, false);
}

static void watch_timers(struct tracer *t)
{
	t->get_tag = timer_tag;
	t->set_tag = timer_set;
	tevent_set_trace_timer_callback(t->ev, trace_timer, t);
	EXPECT(t, false, false, false, false);
}

static void watch_signals(struct tracer *t)
{
	t->get_tag = signal_tag;
	t->set_tag = signal_set;
	tevent_set_trace_signal_callback(t->ev, trace_signal, t);
	EXPECT(t, false, false, false, false);
}

static void watch_immediates(struct tracer *t)
{
	t->get_tag = imm_tag;
	t->set_tag = imm_set;
	tevent_set_trace_immediate_callback(t->ev, trace_immediate, t);
	EXPECT(t, false, false, false, false);
}

/* ------------------------------------------------------------------ */
/* fd                                                                  */

static struct tevent_fd *writable_fde(struct tracer *t,
				      tevent_fd_handler_t handler)
{
	struct tevent_fd *fde;

	fde = tevent_add_fd(t->ev, t, t->s[0], TEVENT_FD_WRITE, handler, t);
	assert_non_null(fde);
	EXPECT(t, true, false, false, false);
	return fde;
}

static void up_trace_fd__loop(void **state)
{
	struct tracer *t = *state;
	struct tevent_fd *fde;

	watch_fds(t);
	fde = writable_fde(t, on_fd);

	TEVENT_FD_WRITEABLE(fde);
	tevent_loop_once(t->ev);
	EXPECT(t, true, true, true, false);

	TALLOC_FREE(fde);
	EXPECT(t, true, true, true, true);
}

static void up_trace_fd__reset(void **state)
{
	struct tracer *t = *state;

	watch_fds(t);
	(void)writable_fde(t, on_fd);

	/* re-initialising the context drops its fd events */
	t->skipped = true;
	tevent_re_initialise(t->ev);
	EXPECT(t, true, false, false, true);
}

static void up_trace_fd__free(void **state)
{
	struct tracer *t = *state;
	struct tevent_fd *fde;

	watch_fds(t);
	fde = writable_fde(t, on_fd);

	t->skipped = true;
	TALLOC_FREE(fde);
	EXPECT(t, true, false, false, true);
}

static void up_trace_fd__free_in_handler(void **state)
{
	struct tracer *t = *state;
	struct tevent_fd *fde;

	watch_fds(t);
	fde = writable_fde(t, on_fd_free);

	TEVENT_FD_WRITEABLE(fde);
	tevent_loop_once(t->ev);
	EXPECT(t, true, true, true, true);
}

/* ------------------------------------------------------------------ */
/* timer                                                               */

static struct tevent_timer *due_timer(struct tracer *t,
				      tevent_timer_handler_t handler)
{
	struct tevent_timer *te;

	te = tevent_add_timer(t->ev, t, tevent_timeval_current(), handler, t);
	assert_non_null(te);
	EXPECT(t, true, false, false, false);
	return te;
}

static void up_trace_timer__loop(void **state)
{
	struct tracer *t = *state;

	watch_timers(t);
	(void)due_timer(t, on_timer);

	tevent_loop_once(t->ev);
	/* a timer is gone once its handler returned */
	EXPECT(t, true, true, true, true);
}

static void up_trace_timer__reset(void **state)
{
	struct tracer *t = *state;
	struct tevent_timer *te;

	watch_timers(t);
	te = due_timer(t, on_timer);

	/* moving a timer is a detach followed by a new attach */
	assert_false(t->restart);
	t->skipped = true;
	t->restart = true;
	tevent_update_timer(te, tevent_timeval_current());
	assert_false(t->restart);
	assert_false(t->skipped);
	EXPECT(t, true, false, false, false);

	t->skipped = true;
	tevent_re_initialise(t->ev);
	EXPECT(t, true, false, false, true);
}

static void up_trace_timer__free(void **state)
{
	struct tracer *t = *state;
	struct tevent_timer *te;

	watch_timers(t);
	te = due_timer(t, on_timer);

	t->skipped = true;
	TALLOC_FREE(te);
	EXPECT(t, true, false, false, true);
}

static void up_trace_timer__free_in_handler(void **state)
{
	struct tracer *t = *state;

	watch_timers(t);
	(void)due_timer(t, on_timer_free);

	tevent_loop_once(t->ev);
	EXPECT(t, true, true, true, true);
}

/* ------------------------------------------------------------------ */
/* signal                                                              */

static struct tevent_signal *usr1_event(struct tracer *t,
					tevent_signal_handler_t handler)
{
	struct tevent_signal *se;

	se = tevent_add_signal(t->ev, t, SIGUSR1, 0, handler, t);
	assert_non_null(se);
	EXPECT(t, true, false, false, false);
	return se;
}

static void up_trace_signal__loop(void **state)
{
	struct tracer *t = *state;
	struct tevent_signal *se;

	watch_signals(t);
	se = usr1_event(t, on_signal);

	kill(getpid(), SIGUSR1);
	tevent_loop_once(t->ev);
	EXPECT(t, true, true, true, false);

	TALLOC_FREE(se);
	EXPECT(t, true, true, true, true);
}

/* Upstream's "reset" for signals frees the event, like "free" below. */
static void up_trace_signal__reset(void **state)
{
	struct tracer *t = *state;
	struct tevent_signal *se;

	watch_signals(t);
	se = usr1_event(t, on_signal);

	t->skipped = true;
	TALLOC_FREE(se);
	EXPECT(t, true, false, false, true);
}

static void up_trace_signal__free(void **state)
{
	struct tracer *t = *state;
	struct tevent_signal *se;

	watch_signals(t);
	se = usr1_event(t, on_signal);

	t->skipped = true;
	TALLOC_FREE(se);
	EXPECT(t, true, false, false, true);
}

static void up_trace_signal__free_in_handler(void **state)
{
	struct tracer *t = *state;

	watch_signals(t);
	(void)usr1_event(t, on_signal_free);

	kill(getpid(), SIGUSR1);
	tevent_loop_once(t->ev);
	EXPECT(t, true, true, true, true);
}

/* ------------------------------------------------------------------ */
/* immediate                                                           */

/* Creating an immediate attaches nothing; scheduling it does. */
static struct tevent_immediate *scheduled(struct tracer *t,
					  tevent_immediate_handler_t handler)
{
	struct tevent_immediate *im = tevent_create_immediate(t);

	assert_non_null(im);
	EXPECT(t, false, false, false, false);
	tevent_schedule_immediate(im, t->ev, handler, t);
	EXPECT(t, true, false, false, false);
	return im;
}

static void up_trace_immediate__loop(void **state)
{
	struct tracer *t = *state;

	watch_immediates(t);
	(void)scheduled(t, on_immediate);

	tevent_loop_once(t->ev);
	/* an immediate detaches itself once it ran */
	EXPECT(t, true, true, true, true);
}

static void up_trace_immediate__reset(void **state)
{
	struct tracer *t = *state;

	watch_immediates(t);
	(void)scheduled(t, on_immediate);

	t->skipped = true;
	tevent_re_initialise(t->ev);
	EXPECT(t, true, false, false, true);
}

static void up_trace_immediate__free(void **state)
{
	struct tracer *t = *state;
	struct tevent_immediate *im;

	watch_immediates(t);
	im = scheduled(t, on_immediate);

	t->skipped = true;
	TALLOC_FREE(im);
	EXPECT(t, true, false, false, true);
}

static void up_trace_immediate__free_in_handler(void **state)
{
	struct tracer *t = *state;

	watch_immediates(t);
	(void)scheduled(t, on_immediate_free);

	tevent_loop_once(t->ev);
	EXPECT(t, true, true, true, true);
}

static void up_trace_immediate__reschedule(void **state)
{
	struct tracer *t = *state;
	struct tevent_immediate *im;

	watch_immediates(t);
	im = scheduled(t, on_immediate);

	/* rescheduling before it ran: a skipped cycle, then a new one */
	assert_false(t->restart);
	t->skipped = true;
	t->restart = true;
	tevent_schedule_immediate(im, t->ev, on_immediate_reschedule, t);
	assert_false(t->restart);
	assert_false(t->skipped);
	EXPECT(t, true, false, false, false);

	/* runs on_immediate_reschedule, which leaves a fresh cycle behind */
	tevent_loop_once(t->ev);
	assert_false(t->restart);
	EXPECT(t, true, false, false, false);

	tevent_loop_once(t->ev);
	EXPECT(t, true, true, true, true);
}

/* ------------------------------------------------------------------ */
/* get/set of the callbacks                                            */

static void up_get_set_trace_fd_callback(void **state)
{
	struct tracer *t = *state;
	tevent_trace_fd_callback_t cb = NULL;
	void *pvt = NULL;

	tevent_get_trace_fd_callback(t->ev, &cb, &pvt);
	assert_null(cb);
	assert_null(pvt);

	tevent_set_trace_fd_callback(t->ev, trace_fd, t);
	tevent_get_trace_fd_callback(t->ev, &cb, &pvt);
	assert_ptr_equal(cb, trace_fd);
	assert_ptr_equal(pvt, t);

	tevent_set_trace_fd_callback(t->ev, NULL, NULL);
	tevent_get_trace_fd_callback(t->ev, &cb, &pvt);
	assert_null(cb);
	assert_null(pvt);
}

static void up_get_set_trace_timer_callback(void **state)
{
	struct tracer *t = *state;
	tevent_trace_timer_callback_t cb = NULL;
	void *pvt = NULL;

	tevent_get_trace_timer_callback(t->ev, &cb, &pvt);
	assert_null(cb);
	assert_null(pvt);

	tevent_set_trace_timer_callback(t->ev, trace_timer, t);
	tevent_get_trace_timer_callback(t->ev, &cb, &pvt);
	assert_ptr_equal(cb, trace_timer);
	assert_ptr_equal(pvt, t);

	tevent_set_trace_timer_callback(t->ev, NULL, NULL);
	tevent_get_trace_timer_callback(t->ev, &cb, &pvt);
	assert_null(cb);
	assert_null(pvt);
}

static void up_get_set_trace_signal_callback(void **state)
{
	struct tracer *t = *state;
	tevent_trace_signal_callback_t cb = NULL;
	void *pvt = NULL;

	tevent_get_trace_signal_callback(t->ev, &cb, &pvt);
	assert_null(cb);
	assert_null(pvt);

	tevent_set_trace_signal_callback(t->ev, trace_signal, t);
	tevent_get_trace_signal_callback(t->ev, &cb, &pvt);
	assert_ptr_equal(cb, trace_signal);
	assert_ptr_equal(pvt, t);

	tevent_set_trace_signal_callback(t->ev, NULL, NULL);
	tevent_get_trace_signal_callback(t->ev, &cb, &pvt);
	assert_null(cb);
	assert_null(pvt);
}

static void up_get_set_trace_immediate_callback(void **state)
{
	struct tracer *t = *state;
	tevent_trace_immediate_callback_t cb = NULL;
	void *pvt = NULL;

	tevent_get_trace_immediate_callback(t->ev, &cb, &pvt);
	assert_null(cb);
	assert_null(pvt);

	tevent_set_trace_immediate_callback(t->ev, trace_immediate, t);
	tevent_get_trace_immediate_callback(t->ev, &cb, &pvt);
	assert_ptr_equal(cb, trace_immediate);
	assert_ptr_equal(pvt, t);

	tevent_set_trace_immediate_callback(t->ev, NULL, NULL);
	tevent_get_trace_immediate_callback(t->ev, &cb, &pvt);
	assert_null(cb);
	assert_null(pvt);
}

/* ------------------------------------------------------------------ */
/* queue entries (beyond the upstream copy we had, same checks)        */

static void on_queue_trigger(struct tevent_req *req, void *priv)
{
	struct tracer *t = priv;

	EXPECT(t, true, true, false, false);
	t->ran = true;
}

static void up_trace_queue__loop(void **state)
{
	struct tracer *t = *state;
	struct tevent_queue *q;
	struct tevent_queue_entry *qe;
	struct tevent_req *req;
	int *st;

	t->get_tag = qe_tag;
	t->set_tag = qe_set;
	tevent_set_trace_queue_callback(t->ev, trace_queue, t);
	EXPECT(t, false, false, false, false);

	q = tevent_queue_create(t, "up_trace_queue");
	assert_non_null(q);
	req = tevent_req_create(t, &st, int);
	assert_non_null(req);

	qe = tevent_queue_add_entry(q, t->ev, req, on_queue_trigger, t);
	assert_non_null(qe);
	EXPECT(t, true, false, false, false);
	assert_int_equal(tevent_queue_entry_get_tag(qe), t->tag);

	tevent_loop_once(t->ev);
	EXPECT(t, true, true, true, false);

	/* the entry leaves the queue with its request */
	TALLOC_FREE(req);
	EXPECT(t, true, true, true, true);
	TALLOC_FREE(q);
}

static void up_get_set_trace_queue_callback(void **state)
{
	struct tracer *t = *state;
	tevent_trace_queue_callback_t cb = NULL;
	void *pvt = NULL;

	tevent_get_trace_queue_callback(t->ev, &cb, &pvt);
	assert_null(cb);
	assert_null(pvt);

	tevent_set_trace_queue_callback(t->ev, trace_queue, t);
	tevent_get_trace_queue_callback(t->ev, &cb, &pvt);
	assert_ptr_equal(cb, trace_queue);
	assert_ptr_equal(pvt, t);

	tevent_set_trace_queue_callback(t->ev, NULL, NULL);
	tevent_get_trace_queue_callback(t->ev, &cb, &pvt);
	assert_null(cb);
	assert_null(pvt);
}

#define CASE(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		CASE(up_trace_fd__loop),
		CASE(up_trace_fd__reset),
		CASE(up_trace_fd__free),
		CASE(up_trace_fd__free_in_handler),
		CASE(up_trace_timer__loop),
		CASE(up_trace_timer__reset),
		CASE(up_trace_timer__free),
		CASE(up_trace_timer__free_in_handler),
		CASE(up_trace_signal__loop),
		CASE(up_trace_signal__reset),
		CASE(up_trace_signal__free),
		CASE(up_trace_signal__free_in_handler),
		CASE(up_trace_immediate__loop),
		CASE(up_trace_immediate__reset),
		CASE(up_trace_immediate__free),
		CASE(up_trace_immediate__free_in_handler),
		CASE(up_trace_immediate__reschedule),
		CASE(up_get_set_trace_fd_callback),
		CASE(up_get_set_trace_timer_callback),
		CASE(up_get_set_trace_signal_callback),
		CASE(up_get_set_trace_immediate_callback),
		CASE(up_trace_queue__loop),
		CASE(up_get_set_trace_queue_callback),
	};

	tt_check_library();
	return cmocka_run_group_tests_name("upstream tests/test_tevent_trace.c",
					   tests, NULL, NULL);
}

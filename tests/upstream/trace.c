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

struct tracer;

/* A trace callback of any kind, for comparing what get_trace returns. */
typedef void (*any_fn)(void);

/*
 * What differs between the event kinds; every case below runs the same
 * steps on whichever kind its table entry names.
 */
struct kind {
	uint64_t (*get_tag)(const void *event);
	void (*set_tag)(void *event, uint64_t tag);
	/* installs this kind's trace callback (or NULL) with PVT */
	void (*set_trace)(struct tevent_context *ev, bool on, void *pvt);
	any_fn (*get_trace)(struct tevent_context *ev, void **pvt);
	any_fn trace;
	/* creates the event; its handler calls handler_runs() */
	void *(*attach)(struct tracer *t);
	/* makes the event due (NULL: it already is) */
	void (*fire)(void *event);
	/* ends the event's life from outside (NULL: talloc_free it) */
	void (*release)(struct tracer *t, void *event);
	/* timers: move the event before "reset" (a DETACH plus an ATTACH) */
	void (*move)(void *event);
	/* the event detaches itself once its handler returned */
	bool once;
	/* "reset" frees the event instead of re-initialising the context */
	bool reset_frees;
};

struct tracer {
	struct tevent_context *ev;
	const struct kind *kind;
	int s[2];
	struct tevent_req *req;

	/* the handler frees its own event */
	bool free_in_handler;
	/* the event goes away (or is re-attached) without its handler */
	bool skipped;
	/* the next ATTACH starts a new life cycle of the same event */
	bool restart;

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
	uint64_t tag = t->kind->get_tag(event);

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
		t->kind->set_tag(event, t->tag);
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

/*
 * The typed pieces of one kind: its trace callback and trace callback
 * setter/getter (tevent_set_trace_KIND_callback and so on).
 */
#define KIND_SHIMS(KIND, TYPE)						\
static void trace_##KIND(TYPE *event,					\
			 enum tevent_event_trace_point point, void *priv) \
{									\
	trace_point(event, point, priv);				\
}									\
static void KIND##_set_trace(struct tevent_context *ev, bool on,	\
			     void *pvt)					\
{									\
	tevent_set_trace_##KIND##_callback(ev, on ? trace_##KIND : NULL, \
					   pvt);			\
}									\
static any_fn KIND##_get_trace(struct tevent_context *ev, void **pvt)	\
{									\
	tevent_trace_##KIND##_callback_t cb = NULL;			\
									\
	tevent_get_trace_##KIND##_callback(ev, &cb, pvt);		\
	return (any_fn)cb;						\
}

KIND_SHIMS(fd, struct tevent_fd)
KIND_SHIMS(timer, struct tevent_timer)
KIND_SHIMS(signal, struct tevent_signal)
KIND_SHIMS(immediate, struct tevent_immediate)
KIND_SHIMS(queue, struct tevent_queue_entry)

/* OBJ names the tag API: up_OBJ_get_tag() from up.h */
#define KIND_FIELDS(KIND, OBJ)						\
	.get_tag = up_##OBJ##_get_tag, .set_tag = up_##OBJ##_set_tag,	\
	.set_trace = KIND##_set_trace, .get_trace = KIND##_get_trace,	\
	.trace = (any_fn)trace_##KIND

/*
 * What every handler checks on entry; in the *_free_in_handler cases the
 * handler then frees its own event, so DETACH happens right there.
 */
static void handler_runs(struct tracer *t, void *event)
{
	EXPECT(t, true, true, false, false);
	t->ran = true;
	assert_int_equal(t->kind->get_tag(event), t->tag);
	if (t->free_in_handler) {
		talloc_free(event);
		assert_true(t->detached);
	}
}

static void on_fd(struct tevent_context *ev, struct tevent_fd *fde,
		  uint16_t flags, void *priv)
{
	handler_runs(priv, fde);
}

static void on_timer(struct tevent_context *ev, struct tevent_timer *te,
		     struct timeval now, void *priv)
{
	handler_runs(priv, te);
}

static void on_signal(struct tevent_context *ev, struct tevent_signal *se,
		      int signum, int count, void *siginfo, void *priv)
{
	handler_runs(priv, se);
}

static void on_immediate(struct tevent_context *ev,
			 struct tevent_immediate *im, void *priv)
{
	handler_runs(priv, im);
}

static void on_queue_trigger(struct tevent_req *req, void *priv)
{
	struct tracer *t = priv;

	EXPECT(t, true, true, false, false);
	t->ran = true;
}

/* The socket is writable from the start. */
static void *fd_attach(struct tracer *t)
{
	return tevent_add_fd(t->ev, t, t->s[0], TEVENT_FD_WRITE, on_fd, t);
}

static void fd_fire(void *fde)
{
	TEVENT_FD_WRITEABLE((struct tevent_fd *)fde);
}

static void *timer_attach(struct tracer *t)
{
	return tevent_add_timer(t->ev, t, tevent_timeval_current(), on_timer,
				t);
}

static void timer_move(void *te)
{
	tevent_update_timer(te, tevent_timeval_current());
}

static void *signal_attach(struct tracer *t)
{
	return tevent_add_signal(t->ev, t, SIGUSR1, 0, on_signal, t);
}

static void signal_fire(void *se)
{
	kill(getpid(), SIGUSR1);
}

/* Creating an immediate attaches nothing; scheduling it does. */
static void *immediate_attach(struct tracer *t)
{
	struct tevent_immediate *im = tevent_create_immediate(t);

	assert_non_null(im);
	EXPECT(t, false, false, false, false);
	tevent_schedule_immediate(im, t->ev, on_immediate, t);
	return im;
}

static void *queue_attach(struct tracer *t)
{
	struct tevent_queue *q = tevent_queue_create(t, "up_trace_queue");
	struct tevent_queue_entry *qe;
	int *st;

	assert_non_null(q);
	t->req = tevent_req_create(t, &st, int);
	assert_non_null(t->req);
	qe = tevent_queue_add_entry(q, t->ev, t->req, on_queue_trigger, t);
	assert_non_null(qe);
	assert_int_equal(tevent_queue_entry_get_tag(qe), t->tag);
	return qe;
}

/* The entry leaves the queue with its request. */
static void queue_release(struct tracer *t, void *qe)
{
	TALLOC_FREE(t->req);
}

static const struct kind fd_kind = {
	KIND_FIELDS(fd, fd),
	.attach = fd_attach,
	.fire = fd_fire,
};
static const struct kind timer_kind = {
	KIND_FIELDS(timer, timer),
	.attach = timer_attach,
	.move = timer_move,
	.once = true,
};
/* Upstream's "reset" for signals frees the event, like "free". */
static const struct kind signal_kind = {
	KIND_FIELDS(signal, signal),
	.attach = signal_attach,
	.fire = signal_fire,
	.reset_frees = true,
};
static const struct kind immediate_kind = {
	KIND_FIELDS(immediate, immediate),
	.attach = immediate_attach,
	.once = true,
};
static const struct kind queue_kind = {
	KIND_FIELDS(queue, queue_entry),
	.attach = queue_attach,
	.release = queue_release,
};

static const struct kind *const all_kinds[] = {
	&fd_kind, &timer_kind, &signal_kind, &immediate_kind, &queue_kind,
};

static int setup(void **state)
{
	struct tracer *t = talloc_zero(NULL, struct tracer);

	assert_non_null(t);
	t->kind = *state;
	t->ev = tevent_context_init(t);
	assert_non_null(t->ev);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, t->s), 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tracer *t = *state;
	size_t i;
	int s0, s1;

	for (i = 0; i < sizeof(all_kinds) / sizeof(all_kinds[0]); i++) {
		all_kinds[i]->set_trace(t->ev, false, NULL);
	}
	s0 = t->s[0];
	s1 = t->s[1];
	/* events still watching the socket go first */
	TALLOC_FREE(t);
	close(s0);
	close(s1);
	return 0;
}

/* Trace the case's kind, then create one event of it (ATTACH). */
static void *attach(struct tracer *t)
{
	void *event;

	t->kind->set_trace(t->ev, true, t);
	EXPECT(t, false, false, false, false);
	event = t->kind->attach(t);
	assert_non_null(event);
	EXPECT(t, true, false, false, false);
	return event;
}

/* Make the event due and run the loop once: its handler runs. */
static void run_once(struct tracer *t, void *event)
{
	if (t->kind->fire != NULL) {
		t->kind->fire(event);
	}
	tevent_loop_once(t->ev);
}

/* The next call re-attaches the event: DETACH, then ATTACH with a new tag. */
static void expect_restart(struct tracer *t, bool skipped)
{
	assert_false(t->restart);
	t->skipped = skipped;
	t->restart = true;
}

static void restarted(struct tracer *t)
{
	assert_false(t->restart);
	assert_false(t->skipped);
	EXPECT(t, true, false, false, false);
}

static void trace_loop(void **state)
{
	struct tracer *t = *state;
	void *event = attach(t);

	run_once(t, event);
	if (t->kind->once) {
		/* timers and immediates are gone once their handler returned */
		EXPECT(t, true, true, true, true);
		return;
	}
	EXPECT(t, true, true, true, false);

	if (t->kind->release != NULL) {
		t->kind->release(t, event);
	} else {
		talloc_free(event);
	}
	EXPECT(t, true, true, true, true);
}

static void trace_reset(void **state)
{
	struct tracer *t = *state;
	void *event = attach(t);

	if (t->kind->move != NULL) {
		/* moving a timer is a detach followed by a new attach */
		expect_restart(t, true);
		t->kind->move(event);
		restarted(t);
	}

	t->skipped = true;
	if (t->kind->reset_frees) {
		talloc_free(event);
	} else {
		/* re-initialising the context drops its events */
		tevent_re_initialise(t->ev);
	}
	EXPECT(t, true, false, false, true);
}

static void trace_free(void **state)
{
	struct tracer *t = *state;
	void *event = attach(t);

	t->skipped = true;
	talloc_free(event);
	EXPECT(t, true, false, false, true);
}

static void trace_free_in_handler(void **state)
{
	struct tracer *t = *state;

	t->free_in_handler = true;
	run_once(t, attach(t));
	EXPECT(t, true, true, true, true);
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
	int i;

	handler_runs(t, im);

	for (i = 0; i < 2; i++) {
		expect_restart(t, i == 1);
		tevent_schedule_immediate(im, t->ev, on_immediate, t);
		restarted(t);
		assert_int_not_equal(tag, t->tag);
		tag = tevent_immediate_get_tag(im);
		assert_int_equal(tag, t->tag);
	}
}

static void trace_reschedule(void **state)
{
	struct tracer *t = *state;
	struct tevent_immediate *im = attach(t);

	/* rescheduling before it ran: a skipped cycle, then a new one */
	expect_restart(t, true);
	tevent_schedule_immediate(im, t->ev, on_immediate_reschedule, t);
	restarted(t);

	/* runs on_immediate_reschedule, which leaves a fresh cycle behind */
	tevent_loop_once(t->ev);
	assert_false(t->restart);
	EXPECT(t, true, false, false, false);

	tevent_loop_once(t->ev);
	EXPECT(t, true, true, true, true);
}

static void get_set_trace_callback(void **state)
{
	struct tracer *t = *state;
	const struct kind *k = t->kind;
	any_fn cb;
	void *pvt = NULL;

	cb = k->get_trace(t->ev, &pvt);
	assert_null(cb);
	assert_null(pvt);

	k->set_trace(t->ev, true, t);
	cb = k->get_trace(t->ev, &pvt);
	assert_ptr_equal(cb, k->trace);
	assert_ptr_equal(pvt, t);

	k->set_trace(t->ev, false, NULL);
	cb = k->get_trace(t->ev, &pvt);
	assert_null(cb);
	assert_null(pvt);
}

/* Case NAME runs FN on one kind; the names are upstream's (see the top). */
#define CASE(NAME, FN, KIND) \
	{ NAME, FN, setup, teardown, (void *)&KIND##_kind }
#define TRACE(KIND, WHAT) \
	CASE("up_trace_" #KIND "__" #WHAT, trace_##WHAT, KIND)
#define GET_SET(KIND) \
	CASE("up_get_set_trace_" #KIND "_callback", get_set_trace_callback, KIND)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TRACE(fd, loop),
		TRACE(fd, reset),
		TRACE(fd, free),
		TRACE(fd, free_in_handler),
		TRACE(timer, loop),
		TRACE(timer, reset),
		TRACE(timer, free),
		TRACE(timer, free_in_handler),
		TRACE(signal, loop),
		TRACE(signal, reset),
		TRACE(signal, free),
		TRACE(signal, free_in_handler),
		TRACE(immediate, loop),
		TRACE(immediate, reset),
		TRACE(immediate, free),
		TRACE(immediate, free_in_handler),
		TRACE(immediate, reschedule),
		GET_SET(fd),
		GET_SET(timer),
		GET_SET(signal),
		GET_SET(immediate),
		TRACE(queue, loop),
		GET_SET(queue),
	};

	tt_check_library();
	return cmocka_run_group_tests_name("upstream tests/test_tevent_trace.c",
					   tests, NULL, NULL);
}

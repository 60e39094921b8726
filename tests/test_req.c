/*
 * tevent_req: creation, completion, callbacks, timeouts, printing,
 * cancellation and cleanup functions.
 *
 * Every case here also passes against Debian's libtevent 0.14.1; the few
 * entry points that only exist in newer headers are compiled in only when
 * the header has them (TEVENT_FD_ERROR appeared with 0.16).
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include <talloc.h>
#include <tevent.h>

#include "common/tt.h"

/* handlers have fixed signatures and rarely use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"

#if defined(TEVENT_FD_ERROR)
#define TT_HAVE_NEW_REQ_API 1
#endif

/* still exported; newer headers need not declare it */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wredundant-decls"
struct tevent_req *_tevent_req_create(TALLOC_CTX *mem_ctx, void *pstate,
				      size_t state_size, const char *type,
				      const char *location);
#pragma GCC diagnostic pop

/* ------------------------------------------------------------------ */
/* helpers                                                              */
/* ------------------------------------------------------------------ */

struct fixture {
	TALLOC_CTX *mem;
	struct tevent_context *ev;
};

static int setup(void **state)
{
	struct fixture *f = talloc_zero(NULL, struct fixture);

	assert_non_null(f);
	f->mem = talloc_new(f);
	assert_non_null(f->mem);
	f->ev = tevent_context_init(f);
	assert_non_null(f->ev);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	talloc_free(f);
	return 0;
}

/* An ordered log of what happened, compared as a string. */
static char g_log[2048];

static void log_add(const char *fmt, ...) PRINTF_ATTRIBUTE(1, 2);
static void log_add(const char *fmt, ...)
{
	size_t used = strlen(g_log);
	va_list ap;

	if (used != 0 && used < sizeof(g_log) - 1) {
		g_log[used++] = ' ';
		g_log[used] = '\0';
	}
	va_start(ap, fmt);
	vsnprintf(g_log + used, sizeof(g_log) - used, fmt, ap);
	va_end(ap);
}

static void log_reset(void)
{
	g_log[0] = '\0';
}

static const char *state_name(enum tevent_req_state s)
{
	switch (s) {
	case TEVENT_REQ_INIT: return "INIT";
	case TEVENT_REQ_IN_PROGRESS: return "IN_PROGRESS";
	case TEVENT_REQ_DONE: return "DONE";
	case TEVENT_REQ_USER_ERROR: return "USER_ERROR";
	case TEVENT_REQ_TIMED_OUT: return "TIMED_OUT";
	case TEVENT_REQ_NO_MEMORY: return "NO_MEMORY";
	case TEVENT_REQ_RECEIVED: return "RECEIVED";
	}
	return "?";
}

/* The state the request reports through the public API. */
static enum tevent_req_state req_state(struct tevent_req *req)
{
	enum tevent_req_state s = TEVENT_REQ_INIT;
	uint64_t err = 0;

	if (!tevent_req_is_error(req, &s, &err)) {
		return TEVENT_REQ_DONE;
	}
	return s;
}

static void sentinel_fired(struct tevent_context *ev,
			   struct tevent_timer *te,
			   struct timeval now,
			   void *private_data)
{
	bool *fired = private_data;

	*fired = true;
}

/*
 * Run the loop until everything already due has run: immediates are served
 * before timers, and an expired timer with a zero deadline sorts first, so
 * once it fires nothing scheduled before it is still pending.
 */
static void drain(struct tevent_context *ev)
{
	bool fired = false;
	struct tevent_timer *te;
	int i;

	te = tevent_add_timer(ev, ev, tevent_timeval_zero(),
			      sentinel_fired, &fired);
	assert_non_null(te);
	for (i = 0; i < 10000 && !fired; i++) {
		assert_int_equal(tevent_loop_once(ev), 0);
	}
	assert_true(fired);
}

/*
 * Loop until *counter reaches target.  The watchdog only turns a hang into
 * a failure; it is far beyond anything these cases need.
 */
static void run_until_count(struct tevent_context *ev, const int *counter,
			    int target)
{
	bool watchdog = false;
	struct tevent_timer *te;
	int i;

	te = tevent_add_timer(ev, ev, tevent_timeval_current_ofs(120, 0),
			      sentinel_fired, &watchdog);
	assert_non_null(te);
	for (i = 0; i < 100000 && *counter < target && !watchdog; i++) {
		assert_int_equal(tevent_loop_once(ev), 0);
	}
	talloc_free(te);
	assert_false(watchdog);
	assert_int_equal(*counter, target);
}

struct probe_state {
	int a;
	uint64_t b;
	char pad[333];
	void *p;
};

/* What the request callbacks observed. */
struct observed {
	int callbacks;
	bool in_progress_at_cb;
	enum tevent_req_state state_at_cb;
	void *private_seen;
	struct tevent_req *req_seen;
	bool free_in_callback;
};

static void observe_cb(struct tevent_req *req)
{
	struct observed *o = tevent_req_callback_data_void(req);

	o->callbacks++;
	o->req_seen = req;
	o->in_progress_at_cb = tevent_req_is_in_progress(req);
	o->state_at_cb = req_state(req);
	log_add("cb(%s)", state_name(o->state_at_cb));
	if (o->free_in_callback) {
		talloc_free(req);
	}
}

static void cleanup_logger(struct tevent_req *req, enum tevent_req_state s)
{
	log_add("cleanup(%s)", state_name(s));
}

/* ------------------------------------------------------------------ */
/* creation                                                             */
/* ------------------------------------------------------------------ */

static void test_create_state_named_zeroed(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps = NULL;
	struct probe_state zero;
	struct tevent_req *req;

	memset(&zero, 0, sizeof(zero));

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	assert_non_null(ps);

	/* the request is a talloc child of mem_ctx with the upstream name */
	assert_ptr_equal(talloc_parent(req), f->mem);
	assert_string_equal(talloc_get_name(req), "struct tevent_req");

	/* the state is a zeroed talloc child of the request, named by type */
	assert_ptr_equal(talloc_parent(ps), req);
	assert_string_equal(talloc_get_name(ps), "struct probe_state");
	assert_true(talloc_get_size(ps) >= sizeof(struct probe_state));
	assert_memory_equal(ps, &zero, sizeof(zero));
	assert_non_null(talloc_get_type(ps, struct probe_state));

	/* tevent_req_data hands back the very same state */
	assert_ptr_equal(tevent_req_data(req, struct probe_state), ps);
	assert_ptr_equal(_tevent_req_data(req), ps);

	/* a fresh request is running */
	assert_true(tevent_req_is_in_progress(req));
	assert_int_equal(req_state(req), TEVENT_REQ_IN_PROGRESS);

	talloc_free(req);
}

struct tiny_state {
	uint8_t v;
};

static void test_create_entry_points(void **state)
{
	struct fixture *f = *state;
	struct tiny_state *ts = NULL;
	struct tevent_req *req;

	/* the pre-0.15 entry point, still exported */
	req = _tevent_req_create(f->mem, &ts, sizeof(struct tiny_state),
				 "struct tiny_state", __location__);
	assert_non_null(req);
	assert_non_null(ts);
	assert_int_equal(ts->v, 0);
	assert_string_equal(talloc_get_name(ts), "struct tiny_state");
	assert_ptr_equal(talloc_parent(ts), req);
	talloc_free(req);

#ifdef TT_HAVE_NEW_REQ_API
	ts = NULL;
	req = __tevent_req_create(f->mem, &ts, sizeof(struct tiny_state),
				  "struct tiny_state", __func__, __location__);
	assert_non_null(req);
	assert_non_null(ts);
	assert_int_equal(ts->v, 0);
	assert_string_equal(talloc_get_name(ts), "struct tiny_state");
	assert_ptr_equal(talloc_parent(ts), req);
	talloc_free(req);
#endif
}

static void test_free_parent_frees_request(void **state)
{
	struct fixture *f = *state;
	TALLOC_CTX *parent = talloc_new(f->mem);
	struct probe_state *ps;
	struct tevent_req *req;

	req = tevent_req_create(parent, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_cleanup_fn(req, cleanup_logger);

	log_reset();
	talloc_free(parent);
	assert_string_equal(g_log, "cleanup(RECEIVED)");
}

/* ------------------------------------------------------------------ */
/* callbacks and completion                                             */
/* ------------------------------------------------------------------ */

static void test_callback_data(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct observed o = { 0 };
	struct observed o2 = { 0 };
	struct tevent_req *req;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);

	tevent_req_set_callback(req, observe_cb, &o);
	assert_ptr_equal(tevent_req_callback_data_void(req), &o);
	assert_ptr_equal(_tevent_req_callback_data(req), &o);

	/* a second set_callback replaces function and data */
	tevent_req_set_callback(req, observe_cb, &o2);
	assert_ptr_equal(tevent_req_callback_data_void(req), &o2);

	log_reset();
	tevent_req_done(req);
	assert_int_equal(o.callbacks, 0);
	assert_int_equal(o2.callbacks, 1);
	assert_ptr_equal(o2.req_seen, req);
	talloc_free(req);

	/* the typed accessor checks the talloc type of the private data */
	{
		struct observed *to = talloc_zero(f->mem, struct observed);

		assert_non_null(to);
		req = tevent_req_create(f->mem, &ps, struct probe_state);
		assert_non_null(req);
		tevent_req_set_callback(req, observe_cb, to);
		assert_ptr_equal(tevent_req_callback_data(req, struct observed),
				 to);
		tevent_req_done(req);
		assert_int_equal(to->callbacks, 1);
		talloc_free(req);
	}
}

static void test_done_calls_back_synchronously(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct observed o = { 0 };
	struct tevent_req *req;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_callback(req, observe_cb, &o);

	log_reset();
	tevent_req_done(req);

	/* no loop turn needed: the callback ran inside tevent_req_done() */
	assert_int_equal(o.callbacks, 1);
	assert_false(o.in_progress_at_cb);
	assert_int_equal(o.state_at_cb, TEVENT_REQ_DONE);
	assert_false(tevent_req_is_in_progress(req));
	assert_int_equal(req_state(req), TEVENT_REQ_DONE);

	/* and nothing else is pending for it */
	drain(f->ev);
	assert_int_equal(o.callbacks, 1);
	talloc_free(req);
}

static void test_done_without_callback(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct tevent_req *req;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_done(req);
	assert_int_equal(req_state(req), TEVENT_REQ_DONE);

	/* clearing the callback is allowed too */
	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_callback(req, NULL, NULL);
	tevent_req_done(req);
	assert_int_equal(req_state(req), TEVENT_REQ_DONE);
}

static void test_error(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct observed o = { 0 };
	struct tevent_req *req;
	enum tevent_req_state s;
	uint64_t err = 0;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_callback(req, observe_cb, &o);

	/* error 0 means "no error": nothing happens */
	log_reset();
	assert_false(tevent_req_error(req, 0));
	assert_int_equal(o.callbacks, 0);
	assert_true(tevent_req_is_in_progress(req));

	assert_true(tevent_req_error(req, 0x1234567890ULL));
	assert_int_equal(o.callbacks, 1);
	assert_int_equal(o.state_at_cb, TEVENT_REQ_USER_ERROR);

	assert_true(tevent_req_is_error(req, &s, &err));
	assert_int_equal(s, TEVENT_REQ_USER_ERROR);
	assert_true(err == 0x1234567890ULL);
	talloc_free(req);
}

static void test_nomem_and_oom(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct observed o = { 0 };
	struct tevent_req *req;
	enum tevent_req_state s;
	uint64_t err = 4711;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_callback(req, observe_cb, &o);

	/* a non-NULL pointer is not an allocation failure */
	assert_false(tevent_req_nomem(ps, req));
	assert_int_equal(o.callbacks, 0);
	assert_true(tevent_req_is_in_progress(req));

	assert_true(tevent_req_nomem(NULL, req));
	assert_int_equal(o.callbacks, 1);
	assert_int_equal(o.state_at_cb, TEVENT_REQ_NO_MEMORY);
	assert_true(tevent_req_is_error(req, &s, &err));
	assert_int_equal(s, TEVENT_REQ_NO_MEMORY);
	/* only USER_ERROR reports an error code */
	assert_int_equal(err, 4711);
	talloc_free(req);

	o = (struct observed) { 0 };
	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_callback(req, observe_cb, &o);
	tevent_req_oom(req);
	assert_int_equal(o.callbacks, 1);
	assert_int_equal(o.state_at_cb, TEVENT_REQ_NO_MEMORY);
	assert_int_equal(req_state(req), TEVENT_REQ_NO_MEMORY);
	talloc_free(req);
}

static void test_notify_callback(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct observed o = { 0 };
	struct tevent_req *req;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_callback(req, observe_cb, &o);

	/* notify only runs the callback; the request keeps going */
	log_reset();
	tevent_req_notify_callback(req);
	assert_int_equal(o.callbacks, 1);
	assert_true(o.in_progress_at_cb);
	assert_true(tevent_req_is_in_progress(req));

	tevent_req_notify_callback(req);
	assert_int_equal(o.callbacks, 2);

	tevent_req_done(req);
	assert_int_equal(o.callbacks, 3);
	assert_int_equal(o.state_at_cb, TEVENT_REQ_DONE);
	talloc_free(req);
}

static void test_is_in_progress_and_is_error(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct tevent_req *req;
	enum tevent_req_state s;
	uint64_t err;
	bool ret;

	/* in progress: counts as "not done", so is_error says true */
	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	s = TEVENT_REQ_RECEIVED;
	err = 99;
	ret = tevent_req_is_error(req, &s, &err);
	assert_true(ret);
	assert_int_equal(s, TEVENT_REQ_IN_PROGRESS);
	assert_int_equal(err, 99);
	assert_true(tevent_req_is_in_progress(req));

	/* done: false and the outputs are left alone */
	tevent_req_done(req);
	s = TEVENT_REQ_RECEIVED;
	err = 99;
	ret = tevent_req_is_error(req, &s, &err);
	assert_false(ret);
	assert_int_equal(s, TEVENT_REQ_RECEIVED);
	assert_int_equal(err, 99);
	assert_false(tevent_req_is_in_progress(req));

	/* received */
	tevent_req_received(req);
	err = 99;
	ret = tevent_req_is_error(req, &s, &err);
	assert_true(ret);
	assert_int_equal(s, TEVENT_REQ_RECEIVED);
	assert_int_equal(err, 99);
	assert_false(tevent_req_is_in_progress(req));
	talloc_free(req);

	/* user error */
	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_error(req, EINVAL);
	err = 0;
	ret = tevent_req_is_error(req, &s, &err);
	assert_true(ret);
	assert_int_equal(s, TEVENT_REQ_USER_ERROR);
	assert_int_equal(err, EINVAL);
	assert_false(tevent_req_is_in_progress(req));
	talloc_free(req);

	/* no memory */
	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_oom(req);
	err = 99;
	ret = tevent_req_is_error(req, &s, &err);
	assert_true(ret);
	assert_int_equal(s, TEVENT_REQ_NO_MEMORY);
	assert_int_equal(err, 99);
	talloc_free(req);

	/* timed out */
	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	assert_true(tevent_req_set_endtime(req, f->ev, tevent_timeval_zero()));
	drain(f->ev);
	err = 99;
	ret = tevent_req_is_error(req, &s, &err);
	assert_true(ret);
	assert_int_equal(s, TEVENT_REQ_TIMED_OUT);
	assert_int_equal(err, 99);
	assert_false(tevent_req_is_in_progress(req));
	talloc_free(req);
}

/* ------------------------------------------------------------------ */
/* tevent_req_post / defer_callback / poll                              */
/* ------------------------------------------------------------------ */

static void test_post_calls_back_from_loop(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct observed o = { 0 };
	struct tevent_req *req;

	/* the usual "finished inside _send()" pattern */
	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_cleanup_fn(req, cleanup_logger);
	log_reset();
	tevent_req_done(req);
	assert_ptr_equal(tevent_req_post(req, f->ev), req);
	tevent_req_set_callback(req, observe_cb, &o);

	/* nothing synchronous */
	assert_int_equal(o.callbacks, 0);
	assert_string_equal(g_log, "cleanup(DONE)");

	assert_int_equal(tevent_loop_once(f->ev), 0);
	assert_int_equal(o.callbacks, 1);
	assert_int_equal(o.state_at_cb, TEVENT_REQ_DONE);
	/* the re-delivery from the loop does not repeat the cleanup */
	assert_string_equal(g_log, "cleanup(DONE) cb(DONE)");

	drain(f->ev);
	assert_int_equal(o.callbacks, 1);

	talloc_free(req);
	assert_string_equal(g_log, "cleanup(DONE) cb(DONE) cleanup(RECEIVED)");
}

static void test_post_keeps_error(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct observed o = { 0 };
	struct tevent_req *req;
	enum tevent_req_state s;
	uint64_t err = 0;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_error(req, ENOENT);
	tevent_req_post(req, f->ev);
	tevent_req_set_callback(req, observe_cb, &o);
	log_reset();
	drain(f->ev);
	assert_int_equal(o.callbacks, 1);
	assert_int_equal(o.state_at_cb, TEVENT_REQ_USER_ERROR);
	assert_true(tevent_req_is_error(req, &s, &err));
	assert_int_equal(s, TEVENT_REQ_USER_ERROR);
	assert_int_equal(err, ENOENT);
	talloc_free(req);
}

static void test_post_then_free_no_callback(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct observed o = { 0 };
	struct tevent_req *req;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_done(req);
	tevent_req_post(req, f->ev);
	tevent_req_set_callback(req, observe_cb, &o);
	talloc_free(req);

	/* the posted delivery died with the request */
	drain(f->ev);
	assert_int_equal(o.callbacks, 0);
}

/*
 * Samba replaces a request's talloc destructor with its own while the
 * request is pending, and clears it again afterwards (tldap, smbXcli).
 * Whatever the request had scheduled must still go with it: a freed
 * request never times out and never calls back.
 */
static void test_free_with_caller_destructor(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct observed o = { 0 };
	struct tevent_req *posted, *timed;

	/* finished and posted, then the caller's destructor, then freed */
	posted = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(posted);
	tevent_req_done(posted);
	tevent_req_post(posted, f->ev);
	tevent_req_set_callback(posted, observe_cb, &o);
	talloc_set_destructor(posted, tt_caller_destructor);

	/* running with a timeout, destructor cleared as smbXcli does */
	timed = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(timed);
	tevent_req_set_callback(timed, observe_cb, &o);
	assert_true(tevent_req_set_endtime(timed, f->ev,
					   tevent_timeval_zero()));
	talloc_set_destructor(timed, NULL);

	tt_caller_destructor_runs = 0;
	talloc_free(posted);
	talloc_free(timed);
	assert_int_equal(tt_caller_destructor_runs, 1);
	drain(f->ev);
	assert_int_equal(o.callbacks, 0);
}

static void test_defer_callback(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct observed o = { 0 };
	struct tevent_req *req;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_callback(req, observe_cb, &o);
	tevent_req_set_cleanup_fn(req, cleanup_logger);
	tevent_req_defer_callback(req, f->ev);

	log_reset();
	tevent_req_done(req);
	/* the state and cleanup change now, the callback comes from the loop */
	assert_int_equal(o.callbacks, 0);
	assert_false(tevent_req_is_in_progress(req));
	assert_int_equal(req_state(req), TEVENT_REQ_DONE);
	assert_string_equal(g_log, "cleanup(DONE)");

	assert_int_equal(tevent_loop_once(f->ev), 0);
	assert_int_equal(o.callbacks, 1);
	assert_int_equal(o.state_at_cb, TEVENT_REQ_DONE);
	assert_string_equal(g_log, "cleanup(DONE) cb(DONE)");

	drain(f->ev);
	assert_int_equal(o.callbacks, 1);
	talloc_free(req);
}

static void test_defer_callback_error(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct observed o = { 0 };
	struct tevent_req *req;
	enum tevent_req_state s;
	uint64_t err = 0;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_callback(req, observe_cb, &o);
	tevent_req_defer_callback(req, f->ev);
	log_reset();
	tevent_req_error(req, EPIPE);
	assert_int_equal(o.callbacks, 0);
	drain(f->ev);
	assert_int_equal(o.callbacks, 1);
	assert_int_equal(o.state_at_cb, TEVENT_REQ_USER_ERROR);
	assert_true(tevent_req_is_error(req, &s, &err));
	assert_int_equal(err, EPIPE);
	talloc_free(req);
}

struct finish_later {
	struct tevent_req *req;
	int turns;
};

static void finish_later_handler(struct tevent_context *ev,
				 struct tevent_immediate *im,
				 void *private_data)
{
	struct finish_later *fl = private_data;

	if (--fl->turns > 0) {
		tevent_schedule_immediate(im, ev, finish_later_handler, fl);
		return;
	}
	tevent_req_done(fl->req);
}

static int g_loop_turns;

static void count_turns(enum tevent_trace_point p, void *private_data)
{
	if (p == TEVENT_TRACE_BEFORE_LOOP_ONCE) {
		g_loop_turns++;
	}
}

static void test_poll(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct tevent_req *req;
	struct tevent_immediate *im;
	struct finish_later fl;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	im = tevent_create_immediate(req);
	assert_non_null(im);
	fl = (struct finish_later) { .req = req, .turns = 5 };
	tevent_schedule_immediate(im, f->ev, finish_later_handler, &fl);

	g_loop_turns = 0;
	tevent_set_trace_callback(f->ev, count_turns, NULL);
	assert_true(tevent_req_poll(req, f->ev));
	assert_int_equal(req_state(req), TEVENT_REQ_DONE);
	assert_int_equal(g_loop_turns, 5);

	/* polling a finished request returns at once without a loop turn */
	g_loop_turns = 0;
	assert_true(tevent_req_poll(req, f->ev));
	assert_int_equal(g_loop_turns, 0);
	tevent_set_trace_callback(f->ev, NULL, NULL);
	talloc_free(req);
}

/* ------------------------------------------------------------------ */
/* tevent_req_received                                                  */
/* ------------------------------------------------------------------ */

static int g_state_destructed;

static int probe_state_destructor(struct probe_state *ps)
{
	g_state_destructed++;
	log_add("state-freed");
	return 0;
}

static char *custom_print(struct tevent_req *req, TALLOC_CTX *mem_ctx)
{
	return talloc_strdup(mem_ctx, "custom!");
}

static bool cancel_true(struct tevent_req *req)
{
	log_add("cancel");
	return true;
}

static void test_received(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct observed o = { 0 };
	struct tevent_req *req;
	char *child;
	char *str;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	child = talloc_strdup(ps, "owned by the state");
	assert_non_null(child);
	talloc_set_destructor(ps, probe_state_destructor);
	tevent_req_set_callback(req, observe_cb, &o);
	tevent_req_set_print_fn(req, custom_print);
	tevent_req_set_cancel_fn(req, cancel_true);
	log_reset();
	tevent_req_done(req);
	assert_int_equal(o.callbacks, 1);

	g_state_destructed = 0;
	tevent_req_received(req);

	/* the state and everything under it is gone */
	assert_int_equal(g_state_destructed, 1);
	assert_null(_tevent_req_data(req));

	/* the request itself stays usable */
	assert_string_equal(talloc_get_name(req), "struct tevent_req");
	assert_ptr_equal(talloc_parent(req), f->mem);
	assert_false(tevent_req_is_in_progress(req));
	assert_int_equal(req_state(req), TEVENT_REQ_RECEIVED);

	/* print and cancel hooks were dropped */
	str = tevent_req_print(f->mem, req);
	assert_non_null(str);
	assert_string_not_equal(str, "custom!");
	assert_non_null(strstr(str, "tevent_req["));
	log_reset();
	assert_false(tevent_req_cancel(req));
	assert_string_equal(g_log, "");

	/* received twice is harmless */
	tevent_req_received(req);
	assert_int_equal(g_state_destructed, 1);
	talloc_free(req);
	assert_int_equal(g_state_destructed, 1);
}

static void test_received_drops_endtime(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct observed o = { 0 };
	struct tevent_req *req;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_callback(req, observe_cb, &o);
	assert_true(tevent_req_set_endtime(req, f->ev, tevent_timeval_zero()));

	/* received while still running: the timeout goes away with it */
	tevent_req_received(req);
	assert_int_equal(req_state(req), TEVENT_REQ_RECEIVED);
	drain(f->ev);
	assert_int_equal(o.callbacks, 0);
	assert_int_equal(req_state(req), TEVENT_REQ_RECEIVED);
	talloc_free(req);
}

static void test_received_while_posted(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct observed o = { 0 };
	struct tevent_req *req;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_done(req);
	tevent_req_post(req, f->ev);
	tevent_req_set_callback(req, observe_cb, &o);

	/* received drops the pending post delivery as well */
	tevent_req_received(req);
	drain(f->ev);
	assert_int_equal(o.callbacks, 0);
	talloc_free(req);
}

/* ------------------------------------------------------------------ */
/* endtime                                                              */
/* ------------------------------------------------------------------ */

static void test_endtime_times_out(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct observed o = { 0 };
	struct tevent_req *req;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_callback(req, observe_cb, &o);
	tevent_req_set_cleanup_fn(req, cleanup_logger);
	assert_true(tevent_req_set_endtime(req, f->ev,
					   tevent_timeval_current_ofs(0, 1000)));
	log_reset();

	/* not synchronous */
	assert_int_equal(o.callbacks, 0);
	run_until_count(f->ev, &o.callbacks, 1);
	assert_int_equal(o.callbacks, 1);
	assert_int_equal(o.state_at_cb, TEVENT_REQ_TIMED_OUT);
	assert_int_equal(req_state(req), TEVENT_REQ_TIMED_OUT);
	assert_string_equal(g_log, "cleanup(TIMED_OUT) cb(TIMED_OUT)");
	talloc_free(req);
	assert_string_equal(g_log,
			    "cleanup(TIMED_OUT) cb(TIMED_OUT) "
			    "cleanup(RECEIVED)");
}

static void test_endtime_replaced_and_reset(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct observed o = { 0 };
	struct tevent_req *req;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_callback(req, observe_cb, &o);

	/* a later set_endtime replaces the earlier one */
	assert_true(tevent_req_set_endtime(req, f->ev, tevent_timeval_zero()));
	assert_true(tevent_req_set_endtime(
		req, f->ev, tevent_timeval_current_ofs(3600, 0)));
	drain(f->ev);
	assert_int_equal(o.callbacks, 0);
	assert_true(tevent_req_is_in_progress(req));

	/* reset_endtime removes the timeout altogether */
	assert_true(tevent_req_set_endtime(req, f->ev, tevent_timeval_zero()));
	tevent_req_reset_endtime(req);
	drain(f->ev);
	assert_int_equal(o.callbacks, 0);
	assert_true(tevent_req_is_in_progress(req));

	/* resetting without an endtime is harmless */
	tevent_req_reset_endtime(req);

	log_reset();
	tevent_req_done(req);
	assert_int_equal(o.callbacks, 1);
	talloc_free(req);
}

static void test_endtime_cancelled_by_completion(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct observed o = { 0 };
	struct tevent_req *req;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_callback(req, observe_cb, &o);
	assert_true(tevent_req_set_endtime(req, f->ev, tevent_timeval_zero()));
	log_reset();
	tevent_req_done(req);
	assert_int_equal(o.callbacks, 1);
	drain(f->ev);
	assert_int_equal(o.callbacks, 1);
	assert_int_equal(req_state(req), TEVENT_REQ_DONE);
	talloc_free(req);
}

/* ------------------------------------------------------------------ */
/* printing                                                             */
/* ------------------------------------------------------------------ */

static void test_print_default(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct tevent_req *req;
	const struct tevent_req_profile *prof;
	const char *create_loc = NULL;
	const char *finish_loc;
	char *got, *want, *viaprint;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);

	/* the profile records the creation location for us */
	assert_true(tevent_req_set_profile(req));
	prof = tevent_req_get_profile(req);
	assert_non_null(prof);
	tevent_req_profile_get_start(prof, &create_loc, NULL);
	assert_non_null(create_loc);
	assert_non_null(strstr(create_loc, __FILE__));

	tevent_req_error(req, 0x2a); finish_loc = __location__;

	want = talloc_asprintf(f->mem,
			       "tevent_req[%p/%s]: state[%d] "
			       "error[%lld (0x%llX)]  state[%s (%p)] "
			       "timer[%p] finish[%s]",
			       (void *)req, create_loc,
			       (int)TEVENT_REQ_USER_ERROR,
			       (long long)0x2a, (unsigned long long)0x2a,
			       "struct probe_state", (void *)ps,
			       NULL, finish_loc);
	got = tevent_req_default_print(req, f->mem);
	assert_non_null(got);
	assert_ptr_equal(talloc_parent(got), f->mem);
	assert_string_equal(got, want);

	/* without a print fn, tevent_req_print is the default */
	viaprint = tevent_req_print(f->mem, req);
	assert_string_equal(viaprint, want);

	/* a pending endtime shows up as a non-NULL timer */
	{
		struct probe_state *ps2;
		struct tevent_req *req2;
		char *s;

		req2 = tevent_req_create(f->mem, &ps2, struct probe_state);
		assert_non_null(req2);
		s = tevent_req_print(f->mem, req2);
		assert_non_null(strstr(s, "timer[(nil)]"));
		assert_true(tevent_req_set_endtime(
			req2, f->ev, tevent_timeval_current_ofs(3600, 0)));
		s = tevent_req_print(f->mem, req2);
		assert_null(strstr(s, "timer[(nil)]"));
		want = talloc_asprintf(f->mem, "state[%d] error[0 (0x0)]",
				       (int)TEVENT_REQ_IN_PROGRESS);
		assert_non_null(strstr(s, want));
		talloc_free(req2);
	}
	talloc_free(req);
}

static char *wrapping_print(struct tevent_req *req, TALLOC_CTX *mem_ctx)
{
	char *base = tevent_req_default_print(req, mem_ctx);

	if (base == NULL) {
		return NULL;
	}
	return talloc_asprintf_append_buffer(base, " +extra");
}

static void test_print_fn(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct tevent_req *req;
	TALLOC_CTX *tmp = talloc_new(f->mem);
	char *s, *base;
	size_t blen;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);

	tevent_req_set_print_fn(req, custom_print);
	s = tevent_req_print(tmp, req);
	assert_string_equal(s, "custom!");
	assert_ptr_equal(talloc_parent(s), tmp);

	/* a print fn may build on the default text */
	tevent_req_set_print_fn(req, wrapping_print);
	s = tevent_req_print(tmp, req);
	base = tevent_req_default_print(req, tmp);
	blen = strlen(base);
	assert_int_equal(strncmp(s, base, blen), 0);
	assert_string_equal(s + blen, " +extra");

	/* and clearing it restores the default */
	tevent_req_set_print_fn(req, NULL);
	s = tevent_req_print(tmp, req);
	assert_string_equal(s, base);

	/* a NULL request prints as such */
	s = tevent_req_print(tmp, NULL);
	assert_string_equal(s, "tevent_req[NULL]");

	talloc_free(tmp);
	talloc_free(req);
}

/* ------------------------------------------------------------------ */
/* cancel                                                               */
/* ------------------------------------------------------------------ */

static struct tevent_req *g_cancel_req;
static int g_cancel_calls;

static bool cancel_records(struct tevent_req *req)
{
	g_cancel_req = req;
	g_cancel_calls++;
	return true;
}

static bool cancel_refuses(struct tevent_req *req)
{
	g_cancel_req = req;
	g_cancel_calls++;
	return false;
}

static bool cancel_and_finish(struct tevent_req *req)
{
	g_cancel_calls++;
	tevent_req_error(req, ECANCELED);
	return true;
}

static void test_cancel(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct observed o = { 0 };
	struct tevent_req *req;
	enum tevent_req_state s;
	uint64_t err = 0;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);

	/* no cancel function: cannot be cancelled */
	assert_false(tevent_req_cancel(req));
	assert_true(tevent_req_is_in_progress(req));

	g_cancel_calls = 0;
	g_cancel_req = NULL;
	tevent_req_set_cancel_fn(req, cancel_records);
	assert_true(tevent_req_cancel(req));
	assert_int_equal(g_cancel_calls, 1);
	assert_ptr_equal(g_cancel_req, req);
	/* cancel only asks: the request is still running */
	assert_true(tevent_req_is_in_progress(req));

	tevent_req_set_cancel_fn(req, cancel_refuses);
	assert_false(tevent_req_cancel(req));
	assert_int_equal(g_cancel_calls, 2);

	tevent_req_set_cancel_fn(req, NULL);
	assert_false(tevent_req_cancel(req));
	assert_int_equal(g_cancel_calls, 2);

	/* the usual implementation finishes the request with an error */
	tevent_req_set_callback(req, observe_cb, &o);
	tevent_req_set_cancel_fn(req, cancel_and_finish);
	log_reset();
	assert_true(tevent_req_cancel(req));
	assert_int_equal(g_cancel_calls, 3);
	assert_int_equal(o.callbacks, 1);
	assert_true(tevent_req_is_error(req, &s, &err));
	assert_int_equal(s, TEVENT_REQ_USER_ERROR);
	assert_int_equal(err, ECANCELED);

	/* a finished request still has its cancel fn until received */
	assert_true(tevent_req_cancel(req));
	assert_int_equal(g_cancel_calls, 4);
	tevent_req_received(req);
	assert_false(tevent_req_cancel(req));
	assert_int_equal(g_cancel_calls, 4);
	talloc_free(req);
}

/* ------------------------------------------------------------------ */
/* cleanup functions                                                    */
/* ------------------------------------------------------------------ */

static void test_cleanup_done_received_free(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct observed o = { 0 };
	struct tevent_req *req;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_callback(req, observe_cb, &o);
	tevent_req_set_cleanup_fn(req, cleanup_logger);
	talloc_set_destructor(ps, probe_state_destructor);

	log_reset();
	tevent_req_done(req);
	/* the cleanup runs before the caller's callback */
	assert_string_equal(g_log, "cleanup(DONE) cb(DONE)");

	/* received: cleanup first, while the state still exists */
	tevent_req_received(req);
	assert_string_equal(g_log,
			    "cleanup(DONE) cb(DONE) cleanup(RECEIVED) "
			    "state-freed");

	/* freeing a received request does not call it again */
	talloc_free(req);
	assert_string_equal(g_log,
			    "cleanup(DONE) cb(DONE) cleanup(RECEIVED) "
			    "state-freed");
}

static void test_cleanup_error_then_free(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct observed o = { 0 };
	struct tevent_req *req;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_callback(req, observe_cb, &o);
	tevent_req_set_cleanup_fn(req, cleanup_logger);
	talloc_set_destructor(ps, probe_state_destructor);

	log_reset();
	tevent_req_error(req, EIO);
	assert_string_equal(g_log, "cleanup(USER_ERROR) cb(USER_ERROR)");

	/* a plain free goes through tevent_req_received */
	talloc_free(req);
	assert_string_equal(g_log,
			    "cleanup(USER_ERROR) cb(USER_ERROR) "
			    "cleanup(RECEIVED) state-freed");
}

static void test_cleanup_free_in_progress(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct tevent_req *req;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_cleanup_fn(req, cleanup_logger);
	log_reset();
	talloc_free(req);
	assert_string_equal(g_log, "cleanup(RECEIVED)");
}

static void test_cleanup_nomem_and_timeout(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct tevent_req *req;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_cleanup_fn(req, cleanup_logger);
	log_reset();
	tevent_req_oom(req);
	talloc_free(req);
	assert_string_equal(g_log, "cleanup(NO_MEMORY) cleanup(RECEIVED)");

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_cleanup_fn(req, cleanup_logger);
	assert_true(tevent_req_set_endtime(req, f->ev, tevent_timeval_zero()));
	log_reset();
	drain(f->ev);
	assert_string_equal(g_log, "cleanup(TIMED_OUT)");
	tevent_req_received(req);
	talloc_free(req);
	assert_string_equal(g_log, "cleanup(TIMED_OUT) cleanup(RECEIVED)");
}

static void test_cleanup_set_after_done(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct tevent_req *req;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_done(req);

	/* installed after completion: only the later state changes count */
	log_reset();
	tevent_req_set_cleanup_fn(req, cleanup_logger);
	assert_string_equal(g_log, "");
	tevent_req_post(req, f->ev);
	drain(f->ev);
	assert_string_equal(g_log, "");
	talloc_free(req);
	assert_string_equal(g_log, "cleanup(RECEIVED)");
}

static void test_cleanup_cleared(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct tevent_req *req;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_cleanup_fn(req, cleanup_logger);
	tevent_req_set_cleanup_fn(req, NULL);
	log_reset();
	tevent_req_done(req);
	talloc_free(req);
	assert_string_equal(g_log, "");
}

static void test_cleanup_free_in_callback(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct observed o = { .free_in_callback = true };
	struct tevent_req *req;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_callback(req, observe_cb, &o);
	tevent_req_set_cleanup_fn(req, cleanup_logger);
	talloc_set_destructor(ps, probe_state_destructor);
	log_reset();
	tevent_req_done(req);
	assert_string_equal(g_log,
			    "cleanup(DONE) cb(DONE) cleanup(RECEIVED) "
			    "state-freed");
}

static int g_recursions;

static void cleanup_that_receives(struct tevent_req *req,
				  enum tevent_req_state s)
{
	log_add("cleanup(%s)", state_name(s));
	if (s == TEVENT_REQ_DONE && g_recursions++ == 0) {
		/* moving on to RECEIVED from inside the cleanup is allowed */
		tevent_req_received(req);
	}
}

static void test_cleanup_recursion_each_state_once(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct tevent_req *req;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	tevent_req_set_cleanup_fn(req, cleanup_that_receives);
	g_recursions = 0;
	log_reset();
	tevent_req_done(req);
	assert_string_equal(g_log, "cleanup(DONE) cleanup(RECEIVED)");
	talloc_free(req);
	assert_string_equal(g_log, "cleanup(DONE) cleanup(RECEIVED)");
}

static void cleanup_state_alive(struct tevent_req *req,
				enum tevent_req_state s)
{
	struct probe_state *ps = _tevent_req_data(req);

	/* the state is still there for the cleanup, whatever the reason */
	log_add("cleanup(%s,%s)", state_name(s),
		ps != NULL && ps->a == 42 ? "state" : "nostate");
}

static void test_cleanup_sees_state(void **state)
{
	struct fixture *f = *state;
	struct probe_state *ps;
	struct tevent_req *req;

	req = tevent_req_create(f->mem, &ps, struct probe_state);
	assert_non_null(req);
	ps->a = 42;
	tevent_req_set_cleanup_fn(req, cleanup_state_alive);
	log_reset();
	tevent_req_error(req, 1);
	talloc_free(req);
	assert_string_equal(g_log,
			    "cleanup(USER_ERROR,state) "
			    "cleanup(RECEIVED,state)");
}

/* ------------------------------------------------------------------ */
/* a classic send/recv pair with a subrequest                           */
/* ------------------------------------------------------------------ */

struct add_state {
	int a, b, sum;
};

static void add_step(struct tevent_context *ev, struct tevent_immediate *im,
		     void *private_data)
{
	struct tevent_req *req = talloc_get_type_abort(private_data,
						       struct tevent_req);
	struct add_state *st = tevent_req_data(req, struct add_state);

	st->sum = st->a + st->b;
	tevent_req_done(req);
}

static struct tevent_req *add_send(TALLOC_CTX *mem_ctx,
				   struct tevent_context *ev, int a, int b)
{
	struct tevent_req *req;
	struct add_state *st;
	struct tevent_immediate *im;

	req = tevent_req_create(mem_ctx, &st, struct add_state);
	if (req == NULL) {
		return NULL;
	}
	st->a = a;
	st->b = b;
	if (a < 0) {
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}
	im = tevent_create_immediate(st);
	if (tevent_req_nomem(im, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_schedule_immediate(im, ev, add_step, req);
	return req;
}

static int add_recv(struct tevent_req *req, int *sum)
{
	struct add_state *st = tevent_req_data(req, struct add_state);
	enum tevent_req_state s;
	uint64_t err;

	if (tevent_req_is_error(req, &s, &err)) {
		tevent_req_received(req);
		return s == TEVENT_REQ_USER_ERROR ? (int)err : -1;
	}
	*sum = st->sum;
	tevent_req_received(req);
	return 0;
}

struct twice_state {
	struct tevent_context *ev;
	int round;
	int total;
};

static void twice_done(struct tevent_req *subreq);

static struct tevent_req *twice_send(TALLOC_CTX *mem_ctx,
				     struct tevent_context *ev, int a)
{
	struct tevent_req *req, *subreq;
	struct twice_state *st;

	req = tevent_req_create(mem_ctx, &st, struct twice_state);
	if (req == NULL) {
		return NULL;
	}
	st->ev = ev;
	subreq = add_send(st, ev, a, a);
	if (tevent_req_nomem(subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(subreq, twice_done, req);
	return req;
}

static void twice_done(struct tevent_req *subreq)
{
	struct tevent_req *req = tevent_req_callback_data(subreq,
							  struct tevent_req);
	struct twice_state *st = tevent_req_data(req, struct twice_state);
	int sum = 0;
	int ret;

	ret = add_recv(subreq, &sum);
	TALLOC_FREE(subreq);
	if (tevent_req_error(req, ret)) {
		return;
	}
	st->total += sum;
	if (++st->round < 2) {
		subreq = add_send(st, st->ev, sum, 1);
		if (tevent_req_nomem(subreq, req)) {
			return;
		}
		tevent_req_set_callback(subreq, twice_done, req);
		return;
	}
	tevent_req_done(req);
}

static int twice_recv(struct tevent_req *req, int *total)
{
	struct twice_state *st = tevent_req_data(req, struct twice_state);
	enum tevent_req_state s;
	uint64_t err;

	if (tevent_req_is_error(req, &s, &err)) {
		tevent_req_received(req);
		return (int)err;
	}
	*total = st->total;
	tevent_req_received(req);
	return 0;
}

static void test_subrequest_chain(void **state)
{
	struct fixture *f = *state;
	struct tevent_req *req;
	int total = 0;
	size_t blocks_before = talloc_total_blocks(f->mem);

	req = twice_send(f->mem, f->ev, 5);
	assert_non_null(req);
	assert_true(tevent_req_poll(req, f->ev));
	assert_int_equal(twice_recv(req, &total), 0);
	/* (5+5) + ((5+5)+1) */
	assert_int_equal(total, 21);
	talloc_free(req);
	assert_int_equal(talloc_total_blocks(f->mem), blocks_before);

	/* an error from the subrequest propagates */
	req = twice_send(f->mem, f->ev, -3);
	assert_non_null(req);
	assert_true(tevent_req_poll(req, f->ev));
	assert_int_equal(twice_recv(req, &total), EINVAL);
	talloc_free(req);
	assert_int_equal(talloc_total_blocks(f->mem), blocks_before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_state_named_zeroed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_entry_points, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_parent_frees_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_callback_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_done_calls_back_synchronously, setup, teardown),
		cmocka_unit_test_setup_teardown(test_done_without_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nomem_and_oom, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notify_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_is_in_progress_and_is_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_calls_back_from_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_keeps_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_then_free_no_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_with_caller_destructor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defer_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defer_callback_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_poll, setup, teardown),
		cmocka_unit_test_setup_teardown(test_received, setup, teardown),
		cmocka_unit_test_setup_teardown(test_received_drops_endtime, setup, teardown),
		cmocka_unit_test_setup_teardown(test_received_while_posted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_endtime_times_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_endtime_replaced_and_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_endtime_cancelled_by_completion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_print_default, setup, teardown),
		cmocka_unit_test_setup_teardown(test_print_fn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cleanup_done_received_free, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cleanup_error_then_free, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cleanup_free_in_progress, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cleanup_nomem_and_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cleanup_set_after_done, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cleanup_cleared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cleanup_free_in_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cleanup_recursion_each_state_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cleanup_sees_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subrequest_chain, setup, teardown),
	};

	tt_check_library();
	return cmocka_run_group_tests_name("tevent_req", tests, NULL, NULL);
}

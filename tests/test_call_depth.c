/*
 * tevent_thread_call_depth_*: request call depth tracking.
 *
 * Since 0.15 the library reports the request flow to a per-thread callback
 * (tevent_thread_call_depth_set_callback) with the request, its depth and a
 * function name.  The depth of a request is its parent's depth plus one
 * when it is created on the state of another request (talloc_parent of the
 * mem_ctx is a tevent_req), else 0.
 *
 * 0.14 had no callback; instead tevent_thread_call_depth_activate()
 * registered a size_t that the library kept up to date.  Those cases are
 * compiled against headers without the callback API (they are how the tests
 * were checked against Debian's 0.14.1); with a newer header the old entry
 * points are only called to show they are still there and harmless.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include <talloc.h>
#include <tevent.h>

#include "common/tt.h"

/* handlers have fixed signatures and rarely use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"

#if defined(TEVENT_FD_ERROR)
#define TT_HAVE_CALL_DEPTH_CALLBACK 1
#endif

/*
 * The 0.14 entry points remain in the ABI; newer headers may mark them
 * deprecated or drop their prototypes.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#pragma GCC diagnostic ignored "-Wredundant-decls"
void tevent_thread_call_depth_activate(size_t *ptr);
void tevent_thread_call_depth_deactivate(void);
void tevent_thread_call_depth_start(struct tevent_req *req);
struct tevent_req *_tevent_req_create(TALLOC_CTX *mem_ctx, void *pstate,
				      size_t state_size, const char *type,
				      const char *location);
#ifdef TEVENT_FD_ERROR
void _tevent_thread_call_depth_reset_from_req(struct tevent_req *req,
					      const char *fname);
#endif

static void old_activate(size_t *ptr)
{
	tevent_thread_call_depth_activate(ptr);
}

static void old_deactivate(void)
{
	tevent_thread_call_depth_deactivate();
}

static void old_start(struct tevent_req *req)
{
	tevent_thread_call_depth_start(req);
}
#pragma GCC diagnostic pop

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
#ifdef TT_HAVE_CALL_DEPTH_CALLBACK
	tevent_thread_call_depth_set_callback(NULL, NULL);
#else
	old_deactivate();
#endif
	talloc_free(*state);
	return 0;
}

static char g_log[4096];

static void log_add(const char *fmt, ...) PRINTF_ATTRIBUTE(1, 2)
	__attribute__((unused));
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

static void log_reset(void) __attribute__((unused));
static void log_reset(void)
{
	g_log[0] = '\0';
}

struct cd_state {
	int v;
};

static void sentinel_fired(struct tevent_context *ev, struct tevent_timer *te,
			   struct timeval now, void *private_data)
{
	*(bool *)private_data = true;
}

static void drain(struct tevent_context *ev)
{
	bool fired = false;
	int i;

	assert_non_null(tevent_add_timer(ev, ev, tevent_timeval_zero(),
					 sentinel_fired, &fired));
	for (i = 0; i < 10000 && !fired; i++) {
		assert_int_equal(tevent_loop_once(ev), 0);
	}
	assert_true(fired);
}

/* The old entry points can always be called. */
static void test_old_entry_points_callable(void **state)
{
	struct fixture *f = *state;
	struct cd_state *cs;
	struct tevent_req *req;
	size_t depth = 12345;

	old_activate(&depth);
	req = tevent_req_create(f->mem, &cs, struct cd_state);
	assert_non_null(req);
	old_start(req);
	tevent_thread_call_depth_reset_from_req(req);
	tevent_req_done(req);
	talloc_free(req);
	old_deactivate();
	old_deactivate();
}

#ifdef TT_HAVE_CALL_DEPTH_CALLBACK

/* ------------------------------------------------------------------ */
/* the flow callback (0.15 and later)                                   */
/* ------------------------------------------------------------------ */

/* names for requests, registered when they are created */
static struct {
	const void *req;
	const char *name;
} g_names[32];
static int g_n_names;
static const char *g_next_name;
static int g_null_req_events;
static int g_marker;

static const char *req_name(const void *req)
{
	int i;

	/* newest first: a freed request's address may be reused */
	for (i = g_n_names - 1; i >= 0; i--) {
		if (g_names[i].req == req) {
			return g_names[i].name;
		}
	}
	return "?";
}

static void names_reset(void)
{
	g_n_names = 0;
	g_next_name = NULL;
	g_null_req_events = 0;
}

static const char *cmd_name(enum tevent_thread_call_depth_cmd cmd)
{
	switch (cmd) {
	case TEVENT_CALL_FLOW_REQ_RESET: return "RESET";
	case TEVENT_CALL_FLOW_REQ_CREATE: return "CREATE";
	case TEVENT_CALL_FLOW_REQ_CANCEL: return "CANCEL";
	case TEVENT_CALL_FLOW_REQ_CLEANUP: return "CLEANUP";
	case TEVENT_CALL_FLOW_REQ_NOTIFY_CB: return "NOTIFY_CB";
	case TEVENT_CALL_FLOW_REQ_QUEUE_ENTER: return "QUEUE_ENTER";
	case TEVENT_CALL_FLOW_REQ_QUEUE_TRIGGER: return "QUEUE_TRIGGER";
	case TEVENT_CALL_FLOW_REQ_QUEUE_LEAVE: return "QUEUE_LEAVE";
	}
	return "?";
}

static void flow_recorder(void *private_data,
			  enum tevent_thread_call_depth_cmd cmd,
			  struct tevent_req *req,
			  size_t depth,
			  const char *fname)
{
	assert_ptr_equal(private_data, &g_marker);

	if (req == NULL) {
		/*
		 * A loop turn may announce "back at depth 0" without a
		 * request; that is not part of the request flow checked here.
		 */
		assert_int_equal(cmd, TEVENT_CALL_FLOW_REQ_RESET);
		assert_int_equal(depth, 0);
		g_null_req_events++;
		return;
	}
	if (cmd == TEVENT_CALL_FLOW_REQ_CREATE && g_next_name != NULL) {
		assert_true(g_n_names < 32);
		g_names[g_n_names].req = req;
		g_names[g_n_names].name = g_next_name;
		g_n_names++;
		g_next_name = NULL;
	}
	if (cmd == TEVENT_CALL_FLOW_REQ_QUEUE_LEAVE) {
		/* only the depth and trigger name, see the queue case */
		log_add("%s(%zu,%s)", cmd_name(cmd), depth,
			fname != NULL ? fname : "-");
		return;
	}
	log_add("%s(%s,%zu,%s)", cmd_name(cmd), req_name(req), depth,
		fname != NULL ? fname : "-");
}

static struct tevent_req *named_create(TALLOC_CTX *mem_ctx, const char *name,
				       struct cd_state **pstate)
{
	struct tevent_req *req;

	g_next_name = name;
	req = tevent_req_create(mem_ctx, pstate, struct cd_state);
	assert_non_null(req);
	assert_null(g_next_name);
	return req;
}

static void test_flow_create_depths(void **state)
{
	struct fixture *f = *state;
	struct cd_state *top_s, *mid_s, *low_s, *x_s;
	struct tevent_req *top, *mid, *low, *side, *legacy;

	names_reset();
	log_reset();
	tevent_thread_call_depth_set_callback(flow_recorder, &g_marker);

	top = named_create(f->mem, "top", &top_s);
	mid = named_create(top_s, "mid", &mid_s);
	low = named_create(mid_s, "low", &low_s);
	/* created on a request (not its state): not a subrequest */
	side = named_create(top, "side", &x_s);

	/* the pre-0.15 entry point reports no function name */
	g_next_name = "legacy";
	legacy = _tevent_req_create(low_s, &x_s, sizeof(struct cd_state),
				    "struct cd_state", __location__);
	assert_non_null(legacy);

	assert_string_equal(g_log,
			    "CREATE(top,0,named_create) "
			    "CREATE(mid,1,named_create) "
			    "CREATE(low,2,named_create) "
			    "CREATE(side,0,named_create) "
			    "CREATE(legacy,3,-)");

	/* the creation name is the caller of tevent_req_create() */
	log_reset();
	g_next_name = "direct";
	side = tevent_req_create(f->mem, &x_s, struct cd_state);
	assert_non_null(side);
	assert_string_equal(g_log,
			    "CREATE(direct,0,test_flow_create_depths)");

	/* no callback, no calls */
	tevent_thread_call_depth_set_callback(NULL, NULL);
	log_reset();
	talloc_free(top);
	(void)mid;
	(void)low;
	assert_string_equal(g_log, "");
}

static void cd_sub_done(struct tevent_req *subreq)
{
	struct tevent_req *req = tevent_req_callback_data(subreq,
							  struct tevent_req);

	log_add("in-callback");
	TALLOC_FREE(subreq);
	tevent_req_done(req);
}

static void cd_cleanup(struct tevent_req *req, enum tevent_req_state s)
{
	log_add("cleanup-fn");
}

static bool cd_cancel(struct tevent_req *req)
{
	return true;
}

static void test_flow_finish_notify_cleanup(void **state)
{
	struct fixture *f = *state;
	struct cd_state *top_s, *sub_s;
	struct tevent_req *top, *sub;

	names_reset();
	log_reset();
	tevent_thread_call_depth_set_callback(flow_recorder, &g_marker);

	top = named_create(f->mem, "top", &top_s);
	sub = named_create(top_s, "sub", &sub_s);
	tevent_req_set_callback(sub, cd_sub_done, top);
	tevent_req_set_cleanup_fn(sub, cd_cleanup);
	tevent_req_set_cleanup_fn(top, cd_cleanup);
	log_reset();

	/*
	 * sub finishes: its cleanup (at its own depth), then the parent's
	 * callback is announced one level up, under the callback's name.
	 * Inside, freeing sub runs its RECEIVED cleanup, then top finishes.
	 */
	tevent_req_done(sub);
	assert_string_equal(g_log,
			    "CLEANUP(sub,1,cd_cleanup) cleanup-fn "
			    "NOTIFY_CB(sub,0,cd_sub_done) in-callback "
			    "CLEANUP(sub,1,cd_cleanup) cleanup-fn "
			    "CLEANUP(top,0,cd_cleanup) cleanup-fn");

	/* a reset reports the request's depth and the given name */
	log_reset();
	_tevent_thread_call_depth_reset_from_req(top, "explicit");
	assert_string_equal(g_log, "RESET(top,0,explicit)");

	/*
	 * The public spelling passes the caller's __func__ (it is a macro
	 * over the function above); a plain function call would give none.
	 */
	log_reset();
	tevent_thread_call_depth_reset_from_req(top);
	if (strcmp(g_log, "RESET(top,0,-)") != 0) {
		assert_string_equal(
			g_log, "RESET(top,0,test_flow_finish_notify_cleanup)");
	}

	/* the function of that name (0.16.0 binaries call it) gives none */
	log_reset();
	(tevent_thread_call_depth_reset_from_req)(top);
	assert_string_equal(g_log, "RESET(top,0,-)");

	/* cancel is announced whether or not there is a cancel function */
	log_reset();
	assert_false(tevent_req_cancel(top));
	tevent_req_set_cancel_fn(top, cd_cancel);
	assert_true(tevent_req_cancel(top));
	assert_string_equal(g_log, "CANCEL(top,0,-) CANCEL(top,0,cd_cancel)");

	log_reset();
	talloc_free(top);
	assert_string_equal(g_log, "CLEANUP(top,0,cd_cleanup) cleanup-fn");
}

static void test_flow_cleanup_without_fn(void **state)
{
	struct fixture *f = *state;
	struct cd_state *s;
	struct tevent_req *req;

	names_reset();
	log_reset();
	tevent_thread_call_depth_set_callback(flow_recorder, &g_marker);
	req = named_create(f->mem, "plain", &s);
	log_reset();

	/* the cleanup step is announced even without a cleanup function */
	tevent_req_error(req, 3);
	assert_string_equal(g_log, "CLEANUP(plain,0,-)");
	tevent_req_received(req);
	assert_string_equal(g_log, "CLEANUP(plain,0,-) CLEANUP(plain,0,-)");
	talloc_free(req);
	assert_string_equal(g_log, "CLEANUP(plain,0,-) CLEANUP(plain,0,-)");
}

static void cd_trigger(struct tevent_req *req, void *private_data)
{
	log_add("trigger(%s)", req_name(req));
}

static void test_flow_queue(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct cd_state *top_s, *s1, *s2;
	struct tevent_req *top, *job1, *job2;

	names_reset();
	log_reset();
	tevent_thread_call_depth_set_callback(flow_recorder, &g_marker);
	top = named_create(f->mem, "top", &top_s);
	job1 = named_create(top_s, "job1", &s1);
	job2 = named_create(top_s, "job2", &s2);
	log_reset();

	assert_true(tevent_queue_add(q, f->ev, job1, cd_trigger, NULL));
	assert_true(tevent_queue_add(q, f->ev, job2, cd_trigger, NULL));
	assert_string_equal(g_log,
			    "QUEUE_ENTER(job1,1,cd_trigger) "
			    "QUEUE_ENTER(job2,1,cd_trigger)");

	log_reset();
	drain(f->ev);
	assert_string_equal(g_log,
			    "QUEUE_TRIGGER(job1,1,cd_trigger) trigger(job1)");

	/* the request's own teardown comes before its entry leaves */
	log_reset();
	talloc_free(job1);
	assert_string_equal(g_log,
			    "CLEANUP(job1,1,-) QUEUE_LEAVE(1,cd_trigger)");

	log_reset();
	drain(f->ev);
	assert_string_equal(g_log,
			    "QUEUE_TRIGGER(job2,1,cd_trigger) trigger(job2)");
	log_reset();
	talloc_free(job2);
	assert_string_equal(g_log,
			    "CLEANUP(job2,1,-) QUEUE_LEAVE(1,cd_trigger)");

	/*
	 * The direct trigger of optimize_empty is not announced: like 0.14,
	 * which only moved the depth variable when the trigger came from
	 * the queue's immediate, only that path reports QUEUE_TRIGGER.
	 */
	job1 = named_create(top_s, "job3", &s1);
	log_reset();
	assert_non_null(tevent_queue_add_optimize_empty(q, f->ev, job1,
							cd_trigger, NULL));
	assert_string_equal(g_log,
			    "QUEUE_ENTER(job3,1,cd_trigger) trigger(job3)");
	talloc_free(job1);
	talloc_free(top);
}

struct thread_result {
	bool done;
};

static void *other_thread(void *arg)
{
	struct thread_result *r = arg;
	struct cd_state *s;
	struct tevent_req *req;

	/* the main thread's callback is not this thread's */
	req = tevent_req_create(NULL, &s, struct cd_state);
	if (req != NULL) {
		tevent_req_done(req);
		talloc_free(req);
	}
	r->done = true;
	return NULL;
}

static void test_flow_callback_is_per_thread(void **state)
{
	struct thread_result r = { false };
	pthread_t t;

	names_reset();
	log_reset();
	tevent_thread_call_depth_set_callback(flow_recorder, &g_marker);
	assert_int_equal(pthread_create(&t, NULL, other_thread, &r), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(r.done);
	assert_string_equal(g_log, "");
}

static void test_flow_after_old_calls(void **state)
{
	struct fixture *f = *state;
	struct cd_state *s;
	struct tevent_req *req;
	size_t depth = 0;

	/* the 0.14 calls do not get in the way of the callback */
	old_activate(&depth);
	old_deactivate();
	names_reset();
	log_reset();
	tevent_thread_call_depth_set_callback(flow_recorder, &g_marker);
	req = named_create(f->mem, "r", &s);
	assert_string_equal(g_log, "CREATE(r,0,named_create)");
	talloc_free(req);
}

/* What a callback that is about to be replaced hears. */
struct replaced_log {
	int calls;
	enum tevent_thread_call_depth_cmd cmd;
	const struct tevent_req *req;
	size_t depth;
	char fname[64];
};

static void replaced_recorder(void *private_data,
			      enum tevent_thread_call_depth_cmd cmd,
			      struct tevent_req *req,
			      size_t depth,
			      const char *fname)
{
	struct replaced_log *l = private_data;

	l->calls++;
	l->cmd = cmd;
	l->req = req;
	l->depth = depth;
	snprintf(l->fname, sizeof(l->fname), "%s", fname != NULL ? fname : "-");
}


/* The observer was called once, with the reset that replacing or removing
 * it sends. */
static void assert_heard_one_reset(const struct replaced_log *l)
{
	assert_int_equal(l->calls, 1);
	assert_int_equal(l->cmd, TEVENT_CALL_FLOW_REQ_RESET);
	assert_null(l->req);
	assert_int_equal(l->depth, 0);
	assert_string_equal(l->fname, "tevent_thread_call_depth_set_callback");
}

/*
 * Replacing or removing the callback first tells the one in place that the
 * depth is back at 0: a RESET without a request, named after
 * tevent_thread_call_depth_set_callback(). Installing the first callback
 * tells nobody; the new callback does not hear its own installation.
 */
static void test_flow_replacing_callback_resets(void **state)
{
	struct replaced_log a = { 0 };
	struct replaced_log b = { 0 };

	tevent_thread_call_depth_set_callback(NULL, NULL);

	tevent_thread_call_depth_set_callback(replaced_recorder, &a);
	assert_int_equal(a.calls, 0);

	tevent_thread_call_depth_set_callback(replaced_recorder, &b);
	assert_int_equal(b.calls, 0);
	assert_heard_one_reset(&a);

	tevent_thread_call_depth_set_callback(NULL, NULL);
	assert_heard_one_reset(&a);
	assert_heard_one_reset(&b);

	/* with none in place, removing it again tells nobody */
	tevent_thread_call_depth_set_callback(NULL, NULL);
	assert_int_equal(b.calls, 1);
}

#else /* !TT_HAVE_CALL_DEPTH_CALLBACK */

/* ------------------------------------------------------------------ */
/* the 0.14 external variable                                           */
/* ------------------------------------------------------------------ */

static size_t g_depth;
static size_t g_depth_in_cb;

static void depth_cb(struct tevent_req *req)
{
	g_depth_in_cb = g_depth;
}

static void depth_trigger(struct tevent_req *req, void *private_data)
{
	g_depth_in_cb = g_depth;
}

static void test_var_tracking(void **state)
{
	struct fixture *f = *state;
	struct cd_state *s, *s2, *s3;
	struct tevent_req *req, *sub, *subsub, *other;
	struct tevent_queue *q;

	g_depth = 5;
	old_activate(&g_depth);
	assert_int_equal(g_depth, 0);

	/* untracked requests do not touch it */
	g_depth = 7;
	req = tevent_req_create(f->mem, &s, struct cd_state);
	sub = tevent_req_create(s, &s2, struct cd_state);
	assert_int_equal(g_depth, 7);
	talloc_free(sub);

	old_start(req);
	assert_int_equal(g_depth, 1);
	sub = tevent_req_create(s, &s2, struct cd_state);
	assert_int_equal(g_depth, 2);
	subsub = tevent_req_create(s2, &s3, struct cd_state);
	assert_int_equal(g_depth, 3);
	g_depth = 7;
	other = tevent_req_create(sub, &s3, struct cd_state);
	assert_int_equal(g_depth, 7);
	talloc_free(other);

	tevent_thread_call_depth_reset_from_req(req);
	assert_int_equal(g_depth, 1);

	/* a callback runs at the depth of the request's parent */
	tevent_req_set_callback(subsub, depth_cb, NULL);
	g_depth = 7;
	tevent_req_done(subsub);
	assert_int_equal(g_depth_in_cb, 2);

	/* a queue trigger runs at the depth of the queued request */
	q = tevent_queue_create(f->mem, "q");
	g_depth = 7;
	assert_true(tevent_queue_add(q, f->ev, sub, depth_trigger, NULL));
	assert_int_equal(g_depth, 7);
	g_depth_in_cb = 0;
	assert_int_equal(tevent_loop_once(f->ev), 0);
	assert_int_equal(g_depth_in_cb, 2);
	/* and each loop turn ends back at 0 */
	assert_int_equal(g_depth, 0);

	tevent_thread_call_depth_reset_from_req(subsub);
	assert_int_equal(g_depth, 3);
	old_deactivate();
	assert_int_equal(g_depth, 0);
	tevent_thread_call_depth_reset_from_req(subsub);
	assert_int_equal(g_depth, 0);
	drain(f->ev);
	talloc_free(req);
}

#endif /* TT_HAVE_CALL_DEPTH_CALLBACK */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_old_entry_points_callable, setup, teardown),
#ifdef TT_HAVE_CALL_DEPTH_CALLBACK
		cmocka_unit_test_setup_teardown(test_flow_create_depths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flow_finish_notify_cleanup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flow_cleanup_without_fn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flow_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flow_callback_is_per_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flow_after_old_calls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flow_replacing_callback_resets, setup, teardown),
#else
		cmocka_unit_test_setup_teardown(test_var_tracking, setup, teardown),
#endif
	};

	tt_check_library();
	return cmocka_run_group_tests_name("tevent_call_depth", tests, NULL, NULL);
}

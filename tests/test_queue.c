/*
 * tevent_queue: serialising requests.
 *
 * The rules checked here:
 * - adding to a running queue whose head is not yet triggered schedules the
 *   trigger through an immediate on the entry's event context; it never runs
 *   inside tevent_queue_add() (tevent_queue_add_optimize_empty() is the one
 *   exception, for an empty queue and a request without callback);
 * - the next entry is triggered when the finished request is freed (the
 *   entry is a talloc child of the request), not when it completes;
 * - freeing a waiting request removes it, freeing the queue leaves the
 *   requests alone;
 * - stop/start, untrigger, tevent_queue_wait_send/recv, entry tags and the
 *   queue trace callback (ATTACH, BEFORE_HANDLER, DETACH).
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
#include <malloc.h>
#include <cmocka.h>

#include <talloc.h>
#include <tevent.h>

#include "common/tt.h"

/* handlers have fixed signatures and rarely use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"

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

static char g_log[4096];

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

static void sentinel_fired(struct tevent_context *ev,
			   struct tevent_timer *te,
			   struct timeval now,
			   void *private_data)
{
	bool *fired = private_data;

	*fired = true;
}

/* Run the loop until everything already due (immediates first) has run. */
static void drain(struct tevent_context *ev)
{
	bool fired = false;
	int i;

	assert_non_null(tevent_add_timer(ev, ev, tevent_timeval_zero(),
					 sentinel_fired, &fired));
	for (i = 0; i < 100000 && !fired; i++) {
		assert_int_equal(tevent_loop_once(ev), 0);
	}
	assert_true(fired);
}

/* A request that does nothing by itself: the test drives it. */
struct job_state {
	const char *name;
	int triggered;
};

static struct tevent_req *job_create(TALLOC_CTX *mem_ctx, const char *name)
{
	struct job_state *js;
	struct tevent_req *req;

	req = tevent_req_create(mem_ctx, &js, struct job_state);
	assert_non_null(req);
	js->name = name;
	return req;
}

static int job_triggered(struct tevent_req *req)
{
	struct job_state *js = tevent_req_data(req, struct job_state);

	return js->triggered;
}

static void job_trigger(struct tevent_req *req, void *private_data)
{
	struct job_state *js = tevent_req_data(req, struct job_state);

	js->triggered++;
	if (private_data != NULL) {
		log_add("trigger(%s,%s)", js->name, (const char *)private_data);
	} else {
		log_add("trigger(%s)", js->name);
	}
}

/* ------------------------------------------------------------------ */

static void test_queue_create(void **state)
{
	struct fixture *f = *state;
	TALLOC_CTX *parent = talloc_new(f->mem);
	struct tevent_queue *q;

	q = tevent_queue_create(parent, "my queue");
	assert_non_null(q);
	assert_string_equal(talloc_get_name(q), "struct tevent_queue");
	assert_ptr_equal(talloc_parent(q), parent);
	assert_true(tevent_queue_running(q));
	assert_int_equal(tevent_queue_length(q), 0);

	/* it goes away with its parent */
	talloc_free(parent);

	/* a queue needs a name: without one, none is made (upstream too) */
	assert_null(tevent_queue_create(f->mem, NULL));
}

static void test_queue_add_triggers_from_loop(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct tevent_req *r1 = job_create(f->mem, "r1");
	struct tevent_req *r2 = job_create(f->mem, "r2");
	struct tevent_queue_entry *e2;

	log_reset();
	assert_true(tevent_queue_add(q, f->ev, r1, job_trigger, "p1"));
	/* never from inside tevent_queue_add() */
	assert_int_equal(job_triggered(r1), 0);
	assert_int_equal(tevent_queue_length(q), 1);

	e2 = tevent_queue_add_entry(q, f->ev, r2, job_trigger, "p2");
	assert_non_null(e2);
	/* the entry belongs to the request */
	assert_ptr_equal(talloc_parent(e2), r2);
	assert_string_equal(talloc_get_name(e2), "struct tevent_queue_entry");
	assert_int_equal(tevent_queue_length(q), 2);

	/* one loop turn runs the head's trigger, with its private data */
	assert_int_equal(tevent_loop_once(f->ev), 0);
	assert_string_equal(g_log, "trigger(r1,p1)");
	assert_int_equal(job_triggered(r1), 1);
	assert_int_equal(job_triggered(r2), 0);

	/* the head keeps the queue busy while it exists */
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1,p1)");
	assert_int_equal(tevent_queue_length(q), 2);

	talloc_free(r1);
	assert_int_equal(tevent_queue_length(q), 1);
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1,p1) trigger(r2,p2)");
	talloc_free(r2);
	assert_int_equal(tevent_queue_length(q), 0);
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1,p1) trigger(r2,p2)");
}

static void dummy_cb(struct tevent_req *req)
{
}

static void test_queue_optimize_empty(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct tevent_req *r1 = job_create(f->mem, "r1");
	struct tevent_req *r2 = job_create(f->mem, "r2");
	struct tevent_req *r3 = job_create(f->mem, "r3");
	struct tevent_queue_entry *e;

	/* empty queue, no callback yet: the trigger runs right away */
	log_reset();
	e = tevent_queue_add_optimize_empty(q, f->ev, r1, job_trigger, NULL);
	assert_non_null(e);
	assert_ptr_equal(talloc_parent(e), r1);
	assert_string_equal(g_log, "trigger(r1)");
	assert_int_equal(tevent_queue_length(q), 1);

	/* non-empty queue: it waits its turn like any other */
	e = tevent_queue_add_optimize_empty(q, f->ev, r2, job_trigger, NULL);
	assert_non_null(e);
	assert_string_equal(g_log, "trigger(r1)");
	talloc_free(r1);
	assert_int_equal(job_triggered(r2), 0);
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1) trigger(r2)");
	talloc_free(r2);
	assert_int_equal(tevent_queue_length(q), 0);

	/* a request that already has a callback is not triggered directly */
	tevent_req_set_callback(r3, dummy_cb, NULL);
	e = tevent_queue_add_optimize_empty(q, f->ev, r3, job_trigger, NULL);
	assert_non_null(e);
	assert_int_equal(job_triggered(r3), 0);
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1) trigger(r2) trigger(r3)");
	talloc_free(r3);

	/* a stopped queue does not trigger directly either */
	tevent_queue_stop(q);
	r1 = job_create(f->mem, "r4");
	e = tevent_queue_add_optimize_empty(q, f->ev, r1, job_trigger, NULL);
	assert_non_null(e);
	assert_int_equal(job_triggered(r1), 0);
	tevent_queue_start(q);
	assert_int_equal(job_triggered(r1), 0);
	drain(f->ev);
	assert_int_equal(job_triggered(r1), 1);
	talloc_free(r1);
}

static void complete_cb(struct tevent_req *req)
{
	struct job_state *js = tevent_req_data(req, struct job_state);

	log_add("done(%s)", js->name);
}

static void test_queue_next_on_free_not_on_completion(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct tevent_req *r1 = job_create(f->mem, "r1");
	struct tevent_req *r2 = job_create(f->mem, "r2");

	tevent_req_set_callback(r1, complete_cb, NULL);
	assert_true(tevent_queue_add(q, f->ev, r1, job_trigger, NULL));
	assert_true(tevent_queue_add(q, f->ev, r2, job_trigger, NULL));
	log_reset();
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1)");

	/* completion alone does not advance the queue */
	tevent_req_done(r1);
	assert_string_equal(g_log, "trigger(r1) done(r1)");
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1) done(r1)");
	assert_int_equal(tevent_queue_length(q), 2);

	/* neither does receiving it (the entry hangs off the request) */
	tevent_req_received(r1);
	drain(f->ev);
	assert_int_equal(job_triggered(r2), 0);
	assert_int_equal(tevent_queue_length(q), 2);

	/* freeing does, through the loop */
	talloc_free(r1);
	assert_int_equal(tevent_queue_length(q), 1);
	assert_int_equal(job_triggered(r2), 0);
	assert_int_equal(tevent_loop_once(f->ev), 0);
	assert_string_equal(g_log, "trigger(r1) done(r1) trigger(r2)");
	talloc_free(r2);
	assert_int_equal(tevent_queue_length(q), 0);
}

static void test_queue_free_waiting_request(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct tevent_req *r1 = job_create(f->mem, "r1");
	struct tevent_req *r2 = job_create(f->mem, "r2");
	struct tevent_req *r3 = job_create(f->mem, "r3");

	assert_true(tevent_queue_add(q, f->ev, r1, job_trigger, NULL));
	assert_true(tevent_queue_add(q, f->ev, r2, job_trigger, NULL));
	assert_true(tevent_queue_add(q, f->ev, r3, job_trigger, NULL));
	log_reset();
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1)");

	/* r2 leaves the queue before its turn */
	talloc_free(r2);
	assert_int_equal(tevent_queue_length(q), 2);
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1)");

	talloc_free(r1);
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1) trigger(r3)");
	talloc_free(r3);
	assert_int_equal(tevent_queue_length(q), 0);
}

/*
 * Samba sets its own talloc destructor on requests it keeps track of, and
 * clears it again (tldap, smbXcli). The queue must not depend on the
 * request's destructor: a freed request leaves its queue either way.
 */
static void test_queue_request_with_caller_destructor(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct tevent_req *r1 = job_create(f->mem, "r1");
	struct tevent_req *r2 = job_create(f->mem, "r2");
	struct tevent_req *r3 = job_create(f->mem, "r3");

	assert_non_null(q);
	assert_true(tevent_queue_add(q, f->ev, r1, job_trigger, NULL));
	assert_true(tevent_queue_add(q, f->ev, r2, job_trigger, NULL));
	assert_true(tevent_queue_add(q, f->ev, r3, job_trigger, NULL));
	talloc_set_destructor(r1, tt_caller_destructor);
	talloc_set_destructor(r2, NULL);
	log_reset();
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1)");

	/* waiting, no destructor at all: it still leaves the line */
	talloc_free(r2);
	assert_int_equal(tevent_queue_length(q), 2);

	/* the head, with the caller's destructor: the queue moves on */
	tt_caller_destructor_runs = 0;
	talloc_free(r1);
	assert_int_equal(tt_caller_destructor_runs, 1);
	assert_int_equal(tevent_queue_length(q), 1);
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1) trigger(r3)");
	talloc_free(r3);
	assert_int_equal(tevent_queue_length(q), 0);
}

static void test_queue_free_head_before_trigger(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct tevent_req *r1 = job_create(f->mem, "r1");
	struct tevent_req *r2 = job_create(f->mem, "r2");

	/* the head goes away while its trigger is still pending */
	assert_true(tevent_queue_add(q, f->ev, r1, job_trigger, NULL));
	assert_true(tevent_queue_add(q, f->ev, r2, job_trigger, NULL));
	log_reset();
	talloc_free(r1);
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r2)");
	talloc_free(r2);

	/* and the last one: nothing is left to run */
	r1 = job_create(f->mem, "r3");
	assert_true(tevent_queue_add(q, f->ev, r1, job_trigger, NULL));
	talloc_free(r1);
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r2)");
	assert_int_equal(tevent_queue_length(q), 0);
}

static void test_queue_free_queue_keeps_requests(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct tevent_req *r1 = job_create(f->mem, "r1");
	struct tevent_req *r2 = job_create(f->mem, "r2");
	struct tevent_req *r3 = job_create(f->mem, "r3");
	size_t r2_blocks;

	r2_blocks = talloc_total_blocks(r2);
	assert_true(tevent_queue_add(q, f->ev, r1, job_trigger, NULL));
	assert_true(tevent_queue_add(q, f->ev, r2, job_trigger, NULL));
	assert_true(tevent_queue_add(q, f->ev, r3, job_trigger, NULL));
	assert_int_equal(talloc_total_blocks(r2), r2_blocks + 1);
	log_reset();
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1)");

	talloc_free(q);

	/* the requests are untouched, only their entries are gone */
	assert_string_equal(talloc_get_name(r1), "struct tevent_req");
	assert_string_equal(talloc_get_name(r2), "struct tevent_req");
	assert_true(tevent_req_is_in_progress(r1));
	assert_true(tevent_req_is_in_progress(r2));
	assert_int_equal(talloc_total_blocks(r2), r2_blocks);

	/* and nobody triggers them any more */
	talloc_free(r1);
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1)");
	talloc_free(r2);
	talloc_free(r3);
}

static void test_queue_stop_start(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct tevent_req *r1 = job_create(f->mem, "r1");
	struct tevent_req *r2 = job_create(f->mem, "r2");

	tevent_queue_stop(q);
	assert_false(tevent_queue_running(q));
	tevent_queue_stop(q);
	assert_false(tevent_queue_running(q));

	log_reset();
	assert_true(tevent_queue_add(q, f->ev, r1, job_trigger, NULL));
	assert_true(tevent_queue_add(q, f->ev, r2, job_trigger, NULL));
	drain(f->ev);
	assert_string_equal(g_log, "");
	assert_int_equal(tevent_queue_length(q), 2);

	/* start schedules, it does not trigger inline */
	tevent_queue_start(q);
	assert_true(tevent_queue_running(q));
	assert_string_equal(g_log, "");
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1)");

	/* starting a running queue changes nothing */
	tevent_queue_start(q);
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1)");

	/* stopped while r1 is busy: freeing r1 does not start r2 */
	tevent_queue_stop(q);
	talloc_free(r1);
	assert_int_equal(tevent_queue_length(q), 1);
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1)");

	tevent_queue_start(q);
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1) trigger(r2)");
	talloc_free(r2);
}

static void test_queue_stop_with_trigger_pending(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct tevent_req *r1 = job_create(f->mem, "r1");

	/* the trigger is already scheduled when the queue stops */
	log_reset();
	assert_true(tevent_queue_add(q, f->ev, r1, job_trigger, NULL));
	tevent_queue_stop(q);
	drain(f->ev);
	assert_string_equal(g_log, "");

	tevent_queue_start(q);
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1)");
	talloc_free(r1);
}

static void test_queue_untrigger(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct tevent_req *r1 = job_create(f->mem, "r1");
	struct tevent_req *r2 = job_create(f->mem, "r2");
	struct tevent_queue_entry *e1;

	e1 = tevent_queue_add_entry(q, f->ev, r1, job_trigger, NULL);
	assert_non_null(e1);
	assert_true(tevent_queue_add(q, f->ev, r2, job_trigger, NULL));
	log_reset();
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1)");

	/* only for the head of a stopped queue */
	tevent_queue_stop(q);
	tevent_queue_entry_untrigger(e1);
	assert_string_equal(g_log, "trigger(r1)");

	/* restarting runs the head's trigger again */
	tevent_queue_start(q);
	assert_string_equal(g_log, "trigger(r1)");
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1) trigger(r1)");
	assert_int_equal(job_triggered(r1), 2);
	assert_int_equal(job_triggered(r2), 0);

	talloc_free(r1);
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1) trigger(r1) trigger(r2)");
	talloc_free(r2);
}

/*
 * Untriggering anything but the head of a stopped queue is a programming
 * error: the process aborts (plain abort(), as upstream), whether the
 * queue still runs or the entry is not the head.  Each misuse happens in
 * a child; the parent's queue goes on as before.
 */
struct untrigger_misuse {
	struct tevent_queue *q;
	struct tevent_queue_entry *entry;
	bool stop_first;
};

static void untrigger_in_child(void *arg)
{
	struct untrigger_misuse *m = arg;

	if (m->stop_first) {
		tevent_queue_stop(m->q);
	}
	tevent_queue_entry_untrigger(m->entry);
}

static void test_queue_untrigger_misuse_aborts(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct tevent_req *r1 = job_create(f->mem, "r1");
	struct tevent_req *r2 = job_create(f->mem, "r2");
	struct untrigger_misuse running_head = { .q = q };
	struct untrigger_misuse stopped_second = { .q = q, .stop_first = true };

	running_head.entry = tevent_queue_add_entry(q, f->ev, r1, job_trigger,
						    NULL);
	stopped_second.entry = tevent_queue_add_entry(q, f->ev, r2,
						      job_trigger, NULL);
	assert_non_null(running_head.entry);
	assert_non_null(stopped_second.entry);
	log_reset();
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1)");

	tt_expect_sigabrt(untrigger_in_child, &running_head);
	tt_expect_sigabrt(untrigger_in_child, &stopped_second);

	assert_true(tevent_queue_running(q));
	talloc_free(r1);
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1) trigger(r2)");
	talloc_free(r2);
}

static void test_queue_blocker_entry(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct tevent_req *b = job_create(f->mem, "blocker");
	struct tevent_req *r1 = job_create(f->mem, "r1");

	/* an entry without trigger just holds the queue */
	log_reset();
	assert_true(tevent_queue_add(q, f->ev, b, NULL, NULL));
	assert_true(tevent_queue_add(q, f->ev, r1, job_trigger, NULL));
	assert_int_equal(tevent_queue_length(q), 2);
	drain(f->ev);
	assert_string_equal(g_log, "");

	talloc_free(b);
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1)");
	talloc_free(r1);
}

static void wait_cb(struct tevent_req *req)
{
	log_add("wait-done");
}

static void test_queue_wait(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct tevent_req *r1 = job_create(f->mem, "r1");
	struct tevent_req *r2 = job_create(f->mem, "r2");
	struct tevent_req *w;

	assert_true(tevent_queue_add(q, f->ev, r1, job_trigger, NULL));
	log_reset();
	drain(f->ev);

	w = tevent_queue_wait_send(f->mem, f->ev, q);
	assert_non_null(w);
	assert_ptr_equal(talloc_parent(w), f->mem);
	tevent_req_set_callback(w, wait_cb, NULL);
	assert_int_equal(tevent_queue_length(q), 2);
	assert_true(tevent_queue_add(q, f->ev, r2, job_trigger, NULL));

	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1)");
	assert_true(tevent_req_is_in_progress(w));

	/* the waiter completes when it reaches the head */
	talloc_free(r1);
	assert_true(tevent_req_is_in_progress(w));
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1) wait-done");
	assert_true(tevent_queue_wait_recv(w));

	/* it still occupies the head until freed */
	assert_int_equal(tevent_queue_length(q), 2);
	drain(f->ev);
	assert_int_equal(job_triggered(r2), 0);
	talloc_free(w);
	assert_int_equal(tevent_queue_length(q), 1);
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1) wait-done trigger(r2)");
	talloc_free(r2);
	assert_int_equal(tevent_queue_length(q), 0);
}

static void test_queue_wait_empty(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct tevent_req *w;

	log_reset();
	w = tevent_queue_wait_send(f->mem, f->ev, q);
	assert_non_null(w);
	tevent_req_set_callback(w, wait_cb, NULL);
	/* even on an empty queue the answer comes from the loop */
	assert_true(tevent_req_is_in_progress(w));
	assert_int_equal(tevent_loop_once(f->ev), 0);
	assert_string_equal(g_log, "wait-done");
	assert_true(tevent_queue_wait_recv(w));
	talloc_free(w);
	assert_int_equal(tevent_queue_length(q), 0);
}

static void test_queue_entry_tags(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct tevent_req *r1 = job_create(f->mem, "r1");
	struct tevent_req *r2 = job_create(f->mem, "r2");
	struct tevent_queue_entry *e1, *e2;

	e1 = tevent_queue_add_entry(q, f->ev, r1, job_trigger, NULL);
	e2 = tevent_queue_add_entry(q, f->ev, r2, job_trigger, NULL);
	assert_non_null(e1);
	assert_non_null(e2);

	assert_int_equal(tevent_queue_entry_get_tag(e1), 0);
	assert_int_equal(tevent_queue_entry_get_tag(e2), 0);
	tevent_queue_entry_set_tag(e1, 1);
	tevent_queue_entry_set_tag(e2, UINT64_MAX);
	assert_int_equal(tevent_queue_entry_get_tag(e1), 1);
	assert_true(tevent_queue_entry_get_tag(e2) == UINT64_MAX);

	/* the tag survives triggering */
	drain(f->ev);
	assert_int_equal(tevent_queue_entry_get_tag(e1), 1);

	talloc_free(q);
	talloc_free(r1);
	talloc_free(r2);
}

/* queue tracing --------------------------------------------------------- */

static struct tevent_queue_entry *g_e[8];

static int entry_index(struct tevent_queue_entry *qe)
{
	int i;

	for (i = 0; i < 8; i++) {
		if (g_e[i] == qe) {
			return i;
		}
	}
	return -1;
}

static const char *point_name(enum tevent_event_trace_point p)
{
	switch (p) {
	case TEVENT_EVENT_TRACE_ATTACH: return "attach";
	case TEVENT_EVENT_TRACE_DETACH: return "detach";
	case TEVENT_EVENT_TRACE_BEFORE_HANDLER: return "before";
	}
	return "?";
}

static int g_pending_attach;

static void queue_tracer(struct tevent_queue_entry *qe,
			 enum tevent_event_trace_point p,
			 void *private_data)
{
	int idx = entry_index(qe);

	assert_ptr_equal(private_data, &g_log);
	if (idx < 0 && p == TEVENT_EVENT_TRACE_ATTACH) {
		/* attach happens before add_entry() returns the pointer */
		g_e[g_pending_attach] = qe;
		idx = g_pending_attach;
	}
	log_add("%s(e%d)", point_name(p), idx + 1);
}

static struct tevent_queue_entry *traced_add(struct tevent_queue *q,
					     struct tevent_context *ev,
					     struct tevent_req *req, int idx,
					     bool optimize)
{
	struct tevent_queue_entry *e;

	g_pending_attach = idx;
	g_e[idx] = NULL;
	if (optimize) {
		e = tevent_queue_add_optimize_empty(q, ev, req, job_trigger,
						    NULL);
	} else {
		e = tevent_queue_add_entry(q, ev, req, job_trigger, NULL);
	}
	assert_non_null(e);
	/* the entry the tracer saw is the one we got back */
	assert_ptr_equal(g_e[idx], e);
	return e;
}

static void log_immediate(struct tevent_context *ev,
			  struct tevent_immediate *im, void *private_data)
{
	log_add("immediate(%s)", (const char *)private_data);
}

/*
 * Every add while the head waits schedules the queue's trigger again, and
 * scheduling puts an immediate at the end of the line: an immediate
 * scheduled in between now runs first.
 */
static void test_queue_add_moves_trigger_behind_immediates(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct tevent_req *r1 = job_create(f->mem, "r1");
	struct tevent_req *r2 = job_create(f->mem, "r2");
	struct tevent_req *r3 = job_create(f->mem, "r3");
	struct tevent_immediate *u = tevent_create_immediate(f->mem);
	struct tevent_immediate *v = tevent_create_immediate(f->mem);

	assert_non_null(q);
	assert_non_null(u);
	assert_non_null(v);
	log_reset();

	/* without a second add the trigger keeps its place */
	assert_true(tevent_queue_add(q, f->ev, r1, job_trigger, NULL));
	tevent_schedule_immediate(u, f->ev, log_immediate, "u");
	assert_int_equal(tevent_loop_once(f->ev), 0);
	assert_int_equal(tevent_loop_once(f->ev), 0);
	assert_string_equal(g_log, "trigger(r1) immediate(u)");

	/* r2 waits behind r1; r3's add reschedules the trigger behind v */
	talloc_free(r1);
	log_reset();
	assert_true(tevent_queue_add(q, f->ev, r2, job_trigger, NULL));
	tevent_schedule_immediate(v, f->ev, log_immediate, "v");
	assert_true(tevent_queue_add(q, f->ev, r3, job_trigger, NULL));
	assert_int_equal(tevent_loop_once(f->ev), 0);
	assert_string_equal(g_log, "immediate(v)");
	assert_int_equal(tevent_loop_once(f->ev), 0);
	assert_string_equal(g_log, "immediate(v) trigger(r2)");

	talloc_free(r2);
	drain(f->ev);
	assert_string_equal(g_log, "immediate(v) trigger(r2) trigger(r3)");
	talloc_free(r3);
}

struct im_trace_log {
	struct tevent_immediate *watched;
	char text[256];
};

static void im_tracer(struct tevent_immediate *im,
		      enum tevent_event_trace_point tp, void *private_data)
{
	struct im_trace_log *l = private_data;
	const char *name = "?";
	size_t used = strlen(l->text);

	if (im != l->watched) {
		/* the queue's own immediate is the one of interest */
		if (l->watched != NULL) {
			return;
		}
		l->watched = im;
	}
	switch (tp) {
	case TEVENT_EVENT_TRACE_ATTACH: name = "attach"; break;
	case TEVENT_EVENT_TRACE_DETACH: name = "detach"; break;
	case TEVENT_EVENT_TRACE_BEFORE_HANDLER: name = "before"; break;
	}
	snprintf(l->text + used, sizeof(l->text) - used, "%s%s",
		 used != 0 ? " " : "", name);
}

/*
 * With immediates traced, each reschedule of the queue's trigger is seen
 * as a detach and an attach, also when the trigger is already last in
 * line and nothing else moves.
 */
static void test_queue_reschedule_seen_by_immediate_trace(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct tevent_req *r1 = job_create(f->mem, "r1");
	struct tevent_req *r2 = job_create(f->mem, "r2");
	struct im_trace_log l = { .watched = NULL };

	assert_non_null(q);
	tevent_set_trace_immediate_callback(f->ev, im_tracer, &l);
	log_reset();

	assert_true(tevent_queue_add(q, f->ev, r1, job_trigger, NULL));
	assert_string_equal(l.text, "attach");
	assert_true(tevent_queue_add(q, f->ev, r2, job_trigger, NULL));
	assert_string_equal(l.text, "attach detach attach");

	assert_int_equal(tevent_loop_once(f->ev), 0);
	assert_string_equal(g_log, "trigger(r1)");
	assert_string_equal(l.text, "attach detach attach before detach");

	tevent_set_trace_immediate_callback(f->ev, NULL, NULL);
	talloc_free(r1);
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1) trigger(r2)");
	talloc_free(r2);
}

static void test_queue_trace_get_set(void **state)
{
	struct fixture *f = *state;
	tevent_trace_queue_callback_t cb = (tevent_trace_queue_callback_t)1;
	void *pvt = (void *)1;

	tevent_get_trace_queue_callback(f->ev, &cb, &pvt);
	assert_null(cb);
	assert_null(pvt);

	tevent_set_trace_queue_callback(f->ev, queue_tracer, &g_log);
	tevent_get_trace_queue_callback(f->ev, &cb, &pvt);
	assert_true(cb == queue_tracer);
	assert_ptr_equal(pvt, &g_log);

	tevent_set_trace_queue_callback(f->ev, NULL, NULL);
	tevent_get_trace_queue_callback(f->ev, &cb, &pvt);
	assert_null(cb);
	assert_null(pvt);
}

static void test_queue_trace_points(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct tevent_req *r1 = job_create(f->mem, "r1");
	struct tevent_req *r2 = job_create(f->mem, "r2");
	struct tevent_req *r3 = job_create(f->mem, "r3");

	memset(g_e, 0, sizeof(g_e));
	tevent_set_trace_queue_callback(f->ev, queue_tracer, &g_log);
	log_reset();

	traced_add(q, f->ev, r1, 0, false);
	assert_string_equal(g_log, "attach(e1)");
	traced_add(q, f->ev, r2, 1, false);
	traced_add(q, f->ev, r3, 2, false);
	assert_string_equal(g_log, "attach(e1) attach(e2) attach(e3)");

	/* before_handler comes right before the trigger runs */
	drain(f->ev);
	assert_string_equal(g_log,
			    "attach(e1) attach(e2) attach(e3) "
			    "before(e1) trigger(r1)");

	/* a waiting entry that goes away only detaches */
	talloc_free(r2);
	assert_string_equal(g_log,
			    "attach(e1) attach(e2) attach(e3) "
			    "before(e1) trigger(r1) detach(e2)");

	talloc_free(r1);
	drain(f->ev);
	talloc_free(r3);
	assert_string_equal(g_log,
			    "attach(e1) attach(e2) attach(e3) "
			    "before(e1) trigger(r1) detach(e2) "
			    "detach(e1) before(e3) trigger(r3) detach(e3)");

	/* a cleared callback sees nothing */
	tevent_set_trace_queue_callback(f->ev, NULL, NULL);
	log_reset();
	r1 = job_create(f->mem, "r4");
	assert_true(tevent_queue_add(q, f->ev, r1, job_trigger, NULL));
	drain(f->ev);
	talloc_free(r1);
	assert_string_equal(g_log, "trigger(r4)");
}

static void test_queue_trace_optimize_empty_and_free_queue(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct tevent_req *r1 = job_create(f->mem, "r1");
	struct tevent_req *r2 = job_create(f->mem, "r2");
	struct tevent_req *r3 = job_create(f->mem, "r3");

	memset(g_e, 0, sizeof(g_e));
	tevent_set_trace_queue_callback(f->ev, queue_tracer, &g_log);
	log_reset();

	/* the direct trigger is traced like a scheduled one */
	traced_add(q, f->ev, r1, 0, true);
	assert_string_equal(g_log, "attach(e1) before(e1) trigger(r1)");
	traced_add(q, f->ev, r2, 1, true);
	traced_add(q, f->ev, r3, 2, false);

	/* freeing the queue detaches what is left, in queue order */
	log_reset();
	talloc_free(q);
	assert_string_equal(g_log, "detach(e1) detach(e2) detach(e3)");

	/* the requests no longer have entries to detach */
	log_reset();
	talloc_free(r1);
	talloc_free(r2);
	talloc_free(r3);
	drain(f->ev);
	assert_string_equal(g_log, "");
	tevent_set_trace_queue_callback(f->ev, NULL, NULL);
}

/*
 * A queue owned by a context goes with it: its entries detach, traced on
 * the context being freed (as upstream does), before the context is gone.
 */
static void test_queue_trace_detach_with_context(void **state)
{
	struct fixture *f = *state;
	struct tevent_context *ev2 = tevent_context_init(f->mem);
	struct tevent_queue *q;
	struct tevent_req *r1 = job_create(f->mem, "r1");
	struct tevent_req *r2 = job_create(f->mem, "r2");

	assert_non_null(ev2);
	q = tevent_queue_create(ev2, "q");
	assert_non_null(q);
	memset(g_e, 0, sizeof(g_e));
	tevent_set_trace_queue_callback(ev2, queue_tracer, &g_log);
	log_reset();
	traced_add(q, ev2, r1, 0, false);
	traced_add(q, ev2, r2, 1, false);

	log_reset();
	talloc_free(ev2);
	assert_string_equal(g_log, "detach(e1) detach(e2)");

	/* the requests lost their entries with the queue */
	log_reset();
	talloc_free(r1);
	talloc_free(r2);
	assert_string_equal(g_log, "");
}

/*
 * A queue that outlives a context its entries were added with: the
 * entries stay, but with their context gone nothing triggers or traces
 * them any more, and freeing them later touches nothing of the context.
 */
static void test_queue_outlives_entry_context(void **state)
{
	TT_SKIP_ON_UPSTREAM("traces entries through their freed context");
	struct fixture *f = *state;
	struct tevent_context *ev2 = tevent_context_init(f->mem);
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct tevent_req *r1 = job_create(f->mem, "r1");
	struct tevent_req *r2 = job_create(f->mem, "r2");
	struct tevent_req *r3 = job_create(f->mem, "r3");

	assert_non_null(ev2);
	assert_non_null(q);
	memset(g_e, 0, sizeof(g_e));
	tevent_set_trace_queue_callback(ev2, queue_tracer, &g_log);
	traced_add(q, ev2, r1, 0, false);
	traced_add(q, ev2, r2, 1, false);
	drain(ev2);
	assert_int_equal(job_triggered(r1), 1);

	log_reset();
	talloc_free(ev2);
	assert_string_equal(g_log, "");
	assert_int_equal(tevent_queue_length(q), 2);

	/* r2 becomes the head, but its context is gone: it never runs */
	talloc_free(r1);
	assert_int_equal(tevent_queue_length(q), 1);
	drain(f->ev);
	assert_int_equal(job_triggered(r2), 0);

	/* a live context still works with the same queue */
	assert_true(tevent_queue_add(q, f->ev, r3, job_trigger, NULL));
	talloc_free(r2);
	drain(f->ev);
	assert_int_equal(job_triggered(r3), 1);
	/* the trigger logs itself; no trace line came from the dead context */
	assert_string_equal(g_log, "trigger(r3)");
	talloc_free(q);
	talloc_free(r3);
}

/* several contexts -------------------------------------------------------- */

static void test_queue_triggers_on_entry_context(void **state)
{
	struct fixture *f = *state;
	struct tevent_context *ev2 = tevent_context_init(f->mem);
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	struct tevent_req *r1 = job_create(f->mem, "r1");
	struct tevent_req *r2 = job_create(f->mem, "r2");

	assert_non_null(ev2);
	log_reset();
	assert_true(tevent_queue_add(q, ev2, r1, job_trigger, NULL));
	assert_true(tevent_queue_add(q, f->ev, r2, job_trigger, NULL));

	/* r1 was queued with ev2: only ev2's loop runs its trigger */
	drain(f->ev);
	assert_string_equal(g_log, "");
	drain(ev2);
	assert_string_equal(g_log, "trigger(r1)");

	/* r2 belongs to f->ev */
	talloc_free(r1);
	drain(ev2);
	assert_string_equal(g_log, "trigger(r1)");
	drain(f->ev);
	assert_string_equal(g_log, "trigger(r1) trigger(r2)");
	talloc_free(r2);
	talloc_free(ev2);
}

/* a real serialised workload ---------------------------------------------- */

struct step_state {
	struct tevent_context *ev;
	int id;
	int *order;
	int *n_order;
	bool running;
	int *concurrent;
};

static void step_finish(struct tevent_context *ev,
			struct tevent_immediate *im, void *private_data)
{
	struct tevent_req *req = talloc_get_type_abort(private_data,
						       struct tevent_req);
	struct step_state *st = tevent_req_data(req, struct step_state);

	st->running = false;
	(*st->concurrent)--;
	tevent_req_done(req);
}

static void step_trigger(struct tevent_req *req, void *private_data)
{
	struct step_state *st = tevent_req_data(req, struct step_state);
	struct tevent_immediate *im;

	(*st->concurrent)++;
	assert_int_equal(*st->concurrent, 1);
	st->running = true;
	st->order[(*st->n_order)++] = st->id;
	/* finish a little later, from the loop */
	im = tevent_create_immediate(st);
	if (tevent_req_nomem(im, req)) {
		return;
	}
	tevent_schedule_immediate(im, st->ev, step_finish, req);
}

static void step_done(struct tevent_req *req)
{
	int *completed = tevent_req_callback_data_void(req);

	(*completed)++;
	/* freeing the finished request lets the queue move on */
	talloc_free(req);
}

static void serialise_on(struct fixture *f, struct tevent_context *ev)
{
	struct tevent_queue *q = tevent_queue_create(f->mem, "q");
	enum { N = 64 };
	int order[N];
	int n_order = 0;
	int completed = 0;
	int concurrent = 0;
	int i;

	for (i = 0; i < N; i++) {
		struct step_state *st;
		struct tevent_req *req;

		req = tevent_req_create(f->mem, &st, struct step_state);
		assert_non_null(req);
		st->ev = ev;
		st->id = i;
		st->order = order;
		st->n_order = &n_order;
		st->concurrent = &concurrent;
		tevent_req_set_callback(req, step_done, &completed);
		assert_true(tevent_queue_add(q, ev, req, step_trigger,
					     NULL));
	}
	assert_int_equal(tevent_queue_length(q), N);

	for (i = 0; i < 100 * N && completed < N; i++) {
		assert_int_equal(tevent_loop_once(ev), 0);
	}
	assert_int_equal(completed, N);
	assert_int_equal(n_order, N);
	for (i = 0; i < N; i++) {
		assert_int_equal(order[i], i);
	}
	assert_int_equal(tevent_queue_length(q), 0);
	assert_int_equal(concurrent, 0);
	talloc_free(q);
}

static void test_queue_serialises_in_fifo_order(void **state)
{
	struct fixture *f = *state;
	const char **backends = tt_backends();
	size_t i;

	/* the same on every backend */
	for (i = 0; backends[i] != NULL; i++) {
		struct tevent_context *ev;

		ev = tevent_context_init_byname(f->mem, backends[i]);
		assert_non_null(ev);
		serialise_on(f, ev);
		talloc_free(ev);
	}
}

/*
 * A request is created with room for its queue entry, so queueing it takes
 * nothing more from the heap: whatever the size of the state, the adds
 * leave glibc's count of bytes in use where it was.
 */
static bool heap_counts_bytes(void)
{
	size_t before = mallinfo2().uordblks;
	void *p = malloc(4000);
	bool counted;

	assert_non_null(p);
	counted = mallinfo2().uordblks >= before + 4000;
	free(p);
	return counted;
}

/* The heap cases need glibc's own allocator (not a sanitizer's or
 * valgrind's): they skip, and say so, elsewhere. */
static void skip_unless_heap_counts_bytes(void)
{
	if (!heap_counts_bytes()) {
		print_message("skipped: mallinfo2() does not count bytes here\n");
		skip();
	}
}

static void noop_trigger(struct tevent_req *req, void *private_data)
{
}

static void test_queue_entry_lives_in_request(void **state)
{
	struct fixture *f = *state;
	const size_t state_sizes[] = {0, 1, 16, 100, 1000};
	enum { N = 50 };
	size_t s, i;

	skip_unless_heap_counts_bytes();
	for (s = 0; s < sizeof(state_sizes) / sizeof(state_sizes[0]); s++) {
		struct tevent_queue *q = tevent_queue_create(f->mem, "pool");
		struct tevent_req *reqs[N];
		size_t before;

		assert_non_null(q);
		for (i = 0; i < N; i++) {
			void *data;

			reqs[i] = _tevent_req_create(f->mem, &data,
						     state_sizes[s], "state",
						     __location__);
			assert_non_null(reqs[i]);
		}
		before = mallinfo2().uordblks;
		for (i = 0; i < N; i++) {
			assert_true(tevent_queue_add(q, f->ev, reqs[i],
						     noop_trigger, NULL));
		}
		assert_int_equal(tevent_queue_length(q), N);
		assert_int_equal(mallinfo2().uordblks, before);
		talloc_free(q);
		for (i = 0; i < N; i++) {
			talloc_free(reqs[i]);
		}
	}
}

/*
 * A queued request still has room in its pool for a small child of its
 * state (a name, a short array), so that costs no malloc either. Ours keeps
 * talloc's slack for this; upstream's pool is full once the entry is in it.
 */
static void test_queue_request_keeps_room_for_state_children(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q;
	enum { N = 20 };
	struct tevent_req *reqs[N];
	size_t i, before;

	TT_SKIP_ON_UPSTREAM("upstream's request pool has no room left once "
			    "it is queued");
	skip_unless_heap_counts_bytes();
	q = tevent_queue_create(f->mem, "room");
	assert_non_null(q);
	for (i = 0; i < N; i++) {
		void *data;

		reqs[i] = _tevent_req_create(f->mem, &data, 16, "state",
					     __location__);
		assert_non_null(reqs[i]);
		assert_true(tevent_queue_add(q, f->ev, reqs[i], noop_trigger,
					     NULL));
	}
	before = mallinfo2().uordblks;
	for (i = 0; i < N; i++) {
		void *state_data = _tevent_req_data(reqs[i]);

		assert_non_null(talloc_size(state_data, 64));
	}
	assert_int_equal(mallinfo2().uordblks, before);
	talloc_free(q);
	for (i = 0; i < N; i++) {
		talloc_free(reqs[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_queue_create, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_add_triggers_from_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_optimize_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_next_on_free_not_on_completion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_free_waiting_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_request_with_caller_destructor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_free_head_before_trigger, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_free_queue_keeps_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_stop_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_stop_with_trigger_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_untrigger, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_untrigger_misuse_aborts,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_blocker_entry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_wait_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_entry_tags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_add_moves_trigger_behind_immediates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_reschedule_seen_by_immediate_trace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_trace_get_set, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_trace_points, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_trace_optimize_empty_and_free_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_trace_detach_with_context, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_outlives_entry_context, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_triggers_on_entry_context, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_serialises_in_fifo_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_entry_lives_in_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_request_keeps_room_for_state_children, setup, teardown),
	};

	tt_check_library();
	return cmocka_run_group_tests_name("tevent_queue", tests, NULL, NULL);
}

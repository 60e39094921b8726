/*
 * Large request trees and long queues, checked for leaks.
 *
 * talloc null tracking is switched on before anything is allocated, so
 * talloc_total_blocks(NULL)/talloc_total_size(NULL) cover every talloc
 * allocation of the process, including the library's own.  Each case
 * compares them before creating its event context and after freeing it.
 * A warm-up in the group setup lets the library make whatever it keeps for
 * the life of the process (backend registrations and the like) first.
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

#define CHAIN_DEPTH 1000
#define QUEUE_ENTRIES 100000

struct usage {
	size_t blocks;
	size_t bytes;
};

static struct usage usage_now(void)
{
	struct usage u = {
		.blocks = talloc_total_blocks(NULL),
		.bytes = talloc_total_size(NULL),
	};
	return u;
}

static void assert_no_leak(struct usage before)
{
	struct usage after = usage_now();

	if (after.blocks != before.blocks || after.bytes != before.bytes) {
		fprintf(stderr, "leak: blocks %zu -> %zu, bytes %zu -> %zu\n",
			before.blocks, after.blocks, before.bytes, after.bytes);
		talloc_report_full(NULL, stderr);
	}
	assert_int_equal(after.blocks, before.blocks);
	assert_int_equal(after.bytes, before.bytes);
}

/* ------------------------------------------------------------------ */
/* a chain of nested subrequests                                        */
/* ------------------------------------------------------------------ */

struct chain_state {
	struct tevent_context *ev;
	unsigned level;
	bool deferred;
	uint64_t sum;
};

static void chain_child_done(struct tevent_req *subreq);

/*
 * Level n starts level n-1 as a subrequest on its own state; level 0
 * finishes from the loop.  Each level adds its number on the way back.
 */
static struct tevent_req *chain_send(TALLOC_CTX *mem_ctx,
				     struct tevent_context *ev,
				     unsigned level, bool deferred)
{
	struct tevent_req *req, *subreq;
	struct chain_state *st;

	req = tevent_req_create(mem_ctx, &st, struct chain_state);
	if (req == NULL) {
		return NULL;
	}
	st->ev = ev;
	st->level = level;
	st->deferred = deferred;
	if (deferred) {
		/* every completion is delivered from its own loop turn */
		tevent_req_defer_callback(req, ev);
	}
	if (level == 0) {
		st->sum = 0;
		tevent_req_done(req);
		return tevent_req_post(req, ev);
	}
	subreq = chain_send(st, ev, level - 1, deferred);
	if (tevent_req_nomem(subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(subreq, chain_child_done, req);
	return req;
}

static int chain_recv(struct tevent_req *req, uint64_t *sum)
{
	struct chain_state *st = tevent_req_data(req, struct chain_state);
	enum tevent_req_state s;
	uint64_t err;

	if (tevent_req_is_error(req, &s, &err)) {
		tevent_req_received(req);
		return s == TEVENT_REQ_USER_ERROR ? (int)err : ENOMEM;
	}
	*sum = st->sum;
	tevent_req_received(req);
	return 0;
}

static void chain_child_done(struct tevent_req *subreq)
{
	struct tevent_req *req = tevent_req_callback_data(subreq,
							  struct tevent_req);
	struct chain_state *st = tevent_req_data(req, struct chain_state);
	uint64_t sum = 0;
	int ret;

	ret = chain_recv(subreq, &sum);
	TALLOC_FREE(subreq);
	if (tevent_req_error(req, ret)) {
		return;
	}
	st->sum = sum + st->level;
	tevent_req_done(req);
}

static void run_chain(bool deferred, bool profiled)
{
	struct usage before = usage_now();
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = tevent_context_init(mem);
	struct tevent_req *req;
	struct chain_state *st;
	uint64_t sum = 0;
	const uint64_t expect = (uint64_t)CHAIN_DEPTH * (CHAIN_DEPTH + 1) / 2;

	assert_non_null(ev);

	if (profiled) {
		/*
		 * A profiled top request: every level below inherits a
		 * profile and the finished tree ends up under the top one.
		 */
		struct tevent_req *top, *sub;
		struct tevent_req_profile *prof;
		const struct tevent_req_profile *p;
		unsigned depth = 0;

		top = tevent_req_create(mem, &st, struct chain_state);
		assert_non_null(top);
		assert_true(tevent_req_set_profile(top));
		sub = chain_send(st, ev, CHAIN_DEPTH, deferred);
		assert_non_null(sub);
		assert_true(tevent_req_poll(sub, ev));
		assert_int_equal(chain_recv(sub, &sum), 0);
		assert_true(sum == expect);
		talloc_free(sub);
		tevent_req_done(top);

		prof = tevent_req_move_profile(top, mem);
		talloc_free(top);
		assert_non_null(prof);
		for (p = tevent_req_profile_get_subprofiles(prof); p != NULL;
		     p = tevent_req_profile_get_subprofiles(p)) {
			assert_null(tevent_req_profile_next(p));
			depth++;
		}
		assert_int_equal(depth, CHAIN_DEPTH + 1);
		talloc_free(prof);
	} else {
		req = chain_send(mem, ev, CHAIN_DEPTH, deferred);
		assert_non_null(req);
		assert_true(tevent_req_poll(req, ev));
		assert_int_equal(chain_recv(req, &sum), 0);
		assert_true(sum == expect);
		talloc_free(req);
	}

	talloc_free(mem);
	assert_no_leak(before);
}

static void test_chain_sync_unwind(void **state)
{
	run_chain(false, false);
}

static void test_chain_deferred_unwind(void **state)
{
	run_chain(true, false);
}

static void test_chain_profiled(void **state)
{
	run_chain(false, true);
}

static void test_chain_freed_midway(void **state)
{
	struct usage before = usage_now();
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = tevent_context_init(mem);
	struct tevent_req *req;
	int i;

	assert_non_null(ev);
	req = chain_send(mem, ev, CHAIN_DEPTH, true);
	assert_non_null(req);

	/* let a few levels finish, then drop the whole tree */
	for (i = 0; i < CHAIN_DEPTH / 2; i++) {
		assert_int_equal(tevent_loop_once(ev), 0);
	}
	assert_true(tevent_req_is_in_progress(req));
	talloc_free(req);

	talloc_free(mem);
	assert_no_leak(before);
}

/* ------------------------------------------------------------------ */
/* a long queue                                                         */
/* ------------------------------------------------------------------ */

struct qrun {
	struct tevent_context *ev;
	struct tevent_queue *q;
	size_t next_expected;
	size_t step;
	size_t triggered;
	size_t completed;
	bool out_of_order;
	bool overlap;
	bool busy;
};

struct qjob_state {
	struct qrun *run;
	size_t index;
};

static void qjob_trigger(struct tevent_req *req, void *private_data)
{
	struct qrun *run = private_data;
	struct qjob_state *st = tevent_req_data(req, struct qjob_state);

	if (st->index != run->next_expected) {
		run->out_of_order = true;
	}
	if (run->busy) {
		run->overlap = true;
	}
	run->busy = true;
	run->next_expected += run->step;
	run->triggered++;
	/* finish now, report from the loop */
	tevent_req_defer_callback(req, run->ev);
	tevent_req_done(req);
}

static void qjob_done(struct tevent_req *req)
{
	struct qrun *run = tevent_req_callback_data_void(req);

	run->busy = false;
	run->completed++;
	/* freeing the request is what lets the queue go on */
	talloc_free(req);
}

static void run_queue(bool drop_odd)
{
	struct usage before = usage_now();
	TALLOC_CTX *mem = talloc_new(NULL);
	struct qrun run = { .step = drop_odd ? 2 : 1 };
	struct tevent_req **reqs;
	size_t i, expected;
	size_t turns = 0;

	run.ev = tevent_context_init(mem);
	assert_non_null(run.ev);
	run.q = tevent_queue_create(mem, "stress");
	assert_non_null(run.q);
	reqs = talloc_array(mem, struct tevent_req *, QUEUE_ENTRIES);
	assert_non_null(reqs);

	for (i = 0; i < QUEUE_ENTRIES; i++) {
		struct qjob_state *st;

		reqs[i] = tevent_req_create(mem, &st, struct qjob_state);
		assert_non_null(reqs[i]);
		st->run = &run;
		st->index = i;
		tevent_req_set_callback(reqs[i], qjob_done, &run);
		assert_true(tevent_queue_add(run.q, run.ev, reqs[i],
					     qjob_trigger, &run));
	}
	assert_int_equal(tevent_queue_length(run.q), QUEUE_ENTRIES);
	expected = QUEUE_ENTRIES;

	if (drop_odd) {
		/* leave the queue from the middle, before their turn */
		for (i = 1; i < QUEUE_ENTRIES; i += 2) {
			TALLOC_FREE(reqs[i]);
		}
		expected = (QUEUE_ENTRIES + 1) / 2;
		assert_int_equal(tevent_queue_length(run.q), expected);
	}
	TALLOC_FREE(reqs);

	while (run.completed < expected && turns < 10 * (size_t)QUEUE_ENTRIES) {
		assert_int_equal(tevent_loop_once(run.ev), 0);
		turns++;
	}
	assert_int_equal(run.completed, expected);
	assert_int_equal(run.triggered, expected);
	assert_false(run.out_of_order);
	assert_false(run.overlap);
	assert_int_equal(tevent_queue_length(run.q), 0);
	assert_true(tevent_queue_running(run.q));

	talloc_free(mem);
	assert_no_leak(before);
}

static void test_queue_100k(void **state)
{
	run_queue(false);
}

static void test_queue_100k_half_dropped(void **state)
{
	run_queue(true);
}

static void test_queue_freed_with_waiters(void **state)
{
	struct usage before = usage_now();
	TALLOC_CTX *mem = talloc_new(NULL);
	TALLOC_CTX *reqs = talloc_new(mem);
	struct qrun run = { .step = 1 };
	size_t i;

	run.ev = tevent_context_init(mem);
	assert_non_null(run.ev);
	run.q = tevent_queue_create(mem, "stress");
	assert_non_null(run.q);
	for (i = 0; i < QUEUE_ENTRIES; i++) {
		struct qjob_state *st;
		struct tevent_req *req;

		req = tevent_req_create(reqs, &st, struct qjob_state);
		assert_non_null(req);
		st->run = &run;
		st->index = i;
		tevent_req_set_callback(req, qjob_done, &run);
		assert_true(tevent_queue_add(run.q, run.ev, req, qjob_trigger,
					     &run));
	}
	/* a handful run, then the queue goes while 99,99x still wait */
	while (run.completed < 10) {
		assert_int_equal(tevent_loop_once(run.ev), 0);
	}
	TALLOC_FREE(run.q);
	assert_int_equal(talloc_total_blocks(reqs) > 1, true);
	talloc_free(reqs);

	talloc_free(mem);
	assert_no_leak(before);
}

/* ------------------------------------------------------------------ */

static void warm_trigger(struct tevent_req *req, void *private_data)
{
	tevent_req_done(req);
}

static int warm_up(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev;
	struct tevent_queue *q;
	struct tevent_req *req;
	struct chain_state *st;
	uint64_t sum = 0;

	tt_check_library();

	/* let the library set up whatever it keeps for good */
	ev = tevent_context_init(mem);
	if (ev == NULL) {
		return -1;
	}
	q = tevent_queue_create(mem, "warm");
	req = tevent_req_create(mem, &st, struct chain_state);
	if (q == NULL || req == NULL ||
	    !tevent_queue_add(q, ev, req, warm_trigger, NULL) ||
	    !tevent_req_poll(req, ev)) {
		return -1;
	}
	talloc_free(req);
	req = chain_send(mem, ev, 3, true);
	if (req == NULL || !tevent_req_poll(req, ev) ||
	    chain_recv(req, &sum) != 0 || sum != 6) {
		return -1;
	}
	talloc_free(req);
	req = tevent_wakeup_send(mem, ev, tevent_timeval_zero());
	if (req == NULL || !tevent_req_poll(req, ev)) {
		return -1;
	}
	talloc_free(mem);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chain_sync_unwind),
		cmocka_unit_test(test_chain_deferred_unwind),
		cmocka_unit_test(test_chain_profiled),
		cmocka_unit_test(test_chain_freed_midway),
		cmocka_unit_test(test_queue_100k),
		cmocka_unit_test(test_queue_100k_half_dropped),
		cmocka_unit_test(test_queue_freed_with_waiters),
	};

	/* before any talloc allocation, so every block is counted */
	talloc_enable_null_tracking();
	tt_check_library();
	int rc = cmocka_run_group_tests_name("tevent_req_stress", tests,
					   warm_up, NULL);
	/* Give back talloc's tracking context so leak checkers stay quiet. */
	talloc_disable_null_tracking();
	return rc;
}

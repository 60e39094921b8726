/*
 * tevent_wakeup_send/recv: a request that finishes at a given time.
 *
 * Upstream builds it on tevent_req_set_endtime(), so a wakeup "finishes"
 * as TEVENT_REQ_TIMED_OUT and tevent_wakeup_recv() turns exactly that state
 * into true.  Ordering assertions only rely on deadlines, never on how fast
 * the machine is.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
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
	talloc_free(*state);
	return 0;
}

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

/* Loop until *counter reaches target; the watchdog only prevents a hang. */
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

struct woken {
	int count;
	int order[8];
	struct timeval deadline[8];
	bool not_early[8];
	bool recv_ok[8];
};

struct wake_ctx {
	struct woken *w;
	int id;
};

static void woke(struct tevent_req *req)
{
	struct wake_ctx *wc = tevent_req_callback_data_void(req);
	struct woken *w = wc->w;
	struct timeval now = tevent_timeval_current();

	w->not_early[wc->id] =
		tevent_timeval_compare(&now, &w->deadline[wc->id]) >= 0;
	w->recv_ok[wc->id] = tevent_wakeup_recv(req);
	w->order[w->count++] = wc->id;
}

static void test_wakeup_from_loop(void **state)
{
	struct fixture *f = *state;
	struct woken w = { 0 };
	struct wake_ctx wc = { .w = &w, .id = 0 };
	struct tevent_req *req;
	enum tevent_req_state s;
	uint64_t err = 0;

	w.deadline[0] = tevent_timeval_current();
	req = tevent_wakeup_send(f->mem, f->ev, w.deadline[0]);
	assert_non_null(req);
	assert_ptr_equal(talloc_parent(req), f->mem);
	assert_string_equal(talloc_get_name(_tevent_req_data(req)),
			    "struct tevent_wakeup_state");
	tevent_req_set_callback(req, woke, &wc);

	/* even a deadline in the past is reported from the loop */
	assert_true(tevent_req_is_in_progress(req));
	assert_false(tevent_wakeup_recv(req));
	assert_int_equal(w.count, 0);

	run_until_count(f->ev, &w.count, 1);
	assert_true(w.recv_ok[0]);
	assert_true(w.not_early[0]);

	/* a wakeup is a request that timed out, on purpose */
	assert_true(tevent_req_is_error(req, &s, &err));
	assert_int_equal(s, TEVENT_REQ_TIMED_OUT);

	/* recv does not consume the request */
	assert_true(tevent_wakeup_recv(req));
	assert_non_null(_tevent_req_data(req));
	talloc_free(req);
}

static void test_wakeup_zero_time(void **state)
{
	struct fixture *f = *state;
	struct woken w = { 0 };
	struct wake_ctx wc = { .w = &w, .id = 0 };
	struct tevent_req *req;

	w.deadline[0] = tevent_timeval_zero();
	req = tevent_wakeup_send(f->mem, f->ev, tevent_timeval_zero());
	assert_non_null(req);
	tevent_req_set_callback(req, woke, &wc);
	assert_int_equal(tevent_loop_once(f->ev), 0);
	assert_int_equal(w.count, 1);
	assert_true(w.recv_ok[0]);
	talloc_free(req);
}

static void deadline_order_on(struct fixture *f, struct tevent_context *ev)
{
	struct woken w = { 0 };
	struct wake_ctx wc[3];
	struct tevent_req *req[3];
	/* registered out of order on purpose */
	const unsigned usecs[3] = { 30000, 10000, 20000 };
	int i;

	for (i = 0; i < 3; i++) {
		wc[i] = (struct wake_ctx) { .w = &w, .id = i };
		w.deadline[i] = tevent_timeval_current_ofs(0, usecs[i]);
		req[i] = tevent_wakeup_send(f->mem, ev, w.deadline[i]);
		assert_non_null(req[i]);
		tevent_req_set_callback(req[i], woke, &wc[i]);
	}

	run_until_count(ev, &w.count, 3);
	assert_int_equal(w.order[0], 1);
	assert_int_equal(w.order[1], 2);
	assert_int_equal(w.order[2], 0);
	for (i = 0; i < 3; i++) {
		assert_true(w.recv_ok[i]);
		/* never before the requested time */
		assert_true(w.not_early[i]);
		talloc_free(req[i]);
	}
}

static void test_wakeup_deadline_order(void **state)
{
	struct fixture *f = *state;
	const char **backends = tt_backends();
	size_t i;

	/* the same on every backend */
	for (i = 0; backends[i] != NULL; i++) {
		struct tevent_context *ev;

		ev = tevent_context_init_byname(f->mem, backends[i]);
		assert_non_null(ev);
		deadline_order_on(f, ev);
		talloc_free(ev);
	}
}

static void test_wakeup_same_deadline_fifo(void **state)
{
	struct fixture *f = *state;
	struct woken w = { 0 };
	struct wake_ctx wc[5];
	struct tevent_req *req[5];
	struct timeval when = tevent_timeval_current_ofs(0, 5000);
	int i;

	for (i = 0; i < 5; i++) {
		wc[i] = (struct wake_ctx) { .w = &w, .id = i };
		w.deadline[i] = when;
		req[i] = tevent_wakeup_send(f->mem, f->ev, when);
		assert_non_null(req[i]);
		tevent_req_set_callback(req[i], woke, &wc[i]);
	}
	run_until_count(f->ev, &w.count, 5);
	for (i = 0; i < 5; i++) {
		assert_int_equal(w.order[i], i);
		talloc_free(req[i]);
	}
}

static void test_wakeup_recv_false_otherwise(void **state)
{
	struct fixture *f = *state;
	struct tevent_req *req;

	/* finished some other way: not a wakeup */
	req = tevent_wakeup_send(f->mem, f->ev,
				 tevent_timeval_current_ofs(3600, 0));
	assert_non_null(req);
	assert_false(tevent_wakeup_recv(req));
	tevent_req_done(req);
	assert_false(tevent_wakeup_recv(req));
	talloc_free(req);

	req = tevent_wakeup_send(f->mem, f->ev,
				 tevent_timeval_current_ofs(3600, 0));
	assert_non_null(req);
	tevent_req_error(req, 5);
	assert_false(tevent_wakeup_recv(req));
	talloc_free(req);

	/* and a received one is not either */
	req = tevent_wakeup_send(f->mem, f->ev, tevent_timeval_zero());
	assert_non_null(req);
	drain(f->ev);
	assert_true(tevent_wakeup_recv(req));
	tevent_req_received(req);
	assert_false(tevent_wakeup_recv(req));
	talloc_free(req);
}

static void test_wakeup_freed_before_time(void **state)
{
	struct fixture *f = *state;
	struct woken w = { 0 };
	struct wake_ctx wc = { .w = &w, .id = 0 };
	struct tevent_req *req;
	size_t blocks = talloc_total_blocks(f->mem);

	req = tevent_wakeup_send(f->mem, f->ev, tevent_timeval_zero());
	assert_non_null(req);
	tevent_req_set_callback(req, woke, &wc);
	talloc_free(req);
	assert_int_equal(talloc_total_blocks(f->mem), blocks);

	drain(f->ev);
	assert_int_equal(w.count, 0);
}

static void test_wakeup_free_parent(void **state)
{
	struct fixture *f = *state;
	TALLOC_CTX *parent = talloc_new(f->mem);
	struct woken w = { 0 };
	struct wake_ctx wc = { .w = &w, .id = 0 };
	struct tevent_req *req;

	req = tevent_wakeup_send(parent, f->ev, tevent_timeval_zero());
	assert_non_null(req);
	tevent_req_set_callback(req, woke, &wc);
	talloc_free(parent);
	drain(f->ev);
	assert_int_equal(w.count, 0);
}

/* a wakeup used as a subrequest with a tevent_req_poll() caller */
struct pause_state {
	int ticks;
	int wanted;
	struct tevent_context *ev;
};

static void pause_tick(struct tevent_req *subreq);

static struct tevent_req *pause_send(TALLOC_CTX *mem_ctx,
				     struct tevent_context *ev, int ticks)
{
	struct tevent_req *req, *subreq;
	struct pause_state *st;

	req = tevent_req_create(mem_ctx, &st, struct pause_state);
	if (req == NULL) {
		return NULL;
	}
	st->wanted = ticks;
	st->ev = ev;
	subreq = tevent_wakeup_send(st, ev, tevent_timeval_current_ofs(0, 100));
	if (tevent_req_nomem(subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(subreq, pause_tick, req);
	return req;
}

static void pause_tick(struct tevent_req *subreq)
{
	struct tevent_req *req = tevent_req_callback_data(subreq,
							  struct tevent_req);
	struct pause_state *st = tevent_req_data(req, struct pause_state);
	bool ok = tevent_wakeup_recv(subreq);

	TALLOC_FREE(subreq);
	if (!ok) {
		tevent_req_oom(req);
		return;
	}
	if (++st->ticks == st->wanted) {
		tevent_req_done(req);
		return;
	}
	subreq = tevent_wakeup_send(st, st->ev,
				    tevent_timeval_current_ofs(0, 100));
	if (tevent_req_nomem(subreq, req)) {
		return;
	}
	tevent_req_set_callback(subreq, pause_tick, req);
}

static void test_wakeup_as_subrequest(void **state)
{
	struct fixture *f = *state;
	struct tevent_req *req;
	struct pause_state *st;
	size_t blocks = talloc_total_blocks(f->mem);

	req = pause_send(f->mem, f->ev, 4);
	assert_non_null(req);
	assert_true(tevent_req_poll(req, f->ev));
	assert_false(tevent_req_is_in_progress(req));
	st = tevent_req_data(req, struct pause_state);
	assert_int_equal(st->ticks, 4);
	talloc_free(req);
	assert_int_equal(talloc_total_blocks(f->mem), blocks);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_wakeup_from_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wakeup_zero_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wakeup_deadline_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wakeup_same_deadline_fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wakeup_recv_false_otherwise, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wakeup_freed_before_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wakeup_free_parent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wakeup_as_subrequest, setup, teardown),
	};

	tt_check_library();
	return cmocka_run_group_tests_name("tevent_wakeup", tests, NULL, NULL);
}

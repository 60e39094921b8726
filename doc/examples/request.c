/*
 * request.c - writing and using tevent_req based functions (doc/req.md)
 *
 * slow_sum_send/recv adds two numbers after a delay.  It waits through a
 * subrequest (tevent_wakeup_send), fails early for bad input (posting the
 * error), can be cancelled, and has a cleanup function.  two_sums_send/
 * recv chains two slow sums and profiles itself.
 *
 * main() runs: a normal request; one that fails inside _send; one that
 * times out (tevent_req_set_endtime); one that is cancelled; the chained
 * one with its profile and the call-depth flow; a synchronous wrapper
 * built on tevent_req_poll().  Exits 0 when every outcome was as expected.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <talloc.h>
#include <tevent.h>

#include "example_util.h"	/* print_library() */

/* tevent handlers have fixed signatures; not all use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"

static const char *state_name(enum tevent_req_state s)
{
	static const char *names[] = { "INIT", "IN_PROGRESS", "DONE",
				       "USER_ERROR", "TIMED_OUT",
				       "NO_MEMORY", "RECEIVED" };
	return (unsigned)s < 7 ? names[s] : "?";
}

/* What the cleanup functions saw, in order. */
static char cleanup_log[256];

/* ===================================================================== */
/* slow_sum: the implementation side                                      */
/* ===================================================================== */

struct slow_sum_state {
	struct tevent_context *ev;
	struct tevent_req *subreq;	/* the wakeup we wait for */
	int a, b, sum;
};

static void slow_sum_waited(struct tevent_req *subreq);
static bool slow_sum_cancel(struct tevent_req *req);
static void slow_sum_cleanup(struct tevent_req *req,
			     enum tevent_req_state req_state);

static struct tevent_req *slow_sum_send(TALLOC_CTX *mem_ctx,
					struct tevent_context *ev,
					int a, int b, uint32_t delay_ms)
{
	struct tevent_req *req, *subreq;
	struct slow_sum_state *state;

	req = tevent_req_create(mem_ctx, &state, struct slow_sum_state);
	if (req == NULL) {
		return NULL;
	}
	state->ev = ev;
	state->a = a;
	state->b = b;
	tevent_req_set_cleanup_fn(req, slow_sum_cleanup);

	if (a < 0 || b < 0) {
		/* Finished before the caller could set a callback: post
		 * it, so that the callback runs from the loop. */
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}

	/* Allocated on our state: freed with it, however we end. */
	subreq = tevent_wakeup_send(state, ev, tevent_timeval_current_ofs(
					    delay_ms / 1000,
					    (delay_ms % 1000) * 1000));
	if (tevent_req_nomem(subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(subreq, slow_sum_waited, req);
	state->subreq = subreq;
	tevent_req_set_cancel_fn(req, slow_sum_cancel);
	return req;
}

static void slow_sum_waited(struct tevent_req *subreq)
{
	struct tevent_req *req =
		tevent_req_callback_data(subreq, struct tevent_req);
	struct slow_sum_state *state =
		tevent_req_data(req, struct slow_sum_state);
	bool ok;

	ok = tevent_wakeup_recv(subreq);
	TALLOC_FREE(subreq);
	state->subreq = NULL;
	if (!ok) {
		tevent_req_error(req, EIO);
		return;
	}
	state->sum = state->a + state->b;
	/* The caller's callback runs inside this call: do not touch req
	 * or state afterwards. */
	tevent_req_done(req);
}

static bool slow_sum_cancel(struct tevent_req *req)
{
	struct slow_sum_state *state =
		tevent_req_data(req, struct slow_sum_state);

	TALLOC_FREE(state->subreq);
	/* tevent_req_cancel()'s caller is still on the stack: deliver the
	 * result from the loop instead of calling back into it. */
	tevent_req_defer_callback(req, state->ev);
	tevent_req_error(req, ECANCELED);
	return true;
}

static void slow_sum_cleanup(struct tevent_req *req,
			     enum tevent_req_state req_state)
{
	strncat(cleanup_log, " ", sizeof(cleanup_log) - strlen(cleanup_log) - 1);
	strncat(cleanup_log, state_name(req_state),
		sizeof(cleanup_log) - strlen(cleanup_log) - 1);
}

/* 0 and *sum, or an errno value. */
static int slow_sum_recv(struct tevent_req *req, int *sum)
{
	struct slow_sum_state *state =
		tevent_req_data(req, struct slow_sum_state);
	enum tevent_req_state req_state;
	uint64_t err;
	int ret = 0;

	if (tevent_req_is_error(req, &req_state, &err)) {
		ret = req_state == TEVENT_REQ_USER_ERROR ? (int)err :
		      req_state == TEVENT_REQ_TIMED_OUT ? ETIMEDOUT : ENOMEM;
	} else {
		*sum = state->sum;
	}
	tevent_req_received(req);
	return ret;
}

/* ===================================================================== */
/* two_sums: a request built from two subrequests in a row                */
/* ===================================================================== */

struct two_sums_state {
	struct tevent_context *ev;
	int c, result;
};

static void two_sums_first_done(struct tevent_req *subreq);
static void two_sums_second_done(struct tevent_req *subreq);

/* (a + b) + c */
static struct tevent_req *two_sums_send(TALLOC_CTX *mem_ctx,
					struct tevent_context *ev,
					int a, int b, int c)
{
	struct tevent_req *req, *subreq;
	struct two_sums_state *state;

	req = tevent_req_create(mem_ctx, &state, struct two_sums_state);
	if (req == NULL) {
		return NULL;
	}
	state->ev = ev;
	state->c = c;
	/* Profile this request and every subrequest created from now on
	 * on its state. */
	if (!tevent_req_set_profile(req)) {
		return tevent_req_post(req, ev);
	}
	subreq = slow_sum_send(state, ev, a, b, 1);
	if (tevent_req_nomem(subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(subreq, two_sums_first_done, req);
	return req;
}

static void two_sums_first_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
		tevent_req_callback_data(subreq, struct tevent_req);
	struct two_sums_state *state =
		tevent_req_data(req, struct two_sums_state);
	int sum = 0;
	int ret;

	ret = slow_sum_recv(subreq, &sum);
	TALLOC_FREE(subreq);
	if (tevent_req_error(req, ret)) {	/* true only if ret != 0 */
		return;
	}
	subreq = slow_sum_send(state, state->ev, sum, state->c, 1);
	if (tevent_req_nomem(subreq, req)) {
		return;
	}
	tevent_req_set_callback(subreq, two_sums_second_done, req);
}

static void two_sums_second_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
		tevent_req_callback_data(subreq, struct tevent_req);
	struct two_sums_state *state =
		tevent_req_data(req, struct two_sums_state);
	int ret;

	ret = slow_sum_recv(subreq, &state->result);
	TALLOC_FREE(subreq);
	if (tevent_req_error(req, ret)) {
		return;
	}
	tevent_req_done(req);
}

/* Also hands the profile over to mem_ctx before the request goes. */
static int two_sums_recv(struct tevent_req *req, int *result,
			 TALLOC_CTX *mem_ctx,
			 struct tevent_req_profile **profile)
{
	struct two_sums_state *state =
		tevent_req_data(req, struct two_sums_state);
	enum tevent_req_state req_state;
	uint64_t err;
	int ret = 0;

	*profile = tevent_req_move_profile(req, mem_ctx);
	if (tevent_req_is_error(req, &req_state, &err)) {
		ret = req_state == TEVENT_REQ_USER_ERROR ? (int)err : ENOMEM;
	} else {
		*result = state->result;
	}
	tevent_req_received(req);
	return ret;
}

/* ===================================================================== */
/* The caller's side                                                      */
/* ===================================================================== */

struct outcome {
	bool send_returned;	/* set by the caller right after _send */
	bool callback_ran;
	bool callback_after_send;
	int ret;
	int sum;
};

static void sum_done(struct tevent_req *req)
{
	struct outcome *o = tevent_req_callback_data_void(req);

	o->callback_ran = true;
	o->callback_after_send = o->send_returned;
	o->ret = slow_sum_recv(req, &o->sum);
	talloc_free(req);	/* the caller owns the request */
}

static bool run_until(struct tevent_context *ev, const bool *flag)
{
	while (!*flag) {
		if (tevent_loop_once(ev) != 0) {
			return false;
		}
	}
	return true;
}

static void print_profile(const struct tevent_req_profile *p, int indent)
{
	for (; p != NULL; p = tevent_req_profile_next(p)) {
		const char *name;
		pid_t pid;
		enum tevent_req_state st;
		uint64_t err;

		tevent_req_profile_get_name(p, &name);
		tevent_req_profile_get_status(p, &pid, &st, &err);
		printf("profile: %*s%s: %s\n", indent, "", name,
		       state_name(st));
		print_profile(tevent_req_profile_get_subprofiles(p),
			      indent + 2);
	}
}

static void flow(void *private_data, enum tevent_thread_call_depth_cmd cmd,
		 struct tevent_req *req, size_t depth, const char *fname)
{
	if (cmd == TEVENT_CALL_FLOW_REQ_CREATE) {
		printf("flow:    %*screate %s (depth %zu)\n", (int)depth * 2,
		       "", fname, depth);
	}
}

/* A blocking wrapper, for callers without a loop of their own. */
static int slow_sum_sync(int a, int b, int *sum)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_req *req;
	int ret = ENOMEM;

	if (ev == NULL) {
		return ENOMEM;
	}
	req = slow_sum_send(ev, ev, a, b, 1);
	if (req != NULL) {
		ret = tevent_req_poll(req, ev) ? slow_sum_recv(req, sum)
					       : errno;
	}
	talloc_free(ev);	/* takes req with it */
	return ret;
}

int main(void)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = tevent_context_init(mem);
	struct tevent_req *req;
	struct tevent_req_profile *profile = NULL;
	struct outcome o;
	bool ok = true;
	int result = 0;

	print_library();
	if (ev == NULL) {
		return 1;
	}

	/* 1. Normal completion. */
	o = (struct outcome) { 0 };
	cleanup_log[0] = '\0';
	req = slow_sum_send(mem, ev, 2, 3, 1);
	ok &= req != NULL;
	tevent_req_set_callback(req, sum_done, &o);
	o.send_returned = true;
	ok &= run_until(ev, &o.callback_ran);
	printf("normal:    ret %d, sum %d, cleanup saw:%s\n", o.ret, o.sum,
	       cleanup_log);
	ok &= o.ret == 0 && o.sum == 5;
	ok &= strcmp(cleanup_log, " DONE RECEIVED") == 0;

	/* 2. Failing inside _send: the callback still comes from the loop. */
	o = (struct outcome) { 0 };
	req = slow_sum_send(mem, ev, -1, 3, 1);
	ok &= req != NULL;
	tevent_req_set_callback(req, sum_done, &o);
	o.send_returned = true;
	ok &= run_until(ev, &o.callback_ran);
	printf("bad input: ret %s, callback after _send returned: %s\n",
	       o.ret == EINVAL ? "EINVAL" : strerror(o.ret),
	       o.callback_after_send ? "yes" : "no");
	ok &= o.ret == EINVAL && o.callback_after_send;

	/* 3. An end time that has already passed: TIMED_OUT. */
	o = (struct outcome) { 0 };
	req = slow_sum_send(mem, ev, 2, 3, 60000);
	ok &= req != NULL;
	tevent_req_set_callback(req, sum_done, &o);
	ok &= tevent_req_set_endtime(req, ev, tevent_timeval_current());
	ok &= run_until(ev, &o.callback_ran);
	printf("endtime:   ret %s\n",
	       o.ret == ETIMEDOUT ? "ETIMEDOUT" : strerror(o.ret));
	ok &= o.ret == ETIMEDOUT;

	/* 4. Cancelled: the result still arrives through the callback. */
	o = (struct outcome) { 0 };
	req = slow_sum_send(mem, ev, 2, 3, 60000);
	ok &= req != NULL;
	tevent_req_set_callback(req, sum_done, &o);
	ok &= tevent_req_cancel(req);
	printf("cancel:    callback ran inside tevent_req_cancel(): %s\n",
	       o.callback_ran ? "yes" : "no");
	ok &= !o.callback_ran;
	ok &= run_until(ev, &o.callback_ran);
	printf("cancel:    ret %s\n",
	       o.ret == ECANCELED ? "ECANCELED" : strerror(o.ret));
	ok &= o.ret == ECANCELED;

	/* 5. Two in a row, with the flow of requests and a profile. */
	tevent_thread_call_depth_set_callback(flow, NULL);
	req = two_sums_send(mem, ev, 1, 2, 3);
	tevent_thread_call_depth_set_callback(NULL, NULL);
	ok &= req != NULL && tevent_req_poll(req, ev);
	ok &= two_sums_recv(req, &result, mem, &profile) == 0;
	TALLOC_FREE(req);
	printf("chained:   (1 + 2) + 3 = %d\n", result);
	ok &= result == 6 && profile != NULL;
	print_profile(profile, 0);

	/* 6. The same code, used synchronously. */
	result = 0;
	ok &= slow_sum_sync(20, 22, &result) == 0;
	printf("sync:      20 + 22 = %d\n", result);
	ok &= result == 42;

	printf("%s\n", ok ? "OK" : "FAILED");
	talloc_free(mem);
	return ok ? 0 : 1;
}

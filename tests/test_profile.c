/*
 * tevent_req_profile_*: per-request profiles, their accessors and setters,
 * and the tree of subprofiles built from subrequests.
 *
 * How upstream builds the tree: a request created on the state of a
 * profiled request (talloc_parent(mem_ctx) is that request) gets its own
 * profile right away, linked at the end of the parent's subprofile list
 * (creation order).  When the subrequest finishes, its profile is filled in
 * (stop location/time, state, user error) and handed over to the parent
 * profile, so the subrequest itself no longer has one.  A subrequest freed
 * before finishing takes its profile with it.
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
#include <sys/time.h>
#include <cmocka.h>

#include <talloc.h>
#include <tevent.h>

#include "common/tt.h"
#include "common/tt_nap.h"

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

struct outer_state {
	int x;
};

struct inner_state {
	int y;
};

static size_t count_subprofiles(const struct tevent_req_profile *p)
{
	size_t n = 0;

	for (p = tevent_req_profile_get_subprofiles(p); p != NULL;
	     p = tevent_req_profile_next(p)) {
		n++;
	}
	return n;
}

static const struct tevent_req_profile *nth_sub(
	const struct tevent_req_profile *p, size_t n)
{
	p = tevent_req_profile_get_subprofiles(p);
	while (p != NULL && n-- > 0) {
		p = tevent_req_profile_next(p);
	}
	return p;
}

/* ------------------------------------------------------------------ */

static void test_profile_set_and_read(void **state)
{
	struct fixture *f = *state;
	struct outer_state *os;
	struct tevent_req *req;
	const struct tevent_req_profile *p;
	const char *create_loc, *done_loc;
	const char *name = NULL, *loc = NULL;
	struct timeval before, after, start, stop;
	pid_t pid = -1;
	enum tevent_req_state s = TEVENT_REQ_RECEIVED;
	uint64_t uerr = 77;

	req = tevent_req_create(f->mem, &os, struct outer_state); create_loc = __location__;
	assert_non_null(req);

	/* nothing until asked for */
	assert_null(tevent_req_get_profile(req));

	gettimeofday(&before, NULL);
	assert_true(tevent_req_set_profile(req));
	gettimeofday(&after, NULL);

	p = tevent_req_get_profile(req);
	assert_non_null(p);
	assert_string_equal(talloc_get_name(p), "struct tevent_req_profile");
	assert_ptr_equal(talloc_parent(p), req);

	/* name is the state's type, start is where the request was created */
	tevent_req_profile_get_name(p, &name);
	assert_string_equal(name, "struct outer_state");
	tevent_req_profile_get_start(p, &loc, &start);
	assert_string_equal(loc, create_loc);
	assert_true(tevent_timeval_compare(&before, &start) <= 0);
	assert_true(tevent_timeval_compare(&start, &after) <= 0);

	/* not finished yet */
	tevent_req_profile_get_stop(p, &loc, &stop);
	assert_null(loc);
	assert_true(tevent_timeval_is_zero(&stop));
	tevent_req_profile_get_status(p, &pid, &s, &uerr);
	assert_int_equal(pid, 0);
	assert_int_equal(s, 0);
	assert_int_equal(uerr, 0);
	assert_null(tevent_req_profile_get_subprofiles(p));
	assert_null(tevent_req_profile_next(p));

	/* every out parameter is optional */
	tevent_req_profile_get_name(p, NULL);
	tevent_req_profile_get_start(p, NULL, NULL);
	tevent_req_profile_get_stop(p, NULL, NULL);
	tevent_req_profile_get_status(p, NULL, NULL, NULL);

	tevent_req_done(req); done_loc = __location__;
	gettimeofday(&after, NULL);

	/* completion fills in the stop side, the profile stays on req */
	assert_ptr_equal(tevent_req_get_profile(req), p);
	tevent_req_profile_get_stop(p, &loc, &stop);
	assert_string_equal(loc, done_loc);
	assert_true(tevent_timeval_compare(&start, &stop) <= 0);
	assert_true(tevent_timeval_compare(&stop, &after) <= 0);
	tevent_req_profile_get_status(p, &pid, &s, &uerr);
	assert_int_equal(s, TEVENT_REQ_DONE);
	assert_int_equal(uerr, 0);

	/* tevent_req_received keeps the profile */
	tevent_req_received(req);
	assert_ptr_equal(tevent_req_get_profile(req), p);
	talloc_free(req);
}

static void test_profile_error_states(void **state)
{
	struct fixture *f = *state;
	struct outer_state *os;
	struct tevent_req *req;
	const struct tevent_req_profile *p;
	enum tevent_req_state s;
	uint64_t uerr;
	const char *loc;

	req = tevent_req_create(f->mem, &os, struct outer_state);
	assert_non_null(req);
	assert_true(tevent_req_set_profile(req));
	tevent_req_error(req, 0xdeadbeefULL);
	p = tevent_req_get_profile(req);
	tevent_req_profile_get_status(p, NULL, &s, &uerr);
	assert_int_equal(s, TEVENT_REQ_USER_ERROR);
	assert_true(uerr == 0xdeadbeefULL);
	talloc_free(req);

	req = tevent_req_create(f->mem, &os, struct outer_state);
	assert_non_null(req);
	assert_true(tevent_req_set_profile(req));
	tevent_req_oom(req);
	p = tevent_req_get_profile(req);
	tevent_req_profile_get_status(p, NULL, &s, &uerr);
	assert_int_equal(s, TEVENT_REQ_NO_MEMORY);
	assert_int_equal(uerr, 0);
	talloc_free(req);

	req = tevent_req_create(f->mem, &os, struct outer_state);
	assert_non_null(req);
	assert_true(tevent_req_set_profile(req));
	assert_true(tevent_req_set_endtime(req, f->ev, tevent_timeval_zero()));
	while (tevent_req_is_in_progress(req)) {
		assert_int_equal(tevent_loop_once(f->ev), 0);
	}
	p = tevent_req_get_profile(req);
	tevent_req_profile_get_status(p, NULL, &s, &uerr);
	assert_int_equal(s, TEVENT_REQ_TIMED_OUT);
	tevent_req_profile_get_stop(p, &loc, NULL);
	assert_non_null(loc);
	talloc_free(req);
}

static void test_profile_set_twice_fails(void **state)
{
	struct fixture *f = *state;
	struct outer_state *os;
	struct tevent_req *req;
	enum tevent_req_state s;
	uint64_t err = 0;

	req = tevent_req_create(f->mem, &os, struct outer_state);
	assert_non_null(req);
	assert_true(tevent_req_set_profile(req));

	/* a second profile is refused and fails the request with EINVAL */
	assert_false(tevent_req_set_profile(req));
	assert_false(tevent_req_is_in_progress(req));
	assert_true(tevent_req_is_error(req, &s, &err));
	assert_int_equal(s, TEVENT_REQ_USER_ERROR);
	assert_int_equal(err, EINVAL);
	assert_non_null(tevent_req_get_profile(req));
	talloc_free(req);
}

static void test_profile_move(void **state)
{
	struct fixture *f = *state;
	TALLOC_CTX *keep = talloc_new(f->mem);
	struct outer_state *os;
	struct tevent_req *req;
	struct tevent_req_profile *moved;
	const struct tevent_req_profile *p;
	const char *name;

	req = tevent_req_create(f->mem, &os, struct outer_state);
	assert_non_null(req);

	/* nothing to move */
	assert_null(tevent_req_move_profile(req, keep));

	assert_true(tevent_req_set_profile(req));
	p = tevent_req_get_profile(req);
	tevent_req_done(req);

	moved = tevent_req_move_profile(req, keep);
	assert_ptr_equal(moved, p);
	assert_ptr_equal(talloc_parent(moved), keep);
	assert_null(tevent_req_get_profile(req));

	/* the profile outlives its request */
	talloc_free(req);
	tevent_req_profile_get_name(moved, &name);
	assert_string_equal(name, "struct outer_state");
	talloc_free(keep);
}

static void test_subprofiles(void **state)
{
	struct fixture *f = *state;
	struct outer_state *os;
	struct inner_state *is1, *is2, *is3, *is4, *is5;
	struct tevent_req *req, *sub1, *sub2, *sub3, *sub4, *sub5;
	const struct tevent_req_profile *p, *sp1, *sp2;
	const char *loc, *sub2_loc;
	enum tevent_req_state s;
	uint64_t uerr;

	req = tevent_req_create(f->mem, &os, struct outer_state);
	assert_non_null(req);
	assert_true(tevent_req_set_profile(req));
	p = tevent_req_get_profile(req);

	/* children of the profiled request's state get profiles at once */
	sub1 = tevent_req_create(os, &is1, struct inner_state);
	sub2 = tevent_req_create(os, &is2, struct inner_state); sub2_loc = __location__;
	sub3 = tevent_req_create(os, &is3, struct inner_state);
	assert_non_null(sub1);
	assert_non_null(sub2);
	assert_non_null(sub3);
	sp1 = tevent_req_get_profile(sub1);
	sp2 = tevent_req_get_profile(sub2);
	assert_non_null(sp1);
	assert_non_null(sp2);
	assert_non_null(tevent_req_get_profile(sub3));
	assert_ptr_equal(talloc_parent(sp1), sub1);
	assert_int_equal(count_subprofiles(p), 3);
	assert_ptr_equal(nth_sub(p, 0), sp1);
	assert_ptr_equal(nth_sub(p, 1), sp2);

	/* a request created on the profiled request itself is not a child */
	sub4 = tevent_req_create(req, &is4, struct inner_state);
	assert_non_null(sub4);
	assert_null(tevent_req_get_profile(sub4));
	/* nor is one created elsewhere */
	sub5 = tevent_req_create(f->mem, &is5, struct inner_state);
	assert_non_null(sub5);
	assert_null(tevent_req_get_profile(sub5));
	assert_int_equal(count_subprofiles(p), 3);

	/* finishing hands the profile to the parent profile */
	tevent_req_error(sub2, 9);
	assert_null(tevent_req_get_profile(sub2));
	assert_ptr_equal(talloc_parent(sp2), p);
	tevent_req_profile_get_status(sp2, NULL, &s, &uerr);
	assert_int_equal(s, TEVENT_REQ_USER_ERROR);
	assert_int_equal(uerr, 9);
	tevent_req_profile_get_start(sp2, &loc, NULL);
	assert_string_equal(loc, sub2_loc);

	tevent_req_done(sub1);
	assert_null(tevent_req_get_profile(sub1));
	assert_ptr_equal(talloc_parent(sp1), p);

	/* freeing the finished subrequests keeps their profiles */
	talloc_free(sub1);
	talloc_free(sub2);
	assert_int_equal(count_subprofiles(p), 3);

	/* a subrequest freed while running takes its profile along */
	talloc_free(sub3);
	assert_int_equal(count_subprofiles(p), 2);

	/* the list stays in creation order, not completion order */
	assert_ptr_equal(nth_sub(p, 0), sp1);
	assert_ptr_equal(nth_sub(p, 1), sp2);
	assert_null(nth_sub(p, 2));
	tevent_req_profile_get_status(nth_sub(p, 0), NULL, &s, NULL);
	assert_int_equal(s, TEVENT_REQ_DONE);

	tevent_req_done(req);
	assert_int_equal(count_subprofiles(tevent_req_get_profile(req)), 2);
	talloc_free(sub4);
	talloc_free(sub5);
	talloc_free(req);
}

static void test_subprofiles_nested(void **state)
{
	struct fixture *f = *state;
	struct outer_state *os;
	struct inner_state *is, *iis;
	struct tevent_req *req, *sub, *subsub;
	const struct tevent_req_profile *p, *sp, *ssp;
	const char *name;

	req = tevent_req_create(f->mem, &os, struct outer_state);
	assert_non_null(req);
	assert_true(tevent_req_set_profile(req));
	sub = tevent_req_create(os, &is, struct inner_state);
	assert_non_null(sub);
	subsub = tevent_req_create(is, &iis, struct inner_state);
	assert_non_null(subsub);

	p = tevent_req_get_profile(req);
	sp = tevent_req_get_profile(sub);
	ssp = tevent_req_get_profile(subsub);
	assert_non_null(ssp);
	assert_ptr_equal(nth_sub(p, 0), sp);
	assert_ptr_equal(nth_sub(sp, 0), ssp);
	assert_int_equal(count_subprofiles(p), 1);

	tevent_req_done(subsub);
	talloc_free(subsub);
	tevent_req_done(sub);
	talloc_free(sub);

	/* the whole tree now hangs off the top profile */
	assert_ptr_equal(talloc_parent(sp), p);
	assert_ptr_equal(talloc_parent(ssp), sp);
	assert_ptr_equal(nth_sub(nth_sub(p, 0), 0), ssp);
	tevent_req_profile_get_name(ssp, &name);
	assert_string_equal(name, "struct inner_state");
	talloc_free(req);
}

/*
 * Like upstream's profile test: a library subrequest inside a profiled
 * one (tt_nap_send(), shared with tests/upstream/req.c).
 */
static void test_profile_with_library_subrequest(void **state)
{
	struct fixture *f = *state;
	struct tevent_req *req;
	struct tevent_req_profile *prof = NULL;
	const struct tevent_req_profile *sub;
	struct timeval start, stop, sstart, sstop;
	const char *name;
	enum tevent_req_state s;

	req = tt_nap_send(f->mem, f->ev);
	assert_non_null(req);
	assert_true(tevent_req_poll(req, f->ev));
	assert_int_equal(tt_nap_recv(req, f->mem, &prof), 0);
	talloc_free(req);
	assert_non_null(prof);

	tevent_req_profile_get_name(prof, &name);
	assert_string_equal(name, "struct tt_nap_state");
	tevent_req_profile_get_status(prof, NULL, &s, NULL);
	assert_int_equal(s, TEVENT_REQ_DONE);
	assert_int_equal(count_subprofiles(prof), 1);

	sub = nth_sub(prof, 0);
	tevent_req_profile_get_name(sub, &name);
	assert_string_equal(name, "struct tevent_wakeup_state");
	/* a wakeup ends by timing out */
	tevent_req_profile_get_status(sub, NULL, &s, NULL);
	assert_int_equal(s, TEVENT_REQ_TIMED_OUT);

	/* the child ran within the parent's lifetime */
	tevent_req_profile_get_start(prof, NULL, &start);
	tevent_req_profile_get_stop(prof, NULL, &stop);
	tevent_req_profile_get_start(sub, NULL, &sstart);
	tevent_req_profile_get_stop(sub, NULL, &sstop);
	assert_true(tevent_timeval_compare(&start, &sstart) <= 0);
	assert_true(tevent_timeval_compare(&sstart, &sstop) <= 0);
	assert_true(tevent_timeval_compare(&sstop, &stop) <= 0);
	talloc_free(prof);
}

/* hand-built profiles ----------------------------------------------------- */

static void test_profile_create_and_setters(void **state)
{
	struct fixture *f = *state;
	struct tevent_req_profile *p;
	const char *name = "x", *loc = "x";
	char buf[32];
	struct timeval tv = { 1, 1 };
	struct timeval t1 = { 1000, 5 };
	struct timeval t2 = { 2000, 6 };
	pid_t pid = 1;
	enum tevent_req_state s = TEVENT_REQ_DONE;
	uint64_t uerr = 1;

	p = tevent_req_profile_create(f->mem);
	assert_non_null(p);
	assert_string_equal(talloc_get_name(p), "struct tevent_req_profile");
	assert_ptr_equal(talloc_parent(p), f->mem);

	/* everything starts empty */
	tevent_req_profile_get_name(p, &name);
	assert_null(name);
	tevent_req_profile_get_start(p, &loc, &tv);
	assert_null(loc);
	assert_true(tevent_timeval_is_zero(&tv));
	loc = "x";
	tevent_req_profile_get_stop(p, &loc, &tv);
	assert_null(loc);
	assert_true(tevent_timeval_is_zero(&tv));
	tevent_req_profile_get_status(p, &pid, &s, &uerr);
	assert_int_equal(pid, 0);
	assert_int_equal(s, 0);
	assert_int_equal(uerr, 0);
	assert_null(tevent_req_profile_get_subprofiles(p));
	assert_null(tevent_req_profile_next(p));

	/* the setters keep their own copies of the strings */
	snprintf(buf, sizeof(buf), "%s", "my_request");
	assert_true(tevent_req_profile_set_name(p, buf));
	buf[0] = 'X';
	tevent_req_profile_get_name(p, &name);
	assert_string_equal(name, "my_request");
	assert_ptr_equal(talloc_parent(name), p);

	snprintf(buf, sizeof(buf), "%s", "here.c:1");
	assert_true(tevent_req_profile_set_start(p, buf, t1));
	buf[0] = 'X';
	tevent_req_profile_get_start(p, &loc, &tv);
	assert_string_equal(loc, "here.c:1");
	assert_ptr_equal(talloc_parent(loc), p);
	assert_int_equal(tevent_timeval_compare(&tv, &t1), 0);

	snprintf(buf, sizeof(buf), "%s", "there.c:2");
	assert_true(tevent_req_profile_set_stop(p, buf, t2));
	buf[0] = 'X';
	tevent_req_profile_get_stop(p, &loc, &tv);
	assert_string_equal(loc, "there.c:2");
	assert_int_equal(tevent_timeval_compare(&tv, &t2), 0);

	tevent_req_profile_set_status(p, 4242, TEVENT_REQ_USER_ERROR, 17);
	tevent_req_profile_get_status(p, &pid, &s, &uerr);
	assert_int_equal(pid, 4242);
	assert_int_equal(s, TEVENT_REQ_USER_ERROR);
	assert_int_equal(uerr, 17);

	/* setting again replaces */
	assert_true(tevent_req_profile_set_name(p, "renamed"));
	tevent_req_profile_get_name(p, &name);
	assert_string_equal(name, "renamed");

	talloc_free(p);
}

static void test_profile_append_sub(void **state)
{
	struct fixture *f = *state;
	struct tevent_req_profile *parent, *a, *b, *c;
	struct tevent_req_profile *a_ptr, *b_ptr, *c_ptr;
	size_t blocks;

	parent = tevent_req_profile_create(f->mem);
	a = tevent_req_profile_create(f->mem);
	b = tevent_req_profile_create(NULL);
	c = tevent_req_profile_create(f->mem);
	assert_non_null(parent);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_true(tevent_req_profile_set_name(a, "a"));
	assert_true(tevent_req_profile_set_name(b, "b"));
	assert_true(tevent_req_profile_set_name(c, "c"));
	a_ptr = a;
	b_ptr = b;
	c_ptr = c;

	/* appending moves the profile under the parent and clears the ref */
	tevent_req_profile_append_sub(parent, &a);
	assert_null(a);
	assert_ptr_equal(talloc_parent(a_ptr), parent);
	tevent_req_profile_append_sub(parent, &b);
	assert_null(b);
	assert_ptr_equal(talloc_parent(b_ptr), parent);
	tevent_req_profile_append_sub(parent, &c);
	assert_null(c);

	assert_int_equal(count_subprofiles(parent), 3);
	assert_ptr_equal(nth_sub(parent, 0), a_ptr);
	assert_ptr_equal(nth_sub(parent, 1), b_ptr);
	assert_ptr_equal(nth_sub(parent, 2), c_ptr);
	assert_null(tevent_req_profile_next(c_ptr));

	/* a freed subprofile leaves the list */
	talloc_free(b_ptr);
	assert_int_equal(count_subprofiles(parent), 2);
	assert_ptr_equal(nth_sub(parent, 0), a_ptr);
	assert_ptr_equal(nth_sub(parent, 1), c_ptr);
	talloc_free(a_ptr);
	assert_ptr_equal(nth_sub(parent, 0), c_ptr);
	assert_int_equal(count_subprofiles(parent), 1);

	/* and the parent takes the rest with it */
	blocks = talloc_total_blocks(f->mem);
	assert_int_equal(talloc_total_blocks(parent), 3);
	talloc_free(parent);
	assert_int_equal(talloc_total_blocks(f->mem), blocks - 3);
}

/*
 * Appending a subprofile that already sits under another parent moves it:
 * it leaves the first parent's list, and both lists stay whole.  Upstream
 * links it into the second list without taking it out of the first, which
 * leaves the first list pointing into the second.
 */
static void test_profile_append_sub_moves(void **state)
{
	struct fixture *f = *state;
	struct tevent_req_profile *p1, *p2, *a, *b, *a_ptr, *b_ptr;

	TT_SKIP_ON_UPSTREAM("its first parent keeps the moved subprofile");
	p1 = tevent_req_profile_create(f->mem);
	p2 = tevent_req_profile_create(f->mem);
	a = tevent_req_profile_create(f->mem);
	b = tevent_req_profile_create(f->mem);
	assert_non_null(p1);
	assert_non_null(p2);
	assert_non_null(a);
	assert_non_null(b);
	a_ptr = a;
	b_ptr = b;
	tevent_req_profile_append_sub(p1, &a);
	tevent_req_profile_append_sub(p1, &b);
	assert_int_equal(count_subprofiles(p1), 2);

	a = a_ptr;
	tevent_req_profile_append_sub(p2, &a);
	assert_null(a);
	assert_ptr_equal(talloc_parent(a_ptr), p2);
	assert_int_equal(count_subprofiles(p1), 1);
	assert_ptr_equal(nth_sub(p1, 0), b_ptr);
	assert_null(tevent_req_profile_next(b_ptr));
	assert_int_equal(count_subprofiles(p2), 1);
	assert_ptr_equal(nth_sub(p2, 0), a_ptr);
	assert_null(tevent_req_profile_next(a_ptr));

	/* each parent frees only what it holds now */
	talloc_free(p1);
	assert_int_equal(talloc_total_blocks(p2), 2);
	assert_int_equal(count_subprofiles(p2), 1);
	talloc_free(p2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_profile_set_and_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_profile_error_states, setup, teardown),
		cmocka_unit_test_setup_teardown(test_profile_set_twice_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_profile_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subprofiles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subprofiles_nested, setup, teardown),
		cmocka_unit_test_setup_teardown(test_profile_with_library_subrequest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_profile_create_and_setters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_profile_append_sub, setup, teardown),
		cmocka_unit_test_setup_teardown(test_profile_append_sub_moves, setup, teardown),
	};

	tt_check_library();
	return cmocka_run_group_tests_name("tevent_req_profile", tests, NULL, NULL);
}

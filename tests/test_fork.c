/*
 * Tests for using an event context across fork(), run on every backend.
 *
 * The usual pattern is: fork, then tevent_re_initialise() in the child.
 * That detaches every event registered before (they turn inert but can
 * still be freed) and gives the child fresh backend state, so what the
 * child does never disturbs the parent.  Upstream's epoll backend also
 * copes with a child that keeps using the inherited context without
 * re-initialising: it notices the pid change and builds its own epoll
 * instance before touching anything.
 *
 * Children report through their exit status; cmocka asserts are only used
 * in the parent.
 */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>

#include "common/tt.h"

/* handlers have fixed signatures and rarely use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"

/* ------------------------------------------------------------------ */
/* one cmocka test per (case, backend)                                 */

/* ------------------------------------------------------------------ */
/* helpers                                                             */

/* In a child: leave with a code naming the failed check. */
#define CHILD_CHECK(cond, code) do {		\
		if (!(cond)) {			\
			_exit(code);		\
		}				\
	} while (0)

static void parent_stuck(struct tevent_context *ev, struct tevent_timer *te,
			 struct timeval now, void *private_data)
{
	fail_msg("%s", (const char *)private_data);
}

/*
 * Bounds a parent loop that only blocks if the child broke the parent's
 * state; far enough away that it never fires otherwise.
 */
static void arm_parent_watchdog(struct tevent_context *ev, const char *what)
{
	assert_non_null(tevent_add_timer(ev, ev,
					 tevent_timeval_current_ofs(30, 0),
					 parent_stuck, (void *)what));
}

static pid_t fork_flushed(void)
{
	fflush(stdout);
	fflush(stderr);
	return fork();
}

static void expect_child_ok(pid_t child)
{
	int status = 0;

	assert_int_equal(waitpid(child, &status, 0), child);
	if (WIFSIGNALED(status)) {
		fail_msg("child killed by signal %d", WTERMSIG(status));
	}
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) != 0) {
		fail_msg("child failed check %d", WEXITSTATUS(status));
	}
}

/* What ran where. */
struct hits {
	int parent_fd;
	int parent_timer;
	int parent_imm;
	int parent_signal;
	int child_fd;
	int child_timer;
	int child_imm;
	int child_signal;
	int close_calls;
	struct tevent_context *close_ev;
	int fd;
};

static void parent_fd(struct tevent_context *ev, struct tevent_fd *fde,
		      uint16_t flags, void *private_data)
{
	struct hits *h = private_data;
	char buf[16];

	h->parent_fd++;
	(void)read(h->fd, buf, sizeof(buf));
}

static void parent_timer(struct tevent_context *ev, struct tevent_timer *te,
			 struct timeval now, void *private_data)
{
	struct hits *h = private_data;
	h->parent_timer++;
}

static void parent_imm(struct tevent_context *ev, struct tevent_immediate *im,
		       void *private_data)
{
	struct hits *h = private_data;
	h->parent_imm++;
}

static void parent_signal(struct tevent_context *ev, struct tevent_signal *se,
			  int signum, int count, void *siginfo,
			  void *private_data)
{
	struct hits *h = private_data;
	h->parent_signal++;
}

static void child_fd(struct tevent_context *ev, struct tevent_fd *fde,
		     uint16_t flags, void *private_data)
{
	struct hits *h = private_data;

	h->child_fd++;
	tevent_fd_set_flags(fde, 0);
}

static void child_timer(struct tevent_context *ev, struct tevent_timer *te,
			struct timeval now, void *private_data)
{
	struct hits *h = private_data;
	h->child_timer++;
}

static void child_imm(struct tevent_context *ev, struct tevent_immediate *im,
		      void *private_data)
{
	struct hits *h = private_data;
	h->child_imm++;
}

static void child_signal(struct tevent_context *ev, struct tevent_signal *se,
			 int signum, int count, void *siginfo,
			 void *private_data)
{
	struct hits *h = private_data;
	h->child_signal += count;
}

static void record_close(struct tevent_context *ev, struct tevent_fd *fde,
			 int fd, void *private_data)
{
	struct hits *h = private_data;

	h->close_calls++;
	h->close_ev = ev;
}

static volatile sig_atomic_t plain_hits;

static void plain_handler(int sig)
{
	(void)sig;
	plain_hits++;
}

/* In the child: run turns until all four child events fired. */
static bool child_run_all(struct tevent_context *ev, struct hits *h)
{
	int turns = 0;

	while (h->child_fd == 0 || h->child_timer == 0 ||
	       h->child_imm == 0 || h->child_signal == 0) {
		if (tevent_loop_once(ev) != 0) {
			return false;
		}
		if (++turns > 100) {
			return false;
		}
	}
	return true;
}

/* ------------------------------------------------------------------ */

static void test_fork_reinit(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct hits h = { 0 };
	struct tevent_fd *pfde;
	struct tevent_timer *pte;
	struct tevent_immediate *pim;
	struct tevent_signal *pse;
	struct sigaction sa;
	int pipefd[2];
	pid_t child;
	int turns = 0;

	/* a disposition of our own, which the library saves and restores */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = plain_handler;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGUSR1, &sa, NULL), 0);

	assert_int_equal(pipe(pipefd), 0);
	h.fd = pipefd[0];
	pfde = tevent_add_fd(ev, ev, pipefd[0], TEVENT_FD_READ,
			     parent_fd, &h);
	assert_non_null(pfde);
	tevent_fd_set_close_fn(pfde, record_close);
	pte = tevent_add_timer(ev, ev, tevent_timeval_current_ofs(1000, 0),
			       parent_timer, &h);
	assert_non_null(pte);
	pim = tevent_create_immediate(ev);
	assert_non_null(pim);
	tevent_schedule_immediate(pim, ev, parent_imm, &h);
	pse = tevent_add_signal(ev, ev, SIGUSR1, 0, parent_signal, &h);
	assert_non_null(pse);

	/* readable in both processes */
	assert_int_equal(write(pipefd[1], "p", 1), 1);

	child = fork_flushed();
	assert_true(child != -1);
	if (child == 0) {
		int sp[2];
		struct sigaction cur;

		CHILD_CHECK(tevent_cached_getpid() == getpid(), 10);
		CHILD_CHECK(tevent_re_initialise(ev) == 0, 11);

		/* the inherited SIGUSR1 event is detached: old action back */
		CHILD_CHECK(sigaction(SIGUSR1, NULL, &cur) == 0, 12);
		CHILD_CHECK(cur.sa_handler == plain_handler, 13);

		CHILD_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, 14);
		CHILD_CHECK(tevent_add_fd(ev, ev, sp[0], TEVENT_FD_WRITE,
					  child_fd, &h) != NULL, 15);
		CHILD_CHECK(tevent_add_timer(ev, ev, tevent_timeval_zero(),
					     child_timer, &h) != NULL, 16);
		tevent_schedule_immediate(tevent_create_immediate(ev), ev,
					  child_imm, &h);
		CHILD_CHECK(tevent_add_signal(ev, ev, SIGUSR2, 0,
					      child_signal, &h) != NULL, 17);
		CHILD_CHECK(kill(getpid(), SIGUSR2) == 0, 18);

		CHILD_CHECK(child_run_all(ev, &h), 19);
		CHILD_CHECK(h.child_signal == 1, 20);

		/* nothing registered before the fork ran here */
		CHILD_CHECK(h.parent_fd == 0, 21);
		CHILD_CHECK(h.parent_timer == 0, 22);
		CHILD_CHECK(h.parent_imm == 0, 23);
		CHILD_CHECK(h.parent_signal == 0, 24);

		/* the inert events can be freed; the close fn still runs */
		CHILD_CHECK(talloc_free(pfde) == 0, 25);
		CHILD_CHECK(h.close_calls == 1, 26);
		CHILD_CHECK(h.close_ev == NULL, 27);
		CHILD_CHECK(talloc_free(pte) == 0, 28);
		CHILD_CHECK(talloc_free(pim) == 0, 29);
		CHILD_CHECK(talloc_free(pse) == 0, 30);

		/* the signal is ours again */
		CHILD_CHECK(kill(getpid(), SIGUSR1) == 0, 31);
		CHILD_CHECK(plain_hits == 1, 32);

		talloc_free(ev);
		_exit(0);
	}
	expect_child_ok(child);
	arm_parent_watchdog(ev, "parent events lost after the child ran");

	/* the parent's events are all still in place */
	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	while (h.parent_fd == 0 || h.parent_imm == 0 ||
	       h.parent_signal == 0) {
		assert_int_equal(tevent_loop_once(ev), 0);
		assert_true(++turns < 100);
	}
	assert_int_equal(h.parent_fd, 1);
	assert_int_equal(h.parent_imm, 1);
	assert_int_equal(h.parent_signal, 1);
	assert_int_equal(h.close_calls, 0);
	assert_int_equal(plain_hits, 0);

	talloc_free(pfde);
	assert_int_equal(h.close_calls, 1);
	assert_ptr_equal(h.close_ev, ev);
	talloc_free(pse);
	tt_finish(ev);
	close(pipefd[0]);
	close(pipefd[1]);
	signal(SIGUSR1, SIG_DFL);
}

/*
 * A child that keeps using the inherited context: the inherited events
 * still work there, and whatever the child adds, changes or frees does not
 * leak into the parent (with epoll the two share nothing once the child
 * touched the context).
 */
static void test_fork_no_reinit(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct hits h = { 0 };
	struct tevent_fd *pfde, *shared_w;
	int pipefd[2];
	int sp[2];
	pid_t child;
	int turns = 0;

	assert_int_equal(pipe(pipefd), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	h.fd = pipefd[0];
	pfde = tevent_add_fd(ev, ev, pipefd[0], TEVENT_FD_READ,
			     parent_fd, &h);
	assert_non_null(pfde);
	/* an event the child turns off and then frees */
	shared_w = tevent_add_fd(ev, ev, sp[1], TEVENT_FD_WRITE,
				 child_fd, &h);
	assert_non_null(shared_w);
	tevent_fd_set_flags(shared_w, 0);

	child = fork_flushed();
	assert_true(child != -1);
	if (child == 0) {
		struct tevent_fd *cfde;
		int csp[2];

		CHILD_CHECK(tevent_cached_getpid() == getpid(), 10);

		/* changes to inherited events stay in the child */
		tevent_fd_set_flags(shared_w, TEVENT_FD_WRITE);
		CHILD_CHECK(tevent_loop_once(ev) == 0, 11);
		CHILD_CHECK(h.child_fd == 1, 12);
		CHILD_CHECK(talloc_free(shared_w) == 0, 13);
		/* and so does freeing the parent's fd event */
		CHILD_CHECK(talloc_free(pfde) == 0, 14);

		h.child_fd = 0;
		CHILD_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, csp) == 0, 15);
		cfde = tevent_add_fd(ev, ev, csp[0], TEVENT_FD_WRITE,
				     child_fd, &h);
		CHILD_CHECK(cfde != NULL, 16);
		CHILD_CHECK(tevent_add_timer(ev, ev, tevent_timeval_zero(),
					     child_timer, &h) != NULL, 17);
		tevent_schedule_immediate(tevent_create_immediate(ev), ev,
					  child_imm, &h);
		CHILD_CHECK(tevent_add_signal(ev, ev, SIGUSR2, 0,
					      child_signal, &h) != NULL, 18);
		CHILD_CHECK(kill(getpid(), SIGUSR2) == 0, 19);
		CHILD_CHECK(child_run_all(ev, &h), 20);
		CHILD_CHECK(h.child_fd == 1, 21);
		CHILD_CHECK(h.parent_fd == 0, 22);

		talloc_free(ev);
		_exit(0);
	}
	expect_child_ok(child);
	arm_parent_watchdog(ev, "parent events broken by the child");

	/* the parent's view is unchanged */
	assert_int_equal(tevent_fd_get_flags(shared_w), 0);
	assert_int_equal(write(pipefd[1], "p", 1), 1);
	while (h.parent_fd == 0) {
		assert_int_equal(tevent_loop_once(ev), 0);
		assert_true(++turns < 100);
	}
	assert_int_equal(h.parent_fd, 1);
	assert_int_equal(h.child_fd, 0);

	/* and the parent can still change and free its events */
	tevent_fd_set_flags(shared_w, TEVENT_FD_WRITE);
	turns = 0;
	while (h.child_fd == 0) {
		assert_int_equal(tevent_loop_once(ev), 0);
		assert_true(++turns < 100);
	}
	talloc_free(shared_w);
	talloc_free(pfde);
	tt_finish(ev);
	close(pipefd[0]);
	close(pipefd[1]);
	close(sp[0]);
	close(sp[1]);
}

/* Both sides keep working at the same time after the fork. */
static void test_fork_both_sides_run(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct hits h = { 0 };
	int to_child[2], to_parent[2];
	pid_t child;
	int turns = 0;

	assert_int_equal(pipe(to_child), 0);
	assert_int_equal(pipe(to_parent), 0);

	child = fork_flushed();
	assert_true(child != -1);
	if (child == 0) {
		close(to_child[1]);
		close(to_parent[0]);
		CHILD_CHECK(tevent_re_initialise(ev) == 0, 10);
		h.fd = to_child[0];
		CHILD_CHECK(tevent_add_fd(ev, ev, to_child[0], TEVENT_FD_READ,
					  parent_fd, &h) != NULL, 11);
		/* tell the parent we are ready, then wait for its byte */
		CHILD_CHECK(write(to_parent[1], "r", 1) == 1, 12);
		while (h.parent_fd == 0) {
			CHILD_CHECK(tevent_loop_once(ev) == 0, 13);
			CHILD_CHECK(++turns < 100, 14);
		}
		CHILD_CHECK(write(to_parent[1], "d", 1) == 1, 15);
		talloc_free(ev);
		_exit(0);
	}
	close(to_child[0]);
	close(to_parent[1]);

	h.fd = to_parent[0];
	arm_parent_watchdog(ev, "child did not answer");
	assert_non_null(tevent_add_fd(ev, ev, to_parent[0], TEVENT_FD_READ,
				      parent_fd, &h));
	while (h.parent_fd == 0) {
		assert_int_equal(tevent_loop_once(ev), 0);
		assert_true(++turns < 100);
	}
	assert_int_equal(write(to_child[1], "x", 1), 1);
	turns = 0;
	while (h.parent_fd < 2) {
		assert_int_equal(tevent_loop_once(ev), 0);
		assert_true(++turns < 100);
	}
	expect_child_ok(child);
	tt_finish(ev);
	close(to_child[1]);
	close(to_parent[0]);
}

/*
 * A forked child that drops the loop it inherited from inside one of the
 * loop's handlers (CTDB's children free the context that way), the event
 * being owned elsewhere. While its handler runs a timer or an immediate is
 * off the context's heap or queue, yet it still refers to the context: a
 * timer gets its DETACH trace point when freed, an immediate owes one.
 * The context's teardown must settle that while the context is whole, so
 * freeing the event later never reaches back into the freed context.
 * Re-initialising from the handler instead keeps the context whole: the
 * point comes after the handler, as upstream's does.
 */
enum drop_kind { DROP_IMMEDIATE, DROP_TIMER };

struct drop_state {
	struct tevent_context *ev;
	const char *backend;
	enum drop_kind kind;
	bool reinit;		/* re-initialise instead of freeing */
	void *owner;		/* owns event, not the context */
	void *event;		/* the timer or immediate that forks */
	int attach;
	int detach;
	int detach_after_free;	/* DETACH points reported on a freed context */
	bool ev_freed;
	int second_runs;
	pid_t parent;
};

static void drop_count(struct drop_state *d, enum tevent_event_trace_point tp)
{
	if (tp == TEVENT_EVENT_TRACE_ATTACH) {
		d->attach++;
	} else if (tp == TEVENT_EVENT_TRACE_DETACH) {
		d->detach++;
		if (d->ev_freed) {
			d->detach_after_free++;
		}
	}
}

static void drop_trace_imm(struct tevent_immediate *im,
			   enum tevent_event_trace_point tp, void *private_data)
{
	drop_count(private_data, tp);
}

static void drop_trace_timer(struct tevent_timer *te,
			     enum tevent_event_trace_point tp,
			     void *private_data)
{
	drop_count(private_data, tp);
}

static void drop_second(struct tevent_context *ev, struct tevent_immediate *im,
			void *private_data)
{
	struct drop_state *d = private_data;

	d->second_runs++;
}

/* Runs another immediate on ev; the trace counts go up by one each. */
static bool run_second(struct drop_state *d, struct tevent_context *ev)
{
	struct tevent_immediate *im = tevent_create_immediate(NULL);
	int runs = d->second_runs;

	if (im == NULL) {
		return false;
	}
	tevent_schedule_immediate(im, ev, drop_second, d);
	if (tevent_loop_once(ev) != 0) {
		return false;
	}
	talloc_free(im);
	return d->second_runs == runs + 1;
}

static void drop_in_child(struct drop_state *d)
{
	struct tevent_context *ev2;

	/* the handler is still running: the child never returns from it */
	CHILD_CHECK(d->detach == 0, 20);
	talloc_free(d->ev);
	d->ev_freed = true;
	CHILD_CHECK(d->detach == 1, 21);

	/* new allocations may now reuse the freed context's memory */
	ev2 = tevent_context_init_byname(NULL, d->backend);
	CHILD_CHECK(ev2 != NULL, 22);
	talloc_free(d->event);
	CHILD_CHECK(d->detach == 1, 23);
	CHILD_CHECK(d->detach_after_free == 0, 24);
	CHILD_CHECK(run_second(d, ev2), 25);
	talloc_free(ev2);
	_exit(0);
}

static void drop_fork(struct drop_state *d)
{
	pid_t pid = fork_flushed();

	if (pid == -1) {
		fail_msg("fork failed: %s", strerror(errno));
	}
	if (pid != 0) {
		expect_child_ok(pid);
		return;
	}
	if (!d->reinit) {
		drop_in_child(d);
	}
	CHILD_CHECK(tevent_re_initialise(d->ev) == 0, 30);
	/* the context stays whole: the running event reports its DETACH
	 * when its handler is back, as upstream's does */
	CHILD_CHECK(d->detach == 0, 31);
	/* The child may run a loop of its own from here, nesting never
	 * allowed (smbd's children do): re-initialising forgot the loop
	 * call we are in. */
	CHILD_CHECK(run_second(d, d->ev), 32);
	CHILD_CHECK(d->detach == 1, 38);
	/* back to the loop turn that called us, on the fresh state */
}

static void drop_imm_handler(struct tevent_context *ev,
			     struct tevent_immediate *im, void *private_data)
{
	drop_fork(private_data);
}

static void drop_timer_handler(struct tevent_context *ev,
			       struct tevent_timer *te, struct timeval now,
			       void *private_data)
{
	drop_fork(private_data);
}

static void run_drop_case(void **state, enum drop_kind kind, bool reinit)
{
	if (!reinit) {
		TT_SKIP_ON_UPSTREAM("the running event's DETACH trace comes "
				    "when it is freed, through the freed "
				    "context");
	}
	struct drop_state d = {
		.ev = tt_backend_ev(state),
		.backend = *state,
		.kind = kind,
		.reinit = reinit,
		.parent = getpid(),
	};

	tevent_set_trace_immediate_callback(d.ev, drop_trace_imm, &d);
	tevent_set_trace_timer_callback(d.ev, drop_trace_timer, &d);
	d.owner = talloc_new(NULL);
	assert_non_null(d.owner);
	if (kind == DROP_IMMEDIATE) {
		d.event = tevent_create_immediate(d.owner);
		assert_non_null(d.event);
		tevent_schedule_immediate((struct tevent_immediate *)d.event,
					  d.ev, drop_imm_handler, &d);
	} else {
		/* not NULL: that would make the context its owner */
		d.event = tevent_add_timer(d.ev, d.owner,
					   tevent_timeval_zero(),
					   drop_timer_handler, &d);
		assert_non_null(d.event);
	}
	assert_int_equal(tevent_loop_once(d.ev), 0);

	if (getpid() != d.parent) {
		/* the re-initialising child, back from its handler; a fired
		 * timer has been freed, with no second DETACH */
		CHILD_CHECK(d.detach == 2, 33);
		if (kind == DROP_IMMEDIATE) {
			talloc_free(d.event);
			CHILD_CHECK(d.detach == 2, 34);
		}
		CHILD_CHECK(run_second(&d, d.ev), 35);
		CHILD_CHECK(d.detach == 3, 36);
		talloc_free(d.ev);
		talloc_free(d.owner);
		_exit(0);
	}
	/* the parent's run detached as usual, once */
	assert_int_equal(d.attach, 1);
	assert_int_equal(d.detach, 1);
	if (kind == DROP_IMMEDIATE) {
		talloc_free(d.event);
		assert_int_equal(d.detach, 1);
	}
	talloc_free(d.owner);
	tt_finish(d.ev);
}

static void test_fork_child_frees_context_in_immediate(void **state)
{
	run_drop_case(state, DROP_IMMEDIATE, false);
}

static void test_fork_child_reinit_in_immediate(void **state)
{
	run_drop_case(state, DROP_IMMEDIATE, true);
}

static void test_fork_child_frees_context_in_timer(void **state)
{
	run_drop_case(state, DROP_TIMER, false);
}

static void test_fork_child_reinit_in_timer(void **state)
{
	run_drop_case(state, DROP_TIMER, true);
}

int main(void)
{
	static const struct tt_case cases[] = {
		TT_BACKEND_CASE(test_fork_reinit),
		TT_BACKEND_CASE(test_fork_no_reinit),
		TT_BACKEND_CASE(test_fork_both_sides_run),
		TT_BACKEND_CASE(test_fork_child_frees_context_in_immediate),
		TT_BACKEND_CASE(test_fork_child_reinit_in_immediate),
		TT_BACKEND_CASE(test_fork_child_frees_context_in_timer),
		TT_BACKEND_CASE(test_fork_child_reinit_in_timer),
	};

	tt_check_library();
	return tt_run_cases("fork", cases, sizeof(cases) / sizeof(cases[0]));
}

/*
 * Helpers shared by the tests that drive a loop from other threads
 * (tests/test_thread_proxy.c, tests/test_threaded_context.c).  Header
 * only, all static inline, so that nothing here is needed by the builds
 * of tests/common against other headers.
 *
 * Include <cmocka.h>, <talloc.h> and <tevent.h> first: LOOP_UNTIL() and
 * tt_drain() use cmocka's assertions, so they belong to the main thread.
 * Helper threads never use cmocka (a longjmp across threads); they use
 * CHECK(), which aborts the program with a message.
 */
#ifndef TT_THREADS_H
#define TT_THREADS_H

#include <errno.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tt.h"

#if defined(__SANITIZE_THREAD__)
#define TT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TT_TSAN 1
#endif
#endif


/* Only keeps a hung case from hanging the run; never a timing assertion. */
#define TT_WATCHDOG_SECS 300

#define CHECK(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n",        \
				__FILE__, __LINE__, #cond);                 \
			abort();                                            \
		}                                                           \
	} while (0)

/*
 * Base message count: $TT_THREAD_MSGS if set, otherwise 1,000,000, or
 * 20,000 under ThreadSanitizer or valgrind.
 */
static inline unsigned long tt_thread_msgs(void)
{
	const char *s = getenv("TT_THREAD_MSGS");
	unsigned long n;

	if (s != NULL && *s != '\0') {
		n = strtoul(s, NULL, 10);
		return n > 0 ? n : 1;
	}
#ifdef TT_TSAN
	return 20000;
#else
	return TT_ON_VALGRIND() ? 20000 : 1000000;
#endif
}

/*
 * How many times a test forks while threads are busy.  Under valgrind a
 * fork copies the tool's whole state and the child runs under it too:
 * about a second each on a loaded machine, so 300 of them ran into the
 * watchdog.  There the threads take turns anyway, so fewer forks lose
 * little of what the test can catch.
 */
static inline int tt_busy_forks(void)
{
	return TT_ON_VALGRIND() ? 30 : 300;
}

static inline unsigned long tt_clamp_ul(unsigned long v, unsigned long lo,
					unsigned long hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* sem_wait() that sits out signal interruptions. */
static inline void tt_sem_wait_nointr(sem_t *sem)
{
	while (sem_wait(sem) != 0) {
		CHECK(errno == EINTR);
	}
}

/* ------------------------------------------------------------------------
 * Loop helpers
 * ------------------------------------------------------------------------ */

static inline void tt_flag_timer(struct tevent_context *ev,
				 struct tevent_timer *te, struct timeval now,
				 void *private_data)
{
	(void)ev;
	(void)te;
	(void)now;
	*(bool *)private_data = true;
}

/*
 * A timer that only turns a hang into a failure.  A timer that fired is
 * gone, so the handler forgets it and disarming frees only a live one.
 */
struct tt_watchdog {
	bool fired;
	struct tevent_timer *te;
};

static inline void tt_watchdog_timer(struct tevent_context *ev,
				     struct tevent_timer *te,
				     struct timeval now, void *private_data)
{
	struct tt_watchdog *wd = private_data;

	(void)ev;
	(void)te;
	(void)now;
	wd->fired = true;
	wd->te = NULL;
}

static inline bool tt_watchdog_arm(struct tt_watchdog *wd,
				   struct tevent_context *ev, unsigned secs)
{
	wd->fired = false;
	wd->te = tevent_add_timer(ev, ev, tevent_timeval_current_ofs(secs, 0),
				  tt_watchdog_timer, wd);
	return wd->te != NULL;
}

static inline void tt_watchdog_disarm(struct tt_watchdog *wd)
{
	TALLOC_FREE(wd->te);
}

/* Runs ev until cond holds; the watchdog only turns a hang into a failure. */
#define LOOP_UNTIL(ev, cond)                                                \
	do {                                                                \
		struct tt_watchdog wd_;                                     \
		assert_true(tt_watchdog_arm(&wd_, (ev), TT_WATCHDOG_SECS)); \
		while (!(cond) && !wd_.fired) {                             \
			assert_int_equal(tevent_loop_once(ev), 0);          \
		}                                                           \
		tt_watchdog_disarm(&wd_);                                   \
		assert_false(wd_.fired);                                    \
	} while (0)

/*
 * Runs ev until everything already handed to it has run: a timer due now
 * only fires once no immediate is pending, and what other threads posted
 * is picked up at the start of every turn.
 */
static inline void tt_drain(struct tevent_context *ev)
{
	bool fired = false;

	assert_non_null(tevent_add_timer(ev, ev, tevent_timeval_zero(),
					 tt_flag_timer, &fired));
	LOOP_UNTIL(ev, fired);
}

/*
 * Holds a helper thread back until the loop is about to sleep: installed
 * as the trace callback (private data: the gate), it posts go on the first
 * TEVENT_TRACE_BEFORE_WAIT; the helper waits on go with
 * tt_sem_wait_nointr().
 */
struct tt_sleep_gate {
	sem_t go;
	bool posted;
};

static inline void tt_sleep_gate_trace(enum tevent_trace_point point,
				       void *private_data)
{
	struct tt_sleep_gate *g = private_data;

	if (point == TEVENT_TRACE_BEFORE_WAIT && !g->posted) {
		g->posted = true;
		CHECK(sem_post(&g->go) == 0);
	}
}

/* Lets the helper go if the loop never slept; true if it did so here. */
static inline bool tt_sleep_gate_open(struct tt_sleep_gate *g)
{
	if (g->posted) {
		return false;
	}
	g->posted = true;
	CHECK(sem_post(&g->go) == 0);
	return true;
}

/* ------------------------------------------------------------------------
 * Do-nothing wrapper hooks, for the hooks a case does not look at
 * ------------------------------------------------------------------------ */

static inline bool tt_w_before_use(struct tevent_context *w, void *s,
				   struct tevent_context *m, const char *l)
{
	(void)w, (void)s, (void)m, (void)l;
	return true;
}
static inline void tt_w_after_use(struct tevent_context *w, void *s,
				  struct tevent_context *m, const char *l)
{
	(void)w, (void)s, (void)m, (void)l;
}
static inline void tt_w_fd(struct tevent_context *w, void *s,
			   struct tevent_context *m, struct tevent_fd *fde,
			   uint16_t flags, const char *h, const char *l)
{
	(void)w, (void)s, (void)m, (void)fde, (void)flags, (void)h, (void)l;
}
static inline void tt_w_timer(struct tevent_context *w, void *s,
			      struct tevent_context *m,
			      struct tevent_timer *te, struct timeval a,
			      struct timeval b, const char *h, const char *l)
{
	(void)w, (void)s, (void)m, (void)te, (void)a, (void)b, (void)h,
		(void)l;
}
static inline void tt_w_im(struct tevent_context *w, void *s,
			   struct tevent_context *m,
			   struct tevent_immediate *im, const char *h,
			   const char *l)
{
	(void)w, (void)s, (void)m, (void)im, (void)h, (void)l;
}
static inline void tt_w_sig(struct tevent_context *w, void *s,
			    struct tevent_context *m,
			    struct tevent_signal *se, int signum, int count,
			    void *info, const char *h, const char *l)
{
	(void)w, (void)s, (void)m, (void)se, (void)signum, (void)count,
		(void)info, (void)h, (void)l;
}

/* A wrapper ops table named `ops_name` with the given timer and immediate
 * hooks and do-nothing ones for the rest. */
#define TT_WRAPPER_OPS_WITH(ops_name, timer_in, timer_out, im_in, im_out)    \
	{                                                                   \
		.name = ops_name,                                           \
		.before_use = tt_w_before_use,                              \
		.after_use = tt_w_after_use,                                \
		.before_fd_handler = tt_w_fd,                               \
		.after_fd_handler = tt_w_fd,                                \
		.before_timer_handler = timer_in,                           \
		.after_timer_handler = timer_out,                           \
		.before_immediate_handler = im_in,                          \
		.after_immediate_handler = im_out,                          \
		.before_signal_handler = tt_w_sig,                          \
		.after_signal_handler = tt_w_sig,                           \
	}

/* A wrapper ops table of the hooks above, named `ops_name`. */
#define TT_QUIET_WRAPPER_OPS(ops_name)                                      \
	TT_WRAPPER_OPS_WITH(ops_name, tt_w_timer, tt_w_timer, tt_w_im, tt_w_im)

/*
 * Hooks that count: the wrapper's private state is a struct tt_hook_depth
 * (make the wrapper with type struct tt_hook_depth), whose depth is above
 * zero while an immediate or timer handler runs inside the wrapper's
 * hooks. The other hooks do nothing.
 */
struct tt_hook_depth {
	int depth;
	unsigned long runs;  /* handlers run inside the hooks */
};

static inline void tt_w_im_in(struct tevent_context *w, void *s,
			      struct tevent_context *m,
			      struct tevent_immediate *im, const char *h,
			      const char *l)
{
	(void)w, (void)m, (void)im, (void)h, (void)l;
	struct tt_hook_depth *d = s;
	d->depth++;
	d->runs++;
}
static inline void tt_w_im_out(struct tevent_context *w, void *s,
			       struct tevent_context *m,
			       struct tevent_immediate *im, const char *h,
			       const char *l)
{
	(void)w, (void)m, (void)im, (void)h, (void)l;
	((struct tt_hook_depth *)s)->depth--;
}
static inline void tt_w_timer_in(struct tevent_context *w, void *s,
				 struct tevent_context *m,
				 struct tevent_timer *te, struct timeval a,
				 struct timeval b, const char *h,
				 const char *l)
{
	tt_w_im_in(w, s, m, NULL, h, l);
	(void)te, (void)a, (void)b;
}
static inline void tt_w_timer_out(struct tevent_context *w, void *s,
				  struct tevent_context *m,
				  struct tevent_timer *te, struct timeval a,
				  struct timeval b, const char *h,
				  const char *l)
{
	tt_w_im_out(w, s, m, NULL, h, l);
	(void)te, (void)a, (void)b;
}

/* A wrapper ops table of the counting hooks, named `ops_name`. */
#define TT_DEPTH_WRAPPER_OPS(ops_name)                                      \
	TT_WRAPPER_OPS_WITH(ops_name, tt_w_timer_in, tt_w_timer_out,          \
			    tt_w_im_in, tt_w_im_out)

/* ------------------------------------------------------------------------
 * Child processes that report one byte
 * ------------------------------------------------------------------------ */

/* Reads the child's report byte and reaps it; '?' if it wrote none. */
static inline char tt_reap_child(pid_t pid, int rfd)
{
	char c = '?';
	ssize_t n;
	int status;

	do {
		n = read(rfd, &c, 1);
	} while (n == -1 && errno == EINTR);
	if (n != 1) {
		c = '?';
	}
	close(rfd);
	while (waitpid(pid, &status, 0) == -1) {
		CHECK(errno == EINTR);
	}
	return c;
}

/*
 * Forks a child that runs fn(arg) and reports the byte it returns through
 * a pipe, then _exit()s (it never returns into cmocka).  alarm(hang_secs)
 * kills a hung child.  Returns the child's byte: '?' if it died without
 * one, 'p' or 'f' if pipe() or fork() failed.
 */
static inline char tt_fork_report(char (*fn)(void *arg), void *arg,
				  unsigned hang_secs)
{
	int pfd[2];
	pid_t pid;
	char c;

	if (pipe(pfd) != 0) {
		return 'p';
	}
	fflush(NULL);
	pid = fork();
	if (pid == -1) {
		close(pfd[0]);
		close(pfd[1]);
		return 'f';
	}
	if (pid == 0) {
		close(pfd[0]);
		alarm(hang_secs);
		c = fn(arg);
		if (write(pfd[1], &c, 1) != 1) {
			_exit(3);
		}
		_exit(0);
	}
	close(pfd[1]);
	return tt_reap_child(pid, pfd[0]);
}

static inline char tt_child_reinitialise(void *ev)
{
	return tevent_re_initialise(ev) == 0 ? 'K' : 'x';
}

/* A child that re-initialises ev and reports 'K'; '?' if it hung. */
static inline char tt_fork_and_reinitialise(struct tevent_context *ev)
{
	return tt_fork_report(tt_child_reinitialise, ev,
			      TT_ON_VALGRIND() ? 60 : 5);
}

#endif /* TT_THREADS_H */

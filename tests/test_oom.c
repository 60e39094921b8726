/*
 * Out-of-memory sweep: every allocation the library makes is made to fail
 * in turn, and the program must carry on.
 *
 * The test program defines the allocation functions the library calls
 * (talloc's constructors, and realloc/calloc/aligned_alloc from libc).
 * The dynamic linker binds the library's calls to these definitions; they
 * pass everything on to the real functions, except that the k-th call made
 * from inside libtevent itself (the return address tells) fails.  Calls
 * from the test program, from talloc's own insides and from other
 * libraries are never failed and never counted.
 *
 * One scenario uses most of the library on one context: fd, timer,
 * immediate and signal events, a threaded context and a thread proxy (both
 * used from the loop thread), a wrapper context, requests (posted, with an
 * end time, as subrequests) and a queue with a waiter.  It checks every
 * result: a call that fails must say so (NULL, false, an error in the
 * request), and whatever was set up must run exactly once.  A child
 * process runs the scenario for each k, in two modes: only the k-th
 * allocation fails, or the k-th and all later ones do.  The parent checks
 * that the child exited cleanly and that, once everything was freed, no
 * more talloc blocks were left than after a run without failures.  The
 * sweep ends at the first k that the scenario no longer reaches.
 *
 * The one abort allowed is tevent_req_post() failing to allocate its
 * immediate (ours creates it on first use; upstream creates it with the
 * request and has no way to report the failure either).  A
 * tevent_loop_once() that returns -1 with ENOMEM (the poll backend could
 * not grow its array) ends the run; then nothing may have run twice.
 *
 * Under valgrind only the talloc functions count: valgrind's own
 * realloc/calloc/aligned_alloc take the place of the test's.
 *
 * Debugging aids, in the environment: OOM_K=k runs only that child (for
 * gdb's "set follow-fork-mode child"); OOM_TRACE=1 prints a backtrace of
 * every failed allocation; OOM_SITES=1 prints the library offset of every
 * counted call.
 */

#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <link.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>

#define TEVENT_DEPRECATED 1
#include <tevent.h>

#include "common/tt.h"
#include "common/tt_threads.h"

#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

/* ------------------------------------------------------------------ */
/* fault injection                                                     */

static uintptr_t lib_lo, lib_hi;        /* libtevent's mapped range */
static atomic_bool armed;
static atomic_long lib_calls;           /* counted since arming */
static long fail_at;                    /* 1-based; 0: never */
static bool fail_after;                 /* and every later one too */
static atomic_long failed;              /* injected failures */

static int find_lib(struct dl_phdr_info *info, size_t size, void *data)
{
	int i;

	if (strstr(info->dlpi_name, "libtevent.so") == NULL) {
		return 0;
	}
	for (i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type != PT_LOAD) {
			continue;
		}
		if (lib_lo == 0 || lo < lib_lo) {
			lib_lo = lo;
		}
		if (lo + ph->p_memsz > lib_hi) {
			lib_hi = lo + ph->p_memsz;
		}
	}
	return 1;
}

/* Whether this allocation, called from `ra`, is to fail. */
static bool inject(void *ra)
{
	long n;

	if (!atomic_load(&armed) || (uintptr_t)ra < lib_lo ||
	    (uintptr_t)ra >= lib_hi) {
		return false;
	}
	n = atomic_fetch_add(&lib_calls, 1) + 1;
	if (getenv("OOM_SITES") != NULL) {
		/* OOM_SITES=1: the library offset of every counted call */
		fprintf(stderr, "site %#lx\n", (unsigned long)((uintptr_t)ra - lib_lo));
	}
	if (fail_at != 0 && (n == fail_at || (fail_after && n > fail_at))) {
		atomic_fetch_add(&failed, 1);
		if (getenv("OOM_TRACE") != NULL) {
			/* OOM_TRACE=1: where the failed allocations come from */
			void *frames[16];
			int depth = backtrace(frames, 16);

			fprintf(stderr, "allocation %ld fails:\n", n);
			backtrace_symbols_fd(frames, depth, 2);
		}
		errno = ENOMEM;
		return true;
	}
	return false;
}

#define REAL(name) \
	static __typeof__(name) *real_##name; \
	if (real_##name == NULL) { \
		real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name); \
	}

void *_talloc_zero(const void *ctx, size_t size, const char *name)
{
	REAL(_talloc_zero);
	if (inject(__builtin_return_address(0))) {
		return NULL;
	}
	return real__talloc_zero(ctx, size, name);
}

void *_talloc_zero_array(const void *ctx, size_t el_size, unsigned count,
			 const char *name)
{
	REAL(_talloc_zero_array);
	if (inject(__builtin_return_address(0))) {
		return NULL;
	}
	return real__talloc_zero_array(ctx, el_size, count, name);
}

void *_talloc_pooled_object(const void *ctx, size_t type_size,
			    const char *type_name, unsigned num_subobjects,
			    size_t total_subobjects_size)
{
	REAL(_talloc_pooled_object);
	if (inject(__builtin_return_address(0))) {
		return NULL;
	}
	return real__talloc_pooled_object(ctx, type_size, type_name,
					  num_subobjects,
					  total_subobjects_size);
}

void *talloc_named_const(const void *ctx, size_t size, const char *name)
{
	REAL(talloc_named_const);
	if (inject(__builtin_return_address(0))) {
		return NULL;
	}
	return real_talloc_named_const(ctx, size, name);
}

char *talloc_strdup(const void *ctx, const char *p)
{
	REAL(talloc_strdup);
	if (inject(__builtin_return_address(0))) {
		return NULL;
	}
	return real_talloc_strdup(ctx, p);
}

char *talloc_asprintf(const void *ctx, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (inject(__builtin_return_address(0))) {
		return NULL;
	}
	va_start(ap, fmt);
	s = talloc_vasprintf(ctx, fmt, ap);
	va_end(ap);
	return s;
}

void *realloc(void *p, size_t size)
{
	REAL(realloc);
	if (inject(__builtin_return_address(0))) {
		return NULL;
	}
	return real_realloc(p, size);
}

void *aligned_alloc(size_t alignment, size_t size)
{
	REAL(aligned_alloc);
	if (inject(__builtin_return_address(0))) {
		return NULL;
	}
	return real_aligned_alloc(alignment, size);
}

/*
 * calloc may be asked for while dlsym() looks calloc up: that request
 * gets NULL, which dlsym only needs on its error path.
 */
void *calloc(size_t n, size_t size)
{
	static __thread bool resolving;
	static void *(*real_calloc)(size_t, size_t);

	if (real_calloc == NULL) {
		if (resolving) {
			return NULL;
		}
		resolving = true;
		real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT,
							       "calloc");
		resolving = false;
	}
	if (inject(__builtin_return_address(0))) {
		return NULL;
	}
	return real_calloc(n, size);
}

/* ------------------------------------------------------------------ */
/* the scenario                                                        */

enum {
	E_FD, E_TIMER, E_IMM, E_SIGNAL, E_THREADED, E_PROXY, E_WRAP_TIMER,
	E_REQ_POST, E_REQ_SUB, E_QUEUE_1, E_QUEUE_2, E_QUEUE_WAIT, E_WAKEUP,
	E_COUNT
};

static const char *const event_names[E_COUNT] = {
	"fd", "timer", "immediate", "signal", "threaded immediate",
	"proxy immediate", "wrapper timer", "posted request",
	"subrequest", "queue entry 1", "queue entry 2", "queue waiter",
	"wakeup request",
};

struct scenario {
	struct tevent_context *ev;
	bool expected[E_COUNT];   /* set up successfully: must run once */
	int ran[E_COUNT];
	int sv[2];
	int queue_order[2];
	int nqueued;
	struct tevent_req *queued[2];
	bool loop_failed;         /* tevent_loop_once() ran out of memory */
};

static void ran(struct scenario *s, int which)
{
	s->ran[which]++;
}

static void fd_handler(struct tevent_context *ev, struct tevent_fd *fde,
		       uint16_t flags, void *private_data)
{
	struct scenario *s = private_data;
	char c;

	if (read(s->sv[0], &c, 1) == 1) {
		ran(s, E_FD);
	}
	tevent_fd_set_flags(fde, 0);
}

static void timer_handler(struct tevent_context *ev, struct tevent_timer *te,
			  struct timeval now, void *private_data)
{
	ran(private_data, E_TIMER);
}

static void wrap_timer_handler(struct tevent_context *ev,
			       struct tevent_timer *te, struct timeval now,
			       void *private_data)
{
	ran(private_data, E_WRAP_TIMER);
}

static void imm_handler(struct tevent_context *ev, struct tevent_immediate *im,
			void *private_data)
{
	ran(private_data, E_IMM);
}

static void threaded_handler(struct tevent_context *ev,
			     struct tevent_immediate *im, void *private_data)
{
	ran(private_data, E_THREADED);
}

static void proxy_handler(struct tevent_context *ev,
			  struct tevent_immediate *im, void *private_data)
{
	struct scenario **ps = private_data;

	ran(*ps, E_PROXY);
}

static void signal_handler(struct tevent_context *ev, struct tevent_signal *se,
			   int signum, int count, void *siginfo,
			   void *private_data)
{
	ran(private_data, E_SIGNAL);
}

static const struct tevent_wrapper_ops wrap_ops =
	TT_QUIET_WRAPPER_OPS("oom");

struct wrap_state {
	int unused;
};

struct plain_state {
	int unused;
};

/* ------------------------------------------------------------------ */
/* requests                                                            */

static void posted_done(struct tevent_req *req)
{
	struct scenario *s = tevent_req_callback_data_void(req);

	ran(s, E_REQ_POST);
	talloc_free(req);
}

/* The usual shape of a _send function: an end time, a subrequest that a
 * timer finishes, and every allocation failure reported through the
 * request (tevent_req_nomem, then tevent_req_post). */
static void sub_timer(struct tevent_context *ev, struct tevent_timer *te,
		      struct timeval now, void *private_data)
{
	tevent_req_done(private_data);
}

static void outer_sub_done(struct tevent_req *sub)
{
	struct tevent_req *req = tevent_req_callback_data(sub,
							  struct tevent_req);

	talloc_free(sub);
	tevent_req_done(req);
}

static struct tevent_req *outer_send(TALLOC_CTX *mem_ctx,
				     struct tevent_context *ev)
{
	struct plain_state *st, *sst;
	struct tevent_req *req, *sub;

	req = tevent_req_create(mem_ctx, &st, struct plain_state);
	if (req == NULL) {
		return NULL;
	}
	/* a profile makes the subrequest allocate its own; optional */
	(void)tevent_req_set_profile(req);
	if (!tevent_req_set_endtime(req, ev,
				    tevent_timeval_current_ofs(60, 0))) {
		return tevent_req_post(req, ev);
	}
	sub = tevent_req_create(req, &sst, struct plain_state);
	if (tevent_req_nomem(sub, req)) {
		return tevent_req_post(req, ev);
	}
	if (tevent_req_nomem(tevent_add_timer(ev, sub, tevent_timeval_zero(),
					      sub_timer, sub),
			     req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(sub, outer_sub_done, req);
	return req;
}

static void outer_done(struct tevent_req *req)
{
	struct scenario *s = tevent_req_callback_data_void(req);
	char *text = tevent_req_print(NULL, req);

	ran(s, E_REQ_SUB);
	talloc_free(text);
	talloc_free(tevent_req_move_profile(req, NULL));
	talloc_free(req);
}

static void wakeup_done(struct tevent_req *req)
{
	struct scenario *s = tevent_req_callback_data_void(req);

	ran(s, E_WAKEUP);
	talloc_free(req);
}

static void queue_trigger(struct tevent_req *req, void *private_data)
{
	struct scenario *s = private_data;
	int i = req == s->queued[0] ? 0 : 1;

	ran(s, E_QUEUE_1 + i);
	s->queue_order[i] = ++s->nqueued;
	tevent_req_done(req);
}

static void queued_done(struct tevent_req *req)
{
	talloc_free(req);
}

static void wait_done(struct tevent_req *req)
{
	struct scenario *s = tevent_req_callback_data_void(req);

	ran(s, E_QUEUE_WAIT);
	talloc_free(req);
}

/* ------------------------------------------------------------------ */

static void setup_events(struct scenario *s, struct tevent_context *ev)
{
	struct tevent_immediate *im;
	struct tevent_threaded_context *tctx;
	struct tevent_thread_proxy *tp;
	struct tevent_context *wev;
	struct wrap_state *wst;
	struct tevent_queue *q;
	struct tevent_req *req;
	struct plain_state *st;
	int i;

	if (tevent_add_fd(ev, ev, s->sv[0], TEVENT_FD_READ, fd_handler, s)) {
		s->expected[E_FD] = true;
	}
	if (tevent_add_timer(ev, ev, tevent_timeval_zero(), timer_handler,
			     s)) {
		s->expected[E_TIMER] = true;
	}
	im = tevent_create_immediate(ev);
	if (im != NULL) {
		tevent_schedule_immediate(im, ev, imm_handler, s);
		s->expected[E_IMM] = true;
	}
	if (tevent_add_signal(ev, ev, SIGUSR1, SA_SIGINFO, signal_handler,
			      s)) {
		kill(getpid(), SIGUSR1);
		s->expected[E_SIGNAL] = true;
	}
	tctx = tevent_threaded_context_create(ev, ev);
	im = tevent_create_immediate(ev);
	if (tctx != NULL && im != NULL) {
		tevent_threaded_schedule_immediate(tctx, im, threaded_handler,
						   s);
		s->expected[E_THREADED] = true;
	}
	tp = tevent_thread_proxy_create(ev);
	if (tp != NULL) {
		struct tevent_immediate *pim = tevent_create_immediate(NULL);
		struct scenario **ps = talloc(NULL, struct scenario *);

		if (ps != NULL) {
			*ps = s;
		}
		if (pim != NULL && ps != NULL) {
			tevent_thread_proxy_schedule(tp, &pim, proxy_handler,
						     &ps);
			/* sent: both now belong to the proxy */
			s->expected[E_PROXY] = pim == NULL;
		}
		talloc_free(pim);
		talloc_free(ps);
	}
	wev = tevent_context_wrapper_create(ev, ev, &wrap_ops, &wst,
					    struct wrap_state);
	if (wev != NULL &&
	    tevent_add_timer(wev, wev, tevent_timeval_zero(),
			     wrap_timer_handler, s)) {
		s->expected[E_WRAP_TIMER] = true;
	}

	req = tevent_req_create(ev, &st, struct plain_state);
	if (req != NULL) {
		/* finished in its _send function, reported from the loop */
		tevent_req_done(req);
		tevent_req_post(req, ev);
		tevent_req_set_callback(req, posted_done, s);
		s->expected[E_REQ_POST] = true;
	}
	req = outer_send(ev, ev);
	if (req != NULL) {
		tevent_req_set_callback(req, outer_done, s);
		s->expected[E_REQ_SUB] = true;
	}

	req = tevent_wakeup_send(ev, ev, tevent_timeval_current());
	if (req != NULL) {
		tevent_req_set_callback(req, wakeup_done, s);
		s->expected[E_WAKEUP] = true;
	}
	talloc_free(tevent_backend_list(ev));

	q = tevent_queue_create(ev, "oom");
	if (q == NULL) {
		return;
	}
	for (i = 0; i < 2; i++) {
		req = tevent_req_create(ev, &st, struct plain_state);
		if (req == NULL) {
			continue;
		}
		s->queued[i] = req;
		tevent_req_set_callback(req, queued_done, s);
		if (tevent_queue_add_entry(q, ev, req, queue_trigger, s)) {
			s->expected[E_QUEUE_1 + i] = true;
		} else {
			talloc_free(req);
			s->queued[i] = NULL;
		}
	}
	req = tevent_queue_wait_send(ev, ev, q);
	if (req != NULL) {
		tevent_req_set_callback(req, wait_done, s);
		s->expected[E_QUEUE_WAIT] = true;
	}
}

static void watchdog(struct tevent_context *ev, struct tevent_timer *te,
		     struct timeval now, void *private_data)
{
	*(bool *)private_data = true;
}

static bool all_ran(const struct scenario *s)
{
	int i;

	for (i = 0; i < E_COUNT; i++) {
		if (s->expected[i] && s->ran[i] == 0) {
			return false;
		}
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* one run, in a child process                                         */

struct outcome {
	long calls;                 /* allocations the library asked for */
	long failed;                /* of which failed on purpose */
	long leaked;                /* talloc blocks left over */
	int bad;                    /* a check failed: see msg */
	char msg[256];
};

static int result_fd = -1;
static struct outcome result;

static void report(void)
{
	result.calls = atomic_load(&lib_calls);
	result.failed = atomic_load(&failed);
	(void)write(result_fd, &result, sizeof(result));
}

static void child_abort(const char *reason)
{
	atomic_store(&armed, false);
	result.bad = 2;
	snprintf(result.msg, sizeof(result.msg), "tevent_abort: %s", reason);
	report();
	abort();
}

static void check(bool ok, const char *fmt, ...)
{
	va_list ap;

	if (ok || result.bad) {
		return;
	}
	result.bad = 1;
	va_start(ap, fmt);
	vsnprintf(result.msg, sizeof(result.msg), fmt, ap);
	va_end(ap);
}

static void run_scenario(const char *backend)
{
	struct scenario s;
	struct tevent_context *ev;
	size_t before;
	int turns = 0, i;

	memset(&s, 0, sizeof(s));
	check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s.sv) == 0,
	      "socketpair");
	check(write(s.sv[1], "x", 1) == 1, "write");
	talloc_enable_null_tracking();
	before = talloc_total_blocks(NULL);

	atomic_store(&armed, true);
	ev = tevent_context_init_byname(NULL, backend);
	if (ev != NULL) {
		bool stuck = false;

		setup_events(&s, ev);
		/* not counted: ends a loop that waits for nothing */
		atomic_store(&armed, false);
		check(tevent_add_timer(ev, ev,
				       tevent_timeval_current_ofs(5, 0),
				       watchdog, &stuck) != NULL, "watchdog");
		atomic_store(&armed, true);
		while (!all_ran(&s) && !stuck && turns++ < 200) {
			if (tevent_loop_once(ev) != 0) {
				/* fine if it says why: no memory */
				check(errno == ENOMEM && atomic_load(&failed),
				      "loop_once failed: %s", strerror(errno));
				s.loop_failed = true;
				break;
			}
		}
		for (i = 0; i < E_COUNT && stuck; i++) {
			check(!s.expected[i] || s.ran[i],
			      "stuck: %s never ran", event_names[i]);
		}
	}
	atomic_store(&armed, false);

	for (i = 0; i < E_COUNT; i++) {
		if (s.loop_failed) {
			/* the loop could not go on: at most once each */
			check(s.ran[i] <= (s.expected[i] ? 1 : 0),
			      "%s: set up %d, ran %d times", event_names[i],
			      s.expected[i], s.ran[i]);
			continue;
		}
		check(s.ran[i] == (s.expected[i] ? 1 : 0),
		      "%s: set up %d, ran %d times", event_names[i],
		      s.expected[i], s.ran[i]);
	}
	if (s.expected[E_QUEUE_1] && s.expected[E_QUEUE_2]) {
		check(s.queue_order[0] < s.queue_order[1],
		      "queue entries out of order");
	}
	talloc_free(ev);
	close(s.sv[0]);
	close(s.sv[1]);
	result.leaked = (long)talloc_total_blocks(NULL) - (long)before;
	talloc_disable_null_tracking();
	report();
}

static struct outcome run_child(const char *backend, long k, bool after)
{
	struct outcome out;
	int pfd[2], status;
	ssize_t n;
	pid_t pid;

	memset(&out, 0, sizeof(out));
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		result_fd = pfd[1];
		fail_at = k;
		fail_after = after;
		alarm(60);  /* a hang ends the child, not the suite */
		tevent_set_abort_fn(child_abort);
		run_scenario(backend);
		_exit(0);
	}
	close(pfd[1]);
	n = read(pfd[0], &out, sizeof(out));
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (n != (ssize_t)sizeof(out)) {
		fail_msg("%s, allocation %ld%s: child died without a report "
			 "(status %#x)", backend, k, after ? " on" : "",
			 status);
	}
	if (out.bad == 2) {
		/* the one allowed abort: see the top of the file */
		if (strstr(out.msg, "tevent_req_post: out of memory") == NULL) {
			fail_msg("%s, allocation %ld%s: %s", backend, k,
				 after ? " on" : "", out.msg);
		}
		assert_true(WIFSIGNALED(status));
		return out;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fail_msg("%s, allocation %ld%s: child status %#x", backend, k,
			 after ? " on" : "", status);
	}
	if (out.bad) {
		fail_msg("%s, allocation %ld%s: %s", backend, k,
			 after ? " on" : "", out.msg);
	}
	return out;
}

/* ------------------------------------------------------------------ */

static void sweep(const char *backend, bool after)
{
	struct outcome base;
	long k, aborts = 0;

	/* OOM_K=k: only that run, to follow it in a debugger */
	if (getenv("OOM_K") != NULL) {
		run_child(backend, atol(getenv("OOM_K")), after);
		return;
	}
	base = run_child(backend, 0, false);

	assert_true(base.calls > 10);
	assert_int_equal(base.failed, 0);
	for (k = 1; k <= base.calls; k++) {
		struct outcome o = run_child(backend, k, after);

		if (o.bad == 2) {
			aborts++;
			continue;
		}
		assert_true(o.failed >= 1);
		if (o.leaked > base.leaked) {
			fail_msg("%s, allocation %ld%s: %ld talloc blocks left "
				 "over, %ld without failures", backend, k,
				 after ? " on" : "", o.leaked, base.leaked);
		}
	}
	print_message("%s: %ld allocations, each failed in turn%s; "
		      "%ld allowed aborts; %ld talloc blocks left without "
		      "failures\n", backend, base.calls,
		      after ? " with all later ones" : "", aborts,
		      base.leaked);
}

static void test_oom_single(void **state)
{
	sweep(*state, false);
}

static void test_oom_from_then_on(void **state)
{
	if (TT_ON_VALGRIND()) {
		skip();  /* the single-failure sweep covers the paths */
	}
	sweep(*state, true);
}

int main(void)
{
	static const struct tt_case cases[] = {
		TT_BACKEND_CASE(test_oom_single),
		TT_BACKEND_CASE(test_oom_from_then_on),
	};

	tt_check_library();
	dl_iterate_phdr(find_lib, NULL);
	if (lib_lo == 0) {
		fprintf(stderr, "test_oom: libtevent is not loaded\n");
		return 2;
	}
	return tt_run_cases("oom", cases, sizeof(cases) / sizeof(cases[0]));
}

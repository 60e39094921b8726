/*
 * Out-of-memory sweeps for the test programs: fail the allocations a
 * library makes, one at a time, and check that a scenario survives.
 *
 * The program that includes this header defines the allocation functions
 * the libraries call (talloc's constructors and vasprintf family,
 * realloc/calloc/aligned_alloc and mmap from libc, and malloc where the
 * allocator is glibc's, not a sanitizer's).  The dynamic linker binds the
 * libraries' calls to these definitions, which pass everything on to the
 * real functions, except that the k-th call made from inside a watched
 * library (tt_oom_watch(); the return address tells) fails.  Calls from
 * the program itself, from talloc's insides and from other libraries are
 * never failed and never counted.  Under valgrind only the talloc
 * functions and mmap count: valgrind's own malloc/realloc/calloc/
 * aligned_alloc take the place of these.
 *
 * tt_oom_sweep() runs a scenario in a child process per k (see there).
 * The scenario reports what it finds wrong with tt_oom_check().
 *
 * Debugging aids, in the environment: OOM_K=k runs only that child (for
 * gdb's "set follow-fork-mode child"); OOM_TRACE=1 prints a backtrace of
 * every failed allocation; OOM_SITES=1 prints the library offset of every
 * counted call.
 *
 * Include it in exactly one file of a program, after <cmocka.h>,
 * <talloc.h> and <tevent.h>.
 */
#ifndef TT_OOM_H
#define TT_OOM_H

/* ThreadSanitizer's runtime does not survive the interposed allocators in
 * a forked child: the sweeps skip themselves there. */
#if defined(__SANITIZE_THREAD__)
#define TT_OOM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TT_OOM_TSAN 1
#endif
#endif

#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <link.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tt.h"

/* ------------------------------------------------------------------ */
/* fault injection                                                     */

#define TT_OOM_MAX_LIBS 4
static struct {
	const char *name;                /* part of the file name */
	uintptr_t lo, hi;                /* mapped range */
} watched_libs[TT_OOM_MAX_LIBS];
static int nwatched;
static atomic_bool armed;
static atomic_long lib_calls;           /* counted since arming */
static long fail_at;                    /* 1-based; 0: never */
static bool fail_after;                 /* and every later one too */
static atomic_long failed;              /* injected failures */

static int find_lib(struct dl_phdr_info *info, size_t size, void *data)
{
	int w = *(int *)data;
	int i;

	(void)size;
	if (strstr(info->dlpi_name, watched_libs[w].name) == NULL) {
		return 0;
	}
	for (i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type != PT_LOAD) {
			continue;
		}
		if (watched_libs[w].lo == 0 || lo < watched_libs[w].lo) {
			watched_libs[w].lo = lo;
		}
		if (lo + ph->p_memsz > watched_libs[w].hi) {
			watched_libs[w].hi = lo + ph->p_memsz;
		}
	}
	return 1;
}

/* Allocations called from the loaded library whose file name contains
 * `name_part` count; exits with status 2 when there is none. */
static void tt_oom_watch(const char *name_part)
{
	int w = nwatched++;

	if (w >= TT_OOM_MAX_LIBS) {
		fprintf(stderr, "tt_oom_watch: too many libraries\n");
		exit(2);
	}
	watched_libs[w].name = name_part;
	dl_iterate_phdr(find_lib, &w);
	if (watched_libs[w].lo == 0) {
		fprintf(stderr, "tt_oom_watch: %s is not loaded\n", name_part);
		exit(2);
	}
}

/* Which watched library `ra` is in, or -1. */
static int watched_lib_of(void *ra)
{
	int w;

	for (w = 0; w < nwatched; w++) {
		if ((uintptr_t)ra >= watched_libs[w].lo &&
		    (uintptr_t)ra < watched_libs[w].hi) {
			return w;
		}
	}
	return -1;
}

/* Whether this allocation, called from `ra`, is to fail. */
static bool inject(void *ra)
{
	long n;

	int w;

	if (!atomic_load(&armed) || (w = watched_lib_of(ra)) < 0) {
		return false;
	}
	n = atomic_fetch_add(&lib_calls, 1) + 1;
	if (getenv("OOM_SITES") != NULL) {
		/* OOM_SITES=1: the library offset of every counted call */
		fprintf(stderr, "site %s+%#lx\n", watched_libs[w].name,
			(unsigned long)((uintptr_t)ra - watched_libs[w].lo));
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

char *talloc_vasprintf(const void *ctx, const char *fmt, va_list ap)
{
	REAL(talloc_vasprintf);
	if (inject(__builtin_return_address(0))) {
		return NULL;
	}
	return real_talloc_vasprintf(ctx, fmt, ap);
}

char *talloc_vasprintf_append_buffer(char *s, const char *fmt, va_list ap)
{
	REAL(talloc_vasprintf_append_buffer);
	if (inject(__builtin_return_address(0))) {
		return NULL;
	}
	return real_talloc_vasprintf_append_buffer(s, fmt, ap);
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
 * malloc only where the allocator is glibc's: ASan and TSan bring their
 * own, which a block from __libc_malloc() would confuse.  (Under valgrind
 * its own malloc takes the place of this one, as for realloc.)
 */
#if !defined(__SANITIZE_ADDRESS__) && !defined(TT_OOM_TSAN)
#define TT_OOM_MALLOC 1
extern void *__libc_malloc(size_t size);

void *malloc(size_t size)
{
	if (inject(__builtin_return_address(0))) {
		return NULL;
	}
	return __libc_malloc(size);
}
#endif

/* Whether malloc() calls of the library are counted (and can fail). */
static inline bool tt_oom_counts_malloc(void)
{
#ifdef TT_OOM_MALLOC
	return !TT_ON_VALGRIND();
#else
	return false;
#endif
}

/* The timer queue maps the scratch memory of a big sort.  Not under TSan:
 * its runtime maps memory through this symbol before it can resolve the
 * real one (and the sweeps skip themselves there anyway). */
#ifndef TT_OOM_TSAN
void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	REAL(mmap);
	if (inject(__builtin_return_address(0))) {
		return MAP_FAILED;
	}
	return real_mmap(addr, len, prot, flags, fd, off);
}
#endif

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
/* one run, in a child process                                         */

struct outcome {
	long calls;                 /* allocations the library asked for */
	long failed;                /* of which failed on purpose */
	long leaked;                /* talloc blocks left over */
	int bad;                    /* a check failed: see msg */
	char msg[256];
};

static int result_fd = -1;
static const char *allowed_abort;  /* substring of the one allowed */
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

static void tt_oom_check(bool ok, const char *fmt, ...)
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

/* What a scenario runs on: the argument given to tt_oom_sweep(). */
typedef void (*tt_oom_scenario_fn)(const char *arg);

/* Stops (false) and restarts (true) counting, for allocations that are
 * the test's business (a watchdog timer, say). */
static void tt_oom_count(bool on)
{
	atomic_store(&armed, on);
}

/* In the test process itself, outside any sweep: while on, every
 * allocation a watched library makes fails. */
static inline void tt_oom_fail_all(bool on)
{
	fail_after = on;
	fail_at = on ? atomic_load(&lib_calls) + 1 : 0;
	atomic_store(&armed, on);
}

/* In the test process itself: of the allocations a watched library makes
 * from now on, the k-th (1-based) fails, and only that one.  Counting
 * goes on until tt_oom_fail_all(false); tt_oom_failed_any() tells whether
 * the k-th came. */
static inline void tt_oom_fail_nth(long k)
{
	atomic_store(&failed, 0);
	fail_after = false;
	fail_at = atomic_load(&lib_calls) + k;
	atomic_store(&armed, true);
}

/* Whether an allocation was failed on purpose so far. */
static bool tt_oom_failed_any(void)
{
	return atomic_load(&failed) != 0;
}

static void run_scenario(tt_oom_scenario_fn fn, const char *arg)
{
	size_t before;

	talloc_enable_null_tracking();
	before = talloc_total_blocks(NULL);
	tt_oom_count(true);
	fn(arg);
	tt_oom_count(false);
	result.leaked = (long)talloc_total_blocks(NULL) - (long)before;
	talloc_disable_null_tracking();
	report();
}

static struct outcome run_child(tt_oom_scenario_fn fn, const char *backend,
				 long k, bool after)
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
		run_scenario(fn, backend);
#ifdef TT_COVERAGE
		/* gcov writes each library's counts from its exit handlers */
		exit(0);
#else
		_exit(0);
#endif
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
		if (allowed_abort == NULL ||
		    strstr(out.msg, allowed_abort) == NULL) {
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

/*
 * Runs fn(arg) in a child process without failures, then once for every
 * allocation it made with that allocation failing (and, with `after`,
 * every later one too).  Each run must exit cleanly, with its checks
 * passed and no more talloc blocks left than the run without failures.
 * A tevent_abort() whose reason contains `abort_ok` (NULL: none) is
 * allowed.  Fails the cmocka test otherwise.
 */
static void tt_oom_sweep(tt_oom_scenario_fn fn, const char *arg, bool after,
			 const char *abort_ok)
{
	const char *backend = arg;
	struct outcome base;
	long k, aborts = 0;

#ifdef TT_OOM_TSAN
	skip();
#endif
	allowed_abort = abort_ok;
	/* OOM_K=k: only that run, to follow it in a debugger */
	if (getenv("OOM_K") != NULL) {
		run_child(fn, backend, atol(getenv("OOM_K")), after);
		return;
	}
	base = run_child(fn, backend, 0, false);

	assert_true(base.calls > 10);
	assert_int_equal(base.failed, 0);
	for (k = 1; k <= base.calls; k++) {
		struct outcome o = run_child(fn, backend, k, after);

		if (o.bad == 2) {
			aborts++;
			continue;
		}
		if (o.failed == 0) {
			/* with threads a run may allocate less than the
			 * first one: then the k-th never came */
			assert_true(o.calls < k);
		}
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

#endif /* TT_OOM_H */

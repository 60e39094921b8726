/*
 * Helpers shared by the tevent-cxx test programs.
 */
#ifndef TT_H
#define TT_H

#include <stdbool.h>
#include <stddef.h>

/* Whether the program runs under valgrind (never, without its header). */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TT_ON_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef TT_ON_VALGRIND
#define TT_ON_VALGRIND() false
#endif

/*
 * Make sure the libtevent the dynamic loader picked is the one under test:
 * $TEVENT_TEST_LIBRARY if set (buildtools/run-tests sets it), otherwise any
 * copy that is not the system's one under /usr/lib or /lib.  Prints the
 * path to stderr; exits with status 2 on a mismatch.
 */
void tt_check_library(void);

/* Real path of that library (runs tt_check_library() if not done yet). */
const char *tt_library_path(void);

/* Whether that library is upstream's: the system's copy, or any library
 * when TT_UPSTREAM=1 is in the environment (an upstream build kept
 * outside the system's directories). */
bool tt_is_system_library(void);

/* The library's minor version, from its file name (libtevent.so.0.MINOR.P):
 * 17 for ours, 14 for Debian 12's; for checks of what changed upstream. */
int tt_library_minor(void);

/*
 * Environment for a program the test starts with a chosen libtevent: the
 * caller's environment without LD_LIBRARY_PATH, LD_PRELOAD and
 * ASAN_OPTIONS, then the "NAME=value" entries of `add` (NULL-terminated,
 * may be NULL).  Unless `add` sets ASAN_OPTIONS, the inherited options
 * come back with verify_asan_link_order=0: an ASan-built library preloaded
 * into an uninstrumented program sits before the ASan runtime in the load
 * order, which ASan refuses unless told otherwise.  The array is malloc'd
 * (the strings are not copied); free() it after execve() or fork().
 */
char **tt_child_env(const char *const *add);

/* cmocka group setup that only calls tt_check_library(). */
int tt_group_setup(void **state);

/*
 * NULL-terminated list of the backends to exercise (tevent_backend_list()),
 * computed once and kept for the life of the program.
 */
const char **tt_backends(void);

/*
 * Per-backend cases: a program lists its cases once; tt_run_cases() turns
 * each TT_BACKEND_CASE into one cmocka test per backend, named
 * "case[backend]", whose initial state is the backend name.  With the
 * environment variable TT_FILTER set to a glob, only matching cases run.  Needs
 * <cmocka.h> to be included first.
 */
#ifdef cmocka_unit_test
struct tt_case {
	const char *name;
	CMUnitTestFunction fn;
	bool per_backend;
	const char *only;	/* per-backend cases: these backends only
				   (names separated by spaces); NULL: all */
};
#define TT_CASE(f) { #f, f, false, NULL }
#define TT_BACKEND_CASE(f) { #f, f, true, NULL }
/* One test per backend among `backends` ("epoll standard") that exists. */
#define TT_CASE_ON(f, backends) { #f, f, true, backends }

int tt_run_cases(const char *group, const struct tt_case *cases,
		 size_t ncases);

/*
 * First statement of a case that checks what upstream gets wrong (a crash,
 * a hang, a use after free; `why` says which): against the system library
 * the case is skipped, so that the rest of its suite can be checked there
 * (PORTABLE_TESTS in wscript).
 */
#define TT_SKIP_ON_UPSTREAM(why)                                            \
	do {                                                                \
		if (tt_is_system_library()) {                               \
			print_message("skipped on the system library: %s\n", \
				      (why));                               \
			skip();                                             \
		}                                                           \
	} while (0)
#endif

struct tevent_context;
struct tevent_timer;

/*
 * The debug messages a context sends, kept in order (the first 64, each
 * cut at 255 bytes) by tt_keep_debug(), which sets the context's debug
 * function.  The level limit stays as it is.
 */
struct tt_debug_log {
	int n;
	struct {
		int level;	/* enum tevent_debug_level */
		char text[256];
	} msg[64];
};
void tt_keep_debug(struct tevent_context *ev, struct tt_debug_log *log);
/* Index of the first kept message at `level` reading exactly `text`, or -1. */
int tt_debug_find(const struct tt_debug_log *log, int level, const char *text);
/* How many kept messages are at `level` or more severe. */
int tt_debug_count(const struct tt_debug_log *log, int level);

/*
 * A timer that fires every `usec` microseconds and arms itself again, so
 * that no turn of the loop blocks for longer (random-use tests turn loops
 * that may have nothing to do). Freeing t->te, or the context, stops it.
 * Returns false when the first timer could not be added; a later failure
 * aborts the program.
 */
struct tt_tick {
	struct tevent_timer *te;
	int usec;
};
bool tt_tick_start(struct tevent_context *ev, struct tt_tick *t, int usec);

/*
 * A context on the backend named by a per-backend case's state.  Arms a
 * 120 s alarm so that a loop that blocks forever ends the program;
 * tt_finish() frees the context and disarms it.
 */
struct tevent_context *tt_backend_ev(void **state);
void tt_finish(struct tevent_context *ev);

/*
 * poll_mt wakes its own poll() through the context's wakeup descriptor,
 * an fd event like any other, whenever the set of fd events changes; as
 * with upstream, serving it takes a loop turn of its own.  When `state`
 * names poll_mt, runs that turn, so that a case can count turns from a
 * settled loop; on other backends does nothing.
 */
void tt_spend_poll_mt_wakeup(void **state, struct tevent_context *ev);

/*
 * A talloc destructor to put on a tevent_req in place of the library's,
 * as Samba does for requests it tracks (tldap, smbXcli); it only counts
 * its runs in tt_caller_destructor_runs.
 */
struct tevent_req;
extern int tt_caller_destructor_runs;
int tt_caller_destructor(struct tevent_req *req);

/*
 * Runs fn(arg) in a forked child with SIGABRT at its default action and
 * stderr sent to /dev/null, and fails the test unless the child died from
 * SIGABRT (a child that returns from fn exits with status 0 instead).
 * For misuse that aborts the process: tevent_abort() without an abort
 * function, or a plain abort() where upstream calls one.
 */
void tt_expect_sigabrt(void (*fn)(void *arg), void *arg);

/*
 * An abort function that returns, for misuse checked in-process: it counts
 * the calls of tevent_abort() in tt_aborts and keeps the reason of the last
 * one in tt_abort_reason.  tt_record_aborts() clears both and installs it;
 * tevent_set_abort_fn(NULL) puts the default back.
 */
extern int tt_aborts;
extern char tt_abort_reason[512];
void tt_record_abort(const char *reason);
void tt_record_aborts(void);

#endif /* TT_H */

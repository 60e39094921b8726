/*
 * Helpers shared by the tevent-cxx test programs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>

#include "tt.h"

static int under(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* Real path of the libtevent the loader gave us, once checked. */
static char loaded[PATH_MAX];

const char *tt_library_path(void)
{
	if (loaded[0] == '\0') {
		tt_check_library();
	}
	return loaded;
}

static bool system_path(const char *path)
{
	return under(path, "/usr/lib") || under(path, "/lib") ||
	       under(path, "/usr/lib64") || under(path, "/lib64");
}

int tt_library_minor(void)
{
	const char *base = strrchr(tt_library_path(), '/');
	unsigned minor;

	base = base != NULL ? base + 1 : tt_library_path();
	if (sscanf(base, "libtevent.so.0.%u.", &minor) == 1) {
		return (int)minor;
	}
	fail_msg("no version in the library's file name %s", base);
	return -1;
}

bool tt_is_system_library(void)
{
	/* An upstream build kept elsewhere (make test-upstream-new) says so. */
	const char *upstream = getenv("TT_UPSTREAM");

	if (upstream != NULL && strcmp(upstream, "1") == 0) {
		return true;
	}
	return system_path(tt_library_path());
}

void tt_check_library(void)
{
	Dl_info info;
	char wanted[PATH_MAX];
	const char *want = getenv("TEVENT_TEST_LIBRARY");
	/* Ask the loader rather than taking &tevent_context_init: in a
	 * non-PIE program that would be the program's own PLT slot. */
	void *fn = dlsym(RTLD_DEFAULT, "tevent_context_init");

	if (fn == NULL || dladdr(fn, &info) == 0 || info.dli_fname == NULL) {
		fprintf(stderr, "tt_check_library: cannot locate tevent_context_init\n");
		exit(2);
	}
	if (realpath(info.dli_fname, loaded) == NULL) {
		fprintf(stderr, "tt_check_library: realpath(%s) failed\n", info.dli_fname);
		exit(2);
	}
	fprintf(stderr, "tevent library under test: %s\n", loaded);

	if (want != NULL && want[0] != '\0') {
		if (realpath(want, wanted) == NULL) {
			fprintf(stderr, "tt_check_library: TEVENT_TEST_LIBRARY=%s does not exist\n",
				want);
			exit(2);
		}
		if (strcmp(loaded, wanted) != 0) {
			fprintf(stderr, "tt_check_library: expected %s (TEVENT_TEST_LIBRARY), "
				"but the loader used %s\n", wanted, loaded);
			exit(2);
		}
		return;
	}
	if (system_path(loaded)) {
		fprintf(stderr, "tt_check_library: %s is the system copy; set "
			"TEVENT_TEST_LIBRARY to test it on purpose\n", loaded);
		exit(2);
	}
}

static bool env_named(const char *entry, const char *name)
{
	size_t n = strlen(name);

	return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

static bool add_sets(const char *const *add, const char *entry)
{
	const char *eq = strchr(entry, '=');
	size_t i;

	for (i = 0; add != NULL && add[i] != NULL && eq != NULL; i++) {
		if (strncmp(add[i], entry, (size_t)(eq - entry) + 1) == 0) {
			return true;
		}
	}
	return false;
}

char **tt_child_env(const char *const *add)
{
	static char asan[1024];
	size_t n = 0, nadd = 0, k = 0, i;
	const char *old = getenv("ASAN_OPTIONS");
	char **env;

	while (environ[n] != NULL) {
		n++;
	}
	while (add != NULL && add[nadd] != NULL) {
		nadd++;
	}
	env = calloc(n + nadd + 2, sizeof(*env));
	if (env == NULL) {
		fprintf(stderr, "tt_child_env: out of memory\n");
		exit(2);
	}
	for (i = 0; i < n; i++) {
		if (env_named(environ[i], "LD_LIBRARY_PATH") ||
		    env_named(environ[i], "LD_PRELOAD") ||
		    env_named(environ[i], "ASAN_OPTIONS") ||
		    add_sets(add, environ[i])) {
			continue;
		}
		env[k++] = environ[i];
	}
	if (!add_sets(add, "ASAN_OPTIONS=")) {
		snprintf(asan, sizeof(asan),
			 "ASAN_OPTIONS=%s%sverify_asan_link_order=0",
			 old != NULL ? old : "",
			 old != NULL && old[0] != '\0' ? ":" : "");
		env[k++] = asan;
	}
	for (i = 0; i < nadd; i++) {
		env[k++] = (char *)add[i];
	}
	env[k] = NULL;
	return env;
}

int tt_group_setup(void **state)
{
	(void)state;
	tt_check_library();
	return 0;
}

const char **tt_backends(void)
{
	/* Owned by a static pointer: reachable, so no leak report. */
	static const char **list;

	if (list == NULL) {
		list = tevent_backend_list(NULL);
		if (list == NULL) {
			fprintf(stderr, "tt_backends: tevent_backend_list failed\n");
			exit(2);
		}
	}
	return list;
}

/* Whether `backend` is a word of `list` (NULL lists every backend). */
static bool backend_listed(const char *list, const char *backend)
{
	size_t len = strlen(backend);
	const char *p = list;

	if (list == NULL) {
		return true;
	}
	while ((p = strstr(p, backend)) != NULL) {
		if ((p == list || p[-1] == ' ') &&
		    (p[len] == '\0' || p[len] == ' ')) {
			return true;
		}
		p += len;
	}
	return false;
}

int tt_run_cases(const char *group, const struct tt_case *cases,
		 size_t ncases)
{
	const char **backends = tt_backends();
	struct CMUnitTest *tests;
	size_t nb = 0, i, j, n = 0;

	while (backends != NULL && backends[nb] != NULL) {
		nb++;
	}
	tests = calloc(ncases * (nb + 1), sizeof(*tests));
	if (tests == NULL) {
		return 1;
	}
	for (i = 0; i < ncases; i++) {
		if (!cases[i].per_backend) {
			tests[n].name = cases[i].name;
			tests[n].test_func = cases[i].fn;
			n++;
			continue;
		}
		for (j = 0; j < nb; j++) {
			char *name = NULL;

			if (!backend_listed(cases[i].only, backends[j])) {
				continue;
			}
			if (asprintf(&name, "%s[%s]", cases[i].name,
				     backends[j]) < 0) {
				return 1;
			}
			tests[n].name = name;
			tests[n].test_func = cases[i].fn;
			tests[n].initial_state = (void *)backends[j];
			n++;
		}
	}
	/* TT_FILTER=<glob> runs only the matching cases (cmocka's filter). */
	if (getenv("TT_FILTER") != NULL) {
		cmocka_set_test_filter(getenv("TT_FILTER"));
	}
	return _cmocka_run_group_tests(group, tests, n, NULL, NULL);
}

struct tevent_context *tt_backend_ev(void **state)
{
	const char *backend = *state;
	struct tevent_context *ev;

	assert_non_null(backend);
	/* SIGALRM ends the program if a broken loop blocks forever */
	alarm(120);
	ev = tevent_context_init_byname(NULL, backend);
	if (ev == NULL) {
		fail_msg("backend %s not available", backend);
	}
	return ev;
}

void tt_spend_poll_mt_wakeup(void **state, struct tevent_context *ev)
{
	if (strcmp((const char *)*state, "poll_mt") == 0) {
		assert_int_equal(tevent_loop_once(ev), 0);
	}
}

void tt_finish(struct tevent_context *ev)
{
	talloc_free(ev);
	alarm(0);
}

static void tick_fired(struct tevent_context *ev, struct tevent_timer *te,
		       struct timeval now, void *private_data)
{
	(void)te;
	(void)now;
	struct tt_tick *t = private_data;
	if (!tt_tick_start(ev, t, t->usec)) {
		fprintf(stderr, "tt_tick: tevent_add_timer failed\n");
		abort();
	}
}

bool tt_tick_start(struct tevent_context *ev, struct tt_tick *t, int usec)
{
	t->usec = usec;
	t->te = tevent_add_timer(ev, ev, tevent_timeval_current_ofs(0, usec),
				 tick_fired, t);
	return t->te != NULL;
}

int tt_caller_destructor_runs;

int tt_caller_destructor(struct tevent_req *req)
{
	(void)req;
	tt_caller_destructor_runs++;
	return 0;
}

static void keep_debug(void *context, enum tevent_debug_level level,
		       const char *fmt, va_list ap) PRINTF_ATTRIBUTE(3, 0);
static void keep_debug(void *context, enum tevent_debug_level level,
		       const char *fmt, va_list ap)
{
	struct tt_debug_log *log = context;
	size_t max = sizeof(log->msg) / sizeof(log->msg[0]);

	if ((size_t)log->n >= max) {
		return;
	}
	log->msg[log->n].level = (int)level;
	vsnprintf(log->msg[log->n].text, sizeof(log->msg[0].text), fmt, ap);
	log->n++;
}

void tt_keep_debug(struct tevent_context *ev, struct tt_debug_log *log)
{
	memset(log, 0, sizeof(*log));
	assert_int_equal(tevent_set_debug(ev, keep_debug, log), 0);
}

int tt_debug_find(const struct tt_debug_log *log, int level, const char *text)
{
	int i;

	for (i = 0; i < log->n; i++) {
		if (log->msg[i].level == level &&
		    strcmp(log->msg[i].text, text) == 0) {
			return i;
		}
	}
	return -1;
}

int tt_debug_count(const struct tt_debug_log *log, int level)
{
	int i, n = 0;

	for (i = 0; i < log->n; i++) {
		n += log->msg[i].level <= level;
	}
	return n;
}

void tt_expect_sigabrt(void (*fn)(void *arg), void *arg)
{
	pid_t child;
	int status = 0;

	fflush(stdout);
	fflush(stderr);
	child = fork();
	assert_true(child != -1);
	if (child == 0) {
		signal(SIGABRT, SIG_DFL);
		if (freopen("/dev/null", "w", stderr) == NULL) {
			_exit(3);
		}
		fn(arg);
		_exit(0);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT) {
		fail_msg("the child was to die from SIGABRT; status %#x",
			 status);
	}
}

int tt_aborts;
char tt_abort_reason[512];

void tt_record_abort(const char *reason)
{
	tt_aborts++;
	snprintf(tt_abort_reason, sizeof(tt_abort_reason), "%s",
		 reason != NULL ? reason : "(null)");
}

void tt_record_aborts(void)
{
	tt_aborts = 0;
	tt_abort_reason[0] = '\0';
	tevent_set_abort_fn(tt_record_abort);
}

/*
 * Runs the benchmark programs of bench/ (built into <build>/bench/) at a
 * tiny scale on the library under test, so that a benchmark broken by a
 * change is caught by `make test` and not by the next `make bench`.
 *
 * Each program must exit with 0, which also means its own self-checks
 * passed (every case checks its counts and sums), must print no
 * "error=" line, must print a finite figure for every case its --list
 * names, and must report the library it ran on: the library under test
 * for tevent_bench, "none" for the programs without tevent.
 *
 * The figures themselves are never compared with anything: timing goals
 * belong to `make bench`, and nothing here depends on how fast the
 * machine is.  A generous per-program limit only guards against hangs.
 */

#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>

#include "common/tt.h"
#include "common/tt_run.h"

/* Hang guard per program; none takes more than a few seconds at this
 * scale. */
#define BENCH_TIMEOUT_SECS 300
/* Small enough for a second or two per program, large enough that every
 * case still does real work (each case runs at least one operation). */
#define BENCH_SCALE "0.002"

static char bench_dir[PATH_MAX + 16];
static char expected_lib[PATH_MAX];	/* realpath of the library under test */
static char lib_dir[PATH_MAX];		/* goes first in LD_LIBRARY_PATH */

enum lib_line {
	LIB_UNDER_TEST,	/* "library=<the library under test>" */
	LIB_NONE,	/* "library=none": a program without tevent */
	LIB_ANY,	/* "library=<anything>" (libuv's version) */
	LIB_ABSENT,	/* no such line (threadpool_bench) */
};

struct bench_prog {
	const char *name;
	/* Only built when what it compares with was found at configure
	 * time: Debian's libtevent (which `make` installs), libuv. */
	bool optional;
	bool has_cases;		/* --list, --scale and "case=" lines */
	enum lib_line lib;
	const char *args[4];	/* when !has_cases */
	const char *expect;	/* when !has_cases: a line part that must appear */
};

static const struct bench_prog progs[] = {
	{ "tevent_bench", true, true, LIB_UNDER_TEST, { NULL }, NULL },
	{ "talloc_floor", false, true, LIB_NONE, { NULL }, NULL },
	{ "epoll_bench", false, true, LIB_NONE, { NULL }, NULL },
	{ "uv_bench", true, true, LIB_ANY, { NULL }, NULL },
	{ "threadpool_bench", false, false, LIB_ABSENT, { "--quick", NULL },
	  "throughput (jobs per second)" },
};

static char *run_prog(TALLOC_CTX *mem, const char *path,
		      const char *const *args)
{
	int status = 0;
	char *out = tt_run_captured(mem, path, args, lib_dir,
				    BENCH_TIMEOUT_SECS, &status);

	print_message("----- %s -----\n%s", path, out);
	if (!WIFEXITED(status)) {
		fail_msg("%s: killed by signal %d", path,
			 WIFSIGNALED(status) ? WTERMSIG(status) : -1);
	}
	if (WEXITSTATUS(status) != 0) {
		fail_msg("%s: exit status %d", path, WEXITSTATUS(status));
	}
	return out;
}

static void check_lib_line(const char *name, const char *out,
			   enum lib_line lib)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	const char *want = NULL;

	switch (lib) {
	case LIB_UNDER_TEST:
		want = talloc_asprintf(mem, "library=%s\n", expected_lib);
		break;
	case LIB_NONE:
		want = "library=none\n";
		break;
	case LIB_ANY:
		want = "library=";
		break;
	case LIB_ABSENT:
		if (strstr(out, "library=") != NULL) {
			fail_msg("%s: unexpected library line", name);
		}
		break;
	}
	if (want != NULL && strncmp(out, want, strlen(want)) != 0 &&
	    strstr(out, talloc_asprintf(mem, "\n%s", want)) == NULL) {
		fail_msg("%s: no line \"%s\"", name, want);
	}
	talloc_free(mem);
}

/* The first "case=<c> metric=" line must exist and carry a finite value. */
static void check_figure(const char *name, const char *out, const char *c)
{
	char *key = talloc_asprintf(NULL, "case=%s metric=", c);
	const char *line = strstr(out, key);
	const char *value;
	const char *eol;
	char *end = NULL;
	double v;

	if (line == NULL || (line != out && line[-1] != '\n')) {
		fail_msg("%s: no figure for case %s", name, c);
	}
	talloc_free(key);
	eol = strchr(line, '\n');
	if (eol == NULL) {
		eol = line + strlen(line);
	}
	value = strstr(line, " value=");
	if (value == NULL || value > eol) {
		fail_msg("%s: case %s: line without a value", name, c);
	}
	v = strtod(value + strlen(" value="), &end);
	if (end == value + strlen(" value=") || !isfinite(v)) {
		fail_msg("%s: case %s: value is not a finite number", name, c);
	}
}

static void check_cases(const char *path, const char *name, const char *out,
			const char *list)
{
	int ncases = 0;

	if (strstr(out, "error=") != NULL) {
		fail_msg("%s: a case failed its self-check", name);
	}
	for (const char *l = list; *l != '\0';) {
		size_t len = strcspn(l, " \n");
		char *c = talloc_strndup(NULL, l, len);

		assert_non_null(c);
		check_figure(name, out, c);
		ncases++;
		talloc_free(c);
		l = strchr(l, '\n');
		if (l == NULL) {
			break;
		}
		l++;
	}
	if (ncases == 0) {
		fail_msg("%s --list names no case", path);
	}
	print_message("%s: %d case(s), each with a figure\n", name, ncases);
}

static void test_bench_prog(void **state)
{
	const struct bench_prog *b = *state;
	TALLOC_CTX *mem = talloc_new(NULL);
	char *path = talloc_asprintf(mem, "%s/%s", bench_dir, b->name);

	assert_non_null(path);
	if (access(path, X_OK) != 0) {
		if (b->optional) {
			print_message("%s not built (optional)\n", path);
			talloc_free(mem);
			skip();
		}
		fail_msg("%s not built (expected from bench/%s.c)", path,
			 b->name);
	}
	if (b->has_cases) {
		static const char *const list_args[] = { "--list", NULL };
		static const char *const run_args[] = { "--scale",
							BENCH_SCALE, NULL };
		const char *list = run_prog(mem, path, list_args);
		const char *out = run_prog(mem, path, run_args);

		check_lib_line(b->name, out, b->lib);
		check_cases(path, b->name, out, list);
	} else {
		const char *out = run_prog(mem, path, b->args);

		check_lib_line(b->name, out, b->lib);
		if (strstr(out, b->expect) == NULL) {
			fail_msg("%s: expected output missing: \"%s\"",
				 b->name, b->expect);
		}
	}
	talloc_free(mem);
}

/* A program in <build>/bench that the table above does not know would
 * never be run here: it must get an entry. */
static void test_every_program_listed(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	const char **names = tt_program_names(mem, bench_dir);
	size_t i;

	(void)state;
	for (i = 0; names[i] != NULL; i++) {
		bool known = false;

		for (size_t k = 0; k < sizeof(progs) / sizeof(progs[0]); k++) {
			known |= strcmp(progs[k].name, names[i]) == 0;
		}
		if (!known) {
			fail_msg("%s/%s has no entry in test_bench.c's table",
				 bench_dir, names[i]);
		}
	}
	assert_true(i > 0);
	talloc_free(mem);
}

int main(void)
{
	enum { N = sizeof(progs) / sizeof(progs[0]) };
	struct CMUnitTest tests[N + 1];
	size_t i;

	tt_check_library();
	tt_lib_under_test(expected_lib, lib_dir);
	tt_build_subdir(bench_dir, sizeof(bench_dir), "bench");
	fprintf(stderr, "bench programs from %s, LD_LIBRARY_PATH=%s...\n",
		bench_dir, lib_dir);

	for (i = 0; i < N; i++) {
		tests[i] = (struct CMUnitTest) {
			.name = progs[i].name,
			.test_func = test_bench_prog,
			.initial_state = (void *)&progs[i],
		};
	}
	tests[N] = (struct CMUnitTest) {
		.name = "every_program_listed",
		.test_func = test_every_program_listed,
	};
	return _cmocka_run_group_tests("bench", tests, N + 1, NULL, NULL);
}

/*
 * Runs the example programs of doc/examples/ (built into
 * <build>/examples/<name>) and checks what they print.
 *
 * Each example is run with LD_LIBRARY_PATH pointing at the directory of
 * the library under test ($TEVENT_TEST_LIBRARY, or the copy this program
 * itself was given), must exit with status 0, must report on a
 * "libtevent: <path>" line that it loaded exactly that library, and must
 * print the lines that show it did what its page in doc/ says.  Programs
 * in <build>/examples without an entry in the table below (new examples,
 * or ones other parts of the tree build there) are still run: they must
 * exit with 0, and if they print a "libtevent: " line it must name the
 * library under test.
 *
 * The examples check their own results; no expectation here involves
 * time.  A generous per-program limit only guards against hangs.
 */

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>

#include "common/tt.h"
#include "common/tt_run.h"

/* Hang guard per example program; none needs more than a few seconds. */
#define EXAMPLE_TIMEOUT_SECS 300

static char examples_dir[PATH_MAX + 16];
static char expected_lib[PATH_MAX];	/* realpath of the library under test */
static char lib_dir[PATH_MAX];		/* goes first in LD_LIBRARY_PATH */

struct example {
	const char *name;
	const char *args[4];		/* NULL-terminated */
	const char *expect[10];		/* lines (or parts) that must appear */
};

static const struct example examples[] = {
	{ "demo", { NULL }, {
		"signal:    ",
		"thread:    main loop answered pings from 8 worker threads",
		"done:      3 timers, signal seen, 8/8 workers got their reply",
	} },
	{ "loop", { NULL }, {
		"turn 1 ran: immediate\n",
		"turn 2 ran: timer\n",
		"turn 3 ran: fd\n",
		"wait timeout 0: tevent_loop_once() = -1, errno EAGAIN",
		"child:  ran: child-immediate\n",
		"parent: ran: parent-immediate\n",
		"\nOK\n",
	} },
	{ "fd_events", { NULL }, {
		"reader:  received \"one two three\", then end of file",
		"watcher: called 1 time(s), with flags ERROR\n",
		"close_fn: closed the reader's descriptor",
		"\nOK\n",
	} },
	{ "timers", { NULL }, {
		"fired: zero(now=0) moved tick1 same-a same-b same-c tick2 tick3\n",
		"\nOK\n",
	} },
	{ "immediates", { NULL }, {
		"queue order:    c a-again b-reused\n",
		"job and fd:     chunk1 chunk2 chunk3 fd\n",
		"\nOK\n",
	} },
	{ "signals", { NULL }, {
		"SIGUSR1: 1 handler call(s), count 3",
		"SIGUSR2 (SA_SIGINFO): 3 handler calls, values add up to 6",
		"SIGCHLD: child exited with status 7",
		"SIGURG (SA_RESETHAND): 1 handler call(s)",
		"SIGUSR1 after freeing its event: SIG_DFL again",
		"\nOK\n",
	} },
	{ "tracing", { NULL }, {
		"timer:     ABhD ",
		"immediate: ABhD\n",
		"\nOK\n",
	} },
	{ "request", { NULL }, {
		"normal:    ret 0, sum 5, cleanup saw: DONE RECEIVED\n",
		"bad input: ret EINVAL, callback after _send returned: yes",
		"endtime:   ret ETIMEDOUT",
		"cancel:    ret ECANCELED",
		"chained:   (1 + 2) + 3 = 6",
		"profile: struct two_sums_state: DONE",
		"sync:      20 + 22 = 42",
		"\nOK\n",
	} },
	{ "wrapper", { NULL }, {
		"alice's timer: runs as alice (ev is the wrapper)\n",
		"main timer: runs as root (ev is main)\n",
		"\nOK\n",
	} },
	{ "queue_writer", { NULL }, {
		"queue_writer: 4 requests x 1048576 bytes through one socket: "
		"4194304 bytes received whole and in order",
		"\nOK\n",
	} },
	{ "thread_reply", { "8", NULL }, {
		"200 rounds x 8 workers: 1600 requests answered, "
		"every reply received and correct",
	} },
};

/* ------------------------------------------------------------------ */

/* The status, library and expected-lines checks shared by all cases. */
static void check_example(const char *name, const char *const *args,
			  const char *const *expect, bool lib_line_optional)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	char path[PATH_MAX + 64];
	char *lib_line;
	int status = 0;
	char *out;
	size_t i;

	snprintf(path, sizeof(path), "%s/%s", examples_dir, name);
	out = tt_run_captured(mem, path, args, lib_dir, EXAMPLE_TIMEOUT_SECS,
			      &status);
	print_message("----- %s -----\n%s", name, out);

	if (!WIFEXITED(status)) {
		fail_msg("%s: killed by signal %d", name,
			 WIFSIGNALED(status) ? WTERMSIG(status) : -1);
	}
	if (WEXITSTATUS(status) != 0) {
		fail_msg("%s: exit status %d", name, WEXITSTATUS(status));
	}

	lib_line = talloc_asprintf(mem, "libtevent: %s\n", expected_lib);
	assert_non_null(lib_line);
	if (strstr(out, lib_line) == NULL &&
	    !(lib_line_optional && strstr(out, "libtevent: ") == NULL)) {
		fail_msg("%s: did not report loading %s", name, expected_lib);
	}
	for (i = 0; expect != NULL && expect[i] != NULL; i++) {
		if (strstr(out, expect[i]) == NULL) {
			fail_msg("%s: expected output missing: \"%s\"", name,
				 expect[i]);
		}
	}
	talloc_free(mem);
}

static void test_example(void **state)
{
	const struct example *e = *state;
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/%s", examples_dir, e->name);
	if (access(path, X_OK) != 0) {
		fail_msg("%s not built (expected from doc/examples/%s.c)", path,
			 e->name);
	}
	check_example(e->name, e->args, e->expect, false);
}

static bool in_table(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(examples) / sizeof(examples[0]); i++) {
		if (strcmp(examples[i].name, name) == 0) {
			return true;
		}
	}
	return false;
}

/* Examples added to doc/examples/ without an entry above. */
static void test_other_examples(void **state)
{
	static const char *const no_args[] = { NULL };
	TALLOC_CTX *mem = talloc_new(NULL);
	const char **names = tt_program_names(mem, examples_dir);
	int ran = 0;

	(void)state;
	for (size_t i = 0; names[i] != NULL; i++) {
		if (!in_table(names[i])) {
			check_example(names[i], no_args, NULL, true);
			ran++;
		}
	}
	talloc_free(mem);
	print_message("%d example(s) without specific expectations\n", ran);
}

int main(void)
{
	enum { N = sizeof(examples) / sizeof(examples[0]) };
	struct CMUnitTest tests[N + 1];
	size_t i;

	tt_check_library();
	tt_lib_under_test(expected_lib, lib_dir);
	tt_build_subdir(examples_dir, sizeof(examples_dir), "examples");
	fprintf(stderr, "examples from %s, LD_LIBRARY_PATH=%s...\n",
		examples_dir, lib_dir);

	for (i = 0; i < N; i++) {
		tests[i] = (struct CMUnitTest) {
			.name = examples[i].name,
			.test_func = test_example,
			.initial_state = (void *)&examples[i],
		};
	}
	tests[N] = (struct CMUnitTest) {
		.name = "other_examples",
		.test_func = test_other_examples,
	};
	return _cmocka_run_group_tests("examples", tests, N + 1, NULL, NULL);
}

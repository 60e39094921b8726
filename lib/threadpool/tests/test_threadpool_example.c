/*
 * test_threadpool_example.c - runs the example of doc/threadpool.md
 * (BUILD/examples/threadpool_chunks) in its modes: whole reply, peer
 * hanging up early or at once, tiny and empty replies.  The example checks
 * itself and exits 0 when the run went as promised; it inherits our
 * environment, so it uses the same libtevent as this program.
 */
#include <limits.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tt.h"

extern char **environ;

static char example[PATH_MAX + 64];

static void run_example(const char *a1, const char *a2, const char *a3,
			const char *a4)
{
	char *argv[] = { example, (char *)a1, (char *)a2, (char *)a3,
			 (char *)a4, NULL };
	pid_t pid;

	fflush(stdout);
	assert_int_equal(posix_spawn(&pid, example, NULL, NULL, argv, environ), 0);
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_whole_reply(void **state)
{
	(void)state;
	run_example(NULL, NULL, NULL, NULL);
}

static void test_peer_hangs_up(void **state)
{
	(void)state;
	run_example("--hangup-after", "1000000", NULL, NULL);
}

static void test_peer_hangs_up_at_once(void **state)
{
	(void)state;
	run_example("--hangup-after", "1", NULL, NULL);
}

static void test_small_replies(void **state)
{
	(void)state;
	run_example("--size", "100", NULL, NULL);
	run_example("--size", "65536", NULL, NULL);
	run_example("--size", "0", NULL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole_reply),
		cmocka_unit_test(test_peer_hangs_up),
		cmocka_unit_test(test_peer_hangs_up_at_once),
		cmocka_unit_test(test_small_replies),
	};
	char self[PATH_MAX];

	tt_check_library();
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		perror("readlink /proc/self/exe");
		return 2;
	}
	self[n] = '\0';
	*strrchr(self, '/') = '\0';
	snprintf(example, sizeof(example), "%s/../examples/threadpool_chunks", self);
	if (access(example, X_OK) != 0) {
		fprintf(stderr, "%s not built\n", example);
		return 2;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}

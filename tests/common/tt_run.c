/* See tt_run.h. */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>

#include "tt.h"
#include "tt_run.h"

extern char *program_invocation_short_name;

void tt_lib_under_test(char real[PATH_MAX], char dir[PATH_MAX])
{
	/* tt_check_library() has made sure the two name the same file; the
	 * directory comes from the name given, where the soname link is. */
	const char *given = getenv("TEVENT_TEST_LIBRARY");
	char *slash;

	snprintf(real, PATH_MAX, "%s", tt_library_path());
	snprintf(dir, PATH_MAX, "%s",
		 given != NULL && given[0] != '\0' ? given : real);
	slash = strrchr(dir, '/');
	if (slash == NULL) {
		snprintf(dir, PATH_MAX, ".");
	} else {
		*slash = '\0';
	}
}

void tt_build_subdir(char *buf, size_t len, const char *sub)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n <= 0) {
		fprintf(stderr, "%s: readlink(/proc/self/exe) failed\n",
			program_invocation_short_name);
		exit(2);
	}
	self[n] = '\0';
	/* <build>/tests/<name> -> <build>/tests/../<sub> */
	slash = strrchr(self, '/');
	*slash = '\0';
	snprintf(buf, len, "%s/../%s", self, sub);
}

/* In the child: output into the pipe, our library first, then exec. */
static void exec_child(const char *path, const char *const *argv,
		       const char *lib_dir, int out_fd)
{
	const char *old = getenv("LD_LIBRARY_PATH");
	char *llp = NULL;

	setpgid(0, 0);	/* so a hung program can be killed whole */
	dup2(out_fd, STDOUT_FILENO);
	dup2(out_fd, STDERR_FILENO);
	close(out_fd);
	if (asprintf(&llp, "%s%s%s", lib_dir, old ? ":" : "",
		     old ? old : "") < 0) {
		_exit(126);
	}
	setenv("LD_LIBRARY_PATH", llp, 1);
	execv(path, (char *const *)argv);
	fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
	_exit(127);
}

char *tt_run_captured(void *mem_ctx, const char *path,
		      const char *const *args, const char *lib_dir,
		      int timeout_s, int *status)
{
	const char *argv[8];
	char *out = talloc_strdup(mem_ctx, "");
	int pfd[2];
	pid_t pid;
	time_t deadline = time(NULL) + timeout_s;
	size_t i;

	argv[0] = path;
	for (i = 0; args[i] != NULL && i < 6; i++) {
		argv[i + 1] = args[i];
	}
	argv[i + 1] = NULL;

	assert_non_null(out);
	assert_int_equal(pipe(pfd), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		exec_child(path, argv, lib_dir, pfd[1]);
	}
	close(pfd[1]);

	for (;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		char buf[4096];
		ssize_t n;
		int r = poll(&p, 1, 1000);

		if (r == -1 && errno == EINTR) {
			continue;
		}
		if (r == 0) {
			if (time(NULL) > deadline) {
				kill(-pid, SIGKILL);
				kill(pid, SIGKILL);
				out = talloc_asprintf_append(out,
					"\n[%s: killed after %d s]\n",
					program_invocation_short_name,
					timeout_s);
				break;
			}
			continue;
		}
		n = read(pfd[0], buf, sizeof(buf));
		if (n == -1 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		out = talloc_strndup_append(out, buf, n);
		assert_non_null(out);
	}
	close(pfd[0]);
	while (waitpid(pid, status, 0) == -1) {
		assert_int_equal(errno, EINTR);
	}
	return out;
}

const char **tt_program_names(void *mem_ctx, const char *dir)
{
	DIR *d = opendir(dir);
	const char **names = talloc_zero_array(mem_ctx, const char *, 1);
	size_t n = 0;
	struct dirent *de;

	assert_non_null(d);
	assert_non_null(names);
	while ((de = readdir(d)) != NULL) {
		char *path;
		struct stat st;

		if (strchr(de->d_name, '.') != NULL) {
			continue;	/* ".", "..", hidden files, objects */
		}
		path = talloc_asprintf(names, "%s/%s", dir, de->d_name);
		assert_non_null(path);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
		    access(path, X_OK) != 0) {
			continue;
		}
		names = talloc_realloc(mem_ctx, names, const char *, n + 2);
		assert_non_null(names);
		names[n] = talloc_strdup(names, de->d_name);
		assert_non_null(names[n]);
		names[++n] = NULL;
	}
	closedir(d);
	return names;
}

/*
 * Running other people's tevent programs on the library under test; see
 * tt_foreign.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tt.h"
#include "tt_foreign.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#ifdef __SANITIZE_ADDRESS__
void __asan_init(void);
#endif

int tt_foreign_init(struct tt_foreign *f, const char *dir_template)
{
	snprintf(f->ours, sizeof(f->ours), "%s", tt_library_path());
#ifdef __SANITIZE_ADDRESS__
	/* The ASan runtime our library brings along intercepts crypt(), but
	 * finds the real one only in libraries present when it starts: a
	 * program that loads libcrypt later (Python importing Samba's
	 * modules) would call through a null pointer. */
	snprintf(f->preload, sizeof(f->preload), "LD_PRELOAD=%s libcrypt.so.1",
		 f->ours);
#else
	snprintf(f->preload, sizeof(f->preload), "LD_PRELOAD=%s", f->ours);
#endif
	snprintf(f->dir, sizeof(f->dir), "%s", dir_template);
	f->child_setup = NULL;
	if (mkdtemp(f->dir) == NULL) {
		f->dir[0] = '\0';
		return -1;
	}
	return 0;
}

void tt_foreign_asan_first(struct tt_foreign *f)
{
#ifdef __SANITIZE_ADDRESS__
	/* The ASan runtime goes first, so that it serves every malloc of the
	 * program and sees use after free in our library whoever allocated
	 * the memory. */
	const char *env = getenv("TT_ASAN_FIRST");
	Dl_info info;

	if (env != NULL && strcmp(env, "0") == 0) {
		return;
	}
	assert_true(dladdr((void *)__asan_init, &info) != 0);
	snprintf(f->preload, sizeof(f->preload),
		 "LD_PRELOAD=%s %s libcrypt.so.1", info.dli_fname, f->ours);
#else
	(void)f;
#endif
}

pid_t tt_spawn_server(struct tt_foreign *f, char *const argv[],
		      const char *out, const char *const *extra)
{
	char usual[sizeof(f->preload)];
	pid_t pid;

	memcpy(usual, f->preload, sizeof(usual));
	tt_foreign_asan_first(f);
	pid = tt_spawn(f, argv, out, extra);
	memcpy(f->preload, usual, sizeof(usual));
	return pid;
}

void tt_wait_clients(const pid_t *pids, char (*out)[PATH_MAX + 64], int n,
		     int guard_s)
{
	for (int c = 0; c < n; c++) {
		int status = tt_wait_guarded(pids[c], guard_s);

		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "client %d ended with status 0x%x\n", c,
				status);
			tt_dump(out[c]);
			fail();
		}
	}
}

void tt_foreign_done(const struct tt_foreign *f, const char *keep_env)
{
	if (f->dir[0] != '\0' && getenv(keep_env) == NULL) {
		tt_rm_tree(f->dir);
	}
}

void tt_path_in(const struct tt_foreign *f, char *buf, size_t len,
		const char *name)
{
	int n = snprintf(buf, len, "%s/%s", f->dir, name);

	assert_true(n > 0 && (size_t)n < len);
}

char *tt_slurp(const char *path, size_t *len_out)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, got;

	if (f == NULL) {
		return NULL;
	}
	do {
		if (cap - len < 65536) {
			cap = cap * 2 + 65536;
			buf = realloc(buf, cap + 1);
			assert_non_null(buf);
		}
		got = fread(buf + len, 1, cap - len, f);
		len += got;
	} while (got > 0);
	fclose(f);
	buf[len] = '\0';
	if (len_out != NULL) {
		*len_out = len;
	}
	return buf;
}

void tt_write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

void tt_rm_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char sub[PATH_MAX];

	if (d == NULL) {
		unlink(path);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
			continue;
		}
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		tt_rm_tree(sub);
	}
	closedir(d);
	rmdir(path);
}

void tt_dump(const char *path)
{
	size_t len = 0;
	char *text = tt_slurp(path, &len);
	size_t from = len > 8192 ? len - 8192 : 0;

	fprintf(stderr, "---- %s%s ----\n%s\n----\n", path,
		from > 0 ? " (last 8 KiB)" : "",
		text != NULL ? text + from : "(missing)");
	free(text);
}


pid_t tt_spawn(const struct tt_foreign *f, char *const argv[],
	       const char *out, const char *const *extra)
{
	const char *add[16];
	size_t n = 0, i;
	char **env;
	pid_t pid;

	add[n++] = f->preload;
	/* The programs' own leaks at exit are not ours to report. */
	add[n++] = "ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0";
	/* ldb loads its modules with RTLD_DEEPBIND unless told not to, which
	 * the ASan runtime refuses; a plain build does not care */
	add[n++] = "LDB_MODULES_DISABLE_DEEPBIND=1";
	for (i = 0; extra != NULL && extra[i] != NULL && n < NELEM(add) - 1; i++) {
		add[n++] = extra[i];
	}
	add[n] = NULL;
	env = tt_child_env(add);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (fd < 0) {
			_exit(126);
		}
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setpgid(0, 0);
		/* smbtorture writes scratch files to its working directory */
		if (chdir(f->dir) != 0) {
			_exit(126);
		}
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0) {
			dup2(fd, 0);
			close(fd);
		}
		if (f->child_setup != NULL) {
			f->child_setup();
		}
		execve(argv[0], argv, env);
		_exit(127);
	}
	free(env);
	return pid;
}

int tt_wait_guarded(pid_t pid, int guard_s)
{
	time_t deadline = time(NULL) + guard_s;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid) {
			return status;
		}
		assert_true(r == 0 || (r < 0 && errno == EINTR));
		if (time(NULL) > deadline) {
			fprintf(stderr, "pid %d still running after %d s: killed\n",
				(int)pid, guard_s);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return status;
		}
		usleep(10000);
	}
}

void tt_assert_loader_used_ours(const struct tt_foreign *f,
				const char *prefix)
{
	const char *base = strrchr(prefix, '/') + 1;
	char dirpath[PATH_MAX], file[PATH_MAX * 2];
	size_t blen = strlen(base);
	int seen = 0;
	DIR *d;
	struct dirent *e;

	snprintf(dirpath, sizeof(dirpath), "%.*s", (int)(base - 1 - prefix),
		 prefix);
	d = opendir(dirpath);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char *text, *line, *save = NULL;

		if (strncmp(e->d_name, base, blen) != 0 || e->d_name[blen] != '.') {
			continue;
		}
		snprintf(file, sizeof(file), "%s/%s", dirpath, e->d_name);
		text = tt_slurp(file, NULL);
		assert_non_null(text);
		for (line = strtok_r(text, "\n", &save); line != NULL;
		     line = strtok_r(NULL, "\n", &save)) {
			char *mapped = strstr(line, "file=");
			char *end, *slash, real[PATH_MAX];

			if (mapped == NULL || strstr(line, "generating link map") == NULL) {
				continue;
			}
			mapped += 5;
			end = strstr(mapped, " [");
			assert_non_null(end);
			*end = '\0';
			slash = strrchr(mapped, '/');
			if (strncmp(slash != NULL ? slash + 1 : mapped, "libtevent.so", 12) != 0) {
				continue;
			}
			if (realpath(mapped, real) == NULL || strcmp(real, f->ours) != 0) {
				fprintf(stderr, "%s: loader mapped %s, not %s\n", file,
					mapped, f->ours);
				fail();
			}
			seen++;
		}
		free(text);
		unlink(file);
	}
	closedir(d);
	if (seen == 0) {
		fprintf(stderr, "no libtevent in the loader logs %s.*\n", prefix);
		fail();
	}
}

int tt_stop_server(pid_t *pid, int guard_s)
{
	int status = 0;

	if (*pid > 0) {
		kill(*pid, SIGTERM);
		status = tt_wait_guarded(*pid, guard_s);
		*pid = 0;
	}
	return status;
}

bool tt_wait_ready(pid_t *pid, const char *what, const char *log,
		   int guard_s, bool (*ready)(void *arg), void *arg)
{
	time_t deadline = time(NULL) + guard_s;
	int status;

	while (!ready(arg)) {
		if (waitpid(*pid, &status, WNOHANG) == *pid) {
			fprintf(stderr, "%s ended before it was ready (0x%x)\n",
				what, status);
			tt_dump(log);
			*pid = 0;
			return false;
		}
		if (time(NULL) > deadline) {
			fprintf(stderr, "%s not ready after %d s\n", what,
				guard_s);
			tt_dump(log);
			return false;
		}
		usleep(20000);
	}
	return true;
}

int tt_maps_tevent(const struct tt_foreign *f, pid_t pid, const char *what)
{
	char maps[64], *text, *line, *save = NULL;
	int ours = 0;

	snprintf(maps, sizeof(maps), "/proc/%d/maps", (int)pid);
	text = tt_slurp(maps, NULL);
	if (text == NULL) {
		return -1;
	}
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char *path = strchr(line, '/');
		char *base = path != NULL ? strrchr(path, '/') + 1 : NULL;

		if (base == NULL || strncmp(base, "libtevent.so", 12) != 0) {
			continue;
		}
		if (strcmp(path, f->ours) != 0) {
			fprintf(stderr, "%s (pid %d) maps %s besides %s\n", what,
				(int)pid, path, f->ours);
			fail();
		}
		ours++;
	}
	free(text);
	return ours > 0 ? 1 : 0;
}

bool tt_check_maps_only_ours(const struct tt_foreign *f, pid_t pid,
			     const char *what, bool may_be_gone)
{
	int r = tt_maps_tevent(f, pid, what);
	int tries = 0;

	/*
	 * A process found by its command line may have just been exec'd,
	 * before the dynamic loader mapped its libraries: give it up to 10 s
	 * to map any libtevent at all.
	 */
	while (r == 0 && tries++ < 200) {
		usleep(50 * 1000);
		r = tt_maps_tevent(f, pid, what);
	}
	if (r < 0 && may_be_gone) {
		return false;
	}
	if (r <= 0) {
		fprintf(stderr, "%s (pid %d) %s %s\n", what, (int)pid,
			r < 0 ? "is gone, so it cannot map" : "does not map",
			f->ours);
		fail();
	}
	return true;
}

void tt_assert_log_clean(const char *log_path)
{
	static const char *const bad[] = {
		"PANIC", "INTERNAL ERROR", "tevent_abort", "Bad talloc magic",
		"double free", "use after free", "AddressSanitizer",
	};
	char *log = tt_slurp(log_path, NULL);
	size_t i;

	assert_non_null(log);
	for (i = 0; i < NELEM(bad); i++) {
		if (strstr(log, bad[i]) != NULL) {
			fprintf(stderr, "%s mentions \"%s\"\n", log_path, bad[i]);
			tt_dump(log_path);
			fail();
		}
	}
	free(log);
}

void tt_assert_stopped_cleanly(int status, const char *what,
			       const char *log_path)
{
	if (!((WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
	      (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM))) {
		fprintf(stderr, "%s ended with status 0x%x\n", what, status);
		tt_dump(log_path);
		fail();
	}
}

int tt_run_program(const struct tt_foreign *f, const char *tag,
		   char *const argv[], const char *const *extra, int guard_s,
		   char **out_text)
{
	char out[PATH_MAX + 64], ldlog[PATH_MAX + 64];
	char ld_output[PATH_MAX + 96];
	const char *env[16] = {"LD_DEBUG=files", ld_output};
	size_t n = 2;
	int status;

	for (; extra != NULL && *extra != NULL; extra++) {
		assert_true(n < NELEM(env) - 1);
		env[n++] = *extra;
	}
	env[n] = NULL;
	snprintf(out, sizeof(out), "%s/%s.out", f->dir, tag);
	snprintf(ldlog, sizeof(ldlog), "%s/ld-%s", f->dir, tag);
	snprintf(ld_output, sizeof(ld_output), "LD_DEBUG_OUTPUT=%s", ldlog);
	unlink(out);

	status = tt_wait_guarded(tt_spawn(f, argv, out, env), guard_s);
	tt_assert_loader_used_ours(f, ldlog);
	if (out_text != NULL) {
		*out_text = tt_slurp(out, NULL);
		assert_non_null(*out_text);
	}
	return status;
}

char *tt_run_ok(const struct tt_foreign *f, const char *tag,
		char *const argv[], const char *const *extra, int guard_s)
{
	char *text = NULL;
	int status = tt_run_program(f, tag, argv, extra, guard_s, &text);

	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "%s: %s ended with status 0x%x\n", tag, argv[0],
			status);
		fprintf(stderr, "---- output ----\n%s\n----\n", text);
		fail();
	}
	return text;
}

int tt_processes_with_arg(const char *arg, pid_t *pids, int max)
{
	char path[64];
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL && n < max) {
		pid_t pid = (pid_t)atoi(e->d_name);
		size_t len = 0, off;
		char *cmd;

		if (pid <= 0) {
			continue;
		}
		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
		cmd = tt_slurp(path, &len);
		/* the arguments are NUL-separated */
		for (off = 0; cmd != NULL && off < len; off += strlen(cmd + off) + 1) {
			if (strcmp(cmd + off, arg) == 0) {
				pids[n++] = pid;
				break;
			}
		}
		free(cmd);
	}
	closedir(d);
	return n;
}

bool tt_port_accepts(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0) {
		close(fd);
	}
	return ok;
}

bool tt_hold_samba_ports(int guard_s)
{
	/* An abstract socket name lives in the network namespace, as the
	 * ports do (so a chroot or another /tmp shares it), and the kernel
	 * drops it when its holder dies: no stale lock file. */
	static const char name[] = "\0tevent-cxx-samba-ports";
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	socklen_t len = offsetof(struct sockaddr_un, sun_path) + sizeof(name) - 1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	time_t deadline = time(NULL) + guard_s;
	bool said = false;

	if (fd < 0) {
		perror("tt_hold_samba_ports: socket");
		return false;
	}
	memcpy(a.sun_path, name, sizeof(name) - 1);
	while (bind(fd, (struct sockaddr *)&a, len) != 0) {
		if (errno != EADDRINUSE || time(NULL) >= deadline) {
			fprintf(stderr, "tt_hold_samba_ports: %s\n",
				errno == EADDRINUSE ?
				"another Samba test still runs; gave up waiting" :
				strerror(errno));
			close(fd);
			return false;
		}
		if (!said) {
			fprintf(stderr, "waiting for another Samba test to "
				"finish (its servers use the same ports)\n");
			said = true;
		}
		usleep(200 * 1000);
	}
	return true;  /* fd stays open until the process ends */
}

bool tt_proc_stat(pid_t pid, pid_t *ppid, char *state, char *comm,
		  size_t comm_len)
{
	char path[64], *text, *open_paren, *close_paren;
	int pp = 0;
	bool ok;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	text = tt_slurp(path, NULL);
	if (text == NULL) {
		return false;
	}
	/* "pid (comm) state ppid ...": comm may contain anything */
	open_paren = strchr(text, '(');
	close_paren = strrchr(text, ')');
	ok = open_paren != NULL && close_paren != NULL &&
	     sscanf(close_paren + 1, " %c %d", state, &pp) == 2;
	if (ok && comm != NULL) {
		*close_paren = '\0';
		snprintf(comm, comm_len, "%s", open_paren + 1);
	}
	free(text);
	*ppid = pp;
	return ok;
}

int tt_children_of(pid_t parent, pid_t *pids, char (*comm)[32], int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL && n < max) {
		pid_t pid = (pid_t)atoi(e->d_name), ppid;
		char state;

		if (pid > 0 && tt_proc_stat(pid, &ppid, &state, comm[n],
					    sizeof(comm[n])) &&
		    ppid == parent && state != 'Z') {
			pids[n++] = pid;
		}
	}
	closedir(d);
	return n;
}

bool tt_wait_ended(pid_t pid, bool zombie_ok, int guard_s)
{
	for (int t = 0; t <= guard_s * 10; t++) {
		pid_t ppid;
		char state;

		if (!tt_proc_stat(pid, &ppid, &state, NULL, 0) ||
		    (zombie_ok && state == 'Z')) {
			return true;
		}
		usleep(100000);
	}
	return false;
}

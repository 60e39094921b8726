/*
 * Drop-in replacement test: BUILD/dropin/legacy_app was compiled against
 * Debian's tevent.h and linked to Debian's libtevent.so.0 (pre-0.15 entry
 * points, no rpath).  Without a rebuild it must run, and give the same
 * results, with the system library, with ours found through
 * LD_LIBRARY_PATH, and with ours forced in through LD_PRELOAD; the
 * program lists the libtevent copies mapped into it, so each mode proves
 * which library served it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tt.h"

/*
 * What legacy_app must print for every backend (as Debian's 0.14.1 does):
 * "result <backend> <line>".  The scenarios are explained in legacy_app.c.
 */
static const char *const expected_lines[] = {
	"fd: sent(flags=1) echo=\"HELLO, TEVENT\" close_fn closed=11",
	"timer: t1 t3 t4 t0 far=pending",
	"immediate: i2 i0 ",
	"signal: usr1 count=2 usr2 calls=1 signo_ok=1",
	"req: sum=55 ret=0 cleanups=20 bad_input=22 timeout=1 cancel=1 cancelled=1",
	"queue: len=4 running=0 run0 done0 run2 done2 run3 done3 waited=1 len=0",
	"proxy: total=120 sum=2340 per_producer=40,40,40",
};
static const char *const expected_backends[] = {
	"standard", "epoll", "poll", "poll_mt",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Paths worked out once by the group setup. */
static char g_build[PATH_MAX];   /* BUILD (parent of BUILD/tests/) */
static char g_app[PATH_MAX + 32];   /* BUILD/dropin/legacy_app */
static char g_ours[PATH_MAX];    /* real path of the library under test */
static char g_ours_dir[PATH_MAX];
static char g_system[PATH_MAX];  /* real path of Debian's libtevent, or "" */

static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && path[n] == '/';
}

static bool is_system_path(const char *p)
{
	return under(p, "/usr/lib") || under(p, "/lib") ||
	       under(p, "/usr/lib64") || under(p, "/lib64");
}

static int setup(void **state)
{
	static const char *const sysdirs[] = {
		"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
		"/usr/lib/i386-linux-gnu", "/usr/lib64", "/usr/lib", "/lib",
	};
	char exe[PATH_MAX], cand[PATH_MAX + 32];
	const char *want = getenv("TEVENT_TEST_LIBRARY");
	ssize_t n;
	char *slash;
	size_t i;

	(void)state;
	tt_check_library();

	/* BUILD/tests/test_dropin -> BUILD */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		return -1;
	}
	exe[n] = '\0';
	for (i = 0; i < 2; i++) {
		slash = strrchr(exe, '/');
		if (slash == NULL) {
			return -1;
		}
		*slash = '\0';
	}
	snprintf(g_build, sizeof(g_build), "%s", exe);
	snprintf(g_app, sizeof(g_app), "%s/dropin/legacy_app", g_build);

	snprintf(cand, sizeof(cand), "%s/libtevent.so.0", g_build);
	if (realpath(want != NULL && want[0] != '\0' ? want : cand, g_ours) == NULL) {
		fprintf(stderr, "test_dropin: library under test not found\n");
		return -1;
	}
	snprintf(g_ours_dir, sizeof(g_ours_dir), "%s", g_ours);
	slash = strrchr(g_ours_dir, '/');
	*slash = '\0';

	g_system[0] = '\0';
	for (i = 0; i < NELEM(sysdirs); i++) {
		snprintf(cand, sizeof(cand), "%s/libtevent.so.0", sysdirs[i]);
		if (realpath(cand, g_system) != NULL) {
			break;
		}
		g_system[0] = '\0';
	}
	return 0;
}

/* legacy_app exists only where Debian's libtevent was found at configure
 * time; without it there is nothing to swap. */
static void need_app(void)
{
	if (access(g_app, X_OK) != 0) {
		fprintf(stderr, "test_dropin: %s not built (no system libtevent?)\n",
			g_app);
		skip();
	}
}

/* ---- the binary is an unchanged consumer of Debian's libtevent ---- */

struct elf_facts {
	bool needs_tevent;
	bool has_runpath;
	char imports[4096];  /* " name name ... " of undefined dynamic symbols */
};

static void read_elf(const char *path, struct elf_facts *f)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	unsigned char *img;
	Elf64_Ehdr *eh;
	Elf64_Shdr *sh;
	size_t i, len = 0;

	memset(f, 0, sizeof(*f));
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	img = malloc((size_t)st.st_size);
	assert_non_null(img);
	assert_int_equal(read(fd, img, (size_t)st.st_size), st.st_size);
	close(fd);

	eh = (Elf64_Ehdr *)img;
	assert_memory_equal(eh->e_ident, ELFMAG, SELFMAG);
	assert_int_equal(eh->e_ident[EI_CLASS], ELFCLASS64);
	sh = (Elf64_Shdr *)(img + eh->e_shoff);
	for (i = 0; i < eh->e_shnum; i++) {
		const char *strtab = (const char *)img + sh[sh[i].sh_link].sh_offset;

		if (sh[i].sh_type == SHT_DYNAMIC) {
			Elf64_Dyn *d = (Elf64_Dyn *)(img + sh[i].sh_offset);

			for (; d->d_tag != DT_NULL; d++) {
				if (d->d_tag == DT_NEEDED &&
				    strcmp(strtab + d->d_un.d_val, "libtevent.so.0") == 0) {
					f->needs_tevent = true;
				}
				if (d->d_tag == DT_RUNPATH || d->d_tag == DT_RPATH) {
					f->has_runpath = true;
				}
			}
		} else if (sh[i].sh_type == SHT_DYNSYM) {
			Elf64_Sym *s = (Elf64_Sym *)(img + sh[i].sh_offset);
			size_t k, ns = sh[i].sh_size / sizeof(Elf64_Sym);

			for (k = 1; k < ns; k++) {
				const char *name = strtab + s[k].st_name;

				if (s[k].st_shndx != SHN_UNDEF ||
				    strstr(name, "tevent") == NULL) {
					continue;
				}
				if (len + strlen(name) + 3 < sizeof(f->imports)) {
					len += (size_t)sprintf(f->imports + len, " %s", name);
				}
			}
		}
	}
	if (len + 2 < sizeof(f->imports)) {
		strcat(f->imports, " ");
	}
	free(img);
}

static bool imports(const struct elf_facts *f, const char *name)
{
	char key[128];

	snprintf(key, sizeof(key), " %s ", name);
	return strstr(f->imports, key) != NULL;
}

static void test_binary_is_legacy(void **state)
{
	struct elf_facts f;

	(void)state;
	need_app();
	read_elf(g_app, &f);
	assert_true(f.needs_tevent);
	/* nothing in the binary points at our build directory */
	assert_false(f.has_runpath);
	/* the pre-0.15 names, not their 0.15+ replacements */
	assert_true(imports(&f, "_tevent_req_create"));
	assert_true(imports(&f, "tevent_req_set_callback"));
	assert_true(imports(&f, "tevent_req_set_cleanup_fn"));
	assert_true(imports(&f, "tevent_req_set_cancel_fn"));
	assert_true(imports(&f, "tevent_queue_add"));
	assert_true(imports(&f, "_tevent_queue_create"));
	assert_false(imports(&f, "__tevent_req_create"));
	assert_false(imports(&f, "_tevent_req_set_callback"));
	assert_false(imports(&f, "_tevent_queue_add"));
}

/* ---- running it ---- */

struct run {
	int status;          /* from waitpid */
	char out[16384];     /* stdout */
	char mapped[4][PATH_MAX];
	int nmapped;
};

/* envs: NULL-terminated "NAME=value" to add after dropping any
 * LD_LIBRARY_PATH / LD_PRELOAD inherited from the test runner. */
static void run_app(struct run *r, const char *const *add)
{
	char **env;
	int pfd[2];
	pid_t pid;
	size_t len = 0;
	time_t deadline = time(NULL) + 120;
	char *line, *save;

	env = tt_child_env(add);

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = {g_app, NULL};

		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execve(g_app, argv, env);
		_exit(127);
	}
	close(pfd[1]);
	free(env);

	memset(r, 0, sizeof(*r));
	for (;;) {
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		ssize_t got;

		/* hang guard only: the program takes milliseconds */
		if (time(NULL) > deadline) {
			kill(pid, SIGKILL);
			break;
		}
		if (poll(&p, 1, 1000) <= 0) {
			continue;
		}
		got = read(pfd[0], r->out + len, sizeof(r->out) - 1 - len);
		if (got <= 0) {
			break;
		}
		len += (size_t)got;
		if (len == sizeof(r->out) - 1) {
			break;
		}
	}
	r->out[len] = '\0';
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &r->status, 0), pid);

	/* collect the "mapped:" lines */
	{
		char *copy = strdup(r->out);

		assert_non_null(copy);
		for (line = strtok_r(copy, "\n", &save); line != NULL;
		     line = strtok_r(NULL, "\n", &save)) {
			if (strncmp(line, "mapped: ", 8) == 0 && r->nmapped < 4) {
				snprintf(r->mapped[r->nmapped++], PATH_MAX, "%s",
					 line + 8);
			}
		}
		free(copy);
	}
}

/* Exit 0, and exactly the expected result lines, in order. */
static void check_results(const struct run *r, const char *mode)
{
	char expect[16384];
	size_t len = 0, b, i;
	const char *got_end;

	if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != 0) {
		fprintf(stderr, "[%s] legacy_app status 0x%x, output:\n%s\n", mode,
			r->status, r->out);
		fail();
	}
	for (b = 0; b < NELEM(expected_backends); b++) {
		for (i = 0; i < NELEM(expected_lines); i++) {
			len += (size_t)snprintf(expect + len, sizeof(expect) - len,
						"result %s %s\n", expected_backends[b],
						expected_lines[i]);
		}
	}
	got_end = strstr(r->out, "mapped: ");
	if (got_end == NULL) {
		got_end = r->out + strlen(r->out);
	}
	if ((size_t)(got_end - r->out) != len ||
	    memcmp(r->out, expect, len) != 0) {
		fprintf(stderr, "[%s] results differ.\nexpected:\n%s\ngot:\n%s\n",
			mode, expect, r->out);
		fail();
	}
}

static void test_system_library(void **state)
{
	struct run *r;

	(void)state;
	need_app();
	if (g_system[0] == '\0') {
		fprintf(stderr, "test_dropin: no system libtevent to compare with\n");
		skip();
	}
	r = malloc(sizeof(*r));
	assert_non_null(r);
	run_app(r, NULL);
	check_results(r, "system");
	/* plain run: the loader resolved NEEDED to Debian's copy */
	assert_int_equal(r->nmapped, 1);
	assert_string_equal(r->mapped[0], g_system);
	free(r);
}

/* Swap modes need a library under test that is not the system one
 * (make test-upstream points TEVENT_TEST_LIBRARY at the system copy). */
static void need_ours(void)
{
	if (is_system_path(g_ours)) {
		fprintf(stderr, "test_dropin: library under test %s is the system "
			"copy; nothing to swap in\n", g_ours);
		skip();
	}
}

static void check_ours_only(const struct run *r, const char *mode)
{
	int i;

	if (r->nmapped != 1 || strcmp(r->mapped[0], g_ours) != 0) {
		fprintf(stderr, "[%s] expected only %s mapped, got %d:\n", mode,
			g_ours, r->nmapped);
		for (i = 0; i < r->nmapped; i++) {
			fprintf(stderr, "  %s\n", r->mapped[i]);
		}
		fail();
	}
	for (i = 0; i < r->nmapped; i++) {
		assert_false(is_system_path(r->mapped[i]));
		if (g_system[0] != '\0') {
			assert_string_not_equal(r->mapped[i], g_system);
		}
	}
}

/*
 * Runs the legacy binary with `var`=<our bin dir><suffix> added to its
 * environment and checks that it worked on our library alone.
 */
static void run_swapped(const char *var, const char *suffix)
{
	struct run *r;
	char setting[PATH_MAX + 32];
	const char *add[] = {setting, NULL};

	need_app();
	need_ours();
	r = malloc(sizeof(*r)); /* after the skips: skip() does not return */
	assert_non_null(r);
	snprintf(setting, sizeof(setting), "%s=%s%s", var, g_ours_dir, suffix);
	run_app(r, add);
	check_results(r, var);
	check_ours_only(r, var);
	free(r);
}

static void test_ld_library_path(void **state)
{
	(void)state;
	run_swapped("LD_LIBRARY_PATH", "");
}

static void test_ld_preload(void **state)
{
	(void)state;
	/* the soname file, as a user would name it */
	run_swapped("LD_PRELOAD", "/libtevent.so.0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_binary_is_legacy),
		cmocka_unit_test(test_system_library),
		cmocka_unit_test(test_ld_library_path),
		cmocka_unit_test(test_ld_preload),
	};

	return cmocka_run_group_tests_name("dropin", tests, setup, NULL);
}

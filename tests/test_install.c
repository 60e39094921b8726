/*
 * Installing the library the way a packager does, and using what was
 * installed.
 *
 * `waf install --destdir=STAGE` (what `make install DESTDIR=STAGE` runs) is
 * run on the build this program belongs to.  The staged tree must hold the
 * header, the library under its real name with the two links to it, and
 * tevent.pc; the files must be the ones the build made.  A client program
 * is then compiled with the flags `pkg-config tevent` gives for the staged
 * tree (it refuses to compile against a header older than 0.16, such as
 * Debian's), and run with only that tree on the library path: it must load
 * the staged copy, and a timer and a request must work in it.
 *
 * Then what a packager runs: ./configure --prefix=... --libdir=... into a
 * build directory of its own, the library alone (waf build --targets=tevent),
 * then install from there: tevent.pc must name the chosen paths, and the
 * same checks hold for that stage.
 *
 * The build is found from the library under test (its directory is waf's
 * out dir, whose parent holds wscript); the waf lock file that names that
 * out dir selects the right configuration.  Sanitizer builds are not for
 * installing (a client would need the sanitizer's runtime), so there the
 * cases skip and say so.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tt.h"
#include "tt_foreign.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_BUILD 1
#else
#define SANITIZER_BUILD 0
#endif

#define GUARD_S 300

/* The prefix the configure case builds for (staged, never installed). */
#define PREFIX "/opt/tevent-cxx-test"

static struct {
	struct tt_foreign fx;
	char repo[PATH_MAX];     /* the source tree (holds wscript) */
	char out[PATH_MAX];      /* waf's out dir: where the library was built */
	char waflock[96];        /* "WAFLOCK=<lock file naming out>" */
	/* The configure case's own lock file (in the source tree, where waf
	 * keeps them), removed again at the end. */
	char own_lock[96];
	bool own_lock_made;
} g;

/* snprintf() into a buffer that must be big enough: the test fails if
 * the text does not fit. */
#define put(buf, ...) put_in((buf), sizeof(buf), __VA_ARGS__)
static void put_in(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void put_in(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len) {
		fail_msg("text too long for its buffer: %s...", buf);
	}
}

/* ---- running commands ---- */

/*
 * Runs argv (NULL-terminated) in dir with the environment of the test
 * minus LD_LIBRARY_PATH and LD_PRELOAD, plus `add`; stdout and stderr go
 * to <scratch>/<tag>.out.  Returns the wait status; the output in *text
 * when text is not NULL.
 */
static int run_in(const char *dir, const char *tag, char *const argv[],
		  const char *const *add, char **text)
{
	char out[PATH_MAX + 64];
	char **env = tt_child_env(add);
	pid_t pid;
	int status;

	assert_non_null(env);
	put(out, "%s/%s.out", g.fx.dir, tag);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (freopen(out, "w", stdout) == NULL ||
		    dup2(fileno(stdout), 2) < 0 || chdir(dir) != 0) {
			_exit(126);
		}
		execve(argv[0], argv, env);
		perror(argv[0]);
		_exit(127);
	}
	free(env);
	status = tt_wait_guarded(pid, GUARD_S);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "test_install: %s failed (status 0x%x):\n", tag,
			status);
		tt_dump(out);
	}
	if (text != NULL) {
		*text = tt_slurp(out, NULL);
		assert_non_null(*text);
	}
	return status;
}

static char *run_ok(const char *dir, const char *tag, char *const argv[],
		    const char *const *add)
{
	char *text = NULL;
	int status = run_in(dir, tag, argv, add, &text);

	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	return text;
}

/* First line of text without its newline, in place. */
static char *first_line(char *text)
{
	text[strcspn(text, "\n")] = '\0';
	return text;
}

/* ---- finding the build ---- */

static void parent_dir(char *path)
{
	char *slash = strrchr(path, '/');

	assert_non_null(slash);
	*slash = '\0';
}

/* The lock file in the source tree whose out_dir is g.out, as WAFLOCK. */
static bool find_waf_lock(void)
{
	DIR *d = opendir(g.repo);
	struct dirent *de;
	bool found = false;

	assert_non_null(d);
	while (!found && (de = readdir(d)) != NULL) {
		char path[PATH_MAX + 300], want[PATH_MAX + 32];
		char *text;

		if (strncmp(de->d_name, ".lock-waf", 9) != 0) {
			continue;
		}
		put(path, "%s/%s", g.repo, de->d_name);
		text = tt_slurp(path, NULL);
		if (text == NULL) {
			continue;
		}
		put(want, "out_dir = '%s'\n", g.out);
		if (strstr(text, want) != NULL &&
		    strlen(de->d_name) + 9 <= sizeof(g.waflock)) {
			put(g.waflock, "WAFLOCK=%s",
				 de->d_name);
			found = true;
		}
		free(text);
	}
	closedir(d);
	return found;
}

static int group_setup(void **state)
{
	char wscript[PATH_MAX + 16];

	(void)state;
	tt_check_library();
	if (tt_foreign_init(&g.fx, "/tmp/tt_install.XXXXXX") != 0) {
		return -1;
	}
	put(g.out, "%s", tt_library_path());
	parent_dir(g.out);
	put(g.repo, "%s", g.out);
	parent_dir(g.repo);
	put(wscript, "%s/wscript", g.repo);
	if (access(wscript, R_OK) != 0) {
		fprintf(stderr, "test_install: %s is not in a waf out dir of "
			"the source tree (no %s)\n", tt_library_path(), wscript);
		return -1;
	}
	if (!find_waf_lock()) {
		fprintf(stderr, "test_install: no waf lock file in %s names "
			"%s\n", g.repo, g.out);
		return -1;
	}
	put(g.own_lock, "WAFLOCK=.lock-waf_test_install_%d", (int)getpid());
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (g.own_lock_made) {
		char path[PATH_MAX + 128];

		put(path, "%s/%s", g.repo, g.own_lock + strlen("WAFLOCK="));
		unlink(path);
	}
	tt_foreign_done(&g.fx, "TT_KEEP_INSTALL");
	return 0;
}

static void skip_sanitizer_build(void)
{
	if (SANITIZER_BUILD) {
		print_message("skipped: a sanitizer build is not for "
			      "installing\n");
		skip();
	}
}

/* ---- checks on the staged tree ---- */

/* Byte-for-byte equality of two files. */
static void assert_same_file(const char *a, const char *b)
{
	size_t la, lb;
	char *ta = tt_slurp(a, &la);
	char *tb = tt_slurp(b, &lb);

	if (ta == NULL || tb == NULL || la != lb || memcmp(ta, tb, la) != 0) {
		fail_msg("%s differs from %s", a, b);
	}
	free(ta);
	free(tb);
}

static void assert_link_to(const char *dir, const char *name,
			   const char *target)
{
	char path[PATH_MAX + 64], got[PATH_MAX];
	ssize_t n;

	put(path, "%s/%s", dir, name);
	n = readlink(path, got, sizeof(got) - 1);
	if (n < 0) {
		fail_msg("%s is not a symbolic link: %s", path,
			 strerror(errno));
	}
	got[n] = '\0';
	assert_string_equal(got, target);
}

/* pkg-config for the staged tree: its .pc files, paths under the stage. */
static char *pkg_config(const char *stage, const char *pcdir, const char *tag,
			const char *flag)
{
	char path_env[PATH_MAX + 32], sysroot_env[PATH_MAX + 48];
	const char *add[] = {path_env, sysroot_env, NULL};
	char *argv[] = {"/usr/bin/pkg-config", (char *)flag, "tevent", NULL};

	put(path_env, "PKG_CONFIG_PATH=%s", pcdir);
	put(sysroot_env, "PKG_CONFIG_SYSROOT_DIR=%s", stage);
	return run_ok(g.fx.dir, tag, argv, add);
}

/* A variable of the tevent.pc in pcdir, as the file spells it out (no
 * stage in front). */
static char *pc_variable(const char *pcdir, const char *name)
{
	char var[64], path_env[PATH_MAX + 32];
	const char *add[] = {path_env, NULL};
	char *argv[] = {"/usr/bin/pkg-config", var, "tevent", NULL};

	put(var, "--variable=%s", name);
	put(path_env, "PKG_CONFIG_PATH=%s", pcdir);
	return first_line(run_ok(g.fx.dir, name, argv, add));
}

/* Splits a pkg-config output line into argv words (in place). */
static int split_words(char *line, char **words, int max)
{
	int n = 0;
	char *save = NULL;

	for (char *w = strtok_r(line, " \t\n", &save); w != NULL;
	     w = strtok_r(NULL, " \t\n", &save)) {
		assert_true(n < max);
		words[n++] = w;
	}
	return n;
}

/* ---- the client ---- */

static const char client_source[] =
	"#define _GNU_SOURCE\n"
	"#include <dlfcn.h>\n"
	"#include <stdint.h>\n"
	"#include <stdio.h>\n"
	"#include <talloc.h>\n"
	"#include <tevent.h>\n"
	"\n"
	"/* 0.16 and later only: Debian's 0.14 header would fail here */\n"
	"#ifndef TEVENT_FD_ERROR\n"
	"#error not the header of tevent 0.17\n"
	"#endif\n"
	"\n"
	"struct st { int n; };\n"
	"\n"
	"static void fired(struct tevent_context *ev, struct tevent_timer *te,\n"
	"                  struct timeval now, void *p)\n"
	"{\n"
	"        tevent_req_done(p);\n"
	"}\n"
	"\n"
	"int main(void)\n"
	"{\n"
	"        struct tevent_context *ev = tevent_context_init(NULL);\n"
	"        enum tevent_req_state state;\n"
	"        struct tevent_req *req;\n"
	"        struct st *st;\n"
	"        uint64_t err;\n"
	"        Dl_info info;\n"
	"\n"
	"        if (ev == NULL) return 1;\n"
	"        req = tevent_req_create(ev, &st, struct st);\n"
	"        if (req == NULL) return 2;\n"
	"        if (tevent_add_timer(ev, st, tevent_timeval_current_ofs(0, 1000),\n"
	"                             fired, req) == NULL) return 3;\n"
	"        if (!tevent_req_poll(req, ev)) return 4;\n"
	"        if (tevent_req_is_error(req, &state, &err)) return 5;\n"
	"        if (dladdr(dlsym(RTLD_DEFAULT, \"tevent_context_init\"),\n"
	"                   &info) == 0) return 6;\n"
	"        printf(\"%s\\n\", info.dli_fname);\n"
	"        talloc_free(ev);\n"
	"        return 0;\n"
	"}\n";

/*
 * Compiles the client against the staged tree (pkg-config's flags only)
 * and runs it with the staged library directory as the only library path.
 * Returns the path of the libtevent it loaded (malloc'd).
 */
static char *build_and_run_client(const char *stage, const char *pcdir,
				  const char *libdir)
{
	char src[PATH_MAX + 32], exe[PATH_MAX + 32], ld_env[PATH_MAX + 32];
	char *cflags, *libs, *loaded;
	char *argv[64];
	int argc = 0;
	const char *add[] = {ld_env, NULL};

	put(src, "%s/client.c", g.fx.dir);
	put(exe, "%s/client", g.fx.dir);
	tt_write_file(src, client_source, strlen(client_source));

	cflags = pkg_config(stage, pcdir, "pkg-config-cflags", "--cflags");
	libs = pkg_config(stage, pcdir, "pkg-config-libs", "--libs");
	/* Our header, not Debian's, and the staged library, not ours in
	 * the build tree: the flags must name the stage. */
	assert_non_null(strstr(cflags, stage));
	assert_non_null(strstr(libs, stage));
	assert_non_null(strstr(libs, "-ltalloc"));

	argv[argc++] = "/usr/bin/cc";
	argc += split_words(cflags, argv + argc, 20);
	argv[argc++] = "-o";
	argv[argc++] = exe;
	argv[argc++] = src;
	argc += split_words(libs, argv + argc, 20);
	argv[argc++] = "-ldl";
	argv[argc] = NULL;
	free(run_ok(g.fx.dir, "cc", argv, NULL));
	free(cflags);
	free(libs);

	put(ld_env, "LD_LIBRARY_PATH=%s", libdir);
	char *client_argv[] = {exe, NULL};
	loaded = run_ok(g.fx.dir, "client", client_argv, add);
	return first_line(loaded);
}

/* ---- cases ---- */

/*
 * The staged tree `stage` of the build in out_dir: the build's own files
 * under the libdir and includedir its tevent.pc names, the library's two
 * links, and a client built from the stage that runs on the staged copy.
 */
static void check_stage(const char *stage, const char *out_dir)
{
	char inc[PATH_MAX + 64], pcdir[PATH_MAX + 64], libdir[PATH_MAX + 64];
	char built[PATH_MAX + 64], staged[PATH_MAX + 64], real[PATH_MAX];
	char path[PATH_MAX + 64];
	char *text, *dir, *loaded;

	put(path, "%s/tevent.pc", out_dir);
	text = tt_slurp(path, NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, "\nVersion: 0.17.2\n"));
	assert_non_null(strstr(text, "\nRequires: talloc\n"));
	free(text);
	dir = pc_variable(out_dir, "libdir");
	put(libdir, "%s%s", stage, dir);
	put(pcdir, "%s/pkgconfig", libdir);
	free(dir);
	dir = pc_variable(out_dir, "includedir");
	put(inc, "%s%s/tevent.h", stage, dir);
	free(dir);

	/* The files are the build's own. */
	put(path, "%s/include/tevent.h", g.repo);
	assert_same_file(inc, path);
	put(built, "%s/libtevent.so.0.17.2", out_dir);
	put(staged, "%s/libtevent.so.0.17.2", libdir);
	assert_same_file(staged, built);
	put(path, "%s/tevent.pc", pcdir);
	put(built, "%s/tevent.pc", out_dir);
	assert_same_file(path, built);
	assert_link_to(libdir, "libtevent.so.0", "libtevent.so.0.17.2");
	assert_link_to(libdir, "libtevent.so", "libtevent.so.0.17.2");

	/* A client built from the staged tree runs on the staged library. */
	loaded = build_and_run_client(stage, pcdir, libdir);
	assert_non_null(realpath(loaded, real));
	assert_string_equal(real, staged);
	free(loaded);
}

/* buildtools/bin/waf <command> <option> in the source tree, with the
 * configuration the lock file in waflock ("WAFLOCK=...") names. */
static void run_waf(const char *waflock, const char *tag, const char *command,
		    const char *option)
{
	char waf[PATH_MAX + 32];
	char *argv[] = {waf, (char *)command, (char *)option, NULL};
	const char *add[] = {waflock, NULL};

	put(waf, "%s/buildtools/bin/waf", g.repo);
	free(run_ok(g.repo, tag, argv, add));
}

/* `waf install --destdir=stage` (make install DESTDIR=stage). */
static void waf_install(const char *waflock, const char *stage)
{
	char destdir[PATH_MAX + 48];

	put(destdir, "--destdir=%s", stage);
	run_waf(waflock, "waf-install", "install", destdir);
}

/* make install DESTDIR=... of the build under test. */
static void test_install_stages_the_build(void **state)
{
	char stage[PATH_MAX + 32];

	(void)state;
	skip_sanitizer_build();
	put(stage, "%s/stage", g.fx.dir);
	waf_install(g.waflock, stage);
	check_stage(stage, g.out);
}

/*
 * What a packager runs: ./configure --prefix=... --libdir=... in a build
 * directory of its own, then install.  The paths in tevent.pc must follow
 * (libdir spelled relative to ${prefix}).
 */
static void test_configure_prefix_and_libdir(void **state)
{
	char configure[PATH_MAX + 32], out_opt[PATH_MAX + 32];
	char out[PATH_MAX + 32], stage[PATH_MAX + 32], path[PATH_MAX + 64];
	char *argv[] = {configure, "--prefix=" PREFIX, "--libdir=" PREFIX "/lib64",
			out_opt, NULL};
	const char *add[] = {g.own_lock, NULL};
	char *text;

	(void)state;
	skip_sanitizer_build();
	put(configure, "%s/configure", g.repo);
	put(out, "%s/build", g.fx.dir);
	put(out_opt, "--out=%s", out);
	put(stage, "%s/stage-configured", g.fx.dir);
	g.own_lock_made = true;
	free(run_ok(g.repo, "configure", argv, add));
	/* The library alone first (its version script must come along). */
	run_waf(g.own_lock, "waf-build-library", "build", "--targets=tevent");
	waf_install(g.own_lock, stage);

	put(path, "%s/tevent.pc", out);
	text = tt_slurp(path, NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, "prefix=" PREFIX "\n"));
	assert_non_null(strstr(text, "\nlibdir=${prefix}/lib64\n"));
	assert_non_null(strstr(text, "\nincludedir=${prefix}/include\n"));
	free(text);
	check_stage(stage, out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_install_stages_the_build),
		cmocka_unit_test(test_configure_prefix_and_libdir),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/*
 * SSSD on our library: Debian's sssd (the monitor), sssd_be and sssd_nss,
 * built against Debian's libtevent 0.14.1 and never rebuilt, run with the
 * library under test preloaded.
 *
 * SSSD is the largest tevent program outside Samba's tree.  Its monitor
 * starts a back end per domain and one process per responder, restarts
 * them when they die (a SIGCHLD signal event), and they talk to each
 * other over private D-Bus sockets driven from tevent fd events and
 * timers; almost every operation is a chain of tevent_reqs, and the cache
 * is an ldb database, itself a tevent user.
 *
 * SSSD's paths (/var/lib/sss, /etc/sssd, /var/log/sssd, its pid file in
 * /run) are fixed when it is built.  So the group setup moves this test
 * process into a mount namespace of its own, where scratch directories
 * are mounted over those paths, and starts a private sssd with one domain
 * served by the files provider from a passwd and a group file of the
 * test's.  Nothing outside the namespace sees any of it.  Clients are
 * glibc's getent with `-s sss`, through Debian's NSS module, which talks
 * to sssd_nss over its socket (the module has no tevent of its own).
 *
 * Needs root (for the mount namespace) and Debian's sssd-common and
 * libnss-sss (buildtools/install-deps installs them as root); without
 * them every case is skipped and says so.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tt.h"
#include "tt_foreign.h"

#define SSSD "/usr/sbin/sssd"
#define SSSD_BE "/usr/libexec/sssd/sssd_be"
#define SSSD_NSS "/usr/libexec/sssd/sssd_nss"
#define GETENT "/usr/bin/getent"

/* Hang guards only: sssd answers its first lookup in well under a
 * second, and sees a changed passwd file within a second or two. */
#define START_GUARD_S 120
#define RUN_GUARD_S 60

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The users and the group the domain starts with. */
#define ALICE "alice:x:4001:4001:Alice Example:/home/alice:/bin/sh"
#define BOB "bob:x:4002:4001:Bob Example:/home/bob:/bin/sh"
#define TESTERS "testers:x:4001:alice,bob"
/* A user added and removed again. */
#define CAROL "carol:x:4003:4001:Carol Example:/home/carol:/bin/sh"

static struct {
	bool have_sssd;
	const char *why_not;          /* why the cases are skipped */
	struct tt_foreign fx;
	char passwd[PATH_MAX + 16];
	char group[PATH_MAX + 16];
	char log[PATH_MAX + 16];      /* sssd's stderr: every process's log */
	pid_t sssd;
	unsigned runs;                /* numbers getent's output files */
} g;

/* The system paths that get a scratch directory of their own. */
static const struct {
	const char *target;
	const char *scratch;
} private_dirs[] = {
	{"/var/lib/sss", "lib"},
	{"/etc/sssd", "etc"},
	{"/var/log/sssd", "log"},
};

/* What sssd expects to find under /var/lib/sss (the package makes them). */
static const char *const lib_subdirs[] = {
	"db", "pipes", "pipes/private", "mc", "pubconf", "gpo_cache",
	"secrets", "deskprofile",
};

/* ---- getent through sssd ---- */

/*
 * `getent -s sss <db> [key]`; the wait status, the output in *out
 * (malloc'd).  getent gets our library preloaded like everything the
 * fixture starts, but never loads tevent itself.
 */
static int getent(const char *db, const char *key, char **out)
{
	char path[PATH_MAX + 64];
	char *argv[] = {GETENT, "-s", "sss", (char *)db, (char *)key, NULL};
	pid_t pid;
	int status;

	snprintf(path, sizeof(path), "%s/getent%u.out", g.fx.dir, g.runs++);
	pid = tt_spawn(&g.fx, argv, path, NULL);
	status = tt_wait_guarded(pid, RUN_GUARD_S);
	*out = tt_slurp(path, NULL);
	assert_non_null(*out);
	unlink(path);
	return status;
}

/* getent finds `key` in `db` and prints exactly `line`. */
static void assert_entry(const char *db, const char *key, const char *line)
{
	char *out = NULL;
	int status = getent(db, key, &out);
	size_t len = strlen(line);

	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
	    strncmp(out, line, len) != 0 || strcmp(out + len, "\n") != 0) {
		fprintf(stderr, "getent -s sss %s %s: status %#x, printed \"%s\", "
			"wanted \"%s\"\n", db, key, (unsigned)status, out, line);
		tt_dump(g.log);
		fail();
	}
	free(out);
}

/* getent does not find `key` in `db`: exit status 2, nothing printed. */
static void assert_no_entry(const char *db, const char *key)
{
	char *out = NULL;
	int status = getent(db, key, &out);

	if (!WIFEXITED(status) || WEXITSTATUS(status) != 2 || out[0] != '\0') {
		fprintf(stderr, "getent -s sss %s %s: status %#x, printed \"%s\", "
			"wanted nothing and exit status 2\n", db, key,
			(unsigned)status, out);
		fail();
	}
	free(out);
}

/* getent's answer for `key` is `line` (NULL: not found) right now. */
static bool answer_is(const char *db, const char *key, const char *line)
{
	char *out = NULL;
	int status = getent(db, key, &out);
	bool found = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	bool ok = line == NULL ? !found
			       : found && strncmp(out, line, strlen(line)) == 0;

	free(out);
	return ok;
}

/* Polls until getent's answer for `key` is `line` (NULL: not found). */
static void wait_answer(const char *db, const char *key, const char *line)
{
	time_t deadline = time(NULL) + RUN_GUARD_S;

	while (!answer_is(db, key, line)) {
		if (time(NULL) > deadline) {
			fprintf(stderr, "getent -s sss %s %s: still not %s after "
				"%d s\n", db, key, line != NULL ? line : "absent",
				RUN_GUARD_S);
			tt_dump(g.log);
			fail();
		}
		usleep(100000);
	}
}

/* ---- the private sssd ---- */

static void write_text(const char *path, const char *text, mode_t mode)
{
	tt_write_file(path, text, strlen(text));
	assert_int_equal(chmod(path, mode), 0);
}

static void write_config(void)
{
	char path[PATH_MAX + 32], text[2048];
	int n;

	write_text(g.passwd, ALICE "\n" BOB "\n", 0644);
	write_text(g.group, TESTERS "\n", 0644);
	/* A short negative cache, so that a name the files provider has
	 * not seen yet is looked up again soon after the file changes. */
	n = snprintf(text, sizeof(text),
		     "[sssd]\n"
		     "services = nss\n"
		     "domains = files\n"
		     "\n"
		     "[nss]\n"
		     "entry_negative_timeout = 1\n"
		     "\n"
		     "[domain/files]\n"
		     "id_provider = files\n"
		     "passwd_files = %s\n"
		     "group_files = %s\n",
		     g.passwd, g.group);
	assert_true(n > 0 && (size_t)n < sizeof(text));
	/* sssd refuses a configuration anybody else could read */
	tt_path_in(&g.fx, path, sizeof(path), "etc/conf.d");
	assert_int_equal(mkdir(path, 0755), 0);
	tt_path_in(&g.fx, path, sizeof(path), "etc/sssd.conf");
	write_text(path, text, 0600);
}

/*
 * This process, and everything it starts from now on, gets a mount
 * namespace of its own, with the scratch directories over sssd's paths
 * and an empty /run.  NULL, or why it cannot be done here.
 */
static const char *enter_private_mounts(void)
{
	char path[PATH_MAX + 32];
	size_t i;

	if (geteuid() != 0) {
		return "needs root for a mount namespace of its own";
	}
	for (i = 0; i < NELEM(private_dirs); i++) {
		tt_path_in(&g.fx, path, sizeof(path), private_dirs[i].scratch);
		if (mkdir(path, 0755) != 0 ||
		    access(private_dirs[i].target, F_OK) != 0) {
			return "an sssd directory is missing (sssd-common not "
			       "installed completely?)";
		}
	}
	for (i = 0; i < NELEM(lib_subdirs); i++) {
		char sub[PATH_MAX + 64];

		snprintf(sub, sizeof(sub), "%s/lib/%s", g.fx.dir, lib_subdirs[i]);
		if (mkdir(sub, 0755) != 0) {
			return "cannot make the scratch directories";
		}
	}
	if (unshare(CLONE_NEWNS) != 0) {
		return "cannot make a mount namespace (unshare failed)";
	}
	/* Nothing mounted from here on may reach the machine's namespace.
	 * In a chroot whose root is no mount point this fails; the fresh
	 * checkout check (buildtools/fresh-check) makes it one. */
	if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0) {
		return "cannot make mounts private (the root is no mount point)";
	}
	for (i = 0; i < NELEM(private_dirs); i++) {
		tt_path_in(&g.fx, path, sizeof(path), private_dirs[i].scratch);
		if (mount(path, private_dirs[i].target, "none", MS_BIND, NULL) != 0) {
			return "a bind mount failed";
		}
	}
	if (mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") != 0) {
		return "cannot mount an empty /run";
	}
	return NULL;
}

static bool alice_found(void *arg)
{
	(void)arg;
	return answer_is("passwd", "alice", ALICE);
}

static bool have_sssd(void)
{
	static const char *const tools[] = {SSSD, SSSD_BE, SSSD_NSS, GETENT};
	static const char *const libs[] = {
		"/usr/lib/x86_64-linux-gnu/libnss_sss.so.2",
		"/lib/x86_64-linux-gnu/libnss_sss.so.2",
		"/usr/lib/libnss_sss.so.2",
	};
	size_t i;

	for (i = 0; i < NELEM(tools); i++) {
		if (access(tools[i], X_OK) != 0) {
			g.why_not = "sssd is not installed";
			return false;
		}
	}
	for (i = 0; i < NELEM(libs); i++) {
		if (access(libs[i], R_OK) == 0) {
			return true;
		}
	}
	g.why_not = "sssd's NSS module is not installed";
	return false;
}

static int group_setup(void **state)
{
	char *sssd[] = {SSSD, "--interactive", "--logger=stderr", NULL};

	(void)state;
	if (!have_sssd()) {
		fprintf(stderr, "test_sssd: %s (Debian's sssd-common and "
			"libnss-sss; buildtools/install-deps installs them as "
			"root)\n", g.why_not);
		return 0;
	}
	if (tt_foreign_init(&g.fx, "/tmp/tevent-sssd.XXXXXX") != 0) {
		return -1;
	}
	g.why_not = enter_private_mounts();
	if (g.why_not != NULL) {
		fprintf(stderr, "test_sssd: %s; skipping\n", g.why_not);
		return 0;
	}
	g.have_sssd = true;
	snprintf(g.passwd, sizeof(g.passwd), "%s/passwd", g.fx.dir);
	snprintf(g.group, sizeof(g.group), "%s/group", g.fx.dir);
	snprintf(g.log, sizeof(g.log), "%s/sssd.log", g.fx.dir);
	write_config();
	/* No tt_foreign_asan_first(): sssd hangs at start-up (in a futex,
	 * before its first log line) with the ASan runtime preloaded, and
	 * does so on Debian's libtevent as well. */
	g.sssd = tt_spawn(&g.fx, sssd, g.log, NULL);
	return tt_wait_ready(&g.sssd, "sssd", g.log, START_GUARD_S,
			     alice_found, NULL) ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	tt_stop_server(&g.sssd, START_GUARD_S);
	if (g.have_sssd) {
		for (size_t i = 0; i < NELEM(private_dirs); i++) {
			umount2(private_dirs[i].target, MNT_DETACH);
		}
	}
	if (g.fx.dir[0] != '\0') {
		tt_foreign_done(&g.fx, "TEST_SSSD_KEEP");
	}
	return 0;
}

static void need_sssd(void)
{
	if (!g.have_sssd) {
		skip();
	}
}

/* The monitor's live children that run `comm`; how many (0 or 1 here). */
static int child_named(const char *comm, pid_t *pid)
{
	pid_t kids[16];
	char names[16][32];
	int n = tt_children_of(g.sssd, kids, names, (int)NELEM(kids));
	int found = 0;

	for (int i = 0; i < n; i++) {
		if (strcmp(names[i], comm) == 0) {
			*pid = kids[i];
			found++;
		}
	}
	return found;
}

static pid_t the_child(const char *comm)
{
	pid_t pid = 0;

	if (child_named(comm, &pid) != 1) {
		fprintf(stderr, "sssd has no single %s child\n", comm);
		tt_dump(g.log);
		fail();
	}
	return pid;
}

/* ---- cases ---- */

/* The monitor and the two processes it started, the back end of the
 * domain and the NSS responder, map our library and no other libtevent. */
static void test_daemons_run_on_ours(void **state)
{
	(void)state;
	need_sssd();
	tt_check_maps_only_ours(&g.fx, g.sssd, "sssd", false);
	tt_check_maps_only_ours(&g.fx, the_child("sssd_be"), "sssd_be", false);
	tt_check_maps_only_ours(&g.fx, the_child("sssd_nss"), "sssd_nss", false);
}

/* Users and the group, by name and by number, come back exactly as the
 * files say. */
static void test_lookups(void **state)
{
	(void)state;
	need_sssd();
	assert_entry("passwd", "alice", ALICE);
	assert_entry("passwd", "bob", BOB);
	assert_entry("passwd", "4002", BOB);
	assert_entry("group", "testers", TESTERS);
	assert_entry("group", "4001", TESTERS);
	/* a second time, answered from sssd's caches */
	assert_entry("passwd", "alice", ALICE);
	assert_entry("group", "testers", TESTERS);
}

/* Names and numbers that do not exist are not found, again and again. */
static void test_unknown_entries(void **state)
{
	(void)state;
	need_sssd();
	for (int i = 0; i < 3; i++) {
		assert_no_entry("passwd", "nobody-here");
		assert_no_entry("passwd", "4999");
		assert_no_entry("group", "no-such-group");
	}
}

/* Many clients at once: the responder serves interleaved requests. */
static void test_concurrent_clients(void **state)
{
	enum { CLIENTS = 24 };
	static const struct {
		const char *db, *key, *line;
	} asks[] = {
		{"passwd", "alice", ALICE},
		{"passwd", "4002", BOB},
		{"group", "testers", TESTERS},
		{"passwd", "bob", BOB},
		{"group", "4001", TESTERS},
		{"passwd", "4001", ALICE},
	};
	char out[CLIENTS][PATH_MAX + 64];
	pid_t pids[CLIENTS];

	(void)state;
	need_sssd();
	for (int c = 0; c < CLIENTS; c++) {
		char *argv[] = {GETENT, "-s", "sss",
				(char *)asks[c % NELEM(asks)].db,
				(char *)asks[c % NELEM(asks)].key, NULL};

		snprintf(out[c], sizeof(out[c]), "%s/concurrent%d.out", g.fx.dir,
			 c);
		pids[c] = tt_spawn(&g.fx, argv, out[c], NULL);
	}
	tt_wait_clients(pids, out, CLIENTS, RUN_GUARD_S);
	for (int c = 0; c < CLIENTS; c++) {
		char *text = tt_slurp(out[c], NULL);
		const char *line = asks[c % NELEM(asks)].line;

		assert_non_null(text);
		if (strncmp(text, line, strlen(line)) != 0) {
			fprintf(stderr, "client %d printed \"%s\", wanted \"%s\"\n",
				c, text, line);
			fail();
		}
		free(text);
	}
}

/*
 * The files provider watches its files (inotify, an fd event) and reads
 * them again when they change: a user added appears, and disappears when
 * taken out, and the others are there once sssd has settled.
 */
static void test_file_changes_seen(void **state)
{
	(void)state;
	need_sssd();
	assert_no_entry("passwd", "carol");
	write_text(g.passwd, ALICE "\n" BOB "\n" CAROL "\n", 0644);
	wait_answer("passwd", "carol", CAROL);
	/* While sssd reads the files again, its domain is briefly empty
	 * (so with Debian's libtevent too); only the outcome is checked. */
	wait_answer("passwd", "alice", ALICE);
	assert_entry("passwd", "4003", CAROL);

	write_text(g.passwd, ALICE "\n" BOB "\n", 0644);
	wait_answer("passwd", "carol", NULL);
	wait_answer("passwd", "bob", BOB);
	assert_no_entry("passwd", "4003");
	assert_entry("passwd", "alice", ALICE);
}

/*
 * The NSS responder is killed: the monitor learns of it through its
 * SIGCHLD handler, starts a new one, and lookups work again.
 */
static void test_killed_responder_restarts(void **state)
{
	pid_t old, now = 0;
	time_t deadline;

	(void)state;
	need_sssd();
	old = the_child("sssd_nss");
	assert_int_equal(kill(old, SIGKILL), 0);
	deadline = time(NULL) + RUN_GUARD_S;
	while (child_named("sssd_nss", &now) != 1 || now == old) {
		if (time(NULL) > deadline) {
			fprintf(stderr, "no new sssd_nss after %d s\n", RUN_GUARD_S);
			tt_dump(g.log);
			fail();
		}
		usleep(100000);
	}
	wait_answer("passwd", "alice", ALICE);
	assert_entry("group", "testers", TESTERS);
	tt_check_maps_only_ours(&g.fx, now, "sssd_nss (restarted)", false);
}

/* SIGHUP (log rotation) goes through every process's signal event and
 * changes nothing else: same processes, same answers. */
static void test_sighup(void **state)
{
	pid_t be, nss;

	(void)state;
	need_sssd();
	be = the_child("sssd_be");
	nss = the_child("sssd_nss");
	assert_int_equal(kill(g.sssd, SIGHUP), 0);
	assert_entry("passwd", "bob", BOB);
	usleep(300000);
	assert_int_equal(the_child("sssd_be"), be);
	assert_int_equal(the_child("sssd_nss"), nss);
	assert_entry("passwd", "alice", ALICE);
}

/*
 * Last: SIGTERM stops the monitor through its loop; it stops its children,
 * exits with status 0, and no log of the run reports a panic, an abort or
 * talloc corruption.
 */
static void test_stops_cleanly(void **state)
{
	pid_t be, nss;
	int status;

	(void)state;
	need_sssd();
	be = the_child("sssd_be");
	nss = the_child("sssd_nss");
	status = tt_stop_server(&g.sssd, START_GUARD_S);
	tt_assert_stopped_cleanly(status, "sssd", g.log);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(tt_wait_ended(be, true, START_GUARD_S));
	assert_true(tt_wait_ended(nss, true, START_GUARD_S));
	tt_assert_log_clean(g.log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_daemons_run_on_ours),
		cmocka_unit_test(test_lookups),
		cmocka_unit_test(test_unknown_entries),
		cmocka_unit_test(test_concurrent_clients),
		cmocka_unit_test(test_file_changes_seen),
		cmocka_unit_test(test_killed_responder_restarts),
		cmocka_unit_test(test_sighup),
		cmocka_unit_test(test_stops_cleanly),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

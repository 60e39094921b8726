/*
 * CTDB on our library: Debian's ctdbd, ctdb-eventd, the recovery daemon
 * and helpers and the ctdb tool, built against Debian's libtevent 0.14.1
 * and never rebuilt, run with the library under test preloaded.
 *
 * CTDB is the other large tevent program in Samba's tree, written in a
 * different style from smbd: almost everything is a tevent_req, nodes talk
 * over TCP with reconnect timers, the event daemon runs scripts as child
 * processes under timeouts and reaps them from a SIGCHLD signal event,
 * the recovery daemon is forked from ctdbd and re-initialises its loop.
 *
 * The group setup starts a private cluster of two nodes on loopback
 * addresses of their own (127.a.b.1 and 127.a.b.2, from the test's pid),
 * each with its own CTDB_BASE in a temporary directory and CTDB's test
 * mode (its paths under CTDB_BASE, no root-only setup).  The cases use the
 * ctdb tool against either node and prove which libtevent ran: the
 * daemons' /proc/PID/maps, the loader's log for every tool run.
 *
 * Needs Debian's ctdb package (buildtools/install-deps installs it as
 * root); without it every case is skipped and says so.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tt.h"
#include "tt_foreign.h"

#define CTDBD "/usr/sbin/ctdbd"
#define CTDB "/usr/bin/ctdb"
#define EVENTD "/usr/libexec/ctdb/ctdb-eventd"

#define NODES 2
#define MAX_ARGS 16
/* Hang guards only.  A cluster normally forms in about 10 s and a node
 * rejoins in about 20 s: CTDB's own election and recovery timers. */
#define START_GUARD_S 240
#define RUN_GUARD_S 120

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static struct {
	bool have_ctdb;
	struct tt_foreign fx;
	char addr[NODES][32];
	char base[NODES][PATH_MAX + 16];     /* CTDB_BASE of node n */
	char base_env[NODES][PATH_MAX + 32]; /* "CTDB_BASE=..." */
	char log[NODES][PATH_MAX + 32];      /* ctdbd's stderr: its log */
	pid_t ctdbd[NODES];
	unsigned runs;                        /* numbers the tool's outputs */
} g;

/* ---- the ctdb tool ---- */

/*
 * Runs `ctdb <args...>` (NULL-terminated) against node n with our library;
 * returns the wait status, the output in *out (malloc'd).
 */
static int ctdb_v(int node, char **out, const char *first, va_list ap)
{
	const char *env[] = {g.base_env[node], "CTDB_TEST_MODE=yes", NULL};
	char *argv[MAX_ARGS + 2];
	char tag[64];
	size_t n = 0;

	argv[n++] = CTDB;
	for (const char *a = first; a != NULL; a = va_arg(ap, const char *)) {
		assert_true(n < MAX_ARGS);
		argv[n++] = (char *)a;
	}
	argv[n] = NULL;
	snprintf(tag, sizeof(tag), "ctdb%u-node%d-%s", g.runs++, node, first);
	return tt_run_program(&g.fx, tag, argv, env, RUN_GUARD_S, out);
}

static int ctdb_status_of(int node, char **out, const char *first, ...)
{
	va_list ap;
	int status;

	va_start(ap, first);
	status = ctdb_v(node, out, first, ap);
	va_end(ap);
	return status;
}

/* The tool's exit code; the output in *out. */
#define CTDB_RC(node, out, ...) \
	ctdb_exit_code(ctdb_status_of(node, out, __VA_ARGS__, NULL))

static int ctdb_exit_code(int status)
{
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* Must succeed; returns the output (malloc'd). */
static char *ctdb_ok(int node, const char *first, ...)
{
	va_list ap;
	char *out = NULL;
	int status;

	va_start(ap, first);
	status = ctdb_v(node, &out, first, ap);
	va_end(ap);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "ctdb %s on node %d ended with status 0x%x:\n%s\n",
			first, node, status, out);
		fail();
	}
	return out;
}
#define CTDB_OK(node, ...) ctdb_ok(node, __VA_ARGS__, NULL)

static void assert_contains(const char *text, const char *want)
{
	if (strstr(text, want) == NULL) {
		fprintf(stderr, "expected \"%s\" in:\n%s\n", want, text);
		fail();
	}
}

/* `ctdb pfetch` on node n prints the value and a newline (just the
 * newline for a key that is not there). */
static void assert_pfetch(int node, const char *db, const char *key,
			  const char *want)
{
	char *out = CTDB_OK(node, "pfetch", db, key);
	char expected[256];

	snprintf(expected, sizeof(expected), "%s\n", want);
	assert_string_equal(out, expected);
	free(out);
}

/* ---- the private cluster ---- */

static void write_node_config(int n)
{
	static const char *const subdirs[] = {
		"", "/run", "/var", "/events", "/events/legacy", "/db",
		"/db/volatile", "/db/persistent", "/db/state",
	};
	char path[PATH_MAX + 64], text[4096];
	size_t i, len = 0;
	int k;

	for (i = 0; i < NELEM(subdirs); i++) {
		snprintf(path, sizeof(path), "%s%s", g.base[n], subdirs[i]);
		assert_int_equal(mkdir(path, 0755), 0);
	}
	for (k = 0; k < NODES; k++) {
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%s\n",
					g.addr[k]);
	}
	snprintf(path, sizeof(path), "%s/nodes", g.base[n]);
	tt_write_file(path, text, len);

	/* No public addresses and no IP failover: nothing touches the
	 * machine's network setup.  Without a cluster lock CTDB warns and
	 * carries on, which is what a test cluster wants. */
	k = snprintf(text, sizeof(text),
		     "[logging]\n"
		     "  log level = NOTICE\n"
		     "[cluster]\n"
		     "  node address = %s\n"
		     "[database]\n"
		     "  volatile database directory = %s/db/volatile\n"
		     "  persistent database directory = %s/db/persistent\n"
		     "  state database directory = %s/db/state\n"
		     "[failover]\n"
		     "  disabled = true\n"
		     /* no real-time priority for a test daemon */
		     "[legacy]\n"
		     "  realtime scheduling = false\n",
		     g.addr[n], g.base[n], g.base[n], g.base[n]);
	assert_true(k > 0 && (size_t)k < sizeof(text));
	snprintf(path, sizeof(path), "%s/ctdb.conf", g.base[n]);
	tt_write_file(path, text, (size_t)k);
}

/*
 * Run as root, ctdbd locks all its memory (mlockall).  A test daemon has
 * no business doing that, and with an ASan build of the library preloaded
 * it would fault in ASan's terabytes of shadow memory until the OOM killer
 * steps in.  Without CAP_IPC_LOCK and with no locked-memory allowance the
 * call fails, and ctdbd logs a warning and carries on.
 */
static void no_memory_locking(void)
{
	struct rlimit none = {0, 0};

	prctl(PR_CAPBSET_DROP, CAP_IPC_LOCK, 0, 0, 0);
	setrlimit(RLIMIT_MEMLOCK, &none);
}

/* ctdbd in the foreground: it logs to stderr and stays our child. */
static void start_node(int n)
{
	char *argv[] = {CTDBD, "--interactive", NULL};
	const char *env[] = {g.base_env[n], "CTDB_TEST_MODE=yes", NULL};

	g.ctdbd[n] = tt_spawn(&g.fx, argv, g.log[n], env);
}

/* Node n sees every node OK and the cluster out of recovery. */
static bool node_sees_healthy_cluster(int n)
{
	char *out = NULL;
	const char *p;
	int ok = 0;
	bool healthy;

	if (ctdb_status_of(n, &out, "status", NULL) != 0) {
		free(out);
		return false;
	}
	for (p = out; (p = strstr(p, "\npnn:")) != NULL; p++) {
		const char *eol = strchr(p + 1, '\n');
		const char *flags = strstr(p, " OK");

		if (flags != NULL && (eol == NULL || flags < eol)) {
			ok++;
		}
	}
	healthy = ok == NODES && strstr(out, "Recovery mode:NORMAL") != NULL;
	free(out);
	return healthy;
}

/* Waits until both nodes agree the cluster is healthy; false if a ctdbd
 * ended or the guard ran out. */
static bool wait_cluster_healthy(void)
{
	time_t deadline = time(NULL) + START_GUARD_S;

	for (;;) {
		bool all = true;

		for (int n = 0; n < NODES; n++) {
			int status;

			if (g.ctdbd[n] <= 0 ||
			    waitpid(g.ctdbd[n], &status, WNOHANG) == g.ctdbd[n]) {
				fprintf(stderr, "ctdbd of node %d is not running\n",
					n);
				tt_dump(g.log[n]);
				g.ctdbd[n] = 0;
				return false;
			}
			all = all && node_sees_healthy_cluster(n);
		}
		if (all) {
			return true;
		}
		if (time(NULL) > deadline) {
			fprintf(stderr, "cluster not healthy after %d s\n",
				START_GUARD_S);
			for (int n = 0; n < NODES; n++) {
				tt_dump(g.log[n]);
			}
			return false;
		}
		usleep(200000);
	}
}

static bool have_ctdb(void)
{
	static const char *const tools[] = {CTDBD, CTDB, EVENTD};

	for (size_t i = 0; i < NELEM(tools); i++) {
		if (access(tools[i], X_OK) != 0) {
			fprintf(stderr, "test_ctdb: %s not installed (Debian's ctdb; "
				"buildtools/install-deps installs it as root)\n",
				tools[i]);
			return false;
		}
	}
	return true;
}

static int group_setup(void **state)
{
	unsigned pid = (unsigned)getpid();

	(void)state;
	g.have_ctdb = have_ctdb();
	if (!g.have_ctdb) {
		return 0;
	}
	if (tt_foreign_init(&g.fx, "/tmp/tevent-ctdb.XXXXXX") != 0) {
		return -1;
	}
	g.fx.child_setup = no_memory_locking;
	tt_foreign_asan_first(&g.fx);
	for (int n = 0; n < NODES; n++) {
		/* addresses of our own, so that CTDB's fixed port is free */
		snprintf(g.addr[n], sizeof(g.addr[n]), "127.%u.%u.%d",
			 100 + pid % 100, 1 + (pid / 100) % 250, n + 1);
		snprintf(g.base[n], sizeof(g.base[n]), "%s/node%d", g.fx.dir, n);
		snprintf(g.base_env[n], sizeof(g.base_env[n]), "CTDB_BASE=%s",
			 g.base[n]);
		snprintf(g.log[n], sizeof(g.log[n]), "%s/ctdbd.log", g.base[n]);
	}
	for (int n = 0; n < NODES; n++) {
		write_node_config(n);
		start_node(n);
	}
	return wait_cluster_healthy() ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	for (int n = 0; n < NODES; n++) {
		tt_stop_server(&g.ctdbd[n], START_GUARD_S);
	}
	tt_foreign_done(&g.fx, "TEST_CTDB_KEEP");
	return 0;
}

static void need_ctdb(void)
{
	if (!g.have_ctdb) {
		skip();
	}
}

/* ---- cases ---- */

/*
 * Both ctdbd and what they started at once -- the event daemon (exec'd)
 * and the recovery daemon (forked, its loop re-initialised) -- map our
 * library and no other libtevent.
 */
static void test_daemons_run_on_ours(void **state)
{
	(void)state;
	need_ctdb();
	for (int n = 0; n < NODES; n++) {
		pid_t kids[16];
		char comm[16][32];
		bool eventd = false, recoverd = false;
		int k = tt_children_of(g.ctdbd[n], kids, comm, (int)NELEM(kids));

		tt_check_maps_only_ours(&g.fx, g.ctdbd[n], "ctdbd", false);
		for (int i = 0; i < k; i++) {
			if (!tt_check_maps_only_ours(&g.fx, kids[i], comm[i],
						     true)) {
				continue;
			}
			eventd = eventd || strcmp(comm[i], "ctdb-eventd") == 0;
			recoverd = recoverd ||
				   strcmp(comm[i], "ctdb_recoverd") == 0;
		}
		if (!eventd || !recoverd) {
			fprintf(stderr, "node %d: event daemon %s, recovery daemon "
				"%s among ctdbd's %d children\n", n,
				eventd ? "found" : "missing",
				recoverd ? "found" : "missing", k);
			fail();
		}
	}
}

/*
 * A volatile database: records written on one node are read on the
 * other, which makes CTDB migrate them between the daemons over TCP; an
 * overwrite on the second node is seen on the first; a cluster-wide
 * traverse finds every record once.
 */
static void test_volatile_records(void **state)
{
	enum { KEYS = 16 };
	char key[32], val[64], want[128];
	char *out;

	(void)state;
	need_ctdb();
	free(CTDB_OK(0, "attach", "vol.tdb"));
	for (int i = 0; i < KEYS; i++) {
		snprintf(key, sizeof(key), "key%d", i);
		snprintf(val, sizeof(val), "value-%d-from-node%d", i, i % NODES);
		free(CTDB_OK(i % NODES, "writekey", "vol.tdb", key, val));
	}
	for (int i = 0; i < KEYS; i++) {
		snprintf(key, sizeof(key), "key%d", i);
		snprintf(val, sizeof(val), "value-%d-from-node%d", i, i % NODES);
		snprintf(want, sizeof(want), "Data: size:%zu ptr:[%s]",
			 strlen(val), val);
		out = CTDB_OK((i + 1) % NODES, "readkey", "vol.tdb", key);
		assert_contains(out, want);
		free(out);
	}

	free(CTDB_OK(1, "writekey", "vol.tdb", "key2", "changed-on-node1"));
	out = CTDB_OK(0, "readkey", "vol.tdb", "key2");
	assert_contains(out, "ptr:[changed-on-node1]");
	free(out);

	out = CTDB_OK(0, "catdb", "vol.tdb");
	snprintf(want, sizeof(want), "Dumped %d records", KEYS);
	assert_contains(out, want);
	free(out);
}

/*
 * A persistent database: every store is a cluster-wide transaction (a
 * global lock, then the write replicated to both nodes); values stored on
 * one node are fetched on the other, a delete is seen everywhere.
 */
static void test_persistent_records(void **state)
{
	enum { KEYS = 8 };
	char key[32], val[64];

	(void)state;
	need_ctdb();
	free(CTDB_OK(0, "attach", "per.tdb", "persistent"));
	for (int i = 0; i < KEYS; i++) {
		snprintf(key, sizeof(key), "pkey%d", i);
		snprintf(val, sizeof(val), "persistent-%d", i);
		free(CTDB_OK(i % NODES, "pstore", "per.tdb", key, val));
	}
	for (int i = 0; i < KEYS; i++) {
		snprintf(key, sizeof(key), "pkey%d", i);
		snprintf(val, sizeof(val), "persistent-%d", i);
		assert_pfetch((i + 1) % NODES, "per.tdb", key, val);
	}
	free(CTDB_OK(1, "pdelete", "per.tdb", "pkey0"));
	assert_pfetch(0, "per.tdb", "pkey0", "");
}

/*
 * Many tool processes at once on both nodes: the daemons serve several
 * clients, and concurrent persistent transactions queue on the global
 * lock.  Every write must land.
 */
static void test_concurrent_clients(void **state)
{
	enum { CLIENTS = 12 };
	char ldlog[PATH_MAX + 64], ld_output[PATH_MAX + 96];
	char out[CLIENTS][PATH_MAX + 64], key[CLIENTS][32], val[CLIENTS][64];
	pid_t pids[CLIENTS];
	char *text;

	(void)state;
	need_ctdb();
	free(CTDB_OK(0, "attach", "conc.tdb"));
	free(CTDB_OK(0, "attach", "pconc.tdb", "persistent"));
	tt_path_in(&g.fx, ldlog, sizeof(ldlog), "ld-concurrent");
	snprintf(ld_output, sizeof(ld_output), "LD_DEBUG_OUTPUT=%s", ldlog);

	for (int c = 0; c < CLIENTS; c++) {
		int node = c % NODES;
		bool persistent = c % 3 == 0;
		const char *env[] = {g.base_env[node], "CTDB_TEST_MODE=yes",
				     "LD_DEBUG=files", ld_output, NULL};
		char *argv[] = {CTDB, persistent ? "pstore" : "writekey",
				persistent ? "pconc.tdb" : "conc.tdb", key[c],
				val[c], NULL};

		snprintf(key[c], sizeof(key[c]), "c%d", c);
		snprintf(val[c], sizeof(val[c]), "client-%d", c);
		snprintf(out[c], sizeof(out[c]), "%s/concurrent%d.out", g.fx.dir,
			 c);
		pids[c] = tt_spawn(&g.fx, argv, out[c], env);
	}
	tt_wait_clients(pids, out, CLIENTS, RUN_GUARD_S);
	tt_assert_loader_used_ours(&g.fx, ldlog);

	for (int c = 0; c < CLIENTS; c++) {
		int node = (c + 1) % NODES;

		if (c % 3 == 0) {
			assert_pfetch(node, "pconc.tdb", key[c], val[c]);
		} else {
			char want[128];

			text = CTDB_OK(node, "readkey", "conc.tdb", key[c]);
			snprintf(want, sizeof(want), "ptr:[%s]", val[c]);
			assert_contains(text, want);
			free(text);
		}
	}
}

/* The probe script: logs each run for our event (tevent_probe), fails or
 * hangs when told to by the presence of a file in CTDB_BASE. */
static const char probe_script[] =
	"#!/bin/sh\n"
	/* ctdbd's own events (monitor, every few seconds) run it too */
	"[ \"$1\" = tevent_probe ] || exit 0\n"
	"echo \"$1 $$\" >> \"$CTDB_BASE/probe.log\"\n"
	"if [ -e \"$CTDB_BASE/probe.fail\" ]; then\n"
	"  echo 'failing on purpose'\n"
	"  exit 3\n"
	"fi\n"
	"if [ -e \"$CTDB_BASE/probe.hang\" ]; then\n"
	"  echo $$ > \"$CTDB_BASE/probe.pid\"\n"
	"  exec sleep 3\n"
	"fi\n"
	"exit 0\n";

/* Lines in node 0's probe.log: how often the script ran. */
static int probe_runs(void)
{
	char path[PATH_MAX + 32];
	char *text;
	int lines = 0;

	snprintf(path, sizeof(path), "%s/probe.log", g.base[0]);
	text = tt_slurp(path, NULL);
	for (char *p = text; p != NULL && *p != '\0'; p++) {
		lines += *p == '\n';
	}
	free(text);
	return lines;
}

static void flag_file(const char *name, bool on)
{
	char path[PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/%s", g.base[0], name);
	if (on) {
		tt_write_file(path, "", 0);
	} else {
		assert_int_equal(unlink(path), 0);
	}
}

/*
 * The event daemon runs a script as a child process for an event of our
 * own name: success, failure with its output kept, and a timeout. After
 * the timeout the daemon still serves, and the script's process, which
 * outlives the timeout, is reaped when it ends (the daemon's SIGCHLD
 * handling), not left a zombie.
 */
static void test_event_scripts(void **state)
{
	char path[PATH_MAX + 64], *out, *text;
	pid_t hung;
	int runs;

	(void)state;
	need_ctdb();
	snprintf(path, sizeof(path), "%s/events/legacy/50.probe.script",
		 g.base[0]);
	tt_write_file(path, probe_script, strlen(probe_script));
	assert_int_equal(chmod(path, 0755), 0);
	free(CTDB_OK(0, "event", "script", "enable", "legacy", "50.probe"));

	runs = probe_runs();
	free(CTDB_OK(0, "event", "run", "30", "legacy", "tevent_probe"));
	assert_int_equal(probe_runs(), runs + 1);
	out = CTDB_OK(0, "event", "status", "legacy", "tevent_probe");
	assert_contains(out, "50.probe");
	assert_contains(out, " OK ");
	free(out);

	flag_file("probe.fail", true);
	assert_int_not_equal(CTDB_RC(0, &out, "event", "run", "30", "legacy",
				     "tevent_probe"), 0);
	assert_contains(out, "failed");
	free(out);
	assert_int_not_equal(CTDB_RC(0, &out, "event", "status", "legacy",
				     "tevent_probe"), 0);
	assert_contains(out, "ERROR");
	assert_contains(out, "failing on purpose");
	free(out);
	flag_file("probe.fail", false);

	flag_file("probe.hang", true);
	assert_int_not_equal(CTDB_RC(0, &out, "event", "run", "1", "legacy",
				     "tevent_probe"), 0);
	assert_contains(out, "timed out");
	free(out);
	flag_file("probe.hang", false);
	assert_int_not_equal(CTDB_RC(0, &out, "event", "status", "legacy",
				     "tevent_probe"), 0);
	assert_contains(out, "TIMEDOUT");
	free(out);
	snprintf(path, sizeof(path), "%s/probe.pid", g.base[0]);
	text = tt_slurp(path, NULL);
	assert_non_null(text);
	hung = (pid_t)atoi(text);
	free(text);
	assert_true(hung > 0);
	if (!tt_wait_ended(hung, false, START_GUARD_S)) {
		fprintf(stderr, "the timed-out script (pid %d) was never reaped\n",
			(int)hung);
		fail();
	}

	runs = probe_runs();
	free(CTDB_OK(0, "event", "run", "30", "legacy", "tevent_probe"));
	assert_int_equal(probe_runs(), runs + 1);
	out = CTDB_OK(0, "event", "status", "legacy", "tevent_probe");
	assert_contains(out, " OK ");
	free(out);
}

/* "Generation:N" of `ctdb status` on node n. */
static unsigned long generation(int n)
{
	char *out = CTDB_OK(n, "status");
	const char *p = strstr(out, "Generation:");
	unsigned long gen;

	assert_non_null(p);
	gen = strtoul(p + 11, NULL, 10);
	free(out);
	return gen;
}

/*
 * A forced recovery: the recovery daemon runs its helper, the cluster
 * gets a new generation and comes back healthy, with the records of both
 * kinds of database intact.
 */
static void test_recovery(void **state)
{
	unsigned long before;
	char *out;

	(void)state;
	need_ctdb();
	free(CTDB_OK(0, "attach", "rec.tdb"));
	free(CTDB_OK(0, "attach", "prec.tdb", "persistent"));
	free(CTDB_OK(1, "writekey", "rec.tdb", "survivor", "volatile-kept"));
	free(CTDB_OK(0, "pstore", "prec.tdb", "psurvivor", "persistent-kept"));

	before = generation(0);
	free(CTDB_OK(1, "recover"));
	assert_true(wait_cluster_healthy());
	assert_int_not_equal(generation(0), before);
	assert_int_equal(generation(0), generation(1));

	out = CTDB_OK(0, "readkey", "rec.tdb", "survivor");
	assert_contains(out, "ptr:[volatile-kept]");
	free(out);
	assert_pfetch(1, "prec.tdb", "psurvivor", "persistent-kept");
}

/* Node 0's line for node 1 in `ctdb status` mentions `flag`. */
static bool node0_sees_node1(const char *flag)
{
	char *out = NULL, line[256] = "";
	const char *p;

	if (ctdb_status_of(0, &out, "status", NULL) != 0) {
		free(out);
		return false;
	}
	p = strstr(out, "pnn:1 ");
	if (p != NULL) {
		snprintf(line, sizeof(line), "%.*s", (int)strcspn(p, "\n"), p);
	}
	free(out);
	return strstr(line, flag) != NULL;
}

static void assert_stops_cleanly(int n)
{
	int status;

	free(CTDB_OK(n, "shutdown"));
	status = tt_wait_guarded(g.ctdbd[n], START_GUARD_S);
	g.ctdbd[n] = 0;
	tt_assert_stopped_cleanly(status, "ctdbd", g.log[n]);
	tt_assert_log_clean(g.log[n]);
}

/*
 * Node 1 shuts down; node 0 sees it disconnected and keeps trying to
 * reach it (its reconnect timer); node 1 starts again and the two form a
 * healthy cluster, with the persistent database carried over on both.
 */
static void test_node_restart(void **state)
{
	time_t deadline;

	(void)state;
	need_ctdb();
	free(CTDB_OK(0, "attach", "prestart.tdb", "persistent"));
	free(CTDB_OK(0, "pstore", "prestart.tdb", "before", "stored-before"));

	assert_stops_cleanly(1);
	deadline = time(NULL) + START_GUARD_S;
	while (!node0_sees_node1("DISCONNECTED")) {
		assert_true(time(NULL) <= deadline);
		usleep(100000);
	}

	start_node(1);
	assert_true(wait_cluster_healthy());
	tt_check_maps_only_ours(&g.fx, g.ctdbd[1], "ctdbd", false);

	assert_pfetch(1, "prestart.tdb", "before", "stored-before");
	free(CTDB_OK(1, "pstore", "prestart.tdb", "after", "stored-after"));
	assert_pfetch(0, "prestart.tdb", "after", "stored-after");
}

/*
 * Last: `ctdb shutdown` stops each node through its loop.  ctdbd exits
 * cleanly, takes its event and recovery daemons with it, and no log of
 * the whole run reports a panic, an abort or talloc corruption.
 */
static void test_daemons_stop_cleanly(void **state)
{
	pid_t kids[NODES][16];
	char comm[16][32];
	int nkids[NODES];

	(void)state;
	need_ctdb();
	for (int n = 0; n < NODES; n++) {
		nkids[n] = tt_children_of(g.ctdbd[n], kids[n], comm,
				       (int)NELEM(kids[n]));
		assert_true(nkids[n] >= 2);
	}
	for (int n = NODES - 1; n >= 0; n--) {
		assert_stops_cleanly(n);
		for (int i = 0; i < nkids[n]; i++) {
			if (!tt_wait_ended(kids[n][i], true, START_GUARD_S)) {
				fprintf(stderr, "node %d: child %d outlived ctdbd\n",
					n, (int)kids[n][i]);
				fail();
			}
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_daemons_run_on_ours),
		cmocka_unit_test(test_volatile_records),
		cmocka_unit_test(test_persistent_records),
		cmocka_unit_test(test_concurrent_clients),
		cmocka_unit_test(test_event_scripts),
		cmocka_unit_test(test_recovery),
		cmocka_unit_test(test_node_restart),
		cmocka_unit_test(test_daemons_stop_cleanly),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/*
 * Samba itself on our library: Debian's smbd, samba-dcerpcd, smbclient,
 * rpcclient, ldb tools and smbtorture, built against Debian's libtevent
 * 0.14.1 and never rebuilt, run with the library under test preloaded.
 * smbd drives everything through tevent (its main loop, one forked child
 * per connection, requests and queues for SMB2, threaded immediates for
 * messaging), so a file server that serves real traffic correctly is the
 * most demanding drop-in check there is.
 *
 * The group setup starts a private smbd and samba-dcerpcd (own config,
 * state and share in a temporary directory, loopback only, a free port)
 * and every case proves which libtevent served it: /proc/PID/maps for the
 * servers and their rpcd workers, the loader's own log (LD_DEBUG=files)
 * for the short-lived clients.
 *
 * Needs Debian's samba, smbclient, ldb-tools and samba-testsuite
 * (buildtools/install-deps installs them as root); without them every
 * case is skipped and says so.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tt.h"
#include "tt_foreign.h"

#define SMBD "/usr/sbin/smbd"
#define SMBCLIENT "/usr/bin/smbclient"
#define LDBADD "/usr/bin/ldbadd"
#define LDBSEARCH "/usr/bin/ldbsearch"
#define LDBMODIFY "/usr/bin/ldbmodify"
#define LDBDEL "/usr/bin/ldbdel"
#define SMBTORTURE "/usr/bin/smbtorture"
#define RPCCLIENT "/usr/bin/rpcclient"
#define DCERPCD "/usr/libexec/samba/samba-dcerpcd"

/* Hang guards only: every step normally takes well under a second. */
#define START_GUARD_S 120
#define RUN_GUARD_S 300

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static struct {
	bool have_samba;
	struct tt_foreign fx;     /* our library, the scratch directory */
	char conf[PATH_MAX + 16];
	char log[PATH_MAX + 16];  /* smbd's stdout and stderr */
	char rpc_log[PATH_MAX + 16];  /* samba-dcerpcd's */
	int port;
	pid_t smbd;
	pid_t dcerpcd;
} g;

/* ---- small file helpers ---- */



/* `len` bytes that differ from file to file (seeded), not compressible. */
static void write_pattern(const char *path, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	unsigned char *buf = malloc(len);
	size_t i;

	assert_non_null(buf);
	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (unsigned char)x;
	}
	tt_write_file(path, buf, len);
	free(buf);
}

static void assert_same_file(const char *a, const char *b)
{
	size_t la, lb;
	char *da = tt_slurp(a, &la);
	char *db = tt_slurp(b, &lb);

	if (da == NULL || db == NULL || la != lb || memcmp(da, db, la) != 0) {
		fprintf(stderr, "files differ: %s (%zu bytes) and %s (%zu bytes)\n",
			a, da != NULL ? la : 0, b, db != NULL ? lb : 0);
		fail();
	}
	free(da);
	free(db);
}




/* smbclient against the private share, running `commands` in `cwd`. */
static char *smbclient(const char *tag, const char *cwd, const char *commands)
{
	char port[16], cmd[4096];
	char *argv[] = {SMBCLIENT, "-s", g.conf, "//127.0.0.1/share", "-p", port,
			"-N", "-m", "SMB3", "-c", cmd, NULL};

	snprintf(port, sizeof(port), "%d", g.port);
	/* smbclient's lcd makes the local side of put/get explicit */
	assert_true((size_t)snprintf(cmd, sizeof(cmd), "lcd %s; %s", cwd,
				     commands) < sizeof(cmd));
	return tt_run_ok(&g.fx, tag, argv, NULL, RUN_GUARD_S);
}

/* ---- the private smbd ---- */

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
		return -1;
	}
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static void write_config(void)
{
	static const char *const subdirs[] = {
		"lock", "state", "cache", "pid", "private", "ncalrpc", "binddns",
		"share", "local", "ld",
	};
	char path[PATH_MAX + 32], text[8192];
	struct passwd *pw = getpwuid(geteuid());
	size_t i;
	int n;

	for (i = 0; i < NELEM(subdirs); i++) {
		tt_path_in(&g.fx, path, sizeof(path), subdirs[i]);
		assert_int_equal(mkdir(path, 0755), 0);
	}
	assert_non_null(pw);
	/* Guests are the user running the test, so smbd never has to switch
	 * to an account it may not be allowed to become.  As root, smbd would
	 * still map guests to root's restricted guest token; forcing the user
	 * gives the share's owner full rights. */
	n = snprintf(text, sizeof(text),
		     "[global]\n"
		     "  workgroup = TEVENTCXX\n"
		     "  netbios name = TEVENTCXX\n"
		     "  server role = standalone server\n"
		     "  smb ports = %d\n"
		     "  interfaces = 127.0.0.1\n"
		     "  bind interfaces only = yes\n"
		     "  lock directory = %s/lock\n"
		     "  state directory = %s/state\n"
		     "  cache directory = %s/cache\n"
		     "  pid directory = %s/pid\n"
		     "  private dir = %s/private\n"
		     "  ncalrpc dir = %s/ncalrpc\n"
		     "  binddns dir = %s/binddns\n"
		     /* 3: smbd logs how it went down (see the last case) */
		     "  log level = 3\n"
		     "  map to guest = Bad User\n"
		     "  guest account = %s\n"
		     "  load printers = no\n"
		     "  printcap name = /dev/null\n"
		     "  disable spoolss = yes\n"
		     /* the test starts samba-dcerpcd itself */
		     "  rpc start on demand helpers = no\n"
		     "[share]\n"
		     "  path = %s/share\n"
		     "  read only = no\n"
		     "  guest ok = yes\n"
		     "%s%s\n",
		     g.port, g.fx.dir, g.fx.dir, g.fx.dir, g.fx.dir, g.fx.dir, g.fx.dir, g.fx.dir,
		     pw->pw_name, g.fx.dir,
		     geteuid() == 0 ? "  force user = " : "",
		     geteuid() == 0 ? pw->pw_name : "");
	assert_true(n > 0 && (size_t)n < sizeof(text));
	tt_write_file(g.conf, text, (size_t)n);
}


static bool smbd_listens(void *arg)
{
	(void)arg;
	return tt_port_accepts(g.port);
}

/* samba-dcerpcd has bound the pipes the RPC case uses. */
static bool pipes_bound(void *arg)
{
	static const char *const pipes[] = {"srvsvc", "lsarpc"};
	char path[PATH_MAX + 64];
	size_t i;

	(void)arg;
	for (i = 0; i < NELEM(pipes); i++) {
		snprintf(path, sizeof(path), "%s/ncalrpc/np/%s", g.fx.dir, pipes[i]);
		if (access(path, F_OK) != 0) {
			return false;
		}
	}
	return true;
}

static int start_servers(void)
{
	char *smbd[] = {SMBD, "--foreground", "--no-process-group",
			"--debug-stdout", "-s", g.conf, NULL};
	char *dcerpcd[] = {DCERPCD, "--libexec-rpcds", "--foreground",
			   "--debug-stdout", "-s", g.conf, NULL};

	g.smbd = tt_spawn_server(&g.fx, smbd, g.log, NULL);
	if (!tt_wait_ready(&g.smbd, "smbd", g.log, START_GUARD_S,
			   smbd_listens, NULL)) {
		return -1;
	}
	g.dcerpcd = tt_spawn_server(&g.fx, dcerpcd, g.rpc_log, NULL);
	if (!tt_wait_ready(&g.dcerpcd, "samba-dcerpcd", g.rpc_log,
			   START_GUARD_S, pipes_bound, NULL)) {
		return -1;
	}
	return 0;
}

static bool have_samba(void)
{
	static const char *const tools[] = {
		SMBD, SMBCLIENT, LDBADD, LDBSEARCH, LDBMODIFY, LDBDEL,
		SMBTORTURE, RPCCLIENT, DCERPCD,
	};
	size_t i;

	for (i = 0; i < NELEM(tools); i++) {
		if (access(tools[i], X_OK) != 0) {
			fprintf(stderr, "test_samba: %s not installed (Debian's samba, "
				"smbclient, ldb-tools and samba-testsuite; buildtools/install-deps "
				"installs them as root)\n", tools[i]);
			return false;
		}
	}
	return true;
}

static int group_setup(void **state)
{
	(void)state;
	g.have_samba = have_samba();
	if (!g.have_samba) {
		return 0;
	}
	if (!tt_hold_samba_ports(TT_SAMBA_PORTS_WAIT_S)) {
		return -1;
	}
	if (tt_foreign_init(&g.fx, "/tmp/tevent-samba.XXXXXX") != 0) {
		return -1;
	}
	/* smbd serves the share as the user running the test */
	chmod(g.fx.dir, 0755);
	snprintf(g.conf, sizeof(g.conf), "%s/smb.conf", g.fx.dir);
	snprintf(g.log, sizeof(g.log), "%s/smbd.log", g.fx.dir);
	snprintf(g.rpc_log, sizeof(g.rpc_log), "%s/dcerpcd.log", g.fx.dir);
	g.port = free_port();
	if (g.port <= 0) {
		return -1;
	}
	write_config();
	return start_servers();
}

static int group_teardown(void **state)
{
	(void)state;
	tt_stop_server(&g.dcerpcd, START_GUARD_S);
	tt_stop_server(&g.smbd, START_GUARD_S);
	tt_foreign_done(&g.fx, "TEST_SAMBA_KEEP");
	return 0;
}

static void need_samba(void)
{
	if (!g.have_samba) {
		skip();
	}
}


/* smbd and samba-dcerpcd, as started, run on our library alone. */
static void test_servers_run_on_ours(void **state)
{
	(void)state;
	need_samba();
	tt_check_maps_only_ours(&g.fx, g.smbd, "smbd", false);
	tt_check_maps_only_ours(&g.fx, g.dcerpcd, "samba-dcerpcd", false);
}

/* Processes whose command line names our config, but not the servers
 * the test started: the rpcd workers. */
static int config_users(pid_t *pids, int max)
{
	char want[PATH_MAX + 32];
	pid_t found[64];
	int n = 0, k;

	snprintf(want, sizeof(want), "--configfile=%s", g.conf);
	k = tt_processes_with_arg(want, found, (int)NELEM(found));
	for (int i = 0; i < k && n < max; i++) {
		if (found[i] != g.smbd && found[i] != g.dcerpcd) {
			pids[n++] = found[i];
		}
	}
	return n;
}

/*
 * DCE/RPC over SMB named pipes: smbd hands the pipes to samba-dcerpcd's
 * rpcd workers, all tevent servers on our library.  rpcclient asks the
 * server service for its info and shares and the LSA for the domain;
 * smbclient lists the shares the same way.
 */
static void test_rpc_services(void **state)
{
	char port[16];
	char *rpc[] = {RPCCLIENT, "-s", g.conf, "-p", port, "-U%", "127.0.0.1",
		       "-c", "srvinfo; netshareenumall; lsaquery", NULL};
	char *list[] = {SMBCLIENT, "-s", g.conf, "-L", "127.0.0.1", "-p", port,
			"-N", NULL};
	pid_t workers[32];
	int n, i, checked = 0;
	char *out;

	(void)state;
	need_samba();
	snprintf(port, sizeof(port), "%d", g.port);

	out = tt_run_ok(&g.fx, "rpcclient", rpc, NULL, RUN_GUARD_S);
	assert_non_null(strstr(out, "TEVENTCXX"));       /* srvinfo */
	assert_non_null(strstr(out, "netname: share"));  /* netshareenumall */
	assert_non_null(strstr(out, "netname: IPC$"));
	assert_non_null(strstr(out, "Domain Name: TEVENTCXX"));  /* lsaquery */
	free(out);

	out = tt_run_ok(&g.fx, "smbclient-list", list, NULL, RUN_GUARD_S);
	assert_non_null(strstr(out, "share           Disk"));
	assert_non_null(strstr(out, "IPC$            IPC"));
	free(out);

	/* the workers that served those calls run on our library too (an
	 * idle one may exit while we look) */
	n = config_users(workers, (int)NELEM(workers));
	for (i = 0; i < n; i++) {
		checked += tt_check_maps_only_ours(&g.fx, workers[i], "rpcd worker", true);
	}
	assert_true(checked > 0);
}

/*
 * One session: a large and a small file up, a directory, a rename, a
 * listing, both files back down and a delete.  The large file goes
 * through smbd's asynchronous read and write paths in many requests.
 */
static void test_files_round_trip(void **state)
{
	char local[PATH_MAX + 32], a[PATH_MAX + 64], b[PATH_MAX + 64];
	char *out;

	(void)state;
	need_samba();
	tt_path_in(&g.fx, local, sizeof(local), "local");
	snprintf(a, sizeof(a), "%s/big.bin", local);
	write_pattern(a, 24u << 20, 1);
	snprintf(a, sizeof(a), "%s/small.txt", local);
	tt_write_file(a, "tevent-cxx under smbd\n", 22);

	out = smbclient("roundtrip", local,
			"put big.bin; put small.txt; mkdir sub; "
			"rename small.txt sub\\moved.txt; ls; ls sub\\*; "
			"get big.bin big.back; get sub\\moved.txt moved.back; "
			"del big.bin");
	assert_non_null(strstr(out, "moved.txt"));
	assert_non_null(strstr(out, "big.bin"));
	free(out);

	snprintf(a, sizeof(a), "%s/big.bin", local);
	snprintf(b, sizeof(b), "%s/big.back", local);
	assert_same_file(a, b);
	snprintf(a, sizeof(a), "%s/small.txt", local);
	snprintf(b, sizeof(b), "%s/moved.back", local);
	assert_same_file(a, b);
	/* the server side: deleted, moved, and the moved copy intact */
	tt_path_in(&g.fx, b, sizeof(b), "share/big.bin");
	assert_int_equal(access(b, F_OK), -1);
	tt_path_in(&g.fx, b, sizeof(b), "share/sub/moved.txt");
	assert_same_file(a, b);
}

/*
 * Several clients at once, each in a directory of its own, several round
 * trips each: separate smbd children serving in parallel.
 */
static void test_parallel_clients(void **state)
{
	enum { CLIENTS = 4, ROUNDS = 3 };
	char local[PATH_MAX + 32], out[CLIENTS][PATH_MAX + 64];
	char ldlog[PATH_MAX + 64], ld_output[PATH_MAX + 96];
	const char *extra[] = {"LD_DEBUG=files", ld_output, NULL};
	pid_t pids[CLIENTS];
	char cmds[CLIENTS][2048], port[16];
	int c, r;

	(void)state;
	need_samba();
	tt_path_in(&g.fx, local, sizeof(local), "local");
	tt_path_in(&g.fx, ldlog, sizeof(ldlog), "ld/parallel");
	snprintf(ld_output, sizeof(ld_output), "LD_DEBUG_OUTPUT=%s", ldlog);
	snprintf(port, sizeof(port), "%d", g.port);

	for (c = 0; c < CLIENTS; c++) {
		char file[PATH_MAX + 64];
		size_t len = 0;

		snprintf(file, sizeof(file), "%s/p%d.bin", local, c);
		write_pattern(file, (4u << 20) + (size_t)c * 4099, 100 + c);
		len += (size_t)snprintf(cmds[c] + len, sizeof(cmds[c]) - len,
					"lcd %s; mkdir c%d; cd c%d", local, c, c);
		for (r = 0; r < ROUNDS; r++) {
			len += (size_t)snprintf(cmds[c] + len, sizeof(cmds[c]) - len,
						"; put p%d.bin r%d.bin; get r%d.bin p%d.r%d",
						c, r, r, c, r);
		}
		assert_true(len < sizeof(cmds[c]));
	}
	for (c = 0; c < CLIENTS; c++) {
		char *argv[] = {SMBCLIENT, "-s", g.conf, "//127.0.0.1/share",
				"-p", port, "-N", "-m", "SMB3", "-c", cmds[c],
				NULL};

		snprintf(out[c], sizeof(out[c]), "%s/parallel%d.out", g.fx.dir, c);
		pids[c] = tt_spawn(&g.fx, argv, out[c], extra);
	}
	tt_wait_clients(pids, out, CLIENTS, RUN_GUARD_S);
	tt_assert_loader_used_ours(&g.fx, ldlog);
	for (c = 0; c < CLIENTS; c++) {
		char a[PATH_MAX + 64], b[PATH_MAX + 64];

		snprintf(a, sizeof(a), "%s/p%d.bin", local, c);
		for (r = 0; r < ROUNDS; r++) {
			snprintf(b, sizeof(b), "%s/p%d.r%d", local, c, r);
			assert_same_file(a, b);
			snprintf(b, sizeof(b), "%s/share/c%d/r%d.bin", g.fx.dir, c, r);
			assert_same_file(a, b);
		}
	}
}

/* "# returned N records" from ldbsearch's output, -1 if absent. */
static long returned_records(const char *out)
{
	const char *p = strstr(out, "# returned ");

	return p != NULL ? strtol(p + 11, NULL, 10) : -1;
}

/*
 * ldb runs its requests on a tevent loop: add many records, search with
 * filters, modify and delete some, and check what is left.
 */
static void test_ldb_tools(void **state)
{
	enum { RECORDS = 300 };
	char url[PATH_MAX + 32], ldif[PATH_MAX + 32], *text, *out;
	size_t cap = RECORDS * 128 + 256, len = 0;
	int i;

	(void)state;
	need_samba();
	snprintf(url, sizeof(url), "tdb://%s/test.ldb", g.fx.dir);
	tt_path_in(&g.fx, ldif, sizeof(ldif), "add.ldif");
	text = malloc(cap);
	assert_non_null(text);
	for (i = 0; i < RECORDS; i++) {
		len += (size_t)snprintf(text + len, cap - len,
					"dn: cn=r%d,dc=tevent\ncn: r%d\n"
					"objectClass: thing\nparity: %s\n\n",
					i, i, i % 2 ? "odd" : "even");
	}
	assert_true(len < cap);
	tt_write_file(ldif, text, len);

	{
		char *argv[] = {LDBADD, "-H", url, ldif, NULL};

		out = tt_run_ok(&g.fx, "ldbadd", argv, NULL, RUN_GUARD_S);
		free(out);
	}
	{
		char *argv[] = {LDBSEARCH, "-H", url, "(parity=odd)", "cn", NULL};

		out = tt_run_ok(&g.fx, "ldbsearch1", argv, NULL, RUN_GUARD_S);
		assert_int_equal(returned_records(out), RECORDS / 2);
		free(out);
	}

	/* every even record becomes odd */
	len = 0;
	for (i = 0; i < RECORDS; i += 2) {
		len += (size_t)snprintf(text + len, cap - len,
					"dn: cn=r%d,dc=tevent\nchangetype: modify\n"
					"replace: parity\nparity: odd\n\n", i);
	}
	assert_true(len < cap);
	tt_write_file(ldif, text, len);
	{
		char *argv[] = {LDBMODIFY, "-H", url, ldif, NULL};

		out = tt_run_ok(&g.fx, "ldbmodify", argv, NULL, RUN_GUARD_S);
		free(out);
	}
	{
		char *argv[] = {LDBDEL, "-H", url, "cn=r7,dc=tevent",
				"cn=r8,dc=tevent", NULL};

		out = tt_run_ok(&g.fx, "ldbdel", argv, NULL, RUN_GUARD_S);
		free(out);
	}
	{
		char *argv[] = {LDBSEARCH, "-H", url, "(parity=odd)", "cn", NULL};

		out = tt_run_ok(&g.fx, "ldbsearch2", argv, NULL, RUN_GUARD_S);
		assert_int_equal(returned_records(out), RECORDS - 2);
		assert_null(strstr(out, "cn: r7\n"));
		assert_non_null(strstr(out, "cn: r9\n"));
		free(out);
	}
	free(text);
}

/* ---- smbtorture: Samba's own test driver, on our library ---- */

/* How many "success: NAME" lines smbtorture printed for NAME (NULL: all). */
static int torture_successes(const char *out, const char *name)
{
	const char *p = out;
	int n = 0;

	while ((p = strstr(p, "success: ")) != NULL) {
		const char *t = p + 9;
		size_t len = strcspn(t, "\n");

		if ((p == out || p[-1] == '\n') &&
		    (name == NULL ||
		     (strlen(name) == len && strncmp(t, name, len) == 0))) {
			n++;
		}
		p = t;
	}
	return n;
}

/* No test reported failure or error (smbtorture's exit status aside). */
static void assert_torture_clean(const char *tag, const char *out)
{
	static const char *const bad[] = {"\nfailure: ", "\nerror: "};
	size_t i;

	for (i = 0; i < NELEM(bad); i++) {
		const char *hit = strstr(out, bad[i]);

		if (hit != NULL) {
			fprintf(stderr, "%s: %.600s\n", tag, hit + 1);
			fail();
		}
	}
}

/*
 * The copies of upstream's tevent suites built into smbtorture (4.17's
 * lib/tevent/testsuite.c and test_req.c), then Samba's messaging, irpc,
 * tfork, ldb and socket suites, which all run on tevent loops.  Left out:
 * fd1, whose 2 ms phase timer fails on a busy machine whatever the
 * library, and the resolver suite, which needs DNS.  tevent_cached_getpid
 * waits for any child, so it runs before the suites that leave children.
 */
static void test_smbtorture_local(void **state)
{
	static const char *const per_backend[] = {
		"context", "fd2", "wrapper", "free_wrapper",
	};
	static const char *const backends[] = {
		"standard", "epoll", "poll", "poll_mt",
	};
	static const char *const event_once[] = {
		"threaded_poll_mt", "multi_tevent_threaded",
		"multi_tevent_threaded_1", "multi_tevent_threaded_2",
		"tevent_cached_getpid",
	};
	static const char *const req_tests[] = {
		"create", "profile1", "profile2",
	};
	static const char *const other_suites[] = {
		"local.messaging", "local.irpc", "local.tfork", "local.ldb",
		"local.socket",
	};
	static char names[NELEM(backends) * NELEM(per_backend) +
			  NELEM(event_once)][64];
	char *argv[6 + NELEM(names) + NELEM(other_suites)];
	size_t n = 0, b, t;
	int expected = 0;
	char *out;

	(void)state;
	need_samba();
	argv[n++] = SMBTORTURE;
	argv[n++] = "ncalrpc:";
	/* the private directories, not the system's /var/lib/samba */
	argv[n++] = "-s";
	argv[n++] = g.conf;
	for (b = 0; b < NELEM(backends); b++) {
		for (t = 0; t < NELEM(per_backend); t++) {
			char *name = names[b * NELEM(per_backend) + t];

			snprintf(name, sizeof(names[0]), "local.event.%s.%s",
				 backends[b], per_backend[t]);
			argv[n++] = name;
		}
	}
	for (t = 0; t < NELEM(event_once); t++) {
		char *name = names[NELEM(backends) * NELEM(per_backend) + t];

		snprintf(name, sizeof(names[0]), "local.event.%s", event_once[t]);
		argv[n++] = name;
	}
	argv[n++] = "local.tevent_req";
	for (t = 0; t < NELEM(other_suites); t++) {
		argv[n++] = (char *)other_suites[t];
	}
	argv[n] = NULL;
	assert_true(n < NELEM(argv));

	out = tt_run_ok(&g.fx, "smbtorture-local", argv, NULL, RUN_GUARD_S);
	assert_torture_clean("smbtorture local", out);
	for (t = 0; t < NELEM(per_backend); t++) {
		assert_int_equal(torture_successes(out, per_backend[t]),
				 (int)NELEM(backends));
		expected += (int)NELEM(backends);
	}
	for (t = 0; t < NELEM(event_once); t++) {
		assert_int_equal(torture_successes(out, event_once[t]), 1);
		expected++;
	}
	for (t = 0; t < NELEM(req_tests); t++) {
		assert_int_equal(torture_successes(out, req_tests[t]), 1);
		expected++;
	}
	/* every other suite contributed at least one passing test */
	assert_true(torture_successes(out, NULL) >=
		    expected + (int)NELEM(other_suites));
	free(out);
}

/*
 * SMB2 protocol suites, smbtorture as the client and our smbd as the
 * server, both on our library: the suites that pass against a plain
 * standalone share (the same set passes on Debian's libtevent).  They
 * open files with access masks that only an smbd running as root grants
 * (as any other user they fail on Debian's libtevent just the same), so
 * they run as root only.
 */
static void test_smbtorture_smb2(void **state)
{
	static const char *const suites[] = {
		"smb2.connect", "smb2.read", "smb2.lock", "smb2.credits",
		"smb2.compound_async", "smb2.async_dosmode", "smb2.mkdir",
		"smb2.openattr", "smb2.tcon", "smb2.winattr", "smb2.deny",
		"smb2.mangle", "smb2.sdread",
	};
	char port[16];
	char *argv[8 + NELEM(suites) + 1];
	size_t n = 0, i;
	char *out;

	(void)state;
	need_samba();
	if (geteuid() != 0) {
		fprintf(stderr, "test_samba: the SMB2 suites need smbd to run "
			"as root\n");
		skip();
	}
	snprintf(port, sizeof(port), "%d", g.port);
	argv[n++] = SMBTORTURE;
	argv[n++] = "//127.0.0.1/share";
	argv[n++] = "-p";
	argv[n++] = port;
	argv[n++] = "-U%";
	argv[n++] = "-s";
	argv[n++] = g.conf;
	for (i = 0; i < NELEM(suites); i++) {
		argv[n++] = (char *)suites[i];
	}
	argv[n] = NULL;

	out = tt_run_ok(&g.fx, "smbtorture-smb2", argv, NULL, RUN_GUARD_S);
	assert_torture_clean("smbtorture smb2", out);
	assert_true(torture_successes(out, NULL) >= (int)NELEM(suites));
	free(out);
}


/*
 * Last: SIGTERM reaches both servers through their tevent signal
 * handlers.  smbd says it shuts down; samba-dcerpcd takes its rpcd
 * workers with it.  The logs of the whole run show no panic or abort.
 */
static void test_servers_stop_cleanly(void **state)
{
	pid_t left[8];
	char *log;
	int status;

	(void)state;
	need_samba();
	assert_true(g.smbd > 0 && g.dcerpcd > 0);

	status = tt_stop_server(&g.dcerpcd, START_GUARD_S);
	tt_assert_stopped_cleanly(status, "samba-dcerpcd", g.rpc_log);
	tt_assert_log_clean(g.rpc_log);

	status = tt_stop_server(&g.smbd, START_GUARD_S);
	tt_assert_stopped_cleanly(status, "smbd", g.log);
	tt_assert_log_clean(g.log);
	log = tt_slurp(g.log, NULL);
	assert_non_null(log);
	if (strstr(log, "Server exit (termination signal)") == NULL) {
		fprintf(stderr, "smbd did not report its shutdown\n");
		tt_dump(g.log);
		fail();
	}
	free(log);

	/* the workers go with samba-dcerpcd (a hang guard, not a timing) */
	for (int i = 0; i < START_GUARD_S * 10; i++) {
		if (config_users(left, (int)NELEM(left)) == 0) {
			return;
		}
		usleep(100000);
	}
	fprintf(stderr, "rpcd workers still running after samba-dcerpcd\n");
	fail();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_servers_run_on_ours),
		cmocka_unit_test(test_rpc_services),
		cmocka_unit_test(test_files_round_trip),
		cmocka_unit_test(test_parallel_clients),
		cmocka_unit_test(test_ldb_tools),
		cmocka_unit_test(test_smbtorture_local),
		cmocka_unit_test(test_smbtorture_smb2),
		cmocka_unit_test(test_servers_stop_cleanly),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/*
 * A Samba Active Directory domain controller on our library: Debian's
 * `samba` (the AD server: LDAP, Kerberos KDC, DNS, RPC, and smbd and
 * winbindd under it), provisioned by `samba-tool` and used through
 * ldbsearch, samba-tool, smbclient and rpcclient -- all built against
 * Debian's libtevent 0.14.1 and never rebuilt, run with the library under
 * test preloaded.
 *
 * The AD server is tevent from top to bottom: a prefork process model
 * (tfork waiters, masters, pre-forked workers, each forked child carrying
 * on with its loop), stream and datagram servers for every protocol, TLS
 * streams for LDAPS, and the Python tools drive the same libraries from
 * an interpreter.
 *
 * The group setup provisions a fresh domain in a temporary directory and
 * starts `samba` on 127.0.0.1 only (AD's ports are fixed: 53, 88, 135,
 * 389, 445, ...; they must be free there).  Every case proves which
 * libtevent ran: /proc/PID/maps for the servers, the loader's log for each
 * client run.
 *
 * Needs root (the AD server switches users) and Debian's samba-ad-dc and
 * samba-ad-provision (buildtools/install-deps installs them as root);
 * without them every case is skipped and says so.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tt.h"
#include "tt_foreign.h"

#define SAMBA "/usr/sbin/samba"
#define SAMBA_TOOL "/usr/bin/samba-tool"
#define LDBSEARCH "/usr/bin/ldbsearch"
#define SMBCLIENT "/usr/bin/smbclient"
#define RPCCLIENT "/usr/bin/rpcclient"
#define DSDB_MODULE "/usr/lib/x86_64-linux-gnu/samba/ldb/samba_dsdb.so"
#define PROVISION_DATA "/usr/share/samba/setup/ad-schema"

#define REALM "TEVENTCXX.TEST"
#define DNS_DOMAIN "teventcxx.test"
#define DOMAIN "TEVENTCXX"
#define BASE_DN "DC=teventcxx,DC=test"
#define ADMIN_PASSWORD "Adm1n.Tevent-Cxx"
#define ADMIN "Administrator%" ADMIN_PASSWORD
#define ADDR "127.0.0.1"
/* The address the DC's own DNS record carries.  Provisioning registers no
 * record for 127.0.0.1 itself; clients never use this one to connect. */
#define RECORD_ADDR "127.31.41.59"

/* Hang guards only: provisioning takes a few seconds, a client run well
 * under one. */
#define START_GUARD_S 300
#define RUN_GUARD_S 180

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The TCP ports the AD server listens on; all must be free at the start. */
static const int ad_ports[] = {53, 88, 135, 139, 389, 445, 464, 636, 3268,
			       3269};

static struct {
	bool have_ad;
	struct tt_foreign fx;
	char conf[PATH_MAX + 32];    /* the provisioned smb.conf */
	char log[PATH_MAX + 32];     /* samba's stdout and stderr */
	char krb5[PATH_MAX + 32];    /* krb5.conf naming our KDC */
	char krb5_env[PATH_MAX + 48];
	char ccache_env[PATH_MAX + 48];
	pid_t samba;
	unsigned runs;
} g;

static int config_users(pid_t *pids, int max);

/* ---- clients ---- */

/* Runs argv (NULL-terminated) with our library; the wait status, output in
 * *out. */
static int run(char **out, char *const argv[])
{
	const char *env[] = {g.krb5_env, g.ccache_env, NULL};
	char tag[64];
	const char *base = strrchr(argv[0], '/');

	snprintf(tag, sizeof(tag), "%u-%s", g.runs++,
		 base != NULL ? base + 1 : argv[0]);
	return tt_run_program(&g.fx, tag, argv, env, RUN_GUARD_S, out);
}

static char *run_ok(char *const argv[])
{
	char *out = NULL;
	int status = run(&out, argv);

	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "%s ended with status 0x%x:\n%s\n", argv[0],
			status, out);
		fail();
	}
	return out;
}

static void assert_contains(const char *text, const char *want)
{
	if (strstr(text, want) == NULL) {
		fprintf(stderr, "expected \"%s\" in:\n%s\n", want, text);
		fail();
	}
}

static void assert_lacks(const char *text, const char *unwanted)
{
	if (strstr(text, unwanted) != NULL) {
		fprintf(stderr, "did not expect \"%s\" in:\n%s\n", unwanted,
			text);
		fail();
	}
}

/* ---- the private domain controller ---- */

static bool port_free(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0) {
		close(fd);
	}
	return ok;
}

/* Every AD port accepts connections: all services are up. */
static bool all_ports_accept(void *arg)
{
	(void)arg;
	for (size_t i = 0; i < NELEM(ad_ports); i++) {
		if (!tt_port_accepts(ad_ports[i])) {
			return false;
		}
	}
	return true;
}

/* A fresh domain in <dir>/dc, its smb.conf keeping every path there. */
static int provision(void)
{
	char target[PATH_MAX + 32], opt[6][PATH_MAX + 64];
	char *out = NULL;
	int status;

	snprintf(target, sizeof(target), "--targetdir=%s/dc", g.fx.dir);
	snprintf(opt[0], sizeof(opt[0]), "--option=interfaces=%s", ADDR);
	snprintf(opt[1], sizeof(opt[1]), "--option=bind interfaces only=yes");
	snprintf(opt[2], sizeof(opt[2]), "--option=log file=%s/dc/log.%%m",
		 g.fx.dir);
	snprintf(opt[3], sizeof(opt[3]), "--option=pid directory=%s/dc",
		 g.fx.dir);
	snprintf(opt[4], sizeof(opt[4]), "--option=ncalrpc dir=%s/dc/ncalrpc",
		 g.fx.dir);
	/* names outside the domain are never looked up elsewhere */
	snprintf(opt[5], sizeof(opt[5]), "--option=dns forwarder=%s", ADDR);

	char *argv[] = {SAMBA_TOOL, "domain", "provision",
			"--realm=" REALM, "--domain=" DOMAIN,
			"--adminpass=" ADMIN_PASSWORD,
			"--server-role=dc", "--dns-backend=SAMBA_INTERNAL",
			"--host-name=dc1", "--host-ip=" RECORD_ADDR, target,
			opt[0], opt[1], opt[2], opt[3], opt[4], opt[5], NULL};

	status = run(&out, argv);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "provisioning failed (0x%x):\n%s\n", status, out);
		free(out);
		return -1;
	}
	free(out);
	snprintf(g.conf, sizeof(g.conf), "%s/dc/etc/smb.conf", g.fx.dir);
	return 0;
}

/* Kerberos clients find the KDC here, not through DNS. */
static void write_krb5_conf(void)
{
	static const char text[] =
		"[libdefaults]\n"
		"  default_realm = " REALM "\n"
		"  dns_lookup_realm = false\n"
		"  dns_lookup_kdc = false\n"
		"[realms]\n"
		"  " REALM " = {\n"
		"    kdc = " ADDR "\n"
		"  }\n";

	tt_path_in(&g.fx, g.krb5, sizeof(g.krb5), "krb5.conf");
	tt_write_file(g.krb5, text, strlen(text));
	snprintf(g.krb5_env, sizeof(g.krb5_env), "KRB5_CONFIG=%s", g.krb5);
	snprintf(g.ccache_env, sizeof(g.ccache_env), "KRB5CCNAME=FILE:%s/ccache",
		 g.fx.dir);
}

static bool have_ad(void)
{
	static const char *const needed[] = {
		SAMBA, SAMBA_TOOL, LDBSEARCH, SMBCLIENT, RPCCLIENT, DSDB_MODULE,
		PROVISION_DATA,
	};

	if (geteuid() != 0) {
		fprintf(stderr, "test_samba_ad: an AD domain controller needs "
			"root\n");
		return false;
	}
	for (size_t i = 0; i < NELEM(needed); i++) {
		if (access(needed[i], R_OK) != 0) {
			fprintf(stderr, "test_samba_ad: %s not installed (Debian's "
				"samba-ad-dc and samba-ad-provision; "
				"buildtools/install-deps installs them as root)\n",
				needed[i]);
			return false;
		}
	}
	return true;
}

static int group_setup(void **state)
{
	char *argv[] = {SAMBA, "--foreground", "--no-process-group",
			"--debug-stdout", "-s", g.conf, NULL};

	(void)state;
	g.have_ad = have_ad();
	if (!g.have_ad) {
		return 0;
	}
	if (!tt_hold_samba_ports(TT_SAMBA_PORTS_WAIT_S)) {
		return -1;
	}
	for (size_t i = 0; i < NELEM(ad_ports); i++) {
		if (!port_free(ad_ports[i])) {
			fprintf(stderr, "test_samba_ad: port %d on %s is taken; the "
				"domain controller needs it\n", ad_ports[i], ADDR);
			return -1;
		}
	}
	if (tt_foreign_init(&g.fx, "/tmp/tevent-samba-ad.XXXXXX") != 0) {
		return -1;
	}
	chmod(g.fx.dir, 0755);
	snprintf(g.log, sizeof(g.log), "%s/samba.log", g.fx.dir);
	write_krb5_conf();
	if (provision() != 0) {
		return -1;
	}
	g.samba = tt_spawn_server(&g.fx, argv, g.log, NULL);
	return tt_wait_ready(&g.samba, "samba", g.log, START_GUARD_S,
			     all_ports_accept, NULL) ? 0 : -1;
}

static int group_teardown(void **state)
{
	pid_t left[64];
	int n;

	(void)state;
	tt_stop_server(&g.samba, START_GUARD_S);
	/* helpers a failed case left behind would outlive the test */
	n = g.conf[0] != '\0' ? config_users(left, (int)NELEM(left)) : 0;
	for (int i = 0; i < n; i++) {
		kill(left[i], SIGKILL);
	}
	tt_foreign_done(&g.fx, "TEST_SAMBA_AD_KEEP");
	return 0;
}

static void need_ad(void)
{
	if (!g.have_ad) {
		skip();
	}
}

/* ---- processes ---- */

/* Every descendant of root (not root itself), live ones only. */
static int descendants(pid_t root, pid_t *out, int max)
{
	int n = 0, grew = 1;

	/* pids are not ordered by ancestry: sweep until nothing is added */
	while (grew) {
		DIR *d = opendir("/proc");
		struct dirent *e;

		assert_non_null(d);
		grew = 0;
		while ((e = readdir(d)) != NULL && n < max) {
			pid_t pid = (pid_t)atoi(e->d_name), ppid;
			char state;
			bool known = false, parent_in = false;

			if (pid <= 0 || !tt_proc_stat(pid, &ppid, &state, NULL, 0) ||
			    state == 'Z') {
				continue;
			}
			for (int i = 0; i < n; i++) {
				known = known || out[i] == pid;
				parent_in = parent_in || out[i] == ppid;
			}
			if (!known && (ppid == root || parent_in)) {
				out[n++] = pid;
				grew = 1;
			}
		}
		closedir(d);
	}
	return n;
}

static bool has_comm_prefix(pid_t pid, const char *prefix)
{
	char path[64], *text;
	bool match;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	text = tt_slurp(path, NULL);
	match = text != NULL && strncmp(text, prefix, strlen(prefix)) == 0;
	free(text);
	return match;
}

/* The helpers smbd starts on demand (samba-dcerpcd and its rpcd workers):
 * not samba's descendants, they name our config on their command line. */
static int config_users(pid_t *pids, int max)
{
	char want[PATH_MAX + 48];

	snprintf(want, sizeof(want), "--configfile=%s", g.conf);
	return tt_processes_with_arg(want, pids, max);
}

/* ---- DNS ---- */

/*
 * Asks the AD's DNS server for the A record of `name`, over UDP or TCP.
 * Returns the DNS response code (0: found, 3: no such name), with the
 * first address in `addr`, or -1 when no answer could be read.
 */
static int dns_query_a(const char *name, bool tcp, char *addr, size_t len)
{
	unsigned char q[512], r[1024];
	size_t n = 12;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
	struct timeval tv = {10, 0};
	ssize_t got;
	int fd, rcode;

	memset(q, 0, sizeof(q));
	q[0] = 0x7e;
	q[1] = 0x57;           /* id */
	q[2] = 0x01;           /* recursion desired */
	q[5] = 1;              /* one question */
	for (const char *label = name; *label != '\0';) {
		size_t l = strcspn(label, ".");

		q[n++] = (unsigned char)l;
		memcpy(q + n, label, l);
		n += l;
		label += l + (label[l] == '.');
	}
	q[n++] = 0;
	q[n++] = 0;
	q[n++] = 1;            /* type A */
	q[n++] = 0;
	q[n++] = 1;            /* class IN */

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	if (tcp) {
		/* over TCP each message carries a two-byte length first */
		unsigned char framed[2 + sizeof(q)];

		framed[0] = (unsigned char)(n >> 8);
		framed[1] = (unsigned char)n;
		memcpy(framed + 2, q, n);
		assert_int_equal(send(fd, framed, n + 2, 0), (ssize_t)(n + 2));
		got = recv(fd, r, sizeof(r), MSG_WAITALL);
		if (got >= 2) {
			size_t want = ((size_t)r[0] << 8) | r[1];

			got -= 2;
			memmove(r, r + 2, (size_t)got);
			if ((size_t)got < want) {
				got = -1;
			}
		} else {
			got = -1;
		}
	} else {
		assert_int_equal(send(fd, q, n, 0), (ssize_t)n);
		got = recv(fd, r, sizeof(r), 0);
	}
	close(fd);
	if (got < 12 || r[0] != 0x7e || r[1] != 0x57) {
		return -1;
	}
	rcode = r[3] & 0x0f;

	/* skip the question (echoed uncompressed), then walk the answers */
	size_t p = 12, ancount = ((size_t)r[6] << 8) | r[7];

	while (p < (size_t)got && r[p] != 0) {
		p += r[p] + 1u;
	}
	p += 5;
	for (size_t i = 0; i < ancount && p < (size_t)got; i++) {
		size_t rdlen;
		unsigned type;

		/* the owner name: labels, possibly ending in a pointer */
		while (p < (size_t)got && r[p] != 0 && (r[p] & 0xc0) != 0xc0) {
			p += r[p] + 1u;
		}
		p += p < (size_t)got && (r[p] & 0xc0) == 0xc0 ? 2 : 1;
		if (p + 10 > (size_t)got) {
			break;
		}
		type = ((unsigned)r[p] << 8) | r[p + 1];
		rdlen = ((size_t)r[p + 8] << 8) | r[p + 9];
		p += 10;
		if (type == 1 && rdlen == 4 && p + 4 <= (size_t)got) {
			inet_ntop(AF_INET, r + p, addr, (socklen_t)len);
			return rcode;
		}
		p += rdlen;
	}
	snprintf(addr, len, "(none)");
	return rcode;
}

/* ---- cases ---- */

/*
 * The root process and every process it forked -- tfork waiters, service
 * masters, pre-forked workers, and the smbd and winbindd it started --
 * map our library and no other libtevent; the services that must be
 * there are.
 */
static void test_processes_run_on_ours(void **state)
{
	pid_t pids[256];
	int n, checked = 0;
	bool smbd = false, winbindd = false, ldap = false, kdc = false;

	(void)state;
	need_ad();
	tt_check_maps_only_ours(&g.fx, g.samba, "samba", false);
	n = descendants(g.samba, pids, (int)NELEM(pids));
	for (int i = 0; i < n; i++) {
		/* samba also runs helper programs (samba_dnsupdate, ...): one
		 * caught between exec and loading Samba's libraries maps no
		 * libtevent yet; a foreign one fails the test in any case */
		if (tt_maps_tevent(&g.fx, pids[i], "samba child") != 1) {
			continue;
		}
		checked++;
		smbd = smbd || has_comm_prefix(pids[i], "smbd");
		winbindd = winbindd || has_comm_prefix(pids[i], "winbindd");
		/* a master ("ldap[master]") or a worker ("ldap(0)"): the
		 * workers may not be forked yet when the ports accept */
		ldap = ldap || has_comm_prefix(pids[i], "ldap");
		kdc = kdc || has_comm_prefix(pids[i], "kdc");
	}
	fprintf(stderr, "%d processes under samba run on ours\n", checked);
	if (!smbd || !winbindd || !ldap || !kdc) {
		fprintf(stderr, "missing among them: %s%s%s%s\n",
			smbd ? "" : "smbd ", winbindd ? "" : "winbindd ",
			ldap ? "" : "ldap ", kdc ? "" : "kdc");
		fail();
	}
}

/* LDAP, plain and over TLS (LDAPS), with NTLM authentication. */
static void test_ldap(void **state)
{
	char *plain[] = {LDBSEARCH, "-H", "ldap://" ADDR, "-U", ADMIN,
			 "-b", BASE_DN, "(sAMAccountName=krbtgt)",
			 "sAMAccountName", NULL};
	/* a simple bind, which the server only allows inside TLS */
	char *tls[] = {LDBSEARCH, "-H", "ldaps://" ADDR,
		       "--simple-bind-dn=CN=Administrator,CN=Users," BASE_DN,
		       "--password=" ADMIN_PASSWORD,
		       "--option=tls verify peer=no_check", "-b", BASE_DN,
		       "(objectClass=domain)", "dn", NULL};
	char *out;

	(void)state;
	need_ad();
	out = run_ok(plain);
	assert_contains(out, "sAMAccountName: krbtgt");
	assert_contains(out, "# returned");
	free(out);

	out = run_ok(tls);
	assert_contains(out, "dn: " BASE_DN);
	free(out);
}

static char *smbclient_ls(const char *user_pass, bool expect_ok)
{
	char *argv[] = {SMBCLIENT, "//" ADDR "/netlogon", "-U", (char *)user_pass,
			"-W", DOMAIN, "-c", "ls", NULL};
	char *out = NULL;
	int status = run(&out, argv);

	if (expect_ok) {
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "smbclient as %s failed (0x%x):\n%s\n",
				user_pass, status, out);
			fail();
		}
	} else {
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
	}
	return out;
}

/*
 * A user's life through samba-tool over LDAP: created, listed, logged on
 * with over SMB, given a new password, disabled (logons refused),
 * enabled, deleted.
 */
static void test_user_lifecycle(void **state)
{
	char *create[] = {SAMBA_TOOL, "user", "create", "tuser", "Us3r.Pass-One",
			  "-H", "ldap://" ADDR, "-U", ADMIN, NULL};
	char *list[] = {SAMBA_TOOL, "user", "list", "-H", "ldap://" ADDR, "-U",
			ADMIN, NULL};
	char *setpw[] = {SAMBA_TOOL, "user", "setpassword", "tuser",
			 "--newpassword=Us3r.Pass-Two", "-H", "ldap://" ADDR,
			 "-U", ADMIN, NULL};
	char *disable[] = {SAMBA_TOOL, "user", "disable", "tuser", "-H",
			   "ldap://" ADDR, "-U", ADMIN, NULL};
	char *enable[] = {SAMBA_TOOL, "user", "enable", "tuser", "-H",
			  "ldap://" ADDR, "-U", ADMIN, NULL};
	char *del[] = {SAMBA_TOOL, "user", "delete", "tuser", "-H",
		       "ldap://" ADDR, "-U", ADMIN, NULL};
	char *out;

	(void)state;
	need_ad();
	free(run_ok(create));
	out = run_ok(list);
	assert_contains(out, "tuser\n");
	free(out);
	free(smbclient_ls("tuser%Us3r.Pass-One", true));

	free(run_ok(setpw));
	free(smbclient_ls("tuser%Us3r.Pass-Two", true));
	out = smbclient_ls("tuser%Wrong.Pass-Three", false);
	assert_contains(out, "NT_STATUS_LOGON_FAILURE");
	free(out);

	free(run_ok(disable));
	out = smbclient_ls("tuser%Us3r.Pass-Two", false);
	assert_contains(out, "NT_STATUS_ACCOUNT_DISABLED");
	free(out);
	free(run_ok(enable));
	free(smbclient_ls("tuser%Us3r.Pass-Two", true));

	free(run_ok(del));
	out = run_ok(list);
	assert_lacks(out, "tuser\n");
	free(out);
}

/*
 * Kerberos: the KDC issues the tickets for an SMB session that allows no
 * other authentication, and a file makes the round trip.
 */
static void test_kerberos_smb(void **state)
{
	char local[PATH_MAX + 32], back[PATH_MAX + 48], cmd[PATH_MAX * 2];
	char *argv[] = {SMBCLIENT, "//DC1/netlogon", "-I", ADDR,
			"--use-kerberos=required", "--realm=" REALM, "-W", DOMAIN,
			"-U", ADMIN, "-c", cmd, NULL};
	char *out, *copy;

	(void)state;
	need_ad();
	tt_path_in(&g.fx, local, sizeof(local), "krb-file.txt");
	snprintf(back, sizeof(back), "%s.back", local);
	tt_write_file(local, "carried by a Kerberos session\n", 30);
	snprintf(cmd, sizeof(cmd), "lcd %s; put krb-file.txt; ls; "
		 "get krb-file.txt krb-file.txt.back; del krb-file.txt",
		 g.fx.dir);
	out = run_ok(argv);
	assert_contains(out, "krb-file.txt");
	free(out);
	copy = tt_slurp(back, NULL);
	assert_non_null(copy);
	assert_string_equal(copy, "carried by a Kerberos session\n");
	free(copy);
}

/*
 * DCE/RPC: SAMR and LSA from the AD's RPC server, the server service from
 * the samba-dcerpcd that smbd starts on demand.
 */
static void test_rpc(void **state)
{
	char *argv[] = {RPCCLIENT, ADDR, "-U", ADMIN, "-W", DOMAIN, "-c",
			"enumdomusers; lsaquery; srvinfo", NULL};
	char *out;
	pid_t helpers[64];
	int n, checked = 0;

	(void)state;
	need_ad();
	out = run_ok(argv);
	assert_contains(out, "user:[Administrator]");
	assert_contains(out, "user:[krbtgt]");
	assert_contains(out, "Domain Name: " DOMAIN);
	free(out);

	/* smbd started samba-dcerpcd for the named pipes: ours too (an idle
	 * worker may exit while we look) */
	n = config_users(helpers, (int)NELEM(helpers));
	for (int i = 0; i < n; i++) {
		checked += tt_check_maps_only_ours(&g.fx, helpers[i],
						   "rpc helper", true);
	}
	assert_true(checked > 0);
}

/*
 * The AD's DNS server over UDP and TCP: the DC's own record, a record
 * added through the DNS management RPC, and a name that does not exist.
 */
static void test_dns(void **state)
{
	char *add[] = {SAMBA_TOOL, "dns", "add", ADDR, DNS_DOMAIN, "probe", "A",
		       "127.1.2.3", "-U", ADMIN, NULL};
	char addr[64];

	(void)state;
	need_ad();
	assert_int_equal(dns_query_a("dc1." DNS_DOMAIN, false, addr,
				     sizeof(addr)), 0);
	assert_string_equal(addr, RECORD_ADDR);

	free(run_ok(add));
	assert_int_equal(dns_query_a("probe." DNS_DOMAIN, false, addr,
				     sizeof(addr)), 0);
	assert_string_equal(addr, "127.1.2.3");
	assert_int_equal(dns_query_a("probe." DNS_DOMAIN, true, addr,
				     sizeof(addr)), 0);
	assert_string_equal(addr, "127.1.2.3");

	assert_int_equal(dns_query_a("nosuchname." DNS_DOMAIN, false, addr,
				     sizeof(addr)), 3);
}

/*
 * Last: SIGTERM reaches samba's root process through its tevent signal
 * handler; it ends, every process under it goes too, the on-demand RPC
 * helpers end on their own SIGTERM, and the server's output shows no
 * panic or abort.
 */
static void test_stops_cleanly(void **state)
{
	pid_t pids[256];
	int n, helpers, status;

	(void)state;
	need_ad();
	n = descendants(g.samba, pids, (int)NELEM(pids));
	assert_true(n > 0);
	helpers = config_users(pids + n, (int)NELEM(pids) - n);
	status = tt_stop_server(&g.samba, START_GUARD_S);
	/* samba's tevent handler for SIGTERM ends the process with
	 * _exit(127); the signal's default action would look different */
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 127) {
		fprintf(stderr, "samba ended with status 0x%x, not exit(127) "
			"from its SIGTERM handler\n", status);
		tt_dump(g.log);
		fail();
	}
	tt_assert_log_clean(g.log);

	/* samba-dcerpcd is not samba's child and stays until told to go
	 * (on Debian's library as well) */
	for (int i = n; i < n + helpers; i++) {
		kill(pids[i], SIGTERM);
	}
	for (int i = 0; i < n + helpers; i++) {
		if (!tt_wait_ended(pids[i], true, START_GUARD_S)) {
			fprintf(stderr, "pid %d outlived samba\n", (int)pids[i]);
			fail();
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_processes_run_on_ours),
		cmocka_unit_test(test_ldap),
		cmocka_unit_test(test_user_lifecycle),
		cmocka_unit_test(test_kerberos_smb),
		cmocka_unit_test(test_rpc),
		cmocka_unit_test(test_dns),
		cmocka_unit_test(test_stops_cleanly),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

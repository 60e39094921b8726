/*
 * Helpers for tests that run other people's tevent programs (Debian's
 * Samba and CTDB binaries, built against Debian's libtevent) on the
 * library under test: a private scratch directory, starting programs with
 * our library preloaded, hang guards, and the checks that prove which
 * libtevent a process really used.
 *
 * Needs <cmocka.h> (failures are cmocka failures) and <sys/types.h>.
 */
#ifndef TT_FOREIGN_H
#define TT_FOREIGN_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tt_foreign {
	char ours[PATH_MAX];           /* real path of the library under test */
	/* "LD_PRELOAD=<ours>"; under ASan also the runtime (see the .c) */
	char preload[2 * PATH_MAX + 48];
	char dir[PATH_MAX];            /* private scratch directory */
	void (*child_setup)(void);     /* run in each child before exec */
};

/*
 * Fills `f` for the library under test (no child_setup) and creates its
 * scratch directory from `dir_template` (mkdtemp() pattern, "...XXXXXX").
 * 0 or -1.
 */
int tt_foreign_init(struct tt_foreign *f, const char *dir_template);

/*
 * In an ASan build the programs a test starts can get the ASan runtime
 * preloaded ahead of everything, so that it serves all their memory and
 * catches our library using memory freed by anyone.  On unless
 * TT_ASAN_FIRST=0 is in the environment; nothing changes in other builds.
 *
 * tt_foreign_asan_first(): for every program started from now on.
 * tt_spawn_server(): tt_spawn() with it for this one program only.  Samba's
 * SMB clients must not get it: smbclient and rpcclient deadlock at
 * start-up under a preloaded ASan runtime (in glibc's bindtextdomain(),
 * called by Heimdal), with Debian's libtevent as well.
 */
void tt_foreign_asan_first(struct tt_foreign *f);

/* Removes the scratch directory, unless `keep_env` is set in the
 * environment (to look at the logs after a run). */
void tt_foreign_done(const struct tt_foreign *f, const char *keep_env);

/* `dir`/`name` into buf; fails the test if it does not fit. */
void tt_path_in(const struct tt_foreign *f, char *buf, size_t len,
		const char *name);

/* Whole file, NUL-terminated, malloc'd; NULL if it cannot be read. */
char *tt_slurp(const char *path, size_t *len_out);
void tt_write_file(const char *path, const void *data, size_t len);
/* Removes a file or a directory tree; errors are ignored. */
void tt_rm_tree(const char *path);
/* The end of a log (the last 8 KiB) to stderr, where a failure's reason is. */
void tt_dump(const char *path);

/*
 * Starts argv[0] with our library preloaded, plus the "NAME=value" entries
 * of `extra` (NULL-terminated, may be NULL), in the scratch directory,
 * stdout and stderr appended to `out`, stdin from /dev/null.  The child
 * gets a process group of its own (servers that signal their group must
 * not hit the test) and is killed when the test dies.
 */
pid_t tt_spawn(const struct tt_foreign *f, char *const argv[],
	       const char *out, const char *const *extra);

pid_t tt_spawn_server(struct tt_foreign *f, char *const argv[],
		      const char *out, const char *const *extra);

/* waitpid() with a hang guard: a child still running after guard_s is
 * killed.  Returns the wait status. */
int tt_wait_guarded(pid_t pid, int guard_s);

/* Waits (guarded) for n clients started with tt_spawn(); fails the test,
 * with the output of the first that did not exit 0, if any did not.
 * out[i] is client i's output file. */
void tt_wait_clients(const pid_t *pids, char (*out)[PATH_MAX + 64], int n,
		     int guard_s);

/* SIGTERM, then tt_wait_guarded(); the wait status (0 when *pid is 0).
 * *pid becomes 0. */
int tt_stop_server(pid_t *pid, int guard_s);

/* Polls ready(arg) until it holds; false if `*pid` ended first (then
 * *pid = 0) or guard_s ran out.  Dumps `log` on failure. */
bool tt_wait_ready(pid_t *pid, const char *what, const char *log,
		   int guard_s, bool (*ready)(void *arg), void *arg);

/*
 * Every libtevent the loader mapped for the programs that wrote
 * LD_DEBUG=files logs named <prefix>.<pid> is ours, and there is at least
 * one.  The logs are removed.
 */
void tt_assert_loader_used_ours(const struct tt_foreign *f,
				const char *prefix);

/*
 * Runs a program to completion with our library (tt_spawn(), `extra`
 * added), output in <dir>/<tag>.out, proves through the loader's log that
 * it used ours, and returns its wait status.  With `out_text`, the output
 * is returned there (malloc'd).
 */
int tt_run_program(const struct tt_foreign *f, const char *tag,
		   char *const argv[], const char *const *extra, int guard_s,
		   char **out_text);

/* tt_run_program() that must exit with status 0; returns the output. */
char *tt_run_ok(const struct tt_foreign *f, const char *tag,
		char *const argv[], const char *const *extra, int guard_s);

/*
 * Which libtevent pid maps: 1 ours (and no other), 0 none (a process that
 * exec'd a program without tevent), -1 gone.  Fails the test when it maps
 * another libtevent.
 */
int tt_maps_tevent(const struct tt_foreign *f, pid_t pid, const char *what);

/*
 * `pid` has our library mapped, and no other libtevent.  Returns false
 * only for a process that is gone (allowed when `may_be_gone`).
 */
bool tt_check_maps_only_ours(const struct tt_foreign *f, pid_t pid,
			     const char *what, bool may_be_gone);

/* Live processes (zombies have no command line) with `arg` as one of
 * their arguments, up to max; how many. */
int tt_processes_with_arg(const char *arg, pid_t *pids, int max);

/* Parent, state (as in ps) and, with `comm`, the command name of pid from
 * /proc; false when it is gone. */
bool tt_proc_stat(pid_t pid, pid_t *ppid, char *state, char *comm,
		  size_t comm_len);

/* The live children of `parent` (up to max) and their command names;
 * how many. */
int tt_children_of(pid_t parent, pid_t *pids, char (*comm)[32], int max);

/* Polls until pid is gone or, if `zombie_ok`, a zombie (an orphan's zombie
 * is for init to reap, and not every container's init does); false when
 * guard_s ran out. */
bool tt_wait_ended(pid_t pid, bool zombie_ok, int guard_s);

/* Something accepts TCP connections on 127.0.0.1:port. */
bool tt_port_accepts(int port);

/*
 * Samba's servers bind fixed ports (the endpoint mapper's 135, a domain
 * controller's LDAP, Kerberos and DNS ports), so two tests that start them
 * must not run at once, wherever they were started from: another checkout,
 * another run-tests, a test run by hand. This takes a lock that every such
 * test shares, kept until the process ends, waiting up to guard_s for it
 * (and saying so). False, after saying why, if it never came free.
 */
bool tt_hold_samba_ports(int guard_s);
/* Longer than either Samba test takes (about 100 s at most, seen under
 * valgrind on a loaded machine). */
#define TT_SAMBA_PORTS_WAIT_S 420

/* The log has no panic, abort or talloc corruption report. */
void tt_assert_log_clean(const char *log_path);

/* Ended by itself (status 0) or by the SIGTERM it was sent. */
void tt_assert_stopped_cleanly(int status, const char *what,
			       const char *log_path);

#endif /* TT_FOREIGN_H */

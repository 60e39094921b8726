/*
 * Random tevent programs for differential testing (issue #5, part B).
 *
 *   tevent_script --seed N [--ops K] [--backend NAME] [--exclude LIST]
 *                 [--debug] [--fd-error] [--reset-immediate] [--call-depth]
 *
 * Built once against Debian's /usr/include/tevent.h and libtevent.so.0;
 * buildtools/run-diff runs the same seed with Debian's library and with
 * ours (LD_LIBRARY_PATH) and compares the output line by line.
 *
 * The seed drives everything (own PRNG, no clock): which backend, which
 * objects exist (fd, timer, immediate and signal events, requests, queues,
 * wrapper contexts that events, request timers and posts are made on),
 * what the top level does between loop turns and what every handler does
 * when it runs (create, free -- itself, others, their parents --, update,
 * reschedule, write to sockets, raise signals, finish requests, put a
 * queue trigger back, nested loop turns, tevent_req_poll(), tag events
 * and queue entries, describe requests with tevent_req_print(), profile
 * requests and print the profiles).  A loop turn is sometimes a
 * tevent_loop_until(), a quarter of the programs fork halfway (see
 * fork_here()), and a fifth call tevent_re_initialise() now and then (see
 * reinit_context()); a third install a nesting hook that checks the
 * levels it is told (nest_hook()).  Every handler invocation and every action is one
 * trace line (a tagged event's lines show its tag).
 * Objects carry a talloc child "marker" whose destructor logs "gone", so
 * the trace also shows when the library frees what.  Half of the programs
 * also print the library's event traces and its loop trace points (which
 * turns reached the backend's wait).
 *
 * Determinism: timers are either due (fixed absolute deadlines in 1970,
 * ordered by value then FIFO) or far (an hour ahead, never reached), so
 * wall-clock time never decides an order.  The program keeps a model of
 * what is ready; when the model sees nothing ready before a loop turn, it
 * adds a "sentinel" timer due after every other due timer, so that a turn
 * never blocks, and library-internal events (posted requests, queue
 * triggers, wakeups) still run first.
 *
 * Cross-thread messages (thread proxy, threaded context) arrive in an
 * order no program can rely on, so they run in a separate phase at the
 * end, on a fresh context, and only what is order-independent is printed:
 * every message arrives exactly once.  Lines starting with '#' are
 * information only (library path, per-producer FIFO order); run-diff
 * ignores them.
 *
 * What is normalised, on purpose:
 *   - a "turn" is tevent_loop_once() until one of our handlers ran
 *     (one_turn()): poll_mt spends whole turns on its own wakeups, and
 *     how many it needs is not part of the contract; only the order of
 *     handlers counts;
 *   - cross-thread messages: see above (README, "Intended differences":
 *     ours keeps each producer's order, upstream may reverse a batch;
 *     run-diff checks ours for it).
 *
 * What is never generated, because upstream itself breaks on it (use
 * after free or abort), so no library can be held to a result:
 *   - tevent_update_timer() on a timer whose handler is running (upstream
 *     frees it after the handler even if re-armed);
 *   - freeing an event whose handler a nested loop re-entered (upstream's
 *     busy mark is a flag: the inner return clears it for the outer; ours
 *     counts, tests/test_reentry.c), also through an ancestor the library
 *     frees after its handler (a timer, a one-shot signal event) that a
 *     nested loop runs (op_nest());
 *   - using an event freed while busy, or a child of it, until the library
 *     really frees it (reap(), "dying");
 *   - a signal handler freeing another signal event (upstream walks the
 *     handler list while calling them);
 *   - a request callback freeing its request from inside
 *     tevent_req_cancel(), or completing a finished request;
 *   - freeing the context while queues still hold entries (an entry's
 *     destructor uses the queue's context);
 *   - wrappers where a dangling pointer would follow their free: queue
 *     entries and tevent_req_defer_callback() always use the main
 *     context; nothing is freed between push_use and pop_use (pop_use
 *     reads the wrapper after a deferred free); a wrapper in use is never
 *     used again (upstream aborts), and no loop runs on a wrapper;
 *   - tevent_update_timer() on a timer whose wrapper went away (upstream
 *     dereferences the context it no longer has).
 *
 * Dead descriptors: in a quarter of the programs a socket end may be
 * closed while fd events watch it, or stop sending (see g_closing), so
 * the library meets EBADF, POLLNVAL, hangups and half-closed peers; a
 * closed number is never reused, as a reused number is a different
 * descriptor the library cannot know about.
 *
 * Wrappers need a context without nesting (upstream refuses them there),
 * so they appear in the half of the programs that do not nest; the other
 * half checks that creating one fails.  Every hook call is a line, with
 * the event it brackets and the handler name the library reports.
 *
 * --exclude takes a comma-separated list of op patterns to leave out
 * (see excl_names[]); buildtools/run-diff passes the ones where our
 * library still differs from upstream (its KNOWN list says why).
 *
 * --debug also prints every debug message the library sends, normalised
 * (see "Debug messages" below); the program is otherwise the same.
 *
 * --call-depth (libraries 0.16 and later) prints what the library tells
 * a call-depth observer about the requests (see "Call depth" below).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <talloc.h>
/* tevent_loop_allow_nesting() is only declared for TEVENT_DEPRECATED */
#define TEVENT_DEPRECATED 1
#include <tevent.h>

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#include "../common/tt_random.h"

/* ------------------------------------------------------------------ */
/* PRNG: splitmix64, so a seed means the same program everywhere. */

static uint64_t g_rng;

static uint64_t rnd64(void)
{
	return tt_splitmix64(&g_rng);
}

static unsigned rnd(unsigned n)
{
	return n == 0 ? 0 : (unsigned)(rnd64() % n);
}

static bool chance(unsigned pct)
{
	return rnd(100) < pct;
}

/* ------------------------------------------------------------------ */
/* Trace output. */

static int g_depth;          /* handler nesting, for indentation */
static unsigned long g_lines;
static unsigned long g_shown; /* lines that flushed the trace points */
#define MAX_LINES 20000UL    /* beyond this, handlers stop acting */

/*
 * The loop's trace points (set_traces()) wait here until the next line
 * that counts: a loop_once() in which nothing of ours happened leaves no
 * trace at all (see trace_loop_point()).
 */
#define MAX_POINTS 64
static struct {
	int depth;
	const char *name;
} g_points[MAX_POINTS];
static int g_npoints;

static void indent(int depth)
{
	int i;

	for (i = 0; i < depth; i++) {
		fputs("  ", stdout);
	}
}

static void vprint_line(const char *fmt, va_list ap)
{
	indent(g_depth);
	vprintf(fmt, ap);
	fputc('\n', stdout);
}

static void flush_points(void)
{
	int i;

	for (i = 0; i < g_npoints; i++) {
		indent(g_points[i].depth);
		printf("~ point %s\n", g_points[i].name);
	}
	g_npoints = 0;
	g_shown++;
}

/* A line that counts as something of ours happening (one_turn()). */
static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
	va_list ap;

	flush_points();
	va_start(ap, fmt);
	vprint_line(fmt, ap);
	va_end(ap);
	g_lines++;
}

/* A line about our requests that the library reports (call depth): the
 * points before it show, but no handler of ours ran. */
static void out_flow(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static void out_flow(const char *fmt, ...)
{
	va_list ap;

	flush_points();
	va_start(ap, fmt);
	vprint_line(fmt, ap);
	va_end(ap);
}

/* A line about what the library did on its own: event traces, debug
 * messages.  It does not count, and the loop's points wait on. */
static void out_aside(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static void out_aside(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprint_line(fmt, ap);
	va_end(ap);
}

static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fatal(const char *fmt, ...)
{
	va_list ap;

	printf("FATAL: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	_exit(3);
}

/* ------------------------------------------------------------------ */
/* Exclusions (op patterns a known divergence forces out). */

enum {
	EX_MPX,        /* a second fde on one descriptor */
	EX_NEST,       /* nested tevent_loop_once */
	EX_SIGNAL,     /* signal events */
	EX_QUEUE,      /* queues */
	EX_THREADS,    /* the cross-thread phase */
	EX_PARENT,     /* events parented on other events */
	EX_STALE_SIGINFO, /* an SA_SIGINFO handler added while a signal
			     caught for a removed one is still pending */
	EX_EPOLL_BATCH,   /* epoll backends: more than one fde with flags
			     at a time (the order among several ready
			     descriptors) */
	EX_WRAP,       /* wrapper contexts */
	EX_FD_DISARM_DETACH, /* not a kind of program but a normalisation:
				the DETACH trace of fd events made through
				a wrapper or watching a closed end is not
				printed (0.16 and later send one when they
				disarm such an event, 0.14 does not) */
	EX_MPX_EPOLL,  /* "mpx" on the epoll backends only */
	EX_CLOSE,      /* closing a socket end behind the library's back */
	EX_COUNT
};
static const char *const excl_names[EX_COUNT] = {
	"mpx", "nest", "signal", "queue", "threads", "parent",
	"stale-siginfo", "epoll-batch", "wrap", "fd-disarm-detach", "mpx-epoll",
	"close",
};
static bool g_excl[EX_COUNT];

/* ------------------------------------------------------------------ */
/* Objects. */

enum kind { K_NONE, K_FD, K_TIMER, K_IMM, K_SIG, K_REQ, K_QUEUE, K_WRAP,
	    K_COUNT };
static const char kind_letter[] = "?FTISRQW";

enum rkind { RK_PLAIN, RK_WAKEUP, RK_QWAIT };

#define MAXOBJ 1500
#define NCHAN 4          /* socketpairs; ends 2c and 2c+1 */
#define NEND (2 * NCHAN)

struct obj {
	enum kind kind;
	bool live;
	int running;         /* its handlers on the stack (nested loops can
				re-enter one) */
	bool reentered;      /* a nested loop ran its handler again */
	bool dying;          /* freed, but the library keeps it until its
				handler returns (talloc_free said -1) */
	int parent;          /* object it hangs from (0: top or ev) */
	bool parent_state;   /* ... from that request's state */
	void *ptr;           /* the tevent object (talloc chunk) */
	int wrap;            /* event: the wrapper it was made through (0:
				the main context) */
	bool detached;       /* event: its wrapper went away, or the context
				was re-initialised, so the library unhooked
				it from the loop for good */
	bool orphan;         /* wrapper: its main context was re-initialised,
				so it has none and only push_use (which
				refuses) and free are safe */
	/* fd */
	int end;
	uint16_t flags;
	bool close_fn;
	bool flags_set;      /* tevent_fd_set_flags() was called on it */
	int dupfd;           /* it watches this duplicate of its end, which
				it closes (auto-close); 0: none */
	/* timer */
	bool due;
	/* immediate */
	bool scheduled;
	/* signal */
	int signum;
	int sa_flags;
	/* request */
	enum rkind rkind;
	int rst;             /* 0 in progress, 1 finished, 2 received */
	int queue;           /* queue object, or 0 */
	/* its queue entry, when the add returned it before any trigger ran */
	struct tevent_queue_entry *qentry;
	bool in_cancel;      /* its cancel function is on the stack */
	void *state;
};

static struct obj g_obj[MAXOBJ];
static int g_nobj = 1;   /* id 0 is "none" */

static struct tevent_context *g_ev;
static TALLOC_CTX *g_top;
static int g_sock[NEND];
static int g_pending[NEND];  /* bytes readable at each end */
/*
 * The model counts a writer as always ready, which holds only while its
 * peer has few bytes unread: every one-byte write is a socket buffer of
 * its own in the kernel, and a Linux AF_UNIX stream end stops being
 * writable after about 70 of them (Debian 12's default buffer sizes).
 * Keep well below that.
 */
#define MAX_UNREAD 32
static bool g_epoll;  /* the backend is epoll or standard */
/*
 * --fd-error: fd events may also watch for errors (TEVENT_FD_ERROR, new in
 * 0.16, so only for comparisons with 0.16 and later; the script is built
 * against 0.14's header, which lacks the name).
 */
#ifndef TEVENT_FD_ERROR
#define TEVENT_FD_ERROR (1 << 2)
#endif
static bool g_fd_error;
/*
 * --reset-immediate: cancelling an immediate may also go through
 * tevent_reset_immediate(), new in 0.17 (not in 0.14's header, so it is
 * looked up at run time).
 */
static void (*g_reset_immediate)(struct tevent_immediate *im);
static bool g_want_reset_immediate;
/*
 * A quarter of the programs (chosen from the seed apart from the main
 * PRNG, so the other programs stay as they were) may close socket ends
 * while fd events still watch them, or shut down their sending side.  The
 * ends then live at high descriptor numbers, so a closed number is never
 * handed out again: the events on it see a dead descriptor (EBADF on
 * epoll, POLLNVAL on poll), never somebody else's, and the peer end sees
 * a hangup.
 */
static bool g_closing;
static bool g_closed[NEND];
static bool g_shut_wr[NEND];  /* shutdown(SHUT_WR): this end sends no more */
#define HIGH_FD 200
#define MAX_CLOSED 3
static bool g_nesting;
static bool g_stop_acting;

/* due deadlines: tevent_timeval_set(DUE_BASE + k, 0), k < DUE_SPAN; the
 * sentinel comes after all of them */
#define DUE_BASE 1000
#define DUE_SPAN 50
#define SENTINEL_SECS 100000

/*
 * Signal events' flags are fixed per signal, but for SIGWINCH's, which mix
 * one-shot events (SA_RESETHAND: the library frees each after its handler
 * ran) with lasting ones, and SA_RESTART.  The first event of a signal
 * decides the kernel's flags: if it is one-shot, the kernel puts the
 * default action back when it delivers the signal, and until the library
 * restores the action it found (when the signal's last event goes) a
 * raise is ignored, SIGWINCH's default.
 */
static int sig_nums[] = {SIGUSR1, SIGUSR2, 0 /* SIGRTMIN+2, set in main */,
			 SIGWINCH};
static const int sig_flags[] = {0, SA_SIGINFO, SA_SIGINFO, -1 /* mixed */};
#define NSIG_USED 4
static bool g_sig_pending[NSIG_USED];
static bool g_sig_stale[NSIG_USED];  /* caught, but its handlers went away */
static int g_sig_installed[NSIG_USED]; /* the kernel's flags for it */
static bool g_sig_default[NSIG_USED]; /* delivered with SA_RESETHAND: the
					 default action is in place */
static unsigned g_stray[NSIG_USED];

static int sig_index(int signum)
{
	int i;

	for (i = 0; i < NSIG_USED; i++) {
		if (sig_nums[i] == signum) {
			return i;
		}
	}
	return -1;
}

struct marker {
	int id;
	bool state;   /* marks a request's state rather than the object */
};

/*
 * Auto-close: an fd event may watch a duplicate of its socket end and
 * close it when it goes (tevent_fd_set_auto_close(), a close function of
 * the library's).  Each duplicate gets a number never used before, so a
 * closed one cannot come back as something else, and whether it is
 * closed shows when its event is freed.  Not in programs that close ends:
 * a duplicate would keep a closed end's socket open.
 */
#define DUP_FIRST 400
#define DUP_LAST 900
static int g_next_dup = DUP_FIRST;

static int new_dup(int end)
{
	int fd;

	if (g_closing || g_next_dup >= DUP_LAST || !chance(15)) {
		return 0;
	}
	fd = fcntl(g_sock[end], F_DUPFD_CLOEXEC, g_next_dup);
	if (fd < 0) {
		fatal("F_DUPFD");
	}
	g_next_dup = fd + 1;
	return fd;
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

/* Whether an auto-closing event closed its descriptor (when it was freed,
 * even if it lives on until its handler returns). */
static void report_dup(int id)
{
	int fd = g_obj[id].dupfd;

	if (fd == 0) {
		return;
	}
	out("F%d dup %s", id, fd_open(fd) ? "open" : "closed");
	if (fd_open(fd)) {
		close(fd);
	}
	g_obj[id].dupfd = 0;
}

static void obj_gone(int id);

static int marker_destructor(struct marker *m)
{
	if (m->state) {
		out("gone R%d.state", m->id);
		g_obj[m->id].state = NULL;
	} else {
		obj_gone(m->id);
	}
	return 0;
}

static void add_marker(void *parent, int id, bool state)
{
	struct marker *m = talloc_zero(parent, struct marker);

	if (m == NULL) {
		fatal("talloc");
	}
	m->id = id;
	m->state = state;
	talloc_set_destructor(m, marker_destructor);
}

/* the parent pick_parent() chose last, for new_obj() */
static int g_new_parent;
static bool g_new_parent_state;

static int new_obj(enum kind k)
{
	int id;

	if (g_nobj >= MAXOBJ) {
		return 0;
	}
	id = g_nobj++;
	memset(&g_obj[id], 0, sizeof(g_obj[id]));
	g_obj[id].kind = k;
	g_obj[id].parent = g_new_parent;
	g_obj[id].parent_state = g_new_parent_state;
	g_new_parent = 0;
	g_new_parent_state = false;
	return id;
}

/* Does a signal event still listen for signum? */
/* Is there a live signal event for signum that still listens (not
 * detached by its wrapper's end), optionally also not freed while busy? */
static bool sig_event_exists(int signum, bool skip_dying)
{
	int i;

	for (i = 1; i < g_nobj; i++) {
		if (g_obj[i].live && g_obj[i].kind == K_SIG &&
		    !g_obj[i].detached && g_obj[i].signum == signum &&
		    !(skip_dying && g_obj[i].dying)) {
			return true;
		}
	}
	return false;
}

static bool sig_handled(int signum)
{
	return sig_event_exists(signum, false);
}

/* Is an event of signum in the library's list of listeners?  An event
 * freed while its handler runs has already left it. */
static bool sig_listening(int signum)
{
	return sig_event_exists(signum, true);
}

/* With no listener left, the library put the old action back (and the
 * next event puts its own in place). */
static void sig_update_default(int si)
{
	if (!sig_listening(sig_nums[si])) {
		g_sig_default[si] = false;
	}
}

/* A signal event stopped listening: with no handler left for its signal,
 * a pending delivery is dropped. */
static void sig_unhooked(int signum)
{
	int si = sig_index(signum);

	if (sig_handled(signum)) {
		return;
	}
	if (g_sig_pending[si]) {
		g_sig_stale[si] = true;
	}
	g_sig_pending[si] = false;
}

/*
 * The library unhooked an event from the loop for good, though it stays
 * allocated (fd, timer and immediate leave the loop; a signal event stops
 * listening).
 */
static void detach_event(struct obj *o)
{
	o->detached = true;
	o->flags = 0;
	o->due = false;
	o->scheduled = false;
	if (o->kind == K_SIG) {
		sig_unhooked(o->signum);
	}
}

static bool is_event(const struct obj *o)
{
	return o->kind == K_FD || o->kind == K_TIMER || o->kind == K_IMM ||
	       o->kind == K_SIG;
}

/* A wrapper context went away: so did every event made through it. */
static void wrap_gone(int wid)
{
	int i;

	for (i = 1; i < g_nobj; i++) {
		struct obj *o = &g_obj[i];

		if (o->live && o->wrap == wid && is_event(o)) {
			detach_event(o);
		}
	}
}

static void obj_gone(int id)
{
	struct obj *o = &g_obj[id];
	int i;

	out("gone %c%d", kind_letter[o->kind], id);
	o->live = false;
	o->ptr = NULL;
	if (o->kind == K_FD) {
		report_dup(id);
	}
	if (o->kind == K_SIG) {
		sig_unhooked(o->signum);
	}
	if (o->kind == K_WRAP) {
		wrap_gone(id);
	}
	if (o->kind == K_QUEUE) {
		for (i = 1; i < g_nobj; i++) {
			/* the queue's entries went with it */
			if (g_obj[i].kind == K_REQ && g_obj[i].queue == id) {
				g_obj[i].queue = 0;
				g_obj[i].qentry = NULL;
			}
		}
	}
}

/*
 * After anything that frees: an object still live although an ancestor is
 * gone survived because its handler is running (its destructor refused);
 * the library frees it when the handler returns.  Until then it must not
 * be used.
 */
static void reap(void)
{
	int i;

	for (i = 1; i < g_nobj; i++) {
		struct obj *o = &g_obj[i];
		int p = i;

		if (!o->live || o->dying) {
			continue;
		}
		while (g_obj[p].parent != 0) {
			struct obj *po = &g_obj[g_obj[p].parent];

			if (!po->live || po->dying ||
			    (g_obj[p].parent_state && po->state == NULL)) {
				out("%c%d outlives its parent (busy)",
				    kind_letter[o->kind], i);
				o->dying = true;
				o->due = false;
				o->scheduled = false;
				o->flags = 0;
				break;
			}
			p = g_obj[p].parent;
		}
	}
}

/* A random live object of kind k (K_NONE: any), or 0. */
static int pick(enum kind k)
{
	int cand[MAXOBJ];
	int n = 0, i;

	for (i = 1; i < g_nobj; i++) {
		if (g_obj[i].live && !g_obj[i].dying &&
		    (k == K_NONE || g_obj[i].kind == k)) {
			cand[n++] = i;
		}
	}
	return n == 0 ? 0 : cand[rnd((unsigned)n)];
}

/* Where a new object hangs: the top context, the event context, or
 * (Samba style) another object such as a request's state. */
static void *req_state_parent(int id, const char **name)
{
	static char buf[32];

	g_new_parent = id;
	g_new_parent_state = true;
	snprintf(buf, sizeof(buf), "R%d.state", id);
	*name = buf;
	return g_obj[id].state;
}

static void *pick_parent(const char **name)
{
	unsigned r = rnd(100);
	int id;

	g_new_parent = 0;
	g_new_parent_state = false;
	if (r < 50 || g_excl[EX_PARENT]) {
		*name = "top";
		return g_top;
	}
	if (r < 65) {
		*name = "ev";
		return g_ev;
	}
	id = pick(K_NONE);
	if (id == 0) {
		*name = "top";
		return g_top;
	}
	{
		static char buf[32];
		struct obj *o = &g_obj[id];

		if (o->kind == K_REQ && o->state != NULL && chance(50)) {
			return req_state_parent(id, name);
		}
		g_new_parent = id;
		snprintf(buf, sizeof(buf), "%c%d", kind_letter[o->kind], id);
		*name = buf;
		return o->ptr;
	}
}

/* A request's parent: often the state of a request still running, as a
 * _send function makes its subrequests (profiles and call depth follow
 * that chain). */
static void *pick_req_parent(const char **name)
{
	int id = pick(K_REQ);

	if (id != 0 && !g_excl[EX_PARENT] && g_obj[id].state != NULL &&
	    g_obj[id].rst == 0 && chance(30)) {
		return req_state_parent(id, name);
	}
	return pick_parent(name);
}

static struct timeval due_time(unsigned *k)
{
	*k = rnd(DUE_SPAN);
	return tevent_timeval_set(DUE_BASE + *k, 0);
}

/* ------------------------------------------------------------------ */
/* The readiness model. */

/*
 * Whether an fd event will certainly be reported.  A dead descriptor
 * never is (epoll forgot it when it was closed, poll disarms it on
 * POLLNVAL).  When nothing more can arrive reading always succeeds (end
 * of file), while a writer alone is not told about a hangup (the library
 * drops it).  Erring towards "not ready" is safe: the sentinel then runs.
 */
static bool fd_ready(const struct obj *o)
{
	int e = o->end, p = e ^ 1;
	/* a hangup: the peer is gone, or neither side sends any more */
	bool hup = g_closed[p] || (g_shut_wr[e] && g_shut_wr[p]);
	/* nothing more will arrive: reading finds the end of the data */
	bool eof = hup || g_shut_wr[p];

	if (g_closed[e]) {
		return false;
	}
	/* readers see the end of the data, error watchers the condition */
	if ((o->flags & (TEVENT_FD_READ | TEVENT_FD_ERROR)) && eof) {
		return true;
	}
	if ((o->flags & TEVENT_FD_READ) && g_pending[e] > 0) {
		return true;
	}
	/* writers alone are not told of a hangup; epoll also stops
	 * watching them once it reported a half-close (upstream's sticky
	 * GOT_ERROR), which the model cannot time, so it counts on none */
	return (o->flags & TEVENT_FD_WRITE) && !hup && !(eof && g_epoll);
}

static bool model_ready(void)
{
	int i;

	for (i = 0; i < NSIG_USED; i++) {
		if (g_sig_pending[i]) {
			return true;
		}
	}
	for (i = 1; i < g_nobj; i++) {
		struct obj *o = &g_obj[i];

		if (!o->live) {
			continue;
		}
		switch (o->kind) {
		case K_FD:
			if (fd_ready(o)) {
				return true;
			}
			break;
		case K_TIMER:
			if (o->due) {
				return true;
			}
			break;
		case K_IMM:
			if (o->scheduled) {
				return true;
			}
			break;
		default:
			break;
		}
	}
	return false;
}

static bool g_sentinel_armed;
/* the sentinel timer while it exists, for debug messages that name it */
static void *g_sentinel_ptr;
static bool g_sentinel_creating;  /* inside its tevent_add_timer() */

static int sentinel_gone(void **p)
{
	(void)p;
	g_sentinel_ptr = NULL;
	return 0;
}

static void sentinel_handler(struct tevent_context *ev, struct tevent_timer *te,
			     struct timeval now, void *pvt)
{
	(void)ev;
	(void)te;
	(void)now;
	(void)pvt;
	g_sentinel_armed = false;
	out("sentinel");
}

/* Before a loop turn: when the model sees nothing of ours ready, a
 * sentinel timer makes sure the turn does not block. */
static void arm_sentinel_if_idle(void)
{
	/* its parent is the context: nobody else frees it */
	struct tevent_timer *st;
	void **mark;

	if (model_ready() || g_sentinel_armed) {
		return;
	}
	g_sentinel_creating = true;
	st = tevent_add_timer(g_ev, g_ev, tevent_timeval_set(SENTINEL_SECS, 0),
			      sentinel_handler, NULL);
	g_sentinel_creating = false;
	if (st == NULL) {
		fatal("sentinel");
	}
	g_sentinel_armed = true;
	/* a child whose destructor runs after the timer's own (which may send
	 * "Destroying timer event") */
	mark = talloc(st, void *);
	if (mark == NULL) {
		fatal("talloc");
	}
	talloc_set_destructor(mark, sentinel_gone);
	g_sentinel_ptr = st;
}

#define TURN_TRIES 10

/* tevent_loop_until()'s question before each loop_once() inside it. */
struct until {
	unsigned long lines;
	int tries;
};

static bool until_ours_ran(void *pvt)
{
	struct until *u = pvt;

	if (g_lines != u->lines || u->tries == TURN_TRIES) {
		return true;
	}
	u->tries++;
	arm_sentinel_if_idle();
	return false;
}

/*
 * The nesting hook (a third of the programs, and again after a
 * re-initialise, which drops it).  The library calls it around each loop
 * call at a level above zero, with the level and a stack slot that the
 * begin and the end of one call share.  How many loop calls a step takes
 * is not part of the contract (see one_turn()), so the hook prints only
 * what is wrong: a level other than the one the script counts, a call at
 * level 0, a slot that lost what the begin put there, a call it missed.
 * It refuses a begin only when the script asked for that just before a
 * call of its own (never from a count of calls).
 *
 * The level: our loop calls on the stack, less what re-initialising took
 * away -- tevent_re_initialise() sets the level to 0 under the running
 * calls, whose returns then count it below zero (unsigned: it wraps).
 */
static bool g_hook;              /* installed */
static unsigned g_loop_calls;    /* our loop calls on the stack */
static uint32_t g_level_shift;   /* g_loop_calls at the last re-initialise */
static unsigned long g_hook_begins;
static int g_hook_refuse;        /* the next begin returns this */
static int g_hook_refused;       /* and here is what it returned */

static uint32_t hook_level(void)
{
	return (uint32_t)g_loop_calls - g_level_shift;
}

static int nest_hook(struct tevent_context *ev, void *pvt, uint32_t level,
		     bool begin, void *stack_ptr, const char *location)
{
	void **slot = stack_ptr;

	(void)pvt;
	(void)location;
	if (ev != g_ev || level != hook_level() || level == 0) {
		out_aside("~ hook %s at level %u, want %u%s",
			  begin ? "begin" : "end", (unsigned)level,
			  (unsigned)hook_level(),
			  ev != g_ev ? " (another context)" : "");
	}
	if (!begin) {
		if (*slot != NULL && *slot != &g_hook_begins) {
			out_aside("~ hook end: the slot lost the begin's value");
		}
		return 0;
	}
	g_hook_begins++;
	*slot = &g_hook_begins;
	if (g_hook_refuse != 0) {
		g_hook_refused = g_hook_refuse;
		g_hook_refuse = 0;
		return g_hook_refused;
	}
	return 0;
}

static void install_hook_maybe(void)
{
	if (chance(33)) {
		tevent_loop_set_nesting_hook(g_ev, nest_hook, NULL);
		g_hook = true;
		out("nesting hook set");
	}
}

/* Bookkeeping around one loop call of ours. */
struct loop_call {
	bool hooked;
	unsigned long begins;
};

static void loop_call_start(struct loop_call *lc)
{
	g_loop_calls++;
	lc->hooked = g_hook && hook_level() != 0;
	lc->begins = g_hook_begins;
}

/* Says whether the hook refused the call (and prints so). */
static bool loop_call_end(struct loop_call *lc, const char *who,
			  const char *what)
{
	if (lc->hooked && g_hook_begins == lc->begins) {
		out_aside("~ hook not called at level %u",
			  (unsigned)hook_level());
	}
	g_loop_calls--;
	if (g_hook_refused != 0) {
		out("%s %s refused by the hook: %d", who, what, g_hook_refused);
		g_hook_refused = 0;
		return true;
	}
	return false;
}

/*
 * One step of the loop as a caller sees it: turns until a handler of ours
 * ran, with tevent_loop_once() up to TURN_TRIES times or (a fifth of the
 * time) one tevent_loop_until() that asks the same question.  Turns that
 * only serve the library itself (poll_mt handles its wakeup descriptor as
 * an fd event, which takes a whole turn) are not counted: how many of
 * those there are is not part of the contract, only which handlers run in
 * which order.
 */
static void one_turn(const char *who)
{
	unsigned long before = g_lines;
	struct loop_call lc;
	int ret, i;

	/* the first call's begin (only a begin: how many turns a step
	 * takes, and so which call's end comes first, is the library's) */
	if (g_hook && !g_stop_acting && chance(5)) {
		g_hook_refuse = 1 + (int)rnd(50);
	}
	if (chance(20)) {
		struct until u = {before, 0};

		loop_call_start(&lc);
		ret = tevent_loop_until(g_ev, until_ours_ran, &u);
		if (!loop_call_end(&lc, who, "loop_until") && ret != 0) {
			out("%s loop_until=%d errno=%d", who, ret, errno);
		}
		i = u.tries;
	} else {
		for (i = 0; i < TURN_TRIES && g_lines == before; i++) {
			arm_sentinel_if_idle();
			loop_call_start(&lc);
			ret = tevent_loop_once(g_ev);
			if (!loop_call_end(&lc, who, "loop_once") && ret != 0) {
				out("%s loop_once=%d errno=%d", who, ret, errno);
			}
		}
	}
	/* asked for but not reached (a nesting refusal aborts first) */
	g_hook_refuse = 0;
	if (g_lines == before) {
		out("%s: no handler ran in %d turns", who, i);
	}
	/* the library frees a timer after its handler: busy children stay */
	reap();
}

/* ------------------------------------------------------------------ */
/* Wrapper contexts. */

struct wstate {
	int id;
};

/* The script's name for a context the library handed back. */
static const char *ev_label(struct tevent_context *ev)
{
	static char buf[16];
	int i;

	if (ev == g_ev) {
		return "main";
	}
	for (i = 1; i < g_nobj; i++) {
		if (g_obj[i].kind == K_WRAP && g_obj[i].live && g_obj[i].ptr == ev) {
			snprintf(buf, sizeof(buf), "W%d", i);
			return buf;
		}
	}
	return "?";
}

/* The script's name for an event a hook was given.  Events the library
 * makes for itself (a request's timer or post immediate) have none. */
static const char *event_label(const void *ptr)
{
	static char buf[16];
	int i;

	for (i = 1; i < g_nobj; i++) {
		if (g_obj[i].live && g_obj[i].kind != K_WRAP &&
		    g_obj[i].ptr == ptr) {
			snprintf(buf, sizeof(buf), "%c%d",
				 kind_letter[g_obj[i].kind], i);
			return buf;
		}
	}
	return "internal";
}

/*
 * Tags: a number the caller keeps on an event (tevent_*_set_tag()).  The
 * library must keep it through rescheduling, cancels, updates and handler
 * runs, so every handler and trace line of a tagged event shows it.
 */
static uint64_t event_tag(enum kind k, const void *ptr)
{
	switch (k) {
	case K_FD:
		return tevent_fd_get_tag(ptr);
	case K_TIMER:
		return tevent_timer_get_tag(ptr);
	case K_IMM:
		return tevent_immediate_get_tag(ptr);
	case K_SIG:
		return tevent_signal_get_tag(ptr);
	default:
		return 0;
	}
}

/* " tag=N", or "" for no tag (one use per line). */
static const char *tag_suffix(uint64_t tag)
{
	static char buf[32];

	if (tag == 0) {
		return "";
	}
	snprintf(buf, sizeof(buf), " tag=%llu", (unsigned long long)tag);
	return buf;
}

static const char *tag_text(enum kind k, const void *ptr)
{
	return tag_suffix(event_tag(k, ptr));
}

static void set_tag(int id, uint64_t tag)
{
	struct obj *o = &g_obj[id];

	switch (o->kind) {
	case K_FD:
		tevent_fd_set_tag(o->ptr, tag);
		break;
	case K_TIMER:
		tevent_timer_set_tag(o->ptr, tag);
		break;
	case K_IMM:
		tevent_immediate_set_tag(o->ptr, tag);
		break;
	case K_SIG:
		tevent_signal_set_tag(o->ptr, tag);
		break;
	default:
		return;
	}
	out("%c%d set_tag %llu", kind_letter[o->kind], id,
	    (unsigned long long)tag);
}

/* A new event is tagged, sometimes. */
static void maybe_tag(int id)
{
	if (chance(40)) {
		set_tag(id, 1 + rnd(999));
	}
}

/* A handler ran: was it given the context its event was made on? */
static void check_handler_ev(int id, struct tevent_context *ev)
{
	struct obj *o = &g_obj[id];
	struct tevent_context *want = o->wrap != 0 ? g_obj[o->wrap].ptr : g_ev;

	if (ev != want) {
		out("%c%d got ev=%s, made on %s", kind_letter[o->kind], id,
		    ev_label(ev), o->wrap != 0 ? "a wrapper" : "main");
	}
}

/*
 * One line per hook call.  Between a before and an after hook the wrapper
 * is in use ("running"): upstream aborts on a second use, and a free is
 * deferred until the use ends.
 */
static void hook_line(void *private_state, struct tevent_context *wrap_ev,
		      struct tevent_context *main_ev, const char *what,
		      const void *event, const char *handler_name)
{
	struct wstate *ws = private_state;
	struct obj *w = &g_obj[ws->id];

	out("W%d %s%s%s%s%s%s", ws->id, what, event ? " " : "",
	    event ? event_label(event) : "", handler_name ? " " : "",
	    handler_name ? handler_name : "",
	    wrap_ev == w->ptr && main_ev == g_ev ? "" : " (wrong contexts)");
}

static bool w_before_use(struct tevent_context *wrap_ev, void *ps,
			 struct tevent_context *main_ev, const char *location)
{
	bool ok = !chance(20);

	(void)location;
	hook_line(ps, wrap_ev, main_ev, ok ? "before_use" : "before_use refuses",
		  NULL, NULL);
	return ok;
}

static void w_after_use(struct tevent_context *wrap_ev, void *ps,
			struct tevent_context *main_ev, const char *location)
{
	(void)location;
	hook_line(ps, wrap_ev, main_ev, "after_use", NULL, NULL);
}

static void w_around(void *ps, bool before)
{
	struct wstate *ws = ps;

	g_obj[ws->id].running += before ? 1 : -1;
}

static void w_before_fd(struct tevent_context *wrap_ev, void *ps,
			struct tevent_context *main_ev, struct tevent_fd *fde,
			uint16_t flags, const char *handler_name,
			const char *location)
{
	(void)flags;
	(void)location;
	hook_line(ps, wrap_ev, main_ev, "before_fd", fde, handler_name);
	w_around(ps, true);
}

static void w_after_fd(struct tevent_context *wrap_ev, void *ps,
		       struct tevent_context *main_ev, struct tevent_fd *fde,
		       uint16_t flags, const char *handler_name,
		       const char *location)
{
	(void)flags;
	(void)location;
	w_around(ps, false);
	hook_line(ps, wrap_ev, main_ev, "after_fd", fde, handler_name);
}

static void w_before_timer(struct tevent_context *wrap_ev, void *ps,
			   struct tevent_context *main_ev,
			   struct tevent_timer *te, struct timeval requested,
			   struct timeval trigger, const char *handler_name,
			   const char *location)
{
	(void)requested;
	(void)trigger;
	(void)location;
	hook_line(ps, wrap_ev, main_ev, "before_timer", te, handler_name);
	w_around(ps, true);
}

static void w_after_timer(struct tevent_context *wrap_ev, void *ps,
			  struct tevent_context *main_ev,
			  struct tevent_timer *te, struct timeval requested,
			  struct timeval trigger, const char *handler_name,
			  const char *location)
{
	(void)requested;
	(void)trigger;
	(void)location;
	w_around(ps, false);
	/* the library may have freed the timer by now: no label */
	(void)te;
	hook_line(ps, wrap_ev, main_ev, "after_timer", NULL, handler_name);
}

static void w_before_imm(struct tevent_context *wrap_ev, void *ps,
			 struct tevent_context *main_ev,
			 struct tevent_immediate *im, const char *handler_name,
			 const char *location)
{
	(void)location;
	hook_line(ps, wrap_ev, main_ev, "before_imm", im, handler_name);
	w_around(ps, true);
}

static void w_after_imm(struct tevent_context *wrap_ev, void *ps,
			struct tevent_context *main_ev,
			struct tevent_immediate *im, const char *handler_name,
			const char *location)
{
	(void)location;
	w_around(ps, false);
	hook_line(ps, wrap_ev, main_ev, "after_imm", im, handler_name);
}

static void w_before_sig(struct tevent_context *wrap_ev, void *ps,
			 struct tevent_context *main_ev,
			 struct tevent_signal *se, int signum, int count,
			 void *siginfo, const char *handler_name,
			 const char *location)
{
	(void)signum;
	(void)count;
	(void)siginfo;
	(void)location;
	hook_line(ps, wrap_ev, main_ev, "before_sig", se, handler_name);
	w_around(ps, true);
}

static void w_after_sig(struct tevent_context *wrap_ev, void *ps,
			struct tevent_context *main_ev,
			struct tevent_signal *se, int signum, int count,
			void *siginfo, const char *handler_name,
			const char *location)
{
	(void)signum;
	(void)count;
	(void)siginfo;
	(void)location;
	w_around(ps, false);
	hook_line(ps, wrap_ev, main_ev, "after_sig", se, handler_name);
}

static const struct tevent_wrapper_ops wrap_ops = {
	.name = "script_wrap",
	.before_use = w_before_use,
	.after_use = w_after_use,
	.before_fd_handler = w_before_fd,
	.after_fd_handler = w_after_fd,
	.before_timer_handler = w_before_timer,
	.after_timer_handler = w_after_timer,
	.before_immediate_handler = w_before_imm,
	.after_immediate_handler = w_after_imm,
	.before_signal_handler = w_before_sig,
	.after_signal_handler = w_after_sig,
};

/*
 * The context a new event goes on: mostly the main one, sometimes a live
 * wrapper, whose hooks then bracket the event's handler.  *wid names the
 * wrapper (0: main).
 */
static struct tevent_context *pick_ev(int *wid)
{
	int w;

	*wid = 0;
	if (g_excl[EX_WRAP] || g_nesting || !chance(35)) {
		return g_ev;
	}
	w = pick(K_WRAP);
	if (w == 0 || g_obj[w].orphan) {
		return g_ev;
	}
	*wid = w;
	return g_obj[w].ptr;
}

/* " via W<n>" for an event made through a wrapper, "" otherwise. */
static const char *via(int wid)
{
	static char buf[16];

	if (wid == 0) {
		return "";
	}
	snprintf(buf, sizeof(buf), " via W%d", wid);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Event traces and loop trace points (half of the programs). */

static bool g_trace;
/* The object an add call is making: its ATTACH line (or a request's
 * call-depth "create") comes before the call returns the pointer that
 * would name it. */
static int g_creating;

/*
 * One line per trace point.  Trace lines do not count as output for
 * one_turn(): a turn spent on a descriptor of the library's own is still
 * no turn of ours.
 */
static void trace_out(enum tevent_event_trace_point point, const char *what)
{
	static const char *const points[] = {"attach", "detach", "before"};

	out_aside("~ %s %s", (unsigned)point < 3 ? points[point] : "?", what);
}

/* Descriptors the library watches for itself (upstream's wakeup pipe is an
 * fd event, ours is not) are left out. */
/* An fd event the library may disarm (see EX_FD_DISARM_DETACH). */
static bool fd_may_be_disarmed(const void *ptr)
{
	int i;

	for (i = 1; i < g_nobj; i++) {
		if (g_obj[i].live && g_obj[i].kind == K_FD &&
		    g_obj[i].ptr == ptr) {
			return g_obj[i].wrap != 0 || g_obj[i].detached ||
			       g_closed[g_obj[i].end];
		}
	}
	return false;
}

static void trace_line(enum kind k, const void *ptr,
		       enum tevent_event_trace_point point)
{
	const char *label = event_label(ptr);
	char buf[16], text[64];

	if (k == K_FD && point == TEVENT_EVENT_TRACE_DETACH &&
	    g_excl[EX_FD_DISARM_DETACH] && fd_may_be_disarmed(ptr)) {
		return;
	}

	if (strcmp(label, "internal") == 0 &&
	    point == TEVENT_EVENT_TRACE_ATTACH && g_creating != 0 &&
	    g_obj[g_creating].kind == k) {
		snprintf(buf, sizeof(buf), "%c%d", kind_letter[k], g_creating);
		label = buf;
	} else if (strcmp(label, "internal") == 0) {
		if (k == K_FD) {
			return;
		}
		snprintf(buf, sizeof(buf), "internal-%c", kind_letter[k]);
		label = buf;
	}
	snprintf(text, sizeof(text), "%s%s", label, tag_text(k, ptr));
	trace_out(point, text);
}

static void trace_fd(struct tevent_fd *fde, enum tevent_event_trace_point p,
		     void *pvt)
{
	(void)pvt;
	trace_line(K_FD, fde, p);
}

static void trace_timer(struct tevent_timer *te,
			enum tevent_event_trace_point p, void *pvt)
{
	(void)pvt;
	trace_line(K_TIMER, te, p);
}

static void trace_imm(struct tevent_immediate *im,
		      enum tevent_event_trace_point p, void *pvt)
{
	(void)pvt;
	trace_line(K_IMM, im, p);
}

static void trace_sig(struct tevent_signal *se,
		      enum tevent_event_trace_point p, void *pvt)
{
	(void)pvt;
	trace_line(K_SIG, se, p);
}

static void trace_queue(struct tevent_queue_entry *qe,
			enum tevent_event_trace_point p, void *pvt)
{
	char text[48];

	(void)pvt;
	snprintf(text, sizeof(text), "queue entry%s",
		 tag_suffix(tevent_queue_entry_get_tag(qe)));
	trace_out(p, text);
}

/*
 * The loop's own trace points, so that the turns are compared too: which
 * loop_once() reached the backend's wait.  A turn in which nothing of
 * ours happened is one the library spent on itself (upstream reads its
 * signal pipe as an fd event, poll_mt its wakeup descriptor: see
 * one_turn()), so its points are dropped; debug messages and event traces
 * do not count (the poll backend may report a dead descriptor in such a
 * turn), so the points of a turn appear just before its first line that
 * does.
 */
#define MAX_LOOP_NEST 16
static const char DEPTH_RESET_POINT[] = "depth reset";
/* The last loop_once() to end showed a line (the call-depth reset that
 * follows it is shown only then: see depth_report()). */
static bool g_turn_shown;
static struct {
	int npoints;            /* g_npoints when this loop_once() began */
	unsigned long shown;    /* g_shown then */
} g_loop_stack[MAX_LOOP_NEST];
static int g_loop_depth;

static void add_point(const char *name)
{
	if (g_npoints == MAX_POINTS) {
		fatal("trace points: %d without a line between", MAX_POINTS);
	}
	g_points[g_npoints].depth = g_depth;
	g_points[g_npoints].name = name;
	g_npoints++;
}

/* A loop point that programs printing traces show. */
static void loop_point(const char *name)
{
	if (g_trace) {
		add_point(name);
	}
}

static void trace_loop_point(enum tevent_trace_point point, void *pvt)
{
	(void)pvt;
	switch (point) {
	case TEVENT_TRACE_BEFORE_LOOP_ONCE:
		if (g_loop_depth == MAX_LOOP_NEST) {
			fatal("trace points: loops nested too deep");
		}
		g_loop_stack[g_loop_depth].npoints = g_npoints;
		g_loop_stack[g_loop_depth].shown = g_shown;
		g_loop_depth++;
		loop_point("before_loop_once");
		break;
	case TEVENT_TRACE_AFTER_LOOP_ONCE:
		if (g_loop_depth == 0) {
			fatal("trace points: after_loop_once without before");
		}
		g_loop_depth--;
		if (g_shown == g_loop_stack[g_loop_depth].shown) {
			/* no line of ours since its before: none flushed */
			g_npoints = g_loop_stack[g_loop_depth].npoints;
			g_turn_shown = false;
		} else {
			g_turn_shown = true;
			loop_point("after_loop_once");
		}
		break;
	case TEVENT_TRACE_BEFORE_WAIT:
		loop_point("before_wait");
		break;
	case TEVENT_TRACE_AFTER_WAIT:
		loop_point("after_wait");
		break;
	default:
		loop_point("?");
		break;
	}
}

static void set_traces(void)
{
	tevent_set_trace_fd_callback(g_ev, trace_fd, NULL);
	tevent_set_trace_timer_callback(g_ev, trace_timer, NULL);
	tevent_set_trace_immediate_callback(g_ev, trace_imm, NULL);
	tevent_set_trace_signal_callback(g_ev, trace_sig, NULL);
	tevent_set_trace_queue_callback(g_ev, trace_queue, NULL);
}

/* ------------------------------------------------------------------ */
/* Debug messages (--debug). */

/*
 * With --debug every context the program makes gets a debug function (a
 * wrapper's messages go to its main context's: setting one on a wrapper is
 * refused) that prints each message as a line "debug <level> <text>", the
 * text without its trailing newline and with what differs from run to run
 * normalised:
 *   - pointers (0x..., "(nil)") become the script's names: "main" (the
 *     context), W<n>, F<n>, T<n>, I<n>, S<n>, R<n>, Q<n>, "sentinel",
 *     "threads-ev" (the cross-thread phase's context); a pointer the
 *     library reports while an add call of ours runs is the object being
 *     added (its pointer is not known yet); anything else (a request's
 *     timer, a queue's immediate, ...) is "?ptr".  Hex numbers below
 *     0x10000 are flags, not pointers, and stay;
 *   - descriptor numbers ("fd[N]", "fd=N") become the socket end, or "lib"
 *     for one of the library's own (the sockets get the same numbers on
 *     0.14.1, 0.17.1 and ours today, but each library opens descriptors
 *     of its own, epoll and wakeup, when it likes).
 * Libraries 0.15 and later send trace-level messages only below a limit
 * that tevent_set_debug() puts back to warnings (0.16+), so
 * tevent_set_max_debug_level() is called after it where the library has
 * it (looked up at run time: Debian's 0.14 header lacks it; 0.14.1 sends
 * every level anyway).
 * Debug lines, like trace lines, do not count as a handler running
 * (one_turn()), so --debug changes nothing else in the program.
 * In the cross-thread phase the order of messages is up to the threads:
 * they are collected and printed sorted, with counts, at its end.
 */
static bool g_debug;
static struct tevent_context *g_tev;  /* the cross-thread phase's context */
static bool g_dbg_collect;
static char **g_dbg_kept;
static size_t g_dbg_nkept, g_dbg_cap;

static const char *level_name(enum tevent_debug_level level)
{
	switch (level) {
	case TEVENT_DEBUG_FATAL: return "fatal";
	case TEVENT_DEBUG_ERROR: return "error";
	case TEVENT_DEBUG_WARNING: return "warning";
	case TEVENT_DEBUG_TRACE: return "trace";
	}
	return "?";
}

static const char *ptr_label(uintptr_t v, char *buf, size_t len)
{
	void *p = (void *)v;
	int i;

	if (p == NULL) {
		return "NULL";
	}
	if (g_ev != NULL && p == (void *)g_ev) {
		return "main";
	}
	if (g_tev != NULL && p == (void *)g_tev) {
		return "threads-ev";
	}
	for (i = 1; i < g_nobj; i++) {
		if (g_obj[i].live && g_obj[i].ptr == p) {
			snprintf(buf, len, "%c%d", kind_letter[g_obj[i].kind], i);
			return buf;
		}
	}
	if (p == g_sentinel_ptr || g_sentinel_creating) {
		return "sentinel";
	}
	if (g_creating != 0) {
		snprintf(buf, len, "%c%d", kind_letter[g_obj[g_creating].kind],
			 g_creating);
		return buf;
	}
	return "?ptr";
}

static const char *fd_label(long fd, char *buf, size_t len)
{
	int i;

	for (i = 0; i < NEND; i++) {
		if (g_sock[i] == fd) {
			snprintf(buf, len, "end%d", i);
			return buf;
		}
	}
	if (fd >= DUP_FIRST && fd < g_next_dup) {
		return "dup";
	}
	return "lib";
}

/* text -> normalised (see above) into out, at most len bytes */
static void dbg_normalise(const char *text, char *res, size_t len)
{
	size_t o = 0;
	const char *s = text;
	char buf[32];

	while (*s != '\0' && o + 1 < len) {
		const char *rep = NULL;
		char *end = NULL;

		if (s[0] == '0' && s[1] == 'x' && isxdigit((unsigned char)s[2])) {
			unsigned long long v = strtoull(s + 2, &end, 16);

			if (v >= 0x10000) {
				rep = ptr_label((uintptr_t)v, buf, sizeof(buf));
			} else {
				end = NULL;
			}
		} else if (strncmp(s, "(nil)", 5) == 0) {
			rep = "NULL";
			end = (char *)s + 5;
		} else if ((strncmp(s, "fd[", 3) == 0 || strncmp(s, "fd=", 3) == 0) &&
			   (isdigit((unsigned char)s[3]) || s[3] == '-')) {
			long fd = strtol(s + 3, &end, 10);
			size_t n = strlen(fd_label(fd, buf, sizeof(buf)));

			/* keep "fd[" / "fd=" */
			if (o + 3 + n < len) {
				memcpy(res + o, s, 3);
				memcpy(res + o + 3, buf, n);
				o += 3 + n;
			}
			s = end;
			continue;
		}
		if (rep != NULL) {
			size_t n = strlen(rep);

			if (o + n >= len) {
				break;
			}
			memcpy(res + o, rep, n);
			o += n;
			s = end;
			continue;
		}
		res[o++] = *s++;
	}
	res[o] = '\0';
	/* the trailing newline(s) */
	while (o > 0 && res[o - 1] == '\n') {
		res[--o] = '\0';
	}
}

/*
 * Messages left out on purpose, because they report how a library works
 * inside rather than what the program did (README, "Intended
 * differences"):
 *   - "EPOLL_CTL_DEL ignoring ENOENT": both epoll backends ask the kernel
 *     to drop a freed fde's descriptor, registered or not, and say so
 *     when it had nothing; but ours tells the kernel about flag changes
 *     only at the next wait, so whether anything was registered at the
 *     free differs;
 *   - "free_list_handler": upstream's thread proxy frees delivered
 *     messages from an immediate of its own, scheduled as many times as
 *     the timing of the senders makes it; ours has none.
 */
static const char *const dbg_dropped[] = {
	"EPOLL_CTL_DEL ignoring ENOENT for ",
	"\"free_list_handler\"",
};

static void debug_fn(void *context, enum tevent_debug_level level,
		     const char *fmt, va_list ap)
{
	char *text = NULL;
	char norm[2048];
	size_t i;

	(void)context;
	if (vasprintf(&text, fmt, ap) < 0) {
		fatal("vasprintf");
	}
	dbg_normalise(text, norm, sizeof(norm));
	free(text);
	for (i = 0; i < sizeof(dbg_dropped) / sizeof(dbg_dropped[0]); i++) {
		if (strstr(norm, dbg_dropped[i]) != NULL) {
			return;
		}
	}
	if (g_dbg_collect) {
		if (g_dbg_nkept == g_dbg_cap) {
			g_dbg_cap = g_dbg_cap ? 2 * g_dbg_cap : 64;
			g_dbg_kept = realloc(g_dbg_kept,
					     g_dbg_cap * sizeof(*g_dbg_kept));
			if (g_dbg_kept == NULL) {
				fatal("realloc");
			}
		}
		if (asprintf(&g_dbg_kept[g_dbg_nkept++], "debug %s %s",
			     level_name(level), norm) < 0) {
			fatal("asprintf");
		}
		return;
	}
	out_aside("debug %s %s", level_name(level), norm);
}

static void set_debug(struct tevent_context *ev)
{
	enum tevent_debug_level (*set_max)(struct tevent_context *,
					   enum tevent_debug_level);

	if (!g_debug) {
		return;
	}
	if (tevent_set_debug(ev, debug_fn, NULL) != 0) {
		fatal("tevent_set_debug");
	}
	/* 0.15 and later; tevent_set_debug() resets the limit (0.16+) */
	*(void **)&set_max = dlsym(RTLD_DEFAULT, "tevent_set_max_debug_level");
	if (set_max != NULL) {
		set_max(ev, TEVENT_DEBUG_TRACE);
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The cross-thread phase's messages: sorted, each with its count. */
static void dbg_flush_collected(void)
{
	size_t i, j;

	if (g_dbg_nkept == 0) {
		return;  /* none kept (no --debug): qsort() wants an array */
	}
	qsort(g_dbg_kept, g_dbg_nkept, sizeof(*g_dbg_kept), cmp_str);
	for (i = 0; i < g_dbg_nkept; i = j) {
		for (j = i + 1; j < g_dbg_nkept &&
		     strcmp(g_dbg_kept[i], g_dbg_kept[j]) == 0; j++) {
		}
		out("%s (x%zu)", g_dbg_kept[i], j - i);
	}
	for (i = 0; i < g_dbg_nkept; i++) {
		free(g_dbg_kept[i]);
	}
	free(g_dbg_kept);
	g_dbg_kept = NULL;
	g_dbg_nkept = g_dbg_cap = 0;
}

/* ------------------------------------------------------------------ */
/* Call depth (--call-depth). */

/*
 * Libraries 0.16 and later tell one observer per thread how requests flow
 * (tevent_thread_call_depth_set_callback()): created, cancelled, cleaned
 * up, calling back, entering, triggered in and leaving a queue, and a
 * reset to depth 0 after every tevent_loop_once().  With --call-depth
 * every report is a line "~ depth <what> <request> <depth> <name>"; the
 * reset after a loop_once() is a trace point instead, shown only after a
 * turn that showed a line (turns the library spends on itself would add
 * more; the loop's trace callback tells which turn was which).  Debian's
 * 0.14 header has none of this, so the entry points are looked up at run
 * time and the types are the script's own.
 */
typedef void (*depth_cb_fn)(void *pvt, int cmd, struct tevent_req *req,
			    size_t depth, const char *fname);
static bool g_want_call_depth;
static void (*g_depth_set_callback)(depth_cb_fn fn, void *pvt);
static void (*g_depth_reset_from_req)(struct tevent_req *req,
				      const char *fname);

static void depth_report(void *pvt, int cmd, struct tevent_req *req,
			 size_t depth, const char *fname)
{
	static const char *const cmds[] = {
		"reset", "create", "cancel", "cleanup", "notify_cb",
		"queue_enter", "queue_trigger", "queue_leave",
	};
	char buf[32];

	(void)pvt;
	if (cmd == 0 && req == NULL && depth == 0 && fname != NULL &&
	    strcmp(fname, "_tevent_loop_once") == 0) {
		if (g_turn_shown) {
			add_point(DEPTH_RESET_POINT);
		}
		g_turn_shown = false;
		return;
	}
	out_flow("~ depth %s %s %zu %s",
		 (unsigned)cmd < 8 ? cmds[cmd] : "?",
		 req == NULL ? "NULL" : ptr_label((uintptr_t)req, buf, sizeof(buf)),
		 depth, fname != NULL ? fname : "-");
}

static void set_call_depth(void)
{
	*(void **)&g_depth_set_callback =
		dlsym(RTLD_DEFAULT, "tevent_thread_call_depth_set_callback");
	*(void **)&g_depth_reset_from_req =
		dlsym(RTLD_DEFAULT, "_tevent_thread_call_depth_reset_from_req");
	if (g_depth_set_callback == NULL || g_depth_reset_from_req == NULL) {
		fatal("--call-depth: the library has no "
		      "tevent_thread_call_depth_set_callback()");
	}
	g_depth_set_callback(depth_report, NULL);
}

/* What a caller does with the call depth: restart it from a request's,
 * or set the observer again (which reports a reset first). */
static void op_call_depth(void)
{
	int id;

	if (g_depth_set_callback == NULL) {
		return;
	}
	if (chance(20)) {
		out("depth set_callback again");
		g_depth_set_callback(depth_report, NULL);
		return;
	}
	id = pick(K_REQ);
	if (id != 0) {
		out("depth reset_from_req R%d", id);
		g_depth_reset_from_req(g_obj[id].ptr,
				       chance(50) ? "script" : NULL);
	}
}

/* ------------------------------------------------------------------ */
/* Handlers. */

/*
 * Upstream marks an event busy while its handler runs and defers a free
 * until the handler returns; the mark is a flag, not a count, so once a
 * nested loop re-entered the handler, the outer invocation is no longer
 * protected.  enter()/leave() track that, and reentered_below() keeps
 * such objects from being freed.
 */
static void enter(int id)
{
	if (g_obj[id].running > 0) {
		g_obj[id].reentered = true;
	}
	g_obj[id].running++;
}

static void leave(int id)
{
	if (--g_obj[id].running == 0) {
		g_obj[id].reentered = false;
	}
}

static void act(int self);
static bool reentered_below(int id);
static void reap(void);

static void fd_handler(struct tevent_context *ev, struct tevent_fd *fde,
		       uint16_t flags, void *pvt)
{
	int id = (int)(intptr_t)pvt;
	struct obj *o = &g_obj[id];
	unsigned char c = 0;

	check_handler_ev(id, ev);
	if (flags & TEVENT_FD_READ) {
		ssize_t n = read(g_sock[o->end], &c, 1);

		if (n == 1) {
			g_pending[o->end]--;
			out("F%d fd flags=%u byte=%c%s", id, (unsigned)flags,
			    c, tag_text(K_FD, fde));
		} else if (n == 0) {
			out("F%d fd flags=%u eof%s", id, (unsigned)flags,
			    tag_text(K_FD, fde));
		} else {
			out("F%d fd flags=%u read=%zd errno=%d%s", id,
			    (unsigned)flags, n, errno, tag_text(K_FD, fde));
		}
	} else {
		out("F%d fd flags=%u%s", id, (unsigned)flags,
		    tag_text(K_FD, fde));
	}
	enter(id);
	act(id);
	leave(id);
}

static void timer_handler(struct tevent_context *ev, struct tevent_timer *te,
			  struct timeval now, void *pvt)
{
	int id = (int)(intptr_t)pvt;

	(void)now;
	out("T%d timer%s", id, tag_text(K_TIMER, te));
	check_handler_ev(id, ev);
	/* fired: no longer pending (whether the library frees it shows as
	 * a "gone" line) */
	g_obj[id].due = false;
	enter(id);
	act(id);
	leave(id);
}

static void imm_handler(struct tevent_context *ev, struct tevent_immediate *im,
			void *pvt)
{
	int id = (int)(intptr_t)pvt;

	out("I%d imm%s", id, tag_text(K_IMM, im));
	check_handler_ev(id, ev);
	g_obj[id].scheduled = false;
	g_obj[id].wrap = 0;
	enter(id);
	act(id);
	leave(id);
}

static void sig_handler(struct tevent_context *ev, struct tevent_signal *se,
			int signum, int count, void *info, void *pvt)
{
	int id = (int)(intptr_t)pvt;
	int si = sig_index(signum);

	if (info != NULL) {
		siginfo_t *i = info;

		out("S%d sig=%d count=%d si_signo=%d si_code=%d%s", id, si,
		    count, i->si_signo == signum, i->si_code,
		    tag_text(K_SIG, se));
	} else {
		out("S%d sig=%d count=%d%s", id, si, count,
		    tag_text(K_SIG, se));
	}
	check_handler_ev(id, ev);
	if (si >= 0) {
		g_sig_pending[si] = false;
	}
	enter(id);
	act(id);
	leave(id);
}

static const char *state_name(enum tevent_req_state st)
{
	switch (st) {
	case TEVENT_REQ_INIT: return "init";
	case TEVENT_REQ_IN_PROGRESS: return "progress";
	case TEVENT_REQ_DONE: return "done";
	case TEVENT_REQ_USER_ERROR: return "error";
	case TEVENT_REQ_TIMED_OUT: return "timeout";
	case TEVENT_REQ_NO_MEMORY: return "nomem";
	case TEVENT_REQ_RECEIVED: return "received";
	}
	return "?";
}

static void print_req(int id);
static void set_print_fn(int id, bool own);

static void req_callback(struct tevent_req *req)
{
	int id = (int)(intptr_t)tevent_req_callback_data_void(req);
	struct obj *o = &g_obj[id];
	enum tevent_req_state st = TEVENT_REQ_DONE;
	uint64_t err = 0;
	bool is_err = tevent_req_is_error(req, &st, &err);

	o->rst = 1;
	if (o->rkind == RK_WAKEUP) {
		out("R%d cb wakeup=%d", id, tevent_wakeup_recv(req));
	} else if (o->rkind == RK_QWAIT) {
		out("R%d cb qwait=%d", id, tevent_queue_wait_recv(req));
	} else {
		out("R%d cb is_error=%d state=%s err=%llu", id, is_err,
		    state_name(st), (unsigned long long)err);
	}
	enter(id);
	/* what the caller does with a finished request (not from inside
	 * tevent_req_cancel(), which may still look at it) */
	switch (o->in_cancel || reentered_below(id) ? 3 : rnd(4)) {
	case 0:
		out("R%d free", id);
		talloc_free(req);
		reap();
		break;
	case 1:
		out("R%d received", id);
		tevent_req_received(req);
		o->rst = 2;
		reap();
		break;
	default:
		break;
	}
	/* what it was, as a caller's debug message would show it */
	if (g_obj[id].live && chance(15)) {
		print_req(id);
	}
	if (g_obj[id].live) {
		act(id);
	}
	leave(id);
}

static void req_cleanup(struct tevent_req *req, enum tevent_req_state st)
{
	int id = (int)(intptr_t)tevent_req_callback_data_void(req);

	/* the callback data is only for the caller: cleanup must not act */
	out("R%d cleanup state=%s", id, state_name(st));
}

static bool req_cancel(struct tevent_req *req)
{
	int id = (int)(intptr_t)tevent_req_callback_data_void(req);
	unsigned what = rnd(3);

	out("R%d cancel_fn -> %s", id, what == 0 ? "false" : what == 1 ?
	    "true" : "error");
	if (what == 2) {
		g_obj[id].rst = 1;
		g_obj[id].in_cancel = true;
		tevent_req_error(req, ECANCELED);
		if (g_obj[id].kind == K_REQ) {
			g_obj[id].in_cancel = false;
		}
	}
	return what != 0;
}

static void queue_trigger(struct tevent_req *req, void *pvt)
{
	int qid = (int)(intptr_t)pvt;
	int id = (int)(intptr_t)tevent_req_callback_data_void(req);

	out("Q%d trigger R%d", qid, id);
	enter(id);
	if (g_obj[id].qentry != NULL && chance(15)) {
		/* Samba's way to put a trigger back until the queue restarts:
		 * only the head of a stopped queue may be untriggered */
		tevent_queue_stop(g_obj[qid].ptr);
		tevent_queue_entry_untrigger(g_obj[id].qentry);
		out("Q%d stop, untrigger R%d", qid, id);
	} else if (chance(40) && g_obj[id].rst == 0) {
		out("R%d done(in trigger)", id);
		g_obj[id].rst = 1;
		tevent_req_done(req);
	} else if (g_obj[id].live) {
		act(id);
	}
	leave(id);
}

static void close_handler(struct tevent_context *ev, struct tevent_fd *fde,
			  int fd, void *pvt)
{
	int id = (int)(intptr_t)pvt;

	(void)ev;
	(void)fde;
	out("F%d close_fn fd_ok=%d", id, fd == g_sock[g_obj[id].end]);
}

/* ------------------------------------------------------------------ */
/* Operations (top level and from handlers). */


/* With epoll-batch excluded, may another fde get flags? */
static bool may_activate(int id)
{
	int i;

	if (!g_excl[EX_EPOLL_BATCH] || !g_epoll) {
		return true;
	}
	for (i = 1; i < g_nobj; i++) {
		if (i != id && g_obj[i].live && !g_obj[i].dying &&
		    g_obj[i].kind == K_FD && g_obj[i].flags != 0 &&
		    !g_closed[g_obj[i].end]) {
			return false;
		}
	}
	return true;
}

static int count_fdes_on(int end)
{
	int i, n = 0;

	for (i = 1; i < g_nobj; i++) {
		if (g_obj[i].live && g_obj[i].kind == K_FD && g_obj[i].end == end) {
			n++;
		}
	}
	return n;
}

static uint16_t random_flags(void)
{
	static const uint16_t f[] = {
		0, TEVENT_FD_READ, TEVENT_FD_READ, TEVENT_FD_READ,
		TEVENT_FD_WRITE, TEVENT_FD_READ | TEVENT_FD_WRITE,
	};

	uint16_t flags = f[rnd(sizeof(f) / sizeof(f[0]))];

	if (g_fd_error && chance(25)) {
		flags |= TEVENT_FD_ERROR;
	}
	return flags;
}

static void op_add_fd(void)
{
	const char *pname;
	void *parent;
	int id, wid, end = (int)rnd(NEND), fd;
	struct tevent_fd *fde;
	struct tevent_context *ev;

	bool one_per_end = g_excl[EX_MPX] || (g_excl[EX_MPX_EPOLL] && g_epoll);

	if (count_fdes_on(end) >= (one_per_end ? 1 : 2)) {
		return;
	}
	parent = pick_parent(&pname);
	id = new_obj(K_FD);
	if (id == 0) {
		return;
	}
	g_obj[id].end = end;
	g_obj[id].flags = random_flags();
	if (!may_activate(id)) {
		g_obj[id].flags = 0;
	}
	ev = pick_ev(&wid);
	g_obj[id].dupfd = new_dup(end);
	fd = g_obj[id].dupfd != 0 ? g_obj[id].dupfd : g_sock[end];
	g_creating = id;
	fde = tevent_add_fd(ev, parent, fd, g_obj[id].flags, fd_handler,
			    (void *)(intptr_t)id);
	g_creating = 0;
	out("add F%d end=%d%s flags=%u parent=%s%s -> %s", id, end,
	    g_obj[id].dupfd != 0 ? " (dup)" : "", (unsigned)g_obj[id].flags,
	    pname, via(wid), fde ? "ok" : "NULL");
	if (fde == NULL) {
		report_dup(id);
		return;
	}
	g_obj[id].ptr = fde;
	g_obj[id].live = true;
	g_obj[id].wrap = wid;
	add_marker(fde, id, false);
	if (g_obj[id].dupfd != 0) {
		tevent_fd_set_auto_close(fde);
	} else if (chance(20)) {
		tevent_fd_set_close_fn(fde, close_handler);
		g_obj[id].close_fn = true;
	}
	maybe_tag(id);
}

static void op_add_timer(void)
{
	const char *pname;
	void *parent;
	struct tevent_timer *te;
	struct timeval tv;
	unsigned k = 0;
	int id, wid;
	bool due = chance(75);
	bool zero = due && chance(15);
	struct tevent_context *ev;

	parent = pick_parent(&pname);
	id = new_obj(K_TIMER);
	if (id == 0) {
		return;
	}
	if (zero) {
		tv = tevent_timeval_zero();
	} else if (due) {
		tv = due_time(&k);
	} else {
		tv = tevent_timeval_current_ofs(3600, 0);
	}
	ev = pick_ev(&wid);
	g_creating = id;
	te = tevent_add_timer(ev, parent, tv, timer_handler, (void *)(intptr_t)id);
	g_creating = 0;
	if (zero) {
		out("add T%d zero parent=%s%s -> %s", id, pname, via(wid),
		    te ? "ok" : "NULL");
	} else if (due) {
		out("add T%d due+%u parent=%s%s -> %s", id, k, pname, via(wid),
		    te ? "ok" : "NULL");
	} else {
		out("add T%d far parent=%s%s -> %s", id, pname, via(wid),
		    te ? "ok" : "NULL");
	}
	if (te == NULL) {
		return;
	}
	g_obj[id].ptr = te;
	g_obj[id].live = true;
	g_obj[id].due = due;
	g_obj[id].wrap = wid;
	add_marker(te, id, false);
	maybe_tag(id);
}

/*
 * (Re)schedule immediate id, on the main context or a wrapper.  Upstream
 * keeps the wrapper of an immediate that is still pending when it is
 * scheduled again on the main context; a cancel or a run forgets it.
 */
static void schedule_imm(int id)
{
	struct obj *o = &g_obj[id];
	int wid;
	struct tevent_context *ev = pick_ev(&wid);

	tevent_schedule_immediate(o->ptr, ev, imm_handler, (void *)(intptr_t)id);
	out("schedule I%d%s", id, via(wid));
	if (wid != 0 || !o->scheduled) {
		o->wrap = wid;
	}
	o->scheduled = true;
	o->detached = false;
}

static void op_add_imm(void)
{
	const char *pname;
	void *parent = pick_parent(&pname);
	struct tevent_immediate *im;
	int id = new_obj(K_IMM);

	if (id == 0) {
		return;
	}
	im = tevent_create_immediate(parent);
	out("add I%d parent=%s -> %s", id, pname, im ? "ok" : "NULL");
	if (im == NULL) {
		return;
	}
	g_obj[id].ptr = im;
	g_obj[id].live = true;
	add_marker(im, id, false);
	maybe_tag(id);
	if (chance(70)) {
		schedule_imm(id);
	}
}

static void op_add_signal(void)
{
	const char *pname;
	void *parent;
	struct tevent_signal *se;
	int si = (int)rnd(NSIG_USED);
	int id, wid;
	bool first;
	struct tevent_context *ev;

	if (g_excl[EX_SIGNAL]) {
		return;
	}
	if (g_excl[EX_STALE_SIGINFO] && g_sig_stale[si] &&
	    sig_flags[si] > 0 && (sig_flags[si] & SA_SIGINFO)) {
		return;
	}
	parent = pick_parent(&pname);
	id = new_obj(K_SIG);
	if (id == 0) {
		return;
	}
	g_obj[id].signum = sig_nums[si];
	g_obj[id].sa_flags = sig_flags[si] >= 0 ? sig_flags[si] :
		(chance(50) ? (int)SA_RESETHAND : 0) |
		(chance(30) ? SA_RESTART : 0);
	sig_update_default(si);
	first = !sig_listening(sig_nums[si]);
	ev = pick_ev(&wid);
	g_creating = id;
	se = tevent_add_signal(ev, parent, sig_nums[si], g_obj[id].sa_flags,
			       sig_handler, (void *)(intptr_t)id);
	g_creating = 0;
	out("add S%d sig=%d%s%s parent=%s%s -> %s", id, si,
	    g_obj[id].sa_flags & SA_RESETHAND ? " oneshot" : "",
	    g_obj[id].sa_flags & SA_RESTART ? " restart" : "", pname,
	    via(wid), se ? "ok" : "NULL");
	if (se == NULL) {
		return;
	}
	if (first) {
		g_sig_installed[si] = g_obj[id].sa_flags;
	}
	g_obj[id].ptr = se;
	g_obj[id].live = true;
	g_obj[id].wrap = wid;
	add_marker(se, id, false);
	maybe_tag(id);
}

struct rstate {
	int id;
};

static void setup_req(int id, struct tevent_req *req)
{
	struct obj *o = &g_obj[id];

	o->ptr = req;
	o->live = true;
	add_marker(req, id, false);
	tevent_req_set_callback(req, req_callback, (void *)(intptr_t)id);
	if (chance(30)) {
		tevent_req_set_cleanup_fn(req, req_cleanup);
	}
	if (chance(10)) {
		set_print_fn(id, true);
	}
}

static void op_add_req(void)
{
	const char *pname;
	void *parent = pick_req_parent(&pname);
	struct tevent_req *req;
	struct rstate *st = NULL;
	int id = new_obj(K_REQ);
	unsigned r = rnd(10);
	int wid;
	struct tevent_context *ev;

	if (id == 0) {
		return;
	}
	if (r < 6) {
		g_creating = id;
		req = tevent_req_create(parent, &st, struct rstate);
		g_creating = 0;
		out("add R%d plain parent=%s -> %s", id, pname, req ? "ok" : "NULL");
		if (req == NULL) {
			return;
		}
		g_obj[id].rkind = RK_PLAIN;
		st->id = id;
		g_obj[id].state = st;
		add_marker(st, id, true);
		if (chance(15)) {
			/* made on a profiled request's state, it has one
			 * already: the refusal fails it (no callback yet) */
			bool ok = tevent_req_set_profile(req);

			out("R%d set_profile -> %d", id, ok);
			if (!ok) {
				g_obj[id].rst = 1;
			}
		}
		if (chance(10)) {
			/* finished before the caller sees it, then posted so
			 * the callback (set below, as a caller would) runs
			 * from the loop: the _send pattern */
			g_obj[id].rst = 1;
			ev = pick_ev(&wid);
			if (chance(50)) {
				tevent_req_done(req);
				out("R%d done+post%s", id, via(wid));
			} else {
				tevent_req_error(req, 1 + rnd(200));
				out("R%d error+post%s", id, via(wid));
			}
			tevent_req_post(req, ev);
		}
		setup_req(id, req);
		if (g_obj[id].rst == 0 && chance(20)) {
			tevent_req_set_cancel_fn(req, req_cancel);
		}
		if (g_obj[id].rst == 0 && chance(15)) {
			unsigned k = 0;
			bool due = chance(60);
			struct timeval tv = due ? due_time(&k)
					: tevent_timeval_current_ofs(3600, 0);

			ev = pick_ev(&wid);
			out("R%d endtime %s+%u%s -> %d", id, due ? "due" : "far", k,
			    via(wid), tevent_req_set_endtime(req, ev, tv));
		}
	} else if (r < 9) {
		unsigned k = 0;
		bool due = chance(85);
		struct timeval tv = due ? due_time(&k)
				: tevent_timeval_current_ofs(3600, 0);

		ev = pick_ev(&wid);
		g_creating = id;
		req = tevent_wakeup_send(parent, ev, tv);
		g_creating = 0;
		out("add R%d wakeup %s+%u parent=%s%s -> %s", id,
		    due ? "due" : "far", k, pname, via(wid), req ? "ok" : "NULL");
		if (req == NULL) {
			return;
		}
		g_obj[id].rkind = RK_WAKEUP;
		setup_req(id, req);
	} else {
		int q = pick(K_QUEUE);

		if (q == 0 || g_excl[EX_QUEUE]) {
			out("add R%d qwait: no queue", id);
			return;
		}
		g_creating = id;
		req = tevent_queue_wait_send(parent, g_ev, g_obj[q].ptr);
		g_creating = 0;
		out("add R%d qwait Q%d parent=%s -> %s", id, q, pname,
		    req ? "ok" : "NULL");
		if (req == NULL) {
			return;
		}
		g_obj[id].rkind = RK_QWAIT;
		g_obj[id].queue = q;
		setup_req(id, req);
	}
}

static void op_add_queue(void)
{
	const char *pname;
	void *parent;
	struct tevent_queue *q;
	int id;

	if (g_excl[EX_QUEUE]) {
		return;
	}
	parent = pick_parent(&pname);
	id = new_obj(K_QUEUE);
	if (id == 0) {
		return;
	}
	q = tevent_queue_create(parent, "script_queue");
	out("add Q%d parent=%s -> %s", id, pname, q ? "ok" : "NULL");
	if (q == NULL) {
		return;
	}
	g_obj[id].ptr = q;
	g_obj[id].live = true;
	add_marker(q, id, false);
	if (chance(30)) {
		tevent_queue_stop(q);
		out("Q%d stop", id);
	}
}

static void op_queue_add(void)
{
	int q = pick(K_QUEUE), r = pick(K_REQ);
	struct obj *ro = &g_obj[r];
	unsigned how = rnd(3);
	bool ok;

	if (q == 0 || r == 0 || ro->rkind != RK_PLAIN || ro->queue != 0 ||
	    ro->rst != 0) {
		return;
	}
	/* the trigger may run right here (optimize_empty) */
	out("Q%d add R%d how=%u", q, r, how);
	ro->queue = q;
	if (how == 0) {
		ok = tevent_queue_add(g_obj[q].ptr, g_ev, ro->ptr, queue_trigger,
				      (void *)(intptr_t)q);
	} else {
		struct tevent_queue_entry *e;
		unsigned long lines = g_lines;

		if (how == 1) {
			e = tevent_queue_add_entry(g_obj[q].ptr, g_ev, ro->ptr,
						   queue_trigger,
						   (void *)(intptr_t)q);
		} else {
			e = tevent_queue_add_optimize_empty(
				g_obj[q].ptr, g_ev, ro->ptr, queue_trigger,
				(void *)(intptr_t)q);
		}
		ok = e != NULL;
		/* a trigger that ran inside the add may have freed it */
		if (ok && g_lines == lines) {
			ro->qentry = e;
			if (chance(40)) {
				uint64_t tag = 1 + rnd(999);

				tevent_queue_entry_set_tag(e, tag);
				out("R%d entry set_tag %llu", r,
				    (unsigned long long)tag);
			}
		}
	}
	out("Q%d add R%d -> %d", q, r, ok);
}

static void op_queue_ctl(void)
{
	int q = pick(K_QUEUE);

	if (q == 0) {
		return;
	}
	if (chance(50)) {
		tevent_queue_start(g_obj[q].ptr);
		out("Q%d start", q);
	} else {
		tevent_queue_stop(g_obj[q].ptr);
		out("Q%d stop", q);
	}
	if (g_obj[q].live) {
		out("Q%d length=%zu running=%d", q,
		    tevent_queue_length(g_obj[q].ptr),
		    tevent_queue_running(g_obj[q].ptr));
	}
}

static void free_obj(int id, int self);

/* Is a (by our parent map) descendant of id, or id itself, a handler a
 * nested loop re-entered (see enter())?  Freeing it would release memory
 * an outer invocation still uses -- upstream too. */
static bool reentered_below(int id)
{
	int i;

	for (i = 1; i < g_nobj; i++) {
		int p = i;

		if (!g_obj[i].live ||
		    (g_obj[i].running < 2 && !g_obj[i].reentered)) {
			continue;
		}
		while (p != 0 && p != id) {
			p = g_obj[p].parent;
		}
		if (p == id) {
			return true;
		}
	}
	return false;
}

static void op_free(int self)
{
	int id = pick(K_NONE);
	struct obj *o;

	if (id == 0) {
		return;
	}
	o = &g_obj[id];
	/* Upstream walks a signal's handler list while calling them: a
	 * signal handler may free itself, not another signal event. */
	if (self != 0 && g_obj[self].kind == K_SIG && o->kind == K_SIG &&
	    id != self) {
		return;
	}
	if (reentered_below(id)) {
		return;
	}
	/* a running request's own trigger/callback is the only user of it */
	if (o->kind == K_REQ && o->running && id != self) {
		return;
	}
	if (o->kind == K_QUEUE) {
		/* freeing a queue from inside its own trigger: skip */
		int i;

		for (i = 1; i < g_nobj; i++) {
			if (g_obj[i].kind == K_REQ && g_obj[i].running &&
			    g_obj[i].queue == id) {
				return;
			}
		}
	}
	free_obj(id, self);
}

static void free_obj(int id, int self)
{
	struct obj *o = &g_obj[id];
	int ret;

	out("free %c%d%s", kind_letter[o->kind], id, id == self ? " (self)" : "");
	ret = talloc_free(o->ptr);
	if (ret != 0) {
		out("free %c%d -> %d", kind_letter[o->kind], id, ret);
	}
	if (o->live) {
		/* a busy event: the library frees it after its handler */
		if (o->kind == K_FD && o->dupfd != 0) {
			out("F%d dup %s while busy", id,
			    fd_open(o->dupfd) ? "open" : "closed");
		}
		o->dying = true;
		o->due = false;
		o->scheduled = false;
		o->flags = 0;
	}
	reap();
}

static void op_update_timer(int self)
{
	int id = pick(K_TIMER);
	struct timeval tv;
	unsigned k = 0;
	bool due = chance(70);

	if (id == 0) {
		return;
	}
	/* Upstream frees a timer once its handler returns, even if the
	 * handler re-armed it (the freed timer stays in the list): never
	 * update a timer whose handler is running. */
	if (g_obj[id].running) {
		return;
	}
	/* A timer its wrapper left behind has no context: upstream's
	 * update dereferences it. */
	if (g_obj[id].detached) {
		return;
	}
	tv = due ? due_time(&k) : tevent_timeval_current_ofs(3600, 0);
	tevent_update_timer(g_obj[id].ptr, tv);
	g_obj[id].due = due;
	out("update T%d %s+%u%s", id, due ? "due" : "far", k,
	    id == self ? " (self)" : "");
}

static void op_set_flags(void)
{
	int id = pick(K_FD);
	uint16_t f = random_flags();

	if (id == 0 || (f != 0 && !may_activate(id))) {
		return;
	}
	/* epoll: a flag change reaches the kernel at the next wait in ours,
	 * at once in upstream, so the two meet a dead descriptor at
	 * different times (README, "Intended differences") */
	if (g_epoll && g_closed[g_obj[id].end]) {
		return;
	}
	g_obj[id].flags_set = true;
	tevent_fd_set_flags(g_obj[id].ptr, f);
	/* an fde its wrapper left behind ignores new flags */
	g_obj[id].flags = g_obj[id].detached ? 0 : f;
	out("flags F%d %u -> get=%u", id, (unsigned)f,
	    (unsigned)tevent_fd_get_flags(g_obj[id].ptr));
}

static void op_write(void)
{
	int end = (int)rnd(NEND);
	int peer = end ^ 1;
	unsigned n = 1 + rnd(3), i;
	static unsigned char next = 'a';

	if (g_pending[end] + (int)n > MAX_UNREAD || g_closed[end] ||
	    g_closed[peer] || g_shut_wr[peer]) {
		return;
	}
	for (i = 0; i < n; i++) {
		if (write(g_sock[peer], &next, 1) != 1) {
			fatal("write");
		}
		g_pending[end]++;
		next = next == 'z' ? 'a' : next + 1;
	}
	out("write end=%d n=%u pending=%d", end, n, g_pending[end]);
}

/* An end stops sending: its peer reads the end of the data (RDHUP). */
static void op_shutdown_end(void)
{
	int end = (int)rnd(NEND);

	if (g_closed[end] || g_shut_wr[end]) {
		return;
	}
	if (shutdown(g_sock[end], SHUT_WR) != 0) {
		fatal("shutdown");
	}
	g_shut_wr[end] = true;
	out("shutdown end=%d", end);
}

/* Close a socket end behind the library's back (see g_closing). */
static void op_close_end(void)
{
	int end = (int)rnd(NEND), i, n = 0;

	for (i = 0; i < NEND; i++) {
		n += g_closed[i];
	}
	if (g_closed[end] || n >= MAX_CLOSED) {
		return;
	}
	/* epoll: a flag change may not have reached the kernel yet (see
	 * op_set_flags()) */
	for (i = 1; g_epoll && i < g_nobj; i++) {
		if (g_obj[i].live && g_obj[i].kind == K_FD &&
		    g_obj[i].end == end && g_obj[i].flags_set) {
			return;
		}
	}
	close(g_sock[end]);
	g_closed[end] = true;
	g_pending[end] = 0;
	out("close end=%d", end);
}

static void op_schedule(void)
{
	int id = pick(K_IMM);
	unsigned r = rnd(10);

	if (id == 0) {
		return;
	}
	if (r < 8) {
		schedule_imm(id);
	} else {
		/* a NULL handler cancels, as tevent_reset_immediate() does */
		bool reset = r == 9 && g_reset_immediate != NULL;

		if (reset) {
			g_reset_immediate(g_obj[id].ptr);
		} else {
			tevent_schedule_immediate(g_obj[id].ptr, g_ev, NULL,
						  NULL);
		}
		g_obj[id].scheduled = false;
		g_obj[id].wrap = 0;
		out("%s I%d", reset ? "reset" : "cancel", id);
	}
}

static void op_raise(void)
{
	int si = (int)rnd(NSIG_USED);
	bool handled;

	if (g_excl[EX_SIGNAL]) {
		return;
	}
	handled = sig_handled(sig_nums[si]);
	sig_update_default(si);
	if (g_sig_default[si]) {
		out("raise sig=%d (default action)", si);
		raise(sig_nums[si]);
		return;
	}
	out("raise sig=%d", si);
	raise(sig_nums[si]);
	if (handled) {
		g_sig_pending[si] = true;
		if (g_sig_installed[si] & SA_RESETHAND) {
			g_sig_default[si] = sig_listening(sig_nums[si]);
		}
	}
}

/* Another tag on an event, or none (0). */
static void op_retag(void)
{
	static const enum kind kinds[] = {K_FD, K_TIMER, K_IMM, K_SIG};
	int id = pick(kinds[rnd(4)]);

	if (id != 0) {
		set_tag(id, chance(20) ? 0 : 1 + rnd(999));
	}
}

/*
 * Source locations in a request's description: the script's own are the
 * same for every library, a library's own (the requests it makes, the
 * timeouts it reports) name its source, so they become "lib".  In place:
 * the result is never longer.
 */
static void norm_locations(char *s)
{
	char res[1024];
	size_t o = 0;
	const char *p = s;

	while (*p != '\0' && o + 1 < sizeof(res)) {
		size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz"
				  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-");

		if (n > 0 && p[n] == ':' && isdigit((unsigned char)p[n + 1]) &&
		    memchr(p, '.', n) != NULL) {
			size_t end = n + 1;
			const char *slash = memchr(p, '/', n);

			if (slash != NULL && p[0] == 'R' && slash > p + 1 &&
			    strspn(p + 1, "0123456789") ==
				    (size_t)(slash - p - 1)) {
				/* "R5/<location>": the request's name stays */
				while (p <= slash && o + 1 < sizeof(res)) {
					res[o++] = *p++;
				}
				continue;
			}

			while (isdigit((unsigned char)p[end])) {
				end++;
			}
			if (memmem(p, n, "tevent_script", 13) == NULL) {
				o += (size_t)snprintf(res + o, sizeof(res) - o,
						      "lib");
				p += end;
				continue;
			}
			n = end;
		}
		if (n == 0) {
			n = 1;
		}
		while (n-- > 0 && *p != '\0' && o + 1 < sizeof(res)) {
			res[o++] = *p++;
		}
	}
	res[o] = '\0';
	strcpy(s, res);
}

static char *req_print_fn(struct tevent_req *req, TALLOC_CTX *mem_ctx)
{
	int id = (int)(intptr_t)tevent_req_callback_data_void(req);

	return talloc_asprintf(mem_ctx, "R%d by its own print function", id);
}

static void set_print_fn(int id, bool own)
{
	tevent_req_set_print_fn(g_obj[id].ptr, own ? req_print_fn : NULL);
	out("R%d set_print_fn %s", id, own ? "own" : "NULL");
}

/* tevent_req_print(), with the library's description or the caller's. */
static void print_req(int id)
{
	char *text;
	char res[1024];

	text = tevent_req_print(g_top, g_obj[id].ptr);
	if (text == NULL) {
		out("R%d print -> NULL", id);
		return;
	}
	dbg_normalise(text, res, sizeof(res));
	norm_locations(res);
	out("R%d print %s", id, res);
	talloc_free(text);
}

static void op_req_print(void)
{
	int id = pick(K_REQ);

	if (id == 0) {
		return;
	}
	if (chance(25)) {
		set_print_fn(id, chance(75));
	} else {
		print_req(id);
	}
}

static void op_finish_req(int self)
{
	int id = pick(K_REQ);
	struct obj *o = &g_obj[id];
	struct tevent_req *req;
	unsigned how = rnd(11);

	if (id == 0 || o->rkind != RK_PLAIN || o->rst != 0) {
		return;
	}
	/* a request whose trigger/callback is running finishes only there */
	if (o->running && id != self) {
		return;
	}
	req = o->ptr;
	if (how < 7 || how == 8) {
		o->rst = 1;
	}
	if (how < 4) {
		out("R%d done", id);
		tevent_req_done(req);
	} else if (how < 6) {
		uint64_t e = 1 + rnd(200);

		out("R%d error %llu", id, (unsigned long long)e);
		tevent_req_error(req, e);
	} else if (how < 7) {
		out("R%d nomem(NULL) -> %d", id, tevent_req_nomem(NULL, req));
	} else if (how < 8) {
		/* error(0) is not an error: the request stays in progress */
		out("R%d error(0) -> %d", id, tevent_req_error(req, 0));
		return;
	} else if (how < 9) {
		out("R%d defer+done", id);
		tevent_req_defer_callback(req, g_ev);
		tevent_req_done(req);
	} else if (how == 10) {
		/* drops the endtime timer, if any; still in progress */
		out("R%d reset_endtime", id);
		tevent_req_reset_endtime(req);
	} else {
		out("R%d cancel -> ...", id);
		out("R%d cancel -> %d", id, tevent_req_cancel(req));
		return;
	}
}

/*
 * Profiles.  A profiled request records its name, where it started and
 * stopped, and how it ended; requests made on its state while it runs
 * get profiles of their own that move under its profile when they finish.
 * Printed: everything but the times (only that they were taken: the
 * clock may step) and the pid (only whether it is ours).
 */
static void print_profile(const struct tevent_req_profile *p, int level)
{
	const char *name = NULL, *start = NULL, *stop = NULL;
	struct timeval t_start = {0, 0}, t_stop = {0, 0};
	pid_t pid = 0;
	enum tevent_req_state state = TEVENT_REQ_INIT;
	uint64_t err = 0;
	char loc_start[256], loc_stop[256];
	const struct tevent_req_profile *sub;
	int n = 0;

	tevent_req_profile_get_name(p, &name);
	tevent_req_profile_get_start(p, &start, &t_start);
	tevent_req_profile_get_stop(p, &stop, &t_stop);
	tevent_req_profile_get_status(p, &pid, &state, &err);
	snprintf(loc_start, sizeof(loc_start), "%s", start ? start : "-");
	snprintf(loc_stop, sizeof(loc_stop), "%s", stop ? stop : "-");
	norm_locations(loc_start);
	norm_locations(loc_stop);
	out("%*sprofile %s start=%s stop=%s state=%s err=%llu pid=%s%s",
	    2 * level, "", name ? name : "-", loc_start, loc_stop,
	    stop ? state_name(state) : "-", (unsigned long long)err,
	    pid == 0 ? "0" : pid == getpid() ? "ours" : "other",
	    t_start.tv_sec == 0 ? " no start time" :
	    stop != NULL && t_stop.tv_sec == 0 ? " no stop time" : "");
	for (sub = tevent_req_profile_get_subprofiles(p);
	     sub != NULL && level < 8; sub = tevent_req_profile_next(sub)) {
		if (++n > 20) {
			out("%*s...", 2 * level + 2, "");
			break;
		}
		print_profile(sub, level + 1);
	}
}

static void op_profile(int self)
{
	int id = pick(K_REQ);
	struct obj *o = &g_obj[id];
	unsigned how = rnd(4);

	if (id == 0 || o->rkind != RK_PLAIN) {
		return;
	}
	if (how == 0) {
		/* a second profile is refused by failing the request (its
		 * callback runs here): only where it may finish */
		if (o->rst != 0 || o->in_cancel || (o->running && id != self)) {
			return;
		}
		out("R%d set_profile ...", id);
		out("R%d set_profile -> %d", id,
		    tevent_req_set_profile(o->ptr));
		reap();
	} else if (how < 3) {
		const struct tevent_req_profile *p =
			tevent_req_get_profile(o->ptr);

		out("R%d get_profile -> %s", id, p ? "profile" : "NULL");
		if (p != NULL) {
			print_profile(p, 1);
		}
	} else {
		struct tevent_req_profile *p =
			tevent_req_move_profile(o->ptr, g_top);

		out("R%d move_profile -> %s", id, p ? "profile" : "NULL");
		if (p != NULL) {
			print_profile(p, 1);
			talloc_free(p);
		}
	}
}

static void op_add_wrap(void)
{
	const char *pname;
	void *parent;
	struct tevent_context *w;
	struct wstate *ws = NULL;
	int id;

	if (g_excl[EX_WRAP]) {
		return;
	}
	parent = pick_parent(&pname);
	id = new_obj(K_WRAP);
	if (id == 0) {
		return;
	}
	/* refused while nesting is allowed */
	errno = 0;
	w = tevent_context_wrapper_create(g_ev, parent, &wrap_ops, &ws,
					  struct wstate);
	out("add W%d parent=%s -> %s", id, pname, w ? "ok" : "NULL");
	if (w == NULL) {
		out("add W%d errno=%d", id, errno);
		return;
	}
	ws->id = id;
	g_obj[id].ptr = w;
	g_obj[id].live = true;
	add_marker(w, id, false);
	out("W%d is_wrapper=%d same_loop=%d main_is_wrapper=%d", id,
	    tevent_context_is_wrapper(w), tevent_context_same_loop(w, g_ev),
	    tevent_context_is_wrapper(g_ev));
}

/*
 * Use a wrapper's environment from outside its handlers: push_use, make
 * an event or two, pop_use.  Nothing is freed in between: upstream's
 * pop_use reads the wrapper after a deferred free.
 */
static void op_use(void)
{
	int w = pick(K_WRAP), i, n;
	bool ok;

	/* in use already (its handler runs): upstream aborts */
	if (w == 0 || g_obj[w].running) {
		return;
	}
	g_obj[w].running++;
	ok = tevent_context_push_use(g_obj[w].ptr);
	out("W%d push_use -> %d", w, ok);
	/* an orphan refuses; were it to accept, nothing is made through it */
	if (ok && g_obj[w].orphan) {
		tevent_context_pop_use(g_obj[w].ptr);
		out("W%d pop_use", w);
	} else if (ok) {
		n = (int)rnd(3);
		for (i = 0; i < n; i++) {
			if (chance(50)) {
				op_add_timer();
			} else {
				op_add_imm();
			}
		}
		tevent_context_pop_use(g_obj[w].ptr);
		out("W%d pop_use", w);
	}
	g_obj[w].running--;
}

/* Does the library free this event by itself once its handler ran? */
static bool freed_by_library(const struct obj *o)
{
	return o->kind == K_TIMER ||
	       (o->kind == K_SIG && (o->sa_flags & SA_RESETHAND) != 0);
}

/*
 * A handler on the stack whose event hangs (maybe indirectly) from an
 * event the library frees after its handler (a timer, a one-shot signal
 * event): a nested loop could re-enter that handler and then run the
 * ancestor, which frees the re-entered event under its outer run --
 * upstream's busy mark is a flag the inner run clears (see enter()).
 * Every re-entry starts with a nested loop while the handler runs, so
 * refusing to nest then is enough.
 */
static bool running_under_library_free(void)
{
	int i;

	for (i = 1; i < g_nobj; i++) {
		int p;

		if (!g_obj[i].live || g_obj[i].running == 0) {
			continue;
		}
		for (p = g_obj[i].parent; p != 0; p = g_obj[p].parent) {
			if (g_obj[p].live && freed_by_library(&g_obj[p])) {
				return true;
			}
		}
	}
	return false;
}

/*
 * A nested loop as Samba's synchronous wrappers run one: tevent_req_poll()
 * on a wakeup request of its own, due like the program's timers (so by
 * value and FIFO among them), so the loop never blocks and always ends,
 * after whatever is ready before it has run.
 */
static int g_polling;  /* tevent_req_poll() calls on the stack */

static void nest_req_poll(void)
{
	unsigned k;
	struct tevent_req *req = tevent_wakeup_send(g_top, g_ev, due_time(&k));
	bool ok;

	if (req == NULL) {
		fatal("tevent_wakeup_send");
	}
	out("poll due+%u {", k);
	g_depth++;
	g_polling++;
	g_loop_calls++;
	ok = tevent_req_poll(req, g_ev);
	g_loop_calls--;
	g_polling--;
	g_depth--;
	out("} poll=%d wakeup=%d", ok, tevent_wakeup_recv(req));
	talloc_free(req);
	reap();
}

static void op_nest(int self)
{
	(void)self;
	if (!g_nesting || g_excl[EX_NEST] || g_depth >= 4 ||
	    running_under_library_free()) {
		return;
	}
	if (chance(25)) {
		nest_req_poll();
		return;
	}
	out("nest {");
	g_depth++;
	one_turn("nested");
	g_depth--;
	out("}");
}

static void fork_here(void);
static void reinit_here(void);
static void reinit_context(void);
static bool g_may_fork;  /* this program forks once */
static bool g_forked;

/* One random operation; self is the object whose handler runs (0: top). */
static void random_op(int self)
{
	unsigned r = rnd(112);

	if (r < 8) {
		op_add_fd();
	} else if (r < 18) {
		op_add_timer();
	} else if (r < 26) {
		op_add_imm();
	} else if (r < 30) {
		op_add_signal();
	} else if (r < 38) {
		op_add_req();
	} else if (r < 40) {
		op_add_queue();
	} else if (r < 46) {
		op_queue_add();
	} else if (r < 48) {
		op_queue_ctl();
	} else if (r < 58) {
		op_free(self);
	} else if (r < 63) {
		op_update_timer(self);
	} else if (r < 68) {
		op_set_flags();
	} else if (r < 76) {
		if (r >= 74 && g_closing) {
			if (chance(50)) {
				op_close_end();
			} else {
				op_shutdown_end();
			}
		} else {
			op_write();
		}
	} else if (r < 82) {
		op_schedule();
	} else if (r < 86) {
		op_raise();
	} else if (r < 96) {
		op_finish_req(self);
	} else if (r < 100) {
		if (self != 0) {
			op_nest(self);
		}
	} else if (r < 102) {
		op_add_wrap();
	} else if (r < 104) {
		op_use();
	} else if (r < 106) {
		op_retag();
	} else if (r < 107) {
		op_req_print();
	} else if (r < 108) {
		op_call_depth();
	} else if (r < 111) {
		op_profile(self);
	} else if (g_may_fork && !g_forked) {
		fork_here();
	} else {
		reinit_here();
	}
}

/* What a handler does besides logging itself. */
static int g_act_depth;

static void act(int self)
{
	unsigned n, i;

	if (g_stop_acting || g_lines > MAX_LINES) {
		g_stop_acting = true;
		return;
	}
	/* handlers that finish requests run callbacks that act again */
	if (g_act_depth >= 6) {
		return;
	}
	g_act_depth++;
	n = rnd(4);   /* 0..3 actions */
	for (i = 0; i < n; i++) {
		/* signal handlers run inside the library's signal walk:
		 * keep them to simple actions */
		if (g_obj[self].kind == K_SIG) {
			unsigned r = rnd(4);

			if (r == 0) {
				op_write();
			} else if (r == 1) {
				op_raise();
			} else if (r == 2) {
				op_add_timer();
			} else if (g_obj[self].live && !g_obj[self].dying &&
				   !reentered_below(self) && chance(30)) {
				free_obj(self, self);
			}
			continue;
		}
		random_op(self);
	}
	g_act_depth--;
}

/* ------------------------------------------------------------------ */
/* Cross-thread phase. */

#define MAXPROD 3
#define MAXMSG 40

struct tmsg {
	int producer, seq;
};

struct tphase {
	struct tevent_context *ev;
	struct tevent_thread_proxy *tp;
	struct tevent_threaded_context *tctx;
	int nprod, nmsg;
	bool use_tctx[MAXPROD];
	struct tevent_immediate *ims[MAXPROD][MAXMSG];  /* tctx producers */
	struct tmsg tctx_msgs[MAXPROD][MAXMSG];
	int seen[MAXPROD][MAXMSG];
	int order[MAXPROD][MAXMSG];
	int nseen[MAXPROD];
	int total;
};

static struct tphase *g_tp;

static void tmsg_got(struct tmsg *m)
{
	struct tphase *t = g_tp;

	if (m->producer < 0 || m->producer >= t->nprod || m->seq < 0 ||
	    m->seq >= t->nmsg) {
		fatal("bad thread message");
	}
	t->seen[m->producer][m->seq]++;
	t->order[m->producer][t->nseen[m->producer]++] = m->seq;
	t->total++;
}

static void proxy_handler(struct tevent_context *ev, struct tevent_immediate *im,
			  void *pvt)
{
	struct tmsg *m = talloc_get_type_abort(pvt, struct tmsg);

	(void)ev;
	(void)im;
	tmsg_got(m);
	talloc_free(m);
}

static void tctx_handler(struct tevent_context *ev, struct tevent_immediate *im,
			 void *pvt)
{
	(void)ev;
	(void)im;
	tmsg_got(pvt);
}

static void *producer(void *arg)
{
	int p = (int)(intptr_t)arg;
	struct tphase *t = g_tp;
	int i;

	for (i = 0; i < t->nmsg; i++) {
		if (t->use_tctx[p]) {
			tevent_threaded_schedule_immediate(t->tctx, t->ims[p][i],
							   tctx_handler,
							   &t->tctx_msgs[p][i]);
		} else {
			/* talloc is not thread-safe: only the NULL context */
			struct tevent_immediate *im = tevent_create_immediate(NULL);
			struct tmsg *m = talloc(NULL, struct tmsg);

			if (im == NULL || m == NULL) {
				abort();
			}
			m->producer = p;
			m->seq = i;
			tevent_thread_proxy_schedule(t->tp, &im, proxy_handler, &m);
		}
	}
	return NULL;
}

static void thread_phase(const char *backend)
{
	struct tphase *t = calloc(1, sizeof(*t));
	pthread_t th[MAXPROD];
	int p, i, turns;
	bool ok = true;

	if (t == NULL) {
		fatal("calloc");
	}
	g_tp = t;
	t->ev = tevent_context_init_byname(NULL, backend);
	if (t->ev == NULL) {
		fatal("context for thread phase");
	}
	g_tev = t->ev;
	set_debug(t->ev);
	g_dbg_collect = true;
	t->nprod = 1 + (int)rnd(MAXPROD);
	t->nmsg = 1 + (int)rnd(MAXMSG);
	t->tp = tevent_thread_proxy_create(t->ev);
	t->tctx = tevent_threaded_context_create(t->ev, t->ev);
	if (t->tp == NULL || t->tctx == NULL) {
		fatal("proxy/threaded context");
	}
	for (p = 0; p < t->nprod; p++) {
		t->use_tctx[p] = chance(40);
		for (i = 0; i < t->nmsg && t->use_tctx[p]; i++) {
			t->ims[p][i] = tevent_create_immediate(t->ev);
			t->tctx_msgs[p][i].producer = p;
			t->tctx_msgs[p][i].seq = i;
			if (t->ims[p][i] == NULL) {
				fatal("immediate");
			}
		}
	}
	out("threads producers=%d messages=%d", t->nprod, t->nmsg);
	for (p = 0; p < t->nprod; p++) {
		out("producer %d via %s", p, t->use_tctx[p] ? "threaded_context"
			    : "thread_proxy");
		if (pthread_create(&th[p], NULL, producer, (void *)(intptr_t)p) != 0) {
			fatal("pthread_create");
		}
	}
	/* every message wakes the loop; the turn limit is only a guard */
	for (turns = 0; turns < 1000000 && t->total < t->nprod * t->nmsg; turns++) {
		if (tevent_loop_once(t->ev) != 0) {
			out("thread loop_once failed errno=%d", errno);
			break;
		}
	}
	for (p = 0; p < t->nprod; p++) {
		pthread_join(th[p], NULL);
	}
	for (p = 0; p < t->nprod; p++) {
		bool fifo = true;

		for (i = 0; i < t->nmsg; i++) {
			if (t->seen[p][i] != 1) {
				out("producer %d message %d seen %d times", p, i,
				    t->seen[p][i]);
				ok = false;
			}
			if (i > 0 && t->order[p][i] < t->order[p][i - 1]) {
				fifo = false;
			}
		}
		/* Order is not promised across a batch upstream (see README
		 * "Intended differences"): information only. */
		printf("# producer %d fifo=%d\n", p, fifo);
	}
	out("threads received=%d %s", t->total, ok ? "ok" : "MISSING");
	talloc_free(t->ev);
	g_tev = NULL;
	g_dbg_collect = false;
	dbg_flush_collected();
	free(t);
	g_tp = NULL;
}

/* ------------------------------------------------------------------ */

static void stray_handler(int sig)
{
	int i = sig_index(sig);

	if (i >= 0) {
		g_stray[i]++;
	}
}

static void print_library(void)
{
	Dl_info info;
	void *fn = dlsym(RTLD_DEFAULT, "tevent_context_init");
	char real[PATH_MAX];

	if (fn != NULL && dladdr(fn, &info) != 0 && info.dli_fname != NULL &&
	    realpath(info.dli_fname, real) != NULL) {
		printf("# library %s\n", real);
	} else {
		printf("# library unknown\n");
	}
}

static void alarm_handler(int sig)
{
	static const char msg[] = "FATAL: hang guard (alarm) fired\n";

	(void)sig;
	fflush(stdout);
	if (write(1, msg, sizeof(msg) - 1) < 0) {
		/* nothing left to do */
	}
	_exit(4);
}

/*
 * In a quarter of the programs the process forks once, at a random step
 * of the top level or earlier from a handler (as a server forks from its
 * accept handler), and the child runs the rest of the program on the same
 * context (no tevent_re_initialise(), so each library must notice by
 * itself: epoll needs a new instance, the signal and wakeup machinery is
 * the parent's copy).  The parent closes its descriptors, waits and exits
 * as the child did, so the output is one program's.  No threads exist yet
 * at that point.
 */
static void fork_here(void)
{
	pid_t pid;
	int st, go[2];
	char c;

	if (!g_may_fork || g_forked) {
		return;
	}
	g_forked = true;
	out("fork");
	fflush(stdout);
	if (pipe(go) != 0) {
		fatal("pipe");
	}
	pid = fork();
	if (pid < 0) {
		fatal("fork");
	}
	if (pid > 0) {
		int fd;

		alarm(0);  /* the child has its own */
		/* a socket end the child closes must be closed for good (the
		 * peer sees the hangup), so the parent lets go of everything,
		 * and last of the pipe that holds the child back until then */
		for (fd = 3; fd < 1024; fd++) {
			if (fd != go[1]) {
				close(fd);
			}
		}
		close(go[1]);
		while (waitpid(pid, &st, 0) < 0) {
			if (errno != EINTR) {
				fatal("waitpid");
			}
		}
		if (WIFEXITED(st)) {
			_exit(WEXITSTATUS(st));
		}
		printf("FATAL: the child died of signal %d\n", WTERMSIG(st));
		fflush(stdout);
		_exit(5);
	}
	alarm(60);
	close(go[1]);
	while (read(go[0], &c, 1) < 0 && errno == EINTR) {
		/* the parent has not closed everything yet */
	}
	if (g_epoll) {
		/*
		 * The child's epoll backend moves to an epoll set of its own
		 * (reporting descriptors closed meanwhile) when an fd event
		 * is added or freed, or at the next wait; upstream also when
		 * flags change, ours tells the kernel about flags only at the
		 * next wait (README, "Intended differences").  Adding and
		 * freeing one moves both here.
		 */
		talloc_free(tevent_add_fd(g_ev, NULL, go[0], 0, fd_handler,
					  NULL));
	}
	close(go[0]);
	out("in the child");
	/* as Samba's servers do after a fork, in half of the children */
	if (chance(50)) {
		reinit_context();
	}
}

/*
 * tevent_re_initialise(): every event of the context (and of its
 * wrappers) is unhooked for good but stays allocated, the wrappers lose
 * their main context, the backend starts afresh.  A fifth of the programs
 * call it now and then, at the top level or from a handler, besides the
 * forked children above.  Never while tevent_req_poll() waits for a
 * request (its wakeup timer is gone with the rest, so it would wait
 * forever), from the handler of an fd event made through a wrapper
 * (upstream then skips the after hook and never lets the wrapper go: its
 * free is refused for good; ours calls the hook, with no main context, as
 * upstream does for timers and immediates: README, "Intended
 * differences"), or from a signal handler (only simple actions there, see
 * act()).  From a wrapper's timer or immediate handler both libraries call
 * the after hook without a main context.
 */
static bool g_may_reinit;
static int g_reinits;
#define MAX_REINITS 3

static bool wrapper_fd_running(void)
{
	int i;

	for (i = 1; i < g_nobj; i++) {
		if (g_obj[i].live && g_obj[i].kind == K_FD &&
		    g_obj[i].wrap != 0 && g_obj[i].running > 0) {
			return true;
		}
	}
	return false;
}

static void reinit_context(void)
{
	int i, ret;

	if (g_polling > 0 || wrapper_fd_running()) {
		return;
	}
	g_reinits++;
	out("reinit {");
	ret = tevent_re_initialise(g_ev);
	out("} reinit -> %d", ret);
	/* the level is 0 now, under our calls; the hook is gone */
	g_level_shift = g_loop_calls;
	g_hook = false;
	for (i = 1; i < g_nobj; i++) {
		struct obj *o = &g_obj[i];

		if (!o->live) {
			continue;
		}
		if (is_event(o)) {
			detach_event(o);
		} else if (o->kind == K_WRAP) {
			o->orphan = true;
		}
	}
	/* unhooked like the rest: the next idle turn makes another */
	g_sentinel_armed = false;
	install_hook_maybe();
}

static void reinit_here(void)
{
	if (g_may_reinit && g_reinits < MAX_REINITS) {
		reinit_context();
	}
}

/* fd moved to a number of its own at HIGH_FD and above (see g_closing) */
static int move_high(int fd, int end)
{
	int hi = fcntl(fd, F_DUPFD_CLOEXEC, HIGH_FD + end);

	if (hi < 0) {
		fatal("F_DUPFD");
	}
	close(fd);
	return hi;
}

static void usage(void)
{
	fprintf(stderr, "usage: tevent_script --seed N [--ops K] "
		"[--backend NAME] [--exclude a,b,...] [--debug] [--fd-error]\n"
		"       [--reset-immediate] [--call-depth]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const char *const backends[] = {"standard", "epoll", "poll", "poll_mt"};
	unsigned long long seed = 0;
	const char *backend = NULL;
	bool have_seed = false;
	int ops = -1, i, step, fork_at;
	struct sigaction sa;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
			seed = strtoull(argv[++i], NULL, 0);
			have_seed = true;
		} else if (strcmp(argv[i], "--ops") == 0 && i + 1 < argc) {
			ops = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
			backend = argv[++i];
		} else if (strcmp(argv[i], "--debug") == 0) {
			g_debug = true;
		} else if (strcmp(argv[i], "--fd-error") == 0) {
			g_fd_error = true;
		} else if (strcmp(argv[i], "--reset-immediate") == 0) {
			g_want_reset_immediate = true;
		} else if (strcmp(argv[i], "--call-depth") == 0) {
			g_want_call_depth = true;
		} else if (strcmp(argv[i], "--exclude") == 0 && i + 1 < argc) {
			char *list = strdup(argv[++i]), *tok, *save = NULL;
			int e;

			for (tok = strtok_r(list, ",", &save); tok != NULL;
			     tok = strtok_r(NULL, ",", &save)) {
				for (e = 0; e < EX_COUNT; e++) {
					if (strcmp(tok, excl_names[e]) == 0) {
						g_excl[e] = true;
						break;
					}
				}
				if (e == EX_COUNT) {
					fprintf(stderr, "unknown exclusion %s\n", tok);
					usage();
				}
			}
			free(list);
		} else {
			usage();
		}
	}
	if (!have_seed) {
		usage();
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	g_rng = seed;
	print_library();

	/* Signals nobody handles must not kill us: count them instead.
	 * tevent puts this handler back when a signal event goes away. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = stray_handler;
	sigemptyset(&sa.sa_mask);
	sig_nums[2] = SIGRTMIN + 2;
	for (i = 0; i < NSIG_USED; i++) {
		sigaction(sig_nums[i], &sa, NULL);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = alarm_handler;
	sigaction(SIGALRM, &sa, NULL);
	alarm(60);

	if (backend == NULL) {
		backend = backends[rnd(4)];
	}
	if (ops < 0) {
		ops = 60 + (int)rnd(200);
	}
	g_epoll = strcmp(backend, "epoll") == 0 || strcmp(backend, "standard") == 0;
	{
		uint64_t h = seed ^ 0x636c6f7365656e64ULL;

		g_closing = !g_excl[EX_CLOSE] && tt_splitmix64(&h) % 4 == 0;
	}
	/* not talloc_new(): a forked program's parent exits holding it, and
	 * valgrind counts a block as lost when the only pointer to it is to
	 * its end, as a zero-size chunk's is */
	g_top = talloc_named_const(NULL, 1, "top");
	g_ev = tevent_context_init_byname(NULL, backend);
	if (g_top == NULL || g_ev == NULL) {
		fatal("context %s", backend);
	}
	g_nesting = chance(50);
	if (g_nesting) {
		tevent_loop_allow_nesting(g_ev);
	}
	g_trace = chance(50);
	out("seed %llu backend %s ops %d nesting %d trace %d", seed, backend, ops,
	    g_nesting, g_trace);
	if (g_closing) {
		out("socket ends may be closed");
	}
	set_debug(g_ev);
	if (g_want_reset_immediate) {
		*(void **)&g_reset_immediate =
			dlsym(RTLD_DEFAULT, "tevent_reset_immediate");
		if (g_reset_immediate == NULL) {
			fatal("--reset-immediate: the library has no "
			      "tevent_reset_immediate()");
		}
	}
	if (g_trace) {
		set_traces();
	}
	if (g_trace || g_want_call_depth) {
		tevent_set_trace_callback(g_ev, trace_loop_point, NULL);
	}
	install_hook_maybe();
	if (g_want_call_depth) {
		set_call_depth();
	}

	for (i = 0; i < NCHAN; i++) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
			fatal("socketpair");
		}
		fcntl(sv[0], F_SETFL, O_NONBLOCK);
		fcntl(sv[1], F_SETFL, O_NONBLOCK);
		if (g_closing) {
			sv[0] = move_high(sv[0], 2 * i);
			sv[1] = move_high(sv[1], 2 * i + 1);
		}
		g_sock[2 * i] = sv[0];
		g_sock[2 * i + 1] = sv[1];
	}

	g_may_fork = chance(25);
	g_may_reinit = chance(20);
	fork_at = g_may_fork ? (int)rnd((unsigned)ops) : -1;
	for (step = 0; step < ops; step++) {
		g_depth = 0;
		if (step == fork_at) {
			fork_here();
		}
		if (chance(40)) {
			one_turn("top");
		} else {
			random_op(0);
		}
	}
	/* let what is ready run out (writers are always ready: bounded) */
	g_stop_acting = true;
	for (step = 0; step < 300 && model_ready(); step++) {
		one_turn("drain");
	}

	{
		int live[K_COUNT] = {0};

		for (i = 1; i < g_nobj; i++) {
			if (g_obj[i].live) {
				live[g_obj[i].kind]++;
			}
		}
		out("live fd=%d timer=%d imm=%d sig=%d req=%d queue=%d wrap=%d",
		    live[K_FD], live[K_TIMER], live[K_IMM], live[K_SIG],
		    live[K_REQ], live[K_QUEUE], live[K_WRAP]);
		for (i = 1; i < g_nobj; i++) {
			struct obj *o = &g_obj[i];

			if (o->live && o->kind == K_FD) {
				out("F%d get_flags=%u", i,
				    (unsigned)tevent_fd_get_flags(o->ptr));
			}
			if (o->live && o->kind == K_REQ) {
				out("R%d in_progress=%d", i,
				    tevent_req_is_in_progress(o->ptr));
			}
			if (o->live && o->kind == K_QUEUE) {
				out("Q%d length=%zu running=%d", i,
				    tevent_queue_length(o->ptr),
				    tevent_queue_running(o->ptr));
			}
		}
	}

	/* Teardown: the context first (its events become inert), or last. */
	if (chance(50)) {
		out("teardown: free queues, ev, then top");
		/* A queue entry's destructor uses the queue's context
		 * (upstream too): queues go before the context. */
		for (i = 1; i < g_nobj; i++) {
			if (g_obj[i].live && g_obj[i].kind == K_QUEUE) {
				free_obj(i, 0);
			}
		}
		talloc_free(g_ev);
		/* wrappers that outlive their main context refuse to be used */
		for (i = 1; i < g_nobj; i++) {
			if (g_obj[i].live && g_obj[i].kind == K_WRAP) {
				out("W%d push_use after ev -> %d", i,
				    tevent_context_push_use(g_obj[i].ptr));
			}
		}
		g_ev = NULL;
		talloc_free(g_top);
	} else {
		out("teardown: free top, then ev");
		talloc_free(g_top);
		talloc_free(g_ev);
		/* its address may come back for something else */
		g_ev = NULL;
	}
	for (i = 0; i < NSIG_USED; i++) {
		out("stray sig=%d count=%u", i, g_stray[i]);
	}

	if (g_depth_set_callback != NULL) {
		/* the cross-thread phase's turns depend on the threads */
		g_depth_set_callback(NULL, NULL);
	}
	if (!g_excl[EX_THREADS]) {
		thread_phase(backend);
	}
	out("end");
	return 0;
}

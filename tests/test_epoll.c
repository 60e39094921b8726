/*
 * Tests for the epoll-based backends ("epoll" and "standard") when the
 * kernel refuses what they ask for.
 *
 * Descriptors closed behind the library's back: an fde added for a closed
 * descriptor (also a stray number far above any open one, which must not
 * make the backend's per-number table grow to it), or whose descriptor was
 * closed before its flags changed (noticed at the next wait, upstream at
 * once), is disabled with an error message and never runs, as upstream does; a
 * descriptor number that now names another file is watched again (ours;
 * upstream's epoll aborts there and its standard backend falls back).  An
 * fde freed after its descriptor was closed, with flags or without, gets
 * upstream's warning, before its DETACH trace.
 *
 * Registrations that outlive their descriptor (closed while a dup keeps
 * the file open, so the kernel keeps reporting it and DEL cannot remove
 * it): ours moves to a new epoll set instead of spinning on the reports or
 * passing them to the fde that uses the number now.  Upstream reads its
 * freed fde there and aborts.
 *
 * A broken epoll set (the test puts an eventfd on its descriptor number,
 * so every epoll call fails with EINVAL): the standard backend moves the
 * context to poll and carries on, whether the failure comes from
 * epoll_wait(), from adding an fde, from a flag change (told to the kernel
 * at the next wait; changes that cancel out by then are never told), from
 * freeing an fde inside a handler in the middle of a batch of reports, or
 * from freeing an fde; a failed wait
 * is made good in the same tevent_loop_once() call, as upstream's replay
 * does.  Threaded immediates and signals keep working after the move.  The
 * plain epoll backend aborts with a fatal message instead.
 *
 * Nothing here measures time: every descriptor is made ready before the
 * loop runs, loops are bounded by turn counts, and a watchdog far in the
 * future only fires if something is broken.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>

#include "common/tt.h"
#include "common/tt_never.h"

/* handlers have fixed signatures */
#pragma GCC diagnostic ignored "-Wunused-parameter"

#define EPOLL_BACKENDS "epoll standard"
#define MAX_TURNS 50

/* ------------------------------------------------------------------ */
/* helpers                                                             */

/* Messages at TEVENT_DEBUG_WARNING or worse, kept for the checks. */
struct dbg_log {
	int errors;                /* at TEVENT_DEBUG_ERROR or worse */
	int warnings;
	char text[4096];
};

static void log_debug(void *context, enum tevent_debug_level level,
		      const char *fmt, va_list ap)
{
	struct dbg_log *log = context;
	size_t used = strlen(log->text);

	if (level > TEVENT_DEBUG_WARNING) {
		return;
	}
	if (level == TEVENT_DEBUG_WARNING) {
		log->warnings++;
	} else {
		log->errors++;
	}
	vsnprintf(log->text + used, sizeof(log->text) - used, fmt, ap);
}

static bool is_epoll_fd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0) {
		return false;
	}
	target[n] = '\0';
	return strstr(target, "eventpoll") != NULL;
}

#define MAX_FDS 1024

static void mark_epoll_fds(bool seen[MAX_FDS])
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		int fd = atoi(e->d_name);

		if (e->d_name[0] != '.' && fd < MAX_FDS && is_epoll_fd(fd)) {
			seen[fd] = true;
		}
	}
	closedir(d);
}

struct fixture {
	struct tevent_context *ev;
	const char *backend;
	int epfd;                  /* the context's epoll descriptor */
	struct dbg_log log;
};

/* A context on the case's backend; finds the epoll set it opened. */
static void setup(struct fixture *f, void **state)
{
	bool before[MAX_FDS] = {false}, after[MAX_FDS] = {false};
	int fd;

	memset(f, 0, sizeof(*f));
	f->backend = *state;
	mark_epoll_fds(before);
	f->ev = tt_backend_ev(state);
	mark_epoll_fds(after);
	f->epfd = -1;
	for (fd = 0; fd < MAX_FDS; fd++) {
		if (after[fd] && !before[fd]) {
			assert_int_equal(f->epfd, -1);
			f->epfd = fd;
		}
	}
	assert_int_not_equal(f->epfd, -1);
	tevent_set_debug(f->ev, log_debug, &f->log);
	tevent_add_timer(f->ev, f->ev, tevent_timeval_current_ofs(60, 0),
			 tt_never_timer, NULL);
}

/*
 * Error-level messages of one failed epoll call named `word`.  A MOD or
 * DEL that fails for any reason but EBADF also names the descriptor's fde
 * at FATAL level first in 0.16 and later (and ours); 0.14 did not.
 */
static int errors_for(const char *word)
{
	bool names_fde = strcmp(word, "EPOLL_CTL_MOD") == 0 ||
			 strcmp(word, "EPOLL_CTL_DEL") == 0;

	return names_fde && tt_library_minor() >= 16 ? 2 : 1;
}

/* The messages of exactly one failed epoll call, `word`, so far. */
static void expect_one_error(const struct fixture *f, const char *word)
{
	char fatal[64];

	assert_int_equal(f->log.errors, errors_for(word));
	assert_non_null(strstr(f->log.text, word));
	if (errors_for(word) == 2) {
		snprintf(fatal, sizeof(fatal), "%s for primary[fde=0x", word);
		assert_non_null(strstr(f->log.text, fatal));
	}
}

/*
 * One message so far, about epoll_ctl() `op` finding the descriptor closed:
 * in 0.16 and later (and ours) it names the event ("primary") with the
 * flags it had then; 0.14 worded it otherwise.
 */
static void expect_ebadf(const struct fixture *f, const char *op,
			 const struct tevent_fd *fde, int fd,
			 const char *flags, const char *handler)
{
	char want[256];

	expect_one_error(f, "EBADF");
	if (tt_library_minor() < 16) {
		return;
	}
	snprintf(want, sizeof(want), "%s EBADF for primary[fde=%p,fd=%d,%s,%s] "
		 "- disabling\n", op, (const void *)fde, fd, flags, handler);
	assert_string_equal(f->log.text, want);
}

/*
 * ... and that call made the standard backend fall back to poll.  Upstream
 * says "replay[1]" for a failed wait (poll then serves the same turn).
 */
static void expect_fallback(const struct fixture *f, const char *word)
{
	char head[64], tail[64];
	const char *at;

	expect_one_error(f, word);
	snprintf(head, sizeof(head), "%s%s failed (", word,
		 strcmp(word, "epoll_wait") == 0 ? "()" : "");
	snprintf(tail, sizeof(tail), ") replay[%d] - calling panic_fallback\n",
		 strcmp(word, "epoll_wait") == 0);
	at = strstr(f->log.text, head);
	assert_non_null(at);
	assert_non_null(strstr(at, tail));
}

/* Every later epoll call on the set fails with EINVAL. */
static void break_epoll_set(struct fixture *f)
{
	int z = eventfd(0, EFD_CLOEXEC);

	assert_true(z >= 0);
	assert_int_equal(dup2(z, f->epfd), f->epfd);
	close(z);
}

static void new_pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
				    sv), 0);
}

static void send_byte(int fd)
{
	assert_int_equal(write(fd, "x", 1), 1);
}

/* An fd event that counts its runs and reads what arrived. */
struct watched {
	int sv[2];                 /* sv[0] watched, sv[1] written */
	struct tevent_fd *fde;
	int runs;
	uint16_t flags;            /* of the last run */
};

static void watched_handler(struct tevent_context *ev, struct tevent_fd *fde,
			    uint16_t flags, void *private_data)
{
	struct watched *w = private_data;
	char c;

	w->runs++;
	w->flags = flags;
	if (flags & TEVENT_FD_READ) {
		(void)read(w->sv[0], &c, 1);
	}
}

/* Watches `fd` for reading; `peer` is where its bytes come from. */
static void watch_fd(struct fixture *f, struct watched *w, int fd, int peer)
{
	memset(w, 0, sizeof(*w));
	w->sv[0] = fd;
	w->sv[1] = peer;
	w->fde = tevent_add_fd(f->ev, f->ev, fd, TEVENT_FD_READ,
			       watched_handler, w);
	assert_non_null(w->fde);
}

static void watch(struct fixture *f, struct watched *w)
{
	int sv[2];

	new_pair(sv);
	watch_fd(f, w, sv[0], sv[1]);
}

static void unwatch(struct watched *w)
{
	TALLOC_FREE(w->fde);
	close(w->sv[0]);
	close(w->sv[1]);
}

/* A context with two watched pairs, each with a byte to read. */
static void setup_two_ready(struct fixture *f, void **state,
			    struct watched w[2])
{
	setup(f, state);
	watch(f, &w[0]);
	watch(f, &w[1]);
	send_byte(w[0].sv[1]);
	send_byte(w[1].sv[1]);
}

static void unwatch_all(struct watched *w, size_t n)
{
	while (n-- > 0) {
		unwatch(&w[n]);
	}
}

/* Runs turns until *runs reaches `want` (at most MAX_TURNS turns). */
static void run_until(struct fixture *f, const int *runs, int want)
{
	int turns = 0;

	while (*runs < want) {
		assert_true(turns++ < MAX_TURNS);
		assert_int_equal(tevent_loop_once(f->ev), 0);
	}
}

static void idle_reached(struct tevent_context *ev, struct tevent_timer *te,
			 struct timeval now, void *private_data)
{
	*(bool *)private_data = true;
}

/*
 * Runs the loop until it was idle `n` times (a timer 1 ms ahead fired
 * each time), checking that no turn ran more than one handler of `w`: the
 * sum of their counts goes up by at most one per tevent_loop_once().
 */
static void run_idle(struct fixture *f, struct watched *w, size_t nw, int n)
{
	while (n-- > 0) {
		bool idle = false;
		int turns = 0;

		assert_non_null(tevent_add_timer(
			f->ev, f->ev, tevent_timeval_current_ofs(0, 1000),
			idle_reached, &idle));
		while (!idle) {
			int before = 0, after = 0;
			size_t i;

			assert_true(turns++ < MAX_TURNS);
			for (i = 0; i < nw; i++) {
				before += w[i].runs;
			}
			assert_int_equal(tevent_loop_once(f->ev), 0);
			for (i = 0; i < nw; i++) {
				after += w[i].runs;
			}
			assert_true(after - before <= 1);
		}
	}
}

/* Turns until a timer `msec` ahead fired. */
static int turns_until_idle(struct fixture *f, int msec)
{
	bool idle = false;
	int turns = 0;

	assert_non_null(tevent_add_timer(
		f->ev, f->ev, tevent_timeval_current_ofs(0, msec * 1000),
		idle_reached, &idle));
	while (!idle) {
		assert_true(turns++ < MAX_TURNS);
		assert_int_equal(tevent_loop_once(f->ev), 0);
	}
	return turns;
}

/* A byte for `w`: its handler runs once for it, and only once. */
static void serve_one(struct fixture *f, struct watched *w)
{
	int want = w->runs + 1;

	send_byte(w->sv[1]);
	run_until(f, &w->runs, want);
	assert_int_equal(w->flags, TEVENT_FD_READ);
	assert_true(turns_until_idle(f, 10) <= 2);
	assert_int_equal(w->runs, want);
}

/* ------------------------------------------------------------------ */
/* descriptors closed behind the library's back                        */

static void test_epoll_add_closed_fd(void **state)
{
	struct fixture f;
	struct watched live;
	struct tevent_fd *dead;
	int fd;

	setup(&f, state);
	watch(&f, &live);
	fd = dup(live.sv[0]);
	assert_true(fd >= 0);
	close(fd);

	/* upstream hands out the fde, disabled */
	dead = tevent_add_fd(f.ev, f.ev, fd, TEVENT_FD_READ, tt_never_fd,
			     NULL);
	assert_non_null(dead);
	expect_ebadf(&f, "EPOLL_CTL_ADD", dead, fd, "flags=0x1(R)",
		     "tt_never_fd");
	assert_int_equal(tevent_fd_get_flags(dead), 0);

	/* the context goes on serving the others */
	send_byte(live.sv[1]);
	run_until(&f, &live.runs, 1);
	tevent_fd_set_flags(dead, TEVENT_FD_READ);  /* a no-op now */
	run_idle(&f, &live, 1, 3);

	assert_int_equal(talloc_free(dead), 0);
	unwatch(&live);
	tt_finish(f.ev);
}

/* Bytes malloc() handed out, from its arenas and as separate maps. */
static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

/*
 * A number far above any open descriptor (an uninitialised variable, say)
 * is disabled like any closed one, without making the backend's table of
 * descriptor numbers grow to it (16M numbers would be 200 MB here; INT_MAX
 * tens of gigabytes).
 */
static void test_epoll_add_stray_fd_number(void **state)
{
	struct fixture f;
	struct watched live;
	struct tevent_fd *stray;
	size_t before, after;

	setup(&f, state);
	watch(&f, &live);
	before = heap_in_use();
	stray = tevent_add_fd(f.ev, f.ev, 1 << 24, TEVENT_FD_READ,
			      tt_never_fd, NULL);
	after = heap_in_use();
	assert_non_null(stray);
	assert_true(after < before + 1024 * 1024);
	expect_ebadf(&f, "EPOLL_CTL_ADD", stray, 1 << 24, "flags=0x1(R)",
		     "tt_never_fd");
	assert_int_equal(tevent_fd_get_flags(stray), 0);

	serve_one(&f, &live);
	assert_int_equal(talloc_free(stray), 0);
	unwatch(&live);
	tt_finish(f.ev);
}

static void test_epoll_flags_changed_after_close(void **state)
{
	struct fixture f;
	struct watched live, victim;

	setup(&f, state);
	watch(&f, &live);
	watch(&f, &victim);
	send_byte(victim.sv[1]);
	run_until(&f, &victim.runs, 1);

	/* its last reference is gone: the kernel dropped it from the set */
	close(victim.sv[0]);
	tevent_fd_set_flags(victim.fde, TEVENT_FD_READ | TEVENT_FD_WRITE);
	/* the kernel hears of flag changes at the next wait, so that is
	 * where the closed descriptor shows; upstream tells the kernel at
	 * once (README, "Intended differences") */
	assert_int_equal(f.log.errors, tt_is_system_library() ? 1 : 0);
	send_byte(live.sv[1]);
	run_until(&f, &live.runs, 1);
	expect_ebadf(&f, "EPOLL_CTL_MOD", victim.fde, victim.sv[0],
		     "flags=0x3(RW)", "watched_handler");
	assert_int_equal(tevent_fd_get_flags(victim.fde), 0);
	run_idle(&f, &live, 1, 3);
	assert_int_equal(victim.runs, 1);

	TALLOC_FREE(victim.fde);
	close(victim.sv[1]);
	unwatch(&live);
	tt_finish(f.ev);
}

/* Messages and DETACH traces, in the order they came. */
struct ordered_log {
	char text[1024];
};

static void ordered_debug(void *context, enum tevent_debug_level level,
			  const char *fmt, va_list ap)
{
	struct ordered_log *log = context;
	size_t used = strlen(log->text);

	if (level <= TEVENT_DEBUG_WARNING) {
		vsnprintf(log->text + used, sizeof(log->text) - used, fmt, ap);
	}
}

static void ordered_fd_trace(struct tevent_fd *fde,
			     enum tevent_event_trace_point point,
			     void *private_data)
{
	struct ordered_log *log = private_data;
	size_t used = strlen(log->text);

	if (point == TEVENT_EVENT_TRACE_DETACH) {
		snprintf(log->text + used, sizeof(log->text) - used,
			 "DETACH %p\n", (void *)fde);
	}
}

static void log_in_order(struct fixture *f, struct ordered_log *log)
{
	memset(log, 0, sizeof(*log));
	tevent_set_debug(f->ev, ordered_debug, log);
	tevent_set_trace_fd_callback(f->ev, ordered_fd_trace, log);
}

/*
 * Freed after its descriptor was closed: the removal finds EBADF, which
 * is worth a warning, and that comes before the event's DETACH trace (in
 * 0.14 the warning disarmed the event, which then sent no trace).
 */
static void test_epoll_freed_after_close(void **state)
{
	struct fixture f;
	struct watched live, victim;
	struct ordered_log log;
	char want[256];
	void *fde;

	setup(&f, state);
	watch(&f, &live);
	watch(&f, &victim);
	close(victim.sv[0]);
	log_in_order(&f, &log);

	fde = victim.fde;
	TALLOC_FREE(victim.fde);
	if (tt_library_minor() < 16) {
		assert_non_null(strstr(log.text, "EPOLL_CTL_DEL EBADF for "));
		assert_null(strstr(log.text, "DETACH"));
	} else {
		snprintf(want, sizeof(want),
			 "EPOLL_CTL_DEL EBADF for primary[fde=%p,fd=%d,"
			 "flags=0x1(R),watched_handler] - disabling\n"
			 "DETACH %p\n", fde, victim.sv[0], fde);
		assert_string_equal(log.text, want);
	}

	serve_one(&f, &live);
	close(victim.sv[1]);
	unwatch(&live);
	tt_finish(f.ev);
}

/*
 * An fde without flags is never registered, but freeing it still asks
 * the kernel to remove its descriptor, as upstream 0.16 and later do: a
 * descriptor closed in the meantime gets the same warning.  Also for a
 * closed number above every one the backend has seen so far.
 */
static void check_idle_fde_freed_after_close(struct fixture *f, int fd)
{
	struct ordered_log log;
	struct tevent_fd *idle;
	char want[256];

	log_in_order(f, &log);
	idle = tevent_add_fd(f->ev, f->ev, fd, 0, tt_never_fd, NULL);
	assert_non_null(idle);
	/* nothing to tell the kernel yet, so nothing is found wrong */
	assert_string_equal(log.text, "");
	assert_int_equal(talloc_free(idle), 0);
	if (tt_library_minor() < 16) {
		/* 0.14 only removed what it had registered */
		snprintf(want, sizeof(want), "DETACH %p\n", (void *)idle);
	} else {
		snprintf(want, sizeof(want),
			 "EPOLL_CTL_DEL EBADF for primary[fde=%p,fd=%d,"
			 "flags=0x0(),tt_never_fd] - disabling\n"
			 "DETACH %p\n", (void *)idle, fd, (void *)idle);
	}
	assert_string_equal(log.text, want);
}

static void test_epoll_idle_fde_freed_after_close(void **state)
{
	struct fixture f;
	struct watched live;
	int fd, high;

	setup(&f, state);
	watch(&f, &live);
	fd = dup(live.sv[0]);
	assert_true(fd >= 0);
	close(fd);
	check_idle_fde_freed_after_close(&f, fd);

	high = fcntl(live.sv[0], F_DUPFD_CLOEXEC, 900);
	assert_true(high >= 900);
	close(high);
	check_idle_fde_freed_after_close(&f, high);

	tevent_set_trace_fd_callback(f.ev, NULL, NULL);
	tevent_set_debug(f.ev, log_debug, &f.log);
	serve_one(&f, &live);
	unwatch(&live);
	tt_finish(f.ev);
}

/*
 * The number now names another socket, which the epoll set has never
 * seen: a flag change cannot be applied (EPOLL_CTL_MOD fails with
 * ENOENT).  As upstream, the standard backend moves to poll, which watches
 * the socket the number names now, and plain epoll aborts.  (Upstream
 * notices at once, ours at the next wait: README, "Intended differences".)
 */
static void reuse_number_behind_library(struct fixture *f, struct watched *w)
{
	int other[2];

	watch(f, w);
	new_pair(other);
	close(w->sv[0]);
	close(w->sv[1]);
	assert_int_equal(dup2(other[0], w->sv[0]), w->sv[0]);
	close(other[0]);
	w->sv[1] = other[1];
	tevent_fd_set_flags(w->fde, TEVENT_FD_READ | TEVENT_FD_WRITE);
}

static void test_standard_fd_number_reused(void **state)
{
	struct fixture f;
	struct watched w;

	setup(&f, state);
	reuse_number_behind_library(&f, &w);
	assert_int_equal(f.log.errors,
			 tt_is_system_library() ? errors_for("EPOLL_CTL_MOD")
						: 0);
	run_until(&f, &w.runs, 1);
	expect_fallback(&f, "EPOLL_CTL_MOD");
	assert_int_equal(w.flags, TEVENT_FD_WRITE);

	/* poll serves the new socket from now on */
	tevent_fd_set_flags(w.fde, TEVENT_FD_READ);
	send_byte(w.sv[1]);
	run_until(&f, &w.runs, 2);
	assert_int_equal(w.flags, TEVENT_FD_READ);
	assert_int_equal(f.log.errors, errors_for("EPOLL_CTL_MOD"));

	unwatch(&w);
	tt_finish(f.ev);
}

/*
 * A descriptor closed while another descriptor (here a dup; in real
 * programs often a forked child) keeps its file open: the kernel keeps the
 * old registration in the epoll set, and DEL can no longer reach it, as
 * the number names nothing or another file.  Its reports must neither
 * spin the loop nor reach the fdes that use the number now.
 */
struct stale {
	struct watched w;          /* the victim, closed behind our back */
	int keep;                  /* keeps the victim's file open */
	int num;                   /* the victim's descriptor number */
};

static void make_stale(struct fixture *f, struct stale *st)
{
	watch(f, &st->w);
	st->num = st->w.sv[0];
	st->keep = dup(st->num);
	assert_true(st->keep >= 0);
	/* registered for sure: it has reported once */
	send_byte(st->w.sv[1]);
	run_until(f, &st->w.runs, 1);

	close(st->num);
	TALLOC_FREE(st->w.fde);
	assert_non_null(strstr(f->log.text, "EBADF"));
}

/*
 * Makes the leftover registration of `st` ready (and it stays so): one
 * turn drops its report, the next ones sleep until their timer.
 */
static void wake_leftover(struct fixture *f, struct stale *st)
{
	send_byte(st->w.sv[1]);
	assert_true(turns_until_idle(f, 10) <= 3);
	assert_true(turns_until_idle(f, 10) <= 2);
}

static void close_stale(struct stale *st)
{
	close(st->keep);
	close(st->w.sv[1]);
}

static void test_epoll_stale_registration_no_spin(void **state)
{
	struct fixture f;
	struct watched live;
	struct stale st;

	TT_SKIP_ON_UPSTREAM("the leftover registration's report goes to its "
			    "freed fde (talloc aborts)");
	setup(&f, state);
	watch(&f, &live);
	make_stale(&f, &st);

	wake_leftover(&f, &st);
	assert_int_equal(st.w.runs, 1);

	/* the other fdes were moved along */
	serve_one(&f, &live);
	assert_int_equal(f.log.errors, 0);

	close_stale(&st);
	unwatch(&live);
	tt_finish(f.ev);
}

/*
 * The leftover's report and a live fde's report come in one batch, the
 * leftover's first (the kernel lists fds in the order they got ready):
 * dropping the one must keep the other, so the live handler runs in that
 * very turn rather than after the next wait.
 */
static void test_epoll_stale_registration_live_in_same_batch(void **state)
{
	struct fixture f;
	struct watched live;
	struct stale st;

	TT_SKIP_ON_UPSTREAM("the leftover registration's reports go to the "
			    "new fde that took its freed fde's memory, "
			    "without end");
	setup(&f, state);
	make_stale(&f, &st);
	watch(&f, &live);

	send_byte(st.w.sv[1]);
	send_byte(live.sv[1]);
	assert_int_equal(tevent_loop_once(f.ev), 0);
	assert_int_equal(live.runs, 1);
	assert_int_equal(live.flags, TEVENT_FD_READ);
	assert_int_equal(st.w.runs, 1);

	/* no spinning on the leftover afterwards, and live still served */
	assert_true(turns_until_idle(&f, 10) <= 2);
	assert_int_equal(live.runs, 1);
	serve_one(&f, &live);
	assert_int_equal(f.log.errors, 0);

	close_stale(&st);
	unwatch(&live);
	tt_finish(f.ev);
}

static void test_epoll_stale_registration_number_reused(void **state)
{
	struct fixture f;
	struct stale st;
	struct watched now;
	int other[2];

	TT_SKIP_ON_UPSTREAM("the leftover registration's reports go to the "
			    "new fde that took its freed fde's memory, "
			    "without end");
	setup(&f, state);
	new_pair(other);  /* first, or it would get the freed number */
	make_stale(&f, &st);

	/* the number names a quiet socket now, watched by a new fde */
	assert_int_equal(dup2(other[0], st.num), st.num);
	close(other[0]);
	watch_fd(&f, &now, st.num, other[1]);

	/* the old file has data; the new one has none */
	wake_leftover(&f, &st);
	assert_int_equal(now.runs, 0);

	/* the new file's own data is reported, once */
	serve_one(&f, &now);
	assert_int_equal(f.log.errors, 0);

	close_stale(&st);
	unwatch(&now);
	tt_finish(f.ev);
}

/* The usual way into this in real programs: a child inherited the file. */
static void test_epoll_stale_registration_forked_child(void **state)
{
	struct fixture f;
	struct watched w;
	int gate[2];
	int status;
	pid_t pid;
	char c;

	TT_SKIP_ON_UPSTREAM("the leftover registration's report goes to its "
			    "freed fde (talloc aborts)");
	setup(&f, state);
	watch(&f, &w);
	send_byte(w.sv[1]);
	run_until(&f, &w.runs, 1);

	assert_int_equal(pipe(gate), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* hold every inherited descriptor until the parent is done */
		close(gate[1]);
		(void)read(gate[0], &c, 1);
		_exit(0);
	}
	close(gate[0]);

	close(w.sv[0]);
	TALLOC_FREE(w.fde);
	send_byte(w.sv[1]);
	assert_true(turns_until_idle(&f, 10) <= 3);
	assert_true(turns_until_idle(&f, 10) <= 2);
	assert_int_equal(w.runs, 1);
	assert_int_equal(f.log.errors, 0);

	close(gate[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	close(w.sv[1]);
	tt_finish(f.ev);
}

/* The old file comes back under its old number (dup2 of the kept copy):
 * the kernel still holds a registration for exactly that pair. */
static void test_epoll_stale_registration_file_returns(void **state)
{
	struct fixture f;
	struct stale st;
	struct watched back;

	TT_SKIP_ON_UPSTREAM("adding the file again fails (EEXIST) on the "
			    "leftover registration: epoll aborts, standard "
			    "drops to poll");
	setup(&f, state);
	make_stale(&f, &st);

	assert_int_equal(dup2(st.keep, st.num), st.num);
	watch_fd(&f, &back, st.num, st.w.sv[1]);

	serve_one(&f, &back);
	serve_one(&f, &back);
	assert_int_equal(f.log.errors, 0);

	close(st.keep);
	unwatch(&back);
	tt_finish(f.ev);
}

/* ------------------------------------------------------------------ */
/* a broken epoll set                                                  */

static void test_standard_falls_back_when_wait_fails(void **state)
{
	struct fixture f;
	struct watched w[3];

	setup_two_ready(&f, state, w);
	break_epoll_set(&f);

	/* the failed wait is made good by poll in the same call */
	assert_int_equal(tevent_loop_once(f.ev), 0);
	assert_int_equal(w[0].runs + w[1].runs, 1);
	expect_fallback(&f, "epoll_wait");
	run_idle(&f, w, 2, 1);
	assert_int_equal(w[0].runs, 1);
	assert_int_equal(w[1].runs, 1);

	/* new fdes, flag changes and timers all go through poll now */
	watch(&f, &w[2]);
	send_byte(w[2].sv[1]);
	run_until(&f, &w[2].runs, 1);
	tevent_fd_set_flags(w[0].fde, 0);
	send_byte(w[0].sv[1]);
	send_byte(w[1].sv[1]);
	run_until(&f, &w[1].runs, 2);
	run_idle(&f, w, 3, 3);
	assert_int_equal(w[0].runs, 1);
	tevent_fd_set_flags(w[0].fde, TEVENT_FD_READ);
	run_until(&f, &w[0].runs, 2);
	assert_int_equal(f.log.errors, 1);

	unwatch_all(w, 3);
	tt_finish(f.ev);
}

static void test_standard_falls_back_on_add(void **state)
{
	struct fixture f;
	struct watched w[2];

	setup(&f, state);
	watch(&f, &w[0]);
	break_epoll_set(&f);
	watch(&f, &w[1]);
	expect_fallback(&f, "EPOLL_CTL_ADD");

	send_byte(w[1].sv[1]);
	run_until(&f, &w[1].runs, 1);
	send_byte(w[0].sv[1]);
	run_until(&f, &w[0].runs, 1);
	run_idle(&f, w, 2, 3);
	assert_int_equal(w[0].runs + w[1].runs, 2);

	unwatch_all(w, 2);
	tt_finish(f.ev);
}

static void test_standard_falls_back_on_free(void **state)
{
	struct fixture f;
	struct watched w[2];

	setup_two_ready(&f, state, w);
	break_epoll_set(&f);

	TALLOC_FREE(w[0].fde);
	expect_fallback(&f, "EPOLL_CTL_DEL");
	run_until(&f, &w[1].runs, 1);
	run_idle(&f, w, 2, 3);
	assert_int_equal(w[0].runs, 0);
	assert_int_equal(w[1].runs, 1);

	unwatch_all(w, 2);
	tt_finish(f.ev);
}

/*
 * Makes the flag changes on a watched descriptor after its epoll set was
 * broken: nothing may fail yet, since the kernel only hears of them at
 * the next wait.  There `failing_call` fails, the standard backend moves
 * to poll, and the handler runs with the last flags set.  Upstream tells
 * the kernel of each change at once (README, "Intended differences"), so
 * there `upstream_call`, made for the first change, fails right away.
 */
static void flag_changes_on_broken_set(void **state, bool byte_waiting,
				       const uint16_t *changes, size_t n,
				       const char *failing_call,
				       const char *upstream_call)
{
	struct fixture f;
	struct watched w;
	size_t i;

	setup(&f, state);
	watch(&f, &w);
	if (byte_waiting) {
		send_byte(w.sv[1]);
	}
	break_epoll_set(&f);

	for (i = 0; i < n; i++) {
		tevent_fd_set_flags(w.fde, changes[i]);
	}
	if (tt_is_system_library()) {
		expect_fallback(&f, upstream_call);
		failing_call = upstream_call;
	} else {
		assert_int_equal(f.log.errors, 0);
	}
	run_until(&f, &w.runs, 1);
	expect_fallback(&f, failing_call);
	assert_int_equal(w.flags, changes[n - 1]);

	unwatch(&w);
	tt_finish(f.ev);
}

/* A real change fails at the next wait, with the MOD that tells it. */
static void test_standard_falls_back_on_flag_change(void **state)
{
	static const uint16_t changes[] = {TEVENT_FD_WRITE};

	flag_changes_on_broken_set(state, false, changes, 1, "EPOLL_CTL_MOD",
				   "EPOLL_CTL_MOD");
}

/*
 * Changes that cancel out before the next wait (a reader disarming and
 * arming its fd between two reads) never reach the kernel: the first
 * epoll call of the turn is the wait itself.
 */
static void test_standard_cancelled_flag_changes_stay_home(void **state)
{
	static const uint16_t changes[] = {0, TEVENT_FD_WRITE, TEVENT_FD_READ};

	flag_changes_on_broken_set(state, true, changes, 3, "epoll_wait",
				   "EPOLL_CTL_DEL");
}

/*
 * Three descriptors are ready, so one epoll_wait() reports all of them.
 * The first handler to run breaks the set, changes its own flags (noted
 * for the next wait) and frees one of the other two (the failing
 * EPOLL_CTL_DEL moves the context to poll from inside the handler).  The survivor runs once; the freed one
 * and the first one (flags 0 now) never again; one handler per turn.
 */
struct batch {
	struct fixture *f;
	struct watched w[3];
	int order[3];
	int nrun;
};

static void batch_handler(struct tevent_context *ev, struct tevent_fd *fde,
			  uint16_t flags, void *private_data)
{
	struct batch *b = talloc_get_type_abort(private_data, struct batch);
	int i;
	char c;

	for (i = 0; i < 3 && b->w[i].fde != fde; i++) {
	}
	assert_true(i < 3);
	b->w[i].runs++;
	(void)read(b->w[i].sv[0], &c, 1);
	b->order[b->nrun++] = i;
	if (b->nrun == 1) {
		break_epoll_set(b->f);
		tevent_fd_set_flags(fde, 0);
		TALLOC_FREE(b->w[(i + 1) % 3].fde);
	}
}

static void test_standard_falls_back_inside_handler(void **state)
{
	struct fixture f;
	struct batch *b;
	int i, first, freed, survivor;

	setup(&f, state);
	b = talloc_zero(f.ev, struct batch);
	assert_non_null(b);
	b->f = &f;
	for (i = 0; i < 3; i++) {
		new_pair(b->w[i].sv);
		b->w[i].fde = tevent_add_fd(f.ev, f.ev, b->w[i].sv[0],
					    TEVENT_FD_READ, batch_handler, b);
		assert_non_null(b->w[i].fde);
		send_byte(b->w[i].sv[1]);
	}

	assert_int_equal(tevent_loop_once(f.ev), 0);
	assert_int_equal(b->nrun, 1);
	expect_fallback(&f, "EPOLL_CTL_DEL");
	first = b->order[0];
	freed = (first + 1) % 3;
	survivor = (first + 2) % 3;

	run_idle(&f, b->w, 3, 2);
	assert_int_equal(b->nrun, 2);
	assert_int_equal(b->w[survivor].runs, 1);
	assert_int_equal(b->w[freed].runs, 0);
	assert_int_equal(b->w[first].runs, 1);

	for (i = 0; i < 3; i++) {
		TALLOC_FREE(b->w[i].fde);
		close(b->w[i].sv[0]);
		close(b->w[i].sv[1]);
	}
	tt_finish(f.ev);
}

/* After the move, threaded immediates still wake the loop and signals
 * still arrive. */
static void imm_ran(struct tevent_context *ev, struct tevent_immediate *im,
		    void *private_data)
{
	(*(int *)private_data)++;
}

struct sender {
	struct tevent_threaded_context *tctx;
	struct tevent_immediate *im;
	int *ran;
};

static void *send_immediate(void *arg)
{
	struct sender *s = arg;

	tevent_threaded_schedule_immediate(s->tctx, s->im, imm_ran, s->ran);
	return NULL;
}

static void test_standard_fallback_keeps_wakeups(void **state)
{
	struct fixture f;
	struct watched w;
	struct sender s;
	pthread_t thread;
	int ran = 0, signals = 0;

	setup(&f, state);
	s.tctx = tevent_threaded_context_create(f.ev, f.ev);
	assert_non_null(s.tctx);
	s.im = tevent_create_immediate(f.ev);
	assert_non_null(s.im);
	s.ran = &ran;
	assert_non_null(tevent_add_signal(f.ev, f.ev, SIGUSR1, 0,
					  tt_count_signal, &signals));
	watch(&f, &w);
	send_byte(w.sv[1]);
	break_epoll_set(&f);
	run_until(&f, &w.runs, 1);
	assert_non_null(strstr(f.log.text, "epoll_wait"));

	/* the loop may sleep in poll() before the thread gets to send */
	assert_int_equal(pthread_create(&thread, NULL, send_immediate, &s), 0);
	run_until(&f, &ran, 1);
	assert_int_equal(pthread_join(thread, NULL), 0);

	assert_int_equal(raise(SIGUSR1), 0);
	run_until(&f, &signals, 1);
	assert_int_equal(f.log.errors, 1);

	unwatch(&w);
	tt_finish(f.ev);
}

/* The plain epoll backend has nothing to fall back to. */
static void write_debug(void *context, enum tevent_debug_level level,
			const char *fmt, va_list ap)
{
	char buf[512];
	int n;

	if (level != TEVENT_DEBUG_FATAL) {
		return;
	}
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n > 0) {
		(void)write(*(int *)context, buf,
			    (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf));
	}
}

/* Reads fd to its end, keeping what fits in buf (NUL-terminated). */
static size_t read_to_end(int fd, char *buf, size_t size)
{
	size_t kept = 0;
	char spill[256];
	ssize_t n;

	for (;;) {
		char *to = kept + 1 < size ? buf + kept : spill;
		size_t room = kept + 1 < size ? size - 1 - kept : sizeof(spill);

		n = read(fd, to, room);
		if (n <= 0) {
			break;
		}
		if (to == buf + kept) {
			kept += (size_t)n;
		}
	}
	buf[kept] = '\0';
	return kept;
}

/*
 * In a forked child with a context of its own (a forked context would get
 * a new set): `provoke` breaks something, then one loop turn must abort
 * with `word` in its fatal message.  The debug hook is set first, since
 * upstream may already abort inside `provoke`.
 */
static void expect_abort(void **state,
			 void (*provoke)(struct fixture *f, struct watched *w),
			 const char *word)
{
	int pfd[2], status;
	char msg[1024];
	size_t n;
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct fixture f;
		struct watched w;

		close(pfd[0]);
		setup(&f, state);
		tevent_set_debug(f.ev, write_debug, &pfd[1]);
		provoke(&f, &w);
		tevent_loop_once(f.ev);
		_exit(0);  /* not reached: the library aborts */
	}
	close(pfd[1]);
	/* to the end: the child must not die of SIGPIPE on a later message */
	n = read_to_end(pfd[0], msg, sizeof(msg));
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
	assert_true(n > 0);
	assert_non_null(strstr(msg, word));
}

static void watch_and_break_set(struct fixture *f, struct watched *w)
{
	watch(f, w);
	break_epoll_set(f);
}

static void test_epoll_aborts_when_wait_fails(void **state)
{
	expect_abort(state, watch_and_break_set, "epoll_wait");
}

/* See test_standard_fd_number_reused(). */
static void test_epoll_fd_number_reused_aborts(void **state)
{
	expect_abort(state, reuse_number_behind_library, "EPOLL_CTL_MOD");
}

int main(void)
{
	static const struct tt_case cases[] = {
		TT_CASE_ON(test_epoll_add_closed_fd, EPOLL_BACKENDS),
		TT_CASE_ON(test_epoll_add_stray_fd_number, EPOLL_BACKENDS),
		TT_CASE_ON(test_epoll_flags_changed_after_close, EPOLL_BACKENDS),
		TT_CASE_ON(test_epoll_freed_after_close, EPOLL_BACKENDS),
		TT_CASE_ON(test_epoll_idle_fde_freed_after_close, EPOLL_BACKENDS),
		TT_CASE_ON(test_standard_fd_number_reused, "standard"),
		TT_CASE_ON(test_epoll_fd_number_reused_aborts, "epoll"),
		TT_CASE_ON(test_epoll_stale_registration_no_spin,
			   EPOLL_BACKENDS),
		TT_CASE_ON(test_epoll_stale_registration_live_in_same_batch,
			   EPOLL_BACKENDS),
		TT_CASE_ON(test_epoll_stale_registration_number_reused,
			   EPOLL_BACKENDS),
		TT_CASE_ON(test_epoll_stale_registration_file_returns,
			   EPOLL_BACKENDS),
		TT_CASE_ON(test_epoll_stale_registration_forked_child,
			   EPOLL_BACKENDS),
		TT_CASE_ON(test_standard_falls_back_when_wait_fails, "standard"),
		TT_CASE_ON(test_standard_falls_back_on_add, "standard"),
		TT_CASE_ON(test_standard_falls_back_on_free, "standard"),
		TT_CASE_ON(test_standard_falls_back_inside_handler, "standard"),
		TT_CASE_ON(test_standard_falls_back_on_flag_change, "standard"),
		TT_CASE_ON(test_standard_cancelled_flag_changes_stay_home,
			   "standard"),
		TT_CASE_ON(test_standard_fallback_keeps_wakeups, "standard"),
		TT_CASE_ON(test_epoll_aborts_when_wait_fails, "epoll"),
	};

	tt_check_library();
	return tt_run_cases("epoll", cases, sizeof(cases) / sizeof(cases[0]));
}

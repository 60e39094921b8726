/*
 * Port of upstream tevent's torture suite "local.event" (lib/tevent/
 * testsuite.c, the 0.16/0.17 version with fd3) to cmocka.  Same scenarios
 * and same checks, our own code.  Upstream case -> function here:
 *
 *   per backend (one cmocka test per backend of tevent_backend_list()):
 *     context         up_context
 *     fd_speed1/2/3   up_fd_speed1 / up_fd_speed2 / up_fd_speed3
 *     fd1             up_fd1
 *     fd2             up_fd2
 *     fd3             up_fd3            (needs TEVENT_FD_ERROR, 0.16+)
 *     wrapper         up_wrapper
 *     free_wrapper    up_free_wrapper
 *   once:
 *     threaded_poll_mt         up_threaded_poll_mt
 *     multi_tevent_threaded    up_multi_tevent_threaded
 *     multi_tevent_threaded_1  up_multi_tevent_threaded_1
 *     multi_tevent_threaded_2  up_multi_tevent_threaded_2
 *     tevent_cached_getpid     up_tevent_cached_getpid
 *
 * Deliberate differences, all about time, never about behaviour:
 *   - fd_speedN stop after UP_FD_SPEED_EVENTS events (default 25000,
 *     upstream: 1000000); they measure speed and assert nothing else.
 *   - fd1's 2 ms phase timer re-arms when a phase is still running
 *     instead of failing (upstream fails if the machine is slow).
 *   - fd3 checks that no phase timer fires early, but not that it fires
 *     within 50 ms of its due time.
 */

/* wrapper contexts are behind this switch in tevent.h */
#define TEVENT_DEPRECATED 1

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
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
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>

#include "tt.h"
#include "up.h"

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#pragma GCC diagnostic ignored "-Wunused-parameter"

/* ------------------------------------------------------------------ */
/* small I/O helpers                                                   */

static void put_byte(int fd, uint8_t v)
{
	ssize_t n;

	do {
		n = write(fd, &v, 1);
	} while (n == -1 && errno == EINTR);
}

static ssize_t take_byte(int fd, uint8_t *v)
{
	ssize_t n;

	do {
		n = read(fd, v, 1);
	} while (n == -1 && errno == EINTR);
	return n;
}

/* Write 1 KiB blocks until the socket refuses more. */
static void stuff_socket(int fd)
{
	uint8_t block[1024];
	int fl = fcntl(fd, F_GETFL);
	ssize_t n;

	memset(block, 0, sizeof(block));
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	do {
		do {
			n = write(fd, block, sizeof(block));
		} while (n == -1 && errno == EINTR);
	} while (n == (ssize_t)sizeof(block));
	fcntl(fd, F_SETFL, fl);
}

static double seconds_since(const struct timeval *t0)
{
	struct timeval now = tevent_timeval_current();

	return (double)(now.tv_sec - t0->tv_sec) +
	       (double)(now.tv_usec - t0->tv_usec) / 1e6;
}

static void run_until(struct tevent_context *ev, const bool *flag)
{
	while (!*flag) {
		errno = 0;
		if (tevent_loop_once(ev) == -1) {
			fail_msg("tevent_loop_once failed: %s", strerror(errno));
		}
	}
}

/*
 * fd1, fd2 and fd3 run from callbacks: a failure there only records why
 * and ends the loop; run_case() reports it once the loop has returned.
 */
#define CASE_FAIL(c, why) \
	do { (c)->finished = true; (c)->error = (why); } while (0)

static void run_case(struct tevent_context *ev, const bool *finished,
		     const char *const *error)
{
	run_until(ev, finished);
	tt_finish(ev);
	if (*error != NULL) {
		fail_msg("%s", *error);
	}
}

/* ------------------------------------------------------------------ */
/* context: pipe fd events, a timer and three kinds of signal events  */

struct ctx_case;

/* One end of the pipe, watched by a READ and a WRITE fde of its own. */
struct ctx_end {
	struct ctx_case *c;
	int fd;
};

struct ctx_case {
	int p[2];
	struct ctx_end end[2];
	int fd_events;		/* bytes consumed by the read handlers */
	int alarms;		/* SIGALRM deliveries seen by both se1 and se2 */
	int infos;		/* SIGUSR1 (SA_SIGINFO) deliveries */
	bool finished;
};

static void ctx_readable(struct tevent_context *ev, struct tevent_fd *fde,
			 uint16_t flags, void *priv)
{
	struct ctx_end *e = priv;
	uint8_t v;

	kill(getpid(), SIGUSR1);
	kill(getpid(), SIGALRM);
	take_byte(e->fd, &v);
	e->c->fd_events++;
}

static void ctx_writable(struct tevent_context *ev, struct tevent_fd *fde,
			 uint16_t flags, void *priv)
{
	struct ctx_end *e = priv;

	put_byte(e->fd, 0);
}

static void ctx_done(struct tevent_context *ev, struct tevent_timer *te,
		     struct timeval now, void *priv)
{
	struct ctx_case *c = priv;

	c->finished = true;
}

static void ctx_count(struct tevent_context *ev, struct tevent_signal *se,
		      int signum, int count, void *info, void *priv)
{
	int *counter = priv;

	*counter += count;
}

static void up_context(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct ctx_case c = { .p = { -1, -1 } };
	struct tevent_fd *rd, *rd1, *wr, *wr1;
	struct tevent_signal *se_restart, *se_once, *se_info;

	/* SIGALRM is part of the scenario: the hang guard has to go. */
	alarm(0);

	assert_int_equal(pipe(c.p), 0);
	c.end[0] = (struct ctx_end){ .c = &c, .fd = c.p[0] };
	c.end[1] = (struct ctx_end){ .c = &c, .fd = c.p[1] };

	/* rd1 and wr1 can only fire if pipe() returned bidirectional fds */
	rd = tevent_add_fd(ev, ev, c.p[0], TEVENT_FD_READ, ctx_readable,
			   &c.end[0]);
	wr1 = tevent_add_fd(ev, ev, c.p[0], TEVENT_FD_WRITE, ctx_writable,
			    &c.end[0]);
	wr = tevent_add_fd(ev, ev, c.p[1], TEVENT_FD_WRITE, ctx_writable,
			   &c.end[1]);
	rd1 = tevent_add_fd(ev, ev, c.p[1], TEVENT_FD_READ, ctx_readable,
			    &c.end[1]);
	assert_non_null(rd);
	assert_non_null(wr1);
	assert_non_null(wr);
	assert_non_null(rd1);
	tevent_fd_set_auto_close(rd);
	tevent_fd_set_auto_close(wr);

	assert_non_null(tevent_add_timer(ev, ev,
					 tevent_timeval_current_ofs(2, 0),
					 ctx_done, &c));

	se_restart = tevent_add_signal(ev, ev, SIGALRM, SA_RESTART,
				       ctx_count, &c.alarms);
	assert_non_null(se_restart);
	/* fires once, then removes itself */
	se_once = tevent_add_signal(ev, ev, SIGALRM, SA_RESETHAND,
				    ctx_count, &c.alarms);
	assert_non_null(se_once);
	se_info = tevent_add_signal(ev, ev, SIGUSR1, SA_SIGINFO,
				    ctx_count, &c.infos);
	assert_non_null(se_info);

	run_until(ev, &c.finished);

	talloc_free(rd1);
	talloc_free(wr1);
	talloc_free(rd);
	talloc_free(wr);

	/* let every signal still pending reach its handlers */
	while (c.alarms < c.fd_events + 1) {
		if (tevent_loop_once(ev) == -1) {
			break;
		}
	}
	print_message("%d pipe events in about 2 s\n", c.fd_events);

	talloc_free(se_restart);
	assert_int_equal(c.alarms, 1 + c.fd_events);
	/* se_once is already gone: it freed itself after its first run */
	talloc_free(se_info);
	assert_int_equal(c.infos, c.fd_events);

	tt_finish(ev);
}

/* ------------------------------------------------------------------ */
/* fd_speedN: a byte ping-pong through a pipe, N fdes per pipe end     */

static int speed_events;

static void speed_read(struct tevent_context *ev, struct tevent_fd *fde,
		       uint16_t flags, void *priv)
{
	int *p = priv;
	uint8_t v;

	take_byte(p[0], &v);
	speed_events++;
}

static void speed_write(struct tevent_context *ev, struct tevent_fd *fde,
			uint16_t flags, void *priv)
{
	int *p = priv;

	put_byte(p[1], 0);
}

static void speed_never(struct tevent_context *ev, struct tevent_fd *fde,
			uint16_t flags, void *priv)
{
}

static void speed_timeout(struct tevent_context *ev, struct tevent_timer *te,
			  struct timeval now, void *priv)
{
	*(bool *)priv = true;
}

static void fd_speed(void **state, size_t extra)
{
	struct tevent_context *ev = tt_backend_ev(state);
	const char *env = getenv("UP_FD_SPEED_EVENTS");
	int limit = env != NULL ? atoi(env) : 25000;
	int p[2] = { -1, -1 };
	struct tevent_fd *rd, *wr;
	struct timeval t0;
	bool timed_out = false;
	size_t i;

	speed_events = 0;
	assert_int_equal(pipe(p), 0);

	rd = tevent_add_fd(ev, ev, p[0], TEVENT_FD_READ, speed_read, p);
	wr = tevent_add_fd(ev, ev, p[1], TEVENT_FD_WRITE, speed_write, p);
	assert_non_null(rd);
	assert_non_null(wr);
	/* fdes on the same fds for conditions that never occur */
	for (i = 0; i < extra; i++) {
		assert_non_null(tevent_add_fd(ev, ev, p[0], TEVENT_FD_WRITE,
					      speed_never, p));
		assert_non_null(tevent_add_fd(ev, ev, p[1], TEVENT_FD_READ,
					      speed_never, p));
	}
	tevent_fd_set_auto_close(rd);
	tevent_fd_set_auto_close(wr);

	/* upstream's 600 s upper bound, only a hang guard */
	assert_non_null(tevent_add_timer(ev, ev,
					 tevent_timeval_current_ofs(600, 0),
					 speed_timeout, &timed_out));

	t0 = tevent_timeval_current();
	while (!timed_out && speed_events < limit) {
		errno = 0;
		if (tevent_loop_once(ev) == -1) {
			fail_msg("tevent_loop_once failed: %s", strerror(errno));
		}
	}
	talloc_free(rd);
	talloc_free(wr);
	print_message("fd_speed%zu: %d events, %.0f/s\n", extra + 1,
		      speed_events, speed_events / seconds_since(&t0));
	tt_finish(ev);
}

static void up_fd_speed1(void **state) { fd_speed(state, 0); }
static void up_fd_speed2(void **state) { fd_speed(state, 1); }

static void up_fd_speed3(void **state)
{
	/* before 0.16 the epoll backend aborts on a third fde per fd */
	if (strcmp((const char *)*state, "epoll") == 0) {
		up_require(up_symbol(UP_NEWEST_SYMBOL) != NULL,
			   "more than two fdes per fd on epoll (0.16+)");
	}
	fd_speed(state, 2);
}

/* ------------------------------------------------------------------ */
/* fd1: flags of one fde on sock[0] switched between WRITE and READ    */

/*
 * Three rounds, each started by a timer: wait for WRITE only on s[0],
 * write a byte into s[1], wait for READ only, then watch nothing.  After
 * the third round s[1] is closed and s[0] watched for READ|WRITE: the
 * handler reads until read() stops returning a byte, then switches the
 * fde off and the next timer ends the case.
 */
struct fd1_case {
	struct tevent_context *ev;
	int s[2];
	struct tevent_fd *fde0, *fde1;
	bool got_write, got_read;
	bool draining, drained;
	unsigned rounds;
	bool finished;
	const char *error;
};

static void fd1_io(struct tevent_context *ev, struct tevent_fd *fde,
		   uint16_t flags, void *priv)
{
	struct fd1_case *c = priv;

	if (c->drained) {
		CASE_FAIL(c, "fd event after the fde was switched off");
		return;
	}
	if (c->draining) {
		uint8_t v;

		if ((flags & TEVENT_FD_READ) == 0) {
			CASE_FAIL(c, "draining: READ missing from flags");
			return;
		}
		if (take_byte(c->s[0], &v) == 1) {
			return;
		}
		/* EOF (or error): peer is gone, stop watching */
		tevent_fd_set_flags(fde, 0);
		c->drained = true;
		return;
	}
	if (!c->got_write) {
		if (flags != TEVENT_FD_WRITE) {
			CASE_FAIL(c, "expected exactly WRITE");
			return;
		}
		c->got_write = true;
		put_byte(c->s[1], 0);
		TEVENT_FD_NOT_WRITEABLE(fde);
		TEVENT_FD_READABLE(fde);
		return;
	}
	if (!c->got_read) {
		if (flags != TEVENT_FD_READ) {
			CASE_FAIL(c, "expected exactly READ");
			return;
		}
		c->got_read = true;
		TEVENT_FD_NOT_READABLE(fde);
		return;
	}
	CASE_FAIL(c, "fd event with no flags requested");
}

static void fd1_round(struct tevent_context *ev, struct tevent_timer *te,
		      struct timeval now, void *priv)
{
	struct fd1_case *c = priv;

	if (c->drained) {
		c->finished = true;
		return;
	}
	if (c->draining || !c->got_write || !c->got_read) {
		/* phase still running: upstream fails here, we just wait */
		goto rearm;
	}

	c->rounds++;
	if (c->rounds > 3) {
		CASE_FAIL(c, "too many rounds");
		return;
	}
	c->got_write = false;
	c->got_read = false;
	tevent_fd_set_flags(c->fde0, TEVENT_FD_WRITE);
	if (c->rounds > 2) {
		c->draining = true;
		TALLOC_FREE(c->fde1);	/* closes s[1] */
		TEVENT_FD_READABLE(c->fde0);
	}
rearm:
	assert_non_null(tevent_add_timer(c->ev, c->ev,
					 tevent_timeval_current_ofs(0, 2000),
					 fd1_round, c));
}

static void up_fd1(void **state)
{
	struct fd1_case c = { .s = { -1, -1 } };

	c.ev = tt_backend_ev(state);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, c.s), 0);

	assert_non_null(tevent_add_timer(c.ev, c.ev,
					 tevent_timeval_current_ofs(0, 10000),
					 fd1_round, &c));
	c.fde0 = tevent_add_fd(c.ev, c.ev, c.s[0], TEVENT_FD_WRITE,
			       fd1_io, &c);
	/* only there to close s[1] when freed */
	c.fde1 = tevent_add_fd(c.ev, c.ev, c.s[1], 0, fd1_io, &c);
	assert_non_null(c.fde0);
	assert_non_null(c.fde1);
	tevent_fd_set_auto_close(c.fde0);
	tevent_fd_set_auto_close(c.fde1);

	run_case(c.ev, &c.finished, &c.error);
}

/* ------------------------------------------------------------------ */
/* fd2: both ends of a socketpair fill each other up, then drain       */

struct fd2_case;

struct fd2_end {
	struct fd2_case *c;
	int fd;
	struct tevent_fd *fde;
	size_t written;
	size_t consumed;
	bool full;
};

struct fd2_case {
	struct fd2_end a, b;
	bool finished;
	const char *error;
};

static void fd2_io(struct tevent_context *ev, struct tevent_fd *fde,
		   uint16_t flags, void *priv)
{
	struct fd2_end *me = priv;
	struct fd2_case *c = me->c;
	struct fd2_end *peer = (me == &c->a) ? &c->b : &c->a;
	uint8_t v;

	/* the very first event: the peer's byte is there and we can write */
	if (peer->written == 1 &&
	    flags != (TEVENT_FD_READ | TEVENT_FD_WRITE)) {
		CASE_FAIL(c, "first event must be READ|WRITE");
		return;
	}
	if (me->consumed == peer->written) {
		CASE_FAIL(c, "READ reported with nothing to read");
		return;
	}
	if ((flags & TEVENT_FD_READ) == 0) {
		CASE_FAIL(c, "READ missing");
		return;
	}
	if (peer->consumed >= PIPE_BUF && (flags & TEVENT_FD_WRITE) == 0) {
		/* the peer made room: we must be writable again */
		CASE_FAIL(c, "WRITE missing after the peer drained");
		return;
	}

	if ((flags & TEVENT_FD_WRITE) && !me->full) {
		v = (uint8_t)me->written;
		if (write(me->fd, &v, 1) != 1) {
			CASE_FAIL(c, "write failed");
			return;
		}
		me->written++;
		if (me->written > 0x80000000) {
			CASE_FAIL(c, "socket never filled up");
		}
		return;
	}

	if (!me->full) {
		me->full = true;
		if (!peer->full) {
			/* wait until the other direction is full as well */
			tevent_fd_set_flags(me->fde, 0);
			return;
		}
		/* the peer was waiting for us: wake it again */
		tevent_fd_set_flags(peer->fde,
				    TEVENT_FD_READ | TEVENT_FD_WRITE);
	}

	if (take_byte(me->fd, &v) != 1) {
		CASE_FAIL(c, "read failed");
		return;
	}
	if (v != (uint8_t)me->consumed) {
		CASE_FAIL(c, "bytes out of order");
		return;
	}
	me->consumed++;
	if (me->consumed < peer->written) {
		return;
	}
	/* all read: stop asking for WRITE or the loop would spin */
	TEVENT_FD_NOT_WRITEABLE(me->fde);
	if (peer->consumed == me->written) {
		c->finished = true;
	}
}

static void fd2_timeout(struct tevent_context *ev, struct tevent_timer *te,
			struct timeval now, void *priv)
{
	struct fd2_case *c = priv;

	CASE_FAIL(c, "600 s guard timer fired");
}

static void up_fd2(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct fd2_case c = { .finished = false };
	int s[2] = { -1, -1 };

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	assert_non_null(tevent_add_timer(ev, ev,
					 tevent_timeval_current_ofs(600, 0),
					 fd2_timeout, &c));
	c.a = (struct fd2_end){ .c = &c, .fd = s[0] };
	c.b = (struct fd2_end){ .c = &c, .fd = s[1] };
	c.a.fde = tevent_add_fd(ev, ev, c.a.fd,
				TEVENT_FD_READ | TEVENT_FD_WRITE, fd2_io, &c.a);
	c.b.fde = tevent_add_fd(ev, ev, c.b.fd,
				TEVENT_FD_READ | TEVENT_FD_WRITE, fd2_io, &c.b);
	assert_non_null(c.a.fde);
	assert_non_null(c.b.fde);
	tevent_fd_set_auto_close(c.a.fde);
	tevent_fd_set_auto_close(c.b.fde);

	put_byte(c.a.fd, 0);
	c.a.written++;
	put_byte(c.b.fd, 0);
	c.b.written++;

	run_case(ev, &c.finished, &c.error);
}

/* ------------------------------------------------------------------ */
/* fd3: nine fdes per socket, fairness and flag masking per phase      */

/*
 * Each end of a socketpair has nine fdes.  Timers at +1..+4 s start a
 * phase: set each fde's flags, the condition the socket is in, and how
 * many fdes must fire per "round".  Within a round no fde may fire
 * twice, and each must be handed exactly the intersection of its own
 * flags with the socket's condition.  After 127 rounds a socket's phase
 * ends by switching its fdes off.  +5 s checks both phases ended.
 */
#define FD3_NFDE 9
#define FD3_ROUNDS 127

struct fd3_case;
struct fd3_sock;

struct fd3_fde {
	struct fd3_sock *sock;
	struct tevent_fd *fde;
	uint64_t last_round;
};

struct fd3_sock {
	struct fd3_case *c;
	const char *name;
	int fd;
	const char *phase;
	uint64_t round;
	uint64_t max_rounds;
	uint16_t condition;	/* what the socket currently signals */
	uint8_t per_round;	/* fdes expected to fire each round */
	uint8_t fired;		/* fdes that fired in this round */
	struct fd3_fde f[FD3_NFDE];
	bool active;		/* a phase is running */
};

struct fd3_case {
	struct tevent_context *ev;
	struct timeval t0;
	struct fd3_sock s0, s1;
	bool finished;
	const char *error;
};

#define R TEVENT_FD_READ
#define W TEVENT_FD_WRITE
#define E TEVENT_FD_ERROR

static void fd3_check(struct fd3_fde *f, uint16_t flags)
{
	struct fd3_sock *s = f->sock;
	struct fd3_case *c = s->c;
	uint16_t want = s->condition & tevent_fd_get_flags(f->fde);
	int i;

	if (want == 0) {
		CASE_FAIL(c, "an fde fired for a condition it does not watch");
		return;
	}
	if (flags != want) {
		print_message("%s/%s: flags 0x%x, expected 0x%x\n", s->name,
			      s->phase, flags, want);
		CASE_FAIL(c, "handler flags are not fde flags & condition");
		return;
	}
	if (f->last_round == s->round) {
		CASE_FAIL(c, "an fde fired twice within one round");
		return;
	}
	f->last_round = s->round;

	s->fired++;
	if (s->fired > s->per_round) {
		CASE_FAIL(c, "more fdes fired than expected in one round");
		return;
	}
	if (s->fired == s->per_round) {
		s->fired = 0;
		s->round++;
	}
	if (s->round > s->max_rounds) {
		print_message("%s: phase %s done after %" PRIu64 " rounds\n",
			      s->name, s->phase, s->max_rounds);
		for (i = 0; i < FD3_NFDE; i++) {
			tevent_fd_set_flags(s->f[i].fde, 0);
		}
		s->active = false;
	}
}

static void fd3_start(struct fd3_sock *s, const char *phase,
		      uint16_t condition, uint8_t per_round,
		      const uint16_t flags[FD3_NFDE])
{
	int i;

	if (s->active) {
		CASE_FAIL(s->c, "previous phase still running");
		return;
	}
	s->phase = phase;
	s->max_rounds = FD3_ROUNDS;
	s->condition = condition;
	s->per_round = per_round;
	s->round = 1;
	s->fired = 0;
	for (i = 0; i < FD3_NFDE; i++) {
		tevent_fd_set_flags(s->f[i].fde, flags[i]);
		s->f[i].last_round = 0;
	}
	s->active = true;
}

static void fd3_io(struct tevent_context *ev, struct tevent_fd *fde,
		   uint16_t flags, void *priv)
{
	struct fd3_fde *f = priv;
	struct fd3_sock *s = f->sock;

	if (s->fd == -1) {
		CASE_FAIL(s->c, "event on a closed socket");
		return;
	}
	if (!s->active) {
		CASE_FAIL(s->c, "event outside a phase");
		return;
	}
	fd3_check(f, flags);
}

/* Never early; how late does not matter (only a speed question). */
static bool fd3_on_time(struct fd3_case *c, double due, const char *what)
{
	double e = seconds_since(&c->t0);

	if (e < due) {
		print_message("%s: fired after %.6f s, due at %.0f s\n",
			      what, e, due);
		CASE_FAIL(c, "phase timer fired early");
		return false;
	}
	return true;
}

static const uint16_t fd3_all[FD3_NFDE] = {
	R|W|E, R|W|E, R|W|E, R|W|E, R|W|E, R|W|E, R|W|E, R|W|E, R|W|E
};

static void fd3_writeable(struct tevent_context *ev, struct tevent_timer *te,
			  struct timeval now, void *priv)
{
	static const uint16_t mix[FD3_NFDE] = {
		W, 0, R, W, R|W, R, W, R|W, 0
	};
	struct fd3_case *c = priv;

	if (!fd3_on_time(c, 1, "writeable")) {
		return;
	}
	fd3_start(&c->s0, "writeable", W, 5, mix);
	fd3_start(&c->s1, "writeable", W, 9, fd3_all);
}

static void fd3_readable(struct tevent_context *ev, struct tevent_timer *te,
			 struct timeval now, void *priv)
{
	static const uint16_t mix[FD3_NFDE] = {
		R, R|W, R|W|E, 0, R, W, E, W|E, R|W
	};
	struct fd3_case *c = priv;

	if (!fd3_on_time(c, 2, "readable")) {
		return;
	}
	put_byte(c->s0.fd, 0);
	put_byte(c->s1.fd, 0);
	fd3_start(&c->s0, "readable", R|W, 9, fd3_all);
	fd3_start(&c->s1, "readable", R|W, 7, mix);
}

static const uint16_t fd3_mix_late[FD3_NFDE] = {
	R|W, W, R, 0, R|W|E, W|E, R|E, E, R
};

static void fd3_not_writeable(struct tevent_context *ev,
			      struct tevent_timer *te, struct timeval now,
			      void *priv)
{
	struct fd3_case *c = priv;

	if (!fd3_on_time(c, 3, "not_writeable")) {
		return;
	}
	stuff_socket(c->s0.fd);
	stuff_socket(c->s1.fd);
	fd3_start(&c->s0, "not_writeable", R, 5, fd3_mix_late);
	fd3_start(&c->s1, "not_writeable", R, 9, fd3_all);
}

static void fd3_off(struct tevent_context *ev, struct tevent_timer *te,
		    struct timeval now, void *priv)
{
	struct fd3_case *c = priv;

	if (!fd3_on_time(c, 4, "off")) {
		return;
	}
	/* closes s0: s1 now sees EOF, hang-up and room to write */
	TALLOC_FREE(c->s0.f[0].fde);
	c->s0.fd = -1;
	fd3_start(&c->s1, "off", R|W|E, 7, fd3_mix_late);
}

static void fd3_finished(struct tevent_context *ev, struct tevent_timer *te,
			 struct timeval now, void *priv)
{
	struct fd3_case *c = priv;

	if (!fd3_on_time(c, 5, "finished")) {
		return;
	}
	if (c->s0.active || c->s1.active) {
		CASE_FAIL(c, "a phase did not complete");
		return;
	}
	c->finished = true;
}

#undef R
#undef W
#undef E

static void fd3_setup_sock(struct fd3_case *c, struct fd3_sock *s,
			   const char *name, int fd, uint16_t first_flags)
{
	int i;

	s->c = c;
	s->name = name;
	s->fd = fd;
	for (i = 0; i < FD3_NFDE; i++) {
		s->f[i].sock = s;
		s->f[i].fde = tevent_add_fd(c->ev, c->ev, fd,
					    i == 0 ? first_flags : 0,
					    fd3_io, &s->f[i]);
		assert_non_null(s->f[i].fde);
	}
	/* the first fde owns the fd */
	tevent_fd_set_auto_close(s->f[0].fde);
}

static void up_fd3(void **state)
{
	/* the phase timers, each due SECS after the start */
	static const struct {
		uint32_t secs;
		tevent_timer_handler_t fn;
	} phases[] = {
		{ 5, fd3_finished },
		{ 1, fd3_writeable },
		{ 2, fd3_readable },
		{ 3, fd3_not_writeable },
		{ 4, fd3_off },
	};
	struct fd3_case c = { .finished = false };
	int s[2] = { -1, -1 };
	size_t i;

	/* TEVENT_FD_ERROR and the per-round fairness are 0.16 semantics */
	up_require(up_symbol(UP_NEWEST_SYMBOL) != NULL,
		   "TEVENT_FD_ERROR and fair multiplexing of fdes (0.16+)");

	c.ev = tt_backend_ev(state);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);

	c.t0 = tevent_timeval_current();
	for (i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
		struct timeval due = tevent_timeval_add(&c.t0, phases[i].secs,
							0);

		assert_non_null(tevent_add_timer(c.ev, c.ev, due,
						 phases[i].fn, &c));
	}

	/* s1's first fde starts out watching READ, as upstream's does */
	fd3_setup_sock(&c, &c.s0, "sock0", s[0], 0);
	fd3_setup_sock(&c, &c.s1, "sock1", s[1], TEVENT_FD_READ);

	run_case(c.ev, &c.finished, &c.error);
}

/* ------------------------------------------------------------------ */
/* wrapper / free_wrapper                                              */

struct wrap_case {
	int events;		/* handlers of the four events that ran */
	int hooks;		/* wrapper hooks that ran */
};

static struct wrap_case *wrap_state(void *priv)
{
	return talloc_get_type_abort(priv, struct wrap_case);
}

static bool hook_before_use(struct tevent_context *wrap_ev, void *priv,
			    struct tevent_context *main_ev,
			    const char *location)
{
	wrap_state(priv)->hooks++;
	return true;
}

static void hook_after_use(struct tevent_context *wrap_ev, void *priv,
			   struct tevent_context *main_ev,
			   const char *location)
{
	wrap_state(priv)->hooks++;
}

static void hook_fd(struct tevent_context *wrap_ev, void *priv,
		    struct tevent_context *main_ev, struct tevent_fd *fde,
		    uint16_t flags, const char *handler_name,
		    const char *location)
{
	wrap_state(priv)->hooks++;
}

static void hook_timer(struct tevent_context *wrap_ev, void *priv,
		       struct tevent_context *main_ev,
		       struct tevent_timer *te, struct timeval requested,
		       struct timeval triggered, const char *handler_name,
		       const char *location)
{
	wrap_state(priv)->hooks++;
}

static void hook_immediate(struct tevent_context *wrap_ev, void *priv,
			   struct tevent_context *main_ev,
			   struct tevent_immediate *im,
			   const char *handler_name, const char *location)
{
	wrap_state(priv)->hooks++;
}

static void hook_signal(struct tevent_context *wrap_ev, void *priv,
			struct tevent_context *main_ev,
			struct tevent_signal *se, int signum, int count,
			void *siginfo, const char *handler_name,
			const char *location)
{
	wrap_state(priv)->hooks++;
}

static const struct tevent_wrapper_ops counting_ops = {
	.name = "up_counting_wrapper",
	.before_use = hook_before_use,
	.after_use = hook_after_use,
	.before_fd_handler = hook_fd,
	.after_fd_handler = hook_fd,
	.before_timer_handler = hook_timer,
	.after_timer_handler = hook_timer,
	.before_immediate_handler = hook_immediate,
	.after_immediate_handler = hook_immediate,
	.before_signal_handler = hook_signal,
	.after_signal_handler = hook_signal,
};

/* A wrapper of EV whose hooks count into a fresh wrap_case (*wc). */
static struct tevent_context *counting_wrapper(struct tevent_context *ev,
					       struct wrap_case **wc)
{
	struct tevent_context *wrap_ev;

	wrap_ev = tevent_context_wrapper_create(ev, ev, &counting_ops, wc,
						struct wrap_case);
	assert_non_null(wrap_ev);
	**wc = (struct wrap_case){ .events = 0 };
	return wrap_ev;
}

struct four_handlers {
	tevent_fd_handler_t fd;
	tevent_timer_handler_t timer;
	tevent_immediate_handler_t immediate;
	tevent_signal_handler_t signal;
};

/*
 * One event of each kind on WRAP_EV, allocated on MEM_CTX, all due at
 * once: READ on s[1] of a new socketpair with a byte written into s[0],
 * a timer due now, a SIGUSR1 that has been raised and a scheduled
 * immediate.
 */
static void four_due_events(struct tevent_context *wrap_ev,
			    TALLOC_CTX *mem_ctx, int s[2],
			    const struct four_handlers *h, void *priv)
{
	struct tevent_immediate *im;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);

	assert_non_null(tevent_add_fd(wrap_ev, mem_ctx, s[1], TEVENT_FD_READ,
				      h->fd, priv));
	assert_non_null(tevent_add_timer(wrap_ev, mem_ctx,
					 tevent_timeval_current_ofs(0, 0),
					 h->timer, priv));
	im = tevent_create_immediate(mem_ctx);
	assert_non_null(im);
	assert_non_null(tevent_add_signal(wrap_ev, mem_ctx, SIGUSR1, 0,
					  h->signal, priv));

	put_byte(s[0], 0);
	kill(getpid(), SIGUSR1);
	tevent_schedule_immediate(im, wrap_ev, h->immediate, priv);
}

/* Each handler counts itself and frees its event. */
static void wrap_ran(void *priv, void *event)
{
	((struct wrap_case *)priv)->events++;
	talloc_free(event);
}

static void wrap_on_timer(struct tevent_context *ev, struct tevent_timer *te,
			  struct timeval now, void *priv)
{
	wrap_ran(priv, te);
}

static void wrap_on_fd(struct tevent_context *ev, struct tevent_fd *fde,
		       uint16_t flags, void *priv)
{
	wrap_ran(priv, fde);
}

static void wrap_on_immediate(struct tevent_context *ev,
			      struct tevent_immediate *im, void *priv)
{
	wrap_ran(priv, im);
}

static void wrap_on_signal(struct tevent_context *ev,
			   struct tevent_signal *se, int signum, int count,
			   void *siginfo, void *priv)
{
	wrap_ran(priv, se);
}

static void up_wrapper(void **state)
{
	static const struct four_handlers handlers = {
		.fd = wrap_on_fd,
		.timer = wrap_on_timer,
		.immediate = wrap_on_immediate,
		.signal = wrap_on_signal,
	};
	struct tevent_context *ev = tt_backend_ev(state);
	struct tevent_context *wrap_ev;
	struct wrap_case *wc = NULL;
	int s[2] = { -1, -1 };
	const int nevents = 4;

	wrap_ev = counting_wrapper(ev, &wc);
	four_due_events(wrap_ev, wrap_ev, s, &handlers, wc);

	/* a use of the wrapper runs its use hooks; of the main one not */
	assert_true(tevent_context_push_use(wrap_ev));
	assert_true(tevent_context_push_use(ev));
	tevent_context_pop_use(ev);
	tevent_context_pop_use(wrap_ev);

	assert_int_equal(tevent_loop_wait(ev), 0);

	assert_int_equal(wc->events, nevents);
	/* before+after for each event, plus before_use+after_use */
	assert_int_equal(wc->hooks, nevents * 2 + 2);

	talloc_free(wrap_ev);
	tt_finish(ev);
	close(s[0]);
	close(s[1]);
}

static void free_wrapper_never(const char *what)
{
	fail_msg("%s handler ran after its wrapper context was freed", what);
}

static void free_wrapper_on_fd(struct tevent_context *ev,
			       struct tevent_fd *fde, uint16_t flags,
			       void *priv)
{
	free_wrapper_never("fd");
}

static void free_wrapper_on_timer(struct tevent_context *ev,
				  struct tevent_timer *te, struct timeval now,
				  void *priv)
{
	free_wrapper_never("timer");
}

static void free_wrapper_on_immediate(struct tevent_context *ev,
				      struct tevent_immediate *im, void *priv)
{
	free_wrapper_never("immediate");
}

/*
 * Signals are dispatched before anything else, so this runs first and
 * frees the wrapper (its ev argument) while the fd, timer and immediate
 * of that wrapper are all still pending.
 */
static void free_wrapper_on_signal(struct tevent_context *ev,
				   struct tevent_signal *se, int signum,
				   int count, void *siginfo, void *priv)
{
	talloc_free(se);
	talloc_free(ev);
}

static void up_free_wrapper(void **state)
{
	static const struct four_handlers handlers = {
		.fd = free_wrapper_on_fd,
		.timer = free_wrapper_on_timer,
		.immediate = free_wrapper_on_immediate,
		.signal = free_wrapper_on_signal,
	};
	const char *backend = *state;
	TALLOC_CTX *frame = talloc_new(NULL);
	struct tevent_context *ev, *wrap_ev;
	struct wrap_case *wc = NULL;
	int s[2] = { -1, -1 };

	assert_non_null(frame);
	alarm(120);	/* hang guard, as in tt_backend_ev() */
	ev = tevent_context_init_byname(frame, backend);
	assert_non_null(ev);

	wrap_ev = counting_wrapper(ev, &wc);
	/* the events hang off frame, not off the wrapper */
	four_due_events(wrap_ev, frame, s, &handlers, NULL);

	assert_int_equal(tevent_loop_wait(ev), 0);

	talloc_free(frame);
	alarm(0);
	close(s[0]);
	close(s[1]);
}

/* ------------------------------------------------------------------ */
/* threaded_poll_mt: another thread runs the loop, trace points unlock */

static pthread_mutex_t mt_lock = PTHREAD_MUTEX_INITIALIZER;
static bool mt_stop;

static void mt_acquire(void)
{
	if (pthread_mutex_lock(&mt_lock) != 0) {
		abort();
	}
}

static void mt_release(void)
{
	if (pthread_mutex_unlock(&mt_lock) != 0) {
		abort();
	}
}

/* The loop owns the lock except while it waits for events. */
static void mt_trace(enum tevent_trace_point point, void *priv)
{
	switch (point) {
	case TEVENT_TRACE_BEFORE_WAIT:
		mt_release();
		break;
	case TEVENT_TRACE_AFTER_WAIT:
		mt_acquire();
		break;
	default:
		break;
	}
}

static void mt_timer(struct tevent_context *ev, struct tevent_timer *te,
		     struct timeval now, void *priv)
{
}

/* Failures in this thread end the program: cmocka is not thread safe. */
static void *mt_loop_thread(void *arg)
{
	struct tevent_context *ev = arg;

	mt_acquire();
	for (;;) {
		if (tevent_loop_once(ev) != 0) {
			fprintf(stderr, "mt_loop_thread: loop failed\n");
			abort();
		}
		if (mt_stop) {
			mt_release();
			return NULL;
		}
	}
}

static void mt_readable(struct tevent_context *ev, struct tevent_fd *fde,
			uint16_t flags, void *priv)
{
	int *fd = priv;
	uint8_t v;

	if ((flags & TEVENT_FD_READ) == 0) {
		return;
	}
	if (take_byte(*fd, &v) != 1) {
		fprintf(stderr, "mt_readable: read failed\n");
		abort();
	}
}

static void up_threaded_poll_mt(void **state)
{
	struct tevent_context *ev;
	pthread_t thread;
	int p[2] = { -1, -1 };

	alarm(120);
	mt_stop = false;
	ev = tevent_context_init_byname(NULL, "poll_mt");
	assert_non_null(ev);
	tevent_set_trace_callback(ev, mt_trace, NULL);

	assert_non_null(tevent_add_timer(ev, ev,
					 tevent_timeval_current_ofs(5, 0),
					 mt_timer, NULL));
	assert_int_equal(pthread_create(&thread, NULL, mt_loop_thread, ev), 0);
	assert_int_equal(pipe(p), 0);

	/* the sleeps only give the other thread time to block in poll() */
	poll(NULL, 0, 100);

	mt_acquire();
	assert_non_null(tevent_add_fd(ev, ev, p[0], TEVENT_FD_READ,
				      mt_readable, &p[0]));
	mt_release();

	poll(NULL, 0, 100);
	put_byte(p[1], 0);
	poll(NULL, 0, 100);

	mt_acquire();
	mt_stop = true;
	mt_release();
	/* wakes the loop thread so that it sees mt_stop */
	put_byte(p[1], 0);

	assert_int_equal(pthread_join(thread, NULL), 0);
	talloc_free(ev);
	close(p[0]);
	close(p[1]);
	alarm(0);
}

/* ------------------------------------------------------------------ */
/* multi_tevent_threaded*: 100 threads talk to one main loop           */

#define NTHREADS 100

static pthread_t threads[NTHREADS];
static unsigned delivered;

/*
 * A main loop with a thread proxy, and NTHREADS threads started on FN
 * with that proxy as their argument.
 */
static struct tevent_context *start_proxy_threads(void *(*fn)(void *))
{
	struct tevent_context *main_ev;
	struct tevent_thread_proxy *proxy;
	unsigned i;

	/* threads allocate from the NULL context */
	talloc_disable_null_tracking();
	delivered = 0;

	main_ev = tevent_context_init(NULL);
	assert_non_null(main_ev);
	proxy = tevent_thread_proxy_create(main_ev);
	assert_non_null(proxy);

	for (i = 0; i < NTHREADS; i++) {
		assert_int_equal(pthread_create(&threads[i], NULL, fn, proxy),
				 0);
	}
	return main_ev;
}

/* Run EV until every thread's message arrived. */
static void wait_delivered(struct tevent_context *ev)
{
	while (delivered < NTHREADS) {
		assert_int_equal(tevent_loop_once(ev), 0);
	}
}

/* Join every thread, freeing what it returned. */
static void join_threads(void)
{
	unsigned i;

	for (i = 0; i < NTHREADS; i++) {
		void *result = NULL;

		assert_int_equal(pthread_join(threads[i], &result), 0);
		talloc_free(result);
	}
}

static void nowait_arrived(struct tevent_context *ev,
			   struct tevent_immediate *im, void *priv)
{
	/* priv is the sender's pthread_t, handed over with the message */
	(void)talloc_get_type_abort(priv, pthread_t);
	delivered++;
}

/* Send one message to the main loop and exit without waiting. */
static void *nowait_thread(void *arg)
{
	struct tevent_thread_proxy *main_proxy =
		talloc_get_type_abort(arg, struct tevent_thread_proxy);
	struct tevent_immediate *im;
	pthread_t *self;

	im = tevent_create_immediate(NULL);
	if (im == NULL) {
		return NULL;
	}
	self = talloc(NULL, pthread_t);
	if (self == NULL) {
		return NULL;
	}
	*self = pthread_self();
	tevent_thread_proxy_schedule(main_proxy, &im, nowait_arrived, &self);
	return NULL;
}

static void multi_timeout(struct tevent_context *ev, struct tevent_timer *te,
			  struct timeval now, void *priv)
{
	/* ends the wait loop and makes the count check fail */
	delivered = NTHREADS * 10;
}

static void up_multi_tevent_threaded(void **state)
{
	struct tevent_context *main_ev = start_proxy_threads(nowait_thread);

	/* hang guard */
	assert_non_null(tevent_add_timer(main_ev, main_ev,
					 tevent_timeval_current_ofs(10, 0),
					 multi_timeout, NULL));

	wait_delivered(main_ev);
	assert_int_equal(delivered, NTHREADS);

	join_threads();
	talloc_free(main_ev);
}

/* _1: every thread has its own loop and proxy, the main loop replies */

struct reply_msg {
	struct tevent_thread_proxy *reply_to;
	pthread_t sender;
	int *done;
};

static void reply_timeout(struct tevent_context *ev, struct tevent_timer *te,
			  struct timeval now, void *priv)
{
	*(int *)priv = 2;
}

/* runs on the worker thread's loop */
static void reply_arrived(struct tevent_context *ev,
			  struct tevent_immediate *im, void *priv)
{
	struct reply_msg *msg = talloc_get_type_abort(priv, struct reply_msg);

	talloc_steal(ev, msg);
	*msg->done = 1;
}

/* runs on the main loop: answer with the same message and immediate */
static void request_arrived(struct tevent_context *ev,
			    struct tevent_immediate *im, void *priv)
{
	struct reply_msg *msg = talloc_get_type_abort(priv, struct reply_msg);

	talloc_steal(ev, msg);
	tevent_thread_proxy_schedule(msg->reply_to, &im, reply_arrived, &msg);
	delivered++;
}

static void *request_thread(void *arg)
{
	struct tevent_thread_proxy *main_proxy =
		talloc_get_type_abort(arg, struct tevent_thread_proxy);
	struct tevent_context *ev;
	struct tevent_immediate *im;
	struct reply_msg *msg;
	int done = 0;

	ev = tevent_context_init(NULL);
	if (ev == NULL) {
		return NULL;
	}
	im = tevent_create_immediate(ev);
	msg = talloc(ev, struct reply_msg);
	if (im == NULL || msg == NULL) {
		talloc_free(ev);
		return NULL;
	}
	msg->reply_to = tevent_thread_proxy_create(ev);
	if (msg->reply_to == NULL) {
		talloc_free(ev);
		return NULL;
	}
	msg->sender = pthread_self();
	msg->done = &done;

	/* spread the senders out a little */
	usleep(random() % 7000);

	tevent_thread_proxy_schedule(main_proxy, &im, request_arrived, &msg);

	/* hang guard */
	tevent_add_timer(ev, ev, tevent_timeval_current_ofs(10, 0),
			 reply_timeout, &done);
	while (done == 0) {
		if (tevent_loop_once(ev) != 0) {
			fprintf(stderr, "request_thread: loop failed\n");
			abort();
		}
	}
	if (done > 1) {
		fprintf(stderr, "request_thread: no reply within 10 s\n");
		abort();
	}
	/* the main thread frees the context after joining */
	return ev;
}

static void up_multi_tevent_threaded_1(void **state)
{
	struct tevent_context *main_ev = start_proxy_threads(request_thread);

	wait_delivered(main_ev);
	/* each thread returns its own context, freed once it has ended */
	join_threads();
	talloc_free(main_ev);
}

/* _2: tevent_threaded_context after a tevent_re_initialise() */

struct threaded2_msg {
	struct tevent_threaded_context *tctx;
	struct tevent_immediate *im;
	pthread_t sender;
};

static void threaded2_arrived(struct tevent_context *ev,
			      struct tevent_immediate *im, void *priv)
{
	delivered++;
}

static void *threaded2_thread(void *arg)
{
	struct threaded2_msg *msg = arg;

	msg->sender = pthread_self();
	usleep(random() % 7000);
	tevent_threaded_schedule_immediate(msg->tctx, msg->im,
					   threaded2_arrived, msg);
	return NULL;
}

static void up_multi_tevent_threaded_2(void **state)
{
	struct tevent_context *ev;
	struct tevent_threaded_context *tctx;
	unsigned i;

	delivered = 0;
	ev = tevent_context_init(NULL);
	assert_non_null(ev);

	/* thread support has to come back after a re-initialisation */
	assert_int_equal(tevent_re_initialise(ev), 0);

	tctx = tevent_threaded_context_create(ev, ev);
	assert_non_null(tctx);

	for (i = 0; i < NTHREADS; i++) {
		struct threaded2_msg *msg = talloc(ev, struct threaded2_msg);

		assert_non_null(msg);
		msg->tctx = tctx;
		msg->im = tevent_create_immediate(msg);
		assert_non_null(msg->im);
		assert_int_equal(pthread_create(&threads[i], NULL,
						threaded2_thread, msg), 0);
	}
	wait_delivered(ev);
	join_threads();
	talloc_free(tctx);
	talloc_free(ev);
}

/* ------------------------------------------------------------------ */
/* tevent_cached_getpid                                                */

struct pid_probe {
	pid_t cached;
	pid_t real;
};

static void *pid_probe_thread(void *arg)
{
	struct pid_probe *p = arg;

	p->cached = tevent_cached_getpid();
	p->real = getpid();
	return NULL;
}

static void up_tevent_cached_getpid(void **state)
{
	pid_t parent = getpid();
	struct pid_probe probe = { .cached = -1, .real = -1 };
	pthread_t thread;
	pid_t child, waited;
	int status = -1;
	int p[2] = { -1, -1 };
	uint8_t verdict = 0xff;

	assert_int_equal(tevent_cached_getpid(), parent);

	/* threads share the process id, cached or not */
	assert_int_equal(pthread_create(&thread, NULL, pid_probe_thread,
					&probe), 0);
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(probe.real, parent);
	assert_int_equal(probe.cached, parent);

	/*
	 * A forked child must not see the parent's cached value.  Its
	 * verdict comes back through a pipe rather than the exit status,
	 * which a wrapper such as valgrind may replace.
	 */
	assert_int_equal(pipe(p), 0);
	child = fork();
	if (child == 0) {
		pid_t mine = getpid();
		uint8_t v = 0;

		if (mine == parent) {
			v = 1;
		} else if (tevent_cached_getpid() != mine) {
			v = 2;
		}
		put_byte(p[1], v);
		_exit(v);
	}
	assert_true(child > 0);
	close(p[1]);
	assert_int_equal(take_byte(p[0], &verdict), 1);
	close(p[0]);
	waited = waitpid(child, &status, 0);
	assert_int_equal(waited, child);
	assert_true(WIFEXITED(status));
	assert_int_equal(verdict, 0);
}

/* ------------------------------------------------------------------ */

int main(void)
{
	static const struct tt_case cases[] = {
		TT_BACKEND_CASE(up_context),
		TT_BACKEND_CASE(up_fd_speed1),
		TT_BACKEND_CASE(up_fd_speed2),
		TT_BACKEND_CASE(up_fd_speed3),
		TT_BACKEND_CASE(up_fd1),
		TT_BACKEND_CASE(up_fd2),
		TT_BACKEND_CASE(up_fd3),
		TT_BACKEND_CASE(up_wrapper),
		TT_BACKEND_CASE(up_free_wrapper),
		TT_CASE(up_threaded_poll_mt),
		TT_CASE(up_multi_tevent_threaded),
		TT_CASE(up_multi_tevent_threaded_1),
		TT_CASE(up_multi_tevent_threaded_2),
		TT_CASE(up_tevent_cached_getpid),
	};

	tt_check_library();
	return tt_run_cases("upstream testsuite.c (local.event)", cases,
			    sizeof(cases) / sizeof(cases[0]));
}

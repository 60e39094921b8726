/*
 * Tests for signal events, run on every backend.
 *
 * Signals sent to the own process with kill()/sigqueue() are delivered
 * before the call returns (the signal is not blocked), so the library has
 * recorded them by the time the test enters the loop: no timing involved.
 */

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>

#include "common/tt.h"

/* handlers have fixed signatures and rarely use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"

/* ------------------------------------------------------------------ */
/* one cmocka test per (case, backend)                                 */

/* ------------------------------------------------------------------ */
/* helpers                                                             */

struct sig_rec {
	int calls;
	int total;
	int signum;
	int last_count;
	void *siginfo;
	struct tevent_signal *se;
	struct tevent_context *ev;
	void *private_data;
};

static void rec_signal(struct tevent_context *ev,
		       struct tevent_signal *se,
		       int signum, int count, void *siginfo,
		       void *private_data)
{
	struct sig_rec *r = private_data;

	r->calls++;
	r->total += count;
	r->signum = signum;
	r->last_count = count;
	r->siginfo = siginfo;
	r->se = se;
	r->ev = ev;
	r->private_data = private_data;
}

static void never_signal(struct tevent_context *ev,
			 struct tevent_signal *se,
			 int signum, int count, void *siginfo,
			 void *private_data)
{
	fail_msg("signal event %p should not have run", (void *)se);
}

static int gone_destructor(int **marker)
{
	(**marker)++;
	return 0;
}

static void attach_gone_marker(const void *parent, int *counter)
{
	int **m = talloc(parent, int *);

	assert_non_null(m);
	*m = counter;
	talloc_set_destructor(m, gone_destructor);
}

static void tick_imm(struct tevent_context *ev,
		     struct tevent_immediate *im,
		     void *private_data)
{
}

/* One loop turn that cannot block: an immediate is always pending. */
static void safe_turn(struct tevent_context *ev)
{
	struct tevent_immediate *im = tevent_create_immediate(ev);

	assert_non_null(im);
	tevent_schedule_immediate(im, ev, tick_imm, NULL);
	assert_int_equal(tevent_loop_once(ev), 0);
	talloc_free(im);
}

static volatile sig_atomic_t plain_hits;

static void plain_handler(int sig)
{
	(void)sig;
	plain_hits++;
}

static void install_plain(int signum)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = plain_handler;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(signum, &sa, NULL), 0);
	plain_hits = 0;
}

static bool disposition_is_plain(int signum)
{
	struct sigaction cur;

	assert_int_equal(sigaction(signum, NULL, &cur), 0);
	return (cur.sa_flags & SA_SIGINFO) == 0 &&
	       cur.sa_handler == plain_handler;
}

/* ------------------------------------------------------------------ */

static void test_signal_basic(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct sig_rec r = { 0 };
	struct tevent_signal *se;

	assert_true(tevent_signal_support(ev));
	se = tevent_add_signal(ev, ev, SIGUSR1, 0, rec_signal, &r);
	assert_non_null(se);

	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.signum, SIGUSR1);
	assert_int_equal(r.last_count, 1);
	assert_null(r.siginfo);
	assert_ptr_equal(r.se, se);
	assert_ptr_equal(r.ev, ev);
	assert_ptr_equal(r.private_data, &r);

	/* the event stays: it is not one-shot */
	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(r.calls, 2);

	talloc_free(se);
	tt_finish(ev);
}

/* Several deliveries before a turn are reported once, with a count. */
static void test_signal_coalesce(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct sig_rec r = { 0 };

	assert_non_null(tevent_add_signal(ev, ev, SIGUSR1, SA_RESTART,
					  rec_signal, &r));
	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.last_count, 3);
	tt_finish(ev);
}

/*
 * Every event registered for a signal runs in the same turn, newest
 * registration first (upstream keeps a list it prepends to).
 */
struct order_rec {
	int order[8];
	int n;
};

struct order_item {
	struct order_rec *rec;
	int id;
	int count;
};

static void order_signal(struct tevent_context *ev,
			 struct tevent_signal *se,
			 int signum, int count, void *siginfo,
			 void *private_data)
{
	struct order_item *it = private_data;

	it->rec->order[it->rec->n++] = it->id;
	it->count = count;
}

static void test_signal_several_handlers(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct order_rec rec = { .n = 0 };
	struct order_item it[3];
	struct tevent_signal *se[3];
	int i;

	for (i = 0; i < 3; i++) {
		it[i].rec = &rec;
		it[i].id = i;
		it[i].count = 0;
		se[i] = tevent_add_signal(ev, ev, SIGUSR2, 0,
					  order_signal, &it[i]);
		assert_non_null(se[i]);
	}
	assert_int_equal(kill(getpid(), SIGUSR2), 0);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(rec.n, 3);
	assert_int_equal(rec.order[0], 2);
	assert_int_equal(rec.order[1], 1);
	assert_int_equal(rec.order[2], 0);
	for (i = 0; i < 3; i++) {
		assert_int_equal(it[i].count, 1);
	}

	/* without the middle one */
	talloc_free(se[1]);
	rec.n = 0;
	assert_int_equal(kill(getpid(), SIGUSR2), 0);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(rec.n, 2);
	assert_int_equal(rec.order[0], 2);
	assert_int_equal(rec.order[1], 0);
	tt_finish(ev);
}

/*
 * The signal bookkeeping is process wide: a turn of one context runs the
 * handlers registered on other contexts too (each with its own context
 * as the first argument).  Surprising, but that is upstream.
 */
static void test_signal_two_contexts(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct tevent_context *ev2 = tevent_context_init(ev);
	struct sig_rec r1 = { 0 }, r2 = { 0 };

	assert_non_null(ev2);
	assert_non_null(tevent_add_signal(ev, ev, SIGUSR1, 0, rec_signal, &r1));
	assert_non_null(tevent_add_signal(ev2, ev2, SIGUSR1, 0,
					  rec_signal, &r2));
	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(r1.calls, 1);
	assert_int_equal(r2.calls, 1);
	assert_ptr_equal(r1.ev, ev);
	assert_ptr_equal(r2.ev, ev2);
	tt_finish(ev);
}

/* ------------------------------------------------------------------ */
/* SA_SIGINFO                                                          */

struct info_state {
	int calls;
	int bad_count;
	int next_value;
	int signum;
	bool order_broken;
	bool bad_info;
};

static void info_signal(struct tevent_context *ev,
			struct tevent_signal *se,
			int signum, int count, void *siginfo,
			void *private_data)
{
	struct info_state *s = private_data;
	siginfo_t *si = siginfo;

	s->calls++;
	/* each queued signal is reported on its own */
	if (count != 1) {
		s->bad_count++;
	}
	if (si == NULL || si->si_signo != s->signum ||
	    si->si_pid != getpid()) {
		s->bad_info = true;
		return;
	}
	if (si->si_code == SI_QUEUE) {
		if (si->si_value.sival_int != s->next_value) {
			s->order_broken = true;
		}
		s->next_value = si->si_value.sival_int + 1;
	}
}

static void queue_rt(int signum, int first, int n)
{
	int i;

	for (i = first; i < first + n; i++) {
		union sigval v = { .sival_int = i };

		assert_int_equal(sigqueue(getpid(), signum, v), 0);
	}
}

/*
 * Valgrind does not deliver sigqueue()d signals to the own process before
 * the call returns, nor does it honour a signal handler blocking its
 * signal through the ucontext mask; the exact SA_SIGINFO expectations
 * below only hold on the real kernel.
 */
static bool under_valgrind(void)
{
	return TT_ON_VALGRIND();
}

static bool enough_sigpending(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_SIGPENDING, &rl) != 0) {
		return false;
	}
	return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want;
}

/* 100 queued realtime signals: each delivered, in order, with its value. */
static void test_signal_siginfo_burst(void **state)
{
	struct tevent_context *ev;
	struct info_state s = { .signum = SIGRTMIN + 3 };
	int turns = 0;

	if (under_valgrind()) {
		skip();
	}

	if (!enough_sigpending(200)) {
		skip();
	}
	ev = tt_backend_ev(state);
	assert_non_null(tevent_add_signal(ev, ev, s.signum, SA_SIGINFO,
					  info_signal, &s));
	queue_rt(s.signum, 0, 100);
	while (s.calls < 100 && turns < 10) {
		safe_turn(ev);
		turns++;
	}
	assert_int_equal(s.calls, 100);
	assert_int_equal(s.next_value, 100);
	assert_int_equal(s.bad_count, 0);
	assert_false(s.bad_info);
	assert_false(s.order_broken);
	tt_finish(ev);
}

/*
 * More queued realtime signals than the library keeps (256 siginfo slots,
 * tevent_sa_info_queue_count()): once the slots are full the library
 * blocks the signal, the kernel keeps queueing, and nothing is lost.  A
 * turn reports at most one slot-full.
 */
static void test_signal_siginfo_overflow_rt(void **state)
{
	struct tevent_context *ev;
	struct info_state s = { .signum = SIGRTMIN + 4 };
	int qc = (int)tevent_sa_info_queue_count();
	int total = 3 * qc - 40;
	int turns = 0;

	if (under_valgrind()) {
		skip();
	}

	if (!enough_sigpending((rlim_t)total + 100)) {
		skip();
	}
	ev = tt_backend_ev(state);
	assert_non_null(tevent_add_signal(ev, ev, s.signum, SA_SIGINFO,
					  info_signal, &s));
	queue_rt(s.signum, 0, total);
	while (s.calls < total && turns < 20) {
		int before = s.calls;

		safe_turn(ev);
		assert_true(s.calls - before <= qc);
		turns++;
	}
	assert_int_equal(s.calls, total);
	assert_int_equal(s.next_value, total);
	assert_int_equal(s.bad_count, 0);
	assert_false(s.bad_info);
	assert_false(s.order_broken);

	/* nothing left blocked: a fresh signal still arrives */
	queue_rt(s.signum, total, 1);
	safe_turn(ev);
	assert_int_equal(s.calls, total + 1);

	tt_finish(ev);
}

/*
 * The same overflow with a classic signal: while the library has it
 * blocked the kernel keeps only one more pending instance, so exactly
 * tevent_sa_info_queue_count() + 1 of the 300 are reported.
 */
static void test_signal_siginfo_overflow_classic(void **state)
{
	struct tevent_context *ev;
	struct info_state s = { .signum = SIGWINCH };
	int qc = (int)tevent_sa_info_queue_count();
	int i, turns;

	if (under_valgrind()) {
		skip();
	}
	ev = tt_backend_ev(state);

	assert_non_null(tevent_add_signal(ev, ev, s.signum, SA_SIGINFO,
					  info_signal, &s));
	for (i = 0; i < qc + 44; i++) {
		assert_int_equal(kill(getpid(), s.signum), 0);
	}
	for (turns = 0; turns < 5; turns++) {
		safe_turn(ev);
	}
	assert_int_equal(s.calls, qc + 1);
	assert_int_equal(s.bad_count, 0);
	assert_false(s.bad_info);

	/* unblocked again afterwards */
	assert_int_equal(kill(getpid(), s.signum), 0);
	safe_turn(ev);
	assert_int_equal(s.calls, qc + 2);
	tt_finish(ev);
}

/* ------------------------------------------------------------------ */
/* SA_RESETHAND                                                        */

/*
 * An event added with SA_RESETHAND goes away after its first run; other
 * events for the signal stay.  (The plain event is added first because the
 * first registration decides the flags of the real sigaction.)
 */
static void test_signal_resethand(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct sig_rec keep = { 0 }, once = { 0 };
	struct tevent_signal *se_once;
	int gone = 0;

	assert_non_null(tevent_add_signal(ev, ev, SIGUSR1, SA_RESTART,
					  rec_signal, &keep));
	se_once = tevent_add_signal(ev, ev, SIGUSR1, SA_RESETHAND,
				    rec_signal, &once);
	assert_non_null(se_once);
	attach_gone_marker(se_once, &gone);

	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(keep.calls, 1);
	assert_int_equal(once.calls, 1);
	assert_int_equal(gone, 1);

	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(keep.calls, 2);
	assert_int_equal(once.calls, 1);
	tt_finish(ev);
}

/* As the only event: afterwards the old disposition is back. */
static void test_signal_resethand_restores(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct sig_rec once = { 0 };
	struct tevent_signal *se;
	int gone = 0;

	install_plain(SIGUSR2);
	se = tevent_add_signal(ev, ev, SIGUSR2, SA_RESETHAND,
			       rec_signal, &once);
	assert_non_null(se);
	attach_gone_marker(se, &gone);
	assert_false(disposition_is_plain(SIGUSR2));

	assert_int_equal(kill(getpid(), SIGUSR2), 0);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(once.calls, 1);
	assert_int_equal(gone, 1);
	assert_true(disposition_is_plain(SIGUSR2));

	assert_int_equal(plain_hits, 0);
	assert_int_equal(kill(getpid(), SIGUSR2), 0);
	assert_int_equal(plain_hits, 1);
	assert_int_equal(once.calls, 1);

	tt_finish(ev);
	signal(SIGUSR2, SIG_DFL);
}

/* ------------------------------------------------------------------ */
/* registration and dispositions                                       */

static void test_signal_restore_disposition(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct tevent_signal *a, *b;

	install_plain(SIGUSR1);
	a = tevent_add_signal(ev, ev, SIGUSR1, 0, never_signal, NULL);
	assert_non_null(a);
	assert_false(disposition_is_plain(SIGUSR1));
	b = tevent_add_signal(ev, ev, SIGUSR1, 0, never_signal, NULL);
	assert_non_null(b);

	/* still one left */
	talloc_free(a);
	assert_false(disposition_is_plain(SIGUSR1));
	/* the last one hands back the previous disposition */
	talloc_free(b);
	assert_true(disposition_is_plain(SIGUSR1));

	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	assert_int_equal(plain_hits, 1);

	tt_finish(ev);
	signal(SIGUSR1, SIG_DFL);
}

static void test_signal_bad_signum(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	int n = (int)tevent_num_signals();

	assert_true(n > SIGRTMAX);
	errno = 0;
	assert_null(tevent_add_signal(ev, ev, n, 0, never_signal, NULL));
	assert_int_equal(errno, EINVAL);
	assert_null(tevent_add_signal(ev, ev, n + 100, 0, never_signal, NULL));
	tt_finish(ev);
}

/*
 * Signals the kernel does not let anyone catch (SIGKILL, SIGSTOP) and
 * signal 0: sigaction() refuses them, so tevent_add_signal() returns NULL
 * with its EINVAL, with or without SA_SIGINFO, and leaves nothing behind:
 * asking again fails the same way, and a catchable signal still works.
 */
static void test_signal_uncatchable(void **state)
{
	static const int refused[] = { SIGKILL, SIGSTOP, 0 };
	struct tevent_context *ev = tt_backend_ev(state);
	struct sig_rec r = { 0 };
	size_t i;
	int round;

	for (round = 0; round < 2; round++) {
		for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
			errno = 0;
			assert_null(tevent_add_signal(ev, ev, refused[i], 0,
						      never_signal, NULL));
			assert_int_equal(errno, EINVAL);
			errno = 0;
			assert_null(tevent_add_signal(ev, ev, refused[i],
						      SA_SIGINFO, never_signal,
						      NULL));
			assert_int_equal(errno, EINVAL);
		}
	}
	if (!tt_is_system_library()) {
		/* upstream indexes its tables with a negative number here */
		errno = 0;
		assert_null(tevent_add_signal(ev, ev, -1, 0, never_signal,
					      NULL));
		assert_int_equal(errno, EINVAL);
	}

	assert_non_null(tevent_add_signal(ev, ev, SIGUSR2, 0, rec_signal, &r));
	assert_int_equal(kill(getpid(), SIGUSR2), 0);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.signum, SIGUSR2);
	tt_finish(ev);
}

/* ------------------------------------------------------------------ */
/* freeing from handlers                                               */

struct self_free_state {
	int calls;
	int free_ret;
	int gone;
	int gone_in_handler;
};

static void self_free_signal(struct tevent_context *ev,
			     struct tevent_signal *se,
			     int signum, int count, void *siginfo,
			     void *private_data)
{
	struct self_free_state *s = private_data;

	s->calls++;
	/* deferred until the handler returns, as for every event kind */
	s->free_ret = talloc_free(se);
	s->gone_in_handler = s->gone;
}

static void test_signal_free_self_in_handler(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct self_free_state s = { 0 };
	struct tevent_signal *se;
	struct sig_rec other = { 0 };

	/* a second event keeps the library's disposition installed */
	assert_non_null(tevent_add_signal(ev, ev, SIGUSR1, 0,
					  rec_signal, &other));
	se = tevent_add_signal(ev, ev, SIGUSR1, 0, self_free_signal, &s);
	assert_non_null(se);
	attach_gone_marker(se, &s.gone);

	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.free_ret, -1);
	assert_int_equal(s.gone_in_handler, 0);
	assert_int_equal(s.gone, 1);
	assert_int_equal(other.calls, 1);

	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(s.calls, 1);
	assert_int_equal(other.calls, 2);
	tt_finish(ev);
}

/* SA_SIGINFO and freeing itself: the rest of the queue is not reported. */
static void test_signal_siginfo_free_self(void **state)
{
	struct tevent_context *ev;
	struct self_free_state s = { 0 };
	struct tevent_signal *se;
	int signum = SIGRTMIN + 5;

	if (under_valgrind()) {
		skip();
	}
	ev = tt_backend_ev(state);

	se = tevent_add_signal(ev, ev, signum, SA_SIGINFO,
			       self_free_signal, &s);
	assert_non_null(se);
	queue_rt(signum, 0, 5);
	safe_turn(ev);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.free_ret, -1);
	safe_turn(ev);
	assert_int_equal(s.calls, 1);
	tt_finish(ev);
}

struct free_others_state {
	struct tevent_signal *se_usr2;
	struct tevent_fd *fde;
	struct tevent_timer *te;
	struct tevent_immediate *im;
	int calls;
};

static void never_fd(struct tevent_context *ev,
		     struct tevent_fd *fde,
		     uint16_t flags,
		     void *private_data)
{
	fail_msg("freed fd event ran");
}

static void never_timer(struct tevent_context *ev,
			struct tevent_timer *te,
			struct timeval now,
			void *private_data)
{
	fail_msg("freed timer ran");
}

static void never_imm(struct tevent_context *ev,
		      struct tevent_immediate *im,
		      void *private_data)
{
	fail_msg("freed immediate ran");
}

static void free_others_signal(struct tevent_context *ev,
			       struct tevent_signal *se,
			       int signum, int count, void *siginfo,
			       void *private_data)
{
	struct free_others_state *s = private_data;

	s->calls++;
	/* SIGUSR2 is pending as well but handled after SIGUSR1 */
	assert_int_equal(talloc_free(s->se_usr2), 0);
	assert_int_equal(talloc_free(s->fde), 0);
	assert_int_equal(talloc_free(s->te), 0);
	assert_int_equal(talloc_free(s->im), 0);
}

static void test_signal_free_others_in_handler(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct free_others_state s = { 0 };
	struct sig_rec flush_rec = { 0 };
	struct tevent_signal *flush;
	int sp[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	assert_non_null(tevent_add_signal(ev, ev, SIGUSR1, 0,
					  free_others_signal, &s));
	s.se_usr2 = tevent_add_signal(ev, ev, SIGUSR2, 0, never_signal, NULL);
	s.fde = tevent_add_fd(ev, ev, sp[0], TEVENT_FD_WRITE, never_fd, NULL);
	s.te = tevent_add_timer(ev, ev, tevent_timeval_zero(),
				never_timer, NULL);
	s.im = tevent_create_immediate(ev);
	assert_non_null(s.se_usr2);
	assert_non_null(s.fde);
	assert_non_null(s.te);
	assert_non_null(s.im);
	tevent_schedule_immediate(s.im, ev, never_imm, NULL);

	assert_int_equal(kill(getpid(), SIGUSR2), 0);
	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	/* signals come first in a turn, before the immediate */
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(s.calls, 1);

	/* nothing else runs; collect a possibly still recorded SIGUSR2 */
	flush = tevent_add_signal(ev, ev, SIGUSR2, 0, rec_signal, &flush_rec);
	assert_non_null(flush);
	safe_turn(ev);
	safe_turn(ev);
	assert_true(flush_rec.total <= 1);
	assert_int_equal(s.calls, 1);

	tt_finish(ev);
	close(sp[0]);
	close(sp[1]);
}

/*
 * Three events for one signal; whichever handler runs first frees the
 * other two (one of them is the next one the dispatch would call) and
 * then itself.  Only that one handler may run, for this delivery and for
 * a later one.  (Debian's 0.14.1 walks on through the freed next event:
 * valgrind reports invalid reads there.)
 */
struct free_siblings_state {
	struct tevent_signal *se[3];
	int calls[3];
};

static void free_siblings_signal(struct tevent_context *ev,
				 struct tevent_signal *se,
				 int signum, int count, void *siginfo,
				 void *private_data)
{
	struct free_siblings_state *s = private_data;
	int me, i;

	for (me = 0; me < 3 && s->se[me] != se; me++) {
	}
	assert_true(me < 3);
	s->calls[me]++;
	for (i = 1; i <= 2; i++) {
		assert_int_equal(talloc_free(s->se[(me + i) % 3]), 0);
		s->se[(me + i) % 3] = NULL;
	}
	/* its own free waits until it returns */
	assert_int_equal(talloc_free(se), -1);
}

static void test_signal_free_siblings_in_handler(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct free_siblings_state s = { 0 };
	struct sig_rec later = { 0 };
	int i;

	for (i = 0; i < 3; i++) {
		s.se[i] = tevent_add_signal(ev, ev, SIGUSR1, 0,
					    free_siblings_signal, &s);
		assert_non_null(s.se[i]);
	}
	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(s.calls[0] + s.calls[1] + s.calls[2], 1);

	/* the signal still works for an event added afterwards */
	assert_non_null(tevent_add_signal(ev, ev, SIGUSR1, 0, rec_signal,
					  &later));
	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(later.total, 1);
	assert_int_equal(s.calls[0] + s.calls[1] + s.calls[2], 1);

	tt_finish(ev);
}

/* ------------------------------------------------------------------ */
/* signals raised from fd handlers, with assorted flags                */

/*
 * A pipe whose read handler raises SIGUSR1 and SIGUSR2 every time, and
 * whose write handler keeps it readable.  SIGUSR2 has two events, one
 * with SA_RESTART that stays and one with SA_RESETHAND that is gone after
 * the first delivery; SIGUSR1 has an SA_SIGINFO event.  In the end the
 * SIGUSR2 total is one more than the reads and the SIGUSR1 total equals
 * them.  The events on the "wrong" pipe ends never fire (a pipe only goes
 * one way).
 */
struct mixed_state {
	int fd[2];
	int reads;
	int usr2_total;
	int usr1_total;
};

static void mixed_read(struct tevent_context *ev, struct tevent_fd *fde,
		       uint16_t flags, void *private_data)
{
	struct mixed_state *m = private_data;
	char c;

	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	assert_int_equal(kill(getpid(), SIGUSR2), 0);
	assert_int_equal(read(m->fd[0], &c, 1), 1);
	m->reads++;
}

static void mixed_write(struct tevent_context *ev, struct tevent_fd *fde,
			uint16_t flags, void *private_data)
{
	struct mixed_state *m = private_data;
	char c = 0;

	assert_int_equal(write(m->fd[1], &c, 1), 1);
}

static void mixed_usr2(struct tevent_context *ev, struct tevent_signal *se,
		       int signum, int count, void *siginfo,
		       void *private_data)
{
	struct mixed_state *m = private_data;

	assert_int_equal(signum, SIGUSR2);
	m->usr2_total += count;
}

static void mixed_usr1(struct tevent_context *ev, struct tevent_signal *se,
		       int signum, int count, void *siginfo,
		       void *private_data)
{
	struct mixed_state *m = private_data;

	assert_int_equal(signum, SIGUSR1);
	assert_non_null(siginfo);
	m->usr1_total += count;
}

static void test_signal_mixed_with_fds(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct mixed_state m = { .reads = 0 };
	struct tevent_fd *r, *w, *r_wrong, *w_wrong;
	struct tevent_signal *keep, *once, *info;
	int gone = 0;
	int turns = 0;

	assert_int_equal(pipe(m.fd), 0);
	r = tevent_add_fd(ev, ev, m.fd[0], TEVENT_FD_READ, mixed_read, &m);
	w_wrong = tevent_add_fd(ev, ev, m.fd[0], TEVENT_FD_WRITE,
				never_fd, NULL);
	w = tevent_add_fd(ev, ev, m.fd[1], TEVENT_FD_WRITE, mixed_write, &m);
	r_wrong = tevent_add_fd(ev, ev, m.fd[1], TEVENT_FD_READ,
				never_fd, NULL);
	assert_non_null(r);
	assert_non_null(w);
	assert_non_null(r_wrong);
	assert_non_null(w_wrong);
	tevent_fd_set_auto_close(r);
	tevent_fd_set_auto_close(w);

	keep = tevent_add_signal(ev, ev, SIGUSR2, SA_RESTART, mixed_usr2, &m);
	once = tevent_add_signal(ev, ev, SIGUSR2, SA_RESETHAND,
				 mixed_usr2, &m);
	info = tevent_add_signal(ev, ev, SIGUSR1, SA_SIGINFO, mixed_usr1, &m);
	assert_non_null(keep);
	assert_non_null(once);
	assert_non_null(info);
	attach_gone_marker(once, &gone);

	while (m.reads < 200) {
		assert_int_equal(tevent_loop_once(ev), 0);
		assert_true(++turns < 10000);
	}

	talloc_free(r_wrong);
	talloc_free(w_wrong);
	talloc_free(r);
	talloc_free(w);

	/* the signals of the last read are still to be served */
	turns = 0;
	while (m.usr2_total < m.reads + 1) {
		safe_turn(ev);
		assert_true(++turns < 10);
	}
	assert_int_equal(gone, 1);
	assert_int_equal(m.usr2_total, m.reads + 1);
	assert_int_equal(m.usr1_total, m.reads);

	talloc_free(keep);
	talloc_free(info);
	tt_finish(ev);
}

/* ------------------------------------------------------------------ */
/* waking up a waiting loop                                            */

/*
 * The loop waits in the backend with nothing but a signal event; a signal
 * sent by another process ends the wait and runs the handler.
 */
static void test_signal_wakes_loop(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct sig_rec r = { 0 };
	pid_t child;
	int status = 0;
	int turns = 0;

	assert_non_null(tevent_add_signal(ev, ev, SIGUSR1, 0, rec_signal, &r));
	child = fork();
	assert_true(child != -1);
	if (child == 0) {
		kill(getppid(), SIGUSR1);
		_exit(0);
	}
	while (r.calls == 0) {
		assert_int_equal(tevent_loop_once(ev), 0);
		assert_true(++turns < 100);
	}
	assert_int_equal(r.total, 1);
	assert_int_equal(waitpid(child, &status, 0), child);
	tt_finish(ev);
}

/*
 * A signal caught while an SA_SIGINFO event existed, but only handled
 * after that event was freed and a new one added: upstream has dropped
 * the recorded siginfo with the last event, so the new handler gets the
 * signal with an all-zero siginfo_t.
 */
struct info_rec {
	int calls;
	int signo;
	int code;
};

static void rec_info(struct tevent_context *ev, struct tevent_signal *se,
		     int signum, int count, void *siginfo, void *private_data)
{
	struct info_rec *r = private_data;
	siginfo_t *si = siginfo;

	assert_non_null(si);
	r->calls += count;
	r->signo = si->si_signo;
	r->code = si->si_code;
}

static void test_signal_info_dropped_with_last_event(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct info_rec r = { 0 };
	struct tevent_signal *se;
	int turns = 0;

	se = tevent_add_signal(ev, ev, SIGUSR2, SA_SIGINFO, rec_info, &r);
	assert_non_null(se);
	assert_int_equal(raise(SIGUSR2), 0);
	talloc_free(se);
	se = tevent_add_signal(ev, ev, SIGUSR2, SA_SIGINFO, rec_info, &r);
	assert_non_null(se);
	while (r.calls == 0) {
		assert_int_equal(tevent_loop_once(ev), 0);
		assert_true(++turns < 100);
	}
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.signo, 0);
	assert_int_equal(r.code, 0);
	talloc_free(se);
	tt_finish(ev);
}

int main(void)
{
	static const struct tt_case cases[] = {
		TT_BACKEND_CASE(test_signal_basic),
		TT_BACKEND_CASE(test_signal_coalesce),
		TT_BACKEND_CASE(test_signal_several_handlers),
		TT_BACKEND_CASE(test_signal_two_contexts),
		TT_BACKEND_CASE(test_signal_siginfo_burst),
		TT_BACKEND_CASE(test_signal_siginfo_overflow_rt),
		TT_BACKEND_CASE(test_signal_siginfo_overflow_classic),
		TT_BACKEND_CASE(test_signal_resethand),
		TT_BACKEND_CASE(test_signal_resethand_restores),
		TT_BACKEND_CASE(test_signal_restore_disposition),
		TT_BACKEND_CASE(test_signal_bad_signum),
		TT_BACKEND_CASE(test_signal_uncatchable),
		TT_BACKEND_CASE(test_signal_free_self_in_handler),
		TT_BACKEND_CASE(test_signal_siginfo_free_self),
		TT_BACKEND_CASE(test_signal_free_others_in_handler),
		TT_BACKEND_CASE(test_signal_free_siblings_in_handler),
		TT_BACKEND_CASE(test_signal_mixed_with_fds),
		TT_BACKEND_CASE(test_signal_wakes_loop),
		TT_BACKEND_CASE(test_signal_info_dropped_with_last_event),
	};

	tt_check_library();
	return tt_run_cases("signal", cases, sizeof(cases) / sizeof(cases[0]));
}

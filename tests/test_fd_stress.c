/*
 * test_fd_stress.c - fd events under random use, on every backend.
 *
 * A random driver works a dozen socketpairs: it writes into them, reads
 * them behind the handlers' backs, shuts their far ends, closes and
 * reopens them (so descriptor numbers come back), adds, frees and
 * re-flags fd events, sometimes two on one descriptor, and turns the loop. The handlers read, and also free or
 * re-flag themselves and each other and add new events, so events change
 * while a batch of readiness reports (epoll) is still being served.
 *
 * Checked on every call: the event is alive, the flags are ones it asks
 * for at that moment, a read does not find data that was never written,
 * and on a descriptor in blocking mode (every other pair) a read call
 * finds data: a report made stale by another handler is re-checked
 * first (see README, "Intended differences"; in non-blocking mode such a
 * call may find nothing, which is counted). At the end every byte written must be read by the handlers
 * within a bounded number of turns, with events that always want to
 * write competing for the same turns (fairness). ASan and valgrind
 * (make test-asan, test-valgrind) watch the memory.
 *
 * TT_FD_STRESS_SEEDS=N (default 12 per backend, 4 under valgrind),
 * TT_FD_STRESS_START=S (first seed, default 1) and TT_FD_STRESS_OPS=K
 * (default 1500) choose the runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>

#include "common/tt.h"
#include "common/tt_random.h"

#define NPAIR 12
#define MAX_FDE 40
#define PENDING_MAX 4096

struct fde_rec {
	struct tevent_fd *fde;  /* NULL: slot free */
	int pair;
	int calls;
};

struct pair_rec {
	int a, b;      /* handlers read a; the driver writes b */
	bool open;
	bool eof;      /* b shut for writing: a reads 0 after the data */
	bool blocking; /* a is in blocking mode */
	long pending;  /* written to b, not read from a yet */
};

static struct {
	struct tevent_context *ev;
	struct tt_tick tick;  /* keeps every turn short */
	struct fde_rec fdes[MAX_FDE];
	struct pair_rec pairs[NPAIR];
	uint64_t rng;
	bool draining;
	struct tt_findings found;
	unsigned long calls, spurious, frees_in_handler;
} F;

#define violation(...) tt_found(&F.found, __VA_ARGS__)

static unsigned pick(unsigned n)
{
	return tt_below(&F.rng, n);
}

static bool chance(unsigned pct)
{
	return pick(100) < pct;
}

/* ------------------------------------------------------------------ */

static void fd_handler(struct tevent_context *ev, struct tevent_fd *fde,
		       uint16_t flags, void *private_data);

static void free_fde(int i)
{
	TALLOC_FREE(F.fdes[i].fde);
}

static uint16_t random_flags(void)
{
	switch (pick(10)) {
	case 0:
		return TEVENT_FD_WRITE;
	case 1:
		return TEVENT_FD_READ | TEVENT_FD_ERROR;
	case 2:
		return 0;
	default:
		return TEVENT_FD_READ;
	}
}

/* false: all slots are taken (or the pair is closed) */
static bool add_fde(int pair, uint16_t flags)
{
	if (!F.pairs[pair].open) {
		return false;
	}
	for (int i = 0; i < MAX_FDE; i++) {
		if (F.fdes[i].fde == NULL) {
			F.fdes[i].fde = tevent_add_fd(F.ev, F.ev, F.pairs[pair].a,
						      flags, fd_handler,
						      &F.fdes[i]);
			assert_non_null(F.fdes[i].fde);
			F.fdes[i].pair = pair;
			return true;
		}
	}
	return false;
}

static int random_live_fde(void)
{
	int start = (int)pick(MAX_FDE);
	for (int k = 0; k < MAX_FDE; k++) {
		int i = (start + k) % MAX_FDE;
		if (F.fdes[i].fde != NULL) {
			return i;
		}
	}
	return -1;
}

static void read_some(struct fde_rec *r, bool all)
{
	struct pair_rec *p = &F.pairs[r->pair];
	char buf[512];
	size_t want = all ? sizeof(buf) : 1 + pick(16);
	/* Never blocks, even on a blocking descriptor: there a call
	 * without data would be a stale report, which must not happen. */
	ssize_t n = recv(p->a, buf, want, MSG_DONTWAIT);
	if (n > 0) {
		p->pending -= n;
		if (p->pending < 0) {
			violation("pair %d: read more than was written",
				  r->pair);
		}
	} else if (n == 0) {
		if (!p->eof || p->pending != 0) {
			violation("pair %d: end of file with %ld bytes due",
				  r->pair, p->pending);
		}
		/* Nothing more will come: stop asking. */
		tevent_fd_set_flags(r->fde, tevent_fd_get_flags(r->fde) &
				    ~TEVENT_FD_READ);
	} else if (errno == EAGAIN && p->blocking) {
		violation("pair %d: called without data on a blocking "
			  "descriptor", r->pair);
	} else if (errno == EAGAIN) {
		F.spurious++;  /* drained by another call of the same batch */
	} else {
		violation("pair %d: read: %s", r->pair, strerror(errno));
	}
}

static void fd_handler(struct tevent_context *ev, struct tevent_fd *fde,
		       uint16_t flags, void *private_data)
{
	(void)ev;
	struct fde_rec *r = private_data;
	int self = (int)(r - F.fdes);

	F.calls++;
	r->calls++;
	if (r->fde != fde) {
		violation("handler for a freed or other event (slot %d)", self);
		return;
	}
	uint16_t have = tevent_fd_get_flags(fde);
	if (flags == 0 || (flags & ~have) != 0) {
		violation("slot %d: called with flags %#x, asks for %#x", self,
			  flags, have);
	}
	if (flags & (TEVENT_FD_READ | TEVENT_FD_ERROR)) {
		read_some(r, F.draining || chance(30));
	}
	if (F.draining) {
		return;
	}
	switch (pick(40)) {
	case 0:
	case 1:
		free_fde(self);
		F.frees_in_handler++;
		return;
	case 2:
	case 3: {
		int other = random_live_fde();
		if (other >= 0) {
			free_fde(other);
			F.frees_in_handler++;
		}
		break;
	}
	case 4:
		tevent_fd_set_flags(fde, random_flags());
		break;
	case 5: {
		int other = random_live_fde();
		if (other >= 0) {
			tevent_fd_set_flags(F.fdes[other].fde, random_flags());
		}
		break;
	}
	case 6:
		add_fde((int)pick(NPAIR), random_flags());
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------------ */

/* Odd pairs read in blocking mode: the library must re-check a held
 * report for those before it calls a handler. */
static void open_pair(int i)
{
	int sp[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	bool blocking = i % 2 == 1;
	for (int k = blocking ? 1 : 0; k < 2; k++) {
		int fl = fcntl(sp[k], F_GETFL);
		assert_int_equal(fcntl(sp[k], F_SETFL, fl | O_NONBLOCK), 0);
	}
	F.pairs[i] = (struct pair_rec){ .a = sp[0], .b = sp[1], .open = true,
					.blocking = blocking };
}

/* Its events go first (one of them may close the descriptor itself). */
static void close_pair(int i)
{
	struct pair_rec *p = &F.pairs[i];
	bool closed = false;
	for (int k = 0; k < MAX_FDE; k++) {
		if (F.fdes[k].fde != NULL && F.fdes[k].pair == i) {
			if (!closed && chance(30)) {
				tevent_fd_set_auto_close(F.fdes[k].fde);
				closed = true;
			}
			free_fde(k);
		}
	}
	if (!closed) {
		close(p->a);
	}
	close(p->b);
	p->open = false;
}

static void op_write(struct pair_rec *p)
{
	if (!p->open || p->eof || p->pending > PENDING_MAX) {
		return;
	}
	char buf[8] = "abcdefg";
	size_t n = 1 + pick(sizeof(buf));
	ssize_t w = write(p->b, buf, n);
	if (w > 0) {
		p->pending += w;
	}
}

static void run_op(void)
{
	int pi = (int)pick(NPAIR);
	struct pair_rec *p = &F.pairs[pi];
	unsigned r = pick(1000);
	if (r < 250) {
		/* Bursts: several descriptors ready in the same turn. */
		op_write(p);
		for (int k = (int)pick(6); k > 0; k--) {
			op_write(&F.pairs[pick(NPAIR)]);
		}
	} else if (r < 350) {
		add_fde(pi, random_flags());
	} else if (r < 420) {
		int i = random_live_fde();
		if (i >= 0) {
			free_fde(i);
		}
	} else if (r < 480) {
		int i = random_live_fde();
		if (i >= 0) {
			tevent_fd_set_flags(F.fdes[i].fde, random_flags());
		}
	} else if (r < 495) {
		close_pair(pi);
		open_pair(pi);
	} else if (r < 500) {
		if (p->open && !p->eof) {
			shutdown(p->b, SHUT_WR);
			p->eof = true;
		}
	} else if (r < 560) {
		/* Other code reads the descriptor: a report the loop holds
		 * for it may now be stale. */
		char buf[64];
		ssize_t n = p->open ? recv(p->a, buf, sizeof(buf), MSG_DONTWAIT)
				    : -1;
		if (n > 0) {
			p->pending -= n;
		}
	} else {
		assert_int_equal(tevent_loop_once(F.ev), 0);
	}
}

/* Every byte written is read by the handlers in a bounded number of
 * turns, while events that always want to write take turns too. */
static void drain(void)
{
	F.draining = true;
	for (int i = 0; i < NPAIR; i++) {
		bool reader = false;
		for (int k = 0; k < MAX_FDE; k++) {
			struct fde_rec *r = &F.fdes[k];
			if (r->fde != NULL && r->pair == i &&
			    (tevent_fd_get_flags(r->fde) & TEVENT_FD_READ)) {
				reader = true;
			}
		}
		if (!reader && F.pairs[i].pending > 0 &&
		    !add_fde(i, TEVENT_FD_READ)) {
			/* All slots taken: one that reads nothing makes room. */
			for (int k = 0; k < MAX_FDE; k++) {
				if (!(tevent_fd_get_flags(F.fdes[k].fde) &
				      TEVENT_FD_READ)) {
					free_fde(k);
					break;
				}
			}
			assert_true(add_fde(i, TEVENT_FD_READ));
		}
	}
	for (int turn = 0; turn < 20000; turn++) {
		long left = 0;
		for (int i = 0; i < NPAIR; i++) {
			left += F.pairs[i].pending;
		}
		if (left == 0) {
			return;
		}
		assert_int_equal(tevent_loop_once(F.ev), 0);
	}
	for (int i = 0; i < NPAIR; i++) {
		if (F.pairs[i].pending == 0) {
			continue;
		}
		fprintf(stderr, "pair %d (fd %d): %ld bytes due, eof %d\n", i,
			F.pairs[i].a, F.pairs[i].pending, (int)F.pairs[i].eof);
		for (int k = 0; k < MAX_FDE; k++) {
			struct fde_rec *r = &F.fdes[k];
			if (r->fde != NULL && r->pair == i) {
				fprintf(stderr, "  slot %d: flags %#x, %d calls\n",
					k, tevent_fd_get_flags(r->fde),
					r->calls);
			}
		}
	}
	violation("data left unread after 20000 turns");
}

static void run_seed(const char *backend, uint64_t seed, int ops)
{
	memset(&F, 0, sizeof(F));
	F.rng = seed * 0x2545f4914f6cdd1dULL + 3;
	F.ev = tevent_context_init_byname(NULL, backend);
	assert_non_null(F.ev);
	assert_true(tt_tick_start(F.ev, &F.tick, 500));
	for (int i = 0; i < NPAIR; i++) {
		open_pair(i);
		add_fde(i, TEVENT_FD_READ);
	}
	for (int i = 0; i < ops && atomic_load(&F.found.count) == 0; i++) {
		run_op();
	}
	if (atomic_load(&F.found.count) == 0) {
		drain();
	}
	for (int i = 0; i < NPAIR; i++) {
		close_pair(i);
	}
	TALLOC_FREE(F.ev);
	if (atomic_load(&F.found.count) != 0 || getenv("TT_FD_STRESS_VERBOSE")) {
		fprintf(stderr, "%s seed %llu: %d violation(s)%s%s; %lu calls, "
			"%lu spurious reads, %lu frees in handlers\n", backend,
			(unsigned long long)seed, atomic_load(&F.found.count),
			F.found.first[0] ? ", first: " : "", F.found.first, F.calls,
			F.spurious, F.frees_in_handler);
	}
}

static void test_random_fd_use(void **state)
{
	const char *backend = *state;
	int seeds = tt_env_int("TT_FD_STRESS_SEEDS", TT_ON_VALGRIND() ? 4 : 12);
	int ops = tt_env_int("TT_FD_STRESS_OPS", 1500);
	int start = tt_env_int("TT_FD_STRESS_START", 1);
	int failed = 0;

	alarm(600);
	for (int i = 0; i < seeds; i++) {
		run_seed(backend, (uint64_t)(start + i), ops);
		failed += atomic_load(&F.found.count) != 0;
	}
	alarm(0);
	assert_int_equal(failed, 0);
}

int main(void)
{
	static const struct tt_case cases[] = {
		TT_BACKEND_CASE(test_random_fd_use),
	};
	tt_check_library();
	return tt_run_cases("fd_stress", cases,
			    sizeof(cases) / sizeof(cases[0]));
}

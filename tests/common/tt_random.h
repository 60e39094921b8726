/*
 * Seeded randomness, findings and a watchdog clock, for the tests that
 * drive the library through random sequences (tests/diff/, the *_stress
 * and churn tests).
 * Header only, no cmocka: the differential interpreter uses it too.
 *
 * splitmix64 is small, fast and the same everywhere, so a seed names one
 * run on any machine (up to thread timing).
 */
#ifndef TT_RANDOM_H
#define TT_RANDOM_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <sys/time.h>
#include <unistd.h>

/*
 * A timer of a test with random deadlines: its key (ordered like its
 * deadline) and the order it was added in.  Sorted with tt_keyed_cmp(),
 * an array of them is the order the timers must fire in.
 */
struct tt_keyed {
	int64_t key;
	uint32_t idx;
};

static inline int tt_keyed_cmp(const void *a, const void *b)
{
	const struct tt_keyed *x = a;
	const struct tt_keyed *y = b;

	if (x->key != y->key) {
		return x->key < y->key ? -1 : 1;
	}
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static inline uint64_t tt_splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* 0 .. n-1 */
static inline unsigned tt_below(uint64_t *state, unsigned n)
{
	return (unsigned)(tt_splitmix64(state) % n);
}

/* Wall-clock seconds, for watchdogs that end a run gone wrong (never
 * for a timing assertion). */
static inline double tt_now_s(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return tv.tv_sec + tv.tv_usec / 1e6;
}

/*
 * Varies how threads interleave: one call in `one_in` sleeps for up to
 * max_usec microseconds, two yield the CPU, the rest go straight on.
 */
static inline void tt_jitter(uint64_t *state, unsigned one_in,
			     unsigned max_usec)
{
	unsigned r = tt_below(state, one_in);
	if (r == 0) {
		usleep((useconds_t)tt_below(state, max_usec));
	} else if (r <= 2) {
		sched_yield();
	}
}

/* $name as a number, or dflt when unset or empty. */
static inline int tt_env_int(const char *name, int dflt)
{
	const char *v = getenv(name);
	return v != NULL && *v != '\0' ? atoi(v) : dflt;
}

/*
 * What a run found wrong: how many things, and the first in words. Any
 * thread may report; the first report's text is kept.
 */
struct tt_findings {
	atomic_int count;
	char first[256];
};

static inline void tt_found(struct tt_findings *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static inline void tt_found(struct tt_findings *f, const char *fmt, ...)
{
	if (atomic_fetch_add(&f->count, 1) == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(f->first, sizeof(f->first), fmt, ap);
		va_end(ap);
	}
}

static inline void tt_findings_reset(struct tt_findings *f)
{
	atomic_store(&f->count, 0);
	f->first[0] = '\0';
}

#endif /* TT_RANDOM_H */

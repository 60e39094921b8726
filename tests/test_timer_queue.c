/*
 * Model-checked tests for the timer queue (lib/tevent/timer_queue.hh).
 *
 * The library keeps a context's timers in two containers: a sorted run in
 * a circular array for keys beyond either end of it, with holes where
 * timers left from the middle, and a binary heap for the rest.  What a
 * program can see of that is one thing only: which timer the next loop
 * turn fires.  So these tests drive random sequences of adds, frees and
 * tevent_update_timer() calls (and, from inside handlers, nested loop
 * turns, re-arms and frees) and check every turn against a model: a plain
 * list of the queued timers, each with its deadline and a stamp taken from
 * a counter whenever it was added or updated.  The next turn must fire the
 * timer with the smallest (deadline, stamp), and nothing else.
 *
 * Every deadline is in the past (within a few hours after the epoch, or
 * tevent_timeval_zero()), so every timer is due at once and
 * one tevent_loop_once() fires exactly one timer: nothing depends on the
 * clock or on the speed of the machine.  The deadlines are spread so that
 * both tv_sec and tv_usec decide comparisons, with plenty of exact ties.
 *
 * Cases:
 *   model_churn      random operations on one context, the live count
 *                    wandering between 0 and a few hundred (the run grows,
 *                    wraps, collects holes and compacts; timers cross
 *                    between run and heap on updates);
 *   handler_actions  the same, but handlers add, free and update timers,
 *                    free themselves, turn the loop once more from inside
 *                    (nesting allowed) and, on our library, re-arm
 *                    themselves with tevent_update_timer(): the timer is
 *                    queued again until that run of the handler returns
 *                    (a nested turn may fire it again), then gone;
 *   wrapper_dies     timers of the main context and of up to two wrapper
 *                    contexts, mixed; wrappers are freed (between turns or
 *                    from a handler) with timers in both containers, and
 *                    their timers must never fire;
 *   update_tie_order fixed sequences: equal deadlines and updates to the
 *                    same, an earlier or a later deadline;
 *   big_churn,       model_churn and handler_actions with thousands of
 *   big_actions      timers, most of them at random deadlines: the heap
 *                    holds hundreds, then more than the run, which is
 *                    when the library sorts both into one run as the
 *                    heap's earliest timer is about to fire (also with
 *                    handlers of the same context on the stack);
 *   big_shapes       fixed shapes around that sort: a run of R timers
 *                    and a heap of H timers at random deadlines between
 *                    the run's, all added first and then fired: the order
 *                    must be that of (deadline, order added).  Shapes
 *                    where R + H fits the heap's array and where it does
 *                    not, and one just below the size that sorts.
 *
 * One refinement of that order is upstream's: among timers with a zero
 * deadline, those added at zero (tevent_add_timer()) fire first, in the
 * order they were added, and those moved to zero by tevent_update_timer()
 * after them (see rec_before()).
 *
 * Every case passes against Debian's libtevent 0.14.1 too, which is what
 * validates the model, with one thing left out there because upstream
 * gets it wrong (see self_rearm_ok()): a handler re-arming its own timer.
 * Upstream frees the timer after the handler without taking it off its
 * list again (use after free).
 *
 * Environment: TT_TQ_SEEDS (seeds per random case; default 40, the big
 * cases 6, or 2 against the system library; 1 under valgrind), TT_TQ_START
 * (first seed, default 1), TT_TQ_OPS (operations per seed, default 3000,
 * the big cases 150000, or 50000 against the system library),
 * TT_TQ_VERBOSE (a line of statistics per seed).  Against the system
 * library big_shapes also shrinks its shapes (see there).
 * A failure names the case, seed and step; rerun one seed with
 *   TT_TQ_START=<seed> TT_TQ_SEEDS=1 TT_FILTER='<case>*'.
 * (A crash only names the case; with TT_TQ_VERBOSE set, the seed that
 * crashed is the one after the last seed reported.)
 */

/* wrapper contexts and tevent_loop_allow_nesting() sit behind this */
#define TEVENT_DEPRECATED 1

#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>

#include "common/tt.h"
#include "common/tt_random.h"

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
/* callbacks have fixed signatures */
#pragma GCC diagnostic ignored "-Wunused-parameter"

/* ------------------------------------------------------------------ */
/* deadlines                                                           */

/*
 * The model orders timers by an integer key; tv_of() maps keys to
 * deadlines preserving that order: key 0 is tevent_timeval_zero(), the
 * others a whole second for every 1024 keys plus up to 1023 microseconds.
 */
#define KEY_START ((int64_t)1 << 22)      /* where "latest" starts */
#define KEY_SENTINEL ((int64_t)1 << 40)   /* beyond every other key */

static struct timeval tv_of(int64_t key)
{
	if (key == 0) {
		return tevent_timeval_zero();
	}
	return tevent_timeval_set((uint32_t)(1 + key / 1024),
				  (uint32_t)(key % 1024));
}

/* ------------------------------------------------------------------ */
/* the model                                                           */

enum { MAX_OWNERS = 3 };  /* the main context, two wrappers */
enum { MAX_DEPTH = 3 };   /* handler runs on the stack, nested loops */

struct tq;

/* One timer the test created; kept until the seed ends. */
struct rec {
	struct tq *q;
	struct tevent_timer *te;  /* null once its memory is gone */
	unsigned id;
	int64_t key;
	uint64_t stamp;           /* when last added or updated */
	int owner;                /* 0: main context; 1, 2: wrappers */
	int parent_wrap;          /* talloc parent is that wrapper, or 0 */
	int slot;                 /* index in q->live; -1: not queued */
	bool zero_first;          /* added at key 0 (not moved there) */
	bool doomed;              /* freed while its handler runs */
	bool orphan;              /* its wrapper died with it queued */
	bool spent;               /* an inner run of its handler returned */
	int running;              /* runs of its handler on the stack */
	int fires;
};

/*
 * With tens of thousands of timers, scanning the model for its earliest
 * on every turn is too slow, so big cases find it in a plain binary heap
 * of snapshots taken at every model_put(). A snapshot whose record has
 * been dropped or put again since is stale and discarded when it surfaces.
 */
struct snap {
	int64_t key;
	uint64_t stamp;
	bool zero_first;
	struct rec *r;
};

struct wstate {
	struct tq *q;
	int owner;
};

struct tq {
	const char *name;
	uint64_t seed;
	uint64_t rng;
	long step;
	int ops;

	bool upstream;            /* testing Debian's libtevent */
	bool actions;             /* handlers act */
	bool nesting;             /* handlers may turn the loop */
	bool wrappers;            /* wrapper contexts take part */
	bool draining;            /* no more adds from handlers */
	bool big;                 /* tens of thousands of timers */
	struct snap *order;       /* big: a min-heap of (rec, key) snapshots */
	int norder;
	int ordercap;

	struct tevent_context *ev;
	struct tevent_context *wrap[MAX_OWNERS];  /* [0] unused */
	TALLOC_CTX *mem;          /* most timers, the wrappers */
	TALLOC_CTX *recs;         /* the records and the model's arrays */

	struct rec **live;        /* the queued timers, in no order */
	int nlive;
	int cap;
	struct rec **all;         /* every record of the seed */
	int nall;
	int allcap;

	uint64_t next_stamp;
	unsigned next_id;
	int64_t cursor;           /* the latest key handed out */
	int target;               /* where the live count heads */
	int phase_left;           /* operations until a new target */
	bool timeouts;            /* this phase: request timeouts (added
				     at the latest deadline, refreshed,
				     freed in any order) */

	struct rec *expect;       /* what the pending turn must fire */
	int depth;                /* handler runs on the stack */
	struct tevent_timer *hook_te;  /* in a wrapper's timer hooks */

	bool failed;
	char msg[768];

	/* statistics, for TT_TQ_VERBOSE */
	long n_turns, n_nested, n_rearm, n_rearm_fired_inner, n_free_self;
	long n_spent_rearm;
	long n_wrap_deaths, n_orphans, n_handler_adds, max_live;
};

static void bad(struct tq *q, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Records the first thing that went wrong, with where it happened. */
static void bad(struct tq *q, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (q->failed) {
		return;
	}
	q->failed = true;
	n = snprintf(q->msg, sizeof(q->msg), "%s seed %llu step %ld depth %d: ",
		     q->name, (unsigned long long)q->seed, q->step, q->depth);
	if (n < 0 || (size_t)n >= sizeof(q->msg)) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(q->msg + n, sizeof(q->msg) - (size_t)n, fmt, ap);
	va_end(ap);
}

/* A record in words, for failure messages (two buffers in turn). */
static const char *show(const struct rec *r)
{
	static char buf[2][160];
	static int which;
	char *b = buf[which ^= 1];
	struct timeval tv;

	if (r == NULL) {
		return "nothing";
	}
	tv = tv_of(r->key);
	snprintf(b, sizeof(buf[0]),
		 "timer #%u (deadline {%ld,%ld}, stamp %llu, owner %d%s%s)",
		 r->id, (long)tv.tv_sec, (long)tv.tv_usec,
		 (unsigned long long)r->stamp, r->owner,
		 r->slot >= 0 ? ", queued" : ", not queued",
		 r->orphan ? ", orphan" : "");
	return b;
}

/*
 * Upstream's list order, which ours keeps: by deadline, then by stamp,
 * except that timers added with a zero deadline come before those moved
 * to zero (tevent_common_add_timer_v2() files them behind the last one
 * added so, and the update files its timer behind every zero timer).
 */
static bool key_before(int64_t key_a, bool zero_first_a, uint64_t stamp_a,
		       int64_t key_b, bool zero_first_b, uint64_t stamp_b)
{
	if (key_a != key_b) {
		return key_a < key_b;
	}
	if (zero_first_a != zero_first_b) {
		return zero_first_a;
	}
	return stamp_a < stamp_b;
}

static bool rec_before(const struct rec *a, const struct rec *b)
{
	return key_before(a->key, a->zero_first, a->stamp,
			  b->key, b->zero_first, b->stamp);
}

static bool snap_before(const struct snap *a, const struct snap *b)
{
	return key_before(a->key, a->zero_first, a->stamp,
			  b->key, b->zero_first, b->stamp);
}

static void snap_swap(struct tq *q, int i, int j)
{
	struct snap t = q->order[i];

	q->order[i] = q->order[j];
	q->order[j] = t;
}

static void order_push(struct tq *q, const struct rec *r)
{
	int i;

	if (q->norder == q->ordercap) {
		q->ordercap = q->ordercap ? 2 * q->ordercap : 1024;
		q->order = talloc_realloc(q->recs, q->order, struct snap,
					  q->ordercap);
		assert_non_null(q->order);
	}
	i = q->norder++;
	q->order[i] = (struct snap){r->key, r->stamp, r->zero_first,
				    (struct rec *)r};
	while (i > 0 && snap_before(&q->order[i], &q->order[(i - 1) / 2])) {
		snap_swap(q, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void order_pop(struct tq *q)
{
	int i = 0;

	q->order[0] = q->order[--q->norder];
	for (;;) {
		int c = 2 * i + 1;

		if (c >= q->norder) {
			break;
		}
		if (c + 1 < q->norder &&
		    snap_before(&q->order[c + 1], &q->order[c])) {
			c++;
		}
		if (!snap_before(&q->order[c], &q->order[i])) {
			break;
		}
		snap_swap(q, i, c);
		i = c;
	}
}

/* The earliest queued record, from the snapshots (big cases). */
static struct rec *order_min(struct tq *q)
{
	while (q->norder > 0) {
		const struct snap *t = &q->order[0];

		if (t->r->slot >= 0 && t->r->stamp == t->stamp) {
			return t->r;
		}
		order_pop(q);
	}
	return NULL;
}

static void model_put(struct tq *q, struct rec *r, int64_t key,
		      bool by_update)
{
	if (r->slot < 0) {
		if (q->nlive == q->cap) {
			q->cap = q->cap ? 2 * q->cap : 64;
			q->live = talloc_realloc(q->recs, q->live, struct rec *,
						 q->cap);
			assert_non_null(q->live);
		}
		r->slot = q->nlive;
		q->live[q->nlive++] = r;
		if (q->nlive > q->max_live) {
			q->max_live = q->nlive;
		}
	}
	r->key = key;
	r->stamp = q->next_stamp++;
	r->zero_first = !by_update && key == 0;
	if (q->big) {
		order_push(q, r);
	}
}

static void model_drop(struct tq *q, struct rec *r)
{
	struct rec *last;

	if (r->slot < 0) {
		return;
	}
	last = q->live[--q->nlive];
	q->live[r->slot] = last;
	last->slot = r->slot;
	r->slot = -1;
	r->zero_first = false;
}

static struct rec *model_min(struct tq *q)
{
	struct rec *m = NULL;
	int i;

	if (q->big) {
		return order_min(q);
	}
	for (i = 0; i < q->nlive; i++) {
		if (m == NULL || rec_before(q->live[i], m)) {
			m = q->live[i];
		}
	}
	return m;
}

static struct rec *model_max(struct tq *q)
{
	struct rec *m = NULL;
	int i;

	for (i = 0; i < q->nlive; i++) {
		if (m == NULL || rec_before(m, q->live[i])) {
			m = q->live[i];
		}
	}
	return m;
}

/* The queued timer added or updated longest ago (or most recently). */
static struct rec *model_by_stamp(struct tq *q, bool newest)
{
	struct rec *m = NULL;
	int i;

	for (i = 0; i < q->nlive; i++) {
		struct rec *r = q->live[i];

		if (m == NULL || (newest ? r->stamp > m->stamp
					 : r->stamp < m->stamp)) {
			m = r;
		}
	}
	return m;
}

static unsigned below(struct tq *q, unsigned n)
{
	return tt_below(&q->rng, n);
}

/* ------------------------------------------------------------------ */
/* choosing deadlines and victims                                      */

enum where { AT_LATEST, AT_EARLIEST, AT_RANDOM, AT_TIE, AT_ZERO };

static enum where pick_where(struct tq *q, bool update)
{
	unsigned c = below(q, 100);

	if (q->timeouts && q->depth == 0 && c < 95) {
		return AT_LATEST;
	}
	if (q->big && !update) {
		/* most go to the heap */
		return c < 20 ? AT_LATEST : c < 30 ? AT_EARLIEST
			: c < 80 ? AT_RANDOM : c < 95 ? AT_TIE : AT_ZERO;
	}
	if (update) {
		return c < 30 ? AT_LATEST : c < 50 ? AT_EARLIEST
			: c < 75 ? AT_RANDOM : c < 93 ? AT_TIE : AT_ZERO;
	}
	return c < 55 ? AT_LATEST : c < 67 ? AT_EARLIEST
		: c < 82 ? AT_RANDOM : c < 94 ? AT_TIE : AT_ZERO;
}

/*
 * A key for a timer added or moved: after every queued timer
 * (sometimes equal to the last), before every one, anywhere between,
 * equal to some queued timer's, or zero.
 */
static int64_t pick_key(struct tq *q, enum where w)
{
	struct rec *r;
	int64_t lo, hi;

	switch (w) {
	case AT_EARLIEST:
		r = model_min(q);
		if (r == NULL) {
			break;
		}
		if (r->key <= 1) {
			/* nothing non-zero fits before it */
			return 1;
		}
		lo = r->key - 1 - (int64_t)below(q, 3);
		return lo < 1 ? 1 : lo;
	case AT_RANDOM:
		r = model_min(q);
		if (r == NULL) {
			break;
		}
		lo = r->key < 1 ? 1 : r->key;
		/* (no key exceeds the cursor; big cases skip the scan) */
		hi = q->big ? q->cursor : model_max(q)->key;
		if (hi < lo) {
			return lo;
		}
		return lo + (int64_t)(tt_splitmix64(&q->rng) %
				      (uint64_t)(hi - lo + 1));
	case AT_TIE:
		if (q->nlive == 0) {
			break;
		}
		r = q->live[below(q, (unsigned)q->nlive)];
		return r->key;
	case AT_ZERO:
		return 0;
	case AT_LATEST:
		break;
	}
	q->cursor += below(q, 3);  /* a third of them tie with the last */
	return q->cursor;
}

/* A queued timer: the earliest, the latest, the oldest, the newest or any. */
static struct rec *pick_victim(struct tq *q, bool for_free)
{
	unsigned c = below(q, 100);

	if (q->nlive == 0) {
		return NULL;
	}
	if ((q->timeouts && q->depth == 0 && c < 85) || (q->big && c >= 20)) {
		/* requests finish in any order; big cases scan no more */
		return q->live[below(q, (unsigned)q->nlive)];
	}
	if (q->big) {
		return model_min(q);
	}
	if (for_free) {
		/* timeouts that did not expire: mostly the older ones */
		if (c < 25) {
			return model_by_stamp(q, false);
		}
		if (c < 45) {
			return model_min(q);
		}
		if (c < 60) {
			return model_max(q);
		}
		if (c < 70) {
			return model_by_stamp(q, true);
		}
	} else {
		if (c < 20) {
			return model_min(q);
		}
		if (c < 40) {
			return model_max(q);
		}
		if (c < 50) {
			return model_by_stamp(q, false);
		}
	}
	return q->live[below(q, (unsigned)q->nlive)];
}

/* ------------------------------------------------------------------ */
/* timers                                                              */

static void on_timer(struct tevent_context *ev, struct tevent_timer *te,
		     struct timeval now, void *private_data);

/* A talloc child of each timer: tells when the timer's memory goes. */
static int marker_gone(struct rec **m)
{
	struct rec *r = *m;
	struct tq *q = r->q;

	if (r->slot >= 0) {
		bad(q, "%s was freed while the model has it queued", show(r));
		model_drop(q, r);
	}
	if (r->running > 0 && !q->failed) {
		bad(q, "%s was freed while its handler runs", show(r));
	}
	r->te = NULL;
	return 0;
}

static struct rec *new_rec(struct tq *q)
{
	struct rec *r = talloc_zero(q->recs, struct rec);

	assert_non_null(r);
	r->q = q;
	r->id = q->next_id++;
	r->slot = -1;
	if (q->nall == q->allcap) {
		q->allcap = q->allcap ? 2 * q->allcap : 256;
		q->all = talloc_realloc(q->recs, q->all, struct rec *,
					q->allcap);
		assert_non_null(q->all);
	}
	q->all[q->nall++] = r;
	return r;
}

static int pick_owner(struct tq *q)
{
	int k = below(q, 4);

	if (!q->wrappers || k == 0 || k >= MAX_OWNERS || q->wrap[k] == NULL) {
		return 0;
	}
	return k;
}

static struct tevent_context *ctx_of(struct tq *q, int owner)
{
	return owner == 0 ? q->ev : q->wrap[owner];
}

static struct rec *op_add_key(struct tq *q, int64_t key, int owner)
{
	struct rec *r = new_rec(q);
	TALLOC_CTX *parent = q->mem;
	struct rec **m;

	r->owner = owner;
	if (q->wrappers) {
		/* some timers go with a wrapper's memory, even main ones */
		int k = 1 + below(q, MAX_OWNERS - 1);

		if (below(q, 5) == 0 && q->wrap[k] != NULL &&
		    (owner == 0 || owner == k)) {
			parent = q->wrap[k];
			r->parent_wrap = k;
		}
	} else if (below(q, 8) == 0) {
		parent = q->ev;
	}
	model_put(q, r, key, false);
	r->te = tevent_add_timer(ctx_of(q, owner), parent, tv_of(key),
				 on_timer, r);
	if (r->te == NULL) {
		bad(q, "tevent_add_timer failed");
		model_drop(q, r);
		return NULL;
	}
	m = talloc(r->te, struct rec *);
	assert_non_null(m);
	*m = r;
	talloc_set_destructor(m, marker_gone);
	return r;
}

static void op_add(struct tq *q)
{
	op_add_key(q, pick_key(q, pick_where(q, false)), pick_owner(q));
}

static void update_to(struct tq *q, struct rec *r, int64_t key)
{
	model_put(q, r, key, true);
	tevent_update_timer(r->te, tv_of(key));
}

static void op_update(struct tq *q)
{
	struct rec *r = pick_victim(q, false);

	if (r != NULL) {
		update_to(q, r, pick_key(q, pick_where(q, true)));
	}
}

/* Frees a queued timer (deferred by the library if its handler runs). */
static void free_rec(struct tq *q, struct rec *r)
{
	int want = r->running > 0 ? -1 : 0;
	int ret;

	model_drop(q, r);
	if (r->running > 0) {
		r->doomed = true;
	}
	ret = talloc_free(r->te);
	if (ret != want) {
		bad(q, "talloc_free(%s) gave %d, expected %d", show(r), ret,
		    want);
	}
	if (want == 0 && r->te != NULL) {
		bad(q, "%s still has its memory after talloc_free()",
		    show(r));
	}
}

static void op_free(struct tq *q)
{
	struct rec *r = pick_victim(q, true);

	if (r != NULL) {
		free_rec(q, r);
	}
}

/*
 * Turns the loop once: the model's earliest timer must fire, and be
 * freed once its handler is back (timers are one-shot).
 */
static void turn(struct tq *q)
{
	struct rec *want = model_min(q);
	int fires;
	int ret;

	if (want == NULL || q->failed) {
		return;  /* the loop would wait for nothing */
	}
	fires = want->fires;
	q->expect = want;
	if (q->depth > 0) {
		q->n_nested++;
	}
	q->n_turns++;
	ret = tevent_loop_once(q->ev);
	if (q->failed) {
		return;
	}
	if (ret != 0) {
		bad(q, "tevent_loop_once() gave %d", ret);
		return;
	}
	if (q->expect != NULL) {
		bad(q, "expected %s to fire, nothing fired", show(want));
		q->expect = NULL;
		return;
	}
	/* (more than one fire is fine: a re-armed timer can fire again
	 * from a loop nested in its own handler) */
	if (want->fires == fires) {
		bad(q, "%s did not fire", show(want));
		return;
	}
	if (want->running == 0 && want->te != NULL) {
		bad(q, "%s was not freed after its handler returned",
		    show(want));
	}
}

/* ------------------------------------------------------------------ */
/* wrappers                                                            */

static bool w_before_use(struct tevent_context *wrap_ev, void *ps,
			 struct tevent_context *main_ev, const char *location)
{
	return true;
}

static void w_after_use(struct tevent_context *wrap_ev, void *ps,
			struct tevent_context *main_ev, const char *location)
{
}

static void w_before_fd(struct tevent_context *wrap_ev, void *ps,
			struct tevent_context *main_ev, struct tevent_fd *fde,
			uint16_t flags, const char *handler_name,
			const char *location)
{
}

static void w_after_fd(struct tevent_context *wrap_ev, void *ps,
		       struct tevent_context *main_ev, struct tevent_fd *fde,
		       uint16_t flags, const char *handler_name,
		       const char *location)
{
}

static void w_before_timer(struct tevent_context *wrap_ev, void *ps,
			   struct tevent_context *main_ev,
			   struct tevent_timer *te, struct timeval requested,
			   struct timeval trigger, const char *handler_name,
			   const char *location)
{
	struct wstate *w = ps;
	struct tq *q = w->q;

	if (main_ev != q->ev || wrap_ev != q->wrap[w->owner]) {
		bad(q, "timer hook of wrapper %d with the wrong contexts",
		    w->owner);
	}
	if (q->hook_te != NULL) {
		bad(q, "timer hooks of wrapper %d nested", w->owner);
	}
	q->hook_te = te;
}

static void w_after_timer(struct tevent_context *wrap_ev, void *ps,
			  struct tevent_context *main_ev,
			  struct tevent_timer *te, struct timeval requested,
			  struct timeval trigger, const char *handler_name,
			  const char *location)
{
	struct wstate *w = ps;
	struct tq *q = w->q;

	if (q->hook_te != te) {
		bad(q, "after_timer_handler of wrapper %d for another timer",
		    w->owner);
	}
	q->hook_te = NULL;
}

static void w_before_imm(struct tevent_context *wrap_ev, void *ps,
			 struct tevent_context *main_ev,
			 struct tevent_immediate *im, const char *handler_name,
			 const char *location)
{
}

static void w_after_imm(struct tevent_context *wrap_ev, void *ps,
			struct tevent_context *main_ev,
			struct tevent_immediate *im, const char *handler_name,
			const char *location)
{
}

static void w_before_sig(struct tevent_context *wrap_ev, void *ps,
			 struct tevent_context *main_ev,
			 struct tevent_signal *se, int signum, int count,
			 void *siginfo, const char *handler_name,
			 const char *location)
{
}

static void w_after_sig(struct tevent_context *wrap_ev, void *ps,
			struct tevent_context *main_ev,
			struct tevent_signal *se, int signum, int count,
			void *siginfo, const char *handler_name,
			const char *location)
{
}

static const struct tevent_wrapper_ops pass_ops = {
	.name = "tq_pass",
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

static void wrapper_create(struct tq *q, int k)
{
	struct wstate *w = NULL;

	q->wrap[k] = tevent_context_wrapper_create(q->ev, q->mem, &pass_ops,
						   &w, struct wstate);
	assert_non_null(q->wrap[k]);
	w->q = q;
	w->owner = k;
}

/*
 * Frees wrapper k with whatever timers it has queued.  Its timers must
 * never fire; those whose memory hangs from it go with it (main-context
 * timers among them), the others stay allocated, detached, until the
 * seed ends.
 */
static void wrapper_free(struct tq *q, int k)
{
	int i, ret;

	for (i = 0; i < q->nall; i++) {
		struct rec *r = q->all[i];

		if (r->slot >= 0 && (r->owner == k || r->parent_wrap == k)) {
			model_drop(q, r);
			if (r->parent_wrap != k) {
				r->orphan = true;
				q->n_orphans++;
			}
		}
	}
	ret = talloc_free(q->wrap[k]);
	if (ret != 0) {
		bad(q, "talloc_free(wrapper %d) gave %d", k, ret);
	}
	q->wrap[k] = NULL;
	q->n_wrap_deaths++;
	for (i = 0; i < q->nall; i++) {
		struct rec *r = q->all[i];

		if (r->parent_wrap == k && r->te != NULL && r->running == 0) {
			bad(q, "%s outlived the wrapper it hangs from",
			    show(r));
		}
		if (r->parent_wrap == k) {
			r->parent_wrap = -1;  /* the slot may be reused */
		}
	}
}

/* A wrapper that may die now: alive, and not behind a running handler. */
static int pick_wrapper_to_free(struct tq *q, const struct rec *running)
{
	int k = 1 + below(q, MAX_OWNERS - 1);

	if (q->wrap[k] == NULL) {
		return 0;
	}
	if (running != NULL &&
	    (running->owner == k || running->parent_wrap == k)) {
		return 0;
	}
	return k;
}

/* ------------------------------------------------------------------ */
/* handlers                                                            */

/*
 * Whether r's handler may move its own timer back into the queue with
 * tevent_update_timer().  Our library puts it back, and a loop nested in
 * the handler can fire it again; when a run of the handler returns, the
 * timer leaves the queue (timers are one-shot): the outermost run frees
 * it, an inner one leaves it spent, and updating a spent timer does
 * nothing.  Upstream (0.14.1) frees the timer after the handler but
 * leaves it on its timer list, so the next turn reads freed memory (and,
 * finding the timer detached, never takes it off the list: the loop
 * spins on it, and freeing the context crashes); when a nested loop fires
 * it, the inner run frees it under the outer one.  So: ours only.
 */
static bool self_rearm_ok(struct tq *q, const struct rec *r)
{
	return !q->upstream && r->te != NULL && !r->doomed;
}

static void handler_act(struct tq *q, struct rec *r)
{
	int n = below(q, 5);
	struct timeval tv;
	int i;

	for (i = 0; i < n && !q->failed; i++) {
		unsigned c = below(q, 100);

		if (c < 25) {
			if (!q->draining) {
				op_add(q);
				q->n_handler_adds++;
			}
		} else if (c < 37) {
			op_free(q);
		} else if (c < 50) {
			op_update(q);
		} else if (c < 65) {
			enum where w;

			if (!self_rearm_ok(q, r)) {
				continue;
			}
			/* mostly to the front: a nested turn fires it */
			w = below(q, 2) ? AT_EARLIEST : pick_where(q, true);
			if (r->spent) {
				/* an inner run has returned: inert */
				tv = tv_of(pick_key(q, w));
				tevent_update_timer(r->te, tv);
				q->n_spent_rearm++;
			} else {
				update_to(q, r, pick_key(q, w));
				q->n_rearm++;
			}
			if (q->nesting && q->depth < MAX_DEPTH &&
			    below(q, 2) == 0) {
				int before = r->fires;

				turn(q);
				if (r->fires != before) {
					q->n_rearm_fired_inner++;
				}
			}
		} else if (c < 70) {
			int ret;

			if (r->te == NULL || r->doomed) {
				continue;
			}
			/* deferred while the handler runs */
			model_drop(q, r);
			r->doomed = true;
			ret = talloc_free(r->te);
			if (ret != -1) {
				bad(q, "talloc_free() of %s in its own "
				    "handler gave %d", show(r), ret);
			}
			q->n_free_self++;
		} else if (c < 88) {
			if (q->nesting && q->depth < MAX_DEPTH) {
				turn(q);
			}
		} else if (c < 92) {
			int k;

			if (!q->wrappers) {
				continue;
			}
			k = pick_wrapper_to_free(q, r);
			if (k != 0) {
				wrapper_free(q, k);
			}
		}
	}
}

static void on_timer(struct tevent_context *ev, struct tevent_timer *te,
		     struct timeval now, void *private_data)
{
	struct rec *r = private_data;
	struct tq *q = r->q;

	if (q->failed) {
		return;
	}
	if (r != q->expect) {
		bad(q, "expected %s to fire, got %s", show(q->expect),
		    show(r));
		return;
	}
	q->expect = NULL;
	if (te != r->te) {
		bad(q, "%s fired with a timer pointer not its own", show(r));
		return;
	}
	if (ev != ctx_of(q, r->owner)) {
		bad(q, "%s fired with the wrong context", show(r));
	}
	if (r->owner != 0 && q->hook_te != te) {
		bad(q, "%s fired outside its wrapper's timer hooks", show(r));
	}
	model_drop(q, r);
	r->fires++;
	r->running++;
	q->depth++;
	if (q->actions) {
		handler_act(q, r);
	}
	q->depth--;
	r->running--;
	/*
	 * A handler that re-armed its timer leaves it queued; the library
	 * takes it out as the run ends (and frees it after the outermost
	 * one).  After an inner run it is spent.
	 */
	model_drop(q, r);
	if (r->running > 0) {
		r->spent = true;
	}
}

/* ------------------------------------------------------------------ */
/* the random driver                                                   */

static void new_target(struct tq *q)
{
	unsigned c = below(q, 100);

	if (q->big) {
		/* long phases, so that the count gets there */
		q->target = c < 10 ? 0 : 42000 + (int)below(q, 16000);
		q->phase_left = 40000 + below(q, 40000);
		q->timeouts = below(q, 5) == 0;
		return;
	}
	if (c < 15) {
		q->target = 0;
	} else if (c < 35) {
		q->target = 1 + below(q, 20);
	} else if (c < 65) {
		q->target = 20 + below(q, 80);
	} else {
		q->target = 100 + below(q, 300);
	}
	q->phase_left = 50 + below(q, 400);
	/*
	 * A third of the phases hold a steady count of timeouts: the run
	 * takes them all, the frees leave holes all over it, and it fills
	 * up to its end and compacts or grows.
	 */
	q->timeouts = below(q, 3) == 0;
}

static void top_op(struct tq *q)
{
	bool grow = q->nlive < q->target;
	unsigned w_add = grow ? 60 : 14;
	unsigned w_free = grow ? 8 : 24;
	unsigned w_update = 14;
	unsigned w_turn = grow ? 10 : 30;

	if (q->timeouts) {
		w_add = grow ? 60 : 30;
		w_free = grow ? 10 : 30;
		w_update = 8;
		w_turn = 4;
	}
	unsigned w_wrap = q->wrappers ? 1 : 0;
	unsigned c;

	if (--q->phase_left <= 0) {
		new_target(q);
	}
	c = below(q, w_add + w_free + w_update + w_turn + w_wrap);
	if (c < w_add) {
		op_add(q);
		return;
	}
	c -= w_add;
	if (c < w_free) {
		op_free(q);
		return;
	}
	c -= w_free;
	if (c < w_update) {
		op_update(q);
		return;
	}
	c -= w_update;
	if (c < w_turn) {
		turn(q);
		return;
	}
	/* a wrapper dies, or a dead one is replaced */
	{
		int k = 1 + below(q, MAX_OWNERS - 1);

		if (q->wrap[k] != NULL) {
			wrapper_free(q, k);
		} else {
			wrapper_create(q, k);
		}
	}
}

static void report(struct tq *q)
{
	if (q->failed || getenv("TT_TQ_VERBOSE") != NULL) {
		fprintf(stderr,
			"%s seed %llu: %s; %d timers, %ld turns (%ld nested), "
			"max %ld queued, %ld re-arms (%ld fired again "
			"inside, %ld of spent timers), %ld self-frees, "
			"%ld handler adds, %ld wrapper deaths, %ld orphans\n",
			q->name, (unsigned long long)q->seed,
			q->failed ? q->msg : "ok", q->nall, q->n_turns,
			q->n_nested, q->max_live, q->n_rearm,
			q->n_rearm_fired_inner, q->n_spent_rearm,
			q->n_free_self,
			q->n_handler_adds, q->n_wrap_deaths, q->n_orphans);
	}
}

/* Ends a seed: drains the queue, checks nothing is left, frees it all. */
static void finish_seed(struct tq *q)
{
	struct rec *sentinel;
	int i, k;

	q->draining = true;
	while (!q->failed && q->nlive > 0) {
		q->step++;
		turn(q);
	}
	/*
	 * The queue must be empty now.  A timer beyond every key shows it:
	 * anything the library still holds would fire first.
	 */
	if (!q->failed) {
		q->step++;
		q->actions = false;
		sentinel = op_add_key(q, KEY_SENTINEL, 0);
		turn(q);
		if (!q->failed && sentinel != NULL && sentinel->fires != 1) {
			bad(q, "the sentinel did not fire");
		}
	}
	for (i = 0; i < q->nall && !q->failed; i++) {
		struct rec *r = q->all[i];

		if (r->te != NULL && !r->orphan) {
			bad(q, "%s still allocated at the end (fired %d)",
			    show(r), r->fires);
		}
		if (r->orphan && r->fires != 0) {
			bad(q, "%s fired after its wrapper died", show(r));
		}
	}
	if (q->failed) {
		/*
		 * Freeing a context whose library state disagrees with the
		 * model may crash or spin: leave it all, the case fails.
		 */
		report(q);
		return;
	}
	/* orphans: detached plain memory, an ordinary free */
	for (i = 0; i < q->nall; i++) {
		struct rec *r = q->all[i];

		if (r->orphan && r->te != NULL) {
			int ret = talloc_free(r->te);

			if (ret != 0) {
				bad(q, "talloc_free() of orphan %s gave %d",
				    show(r), ret);
			}
		}
	}
	/* odd seeds let the main context go before its wrappers */
	if (q->wrappers && (q->seed & 1) != 0) {
		TALLOC_FREE(q->ev);
	}
	for (k = 1; k < MAX_OWNERS; k++) {
		TALLOC_FREE(q->wrap[k]);
	}
	TALLOC_FREE(q->ev);
	report(q);
	/* timers first: their markers still look at the records */
	TALLOC_FREE(q->mem);
	TALLOC_FREE(q->recs);
}

/*
 * A turn with nothing due would wait for 30 seconds (tevent's default
 * without timers) before the test could say that a timer went missing.
 * Libraries that have tevent_context_set_wait_timeout() (0.16 on; not
 * Debian's 0.14.1) are told not to wait at all: such a turn fails at once.
 */
static void no_waiting(struct tevent_context *ev)
{
	uint32_t (*set_wait)(struct tevent_context *, uint32_t) =
		(uint32_t (*)(struct tevent_context *, uint32_t))dlsym(
			RTLD_DEFAULT, "tevent_context_set_wait_timeout");

	if (set_wait != NULL) {
		set_wait(ev, 0);
	}
}

static bool run_seed(const char *name, const char *backend, uint64_t seed,
		     int ops, bool actions, bool nesting, bool wrappers,
		     bool big, char *msg, size_t msgsize)
{
	struct tq *q = calloc(1, sizeof(*q));
	bool ok;
	int k;

	assert_non_null(q);
	q->name = name;
	q->seed = seed;
	q->rng = seed * 0x9e3779b97f4a7c15ULL ^
		 ((uint64_t)actions << 1 | (uint64_t)wrappers << 2);
	q->ops = ops;
	q->upstream = tt_is_system_library();
	q->actions = actions;
	q->nesting = nesting;
	q->wrappers = wrappers;
	q->big = big;
	q->cursor = KEY_START;
	q->mem = talloc_new(NULL);
	q->recs = talloc_new(NULL);
	assert_non_null(q->mem);
	assert_non_null(q->recs);
	q->ev = tevent_context_init_byname(NULL, backend);
	assert_non_null(q->ev);
	no_waiting(q->ev);
	if (nesting) {
		tevent_loop_allow_nesting(q->ev);
	}
	if (wrappers) {
		for (k = 1; k < MAX_OWNERS; k++) {
			wrapper_create(q, k);
		}
	}
	new_target(q);
	for (q->step = 0; q->step < ops && !q->failed; q->step++) {
		top_op(q);
	}
	finish_seed(q);
	ok = !q->failed;
	if (!ok) {
		snprintf(msg, msgsize, "%s", q->msg);
		return false;  /* q stays: the leaked timers point to it */
	}
	free(q);
	return ok;
}

static void run_seeds(void **state, const char *name, bool actions,
		      bool nesting, bool wrappers, bool big)
{
	const char *backend = *state;
	/*
	 * A big seed: a hundred times the timers, fifty times the steps.
	 * Upstream adds a timer by walking its sorted list, where such a
	 * seed takes minutes; two a third as long still queue 20,000 timers
	 * and check the model there in seconds.
	 */
	bool upstream = tt_is_system_library();
	int big_seeds = upstream ? 2 : 6;
	int big_ops = upstream ? 50000 : 150000;
	int seeds = tt_env_int("TT_TQ_SEEDS", TT_ON_VALGRIND() ? 1
							       : (big ? big_seeds
								      : 40));
	int start = tt_env_int("TT_TQ_START", 1);
	int ops = tt_env_int("TT_TQ_OPS", big ? big_ops : 3000);
	char msg[768];
	int i;

	alarm(600);
	for (i = 0; i < seeds; i++) {
		if (!run_seed(name, backend, (uint64_t)(start + i), ops,
			      actions, nesting, wrappers, big, msg,
			      sizeof(msg))) {
			alarm(0);
			fail_msg("%s [%s]; repeat with TT_TQ_START=%d "
				 "TT_TQ_SEEDS=1 TT_FILTER='%s*'", msg,
				 backend, start + i, name);
		}
	}
	alarm(0);
}

static void model_churn(void **state)
{
	run_seeds(state, "model_churn", false, false, false, false);
}

static void handler_actions(void **state)
{
	run_seeds(state, "handler_actions", true, true, false, false);
}

static void wrapper_dies(void **state)
{
	run_seeds(state, "wrapper_dies", true, false, true, false);
}

static void big_churn(void **state)
{
	run_seeds(state, "big_churn", false, false, false, true);
}

static void big_actions(void **state)
{
	run_seeds(state, "big_actions", true, true, false, true);
}

/* ------------------------------------------------------------------ */
/* update_tie_order: fixed sequences                                   */

struct tie_log {
	char fired[128];
	int n;
};

struct tie_timer {
	struct tie_log *log;
	char name;
};

static void tie_handler(struct tevent_context *ev, struct tevent_timer *te,
			struct timeval now, void *private_data)
{
	struct tie_timer *t = private_data;

	if (t->log->n < (int)sizeof(t->log->fired) - 1) {
		t->log->fired[t->log->n++] = t->name;
	}
}

static struct tevent_timer *tie_add(struct tevent_context *ev,
				    struct tie_log *log, char name,
				    struct timeval when)
{
	struct tie_timer *t = talloc(ev, struct tie_timer);
	struct tevent_timer *te;

	assert_non_null(t);
	t->log = log;
	t->name = name;
	te = tevent_add_timer(ev, ev, when, tie_handler, t);
	assert_non_null(te);
	return te;
}

/* Turns the loop once per expected timer; they must fire in that order. */
static void tie_expect(struct tevent_context *ev, struct tie_log *log,
		       const char *scenario, const char *want)
{
	size_t i, n = strlen(want);

	log->n = 0;
	memset(log->fired, 0, sizeof(log->fired));
	for (i = 0; i < n; i++) {
		assert_int_equal(tevent_loop_once(ev), 0);
		if ((size_t)log->n != i + 1) {
			fail_msg("%s: turn %zu fired %d timers (so far \"%s\"),"
				 " expected \"%s\"", scenario, i + 1,
				 log->n - (int)i, log->fired, want);
		}
	}
	if (strcmp(log->fired, want) != 0) {
		fail_msg("%s: fired \"%s\", expected \"%s\"", scenario,
			 log->fired, want);
	}
}

static struct timeval sec(int s)
{
	return tevent_timeval_set((uint32_t)s, 0);
}

static void update_tie_order(void **state)
{
	struct tevent_context *ev = tt_backend_ev(state);
	struct tie_log log = { .n = 0 };
	struct tevent_timer *a, *b, *c, *d, *e, *x[40];
	char want[64];
	int i, k;

	no_waiting(ev);
	/* an update to the same deadline goes behind the others there */
	a = tie_add(ev, &log, 'A', sec(7));
	b = tie_add(ev, &log, 'B', sec(7));
	c = tie_add(ev, &log, 'C', sec(7));
	d = tie_add(ev, &log, 'D', sec(7));
	tevent_update_timer(b, sec(7));
	tie_expect(ev, &log, "same deadline, B updated", "ACDB");

	/* the front moved to the back's deadline: after the back */
	a = tie_add(ev, &log, 'A', sec(1));
	b = tie_add(ev, &log, 'B', sec(2));
	c = tie_add(ev, &log, 'C', sec(3));
	tevent_update_timer(a, sec(3));
	tie_expect(ev, &log, "front to back's deadline", "BCA");

	/* the back moved to the front's deadline: after the front */
	a = tie_add(ev, &log, 'A', sec(1));
	b = tie_add(ev, &log, 'B', sec(2));
	c = tie_add(ev, &log, 'C', sec(3));
	tevent_update_timer(c, sec(1));
	tie_expect(ev, &log, "back to front's deadline", "ACB");

	/* the back moved before everything, the front past everything */
	a = tie_add(ev, &log, 'A', sec(1));
	b = tie_add(ev, &log, 'B', sec(2));
	c = tie_add(ev, &log, 'C', sec(3));
	tevent_update_timer(c, tevent_timeval_set(0, 999999));
	tevent_update_timer(a, sec(4));
	tie_expect(ev, &log, "back to the front, front to the back", "CBA");

	/* the middle of equal deadlines, then to an earlier tie */
	a = tie_add(ev, &log, 'A', sec(1));
	b = tie_add(ev, &log, 'B', sec(2));
	c = tie_add(ev, &log, 'C', sec(2));
	d = tie_add(ev, &log, 'D', sec(2));
	tevent_update_timer(b, sec(2));
	tevent_update_timer(d, sec(1));
	tie_expect(ev, &log, "middle ties", "ADCB");

	/*
	 * Keys between the ends: A and B take the ends, C, D, E land in
	 * between (equal to each other); updating C to its own deadline
	 * puts it behind D and E, and moving E to B's deadline puts it
	 * after B.
	 */
	a = tie_add(ev, &log, 'A', sec(5));
	b = tie_add(ev, &log, 'B', sec(1));
	c = tie_add(ev, &log, 'C', sec(3));
	d = tie_add(ev, &log, 'D', sec(3));
	e = tie_add(ev, &log, 'E', sec(3));
	tevent_update_timer(c, sec(3));
	tevent_update_timer(e, sec(1));
	tie_expect(ev, &log, "between the ends", "BEDCA");

	/*
	 * Zero deadlines come first, in the order they were added; a timer
	 * moved to zero goes behind them, even behind one added at zero
	 * after the move (upstream's order).
	 */
	a = tie_add(ev, &log, 'A', sec(1));
	b = tie_add(ev, &log, 'B', tevent_timeval_zero());
	c = tie_add(ev, &log, 'C', tevent_timeval_zero());
	d = tie_add(ev, &log, 'D', sec(1));
	tevent_update_timer(a, tevent_timeval_zero());
	e = tie_add(ev, &log, 'E', tevent_timeval_zero());
	tie_expect(ev, &log, "zero deadlines", "BCEAD");

	/* the same with no timer added at zero before the move */
	a = tie_add(ev, &log, 'A', sec(5));
	tevent_update_timer(a, tevent_timeval_zero());
	b = tie_add(ev, &log, 'B', tevent_timeval_zero());
	tie_expect(ev, &log, "moved to zero, then one added", "BA");

	/* one timer updated again and again keeps going to the back */
	a = tie_add(ev, &log, 'A', sec(9));
	b = tie_add(ev, &log, 'B', sec(9));
	c = tie_add(ev, &log, 'C', sec(9));
	tevent_update_timer(a, sec(9));
	tevent_update_timer(b, sec(9));
	tevent_update_timer(a, sec(9));
	tie_expect(ev, &log, "repeated updates", "CBA");

	/*
	 * More equal deadlines than the first array holds, on both sides
	 * of a growth: every third one is updated to the same deadline,
	 * from the last to the first; they fire after the others, in the
	 * order of the updates.
	 */
	for (i = 0; i < 40; i++) {
		x[i] = tie_add(ev, &log, (char)('0' + i), sec(11));
	}
	for (i = 39; i >= 0; i--) {
		if (i % 3 == 0) {
			tevent_update_timer(x[i], sec(11));
		}
	}
	k = 0;
	for (i = 0; i < 40; i++) {
		if (i % 3 != 0) {
			want[k++] = (char)('0' + i);
		}
	}
	for (i = 39; i >= 0; i--) {
		if (i % 3 == 0) {
			want[k++] = (char)('0' + i);
		}
	}
	want[k] = '\0';
	tie_expect(ev, &log, "forty ties", want);

	(void)b;
	(void)d;
	(void)e;
	tt_finish(ev);
}

/* big_shapes */

struct shape_log {
	uint32_t *fired;   /* index of each timer, in firing order */
	uint32_t n;
};

static void shape_fired(struct tevent_context *ev, struct tevent_timer *te,
			struct timeval now, void *private_data)
{
	struct shape_log *log = talloc_get_type_abort(private_data,
						      struct shape_log);

	(void)ev;
	(void)now;
	log->fired[log->n++] = tevent_timer_get_tag(te);
}

/*
 * R timers at increasing keys (the run), then H at random keys between
 * the run's first and last (the heap), ties included; fire them all.
 */
static void run_shape(void **state, uint32_t r, uint32_t h, uint64_t seed)
{
	struct tevent_context *ev = tt_backend_ev(state);
	uint32_t n = r + h;
	struct tt_keyed *t = calloc(n, sizeof(*t));
	struct shape_log *log = talloc_zero(ev, struct shape_log);
	uint64_t rng = seed;
	uint32_t i;

	assert_non_null(t);
	assert_non_null(log);
	log->fired = talloc_array(log, uint32_t, n);
	assert_non_null(log->fired);
	no_waiting(ev);
	for (i = 0; i < n; i++) {
		struct tevent_timer *te;

		t[i].idx = i;
		t[i].key = i < r ? KEY_START + 2 * (int64_t)i
				 : KEY_START + (int64_t)(tt_splitmix64(&rng) %
							 (2 * (uint64_t)r));
		te = tevent_add_timer(ev, ev, tv_of(t[i].key), shape_fired,
				      log);
		assert_non_null(te);
		tevent_timer_set_tag(te, i);
	}
	qsort(t, n, sizeof(*t), tt_keyed_cmp);
	for (i = 0; i < n; i++) {
		assert_int_equal(tevent_loop_once(ev), 0);
		assert_int_equal(log->n, i + 1);
		if (log->fired[i] != t[i].idx) {
			fail_msg("R %u H %u: turn %u fired timer %u, expected "
				 "%u", r, h, i, log->fired[i], t[i].idx);
		}
	}
	free(t);
	tt_finish(ev);
}

static void big_shapes(void **state)
{
	/*
	 * The sizes are our library's thresholds.  Upstream has none and
	 * adds each timer by walking its list: an eighth of each shape
	 * checks the expected order there in a second instead of 26.
	 */
	uint32_t div = tt_is_system_library() ? 8 : 1;

	/* the heap's array (65,536) holds all: the run takes it over */
	run_shape(state, 8000 / div, 40000 / div, 1);
	/* it does not: the run gets a new one */
	run_shape(state, 33000 / div, 34000 / div, 2);
	/* the heap is one short of sorting: drained as a heap */
	run_shape(state, 2000 / div, 32767 / div, 3);
}

int main(void)
{
	static const struct tt_case cases[] = {
		TT_CASE_ON(model_churn, "epoll poll"),
		TT_CASE_ON(handler_actions, "epoll poll"),
		TT_CASE_ON(wrapper_dies, "epoll poll"),
		TT_CASE_ON(big_churn, "epoll poll"),
		TT_CASE_ON(big_actions, "epoll poll"),
		TT_BACKEND_CASE(big_shapes),
		TT_BACKEND_CASE(update_tie_order),
	};

	tt_check_library();
	return tt_run_cases("timer_queue", cases,
			    sizeof(cases) / sizeof(cases[0]));
}

/*
 * test_thread_churn.c - cross-thread messages while everything around them
 * comes and goes.
 *
 * The other thread suites each look at one situation at a time.  Here a
 * random driver on the loop thread mixes them, so that they meet:
 *
 *  - producer threads start, send a random number of messages through
 *    thread proxies (tevent_thread_proxy_schedule()) and threaded contexts
 *    (tevent_threaded_schedule_immediate()) of three loops and of a
 *    wrapper on each, and exit while their spent messages are still on
 *    the way back to them;
 *  - the driver turns the loops, frees and recreates proxies, threaded
 *    contexts, wrappers and whole loops with messages queued, sends from
 *    the loop thread too, and its handlers free, keep, steal or
 *    reschedule what they receive, or free their own proxy.
 *
 * The rules are the thread chapter's: a producer only sends through a
 * proxy or threaded context that exists (each loop's slot has a mutex
 * that the driver holds while it replaces them), and allocates only on
 * NULL.
 *
 * Checked, per message: its handler runs at most once, on the context it
 * was sent to (inside the wrapper's hooks for a wrapper, outside any for
 * the others), and only while the proxy, wrapper or loop it was sent
 * through still exists; a message whose proxy, wrapper or loop lived
 * until the end is delivered; every parameter block is freed exactly once.
 * ASan, TSan and valgrind (make test-asan, test-tsan, test-valgrind) look
 * for the rest: leaks, races, use after free.
 *
 * TT_CHURN_SEEDS=N (default 8, 2 under TSan or valgrind), TT_CHURN_START=S
 * and TT_CHURN_OPS=K (default 3000) choose the runs.
 */
#define TEVENT_DEPRECATED 1 /* wrapper contexts */

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
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

#include "tt_random.h"
#include "tt_threads.h"

#define NSLOT 3
#define MAX_PRODUCERS 6
#define MAX_MSGS 400000
#define IDLE_MAX 32

enum msg_kind { KIND_NONE, KIND_PROXY, KIND_THREADED, KIND_WRAPPED };

struct msg_rec {
	atomic_int sent;       /* handed to the library */
	atomic_int delivered;  /* handler runs */
	atomic_int freed;      /* parameter block destructor runs */
	int kind;
	int slot;
	unsigned gen;  /* the slot's proxy (or loop) generation at sending */
};

struct slot {
	pthread_mutex_t m;  /* producers hold it while they send */
	struct tevent_context *ev;
	struct tt_tick tick;  /* keeps every turn short */
	struct tevent_thread_proxy *tp;
	struct tevent_threaded_context *tctx;
	struct tevent_context *wev;  /* a wrapper of ev */
	struct tt_hook_depth *hooks;  /* its private state */
	struct tevent_threaded_context *wtctx;  /* a handle on the wrapper */
	TALLOC_CTX *ims_mem;  /* the threaded immediates live here */
	struct tevent_immediate *idle[IDLE_MAX];  /* for producers */
	int nidle;
	struct tevent_immediate *returned[IDLE_MAX];  /* handlers done */
	int nreturned;
	unsigned tp_gen;  /* new proxy (or loop) */
	unsigned ev_gen;  /* new loop */
	unsigned w_gen;   /* new wrapper (or loop) */
};

struct producer {
	pthread_t thread;
	bool running;
	atomic_int done;
	uint64_t seed;
	int msgs;
};

struct payload {
	unsigned id;
};

static struct msg_rec *msgs;
static atomic_uint next_msg;
static atomic_uint payloads_made;
static struct slot slots[NSLOT];
static struct producer producers[MAX_PRODUCERS];
static TALLOC_CTX *keep_mem;  /* what handlers kept; loop thread only */
static struct tt_findings found;
static unsigned long n_delivered, n_kept, n_rescheduled, n_proxy_frees,
	n_tctx_frees, n_ev_frees, n_spawned, n_own_sends, n_wrapper_frees,
	n_wrapped;

#define violation(...) tt_found(&found, __VA_ARGS__)

static uint64_t loop_rng;

static unsigned pick(unsigned n)
{
	return tt_below(&loop_rng, n);
}

static bool chance(unsigned pct)
{
	return pick(100) < pct;
}

/* ------------------------------------------------------------------ */
/* messages */

static int payload_destructor(struct payload *p)
{
	if (atomic_fetch_add(&msgs[p->id].freed, 1) != 0) {
		violation("message %u: parameter block freed twice", p->id);
	}
	return 0;
}

/* What must still exist for a message of this kind to arrive. */
static unsigned gen_of(const struct slot *s, int kind)
{
	return kind == KIND_PROXY ? s->tp_gen :
	       kind == KIND_WRAPPED ? s->w_gen : s->ev_gen;
}

/* A message arrives: on the right loop, once, from a live sender. */
static struct msg_rec *arrive(struct tevent_context *ev, unsigned id,
			      int kind)
{
	struct msg_rec *r = &msgs[id];
	struct slot *s = &slots[r->slot];
	if (r->kind != kind || !atomic_load(&r->sent)) {
		violation("message %u: kind %d, sent %d, arrived as %d", id,
			  r->kind, atomic_load(&r->sent), kind);
	}
	if (atomic_fetch_add(&r->delivered, 1) != 0) {
		violation("message %u: delivered twice", id);
	}
	if (ev != (kind == KIND_WRAPPED ? s->wev : s->ev)) {
		violation("message %u: delivered on another context", id);
	}
	if ((kind == KIND_WRAPPED) != (s->hooks->depth > 0)) {
		violation("message %u: wrapper hooks %d around kind %d", id,
			  s->hooks->depth, kind);
	}
	n_wrapped += kind == KIND_WRAPPED;
	if (r->gen != gen_of(s, kind)) {
		violation("message %u: delivered after its %s was freed", id,
			  kind == KIND_PROXY ? "proxy" :
			  kind == KIND_WRAPPED ? "wrapper" : "loop");
	}
	n_delivered++;
	return r;
}

static void replace_proxy(struct slot *s);

static void local_handler(struct tevent_context *ev,
			  struct tevent_immediate *im, void *private_data)
{
	(void)ev;
	(void)private_data;
	talloc_free(im);  /* and the parameter block below it */
}

static void proxy_handler(struct tevent_context *ev,
			  struct tevent_immediate *im, void *private_data)
{
	struct payload *p = private_data;
	struct msg_rec *r = arrive(ev, p->id, KIND_PROXY);
	struct slot *s = &slots[r->slot];

	switch (pick(10)) {
	case 0:
		talloc_free(p);
		break;
	case 1:
		talloc_steal(keep_mem, p);  /* the block outlives the message */
		n_kept++;
		break;
	case 2:
		talloc_steal(keep_mem, im);  /* the message, block and all */
		n_kept++;
		break;
	case 3:
		tevent_schedule_immediate(im, ev, local_handler, p);
		n_rescheduled++;
		break;
	case 4:
		if (chance(20)) {
			/* Its own proxy goes while the handler runs. */
			pthread_mutex_lock(&s->m);
			replace_proxy(s);
			pthread_mutex_unlock(&s->m);
		}
		break;
	default:
		break;  /* the library frees message and block */
	}
}

static void threaded_handler(struct tevent_context *ev,
			     struct tevent_immediate *im, void *private_data)
{
	unsigned id = (unsigned)((struct msg_rec *)private_data - msgs);
	struct msg_rec *r = arrive(ev, id, msgs[id].kind == KIND_WRAPPED ?
				   KIND_WRAPPED : KIND_THREADED);
	struct slot *s = &slots[r->slot];
	/* Freed here (the loop defers that until we return), or used again
	 * once this handler has returned: not before, the thread chapter's
	 * rule (refill() hands it out). */
	if (s->nreturned < IDLE_MAX && chance(70)) {
		s->returned[s->nreturned++] = im;
	} else {
		talloc_free(im);
	}
}

/* ------------------------------------------------------------------ */
/* sending, from producers and from the loop thread */

static unsigned new_msg(int slot, int kind)
{
	unsigned id = atomic_fetch_add(&next_msg, 1);
	if (id >= MAX_MSGS) {
		return UINT32_MAX;
	}
	msgs[id].slot = slot;
	msgs[id].kind = kind;
	return id;
}

/* Slot mutex held. */
static void send_proxy_locked(struct slot *s, unsigned id,
			      struct tevent_immediate **im, struct payload **p)
{
	msgs[id].gen = s->tp_gen;
	atomic_store(&msgs[id].sent, 1);
	tevent_thread_proxy_schedule(s->tp, im, proxy_handler, p);
	CHECK(*im == NULL && *p == NULL);
}

static void send_proxy(int slot)
{
	unsigned id = new_msg(slot, KIND_PROXY);
	if (id == UINT32_MAX) {
		return;
	}
	struct tevent_immediate *im = tevent_create_immediate(NULL);
	struct payload *p = talloc(NULL, struct payload);
	CHECK(im != NULL && p != NULL);
	p->id = id;
	talloc_set_destructor(p, payload_destructor);
	atomic_fetch_add(&payloads_made, 1);

	struct slot *s = &slots[slot];
	pthread_mutex_lock(&s->m);
	if (s->tp != NULL) {
		send_proxy_locked(s, id, &im, &p);
	}
	pthread_mutex_unlock(&s->m);
	/* No proxy right now: never sent. */
	talloc_free(im);
	talloc_free(p);
}

/* Through the loop's own handle or, with wrapped, its wrapper's. */
static void send_threaded(int slot, bool wrapped)
{
	struct slot *s = &slots[slot];
	pthread_mutex_lock(&s->m);
	struct tevent_threaded_context *tctx = wrapped ? s->wtctx : s->tctx;
	if (tctx != NULL && s->nidle > 0) {
		int kind = wrapped ? KIND_WRAPPED : KIND_THREADED;
		unsigned id = new_msg(slot, kind);
		if (id != UINT32_MAX) {
			struct tevent_immediate *im = s->idle[--s->nidle];
			msgs[id].gen = gen_of(s, kind);
			atomic_store(&msgs[id].sent, 1);
			tevent_threaded_schedule_immediate(tctx, im,
							   threaded_handler,
							   &msgs[id]);
		}
	}
	pthread_mutex_unlock(&s->m);
}

static void *producer_main(void *arg)
{
	struct producer *pr = arg;
	uint64_t rng = pr->seed;
	for (int i = 0; i < pr->msgs; i++) {
		int slot = (int)(tt_splitmix64(&rng) % NSLOT);
		unsigned k = (unsigned)(tt_splitmix64(&rng) % 10);
		if (k < 6) {
			send_proxy(slot);
		} else {
			send_threaded(slot, k >= 8);
		}
		tt_jitter(&rng, 16, 300);
	}
	atomic_store(&pr->done, 1);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* the loop side */

/* Slot mutex held (or no producer running). */
static void replace_proxy(struct slot *s)
{
	TALLOC_FREE(s->tp);
	s->tp_gen++;
	s->tp = tevent_thread_proxy_create(s->ev);
	CHECK(s->tp != NULL);
	n_proxy_frees++;
}

static void replace_tctx(struct slot *s)
{
	TALLOC_FREE(s->tctx);
	s->tctx = tevent_threaded_context_create(s->ims_mem, s->ev);
	CHECK(s->tctx != NULL);
	n_tctx_frees++;
}

/* Only threaded immediates reach the wrappers. */
static const struct tevent_wrapper_ops hook_ops = TT_DEPTH_WRAPPER_OPS("churn");

/* Slot mutex held (or no producer running). */
static void wrapper_open(struct slot *s)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	s->wev = tevent_context_wrapper_create(s->ev, NULL, &hook_ops,
					       &s->hooks, struct tt_hook_depth);
#pragma GCC diagnostic pop
	CHECK(s->wev != NULL);
	s->wtctx = tevent_threaded_context_create(s->ims_mem, s->wev);
	CHECK(s->wtctx != NULL);
}

/* What was sent through the wrapper's handle and not run is dropped;
 * the handle stays valid (schedules are ignored) until freed. */
static void wrapper_close(struct slot *s)
{
	TALLOC_FREE(s->wev);
	TALLOC_FREE(s->wtctx);
	s->w_gen++;
}

static void slot_open(struct slot *s)
{
	s->ev = tevent_context_init(NULL);
	CHECK(s->ev != NULL);
	CHECK(tt_tick_start(s->ev, &s->tick, 1000));
	s->ims_mem = talloc_new(NULL);
	CHECK(s->ims_mem != NULL);
	s->tp = tevent_thread_proxy_create(s->ev);
	s->tctx = tevent_threaded_context_create(s->ims_mem, s->ev);
	CHECK(s->tp != NULL && s->tctx != NULL);
	s->nidle = 0;
	wrapper_open(s);
}

/* The loop goes with messages queued: they are dropped, and the threaded
 * immediates on their way become idle, so they can be freed. */
static void slot_close(struct slot *s)
{
	wrapper_close(s);
	TALLOC_FREE(s->ev);  /* and its proxy */
	s->tp = NULL;
	TALLOC_FREE(s->ims_mem);  /* the threaded context, the immediates */
	s->tctx = NULL;
	s->nidle = 0;
	s->nreturned = 0;
	s->tp_gen++;
	s->ev_gen++;
}

static void refill(struct slot *s)
{
	pthread_mutex_lock(&s->m);
	while (s->nreturned > 0 && s->nidle < IDLE_MAX) {
		s->idle[s->nidle++] = s->returned[--s->nreturned];
	}
	while (s->nidle < IDLE_MAX / 2) {
		struct tevent_immediate *im = tevent_create_immediate(s->ims_mem);
		CHECK(im != NULL);
		s->idle[s->nidle++] = im;
	}
	pthread_mutex_unlock(&s->m);
}

static void spawn(void)
{
	for (int i = 0; i < MAX_PRODUCERS; i++) {
		struct producer *pr = &producers[i];
		if (pr->running) {
			continue;
		}
		pr->seed = tt_splitmix64(&loop_rng);
		pr->msgs = 1 + (int)pick(400);
		atomic_store(&pr->done, 0);
		CHECK(pthread_create(&pr->thread, NULL, producer_main, pr) == 0);
		pr->running = true;
		n_spawned++;
		return;
	}
}

static void reap_producers(bool all)
{
	for (int i = 0; i < MAX_PRODUCERS; i++) {
		struct producer *pr = &producers[i];
		if (pr->running && (all || atomic_load(&pr->done))) {
			CHECK(pthread_join(pr->thread, NULL) == 0);
			pr->running = false;
		}
	}
}

static void run_op(void)
{
	struct slot *s = &slots[pick(NSLOT)];
	unsigned r = pick(1000);
	if (r < 600) {
		CHECK(tevent_loop_once(s->ev) == 0);
	} else if (r < 680) {
		spawn();
	} else if (r < 740) {
		reap_producers(false);
	} else if (r < 800) {
		refill(s);
	} else if (r < 890) {
		/* From the loop thread itself. */
		n_own_sends++;
		if (chance(50)) {
			send_proxy((int)(s - slots));
		} else {
			send_threaded((int)(s - slots), chance(30));
		}
	} else if (r < 900) {
		pthread_mutex_lock(&s->m);
		replace_proxy(s);
		pthread_mutex_unlock(&s->m);
	} else if (r < 915) {
		pthread_mutex_lock(&s->m);
		replace_tctx(s);
		pthread_mutex_unlock(&s->m);
	} else if (r < 925) {
		pthread_mutex_lock(&s->m);
		slot_close(s);
		slot_open(s);
		n_ev_frees++;
		pthread_mutex_unlock(&s->m);
	} else if (r < 930) {
		pthread_mutex_lock(&s->m);
		wrapper_close(s);
		wrapper_open(s);
		n_wrapper_frees++;
		pthread_mutex_unlock(&s->m);
	} else if (r < 935) {
		TALLOC_FREE(keep_mem);
		keep_mem = talloc_new(NULL);
		CHECK(keep_mem != NULL);
	} else {
		CHECK(tevent_loop_once(s->ev) == 0);
	}
}

/* Messages whose proxy (or loop) lived until now must all arrive. */
static bool all_arrived(void)
{
	unsigned n = atomic_load(&next_msg);
	if (n > MAX_MSGS) {
		n = MAX_MSGS;
	}
	for (unsigned id = 0; id < n; id++) {
		struct msg_rec *r = &msgs[id];
		if (!atomic_load(&r->sent) || atomic_load(&r->delivered)) {
			continue;
		}
		if (r->gen == gen_of(&slots[r->slot], r->kind)) {
			return false;
		}
	}
	return true;
}

static void run_seed(uint64_t seed, int ops)
{
	loop_rng = seed * 0x2545f4914f6cdd1dULL + 7;
	atomic_store(&next_msg, 0);
	atomic_store(&payloads_made, 0);
	tt_findings_reset(&found);
	n_delivered = n_kept = n_rescheduled = n_proxy_frees = n_tctx_frees =
		n_ev_frees = n_spawned = n_own_sends = n_wrapper_frees =
		n_wrapped = 0;
	msgs = calloc(MAX_MSGS, sizeof(*msgs));
	assert_non_null(msgs);
	keep_mem = talloc_new(NULL);
	assert_non_null(keep_mem);
	for (int i = 0; i < NSLOT; i++) {
		memset(&slots[i], 0, sizeof(slots[i]));
		pthread_mutex_init(&slots[i].m, NULL);
		slot_open(&slots[i]);
		refill(&slots[i]);
	}

	for (int i = 0; i < ops && atomic_load(&found.count) == 0; i++) {
		run_op();
	}
	reap_producers(true);

	double deadline = tt_now_s() + 60;
	unsigned turn = 0;
	while (!all_arrived() && atomic_load(&found.count) == 0) {
		if (tt_now_s() > deadline) {
			violation("messages not delivered after 60 s");
			break;
		}
		CHECK(tevent_loop_once(slots[turn++ % NSLOT].ev) == 0);
	}

	TALLOC_FREE(keep_mem);
	for (int i = 0; i < NSLOT; i++) {
		slot_close(&slots[i]);
		pthread_mutex_destroy(&slots[i].m);
	}
	unsigned made = atomic_load(&payloads_made);
	unsigned n = atomic_load(&next_msg);
	n = n > MAX_MSGS ? MAX_MSGS : n;
	unsigned freed = 0;
	for (unsigned id = 0; id < n; id++) {
		freed += (unsigned)atomic_load(&msgs[id].freed);
	}
	if (freed != made) {
		violation("%u parameter blocks made, %u freed", made, freed);
	}
	if (atomic_load(&found.count) != 0 || getenv("TT_CHURN_VERBOSE")) {
		fprintf(stderr,
			"seed %llu: %d violation(s)%s%s; messages %u, "
			"delivered %lu, kept %lu, rescheduled %lu, proxy "
			"frees %lu, threaded context frees %lu, loop frees "
			"%lu, producers %lu, sends from the loop %lu, "
			"wrapped deliveries %lu, wrapper frees %lu\n",
			(unsigned long long)seed, atomic_load(&found.count),
			found.first[0] ? ", first: " : "", found.first,
			n, n_delivered, n_kept, n_rescheduled, n_proxy_frees,
			n_tctx_frees, n_ev_frees, n_spawned, n_own_sends,
			n_wrapped, n_wrapper_frees);
	}
	free(msgs);
	msgs = NULL;
}

static void test_churn(void **state)
{
	(void)state;
#ifdef TT_TSAN
	bool slow = true;
#else
	bool slow = TT_ON_VALGRIND();
#endif
	int seeds = tt_env_int("TT_CHURN_SEEDS", slow ? 2 : 8);
	int start = tt_env_int("TT_CHURN_START", 1);
	int ops = tt_env_int("TT_CHURN_OPS", 3000);
	int failed = 0;

	for (int i = 0; i < seeds; i++) {
		alarm(TT_WATCHDOG_SECS);
		run_seed((uint64_t)(start + i), ops);
		failed += atomic_load(&found.count) != 0;
	}
	alarm(0);
	assert_int_equal(failed, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_churn),
	};
	/* Before any other talloc call: producers allocate on NULL. */
	talloc_disable_null_tracking();
	tt_check_library();
	return cmocka_run_group_tests_name("thread_churn", tests, NULL, NULL);
}

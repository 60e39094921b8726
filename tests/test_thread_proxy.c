/*
 * Thread proxies: tevent_thread_proxy_create() / tevent_thread_proxy_schedule().
 *
 * A proxy lets any thread hand an immediate (plus an optional talloc'd
 * parameter block) to the loop of the thread that created the proxy.  What
 * is checked here:
 *
 *  - the proxy is a talloc child of its destination context named
 *    "struct tevent_thread_proxy", goes away with that context, and cannot
 *    be made on a wrapper context;
 *  - scheduling from another thread and from the owning thread: the
 *    caller's pointers are cleared, the handler runs on the destination
 *    loop (never synchronously), the parameter block reaches it, and is
 *    freed after it unless the handler took it;
 *  - NULL parameter blocks, per-producer ordering;
 *  - a stress run: 8 producers into one loop, every message exactly once,
 *    nothing left behind on either side;
 *  - ping-pong between two loops, and the thread chapter's request/reply
 *    pattern (the handler sends back the very immediate it runs with),
 *    8 threads, many rounds;
 *  - freeing the proxy or the whole destination context with messages
 *    still queued, and handlers freeing what they receive while producers
 *    keep sending;
 *  - fork: what a child can do with the loop and its proxies.
 *
 * Rules the producers follow (the thread chapter's): talloc_disable_null_tracking()
 * is called first thing in main(); a producer allocates only on its own
 * talloc tree or on NULL; a thread never touches another thread's tree.
 *
 * Helper threads never call cmocka's assert_* (they would longjmp across
 * threads): they use CHECK(), which aborts the program with a message.
 *
 * Message counts: TT_THREAD_MSGS (messages per producer in the stress
 * case; the other cases derive their sizes from it) overrides the default
 * of 1,000,000, or 20,000 under ThreadSanitizer or valgrind.
 *
 * TT_FILTER=<glob> runs
 * only the matching cases.
 *
 * Against upstream's library (make test-upstream) the consumer only
 * checks that every message arrives once (upstream may run a batch from
 * one producer in reverse), and the ping-pong and request/reply cases
 * skip themselves: upstream still touches an immediate after its handler
 * sent it to another thread.  Both are documented differences (README.md).
 */

#define TEVENT_DEPRECATED 1 /* wrapper contexts */

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <talloc.h>
#include <tevent.h>

#include "common/tt.h"
#include "common/tt_never.h"
#include "common/tt_threads.h"

/* handlers have fixed signatures and rarely use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"
/* the wrapper API is marked deprecated in the header */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

static pthread_t main_thread;

/* ------------------------------------------------------------------------
 * Loop helpers (and tt_drain(), LOOP_UNTIL() in common/tt_threads.h)
 * ------------------------------------------------------------------------ */

/* tt_drain() for helper threads (no cmocka there). */
static void drain_nocmocka(struct tevent_context *ev)
{
	bool fired = false;
	struct tevent_timer *te;

	te = tevent_add_timer(ev, ev, tevent_timeval_zero(), tt_flag_timer,
			      &fired);
	CHECK(te != NULL);
	while (!fired) {
		CHECK(tevent_loop_once(ev) == 0);
	}
}

/* ------------------------------------------------------------------------
 * Flow control for producers that send more than should be queued at once.
 *
 * A producer may run `window` messages ahead of the consumer.  The
 * consumer posts the semaphore every window/2 deliveries; each post lets
 * the producer send window/2 more.  The semaphore also orders the
 * consumer's view of the producer's data for ThreadSanitizer.
 * ------------------------------------------------------------------------ */

struct credit {
	sem_t sem;
	unsigned long half;      /* window / 2 */
	unsigned long sent;      /* producer side */
	unsigned long allowed;   /* producer side */
	unsigned long delivered; /* consumer side */
	bool spin;               /* never sleep while waiting for credit */
	int stop;                /* atomic: the consumer gave up */
};

static void credit_init(struct credit *c, unsigned long window)
{
	memset(c, 0, sizeof(*c));
	CHECK(sem_init(&c->sem, 0, 0) == 0);
	c->half = window / 2 ? window / 2 : 1;
	c->allowed = 2 * c->half;
}

static void credit_destroy(struct credit *c)
{
	sem_destroy(&c->sem);
}

/* False when the consumer gave up (credit_abandon()). */
static bool credit_take(struct credit *c)
{
	while (c->sent >= c->allowed) {
		if (__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
			return false;
		}
		if (c->spin) {
			if (sem_trywait(&c->sem) != 0) {
				CHECK(errno == EAGAIN || errno == EINTR);
				sched_yield();
				continue;
			}
		} else {
			tt_sem_wait_nointr(&c->sem);
		}
		c->allowed += c->half;
	}
	c->sent++;
	return true;
}

/* Consumer side, after a failure: lets a waiting producer give up. */
static void credit_abandon(struct credit *c)
{
	__atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
	CHECK(sem_post(&c->sem) == 0);
}

static void credit_return(struct credit *c)
{
	c->delivered++;
	if (c->delivered % c->half == 0) {
		CHECK(sem_post(&c->sem) == 0);
	}
}

/* ------------------------------------------------------------------------
 * Wrapper context with do-nothing hooks
 * ------------------------------------------------------------------------ */

struct wrap_state {
	int unused;
};


static const struct tevent_wrapper_ops quiet_wrapper_ops =
	TT_QUIET_WRAPPER_OPS("test_thread_proxy");

/* ------------------------------------------------------------------------
 * A parameter block whose end can be observed.  The destructor only bumps
 * an atomic counter, so it does not matter which thread frees the block.
 * (The thread chapter forbids destructors on blocks handed to a proxy in
 * real code; this one is thread-safe and exists only to count.)
 * ------------------------------------------------------------------------ */

static int destroyed_blocks;

struct counted {
	unsigned long seq;
};

static int counted_destructor(struct counted *c)
{
	__atomic_add_fetch(&destroyed_blocks, 1, __ATOMIC_RELAXED);
	return 0;
}

static struct counted *counted_new(TALLOC_CTX *mem_ctx, unsigned long seq)
{
	struct counted *c = talloc(mem_ctx, struct counted);
	CHECK(c != NULL);
	c->seq = seq;
	talloc_set_destructor(c, counted_destructor);
	return c;
}

static int destroyed_count(void)
{
	return __atomic_load_n(&destroyed_blocks, __ATOMIC_RELAXED);
}

/* ========================================================================
 * Creation
 * ======================================================================== */

static bool flag_destructor_hit;

static int flag_destructor(void *p)
{
	flag_destructor_hit = true;
	return 0;
}

static void test_proxy_create(void **state)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_thread_proxy *tp, *tp2;
	size_t baseline;
	void *sentinel;

	assert_non_null(ev);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	assert_ptr_equal(talloc_parent(tp), ev);
	assert_string_equal(talloc_get_name(tp), "struct tevent_thread_proxy");
	assert_non_null(talloc_get_type(tp, struct tevent_thread_proxy));

	/* Two proxies on one context are independent objects. */
	tp2 = tevent_thread_proxy_create(ev);
	assert_non_null(tp2);
	assert_ptr_not_equal(tp, tp2);
	talloc_free(tp2);

	/* Creating and freeing a proxy leaves nothing behind. */
	baseline = talloc_total_blocks(ev);
	tp2 = tevent_thread_proxy_create(ev);
	assert_non_null(tp2);
	assert_true(talloc_total_blocks(ev) > baseline);
	talloc_free(tp2);
	assert_int_equal(talloc_total_blocks(ev), baseline);

	/* Freeing the context takes the proxy with it. */
	sentinel = talloc_new(tp);
	assert_non_null(sentinel);
	talloc_set_destructor(sentinel, flag_destructor);
	flag_destructor_hit = false;
	talloc_free(ev);
	assert_true(flag_destructor_hit);
}

static void test_proxy_create_on_wrapper_refused(void **state)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_context *wrap_ev;
	struct wrap_state *ws = NULL;
	struct tt_debug_log log;
	size_t baseline;

	assert_non_null(ev);
	wrap_ev = tevent_context_wrapper_create(ev, ev, &quiet_wrapper_ops,
						&ws, struct wrap_state);
	assert_non_null(wrap_ev);
	baseline = talloc_total_blocks(wrap_ev);
	tt_keep_debug(ev, &log);

	errno = 0;
	assert_null(tevent_thread_proxy_create(wrap_ev));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(talloc_total_blocks(wrap_ev), baseline);
	/* said on the main context, at fatal level */
	assert_int_equal(log.n, 1);
	assert_int_equal(tt_debug_find(&log, TEVENT_DEBUG_FATAL,
				       "tevent_thread_proxy_create() not allowed "
				       "on a wrapper context\n"), 0);
	assert_int_equal(tevent_set_debug(ev, NULL, NULL), 0);

	/* The main context behind it still accepts one. */
	assert_non_null(tevent_thread_proxy_create(ev));
	talloc_free(wrap_ev);
	talloc_free(ev);
}

/* ========================================================================
 * Scheduling basics
 * ======================================================================== */

#define MSG_MAGIC 0x70726f78795f6d73ULL

struct msg {
	uint64_t magic;
	int value;
};

/* A parameter block holding `value`; CHECK()s, so usable on any thread. */
static struct msg *msg_new(TALLOC_CTX *mem_ctx, int value)
{
	struct msg *m = talloc(mem_ctx, struct msg);

	CHECK(m != NULL);
	m->magic = MSG_MAGIC;
	m->value = value;
	return m;
}

/* What the receiving side saw; handlers run on the main thread here. */
struct receiver {
	struct tevent_context *ev;
	int calls;
	int last_value;
	int nulls;
	bool off_main;     /* a handler ran on some other thread */
	bool wrong_ev;     /* a handler got another context */
	bool bad_block;    /* not a struct msg, or corrupted */
	void *keep;        /* when set, the handler steals the block here */
	struct msg *kept;
	bool *freed_flag;  /* when set, the handler attaches a destructor
			    * that raises this flag */
};

static struct receiver rx;

static void receiver_reset(struct tevent_context *ev)
{
	memset(&rx, 0, sizeof(rx));
	rx.ev = ev;
}

static bool *msg_freed_flag;

static int msg_flag_destructor(struct msg *m)
{
	*msg_freed_flag = true;
	return 0;
}

static void msg_handler(struct tevent_context *ev, struct tevent_immediate *im,
			void *private_data)
{
	struct msg *m;

	rx.calls++;
	if (!pthread_equal(pthread_self(), main_thread)) {
		rx.off_main = true;
	}
	if (ev != rx.ev) {
		rx.wrong_ev = true;
	}
	if (im == NULL) {
		rx.bad_block = true;
	}
	if (private_data == NULL) {
		rx.nulls++;
		return;
	}
	m = talloc_get_type(private_data, struct msg);
	if (m == NULL || m->magic != MSG_MAGIC) {
		rx.bad_block = true;
		return;
	}
	rx.last_value = m->value;
	if (rx.freed_flag != NULL) {
		/* Attached on the receiving thread, after the hand-over. */
		msg_freed_flag = rx.freed_flag;
		talloc_set_destructor(m, msg_flag_destructor);
	}
	if (rx.keep != NULL) {
		rx.kept = talloc_steal(rx.keep, m);
	}
}

/* One message from a thread of its own. */
struct sender {
	struct tevent_thread_proxy *tp;
	tevent_immediate_handler_t handler;
	int value;
	bool own_ctx;     /* allocate on a context of the thread's own */
	bool pass_null;   /* pass NULL as pp_private_data */
	bool null_block;  /* pass a pointer to a NULL block pointer */
	/* results */
	bool im_cleared;
	bool block_cleared;
	bool own_ctx_empty;
};

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	TALLOC_CTX *mine = s->own_ctx ? talloc_new(NULL) : NULL;
	struct tevent_immediate *im;
	struct msg *m = NULL;

	CHECK(!s->own_ctx || mine != NULL);
	im = tevent_create_immediate(mine);
	CHECK(im != NULL);
	if (!s->pass_null && !s->null_block) {
		m = msg_new(mine, s->value);
	}
	tevent_thread_proxy_schedule(s->tp, &im, s->handler,
				     s->pass_null ? NULL : &m);
	s->im_cleared = (im == NULL);
	s->block_cleared = (m == NULL);
	s->own_ctx_empty = true;
	if (mine != NULL) {
		/* Both objects left this thread's tree. */
		s->own_ctx_empty = (talloc_total_blocks(mine) == 1);
		talloc_free(mine);
	}
	return NULL;
}

static void run_sender(struct sender *s)
{
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, sender_main, s), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
}

static bool warmed_up;

static void warm_up_handler(struct tevent_context *ev,
			    struct tevent_immediate *im, void *private_data)
{
	warmed_up = true;
}

/*
 * Lets a backend make whatever it allocates lazily the first time a
 * message arrives, so that later block counts compare like with like.
 * Waits for the message itself: upstream's proxy wakes the loop through
 * a pipe, which a drain (a timer due now) may never get to poll.
 */
static void warm_up(struct tevent_context *ev, struct tevent_thread_proxy *tp)
{
	struct tevent_immediate *im = tevent_create_immediate(NULL);

	assert_non_null(im);
	warmed_up = false;
	tevent_thread_proxy_schedule(tp, &im, warm_up_handler, NULL);
	LOOP_UNTIL(ev, warmed_up);
	tt_drain(ev);
	tt_drain(ev);
}

static void schedule_from_thread_on(const char *backend)
{
	struct tevent_context *ev = tevent_context_init_byname(NULL, backend);
	struct tevent_thread_proxy *tp;
	struct sender s;
	size_t baseline;
	bool freed = false;
	void *keep;

	assert_non_null(ev);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	warm_up(ev, tp);
	baseline = talloc_total_blocks(ev);
	receiver_reset(ev);

	/* Sent from a context owned by the sending thread. */
	s = (struct sender) { .tp = tp, .handler = msg_handler, .value = 42,
			      .own_ctx = true };
	run_sender(&s);
	assert_true(s.im_cleared);
	assert_true(s.block_cleared);
	assert_true(s.own_ctx_empty);
	/* Fire and forget: nothing runs until the destination loop does. */
	assert_int_equal(rx.calls, 0);

	rx.freed_flag = &freed;
	LOOP_UNTIL(ev, rx.calls == 1);
	assert_false(rx.off_main);
	assert_false(rx.wrong_ev);
	assert_false(rx.bad_block);
	assert_int_equal(rx.last_value, 42);
	tt_drain(ev);
	/* Not taken by the handler: freed once it returned. */
	assert_true(freed);
	assert_int_equal(talloc_total_blocks(ev), baseline);

	/* Sent from the NULL context; this time the handler keeps it. */
	keep = talloc_new(NULL);
	assert_non_null(keep);
	rx.keep = keep;
	freed = false;
	s = (struct sender) { .tp = tp, .handler = msg_handler, .value = 7 };
	run_sender(&s);
	assert_true(s.im_cleared);
	assert_true(s.block_cleared);
	LOOP_UNTIL(ev, rx.calls == 2);
	tt_drain(ev);
	assert_false(freed);
	assert_non_null(rx.kept);
	assert_ptr_equal(talloc_parent(rx.kept), keep);
	assert_int_equal(rx.kept->value, 7);
	assert_int_equal(talloc_total_blocks(ev), baseline);
	talloc_free(keep);
	assert_true(freed);

	talloc_free(ev);
}

static void test_schedule_from_other_thread(void **state)
{
	const char **b;

	for (b = tt_backends(); *b != NULL; b++) {
		print_message("backend %s\n", *b);
		schedule_from_thread_on(*b);
	}
}

/*
 * The loop's own thread sends one message to its proxy and runs the loop
 * until it arrived; nothing may be left over.  With `scheduled`, the
 * immediate handed over is still scheduled on that loop (with a handler
 * that must never run): the message takes over and the local scheduling
 * is dropped.  Upstream keeps both there, running the immediate twice; the
 * previous library put it on two lists at once and crashed.
 */
static void send_from_owning_thread(bool scheduled, int value)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_thread_proxy *tp;
	struct tevent_immediate *im;
	struct msg *m;
	size_t baseline;
	bool freed = false;

	assert_non_null(ev);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	tt_drain(ev); /* backends may allocate on their first turn */
	baseline = talloc_total_blocks(ev);
	receiver_reset(ev);
	rx.freed_flag = &freed;

	im = tevent_create_immediate(ev);
	assert_non_null(im);
	if (scheduled) {
		tevent_schedule_immediate(im, ev, tt_never_imm, NULL);
	}
	m = msg_new(ev, value);
	tevent_thread_proxy_schedule(tp, &im, msg_handler, &m);
	assert_null(im);
	assert_null(m);
	/* Never run synchronously, even on the destination's own thread. */
	assert_int_equal(rx.calls, 0);

	LOOP_UNTIL(ev, rx.calls == 1);
	assert_false(rx.off_main);
	assert_false(rx.wrong_ev);
	assert_int_equal(rx.last_value, value);
	tt_drain(ev);
	assert_int_equal(rx.calls, 1);
	assert_true(freed);
	assert_int_equal(talloc_total_blocks(ev), baseline);
	talloc_free(ev);
}

static void test_schedule_from_owning_thread(void **state)
{
	send_from_owning_thread(false, 5);
}

static void test_schedule_scheduled_immediate(void **state)
{
	TT_SKIP_ON_UPSTREAM("the immediate runs twice: its local scheduling "
			    "stays, then the proxy schedules it again");
	send_from_owning_thread(true, 7);
}

/*
 * A handler that sends on: every other time the immediate it runs with,
 * otherwise a fresh one, always the block it received.
 */
struct relay {
	struct tevent_thread_proxy *tp;
	int limit;
	int calls;
	bool bad;
};

static struct relay relay;

static void relay_handler(struct tevent_context *ev,
			  struct tevent_immediate *im, void *private_data)
{
	struct msg *m = talloc_get_type(private_data, struct msg);
	struct tevent_immediate *next;

	relay.calls++;
	if (m == NULL || m->value != relay.calls) {
		relay.bad = true;
		return;
	}
	if (relay.calls >= relay.limit) {
		return;
	}
	m->value++;
	next = (relay.calls % 2) ? im : tevent_create_immediate(ev);
	if (next == NULL) {
		relay.bad = true;
		return;
	}
	tevent_thread_proxy_schedule(relay.tp, &next, relay_handler, &m);
	if (next != NULL || m != NULL) {
		relay.bad = true;
	}
}

static void test_schedule_from_handler(void **state)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_immediate *im;
	struct msg *m;
	size_t baseline;

	assert_non_null(ev);
	memset(&relay, 0, sizeof(relay));
	relay.tp = tevent_thread_proxy_create(ev);
	assert_non_null(relay.tp);
	relay.limit = 1000;
	tt_drain(ev); /* backends may allocate on their first turn */
	baseline = talloc_total_blocks(ev);

	im = tevent_create_immediate(NULL);
	m = msg_new(NULL, 1);
	assert_non_null(im);
	tevent_thread_proxy_schedule(relay.tp, &im, relay_handler, &m);
	LOOP_UNTIL(ev, relay.calls == relay.limit || relay.bad);
	tt_drain(ev);
	assert_false(relay.bad);
	assert_int_equal(relay.calls, relay.limit);
	assert_int_equal(talloc_total_blocks(ev), baseline);
	talloc_free(ev);
}

static void test_null_private_data(void **state)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_thread_proxy *tp;
	struct sender s;
	size_t baseline;

	assert_non_null(ev);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	tt_drain(ev); /* backends may allocate on their first turn */
	baseline = talloc_total_blocks(ev);
	receiver_reset(ev);

	/* No parameter pointer at all. */
	s = (struct sender) { .tp = tp, .handler = msg_handler,
			      .pass_null = true, .own_ctx = true };
	run_sender(&s);
	assert_true(s.im_cleared);
	assert_true(s.own_ctx_empty);

	/* A pointer to a NULL block. */
	s = (struct sender) { .tp = tp, .handler = msg_handler,
			      .null_block = true };
	run_sender(&s);
	assert_true(s.im_cleared);
	assert_true(s.block_cleared);

	LOOP_UNTIL(ev, rx.calls == 2);
	tt_drain(ev);
	assert_int_equal(rx.nulls, 2);
	assert_false(rx.off_main);
	assert_false(rx.bad_block);
	assert_int_equal(talloc_total_blocks(ev), baseline);
	talloc_free(ev);
}

/* ========================================================================
 * Producers that send many numbered messages
 * ======================================================================== */

#define PAYLOAD_WINDOW 4096

struct payload {
	uint32_t producer;
	uint64_t seq;
};

struct producer {
	int id;
	struct tevent_thread_proxy *tp;
	tevent_immediate_handler_t handler;
	unsigned long count;
	bool own_ctx;       /* allocate on a context of its own, else NULL */
	bool counted;       /* blocks get the counting destructor */
	struct credit credit;
	pthread_t thread;
	/* consumer side: the next sequence number due, or (any_order) how
	 * many arrived */
	unsigned long next_expected;
	/* results */
	bool clean;         /* nothing left on its own tree, pointers cleared */
};

enum consumer_mode {
	CONSUME_PLAIN,   /* leave everything to the library */
	CONSUME_VARIED,  /* free, steal, batch-free what arrives */
};

struct consumer {
	struct producer *producers;
	int nproducers;
	enum consumer_mode mode;
	unsigned long delivered;
	uint64_t sum;
	bool bad;
	TALLOC_CTX *batch;
	unsigned long batch_fill;
};

static struct consumer con;

/*
 * Upstream's proxy may run a batch from one producer in reverse (README,
 * "Intended differences"): against it the consumer only counts what
 * arrives, and the payload sum still catches a lost or doubled message.
 */
static bool any_order;

static uint64_t payload_mix(uint32_t producer, uint64_t seq)
{
	return ((uint64_t)producer + 1) * 0x9e3779b97f4a7c15ULL ^
	       (seq * 0xc2b2ae3d27d4eb4fULL + 1);
}

static int payload_destructor(struct payload *pl)
{
	__atomic_add_fetch(&destroyed_blocks, 1, __ATOMIC_RELAXED);
	return 0;
}

static void payload_handler(struct tevent_context *ev,
			    struct tevent_immediate *im, void *private_data)
{
	struct payload *pl = talloc_get_type(private_data, struct payload);
	struct producer *pr;

	if (pl == NULL || pl->producer >= (uint32_t)con.nproducers) {
		con.bad = true;
		return;
	}
	pr = &con.producers[pl->producer];
	if (any_order) {
		pr->next_expected++;
	} else {
		if (pl->seq != pr->next_expected) {
			/* lost, duplicated or out of order */
			con.bad = true;
		}
		pr->next_expected = pl->seq + 1;
	}
	con.sum += payload_mix(pl->producer, pl->seq);
	con.delivered++;
	credit_return(&pr->credit);

	if (con.mode != CONSUME_VARIED) {
		return;
	}
	switch (pl->seq % 4) {
	case 0:
		talloc_free(pl);
		break;
	case 1:
		/* the immediate this handler runs with */
		talloc_free(im);
		break;
	case 2:
		if (con.batch == NULL) {
			con.batch = talloc_new(NULL);
			CHECK(con.batch != NULL);
		}
		talloc_steal(con.batch, pl);
		if (++con.batch_fill == 1000) {
			TALLOC_FREE(con.batch);
			con.batch_fill = 0;
		}
		break;
	default:
		break;
	}
}

static void *producer_main(void *arg)
{
	struct producer *p = arg;
	TALLOC_CTX *mine = p->own_ctx ? talloc_new(NULL) : NULL;
	unsigned long i;
	bool cleared = true;

	CHECK(!p->own_ctx || mine != NULL);
	for (i = 0; i < p->count; i++) {
		struct tevent_immediate *im;
		struct payload *pl;

		if (!credit_take(&p->credit)) {
			break;
		}
		im = tevent_create_immediate(mine);
		pl = talloc(mine, struct payload);
		CHECK(im != NULL && pl != NULL);
		pl->producer = p->id;
		pl->seq = i;
		if (p->counted) {
			talloc_set_destructor(pl, payload_destructor);
		}
		tevent_thread_proxy_schedule(p->tp, &im, p->handler, &pl);
		if (im != NULL || pl != NULL) {
			cleared = false;
		}
	}
	p->clean = cleared;
	if (mine != NULL) {
		p->clean = cleared && talloc_total_blocks(mine) == 1;
		talloc_free(mine);
	}
	return NULL;
}

static void producers_start_window(struct producer *ps, int n,
				   struct tevent_thread_proxy *tp,
				   unsigned long count, bool counted,
				   enum consumer_mode mode,
				   unsigned long window, bool spin)
{
	int i;

	memset(&con, 0, sizeof(con));
	con.producers = ps;
	con.nproducers = n;
	con.mode = mode;
	for (i = 0; i < n; i++) {
		memset(&ps[i], 0, sizeof(ps[i]));
		ps[i].id = i;
		ps[i].tp = tp;
		ps[i].handler = payload_handler;
		ps[i].count = count;
		ps[i].own_ctx = (i % 2 == 0);
		ps[i].counted = counted;
		credit_init(&ps[i].credit, window);
		ps[i].credit.spin = spin;
	}
	for (i = 0; i < n; i++) {
		assert_int_equal(pthread_create(&ps[i].thread, NULL,
						producer_main, &ps[i]), 0);
	}
}

static void producers_start(struct producer *ps, int n,
			    struct tevent_thread_proxy *tp,
			    unsigned long count, bool counted,
			    enum consumer_mode mode)
{
	producers_start_window(ps, n, tp, count, counted, mode,
			       PAYLOAD_WINDOW, false);
}

/*
 * Runs ev until `total` messages arrived.  On a failure (a bad message, or
 * the watchdog) the producers are told to give up, so that they can be
 * joined before the test fails.
 */
static bool loop_until_delivered(struct tevent_context *ev,
				 struct producer *ps, int n,
				 unsigned long total)
{
	struct tt_watchdog wd;
	int i;

	if (!tt_watchdog_arm(&wd, ev, TT_WATCHDOG_SECS)) {
		return false;
	}
	while (con.delivered < total && !con.bad && !wd.fired) {
		if (tevent_loop_once(ev) != 0) {
			break;
		}
	}
	tt_watchdog_disarm(&wd);
	if (con.delivered == total && !con.bad) {
		return true;
	}
	for (i = 0; i < n; i++) {
		credit_abandon(&ps[i].credit);
	}
	return false;
}

static void producers_join(struct producer *ps, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		assert_int_equal(pthread_join(ps[i].thread, NULL), 0);
	}
}

/* Every message exactly once, in order per producer, payload intact. */
static void producers_verify(struct producer *ps, int n)
{
	uint64_t expect = 0;
	unsigned long total = 0;
	unsigned long s;
	int i;

	assert_false(con.bad);
	for (i = 0; i < n; i++) {
		assert_true(ps[i].clean);
		assert_int_equal(ps[i].next_expected, ps[i].count);
		for (s = 0; s < ps[i].count; s++) {
			expect += payload_mix(i, s);
		}
		total += ps[i].count;
		credit_destroy(&ps[i].credit);
	}
	assert_int_equal(con.delivered, total);
	assert_true(con.sum == expect);
}

static void test_order_one_producer(void **state)
{
	bool ok;
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_thread_proxy *tp;
	struct producer p[1];
	unsigned long n = tt_clamp_ul(tt_thread_msgs() / 10, 1000, 100000);
	size_t baseline;
	unsigned long i;

	assert_non_null(ev);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	tt_drain(ev); /* backends may allocate on their first turn */
	baseline = talloc_total_blocks(ev);

	/* From another thread. */
	producers_start(p, 1, tp, n, false, CONSUME_PLAIN);
	ok = loop_until_delivered(ev, p, 1, n);
	producers_join(p, 1);
	assert_true(ok);
	tt_drain(ev);
	producers_verify(p, 1);
	assert_int_equal(talloc_total_blocks(ev), baseline);

	/* From the owning thread, all queued before the loop runs. */
	memset(&con, 0, sizeof(con));
	con.producers = p;
	con.nproducers = 1;
	p[0].next_expected = 0;
	credit_init(&p[0].credit, 4 * 1000);
	for (i = 0; i < 1000; i++) {
		struct tevent_immediate *im = tevent_create_immediate(ev);
		struct payload *pl = talloc(ev, struct payload);

		assert_non_null(im);
		assert_non_null(pl);
		pl->producer = 0;
		pl->seq = i;
		tevent_thread_proxy_schedule(tp, &im, payload_handler, &pl);
		assert_null(im);
		assert_null(pl);
	}
	LOOP_UNTIL(ev, con.delivered == 1000 || con.bad);
	tt_drain(ev);
	assert_false(con.bad);
	assert_int_equal(p[0].next_expected, 1000);
	credit_destroy(&p[0].credit);
	assert_int_equal(talloc_total_blocks(ev), baseline);
	talloc_free(ev);
}

#define STRESS_PRODUCERS 8

static void test_stress_8_producers(void **state)
{
	bool ok;
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_thread_proxy *tp;
	struct producer p[STRESS_PRODUCERS];
	unsigned long n = tt_thread_msgs();
	size_t baseline;

	assert_non_null(ev);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	tt_drain(ev); /* backends may allocate on their first turn */
	baseline = talloc_total_blocks(ev);
	print_message("%d producers x %lu messages\n", STRESS_PRODUCERS, n);

	producers_start(p, STRESS_PRODUCERS, tp, n, false, CONSUME_PLAIN);
	ok = loop_until_delivered(ev, p, STRESS_PRODUCERS,
				  n * STRESS_PRODUCERS);
	producers_join(p, STRESS_PRODUCERS);
	assert_true(ok);
	tt_drain(ev);
	producers_verify(p, STRESS_PRODUCERS);
	/* Every immediate and block that arrived is gone again. */
	assert_int_equal(talloc_total_blocks(ev), baseline);
	talloc_free(ev);
}

/*
 * Handlers free what they receive in several ways (the block, the
 * immediate they run with, blocks collected and freed in batches) while
 * four producers keep sending.
 */
static void test_handlers_free_while_producers_send(void **state)
{
	bool ok;
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_thread_proxy *tp;
	struct producer p[4];
	unsigned long n = tt_clamp_ul(tt_thread_msgs() / 8, 1000, 125000);
	size_t baseline;

	assert_non_null(ev);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	tt_drain(ev); /* backends may allocate on their first turn */
	baseline = talloc_total_blocks(ev);
	__atomic_store_n(&destroyed_blocks, 0, __ATOMIC_RELAXED);

	producers_start(p, 4, tp, n, true, CONSUME_VARIED);
	ok = loop_until_delivered(ev, p, 4, 4 * n);
	producers_join(p, 4);
	assert_true(ok);
	tt_drain(ev);
	TALLOC_FREE(con.batch);
	producers_verify(p, 4);
	assert_int_equal(destroyed_count(), (int)(4 * n));
	assert_int_equal(talloc_total_blocks(ev), baseline);
	talloc_free(ev);
}

/* ========================================================================
 * Ping-pong between two loops
 * ======================================================================== */

struct pp_side {
	const char *name;
	struct tevent_context *ev;
	struct tevent_thread_proxy *tp;
	struct pp_side *peer;
	bool reuse_im;     /* send back the immediate the handler runs with */
	bool done;
	unsigned long received;
	sem_t ready;       /* B -> A: ev and tp exist */
	pthread_t thread;
};

struct token {
	unsigned long hops;
	unsigned long limit;
	struct pp_side *sides[2];
};

static void pp_handler(struct tevent_context *ev, struct tevent_immediate *im,
		       void *private_data)
{
	struct token *t = talloc_get_type(private_data, struct token);
	struct pp_side *me;
	struct tevent_immediate *next;
	void *pt;

	CHECK(t != NULL);
	me = (t->sides[0]->ev == ev) ? t->sides[0] : t->sides[1];
	CHECK(me->ev == ev);
	me->received++;
	if (t->hops >= t->limit) {
		/* the final hop: the block goes with the immediate */
		me->done = true;
		return;
	}
	t->hops++;
	if (t->hops >= t->limit) {
		me->done = true;
	}
	next = me->reuse_im ? im : tevent_create_immediate(ev);
	CHECK(next != NULL);
	pt = t;
	tevent_thread_proxy_schedule(me->peer->tp, &next, pp_handler, &pt);
	CHECK(next == NULL && pt == NULL);
}

static void *pp_side_b(void *arg)
{
	struct pp_side *b = arg;

	b->ev = tevent_context_init(NULL);
	CHECK(b->ev != NULL);
	b->tp = tevent_thread_proxy_create(b->ev);
	CHECK(b->tp != NULL);
	CHECK(sem_post(&b->ready) == 0);
	while (!b->done) {
		CHECK(tevent_loop_once(b->ev) == 0);
	}
	drain_nocmocka(b->ev);
	talloc_free(b->ev);
	return NULL;
}

static void test_ping_pong(void **state)
{
	TT_SKIP_ON_UPSTREAM("the loop touches the immediate after its handler "
			    "sent it to the other thread (talloc aborts)");
	struct pp_side a = { .name = "A" }, b = { .name = "B" };
	unsigned long rounds = tt_clamp_ul(tt_thread_msgs() / 10, 1000, 100000);
	struct tevent_immediate *im;
	struct token *t;
	size_t baseline;

	a.ev = tevent_context_init(NULL);
	assert_non_null(a.ev);
	a.tp = tevent_thread_proxy_create(a.ev);
	assert_non_null(a.tp);
	tt_drain(a.ev); /* backends may allocate on their first turn */
	baseline = talloc_total_blocks(a.ev);
	a.peer = &b;
	b.peer = &a;
	b.reuse_im = true;
	assert_int_equal(sem_init(&b.ready, 0, 0), 0);
	assert_int_equal(pthread_create(&b.thread, NULL, pp_side_b, &b), 0);
	while (sem_wait(&b.ready) != 0) {
		assert_int_equal(errno, EINTR);
	}

	/* 2 * rounds hops: A -> B -> A ... */
	im = tevent_create_immediate(a.ev);
	t = talloc(a.ev, struct token);
	assert_non_null(im);
	assert_non_null(t);
	*t = (struct token) { .hops = 0, .limit = 2 * rounds,
			      .sides = { &a, &b } };
	tevent_thread_proxy_schedule(b.tp, &im, pp_handler, &t);
	assert_null(im);
	assert_null(t);

	LOOP_UNTIL(a.ev, a.done);
	assert_int_equal(pthread_join(b.thread, NULL), 0);
	tt_drain(a.ev);
	/* Each side saw every message meant for it. */
	assert_int_equal(a.received + b.received, 2 * rounds + 1);
	assert_true(a.received >= rounds);
	assert_true(b.received >= rounds);
	assert_int_equal(talloc_total_blocks(a.ev), baseline);
	sem_destroy(&b.ready);
	talloc_free(a.ev);
}

/* ========================================================================
 * The thread chapter's request/reply pattern, literally: a child sends a
 * request carrying the proxy to reply to; the master's handler takes the
 * parameter block and sends the very immediate it runs with back to the
 * child.  The one change to the chapter's code: the child creates its
 * proxy on its own context (the chapter uses master_ev there, a bug).
 * ======================================================================== */

#define REPLY_THREADS 8

struct reply_state {
	struct tevent_thread_proxy *reply_tp;
	pthread_t thread_id;
	bool *p_finished;
	int index;
};

static struct {
	int requests;            /* master side */
	int per_thread[REPLY_THREADS];
	bool bad;
} master;

/* Runs on the child's loop. */
static void thread_callback(struct tevent_context *ev,
			    struct tevent_immediate *im, void *private_ptr)
{
	struct reply_state *rsp =
		talloc_get_type_abort(private_ptr, struct reply_state);

	talloc_steal(ev, rsp);
	CHECK(pthread_equal(rsp->thread_id, pthread_self()));
	*rsp->p_finished = true;
}

/* Runs on the master's loop. */
static void master_callback(struct tevent_context *ev,
			    struct tevent_immediate *im, void *private_ptr)
{
	struct reply_state *rsp =
		talloc_get_type_abort(private_ptr, struct reply_state);

	talloc_steal(ev, rsp);
	if (rsp->index < 0 || rsp->index >= REPLY_THREADS ||
	    !pthread_equal(pthread_self(), main_thread)) {
		master.bad = true;
	} else {
		master.per_thread[rsp->index]++;
	}
	master.requests++;

	/* Reply with the immediate we were invoked with. */
	tevent_thread_proxy_schedule(rsp->reply_tp, &im, thread_callback,
				     &rsp);
	if (im != NULL || rsp != NULL) {
		master.bad = true;
	}
}

struct child_arg {
	struct tevent_thread_proxy *master_tp;
	int index;
	pthread_t thread;
};

static void *reply_child(void *private_ptr)
{
	struct child_arg *arg = private_ptr;
	struct tevent_thread_proxy *master_tp =
		talloc_get_type_abort(arg->master_tp, struct tevent_thread_proxy);
	bool finished = false;
	struct tevent_context *ev;
	struct tevent_thread_proxy *local_tp;
	struct reply_state *rsp;
	struct tevent_immediate *im;

	ev = tevent_context_init(NULL);
	CHECK(ev != NULL);
	local_tp = tevent_thread_proxy_create(ev);
	CHECK(local_tp != NULL);

	rsp = talloc(ev, struct reply_state);
	CHECK(rsp != NULL);
	rsp->reply_tp = local_tp;
	rsp->thread_id = pthread_self();
	rsp->p_finished = &finished;
	rsp->index = arg->index;

	im = tevent_create_immediate(ev);
	CHECK(im != NULL);
	tevent_thread_proxy_schedule(master_tp, &im, master_callback, &rsp);
	CHECK(im == NULL && rsp == NULL);

	while (!finished) {
		CHECK(tevent_loop_once(ev) == 0);
	}
	talloc_free(ev);
	return NULL;
}

static void test_reply_pattern_8_threads(void **state)
{
	TT_SKIP_ON_UPSTREAM("the loop touches the immediate after its handler "
			    "sent it to the other thread (talloc aborts)");
	unsigned long rounds = tt_clamp_ul(tt_thread_msgs() / 100, 20, 200);
	struct tevent_context *master_ev;
	struct tevent_thread_proxy *master_tp;
	struct child_arg args[REPLY_THREADS];
	size_t baseline;
	unsigned long r;
	int i;

	memset(&master, 0, sizeof(master));
	master_ev = tevent_context_init(NULL);
	assert_non_null(master_ev);
	master_tp = tevent_thread_proxy_create(master_ev);
	assert_non_null(master_tp);
	tt_drain(master_ev); /* backends may allocate on their first turn */
	baseline = talloc_total_blocks(master_ev);

	for (r = 0; r < rounds; r++) {
		for (i = 0; i < REPLY_THREADS; i++) {
			args[i] = (struct child_arg) {
				.master_tp = master_tp, .index = i };
			assert_int_equal(pthread_create(&args[i].thread, NULL,
							reply_child, &args[i]),
					 0);
		}
		LOOP_UNTIL(master_ev,
			   master.requests == (int)((r + 1) * REPLY_THREADS));
		for (i = 0; i < REPLY_THREADS; i++) {
			assert_int_equal(pthread_join(args[i].thread, NULL), 0);
		}
		tt_drain(master_ev);
		assert_false(master.bad);
		/* Every reply block went back to its child. */
		assert_int_equal(talloc_total_blocks(master_ev), baseline);
	}
	for (i = 0; i < REPLY_THREADS; i++) {
		assert_int_equal(master.per_thread[i], (int)rounds);
	}
	print_message("%lu rounds x %d threads\n", rounds, REPLY_THREADS);
	talloc_free(master_ev);
}

/* ========================================================================
 * Teardown with messages queued
 * ======================================================================== */

static struct {
	int calls;
	struct tevent_thread_proxy **free_tp;  /* free *free_tp in handler */
} counter;

static void count_handler(struct tevent_context *ev,
			  struct tevent_immediate *im, void *private_data)
{
	counter.calls++;
	if (counter.free_tp != NULL && *counter.free_tp != NULL) {
		talloc_free(*counter.free_tp);
		*counter.free_tp = NULL;
	}
}

struct batch_sender {
	struct tevent_thread_proxy *tp;
	int count;
};

static void *batch_sender_main(void *arg)
{
	struct batch_sender *bs = arg;
	TALLOC_CTX *mine = talloc_new(NULL);
	int i;

	CHECK(mine != NULL);
	for (i = 0; i < bs->count; i++) {
		struct tevent_immediate *im = tevent_create_immediate(mine);
		struct counted *c = counted_new(mine, i);

		CHECK(im != NULL);
		tevent_thread_proxy_schedule(bs->tp, &im, count_handler, &c);
		CHECK(im == NULL && c == NULL);
	}
	CHECK(talloc_total_blocks(mine) == 1);
	talloc_free(mine);
	return NULL;
}

/* Queues `count` counted messages on tp from another thread. */
static void send_batch(struct tevent_thread_proxy *tp, int count)
{
	struct batch_sender bs = { .tp = tp, .count = count };
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, batch_sender_main, &bs), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
}

#define QUEUED 64

static void test_free_proxy_with_queued_messages(void **state)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_thread_proxy *tp;
	size_t baseline;
	int ran;

	assert_non_null(ev);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	talloc_free(tp);
	tt_drain(ev); /* backends may allocate on their first turn */
	baseline = talloc_total_blocks(ev);

	/* 1. The loop never looked: all messages still in the hand-over. */
	memset(&counter, 0, sizeof(counter));
	__atomic_store_n(&destroyed_blocks, 0, __ATOMIC_RELAXED);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	send_batch(tp, QUEUED);
	talloc_free(tp);
	assert_int_equal(destroyed_count(), QUEUED);
	tt_drain(ev);
	assert_int_equal(counter.calls, 0);
	assert_int_equal(talloc_total_blocks(ev), baseline);

	/* 2. Picked up by the loop, one of them run, the rest pending. */
	memset(&counter, 0, sizeof(counter));
	__atomic_store_n(&destroyed_blocks, 0, __ATOMIC_RELAXED);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	send_batch(tp, QUEUED);
	LOOP_UNTIL(ev, counter.calls >= 1);
	ran = counter.calls;
	talloc_free(tp);
	assert_int_equal(destroyed_count(), QUEUED);
	tt_drain(ev);
	assert_int_equal(counter.calls, ran);
	assert_int_equal(talloc_total_blocks(ev), baseline);

	/* 3. Freed by the first handler that runs. */
	memset(&counter, 0, sizeof(counter));
	__atomic_store_n(&destroyed_blocks, 0, __ATOMIC_RELAXED);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	counter.free_tp = &tp;
	send_batch(tp, QUEUED);
	LOOP_UNTIL(ev, counter.calls >= 1);
	assert_null(tp);
	tt_drain(ev);
	assert_int_equal(counter.calls, 1);
	assert_int_equal(destroyed_count(), QUEUED);
	assert_int_equal(talloc_total_blocks(ev), baseline);

	talloc_free(ev);
}

static void test_free_context_with_queued_messages(void **state)
{
	struct tevent_context *ev;
	struct tevent_thread_proxy *tp;
	void *sentinel;

	/* 1. Still in the hand-over. */
	memset(&counter, 0, sizeof(counter));
	__atomic_store_n(&destroyed_blocks, 0, __ATOMIC_RELAXED);
	ev = tevent_context_init(NULL);
	assert_non_null(ev);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	send_batch(tp, QUEUED);
	sentinel = talloc_new(tp);
	assert_non_null(sentinel);
	talloc_set_destructor(sentinel, flag_destructor);
	flag_destructor_hit = false;
	talloc_free(ev);
	assert_true(flag_destructor_hit);
	assert_int_equal(destroyed_count(), QUEUED);
	assert_int_equal(counter.calls, 0);

	/* 2. Picked up by the loop, partly run. */
	memset(&counter, 0, sizeof(counter));
	__atomic_store_n(&destroyed_blocks, 0, __ATOMIC_RELAXED);
	ev = tevent_context_init(NULL);
	assert_non_null(ev);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	send_batch(tp, QUEUED);
	LOOP_UNTIL(ev, counter.calls >= 1);
	assert_true(counter.calls < QUEUED);
	talloc_free(ev);
	assert_int_equal(destroyed_count(), QUEUED);
}

/* ========================================================================
 * Cases for bugs found and fixed while this suite was written
 * ======================================================================== */

static struct {
	void *keep;
	struct tevent_immediate *kept_im;
	int calls;
} keeper;

static void keep_im_handler(struct tevent_context *ev,
			    struct tevent_immediate *im, void *private_data)
{
	void *sentinel;

	keeper.calls++;
	if (keeper.kept_im != NULL) {
		return;  /* second round: leave it to the library */
	}
	keeper.kept_im = talloc_steal(keeper.keep, im);
	sentinel = talloc_new(im);
	CHECK(sentinel != NULL);
	talloc_set_destructor(sentinel, flag_destructor);
}

/*
 * A handler that reparents the immediate it runs with onto its own
 * context keeps it (upstream frees only what is still in the library's
 * hands), and may use it for another message later.
 */
static void test_handler_keeps_immediate(void **state)
{
	struct tevent_context *ev;
	struct tevent_thread_proxy *tp;
	struct sender s;


	ev = tevent_context_init(NULL);
	assert_non_null(ev);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	memset(&keeper, 0, sizeof(keeper));
	keeper.keep = talloc_new(NULL);
	assert_non_null(keeper.keep);
	flag_destructor_hit = false;

	s = (struct sender) { .tp = tp, .handler = keep_im_handler };
	run_sender(&s);
	LOOP_UNTIL(ev, keeper.calls == 1);
	tt_drain(ev);
	assert_false(flag_destructor_hit);
	assert_ptr_equal(talloc_parent(keeper.kept_im), keeper.keep);

	/* Reuse it from the owning thread. */
	tevent_thread_proxy_schedule(tp, &keeper.kept_im, keep_im_handler,
				     NULL);
	assert_null(keeper.kept_im);
	LOOP_UNTIL(ev, keeper.calls == 2);
	tt_drain(ev);
	talloc_free(keeper.keep);
	talloc_free(ev);
}

/*
 * A handler may take a talloc reference to the message's immediate instead
 * of stealing it.  As with upstream's library, the holder of the
 * reference then owns a live immediate (the reference itself is used up)
 * that it can schedule again, while the parameter block is freed as usual.
 */
static struct {
	void *holder;
	struct tevent_immediate *im;
	int calls;
	int again_calls;
	bool block_freed;
} refd;

static int refd_block_destructor(char *block)
{
	refd.block_freed = true;
	return 0;
}

static void refd_again_handler(struct tevent_context *ev,
			       struct tevent_immediate *im, void *private_data)
{
	refd.again_calls++;
}

static void refd_handler(struct tevent_context *ev, struct tevent_immediate *im,
			 void *private_data)
{
	refd.calls++;
	refd.im = im;
	CHECK(talloc_reference(refd.holder, im) != NULL);
}

static void test_handler_references_immediate(void **state)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_thread_proxy *tp;
	struct tevent_immediate *im;
	char *block;

	assert_non_null(ev);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	memset(&refd, 0, sizeof(refd));
	refd.holder = talloc_new(NULL);
	assert_non_null(refd.holder);

	im = tevent_create_immediate(NULL);
	block = talloc_size(NULL, 16);
	assert_non_null(im);
	assert_non_null(block);
	talloc_set_destructor(block, refd_block_destructor);
	tevent_thread_proxy_schedule(tp, &im, refd_handler, &block);
	LOOP_UNTIL(ev, refd.calls == 1);
	tt_drain(ev);

	assert_true(refd.block_freed);
	assert_ptr_equal(talloc_parent(refd.im), refd.holder);
	assert_int_equal(talloc_reference_count(refd.im), 0);
	assert_ptr_equal(talloc_get_type(refd.im, struct tevent_immediate),
			 refd.im);

	/* Still a working immediate. */
	tevent_schedule_immediate(refd.im, ev, refd_again_handler, NULL);
	LOOP_UNTIL(ev, refd.again_calls == 1);
	tt_drain(ev);
	assert_int_equal(refd.calls, 1);

	talloc_free(refd.holder);	/* and the immediate with it */
	talloc_free(ev);
}

/* ------------------------------------------------------------------------
 * The message's life after its handler: rescheduled without being
 * adopted, freed from a nested handler, and where the parameter block the
 * handler left is freed.
 * ------------------------------------------------------------------------ */

static struct {
	struct tevent_context *ev;
	struct tevent_thread_proxy **tp;  /* freed by the inner handler */
	int first_calls;
	int again_calls;
	int inner_calls;
	bool block_freed;
	bool block_freed_on_main;
	bool block_freed_during_handler;
	bool in_handler;
} life;

static void again_handler(struct tevent_context *ev,
			  struct tevent_immediate *im, void *private_data)
{
	life.again_calls++;
}

static void reschedule_handler(struct tevent_context *ev,
			       struct tevent_immediate *im, void *private_data)
{
	life.first_calls++;
	/* Scheduled again on the same loop, but not reparented. */
	tevent_schedule_immediate(im, ev, again_handler, NULL);
}

/*
 * A handler may schedule the message's immediate again without taking it:
 * it runs as an ordinary immediate, stays the proxy's, and goes with the
 * proxy (no leak, no double free: ASan and valgrind check the rest).
 */
static void test_handler_reschedules_message(void **state)
{
	TT_SKIP_ON_UPSTREAM("the rescheduled immediate is freed with the "
			    "message, so it never runs (README, \"Intended "
			    "differences\")");
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_thread_proxy *tp;
	struct tevent_immediate *im;
	size_t baseline;

	assert_non_null(ev);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	tt_drain(ev);
	baseline = talloc_total_blocks(ev);
	memset(&life, 0, sizeof(life));

	im = tevent_create_immediate(NULL);
	assert_non_null(im);
	tevent_thread_proxy_schedule(tp, &im, reschedule_handler, NULL);
	LOOP_UNTIL(ev, life.again_calls == 1);
	assert_int_equal(life.first_calls, 1);
	tt_drain(ev);
	assert_int_equal(life.again_calls, 1);
	/* It is still there, below the proxy, until the proxy goes. */
	assert_true(talloc_total_blocks(ev) > baseline);
	assert_int_equal(talloc_total_blocks(tp), 2);
	talloc_free(tp);
	tt_drain(ev);
	assert_int_equal(talloc_total_blocks(ev), baseline - 1);
	talloc_free(ev);
}

static int life_block_destructor(struct msg *m)
{
	life.block_freed = true;
	life.block_freed_on_main = pthread_equal(pthread_self(), main_thread);
	life.block_freed_during_handler = life.in_handler;
	return 0;
}

/*
 * The first of the two messages to run is the outer one: it runs the loop
 * until the other (the inner one) ran, which frees the proxy.  Which is
 * which is left to the library: upstream runs a batch from one producer
 * in reverse (README, "Intended differences").
 */
static void nested_handler(struct tevent_context *ev,
			   struct tevent_immediate *im, void *private_data)
{
	struct msg *m = talloc_get_type(private_data, struct msg);

	if (life.in_handler) {
		life.inner_calls++;
		/* Frees the proxy while the outer message's handler runs. */
		TALLOC_FREE(*life.tp);
		return;
	}
	life.first_calls++;
	if (m != NULL) {
		talloc_set_destructor(m, life_block_destructor);
	}
	life.in_handler = true;
	while (life.inner_calls == 0) {
		if (tevent_loop_once(ev) != 0) {
			break;
		}
	}
	life.in_handler = false;
}

/*
 * Nested delivery: the outer message's handler runs the loop, which
 * delivers the inner message, whose handler frees the proxy. Both
 * messages and the outer one's block are freed, on the loop's thread,
 * and nothing is touched afterwards (ASan and valgrind watch that).
 */
static void test_proxy_freed_by_nested_handler(void **state)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_thread_proxy *tp;
	struct tevent_immediate *im;
	struct msg *m;
	size_t baseline;
	int i;

	assert_non_null(ev);
	tevent_loop_allow_nesting(ev);
	/* The first proxy leaves the context's wakeup behind: count after. */
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	TALLOC_FREE(tp);
	tt_drain(ev);
	baseline = talloc_total_blocks(ev);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	memset(&life, 0, sizeof(life));
	life.tp = &tp;

	for (i = 1; i <= 2; i++) {
		im = tevent_create_immediate(NULL);
		m = msg_new(NULL, i);
		assert_non_null(im);
		tevent_thread_proxy_schedule(tp, &im, nested_handler, &m);
	}

	LOOP_UNTIL(ev, life.first_calls == 1 && life.inner_calls == 1 &&
			       !life.in_handler);
	assert_null(tp);
	tt_drain(ev);
	assert_true(life.block_freed);
	assert_true(life.block_freed_on_main);
	assert_int_equal(talloc_total_blocks(ev), baseline);
	talloc_free(ev);
}

static void leave_block_handler(struct tevent_context *ev,
				struct tevent_immediate *im, void *private_data)
{
	struct msg *m = talloc_get_type(private_data, struct msg);

	life.first_calls++;
	if (m != NULL) {
		talloc_set_destructor(m, life_block_destructor);
	}
}

/*
 * The block a handler leaves (here with a destructor the handler set) is
 * freed on the loop's thread once the handler has returned, never on a
 * producer's thread, even though the bare message may go back there.
 */
static void test_left_block_freed_on_loop_thread(void **state)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_thread_proxy *tp;
	struct sender s;
	int i;

	assert_non_null(ev);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	for (i = 0; i < 3; i++) {
		memset(&life, 0, sizeof(life));
		s = (struct sender) { .tp = tp,
				      .handler = leave_block_handler,
				      .value = i };
		run_sender(&s);
		assert_true(s.im_cleared);
		assert_true(s.block_cleared);
		LOOP_UNTIL(ev, life.first_calls == 1);
		if (tt_is_system_library()) {
			/* upstream frees it from an immediate of its own,
			 * queued behind the message */
			LOOP_UNTIL(ev, life.block_freed);
		}
		assert_true(life.block_freed);
		assert_true(life.block_freed_on_main);
		assert_false(life.block_freed_during_handler);
	}
	talloc_free(ev);
}

/* ------------------------------------------------------------------------
 * Immediates that came back to the sending thread and are handed out
 * again by tevent_create_immediate() on that thread.
 * ------------------------------------------------------------------------ */

#define REUSE_MSGS 200
#define REUSE_EXTRA 128

static struct {
	struct tevent_thread_proxy *tp;
	int delivered;           /* atomic */
	bool parent_ok, name_ok, tag_ok, fresh_ok, ran_locally;
} reuse;

static void reuse_handler(struct tevent_context *ev,
			  struct tevent_immediate *im, void *private_data)
{
	__atomic_add_fetch(&reuse.delivered, 1, __ATOMIC_RELEASE);
}

static void reuse_local_handler(struct tevent_context *ev,
				struct tevent_immediate *im, void *private_data)
{
	reuse.ran_locally = true;
}

static void *reuse_sender(void *arg)
{
	struct tevent_context *mine = tevent_context_init(NULL);
	struct tevent_immediate *im;
	int i;

	CHECK(mine != NULL);
	for (i = 0; i < REUSE_MSGS; i++) {
		im = tevent_create_immediate(NULL);
		CHECK(im != NULL);
		tevent_immediate_set_tag(im, 77);
		tevent_thread_proxy_schedule(reuse.tp, &im, reuse_handler, NULL);
	}
	while (__atomic_load_n(&reuse.delivered, __ATOMIC_ACQUIRE) < REUSE_MSGS) {
		sched_yield();
	}
	/* Senders take back what the loop returned now and then: a few
	 * more sends certainly do. */
	for (i = 0; i < REUSE_EXTRA; i++) {
		im = tevent_create_immediate(NULL);
		CHECK(im != NULL);
		tevent_thread_proxy_schedule(reuse.tp, &im, reuse_handler, NULL);
	}

	/* Whatever it hands out now must look freshly made. */
	for (i = 0; i < 100; i++) {
		im = tevent_create_immediate(mine);
		CHECK(im != NULL);
		reuse.parent_ok = talloc_parent(im) == mine;
		reuse.name_ok = talloc_get_type(im, struct tevent_immediate) == im;
		reuse.tag_ok = tevent_immediate_get_tag(im) == 0;
		reuse.fresh_ok = talloc_total_blocks(im) == 1;
		if (!reuse.parent_ok || !reuse.name_ok || !reuse.tag_ok ||
		    !reuse.fresh_ok) {
			break;
		}
		reuse.ran_locally = false;
		tevent_schedule_immediate(im, mine, reuse_local_handler, NULL);
		while (!reuse.ran_locally) {
			CHECK(tevent_loop_once(mine) == 0);
		}
		talloc_free(im);
	}
	talloc_free(mine);
	/* Leaving the thread frees whatever it still keeps (valgrind). */
	return NULL;
}

static void test_returned_immediates_reused_fresh(void **state)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	pthread_t t;

	assert_non_null(ev);
	memset(&reuse, 0, sizeof(reuse));
	reuse.tp = tevent_thread_proxy_create(ev);
	assert_non_null(reuse.tp);
	assert_int_equal(pthread_create(&t, NULL, reuse_sender, NULL), 0);
	LOOP_UNTIL(ev, __atomic_load_n(&reuse.delivered, __ATOMIC_ACQUIRE) ==
			       REUSE_MSGS + REUSE_EXTRA);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(reuse.parent_ok);
	assert_true(reuse.name_ok);
	assert_true(reuse.tag_ok);
	assert_true(reuse.fresh_ok);
	assert_true(reuse.ran_locally);
	talloc_free(ev);
}

/*
 * Spent messages go back to the thread that sent them.  Whatever path
 * they take, none may be stranded: not when the sender exits before the
 * loop ran its messages (they arrive at a closed home), and not when the
 * sender stays idle until it exits (they wait at its home meanwhile).
 * The heap in use, summed over all malloc arenas, must come back to where
 * it started.
 */
#define HOME_MSGS 20000
#define HOME_BLOCK 256

static struct {
	struct tevent_thread_proxy *tp;
	unsigned delivered;	/* written by the loop */
	sem_t sent;		/* the sender has sent all */
	sem_t exit_now;		/* the idle sender waits for it */
	bool wait_before_exit;
} home;

static void home_handler(struct tevent_context *ev,
			 struct tevent_immediate *im, void *private_data)
{
	if (private_data != NULL && talloc_get_size(private_data) == HOME_BLOCK) {
		__atomic_add_fetch(&home.delivered, 1, __ATOMIC_RELEASE);
	}
}

static void *home_sender(void *arg)
{
	int i;

	for (i = 0; i < HOME_MSGS; i++) {
		struct tevent_immediate *im = tevent_create_immediate(NULL);
		void *block = talloc_size(NULL, HOME_BLOCK);
		CHECK(im != NULL && block != NULL);
		tevent_thread_proxy_schedule(home.tp, &im, home_handler,
					     &block);
		CHECK(im == NULL && block == NULL);
	}
	if (home.wait_before_exit) {
		CHECK(sem_post(&home.sent) == 0);
		tt_sem_wait_nointr(&home.exit_now);
	}
	return NULL;
}

static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks;
}

/* Sanitizers and valgrind bring their own allocator, which mallinfo2()
 * does not see. */
static bool heap_visible(void)
{
	void *p[256];
	size_t before = heap_in_use();
	bool seen;
	int i;

	for (i = 0; i < 256; i++) {
		p[i] = malloc(1024);
	}
	seen = heap_in_use() >= before + 256 * 1024;
	for (i = 0; i < 256; i++) {
		free(p[i]);
	}
	return seen;
}

static void check_heap_back(size_t before, const char *what)
{
	size_t after = heap_in_use();

	print_message("%s: %zu bytes in use before, %zu after\n", what,
		      before, after);
	assert_true(after < before + (size_t)HOME_MSGS * HOME_BLOCK / 16);
}

static void test_spent_messages_not_stranded(void **state)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	bool visible = heap_visible();
	size_t before, peak;
	pthread_t t;

	if (!visible) {
		print_message("mallinfo2() does not see this allocator: "
			      "delivery checked, heap not\n");
	}
	assert_non_null(ev);
	memset(&home, 0, sizeof(home));
	assert_int_equal(sem_init(&home.sent, 0, 0), 0);
	assert_int_equal(sem_init(&home.exit_now, 0, 0), 0);
	home.tp = tevent_thread_proxy_create(ev);
	assert_non_null(home.tp);
	before = heap_in_use();

	/* The sender is gone before its first message runs. */
	assert_int_equal(pthread_create(&t, NULL, home_sender, NULL), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	peak = heap_in_use();
	if (visible) {
		assert_true(peak >= before + (size_t)HOME_MSGS * HOME_BLOCK);
	}
	LOOP_UNTIL(ev, __atomic_load_n(&home.delivered, __ATOMIC_ACQUIRE) ==
			       HOME_MSGS);
	tt_drain(ev);
	if (visible) {
		check_heap_back(before, "sender exited first");
	}

	/* The sender sends all, waits idle until every message ran (they
	 * go back to it meanwhile), then exits. */
	home.delivered = 0;
	home.wait_before_exit = true;
	before = heap_in_use();
	assert_int_equal(pthread_create(&t, NULL, home_sender, NULL), 0);
	tt_sem_wait_nointr(&home.sent);
	LOOP_UNTIL(ev, __atomic_load_n(&home.delivered, __ATOMIC_ACQUIRE) ==
			       HOME_MSGS);
	tt_drain(ev);
	assert_int_equal(sem_post(&home.exit_now), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	if (visible) {
		check_heap_back(before, "sender exited idle");
	}

	sem_destroy(&home.sent);
	sem_destroy(&home.exit_now);
	talloc_free(ev);
}

static int deep_calls;

static void deep_handler(struct tevent_context *ev,
			 struct tevent_immediate *im, void *private_data)
{
	deep_calls++;
}

/*
 * Far more messages than the depth at which senders start yielding the
 * CPU, all sent by the loop's own thread before it runs: sending must
 * never wait for the loop, and every message runs once.
 */
static void test_deep_queue_from_owning_thread(void **state)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_thread_proxy *tp;
	const int n = 50000;
	int i;

	assert_non_null(ev);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	deep_calls = 0;
	for (i = 0; i < n; i++) {
		struct tevent_immediate *im = tevent_create_immediate(NULL);
		assert_non_null(im);
		tevent_thread_proxy_schedule(tp, &im, deep_handler, NULL);
		assert_null(im);
	}
	assert_int_equal(deep_calls, 0);
	LOOP_UNTIL(ev, deep_calls == n);
	tt_drain(ev);
	assert_int_equal(deep_calls, n);
	talloc_free(ev);
}

static struct {
	struct tt_sleep_gate gate;
	bool ran;
	struct tevent_thread_proxy *tp;
} lw;

static void lw_handler(struct tevent_context *ev, struct tevent_immediate *im,
		       void *private_data)
{
	lw.ran = true;
	TALLOC_FREE(lw.tp);
}

static void *lw_sender(void *arg)
{
	struct tevent_immediate *im;

	tt_sem_wait_nointr(&lw.gate.go);
	im = tevent_create_immediate(NULL);
	CHECK(im != NULL);
	tevent_thread_proxy_schedule(lw.tp, &im, lw_handler, NULL);
	return NULL;
}

/*
 * The chapter's master runs tevent_loop_wait() on a context whose only
 * event source is a proxy.  Upstream keeps waiting while the proxy
 * exists (its pipe is a regular fd event); returning at once lets the
 * master free the context under the children's feet.
 */
static void test_loop_wait_waits_for_proxy(void **state)
{
	struct tevent_context *ev;
	pthread_t t;
	bool ran_when_returned;


	memset(&lw, 0, sizeof(lw));
	assert_int_equal(sem_init(&lw.gate.go, 0, 0), 0);
	ev = tevent_context_init(NULL);
	assert_non_null(ev);
	lw.tp = tevent_thread_proxy_create(ev);
	assert_non_null(lw.tp);
	tevent_set_trace_callback(ev, tt_sleep_gate_trace, &lw.gate);
	assert_int_equal(pthread_create(&t, NULL, lw_sender, NULL), 0);

	assert_int_equal(tevent_loop_wait(ev), 0);
	ran_when_returned = lw.ran;
	if (tt_sleep_gate_open(&lw.gate)) {
		/* returned without ever waiting: let the sender go anyway */
		LOOP_UNTIL(ev, lw.ran);
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	tevent_set_trace_callback(ev, NULL, NULL);
	talloc_free(ev);
	sem_destroy(&lw.gate.go);
	assert_true(ran_when_returned);
}

/* ========================================================================
 * fork()
 *
 * What a child gets:
 *  - Without tevent_re_initialise() the child's context still shares the
 *    wakeup descriptor with the parent's copy; producers in the parent
 *    keep waking it and it may eat the parent's wakeups.  So the child
 *    calls tevent_re_initialise() first.
 *  - tevent_re_initialise() drops every event of the context, like
 *    upstream: messages that were queued on its proxies at fork time are
 *    discarded (never run in the child; the parent still runs its own
 *    copies), and proxies made before the fork never deliver again - a
 *    message scheduled on one is dropped (with this library the caller
 *    keeps *pp_im; upstream takes it and never runs it).  Freeing such a
 *    proxy is fine.
 *  - A proxy created after tevent_re_initialise() works normally.
 *  - The producer threads do not exist in the child.
 *
 * The child never calls cmocka (an assertion would longjmp into the
 * runner and go on running tests in the child); it reports one byte
 * through a pipe and _exit()s.  Its exit status is not looked at, so a
 * leak report of a valgrind'ed child does not matter.
 * ======================================================================== */

static char child_fork_proxy(struct tevent_context *ev,
			     struct tevent_thread_proxy *old_tp)
{
	struct tevent_thread_proxy *tp2;
	struct tevent_immediate *im;
	int i;

	if (tevent_re_initialise(ev) != 0) {
		return 'a';
	}
	/* The parent's queued messages do not run here. */
	drain_nocmocka(ev);
	if (counter.calls != 0) {
		return 'b';
	}
	/* A proxy from before the fork is dead. */
	im = tevent_create_immediate(NULL);
	if (im == NULL) {
		return 'c';
	}
	tevent_thread_proxy_schedule(old_tp, &im, count_handler, NULL);
	drain_nocmocka(ev);
	if (counter.calls != 0) {
		return 'd';
	}
	talloc_free(im); /* still ours here; NULL if the library took it */
	talloc_free(old_tp);
	/* Whatever was queued on it is gone now at the latest. */
	if (destroyed_count() != QUEUED) {
		return 'e';
	}
	/* A new one works. */
	tp2 = tevent_thread_proxy_create(ev);
	if (tp2 == NULL) {
		return 'f';
	}
	im = tevent_create_immediate(NULL);
	if (im == NULL) {
		return 'g';
	}
	tevent_thread_proxy_schedule(tp2, &im, count_handler, NULL);
	if (im != NULL) {
		return 'h';
	}
	for (i = 0; i < 1000 && counter.calls == 0; i++) {
		if (tevent_loop_once(ev) != 0) {
			return 'i';
		}
	}
	if (counter.calls != 1) {
		return 'j';
	}
	talloc_free(ev);
	return 'K';
}

struct fork_proxy_args {
	struct tevent_context *ev;
	struct tevent_thread_proxy *tp;
};

static char fork_proxy_child(void *arg)
{
	struct fork_proxy_args *fa = arg;

	return child_fork_proxy(fa->ev, fa->tp);
}

static void test_fork_child_reinitialise(void **state)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_thread_proxy *tp;
	struct fork_proxy_args fa;
	char c;

	assert_non_null(ev);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	memset(&counter, 0, sizeof(counter));
	__atomic_store_n(&destroyed_blocks, 0, __ATOMIC_RELAXED);
	/* Messages queued at fork time; the sender has finished. */
	send_batch(tp, QUEUED);

	fa.ev = ev;
	fa.tp = tp;
	c = tt_fork_report(fork_proxy_child, &fa, 120); /* hang guard only */
	assert_int_equal(c, 'K');

	/* The parent is not affected: its messages all run here. */
	LOOP_UNTIL(ev, counter.calls == QUEUED);
	tt_drain(ev);
	assert_int_equal(destroyed_count(), QUEUED);
	talloc_free(ev);
}

/*
 * A child that re-initialises its copy of the loop must leave the
 * parent's loop alone: the parent still gets woken for messages sent
 * after the fork.  The sender waits until the parent really sleeps.
 */
static struct {
	struct tt_sleep_gate gate;
	int calls;
} pw;

static void pw_handler(struct tevent_context *ev, struct tevent_immediate *im,
		       void *private_data)
{
	pw.calls++;
}

static void *pw_sender(void *arg)
{
	struct tevent_thread_proxy *tp = arg;
	struct tevent_immediate *im;

	tt_sem_wait_nointr(&pw.gate.go);
	im = tevent_create_immediate(NULL);
	CHECK(im != NULL);
	tevent_thread_proxy_schedule(tp, &im, pw_handler, NULL);
	return NULL;
}

/* How long a parent may sleep before a lost wakeup is assumed: a hang
 * detector for a skipped-by-default case, not a performance limit. */
#define LOST_WAKEUP_SECS 20

static void test_fork_parent_still_woken(void **state)
{
	struct tevent_context *ev;
	struct tevent_thread_proxy *tp;
	struct tt_watchdog hang;
	pthread_t t;


	memset(&pw, 0, sizeof(pw));
	assert_int_equal(sem_init(&pw.gate.go, 0, 0), 0);
	ev = tevent_context_init(NULL);
	assert_non_null(ev);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	tt_drain(ev);

	assert_int_equal(tt_fork_report(tt_child_reinitialise, ev, 120), 'K');

	tevent_set_trace_callback(ev, tt_sleep_gate_trace, &pw.gate);
	assert_int_equal(pthread_create(&t, NULL, pw_sender, tp), 0);
	assert_true(tt_watchdog_arm(&hang, ev, LOST_WAKEUP_SECS));
	while (pw.calls == 0 && !hang.fired) {
		assert_int_equal(tevent_loop_once(ev), 0);
	}
	tt_sleep_gate_open(&pw.gate); /* in case the loop never slept */
	assert_int_equal(pthread_join(t, NULL), 0);
	tevent_set_trace_callback(ev, NULL, NULL);
	tt_watchdog_disarm(&hang);
	tt_drain(ev);
	talloc_free(ev);
	sem_destroy(&pw.gate.go);
	assert_false(hang.fired);
	assert_int_equal(pw.calls, 1);
}

/*
 * Samba forks while helper threads are busy.  A child must be able to
 * re-initialise its loop even if a producer was in the middle of
 * tevent_thread_proxy_schedule() when fork() happened.  (The poll
 * backend keeps this case clear of the epoll problem above.)
 */
static void test_fork_while_producers_send(void **state)
{
	struct tevent_context *ev;
	struct tevent_thread_proxy *tp;
	struct producer p[2];
	unsigned long n = tt_clamp_ul(tt_thread_msgs() / 10, 20000, 100000);
	const int max_forks = tt_busy_forks();
	unsigned long next_fork = n / max_forks;
	int forks = 0, failed = 0;
	char first_bad = 0;
	struct tt_watchdog wd;
	bool ok = true;
	cpu_set_t saved_cpus, one_cpu;
	bool pinned;


	ev = tevent_context_init_byname(NULL, "poll");
	assert_non_null(ev);
	tp = tevent_thread_proxy_create(ev);
	assert_non_null(tp);
	/* Producers that never sleep, so that fork() is likely to catch
	 * one inside tevent_thread_proxy_schedule(). */
	/*
	 * One CPU for all: a producer that wakes the loop tends to be
	 * preempted by it right there, inside the hand-over.  (The threads
	 * inherit the mask; it is restored afterwards.)
	 */
	assert_int_equal(sched_getaffinity(0, sizeof(saved_cpus), &saved_cpus), 0);
	CPU_ZERO(&one_cpu);
	CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one_cpu);
	pinned = sched_setaffinity(0, sizeof(one_cpu), &one_cpu) == 0;
	producers_start_window(p, 2, tp, n, false, CONSUME_PLAIN, 2, true);
	ok = tt_watchdog_arm(&wd, ev, TT_WATCHDOG_SECS);
	while (ok && con.delivered < 2 * n && !con.bad && !wd.fired) {
		if (tevent_loop_once(ev) != 0) {
			ok = false;
			break;
		}
		if (con.delivered >= next_fork && forks < max_forks &&
		    failed == 0) {
			char c = tt_fork_and_reinitialise(ev);

			next_fork += n / max_forks;
			forks++;
			if (c != 'K') {
				failed++;
				first_bad = c;
			}
		}
	}
	tt_watchdog_disarm(&wd);
	if (!ok || con.bad || wd.fired) {
		ok = false;
		credit_abandon(&p[0].credit);
		credit_abandon(&p[1].credit);
	}
	producers_join(p, 2);
	if (pinned) {
		sched_setaffinity(0, sizeof(saved_cpus), &saved_cpus);
	}
	assert_true(ok);
	tt_drain(ev);
	producers_verify(p, 2);
	talloc_free(ev);
	print_message("%d forks, %d children failed (report '%c')\n", forks,
		      failed, first_bad ? first_bad : '-');
	assert_int_equal(failed, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proxy_create),
		cmocka_unit_test(test_proxy_create_on_wrapper_refused),
		cmocka_unit_test(test_schedule_from_other_thread),
		cmocka_unit_test(test_schedule_from_owning_thread),
		cmocka_unit_test(test_schedule_scheduled_immediate),
		cmocka_unit_test(test_schedule_from_handler),
		cmocka_unit_test(test_null_private_data),
		cmocka_unit_test(test_order_one_producer),
		cmocka_unit_test(test_stress_8_producers),
		cmocka_unit_test(test_handlers_free_while_producers_send),
		cmocka_unit_test(test_ping_pong),
		cmocka_unit_test(test_reply_pattern_8_threads),
		cmocka_unit_test(test_free_proxy_with_queued_messages),
		cmocka_unit_test(test_free_context_with_queued_messages),
		cmocka_unit_test(test_fork_child_reinitialise),
		cmocka_unit_test(test_handler_keeps_immediate),
		cmocka_unit_test(test_handler_references_immediate),
		cmocka_unit_test(test_handler_reschedules_message),
		cmocka_unit_test(test_proxy_freed_by_nested_handler),
		cmocka_unit_test(test_left_block_freed_on_loop_thread),
		cmocka_unit_test(test_deep_queue_from_owning_thread),
		cmocka_unit_test(test_returned_immediates_reused_fresh),
		cmocka_unit_test(test_spent_messages_not_stranded),
		cmocka_unit_test(test_loop_wait_waits_for_proxy),
		cmocka_unit_test(test_fork_parent_still_woken),
		cmocka_unit_test(test_fork_while_producers_send),
	};

	/* Before any other talloc call: the NULL context is shared by all
	 * threads, so it must not be tracked. */
	talloc_disable_null_tracking();
	main_thread = pthread_self();
	tt_check_library();
	any_order = tt_is_system_library();
	if (getenv("TT_FILTER") != NULL) {
		cmocka_set_test_filter(getenv("TT_FILTER"));
	}
	return cmocka_run_group_tests_name("tevent_thread_proxy", tests, NULL,
					   NULL);
}

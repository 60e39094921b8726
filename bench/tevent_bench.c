/*
 * tevent_bench: one benchmark program for any libtevent.so.0.
 *
 * Built against Debian's /usr/include/tevent.h (0.14.1 API only) and linked
 * to the system library, so the very same binary runs against upstream
 * (plain run) and against tevent-cxx (LD_LIBRARY_PATH=<our bin dir>).  It
 * prints which libtevent the loader really gave it, so buildtools/run-bench
 * can refuse a run that measured the wrong library.
 *
 *   tevent_bench [--case NAME]... [--scale F] [--list]
 *
 * Output, one line per figure:
 *   library=<realpath of the loaded libtevent>
 *   case=<name> metric=<name> unit=<ops_per_s|seconds|bytes> value=<number> n=<count>
 * A case whose self-check fails prints "case=<name> error=<text>" and the
 * program exits 1; a hang is cut off by a watchdog (exit 3).
 *
 * Every case checks counts and checksums, so a library that drops or
 * duplicates work cannot look fast.  Functions named measured_* hold exactly
 * the measured work: buildtools/run-bench counts instructions in them with
 * callgrind --toggle-collect=measured_*.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <talloc.h>
#include <tevent.h>

#include "bench_util.h"
#include "pp_ring.h"

/* ------------------------------------------------------------------ */
/* helpers */

static struct tevent_context *new_ev(const char *backend)
{
	struct tevent_context *ev = backend ?
		tevent_context_init_byname(NULL, backend) :
		tevent_context_init(NULL);
	if (ev == NULL) {
		fail("tevent_context_init(%s) failed", backend ? backend : "default");
	}
	return ev;
}

static void flag_timer_handler(struct tevent_context *ev,
			       struct tevent_timer *te, struct timeval t,
			       void *p)
{
	(void)ev; (void)te; (void)t;
	*(bool *)p = true;
}

static int print_tevent_lib(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	int *found = data;
	const char *name = info->dlpi_name;
	if (name != NULL && strstr(name, "libtevent.so") != NULL) {
		char real[PATH_MAX];
		if (realpath(name, real) == NULL) {
			snprintf(real, sizeof(real), "%s", name);
		}
		printf("library=%s\n", real);
		*found = 1;
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* cross-thread: thread proxy and threaded context */

/*
 * Producers stay at most WINDOW messages ahead of the consumer, so the
 * memory in flight stays bounded whichever side is faster.
 */
#define WINDOW 16384
#define MAX_PRODUCERS 8

struct producer {
	_Atomic uint64_t delivered;	/* written by the consumer only */
	char pad1[64 - sizeof(uint64_t)];
	pthread_t thread;
	int id;
	uint64_t n;
	struct tevent_thread_proxy *tp;
	struct tevent_threaded_context *tctx;
	void (*send)(struct producer *p, uint64_t seq);	/* one message */
	char pad2[64];
};

struct xthread {
	struct producer prod[MAX_PRODUCERS];
	int nprod;
	_Atomic int go;
	uint64_t received;
	uint64_t sum;
	uint64_t seq_errors;
};

/* Private data of a proxy message: talloc'd, owned by the library after
 * tevent_thread_proxy_schedule(). */
struct msg {
	uint32_t producer;
	uint32_t seq;
};

static struct xthread *g_x;

static void consumer_account(struct xthread *x, uint32_t p, uint32_t seq)
{
	if (p >= (uint32_t)x->nprod) {
		x->seq_errors++;
		return;
	}
	x->received++;
	x->sum += seq;
	uint64_t d = atomic_load_explicit(&x->prod[p].delivered,
					  memory_order_relaxed);
	atomic_store_explicit(&x->prod[p].delivered, d + 1,
			      memory_order_relaxed);
}

static void wait_window(struct producer *p, uint64_t sent)
{
	if ((sent & 255) != 0) {
		return;
	}
	while (sent - atomic_load_explicit(&p->delivered,
					   memory_order_relaxed) > WINDOW) {
		sched_yield();
	}
}

static void proxy_handler(struct tevent_context *ev, struct tevent_immediate *im,
			  void *private_ptr)
{
	(void)ev;
	(void)im;
	struct msg *m = private_ptr;
	if (m == NULL) {
		g_x->seq_errors++;
		return;
	}
	/* m belongs to the library, which frees it with the immediate. */
	consumer_account(g_x, m->producer, m->seq);
}

static void proxy_send(struct producer *p, uint64_t i)
{
	struct tevent_immediate *im = tevent_create_immediate(NULL);
	struct msg *m = talloc(NULL, struct msg);
	if (im == NULL || m == NULL) {
		abort();
	}
	m->producer = p->id;
	m->seq = (uint32_t)i;
	tevent_thread_proxy_schedule(p->tp, &im, proxy_handler, &m);
	if (im != NULL || m != NULL) {
		abort();	/* ownership must have moved */
	}
}

static void threaded_handler(struct tevent_context *ev,
			     struct tevent_immediate *im, void *private_ptr)
{
	(void)ev;
	uintptr_t v = (uintptr_t)private_ptr;
	consumer_account(g_x, (uint32_t)(v >> 32), (uint32_t)v);
	/* Freed inside its own handler: the library defers it. */
	talloc_free(im);
}

static void threaded_send(struct producer *p, uint64_t i)
{
	/*
	 * A fresh immediate per message on the NULL context: re-using one as
	 * soon as its handler signals would race with the loop, which still
	 * touches it after the handler returns.
	 */
	struct tevent_immediate *im = tevent_create_immediate(NULL);
	if (im == NULL) {
		abort();
	}
	uintptr_t v = ((uintptr_t)p->id << 32) | (uint32_t)i;
	tevent_threaded_schedule_immediate(p->tctx, im, threaded_handler,
					   (void *)v);
}

/* Producer thread: waits for the start signal, then sends n messages with
 * send(), staying within WINDOW of the consumer. */
static void *producer_main(void *arg)
{
	struct producer *p = arg;
	while (!atomic_load(&g_x->go)) {
		sched_yield();
	}
	for (uint64_t i = 0; i < p->n; i++) {
		wait_window(p, i);
		p->send(p, i);
	}
	return NULL;
}

static void run_xthread(int nprod, uint64_t total, bool threaded)
{
	struct tevent_context *ev = new_ev(NULL);
	struct xthread *x = calloc(1, sizeof(*x));
	g_x = x;
	x->nprod = nprod;
	struct tevent_thread_proxy *tp = NULL;
	struct tevent_threaded_context *tctx = NULL;
	if (threaded) {
		tctx = tevent_threaded_context_create(ev, ev);
		if (tctx == NULL) {
			fail("tevent_threaded_context_create failed");
		}
	} else {
		tp = tevent_thread_proxy_create(ev);
		if (tp == NULL) {
			fail("tevent_thread_proxy_create failed");
		}
	}
	uint64_t expect_sum = 0;
	for (int i = 0; i < nprod; i++) {
		struct producer *p = &x->prod[i];
		p->id = i;
		p->n = total / nprod;
		p->tp = tp;
		p->tctx = tctx;
		expect_sum += p->n * (p->n - 1) / 2;
		p->send = threaded ? threaded_send : proxy_send;
		if (pthread_create(&p->thread, NULL, producer_main, p) != 0) {
			fail("pthread_create failed");
		}
	}
	uint64_t n = (total / nprod) * nprod;

	double t0 = now_s();
	atomic_store(&x->go, 1);
	while (x->received < n) {
		if (tevent_loop_once(ev) != 0) {
			fail("tevent_loop_once failed: %s", strerror(errno));
		}
	}
	double t1 = now_s();

	for (int i = 0; i < nprod; i++) {
		pthread_join(x->prod[i].thread, NULL);
	}
	/* Anything beyond n would be a duplicate: give it 10 ms to show. */
	bool settled = false;
	if (tevent_add_timer(ev, ev, tevent_timeval_current_ofs(0, 10000),
			     flag_timer_handler, &settled) == NULL) {
		fail("tevent_add_timer failed");
	}
	while (!settled) {
		tevent_loop_once(ev);
	}
	if (x->received != n || x->sum != expect_sum || x->seq_errors != 0) {
		fail("received %llu of %llu, checksum %llu (want %llu), %llu bad",
		     (unsigned long long)x->received, (unsigned long long)n,
		     (unsigned long long)x->sum,
		     (unsigned long long)expect_sum,
		     (unsigned long long)x->seq_errors);
	}
	emit("throughput", "ops_per_s", n / (t1 - t0), n);
	talloc_free(tctx);
	talloc_free(tp);
	talloc_free(ev);
	free(x);
}

__attribute__((noinline)) static void measured_proxy_1p(void)
{
	run_xthread(1, scaled(400000), false);
}

__attribute__((noinline)) static void measured_proxy_4p(void)
{
	run_xthread(4, scaled(400000), false);
}

__attribute__((noinline)) static void measured_threaded_4p(void)
{
	run_xthread(4, scaled(400000), true);
}

/* ------------------------------------------------------------------ */
/* roundtrip: request/reply between two loops in two threads */

struct rt_side {
	struct tevent_context *ev;
	struct tevent_thread_proxy *to_me;	/* proxy into this side's loop */
	struct rt_side *peer;
	uint64_t count;
	bool stop;
};

static struct rt_side rt_a, rt_b;
static uint64_t rt_n;

static void rt_send(struct rt_side *to, tevent_immediate_handler_t h)
{
	struct tevent_immediate *im = tevent_create_immediate(NULL);
	if (im == NULL) {
		abort();
	}
	tevent_thread_proxy_schedule(to->to_me, &im, h, NULL);
}

static void rt_on_request(struct tevent_context *ev, struct tevent_immediate *im,
			  void *pvt);

static void rt_on_reply(struct tevent_context *ev, struct tevent_immediate *im,
			void *pvt)
{
	(void)ev;
	(void)im;
	(void)pvt;
	rt_a.count++;
	if (rt_a.count < rt_n) {
		rt_send(&rt_b, rt_on_request);
	}
}

static void rt_on_request(struct tevent_context *ev, struct tevent_immediate *im,
			  void *pvt)
{
	(void)ev;
	(void)im;
	(void)pvt;
	rt_b.count++;
	rt_send(&rt_a, rt_on_reply);
}

static void rt_on_stop(struct tevent_context *ev, struct tevent_immediate *im,
		       void *pvt)
{
	(void)ev;
	(void)im;
	(void)pvt;
	rt_b.stop = true;
}

static void *rt_thread(void *arg)
{
	(void)arg;
	while (!rt_b.stop) {
		if (tevent_loop_once(rt_b.ev) != 0) {
			abort();
		}
	}
	return NULL;
}

__attribute__((noinline)) static void measured_roundtrip(void)
{
	rt_n = scaled(30000);
	rt_a.ev = new_ev(NULL);
	rt_b.ev = new_ev(NULL);
	rt_a.to_me = tevent_thread_proxy_create(rt_a.ev);
	rt_b.to_me = tevent_thread_proxy_create(rt_b.ev);
	if (rt_a.to_me == NULL || rt_b.to_me == NULL) {
		fail("tevent_thread_proxy_create failed");
	}
	pthread_t thr;
	if (pthread_create(&thr, NULL, rt_thread, NULL) != 0) {
		fail("pthread_create failed");
	}

	double t0 = now_s();
	rt_send(&rt_b, rt_on_request);
	while (rt_a.count < rt_n) {
		if (tevent_loop_once(rt_a.ev) != 0) {
			fail("tevent_loop_once failed");
		}
	}
	double t1 = now_s();

	rt_send(&rt_b, rt_on_stop);
	pthread_join(thr, NULL);
	if (rt_a.count != rt_n || rt_b.count != rt_n) {
		fail("replies %llu, requests %llu, want %llu",
		     (unsigned long long)rt_a.count,
		     (unsigned long long)rt_b.count, (unsigned long long)rt_n);
	}
	emit("roundtrip", "seconds", (t1 - t0) / rt_n, rt_n);
	talloc_free(rt_a.to_me);
	talloc_free(rt_b.to_me);
	talloc_free(rt_b.ev);
	talloc_free(rt_a.ev);
}

/* ------------------------------------------------------------------ */
/* queue: requests through one tevent_queue */

struct q_state {
	uint64_t idx;
};

struct q_bench {
	uint64_t done;
	uint64_t triggered;
	uint64_t sum;
};

static void q_trigger(struct tevent_req *req, void *private_data)
{
	struct q_bench *qb = private_data;
	qb->triggered++;
	tevent_req_done(req);
}

static void q_done(struct tevent_req *req)
{
	struct q_bench *qb = tevent_req_callback_data_void(req);
	struct q_state *st = tevent_req_data(req, struct q_state);
	enum tevent_req_state state;
	uint64_t err;
	/* is_error leaves state alone for a request that is done */
	if (!tevent_req_is_in_progress(req) &&
	    !tevent_req_is_error(req, &state, &err)) {
		qb->sum += st->idx;
	}
	qb->done++;
	/* Freeing the request removes its queue entry and starts the next. */
	talloc_free(req);
}

__attribute__((noinline)) static void measured_queue(void)
{
	const uint64_t n = scaled(1000000);
	const uint64_t batch = 100;
	struct tevent_context *ev = new_ev(NULL);
	struct tevent_queue *q = tevent_queue_create(ev, "bench");
	TALLOC_CTX *mem = talloc_new(NULL);
	struct q_bench qb = {0};
	if (q == NULL || mem == NULL) {
		fail("tevent_queue_create failed");
	}

	double t0 = now_s();
	uint64_t added = 0;
	while (added < n) {
		uint64_t b = n - added < batch ? n - added : batch;
		for (uint64_t i = 0; i < b; i++) {
			struct q_state *st;
			struct tevent_req *req = tevent_req_create(mem, &st,
								   struct q_state);
			if (req == NULL) {
				fail("tevent_req_create failed");
			}
			st->idx = added++;
			tevent_req_set_callback(req, q_done, &qb);
			if (!tevent_queue_add(q, ev, req, q_trigger, &qb)) {
				fail("tevent_queue_add failed");
			}
		}
		while (qb.done < added) {
			if (tevent_loop_once(ev) != 0) {
				fail("tevent_loop_once failed");
			}
		}
	}
	double t1 = now_s();

	if (qb.done != n || qb.triggered != n || qb.sum != n * (n - 1) / 2 ||
	    tevent_queue_length(q) != 0) {
		fail("done %llu triggered %llu of %llu, checksum mismatch or queue not empty",
		     (unsigned long long)qb.done,
		     (unsigned long long)qb.triggered, (unsigned long long)n);
	}
	emit("requests", "ops_per_s", n / (t1 - t0), n);
	talloc_free(mem);
	talloc_free(ev);
}

/* ------------------------------------------------------------------ */
/* timers: random deadlines within a window */

struct tm_bench {
	struct timeval *deadline;
	struct timeval last;
	uint64_t fired;
	uint64_t n;
	uint64_t sum;
	uint64_t early;
	uint64_t out_of_order;
	double t_last;
};

static struct tm_bench g_tm;

static void tm_handler(struct tevent_context *ev, struct tevent_timer *te,
		       struct timeval current_time, void *private_data)
{
	(void)ev;
	(void)te;
	uintptr_t idx = (uintptr_t)private_data;
	const struct timeval *d = &g_tm.deadline[idx];
	if (tevent_timeval_compare(&current_time, d) < 0) {
		g_tm.early++;
	}
	if (tevent_timeval_compare(d, &g_tm.last) < 0) {
		g_tm.out_of_order++;
	}
	g_tm.last = *d;
	g_tm.sum += idx;
	if (++g_tm.fired == g_tm.n) {
		g_tm.t_last = now_s();
	}
}

/* With all_due, every deadline has passed before the first is added:
 * nothing waits, and "fire" is the pure cost of taking the earliest. */
static void run_timers(uint64_t n, uint32_t spread_us, bool all_due)
{
	struct tevent_context *ev = new_ev(NULL);
	uint32_t *offset = malloc(n * sizeof(*offset));
	memset(&g_tm, 0, sizeof(g_tm));
	g_tm.deadline = malloc(n * sizeof(*g_tm.deadline));
	g_tm.n = n;
	if (offset == NULL || g_tm.deadline == NULL) {
		fail("out of memory");
	}
	for (uint64_t i = 0; i < n; i++) {
		offset[i] = (uint32_t)(rng_next() % spread_us);
	}

	double t0 = now_s();
	struct timeval base = tevent_timeval_current();
	if (all_due) {
		base.tv_sec -= 1 + spread_us / 1000000;
	}
	for (uint64_t i = 0; i < n; i++) {
		g_tm.deadline[i] = tevent_timeval_add(&base, 0, offset[i]);
		if (tevent_add_timer(ev, ev, g_tm.deadline[i], tm_handler,
				     (void *)(uintptr_t)i) == NULL) {
			fail("tevent_add_timer failed");
		}
	}
	double t1 = now_s();
	while (g_tm.fired < n) {
		if (tevent_loop_once(ev) != 0) {
			fail("tevent_loop_once failed");
		}
	}

	if (g_tm.fired != n || g_tm.sum != n * (n - 1) / 2 || g_tm.early != 0 ||
	    g_tm.out_of_order != 0) {
		fail("fired %llu of %llu, %llu early, %llu out of order, checksum %s",
		     (unsigned long long)g_tm.fired, (unsigned long long)n,
		     (unsigned long long)g_tm.early,
		     (unsigned long long)g_tm.out_of_order,
		     g_tm.sum == n * (n - 1) / 2 ? "ok" : "bad");
	}
	emit("insert", "seconds", t1 - t0, n);
	if (all_due) {
		emit("fire", "seconds", g_tm.t_last - t1, n);
	} else {
		emit("total", "seconds", g_tm.t_last - t0, n);
		/* Info: how long after the last deadline the last timer ran. */
		emit("late", "seconds", g_tm.t_last - t0 - spread_us * 1e-6,
		     n);
	}
	free(offset);
	free(g_tm.deadline);
	talloc_free(ev);
}

__attribute__((noinline)) static void measured_timers_20k(void)
{
	run_timers(scaled(20000), 50000, false);
}

__attribute__((noinline)) static void measured_timers_200k(void)
{
	run_timers(scaled(200000), 300000, false);
}

__attribute__((noinline)) static void measured_timers_due(void)
{
	run_timers(scaled(200000), 300000, true);
}

/* timeouts_1k: the common shape of request timeouts.  1,000 timers are
 * outstanding, all with the same timeout from "now", so each new one has
 * the latest deadline; a request that finishes frees its timer, the
 * oldest one here.  An operation is one free and one add; no timer fires.
 * timeouts_any: the same, but requests finish in random order, so the
 * freed timer is any of the 1,000. */

static void never_fires(struct tevent_context *ev, struct tevent_timer *te,
			struct timeval t, void *p)
{
	(void)ev; (void)te; (void)t; (void)p;
	fail("a timeout fired");
}

static void run_timeouts(bool oldest_first)
{
	enum { OUTSTANDING = 1000 };
	const uint64_t n = scaled(1000000);
	struct tevent_context *ev = new_ev(NULL);
	struct tevent_timer *ring[OUTSTANDING];
	for (int i = 0; i < OUTSTANDING; i++) {
		ring[i] = tevent_add_timer(ev, ev,
					   tevent_timeval_current_ofs(3600, 0),
					   never_fires, NULL);
		if (ring[i] == NULL) {
			fail("tevent_add_timer failed");
		}
	}

	double t0 = now_s();
	for (uint64_t k = 0; k < n; k++) {
		int i = oldest_first ? (int)(k % OUTSTANDING)
				     : (int)(rng_next() % OUTSTANDING);
		talloc_free(ring[i]);
		ring[i] = tevent_add_timer(ev, ev,
					   tevent_timeval_current_ofs(3600, 0),
					   never_fires, NULL);
		if (ring[i] == NULL) {
			fail("tevent_add_timer failed");
		}
	}
	double t1 = now_s();

	emit("timeouts", "ops_per_s", n / (t1 - t0), n);
	talloc_free(ev);
}

__attribute__((noinline)) static void measured_timeouts_1k(void)
{
	run_timeouts(true);
}

__attribute__((noinline)) static void measured_timeouts_any(void)
{
	run_timeouts(false);
}

/* ------------------------------------------------------------------ */
/* immediates: each handler re-schedules its immediate until n ran */

struct im_bench {
	uint64_t ran;
	uint64_t scheduled;
	uint64_t n;
	uint64_t sum;
};

static void im_handler(struct tevent_context *ev, struct tevent_immediate *im,
		       void *private_data)
{
	struct im_bench *b = private_data;
	b->sum += b->ran;
	b->ran++;
	if (b->scheduled < b->n) {
		b->scheduled++;
		tevent_schedule_immediate(im, ev, im_handler, b);
	}
}

__attribute__((noinline)) static void measured_immediates(void)
{
	const uint64_t n = scaled(3000000);
	const int width = 64;
	struct tevent_context *ev = new_ev(NULL);
	struct im_bench b = {.n = n};

	double t0 = now_s();
	for (int i = 0; i < width && b.scheduled < n; i++) {
		struct tevent_immediate *im = tevent_create_immediate(ev);
		if (im == NULL) {
			fail("tevent_create_immediate failed");
		}
		b.scheduled++;
		tevent_schedule_immediate(im, ev, im_handler, &b);
	}
	while (b.ran < n) {
		if (tevent_loop_once(ev) != 0) {
			fail("tevent_loop_once failed");
		}
	}
	double t1 = now_s();

	if (b.ran != n || b.sum != n * (n - 1) / 2) {
		fail("ran %llu of %llu", (unsigned long long)b.ran,
		     (unsigned long long)n);
	}
	emit("immediates", "ops_per_s", n / (t1 - t0), n);
	talloc_free(ev);
}

/* ------------------------------------------------------------------ */
/* fd_pingpong: tokens travel around a ring of socketpairs (epoll); the
 * workload is in pp_ring.h */

struct pp_pair {
	struct pp_ring *ring;
	int idx;
};

static void pp_handler(struct tevent_context *ev, struct tevent_fd *fde,
		       uint16_t flags, void *private_data)
{
	(void)ev;
	(void)fde;
	struct pp_pair *pp = private_data;
	if (!(flags & TEVENT_FD_READ)) {
		pp->ring->errors++;
		return;
	}
	pp_ring_hop(pp->ring, pp->idx);
}

static void run_pp_ring(tevent_fd_handler_t handler);

__attribute__((noinline)) static void measured_fd_pingpong(void)
{
	run_pp_ring(pp_handler);
}

/* fd_rearm: the same ring, but each handler disarms its fd and arms it
 * again around the hop, as a tstream reader does between two reads (the
 * finished read's destructor clears TEVENT_FD_READ, the next read sets it
 * once more). */

static void pp_rearm_handler(struct tevent_context *ev, struct tevent_fd *fde,
			     uint16_t flags, void *private_data)
{
	tevent_fd_set_flags(fde, 0);
	pp_handler(ev, fde, flags, private_data);
	tevent_fd_set_flags(fde, TEVENT_FD_READ);
}

static void run_pp_ring(tevent_fd_handler_t handler)
{
	const uint64_t n = scaled(200000);
	struct tevent_context *ev = new_ev("epoll");
	struct pp_ring ring;
	struct pp_pair pair[PP_PAIRS];
	pp_ring_open(&ring, n);
	for (int i = 0; i < PP_PAIRS; i++) {
		pair[i] = (struct pp_pair){&ring, i};
		if (tevent_add_fd(ev, ev, ring.fds[i][1], TEVENT_FD_READ,
				  handler, &pair[i]) == NULL) {
			fail("tevent_add_fd failed");
		}
	}

	double t0 = now_s();
	while (ring.events < n) {
		if (tevent_loop_once(ev) != 0) {
			fail("tevent_loop_once failed");
		}
	}
	double t1 = now_s();

	talloc_free(ev);
	pp_ring_check_close(&ring);
	emit("events", "ops_per_s", n / (t1 - t0), n);
}

__attribute__((noinline)) static void measured_fd_rearm(void)
{
	run_pp_ring(pp_rearm_handler);
}

/* ------------------------------------------------------------------ */
/* req_cycle: tevent_req create, callback, done, free */

struct rc_state {
	uint64_t v;
};

struct rc_bench {
	uint64_t done;
	uint64_t sum;
};

static void rc_done(struct tevent_req *req)
{
	struct rc_bench *b = tevent_req_callback_data_void(req);
	struct rc_state *st = tevent_req_data(req, struct rc_state);
	b->done++;
	b->sum += st->v;
	talloc_free(req);
}

__attribute__((noinline)) static void measured_req_cycle(void)
{
	const uint64_t n = scaled(2500000);
	TALLOC_CTX *mem = talloc_new(NULL);
	struct rc_bench b = {0};

	double t0 = now_s();
	for (uint64_t i = 0; i < n; i++) {
		struct rc_state *st;
		struct tevent_req *req = tevent_req_create(mem, &st,
							   struct rc_state);
		if (req == NULL) {
			fail("tevent_req_create failed");
		}
		st->v = i;
		tevent_req_set_callback(req, rc_done, &b);
		tevent_req_done(req);
	}
	double t1 = now_s();

	if (b.done != n || b.sum != n * (n - 1) / 2) {
		fail("done %llu of %llu", (unsigned long long)b.done,
		     (unsigned long long)n);
	}
	emit("requests", "ops_per_s", n / (t1 - t0), n);
	talloc_free(mem);
}

/* ------------------------------------------------------------------ */
/* memory: heap bytes per live object (mallinfo2 deltas) */

static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

static void dummy_fd_handler(struct tevent_context *ev, struct tevent_fd *fde,
			     uint16_t flags, void *p)
{
	(void)ev; (void)fde; (void)flags; (void)p;
}

static void dummy_timer_handler(struct tevent_context *ev,
				struct tevent_timer *te, struct timeval t,
				void *p)
{
	(void)ev; (void)te; (void)t; (void)p;
}

static void dummy_im_handler(struct tevent_context *ev,
			     struct tevent_immediate *im, void *p)
{
	(void)ev; (void)im; (void)p;
}

static void dummy_trigger(struct tevent_req *req, void *p)
{
	(void)req; (void)p;
}

struct mem_state {
	uint64_t a, b;
};

__attribute__((noinline)) static void measured_memory(void)
{
	uint64_t n = scaled(10000);

	/* fd events: one eventfd per event, so each is a distinct fd. */
	{
		struct rlimit rl;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n + 64) {
			rl.rlim_cur = rl.rlim_max < n + 64 ? rl.rlim_max : n + 64;
			setrlimit(RLIMIT_NOFILE, &rl);
			getrlimit(RLIMIT_NOFILE, &rl);
		}
		uint64_t nfd = n;
		if (rl.rlim_cur < nfd + 64) {
			nfd = rl.rlim_cur > 128 ? rl.rlim_cur - 64 : 64;
		}
		int *fds = malloc(nfd * sizeof(int));
		for (uint64_t i = 0; i < nfd; i++) {
			fds[i] = eventfd(0, EFD_NONBLOCK);
			if (fds[i] < 0) {
				fail("eventfd failed: %s", strerror(errno));
			}
		}
		struct tevent_context *ev = new_ev("epoll");
		TALLOC_CTX *mem = talloc_new(NULL);
		size_t before = heap_in_use();
		for (uint64_t i = 0; i < nfd; i++) {
			if (tevent_add_fd(ev, mem, fds[i], TEVENT_FD_READ,
					  dummy_fd_handler, NULL) == NULL) {
				fail("tevent_add_fd failed");
			}
		}
		/*
		 * One turn that really waits (until a 1 ms timer), so that a
		 * backend that applies fd changes lazily has done so.
		 */
		bool fired = false;
		if (tevent_add_timer(ev, mem, tevent_timeval_current_ofs(0, 1000),
				     flag_timer_handler, &fired) == NULL) {
			fail("tevent_add_timer failed");
		}
		while (!fired) {
			tevent_loop_once(ev);
		}
		size_t after = heap_in_use();
		emit("fd", "bytes", (double)(after - before) / nfd, nfd);
		talloc_free(mem);
		talloc_free(ev);
		for (uint64_t i = 0; i < nfd; i++) {
			close(fds[i]);
		}
		free(fds);
	}

	/* timers, far in the future, in deadline order */
	{
		struct tevent_context *ev = new_ev(NULL);
		TALLOC_CTX *mem = talloc_new(NULL);
		struct timeval base = tevent_timeval_current_ofs(3600, 0);
		size_t before = heap_in_use();
		for (uint64_t i = 0; i < n; i++) {
			struct timeval tv = tevent_timeval_add(&base, 0, i);
			if (tevent_add_timer(ev, mem, tv, dummy_timer_handler,
					     NULL) == NULL) {
				fail("tevent_add_timer failed");
			}
		}
		size_t after = heap_in_use();
		emit("timer", "bytes", (double)(after - before) / n, n);
		talloc_free(mem);
		talloc_free(ev);
	}

	/* immediates, created and scheduled */
	{
		struct tevent_context *ev = new_ev(NULL);
		TALLOC_CTX *mem = talloc_new(NULL);
		size_t before = heap_in_use();
		for (uint64_t i = 0; i < n; i++) {
			struct tevent_immediate *im = tevent_create_immediate(mem);
			if (im == NULL) {
				fail("tevent_create_immediate failed");
			}
			tevent_schedule_immediate(im, ev, dummy_im_handler, NULL);
		}
		size_t after = heap_in_use();
		emit("immediate", "bytes", (double)(after - before) / n, n);
		talloc_free(mem);
		talloc_free(ev);
	}

	/* requests with a 16-byte state, and queue entries for them */
	{
		struct tevent_context *ev = new_ev(NULL);
		TALLOC_CTX *mem = talloc_new(NULL);
		struct tevent_queue *q = tevent_queue_create(ev, "mem");
		struct tevent_req **reqs = malloc(n * sizeof(*reqs));
		size_t before = heap_in_use();
		for (uint64_t i = 0; i < n; i++) {
			struct mem_state *st;
			reqs[i] = tevent_req_create(mem, &st, struct mem_state);
			if (reqs[i] == NULL) {
				fail("tevent_req_create failed");
			}
		}
		size_t mid = heap_in_use();
		for (uint64_t i = 0; i < n; i++) {
			if (!tevent_queue_add(q, ev, reqs[i], dummy_trigger,
					      NULL)) {
				fail("tevent_queue_add failed");
			}
		}
		size_t after = heap_in_use();
		if (tevent_queue_length(q) != n) {
			fail("queue length %zu, want %llu",
			     tevent_queue_length(q), (unsigned long long)n);
		}
		/*
		 * A request may carry spare room (a talloc pool) that its
		 * queue entry then uses: report the queued request whole, and
		 * the entry as what queueing added on top.
		 */
		emit("request", "bytes", (double)(mid - before) / n, n);
		emit("queue_entry", "bytes", (double)(after - mid) / n, n);
		emit("queued_request", "bytes", (double)(after - before) / n, n);
		talloc_free(mem);
		talloc_free(q);
		talloc_free(ev);
		free(reqs);
	}
}

/* ------------------------------------------------------------------ */

static const struct bench_case cases[] = {
	{"proxy_1p", measured_proxy_1p,
	 "tevent_thread_proxy_schedule, 1 producer thread -> 1 loop"},
	{"proxy_4p", measured_proxy_4p,
	 "tevent_thread_proxy_schedule, 4 producer threads -> 1 loop"},
	{"threaded_4p", measured_threaded_4p,
	 "tevent_threaded_schedule_immediate, 4 producer threads -> 1 loop"},
	{"roundtrip", measured_roundtrip,
	 "request/reply between two loops in two threads over thread proxies"},
	{"queue", measured_queue,
	 "requests through one tevent_queue (create, add, trigger, done, free)"},
	{"timers_20k", measured_timers_20k,
	 "20,000 timers at random deadlines within 50 ms"},
	{"timers_200k", measured_timers_200k,
	 "200,000 timers at random deadlines within 0.3 s"},
	{"timers_due", measured_timers_due,
	 "200,000 timers at random deadlines that have all passed, fired"},
	{"timeouts_1k", measured_timeouts_1k,
	 "1,000 outstanding timeouts: free the oldest, add a new one"},
	{"timeouts_any", measured_timeouts_any,
	 "1,000 outstanding timeouts: free a random one, add a new one"},
	{"immediates", measured_immediates,
	 "64 immediates re-scheduling themselves"},
	{"fd_pingpong", measured_fd_pingpong,
	 "16 bytes travelling around 64 socketpairs, epoll backend"},
	{"fd_rearm", measured_fd_rearm,
	 "fd_pingpong with each handler disarming and re-arming its fd"},
	{"req_cycle", measured_req_cycle,
	 "tevent_req create, set callback, done, free"},
	{"memory", measured_memory,
	 "heap bytes per fd event, timer, immediate, request, queue entry"},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* Which libtevent the loader really gave us: run-bench checks this line. */
static void announce(void)
{
	int found = 0;
	dl_iterate_phdr(print_tevent_lib, &found);
	if (!found) {
		printf("library=unknown\n");
	}
	signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
	return bench_main(argc, argv, "tevent_bench", cases, NCASES, announce);
}

/*
 * uv_bench: libuv reference figures for the like-for-like tevent_bench cases.
 * Linked to libuv only (never to libtevent), same output format:
 *
 *   uv_bench [--case NAME]... [--scale F] [--list]
 *   case=<name> metric=<name> unit=<ops_per_s|seconds> value=<number> n=<count>
 *
 * Cross-thread messages: producers push malloc'd messages onto a mutex-
 * protected list and call uv_async_send(); the loop's async callback drains
 * the list.  That is the usual libuv idiom for what a tevent thread proxy
 * does.  Timers: uv_timer_start() with random timeouts (libuv timers have
 * millisecond resolution).  fd ping-pong: the same ring as tevent_bench
 * (pp_ring.h), a uv_poll_t per watched descriptor.  Case names match
 * tevent_bench's.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "bench_util.h"
#include "pp_ring.h"

#define WINDOW 16384
#define MAX_PRODUCERS 8

/* ------------------------------------------------------------------ */
/* cross-thread messages: locked list + uv_async_t */

struct msg {
	struct msg *next;
	uint32_t producer;
	uint32_t seq;
};

struct producer {
	_Atomic uint64_t delivered;
	char pad1[64 - sizeof(uint64_t)];
	pthread_t thread;
	int id;
	uint64_t n;
	char pad2[64];
};

struct xthread {
	struct producer prod[MAX_PRODUCERS];
	int nprod;
	_Atomic int go;
	pthread_mutex_t lock;
	struct msg *head, **tail;
	uv_async_t async;
	uint64_t received, n, sum, errors;
};

static struct xthread *g_x;

static void on_async(uv_async_t *a)
{
	struct xthread *x = a->data;
	pthread_mutex_lock(&x->lock);
	struct msg *m = x->head;
	x->head = NULL;
	x->tail = &x->head;
	pthread_mutex_unlock(&x->lock);
	while (m != NULL) {
		struct msg *next = m->next;
		if (m->producer >= (uint32_t)x->nprod) {
			x->errors++;
		} else {
			struct producer *p = &x->prod[m->producer];
			x->received++;
			x->sum += m->seq;
			atomic_store_explicit(&p->delivered,
				atomic_load_explicit(&p->delivered,
						     memory_order_relaxed) + 1,
				memory_order_relaxed);
		}
		free(m);
		m = next;
	}
	if (x->received >= x->n) {
		uv_close((uv_handle_t *)&x->async, NULL);
	}
}

static void *producer_main(void *arg)
{
	struct producer *p = arg;
	struct xthread *x = g_x;
	while (!atomic_load(&x->go)) {
		sched_yield();
	}
	for (uint64_t i = 0; i < p->n; i++) {
		if ((i & 255) == 0) {
			while (i - atomic_load_explicit(&p->delivered,
							memory_order_relaxed) >
			       WINDOW) {
				sched_yield();
			}
		}
		struct msg *m = malloc(sizeof(*m));
		if (m == NULL) {
			abort();
		}
		m->next = NULL;
		m->producer = p->id;
		m->seq = (uint32_t)i;
		pthread_mutex_lock(&x->lock);
		*x->tail = m;
		x->tail = &m->next;
		pthread_mutex_unlock(&x->lock);
		uv_async_send(&x->async);
	}
	return NULL;
}

static void run_xthread(int nprod, uint64_t total)
{
	uv_loop_t loop;
	struct xthread *x = calloc(1, sizeof(*x));
	g_x = x;
	uv_loop_init(&loop);
	pthread_mutex_init(&x->lock, NULL);
	x->tail = &x->head;
	x->nprod = nprod;
	x->async.data = x;
	uv_async_init(&loop, &x->async, on_async);
	uint64_t expect_sum = 0;
	for (int i = 0; i < nprod; i++) {
		struct producer *p = &x->prod[i];
		p->id = i;
		p->n = total / nprod;
		expect_sum += p->n * (p->n - 1) / 2;
	}
	x->n = (total / nprod) * nprod;
	for (int i = 0; i < nprod; i++) {
		if (pthread_create(&x->prod[i].thread, NULL, producer_main,
				   &x->prod[i]) != 0) {
			fail("pthread_create failed");
		}
	}

	double t0 = now_s();
	atomic_store(&x->go, 1);
	uv_run(&loop, UV_RUN_DEFAULT);	/* returns once the async is closed */
	double t1 = now_s();

	for (int i = 0; i < nprod; i++) {
		pthread_join(x->prod[i].thread, NULL);
	}
	if (x->received != x->n || x->sum != expect_sum || x->errors != 0) {
		fail("received %llu of %llu, checksum %s",
		     (unsigned long long)x->received,
		     (unsigned long long)x->n,
		     x->sum == expect_sum ? "ok" : "bad");
	}
	emit("throughput", "ops_per_s", x->n / (t1 - t0), x->n);
	uv_loop_close(&loop);
	pthread_mutex_destroy(&x->lock);
	free(x);
}

/* ------------------------------------------------------------------ */
/* timers */

struct tm_bench {
	uint64_t fired, n, sum, early;
	double t0, t_last;
	uint64_t *due_ms;	/* loop time at which each must fire */
};

static struct tm_bench g_tm;

struct tm_timer {
	uv_timer_t t;
	uint64_t idx;
};

static void on_timer(uv_timer_t *t)
{
	struct tm_timer *tt = (struct tm_timer *)t;
	if (uv_now(t->loop) < g_tm.due_ms[tt->idx]) {
		g_tm.early++;
	}
	g_tm.sum += tt->idx;
	if (++g_tm.fired == g_tm.n) {
		g_tm.t_last = now_s();
	}
	uv_close((uv_handle_t *)t, NULL);
}

static void run_timers(uint64_t n, uint32_t spread_us)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct tm_timer *timers = calloc(n, sizeof(*timers));
	uint32_t *offset = malloc(n * sizeof(*offset));
	memset(&g_tm, 0, sizeof(g_tm));
	g_tm.n = n;
	g_tm.due_ms = malloc(n * sizeof(*g_tm.due_ms));
	if (timers == NULL || offset == NULL || g_tm.due_ms == NULL) {
		fail("out of memory");
	}
	for (uint64_t i = 0; i < n; i++) {
		offset[i] = (uint32_t)(rng_next() % spread_us);
	}

	double t0 = now_s();
	uv_update_time(&loop);
	uint64_t base = uv_now(&loop);
	for (uint64_t i = 0; i < n; i++) {
		/* rounded up: never due before tevent_bench's deadline */
		uint64_t ms = (offset[i] + 999) / 1000;
		timers[i].idx = i;
		g_tm.due_ms[i] = base + ms;
		uv_timer_init(&loop, &timers[i].t);
		uv_timer_start(&timers[i].t, on_timer, ms, 0);
	}
	double t1 = now_s();
	uv_run(&loop, UV_RUN_DEFAULT);

	if (g_tm.fired != n || g_tm.sum != n * (n - 1) / 2 || g_tm.early != 0) {
		fail("fired %llu of %llu, %llu early",
		     (unsigned long long)g_tm.fired, (unsigned long long)n,
		     (unsigned long long)g_tm.early);
	}
	emit("insert", "seconds", t1 - t0, n);
	emit("total", "seconds", g_tm.t_last - t0, n);
	emit("late", "seconds", g_tm.t_last - t0 - spread_us * 1e-6, n);
	uv_loop_close(&loop);
	free(timers);
	free(offset);
	free(g_tm.due_ms);
}

/* ------------------------------------------------------------------ */
/* fd_pingpong: the pp_ring.h ring, each read end under a uv_poll_t */

struct pp_poll {
	uv_poll_t poll;
	struct pp_ring *ring;
	int idx;
};

static void on_readable(uv_poll_t *p, int status, int events)
{
	struct pp_poll *pp = (struct pp_poll *)p;
	if (status != 0 || !(events & UV_READABLE)) {
		pp->ring->errors++;
		return;
	}
	/* One uv_run(UV_RUN_ONCE) serves a whole epoll batch: stop at n
	 * exactly; the tokens not moved stay in their pairs. */
	if (pp->ring->events < pp->ring->n) {
		pp_ring_hop(pp->ring, pp->idx);
	}
}

static void case_fd_pingpong(void)
{
	uv_loop_t loop;
	struct pp_ring ring;
	struct pp_poll polls[PP_PAIRS];
	uv_loop_init(&loop);
	pp_ring_open(&ring, scaled(200000));
	for (int i = 0; i < PP_PAIRS; i++) {
		polls[i].ring = &ring;
		polls[i].idx = i;
		if (uv_poll_init(&loop, &polls[i].poll, ring.fds[i][1]) != 0 ||
		    uv_poll_start(&polls[i].poll, UV_READABLE, on_readable) != 0) {
			fail("uv_poll_start failed");
		}
	}

	double t0 = now_s();
	while (ring.events < ring.n) {
		uv_run(&loop, UV_RUN_ONCE);
	}
	double t1 = now_s();

	for (int i = 0; i < PP_PAIRS; i++) {
		uv_close((uv_handle_t *)&polls[i].poll, NULL);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	pp_ring_check_close(&ring);
	emit("events", "ops_per_s", ring.n / (t1 - t0), ring.n);
}

/* ------------------------------------------------------------------ */

static void case_proxy_1p(void) { run_xthread(1, scaled(400000)); }
static void case_proxy_4p(void) { run_xthread(4, scaled(400000)); }
static void case_timers_20k(void) { run_timers(scaled(20000), 50000); }
static void case_timers_200k(void) { run_timers(scaled(200000), 300000); }

static const struct bench_case cases[] = {
	{"proxy_1p", case_proxy_1p, "uv_async + locked list, 1 producer thread"},
	{"proxy_4p", case_proxy_4p, "uv_async + locked list, 4 producer threads"},
	{"timers_20k", case_timers_20k,
	 "20,000 uv timers at random timeouts within 50 ms"},
	{"timers_200k", case_timers_200k,
	 "200,000 uv timers at random timeouts within 0.3 s"},
	{"fd_pingpong", case_fd_pingpong,
	 "tokens around a ring of 64 socketpairs, uv_poll on each"},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static void announce(void)
{
	printf("library=%s\n", uv_version_string());
}

int main(int argc, char **argv)
{
	return bench_main(argc, argv, "uv_bench", cases, NCASES, announce);
}

/*
 * threadpool_bench.c - libtevent_threadpool against the alternatives.
 *
 * For 1, 2 and 4 pool threads:
 *   latency     one job at a time: submit, wait on the loop for its
 *               completion, repeat; mean, median and 99th percentile
 *   throughput  many jobs with up to WINDOW in flight; jobs per second,
 *               for an empty job and for a job doing ~WORK_BYTES of hashing
 * Contenders:
 *   inline      the same work called directly on the loop thread
 *   plain       a mutex+condvar pool whose threads wake the loop through
 *               a pipe, one write per job
 *   tp-job      tevent_threadpool_job_send/_recv (a tevent_req per job)
 *   tp-task     tevent_threadpool_enqueue, reaped in the end notice
 *
 * usage: threadpool_bench [--quick] [--only CONTENDER]
 * Built against Debian's tevent.h when present; LD_LIBRARY_PATH picks the
 * libtevent it runs on.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <talloc.h>
#include <tevent.h>

#include "tevent_threadpool.h"

#define WINDOW 1024
#define WORK_BYTES 4096

static int latency_n = 20000;
static int throughput_n = 200000;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the work ---------------------------------------------------------- */

static unsigned char work_input[WORK_BYTES];

struct job {
	bool heavy;
	uint64_t result;
};

static void do_work(void *private_data)
{
	struct job *j = private_data;
	uint64_t h = 1469598103934665603ull;
	if (j->heavy) {
		for (size_t i = 0; i < WORK_BYTES; i++) {
			h = (h ^ work_input[i]) * 1099511628211ull;
		}
	}
	j->result = h;
}

/* ---- driver ------------------------------------------------------------- */

struct run;

struct contender {
	const char *name;
	bool threaded;
	void *(*setup)(struct tevent_context *ev, unsigned threads);
	void (*teardown)(void *pool);
	/* Starts job j; calls run_done(r) on the loop when it completed. */
	void (*submit)(struct run *r, struct job *j);
};

struct run {
	struct tevent_context *ev;
	const struct contender *c;
	void *pool;
	struct job *jobs;
	int total;
	int window;
	int submitted;
	int completed;
	bool heavy;
};

static void run_done(struct run *r)
{
	r->completed++;
	while (r->submitted < r->total &&
	       r->submitted - r->completed < r->window) {
		struct job *j = &r->jobs[r->submitted];
		j->heavy = r->heavy;
		r->submitted++;
		r->c->submit(r, j);
	}
}

static void run_start(struct run *r)
{
	r->completed = -1;
	run_done(r);
	while (r->completed < r->total) {
		if (tevent_loop_once(r->ev) != 0) {
			perror("tevent_loop_once");
			exit(1);
		}
	}
}

/* ---- inline --------------------------------------------------------------- */

static void *inline_setup(struct tevent_context *ev, unsigned threads)
{
	(void)ev;
	(void)threads;
	return (void *)1;
}

static void inline_teardown(void *pool)
{
	(void)pool;
}

static bool inline_busy;

static void inline_submit(struct run *r, struct job *j)
{
	do_work(j);
	/* Complete without recursing through run_done. */
	if (inline_busy) {
		r->completed++;
		return;
	}
	inline_busy = true;
	run_done(r);
	inline_busy = false;
}

/* ---- plain pool: mutex + condvar, a pipe write per job ------------------- */

struct pitem {
	struct pitem *next;
	struct job *job;
	struct run *run;
};

struct plain {
	pthread_mutex_t m;
	pthread_cond_t c;
	struct pitem *todo, **todo_tail;
	struct pitem *done, **done_tail;
	struct pitem *free_items;
	bool stop;
	int pipe_fd[2];
	pthread_t threads[4];
	unsigned nthreads;
	struct tevent_fd *fde;
};

static void *plain_worker(void *arg)
{
	struct plain *p = arg;
	pthread_mutex_lock(&p->m);
	for (;;) {
		while (p->todo == NULL && !p->stop) {
			pthread_cond_wait(&p->c, &p->m);
		}
		if (p->todo == NULL) {
			break;
		}
		struct pitem *it = p->todo;
		p->todo = it->next;
		if (p->todo == NULL) {
			p->todo_tail = &p->todo;
		}
		pthread_mutex_unlock(&p->m);
		do_work(it->job);
		pthread_mutex_lock(&p->m);
		it->next = NULL;
		*p->done_tail = it;
		p->done_tail = &it->next;
		pthread_mutex_unlock(&p->m);
		char c = 0;
		while (write(p->pipe_fd[1], &c, 1) < 0 && errno == EINTR) {
		}
		pthread_mutex_lock(&p->m);
	}
	pthread_mutex_unlock(&p->m);
	return NULL;
}

static void plain_readable(struct tevent_context *ev, struct tevent_fd *fde,
			   uint16_t flags, void *private_data)
{
	struct plain *p = private_data;
	char buf[64];
	(void)ev;
	(void)fde;
	(void)flags;
	ssize_t n = read(p->pipe_fd[0], buf, sizeof(buf));
	for (ssize_t i = 0; i < n; i++) {
		pthread_mutex_lock(&p->m);
		struct pitem *it = p->done;
		p->done = it->next;
		if (p->done == NULL) {
			p->done_tail = &p->done;
		}
		pthread_mutex_unlock(&p->m);
		struct run *r = it->run;
		it->next = p->free_items;
		p->free_items = it;
		run_done(r);
	}
}

static void *plain_setup(struct tevent_context *ev, unsigned threads)
{
	struct plain *p = calloc(1, sizeof(*p));
	pthread_mutex_init(&p->m, NULL);
	pthread_cond_init(&p->c, NULL);
	p->todo_tail = &p->todo;
	p->done_tail = &p->done;
	if (pipe(p->pipe_fd) != 0) {
		perror("pipe");
		exit(1);
	}
	fcntl(p->pipe_fd[0], F_SETFL, O_NONBLOCK);
	p->fde = tevent_add_fd(ev, ev, p->pipe_fd[0], TEVENT_FD_READ,
			       plain_readable, p);
	p->nthreads = threads;
	for (unsigned i = 0; i < threads; i++) {
		pthread_create(&p->threads[i], NULL, plain_worker, p);
	}
	return p;
}

static void plain_teardown(void *pool)
{
	struct plain *p = pool;
	pthread_mutex_lock(&p->m);
	p->stop = true;
	pthread_cond_broadcast(&p->c);
	pthread_mutex_unlock(&p->m);
	for (unsigned i = 0; i < p->nthreads; i++) {
		pthread_join(p->threads[i], NULL);
	}
	talloc_free(p->fde);
	close(p->pipe_fd[0]);
	close(p->pipe_fd[1]);
	while (p->free_items != NULL) {
		struct pitem *it = p->free_items;
		p->free_items = it->next;
		free(it);
	}
	pthread_cond_destroy(&p->c);
	pthread_mutex_destroy(&p->m);
	free(p);
}

static void plain_submit(struct run *r, struct job *j)
{
	struct plain *p = r->pool;
	struct pitem *it = p->free_items;
	if (it != NULL) {
		p->free_items = it->next;
	} else {
		it = malloc(sizeof(*it));
	}
	it->job = j;
	it->run = r;
	it->next = NULL;
	pthread_mutex_lock(&p->m);
	*p->todo_tail = it;
	p->todo_tail = &it->next;
	pthread_cond_signal(&p->c);
	pthread_mutex_unlock(&p->m);
}

/* ---- tevent_threadpool: jobs ---------------------------------------------- */

static struct tevent_context *tp_ev;

static void *tp_setup(struct tevent_context *ev, unsigned threads)
{
	tp_ev = ev;
	return tevent_threadpool_create(NULL, threads, 2 * WINDOW, "bench");
}

static void tp_teardown(void *pool)
{
	talloc_free(pool);
}

static void tp_job_done(struct tevent_req *req)
{
	struct run *r = tevent_req_callback_data_void(req);
	if (tevent_threadpool_job_recv(req) != 0) {
		fprintf(stderr, "job failed\n");
		exit(1);
	}
	talloc_free(req);
	run_done(r);
}

static void tp_job_submit(struct run *r, struct job *j)
{
	struct tevent_req *req = tevent_threadpool_job_send(r->ev, r->ev, r->pool,
							    do_work, j);
	if (req == NULL) {
		exit(1);
	}
	tevent_req_set_callback(req, tp_job_done, r);
}

/* ---- tevent_threadpool: raw tasks ----------------------------------------- */

static struct run *task_run;

static int task_fn(void *user, enum tevent_threadpool_task_state state)
{
	(void)state;
	do_work(user);
	return TEVENT_TP_RETURN_FINISHED;
}

static void task_end(struct tevent_threadpool_task *task, void *user,
		     enum tevent_threadpool_task_state state)
{
	(void)user;
	(void)state;
	tevent_threadpool_task_status(task);
	run_done(task_run);
}

static void tp_task_submit(struct run *r, struct job *j)
{
	struct tevent_threadpool_task_args args = {
		.ev = r->ev,
		.owner = r->ev,
		.user = j,
		.task = task_fn,
		.sync = task_end,
	};
	task_run = r;
	if (tevent_threadpool_enqueue(r->pool, &args, "t") == NULL) {
		perror("tevent_threadpool_enqueue");
		exit(1);
	}
}

/* ---------------------------------------------------------------------------- */

static const struct contender contenders[] = {
	{ "inline", false, inline_setup, inline_teardown, inline_submit },
	{ "plain", true, plain_setup, plain_teardown, plain_submit },
	{ "tp-job", true, tp_setup, tp_teardown, tp_job_submit },
	{ "tp-task", true, tp_setup, tp_teardown, tp_task_submit },
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Latency: one job in flight; each round trip timed on its own. */
static void latency(struct tevent_context *ev, const struct contender *c,
		    unsigned threads)
{
	struct job job;
	struct run r = { .ev = ev, .c = c, .jobs = &job, .total = 1,
			 .window = 1 };
	uint64_t *t = malloc(sizeof(*t) * (size_t)latency_n);
	r.pool = c->setup(ev, threads);

	for (int i = 0; i < latency_n + 100; i++) {
		r.submitted = 0;
		uint64_t t0 = now_ns();
		run_start(&r);
		if (i >= 100) {  /* warm-up first */
			t[i - 100] = now_ns() - t0;
		}
	}
	c->teardown(r.pool);
	uint64_t sum = 0;
	for (int i = 0; i < latency_n; i++) {
		sum += t[i];
	}
	qsort(t, (size_t)latency_n, sizeof(*t), cmp_u64);
	printf("%-8s %7u %9.2f %9.2f %9.2f\n", c->name, threads,
	       sum / 1e3 / latency_n, t[latency_n / 2] / 1e3,
	       t[latency_n * 99 / 100] / 1e3);
	free(t);
}

static double throughput(struct tevent_context *ev, const struct contender *c,
			 unsigned threads, bool heavy)
{
	struct job *jobs = calloc((size_t)throughput_n, sizeof(*jobs));
	struct run r = { .ev = ev, .c = c, .jobs = jobs,
			 .total = throughput_n, .window = WINDOW, .heavy = heavy };
	r.pool = c->setup(ev, threads);
	uint64_t t0 = now_ns();
	run_start(&r);
	uint64_t dt = now_ns() - t0;
	c->teardown(r.pool);
	free(jobs);
	return throughput_n / (dt / 1e9);
}

/* How many of the thread counts {1, 2, 4} to run c with: none when --only
 * names another contender, just 1 for one that runs on the loop thread. */
static size_t thread_counts(const struct contender *c, const char *only)
{
	if (only != NULL && strcmp(only, c->name) != 0) {
		return 0;
	}
	return c->threaded ? 3 : 1;
}

int main(int argc, char **argv)
{
	const char *only = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			latency_n = 2000;
			throughput_n = 20000;
		} else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
			only = argv[++i];
		} else {
			fprintf(stderr, "usage: %s [--quick] [--only NAME]\n", argv[0]);
			return 2;
		}
	}
	for (size_t i = 0; i < sizeof(work_input); i++) {
		work_input[i] = (unsigned char)(i * 7);
	}
	struct tevent_context *ev = tevent_context_init(NULL);
	static const unsigned nthreads[] = { 1, 2, 4 };
	const size_t ncont = sizeof(contenders) / sizeof(contenders[0]);

	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	printf("threadpool_bench: %ld CPU(s); latency %d round trips, "
	       "throughput %d jobs (window %d), heavy job = %d bytes FNV-1a\n",
	       cpus, latency_n, throughput_n, WINDOW, WORK_BYTES);

	printf("\nround-trip latency, empty job (microseconds)\n");
	printf("%-8s %7s %9s %9s %9s\n", "", "threads", "mean", "median", "p99");
	for (size_t c = 0; c < ncont; c++) {
		for (size_t t = 0; t < thread_counts(&contenders[c], only); t++) {
			latency(ev, &contenders[c], nthreads[t]);
		}
	}

	printf("\nthroughput (jobs per second)\n");
	printf("%-8s %7s %12s %12s\n", "", "threads", "empty job", "heavy job");
	for (size_t c = 0; c < ncont; c++) {
		for (size_t t = 0; t < thread_counts(&contenders[c], only); t++) {
			double e = throughput(ev, &contenders[c], nthreads[t], false);
			double h = throughput(ev, &contenders[c], nthreads[t], true);
			printf("%-8s %7u %12.0f %12.0f\n", contenders[c].name,
			       nthreads[t], e, h);
		}
	}
	talloc_free(ev);
	return 0;
}

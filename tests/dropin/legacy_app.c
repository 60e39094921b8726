/*
 * A Samba-style program built the way an existing binary was: against
 * Debian's /usr/include/tevent.h (0.14.1) and linked to Debian's
 * libtevent.so.0, with no rpath.  Through that header's macros it calls
 * the pre-0.15 entry points (_tevent_req_create, tevent_req_set_callback,
 * tevent_req_set_cleanup_fn, tevent_queue_add, _tevent_queue_create, ...).
 *
 * tests/test_dropin runs it unchanged against the system library and
 * against ours (LD_LIBRARY_PATH, LD_PRELOAD).  It prints one "result"
 * line per scenario and backend (deterministic: no addresses, no times),
 * then "mapped: PATH" for every libtevent in the process, so the caller
 * can tell which library served it.  Exit status 0 unless a scenario
 * could not run at all.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <talloc.h>
#include <tevent.h>

/* Every scenario appends its observations here, then prints one line. */
static char g_buf[4096];
static size_t g_len;

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;
	int n;

	if (g_len >= sizeof(g_buf) - 1) {
		return;
	}
	va_start(ap, fmt);
	n = vsnprintf(g_buf + g_len, sizeof(g_buf) - g_len, fmt, ap);
	va_end(ap);
	if (n > 0) {
		g_len += (size_t)n;
		if (g_len >= sizeof(g_buf)) {
			g_len = sizeof(g_buf) - 1;
		}
	}
}

static void result(const char *backend, const char *scenario)
{
	printf("result %s %s: %s\n", backend, scenario, g_buf);
	g_len = 0;
	g_buf[0] = '\0';
}

static void die(const char *what)
{
	fprintf(stderr, "legacy_app: %s failed\n", what);
	exit(1);
}

/* Runs the loop until *done, with a turn limit so a broken library ends
 * the program instead of hanging it. */
static void run_until(struct tevent_context *ev, const bool *done)
{
	int turns = 0;

	while (!*done) {
		if (++turns > 10000 || tevent_loop_once(ev) != 0) {
			note(" [loop stopped after %d turns]", turns);
			return;
		}
	}
}

/* ---- fds: an uppercasing echo server on one end of a socketpair ---- */

struct echo {
	int srv, cli;
	struct tevent_fd *srv_fde, *cli_fde;
	char got[64];
	size_t ngot, want;
	bool done;
};

static void echo_srv(struct tevent_context *ev, struct tevent_fd *fde,
		     uint16_t flags, void *pvt)
{
	struct echo *e = pvt;
	char c;

	(void)ev;
	(void)fde;
	if (!(flags & TEVENT_FD_READ) || read(e->srv, &c, 1) != 1) {
		note("srv-bad-read ");
		e->done = true;
		return;
	}
	if (c >= 'a' && c <= 'z') {
		c = (char)(c - 'a' + 'A');
	}
	if (write(e->srv, &c, 1) != 1) {
		note("srv-bad-write ");
	}
}

static void echo_cli(struct tevent_context *ev, struct tevent_fd *fde,
		     uint16_t flags, void *pvt)
{
	struct echo *e = pvt;
	char c;

	(void)ev;
	if (flags & TEVENT_FD_WRITE) {
		/* writable once: send the whole request, then only read */
		if (write(e->cli, "hello, tevent", 13) != 13) {
			note("cli-bad-write ");
		}
		TEVENT_FD_NOT_WRITEABLE(fde);
		note("sent(flags=%u) ", (unsigned)tevent_fd_get_flags(fde));
		return;
	}
	if (read(e->cli, &c, 1) != 1) {
		note("cli-bad-read ");
		e->done = true;
		return;
	}
	e->got[e->ngot++] = c;
	if (e->ngot == e->want) {
		e->got[e->ngot] = '\0';
		note("echo=\"%s\"", e->got);
		e->done = true;
	}
}

static void close_fn(struct tevent_context *ev, struct tevent_fd *fde, int fd,
		     void *pvt)
{
	(void)ev;
	(void)fde;
	(void)pvt;
	close(fd);
	note(" close_fn");
}

static void scenario_fd(struct tevent_context *ev, const char *backend)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct echo *e = talloc_zero(mem, struct echo);
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
		die("socketpair");
	}
	e->srv = sv[0];
	e->cli = sv[1];
	e->want = 13;
	e->srv_fde = tevent_add_fd(ev, e, e->srv, TEVENT_FD_READ, echo_srv, e);
	e->cli_fde = tevent_add_fd(ev, e, e->cli, TEVENT_FD_READ | TEVENT_FD_WRITE,
				   echo_cli, e);
	if (e->srv_fde == NULL || e->cli_fde == NULL) {
		die("tevent_add_fd");
	}
	tevent_fd_set_auto_close(e->srv_fde);
	tevent_fd_set_close_fn(e->cli_fde, close_fn);
	run_until(ev, &e->done);
	talloc_free(mem);
	/* auto_close and close_fn both closed their descriptor */
	note(" closed=%d%d", fcntl(sv[0], F_GETFD) == -1, fcntl(sv[1], F_GETFD) == -1);
	result(backend, "fd");
}

/* ---- timers: deadlines in the past run in deadline order, FIFO among
 * equal ones; tevent_update_timer moves one ---- */

struct tick {
	int id;
	int *count;
};

static void on_timer(struct tevent_context *ev, struct tevent_timer *te,
		     struct timeval now, void *pvt)
{
	struct tick *t = pvt;

	(void)ev;
	(void)te;
	(void)now;
	note("t%d ", t->id);
	(*t->count)++;
}

static void scenario_timer(struct tevent_context *ev, const char *backend)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	static const unsigned secs[] = {30, 10, 20, 10, 5};
	struct tevent_timer *te[5], *far;
	struct tick ticks[5];
	int count = 0, i;
	bool done = false;

	for (i = 0; i < 5; i++) {
		ticks[i].id = i;
		ticks[i].count = &count;
		te[i] = tevent_add_timer(ev, mem, tevent_timeval_set(secs[i], 0),
					 on_timer, &ticks[i]);
		if (te[i] == NULL) {
			die("tevent_add_timer");
		}
	}
	/* t4 (5 s) moves behind the two 10 s timers */
	tevent_update_timer(te[4], tevent_timeval_set(10, 0));
	/* t2 is freed before it runs; a far timer never runs */
	talloc_free(te[2]);
	far = tevent_add_timer(ev, mem, tevent_timeval_current_ofs(3600, 0),
			       on_timer, &ticks[2]);
	while (count < 4 && !done) {
		if (tevent_loop_once(ev) != 0) {
			done = true;
		}
	}
	note("far=%s", far != NULL ? "pending" : "none");
	talloc_free(mem);
	result(backend, "timer");
}

/* ---- immediates ---- */

static void on_imm(struct tevent_context *ev, struct tevent_immediate *im,
		   void *pvt)
{
	int *n = pvt;

	(void)ev;
	(void)im;
	note("i%d ", *n);
}

static void scenario_immediate(struct tevent_context *ev, const char *backend)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_immediate *im[3];
	static int ids[3] = {0, 1, 2};
	int i;

	for (i = 0; i < 3; i++) {
		im[i] = tevent_create_immediate(mem);
		if (im[i] == NULL) {
			die("tevent_create_immediate");
		}
		tevent_schedule_immediate(im[i], ev, on_imm, &ids[i]);
	}
	/* rescheduling moves i0 to the end; i1 is cancelled by freeing */
	tevent_schedule_immediate(im[0], ev, on_imm, &ids[0]);
	talloc_free(im[1]);
	for (i = 0; i < 2; i++) {
		tevent_loop_once(ev);
	}
	talloc_free(mem);
	result(backend, "immediate");
}

/* ---- signals ---- */

struct sigs {
	int usr1_count, usr1_calls;
	int usr2_calls, usr2_signo;
};

static void on_usr1(struct tevent_context *ev, struct tevent_signal *se,
		    int signum, int count, void *info, void *pvt)
{
	struct sigs *s = pvt;

	(void)ev;
	(void)se;
	(void)info;
	(void)signum;
	s->usr1_calls++;
	s->usr1_count += count;
}

static void on_usr2(struct tevent_context *ev, struct tevent_signal *se,
		    int signum, int count, void *info, void *pvt)
{
	struct sigs *s = pvt;
	siginfo_t *si = info;

	(void)ev;
	(void)se;
	(void)signum;
	(void)count;
	s->usr2_calls++;
	s->usr2_signo = si != NULL ? si->si_signo : -1;
}

static void scenario_signal(struct tevent_context *ev, const char *backend)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct sigs s = {0};
	int turns;

	if (tevent_add_signal(ev, mem, SIGUSR1, 0, on_usr1, &s) == NULL ||
	    tevent_add_signal(ev, mem, SIGUSR2, SA_SIGINFO, on_usr2, &s) == NULL) {
		die("tevent_add_signal");
	}
	raise(SIGUSR1);
	raise(SIGUSR1);
	raise(SIGUSR2);
	for (turns = 0; turns < 100 && (s.usr1_count < 2 || s.usr2_calls < 1);
	     turns++) {
		tevent_loop_once(ev);
	}
	note("usr1 count=%d usr2 calls=%d signo_ok=%d", s.usr1_count,
	     s.usr2_calls, s.usr2_signo == SIGUSR2);
	talloc_free(mem);
	result(backend, "signal");
}

/* ---- tevent_req: a sum computed by a chain of sub-requests ---- */

/* add_send: adds a to b after a tevent_wakeup in the past */
struct add_state {
	int a, b, sum;
};

static void add_woke(struct tevent_req *subreq);
static void add_cleanup(struct tevent_req *req, enum tevent_req_state state);

static struct tevent_req *add_send(TALLOC_CTX *mem, struct tevent_context *ev,
				   int a, int b)
{
	struct tevent_req *req, *subreq;
	struct add_state *state;

	req = tevent_req_create(mem, &state, struct add_state);
	if (req == NULL) {
		return NULL;
	}
	state->a = a;
	state->b = b;
	tevent_req_set_cleanup_fn(req, add_cleanup);
	if (b < 0) {
		/* invalid input: fail before returning, the Samba way */
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}
	subreq = tevent_wakeup_send(state, ev, tevent_timeval_set(1, 0));
	if (tevent_req_nomem(subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(subreq, add_woke, req);
	return req;
}

static int g_cleanups;

static void add_cleanup(struct tevent_req *req, enum tevent_req_state state)
{
	(void)req;
	(void)state;
	g_cleanups++;
}

static void add_woke(struct tevent_req *subreq)
{
	struct tevent_req *req = tevent_req_callback_data(subreq, struct tevent_req);
	struct add_state *state = tevent_req_data(req, struct add_state);
	bool ok = tevent_wakeup_recv(subreq);

	TALLOC_FREE(subreq);
	if (!ok) {
		tevent_req_error(req, EIO);
		return;
	}
	state->sum = state->a + state->b;
	tevent_req_done(req);
}

static int add_recv(struct tevent_req *req, int *sum)
{
	struct add_state *state = tevent_req_data(req, struct add_state);
	enum tevent_req_state st;
	uint64_t err;

	if (tevent_req_is_error(req, &st, &err)) {
		tevent_req_received(req);
		return st == TEVENT_REQ_USER_ERROR ? (int)err : -(int)st;
	}
	*sum = state->sum;
	tevent_req_received(req);
	return 0;
}

/* sum_send: 1 + 2 + ... + n through n chained add_send requests */
struct sum_state {
	struct tevent_context *ev;
	int i, n, total;
};

static void sum_step(struct tevent_req *subreq);

static struct tevent_req *sum_send(TALLOC_CTX *mem, struct tevent_context *ev,
				   int n)
{
	struct tevent_req *req, *subreq;
	struct sum_state *state;

	req = tevent_req_create(mem, &state, struct sum_state);
	if (req == NULL) {
		return NULL;
	}
	state->ev = ev;
	state->n = n;
	state->i = 1;
	subreq = add_send(state, ev, 0, 1);
	if (tevent_req_nomem(subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(subreq, sum_step, req);
	return req;
}

static void sum_step(struct tevent_req *subreq)
{
	struct tevent_req *req = tevent_req_callback_data(subreq, struct tevent_req);
	struct sum_state *state = tevent_req_data(req, struct sum_state);
	int ret = add_recv(subreq, &state->total);

	TALLOC_FREE(subreq);
	if (ret != 0) {
		tevent_req_error(req, ret);
		return;
	}
	if (++state->i > state->n) {
		tevent_req_done(req);
		return;
	}
	subreq = add_send(state, state->ev, state->total, state->i);
	if (tevent_req_nomem(subreq, req)) {
		return;
	}
	tevent_req_set_callback(subreq, sum_step, req);
}

struct sum_result {
	bool done;
	int ret, total;
};

static void sum_done(struct tevent_req *req)
{
	struct sum_result *r = tevent_req_callback_data_void(req);
	struct sum_state *state = tevent_req_data(req, struct sum_state);
	enum tevent_req_state st;
	uint64_t err;

	r->ret = tevent_req_is_error(req, &st, &err) ? (int)err : 0;
	r->total = state->total;
	r->done = true;
	TALLOC_FREE(req);
}

/* a request that never finishes by itself: only its endtime ends it */
struct slow_state {
	int dummy;
};

static bool slow_cancel(struct tevent_req *req)
{
	tevent_req_error(req, ECANCELED);
	return true;
}

static void scenario_req(struct tevent_context *ev, const char *backend)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct sum_result r = {0};
	struct tevent_req *req;
	struct slow_state *slow;
	enum tevent_req_state st;
	uint64_t err;
	int sum = 0;

	g_cleanups = 0;
	req = sum_send(mem, ev, 10);
	if (req == NULL) {
		die("sum_send");
	}
	tevent_req_set_callback(req, sum_done, &r);
	run_until(ev, &r.done);
	note("sum=%d ret=%d cleanups=%d", r.total, r.ret, g_cleanups);

	/* an error posted before the caller even set its callback */
	req = add_send(mem, ev, 1, -1);
	if (req == NULL || !tevent_req_poll(req, ev)) {
		die("tevent_req_poll");
	}
	note(" bad_input=%d", add_recv(req, &sum));
	TALLOC_FREE(req);

	/* endtime in the past: the request times out */
	req = tevent_req_create(mem, &slow, struct slow_state);
	if (req == NULL ||
	    !tevent_req_set_endtime(req, ev, tevent_timeval_set(2, 0)) ||
	    !tevent_req_poll(req, ev)) {
		die("timeout request");
	}
	note(" timeout=%d", tevent_req_is_error(req, &st, &err) &&
			     st == TEVENT_REQ_TIMED_OUT);
	TALLOC_FREE(req);

	/* cancel */
	req = tevent_req_create(mem, &slow, struct slow_state);
	if (req == NULL) {
		die("tevent_req_create");
	}
	tevent_req_set_cancel_fn(req, slow_cancel);
	note(" cancel=%d", tevent_req_cancel(req));
	note(" cancelled=%d", tevent_req_is_error(req, &st, &err) &&
			      st == TEVENT_REQ_USER_ERROR && err == ECANCELED);
	TALLOC_FREE(req);
	talloc_free(mem);
	result(backend, "req");
}

/* ---- queue: requests run one at a time, in order ---- */

struct job_state {
	int id;
};

static void job_trigger(struct tevent_req *req, void *pvt)
{
	struct job_state *state = tevent_req_data(req, struct job_state);

	(void)pvt;
	note("run%d ", state->id);
	tevent_req_done(req);
}

struct queue_run {
	int finished;
};

static void job_done(struct tevent_req *req)
{
	struct queue_run *qr = tevent_req_callback_data_void(req);
	struct job_state *state = tevent_req_data(req, struct job_state);

	note("done%d ", state->id);
	qr->finished++;
	/* freeing the request lets the queue move on */
	TALLOC_FREE(req);
}

static void queue_waited(struct tevent_req *req)
{
	struct queue_run *qr = tevent_req_callback_data_void(req);

	note("waited=%d ", tevent_queue_wait_recv(req));
	qr->finished++;
	TALLOC_FREE(req);
}

static void scenario_queue(struct tevent_context *ev, const char *backend)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_queue *q = tevent_queue_create(mem, "legacy_queue");
	struct queue_run qr = {0};
	struct tevent_req *req, *w;
	struct job_state *state;
	int i, turns;

	if (q == NULL) {
		die("tevent_queue_create");
	}
	tevent_queue_stop(q);
	for (i = 0; i < 4; i++) {
		req = tevent_req_create(mem, &state, struct job_state);
		if (req == NULL) {
			die("tevent_req_create");
		}
		state->id = i;
		tevent_req_set_callback(req, job_done, &qr);
		if (!tevent_queue_add(q, ev, req, job_trigger, NULL)) {
			die("tevent_queue_add");
		}
		if (i == 1) {
			/* leaves the queue before its turn */
			TALLOC_FREE(req);
		}
	}
	w = tevent_queue_wait_send(mem, ev, q);
	if (w == NULL) {
		die("tevent_queue_wait_send");
	}
	tevent_req_set_callback(w, queue_waited, &qr);
	note("len=%zu running=%d ", tevent_queue_length(q), tevent_queue_running(q));
	tevent_queue_start(q);
	for (turns = 0; turns < 1000 && qr.finished < 4; turns++) {
		tevent_loop_once(ev);
	}
	note("len=%zu", tevent_queue_length(q));
	talloc_free(mem);
	result(backend, "queue");
}

/* ---- thread proxy: producers on other threads send numbered messages ---- */

#define PRODUCERS 3
#define MESSAGES 40

struct proxy_msg {
	int producer, seq;
};

struct proxy_run {
	struct tevent_thread_proxy *tp;
	int received[PRODUCERS];
	long sum;
	int total;
};

static struct proxy_run *g_proxy;

static void on_proxy_msg(struct tevent_context *ev, struct tevent_immediate *im,
			 void *pvt)
{
	struct proxy_msg *m = talloc_get_type_abort(pvt, struct proxy_msg);

	(void)ev;
	(void)im;
	g_proxy->received[m->producer]++;
	g_proxy->sum += m->seq;
	g_proxy->total++;
	talloc_free(m);
}

static void *producer(void *arg)
{
	int id = (int)(intptr_t)arg;
	int i;

	for (i = 0; i < MESSAGES; i++) {
		/* talloc is not thread-safe: only the NULL context here */
		struct tevent_immediate *im = tevent_create_immediate(NULL);
		struct proxy_msg *m = talloc(NULL, struct proxy_msg);

		if (im == NULL || m == NULL) {
			abort();
		}
		m->producer = id;
		m->seq = i;
		tevent_thread_proxy_schedule(g_proxy->tp, &im, on_proxy_msg, &m);
		if (im != NULL || m != NULL) {
			abort();
		}
	}
	return NULL;
}

static void scenario_proxy(struct tevent_context *ev, const char *backend)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct proxy_run run = {0};
	pthread_t th[PRODUCERS];
	int i, turns;

	g_proxy = &run;
	run.tp = tevent_thread_proxy_create(ev);
	if (run.tp == NULL) {
		die("tevent_thread_proxy_create");
	}
	for (i = 0; i < PRODUCERS; i++) {
		if (pthread_create(&th[i], NULL, producer, (void *)(intptr_t)i) != 0) {
			die("pthread_create");
		}
	}
	for (turns = 0; turns < 100000 && run.total < PRODUCERS * MESSAGES;
	     turns++) {
		tevent_loop_once(ev);
	}
	for (i = 0; i < PRODUCERS; i++) {
		pthread_join(th[i], NULL);
	}
	note("total=%d sum=%ld per_producer=", run.total, run.sum);
	for (i = 0; i < PRODUCERS; i++) {
		note("%s%d", i ? "," : "", run.received[i]);
	}
	/* the proxy is a child of ev; the next scenario gets a fresh ev */
	talloc_free(mem);
	result(backend, "proxy");
}

/* ---- which libtevent serves this process ---- */

static int list_tevent(struct dl_phdr_info *info, size_t size, void *data)
{
	const char *name = info->dlpi_name, *base;
	char real[PATH_MAX];

	(void)size;
	(void)data;
	if (name == NULL || name[0] == '\0') {
		return 0;
	}
	base = strrchr(name, '/');
	base = base != NULL ? base + 1 : name;
	if (strncmp(base, "libtevent.so", 12) != 0) {
		return 0;
	}
	printf("mapped: %s\n", realpath(name, real) != NULL ? real : name);
	return 0;
}

int main(void)
{
	static const char *backends[] = {"standard", "epoll", "poll", "poll_mt"};
	size_t b;

	/* keep stdout ordered with respect to nothing else: one buffer */
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	for (b = 0; b < sizeof(backends) / sizeof(backends[0]); b++) {
		struct tevent_context *ev;

		ev = tevent_context_init_byname(NULL, backends[b]);
		if (ev == NULL) {
			die("tevent_context_init_byname");
		}
		scenario_fd(ev, backends[b]);
		scenario_timer(ev, backends[b]);
		scenario_immediate(ev, backends[b]);
		scenario_signal(ev, backends[b]);
		scenario_req(ev, backends[b]);
		scenario_queue(ev, backends[b]);
		scenario_proxy(ev, backends[b]);
		talloc_free(ev);
	}
	dl_iterate_phdr(list_tevent, NULL);
	return fflush(stdout) == 0 ? 0 : 1;
}

/*
 * A small Samba-style program on tevent: a socket pair with a reader and a
 * writer, a few timers, a signal sent to ourselves, an immediate, and
 * request/reply round trips with 8 worker threads through thread proxies
 * (the pattern of doc/threads.md; doc/examples/thread_reply.c is the full
 * version).  It prints each event as it happens and which libtevent it
 * runs on.
 */

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <talloc.h>
#include <tevent.h>

#include "example_util.h"	/* print_library() */

#define NUM_WORKERS 8

struct demo {
	int sock[2];
	int messages_left;
	int timers_fired;
	bool got_signal;
	int pings_answered;
};

static void on_readable(struct tevent_context *ev, struct tevent_fd *fde,
			uint16_t flags, void *private_data)
{
	struct demo *d = private_data;
	char buf[64];
	const char *p;
	ssize_t n = read(d->sock[1], buf, sizeof(buf) - 1);
	(void)ev;
	(void)flags;
	if (n <= 0) {
		d->messages_left = 0; /* the writer is gone */
		talloc_free(fde);
		return;
	}
	buf[n] = '\0';
	printf("fd:        read \"%s\"\n", buf);
	/* A stream has no message boundaries: a slow reader may get several
	 * messages in one read. */
	for (p = buf; (p = strstr(p, "tick")) != NULL; p += 4) {
		d->messages_left--;
	}
	if (d->messages_left <= 0) {
		talloc_free(fde); /* nothing more to read */
	}
}

static void on_timer(struct tevent_context *ev, struct tevent_timer *te,
		     struct timeval now, void *private_data)
{
	struct demo *d = private_data;
	char msg[32];
	(void)ev;
	(void)te;
	(void)now;
	d->timers_fired++;
	snprintf(msg, sizeof(msg), "tick %d", d->timers_fired);
	printf("timer:     fired, writing \"%s\"\n", msg);
	if (write(d->sock[0], msg, strlen(msg)) < 0) {
		perror("write");
	}
}

static void on_signal(struct tevent_context *ev, struct tevent_signal *se,
		      int signum, int count, void *siginfo, void *private_data)
{
	struct demo *d = private_data;
	(void)ev;
	(void)se;
	(void)siginfo;
	printf("signal:    %s delivered %d time(s)\n", strsignal(signum), count);
	d->got_signal = true;
}

static void on_immediate(struct tevent_context *ev, struct tevent_immediate *im,
			 void *private_data)
{
	(void)ev;
	(void)im;
	(void)private_data;
	printf("immediate: ran before any timer or fd event\n");
}

/*
 * The request/reply pattern of the thread chapter, done right: each worker
 * creates its proxy on its own context, and the main loop sends the ping
 * back to it with the immediate its handler was called with.
 */
struct ping {
	struct tevent_thread_proxy *reply_to;	/* the worker's own proxy */
	struct demo *d;		/* main thread's data; only main touches it */
	bool *done;		/* the worker's flag; only the worker touches it */
};

struct worker_args {
	struct tevent_thread_proxy *main_tp;
	struct demo *d;
	bool got_reply;
};

static void worker_got_reply(struct tevent_context *ev,
			     struct tevent_immediate *im, void *private_data)
{
	struct ping *p = talloc_get_type_abort(private_data, struct ping);
	(void)im;
	talloc_steal(ev, p);
	*p->done = true;
}

static void main_got_ping(struct tevent_context *ev, struct tevent_immediate *im,
			  void *private_data)
{
	struct ping *p = talloc_get_type_abort(private_data, struct ping);

	talloc_steal(ev, p);	/* ours until we send it back */
	if (++p->d->pings_answered == NUM_WORKERS) {
		printf("thread:    main loop answered pings from %d worker "
		       "threads\n", NUM_WORKERS);
	}
	tevent_thread_proxy_schedule(p->reply_to, &im, worker_got_reply, &p);
}

static void *worker(void *arg)
{
	struct worker_args *args = arg;
	struct tevent_context *ev = tevent_context_init(NULL);
	bool done = false;
	struct ping *p;
	struct tevent_immediate *im;

	if (ev == NULL) {
		return NULL;
	}
	p = talloc(ev, struct ping);
	im = tevent_create_immediate(ev);
	if (p == NULL || im == NULL) {
		talloc_free(ev);
		return NULL;
	}
	p->reply_to = tevent_thread_proxy_create(ev);
	p->d = args->d;
	p->done = &done;
	if (p->reply_to == NULL) {
		talloc_free(ev);
		return NULL;
	}
	tevent_thread_proxy_schedule(args->main_tp, &im, main_got_ping, &p);
	while (!done) {
		if (tevent_loop_once(ev) != 0) {
			break;
		}
	}
	args->got_reply = done;
	talloc_free(ev);
	return NULL;
}

int main(void)
{
	struct demo *d;
	struct tevent_context *ev;
	struct tevent_thread_proxy *tp;
	struct worker_args args[NUM_WORKERS];
	pthread_t threads[NUM_WORKERS];
	int i, replies = 0;

	/* talloc is not thread-safe: no hidden shared parent, please */
	talloc_disable_null_tracking();
	d = talloc_zero(NULL, struct demo);
	ev = d != NULL ? tevent_context_init(d) : NULL;
	if (ev == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, d->sock) != 0) {
		fprintf(stderr, "setup failed\n");
		return 1;
	}
	print_library();	/* which libtevent the dynamic loader picked */

	d->messages_left = 3;
	tevent_add_fd(ev, ev, d->sock[1], TEVENT_FD_READ, on_readable, d);
	for (i = 1; i <= 3; i++) {
		tevent_add_timer(ev, ev, tevent_timeval_current_ofs(0, i * 20000),
				 on_timer, d);
	}
	tevent_add_signal(ev, ev, SIGUSR1, 0, on_signal, d);
	tevent_schedule_immediate(tevent_create_immediate(ev), ev, on_immediate, NULL);
	kill(getpid(), SIGUSR1);

	/* The workers' mailbox into this loop; it lives until they are
	 * joined, so nobody can send to a freed proxy. */
	tp = tevent_thread_proxy_create(ev);
	if (tp == NULL) {
		fprintf(stderr, "tevent_thread_proxy_create failed\n");
		return 1;
	}
	for (i = 0; i < NUM_WORKERS; i++) {
		args[i] = (struct worker_args) { .main_tp = tp, .d = d };
		if (pthread_create(&threads[i], NULL, worker, &args[i]) != 0) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
	}

	while (d->messages_left > 0 || !d->got_signal ||
	       d->pings_answered < NUM_WORKERS) {
		if (tevent_loop_once(ev) != 0) {
			perror("tevent_loop_once");
			return 1;
		}
	}
	for (i = 0; i < NUM_WORKERS; i++) {
		pthread_join(threads[i], NULL);
		replies += args[i].got_reply ? 1 : 0;
	}

	printf("done:      %d timers, signal %s, %d/%d workers got their "
	       "reply\n", d->timers_fired, d->got_signal ? "seen" : "missing",
	       replies, NUM_WORKERS);
	close(d->sock[0]);
	close(d->sock[1]);
	talloc_free(d);
	return replies == NUM_WORKERS ? 0 : 1;
}

/*
 * A small Samba-style program on tevent: a socket pair with a reader and a
 * writer, a few timers, a signal sent to ourselves, an immediate, and a
 * request/reply round trip with a worker thread through thread proxies.
 * It prints each event as it happens and which libtevent it runs on.
 */

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <talloc.h>
#include <tevent.h>

struct demo {
	int sock[2];
	int messages_left;
	int timers_fired;
	bool got_signal;
	bool got_reply;
};

static void on_readable(struct tevent_context *ev, struct tevent_fd *fde,
			uint16_t flags, void *private_data)
{
	struct demo *d = private_data;
	char buf[64];
	ssize_t n = read(d->sock[1], buf, sizeof(buf) - 1);
	(void)ev;
	(void)flags;
	if (n <= 0) {
		talloc_free(fde);
		return;
	}
	buf[n] = '\0';
	printf("fd:        read \"%s\"\n", buf);
	if (--d->messages_left == 0) {
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
	printf("immediate: ran on the first loop turn\n");
}

/* The request/reply example of the thread chapter, done right: the worker
 * creates its proxy on its own context. */
struct ping {
	struct tevent_thread_proxy *reply_to;
	bool *done;
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
	struct demo *d = talloc_get_type_abort(talloc_parent(talloc_parent(ev)),
					       struct demo);
	talloc_steal(ev, p);
	printf("thread:    main loop got a ping from the worker, replying\n");
	d->got_reply = true;
	tevent_thread_proxy_schedule(p->reply_to, &im, worker_got_reply, &p);
}

static void *worker(void *arg)
{
	struct tevent_thread_proxy *main_tp = arg;
	struct tevent_context *ev = tevent_context_init(NULL);
	bool done = false;
	struct ping *p = talloc(ev, struct ping);
	struct tevent_immediate *im = tevent_create_immediate(ev);

	p->reply_to = tevent_thread_proxy_create(ev);
	p->done = &done;
	tevent_thread_proxy_schedule(main_tp, &im, main_got_ping, &p);
	while (!done) {
		tevent_loop_once(ev);
	}
	talloc_free(ev);
	return NULL;
}

int main(void)
{
	Dl_info info;
	struct demo *d;
	TALLOC_CTX *holder;
	struct tevent_context *ev;
	struct tevent_thread_proxy *tp;
	pthread_t thread;
	int i;

	talloc_disable_null_tracking();
	d = talloc_zero(NULL, struct demo);
	holder = talloc_new(d);
	ev = tevent_context_init(holder);
	if (ev == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, d->sock) != 0) {
		fprintf(stderr, "setup failed\n");
		return 1;
	}
	if (dladdr((void *)tevent_context_init, &info) != 0) {
		printf("libtevent: %s\n", info.dli_fname);
	}

	d->messages_left = 3;
	tevent_add_fd(ev, ev, d->sock[1], TEVENT_FD_READ, on_readable, d);
	for (i = 1; i <= 3; i++) {
		tevent_add_timer(ev, ev, tevent_timeval_current_ofs(0, i * 20000),
				 on_timer, d);
	}
	tevent_add_signal(ev, ev, SIGUSR1, 0, on_signal, d);
	tevent_schedule_immediate(tevent_create_immediate(ev), ev, on_immediate, NULL);
	kill(getpid(), SIGUSR1);

	tp = tevent_thread_proxy_create(ev);
	pthread_create(&thread, NULL, worker, tp);

	while (d->messages_left > 0 || !d->got_signal || !d->got_reply) {
		if (tevent_loop_once(ev) != 0) {
			perror("tevent_loop_once");
			return 1;
		}
	}
	pthread_join(thread, NULL);

	printf("done:      %d timers, signal %s, reply %s\n", d->timers_fired,
	       d->got_signal ? "seen" : "missing",
	       d->got_reply ? "sent" : "missing");
	close(d->sock[0]);
	close(d->sock[1]);
	talloc_free(d);
	return 0;
}

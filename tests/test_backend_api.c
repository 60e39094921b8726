/*
 * What libtevent exports beyond <tevent.h>: the tevent_common_* pieces a
 * backend is built from, the functions that invoke trace callbacks, the
 * nesting hook and tevent_cleanup_pending_signal_handlers().
 *
 * Most cases run on "tt_kit", a backend this file writes from those
 * exports and public calls only, as a program with a backend of its own
 * would: it keeps its own list of fd events and waits in poll(2).  If
 * the pieces do not fit together the way upstream's do, fds, timers,
 * immediates, signals and wakeups from other threads stop working on it.
 * `make test-upstream` runs this same binary on Debian's libtevent, so
 * every expectation here is upstream's behaviour as well as ours.
 */

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>
#define TEVENT_DEPRECATED 1 /* the nesting calls */
#include <tevent.h>

/* The declarations an out-of-tree backend links against. */
#include "../lib/tevent/tevent_common.h"
#include "common/tt.h"

/* handlers have fixed signatures and rarely use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"
/* the nesting hook is deprecated, and tested all the same */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#define KIT_NAME "tt_kit"

/* ------------------------------------------------------------------ */
/* The tt_kit backend                                                   */

/* The backend's record of one fd event: a child of its kit. */
struct kit_fd {
	struct tevent_fd *fde;
	int fd;
	struct kit_fd *next;
};

struct kit {
	struct tevent_context *ev;
	struct kit_fd *fds;
	unsigned nfds;
	unsigned polls;
};

/* Backend state by context: the public API has no slot for it. */
static struct kit *kits[8];

static struct kit *kit_of(struct tevent_context *ev)
{
	size_t i;

	for (i = 0; i < sizeof(kits) / sizeof(kits[0]); i++) {
		if (kits[i] != NULL && kits[i]->ev == ev) {
			return kits[i];
		}
	}
	fail_msg("no tt_kit state for this context");
	return NULL;
}

/* Forgets fde in whichever kit has it (its context may be gone). */
static void kit_forget(struct tevent_fd *fde)
{
	size_t i;

	for (i = 0; i < sizeof(kits) / sizeof(kits[0]); i++) {
		struct kit_fd **pp;
		if (kits[i] == NULL) {
			continue;
		}
		for (pp = &kits[i]->fds; *pp != NULL; pp = &(*pp)->next) {
			struct kit_fd *kf = *pp;
			if (kf->fde == fde) {
				*pp = kf->next;
				kits[i]->nfds--;
				talloc_free(kf);
				return;
			}
		}
	}
}

/*
 * The backend's own destructor for fd events, wrapping the generic one as
 * upstream's backends do; it may refuse (-1) while the handler runs.
 */
static int kit_fd_destructor(struct tevent_fd *fde)
{
	kit_forget(fde);
	return tevent_common_fd_destructor(fde);
}

static int kit_destructor(struct kit *kit)
{
	size_t i;

	for (i = 0; i < sizeof(kits) / sizeof(kits[0]); i++) {
		if (kits[i] == kit) {
			kits[i] = NULL;
		}
	}
	return 0;
}

static int kit_context_init(struct tevent_context *ev)
{
	struct kit *kit = talloc_zero(ev, struct kit);
	size_t i;

	if (kit == NULL) {
		return -1;
	}
	kit->ev = ev;
	for (i = 0; i < sizeof(kits) / sizeof(kits[0]); i++) {
		if (kits[i] == NULL) {
			kits[i] = kit;
			talloc_set_destructor(kit, kit_destructor);
			return 0;
		}
	}
	talloc_free(kit);
	return -1;
}

static struct tevent_fd *kit_add_fd(struct tevent_context *ev,
				    TALLOC_CTX *mem_ctx, int fd,
				    uint16_t flags,
				    tevent_fd_handler_t handler,
				    void *private_data,
				    const char *handler_name,
				    const char *location)
{
	struct kit *kit = kit_of(ev);
	struct tevent_fd *fde;
	struct kit_fd *kf, **tail;

	kf = talloc_zero(kit, struct kit_fd);
	if (kf == NULL) {
		return NULL;
	}
	fde = tevent_common_add_fd(ev, mem_ctx, fd, flags, handler,
				   private_data, handler_name, location);
	if (fde == NULL) {
		talloc_free(kf);
		return NULL;
	}
	kf->fde = fde;
	kf->fd = fd;
	for (tail = &kit->fds; *tail != NULL; tail = &(*tail)->next) {
	}
	*tail = kf;
	kit->nfds++;
	talloc_set_destructor(fde, kit_fd_destructor);
	return fde;
}

static uint16_t kit_ready_flags(short revents)
{
	uint16_t flags = 0;

	if (revents & (POLLIN | POLLHUP | POLLERR)) {
		flags |= TEVENT_FD_READ | TEVENT_FD_ERROR;
	}
	if (revents & (POLLOUT | POLLERR)) {
		flags |= TEVENT_FD_WRITE;
	}
	return flags;
}

/* Waits for the fds and runs one handler, like a built-in backend. */
static int kit_wait(struct kit *kit, struct timeval delay)
{
	struct pollfd pfds[64];
	struct kit_fd *kfs[64];
	struct kit_fd *kf;
	unsigned n = 0, i;
	int timeout, ret;

	for (kf = kit->fds; kf != NULL && n < 64; kf = kf->next) {
		uint16_t want = tevent_fd_get_flags(kf->fde);
		if (want == 0) {
			continue;
		}
		pfds[n].fd = kf->fd;
		pfds[n].events = ((want & TEVENT_FD_READ) ? POLLIN : 0) |
				 ((want & TEVENT_FD_WRITE) ? POLLOUT : 0);
		pfds[n].revents = 0;
		kfs[n++] = kf;
	}
	timeout = (int)(delay.tv_sec * 1000 + (delay.tv_usec + 999) / 1000);
	kit->polls++;
	ret = poll(pfds, n, timeout);
	if (ret == -1 && errno == EINTR) {
		tevent_common_check_signal(kit->ev);
		return 0;
	}
	if (ret == -1) {
		return -1;
	}
	if (ret == 0) {
		/* the next timer is due now */
		tevent_common_loop_timer_delay(kit->ev);
		return 0;
	}
	for (i = 0; i < n; i++) {
		uint16_t flags = kit_ready_flags(pfds[i].revents) &
				 tevent_fd_get_flags(kfs[i]->fde);
		if (flags != 0) {
			return tevent_common_invoke_fd_handler(kfs[i]->fde,
							       flags, NULL);
		}
	}
	return 0;
}

/* One unit of work per turn, in upstream's order. */
static int kit_loop_once(struct tevent_context *ev, const char *location)
{
	struct timeval delay;

	if (tevent_common_check_signal(ev)) {
		return 0;
	}
	tevent_common_threaded_activate_immediate(ev);
	if (tevent_common_loop_immediate(ev)) {
		return 0;
	}
	delay = tevent_common_loop_timer_delay(ev);
	if (tevent_timeval_is_zero(&delay)) {
		return 0;
	}
	return kit_wait(kit_of(ev), delay);
}

static const struct tevent_ops kit_ops = {
	.context_init = kit_context_init,
	.add_fd = kit_add_fd,
	.set_fd_close_fn = tevent_common_fd_set_close_fn,
	.get_fd_flags = tevent_common_fd_get_flags,
	.set_fd_flags = tevent_common_fd_set_flags,
	.add_timer = tevent_common_add_timer_v2,
	.schedule_immediate = tevent_common_schedule_immediate,
	.add_signal = tevent_common_add_signal,
	.loop_once = kit_loop_once,
	.loop_wait = tevent_common_loop_wait,
};

static struct tevent_context *kit_ev(TALLOC_CTX *mem_ctx)
{
	struct tevent_context *ev;

	assert_true(tevent_register_backend(KIT_NAME, &kit_ops));
	ev = tevent_context_init_byname(mem_ctx, KIT_NAME);
	assert_non_null(ev);
	return ev;
}

/* ------------------------------------------------------------------ */
/* Small handlers and helpers                                           */

struct fd_log {
	int fd;
	int calls;
	uint16_t flags;
	bool free_self;
	char byte;
};

static void log_fd(struct tevent_context *ev, struct tevent_fd *fde,
		   uint16_t flags, void *private_data)
{
	struct fd_log *log = private_data;

	log->calls++;
	log->flags = flags;
	if (flags & TEVENT_FD_READ) {
		assert_int_equal(read(log->fd, &log->byte, 1), 1);
	}
	if (log->free_self) {
		talloc_free(fde);
	}
}

static void set_flag(struct tevent_context *ev, struct tevent_timer *te,
		     struct timeval now, void *private_data)
{
	*(bool *)private_data = true;
}

static void count_imm(struct tevent_context *ev, struct tevent_immediate *im,
		      void *private_data)
{
	(*(int *)private_data)++;
}

/* Appends its tag to a string of what ran, in order. */
struct order_log {
	char seen[32];
	size_t n;
};

struct tagged {
	struct order_log *log;
	char tag;
	int fd;	/* for order_fd */
};

static void order_note(struct order_log *log, char tag)
{
	assert_true(log->n + 1 < sizeof(log->seen));
	log->seen[log->n++] = tag;
	log->seen[log->n] = '\0';
}

static void order_timer(struct tevent_context *ev, struct tevent_timer *te,
			struct timeval now, void *private_data)
{
	struct tagged *t = private_data;
	order_note(t->log, t->tag);
}

static void order_imm(struct tevent_context *ev, struct tevent_immediate *im,
		      void *private_data)
{
	struct tagged *t = private_data;
	order_note(t->log, t->tag);
}

static void order_signal(struct tevent_context *ev, struct tevent_signal *se,
			 int signum, int count, void *siginfo,
			 void *private_data)
{
	struct tagged *t = private_data;
	order_note(t->log, t->tag);
}

static void order_fd(struct tevent_context *ev, struct tevent_fd *fde,
		     uint16_t flags, void *private_data)
{
	struct tagged *t = private_data;
	char c;
	assert_int_equal(read(t->fd, &c, 1), 1);
	order_note(t->log, t->tag);
}

static void socket_pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

/* A new socket pair whose sv[0] ev watches for reading into log. */
static struct tevent_fd *watch_new_pair(struct tevent_context *ev,
					TALLOC_CTX *mem, int sv[2],
					struct fd_log *log)
{
	struct tevent_fd *fde;

	socket_pair(sv);
	log->fd = sv[0];
	fde = tevent_add_fd(ev, mem, sv[0], TEVENT_FD_READ, log_fd, log);
	assert_non_null(fde);
	return fde;
}

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

/* Turns the loop until *flag is set; bounded so a bug cannot hang. */
static void loop_until_set(struct tevent_context *ev, const bool *flag)
{
	int i;

	for (i = 0; i < 100 && !*flag; i++) {
		assert_int_equal(tevent_loop_once(ev), 0);
	}
	assert_true(*flag);
}

/* ------------------------------------------------------------------ */
/* fd events on tt_kit                                                  */

static void test_kit_fd_flags(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = kit_ev(mem);
	struct fd_log log = {0};
	struct tevent_fd *fde;
	int sv[2];

	fde = watch_new_pair(ev, mem, sv, &log);
	assert_int_equal(kit_of(ev)->nfds, 1);
	assert_int_equal(tevent_fd_get_flags(fde), TEVENT_FD_READ);

	assert_int_equal(write(sv[1], "x", 1), 1);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(log.calls, 1);
	assert_int_equal(log.flags, TEVENT_FD_READ);
	assert_int_equal(log.byte, 'x');

	/* the generic setter only records; the backend reads it back */
	tevent_fd_set_flags(fde, TEVENT_FD_WRITE);
	assert_int_equal(tevent_fd_get_flags(fde), TEVENT_FD_WRITE);
	assert_int_equal(tevent_common_fd_get_flags(fde), TEVENT_FD_WRITE);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(log.calls, 2);
	assert_int_equal(log.flags, TEVENT_FD_WRITE);

	tevent_common_fd_set_flags(fde, 0);
	assert_int_equal(tevent_fd_get_flags(fde), 0);
	assert_int_equal(write(sv[1], "y", 1), 1);
	{
		/* with the fd switched off, a timer is all that can run */
		struct order_log ol = {0};
		struct tagged t = {&ol, 'T', -1};
		assert_non_null(tevent_add_timer(
			ev, mem, tevent_timeval_current_ofs(0, 20000),
			order_timer, &t));
		assert_int_equal(tevent_loop_once(ev), 0);
		assert_string_equal(ol.seen, "T");
	}
	assert_int_equal(log.calls, 2);

	tevent_fd_set_flags(fde, TEVENT_FD_READ);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(log.calls, 3);
	assert_int_equal(log.byte, 'y');

	talloc_free(fde);
	assert_int_equal(kit_of(ev)->nfds, 0);
	assert_true(fd_is_open(sv[0]));
	close(sv[0]);
	close(sv[1]);
	talloc_free(mem);
}

static void test_kit_fd_free_in_handler(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = kit_ev(mem);
	struct fd_log log = {.free_self = true};
	struct tevent_fd *fde;
	int sv[2];

	fde = watch_new_pair(ev, mem, sv, &log);
	tevent_fd_set_auto_close(fde);
	assert_int_equal(write(sv[1], "x", 1), 1);

	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(log.calls, 1);
	/* gone with its tracker, and the close function closed the fd */
	assert_int_equal(kit_of(ev)->nfds, 0);
	assert_false(fd_is_open(sv[0]));
	close(sv[1]);
	talloc_free(mem);
}

static void test_invoke_fd_handler_removed(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = kit_ev(mem);
	struct fd_log keep = {0}, drop = {.free_self = true};
	struct tevent_fd *a, *b;
	bool removed = true;
	int sv[2];

	socket_pair(sv);
	keep.fd = drop.fd = sv[0];
	a = tevent_add_fd(ev, mem, sv[0], TEVENT_FD_READ, log_fd, &keep);
	b = tevent_add_fd(ev, mem, sv[0], TEVENT_FD_READ, log_fd, &drop);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(write(sv[1], "ab", 2), 2);

	assert_int_equal(tevent_common_invoke_fd_handler(a, TEVENT_FD_READ,
							 &removed), 0);
	assert_false(removed);
	assert_int_equal(keep.calls, 1);
	assert_int_equal(keep.flags, TEVENT_FD_READ);

	assert_int_equal(tevent_common_invoke_fd_handler(b, TEVENT_FD_READ,
							 &removed), 0);
	assert_true(removed);
	assert_int_equal(drop.calls, 1);
	assert_int_equal(kit_of(ev)->nfds, 1);

	talloc_free(a);
	close(sv[0]);
	close(sv[1]);
	talloc_free(mem);
}

static int close_fn_calls;

static void counting_close(struct tevent_context *ev, struct tevent_fd *fde,
			   int fd, void *private_data)
{
	close_fn_calls++;
	close(fd);
}

static void test_kit_fd_close_fn(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = kit_ev(mem);
	struct fd_log log = {0};
	struct tevent_fd *fde;
	int sv[2];

	fde = watch_new_pair(ev, mem, sv, &log);
	tevent_fd_set_close_fn(fde, counting_close);
	close_fn_calls = 0;

	/* the backend's destructor hands over to the generic one */
	talloc_free(fde);
	assert_int_equal(close_fn_calls, 1);
	assert_false(fd_is_open(sv[0]));
	assert_int_equal(kit_of(ev)->nfds, 0);
	assert_false(tevent_common_have_events(ev));
	close(sv[1]);
	talloc_free(mem);
}

/* ------------------------------------------------------------------ */
/* Timers and immediates on tt_kit                                      */

static void test_kit_timers(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = kit_ev(mem);
	struct order_log ol = {0};
	struct tagged t[5] = {
		{&ol, 'c', -1}, {&ol, 'a', -1}, {&ol, 'b', -1},
		{&ol, 'B', -1}, {&ol, '0', -1},
	};
	struct timeval now = tevent_timeval_current();
	struct timeval at_b = tevent_timeval_add(&now, 0, 20000);
	int i;

	assert_non_null(tevent_add_timer(ev, mem,
					 tevent_timeval_add(&now, 0, 30000),
					 order_timer, &t[0]));
	assert_non_null(tevent_add_timer(ev, mem,
					 tevent_timeval_add(&now, 0, 10000),
					 order_timer, &t[1]));
	/* both generic inserts; equal deadlines run first come, first served */
	assert_non_null(tevent_common_add_timer(ev, mem, at_b, order_timer,
						&t[2], "b", __location__));
	assert_non_null(tevent_common_add_timer_v2(ev, mem, at_b, order_timer,
						   &t[3], "B", __location__));
	assert_non_null(tevent_common_add_timer(ev, mem, tevent_timeval_zero(),
						order_timer, &t[4], "0",
						__location__));

	for (i = 0; i < 20 && ol.n < 5; i++) {
		assert_int_equal(tevent_loop_once(ev), 0);
	}
	assert_string_equal(ol.seen, "0abBc");
	assert_false(tevent_common_have_events(ev));
	talloc_free(mem);
}

static void test_loop_timer_delay(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = kit_ev(mem);
	struct order_log ol = {0};
	struct tagged t = {&ol, 't', -1};
	struct timeval delay;

	/* nothing to wait for: the default 30 s tick */
	delay = tevent_common_loop_timer_delay(ev);
	assert_int_equal(delay.tv_sec, 30);
	assert_int_equal(delay.tv_usec, 0);

	/* a future timer: the time left, and nothing runs */
	assert_non_null(tevent_add_timer(ev, mem,
					 tevent_timeval_current_ofs(100, 0),
					 order_timer, &t));
	delay = tevent_common_loop_timer_delay(ev);
	assert_true(delay.tv_sec >= 98 && delay.tv_sec <= 100);
	assert_int_equal(ol.n, 0);
	talloc_free(mem);

	/* a due timer: it runs, and the answer is zero */
	mem = talloc_new(NULL);
	ev = kit_ev(mem);
	assert_non_null(tevent_add_timer(ev, mem, tevent_timeval_zero(),
					 order_timer, &t));
	delay = tevent_common_loop_timer_delay(ev);
	assert_true(tevent_timeval_is_zero(&delay));
	assert_string_equal(ol.seen, "t");
	talloc_free(mem);
}

static bool free_timer_self;

static void maybe_free_timer(struct tevent_context *ev,
			     struct tevent_timer *te, struct timeval now,
			     void *private_data)
{
	(*(int *)private_data)++;
	if (free_timer_self) {
		talloc_free(te);
	}
}

static void test_invoke_timer_handler(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = kit_ev(mem);
	struct tevent_timer *te;
	bool removed = false;
	int calls = 0;

	/* running a timer by hand, ahead of time, uses it up */
	free_timer_self = false;
	te = tevent_add_timer(ev, mem, tevent_timeval_current_ofs(100, 0),
			      maybe_free_timer, &calls);
	assert_non_null(te);
	assert_int_equal(tevent_common_invoke_timer_handler(
				 te, tevent_timeval_current(), &removed), 0);
	assert_int_equal(calls, 1);
	assert_true(removed);
	assert_false(tevent_common_have_events(ev));

	/* same when the handler frees it itself */
	free_timer_self = true;
	te = tevent_add_timer(ev, mem, tevent_timeval_current_ofs(100, 0),
			      maybe_free_timer, &calls);
	assert_non_null(te);
	removed = false;
	assert_int_equal(tevent_common_invoke_timer_handler(
				 te, tevent_timeval_current(), &removed), 0);
	assert_int_equal(calls, 2);
	assert_true(removed);
	assert_false(tevent_common_have_events(ev));
	talloc_free(mem);
}

/*
 * tevent_common_immediate_cancel() came with 0.17.0.  Looking it up at run
 * time lets `make test-upstream` run this file on Debian's 0.14.1 too,
 * which then cancels the public way (no handler).
 */
static void cancel_immediate(struct tevent_immediate *im,
			     struct tevent_context *ev)
{
	void (*cancel)(struct tevent_immediate *) =
		(void (*)(struct tevent_immediate *))dlsym(
			RTLD_DEFAULT, "tevent_common_immediate_cancel");

	if (cancel != NULL) {
		cancel(im);
	} else {
		/* only a library older than 0.17 may lack it */
		assert_null(strstr(tt_library_path(), "libtevent.so.0.17"));
		tevent_schedule_immediate(im, ev, NULL, NULL);
	}
}

static void test_kit_immediates(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = kit_ev(mem);
	struct order_log ol = {0};
	struct tagged t[3] = {{&ol, '1', -1}, {&ol, '2', -1}, {&ol, '3', -1}};
	struct tevent_immediate *im[3];
	int i;

	assert_false(tevent_common_loop_immediate(ev));
	for (i = 0; i < 3; i++) {
		im[i] = tevent_create_immediate(mem);
		assert_non_null(im[i]);
		tevent_schedule_immediate(im[i], ev, order_imm, &t[i]);
	}
	assert_true(tevent_common_have_events(ev));

	/* one per turn, in the order scheduled; a cancelled one never runs */
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_string_equal(ol.seen, "1");
	cancel_immediate(im[1], ev);
	assert_true(tevent_common_loop_immediate(ev));
	assert_string_equal(ol.seen, "13");
	assert_false(tevent_common_loop_immediate(ev));
	assert_false(tevent_common_have_events(ev));

	/* cancelled, it can be scheduled again */
	tevent_common_schedule_immediate(im[1], ev, order_imm, &t[1], "im",
					 __location__);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_string_equal(ol.seen, "132");
	talloc_free(mem);
}

static void free_imm_self(struct tevent_context *ev,
			  struct tevent_immediate *im, void *private_data)
{
	(*(int *)private_data)++;
	talloc_free(im);
}

static void test_invoke_immediate_handler(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = kit_ev(mem);
	struct tevent_immediate *im = tevent_create_immediate(mem);
	bool removed = true;
	int calls = 0;

	assert_non_null(im);
	tevent_schedule_immediate(im, ev, count_imm, &calls);
	assert_int_equal(tevent_common_invoke_immediate_handler(im, &removed),
			 0);
	assert_int_equal(calls, 1);
	/* run means unscheduled, but still there */
	assert_false(removed);
	assert_false(tevent_common_have_events(ev));

	tevent_schedule_immediate(im, ev, free_imm_self, &calls);
	assert_int_equal(tevent_common_invoke_immediate_handler(im, &removed),
			 0);
	assert_int_equal(calls, 2);
	assert_true(removed);
	talloc_free(mem);
}

/* ------------------------------------------------------------------ */
/* Signals on tt_kit                                                    */

struct sig_log {
	int calls;
	int signum;
	int count;
	bool free_self;
};

static void log_signal(struct tevent_context *ev, struct tevent_signal *se,
		       int signum, int count, void *siginfo,
		       void *private_data)
{
	struct sig_log *log = private_data;

	log->calls++;
	log->signum = signum;
	log->count = count;
	if (log->free_self) {
		talloc_free(se);
	}
}

static void *raise_later(void *arg)
{
	usleep(20000);
	kill(getpid(), *(int *)arg);
	return NULL;
}

static void test_kit_signal(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = kit_ev(mem);
	struct sig_log log = {0};
	struct tevent_signal *se;
	pthread_t thread;
	int signum = SIGUSR1;
	int i;

	assert_true(tevent_signal_support(ev));
	se = tevent_add_signal(ev, mem, SIGUSR1, 0, log_signal, &log);
	assert_non_null(se);
	/* the wakeup descriptor came through the backend's own add_fd */
	assert_int_equal(kit_of(ev)->nfds, 1);
	assert_int_equal(tevent_common_wakeup(ev), 0);

	/* the signal comes while the loop sleeps in poll */
	assert_int_equal(pthread_create(&thread, NULL, raise_later, &signum),
			 0);
	for (i = 0; i < 10 && log.calls == 0; i++) {
		assert_int_equal(tevent_loop_once(ev), 0);
	}
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(log.calls, 1);
	assert_int_equal(log.signum, SIGUSR1);
	assert_int_equal(log.count, 1);
	assert_int_equal(tevent_common_check_signal(ev), 0);
	talloc_free(mem);
}

static void test_invoke_signal_handler(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = kit_ev(mem);
	struct sig_log log = {0};
	struct tevent_signal *se;
	bool removed = true;

	se = tevent_add_signal(ev, mem, SIGUSR1, 0, log_signal, &log);
	assert_non_null(se);
	assert_int_equal(tevent_common_invoke_signal_handler(
				 se, SIGUSR1, 3, NULL, &removed), 0);
	assert_false(removed);
	assert_int_equal(log.calls, 1);
	assert_int_equal(log.count, 3);

	log.free_self = true;
	assert_int_equal(tevent_common_invoke_signal_handler(
				 se, SIGUSR1, 1, NULL, &removed), 0);
	assert_true(removed);
	assert_int_equal(log.calls, 2);
	talloc_free(mem);
}

struct detach_log {
	const struct tevent_signal *se;
	int detached;
};

static void count_signal_detach(struct tevent_signal *se,
				enum tevent_event_trace_point point,
				void *private_data)
{
	struct detach_log *dl = private_data;

	if (se == dl->se && point == TEVENT_EVENT_TRACE_DETACH) {
		dl->detached++;
	}
}

static void test_cleanup_pending_signal_handlers(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = tevent_context_init(mem);
	struct sig_log log = {0};
	struct detach_log dl = {0};
	struct sigaction ignore = {.sa_handler = SIG_IGN}, now;
	struct tevent_signal *se;
	bool done = false;

	assert_non_null(ev);
	sigemptyset(&ignore.sa_mask);
	assert_int_equal(sigaction(SIGUSR2, &ignore, NULL), 0);
	tevent_set_trace_signal_callback(ev, count_signal_detach, &dl);
	se = tevent_add_signal(ev, mem, SIGUSR2, 0, log_signal, &log);
	assert_non_null(se);
	dl.se = se;
	assert_true(tevent_common_have_events(ev));
	assert_int_equal(sigaction(SIGUSR2, NULL, &now), 0);
	assert_true(now.sa_handler != SIG_IGN);

	/* Noted by tevent, then the event is retired before the loop
	 * looks: it leaves the context at once, as if freed. */
	assert_int_equal(raise(SIGUSR2), 0);
	tevent_cleanup_pending_signal_handlers(se);
	assert_int_equal(dl.detached, 1);
	assert_false(tevent_common_have_events(ev));
	/* the last handler of SIGUSR2 is gone: the old disposition is back */
	assert_int_equal(sigaction(SIGUSR2, NULL, &now), 0);
	assert_true(now.sa_handler == SIG_IGN);
	assert_int_equal(raise(SIGUSR2), 0);

	assert_non_null(tevent_add_timer(ev, mem,
					 tevent_timeval_current_ofs(0, 10000),
					 set_flag, &done));
	loop_until_set(ev, &done);
	assert_int_equal(log.calls, 0);
	/* its destructor is gone: freeing it is plain, nothing traced */
	assert_int_equal(talloc_free(se), 0);
	assert_int_equal(dl.detached, 1);
	assert_int_equal(log.calls, 0);

	/* The signal can be handled again, and the delivery noted before
	 * the cleanup was kept for it (the one raised while ignored was
	 * not): count 2 in one call. */
	se = tevent_add_signal(ev, mem, SIGUSR2, 0, log_signal, &log);
	assert_non_null(se);
	assert_int_equal(raise(SIGUSR2), 0);
	for (int i = 0; i < 10 && log.calls == 0; i++) {
		assert_int_equal(tevent_loop_once(ev), 0);
	}
	assert_int_equal(log.calls, 1);
	assert_int_equal(log.count, 2);
	talloc_free(mem);
	assert_int_equal(sigaction(SIGUSR2, NULL, &now), 0);
	assert_true(now.sa_handler == SIG_IGN);
	assert_int_equal(sigaction(SIGUSR2, &(struct sigaction){
						.sa_handler = SIG_DFL},
				   NULL), 0);
}

/* ------------------------------------------------------------------ */
/* Other threads waking tt_kit                                          */

struct from_thread {
	struct tevent_threaded_context *tctx;
	struct tevent_immediate *im;
	bool ran;
};

static void thread_imm_ran(struct tevent_context *ev,
			   struct tevent_immediate *im, void *private_data)
{
	((struct from_thread *)private_data)->ran = true;
}

static void *schedule_later(void *arg)
{
	struct from_thread *ft = arg;

	usleep(20000);
	tevent_threaded_schedule_immediate(ft->tctx, ft->im, thread_imm_ran,
					   ft);
	return NULL;
}

static void test_kit_threaded_context(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = kit_ev(mem);
	struct from_thread ft = {0};
	pthread_t thread;

	/* no wakeup descriptor yet */
	assert_int_equal(tevent_common_wakeup(ev), ENOTCONN);
	ft.tctx = tevent_threaded_context_create(mem, ev);
	assert_non_null(ft.tctx);
	ft.im = tevent_create_immediate(mem);
	assert_non_null(ft.im);
	assert_int_equal(kit_of(ev)->nfds, 1);
	/* set up once */
	assert_int_equal(tevent_common_wakeup_init(ev), 0);
	assert_int_equal(kit_of(ev)->nfds, 1);
	/* the wakeup descriptor alone is not an event to wait for */
	assert_false(tevent_common_have_events(ev));

	assert_int_equal(pthread_create(&thread, NULL, schedule_later, &ft),
			 0);
	loop_until_set(ev, &ft.ran);
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_true(kit_of(ev)->polls >= 1);
	talloc_free(mem);
}

static bool proxy_ran;

static void proxy_handler(struct tevent_context *ev,
			  struct tevent_immediate *im, void *private_data)
{
	proxy_ran = true;
}

static void *proxy_send_later(void *arg)
{
	struct tevent_immediate *im = tevent_create_immediate(NULL);

	usleep(20000);
	if (im != NULL) {
		tevent_thread_proxy_schedule(arg, &im, proxy_handler, NULL);
	}
	return NULL;
}

static void test_kit_thread_proxy(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = kit_ev(mem);
	struct tevent_thread_proxy *tp = tevent_thread_proxy_create(ev);
	pthread_t thread;

	/* the message arrives while the loop sleeps in the kit's poll */
	assert_non_null(tp);
	proxy_ran = false;
	assert_int_equal(pthread_create(&thread, NULL, proxy_send_later, tp),
			 0);
	loop_until_set(ev, &proxy_ran);
	assert_int_equal(pthread_join(thread, NULL), 0);
	talloc_free(mem);
}

static void *wake_later(void *arg)
{
	usleep(20000);
	tevent_common_wakeup_fd(*(int *)arg);
	return NULL;
}

static void wakeup_fd_ready(struct tevent_context *ev, struct tevent_fd *fde,
			    uint16_t flags, void *private_data)
{
	*(bool *)private_data = true;
}

static void test_common_wakeup_fd(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = kit_ev(mem);
	bool ready = false;
	pthread_t thread;
	int efd[2];

	/* any descriptor that a write makes readable will do */
	assert_int_equal(pipe(efd), 0);
	assert_non_null(tevent_add_fd(ev, mem, efd[0], TEVENT_FD_READ,
				      wakeup_fd_ready, &ready));
	assert_int_equal(pthread_create(&thread, NULL, wake_later, &efd[1]),
			 0);
	loop_until_set(ev, &ready);
	assert_int_equal(pthread_join(thread, NULL), 0);
	close(efd[0]);
	close(efd[1]);
	talloc_free(mem);
}

/* ------------------------------------------------------------------ */
/* Whole loops on tt_kit                                                */

static void test_kit_turn_order(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = kit_ev(mem);
	struct order_log ol = {0};
	struct tagged ts = {&ol, 's', -1}, ti = {&ol, 'i', -1};
	struct tagged tt = {&ol, 't', -1}, tf = {&ol, 'f', -1};
	struct tevent_immediate *im = tevent_create_immediate(mem);
	int sv[2];
	int i;

	socket_pair(sv);
	tf.fd = sv[0];
	assert_non_null(tevent_add_fd(ev, mem, sv[0], TEVENT_FD_READ,
				      order_fd, &tf));
	assert_int_equal(write(sv[1], "x", 1), 1);
	assert_non_null(tevent_add_timer(ev, mem, tevent_timeval_zero(),
					 order_timer, &tt));
	tevent_schedule_immediate(im, ev, order_imm, &ti);
	assert_non_null(tevent_add_signal(ev, mem, SIGUSR1, 0, order_signal,
					  &ts));
	assert_int_equal(raise(SIGUSR1), 0);

	/* one unit per turn: signal, immediate, timer, then the fd */
	for (i = 1; i <= 4; i++) {
		assert_int_equal(tevent_loop_once(ev), 0);
		assert_int_equal(ol.n, i);
	}
	assert_string_equal(ol.seen, "sitf");
	close(sv[0]);
	close(sv[1]);
	talloc_free(mem);
}

static void test_kit_loop_wait(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = kit_ev(mem);
	struct order_log ol = {0};
	struct tagged t[3] = {{&ol, 'a', -1}, {&ol, 'b', -1}, {&ol, 'i', -1}};
	struct tevent_immediate *im = tevent_create_immediate(mem);

	assert_false(tevent_common_have_events(ev));
	/* nothing to do: returns at once */
	assert_int_equal(tevent_common_loop_wait(ev, __location__), 0);

	assert_non_null(tevent_add_timer(ev, mem,
					 tevent_timeval_current_ofs(0, 20000),
					 order_timer, &t[1]));
	assert_non_null(tevent_add_timer(ev, mem,
					 tevent_timeval_current_ofs(0, 10000),
					 order_timer, &t[0]));
	tevent_schedule_immediate(im, ev, order_imm, &t[2]);
	assert_true(tevent_common_have_events(ev));
	assert_int_equal(tevent_loop_wait(ev), 0);
	assert_string_equal(ol.seen, "iab");
	assert_false(tevent_common_have_events(ev));
	talloc_free(mem);
}

/* A wrapper on tt_kit: its hooks bracket each handler the kit runs. */
struct wrap_log {
	char seen[32];	/* '(' before, ')' after, the handler's tag inside */
	size_t n;
};

struct wrap_state {
	struct wrap_log *log;
};

static void wrap_note(void *ps, char c)
{
	struct wrap_state *ws = talloc_get_type_abort(ps, struct wrap_state);
	struct wrap_log *log = ws->log;

	assert_true(log->n + 1 < sizeof(log->seen));
	log->seen[log->n++] = c;
	log->seen[log->n] = '\0';
}

static bool wrap_before_use(struct tevent_context *wrap_ev, void *ps,
			    struct tevent_context *main_ev,
			    const char *location)
{
	return true;
}

static void wrap_after_use(struct tevent_context *wrap_ev, void *ps,
			   struct tevent_context *main_ev,
			   const char *location)
{
}

/* Each kind's before and after hooks: '(' and ')' into the log. */
#define WRAP_HOOKS(kind, ...)                                              \
	static void wrap_before_##kind(struct tevent_context *wrap_ev,      \
				       void *ps,                            \
				       struct tevent_context *main_ev,      \
				       __VA_ARGS__, const char *handler_name, \
				       const char *location)                \
	{                                                                   \
		wrap_note(ps, '(');                                         \
	}                                                                   \
	static void wrap_after_##kind(struct tevent_context *wrap_ev,       \
				      void *ps,                             \
				      struct tevent_context *main_ev,       \
				      __VA_ARGS__, const char *handler_name, \
				      const char *location)                 \
	{                                                                   \
		wrap_note(ps, ')');                                         \
	}
WRAP_HOOKS(fd, struct tevent_fd *fde, uint16_t flags)
WRAP_HOOKS(timer, struct tevent_timer *te, struct timeval requested_time,
	   struct timeval trigger_time)
WRAP_HOOKS(imm, struct tevent_immediate *im)
WRAP_HOOKS(sig, struct tevent_signal *se, int signum, int count,
	   void *siginfo)

static const struct tevent_wrapper_ops wrap_ops = {
	.name = "tt_kit_wrapper",
	.before_use = wrap_before_use,
	.after_use = wrap_after_use,
	.before_fd_handler = wrap_before_fd,
	.after_fd_handler = wrap_after_fd,
	.before_timer_handler = wrap_before_timer,
	.after_timer_handler = wrap_after_timer,
	.before_immediate_handler = wrap_before_imm,
	.after_immediate_handler = wrap_after_imm,
	.before_signal_handler = wrap_before_sig,
	.after_signal_handler = wrap_after_sig,
};

/* Handlers of events added on a wrapper are handed the wrapper. */
static struct tevent_context *expect_wrap_ev;

static void wrapped_fd(struct tevent_context *ev, struct tevent_fd *fde,
		       uint16_t flags, void *private_data)
{
	assert_ptr_equal(ev, expect_wrap_ev);
	order_fd(ev, fde, flags, private_data);
}

static void wrapped_timer(struct tevent_context *ev, struct tevent_timer *te,
			  struct timeval now, void *private_data)
{
	assert_ptr_equal(ev, expect_wrap_ev);
	order_timer(ev, te, now, private_data);
}

static void test_kit_wrapper(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = kit_ev(mem);
	struct tevent_context *wrap_ev;
	struct wrap_state *ws = NULL;
	struct wrap_log wl = {0};
	struct order_log ol = {0};
	struct tagged tf = {&ol, 'f', -1}, tt = {&ol, 't', -1},
		      ti = {&ol, 'i', -1}, ts = {&ol, 's', -1};
	struct tevent_immediate *im = tevent_create_immediate(mem);
	int sv[2];
	int i;

	wrap_ev = tevent_context_wrapper_create(ev, mem, &wrap_ops, &ws,
						struct wrap_state);
	assert_non_null(wrap_ev);
	assert_true(tevent_context_is_wrapper(wrap_ev));
	ws->log = &wl;
	expect_wrap_ev = wrap_ev;

	socket_pair(sv);
	tf.fd = sv[0];
	assert_non_null(tevent_add_fd(wrap_ev, mem, sv[0], TEVENT_FD_READ,
				      wrapped_fd, &tf));
	assert_int_equal(write(sv[1], "x", 1), 1);
	assert_non_null(tevent_add_timer(wrap_ev, mem, tevent_timeval_zero(),
					 wrapped_timer, &tt));
	tevent_schedule_immediate(im, wrap_ev, order_imm, &ti);
	assert_non_null(tevent_add_signal(wrap_ev, mem, SIGUSR1, 0,
					  order_signal, &ts));
	assert_int_equal(raise(SIGUSR1), 0);

	/* the kit runs all four through the wrapper's hooks */
	for (i = 1; i <= 4; i++) {
		assert_int_equal(tevent_loop_once(ev), 0);
		assert_int_equal(ol.n, i);
	}
	assert_string_equal(ol.seen, "sitf");
	assert_string_equal(wl.seen, "()()()()");
	close(sv[0]);
	close(sv[1]);
	talloc_free(mem);
}

static void test_common_context_destructor(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = kit_ev(mem);
	struct fd_log log = {0};
	struct order_log ol = {0};
	struct tagged t = {&ol, 't', -1};
	struct tevent_fd *fde;
	struct tevent_timer *te;
	struct tevent_immediate *im = tevent_create_immediate(mem);
	int sv[2];

	fde = watch_new_pair(ev, mem, sv, &log);
	te = tevent_add_timer(ev, mem, tevent_timeval_zero(), order_timer,
			      &t);
	assert_non_null(te);
	tevent_schedule_immediate(im, ev, order_imm, &t);
	assert_true(tevent_common_have_events(ev));

	/* what a context's free runs first: every event is let go */
	assert_int_equal(tevent_common_context_destructor(ev), 0);
	assert_false(tevent_common_have_events(ev));
	assert_int_equal(tevent_fd_get_flags(fde), 0);

	/* the events outlive it harmlessly, in any order */
	talloc_free(te);
	talloc_free(ev);
	talloc_free(fde);
	talloc_free(im);
	assert_int_equal(log.calls, 0);
	assert_int_equal(ol.n, 0);
	close(sv[0]);
	close(sv[1]);
	talloc_free(mem);
}

/* ------------------------------------------------------------------ */
/* Helpers that need no backend of their own                            */

struct trace_log {
	int calls;
	const void *object;
	int tp;
	void *private_data;
};

static struct trace_log tlog;

static void trace_point(enum tevent_trace_point tp, void *private_data)
{
	tlog.calls++;
	tlog.object = NULL;
	tlog.tp = tp;
	tlog.private_data = private_data;
}

#define TRACE_RECORDER(name, type)                                        \
	static void name(type *obj, enum tevent_event_trace_point tp,     \
			 void *private_data)                               \
	{                                                                  \
		tlog.calls++;                                              \
		tlog.object = obj;                                         \
		tlog.tp = tp;                                              \
		tlog.private_data = private_data;                          \
	}
TRACE_RECORDER(trace_fd, struct tevent_fd)
TRACE_RECORDER(trace_signal, struct tevent_signal)
TRACE_RECORDER(trace_timer, struct tevent_timer)
TRACE_RECORDER(trace_immediate, struct tevent_immediate)
TRACE_RECORDER(trace_queue, struct tevent_queue_entry)

static void expect_trace(int calls, const void *object, int tp, void *priv)
{
	assert_int_equal(tlog.calls, calls);
	assert_ptr_equal(tlog.object, object);
	assert_int_equal(tlog.tp, tp);
	assert_ptr_equal(tlog.private_data, priv);
}

static void test_trace_invokers(void **state)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	int marker;
	/* the invokers only hand the object on; any pointer will do */
	void *obj = &marker;

	assert_non_null(ev);
	memset(&tlog, 0, sizeof(tlog));

	/* with no callback set, nothing happens */
	tevent_trace_point_callback(ev, TEVENT_TRACE_BEFORE_WAIT);
	tevent_trace_fd_callback(ev, obj, TEVENT_EVENT_TRACE_ATTACH);
	tevent_trace_signal_callback(ev, obj, TEVENT_EVENT_TRACE_ATTACH);
	tevent_trace_timer_callback(ev, obj, TEVENT_EVENT_TRACE_ATTACH);
	tevent_trace_immediate_callback(ev, obj, TEVENT_EVENT_TRACE_ATTACH);
	tevent_trace_queue_callback(ev, obj, TEVENT_EVENT_TRACE_ATTACH);
	assert_int_equal(tlog.calls, 0);

	tevent_set_trace_callback(ev, trace_point, &marker);
	tevent_trace_point_callback(ev, TEVENT_TRACE_AFTER_WAIT);
	expect_trace(1, NULL, TEVENT_TRACE_AFTER_WAIT, &marker);

	tevent_set_trace_fd_callback(ev, trace_fd, ev);
	tevent_trace_fd_callback(ev, obj, TEVENT_EVENT_TRACE_BEFORE_HANDLER);
	expect_trace(2, obj, TEVENT_EVENT_TRACE_BEFORE_HANDLER, ev);

	tevent_set_trace_signal_callback(ev, trace_signal, ev);
	tevent_trace_signal_callback(ev, obj, TEVENT_EVENT_TRACE_DETACH);
	expect_trace(3, obj, TEVENT_EVENT_TRACE_DETACH, ev);

	tevent_set_trace_timer_callback(ev, trace_timer, ev);
	tevent_trace_timer_callback(ev, obj, TEVENT_EVENT_TRACE_ATTACH);
	expect_trace(4, obj, TEVENT_EVENT_TRACE_ATTACH, ev);

	tevent_set_trace_immediate_callback(ev, trace_immediate, ev);
	tevent_trace_immediate_callback(ev, obj,
					TEVENT_EVENT_TRACE_BEFORE_HANDLER);
	expect_trace(5, obj, TEVENT_EVENT_TRACE_BEFORE_HANDLER, ev);

	tevent_set_trace_queue_callback(ev, trace_queue, ev);
	tevent_trace_queue_callback(ev, obj, TEVENT_EVENT_TRACE_DETACH);
	expect_trace(6, obj, TEVENT_EVENT_TRACE_DETACH, ev);

	/* each invoker calls its own callback only */
	tevent_set_trace_fd_callback(ev, NULL, NULL);
	tevent_trace_fd_callback(ev, obj, TEVENT_EVENT_TRACE_ATTACH);
	assert_int_equal(tlog.calls, 6);
	talloc_free(ev);
}

struct hook_log {
	int calls;
	int begins;
	int ends;
	int last_level;
	void *begin_stack;
	void *end_stack;
	int fail_begin;
	int fail_end;
};

static int nesting_hook(struct tevent_context *ev, void *private_data,
			uint32_t level, bool begin, void *stack_ptr,
			const char *location)
{
	struct hook_log *h = private_data;

	h->calls++;
	h->last_level = (int)level;
	if (begin) {
		h->begins++;
		h->begin_stack = stack_ptr;
		return h->fail_begin;
	}
	h->ends++;
	h->end_stack = stack_ptr;
	return h->fail_end;
}

static int other_hook(struct tevent_context *ev, void *private_data,
		      uint32_t level, bool begin, void *stack_ptr,
		      const char *location)
{
	return 0;
}

/* From inside a handler: one nested turn that runs an immediate. */
static void one_inner_turn(struct tevent_context *ev)
{
	struct tevent_immediate *inner = tevent_create_immediate(ev);
	int count = 0;

	assert_non_null(inner);
	tevent_schedule_immediate(inner, ev, count_imm, &count);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(count, 1);
	talloc_free(inner);
}

static void nested_turn(struct tevent_context *ev, struct tevent_immediate *im,
			void *private_data)
{
	struct hook_log *h = private_data;

	one_inner_turn(ev);
	/* the inner call saw level 2 on both sides */
	assert_int_equal(h->last_level, 2);
}

/* A context for the hook cases, and an immediate on it. */
static struct tevent_context *hook_case_ev(struct tevent_immediate **im)
{
	struct tevent_context *ev = tevent_context_init(NULL);

	assert_non_null(ev);
	*im = tevent_create_immediate(ev);
	assert_non_null(*im);
	return ev;
}

static void test_nesting_hook(void **state)
{
	struct tevent_immediate *im;
	struct tevent_context *ev = hook_case_ev(&im);
	struct hook_log h = {0};
	int count = 0;

	tevent_loop_set_nesting_hook(ev, nesting_hook, &h);

	/* called around every turn, with one stack slot for both calls */
	tevent_schedule_immediate(im, ev, count_imm, &count);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(count, 1);
	assert_int_equal(h.begins, 1);
	assert_int_equal(h.ends, 1);
	assert_int_equal(h.last_level, 1);
	assert_non_null(h.begin_stack);
	assert_ptr_equal(h.begin_stack, h.end_stack);

	/* a refusing begin skips the turn and is the result */
	h.fail_begin = 7;
	tevent_schedule_immediate(im, ev, count_imm, &count);
	assert_int_equal(tevent_loop_once(ev), 7);
	assert_int_equal(count, 1);
	assert_int_equal(h.begins, 2);
	assert_int_equal(h.ends, 1);

	/* a failing end comes after the turn ran */
	h.fail_begin = 0;
	h.fail_end = 9;
	assert_int_equal(tevent_loop_once(ev), 9);
	assert_int_equal(count, 2);
	assert_int_equal(h.ends, 2);
	h.fail_end = 0;

	/* nested turns see their depth */
	tevent_loop_allow_nesting(ev);
	tevent_schedule_immediate(im, ev, nested_turn, &h);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(h.last_level, 1);
	assert_int_equal(h.begins, 5);
	assert_int_equal(h.ends, 4);

	/* setting the same hook again is fine, another one is refused */
	tt_record_aborts();
	tevent_loop_set_nesting_hook(ev, nesting_hook, &h);
	assert_int_equal(tt_aborts, 0);
	tevent_loop_set_nesting_hook(ev, other_hook, &h);
	assert_int_equal(tt_aborts, 1);
	assert_non_null(strstr(tt_abort_reason, "nesting hook"));
	tevent_set_abort_fn(NULL);
	talloc_free(ev);
}

/*
 * tevent_re_initialise() from inside a handler sets the nesting level to
 * 0 while a loop call is still on the stack; that call's return then
 * takes the counter one below zero, where it stays: every later call
 * counts one level too few.  Upstream calls the hook only for a level
 * above zero, so from then on a top-level turn does not call it, and a
 * nested one does, with level 1.
 */
static void reinit_and_hook(struct tevent_context *ev,
			    struct tevent_immediate *im, void *private_data)
{
	assert_int_equal(tevent_re_initialise(ev), 0);
	tevent_loop_set_nesting_hook(ev, nesting_hook, private_data);
}

static void nested_once(struct tevent_context *ev, struct tevent_immediate *im,
			void *private_data)
{
	one_inner_turn(ev);
}

static void test_nesting_hook_after_reinit_in_handler(void **state)
{
	struct tevent_immediate *im;
	struct tevent_context *ev = hook_case_ev(&im);
	struct hook_log h = {0};
	int count = 0;

	tevent_schedule_immediate(im, ev, reinit_and_hook, &h);
	assert_int_equal(tevent_loop_once(ev), 0);
	/* set inside the turn, but that turn's end is at level 0 */
	assert_int_equal(h.calls, 0);

	tevent_schedule_immediate(im, ev, count_imm, &count);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(count, 1);
	assert_int_equal(h.calls, 0);

	/* nesting is still refused only above level 1: allow it anyway, as
	 * the nested call is at level 1 now */
	tevent_schedule_immediate(im, ev, nested_once, NULL);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(h.begins, 1);
	assert_int_equal(h.ends, 1);
	assert_int_equal(h.last_level, 1);
	talloc_free(ev);
}

static int parent_is_going;

static int check_in_destructor(int *child)
{
	tt_aborts = 0;
	tevent_common_check_double_free(child, "second free of a child");
	parent_is_going = tt_aborts == 0 ? 1 : -1;
	return 0;
}

static void test_check_double_free(void **state)
{
	TALLOC_CTX *parent = talloc_new(NULL);
	int *child = talloc(parent, int);

	assert_non_null(child);
	tt_record_aborts();

	/* outside a free of the parent, it is a caller's bug */
	tevent_common_check_double_free(child, "second free of a child");
	assert_int_equal(tt_aborts, 1);
	assert_string_equal(tt_abort_reason, "second free of a child");

	/* while the parent goes, talloc reaches the child anyway */
	talloc_set_destructor(child, check_in_destructor);
	parent_is_going = 0;
	talloc_free(parent);
	assert_int_equal(parent_is_going, 1);
	tevent_set_abort_fn(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kit_fd_flags),
		cmocka_unit_test(test_kit_fd_free_in_handler),
		cmocka_unit_test(test_invoke_fd_handler_removed),
		cmocka_unit_test(test_kit_fd_close_fn),
		cmocka_unit_test(test_kit_timers),
		cmocka_unit_test(test_loop_timer_delay),
		cmocka_unit_test(test_invoke_timer_handler),
		cmocka_unit_test(test_kit_immediates),
		cmocka_unit_test(test_invoke_immediate_handler),
		cmocka_unit_test(test_kit_signal),
		cmocka_unit_test(test_invoke_signal_handler),
		cmocka_unit_test(test_cleanup_pending_signal_handlers),
		cmocka_unit_test(test_kit_threaded_context),
		cmocka_unit_test(test_kit_thread_proxy),
		cmocka_unit_test(test_common_wakeup_fd),
		cmocka_unit_test(test_kit_turn_order),
		cmocka_unit_test(test_kit_loop_wait),
		cmocka_unit_test(test_kit_wrapper),
		cmocka_unit_test(test_common_context_destructor),
		cmocka_unit_test(test_trace_invokers),
		cmocka_unit_test(test_nesting_hook),
		cmocka_unit_test(test_nesting_hook_after_reinit_in_handler),
		cmocka_unit_test(test_check_double_free),
	};

	tt_check_library();
	alarm(120);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Tests for event contexts and backends: creation by name and by ops,
 * the backend registry, the default backend, talloc naming of every object
 * kind, and what happens to events when their context goes away first.
 */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>

#include "common/tt.h"

/* handlers have fixed signatures and rarely use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"

/* The backends every Linux build of upstream tevent registers. */
static const char *const builtin_backends[] = {
	"epoll", "poll", "poll_mt", "standard",
};
#define N_BUILTIN (sizeof(builtin_backends) / sizeof(builtin_backends[0]))

/* Name under which test_register_backend adds its own backend. */
#define CUSTOM_NAME "tt_custom"

static bool is_builtin(const char *name)
{
	size_t i;

	for (i = 0; i < N_BUILTIN; i++) {
		if (strcmp(name, builtin_backends[i]) == 0) {
			return true;
		}
	}
	return false;
}

static void count_imm(struct tevent_context *ev,
		      struct tevent_immediate *im,
		      void *private_data)
{
	int *count = private_data;
	(*count)++;
}

static void count_timer(struct tevent_context *ev,
			struct tevent_timer *te,
			struct timeval now,
			void *private_data)
{
	int *count = private_data;
	(*count)++;
}

static void never_fd(struct tevent_context *ev,
		     struct tevent_fd *fde,
		     uint16_t flags,
		     void *private_data)
{
	fail_msg("fd handler of an inert event ran");
}

static void never_timer(struct tevent_context *ev,
			struct tevent_timer *te,
			struct timeval now,
			void *private_data)
{
	fail_msg("timer handler of an inert event ran");
}

static void never_imm(struct tevent_context *ev,
		      struct tevent_immediate *im,
		      void *private_data)
{
	fail_msg("immediate handler of an inert event ran");
}

static void never_signal(struct tevent_context *ev,
			 struct tevent_signal *se,
			 int signum, int count, void *siginfo,
			 void *private_data)
{
	fail_msg("signal handler of an inert event ran");
}

/* Runs one immediate on ev to prove the context actually works. */
static void assert_context_runs(struct tevent_context *ev)
{
	struct tevent_immediate *im;
	int count = 0;

	im = tevent_create_immediate(ev);
	assert_non_null(im);
	tevent_schedule_immediate(im, ev, count_imm, &count);
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(count, 1);
	talloc_free(im);
}

/* ------------------------------------------------------------------ */

static void test_backend_list(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	const char **list;
	bool seen[N_BUILTIN] = { false };
	size_t i, j, n;

	(void)state;
	list = tevent_backend_list(mem);
	assert_non_null(list);
	/* the array is handed to the caller's memory context */
	assert_ptr_equal(talloc_parent(list), mem);

	for (n = 0; list[n] != NULL; n++) {
		/* every name is listed once */
		for (j = 0; j < n; j++) {
			assert_string_not_equal(list[j], list[n]);
		}
		for (i = 0; i < N_BUILTIN; i++) {
			if (strcmp(list[n], builtin_backends[i]) == 0) {
				seen[i] = true;
			}
		}
		/* only the builtins, or a backend this program registered */
		assert_true(is_builtin(list[n]) ||
			    strcmp(list[n], CUSTOM_NAME) == 0);
	}
	for (i = 0; i < N_BUILTIN; i++) {
		if (!seen[i]) {
			fail_msg("backend %s missing from the list",
				 builtin_backends[i]);
		}
	}

	/* each call returns a fresh array */
	assert_true(tevent_backend_list(mem) != list);

	talloc_free(mem);
}

static void test_init_default(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev;

	(void)state;
	ev = tevent_context_init(mem);
	assert_non_null(ev);
	assert_ptr_equal(talloc_parent(ev), mem);
	assert_string_equal(talloc_get_name(ev), "struct tevent_context");
	assert_ptr_equal(talloc_get_type_abort(ev, struct tevent_context), ev);
	assert_true(tevent_signal_support(ev));
	assert_context_runs(ev);

	/* a NULL parent is fine too */
	talloc_free(mem);
	ev = tevent_context_init(NULL);
	assert_non_null(ev);
	assert_context_runs(ev);
	talloc_free(ev);
}

static void test_init_byname_each(void **state)
{
	const char **list = tevent_backend_list(NULL);
	size_t i;

	(void)state;
	assert_non_null(list);
	for (i = 0; list[i] != NULL; i++) {
		struct tevent_context *ev;

		ev = tevent_context_init_byname(NULL, list[i]);
		if (ev == NULL) {
			fail_msg("backend %s could not be created", list[i]);
		}
		assert_string_equal(talloc_get_name(ev),
				    "struct tevent_context");
		assert_true(tevent_signal_support(ev));
		assert_context_runs(ev);
		talloc_free(ev);
	}
	talloc_free(list);
}

static void test_init_byname_unknown(void **state)
{
	(void)state;
	assert_null(tevent_context_init_byname(NULL, "no-such-backend"));
	assert_null(tevent_context_init_byname(NULL, ""));
	/* names are matched exactly */
	assert_null(tevent_context_init_byname(NULL, "EPOLL"));
	assert_null(tevent_context_init_byname(NULL, "poll "));
}

static void test_init_byname_null(void **state)
{
	struct tevent_context *ev;

	(void)state;
	/* NULL means the default backend */
	ev = tevent_context_init_byname(NULL, NULL);
	assert_non_null(ev);
	assert_context_runs(ev);
	talloc_free(ev);
}

static void test_find_ops(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < N_BUILTIN; i++) {
		const struct tevent_ops *ops;

		ops = tevent_find_ops_byname(builtin_backends[i]);
		assert_non_null(ops);
		/* the same table every time */
		assert_ptr_equal(ops,
				 tevent_find_ops_byname(builtin_backends[i]));
		assert_non_null(ops->context_init);
		/*
		 * Upstream's "standard" table holds nothing but
		 * context_init: setting up a context swaps in the epoll
		 * (or, failing that, poll) table.  The real backends fill
		 * in everything.
		 */
		if (strcmp(builtin_backends[i], "standard") != 0) {
			assert_non_null(ops->add_fd);
			assert_non_null(ops->loop_once);
			assert_non_null(ops->loop_wait);
		}
	}
	assert_null(tevent_find_ops_byname("no-such-backend"));
	/* NULL names the default backend, "standard" unless changed */
	assert_ptr_equal(tevent_find_ops_byname(NULL),
			 tevent_find_ops_byname("standard"));
}

static void test_init_ops(void **state)
{
	const struct tevent_ops *ops;
	struct tevent_context *ev;
	TALLOC_CTX *mem = talloc_new(NULL);

	(void)state;
	ops = tevent_find_ops_byname("poll");
	assert_non_null(ops);
	ev = tevent_context_init_ops(mem, ops, NULL);
	assert_non_null(ev);
	assert_ptr_equal(talloc_parent(ev), mem);
	assert_string_equal(talloc_get_name(ev), "struct tevent_context");
	assert_context_runs(ev);
	talloc_free(mem);
}

/* A backend that is "poll" plus a counter of contexts it set up. */
static struct tevent_ops custom_ops;
static int custom_inits;

static int custom_context_init(struct tevent_context *ev)
{
	const struct tevent_ops *poll_ops = tevent_find_ops_byname("poll");

	custom_inits++;
	return poll_ops->context_init(ev);
}

static void setup_custom_ops(void)
{
	const struct tevent_ops *poll_ops = tevent_find_ops_byname("poll");

	assert_non_null(poll_ops);
	custom_ops = *poll_ops;
	custom_ops.context_init = custom_context_init;
}

static void test_register_backend(void **state)
{
	static struct tevent_ops other_ops;
	const char **list;
	struct tevent_context *ev;
	int fired = 0;
	bool listed = false;
	size_t i;

	(void)state;
	setup_custom_ops();
	assert_true(tevent_register_backend(CUSTOM_NAME, &custom_ops));
	assert_ptr_equal(tevent_find_ops_byname(CUSTOM_NAME), &custom_ops);

	list = tevent_backend_list(NULL);
	for (i = 0; list[i] != NULL; i++) {
		if (strcmp(list[i], CUSTOM_NAME) == 0) {
			listed = true;
		}
	}
	assert_true(listed);
	talloc_free(list);

	custom_inits = 0;
	ev = tevent_context_init_byname(NULL, CUSTOM_NAME);
	assert_non_null(ev);
	assert_int_equal(custom_inits, 1);
	assert_context_runs(ev);
	assert_non_null(tevent_add_timer(ev, ev, tevent_timeval_zero(),
					 count_timer, &fired));
	assert_int_equal(tevent_loop_once(ev), 0);
	assert_int_equal(fired, 1);
	talloc_free(ev);

	/*
	 * Registering a taken name again reports success but keeps the
	 * first registration.
	 */
	other_ops = custom_ops;
	assert_true(tevent_register_backend(CUSTOM_NAME, &other_ops));
	assert_ptr_equal(tevent_find_ops_byname(CUSTOM_NAME), &custom_ops);
	assert_true(tevent_register_backend("poll", &other_ops));
	assert_true(tevent_find_ops_byname("poll") != &other_ops);
}

static void test_default_backend(void **state)
{
	struct tevent_context *ev;

	(void)state;
	/* test_register_backend ran before and added CUSTOM_NAME */
	assert_ptr_equal(tevent_find_ops_byname(CUSTOM_NAME), &custom_ops);

	tevent_set_default_backend(CUSTOM_NAME);
	assert_ptr_equal(tevent_find_ops_byname(NULL), &custom_ops);
	custom_inits = 0;
	ev = tevent_context_init(NULL);
	assert_non_null(ev);
	assert_int_equal(custom_inits, 1);
	talloc_free(ev);
	ev = tevent_context_init_byname(NULL, NULL);
	assert_non_null(ev);
	assert_int_equal(custom_inits, 2);
	talloc_free(ev);

	tevent_set_default_backend("poll");
	assert_ptr_equal(tevent_find_ops_byname(NULL),
			 tevent_find_ops_byname("poll"));

	/* an unknown default makes tevent_context_init() fail */
	tevent_set_default_backend("no-such-backend");
	assert_null(tevent_find_ops_byname(NULL));
	assert_null(tevent_context_init(NULL));

	/* NULL goes back to the built-in default */
	tevent_set_default_backend(NULL);
	assert_ptr_equal(tevent_find_ops_byname(NULL),
			 tevent_find_ops_byname("standard"));
	ev = tevent_context_init(NULL);
	assert_non_null(ev);
	assert_context_runs(ev);
	talloc_free(ev);
}

static void test_num_signals(void **state)
{
	size_t qc = tevent_sa_info_queue_count();

	(void)state;
	/* every classic signal and the realtime range fit */
	assert_true(tevent_num_signals() > (size_t)SIGRTMAX);
	/* upstream keeps 256 siginfo slots per signal (a power of two) */
	assert_int_equal(qc, 256);
}

/* ------------------------------------------------------------------ */

static void test_talloc_names(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev;
	struct tevent_fd *fde;
	struct tevent_timer *te;
	struct tevent_immediate *im;
	struct tevent_signal *se;
	int sp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	ev = tevent_context_init(mem);
	assert_non_null(ev);

	fde = tevent_add_fd(ev, mem, sp[0], TEVENT_FD_READ, never_fd, NULL);
	assert_non_null(fde);
	assert_string_equal(talloc_get_name(fde), "struct tevent_fd");
	assert_ptr_equal(talloc_get_type_abort(fde, struct tevent_fd), fde);
	assert_ptr_equal(talloc_parent(fde), mem);

	te = tevent_add_timer(ev, mem, tevent_timeval_current_ofs(100, 0),
			      never_timer, NULL);
	assert_non_null(te);
	assert_string_equal(talloc_get_name(te), "struct tevent_timer");
	assert_ptr_equal(talloc_get_type_abort(te, struct tevent_timer), te);
	assert_ptr_equal(talloc_parent(te), mem);

	im = tevent_create_immediate(mem);
	assert_non_null(im);
	assert_string_equal(talloc_get_name(im), "struct tevent_immediate");
	assert_ptr_equal(talloc_get_type_abort(im, struct tevent_immediate),
			 im);
	assert_ptr_equal(talloc_parent(im), mem);
	/* scheduling does not change the name or the parent */
	tevent_schedule_immediate(im, ev, never_imm, NULL);
	assert_string_equal(talloc_get_name(im), "struct tevent_immediate");
	assert_ptr_equal(talloc_parent(im), mem);

	se = tevent_add_signal(ev, mem, SIGUSR1, 0, never_signal, NULL);
	assert_non_null(se);
	assert_string_equal(talloc_get_name(se), "struct tevent_signal");
	assert_ptr_equal(talloc_get_type_abort(se, struct tevent_signal), se);
	assert_ptr_equal(talloc_parent(se), mem);

	talloc_free(fde);
	talloc_free(te);
	talloc_free(im);
	talloc_free(se);
	talloc_free(ev);
	close(sp[0]);
	close(sp[1]);
	talloc_free(mem);
}

/* A NULL memory context makes the event a child of its context. */
static void test_null_mem_ctx_parent(void **state)
{
	struct tevent_context *ev;
	struct tevent_fd *fde;
	struct tevent_timer *te;
	struct tevent_signal *se;
	struct tevent_immediate *im;
	int sp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	ev = tevent_context_init(NULL);
	assert_non_null(ev);

	fde = tevent_add_fd(ev, NULL, sp[0], TEVENT_FD_READ, never_fd, NULL);
	assert_non_null(fde);
	assert_ptr_equal(talloc_parent(fde), ev);

	te = tevent_add_timer(ev, NULL, tevent_timeval_current_ofs(100, 0),
			      never_timer, NULL);
	assert_non_null(te);
	assert_ptr_equal(talloc_parent(te), ev);

	se = tevent_add_signal(ev, NULL, SIGUSR1, 0, never_signal, NULL);
	assert_non_null(se);
	assert_ptr_equal(talloc_parent(se), ev);

	/* immediates are created without a context: a NULL parent stays */
	im = tevent_create_immediate(NULL);
	assert_non_null(im);
	assert_null(talloc_parent(im));
	talloc_free(im);

	talloc_free(ev);
	close(sp[0]);
	close(sp[1]);
}

/* ------------------------------------------------------------------ */

struct close_rec {
	int calls;
	int fd;
	struct tevent_context *ev;
	void *private_data;
};

static void record_close(struct tevent_context *ev,
			 struct tevent_fd *fde,
			 int fd,
			 void *private_data)
{
	struct close_rec *rec = private_data;

	rec->calls++;
	rec->fd = fd;
	rec->ev = ev;
	rec->private_data = private_data;
}

static void fd_close_noop_handler(struct tevent_context *ev,
				  struct tevent_fd *fde,
				  uint16_t flags,
				  void *private_data)
{
	fail_msg("fd handler ran");
}

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

static void dummy_sig_handler(int sig)
{
	(void)sig;
}

/*
 * Freeing a context while events still point at it leaves those events
 * inert: their handlers never run, they can still be freed later, and an
 * fd event's close function still runs (with a NULL context).  The signal
 * disposition is handed back when the context goes, not when the (now
 * inert) signal event is freed later.
 */
static void test_free_context_with_events(void **state)
{
	TALLOC_CTX *owner = talloc_new(NULL);
	struct tevent_context *ev, *ev2;
	struct tevent_fd *fde;
	struct tevent_timer *te;
	struct tevent_immediate *im;
	struct tevent_signal *se;
	struct close_rec rec = { 0 };
	struct sigaction mine, cur;
	int sp[2];
	int count = 0;

	(void)state;
	memset(&mine, 0, sizeof(mine));
	mine.sa_handler = dummy_sig_handler;
	sigemptyset(&mine.sa_mask);
	assert_int_equal(sigaction(SIGUSR2, &mine, NULL), 0);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	assert_int_equal(write(sp[1], "x", 1), 1);

	ev = tevent_context_init(NULL);
	assert_non_null(ev);

	/* the close function gets the handler's private data */
	fde = tevent_add_fd(ev, owner, sp[0], TEVENT_FD_READ,
			    fd_close_noop_handler, &rec);
	assert_non_null(fde);
	tevent_fd_set_close_fn(fde, record_close);

	te = tevent_add_timer(ev, owner, tevent_timeval_zero(),
			      never_timer, NULL);
	assert_non_null(te);
	im = tevent_create_immediate(owner);
	assert_non_null(im);
	tevent_schedule_immediate(im, ev, never_imm, NULL);
	se = tevent_add_signal(ev, owner, SIGUSR2, 0, never_signal, NULL);
	assert_non_null(se);

	assert_int_equal(sigaction(SIGUSR2, NULL, &cur), 0);
	assert_true(cur.sa_handler != dummy_sig_handler);

	talloc_free(ev);

	/* the previous disposition is back already */
	assert_int_equal(sigaction(SIGUSR2, NULL, &cur), 0);
	assert_true(cur.sa_handler == dummy_sig_handler);

	/* the fd event is detached: no flags, setting them is ignored */
	assert_int_equal(tevent_fd_get_flags(fde), 0);
	tevent_fd_set_flags(fde, TEVENT_FD_READ | TEVENT_FD_WRITE);
	assert_int_equal(tevent_fd_get_flags(fde), 0);
	assert_int_equal(rec.calls, 0);

	/* the immediate can be used with another context */
	ev2 = tevent_context_init(NULL);
	assert_non_null(ev2);
	tevent_schedule_immediate(im, ev2, count_imm, &count);
	assert_int_equal(tevent_loop_once(ev2), 0);
	assert_int_equal(count, 1);

	/* freeing the leftovers works and runs the close function */
	assert_int_equal(talloc_free(fde), 0);
	assert_int_equal(rec.calls, 1);
	assert_int_equal(rec.fd, sp[0]);
	assert_null(rec.ev);
	assert_ptr_equal(rec.private_data, &rec);
	assert_int_equal(talloc_free(te), 0);
	assert_int_equal(talloc_free(im), 0);
	assert_int_equal(talloc_free(se), 0);
	assert_int_equal(sigaction(SIGUSR2, NULL, &cur), 0);
	assert_true(cur.sa_handler == dummy_sig_handler);

	talloc_free(ev2);
	talloc_free(owner);
	close(sp[0]);
	close(sp[1]);
	signal(SIGUSR2, SIG_DFL);
}

/*
 * Events whose talloc parent is the context go away with it; auto-close
 * descriptors are closed on the way, and the close function sees a NULL
 * context because the events were detached first.
 */
static void test_free_context_frees_children(void **state)
{
	struct tevent_context *ev;
	struct tevent_fd *fde, *fde2;
	struct close_rec rec = { 0 };
	int sp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	ev = tevent_context_init(NULL);
	assert_non_null(ev);

	fde = tevent_add_fd(ev, ev, sp[0], TEVENT_FD_READ,
			    fd_close_noop_handler, &rec);
	assert_non_null(fde);
	tevent_fd_set_close_fn(fde, record_close);
	fde2 = tevent_add_fd(ev, NULL, sp[1], TEVENT_FD_READ,
			     fd_close_noop_handler, NULL);
	assert_non_null(fde2);
	tevent_fd_set_auto_close(fde2);
	assert_non_null(tevent_add_timer(ev, NULL, tevent_timeval_zero(),
					 never_timer, NULL));
	assert_non_null(tevent_add_signal(ev, ev, SIGUSR2, 0,
					  never_signal, NULL));

	talloc_free(ev);

	assert_int_equal(rec.calls, 1);
	assert_int_equal(rec.fd, sp[0]);
	assert_null(rec.ev);
	assert_true(fd_is_open(sp[0]));
	assert_false(fd_is_open(sp[1]));
	close(sp[0]);
}

/*
 * A context that is freed from its parent (rather than directly) behaves
 * the same, and freeing a context that was never used is fine.
 */
static void test_free_context_via_parent(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	TALLOC_CTX *owner = talloc_new(NULL);
	struct tevent_context *ev;
	struct tevent_timer *te;

	(void)state;
	ev = tevent_context_init(mem);
	assert_non_null(ev);
	te = tevent_add_timer(ev, owner, tevent_timeval_zero(),
			      never_timer, NULL);
	assert_non_null(te);
	assert_int_equal(talloc_free(mem), 0);
	assert_int_equal(talloc_free(te), 0);
	talloc_free(owner);

	ev = tevent_context_init(NULL);
	assert_non_null(ev);
	assert_int_equal(talloc_free(ev), 0);
}

/* Many contexts may coexist and each runs only its own events. */
static void test_independent_contexts(void **state)
{
	struct tevent_context *ev[4];
	int counts[4] = { 0 };
	size_t i;

	(void)state;
	for (i = 0; i < 4; i++) {
		ev[i] = tevent_context_init_byname(NULL, builtin_backends[i]);
		assert_non_null(ev[i]);
		assert_non_null(tevent_add_timer(ev[i], ev[i],
						 tevent_timeval_zero(),
						 count_timer, &counts[i]));
	}
	assert_int_equal(tevent_loop_once(ev[2]), 0);
	assert_int_equal(counts[0], 0);
	assert_int_equal(counts[1], 0);
	assert_int_equal(counts[2], 1);
	assert_int_equal(counts[3], 0);
	for (i = 0; i < 4; i++) {
		assert_int_equal(tevent_loop_wait(ev[i]), 0);
		assert_int_equal(counts[i], 1);
		talloc_free(ev[i]);
	}
}

static int replacement_calls;

static int replacement_destructor(struct tevent_context *ev)
{
	(void)ev;
	replacement_calls++;
	return 0;
}

static void add_count_signal(struct tevent_context *ev,
			     struct tevent_signal *se, int signum, int count,
			     void *siginfo, void *private_data)
{
	(void)ev;
	(void)se;
	(void)signum;
	(void)siginfo;
	*(int *)private_data += count;
}

/*
 * A caller may replace a context's talloc destructor with its own (Samba's
 * root process does, to unhook its messaging first).  Freeing such a
 * context must still take it out of everything process-wide: a signal
 * event it leaves behind (allocated elsewhere) is no longer served, the
 * contexts created before and after it come and go, and fork() still
 * works.  Before the fix the left-behind handler ran with the freed
 * context, and the process-wide context list kept a dangling entry that
 * the next context's free or a fork wrote through (heap corruption in
 * Samba's AD server at shutdown; ASan reports it as a use after free).
 */
static void test_context_destructor_replaced(void **state)
{
	size_t i;

	(void)state;
	TT_SKIP_ON_UPSTREAM("a signal event left behind runs with the freed "
			    "context");
	for (i = 0; i < 4; i++) {
		TALLOC_CTX *owner = talloc_new(NULL);
		struct tevent_context *before, *ev, *after;
		int left_behind = 0, served = 0, status;
		pid_t pid;

		before = tevent_context_init_byname(NULL, builtin_backends[i]);
		ev = tevent_context_init_byname(NULL, builtin_backends[i]);
		assert_non_null(before);
		assert_non_null(ev);
		assert_non_null(tevent_add_signal(ev, owner, SIGUSR2, 0,
						  add_count_signal, &left_behind));
		talloc_set_destructor(ev, replacement_destructor);
		replacement_calls = 0;
		assert_int_equal(talloc_free(ev), 0);
		assert_int_equal(replacement_calls, 1);

		assert_non_null(tevent_add_signal(before, before, SIGUSR2, 0,
						  add_count_signal, &served));
		assert_int_equal(kill(getpid(), SIGUSR2), 0);
		assert_int_equal(tevent_loop_once(before), 0);
		assert_int_equal(served, 1);
		assert_int_equal(left_behind, 0);

		after = tevent_context_init_byname(NULL, builtin_backends[i]);
		assert_non_null(after);
		talloc_free(before);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			int code = talloc_free(after) == 0 ? 0 : 1;

			/* nothing left for valgrind's leak check in the child */
			talloc_free(owner);
			_exit(code);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		talloc_free(after);
		talloc_free(owner);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backend_list),
		cmocka_unit_test(test_init_default),
		cmocka_unit_test(test_init_byname_each),
		cmocka_unit_test(test_init_byname_unknown),
		cmocka_unit_test(test_init_byname_null),
		cmocka_unit_test(test_find_ops),
		cmocka_unit_test(test_init_ops),
		/* the next two depend on each other, keep the order */
		cmocka_unit_test(test_register_backend),
		cmocka_unit_test(test_default_backend),
		cmocka_unit_test(test_backend_list),
		cmocka_unit_test(test_num_signals),
		cmocka_unit_test(test_talloc_names),
		cmocka_unit_test(test_null_mem_ctx_parent),
		cmocka_unit_test(test_free_context_with_events),
		cmocka_unit_test(test_free_context_frees_children),
		cmocka_unit_test(test_free_context_via_parent),
		cmocka_unit_test(test_independent_contexts),
		cmocka_unit_test(test_context_destructor_replaced),
	};

	tt_check_library();
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_threadpool.c - libtevent_threadpool: task states, sync, stop, outlive,
 * queue depth, finish and free in every state, jobs, dump.
 *
 * Built against Debian's tevent.h when it is installed, so that the same
 * binary runs on our libtevent and on Debian's (run-tests --lib ...).
 *
 * Task functions run in pool threads, where cmocka must not be used: they
 * only record what happened in a "probe" (under its mutex); the loop
 * thread checks.  Tasks block on the probe until the test hands out
 * permits, so every state is observed without depending on timing.
 */
#define TEVENT_DEPRECATED 1  /* tevent_loop_allow_nesting() */

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>

#include "tevent_threadpool.h"
#include "tt.h"

#define ST_QUEUED TEVENT_TP_STATE_QUEUED
#define ST_RUNNING TEVENT_TP_STATE_RUNNING
#define ST_SYNCING TEVENT_TP_STATE_SYNCING
#define ST_STOPPING TEVENT_TP_STATE_STOPPING
#define ST_FINISHED TEVENT_TP_STATE_FINISHED
#define ST_STOPPED TEVENT_TP_STATE_STOPPED

#define RET_CHECKIN TEVENT_TP_RETURN_CHECKING_IN
#define RET_SYNC TEVENT_TP_RETURN_SYNC
#define RET_FINISHED TEVENT_TP_RETURN_FINISHED
#define RET_STOPPED TEVENT_TP_RETURN_STOPPED
#define RET_OUTLIVE TEVENT_TP_RETURN_FLAG_OUTLIVE

#define MAX_CALLS 4096

enum on_sync {
	SYNC_LEAVE,        /* remember the task, resume later */
	SYNC_RESUME,       /* tevent_threadpool_task_sync(task, false) */
	SYNC_RESUME_STOP,  /* tevent_threadpool_task_sync(task, true) */
	SYNC_RESUME_TWICE, /* second call must fail with EINVAL */
	SYNC_FREE_POOL,    /* free the pool from inside the callback */
	SYNC_FREE_OWNER,   /* free the owner from inside the callback */
	SYNC_ALTERNATE,    /* odd syncs: resume here; even: from a timer */
};

struct probe {
	pthread_mutex_t m;
	pthread_cond_t c;
	/* pool-thread side */
	int calls;
	enum tevent_threadpool_task_state args[MAX_CALLS];
	int permits;
	int rets[16];
	int nrets;
	int next_ret;
	bool checkin;    /* without a permit: check in instead of blocking */
	bool outlive;    /* add the OUTLIVE flag to check-ins */
	bool auto_stop;  /* answer STOPPING with STOPPED at once */
	bool in_fn;
	int stopping_calls;  /* calls with STOPPING */
	int violations;  /* sync function ran during the task function */
	int seq;         /* produced by the task, consumed by sync */
	/* loop-thread side */
	struct tevent_threadpool *pool;
	TALLOC_CTX *owner;
	struct tevent_threadpool_task *task;
	enum on_sync on_sync;
	bool reap_on_end;
	int sync_calls;
	int end_calls;
	enum tevent_threadpool_task_state end_state;
	int cleanup_calls;
	enum tevent_threadpool_task_state cleanup_state;
	int consumed;
	int order_errors;
	int sync_ret2;
	struct tevent_context *ev;
};

static struct probe *probe_new(void)
{
	struct probe *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	pthread_mutex_init(&p->m, NULL);
	pthread_cond_init(&p->c, NULL);
	p->rets[0] = RET_FINISHED;
	p->nrets = 1;
	p->auto_stop = true;
	return p;
}

static void probe_free(struct probe *p)
{
	assert_int_equal(p->violations, 0);
	pthread_cond_destroy(&p->c);
	pthread_mutex_destroy(&p->m);
	free(p);
}

static void probe_script(struct probe *p, int n, ...)
{
	va_list ap;
	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		p->rets[i] = va_arg(ap, int);
	}
	va_end(ap);
	p->nrets = n;
}

static void probe_permit(struct probe *p, int n)
{
	pthread_mutex_lock(&p->m);
	p->permits += n;
	pthread_cond_broadcast(&p->c);
	pthread_mutex_unlock(&p->m);
}

/* Blocks the loop thread until the task function was called n times. */
static void probe_wait_calls(struct probe *p, int n)
{
	pthread_mutex_lock(&p->m);
	while (p->calls < n) {
		pthread_cond_wait(&p->c, &p->m);
	}
	pthread_mutex_unlock(&p->m);
}

static int probe_calls(struct probe *p)
{
	pthread_mutex_lock(&p->m);
	int n = p->calls;
	pthread_mutex_unlock(&p->m);
	return n;
}

static enum tevent_threadpool_task_state probe_arg(struct probe *p, int i)
{
	assert_true(i < MAX_CALLS);
	pthread_mutex_lock(&p->m);
	enum tevent_threadpool_task_state st = p->args[i];
	pthread_mutex_unlock(&p->m);
	return st;
}

static int probe_task(void *user, enum tevent_threadpool_task_state st)
{
	struct probe *p = user;
	int ret;

	pthread_mutex_lock(&p->m);
	p->in_fn = true;
	if (p->calls < MAX_CALLS) {
		p->args[p->calls] = st;
	}
	if (st == ST_STOPPING) {
		p->stopping_calls++;
	}
	p->calls++;
	p->seq++;
	pthread_cond_broadcast(&p->c);
	for (;;) {
		if (st == ST_STOPPING && p->auto_stop) {
			ret = RET_STOPPED;
			break;
		}
		if (p->permits > 0) {
			p->permits--;
			ret = p->rets[p->next_ret < p->nrets ? p->next_ret
							     : p->nrets - 1];
			p->next_ret++;
			break;
		}
		if (p->checkin) {
			ret = RET_CHECKIN | (p->outlive ? RET_OUTLIVE : 0);
			pthread_mutex_unlock(&p->m);
			usleep(500);  /* a task doing work between check-ins */
			pthread_mutex_lock(&p->m);
			break;
		}
		pthread_cond_wait(&p->c, &p->m);
	}
	p->in_fn = false;
	pthread_mutex_unlock(&p->m);
	return ret;
}

static void relay_timer(struct tevent_context *ev, struct tevent_timer *te,
			struct timeval now, void *private_data)
{
	(void)ev;
	(void)te;
	(void)now;
	struct probe *p = private_data;
	assert_int_equal(tevent_threadpool_task_sync(p->task, false), 0);
}

static void probe_sync(struct tevent_threadpool_task *task, void *user,
		       enum tevent_threadpool_task_state st)
{
	struct probe *p = user;

	pthread_mutex_lock(&p->m);
	if (p->in_fn) {
		p->violations++;
	}
	p->consumed = p->seq;
	pthread_mutex_unlock(&p->m);

	assert_ptr_equal(task, p->task);
	if (st != ST_SYNCING) {
		assert_true(st == ST_FINISHED || st == ST_STOPPED);
		p->end_calls++;
		p->end_state = st;
		if (p->reap_on_end) {
			assert_int_equal(tevent_threadpool_task_status(task), st);
			p->task = NULL;
		}
		return;
	}
	p->sync_calls++;
	/* The n-th sync sees exactly what the n-th call produced. */
	if (p->consumed != p->sync_calls) {
		p->order_errors++;
	}
	assert_int_equal(tevent_threadpool_task_get_state(task), ST_SYNCING);
	switch (p->on_sync) {
	case SYNC_LEAVE:
		break;
	case SYNC_RESUME:
		assert_int_equal(tevent_threadpool_task_sync(task, false), 0);
		break;
	case SYNC_RESUME_STOP:
		assert_int_equal(tevent_threadpool_task_sync(task, true), 0);
		break;
	case SYNC_RESUME_TWICE:
		assert_int_equal(tevent_threadpool_task_sync(task, false), 0);
		p->sync_ret2 = tevent_threadpool_task_sync(task, false);
		break;
	case SYNC_FREE_POOL:
		TALLOC_FREE(p->pool);
		break;
	case SYNC_FREE_OWNER:
		TALLOC_FREE(p->owner);
		break;
	case SYNC_ALTERNATE:
		if (p->sync_calls % 2) {
			assert_int_equal(tevent_threadpool_task_sync(task, false), 0);
		} else {
			assert_non_null(tevent_add_timer(p->ev, p->ev,
							 tevent_timeval_zero(),
							 relay_timer, p));
		}
		break;
	}
	/* Resumed or not, the task is still blocked until we return. */
	pthread_mutex_lock(&p->m);
	if (p->in_fn) {
		p->violations++;
	}
	pthread_mutex_unlock(&p->m);
}

static void probe_cleanup(void *user, enum tevent_threadpool_task_state st)
{
	struct probe *p = user;
	p->cleanup_calls++;
	p->cleanup_state = st;
}

static struct tevent_threadpool_task *probe_enqueue(struct tevent_threadpool *pool,
						    struct tevent_context *ev,
						    TALLOC_CTX *owner,
						    struct probe *p,
						    const char *name)
{
	struct tevent_threadpool_task_args args = {
		.ev = ev,
		.owner = owner,
		.user = p,
		.task = probe_task,
		.sync = probe_sync,
		.cleanup = probe_cleanup,
	};
	p->pool = pool;
	p->owner = owner;
	p->task = tevent_threadpool_enqueue(pool, &args, "%s", name);
	return p->task;
}

/* Runs the loop until cond holds (a hung loop ends with the alarm). */
#define LOOP_UNTIL(ev, cond)                                          \
	do {                                                          \
		while (!(cond)) {                                     \
			assert_int_equal(tevent_loop_once(ev), 0);    \
		}                                                     \
	} while (0)

static struct tevent_context *test_ev(void)
{
	alarm(300);
	struct tevent_context *ev = tevent_context_init(NULL);
	assert_non_null(ev);
	return ev;
}

static void test_ev_free(struct tevent_context *ev)
{
	talloc_free(ev);
	alarm(0);
}

static void fired(struct tevent_context *ev, struct tevent_timer *te,
		  struct timeval now, void *private_data)
{
	(void)ev;
	(void)te;
	(void)now;
	*(bool *)private_data = true;
}

/* A few loop turns: whatever is due runs, then a short timer ends it. */
static void spin_loop(struct tevent_context *ev)
{
	bool done = false;
	assert_non_null(tevent_add_timer(ev, ev, tevent_timeval_current_ofs(0, 5000),
					 fired, &done));
	LOOP_UNTIL(ev, done);
}

/* ------------------------------------------------------------------------ */

static void test_state_names(void **state)
{
	(void)state;
	assert_string_equal(tevent_threadpool_state_name(ST_QUEUED), "queued");
	assert_string_equal(tevent_threadpool_state_name(ST_RUNNING), "running");
	assert_string_equal(tevent_threadpool_state_name(ST_SYNCING), "syncing");
	assert_string_equal(tevent_threadpool_state_name(ST_STOPPING), "stopping");
	assert_string_equal(tevent_threadpool_state_name(ST_FINISHED), "finished");
	assert_string_equal(tevent_threadpool_state_name(ST_STOPPED), "stopped");
}

static void test_create_args(void **state)
{
	(void)state;
	TALLOC_CTX *mem = talloc_new(NULL);
	errno = 0;
	assert_null(tevent_threadpool_create(mem, 0, 4, "none"));
	assert_int_equal(errno, EINVAL);
	struct tevent_threadpool *pool =
		tevent_threadpool_create(mem, 2, 4, "pool-%d", 7);
	assert_non_null(pool);
	assert_string_equal(tevent_threadpool_name(pool), "pool-7");
	assert_ptr_equal(talloc_parent(pool), mem);

	struct tevent_context *ev = test_ev();
	struct tevent_threadpool_task_args args = { .ev = ev };
	errno = 0;
	assert_null(tevent_threadpool_enqueue(pool, &args, "no function"));
	assert_int_equal(errno, EINVAL);
	args.task = probe_task;
	errno = 0;
	assert_null(tevent_threadpool_enqueue(NULL, &args, "no pool"));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(tevent_threadpool_enqueue(pool, NULL, "no arguments"));
	assert_int_equal(errno, EINVAL);
	args.ev = NULL;
	errno = 0;
	assert_null(tevent_threadpool_enqueue(pool, &args, "no context"));
	assert_int_equal(errno, EINVAL);
	args.ev = ev;
	args.task = NULL;

	/* printf-style task names; the task finishes at once */
	struct probe *p = probe_new();
	probe_permit(p, 1);
	p->reap_on_end = true;
	args.task = probe_task;
	args.sync = probe_sync;
	args.cleanup = probe_cleanup;
	args.user = p;
	args.owner = mem;
	p->task = tevent_threadpool_enqueue(pool, &args, "task-%d-%s", 3, "x");
	assert_non_null(p->task);
	assert_string_equal(tevent_threadpool_task_name(p->task), "task-3-x");
	LOOP_UNTIL(ev, p->cleanup_calls == 1);
	probe_free(p);
	talloc_free(mem);
	test_ev_free(ev);
}

/* QUEUED -> RUNNING -> SYNCING -> RUNNING -> FINISHED, reaped by status. */
static void test_states_finish(void **state)
{
	(void)state;
	struct tevent_context *ev = test_ev();
	TALLOC_CTX *owner = talloc_new(NULL);
	struct tevent_threadpool *pool = tevent_threadpool_create(NULL, 1, 4, "p");
	struct probe *blocker = probe_new(), *p = probe_new();

	/* The only thread is busy, so the task stays queued. */
	assert_non_null(probe_enqueue(pool, ev, owner, blocker, "blocker"));
	probe_wait_calls(blocker, 1);
	assert_non_null(probe_enqueue(pool, ev, owner, p, "task-a"));
	assert_string_equal(tevent_threadpool_task_name(p->task), "task-a");
	assert_ptr_equal(tevent_threadpool_task_user(p->task), p);
	assert_int_equal(tevent_threadpool_task_get_state(p->task), ST_QUEUED);
	assert_int_equal(tevent_threadpool_task_get_state(blocker->task), ST_RUNNING);

	/* The blocker finishes: the end notice comes to the loop. */
	blocker->reap_on_end = true;
	probe_permit(blocker, 1);
	LOOP_UNTIL(ev, blocker->end_calls == 1);
	assert_int_equal(blocker->end_state, ST_FINISHED);
	assert_int_equal(blocker->cleanup_calls, 1);
	assert_int_equal(blocker->cleanup_state, ST_FINISHED);

	probe_script(p, 3, RET_SYNC, RET_CHECKIN, RET_FINISHED);
	probe_wait_calls(p, 1);
	assert_int_equal(tevent_threadpool_task_get_state(p->task), ST_RUNNING);

	/* SYNC: the sync function runs on the loop while the task waits. */
	p->on_sync = SYNC_LEAVE;
	probe_permit(p, 1);
	LOOP_UNTIL(ev, p->sync_calls == 1);
	assert_int_equal(tevent_threadpool_task_get_state(p->task), ST_SYNCING);
	assert_int_equal(probe_calls(p), 1);
	assert_int_equal(tevent_threadpool_task_sync(p->task, false), 0);
	assert_int_equal(tevent_threadpool_task_sync(p->task, false), EINVAL);
	probe_wait_calls(p, 2);
	assert_int_equal(tevent_threadpool_task_get_state(p->task), ST_RUNNING);

	/* CHECKING_IN: called again at once, still RUNNING. */
	probe_permit(p, 1);
	probe_wait_calls(p, 3);
	assert_int_equal(probe_arg(p, 1), ST_RUNNING);
	assert_int_equal(probe_arg(p, 2), ST_RUNNING);
	assert_int_equal(tevent_threadpool_task_get_state(p->task), ST_RUNNING);

	/* FINISHED: waits in the done list until status() reaps it. */
	probe_permit(p, 1);
	LOOP_UNTIL(ev, p->end_calls == 1);
	assert_int_equal(p->end_state, ST_FINISHED);
	assert_int_equal(tevent_threadpool_task_get_state(p->task), ST_FINISHED);
	assert_int_equal(p->cleanup_calls, 0);
	char *dump = tevent_threadpool_dump(NULL, pool);
	assert_non_null(strstr(dump, "\"task-a\" finished"));
	talloc_free(dump);
	assert_int_equal(tevent_threadpool_task_status(p->task), ST_FINISHED);
	assert_int_equal(p->cleanup_calls, 1);
	assert_int_equal(p->cleanup_state, ST_FINISHED);
	assert_int_equal(p->sync_calls, 1);

	talloc_free(pool);
	assert_int_equal(p->cleanup_calls, 1);
	assert_int_equal(talloc_total_blocks(owner), 1);
	talloc_free(owner);
	probe_free(blocker);
	probe_free(p);
	test_ev_free(ev);
}

/* RUNNING -> STOPPING -> STOPPED through tevent_threadpool_task_stop(). */
static void test_states_stop(void **state)
{
	(void)state;
	struct tevent_context *ev = test_ev();
	TALLOC_CTX *owner = talloc_new(NULL);
	struct tevent_threadpool *pool = tevent_threadpool_create(NULL, 2, 0, "p");
	struct probe *p = probe_new();

	p->auto_stop = false;
	probe_script(p, 1, RET_STOPPED);
	p->reap_on_end = true;
	assert_non_null(probe_enqueue(pool, ev, owner, p, "stopper"));
	probe_wait_calls(p, 1);
	tevent_threadpool_task_stop(p->task);
	assert_int_equal(tevent_threadpool_task_get_state(p->task), ST_STOPPING);
	/* It returns CHECKING_IN... and is called again with STOPPING. */
	probe_script(p, 2, RET_CHECKIN, RET_STOPPED);
	probe_permit(p, 1);
	probe_wait_calls(p, 2);
	assert_int_equal(probe_arg(p, 0), ST_RUNNING);
	assert_int_equal(probe_arg(p, 1), ST_STOPPING);
	probe_permit(p, 1);
	LOOP_UNTIL(ev, p->end_calls == 1);
	assert_int_equal(p->end_state, ST_STOPPED);
	assert_int_equal(p->cleanup_calls, 1);
	assert_int_equal(p->cleanup_state, ST_STOPPED);

	talloc_free(pool);
	talloc_free(owner);
	probe_free(p);
	test_ev_free(ev);
}

/* A queued task asked to stop ends without ever running. */
static void test_stop_queued(void **state)
{
	(void)state;
	struct tevent_context *ev = test_ev();
	TALLOC_CTX *owner = talloc_new(NULL);
	struct tevent_threadpool *pool = tevent_threadpool_create(NULL, 1, 2, "p");
	struct probe *blocker = probe_new(), *p = probe_new();

	blocker->checkin = true;
	assert_non_null(probe_enqueue(pool, ev, owner, blocker, "blocker"));
	probe_wait_calls(blocker, 1);
	assert_non_null(probe_enqueue(pool, ev, owner, p, "queued"));
	assert_int_equal(tevent_threadpool_task_get_state(p->task), ST_QUEUED);
	tevent_threadpool_task_stop(p->task);
	assert_int_equal(tevent_threadpool_task_get_state(p->task), ST_STOPPED);
	LOOP_UNTIL(ev, p->end_calls == 1);
	assert_int_equal(p->end_state, ST_STOPPED);
	assert_int_equal(tevent_threadpool_task_status(p->task), ST_STOPPED);
	assert_int_equal(p->cleanup_calls, 1);
	assert_int_equal(probe_calls(p), 0);

	talloc_free(pool);  /* stops the checking-in blocker */
	assert_int_equal(blocker->cleanup_calls, 1);
	assert_int_equal(blocker->cleanup_state, ST_STOPPED);
	assert_int_equal(blocker->end_calls, 0);
	talloc_free(owner);
	probe_free(blocker);
	probe_free(p);
	test_ev_free(ev);
}

/* Freeing the owner stops the task in each state; no more sync calls; the
 * task is reaped automatically with one cleanup. */
static void test_owner_free_stops(void **state)
{
	(void)state;
	struct tevent_context *ev = test_ev();
	struct tevent_threadpool *pool = tevent_threadpool_create(NULL, 2, 8, "p");
	struct probe *running = probe_new(), *queued = probe_new();
	struct probe *syncing = probe_new(), *done = probe_new();
	struct probe *blocker = probe_new();
	TALLOC_CTX *o_running = talloc_new(NULL), *o_queued = talloc_new(NULL);
	TALLOC_CTX *o_syncing = talloc_new(NULL), *o_done = talloc_new(NULL);
	TALLOC_CTX *o_blocker = talloc_new(NULL);

	/* done: ended, waiting in the done list */
	assert_non_null(probe_enqueue(pool, ev, o_done, done, "done"));
	probe_permit(done, 1);
	LOOP_UNTIL(ev, done->end_calls == 1);

	/* running: checking in; syncing: blocked in SYNC, callback left */
	running->checkin = true;
	assert_non_null(probe_enqueue(pool, ev, o_running, running, "running"));
	probe_script(syncing, 1, RET_SYNC);
	probe_permit(syncing, 1);
	assert_non_null(probe_enqueue(pool, ev, o_syncing, syncing, "syncing"));
	LOOP_UNTIL(ev, syncing->sync_calls == 1);
	probe_wait_calls(running, 1);

	/* queued: both threads are busy.  Should a thread ever pick it up
	 * all the same, it checks in and the test fails on probe_calls()
	 * below instead of blocking for ever without a permit. */
	queued->checkin = true;
	assert_non_null(probe_enqueue(pool, ev, o_queued, queued, "queued"));
	assert_int_equal(tevent_threadpool_task_get_state(queued->task), ST_QUEUED);

	/* The queued task's owner goes first.  Stopping "running" or
	 * "syncing" frees its thread, which takes "queued" from the queue
	 * at once and calls it with RUNNING: it would no longer be queued
	 * when its owner went, and learn about the stop only on its next
	 * call.  While both threads are held, the stop is synchronous. */
	talloc_free(o_queued);
	assert_int_equal(tevent_threadpool_task_get_state(queued->task), ST_STOPPED);
	talloc_free(o_running);
	talloc_free(o_syncing);
	talloc_free(o_done);
	LOOP_UNTIL(ev, running->cleanup_calls == 1 && queued->cleanup_calls == 1 &&
		       syncing->cleanup_calls == 1 && done->cleanup_calls == 1);
	assert_int_equal(running->cleanup_state, ST_STOPPED);
	assert_int_equal(queued->cleanup_state, ST_STOPPED);
	assert_int_equal(syncing->cleanup_state, ST_STOPPED);
	assert_int_equal(done->cleanup_state, ST_FINISHED);
	assert_int_equal(probe_calls(queued), 0);
	assert_int_equal(probe_arg(syncing, 1), ST_STOPPING);
	/* No sync or end call once the owner was gone. */
	assert_int_equal(running->end_calls, 0);
	assert_int_equal(syncing->sync_calls, 1);
	assert_int_equal(syncing->end_calls, 0);
	assert_int_equal(queued->end_calls, 0);

	/* The pool is idle again; the owner of a still-running task too. */
	blocker->checkin = true;
	assert_non_null(probe_enqueue(pool, ev, o_blocker, blocker, "b"));
	probe_wait_calls(blocker, 1);
	talloc_free(o_blocker);
	LOOP_UNTIL(ev, blocker->cleanup_calls == 1);

	talloc_free(pool);
	assert_int_equal(running->cleanup_calls, 1);
	assert_int_equal(done->cleanup_calls, 1);
	probe_free(running);
	probe_free(queued);
	probe_free(syncing);
	probe_free(done);
	probe_free(blocker);
	test_ev_free(ev);
}

/* OUTLIVE: freeing the owner detaches the task, which goes on. */
static void test_outlive(void **state)
{
	(void)state;
	struct tevent_context *ev = test_ev();
	struct tevent_threadpool *pool = tevent_threadpool_create(NULL, 2, 2, "p");
	struct probe *p = probe_new(), *s = probe_new();
	TALLOC_CTX *owner = talloc_new(NULL), *owner2 = talloc_new(NULL);

	/* Checking in with OUTLIVE, then the owner goes. */
	p->checkin = true;
	p->outlive = true;
	assert_non_null(probe_enqueue(pool, ev, owner, p, "outliver"));
	probe_wait_calls(p, 2);  /* the flag was returned at least once */
	talloc_free(owner);
	probe_wait_calls(p, probe_calls(p) + 3);
	pthread_mutex_lock(&p->m);
	int stopping = p->stopping_calls;
	pthread_mutex_unlock(&p->m);
	assert_int_equal(stopping, 0);
	char *dump = tevent_threadpool_dump(NULL, pool);
	assert_non_null(strstr(dump, "\"outliver\" running"));
	assert_non_null(strstr(dump, "detached"));
	talloc_free(dump);
	probe_permit(p, 1);  /* -> FINISHED */
	LOOP_UNTIL(ev, p->cleanup_calls == 1);
	assert_int_equal(p->cleanup_state, ST_FINISHED);
	assert_int_equal(p->end_calls, 0);

	/* Blocked in SYNC|OUTLIVE when the owner goes: resumed, not stopped,
	 * and later SYNCs just continue. */
	probe_script(s, 3, RET_SYNC | RET_OUTLIVE, RET_SYNC, RET_FINISHED);
	s->on_sync = SYNC_LEAVE;
	probe_permit(s, 1);
	assert_non_null(probe_enqueue(pool, ev, owner2, s, "sync-outliver"));
	LOOP_UNTIL(ev, s->sync_calls == 1);
	talloc_free(owner2);
	probe_wait_calls(s, 2);
	assert_int_equal(probe_arg(s, 1), ST_RUNNING);
	probe_permit(s, 2);
	LOOP_UNTIL(ev, s->cleanup_calls == 1);
	assert_int_equal(s->cleanup_state, ST_FINISHED);
	assert_int_equal(s->sync_calls, 1);
	assert_int_equal(probe_calls(s), 3);

	talloc_free(pool);
	probe_free(p);
	probe_free(s);
	test_ev_free(ev);
}

/* A producer/consumer over many syncs: every value the task produced is
 * seen by exactly one sync call, in order, never while the task runs;
 * resumes come from inside the sync function and from later events. */
static void test_sync_ordering(void **state)
{
	(void)state;
	struct tevent_context *ev = test_ev();
	struct tevent_threadpool *pool = tevent_threadpool_create(NULL, 3, 0, "p");
	TALLOC_CTX *owner = talloc_new(NULL);
	struct probe *p = probe_new();
	const int rounds = 199;  /* odd: the last one is resumed at once */

	probe_script(p, 1, RET_SYNC);
	probe_permit(p, rounds);
	p->reap_on_end = true;
	p->on_sync = SYNC_ALTERNATE;
	p->ev = ev;
	assert_non_null(probe_enqueue(pool, ev, owner, p, "producer"));
	LOOP_UNTIL(ev, p->sync_calls == rounds);
	assert_int_equal(p->order_errors, 0);
	/* Then it finishes. */
	probe_wait_calls(p, rounds + 1);
	probe_script(p, 1, RET_FINISHED);
	probe_permit(p, 1);
	LOOP_UNTIL(ev, p->end_calls == 1);
	assert_int_equal(p->end_state, ST_FINISHED);
	assert_int_equal(probe_calls(p), rounds + 1);
	assert_int_equal(p->sync_calls, rounds);
	assert_int_equal(p->cleanup_calls, 1);

	talloc_free(pool);
	talloc_free(owner);
	probe_free(p);
	test_ev_free(ev);
}

/* Resume with stop from the sync function; double resume is refused. */
static void test_sync_stop(void **state)
{
	(void)state;
	struct tevent_context *ev = test_ev();
	struct tevent_threadpool *pool = tevent_threadpool_create(NULL, 1, 1, "p");
	TALLOC_CTX *owner = talloc_new(NULL);
	struct probe *p = probe_new(), *q = probe_new();

	probe_script(p, 1, RET_SYNC);
	probe_permit(p, 1);
	p->on_sync = SYNC_RESUME_STOP;
	p->reap_on_end = true;
	assert_non_null(probe_enqueue(pool, ev, owner, p, "sync-stop"));
	LOOP_UNTIL(ev, p->end_calls == 1);
	assert_int_equal(p->end_state, ST_STOPPED);
	assert_int_equal(probe_calls(p), 2);
	assert_int_equal(probe_arg(p, 1), ST_STOPPING);
	assert_int_equal(p->cleanup_calls, 1);

	/* Not syncing: EINVAL; syncing, resumed twice: second is EINVAL. */
	probe_script(q, 2, RET_SYNC, RET_FINISHED);
	q->on_sync = SYNC_RESUME_TWICE;
	q->reap_on_end = true;
	assert_non_null(probe_enqueue(pool, ev, owner, q, "twice"));
	probe_wait_calls(q, 1);
	assert_int_equal(tevent_threadpool_task_sync(q->task, false), EINVAL);
	probe_permit(q, 2);
	LOOP_UNTIL(ev, q->end_calls == 1);
	assert_int_equal(q->sync_ret2, EINVAL);
	assert_int_equal(q->end_state, ST_FINISHED);

	talloc_free(pool);
	talloc_free(owner);
	probe_free(p);
	probe_free(q);
	test_ev_free(ev);
}

/* Freeing the owner from inside its sync function. */
static void test_owner_free_in_sync(void **state)
{
	(void)state;
	struct tevent_context *ev = test_ev();
	struct tevent_threadpool *pool = tevent_threadpool_create(NULL, 1, 1, "p");
	struct probe *p = probe_new();

	probe_script(p, 1, RET_SYNC);
	probe_permit(p, 1);
	p->on_sync = SYNC_FREE_OWNER;
	assert_non_null(probe_enqueue(pool, ev, talloc_new(NULL), p, "x"));
	LOOP_UNTIL(ev, p->cleanup_calls == 1);
	assert_int_equal(p->cleanup_state, ST_STOPPED);
	assert_int_equal(probe_arg(p, 1), ST_STOPPING);
	assert_int_equal(p->sync_calls, 1);
	assert_int_equal(p->end_calls, 0);

	talloc_free(pool);
	probe_free(p);
	test_ev_free(ev);
}

/* max_threads + max_queue_depth unended tasks: the next enqueue fails
 * with EAGAIN and leaves nothing behind. */
static void test_queue_depth(void **state)
{
	(void)state;
	struct tevent_context *ev = test_ev();
	struct tevent_threadpool *pool = tevent_threadpool_create(NULL, 2, 3, "p");
	TALLOC_CTX *owner = talloc_new(NULL);
	struct probe *p[6];

	for (int i = 0; i < 6; i++) {
		p[i] = probe_new();
		p[i]->reap_on_end = true;
	}
	for (int i = 0; i < 5; i++) {
		assert_non_null(probe_enqueue(pool, ev, owner, p[i], "t"));
	}
	probe_wait_calls(p[0], 1);
	probe_wait_calls(p[1], 1);
	size_t blocks = talloc_total_blocks(owner);
	size_t pool_blocks = talloc_total_blocks(pool);
	errno = 0;
	assert_null(probe_enqueue(pool, ev, owner, p[5], "rejected"));
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(talloc_total_blocks(owner), blocks);
	assert_int_equal(talloc_total_blocks(pool), pool_blocks);

	/* Overcommitting threads is allowed: 2 threads on any CPU count. */
	char *dump = tevent_threadpool_dump(NULL, pool);
	assert_non_null(strstr(dump, "2 of 2 threads"));
	assert_non_null(strstr(dump, "3 queued, 2 running"));
	talloc_free(dump);

	/* One ends: there is room again. */
	probe_permit(p[0], 1);
	LOOP_UNTIL(ev, p[0]->end_calls == 1);
	assert_non_null(probe_enqueue(pool, ev, owner, p[5], "accepted"));
	for (int i = 1; i < 6; i++) {
		probe_permit(p[i], 1);
	}
	for (int i = 1; i < 6; i++) {
		LOOP_UNTIL(ev, p[i]->end_calls == 1);
	}
	for (int i = 0; i < 6; i++) {
		assert_int_equal(p[i]->cleanup_calls, 1);
		probe_free(p[i]);
	}
	talloc_free(pool);
	assert_int_equal(talloc_total_blocks(owner), 1);
	talloc_free(owner);
	test_ev_free(ev);
}

/* Tasks in every state for finish and free. */
struct zoo {
	struct probe *queued, *running, *syncing, *sync_left, *done, *ended;
	struct probe *outlive, *detached;
	TALLOC_CTX *owner;
};

static void zoo_build(struct zoo *z, struct tevent_threadpool *pool,
		      struct tevent_context *ev)
{
	z->owner = talloc_new(NULL);
	z->queued = probe_new();
	z->running = probe_new();
	z->syncing = probe_new();
	z->sync_left = probe_new();
	z->done = probe_new();
	z->ended = probe_new();
	z->outlive = probe_new();
	z->detached = probe_new();

	/* done: ended and delivered, waiting for status() */
	assert_non_null(probe_enqueue(pool, ev, z->owner, z->done, "done"));
	probe_permit(z->done, 1);
	LOOP_UNTIL(ev, z->done->end_calls == 1);

	/* sync_left: its sync function ran, not resumed */
	probe_script(z->sync_left, 1, RET_SYNC);
	probe_permit(z->sync_left, 1);
	assert_non_null(probe_enqueue(pool, ev, z->owner, z->sync_left, "sync_left"));
	LOOP_UNTIL(ev, z->sync_left->sync_calls == 1);

	/* running, outlive (detached, running): checking in */
	z->running->checkin = true;
	assert_non_null(probe_enqueue(pool, ev, z->owner, z->running, "running"));
	TALLOC_CTX *o = talloc_new(NULL);
	z->outlive->checkin = true;
	z->outlive->outlive = true;
	assert_non_null(probe_enqueue(pool, ev, o, z->outlive, "outlive"));
	probe_wait_calls(z->outlive, 2);
	talloc_free(o);
	/* detached: no owner from the start, checking in */
	z->detached->checkin = true;
	assert_non_null(probe_enqueue(pool, ev, NULL, z->detached, "detached"));

	/* ended: ended, end notice not delivered yet (loop not run) */
	assert_non_null(probe_enqueue(pool, ev, z->owner, z->ended, "ended"));
	probe_permit(z->ended, 1);
	while (tevent_threadpool_task_get_state(z->ended->task) != ST_FINISHED) {
		usleep(100);
	}
	/* syncing: returned SYNC, sync function not called yet */
	probe_script(z->syncing, 1, RET_SYNC);
	probe_permit(z->syncing, 1);
	assert_non_null(probe_enqueue(pool, ev, z->owner, z->syncing, "syncing"));
	while (tevent_threadpool_task_get_state(z->syncing->task) != ST_SYNCING) {
		usleep(100);
	}
	probe_wait_calls(z->running, 1);
	probe_wait_calls(z->detached, 1);

	/* queued: all threads busy */
	assert_non_null(probe_enqueue(pool, ev, z->owner, z->queued, "queued"));
	assert_int_equal(tevent_threadpool_task_get_state(z->queued->task), ST_QUEUED);
	assert_int_equal(tevent_threadpool_task_get_state(z->running->task), ST_RUNNING);
	assert_int_equal(tevent_threadpool_task_get_state(z->sync_left->task), ST_SYNCING);
	assert_int_equal(tevent_threadpool_task_get_state(z->done->task), ST_FINISHED);

	char *dump = tevent_threadpool_dump(NULL, pool);
	assert_non_null(strstr(dump, "\"queued\" queued"));
	assert_non_null(strstr(dump, "\"running\" running"));
	assert_non_null(strstr(dump, "\"syncing\" syncing"));
	assert_non_null(strstr(dump, "\"sync_left\" syncing"));
	assert_non_null(strstr(dump, "\"done\" finished"));
	assert_non_null(strstr(dump, "\"ended\" finished"));
	assert_non_null(strstr(dump, "thread 0:"));
	talloc_free(dump);
}

static struct probe **zoo_all(struct zoo *z, struct probe **v)
{
	v[0] = z->queued;
	v[1] = z->running;
	v[2] = z->syncing;
	v[3] = z->sync_left;
	v[4] = z->done;
	v[5] = z->ended;
	v[6] = z->outlive;
	v[7] = z->detached;
	return v;
}

static void zoo_free(struct zoo *z)
{
	struct probe *v[8];
	zoo_all(z, v);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(v[i]->cleanup_calls, 1);
		probe_free(v[i]);
	}
	/* Nothing of the pool is left on the owner. */
	assert_int_equal(talloc_total_blocks(z->owner), 1);
	talloc_free(z->owner);
}

static void test_finish_every_state(void **state)
{
	(void)state;
	struct tevent_context *ev = test_ev();
	struct tevent_threadpool *pool = tevent_threadpool_create(NULL, 5, 4, "p");
	struct zoo z;
	zoo_build(&z, pool, ev);

	int sync_left_syncs = z.sync_left->sync_calls;
	tevent_threadpool_finish(pool);
	/* Everything has ended; nothing called back during finish. */
	struct probe *v[8];
	zoo_all(&z, v);
	for (int i = 0; i < 8; i++) {
		enum tevent_threadpool_task_state st =
			v[i]->task != NULL && v[i]->cleanup_calls == 0
			? tevent_threadpool_task_get_state(v[i]->task) : ST_FINISHED;
		assert_true(st == ST_FINISHED || st == ST_STOPPED);
	}
	assert_int_equal(tevent_threadpool_task_get_state(z.queued->task), ST_STOPPED);
	assert_int_equal(tevent_threadpool_task_get_state(z.running->task), ST_STOPPED);
	assert_int_equal(tevent_threadpool_task_get_state(z.syncing->task), ST_STOPPED);
	assert_int_equal(tevent_threadpool_task_get_state(z.sync_left->task), ST_STOPPED);
	assert_int_equal(probe_calls(z.queued), 0);
	assert_int_equal(z.sync_left->sync_calls, sync_left_syncs);
	assert_int_equal(z.syncing->sync_calls, 0);

	errno = 0;
	struct probe *late = probe_new();
	assert_null(probe_enqueue(pool, ev, z.owner, late, "late"));
	assert_int_equal(errno, ESHUTDOWN);
	probe_free(late);
	tevent_threadpool_finish(pool);  /* again: nothing happens */

	/* The end notices still arrive; reap them there. */
	for (int i = 0; i < 8; i++) {
		v[i]->reap_on_end = true;
	}
	LOOP_UNTIL(ev, z.queued->end_calls == 1 && z.running->end_calls == 1 &&
		       z.syncing->end_calls == 1 && z.sync_left->end_calls == 1 &&
		       z.ended->end_calls == 1 && z.outlive->cleanup_calls == 1 &&
		       z.detached->cleanup_calls == 1);
	assert_int_equal(z.syncing->sync_calls, 0);
	assert_int_equal(z.outlive->end_calls, 0);
	assert_int_equal(z.detached->end_calls, 0);
	assert_int_equal(z.outlive->cleanup_state, ST_STOPPED);
	assert_int_equal(z.done->cleanup_calls, 0);
	assert_int_equal(tevent_threadpool_task_status(z.done->task), ST_FINISHED);

	talloc_free(pool);
	zoo_free(&z);
	test_ev_free(ev);
}

static void test_free_every_state(void **state)
{
	(void)state;
	struct tevent_context *ev = test_ev();
	struct tevent_threadpool *pool = tevent_threadpool_create(NULL, 5, 4, "p");
	struct zoo z;
	zoo_build(&z, pool, ev);

	int syncs = z.sync_left->sync_calls;
	talloc_free(pool);
	struct probe *v[8];
	zoo_all(&z, v);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(v[i]->cleanup_calls, 1);
		assert_int_equal(v[i]->end_calls, i == 4 ? 1 : 0);
	}
	assert_int_equal(z.sync_left->sync_calls, syncs);
	assert_int_equal(z.syncing->sync_calls, 0);
	assert_int_equal(z.queued->cleanup_state, ST_STOPPED);
	assert_int_equal(z.done->cleanup_state, ST_FINISHED);
	assert_int_equal(z.ended->cleanup_state, ST_FINISHED);
	assert_int_equal(probe_calls(z.queued), 0);

	/* Wake-ups still on their way to the loop arrive harmlessly. */
	spin_loop(ev);
	zoo_free(&z);
	test_ev_free(ev);
}

/* The pool is freed from inside a sync function. */
static void test_free_pool_in_sync(void **state)
{
	(void)state;
	struct tevent_context *ev = test_ev();
	struct tevent_threadpool *pool = tevent_threadpool_create(NULL, 2, 2, "p");
	TALLOC_CTX *owner = talloc_new(NULL);
	struct probe *p = probe_new(), *other = probe_new();

	other->checkin = true;
	assert_non_null(probe_enqueue(pool, ev, owner, other, "other"));
	probe_script(p, 1, RET_SYNC);
	probe_permit(p, 1);
	p->on_sync = SYNC_FREE_POOL;
	assert_non_null(probe_enqueue(pool, ev, owner, p, "freer"));
	LOOP_UNTIL(ev, p->pool == NULL);
	assert_int_equal(p->cleanup_calls, 1);
	assert_int_equal(p->cleanup_state, ST_STOPPED);
	assert_int_equal(other->cleanup_calls, 1);
	assert_int_equal(talloc_total_blocks(owner), 1);
	spin_loop(ev);
	talloc_free(owner);
	probe_free(p);
	probe_free(other);
	test_ev_free(ev);
}

/* An immediate scheduled before the pool's wake-up arrived: it runs first,
 * in the turn that takes the wake-up in, and frees the pool. */
struct free_first {
	struct tevent_threadpool *pool;
	bool ran;
};

static void free_pool_handler(struct tevent_context *ev,
			      struct tevent_immediate *im, void *private_data)
{
	(void)ev;
	(void)im;
	struct free_first *f = private_data;
	TALLOC_FREE(f->pool);
	f->ran = true;
}

/* The pool goes while its wake-up is already queued on the loop but has
 * not run: the wake-up's handler then runs for a pool that is gone, and
 * the immediate it came in must outlive that run (ASan and valgrind saw
 * it freed under the running handler). */
static void test_free_pool_wake_queued(void **state)
{
	(void)state;
	struct tevent_context *ev = test_ev();
	struct free_first f = {
		.pool = tevent_threadpool_create(NULL, 1, 1, "p"),
	};
	TALLOC_CTX *owner = talloc_new(NULL);
	struct probe *p = probe_new();

	for (int round = 0; round < 20; round++) {
		if (f.pool == NULL) {
			f.pool = tevent_threadpool_create(NULL, 1, 1, "p");
		}
		struct tevent_immediate *im = tevent_create_immediate(owner);
		tevent_schedule_immediate(im, ev, free_pool_handler, &f);
		p->cleanup_calls = 0;
		probe_permit(p, 1);
		assert_non_null(probe_enqueue(f.pool, ev, owner, p, "quick"));
		/* The task ends at once; give its wake-up time to reach the
		 * loop's queue, so that the next turn takes it in behind
		 * the immediate above. */
		while (tevent_threadpool_task_get_state(p->task) != ST_FINISHED) {
			usleep(100);
		}
		usleep(20000);
		f.ran = false;
		LOOP_UNTIL(ev, f.ran);
		assert_null(f.pool);
		assert_int_equal(p->cleanup_calls, 1);
		/* The orphaned wake-up runs and frees what it came with. */
		spin_loop(ev);
		talloc_free(im);
	}
	assert_int_equal(talloc_total_blocks(owner), 1);
	talloc_free(owner);
	probe_free(p);
	test_ev_free(ev);
}

/* The tevent context goes away before the pool (while no wake-up is on its
 * way): its tasks are stopped and detached, reaped when the pool goes. */
static void test_ev_freed_first(void **state)
{
	(void)state;
	struct tevent_context *ev = test_ev();
	struct tevent_threadpool *pool = tevent_threadpool_create(NULL, 2, 2, "p");
	TALLOC_CTX *owner = talloc_new(NULL);
	struct probe *p = probe_new(), *q = probe_new();

	p->checkin = true;
	assert_non_null(probe_enqueue(pool, ev, owner, p, "running"));
	probe_script(q, 1, RET_SYNC);
	probe_permit(q, 1);
	assert_non_null(probe_enqueue(pool, ev, owner, q, "syncing"));
	probe_wait_calls(p, 1);
	/* Let the wake-up arrive first: with upstream's libtevent a pool
	 * thread still writing to the loop's eventfd races with the loop's
	 * destructor closing it (inside libtevent). */
	LOOP_UNTIL(ev, q->sync_calls == 1);
	talloc_free(ev);
	/* Both are stopped; nothing is delivered. */
	probe_wait_calls(q, 2);
	assert_int_equal(probe_arg(q, 1), ST_STOPPING);
	while (tevent_threadpool_task_get_state(p->task) != ST_STOPPED) {
		usleep(100);
	}
	talloc_free(pool);
	assert_int_equal(p->cleanup_calls, 1);
	assert_int_equal(q->cleanup_calls, 1);
	assert_int_equal(q->sync_calls, 1);
	assert_int_equal(q->end_calls, 0);
	assert_int_equal(talloc_total_blocks(owner), 1);
	talloc_free(owner);
	probe_free(p);
	probe_free(q);
	alarm(0);
}

/* Without an owner the task is detached from the start. */
static void test_no_owner(void **state)
{
	(void)state;
	struct tevent_context *ev = test_ev();
	struct tevent_threadpool *pool = tevent_threadpool_create(NULL, 1, 1, "p");
	struct probe *p = probe_new();

	probe_script(p, 2, RET_SYNC, RET_FINISHED);
	probe_permit(p, 2);
	assert_non_null(probe_enqueue(pool, ev, NULL, p, "orphan"));
	LOOP_UNTIL(ev, p->cleanup_calls == 1);
	assert_int_equal(p->sync_calls, 0);
	assert_int_equal(p->end_calls, 0);
	assert_int_equal(probe_calls(p), 2);

	talloc_free(pool);
	probe_free(p);
	test_ev_free(ev);
}

/* tevent_loop_wait() keeps running while tasks may still report back. */
static void test_loop_wait(void **state)
{
	(void)state;
	struct tevent_context *ev = test_ev();
	struct tevent_threadpool *pool = tevent_threadpool_create(NULL, 2, 2, "p");
	TALLOC_CTX *owner = talloc_new(NULL);
	struct probe *p = probe_new(), *q = probe_new();

	probe_script(p, 3, RET_SYNC, RET_CHECKIN, RET_FINISHED);
	probe_permit(p, 3);
	p->on_sync = SYNC_RESUME;
	p->reap_on_end = true;
	q->reap_on_end = true;
	probe_permit(q, 1);
	assert_non_null(probe_enqueue(pool, ev, owner, p, "a"));
	assert_non_null(probe_enqueue(pool, ev, owner, q, "b"));
	assert_int_equal(tevent_loop_wait(ev), 0);
	assert_int_equal(p->end_calls, 1);
	assert_int_equal(q->end_calls, 1);
	assert_int_equal(p->cleanup_calls, 1);
	assert_int_equal(q->cleanup_calls, 1);

	talloc_free(pool);
	talloc_free(owner);
	probe_free(p);
	probe_free(q);
	test_ev_free(ev);
}

/* A callback that waits in a nested loop for another task's end, or for
 * a job through tevent_req_poll() (the shape of a synchronous wrapper),
 * gets it there: the port must wake the nested loop although a dispatch
 * is still running further up the stack. */
struct nested {
	struct tevent_context *ev;
	struct tevent_threadpool *pool;
	int a_ends, b_ends;
	bool b_seen_nested;   /* B's end came while A's callback waited */
	bool job_polled;      /* tevent_req_poll() returned true */
	int job_ret;
	bool watchdog;
};

static int nested_fast_task(void *user, enum tevent_threadpool_task_state st)
{
	(void)user;
	(void)st;
	return RET_FINISHED;
}

static int nested_slow_task(void *user, enum tevent_threadpool_task_state st)
{
	(void)user;
	(void)st;
	usleep(10000);  /* ends once A's callback waits */
	return RET_FINISHED;
}

static void nested_slow_job(void *private_data)
{
	(void)private_data;
	usleep(10000);
}

static void nested_b_sync(struct tevent_threadpool_task *task, void *user,
			  enum tevent_threadpool_task_state st)
{
	struct nested *n = user;

	if (st == ST_FINISHED) {
		n->b_ends++;
		(void)tevent_threadpool_task_status(task);  /* reaps it */
	}
}

static void nested_a_sync(struct tevent_threadpool_task *task, void *user,
			  enum tevent_threadpool_task_state st)
{
	struct nested *n = user;
	struct tevent_threadpool_task_args args = {
		.ev = n->ev,
		.owner = n->ev,
		.user = n,
		.task = nested_slow_task,
		.sync = nested_b_sync,
	};
	struct tevent_req *job;
	TALLOC_CTX *tmp = talloc_new(NULL);

	if (st != ST_FINISHED) {
		return;
	}
	n->a_ends++;
	(void)tevent_threadpool_task_status(task);  /* reaps it */

	/* a long way off: it only ends a wait that would never end */
	assert_non_null(tevent_add_timer(n->ev, tmp,
					 tevent_timeval_current_ofs(60, 0),
					 fired, &n->watchdog));
	assert_non_null(tevent_threadpool_enqueue(n->pool, &args, "b"));
	while (n->b_ends == 0 && !n->watchdog) {
		assert_int_equal(tevent_loop_once(n->ev), 0);
	}
	n->b_seen_nested = n->b_ends == 1;
	if (n->watchdog) {
		talloc_free(tmp);
		return;
	}

	job = tevent_threadpool_job_send(tmp, n->ev, n->pool, nested_slow_job,
					 NULL);
	assert_non_null(job);
	/* a job never delivered times out instead of polling for ever */
	assert_true(tevent_req_set_endtime(job, n->ev,
					   tevent_timeval_current_ofs(60, 0)));
	n->job_polled = tevent_req_poll(job, n->ev);
	n->job_ret = tevent_threadpool_job_recv(job);
	talloc_free(tmp);
}

static void test_nested_loop_in_sync(void **state)
{
	(void)state;
	struct tevent_context *ev = test_ev();
	struct nested n = {
		.ev = ev,
		.pool = tevent_threadpool_create(NULL, 2, 4, "nested"),
	};
	struct tevent_threadpool_task_args args = {
		.ev = ev,
		.owner = ev,
		.user = &n,
		.task = nested_fast_task,
		.sync = nested_a_sync,
	};

	assert_non_null(n.pool);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	tevent_loop_allow_nesting(ev);
#pragma GCC diagnostic pop
	assert_non_null(tevent_threadpool_enqueue(n.pool, &args, "a"));
	LOOP_UNTIL(ev, n.a_ends == 1 && (n.job_polled || n.watchdog));
	assert_false(n.watchdog);
	assert_true(n.b_seen_nested);
	assert_int_equal(n.b_ends, 1);
	assert_int_equal(n.job_ret, 0);

	talloc_free(n.pool);
	test_ev_free(ev);
}

/* Two tasks sync at once, so that one dispatch takes both notices in one
 * batch. The first callback waits in a nested loop for a job of the same
 * pool while both threads are held by the two syncing tasks: the job can
 * only start once the second notice is delivered and answered. That must
 * happen in the nested loop, although the suspended dispatch had already
 * taken the notice from the inbox. */
struct batch_wait {
	struct tevent_context *ev;
	struct tevent_threadpool *pool;
	int ends;
	bool waiting;          /* a callback waits in the nested loop */
	bool answered_nested;  /* the other notice came during the wait */
	bool job_done;
	bool watchdog;
};

struct batch_item {
	struct batch_wait *bw;
	atomic_int calls;
};

static int batch_task(void *user, enum tevent_threadpool_task_state st)
{
	struct batch_item *it = user;
	(void)st;
	return atomic_fetch_add(&it->calls, 1) == 0 ? RET_SYNC : RET_FINISHED;
}

static void batch_job(void *private_data)
{
	(void)private_data;
}

static void batch_job_done(struct tevent_req *req)
{
	struct batch_wait *bw = tevent_req_callback_data_void(req);
	assert_int_equal(tevent_threadpool_job_recv(req), 0);
	bw->job_done = true;
	talloc_free(req);
}

static void batch_sync(struct tevent_threadpool_task *task, void *user,
		       enum tevent_threadpool_task_state st)
{
	struct batch_item *it = user;
	struct batch_wait *bw = it->bw;

	if (st != ST_SYNCING) {
		bw->ends++;
		(void)tevent_threadpool_task_status(task);  /* reaps it */
		return;
	}
	assert_int_equal(tevent_threadpool_task_sync(task, false), 0);
	if (bw->waiting) {
		bw->answered_nested = true;
		return;
	}
	bw->waiting = true;
	TALLOC_CTX *tmp = talloc_new(NULL);
	struct tevent_req *job = tevent_threadpool_job_send(bw->ev, bw->ev,
							    bw->pool,
							    batch_job, NULL);
	assert_non_null(job);
	tevent_req_set_callback(job, batch_job_done, bw);
	/* only ends a wait that would never end */
	assert_non_null(tevent_add_timer(bw->ev, tmp,
					 tevent_timeval_current_ofs(30, 0),
					 fired, &bw->watchdog));
	while (!bw->job_done && !bw->watchdog) {
		assert_int_equal(tevent_loop_once(bw->ev), 0);
	}
	talloc_free(tmp);
}

static void test_nested_wait_batch(void **state)
{
	(void)state;
	struct tevent_context *ev = test_ev();
	struct batch_wait bw = {
		.ev = ev,
		.pool = tevent_threadpool_create(NULL, 2, 4, "batch"),
	};
	struct batch_item items[2] = {{.bw = &bw}, {.bw = &bw}};
	struct tevent_threadpool_task *tasks[2];

	assert_non_null(bw.pool);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	tevent_loop_allow_nesting(ev);
#pragma GCC diagnostic pop
	for (int i = 0; i < 2; i++) {
		struct tevent_threadpool_task_args args = {
			.ev = ev,
			.owner = ev,
			.user = &items[i],
			.task = batch_task,
			.sync = batch_sync,
		};
		tasks[i] = tevent_threadpool_enqueue(bw.pool, &args, "t%d", i);
		assert_non_null(tasks[i]);
	}
	/* Both notices wait before the loop takes the first wake-up. */
	while (tevent_threadpool_task_get_state(tasks[0]) != ST_SYNCING ||
	       tevent_threadpool_task_get_state(tasks[1]) != ST_SYNCING) {
		usleep(100);
	}
	LOOP_UNTIL(ev, bw.ends == 2 || bw.watchdog);
	assert_false(bw.watchdog);
	assert_true(bw.answered_nested);
	assert_true(bw.job_done);

	talloc_free(bw.pool);
	test_ev_free(ev);
}

/* Two loops of the same thread share a pool. */
static void test_two_loops(void **state)
{
	(void)state;
	struct tevent_context *ev1 = test_ev();
	struct tevent_context *ev2 = tevent_context_init(NULL);
	struct tevent_threadpool *pool = tevent_threadpool_create(NULL, 2, 2, "p");
	TALLOC_CTX *owner = talloc_new(NULL);
	struct probe *p = probe_new(), *q = probe_new();

	probe_script(p, 2, RET_SYNC, RET_FINISHED);
	probe_script(q, 2, RET_SYNC, RET_FINISHED);
	p->on_sync = q->on_sync = SYNC_RESUME;
	p->reap_on_end = q->reap_on_end = true;
	probe_permit(p, 2);
	probe_permit(q, 2);
	assert_non_null(probe_enqueue(pool, ev1, owner, p, "one"));
	assert_non_null(probe_enqueue(pool, ev2, owner, q, "two"));
	LOOP_UNTIL(ev1, p->end_calls == 1);
	assert_int_equal(q->sync_calls, 0);
	LOOP_UNTIL(ev2, q->end_calls == 1);
	assert_int_equal(p->sync_calls, 1);
	assert_int_equal(q->sync_calls, 1);

	talloc_free(pool);
	talloc_free(owner);
	talloc_free(ev2);
	probe_free(p);
	probe_free(q);
	test_ev_free(ev1);
}

/* ------------------------------------------------------------------------
 * Jobs
 * ------------------------------------------------------------------------ */

#define NJOBS 100000
#define WINDOW 256

struct jobs {
	struct tevent_context *ev;
	struct tevent_threadpool *pool;
	TALLOC_CTX *mem;
	unsigned char *ran;
	int next;
	int inflight;
	int completed;
};

static void job_fn(void *private_data)
{
	unsigned char *slot = private_data;
	(*slot)++;
}

static void job_done(struct tevent_req *req);

static void job_submit(struct jobs *j)
{
	while (j->inflight < WINDOW && j->next < NJOBS) {
		int i = j->next++;
		struct tevent_req *req = tevent_threadpool_job_send(
			j->mem, j->ev, j->pool, job_fn, &j->ran[i]);
		assert_non_null(req);
		tevent_req_set_callback(req, job_done, j);
		j->inflight++;
	}
}

static void job_done(struct tevent_req *req)
{
	struct jobs *j = tevent_req_callback_data_void(req);
	/* Which job: the slot the function got. */
	assert_int_equal(tevent_threadpool_job_recv(req), 0);
	talloc_free(req);
	j->inflight--;
	j->completed++;
	job_submit(j);
}

static void ran_slot_done(struct tevent_req *req);

static void test_jobs_100k(void **state)
{
	(void)state;
	struct jobs j = { 0 };
	j.ev = test_ev();
	alarm(900);  /* slow under sanitizers and valgrind */
	j.pool = tevent_threadpool_create(NULL, 4, 2 * WINDOW, "jobs");
	j.mem = talloc_new(NULL);
	j.ran = calloc(NJOBS, 1);
	assert_non_null(j.ran);
	job_submit(&j);
	LOOP_UNTIL(j.ev, j.completed == NJOBS);
	for (int i = 0; i < NJOBS; i++) {
		if (j.ran[i] != 1) {
			fail_msg("job %d ran %d times", i, j.ran[i]);
		}
	}
	/* Requests, tasks and their bookkeeping are all gone. */
	assert_int_equal(talloc_total_blocks(j.mem), 1);
	char *dump = tevent_threadpool_dump(NULL, j.pool);
	assert_non_null(strstr(dump, "0 queued, 0 running, 0 syncing, 0 stopping, "
				     "0 ended not reaped"));
	talloc_free(dump);

	talloc_free(j.pool);
	talloc_free(j.mem);
	free(j.ran);
	test_ev_free(j.ev);
}

static void ran_slot_done(struct tevent_req *req)
{
	int *ret = tevent_req_callback_data_void(req);
	*ret = tevent_threadpool_job_recv(req);
	talloc_free(req);
}

struct gate {
	pthread_mutex_t m;
	pthread_cond_t c;
	bool entered, open, returned;
};

static void gate_fn(void *private_data)
{
	struct gate *g = private_data;
	pthread_mutex_lock(&g->m);
	g->entered = true;
	pthread_cond_broadcast(&g->c);
	while (!g->open) {
		pthread_cond_wait(&g->c, &g->m);
	}
	g->returned = true;
	pthread_mutex_unlock(&g->m);
}

static void *gate_opener(void *arg)
{
	struct gate *g = arg;
	pthread_mutex_lock(&g->m);
	g->open = true;
	pthread_cond_broadcast(&g->c);
	pthread_mutex_unlock(&g->m);
	return NULL;
}

struct opener_args {
	struct gate *g;
	struct probe *p;
};

/* Opens the gate once the probe's task has been told to stop. */
static void *open_on_stop(void *arg)
{
	struct opener_args *oa = arg;
	pthread_mutex_lock(&oa->p->m);
	while (oa->p->stopping_calls == 0) {
		pthread_cond_wait(&oa->p->c, &oa->p->m);
	}
	pthread_mutex_unlock(&oa->p->m);
	return gate_opener(oa->g);
}

static void count_fn(void *private_data)
{
	int *n = private_data;
	(*n)++;
}

static void test_job_cancel(void **state)
{
	(void)state;
	struct tevent_context *ev = test_ev();
	struct tevent_threadpool *pool = tevent_threadpool_create(NULL, 1, 1, "p");
	struct gate g = { .entered = false };
	pthread_mutex_init(&g.m, NULL);
	pthread_cond_init(&g.c, NULL);
	int never = 0, ret1 = -1, ret2 = -1;

	/* A running job: freeing its request waits for the function. */
	struct tevent_req *running = tevent_threadpool_job_send(NULL, ev, pool,
								gate_fn, &g);
	assert_non_null(running);
	pthread_mutex_lock(&g.m);
	while (!g.entered) {
		pthread_cond_wait(&g.c, &g.m);
	}
	pthread_mutex_unlock(&g.m);

	/* A queued job: freeing its request means it never runs. */
	struct tevent_req *queued = tevent_threadpool_job_send(NULL, ev, pool,
							       count_fn, &never);
	assert_non_null(queued);
	/* Queue full (1 thread + depth 1): EAGAIN through the request. */
	struct tevent_req *full = tevent_threadpool_job_send(NULL, ev, pool,
							     count_fn, &never);
	assert_non_null(full);
	tevent_req_set_callback(full, ran_slot_done, &ret1);
	LOOP_UNTIL(ev, ret1 != -1);
	assert_int_equal(ret1, EAGAIN);

	talloc_free(queued);
	pthread_t opener;
	assert_int_equal(pthread_create(&opener, NULL, gate_opener, &g), 0);
	talloc_free(running);
	/* No lock needed: the free waited for the function to return. */
	assert_true(g.returned);
	pthread_join(opener, NULL);
	assert_int_equal(never, 0);

	talloc_free(pool);

	/* finish() cancels what is queued (ECANCELED) and waits for what has
	 * started (0).  Thread 1 runs the gate job, thread 2 a task checking
	 * in; the gate opens only once that task was told to stop, which
	 * finish() does after it emptied the queue. */
	pool = tevent_threadpool_create(NULL, 2, 1, "p2");
	struct probe *b = probe_new();
	b->checkin = true;
	g.open = false;
	g.entered = false;
	running = tevent_threadpool_job_send(NULL, ev, pool, gate_fn, &g);
	pthread_mutex_lock(&g.m);
	while (!g.entered) {
		pthread_cond_wait(&g.c, &g.m);
	}
	pthread_mutex_unlock(&g.m);
	assert_non_null(probe_enqueue(pool, ev, NULL, b, "busy"));
	probe_wait_calls(b, 1);
	queued = tevent_threadpool_job_send(NULL, ev, pool, count_fn, &never);
	tevent_req_set_callback(queued, ran_slot_done, &ret2);
	tevent_req_set_callback(running, ran_slot_done, &ret1);
	ret1 = -1;
	struct opener_args oa = { .g = &g, .p = b };
	assert_int_equal(pthread_create(&opener, NULL, open_on_stop, &oa), 0);
	tevent_threadpool_finish(pool);
	pthread_join(opener, NULL);
	LOOP_UNTIL(ev, ret1 != -1 && ret2 != -1 && b->cleanup_calls == 1);
	assert_int_equal(ret1, 0);          /* it had started: it completed */
	assert_int_equal(ret2, ECANCELED);  /* it had not */
	assert_int_equal(never, 0);
	probe_free(b);

	/* After finish: ESHUTDOWN. */
	ret1 = -1;
	struct tevent_req *late = tevent_threadpool_job_send(NULL, ev, pool,
							     count_fn, &never);
	tevent_req_set_callback(late, ran_slot_done, &ret1);
	LOOP_UNTIL(ev, ret1 != -1);
	assert_int_equal(ret1, ESHUTDOWN);

	talloc_free(pool);
	pthread_cond_destroy(&g.c);
	pthread_mutex_destroy(&g.m);
	test_ev_free(ev);
}

/*
 * Bad arguments: without a pool or a function the request completes with
 * EINVAL from the loop, never at once and never running anything; without
 * a context there is nothing to complete on, so no request (NULL, EINVAL).
 */
static void test_job_bad_args(void **state)
{
	(void)state;
	struct tevent_context *ev = test_ev();
	struct tevent_threadpool *pool = tevent_threadpool_create(NULL, 1, 1, "p");
	int n = 0, ret1 = -1, ret2 = -1;

	struct tevent_req *no_pool = tevent_threadpool_job_send(NULL, ev, NULL,
								count_fn, &n);
	assert_non_null(no_pool);
	tevent_req_set_callback(no_pool, ran_slot_done, &ret1);
	struct tevent_req *no_fn = tevent_threadpool_job_send(NULL, ev, pool,
							      NULL, &n);
	assert_non_null(no_fn);
	tevent_req_set_callback(no_fn, ran_slot_done, &ret2);
	assert_int_equal(ret1, -1);
	assert_int_equal(ret2, -1);
	LOOP_UNTIL(ev, ret1 != -1 && ret2 != -1);
	assert_int_equal(ret1, EINVAL);
	assert_int_equal(ret2, EINVAL);

	errno = 0;
	assert_null(tevent_threadpool_job_send(NULL, NULL, pool, count_fn, &n));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(n, 0);

	talloc_free(pool);
	test_ev_free(ev);
}

/*
 * A pool belongs to the thread that created it (its loop thread): a job
 * sent from any other thread aborts the process, before anything is
 * queued.  Checked in a child.
 */
struct wrong_thread {
	struct tevent_context *ev;
	struct tevent_threadpool *pool;
	int n;
};

static void *send_from_other_thread(void *arg)
{
	struct wrong_thread *w = arg;

	(void)tevent_threadpool_job_send(NULL, w->ev, w->pool, count_fn, &w->n);
	return NULL;
}

static void job_from_wrong_thread(void *arg)
{
	struct wrong_thread w = { .ev = test_ev() };
	pthread_t t;

	(void)arg;
	w.pool = tevent_threadpool_create(NULL, 1, 4, "p");
	if (w.pool == NULL ||
	    pthread_create(&t, NULL, send_from_other_thread, &w) != 0) {
		_exit(2);
	}
	pthread_join(t, NULL);
}

static void test_job_wrong_thread_aborts(void **state)
{
	(void)state;
	tt_expect_sigabrt(job_from_wrong_thread, NULL);
}

/* A request whose pool is freed under it completes (deferred) too. */
static void test_job_pool_freed(void **state)
{
	(void)state;
	struct tevent_context *ev = test_ev();
	struct tevent_threadpool *pool = tevent_threadpool_create(NULL, 1, 4, "p");
	int n = 0, ret1 = -1, ret2 = -1;

	struct tevent_req *a = tevent_threadpool_job_send(NULL, ev, pool, count_fn, &n);
	tevent_req_set_callback(a, ran_slot_done, &ret1);
	struct tevent_req *b = tevent_threadpool_job_send(NULL, ev, pool, count_fn, &n);
	tevent_req_set_callback(b, ran_slot_done, &ret2);
	talloc_free(pool);
	/* Both ended in the pool; the callbacks come from the loop. */
	assert_int_equal(ret1, -1);
	LOOP_UNTIL(ev, ret1 != -1 && ret2 != -1);
	assert_true(ret1 == 0 || ret1 == ECANCELED);
	assert_true(ret2 == 0 || ret2 == ECANCELED);
	assert_int_equal(n, (ret1 == 0) + (ret2 == 0));
	test_ev_free(ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_names),
		cmocka_unit_test(test_create_args),
		cmocka_unit_test(test_states_finish),
		cmocka_unit_test(test_states_stop),
		cmocka_unit_test(test_stop_queued),
		cmocka_unit_test(test_owner_free_stops),
		cmocka_unit_test(test_outlive),
		cmocka_unit_test(test_sync_ordering),
		cmocka_unit_test(test_sync_stop),
		cmocka_unit_test(test_owner_free_in_sync),
		cmocka_unit_test(test_queue_depth),
		cmocka_unit_test(test_finish_every_state),
		cmocka_unit_test(test_free_every_state),
		cmocka_unit_test(test_free_pool_in_sync),
		cmocka_unit_test(test_free_pool_wake_queued),
		cmocka_unit_test(test_ev_freed_first),
		cmocka_unit_test(test_no_owner),
		cmocka_unit_test(test_loop_wait),
		cmocka_unit_test(test_two_loops),
		cmocka_unit_test(test_nested_loop_in_sync),
		cmocka_unit_test(test_nested_wait_batch),
		cmocka_unit_test(test_jobs_100k),
		cmocka_unit_test(test_job_cancel),
		cmocka_unit_test(test_job_bad_args),
		cmocka_unit_test(test_job_wrong_thread_aborts),
		cmocka_unit_test(test_job_pool_freed),
	};
	tt_check_library();
	/* TP_TEST_FILTER=test_outlive runs just that case (a glob). */
	if (getenv("TP_TEST_FILTER") != NULL) {
		cmocka_set_test_filter(getenv("TP_TEST_FILTER"));
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}

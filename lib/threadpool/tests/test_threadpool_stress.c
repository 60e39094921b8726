/*
 * test_threadpool_stress.c - libtevent_threadpool under random use.
 *
 * Each seed drives two pools through a random sequence of what a program
 * may do on its loop thread: enqueue tasks with random scripts on one of
 * several contexts (both pools serve the same ones) and owners, resume syncs now or later (from inside the
 * sync function, from the driver, after a nested loop turn), stop tasks,
 * reap them, free owners, contexts and whole pools (also from inside a
 * sync function), finish pools, send jobs and cancel them.  Pool threads
 * sleep for random short times so that the interleavings change.
 *
 * A model on the loop thread follows every task and job and checks what
 * the header promises:
 *  - a task function never runs at the same time as its sync function,
 *    nor after its cleanup;
 *  - sync and end notices come only for attached tasks, at most one end
 *    notice, and a SYNCING notice only when the task is syncing;
 *  - every accepted task gets exactly one cleanup, with its final state
 *    (the end notice's, when there was one); a task that ended and was
 *    not reaped is reaped after its owner was freed;
 *  - a job's function never starts after its request was freed and is not
 *    running once the free has returned; every request that was not freed
 *    completes once, with 0 exactly when the function ran;
 *  - EAGAIN only when the pool really is full;
 *  - nothing is lost: once the driver stops, answering every sync brings
 *    every task on a live context to its end, and after the pool is freed
 *    no talloc memory is left.
 *
 * Built against Debian's tevent.h where available, like test_threadpool,
 * so the same binary runs on both libraries.
 *
 * TP_STRESS_SEEDS=N (default 60; 10 under valgrind), TP_STRESS_START=S
 * (first seed, default 1) and TP_STRESS_OPS=K (default 400) choose the
 * runs; a failing run prints its seed.
 */
#define TEVENT_DEPRECATED 1  /* tevent_loop_allow_nesting() */

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>

#include "tevent_threadpool.h"
#include "tt.h"
#include "tt_random.h"
#include "tt_threads.h"

#define MAX_TASKS 2048
#define MAX_JOBS 1024
#define MAX_CTX 3
#define MAX_OWNERS 4
#define WRAP_SLOT 2
#define NPOOL 2

#define ST_SYNCING TEVENT_TP_STATE_SYNCING
#define ST_RUNNING TEVENT_TP_STATE_RUNNING
#define ST_STOPPING TEVENT_TP_STATE_STOPPING
#define ST_FINISHED TEVENT_TP_STATE_FINISHED
#define ST_STOPPED TEVENT_TP_STATE_STOPPED

/* ------------------------------------------------------------------ */
/* random numbers: one generator for the loop thread, one per task call */

static uint64_t loop_rng;

/* 0 .. n-1 */
static unsigned pick(unsigned n)
{
	return tt_below(&loop_rng, n);
}

/* true with probability pct/100 */
static bool chance(unsigned pct)
{
	return pick(100) < pct;
}

/* ------------------------------------------------------------------ */
/* the model */

struct task_rec {
	/* fixed at enqueue, read by pool threads */
	int id;
	int script[8];
	int nscript;
	uint64_t seed;
	/* pool-thread side: only the task function writes these, and the
	 * pool runs one call of a task at a time */
	int step;
	int stop_extra;  /* answers to STOPPING before STOPPED */
	int calls;
	/* shared */
	atomic_int in_fn;
	atomic_int in_sync;
	atomic_int cleaned;
	/* loop side */
	int pool;      /* index into pools[] */
	int pool_gen;  /* that pool's generation when enqueued */
	int ctx;
	int owner;  /* index into owners[], -1: none */
	struct tevent_threadpool_task *task;
	bool handle_valid;  /* task may be passed to the API */
	bool attached;      /* sync and end notices may come */
	bool pending;       /* SYNCING notice not answered yet */
	int syncs;
	int ends;
	enum tevent_threadpool_task_state end_state;
	enum tevent_threadpool_task_state cleanup_state;
};

struct job_rec {
	int id;
	int pool;
	int pool_gen;
	int ctx;
	struct tevent_req *req;
	atomic_int freed;
	atomic_int running;
	atomic_int ran;
	int completions;
	int result;
};

/* Two pools serve the same loops: their ports meet in nested turns. */
struct pool_rec {
	struct tevent_threadpool *pool;  /* NULL: made anew before the next
					    operation */
	int gen;  /* unique within a run */
	unsigned max_threads;
	unsigned max_depth;
	bool finished;
};

struct owner_rec {
	TALLOC_CTX *mem;  /* NULL: slot free */
	int gen;
};

struct stress {
	TALLOC_CTX *root;
	struct tevent_context *ev[MAX_CTX];
	struct tt_tick tick[MAX_CTX];  /* keeps every turn short */
	/* Context WRAP_SLOT is a wrapper of context 0 in half the seeds. */
	bool wrapped;
	struct tt_hook_depth *hooks;  /* the wrapper's private state */
	struct pool_rec pools[NPOOL];
	int gens;
	struct owner_rec owners[MAX_OWNERS];
	struct task_rec *tasks;
	int ntasks;
	struct job_rec *jobs;
	int njobs;
	int sync_depth;
	bool draining;
	struct tt_findings found;
	uint64_t seed;
	/* counts, for the summary line */
	unsigned long enq_ok, enq_again, enq_shutdown, resumes, stops, reaps,
		owner_frees, pool_frees, pool_finishes, ctx_frees, nested,
		nested_waits,
		jobs_ok, jobs_failed, jobs_cancelled;
};

static struct stress *S;

#define violation(...) tt_found(&S->found, __VA_ARGS__)

/* ------------------------------------------------------------------ */
/* pool-thread side */

static void thread_jitter(uint64_t *rng)
{
	tt_jitter(rng, 8, 200);
}

static int stress_task(void *user, enum tevent_threadpool_task_state state)
{
	struct task_rec *t = user;
	int ret;

	if (atomic_exchange(&t->in_fn, 1) != 0) {
		violation("task %d: two calls of its function at once", t->id);
	}
	if (atomic_load(&t->in_sync) != 0) {
		violation("task %d: function runs during its sync", t->id);
	}
	if (atomic_load(&t->cleaned) != 0) {
		violation("task %d: function runs after its cleanup", t->id);
	}
	uint64_t rng = t->seed + (uint64_t)t->calls * 7919;
	t->calls++;
	thread_jitter(&rng);

	if (state == ST_STOPPING) {
		if (t->stop_extra > 0) {
			/* Neither may call the sync function now. */
			t->stop_extra--;
			ret = (tt_splitmix64(&rng) & 1) ? TEVENT_TP_RETURN_SYNC
						   : TEVENT_TP_RETURN_CHECKING_IN;
		} else {
			ret = TEVENT_TP_RETURN_STOPPED;
		}
	} else if (state == ST_RUNNING) {
		ret = t->script[t->step < t->nscript ? t->step
						     : t->nscript - 1];
		t->step++;
	} else {
		violation("task %d: function called with state %d", t->id,
			  (int)state);
		ret = TEVENT_TP_RETURN_STOPPED;
	}
	thread_jitter(&rng);
	atomic_store(&t->in_fn, 0);
	return ret;
}

static void stress_job(void *private_data)
{
	struct job_rec *j = private_data;
	if (atomic_load(&j->freed) != 0) {
		violation("job %d: started after its request was freed", j->id);
	}
	atomic_store(&j->running, 1);
	uint64_t rng = (uint64_t)j->id * 104729;
	thread_jitter(&rng);
	atomic_fetch_add(&j->ran, 1);
	atomic_store(&j->running, 0);
}

/* ------------------------------------------------------------------ */
/* loop side: callbacks */

/* tevent refuses wrappers on a context that allows nesting. */
static bool nesting_allowed(int c)
{
	return !S->wrapped || (c != 0 && c != WRAP_SLOT);
}

/* The context whose loop runs slot c's events (a wrapper's main one). */
static struct tevent_context *loop_ev(int c)
{
	return S->wrapped && c == WRAP_SLOT ? S->ev[0] : S->ev[c];
}

static void free_pool(int p);
static void wait_for_job(int ctx, int pool);
static void free_owner(int o);

/* The task's pointer is no longer ours to use, and no notice may come. */
static void forget_task(struct task_rec *t)
{
	t->handle_valid = false;
	t->attached = false;
	t->pending = false;
}

/* tevent_threadpool_task_status() on an ended task: it must say how the
 * task ended and reap it, its cleanup running now. */
static void reap(struct task_rec *t, enum tevent_threadpool_task_state how)
{
	enum tevent_threadpool_task_state st =
		tevent_threadpool_task_status(t->task);
	S->reaps++;
	if (st != how) {
		violation("task %d: status %d, ended %d", t->id, (int)st,
			  (int)how);
	}
	if (atomic_load(&t->cleaned) != 1) {
		violation("task %d: status did not reap", t->id);
	}
	forget_task(t);
}

static bool owner_alive(const struct task_rec *t)
{
	return t->owner >= 0 && S->owners[t->owner].mem != NULL;
}

static void resume(struct task_rec *t, bool stop)
{
	int ret = tevent_threadpool_task_sync(t->task, stop);
	if (ret != 0) {
		violation("task %d: task_sync returned %d", t->id, ret);
	}
	t->pending = false;
	S->resumes++;
}

static void stress_sync(struct tevent_threadpool_task *task, void *user,
			enum tevent_threadpool_task_state state)
{
	struct task_rec *t = user;

	if (task != t->task) {
		violation("task %d: sync with another task pointer", t->id);
	}
	if (!t->attached || !owner_alive(t)) {
		violation("task %d: notice %d for a detached task", t->id,
			  (int)state);
		return;
	}
	if (atomic_load(&t->cleaned) != 0) {
		violation("task %d: notice after cleanup", t->id);
		return;
	}
	if (atomic_load(&t->in_fn) != 0) {
		violation("task %d: sync while its function runs", t->id);
	}
	if (S->wrapped && t->ctx == WRAP_SLOT && S->hooks->depth == 0) {
		violation("task %d: notice on a wrapper outside its hooks",
			  t->id);
	}
	atomic_store(&t->in_sync, 1);
	S->sync_depth++;

	if (state == ST_FINISHED || state == ST_STOPPED) {
		t->ends++;
		t->end_state = state;
		t->pending = false;
		if (t->ends > 1) {
			violation("task %d: %d end notices", t->id, t->ends);
		}
		if (tevent_threadpool_task_get_state(task) != state) {
			violation("task %d: ended %d, get_state %d", t->id,
				  (int)state,
				  (int)tevent_threadpool_task_get_state(task));
		}
		atomic_store(&t->in_sync, 0);
		if (S->draining || chance(50)) {
			reap(t, state);
		}
		S->sync_depth--;
		return;
	}

	if (state != ST_SYNCING) {
		violation("task %d: sync with state %d", t->id, (int)state);
	} else if (t->pending) {
		violation("task %d: second SYNCING before a resume", t->id);
	} else if (tevent_threadpool_task_get_state(task) != ST_SYNCING) {
		violation("task %d: SYNCING notice, get_state %d", t->id,
			  (int)tevent_threadpool_task_get_state(task));
	}
	t->pending = true;
	t->syncs++;

	unsigned r = S->draining ? 0 : pick(100);
	if (r < 40) {
		resume(t, chance(10));
	} else if (r < 45) {
		resume(t, false);
		int again = tevent_threadpool_task_sync(task, false);
		if (again != EINVAL) {
			violation("task %d: second task_sync gave %d", t->id,
				  again);
		}
	} else if (r < 52 && S->sync_depth < 3 && nesting_allowed(t->ctx)) {
		/* A nested turn of this loop, which may run other tasks'
		 * notices (and free this task's owner). */
		S->nested++;
		atomic_store(&t->in_sync, 0);
		int ret = tevent_loop_once(loop_ev(t->ctx));
		if (ret != 0) {
			violation("nested tevent_loop_once returned %d", ret);
		}
		atomic_store(&t->in_sync, 1);
		if (t->attached && t->pending && chance(50)) {
			resume(t, false);
		}
	} else if (r < 56 && t->owner >= 0) {
		free_owner(t->owner);
	} else if (r < 59) {
		tevent_threadpool_task_stop(task);
		t->pending = false;
		S->stops++;
	} else if (r < 60 && S->sync_depth == 1) {
		atomic_store(&t->in_sync, 0);
		free_pool((int)pick(NPOOL));
	} else if (r < 63 && S->sync_depth == 1 && nesting_allowed(t->ctx)) {
		atomic_store(&t->in_sync, 0);
		/* Its own pool only if another thread can run the job. */
		bool own = S->pools[t->pool].max_threads > 1 && chance(50);
		wait_for_job(t->ctx, own ? t->pool : 1 - t->pool);
	}
	/* otherwise: answered later by the driver */
	atomic_store(&t->in_sync, 0);
	S->sync_depth--;
}

static void stress_cleanup(void *user, enum tevent_threadpool_task_state state)
{
	struct task_rec *t = user;
	if (atomic_fetch_add(&t->cleaned, 1) != 0) {
		violation("task %d: second cleanup", t->id);
	}
	if (atomic_load(&t->in_fn) != 0) {
		violation("task %d: cleanup while its function runs", t->id);
	}
	if (state != ST_FINISHED && state != ST_STOPPED) {
		violation("task %d: cleanup with state %d", t->id, (int)state);
	}
	if (t->ends > 0 && state != t->end_state) {
		violation("task %d: cleanup %d after end notice %d", t->id,
			  (int)state, (int)t->end_state);
	}
	t->cleanup_state = state;
	forget_task(t);
}

static void job_done(struct tevent_req *req)
{
	struct job_rec *j = tevent_req_callback_data_void(req);
	if (req != j->req) {
		violation("job %d: callback for another request", j->id);
	}
	int ret = tevent_threadpool_job_recv(req);
	j->completions++;
	j->result = ret;
	int ran = atomic_load(&j->ran);
	if ((ret == 0) != (ran == 1) || ran > 1) {
		violation("job %d: result %d, function ran %d times", j->id,
			  ret, ran);
	}
	if (ret != 0 && ret != EAGAIN && ret != ESHUTDOWN &&
	    ret != ECANCELED) {
		violation("job %d: result %d", j->id, ret);
	}
	if (ret == 0) {
		S->jobs_ok++;
	} else {
		S->jobs_failed++;
	}
	j->req = NULL;
	talloc_free(req);
}

/* ------------------------------------------------------------------ */
/* loop side: operations */

/* Only immediates and timers reach the pool's contexts. */
static const struct tevent_wrapper_ops hook_ops = TT_DEPTH_WRAPPER_OPS("stress");

static void new_context(int c)
{
	if (S->wrapped && c == WRAP_SLOT) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
		S->ev[c] = tevent_context_wrapper_create(S->ev[0], S->root,
							 &hook_ops, &S->hooks,
							 struct tt_hook_depth);
#pragma GCC diagnostic pop
		assert_non_null(S->ev[c]);
		return;
	}
	struct tevent_context *ev = tevent_context_init(S->root);
	assert_non_null(ev);
	if (nesting_allowed(c)) {
		/* Sync functions run nested turns. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
		tevent_loop_allow_nesting(ev);
#pragma GCC diagnostic pop
	}
	S->ev[c] = ev;
	assert_true(tt_tick_start(ev, &S->tick[c], 1000));
}

static void new_pool(int p)
{
	struct pool_rec *pr = &S->pools[p];
	static const unsigned depths[] = {0, 1, 2, 4, 16, 64};
	pr->max_threads = 1 + pick(4);
	pr->max_depth = depths[pick(sizeof(depths) / sizeof(depths[0]))];
	pr->gen = ++S->gens;
	pr->pool = tevent_threadpool_create(S->root, pr->max_threads,
					    pr->max_depth, "stress %d", pr->gen);
	assert_non_null(pr->pool);
	pr->finished = false;
}

/* Whether the pool a task (or job) went to is still the one in its slot. */
static bool pool_current(int p, int gen)
{
	return S->pools[p].gen == gen;
}

/* Tasks pool p may still count against its limit: accepted, not known
 * to have ended, not reaped; plus jobs not completed nor freed. */
static unsigned outstanding(int p)
{
	unsigned n = 0;
	for (int i = 0; i < S->ntasks; i++) {
		struct task_rec *t = &S->tasks[i];
		if (t->pool == p && pool_current(p, t->pool_gen) &&
		    atomic_load(&t->cleaned) == 0 && t->ends == 0) {
			n++;
		}
	}
	for (int i = 0; i < S->njobs; i++) {
		struct job_rec *j = &S->jobs[i];
		if (j->pool == p && pool_current(p, j->pool_gen) &&
		    j->req != NULL) {
			n++;
		}
	}
	return n;
}

/* Every task of the pool being freed must have had its cleanup. */
static void check_pool_reaped(int gen)
{
	for (int i = 0; i < S->ntasks; i++) {
		struct task_rec *t = &S->tasks[i];
		if (t->pool_gen == gen && atomic_load(&t->cleaned) != 1) {
			violation("task %d: %d cleanups after its pool went",
				  t->id, atomic_load(&t->cleaned));
		}
	}
}

static void free_pool(int p)
{
	int gen = S->pools[p].gen;
	struct tevent_threadpool *pool = S->pools[p].pool;
	S->pools[p].pool = NULL;
	talloc_free(pool);
	S->pool_frees++;
	check_pool_reaped(gen);
}

static void free_owner(int o)
{
	TALLOC_FREE(S->owners[o].mem);
	S->owner_frees++;
	/* Its tasks are detached; one that ended is reaped on a later turn
	 * of its loop (drain() checks that it is). */
	for (int i = 0; i < S->ntasks; i++) {
		struct task_rec *t = &S->tasks[i];
		if (t->owner == o) {
			forget_task(t);
			t->owner = -1;
		}
	}
}

static int owner_for_new_task(void)
{
	if (chance(15)) {
		return -1;
	}
	int o = (int)pick(MAX_OWNERS);
	if (S->owners[o].mem == NULL) {
		S->owners[o].mem = talloc_named(S->root, 0, "owner %d",
						S->owners[o].gen++);
		assert_non_null(S->owners[o].mem);
	}
	return o;
}

static void make_script(struct task_rec *t)
{
	static const int steps[] = {
		TEVENT_TP_RETURN_CHECKING_IN,
		TEVENT_TP_RETURN_SYNC,
		TEVENT_TP_RETURN_SYNC,
		TEVENT_TP_RETURN_SYNC | TEVENT_TP_RETURN_FLAG_OUTLIVE,
		TEVENT_TP_RETURN_CHECKING_IN | TEVENT_TP_RETURN_FLAG_OUTLIVE,
	};
	t->nscript = (int)pick(7);
	for (int i = 0; i < t->nscript; i++) {
		t->script[i] = steps[pick(sizeof(steps) / sizeof(steps[0]))];
	}
	t->script[t->nscript++] = chance(10) ? TEVENT_TP_RETURN_STOPPED
					     : TEVENT_TP_RETURN_FINISHED;
	t->stop_extra = chance(20) ? 1 + (int)pick(2) : 0;
}

/* A task on context ctx (-1: any). */
static void enqueue_on(int ctx)
{
	if (S->ntasks == MAX_TASKS) {
		return;
	}
	struct task_rec *t = &S->tasks[S->ntasks];
	memset(t, 0, sizeof(*t));
	t->id = S->ntasks;
	t->seed = tt_splitmix64(&loop_rng);
	t->ctx = ctx >= 0 ? ctx : (int)pick(MAX_CTX);
	t->owner = owner_for_new_task();
	t->pool = (int)pick(NPOOL);
	struct pool_rec *pr = &S->pools[t->pool];
	t->pool_gen = pr->gen;
	make_script(t);

	unsigned before = outstanding(t->pool);
	struct tevent_threadpool_task_args args = {
		.ev = S->ev[t->ctx],
		.owner = t->owner >= 0 ? S->owners[t->owner].mem : NULL,
		.user = t,
		.task = stress_task,
		.sync = stress_sync,
		.cleanup = stress_cleanup,
	};
	errno = 0;
	t->task = tevent_threadpool_enqueue(pr->pool, &args, "task %d", t->id);
	if (t->task == NULL) {
		int err = errno;
		if (err == ESHUTDOWN && pr->finished) {
			S->enq_shutdown++;
		} else if (err == EAGAIN && !pr->finished &&
			   before >= pr->max_threads + pr->max_depth) {
			S->enq_again++;
		} else {
			violation("enqueue failed with errno %d (finished %d, "
				  "%u outstanding, limit %u)", err,
				  (int)pr->finished, before,
				  pr->max_threads + pr->max_depth);
		}
		return;
	}
	if (pr->finished) {
		violation("enqueue accepted after finish");
	}
	S->enq_ok++;
	S->ntasks++;
	/* Without an owner the task is detached at once and may be reaped
	 * whenever it ends: its pointer is not ours to use. */
	t->attached = t->owner >= 0;
	t->handle_valid = t->attached;
}

/* A random task whose handle may be used, or NULL. */
static struct task_rec *pick_task(bool (*want)(const struct task_rec *))
{
	if (S->ntasks == 0) {
		return NULL;
	}
	int start = (int)pick((unsigned)S->ntasks);
	for (int k = 0; k < S->ntasks; k++) {
		struct task_rec *t = &S->tasks[(start + k) % S->ntasks];
		if (t->handle_valid && pool_current(t->pool, t->pool_gen) &&
		    want(t)) {
			return t;
		}
	}
	return NULL;
}

static bool is_pending(const struct task_rec *t)
{
	return t->pending;
}

static bool any_task(const struct task_rec *t)
{
	(void)t;
	return true;
}

static void op_resume(void)
{
	struct task_rec *t = pick_task(is_pending);
	if (t != NULL) {
		resume(t, chance(10));
	}
}

static void op_stop(void)
{
	struct task_rec *t = pick_task(any_task);
	if (t != NULL) {
		tevent_threadpool_task_stop(t->task);
		t->pending = false;
		S->stops++;
	}
}

static void op_reap_or_peek(void)
{
	struct task_rec *t = pick_task(any_task);
	if (t == NULL) {
		return;
	}
	if (t->ends == 0) {
		enum tevent_threadpool_task_state st =
			tevent_threadpool_task_get_state(t->task);
		if (t->pending && st != ST_SYNCING) {
			violation("task %d: pending sync, get_state %d", t->id,
				  (int)st);
		}
		if (st == ST_FINISHED || st == ST_STOPPED) {
			reap(t, st);  /* ended, notice on its way: fine */
		}
		return;
	}
	reap(t, t->end_state);
}

static void op_free_owner(void)
{
	int o = (int)pick(MAX_OWNERS);
	if (S->owners[o].mem != NULL) {
		free_owner(o);
	}
}

static void op_enqueue(void)
{
	enqueue_on(-1);
}

/* A job on context ctx (-1: any) for pool `pool` (-1: either). */
static void job_send_on(int ctx, int pool)
{
	if (S->njobs == MAX_JOBS) {
		return;
	}
	struct job_rec *j = &S->jobs[S->njobs];
	memset(j, 0, sizeof(*j));
	j->id = S->njobs;
	j->ctx = ctx >= 0 ? ctx : (int)pick(MAX_CTX);
	j->pool = pool >= 0 ? pool : (int)pick(NPOOL);
	if (S->pools[j->pool].pool == NULL) {
		return;  /* freed by a sync function earlier in this turn */
	}
	j->pool_gen = S->pools[j->pool].gen;
	j->req = tevent_threadpool_job_send(S->root, S->ev[j->ctx],
					    S->pools[j->pool].pool,
					    stress_job, j);
	assert_non_null(j->req);
	tevent_req_set_callback(j->req, job_done, j);
	S->njobs++;
}

/*
 * A sync function that waits for a job in a nested loop, the shape of a
 * synchronous wrapper around an asynchronous call. So that the wait can
 * end, every sync is answered at once meanwhile (as in the drain), and
 * the job goes to a pool with a thread to spare: the task whose sync
 * function waits keeps its own thread until that function returns.
 */
static void wait_for_job(int ctx, int pool)
{
	bool draining = S->draining;
	S->draining = true;
	S->nested_waits++;
	for (int i = 0; i < S->ntasks; i++) {
		struct task_rec *t = &S->tasks[i];
		if (t->handle_valid && t->pending) {
			resume(t, false);
		}
	}
	int before = S->njobs;
	job_send_on(ctx, pool);
	if (S->njobs == before) {
		S->draining = draining;
		return;  /* no room, or the pool went in this very turn */
	}
	struct job_rec *j = &S->jobs[S->njobs - 1];
	/* The other loops turn too: their tasks, blocked until a loop
	 * answers them, could hold every thread the job needs. */
	double deadline = tt_now_s() + 60;
	unsigned turn = 0;
	while (j->req != NULL && tt_now_s() < deadline) {
		int c = (int)(turn++ % MAX_CTX);
		int ret = tevent_loop_once(loop_ev(c));
		if (ret != 0) {
			violation("nested wait: tevent_loop_once returned %d",
				  ret);
			break;
		}
	}
	if (j->req != NULL) {
		violation("job %d: not completed in a nested wait of 60 s",
			  j->id);
	}
	S->draining = draining;
}

static void op_job_send(void)
{
	job_send_on(-1, -1);
}

static void cancel_job(struct job_rec *j)
{
	struct tevent_req *req = j->req;
	j->req = NULL;
	talloc_free(req);
	atomic_store(&j->freed, 1);
	if (atomic_load(&j->running) != 0) {
		violation("job %d: still running after its request went",
			  j->id);
	}
	S->jobs_cancelled++;
}

static void op_job_cancel(void)
{
	if (S->njobs == 0) {
		return;
	}
	struct job_rec *j = &S->jobs[pick((unsigned)S->njobs)];
	if (j->req != NULL) {
		cancel_job(j);
	}
}

/* The dump reads every task's state while pool threads change it. */
static void op_dump(void)
{
	char *d = tevent_threadpool_dump(S->root,
					 S->pools[pick(NPOOL)].pool);
	if (d == NULL || strstr(d, "stress") == NULL) {
		violation("dump: %s", d ? d : "NULL");
	}
	talloc_free(d);
}

static void op_loop(void)
{
	int ret = tevent_loop_once(loop_ev((int)pick(MAX_CTX)));
	if (ret != 0) {
		violation("tevent_loop_once returned %d", ret);
	}
}

/* A context goes before the pool: its tasks lose their loop. */
static void free_context(int c)
{
	for (int i = 0; i < S->njobs; i++) {
		if (S->jobs[i].ctx == c && S->jobs[i].req != NULL) {
			cancel_job(&S->jobs[i]);
		}
	}
	TALLOC_FREE(S->ev[c]);
	S->ctx_frees++;
	for (int i = 0; i < S->ntasks; i++) {
		struct task_rec *t = &S->tasks[i];
		if (t->ctx == c) {
			forget_task(t);
			t->ctx = -1;
		}
	}
}

static void op_free_context(void)
{
	int c = (int)pick(MAX_CTX);
	/* Debian's libtevent keeps a threaded immediate sent to a wrapper
	 * that goes and takes it in later, after the pool has let go of it
	 * (doc/threadpool.md, Limits): wrappers go early only on ours,
	 * which drops it with the wrapper. */
	if (S->wrapped && (c == 0 || c == WRAP_SLOT) &&
	    tt_is_system_library()) {
		return;
	}
	if (S->wrapped && c == 0) {
		free_context(WRAP_SLOT);  /* the wrapper before its main */
		free_context(0);
		new_context(0);
		new_context(WRAP_SLOT);
		return;
	}
	free_context(c);
	new_context(c);
}

static void op_finish(void)
{
	int p = (int)pick(NPOOL);
	struct pool_rec *pr = &S->pools[p];
	if (pr->finished) {
		return;
	}
	tevent_threadpool_finish(pr->pool);
	pr->finished = true;
	S->pool_finishes++;
	/* Its syncing tasks were resumed with a stop. */
	for (int i = 0; i < S->ntasks; i++) {
		if (S->tasks[i].pool == p) {
			S->tasks[i].pending = false;
		}
	}
}

static void run_op(void)
{
	for (int p = 0; p < NPOOL; p++) {
		if (S->pools[p].pool == NULL) {
			new_pool(p);  /* freed from inside a sync function */
		} else if (S->pools[p].finished && chance(5)) {
			free_pool(p);
			new_pool(p);
			return;
		}
	}
	unsigned r = pick(1000);
	if (r < 200) {
		op_enqueue();
	} else if (r < 400) {
		op_resume();
	} else if (r < 440) {
		op_stop();
	} else if (r < 520) {
		op_reap_or_peek();
	} else if (r < 545) {
		op_free_owner();
	} else if (r < 635) {
		op_job_send();
	} else if (r < 665) {
		op_job_cancel();
	} else if (r < 675) {
		op_dump();
	} else if (r < 990) {
		op_loop();
	} else if (r < 994) {
		op_free_context();
	} else if (r < 997) {
		op_finish();
	} else {
		int p = (int)pick(NPOOL);
		free_pool(p);
		new_pool(p);
	}
}

/* ------------------------------------------------------------------ */
/* the end of a run: nothing may be lost */

static bool all_delivered(void)
{
	for (int i = 0; i < S->ntasks; i++) {
		struct task_rec *t = &S->tasks[i];
		if (!pool_current(t->pool, t->pool_gen) || t->ctx < 0) {
			continue;  /* reaped with its pool / lost its loop */
		}
		/* Attached: its end notice is due; detached: its cleanup. */
		if (atomic_load(&t->cleaned) == 0 &&
		    (t->ends == 0 || !t->handle_valid)) {
			return false;
		}
	}
	for (int i = 0; i < S->njobs; i++) {
		if (S->jobs[i].req != NULL) {
			return false;
		}
	}
	return true;
}

/* Whether everything of the current pool bound to context c (or to a
 * wrapper of it) has been delivered: end notices of attached tasks,
 * cleanups of detached ones, job completions. */
static bool delivered_on(int c)
{
	for (int i = 0; i < S->ntasks; i++) {
		struct task_rec *t = &S->tasks[i];
		if (!pool_current(t->pool, t->pool_gen) || t->ctx < 0 ||
		    loop_ev(t->ctx) != S->ev[c]) {
			continue;
		}
		if (atomic_load(&t->cleaned) == 0 &&
		    (t->ends == 0 || !t->handle_valid)) {
			return false;
		}
	}
	for (int i = 0; i < S->njobs; i++) {
		struct job_rec *j = &S->jobs[i];
		if (j->req != NULL && loop_ev(j->ctx) == S->ev[c]) {
			return false;
		}
	}
	return true;
}

/* tevent_loop_wait() returns once a loop has no events left: the pool's
 * idle timer must keep it running until all its tasks have reported.
 * With nothing else outstanding (other loops' tasks could hold every
 * thread), each loop in turn gets a few tasks and jobs and waits. */
static void loop_wait_all(void)
{
	for (int c = 0; c < MAX_CTX; c++) {
		if (S->wrapped && c == WRAP_SLOT) {
			continue;  /* served by context 0's loop */
		}
		for (int k = 0; k < 4; k++) {
			enqueue_on(S->wrapped && c == 0 && k % 2 ? WRAP_SLOT : c);
			job_send_on(c, -1);
		}
		TALLOC_FREE(S->tick[c].te);
		int ret = tevent_loop_wait(S->ev[c]);
		if (ret != 0) {
			violation("tevent_loop_wait returned %d", ret);
		}
		if (!delivered_on(c)) {
			violation("context %d: tevent_loop_wait returned with "
				  "reports outstanding", c);
		}
		assert_true(tt_tick_start(S->ev[c], &S->tick[c], 1000));
	}
}

static void drain(void)
{
	S->draining = true;
	for (int i = 0; i < S->ntasks; i++) {
		struct task_rec *t = &S->tasks[i];
		if (t->handle_valid && t->pending) {
			resume(t, false);
		}
	}
	double deadline = tt_now_s() + 60;
	unsigned turn = 0;
	while (!all_delivered()) {
		if (tt_now_s() > deadline) {
			for (int p = 0; p < NPOOL; p++) {
				char *dump = tevent_threadpool_dump(
					S->root, S->pools[p].pool);
				fprintf(stderr, "%s\n",
					dump ? dump : "(no dump)");
			}
			for (int i = 0; i < S->ntasks; i++) {
				struct task_rec *t = &S->tasks[i];
				if (pool_current(t->pool, t->pool_gen) &&
				    t->ctx >= 0
				    && atomic_load(&t->cleaned) == 0) {
					fprintf(stderr, "task %d: ctx %d owner "
						"%d attached %d pending %d "
						"syncs %d ends %d calls %d\n",
						t->id, t->ctx, t->owner,
						(int)t->attached,
						(int)t->pending, t->syncs,
						t->ends, t->calls);
				}
			}
			violation("drain: not everything delivered in 60 s");
			break;
		}
		int ret = tevent_loop_once(loop_ev((int)(turn++ % MAX_CTX)));
		if (ret != 0) {
			violation("drain: tevent_loop_once returned %d", ret);
			break;
		}
	}
	if (atomic_load(&S->found.count) == 0) {
		loop_wait_all();
	}
	/* Reap what ended and is still ours. */
	for (int i = 0; i < S->ntasks; i++) {
		struct task_rec *t = &S->tasks[i];
		if (t->handle_valid && t->ends > 0) {
			reap(t, t->end_state);
		}
	}
}

static void run_seed(uint64_t seed, int ops)
{
	loop_rng = seed * 0x2545f4914f6cdd1dULL + 1;
	memset(S, 0, sizeof(*S));
	S->seed = seed;
	S->root = talloc_new(NULL);
	S->tasks = calloc(MAX_TASKS, sizeof(*S->tasks));
	S->jobs = calloc(MAX_JOBS, sizeof(*S->jobs));
	assert_non_null(S->root);
	assert_non_null(S->tasks);
	assert_non_null(S->jobs);
	S->wrapped = (seed & 1) != 0;
	for (int c = 0; c < MAX_CTX; c++) {
		new_context(c);
	}
	for (int p = 0; p < NPOOL; p++) {
		new_pool(p);
	}

	for (int i = 0; i < ops && atomic_load(&S->found.count) == 0; i++) {
		run_op();
	}
	for (int p = 0; p < NPOOL; p++) {
		if (S->pools[p].pool == NULL) {
			new_pool(p);
		}
	}
	if (atomic_load(&S->found.count) == 0) {
		drain();
	}
	for (int p = 0; p < NPOOL; p++) {
		free_pool(p);
	}
	for (int i = 0; i < S->ntasks; i++) {
		if (atomic_load(&S->tasks[i].cleaned) != 1) {
			violation("task %d: %d cleanups at the end", i,
				  atomic_load(&S->tasks[i].cleaned));
		}
	}
	for (int i = 0; i < S->njobs; i++) {
		struct job_rec *j = &S->jobs[i];
		if (j->req == NULL && !atomic_load(&j->freed) &&
		    j->completions != 1) {
			violation("job %d: %d completions", i, j->completions);
		}
	}
	for (int o = 0; o < MAX_OWNERS; o++) {
		TALLOC_FREE(S->owners[o].mem);
	}
	for (int c = MAX_CTX - 1; c >= 0; c--) {
		TALLOC_FREE(S->ev[c]);  /* a wrapper before its main */
	}
	for (int i = 0; i < S->njobs; i++) {
		if (S->jobs[i].req != NULL) {
			violation("job %d: request left at the end", i);
		}
	}
	size_t left = talloc_total_blocks(S->root);
	if (left != 1) {
		talloc_report_full(S->root, stderr);
		violation("%zu talloc blocks left under the root", left - 1);
	}
	talloc_free(S->root);
	free(S->tasks);
	free(S->jobs);

	if (atomic_load(&S->found.count) != 0 || getenv("TP_STRESS_VERBOSE")) {
		fprintf(stderr,
			"seed %llu: %d violation(s)%s%s; tasks %d (enqueue ok "
			"%lu, EAGAIN %lu, ESHUTDOWN %lu), resumes %lu, stops "
			"%lu, reaps %lu, owner frees %lu, pool frees %lu, "
			"finishes %lu, context frees %lu, nested turns %lu, "
			"nested waits %lu, "
			"jobs %d (ok %lu, failed %lu, cancelled %lu)\n",
			(unsigned long long)seed, atomic_load(&S->found.count),
			S->found.first[0] ? ", first: " : "", S->found.first,
			S->ntasks, S->enq_ok, S->enq_again, S->enq_shutdown,
			S->resumes, S->stops, S->reaps, S->owner_frees,
			S->pool_frees, S->pool_finishes, S->ctx_frees,
			S->nested, S->nested_waits, S->njobs, S->jobs_ok,
			S->jobs_failed,
			S->jobs_cancelled);
	}
}

static void test_random_use(void **state)
{
	(void)state;
	static struct stress s;
	S = &s;
	int seeds = tt_env_int("TP_STRESS_SEEDS", TT_ON_VALGRIND() ? 10 : 60);
	int start = tt_env_int("TP_STRESS_START", 1);
	int ops = tt_env_int("TP_STRESS_OPS", 400);
	int failed = 0;

	for (int i = 0; i < seeds; i++) {
		alarm(600);
		run_seed((uint64_t)(start + i), ops);
		if (atomic_load(&S->found.count) != 0) {
			failed++;
		}
	}
	alarm(0);
	assert_int_equal(failed, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_use),
	};
	tt_check_library();
	return cmocka_run_group_tests(tests, NULL, NULL);
}

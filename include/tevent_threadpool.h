/*
 * tevent_threadpool.h - worker threads for tevent loops
 *
 * libtevent_threadpool.so.0 runs blocking work (file I/O, crypto, directory
 * scans, ...) in a pool of POSIX threads and brings the results back to the
 * tevent loop that asked for them.  It only uses tevent's public API, so it
 * works with any libtevent.so.0 from 0.9.31 on.
 *
 * Two levels:
 *
 *  - Tasks (the full model).  A task is bound to a tevent context (the loop
 *    that owns it) and to an owner talloc context (typically a connection).
 *    Its task function runs in a pool thread, possibly many times; it can
 *    ask to "sync" with the loop, which then calls the task's sync function
 *    on the loop thread while the task waits; it can be asked to stop; when
 *    it ends it waits in a done list until the loop asks for its status,
 *    like a child process until wait().  See doc/threadpool.md.
 *
 *  - Jobs (the common case).  tevent_threadpool_job_send() runs one
 *    function in the pool and completes a tevent_req on the loop.
 *
 * Threads: a pool, its tasks and the tevent contexts they are bound to
 * belong to one thread, the thread that created the pool (the "loop
 * thread").  Every function here is called from that thread, except that
 * task functions run in pool threads and must not call into this API,
 * talloc objects of the loop thread or tevent.
 */
#ifndef TEVENT_THREADPOOL_H
#define TEVENT_THREADPOOL_H

#include <stdbool.h>
#include <stddef.h>

#include <talloc.h>
#include <tevent.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef PRINTF_ATTRIBUTE
#if defined(__GNUC__) || defined(__clang__)
#define PRINTF_ATTRIBUTE(a1, a2) __attribute__((format(__printf__, a1, a2)))
#else
#define PRINTF_ATTRIBUTE(a1, a2)
#endif
#endif

struct tevent_threadpool;
struct tevent_threadpool_task;

/* The six states of a task. */
enum tevent_threadpool_task_state {
	TEVENT_TP_STATE_QUEUED = 0,  /* waiting for a pool thread */
	TEVENT_TP_STATE_RUNNING,     /* in a pool thread, doing its work */
	TEVENT_TP_STATE_SYNCING,     /* blocked until the loop resumes it */
	TEVENT_TP_STATE_STOPPING,    /* asked to stop, not ended yet */
	TEVENT_TP_STATE_FINISHED,    /* ended: the task said it completed */
	TEVENT_TP_STATE_STOPPED,     /* ended: stopped, or never ran */
};

/* What a task function returns: one value, optionally or'ed with
 * TEVENT_TP_RETURN_FLAG_OUTLIVE. */
enum tevent_threadpool_task_return {
	/* Not done; call me again, with STOPPING if someone asked me to. */
	TEVENT_TP_RETURN_CHECKING_IN = 0,
	/* Call my sync function on the loop thread and block me until the
	 * loop calls tevent_threadpool_task_sync(). */
	TEVENT_TP_RETURN_SYNC = 1,
	/* Done (state FINISHED). */
	TEVENT_TP_RETURN_FINISHED = 2,
	/* Gave up after being asked to stop (state STOPPED). */
	TEVENT_TP_RETURN_STOPPED = 3,
	/* Keep running when the owner is freed (with CHECKING_IN or SYNC;
	 * sticky once returned). */
	TEVENT_TP_RETURN_FLAG_OUTLIVE = 0x100,
};

/*
 * Runs in a pool thread.  state is TEVENT_TP_STATE_RUNNING, or
 * TEVENT_TP_STATE_STOPPING once the task was asked to stop (it should then
 * return TEVENT_TP_RETURN_STOPPED soon).  A long task should return
 * CHECKING_IN now and then so that a stop request reaches it.
 */
typedef int (*tevent_threadpool_task_fn)(void *user,
					 enum tevent_threadpool_task_state state);

/*
 * Runs on the loop thread, never at the same time as the task function:
 *  - with TEVENT_TP_STATE_SYNCING after the task returned SYNC; the task
 *    stays blocked until tevent_threadpool_task_sync() is called, from
 *    here or later;
 *  - with TEVENT_TP_STATE_FINISHED or _STOPPED once, when the task has
 *    ended; call tevent_threadpool_task_status() (here or later) to reap it.
 * It is only called while the owner exists.
 */
typedef void (*tevent_threadpool_sync_fn)(struct tevent_threadpool_task *task,
					  void *user,
					  enum tevent_threadpool_task_state state);

/*
 * Runs exactly once per task, on the loop thread, when the task is reaped,
 * whatever way it ended (reaped by tevent_threadpool_task_status(), by the
 * owner going away, automatically after outliving its owner, or by freeing
 * the pool).  final_state is FINISHED or STOPPED.  Typically frees user.
 */
typedef void (*tevent_threadpool_cleanup_fn)(
	void *user, enum tevent_threadpool_task_state final_state);

struct tevent_threadpool_task_args {
	/* The loop that owns the task: sync and end notifications run on it.
	 * Required.  It must stay alive as long as the task is not reaped, or
	 * the task loses its loop (it is stopped and detached). */
	struct tevent_context *ev;
	/* The owner (the seed's connection).  Freeing it asks the task to
	 * stop unless it returned TEVENT_TP_RETURN_FLAG_OUTLIVE; either way
	 * the task is detached: no more sync calls, reaped automatically.
	 * NULL: detached from the start.  user must not be a talloc child of
	 * owner. */
	TALLOC_CTX *owner;
	/* Passed to all three functions. */
	void *user;
	/* Required. */
	tevent_threadpool_task_fn task;
	/* Optional (NULL: SYNC behaves like CHECKING_IN, no end notice). */
	tevent_threadpool_sync_fn sync;
	/* Optional. */
	tevent_threadpool_cleanup_fn cleanup;
};

/*
 * Creates a pool (a talloc child of mem_ctx) of at most max_threads threads
 * (>= 1; more than the CPU count is fine) and a queue of at most
 * max_queue_depth tasks waiting for a thread.  Threads start on demand.
 * Returns NULL with errno set (EINVAL, ENOMEM, ...) on failure.
 *
 * talloc_free() of the pool is the destroy step and is safe with tasks in
 * any state: it does tevent_threadpool_finish(), then reaps every task
 * (their cleanup functions run) without calling any sync function.
 */
struct tevent_threadpool *tevent_threadpool_create(TALLOC_CTX *mem_ctx,
						   unsigned max_threads,
						   unsigned max_queue_depth,
						   const char *fmt, ...)
	PRINTF_ATTRIBUTE(4, 5);

const char *tevent_threadpool_name(const struct tevent_threadpool *pool);

/*
 * Asks every task to stop (queued ones end at once as STOPPED, syncing ones
 * are resumed with a stop), waits until all have ended, and ends the pool
 * threads.  Later enqueues fail with ESHUTDOWN.  End notifications still
 * reach the loops as usual.  Blocks the calling thread.
 */
void tevent_threadpool_finish(struct tevent_threadpool *pool);

/*
 * Queues a task named by fmt.  Returns the task, or NULL with errno:
 *   EAGAIN     max_threads + max_queue_depth tasks have not ended yet
 *              (queue depth reached), or no thread could be started
 *   ESHUTDOWN  tevent_threadpool_finish() was called
 *   EINVAL     pool, args, ev or task missing
 *   ENOMEM
 * On failure nothing was created and nothing was taken over: the cleanup
 * function is not called and user is still the caller's.
 *
 * The task pointer stays valid until tevent_threadpool_task_status() returns
 * FINISHED or STOPPED, the owner is freed, or the pool is freed.
 */
struct tevent_threadpool_task *tevent_threadpool_enqueue(
	struct tevent_threadpool *pool,
	const struct tevent_threadpool_task_args *args,
	const char *fmt, ...) PRINTF_ATTRIBUTE(3, 4);

/*
 * Resumes a task that is blocked in SYNCING; with stop it resumes as
 * STOPPING.  Called from the sync function the task resumes when that
 * function returns.  0, or EINVAL if the task is not waiting for a sync.
 */
int tevent_threadpool_task_sync(struct tevent_threadpool_task *task, bool stop);

/* Asks the task to stop (a queued task ends at once, as STOPPED). */
void tevent_threadpool_task_stop(struct tevent_threadpool_task *task);

/* The current state, without side effects. */
enum tevent_threadpool_task_state tevent_threadpool_task_get_state(
	const struct tevent_threadpool_task *task);

/*
 * The current state; if it is FINISHED or STOPPED the task is reaped: its
 * cleanup function runs now and the task pointer becomes invalid (the
 * wait() of the process analogy).
 */
enum tevent_threadpool_task_state tevent_threadpool_task_status(
	struct tevent_threadpool_task *task);

const char *tevent_threadpool_task_name(const struct tevent_threadpool_task *task);
void *tevent_threadpool_task_user(const struct tevent_threadpool_task *task);

/* "queued", "running", "syncing", "stopping", "finished", "stopped". */
const char *tevent_threadpool_state_name(enum tevent_threadpool_task_state state);

/*
 * A readable description of the pool: threads and what they run, queued,
 * running, syncing, stopping and ended tasks with their names and ages.
 * A talloc string under mem_ctx, NULL on ENOMEM.
 */
char *tevent_threadpool_dump(TALLOC_CTX *mem_ctx, struct tevent_threadpool *pool);

/* ------------------------------------------------------------------------
 * Jobs: one function in a pool thread, completion as a tevent_req.
 * ------------------------------------------------------------------------ */

typedef void (*tevent_threadpool_job_fn)(void *private_data);

/*
 * Runs fn(private_data) in a pool thread; the request completes on ev
 * afterwards.  Errors (queue full: EAGAIN, no pool or no fn: EINVAL, ...)
 * complete the request through tevent_req_post(); without ev there is no
 * request: NULL with errno EINVAL.  Freeing the request before it completed cancels the
 * job: if fn has not started it never runs; if it is running, the free
 * waits until it has returned.  So after the request is gone fn is not
 * running and private_data is free again.
 */
struct tevent_req *tevent_threadpool_job_send(TALLOC_CTX *mem_ctx,
					      struct tevent_context *ev,
					      struct tevent_threadpool *pool,
					      tevent_threadpool_job_fn fn,
					      void *private_data);

/* 0 once fn has run; otherwise an errno value (ECANCELED: the pool was
 * finished or freed before fn ran). */
int tevent_threadpool_job_recv(struct tevent_req *req);

#ifdef __cplusplus
}
#endif

#endif /* TEVENT_THREADPOOL_H */

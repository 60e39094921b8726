// Tasks: enqueue, state changes, sync/resume, stop, owner binding, reaping.
//
// A task is a talloc child of the pool.  It is on at most one of the
// pool's queue (QUEUED), the pool's active list (RUNNING, SYNCING,
// STOPPING) or its port's done list (ended and delivered), and
// independently in its port's inbox while the loop has something to do
// for it.  It is freed only by task_reap(), on the loop thread.
#include "internal.hh"

#include <stdlib.h>

namespace tpool {

namespace {

void task_owner_gone(Task *t);

int binding_destructor(Binding *b)
{
	if (b->task != nullptr) {
		task_owner_gone(b->task);
	}
	return 0;
}

void unbind(Task *t)
{
	if (t->binding != nullptr) {
		t->binding->task = nullptr;
		talloc_free(t->binding);
		t->binding = nullptr;
	}
}

// Frees a task that never became visible to the pool; fails with err.
Task *abandon(Task *t, int err)
{
	unbind(t);
	talloc_free(t);
	errno = err;
	return nullptr;
}

// The owner was freed: the task loses its sync partner for good.
void task_owner_gone(Task *t)
{
	t->binding = nullptr;
	Lock l(t->pool);
	t->detached = true;
	if (t->ended) {
		if (t->end_seen) {
			// Waiting in the done list for a status call that
			// can no longer come.
			t->port->done.drop(t);
			port_post(t->port, t, Event::kReap);
		}
		// Otherwise its end notice is queued and reaps it.
		return;
	}
	if (!t->outlive) {
		task_stop_locked(t);
		return;
	}
	// Outliving: a blocked sync can no longer be answered, go on.
	if (t->state == TEVENT_TP_STATE_SYNCING && !t->released) {
		if (t->in_cb) {
			t->deferred_resume = true;
		} else {
			task_release(t, false);
		}
	}
}

} // namespace

void task_set_state(Task *t, State st)
{
	if (t->state != st) {
		t->state = st;
		t->since_ns = now_ns();
	}
}

void task_end(Task *t, State st)
{
	tevent_threadpool *pool = t->pool;
	pool->active.drop(t);
	pool->queue.drop(t);
	task_set_state(t, st);
	t->ended = true;
	t->worker = nullptr;
	pool->unended--;
	port_post(t->port, t, Event::kEnd);
	if (pool->ended_waiters != 0) {
		pthread_cond_broadcast(&pool->ended);
	}
}

void task_release(Task *t, bool stop)
{
	if (stop) {
		t->stop_requested = true;
	}
	t->released = true;
	t->deferred_resume = false;
	t->deferred_stop = false;
	if (t->pending == Event::kSync) {
		port_unqueue(t->port, t);
	}
	task_set_state(t, t->stop_requested ? TEVENT_TP_STATE_STOPPING
					    : TEVENT_TP_STATE_RUNNING);
	pthread_cond_signal(&t->worker->resume);
}

void task_stop_locked(Task *t)
{
	if (t->ended) {
		return;
	}
	t->stop_requested = true;
	switch (t->state) {
	case TEVENT_TP_STATE_QUEUED:
		task_end(t, TEVENT_TP_STATE_STOPPED);
		break;
	case TEVENT_TP_STATE_RUNNING:
		task_set_state(t, TEVENT_TP_STATE_STOPPING);
		break;
	case TEVENT_TP_STATE_SYNCING:
		if (!t->released) {
			if (t->in_cb) {
				// Resumed when its sync function returns.
				t->deferred_resume = true;
				t->deferred_stop = true;
			} else {
				task_release(t, true);
			}
		}
		break;
	default:
		break;
	}
}

void task_reap(Task *t)
{
	tevent_threadpool *pool = t->pool;
	Port *port = t->port;

	unbind(t);
	// Pool threads are done with an ended task: what they wrote is
	// visible since we saw it end.
	if (port->batch.contains(t)) {
		port_unqueue(port, t);
	} else if (t->inbox_link.list != nullptr) {
		Lock l(pool);
		port_unqueue(port, t);
	}
	if (!t->end_seen) {
		port_end_processed(port, t);
	}
	port->done.drop(t);
	port->tasks.drop(t);
	if (!t->cleaned) {
		t->cleaned = true;
		if (t->cleanup != nullptr) {
			t->cleanup(t->user, t->state);
		}
	}
	if (t->in_cb && !pool->tearing_down) {
		t->reap_requested = true;  // freed when its sync function returns
		return;
	}
	talloc_free(t);
}

void task_call_sync(Task *t, State st, DispatchGuard *g)
{
	t->in_cb = true;
	t->sync(t, t->user, st);
	if (g->dead) {
		return;  // the pool, and t with it, was freed meanwhile
	}
	t->in_cb = false;
	if (t->reap_requested) {
		talloc_free(t);
		return;
	}
	if (t->deferred_resume) {
		Lock l(t->pool);
		bool stop = t->deferred_stop;
		t->deferred_resume = false;
		t->deferred_stop = false;
		if (t->state == TEVENT_TP_STATE_SYNCING && !t->released) {
			task_release(t, stop);
		}
	}
}

Task *task_enqueue(tevent_threadpool *pool, const tevent_threadpool_task_args *args,
		   const char *fixed, const char *fmt, va_list *ap)
{
	if (args == nullptr || args->ev == nullptr || args->task == nullptr ||
	    (fixed == nullptr && (fmt == nullptr || ap == nullptr))) {
		errno = EINVAL;
		return nullptr;
	}
	if (pool->finishing || pool->tearing_down) {
		errno = ESHUTDOWN;
		return nullptr;
	}
	Port *port = port_get(pool, args->ev);
	if (port == nullptr || !port_refill(port)) {
		errno = ENOMEM;
		return nullptr;
	}

	Task *t = talloc_object<Task>(pool, "struct tevent_threadpool_task");
	if (t == nullptr) {
		errno = ENOMEM;
		return nullptr;
	}
	t->name = fixed != nullptr ? fixed : talloc_vasprintf(t, fmt, *ap);
	if (t->name == nullptr) {
		return abandon(t, ENOMEM);
	}
	if (args->owner != nullptr) {
		t->binding = talloc_object<Binding>(
			args->owner, "struct tevent_threadpool_binding");
		if (t->binding == nullptr) {
			return abandon(t, ENOMEM);
		}
		t->binding->task = t;
		talloc_set_destructor(t->binding, binding_destructor);
	} else {
		t->detached = true;
	}
	t->pool = pool;
	t->port = port;
	t->user = args->user;
	t->fn = args->task;
	t->sync = args->sync;
	t->cleanup = args->cleanup;
	t->created_ns = t->since_ns = now_ns();
	if (!port_hold_keepalive(port)) {
		return abandon(t, ENOMEM);
	}

	bool need_thread = false;
	{
		Lock l(pool);
		if (pool->unended >= pool->max_threads + pool->max_queue) {
			port_release_keepalive(port);
			return abandon(t, EAGAIN);
		}
		pool->queue.push_back(t);
		pool->unended++;
		unsigned avail = pool->idle - pool->waking;
		if (pool->queue.size() > avail &&
		    pool->nthreads < pool->max_threads) {
			pool->nthreads++;  // reserved; started below
			need_thread = true;
		} else if (avail != 0) {
			if (pool->dispatching != 0) {
				// Enqueued from an end notice: more may come in
				// this batch, wake threads once it is done (or
				// in a nested loop turn before that).
				pool->deferred_wakes++;
				port_schedule_probe(port);
			} else {
				pool_wake_locked(pool);
			}
		}
	}
	if (need_thread && !pool_start_thread(pool)) {
		int err = errno;
		bool undo = false;
		{
			Lock l(pool);
			pool->nthreads--;
			if (pool->nthreads == 0) {
				// No thread will ever take it: undo everything.
				pool->queue.remove(t);
				pool->unended--;
				undo = true;
			}
			// Otherwise the threads we have will get to it.
		}
		if (undo) {
			port_release_keepalive(port);
			return abandon(t, err);
		}
	}
	port->tasks.push_back(t);
	port_task_added(port);
	return t;
}

void task_cancel_and_reap(Task *t)
{
	tevent_threadpool *pool = t->pool;
	{
		Lock l(pool);
		if (!t->ended) {
			task_stop_locked(t);
			while (!t->ended) {
				pool->ended_waiters++;
				pool_wait(pool, &pool->ended);
				pool->ended_waiters--;
			}
		}
	}
	task_reap(t);
}

} // namespace tpool

using namespace tpool;

TP_EXPORT struct tevent_threadpool_task *tevent_threadpool_enqueue(
	struct tevent_threadpool *pool,
	const struct tevent_threadpool_task_args *args, const char *fmt, ...)
{
	if (pool == nullptr) {
		errno = EINVAL;
		return nullptr;
	}
	pool_check_thread(pool, __func__);
	va_list ap;
	va_start(ap, fmt);
	Task *t = task_enqueue(pool, args, nullptr, fmt, &ap);
	va_end(ap);
	return t;
}

TP_EXPORT int tevent_threadpool_task_sync(struct tevent_threadpool_task *task,
					  bool stop)
{
	pool_check_thread(task->pool, __func__);
	Lock l(task->pool);
	if (task->state != TEVENT_TP_STATE_SYNCING || task->released ||
	    task->deferred_resume) {
		return EINVAL;
	}
	if (task->in_cb) {
		// Never overlap the task with its own sync function: resume
		// once that returns.
		task->deferred_resume = true;
		task->deferred_stop = stop;
		return 0;
	}
	task_release(task, stop);
	return 0;
}

TP_EXPORT void tevent_threadpool_task_stop(struct tevent_threadpool_task *task)
{
	pool_check_thread(task->pool, __func__);
	Lock l(task->pool);
	task_stop_locked(task);
}

TP_EXPORT enum tevent_threadpool_task_state tevent_threadpool_task_get_state(
	const struct tevent_threadpool_task *task)
{
	Lock l(task->pool);
	return task->state;
}

TP_EXPORT enum tevent_threadpool_task_state tevent_threadpool_task_status(
	struct tevent_threadpool_task *task)
{
	pool_check_thread(task->pool, __func__);
	State st;
	bool ended;
	{
		Lock l(task->pool);
		st = task->state;
		ended = task->ended;
	}
	if (ended && !task->reap_requested) {
		task_reap(task);
	}
	return st;
}

TP_EXPORT const char *tevent_threadpool_task_name(
	const struct tevent_threadpool_task *task)
{
	return task->name;
}

TP_EXPORT void *tevent_threadpool_task_user(const struct tevent_threadpool_task *task)
{
	return task->user;
}

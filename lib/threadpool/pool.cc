// The pool object and its threads.
//
// One mutex guards everything pool threads and the loop thread share (the
// queue, task states, port inboxes).  A pool thread takes the first queued
// task, runs its task function with the mutex released, and handles the
// return value with the mutex held; it never calls talloc or tevent except
// tevent_threaded_schedule_immediate(), which exists to be called from
// other threads.
#include "internal.hh"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

namespace tpool {

uint64_t now_ns()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void pool_check_thread(const tevent_threadpool *pool, const char *fn)
{
	if (!pthread_equal(pthread_self(), pool->loop_thread)) {
		fprintf(stderr, "%s: pool \"%s\" used from a thread that did not "
			"create it\n", fn, pool->name);
		abort();
	}
}

void pool_lock(tevent_threadpool *pool)
{
	pthread_mutex_lock(&pool->mutex);
}

namespace {

// Takes queued wake-ups (mutex held); returns how many went to out.
constexpr unsigned kSendBatch = 8;

struct Send {
	Port *port;
	Token *tok;
};

unsigned take_sends(tevent_threadpool *pool, Send *out)
{
	unsigned n = 0;
	while (n < kSendBatch) {
		Port *port = pool->outbox.pop_front();
		if (port == nullptr) {
			break;
		}
		Token *tok = port->send_tok;
		port->send_tok = nullptr;
		if (tok != nullptr && !port->dead) {
			port->sending.fetch_add(1, std::memory_order_relaxed);
			out[n++] = Send{port, tok};
		}
	}
	return n;
}

} // namespace

void pool_unlock(tevent_threadpool *pool)
{
	for (;;) {
		Send sends[kSendBatch];
		unsigned n = take_sends(pool, sends);
		bool more = !pool->outbox.empty();
		pthread_mutex_unlock(&pool->mutex);
		for (unsigned i = 0; i < n; i++) {
			port_send(sends[i].port, sends[i].tok);
		}
		if (!more) {
			return;
		}
		pthread_mutex_lock(&pool->mutex);
	}
}

void pool_wake_locked(tevent_threadpool *pool)
{
	// One idle thread per queued task at most: threads that finish a
	// task take the next one without sleeping.
	size_t queued = pool->queue.size();
	while (pool->idle > pool->waking && queued > pool->waking) {
		pool->waking++;
		pthread_cond_signal(&pool->work);
	}
	pool->deferred_wakes = 0;
}

void pool_wait(tevent_threadpool *pool, pthread_cond_t *cond)
{
	if (!pool->outbox.empty()) {
		pool_unlock(pool);
		pthread_mutex_lock(&pool->mutex);
		return;
	}
	pthread_cond_wait(cond, &pool->mutex);
}

namespace {

// Runs t until it ends; called and returns with the mutex held.
void run_task(tevent_threadpool *pool, Worker *w, Task *t)
{
	for (;;) {
		State arg = t->stop_requested
			? TEVENT_TP_STATE_STOPPING : TEVENT_TP_STATE_RUNNING;
		task_set_state(t, arg);

		pool_unlock(pool);
		int ret = t->fn(t->user, arg);
		pool_lock(pool);

		if (ret & TEVENT_TP_RETURN_FLAG_OUTLIVE) {
			t->outlive = true;
		}
		switch (ret & ~TEVENT_TP_RETURN_FLAG_OUTLIVE) {
		case TEVENT_TP_RETURN_CHECKING_IN:
			continue;
		case TEVENT_TP_RETURN_SYNC:
			// Nobody to sync with, or it must stop: call it again.
			if (t->sync == nullptr || t->detached ||
			    t->stop_requested || t->port->dead) {
				continue;
			}
			task_set_state(t, TEVENT_TP_STATE_SYNCING);
			t->released = false;
			port_post(t->port, t, Event::kSync);
			while (!t->released) {
				pool_wait(pool, &w->resume);
			}
			continue;
		case TEVENT_TP_RETURN_FINISHED:
			task_end(t, TEVENT_TP_STATE_FINISHED);
			return;
		case TEVENT_TP_RETURN_STOPPED:
		default:  // not a valid answer: treat as an abort
			task_end(t, TEVENT_TP_STATE_STOPPED);
			return;
		}
	}
}

void *worker_main(void *arg)
{
	auto *w = static_cast<Worker *>(arg);
	tevent_threadpool *pool = w->pool;

	pool_lock(pool);
	for (;;) {
		while (pool->queue.empty() && !pool->shutdown) {
			if (!pool->outbox.empty()) {
				pool_wait(pool, &pool->work);  // sends, no wait
				continue;
			}
			pool->idle++;
			pthread_cond_wait(&pool->work, &pool->mutex);
			pool->idle--;
			if (pool->waking != 0) {
				pool->waking--;
			}
		}
		Task *t = pool->queue.pop_front();
		if (t == nullptr) {
			break;  // shutting down and nothing left
		}
		pool->active.push_back(t);
		t->worker = w;
		w->task = t;
		run_task(pool, w, t);
		w->task = nullptr;
	}
	pool_unlock(pool);
	return nullptr;
}

int pool_destructor(tevent_threadpool *pool)
{
	pool->tearing_down = true;
	pool_finish(pool);

	// Stop dispatchers we may be called from, then reap every task.
	for (Port *p = pool->ports.front(); p != nullptr;
	     p = List<Port, &Port::link>::next(p)) {
		for (DispatchGuard *g = p->guards; g != nullptr; g = g->outer) {
			g->dead = true;
		}
	}
	for (Port *p = pool->ports.front(); p != nullptr;
	     p = List<Port, &Port::link>::next(p)) {
		while (Task *t = p->tasks.front()) {
			task_reap(t);
		}
	}
	while (Port *p = pool->ports.pop_front()) {
		port_teardown(p);
	}
	while (Worker *w = pool->workers.pop_front()) {
		pthread_cond_destroy(&w->resume);
	}
	pthread_cond_destroy(&pool->ended);
	pthread_cond_destroy(&pool->work);
	pthread_mutex_destroy(&pool->mutex);
	pool->~tevent_threadpool();
	return 0;
}

} // namespace

bool pool_start_thread(tevent_threadpool *pool)
{
	auto *w = talloc_object<Worker>(pool, "struct tevent_threadpool_worker");
	if (w == nullptr) {
		errno = ENOMEM;
		return false;
	}
	w->pool = pool;
	int ret = pthread_cond_init(&w->resume, nullptr);
	if (ret != 0) {
		talloc_free(w);
		errno = ret;
		return false;
	}
	{
		Lock l(pool);
		pool->workers.push_back(w);
	}
	// Signals belong to the loop thread: pool threads block them all.
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&w->thread, nullptr, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, nullptr);
	if (ret != 0) {
		{
			Lock l(pool);
			pool->workers.remove(w);
		}
		pthread_cond_destroy(&w->resume);
		talloc_free(w);
		errno = ret;
		return false;
	}
	return true;
}

void pool_finish(tevent_threadpool *pool)
{
	if (pool->finished) {
		return;
	}
	{
		Lock l(pool);
		pool->finishing = true;
		while (Task *t = pool->queue.front()) {
			task_stop_locked(t);  // ends it as STOPPED
		}
		for (Task *t = pool->active.front(); t != nullptr;
		     t = TaskQueue::next(t)) {
			t->stop_requested = true;
			if (t->state == TEVENT_TP_STATE_SYNCING && !t->released) {
				// Even from inside its sync function: we are
				// about to wait for it.
				task_release(t, true);
			} else if (t->state == TEVENT_TP_STATE_RUNNING) {
				task_set_state(t, TEVENT_TP_STATE_STOPPING);
			}
		}
		while (!pool->active.empty()) {
			pool->ended_waiters++;
			pool_wait(pool, &pool->ended);
			pool->ended_waiters--;
		}
		pool->shutdown = true;
		pthread_cond_broadcast(&pool->work);
	}
	for (Worker *w = pool->workers.front(); w != nullptr;
	     w = List<Worker, &Worker::link>::next(w)) {
		pthread_join(w->thread, nullptr);
	}
	pool->finished = true;
}

} // namespace tpool

using namespace tpool;

TP_EXPORT struct tevent_threadpool *tevent_threadpool_create(
	TALLOC_CTX *mem_ctx, unsigned max_threads, unsigned max_queue_depth,
	const char *fmt, ...)
{
	if (max_threads == 0 || fmt == nullptr) {
		errno = EINVAL;
		return nullptr;
	}
	auto *pool = talloc_object<tevent_threadpool>(mem_ctx,
						      "struct tevent_threadpool");
	if (pool == nullptr) {
		errno = ENOMEM;
		return nullptr;
	}
	va_list ap;
	va_start(ap, fmt);
	pool->name = talloc_vasprintf(pool, fmt, ap);
	va_end(ap);
	if (pool->name == nullptr) {
		pool->~tevent_threadpool();
		talloc_free(pool);
		errno = ENOMEM;
		return nullptr;
	}
	pool->max_threads = max_threads;
	pool->max_queue = max_queue_depth;
	pool->loop_thread = pthread_self();
	pool->created_ns = now_ns();

	int ret = pthread_mutex_init(&pool->mutex, nullptr);
	if (ret == 0) {
		ret = pthread_cond_init(&pool->work, nullptr);
		if (ret == 0) {
			ret = pthread_cond_init(&pool->ended, nullptr);
			if (ret != 0) {
				pthread_cond_destroy(&pool->work);
			}
		}
		if (ret != 0) {
			pthread_mutex_destroy(&pool->mutex);
		}
	}
	if (ret != 0) {
		pool->~tevent_threadpool();
		talloc_free(pool);
		errno = ret;
		return nullptr;
	}
	talloc_set_destructor(pool, pool_destructor);
	return pool;
}

TP_EXPORT const char *tevent_threadpool_name(const struct tevent_threadpool *pool)
{
	return pool->name;
}

TP_EXPORT void tevent_threadpool_finish(struct tevent_threadpool *pool)
{
	pool_check_thread(pool, __func__);
	pool_finish(pool);
}

TP_EXPORT const char *tevent_threadpool_state_name(
	enum tevent_threadpool_task_state state)
{
	switch (state) {
	case TEVENT_TP_STATE_QUEUED:
		return "queued";
	case TEVENT_TP_STATE_RUNNING:
		return "running";
	case TEVENT_TP_STATE_SYNCING:
		return "syncing";
	case TEVENT_TP_STATE_STOPPING:
		return "stopping";
	case TEVENT_TP_STATE_FINISHED:
		return "finished";
	case TEVENT_TP_STATE_STOPPED:
		return "stopped";
	}
	return "invalid";
}

// Internal definitions of libtevent_threadpool (see doc/threadpool.md).
//
// Rules (doc/HACKING.md): C++20 without exceptions, RTTI or anything from
// the C++ runtime library; every object lives in a talloc chunk with the
// C++ object built in place, and its talloc destructor is the cleanup path.
//
// Only tevent's public API is used, and only entry points that already
// exist in libtevent 0.14 (Debian 12), so that the library runs on that
// libtevent.so.0 as well as on ours.
#ifndef TEVENT_THREADPOOL_INTERNAL_HH
#define TEVENT_THREADPOOL_INTERNAL_HH

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <atomic>
#include <new>

#include "tevent_threadpool.h"

// Our tevent.h routes a few macros to entry points added in 0.15; call the
// older ones, which every libtevent.so.0 has.  The parenthesised name stops
// the function-like macro from expanding.
#define TP_REQ_SET_CLEANUP_FN(req, fn) (tevent_req_set_cleanup_fn)(req, fn)
#define TP_REQ_CREATE(mem_ctx, pstate, type) \
	_tevent_req_create((mem_ctx), (pstate), sizeof(type), #type, __location__)

#define TP_EXPORT extern "C" __attribute__((visibility("default")))

#ifndef __location__
#define TP_STR2(x) #x
#define TP_STR(x) TP_STR2(x)
#define __location__ __FILE__ ":" TP_STR(__LINE__)
#endif

namespace tpool {

// The enum's tag is hidden in C++ by the function of the same name.
using State = enum tevent_threadpool_task_state;

// ---------------------------------------------------------------------------
// Intrusive doubly linked list; a node knows which list holds it.

template <typename T>
struct Link {
	T *prev = nullptr;
	T *next = nullptr;
	const void *list = nullptr;
};

template <typename T, Link<T> T::*L>
class List {
public:
	bool empty() const { return head_ == nullptr; }
	size_t size() const { return size_; }
	T *front() const { return head_; }
	static T *next(const T *x) { return (x->*L).next; }
	bool contains(const T *x) const { return (x->*L).list == this; }

	void push_back(T *x)
	{
		Link<T> &l = x->*L;
		l.prev = tail_;
		l.next = nullptr;
		l.list = this;
		if (tail_ != nullptr) {
			(tail_->*L).next = x;
		} else {
			head_ = x;
		}
		tail_ = x;
		size_++;
	}

	void remove(T *x)
	{
		Link<T> &l = x->*L;
		if (l.prev != nullptr) {
			(l.prev->*L).next = l.next;
		} else {
			head_ = l.next;
		}
		if (l.next != nullptr) {
			(l.next->*L).prev = l.prev;
		} else {
			tail_ = l.prev;
		}
		l.prev = l.next = nullptr;
		l.list = nullptr;
		size_--;
	}

	// Removes x if this list holds it.
	void drop(T *x)
	{
		if (contains(x)) {
			remove(x);
		}
	}

	// Moves every node of other to the end of this list.
	void take_all(List &other)
	{
		while (T *x = other.pop_front()) {
			push_back(x);
		}
	}

	T *pop_front()
	{
		T *x = head_;
		if (x != nullptr) {
			remove(x);
		}
		return x;
	}

private:
	T *head_ = nullptr;
	T *tail_ = nullptr;
	size_t size_ = 0;
};

// ---------------------------------------------------------------------------

// A talloc chunk named `name` holding a default-constructed T.
template <typename T>
T *talloc_object(const void *ctx, const char *name)
{
	void *mem = talloc_named_const(ctx, sizeof(T), name);
	if (mem == nullptr) {
		return nullptr;
	}
	return new (mem) T();
}

uint64_t now_ns();

struct Port;
struct Worker;
struct Binding;

// What a task waits for in its port's inbox.
enum class Event : uint8_t {
	kNone,
	kSync,  // call the sync function with SYNCING
	kEnd,   // the task ended: done list + end notice, or reap if detached
	kReap,  // ended and detached: reap
};

// One per thread of the pool; a talloc child of the pool.
struct Worker {
	tevent_threadpool *pool = nullptr;
	pthread_t thread{};
	pthread_cond_t resume;  // a syncing task waits here
	tevent_threadpool_task *task = nullptr;
	Link<Worker> link;
};

// Sits on the owner: its destructor tells the task the owner is gone.
struct Binding {
	tevent_threadpool_task *task = nullptr;
};

// Travels with a wake-up immediate as its private data (a talloc child of
// the immediate), so an immediate still in flight when the pool goes away
// can be disowned.
struct Token {
	Port *port = nullptr;
	tevent_immediate *im = nullptr;
	// Set when disowned: the threaded context kept alive for it.
	tevent_threaded_context *orphan_tctx = nullptr;
	unsigned level = 0;  // dispatch nesting level it last ran at
	Link<Token> link;
};

// Set on the stack while a port dispatches; teardown marks it so the
// dispatcher stops touching freed memory.
struct DispatchGuard {
	bool dead = false;
	// A callback turned the loop again: no longer counted in
	// pool->dispatching, holds nothing back.
	bool suspended = false;
	DispatchGuard *outer = nullptr;
};

// Sits on the tevent context: its destructor tells the port its loop is
// gone.
struct EvGuard {
	Port *port = nullptr;
};

} // namespace tpool

struct tevent_threadpool_task {
	tevent_threadpool *pool = nullptr;
	tpool::Port *port = nullptr;
	const char *name = nullptr;
	void *user = nullptr;
	tevent_threadpool_task_fn fn = nullptr;
	tevent_threadpool_sync_fn sync = nullptr;
	tevent_threadpool_cleanup_fn cleanup = nullptr;
	bool is_job = false;

	// Guarded by pool->mutex.
	tpool::State state = TEVENT_TP_STATE_QUEUED;
	bool stop_requested = false;
	bool outlive = false;
	bool detached = false;
	bool released = false;    // a SYNCING task may go on
	bool ended = false;
	tpool::Event pending = tpool::Event::kNone;
	tpool::Worker *worker = nullptr;
	uint64_t created_ns = 0;
	uint64_t since_ns = 0;    // entered the current state
	tpool::Link<tevent_threadpool_task> where;  // queue / active / done
	tpool::Link<tevent_threadpool_task> inbox_link;

	// Loop thread only.
	tpool::Binding *binding = nullptr;
	bool end_seen = false;    // the port processed (or dropped) the end
	bool cleaned = false;
	bool in_cb = false;       // its sync function is running
	bool reap_requested = false;
	bool deferred_resume = false;
	bool deferred_stop = false;
	tpool::Link<tevent_threadpool_task> port_link;
};

namespace tpool {

using Task = tevent_threadpool_task;
using TaskQueue = List<Task, &Task::where>;
using TaskInbox = List<Task, &Task::inbox_link>;
using PortTasks = List<Task, &Task::port_link>;

// Everything about one tevent context the pool delivers to; a talloc child
// of the pool.
struct Port {
	tevent_threadpool *pool = nullptr;
	tevent_context *ev = nullptr;
	tevent_threaded_context *tctx = nullptr;
	EvGuard *guard = nullptr;
	Link<Port> link;

	// Guarded by pool->mutex.
	bool dead = false;            // the loop is gone
	TaskInbox inbox;
	bool armed = false;           // a wake-up is on its way or dispatching
	bool missed = false;          // wanted to wake, had no immediate
	Token *inflight = nullptr;    // scheduled, its handler not run yet
	Token *next_tok = nullptr;    // idle, used for the next wake-up
	Token *send_tok = nullptr;    // to be sent once the mutex is released
	Link<Port> outbox_link;
	// Wake-ups being sent right now, outside the mutex.
	std::atomic<unsigned> sending{0};

	// Loop thread only.
	TaskInbox batch;              // taken from the inbox, being handled
	bool need_refill = false;     // no idle immediate for the next wake-up
	List<Token, &Token::link> idle_tokens;
	List<Token, &Token::link> busy_tokens;
	unsigned depth = 0;
	DispatchGuard *guards = nullptr;
	PortTasks tasks;              // every unreaped task of this port
	TaskQueue done;               // ended, delivered, not reaped
	unsigned pending_ends = 0;    // tasks whose end was not processed
	tevent_timer *keepalive = nullptr;
	// Made with the port: brings the loop back to port_keep_trying()
	// when not even the keepalive timer could be allocated.
	tevent_immediate *retry_im = nullptr;
	// Scheduled while something is held back (a dispatch runs, thread
	// wake-ups are deferred): it runs only in a nested loop turn, and
	// stops the holding back (nested_turn_handler()).
	tevent_immediate *nest_probe = nullptr;
	bool probe_scheduled = false;
};

Port *port_get(tevent_threadpool *pool, tevent_context *ev);
void port_send(Port *port, Token *tok);           // mutex not held
void port_post(Port *port, Task *t, Event ev);     // pool->mutex held
// Something is held back until the current dispatch ends: have a nested
// loop turn, should one come first, release it (loop thread).
void port_schedule_probe(Port *port);
void port_unqueue(Port *port, Task *t);            // loop thread, mutex held
bool port_refill(Port *port);
// Before a task is accepted: the loop must keep waiting for it, so a
// keepalive timer is needed; false without memory for one.
bool port_hold_keepalive(Port *port);
// A task that was held for is not accepted after all.
void port_release_keepalive(Port *port);
void port_task_added(Port *port);
void port_end_processed(Port *port, Task *t);
void port_teardown(Port *port);

void task_end(Task *t, State st);   // mutex held
void task_release(Task *t, bool stop);                      // mutex held
void task_stop_locked(Task *t);                              // mutex held
void task_reap(Task *t);
void task_call_sync(Task *t, State st,
		    DispatchGuard *g);
void task_set_state(Task *t, State st);  // mutex held
// The name is `fixed` (kept as is) or printed from fmt and *ap.
Task *task_enqueue(tevent_threadpool *pool,
		   const tevent_threadpool_task_args *args, const char *fixed,
		   const char *fmt, va_list *ap);
void task_cancel_and_reap(Task *t);

void pool_check_thread(const tevent_threadpool *pool, const char *fn);
void pool_lock(tevent_threadpool *pool);
// Releases the mutex, then sends the wake-ups queued meanwhile: a
// wake-up is a syscall, better not made while others wait for the mutex.
void pool_unlock(tevent_threadpool *pool);
// pthread_cond_wait(), after sending what is queued (which may have
// changed the state: the caller re-checks its condition and waits again).
void pool_wait(tevent_threadpool *pool, pthread_cond_t *cond);
// Wakes idle threads for queued tasks (mutex held).
void pool_wake_locked(tevent_threadpool *pool);
bool pool_start_thread(tevent_threadpool *pool);
void pool_finish(tevent_threadpool *pool);

} // namespace tpool

struct tevent_threadpool {
	const char *name = nullptr;
	unsigned max_threads = 0;
	unsigned max_queue = 0;
	pthread_t loop_thread{};
	uint64_t created_ns = 0;

	pthread_mutex_t mutex;
	pthread_cond_t work;      // idle threads wait here
	pthread_cond_t ended;     // finish / job cancel wait here

	// Guarded by mutex.
	tpool::TaskQueue queue;   // QUEUED
	tpool::TaskQueue active;  // RUNNING, SYNCING, STOPPING
	unsigned unended = 0;     // tasks not FINISHED/STOPPED yet
	unsigned nthreads = 0;
	unsigned idle = 0;        // threads waiting for work
	unsigned waking = 0;      // of those, signalled but not up yet
	unsigned deferred_wakes = 0;  // wake-ups held back while dispatching
	unsigned ended_waiters = 0;
	bool finishing = false;
	bool shutdown = false;
	tpool::List<tpool::Worker, &tpool::Worker::link> workers;
	tpool::List<tpool::Port, &tpool::Port::outbox_link> outbox;

	// Loop thread only.
	tpool::List<tpool::Port, &tpool::Port::link> ports;
	bool finished = false;
	bool tearing_down = false;
	unsigned dispatching = 0;     // end notices being handled
};

namespace tpool {

class Lock {
public:
	explicit Lock(tevent_threadpool *pool) : pool_(pool) { pool_lock(pool_); }
	~Lock() { pool_unlock(pool_); }
	Lock(const Lock &) = delete;
	Lock &operator=(const Lock &) = delete;

private:
	tevent_threadpool *pool_;
};

} // namespace tpool

#endif

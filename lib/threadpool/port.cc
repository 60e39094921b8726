// Ports: delivering task events to the loop that owns the tasks.
//
// A port serves one tevent context.  Pool threads put a task into the
// port's inbox and, if the port is not armed yet, wake the loop with
// tevent_threaded_schedule_immediate() - one wake-up for any number of
// events, so a busy pool costs one eventfd write per batch, not per task.
// On the loop thread the immediate's handler drains the inbox.
//
// An immediate handed to another thread may not be rescheduled before the
// loop has completely finished invoking it, and it may not be freed while
// it travels.  So every wake-up uses an immediate known to be idle: one
// whose handler ran at the current dispatch nesting level or deeper has
// returned for sure; a new one is allocated only when none is idle.  An
// immediate still travelling when the pool goes away is disowned (its
// token forgets the port) and handed to the loop, whose handler frees it.
#include "internal.hh"

#include <sched.h>

namespace tpool {

namespace {

// Processed per wake-up before other events of the loop get a turn.
constexpr unsigned kDispatchBudget = 256;

void wake_handler(tevent_context *ev, tevent_immediate *im, void *private_data);

Token *new_token(Port *port)
{
	tevent_immediate *im = tevent_create_immediate(port);
	if (im == nullptr) {
		return nullptr;
	}
	auto *tok = talloc_object<Token>(im, "struct tevent_threadpool_token");
	if (tok == nullptr) {
		talloc_free(im);
		return nullptr;
	}
	tok->port = port;
	tok->im = im;
	return tok;
}

// Queues the next wake-up, sent when the mutex is released (pool_unlock);
// mutex held, armed stays (or becomes) true.
void schedule_locked(Port *port)
{
	Token *tok = port->next_tok;
	if (tok == nullptr) {
		// Out of immediates (allocation failed): the loop thread
		// refills and sends it (port_refill()).
		port->armed = false;
		port->missed = true;
		return;
	}
	port->next_tok = nullptr;
	port->armed = true;
	port->inflight = tok;
	port->send_tok = tok;
	if (!port->pool->outbox.contains(port)) {
		port->pool->outbox.push_back(port);
	}
}

void arm_locked(Port *port)
{
	if (port->dead || port->armed) {
		return;
	}
	schedule_locked(port);
}

// How soon a wake-up immediate that could not be allocated is tried again.
constexpr int kRefillRetryUsec = 10000;
// A keepalive that nothing needs to fire: one day is far enough, and in
// range of every backend's millisecond timeout.
constexpr int kKeepaliveSec = 86400;

void keepalive_handler(tevent_context *ev, tevent_timer *te, struct timeval now,
		       void *private_data);
void retry_handler(tevent_context *ev, tevent_immediate *im,
		   void *private_data);

// A new keepalive: in a day, or soon when a refill is to be retried.
bool make_keepalive(Port *port, bool refilled)
{
	port->keepalive = tevent_add_timer(
		port->ev, port,
		refilled ? tevent_timeval_current_ofs(kKeepaliveSec, 0)
			 : tevent_timeval_current_ofs(0, kRefillRetryUsec),
		keepalive_handler, port);
	return port->keepalive != nullptr;
}

// Makes sure the loop comes back to this port while it has to: for a
// refill that failed (without an idle immediate the pool threads cannot
// wake the loop, so nobody else would try again), and while tasks may
// still report back. The keepalive timer does both; when not even it can
// be allocated, the retry immediate, which needs no memory, brings the
// loop back on its next turn.
void port_keep_trying(Port *port)
{
	if (port->dead) {
		return;  // the loop is gone
	}
	bool refilled = port_refill(port);
	if (port->keepalive != nullptr) {
		if (!refilled) {
			tevent_update_timer(
				port->keepalive,
				tevent_timeval_current_ofs(0, kRefillRetryUsec));
		}
		return;
	}
	if (refilled && port->pending_ends == 0) {
		return;
	}
	if (!make_keepalive(port, refilled)) {
		tevent_schedule_immediate(port->retry_im, port->ev,
					  retry_handler, port);
	}
}

void keepalive_handler(tevent_context *ev, tevent_timer *te, struct timeval now,
		       void *private_data)
{
	(void)ev;
	(void)te;
	(void)now;
	auto *port = static_cast<Port *>(private_data);
	port->keepalive = nullptr;  // one-shot: this one is spent
	port_keep_trying(port);
}

void retry_handler(tevent_context *ev, tevent_immediate *im,
		   void *private_data)
{
	(void)ev;
	(void)im;
	port_keep_trying(static_cast<Port *>(private_data));
}

void handle(Port *port, Task *t, Event e, DispatchGuard *g)
{
	switch (e) {
	case Event::kSync:
		// Resuming or detaching it would have removed the event.
		if (!t->detached) {
			task_call_sync(t, TEVENT_TP_STATE_SYNCING, g);
		}
		break;
	case Event::kEnd:
		port_end_processed(port, t);
		if (t->detached) {
			task_reap(t);  // nobody left to wait() for it
			break;
		}
		port->done.push_back(t);
		if (t->sync != nullptr) {
			task_call_sync(t, t->state, g);
		}
		break;
	case Event::kReap:
		task_reap(t);
		break;
	case Event::kNone:
		break;
	}
}

// A dispatch holds things back until it ends: its port stays armed, so
// that what arrives meanwhile joins it without another wake-up, and pool
// threads for tasks its callbacks enqueue are woken once, at its end. A
// callback that turns the loop again (a nested tevent_loop_once(), say
// waiting for another task's end) would wait for ever. So the dispatches
// of a port in such a nested turn are suspended: they hold nothing back
// any more: deferred thread wake-ups go out now (mutex held).
void suspend_dispatches_locked(Port *port)
{
	tevent_threadpool *pool = port->pool;
	for (DispatchGuard *g = port->guards; g != nullptr && !g->suspended;
	     g = g->outer) {
		g->suspended = true;
		pool->dispatching--;
	}
	if (pool->deferred_wakes != 0) {
		pool_wake_locked(pool);
	}
}

// The probe runs only in a loop turn taken while something is held back:
// a nested one. What arrives from now on must wake the loop, and what
// waits already gets a wake-up now: in the inbox, or in the batch that a
// suspended dispatch took from it and has not handled yet (a nested
// dispatch carries on with that batch).
void nested_turn_handler(tevent_context *ev, tevent_immediate *im,
			 void *private_data)
{
	(void)ev;
	(void)im;
	auto *port = static_cast<Port *>(private_data);
	port->probe_scheduled = false;
	Lock l(port->pool);
	suspend_dispatches_locked(port);
	if (port->depth == 0 || port->dead) {
		return;  // only thread wake-ups were held back
	}
	port->armed = false;
	if (!port->inbox.empty() || !port->batch.empty()) {
		schedule_locked(port);
	}
}

void cancel_probe(Port *port)
{
	if (port->probe_scheduled) {
		port->probe_scheduled = false;
		tevent_schedule_immediate(port->nest_probe, port->ev, nullptr,
					  nullptr);
	}
}

void dispatch(Port *port)
{
	tevent_threadpool *pool = port->pool;
	DispatchGuard g;
	g.outer = port->guards;
	port->guards = &g;
	port->depth++;
	pool->dispatching++;
	port_schedule_probe(port);

	unsigned budget = kDispatchBudget;
	for (;;) {
		if (port->dead || port->batch.empty()) {
			// Take everything that came in, in one go.
			Lock l(pool);
			if (pool->deferred_wakes != 0) {
				pool_wake_locked(pool);
			}
			if (port->dead || port->inbox.empty()) {
				port->armed = false;
				break;
			}
			port->batch.take_all(port->inbox);
		}
		if (budget-- == 0) {
			Lock l(pool);
			if (pool->deferred_wakes != 0) {
				pool_wake_locked(pool);
			}
			schedule_locked(port);  // the rest next time
			break;
		}
		// Events of tasks in the batch change only on this thread.
		Task *t = port->batch.pop_front();
		Event e = t->pending;
		t->pending = Event::kNone;
		handle(port, t, e, &g);
		if (g.dead) {
			return;  // the pool was freed by a callback
		}
	}
	if (!g.suspended) {
		pool->dispatching--;
	}
	port->depth--;
	port->guards = g.outer;
	if (port->depth == 0) {
		// Nothing is held back any more: no nested turn needs noticing.
		cancel_probe(port);
	}
	port_keep_trying(port);
}

// Frees a disowned wake-up's immediate (and its token) from inside its
// own handler, which tevent defers until the handler has returned.
void orphan_free_handler(tevent_context *ev, tevent_immediate *im,
			 void *private_data)
{
	(void)ev;
	(void)private_data;
	talloc_free(im);
}

// A wake-up that arrives after its pool went away (port_teardown()).
void orphan_wake(tevent_context *ev, Token *tok)
{
	// The threaded context that waited for it can go now; the running
	// immediate, its child, must not go with it. port_teardown() may
	// have taken tevent's destructor off it after it was taken into the
	// loop, so a plain free would free it under this very handler.
	// Scheduling it again gives the destructor back (every tevent does
	// that on schedule) and frees it on the next turn, a deferred free.
	tevent_immediate *im = tok->im;
	talloc_steal(ev, im);
	talloc_free(tok->orphan_tctx);
	tok->orphan_tctx = nullptr;
	tevent_schedule_immediate(im, ev, orphan_free_handler, nullptr);
}

void wake_handler(tevent_context *ev, tevent_immediate *im, void *private_data)
{
	(void)im;
	auto *tok = static_cast<Token *>(private_data);
	Port *port = tok->port;
	if (port == nullptr) {
		orphan_wake(ev, tok);
		return;
	}
	// Immediates whose handler ran at this level or deeper have returned
	// to the loop by now.
	for (Token *b = port->busy_tokens.front(); b != nullptr;) {
		Token *nb = List<Token, &Token::link>::next(b);
		if (b->level >= port->depth) {
			port->busy_tokens.remove(b);
			port->idle_tokens.push_back(b);
		}
		b = nb;
	}
	tok->level = port->depth;
	port->busy_tokens.push_back(tok);

	Token *next = port->idle_tokens.pop_front();
	if (next == nullptr) {
		next = new_token(port);
		port->need_refill = next == nullptr;  // port_refill() retries
	}
	{
		Lock l(port->pool);
		port->inflight = nullptr;
		port->next_tok = next;
		if (port->depth != 0) {
			// A nested turn, whether or not the probe ran first;
			// the dispatch below takes what waits.
			suspend_dispatches_locked(port);
		}
	}
	dispatch(port);
}

int ev_guard_destructor(EvGuard *g)
{
	Port *port = g->port;
	if (port == nullptr) {
		return 0;
	}
	port->guard = nullptr;
	{
		Lock l(port->pool);
		port->dead = true;  // nothing more is sent to it
		port->pool->outbox.drop(port);
		port->send_tok = nullptr;
		// Its tasks lose their loop just as if their owner was freed.
		for (Task *t = port->tasks.front(); t != nullptr;
		     t = PortTasks::next(t)) {
			t->detached = true;
			if (t->ended) {
				continue;
			}
			if (!t->outlive) {
				task_stop_locked(t);
			} else if (t->state == TEVENT_TP_STATE_SYNCING &&
				   !t->released) {
				if (t->in_cb) {
					t->deferred_resume = true;
				} else {
					task_release(t, false);
				}
			}
		}
	}
	// A wake-up being sent right now finds the loop gone and is dropped;
	// wait for that, then free the immediate it used.
	while (port->sending.load(std::memory_order_acquire) != 0) {
		sched_yield();
	}
	if (port->inflight != nullptr) {
		// The loop's destructor has run: no handler will run and
		// nothing reads its queue again.  tevent's destructor on a
		// travelling immediate would abort, so drop it first.
		Token *tok = port->inflight;
		port->inflight = nullptr;
		tok->port = nullptr;
		talloc_set_destructor(tok->im, nullptr);
		talloc_free(tok->im);
	}
	port->ev = nullptr;
	return 0;
}

} // namespace

void port_send(Port *port, Token *tok)
{
	tevent_threaded_schedule_immediate(port->tctx, tok->im, wake_handler, tok);
	port->sending.fetch_sub(1, std::memory_order_release);
}

Port *port_get(tevent_threadpool *pool, tevent_context *ev)
{
	for (Port *p = pool->ports.front(); p != nullptr;
	     p = List<Port, &Port::link>::next(p)) {
		if (p->ev == ev && !p->dead) {
			return p;
		}
	}
	auto *port = talloc_object<Port>(pool, "struct tevent_threadpool_port");
	if (port == nullptr) {
		return nullptr;
	}
	port->pool = pool;
	port->ev = ev;
	port->tctx = tevent_threaded_context_create(port, ev);
	port->guard = talloc_object<EvGuard>(ev, "struct tevent_threadpool_ev_guard");
	// Two immediates take turns (one runs while the other waits for the
	// next wake-up), so wake-ups need no allocation unless dispatches
	// nest.
	port->next_tok = new_token(port);
	Token *spare = new_token(port);
	port->retry_im = tevent_create_immediate(port);
	port->nest_probe = tevent_create_immediate(port);
	if (port->tctx == nullptr || port->guard == nullptr ||
	    port->next_tok == nullptr || spare == nullptr ||
	    port->retry_im == nullptr || port->nest_probe == nullptr) {
		talloc_free(port->guard);
		talloc_free(port);
		return nullptr;
	}
	port->idle_tokens.push_back(spare);
	port->guard->port = port;
	talloc_set_destructor(port->guard, ev_guard_destructor);
	pool->ports.push_back(port);
	return port;
}

void port_schedule_probe(Port *port)
{
	if (!port->probe_scheduled && !port->dead) {
		port->probe_scheduled = true;
		tevent_schedule_immediate(port->nest_probe, port->ev,
					  nested_turn_handler, port);
	}
}

void port_post(Port *port, Task *t, Event e)
{
	t->pending = e;
	if (t->inbox_link.list == nullptr) {
		port->inbox.push_back(t);
	}
	arm_locked(port);
}

void port_unqueue(Port *port, Task *t)
{
	if (port->batch.contains(t)) {
		port->batch.remove(t);
	} else {
		port->inbox.drop(t);
	}
	t->pending = Event::kNone;
}

bool port_refill(Port *port)
{
	if (!port->need_refill) {
		return true;
	}
	Token *tok = port->idle_tokens.pop_front();
	if (tok == nullptr) {
		tok = new_token(port);
		if (tok == nullptr) {
			return false;
		}
	}
	port->need_refill = false;
	Lock l(port->pool);
	if (port->next_tok != nullptr) {
		port->idle_tokens.push_back(tok);
		return true;
	}
	port->next_tok = tok;
	if (port->missed) {
		port->missed = false;
		if (!port->inbox.empty() && !port->dead) {
			schedule_locked(port);
		}
	}
	return true;
}

// The keepalive keeps tevent_loop_wait() running while tasks may still
// report back: threaded immediates do not count as events.
bool port_hold_keepalive(Port *port)
{
	return port->keepalive != nullptr || make_keepalive(port, true);
}

void port_release_keepalive(Port *port)
{
	if (port->pending_ends == 0) {
		TALLOC_FREE(port->keepalive);
	}
}

void port_task_added(Port *port)
{
	port->pending_ends++;
}

void port_end_processed(Port *port, Task *t)
{
	t->end_seen = true;
	// While a refill is owed, the keepalive also stands for its retry.
	if (--port->pending_ends == 0 && port->keepalive != nullptr &&
	    !port->need_refill) {
		talloc_free(port->keepalive);
		port->keepalive = nullptr;
	}
}

void port_teardown(Port *port)
{
	// Pool threads are gone: no lock needed any more.
	if (port->inflight != nullptr && !port->dead) {
		// A wake-up still travels to the loop.  It may not be freed
		// before the loop took it, and tevent only takes it while a
		// threaded context exists: hand both to the loop; the
		// handler frees them (or the loop's own end does).
		Token *tok = port->inflight;
		tok->port = nullptr;
		tok->orphan_tctx = port->tctx;
		port->tctx = nullptr;
		talloc_steal(port->ev, tok->orphan_tctx);
		talloc_steal(tok->orphan_tctx, tok->im);
		// If the loop is freed first, the immediate goes with it
		// without the abort-on-free guard tevent put on it; the
		// loop's end means nobody reads its queue any more.
		talloc_set_destructor(tok->im, nullptr);
	}
	port->inflight = nullptr;
	for (Token *b = port->busy_tokens.front(); b != nullptr;
	     b = List<Token, &Token::link>::next(b)) {
		b->port = nullptr;
	}
	if (port->guard != nullptr) {
		port->guard->port = nullptr;
		talloc_free(port->guard);
		port->guard = nullptr;
	}
	talloc_free(port->keepalive);
	talloc_free(port->tctx);
	// A busy immediate (we run inside its handler) is freed by tevent
	// once the handler returns.
	talloc_free(port);
}

} // namespace tpool

// Timer events. A context keeps them in a TimerQueue (timer_queue.hh),
// ordered by (deadline, insertion sequence): equal deadlines fire in the
// order the timers were added or last updated, as upstream's sorted list
// has them.
#include "internal.hh"

namespace tevent {

// Timers whose handlers are running when the context goes: freed once
// their handlers are back, they must find themselves detached already.
static void forget_running_timers(tevent_context *ev)
{
	forget_runs(ev->running_timer, [ev](tevent_timer *te) {
		if (te->event_ctx == ev) {
			trace_timer(ev, te, TEVENT_EVENT_TRACE_DETACH);
			te->wrapper = nullptr;
			te->event_ctx = nullptr;
		}
	});
}

void timers_detach_all(tevent_context *ev, Teardown how)
{
	// Re-initialised, the context stays whole: a timer whose handler
	// runs is not queued, so it keeps the context and retires after the
	// handler as usual (its DETACH trace then, as upstream's).
	if (how == Teardown::kContextGoes) {
		forget_running_timers(ev);
	}
	// Earliest deadline first, as upstream's sorted list gives them: the
	// DETACH traces come in that order.
	tevent_timer *te;
	while ((te = ev->timers.pop_first()) != nullptr) {
		trace_timer(te->event_ctx, te,
					    TEVENT_EVENT_TRACE_DETACH);
		te->wrapper = nullptr;
		te->event_ctx = nullptr;
	}
	ev->timers.release();
}

// The special value tevent_context_set_wait_timeout(0) stores: poll
// without blocking.
bool no_timeout(const struct timeval *tv)
{
	return tv->tv_sec == 0 && tv->tv_usec == INT32_MAX;
}

int timeout_msec(const struct timeval *tv)
{
	if (tv->tv_sec >= INT32_MAX) {
		return -1;
	}
	if (no_timeout(tv)) {
		return 0;
	}
	int64_t ms = (int64_t)tv->tv_sec * 1000 + (tv->tv_usec + 999) / 1000;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

static tevent_timer *add_timer(tevent_context *ev, TALLOC_CTX *mem_ctx,
			       struct timeval next_event,
			       tevent_timer_handler_t handler,
			       void *private_data, const char *handler_name,
			       const char *location, TimerQueue::Rank rank)
{
	auto *te = new_talloc_object<tevent_timer>(
		mem_ctx ? mem_ctx : ev, "struct tevent_timer");
	if (te == nullptr) {
		return nullptr;
	}
	te->event_ctx = ev;
	te->next_event = next_event;
	te->slot = kNoSlot;
	te->handler = handler;
	te->private_data = private_data;
	te->handler_name = handler_name;
	te->location = location;
	if (!ev->timers.insert(te, rank)) {
		te->event_ctx = nullptr;
		talloc_free(te);
		return nullptr;
	}
	trace_timer(ev, te, TEVENT_EVENT_TRACE_ATTACH);
	TEVENT_DEBUGF(ev, TEVENT_DEBUG_TRACE, "Added timed event \"%s\": %p\n",
		      handler_name, te);
	return te;
}

} // namespace tevent

using namespace tevent;

// Takes the timer off its context for good (it will not fire again).
void tevent_timer::detach()
{
	if (event_ctx == nullptr) {
		return;
	}
	TEVENT_DEBUGF(event_ctx, TEVENT_DEBUG_TRACE,
		      "Destroying timer event %p \"%s\"\n", this, handler_name);
	retire();
}

// The part of detach() a fired timer also needs; upstream announces only
// timers that go before they fire.
void tevent_timer::retire()
{
	trace_timer(event_ctx, this, TEVENT_EVENT_TRACE_DETACH);
	event_ctx->timers.remove(this);
	event_ctx = nullptr;
}

int tevent_timer::on_talloc_free()
{
	return free_detaching_event(this, "tevent_timer double free");
}

TEVENT_EXPORT struct tevent_timer *tevent_common_add_timer(
	struct tevent_context *ev, TALLOC_CTX *mem_ctx,
	struct timeval next_event, tevent_timer_handler_t handler,
	void *private_data, const char *handler_name, const char *location)
{
	return add_timer(ev, mem_ctx, next_event, handler, private_data,
			 handler_name, location, TimerQueue::kByDeadline);
}

// The entry point of the built-in backends. Upstream files a timer added
// here with a zero deadline right behind the last one added so, ahead of
// timers that got a zero deadline any other way (tevent_update_timer(),
// the entry point above); see TimerQueue::Rank.
TEVENT_EXPORT struct tevent_timer *tevent_common_add_timer_v2(
	struct tevent_context *ev, TALLOC_CTX *mem_ctx,
	struct timeval next_event, tevent_timer_handler_t handler,
	void *private_data, const char *handler_name, const char *location)
{
	return add_timer(ev, mem_ctx, next_event, handler, private_data,
			 handler_name, location,
			 tevent_timeval_is_zero(&next_event)
				 ? TimerQueue::kZeroFirst
				 : TimerQueue::kByDeadline);
}

TEVENT_EXPORT void tevent_update_timer(struct tevent_timer *te,
				       struct timeval next_event)
{
	tevent_context *ev = te->event_ctx;
	if (ev == nullptr) {
		te->next_event = next_event;
		return;
	}
	// A new sequence number: the timer now sorts after timers that
	// already had the same deadline, as upstream's re-insertion does.
	trace_timer(ev, te, TEVENT_EVENT_TRACE_DETACH);
	te->next_event = next_event;
	if (ev->timers.contains(te)) {
		ev->timers.reposition(te);
	} else if (!ev->timers.put_back_running(te)) {
		// A running timer put back uses the slot kept for it
		// (remove_for_run()), so this cannot happen.
		tevent_abort(ev, "tevent_update_timer: out of memory");
	}
	trace_timer(ev, te, TEVENT_EVENT_TRACE_ATTACH);
}

TEVENT_EXPORT TEVENT_HOT int
tevent_common_invoke_timer_handler(struct tevent_timer *te,
				   struct timeval current_time,
				   bool *removed)
{
	if (removed != nullptr) {
		*removed = false;
	}
	tevent_context *ev = te->event_ctx;
	if (ev == nullptr) {
		return 0;
	}
	tevent_context *handler_ev = ev;

	if (!enter_handler_run(te->busy, ev)) {
		return 0;
	}
	// Out of the queue before the handler runs, so that a nested loop inside
	// the handler cannot pick this timer again.
	ev->timers.remove_for_run(te);

	TEVENT_DEBUGF(ev, TEVENT_DEBUG_TRACE, "Running timer event %p \"%s\"\n",
		      te, te->handler_name);

	WrapperGlue *glue = te->wrapper;
	if (glue != nullptr) {
		handler_ev = glue->wrap_ev;
		wrapper_push_use_internal(handler_ev, glue);
		glue->ops->before_timer_handler(handler_ev, glue->private_state,
						glue->main_ev, te,
						te->next_event, current_time,
						te->handler_name, te->location);
	}
	trace_timer(ev, te, TEVENT_EVENT_TRACE_BEFORE_HANDLER);
	RunningEvent<tevent_timer> run;
	start_run(ev->running_timer, run, te);
	te->handler(handler_ev, te, current_time, te->private_data);
	bool ev_whole = finish_run(ev, &tevent_context::running_timer, run);
	if (ev_whole) {
		ev->timers.run_done();
	}
	if (glue != nullptr) {
		glue->ops->after_timer_handler(handler_ev, glue->private_state,
					       glue->main_ev, te,
					       te->next_event, current_time,
					       te->handler_name, te->location);
		wrapper_pop_use_internal(handler_ev, glue);
	}
	// Not for a timer its handler freed (that one said "Destroying").
	if (ev_whole && te->event_ctx != nullptr) {
		TEVENT_DEBUGF(ev, TEVENT_DEBUG_TRACE,
			      "Ending timer event %p \"%s\"\n", te,
			      te->handler_name);
	}
	if (!leave_handler_run(te->busy)) {
		// The handler re-armed its timer and a nested loop fired it
		// again: this is the inner run. The timer is spent, so it
		// leaves the context; the outer run frees it, and its handler
		// may still free it first (that is not a double free).
		te->detach();
		return 0;
	}

	// Timers are one-shot: the fired timer is always freed here. If the
	// handler already freed it, only the deferred release is left.
	if (te->destroyed) {
		talloc_set_destructor(te, nullptr);
	} else if (te->event_ctx != nullptr) {
		te->retire();
	}
	talloc_free(te);
	if (removed != nullptr) {
		*removed = true;
	}
	return 0;
}

// How long until `deadline`; zero once it is due. Due is upstream's
// field-by-field comparison, but the wait itself is worked out on the real
// time a deadline stands for: one that is not normalised (tv_usec negative
// or a million and more) would otherwise give a negative wait, which poll
// and epoll take as "forever".
static struct timeval delay_until(const struct timeval &now,
				  const struct timeval &deadline)
{
	if (tevent_timeval_compare(&now, &deadline) >= 0) {
		return tevent_timeval_zero();
	}
	int64_t secs = (int64_t)deadline.tv_sec - (int64_t)now.tv_sec;
	if (secs > INT32_MAX) {
		return (struct timeval){(time_t)secs, 0};
	}
	int64_t usecs = secs * 1000000 + ((int64_t)deadline.tv_usec -
					  (int64_t)now.tv_usec);
	if (usecs <= 0) {
		return tevent_timeval_zero();  // really due already
	}
	return (struct timeval){(time_t)(usecs / 1000000),
				(suseconds_t)(usecs % 1000000)};
}

TEVENT_EXPORT struct timeval tevent_common_loop_timer_delay(
	struct tevent_context *ev)
{
	struct timeval current_time = tevent_timeval_zero();
	tevent_timer *te = ev->timers.top();

	if (te == nullptr) {
		return ev->wait_timeout;
	}

	// A zero deadline is due without asking the clock; its handler gets a
	// zero "current time" too, as upstream.
	if (!tevent_timeval_is_zero(&te->next_event)) {
		current_time = tevent_timeval_current();
		struct timeval delay = delay_until(current_time, te->next_event);
		if (!tevent_timeval_is_zero(&delay)) {
			// With a wait timeout of 0 a turn never waits, not
			// even for a timer: the backend reports EAGAIN.
			if (no_timeout(&ev->wait_timeout)) {
				return ev->wait_timeout;
			}
			return delay;
		}
	}

	tevent_common_invoke_timer_handler(te, current_time, nullptr);
	return tevent_timeval_zero();
}

TEVENT_EXPORT void tevent_timer_set_tag(struct tevent_timer *te, uint64_t tag)
{
	if (te == nullptr) {
		return;
	}
	te->tag = tag;
}

TEVENT_EXPORT uint64_t tevent_timer_get_tag(const struct tevent_timer *te)
{
	if (te == nullptr) {
		return 0;
	}
	return te->tag;
}

// Immediates: run on the next loop turn, one per turn, in the order they
// were scheduled. The object is reusable: scheduling it again moves it to
// the end of the queue, scheduling with a NULL handler cancels it.
#include "internal.hh"

namespace tevent {

// Puts an immediate back into its freshly created state, keeping the bits
// that survive (re)scheduling.
static void reset_immediate_fields(tevent_immediate *im,
				   tevent_context *detach_ev_ctx)
{
	const char *create_location = im->create_location;
	uint16_t busy = im->busy;
	uint64_t tag = im->tag;

	im->event_ctx = nullptr;
	im->wrapper = nullptr;
	im->detach_ev_ctx = detach_ev_ctx;
	im->handler = nullptr;
	im->private_data = nullptr;
	im->handler_name = nullptr;
	im->schedule_location = nullptr;
	im->create_location = create_location;
	im->busy = busy;
	im->tag = tag;
}

// Takes a queued immediate off its context's list. detach_ev is the
// context owed a DETACH trace once a running handler is done, or null.
static inline void unlink_immediate(tevent_context *ev, tevent_immediate *im,
				    tevent_context *detach_ev)
{
	ev->immediates.remove(im);
	reset_immediate_fields(im, detach_ev);
}

// The context is freed while immediate handlers run on it: what they owe
// it is paid now, while it is still whole, and their frames learn not to
// touch it again.
static void forget_running_immediates(tevent_context *ev)
{
	forget_runs(ev->running_immediate, [ev](tevent_immediate *im) {
		if (im->detach_ev_ctx == ev) {
			im->detach_ev_ctx = nullptr;
			trace_immediate(ev, im, TEVENT_EVENT_TRACE_DETACH);
		}
	});
}

void immediates_detach_all(tevent_context *ev, Teardown how)
{
	// Re-initialised, the context stays whole: a running immediate pays
	// its DETACH after the handler, as upstream's.
	if (how == Teardown::kContextGoes) {
		forget_running_immediates(ev);
	}
	tevent_immediate *im;
	while ((im = ev->immediates.front()) != nullptr) {
		if (im->proxy != nullptr) {
			// A thread proxy message: nobody but us owns it.
			free_waiting_message(im);
			continue;
		}
		ev->immediates.pop_front();
		trace_immediate(im->event_ctx, im,
						TEVENT_EVENT_TRACE_DETACH);
		im->wrapper = nullptr;
		im->event_ctx = nullptr;
	}
}

} // namespace tevent

using namespace tevent;

int tevent_immediate::on_talloc_free()
{
	if (__builtin_expect(in_transit.load(std::memory_order_relaxed), 0)) {
		// The producer handed it to another thread's loop.
		tevent_abort(nullptr, "tevent_immediate freed while scheduled "
				      "from another thread");
		return -1;
	}
	if (destroyed) {
		if (!busy) {
			// The deferred free at the end of a handler run.
			return 0;
		}
		// Only reached for a busy immediate freed twice.
		check_double_free(this, "tevent_immediate double free");
		return -1;
	}
	if (event_ctx != nullptr || detach_ev_ctx != nullptr) {
		tevent_common_immediate_cancel(this);
	}
	destroyed = true;
	if (busy) {
		return -1;
	}
	return 0;
}

TEVENT_EXPORT struct tevent_immediate *_tevent_create_immediate(
	TALLOC_CTX *mem_ctx, const char *location)
{
	tevent_immediate *im = reuse_spent_immediate(mem_ctx);
	if (im == nullptr) {
		im = new_talloc_object<tevent_immediate>(
			mem_ctx, "struct tevent_immediate");
		if (im == nullptr) {
			return nullptr;
		}
	}
	im->create_location = location;
	// Armed from creation on and never cleared by a cancel (an idle
	// immediate's destructor returns at once): a talloc call less per
	// scheduling cycle than clearing it each time.
	return im;
}

namespace {

// Emits the DETACH trace still owed for an immediate whose handler run
// took it off the list. Returns whether one was owed.
inline bool pay_owed_detach(tevent_immediate *im)
{
	tevent_context *detach_ev = im->detach_ev_ctx;
	if (detach_ev == nullptr) {
		return false;
	}
	im->detach_ev_ctx = nullptr;
	trace_immediate(detach_ev, im, TEVENT_EVENT_TRACE_DETACH);
	return true;
}

} // namespace

TEVENT_EXPORT void tevent_common_immediate_cancel(struct tevent_immediate *im)
{
	if (im->destroyed) {
		tevent_abort(im->event_ctx, "tevent_immediate use after free");
		return;
	}

	if (pay_owed_detach(im)) {
		return;
	}

	if (im->event_ctx == nullptr) {
		return;
	}

	tevent_context *ev = im->event_ctx;
	if (im->handler_name != nullptr) {
		TEVENT_DEBUGF(ev, TEVENT_DEBUG_TRACE,
			      "Cancel immediate event %p \"%s\"\n", im,
			      im->handler_name);
	}
	tevent_context *detach_ev = nullptr;
	if (im->busy && im->handler_name == nullptr) {
		// Taken off the queue to run its handler: the DETACH trace is
		// emitted once the handler is done (unless it reschedules).
		detach_ev = ev;
	} else {
		trace_immediate(ev, im,
						TEVENT_EVENT_TRACE_DETACH);
	}
	unlink_immediate(ev, im, detach_ev);
}

namespace {

__attribute__((noinline)) void debug_scheduled(tevent_context *ev,
					       tevent_immediate *im)
{
	TEVENT_DEBUGF(ev, TEVENT_DEBUG_TRACE,
		      "Schedule immediate event \"%s\": %p\n",
		      im->handler_name, im);
}

// Armed on every scheduling, as upstream: code that cleared the destructor
// on an idle immediate (or on one handed to another thread) gets it back.
// The library's own immediates are never handed out and keep theirs.
inline void rearm_destructor(tevent_immediate *im)
{
	if (!im->library_owned) {
		talloc_set_destructor(im,
				      talloc_object_destructor<tevent_immediate>);
	}
}

// Every case the two short paths below leave (a queued immediate moved,
// a cancel, traces or debug lines owed); kept out of line so that the
// short paths in tevent_common_schedule_immediate() need no stack frame.
TEVENT_HOT __attribute__((noinline)) void schedule_immediate_slow(
	tevent_immediate *im, tevent_context *ev,
	tevent_immediate_handler_t handler, void *private_data,
	const char *handler_name, const char *location)
{
	WrapperGlue *glue = im->wrapper;

	// An idle immediate (the common case) has nothing to cancel but
	// perhaps the DETACH trace its last run still owes.
	if (__builtin_expect(im->event_ctx == nullptr && !im->destroyed, 1)) {
		pay_owed_detach(im);
	} else {
		tevent_common_immediate_cancel(im);
	}
	if (handler == nullptr) {
		return;
	}
	// Freed from its own handler (the free waits for the handler's end)
	// and now scheduled again: the cancel reported the misuse through
	// tevent_abort(). If that returns, scheduling takes the free back,
	// as upstream; the immediate then lives until it is freed again.
	im->destroyed = false;

	im->detach_ev_ctx = nullptr;
	im->event_ctx = ev;
	im->wrapper = glue;
	im->handler = handler;
	im->private_data = private_data;
	im->handler_name = handler_name;
	im->schedule_location = location;

	trace_immediate(ev, im, TEVENT_EVENT_TRACE_ATTACH);
	ev->immediates.push_back(im);
	rearm_destructor(im);

	if (debug_enabled(ev, TEVENT_DEBUG_TRACE)) {
		debug_scheduled(ev, im);
	}
}

// Scheduling again the immediate that is already last in line on ev (a
// queue does that on every add) changes nothing but its handler and
// names, unless somebody traces immediates or reads trace-level debug
// messages: then upstream's DETACH and ATTACH, and its cancel and
// schedule messages, must be seen.
inline bool reschedule_keeps_place(const tevent_immediate *im,
				   tevent_context *ev,
				   tevent_immediate_handler_t handler)
{
	return im->event_ctx == ev && ev->immediates.back() == im &&
	       handler != nullptr && !im->busy && ev->trace.im == nullptr &&
	       !debug_enabled(ev, TEVENT_DEBUG_TRACE);
}

inline void set_immediate_handler(tevent_immediate *im,
				  tevent_immediate_handler_t handler,
				  void *private_data, const char *handler_name,
				  const char *location)
{
	im->handler = handler;
	im->private_data = private_data;
	im->handler_name = handler_name;
	im->schedule_location = location;
}

// Arms an idle immediate (its last run over, or never scheduled) on a
// context that neither traces immediates nor debugs: the DETACH its run
// may still owe and the new ATTACH would reach nobody, so arming is just
// the fields and a place at the back. An immediate re-armed from inside
// its own handler (a queue's, once per request) takes this path. Returns
// false, having done nothing, when the slow path is needed.
inline bool arm_silently(tevent_immediate *im, tevent_context *ev,
			 tevent_immediate_handler_t handler,
			 void *private_data, const char *handler_name,
			 const char *location)
{
	if (im->event_ctx != nullptr || im->destroyed || handler == nullptr ||
	    (im->detach_ev_ctx != nullptr && im->detach_ev_ctx != ev) ||
	    ev->trace.im != nullptr || debug_enabled(ev, TEVENT_DEBUG_TRACE)) {
		return false;
	}
	im->detach_ev_ctx = nullptr;
	im->event_ctx = ev;
	set_immediate_handler(im, handler, private_data, handler_name,
			      location);
	ev->immediates.push_back(im);
	return true;
}

} // namespace

TEVENT_EXPORT TEVENT_HOT void tevent_common_schedule_immediate(
	struct tevent_immediate *im, struct tevent_context *ev,
	tevent_immediate_handler_t handler, void *private_data,
	const char *handler_name, const char *location)
{
	if (reschedule_keeps_place(im, ev, handler)) {
		set_immediate_handler(im, handler, private_data, handler_name,
				      location);
		return;
	}
	if (arm_silently(im, ev, handler, private_data, handler_name,
			 location)) {
		rearm_destructor(im);
		return;
	}
	schedule_immediate_slow(im, ev, handler, private_data, handler_name,
				location);
}

tevent_immediate *tevent::create_library_immediate(TALLOC_CTX *mem_ctx,
						   const char *location)
{
	tevent_immediate *im = _tevent_create_immediate(mem_ctx, location);
	if (im != nullptr) {
		im->library_owned = true;
	}
	return im;
}

TEVENT_HOT void
tevent::schedule_library_immediate(tevent_immediate *im,
				   tevent_context *ev,
				   tevent_immediate_handler_t handler,
				   void *private_data,
				   const char *handler_name,
				   const char *location)
{
	// Only the common implementation may be bypassed: a wrapper or a
	// custom backend sees every call, as with upstream.
	if (ev->ops->schedule_immediate != tevent_common_schedule_immediate) {
		_tevent_schedule_immediate(im, ev, handler, private_data,
					   handler_name, location);
		return;
	}
	if (reschedule_keeps_place(im, ev, handler)) {
		set_immediate_handler(im, handler, private_data, handler_name,
				      location);
		return;
	}
	if (arm_silently(im, ev, handler, private_data, handler_name,
			 location)) {
		return;  // a library immediate keeps its destructor
	}
	// What ev->ops would call, without the indirect call.
	schedule_immediate_slow(im, ev, handler, private_data, handler_name,
				location);
}

TEVENT_EXPORT TEVENT_HOT int tevent_common_invoke_immediate_handler(
	struct tevent_immediate *im, bool *removed)
{
	if (removed != nullptr) {
		*removed = false;
	}
	tevent_context *ev = im->event_ctx;
	tevent_context *handler_ev = ev;
	WrapperGlue *glue = im->wrapper;
	tevent_immediate_handler_t handler = im->handler;
	void *private_data = im->private_data;
	const char *handler_name = im->handler_name;
	const char *location = im->schedule_location;

	TEVENT_DEBUGF(ev, TEVENT_DEBUG_TRACE,
		      "Run immediate event \"%s\": %p\n", handler_name, im);

	if (!enter_handler_run(im->busy, ev)) {
		return 0;
	}
	// Only this run's free may send it home; the handler may keep it.
	bool go_home = im->go_home;
	im->go_home = false;

	// Unlink first: the handler may schedule the same immediate again.
	im->handler_name = nullptr;
	if (__builtin_expect(ev != nullptr && im->detach_ev_ctx == nullptr &&
				     !im->destroyed,
			     1)) {
		// What the cancel below does for a queued immediate taken
		// off to run, without its checks: the DETACH trace is owed.
		unlink_immediate(ev, im, ev);
	} else {
		tevent_common_immediate_cancel(im);
	}

	if (glue != nullptr) {
		handler_ev = glue->wrap_ev;
		wrapper_push_use_internal(handler_ev, glue);
		glue->ops->before_immediate_handler(handler_ev,
						    glue->private_state,
						    glue->main_ev, im,
						    handler_name, location);
	}
	trace_immediate(ev, im,
					TEVENT_EVENT_TRACE_BEFORE_HANDLER);
	RunningEvent<tevent_immediate> run{};
	if (__builtin_expect(ev != nullptr, 1)) {
		start_run(ev->running_immediate, run, im);
	}
	if (__builtin_expect(im->proxy != nullptr, 0)) {
		proxy_deliver(handler_ev, im, handler, private_data);
	} else {
		handler(handler_ev, im, private_data);
	}
	finish_run(ev, &tevent_context::running_immediate, run);
	if (glue != nullptr) {
		glue->ops->after_immediate_handler(handler_ev,
						   glue->private_state,
						   glue->main_ev, im,
						   handler_name, location);
		wrapper_pop_use_internal(handler_ev, glue);
	}
	// Owed DETACH trace if the handler did not reschedule it.
	pay_owed_detach(im);

	if (!leave_handler_run(im->busy)) {
		// The handler scheduled its immediate again and a nested loop
		// ran it: this is the inner run. The outer one finishes a
		// free, and sends the immediate home if this run would have.
		im->go_home = im->go_home || go_home;
		return 0;
	}
	if (im->destroyed) {
		// Freed by the handler, now it can go: a spent proxy message
		// or a threaded immediate may go back to its sender.
		go_home = go_home || im->go_home;
		im->go_home = false;
		if (!go_home || !send_home(im)) {
			talloc_free(im);
		}
		if (removed != nullptr) {
			*removed = true;
		}
	}
	return 0;
}

TEVENT_EXPORT TEVENT_HOT bool
tevent_common_loop_immediate(struct tevent_context *ev)
{
	tevent_immediate *im = ev->immediates.front();
	if (im == nullptr) {
		return false;
	}
	tevent_common_invoke_immediate_handler(im, nullptr);
	return true;
}

TEVENT_EXPORT TEVENT_HOT void
_tevent_schedule_immediate(struct tevent_immediate *im,
			   struct tevent_context *ev,
			   tevent_immediate_handler_t handler,
			   void *private_data,
			   const char *handler_name,
			   const char *location)
{
	ev->ops->schedule_immediate(im, ev, handler, private_data,
				    handler_name, location);
}

TEVENT_EXPORT void tevent_reset_immediate(struct tevent_immediate *im)
{
	tevent_common_immediate_cancel(im);
}

TEVENT_EXPORT void tevent_immediate_set_tag(struct tevent_immediate *im,
					    uint64_t tag)
{
	if (im == nullptr) {
		return;
	}
	im->tag = tag;
}

TEVENT_EXPORT uint64_t tevent_immediate_get_tag(const struct tevent_immediate *im)
{
	if (im == nullptr) {
		return 0;
	}
	return im->tag;
}

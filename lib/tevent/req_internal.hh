// Private definitions shared by the request machinery: struct tevent_req,
// the queue structures, profiles and the per-thread call-depth hook.
//
// Everything here is built only on the public event API (immediates and
// timers), so requests and queues work on any tevent_context, wrappers
// included.
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <sys/types.h>
#include <atomic>
#include <type_traits>

// Only for sizeof(tevent_immediate): the request code itself uses nothing
// but the public event API.
#include "internal.hh"

namespace tevent {

// ---------------------------------------------------------------------
// Call-depth / flow tracking. The per-thread observer lives in
// tevent_thread_call_depth_state_g (declared in tevent.h, defined in
// call_depth.cc).

// Number of threads that registered a flow callback through
// tevent_thread_call_depth_set_callback(). Checked first so that the common
// case (nobody observes) costs no thread-local lookup, which in a shared
// library is a call to __tls_get_addr. (A program writing the variable
// from tevent.h directly instead of calling the setter would go unheard.)
extern std::atomic<int> g_flow_observers;

// Whether any thread may have a flow callback: false in the common case.
inline bool flow_observed()
{
	return __builtin_expect(
		g_flow_observers.load(std::memory_order_relaxed) != 0, 0);
}

inline void call_depth_notify(enum tevent_thread_call_depth_cmd cmd,
			      struct tevent_req *req, size_t depth,
			      const char *fname)
{
	if (!flow_observed()) {
		return;
	}
	tevent_thread_call_depth_state &st = tevent_thread_call_depth_state_g;
	if (__builtin_expect(st.cb != nullptr, 0)) {
		st.cb(st.cb_private, cmd, req, depth, fname);
	}
}

// Allocates a talloc chunk for T named `name` under `parent` and constructs
// a T in it, with T::on_talloc_free() as destructor. Unlike
// new_talloc_object() there is no memset: T initialises every member
// itself (default member initialisers), which compiles to a few plain
// stores; on the request hot path a "rep stos" costs more than that.
template <class T>
T *new_talloc_value(const void *parent, const char *name)
{
	void *mem = talloc_named_const(parent, sizeof(T), name);
	if (mem == nullptr) {
		return nullptr;
	}
	T *obj = new (mem) T;
	talloc_set_destructor(obj, talloc_object_destructor<T>);
	return obj;
}

} // namespace tevent

// ---------------------------------------------------------------------
// struct tevent_req

struct tevent_req {
	// Set by the user of the request: completion notification.
	tevent_req_fn callback_fn = nullptr;
	void *callback_private = nullptr;
	const char *callback_name = nullptr;

	// The implementation's private state ("data"), a talloc child named
	// after its type; freed by tevent_req_received().
	void *state_data = nullptr;

	tevent_req_print_fn print_fn = nullptr;

	tevent_req_cancel_fn cancel_fn = nullptr;
	const char *cancel_name = nullptr;

	tevent_req_cleanup_fn cleanup_fn = nullptr;
	const char *cleanup_name = nullptr;

	const char *type_name = nullptr;
	const char *create_location = nullptr;
	const char *finish_location = nullptr;

	enum tevent_req_state state = TEVENT_REQ_INIT;
	// Last state the cleanup step ran for; it runs at most once per state.
	enum tevent_req_state cleanup_state = TEVENT_REQ_INIT;
	uint64_t error = 0;

	// Used by tevent_req_post() to deliver the callback from the loop;
	// created on first use (most requests never post).
	struct tevent_immediate *post_immediate = nullptr;
	// Set while the post waits on a context's fallback list instead
	// (no memory for post_immediate): that context and the next request.
	struct tevent_context *fallback_ev = nullptr;
	struct tevent_req *fallback_next = nullptr;
	// When set, the next notification is bounced through this context.
	struct tevent_context *defer_ev = nullptr;
	// Timer armed by tevent_req_set_endtime().
	struct tevent_timer *endtime_timer = nullptr;

	struct tevent_req_profile *profile = nullptr;
	size_t call_depth = 0;

	bool in_progress() const { return state == TEVENT_REQ_IN_PROGRESS; }

	void finish(enum tevent_req_state new_state, const char *location);
	void notify_callback(const char *location);
	// The cleanup step for the current state: at most once per state,
	// which also stops recursion when the cleanup function itself
	// finishes or receives the request. Inline: mostly there is none.
	void run_cleanup()
	{
		if (cleanup_state >= state) {
			return;
		}
		if (cleanup_fn == nullptr && !tevent::flow_observed()) {
			return;
		}
		run_cleanup_step();
	}
	void run_cleanup_step();
	void mark_received(bool drop_destructor);
	void post(struct tevent_context *ev);
	void post_by_fallback(struct tevent_context *ev);
	void leave_fallback();
	bool set_endtime(struct tevent_context *ev, struct timeval endtime);
	void drop_endtime();
	bool start_profile();
};

static_assert(std::is_trivially_destructible_v<tevent_req>,
	      "tevent_req lives in a talloc chunk without a C++ destructor");

namespace tevent {
// Profile steps of creating and finishing a request (req_profile.cc).
void req_profile_finish(struct tevent_req *req, enum tevent_req_state state,
			const char *location);
void req_profile_attach_to_parent(struct tevent_req *req,
				  struct tevent_req *parent);
} // namespace tevent

// ---------------------------------------------------------------------
// Profiles

struct tevent_req_profile {
	tevent::ListHook<tevent_req_profile> sibling_hook;
	struct tevent_req_profile *parent;
	const char *req_name;
	pid_t pid;
	const char *start_location;
	struct timeval start_time;
	const char *stop_location;
	struct timeval stop_time;
	enum tevent_req_state state;
	uint64_t user_error;
	tevent::IntrusiveList<tevent_req_profile,
			      &tevent_req_profile::sibling_hook> subprofiles;

	void add_sub(tevent_req_profile *sub);
	int on_talloc_free();
};

// ---------------------------------------------------------------------
// Queues

struct tevent_queue_entry {
	tevent::ListHook<tevent_queue_entry> hook;
	struct tevent_queue *queue = nullptr;
	bool triggered = false;
	struct tevent_req *req = nullptr;
	struct tevent_context *ev = nullptr;  // null once that context died
	tevent_queue_trigger_fn_t trigger = nullptr;
	const char *trigger_name = nullptr;
	void *private_data = nullptr;
	uint64_t tag = 0;

	int on_talloc_free();
};

namespace tevent {

// Tells a queue that a context its entries refer to is being freed. One
// per (queue, context) pair, allocated under the context's lifeline, so it
// fires after the queues the context owns have gone (their entries' DETACH
// is traced on the dying context, as upstream). Upstream keeps using such
// a dead context when the entries go later (a common teardown order: a
// parent freed with the context created after the requests); here those
// entries simply stop tracing and scheduling.
struct QueueContextWatch {
	ListHook<QueueContextWatch> link;
	struct tevent_queue *queue = nullptr;  // null once the queue let go
	struct tevent_context *ev = nullptr;

	int on_talloc_free();
};

} // namespace tevent

struct tevent_queue {
	const char *name;
	const char *location;
	bool running;
	struct tevent_immediate *immediate;
	tevent::IntrusiveList<tevent_queue_entry, &tevent_queue_entry::hook>
		entries;
	tevent::IntrusiveList<tevent::QueueContextWatch,
			      &tevent::QueueContextWatch::link>
		watches;

	bool watch_context(struct tevent_context *ev);
	void context_gone(struct tevent_context *ev);
	int on_talloc_free();
};

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
#include <type_traits>

// Only for sizeof(tevent_immediate): the request code itself uses nothing
// but the public event API.
#include "internal.hh"

namespace tevent {

// ---------------------------------------------------------------------
// Call-depth / flow tracking. The per-thread observer lives in
// tevent_thread_call_depth_state_g (declared in tevent.h, defined in
// call_depth.cc).

inline void call_depth_notify(enum tevent_thread_call_depth_cmd cmd,
			      struct tevent_req *req, size_t depth,
			      const char *fname)
{
	tevent_thread_call_depth_state &st = tevent_thread_call_depth_state_g;
	if (__builtin_expect(st.cb != nullptr, 0)) {
		st.cb(st.cb_private, cmd, req, depth, fname);
	}
}

// Allocates a talloc chunk for T named `name` under `parent` and constructs
// a value-initialised T in it, with T::on_talloc_free() as destructor.
// Unlike new_talloc_object() it leaves zeroing to the constructor, which
// the compiler turns into a few stores instead of a memset call.
template <class T>
T *new_talloc_value(const void *parent, const char *name)
{
	void *mem = talloc_named_const(parent, sizeof(T), name);
	if (mem == nullptr) {
		return nullptr;
	}
	T *obj = new (mem) T();
	talloc_set_destructor(obj, talloc_object_destructor<T>);
	return obj;
}

} // namespace tevent

// ---------------------------------------------------------------------
// struct tevent_req

struct tevent_req {
	// Set by the user of the request: completion notification.
	tevent_req_fn callback_fn;
	void *callback_private;
	const char *callback_name;

	// The implementation's private state ("data"), a talloc child named
	// after its type; freed by tevent_req_received().
	void *state_data;

	tevent_req_print_fn print_fn;

	tevent_req_cancel_fn cancel_fn;
	const char *cancel_name;

	tevent_req_cleanup_fn cleanup_fn;
	const char *cleanup_name;
	// Last state the cleanup step ran for; it runs at most once per state.
	enum tevent_req_state cleanup_state;

	const char *type_name;
	const char *create_location;
	const char *finish_location;

	enum tevent_req_state state;
	uint64_t error;

	// Used by tevent_req_post() to deliver the callback from the loop;
	// created on first use (most requests never post), from space
	// reserved in the request's pool.
	struct tevent_immediate *post_immediate;
	// When set, the next notification is bounced through this context.
	struct tevent_context *defer_ev;
	// Timer armed by tevent_req_set_endtime().
	struct tevent_timer *endtime_timer;

	struct tevent_req_profile *profile;
	size_t call_depth;

	bool in_progress() const { return state == TEVENT_REQ_IN_PROGRESS; }

	void finish(enum tevent_req_state new_state, const char *location);
	void notify_callback(const char *location);
	void run_cleanup();
	void mark_received();
	void post(struct tevent_context *ev);
	bool set_endtime(struct tevent_context *ev, struct timeval endtime);
	void drop_endtime();
	bool start_profile();
};

static_assert(std::is_trivially_destructible_v<tevent_req>,
	      "tevent_req lives in a talloc chunk without a C++ destructor");

namespace tevent {
// Shared by the finish path and tevent_req_set_profile() (req_profile.cc).
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
	struct tevent_queue *queue;
	bool triggered;
	struct tevent_req *req;
	struct tevent_context *ev;
	tevent_queue_trigger_fn_t trigger;
	const char *trigger_name;
	void *private_data;
	uint64_t tag;

	int on_talloc_free();
};

struct tevent_queue {
	const char *name;
	const char *location;
	bool running;
	struct tevent_immediate *immediate;
	tevent::IntrusiveList<tevent_queue_entry, &tevent_queue_entry::hook>
		entries;

	int on_talloc_free();
};

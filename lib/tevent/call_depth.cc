// Call-depth / flow tracking: one observer callback per thread, told about
// request creation, callbacks, cancel, cleanup and queue movements (see
// req.cc and queue.cc for the moments). Each request records its depth:
// one more than the request whose state it was created on.

#include "req_internal.hh"

// Declared in tevent.h like upstream's; per thread, so each thread can
// have its own observer.
extern "C" {
__attribute__((visibility("default"))) __thread
	struct tevent_thread_call_depth_state tevent_thread_call_depth_state_g;
}

std::atomic<int> tevent::g_flow_observers{0};

TEVENT_EXPORT void
tevent_thread_call_depth_set_callback(tevent_call_depth_callback_t f,
				      void *private_data)
{
	tevent_thread_call_depth_state &st = tevent_thread_call_depth_state_g;
	bool had = st.cb != nullptr;
	// The observer going away (or being replaced) hears a reset to depth
	// 0 first, so it does not keep the depth of the last event it saw.
	if (had) {
		st.cb(st.cb_private, TEVENT_CALL_FLOW_REQ_RESET, nullptr, 0,
		      "tevent_thread_call_depth_set_callback");
	}
	st.cb = f;
	st.cb_private = private_data;
	if (had != (f != nullptr)) {
		tevent::g_flow_observers.fetch_add(f != nullptr ? 1 : -1,
						   std::memory_order_relaxed);
	}
}

TEVENT_EXPORT void _tevent_thread_call_depth_reset_from_req(struct tevent_req *req,
							    const char *fname)
{
	tevent::call_depth_notify(TEVENT_CALL_FLOW_REQ_RESET, req,
				  req->call_depth, fname);
}

// The pre-0.15 interface (an external size_t updated by the library) was
// superseded by the callback above; like upstream these entry points stay
// for ABI compatibility and do nothing.
TEVENT_EXPORT void tevent_thread_call_depth_activate(size_t *ptr)
{
	(void)ptr;
}

TEVENT_EXPORT void tevent_thread_call_depth_deactivate(void) {}

TEVENT_EXPORT void tevent_thread_call_depth_start(struct tevent_req *req)
{
	(void)req;
}

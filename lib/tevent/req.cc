// tevent_req: the async request object.
//
// A request is one talloc pool with room for the struct, the
// implementation's state and a queue entry, so a request costs a single
// malloc in the common case. The state is still its own talloc chunk
// (named after its C type) because callers allocate on it, look it up by
// type and tevent_req_received() frees it separately. The immediate used by
// tevent_req_post() is only created when the request is actually posted;
// most requests never are. Without memory for it, the post waits on the
// context's fallback list, so posting never fails.

#include "req_internal.hh"

namespace {

constexpr const char kReqTypeName[] = "struct tevent_req";

TEVENT_HOT int req_talloc_destructor(tevent_req *req)
{
	// Freeing an unreceived request behaves like receiving it first:
	// the cleanup function sees TEVENT_REQ_RECEIVED and the state goes.
	// (talloc drops the destructor itself once this returns.)
	req->mark_received(false);
	return 0;
}

// The request mem_ctx directly belongs to (mem_ctx is normally that
// request's state): subrequests inherit call depth and profiling from it.
tevent_req *parent_request_of(TALLOC_CTX *mem_ctx)
{
	void *parent = talloc_parent(mem_ctx);
	return static_cast<tevent_req *>(
		talloc_check_name(parent, kReqTypeName));
}

void post_immediate_handler(struct tevent_context *, struct tevent_immediate *,
			    void *private_data)
{
	auto *req = static_cast<tevent_req *>(private_data);
	// Re-run the finish step with the state recorded earlier, now from
	// the event loop, so the caller's callback runs outside its _send().
	req->finish(req->state, req->finish_location);
}

void post_fallback_handler(struct tevent_context *, struct tevent_immediate *,
			   void *private_data);

void schedule_post_fallback(tevent_context *ev)
{
	tevent::schedule_library_immediate(ev->post_fallback.im, ev,
					   post_fallback_handler, ev,
					   "tevent_req_trigger", __location__);
}

// Delivers the first request waiting on the context's fallback list; the
// next one gets a later loop turn, as with immediates of their own.
void post_fallback_handler(struct tevent_context *, struct tevent_immediate *,
			   void *private_data)
{
	auto *ev = static_cast<tevent_context *>(private_data);
	tevent_req *req = ev->post_fallback.first;
	if (req == nullptr) {
		return;  // every waiting request was freed or posted again
	}
	req->leave_fallback();
	if (ev->post_fallback.first != nullptr) {
		schedule_post_fallback(ev);
	}
	req->finish(req->state, req->finish_location);
}

void endtime_handler(struct tevent_context *, struct tevent_timer *,
		     struct timeval, void *private_data)
{
	auto *req = static_cast<tevent_req *>(private_data);
	req->drop_endtime();
	// Upstream reports its timer function's name as the finish location.
	req->finish(TEVENT_REQ_TIMED_OUT, "tevent_req_timedout");
}

TEVENT_HOT tevent_req *
create_request(TALLOC_CTX *mem_ctx, void *pdata, size_t data_size,
	       const char *type, const char *func,
	       const char *location)
{
	// Room for the state and a queue entry. The post immediate is not
	// reserved: it is rarely needed, and a pool above glibc's tcache size
	// limit makes every request's malloc noticeably slower. The slack
	// talloc adds per announced object is kept on purpose: it holds the
	// state's first small children (a name, a short array), which would
	// otherwise each cost a malloc. Sizing the pool exactly saves 96
	// bytes per request but leaves a queued request almost no room.
	constexpr size_t reserve = sizeof(tevent_queue_entry);
	if (data_size > SIZE_MAX - reserve) {
		return nullptr;
	}

	void *mem = _talloc_pooled_object(mem_ctx, sizeof(tevent_req),
					  kReqTypeName, 2, reserve + data_size);
	if (mem == nullptr) {
		return nullptr;
	}
	// Every member has a default initialiser (see req_internal.hh).
	tevent_req *req = new (mem) tevent_req;
	req->type_name = type;
	req->create_location = location;
	req->state = TEVENT_REQ_IN_PROGRESS;

	// The state is named after its type (talloc_get_type() on it must
	// work) and starts zeroed.
	void *data = talloc_named_const(req, data_size, type);
	if (data == nullptr) {
		talloc_free(req);
		return nullptr;
	}
	memset(data, 0, data_size);
	req->state_data = data;

	_talloc_set_destructor(req, reinterpret_cast<int (*)(void *)>(
					    req_talloc_destructor));

	tevent_req *parent = parent_request_of(mem_ctx);
	if (parent != nullptr && parent->profile != nullptr) {
		if (!req->start_profile()) {
			talloc_free(req);
			return nullptr;
		}
		tevent::req_profile_attach_to_parent(req, parent);
	}

	*static_cast<void **>(pdata) = data;

	if (parent != nullptr) {
		req->call_depth = parent->call_depth + 1;
	}
	tevent::call_depth_notify(TEVENT_CALL_FLOW_REQ_CREATE, req,
				  req->call_depth, func);
	return req;
}

} // namespace

bool tevent::post_fallback_init(tevent_context *ev)
{
	ev->post_fallback.first = nullptr;
	ev->post_fallback.im = create_library_immediate(ev, __location__);
	return ev->post_fallback.im != nullptr;
}

void tevent::post_fallback_drop_all(tevent_context *ev)
{
	while (ev->post_fallback.first != nullptr) {
		ev->post_fallback.first->leave_fallback();
	}
}

// ---------------------------------------------------------------------
// tevent_req methods

TEVENT_HOT void tevent_req::notify_callback(const char *location)
{
	finish_location = location;
	if (defer_ev != nullptr) {
		// Deliver from the given loop instead of the current stack.
		post(defer_ev);
		defer_ev = nullptr;
		return;
	}
	if (callback_fn != nullptr) {
		// The callback belongs to the caller, one level up.
		size_t depth = call_depth > 0 ? call_depth - 1 : 0;
		tevent::call_depth_notify(TEVENT_CALL_FLOW_REQ_NOTIFY_CB, this,
					  depth, callback_name);
		callback_fn(this);
	}
}

void tevent_req::run_cleanup_step()
{
	tevent::call_depth_notify(TEVENT_CALL_FLOW_REQ_CLEANUP, this,
				  call_depth, cleanup_name);
	if (cleanup_fn == nullptr) {
		return;
	}
	cleanup_state = state;
	cleanup_fn(this, state);
}

TEVENT_HOT void
tevent_req::finish(enum tevent_req_state new_state, const char *location)
{
	// A finished request must not time out afterwards.
	drop_endtime();
	state = new_state;
	finish_location = location;
	run_cleanup();
	if (profile != nullptr) {
		tevent::req_profile_finish(this, new_state, location);
	}
	notify_callback(location);
}

TEVENT_HOT void tevent_req::mark_received(bool drop_destructor)
{
	if (drop_destructor) {
		_talloc_set_destructor(this, nullptr);
	}
	print_fn = nullptr;
	cancel_fn = nullptr;
	cancel_name = nullptr;
	TALLOC_FREE(post_immediate);
	if (__builtin_expect(fallback_ev != nullptr, 0)) {
		leave_fallback();
	}
	drop_endtime();
	state = TEVENT_REQ_RECEIVED;
	run_cleanup();
	TALLOC_FREE(state_data);
}

void tevent_req::post(struct tevent_context *ev)
{
	if (state == TEVENT_REQ_RECEIVED) {
		// Nothing is left to deliver.
		return;
	}
	if (fallback_ev != nullptr) {
		leave_fallback();  // the new post replaces the waiting one
	}
	if (post_immediate == nullptr) {
		post_immediate = tevent::create_library_immediate(this,
								  __location__);
		if (post_immediate == nullptr) {
			// Upstream makes this immediate with the request, so
			// tevent_req_post() cannot fail there either.
			post_by_fallback(ev);
			return;
		}
	}
	tevent::schedule_library_immediate(post_immediate, ev,
					   post_immediate_handler, this,
					   "tevent_req_trigger", __location__);
}

// Out of memory: queue on ev's fallback list, whose immediate exists
// since the context was made. Appending keeps the posts in order.
void tevent_req::post_by_fallback(struct tevent_context *ev)
{
	tevent::PostFallback &fb = ev->post_fallback;
	tevent_req **tail = &fb.first;
	while (*tail != nullptr) {
		tail = &(*tail)->fallback_next;
	}
	*tail = this;
	fallback_ev = ev;
	if (fb.first == this) {
		schedule_post_fallback(ev);
	}
}

// Takes the request off its context's fallback list (short: it only
// holds posts made without memory).
void tevent_req::leave_fallback()
{
	tevent_req **pp = &fallback_ev->post_fallback.first;
	while (*pp != this) {
		pp = &(*pp)->fallback_next;
	}
	*pp = fallback_next;
	fallback_ev = nullptr;
	fallback_next = nullptr;
}

void tevent_req::drop_endtime()
{
	TALLOC_FREE(endtime_timer);
}

bool tevent_req::set_endtime(struct tevent_context *ev, struct timeval endtime)
{
	drop_endtime();
	endtime_timer = _tevent_add_timer(ev, this, endtime, endtime_handler,
					  this, "tevent_req_timedout", __location__);
	if (endtime_timer == nullptr) {
		finish(TEVENT_REQ_NO_MEMORY, __location__);
		return false;
	}
	return true;
}

// ---------------------------------------------------------------------
// Exported entry points

TEVENT_EXPORT TEVENT_HOT struct tevent_req *
__tevent_req_create(TALLOC_CTX *mem_ctx,
		    void *pdata,
		    size_t data_size,
		    const char *type,
		    const char *func,
		    const char *location)
{
	return create_request(mem_ctx, pdata, data_size, type, func, location);
}

TEVENT_EXPORT char *tevent_req_default_print(struct tevent_req *req,
					     TALLOC_CTX *mem_ctx)
{
	// The text is part of what callers see in logs; keep upstream's shape.
	return talloc_asprintf(mem_ctx,
			       "tevent_req[%p/%s]: state[%d] error[%lld (0x%llX)]"
			       "  state[%s (%p)] timer[%p] finish[%s]",
			       static_cast<void *>(req), req->create_location,
			       static_cast<int>(req->state),
			       static_cast<long long>(req->error),
			       static_cast<unsigned long long>(req->error),
			       req->type_name, req->state_data,
			       static_cast<void *>(req->endtime_timer),
			       req->finish_location);
}

TEVENT_EXPORT char *tevent_req_print(TALLOC_CTX *mem_ctx,
				     struct tevent_req *req)
{
	if (req == nullptr) {
		return talloc_strdup(mem_ctx, "tevent_req[NULL]");
	}
	if (req->print_fn == nullptr) {
		return tevent_req_default_print(req, mem_ctx);
	}
	return req->print_fn(req, mem_ctx);
}

TEVENT_EXPORT void tevent_req_set_print_fn(struct tevent_req *req,
					   tevent_req_print_fn fn)
{
	req->print_fn = fn;
}

TEVENT_EXPORT void _tevent_req_notify_callback(struct tevent_req *req,
					       const char *location)
{
	req->notify_callback(location);
}

TEVENT_EXPORT TEVENT_HOT void _tevent_req_done(struct tevent_req *req,
					       const char *location)
{
	req->finish(TEVENT_REQ_DONE, location);
}

TEVENT_EXPORT bool _tevent_req_error(struct tevent_req *req, uint64_t error,
				     const char *location)
{
	if (error == 0) {
		return false;
	}
	req->error = error;
	req->finish(TEVENT_REQ_USER_ERROR, location);
	return true;
}

TEVENT_EXPORT void _tevent_req_oom(struct tevent_req *req,
				   const char *location)
{
	req->finish(TEVENT_REQ_NO_MEMORY, location);
}

TEVENT_EXPORT bool _tevent_req_nomem(const void *p, struct tevent_req *req,
				     const char *location)
{
	if (p != nullptr) {
		return false;
	}
	req->finish(TEVENT_REQ_NO_MEMORY, location);
	return true;
}

TEVENT_EXPORT struct tevent_req *tevent_req_post(struct tevent_req *req,
						 struct tevent_context *ev)
{
	req->post(ev);
	return req;
}

TEVENT_EXPORT void tevent_req_defer_callback(struct tevent_req *req,
					     struct tevent_context *ev)
{
	req->defer_ev = ev;
}

TEVENT_EXPORT TEVENT_HOT bool tevent_req_is_in_progress(struct tevent_req *req)
{
	return req->in_progress();
}

TEVENT_EXPORT void tevent_req_received(struct tevent_req *req)
{
	req->mark_received(true);
}

TEVENT_EXPORT bool tevent_req_poll(struct tevent_req *req,
				   struct tevent_context *ev)
{
	while (req->in_progress()) {
		if (_tevent_loop_once(ev, __location__) != 0) {
			return false;
		}
	}
	return true;
}

TEVENT_EXPORT TEVENT_HOT bool tevent_req_is_error(struct tevent_req *req,
						  enum tevent_req_state *state,
						  uint64_t *error)
{
	if (req->state == TEVENT_REQ_DONE) {
		return false;
	}
	if (req->state == TEVENT_REQ_USER_ERROR) {
		*error = req->error;
	}
	*state = req->state;
	return true;
}

TEVENT_EXPORT bool tevent_req_set_endtime(struct tevent_req *req,
					  struct tevent_context *ev,
					  struct timeval endtime)
{
	return req->set_endtime(ev, endtime);
}

TEVENT_EXPORT void tevent_req_reset_endtime(struct tevent_req *req)
{
	req->drop_endtime();
}

TEVENT_EXPORT TEVENT_HOT void
_tevent_req_set_callback(struct tevent_req *req,
			 tevent_req_fn fn,
			 const char *fn_name, void *pvt)
{
	req->callback_fn = fn;
	req->callback_name = fn_name;
	req->callback_private = pvt;
}

TEVENT_EXPORT TEVENT_HOT void *_tevent_req_callback_data(struct tevent_req *req)
{
	return req->callback_private;
}

TEVENT_EXPORT TEVENT_HOT void *_tevent_req_data(struct tevent_req *req)
{
	return req->state_data;
}

TEVENT_EXPORT void _tevent_req_set_cancel_fn(struct tevent_req *req,
					     tevent_req_cancel_fn fn,
					     const char *fn_name)
{
	req->cancel_fn = fn;
	req->cancel_name = fn != nullptr ? fn_name : nullptr;
}

TEVENT_EXPORT bool _tevent_req_cancel(struct tevent_req *req,
				      const char *location)
{
	(void)location;
	tevent::call_depth_notify(TEVENT_CALL_FLOW_REQ_CANCEL, req,
				  req->call_depth, req->cancel_name);
	if (req->cancel_fn == nullptr) {
		return false;
	}
	return req->cancel_fn(req);
}

TEVENT_EXPORT void _tevent_req_set_cleanup_fn(struct tevent_req *req,
					      tevent_req_cleanup_fn fn,
					      const char *fn_name)
{
	// Only states reached from now on are reported to the new function.
	req->cleanup_state = req->state;
	req->cleanup_fn = fn;
	req->cleanup_name = fn != nullptr ? fn_name : nullptr;
}

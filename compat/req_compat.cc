// Request/queue entry points that only binaries built against older headers
// call: the current header turns these names into macros that pass the
// callback's name (and, for tevent_req_create, the creating function) to
// the underscore variants. Older binaries call the plain names.

#include "req_internal.hh"

#undef tevent_req_set_callback
#undef tevent_req_set_cancel_fn
#undef tevent_req_set_cleanup_fn
#undef tevent_queue_add
#undef tevent_queue_add_entry
#undef tevent_queue_add_optimize_empty
#undef tevent_thread_call_depth_reset_from_req

// Pre-0.15 binaries: no creating-function name.
TEVENT_EXPORT TEVENT_HOT struct tevent_req *
_tevent_req_create(TALLOC_CTX *mem_ctx,
		   void *pdata,
		   size_t data_size,
		   const char *type,
		   const char *location)
{
	return __tevent_req_create(mem_ctx, pdata, data_size, type, nullptr,
				   location);
}

TEVENT_EXPORT TEVENT_HOT void
tevent_req_set_callback(struct tevent_req *req,
			tevent_req_fn fn, void *pvt)
{
	_tevent_req_set_callback(req, fn, nullptr, pvt);
}

TEVENT_EXPORT void tevent_req_set_cancel_fn(struct tevent_req *req,
					    tevent_req_cancel_fn fn)
{
	_tevent_req_set_cancel_fn(req, fn, nullptr);
}

TEVENT_EXPORT void tevent_req_set_cleanup_fn(struct tevent_req *req,
					     tevent_req_cleanup_fn fn)
{
	_tevent_req_set_cleanup_fn(req, fn, nullptr);
}

TEVENT_EXPORT TEVENT_HOT bool
tevent_queue_add(struct tevent_queue *queue,
		 struct tevent_context *ev,
		 struct tevent_req *req,
		 tevent_queue_trigger_fn_t trigger,
		 void *private_data)
{
	return _tevent_queue_add(queue, ev, req, trigger, nullptr,
				 private_data);
}

TEVENT_EXPORT struct tevent_queue_entry *
tevent_queue_add_entry(struct tevent_queue *queue, struct tevent_context *ev,
		       struct tevent_req *req, tevent_queue_trigger_fn_t trigger,
		       void *private_data)
{
	return _tevent_queue_add_entry(queue, ev, req, trigger, nullptr,
				       private_data);
}

TEVENT_EXPORT struct tevent_queue_entry *
tevent_queue_add_optimize_empty(struct tevent_queue *queue,
				struct tevent_context *ev,
				struct tevent_req *req,
				tevent_queue_trigger_fn_t trigger,
				void *private_data)
{
	return _tevent_queue_add_optimize_empty(queue, ev, req, trigger,
						nullptr, private_data);
}

TEVENT_EXPORT void tevent_thread_call_depth_reset_from_req(struct tevent_req *req)
{
	_tevent_thread_call_depth_reset_from_req(req, nullptr);
}

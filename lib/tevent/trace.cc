// Trace callbacks: one for loop-level points and one per event kind.
// Setting a callback on a wrapper context is refused as upstream does;
// reading one returns the wrapper's own (always empty) slots, as upstream.
#include "internal.hh"

using namespace tevent;

namespace {

bool refuse_on_wrapper(tevent_context *ev, const char *what)
{
	if (ev->wrapper.glue == nullptr) {
		return false;
	}
	tevent_abort(main_ev(ev), what);
	return true;
}

} // namespace

#define TEVENT_TRACE_ACCESSORS(kind, field, cbtype)                           \
	TEVENT_EXPORT void tevent_set_trace_##kind(struct tevent_context *ev,  \
						   cbtype cb,                  \
						   void *private_data)         \
	{                                                                      \
		if (refuse_on_wrapper(ev, "tevent_set_trace_" #kind            \
					  "() on wrapper")) {                  \
			return;                                                \
		}                                                              \
		ev->trace.field = cb;                                          \
		ev->trace.field##_private = private_data;                      \
	}                                                                      \
	TEVENT_EXPORT void tevent_get_trace_##kind(struct tevent_context *ev,  \
						   cbtype *cb,                 \
						   void *p_private_data)       \
	{                                                                      \
		*cb = ev->trace.field;                                         \
		*(void **)p_private_data = ev->trace.field##_private;          \
	}

TEVENT_TRACE_ACCESSORS(callback, point, tevent_trace_callback_t)
TEVENT_TRACE_ACCESSORS(fd_callback, fde, tevent_trace_fd_callback_t)
TEVENT_TRACE_ACCESSORS(signal_callback, se, tevent_trace_signal_callback_t)
TEVENT_TRACE_ACCESSORS(timer_callback, te, tevent_trace_timer_callback_t)
TEVENT_TRACE_ACCESSORS(immediate_callback, im, tevent_trace_immediate_callback_t)
TEVENT_TRACE_ACCESSORS(queue_callback, qe, tevent_trace_queue_callback_t)

// The exported trace entry points are the inline helpers of internal.hh,
// which the library itself uses directly.
TEVENT_EXPORT void tevent_trace_point_callback(struct tevent_context *ev,
					       enum tevent_trace_point tp)
{
	trace_point(ev, tp);
}

TEVENT_EXPORT void tevent_trace_fd_callback(struct tevent_context *ev,
					    struct tevent_fd *fde,
					    enum tevent_event_trace_point tp)
{
	trace_fd(ev, fde, tp);
}

TEVENT_EXPORT void tevent_trace_signal_callback(struct tevent_context *ev,
						struct tevent_signal *se,
						enum tevent_event_trace_point tp)
{
	trace_signal(ev, se, tp);
}

TEVENT_EXPORT void tevent_trace_timer_callback(struct tevent_context *ev,
					       struct tevent_timer *te,
					       enum tevent_event_trace_point tp)
{
	trace_timer(ev, te, tp);
}

TEVENT_EXPORT void tevent_trace_immediate_callback(struct tevent_context *ev,
						   struct tevent_immediate *im,
						   enum tevent_event_trace_point tp)
{
	trace_immediate(ev, im, tp);
}

TEVENT_EXPORT void tevent_trace_queue_callback(struct tevent_context *ev,
					       struct tevent_queue_entry *qe,
					       enum tevent_event_trace_point tp)
{
	trace_queue(ev, qe, tp);
}

// Debug output and aborts.
#include "internal.hh"

#include <stdio.h>
#include <stdlib.h>

namespace tevent {

static void (*g_abort_fn)(const char *reason);

void debugf(tevent_context *ev, enum tevent_debug_level level,
	    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ev->debug.fn(ev->debug.context, level, fmt, ap);
	va_end(ap);
}

// A second free of an event is fine while its parent is being freed (the
// parent's teardown reaches it again); anything else is a caller bug.
void check_double_free(TALLOC_CTX *ptr, const char *reason)
{
	void *parent = talloc_parent(ptr);
	if (parent != nullptr && talloc_total_blocks(parent) == 0) {
		return;
	}
	tevent_abort(nullptr, reason);
}

static void debug_stderr(void *context, enum tevent_debug_level level,
			 const char *fmt, va_list ap)
{
	(void)context;
	if (level <= TEVENT_DEBUG_WARNING) {
		vfprintf(stderr, fmt, ap);
	}
}

} // namespace tevent

using namespace tevent;

TEVENT_EXPORT int tevent_set_debug(struct tevent_context *ev,
				   void (*debug)(void *context,
						 enum tevent_debug_level level,
						 const char *fmt, va_list ap),
				   void *context)
{
	if (ev->wrapper.glue != nullptr) {
		tevent_abort(main_ev(ev), "tevent_set_debug() on wrapper");
		errno = EINVAL;
		return -1;
	}
	// As 0.16 and later: a new debug function hears warnings and worse;
	// tracing costs a call per event, so it takes tevent_set_max_debug_level().
	ev->debug.max_level = debug ? TEVENT_DEBUG_WARNING : TEVENT_DEBUG_FATAL;
	ev->debug.fn = debug;
	ev->debug.context = context;
	return 0;
}

TEVENT_EXPORT enum tevent_debug_level tevent_set_max_debug_level(
	struct tevent_context *ev, enum tevent_debug_level max_level)
{
	enum tevent_debug_level old = ev->debug.max_level;
	ev->debug.max_level = max_level;
	return old;
}

TEVENT_EXPORT int tevent_set_debug_stderr(struct tevent_context *ev)
{
	return tevent_set_debug(ev, debug_stderr, ev);
}

TEVENT_EXPORT void tevent_debug(struct tevent_context *ev,
				enum tevent_debug_level level,
				const char *fmt, ...)
{
	if (ev == nullptr) {
		return;
	}
	ev = main_ev(ev);
	if (ev->debug.fn == nullptr || level > ev->debug.max_level) {
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	ev->debug.fn(ev->debug.context, level, fmt, ap);
	va_end(ap);
}

TEVENT_EXPORT void tevent_set_abort_fn(void (*abort_fn)(const char *reason))
{
	g_abort_fn = abort_fn;
}

TEVENT_EXPORT void tevent_abort(struct tevent_context *ev, const char *reason)
{
	if (ev != nullptr) {
		tevent_debug(ev, TEVENT_DEBUG_FATAL, "abort: %s\n", reason);
	}
	if (g_abort_fn == nullptr) {
		abort();
	}
	g_abort_fn(reason);
}

TEVENT_EXPORT void tevent_common_check_double_free(TALLOC_CTX *ptr,
						   const char *reason)
{
	check_double_free(ptr, reason);
}

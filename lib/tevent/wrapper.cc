// Wrapper contexts: a tevent_context that forwards every event to a main
// context, and runs the wrapper's before/after hooks around the handlers
// of the events created through it.
#include "internal.hh"

#include <string.h>

namespace tevent {

namespace {

// Which wrapper is in use on this thread, innermost last: pop must match
// push exactly.
struct UseFrame {
	const void *ev;
	const WrapperGlue *glue;
};
__thread UseFrame t_use_stack[32];
__thread size_t t_use_depth;

WrapperGlue *glue_of(tevent_context *ev)
{
	return ev->wrapper.glue;
}

// Checks before forwarding a call from the wrapper to the main context.
tevent_context *forward_target(tevent_context *ev, const char *what)
{
	WrapperGlue *glue = glue_of(ev);
	if (glue->destroyed) {
		tevent_abort(ev, what);
		return nullptr;
	}
	if (glue->main_ev == nullptr) {
		errno = EINVAL;
		return nullptr;
	}
	return glue->main_ev;
}

int glue_context_init(tevent_context *ev)
{
	tevent_abort(ev, "tevent_wrapper_glue_context_init() called");
	errno = ENOSYS;
	return -1;
}

struct tevent_fd *glue_add_fd(struct tevent_context *ev, TALLOC_CTX *mem_ctx,
			      int fd, uint16_t flags,
			      tevent_fd_handler_t handler, void *private_data,
			      const char *handler_name, const char *location)
{
	tevent_context *main = forward_target(ev, "add_fd wrapper use after free");
	if (main == nullptr) {
		return nullptr;
	}
	tevent_fd *fde = _tevent_add_fd(main, mem_ctx, fd, flags, handler,
					private_data, handler_name, location);
	if (fde != nullptr) {
		fde->wrapper = glue_of(ev);
	}
	return fde;
}

void glue_set_fd_close_fn(struct tevent_fd *fde, tevent_fd_close_fn_t close_fn)
{
	tevent_common_fd_set_close_fn(fde, close_fn);
}

uint16_t glue_get_fd_flags(struct tevent_fd *fde)
{
	return tevent_common_fd_get_flags(fde);
}

void glue_set_fd_flags(struct tevent_fd *fde, uint16_t flags)
{
	tevent_common_fd_set_flags(fde, flags);
}

struct tevent_timer *glue_add_timer(struct tevent_context *ev,
				    TALLOC_CTX *mem_ctx,
				    struct timeval next_event,
				    tevent_timer_handler_t handler,
				    void *private_data,
				    const char *handler_name,
				    const char *location)
{
	tevent_context *main = forward_target(ev, "add_timer wrapper use after free");
	if (main == nullptr) {
		return nullptr;
	}
	tevent_timer *te = _tevent_add_timer(main, mem_ctx, next_event, handler,
					     private_data, handler_name,
					     location);
	if (te != nullptr) {
		te->wrapper = glue_of(ev);
	}
	return te;
}

void glue_schedule_immediate(struct tevent_immediate *im,
			     struct tevent_context *ev,
			     tevent_immediate_handler_t handler,
			     void *private_data, const char *handler_name,
			     const char *location)
{
	WrapperGlue *glue = glue_of(ev);
	if (glue->destroyed) {
		// (sic: upstream's reason, as it reaches abort_fn and logs)
		tevent_abort(ev, "scheduke_immediate wrapper use after free");
		return;
	}
	if (glue->main_ev == nullptr) {
		tevent_abort(ev, "schedule_immediate wrapper main_ev is gone");
		return;
	}
	_tevent_schedule_immediate(im, glue->main_ev, handler, private_data,
				   handler_name, location);
	im->wrapper = glue;
}

struct tevent_signal *glue_add_signal(struct tevent_context *ev,
				      TALLOC_CTX *mem_ctx, int signum,
				      int sa_flags,
				      tevent_signal_handler_t handler,
				      void *private_data,
				      const char *handler_name,
				      const char *location)
{
	tevent_context *main = forward_target(ev, "add_signal wrapper use after free");
	if (main == nullptr) {
		return nullptr;
	}
	tevent_signal *se = _tevent_add_signal(main, mem_ctx, signum, sa_flags,
					       handler, private_data,
					       handler_name, location);
	if (se != nullptr) {
		se->wrapper = glue_of(ev);
	}
	return se;
}

// The loop belongs to the main context; running it through a wrapper is
// a caller bug, as upstream.
int glue_loop_once(struct tevent_context *ev, const char *location)
{
	(void)location;
	tevent_abort(ev, "tevent_wrapper_glue_loop_once() called");
	errno = ENOSYS;
	return -1;
}

int glue_loop_wait(struct tevent_context *ev, const char *location)
{
	(void)location;
	tevent_abort(ev, "tevent_wrapper_glue_loop_wait() called");
	errno = ENOSYS;
	return -1;
}

const struct tevent_ops glue_ops = {
	.context_init = glue_context_init,
	.add_fd = glue_add_fd,
	.set_fd_close_fn = glue_set_fd_close_fn,
	.get_fd_flags = glue_get_fd_flags,
	.set_fd_flags = glue_set_fd_flags,
	.add_timer = glue_add_timer,
	.schedule_immediate = glue_schedule_immediate,
	.add_signal = glue_add_signal,
	.loop_once = glue_loop_once,
	.loop_wait = glue_loop_wait,
};

// Cuts every event of a dying wrapper loose from the main context: none of
// their handlers may run again.
void detach_events_of(tevent_context *main, WrapperGlue *glue)
{
	tevent_fd *fnext;
	for (tevent_fd *fde = main->fds.front(); fde != nullptr; fde = fnext) {
		fnext = IntrusiveList<tevent_fd, &tevent_fd::ctx_link>::next(fde);
		if (fde->wrapper != glue) {
			continue;
		}
		tevent_fd_set_flags(fde, 0);
		fd_disarm(fde);  // with its DETACH trace, as upstream 0.16+
	}

	// One pass however many of the timers are the wrapper's.
	main->timers.remove_if([glue](tevent_timer *te) {
		if (te->wrapper != glue) {
			return false;
		}
		te->wrapper = nullptr;
		te->event_ctx = nullptr;
		return true;
	});

	tevent_immediate *inext;
	for (tevent_immediate *im = main->immediates.front(); im != nullptr;
	     im = inext) {
		inext = IntrusiveList<tevent_immediate, &tevent_immediate::link>::next(im);
		if (im->wrapper != glue) {
			continue;
		}
		main->immediates.remove(im);
		im->wrapper = nullptr;
		im->event_ctx = nullptr;
	}

	tevent_signal *snext;
	for (tevent_signal *se = main->signals.front(); se != nullptr; se = snext) {
		snext = IntrusiveList<tevent_signal, &tevent_signal::ctx_link>::next(se);
		if (se->wrapper != glue) {
			continue;
		}
		se->wrapper = nullptr;
		// Takes it off main->signals.
		tevent_cleanup_pending_signal_handlers(se);
	}
}

int wrapper_context_destructor(tevent_context *wrap_ev)
{
	WrapperGlue *glue = wrap_ev->wrapper.glue;
	if (glue->destroyed && glue->busy) {
		check_double_free(wrap_ev, "tevent_context wrapper double free");
	}
	glue->destroyed = true;
	if (glue->busy) {
		// Freed from inside one of its own handlers: finished when the
		// handler's use of the wrapper ends.
		return -1;
	}
	post_fallback_drop_all(wrap_ev);
	tevent_context *main = glue->main_ev;
	if (main == nullptr) {
		return 0;
	}
	glue->main_ev = nullptr;
	if (glue->prev != nullptr) {
		glue->prev->next = glue->next;
	} else {
		main->wrapper.list = glue->next;
	}
	if (glue->next != nullptr) {
		glue->next->prev = glue->prev;
	}
	glue->prev = glue->next = nullptr;
	threads_wrapper_gone(main, wrap_ev);
	detach_events_of(main, glue);
	return 0;
}

} // namespace

void wrappers_detach_all(tevent_context *ev)
{
	WrapperGlue *next;
	for (WrapperGlue *g = ev->wrapper.list; g != nullptr; g = next) {
		next = g->next;
		// Its fallback immediate was on our list: nothing delivers
		// the requests waiting for it any more.
		post_fallback_drop_all(g->wrap_ev);
		g->main_ev = nullptr;
		g->prev = g->next = nullptr;
	}
	ev->wrapper.list = nullptr;
}

void wrapper_push_use_internal(tevent_context *ev, WrapperGlue *glue)
{
	if (ev->wrapper.glue != glue) {
		tevent_abort(ev, "tevent_wrapper_push_use_internal() invalid arguments");
		return;
	}
	if (glue != nullptr) {
		if (glue->busy) {
			tevent_abort(ev, "wrapper already busy!");
			return;
		}
		glue->busy = true;
	}
	if (t_use_depth >= sizeof(t_use_stack) / sizeof(t_use_stack[0])) {
		tevent_abort(ev, "TEVENT_WRAPPER_STACK_SIZE overflow");
		return;
	}
	t_use_stack[t_use_depth++] = UseFrame{ev, glue};
}

// `ev` may already be stale here: only its address is compared.
void wrapper_pop_use_internal(tevent_context *ev, WrapperGlue *glue)
{
	tevent_context *main = glue ? glue->main_ev : nullptr;
	if (t_use_depth == 0) {
		tevent_abort(main, "tevent_wrapper stack already empty");
		return;
	}
	t_use_depth--;
	if (glue != nullptr) {
		glue->busy = false;
	}
	if (t_use_stack[t_use_depth].ev != ev) {
		tevent_abort(main, "tevent_wrapper_pop_use mismatch ev!");
		return;
	}
	if (t_use_stack[t_use_depth].glue != glue) {
		tevent_abort(main, "tevent_wrapper_pop_use mismatch wrap!");
		return;
	}
	if (glue != nullptr && glue->destroyed) {
		talloc_free(glue->wrap_ev);
	}
}

int wrapper_on_talloc_free(tevent_context *ev)
{
	return wrapper_context_destructor(ev);
}

} // namespace tevent

using namespace tevent;

TEVENT_EXPORT struct tevent_context *_tevent_context_wrapper_create(
	struct tevent_context *main_ev, TALLOC_CTX *mem_ctx,
	const struct tevent_wrapper_ops *ops, void *pstate, size_t psize,
	const char *type, const char *location)
{
	void **ppstate = static_cast<void **>(pstate);

	// Upstream's messages name the function, then the caller's location
	// as if it were a function: "fn: file.c:12() ...".
	if (main_ev->wrapper.glue != nullptr) {
		// Wrappers do not stack.
		tevent_debug(main_ev->wrapper.glue->main_ev, TEVENT_DEBUG_FATAL,
			     "%s: %s() stacking not allowed\n", __func__,
			     location);
		errno = EINVAL;
		return nullptr;
	}
	if (main_ev->nesting.allowed) {
		// Nested loops cannot keep the wrapper's use stack straight.
		tevent_debug(main_ev, TEVENT_DEBUG_FATAL,
			     "%s: %s() conflicts with nesting\n", __func__,
			     location);
		errno = EINVAL;
		return nullptr;
	}

	auto *ev = new_talloc_object<tevent_context>(mem_ctx,
						     "struct tevent_context");
	if (ev == nullptr || !make_lifeline(ev) || !post_fallback_init(ev)) {
		talloc_free(ev);
		return nullptr;
	}
	ev->ops = &glue_ops;
	ev->wakeup_fd = -1;

	auto *glue = static_cast<WrapperGlue *>(
		talloc_zero_size(ev, sizeof(WrapperGlue)));
	if (glue == nullptr) {
		talloc_free(ev);
		return nullptr;
	}
	talloc_set_name_const(glue, "struct tevent_wrapper_glue");
	glue->wrap_ev = ev;
	glue->main_ev = main_ev;
	glue->ops = ops;
	glue->private_state = talloc_zero_size(glue, psize);
	if (glue->private_state == nullptr) {
		talloc_free(ev);
		return nullptr;
	}
	talloc_set_name_const(glue->private_state, type);

	// Append to the main context's list.
	WrapperGlue **pp = &main_ev->wrapper.list;
	WrapperGlue *last = nullptr;
	while (*pp != nullptr) {
		last = *pp;
		pp = &(*pp)->next;
	}
	glue->prev = last;
	*pp = glue;

	ev->wrapper.glue = glue;
	*ppstate = glue->private_state;
	return ev;
}

TEVENT_EXPORT bool tevent_context_is_wrapper(struct tevent_context *ev)
{
	return ev->wrapper.glue != nullptr;
}

// The main context a context runs on; null for null and for a wrapper
// whose main context is gone, which belongs to no loop.
static tevent_context *loop_of(tevent_context *ev)
{
	if (ev == nullptr || ev->wrapper.glue == nullptr) {
		return ev;
	}
	return ev->wrapper.glue->main_ev;
}

TEVENT_EXPORT bool tevent_context_same_loop(struct tevent_context *ev1,
					    struct tevent_context *ev2)
{
	tevent_context *m1 = loop_of(ev1);
	return m1 != nullptr && m1 == loop_of(ev2);
}

TEVENT_EXPORT bool _tevent_context_push_use(struct tevent_context *ev,
					    const char *location)
{
	WrapperGlue *glue = ev->wrapper.glue;
	if (glue == nullptr) {
		// A main context may be pushed too: a frame without hooks.
		wrapper_push_use_internal(ev, nullptr);
		return true;
	}
	if (glue->main_ev == nullptr) {
		return false;  // its main context is gone
	}
	if (glue->destroyed) {
		// Its free waits for the handler that uses it, so upstream finds
		// it busy and says so; unlike upstream, nothing runs after that.
		tevent_abort(ev, "wrapper already busy!");
		return false;
	}
	wrapper_push_use_internal(ev, glue);
	if (!glue->ops->before_use(ev, glue->private_state, glue->main_ev,
				   location)) {
		wrapper_pop_use_internal(ev, glue);
		return false;
	}
	return true;
}

TEVENT_EXPORT void _tevent_context_pop_use(struct tevent_context *ev,
					   const char *location)
{
	WrapperGlue *glue = ev->wrapper.glue;
	if (glue == nullptr) {
		wrapper_pop_use_internal(ev, nullptr);
		return;
	}
	if (!glue->busy) {
		// Not pushed: the stack check aborts (empty, or another
		// context on top), with upstream's messages.
		wrapper_pop_use_internal(ev, glue);
		return;
	}
	tevent_context *main = glue->main_ev;
	void *state = glue->private_state;
	const struct tevent_wrapper_ops *ops = glue->ops;
	// As upstream: the hook runs once the wrapper is off the use stack
	// (so it may push it again), and not at all for a wrapper that was
	// freed (the pop frees it) or whose main context went away while it
	// was in use (the program goes on without it).
	bool hook = !glue->destroyed && main != nullptr;
	wrapper_pop_use_internal(ev, glue);
	if (hook) {
		ops->after_use(ev, state, main, location);
	}
}

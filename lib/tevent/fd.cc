// fd events: the generic part shared by every backend. A built-in backend
// adds its own bookkeeping through tevent_fd::hooks(); the common code calls
// those hooks when the flags change and before the event goes away.
#include "internal.hh"

#include <stdio.h>
#include <unistd.h>

namespace tevent {

// Detaches one fde from its context without freeing it: its handler can
// never run again and a later free only runs close_fn. The backend lets
// go first, so what it reports (EBADF for a descriptor closed behind our
// back) comes before the DETACH trace, as with upstream.
void fd_disarm(tevent_fd *fde)
{
	tevent_context *ev = fde->event_ctx;
	if (ev != nullptr) {
		if (const BackendFdHooks *h = fde->hooks()) {
			h->detach(fde);
			fde->hooks_id = kNoFdHooks;
		}
		trace_fd(ev, fde, TEVENT_EVENT_TRACE_DETACH);
		ev->fds.remove(fde);
		fde->event_ctx = nullptr;
	}
	fde->hooks_id = kNoFdHooks;
	fde->wrapper = nullptr;
}

const char *describe_fd(FdText &text, const char *role, const tevent_fd *fde)
{
	if (fde == nullptr) {
		snprintf(text.buf, sizeof(text.buf), "%s[fde=(nil)]", role);
		return text.buf;
	}
	snprintf(text.buf, sizeof(text.buf),
		 "%s[fde=%p,fd=%d,flags=0x%x(%s%s%s),%s]", role,
		 static_cast<const void *>(fde), fde->fd, fde->flags,
		 (fde->flags & TEVENT_FD_ERROR) ? "E" : "",
		 (fde->flags & TEVENT_FD_READ) ? "R" : "",
		 (fde->flags & TEVENT_FD_WRITE) ? "W" : "",
		 fde->handler_name != nullptr ? fde->handler_name : "(null)");
	return text.buf;
}

void fds_detach_all(tevent_context *ev)
{
	tevent_fd *fde;
	while ((fde = ev->fds.front()) != nullptr) {
		// The backend is going away with the context: skip its hook.
		fde->hooks_id = kNoFdHooks;
		fd_disarm(fde);
	}
}

static void auto_close_fn(struct tevent_context *ev, struct tevent_fd *fde,
			  int fd, void *private_data)
{
	(void)ev;
	(void)fde;
	(void)private_data;
	close(fd);
}

} // namespace tevent

using namespace tevent;

int tevent_fd::on_talloc_free()
{
	if (destroyed) {
		check_double_free(this, "tevent_fd double free");
	} else {
		destroyed = true;
		// Unlink (and leave the backend's interest set) before close_fn
		// may close the descriptor.
		tevent_context *ev = event_ctx;
		fd_disarm(this);
		if (close_fn != nullptr) {
			tevent_fd_close_fn_t fn = close_fn;
			close_fn = nullptr;
			fn(ev, this, fd, private_data);
			fd = -1;
		}
	}
	if (busy) {
		return -1;
	}
	wrapper = nullptr;
	return 0;
}

TEVENT_EXPORT int tevent_common_fd_destructor(struct tevent_fd *fde)
{
	return fde->on_talloc_free();
}

TEVENT_EXPORT struct tevent_fd *tevent_common_add_fd(
	struct tevent_context *ev, TALLOC_CTX *mem_ctx, int fd, uint16_t flags,
	tevent_fd_handler_t handler, void *private_data,
	const char *handler_name, const char *location)
{
	// A negative fd would only fail later inside poll/epoll; refuse it
	// here where the caller can see it.
	if (fd < 0) {
		errno = EBADF;
		return nullptr;
	}
	auto *fde = new_talloc_object<tevent_fd>(mem_ctx ? mem_ctx : ev,
						 "struct tevent_fd");
	if (fde == nullptr) {
		return nullptr;
	}
	fde->event_ctx = ev;
	fde->fd = fd;
	fde->flags = flags;
	fde->handler = handler;
	fde->private_data = private_data;
	fde->handler_name = handler_name;
	fde->location = location;
	// Newest first, like upstream's list: the poll backend scans it in
	// this order.
	ev->fds.push_front(fde);
	trace_fd(ev, fde, TEVENT_EVENT_TRACE_ATTACH);
	return fde;
}

TEVENT_EXPORT uint16_t tevent_common_fd_get_flags(struct tevent_fd *fde)
{
	return fde->flags;
}

TEVENT_EXPORT void tevent_common_fd_set_flags(struct tevent_fd *fde,
					      uint16_t flags)
{
	if (fde->flags == flags) {
		return;
	}
	fde->flags = flags;
	if (fde->hooks_id != kNoFdHooks && fde->event_ctx != nullptr) {
		fde->hooks()->flags_changed(fde);
	}
}

TEVENT_EXPORT void tevent_common_fd_set_close_fn(struct tevent_fd *fde,
						 tevent_fd_close_fn_t close_fn)
{
	fde->close_fn = close_fn;
}

TEVENT_EXPORT TEVENT_HOT int
tevent_common_invoke_fd_handler(struct tevent_fd *fde,
				uint16_t flags, bool *removed)
{
	if (removed != nullptr) {
		*removed = false;
	}
	tevent_context *ev = fde->event_ctx;
	if (ev == nullptr) {
		return 0;
	}
	tevent_context *handler_ev = ev;

	if (!enter_handler_run(fde->busy, ev)) {
		return 0;
	}
	WrapperGlue *glue = fde->wrapper;
	if (glue != nullptr) {
		handler_ev = glue->wrap_ev;
		wrapper_push_use_internal(handler_ev, glue);
		glue->ops->before_fd_handler(handler_ev, glue->private_state,
					     glue->main_ev, fde, flags,
					     fde->handler_name, fde->location);
	}
	trace_fd(ev, fde, TEVENT_EVENT_TRACE_BEFORE_HANDLER);
	fde->handler(handler_ev, fde, flags, fde->private_data);
	if (glue != nullptr) {
		glue->ops->after_fd_handler(handler_ev, glue->private_state,
					    glue->main_ev, fde, flags,
					    fde->handler_name, fde->location);
		wrapper_pop_use_internal(handler_ev, glue);
	}
	if (!leave_handler_run(fde->busy)) {
		// A run of this fde further out is still on the stack (a
		// nested loop ran it again); that one finishes a free.
		return 0;
	}

	if (fde->destroyed) {
		talloc_set_destructor(fde, nullptr);
		talloc_free(fde);
		if (removed != nullptr) {
			*removed = true;
		}
	}
	return 0;
}

TEVENT_EXPORT struct tevent_fd *_tevent_add_fd(struct tevent_context *ev,
					       TALLOC_CTX *mem_ctx, int fd,
					       uint16_t flags,
					       tevent_fd_handler_t handler,
					       void *private_data,
					       const char *handler_name,
					       const char *location)
{
	return ev->ops->add_fd(ev, mem_ctx, fd, flags, handler, private_data,
			       handler_name, location);
}

TEVENT_EXPORT void tevent_fd_set_close_fn(struct tevent_fd *fde,
					  tevent_fd_close_fn_t close_fn)
{
	if (fde == nullptr || fde->event_ctx == nullptr) {
		return;
	}
	fde->event_ctx->ops->set_fd_close_fn(fde, close_fn);
}

TEVENT_EXPORT void tevent_fd_set_auto_close(struct tevent_fd *fde)
{
	tevent_fd_set_close_fn(fde, auto_close_fn);
}

TEVENT_EXPORT uint16_t tevent_fd_get_flags(struct tevent_fd *fde)
{
	if (fde == nullptr || fde->event_ctx == nullptr) {
		return 0;
	}
	return fde->event_ctx->ops->get_fd_flags(fde);
}

TEVENT_EXPORT void tevent_fd_set_flags(struct tevent_fd *fde, uint16_t flags)
{
	if (fde == nullptr || fde->event_ctx == nullptr) {
		return;
	}
	fde->event_ctx->ops->set_fd_flags(fde, flags);
}

TEVENT_EXPORT void tevent_fd_set_tag(struct tevent_fd *fde, uint64_t tag)
{
	if (fde == nullptr) {
		return;
	}
	fde->tag = tag;
}

TEVENT_EXPORT uint64_t tevent_fd_get_tag(const struct tevent_fd *fde)
{
	if (fde == nullptr) {
		return 0;
	}
	return fde->tag;
}

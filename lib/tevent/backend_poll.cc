// The poll backends. "poll" is for a context used by one thread; "poll_mt"
// also wakes a poll(2) in progress whenever the fd set changes, so a
// thread can change fdes while another one is sleeping in the loop (under
// the caller's own locking).
//
// The pollfd array is rebuilt lazily after fdes come or go; a flag change
// only patches the fde's entry. Fdes are scanned in the context's list
// order and a served fde moves to the back, so busy descriptors cannot
// starve the others.
#include "backend.hh"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

namespace tevent {

namespace {

constexpr uint32_t kNoIndex = UINT32_MAX;

class PollBackend {
public:
	static PollBackend *create(tevent_context *ev, bool mt);
	int on_talloc_free();

	void attach(tevent_fd *fde);
	void detach(tevent_fd *fde);
	void flags_changed(tevent_fd *fde);
	int wait_once(const struct timeval *delay);

private:
	bool rebuild();
	void changed();
	void report_dangling();
	void forget(tevent_fd *fde);
	static short map_flags(uint16_t flags);

	tevent_context *ev_;
	struct pollfd *pfds_;
	size_t npfds_;
	size_t cap_;
	bool dirty_;
	bool mt_;
};

PollBackend *backend_of(tevent_context *ev)
{
	return static_cast<PollBackend *>(ev->additional_data);
}

void hook_flags_changed(tevent_fd *fde)
{
	backend_of(fde->event_ctx)->flags_changed(fde);
}

void hook_detach(tevent_fd *fde)
{
	backend_of(fde->event_ctx)->detach(fde);
}



short PollBackend::map_flags(uint16_t flags)
{
	short ev = 0;
	if (flags & TEVENT_FD_READ) {
		ev |= POLLIN | POLLRDHUP;
	}
	if (flags & TEVENT_FD_WRITE) {
		ev |= POLLOUT;
	}
	if (flags & TEVENT_FD_ERROR) {
		ev |= POLLRDHUP;
	}
	return ev;
}

PollBackend *PollBackend::create(tevent_context *ev, bool mt)
{
	auto *b = new_talloc_object<PollBackend>(ev, "struct poll_event_context");
	if (b == nullptr) {
		return nullptr;
	}
	b->ev_ = ev;
	b->mt_ = mt;
	b->dirty_ = true;
	return b;
}

int PollBackend::on_talloc_free()
{
	free(pfds_);
	pfds_ = nullptr;
	npfds_ = cap_ = 0;
	return 0;
}

void PollBackend::changed()
{
	if (mt_) {
		tevent_common_wakeup(ev_);
	}
}

void PollBackend::attach(tevent_fd *fde)
{
	fde->hooks_id = kPollFdHooks;
	fde->poll_index = kNoIndex;
	dirty_ = true;
	changed();
}

// The fde's pollfd entry stays as it is until the rebuild before the next
// poll(): a POLLNVAL reported on it can still name the descriptor.
void PollBackend::detach(tevent_fd *fde)
{
	forget(fde);
	changed();
}

void PollBackend::forget(tevent_fd *fde)
{
	fde->poll_index = kNoIndex;
	dirty_ = true;
}

void PollBackend::flags_changed(tevent_fd *fde)
{
	size_t idx = fde->poll_index;
	if (idx != kNoIndex && idx < npfds_) {
		// Flags 0 means "not interested": a negative fd keeps poll
		// from reporting hangups we would never hand to anybody.
		pfds_[idx].fd = fde->flags ? fde->fd : -1;
		pfds_[idx].events = map_flags(fde->flags);
	}
	changed();
}

bool PollBackend::rebuild()
{
	size_t n = ev_->fds.size();
	if (n > cap_) {
		size_t ncap = cap_ ? cap_ : 16;
		while (ncap < n) {
			ncap *= 2;
		}
		auto *p = static_cast<struct pollfd *>(
			realloc(pfds_, ncap * sizeof(struct pollfd)));
		if (p == nullptr) {
			return false;
		}
		pfds_ = p;
		cap_ = ncap;
	}
	size_t i = 0;
	for (tevent_fd *fde = ev_->fds.front(); fde != nullptr;
	     fde = IntrusiveList<tevent_fd, &tevent_fd::ctx_link>::next(fde)) {
		pfds_[i].fd = fde->flags ? fde->fd : -1;
		pfds_[i].events = map_flags(fde->flags);
		pfds_[i].revents = 0;
		fde->poll_index = i;
		i++;
	}
	npfds_ = i;
	dirty_ = false;
	return true;
}

int PollBackend::wait_once(const struct timeval *delay)
{
	if (!ev_->signals.empty() && tevent_common_check_signal(ev_)) {
		return 0;
	}
	if (dirty_ && !rebuild()) {
		errno = ENOMEM;
		return -1;
	}

	if (messages_before_sleep(ev_, delay)) {
		return run_spun_messages(ev_);
	}

	int wait_errno;
	int n = traced_wait(ev_, [&] {
		return poll(pfds_, npfds_, timeout_msec(delay));
	}, &wait_errno);
	if (n == -1 && wait_errno == EINTR) {
		return wait_interrupted(ev_);
	}
	if (n == -1) {
		tevent_debug(ev_, TEVENT_DEBUG_FATAL, "poll() failed: %s\n",
			     strerror(wait_errno));
		errno = wait_errno;
		return -1;
	}
	if (n == 0) {
		return finish_idle_wait(ev_, delay);
	}

	tevent_fd *next;
	for (tevent_fd *fde = ev_->fds.front(); fde != nullptr; fde = next) {
		next = IntrusiveList<tevent_fd, &tevent_fd::ctx_link>::next(fde);
		size_t idx = fde->poll_index;
		if (idx == kNoIndex || idx >= npfds_) {
			continue;
		}
		short revents = pfds_[idx].revents;
		if (revents == 0) {
			continue;
		}
		if (revents & POLLNVAL) {
			// The descriptor was closed behind our back: this fde
			// can never fire again (epoll drops it the same way).
			// No wakeup for poll_mt: this thread is not polling.
			TEVENT_DEBUGF(ev_, TEVENT_DEBUG_ERROR,
				      "POLLNVAL on fde[%p] fd[%d] - disabling\n",
				      static_cast<void *>(fde), fde->fd);
			forget(fde);
			fde->hooks_id = kNoFdHooks;
			fd_disarm(fde);
			continue;
		}
		uint16_t ready = 0;
		if (revents & POLLIN) {
			ready |= TEVENT_FD_READ;
		}
		if (revents & POLLOUT) {
			ready |= TEVENT_FD_WRITE;
		}
		bool got_error = (revents & (POLLHUP | POLLERR | POLLRDHUP)) != 0;
		uint16_t flags = fd_flags_for(fde, ready, got_error, got_error);
		if (flags == 0) {
			if (got_error) {
				// Writers are not told about errors; stop
				// polling for writability or this repeats.
				fde->flags &= ~TEVENT_FD_WRITE;
				flags_changed(fde);
			}
			continue;
		}
		// Served fdes go to the back of the scan order.
		ev_->fds.remove(fde);
		ev_->fds.push_back(fde);
		return tevent_common_invoke_fd_handler(fde, flags, nullptr);
	}
	report_dangling();
	return 0;
}

// A turn that ran no handler ends, as upstream's does, by naming every
// entry poll() found invalid that no fde holds any more (the ones just
// disabled above among them, which upstream reports twice).
void PollBackend::report_dangling()
{
	for (size_t i = 0; i < npfds_; i++) {
		if ((pfds_[i].revents & POLLNVAL) && pfds_[i].fd != -1) {
			TEVENT_DEBUGF(ev_, TEVENT_DEBUG_WARNING,
				      "POLLNVAL on dangling fd[%d] fde[%p] - "
				      "disabling\n", pfds_[i].fd, nullptr);
			pfds_[i].fd = -1;
			dirty_ = true;
		}
	}
}

int context_init(tevent_context *ev, bool mt)
{
	if (ev->additional_data != nullptr) {
		talloc_free(ev->additional_data);
		ev->additional_data = nullptr;
	}
	PollBackend *b = PollBackend::create(ev, mt);
	if (b == nullptr) {
		return -1;
	}
	ev->additional_data = b;
	// Adopt fdes that already exist (the standard backend falling back
	// from epoll).
	for (tevent_fd *fde = ev->fds.front(); fde != nullptr;
	     fde = IntrusiveList<tevent_fd, &tevent_fd::ctx_link>::next(fde)) {
		b->attach(fde);
	}
	if (mt && tevent_common_wakeup_init(ev) != 0) {
		return -1;
	}
	return 0;
}

int poll_context_init(tevent_context *ev)
{
	return context_init(ev, false);
}

int poll_mt_context_init(tevent_context *ev)
{
	return context_init(ev, true);
}

struct tevent_fd *poll_add_fd(struct tevent_context *ev, TALLOC_CTX *mem_ctx,
			      int fd, uint16_t flags,
			      tevent_fd_handler_t handler, void *private_data,
			      const char *handler_name, const char *location)
{
	tevent_fd *fde = tevent_common_add_fd(ev, mem_ctx, fd, flags, handler,
					      private_data, handler_name,
					      location);
	if (fde != nullptr) {
		backend_of(ev)->attach(fde);
	}
	return fde;
}

int poll_loop_once(struct tevent_context *ev, const char *location)
{
	(void)location;
	return loop_once_common(ev, [ev](const struct timeval &delay) {
		return backend_of(ev)->wait_once(&delay);
	});
}

} // namespace

const struct tevent_ops poll_ops = builtin_ops(poll_context_init, poll_add_fd, poll_loop_once);

const struct tevent_ops poll_mt_ops = builtin_ops(poll_mt_context_init, poll_add_fd, poll_loop_once);

int poll_wait_once(tevent_context *ev, const struct timeval *delay)
{
	return backend_of(ev)->wait_once(delay);
}

bool standard_fallback_to_poll(tevent_context *ev)
{
	for (tevent_fd *fde = ev->fds.front(); fde != nullptr;
	     fde = IntrusiveList<tevent_fd, &tevent_fd::ctx_link>::next(fde)) {
		fde->slot_link = ListHook<tevent_fd>{};
		fde->hooks_id = kNoFdHooks;
	}
	ev->additional_data = nullptr;
	ev->ops = &poll_ops;
	return poll_context_init(ev) == 0;
}

const BackendFdHooks poll_fd_hooks = {hook_flags_changed, hook_detach};

bool poll_backend_register()
{
	return tevent_register_backend("poll", &poll_ops) &&
	       tevent_register_backend("poll_mt", &poll_mt_ops);
}

} // namespace tevent

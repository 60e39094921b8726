// The per-context wakeup descriptor (an eventfd): signals and other
// threads write to it to interrupt a loop sleeping in poll/epoll.
#include "internal.hh"

#include <sys/eventfd.h>
#include <unistd.h>

namespace tevent {

static void wakeup_handler(struct tevent_context *ev, struct tevent_fd *fde,
			   uint16_t flags, void *private_data)
{
	(void)ev;
	(void)flags;
	(void)private_data;
	uint64_t value;
	ssize_t ret;
	do {
		ret = read(fde->fd, &value, sizeof(value));
	} while (ret == -1 && errno == EINTR);
}

void wakeup_fini(tevent_context *ev)
{
	if (ev->wakeup_fde == nullptr) {
		return;
	}
	tevent_fd *fde = ev->wakeup_fde;
	ev->wakeup_fde = nullptr;
	talloc_free(fde);
	close(ev->wakeup_fd);
	ev->wakeup_fd = -1;
}

} // namespace tevent

using namespace tevent;

TEVENT_EXPORT int tevent_common_wakeup_init(struct tevent_context *ev)
{
	if (ev->wakeup_fde != nullptr) {
		return 0;
	}
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd == -1) {
		return errno;
	}
	ev->wakeup_fd = fd;
	ev->wakeup_fde = tevent_add_fd(ev, ev, fd, TEVENT_FD_READ,
				       wakeup_handler, nullptr);
	if (ev->wakeup_fde == nullptr) {
		close(fd);
		ev->wakeup_fd = -1;
		return ENOMEM;
	}
	return 0;
}

TEVENT_EXPORT int tevent_common_wakeup_fd(int fd)
{
	uint64_t one = 1;
	ssize_t ret;
	do {
		ret = write(fd, &one, sizeof(one));
	} while (ret == -1 && errno == EINTR);
	return 0;
}

TEVENT_EXPORT int tevent_common_wakeup(struct tevent_context *ev)
{
	if (ev->wakeup_fde == nullptr) {
		return ENOTCONN;
	}
	return tevent_common_wakeup_fd(ev->wakeup_fd);
}

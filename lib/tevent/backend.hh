// What the built-in backends (epoll, poll, poll_mt, standard) share: the
// loop turn skeleton and helpers to pick the handler an fd readiness goes to.
#pragma once

#include "internal.hh"

namespace tevent {

// One loop turn in upstream's order: signals, immediates handed over by
// other threads, one immediate, one due timer, and only then `wait`, which
// blocks for fds until `delay` and runs at most one fd handler.
template <class Wait>
int loop_once_common(tevent_context *ev, Wait &&wait)
{
	if (!ev->signals.empty() && tevent_common_check_signal(ev)) {
		return 0;
	}
	if (ev->has_threaded) {
		tevent_common_threaded_activate_immediate(ev);
	}
	if (!ev->immediates.empty() && tevent_common_loop_immediate(ev)) {
		return 0;
	}
	struct timeval delay = tevent_common_loop_timer_delay(ev);
	if (tevent_timeval_is_zero(&delay)) {
		return 0;
	}
	return wait(delay);
}

// Runs a backend's blocking call between the BEFORE_WAIT and AFTER_WAIT
// trace points; returns its result, and in *wait_errno the errno of a
// failed call (0 otherwise). Call messages_before_sleep() first.
template <class Wait>
int traced_wait(tevent_context *ev, Wait &&wait, int *wait_errno)
{
	trace_point(ev, TEVENT_TRACE_BEFORE_WAIT);
	int n = wait();
	// errno is a call into libc: read it only when there is one to keep.
	*wait_errno = n == -1 ? errno : 0;
	awake_again(ev);
	trace_point(ev, TEVENT_TRACE_AFTER_WAIT);
	return n;
}

// A wait cut short by a signal: serve the signals and end the turn.
inline int wait_interrupted(tevent_context *ev)
{
	if (!ev->signals.empty()) {
		tevent_common_check_signal(ev);
	}
	return 0;
}

// After a wait that returned no fd: a timeout means a timer may be due now.
inline int finish_idle_wait(tevent_context *ev, const struct timeval *delay)
{
	if (no_timeout(delay)) {
		// tevent_context_set_wait_timeout(0): nothing to do right now.
		errno = EAGAIN;
		return -1;
	}
	tevent_common_loop_timer_delay(ev);
	return 0;
}

// Flags an fde sees for readiness `ready` (TEVENT_FD_READ/WRITE) plus an
// error/hangup condition in this report (`report_error`). Once a
// descriptor had one (`error_seen`), only fdes that watch for reading or
// for errors hear of it any more, as with select(); 0 means this fde is
// not interested.
inline uint16_t fd_flags_for(const tevent_fd *fde, uint16_t ready,
			     bool report_error, bool error_seen)
{
	if (error_seen && !(fde->flags & (TEVENT_FD_READ | TEVENT_FD_ERROR))) {
		return 0;
	}
	uint16_t flags = ready;
	if (report_error) {
		flags |= TEVENT_FD_READ | TEVENT_FD_ERROR;
	}
	return flags & fde->flags;
}

using add_fd_fn = struct tevent_fd *(*)(struct tevent_context *, TALLOC_CTX *,
					int, uint16_t, tevent_fd_handler_t,
					void *, const char *, const char *);

// A built-in backend differs from the others only in how it starts, adds
// fds and waits; everything else is the common machinery.
constexpr struct tevent_ops builtin_ops(int (*context_init)(tevent_context *),
					add_fd_fn add_fd,
					int (*loop_once)(tevent_context *,
							 const char *))
{
	return {
		.context_init = context_init,
		.add_fd = add_fd,
		.set_fd_close_fn = tevent_common_fd_set_close_fn,
		.get_fd_flags = tevent_common_fd_get_flags,
		.set_fd_flags = tevent_common_fd_set_flags,
		.add_timer = tevent_common_add_timer_v2,
		.schedule_immediate = tevent_common_schedule_immediate,
		.add_signal = tevent_common_add_signal,
		.loop_once = loop_once,
		.loop_wait = tevent_common_loop_wait,
	};
}

extern const struct tevent_ops epoll_ops;
extern const struct tevent_ops poll_ops;
extern const struct tevent_ops poll_mt_ops;
extern const struct tevent_ops standard_ops;

// The standard backend starts as epoll and turns into poll when epoll
// cannot serve the context (e.g. a regular file's fd).
bool standard_fallback_to_poll(tevent_context *ev);

// What an epoll wait returns when its context fell back to poll before the
// turn served anything (epoll_wait() or the reopen after fork failed): the
// same turn goes on with poll_wait_once(), as upstream's replay does.
constexpr int kWaitFellBack = -3;
int poll_wait_once(tevent_context *ev, const struct timeval *delay);

} // namespace tevent

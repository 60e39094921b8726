/*
 * tevent_common.h - exported helpers that are not part of the public API.
 *
 * libtevent exports a number of functions that its public header does not
 * declare: the building blocks its own backends are made of (the
 * tevent_common_* family), the functions that invoke the trace callbacks,
 * the debug and abort entry points.  Binaries built against libtevent may
 * link to them, so tevent-cxx exports them with the same signatures.  This
 * header declares them for the library itself and for authors of
 * out-of-tree backends; ordinary users should stick to <tevent.h>.
 *
 * No stability promise beyond the exported signatures is made here.
 */

#ifndef __TEVENT_COMMON_H__
#define __TEVENT_COMMON_H__

#include <tevent.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Diagnostics
 * ------------------------------------------------------------------------ */

/** Formats a debug message and hands it to the debug function of ev, if
 *  level is within the maximum set for ev. */
void tevent_debug(struct tevent_context *ev, enum tevent_debug_level level,
		  const char *fmt, ...) PRINTF_ATTRIBUTE(3,4);

/** Reports a fatal inconsistency (as a fatal debug message on ev, which
 *  may be NULL) and calls the abort function; does not return unless a
 *  custom abort function does. */
void tevent_abort(struct tevent_context *ev, const char *reason);

/** For talloc destructors that must refuse a free: aborts with reason,
 *  unless the free is part of destroying ptr's talloc parent, which cannot
 *  be refused anyway. */
void tevent_common_check_double_free(TALLOC_CTX *ptr, const char *reason);

/* ------------------------------------------------------------------------
 * Context
 * ------------------------------------------------------------------------ */

/** The talloc destructor of a context: detaches all events still attached
 *  to it.  Returns 0. */
int tevent_common_context_destructor(struct tevent_context *ev);

/** Generic loop_wait backend operation: runs loop_once until no event is
 *  left. */
int tevent_common_loop_wait(struct tevent_context *ev,
			    const char *location);

/** true if any fd, timer, immediate or signal event is attached to ev. */
bool tevent_common_have_events(struct tevent_context *ev);

/* ------------------------------------------------------------------------
 * Waking up a sleeping loop
 * ------------------------------------------------------------------------ */

/** Sets up the descriptor other threads and signal handlers write to in
 *  order to interrupt the loop of ev.  0 or an errno value. */
int tevent_common_wakeup_init(struct tevent_context *ev);

/** Wakes the loop listening on the wakeup descriptor fd; safe in signal
 *  handlers.  0 or an errno value. */
int tevent_common_wakeup_fd(int fd);

/** Wakes the loop of ev (see tevent_common_wakeup_init()). */
int tevent_common_wakeup(struct tevent_context *ev);

/* ------------------------------------------------------------------------
 * fd events
 * ------------------------------------------------------------------------ */

/** The talloc destructor of fd events: runs the close function and
 *  detaches the event.  Returns 0, or -1 to delay the free while the
 *  handler is running. */
int tevent_common_fd_destructor(struct tevent_fd *fde);

/** Generic add_fd backend operation: creates and attaches the event. */
struct tevent_fd *tevent_common_add_fd(struct tevent_context *ev,
				       TALLOC_CTX *mem_ctx,
				       int fd,
				       uint16_t flags,
				       tevent_fd_handler_t handler,
				       void *private_data,
				       const char *handler_name,
				       const char *location);

/** Generic set_fd_close_fn backend operation. */
void tevent_common_fd_set_close_fn(struct tevent_fd *fde,
				   tevent_fd_close_fn_t close_fn);

/** Generic get_fd_flags backend operation. */
uint16_t tevent_common_fd_get_flags(struct tevent_fd *fde);

/** Generic set_fd_flags backend operation (just records the flags). */
void tevent_common_fd_set_flags(struct tevent_fd *fde, uint16_t flags);

/** Runs the handler of fde for flags (through the wrapper hooks and trace
 *  callback).  *removed, if given, tells whether fde was freed meanwhile.
 *  Returns 0. */
int tevent_common_invoke_fd_handler(struct tevent_fd *fde, uint16_t flags,
				    bool *removed);

/* ------------------------------------------------------------------------
 * Timers
 * ------------------------------------------------------------------------ */

/** Generic add_timer backend operation (timers kept sorted by time). */
struct tevent_timer *tevent_common_add_timer(struct tevent_context *ev,
					     TALLOC_CTX *mem_ctx,
					     struct timeval next_event,
					     tevent_timer_handler_t handler,
					     void *private_data,
					     const char *handler_name,
					     const char *location);

/** Like tevent_common_add_timer(), optimised for many timers that are due
 *  immediately (zero time); the variant the built-in backends use. */
struct tevent_timer *tevent_common_add_timer_v2(struct tevent_context *ev,
						TALLOC_CTX *mem_ctx,
						struct timeval next_event,
						tevent_timer_handler_t handler,
						void *private_data,
						const char *handler_name,
						const char *location);

/** Runs the first timer if it is due.  Returns how long the backend may
 *  sleep: zero after running a timer, the time to the next timer, or the
 *  context's wait timeout when there is none. */
struct timeval tevent_common_loop_timer_delay(struct tevent_context *ev);

/** Runs the handler of te, which is then freed.  *removed, if given, tells
 *  whether te is gone.  Returns 0. */
int tevent_common_invoke_timer_handler(struct tevent_timer *te,
				       struct timeval current_time,
				       bool *removed);

/* ------------------------------------------------------------------------
 * Immediates
 * ------------------------------------------------------------------------ */

/** Generic schedule_immediate backend operation. */
void tevent_common_schedule_immediate(struct tevent_immediate *im,
				      struct tevent_context *ev,
				      tevent_immediate_handler_t handler,
				      void *private_data,
				      const char *handler_name,
				      const char *location);

/** Unschedules im (no-op if it is not scheduled). */
void tevent_common_immediate_cancel(struct tevent_immediate *im);

/** Runs the handler of im, which is unscheduled first.  *removed, if
 *  given, tells whether im was freed.  Returns 0. */
int tevent_common_invoke_immediate_handler(struct tevent_immediate *im,
					   bool *removed);

/** Runs the first scheduled immediate of ev; true if one ran. */
bool tevent_common_loop_immediate(struct tevent_context *ev);

/** Moves immediates scheduled from other threads into the list of ev. */
void tevent_common_threaded_activate_immediate(struct tevent_context *ev);

/* ------------------------------------------------------------------------
 * Signals
 * ------------------------------------------------------------------------ */

/** Generic add_signal backend operation. */
struct tevent_signal *tevent_common_add_signal(struct tevent_context *ev,
					       TALLOC_CTX *mem_ctx,
					       int signum,
					       int sa_flags,
					       tevent_signal_handler_t handler,
					       void *private_data,
					       const char *handler_name,
					       const char *location);

/** Runs the handlers of signals that arrived since the last check;
 *  non-zero if there was anything to handle. */
int tevent_common_check_signal(struct tevent_context *ev);

/** Drops the deliveries of se that were recorded but not yet handled. */
void tevent_cleanup_pending_signal_handlers(struct tevent_signal *se);

/** Runs the handler of se.  *removed, if given, tells whether se was
 *  freed.  Returns 0. */
int tevent_common_invoke_signal_handler(struct tevent_signal *se,
					int signum, int count, void *siginfo,
					bool *removed);

/* ------------------------------------------------------------------------
 * Invoking the trace callbacks installed on a context
 * ------------------------------------------------------------------------ */

void tevent_trace_point_callback(struct tevent_context *ev,
				 enum tevent_trace_point tp);
void tevent_trace_fd_callback(struct tevent_context *ev,
			      struct tevent_fd *fde,
			      enum tevent_event_trace_point tp);
void tevent_trace_signal_callback(struct tevent_context *ev,
				  struct tevent_signal *se,
				  enum tevent_event_trace_point tp);
void tevent_trace_timer_callback(struct tevent_context *ev,
				 struct tevent_timer *te,
				 enum tevent_event_trace_point tp);
void tevent_trace_immediate_callback(struct tevent_context *ev,
				     struct tevent_immediate *im,
				     enum tevent_event_trace_point tp);
void tevent_trace_queue_callback(struct tevent_context *ev,
				 struct tevent_queue_entry *qe,
				 enum tevent_event_trace_point tp);

#ifdef __cplusplus
}
#endif

#endif /* __TEVENT_COMMON_H__ */

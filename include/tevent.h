/*
 * tevent.h - public interface of tevent-cxx.
 *
 * tevent-cxx is a reimplementation of Samba's talloc based event loop
 * library.  This header is source compatible with the header shipped with
 * tevent 0.17.2: the same types, functions, enum values and macros, so code
 * written for libtevent builds unchanged against it.
 *
 * Ground rules that hold for the whole API:
 *  - every object handed out (contexts, events, requests, queues...) is a
 *    talloc chunk; freeing it with talloc_free() is how it is cancelled or
 *    destroyed, and freeing its talloc parent does the same;
 *  - the macros below add the caller's source location (__location__) and
 *    the stringified handler name to the calls for debugging and tracing;
 *  - nothing here is thread safe unless the comment says so.
 *
 * Optional parts:
 *  - TEVENT_DEPRECATED: define before including to see interfaces that are
 *    kept only for old users (loop nesting, wrapper contexts, the old call
 *    depth tracking API); they carry the deprecated attribute.
 *  - TEVENT_COMPAT_DEFINES: define to get the pre-tevent "event_*" names.
 */

#ifndef __TEVENT_H__
#define __TEVENT_H__

#include <stdarg.h>
#include <stdint.h>
#include <talloc.h>
#include <sys/time.h>
#include <sys/types.h>
#include <stdbool.h>

/* Compilers without the feature test macro: assume no attribute exists. */
#ifndef __has_attribute
#define __has_attribute(x) 0
#endif

/* talloc.h normally provides these two; keep working if it did not. */
#ifndef __location__
#define __TEVENT_LOCATION_STR2__(x) #x
#define __TEVENT_LOCATION_STR1__(x) __TEVENT_LOCATION_STR2__(x)
#define __location__ __FILE__ ":" __TEVENT_LOCATION_STR1__(__LINE__)
#endif

#ifndef PRINTF_ATTRIBUTE
#if (__GNUC__ >= 3)
#define PRINTF_ATTRIBUTE(a1, a2) __attribute__ ((format (__printf__, a1, a2)))
#else
#define PRINTF_ATTRIBUTE(a1, a2)
#endif
#endif

#ifdef TEVENT_DEPRECATED
#ifndef _DEPRECATED_
#if __has_attribute(deprecated) || (__GNUC__ >= 3)
#define _DEPRECATED_ __attribute__ ((deprecated))
#else
#define _DEPRECATED_
#endif
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque objects; only the library knows their layout. */
struct tevent_context;
struct tevent_ops;
struct tevent_fd;
struct tevent_timer;
struct tevent_immediate;
struct tevent_signal;
struct tevent_thread_proxy;
struct tevent_threaded_context;
struct tevent_req;
struct tevent_req_profile;
struct tevent_queue;
struct tevent_queue_entry;

/* ------------------------------------------------------------------------
 * Handler types
 * ------------------------------------------------------------------------ */

/** Runs when a watched file descriptor is ready; flags holds the TEVENT_FD_*
 *  conditions that fired. */
typedef void (*tevent_fd_handler_t)(struct tevent_context *ev,
				    struct tevent_fd *fde,
				    uint16_t flags,
				    void *private_data);

/** Runs when an fd event is freed, to dispose of the descriptor itself. */
typedef void (*tevent_fd_close_fn_t)(struct tevent_context *ev,
				     struct tevent_fd *fde,
				     int fd,
				     void *private_data);

/** Runs once when a timer expires; current_time is the loop's notion of now. */
typedef void (*tevent_timer_handler_t)(struct tevent_context *ev,
				       struct tevent_timer *te,
				       struct timeval current_time,
				       void *private_data);

/** Runs for a scheduled immediate event. */
typedef void (*tevent_immediate_handler_t)(struct tevent_context *ctx,
					   struct tevent_immediate *im,
					   void *private_data);

/** Runs from the loop (not from the signal handler) after a signal arrived.
 *  count is how many times it arrived since the last call; siginfo points to
 *  a siginfo_t when the event was added with SA_SIGINFO, else NULL. */
typedef void (*tevent_signal_handler_t)(struct tevent_context *ev,
					struct tevent_signal *se,
					int signum,
					int count,
					void *siginfo,
					void *private_data);

/* ------------------------------------------------------------------------
 * Event contexts
 * ------------------------------------------------------------------------ */

/** Creates an event context using the default backend.
 *  The context is a talloc child of mem_ctx; NULL on failure. */
struct tevent_context *tevent_context_init(TALLOC_CTX *mem_ctx);

/** Creates an event context using the backend registered under name. */
struct tevent_context *tevent_context_init_byname(TALLOC_CTX *mem_ctx, const char *name);

/** Creates an event context driven by the given backend operations;
 *  additional_data is stored for the backend's own use. */
struct tevent_context *tevent_context_init_ops(TALLOC_CTX *mem_ctx,
					       const struct tevent_ops *ops,
					       void *additional_data);

/** Returns a NULL terminated talloc array (child of mem_ctx) with the
 *  names of all available backends. */
const char **tevent_backend_list(TALLOC_CTX *mem_ctx);

/** Chooses the backend tevent_context_init() uses; NULL restores the
 *  built-in default. */
void tevent_set_default_backend(const char *backend);

/** Sets how many seconds one loop iteration may block when no timer is
 *  pending (default 30).  0 turns waiting into polling: an iteration that
 *  finds nothing to do fails with errno EAGAIN instead of sleeping.
 *  UINT32_MAX waits forever.  Returns the previous value. */
uint32_t tevent_context_set_wait_timeout(struct tevent_context *ev,
					 uint32_t secs);

/** Re-creates the backend state of ev (for instance after fork(), where an
 *  epoll descriptor must not be shared with the parent).  0 on success. */
int tevent_re_initialise(struct tevent_context *ev);

/** Installs the function called instead of abort() when the library finds
 *  a fatal inconsistency; NULL restores abort(). */
void tevent_set_abort_fn(void (*abort_fn)(const char *reason));

/* ------------------------------------------------------------------------
 * File descriptor events
 * ------------------------------------------------------------------------ */

/** The descriptor is readable; errors and hangups are reported as this too. */
#define TEVENT_FD_READ 1
/** The descriptor is writeable. */
#define TEVENT_FD_WRITE 2
/** Report errors and hangups on the descriptor without asking for data. */
#define TEVENT_FD_ERROR 4

/** Adds TEVENT_FD_WRITE to the conditions watched on fde. */
#define TEVENT_FD_WRITEABLE(fde) \
	tevent_fd_set_flags(fde, tevent_fd_get_flags(fde) | TEVENT_FD_WRITE)
/** Adds TEVENT_FD_READ to the conditions watched on fde. */
#define TEVENT_FD_READABLE(fde) \
	tevent_fd_set_flags(fde, tevent_fd_get_flags(fde) | TEVENT_FD_READ)
/** Adds TEVENT_FD_ERROR to the conditions watched on fde. */
#define TEVENT_FD_WANTERROR(fde) \
	tevent_fd_set_flags(fde, tevent_fd_get_flags(fde) | TEVENT_FD_ERROR)
/** Removes TEVENT_FD_WRITE from the conditions watched on fde. */
#define TEVENT_FD_NOT_WRITEABLE(fde) \
	tevent_fd_set_flags(fde, tevent_fd_get_flags(fde) & ~TEVENT_FD_WRITE)
/** Removes TEVENT_FD_READ from the conditions watched on fde. */
#define TEVENT_FD_NOT_READABLE(fde) \
	tevent_fd_set_flags(fde, tevent_fd_get_flags(fde) & ~TEVENT_FD_READ)
/** Removes TEVENT_FD_ERROR from the conditions watched on fde. */
#define TEVENT_FD_NOT_WANTERROR(fde) \
	tevent_fd_set_flags(fde, tevent_fd_get_flags(fde) & ~TEVENT_FD_ERROR)

/** Watches fd for the TEVENT_FD_* conditions in flags and calls handler
 *  whenever one holds.  The event is a talloc child of mem_ctx and stays
 *  until freed.  Free the event before closing fd (or let a close function
 *  close it), never the other way round.  Use through tevent_add_fd(). */
struct tevent_fd *_tevent_add_fd(struct tevent_context *ev,
				 TALLOC_CTX *mem_ctx,
				 int fd,
				 uint16_t flags,
				 tevent_fd_handler_t handler,
				 void *private_data,
				 const char *handler_name,
				 const char *location);
#define tevent_add_fd(ev, mem_ctx, fd, flags, handler, private_data) \
	_tevent_add_fd(ev, mem_ctx, fd, flags, handler, private_data, \
		       #handler, __location__)

/** Stores an arbitrary caller defined value on the event. */
void tevent_fd_set_tag(struct tevent_fd *fde, uint64_t tag);

/** Returns the value stored with tevent_fd_set_tag() (0 if none). */
uint64_t tevent_fd_get_tag(const struct tevent_fd *fde);

/** Sets the function that runs when fde is freed; it is responsible for
 *  closing the descriptor.  Wrapper contexts do not wrap this call. */
void tevent_fd_set_close_fn(struct tevent_fd *fde,
			    tevent_fd_close_fn_t close_fn);

/** Makes freeing fde close(2) its descriptor. */
void tevent_fd_set_auto_close(struct tevent_fd *fde);

/** Returns the TEVENT_FD_* conditions currently watched on fde. */
uint16_t tevent_fd_get_flags(struct tevent_fd *fde);

/** Replaces the TEVENT_FD_* conditions watched on fde (0 pauses it). */
void tevent_fd_set_flags(struct tevent_fd *fde, uint16_t flags);

/* ------------------------------------------------------------------------
 * Timer events
 * ------------------------------------------------------------------------ */

/** Calls handler once at the absolute time next_event (not an offset; see
 *  tevent_timeval_current_ofs()).  The event frees itself after the
 *  handler ran; free it earlier to cancel.  Use through tevent_add_timer(). */
struct tevent_timer *_tevent_add_timer(struct tevent_context *ev,
				       TALLOC_CTX *mem_ctx,
				       struct timeval next_event,
				       tevent_timer_handler_t handler,
				       void *private_data,
				       const char *handler_name,
				       const char *location);
#define tevent_add_timer(ev, mem_ctx, next_event, handler, private_data) \
	_tevent_add_timer(ev, mem_ctx, next_event, handler, private_data, \
			  #handler, __location__)

/** Moves a pending timer to the absolute time next_event. */
void tevent_update_timer(struct tevent_timer *te, struct timeval next_event);

/** Stores an arbitrary caller defined value on the timer. */
void tevent_timer_set_tag(struct tevent_timer *te, uint64_t tag);

/** Returns the value stored with tevent_timer_set_tag() (0 if none). */
uint64_t tevent_timer_get_tag(const struct tevent_timer *te);

/* ------------------------------------------------------------------------
 * Immediate events
 * ------------------------------------------------------------------------ */

/** Allocates an unscheduled immediate event as a talloc child of mem_ctx.
 *  It can be scheduled any number of times.  Use through
 *  tevent_create_immediate(). */
struct tevent_immediate *_tevent_create_immediate(TALLOC_CTX *mem_ctx,
						  const char *location);
#define tevent_create_immediate(mem_ctx) \
	_tevent_create_immediate(mem_ctx, __location__)

/** Arranges for handler to run on the next loop iteration, before fd and
 *  timer events are looked at.  Scheduling an already scheduled event moves
 *  it; a NULL handler cancels it.  Use through tevent_schedule_immediate(). */
void _tevent_schedule_immediate(struct tevent_immediate *im,
				struct tevent_context *ctx,
				tevent_immediate_handler_t handler,
				void *private_data,
				const char *handler_name,
				const char *location);
#define tevent_schedule_immediate(im, ctx, handler, private_data) \
	_tevent_schedule_immediate(im, ctx, handler, private_data, \
				   #handler, __location__);

/** Unschedules im if it is pending; the object stays allocated for reuse. */
void tevent_reset_immediate(struct tevent_immediate *im);

/** Stores an arbitrary caller defined value on the immediate event. */
void tevent_immediate_set_tag(struct tevent_immediate *im, uint64_t tag);

/** Returns the value stored with tevent_immediate_set_tag() (0 if none). */
uint64_t tevent_immediate_get_tag(const struct tevent_immediate *fde);

/* ------------------------------------------------------------------------
 * Signal events
 * ------------------------------------------------------------------------ */

/** Installs a process wide signal handler for signum (with sigaction flags
 *  sa_flags) that only records the signal; handler then runs from the loop
 *  of ev.  Free the event to stop; the previous disposition comes back when
 *  the last event for signum is gone.  signum must be below
 *  tevent_num_signals().  Use through tevent_add_signal(). */
struct tevent_signal *_tevent_add_signal(struct tevent_context *ev,
					 TALLOC_CTX *mem_ctx,
					 int signum,
					 int sa_flags,
					 tevent_signal_handler_t handler,
					 void *private_data,
					 const char *handler_name,
					 const char *location);
#define tevent_add_signal(ev, mem_ctx, signum, sa_flags, handler, private_data) \
	_tevent_add_signal(ev, mem_ctx, signum, sa_flags, handler, private_data, \
			   #handler, __location__)

/** Stores an arbitrary caller defined value on the signal event. */
void tevent_signal_set_tag(struct tevent_signal *se, uint64_t tag);

/** Returns the value stored with tevent_signal_set_tag() (0 if none). */
uint64_t tevent_signal_get_tag(const struct tevent_signal *se);

/** Returns one more than the highest signal number tevent can handle. */
size_t tevent_num_signals(void);

/** Returns how many SA_SIGINFO deliveries of one signal are buffered
 *  between two loop iterations; deliveries beyond that are lost. */
size_t tevent_sa_info_queue_count(void);

/** Tells whether ev can handle signal events. */
bool tevent_signal_support(struct tevent_context *ev);

/* ------------------------------------------------------------------------
 * Running the loop
 * ------------------------------------------------------------------------ */

/** Runs one iteration: handles what is ready, blocking until something is
 *  (or the wait timeout passes).  0 on success, -1 with errno on failure.
 *  Use through tevent_loop_once(). */
int _tevent_loop_once(struct tevent_context *ev, const char *location);
#define tevent_loop_once(ev) \
	_tevent_loop_once(ev, __location__)

/** Runs iterations until no fd, timer, immediate or signal event is left
 *  (or an error occurs).  0 when done.  Use through tevent_loop_wait(). */
int _tevent_loop_wait(struct tevent_context *ev, const char *location);
#define tevent_loop_wait(ev) \
	_tevent_loop_wait(ev, __location__)

/** Notified when a nested loop iteration begins and ends (see
 *  tevent_loop_set_nesting_hook()); a non-zero result from the begin call
 *  makes the nested iteration fail. */
typedef int (*tevent_nesting_hook)(struct tevent_context *ev,
				   void *private_data,
				   uint32_t level,
				   bool begin,
				   void *stack_ptr,
				   const char *location);

#ifdef TEVENT_DEPRECATED
/** Permits running the loop of ev from inside one of its own handlers. */
void tevent_loop_allow_nesting(struct tevent_context *ev) _DEPRECATED_;

/** Registers a function told about every nested loop iteration. */
void tevent_loop_set_nesting_hook(struct tevent_context *ev,
				  tevent_nesting_hook hook,
				  void *private_data) _DEPRECATED_;

/** Runs iterations until finished(private_data) returns true.  Use through
 *  tevent_loop_until(). */
int _tevent_loop_until(struct tevent_context *ev,
		       bool (*finished)(void *private_data),
		       void *private_data,
		       const char *location) _DEPRECATED_;
#define tevent_loop_until(ev, finished, private_data) \
	_tevent_loop_until(ev, finished, private_data, __location__)
#endif /* TEVENT_DEPRECATED */

/* ------------------------------------------------------------------------
 * Debug output and tracing
 * ------------------------------------------------------------------------ */

/** Severity of a library debug message, most severe first. */
enum tevent_debug_level {
	TEVENT_DEBUG_FATAL = 0,
	TEVENT_DEBUG_ERROR = 1,
	TEVENT_DEBUG_WARNING = 2,
	TEVENT_DEBUG_TRACE = 3
};

/** Receives one formatted library debug message. */
typedef void (*tevent_debug_fn)(void *context,
				enum tevent_debug_level level,
				const char *fmt,
				va_list ap) PRINTF_ATTRIBUTE(3,0);

/** Routes the debug messages of ev to debug (NULL disables them).  Also
 *  resets the maximum level: TEVENT_DEBUG_TRACE (everything) with a
 *  function, TEVENT_DEBUG_FATAL without one.  Returns 0; on a wrapper
 *  context it calls tevent_abort() and returns -1 with errno EINVAL. */
int tevent_set_debug(struct tevent_context *ev,
		     tevent_debug_fn debug,
		     void *context);

/** Limits the messages passed to the debug function to max_level and the
 *  levels above it.  Returns the previous limit. */
enum tevent_debug_level
tevent_set_max_debug_level(struct tevent_context *ev,
			   enum tevent_debug_level max_level);

/** Sends fatal, error and warning messages of ev to stderr. */
int tevent_set_debug_stderr(struct tevent_context *ev);

/** Points in a loop iteration reported to a trace callback. */
enum tevent_trace_point {
	/** about to wait for events */
	TEVENT_TRACE_BEFORE_WAIT = 0,
	/** waiting is over */
	TEVENT_TRACE_AFTER_WAIT = 1,
#define TEVENT_HAS_LOOP_ONCE_TRACE_POINTS 1
	/** an iteration of the backend starts */
	TEVENT_TRACE_BEFORE_LOOP_ONCE = 2,
	/** an iteration of the backend has finished */
	TEVENT_TRACE_AFTER_LOOP_ONCE = 3,
};

/** Receives loop trace points. */
typedef void (*tevent_trace_callback_t)(enum tevent_trace_point,
					void *private_data);

/** Installs the loop trace callback of ev (NULL removes it). */
void tevent_set_trace_callback(struct tevent_context *ev,
			       tevent_trace_callback_t cb,
			       void *private_data);

/** Reports the installed loop trace callback; private_data is really a
 *  void ** that receives its argument.  Lets a caller chain to it. */
void tevent_get_trace_callback(struct tevent_context *ev,
			       tevent_trace_callback_t *cb,
			       void *private_data);

/** Moments in the life of a single event reported to event trace callbacks. */
enum tevent_event_trace_point {
	/** the event is being added to a context */
	TEVENT_EVENT_TRACE_ATTACH = 0,
	/** the event is being removed from its context */
	TEVENT_EVENT_TRACE_DETACH = 1,
	/** the event's handler is about to run */
	TEVENT_EVENT_TRACE_BEFORE_HANDLER = 2,
};

/** Per event type trace callbacks. */
typedef void (*tevent_trace_fd_callback_t)(struct tevent_fd *fde,
					   enum tevent_event_trace_point,
					   void *private_data);
typedef void (*tevent_trace_signal_callback_t)(struct tevent_signal *se,
					       enum tevent_event_trace_point,
					       void *private_data);
typedef void (*tevent_trace_timer_callback_t)(struct tevent_timer *te,
					      enum tevent_event_trace_point,
					      void *private_data);
typedef void (*tevent_trace_immediate_callback_t)(struct tevent_immediate *im,
						  enum tevent_event_trace_point,
						  void *private_data);
typedef void (*tevent_trace_queue_callback_t)(struct tevent_queue_entry *qe,
					      enum tevent_event_trace_point,
					      void *private_data);

/* Each setter installs (NULL removes) the callback for one event type on
 * ev; each getter stores the installed callback in *cb and its argument in
 * the void ** passed as p_private_data. */
void tevent_set_trace_fd_callback(struct tevent_context *ev,
				  tevent_trace_fd_callback_t cb,
				  void *private_data);
void tevent_get_trace_fd_callback(struct tevent_context *ev,
				  tevent_trace_fd_callback_t *cb,
				  void *p_private_data);
void tevent_set_trace_signal_callback(struct tevent_context *ev,
				      tevent_trace_signal_callback_t cb,
				      void *private_data);
void tevent_get_trace_signal_callback(struct tevent_context *ev,
				      tevent_trace_signal_callback_t *cb,
				      void *p_private_data);
void tevent_set_trace_timer_callback(struct tevent_context *ev,
				     tevent_trace_timer_callback_t cb,
				     void *private_data);
void tevent_get_trace_timer_callback(struct tevent_context *ev,
				     tevent_trace_timer_callback_t *cb,
				     void *p_private_data);
void tevent_set_trace_immediate_callback(struct tevent_context *ev,
					 tevent_trace_immediate_callback_t cb,
					 void *private_data);
void tevent_get_trace_immediate_callback(struct tevent_context *ev,
					 tevent_trace_immediate_callback_t *cb,
					 void *p_private_data);
void tevent_set_trace_queue_callback(struct tevent_context *ev,
				     tevent_trace_queue_callback_t cb,
				     void *private_data);
void tevent_get_trace_queue_callback(struct tevent_context *ev,
				     tevent_trace_queue_callback_t *cb,
				     void *p_private_data);

/* ------------------------------------------------------------------------
 * Asynchronous requests
 *
 * A request (struct tevent_req) stands for one asynchronous computation.
 * Its implementation creates it in foo_send() with tevent_req_create(),
 * finishes it with tevent_req_done() or tevent_req_error(), and the caller
 * picks up the result in foo_recv() after its callback ran.  The caller
 * owns the request and frees it when done; freeing it early aborts it.
 * ------------------------------------------------------------------------ */

/** Life cycle of a request; every state from TEVENT_REQ_DONE on means the
 *  request has finished. */
enum tevent_req_state {
	/** being set up */
	TEVENT_REQ_INIT = 0,
	/** running */
	TEVENT_REQ_IN_PROGRESS = 1,
	/** finished successfully */
	TEVENT_REQ_DONE = 2,
	/** finished with the error given to tevent_req_error() */
	TEVENT_REQ_USER_ERROR = 3,
	/** the end time set with tevent_req_set_endtime() passed */
	TEVENT_REQ_TIMED_OUT = 4,
	/** an allocation failed (see tevent_req_nomem()) */
	TEVENT_REQ_NO_MEMORY = 5,
	/** tevent_req_received() was called; the state data is gone */
	TEVENT_REQ_RECEIVED = 6
};

/** Completion callback; receives the finished request. */
typedef void (*tevent_req_fn)(struct tevent_req *subreq);

/** Produces a talloc string (child of ctx) describing req. */
typedef char *(*tevent_req_print_fn)(struct tevent_req *req, TALLOC_CTX *ctx);

/** Asks the implementation to abort req; true if the request can be
 *  cancelled (it still has to finish through the usual path). */
typedef bool (*tevent_req_cancel_fn)(struct tevent_req *req);

/** Runs once when req finishes (before its callback) and again when the
 *  state data goes away; req_state tells which. */
typedef void (*tevent_req_cleanup_fn)(struct tevent_req *req,
				      enum tevent_req_state req_state);

/** Sets the function called when req finishes, with pvt as its data.
 *  Use through tevent_req_set_callback(), which also records the name. */
void tevent_req_set_callback(struct tevent_req *req, tevent_req_fn fn, void *pvt);
void _tevent_req_set_callback(struct tevent_req *req,
			      tevent_req_fn fn,
			      const char *fn_name,
			      void *pvt);
#define tevent_req_set_callback(req, fn, pvt) \
	_tevent_req_set_callback(req, fn, #fn, pvt)

/** Returns the data given to tevent_req_set_callback(); the typed variant
 *  checks the talloc type and aborts on a mismatch. */
void *_tevent_req_callback_data(struct tevent_req *req);
#define tevent_req_callback_data(_req, _type) \
	talloc_get_type_abort(_tevent_req_callback_data(_req), _type)
#define tevent_req_callback_data_void(_req) \
	_tevent_req_callback_data(_req)

/** Returns the state allocated by tevent_req_create(), type checked. */
void *_tevent_req_data(struct tevent_req *req);
#define tevent_req_data(_req, _type) \
	talloc_get_type_abort(_tevent_req_data(_req), _type)

/** Replaces the function tevent_req_print() uses for req (debugging aid). */
void tevent_req_set_print_fn(struct tevent_req *req, tevent_req_print_fn fn);

/** Built-in description of req; custom print functions may extend it. */
char *tevent_req_default_print(struct tevent_req *req, TALLOC_CTX *mem_ctx);

/** Describes req as a talloc string under mem_ctx. */
char *tevent_req_print(TALLOC_CTX *mem_ctx, struct tevent_req *req);

/** Sets the function tevent_req_cancel() calls.  Use through
 *  tevent_req_set_cancel_fn(), which also records the name. */
void tevent_req_set_cancel_fn(struct tevent_req *req, tevent_req_cancel_fn fn);
void _tevent_req_set_cancel_fn(struct tevent_req *req,
			       tevent_req_cancel_fn fn,
			       const char *fn_name);
#define tevent_req_set_cancel_fn(req, fn) \
	_tevent_req_set_cancel_fn(req, fn, #fn)

/** Asks req to cancel itself through its cancel function; false if it has
 *  none.  The caller still waits for the normal completion.  Use through
 *  tevent_req_cancel(). */
bool _tevent_req_cancel(struct tevent_req *req, const char *location);
#define tevent_req_cancel(req) \
	_tevent_req_cancel(req, __location__)

/** Sets the cleanup function of req.  Use through
 *  tevent_req_set_cleanup_fn(), which also records the name. */
void tevent_req_set_cleanup_fn(struct tevent_req *req, tevent_req_cleanup_fn fn);
void _tevent_req_set_cleanup_fn(struct tevent_req *req,
				tevent_req_cleanup_fn fn,
				const char *fn_name);
#define tevent_req_set_cleanup_fn(req, fn) \
	_tevent_req_set_cleanup_fn(req, fn, #fn)

/** Creates a request in TEVENT_REQ_IN_PROGRESS as a talloc child of
 *  mem_ctx, plus a zeroed state of state_size bytes (named type) as its
 *  child; *pstate (really a TYPE **) receives the state.  Use through
 *  tevent_req_create(mem_ctx, &state, struct foo_state). */
struct tevent_req *_tevent_req_create(TALLOC_CTX *mem_ctx,
				      void *pstate,
				      size_t state_size,
				      const char *type,
				      const char *location);
/** Same, also recording the creating function's name for flow tracing. */
struct tevent_req *__tevent_req_create(TALLOC_CTX *mem_ctx,
				       void *pstate,
				       size_t state_size,
				       const char *type,
				       const char *func,
				       const char *location);
#define tevent_req_create(_mem_ctx, _pstate, _type) \
	__tevent_req_create((_mem_ctx), (_pstate), sizeof(_type), \
			    #_type, __func__, __location__)

/** Makes req fail with TEVENT_REQ_TIMED_OUT at the absolute time endtime
 *  unless it finishes first.  false (and req marked out of memory) if the
 *  timer could not be created. */
bool tevent_req_set_endtime(struct tevent_req *req,
			    struct tevent_context *ev,
			    struct timeval endtime);

/** Removes the end time set by tevent_req_set_endtime(). */
void tevent_req_reset_endtime(struct tevent_req *req);

/** Calls the completion callback of req now.  Use through
 *  tevent_req_notify_callback(). */
void _tevent_req_notify_callback(struct tevent_req *req, const char *location);
#define tevent_req_notify_callback(req) \
	_tevent_req_notify_callback(req, __location__)

/** Finishes req successfully and runs its callback, which may free req:
 *  make this the last thing that touches req.  Use through
 *  tevent_req_done(). */
void _tevent_req_done(struct tevent_req *req,
		      const char *location);
#define tevent_req_done(req) \
	_tevent_req_done(req, __location__)

/** Finishes req with a non-zero error code and runs its callback; returns
 *  true in that case.  With error 0 nothing happens and false comes back,
 *  so "if (tevent_req_error(req, ret)) return;" works.  Use through
 *  tevent_req_error(). */
bool _tevent_req_error(struct tevent_req *req,
		       uint64_t error,
		       const char *location);
#define tevent_req_error(req, error) \
	_tevent_req_error(req, error, __location__)

/** If p is NULL, finishes req with TEVENT_REQ_NO_MEMORY and returns true;
 *  otherwise returns false.  Use through tevent_req_nomem(). */
bool _tevent_req_nomem(const void *p,
		       struct tevent_req *req,
		       const char *location);
#define tevent_req_nomem(p, req) \
	_tevent_req_nomem(p, req, __location__)

/** Finishes req with TEVENT_REQ_NO_MEMORY.  Use through tevent_req_oom(). */
void _tevent_req_oom(struct tevent_req *req,
		     const char *location);
#define tevent_req_oom(req) \
	_tevent_req_oom(req, __location__)

/** For a request that finished inside foo_send(): delays its callback to
 *  an immediate event on ev so the caller can still set one.  Returns req,
 *  so "return tevent_req_post(req, ev);" works. */
struct tevent_req *tevent_req_post(struct tevent_req *req,
				   struct tevent_context *ev);

/** Makes the coming completion of req run its callback from an immediate
 *  event on ev instead of directly; useful when finishing several
 *  requests in a row. */
void tevent_req_defer_callback(struct tevent_req *req,
			       struct tevent_context *ev);

/** true while req has not finished. */
bool tevent_req_is_in_progress(struct tevent_req *req);

/** Runs the loop of ev until req finishes.  false only if the loop itself
 *  failed; the request's own result comes from its _recv function.  Meant
 *  for synchronous wrappers that own ev. */
bool tevent_req_poll(struct tevent_req *req,
		     struct tevent_context *ev);

/** false only if req finished successfully.  Otherwise true, with *state
 *  set to the current state and, for TEVENT_REQ_USER_ERROR, *error set to
 *  the code given to tevent_req_error(). */
bool tevent_req_is_error(struct tevent_req *req,
			 enum tevent_req_state *state,
			 uint64_t *error);

/** Marks req as consumed and frees its state; the last step of a _recv
 *  function. */
void tevent_req_received(struct tevent_req *req);

/* ------------------------------------------------------------------------
 * Request profiling
 * ------------------------------------------------------------------------ */

/** Starts recording a profile for req and for the subrequests created
 *  below its state.  false if that could not be set up. */
bool tevent_req_set_profile(struct tevent_req *req);

/** Returns the profile of req (owned by req), or NULL. */
const struct tevent_req_profile *tevent_req_get_profile(
	struct tevent_req *req);

/** Detaches the profile from req and reparents it to mem_ctx. */
struct tevent_req_profile *tevent_req_move_profile(struct tevent_req *req,
						   TALLOC_CTX *mem_ctx);

/* Accessors; returned strings stay owned by the profile. */
void tevent_req_profile_get_name(const struct tevent_req_profile *profile,
				 const char **req_name);
void tevent_req_profile_get_start(const struct tevent_req_profile *profile,
				  const char **start_location,
				  struct timeval *start_time);
void tevent_req_profile_get_stop(const struct tevent_req_profile *profile,
				 const char **stop_location,
				 struct timeval *stop_time);
void tevent_req_profile_get_status(const struct tevent_req_profile *profile,
				   pid_t *pid,
				   enum tevent_req_state *state,
				   uint64_t *user_error);

/** First profile of the subrequests of profile, or NULL. */
const struct tevent_req_profile *tevent_req_profile_get_subprofiles(
	const struct tevent_req_profile *profile);

/** Next sibling in a list of subprofiles, or NULL. */
const struct tevent_req_profile *tevent_req_profile_next(
	const struct tevent_req_profile *profile);

/** Creates an empty profile under mem_ctx (for building profiles by hand). */
struct tevent_req_profile *tevent_req_profile_create(TALLOC_CTX *mem_ctx);

/* Setters; the string arguments are copied, false means out of memory. */
bool tevent_req_profile_set_name(struct tevent_req_profile *profile,
				 const char *name);
bool tevent_req_profile_set_start(struct tevent_req_profile *profile,
				  const char *start_location,
				  struct timeval start_time);
bool tevent_req_profile_set_stop(struct tevent_req_profile *profile,
				 const char *stop_location,
				 struct timeval stop_time);
void tevent_req_profile_set_status(struct tevent_req_profile *profile,
				   pid_t pid,
				   enum tevent_req_state state,
				   uint64_t user_error);

/** Moves *sub_profile (talloc wise) into the subprofile list of
 *  parent_profile and sets *sub_profile to NULL. */
void tevent_req_profile_append_sub(struct tevent_req_profile *parent_profile,
				   struct tevent_req_profile **sub_profile);

/* ------------------------------------------------------------------------
 * Wakeup requests
 * ------------------------------------------------------------------------ */

/** A request that finishes successfully at the absolute time wakeup_time. */
struct tevent_req *tevent_wakeup_send(TALLOC_CTX *mem_ctx,
				      struct tevent_context *ev,
				      struct timeval wakeup_time);

/** Result of tevent_wakeup_send(): true if the time was reached. */
bool tevent_wakeup_recv(struct tevent_req *req);

/* ------------------------------------------------------------------------
 * Time and process helpers
 * ------------------------------------------------------------------------ */

/** Orders two times: -1, 0 or 1 as tv1 is before, equal to or after tv2. */
int tevent_timeval_compare(const struct timeval *tv1,
			   const struct timeval *tv2);

/** The all-zero time. */
struct timeval tevent_timeval_zero(void);

/** The current wall clock time. */
struct timeval tevent_timeval_current(void);

/** A time built from seconds and microseconds. */
struct timeval tevent_timeval_set(uint32_t secs, uint32_t usecs);

/** How long from tv1 until tv2; zero if tv2 is not later than tv1. */
struct timeval tevent_timeval_until(const struct timeval *tv1,
				    const struct timeval *tv2);

/** true if tv is the all-zero time. */
bool tevent_timeval_is_zero(const struct timeval *tv);

/** tv moved forward by secs seconds and usecs microseconds. */
struct timeval tevent_timeval_add(const struct timeval *tv, uint32_t secs,
				  uint32_t usecs);

/** The current time plus the given offset; handy for tevent_add_timer(). */
struct timeval tevent_timeval_current_ofs(uint32_t secs, uint32_t usecs);

/** getpid() without a system call per use; stays right across fork(). */
pid_t tevent_cached_getpid(void);

/* ------------------------------------------------------------------------
 * Call depth and request flow tracking
 *
 * Each request remembers how deep below a tracked top level request it
 * was created.  A per thread callback is told when requests are created,
 * finish, pass through queues and so on, together with that depth, which
 * lets a logger indent its output by the request nesting.
 * ------------------------------------------------------------------------ */

/** What happened to a request, as reported to the flow callback. */
enum tevent_thread_call_depth_cmd {
	TEVENT_CALL_FLOW_REQ_RESET = 0,
	TEVENT_CALL_FLOW_REQ_CREATE = 1,
	TEVENT_CALL_FLOW_REQ_CANCEL = 2,
	TEVENT_CALL_FLOW_REQ_CLEANUP = 3,
	TEVENT_CALL_FLOW_REQ_NOTIFY_CB = 4,
	TEVENT_CALL_FLOW_REQ_QUEUE_ENTER = 5,
	TEVENT_CALL_FLOW_REQ_QUEUE_TRIGGER = 6,
	TEVENT_CALL_FLOW_REQ_QUEUE_LEAVE = 7,
};

/** Flow callback: cmd happened to req, which sits at call depth depth;
 *  fname names the function involved (creator, callback, trigger...). */
typedef void (*tevent_call_depth_callback_t)(
	void *private_data,
	enum tevent_thread_call_depth_cmd cmd,
	struct tevent_req *req,
	size_t depth,
	const char *fname);

/** The calling thread's registered flow callback. */
struct tevent_thread_call_depth_state {
	tevent_call_depth_callback_t cb;
	void *cb_private;
};

extern __thread struct tevent_thread_call_depth_state
	tevent_thread_call_depth_state_g;

/** Registers the flow callback of the calling thread; NULL turns flow
 *  tracking off.  Do not combine with the deprecated activate/start API. */
void tevent_thread_call_depth_set_callback(tevent_call_depth_callback_t f,
					   void *private_data);

#ifdef TEVENT_DEPRECATED
/** Old interface: keep the current depth in *ptr for the calling thread. */
void tevent_thread_call_depth_activate(size_t *ptr) _DEPRECATED_;
/** Old interface: stop updating the variable given to ..._activate(). */
void tevent_thread_call_depth_deactivate(void) _DEPRECATED_;
/** Old interface: make req a tracked top level request (depth 1). */
void tevent_thread_call_depth_start(struct tevent_req *req) _DEPRECATED_;
#endif /* TEVENT_DEPRECATED */

/** Reports the depth of req as the current one again (for instance after
 *  creating subrequests).  Use through
 *  tevent_thread_call_depth_reset_from_req(), which passes __func__. */
void tevent_thread_call_depth_reset_from_req(struct tevent_req *req);
void _tevent_thread_call_depth_reset_from_req(struct tevent_req *req,
					      const char *fname);
#define tevent_thread_call_depth_reset_from_req(req) \
	_tevent_thread_call_depth_reset_from_req(req, __func__)

/* ------------------------------------------------------------------------
 * Queues
 *
 * A queue runs requests one at a time in the order they were added: the
 * trigger of an entry runs once it reaches the head (and the queue is
 * running), and the entry leaves the queue when it is freed: normally with
 * its request, after the caller received the result.  Finishing a request
 * alone does not move the queue on.
 * ------------------------------------------------------------------------ */

/** Creates a running, empty queue under mem_ctx.  Use through
 *  tevent_queue_create(). */
struct tevent_queue *_tevent_queue_create(TALLOC_CTX *mem_ctx,
					  const char *name,
					  const char *location);
#define tevent_queue_create(_mem_ctx, _name) \
	_tevent_queue_create((_mem_ctx), (_name), __location__)

/** Starts the work of req when its entry reaches the head of the queue. */
typedef void (*tevent_queue_trigger_fn_t)(struct tevent_req *req,
					  void *private_data);

/** Appends req to queue; trigger (may be NULL for a pure place holder)
 *  runs from an immediate event on ev.  false on allocation failure.
 *  Use through tevent_queue_add(), which also records the trigger name. */
bool tevent_queue_add(struct tevent_queue *queue,
		      struct tevent_context *ev,
		      struct tevent_req *req,
		      tevent_queue_trigger_fn_t trigger,
		      void *private_data);
bool _tevent_queue_add(struct tevent_queue *queue,
		       struct tevent_context *ev,
		       struct tevent_req *req,
		       tevent_queue_trigger_fn_t trigger,
		       const char *trigger_name,
		       void *private_data);
#define tevent_queue_add(queue, ev, req, trigger, private_data) \
	_tevent_queue_add(queue, ev, req, trigger, #trigger, private_data)

/** Like tevent_queue_add() but returns the entry, which may be freed to
 *  leave the queue early; NULL on failure. */
struct tevent_queue_entry *tevent_queue_add_entry(
					struct tevent_queue *queue,
					struct tevent_context *ev,
					struct tevent_req *req,
					tevent_queue_trigger_fn_t trigger,
					void *private_data);
struct tevent_queue_entry *_tevent_queue_add_entry(
					struct tevent_queue *queue,
					struct tevent_context *ev,
					struct tevent_req *req,
					tevent_queue_trigger_fn_t trigger,
					const char *trigger_name,
					void *private_data);
#define tevent_queue_add_entry(queue, ev, req, trigger, private_data) \
	_tevent_queue_add_entry(queue, ev, req, trigger, #trigger, private_data)

/** Like tevent_queue_add_entry(), but when the queue is running and empty
 *  the trigger runs at once, inside this call; be ready for req to have
 *  finished already when it returns. */
struct tevent_queue_entry *tevent_queue_add_optimize_empty(
					struct tevent_queue *queue,
					struct tevent_context *ev,
					struct tevent_req *req,
					tevent_queue_trigger_fn_t trigger,
					void *private_data);
struct tevent_queue_entry *_tevent_queue_add_optimize_empty(
					struct tevent_queue *queue,
					struct tevent_context *ev,
					struct tevent_req *req,
					tevent_queue_trigger_fn_t trigger,
					const char *trigger_name,
					void *private_data);
#define tevent_queue_add_optimize_empty(queue, ev, req, trigger, private_data) \
	_tevent_queue_add_optimize_empty(queue, ev, req, trigger, #trigger, private_data)

/** Lets an already triggered head entry be triggered again later.  Only
 *  valid on the head entry of a stopped queue; anything else aborts. */
void tevent_queue_entry_untrigger(struct tevent_queue_entry *entry);

/** Stores an arbitrary caller defined value on a queue entry. */
void tevent_queue_entry_set_tag(struct tevent_queue_entry *qe, uint64_t tag);

/** Returns the value stored with tevent_queue_entry_set_tag() (0 if none). */
uint64_t tevent_queue_entry_get_tag(const struct tevent_queue_entry *qe);

/** Lets the queue trigger its head entry again (queues start running). */
void tevent_queue_start(struct tevent_queue *queue);

/** Stops triggering entries; entries stay queued. */
void tevent_queue_stop(struct tevent_queue *queue);

/** Number of entries in the queue, including a triggered head. */
size_t tevent_queue_length(struct tevent_queue *queue);

/** true unless the queue was stopped. */
bool tevent_queue_running(struct tevent_queue *queue);

/** A request that finishes when it reaches the head of queue; freeing it
 *  afterwards lets the queue move on. */
struct tevent_req *tevent_queue_wait_send(TALLOC_CTX *mem_ctx,
					  struct tevent_context *ev,
					  struct tevent_queue *queue);

/** Result of tevent_queue_wait_send(): true once the head was reached. */
bool tevent_queue_wait_recv(struct tevent_req *req);

/* ------------------------------------------------------------------------
 * Threads
 * ------------------------------------------------------------------------ */

/** Creates a proxy through which other threads can schedule immediates on
 *  dest_ev_ctx.  NULL with errno ENOSYS without thread support. */
struct tevent_thread_proxy *tevent_thread_proxy_create(
		struct tevent_context *dest_ev_ctx);

/** From any thread: hands *pp_im and the talloc memory *pp_private_data
 *  (may be NULL) over to the thread running the proxy's context, where
 *  handler runs.  Both pointers are set to NULL; the caller must not touch
 *  the objects again. */
void tevent_thread_proxy_schedule(struct tevent_thread_proxy *tp,
				  struct tevent_immediate **pp_im,
				  tevent_immediate_handler_t handler,
				  void *pp_private_data);

/** Creates a handle (child of mem_ctx) that other threads use to schedule
 *  immediates on ev.  ev must outlive it.  NULL with errno on failure. */
struct tevent_threaded_context *tevent_threaded_context_create(
	TALLOC_CTX *mem_ctx, struct tevent_context *ev);

/** From any thread: makes im run handler in the thread owning the context
 *  behind tctx.  im must not be scheduled already; it and private_data now
 *  belong to that thread.  Use through tevent_threaded_schedule_immediate(). */
void _tevent_threaded_schedule_immediate(struct tevent_threaded_context *tctx,
					 struct tevent_immediate *im,
					 tevent_immediate_handler_t handler,
					 void *private_data,
					 const char *handler_name,
					 const char *location);
#define tevent_threaded_schedule_immediate(tctx, im, handler, private_data) \
	_tevent_threaded_schedule_immediate(tctx, im, handler, private_data, \
				   #handler, __location__);

/* ------------------------------------------------------------------------
 * Backends
 *
 * Only needed to implement an event backend of one's own.
 * ------------------------------------------------------------------------ */

/** The operations a backend provides. */
struct tevent_ops {
	/* set up the backend state of a new context */
	int (*context_init)(struct tevent_context *ev);

	/* fd events */
	struct tevent_fd *(*add_fd)(struct tevent_context *ev,
				    TALLOC_CTX *mem_ctx,
				    int fd, uint16_t flags,
				    tevent_fd_handler_t handler,
				    void *private_data,
				    const char *handler_name,
				    const char *location);
	void (*set_fd_close_fn)(struct tevent_fd *fde,
				tevent_fd_close_fn_t close_fn);
	uint16_t (*get_fd_flags)(struct tevent_fd *fde);
	void (*set_fd_flags)(struct tevent_fd *fde, uint16_t flags);

	/* timers */
	struct tevent_timer *(*add_timer)(struct tevent_context *ev,
					  TALLOC_CTX *mem_ctx,
					  struct timeval next_event,
					  tevent_timer_handler_t handler,
					  void *private_data,
					  const char *handler_name,
					  const char *location);

	/* immediates */
	void (*schedule_immediate)(struct tevent_immediate *im,
				   struct tevent_context *ev,
				   tevent_immediate_handler_t handler,
				   void *private_data,
				   const char *handler_name,
				   const char *location);

	/* signals */
	struct tevent_signal *(*add_signal)(struct tevent_context *ev,
					    TALLOC_CTX *mem_ctx,
					    int signum, int sa_flags,
					    tevent_signal_handler_t handler,
					    void *private_data,
					    const char *handler_name,
					    const char *location);

	/* running the loop */
	int (*loop_once)(struct tevent_context *ev, const char *location);
	int (*loop_wait)(struct tevent_context *ev, const char *location);
};

/** Makes ops available under name (to tevent_context_init_byname() and
 *  tevent_set_default_backend()).  ops must stay valid; a name that is
 *  already registered keeps its first ops.  false if memory ran out. */
bool tevent_register_backend(const char *name, const struct tevent_ops *ops);

/** Looks up a registered backend; NULL selects the default one.  NULL if
 *  there is no such backend. */
const struct tevent_ops *tevent_find_ops_byname(const char *name);

/* ------------------------------------------------------------------------
 * Wrapper contexts (deprecated)
 *
 * A wrapper context shares the loop of a main context but calls hooks
 * around every handler it runs, e.g. to switch credentials.  Close
 * functions of fd events are not wrapped.
 * ------------------------------------------------------------------------ */

#ifdef TEVENT_DEPRECATED

/** Hooks of a wrapper context, called with its private state. */
struct tevent_wrapper_ops {
	const char *name;

	bool (*before_use)(struct tevent_context *wrap_ev,
			   void *private_state,
			   struct tevent_context *main_ev,
			   const char *location);
	void (*after_use)(struct tevent_context *wrap_ev,
			  void *private_state,
			  struct tevent_context *main_ev,
			  const char *location);

	void (*before_fd_handler)(struct tevent_context *wrap_ev,
				  void *private_state,
				  struct tevent_context *main_ev,
				  struct tevent_fd *fde,
				  uint16_t flags,
				  const char *handler_name,
				  const char *location);
	void (*after_fd_handler)(struct tevent_context *wrap_ev,
				 void *private_state,
				 struct tevent_context *main_ev,
				 struct tevent_fd *fde,
				 uint16_t flags,
				 const char *handler_name,
				 const char *location);

	void (*before_timer_handler)(struct tevent_context *wrap_ev,
				     void *private_state,
				     struct tevent_context *main_ev,
				     struct tevent_timer *te,
				     struct timeval requested_time,
				     struct timeval trigger_time,
				     const char *handler_name,
				     const char *location);
	void (*after_timer_handler)(struct tevent_context *wrap_ev,
				    void *private_state,
				    struct tevent_context *main_ev,
				    struct tevent_timer *te,
				    struct timeval requested_time,
				    struct timeval trigger_time,
				    const char *handler_name,
				    const char *location);

	void (*before_immediate_handler)(struct tevent_context *wrap_ev,
					 void *private_state,
					 struct tevent_context *main_ev,
					 struct tevent_immediate *im,
					 const char *handler_name,
					 const char *location);
	void (*after_immediate_handler)(struct tevent_context *wrap_ev,
					void *private_state,
					struct tevent_context *main_ev,
					struct tevent_immediate *im,
					const char *handler_name,
					const char *location);

	void (*before_signal_handler)(struct tevent_context *wrap_ev,
				      void *private_state,
				      struct tevent_context *main_ev,
				      struct tevent_signal *se,
				      int signum,
				      int count,
				      void *siginfo,
				      const char *handler_name,
				      const char *location);
	void (*after_signal_handler)(struct tevent_context *wrap_ev,
				     void *private_state,
				     struct tevent_context *main_ev,
				     struct tevent_signal *se,
				     int signum,
				     int count,
				     void *siginfo,
				     const char *handler_name,
				     const char *location);
};

/** Creates a wrapper of main_ev under mem_ctx with a zeroed private state
 *  of psize bytes named type, returned through pstate (a TYPE **).  Use
 *  through tevent_context_wrapper_create(main_ev, mem_ctx, ops, &state,
 *  struct foo_state). */
struct tevent_context *_tevent_context_wrapper_create(struct tevent_context *main_ev,
						TALLOC_CTX *mem_ctx,
						const struct tevent_wrapper_ops *ops,
						void *pstate,
						size_t psize,
						const char *type,
						const char *location) _DEPRECATED_;
#define tevent_context_wrapper_create(main_ev, mem_ctx, ops, state, type) \
	_tevent_context_wrapper_create(main_ev, mem_ctx, ops, \
				       state, sizeof(type), #type, __location__)

/** true if ev was made by tevent_context_wrapper_create(). */
bool tevent_context_is_wrapper(struct tevent_context *ev) _DEPRECATED_;

/** Enters the environment of ev (its before_use hook) before using it
 *  outside a handler.  On true, tevent_context_pop_use() must follow in
 *  the same block, in strict stack order; on false do not pop.  Use
 *  through tevent_context_push_use(). */
bool _tevent_context_push_use(struct tevent_context *ev,
			      const char *location) _DEPRECATED_;
#define tevent_context_push_use(ev) \
	_tevent_context_push_use(ev, __location__)

/** Leaves the environment entered by tevent_context_push_use().  Use
 *  through tevent_context_pop_use(). */
void _tevent_context_pop_use(struct tevent_context *ev,
			     const char *location) _DEPRECATED_;
#define tevent_context_pop_use(ev) \
	_tevent_context_pop_use(ev, __location__)

/** true if both contexts (wrappers or not) run on the same main loop. */
bool tevent_context_same_loop(struct tevent_context *ev1,
			      struct tevent_context *ev2) _DEPRECATED_;

#endif /* TEVENT_DEPRECATED */

/* ------------------------------------------------------------------------
 * Names from the days before tevent (only with TEVENT_COMPAT_DEFINES)
 * ------------------------------------------------------------------------ */

#ifdef TEVENT_COMPAT_DEFINES

#define event_context		tevent_context
#define event_ops		tevent_ops
#define fd_event		tevent_fd
#define timed_event		tevent_timer
#define signal_event		tevent_signal

#define event_fd_handler_t	tevent_fd_handler_t
#define event_timed_handler_t	tevent_timer_handler_t
#define event_signal_handler_t	tevent_signal_handler_t

#define event_context_init(mem_ctx) \
	tevent_context_init(mem_ctx)
#define event_context_init_byname(mem_ctx, name) \
	tevent_context_init_byname(mem_ctx, name)
#define event_backend_list(mem_ctx) \
	tevent_backend_list(mem_ctx)
#define event_set_default_backend(backend) \
	tevent_set_default_backend(backend)

#define event_add_fd(ev, mem_ctx, fd, flags, handler, private_data) \
	tevent_add_fd(ev, mem_ctx, fd, flags, handler, private_data)
#define event_add_timed(ev, mem_ctx, next_event, handler, private_data) \
	tevent_add_timer(ev, mem_ctx, next_event, handler, private_data)
#define event_add_signal(ev, mem_ctx, signum, sa_flags, handler, private_data) \
	tevent_add_signal(ev, mem_ctx, signum, sa_flags, handler, private_data)

#define event_loop_once(ev) \
	tevent_loop_once(ev)
#define event_loop_wait(ev) \
	tevent_loop_wait(ev)

#define event_get_fd_flags(fde) \
	tevent_fd_get_flags(fde)
#define event_set_fd_flags(fde, flags) \
	tevent_fd_set_flags(fde, flags)

#define EVENT_FD_READ		TEVENT_FD_READ
#define EVENT_FD_WRITE		TEVENT_FD_WRITE

#define EVENT_FD_WRITEABLE(fde) \
	TEVENT_FD_WRITEABLE(fde)
#define EVENT_FD_READABLE(fde) \
	TEVENT_FD_READABLE(fde)
#define EVENT_FD_NOT_WRITEABLE(fde) \
	TEVENT_FD_NOT_WRITEABLE(fde)
#define EVENT_FD_NOT_READABLE(fde) \
	TEVENT_FD_NOT_READABLE(fde)

#define ev_debug_level		tevent_debug_level

#define EV_DEBUG_FATAL		TEVENT_DEBUG_FATAL
#define EV_DEBUG_ERROR		TEVENT_DEBUG_ERROR
#define EV_DEBUG_WARNING	TEVENT_DEBUG_WARNING
#define EV_DEBUG_TRACE		TEVENT_DEBUG_TRACE

#define ev_set_debug(ev, debug, context) \
	tevent_set_debug(ev, debug, context)
/* Upstream expands this to tevent_set_debug_stderr(ev), ignoring its
 * argument; using the argument is identical for every caller that passes
 * a variable named ev and correct for all others. */
#define ev_set_debug_stderr(_ev) tevent_set_debug_stderr(_ev)

#endif /* TEVENT_COMPAT_DEFINES */

#ifdef __cplusplus
}
#endif

#endif /* __TEVENT_H__ */

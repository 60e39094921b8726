// The C++ definitions behind tevent's opaque structs, and the interfaces the
// parts of the library use to talk to each other. Never installed: callers
// only see include/tevent.h.
#pragma once

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/time.h>

#include <atomic>

#define TEVENT_DEPRECATED 1
#include "tevent.h"
#include "tevent_common.h"
#include "util.hh"

#ifndef TEVENT_FD_ERROR
#define TEVENT_FD_ERROR 4
#endif

namespace tevent {

struct WrapperGlue;
struct Home;

// Per-event state a backend may keep (epoll: which fd slot the event hangs
// in). Opaque to the common code.
struct BackendFdHooks {
	// The fde's flags changed; the backend updates its interest set.
	void (*flags_changed)(tevent_fd *fde);
	// The fde is being unlinked (freed, or its context is going away).
	void (*detach)(tevent_fd *fde);
};

// Which built-in backend keeps bookkeeping for an fde (tevent_fd::hooks_id);
// a byte instead of a pointer keeps the fde small.
enum : uint8_t { kNoFdHooks = 0, kEpollFdHooks = 1, kPollFdHooks = 2 };
extern const BackendFdHooks epoll_fd_hooks;
extern const BackendFdHooks poll_fd_hooks;

} // namespace tevent

struct tevent_fd {
	tevent::ListHook<tevent_fd> ctx_link;   // tevent_context::fds
	union {
		tevent::ListHook<tevent_fd> slot_link{};  // epoll: per-fd list
		uint32_t poll_index;  // poll backends: slot in the pollfd array
	};
	tevent_context *event_ctx;              // null once inert
	tevent::WrapperGlue *wrapper;
	int fd;
	uint16_t flags;
	uint8_t busy;  // runs of the handler on the stack (see enter_handler_run)
	bool destroyed : 1;  // talloc destructor already ran once
	uint8_t fd_mode : 2;  // epoll: 0 not asked, 1 blocking, 2 non-blocking
	uint8_t hooks_id : 2;  // kNoFdHooks, kEpollFdHooks, kPollFdHooks
	// epoll: an error, hangup or half-close was reported on the
	// descriptor; from then on writers alone are not watched (upstream's
	// GOT_ERROR, kept as long as the fde lives).
	bool error_seen : 1;
	tevent_fd_handler_t handler;
	tevent_fd_close_fn_t close_fn;
	void *private_data;
	const char *handler_name;
	const char *location;
	uint64_t tag;

	// The backend bookkeeping hooks, or null.
	const tevent::BackendFdHooks *hooks() const
	{
		return hooks_id == tevent::kEpollFdHooks ? &tevent::epoll_fd_hooks
		       : hooks_id == tevent::kPollFdHooks ? &tevent::poll_fd_hooks
							  : nullptr;
	}

	int on_talloc_free();
};

struct tevent_timer {
	tevent_context *event_ctx;
	tevent::WrapperGlue *wrapper;
	uint16_t busy;  // runs of the handler on the stack
	bool destroyed;
	// Where the context's TimerQueue holds it (timer_queue.hh), or
	// kNoSlot. 32 bits keep a timer (with its slot) no bigger than
	// upstream's, see bench/.
	uint32_t slot;
	struct timeval next_event;
	uint64_t seq;          // rank and insertion order (TimerQueue::Rank)
	tevent_timer_handler_t handler;
	void *private_data;
	const char *handler_name;
	const char *location;
	uint64_t tag;

	void detach();
	void retire();  // detach() without the debug message
	int on_talloc_free();
};

#include "timer_queue.hh"

struct tevent_thread_proxy;

struct tevent_immediate {
	tevent::ListHook<tevent_immediate> link;
	tevent_context *event_ctx;
	tevent::WrapperGlue *wrapper;
	uint16_t busy;  // runs of the handler on the stack
	bool destroyed;
	// Once spent it may go back to the thread that sent it
	// (send_home()): set on a threaded-context immediate when it arrives
	// (it goes home if its handler frees it), and on a proxy message the
	// library releases after its handler.
	bool go_home;
	// Created by the library for itself (a queue's trigger, a request's
	// post) and never handed to a caller: nobody can have cleared its
	// talloc destructor, so scheduling need not arm it again.
	bool library_owned;
	// Handed to a loop by tevent_threaded_schedule_immediate() and not
	// picked up yet: freeing it now is a fatal error.
	std::atomic<bool> in_transit;
	// Set while the handler runs and the immediate was taken off the list:
	// the DETACH trace point is owed to this context.
	tevent_context *detach_ev_ctx;
	tevent_immediate_handler_t handler;
	void *private_data;
	const char *handler_name;
	const char *create_location;
	const char *schedule_location;
	uint64_t tag;
	// Link used while travelling through a cross-thread queue.
	std::atomic<tevent_immediate *> mt_next;
	// Set on a thread proxy message waiting on its loop: its handler runs
	// through proxy_deliver(), which cleans up after it.
	tevent_thread_proxy *proxy;
	// The sending thread's Home (spent.cc), set when sent across threads:
	// where the memory goes back to once the immediate is spent.
	tevent::Home *home;

	int on_talloc_free();
};

// With talloc's header and malloc's, 120 bytes make a 224-byte chunk, as
// upstream's immediate does; one word more would cost 16 bytes each
// (bench/: memory case).
static_assert(sizeof(tevent_immediate) <= 120,
	      "tevent_immediate outgrew its memory budget");

struct tevent_signal {
	tevent::ListHook<tevent_signal> ctx_link;
	tevent::ListHook<tevent_signal> sig_link;  // global per-signum list
	tevent_context *event_ctx;
	tevent::WrapperGlue *wrapper;
	uint16_t busy;  // runs of the handler on the stack
	bool destroyed;
	bool registered;  // on the global per-signum list
	int signum;
	int sa_flags;
	tevent_signal_handler_t handler;
	void *private_data;
	const char *handler_name;
	const char *location;
	uint64_t tag;

	void detach();
	int on_talloc_free();
};

namespace tevent {

// Multi-producer single-consumer stack of immediates handed over by other
// threads. Producers push with one CAS; the owner takes everything at once
// and restores submission order.
class ImmediateMailbox {
public:
	// Returns true when the mailbox was empty before: only then does the
	// producer need to wake the loop.
	bool push(tevent_immediate *im)
	{
		tevent_immediate *old = head_.load(std::memory_order_relaxed);
		do {
			im->mt_next.store(old, std::memory_order_relaxed);
		} while (!head_.compare_exchange_weak(old, im,
						      std::memory_order_seq_cst,
						      std::memory_order_relaxed));
		return old == nullptr;
	}
	// Takes all entries, newest first: for callers to whom order does
	// not matter, which saves a walk over lines another thread wrote.
	tevent_immediate *take_all_unordered()
	{
		return head_.exchange(nullptr, std::memory_order_seq_cst);
	}
	// Takes all entries, oldest first.
	tevent_immediate *take_all()
	{
		tevent_immediate *list = take_all_unordered();
		tevent_immediate *rev = nullptr;
		while (list != nullptr) {
			tevent_immediate *next =
				list->mt_next.load(std::memory_order_relaxed);
			list->mt_next.store(rev, std::memory_order_relaxed);
			rev = list;
			list = next;
		}
		return rev;
	}
	bool empty() const
	{
		return head_.load(std::memory_order_seq_cst) == nullptr;
	}

private:
	std::atomic<tevent_immediate *> head_{nullptr};
};

// A lock-free hand-over point from other threads into one loop. It is
// malloc'd and reference counted because producers (threaded contexts)
// may hold it after the loop is gone; `open` and `inflight` let the owner
// shut it without a lock: producers announce themselves in `inflight`
// before looking at `open`, and the owner waits for `inflight` to drain
// after closing.
// Past this many waiting messages producers start yielding now and then.
constexpr uint32_t kDeepQueue = 1024;

struct Channel {
	enum Kind { kThreaded, kProxy };

	// Grouped by who writes what, a cache line each, so that the owner's
	// bookkeeping does not take the producers' line away from them.

	// Written by producers on every message.
	alignas(64) ImmediateMailbox queue;
	// Messages pushed since the queue was last empty (approximate).
	std::atomic<uint32_t> waiting;

	// Producers between enter() and leave(), counted in a slot chosen
	// per thread, so that senders on different threads do not fight over
	// one counter (see inflight_slot()).
	struct alignas(64) InflightSlot {
		std::atomic<int> n;
	};
	static constexpr unsigned kInflightSlots = 8;
	InflightSlot inflight[kInflightSlots];

	// Read by producers on every message, written rarely by the owner.
	alignas(64) std::atomic<bool> open;
	// The owner is awake and looks at the queue before it sleeps again
	// (messages_before_sleep): producers need not write the eventfd.
	// Only the built-in backends set it; seq_cst on both sides.
	std::atomic<bool> awake;
	int wakeup_fd;
	std::atomic<int> refs;

	// The owner's alone.
	alignas(64) Kind kind;
	tevent_context *ev;        // owner; only used on the owner's thread
	tevent_thread_proxy *tp;   // kProxy: the proxy it belongs to
	ListHook<Channel> link;    // in ev->channels

	static Channel *create(tevent_context *ev, Kind kind);
	void ref() { refs.fetch_add(1, std::memory_order_relaxed); }
	void unref();
	bool enter();
	void leave();
	// Pushes and wakes the loop when the queue was empty.
	void post(tevent_immediate *im);
	// Waits until no producer is between enter() and leave().
	void quiesce() const;
	// Owner side: stop accepting, wait for producers in flight.
	void shut();
};

struct TraceCallbacks {
	tevent_trace_callback_t point;
	void *point_private;
	tevent_trace_fd_callback_t fde;
	void *fde_private;
	tevent_trace_signal_callback_t se;
	void *se_private;
	tevent_trace_timer_callback_t te;
	void *te_private;
	tevent_trace_immediate_callback_t im;
	void *im_private;
	tevent_trace_queue_callback_t qe;
	void *qe_private;
};

struct DebugOps {
	enum tevent_debug_level max_level;
	void (*fn)(void *context, enum tevent_debug_level level,
		   const char *fmt, va_list ap);
	void *context;
};

} // namespace tevent

struct tevent_threaded_context;
struct tevent_thread_proxy;

namespace tevent {
// Requests whose tevent_req_post() found no memory for an immediate of
// their own wait on their context's list (req.cc). The immediate that
// delivers them, one per loop turn, is made with the context, so posting
// never needs memory it might not get.
struct PostFallback {
	tevent_immediate *im;
	tevent_req *first;
};

// A context's link into the process-wide list of contexts (fork handling).
// It is the context's oldest talloc child, so talloc frees it last of all
// the context's children, whichever destructor the context itself has:
// a caller may replace that one (Samba's root process does), and the
// context must still leave every process-wide registry before its memory
// goes.
struct ContextLifeline {
	ListHook<ContextLifeline> link;
	tevent_context *ev = nullptr;

	int on_talloc_free();
};

// One timer or immediate handler in progress on a context, kept in the
// invoking frame. While it runs the event is off the context's timer queue
// or immediate list, where the teardown would look for it, yet still refers to the
// context (a timer is freed with a DETACH trace once its handler returns;
// an immediate owes its DETACH trace). If the handler frees or
// re-initialises the context (a forked child dropping its parent's loop
// does), the teardown finds the run here, settles what the event owes,
// and clears the frame's event so nothing touches the context after the
// handler returns.
//
// A handler left with longjmp() (a failed cmocka assertion) leaves its
// frame linked though its stack is gone, and the teardown may meet it
// later. The seal ties the frame's words to its address: the teardown
// trusts and clears only frames that still hold what their run put
// there, and stops at the first that does not.
template <class Event> struct RunningEvent {
	Event *event;
	RunningEvent *outer;  // the run this one is nested in
	uintptr_t seal;

	uintptr_t expected_seal() const
	{
		return reinterpret_cast<uintptr_t>(this) ^
		       reinterpret_cast<uintptr_t>(event) ^
		       reinterpret_cast<uintptr_t>(outer);
	}
};

// Links run as the innermost handler run of a context (top is the
// context's member); finish_run() unlinks it once the handler is back.
template <class Event>
inline void start_run(RunningEvent<Event> *&top, RunningEvent<Event> &run,
		      Event *event)
{
	run.event = event;
	run.outer = top;
	run.seal = run.expected_seal();
	top = &run;
}

// For a context being torn down: hands the event of every run linked on
// it to settle(), innermost first, and marks the runs' frames so that
// their invokers leave the context alone.
template <class Event, class Settle>
void forget_runs(RunningEvent<Event> *&top, Settle settle)
{
	RunningEvent<Event> *run = top;
	while (run != nullptr && run->seal == run->expected_seal()) {
		RunningEvent<Event> *outer = run->outer;
		Event *event = run->event;
		run->event = nullptr;
		run->seal = 0;
		settle(event);
		run = outer;
	}
	top = nullptr;
}

// An event's busy count is the number of runs of its handler on the
// stack. A nested loop inside a handler may run the same event again (an
// fd still readable, an immediate or timer re-armed, a signal raised
// again). A flag would be cleared by the inner run while the outer one
// still uses the event, and a free deferred until "the handler returns"
// would then happen under the outer run (upstream has that use after
// free). With a count only the outermost run finishes a deferred free.
//
// Returns false, after tevent_abort(), when the count is full: the
// handler is then not run at that depth.
template <class Count>
inline bool enter_handler_run(Count &busy, tevent_context *ev)
{
	if (__builtin_expect(busy == static_cast<Count>(~Count{0}), 0)) {
		tevent_abort(ev, "event handler re-entered too deeply "
				 "by nested loops");
		return false;
	}
	++busy;
	return true;
}

// Ends a run; returns whether it was the outermost one.
template <class Count> inline bool leave_handler_run(Count &busy)
{
	return --busy == 0;
}
} // namespace tevent

struct tevent_context {
	const struct tevent_ops *ops;
	void *additional_data;  // the backend's private state

	tevent::IntrusiveList<tevent_fd, &tevent_fd::ctx_link> fds;
	tevent::TimerQueue timers;
	tevent::RunningEvent<tevent_timer> *running_timer;
	tevent::IntrusiveList<tevent_immediate, &tevent_immediate::link> immediates;
	tevent::RunningEvent<tevent_immediate> *running_immediate;
	tevent::IntrusiveList<tevent_signal, &tevent_signal::ctx_link> signals;

	// Cross-thread hand-over (threaded contexts and thread proxies): one
	// channel per source kind, drained at the start of every loop turn.
	tevent::IntrusiveList<tevent::Channel, &tevent::Channel::link> channels;
	tevent::Channel *threaded_channel;  // shared by all threaded contexts
	tevent_threaded_context *threaded_contexts;  // owner-thread list
	bool has_threaded;                  // channels is not empty
	bool channels_asleep;               // channels' awake flags cleared
	bool messages_seen;        // a turn found cross-thread work since...
	uint64_t last_message_ns;  // ...this was last brought up to date

	// Wakeup: eventfd, read side registered as an fd event.
	tevent_fd *wakeup_fde;
	int wakeup_fd;

	tevent::DebugOps debug;

	struct {
		bool allowed;
		uint32_t level;
		tevent_nesting_hook hook_fn;
		void *hook_private;
	} nesting;

	tevent::TraceCallbacks trace;

	struct {
		tevent::WrapperGlue *list;  // on a main context: its wrappers
		tevent::WrapperGlue *glue;  // on a wrapper context: its glue
	} wrapper;

	struct timeval wait_timeout;

	tevent::PostFallback post_fallback;

	// The context's oldest talloc child (make_lifeline()), so the last
	// one talloc frees: queue watches hang here to fire only once every
	// queue the context owns has gone, tracing on a context still whole.
	tevent::ContextLifeline *lifeline;

	int on_talloc_free();
};

namespace tevent {

// Unlinks a run start_run() linked on ev->*top, unless the context was
// torn down while the handler ran: then it touches nothing and returns
// false, as ev may be gone.
template <class Event>
inline bool finish_run(tevent_context *ev,
		       RunningEvent<Event> *tevent_context::*top,
		       const RunningEvent<Event> &run)
{
	if (__builtin_expect(run.event == nullptr, 0)) {
		return false;
	}
	ev->*top = run.outer;
	return true;
}

// Glue between a wrapper context and the main context it forwards to.
struct WrapperGlue {
	WrapperGlue *prev, *next;
	tevent_context *wrap_ev;
	tevent_context *main_ev;
	bool busy;
	bool destroyed;
	const struct tevent_wrapper_ops *ops;
	void *private_state;
};

// ---- context / loop (loop.cc) ----
// This process's pid, current across fork; valid once a context exists.
pid_t cached_pid();
// Why a context's state is dropped: it is being freed, or
// tevent_re_initialise() starts it afresh and it stays whole.
enum class Teardown { kContextGoes, kReinitialise };
void context_teardown(tevent_context *ev, Teardown how);
bool make_lifeline(tevent_context *ev);
int context_setup(tevent_context *ev);
// The context whose lists an event actually lives on.
tevent_context *main_ev(tevent_context *ev);

// ---- wakeup (wakeup_fd.cc) ----
void wakeup_fini(tevent_context *ev);

// ---- timers (timer.cc) ----
// Runs the first timer if due; returns the wait until the next one.
struct timeval timer_loop_delay(tevent_context *ev);
int timeout_msec(const struct timeval *tv);
bool no_timeout(const struct timeval *tv);
void timers_detach_all(tevent_context *ev, Teardown how);

// ---- immediates (immediate.cc) ----
void immediates_detach_all(tevent_context *ev, Teardown how);
// Creates an immediate the library keeps to itself (see library_owned).
tevent_immediate *create_library_immediate(TALLOC_CTX *mem_ctx,
					   const char *location);
// Schedules a library-owned immediate through ev's ops, as
// tevent_schedule_immediate() does; but when ev uses the common
// implementation and that call could change nothing but the handler and
// its names, sets those directly.
void schedule_library_immediate(tevent_immediate *im, tevent_context *ev,
				tevent_immediate_handler_t handler,
				void *private_data, const char *handler_name,
				const char *location);

// ---- requests (req.cc) ----
// Makes the context's post fallback immediate; false without memory.
bool post_fallback_init(tevent_context *ev);
// The context is going or starting over: requests waiting on its post
// fallback are dropped, as posted immediates are.
void post_fallback_drop_all(tevent_context *ev);

// ---- fds (fd.cc) ----
void fds_detach_all(tevent_context *ev);
void fd_disarm(tevent_fd *fde);
// One fde in a debug message, as upstream writes it:
// "role[fde=0x..,fd=N,flags=0xF(ERW),handler_name]".
struct FdText {
	char buf[128];
};
const char *describe_fd(FdText &text, const char *role, const tevent_fd *fde);

// ---- signals (signal.cc) ----
void signals_detach_all(tevent_context *ev);
void signals_after_fork();

// ---- threads (threads.cc) ----
void threads_context_init(tevent_context *ev);
void threads_context_fini(tevent_context *ev);
void threads_atfork_child(tevent_context *ev);
// Runs the handler of a thread proxy message and frees what it left.
void proxy_deliver(tevent_context *ev, tevent_immediate *im,
		   tevent_immediate_handler_t handler, void *private_data);
// Frees a thread proxy message that waits on its loop's immediate list.
void free_waiting_message(tevent_immediate *im);
// A wrapper is dying: its threaded contexts must stop delivering into it.
void threads_wrapper_gone(tevent_context *main, tevent_context *wrap);

// ---- spent cross-thread immediates (spent.cc) ----
// The calling thread's Home, for the immediates it sends to other loops;
// nullptr if none could be set up (then the loop frees them).
Home *sending_home();
// Sender side, after a post: now and then takes back the spent
// immediates that came home, to reuse or free them.
void collect_spent();
// On the loop's thread: gives a spent immediate (no children, no
// references) back to the thread that sent it; false when the caller
// must free it.
bool send_home(tevent_immediate *im);
// A spent immediate this thread took back, made fresh under mem_ctx;
// nullptr when the thread has none.
tevent_immediate *reuse_spent_immediate(TALLOC_CTX *mem_ctx);
void spent_atfork_prepare();
void spent_atfork_parent();
void spent_atfork_child();

// Before a backend blocks for `delay`: true when cross-thread messages are
// waiting (the turn runs them instead of waiting). Otherwise the channels
// are marked asleep, so that the next message writes the eventfd, and
// awake_again() must follow the wait. While a loop is awake producers
// never write the eventfd. If messages arrived recently it first polls
// the channels for a few microseconds, which spares producers the write
// and the loop the wakeup.
bool messages_before_sleep(tevent_context *ev, const struct timeval *delay);
void set_channels_awake(tevent_context *ev, bool awake);
inline void awake_again(tevent_context *ev)
{
	if (ev->channels_asleep) {
		ev->channels_asleep = false;
		set_channels_awake(ev, true);
	}
}
// Runs the start of a turn again after messages_before_sleep() found some.
int run_spun_messages(tevent_context *ev);

// ---- wrappers (wrapper.cc) ----
void wrapper_push_use_internal(tevent_context *wrap_ev, WrapperGlue *glue);
void wrapper_pop_use_internal(tevent_context *wrap_ev, WrapperGlue *glue);
void wrappers_detach_all(tevent_context *ev);
int wrapper_on_talloc_free(tevent_context *ev);

// ---- backends ----
bool epoll_backend_register();
bool poll_backend_register();

// ---- debug (debug.cc) ----
void debugf(tevent_context *ev, enum tevent_debug_level level,
	    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void check_double_free(TALLOC_CTX *ptr, const char *reason);

// The talloc destructor of an event that leaves its context at once when
// freed (timer, signal): the first free detaches it, a second one is
// reported, and while a run of its handler is on the stack the memory
// stays (the run frees it on the way out).
template <class Event>
int free_detaching_event(Event *e, const char *double_free_reason)
{
	if (e->destroyed) {
		check_double_free(e, double_free_reason);
	} else {
		e->destroyed = true;
		e->detach();
	}
	if (e->busy) {
		return -1;
	}
	e->wrapper = nullptr;
	return 0;
}

// Cheap level test before formatting a debug message.
inline bool debug_enabled(tevent_context *ev, enum tevent_debug_level level)
{
	return ev != nullptr && ev->debug.fn != nullptr &&
	       level <= ev->debug.max_level;
}

// ---- trace (trace.cc exports the same as tevent_trace_*_callback) ----
// Inline so that the hot paths pay one load and a test when nobody
// traces, instead of a call through the PLT.
#define TEVENT_TRACE_HELPER(name, slot, obj_type)                        \
	inline void name(tevent_context *ev, obj_type *obj,              \
			 enum tevent_event_trace_point tp)               \
	{                                                                \
		if (ev != nullptr && ev->trace.slot != nullptr) {        \
			ev->trace.slot(obj, tp, ev->trace.slot##_private); \
		}                                                        \
	}
TEVENT_TRACE_HELPER(trace_fd, fde, tevent_fd)
TEVENT_TRACE_HELPER(trace_signal, se, tevent_signal)
TEVENT_TRACE_HELPER(trace_timer, te, tevent_timer)
TEVENT_TRACE_HELPER(trace_immediate, im, tevent_immediate)
TEVENT_TRACE_HELPER(trace_queue, qe, tevent_queue_entry)
#undef TEVENT_TRACE_HELPER

inline void trace_point(tevent_context *ev, enum tevent_trace_point tp)
{
	if (ev != nullptr && ev->trace.point != nullptr) {
		ev->trace.point(tp, ev->trace.point_private);
	}
}

} // namespace tevent

#define TEVENT_DEBUGF(ev, level, ...)                                   \
	do {                                                            \
		if (tevent::debug_enabled((ev), (level))) {             \
			tevent::debugf((ev), (level), __VA_ARGS__);     \
		}                                                       \
	} while (0)

// Signal events. The process has one table per signal number: the list of
// tevent_signal handlers (from any context), the sigaction that was in
// place before we installed ours, and counters. The async handler only
// counts (and, for SA_SIGINFO, stores the siginfo in a ring) and wakes the
// loops; the handlers themselves run from tevent_common_check_signal().
#include "internal.hh"

#include <stdlib.h>
#include <string.h>

namespace tevent {

namespace {

// Same limits as upstream's Linux builds (Debian's 0.14.1 reports 68):
// every real-time signal fits, and up to 256 queued siginfos per signal
// (a power of two, so the ring index wraps cleanly).
constexpr int kNumSignals = 68;
constexpr uint32_t kInfoQueue = 256;

using SignalList = IntrusiveList<tevent_signal, &tevent_signal::sig_link>;

struct SignalSlot {
	SignalList handlers;
	struct sigaction old_action;
	bool installed;
	std::atomic<uint32_t> count;  // bumped by the async handler
	// Deliveries handed to a dispatch. Claimed before the handlers run,
	// so that a loop nested in one of them sees only newer deliveries.
	uint32_t claimed;
	// Deliveries whose dispatch is over: their ring entries may be
	// reused. Moves up to claimed once no dispatch of the signal is on
	// the stack.
	uint32_t seen;
	siginfo_t *ring;              // kInfoQueue entries, SA_SIGINFO only
	volatile sig_atomic_t blocked;
};

SignalSlot g_slots[kNumSignals];
std::atomic<uint32_t> g_pending{0};  // any signal arrived since last check

// The dispatches walking a signal's handler list, innermost last: a
// handler may run a nested loop that dispatches again, and unregister()
// moves every walk whose next handler leaves. The walks live here, not
// on the stack, so one whose handler escaped with longjmp() is never read
// through a dead frame; each records its frame's address, and walks at or
// below a later caller's frame are dead and dropped.
struct HandlerWalk {
	int signum;
	tevent_signal *next;
	uintptr_t frame;
};
constexpr size_t kMaxWalks = 64;
HandlerWalk g_walks[kMaxWalks];
size_t g_nwalks;

void drop_dead_walks(const void *frame)
{
	auto f = reinterpret_cast<uintptr_t>(frame);
	while (g_nwalks > 0 && g_walks[g_nwalks - 1].frame <= f) {
		g_nwalks--;
	}
}

// Whether one of the first n walks is over signum's list.
bool walking(int signum, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (g_walks[i].signum == signum) {
			return true;
		}
	}
	return false;
}

// Blocks `signum` in this thread while the handler list changes, so the
// async handler never sees a half-linked list.
class SignalBlock {
public:
	explicit SignalBlock(int signum)
	{
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, signum);
		pthread_sigmask(SIG_BLOCK, &set, &old_);
	}
	~SignalBlock() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

private:
	sigset_t old_;
};

void wake_loops(int signum)
{
	tevent_context *last = nullptr;
	for (tevent_signal *se = g_slots[signum].handlers.front(); se != nullptr;
	     se = SignalList::next(se)) {
		tevent_context *ev = se->event_ctx;
		if (ev != nullptr && ev != last) {
			last = ev;
			tevent_common_wakeup(ev);
		}
	}
}

void async_handler(int signum, siginfo_t *info, void *uctx)
{
	int saved_errno = errno;
	SignalSlot &slot = g_slots[signum];
	uint32_t count = slot.count.load(std::memory_order_relaxed);

	if (slot.ring != nullptr && info != nullptr) {
		slot.ring[count % kInfoQueue] = *info;
		if (count + 1 - slot.seen >= kInfoQueue) {
			// The ring is full: keep the signal blocked in the
			// interrupted context until the loop has drained it.
			auto *uc = static_cast<ucontext_t *>(uctx);
			sigaddset(&uc->uc_sigmask, signum);
			slot.blocked = 1;
		}
	}
	slot.count.store(count + 1, std::memory_order_release);
	g_pending.fetch_add(1, std::memory_order_release);
	wake_loops(signum);
	errno = saved_errno;
}

bool install(int signum, int sa_flags)
{
	SignalSlot &slot = g_slots[signum];
	struct sigaction act;
	memset(&act, 0, sizeof(act));
	act.sa_sigaction = async_handler;
	act.sa_flags = sa_flags | SA_SIGINFO;
	sigemptyset(&act.sa_mask);
	if (sigaction(signum, &act, &slot.old_action) == -1) {
		return false;
	}
	slot.installed = true;
	return true;
}

// Takes `se` off the global list; the last one out restores the old action.
void unregister(tevent_signal *se)
{
	if (!se->registered) {
		return;
	}
	int signum = se->signum;
	SignalSlot &slot = g_slots[signum];
	drop_dead_walks(&signum);
	for (size_t i = 0; i < g_nwalks; i++) {
		if (g_walks[i].next == se) {
			g_walks[i].next = SignalList::next(se);
		}
	}
	{
		SignalBlock block(signum);
		slot.handlers.remove(se);
	}
	se->registered = false;
	if (slot.handlers.empty() && slot.installed) {
		sigaction(signum, &slot.old_action, nullptr);
		slot.installed = false;
	}
	if (slot.handlers.empty() && slot.ring != nullptr) {
		// Upstream drops the stored siginfos with the last handler, so
		// a signal still pending is handed to a later SA_SIGINFO
		// handler with a zeroed siginfo_t. Do the same.
		memset(static_cast<void *>(slot.ring), 0,
		       kInfoQueue * sizeof(siginfo_t));
	}
}

void unblock(int signum)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, signum);
	pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

// Runs every handler of one signal for the `pending` deliveries claimed
// from `base` on.
void dispatch_signal(tevent_context *ev, int signum, uint32_t base,
		     uint32_t pending)
{
	SignalSlot &slot = g_slots[signum];
	drop_dead_walks(&signum);
	if (g_nwalks == kMaxWalks) {
		tevent_abort(ev, "signal handlers nested too deeply");
		return;
	}
	size_t me = g_nwalks++;
	HandlerWalk &walk = g_walks[me];
	walk = HandlerWalk{signum, nullptr,
			   reinterpret_cast<uintptr_t>(&signum)};

	for (tevent_signal *se = slot.handlers.front(); se != nullptr;
	     se = walk.next) {
		walk.next = SignalList::next(se);
		if ((se->sa_flags & SA_SIGINFO) && slot.ring != nullptr) {
			uint32_t n = pending < kInfoQueue ? pending : kInfoQueue;
			for (uint32_t j = 0; j < n; j++) {
				siginfo_t *info = &slot.ring[(base + j) % kInfoQueue];
				bool removed = false;
				if (tevent_common_invoke_signal_handler(
					    se, signum, 1, info, &removed) != 0) {
					tevent_abort(ev, "tevent_common_invoke_signal_handler() failed");
				}
				if (removed) {
					break;
				}
			}
			continue;
		}
		if (tevent_common_invoke_signal_handler(se, signum, (int)pending,
							nullptr, nullptr) != 0) {
			tevent_abort(ev, "tevent_common_invoke_signal_handler() failed");
		}
	}
	g_nwalks = me;
	if (walking(signum, me)) {
		return;  // an outer dispatch still reads the ring
	}
	slot.seen = slot.claimed;
	if (slot.blocked) {
		slot.blocked = 0;
		unblock(signum);
	}
}

} // namespace

void signals_detach_all(tevent_context *ev)
{
	// Each call takes the event off the list. Retiring them all also
	// keeps a forked child that re-initialises from running the
	// parent's handlers.
	while (tevent_signal *se = ev->signals.front()) {
		se->wrapper = nullptr;
		tevent_cleanup_pending_signal_handlers(se);
	}
}

} // namespace tevent

using namespace tevent;

// Takes the event off its signal and its context for good.
void tevent_signal::detach()
{
	unregister(this);
	if (event_ctx == nullptr) {
		return;
	}
	trace_signal(event_ctx, this, TEVENT_EVENT_TRACE_DETACH);
	// With no signal event left the loop stops looking at the counters,
	// so a signal still pending waits for the next handler of its number
	// (upstream too).
	event_ctx->signals.remove(this);
	event_ctx = nullptr;
}

int tevent_signal::on_talloc_free()
{
	return free_detaching_event(this, "tevent_signal double free");
}

TEVENT_EXPORT size_t tevent_num_signals(void)
{
	return kNumSignals;
}

TEVENT_EXPORT size_t tevent_sa_info_queue_count(void)
{
	return kInfoQueue;
}

TEVENT_EXPORT struct tevent_signal *tevent_common_add_signal(
	struct tevent_context *ev, TALLOC_CTX *mem_ctx, int signum,
	int sa_flags, tevent_signal_handler_t handler, void *private_data,
	const char *handler_name, const char *location)
{
	if (signum < 0 || signum >= kNumSignals) {
		errno = EINVAL;
		return nullptr;
	}
	SignalSlot &slot = g_slots[signum];

	if ((sa_flags & SA_SIGINFO) && slot.ring == nullptr) {
		// Allocated once per signal and kept: the async handler may
		// be looking at it at any time.
		slot.ring = static_cast<siginfo_t *>(
			calloc(kInfoQueue, sizeof(siginfo_t)));
		if (slot.ring == nullptr) {
			errno = ENOMEM;
			return nullptr;
		}
	}

	auto *se = new_talloc_object<tevent_signal>(mem_ctx ? mem_ctx : ev,
						    "struct tevent_signal");
	if (se == nullptr) {
		return nullptr;
	}
	se->event_ctx = ev;
	se->signum = signum;
	se->sa_flags = sa_flags;
	se->handler = handler;
	se->private_data = private_data;
	se->handler_name = handler_name;
	se->location = location;

	int ret = tevent_common_wakeup_init(ev);
	if (ret != 0) {
		se->event_ctx = nullptr;
		talloc_free(se);
		errno = ret;
		return nullptr;
	}

	if (slot.handlers.empty() && !slot.installed) {
		if (!install(signum, sa_flags)) {
			int err = errno;
			se->event_ctx = nullptr;
			talloc_free(se);
			errno = err;
			return nullptr;
		}
	}

	ev->signals.push_front(se);
	{
		SignalBlock block(signum);
		slot.handlers.push_front(se);
	}
	se->registered = true;
	trace_signal(ev, se, TEVENT_EVENT_TRACE_ATTACH);
	return se;
}

TEVENT_EXPORT struct tevent_signal *_tevent_add_signal(
	struct tevent_context *ev, TALLOC_CTX *mem_ctx, int signum,
	int sa_flags, tevent_signal_handler_t handler, void *private_data,
	const char *handler_name, const char *location)
{
	return ev->ops->add_signal(ev, mem_ctx, signum, sa_flags, handler,
				   private_data, handler_name, location);
}

TEVENT_EXPORT int tevent_common_invoke_signal_handler(struct tevent_signal *se,
						      int signum, int count,
						      void *siginfo,
						      bool *removed)
{
	if (removed != nullptr) {
		*removed = false;
	}
	tevent_context *ev = se->event_ctx;
	if (ev == nullptr) {
		return 0;
	}
	tevent_context *handler_ev = ev;

	if (!enter_handler_run(se->busy, ev)) {
		return 0;
	}
	WrapperGlue *glue = se->wrapper;
	if (glue != nullptr) {
		handler_ev = glue->wrap_ev;
		wrapper_push_use_internal(handler_ev, glue);
		glue->ops->before_signal_handler(handler_ev, glue->private_state,
						 glue->main_ev, se, signum,
						 count, siginfo,
						 se->handler_name, se->location);
	}
	trace_signal(ev, se, TEVENT_EVENT_TRACE_BEFORE_HANDLER);
	se->handler(handler_ev, se, signum, count, siginfo, se->private_data);
	if (glue != nullptr) {
		glue->ops->after_signal_handler(handler_ev, glue->private_state,
						glue->main_ev, se, signum,
						count, siginfo,
						se->handler_name, se->location);
		wrapper_pop_use_internal(handler_ev, glue);
	}
	// SA_RESETHAND: the handler is one-shot.
	bool remove = (se->sa_flags & SA_RESETHAND) != 0;
	if (!leave_handler_run(se->busy)) {
		// A run of this event further out is still on the stack: it
		// does the free. A one-shot event (SA_RESETHAND) is spent and
		// only leaves its signal here.
		if (remove) {
			se->detach();
		}
		return 0;
	}
	if (se->destroyed) {
		talloc_set_destructor(se, nullptr);
		remove = true;
	}
	if (remove) {
		talloc_free(se);
		if (removed != nullptr) {
			*removed = true;
		}
	}
	return 0;
}

TEVENT_EXPORT int tevent_common_check_signal(struct tevent_context *ev)
{
	if (g_pending.load(std::memory_order_acquire) == 0) {
		return 0;
	}
	g_pending.store(0, std::memory_order_relaxed);

	bool any = false;
	for (int i = 0; i < kNumSignals; i++) {
		SignalSlot &slot = g_slots[i];
		uint32_t count = slot.count.load(std::memory_order_acquire);
		uint32_t base = slot.claimed;
		uint32_t pending = count - base;
		if (pending == 0) {
			continue;
		}
		any = true;
		slot.claimed = count;
		dispatch_signal(ev, i, base, pending);
	}
	return any ? 1 : 0;
}

// Retires the event now, exactly as freeing it would (off the process table
// and its context's list, DETACH traced), but leaves the memory to its
// owner: the destructor is dropped, so the owner's talloc_free() is plain.
TEVENT_EXPORT void tevent_cleanup_pending_signal_handlers(struct tevent_signal *se)
{
	se->on_talloc_free();
	talloc_set_destructor(se, nullptr);
}

TEVENT_EXPORT bool tevent_signal_support(struct tevent_context *ev)
{
	return ev->ops->add_signal != nullptr;
}

TEVENT_EXPORT void tevent_signal_set_tag(struct tevent_signal *se, uint64_t tag)
{
	if (se == nullptr) {
		return;
	}
	se->tag = tag;
}

TEVENT_EXPORT uint64_t tevent_signal_get_tag(const struct tevent_signal *se)
{
	if (se == nullptr) {
		return 0;
	}
	return se->tag;
}

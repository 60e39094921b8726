// Cross-thread scheduling: threaded contexts (tevent_threaded_context) and
// thread proxies (tevent_thread_proxy).
//
// Producers never lock and never allocate on the destination's talloc
// tree: an immediate travels through a lock-free Channel, and the loop is
// woken through its eventfd only when the channel goes from empty to
// non-empty. The loop drains whole channels at the start of a turn.
#include "internal.hh"

#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

namespace tevent {

Channel *Channel::create(tevent_context *ev, Kind kind)
{
	if (tevent_common_wakeup_init(ev) != 0) {
		return nullptr;
	}
	void *mem = aligned_alloc(alignof(Channel), sizeof(Channel));
	if (mem == nullptr) {
		return nullptr;
	}
	memset(mem, 0, sizeof(Channel));
	auto *ch = new (mem) Channel();
	ch->refs.store(1, std::memory_order_relaxed);
	ch->open.store(true, std::memory_order_relaxed);
	ch->wakeup_fd = ev->wakeup_fd;
	ch->kind = kind;
	ch->ev = ev;
	ev->channels.push_back(ch);
	ev->has_threaded = true;
	return ch;
}

void Channel::unref()
{
	if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
		free(this);
	}
}

namespace {

// The calling thread's slot in Channel::inflight, handed out round-robin
// on first use.
thread_local unsigned t_inflight_slot;  // 1 + index; 0: not chosen yet
std::atomic<unsigned> g_next_inflight_slot;

unsigned inflight_slot()
{
	if (t_inflight_slot == 0) {
		t_inflight_slot = 1 + g_next_inflight_slot.fetch_add(
			1, std::memory_order_relaxed) % Channel::kInflightSlots;
	}
	return t_inflight_slot - 1;
}

} // namespace

bool Channel::enter()
{
	inflight[inflight_slot()].n.fetch_add(1, std::memory_order_seq_cst);
	if (!open.load(std::memory_order_seq_cst)) {
		leave();
		return false;
	}
	return true;
}

void Channel::leave()
{
	inflight[inflight_slot()].n.fetch_sub(1, std::memory_order_release);
}

void Channel::post(tevent_immediate *im)
{
	// The owner checks the queue again after it clears `awake`, so one of
	// the two sides always sees the other (both accesses are seq_cst).
	if (queue.push(im)) {
		waiting.store(1, std::memory_order_relaxed);
		if (!awake.load(std::memory_order_seq_cst)) {
			tevent_common_wakeup_fd(wakeup_fd);
		}
		return;
	}
	// A loop that falls far behind (more threads than cores) gets the CPU
	// now and then; the count is approximate and nobody ever blocks.
	// (No read-modify-write: a lost increment between racing senders does
	// not matter, a locked instruction on the shared line would.)
	uint32_t n = waiting.load(std::memory_order_relaxed) + 1;
	waiting.store(n, std::memory_order_relaxed);
	if (n > kDeepQueue && n % 16 == 0) {
		sched_yield();
	}
}

namespace {

// How long a loop polls for cross-thread messages before sleeping, and how
// recent the last message must be for that to be worth it.
constexpr uint64_t kSpinNs = 50 * 1000;
constexpr uint64_t kRecentNs = 2 * 1000 * 1000;

uint64_t now_ns()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

inline void cpu_relax()
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

bool any_message(tevent_context *ev)
{
	for (Channel *ch = ev->channels.front(); ch != nullptr;
	     ch = IntrusiveList<Channel, &Channel::link>::next(ch)) {
		if (!ch->queue.empty()) {
			return true;
		}
	}
	return false;
}

// Polls the channels for up to kSpinNs when messages came in recently.
bool spin_for_messages(tevent_context *ev, const struct timeval *delay)
{
	uint64_t start = now_ns();
	if (ev->messages_seen) {
		// Stamped here rather than on every turn that found messages:
		// a clock read per batch costs the busy loop more than the
		// few microseconds this can be late by.
		ev->messages_seen = false;
		ev->last_message_ns = start;
	}
	if (ev->last_message_ns == 0 || start - ev->last_message_ns > kRecentNs) {
		return false;
	}
	uint64_t budget = kSpinNs;
	if (delay->tv_sec == 0 && (uint64_t)delay->tv_usec * 1000 < budget) {
		budget = (uint64_t)delay->tv_usec * 1000;
	}
	for (unsigned i = 1;; i++) {
		if (any_message(ev)) {
			return true;
		}
		cpu_relax();
		if ((i & 63) == 0) {
			if (now_ns() - start >= budget) {
				return false;
			}
			// With more threads than cores, the senders we wait for
			// may be waiting for this core: let them have it.
			sched_yield();
		}
	}
}

} // namespace

void set_channels_awake(tevent_context *ev, bool awake)
{
	for (Channel *ch = ev->channels.front(); ch != nullptr;
	     ch = IntrusiveList<Channel, &Channel::link>::next(ch)) {
		ch->awake.store(awake, std::memory_order_seq_cst);
	}
}

bool messages_before_sleep(tevent_context *ev, const struct timeval *delay)
{
	if (!ev->has_threaded || no_timeout(delay)) {
		return false;  // (no_timeout: the caller does not block at all)
	}
	if (spin_for_messages(ev, delay)) {
		return true;
	}
	set_channels_awake(ev, false);
	// A producer that still saw us awake did not wake us: look once more.
	if (any_message(ev)) {
		set_channels_awake(ev, true);
		return true;
	}
	ev->channels_asleep = true;
	return false;
}

int run_spun_messages(tevent_context *ev)
{
	tevent_common_threaded_activate_immediate(ev);
	if (!ev->immediates.empty()) {
		tevent_common_loop_immediate(ev);
	}
	return 0;
}

void Channel::quiesce() const
{
	// A slot seen at zero stays free of posters: whoever enters it later
	// also sees `open` cleared.
	for (const InflightSlot &slot : inflight) {
		while (slot.n.load(std::memory_order_seq_cst) != 0) {
			sched_yield();
		}
	}
}

void Channel::shut()
{
	open.store(false, std::memory_order_seq_cst);
	quiesce();
	ev->channels.remove(this);
	ev->has_threaded = !ev->channels.empty();
}

} // namespace tevent

using namespace tevent;

struct tevent_threaded_context {
	Channel *channel;
	// May be a wrapper; null once that wrapper is gone. Read by producers.
	std::atomic<tevent_context *> event_ctx;
	tevent_context *owner;  // main context whose list holds us; null once gone
	tevent_threaded_context *prev, *next;

	int on_talloc_free()
	{
		if (owner != nullptr) {
			if (prev != nullptr) {
				prev->next = next;
			} else {
				owner->threaded_contexts = next;
			}
			if (next != nullptr) {
				next->prev = prev;
			}
		}
		channel->unref();
		return 0;
	}
};

namespace tevent {

// A proxy message whose handler is running (innermost first when handlers
// nest). The message stays a top-level chunk meanwhile; the proxy's
// destructor uses these records to free the messages it still owns and to
// tell proxy_deliver() that the proxy is gone.
struct Delivery {
	tevent_immediate *im;
	void *home;  // talloc_parent(im) before the handler: unchanged = ours
	Delivery *outer;
	bool proxy_gone;
};

} // namespace tevent

struct tevent_thread_proxy {
	Channel *channel;  // read by producers on every message
	tevent_context *dest_ev;
	// Keeps `delivering`, which the loop writes around every handler,
	// off the cache line producers read `channel` from.
	char pad[64];
	tevent::Delivery *delivering;

	int on_talloc_free();
};

namespace {

// Returns a received immediate to the idle state it had before it was
// handed over.
void make_idle(tevent_immediate *im)
{
	im->event_ctx = nullptr;
	im->wrapper = nullptr;
	im->handler = nullptr;
	im->private_data = nullptr;
	im->handler_name = nullptr;
}

// Back from another thread: it may be freed again.
void arrived(tevent_immediate *im)
{
	im->in_transit.store(false, std::memory_order_relaxed);
}

void activate_threaded(Channel *ch)
{
	tevent_immediate *im = ch->queue.take_all();
	while (im != nullptr) {
		tevent_immediate *next = im->mt_next.load(std::memory_order_relaxed);
		im->mt_next.store(nullptr, std::memory_order_relaxed);
		tevent_context *ev = im->event_ctx;
		tevent_immediate_handler_t handler = im->handler;
		void *private_data = im->private_data;
		const char *handler_name = im->handler_name;
		const char *location = im->schedule_location;
		arrived(im);
		make_idle(im);
		if (ev->wrapper.glue != nullptr && ev->wrapper.glue->destroyed) {
			im = next;  // its wrapper is being freed: drop it
			continue;
		}
		im->go_home = true;
		if (im->proxy == nullptr) {
			// (proxy messages arrive through a pipe upstream,
			// which says nothing of the kind)
			TEVENT_DEBUGF(ev, TEVENT_DEBUG_TRACE,
				      "Schedule immediate event \"%s\": %p "
				      "from thread into main\n", handler_name,
				      static_cast<void *>(im));
		}
		_tevent_schedule_immediate(im, ev, handler, private_data,
					   handler_name, location);
		im = next;
	}
}

} // namespace

namespace tevent {

// Whether a proxy message is still the library's after its handler ran:
// not freed, not reparented, not scheduled again.
static bool still_ours(tevent_immediate *im, const void *home)
{
	return !im->destroyed && im->event_ctx == nullptr &&
	       talloc_parent(im) == home;
}

// Runs a proxy message's handler. Whatever the handler did not take (the
// immediate itself, the private data hanging below it) is freed once it
// returns, unless the handler scheduled the immediate again.
void proxy_deliver(tevent_context *ev, tevent_immediate *im,
		   tevent_immediate_handler_t handler, void *private_data)
{
	tevent_thread_proxy *tp = im->proxy;
	im->proxy = nullptr;
	// The proxy owns the message while its handler runs (freeing the
	// proxy from the handler frees it too) without a talloc move: the
	// Delivery record lets the proxy's destructor find it.
	Delivery d{im, talloc_parent(im), tp->delivering, false};
	tp->delivering = &d;
	handler(ev, im, private_data);
	bool referenced = talloc_reference_count(im) != 0;
	if (!d.proxy_gone && still_ours(im, d.home)) {
		// What the handler left below the message (its private data,
		// maybe with a destructor the handler set) is freed here and
		// now, as upstream frees it on this thread; the bare message
		// may then go back to the producers. A message the handler
		// holds a reference to keeps its own children, as upstream's
		// does, and loses only the private data.
		if (!referenced) {
			talloc_free_children(im);
		} else if (private_data != nullptr && private_data != im &&
			   talloc_parent(private_data) == im) {
			talloc_free(private_data);
		}
	}
	if (d.proxy_gone) {
		return;  // the proxy's destructor dealt with the message
	}
	tp->delivering = d.outer;
	if (im->destroyed || talloc_parent(im) != d.home) {
		return;  // freed, or stolen by the handler
	}
	if (im->event_ctx != nullptr) {
		// Scheduled again but not adopted: the proxy keeps it, so
		// that freeing the proxy (or its loop) frees it.
		talloc_steal(tp, im);
		return;
	}
	if (referenced) {
		// Whoever took the (first) reference gets the message, a
		// live immediate it may schedule again; the reference goes.
		// This is what freeing it under upstream's library does.
		talloc_unlink(nullptr, im);
		return;
	}
	// Ours to dispose of: mark it as talloc_free() would on a running
	// immediate; once this handler returns the loop frees it or, if
	// nothing hangs below it, sends it home (send_home()).
	im->destroyed = true;
	im->go_home = true;
}

} // namespace tevent

namespace {

void activate_proxy(Channel *ch)
{
	tevent_thread_proxy *tp = ch->tp;
	tevent_immediate *im = ch->queue.take_all();
	while (im != nullptr) {
		tevent_immediate *next = im->mt_next.load(std::memory_order_relaxed);
		im->mt_next.store(nullptr, std::memory_order_relaxed);
		// The producer hung the private data below the message. The
		// message itself stays a top-level chunk while it waits: the
		// proxy (on_talloc_free) and the context
		// (immediates_detach_all) free waiting messages themselves,
		// which saves a talloc move per message.
		void *private_data = im->private_data;
		tevent_immediate_handler_t handler = im->handler;
		make_idle(im);
		im->proxy = tp;
		// The handler name is upstream's (the expression its proxy
		// passes): debug messages name the message by it.
		_tevent_schedule_immediate(im, tp->dest_ev, handler,
					   private_data, "im_entry->handler",
					   __location__);
		im = next;
	}
}

// Frees messages that never reached the loop.
void discard_queued(Channel *ch)
{
	tevent_immediate *im = ch->queue.take_all();
	while (im != nullptr) {
		tevent_immediate *next = im->mt_next.load(std::memory_order_relaxed);
		if (ch->kind == Channel::kProxy) {
			talloc_set_destructor(im, nullptr);
			talloc_free(im);  // and the private data below it
		} else {
			arrived(im);
			make_idle(im);
		}
		im = next;
	}
}

} // namespace

int tevent_thread_proxy::on_talloc_free()
{
	if (channel != nullptr) {
		channel->shut();
		discard_queued(channel);
		channel->unref();
		channel = nullptr;
	}
	// Messages whose handlers are running: those still ours go with the
	// proxy (the loop frees them once their handlers return).
	for (Delivery *d = delivering; d != nullptr; d = d->outer) {
		d->proxy_gone = true;
		if (!d->im->destroyed && talloc_parent(d->im) == d->home) {
			talloc_free(d->im);
		}
	}
	delivering = nullptr;
	// Messages already scheduled on the loop but not run yet.
	tevent_immediate *im = dest_ev->immediates.front();
	while (im != nullptr) {
		tevent_immediate *next = dest_ev->immediates.next(im);
		if (im->proxy == this) {
			free_waiting_message(im);
		}
		im = next;
	}
	return 0;
}

namespace tevent {

void free_waiting_message(tevent_immediate *im)
{
	im->proxy = nullptr;
	tevent_common_immediate_cancel(im);
	talloc_free(im);  // and the private data below it
}

} // namespace tevent

namespace tevent {

void threads_context_init(tevent_context *ev)
{
	(void)ev;
}

void threads_wrapper_gone(tevent_context *main, tevent_context *wrap)
{
	bool any = false;
	for (tevent_threaded_context *t = main->threaded_contexts; t != nullptr;
	     t = t->next) {
		if (t->event_ctx.load(std::memory_order_relaxed) == wrap) {
			t->event_ctx.store(nullptr, std::memory_order_seq_cst);
			any = true;
		}
	}
	if (!any || main->threaded_channel == nullptr) {
		return;
	}
	// Producers that already saw the wrapper finish posting; what they
	// posted becomes ordinary immediates of the wrapper, which the
	// wrapper's teardown then drops.
	main->threaded_channel->quiesce();
	tevent_common_threaded_activate_immediate(main);
}

void threads_context_fini(tevent_context *ev)
{
	for (tevent_threaded_context *t = ev->threaded_contexts; t != nullptr;
	     t = t->next) {
		t->owner = nullptr;
	}
	ev->threaded_contexts = nullptr;
	while (Channel *ch = ev->channels.front()) {
		ch->shut();
		discard_queued(ch);
		if (ch->kind == Channel::kProxy) {
			// The proxy is a talloc child of the context and is
			// freed after us; it must not touch the channel again.
			ch->tp->channel = nullptr;
		}
		if (ch == ev->threaded_channel) {
			ev->threaded_channel = nullptr;
		}
		ch->unref();
	}
	ev->has_threaded = false;
}

// Producer threads of the parent do not exist in a forked child: whatever
// they had in flight never finishes, so nothing may wait for it.
void threads_atfork_child(tevent_context *ev)
{
	for (Channel *ch = ev->channels.front(); ch != nullptr;
	     ch = IntrusiveList<Channel, &Channel::link>::next(ch)) {
		for (Channel::InflightSlot &slot : ch->inflight) {
			slot.n.store(0, std::memory_order_relaxed);
		}
	}
}

} // namespace tevent

TEVENT_EXPORT void tevent_common_threaded_activate_immediate(struct tevent_context *ev)
{
	for (Channel *ch = ev->channels.front(); ch != nullptr;
	     ch = IntrusiveList<Channel, &Channel::link>::next(ch)) {
		if (ch->queue.empty()) {
			continue;
		}
		ev->messages_seen = true;
		if (ch->kind == Channel::kThreaded) {
			activate_threaded(ch);
		} else {
			activate_proxy(ch);
		}
	}
}

TEVENT_EXPORT struct tevent_threaded_context *tevent_threaded_context_create(
	TALLOC_CTX *mem_ctx, struct tevent_context *ev)
{
	tevent_context *owner = main_ev(ev);
	if (owner->threaded_channel == nullptr) {
		owner->threaded_channel = Channel::create(owner, Channel::kThreaded);
		if (owner->threaded_channel == nullptr) {
			errno = ENOMEM;
			return nullptr;
		}
	}
	auto *tctx = new_talloc_object<tevent_threaded_context>(
		mem_ctx, "struct tevent_threaded_context");
	if (tctx == nullptr) {
		errno = ENOMEM;
		return nullptr;
	}
	tctx->channel = owner->threaded_channel;
	tctx->channel->ref();
	tctx->event_ctx.store(ev, std::memory_order_relaxed);
	tctx->owner = owner;
	tctx->next = owner->threaded_contexts;
	if (tctx->next != nullptr) {
		tctx->next->prev = tctx;
	}
	owner->threaded_contexts = tctx;
	return tctx;
}

TEVENT_EXPORT void _tevent_threaded_schedule_immediate(
	struct tevent_threaded_context *tctx, struct tevent_immediate *im,
	tevent_immediate_handler_t handler, void *private_data,
	const char *handler_name, const char *location)
{
	Channel *ch = tctx->channel;
	if (!ch->enter()) {
		return;  // the destination loop is gone: drop silently
	}
	if (im->event_ctx != nullptr || handler == nullptr || im->destroyed ||
	    im->busy) {
		ch->leave();
		abort();
	}
	tevent_context *ev = tctx->event_ctx.load(std::memory_order_seq_cst);
	if (ev == nullptr) {
		ch->leave();
		return;  // its wrapper is gone: dropped, as upstream
	}
	im->event_ctx = ev;
	im->wrapper = ev->wrapper.glue;
	im->handler = handler;
	im->private_data = private_data;
	im->handler_name = handler_name;
	im->schedule_location = location;
	im->detach_ev_ctx = nullptr;
	im->in_transit.store(true, std::memory_order_relaxed);
	im->home = sending_home();
	ch->post(im);
	collect_spent();
	ch->leave();
}

TEVENT_EXPORT struct tevent_thread_proxy *tevent_thread_proxy_create(
	struct tevent_context *dest_ev_ctx)
{
	if (dest_ev_ctx->wrapper.glue != nullptr) {
		// A proxy delivers into a real loop, never into a wrapper.
		tevent_debug(main_ev(dest_ev_ctx), TEVENT_DEBUG_FATAL,
			     "tevent_thread_proxy_create() not allowed on a "
			     "wrapper context\n");
		errno = EINVAL;
		return nullptr;
	}
	auto *tp = new_talloc_object<tevent_thread_proxy>(
		dest_ev_ctx, "struct tevent_thread_proxy");
	if (tp == nullptr) {
		return nullptr;
	}
	tp->dest_ev = dest_ev_ctx;
	tp->channel = Channel::create(dest_ev_ctx, Channel::kProxy);
	if (tp->channel == nullptr) {
		talloc_free(tp);
		return nullptr;
	}
	tp->channel->tp = tp;
	return tp;
}

TEVENT_EXPORT void tevent_thread_proxy_schedule(struct tevent_thread_proxy *tp,
						struct tevent_immediate **pp_im,
						tevent_immediate_handler_t handler,
						void *pp_private_data)
{
	void **pp_private = static_cast<void **>(pp_private_data);
	tevent_immediate *im = *pp_im;

	Channel *ch = tp->channel;
	if (ch == nullptr || !ch->enter()) {
		return;  // destination gone: the caller keeps ownership
	}

	if (im->busy) {
		// The caller forwards the immediate its own handler is running
		// with. That loop still touches it after the handler returns,
		// so send a fresh one and let the running one be freed there.
		tevent_immediate *fresh = tevent_create_immediate(nullptr);
		if (fresh == nullptr) {
			ch->leave();
			return;
		}
		talloc_free(im);  // deferred until its handler returns
		im = fresh;
	} else if (im->event_ctx != nullptr) {
		// Scheduled on a loop, which can only be this thread's own:
		// the message replaces that scheduling, or the immediate
		// would be on the loop's list and in the channel at once.
		tevent_common_immediate_cancel(im);
	}
	if (talloc_parent(im) != nullptr) {
		// Detach from the sender's tree; the loop never reparents it
		// unless its handler does.
		talloc_steal(nullptr, im);
	}
	// The private data travels below the message (both are this
	// thread's chunks until the post), so it goes wherever the message
	// goes: freed with it unless the handler takes it.
	void *private_data = nullptr;
	if (pp_private != nullptr && *pp_private != nullptr) {
		private_data = *pp_private;
		if (private_data != im) {
			talloc_steal(im, private_data);
		}
		*pp_private = nullptr;
	}
	*pp_im = nullptr;

	im->handler = handler;
	im->private_data = private_data;
	im->home = sending_home();
	ch->post(im);
	collect_spent();
	ch->leave();
}

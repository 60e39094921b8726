// The containers behind a context's timers: see timer_queue.hh.
#include "internal.hh"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <algorithm>
#include <bit>

namespace tevent {

namespace {

// The one order of timers: deadline, then sequence.
inline bool key_before(const timeval &da, uint64_t seq_a, const timeval &db,
		       uint64_t seq_b)
{
	if (da.tv_sec != db.tv_sec) {
		return da.tv_sec < db.tv_sec;
	}
	if (da.tv_usec != db.tv_usec) {
		return da.tv_usec < db.tv_usec;
	}
	return seq_a < seq_b;
}

} // namespace

bool timer_before(const tevent_timer *a, const tevent_timer *b)
{
	return key_before(a->next_event, a->seq, b->next_event, b->seq);
}

// ---- TimerHeap ----

void TimerHeap::release()
{
	free(items_);
	init();
}

bool TimerHeap::grow()
{
	size_t ncap = cap_ ? cap_ * 2 : 16;
	if (ncap > kInRun) {
		return false;  // indices must stay clear of kInRun
	}
	auto **n = static_cast<tevent_timer **>(
		realloc(items_, ncap * sizeof(tevent_timer *)));
	if (n == nullptr) {
		return false;
	}
	items_ = n;
	cap_ = ncap;
	return true;
}

void TimerHeap::place(size_t i, tevent_timer *te)
{
	items_[i] = te;
	te->slot = static_cast<uint32_t>(i);
}

bool TimerHeap::holds(const tevent_timer *te) const
{
	size_t i = te->slot;
	return i < size_ && items_[i] == te;
}

void TimerHeap::sift_up(size_t i)
{
	tevent_timer *te = items_[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!timer_before(te, items_[parent])) {
			break;
		}
		place(i, items_[parent]);
		i = parent;
	}
	place(i, te);
}

// The earlier of slot i's children in the ordered part, or settled_ if it
// has none there.
size_t TimerHeap::earlier_child(size_t i) const
{
	size_t child = 2 * i + 1;
	if (child + 1 < settled_ &&
	    timer_before(items_[child + 1], items_[child])) {
		child++;
	}
	return child < settled_ ? child : settled_;
}

void TimerHeap::sift_down(size_t i)
{
	tevent_timer *te = items_[i];
	for (;;) {
		size_t child = earlier_child(i);
		if (child == settled_) {
			break;
		}
		if (!timer_before(items_[child], te)) {
			break;
		}
		place(i, items_[child]);
		i = child;
	}
	place(i, te);
}

void TimerHeap::push(tevent_timer *te)
{
	place(size_, te);
	size_++;
}

void TimerHeap::settle_tail()
{
	for (size_t i = settled_; i < size_; i++) {
		settled_ = i + 1;
		sift_up(i);
	}
}

// Restores the heap over items_[0, size_) in O(n) (Floyd).
void TimerHeap::rebuild()
{
	for (size_t i = 0; i < size_; i++) {
		place(i, items_[i]);
	}
	settled_ = size_;
	for (size_t i = size_ / 2; i-- > 0;) {
		sift_down(i);
	}
}

void TimerHeap::remove(tevent_timer *te)
{
	size_t i = te->slot;
	te->slot = kNoSlot;
	size_t last_pos = --size_;
	if (i >= settled_) {
		// From the unordered tail: its last timer takes the place.
		if (i != last_pos) {
			place(i, items_[last_pos]);
		}
		return;
	}
	// From the ordered part: the array's last timer fills the hole,
	// whichever part it came from.
	tevent_timer *last = items_[last_pos];
	if (last_pos < settled_) {
		settled_ = last_pos;
	}
	if (i == last_pos) {
		return;
	}
	if (i > 0 && timer_before(last, items_[(i - 1) / 2])) {
		place(i, last);
		sift_up(i);
		return;
	}
	// The last timer tends to be among the latest, so it would sink all
	// the way: move the hole down along the earlier children first, one
	// comparison per level, then let the last timer rise from there.
	for (size_t child; (child = earlier_child(i)) != settled_; i = child) {
		place(i, items_[child]);
	}
	place(i, last);
	sift_up(i);
}

void TimerHeap::restore(tevent_timer *te)
{
	size_t i = te->slot;
	if (i >= settled_) {
		return;  // the tail has no order to keep
	}
	if (i > 0 && timer_before(items_[i], items_[(i - 1) / 2])) {
		sift_up(i);
	} else {
		sift_down(i);
	}
}

tevent_timer **TimerHeap::swap_array(tevent_timer **items, size_t cap)
{
	tevent_timer **old = items_;
	items_ = items;
	cap_ = cap;
	return old;
}

// ---- TimerRun ----

void TimerRun::release()
{
	free(slots_);
	init();
}

void TimerRun::place(size_t pos, tevent_timer *te)
{
	slots_[pos] = te;
	te->slot = kInRun | static_cast<uint32_t>(pos);
}

bool TimerRun::holds(const tevent_timer *te) const
{
	size_t pos = te->slot & ~kInRun;
	return pos < cap_ && slots_[pos] == te;
}

// Doubles the array, which also unwraps the run and drops its holes.
bool TimerRun::grow()
{
	size_t ncap = cap_ ? size_t(cap_) * 2 : 16;
	if (ncap > kInRun / 2) {
		return false;  // kInRun | position must never be kNoSlot
	}
	auto **n = static_cast<tevent_timer **>(
		malloc(ncap * sizeof(tevent_timer *)));
	if (n == nullptr) {
		return false;
	}
	uint32_t kept = 0;
	for (uint32_t i = 0; i < len_; i++) {
		tevent_timer *te = slots_[at(i)];
		if (te != nullptr) {
			n[kept] = te;
			te->slot = kInRun | kept;
			kept++;
		}
	}
	memset(n + kept, 0, (ncap - kept) * sizeof(tevent_timer *));
	free(slots_);
	slots_ = n;
	cap_ = static_cast<uint32_t>(ncap);
	head_ = 0;
	len_ = live_ = kept;
	return true;
}

// Three passes without a data-dependent branch: holes lie anywhere when
// requests finish in random order, and a branch per slot mispredicted so
// often that compaction took a tenth of timeouts_any's time.
void TimerRun::compact()
{
	uint32_t kept = 0;
	for (uint32_t i = 0; i < len_; i++) {
		tevent_timer *te = slots_[at(i)];
		slots_[at(kept)] = te;
		kept += te != nullptr;
	}
	for (uint32_t i = kept; i < len_; i++) {
		slots_[at(i)] = nullptr;
	}
	for (uint32_t i = 0; i < kept; i++) {
		size_t pos = at(i);
		slots_[pos]->slot = kInRun | static_cast<uint32_t>(pos);
	}
	len_ = live_ = kept;
}

// The array is full from end to end but has holes (a free slot is the
// caller's promise). Compacting costs O(n), so it is only worth it when it
// frees a good share; otherwise the array grows, and compacts when it
// cannot.
void TimerRun::make_end_room()
{
	if ((len_ - live_) * 4 >= cap_ || !grow()) {
		compact();
	}
}

void TimerRun::push_back(tevent_timer *te)
{
	if (len_ == cap_) {
		make_end_room();
	}
	place(at(len_), te);
	len_++;
	live_++;
}

void TimerRun::push_front(tevent_timer *te)
{
	if (len_ == cap_) {
		make_end_room();
	}
	head_ = (head_ - 1) & (cap_ - 1);
	place(head_, te);
	len_++;
	live_++;
}

void TimerRun::insert_sorted(tevent_timer *te)
{
	compact();
	uint32_t lo = 0;
	uint32_t hi = len_;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (timer_before(te, slots_[at(mid)])) {
			hi = mid;
		} else {
			lo = mid + 1;
		}
	}
	for (uint32_t i = len_; i > lo; i--) {
		place(at(i), slots_[at(i - 1)]);
	}
	place(at(lo), te);
	len_++;
	live_++;
}

tevent_timer **TimerRun::swap_in(tevent_timer **slots, size_t cap, size_t n)
{
	tevent_timer **old = slots_;
	slots_ = slots;
	cap_ = static_cast<uint32_t>(cap);
	head_ = 0;
	len_ = live_ = static_cast<uint32_t>(n);
	for (size_t i = 0; i < n; i++) {
		slots_[i]->slot = kInRun | static_cast<uint32_t>(i);
	}
	return old;
}

void TimerRun::skip_front_holes()
{
	while (len_ != 0 && slots_[head_] == nullptr) {
		head_ = (head_ + 1) & (cap_ - 1);
		len_--;
	}
}

void TimerRun::skip_back_holes()
{
	while (len_ != 0 && slots_[at(len_ - 1)] == nullptr) {
		len_--;
	}
}

void TimerRun::remove(tevent_timer *te)
{
	size_t pos = te->slot & ~kInRun;
	te->slot = kNoSlot;
	slots_[pos] = nullptr;
	live_--;
	size_t logical = (pos - head_) & (cap_ - 1);
	if (logical == 0) {
		skip_front_holes();
		// Timers usually leave from the front to run, and the loop
		// looks at the next one's deadline right after this handler.
		if (len_ != 0) {
			__builtin_prefetch(&slots_[head_]->next_event);
		}
	} else if (logical == len_ - 1) {
		skip_back_holes();
	}
}

// ---- TimerQueue ----

// Grows `store` until it has a free slot that is not kept for a running
// timer (or any free slot, for a running timer put back).
template <class Store>
bool TimerQueue::make_room(Store &store, bool may_take_reserved)
{
	while (store.free_slots() == 0 ||
	       (!may_take_reserved &&
		heap_.free_slots() + run_.free_slots() <= running_)) {
		if (!store.grow()) {
			return false;
		}
	}
	return true;
}

bool TimerQueue::insert_keyed(tevent_timer *te, Rank rank,
			      bool may_take_reserved)
{
	te->seq = rank | next_seq_++;
	// The common case, a timeout later than everything queued, in a few
	// instructions; the rest out of line.
	tevent_timer *back = run_.back();
	bool at_back = back == nullptr || !timer_before(te, back);
	if (at_back && run_.room_at_back() &&
	    (may_take_reserved ||
	     heap_.free_slots() + run_.free_slots() > running_)) {
		run_.push_back(te);
		return true;
	}
	return insert_elsewhere(te, at_back, may_take_reserved);
}

__attribute__((noinline)) bool
TimerQueue::insert_elsewhere(tevent_timer *te, bool at_back,
			     bool may_take_reserved)
{
	bool at_front = !at_back && timer_before(te, run_.front());
	if ((at_back || at_front) && make_room(run_, may_take_reserved)) {
		if (at_back) {
			run_.push_back(te);
		} else {
			run_.push_front(te);
		}
		return true;
	}
	if (make_room(heap_, may_take_reserved)) {
		heap_.push(te);
		return true;
	}
	if (!may_take_reserved) {
		return false;
	}
	// Nothing could be allocated for a running timer put back: the slot
	// kept for it is free in one of the two, whatever its new deadline.
	if (run_.free_slots() == 0) {
		return false;  // cannot happen (see running_)
	}
	run_.insert_sorted(te);
	return true;
}

bool TimerQueue::contains(const tevent_timer *te) const
{
	if (te->slot == kNoSlot) {
		return false;
	}
	return (te->slot & kInRun) != 0 ? run_.holds(te) : heap_.holds(te);
}

void TimerQueue::remove(tevent_timer *te)
{
	// kNoSlot has kInRun set and a position no run reaches.
	if ((te->slot & kInRun) != 0) {
		if (run_.holds(te)) {
			run_.remove(te);
		}
	} else if (heap_.holds(te)) {
		heap_.remove(te);
	}
}

void TimerQueue::reposition(tevent_timer *te)
{
	if ((te->slot & kInRun) == 0) {
		te->seq = kByDeadline | next_seq_++;
		heap_.restore(te);
		return;
	}
	// The run only takes keys beyond its ends: take te out and place it
	// anew. The slot it leaves is the one it may take back.
	run_.remove(te);
	insert_keyed(te, kByDeadline, true);
}

namespace {

// A timer's key copied out, so that sorting compares within one array.
struct SortKey {
	timeval deadline;
	uint64_t seq;
	tevent_timer *te;

	bool operator<(const SortKey &o) const
	{
		return key_before(deadline, seq, o.deadline, o.seq);
	}
};

// Memory for the keys, used once and given back. It is mapped with its
// pages populated in one call (a sort takes at least kSortHeapAt keys, a
// megabyte): touching them one by one costs a page fault each, which on
// some machines took as long as the sort.
class ScratchKeys {
public:
	explicit ScratchKeys(size_t n) : bytes_(n * sizeof(SortKey))
	{
		void *p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		keys_ = p != MAP_FAILED ? static_cast<SortKey *>(p) : nullptr;
	}
	~ScratchKeys()
	{
		if (keys_ != nullptr) {
			munmap(keys_, bytes_);
		}
	}
	ScratchKeys(const ScratchKeys &) = delete;
	ScratchKeys &operator=(const ScratchKeys &) = delete;
	SortKey *get() const { return keys_; }

private:
	size_t bytes_;
	SortKey *keys_;
};

} // namespace

void TimerQueue::sort_into_run()
{
	size_t n = heap_.size() + run_.size();
	size_t run_cap = run_.capacity();
	// The heap's array becomes the run's when it is big enough (its
	// capacity is a power of two, as the run needs): fresh memory costs a
	// page fault per 512 timers. The run's old array goes to the heap, so
	// the free slots kept for running timers (see make_room()) are as
	// many as before; a fresh array is at least as big as the run's old.
	bool reuse = heap_.capacity() >= n;
	size_t cap = reuse ? heap_.capacity() : std::bit_ceil(std::max(n, run_cap));
	if (cap > kInRun / 2) {
		return;  // (see TimerRun::grow)
	}
	ScratchKeys scratch(n);
	SortKey *keys = scratch.get();
	tevent_timer **fresh = nullptr;
	if (!reuse) {
		fresh = static_cast<tevent_timer **>(
			malloc(cap * sizeof(tevent_timer *)));
	}
	if (keys == nullptr || (!reuse && fresh == nullptr)) {
		free(fresh);
		return;  // the heap keeps working, only slower
	}
	size_t k = 0;
	auto collect = [&](tevent_timer *te) {
		keys[k++] = {te->next_event, te->seq, te};
	};
	for (size_t i = 0; i < heap_.size(); i++) {
		collect(heap_.at(i));
	}
	run_.for_each(collect);
	std::sort(keys, keys + n);

	heap_.clear();
	tevent_timer **slots = reuse ? heap_.swap_array(nullptr, 0) : fresh;
	for (size_t i = 0; i < n; i++) {
		slots[i] = keys[i].te;
	}
	memset(slots + n, 0, (cap - n) * sizeof(*slots));
	tevent_timer **old_run = run_.swap_in(slots, cap, n);
	if (reuse) {
		heap_.swap_array(old_run, run_cap);
	} else {
		free(old_run);
	}
}

void TimerQueue::settle()
{
	size_t tail = heap_.unsettled();
	// A batch that makes up most of a big heap (many timers added
	// without a loop turn between) is cheaper to sort than to sift in.
	if (tail * 2 >= heap_.size() && heap_.size() >= kSortHeapAt &&
	    heap_.size() >= run_.size()) {
		sort_into_run();
	}
	heap_.settle();
}

tevent_timer *TimerQueue::pop_first()
{
	tevent_timer *te = top();
	if (te != nullptr) {
		remove(te);
	}
	return te;
}

} // namespace tevent

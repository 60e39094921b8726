// The timers of one context, ordered by (deadline, insertion sequence).
//
// Two containers share the work. Most programs add timers in deadline
// order (a request timeout is "now + the same interval" every time), so a
// sorted run in a circular array takes a timer whose key lies beyond
// either end of the run in O(1), and removal from it is O(1) too (a hole
// in the middle, cleared when the run is compacted). Timers that land
// between the run's ends go to a binary min-heap: O(log n) either way.
// The earliest timer is the earlier of the run's front and the heap's top.
// A timer joins the heap at the end of an unordered tail, in O(1) and
// without touching other timers; the tail is put in heap order when the
// earliest timer is next asked for, usually once per loop turn, so a
// program that adds thousands at once pays no cache miss per timer.
//
// A big heap is costly to drain: each removal of its top walks all its
// levels, a cache miss per level once the timers outgrow the caches. So
// when the heap's top is about to run and the heap holds tens of
// thousands of timers, and at least as many as the run, both are sorted
// into one run instead, from which the rest leave in O(1). Sorting keys
// copied into one array is far cheaper than as many heap removals. Every
// timer in the heap came by an insertion since the last sort (which
// empties it), and the heap holds at least half of what gets sorted, so
// the sort costs O(log n) per insertion. The price is one long loop turn:
// 28 ms for 200,000 timers on the benchmark machine. A tail that makes up
// at least half of such a heap is sorted the same way instead of ordered.
//
// Each timer records where it is in `slot`: a heap index, or kInRun plus
// its position in the run's array.
#pragma once

#include <stddef.h>
#include <stdint.h>

struct tevent_timer;

namespace tevent {

constexpr uint32_t kNoSlot = UINT32_MAX;
constexpr uint32_t kInRun = UINT32_C(1) << 31;

// Strict (deadline, sequence) order; no two timers compare equal.
bool timer_before(const tevent_timer *a, const tevent_timer *b);

class TimerHeap {
public:
	void init()
	{
		items_ = nullptr;
		size_ = settled_ = cap_ = 0;
	}
	void release();
	size_t size() const { return size_; }
	size_t free_slots() const { return cap_ - size_; }
	// Needs settle() first.
	tevent_timer *top() const { return size_ ? items_[0] : nullptr; }
	// Timers pushed since the heap was last ordered.
	size_t unsettled() const { return size_ - settled_; }
	void settle()
	{
		if (settled_ != size_) {
			settle_tail();
		}
	}
	tevent_timer *at(size_t i) const { return items_[i]; }
	size_t capacity() const { return cap_; }
	// Forgets every timer (their slots are the caller's business).
	void clear() { size_ = settled_ = 0; }
	// Needs an empty heap: takes `items` (cap of them), returns the old.
	tevent_timer **swap_array(tevent_timer **items, size_t cap);
	bool holds(const tevent_timer *te) const;
	bool grow();
	// Needs a free slot. O(1): the timer joins an unordered tail that
	// settle() orders when the earliest timer is asked for.
	void push(tevent_timer *te);
	void remove(tevent_timer *te);
	// te's key changed while it stays in the heap.
	void restore(tevent_timer *te);
	// Takes out every timer take(te) says yes to, in one O(n) pass.
	template <class Take> void remove_if(Take take);

private:
	void rebuild();
	void settle_tail();
	void place(size_t i, tevent_timer *te);
	void sift_up(size_t i);
	void sift_down(size_t i);
	size_t earlier_child(size_t i) const;

	tevent_timer **items_;
	size_t size_;
	// items_[0, settled_) is in heap order; the rest, pushed since, is not.
	size_t settled_;
	size_t cap_;
};

// Timers in key order, in a circular array whose capacity is a power of
// two. Front and back are never holes.
class TimerRun {
public:
	void init()
	{
		slots_ = nullptr;
		cap_ = head_ = len_ = live_ = 0;
	}
	void release();
	size_t size() const { return live_; }
	// Holes count as free: compaction reclaims them without memory.
	size_t free_slots() const { return cap_ - live_; }
	tevent_timer *front() const { return live_ ? slots_[head_] : nullptr; }
	tevent_timer *back() const
	{
		return live_ ? slots_[at(len_ - 1)] : nullptr;
	}
	bool holds(const tevent_timer *te) const;
	bool grow();
	// A slot right behind the back, without compacting or growing.
	bool room_at_back() const { return len_ < cap_; }
	// Both need a free slot and te beyond that end of the run.
	void push_back(tevent_timer *te);
	void push_front(tevent_timer *te);
	// Needs a free slot; O(n), for when nothing can be allocated.
	void insert_sorted(tevent_timer *te);
	void remove(tevent_timer *te);
	template <class Take> void remove_if(Take take);
	// Calls f(te) for each timer, front to back.
	template <class F> void for_each(F f) const;
	// Takes `slots` (cap of them, a power of two), holding n timers in
	// order from slot 0 and nulls after them; returns the old array.
	tevent_timer **swap_in(tevent_timer **slots, size_t cap, size_t n);
	size_t capacity() const { return cap_; }

private:
	size_t at(size_t logical) const { return (head_ + logical) & (cap_ - 1); }
	void place(size_t pos, tevent_timer *te);
	void make_end_room();
	void compact();
	void skip_front_holes();
	void skip_back_holes();

	tevent_timer **slots_;
	uint32_t cap_;
	uint32_t head_;  // position of the front
	uint32_t len_;   // positions from the front to the back, holes included
	uint32_t live_;  // timers held
};

class TimerQueue {
public:
	void init()
	{
		heap_.init();
		run_.init();
		running_ = 0;
		next_seq_ = 0;
	}
	void release()
	{
		heap_.release();
		run_.release();
	}
	bool empty() const { return heap_.size() == 0 && run_.size() == 0; }
	size_t size() const { return heap_.size() + run_.size(); }
	tevent_timer *top()
	{
		if (heap_.unsettled() != 0) {
			settle();
		}
		tevent_timer *h = heap_.top();
		tevent_timer *r = run_.front();
		if (h == nullptr || r == nullptr) {
			return h != nullptr ? h : r;
		}
		return timer_before(h, r) ? h : r;
	}
	// Among timers with a zero deadline, upstream's list fires those
	// added by tevent_common_add_timer_v2() (in the order they were
	// added) before all others (in the order they got that deadline).
	// The rank is the top bit of the sequence number.
	enum Rank : uint64_t {
		kZeroFirst = 0,
		kByDeadline = UINT64_C(1) << 63,
	};
	// Adds te with a new sequence number; false without memory.
	bool insert(tevent_timer *te, Rank rank)
	{
		return insert_keyed(te, rank, false);
	}
	void remove(tevent_timer *te);
	bool contains(const tevent_timer *te) const;
	// te's deadline changed: a new sequence number and its new place,
	// without memory.
	void reposition(tevent_timer *te);
	// A timer whose handler is about to run leaves the queue but its slot
	// stays reserved until run_done(): tevent_update_timer() from inside
	// the handler puts it back (put_back_running()), which upstream's list
	// does without memory, so must we.
	void remove_for_run(tevent_timer *te);
	// Orders the timers pushed onto the heap since it was last asked for
	// its earliest; a big batch gets sorted into the run instead.
	void settle();
	void run_done() { running_--; }
	// Cannot fail between remove_for_run() and run_done().
	bool put_back_running(tevent_timer *te)
	{
		return insert_keyed(te, kByDeadline, true);
	}
	// Takes out the earliest timer (context teardown), or null.
	tevent_timer *pop_first();
	// Takes out every timer take(te) says yes to, in one O(n) pass (a
	// dying wrapper's timers); take() must not touch the queue.
	template <class Take> void remove_if(Take take)
	{
		heap_.remove_if(take);
		run_.remove_if(take);
	}

private:
	// Below this the timers tend to fit the caches, and draining the
	// heap was faster than sorting (bench/: 0.5x at 1,000 timers, even
	// at 20,000, 1.15x at 30,000, 1.3x at 200,000).
	static constexpr size_t kSortHeapAt = 32768;

	bool insert_keyed(tevent_timer *te, Rank rank, bool may_take_reserved);
	// Leaves every timer in the run; without memory, changes nothing.
	void sort_into_run();
	bool insert_elsewhere(tevent_timer *te, bool at_back,
			      bool may_take_reserved);
	template <class Store>
	bool make_room(Store &store, bool may_take_reserved);

	TimerHeap heap_;
	TimerRun run_;
	// Handlers of this context's timers on the stack. Every one of them
	// keeps a free slot (in the heap or the run) that only a running
	// timer put back may take.
	size_t running_;
	uint64_t next_seq_;  // below kByDeadline: 2^63 timers are plenty
};

} // namespace tevent

// ---- templates; struct tevent_timer must be complete here ----

namespace tevent {

template <class Take> void TimerHeap::remove_if(Take take)
{
	size_t kept = 0;
	for (size_t i = 0; i < size_; i++) {
		tevent_timer *te = items_[i];
		if (take(te)) {
			te->slot = kNoSlot;
		} else {
			items_[kept++] = te;
		}
	}
	if (kept != size_) {
		size_ = kept;
		rebuild();
	}
}

// Keeps the survivors in order and packs them from the front (compact()
// does the same without a predicate, and without a branch per slot).
template <class Take> void TimerRun::remove_if(Take take)
{
	uint32_t kept = 0;
	for (uint32_t i = 0; i < len_; i++) {
		size_t pos = at(i);
		tevent_timer *te = slots_[pos];
		slots_[pos] = nullptr;
		if (te == nullptr) {
			continue;
		}
		if (take(te)) {
			te->slot = kNoSlot;
		} else {
			place(at(kept++), te);
		}
	}
	len_ = live_ = kept;
}

inline void TimerQueue::remove_for_run(tevent_timer *te)
{
	// Slot 0 of the heap: the heap's earliest timer is about to run.
	if (te->slot == 0 && heap_.size() >= kSortHeapAt &&
	    heap_.size() >= run_.size()) {
		sort_into_run();  // see the top of this file
	}
	remove(te);
	running_++;
}

template <class F> void TimerRun::for_each(F f) const
{
	for (uint32_t i = 0; i < len_; i++) {
		tevent_timer *te = slots_[at(i)];
		if (te != nullptr) {
			f(te);
		}
	}
}

} // namespace tevent

// Small building blocks shared by every part of the library: export marking,
// talloc-backed C++ objects and an intrusive doubly linked list.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <new>
#include <utility>

#include <talloc.h>

// Only functions listed in ABI/ are exported; the version script hides the
// rest, and this attribute makes the intent visible in the source as well.
#define TEVENT_EXPORT extern "C" __attribute__((visibility("default")))

// The functions every event, request or queue entry passes through. GCC
// places them side by side in .text.hot, and with the 64-byte function
// alignment from wscript their speed no longer depends on the size of
// unrelated code linked before them (that alone moved the queue benchmark
// by 5-8%).
#define TEVENT_HOT __attribute__((hot))

namespace tevent {

// Runs the C++ destructor of an object that lives inside a talloc chunk.
// Returning -1 from T::on_talloc_free() keeps the chunk alive (used for
// events whose handler is running: they are freed once it returns).
template <class T>
TEVENT_HOT int talloc_object_destructor(T *obj)
{
	int ret = obj->on_talloc_free();
	if (ret == 0) {
		obj->~T();
	}
	return ret;
}

// Allocates a zero-filled talloc chunk named `name` under `parent`,
// constructs a T in it and makes the talloc destructor the one cleanup path.
// T must provide `int on_talloc_free()`: 0 to allow the free, -1 to refuse.
template <class T, class... Args>
T *new_talloc_object(const void *parent, const char *name, Args &&...args)
{
	void *mem = talloc_named_const(parent, sizeof(T), name);
	if (mem == nullptr) {
		return nullptr;
	}
	memset(mem, 0, sizeof(T));
	T *obj = new (mem) T(std::forward<Args>(args)...);
	talloc_set_destructor(obj, talloc_object_destructor<T>);
	return obj;
}

// Intrusive doubly linked list. An element embeds a ListHook per list it
// can be on; the list keeps head and tail so that append is O(1). A hook is
// two words: `prev` of the first element holds a marker instead of null,
// so a non-null `prev` means "linked" (objects stay small, see bench/).
template <class T>
struct ListHook {
	T *prev = nullptr;
	T *next = nullptr;
};

template <class T, ListHook<T> T::*Hook>
class IntrusiveList {
public:
	bool empty() const { return head_ == nullptr; }
	T *front() const { return head_; }
	T *back() const { return tail_; }
	size_t size() const { return size_; }

	static T *next(const T *item) { return (item->*Hook).next; }
	static bool is_linked(const T *item) { return (item->*Hook).prev != nullptr; }

	void push_back(T *item) { insert_after(tail_, item); }

	void push_front(T *item)
	{
		ListHook<T> &h = item->*Hook;
		h.prev = head_marker();
		h.next = head_;
		if (head_ != nullptr) {
			(head_->*Hook).prev = item;
		} else {
			tail_ = item;
		}
		head_ = item;
		size_++;
	}

	// Inserts `item` right after `pos` (at the front when pos is null).
	void insert_after(T *pos, T *item)
	{
		if (pos == nullptr) {
			push_front(item);
			return;
		}
		ListHook<T> &p = pos->*Hook;
		ListHook<T> &h = item->*Hook;
		h.prev = pos;
		h.next = p.next;
		if (p.next != nullptr) {
			(p.next->*Hook).prev = item;
		} else {
			tail_ = item;
		}
		p.next = item;
		size_++;
	}

	void remove(T *item)
	{
		ListHook<T> &h = item->*Hook;
		if (h.prev == nullptr) {
			return;  // not linked
		}
		T *prev = h.prev == head_marker() ? nullptr : h.prev;
		if (prev != nullptr) {
			(prev->*Hook).next = h.next;
		} else {
			head_ = h.next;
		}
		if (h.next != nullptr) {
			(h.next->*Hook).prev = prev != nullptr ? prev : head_marker();
		} else {
			tail_ = prev;
		}
		h.prev = h.next = nullptr;
		size_--;
	}

	T *pop_front()
	{
		T *item = head_;
		if (item != nullptr) {
			remove(item);
		}
		return item;
	}

private:
	// Never dereferenced: only compared.
	static T *head_marker() { return reinterpret_cast<T *>(uintptr_t{1}); }

	T *head_ = nullptr;
	T *tail_ = nullptr;
	size_t size_ = 0;
};

} // namespace tevent

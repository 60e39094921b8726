// Spent cross-thread immediates go back to the thread that sent them.
//
// A sending thread allocates an immediate per message; the loop that ran
// it used to free it. Freeing memory another thread allocated takes that
// thread's malloc arena lock, and with several senders the loop and the
// senders then queue on each other's locks (futex storms that halved
// throughput in some runs). Instead every sending thread has a Home, and
// a spent immediate (freed by its handler, nothing below it, no
// references) is pushed back to the Home of the thread that sent it. The
// sender takes its returns now and then, keeps a few for its next
// tevent_create_immediate() and frees the rest, all in its own arena.
//
// Homes are never freed, only reused, so an immediate may name its Home
// for as long as it lives: when a thread exits its Home is closed (what
// arrives later is freed by the loop) and handed to the next thread that
// sends.
#include "internal.hh"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

namespace tevent {

struct alignas(64) Home {
	ImmediateMailbox spent;  // pushed by loops, taken by the owner
	// Pushed since the mailbox was last empty; approximate (loops on
	// different threads may race), it only bounds what waits here.
	std::atomic<uint32_t> pending;
	std::atomic<bool> occupied;  // a live thread owns it
	Home *next_free;             // in g_free_homes
	Home *next_all;              // in g_all_homes
};

namespace {

// How many spent immediates may wait for a sender that has gone quiet;
// past that the loop frees them itself. Large on purpose: a burst of
// messages comes back while its sender waits for the loop to catch up,
// and every immediate the loop frees is a fight over the sender's arena
// lock (with 4,096 that happened in about half of the threaded_4p runs).
// Memory held here would sit in that arena's free lists otherwise.
constexpr uint32_t kMaxPending = 65536;
// How many a thread keeps for reuse; the rest it frees.
constexpr uint32_t kCacheMax = 64;

pthread_mutex_t g_homes_mutex = PTHREAD_MUTEX_INITIALIZER;
Home *g_free_homes;
Home *g_all_homes;

// The calling thread's side.
struct Sender {
	Home *home;
	tevent_immediate *cache;  // taken back, ready for reuse
	uint32_t cached;
	uint32_t sends;
	bool registered;  // the exit hook knows this thread
};

thread_local Sender t_sender;
pthread_key_t g_exit_key;
pthread_once_t g_exit_once = PTHREAD_ONCE_INIT;
bool g_exit_key_ok;

void free_list(tevent_immediate *im)
{
	while (im != nullptr) {
		tevent_immediate *next = im->mt_next.load(std::memory_order_relaxed);
		talloc_free(im);
		im = next;
	}
}

Home *adopt_home()
{
	pthread_mutex_lock(&g_homes_mutex);
	Home *h = g_free_homes;
	if (h != nullptr) {
		g_free_homes = h->next_free;
	} else {
		void *mem = aligned_alloc(alignof(Home), sizeof(Home));
		if (mem != nullptr) {
			memset(mem, 0, sizeof(Home));
			h = new (mem) Home();
			h->next_all = g_all_homes;
			g_all_homes = h;
		}
	}
	pthread_mutex_unlock(&g_homes_mutex);
	if (h != nullptr) {
		h->next_free = nullptr;
		h->occupied.store(true, std::memory_order_seq_cst);
	}
	return h;
}

// Closes a Home and frees what waits in it. A loop that pushes after
// `occupied` went false sees it false and frees the push itself (both
// sides seq_cst), so nothing is stranded.
void close_home(Home *h)
{
	h->occupied.store(false, std::memory_order_seq_cst);
	free_list(h->spent.take_all_unordered());
}

void put_home_back(Home *h)
{
	pthread_mutex_lock(&g_homes_mutex);
	h->next_free = g_free_homes;
	g_free_homes = h;
	pthread_mutex_unlock(&g_homes_mutex);
}

void sender_thread_exit(void *arg)
{
	auto *s = static_cast<Sender *>(arg);
	Home *h = s->home;
	tevent_immediate *cache = s->cache;
	*s = Sender{};
	if (h != nullptr) {
		close_home(h);
		put_home_back(h);
	}
	free_list(cache);
}

void make_exit_key()
{
	g_exit_key_ok = pthread_key_create(&g_exit_key, sender_thread_exit) == 0;
}

bool register_exit_hook(Sender &s)
{
	if (!s.registered) {
		pthread_once(&g_exit_once, make_exit_key);
		if (!g_exit_key_ok || pthread_setspecific(g_exit_key, &s) != 0) {
			return false;
		}
		s.registered = true;
	}
	return true;
}

// Moves what came home into the cache, freeing what does not fit.
void take_spent(Sender &s)
{
	tevent_immediate *im = s.home->spent.take_all_unordered();
	while (im != nullptr && s.cached < kCacheMax) {
		tevent_immediate *next = im->mt_next.load(std::memory_order_relaxed);
		im->mt_next.store(s.cache, std::memory_order_relaxed);
		s.cache = im;
		s.cached++;
		im = next;
	}
	free_list(im);
}

} // namespace

Home *sending_home()
{
	Sender &s = t_sender;
	if (__builtin_expect(s.home == nullptr, 0) && register_exit_hook(s)) {
		s.home = adopt_home();
	}
	return s.home;
}

void collect_spent()
{
	// The mailbox line is written by the loop for every spent message:
	// every look at it costs a cache miss, and the loop's next push
	// another. Every 64th send (measured against every 4th and 16th:
	// threaded_4p 8.5M/s against 7.4M and 7.9M, the proxy cases a few
	// per cent better).
	Sender &s = t_sender;
	if ((++s.sends & 63) == 0 && s.home != nullptr &&
	    !s.home->spent.empty()) {
		take_spent(s);
	}
}

bool send_home(tevent_immediate *im)
{
	Home *h = im->home;
	if (h == nullptr ||
	    h->pending.load(std::memory_order_relaxed) >= kMaxPending) {
		return false;
	}
	// Only a bare top-level chunk: freeing it runs no code but talloc's
	// and ours, so any thread may do it. (With talloc's null tracking a
	// top-level chunk still hangs in a shared list: it must stay here.)
	if (talloc_total_blocks(im) != 1 || talloc_reference_count(im) != 0 ||
	    talloc_parent(im) != nullptr) {
		return false;
	}
	uint32_t n = h->spent.push(im) ? 1
		: h->pending.load(std::memory_order_relaxed) + 1;
	h->pending.store(n, std::memory_order_relaxed);
	if (!h->occupied.load(std::memory_order_seq_cst)) {
		free_list(h->spent.take_all_unordered());  // its thread has exited
	}
	return true;
}

tevent_immediate *reuse_spent_immediate(TALLOC_CTX *mem_ctx)
{
	Sender &s = t_sender;
	tevent_immediate *im = s.cache;
	if (im == nullptr) {
		return nullptr;
	}
	s.cache = im->mt_next.load(std::memory_order_relaxed);
	s.cached--;
	// A bare top-level chunk named "struct tevent_immediate" of the
	// right size: once moved under mem_ctx and reset it is what a fresh
	// allocation would be.
	talloc_steal(mem_ctx, im);
	memset(static_cast<void *>(im), 0, sizeof(*im));
	new (im) tevent_immediate();
	talloc_set_destructor(im, talloc_object_destructor<tevent_immediate>);
	return im;
}

void spent_atfork_prepare()
{
	pthread_mutex_lock(&g_homes_mutex);
}

void spent_atfork_parent()
{
	pthread_mutex_unlock(&g_homes_mutex);
}

void spent_atfork_child()
{
	// Only the forking thread lives on: the other threads' Homes are
	// closed and free for reuse.
	Home *mine = t_sender.home;
	g_free_homes = nullptr;
	for (Home *h = g_all_homes; h != nullptr; h = h->next_all) {
		if (h == mine) {
			continue;
		}
		close_home(h);
		h->next_free = g_free_homes;
		g_free_homes = h;
	}
	pthread_mutex_unlock(&g_homes_mutex);
}

} // namespace tevent

/*
 * talloc_floor: the talloc and malloc work behind one tevent request, with
 * no event library at all.  Every tevent (upstream's and ours) gives a
 * request the same object model: one talloc pool holding the request, its
 * zeroed state and, when queued, the queue entry, two destructors (request
 * and entry), a look at the creator's talloc parent (is it a request,
 * for profiles and call depth?), and one talloc_free that takes it all
 * down.  This program makes those calls, in the same pattern and
 * numbers as tevent_bench's queue and req_cycle cases, and nothing else.
 * Its figure is roughly as fast as any tevent keeping that object model
 * can go on this machine, which puts those cases' targets in proportion.
 * Roughly: it is not a strict bound (the order of the same calls moves
 * the figure by a few percent, and ours has come out slightly ahead of it
 * on req_cycle), but what a library spends above it is its own work.
 *
 * The sizes are tevent-cxx's (struct tevent_req 168 bytes, queue entry
 * 80) and the state is 16 bytes, as the bench's.  The destructors do
 * nothing here: what a real one does (unlinking, scheduling the next
 * trigger) is the library's own work, not part of the floor.
 *
 *   talloc_floor [--case queue|req_cycle]... [--scale F] [--list]
 *
 * Same output as tevent_bench (bench_util.h).
 */
#include <stdint.h>
#include <string.h>
#include <talloc.h>

#include "bench_util.h"

enum {
	REQ_SIZE = 168,
	ENTRY_SIZE = 80,
	BATCH = 100,	/* requests in flight, as tevent_bench's queue case */
};

struct floor_state {
	uint64_t idx;
	uint64_t spare;	/* the bench's states are 16 bytes */
};

static int noop_destructor(void *ptr)
{
	(void)ptr;
	return 0;
}

/* One request as tevent-cxx's tevent_req_create() builds it: its pool
 * always has room for a queue entry.  *state is set to its zeroed state. */
static void *floor_request(TALLOC_CTX *mem, struct floor_state **state)
{
	void *req = _talloc_pooled_object(mem, REQ_SIZE, "struct tevent_req",
					  2, sizeof(struct floor_state) +
					  ENTRY_SIZE);
	if (req == NULL) {
		fail("_talloc_pooled_object failed");
	}
	memset(req, 0, REQ_SIZE);
	struct floor_state *st = talloc_named_const(
		req, sizeof(struct floor_state), "struct floor_state");
	if (st == NULL) {
		fail("talloc_named_const failed");
	}
	memset(st, 0, sizeof(*st));
	talloc_set_destructor(req, noop_destructor);
	/* Is the creator the state of a parent request? */
	void *parent = talloc_parent(mem);
	if (parent != NULL &&
	    talloc_check_name(parent, "struct tevent_req") != NULL) {
		fail("unexpected parent request");
	}
	*state = st;
	return req;
}

__attribute__((noinline)) static void measured_queue(void)
{
	const uint64_t n = scaled(1000000);
	TALLOC_CTX *mem = talloc_new(NULL);
	void *reqs[BATCH];
	struct floor_state *states[BATCH];
	uint64_t sum = 0;
	uint64_t added = 0;
	if (mem == NULL) {
		fail("talloc_new failed");
	}

	double t0 = now_s();
	while (added < n) {
		uint64_t b = n - added < BATCH ? n - added : BATCH;
		for (uint64_t i = 0; i < b; i++) {
			reqs[i] = floor_request(mem, &states[i]);
			states[i]->idx = added++;
			void *e = talloc_named_const(reqs[i], ENTRY_SIZE,
						     "struct tevent_queue_entry");
			if (e == NULL) {
				fail("talloc_named_const failed");
			}
			memset(e, 0, ENTRY_SIZE);
			talloc_set_destructor(e, noop_destructor);
		}
		/* First in, first out: one free per loop turn in tevent. */
		for (uint64_t i = 0; i < b; i++) {
			/* what tevent_req_data() checks in the callback */
			struct floor_state *st = talloc_get_type_abort(
				states[i], struct floor_state);
			sum += st->idx;
			talloc_free(reqs[i]);
		}
	}
	double t1 = now_s();

	if (sum != n * (n - 1) / 2 || talloc_total_blocks(mem) != 1) {
		fail("checksum mismatch or blocks left");
	}
	emit("requests", "ops_per_s", n / (t1 - t0), n);
	talloc_free(mem);
}

__attribute__((noinline)) static void measured_req_cycle(void)
{
	const uint64_t n = scaled(2500000);
	TALLOC_CTX *mem = talloc_new(NULL);
	uint64_t sum = 0;
	if (mem == NULL) {
		fail("talloc_new failed");
	}

	double t0 = now_s();
	for (uint64_t i = 0; i < n; i++) {
		struct floor_state *st;
		void *req = floor_request(mem, &st);
		st->idx = i;
		st = talloc_get_type_abort(st, struct floor_state);
		sum += st->idx;
		talloc_free(req);
	}
	double t1 = now_s();

	if (sum != n * (n - 1) / 2 || talloc_total_blocks(mem) != 1) {
		fail("checksum mismatch or blocks left");
	}
	emit("requests", "ops_per_s", n / (t1 - t0), n);
	talloc_free(mem);
}

static const struct bench_case cases[] = {
	{"queue", measured_queue,
	 "a queued request's talloc work alone (pool, state, entry, free)"},
	{"req_cycle", measured_req_cycle,
	 "a request's talloc work alone (pool, state, free)"},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static void announce(void)
{
	printf("library=none\n");
}

int main(int argc, char **argv)
{
	return bench_main(argc, argv, "talloc_floor", cases, NCASES, announce);
}

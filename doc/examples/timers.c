/*
 * timers.c - timer events (doc/timers.md)
 *
 * All deadlines are computed from one starting time, so the order in
 * which the timers fire depends only on their deadlines, never on how
 * fast the machine is:
 *  - a timer at tevent_timeval_zero() (due at once; its handler is told
 *    the time is zero);
 *  - a periodic tick every 10 ms, three times, each tick adding the next;
 *  - three timers with the same deadline, which fire in the order they
 *    were added;
 *  - a timer moved earlier with tevent_update_timer();
 *  - a timer cancelled by freeing it.
 * Exits 0 when the timers fired in the expected order.
 */

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <talloc.h>
#include <tevent.h>

#include "example_util.h"	/* print_library(), append_word() */

/* tevent handlers have fixed signatures; not all use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"

static char order[256];

static void note(const char *what)
{
	append_word(order, sizeof(order), what);
}

static void named(struct tevent_context *ev, struct tevent_timer *te,
		  struct timeval now, void *private_data)
{
	note(private_data);
	/* No talloc_free(te): a timer is freed by the library once its
	 * handler returns. */
}

static void zero(struct tevent_context *ev, struct tevent_timer *te,
		 struct timeval now, void *private_data)
{
	note(tevent_timeval_is_zero(&now) ? "zero(now=0)" : "zero(now!=0)");
}

struct ticker {
	struct timeval next;	/* deadline of the tick that is running */
	int left;
	int count;
};

static void tick(struct tevent_context *ev, struct tevent_timer *te,
		 struct timeval now, void *private_data)
{
	struct ticker *t = private_data;
	char name[16];

	snprintf(name, sizeof(name), "tick%d", ++t->count);
	note(name);
	if (--t->left == 0) {
		return;
	}
	/* Periodic: add the next one, based on the previous deadline
	 * rather than on "now", so that delays do not add up. */
	t->next = tevent_timeval_add(&t->next, 0, 10000);
	if (tevent_add_timer(ev, t, t->next, tick, t) == NULL) {
		note("tick-failed");
	}
}

/* start + ms milliseconds */
static struct timeval at(const struct timeval *start, unsigned ms)
{
	return tevent_timeval_add(start, ms / 1000, (ms % 1000) * 1000);
}

int main(void)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = tevent_context_init(mem);
	struct ticker *t = talloc_zero(mem, struct ticker);
	struct timeval start = tevent_timeval_current();
	struct tevent_timer *moved, *cancelled;
	const char *expected = "zero(now=0) moved tick1 same-a same-b same-c "
			       "tick2 tick3";
	bool ok = true;

	print_library();
	if (ev == NULL || t == NULL) {
		fprintf(stderr, "timers: out of memory\n");
		return 1;
	}

	/* The owner (second argument) is any talloc parent: freeing it
	 * cancels the timer.  Here everything hangs off mem or t. */
	ok &= tevent_add_timer(ev, mem, tevent_timeval_zero(), zero, NULL) != NULL;

	t->left = 3;
	t->next = at(&start, 10);
	ok &= tevent_add_timer(ev, t, t->next, tick, t) != NULL;

	/* Equal deadlines: first added, first run. */
	ok &= tevent_add_timer(ev, mem, at(&start, 15), named, "same-a") != NULL;
	ok &= tevent_add_timer(ev, mem, at(&start, 15), named, "same-b") != NULL;
	ok &= tevent_add_timer(ev, mem, at(&start, 15), named, "same-c") != NULL;

	/* Added for 40 ms, then moved to 5 ms. */
	moved = tevent_add_timer(ev, mem, at(&start, 40), named, "moved");
	ok &= moved != NULL;
	tevent_update_timer(moved, at(&start, 5));

	/* Cancelled: freeing a pending timer is how to stop it. */
	cancelled = tevent_add_timer(ev, mem, at(&start, 1), named, "cancelled");
	ok &= cancelled != NULL;
	talloc_free(cancelled);

	if (!ok || tevent_loop_wait(ev) != 0) {
		fprintf(stderr, "timers: setup or loop failed\n");
		return 1;
	}

	printf("fired: %s\n", order);
	ok = strcmp(order, expected) == 0;
	if (!ok) {
		printf("expected: %s\n", expected);
	}
	printf("%s\n", ok ? "OK" : "FAILED");
	talloc_free(mem);
	return ok ? 0 : 1;
}

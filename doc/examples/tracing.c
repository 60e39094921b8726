/*
 * tracing.c - debug messages and trace callbacks (doc/debug.md)
 *
 *  1. A debug function of our own receives the library's messages; the
 *     limit set with tevent_set_max_debug_level() filters them.
 *  2. The loop trace callback sees every turn (BEFORE/AFTER_LOOP_ONCE)
 *     and, when a turn sleeps, BEFORE/AFTER_WAIT around the sleep.
 *  3. Per-event trace callbacks: the life of a timer and of an immediate
 *     as ATTACH, BEFORE_HANDLER, DETACH.
 *  4. Chaining: a second observer installs itself in front of the first
 *     and passes every call on.
 * Exits 0 when everything behaved as described.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <talloc.h>
#include <tevent.h>

#include "example_util.h"	/* print_library() */

/* tevent handlers have fixed signatures; not all use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"

/* ---- 1. debug messages ---- */

struct debug_counts {
	int by_level[4];
};

static void my_debug(void *context, enum tevent_debug_level level,
		     const char *fmt, va_list ap)
{
	struct debug_counts *c = context;

	/* A real program would format fmt/ap into its log here. */
	if ((int)level >= 0 && level <= TEVENT_DEBUG_TRACE) {
		c->by_level[level]++;
	}
}

static void nothing(struct tevent_context *ev, struct tevent_timer *te,
		    struct timeval now, void *private_data)
{
}

/* ---- 2. loop trace points ---- */

struct loop_counts {
	int points[4];
};

static void loop_trace(enum tevent_trace_point point, void *private_data)
{
	struct loop_counts *c = private_data;

	if ((int)point >= 0 && point <= TEVENT_TRACE_AFTER_LOOP_ONCE) {
		c->points[point]++;
	}
}

/* ---- 3./4. per-event trace points, chained ---- */

static char history[128];

static void add(const char *s)
{
	strncat(history, s, sizeof(history) - strlen(history) - 1);
}

static const char *point_letter(enum tevent_event_trace_point p)
{
	switch (p) {
	case TEVENT_EVENT_TRACE_ATTACH: return "A";
	case TEVENT_EVENT_TRACE_DETACH: return "D";
	case TEVENT_EVENT_TRACE_BEFORE_HANDLER: return "B";
	}
	return "?";
}

/* The first observer: records timer events. */
static void timer_trace(struct tevent_timer *te,
			enum tevent_event_trace_point p, void *private_data)
{
	add(point_letter(p));
}

/* The second observer counts calls, then passes them on. */
struct chained {
	tevent_trace_timer_callback_t prev;
	void *prev_data;
	int calls;
};

static void counting_trace(struct tevent_timer *te,
			   enum tevent_event_trace_point p, void *private_data)
{
	struct chained *c = private_data;

	c->calls++;
	if (c->prev != NULL) {
		c->prev(te, p, c->prev_data);
	}
}

static void immediate_trace(struct tevent_immediate *im,
			    enum tevent_event_trace_point p, void *private_data)
{
	add(point_letter(p));
}

static void timer_handler(struct tevent_context *ev, struct tevent_timer *te,
			  struct timeval now, void *private_data)
{
	add("h");
}

static void immediate_handler(struct tevent_context *ev,
			      struct tevent_immediate *im, void *private_data)
{
	add("h");
}

int main(void)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = tevent_context_init(mem);
	struct debug_counts dc = { { 0 } };
	struct loop_counts lc = { { 0 } };
	struct chained ch = { 0 };
	struct tevent_immediate *im;
	char timer_history[sizeof(history)];
	bool ok = true;

	print_library();
	if (ev == NULL) {
		return 1;
	}

	/* 1. Only warnings and worse; then everything. */
	tevent_set_debug(ev, my_debug, &dc);
	tevent_set_max_debug_level(ev, TEVENT_DEBUG_WARNING);
	tevent_add_timer(ev, mem, tevent_timeval_zero(), nothing, NULL);
	ok &= tevent_loop_wait(ev) == 0;
	printf("debug, limit WARNING: %d trace message(s), %d warning(s)\n",
	       dc.by_level[TEVENT_DEBUG_TRACE],
	       dc.by_level[TEVENT_DEBUG_WARNING]);
	ok &= dc.by_level[TEVENT_DEBUG_TRACE] == 0;
	tevent_set_max_debug_level(ev, TEVENT_DEBUG_TRACE);
	tevent_add_timer(ev, mem, tevent_timeval_zero(), nothing, NULL);
	ok &= tevent_loop_wait(ev) == 0;
	printf("debug, limit TRACE:   %s trace messages now\n",
	       dc.by_level[TEVENT_DEBUG_TRACE] > 0 ? "some" : "no");
	ok &= dc.by_level[TEVENT_DEBUG_TRACE] > 0;
	tevent_set_debug(ev, NULL, NULL);

	/* 2. One timer 10 ms ahead: the loop has to sleep once for it. */
	tevent_set_trace_callback(ev, loop_trace, &lc);
	tevent_add_timer(ev, mem, tevent_timeval_current_ofs(0, 10000),
			 nothing, NULL);
	ok &= tevent_loop_wait(ev) == 0;
	tevent_set_trace_callback(ev, NULL, NULL);
	/* Usually one turn that sleeps once; a very slow machine may find
	 * the timer due without sleeping.  Either way the points pair up. */
	printf("loop trace: %d turn(s), %d of them slept (BEFORE_WAIT %s "
	       "AFTER_WAIT)\n", lc.points[TEVENT_TRACE_BEFORE_LOOP_ONCE],
	       lc.points[TEVENT_TRACE_BEFORE_WAIT],
	       lc.points[TEVENT_TRACE_BEFORE_WAIT] ==
	       lc.points[TEVENT_TRACE_AFTER_WAIT] ? "paired with" : "UNPAIRED");
	ok &= lc.points[TEVENT_TRACE_BEFORE_LOOP_ONCE] ==
	      lc.points[TEVENT_TRACE_AFTER_LOOP_ONCE];
	ok &= lc.points[TEVENT_TRACE_BEFORE_WAIT] ==
	      lc.points[TEVENT_TRACE_AFTER_WAIT];

	/* 3./4. A timer's life, seen by two chained observers. */
	tevent_set_trace_timer_callback(ev, timer_trace, NULL);
	tevent_get_trace_timer_callback(ev, &ch.prev, &ch.prev_data);
	tevent_set_trace_timer_callback(ev, counting_trace, &ch);
	tevent_add_timer(ev, mem, tevent_timeval_zero(), timer_handler, NULL);
	ok &= tevent_loop_wait(ev) == 0;
	tevent_set_trace_timer_callback(ev, NULL, NULL);
	snprintf(timer_history, sizeof(timer_history), "%s", history);
	printf("timer:     %s (A=attach B=before handler h=handler "
	       "D=detach), %d chained call(s)\n", timer_history, ch.calls);
	ok &= strcmp(timer_history, "ABhD") == 0 && ch.calls == 3;

	/* An immediate stays allocated after it ran, but it is detached. */
	history[0] = '\0';
	tevent_set_trace_immediate_callback(ev, immediate_trace, NULL);
	im = tevent_create_immediate(mem);
	if (im == NULL) {
		return 1;
	}
	tevent_schedule_immediate(im, ev, immediate_handler, NULL);
	ok &= tevent_loop_wait(ev) == 0;
	tevent_set_trace_immediate_callback(ev, NULL, NULL);
	printf("immediate: %s\n", history);
	ok &= strcmp(history, "ABhD") == 0;

	printf("%s\n", ok ? "OK" : "FAILED");
	talloc_free(mem);
	return ok ? 0 : 1;
}

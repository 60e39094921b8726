/*
 * Threaded contexts: tevent_threaded_context_create() and
 * tevent_threaded_schedule_immediate().
 *
 * A threaded context is a handle other threads use to make an immediate
 * run on a loop they do not own.  Unlike a thread proxy it moves no
 * memory: the immediate (and whatever its private data points to) is
 * allocated by the loop's own thread beforehand, handed to a helper,
 * scheduled by the helper, and run by the loop.  That is how upstream's
 * own tests (multi_tevent_threaded_2) and Samba's pthreadpool_tevent use
 * it, and how it is used here.
 *
 * Checked here:
 *  - the handle is a talloc child of mem_ctx named
 *    "struct tevent_threaded_context"; it and the context may go in
 *    either order;
 *  - helpers schedule, the handler runs on the loop's thread with the
 *    context and private data given; the immediate is idle (reusable,
 *    freeable) afterwards;
 *  - upstream semantics when the context goes first: the handle stays
 *    valid and whatever is scheduled through it is silently dropped, also
 *    while helpers are busy scheduling;
 *  - freeing the handle does not take back what was already handed over;
 *  - 4 producers x many immediates, each exactly once and in order;
 *  - a wrapper context as the target: the handler gets the wrapper and
 *    the wrapper's hooks run around it; once the wrapper is gone its
 *    handles drop what they get, also while helpers are busy;
 *  - fork: what a child can do (see the comment before the fork cases).
 *
 * Helper threads never use cmocka's assert_* (a longjmp across threads);
 * they use CHECK(), which aborts with a message.
 *
 * Sizes: TT_THREAD_MSGS (the stress case sends TT_THREAD_MSGS/4 per
 * producer) overrides the default of 1,000,000, or 20,000 under
 * ThreadSanitizer or valgrind.  TT_FILTER=<glob> runs only matching
 * cases.
 *
 * Against upstream's library (make test-upstream), freeing an immediate
 * that was handed over but never ran because its context went away
 * aborts (upstream keeps a guard destructor on it); this library returns
 * such an immediate to the idle state.  The cases that free one skip
 * themselves there (TT_SKIP_ON_UPSTREAM).
 */

#define TEVENT_DEPRECATED 1 /* wrapper contexts */

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <talloc.h>
#include <tevent.h>

#include "common/tt.h"
#include "common/tt_threads.h"

/* handlers have fixed signatures and rarely use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"
/* the wrapper API is marked deprecated in the header */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

static pthread_t main_thread;

/* ------------------------------------------------------------------------
 * Loop helpers (and tt_drain(), LOOP_UNTIL() in common/tt_threads.h)
 * ------------------------------------------------------------------------ */

/* tt_drain() for a forked child: false instead of failing. */
static bool drain_nocmocka(struct tevent_context *ev)
{
	bool fired = false;
	int i;

	if (tevent_add_timer(ev, ev, tevent_timeval_zero(), tt_flag_timer,
			     &fired) == NULL) {
		return false;
	}
	for (i = 0; i < 100000 && !fired; i++) {
		if (tevent_loop_once(ev) != 0) {
			return false;
		}
	}
	return fired;
}

/* ------------------------------------------------------------------------
 * One-shot helpers: each schedules one prepared immediate and ends.
 * ------------------------------------------------------------------------ */

struct job {
	struct tevent_threaded_context *tctx;
	struct tevent_immediate *im;
	tevent_immediate_handler_t handler;
	pthread_t helper;        /* written by the helper before scheduling */
	int ran;                 /* written by the handler */
	bool on_main;
	struct tevent_context *seen_ev;
	pthread_t thread;
};

static struct {
	int calls;
} jobs_seen;

static void job_handler(struct tevent_context *ev, struct tevent_immediate *im,
			void *private_data)
{
	struct job *j = private_data;

	jobs_seen.calls++;
	j->ran++;
	j->on_main = pthread_equal(pthread_self(), main_thread);
	j->seen_ev = ev;
	if (im != j->im) {
		j->ran += 1000; /* shows up as a wrong count */
	}
}

static void *job_main(void *arg)
{
	struct job *j = arg;

	j->helper = pthread_self();
	tevent_threaded_schedule_immediate(j->tctx, j->im, j->handler, j);
	return NULL;
}

static void job_start(struct job *j)
{
	assert_int_equal(pthread_create(&j->thread, NULL, job_main, j), 0);
}

static void job_join(struct job *j)
{
	assert_int_equal(pthread_join(j->thread, NULL), 0);
}

/* Schedules j from a helper thread and waits until the helper is done. */
static void job_run_helper(struct job *j)
{
	job_start(j);
	job_join(j);
}

/* ------------------------------------------------------------------------
 * Wrapper context whose immediate hooks count and check their arguments
 * ------------------------------------------------------------------------ */

struct wrap_state {
	struct tevent_context *main_ev;
	int before;
	int after;
	bool bad;
};

static void w_before_im(struct tevent_context *w, void *s,
			struct tevent_context *m, struct tevent_immediate *im,
			const char *h, const char *l)
{
	struct wrap_state *ws = s;

	ws->before++;
	if (m != ws->main_ev || !pthread_equal(pthread_self(), main_thread)) {
		ws->bad = true;
	}
}
static void w_after_im(struct tevent_context *w, void *s,
		       struct tevent_context *m, struct tevent_immediate *im,
		       const char *h, const char *l)
{
	struct wrap_state *ws = s;

	ws->after++;
	if (m != ws->main_ev) {
		ws->bad = true;
	}
}

static const struct tevent_wrapper_ops counting_wrapper_ops = {
	.name = "test_threaded_context",
	.before_use = tt_w_before_use,
	.after_use = tt_w_after_use,
	.before_fd_handler = tt_w_fd,
	.after_fd_handler = tt_w_fd,
	.before_timer_handler = tt_w_timer,
	.after_timer_handler = tt_w_timer,
	.before_immediate_handler = w_before_im,
	.after_immediate_handler = w_after_im,
	.before_signal_handler = tt_w_sig,
	.after_signal_handler = tt_w_sig,
};

/* ========================================================================
 * Creation and lifetime
 * ======================================================================== */

static void test_create(void **state)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_threaded_context *tctx, *tctx2;
	size_t baseline;

	assert_non_null(ev);
	assert_non_null(mem);
	tctx = tevent_threaded_context_create(mem, ev);
	assert_non_null(tctx);
	assert_ptr_equal(talloc_parent(tctx), mem);
	assert_string_equal(talloc_get_name(tctx),
			    "struct tevent_threaded_context");

	/* Several handles on one context; the context may own one too. */
	tctx2 = tevent_threaded_context_create(ev, ev);
	assert_non_null(tctx2);
	assert_ptr_not_equal(tctx, tctx2);
	assert_ptr_equal(talloc_parent(tctx2), ev);

	/* Making and dropping a handle leaves the context as it was. */
	baseline = talloc_total_blocks(ev);
	talloc_free(tctx2);
	tctx2 = tevent_threaded_context_create(ev, ev);
	assert_non_null(tctx2);
	assert_int_equal(talloc_total_blocks(ev), baseline);

	/* Handle first, then the context ... */
	talloc_free(tctx2);
	/* ... or the context first: the handle outlives it. */
	talloc_free(ev);
	assert_int_equal(talloc_total_blocks(mem), 2);
	talloc_free(tctx);
	talloc_free(mem);
}

/* ========================================================================
 * Scheduling from helper threads
 * ======================================================================== */

#define HELPERS 16

static void helpers_schedule_on(const char *backend)
{
	struct tevent_context *ev = tevent_context_init_byname(NULL, backend);
	struct tevent_threaded_context *tctx;
	struct job *jobs;
	struct job self;
	int i;

	assert_non_null(ev);
	/*
	 * Upstream once lost its thread support in tevent_re_initialise();
	 * go through it before the handle exists.
	 */
	assert_int_equal(tevent_re_initialise(ev), 0);
	tctx = tevent_threaded_context_create(ev, ev);
	assert_non_null(tctx);

	memset(&jobs_seen, 0, sizeof(jobs_seen));
	jobs = talloc_zero_array(ev, struct job, HELPERS);
	assert_non_null(jobs);
	for (i = 0; i < HELPERS; i++) {
		jobs[i].tctx = tctx;
		jobs[i].handler = job_handler;
		/* Prepared by the loop's thread, as upstream's tests do. */
		jobs[i].im = tevent_create_immediate(jobs);
		assert_non_null(jobs[i].im);
	}
	for (i = 0; i < HELPERS; i++) {
		job_start(&jobs[i]);
	}
	LOOP_UNTIL(ev, jobs_seen.calls == HELPERS);
	for (i = 0; i < HELPERS; i++) {
		job_join(&jobs[i]);
	}
	tt_drain(ev);
	assert_int_equal(jobs_seen.calls, HELPERS);
	for (i = 0; i < HELPERS; i++) {
		assert_int_equal(jobs[i].ran, 1);
		assert_true(jobs[i].on_main);
		assert_ptr_equal(jobs[i].seen_ev, ev);
		assert_false(pthread_equal(jobs[i].helper, main_thread));
	}

	/* Afterwards the immediates are ordinary idle ones again. */
	tevent_schedule_immediate(jobs[0].im, ev, job_handler, &jobs[0]);
	LOOP_UNTIL(ev, jobs[0].ran == 2);
	/* Helpers may use them again too. */
	job_run_helper(&jobs[1]);
	LOOP_UNTIL(ev, jobs[1].ran == 2);

	/* The loop's own thread may schedule through the handle as well;
	 * it never runs synchronously. */
	memset(&self, 0, sizeof(self));
	self.tctx = tctx;
	self.handler = job_handler;
	self.im = tevent_create_immediate(ev);
	assert_non_null(self.im);
	tevent_threaded_schedule_immediate(tctx, self.im, job_handler, &self);
	assert_int_equal(self.ran, 0);
	LOOP_UNTIL(ev, self.ran == 1);
	assert_true(self.on_main);

	talloc_free(jobs);
	talloc_free(tctx);
	talloc_free(ev);
}

static void test_helpers_schedule(void **state)
{
	const char **b;

	for (b = tt_backends(); *b != NULL; b++) {
		print_message("backend %s\n", *b);
		helpers_schedule_on(*b);
	}
}

/* ========================================================================
 * The context goes first
 * ======================================================================== */

static void test_schedule_after_context_freed(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev;
	struct tevent_threaded_context *tctx;
	struct job j;

	TT_SKIP_ON_UPSTREAM("an immediate handed over but not run when its "
			    "context goes keeps pointing at the freed context; "
			    "freeing it aborts");
	assert_non_null(mem);
	memset(&jobs_seen, 0, sizeof(jobs_seen));

	/* 1. Nothing in flight when the context goes. */
	ev = tevent_context_init(NULL);
	assert_non_null(ev);
	tctx = tevent_threaded_context_create(mem, ev);
	assert_non_null(tctx);
	memset(&j, 0, sizeof(j));
	j.tctx = tctx;
	j.handler = job_handler;
	j.im = tevent_create_immediate(mem);
	assert_non_null(j.im);
	talloc_free(ev);
	job_run_helper(&j);      /* silently dropped */
	assert_int_equal(j.ran, 0);
	/* The immediate was not taken: it is free to go. */
	assert_int_equal(talloc_free(j.im), 0);
	talloc_free(tctx);

	/*
	 * 2. Handed over, not yet run, when the context goes.  The immediate
	 * is idle again afterwards and may be freed (DESIGN.md: freeing the
	 * destination releases everything still queued).  Upstream differs
	 * here: the immediate keeps a guard destructor that aborts on free.
	 */
	ev = tevent_context_init(NULL);
	assert_non_null(ev);
	tctx = tevent_threaded_context_create(mem, ev);
	assert_non_null(tctx);
	memset(&j, 0, sizeof(j));
	j.tctx = tctx;
	j.handler = job_handler;
	j.im = tevent_create_immediate(mem);
	assert_non_null(j.im);
	job_run_helper(&j);
	talloc_free(ev);
	assert_int_equal(j.ran, 0);
	/* Later attempts through the handle are dropped as well. */
	job_run_helper(&j);
	assert_int_equal(j.ran, 0);
	assert_int_equal(jobs_seen.calls, 0);
	assert_int_equal(talloc_free(j.im), 0);

	talloc_free(mem);
}

/*
 * Helpers keep scheduling while the loop's thread frees the context in the
 * middle: everything is either run once or dropped, and every immediate
 * is free to go afterwards (upstream: see case 2 above).
 */
#define RACE_HELPERS 4

struct racer {
	struct tevent_threaded_context *tctx;
	struct tevent_immediate **ims;
	int *ran;
	unsigned long count;
	pthread_t thread;
};

static struct {
	unsigned long delivered;
	bool twice;
} race;

static void race_handler(struct tevent_context *ev,
			 struct tevent_immediate *im, void *private_data)
{
	int *ran = private_data;

	if (++*ran != 1) {
		race.twice = true;
	}
	race.delivered++;
}

static void *racer_main(void *arg)
{
	struct racer *r = arg;
	unsigned long i;

	for (i = 0; i < r->count; i++) {
		tevent_threaded_schedule_immediate(r->tctx, r->ims[i],
						   race_handler, &r->ran[i]);
	}
	return NULL;
}

/*
 * Four helpers schedule `count` immediates each through a handle on
 * `target` (the main context or a wrapper of it); after a quarter has run
 * the loop's thread frees `victim` (the main context or the wrapper).
 */
static void race_against_free(bool use_wrapper)
{
	TT_SKIP_ON_UPSTREAM("immediates still queued when their context or "
			    "wrapper goes stay tied to it; freeing them aborts "
			    "(when the race leaves any queued)");
	unsigned long count = tt_clamp_ul(tt_thread_msgs() / 100, 500, 5000);
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_context *wrap_ev = NULL;
	struct tevent_context *target;
	struct wrap_state *ws = NULL;
	struct tevent_threaded_context *tctx;
	struct racer r[RACE_HELPERS];
	unsigned long i, at_free;
	int h;

	assert_non_null(mem);
	assert_non_null(ev);
	target = ev;
	if (use_wrapper) {
		wrap_ev = tevent_context_wrapper_create(
			ev, ev, &counting_wrapper_ops, &ws, struct wrap_state);
		assert_non_null(wrap_ev);
		ws->main_ev = ev;
		target = wrap_ev;
	}
	tctx = tevent_threaded_context_create(mem, target);
	assert_non_null(tctx);
	memset(&race, 0, sizeof(race));
	for (h = 0; h < RACE_HELPERS; h++) {
		r[h].tctx = tctx;
		r[h].count = count;
		r[h].ims = talloc_array(mem, struct tevent_immediate *, count);
		r[h].ran = talloc_zero_array(mem, int, count);
		assert_non_null(r[h].ims);
		assert_non_null(r[h].ran);
		for (i = 0; i < count; i++) {
			r[h].ims[i] = tevent_create_immediate(r[h].ims);
			assert_non_null(r[h].ims[i]);
		}
	}
	for (h = 0; h < RACE_HELPERS; h++) {
		assert_int_equal(pthread_create(&r[h].thread, NULL, racer_main,
						&r[h]), 0);
	}
	/* Run a quarter of the work, then pull the rug. */
	LOOP_UNTIL(ev, race.delivered >= RACE_HELPERS * count / 4);
	at_free = race.delivered;
	if (use_wrapper) {
		talloc_free(wrap_ev);
		/* The main loop goes on; nothing of the wrapper runs any more. */
		for (h = 0; h < 100; h++) {
			tt_drain(ev);
		}
	} else {
		talloc_free(ev);
	}
	for (h = 0; h < RACE_HELPERS; h++) {
		assert_int_equal(pthread_join(r[h].thread, NULL), 0);
	}
	if (use_wrapper) {
		tt_drain(ev);
	}
	assert_false(race.twice);
	assert_int_equal(race.delivered, at_free);
	print_message("%s: %lu of %lu ran before it went\n",
		      use_wrapper ? "wrapper" : "context", race.delivered,
		      RACE_HELPERS * count);
	/* Nothing is stuck "in flight": every immediate frees normally. */
	for (h = 0; h < RACE_HELPERS; h++) {
		assert_int_equal(talloc_free(r[h].ims), 0);
	}
	talloc_free(tctx);
	if (use_wrapper) {
		talloc_free(ev);
	}
	talloc_free(mem);
}

static void test_free_context_while_helpers_schedule(void **state)
{
	race_against_free(false);
}

static void test_free_wrapper_while_helpers_schedule(void **state)
{
	race_against_free(true);
}

/* ========================================================================
 * Freeing the handle
 * ======================================================================== */

static void test_free_handle(void **state)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_threaded_context *tctx, *other;
	struct job a, b;

	assert_non_null(ev);
	memset(&jobs_seen, 0, sizeof(jobs_seen));
	tctx = tevent_threaded_context_create(ev, ev);
	other = tevent_threaded_context_create(ev, ev);
	assert_non_null(tctx);
	assert_non_null(other);

	/* What was handed over before the handle went still runs. */
	memset(&a, 0, sizeof(a));
	a.tctx = tctx;
	a.handler = job_handler;
	a.im = tevent_create_immediate(ev);
	assert_non_null(a.im);
	job_run_helper(&a);
	talloc_free(tctx);
	LOOP_UNTIL(ev, a.ran == 1);
	assert_true(a.on_main);

	/* Other handles on the same context are unaffected. */
	memset(&b, 0, sizeof(b));
	b.tctx = other;
	b.handler = job_handler;
	b.im = tevent_create_immediate(ev);
	assert_non_null(b.im);
	job_run_helper(&b);
	LOOP_UNTIL(ev, b.ran == 1);

	tt_drain(ev);
	assert_int_equal(jobs_seen.calls, 2);
	talloc_free(ev);
}

/* ========================================================================
 * 4 producers x many immediates
 *
 * An immediate may only be scheduled again once its handler has finished
 * with it, and the loop still touches it right after the handler returns.
 * So each producer has a pool of prepared slots; the handler notes a slot
 * as done and the loop's thread hands done slots back to their producer
 * only after tevent_loop_once() has returned.
 * ======================================================================== */

#define STRESS_PRODUCERS 4
#define POOL 512

struct slot {
	struct tevent_immediate *im;
	int producer;
	unsigned long seq;
};

struct stress_producer {
	int id;
	struct tevent_threaded_context *tctx;
	unsigned long count;
	bool spin;                /* poll for free slots instead of sleeping */
	int stop;                 /* atomic: the consumer gave up */
	sem_t free_slots;
	pthread_mutex_t lock;
	struct slot *free_list[POOL];
	int nfree;
	pthread_t thread;
	unsigned long next_expected; /* consumer side */
};

static struct {
	struct stress_producer *producers;
	int nproducers;
	unsigned long delivered;
	uint64_t sum;
	bool bad;
	struct slot *done[STRESS_PRODUCERS * POOL];
	int ndone;
} st;

static uint64_t slot_mix(int producer, unsigned long seq)
{
	return ((uint64_t)producer + 1) * 0x9e3779b97f4a7c15ULL ^
	       ((uint64_t)seq * 0xc2b2ae3d27d4eb4fULL + 1);
}

static void slot_handler(struct tevent_context *ev,
			 struct tevent_immediate *im, void *private_data)
{
	struct slot *s = private_data;
	struct stress_producer *p;

	if (s == NULL || s->im != im || s->producer < 0 ||
	    s->producer >= st.nproducers) {
		st.bad = true;
		return;
	}
	p = &st.producers[s->producer];
	if (s->seq != p->next_expected) {
		st.bad = true;
	}
	p->next_expected = s->seq + 1;
	st.sum += slot_mix(s->producer, s->seq);
	st.delivered++;
	CHECK(st.ndone < STRESS_PRODUCERS * POOL);
	st.done[st.ndone++] = s;
}

/* Loop's thread, outside any handler: give done slots back. */
static void slots_recycle(void)
{
	int i;

	for (i = 0; i < st.ndone; i++) {
		struct stress_producer *p = &st.producers[st.done[i]->producer];

		CHECK(pthread_mutex_lock(&p->lock) == 0);
		p->free_list[p->nfree++] = st.done[i];
		CHECK(pthread_mutex_unlock(&p->lock) == 0);
		CHECK(sem_post(&p->free_slots) == 0);
	}
	st.ndone = 0;
}

/* Takes a free slot; NULL once the consumer gave up. */
static struct slot *slot_take(struct stress_producer *p)
{
	struct slot *s;

	for (;;) {
		if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
			return NULL;
		}
		if (!p->spin) {
			tt_sem_wait_nointr(&p->free_slots);
			break;
		}
		if (sem_trywait(&p->free_slots) == 0) {
			break;
		}
		CHECK(errno == EAGAIN || errno == EINTR);
		sched_yield();
	}
	if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
		return NULL;
	}
	CHECK(pthread_mutex_lock(&p->lock) == 0);
	CHECK(p->nfree > 0);
	s = p->free_list[--p->nfree];
	CHECK(pthread_mutex_unlock(&p->lock) == 0);
	return s;
}

static void *stress_producer_main(void *arg)
{
	struct stress_producer *p = arg;
	unsigned long i;

	for (i = 0; i < p->count; i++) {
		struct slot *s = slot_take(p);

		if (s == NULL) {
			break;
		}
		s->seq = i;
		tevent_threaded_schedule_immediate(p->tctx, s->im, slot_handler,
						   s);
	}
	return NULL;
}

static void stress_start(struct stress_producer *ps, int n,
			 struct tevent_threaded_context *tctx,
			 TALLOC_CTX *mem, unsigned long count, int pool,
			 bool spin)
{
	int i, k;

	memset(&st, 0, sizeof(st));
	st.producers = ps;
	st.nproducers = n;
	for (i = 0; i < n; i++) {
		struct stress_producer *p = &ps[i];

		memset(p, 0, sizeof(*p));
		p->id = i;
		p->tctx = tctx;
		p->count = count;
		p->spin = spin;
		assert_int_equal(pthread_mutex_init(&p->lock, NULL), 0);
		CHECK(pool >= 1 && pool <= POOL);
		for (k = 0; k < pool; k++) {
			struct slot *s = talloc_zero(mem, struct slot);

			assert_non_null(s);
			s->producer = i;
			s->im = tevent_create_immediate(s);
			assert_non_null(s->im);
			p->free_list[p->nfree++] = s;
		}
		assert_int_equal(sem_init(&p->free_slots, 0, pool), 0);
	}
	for (i = 0; i < n; i++) {
		assert_int_equal(pthread_create(&ps[i].thread, NULL,
						stress_producer_main, &ps[i]),
				 0);
	}
}

static void stress_abandon(struct stress_producer *ps, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		__atomic_store_n(&ps[i].stop, 1, __ATOMIC_RELEASE);
		CHECK(sem_post(&ps[i].free_slots) == 0);
	}
}

/* Forks a child that re-initialises ev; returns its one-byte report. */
/* Reads a child's one-byte report and reaps it; '?' if it wrote none. */

/*
 * Drives the loop until `total` immediates ran; every `fork_every`
 * deliveries (0: never) forks a child that re-initialises the loop.
 * No cmocka here: on failure the producers are told to give up so that
 * they can be joined first.
 */
static bool stress_run(struct tevent_context *ev, unsigned long total,
		       unsigned long fork_every, int max_forks, int *forks,
		       int *failed, char *first_bad)
{
	unsigned long next_fork = fork_every;
	struct tt_watchdog wd;
	bool ok = tt_watchdog_arm(&wd, ev, TT_WATCHDOG_SECS);

	while (ok && st.delivered < total && !st.bad && !wd.fired) {
		if (tevent_loop_once(ev) != 0) {
			ok = false;
			break;
		}
		slots_recycle();
		if (fork_every != 0 && st.delivered >= next_fork &&
		    *forks < max_forks && *failed == 0) {
			char c = tt_fork_and_reinitialise(ev);

			next_fork += fork_every;
			(*forks)++;
			if (c != 'K') {
				(*failed)++;
				*first_bad = c;
			}
		}
	}
	tt_watchdog_disarm(&wd);
	if (!ok || st.bad || wd.fired) {
		stress_abandon(st.producers, st.nproducers);
		return false;
	}
	return true;
}

static void stress_finish_join(struct stress_producer *ps, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		if (ps[i].thread != 0) {
			CHECK(pthread_join(ps[i].thread, NULL) == 0);
			ps[i].thread = 0;
		}
	}
}

static void stress_finish(struct stress_producer *ps, int n, bool ok)
{
	uint64_t expect = 0;
	unsigned long total = 0, s;
	int i;

	stress_finish_join(ps, n);
	assert_true(ok);
	assert_false(st.bad);
	for (i = 0; i < n; i++) {
		assert_int_equal(ps[i].next_expected, ps[i].count);
		for (s = 0; s < ps[i].count; s++) {
			expect += slot_mix(i, s);
		}
		total += ps[i].count;
		sem_destroy(&ps[i].free_slots);
		pthread_mutex_destroy(&ps[i].lock);
	}
	assert_int_equal(st.delivered, total);
	assert_true(st.sum == expect);
}

static void test_stress_4_producers(void **state)
{
	unsigned long count = tt_clamp_ul(tt_thread_msgs() / 4, 1000, 1000000);
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_threaded_context *tctx;
	struct stress_producer ps[STRESS_PRODUCERS];
	int forks = 0, failed = 0;
	char bad = 0;
	size_t baseline;
	bool ok;

	assert_non_null(mem);
	assert_non_null(ev);
	tctx = tevent_threaded_context_create(mem, ev);
	assert_non_null(tctx);
	tt_drain(ev);
	baseline = talloc_total_blocks(ev);
	print_message("%d producers x %lu immediates\n", STRESS_PRODUCERS,
		      count);

	stress_start(ps, STRESS_PRODUCERS, tctx, mem, count, POOL, false);
	ok = stress_run(ev, STRESS_PRODUCERS * count, 0, 0, &forks, &failed,
			&bad);
	stress_finish(ps, STRESS_PRODUCERS, ok);
	tt_drain(ev);
	assert_int_equal(talloc_total_blocks(ev), baseline);
	talloc_free(ev);
	talloc_free(mem);
}

/* ========================================================================
 * A wrapper context as the target
 * ======================================================================== */

/*
 * A wrapper with the counting hooks on ev, a handle made on the wrapper,
 * and *j ready to be scheduled through it.  0, or a letter saying what
 * could not be made (for the forked case's report).
 */
static char wrap_job_setup(struct tevent_context *ev,
			   struct tevent_context **wrap_ev,
			   struct wrap_state **ws,
			   struct tevent_threaded_context **tctx,
			   struct job *j)
{
	*ws = NULL;
	*wrap_ev = tevent_context_wrapper_create(ev, ev, &counting_wrapper_ops,
						 ws, struct wrap_state);
	if (*wrap_ev == NULL) {
		return 'b';
	}
	(*ws)->main_ev = ev;
	*tctx = tevent_threaded_context_create(ev, *wrap_ev);
	memset(j, 0, sizeof(*j));
	j->tctx = *tctx;
	j->handler = job_handler;
	j->im = tevent_create_immediate(ev);
	if (*tctx == NULL || j->im == NULL) {
		return 'c';
	}
	return 0;
}

static void test_wrapper_target(void **state)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_context *wrap_ev;
	struct wrap_state *ws = NULL;
	struct tevent_threaded_context *tctx;
	struct job j;

	assert_non_null(ev);
	memset(&jobs_seen, 0, sizeof(jobs_seen));
	assert_int_equal(wrap_job_setup(ev, &wrap_ev, &ws, &tctx, &j), 0);
	job_run_helper(&j);
	/* Run through the main context: that is where the loop is. */
	LOOP_UNTIL(ev, j.ran == 1);
	assert_true(j.on_main);
	assert_ptr_equal(j.seen_ev, wrap_ev);
	assert_int_equal(ws->before, 1);
	assert_int_equal(ws->after, 1);
	assert_false(ws->bad);

	/* Again, after the immediate came back idle. */
	job_run_helper(&j);
	LOOP_UNTIL(ev, j.ran == 2);
	assert_ptr_equal(j.seen_ev, wrap_ev);
	assert_int_equal(ws->before, 2);
	assert_int_equal(ws->after, 2);

	talloc_free(tctx);
	talloc_free(wrap_ev);
	talloc_free(ev);
}

/*
 * Once the wrapper is gone, what is scheduled through a handle made on it
 * is dropped, as upstream does (and as for a freed main context).
 */
static void test_wrapper_freed_then_schedule(void **state)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_context *wrap_ev;
	struct wrap_state *ws = NULL;
	struct tevent_threaded_context *tctx;
	struct job j;

	assert_non_null(ev);
	memset(&jobs_seen, 0, sizeof(jobs_seen));
	assert_int_equal(wrap_job_setup(ev, &wrap_ev, &ws, &tctx, &j), 0);

	talloc_free(wrap_ev);
	job_run_helper(&j);
	tt_drain(ev);
	assert_int_equal(j.ran, 0);
	assert_int_equal(jobs_seen.calls, 0);
	/* Not taken: free to go, or to be used elsewhere. */
	tevent_schedule_immediate(j.im, ev, job_handler, &j);
	LOOP_UNTIL(ev, j.ran == 1);
	assert_ptr_equal(j.seen_ev, ev);
	assert_int_equal(talloc_free(j.im), 0);
	talloc_free(tctx);
	talloc_free(ev);
}

/*
 * The deterministic form of the race above: the helper's immediate is
 * still queued (the loop has not looked yet) when the wrapper goes.  It
 * must be dropped and come back idle, like anything scheduled through the
 * handle afterwards.  Runs in a child process (its one-byte report is '?'
 * if it died), so that an abort does not take the other cases with it;
 * no other thread runs in the parent at that point.
 */
static char wrapper_queued_child(void *unused)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_context *wrap_ev;
	struct wrap_state *ws = NULL;
	struct tevent_threaded_context *tctx;
	struct job j;
	char c;

	if (ev == NULL) {
		return 'a';
	}
	c = wrap_job_setup(ev, &wrap_ev, &ws, &tctx, &j);
	if (c != 0) {
		return c;
	}
	if (pthread_create(&j.thread, NULL, job_main, &j) != 0 ||
	    pthread_join(j.thread, NULL) != 0) {
		return 'd';
	}
	talloc_free(wrap_ev);
	if (!drain_nocmocka(ev)) {
		return 'e';
	}
	if (j.ran != 0) {
		return 'f';
	}
	if (talloc_free(j.im) != 0) {
		return 'g';
	}
	talloc_free(tctx);
	talloc_free(ev);
	return 'K';
}

static void test_free_wrapper_with_queued_immediate(void **state)
{
	TT_SKIP_ON_UPSTREAM("the queued immediate stays tied to the freed "
			    "wrapper and is never run; freeing it aborts");
	assert_int_equal(tt_fork_report(wrapper_queued_child, NULL, 120), 'K');
}

/* ========================================================================
 * fork()
 *
 * In a child:
 *  - call tevent_re_initialise() before using the loop; until then the
 *    child's copy shares its wakeup descriptor with the parent's loop.
 *  - tevent_re_initialise() drops every event of the context, as
 *    upstream does.  Immediates helpers had handed over before the fork
 *    are discarded (not run in the child; they are idle again and may be
 *    reused or freed), and handles made before the fork are dead:
 *    whatever is scheduled through them is silently dropped, exactly as
 *    after freeing the context.  Freeing them is fine.
 *  - a handle made after tevent_re_initialise() works.
 *  - helper threads do not exist in the child; the child schedules from
 *    its own thread (no new threads: ThreadSanitizer does not allow them
 *    after a multi-threaded fork).
 * The child reports one byte through a pipe and _exit()s; it never calls
 * cmocka.
 * ======================================================================== */

static char child_after_fork(struct tevent_context *ev,
			     struct tevent_threaded_context *old_tctx,
			     struct job *queued, struct job *fresh)
{
	struct tevent_threaded_context *tctx2;
	int i;

	if (tevent_re_initialise(ev) != 0) {
		return 'a';
	}
	/* What was handed over before the fork does not run here ... */
	if (!drain_nocmocka(ev)) {
		return 'b';
	}
	if (queued->ran != 0 || jobs_seen.calls != 0) {
		return 'c';
	}
	/* ... and the old handle drops everything. */
	tevent_threaded_schedule_immediate(old_tctx, fresh->im, job_handler,
					   fresh);
	if (!drain_nocmocka(ev)) {
		return 'd';
	}
	if (fresh->ran != 0) {
		return 'e';
	}
	talloc_free(old_tctx);
	/* A new handle works (scheduled from this, the only thread). */
	tctx2 = tevent_threaded_context_create(ev, ev);
	if (tctx2 == NULL) {
		return 'f';
	}
	tevent_threaded_schedule_immediate(tctx2, fresh->im, job_handler,
					   fresh);
	for (i = 0; i < 1000 && fresh->ran == 0; i++) {
		if (tevent_loop_once(ev) != 0) {
			return 'g';
		}
	}
	if (fresh->ran != 1) {
		return 'h';
	}
	/* The discarded immediate is idle: it can be used again. */
	tevent_threaded_schedule_immediate(tctx2, queued->im, job_handler,
					   queued);
	for (i = 0; i < 1000 && queued->ran == 0; i++) {
		if (tevent_loop_once(ev) != 0) {
			return 'i';
		}
	}
	if (queued->ran != 1) {
		return 'j';
	}
	talloc_free(ev);
	return 'K';
}

struct after_fork_args {
	struct tevent_context *ev;
	struct tevent_threaded_context *tctx;
	struct job *queued, *fresh;
};

static char after_fork_child(void *arg)
{
	struct after_fork_args *fa = arg;

	return child_after_fork(fa->ev, fa->tctx, fa->queued, fa->fresh);
}

static void test_fork_child_reinitialise(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_threaded_context *tctx;
	struct job queued, fresh;
	struct after_fork_args fa;
	char c;

	assert_non_null(mem);
	assert_non_null(ev);
	memset(&jobs_seen, 0, sizeof(jobs_seen));
	tctx = tevent_threaded_context_create(mem, ev);
	assert_non_null(tctx);

	/* Handed over by a helper (finished) before the fork. */
	memset(&queued, 0, sizeof(queued));
	queued.tctx = tctx;
	queued.handler = job_handler;
	queued.im = tevent_create_immediate(mem);
	assert_non_null(queued.im);
	job_run_helper(&queued);

	memset(&fresh, 0, sizeof(fresh));
	fresh.im = tevent_create_immediate(mem);
	assert_non_null(fresh.im);

	fa.ev = ev;
	fa.tctx = tctx;
	fa.queued = &queued;
	fa.fresh = &fresh;
	c = tt_fork_report(after_fork_child, &fa, 120); /* hang guard only */
	assert_int_equal(c, 'K');

	/* The parent's copy runs here as usual. */
	LOOP_UNTIL(ev, queued.ran == 1);
	assert_true(queued.on_main);
	tt_drain(ev);
	assert_int_equal(jobs_seen.calls, 1);
	talloc_free(tctx);
	talloc_free(ev);
	talloc_free(mem);
}

/*
 * A child re-initialising its loop must not disturb the parent's: helpers
 * scheduling after the fork still wake the parent.  The helper waits until
 * the parent really sleeps.
 */
static struct {
	struct tt_sleep_gate gate;
} pw;

static void *pw_helper(void *arg)
{
	struct job *j = arg;

	tt_sem_wait_nointr(&pw.gate.go);
	tevent_threaded_schedule_immediate(j->tctx, j->im, job_handler, j);
	return NULL;
}

/* Hang detector for a case skipped by default, not a performance limit. */
#define LOST_WAKEUP_SECS 20

static void test_fork_parent_still_woken(void **state)
{
	struct tevent_context *ev;
	struct tevent_threaded_context *tctx;
	struct tt_watchdog hang;
	struct job j;
	pthread_t t;


	memset(&pw, 0, sizeof(pw));
	memset(&jobs_seen, 0, sizeof(jobs_seen));
	assert_int_equal(sem_init(&pw.gate.go, 0, 0), 0);
	ev = tevent_context_init(NULL);
	assert_non_null(ev);
	tctx = tevent_threaded_context_create(ev, ev);
	assert_non_null(tctx);
	tt_drain(ev);

	assert_int_equal(tt_fork_and_reinitialise(ev), 'K');

	memset(&j, 0, sizeof(j));
	j.tctx = tctx;
	j.im = tevent_create_immediate(ev);
	assert_non_null(j.im);
	tevent_set_trace_callback(ev, tt_sleep_gate_trace, &pw.gate);
	assert_int_equal(pthread_create(&t, NULL, pw_helper, &j), 0);
	assert_true(tt_watchdog_arm(&hang, ev, LOST_WAKEUP_SECS));
	while (j.ran == 0 && !hang.fired) {
		assert_int_equal(tevent_loop_once(ev), 0);
	}
	tt_sleep_gate_open(&pw.gate); /* in case the loop never slept */
	assert_int_equal(pthread_join(t, NULL), 0);
	tevent_set_trace_callback(ev, NULL, NULL);
	tt_watchdog_disarm(&hang);
	tt_drain(ev);
	talloc_free(ev);
	sem_destroy(&pw.gate.go);
	assert_false(hang.fired);
	assert_int_equal(j.ran, 1);
}

/*
 * Samba forks while pthreadpool helpers are scheduling results.  A child
 * must be able to re-initialise its loop whatever the helpers were doing
 * at that moment.  (The poll backend keeps this case clear of the epoll
 * problem above.)
 */
static void test_fork_while_helpers_schedule(void **state)
{
	unsigned long count = tt_clamp_ul(tt_thread_msgs() / 10, 20000, 100000);
	const int max_forks = tt_busy_forks();
	TALLOC_CTX *mem;
	struct tevent_context *ev;
	struct tevent_threaded_context *tctx;
	struct stress_producer ps[2];
	int forks = 0, failed = 0;
	char bad = 0;
	cpu_set_t saved_cpus, one_cpu;
	bool pinned;
	bool ok;


	mem = talloc_new(NULL);
	assert_non_null(mem);
	ev = tevent_context_init_byname(NULL, "poll");
	assert_non_null(ev);
	tctx = tevent_threaded_context_create(mem, ev);
	assert_non_null(tctx);
	/*
	 * Helpers in lock-step with the loop (one slot each, never
	 * sleeping), all on one CPU: a helper that wakes the loop tends to be
	 * preempted by it right there, inside the hand-over, which is where
	 * fork() should catch it.  The threads inherit the mask; it is
	 * restored afterwards.
	 */
	assert_int_equal(sched_getaffinity(0, sizeof(saved_cpus), &saved_cpus),
			 0);
	CPU_ZERO(&one_cpu);
	CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one_cpu);
	pinned = sched_setaffinity(0, sizeof(one_cpu), &one_cpu) == 0;
	stress_start(ps, 2, tctx, mem, count, 1, true);
	ok = stress_run(ev, 2 * count, 2 * count / max_forks, max_forks, &forks,
			&failed, &bad);
	stress_finish_join(ps, 2);
	if (pinned) {
		sched_setaffinity(0, sizeof(saved_cpus), &saved_cpus);
	}
	stress_finish(ps, 2, ok);
	print_message("%d forks, %d children failed (report '%c')\n", forks,
		      failed, bad ? bad : '-');
	talloc_free(ev);
	talloc_free(mem);
	assert_int_equal(failed, 0);
}

/*
 * Freeing an immediate after handing it to tevent_threaded_schedule_immediate()
 * and before the loop picked it up is a fatal error (upstream guards it
 * with a destructor that aborts).  Checked in a child process.
 */
static void never_run(struct tevent_context *ev, struct tevent_immediate *im,
		      void *private_data)
{
	abort();
}

static void free_while_in_transit(void *arg)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	struct tevent_threaded_context *tctx;
	struct tevent_immediate *im;

	(void)arg;
	tctx = tevent_threaded_context_create(ev, ev);
	im = tevent_create_immediate(NULL);
	if (ev == NULL || tctx == NULL || im == NULL) {
		_exit(2);
	}
	tevent_threaded_schedule_immediate(tctx, im, never_run, NULL);
	talloc_free(im);
}

static void test_free_while_in_transit_aborts(void **state)
{
	(void)state;
	tt_expect_sigabrt(free_while_in_transit, NULL);
}

/*
 * Immediates that producers create on NULL and their handlers free: the
 * memory of a bare one may be freed later by a producer, but whatever the
 * handler hung below one is freed on the loop's thread, right away.
 * Leaks and double frees would show under ASan and valgrind.
 */
#define FREED_MSGS 2000

static struct {
	int calls;
	int children_freed;
	int children_freed_off_main;
} fih;

static int fih_child_destructor(char *c)
{
	fih.children_freed++;
	if (!pthread_equal(pthread_self(), main_thread)) {
		fih.children_freed_off_main++;
	}
	return 0;
}

static void fih_handler(struct tevent_context *ev, struct tevent_immediate *im,
			void *private_data)
{
	fih.calls++;
	if ((uintptr_t)private_data % 2 == 1) {
		char *c = talloc(im, char);
		if (c != NULL) {
			talloc_set_destructor(c, fih_child_destructor);
		}
	}
	talloc_free(im);
}

struct fih_producer {
	struct tevent_threaded_context *tctx;
	pthread_t thread;
};

static void *fih_producer_main(void *arg)
{
	struct fih_producer *p = arg;
	uintptr_t i;

	for (i = 0; i < FREED_MSGS; i++) {
		struct tevent_immediate *im = tevent_create_immediate(NULL);
		CHECK(im != NULL);
		tevent_threaded_schedule_immediate(p->tctx, im, fih_handler,
						   (void *)i);
	}
	return NULL;
}

static void test_freed_in_handler(void **state)
{
	struct tevent_context *ev = tevent_context_init(NULL);
	struct fih_producer p[2];
	int i;

	assert_non_null(ev);
	memset(&fih, 0, sizeof(fih));
	for (i = 0; i < 2; i++) {
		p[i].tctx = tevent_threaded_context_create(ev, ev);
		assert_non_null(p[i].tctx);
		assert_int_equal(pthread_create(&p[i].thread, NULL,
						fih_producer_main, &p[i]), 0);
	}
	LOOP_UNTIL(ev, fih.calls == 2 * FREED_MSGS);
	for (i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(p[i].thread, NULL), 0);
	}
	tt_drain(ev);
	assert_int_equal(fih.calls, 2 * FREED_MSGS);
	assert_int_equal(fih.children_freed, FREED_MSGS);
	assert_int_equal(fih.children_freed_off_main, 0);
	talloc_free(p[0].tctx);
	/* Frees what the producers did not take back, and p[1].tctx. */
	talloc_free(ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_helpers_schedule),
		cmocka_unit_test(test_schedule_after_context_freed),
		cmocka_unit_test(test_free_context_while_helpers_schedule),
		cmocka_unit_test(test_free_wrapper_while_helpers_schedule),
		cmocka_unit_test(test_free_handle),
		cmocka_unit_test(test_free_while_in_transit_aborts),
		cmocka_unit_test(test_freed_in_handler),
		cmocka_unit_test(test_stress_4_producers),
		cmocka_unit_test(test_wrapper_target),
		cmocka_unit_test(test_wrapper_freed_then_schedule),
		cmocka_unit_test(test_free_wrapper_with_queued_immediate),
		cmocka_unit_test(test_fork_child_reinitialise),
		cmocka_unit_test(test_fork_parent_still_woken),
		cmocka_unit_test(test_fork_while_helpers_schedule),
	};

	/* First thing: the NULL context is shared by all threads. */
	talloc_disable_null_tracking();
	main_thread = pthread_self();
	tt_check_library();
	if (getenv("TT_FILTER") != NULL) {
		cmocka_set_test_filter(getenv("TT_FILTER"));
	}
	return cmocka_run_group_tests_name("tevent_threaded_context", tests,
					   NULL, NULL);
}

/*
 * Port of upstream tevent's lib/tevent/tests/test_tevent_tag.c to our own
 * cmocka code: an event's tag starts at 0, keeps what it is set to, and
 * survives rescheduling and tevent_re_initialise().  Upstream case ->
 * function here:
 *
 *   test_fd_tag           up_fd_tag
 *   test_timer_tag        up_timer_tag
 *   test_signal_tag       up_signal_tag
 *   test_immediate_tag    up_immediate_tag
 *   test_queue_entry_tag  up_queue_entry_tag
 *
 * Upstream watches fd 0 in up_fd_tag; we watch a pipe, so that what the
 * test was started with as stdin does not matter.
 */

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>

#include "tt.h"
#include "up.h"

#pragma GCC diagnostic ignored "-Wunused-parameter"

/* None of the handlers ever runs: no loop is driven here. */
static void on_fd(struct tevent_context *ev, struct tevent_fd *fde,
		  uint16_t flags, void *priv)
{
}

static void on_timer(struct tevent_context *ev, struct tevent_timer *te,
		     struct timeval now, void *priv)
{
}

static void on_signal(struct tevent_context *ev, struct tevent_signal *se,
		      int signum, int count, void *siginfo, void *priv)
{
}

static void on_immediate(struct tevent_context *ev,
			 struct tevent_immediate *im, void *priv)
{
}

static void on_queue_trigger(struct tevent_req *req, void *priv)
{
}

/*
 * What differs between the kinds in the one case they share: the tag
 * starts at 0, keeps what it is set to, and survives KEEP (if any) and
 * tevent_re_initialise().
 */
struct tag_kind {
	uint64_t (*get_tag)(const void *event);
	void (*set_tag)(void *event, uint64_t tag);
	void *(*create)(struct tevent_context *ev, int fd);
	void (*keep)(struct tevent_context *ev, void *event);
};

struct fixture {
	struct tevent_context *ev;
	const struct tag_kind *kind;
	int p[2];
};

static void *fd_new(struct tevent_context *ev, int fd)
{
	return tevent_add_fd(ev, ev, fd, TEVENT_FD_READ, on_fd, NULL);
}

static void *timer_new(struct tevent_context *ev, int fd)
{
	return tevent_add_timer(ev, ev, tevent_timeval_current(), on_timer,
				NULL);
}

/* moving the deadline keeps the tag */
static void timer_keep(struct tevent_context *ev, void *te)
{
	tevent_update_timer(te, tevent_timeval_current());
}

static void *signal_new(struct tevent_context *ev, int fd)
{
	return tevent_add_signal(ev, ev, SIGUSR1, 0, on_signal, NULL);
}

static void *immediate_new(struct tevent_context *ev, int fd)
{
	return tevent_create_immediate(ev);
}

/* scheduling keeps the tag */
static void immediate_keep(struct tevent_context *ev, void *im)
{
	tevent_schedule_immediate(im, ev, on_immediate, NULL);
}

#define TAG_KIND(OBJ, KEEP) {						\
		.get_tag = up_##OBJ##_get_tag,				\
		.set_tag = up_##OBJ##_set_tag,				\
		.create = OBJ##_new,					\
		.keep = (KEEP),						\
	}

static const struct tag_kind fd_kind = TAG_KIND(fd, NULL);
static const struct tag_kind timer_kind = TAG_KIND(timer, timer_keep);
static const struct tag_kind signal_kind = TAG_KIND(signal, NULL);
static const struct tag_kind immediate_kind =
	TAG_KIND(immediate, immediate_keep);

static int setup(void **state)
{
	struct fixture *f = talloc_zero(NULL, struct fixture);

	assert_non_null(f);
	f->kind = *state;
	f->ev = tevent_context_init(f);
	assert_non_null(f->ev);
	assert_int_equal(pipe(f->p), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int p0 = f->p[0], p1 = f->p[1];

	talloc_free(f);
	close(p0);
	close(p1);
	return 0;
}

static void event_tag(void **state)
{
	struct fixture *f = *state;
	const struct tag_kind *k = f->kind;
	void *event;

	event = k->create(f->ev, f->p[0]);
	assert_non_null(event);
	assert_int_equal(k->get_tag(event), 0);

	k->set_tag(event, 1);
	assert_int_equal(k->get_tag(event), 1);

	if (k->keep != NULL) {
		k->keep(f->ev, event);
		assert_int_equal(k->get_tag(event), 1);
	}

	tevent_re_initialise(f->ev);
	assert_int_equal(k->get_tag(event), 1);

	talloc_free(event);
}

static void up_queue_entry_tag(void **state)
{
	struct fixture *f = *state;
	struct tevent_queue *q;
	struct tevent_queue_entry *e1, *e2;
	struct tevent_req *r1, *r2;
	int *s1, *s2;

	q = tevent_queue_create(f->ev, "up_tag_queue");
	assert_non_null(q);

	r1 = tevent_req_create(f->ev, &s1, int);
	r2 = tevent_req_create(f->ev, &s2, int);
	assert_non_null(r1);
	assert_non_null(r2);
	e1 = tevent_queue_add_entry(q, f->ev, r1, on_queue_trigger, NULL);
	e2 = tevent_queue_add_entry(q, f->ev, r2, on_queue_trigger, NULL);
	assert_non_null(e1);
	assert_non_null(e2);

	assert_int_equal(tevent_queue_entry_get_tag(e1), 0);
	assert_int_equal(tevent_queue_entry_get_tag(e2), 0);

	tevent_queue_entry_set_tag(e1, 1);
	tevent_queue_entry_set_tag(e2, 2);
	assert_int_equal(tevent_queue_entry_get_tag(e1), 1);
	assert_int_equal(tevent_queue_entry_get_tag(e2), 2);

	TALLOC_FREE(q);
}

/* Case up_KIND_tag: event_tag() on that kind. */
#define KIND_CASE(KIND) \
	{ "up_" #KIND "_tag", event_tag, setup, teardown, (void *)&KIND##_kind }

int main(void)
{
	const struct CMUnitTest tests[] = {
		KIND_CASE(fd),
		KIND_CASE(timer),
		KIND_CASE(signal),
		KIND_CASE(immediate),
		cmocka_unit_test_setup_teardown(up_queue_entry_tag, setup,
						teardown),
	};

	tt_check_library();
	return cmocka_run_group_tests_name("upstream tests/test_tevent_tag.c",
					   tests, NULL, NULL);
}

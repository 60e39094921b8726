/*
 * immediates.c - immediate events (doc/immediates.md)
 *
 *  1. Immediates run in the order they were scheduled, one per loop turn;
 *     scheduling one that is already pending moves it to the end, and
 *     tevent_reset_immediate() takes it off the queue.  The objects stay
 *     allocated after they ran and can be scheduled again.
 *  2. A job that reschedules its own immediate runs chunk after chunk:
 *     a readable fd is only served once the job stops rescheduling,
 *     because a loop turn runs a pending immediate before it looks at fds.
 * Exits 0 when everything ran in the expected order.
 */

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

static void named(struct tevent_context *ev, struct tevent_immediate *im,
		  void *private_data)
{
	note(private_data);
}

/* A long job cut into chunks; one chunk per loop turn. */
struct job {
	struct tevent_immediate *im;
	int chunks_left;
	int done;
};

static void job_step(struct tevent_context *ev, struct tevent_immediate *im,
		     void *private_data)
{
	struct job *j = private_data;
	char name[16];

	snprintf(name, sizeof(name), "chunk%d", ++j->done);
	note(name);
	if (--j->chunks_left > 0) {
		/* Same object again: no allocation per chunk. */
		tevent_schedule_immediate(im, ev, job_step, j);
	}
}

static void readable(struct tevent_context *ev, struct tevent_fd *fde,
		     uint16_t flags, void *private_data)
{
	int *fd = private_data;
	char c;

	if (read(*fd, &c, 1) == 1) {
		note("fd");
	}
	talloc_free(fde);
}

static bool run_turns(struct tevent_context *ev, int n)
{
	while (n-- > 0) {
		if (tevent_loop_once(ev) != 0) {
			return false;
		}
	}
	return true;
}

int main(void)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = tevent_context_init(mem);
	struct tevent_immediate *a, *b, *c;
	struct job *j;
	int sp[2];
	bool ok = true;

	print_library();
	a = tevent_create_immediate(mem);
	b = tevent_create_immediate(mem);
	c = tevent_create_immediate(mem);
	j = talloc_zero(mem, struct job);
	if (ev == NULL || a == NULL || b == NULL || c == NULL || j == NULL ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, sp) != 0) {
		fprintf(stderr, "immediates: setup failed\n");
		return 1;
	}

	/* Part 1: queue order, moving, cancelling, reuse. */
	tevent_schedule_immediate(a, ev, named, "a");
	tevent_schedule_immediate(b, ev, named, "b");
	tevent_schedule_immediate(c, ev, named, "c");
	tevent_schedule_immediate(a, ev, named, "a-again"); /* moves to the end */
	tevent_reset_immediate(b);                          /* cancelled */
	ok &= run_turns(ev, 1);
	printf("after one turn: %s\n", order);
	ok &= strcmp(order, "c") == 0;
	ok &= run_turns(ev, 1);
	tevent_schedule_immediate(b, ev, named, "b-reused"); /* still usable */
	ok &= tevent_loop_wait(ev) == 0;
	printf("queue order:    %s\n", order);
	ok &= strcmp(order, "c a-again b-reused") == 0;

	/* Part 2: an immediate that keeps rescheduling holds off fds. */
	order[0] = '\0';
	j->chunks_left = 3;
	j->im = tevent_create_immediate(j);
	ok &= j->im != NULL && write(sp[1], "x", 1) == 1;
	ok &= tevent_add_fd(ev, mem, sp[0], TEVENT_FD_READ, readable,
			    &sp[0]) != NULL;
	tevent_schedule_immediate(j->im, ev, job_step, j);
	ok &= tevent_loop_wait(ev) == 0;
	printf("job and fd:     %s\n", order);
	ok &= strcmp(order, "chunk1 chunk2 chunk3 fd") == 0;

	printf("%s\n", ok ? "OK" : "FAILED");
	close(sp[0]);
	close(sp[1]);
	talloc_free(mem);
	return ok ? 0 : 1;
}

/*
 * loop.c - the event context and the loop (doc/context.md)
 *
 * Shows, in this order:
 *  1. the available backends, and a context on each of them run with
 *     tevent_loop_wait() until nothing is left;
 *  2. one tevent_loop_once() call = one handler: what each turn ran when
 *     an immediate, a due timer and a readable fd are all pending;
 *  3. a wait timeout of 0: a turn with nothing to do fails with EAGAIN
 *     instead of sleeping;
 *  4. fork(): the child calls tevent_re_initialise() and starts afresh,
 *     the parent's events are untouched.
 * Exits 0 when everything behaved as described.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <talloc.h>
#include <tevent.h>

#include "example_util.h"	/* print_library(), append_word() */

/* tevent handlers have fixed signatures; not all use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"

/* Every handler appends its name here, so main() can print the order. */
static char ran[256];

static void note(const char *what)
{
	append_word(ran, sizeof(ran), what);
}

static void on_immediate(struct tevent_context *ev, struct tevent_immediate *im,
			 void *private_data)
{
	note(private_data);
}

static void on_timer(struct tevent_context *ev, struct tevent_timer *te,
		     struct timeval now, void *private_data)
{
	note(private_data);
}

static void on_readable(struct tevent_context *ev, struct tevent_fd *fde,
			uint16_t flags, void *private_data)
{
	int *fd = private_data;
	char c;

	if (read(*fd, &c, 1) == 1) {
		note("fd");
	}
	/* Without this the fd event would keep tevent_loop_wait() busy. */
	talloc_free(fde);
}

/* Schedules one immediate, one due timer and one readable fd on ev. */
static bool add_work(struct tevent_context *ev, int sp[2])
{
	struct tevent_immediate *im = tevent_create_immediate(ev);

	if (im == NULL || write(sp[1], "x", 1) != 1) {
		return false;
	}
	tevent_schedule_immediate(im, ev, on_immediate, "immediate");
	/* tevent_timeval_zero(): due at once */
	if (tevent_add_timer(ev, ev, tevent_timeval_zero(), on_timer,
			     "timer") == NULL) {
		return false;
	}
	return tevent_add_fd(ev, ev, sp[0], TEVENT_FD_READ, on_readable,
			     &sp[0]) != NULL;
}

static bool backends(TALLOC_CTX *mem)
{
	const char **names = tevent_backend_list(mem);
	int sp[2];
	size_t i;

	if (names == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, sp) != 0) {
		return false;
	}
	printf("backends:");
	for (i = 0; names[i] != NULL; i++) {
		printf(" %s", names[i]);
	}
	printf("\n");

	for (i = 0; names[i] != NULL; i++) {
		struct tevent_context *ev;
		int ret;

		ev = tevent_context_init_byname(mem, names[i]);
		if (ev == NULL || !add_work(ev, sp)) {
			return false;
		}
		ran[0] = '\0';
		/* Returns once no fd, timer, immediate or signal is left. */
		ret = tevent_loop_wait(ev);
		printf("%-8s tevent_loop_wait() = %d, ran: %s\n", names[i],
		       ret, ran);
		talloc_free(ev);
		if (ret != 0) {
			return false;
		}
	}
	close(sp[0]);
	close(sp[1]);
	return true;
}

static bool one_handler_per_turn(struct tevent_context *ev)
{
	int sp[2];
	int turn;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) != 0 || !add_work(ev, sp)) {
		return false;
	}
	for (turn = 1; turn <= 3; turn++) {
		ran[0] = '\0';
		if (tevent_loop_once(ev) != 0) {
			return false;
		}
		printf("turn %d ran: %s\n", turn, ran);
	}
	close(sp[0]);
	close(sp[1]);
	return strcmp(ran, "fd") == 0;
}

static bool wait_timeout_zero(struct tevent_context *ev)
{
	int sp[2];
	struct tevent_fd *idle;
	int ret, err;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) != 0) {
		return false;
	}
	/* An fd that never becomes readable: without a wait timeout of 0
	 * the next turn would sleep for up to 30 seconds. */
	idle = tevent_add_fd(ev, ev, sp[0], TEVENT_FD_READ, on_readable,
			     &sp[0]);
	if (idle == NULL) {
		return false;
	}
	tevent_context_set_wait_timeout(ev, 0);
	errno = 0;
	ret = tevent_loop_once(ev);
	err = errno;
	tevent_context_set_wait_timeout(ev, 30);
	printf("wait timeout 0: tevent_loop_once() = %d, errno %s\n", ret,
	       err == EAGAIN ? "EAGAIN" : strerror(err));
	talloc_free(idle);
	close(sp[0]);
	close(sp[1]);
	return ret == -1 && err == EAGAIN;
}

static bool across_fork(struct tevent_context *ev)
{
	struct tevent_immediate *im = tevent_create_immediate(ev);
	pid_t pid;
	int status;

	if (im == NULL) {
		return false;
	}
	/* Pending in the parent when it forks. */
	tevent_schedule_immediate(im, ev, on_immediate, "parent-immediate");
	ran[0] = '\0';

	fflush(stdout); /* or the child would print the buffer again */
	pid = fork();
	if (pid == -1) {
		return false;
	}
	if (pid == 0) {
		/* The child's copy shares backend state with the parent:
		 * give it its own, which also drops every inherited event. */
		if (tevent_re_initialise(ev) != 0) {
			_exit(1);
		}
		tevent_schedule_immediate(tevent_create_immediate(ev), ev,
					  on_immediate, "child-immediate");
		if (tevent_loop_wait(ev) != 0) {
			_exit(1);
		}
		printf("child:  ran: %s\n", ran);
		fflush(stdout);
		_exit(strcmp(ran, "child-immediate") == 0 ? 0 : 1);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		return false;
	}
	if (tevent_loop_wait(ev) != 0) {
		return false;
	}
	printf("parent: ran: %s\n", ran);
	return strcmp(ran, "parent-immediate") == 0;
}

int main(void)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev;
	bool ok;

	print_library();
	ev = tevent_context_init(mem);
	if (mem == NULL || ev == NULL) {
		fprintf(stderr, "loop: out of memory\n");
		return 1;
	}
	ok = backends(mem);
	ok = ok && one_handler_per_turn(ev);
	ok = ok && wait_timeout_zero(ev);
	ok = ok && across_fork(ev);
	printf("%s\n", ok ? "OK" : "FAILED");
	talloc_free(mem);
	return ok ? 0 : 1;
}

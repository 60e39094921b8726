/*
 * signals.c - signal events (doc/signals.md)
 *
 *  1. SIGUSR1 sent three times before the loop runs: one handler call
 *     with count 3.
 *  2. SIGUSR2 with SA_SIGINFO, sent three times with sigqueue(): one call
 *     per delivery, each with its own siginfo (and value).
 *  3. SIGCHLD: reaping a child from the loop, the classic use.
 *  4. SA_RESETHAND: a one-shot event, freed by the library after it ran.
 *  5. Once the last event for SIGUSR1 is freed, the disposition the
 *     program had before (SIG_DFL here) is back.
 * Exits 0 when everything behaved as described.
 */

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <talloc.h>
#include <tevent.h>

#include "example_util.h"	/* print_library() */

/* tevent handlers have fixed signatures; not all use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"

struct seen {
	int usr1_calls, usr1_count;
	int usr2_calls, usr2_value_sum;
	int child_status;
	bool child_reaped;
	int oneshot_calls;
};

/* These run from the loop, not from the signal handler: anything goes. */
static void on_usr1(struct tevent_context *ev, struct tevent_signal *se,
		    int signum, int count, void *siginfo, void *private_data)
{
	struct seen *s = private_data;

	s->usr1_calls++;
	s->usr1_count += count;
}

static void on_usr2(struct tevent_context *ev, struct tevent_signal *se,
		    int signum, int count, void *siginfo, void *private_data)
{
	struct seen *s = private_data;
	siginfo_t *info = siginfo;

	s->usr2_calls++;
	s->usr2_value_sum += info->si_value.sival_int;
}

static void on_child(struct tevent_context *ev, struct tevent_signal *se,
		     int signum, int count, void *siginfo, void *private_data)
{
	struct seen *s = private_data;
	int status;

	/* count may cover several children: reap all that are done */
	while (waitpid(-1, &status, WNOHANG) > 0) {
		s->child_reaped = true;
		s->child_status = WEXITSTATUS(status);
	}
}

static void on_oneshot(struct tevent_context *ev, struct tevent_signal *se,
		       int signum, int count, void *siginfo, void *private_data)
{
	struct seen *s = private_data;

	s->oneshot_calls++;
}

int main(void)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = tevent_context_init(mem);
	struct seen s = { 0 };
	struct tevent_signal *usr1, *usr2, *chld, *oneshot;
	struct sigaction now;
	union sigval v;
	int i, turns = 0;
	bool ok;

	print_library();
	if (ev == NULL) {
		return 1;
	}
	usr1 = tevent_add_signal(ev, mem, SIGUSR1, 0, on_usr1, &s);
	usr2 = tevent_add_signal(ev, mem, SIGUSR2, SA_SIGINFO, on_usr2, &s);
	chld = tevent_add_signal(ev, mem, SIGCHLD, 0, on_child, &s);
	oneshot = tevent_add_signal(ev, mem, SIGURG, SA_RESETHAND, on_oneshot,
				    &s);
	if (usr1 == NULL || usr2 == NULL || chld == NULL || oneshot == NULL) {
		fprintf(stderr, "signals: tevent_add_signal failed\n");
		return 1;
	}

	/* A signal sent to ourselves arrives before kill() returns; the
	 * library only records it.  The handlers run inside the loop. */
	for (i = 0; i < 3; i++) {
		kill(getpid(), SIGUSR1);
		memset(&v, 0, sizeof(v));
		v.sival_int = i + 1;
		sigqueue(getpid(), SIGUSR2, v);
	}
	kill(getpid(), SIGURG);

	fflush(stdout);
	if (fork() == 0) {
		_exit(7);
	}

	/* SIGCHLD comes whenever the child is done; the loop sleeps until
	 * then (the library wakes it from the signal handler). */
	while ((!s.child_reaped || s.usr1_calls == 0 || s.usr2_calls < 3 ||
		s.oneshot_calls == 0) && turns++ < 1000) {
		if (tevent_loop_once(ev) != 0) {
			perror("tevent_loop_once");
			return 1;
		}
	}

	printf("SIGUSR1: %d handler call(s), count %d\n", s.usr1_calls,
	       s.usr1_count);
	printf("SIGUSR2 (SA_SIGINFO): %d handler calls, values add up to %d\n",
	       s.usr2_calls, s.usr2_value_sum);
	printf("SIGCHLD: child exited with status %d\n", s.child_status);
	printf("SIGURG (SA_RESETHAND): %d handler call(s)\n", s.oneshot_calls);

	/* usr1 was the only SIGUSR1 event: the old disposition returns. */
	talloc_free(usr1);
	sigaction(SIGUSR1, NULL, &now);
	printf("SIGUSR1 after freeing its event: %s\n",
	       now.sa_handler == SIG_DFL ? "SIG_DFL again" : "still caught");

	ok = s.usr1_calls == 1 && s.usr1_count == 3 && s.usr2_calls == 3 &&
	     s.usr2_value_sum == 6 && s.child_reaped && s.child_status == 7 &&
	     s.oneshot_calls == 1 && now.sa_handler == SIG_DFL;
	printf("%s\n", ok ? "OK" : "FAILED");
	talloc_free(mem);
	return ok ? 0 : 1;
}

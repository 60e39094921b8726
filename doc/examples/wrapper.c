/*
 * wrapper.c - wrapper contexts (doc/wrappers.md)
 *
 * A wrapper context shares the loop of its main context and runs hooks
 * around the handlers of the events created through it; Samba uses that
 * to switch user credentials.  Here the hooks keep a "current user"
 * variable, and the handlers print who they run as:
 *  - a timer and an immediate added through the wrapper run as "alice";
 *    a timer added on the main context runs as "root";
 *  - tevent_context_push_use()/pop_use() enter the wrapper's environment
 *    for code outside any handler;
 *  - the events of a freed wrapper never run.
 * Exits 0 when everything behaved as described.
 */

#define TEVENT_DEPRECATED 1	/* the wrapper API is marked deprecated */

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <talloc.h>
#include <tevent.h>

#include "example_util.h"	/* print_library() */

/* tevent handlers have fixed signatures; not all use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"
/* We know: that is why TEVENT_DEPRECATED is defined above. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

/* What a credential switch would change; "root" outside any wrapper. */
static const char *current_user = "root";
static char log_text[512];

static void logf_(const char *what)
{
	strncat(log_text, what, sizeof(log_text) - strlen(log_text) - 1);
	strncat(log_text, "\n", sizeof(log_text) - strlen(log_text) - 1);
}

/* The wrapper's private state, allocated by tevent_context_wrapper_create. */
struct user_wrapper {
	const char *user;
	const char *saved;
};

static void enter(void *private_state)
{
	struct user_wrapper *w = private_state;

	w->saved = current_user;
	current_user = w->user;
}

static void leave(void *private_state)
{
	struct user_wrapper *w = private_state;

	current_user = w->saved;
}

static bool before_use(struct tevent_context *wrap_ev, void *private_state,
		       struct tevent_context *main_ev, const char *location)
{
	enter(private_state);
	return true;	/* false would make tevent_context_push_use() fail */
}

static void after_use(struct tevent_context *wrap_ev, void *private_state,
		      struct tevent_context *main_ev, const char *location)
{
	leave(private_state);
}

static void before_fd(struct tevent_context *wrap_ev, void *private_state,
		      struct tevent_context *main_ev, struct tevent_fd *fde,
		      uint16_t flags, const char *handler_name,
		      const char *location)
{
	enter(private_state);
}

static void after_fd(struct tevent_context *wrap_ev, void *private_state,
		     struct tevent_context *main_ev, struct tevent_fd *fde,
		     uint16_t flags, const char *handler_name,
		     const char *location)
{
	leave(private_state);
}

static void before_timer(struct tevent_context *wrap_ev, void *private_state,
			 struct tevent_context *main_ev,
			 struct tevent_timer *te, struct timeval requested,
			 struct timeval trigger, const char *handler_name,
			 const char *location)
{
	enter(private_state);
}

static void after_timer(struct tevent_context *wrap_ev, void *private_state,
			struct tevent_context *main_ev,
			struct tevent_timer *te, struct timeval requested,
			struct timeval trigger, const char *handler_name,
			const char *location)
{
	leave(private_state);
}

static void before_immediate(struct tevent_context *wrap_ev,
			     void *private_state,
			     struct tevent_context *main_ev,
			     struct tevent_immediate *im,
			     const char *handler_name, const char *location)
{
	enter(private_state);
}

static void after_immediate(struct tevent_context *wrap_ev,
			    void *private_state,
			    struct tevent_context *main_ev,
			    struct tevent_immediate *im,
			    const char *handler_name, const char *location)
{
	leave(private_state);
}

static void before_signal(struct tevent_context *wrap_ev, void *private_state,
			  struct tevent_context *main_ev,
			  struct tevent_signal *se, int signum, int count,
			  void *siginfo, const char *handler_name,
			  const char *location)
{
	enter(private_state);
}

static void after_signal(struct tevent_context *wrap_ev, void *private_state,
			 struct tevent_context *main_ev,
			 struct tevent_signal *se, int signum, int count,
			 void *siginfo, const char *handler_name,
			 const char *location)
{
	leave(private_state);
}

/* Every hook must be set: the library calls them unconditionally. */
static const struct tevent_wrapper_ops user_ops = {
	.name = "user_wrapper",
	.before_use = before_use,
	.after_use = after_use,
	.before_fd_handler = before_fd,
	.after_fd_handler = after_fd,
	.before_timer_handler = before_timer,
	.after_timer_handler = after_timer,
	.before_immediate_handler = before_immediate,
	.after_immediate_handler = after_immediate,
	.before_signal_handler = before_signal,
	.after_signal_handler = after_signal,
};

static void timer_handler(struct tevent_context *ev, struct tevent_timer *te,
			  struct timeval now, void *private_data)
{
	char line[128];

	snprintf(line, sizeof(line), "%s: runs as %s (ev is %s)",
		 (const char *)private_data, current_user,
		 tevent_context_is_wrapper(ev) ? "the wrapper" : "main");
	logf_(line);
}

static void immediate_handler(struct tevent_context *ev,
			      struct tevent_immediate *im, void *private_data)
{
	char line[128];

	snprintf(line, sizeof(line), "%s: runs as %s",
		 (const char *)private_data, current_user);
	logf_(line);
}

int main(void)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *main_ev = tevent_context_init(mem);
	struct tevent_context *alice_ev, *bob_ev;
	struct user_wrapper *alice, *bob;
	struct tevent_immediate *im;
	char line[128];
	bool ok;

	print_library();
	if (main_ev == NULL) {
		return 1;
	}
	alice_ev = tevent_context_wrapper_create(main_ev, mem, &user_ops,
						 &alice, struct user_wrapper);
	bob_ev = tevent_context_wrapper_create(main_ev, mem, &user_ops,
					       &bob, struct user_wrapper);
	im = tevent_create_immediate(mem);
	if (alice_ev == NULL || bob_ev == NULL || im == NULL) {
		fprintf(stderr, "wrapper: setup failed\n");
		return 1;
	}
	alice->user = "alice";
	bob->user = "bob";

	/* Events are added through the wrapper, but live on main_ev's loop. */
	tevent_add_timer(alice_ev, mem, tevent_timeval_zero(), timer_handler,
			 "alice's timer");
	tevent_schedule_immediate(im, alice_ev, immediate_handler,
				  "alice's immediate");
	tevent_add_timer(main_ev, mem, tevent_timeval_zero(), timer_handler,
			 "main timer");
	tevent_add_timer(bob_ev, mem, tevent_timeval_zero(), timer_handler,
			 "bob's timer");
	/* bob goes away before the loop runs: his timer never fires. */
	talloc_free(bob_ev);

	/* The loop is always run on the main context. */
	if (tevent_loop_wait(main_ev) != 0) {
		return 1;
	}

	/* Code outside any handler can enter a wrapper's environment too. */
	if (tevent_context_push_use(alice_ev)) {
		snprintf(line, sizeof(line), "push_use: runs as %s",
			 current_user);
		logf_(line);
		tevent_context_pop_use(alice_ev);
	}
	snprintf(line, sizeof(line), "after pop_use: runs as %s",
		 current_user);
	logf_(line);
	snprintf(line, sizeof(line), "same loop: %s",
		 tevent_context_same_loop(alice_ev, main_ev) ? "yes" : "no");
	logf_(line);

	fputs(log_text, stdout);
	ok = strcmp(log_text,
		    "alice's immediate: runs as alice\n"
		    "alice's timer: runs as alice (ev is the wrapper)\n"
		    "main timer: runs as root (ev is main)\n"
		    "push_use: runs as alice\n"
		    "after pop_use: runs as root\n"
		    "same loop: yes\n") == 0;
	printf("%s\n", ok ? "OK" : "FAILED");
	talloc_free(mem);
	return ok ? 0 : 1;
}

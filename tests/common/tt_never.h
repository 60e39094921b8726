/*
 * Handlers for events that must never fire (a case frees or disables
 * them first), and a signal handler that counts deliveries.  Header only;
 * include <cmocka.h> and <tevent.h> first (fail_msg() ends the case).
 */
#ifndef TT_NEVER_H
#define TT_NEVER_H

#include <stdint.h>

static inline void tt_never_fd(struct tevent_context *ev,
			       struct tevent_fd *fde, uint16_t flags,
			       void *private_data)
{
	(void)ev, (void)private_data;
	fail_msg("fd event %p ran (flags %u) but should not have",
		 (void *)fde, flags);
}

static inline void tt_never_timer(struct tevent_context *ev,
				  struct tevent_timer *te, struct timeval now,
				  void *private_data)
{
	(void)ev, (void)now, (void)private_data;
	fail_msg("timer %p ran but should not have", (void *)te);
}

static inline void tt_never_imm(struct tevent_context *ev,
				struct tevent_immediate *im,
				void *private_data)
{
	(void)ev, (void)private_data;
	fail_msg("immediate %p ran but should not have", (void *)im);
}

static inline void tt_never_signal(struct tevent_context *ev,
				   struct tevent_signal *se, int signum,
				   int count, void *siginfo,
				   void *private_data)
{
	(void)ev, (void)count, (void)siginfo, (void)private_data;
	fail_msg("signal event %p ran for signal %d but should not have",
		 (void *)se, signum);
}

/* Adds the delivered count to the int private_data points to. */
static inline void tt_count_signal(struct tevent_context *ev,
				   struct tevent_signal *se, int signum,
				   int count, void *siginfo,
				   void *private_data)
{
	int *n = private_data;

	(void)ev, (void)se, (void)signum, (void)siginfo;
	*n += count;
}

#endif /* TT_NEVER_H */

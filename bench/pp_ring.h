/*
 * pp_ring.h - the fd_pingpong workload, shared by every program that runs
 * it (tevent_bench, uv_bench, epoll_bench) so that their figures measure
 * the same kernel work and differ only in the event loop around it.
 *
 * PP_PAIRS non-blocking AF_UNIX socketpairs form a ring.  PP_TOKENS
 * one-byte tokens travel around it (BENCH_PP_TOKENS in the environment
 * picks another count that divides PP_PAIRS, to see how the figures move
 * with the number of fds ready at once): a hop reads the token waiting on pair
 * i and writes it to pair i+1.  A loop watches the read end of every pair
 * and calls pp_ring_hop() when one is readable.  At the end every token
 * must still exist exactly once, so a loop that loses or duplicates
 * readiness reports fails the case instead of looking fast.
 *
 * Include bench_util.h first (fail()).
 */
#ifndef PP_RING_H
#define PP_RING_H

#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define PP_PAIRS 64
#define PP_TOKENS 16

struct pp_ring {
	int fds[PP_PAIRS][2];	/* [i][1] is watched; [i][0] is written */
	uint64_t n;		/* hops wanted */
	uint64_t events;	/* hops made */
	uint64_t hops;		/* sum of the token values seen */
	uint64_t errors;
	uint64_t token_sum;	/* sum of the token values put in */
	int tokens;		/* how many travel */
};

static inline int pp_ring_tokens(void)
{
	const char *env = getenv("BENCH_PP_TOKENS");
	int t = env != NULL ? atoi(env) : PP_TOKENS;
	if (t < 1 || t > PP_PAIRS || PP_PAIRS % t != 0) {
		fail("BENCH_PP_TOKENS=%s: want a divisor of %d", env, PP_PAIRS);
	}
	return t;
}

/* Creates the pairs and puts the tokens in, evenly spaced. */
static inline void pp_ring_open(struct pp_ring *r, uint64_t n)
{
	*r = (struct pp_ring){.n = n, .tokens = pp_ring_tokens()};
	for (int i = 0; i < PP_PAIRS; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
			       r->fds[i]) != 0) {
			fail("socketpair failed");
		}
	}
	for (int t = 0; t < r->tokens; t++) {
		unsigned char c = (unsigned char)(t + 1);
		r->token_sum += c;
		if (write(r->fds[t * (PP_PAIRS / r->tokens)][0], &c, 1) != 1) {
			fail("write failed");
		}
	}
}

/* The handler's work for a readable pair i: pass its token on. */
static inline void pp_ring_hop(struct pp_ring *r, int i)
{
	unsigned char c;
	if (read(r->fds[i][1], &c, 1) != 1) {
		r->errors++;
		return;
	}
	r->events++;
	r->hops += c;
	if (write(r->fds[(i + 1) % PP_PAIRS][0], &c, 1) != 1) {
		r->errors++;
	}
}

/* Checks that exactly r->n hops were made and every token survived, then
 * closes the pairs.  Call after the loop stopped watching them. */
static inline void pp_ring_check_close(struct pp_ring *r)
{
	uint64_t left = 0, left_sum = 0;
	for (int i = 0; i < PP_PAIRS; i++) {
		unsigned char c;
		while (read(r->fds[i][1], &c, 1) == 1) {
			left++;
			left_sum += c;
		}
		close(r->fds[i][0]);
		close(r->fds[i][1]);
	}
	if (r->errors != 0 || r->events != r->n || left != (uint64_t)r->tokens ||
	    left_sum != r->token_sum) {
		fail("%llu errors, %llu events of %llu, %llu tokens left (want %d)",
		     (unsigned long long)r->errors,
		     (unsigned long long)r->events, (unsigned long long)r->n,
		     (unsigned long long)left, r->tokens);
	}
}

#endif /* PP_RING_H */

/*
 * epoll_bench: the fd_pingpong ring (pp_ring.h) driven by bare epoll, with
 * no event library at all.  One level-triggered epoll_wait() harvests
 * every ready pair and all of them are served at once, the fewest system
 * calls a loop on epoll can make for this workload.  Its figure is what
 * the kernel allows on this machine: no library, however lean, gets past
 * it, which puts the fd_pingpong target of tevent_bench in proportion.
 *
 *   epoll_bench [--case fd_pingpong] [--scale F] [--list]
 *
 * Same output as tevent_bench (bench_util.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench_util.h"
#include "pp_ring.h"

static void case_fd_pingpong(void)
{
	struct pp_ring ring;
	struct epoll_event events[PP_PAIRS];
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd == -1) {
		fail("epoll_create1 failed");
	}
	pp_ring_open(&ring, scaled(200000));
	for (int i = 0; i < PP_PAIRS; i++) {
		struct epoll_event e = {.events = EPOLLIN, .data.u32 = i};
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, ring.fds[i][1], &e) != 0) {
			fail("epoll_ctl failed");
		}
	}

	double t0 = now_s();
	while (ring.events < ring.n) {
		int k = epoll_wait(epfd, events, PP_PAIRS, -1);
		if (k < 0) {
			fail("epoll_wait failed");
		}
		for (int j = 0; j < k && ring.events < ring.n; j++) {
			pp_ring_hop(&ring, (int)events[j].data.u32);
		}
	}
	double t1 = now_s();

	close(epfd);
	pp_ring_check_close(&ring);
	emit("events", "ops_per_s", ring.n / (t1 - t0), ring.n);
}

static const struct bench_case cases[] = {
	{"fd_pingpong", case_fd_pingpong,
	 "tokens around a ring of 64 socketpairs, bare epoll, no library"},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static void announce(void)
{
	printf("library=none\n");
}

int main(int argc, char **argv)
{
	return bench_main(argc, argv, "epoll_bench", cases, NCASES, announce);
}

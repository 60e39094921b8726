/*
 * A profiled request that waits on a library subrequest (tevent_wakeup),
 * shared by tests/test_profile.c and tests/upstream/req.c.  Header only,
 * and only API that Debian's 0.14.1 tevent.h has: the upstream ports are
 * compiled against that header, test_profile.c against ours.
 *
 * The subrequest is created on the request's state, so it gets a profile
 * of its own that ends up below the request's profile.
 */
#ifndef TT_NAP_H
#define TT_NAP_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include <talloc.h>
#include <tevent.h>

/* its type name is the request's profile name: "struct tt_nap_state" */
struct tt_nap_state {
	uint8_t unused;
};

/* tevent_req_is_error() mapped to an errno value, 0 when done. */
static inline int tt_req_unix_error(struct tevent_req *req)
{
	enum tevent_req_state st;
	uint64_t err;

	if (!tevent_req_is_error(req, &st, &err)) {
		return 0;
	}
	switch (st) {
	case TEVENT_REQ_USER_ERROR:
		return (int)err;
	case TEVENT_REQ_TIMED_OUT:
		return ETIMEDOUT;
	case TEVENT_REQ_NO_MEMORY:
		return ENOMEM;
	default:
		return EINVAL;
	}
}

static inline void tt_nap_woke(struct tevent_req *subreq)
{
	struct tevent_req *req =
		tevent_req_callback_data(subreq, struct tevent_req);

	if (!tevent_wakeup_recv(subreq)) {
		tevent_req_oom(req);
		return;
	}
	/* subreq stays until req goes, as in upstream's profile2 */
	tevent_req_done(req);
}

static inline struct tevent_req *tt_nap_send(TALLOC_CTX *mem,
					     struct tevent_context *ev)
{
	struct tevent_req *req, *subreq;
	struct tt_nap_state *st;

	req = tevent_req_create(mem, &st, struct tt_nap_state);
	if (req == NULL) {
		return NULL;
	}
	if (!tevent_req_set_profile(req)) {
		return tevent_req_post(req, ev);
	}
	subreq = tevent_wakeup_send(st, ev, tevent_timeval_current_ofs(0, 1));
	if (tevent_req_nomem(subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(subreq, tt_nap_woke, req);
	return req;
}

/* 0 and the request's profile (moved onto MEM), or an errno value. */
static inline int tt_nap_recv(struct tevent_req *req, TALLOC_CTX *mem,
			      struct tevent_req_profile **profile)
{
	int err = tt_req_unix_error(req);

	if (err != 0) {
		return err;
	}
	*profile = tevent_req_move_profile(req, mem);
	return 0;
}

#endif /* TT_NAP_H */

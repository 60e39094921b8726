// tevent_wakeup_send/recv: a request that "fails" with TEVENT_REQ_TIMED_OUT
// at the given time, which recv reports as success. It is just a request
// with an end time and nothing else to do.

#include "req_internal.hh"

namespace {


struct tevent_wakeup_state {
	struct timeval wakeup_time;
};

} // namespace

TEVENT_EXPORT struct tevent_req *tevent_wakeup_send(TALLOC_CTX *mem_ctx,
						    struct tevent_context *ev,
						    struct timeval wakeup_time)
{
	tevent_wakeup_state *state = nullptr;
	tevent_req *req = __tevent_req_create(
		mem_ctx, &state, sizeof(tevent_wakeup_state),
		"struct tevent_wakeup_state", "tevent_wakeup_send", __location__);
	if (req == nullptr) {
		return nullptr;
	}
	state->wakeup_time = wakeup_time;
	if (!tevent_req_set_endtime(req, ev, wakeup_time)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

TEVENT_EXPORT bool tevent_wakeup_recv(struct tevent_req *req)
{
	// Reaching the end time is the expected outcome. Like upstream, recv
	// leaves the request as it is (it is not marked received).
	enum tevent_req_state state;
	uint64_t error;
	if (tevent_req_is_error(req, &state, &error)) {
		return state == TEVENT_REQ_TIMED_OUT;
	}
	return false;
}

// Jobs: one function in a pool thread, completion as a tevent_req.
//
// A job is a task whose owner is the request's state: the task function
// runs the job function once, the end notice completes the request.
// Freeing the request cancels the job and, if the function is running,
// waits for it, so the caller's private data is never used after the
// request is gone.
#include "internal.hh"

struct tevent_threadpool_job_state {
	tevent_threadpool_job_fn fn;
	void *private_data;
	tevent_threadpool_task *task;
	tevent_req *req;
	tevent_context *ev;
};

namespace tpool {

namespace {

int job_task(void *user, State state)
{
	auto *s = static_cast<tevent_threadpool_job_state *>(user);
	if (state == TEVENT_TP_STATE_STOPPING) {
		return TEVENT_TP_RETURN_STOPPED;  // cancelled before it began
	}
	s->fn(s->private_data);
	return TEVENT_TP_RETURN_FINISHED;
}

void job_end(tevent_threadpool_task *task, void *user,
	     State state)
{
	auto *s = static_cast<tevent_threadpool_job_state *>(user);
	s->task = nullptr;
	task_reap(task);  // it ended: the status call would only reap
	if (state == TEVENT_TP_STATE_FINISHED) {
		tevent_req_done(s->req);
	} else {
		tevent_req_error(s->req, ECANCELED);
	}
}

// Reached with s->task still set only when the pool is freed under a
// pending request: complete it from the loop, as a normal end would.
void job_cleanup(void *user, State final_state)
{
	auto *s = static_cast<tevent_threadpool_job_state *>(user);
	tevent_threadpool_task *t = s->task;
	if (t == nullptr) {
		return;
	}
	s->task = nullptr;
	if (t->port->dead) {
		return;  // its loop is gone: nothing can complete it
	}
	tevent_req_defer_callback(s->req, s->ev);
	if (final_state == TEVENT_TP_STATE_FINISHED) {
		tevent_req_done(s->req);
	} else {
		tevent_req_error(s->req, ECANCELED);
	}
}

void job_req_cleanup(tevent_req *req, enum tevent_req_state req_state)
{
	if (req_state != TEVENT_REQ_RECEIVED) {
		return;
	}
	auto *s = talloc_get_type_abort(_tevent_req_data(req),
					struct tevent_threadpool_job_state);
	tevent_threadpool_task *t = s->task;
	if (t != nullptr) {
		s->task = nullptr;
		task_cancel_and_reap(t);
	}
}

} // namespace

} // namespace tpool

using namespace tpool;

TP_EXPORT struct tevent_req *tevent_threadpool_job_send(
	TALLOC_CTX *mem_ctx, struct tevent_context *ev,
	struct tevent_threadpool *pool, tevent_threadpool_job_fn fn,
	void *private_data)
{
	if (ev == nullptr) {
		// No loop to complete a request on, so no request.
		errno = EINVAL;
		return nullptr;
	}
	tevent_threadpool_job_state *s = nullptr;
	tevent_req *req = TP_REQ_CREATE(mem_ctx, &s,
					struct tevent_threadpool_job_state);
	if (req == nullptr) {
		return nullptr;
	}
	s->fn = fn;
	s->private_data = private_data;
	s->req = req;
	s->ev = ev;
	if (pool == nullptr || fn == nullptr) {
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}
	pool_check_thread(pool, __func__);

	tevent_threadpool_task_args args = {};
	args.ev = ev;
	args.owner = s;
	args.user = s;
	args.task = job_task;
	args.sync = job_end;
	args.cleanup = job_cleanup;
	s->task = task_enqueue(pool, &args, "job", nullptr, nullptr);
	if (s->task == nullptr) {
		tevent_req_error(req, errno != 0 ? errno : ENOMEM);
		return tevent_req_post(req, ev);
	}
	s->task->is_job = true;
	TP_REQ_SET_CLEANUP_FN(req, job_req_cleanup);
	return req;
}

TP_EXPORT int tevent_threadpool_job_recv(struct tevent_req *req)
{
	enum tevent_req_state state;
	uint64_t err;
	int ret = 0;
	if (tevent_req_is_error(req, &state, &err)) {
		switch (state) {
		case TEVENT_REQ_USER_ERROR:
			ret = (int)err;
			break;
		case TEVENT_REQ_TIMED_OUT:
			ret = ETIMEDOUT;
			break;
		case TEVENT_REQ_NO_MEMORY:
			ret = ENOMEM;
			break;
		default:
			ret = EINVAL;
			break;
		}
	}
	tevent_req_received(req);
	return ret;
}

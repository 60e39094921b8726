// tevent_queue: serialises requests.
//
// Each entry is a talloc child of its request. The head entry is the one
// whose trigger runs; the queue only moves on when the head entry is freed
// (normally together with its finished request): the entry's destructor
// unlinks it and, if the queue runs, schedules the trigger of the new head
// through the queue's immediate. Finishing a request alone never advances
// the queue. Everything goes through the public event API, so the queue
// works on wrapper contexts too.

#include "req_internal.hh"

namespace {

constexpr const char kQueueTypeName[] = "struct tevent_queue";
constexpr const char kEntryTypeName[] = "struct tevent_queue_entry";
constexpr const char kWatchTypeName[] = "struct tevent_queue_context_watch";

// A NULL trigger makes the entry a pure blocker: it still takes its turn
// (and is traced like any other) but does nothing when triggered.
void blocker_trigger(struct tevent_req *, void *) {}

void queue_immediate_handler(struct tevent_context *ev,
			     struct tevent_immediate *, void *private_data);

TEVENT_HOT void schedule_head_trigger(tevent_queue *q, struct tevent_context *ev)
{
	if (ev == nullptr) {
		// The head's context is gone: nothing can run it any more.
		return;
	}
	tevent::schedule_library_immediate(q->immediate, ev,
					   queue_immediate_handler, q,
					   "tevent_queue_immediate_trigger",
					   __location__);
}

void run_trigger(tevent_queue_entry *e)
{
	e->triggered = true;
	e->trigger(e->req, e->private_data);
}

// The trace and flow observers hear that head is about to be triggered.
// They may change the queue: returns the head after them, or null.
__attribute__((noinline)) tevent_queue_entry *
tell_trigger_observers(struct tevent_context *ev, tevent_queue *q,
		       tevent_queue_entry *head)
{
	tevent::trace_queue(ev, head, TEVENT_EVENT_TRACE_BEFORE_HANDLER);
	head = q->entries.front();
	if (head == nullptr) {
		return nullptr;
	}
	tevent::call_depth_notify(TEVENT_CALL_FLOW_REQ_QUEUE_TRIGGER, head->req,
				  head->req->call_depth, head->trigger_name);
	return q->entries.front();
}

TEVENT_HOT void
queue_immediate_handler(struct tevent_context *ev,
			struct tevent_immediate *, void *private_data)
{
	auto *q = static_cast<tevent_queue *>(private_data);
	if (!q->running) {
		return;
	}
	tevent_queue_entry *head = q->entries.front();
	if (head == nullptr) {
		return;
	}
	if (ev->trace.qe != nullptr || tevent::flow_observed()) {
		head = tell_trigger_observers(ev, q, head);
		if (head == nullptr) {
			return;
		}
	}
	run_trigger(head);
}

TEVENT_HOT tevent_queue_entry *
queue_add(struct tevent_queue *queue,
	  struct tevent_context *ev, struct tevent_req *req,
	  tevent_queue_trigger_fn_t trigger,
	  const char *trigger_name, void *private_data,
	  bool allow_direct)
{
	if (!queue->watch_context(ev)) {
		return nullptr;
	}
	auto *e = tevent::new_talloc_value<tevent_queue_entry>(req,
							       kEntryTypeName);
	if (e == nullptr) {
		return nullptr;
	}
	e->queue = queue;
	e->req = req;
	e->ev = ev;
	e->trigger = trigger != nullptr ? trigger : blocker_trigger;
	e->trigger_name = trigger_name;
	e->private_data = private_data;

	// The synchronous shortcut is only taken for an empty queue and a
	// request whose caller has not yet had the chance to set a callback.
	if (!queue->entries.empty() || req->callback_fn != nullptr) {
		allow_direct = false;
	}

	queue->entries.push_back(e);
	tevent::trace_queue(ev, e, TEVENT_EVENT_TRACE_ATTACH);
	tevent::call_depth_notify(TEVENT_CALL_FLOW_REQ_QUEUE_ENTER, req,
				  req->call_depth, e->trigger_name);

	if (!queue->running) {
		return e;
	}
	tevent_queue_entry *head = queue->entries.front();
	if (head->triggered) {
		return e;
	}
	if (allow_direct) {
		tevent::trace_queue(ev, head,
					    TEVENT_EVENT_TRACE_BEFORE_HANDLER);
		run_trigger(head);
		return e;
	}
	schedule_head_trigger(queue, head->ev);
	return e;
}

} // namespace

int tevent::QueueContextWatch::on_talloc_free()
{
	if (queue != nullptr) {
		queue->context_gone(ev);
	}
	return 0;
}

bool tevent_queue::watch_context(struct tevent_context *ev)
{
	for (auto *w = watches.front(); w != nullptr; w = watches.next(w)) {
		if (w->ev == ev) {
			return true;
		}
	}
	auto *w = tevent::new_talloc_value<tevent::QueueContextWatch>(
		ev->lifeline, kWatchTypeName);
	if (w == nullptr) {
		return false;
	}
	w->queue = this;
	w->ev = ev;
	watches.push_back(w);
	return true;
}

void tevent_queue::context_gone(struct tevent_context *ev)
{
	for (auto *w = watches.front(); w != nullptr; w = watches.next(w)) {
		if (w->ev == ev) {
			watches.remove(w);
			break;
		}
	}
	for (auto *e = entries.front(); e != nullptr; e = entries.next(e)) {
		if (e->ev == ev) {
			e->ev = nullptr;
		}
	}
}

TEVENT_HOT int tevent_queue_entry::on_talloc_free()
{
	tevent_queue *q = queue;
	if (q == nullptr) {
		return 0;
	}
	// Like upstream, the detach is reported on the head entry's context
	// and the flow observer hears about the head entry's request.
	tevent_queue_entry *head = q->entries.front();
	if (head->ev != nullptr) {
		tevent::trace_queue(head->ev, this,
					    TEVENT_EVENT_TRACE_DETACH);
	}
	tevent::call_depth_notify(TEVENT_CALL_FLOW_REQ_QUEUE_LEAVE, head->req,
				  head->req->call_depth, trigger_name);

	q->entries.remove(this);
	queue = nullptr;

	if (!q->running) {
		return 0;
	}
	tevent_queue_entry *next = q->entries.front();
	if (next == nullptr || next->triggered) {
		return 0;
	}
	// This is what moves the queue on once the active request is freed.
	schedule_head_trigger(q, next->ev);
	return 0;
}

int tevent_queue::on_talloc_free()
{
	running = false;
	// Waiting requests stay alive; they just leave the queue.
	while (tevent_queue_entry *e = entries.front()) {
		talloc_free(e);
	}
	while (tevent::QueueContextWatch *w = watches.pop_front()) {
		w->queue = nullptr;
		talloc_free(w);
	}
	return 0;
}

TEVENT_EXPORT struct tevent_queue *_tevent_queue_create(TALLOC_CTX *mem_ctx,
							const char *name,
							const char *location)
{
	auto *q = tevent::new_talloc_object<tevent_queue>(mem_ctx,
							  kQueueTypeName);
	if (q == nullptr) {
		return nullptr;
	}
	q->name = talloc_strdup(q, name);
	if (q->name == nullptr) {
		talloc_free(q);
		return nullptr;
	}
	q->immediate = tevent::create_library_immediate(q, __location__);
	if (q->immediate == nullptr) {
		talloc_free(q);
		return nullptr;
	}
	q->location = location;
	q->running = true;
	return q;
}

TEVENT_EXPORT TEVENT_HOT bool
_tevent_queue_add(struct tevent_queue *queue,
		  struct tevent_context *ev,
		  struct tevent_req *req,
		  tevent_queue_trigger_fn_t trigger,
		  const char *trigger_name,
		  void *private_data)
{
	return queue_add(queue, ev, req, trigger, trigger_name, private_data,
			 false) != nullptr;
}

TEVENT_EXPORT struct tevent_queue_entry *
_tevent_queue_add_entry(struct tevent_queue *queue, struct tevent_context *ev,
			struct tevent_req *req,
			tevent_queue_trigger_fn_t trigger,
			const char *trigger_name, void *private_data)
{
	return queue_add(queue, ev, req, trigger, trigger_name, private_data,
			 false);
}

TEVENT_EXPORT struct tevent_queue_entry *
_tevent_queue_add_optimize_empty(struct tevent_queue *queue,
				 struct tevent_context *ev,
				 struct tevent_req *req,
				 tevent_queue_trigger_fn_t trigger,
				 const char *trigger_name, void *private_data)
{
	return queue_add(queue, ev, req, trigger, trigger_name, private_data,
			 true);
}

TEVENT_EXPORT void tevent_queue_entry_untrigger(struct tevent_queue_entry *entry)
{
	// Only the head of a stopped queue may be re-armed; anything else is a
	// programming error upstream aborts on.
	if (entry->queue->running) {
		abort();
	}
	if (entry->queue->entries.front() != entry) {
		abort();
	}
	entry->triggered = false;
}

TEVENT_EXPORT void tevent_queue_start(struct tevent_queue *queue)
{
	if (queue->running) {
		return;
	}
	queue->running = true;
	tevent_queue_entry *head = queue->entries.front();
	if (head == nullptr || head->triggered) {
		return;
	}
	schedule_head_trigger(queue, head->ev);
}

TEVENT_EXPORT void tevent_queue_stop(struct tevent_queue *queue)
{
	queue->running = false;
}

TEVENT_EXPORT size_t tevent_queue_length(struct tevent_queue *queue)
{
	return queue->entries.size();
}

TEVENT_EXPORT bool tevent_queue_running(struct tevent_queue *queue)
{
	return queue->running;
}

TEVENT_EXPORT void tevent_queue_entry_set_tag(struct tevent_queue_entry *qe,
					      uint64_t tag)
{
	if (qe == nullptr) {
		return;
	}
	qe->tag = tag;
}

TEVENT_EXPORT uint64_t
tevent_queue_entry_get_tag(const struct tevent_queue_entry *qe)
{
	if (qe == nullptr) {
		return 0;
	}
	return qe->tag;
}

// ---------------------------------------------------------------------
// tevent_queue_wait_send/recv: a request that completes when it reaches
// the head of the queue.

namespace {

struct tevent_queue_wait_state {
	uint8_t dummy;
};

void queue_wait_trigger(struct tevent_req *req, void *)
{
	_tevent_req_done(req, __location__);
}

} // namespace

TEVENT_EXPORT struct tevent_req *tevent_queue_wait_send(TALLOC_CTX *mem_ctx,
							struct tevent_context *ev,
							struct tevent_queue *queue)
{
	tevent_queue_wait_state *state = nullptr;
	tevent_req *req = __tevent_req_create(
		mem_ctx, &state, sizeof(tevent_queue_wait_state),
		"struct tevent_queue_wait_state", "tevent_queue_wait_send",
		__location__);
	if (req == nullptr) {
		return nullptr;
	}
	if (!_tevent_queue_add(queue, ev, req, queue_wait_trigger,
			       "tevent_queue_wait_trigger", nullptr)) {
		_tevent_req_oom(req, __location__);
		return tevent_req_post(req, ev);
	}
	return req;
}

TEVENT_EXPORT bool tevent_queue_wait_recv(struct tevent_req *req)
{
	enum tevent_req_state state;
	uint64_t err;
	bool failed = tevent_req_is_error(req, &state, &err);
	tevent_req_received(req);
	return !failed;
}

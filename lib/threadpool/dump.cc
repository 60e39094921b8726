// tevent_threadpool_dump(): a readable snapshot of a pool.
#include "internal.hh"

#include <stdarg.h>

namespace tpool {

namespace {

// Appends to a talloc string; remembers the first failure.
class Text {
public:
	explicit Text(const void *ctx) : s_(talloc_strdup(ctx, "")), ok_(s_ != nullptr) {}

	void add(const char *fmt, ...) __attribute__((format(printf, 2, 3)))
	{
		if (!ok_) {
			return;
		}
		va_list ap;
		va_start(ap, fmt);
		char *n = talloc_vasprintf_append_buffer(s_, fmt, ap);
		va_end(ap);
		if (n == nullptr) {
			ok_ = false;
			return;
		}
		s_ = n;
	}

	char *take()
	{
		if (!ok_) {
			talloc_free(s_);
			return nullptr;
		}
		return s_;
	}

private:
	char *s_;
	bool ok_;
};

double ms(uint64_t from, uint64_t to)
{
	return to > from ? (double)(to - from) / 1e6 : 0.0;
}

void task_line(Text &out, const Task *t, uint64_t now)
{
	const char *where = "";
	if (t->ended) {
		where = t->end_seen ? ", waiting for status" : ", end not delivered";
	}
	out.add("    \"%s\" %s for %.1f ms, age %.1f ms%s%s%s%s\n", t->name,
		tevent_threadpool_state_name(t->state), ms(t->since_ns, now),
		ms(t->created_ns, now), t->detached ? ", detached" : "",
		t->outlive ? ", outlive" : "",
		t->stop_requested && !t->ended ? ", stop requested" : "", where);
}

void count_states(unsigned counts[], const TaskQueue &list)
{
	for (const Task *t = list.front(); t != nullptr; t = TaskQueue::next(t)) {
		counts[t->state]++;
	}
}

// A heading and one line per task, nothing when the list is empty.
void task_lines(Text &out, const char *heading, const TaskQueue &list,
		uint64_t now)
{
	if (list.empty()) {
		return;
	}
	out.add("%s", heading);
	for (const Task *t = list.front(); t != nullptr; t = TaskQueue::next(t)) {
		task_line(out, t, now);
	}
}

} // namespace

} // namespace tpool

using namespace tpool;

TP_EXPORT char *tevent_threadpool_dump(TALLOC_CTX *mem_ctx,
				       struct tevent_threadpool *pool)
{
	pool_check_thread(pool, __func__);
	Text out(mem_ctx);
	uint64_t now = now_ns();

	Lock l(pool);
	unsigned counts[6] = {};
	count_states(counts, pool->queue);
	count_states(counts, pool->active);
	unsigned ended = 0;
	for (const Port *p = pool->ports.front(); p != nullptr;
	     p = List<Port, &Port::link>::next(p)) {
		for (const Task *t = p->tasks.front(); t != nullptr;
		     t = PortTasks::next(t)) {
			ended += t->ended ? 1 : 0;
		}
	}
	out.add("threadpool \"%s\": %u of %u threads (%u idle), queue depth %u, "
		"age %.1f ms%s\n", pool->name, pool->nthreads, pool->max_threads,
		pool->idle, pool->max_queue, ms(pool->created_ns, now),
		pool->finishing ? ", finishing" : "");
	out.add("  tasks: %u queued, %u running, %u syncing, %u stopping, "
		"%u ended not reaped\n", counts[TEVENT_TP_STATE_QUEUED],
		counts[TEVENT_TP_STATE_RUNNING], counts[TEVENT_TP_STATE_SYNCING],
		counts[TEVENT_TP_STATE_STOPPING], ended);

	unsigned i = 0;
	for (const Worker *w = pool->workers.front(); w != nullptr;
	     w = List<Worker, &Worker::link>::next(w), i++) {
		if (w->task == nullptr) {
			out.add("  thread %u: idle\n", i);
		} else {
			out.add("  thread %u: \"%s\"\n", i, w->task->name);
		}
	}
	task_lines(out, "  queued:\n", pool->queue, now);
	task_lines(out, "  in threads:\n", pool->active, now);
	for (const Port *p = pool->ports.front(); p != nullptr;
	     p = List<Port, &Port::link>::next(p)) {
		bool any = false;
		for (const Task *t = p->tasks.front(); t != nullptr && !any;
		     t = PortTasks::next(t)) {
			any = t->ended;
		}
		if (!any) {
			continue;
		}
		out.add("  ended, loop %p%s:\n", (const void *)p->ev,
			p->dead ? " (gone)" : "");
		for (const Task *t = p->tasks.front(); t != nullptr;
		     t = PortTasks::next(t)) {
			if (t->ended) {
				task_line(out, t, now);
			}
		}
	}
	return out.take();
}

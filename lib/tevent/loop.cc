// Contexts and the loop: creation and teardown, the backend registry, and
// tevent_loop_once/wait/until with upstream's nesting rules.
#include "backend.hh"
#include "req_internal.hh"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

namespace tevent {

namespace {

// ---- backend registry ----

struct BackendEntry {
	BackendEntry *next;
	const char *name;
	const struct tevent_ops *ops;
};

BackendEntry *g_backends;
char *g_default_backend;
pthread_once_t g_backends_once = PTHREAD_ONCE_INIT;

void register_builtin_backends()
{
	// Registered in this order so that the list reads like upstream's:
	// the newest registration comes first.
	poll_backend_register();
	epoll_backend_register();
}

void ensure_backends()
{
	pthread_once(&g_backends_once, register_builtin_backends);
}

// ---- every live context, for fork handling ----

pthread_mutex_t g_contexts_mutex = PTHREAD_MUTEX_INITIALIZER;
IntrusiveList<ContextLifeline, &ContextLifeline::link> g_contexts;
pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;
pid_t g_cached_pid;

void atfork_prepare()
{
	pthread_mutex_lock(&g_contexts_mutex);
	spent_atfork_prepare();
}

void atfork_parent()
{
	spent_atfork_parent();
	pthread_mutex_unlock(&g_contexts_mutex);
}

void atfork_child()
{
	g_cached_pid = getpid();
	for (ContextLifeline *l = g_contexts.front(); l != nullptr;
	     l = g_contexts.next(l)) {
		threads_atfork_child(l->ev);
	}
	spent_atfork_child();
	pthread_mutex_unlock(&g_contexts_mutex);
}

void init_globals()
{
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	g_cached_pid = getpid();
}

void abort_nesting(tevent_context *ev, const char *location)
{
	char *reason = talloc_asprintf(nullptr,
				       "tevent_loop_once() nesting at %s",
				       location);
	tevent_abort(ev, reason ? reason : "tevent_loop_once() nesting");
	talloc_free(reason);
}

// Level 0 inside a loop call happens after tevent_re_initialise() from a
// handler (it zeroes the level under the running call, whose return then
// wraps it): upstream calls no hook there, and neither do we.
static inline bool hook_applies(const tevent_context *ev)
{
	return ev->nesting.hook_fn != nullptr && ev->nesting.level > 0;
}

// nesting_enter() for a nested call or one with a nesting hook.
__attribute__((noinline)) bool nesting_enter_checked(tevent_context *ev,
						     const char *location,
						     void *stack_ptr, int *ret)
{
	if (ev->nesting.level > 1 && !ev->nesting.allowed) {
		abort_nesting(ev, location);
		errno = ELOOP;
		*ret = -1;
		return false;
	}
	if (hook_applies(ev)) {
		int r = ev->nesting.hook_fn(ev, ev->nesting.hook_private,
					    ev->nesting.level, true, stack_ptr,
					    location);
		if (r != 0) {
			*ret = r;
			return false;
		}
	}
	return true;
}

// Enter/leave bookkeeping around a (possibly nested) loop call. Returns
// false when the call must not go on (nesting refused or the hook failed).
// Inline for the common case: not nested, no hook.
inline bool nesting_enter(tevent_context *ev, const char *location,
			  void *stack_ptr, int *ret)
{
	ev->nesting.level++;
	if (__builtin_expect(ev->nesting.level == 1 &&
				     ev->nesting.hook_fn == nullptr,
			     1)) {
		return true;
	}
	return nesting_enter_checked(ev, location, stack_ptr, ret);
}

void nesting_leave(tevent_context *ev, const char *location, void *stack_ptr,
		   int *ret)
{
	if (hook_applies(ev)) {
		int r = ev->nesting.hook_fn(ev, ev->nesting.hook_private,
					    ev->nesting.level, false,
					    stack_ptr, location);
		if (r != 0) {
			*ret = r;
		}
	}
}

int run_once(tevent_context *ev, const char *location)
{
	trace_point(ev, TEVENT_TRACE_BEFORE_LOOP_ONCE);
	int ret = ev->ops->loop_once(ev, location);
	trace_point(ev, TEVENT_TRACE_AFTER_LOOP_ONCE);
	return ret;
}

} // namespace

pid_t cached_pid()
{
	// context_setup() ran init_globals() before any backend exists, and
	// only backends ask: no pthread_once on their every loop turn.
	return g_cached_pid;
}

bool make_lifeline(tevent_context *ev)
{
	// talloc frees the newest child first: made before any other, this
	// one goes last.
	ev->lifeline = new_talloc_value<ContextLifeline>(
		ev, "struct tevent_context_lifeline");
	if (ev->lifeline == nullptr) {
		return false;
	}
	ev->lifeline->ev = ev;
	return true;
}

int context_setup(tevent_context *ev)
{
	pthread_once(&g_atfork_once, init_globals);
	pthread_mutex_lock(&g_contexts_mutex);
	g_contexts.push_back(ev->lifeline);
	pthread_mutex_unlock(&g_contexts_mutex);
	ev->wakeup_fd = -1;
	threads_context_init(ev);
	return 0;
}

void context_teardown(tevent_context *ev, Teardown how)
{
	if (ev->lifeline == nullptr) {
		return;  // creation failed before context_setup()
	}
	pthread_mutex_lock(&g_contexts_mutex);
	g_contexts.remove(ev->lifeline);
	pthread_mutex_unlock(&g_contexts_mutex);

	threads_context_fini(ev);
	post_fallback_drop_all(ev);
	wrappers_detach_all(ev);
	wakeup_fini(ev);
	fds_detach_all(ev);
	timers_detach_all(ev, how);
	immediates_detach_all(ev, how);
	signals_detach_all(ev);

	// The hook goes, the permission stays: tevent_re_initialise() must
	// not take nesting away from a caller that allowed it.
	ev->nesting.level = 0;
	ev->nesting.hook_fn = nullptr;
	ev->nesting.hook_private = nullptr;
}

tevent_context *main_ev(tevent_context *ev)
{
	if (ev != nullptr && ev->wrapper.glue != nullptr &&
	    ev->wrapper.glue->main_ev != nullptr) {
		return ev->wrapper.glue->main_ev;
	}
	return ev;
}

} // namespace tevent

using namespace tevent;

int ContextLifeline::on_talloc_free()
{
	if (link.prev == nullptr) {
		return 0;  // torn down by the context's own destructor
	}
	// The context is being freed but its destructor was replaced, so
	// nothing has torn it down. Every other child of the context is gone
	// already (its own wakeup fd event among them); whatever is left on
	// its lists lives elsewhere and must not keep a pointer to it.
	if (ev->wakeup_fde != nullptr) {
		ev->wakeup_fde = nullptr;
		close(ev->wakeup_fd);
		ev->wakeup_fd = -1;
	}
	context_teardown(ev, Teardown::kContextGoes);
	return 0;
}

int tevent_context::on_talloc_free()
{
	if (wrapper.glue != nullptr) {
		return wrapper_on_talloc_free(this);
	}
	return tevent_common_context_destructor(this);
}

static void refuse_wrapper_teardown(tevent_context *ev)
{
	if (ev->wrapper.glue != nullptr) {
		tevent_abort(ev, "tevent_common_context_destructor() active on wrapper");
	}
}

TEVENT_EXPORT int tevent_common_context_destructor(struct tevent_context *ev)
{
	refuse_wrapper_teardown(ev);
	context_teardown(ev, Teardown::kContextGoes);
	return 0;
}

TEVENT_EXPORT bool tevent_register_backend(const char *name,
					   const struct tevent_ops *ops)
{
	for (BackendEntry *e = g_backends; e != nullptr; e = e->next) {
		if (strcmp(e->name, name) == 0) {
			return true;  // first registration wins
		}
	}
	auto *e = static_cast<BackendEntry *>(malloc(sizeof(BackendEntry)));
	if (e == nullptr) {
		return false;
	}
	e->name = name;
	e->ops = ops;
	e->next = g_backends;
	g_backends = e;
	return true;
}

TEVENT_EXPORT void tevent_set_default_backend(const char *backend)
{
	free(g_default_backend);
	g_default_backend = backend ? strdup(backend) : nullptr;
}

TEVENT_EXPORT const struct tevent_ops *tevent_find_ops_byname(const char *name)
{
	ensure_backends();
	if (name == nullptr) {
		name = g_default_backend;
	}
	if (name == nullptr) {
		name = "standard";
	}
	for (BackendEntry *e = g_backends; e != nullptr; e = e->next) {
		if (strcmp(e->name, name) == 0) {
			return e->ops;
		}
	}
	return nullptr;
}

TEVENT_EXPORT const char **tevent_backend_list(TALLOC_CTX *mem_ctx)
{
	ensure_backends();
	size_t n = 0;
	for (BackendEntry *e = g_backends; e != nullptr; e = e->next) {
		n++;
	}
	auto **list = talloc_zero_array(mem_ctx, const char *, n + 1);
	if (list == nullptr) {
		return nullptr;
	}
	size_t i = 0;
	for (BackendEntry *e = g_backends; e != nullptr; e = e->next) {
		list[i] = talloc_strdup(list, e->name);
		if (list[i] == nullptr) {
			talloc_free(list);
			return nullptr;
		}
		i++;
	}
	return list;
}

TEVENT_EXPORT struct tevent_context *tevent_context_init_ops(
	TALLOC_CTX *mem_ctx, const struct tevent_ops *ops,
	void *additional_data)
{
	auto *ev = new_talloc_object<tevent_context>(mem_ctx,
						     "struct tevent_context");
	if (ev == nullptr) {
		return nullptr;
	}
	if (!make_lifeline(ev) || !post_fallback_init(ev)) {
		talloc_free(ev);
		return nullptr;
	}
	ev->timers.init();
	ev->wait_timeout = tevent_timeval_set(30, 0);
	ev->debug.max_level = TEVENT_DEBUG_FATAL;
	if (context_setup(ev) != 0) {
		talloc_free(ev);
		return nullptr;
	}
	ev->ops = ops;
	ev->additional_data = additional_data;
	if (ops->context_init(ev) != 0) {
		talloc_free(ev);
		return nullptr;
	}
	return ev;
}

TEVENT_EXPORT struct tevent_context *tevent_context_init_byname(
	TALLOC_CTX *mem_ctx, const char *name)
{
	const struct tevent_ops *ops = tevent_find_ops_byname(name);
	if (ops == nullptr) {
		return nullptr;
	}
	return tevent_context_init_ops(mem_ctx, ops, nullptr);
}

TEVENT_EXPORT struct tevent_context *tevent_context_init(TALLOC_CTX *mem_ctx)
{
	return tevent_context_init_byname(mem_ctx, nullptr);
}

TEVENT_EXPORT int tevent_re_initialise(struct tevent_context *ev)
{
	refuse_wrapper_teardown(ev);
	context_teardown(ev, Teardown::kReinitialise);
	context_setup(ev);
	return ev->ops->context_init(ev);
}

TEVENT_EXPORT uint32_t tevent_context_set_wait_timeout(struct tevent_context *ev,
						       uint32_t secs)
{
	// A wrapper keeps a value of its own that no loop reads, as upstream.
	uint32_t old = no_timeout(&ev->wait_timeout)
			       ? 0
			       : (uint32_t)ev->wait_timeout.tv_sec;
	if (secs == 0) {
		ev->wait_timeout = (struct timeval){0, INT32_MAX};
	} else {
		ev->wait_timeout = (struct timeval){
			(time_t)(secs > INT32_MAX ? INT32_MAX : secs), 0};
	}
	return old;
}

TEVENT_EXPORT pid_t tevent_cached_getpid(void)
{
	pthread_once(&g_atfork_once, init_globals);  // may come before any context
	return g_cached_pid;
}

TEVENT_EXPORT void tevent_loop_allow_nesting(struct tevent_context *ev)
{
	if (ev->wrapper.glue != nullptr) {
		tevent_abort(ev, "tevent_loop_allow_nesting() on wrapper");
		return;
	}
	if (ev->wrapper.list != nullptr) {
		tevent_abort(ev, "tevent_loop_allow_nesting() with wrapper");
		return;
	}
	ev->nesting.allowed = true;
}

TEVENT_EXPORT void tevent_loop_set_nesting_hook(struct tevent_context *ev,
						tevent_nesting_hook hook,
						void *private_data)
{
	if (ev->nesting.hook_fn != nullptr &&
	    (ev->nesting.hook_fn != hook ||
	     ev->nesting.hook_private != private_data)) {
		// Only one hook at a time can be honoured.
		tevent_abort(ev, "tevent: Violation of nesting hook rules\n");
	}
	ev->nesting.hook_fn = hook;
	ev->nesting.hook_private = private_data;
}

TEVENT_EXPORT TEVENT_HOT int _tevent_loop_once(struct tevent_context *ev,
					       const char *location)
{
	int ret = 0;
	void *stack_ptr = nullptr;
	if (nesting_enter(ev, location, &stack_ptr, &ret)) {
		ret = run_once(ev, location);
		// Every event starts a fresh request call depth.
		call_depth_notify(TEVENT_CALL_FLOW_REQ_RESET, nullptr, 0,
				  "_tevent_loop_once");
		nesting_leave(ev, location, &stack_ptr, &ret);
	}
	ev->nesting.level--;
	return ret;
}

TEVENT_EXPORT int _tevent_loop_until(struct tevent_context *ev,
				     bool (*finished)(void *private_data),
				     void *private_data, const char *location)
{
	int ret = 0;
	void *stack_ptr = nullptr;
	if (nesting_enter(ev, location, &stack_ptr, &ret)) {
		while (!finished(private_data)) {
			ret = run_once(ev, location);
			if (ret != 0) {
				break;
			}
		}
		nesting_leave(ev, location, &stack_ptr, &ret);
	}
	ev->nesting.level--;
	return ret;
}

TEVENT_EXPORT bool tevent_common_have_events(struct tevent_context *ev)
{
	// The wakeup fde is plumbing, not an event a caller waits for.
	size_t nfds = ev->fds.size();
	if (ev->wakeup_fde != nullptr && ev->wakeup_fde->event_ctx == ev) {
		nfds--;
	}
	if (nfds > 0 || !ev->timers.empty() || !ev->immediates.empty() ||
	    !ev->signals.empty()) {
		return true;
	}
	// A thread proxy is an event source (upstream's is an fd event):
	// tevent_loop_wait keeps waiting for its messages.
	for (Channel *ch = ev->channels.front(); ch != nullptr;
	     ch = IntrusiveList<Channel, &Channel::link>::next(ch)) {
		if (ch->kind == Channel::kProxy) {
			return true;
		}
	}
	return false;
}

TEVENT_EXPORT int tevent_common_loop_wait(struct tevent_context *ev,
					  const char *location)
{
	while (tevent_common_have_events(ev)) {
		int ret = _tevent_loop_once(ev, location);
		if (ret != 0) {
			tevent_debug(ev, TEVENT_DEBUG_FATAL,
				     "_tevent_loop_once() failed: %d - %s\n",
				     ret, strerror(errno));
			return ret;
		}
	}
	tevent_debug(ev, TEVENT_DEBUG_WARNING,
		     "tevent_common_loop_wait() out of events\n");
	return 0;
}

TEVENT_EXPORT int _tevent_loop_wait(struct tevent_context *ev,
				    const char *location)
{
	return ev->ops->loop_wait(ev, location);
}

TEVENT_EXPORT struct tevent_timer *_tevent_add_timer(
	struct tevent_context *ev, TALLOC_CTX *mem_ctx,
	struct timeval next_event, tevent_timer_handler_t handler,
	void *private_data, const char *handler_name, const char *location)
{
	return ev->ops->add_timer(ev, mem_ctx, next_event, handler,
				  private_data, handler_name, location);
}

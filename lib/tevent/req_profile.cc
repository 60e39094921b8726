// tevent_req_profile: timing and outcome records of a request tree.
//
// A profiled request gets a profile; every subrequest created on its state
// is profiled too and appears in the parent's subprofile list right away.
// When a subrequest finishes, its profile moves under the parent's profile
// (talloc-wise), so it survives the subrequest being freed.

#include "req_internal.hh"

#include <sys/time.h>

namespace {

constexpr const char kProfileTypeName[] = "struct tevent_req_profile";

struct timeval now()
{
	struct timeval tv;
	gettimeofday(&tv, nullptr);
	return tv;
}

} // namespace

void tevent_req_profile::add_sub(tevent_req_profile *sub)
{
	if (sub->parent != nullptr) {
		sub->parent->subprofiles.remove(sub);
	}
	sub->parent = this;
	subprofiles.push_back(sub);
}

int tevent_req_profile::on_talloc_free()
{
	if (parent != nullptr) {
		parent->subprofiles.remove(this);
		parent = nullptr;
	}
	// Children that are not our talloc children (still owned by a
	// running subrequest) must not point back at us.
	while (tevent_req_profile *sub = subprofiles.pop_front()) {
		sub->parent = nullptr;
	}
	return 0;
}

bool tevent_req::start_profile()
{
	if (profile != nullptr) {
		_tevent_req_error(this, EINVAL, __location__);
		return false;
	}
	tevent_req_profile *p = tevent_req_profile_create(this);
	if (p == nullptr) {
		_tevent_req_oom(this, __location__);
		return false;
	}
	p->req_name = talloc_get_name(state_data);
	p->start_location = create_location;
	p->start_time = now();
	profile = p;
	return true;
}

namespace tevent {

void req_profile_attach_to_parent(struct tevent_req *req,
				  struct tevent_req *parent)
{
	parent->profile->add_sub(req->profile);
}

void req_profile_finish(struct tevent_req *req, enum tevent_req_state state,
			const char *location)
{
	tevent_req_profile *p = req->profile;
	p->stop_location = location;
	p->stop_time = now();
	p->state = state;
	p->user_error = req->error;
	if (p->parent != nullptr) {
		// Hand the record to the parent: it outlives this request.
		talloc_steal(p->parent, p);
		req->profile = nullptr;
	}
}

} // namespace tevent

TEVENT_EXPORT bool tevent_req_set_profile(struct tevent_req *req)
{
	return req->start_profile();
}

TEVENT_EXPORT struct tevent_req_profile *
tevent_req_move_profile(struct tevent_req *req, TALLOC_CTX *mem_ctx)
{
	tevent_req_profile *p = req->profile;
	req->profile = nullptr;
	return static_cast<tevent_req_profile *>(talloc_steal(mem_ctx, p));
}

TEVENT_EXPORT const struct tevent_req_profile *
tevent_req_get_profile(struct tevent_req *req)
{
	return req->profile;
}

TEVENT_EXPORT void
tevent_req_profile_get_name(const struct tevent_req_profile *profile,
			    const char **req_name)
{
	if (req_name != nullptr) {
		*req_name = profile->req_name;
	}
}

TEVENT_EXPORT void
tevent_req_profile_get_start(const struct tevent_req_profile *profile,
			     const char **start_location,
			     struct timeval *start_time)
{
	if (start_location != nullptr) {
		*start_location = profile->start_location;
	}
	if (start_time != nullptr) {
		*start_time = profile->start_time;
	}
}

TEVENT_EXPORT void
tevent_req_profile_get_stop(const struct tevent_req_profile *profile,
			    const char **stop_location,
			    struct timeval *stop_time)
{
	if (stop_location != nullptr) {
		*stop_location = profile->stop_location;
	}
	if (stop_time != nullptr) {
		*stop_time = profile->stop_time;
	}
}

TEVENT_EXPORT void
tevent_req_profile_get_status(const struct tevent_req_profile *profile,
			      pid_t *pid, enum tevent_req_state *state,
			      uint64_t *user_error)
{
	if (pid != nullptr) {
		*pid = profile->pid;
	}
	if (state != nullptr) {
		*state = profile->state;
	}
	if (user_error != nullptr) {
		*user_error = profile->user_error;
	}
}

TEVENT_EXPORT const struct tevent_req_profile *
tevent_req_profile_get_subprofiles(const struct tevent_req_profile *profile)
{
	return profile->subprofiles.front();
}

TEVENT_EXPORT const struct tevent_req_profile *
tevent_req_profile_next(const struct tevent_req_profile *profile)
{
	return profile->sibling_hook.next;
}

TEVENT_EXPORT struct tevent_req_profile *
tevent_req_profile_create(TALLOC_CTX *mem_ctx)
{
	return tevent::new_talloc_object<tevent_req_profile>(mem_ctx,
							    kProfileTypeName);
}

TEVENT_EXPORT bool tevent_req_profile_set_name(struct tevent_req_profile *profile,
					       const char *req_name)
{
	profile->req_name = talloc_strdup(profile, req_name);
	return profile->req_name != nullptr;
}

TEVENT_EXPORT bool
tevent_req_profile_set_start(struct tevent_req_profile *profile,
			     const char *start_location,
			     struct timeval start_time)
{
	profile->start_time = start_time;
	profile->start_location = talloc_strdup(profile, start_location);
	return profile->start_location != nullptr;
}

TEVENT_EXPORT bool
tevent_req_profile_set_stop(struct tevent_req_profile *profile,
			    const char *stop_location, struct timeval stop_time)
{
	profile->stop_time = stop_time;
	profile->stop_location = talloc_strdup(profile, stop_location);
	return profile->stop_location != nullptr;
}

TEVENT_EXPORT void
tevent_req_profile_set_status(struct tevent_req_profile *profile, pid_t pid,
			      enum tevent_req_state state, uint64_t user_error)
{
	profile->pid = pid;
	profile->state = state;
	profile->user_error = user_error;
}

TEVENT_EXPORT void
tevent_req_profile_append_sub(struct tevent_req_profile *parent_profile,
			      struct tevent_req_profile **sub_profile)
{
	tevent_req_profile *sub = *sub_profile;
	if (sub == nullptr) {
		return;
	}
	*sub_profile = nullptr;
	talloc_steal(parent_profile, sub);
	parent_profile->add_sub(sub);
}

// The epoll backend. Several fdes may watch one descriptor (epoll accepts
// a descriptor once), so the backend keeps one slot per descriptor number:
// the list of fdes on it and the event mask registered with the kernel.
// A readiness report goes to the first fde of the slot that wants it, and
// that fde moves to the back so that fdes sharing a descriptor take turns.
//
// One epoll_wait() harvests up to kBatch reports; later loop turns serve
// the rest, still one handler per turn and after that turn's immediates
// and timers. A held report is re-checked (see refresh()) when its
// descriptor's fdes changed since (freed, re-added: the number may now be
// another file) or when the descriptor is in blocking mode, where a read
// handler run on a report that another handler made stale could block.
//
// A flag change (tevent_fd_set_flags()) is only noted; the kernel hears
// of it just before the next epoll_wait(), and not at all when the flags
// are back where they were by then. A reader that disarms its fd when a
// read finishes and arms it for the next one in the same turn, as every
// tstream read does, so costs no system call instead of two (bench/:
// fd_rearm). Adding and freeing fdes still reach the kernel at once: a
// descriptor is often closed right after its fde is freed.
//
// A registration outlives its descriptor when the descriptor is closed
// while another one (a dup, a forked child's copy) keeps the file open:
// the kernel keys registrations by file and number, so DEL cannot reach
// it any more. Each ADD therefore tags its reports with a per-number
// generation; a report whose tag is not the number's current one comes
// from such a leftover and makes us move to a fresh epoll set, which
// leaves the leftovers behind. Upstream reads its freed fde there.
#include "backend.hh"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

namespace tevent {

namespace {

// One descriptor number: its fdes (a short list through
// tevent_fd::slot_link, first one in the slot) and what is registered with
// the kernel for it. All in one word, since the table has a slot per
// descriptor number: fde pointers are 16-byte aligned (talloc), which
// leaves the low four bits for the registered mask and the "in the epoll
// set" bit.
class EpollSlot {
public:
	tevent_fd *front() const
	{
		return reinterpret_cast<tevent_fd *>(word_ & ~kStateBits);
	}
	bool empty() const { return front() == nullptr; }
	static tevent_fd *next(const tevent_fd *f) { return f->slot_link.next; }

	bool contains(const tevent_fd *fde) const
	{
		for (tevent_fd *f = front(); f != nullptr; f = next(f)) {
			if (f == fde) {
				return true;
			}
		}
		return false;
	}

	void push_back(tevent_fd *fde)
	{
		fde->slot_link.next = nullptr;
		tevent_fd *f = front();
		if (f == nullptr) {
			fde->slot_link.prev = nullptr;
			set_front(fde);
			return;
		}
		while (f->slot_link.next != nullptr) {
			f = f->slot_link.next;
		}
		f->slot_link.next = fde;
		fde->slot_link.prev = f;
	}

	void remove(tevent_fd *fde)
	{
		tevent_fd *prev = fde->slot_link.prev;
		tevent_fd *next = fde->slot_link.next;
		if (prev != nullptr) {
			prev->slot_link.next = next;
		} else {
			set_front(next);
		}
		if (next != nullptr) {
			next->slot_link.prev = prev;
		}
		fde->slot_link.prev = fde->slot_link.next = nullptr;
	}

	tevent_fd *pop_front()
	{
		tevent_fd *f = front();
		if (f != nullptr) {
			remove(f);
		}
		return f;
	}

	// The events registered with epoll (EPOLLIN, EPOLLOUT, EPOLLRDHUP).
	uint32_t armed() const
	{
		uint32_t ev = 0;
		for (const auto &m : kEventBits) {
			if (word_ & m.bit) {
				ev |= m.event;
			}
		}
		return ev;
	}
	bool registered() const { return (word_ & kRegistered) != 0; }

	// An error was reported to one of its fdes (see tevent_fd::error_seen).
	bool error_seen() const
	{
		for (tevent_fd *f = front(); f != nullptr; f = next(f)) {
			if (f->error_seen) {
				return true;
			}
		}
		return false;
	}
	void note_error()
	{
		for (tevent_fd *f = front(); f != nullptr; f = next(f)) {
			f->error_seen = true;
		}
	}

	void set_kernel_state(uint32_t armed, bool registered)
	{
		uintptr_t bits = registered ? kRegistered : 0;
		for (const auto &m : kEventBits) {
			if (armed & m.event) {
				bits |= m.bit;
			}
		}
		word_ = (word_ & ~kStateBits) | bits;
	}

private:
	static constexpr uintptr_t kRegistered = 8, kStateBits = 15;
	// Where each epoll event is kept in the word's low bits.
	struct EventBit {
		uint32_t event;
		uintptr_t bit;
	};
	static constexpr EventBit kEventBits[] = {
		{EPOLLIN, 1}, {EPOLLOUT, 2}, {EPOLLRDHUP, 4}};

	void set_front(tevent_fd *f)
	{
		word_ = reinterpret_cast<uintptr_t>(f) | (word_ & kStateBits);
	}

	uintptr_t word_;
};

static_assert(sizeof(EpollSlot) == sizeof(void *), "one word per fd number");

constexpr int kBatch = 64;

class EpollBackend {
public:
	static EpollBackend *create(tevent_context *ev);
	int on_talloc_free();

	bool attach(tevent_fd *fde);
	void detach(tevent_fd *fde);
	void update(int fd, const tevent_fd *leaving = nullptr);
	void flags_changed(int fd);
	int wait_once(const struct timeval *delay);

private:
	bool open_epoll();
	void check_reopen(bool in_wait);
	EpollSlot *slot(int fd);
	bool grow(int fd);
	bool panic(const char *what, bool replay);
	void ctl_failed(int op, const tevent_fd *primary);
	void retire();
	bool retired() const { return epfd_ == -1; }
	void disable_slot(int op, int fd);
	void report_bad_fd(int op, const tevent_fd *fde);
	bool move_to_new_set();
	void register_all();
	bool owned(const struct epoll_event &r) const;
	int drop_leftover_reports(int n);
	bool refresh(struct epoll_event &r);
	int dispatch(int fd, uint32_t events);
	void changed();
	bool is_pending(int fd) const;
	void apply_pending();
	static uint32_t map_flags(uint16_t flags);

	tevent_context *ev_;
	int epfd_;  // -1 once retired
	pid_t pid_;
	// Set while a wait re-registers everything in a forked child: a panic
	// then says "replay[1]", as upstream's does there.
	bool force_replay_;
	EpollSlot *slots_;
	uint32_t *gens_;  // per number: the tag of its current registration
	size_t nslots_;
	uint64_t changes_;  // fdes joined or left a slot (any slot)
	// Numbers with a flag change the kernel has not heard of: a bit per
	// number (nslots_ bits), and the numbers themselves.
	uint64_t *pending_bits_;
	int *pending_;
	size_t npending_, pending_cap_;
	// The reports of the last epoll_wait(), served one per loop turn.
	struct epoll_event batch_[kBatch];
	uint64_t batch_changes_;  // changes_ when batch_ was harvested
	int nbatch_;  // reports in batch_
	int next_;    // the next one to serve
};

// A report's data: the descriptor number, and the generation of the
// registration that produced it.
uint64_t report_data(int fd, uint32_t gen)
{
	return (uint64_t)gen << 32 | (uint32_t)fd;
}
int report_fd(const struct epoll_event &r)
{
	return (int)(uint32_t)r.data.u64;
}
uint32_t report_gen(const struct epoll_event &r)
{
	return (uint32_t)(r.data.u64 >> 32);
}

EpollBackend *backend_of(tevent_context *ev)
{
	return static_cast<EpollBackend *>(ev->additional_data);
}

void hook_flags_changed(tevent_fd *fde)
{
	backend_of(fde->event_ctx)->flags_changed(fde->fd);
}

void hook_detach(tevent_fd *fde)
{
	backend_of(fde->event_ctx)->detach(fde);
}


uint32_t EpollBackend::map_flags(uint16_t flags)
{
	uint32_t ev = 0;
	// EPOLLERR and EPOLLHUP are always reported; EPOLLRDHUP tells a
	// half-closed peer apart for readers and error watchers.
	if (flags & TEVENT_FD_READ) {
		ev |= EPOLLIN | EPOLLRDHUP;
	}
	if (flags & TEVENT_FD_WRITE) {
		ev |= EPOLLOUT;
	}
	if (flags & TEVENT_FD_ERROR) {
		ev |= EPOLLRDHUP;
	}
	return ev;
}

EpollBackend *EpollBackend::create(tevent_context *ev)
{
	auto *b = new_talloc_object<EpollBackend>(ev, "struct epoll_event_context");
	if (b == nullptr) {
		return nullptr;
	}
	b->ev_ = ev;
	b->epfd_ = -1;
	if (!b->open_epoll()) {
		TEVENT_DEBUGF(ev, TEVENT_DEBUG_FATAL,
			      "Failed to create epoll handle (%s).\n",
			      strerror(errno));
		talloc_free(b);
		return nullptr;
	}
	return b;
}

bool EpollBackend::open_epoll()
{
	epfd_ = epoll_create1(EPOLL_CLOEXEC);
	if (epfd_ == -1) {
		return false;
	}
	pid_ = cached_pid();
	return true;
}

int EpollBackend::on_talloc_free()
{
	if (epfd_ != -1) {
		close(epfd_);
		epfd_ = -1;
	}
	free(slots_);
	free(gens_);
	free(pending_bits_);
	free(pending_);
	slots_ = nullptr;
	gens_ = nullptr;
	pending_bits_ = nullptr;
	pending_ = nullptr;
	nslots_ = npending_ = pending_cap_ = 0;
	return 0;
}

bool EpollBackend::grow(int fd)
{
	// 1.5x steps: the table costs a word per descriptor number.
	size_t want = nslots_ ? nslots_ : 64;
	while (want <= (size_t)fd) {
		want += want / 2;
	}
	// gens_ and pending_bits_ first: if slots_ then fails, longer ones
	// do no harm.
	size_t old_words = (nslots_ + 63) / 64, words = (want + 63) / 64;
	auto *p = static_cast<uint64_t *>(
		realloc(pending_bits_, words * sizeof(uint64_t)));
	if (p == nullptr) {
		return false;
	}
	memset(p + old_words, 0, (words - old_words) * sizeof(uint64_t));
	pending_bits_ = p;
	auto *g = static_cast<uint32_t *>(realloc(gens_, want * sizeof(uint32_t)));
	if (g == nullptr) {
		return false;
	}
	gens_ = g;
	auto *n = static_cast<EpollSlot *>(realloc(slots_, want * sizeof(EpollSlot)));
	if (n == nullptr) {
		return false;
	}
	memset(static_cast<void *>(n + nslots_), 0,
	       (want - nslots_) * sizeof(EpollSlot));
	memset(g + nslots_, 0, (want - nslots_) * sizeof(uint32_t));
	slots_ = n;
	nslots_ = want;
	return true;
}

EpollSlot *EpollBackend::slot(int fd)
{
	if (fd < 0 || (size_t)fd >= nslots_) {
		return nullptr;
	}
	return &slots_[fd];
}

// An epoll failure we cannot recover from. The standard backend hands the
// context over to poll (and this object retires: callers must not touch
// it afterwards); plain epoll aborts, as upstream does. `replay` is
// upstream's word for a failure met inside the wait, where the fallback
// serves the same turn; the messages are upstream's, as logs get grepped.
bool EpollBackend::panic(const char *what, bool replay)
{
	int err = errno;
	tevent_context *ev = ev_;
	unsigned r = (replay || force_replay_) ? 1 : 0;
	if (ev->ops == &standard_ops) {
		TEVENT_DEBUGF(ev, TEVENT_DEBUG_ERROR,
			      "%s (%s) replay[%u] - calling panic_fallback\n",
			      what, strerror(err), r);
		retire();
		if (standard_fallback_to_poll(ev)) {
			return true;
		}
	}
	tevent_debug(ev, TEVENT_DEBUG_FATAL,
		     "%s (%s) replay[%u] - calling abort()\n", what,
		     strerror(err), r);
	abort();
}

const char *ctl_name(int op)
{
	return op == EPOLL_CTL_ADD ? "EPOLL_CTL_ADD"
	       : op == EPOLL_CTL_MOD ? "EPOLL_CTL_MOD"
				     : "EPOLL_CTL_DEL";
}

// epoll_ctl() failed for a reason that leaves the set unusable. Like
// upstream, MOD and DEL first name the descriptor's first fde at FATAL
// level (no newline: upstream has none there either).
void EpollBackend::ctl_failed(int op, const tevent_fd *primary)
{
	int err = errno;
	char what[32];
	if (op != EPOLL_CTL_ADD) {
		FdText text;
		TEVENT_DEBUGF(ev_, TEVENT_DEBUG_FATAL, "%s for %s - failed - %s",
			      ctl_name(op),
			      describe_fd(text, "primary", primary),
			      strerror(err));
	}
	snprintf(what, sizeof(what), "%s failed", ctl_name(op));
	errno = err;
	panic(what, false);
}

// Gives up the epoll set. The object itself stays allocated (a child of
// the context) because a caller up the stack may still hold it.
void EpollBackend::retire()
{
	for (size_t i = 0; i < nslots_; i++) {
		while (tevent_fd *fde = slots_[i].pop_front()) {
			fde->hooks_id = kNoFdHooks;
		}
	}
	on_talloc_free();
	if (ev_->additional_data == this) {
		ev_->additional_data = nullptr;
	}
}

// The descriptor is not valid (closed behind our back): its fdes can
// never fire again, as upstream does on EBADF.
void EpollBackend::disable_slot(int op, int fd)
{
	EpollSlot *s = slot(fd);
	report_bad_fd(op, s->front());
	while (tevent_fd *fde = s->pop_front()) {
		fde->hooks_id = kNoFdHooks;
		fd_disarm(fde);
	}
	changed();
	s->set_kernel_state(0, false);
}

void EpollBackend::report_bad_fd(int op, const tevent_fd *fde)
{
	FdText text;
	TEVENT_DEBUGF(ev_,
		      op == EPOLL_CTL_DEL ? TEVENT_DEBUG_WARNING
					  : TEVENT_DEBUG_ERROR,
		      "%s EBADF for %s - disabling\n", ctl_name(op),
		      describe_fd(text, "primary", fde));
}

// Whether fd is open, or low enough to have been one: below the limit on
// open files, and below a million (limits can be near-infinite).
bool may_name_descriptor(int fd)
{
	if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) {
		return true;
	}
	struct rlimit rl;
	return fd < (1 << 20) && getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	       (rlim_t)fd < rl.rlim_cur;
}

bool EpollBackend::attach(tevent_fd *fde)
{
	if ((size_t)fde->fd >= nslots_) {
		// Only a number that can name a descriptor may grow the
		// table, which costs a word per number: a stray number such
		// as INT_MAX would ask for gigabytes. Any other is disabled
		// as EBADF from epoll_ctl() would have it. A closed number
		// below the limit gets its slot: like upstream, an fde
		// without flags on it only hears of EBADF when freed.
		if (!may_name_descriptor(fde->fd)) {
			report_bad_fd(EPOLL_CTL_ADD, fde);
			fde->hooks_id = kNoFdHooks;
			fd_disarm(fde);
			return true;
		}
		if (!grow(fde->fd)) {
			return false;
		}
	}
	fde->hooks_id = kEpollFdHooks;
	fde->fd_mode = 0;
	fde->error_seen = false;
	changed();
	slots_[fde->fd].push_back(fde);
	update(fde->fd);
	return true;
}

void EpollBackend::detach(tevent_fd *fde)
{
	EpollSlot *s = slot(fde->fd);
	if (s == nullptr || !s->contains(fde)) {
		return;
	}
	s->remove(fde);
	changed();
	update(fde->fd, fde);
}

void EpollBackend::changed()
{
	changes_++;
}

bool EpollBackend::is_pending(int fd) const
{
	return (pending_bits_[fd / 64] >> (fd % 64)) & 1;
}

// Notes a flag change on fd for the next wait (see the top of this file).
void EpollBackend::flags_changed(int fd)
{
	if (slot(fd) == nullptr || is_pending(fd)) {
		return;
	}
	if (npending_ == pending_cap_) {
		size_t cap = pending_cap_ ? pending_cap_ * 2 : 16;
		auto *p = static_cast<int *>(realloc(pending_, cap * sizeof(int)));
		if (p == nullptr) {
			update(fd);  // no room to note it: tell the kernel now
			return;
		}
		pending_ = p;
		pending_cap_ = cap;
	}
	pending_bits_[fd / 64] |= uint64_t{1} << (fd % 64);
	pending_[npending_++] = fd;
}

// Tells the kernel about the flag changes noted since the last wait.
void EpollBackend::apply_pending()
{
	// update() may retire the backend, which empties the list.
	while (npending_ > 0) {
		int fd = pending_[--npending_];
		pending_bits_[fd / 64] &= ~(uint64_t{1} << (fd % 64));
		update(fd);
	}
}

// Decides whether a held report may still be served and brings it up to
// date. A report for a descriptor in non-blocking mode whose fdes did not
// change is used as is: at worst a handler sees EAGAIN, which non-blocking
// code handles. Otherwise the descriptor is asked again with poll(),
// which costs the system call that epoll_wait() would have cost, but
// keeps the rotation among ready descriptors fair.
bool EpollBackend::refresh(struct epoll_event &r)
{
	int fd = report_fd(r);
	EpollSlot *s = slot(fd);
	if (s == nullptr || s->empty() || !s->registered()) {
		return false;
	}
	tevent_fd *first = s->front();
	if (first->fd_mode == 0) {
		int fl = fcntl(fd, F_GETFL);
		first->fd_mode = (fl == -1 || !(fl & O_NONBLOCK)) ? 1 : 2;
	}
	if (changes_ == batch_changes_ && first->fd_mode == 2) {
		return true;
	}
	uint32_t armed = s->armed();
	struct pollfd pfd = {fd, 0, 0};
	if (armed & EPOLLIN) {
		pfd.events |= POLLIN;
	}
	if (armed & EPOLLOUT) {
		pfd.events |= POLLOUT;
	}
	if (armed & EPOLLRDHUP) {
		pfd.events |= POLLRDHUP;
	}
	if (poll(&pfd, 1, 0) != 1 || (pfd.revents & POLLNVAL)) {
		return false;
	}
	uint32_t events = 0;
	if (pfd.revents & POLLIN) {
		events |= EPOLLIN;
	}
	if (pfd.revents & POLLOUT) {
		events |= EPOLLOUT;
	}
	if (pfd.revents & POLLERR) {
		events |= EPOLLERR;
	}
	if (pfd.revents & POLLHUP) {
		events |= EPOLLHUP;
	}
	if (pfd.revents & POLLRDHUP) {
		events |= EPOLLRDHUP;
	}
	r.events = events;
	return true;
}


// Brings the kernel's view of one descriptor in line with its fdes.
// `leaving`: an fde just taken off the slot, named in messages when it
// was the last one (upstream names the fde being freed there).
void EpollBackend::update(int fd, const tevent_fd *leaving)
{
	// A forked child gets its own epoll set before changing anything:
	// the inherited one is shared with the parent.
	check_reopen(false);
	if (retired()) {
		return;
	}
	EpollSlot *s = slot(fd);
	if (s == nullptr) {
		return;
	}
	uint32_t want = 0;
	for (tevent_fd *f = s->front(); f != nullptr; f = EpollSlot::next(f)) {
		want |= map_flags(f->flags);
	}
	// After an error only readers and error watchers are watched (see
	// tevent_fd::error_seen).
	if (!(want & (EPOLLIN | EPOLLRDHUP)) && s->error_seen()) {
		want = 0;
	}
	// The last fde of a descriptor being freed removes it from the set
	// even when nothing is registered, as upstream's does: a descriptor
	// closed behind our back then gets upstream's EBADF warning.
	bool last_freed = leaving != nullptr && leaving->destroyed && s->empty();
	if (want == s->armed() && s->registered() == (want != 0) &&
	    !last_freed) {
		return;
	}

	int op;
	if (want == 0) {
		op = EPOLL_CTL_DEL;
	} else if (s->registered()) {
		op = EPOLL_CTL_MOD;
	} else {
		op = EPOLL_CTL_ADD;
		gens_[fd]++;  // a new registration: older reports are leftovers
	}
	struct epoll_event event;
	memset(&event, 0, sizeof(event));
	event.events = want;
	event.data.u64 = report_data(fd, gens_[fd]);
	int ret = epoll_ctl(epfd_, op, fd, &event);
	if (ret == 0) {
		s->set_kernel_state(want, want != 0);
		return;
	}
	const tevent_fd *primary = s->empty() ? leaving : s->front();
	if (op == EPOLL_CTL_DEL && (errno == ENOENT || errno == EBADF)) {
		// Nothing registered (a freed fde that never had flags, or
		// the set was reopened after fork), or the descriptor was
		// closed first; then a registration may live on, see
		// drop_leftover_reports().
		if (errno == EBADF) {
			report_bad_fd(op, primary);
		} else {
			FdText text;
			TEVENT_DEBUGF(ev_, TEVENT_DEBUG_TRACE,
				      "EPOLL_CTL_DEL ignoring ENOENT for %s\n",
				      describe_fd(text, "primary", primary));
		}
		s->set_kernel_state(0, false);
		return;
	}
	// A MOD that finds no registration (ENOENT) means the descriptor was
	// closed behind the library's back and its number now names another
	// file: like upstream, that is a panic (poll for the standard
	// backend, abort for plain epoll), not something to paper over.
	if (op == EPOLL_CTL_ADD && errno == EEXIST) {
		// A leftover registration of this very file and number (it
		// came back with dup2()): a MOD makes it ours, new tag
		// included.
		s->set_kernel_state(want ^ EPOLLIN, true);
		update(fd);
		return;
	}
	if (errno == EBADF) {
		disable_slot(op, fd);
		return;
	}
	ctl_failed(op, primary);
}

// An epoll set is shared with a forked child; the child needs its own.
// `in_wait`: called by the wait, whose turn a fallback then serves.
void EpollBackend::check_reopen(bool in_wait)
{
	pid_t pid = cached_pid();
	if (pid == pid_) {
		return;
	}
	close(epfd_);
	nbatch_ = next_ = 0;  // reports of the parent's set
	if (!open_epoll()) {
		panic("epoll_create() failed", in_wait);
		return;
	}
	force_replay_ = in_wait;
	register_all();
	force_replay_ = false;
}

// Registers every watched descriptor with a set that has none of them.
void EpollBackend::register_all()
{
	for (size_t i = 0; i < nslots_; i++) {
		slots_[i].set_kernel_state(0, false);
	}
	for (size_t i = 0; i < nslots_ && !retired(); i++) {
		if (!slots_[i].empty()) {
			update((int)i);
		}
	}
}

// Leaves a set that holds leftover registrations for a new one. Keeps
// the old set if no new one can be had: its leftovers' reports are then
// dropped on every wait, which costs turns but runs no wrong handler.
bool EpollBackend::move_to_new_set()
{
	int fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd == -1) {
		TEVENT_DEBUGF(ev_, TEVENT_DEBUG_ERROR,
			      "epoll_create1() failed (%s) - keeping an epoll "
			      "set with stale registrations\n",
			      strerror(errno));
		return false;
	}
	// Keep our descriptor number: the caller may have plans for the
	// numbers it closed, such as the one that brought us here.
	if (dup3(fd, epfd_, O_CLOEXEC) == -1) {
		close(fd);
		return false;
	}
	close(fd);
	register_all();
	return true;
}

// Whether a report comes from the registration we hold for its number.
bool EpollBackend::owned(const struct epoll_event &r) const
{
	int fd = report_fd(r);
	return (size_t)fd < nslots_ && slots_[fd].registered() &&
	       gens_[fd] == report_gen(r);
}

// Checks a fresh batch for reports of registrations we no longer own
// (see the top of this file), drops them and, if there were any, moves to
// a new set. Returns how many reports are left.
int EpollBackend::drop_leftover_reports(int n)
{
	int i = 0;
	while (i < n && owned(batch_[i])) {
		i++;
	}
	if (i == n) {
		return n;  // the usual case: nothing to drop
	}
	TEVENT_DEBUGF(ev_, TEVENT_DEBUG_WARNING,
		      "epoll reported fd[%d] after it was closed while still "
		      "open elsewhere - moving to a new epoll set\n",
		      report_fd(batch_[i]));
	int kept = i;
	for (i++; i < n; i++) {
		if (owned(batch_[i])) {
			batch_[kept++] = batch_[i];
		}
	}
	move_to_new_set();
	return kept;
}

TEVENT_HOT int EpollBackend::wait_once(const struct timeval *delay)
{
	check_reopen(true);
	if (retired()) {
		return kWaitFellBack;
	}

	if (!ev_->signals.empty() && tevent_common_check_signal(ev_)) {
		return 0;
	}

	bool fresh = next_ >= nbatch_;
	if (fresh && messages_before_sleep(ev_, delay)) {
		return run_spun_messages(ev_);
	}

	// The trace points bracket every turn's wait, also one served from
	// the held reports, so tracers see the same sequence as upstream.
	if (fresh) {
		int wait_errno;
		apply_pending();
		if (retired()) {
			return kWaitFellBack;
		}
		int n = traced_wait(ev_, [&] {
			// Flags changed by the trace callback of this wait.
			apply_pending();
			if (retired()) {
				return 0;
			}
			return epoll_wait(epfd_, batch_, kBatch,
					  timeout_msec(delay));
		}, &wait_errno);
		if (retired()) {
			return kWaitFellBack;
		}
		if (n == -1 && wait_errno == EINTR) {
			return wait_interrupted(ev_);
		}
		if (n == -1) {
			errno = wait_errno;
			panic("epoll_wait() failed", true);
			return kWaitFellBack;
		}
		if (n == 0) {
			return finish_idle_wait(ev_, delay);
		}
		n = drop_leftover_reports(n);
		if (retired()) {
			return kWaitFellBack;
		}
		batch_changes_ = changes_;
		nbatch_ = n;
		next_ = 0;
	} else {
		trace_point(ev_, TEVENT_TRACE_BEFORE_WAIT);
		trace_point(ev_, TEVENT_TRACE_AFTER_WAIT);
	}

	// The first report of a batch is as fresh as upstream's; later ones
	// are checked before use.
	while (next_ < nbatch_) {
		struct epoll_event r = batch_[next_++];
		if (!(fresh && next_ == 1) && !refresh(r)) {
			continue;
		}
		int ret = dispatch(report_fd(r), r.events);
		if (ret != -2) {
			return ret;
		}
	}
	return 0;
}

// Runs the handler of the fde that a report for fd belongs to; -2 when no
// fde wants it.
TEVENT_HOT int EpollBackend::dispatch(int fd, uint32_t events)
{
	EpollSlot *s = slot(fd);
	if (s == nullptr || s->empty()) {
		return -2;
	}

	uint16_t ready = 0;
	if (events & EPOLLIN) {
		ready |= TEVENT_FD_READ;
	}
	if (events & EPOLLOUT) {
		ready |= TEVENT_FD_WRITE;
	}
	bool report_error = (events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) != 0;
	if (report_error) {
		s->note_error();
	}

	for (tevent_fd *f = s->front(); f != nullptr; f = EpollSlot::next(f)) {
		uint16_t flags = fd_flags_for(f, ready, report_error,
					      f->error_seen);
		if (flags == 0) {
			continue;
		}
		// Take turns among fdes sharing the descriptor.
		if (EpollSlot::next(f) != nullptr) {
			s->remove(f);
			s->push_back(f);
		}
		return tevent_common_invoke_fd_handler(f, flags, nullptr);
	}

	if (s->error_seen()) {
		// Only writers are left and they are not told about errors:
		// stop watching for writability, as upstream does, or the
		// error would be reported forever.
		for (tevent_fd *f = s->front(); f != nullptr;
		     f = EpollSlot::next(f)) {
			f->flags &= ~TEVENT_FD_WRITE;
		}
		update(fd);
	}
	return -2;
}

int epoll_context_init(tevent_context *ev)
{
	// tevent_re_initialise() calls us again: drop the old state first.
	if (ev->additional_data != nullptr) {
		talloc_free(ev->additional_data);
		ev->additional_data = nullptr;
	}
	EpollBackend *b = EpollBackend::create(ev);
	if (b == nullptr) {
		return -1;
	}
	ev->additional_data = b;
	return 0;
}

struct tevent_fd *epoll_add_fd(struct tevent_context *ev, TALLOC_CTX *mem_ctx,
			       int fd, uint16_t flags,
			       tevent_fd_handler_t handler, void *private_data,
			       const char *handler_name, const char *location)
{
	tevent_fd *fde = tevent_common_add_fd(ev, mem_ctx, fd, flags, handler,
					      private_data, handler_name,
					      location);
	if (fde == nullptr) {
		return nullptr;
	}
	if (!backend_of(ev)->attach(fde)) {
		talloc_free(fde);
		return nullptr;
	}
	return fde;
}

TEVENT_HOT int epoll_loop_once(struct tevent_context *ev, const char *location)
{
	(void)location;
	return loop_once_common(ev, [ev](const struct timeval &delay) {
		if (ev->ops != &poll_ops) {
			int ret = backend_of(ev)->wait_once(&delay);
			if (ret != kWaitFellBack) {
				return ret;
			}
		}
		// A standard context that fell back to poll: poll waits instead.
		return poll_wait_once(ev, &delay);
	});
}

} // namespace

const struct tevent_ops epoll_ops = builtin_ops(epoll_context_init, epoll_add_fd, epoll_loop_once);

// "standard": epoll while it works, poll otherwise.
static int standard_context_init(tevent_context *ev)
{
	if (epoll_context_init(ev) == 0) {
		return 0;
	}
	ev->ops = &poll_ops;
	return poll_ops.context_init(ev);
}

const struct tevent_ops standard_ops = builtin_ops(standard_context_init, epoll_add_fd, epoll_loop_once);

const BackendFdHooks epoll_fd_hooks = {hook_flags_changed, hook_detach};

bool epoll_backend_register()
{
	return tevent_register_backend("epoll", &epoll_ops) &&
	       tevent_register_backend("standard", &standard_ops);
}

} // namespace tevent

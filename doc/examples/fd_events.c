/*
 * fd_events.c - file descriptor events (doc/fd.md)
 *
 * One socketpair, three fd events:
 *  - a writer on one end that sends three messages, one per call, and
 *    then frees its event; the event was set to auto-close, so that free
 *    closes the socket and the peer sees a hangup;
 *  - a reader on the other end (TEVENT_FD_READ) that collects the data
 *    until end of file; a close function closes its descriptor when the
 *    event is freed;
 *  - an error watcher on the same descriptor as the reader
 *    (TEVENT_FD_ERROR only): incoming data does not wake it, the hangup
 *    does.
 * Exits 0 when everything behaved as described.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <talloc.h>
#include <tevent.h>

#include "example_util.h"	/* print_library() */

/* tevent handlers have fixed signatures; not all use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"

static const char *messages[] = { "one ", "two ", "three" };

struct state {
	int wfd, rfd;
	unsigned writes;
	char received[64];
	size_t len;
	bool eof;
	uint16_t flags_at_eof;
	unsigned watcher_calls;
	uint16_t watcher_flags;
	int closed_fd;
	bool stuck;
};

/* Only a hang guard: ends the loop if the hangup is never reported. */
static void give_up(struct tevent_context *ev, struct tevent_timer *te,
		    struct timeval now, void *private_data)
{
	struct state *s = private_data;

	s->stuck = true;
}

static void writer(struct tevent_context *ev, struct tevent_fd *fde,
		   uint16_t flags, void *private_data)
{
	struct state *s = private_data;
	const char *msg = messages[s->writes];

	if (write(s->wfd, msg, strlen(msg)) != (ssize_t)strlen(msg)) {
		return; /* a socketpair takes these few bytes at once */
	}
	s->writes++;
	if (s->writes == sizeof(messages) / sizeof(messages[0])) {
		/* Done. Freeing the event from its own handler is fine;
		 * auto-close closes s->wfd now, the reader sees a hangup. */
		talloc_free(fde);
	}
}

static void reader(struct tevent_context *ev, struct tevent_fd *fde,
		   uint16_t flags, void *private_data)
{
	struct state *s = private_data;
	ssize_t n = read(s->rfd, s->received + s->len,
			 sizeof(s->received) - 1 - s->len);

	if (n > 0) {
		s->len += (size_t)n;
		return;
	}
	if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
		return;
	}
	/* End of file (or an error): stop watching, keep the event. If it
	 * stayed readable-watched, every turn would call us again. */
	s->eof = true;
	s->flags_at_eof = flags;
	tevent_fd_set_flags(fde, 0);
}

static void watcher(struct tevent_context *ev, struct tevent_fd *fde,
		    uint16_t flags, void *private_data)
{
	struct state *s = private_data;

	s->watcher_calls++;
	s->watcher_flags = flags;
	talloc_free(fde);
}

/* Runs when the reader's event is freed; it owns closing the fd. */
static void reader_close(struct tevent_context *ev, struct tevent_fd *fde,
			 int fd, void *private_data)
{
	struct state *s = private_data;

	s->closed_fd = fd;
	close(fd);
}

static const char *flag_names(uint16_t flags)
{
	static char buf[32];

	snprintf(buf, sizeof(buf), "%s%s%s",
		 flags & TEVENT_FD_READ ? " READ" : "",
		 flags & TEVENT_FD_WRITE ? " WRITE" : "",
		 flags & TEVENT_FD_ERROR ? " ERROR" : "");
	return buf[0] != '\0' ? buf + 1 : "none";
}

int main(void)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = tevent_context_init(mem);
	struct state *s = talloc_zero(mem, struct state);
	struct tevent_fd *wfde, *rfde, *efde;
	int sp[2];
	int turns = 0;
	bool ok;

	print_library();
	if (ev == NULL || s == NULL ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, sp) != 0) {
		fprintf(stderr, "fd_events: setup failed\n");
		return 1;
	}
	s->wfd = sp[0];
	s->rfd = sp[1];
	s->closed_fd = -1;
	fcntl(sp[1], F_SETFL, fcntl(sp[1], F_GETFL) | O_NONBLOCK);

	/* Created paused (flags 0), then switched on with the macro. */
	wfde = tevent_add_fd(ev, s, sp[0], 0, writer, s);
	rfde = tevent_add_fd(ev, s, sp[1], TEVENT_FD_READ, reader, s);
	efde = tevent_add_fd(ev, s, sp[1], TEVENT_FD_ERROR, watcher, s);
	if (wfde == NULL || rfde == NULL || efde == NULL) {
		fprintf(stderr, "fd_events: tevent_add_fd failed\n");
		return 1;
	}
	tevent_fd_set_auto_close(wfde);
	tevent_fd_set_close_fn(rfde, reader_close);
	TEVENT_FD_WRITEABLE(wfde);
	if (tevent_add_timer(ev, s, tevent_timeval_current_ofs(60, 0),
			     give_up, s) == NULL) {
		return 1;
	}

	while ((!s->eof || s->watcher_calls == 0) && !s->stuck &&
	       turns++ < 1000) {
		if (tevent_loop_once(ev) != 0) {
			perror("tevent_loop_once");
			return 1;
		}
	}
	/* The close function runs here, on the free. */
	talloc_free(rfde);

	s->received[s->len] = '\0';
	printf("writer:  %u writes, then freed its event (auto-close)\n",
	       s->writes);
	printf("reader:  received \"%s\", then end of file (flags %s)\n",
	       s->received, flag_names(s->flags_at_eof));
	printf("watcher: called %u time(s), with flags %s\n",
	       s->watcher_calls, flag_names(s->watcher_flags));
	printf("close_fn: %s\n", s->closed_fd == sp[1] ?
	       "closed the reader's descriptor" : "did not run");

	ok = s->writes == 3 && strcmp(s->received, "one two three") == 0 &&
	     s->eof && s->watcher_calls == 1 &&
	     s->watcher_flags == TEVENT_FD_ERROR && s->closed_fd == sp[1];
	printf("%s\n", ok ? "OK" : "FAILED");
	talloc_free(mem);
	return ok ? 0 : 1;
}

/*
 * queue_writer.c - several writers sharing one socket through a tevent_queue
 *
 * The problem
 * -----------
 * Four requests each want to send a 1 MiB buffer over the same stream
 * socket.  The socket's send buffer is tiny, so no buffer goes out in one
 * write(2): every request has to wait for the socket to become writable,
 * write what fits, and repeat - a few hundred times.  If all four requests
 * did that at once, their pieces would be interleaved on the wire and the
 * receiver would get garbage.  Each request must have the socket to itself
 * from its first byte to its last.
 *
 * The tool
 * --------
 * A tevent_queue hands out that exclusive access.  A request does not start
 * writing in its _send() function; it only joins the queue with
 * tevent_queue_add() and names a trigger function.  The queue calls the
 * trigger when the request reaches the head, which is the moment the
 * request may start using the socket.
 *
 * The subtle part is how the queue learns that the head is finished.  There
 * is no "next, please" call.  tevent_queue_add() hangs a small queue entry
 * off the request (as a talloc child); when the request is freed, the entry
 * goes with it and its destructor schedules the trigger of the next entry.
 * So the caller's usual "receive the result, then talloc_free(req)" is what
 * moves the queue along.  Finishing the request (tevent_req_done) is not
 * enough on its own: a finished but unfreed request still holds the queue.
 *
 * The program
 * -----------
 * main() makes a socketpair with small buffers, starts all four writers at
 * once (all four are outstanding, three of them waiting in the queue), and
 * reads the other end of the socketpair on the same event loop.  A fifth
 * request joins the queue and is freed again before its turn: freeing a
 * waiting request simply takes it out of the line.  The reader
 * knows what every byte of every buffer must be, so it can tell whether the
 * buffers arrived whole and in order.  The program prints a short summary
 * and exits 0 when everything matched.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <talloc.h>
#include <tevent.h>

#include "example_util.h"	/* print_library() */

/* tevent handlers have fixed signatures; not all use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"

#define NUM_WRITERS 4
#define BUFFER_SIZE (1024 * 1024)

/*
 * The content of byte `offset` of writer `id`'s buffer.  Neighbouring
 * bytes and the different writers all get different-looking data, so any
 * interleaving or loss shows up at the receiver.
 */
static uint8_t pattern_byte(unsigned id, size_t offset)
{
	uint32_t x = (uint32_t)offset * 2654435761u;

	x ^= (id + 1) * 0x9e3779b9u;
	x ^= x >> 15;
	return (uint8_t)(x >> 8);
}

/* ===================================================================== */
/* The serialised write request                                           */
/* ===================================================================== */

struct queued_write_state {
	struct tevent_context *ev;
	int fd;
	const uint8_t *buf;
	size_t len;
	size_t sent;
	unsigned write_calls;	/* how many write(2) calls moved data */
	struct tevent_fd *fde;	/* only while it is our turn */
};

static void queued_write_trigger(struct tevent_req *req, void *private_data);
static void queued_write_handler(struct tevent_context *ev,
				 struct tevent_fd *fde,
				 uint16_t flags,
				 void *private_data);
static void queued_write_cleanup(struct tevent_req *req,
				 enum tevent_req_state req_state);

/*
 * Ask for buf[0..len) to be written to fd, after every request queued
 * before this one has been finished and freed.
 */
static struct tevent_req *queued_write_send(TALLOC_CTX *mem_ctx,
					    struct tevent_context *ev,
					    struct tevent_queue *queue,
					    int fd,
					    const uint8_t *buf,
					    size_t len)
{
	struct tevent_req *req;
	struct queued_write_state *state;
	bool ok;

	req = tevent_req_create(mem_ctx, &state, struct queued_write_state);
	if (req == NULL) {
		return NULL;
	}
	state->ev = ev;
	state->fd = fd;
	state->buf = buf;
	state->len = len;

	/*
	 * However the request ends (done, error, or freed early by the
	 * caller), stop watching the socket.
	 */
	tevent_req_set_cleanup_fn(req, queued_write_cleanup);

	/*
	 * Do not touch the socket yet: join the queue.  Even on an empty
	 * queue the trigger runs from the event loop, never from inside
	 * tevent_queue_add(), so the caller can still set its callback.
	 */
	ok = tevent_queue_add(queue, ev, req, queued_write_trigger, NULL);
	if (!ok) {
		tevent_req_oom(req);
		return tevent_req_post(req, ev);
	}
	return req;
}

/* Our turn: the socket is ours until this request is freed. */
static void queued_write_trigger(struct tevent_req *req, void *private_data)
{
	struct queued_write_state *state =
		tevent_req_data(req, struct queued_write_state);

	/*
	 * Wait for room in the socket buffer.  The fd event belongs to the
	 * state, so it also disappears if the request is freed.
	 */
	state->fde = tevent_add_fd(state->ev, state, state->fd,
				   TEVENT_FD_WRITE, queued_write_handler, req);
	if (tevent_req_nomem(state->fde, req)) {
		return;
	}
}

/* The socket has room: write as much as it takes. */
static void queued_write_handler(struct tevent_context *ev,
				 struct tevent_fd *fde,
				 uint16_t flags,
				 void *private_data)
{
	struct tevent_req *req =
		talloc_get_type_abort(private_data, struct tevent_req);
	struct queued_write_state *state =
		tevent_req_data(req, struct queued_write_state);
	ssize_t n;

	n = write(state->fd, state->buf + state->sent,
		  state->len - state->sent);
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR) {
			/* someone else drained less than we hoped; wait */
			return;
		}
		tevent_req_error(req, errno);
		return;
	}
	state->write_calls++;
	state->sent += (size_t)n;

	if (state->sent < state->len) {
		/* the rest goes out on a later turn of the loop */
		return;
	}
	tevent_req_done(req);
}

static void queued_write_cleanup(struct tevent_req *req,
				 enum tevent_req_state req_state)
{
	struct queued_write_state *state =
		tevent_req_data(req, struct queued_write_state);

	/* called with the state still in place, for any final state */
	TALLOC_FREE(state->fde);
}

/* Returns 0 or an errno value; reports how many writes it took. */
static int queued_write_recv(struct tevent_req *req, unsigned *write_calls)
{
	struct queued_write_state *state =
		tevent_req_data(req, struct queued_write_state);
	enum tevent_req_state req_state;
	uint64_t err;

	if (tevent_req_is_error(req, &req_state, &err)) {
		tevent_req_received(req);
		if (req_state == TEVENT_REQ_USER_ERROR) {
			return (int)err;
		}
		return ENOMEM;
	}
	*write_calls = state->write_calls;
	tevent_req_received(req);
	return 0;
}

/* ===================================================================== */
/* The caller's side                                                      */
/* ===================================================================== */

struct writer {
	unsigned id;
	struct demo *demo;
	unsigned write_calls;
};

struct demo {
	struct tevent_queue *queue;
	struct writer writers[NUM_WRITERS];
	unsigned completion_order[NUM_WRITERS];
	unsigned completed;
	int error;

	/* the receiving end */
	int rfd;
	struct tevent_fd *rfde;
	size_t received;
	size_t first_bad;	/* stream offset of the first wrong byte */
	bool corrupt;
	bool eof;
};

static void writer_done(struct tevent_req *req)
{
	struct writer *w = tevent_req_callback_data_void(req);
	struct demo *demo = w->demo;
	int ret;

	ret = queued_write_recv(req, &w->write_calls);

	/*
	 * This talloc_free() is what lets the next writer in the queue
	 * start: it destroys the queue entry hanging off the request.
	 */
	talloc_free(req);

	if (ret != 0 && demo->error == 0) {
		demo->error = ret;
	}
	demo->completion_order[demo->completed++] = w->id;
}

/* Read whatever has arrived and check it against the expected bytes. */
static void reader_handler(struct tevent_context *ev,
			   struct tevent_fd *fde,
			   uint16_t flags,
			   void *private_data)
{
	struct demo *demo = private_data;
	uint8_t chunk[65536];
	ssize_t n;
	size_t i;

	n = read(demo->rfd, chunk, sizeof(chunk));
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR) {
			return;
		}
		demo->error = errno;
		TALLOC_FREE(demo->rfde);
		return;
	}
	if (n == 0) {
		demo->eof = true;
		TALLOC_FREE(demo->rfde);
		return;
	}

	for (i = 0; i < (size_t)n; i++) {
		size_t pos = demo->received + i;
		unsigned id = (unsigned)(pos / BUFFER_SIZE);
		size_t offset = pos % BUFFER_SIZE;

		/* buffer k must be writer k's, complete, before buffer k+1 */
		if (id >= NUM_WRITERS ||
		    chunk[i] != pattern_byte(id, offset)) {
			if (!demo->corrupt) {
				demo->corrupt = true;
				demo->first_bad = pos;
			}
		}
	}
	demo->received += (size_t)n;

	if (demo->received == (size_t)NUM_WRITERS * BUFFER_SIZE) {
		/* all there: stop reading */
		TALLOC_FREE(demo->rfde);
	}
}

static int set_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags == -1) {
		return -1;
	}
	return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int main(void)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev;
	struct demo *demo;
	int sv[2];
	int small = 4096;
	unsigned i;
	bool ok = true;

	print_library();
	if (mem == NULL) {
		return 1;
	}
	ev = tevent_context_init(mem);
	demo = talloc_zero(mem, struct demo);
	if (ev == NULL || demo == NULL) {
		fprintf(stderr, "queue_writer: out of memory\n");
		return 1;
	}

	/*
	 * One stream socket, with buffers far smaller than what we send:
	 * sv[0] is written by the queued requests, sv[1] is read below.
	 */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
		perror("socketpair");
		return 1;
	}
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	(void)setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	if (set_nonblocking(sv[0]) != 0 || set_nonblocking(sv[1]) != 0) {
		perror("fcntl");
		return 1;
	}

	/* The queue that serialises everybody who writes to sv[0]. */
	demo->queue = tevent_queue_create(demo, "socket writers");
	if (demo->queue == NULL) {
		fprintf(stderr, "queue_writer: out of memory\n");
		return 1;
	}

	/* The receiving side runs on the same loop. */
	demo->rfd = sv[1];
	demo->rfde = tevent_add_fd(ev, demo, sv[1], TEVENT_FD_READ,
				   reader_handler, demo);
	if (demo->rfde == NULL) {
		fprintf(stderr, "queue_writer: out of memory\n");
		return 1;
	}

	/* Start all the writers at once. */
	for (i = 0; i < NUM_WRITERS; i++) {
		struct writer *w = &demo->writers[i];
		struct tevent_req *req;
		uint8_t *buf;
		size_t off;

		buf = talloc_array(demo, uint8_t, BUFFER_SIZE);
		if (buf == NULL) {
			fprintf(stderr, "queue_writer: out of memory\n");
			return 1;
		}
		for (off = 0; off < BUFFER_SIZE; off++) {
			buf[off] = pattern_byte(i, off);
		}

		w->id = i;
		w->demo = demo;
		req = queued_write_send(demo, ev, demo->queue, sv[0], buf,
					BUFFER_SIZE);
		if (req == NULL) {
			fprintf(stderr, "queue_writer: out of memory\n");
			return 1;
		}
		tevent_req_set_callback(req, writer_done, w);
	}

	/* Nothing has been written yet: all of them are waiting in line. */
	if (tevent_queue_length(demo->queue) != NUM_WRITERS) {
		fprintf(stderr, "queue_writer: expected %d queued writers\n",
			NUM_WRITERS);
		ok = false;
	}

	/*
	 * A writer that changes its mind: freeing a request that is still
	 * waiting removes its queue entry; nobody else is affected.  (Its
	 * buffer is never looked at, so any pointer would do.)
	 */
	{
		struct tevent_req *req;

		req = queued_write_send(demo, ev, demo->queue, sv[0],
					(const uint8_t *)"never sent", 10);
		if (req == NULL ||
		    tevent_queue_length(demo->queue) != NUM_WRITERS + 1) {
			fprintf(stderr, "queue_writer: fifth writer not queued\n");
			ok = false;
		}
		talloc_free(req);
		if (tevent_queue_length(demo->queue) != NUM_WRITERS) {
			fprintf(stderr, "queue_writer: freed writer still "
				"queued\n");
			ok = false;
		}
	}

	/* Run until every writer reported back and the reader is done. */
	while (demo->error == 0 && !demo->eof &&
	       (demo->completed < NUM_WRITERS || demo->rfde != NULL)) {
		if (tevent_loop_once(ev) != 0) {
			perror("tevent_loop_once");
			demo->error = errno != 0 ? errno : EIO;
		}
	}

	/* Check what happened. */
	if (demo->error != 0) {
		fprintf(stderr, "queue_writer: failed: %s\n",
			strerror(demo->error));
		ok = false;
	}
	if (demo->eof) {
		fprintf(stderr, "queue_writer: unexpected end of stream\n");
		ok = false;
	}
	if (demo->received != (size_t)NUM_WRITERS * BUFFER_SIZE) {
		fprintf(stderr, "queue_writer: received %zu of %zu bytes\n",
			demo->received, (size_t)NUM_WRITERS * BUFFER_SIZE);
		ok = false;
	}
	if (demo->corrupt) {
		fprintf(stderr, "queue_writer: wrong data at stream offset "
			"%zu (buffer %zu, offset %zu)\n", demo->first_bad,
			demo->first_bad / BUFFER_SIZE,
			demo->first_bad % BUFFER_SIZE);
		ok = false;
	}
	for (i = 0; i < demo->completed; i++) {
		/* requests complete in the order they were queued */
		if (demo->completion_order[i] != i) {
			fprintf(stderr, "queue_writer: writer %u finished "
				"in position %u\n", demo->completion_order[i],
				i);
			ok = false;
		}
	}
	for (i = 0; i < NUM_WRITERS; i++) {
		/* the point of the exercise: many writes per request */
		if (demo->writers[i].write_calls < 2) {
			fprintf(stderr, "queue_writer: writer %u needed only "
				"%u write call(s); the socket buffer is too "
				"big for this demonstration\n", i,
				demo->writers[i].write_calls);
			ok = false;
		}
	}
	if (tevent_queue_length(demo->queue) != 0) {
		fprintf(stderr, "queue_writer: queue not empty at the end\n");
		ok = false;
	}

	printf("queue_writer: %d requests x %d bytes through one socket: "
	       "%zu bytes received%s; write calls per request:",
	       NUM_WRITERS, BUFFER_SIZE, demo->received,
	       ok ? " whole and in order" : "");
	for (i = 0; i < NUM_WRITERS; i++) {
		printf(" %u", demo->writers[i].write_calls);
	}
	printf("\n%s\n", ok ? "OK" : "FAILED");

	close(sv[0]);
	close(sv[1]);
	talloc_free(mem);
	return ok ? 0 : 1;
}

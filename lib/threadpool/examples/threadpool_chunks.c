/*
 * threadpool_chunks.c - a large reply produced in a pool thread, written
 * by the loop as the socket allows (the example of doc/threadpool.md).
 *
 * A server connection has to send a reply of --size bytes.  Producing it
 * is slow work (here: formatting numbered lines), so a pool task does it,
 * one 64 KiB chunk at a time, into a buffer it shares with the loop.
 * After each chunk the task returns SYNC and waits.  The loop writes the
 * chunk whenever the socket is writable and, once the buffer is empty,
 * lets the task fill the next one.  The task never runs while the loop
 * uses the buffer, so the buffer needs no lock.
 *
 * The client is the other end of a socketpair, read by the same loop.
 * With --hangup-after N it closes its end after N bytes: the server sees
 * the peer go away and frees the connection; the pool then stops the
 * task, whether it was producing or waiting.  The task's cleanup function
 * frees the buffer in every case.
 *
 * usage: threadpool_chunks [--size BYTES] [--hangup-after BYTES]
 * Exit status 0 when the run ended the way the options say it should.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <talloc.h>
#include <tevent.h>

#include "tevent_threadpool.h"

#define CHUNK (64 * 1024)
#define LINE 16  /* "line 0000000042\n" */

struct conn;

/* The task's data.  The task writes buf while RUNNING; the loop reads it
 * only while the task waits in SYNC.  Not a talloc child of the
 * connection: the task may outlive it. */
struct reply {
	uint64_t size;       /* bytes in the whole reply */
	uint64_t produced;   /* bytes produced so far */
	char buf[CHUNK];
	size_t len;          /* bytes of buf the task filled */
	size_t sent;         /* bytes of buf the loop has written */
	int chunks;
	struct conn *conn;   /* loop side only; valid while it exists */
};

/* A server connection: the owner of the task. */
struct conn {
	int fd;
	struct tevent_fd *fde;
	struct tevent_threadpool_task *task;
	struct reply *reply;
};

struct client {
	int fd;
	struct tevent_fd *fde;
	uint64_t received;
	uint64_t hangup_after;  /* 0: read to the end */
	bool closed;
	bool bad_data;
};

/* What happened, checked by main(). */
static struct {
	int cleanups;
	enum tevent_threadpool_task_state final_state;
	bool task_finished;   /* the end notice reported FINISHED */
	bool server_done;     /* the connection was freed */
} seen;

/* Writes bytes [from, from + len) of the reply: numbered 16-byte lines. */
static void reply_bytes(char *dst, uint64_t from, size_t len)
{
	char line[LINE + 1];
	size_t done = 0;

	while (done < len) {
		uint64_t pos = from + done;
		size_t off = pos % LINE;
		size_t take = LINE - off;

		snprintf(line, sizeof(line), "line %010llu\n",
			 (unsigned long long)(pos / LINE % 10000000000ULL));
		if (take > len - done) {
			take = len - done;
		}
		memcpy(dst + done, line + off, take);
		done += take;
	}
}

/* ---- pool thread -------------------------------------------------------- */

static int produce(void *user, enum tevent_threadpool_task_state state)
{
	struct reply *r = user;

	if (state == TEVENT_TP_STATE_STOPPING) {
		return TEVENT_TP_RETURN_STOPPED;  /* nobody wants the rest */
	}
	if (r->produced == r->size) {
		return TEVENT_TP_RETURN_FINISHED;
	}
	uint64_t left = r->size - r->produced;
	r->len = left < CHUNK ? (size_t)left : CHUNK;
	reply_bytes(r->buf, r->produced, r->len);
	r->produced += r->len;
	r->sent = 0;
	r->chunks++;
	return TEVENT_TP_RETURN_SYNC;  /* hand the chunk to the loop */
}

/* ---- loop thread: server ------------------------------------------------ */

static int conn_destructor(struct conn *c)
{
	close(c->fd);
	seen.server_done = true;
	/* The pool notices the owner is gone and stops the task. */
	return 0;
}

static void conn_io(struct tevent_context *ev, struct tevent_fd *fde,
		    uint16_t flags, void *private_data)
{
	struct conn *c = private_data;
	struct reply *r = c->reply;
	(void)ev;
	(void)fde;

	if (flags & TEVENT_FD_READ) {
		/* The client sends nothing: readable means it went away. */
		char b[16];
		ssize_t n = recv(c->fd, b, sizeof(b), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			printf("server: peer went away\n");
			talloc_free(c);
			return;
		}
	}
	if (!(flags & TEVENT_FD_WRITE)) {
		return;
	}
	ssize_t n = send(c->fd, r->buf + r->sent, r->len - r->sent,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR) {
			return;
		}
		printf("server: write failed: %s\n", strerror(errno));
		talloc_free(c);
		return;
	}
	r->sent += (size_t)n;
	if (r->sent == r->len) {
		/* The chunk is out: let the task produce the next one. */
		tevent_fd_set_flags(c->fde, TEVENT_FD_READ);
		tevent_threadpool_task_sync(c->task, false);
	}
}

/* Runs on the loop when a chunk is ready (SYNCING) or the task ended. */
static void reply_sync(struct tevent_threadpool_task *task, void *user,
		       enum tevent_threadpool_task_state state)
{
	struct reply *r = user;
	struct conn *c = r->conn;

	if (state == TEVENT_TP_STATE_SYNCING) {
		/* Write it when the socket can take it. */
		tevent_fd_set_flags(c->fde, TEVENT_FD_READ | TEVENT_FD_WRITE);
		return;
	}
	/* Ended: reap it (the cleanup runs now), then end the reply. */
	seen.task_finished = state == TEVENT_TP_STATE_FINISHED;
	tevent_threadpool_task_status(task);
	c->task = NULL;
	c->reply = NULL;
	printf("server: reply complete, closing\n");
	talloc_free(c);
}

/* Runs once, whatever happened; the task's data is ours to free. */
static void reply_cleanup(void *user, enum tevent_threadpool_task_state final)
{
	struct reply *r = user;

	printf("cleanup: task %s after %d chunk(s), %llu of %llu bytes produced\n",
	       tevent_threadpool_state_name(final), r->chunks,
	       (unsigned long long)r->produced, (unsigned long long)r->size);
	seen.cleanups++;
	seen.final_state = final;
	free(r);
}

static struct conn *serve(TALLOC_CTX *mem_ctx, struct tevent_context *ev,
			  struct tevent_threadpool *pool, int fd, uint64_t size)
{
	struct conn *c = talloc_zero(mem_ctx, struct conn);
	struct reply *r = calloc(1, sizeof(*r));

	if (c == NULL || r == NULL) {
		talloc_free(c);
		free(r);
		return NULL;
	}
	c->fd = fd;
	talloc_set_destructor(c, conn_destructor);
	c->fde = tevent_add_fd(ev, c, fd, TEVENT_FD_READ, conn_io, c);
	if (c->fde == NULL) {
		talloc_free(c);
		free(r);
		return NULL;
	}
	r->size = size;
	r->conn = c;
	c->reply = r;

	struct tevent_threadpool_task_args args = {
		.ev = ev,
		.owner = c,
		.user = r,
		.task = produce,
		.sync = reply_sync,
		.cleanup = reply_cleanup,
	};
	c->task = tevent_threadpool_enqueue(pool, &args, "reply fd %d, %llu bytes",
					    fd, (unsigned long long)size);
	if (c->task == NULL) {
		/* Nothing was taken over: r is still ours. */
		perror("tevent_threadpool_enqueue");
		talloc_free(c);
		free(r);
		return NULL;
	}
	return c;
}

/* ---- loop thread: client ------------------------------------------------ */

static void client_read(struct tevent_context *ev, struct tevent_fd *fde,
			uint16_t flags, void *private_data)
{
	struct client *cl = private_data;
	char buf[16384], want[16384];
	(void)ev;
	(void)fde;
	(void)flags;

	size_t room = sizeof(buf);
	if (cl->hangup_after != 0 && cl->hangup_after - cl->received < room) {
		room = (size_t)(cl->hangup_after - cl->received);
	}
	ssize_t n = recv(cl->fd, buf, room, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		return;
	}
	if (n > 0) {
		reply_bytes(want, cl->received, (size_t)n);
		if (memcmp(buf, want, (size_t)n) != 0) {
			cl->bad_data = true;
		}
		cl->received += (uint64_t)n;
		if (cl->hangup_after == 0 || cl->received < cl->hangup_after) {
			return;
		}
		printf("client: hanging up after %llu bytes\n",
		       (unsigned long long)cl->received);
	}
	TALLOC_FREE(cl->fde);
	close(cl->fd);
	cl->closed = true;
}

int main(int argc, char **argv)
{
	uint64_t size = 8 * 1024 * 1024 + 1000;  /* not a whole number of chunks */
	uint64_t hangup_after = 0;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--size") == 0) {
			size = strtoull(argv[i + 1], NULL, 0);
		} else if (strcmp(argv[i], "--hangup-after") == 0) {
			hangup_after = strtoull(argv[i + 1], NULL, 0);
		} else {
			fprintf(stderr, "usage: %s [--size N] [--hangup-after N]\n",
				argv[0]);
			return 2;
		}
	}

	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = tevent_context_init(mem);
	/* Two threads, room for a few queued tasks. */
	struct tevent_threadpool *pool = tevent_threadpool_create(mem, 2, 8,
								  "example");
	int sv[2];
	if (ev == NULL || pool == NULL ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
		perror("setup");
		return 1;
	}

	struct client cl = { .fd = sv[1], .hangup_after = hangup_after };
	cl.fde = tevent_add_fd(ev, mem, cl.fd, TEVENT_FD_READ, client_read, &cl);
	if (cl.fde == NULL || serve(mem, ev, pool, sv[0], size) == NULL) {
		return 1;
	}

	/* Until the reply was sent or abandoned and the client is done. */
	while (!(seen.server_done && seen.cleanups == 1 && cl.closed)) {
		if (tevent_loop_once(ev) != 0) {
			perror("tevent_loop_once");
			return 1;
		}
	}

	char *dump = tevent_threadpool_dump(mem, pool);
	printf("%s", dump);
	talloc_free(mem);  /* the pool, the loop and what is left */

	printf("client: received %llu bytes%s\n", (unsigned long long)cl.received,
	       cl.bad_data ? ", WRONG DATA" : "");
	bool ok = !cl.bad_data && seen.cleanups == 1;
	if (hangup_after == 0 || hangup_after >= size) {
		ok = ok && cl.received == size && seen.task_finished &&
		     seen.final_state == TEVENT_TP_STATE_FINISHED;
	} else {
		ok = ok && cl.received == hangup_after && !seen.task_finished &&
		     seen.final_state == TEVENT_TP_STATE_STOPPED;
	}
	printf("%s\n", ok ? "ok" : "FAILED");
	return ok ? 0 : 1;
}

/*
 * thread_reply.c - request and reply between event loops in different threads
 *
 * The setting
 * -----------
 * A program has one "master" thread running a tevent loop and several
 * worker threads, each running a tevent loop of its own.  A worker wants
 * to ask the master something and wait for the answer without blocking
 * its loop.  The master must answer from its own loop, because the data
 * it answers from belongs to its thread.
 *
 * The tool
 * --------
 * A struct tevent_thread_proxy is a mailbox in front of one loop.  The
 * thread that owns the loop creates it with tevent_thread_proxy_create();
 * any thread may then call tevent_thread_proxy_schedule() on it to have a
 * handler run, as an immediate, on the owner's loop.  Two things travel
 * with the call: the immediate itself and, optionally, one talloc'd block
 * of parameters.  Both are handed over: on return the caller's pointers
 * are NULL and the caller must forget the objects.
 *
 * The rules that make this safe
 * -----------------------------
 *  1. talloc is not thread-safe.  talloc_disable_null_tracking() is called
 *     first thing in main(), so that allocations on the NULL context do not
 *     share any hidden parent.
 *  2. Every thread uses its own talloc tree: its own tevent context, made
 *     with tevent_context_init(NULL), with everything it allocates hanging
 *     below it.  No thread ever allocates on, or frees, another thread's
 *     objects.
 *  3. What is sent must be allocated by the sender on its own tree (or on
 *     NULL), must be a plain talloc chunk (not inside a pool, no
 *     destructor), and is not touched again after sending.
 *  4. The receiving handler owns the parameter block once it runs.  If it
 *     wants to keep the block it talloc_steal()s it onto its own tree;
 *     otherwise the library frees it when the handler returns.
 *  5. A proxy belongs to the loop it was created on, so it must exist for
 *     as long as anybody may still send to it.  Here the request/reply
 *     protocol guarantees that: a worker only frees its loop (and proxy)
 *     after the reply arrived, and the master keeps its proxy until every
 *     worker has been joined.
 *
 * The reply trick
 * ---------------
 * The request carries a pointer to the worker's own proxy.  The master's
 * handler takes the parameter block and sends it straight back to that
 * proxy - together with the very immediate the handler was called with.
 * No allocation is needed for the answer.
 *
 * (This is the pattern of the tevent thread chapter, with one correction:
 * the worker must create its proxy on its own context, not on the
 * master's, or the reply would be delivered to the wrong loop.)
 *
 * The program
 * -----------
 * Usage: thread_reply [WORKERS [ROUNDS]]   (default: 8 workers, 200 rounds)
 *
 * WORKERS workers each send one request per round and wait for the
 * reply; this is repeated ROUNDS times with fresh worker threads.  The
 * master counts requests per worker, and at the end checks that every
 * worker was answered in every round and that nothing the messages
 * carried was left on the master's tree.  It prints a summary and exits 0
 * on success.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <talloc.h>
#include <tevent.h>

#include "example_util.h"	/* print_library() */

/* tevent handlers have fixed signatures; not all use every argument */
#pragma GCC diagnostic ignored "-Wunused-parameter"

#define DEFAULT_WORKERS 8
#define DEFAULT_ROUNDS 200

/* The parameter block that travels master <-> worker. */
struct request {
	struct tevent_thread_proxy *reply_to; /* the worker's own proxy */
	int worker;                           /* who is asking */
	int question;
	int answer;
	struct request **reply;               /* the worker's "got it" slot */
};

/* Master-side bookkeeping; only the master thread touches it. */
static struct {
	int requests_seen;
	int nworkers;
	int *per_worker;	/* nworkers counters */
} master;

/* What a worker thread gets when it is started. */
struct worker_args {
	struct tevent_thread_proxy *master_proxy;
	int index;
	pthread_t thread;
	bool ok;
};

/*
 * Runs on the worker's loop when the master's reply arrives.
 */
static void reply_arrived(struct tevent_context *ev,
			  struct tevent_immediate *im,
			  void *private_data)
{
	struct request *req = talloc_get_type_abort(private_data,
						    struct request);

	/* Keep the block: move it onto this thread's tree and hand it to
	 * the waiting worker code. */
	talloc_steal(ev, req);
	*req->reply = req;
	/* im is freed by the library when this returns. */
}

/*
 * Runs on the master's loop for every request.
 */
static void request_arrived(struct tevent_context *ev,
			    struct tevent_immediate *im,
			    void *private_data)
{
	struct request *req = talloc_get_type_abort(private_data,
						    struct request);

	/* From here on the block is the master's. */
	talloc_steal(ev, req);
	master.requests_seen++;
	if (req->worker >= 0 && req->worker < master.nworkers) {
		master.per_worker[req->worker]++;
	}
	req->answer = req->question * 2;

	/*
	 * Send the block back to the worker's proxy, re-using the immediate
	 * this handler is running with.  Afterwards both pointers are NULL:
	 * the objects now travel to the worker and are no longer ours.
	 */
	tevent_thread_proxy_schedule(req->reply_to, &im, reply_arrived, &req);
}

static void *worker_main(void *arg)
{
	struct worker_args *args = arg;
	struct tevent_context *ev;
	struct tevent_thread_proxy *my_proxy;
	struct tevent_immediate *im;
	struct request *req;
	struct request *reply = NULL;
	int question = 1000 + args->index;

	/* Rule 2: this thread's own context and tree. */
	ev = tevent_context_init(NULL);
	if (ev == NULL) {
		return NULL;
	}
	/* Replies must come to *this* loop: create the proxy on it. */
	my_proxy = tevent_thread_proxy_create(ev);
	if (my_proxy == NULL) {
		talloc_free(ev);
		return NULL;
	}

	/* Rule 3: allocated on our own tree, handed over by the call. */
	req = talloc(ev, struct request);
	im = tevent_create_immediate(ev);
	if (req == NULL || im == NULL) {
		talloc_free(ev);
		return NULL;
	}
	*req = (struct request) {
		.reply_to = my_proxy,
		.worker = args->index,
		.question = question,
		.reply = &reply,
	};
	tevent_thread_proxy_schedule(args->master_proxy, &im,
				     request_arrived, &req);
	/* im and req are NULL now. */

	/* Wait for the reply without blocking anything else on this loop. */
	while (reply == NULL) {
		if (tevent_loop_once(ev) != 0) {
			talloc_free(ev);
			return NULL;
		}
	}
	args->ok = (reply->worker == args->index &&
		    reply->answer == 2 * question);

	/* Frees the proxy, the reply block, everything of this thread. */
	talloc_free(ev);
	return NULL;
}

int main(int argc, char **argv)
{
	struct tevent_context *master_ev;
	struct tevent_thread_proxy *master_proxy;
	struct worker_args *workers;
	size_t blocks_before;
	int nworkers = argc > 1 ? atoi(argv[1]) : DEFAULT_WORKERS;
	int nrounds = argc > 2 ? atoi(argv[2]) : DEFAULT_ROUNDS;
	int round, i;
	bool ok = true;

	/* Rule 1, before any other talloc call. */
	talloc_disable_null_tracking();

	print_library();
	if (nworkers < 1 || nrounds < 1) {
		fprintf(stderr, "usage: %s [WORKERS [ROUNDS]]\n", argv[0]);
		return 2;
	}
	/* Shared between threads, so plain malloc memory, not talloc. */
	workers = calloc(nworkers, sizeof(*workers));
	master.per_worker = calloc(nworkers, sizeof(*master.per_worker));
	master.nworkers = nworkers;
	if (workers == NULL || master.per_worker == NULL) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}

	master_ev = tevent_context_init(NULL);
	if (master_ev == NULL) {
		fprintf(stderr, "tevent_context_init failed\n");
		return 1;
	}
	master_proxy = tevent_thread_proxy_create(master_ev);
	if (master_proxy == NULL) {
		fprintf(stderr, "tevent_thread_proxy_create failed\n");
		return 1;
	}
	blocks_before = talloc_total_blocks(master_ev);

	for (round = 0; round < nrounds && ok; round++) {
		int expected = (round + 1) * nworkers;

		for (i = 0; i < nworkers; i++) {
			workers[i] = (struct worker_args) {
				.master_proxy = master_proxy,
				.index = i,
			};
			if (pthread_create(&workers[i].thread, NULL,
					   worker_main, &workers[i]) != 0) {
				fprintf(stderr, "pthread_create failed\n");
				return 1;
			}
		}

		/*
		 * Serve requests until every worker of this round has asked.
		 * (A loop of tevent_loop_once() with an explicit condition:
		 * the proxy alone is not something tevent_loop_wait() should
		 * be relied on to wait for.)
		 */
		while (master.requests_seen < expected) {
			if (tevent_loop_once(master_ev) != 0) {
				fprintf(stderr, "tevent_loop_once failed\n");
				return 1;
			}
		}

		/*
		 * The master's proxy stays alive until every worker is joined:
		 * a worker is done sending once its thread has ended.
		 */
		for (i = 0; i < nworkers; i++) {
			pthread_join(workers[i].thread, NULL);
			if (!workers[i].ok) {
				fprintf(stderr, "round %d: worker %d got no "
					"correct reply\n", round, i);
				ok = false;
			}
		}
	}

	for (i = 0; i < nworkers; i++) {
		if (master.per_worker[i] != nrounds) {
			fprintf(stderr, "worker %d asked %d times, expected "
				"%d\n", i, master.per_worker[i], nrounds);
			ok = false;
		}
	}
	/* Every block went back to its worker: nothing stayed with us. */
	if (talloc_total_blocks(master_ev) != blocks_before) {
		fprintf(stderr, "master context holds %zu blocks, expected %zu\n",
			talloc_total_blocks(master_ev), blocks_before);
		ok = false;
	}

	printf("%d rounds x %d workers: %d requests answered, %s\n",
	       nrounds, nworkers, master.requests_seen,
	       ok ? "every reply received and correct" : "FAILED");

	talloc_free(master_ev);
	free(workers);
	free(master.per_worker);
	return ok ? 0 : 1;
}

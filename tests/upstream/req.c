/*
 * Port of upstream tevent's torture suite "local.tevent_req"
 * (lib/tevent/test_req.c) to cmocka.  Same scenarios and checks, our own
 * code.  Upstream case -> function here:
 *
 *   create    up_req_create
 *   profile1  up_req_profile1
 *   profile2  up_req_profile2
 *
 * Upstream's profile2 leans on Samba's lib/util helpers (profile
 * pack/unpack/print/string, tevent_req_poll_unix); those are not part of
 * libtevent, so this file carries its own versions built only on the
 * public tevent_req_profile_* getters and setters.  The round trip thus
 * checks the library's profile API from both sides.
 */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/types.h>

#include <cmocka.h>
#include <talloc.h>
#include <tevent.h>

#include "tt.h"
#include "tt_nap.h"
#include "up.h"

#pragma GCC diagnostic ignored "-Wunused-parameter"

/* ------------------------------------------------------------------ */
/* create: the state of a new request is zeroed                       */

struct create_state {
	uint8_t val;
};

static void up_req_create(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct create_state *st = NULL;
	struct tevent_req *req;

	req = tevent_req_create(mem, &st, struct create_state);
	assert_non_null(req);
	assert_int_equal(st->val, 0);
	TALLOC_FREE(req);
	talloc_free(mem);
}

/* ------------------------------------------------------------------ */
/* profile1: a profile outlives its request, stop is not before start */

struct profile1_state {
	uint8_t unused;
};

static void up_req_profile1(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct profile1_state *st = NULL;
	struct tevent_req *req;
	struct tevent_req_profile *moved;
	struct timeval start, stop;

	req = tevent_req_create(mem, &st, struct profile1_state);
	assert_non_null(req);
	assert_null(tevent_req_get_profile(req));

	assert_true(tevent_req_set_profile(req));
	tevent_req_done(req);

	moved = tevent_req_move_profile(req, mem);
	assert_non_null(moved);
	TALLOC_FREE(req);

	tevent_req_profile_get_start(moved, NULL, &start);
	tevent_req_profile_get_stop(moved, NULL, &stop);
	assert_true(tevent_timeval_compare(&start, &stop) <= 0);

	TALLOC_FREE(moved);
	talloc_free(mem);
}

/* ------------------------------------------------------------------ */
/* our stand-ins for Samba's lib/util/tevent_req_profile.c             */

/*
 * Wire format (native byte order, it never leaves the process):
 *   str name, str start_loc, i64 start_sec, i64 start_usec,
 *   str stop_loc, i64 stop_sec, i64 stop_usec,
 *   i64 pid, i64 state, u64 user_error, u32 nsub, nsub * profile
 * where str is a u32 length (UINT32_MAX for NULL) and the bytes.
 */
struct packer {
	uint8_t *buf;	/* NULL: only count */
	size_t cap;
	size_t used;
};

static void pk_bytes(struct packer *pk, const void *p, size_t n)
{
	if (pk->buf != NULL && pk->used + n <= pk->cap) {
		memcpy(pk->buf + pk->used, p, n);
	}
	pk->used += n;
}

static void pk_u32(struct packer *pk, uint32_t v) { pk_bytes(pk, &v, sizeof(v)); }
static void pk_u64(struct packer *pk, uint64_t v) { pk_bytes(pk, &v, sizeof(v)); }

static void pk_str(struct packer *pk, const char *s)
{
	if (s == NULL) {
		pk_u32(pk, UINT32_MAX);
		return;
	}
	pk_u32(pk, (uint32_t)strlen(s));
	pk_bytes(pk, s, strlen(s));
}

static void pk_profile(struct packer *pk, const struct tevent_req_profile *p)
{
	const struct tevent_req_profile *sub;
	const char *name = NULL, *loc = NULL;
	struct timeval tv = { 0, 0 };
	pid_t pid = 0;
	enum tevent_req_state st = TEVENT_REQ_INIT;
	uint64_t err = 0;
	uint32_t nsub = 0;

	tevent_req_profile_get_name(p, &name);
	pk_str(pk, name);
	tevent_req_profile_get_start(p, &loc, &tv);
	pk_str(pk, loc);
	pk_u64(pk, (uint64_t)tv.tv_sec);
	pk_u64(pk, (uint64_t)tv.tv_usec);
	tevent_req_profile_get_stop(p, &loc, &tv);
	pk_str(pk, loc);
	pk_u64(pk, (uint64_t)tv.tv_sec);
	pk_u64(pk, (uint64_t)tv.tv_usec);
	tevent_req_profile_get_status(p, &pid, &st, &err);
	pk_u64(pk, (uint64_t)(int64_t)pid);
	pk_u64(pk, (uint64_t)(int64_t)st);
	pk_u64(pk, err);

	for (sub = tevent_req_profile_get_subprofiles(p); sub != NULL;
	     sub = tevent_req_profile_next(sub)) {
		nsub++;
	}
	pk_u32(pk, nsub);
	for (sub = tevent_req_profile_get_subprofiles(p); sub != NULL;
	     sub = tevent_req_profile_next(sub)) {
		pk_profile(pk, sub);
	}
}

/* Bytes needed for P; fills BUF when it is big enough. */
static size_t profile_pack(const struct tevent_req_profile *p, uint8_t *buf,
			   size_t cap)
{
	struct packer pk = { .buf = buf, .cap = cap, .used = 0 };

	pk_profile(&pk, p);
	return pk.used;
}

struct unpacker {
	const uint8_t *buf;
	size_t len;
	size_t pos;
	bool bad;
};

static void up_bytes(struct unpacker *u, void *p, size_t n)
{
	if (u->bad || u->len - u->pos < n) {
		u->bad = true;
		memset(p, 0, n);
		return;
	}
	memcpy(p, u->buf + u->pos, n);
	u->pos += n;
}

static uint32_t up_u32(struct unpacker *u)
{
	uint32_t v;

	up_bytes(u, &v, sizeof(v));
	return v;
}

static uint64_t up_u64(struct unpacker *u)
{
	uint64_t v;

	up_bytes(u, &v, sizeof(v));
	return v;
}

/* A talloc'ed copy of the next string (NULL for a NULL string). */
static char *up_str(struct unpacker *u, TALLOC_CTX *mem)
{
	uint32_t n = up_u32(u);
	char *s;

	if (u->bad || n == UINT32_MAX) {
		return NULL;
	}
	if (u->len - u->pos < n) {
		u->bad = true;
		return NULL;
	}
	s = talloc_strndup(mem, (const char *)u->buf + u->pos, n);
	u->pos += n;
	if (s == NULL) {
		u->bad = true;
	}
	return s;
}

static struct tevent_req_profile *up_profile(struct unpacker *u,
					     TALLOC_CTX *mem)
{
	struct tevent_req_profile *p = tevent_req_profile_create(mem);
	TALLOC_CTX *tmp = talloc_new(NULL);
	struct timeval tv;
	char *s;
	pid_t pid;
	enum tevent_req_state st;
	uint64_t err;
	uint32_t nsub, i;

	if (p == NULL || tmp == NULL) {
		u->bad = true;
		goto out;
	}
	s = up_str(u, tmp);
	if (s != NULL && !tevent_req_profile_set_name(p, s)) {
		u->bad = true;
	}
	s = up_str(u, tmp);
	tv.tv_sec = (time_t)up_u64(u);
	tv.tv_usec = (suseconds_t)up_u64(u);
	if (s != NULL && !tevent_req_profile_set_start(p, s, tv)) {
		u->bad = true;
	}
	s = up_str(u, tmp);
	tv.tv_sec = (time_t)up_u64(u);
	tv.tv_usec = (suseconds_t)up_u64(u);
	if (s != NULL && !tevent_req_profile_set_stop(p, s, tv)) {
		u->bad = true;
	}
	pid = (pid_t)(int64_t)up_u64(u);
	st = (enum tevent_req_state)(int64_t)up_u64(u);
	err = up_u64(u);
	tevent_req_profile_set_status(p, pid, st, err);

	nsub = up_u32(u);
	for (i = 0; i < nsub && !u->bad; i++) {
		struct tevent_req_profile *sub = up_profile(u, tmp);

		if (sub == NULL) {
			break;
		}
		tevent_req_profile_append_sub(p, &sub);
	}
out:
	talloc_free(tmp);
	if (u->bad) {
		TALLOC_FREE(p);
	}
	return p;
}

/* Bytes consumed, or -1 when BUF does not hold a whole profile. */
static ssize_t profile_unpack(const uint8_t *buf, size_t len, TALLOC_CTX *mem,
			      struct tevent_req_profile **out)
{
	struct unpacker u = { .buf = buf, .len = len, .pos = 0, .bad = false };

	*out = up_profile(&u, mem);
	return *out == NULL ? -1 : (ssize_t)u.pos;
}

/* One line per profile, sub-profiles indented below their parent. */
static bool profile_describe(char **out, const struct tevent_req_profile *p,
			     unsigned depth, unsigned max_depth)
{
	const struct tevent_req_profile *sub;
	const char *name = NULL, *start_loc = NULL, *stop_loc = NULL;
	struct timeval start = { 0, 0 }, stop = { 0, 0 };
	pid_t pid = 0;
	enum tevent_req_state st = TEVENT_REQ_INIT;
	uint64_t err = 0;

	tevent_req_profile_get_name(p, &name);
	tevent_req_profile_get_start(p, &start_loc, &start);
	tevent_req_profile_get_stop(p, &stop_loc, &stop);
	tevent_req_profile_get_status(p, &pid, &st, &err);

	*out = talloc_asprintf_append_buffer(
		*out,
		"%*s%s [%s %jd.%06ld] -> [%s %jd.%06ld] pid=%d state=%d "
		"error=%" PRIu64 "\n",
		(int)(depth * 2), "", name ? name : "(null)",
		start_loc ? start_loc : "(null)", (intmax_t)start.tv_sec,
		(long)start.tv_usec, stop_loc ? stop_loc : "(null)",
		(intmax_t)stop.tv_sec, (long)stop.tv_usec, (int)pid, (int)st,
		err);
	if (*out == NULL) {
		return false;
	}
	if (depth >= max_depth) {
		return true;
	}
	for (sub = tevent_req_profile_get_subprofiles(p); sub != NULL;
	     sub = tevent_req_profile_next(sub)) {
		if (!profile_describe(out, sub, depth + 1, max_depth)) {
			return false;
		}
	}
	return true;
}

static char *profile_string(TALLOC_CTX *mem, const struct tevent_req_profile *p,
			    unsigned depth, unsigned max_depth)
{
	char *s = talloc_strdup(mem, "");

	if (s == NULL || !profile_describe(&s, p, depth, max_depth)) {
		TALLOC_FREE(s);
	}
	return s;
}

/* ------------------------------------------------------------------ */
/* profile2: a profiled request with a profiled sub-request (wakeup), */
/* packed, unpacked and compared field by field; the request is       */
/* tt_nap_send() from tests/common/tt_nap.h                            */

static void up_req_profile2(void **state)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev;
	struct tevent_req *req;
	struct tevent_req_profile *p1 = NULL, *p2 = NULL;
	const char *s1, *s2;
	char *text1, *text2;
	struct timeval tv1, tv2;
	pid_t pid1, pid2;
	enum tevent_req_state st1, st2;
	uint64_t err1, err2;
	size_t len;
	uint8_t *buf;

	ev = tevent_context_init(mem);
	assert_non_null(ev);

	req = tt_nap_send(mem, ev);
	assert_non_null(req);
	assert_true(tevent_req_poll(req, ev));
	assert_int_equal(tt_req_unix_error(req), 0);

	assert_int_equal(tt_nap_recv(req, mem, &p1), 0);
	assert_non_null(p1);
	TALLOC_FREE(req);
	TALLOC_FREE(ev);

	text1 = profile_string(mem, p1, 0, UINT_MAX);
	assert_non_null(text1);
	print_message("%s", text1);

	len = profile_pack(p1, NULL, 0);
	assert_true(len > 0);
	buf = talloc_array(mem, uint8_t, len);
	assert_non_null(buf);
	assert_int_equal(profile_pack(p1, buf, len), len);
	assert_int_equal(profile_unpack(buf, len, mem, &p2), (ssize_t)len);
	assert_non_null(p2);

	text2 = profile_string(mem, p2, 0, UINT_MAX);
	assert_non_null(text2);
	print_message("%s", text2);

	tevent_req_profile_get_name(p1, &s1);
	tevent_req_profile_get_name(p2, &s2);
	assert_string_equal(s1, s2);

	tevent_req_profile_get_start(p1, &s1, &tv1);
	tevent_req_profile_get_start(p2, &s2, &tv2);
	assert_string_equal(s1, s2);
	assert_int_equal(tevent_timeval_compare(&tv1, &tv2), 0);

	tevent_req_profile_get_stop(p1, &s1, &tv1);
	tevent_req_profile_get_stop(p2, &s2, &tv2);
	assert_string_equal(s1, s2);
	assert_int_equal(tevent_timeval_compare(&tv1, &tv2), 0);

	tevent_req_profile_get_status(p1, &pid1, &st1, &err1);
	tevent_req_profile_get_status(p2, &pid2, &st2, &err2);
	assert_int_equal(pid1, pid2);
	assert_int_equal(st1, st2);
	assert_int_equal(err1, err2);

	/* the whole trees, sub-profiles included */
	assert_string_equal(text1, text2);

	TALLOC_FREE(p1);
	TALLOC_FREE(p2);
	talloc_free(mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(up_req_create),
		cmocka_unit_test(up_req_profile1),
		cmocka_unit_test(up_req_profile2),
	};

	tt_check_library();
	return cmocka_run_group_tests_name("upstream test_req.c (local.tevent_req)",
					   tests, NULL, NULL);
}

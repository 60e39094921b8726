/*
 * Helpers shared by the ports of upstream tevent's own test suites
 * (every source in tests/upstream).
 *
 * These programs are compiled against whatever tevent.h the build chose
 * (Debian's 0.14.1 one when it is installed) and must run unchanged
 * against both Debian's libtevent and ours.  Anything newer than the
 * header is declared here and looked up at run time; a case that needs
 * something the loaded library lacks is skipped -- but never against our
 * own library, which implements all of 0.17.2, so a skip there is a
 * failure.  UP_NO_SKIP=TEXT in the environment runs the cases whose
 * missing feature's description contains TEXT anyway.
 *
 * Include after <cmocka.h> and <tevent.h>.
 */
#ifndef UP_H
#define UP_H

#include <dlfcn.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Flag value from tevent 0.16 onwards; older headers do not define it. */
#ifndef TEVENT_FD_ERROR
#define TEVENT_FD_ERROR 4
#endif

/* A symbol only 0.17 exports; marks a library with the newest semantics. */
#define UP_NEWEST_SYMBOL "tevent_context_set_wait_timeout"

static inline void *up_symbol(const char *name)
{
	return dlsym(RTLD_DEFAULT, name);
}

static inline bool up_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/*
 * True when the loaded libtevent is this project's: it lives outside the
 * system directories, or it exports 0.17 API (a system copy that new is
 * expected to run every case too).
 */
static inline bool up_library_is_ours(void)
{
	Dl_info info;
	char real[PATH_MAX];
	void *fn = up_symbol("tevent_context_init");

	if (up_symbol(UP_NEWEST_SYMBOL) != NULL) {
		return true;
	}
	if (fn == NULL || dladdr(fn, &info) == 0 || info.dli_fname == NULL ||
	    realpath(info.dli_fname, real) == NULL) {
		return false;
	}
	return !(up_under(real, "/usr") || up_under(real, "/lib") ||
		 up_under(real, "/lib64"));
}

/*
 * Skip the running case when the library lacks WHAT (present == false);
 * fail it instead when the library is ours.
 */
static inline void up_require(bool present, const char *what)
{
	if (present) {
		return;
	}
	if (getenv("UP_NO_SKIP") != NULL &&
	    strstr(what, getenv("UP_NO_SKIP")) != NULL) {
		/* to see how an older library fails the case */
		print_message("UP_NO_SKIP: running although %s is missing\n",
			      what);
		return;
	}
	if (up_library_is_ours()) {
		fail_msg("the library under test is ours but lacks %s", what);
	}
	print_message("skipped: the loaded libtevent lacks %s\n", what);
	skip();
}

/* Look a function up by name, skipping (or failing, see above) if absent. */
static inline void *up_require_symbol(const char *name)
{
	void *p = up_symbol(name);

	up_require(p != NULL, name);
	return p;
}

/*
 * The tag accessors of every event kind behind one signature, for the
 * cases that run the same steps on each kind (tag.c, trace.c):
 * up_fd_get_tag(), up_fd_set_tag(), ..., up_queue_entry_set_tag().
 */
#define UP_TAG_ACCESSORS(OBJ)						\
static inline uint64_t up_##OBJ##_get_tag(const void *event)		\
{									\
	return tevent_##OBJ##_get_tag(event);				\
}									\
static inline void up_##OBJ##_set_tag(void *event, uint64_t tag)	\
{									\
	tevent_##OBJ##_set_tag(event, tag);				\
}

UP_TAG_ACCESSORS(fd)
UP_TAG_ACCESSORS(timer)
UP_TAG_ACCESSORS(signal)
UP_TAG_ACCESSORS(immediate)
UP_TAG_ACCESSORS(queue_entry)

#undef UP_TAG_ACCESSORS

#endif /* UP_H */

/*
 * Helpers shared by the tevent-cxx test programs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <talloc.h>
#include <tevent.h>

#include "tt.h"

static int under(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return strncmp(path, dir, n) == 0 && path[n] == '/';
}

void tt_check_library(void)
{
	Dl_info info;
	char loaded[PATH_MAX], wanted[PATH_MAX];
	const char *want = getenv("TEVENT_TEST_LIBRARY");
	/* Ask the loader rather than taking &tevent_context_init: in a
	 * non-PIE program that would be the program's own PLT slot. */
	void *fn = dlsym(RTLD_DEFAULT, "tevent_context_init");

	if (fn == NULL || dladdr(fn, &info) == 0 || info.dli_fname == NULL) {
		fprintf(stderr, "tt_check_library: cannot locate tevent_context_init\n");
		exit(2);
	}
	if (realpath(info.dli_fname, loaded) == NULL) {
		fprintf(stderr, "tt_check_library: realpath(%s) failed\n", info.dli_fname);
		exit(2);
	}
	fprintf(stderr, "tevent library under test: %s\n", loaded);

	if (want != NULL && want[0] != '\0') {
		if (realpath(want, wanted) == NULL) {
			fprintf(stderr, "tt_check_library: TEVENT_TEST_LIBRARY=%s does not exist\n",
				want);
			exit(2);
		}
		if (strcmp(loaded, wanted) != 0) {
			fprintf(stderr, "tt_check_library: expected %s (TEVENT_TEST_LIBRARY), "
				"but the loader used %s\n", wanted, loaded);
			exit(2);
		}
		return;
	}
	if (under(loaded, "/usr/lib") || under(loaded, "/lib") ||
	    under(loaded, "/usr/lib64") || under(loaded, "/lib64")) {
		fprintf(stderr, "tt_check_library: %s is the system copy; set "
			"TEVENT_TEST_LIBRARY to test it on purpose\n", loaded);
		exit(2);
	}
}

int tt_group_setup(void **state)
{
	(void)state;
	tt_check_library();
	return 0;
}

const char **tt_backends(void)
{
	/* Owned by a static pointer: reachable, so no leak report. */
	static const char **list;

	if (list == NULL) {
		list = tevent_backend_list(NULL);
		if (list == NULL) {
			fprintf(stderr, "tt_backends: tevent_backend_list failed\n");
			exit(2);
		}
	}
	return list;
}

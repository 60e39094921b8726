/*
 * example_util.h - helpers shared by the programs in doc/examples/
 *
 * Nothing here is about the tevent API; it is the bookkeeping every
 * example needs, kept in one place so that each example's own code is
 * about what its page teaches.  Every example is a single .c file built
 * on its own, so the helpers are static inline functions.
 */
#ifndef EXAMPLE_UTIL_H
#define EXAMPLE_UTIL_H

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Prints "libtevent: <path>", the file the dynamic loader took
 * tevent_context_init() from.  tests/test_examples.c checks that line to
 * know the example ran on the library under test.
 */
static inline void print_library(void)
{
	Dl_info info;
	char path[PATH_MAX];
	void *fn = dlsym(RTLD_DEFAULT, "tevent_context_init");

	if (fn != NULL && dladdr(fn, &info) != 0 && info.dli_fname != NULL &&
	    realpath(info.dli_fname, path) != NULL) {
		printf("libtevent: %s\n", path);
	}
	fflush(stdout);	/* shown even if the program dies later */
}

/*
 * Appends `word` to the space-separated list in list[size] (cut short
 * rather than overflowing).  The examples record which handlers ran this
 * way and compare the list with the order they expect.
 */
static inline void append_word(char *list, size_t size, const char *word)
{
	if (list[0] != '\0') {
		strncat(list, " ", size - strlen(list) - 1);
	}
	strncat(list, word, size - strlen(list) - 1);
}

#endif /* EXAMPLE_UTIL_H */

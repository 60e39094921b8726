/*
 * Helpers for tests that run programs of the build (doc/examples/ and
 * bench/ programs) on the library under test and look at what they print.
 *
 * Needs <talloc.h> and <cmocka.h> (failures are cmocka failures).
 */
#ifndef TT_RUN_H
#define TT_RUN_H

#include <limits.h>
#include <stddef.h>

/*
 * Where the library under test is: its real path (what a program's
 * "loaded this library" line must name) and its directory (what goes
 * first in LD_LIBRARY_PATH): the copy this test program loaded, which
 * tt_check_library() has checked against $TEVENT_TEST_LIBRARY.
 */
void tt_lib_under_test(char real[PATH_MAX], char dir[PATH_MAX]);

/* <build>/<sub>, where <build> is the build directory this test program
 * sits in (<build>/tests/<name>). */
void tt_build_subdir(char *buf, size_t len, const char *sub);

/*
 * Runs path with args (NULL-terminated, at most 6) and lib_dir first in
 * LD_LIBRARY_PATH.  Returns everything it wrote to stdout and stderr, as
 * a talloc string under mem_ctx, and its wait status in *status.  A
 * program still running after timeout_s seconds is killed, with its
 * process group, and a line saying so ends the output.
 */
char *tt_run_captured(void *mem_ctx, const char *path,
		      const char *const *args, const char *lib_dir,
		      int timeout_s, int *status);

/*
 * The programs in dir: names of the regular, executable files in it whose
 * name has no dot (waf leaves object files, name.c.1.o, next to the
 * programs it links).  A NULL-terminated talloc array under mem_ctx, in
 * the directory's order; fails the test if dir cannot be read.
 */
const char **tt_program_names(void *mem_ctx, const char *dir);

#endif

/*
 * Helpers shared by the tevent-cxx test programs.
 */
#ifndef TT_H
#define TT_H

/*
 * Make sure the libtevent the dynamic loader picked is the one under test:
 * $TEVENT_TEST_LIBRARY if set (buildtools/run-tests sets it), otherwise any
 * copy that is not the system's one under /usr/lib or /lib.  Prints the
 * path to stderr; exits with status 2 on a mismatch.
 */
void tt_check_library(void);

/* cmocka group setup that only calls tt_check_library(). */
int tt_group_setup(void **state);

/*
 * NULL-terminated list of the backends to exercise (tevent_backend_list()),
 * computed once and kept for the life of the program.
 */
const char **tt_backends(void);

#endif /* TT_H */

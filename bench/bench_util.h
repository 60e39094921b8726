/*
 * bench_util.h - what tevent_bench.c and uv_bench.c have in common: the
 * clock, the --scale factor, the output lines buildtools/run-bench parses,
 * the watchdog, the timer pattern generator and main() itself.  Each
 * program is a single .c file, so everything here is static.
 *
 * Output, one line per figure:
 *   case=<name> metric=<name> unit=<ops_per_s|seconds|bytes> value=<number> n=<count>
 * or, when a case's self-check fails, "case=<name> error=<text>" and exit 1;
 * a case still running after BENCH_WATCHDOG_SECONDS ends the program with
 * "case=<name> error=watchdog" and exit 3.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_WATCHDOG_SECONDS 120

static double g_scale = 1.0;	/* --scale: multiplies every case's count */
static const char *g_case = "";	/* the case running, for the output */

static inline double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline uint64_t scaled(uint64_t base)
{
	double v = (double)base * g_scale;
	return v < 1.0 ? 1 : (uint64_t)v;
}

static inline void emit(const char *metric, const char *unit, double value,
			uint64_t n)
{
	printf("case=%s metric=%s unit=%s value=%.6g n=%llu\n", g_case, metric,
	       unit, value, (unsigned long long)n);
	fflush(stdout);
}

static inline void fail(const char *fmt, ...)
	__attribute__((noreturn, format(printf, 1, 2)));
static inline void fail(const char *fmt, ...)
{
	va_list ap;
	printf("case=%s error=", g_case);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(1);
}

static inline void on_watchdog(int sig)
{
	(void)sig;
	static const char msg[] = " error=watchdog\n";
	/* async-signal-safe output only */
	if (write(1, "case=", 5) < 0 || write(1, g_case, strlen(g_case)) < 0 ||
	    write(1, msg, sizeof(msg) - 1) < 0) {
		_exit(3);
	}
	_exit(3);
}

/* Deterministic generator: every program, and every run, sees the same
 * timer pattern. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static inline uint64_t rng_next(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

struct bench_case {
	const char *name;
	void (*fn)(void);
	const char *what;
};

/*
 * Parses "[--case NAME]... [--scale F] [--list]" into g_scale and
 * only[0..*nonly) (room for ncases names).  Returns -1 when the cases
 * should run, otherwise the exit status (0 after --list, 2 on bad use).
 */
static inline int bench_parse_args(int argc, char **argv, const char *prog,
				   const struct bench_case *cases,
				   size_t ncases, const char **only,
				   size_t *nonly)
{
	*nonly = 0;
	for (int i = 1; i < argc; i++) {
		const char *value = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(argv[i], "--list") == 0) {
			for (size_t c = 0; c < ncases; c++) {
				printf("%-12s %s\n", cases[c].name, cases[c].what);
			}
			return 0;
		}
		if (strcmp(argv[i], "--case") == 0 && value != NULL &&
		    *nonly < ncases) {
			only[(*nonly)++] = value;
		} else if (strcmp(argv[i], "--scale") == 0 && value != NULL &&
			   (g_scale = atof(value)) > 0) {
			/* accepted; NaN and values <= 0 are not */
		} else {
			fprintf(stderr, "usage: %s [--case NAME]... [--scale F] "
				"[--list]\n", prog);
			return 2;
		}
		i++;	/* the value */
	}
	for (size_t k = 0; k < *nonly; k++) {
		bool known = false;
		for (size_t c = 0; c < ncases; c++) {
			known |= strcmp(only[k], cases[c].name) == 0;
		}
		if (!known) {
			fprintf(stderr, "%s: unknown case %s\n", prog, only[k]);
			return 2;
		}
	}
	return -1;
}

/*
 * The whole main() of a bench program: parses the command line, calls
 * announce() (which prints the "library=" line and does any other set-up
 * the program needs) and runs the selected cases (all when none was
 * named) in table order, each under the watchdog.  Returns the exit status.
 */
static inline int bench_main(int argc, char **argv, const char *prog,
			     const struct bench_case *cases, size_t ncases,
			     void (*announce)(void))
{
	const char *only[ncases];
	size_t nonly;
	int rc = bench_parse_args(argc, argv, prog, cases, ncases, only,
				  &nonly);
	if (rc >= 0) {
		return rc;
	}
	announce();
	fflush(stdout);

	signal(SIGALRM, on_watchdog);
	for (size_t c = 0; c < ncases; c++) {
		bool run = nonly == 0;
		for (size_t k = 0; k < nonly; k++) {
			run |= strcmp(only[k], cases[c].name) == 0;
		}
		if (!run) {
			continue;
		}
		g_case = cases[c].name;
		alarm(BENCH_WATCHDOG_SECONDS);
		cases[c].fn();
		alarm(0);
	}
	return 0;
}

#endif /* BENCH_UTIL_H */

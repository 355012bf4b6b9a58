/*
 * harness.h - the graders' small test runner.
 *
 * Every check of a grader runs in a child process of its own (and its own
 * process group), under a time limit, so that a student's program that
 * crashes, hangs or spins fails that check and nothing else.  A check
 * passes by returning and fails by calling hw_fail with the reason; the
 * parent prints one line per check and a summary, and the grader's exit
 * status says whether every check passed.
 *
 * Checks start helper processes (a receiver, a sender) with hw_spawn and
 * talk to them over pipes, one line per report.  The CPU time a helper used
 * comes from wait4 when it is reaped, so "does not spin" is measured, not
 * guessed from wall-clock sleeps.
 */
#ifndef HW_HARNESS_H
#define HW_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ------------------------------------------------------------------------ */
/* Running checks                                                            */
/* ------------------------------------------------------------------------ */

/* Prints the grader's title line. */
void hw_begin(const char *title);

/* Runs fn in a child process (its own process group) for at most limit_s
 * seconds, then kills whatever is left of the group.  Prints
 * "  PASS  name" or "  FAIL  name: reason".  Returns 1 on pass, 0 on fail. */
int hw_check(const char *name, int limit_s, void (*fn)(void));

/* Inside a check: fails it with a printf-style reason (one line). */
void hw_fail(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));

/* Inside a check: adds a remark to the PASS line (the figures measured). */
void hw_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "TITLE: P of N checks passed" and returns the exit status: 0 when
 * all passed, 1 otherwise. */
int hw_end(void);

/* ------------------------------------------------------------------------ */
/* Helper processes                                                          */
/* ------------------------------------------------------------------------ */

/* A helper process and the pipes to it.  The same structure serves both
 * ends: in the check, rd reads the helper's reports and wr sends it
 * commands; in the helper, rd reads the commands and wr sends reports. */
struct hw_proc {
    pid_t pid;
    int rd, wr;
    char buf[4096]; /* bytes read but not yet returned as lines */
    size_t have;
};

/* What a helper runs.  When it returns, the helper exits with status 0. */
typedef void (*hw_helper)(struct hw_proc *self, void *arg);

/* Forks a helper running fn(self, arg) in the check's process group.
 * Fails the check if fork or pipe fails. */
void hw_spawn(struct hw_proc *p, hw_helper fn, void *arg);

/* Writes one line (a newline is added) to the other end. */
void hw_say(struct hw_proc *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reads the next line from the other end (without its newline) into line,
 * waiting at most timeout_ms (negative: forever).  Returns its length (0
 * for an empty line), HW_TIMEOUT, or HW_EOF when the other side is gone. */
#define HW_TIMEOUT (-1)
#define HW_EOF     (-2)
int hw_line(struct hw_proc *p, char *line, size_t cap, int timeout_ms);

/* Waits at most timeout_ms for the helper to exit (negative: forever); with
 * timeout_ms == 0 it is killed first.  Stores its CPU time in seconds (user
 * plus system, all its threads) in *cpu_s and its wait status in *status
 * when those are not NULL.  Returns 0 once reaped, -1 if it is still
 * running after timeout_ms. */
int hw_reap(struct hw_proc *p, int timeout_ms, double *cpu_s, int *status);

/* Reads the helper's next report like hw_line, but fails the check when
 * none comes within timeout_ms ("`what` had not finished after N s"), when
 * the helper exits without one, or when the report is "error REASON"
 * (what hw_fail in a helper sends). */
void hw_report(struct hw_proc *p, char *line, size_t cap, int timeout_ms,
               const char *what);

/* Runs the program argv[0] as a helper, its stdout and stderr going to the
 * check (read them with hw_line). */
void hw_run_program(struct hw_proc *p, char *const argv[]);

/* Reads the program's lines until one says "listening on port N" and
 * returns N; fails the check, naming the program `who`, if it exits first
 * or says nothing of the kind within 3 s. */
int hw_wait_port(struct hw_proc *p, const char *who);

/* Reads the program's output until it exits (failing the check if that
 * takes more than limit_ms) and checks that the lines `want` appear among
 * it in that order (other lines may come between) and that it exited with
 * status 0. */
void hw_expect_output(struct hw_proc *p, const char *who, const char **want,
                      int nwant, int limit_ms);

/* ------------------------------------------------------------------------ */
/* Time, CPU and test data                                                   */
/* ------------------------------------------------------------------------ */

/* Seconds on the monotonic clock. */
double hw_now(void);

/* CPU seconds (user plus system) this process has used so far. */
double hw_cpu(void);

/* CPU seconds (user plus system, all threads) process pid has used so
 * far, from /proc (10 ms steps), or -1 where that cannot be read. */
double hw_proc_cpu(pid_t pid);

/* Sleeps ms milliseconds. */
void hw_sleep_ms(int ms);

/* Fills buf with len bytes that depend on (seed, index): every message of
 * a test has contents of its own, so a duplicate or a swap shows. */
void hw_fill(void *buf, size_t len, uint32_t seed, uint32_t index);

/* Returns len if buf holds what hw_fill(seed, index) wrote, or the offset
 * of the first byte that differs. */
size_t hw_differs(const void *buf, size_t len, uint32_t seed, uint32_t index);

/* A reproducible pseudo-random number in [0, n) from (seed, index). */
uint32_t hw_rand(uint32_t seed, uint32_t index, uint32_t n);

/* Stores a string that expands C escapes into out, for printing received
 * text safely ("a\nb" shows as a\nb); at most cap bytes, NUL-terminated. */
void hw_printable(char *out, size_t cap, const void *in, size_t len);

#endif /* HW_HARNESS_H */

/*
 * harness.c - the graders' test runner: checks in child processes, helper
 * processes with line pipes, CPU accounting, reproducible test data.
 *
 * A check's child puts itself in a process group of its own; when the check
 * ends (or overruns its limit) the parent kills the whole group, so helper
 * processes a check started never outlive it.  The limit is enforced by the
 * parent, not with alarm(), because a student's library may well use
 * SIGALRM for its own timers.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* wait4 */

#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *title = "grader";
static int checks_run, checks_passed;

/* In a check's child: where the verdict goes.  In a helper: the helper
 * itself, so that hw_fail there becomes an "error" report. */
static int verdict_fd = -1;
static struct hw_proc *helper_self;
static char details[512];

/* ------------------------------------------------------------------------ */
/* Time and CPU                                                              */
/* ------------------------------------------------------------------------ */

double hw_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

double hw_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
}

double hw_proc_cpu(pid_t pid)
{
    char path[64], text[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    /* Fields after the command name, which may hold spaces and ')':
     * state is field 3, utime 14, stime 15. */
    char *p = strrchr(text, ')');
    unsigned long long ut, st;
    if (p == NULL ||
        sscanf(p + 1, " %*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu",
               &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

void hw_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ------------------------------------------------------------------------ */
/* Running checks                                                            */
/* ------------------------------------------------------------------------ */

void hw_begin(const char *t)
{
    title = t;
    printf("%s\n", t);
    fflush(stdout);
}

/* Writes all of len bytes, or gives up quietly (the reader is gone). */
static void write_all(int fd, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, s, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        s += w;
        len -= (size_t)w;
    }
}

void hw_fail(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (helper_self != NULL) {
        hw_say(helper_self, "error %s", msg);
    } else if (verdict_fd >= 0) {
        write_all(verdict_fd, msg, strlen(msg));
    } else {
        fprintf(stderr, "%s\n", msg);
    }
    _exit(1);
}

void hw_detail(const char *fmt, ...)
{
    size_t used = strlen(details);
    if (used > 0 && used + 2 < sizeof(details)) {
        strcat(details, "; ");
        used += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(details + used, sizeof(details) - used, fmt, ap);
    va_end(ap);
}

/* Reads what the check's child wrote until it exits or overruns.  Returns
 * its wait status, or -1 when it had to be killed for time. */
static int watch_check(pid_t pid, int fd, double limit_s, char *msg, size_t cap)
{
    size_t have = 0;
    double end = hw_now() + limit_s;
    int status = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
        if (poll(&p, 1, 20) > 0) {
            char tmp[256];
            ssize_t r = read(fd, tmp, sizeof(tmp));
            if (r > 0 && have + (size_t)r < cap) {
                memcpy(msg + have, tmp, (size_t)r);
                have += (size_t)r;
            }
        }
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        if (hw_now() > end) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            status = -1;
            break;
        }
    }
    ssize_t r;
    char tmp[256];
    while (status != -1 && have + sizeof(tmp) < cap &&
           (r = read(fd, tmp, sizeof(tmp))) > 0) {
        memcpy(msg + have, tmp, (size_t)r);
        have += (size_t)r;
    }
    msg[have] = '\0';
    kill(-pid, SIGKILL); /* helpers the check left behind */
    return status;
}

int hw_check(const char *name, int limit_s, void (*fn)(void))
{
    int fds[2];
    fflush(stdout);
    fflush(stderr);
    if (pipe(fds) < 0) {
        perror("grader: pipe");
        exit(2);
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("grader: fork");
        exit(2);
    }
    if (pid == 0) {
        setpgid(0, 0);
        signal(SIGPIPE, SIG_IGN);
        close(fds[0]);
        verdict_fd = fds[1];
        details[0] = '\0';
        fn();
        fflush(stdout);
        write_all(verdict_fd, details, strlen(details));
        _exit(0);
    }
    setpgid(pid, pid); /* either side may win the race; both set it */
    close(fds[1]);
    /* The pipe is non-blocking for the final drain: a helper that still
     * holds its end must not make us wait. */
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    char msg[1024];
    int status = watch_check(pid, fds[0], limit_s, msg, sizeof(msg));
    close(fds[0]);
    checks_run++;
    int ok = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (ok) {
        checks_passed++;
        printf("  PASS  %s%s%s%s\n", name, msg[0] ? " (" : "", msg,
               msg[0] ? ")" : "");
    } else if (status == -1) {
        printf("  FAIL  %s: did not finish within %d s%s%s\n", name, limit_s,
               msg[0] ? ": " : "", msg);
    } else if (WIFSIGNALED(status)) {
        printf("  FAIL  %s: crashed with signal %d (%s)\n", name,
               WTERMSIG(status), strsignal(WTERMSIG(status)));
    } else {
        printf("  FAIL  %s: %s\n", name, msg[0] ? msg : "failed");
    }
    fflush(stdout);
    return ok;
}

int hw_end(void)
{
    int ok = checks_run > 0 && checks_passed == checks_run;
    printf("%s: %d of %d checks passed%s\n", title, checks_passed, checks_run,
           ok ? "" : ": FAIL");
    return ok ? 0 : 1;
}

/* ------------------------------------------------------------------------ */
/* Helper processes                                                          */
/* ------------------------------------------------------------------------ */

void hw_spawn(struct hw_proc *p, hw_helper fn, void *arg)
{
    int up[2], down[2];
    fflush(stdout);
    fflush(stderr);
    if (pipe(up) < 0 || pipe(down) < 0)
        hw_fail("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        hw_fail("fork: %s", strerror(errno));
    memset(p, 0, sizeof(*p));
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        if (verdict_fd >= 0)
            close(verdict_fd);
        verdict_fd = -1;
        p->pid = getpid();
        p->rd = down[0];
        p->wr = up[1];
        helper_self = p;
        fn(p, arg);
        fflush(stdout);
        _exit(0);
    }
    close(up[1]);
    close(down[0]);
    p->pid = pid;
    p->rd = up[0];
    p->wr = down[1];
}

void hw_say(struct hw_proc *p, const char *fmt, ...)
{
    char line[1100];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    write_all(p->wr, line, (size_t)n);
}

/* Takes one line out of p's buffer if a whole one is there. */
static int take_line(struct hw_proc *p, char *line, size_t cap, int at_eof)
{
    char *nl = memchr(p->buf, '\n', p->have);
    if (nl == NULL && !(at_eof && p->have > 0))
        return -1;
    size_t len = nl != NULL ? (size_t)(nl - p->buf) : p->have;
    size_t used = nl != NULL ? len + 1 : len;
    size_t copy = len < cap - 1 ? len : cap - 1;
    memcpy(line, p->buf, copy);
    line[copy] = '\0';
    memmove(p->buf, p->buf + used, p->have - used);
    p->have -= used;
    return (int)copy;
}

int hw_line(struct hw_proc *p, char *line, size_t cap, int timeout_ms)
{
    double end = hw_now() + timeout_ms / 1000.0;
    for (int last = 0;;) {
        int r = take_line(p, line, cap, 0);
        if (r >= 0)
            return r;
        if (p->have == sizeof(p->buf)) /* an overlong line: cut it */
            return take_line(p, line, cap, 1);
        if (last)
            return HW_TIMEOUT;
        int wait = -1;
        if (timeout_ms >= 0) {
            double left = end - hw_now();
            wait = left > 0 ? (int)(left * 1000) + 1 : 0;
        }
        struct pollfd pf = {.fd = p->rd, .events = POLLIN, .revents = 0};
        int pr = poll(&pf, 1, wait);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0) {
            last = timeout_ms >= 0 && hw_now() >= end;
            continue;
        }
        ssize_t got = read(p->rd, p->buf + p->have, sizeof(p->buf) - p->have);
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got <= 0) {
            r = take_line(p, line, cap, 1);
            return r >= 0 ? r : HW_EOF;
        }
        p->have += (size_t)got;
    }
}

int hw_reap(struct hw_proc *p, int timeout_ms, double *cpu_s, int *status)
{
    struct rusage ru;
    int st = 0;
    pid_t r;
    if (timeout_ms == 0)
        kill(p->pid, SIGKILL);
    if (timeout_ms <= 0) {
        while ((r = wait4(p->pid, &st, 0, &ru)) < 0 && errno == EINTR)
            ;
    } else {
        double end = hw_now() + timeout_ms / 1000.0;
        while ((r = wait4(p->pid, &st, WNOHANG, &ru)) == 0) {
            if (hw_now() > end)
                return -1;
            hw_sleep_ms(5);
        }
    }
    if (r != p->pid)
        memset(&ru, 0, sizeof(ru));
    if (cpu_s != NULL)
        *cpu_s = tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
    if (status != NULL)
        *status = st;
    close(p->rd);
    close(p->wr);
    p->rd = p->wr = -1;
    return 0;
}

void hw_report(struct hw_proc *p, char *line, size_t cap, int timeout_ms,
               const char *what)
{
    int n = hw_line(p, line, cap, timeout_ms);
    if (n == HW_TIMEOUT)
        hw_fail("%s had not finished after %.1f s", what, timeout_ms / 1e3);
    if (n == HW_EOF) {
        int status = 0;
        hw_reap(p, 1000, NULL, &status);
        if (WIFSIGNALED(status))
            hw_fail("%s: the process crashed with signal %d (%s)", what,
                    WTERMSIG(status), strsignal(WTERMSIG(status)));
        hw_fail("%s: the process exited without a word", what);
    }
    if (strncmp(line, "error ", 6) == 0)
        hw_fail("%s", line + 6);
}

/* The helper that becomes the student's program. */
static void exec_helper(struct hw_proc *self, void *arg)
{
    char *const *argv = arg;
    dup2(self->wr, STDOUT_FILENO);
    dup2(self->wr, STDERR_FILENO);
    execv(argv[0], argv);
    printf("cannot run %s: %s\n", argv[0], strerror(errno));
}

void hw_run_program(struct hw_proc *p, char *const argv[])
{
    hw_spawn(p, exec_helper, (void *)argv);
}

int hw_wait_port(struct hw_proc *p, const char *who)
{
    char line[256];
    for (;;) {
        int n = hw_line(p, line, sizeof(line), 3000);
        if (n == HW_TIMEOUT)
            hw_fail("the %s did not print \"listening on port N\" within "
                    "3 s (did it fflush(stdout)?)",
                    who);
        if (n == HW_EOF)
            hw_fail("the %s exited before printing \"listening on port N\"",
                    who);
        int port;
        if (sscanf(line, "listening on port %d", &port) == 1 && port > 0)
            return port;
    }
}

void hw_expect_output(struct hw_proc *p, const char *who, const char **want,
                      int nwant, int limit_ms)
{
    char line[1200], shown[400];
    int next = 0;
    double end = hw_now() + limit_ms / 1000.0;
    for (;;) {
        int left = (int)((end - hw_now()) * 1000);
        int n = hw_line(p, line, sizeof(line), left > 0 ? left : 0);
        if (n == HW_TIMEOUT)
            hw_fail("the %s was still running after %d ms, having printed "
                    "%d of the %d lines expected",
                    who, limit_ms, next, nwant);
        if (n == HW_EOF)
            break;
        if (next < nwant && strcmp(line, want[next]) == 0)
            next++;
    }
    int status;
    hw_reap(p, 2000, NULL, &status);
    if (next < nwant) {
        hw_printable(shown, sizeof(shown), want[next], strlen(want[next]));
        hw_fail("the %s never printed the line \"%s\" (in its turn)", who,
                shown);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        hw_fail("the %s exited with status %d, not 0", who,
                WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* ------------------------------------------------------------------------ */
/* Test data                                                                 */
/* ------------------------------------------------------------------------ */

/* A 32-bit mixing function (the finaliser of MurmurHash3's successors):
 * every input bit affects every output bit. */
static uint32_t mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

uint32_t hw_rand(uint32_t seed, uint32_t index, uint32_t n)
{
    uint32_t x = mix32(mix32(seed ^ 0x9e3779b9U) + index);
    return n == 0 ? x : x % n;
}

/* Byte i of message (seed, index): a counter run through the mixer, so no
 * two positions or messages look alike. */
static uint8_t byte_at(uint32_t key, size_t i)
{
    return (uint8_t)(mix32(key + (uint32_t)(i / 4)) >> (8 * (i % 4)));
}

void hw_fill(void *buf, size_t len, uint32_t seed, uint32_t index)
{
    uint8_t *b = buf;
    uint32_t key = mix32(seed * 0x85ebca6bU + index);
    for (size_t i = 0; i < len; i++)
        b[i] = byte_at(key, i);
}

size_t hw_differs(const void *buf, size_t len, uint32_t seed, uint32_t index)
{
    const uint8_t *b = buf;
    uint32_t key = mix32(seed * 0x85ebca6bU + index);
    for (size_t i = 0; i < len; i++)
        if (b[i] != byte_at(key, i))
            return i;
    return len;
}

void hw_printable(char *out, size_t cap, const void *in, size_t len)
{
    const unsigned char *s = in;
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < cap; i++) {
        unsigned char ch = s[i];
        if (ch == '\\' || ch < 32 || ch > 126)
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
        else
            out[o++] = (char)ch;
    }
    out[o] = '\0';
}

/*
 * net.c - what both ends of rperf share about the network: TCP helpers
 * with deadlines (nothing may hang), the line-based control channel and
 * its key=value fields, and the rmsg settings and timeouts a test uses.
 */
#define _GNU_SOURCE /* getaddrinfo and friends with -std=c11 */
#include "rperf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Sockets: TCP helpers and the control channel                              */
/* ------------------------------------------------------------------------ */

int set_blocking(int fd, int blocking)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    fl = blocking ? fl & ~O_NONBLOCK : fl | O_NONBLOCK;
    return fcntl(fd, F_SETFL, fl);
}

/* Bounds every blocking read (and write) on fd, so that nothing hangs. */
void set_timeouts(int fd, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int write_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                errno = ETIMEDOUT;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Reads exactly n bytes.  Returns 1, 0 at end of stream before the first
 * byte, or -1 with errno (EPROTO: the stream ended inside; ETIMEDOUT). */
int read_all(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                errno = ETIMEDOUT;
            return -1;
        }
        if (r == 0) {
            errno = EPROTO;
            return got == 0 ? 0 : -1;
        }
        got += (size_t)r;
    }
    return 1;
}

/* Connects to one address before the deadline.  Returns a blocking socket,
 * or -1 with errno (ETIMEDOUT, or the connect error). */
int tcp_connect_addr(const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
    int fd = socket(sa->sa_family, SOCK_STREAM, 0), e;
    if (fd < 0)
        return -1;
    if (set_blocking(fd, 0) < 0)
        goto err;
    if (connect(fd, sa, len) < 0) {
        if (errno != EINPROGRESS)
            goto err;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int r;
        while ((r = poll(&p, 1, ms_left(deadline))) < 0 && errno == EINTR)
            ;
        if (r == 0)
            errno = ETIMEDOUT;
        if (r <= 0)
            goto err;
        socklen_t el = sizeof(e);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
            goto err;
        if (e != 0) {
            errno = e;
            goto err;
        }
    }
    if (set_blocking(fd, 1) < 0)
        goto err;
    return fd;
err:
    e = errno;
    close(fd);
    errno = e;
    return -1;
}

/* Connects to host:port, trying every address the name has, all within
 * timeout_ms.  Returns the socket, or -1 with a reason in err. */
int tcp_connect(const char *host, int port, int timeout_ms, char *err,
                size_t cap)
{
    char service[8];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        snprintf(err, cap, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
    int fd = -1, e = ETIMEDOUT;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        fd = tcp_connect_addr(ai->ai_addr, ai->ai_addrlen, deadline);
        if (fd < 0)
            e = errno;
        if (fd < 0 && now_ns() >= deadline)
            break;
    }
    freeaddrinfo(res);
    if (fd < 0 && e == ETIMEDOUT)
        snprintf(err, cap, "cannot connect to %s port %d: %s (no answer in %d s)",
                 host, port, strerror(e), (timeout_ms + 999) / 1000);
    else if (fd < 0)
        snprintf(err, cap, "cannot connect to %s port %d: %s", host, port,
                 strerror(e));
    return fd;
}

int ctl_send(struct ctl *c, const char *fmt, ...)
{
    char line[LINE_BYTES];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    return write_all(c->fd, line, (size_t)n);
}

/* Moves the first complete line out of the buffer.  Returns 1, or 0 when
 * no line is complete yet. */
static int ctl_take(struct ctl *c, char *line, size_t cap)
{
    char *nl = memchr(c->buf, '\n', c->len);
    if (nl == NULL)
        return 0;
    size_t n = (size_t)(nl - c->buf), k = n < cap - 1 ? n : cap - 1;
    memcpy(line, c->buf, k);
    line[k] = '\0';
    if (k > 0 && line[k - 1] == '\r')
        line[k - 1] = '\0';
    memmove(c->buf, nl + 1, c->len - n - 1);
    c->len -= n + 1;
    return 1;
}

/* Waits up to timeout_ms (0: not at all) for the next line.  Returns 1
 * with the line, 0 at the end of the stream, or -1 with errno (ETIMEDOUT,
 * EPROTO for a line too long, or the read error). */
int ctl_read(struct ctl *c, char *line, size_t cap, int timeout_ms)
{
    int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        if (ctl_take(c, line, cap))
            return 1;
        if (c->len == sizeof(c->buf)) {
            errno = EPROTO;
            return -1;
        }
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int r = poll(&p, 1, ms_left(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            errno = ETIMEDOUT;
        if (r <= 0)
            return -1;
        ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
        if (n == 0)
            return 0;
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return -1;
        c->len += (size_t)n;
    }
}

/* Finds the field "key=value" of a control line and copies the value into
 * out.  "why=" is always last and runs to the end of the line.  Returns 0,
 * or -1 when the field is absent or too long. */
int kv_get(const char *line, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    const char *p = line;
    while (*p) {
        while (*p == ' ')
            p++;
        int why = strncmp(p, "why=", 4) == 0;
        const char *end = why ? p + strlen(p) : strchr(p, ' ');
        if (end == NULL)
            end = p + strlen(p);
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t n = (size_t)(end - p) - kl - 1;
            if (n >= cap)
                return -1;
            memcpy(out, p + kl + 1, n);
            out[n] = '\0';
            return 0;
        }
        p = end;
    }
    return -1;
}

int kv_u64(const char *line, const char *key, uint64_t *out)
{
    char v[32], *end;
    if (kv_get(line, key, v, sizeof(v)) != 0 || v[0] < '0' || v[0] > '9')
        return -1;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = x;
    return 0;
}

/* Fills a udp_addr from a socket address and a port. */
void udp_addr_of(struct udp_addr *out, const struct sockaddr_storage *ss,
                 socklen_t len, int port)
{
    memset(out, 0, sizeof(*out));
    memcpy(&out->ss, ss, len);
    out->len = len;
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)&out->ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&out->ss)->sin6_port = htons((uint16_t)port);
}

/* An rmsg configuration for messages of size bytes in datagrams of dgram:
 * room to reassemble one message while the previous one waits unread. */
void rmsg_cfg_for(struct rmsg_config *cfg, uint64_t size, uint32_t dgram)
{
    rmsg_config_default(cfg);
    cfg->datagram_max = dgram;
    if (size > cfg->msg_max)
        cfg->msg_max = (uint32_t)size;
    size_t need = 2 * (size_t)size + cfg->recv_buffer;
    if (need > cfg->recv_total)
        cfg->recv_total = need;
}

/* How long one message may take to be acknowledged: 5 s, plus 10 MB/s. */
int msg_timeout_ms(uint64_t size)
{
    return 5000 + (int)(size / 10000);
}

/* Says what is wrong with message i of len bytes where want bytes were
 * expected: its length, another message in its place, or corrupt bytes.
 * Returns 0 when nothing is, else -1 with the first problem in why. */
int check_message(const struct pattern *p, const uint8_t *m, size_t len,
                  size_t want, uint64_t i, const char *what, char *why,
                  size_t cap)
{
    if (len != want) {
        set_why(why, cap, "%s %" PRIu64 ": %zu bytes, expected %zu", what, i,
                len, want);
        return -1;
    }
    size_t off = pattern_check(p, m, len, i);
    if (off == len)
        return 0;
    int64_t other = len >= 8 && off < 8 ? message_index(p, m) : -1;
    if (other >= 0)
        set_why(why, cap,
                "%s %" PRIu64 ": got %s %" PRId64 " in its place "
                "(missing, duplicated or out of order)",
                what, i, what, other);
    else
        set_why(why, cap,
                "%s %" PRIu64 ": wrong content from byte %zu "
                "(corrupt, or another message)",
                what, i, off);
    return -1;
}

#define _GNU_SOURCE /* sendmmsg, recvmmsg, in6addr_any, SO_RCVBUFFORCE */
/*
 * udp.c - the OSTEP textbook's UDP calls, done right, and what the layers
 * above need: timeouts, dual stack, batches and seeded fault injection.
 *
 * The textbook calls are thin wrappers over socket, bind, sendto and
 * recvfrom.  Waiting with a timeout is a poll followed by a non-blocking
 * recvfrom, so no call ever spins.
 *
 * Fault injection sits between the caller and sendto.  Each faulty socket
 * has a seeded generator (splitmix64) that decides, datagram by datagram,
 * whether to drop, corrupt, duplicate or hold it back; held datagrams wait in
 * a queue ordered by release time.  Nothing runs in the background: a held
 * datagram is sent by the next call on its socket made once it is due, and
 * the waits in the read calls wake up in time for it (their poll timeout is
 * the earlier of the caller's deadline and the next release; while a socket
 * has faults, also at most FAULT_SLICE_MS, for what another thread holds
 * back meanwhile).  UDP_Close sends whatever is still held.
 * The per-socket state lives in a table indexed by descriptor (the textbook
 * API passes only an int); when no socket has faults, one relaxed atomic
 * load is the whole cost, so the fast path is the bare system call.
 */
#include "udp.h"
#include "udp_faults.h"

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>

#ifdef SOCK_CLOEXEC
#define UDP_SOCK_FLAGS SOCK_CLOEXEC
#else
#define UDP_SOCK_FLAGS 0
#endif

/* Largest payloads: 65535 minus the IP and UDP headers (IPv6's header does
 * not count against its payload length). */
#define UDP_MAX_PAYLOAD_V4 65507
#define UDP_MAX_PAYLOAD_V6 65527

/* Datagrams per sendmmsg/recvmmsg call; larger batches take several. */
#define UDP_BATCH 64
#define RECV_FIRST 8 /* slots in the first recvmmsg of a batch */

/* A time that never comes, in microseconds. */
#define UDP_NEVER UINT64_MAX

/* Used by the public calls, defined in the fault injection section. */
static int send_one(int fd, const void *buf, size_t n,
                    const struct sockaddr *to, socklen_t tolen);
static int faults_tick(int fd);
static int faults_on(int fd);
static int faults_attach_env(int fd);
static void faults_forget(int fd);
static void faults_close(int fd);

/* ======================================================================== */
/* Time, addresses and waiting                                              */
/* ======================================================================== */

/* Microseconds on the monotonic clock (immune to changes of the wall clock). */
static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The absolute deadline for a timeout in milliseconds (negative: never). */
static uint64_t deadline_after(int timeout_ms)
{
    if (timeout_ms < 0)
        return UDP_NEVER;
    return now_us() + (uint64_t)timeout_ms * 1000u;
}

/* Milliseconds from now until t, rounded up so that a poll never wakes
 * before t; -1 (poll's "forever") when t is UDP_NEVER. */
static int ms_until(uint64_t now, uint64_t t)
{
    if (t == UDP_NEVER)
        return -1;
    if (t <= now)
        return 0;
    uint64_t ms = (t - now + 999) / 1000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* The family of each socket this library opened, by descriptor, so that a
 * send can tell whether to map an IPv4 destination without asking the kernel
 * each time.  0 means unknown (then getsockname answers).  This is a cache
 * written at open and close: a descriptor closed with close() keeps its
 * entry, and a send that fails because another socket now has the number
 * corrects it and tries again (family_stale). */
#define UDP_FAMILY_CACHE 4096
static _Atomic unsigned char fd_family[UDP_FAMILY_CACHE];

/* Records (or, with 0, forgets) the family of a socket we opened. */
static void remember_family(int fd, int family)
{
    if (fd >= 0 && fd < UDP_FAMILY_CACHE)
        atomic_store_explicit(&fd_family[fd], (unsigned char)family,
                              memory_order_relaxed);
}

/* The socket's address family, or -1 with errno (EBADF, ENOTSOCK). */
static int socket_family(int fd)
{
    if (fd >= 0 && fd < UDP_FAMILY_CACHE) {
        int f = atomic_load_explicit(&fd_family[fd], memory_order_relaxed);
        if (f != 0)
            return f;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    return ss.ss_family;
}

/* After a send on fd failed: true when the family cached for fd was not
 * the socket's, as when a descriptor closed with close() instead of
 * UDP_Close was reused by another socket.  The entry is then corrected and
 * the send is worth one more try; errno is kept either way. */
static int family_stale(int fd)
{
    int e = errno;
    if ((e != EAFNOSUPPORT && e != EINVAL) || fd < 0 ||
        fd >= UDP_FAMILY_CACHE)
        return 0;
    int cached = atomic_load_explicit(&fd_family[fd], memory_order_relaxed);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int stale = cached != 0 &&
                getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
                ss.ss_family != cached;
    if (stale)
        remember_family(fd, ss.ss_family);
    errno = e;
    return stale;
}

/* Writes the IPv4 address `in` as the IPv6 address ::ffff:a.b.c.d. */
static void map_v4(const struct sockaddr_in *in, struct sockaddr_in6 *out)
{
    memset(out, 0, sizeof(*out));
    out->sin6_family = AF_INET6;
    out->sin6_port = in->sin_port;
    out->sin6_addr.s6_addr[10] = 0xff;
    out->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&out->sin6_addr.s6_addr[12], &in->sin_addr, 4);
}

/* Rewrites a v4-mapped IPv6 address in *ss as plain IPv4, so that callers see
 * one form per peer.  Returns the (possibly new) length. */
static socklen_t unmap_v4(struct sockaddr_storage *ss, socklen_t len)
{
    struct sockaddr_in6 s6;
    if (ss->ss_family != AF_INET6 || len < sizeof(s6))
        return len;
    memcpy(&s6, ss, sizeof(s6));
    if (!IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr))
        return len;
    struct sockaddr_in in;
    memset(&in, 0, sizeof(in));
    in.sin_family = AF_INET;
    in.sin_port = s6.sin6_port;
    memcpy(&in.sin_addr, &s6.sin6_addr.s6_addr[12], 4);
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, &in, sizeof(in));
    return sizeof(in);
}

/* Chooses the address to hand the kernel for a send on fd: a complete IPv4
 * or IPv6 address, an IPv4 one mapped into *tmp when the socket is IPv6.
 * *family caches the socket's family across calls (0 = not looked up yet).
 * Returns 0, or -1 with errno (EINVAL for a short or foreign address). */
static int dest_for(int fd, int *family, const struct sockaddr *sa,
                    socklen_t len, struct sockaddr_in6 *tmp,
                    const struct sockaddr **to, socklen_t *tolen)
{
    if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        *to = sa;
        *tolen = sizeof(struct sockaddr_in6);
        return 0;
    }
    if (sa->sa_family != AF_INET || len < sizeof(struct sockaddr_in)) {
        errno = EINVAL;
        return -1;
    }
    if (*family == 0 && (*family = socket_family(fd)) < 0)
        return -1;
    *to = sa;
    *tolen = sizeof(struct sockaddr_in);
    if (*family == AF_INET6) {
        struct sockaddr_in in;
        memcpy(&in, sa, sizeof(in));
        map_v4(&in, tmp);
        *to = (const struct sockaddr *)tmp;
        *tolen = sizeof(*tmp);
    }
    return 0;
}

/* Sleeps in poll until fd is readable or the deadline passes, waking early
 * whenever fault injection has a held datagram to release.  Returns 0 when
 * readable, or -1 with errno (ETIMEDOUT, or poll's error).  An interrupted
 * poll simply recomputes the time left. */
static int wait_readable(int fd, uint64_t deadline)
{
    for (;;) {
        int wait = faults_tick(fd);
        int left = ms_until(now_us(), deadline);
        if (wait < 0 || (left >= 0 && left < wait))
            wait = left;
        struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
        int r = poll(&p, 1, wait);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
        if (deadline != UDP_NEVER && now_us() >= deadline) {
            errno = ETIMEDOUT;
            return -1;
        }
    }
}

/* Receives one datagram before the deadline.  The recvfrom after the poll
 * does not block, so another thread taking the datagram first only sends
 * us back to waiting.  Returns its length, or -1 with errno. */
static int recv_until(int fd, void *buf, size_t cap,
                      struct sockaddr_storage *ss, socklen_t *len,
                      uint64_t deadline)
{
    for (;;) {
        if (wait_readable(fd, deadline) < 0)
            return -1;
        *len = sizeof(*ss);
        ssize_t r =
            recvfrom(fd, buf, cap, MSG_DONTWAIT, (struct sockaddr *)ss, len);
        if (r >= 0)
            return (int)r;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
    }
}

/* Blocks in recvfrom for one datagram: one system call, as the textbook's
 * UDP_Read does.  The socket's blocking timeout (UDP_SetBlockingTimeout)
 * ends the wait with ETIMEDOUT.  Returns its length, or -1 with errno. */
static int recv_blocking(int fd, void *buf, size_t cap,
                         struct sockaddr_storage *ss, socklen_t *len)
{
    *len = sizeof(*ss);
    ssize_t r = recvfrom(fd, buf, cap, 0, (struct sockaddr *)ss, len);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        errno = ETIMEDOUT;
    return (int)r;
}

/* When a blocking read that starts now must give up: the socket's
 * blocking timeout from now, or UDP_NEVER.  For the paths that wait in
 * poll rather than in the kernel's receive. */
static uint64_t blocking_deadline(int fd)
{
    struct timeval tv;
    socklen_t len = sizeof(tv);
    if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) != 0 ||
        (tv.tv_sec == 0 && tv.tv_usec == 0))
        return UDP_NEVER;
    return now_us() + (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

/* Stores a received sender as the textbook's IPv4 address.  A true IPv6
 * sender does not fit: *addr is then zeroed with family AF_UNSPEC. */
static void store_in(struct sockaddr_in *addr, struct sockaddr_storage *ss,
                     socklen_t len)
{
    if (addr == NULL)
        return;
    len = unmap_v4(ss, len);
    memset(addr, 0, sizeof(*addr));
    if (ss->ss_family == AF_INET && len >= sizeof(*addr))
        memcpy(addr, ss, sizeof(*addr));
    else
        addr->sin_family = AF_UNSPEC;
}

/* Creates a socket of the family (AF_INET6: dual stack), binds it to port on
 * every local address and applies UDP_FAULTS.  Returns it or -1 with errno. */
static int open_bound(int family, int port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int e;
    memset(&ss, 0, sizeof(ss));
    int fd = socket(family, SOCK_DGRAM | UDP_SOCK_FLAGS, 0);
    if (fd < 0)
        return -1;
    if (family == AF_INET6) {
        int off = 0;
        struct sockaddr_in6 a;
        memset(&a, 0, sizeof(a));
        a.sin6_family = AF_INET6;
        a.sin6_port = htons((uint16_t)port);
        a.sin6_addr = in6addr_any;
        memcpy(&ss, &a, sizeof(a));
        len = sizeof(a);
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) < 0)
            goto err;
    } else {
        struct sockaddr_in a;
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)port);
        a.sin_addr.s_addr = htonl(INADDR_ANY);
        memcpy(&ss, &a, sizeof(a));
        len = sizeof(a);
    }
    /* No SO_REUSEADDR: a second server on a busy port must fail clearly. */
    if (bind(fd, (struct sockaddr *)&ss, len) < 0)
        goto err;
    if (faults_attach_env(fd) < 0)
        goto err;
    remember_family(fd, family);
    return fd;
err:
    e = errno;
    close(fd);
    errno = e;
    return -1;
}

/* ======================================================================== */
/* The textbook's five calls                                                */
/* ======================================================================== */

/* Opens an IPv4 socket bound to port on every local address. */
int UDP_Open(int port)
{
    if (port < 0 || port > 65535) {
        errno = EINVAL;
        return -1;
    }
    return open_bound(AF_INET, port);
}

/* Sends what fault injection still holds, forgets the socket, closes it. */
int UDP_Close(int fd)
{
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    faults_close(fd);
    remember_family(fd, 0);
    return close(fd);
}

/* Blocks for one datagram.  Without faults anywhere in the process this is
 * exactly one recvfrom; otherwise the wait goes through poll so that held
 * datagrams keep flowing while we block. */
int UDP_Read(int fd, struct sockaddr_in *addr, char *buffer, int n)
{
    return UDP_ReadTimeout(fd, addr, buffer, n, -1);
}

/* Sends one datagram to an IPv4 address. */
int UDP_Write(int fd, struct sockaddr_in *addr, char *buffer, int n)
{
    if (addr == NULL || n < 0 || (buffer == NULL && n > 0)) {
        errno = EINVAL;
        return -1;
    }
    /* The parameter's type says IPv4; a caller who zeroed the structure and
     * set only address and port gets what was meant. */
    struct sockaddr_in in = *addr;
    in.sin_family = AF_INET;
    struct sockaddr_in6 tmp;
    const struct sockaddr *to;
    socklen_t tolen;
    for (int tries = 0;; tries++) {
        int family = 0;
        if (dest_for(fd, &family, (const struct sockaddr *)&in, sizeof(in),
                     &tmp, &to, &tolen) < 0)
            return -1;
        int r = send_one(fd, buffer, (size_t)n, to, tolen);
        if (r >= 0 || tries > 0 || !family_stale(fd))
            return r;
    }
}

/* Fills an IPv4 address from a host name (or INADDR_ANY for NULL) and port. */
int UDP_FillSockAddr(struct sockaddr_in *addr, char *hostName, int port)
{
    if (addr == NULL || port < 0 || port > 65535) {
        errno = EINVAL;
        return -1;
    }
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)port);
    if (hostName == NULL) {
        addr->sin_addr.s_addr = htonl(INADDR_ANY);
        return 0;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_DGRAM;
    int rc = getaddrinfo(hostName, NULL, &hints, &res);
    if (rc != 0 || res == NULL) {
        errno = rc == EAI_MEMORY ? ENOMEM : EHOSTUNREACH;
        return -1;
    }
    struct sockaddr_in found;
    memcpy(&found, res->ai_addr, sizeof(found));
    addr->sin_addr = found.sin_addr;
    freeaddrinfo(res);
    return 0;
}

/* ======================================================================== */
/* Extras: ports, timeouts, buffers                                         */
/* ======================================================================== */

/* The local port, in host order. */
int UDP_Port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in in;
        memcpy(&in, &ss, sizeof(in));
        return ntohs(in.sin_port);
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 in6;
        memcpy(&in6, &ss, sizeof(in6));
        return ntohs(in6.sin6_port);
    }
    errno = EAFNOSUPPORT;
    return -1;
}

/* A read that gives up after timeout_ms.  The blocking read without faults
 * is a single recvfrom; every other case waits in poll first. */
int UDP_ReadTimeout(int fd, struct sockaddr_in *addr, char *buffer, int n,
                    int timeout_ms)
{
    if (n < 0 || (buffer == NULL && n > 0)) {
        errno = EINVAL;
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int r;
    if (timeout_ms < 0 && !faults_on(fd))
        r = recv_blocking(fd, buffer, (size_t)n, &ss, &len);
    else
        r = recv_until(fd, buffer, (size_t)n, &ss, &len,
                       timeout_ms < 0 ? blocking_deadline(fd)
                                      : deadline_after(timeout_ms));
    if (r >= 0)
        store_in(addr, &ss, len);
    return r;
}

/* Sets one buffer size.  On Linux a privileged process may go beyond the
 * system maximum (net.core.rmem_max) with the FORCE option; everyone else
 * gets the ordinary option, which the kernel silently caps. */
static int set_buffer(int fd, int opt, int force_opt, int size)
{
#ifdef __linux__
    if (setsockopt(fd, SOL_SOCKET, force_opt, &size, sizeof(size)) == 0)
        return 0;
#else
    (void)force_opt;
#endif
    return setsockopt(fd, SOL_SOCKET, opt, &size, sizeof(size));
}

/* Reads one buffer size back into *out (when out is not NULL). */
static int get_buffer(int fd, int opt, int *out)
{
    if (out == NULL)
        return 0;
    socklen_t len = sizeof(*out);
    return getsockopt(fd, SOL_SOCKET, opt, out, &len);
}

int UDP_ReceiveOffload(int fd, int on)
{
#if defined(__linux__)
#ifndef UDP_GRO
#define UDP_GRO 104 /* Linux 5.0; older headers lack the name */
#endif
    int v = on != 0;
    return setsockopt(fd, IPPROTO_UDP, UDP_GRO, &v, sizeof(v));
#else
    (void)fd, (void)on;
    errno = ENOPROTOOPT;
    return -1;
#endif
}

/* Sets the buffers asked for, then reports what the kernel granted. */
int UDP_SetBuffers(int fd, int rcvbuf, int sndbuf, int *rcv_out, int *snd_out)
{
    if (rcvbuf < 0 || sndbuf < 0) {
        errno = EINVAL;
        return -1;
    }
#ifdef SO_RCVBUFFORCE
    int rforce = SO_RCVBUFFORCE, sforce = SO_SNDBUFFORCE;
#else
    int rforce = SO_RCVBUF, sforce = SO_SNDBUF;
#endif
    if (rcvbuf > 0 && set_buffer(fd, SO_RCVBUF, rforce, rcvbuf) < 0)
        return -1;
    if (sndbuf > 0 && set_buffer(fd, SO_SNDBUF, sforce, sndbuf) < 0)
        return -1;
    if (get_buffer(fd, SO_RCVBUF, rcv_out) < 0 ||
        get_buffer(fd, SO_SNDBUF, snd_out) < 0)
        return -1;
    return 0;
}

/* SO_RCVTIMEO: the kernel's own timer on a blocking receive.  It counts in
 * scheduler ticks, so the wait may end up to a tick late; the callers that
 * need precision (timed reads) wait in poll instead. */
int UDP_SetBlockingTimeout(int fd, int64_t timeout_us)
{
    if (timeout_us < 0) {
        errno = EINVAL;
        return -1;
    }
    struct timeval tv = {.tv_sec = (time_t)(timeout_us / 1000000),
                         .tv_usec = (suseconds_t)(timeout_us % 1000000)};
    return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* The empty datagram goes to the socket's own port on the loopback address
 * of its family (for a dual-stack socket ::1, or 127.0.0.1 mapped where the
 * host has no IPv6 loopback), straight to sendto: fault injection never
 * touches it, and it never blocks.  Only async-signal-safe calls. */
int UDP_Wake(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return sendto(fd, "", 0, MSG_DONTWAIT, (struct sockaddr *)a,
                      sizeof(*a)) == 0 ? 0 : -1;
    }
    if (ss.ss_family != AF_INET6) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_addr = in6addr_loopback;
    if (sendto(fd, "", 0, MSG_DONTWAIT, (struct sockaddr *)a, sizeof(*a)) == 0)
        return 0;
    struct sockaddr_in v4 = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    v4.sin_port = a->sin6_port;
    map_v4(&v4, a);
    return sendto(fd, "", 0, MSG_DONTWAIT, (struct sockaddr *)a,
                  sizeof(*a)) == 0 ? 0 : -1;
}

/* True for an empty datagram that UDP_Wake sent to this socket. */
int UDP_IsWake(int fd, const struct udp_msg *m)
{
    if (m->len != 0)
        return 0;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    const struct sockaddr_storage *from = &m->addr.ss;
    if (from->ss_family == AF_INET) {
        const struct sockaddr_in *f = (const struct sockaddr_in *)from;
        uint16_t port = ss.ss_family == AF_INET
                            ? ((struct sockaddr_in *)&ss)->sin_port
                            : ((struct sockaddr_in6 *)&ss)->sin6_port;
        return f->sin_addr.s_addr == htonl(INADDR_LOOPBACK) &&
               f->sin_port == port;
    }
    if (from->ss_family == AF_INET6 && ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *f = (const struct sockaddr_in6 *)from;
        return IN6_IS_ADDR_LOOPBACK(&f->sin6_addr) &&
               f->sin6_port == ((struct sockaddr_in6 *)&ss)->sin6_port;
    }
    return 0;
}

/* ======================================================================== */
/* Extras: dual stack                                                       */
/* ======================================================================== */

/* Opens a socket of the family; AF_UNSPEC tries IPv6 and falls back to IPv4
 * (the host may lack IPv6 altogether, or only have it disabled). */
int UDP_OpenDual(int port, int family)
{
    if (port < 0 || port > 65535) {
        errno = EINVAL;
        return -1;
    }
    if (family == AF_INET || family == AF_INET6)
        return open_bound(family, port);
    if (family != AF_UNSPEC) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    int fd = open_bound(AF_INET6, port);
    if (fd >= 0 || errno == EINVAL) /* EINVAL: a malformed UDP_FAULTS */
        return fd;
    return open_bound(AF_INET, port);
}

/* Fills *out with the loopback address of the family, and port. */
static void loopback(int family, int port, struct udp_addr *out)
{
    if (family == AF_INET6) {
        struct sockaddr_in6 a;
        memset(&a, 0, sizeof(a));
        a.sin6_family = AF_INET6;
        a.sin6_port = htons((uint16_t)port);
        a.sin6_addr = in6addr_loopback;
        memcpy(&out->ss, &a, sizeof(a));
        out->len = sizeof(a);
    } else {
        struct sockaddr_in a;
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        memcpy(&out->ss, &a, sizeof(a));
        out->len = sizeof(a);
    }
}

int UDP_SameAddr(const struct udp_addr *a, const struct udp_addr *b)
{
    if (a == NULL || b == NULL)
        return 0;
    /* Only an IPv6 address can be a mapped IPv4 one: only those are
     * copied to be unmapped (rpc compares every reply's sender). */
    struct sockaddr_storage x, y;
    socklen_t xl = a->len, yl = b->len;
    if (a->ss.ss_family == AF_INET6) {
        x = a->ss;
        xl = unmap_v4(&x, xl);
    } else {
        memcpy(&x, &a->ss, sizeof(struct sockaddr_in));
    }
    if (b->ss.ss_family == AF_INET6) {
        y = b->ss;
        yl = unmap_v4(&y, yl);
    } else {
        memcpy(&y, &b->ss, sizeof(struct sockaddr_in));
    }
    if (x.ss_family != y.ss_family)
        return 0;
    struct sockaddr_in x4, y4;
    struct sockaddr_in6 x6, y6;
    switch (x.ss_family) {
    case AF_INET:
        if (xl < sizeof(x4) || yl < sizeof(y4))
            return 0;
        memcpy(&x4, &x, sizeof(x4));
        memcpy(&y4, &y, sizeof(y4));
        return x4.sin_port == y4.sin_port &&
               x4.sin_addr.s_addr == y4.sin_addr.s_addr;
    case AF_INET6:
        if (xl < sizeof(x6) || yl < sizeof(y6))
            return 0;
        memcpy(&x6, &x, sizeof(x6));
        memcpy(&y6, &y, sizeof(y6));
        return x6.sin6_port == y6.sin6_port &&
               IN6_ARE_ADDR_EQUAL(&x6.sin6_addr, &y6.sin6_addr);
    default:
        return 0;
    }
}

/* Resolves with getaddrinfo, taking the first answer of the preferred
 * family, or else the first IPv4 or IPv6 answer. */
int UDP_Resolve(const char *host, int port, int family, struct udp_addr *out)
{
    if (out == NULL || port < 0 || port > 65535 ||
        (family != AF_INET && family != AF_INET6 && family != AF_UNSPEC)) {
        errno = EINVAL;
        return -1;
    }
    memset(out, 0, sizeof(*out));
    if (host == NULL) {
        loopback(family, port, out);
        return 0;
    }
    char service[8];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        errno = rc == EAI_MEMORY ? ENOMEM : EHOSTUNREACH;
        return -1;
    }
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int usable = (ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
                     ai->ai_addrlen <= sizeof(out->ss);
        if (usable && (pick == NULL || ai->ai_family == family) &&
            (pick == NULL || pick->ai_family != family))
            pick = ai;
    }
    if (pick != NULL) {
        memcpy(&out->ss, pick->ai_addr, pick->ai_addrlen);
        out->len = pick->ai_addrlen;
    }
    freeaddrinfo(res);
    if (pick == NULL) {
        errno = EHOSTUNREACH;
        return -1;
    }
    return 0;
}

/* "a.b.c.d:port", "[v6]:port", or "?" for anything else. */
char *UDP_AddrString(const struct udp_addr *a, char *buf, size_t cap)
{
    char host[INET6_ADDRSTRLEN];
    if (buf == NULL || cap == 0)
        return buf;
    if (a != NULL && a->ss.ss_family == AF_INET &&
        a->len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in in;
        memcpy(&in, &a->ss, sizeof(in));
        inet_ntop(AF_INET, &in.sin_addr, host, sizeof(host));
        snprintf(buf, cap, "%s:%u", host, (unsigned)ntohs(in.sin_port));
    } else if (a != NULL && a->ss.ss_family == AF_INET6 &&
               a->len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6;
        memcpy(&in6, &a->ss, sizeof(in6));
        inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof(host));
        snprintf(buf, cap, "[%s]:%u", host, (unsigned)ntohs(in6.sin6_port));
    } else {
        snprintf(buf, cap, "?");
    }
    return buf;
}

/* Sends one datagram to an address of either family. */
int UDP_SendTo(int fd, const void *buf, size_t n, const struct udp_addr *to)
{
    if (to == NULL || (buf == NULL && n > 0)) {
        errno = EINVAL;
        return -1;
    }
    if (n > INT_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    struct sockaddr_in6 tmp;
    const struct sockaddr *dest;
    socklen_t destlen;
    for (int tries = 0;; tries++) {
        int family = 0;
        if (dest_for(fd, &family, (const struct sockaddr *)&to->ss, to->len,
                     &tmp, &dest, &destlen) < 0)
            return -1;
        int r = send_one(fd, buf, n, dest, destlen);
        if (r >= 0 || tries > 0 || !family_stale(fd))
            return r;
    }
}

/* Receives one datagram of either family, reporting v4-mapped senders as
 * IPv4. */
int UDP_RecvFrom(int fd, void *buf, size_t cap, struct udp_addr *from,
                 int timeout_ms)
{
    if (buf == NULL && cap > 0) {
        errno = EINVAL;
        return -1;
    }
    if (cap > INT_MAX)
        cap = INT_MAX; /* the length must fit the int we return */
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int r;
    if (timeout_ms < 0 && !faults_on(fd))
        r = recv_blocking(fd, buf, cap, &ss, &len);
    else
        r = recv_until(fd, buf, cap, &ss, &len,
                       timeout_ms < 0 ? blocking_deadline(fd)
                                      : deadline_after(timeout_ms));
    if (r >= 0 && from != NULL) {
        from->len = unmap_v4(&ss, len);
        from->ss = ss;
    }
    return r;
}

/* ======================================================================== */
/* Extras: batches                                                          */
/* ======================================================================== */

/* Sends one datagram from its two pieces with sendmsg (no copy).  A
 * request or reply alone is the usual case in a round trip, and setting
 * up a batch would cost it more than the batch saves.  Returns 1, or -1
 * with errno. */
static int send_parts_one(int fd, const struct udp_parts *d)
{
    struct sockaddr_in6 mapped;
    const struct sockaddr *to;
    socklen_t tolen;
    struct iovec iov[2] = {{(void *)d->head, d->head_len},
                           {(void *)d->body, d->body_len}};
    for (int tries = 0;;) {
        int family = 0;
        if (dest_for(fd, &family, (const struct sockaddr *)&d->to->ss,
                     d->to->len, &mapped, &to, &tolen) < 0)
            return -1;
        struct msghdr h = {.msg_name = (void *)to, .msg_namelen = tolen,
                           .msg_iov = iov,
                           .msg_iovlen = d->body_len > 0 ? 2 : 1};
        if (sendmsg(fd, &h, 0) >= 0)
            return 1;
        if (errno == EINTR)
            continue;
        if (tries++ > 0 || !family_stale(fd))
            return -1;
    }
}

/* Bytes of a datagram to send, head and body. */
static size_t parts_len(const struct udp_parts *d)
{
    return d->head_len + d->body_len;
}

#ifdef __linux__
#include <netinet/udp.h>
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103 /* Linux 4.18; older headers lack the name */
#endif
#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES 65000 /* one UDP "super datagram" */

/* Whether the kernel takes UDP_SEGMENT.  A capability of the running
 * kernel, not state of any socket: learned once, on the first refusal. */
static atomic_int gso_refused;

/* How many of d[i..n) can leave as one segmented send (UDP generic
 * segmentation offload: the kernel cuts one buffer into datagrams of the
 * first one's size): same destination, same size, the last one possibly
 * shorter but not empty.  1 when segmentation does not apply. */
static int gso_run(const struct udp_parts *d, int i, int n)
{
    size_t seg = parts_len(&d[i]), bytes = seg;
    const struct udp_addr *to = d[i].to;
    int k = i + 1;
    if (atomic_load_explicit(&gso_refused, memory_order_relaxed) || seg == 0)
        return 1;
    while (k < n && k - i < GSO_MAX_SEGS && parts_len(&d[k]) <= seg &&
           parts_len(&d[k]) > 0 && /* the kernel cannot cut an empty one */
           bytes + parts_len(&d[k]) <= GSO_MAX_BYTES &&
           d[k].to->len == to->len &&
           memcmp(&d[k].to->ss, &to->ss, to->len) == 0) {
        bytes += parts_len(&d[k]);
        if (parts_len(&d[k++]) < seg)
            break; /* a shorter datagram can only come last */
    }
    return k - i;
}

/* sendmmsg and recvmmsg of one message, as sendmsg and recvmsg: the batch
 * calls cost measurably more for a single datagram (a receive with
 * MSG_WAITFORONE tries for a second one).  Same results as the batch
 * calls: 1 (and msg_len set) or -1 with errno. */
static int mmsg_send_one(int fd, struct mmsghdr *mh)
{
    ssize_t r = sendmsg(fd, &mh->msg_hdr, 0);
    if (r < 0)
        return -1;
    mh->msg_len = (unsigned)r;
    return 1;
}

static int mmsg_recv_one(int fd, struct mmsghdr *mh, int flags)
{
    ssize_t r = recvmsg(fd, &mh->msg_hdr, flags & MSG_DONTWAIT);
    if (r < 0)
        return -1;
    mh->msg_len = (unsigned)r;
    return 1;
}

/* Sends d[0..n) with sendmmsg, UDP_BATCH datagrams at a time, each from
 * its two pieces (no copy); runs of equal datagrams to one destination go
 * as one segmented send, which costs the kernel a fraction of sending them
 * one by one.  Stops at the first datagram that cannot go.  Returns how
 * many went, or -1 if none did. */
static int send_batch(int fd, const struct udp_parts *d, int n)
{
    if (n == 1)
        return send_parts_one(fd, d);
    int total = 0, family = 0, whole = 0, retried = 0;
    while (total < n) {
        struct mmsghdr mh[UDP_BATCH];
        struct iovec iov[2 * UDP_BATCH];
        struct sockaddr_in6 mapped[UDP_BATCH];
        union {
            char buf[CMSG_SPACE(sizeof(uint16_t))];
            struct cmsghdr align;
        } ctl[UDP_BATCH];
        int count[UDP_BATCH]; /* datagrams in each message */
        int k = 0, used = 0, pieces = 0;
        while (k < UDP_BATCH && total + used < n) {
            int first = total + used;
            const struct sockaddr *to;
            socklen_t tolen;
            if (dest_for(fd, &family, (const struct sockaddr *)&d[first].to->ss,
                         d[first].to->len, &mapped[k], &to, &tolen) < 0)
                break;
            int run = whole ? 1
                            : gso_run(d, first,
                                      first + (UDP_BATCH - used) <= n
                                          ? first + (UDP_BATCH - used)
                                          : n);
            memset(&mh[k], 0, sizeof(mh[k]));
            struct msghdr *h = &mh[k].msg_hdr;
            h->msg_name = (void *)to;
            h->msg_namelen = tolen;
            h->msg_iov = &iov[pieces];
            for (int j = 0; j < run; j++) {
                const struct udp_parts *p = &d[first + j];
                iov[pieces++] = (struct iovec){(void *)p->head, p->head_len};
                if (p->body_len > 0)
                    iov[pieces++] = (struct iovec){(void *)p->body, p->body_len};
            }
            h->msg_iovlen = (size_t)(&iov[pieces] - h->msg_iov);
            if (run > 1) {
                memset(&ctl[k], 0, sizeof(ctl[k])); /* padding included */
                h->msg_control = ctl[k].buf;
                h->msg_controllen = sizeof(ctl[k].buf);
                struct cmsghdr *c = CMSG_FIRSTHDR(h);
                c->cmsg_level = SOL_UDP;
                c->cmsg_type = UDP_SEGMENT;
                c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
                uint16_t seg = (uint16_t)parts_len(&d[first]);
                memcpy(CMSG_DATA(c), &seg, sizeof(seg));
            }
            count[k++] = run;
            used += run;
        }
        int r = k == 1 ? mmsg_send_one(fd, mh)
                : k > 0 ? sendmmsg(fd, mh, (unsigned)k, 0)
                        : -1;
        if (r < 0 && k > 0 && errno == EINTR)
            continue;
        if (r <= 0 && k > 0 && count[0] > 1 && !whole &&
            (errno == EINVAL || errno == ENOPROTOOPT || errno == EIO)) {
            /* ENOPROTOOPT and EIO: this kernel (or device) does not
             * segment, never again.  EINVAL may be this batch's own (a
             * segment larger than the route's MTU, a bad destination): it
             * is sent again whole, and only it. */
            if (errno != EINVAL)
                atomic_store(&gso_refused, 1);
            else
                whole = 1;
            continue;
        }
        if (r <= 0 && total == 0 && !retried && family_stale(fd)) {
            retried = 1;
            family = 0;
            continue;
        }
        if (r <= 0)
            return total > 0 ? total : -1;
        for (int j = 0; j < r; j++)
            total += count[j];
        whole = 0;
        if (r < k)
            break;
    }
    return total;
}

/* The segment size of a coalesced receive (UDP_GRO), or 0. */
static size_t gro_size(struct msghdr *h, size_t len)
{
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
        if (c->cmsg_level != IPPROTO_UDP || c->cmsg_type != UDP_GRO)
            continue;
        int seg;
        memcpy(&seg, CMSG_DATA(c), sizeof(seg));
        return seg > 0 && (size_t)seg < len ? (size_t)seg : 0;
    }
    return 0;
}

/* Takes what is queued (up to n) with recvmmsg.  flags is MSG_DONTWAIT
 * (never wait) or MSG_WAITFORONE (block for the first datagram, as long as
 * the socket's SO_RCVTIMEO allows, then take only what is already there).
 * Returns how many arrived, or -1 with errno (EAGAIN when nothing came). */
static int recv_batch(int fd, struct udp_msg *msgs, int n, int flags)
{
    int total = 0;
    while (total < n) {
        struct mmsghdr mh[UDP_BATCH];
        struct iovec iov[UDP_BATCH];
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } ctl[UDP_BATCH];
        /* A first call for few slots: setting up the batch costs more in
         * a round trip than a second system call does in bulk. */
        int k = n - total < UDP_BATCH ? n - total : UDP_BATCH;
        if (total == 0 && k > RECV_FIRST)
            k = RECV_FIRST;
        memset(mh, 0, (size_t)k * sizeof(mh[0]));
        for (int i = 0; i < k; i++) {
            struct udp_msg *m = &msgs[total + i];
            iov[i].iov_base = m->buf;
            iov[i].iov_len = m->len;
            mh[i].msg_hdr.msg_name = &m->addr.ss;
            mh[i].msg_hdr.msg_namelen = sizeof(m->addr.ss);
            mh[i].msg_hdr.msg_iov = &iov[i];
            mh[i].msg_hdr.msg_iovlen = 1;
            mh[i].msg_hdr.msg_control = ctl[i].buf;
            mh[i].msg_hdr.msg_controllen = sizeof(ctl[i].buf);
        }
        int f = total > 0 ? MSG_DONTWAIT : flags;
        int r = k == 1 ? mmsg_recv_one(fd, mh, f)
                       : recvmmsg(fd, mh, (unsigned)k, f, NULL);
        if (r <= 0)
            return total > 0 ? total : -1;
        for (int i = 0; i < r; i++) {
            struct udp_msg *m = &msgs[total + i];
            m->len = mh[i].msg_len;
            m->addr.len = unmap_v4(&m->addr.ss, mh[i].msg_hdr.msg_namelen);
            m->seg = gro_size(&mh[i].msg_hdr, m->len);
        }
        total += r;
        if (r < k)
            break;
    }
    return total;
}
#else
/* Elsewhere: one sendmsg per datagram. */
static int send_batch(int fd, const struct udp_parts *d, int n)
{
    int i;
    for (i = 0; i < n; i++)
        if (send_parts_one(fd, &d[i]) < 0)
            break;
    return i > 0 ? i : -1;
}

/* Elsewhere: one recvfrom per datagram; only the first may block. */
#ifndef MSG_WAITFORONE
#define MSG_WAITFORONE 0
#endif
static int recv_batch(int fd, struct udp_msg *msgs, int n, int flags)
{
    int i;
    for (i = 0; i < n; i++) {
        struct udp_msg *m = &msgs[i];
        socklen_t len = sizeof(m->addr.ss);
        ssize_t r = recvfrom(fd, m->buf, m->len, i > 0 ? MSG_DONTWAIT : flags,
                             (struct sockaddr *)&m->addr.ss, &len);
        if (r < 0)
            break;
        m->len = (size_t)r;
        m->seg = 0;
        m->addr.len = unmap_v4(&m->addr.ss, len);
    }
    return i > 0 ? i : -1;
}
#endif

/* A socket with faults sends datagram by datagram so that each one meets
 * its own fate; a datagram in two pieces is joined first. */
static int send_through_faults(int fd, const struct udp_parts *d, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        const void *buf = d[i].head;
        unsigned char *joined = NULL;
        if (d[i].body_len > 0) {
            joined = malloc(parts_len(&d[i]));
            if (joined == NULL)
                break;
            memcpy(joined, d[i].head, d[i].head_len);
            memcpy(joined + d[i].head_len, d[i].body, d[i].body_len);
            buf = joined;
        }
        int r = UDP_SendTo(fd, buf, parts_len(&d[i]), d[i].to);
        free(joined);
        if (r < 0)
            break;
    }
    return i > 0 ? i : -1;
}

int UDP_SendParts(int fd, const struct udp_parts *d, int n)
{
    if (d == NULL || n <= 0) {
        errno = EINVAL;
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (d[i].to == NULL || (d[i].head == NULL && d[i].head_len > 0) ||
            (d[i].body == NULL && d[i].body_len > 0)) {
            errno = EINVAL;
            return -1;
        }
    return faults_on(fd) ? send_through_faults(fd, d, n)
                         : send_batch(fd, d, n);
}

/* The batch as datagrams of one piece, UDP_BATCH at a time. */
int UDP_SendMany(int fd, struct udp_msg *msgs, int n)
{
    if (msgs == NULL || n <= 0) {
        errno = EINVAL;
        return -1;
    }
    int total = 0;
    while (total < n) {
        struct udp_parts d[UDP_BATCH];
        int k = n - total < UDP_BATCH ? n - total : UDP_BATCH;
        for (int i = 0; i < k; i++)
            d[i] = (struct udp_parts){.to = &msgs[total + i].addr,
                                      .head = msgs[total + i].buf,
                                      .head_len = msgs[total + i].len};
        int r = UDP_SendParts(fd, d, k);
        if (r < 0)
            return total > 0 ? total : -1;
        total += r;
        if (r < k)
            break;
    }
    return total;
}

/* Waits for the first datagram, then takes what else is already queued. */
int UDP_RecvMany(int fd, struct udp_msg *msgs, int n, int timeout_ms)
{
    if (msgs == NULL || n <= 0) {
        errno = EINVAL;
        return -1;
    }
    if (timeout_ms == 0 || (timeout_ms < 0 && !faults_on(fd))) {
        /* One system call: not waiting at all, or blocking in the kernel
         * (as long as the socket's blocking timeout allows). */
        if (timeout_ms == 0)
            faults_tick(fd);
        int r = recv_batch(fd, msgs, n,
                           timeout_ms == 0 ? MSG_DONTWAIT : MSG_WAITFORONE);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            errno = ETIMEDOUT;
        return r > 0 ? r : -1;
    }
    uint64_t deadline = timeout_ms < 0 ? blocking_deadline(fd)
                                       : deadline_after(timeout_ms);
    for (;;) {
        if (wait_readable(fd, deadline) < 0)
            return -1;
        int r = recv_batch(fd, msgs, n, MSG_DONTWAIT);
        if (r > 0)
            return r;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
    }
}

/* ======================================================================== */
/* Fault injection: the specification parser                                */
/* ======================================================================== */

enum fault_key {
    KEY_DROP,
    KEY_DUP,
    KEY_REORDER,
    KEY_CORRUPT,
    KEY_DELAY,
    KEY_JITTER,
    KEY_SEED,
    KEY_COUNT
};

static const char *const key_names[KEY_COUNT] = {
    "drop", "dup", "reorder", "corrupt", "delay", "jitter", "seed"};

/* A piece of the specification: not NUL-terminated. */
struct span {
    const char *p;
    int n; /* an int because it is printed with "%.*s" */
};

/* Quoted pieces in messages are cut to this many characters. */
#define QUOTE_MAX 48

static struct span trim(const char *p, size_t n)
{
    while (n > 0 && isspace((unsigned char)p[0]))
        p++, n--;
    while (n > 0 && isspace((unsigned char)p[n - 1]))
        n--;
    struct span s = {p, n > INT_MAX ? INT_MAX : (int)n};
    return s;
}

/* Length of s for "%.*s" in a message. */
static int q(struct span s)
{
    return s.n < QUOTE_MAX ? s.n : QUOTE_MAX;
}

/* Writes a message into err (if any), sets errno and returns -1. */
__attribute__((format(printf, 3, 4))) static int
parse_error(char *err, size_t cap, const char *fmt, ...)
{
    if (err != NULL && cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    errno = EINVAL;
    return -1;
}

/* Reads digits with an optional fraction ("12", "0.25"; not ".5" or "1.").
 * Returns how many characters it used, 0 when there is no number. */
static int scan_decimal(struct span s, double *out)
{
    int i = 0;
    double v = 0;
    while (i < s.n && isdigit((unsigned char)s.p[i]))
        v = v * 10 + (s.p[i++] - '0');
    if (i == 0)
        return 0;
    if (i < s.n && s.p[i] == '.') {
        int j = i + 1;
        double scale = 0.1;
        for (; j < s.n && isdigit((unsigned char)s.p[j]); j++, scale /= 10)
            v += (s.p[j] - '0') * scale;
        if (j == i + 1)
            return 0;
        i = j;
    }
    *out = v;
    return i;
}

/* A probability: a decimal in [0,1] or a percentage in [0%,100%]. */
static int parse_prob(int key, struct span v, double *out, char *err,
                      size_t cap)
{
    double x = 0;
    int used = scan_decimal(v, &x);
    int pct = used > 0 && used + 1 == v.n && v.p[used] == '%';
    if (used == 0 || (used != v.n && !pct))
        return parse_error(err, cap,
                           "bad probability '%.*s' for %s (expected a decimal "
                           "in [0,1] or a percentage like 10%%)",
                           q(v), v.p, key_names[key]);
    if (pct)
        x /= 100;
    if (x > 1)
        return parse_error(err, cap,
                           "%s=%.*s is out of range (a probability is 0..1 "
                           "or 0%%..100%%)",
                           key_names[key], q(v), v.p);
    *out = x;
    return 0;
}

/* A duration: a decimal with unit us, ms or s (none means ms), at most
 * UDP_FAULT_MAX_DELAY_US. */
static int parse_duration(int key, struct span v, uint64_t *out, char *err,
                          size_t cap)
{
    double x = 0, factor = 0;
    int used = scan_decimal(v, &x);
    struct span unit = {v.p + used, v.n - used};
    if (unit.n == 0 || (unit.n == 2 && memcmp(unit.p, "ms", 2) == 0))
        factor = 1000;
    else if (unit.n == 2 && memcmp(unit.p, "us", 2) == 0)
        factor = 1;
    else if (unit.n == 1 && unit.p[0] == 's')
        factor = 1000000;
    if (used == 0 || factor == 0)
        return parse_error(err, cap,
                           "bad duration '%.*s' for %s (expected a number "
                           "with unit us, ms or s; no unit means ms)",
                           q(v), v.p, key_names[key]);
    double us = x * factor;
    if (us > (double)UDP_FAULT_MAX_DELAY_US)
        return parse_error(err, cap, "%s=%.*s is out of range (at most 3600s)",
                           key_names[key], q(v), v.p);
    *out = (uint64_t)(us + 0.5);
    return 0;
}

/* A seed: an unsigned 64-bit decimal integer. */
static int parse_seed(struct span v, uint64_t *out, char *err, size_t cap)
{
    uint64_t x = 0;
    for (int i = 0; i < v.n; i++) {
        if (!isdigit((unsigned char)v.p[i]))
            return parse_error(err, cap,
                               "bad seed '%.*s' (expected an unsigned "
                               "decimal integer)",
                               q(v), v.p);
        unsigned d = (unsigned)(v.p[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return parse_error(err, cap,
                               "seed '%.*s' is out of range (at most "
                               "18446744073709551615)",
                               q(v), v.p);
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

/* One key=value item, trimmed and not empty, into *f; *seen tracks the keys
 * given so far. */
static int parse_item(struct span item, struct udp_fault_spec *f,
                      unsigned *seen, char *err, size_t cap)
{
    const char *eq = memchr(item.p, '=', (size_t)item.n);
    if (eq == NULL)
        return parse_error(err, cap,
                           "missing '=' in '%.*s' (expected key=value)",
                           q(item), item.p);
    struct span key = trim(item.p, (size_t)(eq - item.p));
    struct span val = trim(eq + 1, (size_t)(item.p + item.n - eq - 1));
    int k = 0;
    while (k < KEY_COUNT && !((size_t)key.n == strlen(key_names[k]) &&
                              memcmp(key.p, key_names[k], (size_t)key.n) == 0))
        k++;
    if (k == KEY_COUNT)
        return parse_error(err, cap,
                           "unknown fault '%.*s' (expected drop, dup, reorder, "
                           "corrupt, delay, jitter, seed)",
                           q(key), key.p);
    if (*seen & (1u << k))
        return parse_error(err, cap, "'%s' is given twice", key_names[k]);
    *seen |= 1u << k;
    if (val.n == 0)
        return parse_error(err, cap, "missing value for '%s'", key_names[k]);
    switch (k) {
    case KEY_DROP:
        return parse_prob(k, val, &f->drop, err, cap);
    case KEY_DUP:
        return parse_prob(k, val, &f->dup, err, cap);
    case KEY_REORDER:
        return parse_prob(k, val, &f->reorder, err, cap);
    case KEY_CORRUPT:
        return parse_prob(k, val, &f->corrupt, err, cap);
    case KEY_DELAY:
        return parse_duration(k, val, &f->delay_us, err, cap);
    case KEY_JITTER:
        return parse_duration(k, val, &f->jitter_us, err, cap);
    default:
        return parse_seed(val, &f->seed, err, cap);
    }
}

/* Splits at commas and parses each item into a local copy, so that *out is
 * only written when the whole specification is good. */
int udp_fault_parse(const char *spec, struct udp_fault_spec *out, char *err,
                    size_t cap)
{
    struct udp_fault_spec f;
    memset(&f, 0, sizeof(f));
    f.seed = 1;
    if (err != NULL && cap > 0)
        err[0] = '\0';
    if (spec != NULL && trim(spec, strlen(spec)).n > 0) {
        unsigned seen = 0;
        const char *p = spec;
        for (int number = 1;; number++) {
            const char *comma = strchr(p, ',');
            size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
            struct span item = trim(p, n);
            if (item.n == 0)
                return parse_error(err, cap,
                                   "item %d is empty (a doubled comma, or a "
                                   "comma at either end)",
                                   number);
            if (parse_item(item, &f, &seen, err, cap) < 0)
                return -1;
            if (comma == NULL)
                break;
            p = comma + 1;
        }
    }
    *out = f;
    return 0;
}

/* Any nonzero probability or duration is a fault; the seed alone is not. */
int udp_fault_active(const struct udp_fault_spec *spec)
{
    return spec->drop > 0 || spec->dup > 0 || spec->reorder > 0 ||
           spec->corrupt > 0 || spec->delay_us > 0 || spec->jitter_us > 0;
}

/* ======================================================================== */
/* Fault injection: per-socket state and the registry                       */
/* ======================================================================== */

/* A reordered datagram waits for the next one, but never longer than this. */
#define REORDER_MAX_US 5000

/* The held-back queue is bounded.  Past the bound a datagram that should be
 * held is sent at once instead: dropping it would silently raise the loss
 * rate the test asked for, while a missing delay only makes the network look
 * better than configured, and memory stays bounded either way. */
#define HELD_MAX       4096
#define HELD_MAX_BYTES (16u << 20)

/* A thread blocked in a read on a socket with faults wakes up at least this
 * often, so that a datagram another thread held back on the same socket in
 * the meantime (its faults may have changed to delay or reorder since the
 * read began) is not released late by more than this. */
#define FAULT_SLICE_MS 10

/* One datagram held back for delay or reordering. */
struct held {
    struct held *prev, *next;
    uint64_t due_us; /* when it may go */
    int wait_next;   /* reordered: goes right after the next datagram */
    socklen_t alen;
    struct sockaddr_storage addr;
    size_t len;
    unsigned char data[]; /* len bytes */
};

/* A socket's fault injection: configuration, generator, counters, queue. */
struct fstate {
    struct udp_fault_spec spec;
    int active;  /* spec injects anything */
    int counted; /* included in busy_sockets */
    uint64_t rng;
    struct udp_fault_stats stats;
    struct held *head, *tail; /* ordered by due_us, ties in arrival order */
    size_t nheld, held_bytes;
};

/* Why global state: the textbook API hands us only an int, so per-socket
 * state can only be found through the descriptor.  This table is that
 * lookup, and the one piece of process-wide mutable state in the library.
 * One mutex guards the table and every entry's contents; nobody sleeps while
 * holding it (the waits in poll happen outside), so it is held only for the
 * time of a few sendto calls.
 *
 * busy_sockets counts entries with faults on or datagrams held.  While it is
 * zero, sends and reads go straight to the system call without touching the
 * lock; a relaxed load suffices because a call racing with UDP_SetFaults on
 * another thread may see either the old or the new configuration anyway. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fstate **reg;
static size_t reg_cap;
static atomic_int busy_sockets;

/* The fast-path test: false while no socket in the process has faults. */
static int faults_possible(void)
{
    return atomic_load_explicit(&busy_sockets, memory_order_relaxed) != 0;
}

/* The entry for fd, or NULL.  Lock held. */
static struct fstate *reg_get(int fd)
{
    return fd >= 0 && (size_t)fd < reg_cap ? reg[fd] : NULL;
}

/* Keeps busy_sockets in step with one entry.  Lock held. */
static void recount(struct fstate *s)
{
    int busy = s->active || s->head != NULL;
    if (busy != s->counted) {
        atomic_fetch_add_explicit(&busy_sockets, busy ? 1 : -1,
                                  memory_order_relaxed);
        s->counted = busy;
    }
}

/* The entry for fd, created (and the table grown) if needed; NULL with
 * errno ENOMEM.  Lock held. */
static struct fstate *reg_make(int fd)
{
    if ((size_t)fd >= reg_cap) {
        size_t cap = reg_cap ? reg_cap : 64;
        while (cap <= (size_t)fd)
            cap *= 2;
        struct fstate **t = realloc(reg, cap * sizeof(*t));
        if (t == NULL)
            return NULL;
        memset(t + reg_cap, 0, (cap - reg_cap) * sizeof(*t));
        reg = t;
        reg_cap = cap;
    }
    if (reg[fd] == NULL)
        reg[fd] = calloc(1, sizeof(struct fstate));
    return reg[fd];
}

/* Removes fd's entry from the table and returns it (or NULL).  Lock held. */
static struct fstate *reg_take(int fd)
{
    struct fstate *s = reg_get(fd);
    if (s == NULL)
        return NULL;
    reg[fd] = NULL;
    if (s->counted)
        atomic_fetch_sub_explicit(&busy_sockets, 1, memory_order_relaxed);
    s->counted = 0;
    return s;
}

/* ======================================================================== */
/* Fault injection: the held-back queue                                     */
/* ======================================================================== */

/* Copies a datagram into a new queue entry; NULL with errno ENOMEM. */
static struct held *held_new(const void *buf, size_t n,
                             const struct sockaddr *to, socklen_t tolen)
{
    struct held *h = malloc(sizeof(*h) + n);
    if (h == NULL)
        return NULL;
    memset(h, 0, sizeof(*h));
    if (n > 0)
        memcpy(h->data, buf, n);
    h->len = n;
    memcpy(&h->addr, to, tolen);
    h->alen = tolen;
    return h;
}

/* Inserts h by due time, after every entry due no later (so ties keep their
 * order).  The walk starts at the tail, where a constant delay puts every new
 * entry: O(1) then, O(n) for jitter; a heap would bound it but lose the
 * stable order. */
static void held_insert(struct fstate *s, struct held *h)
{
    struct held *after = s->tail;
    while (after != NULL && after->due_us > h->due_us)
        after = after->prev;
    h->prev = after;
    h->next = after != NULL ? after->next : s->head;
    if (h->next != NULL)
        h->next->prev = h;
    else
        s->tail = h;
    if (after != NULL)
        after->next = h;
    else
        s->head = h;
    s->nheld++;
    s->held_bytes += h->len;
}

/* Takes h out of the queue (it stays allocated). */
static void held_unlink(struct fstate *s, struct held *h)
{
    if (h->prev != NULL)
        h->prev->next = h->next;
    else
        s->head = h->next;
    if (h->next != NULL)
        h->next->prev = h->prev;
    else
        s->tail = h->prev;
    h->prev = h->next = NULL;
    s->nheld--;
    s->held_bytes -= h->len;
}

/* sendto, retried when a signal interrupts it.  Returns bytes or -1. */
static int raw_send(int fd, const void *buf, size_t n,
                    const struct sockaddr *to, socklen_t tolen)
{
    for (;;) {
        ssize_t r = sendto(fd, buf, n, 0, to, tolen);
        if (r >= 0 || errno != EINTR)
            return (int)r;
    }
}

/* Sends every held datagram due by now, in order.  A failed send loses the
 * datagram, as the network would; errno is left as it was. */
static void release_due(int fd, struct fstate *s, uint64_t now)
{
    int e = errno;
    while (s->head != NULL && s->head->due_us <= now) {
        struct held *h = s->head;
        held_unlink(s, h);
        raw_send(fd, h->data, h->len, (struct sockaddr *)&h->addr, h->alen);
        free(h);
    }
    errno = e;
}

/* A datagram that leaves at time `due` ends the wait of every reordered one
 * before it: each goes right after it, or stays at its own time if that is
 * earlier (a reordered datagram never waits more than REORDER_MAX_US). */
static void promote_waiting(struct fstate *s, uint64_t due)
{
    struct held *chain = NULL, **tailp = &chain;
    for (struct held *h = s->head, *next; h != NULL; h = next) {
        next = h->next;
        if (!h->wait_next)
            continue;
        held_unlink(s, h);
        h->wait_next = 0;
        if (h->due_us > due)
            h->due_us = due;
        *tailp = h;
        tailp = &h->next;
    }
    while (chain != NULL) {
        struct held *h = chain;
        chain = h->next;
        held_insert(s, h);
    }
}

/* ======================================================================== */
/* Fault injection: deciding each datagram's fate                           */
/* ======================================================================== */

/* splitmix64 (Steele, Lea and Flood, 2014): tiny, fast, and every seed,
 * zero included, gives a good sequence. */
static uint64_t rng_next(struct fstate *s)
{
    uint64_t z = (s->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* True with probability p.  Draws nothing when p is 0, so a fault that is
 * off does not shift the others' draws. */
static int chance(struct fstate *s, double p)
{
    if (p <= 0)
        return 0;
    return (double)(rng_next(s) >> 11) * 0x1.0p-53 < p;
}

/* Holds h (and a copy when duplicated) until h->due_us.  Returns 0, or -1
 * when the queue is full or a copy cannot be made (the caller then sends). */
static int hold(struct fstate *s, struct held *h, int copies)
{
    if (s->nheld + (size_t)copies > HELD_MAX ||
        s->held_bytes + (size_t)copies * h->len > HELD_MAX_BYTES)
        return -1;
    struct held *twin = NULL;
    if (copies == 2) {
        twin = malloc(sizeof(*h) + h->len);
        if (twin == NULL)
            return -1;
        memcpy(twin, h, sizeof(*h) + h->len);
    }
    held_insert(s, h);
    if (twin != NULL)
        held_insert(s, twin);
    if (!h->wait_next)
        promote_waiting(s, h->due_us);
    return 0;
}

/* Applies the socket's faults to one datagram, in a fixed order of draws
 * (drop, corrupt, dup, reorder, jitter) so that a seed replays exactly.
 * Returns n (a dropped datagram counts as sent), or -1 with errno.  Lock
 * held. */
static int fault_send(int fd, struct fstate *s, const void *buf, size_t n,
                      const struct sockaddr *to, socklen_t tolen)
{
    const struct udp_fault_spec *f = &s->spec;
    uint64_t now = now_us();
    release_due(fd, s, now);
    s->stats.sent++;
    if (chance(s, f->drop)) {
        s->stats.dropped++;
        return (int)n;
    }
    struct held *h = held_new(buf, n, to, tolen);
    if (h == NULL)
        return -1;
    if (n > 0 && chance(s, f->corrupt)) {
        uint64_t bit = rng_next(s) % ((uint64_t)n * 8);
        h->data[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        s->stats.corrupted++;
    }
    int copies = chance(s, f->dup) ? 2 : 1;
    s->stats.duplicated += copies == 2;
    h->wait_next = chance(s, f->reorder);
    uint64_t delay = f->delay_us;
    if (f->jitter_us > 0)
        delay += rng_next(s) % (f->jitter_us + 1);
    h->due_us = now + delay + (h->wait_next ? REORDER_MAX_US : 0);
    if ((h->wait_next || delay > 0) && hold(s, h, copies) == 0) {
        s->stats.reordered += h->wait_next != 0;
        s->stats.delayed += delay > 0;
        return (int)n;
    }
    int rc = 0;
    for (int i = 0; i < copies && rc >= 0; i++)
        rc = raw_send(fd, h->data, h->len, to, tolen);
    free(h);
    if (rc < 0)
        return -1;
    promote_waiting(s, now);
    release_due(fd, s, now);
    return (int)n;
}

/* The largest datagram the destination can take: checked before a datagram
 * is held, since a held one cannot report EMSGSIZE later. */
static size_t max_payload(const struct sockaddr *to, socklen_t tolen)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, to, tolen);
    return unmap_v4(&ss, tolen) == sizeof(struct sockaddr_in)
               ? UDP_MAX_PAYLOAD_V4
               : UDP_MAX_PAYLOAD_V6;
}

/* Every send goes through here: straight to sendto unless the socket has
 * faults or held datagrams. */
static int send_one(int fd, const void *buf, size_t n,
                    const struct sockaddr *to, socklen_t tolen)
{
    if (!faults_possible())
        return raw_send(fd, buf, n, to, tolen);
    pthread_mutex_lock(&reg_lock);
    struct fstate *s = reg_get(fd);
    int rc;
    if (s == NULL) {
        rc = raw_send(fd, buf, n, to, tolen);
    } else if (!s->active) { /* faults just turned off: finish the queue */
        uint64_t now = now_us();
        release_due(fd, s, now);
        rc = raw_send(fd, buf, n, to, tolen);
        promote_waiting(s, now);
        release_due(fd, s, now);
    } else if (n > max_payload(to, tolen)) {
        errno = EMSGSIZE;
        rc = -1;
    } else {
        rc = fault_send(fd, s, buf, n, to, tolen);
    }
    int e = errno;
    if (s != NULL)
        recount(s);
    pthread_mutex_unlock(&reg_lock);
    errno = e;
    return rc;
}

/* ======================================================================== */
/* Fault injection: hooks for the calls above, and the public calls         */
/* ======================================================================== */

/* True when fd has faults on or datagrams held (so batches and blocking reads
 * must take the slow path). */
static int faults_on(int fd)
{
    if (!faults_possible())
        return 0;
    pthread_mutex_lock(&reg_lock);
    struct fstate *s = reg_get(fd);
    int on = s != NULL && (s->active || s->head != NULL);
    pthread_mutex_unlock(&reg_lock);
    return on;
}

/* Releases what is due on fd.  Returns how long a wait may sleep before the
 * socket needs attention again, in milliseconds, or -1 for no limit. */
static int faults_tick(int fd)
{
    if (!faults_possible())
        return -1;
    int wait = -1;
    pthread_mutex_lock(&reg_lock);
    struct fstate *s = reg_get(fd);
    if (s != NULL && (s->active || s->head != NULL)) {
        uint64_t now = now_us();
        release_due(fd, s, now);
        if (s->active)
            wait = FAULT_SLICE_MS;
        if (s->head != NULL) {
            int w = ms_until(now, s->head->due_us);
            if (wait < 0 || w < wait)
                wait = w;
        }
        recount(s);
    }
    pthread_mutex_unlock(&reg_lock);
    return wait;
}

/* Frees an entry and whatever it still holds. */
static void fstate_free(struct fstate *s)
{
    while (s->head != NULL) {
        struct held *h = s->head;
        held_unlink(s, h);
        free(h);
    }
    free(s);
}

/* Drops fd's entry without sending anything: used at open, when the number
 * is being reused after a close() that bypassed UDP_Close. */
static void faults_forget(int fd)
{
    pthread_mutex_lock(&reg_lock);
    struct fstate *s = reg_take(fd);
    pthread_mutex_unlock(&reg_lock);
    if (s != NULL)
        fstate_free(s);
}

/* Sends everything fd holds, in order and at once, then drops its entry. */
static void faults_close(int fd)
{
    pthread_mutex_lock(&reg_lock);
    struct fstate *s = reg_take(fd);
    pthread_mutex_unlock(&reg_lock);
    if (s != NULL) {
        release_due(fd, s, UDP_NEVER - 1);
        fstate_free(s);
    }
}

/* Installs a parsed specification on fd.  Returns 0 or -1 with ENOMEM. */
static int faults_install(int fd, const struct udp_fault_spec *spec)
{
    int active = udp_fault_active(spec), rc = 0;
    pthread_mutex_lock(&reg_lock);
    struct fstate *s = active ? reg_make(fd) : reg_get(fd);
    if (s != NULL) {
        s->spec = *spec;
        s->rng = spec->seed;
        s->active = active;
        recount(s);
    } else if (active) {
        rc = -1;
    }
    pthread_mutex_unlock(&reg_lock);
    if (rc < 0)
        errno = ENOMEM;
    return rc;
}

/* Applies UDP_FAULTS to a newly opened socket.  A malformed value is
 * reported on stderr and fails the open with EINVAL: a test that silently
 * ran without its faults would prove nothing. */
static int faults_attach_env(int fd)
{
    faults_forget(fd);
    const char *env = getenv("UDP_FAULTS");
    if (env == NULL)
        return 0;
    struct udp_fault_spec spec;
    char err[200];
    if (udp_fault_parse(env, &spec, err, sizeof(err)) < 0) {
        fprintf(stderr, "UDP_FAULTS: %s\n", err);
        errno = EINVAL;
        return -1;
    }
    if (!udp_fault_active(&spec))
        return 0;
    return faults_install(fd, &spec);
}

/* Parses first, so a bad specification leaves the old faults in force. */
int UDP_SetFaults(int fd, const char *spec, char *err, size_t err_cap)
{
    struct udp_fault_spec f;
    if (fd < 0 || fcntl(fd, F_GETFD) < 0) {
        errno = EBADF;
        return -1;
    }
    if (udp_fault_parse(spec, &f, err, err_cap) < 0)
        return -1;
    return faults_install(fd, &f);
}

/* A copy of the counters; zeros for a socket that never had faults. */
int UDP_FaultStats(int fd, struct udp_fault_stats *st)
{
    if (st == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (fd < 0 || fcntl(fd, F_GETFD) < 0) {
        errno = EBADF;
        return -1;
    }
    memset(st, 0, sizeof(*st));
    pthread_mutex_lock(&reg_lock);
    struct fstate *s = reg_get(fd);
    if (s != NULL)
        *st = s->stats;
    pthread_mutex_unlock(&reg_lock);
    return 0;
}

/* The head of the queue is the next datagram due. */
int UDP_FaultsNextMs(int fd)
{
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    if (!faults_possible())
        return -1;
    int ms = -1;
    pthread_mutex_lock(&reg_lock);
    struct fstate *s = reg_get(fd);
    if (s != NULL && s->head != NULL)
        ms = ms_until(now_us(), s->head->due_us);
    pthread_mutex_unlock(&reg_lock);
    return ms;
}

/* Releases what is due, for callers that wait by other means. */
int UDP_Pump(int fd)
{
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    if (!faults_possible())
        return 0;
    pthread_mutex_lock(&reg_lock);
    struct fstate *s = reg_get(fd);
    if (s != NULL) {
        release_due(fd, s, now_us());
        recount(s);
    }
    pthread_mutex_unlock(&reg_lock);
    return 0;
}

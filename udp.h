/*
 * udp.h - a thin UDP wrapper, source compatible with the OSTEP textbook.
 *
 * The first five calls are the textbook's (chapter "Distributed Systems",
 * figure 48.2), with the same names and signatures, so a student's client.c
 * and server.c that include only <stdio.h> and "udp.h" build unchanged.
 * What the textbook got wrong is fixed: every failure is -1 with errno set
 * (never 0, which is a valid descriptor), and host names are resolved with
 * getaddrinfo.
 *
 * Everything after them is an addition, never a change:
 *   - ephemeral ports (UDP_Open(0) and UDP_Port),
 *   - a read with a timeout that sleeps in poll (UDP_ReadTimeout), and a
 *     kernel timeout for blocking reads (UDP_SetBlockingTimeout),
 *   - socket buffer sizing (UDP_SetBuffers),
 *   - dual-stack calls for the layers above (UDP_OpenDual, UDP_Resolve,
 *     UDP_SendTo, UDP_RecvFrom, and the batched UDP_SendMany/UDP_RecvMany),
 *   - seeded fault injection: drop, duplicate, reorder, corrupt, delay.
 *
 * Fault injection.  A specification is a comma-separated list of key=value
 * pairs, for example
 *
 *     drop=0.1,dup=0.05,reorder=0.1,corrupt=0.01,delay=20ms,seed=42
 *
 * It applies to the datagrams a socket *sends*.  Set it for one socket with
 * UDP_SetFaults, or for every socket the process opens with the environment
 * variable UDP_FAULTS (read when a socket is opened).  The same seed and the
 * same sequence of calls give the same faults.  Datagrams held back for delay
 * or reordering are released while the program is inside any call on that
 * socket (a blocking read included) and all at once by UDP_Close, so none is
 * lost because the program stopped writing.  One exception: a read that
 * began while the socket had no faults at all waits in the kernel, as the
 * textbook's recvfrom does, and releases nothing until it returns; turn
 * faults on before another thread starts reading (UDP_FAULTS, read at
 * open, always is).  At most 4096 datagrams or 16 MiB are held at once:
 * past that a datagram due to be held is sent at once (counted neither
 * delayed nor reordered), so a delay stays bounded in memory but may be
 * shorter than asked for, and may let it overtake held ones.  The grammar
 * is in README.md.
 *
 * Thread safety: calls on different sockets are independent; calls on one
 * socket from several threads are safe (the fault state is under a lock,
 * which a process where no socket has faults never takes).
 */
#ifndef UDP_H
#define UDP_H

/* The textbook's programs use exit, assert, strcmp and sprintf after
 * including only <stdio.h> and "udp.h", so this header brings them in. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

/* ------------------------------------------------------------------------ */
/* The textbook's five calls                                                 */
/* ------------------------------------------------------------------------ */

/* Opens an IPv4 UDP socket bound to `port` on every local address; port 0
 * picks a free ephemeral port (see UDP_Port).  Returns the descriptor, or -1
 * with errno set (EINVAL for a port outside 0..65535, or the socket/bind
 * error).  Applies UDP_FAULTS if it is set; a malformed UDP_FAULTS fails the
 * open with EINVAL and a message on stderr. */
int UDP_Open(int port);

/* Closes a socket opened by any UDP_Open* call, first sending every datagram
 * that fault injection was still holding back.  Returns 0, or -1 with errno. */
int UDP_Close(int fd);

/* Receives one datagram into buffer (at most n bytes; a longer one is cut
 * short, as recvfrom does) and stores the sender in *addr when addr is not
 * NULL (on a dual-stack socket an IPv6 sender does not fit: *addr is then
 * zeroed with family AF_UNSPEC).  Blocks until a datagram arrives (or the
 * socket's blocking timeout, if one was set, passes: ETIMEDOUT).  Returns
 * the number of bytes, or -1 with errno (EINVAL for n < 0, ETIMEDOUT, or the
 * recvfrom error). */
int UDP_Read(int fd, struct sockaddr_in *addr, char *buffer, int n);

/* Sends n bytes of buffer to *addr as one datagram (subject to the socket's
 * fault injection).  Returns n, or -1 with errno (EINVAL for a NULL address or
 * n < 0, EMSGSIZE for a datagram too large, or the sendto error). */
int UDP_Write(int fd, struct sockaddr_in *addr, char *buffer, int n);

/* Fills *addr with the IPv4 address of hostName and the port.  A NULL
 * hostName clears the address to INADDR_ANY, as the textbook's callers expect.
 * Returns 0, or -1 with errno (EINVAL for a bad port or a NULL addr,
 * EHOSTUNREACH when the name does not resolve to an IPv4 address, ENOMEM). */
int UDP_FillSockAddr(struct sockaddr_in *addr, char *hostName, int port);

/* ------------------------------------------------------------------------ */
/* Extras: ports, timeouts, buffers                                          */
/* ------------------------------------------------------------------------ */

/* Returns the local port the socket is bound to (host order), or -1 with
 * errno.  Use it after UDP_Open(0). */
int UDP_Port(int fd);

/* Like UDP_Read, but waits at most timeout_ms milliseconds (sleeping in poll,
 * never spinning); a negative timeout waits as UDP_Read does.  Returns the
 * number of bytes, or -1 with errno: ETIMEDOUT when nothing arrived in time. */
int UDP_ReadTimeout(int fd, struct sockaddr_in *addr, char *buffer, int n,
                    int timeout_ms);

/* Sets how long a blocking read on the socket (UDP_Read, and the other
 * reads with a negative timeout) waits before failing with ETIMEDOUT, in
 * microseconds; 0 means forever (the default).  This is the kernel's own
 * timer on a receive (SO_RCVTIMEO), so such a read stays one system call;
 * it counts in scheduler ticks and may end up to one tick (1 to 10 ms)
 * late.  Reads with a timeout of their own wait in poll and keep their
 * precision.  Returns 0, or -1 with errno (EINVAL for a negative timeout,
 * or the setsockopt error). */
int UDP_SetBlockingTimeout(int fd, int64_t timeout_us);

/* Asks the kernel for receive and send buffers of the given sizes in bytes
 * (0 leaves one unchanged).  The kernel may grant less (a privileged process
 * on Linux may exceed net.core.rmem_max/wmem_max); the sizes the kernel
 * reports (Linux doubles the request for its bookkeeping) are stored in
 * *rcv_out / *snd_out when those are not NULL.  Returns 0, or -1 with errno
 * (EINVAL for a negative size, or the setsockopt error). */
int UDP_SetBuffers(int fd, int rcvbuf, int sndbuf, int *rcv_out, int *snd_out);

/* Asks the kernel (Linux 5.0+, UDP_GRO) to hand UDP_RecvMany runs of
 * datagrams from one sender as one buffer, which costs it far less than
 * one by one; each udp_msg then says in .seg how to cut the buffer.
 * Give UDP_RecvMany buffers of 65536 bytes.  Returns 0, or -1 with errno
 * (ENOPROTOOPT where the kernel cannot). */
int UDP_ReceiveOffload(int fd, int on);

/* ------------------------------------------------------------------------ */
/* Extras: dual stack and batches, for the layers above                      */
/* ------------------------------------------------------------------------ */

/* An address of either family, with its length. */
struct udp_addr {
    socklen_t len;
    struct sockaddr_storage ss;
};

/* Opens a UDP socket bound to `port` (0 = ephemeral).  family is AF_INET,
 * AF_INET6 (dual stack: it also reaches IPv4 peers as ::ffff:a.b.c.d) or
 * AF_UNSPEC (IPv6 dual stack when the host has IPv6, IPv4 otherwise).
 * Non-blocking is not set.  Applies UDP_FAULTS like UDP_Open.  Returns the
 * descriptor or -1 with errno (EINVAL for a bad port or a malformed
 * UDP_FAULTS, EAFNOSUPPORT for another family, or the socket/bind error). */
int UDP_OpenDual(int port, int family);

/* Resolves host (a name or a numeric address of either family; NULL means the
 * loopback address: ::1 for AF_INET6, 127.0.0.1 otherwise) and port into
 * *out, preferring `family` (AF_UNSPEC for the first answer).  Returns 0, or
 * -1 with errno (EINVAL for a NULL out, a bad port or family, EHOSTUNREACH
 * when the name does not resolve, ENOMEM). */
int UDP_Resolve(const char *host, int port, int family, struct udp_addr *out);

/* True when a and b name the same host and port: family, address and port
 * compared, an IPv4 address and its IPv6 mapped form (::ffff:a.b.c.d)
 * taken as one, everything else (flow labels, padding) ignored. */
int UDP_SameAddr(const struct udp_addr *a, const struct udp_addr *b);

/* Formats an address as "a.b.c.d:port" or "[v6]:port" into buf (always
 * NUL-terminated).  Returns buf. */
char *UDP_AddrString(const struct udp_addr *a, char *buf, size_t cap);

/* Sends one datagram to *to (through fault injection).  An IPv4 destination
 * on an IPv6 dual-stack socket is mapped automatically.  Returns n, or -1
 * with errno (EINVAL for a NULL or incomplete address, EMSGSIZE for a
 * datagram too large, or the sendto error). */
int UDP_SendTo(int fd, const void *buf, size_t n, const struct udp_addr *to);

/* Receives one datagram, waiting at most timeout_ms (0 = do not wait,
 * negative = until one arrives or the socket's blocking timeout passes).
 * A v4-mapped IPv6 sender is reported as IPv4.  Returns the length, or -1
 * with errno (ETIMEDOUT, EAGAIN never). */
int UDP_RecvFrom(int fd, void *buf, size_t cap, struct udp_addr *from,
                 int timeout_ms);

/* One datagram of a batch: data, its length, and its peer. */
struct udp_msg {
    void *buf;
    size_t len; /* in: bytes to send / capacity; out: bytes received */
    struct udp_addr addr;
    size_t seg; /* out: 0, or, with UDP_ReceiveOffload on, the size of each
                   of the datagrams buf holds back to back (all from addr;
                   the last may be shorter) */
};

/* Sends up to n datagrams with as few system calls as possible (sendmmsg on
 * Linux).  Returns how many were sent (>= 1), or -1 with errno if none was;
 * EAGAIN only on a non-blocking socket. */
int UDP_SendMany(int fd, struct udp_msg *msgs, int n);

/* One datagram to send, made of two pieces sent back to back: a head and
 * a body (for example a protocol header and the payload where it lies),
 * so that neither needs copying into one buffer first. */
struct udp_parts {
    const struct udp_addr *to;
    const void *head;
    size_t head_len;
    const void *body; /* may be NULL when body_len is 0 */
    size_t body_len;
};

/* Like UDP_SendMany, for datagrams in two pieces.  Returns how many were
 * sent (>= 1), or -1 with errno (EINVAL for a NULL or incomplete entry). */
int UDP_SendParts(int fd, const struct udp_parts *d, int n);

/* Receives up to n datagrams, waiting at most timeout_ms for the first (0 =
 * do not wait, negative = until one arrives or the socket's blocking
 * timeout passes) and not at all for the rest (recvmmsg on Linux; with a
 * negative timeout and no faults held back, that one call is all).
 * Returns how many arrived (>= 1), or -1 with errno (ETIMEDOUT, EINTR). */
int UDP_RecvMany(int fd, struct udp_msg *msgs, int n, int timeout_ms);

/* Sends the socket an empty datagram from itself over the loopback
 * interface, bypassing fault injection: this wakes a thread blocked
 * reading it (another thread's way of saying "look again").  Never
 * blocks; safe from a signal handler.  Returns 0, or -1 with errno (for
 * example ENETUNREACH where the loopback interface is down, as in a new
 * network namespace: then use another way to wake the reader). */
int UDP_Wake(int fd);

/* True when m (as received by UDP_RecvMany on fd) is such a wake-up. */
int UDP_IsWake(int fd, const struct udp_msg *m);

/* ------------------------------------------------------------------------ */
/* Extras: fault injection                                                   */
/* ------------------------------------------------------------------------ */

/* Counts of the faults applied to datagrams a socket sent. */
struct udp_fault_stats {
    uint64_t sent;       /* datagrams the program asked to send */
    uint64_t dropped;    /* never sent */
    uint64_t duplicated; /* sent twice */
    uint64_t reordered;  /* held back and sent after a later datagram */
    uint64_t corrupted;  /* sent with one bit flipped */
    uint64_t delayed;    /* held back for the configured delay */
};

/* Sets the socket's faults from a specification (see the top of this file)
 * and reseeds its generator; NULL or "" turns faults off (datagrams already
 * held still go out at their time).  Returns 0, or -1 with errno: EBADF when
 * fd is not an open descriptor, ENOMEM, or EINVAL when the specification is
 * malformed, in which case the socket's faults are left unchanged and, when
 * err is not NULL, a message naming the bad part is written into err (err_cap
 * bytes, NUL-terminated, no newline). */
int UDP_SetFaults(int fd, const char *spec, char *err, size_t err_cap);

/* Copies the socket's fault counters (cumulative since the socket was opened;
 * a new UDP_SetFaults does not reset them) into *st.  A socket that never had
 * faults reports zeros.  Returns 0, or -1 with errno EINVAL for a NULL st or
 * EBADF when fd is negative or not an open descriptor. */
int UDP_FaultStats(int fd, struct udp_fault_stats *st);

/* Milliseconds until the socket's next held-back datagram is due (0 if one is
 * due now, rounded up otherwise), or -1 when none is held (and, with errno
 * EBADF, for a negative fd).  The layers above use it to bound their own poll
 * timeouts and then call UDP_Pump. */
int UDP_FaultsNextMs(int fd);

/* Sends every held-back datagram of the socket that is due.  (Every other
 * call on the socket does this too; UDP_Pump is for a program that waits on
 * the socket by other means.)  Returns 0, or -1 with errno EBADF for a
 * negative fd; a held datagram whose send fails is lost, as on a network. */
int UDP_Pump(int fd);

#endif /* UDP_H */

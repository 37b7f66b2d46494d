/*
 * podnet: a pod's own "every address" and "localhost", for processes that share this machine's network.
 *
 * Loaded into each container's processes with LD_PRELOAD by the emulator's kubelet
 * (emulator/kubelet/podnet.py builds it with the machine's C compiler and says why). Hand-written: no
 * library does this. It changes socket addresses, nothing else:
 *
 *   bind    0.0.0.0:P, 127.0.0.1:P, [::]:P, [::1]:P, [::ffff:0.0.0.0]:P, [::ffff:127.0.0.1]:P, P not 0
 *           -> the pod's IP (EMULATOR_POD_IP), as [::ffff:IP] on an IPv6 socket. Two replicas of a server
 *           that listens on every address then each hold their own pod IP, as in a cluster, instead of
 *           the second failing with "address already in use"; and nothing listens beyond loopback.
 *           An IPv6-only socket (asyncio's, dnsmasq's, nginx's `listen [::]`: beside an IPv4 one) cannot
 *           hold an IPv4 address: it gets [::1] and a port of its own, where it collides with no other
 *           pod and listens on no network. Not: port 0 (a client's ephemeral port, which may talk to the
 *           world), the ports listed in EMULATOR_KEEP_PORTS (declared with a hostPort: meant to be
 *           reached on the host). A loopback one that finds the pod's IP and port
 *           taken by the same process (a server binding both 127.0.0.1:P and a dual-stack [::1]:P)
 *           keeps its own address.
 *   connect, sendto, sendmsg to 127.0.0.1:P, [::1]:P or [::ffff:127.0.0.1]:P
 *           -> the pod's IP, only when a socket of the same kind (TCP listening, or UDP) is bound to
 *           the pod's IP and port P (asked of the kernel with NETLINK_SOCK_DIAG, else read from
 *           /proc/net; nothing is redirected when neither can say, say at the descriptor limit): a
 *           container calling "localhost" reaches its pod's servers, and whatever else
 *           listens on this machine's 127.0.0.1 (the node's NodePorts, a resolver) stays reachable.
 *   recvfrom, recvmsg on a UDP socket that sent (or connected) so, below descriptor 1024
 *           -> a reply from the pod's IP and P says it came from the address the datagram was sent to
 *           (a DNS client checks that its answer comes from where it asked).
 *
 * Statically linked programs, and Go programs (they make their system calls themselves), do not go
 * through it: they keep the host's addresses.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_KEPT 64
#define TRACKED_FDS 1024
#define TCP_LISTEN_STATE 10

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);
typedef ssize_t (*sendto_fn)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);
typedef ssize_t (*recvfrom_fn)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
typedef ssize_t (*recvmsg_fn)(int, struct msghdr *, int);

static struct in_addr pod_ip;
static int have_pod_ip;
static unsigned short kept[MAX_KEPT];
static int kept_count;
static bind_fn real_bind;
static connect_fn real_connect;
static sendto_fn real_sendto;
static sendmsg_fn real_sendmsg;
static recvfrom_fn real_recvfrom;
static recvmsg_fn real_recvmsg;

/* The UDP sockets (by fd, the socket's inode telling a reused fd apart) whose datagrams to port `port`
 * of a local address went to the pod's IP instead, and which local address that was (4: 127.0.0.1,
 * 6: ::1, 7: ::ffff:127.0.0.1). Races between threads on one fd only lose a mapping, never memory. */
static struct {
    ino_t inode;
    unsigned short port;
    unsigned char sent_to;
} redirected[TRACKED_FDS];

static void setup(void) __attribute__((constructor));

static void setup(void) {
    real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    real_connect = (connect_fn)dlsym(RTLD_NEXT, "connect");
    real_sendto = (sendto_fn)dlsym(RTLD_NEXT, "sendto");
    real_sendmsg = (sendmsg_fn)dlsym(RTLD_NEXT, "sendmsg");
    real_recvfrom = (recvfrom_fn)dlsym(RTLD_NEXT, "recvfrom");
    real_recvmsg = (recvmsg_fn)dlsym(RTLD_NEXT, "recvmsg");
    const char *ip = getenv("EMULATOR_POD_IP");
    have_pod_ip = ip != NULL && inet_pton(AF_INET, ip, &pod_ip) == 1;
    const char *ports = getenv("EMULATOR_KEEP_PORTS");
    while (ports != NULL && *ports != '\0' && kept_count < MAX_KEPT) {
        char *end;
        long port = strtol(ports, &end, 10);
        if (end == ports) break;
        if (port > 0 && port < 65536) kept[kept_count++] = (unsigned short)port;
        ports = *end == ',' ? end + 1 : end;
    }
}

/* A call made before the constructor ran (from another library's constructor) finds its function then. */
#define REAL(name) (real_##name != NULL ? real_##name : (real_##name = (name##_fn)dlsym(RTLD_NEXT, #name)))

static int is_kept(unsigned short port) {
    for (int i = 0; i < kept_count; i++)
        if (kept[i] == port) return 1;
    return 0;
}

static int is_loopback_one(struct in_addr a) { return a.s_addr == htonl(INADDR_LOOPBACK); }

static int is_v4_mapped(const struct in6_addr *a, in_addr_t v4) {
    static const unsigned char prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a->s6_addr, prefix, 12) == 0 && memcmp(a->s6_addr + 12, &v4, 4) == 0;
}

static void map_v4(struct in6_addr *a, in_addr_t v4) {
    memset(a->s6_addr, 0, 10);
    a->s6_addr[10] = a->s6_addr[11] = 0xff;
    memcpy(a->s6_addr + 12, &v4, 4);
}

static int v6_only(int fd) {
    int only = 0;
    socklen_t len = sizeof(only);
    return getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, &len) == 0 && only;
}

static int socket_type(int fd) {
    int type = 0;
    socklen_t len = sizeof(type);
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 ? type : -1;
}

/* Whether the kernel knows a socket of `protocol` (TCP: listening; UDP: any) bound to the pod's IP (or
 * ::ffff:IP) and `port` (host order): 1, 0, or -1 when it cannot say. One exact lookup (SOCK_DIAG_BY_FAMILY
 * without NLM_F_DUMP), made as for a packet from 127.0.0.1 to the pod's IP and port: the kernel answers
 * with the socket that would take it (a pod's listener, or one on every address, which is not the pod's)
 * or ENOENT. A reply of a few hundred bytes: the buffer stays small (threads with small stacks, signal
 * handlers on an alternate stack). */
static int diag_has(int protocol, unsigned short port) {
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) return -1;
    struct {
        struct nlmsghdr header;
        struct inet_diag_req_v2 request;
    } ask;
    memset(&ask, 0, sizeof(ask));
    ask.header.nlmsg_len = sizeof(ask);
    ask.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    ask.header.nlmsg_flags = NLM_F_REQUEST;
    ask.request.sdiag_family = AF_INET;
    ask.request.sdiag_protocol = (unsigned char)protocol;
    ask.request.idiag_states = ~0u;
    ask.request.id.idiag_cookie[0] = ask.request.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    if (protocol == IPPROTO_TCP) {  /* (the local end is `src` for TCP, `dst` for UDP) */
        ask.request.id.idiag_src[0] = pod_ip.s_addr;
        ask.request.id.idiag_sport = htons(port);
        ask.request.id.idiag_dst[0] = htonl(INADDR_LOOPBACK);
    } else {
        ask.request.id.idiag_dst[0] = pod_ip.s_addr;
        ask.request.id.idiag_dport = htons(port);
        ask.request.id.idiag_src[0] = htonl(INADDR_LOOPBACK);
    }
    int found = -1;
    if (send(fd, &ask, sizeof(ask), 0) == (ssize_t)sizeof(ask)) {
        long buffer[128];  /* 1 KiB, aligned for the headers */
        ssize_t got = recv(fd, buffer, sizeof(buffer), MSG_TRUNC);
        const struct nlmsghdr *h = (const struct nlmsghdr *)buffer;
        if (got > 0 && (size_t)got <= sizeof(buffer) && NLMSG_OK(h, (size_t)got)) {
            if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
                found = ((const struct nlmsgerr *)NLMSG_DATA(h))->error == -ENOENT ? 0 : -1;
            } else if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY && h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
                const struct inet_diag_msg *sock = NLMSG_DATA(h);
                struct in6_addr mapped;
                map_v4(&mapped, pod_ip.s_addr);
                int listening = protocol != IPPROTO_TCP || sock->idiag_state == TCP_LISTEN_STATE;
                found = listening && sock->id.idiag_sport == htons(port) &&
                        (sock->idiag_family == AF_INET ? sock->id.idiag_src[0] == pod_ip.s_addr
                                                       : memcmp(sock->id.idiag_src, mapped.s6_addr, 16) == 0);
            }
        }
    }
    close(fd);
    return found;
}

/* The same from /proc/net, where sock_diag is not there: each address printed as the 32-bit words in
 * memory, in hex (so compared as they are, whatever the byte order). */
static int proc_has(int tcp, unsigned short port) {
    struct in6_addr mapped;
    map_v4(&mapped, pod_ip.s_addr);
    unsigned int want6[4];
    memcpy(want6, mapped.s6_addr, 16);
    const char *files[2] = {tcp ? "/proc/net/tcp" : "/proc/net/udp", tcp ? "/proc/net/tcp6" : "/proc/net/udp6"};
    for (int f = 0; f < 2; f++) {
        FILE *table = fopen(files[f], "re");
        if (table == NULL) continue;
        char line[512];
        int found = 0;
        if (fgets(line, sizeof(line), table) == NULL) { fclose(table); continue; }  /* the header */
        while (!found && fgets(line, sizeof(line), table) != NULL) {
            unsigned int words[4], local_port, state;
            if (f == 0) {
                if (sscanf(line, " %*d: %8X:%4X %*8X:%*4X %2X", &words[0], &local_port, &state) != 3) continue;
                found = words[0] == (unsigned int)pod_ip.s_addr;
            } else {
                if (sscanf(line, " %*d: %8X%8X%8X%8X:%4X %*32X:%*4X %2X", &words[0], &words[1], &words[2], &words[3],
                           &local_port, &state) != 6)
                    continue;
                found = memcmp(words, want6, 16) == 0;
            }
            found = found && local_port == port && (!tcp || state == TCP_LISTEN_STATE);
        }
        fclose(table);
        if (found) return 1;
    }
    return 0;
}

static int pod_has(int type, unsigned short port) {
    int saved = errno;
    int protocol = type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
    int found = diag_has(protocol, port);
    if (found < 0) found = proc_has(type == SOCK_STREAM, port);
    errno = saved;
    return found;
}

/* The size of the address in `out` that a call to a local destination should go to instead (and in
 * `sent_to`, which local address it was: 4, 6 or 7, as in `redirected`), or 0. */
static socklen_t local_destination(int fd, const struct sockaddr *addr, socklen_t len, struct sockaddr_storage *out,
                                   unsigned char *sent_to) {
    if (!have_pod_ip || addr == NULL || len < sizeof(struct sockaddr_in)) return 0;
    if (addr->sa_family == AF_INET) {
        struct sockaddr_in to;
        memcpy(&to, addr, sizeof(to));
        if (to.sin_port == 0 || !is_loopback_one(to.sin_addr)) return 0;
        int type = socket_type(fd);
        if ((type != SOCK_STREAM && type != SOCK_DGRAM) || !pod_has(type, ntohs(to.sin_port))) return 0;
        to.sin_addr = pod_ip;
        memcpy(out, &to, sizeof(to));
        *sent_to = 4;
        return sizeof(to);
    }
    if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 to;
        memcpy(&to, addr, sizeof(to));
        if (to.sin6_port == 0) return 0;
        int mapped = is_v4_mapped(&to.sin6_addr, htonl(INADDR_LOOPBACK));
        if (!IN6_IS_ADDR_LOOPBACK(&to.sin6_addr) && !mapped) return 0;
        int type = socket_type(fd);
        if ((type != SOCK_STREAM && type != SOCK_DGRAM) || v6_only(fd) || !pod_has(type, ntohs(to.sin6_port))) return 0;
        map_v4(&to.sin6_addr, pod_ip.s_addr);
        memcpy(out, &to, sizeof(to));
        *sent_to = mapped ? 7 : 6;
        return sizeof(to);
    }
    return 0;
}

static ino_t inode_of(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

static void remember(int fd, const struct sockaddr_storage *to, unsigned char sent_to) {
    if (fd < 0 || fd >= TRACKED_FDS || socket_type(fd) != SOCK_DGRAM) return;
    redirected[fd].inode = inode_of(fd);
    redirected[fd].port = to->ss_family == AF_INET ? ((const struct sockaddr_in *)to)->sin_port
                                                   : ((const struct sockaddr_in6 *)to)->sin6_port;
    redirected[fd].sent_to = sent_to;
}

/* A datagram from the pod's IP and a port this socket's datagrams to a local address went to: its
 * source becomes that local address again, written to `from` as the kernel writes one (cut to the
 * `room` the caller gave). The address's new length, or 0 when it is not one to change. `filled`: the
 * length the kernel said. */
static socklen_t restore_source(int fd, struct sockaddr *from, socklen_t room, socklen_t filled) {
    if (fd < 0 || fd >= TRACKED_FDS || redirected[fd].sent_to == 0 || from == NULL) return 0;
    struct sockaddr_storage got;
    memset(&got, 0, sizeof(got));
    socklen_t have = filled < room ? filled : room;
    memcpy(&got, from, have < sizeof(got) ? have : sizeof(got));
    int from_pod = 0;
    if (got.ss_family == AF_INET && have >= offsetof(struct sockaddr_in, sin_zero)) {  /* (family, port, address) */
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)&got;
        from_pod = v4->sin_addr.s_addr == pod_ip.s_addr && v4->sin_port == redirected[fd].port;
    } else if (got.ss_family == AF_INET6 && have >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&got;
        from_pod = is_v4_mapped(&v6->sin6_addr, pod_ip.s_addr) && v6->sin6_port == redirected[fd].port;
    }
    if (!from_pod || redirected[fd].inode != inode_of(fd)) return 0;
    socklen_t size;
    if (got.ss_family == AF_INET) {
        ((struct sockaddr_in *)&got)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        size = sizeof(struct sockaddr_in);
    } else {
        struct in6_addr *a = &((struct sockaddr_in6 *)&got)->sin6_addr;
        if (redirected[fd].sent_to == 6) *a = in6addr_loopback;
        else map_v4(a, htonl(INADDR_LOOPBACK));
        size = sizeof(struct sockaddr_in6);
    }
    memcpy(from, &got, room < size ? room : size);
    return size;
}

/* Whether another socket of this process, of `fd`'s type, is bound to the pod's IP (or ::ffff:IP) and
 * `port` (network order): a server binding both 127.0.0.1:P and a dual-stack [::1]:P. Only asked when a
 * loopback bind found the pod's address taken (a few thousand getsockname calls at most). */
static int own_socket_holds(int fd, in_port_t port) {
    int type = socket_type(fd);
    long limit = sysconf(_SC_OPEN_MAX);
    if (limit < 0 || limit > 4096) limit = 4096;
    for (int other = 0; other < limit; other++) {
        struct sockaddr_storage at;
        socklen_t len = sizeof(at);
        if (other == fd || getsockname(other, (struct sockaddr *)&at, &len) != 0) continue;
        int same = 0;
        if (at.ss_family == AF_INET) {
            const struct sockaddr_in *v4 = (const struct sockaddr_in *)&at;
            same = v4->sin_port == port && v4->sin_addr.s_addr == pod_ip.s_addr;
        } else if (at.ss_family == AF_INET6) {
            const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&at;
            same = v6->sin6_port == port && is_v4_mapped(&v6->sin6_addr, pod_ip.s_addr);
        }
        if (same && socket_type(other) == type) return 1;
    }
    return 0;
}

/* After a loopback bind found the pod's IP and port taken: whether to bind the address asked for instead
 * (only when this process holds the pod's; taken by another process, the port is taken, as in a pod). */
static int keep_own_loopback(int fd, in_port_t port) {
    if (errno != EADDRINUSE) return 0;
    int held = own_socket_holds(fd, port);
    errno = EADDRINUSE;
    return held;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    bind_fn real = REAL(bind);
    if (real == NULL) { errno = ENOSYS; return -1; }
    if (!have_pod_ip || addr == NULL || len < sizeof(struct sockaddr_in)) return real(fd, addr, len);
    int wildcard = 0, loopback = 0;
    if (addr->sa_family == AF_INET) {
        struct sockaddr_in at;
        memcpy(&at, addr, sizeof(at));
        wildcard = at.sin_addr.s_addr == htonl(INADDR_ANY);
        loopback = is_loopback_one(at.sin_addr);
        if (at.sin_port != 0 && (wildcard || loopback) && !is_kept(ntohs(at.sin_port))) {
            at.sin_addr = pod_ip;
            int saved = errno;
            int done = real(fd, (const struct sockaddr *)&at, sizeof(at));
            if (done == 0 || !loopback || !keep_own_loopback(fd, at.sin_port)) return done;
            errno = saved;
        }
    } else if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 at;
        memcpy(&at, addr, sizeof(at));
        const struct in6_addr *a = &at.sin6_addr;
        wildcard = IN6_IS_ADDR_UNSPECIFIED(a) || is_v4_mapped(a, htonl(INADDR_ANY));
        loopback = IN6_IS_ADDR_LOOPBACK(a) || is_v4_mapped(a, htonl(INADDR_LOOPBACK));
        if (at.sin6_port != 0 && (wildcard || loopback) && !is_kept(ntohs(at.sin6_port))) {
            if (v6_only(fd) && (IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LOOPBACK(a))) {
                /* It cannot hold the pod's IPv4 address, and pods have no IPv6 one: it goes where it neither
                 * takes the port from every other pod nor listens beyond loopback, [::1] on a port of its
                 * own (a server's IPv4 socket beside it takes the calls; [::1]:P from the pod still
                 * reaches that one, through connect below). */
                at.sin6_addr = in6addr_loopback;
                at.sin6_port = 0;
                return real(fd, (const struct sockaddr *)&at, sizeof(at));
            }
            if (v6_only(fd)) return real(fd, addr, len);  /* (a mapped address: the kernel refuses it, as asked) */
            map_v4(&at.sin6_addr, pod_ip.s_addr);
            int saved = errno;
            int done = real(fd, (const struct sockaddr *)&at, sizeof(at));
            if (done == 0 || !loopback || !keep_own_loopback(fd, at.sin6_port)) return done;
            errno = saved;
        }
    }
    return real(fd, addr, len);
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    connect_fn real = REAL(connect);
    if (real == NULL) { errno = ENOSYS; return -1; }
    struct sockaddr_storage to;
    unsigned char sent_to = 0;
    socklen_t size = local_destination(fd, addr, len, &to, &sent_to);
    if (size) {
        remember(fd, &to, sent_to);  /* (a UDP socket's replies: a resolver connects, then checks the source) */
        return real(fd, (const struct sockaddr *)&to, size);
    }
    return real(fd, addr, len);
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr, socklen_t len) {
    sendto_fn real = REAL(sendto);
    if (real == NULL) { errno = ENOSYS; return -1; }
    struct sockaddr_storage to;
    unsigned char sent_to = 0;
    socklen_t size = local_destination(fd, addr, len, &to, &sent_to);
    if (size) {
        remember(fd, &to, sent_to);
        return real(fd, buf, n, flags, (const struct sockaddr *)&to, size);
    }
    return real(fd, buf, n, flags, addr, len);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
    sendmsg_fn real = REAL(sendmsg);
    if (real == NULL) { errno = ENOSYS; return -1; }
    struct sockaddr_storage to;
    unsigned char sent_to = 0;
    socklen_t size = 0;
    if (msg != NULL && msg->msg_name != NULL && msg->msg_namelen > 0)  /* (the kernel reads no name of length 0) */
        size = local_destination(fd, (const struct sockaddr *)msg->msg_name, msg->msg_namelen, &to, &sent_to);
    if (size) {
        struct msghdr changed = *msg;
        changed.msg_name = &to;
        changed.msg_namelen = size;
        remember(fd, &to, sent_to);
        return real(fd, &changed, flags);
    }
    return real(fd, msg, flags);
}

ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *from, socklen_t *len) {
    recvfrom_fn real = REAL(recvfrom);
    if (real == NULL) { errno = ENOSYS; return -1; }
    socklen_t room = from != NULL && len != NULL ? *len : 0;  /* (the kernel reads no length without an address) */
    ssize_t got = real(fd, buf, n, flags, from, len);
    if (got >= 0 && from != NULL && len != NULL) {
        socklen_t size = restore_source(fd, from, room, *len);
        if (size) *len = size;
    }
    return got;
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags) {
    recvmsg_fn real = REAL(recvmsg);
    if (real == NULL) { errno = ENOSYS; return -1; }
    socklen_t room = msg != NULL ? msg->msg_namelen : 0;
    ssize_t got = real(fd, msg, flags);
    if (got >= 0 && msg != NULL && msg->msg_name != NULL) {
        socklen_t size = restore_source(fd, (struct sockaddr *)msg->msg_name, room, msg->msg_namelen);
        if (size) msg->msg_namelen = size;
    }
    return got;
}

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
 *           Not: port 0 (a client's ephemeral port, which may talk to the world), the ports listed in
 *           EMULATOR_KEEP_PORTS (declared with a hostPort: meant to be reached on the host), an IPv6-only
 *           socket (it cannot hold an IPv4 address).
 *   connect, sendto, sendmsg to 127.0.0.1:P, [::1]:P or [::ffff:127.0.0.1]:P
 *           -> the pod's IP, only when a socket of the same kind (TCP listening, or UDP) is bound to
 *           the pod's IP and port P (read from /proc/net): a container calling "localhost" reaches its
 *           pod's servers, and whatever else listens on this machine's 127.0.0.1 (the node's NodePorts,
 *           a resolver) stays reachable.
 *
 * Statically linked programs (most Go binaries) do not load it: they keep the host's addresses.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#define MAX_KEPT 64

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);
typedef ssize_t (*sendto_fn)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);

static struct in_addr pod_ip;
static int have_pod_ip;
static unsigned short kept[MAX_KEPT];
static int kept_count;
static bind_fn real_bind;
static connect_fn real_connect;
static sendto_fn real_sendto;
static sendmsg_fn real_sendmsg;

static void setup(void) __attribute__((constructor));

static void setup(void) {
    real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    real_connect = (connect_fn)dlsym(RTLD_NEXT, "connect");
    real_sendto = (sendto_fn)dlsym(RTLD_NEXT, "sendto");
    real_sendmsg = (sendmsg_fn)dlsym(RTLD_NEXT, "sendmsg");
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

static void map_pod_ip(struct in6_addr *a) {
    memset(a->s6_addr, 0, 10);
    a->s6_addr[10] = a->s6_addr[11] = 0xff;
    memcpy(a->s6_addr + 12, &pod_ip.s_addr, 4);
}

static int v6_only(int fd) {
    int only = 0;
    socklen_t len = sizeof(only);
    return getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, &len) == 0 && only;
}

/* Whether a socket of `fd`'s type is bound to the pod's IP and `port` (host order): TCP listening,
 * or any UDP socket. /proc/net prints each address as the 32-bit words in memory, in hex. */
static int pod_has(int fd, unsigned short port) {
    int type = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) return 0;
    if (type != SOCK_STREAM && type != SOCK_DGRAM) return 0;
    int tcp = type == SOCK_STREAM;
    struct in6_addr mapped;
    map_pod_ip(&mapped);
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
            found = found && local_port == port && (!tcp || state == 0x0A /* TCP_LISTEN */);
        }
        fclose(table);
        if (found) return 1;
    }
    return 0;
}

/* The size of the address in `out` that a call to a local destination should go to instead, or 0. */
static socklen_t local_destination(int fd, const struct sockaddr *addr, socklen_t len, struct sockaddr_storage *out) {
    if (!have_pod_ip || addr == NULL) return 0;
    if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in to;
        memcpy(&to, addr, sizeof(to));
        if (to.sin_port == 0 || !is_loopback_one(to.sin_addr) || !pod_has(fd, ntohs(to.sin_port))) return 0;
        to.sin_addr = pod_ip;
        memcpy(out, &to, sizeof(to));
        return sizeof(to);
    }
    if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 to;
        memcpy(&to, addr, sizeof(to));
        if (to.sin6_port == 0) return 0;
        if (!IN6_IS_ADDR_LOOPBACK(&to.sin6_addr) && !is_v4_mapped(&to.sin6_addr, htonl(INADDR_LOOPBACK))) return 0;
        if (v6_only(fd) || !pod_has(fd, ntohs(to.sin6_port))) return 0;
        map_pod_ip(&to.sin6_addr);
        memcpy(out, &to, sizeof(to));
        return sizeof(to);
    }
    return 0;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    bind_fn real = REAL(bind);
    if (real == NULL) { errno = ENOSYS; return -1; }
    if (have_pod_ip && addr != NULL && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in at;
        memcpy(&at, addr, sizeof(at));
        if (at.sin_port != 0 && !is_kept(ntohs(at.sin_port)) &&
            (at.sin_addr.s_addr == htonl(INADDR_ANY) || is_loopback_one(at.sin_addr))) {
            at.sin_addr = pod_ip;
            return real(fd, (const struct sockaddr *)&at, sizeof(at));
        }
    } else if (have_pod_ip && addr != NULL && addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 at;
        memcpy(&at, addr, sizeof(at));
        const struct in6_addr *a = &at.sin6_addr;
        int local = IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LOOPBACK(a) || is_v4_mapped(a, htonl(INADDR_ANY)) ||
                    is_v4_mapped(a, htonl(INADDR_LOOPBACK));
        if (at.sin6_port != 0 && local && !is_kept(ntohs(at.sin6_port)) && !v6_only(fd)) {
            map_pod_ip(&at.sin6_addr);
            return real(fd, (const struct sockaddr *)&at, sizeof(at));
        }
    }
    return real(fd, addr, len);
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    connect_fn real = REAL(connect);
    if (real == NULL) { errno = ENOSYS; return -1; }
    struct sockaddr_storage to;
    socklen_t size = local_destination(fd, addr, len, &to);
    if (size) return real(fd, (const struct sockaddr *)&to, size);
    return real(fd, addr, len);
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr, socklen_t len) {
    sendto_fn real = REAL(sendto);
    if (real == NULL) { errno = ENOSYS; return -1; }
    struct sockaddr_storage to;
    socklen_t size = local_destination(fd, addr, len, &to);
    if (size) return real(fd, buf, n, flags, (const struct sockaddr *)&to, size);
    return real(fd, buf, n, flags, addr, len);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
    sendmsg_fn real = REAL(sendmsg);
    if (real == NULL) { errno = ENOSYS; return -1; }
    struct sockaddr_storage to;
    socklen_t size = msg != NULL ? local_destination(fd, (const struct sockaddr *)msg->msg_name, msg->msg_namelen, &to) : 0;
    if (size) {
        struct msghdr changed = *msg;
        changed.msg_name = &to;
        changed.msg_namelen = size;
        return real(fd, &changed, flags);
    }
    return real(fd, msg, flags);
}

/*
 * Addresses as text: "host:port", "[v6]:port" and "unix:/path" in both
 * directions.  Servers take their address as one string, clients as -b/-p,
 * and everything the library shows a person goes through evc_addr_format.
 *
 * Parsing is strict on purpose: a port must be plain decimal digits and
 * nothing may follow it, so "80x", "+80" or " 80" never quietly become a
 * different address than the one the user meant.  A v6 literal in
 * "host:port" text must be bracketed, because "::1:80" is ambiguous; as a
 * bare host (evc_addr_from_host_port) it need not be.  An abstract unix
 * socket (Linux) is written "unix:@name", the convention of ss(8) and
 * /proc/net/unix, and parsed back the same way.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#define UNIX_PREFIX "unix:"
#define UNIX_PREFIX_LEN (sizeof UNIX_PREFIX - 1)
#define PORT_MAX 65535
/* Longest host we hand to the resolver (RFC 1035 names are at most 253). */
#define HOST_MAX 255

/* Fills a sockaddr_un from the text after "unix:"; a leading '@' names an
 * abstract socket (no NUL terminator in the address, length counts exactly). */
static int unix_from_path(const char *path, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)ss;
    size_t n = strlen(path);
    if (n == 0 || (path[0] == '@' && n == 1))
        return -EINVAL;
    /* A pathname needs room for its NUL; an abstract name has none (its '@'
     * becomes the leading NUL), so it may fill sun_path exactly. */
    if (path[0] == '@' ? n > sizeof sun->sun_path : n >= sizeof sun->sun_path)
        return -EINVAL;
    memset(ss, 0, sizeof *ss);
    sun->sun_family = AF_UNIX;
    if (path[0] == '@') {
        memcpy(sun->sun_path + 1, path + 1, n - 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        memcpy(sun->sun_path, path, n + 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    return 0;
}

/* getaddrinfo's failures, in errno terms: "no such host" covers every way a
 * name can fail to resolve, including a resolver that is down right now. */
static int gai_to_errno(int gai, int saved_errno)
{
    switch (gai) {
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return saved_errno > 0 ? -saved_errno : -ENOENT;
    case EAI_SERVICE:
    case EAI_BADFLAGS:
        return -EINVAL;
    default:
        return -ENOENT;
    }
}

/* evc_addr_from_host_port; with numeric_only, a host that is a name gives
 * -EAGAIN instead of a question to the name server. */
static int from_host_port(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len,
                          bool numeric_only)
{
    if (!host || !ss || !len)
        return -EINVAL;
    if (strncmp(host, UNIX_PREFIX, UNIX_PREFIX_LEN) == 0)
        return unix_from_path(host + UNIX_PREFIX_LEN, ss, len);
    if (port < 0 || port > PORT_MAX)
        return -EINVAL;

    /* "[::1]" is accepted too: people copy hosts out of "[v6]:port" text. */
    char name[HOST_MAX + 1];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n == 0 || n > HOST_MAX || memchr(host, '[', n) || memchr(host, ']', n))
        return -EINVAL;
    memcpy(name, host, n);
    name[n] = '\0';

    char service[8];
    snprintf(service, sizeof service, "%d", port);
    /* SOCK_STREAM only to get one entry per address instead of one per socket
     * type; the address itself serves datagram sockets just as well. */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | (numeric_only ? AI_NUMERICHOST : 0)};
    struct addrinfo *res = NULL;
    errno = 0;
    int gai = getaddrinfo(name, service, &hints, &res);
    if (gai == EAI_NONAME && numeric_only)
        return -EAGAIN;
    if (gai != 0)
        return gai_to_errno(gai, errno);
    int rc = -ENOENT;
    if (res && res->ai_addrlen <= sizeof *ss) {
        memset(ss, 0, sizeof *ss);
        memcpy(ss, res->ai_addr, res->ai_addrlen);
        *len = res->ai_addrlen;
        rc = 0;
    }
    freeaddrinfo(res);
    return rc;
}

int evc_addr_from_host_port(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    return from_host_port(host, port, ss, len, false);
}

/* Reads a decimal port that must end the text.  0..65535 or -EINVAL. */
static int parse_port(const char *text)
{
    if (*text == '\0')
        return -EINVAL;
    long port = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        port = port * 10 + (*p - '0');
        if (port > PORT_MAX)
            return -EINVAL;
    }
    return (int)port;
}

/* evc_addr_parse; numeric_only as for from_host_port. */
static int parse(const char *text, struct sockaddr_storage *ss, socklen_t *len, bool numeric_only)
{
    if (!text || !ss || !len)
        return -EINVAL;
    if (strncmp(text, UNIX_PREFIX, UNIX_PREFIX_LEN) == 0)
        return unix_from_path(text + UNIX_PREFIX_LEN, ss, len);

    const char *host, *port_text;
    size_t host_len;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return -EINVAL;
        host = text + 1;
        host_len = (size_t)(close - host);
        port_text = close + 2;
    } else {
        const char *colon = strchr(text, ':');
        /* A second colon means an unbracketed v6 literal: refuse to guess. */
        if (!colon || strchr(colon + 1, ':'))
            return -EINVAL;
        host = text;
        host_len = (size_t)(colon - text);
        port_text = colon + 1;
    }
    if (host_len == 0 || host_len > HOST_MAX)
        return -EINVAL;
    int port = parse_port(port_text);
    if (port < 0)
        return port;
    char name[HOST_MAX + 1];
    memcpy(name, host, host_len);
    name[host_len] = '\0';
    return from_host_port(name, port, ss, len, numeric_only);
}

int evc_addr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
    return parse(text, ss, len, false);
}

int evc__addr_parse_numeric(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
    return parse(text, ss, len, true);
}

/* The text of a unix address: "unix:/path", "unix:@name" or "unix:" when unnamed. */
static int format_unix(const struct sockaddr *sa, socklen_t len, char *out, size_t cap)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    size_t path_len = len > off ? (size_t)len - off : 0;
    if (path_len > sizeof sun->sun_path)
        path_len = sizeof sun->sun_path;
    size_t n = UNIX_PREFIX_LEN;
    memcpy(out, UNIX_PREFIX, n);
    if (path_len > 0 && sun->sun_path[0] == '\0') {
        /* Abstract: every byte of the length is the name; show NULs as '@' like ss(8). */
        out[n++] = '@';
        for (size_t i = 1; i < path_len && n + 1 < cap; i++)
            out[n++] = sun->sun_path[i] ? sun->sun_path[i] : '@';
    } else {
        size_t plen = strnlen(sun->sun_path, path_len);
        memcpy(out + n, sun->sun_path, plen);
        n += plen;
    }
    out[n] = '\0';
    return (int)n;
}

int evc_addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t cap)
{
    if (!sa || !buf || len < sizeof(sa_family_t))
        return -EINVAL;
    /* Built in a scratch buffer big enough for any family, then copied only if
     * it fits, so a short buf is never written past cap. */
    char text[EVC_ADDRSTRLEN + 16];
    int n;
    switch (sa->sa_family) {
    case AF_INET: {
        if (len < sizeof(struct sockaddr_in))
            return -EINVAL;
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
        n = snprintf(text, sizeof text, "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
        break;
    }
    case AF_INET6: {
        if (len < sizeof(struct sockaddr_in6))
            return -EINVAL;
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
        /* A link-local address is useless without its interface: keep the scope
         * as a number, which getaddrinfo reads back. */
        if (sin6->sin6_scope_id != 0)
            n = snprintf(text, sizeof text, "[%s%%%u]:%u", ip, (unsigned)sin6->sin6_scope_id,
                         (unsigned)ntohs(sin6->sin6_port));
        else
            n = snprintf(text, sizeof text, "[%s]:%u", ip, (unsigned)ntohs(sin6->sin6_port));
        break;
    }
    case AF_UNIX:
        n = format_unix(sa, len, text, sizeof text);
        break;
    default:
        return -EAFNOSUPPORT;
    }
    if (n < 0 || (size_t)n >= cap) {
        if (cap > 0)
            buf[0] = '\0';
        return -ENOSPC;
    }
    memcpy(buf, text, (size_t)n + 1);
    return n;
}

/*
 * The server layer: the asyncore listener idiom as one call.  A server is a
 * listening dispatcher bound to an address given as text; each accepted
 * connection is handed to the user, who typically makes a chat over it.
 * Accepting, shedding connections under fd exhaustion and pausing after
 * accept errors are the dispatcher's default handle_accept; the server adds
 * naming, binding, unix-socket path hygiene and the connection caps (counted
 * in server_limits.c).
 */
#include "server_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct evc_server {
    evc_dispatcher *disp;
    const struct evc_server_ops *ops;
    void *data;
    char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* to unlink; "" if none */
    bool stillborn;     /* constructor failed: no user callbacks */
    evc_server_limits *limits;   /* connections counted for the caps (server_limits.c) */
    unsigned max_connections, max_per_peer;   /* the caps; 0: none */
};

/* At the total cap the listener is not readable: the kernel's backlog holds
 * the next connections until one ends (evc__server_limits_changed). */
static bool server_readable(evc_dispatcher *d, void *data)
{
    evc_server *s = data;
    (void)d;
    return !evc__limits_full(s->limits);
}

void evc__server_limits_changed(evc_server *s)
{
    evc_dispatcher_update(s->disp);
}

static void server_accepted(evc_dispatcher *d, int fd, const struct sockaddr *sa, socklen_t len,
                            void *data)
{
    evc_server *s = data;
    /* Over the per-peer cap: the listener cannot skip one client in its queue,
     * so that peer's connection is taken and closed at once (it sees the end),
     * and everybody else is served. */
    if (evc__limits_peer_full(s->limits, sa, len)) {
        close(fd);
        return;
    }
    if (!s->ops || !s->ops->handle_accepted) {
        close(fd);
        return;
    }
    evc_loop_entry *entry = evc__dispatcher_entry(d);
    evc__registry_claim_begin(entry, fd);
    s->ops->handle_accepted(s, fd, sa, len, s->data);
    evc_dispatcher *adopter = evc__registry_claim_end(entry);
    /* A connection that could not be counted (no memory) is closed rather than
     * let past the caps. */
    if (adopter && evc__limits_count(s->limits, adopter, sa, len) == -ENOMEM)
        evc_dispatcher_close(adopter);
}

static void server_error(evc_dispatcher *d, int err, void *data)
{
    evc_server *s = data;
    (void)d;
    /* A listener keeps serving through errors unless the user decides otherwise. */
    if (s->ops && s->ops->handle_error)
        s->ops->handle_error(s, err, s->data);
}

static void forget_unix_path(evc_server *s)
{
    if (s->unix_path[0] != '\0') {
        unlink(s->unix_path);
        s->unix_path[0] = '\0';
    }
}

static void server_on_destroy(evc_dispatcher *d, void *data)
{
    evc_server *s = data;
    (void)d;
    forget_unix_path(s);   /* evc_close_all closes without evc_server_close */
    if (!s->stillborn && s->ops && s->ops->on_destroy)
        s->ops->on_destroy(s, s->data);
    evc__limits_server_gone(s->limits);
    free(s);
}

static const struct evc_dispatcher_ops server_dispatcher_ops = {
    .readable = server_readable,
    .handle_accepted = server_accepted,
    .handle_error = server_error,
    .on_destroy = server_on_destroy,
};

/*
 * A unix socket path left behind by a dead server would make bind fail with
 * EADDRINUSE forever.  Remove it only when it is a socket nobody listens on,
 * so a live server's path is never stolen.
 */
void evc__remove_stale_unix_socket(const struct sockaddr_un *sun, socklen_t len)
{
    struct stat st;
    if (sun->sun_path[0] == '\0' || stat(sun->sun_path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return;
    /* Non-blocking: a live server with a full backlog answers EAGAIN at once,
     * where a blocking probe would wait for it to accept. */
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return;
    if (connect(probe, (const struct sockaddr *)sun, len) < 0 && errno == ECONNREFUSED)
        unlink(sun->sun_path);
    close(probe);
}

static int start_listening(evc_server *s, const struct sockaddr_storage *ss, socklen_t len,
                           int backlog)
{
    int rc = evc_dispatcher_create_socket(s->disp, ss->ss_family, SOCK_STREAM);
    if (rc < 0)
        return rc;
    if (ss->ss_family == AF_UNIX) {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)ss;
        evc__remove_stale_unix_socket(sun, len);
    } else if ((rc = evc_dispatcher_set_reuse_addr(s->disp)) < 0) {
        return rc;
    }
    if ((rc = evc_dispatcher_bind(s->disp, (const struct sockaddr *)ss, len)) < 0)
        return rc;
    if (ss->ss_family == AF_UNIX) {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)ss;
        if (sun->sun_path[0] != '\0')
            memcpy(s->unix_path, sun->sun_path, sizeof s->unix_path);
    }
    return evc_dispatcher_listen(s->disp, backlog > 0 ? backlog : SOMAXCONN);
}

evc_server *evc_server_new(struct ev_loop *loop, const char *addr, int backlog,
                           const struct evc_server_ops *ops, void *data)
{
    if (!loop || !addr) {
        errno = EINVAL;
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = evc_addr_parse(addr, &ss, &len);
    if (rc < 0) {
        errno = -rc;
        return NULL;
    }
    evc_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->ops = ops;
    s->data = data;
    s->limits = evc__limits_new(s);
    s->disp = s->limits ? evc_dispatcher_new(loop, &server_dispatcher_ops, s) : NULL;
    if (!s->disp) {
        if (s->limits)
            evc__limits_server_gone(s->limits);
        free(s);
        errno = ENOMEM;
        return NULL;
    }
    rc = start_listening(s, &ss, len, backlog);
    if (rc < 0) {
        /* The dispatcher frees the server from the loop; the user hears nothing. */
        s->stillborn = true;
        forget_unix_path(s);
        evc_dispatcher_close(s->disp);
        errno = -rc;
        return NULL;
    }
    return s;
}

int evc_server_address(const evc_server *s, char *buf, size_t cap)
{
    int fd = evc_dispatcher_fd(s->disp);
    if (fd < 0)
        return -EBADF;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    return evc_addr_format((const struct sockaddr *)&ss, len, buf, cap);
}

struct ev_loop *evc_server_loop(const evc_server *s)
{
    return evc_dispatcher_loop(s->disp);
}

evc_dispatcher *evc_server_dispatcher(evc_server *s)
{
    return s->disp;
}

void evc_server_close(evc_server *s)
{
    if (!s || evc_dispatcher_closed(s->disp))
        return;
    forget_unix_path(s);
    evc_dispatcher_close(s->disp);
}

int evc_server_set_max_connections(evc_server *s, unsigned n)
{
    if (!s)
        return -EINVAL;
    evc__limits_set(s->limits, n, s->max_per_peer);
    s->max_connections = n;
    evc_dispatcher_update(s->disp);
    return 0;
}

int evc_server_set_max_per_peer(evc_server *s, unsigned n)
{
    if (!s)
        return -EINVAL;
    evc__limits_set(s->limits, s->max_connections, n);
    s->max_per_peer = n;
    return 0;
}

unsigned evc_server_connections(const evc_server *s)
{
    return evc__limits_total(s->limits);
}

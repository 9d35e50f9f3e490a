/*
 * echo_server: the select()-based echo server evchat grew from, written on
 * the dispatcher alone (no chat layer), the way asyncore's documentation
 * teaches it.
 *
 * A dispatcher is one fd plus two predicates.  Each time round the loop
 * asyncore asks every dispatcher readable() and writable() and puts its fd
 * in select()'s read and write sets accordingly; here libev does the
 * watching and the predicates are asked again after every callback, so the
 * idea is the same without the polling:
 *
 *   - the listening dispatcher (create_socket, set_reuse_addr, bind, listen)
 *     accepts; the default handle_accept calls handle_accepted with each new
 *     fd, which gets a dispatcher of its own;
 *   - a client's handle_read recv()s into its pending buffer, and writable()
 *     is true exactly while that buffer holds bytes, so handle_write runs
 *     only when there is something to send, and the server never spins;
 *   - readable() is false while the buffer (PENDING_MAX bytes) is full, so a
 *     client that sends but never reads cannot make the server's memory grow;
 *   - a line "BYE" (any case, with "\n" or "\r\n"), or a message read in one
 *     piece that is nothing but "BYE", closes that client as the Python echo
 *     servers do: BYE itself is not echoed, what came before it is sent
 *     first, what comes after it is dropped.  So that no byte of BYE goes
 *     out, the start of a line that could still become "BYE" waits in the
 *     buffer until its line is decided.  When a client closes its side, what
 *     is pending is still sent.
 *
 * With -w N the same dispatchers serve on N loops on N threads (-W N: in N
 * processes); the listening is then the library's (evc_workers).
 *
 * Try it:   examples/echo_server &   then   printf 'hi\nbye\n' | examples/echo_client
 * Also:     examples/echo_server -b unix:/tmp/echo.sock
 * TLS:      examples/echo_server --cert FILE --key FILE (examples/README.md)
 */
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#define PENDING_MAX (64 * 1024)   /* a client's buffer: reading stops when it is full */
#define IDLE_TIMEOUT 300.0        /* seconds without I/O before a client is closed */

struct client {
    char *pending;     /* PENDING_MAX bytes: received, not yet echoed; NULL while idle */
    size_t len;
    char line[4];      /* the first bytes of the current line, to spot "BYE" */
    size_t line_len;   /* bytes of the current line seen (stops counting at 5) */
    size_t held;       /* the end of pending that may yet be a BYE line: not sent yet */
    bool finishing;    /* BYE or the peer's EOF: send what is pending, then close */
};

/* Whether the line seen so far ("b", "By", "BYE", "bye\r") may still become "BYE". */
static bool may_become_bye(const struct client *c)
{
    size_t k = c->line_len;
    if (k == 0 || k > sizeof c->line)
        return false;
    if (k == 4 && c->line[3] != '\r')
        return false;
    return strncasecmp(c->line, "bye", k < 3 ? k : 3) == 0;
}

/* Scans the n bytes just received at p (the end of pending) for a line "BYE"
 * (trimmed of \r\n, any case), or a message that is nothing but "BYE".
 * Returns how many of them to keep: those before the BYE, or all of them;
 * c->held says how many kept bytes at the end must wait for their line. */
static size_t scan_for_bye(struct client *c, const char *p, size_t n)
{
    bool at_line_start = c->line_len == 0;
    size_t before = c->held;   /* bytes of the current line received earlier */
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            size_t seen = c->line_len, k = seen;
            if (k >= 1 && k <= sizeof c->line && c->line[k - 1] == '\r')
                k--;
            c->line_len = 0;
            c->held = 0;
            if (k == 3 && strncasecmp(c->line, "bye", 3) == 0) {
                /* Drop the whole line: its start held back from earlier
                 * reads, and what of it arrived in this one. */
                c->finishing = true;
                c->len -= before;
                return i - (seen - before);
            }
            before = 0;
        } else {
            if (c->line_len < sizeof c->line)
                c->line[c->line_len++] = p[i];
            else
                c->line_len = sizeof c->line + 1;   /* too long to be BYE */
            c->held = may_become_bye(c) ? c->line_len : 0;
            if (c->held == 0)
                before = 0;
        }
    }
    size_t k = n;
    while (k > 0 && (p[k - 1] == '\r' || p[k - 1] == '\n'))
        k--;
    if (at_line_start && k == 3 && strncasecmp(p, "bye", 3) == 0) {
        c->finishing = true;
        c->held = 0;
        return 0;
    }
    return n;
}

static bool client_readable(evc_dispatcher *d, void *data)
{
    (void)d;
    struct client *c = data;
    return !c->finishing && c->len < PENDING_MAX;
}

static bool client_writable(evc_dispatcher *d, void *data)
{
    (void)d;
    struct client *c = data;
    return c->len > c->held;
}

static void client_read(evc_dispatcher *d, void *data)
{
    struct client *c = data;
    if (!c->pending && !(c->pending = malloc(PENDING_MAX))) {
        evc_dispatcher_close(d);
        return;
    }
    ssize_t n = evc_dispatcher_recv(d, c->pending + c->len, PENDING_MAX - c->len);
    if (n <= 0)
        return;   /* nothing yet, or EOF/error: handle_close or handle_error has run */
    size_t keep = scan_for_bye(c, c->pending + c->len, (size_t)n);
    c->len += keep;
    if (c->finishing && c->len == 0)
        evc_dispatcher_close(d);   /* BYE with nothing before it to send */
}

static void client_write(evc_dispatcher *d, void *data)
{
    struct client *c = data;
    ssize_t n = evc_dispatcher_send(d, c->pending, c->len - c->held);
    if (n <= 0)
        return;   /* the socket is full, or the peer is gone and we are closed */
    c->len -= (size_t)n;
    memmove(c->pending, c->pending + n, c->len);
    if (c->len > 0)
        return;
    /* Idle clients hold no buffer: ten thousand of them cost little. */
    free(c->pending);
    c->pending = NULL;
    if (c->finishing)
        evc_dispatcher_close(d);
}

/* The peer closed its side (or reset it): echo what is pending first, a line
 * start held back as a possible BYE too, since no "\n" will make it one.  If
 * it comes again (a send found the peer gone), give up. */
static void client_close(evc_dispatcher *d, void *data)
{
    struct client *c = data;
    c->held = 0;
    if (c->finishing || c->len == 0)
        evc_dispatcher_close(d);
    c->finishing = true;
}

static void client_destroy(evc_dispatcher *d, void *data)
{
    (void)d;
    struct client *c = data;
    free(c->pending);
    free(c);
}

static const struct evc_dispatcher_ops client_ops = {
    .readable = client_readable,
    .writable = client_writable,
    .handle_read = client_read,
    .handle_write = client_write,
    .handle_close = client_close,
    .on_destroy = client_destroy,
};

/* ---- With --cert/--key: TLS lives in the chat layer (evc_tls(3)), so there
 * each connection is the same echo as a chat with no terminator, whose
 * watermarks do what readable() does above. */
static void tls_echo(evc_chat *chat, const char *p, size_t n, void *data)
{
    struct client *c = data;
    if (c->finishing)
        return;   /* bytes after BYE are dropped */
    size_t keep = scan_for_bye(c, p, n);
    if (evc_chat_push(chat, p, keep) < 0) {
        evc_chat_close(chat);
        return;
    }
    if (c->finishing)
        evc_chat_close_when_done(chat);
}

static void tls_client_destroy(evc_chat *chat, void *data)
{
    (void)chat;
    free(data);
}

static const struct evc_chat_ops tls_client_ops = {
    .collect_incoming_data = tls_echo,
    .on_destroy = tls_client_destroy,
};

static void accept_tls_client(struct ev_loop *loop, int fd)
{
    struct client *c = calloc(1, sizeof *c);
    evc_chat *chat = c ? evc_chat_new(loop, fd, &tls_client_ops, c) : NULL;
    if (!chat) {
        free(c);
        close(fd);
        return;
    }
    if (example_tls_start(chat, NULL) < 0)
        evc_chat_close(chat);
}

/* A client's dispatcher on loop (the listener's, or a worker's with -w/-W). */
static void start_client(struct ev_loop *loop, int fd)
{
    if (example_tls_enabled()) {
        accept_tls_client(loop, fd);
        return;
    }
    struct client *c = calloc(1, sizeof *c);
    evc_dispatcher *d = c ? evc_dispatcher_new(loop, &client_ops, c) : NULL;
    if (!d) {
        free(c);
        close(fd);
        return;
    }
    if (evc_dispatcher_set_socket(d, fd) < 0) {
        close(fd);
        evc_dispatcher_close(d);   /* on_destroy frees c */
        return;
    }
    /* Bytes, not frames: no frame deadline, but a client that went quiet is
     * closed (handle_timeout NULL: close). */
    evc_dispatcher_set_timeout(d, IDLE_TIMEOUT);
}

static void accept_client(evc_dispatcher *listener, int fd, const struct sockaddr *peer,
                          socklen_t len, void *data)
{
    (void)peer, (void)len, (void)data;
    start_client(evc_dispatcher_loop(listener), fd);
}

/* With -w N / -W N the library listens, one listener per worker loop, and hands
 * each worker its connections; the client dispatchers are the same. */
static void worker_accepted(struct ev_loop *loop, int fd, const struct sockaddr *peer,
                            socklen_t len, void *data)
{
    (void)peer, (void)len, (void)data;
    start_client(loop, fd);
}

static const struct evc_worker_ops worker_ops = {
    .handle_accepted = worker_accepted,
};

/* An accept error: the library has paused the listener for a moment (longer
 * while the error lasts) and retries; a client's trouble or a bad minute of
 * the kernel must not stop the server, so it only says so. */
static void listener_error(evc_dispatcher *d, int err, void *data)
{
    (void)d, (void)data;
    fprintf(stderr, "echo_server: accept: %s\n", evc_strerror(err));
}

static const struct evc_dispatcher_ops listener_ops = {
    .handle_accepted = accept_client,
    .handle_error = listener_error,
};

/* socket, SO_REUSEADDR (TCP), bind, listen: asyncore's four listener calls. */
static int start_listening(evc_dispatcher *d, const struct sockaddr_storage *ss, socklen_t len)
{
    int rc = evc_dispatcher_create_socket(d, ss->ss_family, SOCK_STREAM);
    if (rc == 0 && ss->ss_family != AF_UNIX)
        rc = evc_dispatcher_set_reuse_addr(d);
    if (rc == 0)
        rc = evc_dispatcher_bind(d, (const struct sockaddr *)ss, len);
    if (rc == 0)
        rc = evc_dispatcher_listen(d, SOMAXCONN);
    return rc;
}

int main(int argc, char **argv)
{
    example_opts opts;
    example_tls_offer();   /* --cert/--key, --tls */
    example_parse(&opts, argc, argv, "127.0.0.1", 5556, "");
    if (opts.workers_set)
        return example_serve_workers(&opts, &worker_ops, NULL);
    struct sockaddr_storage ss;
    socklen_t len;
    example_resolve(&opts, &ss, &len);

    struct ev_loop *loop = ev_default_loop(0);
    int status = 0;
    evc_dispatcher *listener = evc_dispatcher_new(loop, &listener_ops, NULL);
    int rc = listener ? start_listening(listener, &ss, len) : -ENOMEM;
    if (rc < 0) {
        char where[EVC_ADDRSTRLEN + 16];
        example_address(&opts, where, sizeof where);
        fprintf(stderr, "echo_server: cannot listen on %s: %s\n", where, evc_strerror(rc));
        status = 1;
        goto out;
    }
    ev_signal stop[2];
    example_stop_on_signals(loop, stop);   /* before the line that says we are up */
    example_announce(evc_dispatcher_fd(listener));
    ev_run(loop, 0);

out:
    evc_close_all(loop);
    ev_run(loop, 0);   /* runs the deferred destroys */
    ev_loop_destroy(loop);
    example_tls_cleanup();
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&ss;
    if (status == 0 && ss.ss_family == AF_UNIX && sun->sun_path[0] != '\0')
        unlink(sun->sun_path);
    return status;
}

/*
 * echo_client: sends the lines typed on stdin to echo_server and prints what
 * comes back, reading the keyboard and the socket in one loop, no threads.
 *
 * Both fds are dispatchers.  Stdin is adopted with evc_dispatcher_set_socket,
 * which takes any fd (asyncore's file_dispatcher); the socket connects with
 * evc_dispatcher_connect.  They meet in one bounded buffer: stdin is
 * readable() only while the buffer has room, the socket is writable() only
 * while it has bytes.  Because stdin's reads change the socket's answer
 * outside the socket's own callbacks, the stdin side calls
 * evc_dispatcher_update on the socket to have it asked again.
 *
 * A line "BYE" (any case) is sent, stdin is no longer read, and the client
 * ends when the server closes (it does not echo BYE).  At the end of stdin the
 * client sends what is left and ends once every byte has come back.
 * Exit status: 0 after a normal end, 1 if it cannot connect or the
 * connection fails.
 *
 * Try it:   examples/echo_client -p 5556    (then type; "bye" or Ctrl-D ends)
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define OUT_MAX (64 * 1024)   /* typed but not yet sent */

struct client {
    evc_dispatcher *sock;    /* NULL once destroyed */
    evc_dispatcher *input;   /* stdin; NULL once destroyed */
    const char *peer;        /* for messages */
    char out[OUT_MAX];
    size_t out_len;
    uint64_t sent, echoed;
    char line[4];            /* the first bytes of the current stdin line */
    size_t line_len;         /* bytes of that line seen (stops counting at 5) */
    bool connected, input_done, bye;
    int status;
};

/* Everything typed went out and came back: done (after BYE the server ends it).
 * Not before the connection is made, so a failed connect is still reported. */
static void finish_if_done(struct client *c)
{
    if (c->connected && c->input_done && !c->bye && c->out_len == 0 && c->echoed >= c->sent &&
        c->sock)
        evc_dispatcher_close(c->sock);
}

/* --- the socket ---------------------------------------------------- */

static bool sock_writable(evc_dispatcher *d, void *data)
{
    (void)d;
    struct client *c = data;
    return c->out_len > 0;
}

static void sock_connected(evc_dispatcher *d, void *data)
{
    (void)d;
    struct client *c = data;
    c->connected = true;
    finish_if_done(c);
}

static void sock_write(evc_dispatcher *d, void *data)
{
    struct client *c = data;
    ssize_t n = evc_dispatcher_send(d, c->out, c->out_len);
    if (n <= 0)
        return;
    c->out_len -= (size_t)n;
    memmove(c->out, c->out + n, c->out_len);
    c->sent += (uint64_t)n;
    if (c->input)
        evc_dispatcher_update(c->input);   /* there is room to read stdin again */
}

static void sock_read(evc_dispatcher *d, void *data)
{
    struct client *c = data;
    char reply[4096];
    ssize_t n = evc_dispatcher_recv(d, reply, sizeof reply);
    if (n <= 0)
        return;   /* nothing yet, or the server closed: handle_close has run */
    fwrite(reply, 1, (size_t)n, stdout);
    fflush(stdout);
    c->echoed += (uint64_t)n;
    finish_if_done(c);
}

static void sock_error(evc_dispatcher *d, int err, void *data)
{
    struct client *c = data;
    if (c->connected)
        fprintf(stderr, "echo_client: %s: %s\n", c->peer, evc_strerror(err));
    else
        fprintf(stderr, "echo_client: cannot connect to %s: %s\n", c->peer, evc_strerror(err));
    c->status = 1;
    evc_dispatcher_close(d);
}

static void sock_gone(evc_dispatcher *d, void *data)
{
    (void)d;
    struct client *c = data;
    c->sock = NULL;
    /* Without a server there is nothing to type into. */
    if (c->input)
        evc_dispatcher_close(c->input);
}

static const struct evc_dispatcher_ops sock_ops = {
    .writable = sock_writable,
    .handle_connect = sock_connected,
    .handle_write = sock_write,
    .handle_read = sock_read,
    .handle_error = sock_error,
    .on_destroy = sock_gone,
};

/* --- stdin --------------------------------------------------------- */

/* Returns how many of the n new bytes to send: up to and including a "BYE"
 * line (trimmed of \r, any case), or all of them. */
static size_t scan_for_bye(struct client *c, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            size_t k = c->line_len;
            if (k >= 1 && k <= sizeof c->line && c->line[k - 1] == '\r')
                k--;
            c->line_len = 0;
            if (k == 3 && strncasecmp(c->line, "bye", 3) == 0) {
                c->bye = true;
                return i + 1;
            }
        } else if (c->line_len < sizeof c->line) {
            c->line[c->line_len++] = p[i];
        } else {
            c->line_len = sizeof c->line + 1;
        }
    }
    return n;
}

static bool input_readable(evc_dispatcher *d, void *data)
{
    (void)d;
    struct client *c = data;
    return c->out_len < sizeof c->out;
}

static void input_ended(evc_dispatcher *d, void *data)
{
    struct client *c = data;
    c->input_done = true;
    evc_dispatcher_close(d);
    finish_if_done(c);
}

static void input_read(evc_dispatcher *d, void *data)
{
    struct client *c = data;
    ssize_t n = evc_dispatcher_recv(d, c->out + c->out_len, sizeof c->out - c->out_len);
    if (n <= 0)
        return;   /* nothing yet, or EOF: input_ended has run */
    c->out_len += scan_for_bye(c, c->out + c->out_len, (size_t)n);
    if (c->sock)
        evc_dispatcher_update(c->sock);   /* it has something to send now */
    if (c->bye)
        input_ended(d, c);
}

static void input_gone(evc_dispatcher *d, void *data)
{
    (void)d;
    struct client *c = data;
    c->input = NULL;
}

static const struct evc_dispatcher_ops input_ops = {
    .readable = input_readable,
    .handle_read = input_read,
    .handle_close = input_ended,
    .on_destroy = input_gone,
};

int main(int argc, char **argv)
{
    example_opts opts;
    example_parse(&opts, argc, argv, "127.0.0.1", 5556, "");
    struct sockaddr_storage ss;
    socklen_t len;
    example_resolve(&opts, &ss, &len);
    char peer[EVC_ADDRSTRLEN];
    evc_addr_format((struct sockaddr *)&ss, len, peer, sizeof peer);

    static struct client c;   /* static: its buffer is too big for a small stack */
    c.peer = peer;
    struct ev_loop *loop = ev_default_loop(0);
    c.sock = evc_dispatcher_new(loop, &sock_ops, &c);
    int rc = c.sock ? evc_dispatcher_create_socket(c.sock, ss.ss_family, SOCK_STREAM) : -ENOMEM;
    if (rc == 0)
        rc = evc_dispatcher_connect(c.sock, (struct sockaddr *)&ss, len);
    if (rc < 0) {
        fprintf(stderr, "echo_client: cannot connect to %s: %s\n", peer, evc_strerror(rc));
        c.status = 1;
        goto out;
    }

    /* The dispatcher makes its fd non-blocking, and a tty's flags are shared
     * with the shell: give it a duplicate and put fd 0's flags back at the end. */
    int stdin_flags = fcntl(STDIN_FILENO, F_GETFL);
    int in_fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
    c.input = in_fd >= 0 ? evc_dispatcher_new(loop, &input_ops, &c) : NULL;
    if (!c.input || evc_dispatcher_set_socket(c.input, in_fd) < 0) {
        perror("echo_client: stdin");
        if (in_fd >= 0)
            close(in_fd);
        c.status = 1;
        goto out;
    }

    ev_signal stop[2];
    example_stop_on_signals(loop, stop);
    ev_run(loop, 0);
    if (stdin_flags >= 0)
        fcntl(STDIN_FILENO, F_SETFL, stdin_flags);

out:
    evc_close_all(loop);
    ev_run(loop, 0);   /* runs the deferred destroys */
    ev_loop_destroy(loop);
    return c.status;
}

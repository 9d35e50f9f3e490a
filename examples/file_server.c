/*
 * file_server: the framed-message server of the Python socket tutorials
 * (Real Python's "libserver": a 2-byte big-endian header length, a JSON
 * header with byteorder, content-type, content-encoding and content-length,
 * then the content), serving files.  Try it:
 *
 *     mkdir -p /tmp/pub && echo hi > /tmp/pub/a.txt && examples/file_server /tmp/pub &
 *     examples/file_client a.txt out.txt
 *
 * Protocol: the client sends "NAME\n"; the server answers with the header and
 * the file's bytes, then closes.  On a refusal the header is {"error": "...",
 * "content-length": 0, ...} and nothing follows.
 *
 * What it shows: a "\n" terminator and the default collector, with a frame
 * limit (a request line over 4 KiB closes the connection); a push of the header
 * followed by evc_file_producer_new, the stock producer that streams a file
 * with sendfile(2) (no copy through user space, constant memory for any file
 * size); shutdown_when_done after the producer (so bytes the client sent after
 * its request cannot turn the end of the reply into a reset); an idle timeout
 * and a frame deadline for the request line; a client that disconnects
 * mid-transfer closes the chat, which destroys the producer and closes the
 * file: nothing leaks.  JSON comes from jansson, not a hand-made printer.
 *
 * Safety: NAME is opened one component at a time with openat(O_NOFOLLOW) from
 * the served directory, and ".." components are refused.  This is race-free
 * (a realpath() + prefix check can be fooled by a symlink swapped in between
 * the check and the open) and needs no kernel newer than openat; the price is
 * that no symlink is followed at all, even one that points inside.
 * Absolute names are refused too.  The tutorial's server also ran shell
 * commands sent by clients; that is remote code execution for anybody who can
 * connect, so it is deliberately not reproduced.
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_NAME 4096
#define IDLE_TIMEOUT 30.0     /* seconds without I/O */
#define FRAME_DEADLINE 10.0   /* seconds to send the request line once it has begun */
#define LINGER 2.0            /* seconds to drain a client's extra bytes after the reply */
/* The tutorial's sys.byteorder: the serving host's, for content that cares. */
#define BYTEORDER (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? "little" : "big")

/* Opens name under root without leaving it: returns an fd or -errno
 * (-EACCES for names that try to escape, including through a symlink). */
static int open_beneath(int root_fd, char *name)
{
    if (name[0] == '/' || name[0] == '\0')
        return -EACCES;
    return example_open_beneath(root_fd, name);
}

/* Pushes the 2-byte length and the JSON header (and takes the reference to it). */
static int push_header(evc_chat *chat, json_t *header)
{
    char *text = json_dumps(header, JSON_COMPACT);
    json_decref(header);
    if (!text)
        return -ENOMEM;
    size_t len = strlen(text);
    unsigned char prefix[2] = {(unsigned char)(len >> 8), (unsigned char)len};
    int rc = len > 0xffff ? -EMSGSIZE : evc_chat_push(chat, prefix, sizeof prefix);
    if (rc == 0)
        rc = evc_chat_push(chat, text, len);
    free(text);
    return rc;
}

/*
 * The reply is all queued: end the connection once it is written.  Closing a
 * socket that still has unread bytes (a client that sent more than its request
 * line) makes the kernel send a reset, and the client's kernel then throws
 * away the part of the reply it had not read yet.  So send our FIN and read
 * and drop what the client still sends, for a moment, before closing.
 */
static void finish(evc_chat *chat)
{
    if (evc_chat_shutdown_when_done(chat, LINGER) < 0)
        evc_chat_close_when_done(chat);
}

static void refuse(evc_chat *chat, const char *why)
{
    push_header(chat, json_pack("{s:s, s:s, s:s, s:s, s:i}", "byteorder", BYTEORDER,
                                "content-type", "text/plain", "content-encoding", "utf-8",
                                "error", why, "content-length", 0));
    finish(chat);
}

static void serve(evc_chat *chat, int root_fd, char *name)
{
    int fd = open_beneath(root_fd, name);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        fd = -EACCES;
    }
    if (fd < 0) {
        refuse(chat, fd == -ENOENT ? "no such file" : fd == -EACCES ? "forbidden" : strerror(-fd));
        return;
    }
    uint64_t size = (uint64_t)st.st_size;
    json_t *header = json_pack("{s:s, s:s, s:s, s:I}", "byteorder", BYTEORDER,
                               "content-type", "application/octet-stream",
                               "content-encoding", "binary", "content-length", (json_int_t)size);
    evc_producer *file = evc_file_producer_new(fd, 0, size);
    if (!file) {
        close(fd);
        json_decref(header);
        refuse(chat, "out of memory");
        return;
    }
    if (push_header(chat, header) < 0 || evc_chat_push_with_producer(chat, file) < 0) {
        evc_producer_free(file);
        evc_chat_close(chat);
        return;
    }
    finish(chat);
}

static void found_name(evc_chat *chat, void *data)
{
    size_t len;
    const char *line = evc_chat_incoming(chat, &len);   /* at most MAX_NAME bytes */
    char name[MAX_NAME + 1];
    if (len > 0 && line[len - 1] == '\r')
        len--;                  /* telnet and nc -C send CRLF */
    if (len > 0)                /* an empty line is NULL */
        memcpy(name, line, len);
    name[len] = '\0';
    /* One request per connection: what follows is collected and dropped (a
     * flood of it hits the frame limit and closes the connection). */
    evc_chat_set_terminator_none(chat);
    if (strlen(name) != len)
        refuse(chat, "bad name");
    else
        serve(chat, *(int *)data, name);
}

/* The default collector keeps the request line for evc_chat_incoming. */
static const struct evc_chat_ops file_channel = {
    .found_terminator = found_name,
};

static void accept_client(evc_server *server, int fd, const struct sockaddr *peer, socklen_t len,
                          void *data)
{
    (void)peer, (void)len;
    struct ev_loop *loop = evc_server_loop(server);
    evc_chat *chat = evc_chat_new(loop, fd, &file_channel, data);   /* data: the root fd */
    if (!chat) {
        close(fd);
        return;
    }
    evc_chat_set_terminator(chat, "\n");
    evc_chat_set_max_frame(chat, MAX_NAME);   /* longer request lines close the connection */
    evc_chat_set_timeout(chat, IDLE_TIMEOUT);
    evc_chat_set_frame_deadline(chat, FRAME_DEADLINE);
}

static const struct evc_server_ops file_server_ops = {
    .handle_accepted = accept_client,
};

int main(int argc, char **argv)
{
    example_opts opts;
    example_parse(&opts, argc, argv, "127.0.0.1", 8800, " [DIRECTORY (default .)]");
    example_refuse_workers(&opts, argv[0]);
    const char *root = opts.argc > 0 ? opts.argv[0] : ".";
    int root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) {
        perror(root);
        return 1;
    }

    struct ev_loop *loop = ev_default_loop(0);
    char address[EVC_ADDRSTRLEN + 16];
    example_address(&opts, address, sizeof address);
    evc_server *server = evc_server_new(loop, address, 0, &file_server_ops, &root_fd);
    if (!server) {
        perror(address);
        close(root_fd);
        return 1;
    }
    ev_signal stop[2];
    example_stop_on_signals(loop, stop);   /* before the line that says we are up */
    example_announce(evc_dispatcher_fd(evc_server_dispatcher(server)));
    ev_run(loop, 0);

    evc_close_all(loop);
    ev_run(loop, 0);            /* runs the deferred destroys */
    ev_loop_destroy(loop);
    close(root_fd);
    return 0;
}

/*
 * file_server: the framed-message server of the Python socket tutorials
 * (Real Python's "libserver": a 2-byte big-endian header length, a JSON
 * header with byteorder, content-type, content-encoding and content-length,
 * then the content), serving files.  Try it:
 *
 *     mkdir -p /tmp/pub && echo hi > /tmp/pub/a.txt && ./file_server /tmp/pub &
 *     file_client a.txt out.txt                    # or: echo a.txt | nc 127.0.0.1 8800
 *
 * Protocol: the client sends "NAME\n"; the server answers with the header and
 * the file's bytes, then closes.  On a refusal the header is {"error": "...",
 * "content-length": 0, ...} and nothing follows.
 *
 * What it shows: a "\n" terminator for the request; a push of the header
 * followed by evc_file_producer_new, the stock producer that streams a file
 * with sendfile(2) (no copy through user space, constant memory for any file
 * size); close_when_done after the producer; a client that disconnects
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
#define IDLE_TIMEOUT 30.0
/* The tutorial's sys.byteorder: the serving host's, for content that cares. */
#define BYTEORDER (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? "little" : "big")

struct request {
    int root_fd;                /* the served directory; borrowed */
    char name[MAX_NAME + 1];
    size_t len;
    bool answered;
};

/* Opens name under root without leaving it: returns an fd or -errno
 * (-EACCES for names that try to escape, including through a symlink). */
static int open_beneath(int root_fd, char *name)
{
    if (name[0] == '/' || name[0] == '\0')
        return -EACCES;
    int dir = dup(root_fd);
    if (dir < 0)
        return -errno;
    char *save = NULL;
    char *part = strtok_r(name, "/", &save);
    while (part) {
        char *next = strtok_r(NULL, "/", &save);
        int fd;
        if (strcmp(part, "..") == 0) {
            close(dir);
            return -EACCES;
        }
        if (strcmp(part, ".") == 0)
            fd = dup(dir);
        else if (next)
            fd = openat(dir, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        else  /* O_NONBLOCK: opening a FIFO must not hang the server */
            fd = openat(dir, part, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        int err = errno;
        struct stat st;
        /* O_NOFOLLOW met a symlink: ELOOP, or ENOTDIR along with O_DIRECTORY. */
        if (fd < 0 && (err == ELOOP || (err == ENOTDIR &&
                       fstatat(dir, part, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))))
            err = EACCES;
        close(dir);
        if (fd < 0)
            return -err;
        dir = fd;
        part = next;
    }
    return dir;
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

static void refuse(evc_chat *chat, const char *why)
{
    push_header(chat, json_pack("{s:s, s:s, s:s, s:s, s:i}", "byteorder", BYTEORDER,
                                "content-type", "text/plain", "content-encoding", "utf-8",
                                "error", why, "content-length", 0));
    evc_chat_close_when_done(chat);
}

static void serve(evc_chat *chat, struct request *req)
{
    int fd = open_beneath(req->root_fd, req->name);
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
    evc_chat_close_when_done(chat);
}

static void collect_name(struct request *req, const char *bytes, size_t len)
{
    if (req->len > MAX_NAME)
        return;                 /* already too long: found_name refuses it */
    if (len > MAX_NAME - req->len) {
        req->len = MAX_NAME + 1;
        return;
    }
    memcpy(req->name + req->len, bytes, len);
    req->len += len;
}

static void found_name(evc_chat *chat, void *data)
{
    struct request *req = data;
    if (req->answered)
        return;
    req->answered = true;
    evc_chat_set_terminator_none(chat);   /* anything after the request is ignored */
    if (req->len > MAX_NAME) {
        refuse(chat, "name too long");
        return;
    }
    if (req->len > 0 && req->name[req->len - 1] == '\r')
        req->len--;                       /* telnet and nc -C send CRLF */
    req->name[req->len] = '\0';
    if (strlen(req->name) != req->len) {
        refuse(chat, "bad name");
        return;
    }
    serve(chat, req);
}

/* The request line; bytes after it are not wanted. */
static void collect(evc_chat *chat, const char *bytes, size_t len, void *data)
{
    (void)chat;
    struct request *req = data;
    if (!req->answered)
        collect_name(req, bytes, len);
}

static void free_request(evc_chat *chat, void *data)
{
    (void)chat;
    free(data);
}

static const struct evc_chat_ops file_channel = {
    .collect_incoming_data = collect,
    .found_terminator = found_name,
    .on_destroy = free_request,
};

static void accept_client(evc_server *server, int fd, const struct sockaddr *peer, socklen_t len,
                          void *data)
{
    (void)peer, (void)len;
    struct request *req = calloc(1, sizeof *req);
    struct ev_loop *loop = evc_dispatcher_loop(evc_server_dispatcher(server));
    evc_chat *chat = req ? evc_chat_new(loop, fd, &file_channel, req) : NULL;
    if (!chat) {
        free(req);
        close(fd);
        return;
    }
    req->root_fd = *(int *)data;
    evc_chat_set_terminator(chat, "\n");
    evc_chat_set_timeout(chat, IDLE_TIMEOUT);
}

static const struct evc_server_ops file_server_ops = {
    .handle_accepted = accept_client,
};

int main(int argc, char **argv)
{
    example_opts opts;
    example_parse(&opts, argc, argv, "127.0.0.1", 8800, " [DIRECTORY (default .)]");
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
    example_announce(evc_dispatcher_fd(evc_server_dispatcher(server)));

    ev_signal stop[2];
    example_stop_on_signals(loop, stop);
    ev_run(loop, 0);

    evc_close_all(loop);
    ev_run(loop, 0);            /* runs the deferred destroys */
    ev_loop_destroy(loop);
    close(root_fd);
    return 0;
}

/*
 * The static-file half of examples/http_server: finding a file under the
 * served directory without leaving it, and answering with its bytes.
 *
 * Names are resolved one component at a time with openat(O_NOFOLLOW), as
 * file_server does: ".." is refused, no symlink is followed, so nothing
 * outside the directory can be reached, and there is no window between a
 * check and the open for a swapped symlink to slip through.
 *
 * Bytes go out through evc_file_producer_new: sendfile(2) from the page
 * cache, constant memory for any size, and the producer runs only when it
 * reaches the head of the chat's queue, so pipelined answers stay in order.
 * A small file is read and pushed as a copy instead: a push coalesces with
 * the head before it and with the answers around it into one writev, where a
 * producer costs a sendfile call of its own per answer.
 *
 * Conditional and partial requests: Last-Modified and If-Modified-Since
 * (304), and one byte range "bytes=a-b", "bytes=a-" or "bytes=-n" (206, or
 * 416 when it starts past the end), which is what `curl -C -` sends to resume.
 * Several ranges, or a Range that does not parse, get the whole file (RFC 9110
 * lets a server ignore Range).
 */
#include "common.h"
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define SMALL_FILE (16u * 1024u)    /* up to this, a copy in the queue beats a sendfile */

static const char *content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
        {"txt", "text/plain; charset=utf-8"}, {"css", "text/css"},
        {"js", "text/javascript"},            {"json", "application/json"},
        {"xml", "application/xml"},           {"svg", "image/svg+xml"},
        {"png", "image/png"},                 {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},               {"gif", "image/gif"},
        {"ico", "image/x-icon"},              {"webp", "image/webp"},
        {"pdf", "application/pdf"},           {"wasm", "application/wasm"},
        {"gz", "application/gzip"},           {"mp4", "video/mp4"},
    };
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

/* A single "bytes=" range of a size-byte file.  1 and [*first, *last] when it
 * applies, 0 when the whole file should be sent, -1 when unsatisfiable. */
static int parse_range(const char *value, uint64_t size, uint64_t *first, uint64_t *last)
{
    if (strncasecmp(value, "bytes=", 6) != 0 || strchr(value, ','))
        return 0;
    const char *p = value + 6;
    char *end;
    if (*p == '-') {            /* the last n bytes */
        if (p[1] < '0' || p[1] > '9')
            return 0;
        uint64_t n = strtoull(p + 1, &end, 10);
        if (*end != '\0')
            return 0;
        if (n == 0 || size == 0)
            return -1;
        *first = n < size ? size - n : 0;
        *last = size - 1;
        return 1;
    }
    if (*p < '0' || *p > '9')
        return 0;
    uint64_t a = strtoull(p, &end, 10);
    if (*end != '-')
        return 0;
    p = end + 1;
    uint64_t b = UINT64_MAX;
    if (*p != '\0') {
        if (*p < '0' || *p > '9')
            return 0;
        b = strtoull(p, &end, 10);
        if (*end != '\0' || b < a)
            return 0;
    }
    if (a >= size)
        return -1;
    *first = a;
    *last = b < size - 1 ? b : size - 1;
    return 1;
}

/* Pushes length bytes of fd from offset, then closes fd. */
static int push_body(evc_chat *chat, int fd, uint64_t offset, uint64_t length)
{
    if (length <= SMALL_FILE) {
        char buf[SMALL_FILE];
        ssize_t n = length ? pread(fd, buf, (size_t)length, (off_t)offset) : 0;
        close(fd);
        if (n != (ssize_t)length)
            return -EIO;    /* the file shrank under us: the head promised more */
        return length ? evc_chat_push(chat, buf, (size_t)length) : 0;
    }
    evc_producer *file = evc_file_producer_new(fd, offset, length);
    if (!file) {
        close(fd);
        return -ENOMEM;
    }
    int rc = evc_chat_push_with_producer(chat, file);
    if (rc < 0)
        evc_producer_free(file);
    return rc;
}

void http_serve_file(http_conn *conn, char *path)
{
    http_request *req = &conn->req;
    /* Before open_beneath, which cuts path into its components. */
    const char *type = content_type(path);
    int fd = example_open_beneath(conn->config->root_fd, path);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        int index = openat(fd, "index.html", O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        close(fd);
        fd = index >= 0 ? index : -ENOENT;
        if (fd >= 0)
            type = content_type("index.html");
        if (fd >= 0 && fstat(fd, &st) < 0) {
            close(fd);
            fd = -EACCES;
        }
    }
    if (fd >= 0 && !S_ISREG(st.st_mode)) {
        close(fd);
        fd = -EACCES;
    }
    if (fd < 0) {
        if (fd == -ENOENT || fd == -ENOTDIR || fd == -ENAMETOOLONG)
            http_respond_text(conn, 404, "404 Not Found\n");
        else
            http_respond_text(conn, 403, "403 Forbidden\n");
        return;
    }

    uint64_t size = (uint64_t)st.st_size;
    char modified[40];
    http_format_date(st.st_mtime, modified, sizeof modified);
    char extra[512];
    if (req->if_modified_since != -1 && st.st_mtime <= req->if_modified_since) {
        close(fd);
        snprintf(extra, sizeof extra, "Last-Modified: %s\r\n", modified);
        http_respond_head(conn, 304, extra, 0);
        return;
    }
    uint64_t first = 0, last = size ? size - 1 : 0;
    int ranged = req->range[0] ? parse_range(req->range, size, &first, &last) : 0;
    if (ranged < 0) {
        close(fd);
        snprintf(extra, sizeof extra,
                 "Content-Type: text/plain\r\nContent-Range: bytes */%" PRIu64 "\r\n"
                 "Content-Length: 0\r\n", size);
        http_respond_head(conn, 416, extra, 0);
        return;
    }
    uint64_t length = ranged ? last - first + 1 : size;
    int n = snprintf(extra, sizeof extra,
                     "Content-Type: %s\r\nContent-Length: %" PRIu64 "\r\n"
                     "Last-Modified: %s\r\nAccept-Ranges: bytes\r\n",
                     type, length, modified);
    if (ranged)
        snprintf(extra + n, sizeof extra - (size_t)n,
                 "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n", first, last, size);
    bool head = strcmp(req->method, "HEAD") == 0;
    if (http_respond_head(conn, ranged ? 206 : 200, extra, head ? 0 : length) < 0 || head) {
        close(fd);
        return;
    }
    if (push_body(conn->chat, fd, first, length) < 0)
        evc_chat_close(conn->chat);     /* the head is out: the body cannot be replaced */
}

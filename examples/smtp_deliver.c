/* Printing and Maildir delivery of smtp_sink's messages: see smtp_deliver.h. */
#include "smtp_deliver.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

/* The next line of text[*at, end) as DebuggingServer's splitlines() sees it after
 * its found_terminator turned each CRLF into a LF: a line ends at a LF, at a CR, or
 * at a CR and LF together, where the LF may have been a CRLF ("a\r\r\n" is one
 * line).  Returns the line's length and moves *at past its break. */
static size_t next_line(const char *text, size_t end, size_t *at)
{
    size_t i = *at, j = i;
    while (j < end && text[j] != '\r' && text[j] != '\n')
        j++;
    size_t len = j - i;
    if (j < end && text[j] == '\r') {
        j++;
        if (j + 1 < end && text[j] == '\r' && text[j + 1] == '\n')
            j += 2;   /* "\r" then a CRLF, which became "\r\n": one break */
        else if (j < end && text[j] == '\n')
            j++;
    } else if (j < end) {
        j++;
    }
    *at = j;
    return len;
}

int smtp_print_message(FILE *out, const char *peer, const char *msg, size_t len)
{
    /* DebuggingServer is handed the message without the CRLF of its last line
     * (its terminator "\r\n.\r\n" swallowed it) and with the other CRLFs turned
     * into LFs; it prints data.splitlines(), so a break at the very end makes no
     * extra empty line.  The peer's address goes just before the first empty line,
     * the one that ends the headers; a message without one gets no X-Peer. */
    size_t end = len;
    if (end >= 2 && msg[end - 2] == '\r' && msg[end - 1] == '\n')
        end -= 2;
    fputs("---------- MESSAGE FOLLOWS ----------\n", out);
    bool in_headers = true;
    for (size_t at = 0; at < end;) {
        const char *line = msg + at;
        size_t n = next_line(msg, end, &at);
        if (in_headers && n == 0) {
            fprintf(out, "X-Peer: %s\n", peer);
            in_headers = false;
        }
        fwrite(line, 1, n, out);
        fputc('\n', out);
    }
    fputs("------------ END MESSAGE ------------\n", out);
    return fflush(out) == 0 && !ferror(out) ? 0 : -EIO;
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return 0;
    return -errno;
}

int smtp_maildir_open(smtp_maildir *md, const char *dir)
{
    md->dir = dir;
    md->delivered = 0;
    if (gethostname(md->host, sizeof md->host) < 0)
        snprintf(md->host, sizeof md->host, "localhost");
    md->host[sizeof md->host - 1] = '\0';
    /* The Maildir spec keeps '/' and ':' out of the host part of a name: '/' is
     * the path separator and ':' starts the flags of a file in cur/. */
    for (char *p = md->host; *p; p++)
        if (*p == '/' || *p == ':')
            *p = '_';

    static const char *const subdirs[] = {"", "/tmp", "/new", "/cur"};
    char path[PATH_MAX];
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
        if (snprintf(path, sizeof path, "%s%s", dir, subdirs[i]) >= (int)sizeof path)
            return -ENAMETOOLONG;
        int rc = make_dir(path);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A rename is durable only once the directory that holds the new name is synced. */
static int sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int smtp_maildir_deliver(smtp_maildir *md, const char *msg, size_t len)
{
    /* The Maildir spec's unique name: seconds, then M<microseconds>, P<pid> and
     * Q<count of this process's deliveries>, then the host.  Two processes on one
     * host differ in pid, two deliveries of one process in count. */
    struct timeval now;
    gettimeofday(&now, NULL);
    char name[160], tmp_path[PATH_MAX], new_path[PATH_MAX], new_dir[PATH_MAX];
    snprintf(name, sizeof name, "%lld.M%06ldP%ldQ%lu.%s", (long long)now.tv_sec,
             (long)now.tv_usec, (long)getpid(), ++md->delivered, md->host);
    if (snprintf(tmp_path, sizeof tmp_path, "%s/tmp/%s", md->dir, name) >= (int)sizeof tmp_path ||
        snprintf(new_path, sizeof new_path, "%s/new/%s", md->dir, name) >= (int)sizeof new_path ||
        snprintf(new_dir, sizeof new_dir, "%s/new", md->dir) >= (int)sizeof new_dir)
        return -ENAMETOOLONG;

    int fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = write_all(fd, msg, len);
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp_path, new_path) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp_path);
        return rc;
    }
    return sync_dir(new_dir);
}

/*
 * Tests of the file producer: more() over pread, send_to_fd over sendfile into
 * a loopback TCP pair and over the pread + write fallback into a pipe; offset
 * and length, to EOF, a file shorter than promised (-EIO), a full socket or
 * pipe (-EAGAIN, nothing lost), a peer that left (an error, never SIGPIPE),
 * the fd closed on destroy and bad input refused without touching the fd, and
 * 1 MiB checksums through every path.
 */
#include "internal.h"
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MiB ((size_t)1 << 20)

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Deterministic, position-independent-looking content (xorshift). */
static void fill_random(unsigned char *p, size_t n, uint32_t seed)
{
    uint32_t x = seed ? seed : 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)x;
    }
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

#define FNV_INIT 0xcbf29ce484222325ULL

/* An unlinked temporary file holding content; returns its fd (O_RDONLY). */
static int temp_file(const void *content, size_t len)
{
    const char *dir = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/evc-file-producer-XXXXXX", dir && *dir ? dir : "/tmp");
    int wfd = mkstemp(path);
    assert_true(wfd >= 0);
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(wfd, (const char *)content + done, len - done);
        assert_true(w > 0);
        done += (size_t)w;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    unlink(path);
    close(wfd);
    return fd;
}

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    assert_true(fl >= 0);
    assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

/* Small kernel buffers, so that 1 MiB always meets a full socket. */
static void small_buffers(int fd)
{
    int size = 65536;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size), 0);
}

static ssize_t send_to(evc_producer *p, int fd, size_t max)
{
    assert_non_null(p->ops->send_to_fd);
    return p->ops->send_to_fd(p, fd, max, p->data);
}

/* Reads everything readable from a non-blocking fd into out (cap bytes); returns the new length. */
static size_t drain_fd(int fd, unsigned char *out, size_t have, size_t cap)
{
    for (;;) {
        if (have == cap) {
            char extra;
            assert_int_equal(read(fd, &extra, 1), -1);   /* nothing beyond what was promised */
            return have;
        }
        ssize_t n = read(fd, out + have, cap - have);
        if (n > 0) {
            have += (size_t)n;
            continue;
        }
        assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        return have;
    }
}

/*
 * Sends the producer into wfd with send_to_fd(max) until it answers 0,
 * reading rfd whenever the kernel is full.  Returns the bytes received (into
 * out, up to cap); counts -EAGAIN answers in *full.
 */
static size_t pump(evc_producer *p, int wfd, int rfd, size_t max, unsigned char *out, size_t cap,
                   int *full)
{
    size_t sent = 0, have = 0;
    for (int rounds = 0; rounds < 1000000; rounds++) {
        ssize_t n = send_to(p, wfd, max);
        if (n == 0)
            break;
        if (n == -EAGAIN) {
            (*full)++;
            struct pollfd pfd = {.fd = rfd, .events = POLLIN};
            assert_int_equal(poll(&pfd, 1, 5000), 1);
            have = drain_fd(rfd, out, have, cap);
            continue;
        }
        if (n < 0)
            fail_msg("send_to_fd: %s", strerror((int)-n));
        assert_true((size_t)n <= max);
        sent += (size_t)n;
    }
    assert_int_equal(send_to(p, wfd, max), 0);   /* done stays done */
    /* Read the rest: everything sent is in the kernel by now. */
    while (have < sent) {
        struct pollfd pfd = {.fd = rfd, .events = POLLIN};
        assert_int_equal(poll(&pfd, 1, 5000), 1);
        have = drain_fd(rfd, out, have, cap);
    }
    assert_int_equal(have, sent);
    return have;
}

/* Reads the producer with more(cap) until 0 or an error; returns the last answer. */
static ssize_t read_all(evc_producer *p, size_t cap, unsigned char *out, size_t out_cap, size_t *got)
{
    unsigned char *buf = malloc(cap);
    assert_non_null(buf);
    *got = 0;
    ssize_t n;
    while ((n = evc_producer_more(p, buf, cap)) > 0) {
        assert_true((size_t)n <= cap);
        assert_true(*got + (size_t)n <= out_cap);
        memcpy(out + *got, buf, (size_t)n);
        *got += (size_t)n;
    }
    free(buf);
    return n;
}

/* ------------------------------------------------------------------ */
/* more() over pread                                                   */
/* ------------------------------------------------------------------ */

static void test_more_reads_the_whole_file(void **state)
{
    (void)state;
    unsigned char *content = malloc(MiB), *got = malloc(MiB);
    assert_non_null(content);
    assert_non_null(got);
    fill_random(content, MiB, 7);
    int fd = temp_file(content, MiB);
    evc_producer *p = evc_file_producer_new(fd, 0, MiB);
    assert_non_null(p);
    size_t n = 0;
    assert_int_equal(read_all(p, 16384, got, MiB, &n), 0);
    assert_int_equal(n, MiB);
    assert_true(fnv1a(FNV_INIT, got, n) == fnv1a(FNV_INIT, content, MiB));
    assert_int_equal(evc_producer_more(p, got, 16), 0);
    /* pread: the fd's own offset never moved. */
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);
    evc_producer_free(p);
    free(content);
    free(got);
}

static void test_offset_and_length(void **state)
{
    (void)state;
    unsigned char content[10000], got[10000];
    fill_random(content, sizeof content, 3);
    int fd = temp_file(content, sizeof content);
    evc_producer *p = evc_file_producer_new(fd, 1234, 5000);
    assert_non_null(p);
    size_t n = 0;
    assert_int_equal(read_all(p, 333, got, sizeof got, &n), 0);
    assert_int_equal(n, 5000);
    assert_memory_equal(got, content + 1234, 5000);
    evc_producer_free(p);

    /* Length 0 is done at once; so is an offset at the end with length 0. */
    fd = temp_file(content, sizeof content);
    p = evc_file_producer_new(fd, sizeof content, 0);
    assert_non_null(p);
    assert_int_equal(evc_producer_more(p, got, sizeof got), 0);
    evc_producer_free(p);
}

static void test_to_eof(void **state)
{
    (void)state;
    unsigned char content[7000], got[7000];
    fill_random(content, sizeof content, 11);
    int fd = temp_file(content, sizeof content);
    evc_producer *p = evc_file_producer_new(fd, 100, UINT64_MAX);
    assert_non_null(p);
    size_t n = 0;
    assert_int_equal(read_all(p, 4096, got, sizeof got, &n), 0);
    assert_int_equal(n, sizeof content - 100);
    assert_memory_equal(got, content + 100, n);
    evc_producer_free(p);

    /* An empty file to EOF is done at once. */
    fd = temp_file("", 0);
    p = evc_file_producer_new(fd, 0, UINT64_MAX);
    assert_non_null(p);
    assert_int_equal(evc_producer_more(p, got, sizeof got), 0);
    evc_producer_free(p);
}

static void test_short_file_is_an_error(void **state)
{
    (void)state;
    unsigned char content[100], got[300];
    fill_random(content, sizeof content, 5);
    int fd = temp_file(content, sizeof content);
    evc_producer *p = evc_file_producer_new(fd, 0, 200);
    assert_non_null(p);
    size_t n = 0;
    /* The bytes that exist come first, then -EIO instead of a silent short transfer. */
    assert_int_equal(read_all(p, 64, got, sizeof got, &n), -EIO);
    assert_int_equal(n, 100);
    assert_memory_equal(got, content, 100);
    evc_producer_free(p);

    /* The same through send_to_fd, into a pipe and into a socket. */
    int pfd[2];
    assert_int_equal(pipe2(pfd, O_NONBLOCK | O_CLOEXEC), 0);
    fd = temp_file(content, sizeof content);
    p = evc_file_producer_new(fd, 50, 51);
    assert_non_null(p);
    assert_int_equal(send_to(p, pfd[1], 1000), 50);
    assert_int_equal(send_to(p, pfd[1], 1000), -EIO);
    evc_producer_free(p);
    close(pfd[0]);
    close(pfd[1]);

    int sv[2];
    evt_tcp_pair(sv);
    fd = temp_file(content, sizeof content);
    p = evc_file_producer_new(fd, 0, 101);
    assert_non_null(p);
    assert_int_equal(send_to(p, sv[0], 1000), 100);
    assert_int_equal(send_to(p, sv[0], 1000), -EIO);
    evc_producer_free(p);
    close(sv[0]);
    close(sv[1]);
}

/* ------------------------------------------------------------------ */
/* Ownership and validation                                            */
/* ------------------------------------------------------------------ */

static void test_fd_closed_on_destroy(void **state)
{
    (void)state;
    int fd = temp_file("abc", 3);
    evc_producer *p = evc_file_producer_new(fd, 0, 3);
    assert_non_null(p);
    assert_true(fd_open(fd));
    evc_producer_free(p);
    assert_false(fd_open(fd));
    assert_int_equal(errno, EBADF);

    /* Also when it was used up and then freed through a queue. */
    fd = temp_file("abc", 3);
    p = evc_file_producer_new(fd, 0, 3);
    assert_non_null(p);
    evc_outq q = EVC_OUTQ_INIT;
    assert_int_equal(evc__outq_push_producer(&q, p), 0);
    evc__outq_clear(&q);
    assert_false(fd_open(fd));
}

static void test_bad_input_rejected_fd_untouched(void **state)
{
    (void)state;
    errno = 0;
    assert_null(evc_file_producer_new(-1, 0, 10));
    assert_int_equal(errno, EBADF);

    /* A closed descriptor. */
    int fd = temp_file("x", 1);
    close(fd);
    errno = 0;
    assert_null(evc_file_producer_new(fd, 0, 1));
    assert_int_equal(errno, EBADF);

    /* A pipe and a directory have no positions to read from: refused, left open. */
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    errno = 0;
    assert_null(evc_file_producer_new(pfd[0], 0, 1));
    assert_int_equal(errno, EINVAL);
    assert_true(fd_open(pfd[0]));
    close(pfd[0]);
    close(pfd[1]);
    int dfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    errno = 0;
    assert_null(evc_file_producer_new(dfd, 0, UINT64_MAX));
    assert_int_equal(errno, EINVAL);
    assert_true(fd_open(dfd));
    close(dfd);

    /* A range past what a file offset can hold. */
    fd = temp_file("abc", 3);
    errno = 0;
    assert_null(evc_file_producer_new(fd, (uint64_t)INT64_MAX + 1, 1));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(evc_file_producer_new(fd, 10, (uint64_t)INT64_MAX));
    assert_int_equal(errno, EINVAL);
    assert_true(fd_open(fd));
    /* The fd is still the caller's and still works. */
    evc_producer *p = evc_file_producer_new(fd, 1, 2);
    assert_non_null(p);
    char buf[4];
    assert_int_equal(evc_producer_more(p, buf, sizeof buf), 2);
    assert_memory_equal(buf, "bc", 2);
    evc_producer_free(p);
}

/* ------------------------------------------------------------------ */
/* send_to_fd: sendfile and the fallback                               */
/* ------------------------------------------------------------------ */

static void check_mib_through(int wfd, int rfd, size_t max, uint64_t offset, uint32_t seed)
{
    size_t total = MiB + (size_t)offset;
    unsigned char *content = malloc(total), *got = malloc(MiB);
    assert_non_null(content);
    assert_non_null(got);
    fill_random(content, total, seed);
    int fd = temp_file(content, total);
    evc_producer *p = evc_file_producer_new(fd, offset, MiB);
    assert_non_null(p);
    int full = 0;
    size_t n = pump(p, wfd, rfd, max, got, MiB, &full);
    assert_int_equal(n, MiB);
    assert_true(fnv1a(FNV_INIT, got, MiB) == fnv1a(FNV_INIT, content + offset, MiB));
    /* 1 MiB does not fit in the kernel's buffers: the full case was exercised. */
    assert_true(full > 0);
    evc_producer_free(p);
    assert_false(fd_open(fd));
    free(content);
    free(got);
}

static void test_sendfile_into_tcp(void **state)
{
    (void)state;
    int sv[2];
    evt_tcp_pair(sv);
    set_nonblock(sv[0]);
    set_nonblock(sv[1]);
    small_buffers(sv[0]);
    small_buffers(sv[1]);
    check_mib_through(sv[0], sv[1], MiB, 0, 21);
    check_mib_through(sv[0], sv[1], 10000, 777, 22);   /* small calls, odd offset */
    close(sv[0]);
    close(sv[1]);
}

static void test_fallback_into_pipe(void **state)
{
    (void)state;
    int pfd[2];
    assert_int_equal(pipe2(pfd, O_NONBLOCK | O_CLOEXEC), 0);
    check_mib_through(pfd[1], pfd[0], MiB, 0, 31);
    check_mib_through(pfd[1], pfd[0], 3000, 5, 32);
    close(pfd[0]);
    close(pfd[1]);
}

static void test_to_eof_through_send_to_fd(void **state)
{
    (void)state;
    unsigned char content[50000], got[50000];
    fill_random(content, sizeof content, 41);
    int sv[2];
    evt_tcp_pair(sv);
    set_nonblock(sv[0]);
    set_nonblock(sv[1]);
    int fd = temp_file(content, sizeof content);
    evc_producer *p = evc_file_producer_new(fd, 0, UINT64_MAX);
    assert_non_null(p);
    int full = 0;
    assert_int_equal(pump(p, sv[0], sv[1], 4096, got, sizeof got, &full), sizeof content);
    assert_memory_equal(got, content, sizeof content);
    evc_producer_free(p);
    close(sv[0]);
    close(sv[1]);
}

static void test_more_then_send_to_fd_continue(void **state)
{
    (void)state;
    /* more() and send_to_fd share one position: what one handed out, the
     * other does not repeat. */
    unsigned char content[20000], got[20000];
    fill_random(content, sizeof content, 51);
    int pfd[2];
    assert_int_equal(pipe2(pfd, O_NONBLOCK | O_CLOEXEC), 0);
    int fd = temp_file(content, sizeof content);
    evc_producer *p = evc_file_producer_new(fd, 0, sizeof content);
    assert_non_null(p);
    assert_int_equal(evc_producer_more(p, got, 1000), 1000);
    int full = 0;
    assert_int_equal(pump(p, pfd[1], pfd[0], 4096, got + 1000, sizeof got - 1000, &full),
                     sizeof content - 1000);
    assert_memory_equal(got, content, sizeof content);
    evc_producer_free(p);
    close(pfd[0]);
    close(pfd[1]);
}

static void test_peer_gone_is_an_error_not_a_signal(void **state)
{
    (void)state;
    unsigned char *content = malloc(MiB);
    assert_non_null(content);
    fill_random(content, MiB, 61);

    /* A socket whose peer reset: sendfile must fail with an errno, and the
     * process (SIGPIPE at its default disposition) must survive. */
    int sv[2];
    evt_tcp_pair(sv);
    set_nonblock(sv[0]);
    evt_close_reset(sv[1]);
    int fd = temp_file(content, MiB);
    evc_producer *p = evc_file_producer_new(fd, 0, MiB);
    assert_non_null(p);
    ssize_t n = 0;
    for (int i = 0; i < 100 && (n = send_to(p, sv[0], MiB)) > 0; i++)
        ;
    assert_true(n == -EPIPE || n == -ECONNRESET);
    evc_producer_free(p);
    close(sv[0]);

    /* A pipe whose reader left: -EPIPE through the fallback. */
    int pfd[2];
    assert_int_equal(pipe2(pfd, O_NONBLOCK | O_CLOEXEC), 0);
    close(pfd[0]);
    fd = temp_file(content, MiB);
    p = evc_file_producer_new(fd, 0, MiB);
    assert_non_null(p);
    assert_int_equal(send_to(p, pfd[1], MiB), -EPIPE);
    evc_producer_free(p);
    close(pfd[1]);

    /* No SIGPIPE was left pending either. */
    sigset_t pending;
    sigemptyset(&pending);
    assert_int_equal(sigpending(&pending), 0);
    assert_false(sigismember(&pending, SIGPIPE));
    free(content);
}

static void test_through_the_queue(void **state)
{
    (void)state;
    /* A header, the file, a trailer: the queue stops at the direct producer
     * and lets it write, as the chat does. */
    unsigned char content[100000], got[sizeof content + 8];
    fill_random(content, sizeof content, 71);
    int sv[2];
    evt_tcp_pair(sv);
    set_nonblock(sv[0]);
    set_nonblock(sv[1]);
    int fd = temp_file(content, sizeof content);
    evc_producer *p = evc_file_producer_new(fd, 0, sizeof content);
    assert_non_null(p);
    evc_outq q = EVC_OUTQ_INIT;
    assert_int_equal(evc__outq_push_copy(&q, "HEAD", 4), 0);
    assert_int_equal(evc__outq_push_producer(&q, p), 0);
    assert_int_equal(evc__outq_push_copy(&q, "TAIL", 4), 0);
    size_t have = 0;
    for (int rounds = 0; rounds < 100000; rounds++) {
        struct iovec iov[8];
        int niov, err;
        size_t nbytes;
        evc_outq_state st = evc__outq_iov(&q, iov, 8, &niov, &nbytes, &err);
        ssize_t n;
        if (niov > 0) {
            n = evc__io_writev(sv[0], true, iov, niov);
            if (n > 0)
                evc__outq_consume(&q, (size_t)n);
        } else if (st == EVC_OUTQ_DIRECT) {
            n = evc__outq_send_direct(&q, sv[0], 8192);
        } else {
            assert_int_equal(st, EVC_OUTQ_EMPTY);
            break;
        }
        if (n == -EAGAIN) {
            struct pollfd pfd = {.fd = sv[1], .events = POLLIN};
            assert_int_equal(poll(&pfd, 1, 5000), 1);
            have = drain_fd(sv[1], got, have, sizeof got);
        } else {
            assert_true(n >= 0);
        }
    }
    assert_true(evc__outq_empty(&q));
    assert_false(fd_open(fd));
    while (have < sizeof got) {
        struct pollfd pfd = {.fd = sv[1], .events = POLLIN};
        assert_int_equal(poll(&pfd, 1, 5000), 1);
        have = drain_fd(sv[1], got, have, sizeof got);
    }
    assert_memory_equal(got, "HEAD", 4);
    assert_memory_equal(got + 4, content, sizeof content);
    assert_memory_equal(got + 4 + sizeof content, "TAIL", 4);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_more_reads_the_whole_file),
        cmocka_unit_test(test_offset_and_length),
        cmocka_unit_test(test_to_eof),
        cmocka_unit_test(test_short_file_is_an_error),
        cmocka_unit_test(test_fd_closed_on_destroy),
        cmocka_unit_test(test_bad_input_rejected_fd_untouched),
        cmocka_unit_test(test_sendfile_into_tcp),
        cmocka_unit_test(test_fallback_into_pipe),
        cmocka_unit_test(test_to_eof_through_send_to_fd),
        cmocka_unit_test(test_more_then_send_to_fd_continue),
        cmocka_unit_test(test_peer_gone_is_an_error_not_a_signal),
        cmocka_unit_test(test_through_the_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * The chat layer under injected system call results (tests/wrap.h): reads
 * that would block, are interrupted, come up short, or fail; writes that
 * would block, come up short at every offset of a mixed queue, or fail.  The
 * scripts are limited to the chat's fd, so the peer's own I/O is real.
 *
 * What a user relies on: the byte stream is exact whatever the kernel does,
 * a vanished peer is a close (handle_close), and only real failures reach
 * handle_error.
 */
#include "support.h"
#include "wrap.h"
#include "evchat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S(lit) (lit), (sizeof(lit) - 1)

/* The recording chat of these tests: its own collector, handle_close and handle_error. */
#define REC_FAULTS (EVT_REC_COLLECT | EVT_REC_CLOSE | EVT_REC_ERROR)

/* A chat over one end of a loopback pair; fds[0] is the peer. */
static evc_chat *pair_chat(evt_recorder *r, struct ev_loop *loop, int fds[2], const char *term)
{
    evt_tcp_pair(fds);
    evt_recorder_new(r, loop, fds[1], REC_FAULTS);
    assert_int_equal(evc_dispatcher_fd(evc_chat_dispatcher(r->chat)), fds[1]);
    if (term)
        assert_int_equal(evc_chat_set_terminator(r->chat, term), 0);
    return r->chat;
}

/* Reads exactly len bytes from the peer (blocking, 10 s timeout) and compares. */
static void peer_expect(int fd, const void *want, size_t len)
{
    char *got = malloc(len + 1);
    assert_non_null(got);
    size_t n = 0;
    while (n < len) {
        ssize_t r = recv(fd, got + n, len - n, 0);
        if (r <= 0)
            fail_msg("peer got %zu of %zu bytes (recv: %zd, %s)", n, len, r, strerror(errno));
        n += (size_t)r;
    }
    assert_memory_equal(got, want, len);
    free(got);
}

/* True when the peer sees EOF (or a reset) within a second. */
static bool peer_sees_end(int fd)
{
    struct timeval tv = {.tv_sec = 1};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[64];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
        ;
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static int reset_wrap(void **state)
{
    (void)state;
    evw_reset();
    return 0;
}

/* ------------------------------------------------------------------ */
/* Reads                                                               */
/* ------------------------------------------------------------------ */

static void test_read_eagain_and_eintr(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_recorder r = {0};
    evc_chat *c = pair_chat(&r, loop, fds, "\n");
    /* Spurious wake-ups and interrupted reads change nothing. */
    evw_arm(EVW_READ, fds[1],
            (evw_step[]){EVW_ERR(EAGAIN), EVW_ERR(EINTR), EVW_ERR(EINTR), EVW_ERR(EAGAIN),
                         EVW_ERR(EINTR)},
            5);
    evt_send_all(fds[0], S("hello\nworld\n"));
    assert_true(evt_run_until_count(loop, &r.n_found, 2, 5.0));
    assert_int_equal(evw_pending(EVW_READ), 0);
    assert_string_equal(r.frames[0], "hello");
    assert_string_equal(r.frames[1], "world");
    assert_int_equal(r.n_close + r.n_error, 0);
    assert_false(evc_chat_closed(c));
    evc_chat_close(c);
    close(fds[0]);
    evt_loop_finish(loop);
    assert_int_equal(r.n_destroy, 1);
    evt_recorder_free(&r);
}

static void test_short_reads_keep_frames(void **state)
{
    (void)state;
    static const char msg[] = "one\r\ntwo\r\n\r\nthree\r\n";
    for (int step = 1; step <= 4; step++) {
        evw_reset();
        struct ev_loop *loop = evt_loop_new();
        int fds[2];
        evt_recorder r = {0};
        evc_chat *c = pair_chat(&r, loop, fds, "\r\n");
        evw_step steps[EVW_MAX_STEPS];
        for (int i = 0; i < EVW_MAX_STEPS; i++)
            steps[i] = EVW_SHORT(step);
        evw_arm(EVW_READ, fds[1], steps, EVW_MAX_STEPS);
        evt_send_all(fds[0], S(msg));
        assert_true(evt_run_until_count(loop, &r.n_found, 4, 5.0));
        assert_string_equal(r.frames[0], "one");
        assert_string_equal(r.frames[1], "two");
        assert_string_equal(r.frames[2], "");
        assert_string_equal(r.frames[3], "three");
        assert_int_equal(r.n_close + r.n_error, 0);
        evc_chat_close(c);
        close(fds[0]);
        evt_loop_finish(loop);
        evt_recorder_free(&r);
    }
}

static void read_fails_case(int err, bool is_close, const char *term, const char *sent)
{
    evw_reset();
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_recorder r = {0};
    pair_chat(&r, loop, fds, term);
    /* The first read gets the bytes; the next, woken by one more byte, fails. */
    evw_arm(EVW_READ, fds[1], (evw_step[]){EVW_PASS, EVW_ERR(err)}, 2);
    evt_send_all(fds[0], sent, strlen(sent));
    evt_run_for(loop, 0.05);
    assert_int_equal(evw_pending(EVW_READ), 1);
    assert_int_equal(r.n_destroy, 0);
    evt_send_all(fds[0], S("Z"));
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    assert_int_equal(evw_pending(EVW_READ), 0);
    if (is_close) {
        assert_int_equal(r.n_close, 1);
        assert_int_equal(r.n_error, 0);
        /* Nothing lost: a held-back prefix was collected before handle_close. */
        assert_int_equal(r.at_close.len, strlen(sent));
        assert_memory_equal(r.at_close.p, sent, strlen(sent));
    } else {
        assert_int_equal(r.n_error, 1);
        assert_int_equal(r.last_err, -err);
        assert_int_equal(r.n_close, 0);
    }
    assert_int_equal(r.n_found, 0);
    assert_true(peer_sees_end(fds[0]));
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

static void test_read_reset_is_a_close(void **state)
{
    (void)state;
    read_fails_case(ECONNRESET, true, "\r\n", "abc\r");
    read_fails_case(ECONNRESET, true, "\n", "no end");
    read_fails_case(ETIMEDOUT, true, "\n", "x");
}

static void test_read_error_is_an_error(void **state)
{
    (void)state;
    read_fails_case(EIO, false, "\n", "x");
    read_fails_case(ENOMEM, false, "\n", "x");
}

static void test_read_fake_eof_is_a_close(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_recorder r = {0};
    pair_chat(&r, loop, fds, "qqq");
    evw_arm(EVW_READ, fds[1], (evw_step[]){EVW_SHORT(6), EVW_EOF}, 2);
    evt_send_all(fds[0], S("abcqqqdefqq"));
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    /* EOF after "abcqqq": one frame, then handle_close; the rest is never read. */
    assert_int_equal(r.n_found, 1);
    assert_string_equal(r.frames[0], "abc");
    assert_int_equal(r.n_close, 1);
    assert_int_equal(r.n_error, 0);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

/* ------------------------------------------------------------------ */
/* Writes                                                              */
/* ------------------------------------------------------------------ */

/* Queues the mixed test stream; returns it (caller frees) and its length. */
static char *push_mixed(evc_chat *c, int *released, size_t *len)
{
    static const char ref[] = "<reference bytes>";
    static const char prod[] = "{producer, handed out five at a time}";
    char longtext[301];
    for (size_t i = 0; i < 300; i++)
        longtext[i] = (char)('a' + i % 26);
    longtext[300] = '\0';

    size_t cap = 1024, n = 0;
    char *want = malloc(cap);
    assert_non_null(want);
#define ADD(p, l) (memcpy(want + n, (p), (l)), n += (l))
    assert_int_equal(evc_chat_push(c, S("copy;")), 0);
    ADD("copy;", 5);
    assert_int_equal(evc_chat_push_ref(c, S(ref), evt_count_release, released), 0);
    ADD(ref, sizeof ref - 1);
    evc_producer *p = evc_simple_producer_new(S(prod), 5);
    assert_non_null(p);
    assert_int_equal(evc_chat_push_with_producer(c, p), 0);
    ADD(prod, sizeof prod - 1);
    assert_int_equal(evc_chat_push_str(c, "x"), 0);
    ADD("x", 1);
    assert_int_equal(evc_chat_push_str(c, "y"), 0);
    ADD("y", 1);
    assert_int_equal(evc_chat_pushf(c, "[%s]", longtext), 0);
    ADD("[", 1);
    ADD(longtext, 300);
    ADD("]", 1);
#undef ADD
    assert_true(n <= cap);
    *len = n;
    return want;
}

static void test_short_writes_at_every_offset(void **state)
{
    (void)state;
    size_t total = 0;
    for (size_t k = 1;; k++) {
        evw_reset();
        struct ev_loop *loop = evt_loop_new();
        int fds[2];
        evt_recorder r = {0};
        evc_chat *c = pair_chat(&r, loop, fds, NULL);
        /* The kernel takes k bytes, is interrupted, takes 1, is full once, then
         * takes a few more: at least two bytes are left after the first step. */
        evw_arm(EVW_SENDMSG, fds[1],
                (evw_step[]){EVW_SHORT((int)k), EVW_ERR(EINTR), EVW_SHORT(1), EVW_ERR(EAGAIN),
                             EVW_SHORT((int)(k % 7) + 1)},
                5);
        int released = 0;
        size_t len;
        char *want = push_mixed(c, &released, &len);
        total = len;
        assert_int_equal(evc_chat_output_pending(c) > 0, 1);
        evc_chat_close_when_done(c);
        assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
        if (evw_pending(EVW_SENDMSG) != 0)
            fail_msg("k=%zu: %zu steps left after %lu sendmsg calls", k,
                     evw_pending(EVW_SENDMSG), evw_count(EVW_SENDMSG));
        peer_expect(fds[0], want, len);
        assert_true(peer_sees_end(fds[0]));
        assert_int_equal(released, 1);
        assert_int_equal(r.n_close + r.n_error, 0);
        free(want);
        close(fds[0]);
        evt_loop_finish(loop);
        evt_recorder_free(&r);
        if (k + 2 >= total)   /* the last k that leaves two bytes after it */
            break;
    }
    assert_true(total > 300);
}

static void test_write_eagain_arms_write_interest(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_recorder r = {0};
    evc_chat *c = pair_chat(&r, loop, fds, NULL);
    evw_fail(EVW_SENDMSG, fds[1], EAGAIN, 3);
    assert_int_equal(evc_chat_push_str(c, "eventually"), 0);
    /* The first try (before the loop sleeps) meets a full socket; the chat must
     * wait for writability, not give up and not spin. */
    evt_run_for(loop, 0.05);
    assert_int_equal(evw_pending(EVW_SENDMSG), 0);
    unsigned long calls = evw_count(EVW_SENDMSG);
    assert_true(calls >= 4 && calls < 20);
    peer_expect(fds[0], "eventually", 10);
    assert_int_equal(evc_chat_output_pending(c), 0);
    assert_int_equal(r.n_close + r.n_error, 0);
    /* Once written, the chat stops asking to write. */
    evt_run_for(loop, 0.05);
    assert_int_equal(evw_count(EVW_SENDMSG), calls);
    evc_chat_close(c);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

static void write_fails_case(int err, bool is_close)
{
    evw_reset();
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_recorder r = {0};
    evc_chat *c = pair_chat(&r, loop, fds, NULL);
    evw_fail(EVW_SENDMSG, fds[1], err, 1);
    int released = 0;
    assert_int_equal(evc_chat_push_ref(c, S("lost"), evt_count_release, &released), 0);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    if (is_close) {
        assert_int_equal(r.n_close, 1);
        assert_int_equal(r.n_error, 0);
    } else {
        assert_int_equal(r.n_error, 1);
        assert_int_equal(r.last_err, -err);
        assert_int_equal(r.n_close, 0);
    }
    assert_int_equal(released, 1);
    assert_true(peer_sees_end(fds[0]));
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

static void test_write_peer_gone_is_a_close(void **state)
{
    (void)state;
    write_fails_case(EPIPE, true);
    write_fails_case(ECONNRESET, true);
}

static void test_write_error_is_an_error(void **state)
{
    (void)state;
    write_fails_case(ENOMEM, false);
    write_fails_case(ENOBUFS, false);
    write_fails_case(EIO, false);
}

static void test_pipe_writes_short_and_eagain(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int p[2];
    assert_int_equal(pipe(p), 0);
    evt_recorder r = {0};
    evt_recorder_new(&r, loop, p[1], REC_FAULTS);
    evw_arm(EVW_WRITEV, p[1],
            (evw_step[]){EVW_SHORT(3), EVW_ERR(EAGAIN), EVW_ERR(EINTR), EVW_SHORT(1)}, 4);
    int released = 0;
    size_t len;
    char *want = push_mixed(r.chat, &released, &len);
    evc_chat_close_when_done(r.chat);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    assert_int_equal(evw_pending(EVW_WRITEV), 0);
    char *got = malloc(len + 1);
    assert_non_null(got);
    size_t n = 0;
    ssize_t k;
    while ((k = read(p[0], got + n, len + 1 - n)) > 0)
        n += (size_t)k;
    assert_int_equal(k, 0);
    assert_int_equal(n, len);
    assert_memory_equal(got, want, len);
    assert_int_equal(released, 1);
    free(got);
    free(want);
    close(p[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

static void test_connect_failing_at_once_calls_nothing(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    evt_recorder r = {0};
    evt_recorder_new(&r, loop, -1, REC_FAULTS);
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(evc_addr_parse("127.0.0.1:9", &ss, &len), 0);
    evw_fail(EVW_CONNECT, -1, ENETUNREACH, 1);
    assert_int_equal(evc_chat_connect(r.chat, (struct sockaddr *)&ss, len), -ENETUNREACH);
    evt_run_for(loop, 0.02);
    assert_int_equal(r.n_close + r.n_error, 0);
    evc_chat_close(r.chat);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
    assert_int_equal(r.n_destroy, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_eagain_and_eintr, reset_wrap, reset_wrap),
        cmocka_unit_test_setup_teardown(test_short_reads_keep_frames, reset_wrap, reset_wrap),
        cmocka_unit_test_setup_teardown(test_read_reset_is_a_close, reset_wrap, reset_wrap),
        cmocka_unit_test_setup_teardown(test_read_error_is_an_error, reset_wrap, reset_wrap),
        cmocka_unit_test_setup_teardown(test_read_fake_eof_is_a_close, reset_wrap, reset_wrap),
        cmocka_unit_test_setup_teardown(test_short_writes_at_every_offset, reset_wrap, reset_wrap),
        cmocka_unit_test_setup_teardown(test_write_eagain_arms_write_interest, reset_wrap,
                                        reset_wrap),
        cmocka_unit_test_setup_teardown(test_write_peer_gone_is_a_close, reset_wrap, reset_wrap),
        cmocka_unit_test_setup_teardown(test_write_error_is_an_error, reset_wrap, reset_wrap),
        cmocka_unit_test_setup_teardown(test_pipe_writes_short_and_eagain, reset_wrap, reset_wrap),
        cmocka_unit_test_setup_teardown(test_connect_failing_at_once_calls_nothing, reset_wrap,
                                        reset_wrap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

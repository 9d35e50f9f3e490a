/*
 * What a chat delivers from its input, over real loopback sockets and a real
 * loop: asynchat's line, count and no-terminator scenarios fed in small
 * chunks, empty and binary terminators, the default collector (in place, and
 * assembled across reads), frames that keep their terminator, lines giving
 * exactly the frames the general rules give however the bytes arrive, a
 * terminator changed or the input discarded inside found_terminator with more
 * input buffered, and a held prefix delivered at EOF.
 *
 * Every chat is a recording chat (tests/support.h) over one end of a TCP
 * pair; the test's end feeds it.  Every test ends with the loop empty.
 */
#include "support.h"
#include "evchat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A string literal and its length. */
#define S(lit) (lit), (sizeof(lit) - 1)

/* The frames a stream gives with a one-or-more-byte terminator (the leftmost match
 * first, as a reader going byte by byte finds it), as evt_bytes_add_frame records them.
 * Returns how many. */
static int expected_frames(evt_bytes *out, const char *s, size_t n, const char *term, bool keep)
{
    size_t tl = strlen(term), start = 0;
    int frames = 0;
    for (size_t i = 0; i + tl <= n;) {
        if (memcmp(s + i, term, tl) == 0) {
            evt_bytes_add_frame(out, s + start, i - start + (keep ? tl : 0));
            frames++;
            i += tl;
            start = i;
        } else {
            i++;
        }
    }
    return frames;
}

/* ------------------------------------------------------------------ */
/* Terminators: asynchat's line, numeric and none tests                */
/* ------------------------------------------------------------------ */

static void line_case(const char *term, size_t chunk)
{
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_set_nodelay(fds[0]);
    evt_recorder r = {0};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
    assert_int_equal(evc_chat_set_terminator(c, term), 0);

    char msg[128];
    snprintf(msg, sizeof msg, "hello world%sI'm not dead yet!%s", term, term);
    evt_feeder f;
    evt_feeder_start(&f, loop, fds[0], msg, strlen(msg), chunk, 0.001);
    assert_true(evt_run_until(loop, &f.done, 10.0));
    assert_true(evt_run_until_count(loop, &r.n_found, 2, 5.0));
    evt_run_for(loop, 0.01);

    static const char *const want[] = {"hello world", "I'm not dead yet!"};
    evt_recorder_assert_frames(&r, want, 2);
    assert_int_equal(r.n_close + r.n_error, 0);

    evt_feeder_stop(&f);
    evc_chat_close(c);
    close(fds[0]);
    evt_loop_finish(loop);
    assert_int_equal(r.n_destroy, 1);
    evt_recorder_free(&r);
}

static void test_line_terminators_in_small_chunks(void **state)
{
    (void)state;
    static const char *const terms[] = {"\n", "\r\n", "qqq"};
    for (size_t t = 0; t < 3; t++)
        for (size_t chunk = 1; chunk <= 3; chunk++)
            line_case(terms[t], chunk);
}

static const char numeric_msg[] = "hello world, I'm not dead yet!\n";

static void count_case(uint64_t n, size_t chunk)
{
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_set_nodelay(fds[0]);
    evt_recorder r = {.want_all = strlen(numeric_msg)};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
    assert_int_equal(evc_chat_set_terminator_count(c, n), 0);

    evt_feeder f;
    evt_feeder_start(&f, loop, fds[0], numeric_msg, strlen(numeric_msg), chunk, 0.001);
    assert_true(evt_run_until(loop, &r.have_all, 10.0));
    evt_run_for(loop, 0.01);

    /* Nothing of a count terminator is dropped: every byte is collected. */
    assert_int_equal(r.all.len, strlen(numeric_msg));
    assert_string_equal(r.all.p, numeric_msg);
    if (n == 0) {
        /* A count of 0 is an empty frame (asynchat: none); the rest is data. */
        assert_int_equal(r.n_found, 1);
        assert_int_equal(r.frame_len[0], 0);
    } else {
        assert_int_equal(r.n_found, 1);
        assert_int_equal(r.frame_len[0], n);
        assert_memory_equal(r.frames[0], numeric_msg, n);
        /* After the count ran out, the rest behaves like no terminator. */
        assert_string_equal(r.cur.p, numeric_msg + n);
    }
    evc_terminator t = evc_chat_get_terminator(c);
    assert_int_equal(t.kind, EVC_TERM_COUNT);
    assert_int_equal(t.count, 0);

    evt_feeder_stop(&f);
    evc_chat_close(c);
    close(fds[0]);
    evt_loop_finish(loop);
    assert_int_equal(r.n_destroy, 1);
    evt_recorder_free(&r);
}

static void test_count_terminators(void **state)
{
    (void)state;
    count_case(1, 31);
    count_case(1, 1);
    count_case(6, 31);
    count_case(6, 2);
    count_case(0, 31);
    count_case(0, 3);
}

static void test_no_terminator_collects_everything(void **state)
{
    (void)state;
    static const char msg[] = "hello\nworld\r\nqqq and no end";
    for (int variant = 0; variant < 3; variant++) {
        struct ev_loop *loop = evt_loop_new();
        int fds[2];
        evt_tcp_pair(fds);
        evt_recorder r = {.want_all = strlen(msg)};
        evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
        /* The default, the empty C string, and an explicit none. */
        assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
        if (variant == 0)
            evc_chat_set_terminator_none(c);
        else if (variant == 1)
            assert_int_equal(evc_chat_set_terminator(c, ""), 0);
        else
            assert_int_equal(evc_chat_set_terminator_bytes(c, "x", 0), 0);
        assert_int_equal(evc_chat_get_terminator(c).kind, EVC_TERM_NONE);

        evt_feeder f;
        evt_feeder_start(&f, loop, fds[0], msg, strlen(msg), 4, 0.001);
        assert_true(evt_run_until(loop, &r.have_all, 10.0));
        assert_string_equal(r.all.p, msg);
        assert_int_equal(r.n_found, 0);

        evt_feeder_stop(&f);
        evc_chat_close(c);
        close(fds[0]);
        evt_loop_finish(loop);
        evt_recorder_free(&r);
    }
}

static void test_terminator_starts_as_none(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_recorder r = {.want_all = 6};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
    assert_int_equal(evc_chat_get_terminator(c).kind, EVC_TERM_NONE);
    evt_send_all(fds[0], S("a\nb\r\n"));
    evt_send_all(fds[0], S("c"));
    assert_true(evt_run_until(loop, &r.have_all, 5.0));
    assert_string_equal(r.all.p, "a\nb\r\nc");
    assert_int_equal(r.n_found, 0);
    evc_chat_close(c);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

static void test_empty_lines_call_found_without_collect(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_recorder r = {0};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
    assert_int_equal(evc_chat_set_terminator(c, "\r\n"), 0);

    evt_send_all(fds[0], S("\r\n"));
    assert_true(evt_run_until_count(loop, &r.n_found, 1, 5.0));
    assert_int_equal(r.n_collect, 0);
    assert_int_equal(r.frame_len[0], 0);

    evt_send_all(fds[0], S("a\r\n\r\n"));
    assert_true(evt_run_until_count(loop, &r.n_found, 3, 5.0));
    static const char *const want[] = {"", "a", ""};
    evt_recorder_assert_frames(&r, want, 3);
    assert_int_equal(r.n_collect, 1);

    evc_chat_close(c);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

static void test_binary_terminator_with_nul(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_recorder r = {0};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
    assert_int_equal(evc_chat_set_terminator_bytes(c, "\0\1", 2), 0);
    evc_terminator t = evc_chat_get_terminator(c);
    assert_int_equal(t.kind, EVC_TERM_BYTES);
    assert_int_equal(t.len, 2);
    assert_memory_equal(t.bytes, "\0\1", 2);

    evt_send_all(fds[0], S("ab\0\1\0c\0\1"));
    assert_true(evt_run_until_count(loop, &r.n_found, 2, 5.0));
    assert_int_equal(r.frame_len[0], 2);
    assert_memory_equal(r.frames[0], "ab", 2);
    assert_int_equal(r.frame_len[1], 2);
    assert_memory_equal(r.frames[1], "\0c", 2);

    evc_chat_close(c);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

static void test_default_collector_in_place_and_assembled(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_set_nodelay(fds[0]);
    evt_recorder r = {0};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_CLOSE | EVT_REC_ERROR);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);

    /* Two frames in one read: both handed over in place, back to back in the
     * read buffer, so the second starts right after the first and its "\n". */
    evt_send_all(fds[0], S("hello\nworld!\n"));
    assert_true(evt_run_until_count(loop, &r.n_found, 2, 5.0));
    static const char *const want2[] = {"hello", "world!"};
    evt_recorder_assert_frames(&r, want2, 2);
    assert_ptr_equal(r.incoming_ptr[1], r.incoming_ptr[0] + 6);

    /* A frame spread over many reads is assembled whole. */
    static const char spread[] = "spanning several reads\n";
    evt_feeder f;
    evt_feeder_start(&f, loop, fds[0], spread, strlen(spread), 2, 0.002);
    assert_true(evt_run_until_count(loop, &r.n_found, 3, 10.0));
    assert_string_equal(r.frames[2], "spanning several reads");

    /* An empty frame. */
    evt_send_all(fds[0], S("\n"));
    assert_true(evt_run_until_count(loop, &r.n_found, 4, 5.0));
    assert_int_equal(r.frame_len[3], 0);
    assert_int_equal(r.n_collect, 0);

    evt_feeder_stop(&f);
    evc_chat_close(c);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

/* ------------------------------------------------------------------ */
/* A "line, then N bytes" protocol: terminator changed in found        */
/* ------------------------------------------------------------------ */

static void len_protocol_hook(evt_recorder *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    evc_chat *c = r->chat;
    evc_terminator t = evc_chat_get_terminator(c);
    if (t.kind == EVC_TERM_BYTES) {
        unsigned n = 0;
        assert_int_equal(sscanf(r->frames[r->n_frames - 1], "LEN %u", &n), 1);
        assert_int_equal(evc_chat_set_terminator_count(c, n), 0);
    } else {
        assert_int_equal(t.kind, EVC_TERM_COUNT);
        assert_int_equal(t.count, 0);
        assert_int_equal(evc_chat_set_terminator(c, "\r\n"), 0);
    }
}

static void test_terminator_changed_in_found_applies_to_buffered(void **state)
{
    (void)state;
    static const char msg[] = "LEN 5\r\nhelloLEN 2\r\nhiLEN 0\r\n";
    static const size_t chunks[] = {1, 2, 3, 0};   /* 0: all at once */
    for (size_t k = 0; k < ARRAY_LEN(chunks); k++) {
        size_t chunk = chunks[k];
        struct ev_loop *loop = evt_loop_new();
        int fds[2];
        evt_tcp_pair(fds);
        evt_set_nodelay(fds[0]);
        evt_recorder r = {.on_frame = len_protocol_hook};
        evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
        assert_int_equal(evc_chat_set_terminator(c, "\r\n"), 0);

        if (chunk == 0) {
            /* All of it in one read: the count applies to bytes already buffered. */
            evt_send_all(fds[0], S(msg));
        } else {
            evt_feeder f;
            evt_feeder_start(&f, loop, fds[0], msg, strlen(msg), chunk, 0.001);
            assert_true(evt_run_until(loop, &f.done, 10.0));
            evt_feeder_stop(&f);
        }
        assert_true(evt_run_until_count(loop, &r.n_found, 6, 5.0));
        evt_run_for(loop, 0.01);
        /* "LEN 0" sets count 0, an empty frame at once (asynchat: none, which
         * swallowed the rest of the connection). */
        static const char *const want[] = {"LEN 5", "hello", "LEN 2", "hi", "LEN 0", ""};
        evt_recorder_assert_frames(&r, want, 6);

        evc_chat_close(c);
        close(fds[0]);
        evt_loop_finish(loop);
        evt_recorder_free(&r);
    }
}

static void test_get_terminator_and_setters_reject_null(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_recorder r = {.want_all = 4};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);

    assert_int_equal(evc_chat_set_terminator(c, "\r\n\r\n"), 0);
    evc_terminator t = evc_chat_get_terminator(c);
    assert_int_equal(t.kind, EVC_TERM_BYTES);
    assert_int_equal(t.len, 4);
    assert_memory_equal(t.bytes, "\r\n\r\n", 4);

    /* Rejected setters leave the terminator alone. */
    assert_int_equal(evc_chat_set_terminator(c, NULL), -EINVAL);
    assert_int_equal(evc_chat_set_terminator(NULL, "\n"), -EINVAL);
    assert_int_equal(evc_chat_set_terminator_bytes(c, NULL, 3), -EINVAL);
    assert_int_equal(evc_chat_set_terminator_bytes(NULL, "\n", 1), -EINVAL);
    assert_int_equal(evc_chat_set_terminator_count(NULL, 3), -EINVAL);
    evc_chat_set_terminator_none(NULL);
    t = evc_chat_get_terminator(c);
    assert_int_equal(t.kind, EVC_TERM_BYTES);
    assert_int_equal(t.len, 4);

    /* The terminator is a copy: the caller's buffer may change. */
    char mine[] = "END";
    assert_int_equal(evc_chat_set_terminator_bytes(c, mine, 3), 0);
    mine[0] = 'X';
    t = evc_chat_get_terminator(c);
    assert_memory_equal(t.bytes, "END", 3);

    /* A count shows what is still to come. */
    assert_int_equal(evc_chat_set_terminator_count(c, 10), 0);
    t = evc_chat_get_terminator(c);
    assert_int_equal(t.kind, EVC_TERM_COUNT);
    assert_int_equal(t.count, 10);
    evt_send_all(fds[0], S("abcd"));
    assert_true(evt_run_until(loop, &r.have_all, 5.0));
    t = evc_chat_get_terminator(c);
    assert_int_equal(t.kind, EVC_TERM_COUNT);
    assert_int_equal(t.count, 6);
    assert_int_equal(r.n_found, 0);

    evc_chat_set_terminator_none(c);
    assert_int_equal(evc_chat_get_terminator(c).kind, EVC_TERM_NONE);

    evc_chat_close(c);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

static void held_prefix_case(const char *term, const char *sent, bool full_close)
{
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_recorder r = {0};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
    assert_int_equal(evc_chat_set_terminator(c, term), 0);
    evt_send_all(fds[0], sent, strlen(sent));
    if (full_close)
        close(fds[0]);
    else
        shutdown(fds[0], SHUT_WR);
    assert_true(evt_run_until_count(loop, &r.n_close, 1, 5.0));
    /* Everything the peer sent was collected before handle_close. */
    assert_int_equal(r.at_close.len, strlen(sent));
    assert_memory_equal(r.at_close.p, sent, strlen(sent));
    assert_int_equal(r.n_found, 0);
    assert_true(evt_run_until_count(loop, &r.n_destroy, 1, 5.0));
    if (!full_close)
        close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

static void test_held_prefix_delivered_at_eof(void **state)
{
    (void)state;
    held_prefix_case("\r\n", "abc\r", false);
    held_prefix_case("\r\n", "abc\r", true);
    held_prefix_case("\r\n\r\n", "GET / HTTP/1.0\r\n\r", false);
    held_prefix_case("qqq", "abqq", false);
    held_prefix_case("\n", "no newline at all", false);
}

/* ------------------------------------------------------------------ */
/* Input discarded inside found_terminator                             */
/* ------------------------------------------------------------------ */

static void discard_hook(evt_recorder *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    if (r->n_found == 1)
        evc_chat_discard_buffers(r->chat);
}

static void test_discard_in_found_drops_buffered_input(void **state)
{
    (void)state;
    struct ev_loop *loop = evt_loop_new();
    int fds[2];
    evt_tcp_pair(fds);
    evt_recorder r = {.on_frame = discard_hook};
    evc_chat *c = evt_recorder_new(&r, loop, fds[1], EVT_REC_ALL);
    assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
    evt_send_all(fds[0], S("one\ntwo\nthree\npartial"));
    assert_true(evt_run_until_count(loop, &r.n_found, 1, 5.0));
    evt_run_for(loop, 0.02);
    assert_int_equal(r.n_found, 1);
    evt_send_all(fds[0], S("four\n"));
    assert_true(evt_run_until_count(loop, &r.n_found, 2, 5.0));
    static const char *const want[] = {"one", "four"};
    evt_recorder_assert_frames(&r, want, 2);
    evc_chat_close(c);
    close(fds[0]);
    evt_loop_finish(loop);
    evt_recorder_free(&r);
}

/* ------------------------------------------------------------------ */
/* Frames that keep their terminator                                   */
/* ------------------------------------------------------------------ */

static void keep_case(const char *term, unsigned ops, size_t chunk)
{
    evt_bytes msg = {0};
    const char *words[] = {"alpha", "", "b", "a somewhat longer line than the others", ""};
    for (size_t i = 0; i < ARRAY_LEN(words); i++) {
        evt_bytes_add(&msg, words[i], strlen(words[i]));
        evt_bytes_add(&msg, term, strlen(term));
    }
    evt_pair p;
    evt_pair_open(&p);
    evt_recorder r = {0};
    evc_chat *c = evt_recorder_open(&r, &p, ops, term);
    evc_chat_set_keep_terminator(c, true);
    evt_pair_feed(&p, msg.p, msg.len, &chunk, 1);
    assert_true(evt_run_until_count(p.loop, &r.n_found, (int)ARRAY_LEN(words), 5.0));

    evt_bytes want = {0};
    expected_frames(&want, msg.p, msg.len, term, true);
    assert_string_equal(r.framed.p, want.p);
    evt_bytes_free(&want);
    evt_bytes_free(&msg);
    evt_pair_close(&p, &r);
}

static void test_keep_terminator_default_collector(void **state)
{
    (void)state;
    static const char *const terms[] = {"\n", "\r\n", "abcd"};
    for (size_t t = 0; t < ARRAY_LEN(terms); t++) {
        keep_case(terms[t], EVT_REC_ERROR, 1);
        keep_case(terms[t], EVT_REC_ERROR, 0);
    }
}

static void test_keep_terminator_user_collector(void **state)
{
    (void)state;
    static const char *const terms[] = {"\n", "\r\n", "abcd"};
    for (size_t t = 0; t < ARRAY_LEN(terms); t++) {
        keep_case(terms[t], EVT_REC_COLLECT | EVT_REC_ERROR, 1);
        keep_case(terms[t], EVT_REC_COLLECT | EVT_REC_ERROR, 0);
    }
}

/* After the first frame keep is turned off, after the third on again: the frames
 * already buffered behind each change follow it. */
static void keep_toggle_hook(evt_recorder *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    if (r->n_found == 1)
        evc_chat_set_keep_terminator(r->chat, false);
    else if (r->n_found == 3)
        evc_chat_set_keep_terminator(r->chat, true);
}

static void test_keep_toggled_applies_to_buffered_lines(void **state)
{
    (void)state;
    const unsigned ops[] = {EVT_REC_ERROR, EVT_REC_COLLECT | EVT_REC_ERROR};
    for (size_t k = 0; k < ARRAY_LEN(ops); k++) {
        evt_pair p;
        evt_pair_open(&p);
        evt_recorder r = {.on_frame = keep_toggle_hook};
        evc_chat *c = evt_recorder_open(&r, &p, ops[k], "\n");
        evc_chat_set_keep_terminator(c, true);
        evt_send_all(p.peer, "one\ntwo\nthree\nfour\n\n", 20);
        assert_true(evt_run_until_count(p.loop, &r.n_found, 5, 5.0));
        assert_string_equal(r.framed.p, "4:one\n|3:two|5:three|5:four\n|1:\n|");
        evt_pair_close(&p, &r);
    }
}

/* A count terminator has no terminator bytes: keep changes nothing. */
static void count_hook(evt_recorder *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    if (r->n_found == 1)
        evc_chat_set_terminator_count(r->chat, 5);
    else if (r->n_found == 2)
        evc_chat_set_terminator(r->chat, "\n");
}

static void test_keep_with_count_terminator(void **state)
{
    (void)state;
    evt_pair p;
    evt_pair_open(&p);
    evt_recorder r = {.on_frame = count_hook};
    evc_chat *c = evt_recorder_open(&r, &p, EVT_REC_ERROR, "\n");
    evc_chat_set_keep_terminator(c, true);
    evt_send_all(p.peer, "LEN 5\nhelloafter\n", 17);
    assert_true(evt_run_until_count(p.loop, &r.n_found, 3, 5.0));
    assert_string_equal(r.framed.p, "6:LEN 5\n|5:hello|6:after\n|");
    evt_pair_close(&p, &r);
}

/* Random bytes over the terminator's own letters (so partial and overlapping matches
 * are common), sent in random chunks down to single bytes: with either collector and
 * keep on or off, the frames are the leftmost-match split of what was sent. */
static void multibyte_case(const char *term, unsigned ops, bool keep,
                           unsigned seed)
{
    const char *alphabet = term;
    size_t na = strlen(term);
    evt_bytes msg = {0};
    for (int i = 0; i < 3000; i++) {
        unsigned x = (unsigned)rand_r(&seed);
        char ch = x % 8 == 0 ? 'x' : alphabet[(x >> 3) % na];
        evt_bytes_add(&msg, &ch, 1);
    }
    evt_bytes_adds(&msg, term);
    size_t chunks[32];
    for (size_t i = 0; i < ARRAY_LEN(chunks); i++)
        chunks[i] = 1 + (size_t)rand_r(&seed) % (i % 2 ? 3 : 200);

    evt_bytes want = {0};
    int frames = expected_frames(&want, msg.p, msg.len, term, keep);
    evt_pair p;
    evt_pair_open(&p);
    evt_recorder r = {0};
    evc_chat *c = evt_recorder_open(&r, &p, ops, term);
    evc_chat_set_keep_terminator(c, keep);
    evt_pair_feed(&p, msg.p, msg.len, chunks, ARRAY_LEN(chunks));
    assert_true(evt_run_until_count(p.loop, &r.n_found, frames, 5.0));
    assert_int_equal(r.framed.len, want.len);
    assert_memory_equal(r.framed.p, want.p, want.len);
    evt_bytes_free(&want);
    evt_bytes_free(&msg);
    evt_pair_close(&p, &r);
}

static void test_keep_multibyte_terminators_in_random_splits(void **state)
{
    (void)state;
    static const char *const terms[] = {"\r\n", "abcd", "aab", "abab"};
    for (size_t t = 0; t < ARRAY_LEN(terms); t++) {
        for (unsigned keep = 0; keep < 2; keep++) {
            multibyte_case(terms[t], EVT_REC_ERROR, keep, 11 + (unsigned)t);
            multibyte_case(terms[t], EVT_REC_COLLECT | EVT_REC_ERROR, keep, 21 + (unsigned)t);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Lines give what the general rules give, however the bytes arrive  */
/* ------------------------------------------------------------------ */

static void lines_case(bool keep, unsigned ops, unsigned seed, size_t total)
{
    evt_bytes msg = {0};
    evt_random_lines(&msg, total, &seed);
    size_t chunks[64];
    for (size_t i = 0; i < ARRAY_LEN(chunks); i++)
        chunks[i] = 1 + (size_t)rand_r(&seed) % (i % 4 == 0 ? 5 : 700);

    evt_pair p;
    evt_pair_open(&p);
    evt_recorder r = {0};
    evc_chat *c = evt_recorder_open(&r, &p, ops, "\n");
    evc_chat_set_keep_terminator(c, keep);
    evt_bytes want = {0};
    expected_frames(&want, msg.p, msg.len, "\n", keep);
    int lines = 0;
    for (size_t i = 0; i < msg.len; i++)
        lines += msg.p[i] == '\n';

    evt_pair_feed(&p, msg.p, msg.len, chunks, ARRAY_LEN(chunks));
    assert_true(evt_run_until_count(p.loop, &r.n_found, lines, 10.0));
    assert_int_equal(r.framed.len, want.len);
    assert_memory_equal(r.framed.p, want.p, want.len);
    evt_bytes_free(&want);
    evt_bytes_free(&msg);
    evt_pair_close(&p, &r);
}

static void test_lines_equal_split_on_newline(void **state)
{
    (void)state;
    for (unsigned seed = 1; seed <= 4; seed++) {
        lines_case(false, EVT_REC_ERROR, seed, 40000);
        lines_case(true, EVT_REC_ERROR, seed, 40000);
    }
    /* The general path (a user collector) agrees on the same inputs. */
    lines_case(false, EVT_REC_COLLECT | EVT_REC_ERROR, 3, 40000);
    lines_case(true, EVT_REC_COLLECT | EVT_REC_ERROR, 3, 40000);
}

/* Much more than one read's worth sent at once: lines straddle reads and read blocks. */
static void test_large_burst_of_lines(void **state)
{
    (void)state;
    lines_case(false, EVT_REC_ERROR, 77, 600000);
    lines_case(true, EVT_REC_ERROR, 78, 600000);
}

/* ------------------------------------------------------------------ */
/* Changes made inside found_terminator with many lines buffered       */
/* ------------------------------------------------------------------ */

/* memcache-style: "LEN n" lines, then n bytes, then lines again. */
static void len_hook(evt_recorder *r, const char *frame, size_t len)
{
    unsigned n;
    char text[32] = "";   /* a frame is not NUL-terminated */
    if (len < sizeof text)
        memcpy(text, frame, len);
    if (len > 4 && memcmp(frame, "LEN ", 4) == 0 && sscanf(text + 4, "%u", &n) == 1)
        evc_chat_set_terminator_count(r->chat, n);
    else if (evc_chat_get_terminator(r->chat).kind == EVC_TERM_COUNT)
        evc_chat_set_terminator(r->chat, "\n");
}

static void test_count_set_inside_found_applies_to_buffered_bytes(void **state)
{
    (void)state;
    static const char msg[] = "LEN 5\nhe\nloa\nLEN 3\nxyzb\n\n";
    evt_pair p;
    evt_pair_open(&p);
    evt_recorder r = {.on_frame = len_hook};
    evt_recorder_open(&r, &p, EVT_REC_ERROR, "\n");
    evt_send_all(p.peer, msg, sizeof msg - 1);   /* one write: everything is buffered */
    assert_true(evt_run_until_count(p.loop, &r.n_found, 7, 5.0));
    evt_run_for(p.loop, 0.01);
    assert_string_equal(r.framed.p, "5:LEN 5|5:he\nlo|1:a|5:LEN 3|3:xyz|1:b|0:|");
    evt_pair_close(&p, &r);
}

/* The same protocol at length: records of "LEN n" lines and n-byte payloads (which
 * hold newlines) between plain lines, in random chunks, so the switches between the
 * line fast path and the count fall anywhere relative to reads. */
static void memcache_case(bool keep, unsigned seed)
{
    evt_bytes msg = {0}, want = {0};
    int frames = 0;
    while (msg.len < 60000) {
        unsigned x = (unsigned)rand_r(&seed);
        char line[32];
        if (x % 3 == 0) {
            size_t n = 1 + (x >> 2) % 2000;
            int h = snprintf(line, sizeof line, "LEN %zu\n", n);
            evt_bytes_add(&msg, line, (size_t)h);
            evt_bytes_add_frame(&want, line, (size_t)h - (keep ? 0 : 1));
            size_t at = msg.len;
            for (size_t i = 0; i < n; i++) {
                char ch = rand_r(&seed) % 5 == 0 ? '\n' : (char)('a' + rand_r(&seed) % 26);
                evt_bytes_add(&msg, &ch, 1);
            }
            evt_bytes_add_frame(&want, msg.p + at, n);   /* a count keeps nothing */
            frames += 2;
        } else {
            size_t n = (x >> 2) % 70;
            for (size_t i = 0; i < n; i++)
                line[i % sizeof line] = (char)('a' + i % 26);
            size_t at = msg.len;
            for (size_t i = 0; i < n; i++)
                evt_bytes_add(&msg, &line[i % sizeof line], 1);
            evt_bytes_add(&msg, "\n", 1);
            evt_bytes_add_frame(&want, msg.p + at, n + (keep ? 1 : 0));
            frames++;
        }
    }
    size_t chunks[40];
    for (size_t i = 0; i < ARRAY_LEN(chunks); i++)
        chunks[i] = 1 + (size_t)rand_r(&seed) % (i % 5 == 0 ? 9 : 3000);

    evt_pair p;
    evt_pair_open(&p);
    evt_recorder r = {.on_frame = len_hook};
    evc_chat *c = evt_recorder_open(&r, &p, EVT_REC_ERROR, "\n");
    evc_chat_set_keep_terminator(c, keep);
    evt_pair_feed(&p, msg.p, msg.len, chunks, ARRAY_LEN(chunks));
    assert_true(evt_run_until_count(p.loop, &r.n_found, frames, 5.0));
    assert_int_equal(r.framed.len, want.len);
    assert_memory_equal(r.framed.p, want.p, want.len);
    evt_bytes_free(&want);
    evt_bytes_free(&msg);
    evt_pair_close(&p, &r);
}

static void test_count_and_lines_interleaved_in_random_chunks(void **state)
{
    (void)state;
    for (unsigned seed = 1; seed <= 3; seed++) {
        memcache_case(false, seed);
        memcache_case(true, 100 + seed);
    }
}

static void crlf_hook(evt_recorder *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    if (r->n_found == 2)
        evc_chat_set_terminator(r->chat, "\r\n");
}

static void test_terminator_changed_to_crlf_inside_found(void **state)
{
    (void)state;
    evt_pair p;
    evt_pair_open(&p);
    evt_recorder r = {.on_frame = crlf_hook};
    evt_recorder_open(&r, &p, EVT_REC_ERROR, "\n");
    static const char msg[] = "a\nb\nc\nd\r\ne\r\n";
    evt_send_all(p.peer, msg, sizeof msg - 1);
    assert_true(evt_run_until_count(p.loop, &r.n_found, 4, 5.0));
    evt_run_for(p.loop, 0.01);
    assert_string_equal(r.framed.p, "1:a|1:b|3:c\nd|1:e|");
    evt_pair_close(&p, &r);
}

static void discard_rest_hook(evt_recorder *r, const char *frame, size_t len)
{
    (void)frame, (void)len;
    if (r->n_found == 3) {
        /* Output pushed before the discard (into the queue's reserve) goes with it. */
        r->results[0] = evc_chat_push(r->chat, "dropped", 7);
        evc_chat_discard_buffers(r->chat);
        r->results[1] = evc_chat_push(r->chat, "kept\n", 5);
    }
}

static void test_discard_inside_found_drops_the_rest(void **state)
{
    (void)state;
    evt_pair p;
    evt_pair_open(&p);
    evt_recorder r = {.on_frame = discard_rest_hook};
    evt_recorder_open(&r, &p, EVT_REC_ERROR, "\n");
    evt_send_all(p.peer, "1\n2\n3\n4\n5\n6\n", 12);
    assert_true(evt_run_until_count(p.loop, &r.n_found, 3, 5.0));
    evt_run_for(p.loop, 0.05);
    assert_string_equal(r.framed.p, "1:1|1:2|1:3|");
    /* The chat goes on with what comes next. */
    evt_send_all(p.peer, "7\n", 2);
    assert_true(evt_run_until_count(p.loop, &r.n_found, 4, 5.0));
    assert_string_equal(r.framed.p, "1:1|1:2|1:3|1:7|");
    assert_int_equal(r.results[0], 0);
    assert_int_equal(r.results[1], 0);
    evt_bytes got = {0};
    evt_pair_drain_exact(&p, &got, 5);
    assert_string_equal(got.p, "kept\n");
    evt_run_for(p.loop, 0.02);
    char extra;
    assert_true(recv(p.peer, &extra, 1, 0) < 0);
    evt_bytes_free(&got);
    evt_pair_close(&p, &r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_terminators_in_small_chunks),
        cmocka_unit_test(test_count_terminators),
        cmocka_unit_test(test_no_terminator_collects_everything),
        cmocka_unit_test(test_terminator_starts_as_none),
        cmocka_unit_test(test_empty_lines_call_found_without_collect),
        cmocka_unit_test(test_binary_terminator_with_nul),
        cmocka_unit_test(test_default_collector_in_place_and_assembled),
        cmocka_unit_test(test_terminator_changed_in_found_applies_to_buffered),
        cmocka_unit_test(test_get_terminator_and_setters_reject_null),
        cmocka_unit_test(test_held_prefix_delivered_at_eof),
        cmocka_unit_test(test_discard_in_found_drops_buffered_input),
        cmocka_unit_test(test_keep_terminator_default_collector),
        cmocka_unit_test(test_keep_terminator_user_collector),
        cmocka_unit_test(test_keep_toggled_applies_to_buffered_lines),
        cmocka_unit_test(test_keep_with_count_terminator),
        cmocka_unit_test(test_keep_multibyte_terminators_in_random_splits),
        cmocka_unit_test(test_lines_equal_split_on_newline),
        cmocka_unit_test(test_large_burst_of_lines),
        cmocka_unit_test(test_count_set_inside_found_applies_to_buffered_bytes),
        cmocka_unit_test(test_count_and_lines_interleaved_in_random_chunks),
        cmocka_unit_test(test_terminator_changed_to_crlf_inside_found),
        cmocka_unit_test(test_discard_inside_found_drops_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

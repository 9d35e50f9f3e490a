/*
 * Test helpers for wrapping producers; see producer_script.h.
 */
#include "producer_script.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint32_t evt_rand(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

static ssize_t script_more(evc_producer *p, void *buf, size_t cap, void *data)
{
    evt_script *s = data;
    (void)p;
    assert_true(cap > 0);
    s->calls++;
    if (s->ended) {
        s->calls_after_end++;
        return s->end_answer;
    }
    if (s->seed && (int)(evt_rand(&s->seed) % 100) < s->not_yet_pct) {
        s->not_yets++;
        return EVC_NOT_YET;
    }
    if (s->fail_err && s->pos >= s->fail_at) {
        s->ended = true;
        s->end_answer = s->fail_err;
        return s->fail_err;
    }
    size_t n = s->len - s->pos;
    if (s->fail_err && n > s->fail_at - s->pos)
        n = s->fail_at - s->pos;
    size_t piece = s->piece;
    if (piece && s->seed)
        piece = 1 + evt_rand(&s->seed) % piece;
    if (piece && n > piece)
        n = piece;
    if (n > cap)
        n = cap;
    if (n == 0) {
        s->ended = true;
        return 0;
    }
    memcpy(buf, s->text + s->pos, n);
    s->pos += n;
    return (ssize_t)n;
}

static void script_destroy(evc_producer *p, void *data)
{
    evt_script *s = data;
    (void)p;
    s->destroyed++;
}

static const struct evc_producer_ops script_ops = {
    .more = script_more,
    .on_destroy = script_destroy,
};

evc_producer *evt_script_producer(evt_script *s)
{
    evc_producer *p = evc_producer_new(&script_ops, s);
    assert_non_null(p);
    return p;
}

int evt_pull_all(evc_producer *p, const size_t *caps, size_t ncaps, evt_bytes *out,
                 int *not_yets)
{
    /* Each buffer ends at a guard page: a producer writing past its cap crashes
     * the test there, whatever it writes. */
    size_t maxcap = 0;
    for (size_t i = 0; i < ncaps; i++)
        if (caps[i] > maxcap)
            maxcap = caps[i];
    evt_guarded room;
    evt_guarded_init(&room, maxcap);
    size_t turn = 0;
    for (long guard = 0;; guard++) {
        assert_true(guard < 50000000L);
        size_t cap = caps[turn++ % ncaps];
        char *buf = evt_guarded_end(&room) - cap;
        ssize_t r = evc_producer_more(p, buf, cap);
        if (r > 0) {
            assert_true((size_t)r <= cap);
            evt_bytes_add(out, buf, (size_t)r);
            continue;
        }
        if (r == EVC_NOT_YET) {
            if (not_yets)
                (*not_yets)++;
            continue;
        }
        /* Finished or failed: asked again, it says the same. */
        assert_int_equal(evc_producer_more(p, buf, cap), r);
        evt_guarded_free(&room);
        return (int)r;
    }
}

/* ------------------------------------------------------------------ */
/* Texts and references                                                */
/* ------------------------------------------------------------------ */

/* Medusa's test_string: 16385 digits, '0'..'9' repeating. */
char *evt_medusa_test_string(size_t *len)
{
    *len = 16385;
    char *t = malloc(*len + 1);
    assert_non_null(t);
    for (size_t i = 0; i < *len; i++)
        t[i] = (char)('0' + i % 10);
    t[*len] = '\0';
    return t;
}

/* Text over a small alphabet rich in CR, LF and '.', for the escaping tests. */
char *evt_dotty_text(size_t len, uint32_t seed)
{
    static const char alphabet[] = "\r\n.\r\n.a ";
    char *t = malloc(len + 1);
    assert_non_null(t);
    for (size_t i = 0; i < len; i++)
        t[i] = alphabet[evt_rand(&seed) % (sizeof alphabet - 1)];
    t[len] = '\0';
    return t;
}

/* str.replace(from, to), and for smtp a '.' at the start stuffed as well. */
void evt_replace_all(const char *t, size_t len, const char *from, const char *to, bool smtp,
                     evt_bytes *out)
{
    size_t flen = strlen(from), i = 0;
    if (smtp && len > 0 && t[0] == '.') {
        evt_bytes_adds(out, "..");
        i = 1;
    }
    while (i < len) {
        if (len - i >= flen && memcmp(t + i, from, flen) == 0) {
            evt_bytes_adds(out, to);
            i += flen;
        } else {
            evt_bytes_add(out, t + i++, 1);
        }
    }
}

/*
 * Decodes chunked coding strictly: lower-case hex sizes without leading zeros,
 * CRLFs where they belong, a last chunk, then trailer lines and an empty line
 * ending exactly at len.  Returns false on anything else.
 */
bool evt_chunked_decode(const char *in, size_t len, evt_bytes *body, evt_bytes *trailers)
{
    size_t i = 0;
    for (;;) {
        size_t size = 0, digits = 0;
        while (i < len && ((in[i] >= '0' && in[i] <= '9') || (in[i] >= 'a' && in[i] <= 'f'))) {
            size = size * 16 + (size_t)(in[i] <= '9' ? in[i] - '0' : in[i] - 'a' + 10);
            digits++;
            i++;
        }
        if (digits == 0 || (digits > 1 && in[i - digits] == '0'))
            return false;
        if (len - i < 2 || memcmp(in + i, "\r\n", 2) != 0)
            return false;
        i += 2;
        if (size == 0)
            break;
        if (len - i < size + 2 || memcmp(in + i + size, "\r\n", 2) != 0)
            return false;
        evt_bytes_add(body, in + i, size);
        i += size + 2;
    }
    /* Trailer lines up to the empty line. */
    for (;;) {
        const char *crlf = memmem(in + i, len - i, "\r\n", 2);
        if (!crlf)
            return false;
        size_t n = (size_t)(crlf - (in + i));
        if (n == 0)
            return i + 2 == len;
        evt_bytes_add(trailers, in + i, n + 2);
        i += n + 2;
    }
}

evc_producer *evt_simple(const char *text, size_t len, size_t piece)
{
    evc_producer *p = evc_simple_producer_new(text, len, piece);
    assert_non_null(p);
    return p;
}

void evt_assert_produces(evc_producer *p, const char *want, size_t want_len)
{
    static const size_t big_cap[] = {65536};
    evt_bytes got = {0};
    assert_int_equal(evt_pull_all(p, big_cap, 1, &got, NULL), 0);
    assert_int_equal(got.len, want_len);
    if (want_len)
        assert_memory_equal(got.p, want, want_len);
    evc_producer_free(p);
    evt_bytes_free(&got);
}

/* ------------------------------------------------------------------ */
/* Round trip through a chat                                           */
/* ------------------------------------------------------------------ */

typedef struct round_trip {
    evc_chat *chat;
    evt_bytes *got;
    int peer_fd;
    bool eof, destroyed;
    int errors;
    ev_io reader;
    ev_timer resumer;
} round_trip;

static void rt_error(evc_chat *c, int err, void *data)
{
    round_trip *rt = data;
    (void)err;
    rt->errors++;
    evc_chat_close(c);
}

static void rt_destroy(evc_chat *c, void *data)
{
    round_trip *rt = data;
    (void)c;
    rt->destroyed = true;
}

static const struct evc_chat_ops rt_ops = {
    .handle_error = rt_error,
    .on_destroy = rt_destroy,
};

static void rt_read(struct ev_loop *loop, ev_io *w, int revents)
{
    round_trip *rt = w->data;
    (void)revents;
    char buf[65536];
    ssize_t n = read(rt->peer_fd, buf, sizeof buf);
    if (n > 0) {
        evt_bytes_add(rt->got, buf, (size_t)n);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    rt->eof = true;
    ev_io_stop(loop, w);
}

static void rt_resume(struct ev_loop *loop, ev_timer *w, int revents)
{
    round_trip *rt = w->data;
    (void)revents;
    if (rt->destroyed || evc_chat_closed(rt->chat))
        ev_timer_stop(loop, w);
    else
        evc_chat_resume(rt->chat);
}

void evt_chat_round_trip(evc_producer *p, evt_bytes *got)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(loop);
    int fds[2];
    evt_tcp_pair(fds);
    assert_int_equal(fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK), 0);
    round_trip rt = {.got = got, .peer_fd = fds[0]};
    rt.chat = evc_chat_new(loop, fds[1], &rt_ops, &rt);
    assert_non_null(rt.chat);
    assert_int_equal(evc_chat_push_with_producer(rt.chat, p), 0);
    evc_chat_close_when_done(rt.chat);

    ev_io_init(&rt.reader, rt_read, fds[0], EV_READ);
    rt.reader.data = &rt;
    ev_io_start(loop, &rt.reader);
    ev_timer_init(&rt.resumer, rt_resume, 0.001, 0.001);
    rt.resumer.data = &rt;
    ev_timer_start(loop, &rt.resumer);

    assert_true(evt_run_until(loop, &rt.eof, 20.0));
    ev_io_stop(loop, &rt.reader);
    ev_timer_stop(loop, &rt.resumer);
    assert_true(evt_run_until(loop, &rt.destroyed, 5.0));
    assert_int_equal(rt.errors, 0);
    evt_assert_loop_empty(loop);
    ev_loop_destroy(loop);
    close(fds[0]);
}

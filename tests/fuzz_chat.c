/*
 * libFuzzer target for the chat itself: the read path, the engine and the
 * one delivery loop, with the framing changed from found_terminator.
 *
 * The input is a script and a stream.  The script chooses a collector (the
 * library's, or a custom one that keeps the pieces), a frame limit, and a list
 * of framings (byte strings, counts, line styles, none, netstrings, length
 * prefixes, count-then-delimiter); the chat starts with the first, and each
 * found_terminator sets the next, round the list.  The stream is sent over a
 * unix socket pair to a chat on a real loop twice: once in one write (the
 * reference: one read), once cut into random pieces with the loop run after
 * each, so every piece is a read of its own.  Then the peer shuts down.  The
 * target aborts unless both runs saw the same events: each frame's bytes, each
 * error, the close and the bytes a custom collector held at the close.  ASan
 * and UBSan watch every run.
 *
 * Script layout: flags, frame limit, split seed, framing count K (1 to 8),
 * then 3 bytes per framing (kind, a, b); the rest is the stream (at most
 * MAX_STREAM bytes, so that it fits in the socket buffer at once).
 */
#include "evchat.h"

#include <errno.h>
#include <ev.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_STREAM 8192
#define MAX_FRAMINGS 8
#define MAX_FRAMES 4096      /* then the terminator stays none: counts of 0 cannot loop for ever */
#define FLAG_CUSTOM_COLLECT 1u

typedef struct bytes {
    char *p;
    size_t len, cap;
} bytes;

static void add(bytes *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            abort();
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void addf(bytes *b, const char *tag, size_t n)
{
    char head[48];
    int k = snprintf(head, sizeof head, "%s%zu:", tag, n);
    add(b, head, (size_t)k);
}

typedef struct framing {
    uint8_t kind, a, b;
} framing;

typedef struct run {
    const framing *framings;
    size_t nframings;
    bool custom;
    size_t frames;
    bytes log;       /* the events */
    bytes piece;     /* the custom collector's frame so far */
    bool destroyed;
} run;

static const char alphabet[] = "\n\r;ab\0";

static void apply(evc_chat *c, const framing *f)
{
    char delim[3];
    size_t len = 1 + f->a % 3;
    for (size_t i = 0; i < len; i++)
        delim[i] = alphabet[(f->b >> (2 * i)) % 6];
    switch (f->kind % 7) {
    case 0:
        evc_chat_set_terminator_bytes(c, delim, len);
        break;
    case 1:
        evc_chat_set_terminator_count(c, f->a % 40);
        break;
    case 2:
        evc_chat_set_terminator_line(c, (evc_eol)(f->a % 4));
        break;
    case 3:
        evc_chat_set_terminator_none(c);
        break;
    case 4:
        evc_chat_set_terminator_netstring(c, 1 + (uint64_t)f->a * 4);
        break;
    case 5: {
        static const unsigned widths[] = {1, 2, 4, 8};
        evc_chat_set_terminator_prefix(c, widths[f->a % 4], f->b & 1, 1 + (uint64_t)f->b * 2);
        break;
    }
    case 6:
        evc_chat_set_terminator_count_then(c, f->a % 16, delim, len);
        break;
    }
}

static void collect(evc_chat *c, const char *p, size_t n, void *data)
{
    (void)c;
    run *r = data;
    add(&r->piece, p, n);
}

static void found(evc_chat *c, void *data)
{
    run *r = data;
    if (r->custom) {
        addf(&r->log, "F", r->piece.len);
        add(&r->log, r->piece.p, r->piece.len);
        r->piece.len = 0;
    } else {
        size_t len;
        const char *frame = evc_chat_incoming(c, &len);
        addf(&r->log, "F", len);
        add(&r->log, frame, len);
    }
    if (++r->frames >= MAX_FRAMES)
        evc_chat_set_terminator_none(c);
    else
        apply(c, &r->framings[r->frames % r->nframings]);
}

static void on_close(evc_chat *c, void *data)
{
    run *r = data;
    addf(&r->log, "X", r->piece.len);
    add(&r->log, r->piece.p, r->piece.len);
    evc_chat_close(c);
}

static void on_error(evc_chat *c, int err, void *data)
{
    run *r = data;
    addf(&r->log, "E", (size_t)-err);
    evc_chat_close_when_done(c);
}

static void on_too_long(evc_chat *c, void *data)
{
    run *r = data;
    addf(&r->log, "T", 0);
    (void)c;
}

static void on_destroy(evc_chat *c, void *data)
{
    (void)c;
    run *r = data;
    r->destroyed = true;
}

/* Runs the loop until the chat read everything sent so far (or went away). */
static void settle(struct ev_loop *loop, int fd, const run *r)
{
    for (int spins = 0; spins < 1000 && !r->destroyed; spins++) {
        int pending = 0;
        if (ioctl(fd, FIONREAD, &pending) < 0 || pending == 0) {
            ev_run(loop, EVRUN_NOWAIT);   /* a last pass for what the read left to deliver */
            return;
        }
        ev_run(loop, EVRUN_NOWAIT);
    }
}

/* One run: the stream in pieces (split seed != 0) or whole; the events into r->log. */
static void one_run(run *r, uint8_t flags, size_t max_frame, const uint8_t *stream, size_t len,
                    uint32_t seed)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    int sv[2];
    if (!loop || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    struct evc_chat_ops ops = {
        .collect_incoming_data = r->custom ? collect : NULL,
        .found_terminator = found,
        .handle_close = on_close,
        .handle_error = on_error,
        .frame_too_long = (flags & 2) ? on_too_long : NULL,
        .on_destroy = on_destroy,
    };
    evc_chat *c = evc_chat_new(loop, sv[1], &ops, r);
    if (!c)
        abort();
    if (max_frame)
        evc_chat_set_max_frame(c, max_frame);
    apply(c, &r->framings[0]);
    size_t sent = 0;
    while (sent < len) {
        size_t n = len - sent;
        if (seed) {
            seed ^= seed << 13, seed ^= seed >> 17, seed ^= seed << 5;
            size_t cut = 1 + seed % 64;
            n = cut < n ? cut : n;
        }
        if (send(sv[0], stream + sent, n, MSG_NOSIGNAL) != (ssize_t)n)
            break;   /* the chat closed on an error: the rest cannot matter */
        sent += n;
        if (seed)
            settle(loop, sv[1], r);
    }
    shutdown(sv[0], SHUT_WR);
    for (int spins = 0; spins < 10000 && !r->destroyed; spins++)
        ev_run(loop, EVRUN_NOWAIT);
    if (!r->destroyed)
        evc_chat_close(c);
    evc_close_all(loop);
    for (int spins = 0; spins < 100 && !r->destroyed; spins++)
        ev_run(loop, EVRUN_NOWAIT);
    if (!r->destroyed)
        abort();
    close(sv[0]);
    ev_loop_destroy(loop);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    uint8_t flags = data[0];
    size_t max_frame = data[1] ? (size_t)data[1] * 4 : 0;
    uint32_t seed = 0x9e3779b9u ^ data[2];
    size_t nframings = 1 + data[3] % MAX_FRAMINGS;
    size_t pos = 4;
    framing framings[MAX_FRAMINGS];
    for (size_t i = 0; i < nframings; i++) {
        if (pos + 3 > size)
            return 0;
        framings[i] = (framing){data[pos], data[pos + 1], data[pos + 2]};
        pos += 3;
    }
    const uint8_t *stream = data + pos;
    size_t len = size - pos;
    if (len > MAX_STREAM)
        len = MAX_STREAM;

    bool custom = flags & FLAG_CUSTOM_COLLECT;
    run whole = {framings, nframings, custom, 0, {0}, {0}, false};
    run split = {framings, nframings, custom, 0, {0}, {0}, false};
    one_run(&whole, flags, max_frame, stream, len, 0);
    one_run(&split, flags, max_frame, stream, len, seed);
    if (whole.log.len != split.log.len || (whole.log.len && memcmp(whole.log.p, split.log.p, whole.log.len))) {
        fprintf(stderr, "fuzz_chat: the split run saw other events than the whole one\n");
        fprintf(stderr, "whole: %.*s\nsplit: %.*s\n", (int)whole.log.len, whole.log.p,
                (int)split.log.len, split.log.p);
        abort();
    }
    free(whole.log.p);
    free(whole.piece.p);
    free(split.log.p);
    free(split.piece.p);
    return 0;
}

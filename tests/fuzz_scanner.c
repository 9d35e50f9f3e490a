/*
 * libFuzzer target for the framing engine.
 *
 * The first bytes of the input choose a terminator (any kind: a byte string, a
 * count, none, a line style, a delimiter set, count-then-delimiter, a length
 * prefix or netstrings), options (kept delimiters, switching terminators in
 * found_terminator), and split points; the rest is the stream.  The stream is fed
 * once whole and once cut at the split points, both through chat.c's caller
 * loop (held bytes kept in front of the next input), and the target aborts if
 * the two event streams differ, if a byte-string stream differs from the
 * obvious reference, or if any byte was not examined exactly once.  Each scan's
 * input is its own exact-size allocation, so ASan catches any over-read.
 * For a one-byte terminator the line cursor (lines.h, the chat's line fast
 * path) must also find exactly the positions memchr finds, in the whole stream
 * and in each piece between the split points.
 *
 * Header layout: kind, flags, then for a byte string, a line style, a set, a
 * count-then or a prefix a length and its bytes (the set's delimiters are
 * those bytes cut in up to four pieces; a line style or prefix reads its
 * options from them), for a count or count-then 8 little-endian bytes; then a
 * split count and 2 bytes per split.  Framing errors (-EPROTO) are events too:
 * the pieces before one are the same however the stream is split.
 */
#include "internal.h"
#include "lines.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FLAG_SMALL_ALPHABET 1u  /* map terminator and stream to "abc": many partial matches */
#define FLAG_COUNT_FITS 2u      /* a count small enough to be reached in this stream */
#define FLAG_SWITCH 4u          /* switch between the string and counts in found_terminator */
#define FLAG_KEEP 8u            /* frames keep their delimiter */
#define FLAG_NETSTRING 16u      /* kind 7: netstrings rather than a binary prefix */
#define MAX_TERM 80
#define MAX_SPLITS 32

typedef struct bytes {
    uint8_t *p;
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

/* Events: 'D' <8-byte length> <bytes> for a frame's data, 'F' for found. */
static void add_data(bytes *ev, const uint8_t *p, size_t n)
{
    uint64_t len = n;
    add(ev, "D", 1);
    add(ev, &len, sizeof(len));
    add(ev, p, n);
}

typedef struct spec {
    evc_terminator_kind kind;
    uint8_t term[MAX_TERM];
    size_t term_len;
    uint64_t count;
    unsigned flags;
    const char *delims[4];   /* EVC_TERM_ANY: pieces of term */
    size_t lens[4];
    size_t n;
} spec;

typedef struct feeder {
    const spec *sp;
    evc_scanner s;
    bytes events;
    bytes frame;
    uint8_t *held;      /* the undelivered bytes of the last input */
    size_t held_len;
    uint64_t fed;
    uint64_t passed;    /* bytes consumed */
    bool failed;        /* a framing error ended the stream */
} feeder;

static void apply(evc_scanner *s, const spec *sp)
{
    int rc = 0;
    evc__scanner_set_keep(s, (sp->flags & FLAG_KEEP) != 0);
    switch (sp->kind) {
    case EVC_TERM_BYTES:
        rc = evc__scanner_set_bytes(s, sp->term, sp->term_len);
        break;
    case EVC_TERM_COUNT:
        evc__scanner_set_count(s, sp->count);
        break;
    case EVC_TERM_LINE:
        rc = evc__scanner_set_line(s, (evc_eol)(sp->term[0] % 4));
        break;
    case EVC_TERM_ANY:
        rc = evc__scanner_set_any(s, sp->delims, sp->lens, sp->n);
        break;
    case EVC_TERM_COUNT_THEN:
        rc = evc__scanner_set_count_then(s, sp->count, sp->term, sp->term_len);
        break;
    case EVC_TERM_PREFIX:
        rc = evc__scanner_set_prefix(s, 1u << (sp->term[0] % 4), sp->term[0] & 4,
                                     sp->term_len > 1 ? sp->term[1] : 0);
        break;
    case EVC_TERM_NETSTRING:
        rc = evc__scanner_set_netstring(s, sp->term_len > 1 ? sp->term[1] : 0);
        break;
    case EVC_TERM_NONE:
    default:
        evc__scanner_set_none(s);
        break;
    }
    if (rc != 0)
        abort();
}

/* found_terminator: record, and with FLAG_SWITCH change the terminator based on
 * the frame (which is the same however the stream was split). */
static void found(feeder *f)
{
    if (f->frame.len)
        add_data(&f->events, f->frame.p, f->frame.len);
    add(&f->events, "F", 1);
    if (f->sp->flags & FLAG_SWITCH) {
        if (f->s.kind == EVC_TERM_BYTES)
            evc__scanner_set_count(&f->s, f->frame.len % 7);   /* 0: an empty frame */
        else if (!(f->sp->kind == EVC_TERM_COUNT && f->sp->count == 0))
            apply(&f->s, f->sp);   /* (a count of 0 again and again would never end) */
    } else if (f->sp->kind == EVC_TERM_COUNT_THEN) {
        apply(&f->s, f->sp);   /* one frame per setting: re-arm, as RESP does */
    }
    f->frame.len = 0;
}

/* The line fast path's deliver (evc__scan_lines), as chat.c's. */
static bool deliver_whole(void *ctx, const char *frame, size_t n, size_t consumed)
{
    feeder *f = ctx;
    if (f->frame.len != 0 || n > consumed)
        abort();
    add(&f->frame, frame, n);
    f->passed += consumed;
    found(f);
    return true;
}

static void feed(feeder *f, const uint8_t *chunk, size_t n)
{
    size_t len = f->held_len + n;
    if (len == 0 && !evc__scanner_ready(&f->s))
        return;
    uint8_t *in = malloc(len ? len : 1);
    if (!in)
        abort();
    if (f->held_len)
        memcpy(in, f->held, f->held_len);
    if (n)
        memcpy(in + f->held_len, chunk, n);
    f->fed += n;

    const uint8_t *p = in;
    size_t left = len;
    while (!f->failed && (left || evc__scanner_ready(&f->s))) {
        if (f->frame.len == 0 && evc__scan_lines_apply(&f->s)) {
            size_t passed = evc__scan_lines(&f->s, (const char *)p, left, deliver_whole, f);
            p += passed;
            left -= passed;
            if (passed)
                continue;
        }
        bool ready = evc__scanner_ready(&f->s);
        evc_scan_result r = evc__scan_step(&f->s, (const char *)p, left);
        if (r.error) {
            if (r.consumed != 0)
                abort();
            if (f->frame.len)
                add_data(&f->events, f->frame.p, f->frame.len);
            add(&f->events, "E", 1);
            f->frame.len = 0;
            f->failed = true;
            break;
        }
        if (r.start + r.data_len > r.consumed || r.consumed > left ||
            (r.found && r.consumed == 0 && !ready))
            abort();
        add(&f->frame, p + r.start, r.data_len);
        p += r.consumed;
        left -= r.consumed;
        f->passed += r.consumed;
        if (r.found)
            found(f);
        else if (r.consumed == 0)
            break;
    }
    if (!f->failed && left != f->s.held + f->s.clean)
        abort();
    free(f->held);
    f->held = NULL;
    f->held_len = left;
    if (left) {
        f->held = malloc(left);
        if (!f->held)
            abort();
        memcpy(f->held, p, left);
    }
    free(in);
}

/* Feeds the stream cut at the given (sorted) offsets; the caller frees out. */
static void run(const spec *sp, const uint8_t *stream, size_t len, const size_t *cuts, size_t ncuts,
                bytes *out)
{
    feeder f;
    memset(&f, 0, sizeof(f));
    f.sp = sp;
    evc__scanner_init(&f.s);
    apply(&f.s, sp);
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t next = i < ncuts ? cuts[i] : len;
        feed(&f, stream + at, next - at);
        at = next;
    }
    if (!f.failed) {
        /* At EOF the held bytes are data. */
        evc__scanner_end(&f.s);
        evc_scan_result r = evc__scan_step(&f.s, (const char *)f.held, f.held_len);
        if (r.found || r.error || r.consumed != f.held_len)
            abort();
        add(&f.frame, f.held, r.data_len);
        f.passed += r.consumed;
        /* Terminators change only inside found_terminator, when nothing is
         * held, so every byte passed over was examined exactly once. */
        if (f.s.examined != f.passed || f.passed != f.fed)
            abort();
    }
    if (f.frame.len)
        add_data(&f.events, f.frame.p, f.frame.len);
    *out = f.events;
    free(f.frame.p);
    free(f.held);
    evc__scanner_free(&f.s);
}

/* Byte-string events found the obvious way. */
static void reference(const spec *sp, const uint8_t *in, size_t len, bytes *out)
{
    memset(out, 0, sizeof(*out));
    size_t m = sp->term_len, start = 0, at = 0;
    while (at + m <= len) {
        if (memcmp(in + at, sp->term, m) == 0) {
            if (at > start)
                add_data(out, in + start, at - start);
            add(out, "F", 1);
            at += m;
            start = at;
        } else {
            at++;
        }
    }
    if (len > start)
        add_data(out, in + start, len - start);
}

static bool same(const bytes *a, const bytes *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* The line cursor over [p, p + n) finds what repeated memchr finds; aborts if not. */
static void check_line_cursor(const uint8_t *p, size_t n, uint8_t term)
{
    const char *start = (const char *)p, *end = start + n, *expect = start;
    evc_line_cursor lc;
    evc__lines_init(&lc, start, end, term);
    for (;;) {
        const char *want = expect < end ? memchr(expect, term, (size_t)(end - expect)) : NULL;
        const char *got = evc__lines_next(&lc);
        if (got != want)
            abort();
        if (!got)
            break;
        expect = got + 1;
    }
}

/* check_line_cursor on each piece between cuts, each copied to its own exact-size allocation. */
static void check_line_cursor_pieces(const uint8_t *stream, size_t len, const size_t *cuts,
                                     size_t ncuts, uint8_t term)
{
    size_t from = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        uint8_t *piece = malloc(to - from ? to - from : 1);
        if (!piece)
            abort();
        memcpy(piece, stream + from, to - from);
        check_line_cursor(piece, to - from, term);
        free(piece);
        from = to;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    if (end - p < 3)
        return 0;
    spec sp;
    memset(&sp, 0, sizeof(sp));
    uint8_t kind = *p++;
    sp.flags = *p++;
    static const evc_terminator_kind kinds[8] = {
        EVC_TERM_NONE, EVC_TERM_COUNT, EVC_TERM_BYTES, EVC_TERM_LINE,
        EVC_TERM_ANY, EVC_TERM_COUNT_THEN, EVC_TERM_BYTES, EVC_TERM_PREFIX};
    sp.kind = kinds[kind % 8];
    if (sp.kind == EVC_TERM_PREFIX && (sp.flags & FLAG_NETSTRING))
        sp.kind = EVC_TERM_NETSTRING;
    if (sp.kind == EVC_TERM_COUNT || sp.kind == EVC_TERM_COUNT_THEN) {
        if (end - p < 8)
            return 0;
        for (int i = 7; i >= 0; i--)
            sp.count = sp.count << 8 | p[i];
        p += 8;
    }
    if (sp.kind != EVC_TERM_NONE && sp.kind != EVC_TERM_COUNT) {
        if (end - p < 1)
            return 0;
        sp.term_len = 1 + *p++ % MAX_TERM;
        if ((size_t)(end - p) < sp.term_len)
            return 0;
        memcpy(sp.term, p, sp.term_len);
        p += sp.term_len;
    }
    if (end - p < 1)
        return 0;
    size_t ncuts = *p++ % (MAX_SPLITS + 1);
    if ((size_t)(end - p) < 2 * ncuts)
        return 0;
    const uint8_t *cut_bytes = p;
    p += 2 * ncuts;

    /* The stream, in its own allocation (remapped to "abc" if asked). */
    size_t len = (size_t)(end - p);
    uint8_t *stream = malloc(len ? len : 1);
    if (!stream)
        abort();
    memcpy(stream, p, len);
    if (sp.flags & FLAG_SMALL_ALPHABET) {
        for (size_t i = 0; i < len; i++)
            stream[i] = (uint8_t)('a' + stream[i] % 3);
        for (size_t i = 0; i < sp.term_len; i++)
            sp.term[i] = (uint8_t)('a' + sp.term[i] % 3);
    }
    if ((sp.kind == EVC_TERM_COUNT || sp.kind == EVC_TERM_COUNT_THEN) &&
        (sp.flags & FLAG_COUNT_FITS))
        sp.count %= len + 2;
    if (sp.kind == EVC_TERM_ANY) {
        /* Up to four delimiters: term cut at the positions its first byte names. */
        size_t at = 0;
        while (sp.n < 4 && at < sp.term_len) {
            size_t l = 1 + (sp.term[at] % 5);
            if (l > sp.term_len - at)
                l = sp.term_len - at;
            sp.delims[sp.n] = (const char *)sp.term + at;
            sp.lens[sp.n++] = l;
            at += l;
        }
    }

    size_t cuts[MAX_SPLITS];
    for (size_t i = 0; i < ncuts; i++)
        cuts[i] = (size_t)(cut_bytes[2 * i] | cut_bytes[2 * i + 1] << 8) % (len + 1);
    qsort(cuts, ncuts, sizeof(*cuts), cmp_size);

    if (sp.kind == EVC_TERM_BYTES && sp.term_len == 1) {
        check_line_cursor(stream, len, sp.term[0]);
        check_line_cursor_pieces(stream, len, cuts, ncuts, sp.term[0]);
    }

    bytes whole, split, bytewise;
    run(&sp, stream, len, NULL, 0, &whole);
    run(&sp, stream, len, cuts, ncuts, &split);
    if (!same(&whole, &split))
        abort();
    /* Byte by byte too, for short streams (it is the harshest split). */
    if (len <= 512) {
        size_t *all = malloc((len ? len : 1) * sizeof(*all));
        if (!all)
            abort();
        for (size_t i = 0; i < len; i++)
            all[i] = i + 1;
        run(&sp, stream, len, all, len, &bytewise);
        free(all);
        if (!same(&whole, &bytewise))
            abort();
        free(bytewise.p);
    }
    if (sp.kind == EVC_TERM_BYTES && !(sp.flags & (FLAG_SWITCH | FLAG_KEEP))) {
        bytes ref;
        reference(&sp, stream, len, &ref);
        if (!same(&whole, &ref))
            abort();
        free(ref.p);
    }
    free(whole.p);
    free(split.p);
    free(stream);
    return 0;
}

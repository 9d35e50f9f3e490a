/*
 * The framing engine (scanner.c): pure, no fd, no libev.  Bytes in, frames out.
 *
 * The caller keeps the undelivered input and hands it to evc__scan from its
 * first byte, again and again; each call reports the next piece of a frame (a
 * span of that input) and whether the frame ends there.  The engine remembers
 * how many leading bytes of that input it has examined and held back (a
 * possible delimiter prefix, a length header still incomplete) and resumes
 * after them, so across any split of the input every byte is examined once.
 * Everything about framing lives here: the kinds, the frame limit, whether a
 * frame keeps its delimiter, and the fast paths (the line cursor, whole frames
 * handed over in place).  The hot case, a one-byte delimiter, is inline below.
 * Never installed.
 */
#ifndef EVC_SCANNER_H
#define EVC_SCANNER_H

#include "evchat.h"
#include "lines.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define EVC_LIKELY(x) __builtin_expect(!!(x), 1)
#define EVC_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define EVC_LIKELY(x) (x)
#define EVC_UNLIKELY(x) (x)
#endif

/* Terminators up to this long live inside the scanner: setting one allocates nothing. */
#define EVC_SCANNER_INLINE 8
/* Most delimiters a set (evc_chat_set_terminator_any) may have. */
#define EVC_SCANNER_MAX_ANY 16

/* How the scanner scans; follows from the public kind and its options. */
typedef enum evc_scan_mode {
    EVC_SCAN_ALL = 0,      /* no terminator, or a count already reached: all data */
    EVC_SCAN_COUNT,        /* count down `count` bytes, then the frame ends */
    EVC_SCAN_BYTE,         /* a one-byte delimiter (the line cursor) */
    EVC_SCAN_KMP,          /* a longer delimiter, Knuth-Morris-Pratt */
    EVC_SCAN_CRLF_OR_LF,   /* a line ends at \n; a \r before it is dropped */
    EVC_SCAN_ANY,          /* a set of delimiters, one KMP state each */
    EVC_SCAN_COUNT_THEN,   /* count bytes, then exactly the delimiter */
    EVC_SCAN_PREFIX,       /* a binary length header, then that many bytes */
    EVC_SCAN_NETSTRING,    /* "<decimal>:" then that many bytes then "," */
    EVC_SCAN_FAILED        /* a protocol error was reported: nothing more */
} evc_scan_mode;

/* The phases of the counted kinds (COUNT_THEN, PREFIX, NETSTRING). */
enum { EVC_PHASE_HEADER = 0, EVC_PHASE_BODY, EVC_PHASE_TRAILER };

typedef struct evc_scanner {
    evc_terminator_kind kind;
    evc_scan_mode mode;
    bool keep;           /* frames end with their trailing delimiter bytes */
    bool limit_counts;   /* the frame limit caps counted frames too (the library collects) */
    bool big_endian;     /* EVC_TERM_PREFIX */
    unsigned char phase; /* counted kinds: EVC_PHASE_* */
    unsigned char width; /* EVC_TERM_PREFIX: header bytes */
    evc_eol eol;         /* EVC_TERM_LINE */
    char *term;          /* owned copy (or term_small), NUL-terminated for convenience */
    size_t term_len;
    size_t *fail;        /* KMP failure table (term_len entries, or fail_small), NULL for 1-byte terms */
    uint64_t count;      /* bytes of the body still wanted */
    uint64_t max;        /* PREFIX, NETSTRING: longest body a header may announce (0: any) */
    uint64_t value;      /* PREFIX, NETSTRING: the header read so far */
    size_t held;         /* leading input bytes examined and held back */
    size_t clean;        /* EVC_SCAN_BYTE: leading input bytes known to hold no delimiter */
    uint64_t examined;   /* bytes examined over the scanner's life (tests prove linearity) */
    size_t limit;        /* longest frame (SIZE_MAX: none) */
    size_t frame_bytes;  /* bytes of the current frame handed out so far */
    unsigned epoch;      /* bumped by a reset: spans handed out before belong to dropped input */
    int error;           /* EVC_SCAN_FAILED: what was reported */
    bool at_eof;         /* no more input will come: held bytes are data */
    bool in_batch;       /* evc__scan_lines runs and nothing changed the framing */
    /* EVC_TERM_ANY: the delimiters, their failure tables and match states. */
    size_t any_n;
    size_t any_matched;  /* which one ended the last frame */
    char *any_bytes;     /* the delimiters one after another */
    size_t *any_len, *any_off, *any_fail, *any_state;
    char term_small[EVC_SCANNER_INLINE + 1];
    size_t fail_small[EVC_SCANNER_INLINE];
} evc_scanner;

/* What one evc__scan call found in the input it was given. */
typedef struct evc_scan_result {
    size_t data_len;     /* bytes at input[start] for the collector */
    size_t consumed;     /* bytes to drop from the input (header, data, delimiter) */
    bool found;          /* the frame ends here: call found_terminator */
    size_t start;        /* where the data starts (after a length header) */
    int error;           /* <0: -EMSGSIZE (frame limit) or -EPROTO; nothing consumed */
} evc_scan_result;

/* Starts with no terminator, no limit, terminators not kept. */
void evc__scanner_init(evc_scanner *);
/* Frees the terminator copies. */
void evc__scanner_free(evc_scanner *);
/* Sets a byte-string terminator (len 0: none).  0 or -ENOMEM (unchanged). */
int evc__scanner_set_bytes(evc_scanner *, const void *, size_t);
/* Sets a count terminator; 0 is an empty frame, found at once. */
void evc__scanner_set_count(evc_scanner *, uint64_t n);
/* Sets no terminator. */
void evc__scanner_set_none(evc_scanner *);
/* An end-of-line style.  0 or -EINVAL. */
int evc__scanner_set_line(evc_scanner *, evc_eol);
/* A set of delimiters (1..EVC_SCANNER_MAX_ANY, none empty).  0, -EINVAL, -ENOMEM (unchanged). */
int evc__scanner_set_any(evc_scanner *, const char *const *delims, const size_t *lens, size_t n);
/* n bytes, then exactly the delimiter (len >= 1).  0, -EINVAL, -ENOMEM (unchanged). */
int evc__scanner_set_count_then(evc_scanner *, uint64_t n, const void *delim, size_t len);
/* Length-prefixed frames (width 1, 2, 4 or 8).  0 or -EINVAL. */
int evc__scanner_set_prefix(evc_scanner *, unsigned width, bool big_endian, uint64_t max);
/* Netstrings.  Returns 0. */
int evc__scanner_set_netstring(evc_scanner *, uint64_t max);
/* The terminator as the public struct (bytes point into the scanner). */
evc_terminator evc__scanner_get(const evc_scanner *);
/* Frames keep their trailing delimiter (string, line, set, count-then). */
void evc__scanner_set_keep(evc_scanner *, bool keep);
/* The frame limit (0: none); counted frames and no-terminator data are capped
 * too when limit_counts (the library collects them). */
void evc__scanner_set_limit(evc_scanner *, size_t max, bool limit_counts);
/* The input was dropped: held bytes and the frame begun are forgotten; the
 * terminator stays (a length-prefixed kind waits for a header again). */
void evc__scanner_reset(evc_scanner *);
/* No more input will come: the bytes held back are handed out as data. */
void evc__scanner_end(evc_scanner *);
/* Which delimiter of a set ended the last frame. */
static inline size_t evc__scanner_matched(const evc_scanner *s) { return s->any_matched; }
/* Changes with each reset: a span handed out before a reset is not in the input any more. */
static inline unsigned evc__scanner_epoch(const evc_scanner *s) { return s->epoch; }
/* A frame ends without more input (a count of 0 was set). */
static inline bool evc__scanner_ready(const evc_scanner *s)
{
    return s->mode == EVC_SCAN_COUNT && s->count == 0;
}

/* Whether the scanner frames its input at all (not "none", not a count already
 * reached, not failed) and a frame has begun: bytes of it were handed out, or a
 * length header was read.  Bytes held back are the caller's to count. */
static inline bool evc__scanner_in_frame(const evc_scanner *s)
{
    if (s->mode == EVC_SCAN_ALL || s->mode == EVC_SCAN_FAILED)
        return false;
    if (s->frame_bytes > 0)
        return true;
    return (s->mode == EVC_SCAN_PREFIX || s->mode == EVC_SCAN_NETSTRING) &&
           s->phase != EVC_PHASE_HEADER;
}

/* The scanner frames its input (not "none", a count already reached, or failed). */
static inline bool evc__scanner_framing(const evc_scanner *s)
{
    return s->mode != EVC_SCAN_ALL && s->mode != EVC_SCAN_FAILED;
}

/*
 * Scans input (len bytes, the undelivered input from its start) up to the end
 * of the next frame.  The caller hands data_len bytes at input + start to the
 * collector, drops consumed bytes, calls found_terminator if found, and calls
 * again while input remains (or evc__scanner_ready) and the call consumed
 * something or found a frame.  When not found, the last len - consumed bytes
 * are held back, and the next call's input must start with them.  On error
 * nothing is consumed and the framing cannot go on.  (Returned by value so
 * that the caller's copy can live in registers.)
 */
evc_scan_result evc__scan_step(evc_scanner *, const char *input, size_t len);
/* evc__scan_step into *out. */
static inline void evc__scan(evc_scanner *s, const char *in, size_t len, evc_scan_result *out)
{
    *out = evc__scan_step(s, in, len);
}

/* The whole-lines fast path applies: a one-byte delimiter and no frame begun. */
static inline bool evc__scan_lines_apply(const evc_scanner *s)
{
    return s->mode == EVC_SCAN_BYTE && s->frame_bytes == 0 && s->clean == 0;
}

/* The caller's delivery must stop (its reader paused): a batch of lines ends
 * after the frame being delivered, as it does when the framing changes. */
static inline void evc__scan_lines_stop(evc_scanner *s)
{
    s->in_batch = false;
}

/*
 * The line protocols' fast path: every whole frame in [in, in + len), found with
 * the line cursor and handed to deliver(ctx, frame, frame_len, consumed) in
 * place, while deliver returns true and the framing stays as it is (no setter,
 * no reset, no evc__scan_lines_stop).  deliver drops `consumed` bytes from its input before it runs user
 * code.  Stops before a frame over the limit (evc__scan_step reports it).  The
 * rest after the last delimiter is remembered as examined, so evc__scan_step
 * hands it out without a second look.  Returns the bytes passed over.  Only
 * when evc__scan_lines_apply.  Inline, so that deliver is inlined too.
 */
static inline size_t evc__scan_lines(evc_scanner *s, const char *in, size_t len,
                                     bool (*deliver)(void *ctx, const char *frame, size_t n,
                                                     size_t consumed),
                                     void *ctx)
{
    evc_line_cursor lines;
    evc__lines_init(&lines, in, in + len, (unsigned char)s->term[0]);
    /* Any setter or reset clears in_batch: the framing changed under the batch.
     * (A flag in the engine rather than a copy in a local keeps a register free.) */
    s->in_batch = true;
    const char *p = in, *hit;
    while ((hit = evc__lines_next(&lines)) != NULL) {
        size_t n = (size_t)(hit - p) + s->keep;
        if (EVC_UNLIKELY(n > s->limit))
            break;
        const char *frame = p;
        p = hit + 1;
        if (!deliver(ctx, frame, n, (size_t)(p - frame)) || !s->in_batch) {
            s->examined += (uint64_t)(p - in);
            return (size_t)(p - in);
        }
    }
    if (hit) {
        s->examined += (uint64_t)(p - in);   /* stopped before a frame over the limit */
    } else {
        s->examined += len;
        s->clean = len - (size_t)(p - in);   /* no delimiter in the rest */
    }
    return (size_t)(p - in);
}

#endif /* EVC_SCANNER_H */

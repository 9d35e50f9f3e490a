/*
 * Test helpers for producers built from other producers: a scripted inner
 * producer (pieces of chosen or random sizes, EVC_NOT_YET at random, a failure
 * at a chosen offset), a puller that drains a producer with a cycle of caps,
 * and a round trip of a producer through a real chat over loopback.
 */
#ifndef EVC_TEST_PRODUCER_SCRIPT_H
#define EVC_TEST_PRODUCER_SCRIPT_H

#include "support.h"
#include "evchat.h"

#include <stdint.h>

/* What a scripted producer hands out and how; the test keeps it alive. */
typedef struct evt_script {
    const char *text;    /* the bytes it hands out, in order */
    size_t len;
    size_t piece;        /* largest piece per more() (0: unlimited) */
    uint32_t seed;       /* non-zero: pieces of random sizes 1..piece */
    int not_yet_pct;     /* with a seed: the chance (percent) of EVC_NOT_YET per call */
    size_t fail_at;      /* with fail_err: answer it once this many bytes are out */
    int fail_err;        /* 0: never fail */
    /* What happened. */
    size_t pos;          /* bytes handed out */
    int calls, not_yets;
    int calls_after_end; /* more() after it answered 0 or failed (a wrapper should not) */
    int destroyed;       /* on_destroy runs (must end up 1) */
    bool ended;
    int end_answer;      /* what it ended with: 0 or fail_err */
} evt_script;

/* A producer over s (s is not freed by it).  Asserts on failure. */
evc_producer *evt_script_producer(evt_script *s);

/* Pulls p until it answers 0 or -errno, with caps taken in turn from caps[0..ncaps)
 * (cycled); EVC_NOT_YET answers are counted in *not_yets (may be NULL) and asked
 * again.  Appends the bytes to out; returns 0 or the -errno.  Checks that no answer
 * exceeds its cap and that a finished producer keeps answering 0 (a failed one the
 * same error).  Does not free p. */
int evt_pull_all(evc_producer *p, const size_t *caps, size_t ncaps, evt_bytes *out,
                 int *not_yets);

/* Pushes p into a chat over a loopback TCP pair, then close_when_done, and reads
 * the other end until EOF; a timer calls evc_chat_resume every millisecond, as an
 * event source would for a producer that answered EVC_NOT_YET.  Appends what
 * arrived to got.  Asserts the chat closed cleanly (no handle_error) and the
 * loop ended empty. */
void evt_chat_round_trip(evc_producer *p, evt_bytes *got);

/* Medusa's test_string: 16385 digits, '0'..'9' repeating (malloc'd, NUL-terminated). */
char *evt_medusa_test_string(size_t *len);
/* len bytes over a small alphabet rich in CR, LF and '.' (malloc'd, NUL-terminated). */
char *evt_dotty_text(size_t len, uint32_t seed);
/* Appends text with every from replaced by to, as Python's str.replace; with smtp, a '.'
 * at the very start becomes ".." as well.  The reference the escaping tests check against. */
void evt_replace_all(const char *text, size_t len, const char *from, const char *to, bool smtp,
                     evt_bytes *out);
/* Decodes HTTP chunked coding strictly (lower-case hex sizes without leading zeros,
 * CRLFs where they belong, a last chunk, trailer lines, the empty line ending exactly at
 * len) into body and trailers (the lines with their CRLFs).  False on anything else. */
bool evt_chunked_decode(const char *in, size_t len, evt_bytes *body, evt_bytes *trailers);
/* evc_simple_producer_new, asserting it succeeded. */
evc_producer *evt_simple(const char *text, size_t len, size_t piece);
/* Pulls p to the end with a big cap, asserts it made exactly want, frees p. */
void evt_assert_produces(evc_producer *p, const char *want, size_t want_len);

/* A small deterministic PRNG (xorshift32); *state must start non-zero. */
uint32_t evt_rand(uint32_t *state);

#endif

/*
 * Tests of the compressed producer: its output is byte for byte zlib's
 * one-shot compression of the same input at the same level (Medusa's vector:
 * its 16385-digit string fed 5 bytes at a time equals zlib.compress(s, 5)),
 * in each of the three formats, at any cap, with the wrapped producer pausing
 * or failing, and through a chat over loopback.
 */
#include "producer_script.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const size_t BIG_CAP[] = {65536};

/* Text that compresses somewhat, not trivially: words from a small list. */
static char *wordy_text(size_t len, uint32_t seed)
{
    static const char *const words[] = {"alpha ", "beta ", "gamma\n", "delta ", "x", "42 "};
    char *t = malloc(len + 1);
    assert_non_null(t);
    size_t i = 0;
    while (i < len) {
        const char *w = words[evt_rand(&seed) % ARRAY_LEN(words)];
        while (*w && i < len)
            t[i++] = *w++;
    }
    return t;
}

static int window_bits(evc_compress_format f)
{
    return f == EVC_COMPRESS_ZLIB ? 15 : f == EVC_COMPRESS_GZIP ? 31 : -15;
}

/* zlib's one-shot answer: deflate of all of text with Z_FINISH at once. */
static void one_shot(const char *text, size_t len, int level, evc_compress_format f,
                     evt_bytes *out)
{
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, level, Z_DEFLATED, window_bits(f), 8, Z_DEFAULT_STRATEGY),
                     Z_OK);
    uLong bound = deflateBound(&z, len) + 64;
    unsigned char *buf = malloc(bound);
    assert_non_null(buf);
    z.next_in = (Bytef *)(uintptr_t)text;
    z.avail_in = (uInt)len;
    z.next_out = buf;
    z.avail_out = (uInt)bound;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    evt_bytes_add(out, buf, z.total_out);
    deflateEnd(&z);
    free(buf);
}

static evc_producer *compressed(evc_producer *inner, int level, evc_compress_format f)
{
    evc_producer *p = evc_compressed_producer_new(inner, level, f);
    assert_non_null(p);
    return p;
}

/* got inflates (in format f) to exactly text. */
static void assert_inflates_to(const evt_bytes *got, evc_compress_format f, const char *text,
                               size_t len)
{
    z_stream z = {0};
    assert_int_equal(inflateInit2(&z, window_bits(f)), Z_OK);
    char *back = malloc(len + 1);
    assert_non_null(back);
    z.next_in = (Bytef *)got->p;
    z.avail_in = (uInt)got->len;
    z.next_out = (Bytef *)back;
    z.avail_out = (uInt)len + 1;
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    assert_int_equal(z.total_out, len);
    assert_int_equal(z.avail_in, 0);
    assert_memory_equal(back, text, len);
    inflateEnd(&z);
    free(back);
}

static void assert_same(const evt_bytes *got, const evt_bytes *want)
{
    assert_int_equal(got->len, want->len);
    assert_memory_equal(got->p, want->p, want->len);
}

static void test_medusa_vector_equals_compress2(void **state)
{
    (void)state;
    size_t len;
    char *t = evt_medusa_test_string(&len);
    /* compress2 itself, as Medusa compares with zlib.compress(s, 5). */
    uLongf clen = compressBound(len);
    unsigned char *c = malloc(clen);
    assert_non_null(c);
    assert_int_equal(compress2(c, &clen, (const Bytef *)t, len, 5), Z_OK);
    evt_bytes want = {0}, got = {0};
    evt_bytes_add(&want, c, clen);
    evc_producer *p = compressed(evc_simple_producer_new(t, len, 5), 5, EVC_COMPRESS_ZLIB);
    assert_int_equal(evt_pull_all(p, BIG_CAP, 1, &got, NULL), 0);
    assert_same(&got, &want);
    evc_producer_free(p);

    /* And it inflates back to the input. */
    uLongf back_len = len;
    char *back = malloc(len);
    assert_non_null(back);
    assert_int_equal(uncompress((Bytef *)back, &back_len, (const Bytef *)got.p, got.len), Z_OK);
    assert_int_equal(back_len, len);
    assert_memory_equal(back, t, len);
    free(back);
    free(c);
    free(t);
    evt_bytes_free(&want);
    evt_bytes_free(&got);
}

static void test_every_level_and_format(void **state)
{
    (void)state;
    size_t len = 100000;
    char *t = wordy_text(len, 11);
    static const evc_compress_format formats[] = {EVC_COMPRESS_ZLIB, EVC_COMPRESS_GZIP,
                                                  EVC_COMPRESS_RAW};
    for (size_t f = 0; f < ARRAY_LEN(formats); f++) {
        for (int level = -1; level <= 9; level++) {
            evt_bytes want = {0}, got = {0};
            one_shot(t, len, level, formats[f], &want);
            evc_producer *p = compressed(evc_simple_producer_new(t, len, 999), level, formats[f]);
            assert_int_equal(evt_pull_all(p, BIG_CAP, 1, &got, NULL), 0);
            /* Level 0 stores: zlib cuts stored blocks where input and output
             * space happened to end, so only the inflated bytes can match. */
            if (level == 0)
                assert_inflates_to(&got, formats[f], t, len);
            else if (got.len != want.len || memcmp(got.p, want.p, want.len) != 0)
                fail_msg("format %zu level %d differs from one-shot deflate", f, level);
            evc_producer_free(p);
            evt_bytes_free(&want);
            evt_bytes_free(&got);
        }
    }
    /* The formats are what their names say: gzip's magic, zlib's header. */
    evt_bytes g = {0}, z = {0};
    evc_producer *p = compressed(evc_simple_producer_new("hi", 2, 0), 6, EVC_COMPRESS_GZIP);
    assert_int_equal(evt_pull_all(p, BIG_CAP, 1, &g, NULL), 0);
    evc_producer_free(p);
    assert_true((unsigned char)g.p[0] == 0x1f && (unsigned char)g.p[1] == 0x8b);
    p = compressed(evc_simple_producer_new("hi", 2, 0), 6, EVC_COMPRESS_ZLIB);
    assert_int_equal(evt_pull_all(p, BIG_CAP, 1, &z, NULL), 0);
    evc_producer_free(p);
    assert_int_equal((unsigned char)z.p[0], 0x78);
    evt_bytes_free(&g);
    evt_bytes_free(&z);
    free(t);
}

static void test_empty_input(void **state)
{
    (void)state;
    evt_bytes want = {0}, got = {0};
    one_shot("", 0, 5, EVC_COMPRESS_ZLIB, &want);
    evc_producer *p = compressed(evc_simple_producer_new("", 0, 0), 5, EVC_COMPRESS_ZLIB);
    assert_int_equal(evt_pull_all(p, BIG_CAP, 1, &got, NULL), 0);
    assert_same(&got, &want);
    evc_producer_free(p);
    evt_bytes_free(&want);
    evt_bytes_free(&got);
}

static void test_tiny_caps(void **state)
{
    (void)state;
    size_t len = 30000;
    char *t = wordy_text(len, 12);
    evt_bytes want = {0};
    one_shot(t, len, 9, EVC_COMPRESS_GZIP, &want);
    static const size_t c1[] = {1}, c2[] = {2}, c3[] = {3}, rising[] = {1, 2, 3, 4, 5, 7, 11, 64};
    static const struct { const size_t *caps; size_t n; } sets[] = {
        {c1, 1}, {c2, 1}, {c3, 1}, {rising, ARRAY_LEN(rising)},
    };
    for (size_t i = 0; i < ARRAY_LEN(sets); i++) {
        evt_bytes got = {0};
        evc_producer *p = compressed(evc_simple_producer_new(t, len, 5), 9, EVC_COMPRESS_GZIP);
        assert_int_equal(evt_pull_all(p, sets[i].caps, sets[i].n, &got, NULL), 0);
        assert_same(&got, &want);
        evc_producer_free(p);
        evt_bytes_free(&got);
    }
    evt_bytes_free(&want);
    free(t);
}

static void test_not_yet_interleavings(void **state)
{
    (void)state;
    for (uint32_t seed = 1; seed <= 40; seed++) {
        uint32_t rng = seed * 2246822519u;
        size_t len = evt_rand(&rng) % 60000;
        char *t = wordy_text(len, seed);
        evt_bytes want = {0}, got = {0};
        one_shot(t, len, 5, EVC_COMPRESS_ZLIB, &want);
        evt_script s = {.text = t, .len = len, .piece = 1 + evt_rand(&rng) % 5000, .seed = seed,
                        .not_yet_pct = 35};
        size_t caps[4];
        for (size_t i = 0; i < ARRAY_LEN(caps); i++)
            caps[i] = 1 + evt_rand(&rng) % (i % 2 ? 20 : 20000);
        evc_producer *p = compressed(evt_script_producer(&s), 5, EVC_COMPRESS_ZLIB);
        int not_yets = 0;
        assert_int_equal(evt_pull_all(p, caps, ARRAY_LEN(caps), &got, &not_yets), 0);
        assert_same(&got, &want);
        assert_int_equal(not_yets, s.not_yets);   /* each one passed on */
        assert_int_equal(s.calls_after_end, 0);
        assert_int_equal(s.destroyed, 1);
        evc_producer_free(p);
        evt_bytes_free(&want);
        evt_bytes_free(&got);
        free(t);
    }
}

static void test_inner_failure_and_ownership(void **state)
{
    (void)state;
    char *t = wordy_text(50000, 3);
    evt_script s = {.text = t, .len = 50000, .piece = 1000, .fail_at = 20000, .fail_err = -EPIPE};
    evc_producer *p = compressed(evt_script_producer(&s), 1, EVC_COMPRESS_RAW);
    evt_bytes got = {0};
    assert_int_equal(evt_pull_all(p, BIG_CAP, 1, &got, NULL), -EPIPE);
    assert_int_equal(s.calls_after_end, 0);
    assert_int_equal(s.destroyed, 0);
    evc_producer_free(p);
    assert_int_equal(s.destroyed, 1);
    evt_bytes_free(&got);

    /* Bad arguments: refused, inner still the caller's. */
    evt_script s2 = {.text = "x", .len = 1};
    evc_producer *inner = evt_script_producer(&s2);
    static const int bad_levels[] = {-2, 10, 100};
    for (size_t i = 0; i < ARRAY_LEN(bad_levels); i++) {
        errno = 0;
        assert_null(evc_compressed_producer_new(inner, bad_levels[i], EVC_COMPRESS_ZLIB));
        assert_int_equal(errno, EINVAL);
    }
    errno = 0;
    assert_null(evc_compressed_producer_new(inner, 5, (evc_compress_format)7));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(evc_compressed_producer_new(NULL, 5, EVC_COMPRESS_ZLIB));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(s2.destroyed, 0);

    /* Freed unfinished, it frees inner once. */
    p = compressed(inner, 5, EVC_COMPRESS_ZLIB);
    evc_producer_free(p);
    assert_int_equal(s2.destroyed, 1);
    free(t);
}

static void test_through_a_chat(void **state)
{
    (void)state;
    size_t len = 1 << 20;
    char *t = wordy_text(len, 21);
    evt_bytes want = {0}, got = {0};
    one_shot(t, len, 6, EVC_COMPRESS_GZIP, &want);
    evt_script s = {.text = t, .len = len, .piece = 3000, .seed = 5, .not_yet_pct = 25};
    evc_producer *p = compressed(evt_script_producer(&s), 6, EVC_COMPRESS_GZIP);
    evt_chat_round_trip(p, &got);
    assert_same(&got, &want);
    assert_true(s.not_yets > 0);
    assert_int_equal(s.destroyed, 1);
    evt_bytes_free(&want);
    evt_bytes_free(&got);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_medusa_vector_equals_compress2),
        cmocka_unit_test(test_every_level_and_format),
        cmocka_unit_test(test_empty_input),
        cmocka_unit_test(test_tiny_caps),
        cmocka_unit_test(test_not_yet_interleavings),
        cmocka_unit_test(test_inner_failure_and_ownership),
        cmocka_unit_test(test_through_a_chat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

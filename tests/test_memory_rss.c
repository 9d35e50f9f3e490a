/*
 * Memory given back: a loop whose chats were made to hold a large partial
 * frame each (a hostile crowd, each client sending most of a frame and
 * waiting) returns to about the resident size it started with once the
 * clients leave, without the program tuning malloc.
 *
 * Clients are the far ends of unix socket pairs in this process, fed from the
 * loop.  EVC_RSS_CLIENTS and EVC_RSS_FRAME override the crowd (200 chats of
 * 1 MiB by default); the figures go to stderr.
 *
 * And a broadcast: one large message queued with evc_chat_push_shared on many
 * members that do not read costs about one copy, not one per member.
 * EVC_RSS_MEMBERS and EVC_RSS_MESSAGE override it (100 members, 4 MiB);
 * EVC_RSS_COPY=1 pushes a copy per member instead, for comparison (and fails).  Resident sizes mean nothing
 * under a sanitizer's allocator, so the assertion is skipped there.
 */
#include "support.h"
#include "evchat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

/* What "back near the start" allows: the loop's spare read blocks, allocator slack. */
#define RSS_SLACK_BYTES ((size_t)8 << 20)

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    assert_non_null(f);
    unsigned long size = 0, resident = 0;
    assert_int_equal(fscanf(f, "%lu %lu", &size, &resident), 2);
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static size_t env_size(const char *name, size_t fallback)
{
    const char *v = getenv(name);
    return v && *v ? (size_t)strtoull(v, NULL, 10) : fallback;
}

static size_t held_in(struct ev_loop *loop)
{
    struct evc_loop_stats st;
    assert_int_equal(evc_loop_stats(loop, &st), 0);
    return st.input_bytes;
}

static size_t open_chats(struct ev_loop *loop)
{
    struct evc_loop_stats st;
    assert_int_equal(evc_loop_stats(loop, &st), 0);
    return st.chats;
}

static void test_rss_returns_after_partial_frames(void **state)
{
    (void)state;
    size_t nclients = env_size("EVC_RSS_CLIENTS", 200);
    size_t frame = env_size("EVC_RSS_FRAME", (size_t)1 << 20);
    char *body = evt_random_body(frame, 5);
    int *peers = calloc(nclients, sizeof *peers);
    evt_feeder *feeders = calloc(nclients, sizeof *feeders);
    assert_non_null(peers);
    assert_non_null(feeders);
    struct ev_loop *loop = evt_loop_new();
    size_t before = rss_bytes();

    /* Every chat takes a frame of up to `frame` bytes and gets frame - 1. */
    for (size_t i = 0; i < nclients; i++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        evc_chat *c = evc_chat_new(loop, sv[1], NULL, NULL);
        assert_non_null(c);
        assert_int_equal(evc_chat_set_terminator(c, "\n"), 0);
        evc_chat_set_max_frame(c, frame);
        peers[i] = sv[0];
        evt_set_nonblock(sv[0]);
        evt_feeder_flood(&feeders[i], loop, sv[0], body, frame - 1, NULL, 0);
    }
    size_t want = nclients * (frame - 1);
    for (int spins = 0; spins < 60000 && held_in(loop) < want; spins++)
        evt_run_for(loop, 0.001);
    assert_int_equal(held_in(loop), want);
    size_t peak = rss_bytes();

    /* They all leave: the partial frames are delivered and the chats close. */
    for (size_t i = 0; i < nclients; i++) {
        evt_feeder_stop(&feeders[i]);
        close(peers[i]);
    }
    for (int spins = 0; spins < 20000 && open_chats(loop) > 0; spins++)
        evt_run_for(loop, 0.001);
    assert_int_equal(open_chats(loop), 0);
    evt_run_for(loop, 0.01);   /* the deferred destroys */
    size_t after = rss_bytes();
    fprintf(stderr, "# %zu chats x %zu-byte partial frames: RSS before %zu KiB, peak %zu KiB, "
                    "after %zu KiB\n", nclients, frame - 1, before >> 10, peak >> 10, after >> 10);
#ifndef UNDER_SANITIZER
    assert_true(peak > before + want / 2);   /* the frames were really held */
    assert_true(after < before + RSS_SLACK_BYTES);
#endif
    evt_loop_finish(loop);
    free(feeders);
    free(peers);
    free(body);
}

static void test_broadcast_costs_one_copy(void **state)
{
    (void)state;
    size_t nmembers = env_size("EVC_RSS_MEMBERS", 100);
    size_t len = env_size("EVC_RSS_MESSAGE", (size_t)4 << 20);
    bool copy = env_size("EVC_RSS_COPY", 0) != 0;
    int *peers = calloc(nmembers, sizeof *peers);
    evc_chat **chats = calloc(nmembers, sizeof *chats);
    assert_non_null(peers);
    assert_non_null(chats);
    struct ev_loop *loop = evt_loop_new();
    for (size_t i = 0; i < nmembers; i++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        chats[i] = evc_chat_new(loop, sv[1], NULL, NULL);
        assert_non_null(chats[i]);
        peers[i] = sv[0];
    }
    size_t before = rss_bytes();
    char *message = evt_random_body(len, 9);
    evc_shared *sh = evc_shared_new(message, len);
    assert_non_null(sh);
    free(message);
    for (size_t i = 0; i < nmembers; i++) {
        size_t n;
        const void *bytes = evc_shared_bytes(sh, &n);
        assert_int_equal(copy ? evc_chat_push(chats[i], bytes, n) : evc_chat_push_shared(chats[i], sh), 0);
    }
    evc_shared_release(sh);
    evt_run_for(loop, 0.05);   /* the kernel takes what it takes; nobody reads */
    struct evc_loop_stats st;
    assert_int_equal(evc_loop_stats(loop, &st), 0);
    size_t peak = rss_bytes();
    fprintf(stderr, "# %zu members x %zu-byte message (%s): RSS before %zu KiB, peak %zu KiB; "
                    "queued copies %zu, queued references %zu\n", nmembers, len,
            copy ? "a copy each" : "shared", before >> 10, peak >> 10, st.output_bytes,
            st.referenced_bytes);
    assert_true(st.output_bytes < len);
    assert_true(st.referenced_bytes > (nmembers - 1) * (len / 2));
#ifndef UNDER_SANITIZER
    assert_true(peak < before + 2 * len + RSS_SLACK_BYTES);
#endif
    for (size_t i = 0; i < nmembers; i++) {
        evc_chat_close(chats[i]);
        close(peers[i]);
    }
    evt_loop_finish(loop);
    free(chats);
    free(peers);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rss_returns_after_partial_frames),
        cmocka_unit_test(test_broadcast_costs_one_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

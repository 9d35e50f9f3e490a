/*
 * Memory given back: a loop whose chats were made to hold a large partial
 * frame each (a hostile crowd, each client sending most of a frame and
 * waiting) returns to about the resident size it started with once the
 * clients leave, without the program tuning malloc.
 *
 * Clients are the far ends of unix socket pairs in this process, fed from the
 * loop.  EVC_RSS_CLIENTS and EVC_RSS_FRAME override the crowd (200 chats of
 * 1 MiB by default); the figures go to stderr.  Resident sizes mean nothing
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rss_returns_after_partial_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

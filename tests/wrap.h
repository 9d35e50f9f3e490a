/*
 * Fault injection for test programs linked with -Wl,--wrap=read,recv,send,
 * sendmsg,writev,write,accept4,connect (see Makefile.am).
 *
 * Every wrapped call goes to the real function unless a test armed a script
 * for it: a short list of steps, consumed one per matching call.  A step
 * either fails the call with an errno (without making it), caps the byte
 * count the real call may move (a short read or write), fakes an EOF (read and
 * recv return 0 without reading), or passes the call through unchanged.  A
 * script may be limited to one fd, so the test's own I/O on the peer end goes
 * through untouched.  When the steps run out the call is real again.
 *
 *     evw_arm(EVW_RECV, fd, (evw_step[]){EVW_ERR(EAGAIN), EVW_ERR(EAGAIN),
 *                                        EVW_SHORT(3), EVW_ERR(ECONNRESET)}, 4);
 *
 * The script lives in static storage of the test program (never the library)
 * and is not thread-safe: arm and run from one thread.  Call evw_reset() in
 * each test's setup or teardown.
 */
#ifndef EVC_TEST_WRAP_H
#define EVC_TEST_WRAP_H

#include <stddef.h>

/* The wrapped calls. */
typedef enum evw_call {
    EVW_READ,
    EVW_RECV,
    EVW_SEND,
    EVW_SENDMSG,
    EVW_WRITEV,
    EVW_WRITE,
    EVW_ACCEPT4,
    EVW_CONNECT,
    EVW_NCALLS
} evw_call;

typedef enum evw_kind {
    EVW_KIND_PASS = 0,  /* make the real call */
    EVW_KIND_ERR,       /* return -1 with errno = value, without the real call */
    EVW_KIND_SHORT,     /* the real call, moving at most value bytes */
    EVW_KIND_EOF        /* read/recv: return 0 without the real call */
} evw_kind;

typedef struct evw_step {
    evw_kind kind;
    int value;
} evw_step;

#define EVW_PASS      ((evw_step){EVW_KIND_PASS, 0})
#define EVW_ERR(e)    ((evw_step){EVW_KIND_ERR, (e)})
#define EVW_SHORT(n)  ((evw_step){EVW_KIND_SHORT, (n)})
#define EVW_EOF       ((evw_step){EVW_KIND_EOF, 0})

/* Most steps one call's script holds; evw_arm fails the test beyond it. */
#define EVW_MAX_STEPS 32

/* Appends n steps to call's script, for calls on fd (-1: any fd).  Re-arming a
 * call whose script still has steps must use the same fd. */
void evw_arm(evw_call call, int fd, const evw_step *steps, size_t n);
/* Arms `times` identical failures with errno err. */
void evw_fail(evw_call call, int fd, int err, size_t times);
/* From now on (until evw_reset or evw_fail_stop) every call on fd (-1: any) fails
 * with errno err, after the script's steps run out: a fault that lasts. */
void evw_fail_always(evw_call call, int fd, int err);
/* Like evw_fail_always, for the next n such calls only (any number, unlike a script). */
void evw_fail_next(evw_call call, int fd, int err, unsigned long n);
/* Ends evw_fail_always for call; the counter goes on. */
void evw_fail_stop(evw_call call);
/* Steps of call's script not yet consumed. */
size_t evw_pending(evw_call call);
/* Calls of this kind seen since the last reset (real, scripted, any fd). */
unsigned long evw_count(evw_call call);
/* Disarms every script and zeroes the counters. */
void evw_reset(void);

#endif

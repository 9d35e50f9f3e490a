/*
 * Helpers shared by the test programs: run a loop until something happens,
 * check that a loop has nothing left, start example programs and talk to them
 * over blocking sockets with timeouts.  Every helper fails the current cmocka
 * test (never hangs) when a deadline passes.
 */
#ifndef EVC_TEST_SUPPORT_H
#define EVC_TEST_SUPPORT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <cmocka.h>
#include <ev.h>

/* Runs loop until *flag is true or seconds pass; returns *flag. */
bool evt_run_until(struct ev_loop *loop, const bool *flag, double seconds);
/* Runs loop until *counter >= target or seconds pass; returns *counter >= target. */
bool evt_run_until_count(struct ev_loop *loop, const int *counter, int target, double seconds);
/* Runs loop for the given time, whatever happens. */
void evt_run_for(struct ev_loop *loop, double seconds);
/* Runs pending closes and asserts no watcher is left active on loop. */
void evt_assert_loop_empty(struct ev_loop *loop);

/* A child process running an example server. */
typedef struct evt_proc {
    pid_t pid;
    int out_fd;          /* its stdout, after the first line */
    char host[256];      /* from "listening on HOST:PORT" */
    int port;
} evt_proc;

/* Path of an example program ($EVC_EXAMPLES/name, else ./examples/name). */
const char *evt_example_path(const char *name, char *buf, size_t cap);
/* Starts examples/name with args (NULL-terminated) plus "-p 0" unless args name -p,
 * reads "listening on HOST:PORT".  Asserts on failure. */
void evt_spawn_server(evt_proc *p, const char *name, const char *const *args);
/* Sends sig, waits (up to 10 s) and returns the exit status as from waitpid; kills on timeout. */
int evt_stop_server(evt_proc *p, int sig);

/* A child running an example program, with its stdin and stdout on pipes. */
typedef struct evt_child {
    pid_t pid;
    int to_stdin;        /* -1 once closed */
    int from_stdout;
} evt_child;

/* Starts examples/name with args (NULL-terminated); stderr joins stdout when with_stderr. */
void evt_spawn_client(evt_child *c, const char *name, const char *const *args, bool with_stderr);
/* Writes text to the child's stdin; asserts. */
void evt_type(evt_child *c, const char *text);
/* Reads the child's output until it ends or 10 s pass; NUL-terminates; returns bytes read. */
size_t evt_read_child(evt_child *c, char *buf, size_t cap);
/* Waits up to 10 s for the child to exit and closes its pipes; returns the status as from
 * waitpid, or -1 if it had to be killed. */
int evt_wait_child(evt_child *c);
/* Runs examples/name with args to completion, stdin from /dev/null, stdout and stderr into
 * out (NUL-terminated; out may be NULL to discard).  Returns the status as from waitpid. */
int evt_run_example(const char *name, const char *const *args, char *out, size_t cap);

/* Blocking TCP connect with 10 s send/receive timeouts.  Asserts on failure. */
int evt_connect(const char *host, int port);
/* Writes everything; asserts on failure. */
void evt_send_all(int fd, const void *buf, size_t len);
/* Reads until EOF, cap bytes, or the timeout; returns bytes read. */
size_t evt_recv_all(int fd, void *buf, size_t cap);
/* Reads until the bytes end with needle (or EOF/cap/timeout); returns bytes read. */
size_t evt_recv_until(int fd, void *buf, size_t cap, const char *needle);
/* A connected socketpair/loopback pair: fds[0], fds[1] (non-blocking off). */
void evt_tcp_pair(int fds[2]);
/* Closes fd with SO_LINGER 0 so the peer sees a reset. */
void evt_close_reset(int fd);

/* A growable byte string, always NUL-terminated once used, for what a test collects.
 * A zeroed one is empty. */
typedef struct evt_bytes {
    char *p;
    size_t len, cap;
} evt_bytes;
/* Appends n bytes; asserts on out of memory. */
void evt_bytes_add(evt_bytes *, const void *, size_t n);
/* Appends a C string. */
void evt_bytes_adds(evt_bytes *, const char *);
/* Empties it, keeping the memory. */
void evt_bytes_reset(evt_bytes *);
/* Frees it and leaves it empty. */
void evt_bytes_free(evt_bytes *);

/* A non-blocking loopback peer driven by an ev_io in the test's loop: it sends
 * out[0, out_len) chunk bytes per send and collects what comes back into got,
 * reading only once `reading` is set (after the delay given to evt_peer_start).
 * A test may change out_len, want, chunk or shut_when_sent between runs, then
 * call evt_peer_update. */
typedef struct evt_peer {
    int fd;
    const char *out;          /* bytes to send */
    size_t out_len, sent;
    size_t chunk;             /* most bytes per send (default 40000), so a reader sees many reads */
    bool shut_when_sent;      /* shutdown(SHUT_WR) once everything is sent */
    evt_bytes got;
    size_t want;              /* done once this many bytes came back (EOF sets it to got.len) */
    bool reading;
    ev_io io;
    ev_timer start_reading;
    struct ev_loop *loop;
} evt_peer;
/* Starts a peer on fd (made non-blocking) that sends out[0, out_len), is done once
 * `want` bytes came back, and starts reading after read_delay seconds. */
void evt_peer_start(evt_peer *, struct ev_loop *, int fd, const char *out, size_t out_len,
                    size_t want, double read_delay);
/* Re-arms the peer's watcher for what it still has to send and read. */
void evt_peer_update(evt_peer *);
/* Stops the peer's watchers, closes its fd and frees what it collected. */
void evt_peer_stop(evt_peer *);
/* Runs loop until every peer sent everything and got what it wants (at most 20 s); asserts. */
void evt_run_peers(struct ev_loop *, evt_peer **peers, int n);
/* Sets a socket's kernel buffer (opt SO_SNDBUF or SO_RCVBUF) to size bytes; asserts. */
void evt_small_buffer(int fd, int opt, int size);
/* n pseudo-random letters from seed, with no short period (malloc'd; asserts). */
char *evt_random_body(size_t n, uint32_t seed);

#endif

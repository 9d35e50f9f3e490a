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
#include <netinet/in.h>
#include <cmocka.h>
#include <ev.h>

#include "evchat.h"

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

/* ------------------------------------------------------------------ */
/* Memory that ends at a PROT_NONE page                                */
/* ------------------------------------------------------------------ */

/* room readable bytes followed by an unreadable, unwritable page: code that reads or
 * writes one byte past what it was given crashes the test instead of passing by luck. */
typedef struct evt_guarded {
    char *map;
    size_t room;         /* readable bytes before the guard page (whole pages) */
    size_t page;
} evt_guarded;
/* Maps at least min_room readable bytes (at least one page) and the guard page; asserts. */
void evt_guarded_init(evt_guarded *, size_t min_room);
/* The first byte of the guard page. */
char *evt_guarded_end(const evt_guarded *);
/* Copies n bytes so that they end right at the guard page; returns where they start. */
char *evt_guarded_place(evt_guarded *, const void *bytes, size_t n);
/* Unmaps it. */
void evt_guarded_free(evt_guarded *);

/* ------------------------------------------------------------------ */
/* Loops and sockets for the chat tests (support_chat.c)               */
/* ------------------------------------------------------------------ */

/* A new loop; asserts. */
struct ev_loop *evt_loop_new(void);
/* Checks nothing is left on loop (evt_assert_loop_empty), then destroys it. */
void evt_loop_finish(struct ev_loop *loop);
/* TCP_NODELAY on a socket; asserts. */
void evt_set_nodelay(int fd);
/* O_NONBLOCK on an fd; asserts. */
void evt_set_nonblock(int fd);
/* Fills sin with a port on 127.0.0.1 that nobody listens on. */
void evt_closed_port(struct sockaddr_in *sin);
/* A blocking listener on 127.0.0.1, port chosen by the kernel, written to sin. */
int evt_listener(struct sockaddr_in *sin);
/* True when fd has something (or EOF) to read within a second. */
bool evt_fd_readable(int fd);

/* Sends data to fd from the loop.  Paced (evt_feeder_start): chunk bytes per tick of
 * `pause` seconds with blocking sends, so each chunk reaches the chat as its own read.
 * Flooding (evt_feeder_flood): as fast as fd takes it, send sizes drawn from chunks[]
 * in turn (0 or none: all that fits), stopping early if the chat goes away. */
typedef struct evt_feeder {
    ev_timer tick;
    ev_io io;
    struct ev_loop *loop;
    int fd;
    const char *data;
    size_t len, pos, chunk;
    const size_t *chunks;
    size_t nchunks, next;
    bool shut_after;     /* paced: shutdown(SHUT_WR) once everything is sent */
    bool done;
} evt_feeder;
void evt_feeder_start(evt_feeder *, struct ev_loop *, int fd, const char *data, size_t len,
                      size_t chunk, double pause);
void evt_feeder_flood(evt_feeder *, struct ev_loop *, int fd, const char *data, size_t len,
                      const size_t *chunks, size_t nchunks);
void evt_feeder_stop(evt_feeder *);

/* Collects everything written to the peer socket fd, from the loop. */
typedef struct evt_sink {
    ev_io w;
    struct ev_loop *loop;
    evt_bytes got;
    size_t want;
    bool have;           /* got.len >= want, or EOF */
    bool eof;
} evt_sink;
void evt_sink_start(evt_sink *, struct ev_loop *, int fd, size_t want);
/* Runs the loop until the sink holds want bytes (or saw EOF); asserts it got there. */
void evt_sink_wait(evt_sink *, size_t want);
void evt_sink_stop(evt_sink *);

/* ------------------------------------------------------------------ */
/* The recording chat                                                  */
/* ------------------------------------------------------------------ */

/* Which callbacks a recording chat has; the others are the library's defaults.
 * found_terminator and on_destroy are always there. */
enum {
    EVT_REC_COLLECT = 1 << 0,    /* its own collect_incoming_data; without it frames are
                                  * read with evc_chat_incoming (the default collector) */
    EVT_REC_CLOSE = 1 << 1,      /* handle_close */
    EVT_REC_ERROR = 1 << 2,      /* handle_error */
    EVT_REC_TIMEOUT = 1 << 3,    /* handle_timeout */
    EVT_REC_CONNECT = 1 << 4,    /* handle_connect */
    EVT_REC_DRAINED = 1 << 5,    /* handle_drained and handle_low_water */
    EVT_REC_TOO_LONG = 1 << 6,   /* frame_too_long */
};
#define EVT_REC_ALL \
    (EVT_REC_COLLECT | EVT_REC_CLOSE | EVT_REC_ERROR | EVT_REC_TIMEOUT | EVT_REC_CONNECT)

/* Where a recording chat closes itself (close_in). */
enum {
    EVT_CLOSE_IN_COLLECT = 1 << 0,
    EVT_CLOSE_IN_FOUND = 1 << 1,
    EVT_CLOSE_IN_TIMEOUT = 1 << 2,
    EVT_CLOSE_IN_CONNECT = 1 << 3,
    EVT_CLOSE_IN_ERROR = 1 << 4,
};

#define EVT_MAX_FRAMES 128

typedef struct evt_recorder evt_recorder;
/* A test's part of a callback: runs after the recorder has recorded it. */
typedef void (*evt_frame_hook)(evt_recorder *, const char *frame, size_t len);
typedef void (*evt_event_hook)(evt_recorder *);
typedef void (*evt_error_hook)(evt_recorder *, int err);
/* A custom collector: gets what collect_incoming_data got, and may keep it
 * (evt_recorder_keep), hand it to the library (evc_chat_collect) or drop it. */
typedef void (*evt_collect_hook)(evt_recorder *, const char *p, size_t n);

/* A chat whose callbacks record what they see: every frame, each callback counted,
 * the last error, callbacks made after close (late_calls, which evt_recorder_free
 * asserts is 0).  A test sets the behaviour fields, then evt_recorder_new. */
struct evt_recorder {
    evc_chat *chat;
    struct ev_loop *loop;
    struct evc_chat_ops ops;       /* built from the EVT_REC_* flags */
    /* What was recorded. */
    evt_bytes cur;                 /* collected since the last found_terminator */
    evt_bytes all;                 /* everything collected */
    evt_bytes framed;              /* every frame as "<len>:<bytes>|" */
    evt_bytes at_close;            /* `all` as handle_close saw it */
    char *frames[EVT_MAX_FRAMES];  /* the first EVT_MAX_FRAMES frames, NUL-terminated */
    size_t frame_len[EVT_MAX_FRAMES];
    const char *incoming_ptr[EVT_MAX_FRAMES];   /* where evc_chat_incoming had each */
    int n_frames;
    int n_collect, n_found, n_close, n_error, n_timeout, n_connect, n_destroy;
    int n_drained, n_low_water, n_too_long;
    int last_err;
    int late_calls;                /* callbacks made after the chat was closed or destroyed */
    size_t bytes_in;               /* bytes of all frames */
    size_t max_pending;            /* largest evc_chat_output_pending seen at a frame */
    bool in_found;                 /* found_terminator is on the stack */
    int callbacks_in_found;        /* close/drained/low-water callbacks made from inside it */
    size_t want_all;               /* have_all turns true once `all` holds this many bytes */
    bool have_all;
    bool destroyed;
    /* Behaviour. */
    unsigned close_in;             /* EVT_CLOSE_IN_* */
    bool keep_open;                /* handle_close and handle_error do not close */
    bool echo;                     /* found_terminator pushes the frame and "\n" back */
    evt_frame_hook on_frame;       /* runs in found_terminator, after echo */
    evt_collect_hook collector;    /* with EVT_REC_COLLECT: replaces evt_recorder_keep;
                                    * a frame it left empty is evc_chat_incoming's */
    evt_event_hook on_close;       /* runs in handle_close, before it closes */
    evt_error_hook on_error;       /* runs in handle_error, before it closes */
    evt_event_hook on_drained;     /* runs in handle_drained */
    evt_event_hook on_low_water;   /* runs in handle_low_water */
    evt_event_hook on_too_long;    /* runs in frame_too_long */
    /* Room for what hooks keep: push results, output_pending values, a second chat. */
    int results[16];
    size_t pending[4];
    evc_chat *other;
};

/* Fills r->ops with the callbacks `which` (EVT_REC_*) and returns it. */
const struct evc_chat_ops *evt_recorder_ops(evt_recorder *r, unsigned which);
/* Makes r->chat over fd with the callbacks `which` (EVT_REC_*); asserts. */
evc_chat *evt_recorder_new(evt_recorder *r, struct ev_loop *loop, int fd, unsigned which);
/* Keeps n collected bytes in r->cur and r->all: what collect_incoming_data does
 * unless r->collector is set. */
void evt_recorder_keep(evt_recorder *r, const char *p, size_t n);
/* Frees what r recorded and asserts no callback came after close. */
void evt_recorder_free(evt_recorder *r);
/* Asserts r recorded exactly the n frames of want (C strings). */
void evt_recorder_assert_frames(const evt_recorder *r, const char *const *want, int n);
/* Appends one frame as "<len>:<bytes>|", the form of r->framed. */
void evt_bytes_add_frame(evt_bytes *b, const char *p, size_t n);

/* A loop and a TCP pair: the test's end `peer` (non-blocking, no delay) and the
 * chat's end `fd`. */
typedef struct evt_pair {
    struct ev_loop *loop;
    int peer;
    int fd;
} evt_pair;
void evt_pair_open(evt_pair *);
/* A recording chat on p's fd with terminator term (NULL: none). */
evc_chat *evt_recorder_open(evt_recorder *r, evt_pair *p, unsigned which, const char *term);
/* Closes the chat if alive and the peer, checks the loop is empty and that r was
 * destroyed with no late callbacks, and frees everything. */
void evt_pair_close(evt_pair *p, evt_recorder *r);
/* Floods data to the chat in the given send sizes and runs until it is all sent. */
void evt_pair_feed(evt_pair *p, const char *data, size_t len, const size_t *chunks,
                   size_t nchunks);
/* Reads exactly n bytes from the peer while running the loop; asserts. */
void evt_pair_drain_exact(evt_pair *p, evt_bytes *got, size_t n);
/* Reads from the peer until EOF while running the loop; asserts EOF came. */
void evt_pair_drain_to_eof(evt_pair *p, evt_bytes *got);
/* Appends random printable lines ("\n"-terminated) until out holds at least total
 * bytes, many of them at the lengths where copies and blocks change (16, 32, 64, 128). */
void evt_random_lines(evt_bytes *out, size_t total, unsigned *seed);
/* A release callback for evc_chat_push_ref that counts: counter is an int. */
void evt_count_release(void *counter);

#endif

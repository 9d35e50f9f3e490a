/*
 * evchat: framed channels on libev, after Python's asyncore and asynchat.
 *
 * One header, sectioned by layer: errors, addresses, dispatcher, producers,
 * chat, server.  Objects are opaque handles the library allocates.  Every
 * callback gets the object first and the user pointer last.  Functions that
 * can fail return 0 (or a count) on success and a negative errno on failure;
 * constructors return NULL and set errno.  When a call fails, the callback it
 * would have caused never fires.  See evc_dispatcher(3), evc_chat(3) and
 * evc_producer(3) for the lifetime rules.
 */
#ifndef EVCHAT_H
#define EVCHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(EVC_BUILDING) && defined(__GNUC__)
#define EVC_EXPORT __attribute__((visibility("default")))
#else
#define EVC_EXPORT
#endif

#if defined(__GNUC__)
#define EVC_PRINTF(fmt, first) __attribute__((format(printf, fmt, first)))
#else
#define EVC_PRINTF(fmt, first)
#endif

struct ev_loop;
struct sockaddr_storage;

/* EVC_VERSION_MAJOR, EVC_VERSION_MINOR, EVC_VERSION_PATCH: the release this
 * header belongs to (configure writes them from configure.ac). */
#include "evchat_version.h"

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/* A producer's more() answer: nothing now, more later (see evc_chat_resume). */
#define EVC_NOT_YET (-10001)

/* Names an error: a negative (or positive) errno or EVC_NOT_YET.  Never NULL. */
EVC_EXPORT const char *evc_strerror(int err);

/* The running library's release, "MAJOR.MINOR.PATCH" (static; never NULL); it can
 * differ from the EVC_VERSION_* a program was compiled with. */
EVC_EXPORT const char *evc_version(void);

/* ------------------------------------------------------------------ */
/* Addresses                                                           */
/* ------------------------------------------------------------------ */

/* Longest text evc_addr_format writes, with its NUL ("unix:" + sun_path). */
#define EVC_ADDRSTRLEN 120

/* Parses "host:port", "[v6]:port" (a numeric scope "%2" allowed), "unix:/path" or an
 * abstract "unix:@name" into *ss; the host may be a name ("localhost").
 * Returns 0, -EINVAL (bad text), -ENOENT (no such host) or -ENOMEM. */
EVC_EXPORT int evc_addr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len);

/* Resolves host (name, IPv4 or IPv6 literal, bracketed or not, or "unix:/path") and
 * port into *ss.  Returns 0, -EINVAL, -ENOENT or -ENOMEM. */
EVC_EXPORT int evc_addr_from_host_port(const char *host, int port,
                                       struct sockaddr_storage *ss, socklen_t *len);

/* Writes "1.2.3.4:80", "[::1]:80" or "unix:/path" into buf (cap bytes, NUL
 * included).  Returns the text length, or -EAFNOSUPPORT / -ENOSPC (buf then holds ""). */
EVC_EXPORT int evc_addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t cap);

/* ------------------------------------------------------------------ */
/* Dispatcher: asyncore.dispatcher                                     */
/* ------------------------------------------------------------------ */

typedef struct evc_dispatcher evc_dispatcher;

/* The "methods".  Any member may be NULL; the comment says what NULL does. */
struct evc_dispatcher_ops {
    bool (*readable)(evc_dispatcher *, void *data);          /* NULL: true */
    bool (*writable)(evc_dispatcher *, void *data);          /* NULL: true only while connecting */
    void (*handle_read)(evc_dispatcher *, void *data);       /* NULL: read and discard */
    void (*handle_write)(evc_dispatcher *, void *data);      /* NULL: nothing */
    void (*handle_expt)(evc_dispatcher *, void *data);       /* urgent (OOB) data; NULL: discard it */
    void (*handle_connect)(evc_dispatcher *, void *data);    /* NULL: nothing */
    void (*handle_accept)(evc_dispatcher *, void *data);     /* NULL: accept, then handle_accepted */
    void (*handle_accepted)(evc_dispatcher *, int fd, const struct sockaddr *, socklen_t,
                            void *data);                     /* NULL: close fd; else fd is yours */
    void (*handle_close)(evc_dispatcher *, void *data);      /* peer closed; NULL: close */
    void (*handle_error)(evc_dispatcher *, int err, void *data); /* err < 0; NULL: close
                                                             * (a listener: see evc_dispatcher(3)) */
    void (*handle_timeout)(evc_dispatcher *, void *data);    /* idle timeout; NULL: close */
    void (*on_destroy)(evc_dispatcher *, void *data);        /* once, after close: free `data` here */
};

/* A dispatcher with no fd yet.  ops must outlive it.  NULL + errno on failure. */
EVC_EXPORT evc_dispatcher *evc_dispatcher_new(struct ev_loop *loop,
                                              const struct evc_dispatcher_ops *ops, void *data);
/* Creates a non-blocking, close-on-exec socket and adopts it.  0 or -errno. */
EVC_EXPORT int evc_dispatcher_create_socket(evc_dispatcher *, int family, int type);
/* Adopts any fd (socket, pipe, tty), makes it non-blocking; the dispatcher now owns it.
 * 0, -EBADF, or -EBUSY if the dispatcher already has one. */
EVC_EXPORT int evc_dispatcher_set_socket(evc_dispatcher *, int fd);
/* SO_REUSEADDR on the socket.  0 or -errno. */
EVC_EXPORT int evc_dispatcher_set_reuse_addr(evc_dispatcher *);
/* bind(2).  0 or -errno (-EADDRINUSE when the address is taken). */
EVC_EXPORT int evc_dispatcher_bind(evc_dispatcher *, const struct sockaddr *, socklen_t);
/* listen(2); the dispatcher is now an acceptor (handle_accept on readability).  0 or -errno. */
EVC_EXPORT int evc_dispatcher_listen(evc_dispatcher *, int backlog);
/* Starts a non-blocking connect.  0: handle_connect (or handle_error) follows;
 * a synchronous failure returns -errno and no callback fires. */
EVC_EXPORT int evc_dispatcher_connect(evc_dispatcher *, const struct sockaddr *, socklen_t);
/* Accepts one connection: a non-blocking, close-on-exec fd the caller owns; -EAGAIN
 * when none is waiting (EINTR and ECONNABORTED are retried a few times); other -errno
 * otherwise.
 * addr/len may be NULL. */
EVC_EXPORT int evc_dispatcher_accept(evc_dispatcher *, struct sockaddr_storage *addr, socklen_t *len);
/* Sends without SIGPIPE.  >0 bytes sent; 0 would block or the peer is gone (then
 * handle_close has run); other failures: handle_error has run, -errno returned. */
EVC_EXPORT ssize_t evc_dispatcher_send(evc_dispatcher *, const void *, size_t);
/* Receives.  >0 bytes; 0 would block or EOF/reset (then handle_close has run);
 * other failures: handle_error has run, -errno returned. */
EVC_EXPORT ssize_t evc_dispatcher_recv(evc_dispatcher *, void *, size_t);
/* Datagram receive: >=0 bytes (an empty datagram is 0), -EAGAIN when none, -errno. */
EVC_EXPORT ssize_t evc_dispatcher_recvfrom(evc_dispatcher *, void *, size_t,
                                           struct sockaddr_storage *from, socklen_t *fromlen);
/* Datagram send: bytes sent, -EAGAIN when the socket is full, -errno. */
EVC_EXPORT ssize_t evc_dispatcher_sendto(evc_dispatcher *, const void *, size_t,
                                         const struct sockaddr *to, socklen_t tolen);
/* Closes the fd and stops all events now; idempotent, safe inside any callback.
 * No callback but on_destroy follows; on_destroy runs later, from the loop. */
EVC_EXPORT void evc_dispatcher_close(evc_dispatcher *);
/* True once evc_dispatcher_close has been called (by anyone). */
EVC_EXPORT bool evc_dispatcher_closed(const evc_dispatcher *);
/* Re-asks readable()/writable() now; call it when their answer changed outside a callback. */
EVC_EXPORT void evc_dispatcher_update(evc_dispatcher *);
/* Idle timeout: handle_timeout after idle_seconds with no I/O; 0 turns it off. */
EVC_EXPORT void evc_dispatcher_set_timeout(evc_dispatcher *, double idle_seconds);
/* The fd, or -1 when there is none (or after close). */
EVC_EXPORT int evc_dispatcher_fd(const evc_dispatcher *);
/* The user pointer given to evc_dispatcher_new. */
EVC_EXPORT void *evc_dispatcher_data(const evc_dispatcher *);
/* The loop the dispatcher belongs to. */
EVC_EXPORT struct ev_loop *evc_dispatcher_loop(const evc_dispatcher *);
/* Closes every dispatcher (and so every chat and server) of the loop: asyncore.close_all. */
EVC_EXPORT void evc_close_all(struct ev_loop *loop);

/* ------------------------------------------------------------------ */
/* Producers: asynchat.simple_producer and Medusa's family            */
/* ------------------------------------------------------------------ */

typedef struct evc_producer evc_producer;

struct evc_producer_ops {
    /* Fills buf (cap bytes): >0 bytes written, 0 done, EVC_NOT_YET (call
     * evc_chat_resume when more is ready), or -errno (the channel's handle_error). */
    ssize_t (*more)(evc_producer *, void *buf, size_t cap, void *data);
    /* Once, when the producer is finished, discarded or freed: free `data` here. */
    void (*on_destroy)(evc_producer *, void *data);
    /* Optional: write up to max bytes straight into fd (sendfile).  >0 bytes, 0 done,
     * -EAGAIN fd is full, -errno.  NULL: the library calls more() and writes itself. */
    ssize_t (*send_to_fd)(evc_producer *, int fd, size_t max, void *data);
};

/* A producer over ops/data.  ops must outlive it.  NULL + errno on failure. */
EVC_EXPORT evc_producer *evc_producer_new(const struct evc_producer_ops *ops, void *data);
/* Frees a producer nobody took (on_destroy runs).  NULL is a no-op. */
EVC_EXPORT void evc_producer_free(evc_producer *);
/* The chat the producer was pushed to (so more() may call evc_chat_resume later),
 * or NULL before it was pushed. */
EVC_EXPORT struct evc_chat *evc_producer_chat(const evc_producer *);
/* Pulls up to cap bytes: what more() answers (for tests and producer chains). */
EVC_EXPORT ssize_t evc_producer_more(evc_producer *, void *buf, size_t cap);
/* Copies bytes; hands them out buffer_size (0: 512) at a time. */
EVC_EXPORT evc_producer *evc_simple_producer_new(const void *bytes, size_t len, size_t buffer_size);
/* Streams length bytes (UINT64_MAX: to EOF) of fd from offset; takes fd on success
 * and closes it when done.  Uses sendfile(2) into sockets where the kernel allows. */
EVC_EXPORT evc_producer *evc_file_producer_new(int fd, uint64_t offset, uint64_t length);

/* Stock wrappers (Medusa's producers).  A wrapper pulls the producer(s) it wraps
 * with evc_producer_more, passes on EVC_NOT_YET (losing nothing, resuming where it
 * stopped) and -errno (after the bytes before it; asked again, it answers the same
 * error).  On success a wrapper owns what it wraps and frees it when done or
 * destroyed; on failure (NULL + errno) the caller keeps it. */

/* HTTP/1.1 chunked transfer coding of inner: each piece as "<hex size>\r\n<bytes>\r\n",
 * then "0\r\n", trailers, "\r\n".  trailers: NULL, or header lines each ending
 * "\r\n" (copied).  EINVAL for malformed trailers.  Owns inner on success. */
EVC_EXPORT evc_producer *evc_chunked_producer_new(evc_producer *inner, const char *trailers);
/* The n producers in order, each freed as it finishes.  Owns all n on success
 * (the array itself is copied).  EINVAL for a NULL entry. */
EVC_EXPORT evc_producer *evc_composite_producer_new(evc_producer *const *producers, size_t n);
/* Each of the n C strings followed by "\r\n" (copied). */
EVC_EXPORT evc_producer *evc_lines_producer_new(const char *const *lines, size_t n);
/* Coalesces inner's pieces: each more() gathers until min_size bytes (or cap) are
 * ready or inner pauses or ends (0: 65536).  Owns inner on success. */
EVC_EXPORT evc_producer *evc_globbing_producer_new(evc_producer *inner, size_t min_size);
/* What hook(p, total, status, arg) is told: exactly once, with the bytes handed out;
 * status 0 when inner finished, its -errno when it failed, -ECANCELED when the
 * producer is destroyed before either. */
typedef void (*evc_producer_hook)(evc_producer *, uint64_t total, int status, void *arg);
/* inner unchanged, then hook(...) as above.  EINVAL for a NULL hook.  Owns inner on success. */
EVC_EXPORT evc_producer *evc_hooked_producer_new(evc_producer *inner, evc_producer_hook hook,
                                                 void *arg);
/* inner with every `from` replaced by `to` (C strings, matched across piece edges).
 * from and to NULL: SMTP dot-stuffing, "\r\n." becomes "\r\n.." and a '.' at the very
 * start becomes "..".  EINVAL for an empty from or one NULL.  Owns inner on success. */
EVC_EXPORT evc_producer *evc_escaping_producer_new(evc_producer *inner, const char *from,
                                                   const char *to);

/* Container formats of evc_compressed_producer_new (all deflate inside). */
typedef enum evc_compress_format {
    EVC_COMPRESS_ZLIB = 0,   /* RFC 1950: zlib header and Adler-32 (HTTP "deflate", Medusa's) */
    EVC_COMPRESS_GZIP = 1,   /* RFC 1952: gzip header (no name, mtime 0) and CRC-32 (HTTP "gzip") */
    EVC_COMPRESS_RAW = 2     /* RFC 1951: bare deflate, no header or check */
} evc_compress_format;
/* inner compressed by zlib at level (0-9, -1: zlib's default); at levels other than 0
 * the bytes equal a one-shot deflate of the whole of inner.  EINVAL for a bad level or
 * format.  Owns inner on success. */
EVC_EXPORT evc_producer *evc_compressed_producer_new(evc_producer *inner, int level,
                                                     evc_compress_format format);

/* ------------------------------------------------------------------ */
/* Chat: asynchat.async_chat                                           */
/* ------------------------------------------------------------------ */

typedef struct evc_chat evc_chat;

typedef enum evc_terminator_kind {
    EVC_TERM_NONE = 0,   /* everything goes to collect_incoming_data */
    EVC_TERM_BYTES = 1,  /* a byte string ends each frame */
    EVC_TERM_COUNT = 2,  /* a byte count; counts down; 0 is an empty frame */
    EVC_TERM_LINE = 3,   /* an end-of-line style (evc_eol) */
    EVC_TERM_ANY = 4,    /* a set of delimiters; the earliest match ends the frame */
    EVC_TERM_COUNT_THEN = 5, /* a byte count, then exactly a delimiter */
    EVC_TERM_PREFIX = 6, /* a binary length header, then that many bytes */
    EVC_TERM_NETSTRING = 7 /* "<decimal length>:<bytes>," */
} evc_terminator_kind;

/* End-of-line styles (evc_chat_set_terminator_line). */
typedef enum evc_eol {
    EVC_EOL_LF = 0,      /* "\n" */
    EVC_EOL_CRLF,        /* "\r\n" strictly */
    EVC_EOL_CRLF_OR_LF,  /* a line ends at "\n"; a "\r" just before it is dropped too */
    EVC_EOL_NUL          /* "\0" */
} evc_eol;

typedef struct evc_terminator {
    evc_terminator_kind kind;
    const char *bytes;   /* EVC_TERM_BYTES: the terminator, valid until it changes */
    size_t len;          /* EVC_TERM_BYTES: its length */
    uint64_t count;      /* EVC_TERM_COUNT, EVC_TERM_COUNT_THEN: bytes still to come */
    evc_eol eol;         /* EVC_TERM_LINE: the style (bytes/len: its delimiter) */
    size_t n;            /* EVC_TERM_ANY: how many delimiters */
    unsigned width;      /* EVC_TERM_PREFIX: header bytes (1, 2, 4 or 8) */
    bool big_endian;     /* EVC_TERM_PREFIX: header byte order */
    uint64_t max;        /* EVC_TERM_PREFIX, EVC_TERM_NETSTRING: longest body (0: any) */
} evc_terminator;

struct evc_chat_ops {
    /* Part of the current frame; may come in several calls.  NULL: kept for evc_chat_incoming. */
    void (*collect_incoming_data)(evc_chat *, const char *, size_t, void *data);
    /* The terminator was reached (string: dropped; count: reached zero). */
    void (*found_terminator)(evc_chat *, void *data);
    void (*handle_connect)(evc_chat *, void *data);           /* NULL: nothing */
    void (*handle_close)(evc_chat *, void *data);             /* NULL: close */
    void (*handle_error)(evc_chat *, int err, void *data);    /* NULL: close */
    void (*handle_timeout)(evc_chat *, void *data);           /* NULL: close */
    void (*on_destroy)(evc_chat *, void *data);               /* once, after close */
    /* Everything queued has been written (the queue became empty); NULL: nothing.
     * Runs at the end of an event, never inside a push or a flush. */
    void (*handle_drained)(evc_chat *, void *data);
    /* The queue, having gone over the high-water mark, fell to the low mark (reading
     * resumes); NULL: nothing.  Runs like handle_drained. */
    void (*handle_low_water)(evc_chat *, void *data);
    /* A frame outgrew max_frame.  Replies queued before it are written; it may push
     * one more.  Then the rest of the input is discarded and the chat closes once
     * its output is written.  NULL: handle_error(-EMSGSIZE), the same afterwards. */
    void (*frame_too_long)(evc_chat *, void *data);
    /* A frame was not complete within the frame deadline of its first byte
     * (evc_chat_set_frame_deadline); if the chat stays open the frame gets another
     * period.  NULL: handle_timeout (NULL: close). */
    void (*handle_frame_timeout)(evc_chat *, void *data);
    /* The TLS handshake of evc_chat_start_tls completed (evc_tls(3)); NULL: nothing. */
    void (*handle_tls_ready)(evc_chat *, void *data);
};

/* Defaults of the limits (see the setters). */
#define EVC_DEFAULT_MAX_FRAME    (1u << 20)   /* 1 MiB */
#define EVC_DEFAULT_HIGH_WATER   (1u << 20)   /* 1 MiB */
#define EVC_DEFAULT_LOW_WATER    (1u << 18)   /* 256 KiB */
#define EVC_DEFAULT_OUTPUT_LIMIT (64u << 20)  /* 64 MiB */

/* A channel over fd (it now owns it), or fd -1 to connect later.  The terminator
 * starts as none.  ops must outlive it.  NULL + errno on failure (fd untouched). */
EVC_EXPORT evc_chat *evc_chat_new(struct ev_loop *loop, int fd,
                                  const struct evc_chat_ops *ops, void *data);
/* Non-blocking connect for a chat made with fd -1; pushes queue until it completes.
 * 0: handle_connect or handle_error follows; -errno: nothing follows. */
EVC_EXPORT int evc_chat_connect(evc_chat *, const struct sockaddr *, socklen_t);
/* evc_chat_connect to an address given as text ("host:port", "[v6]:port", "unix:/path").
 * A host name is looked up on the loop's work pool: 0, then handle_connect, or handle_error
 * (-ENOENT: no such host).  0, or -EINVAL (bad text), -EALREADY (a lookup is under way)
 * and the errors of evc_chat_connect. */
EVC_EXPORT int evc_chat_connect_addr(evc_chat *, const char *addr);
/* C string terminator; "" means none.  0, -EINVAL (NULL).  Applies to buffered bytes too. */
EVC_EXPORT int evc_chat_set_terminator(evc_chat *, const char *term);
/* Byte-string terminator (copied); len 0 means none.  0, -EINVAL, -ENOMEM. */
EVC_EXPORT int evc_chat_set_terminator_bytes(evc_chat *, const void *, size_t);
/* Count terminator: found_terminator after n more bytes; 0 is an empty frame, found
 * at once (asynchat: none).  Returns 0. */
EVC_EXPORT int evc_chat_set_terminator_count(evc_chat *, uint64_t n);
/* No terminator: everything goes to collect_incoming_data. */
EVC_EXPORT void evc_chat_set_terminator_none(evc_chat *);
/* The current terminator; a count shows what is still to come. */
EVC_EXPORT evc_terminator evc_chat_get_terminator(const evc_chat *);
/* Queues a copy of the bytes.  0, -ENOBUFS (over the output limit), -EPIPE (closing), -ENOMEM. */
EVC_EXPORT int evc_chat_push(evc_chat *, const void *, size_t);
/* evc_chat_push of a C string. */
EVC_EXPORT int evc_chat_push_str(evc_chat *, const char *);
/* evc_chat_push of printf-formatted text.  0 or as evc_chat_push, or -EINVAL (bad format). */
EVC_EXPORT int evc_chat_pushf(evc_chat *, const char *fmt, ...) EVC_PRINTF(2, 3);
/* Queues bytes without copying; release(arg) runs once they are written or discarded.
 * On failure release is not called and the caller keeps the bytes. */
EVC_EXPORT int evc_chat_push_ref(evc_chat *, const void *, size_t,
                                 void (*release)(void *), void *arg);
/* Inside a callback of `from`: queues on `to` (from itself or another chat of the same
 * loop) bytes `from` handed to that callback, by reference to the read block they sit
 * in, which is kept until they are written or discarded; bytes the library had copied
 * (a frame that spanned reads) and short runs are copied.  0, -EINVAL (not in from's
 * current input), -EXDEV (chats of different loops), or as evc_chat_push. */
EVC_EXPORT int evc_chat_push_incoming(evc_chat *to, evc_chat *from, const void *bytes, size_t len);
/* Queues a producer.  On 0 the chat owns it; on error the caller keeps it. */
EVC_EXPORT int evc_chat_push_with_producer(evc_chat *, evc_producer *);
/* Closes once everything queued before this call, producers included, is written. */
EVC_EXPORT void evc_chat_close_when_done(evc_chat *);
/* Once everything queued before this call is written: shutdown(SHUT_WR), then read and
 * discard (no callbacks) until the peer closes or linger_seconds pass, then close, so
 * the peer gets the whole answer instead of a reset.  Pushes fail from now on.
 * 0, -EINVAL (linger_seconds not > 0), -EPIPE (closed or closing), -ENOMEM (closed now). */
EVC_EXPORT int evc_chat_shutdown_when_done(evc_chat *, double linger_seconds);
/* Drops unread input and unsent output (refs released, producers destroyed). */
EVC_EXPORT void evc_chat_discard_buffers(evc_chat *);
/* Closes now, dropping unsent output; idempotent, safe in any callback; on_destroy follows. */
EVC_EXPORT void evc_chat_close(evc_chat *);
/* True once the chat is closed (by anyone, evc_close_all included). */
EVC_EXPORT bool evc_chat_closed(const evc_chat *);
/* A producer that answered EVC_NOT_YET has more: ask it again before the loop sleeps. */
EVC_EXPORT void evc_chat_resume(evc_chat *);
/* With the default collector (or evc_chat_collect): the frame collected so far (valid
 * until the next callback returns) and its length.  Inside found_terminator it is the
 * whole frame.  NULL and *len 0 when the library collected nothing. */
EVC_EXPORT const char *evc_chat_incoming(evc_chat *, size_t *len);
/* Whether frames keep their terminator (default false, as asynchat): when true,
 * collect_incoming_data and evc_chat_incoming see each frame's terminator bytes at
 * its end, so a proxy or an echo can pass a frame on with one push. */
EVC_EXPORT void evc_chat_set_keep_terminator(evc_chat *, bool keep);
/* Longest delimited frame, or frame the library collects (0: unlimited); past it:
 * frame_too_long (or handle_error(-EMSGSIZE)), then the input is discarded and the
 * chat closes once its output is written.  A count frame the user streams is never capped. */
EVC_EXPORT void evc_chat_set_max_frame(evc_chat *, size_t max);
/* Stop reading (and delivering frames already read) while more than high bytes wait
 * to be sent; go on below low.
 * 0 for high turns it off.  -EINVAL if low > high. */
EVC_EXPORT int evc_chat_set_watermarks(evc_chat *, size_t low, size_t high);
/* Pushes that would queue more than max bytes fail with -ENOBUFS (0: unlimited). */
EVC_EXPORT void evc_chat_set_output_limit(evc_chat *, size_t max);
/* Bytes queued and not yet written (producers count what they have handed out). */
EVC_EXPORT size_t evc_chat_output_pending(const evc_chat *);
/* Idle timeout: handle_timeout after seconds with no I/O; 0 turns it off. */
EVC_EXPORT void evc_chat_set_timeout(evc_chat *, double seconds);
/* Frame deadline: handle_frame_timeout when a frame is not complete seconds after its
 * first byte arrived, however the bytes trickle in; 0 turns it off (the default). */
EVC_EXPORT void evc_chat_set_frame_deadline(evc_chat *, double seconds);
/* The peer's address ("host:port" text via evc_addr_format); 0 or -errno. */
EVC_EXPORT int evc_chat_peer_address(const evc_chat *, struct sockaddr_storage *, socklen_t *);
/* -- More framings (evc_chat(3), FRAMINGS).  Each applies to buffered bytes too. -- */
/* Lines in an end-of-line style.  0 or -EINVAL. */
EVC_EXPORT int evc_chat_set_terminator_line(evc_chat *, evc_eol eol);
/* Any of n delimiters (1..16, none empty, copied); the match that ends first wins,
 * the longest of those ending at the same byte.  0, -EINVAL, -ENOMEM. */
EVC_EXPORT int evc_chat_set_terminator_any(evc_chat *, const char *const *delims,
                                           const size_t *lens, size_t n);
/* Inside found_terminator after evc_chat_set_terminator_any: which delimiter ended
 * the frame (its index). */
EVC_EXPORT size_t evc_chat_terminator_matched(const evc_chat *);
/* n bytes, then exactly delim (len >= 1, copied), as one frame (RESP bulk, HTTP chunk).
 * Anything else where delim belongs: handle_error(-EPROTO).  0, -EINVAL, -ENOMEM. */
EVC_EXPORT int evc_chat_set_terminator_count_then(evc_chat *, uint64_t n,
                                                  const void *delim, size_t len);
/* Frames after a width-byte (1, 2, 4, 8) length header; a length over max (0: any)
 * is handle_error(-EPROTO).  Stays set frame after frame.  0 or -EINVAL. */
EVC_EXPORT int evc_chat_set_terminator_prefix(evc_chat *, unsigned width, bool big_endian,
                                              uint64_t max);
/* Netstrings ("5:hello,"); malformed or over max (0: any): handle_error(-EPROTO).
 * Stays set frame after frame.  Returns 0. */
EVC_EXPORT int evc_chat_set_terminator_netstring(evc_chat *, uint64_t max);
/* Queues a width-byte length header and the bytes as one push.  0, -EINVAL (width),
 * -EMSGSIZE (len does not fit), or as evc_chat_push. */
EVC_EXPORT int evc_chat_push_prefixed(evc_chat *, unsigned width, bool big_endian,
                                      const void *, size_t);
/* Queues the bytes as a netstring, as one push.  0 or as evc_chat_push. */
EVC_EXPORT int evc_chat_push_netstring(evc_chat *, const void *, size_t);
/* The input read and not yet delivered, without consuming it (valid until the next
 * callback returns); NULL and *len 0 when there is none. */
EVC_EXPORT const char *evc_chat_peek(evc_chat *, size_t *len);
/* The library's collector, for a custom collect_incoming_data to delegate to (asynchat's
 * _collect_incoming_data): the bytes are kept for evc_chat_incoming.  0, -ENOMEM, or
 * -EMSGSIZE past max_frame (then frame_too_long follows). */
EVC_EXPORT int evc_chat_collect(evc_chat *, const char *, size_t);
/* Stops delivering frames, buffered ones included, and reading; nothing is lost.
 * After evc_chat_close_when_done it keeps later pipelined frames from being delivered. */
EVC_EXPORT void evc_chat_pause_reading(evc_chat *);
/* Delivers the buffered frames first, then reads again. */
EVC_EXPORT void evc_chat_resume_reading(evc_chat *);

/* The dispatcher under the chat (for its fd, loop, update). */
EVC_EXPORT evc_dispatcher *evc_chat_dispatcher(evc_chat *);
/* The user pointer given to evc_chat_new. */
EVC_EXPORT void *evc_chat_data(const evc_chat *);

/* ------------------------------------------------------------------ */
/* TLS on a chat, STARTTLS included (evc_tls(3))                       */
/* ------------------------------------------------------------------ */

/* OpenSSL's types, by the names OpenSSL gives them (SSL_CTX is struct
 * ssl_ctx_st); this header does not include OpenSSL's. */
struct ssl_ctx_st;
struct ssl_st;
struct x509_st;

/* evc_chat_start_tls flags.  Without EVC_TLS_SERVER the chat is the client. */
#define EVC_TLS_SERVER    1u   /* accept the handshake (the caller's ctx has the certificate) */
#define EVC_TLS_NO_VERIFY 2u   /* client: no certificate or host-name check (testing only) */
/* The default handshake deadline, in seconds. */
#define EVC_DEFAULT_TLS_HANDSHAKE_TIMEOUT 30.0

/* Starts TLS on the chat with the caller's ctx (certificates, protocols, ciphers;
 * the session keeps a reference).  Bytes queued before the call are written in
 * the clear first (a STARTTLS reply); input read and not yet delivered is
 * discarded.  A client verifies the peer's certificate and that it names hostname
 * (also sent as SNI), which is required unless EVC_TLS_NO_VERIFY.  Then
 * handle_tls_ready, or handle_error(-EPROTO) (evc_chat_tls_error says why) or
 * handle_error(-ETIMEDOUT) past the handshake deadline.  0, -EINVAL, -EPIPE
 * (closed or closing), -EALREADY, -ENOMEM, -ENOTSUP (built without OpenSSL). */
EVC_EXPORT int evc_chat_start_tls(evc_chat *, struct ssl_ctx_st *ctx, unsigned flags,
                                  const char *hostname);
/* Handshake deadline for this chat (before or during it: then from now); 0 turns
 * it off.  The idle timeout (evc_chat_set_timeout, even meanwhile) waits for its end. */
EVC_EXPORT void evc_chat_set_tls_handshake_timeout(evc_chat *, double seconds);
/* True from the end of the handshake until a TLS failure (data flows over TLS). */
EVC_EXPORT bool evc_chat_tls_established(const evc_chat *);
/* The peer's certificate (an X509 *; owned by the session) once established; else NULL. */
EVC_EXPORT const struct x509_st *evc_chat_tls_peer_certificate(const evc_chat *);
/* The session (an SSL *) after evc_chat_start_tls, for ALPN, cipher names and the
 * like; NULL before.  Do not read, write or free through it. */
EVC_EXPORT struct ssl_st *evc_chat_tls_ssl(evc_chat *);
/* True when the peer's EOF came without close_notify (a truncation, possibly an
 * attack): handle_close runs as for any EOF; it asks this to tell the two apart. */
EVC_EXPORT bool evc_chat_tls_truncated(const evc_chat *);
/* Why TLS failed (OpenSSL's reason, the certificate check's), as text in buf (cap
 * bytes, NUL included); "" when nothing failed.  Length, -ENOSPC or -ENOTSUP. */
EVC_EXPORT int evc_chat_tls_error(const evc_chat *, char *buf, size_t cap);

/* ------------------------------------------------------------------ */
/* Server: the asyncore listener idiom                                 */
/* ------------------------------------------------------------------ */

typedef struct evc_server evc_server;

struct evc_server_ops {
    /* A new connection: fd is non-blocking and yours (make a chat over it). */
    void (*handle_accepted)(evc_server *, int fd, const struct sockaddr *, socklen_t, void *data);
    /* An accept error (the server pauses, then keeps serving unless this closes it);
     * NULL: keep serving. */
    void (*handle_error)(evc_server *, int err, void *data);
    void (*on_destroy)(evc_server *, void *data);             /* once, after close */
};

/* Listens on addr ("host:port", "[v6]:port", "unix:/path"; port 0 picks one) with
 * SO_REUSEADDR.  NULL + errno (EADDRINUSE, EINVAL, ...) on failure. */
EVC_EXPORT evc_server *evc_server_new(struct ev_loop *loop, const char *addr, int backlog,
                                      const struct evc_server_ops *ops, void *data);
/* The address actually bound, as text ("127.0.0.1:40123").  Length or -errno. */
EVC_EXPORT int evc_server_address(const evc_server *, char *buf, size_t cap);
/* The listening dispatcher. */
EVC_EXPORT evc_dispatcher *evc_server_dispatcher(evc_server *);
/* The loop the server listens on (to run it: ev_run(evc_server_loop(s), 0)). */
EVC_EXPORT struct ev_loop *evc_server_loop(const evc_server *);
/* Stops listening (a unix socket path is unlinked); idempotent; on_destroy follows. */
EVC_EXPORT void evc_server_close(evc_server *);
/* -- Connection caps (evc_server(3), CAPS).  A connection counts from the moment a
 * dispatcher or chat of the loop takes over its fd inside handle_accepted until
 * that one closes; nothing to call when it ends. -- */
/* At most n connections at once (0: no cap, the default); at n the server stops
 * accepting until one ends, and the kernel's backlog holds the newcomers.  0 or -EINVAL. */
EVC_EXPORT int evc_server_set_max_connections(evc_server *, unsigned n);
/* At most n connections at once from one IP address (0: no cap, the default); a
 * peer's connection over it is accepted and closed at once.  0 or -EINVAL. */
EVC_EXPORT int evc_server_set_max_per_peer(evc_server *, unsigned n);
/* Connections counted now. */
EVC_EXPORT unsigned evc_server_connections(const evc_server *);

/* ------------------------------------------------------------------ */
/* Threads: posts to a loop, chat references, the blocking-work pool   */
/* (evc_loop(3)).  Everything else in this header belongs to the       */
/* thread of the loop the object was made on.                          */
/* ------------------------------------------------------------------ */

/* Loop thread: lets other threads post to the loop from now on (idempotent; the loop's
 * one wake-up watcher does not keep ev_run running by itself).  0 or -ENOMEM. */
EVC_EXPORT int evc_loop_open_posts(struct ev_loop *loop);
/* Loop thread: refuses posts from now on and runs, in order, those already accepted.
 * The count it ran (0 when posts were not open). */
EVC_EXPORT int evc_loop_close_posts(struct ev_loop *loop);
/* Any thread: runs fn(arg) on the loop's thread, after the posts accepted before it.
 * 0 (fn will run), -ESHUTDOWN (posts not open or closed: fn never runs), -ENOMEM. */
EVC_EXPORT int evc_loop_post(struct ev_loop *loop, void (*fn)(void *arg), void *arg);

/* A thread-safe handle on a chat: it stays valid after the chat is gone. */
typedef struct evc_chat_ref evc_chat_ref;

/* Loop thread: a new reference to the chat (release it with evc_chat_ref_release).
 * NULL + errno (EPIPE: the chat is closed; ENOMEM). */
EVC_EXPORT evc_chat_ref *evc_chat_ref_new(evc_chat *);
/* Any thread: copies the bytes and posts their push to the chat's loop; there,
 * done(status, arg) (if not NULL) hears evc_chat_push's result, -EPIPE when the chat
 * closed meanwhile.  0 (done will run), -EPIPE (chat known gone), -ESHUTDOWN (the
 * loop takes no posts), -ENOMEM: then done never runs. */
EVC_EXPORT int evc_chat_ref_push(evc_chat_ref *, const void *, size_t,
                                 void (*done)(int status, void *arg), void *arg);
/* Loop thread: the chat, or NULL once it is closed. */
EVC_EXPORT evc_chat *evc_chat_ref_get(const evc_chat_ref *);
/* Any thread: drops the reference; the last one frees it. */
EVC_EXPORT void evc_chat_ref_release(evc_chat_ref *);

/* A function queued on the loop's pool of worker threads. */
typedef struct evc_work evc_work;

/* Loop thread: runs work(arg) on a pool thread, then done(arg, status) on the loop
 * thread: status 0, or -ECANCELED after evc_work_cancel.  The item is freed after
 * done returns.  Pending work keeps ev_run running.  NULL + errno (ENOMEM, EAGAIN). */
EVC_EXPORT evc_work *evc_work_queue(struct ev_loop *loop, void (*work)(void *arg),
                                    void (*done)(void *arg, int status), void *arg);
/* Loop thread, before done ran: takes the work off the queue if no thread started it
 * (done follows with -ECANCELED).  0, or -EBUSY (running or finished: done follows as usual). */
EVC_EXPORT int evc_work_cancel(evc_work *);
/* Loop thread, posts open: at most n (1..256) pool threads for the loop from now on
 * (default 4); threads already started stay.  0, -EINVAL, -ESHUTDOWN (posts not open). */
EVC_EXPORT int evc_loop_set_pool_size(struct ev_loop *loop, unsigned n);

/* ------------------------------------------------------------------ */
/* Workers: socketserver's ThreadingTCPServer and ForkingTCPServer     */
/* ------------------------------------------------------------------ */

/* N event loops on N threads (or in N processes) serving one address; see evc_server(3). */
typedef struct evc_workers evc_workers;

/* How connections reach the workers (evc_workers_new's flags). */
#define EVC_WORKERS_REUSEPORT 0x1u  /* a SO_REUSEPORT listener per worker: the kernel balances */
#define EVC_WORKERS_ACCEPTOR  0x2u  /* one listener on evc_workers_run's thread deals fds round robin */
#define EVC_WORKERS_FORK      0x4u  /* processes instead of threads (always a listener per worker) */

struct evc_worker_ops {
    /* On the worker's thread (or in its process) before it serves: per-worker state
     * for *worker_data (preset to data).  0, or -errno to stop every worker. */
    int (*setup)(struct ev_loop *loop, unsigned index, void *data, void **worker_data);
    /* A new connection on this worker's loop: fd is non-blocking and yours. */
    void (*handle_accepted)(struct ev_loop *loop, int fd, const struct sockaddr *, socklen_t,
                            void *worker_data);
    /* On the worker's thread after its chats were closed and destroyed, before its
     * loop goes: free the worker's state, stop your own watchers.  Not after a failed setup. */
    void (*teardown)(struct ev_loop *loop, unsigned index, void *worker_data, void *data);
};

/* Listens on addr (as evc_server_new) for n workers (0: one per online CPU), flags 0
 * (the default distribution) or one of the EVC_WORKERS_* above.  ops must outlive it;
 * nothing runs until evc_workers_run.  NULL + errno (EINVAL, EADDRINUSE, ...). */
EVC_EXPORT evc_workers *evc_workers_new(const char *addr, int backlog, unsigned n, unsigned flags,
                                        const struct evc_worker_ops *ops, void *data);
/* The address actually bound, as text ("127.0.0.1:40123").  Length or -errno. */
EVC_EXPORT int evc_workers_address(const evc_workers *, char *buf, size_t cap);
/* How many workers run (n, or the CPU count it stood for). */
EVC_EXPORT unsigned evc_workers_count(const evc_workers *);
/* Starts the workers and blocks until evc_workers_stop and every worker has finished:
 * 0, or the first setup's -errno, -EBUSY (called twice).  With EVC_WORKERS_FORK it
 * restarts a worker process that dies (one start per worker per second at most). */
EVC_EXPORT int evc_workers_run(evc_workers *);
/* Asks a running (or not yet running) evc_workers_run to stop accepting, close every
 * worker's chats (evc_close_all), run the teardowns and return.  Thread-safe and
 * async-signal-safe: call it from a SIGTERM handler.  Idempotent. */
EVC_EXPORT void evc_workers_stop(evc_workers *);
/* Closes the listeners and frees everything; not while evc_workers_run runs. */
EVC_EXPORT void evc_workers_free(evc_workers *);

/* ------------------------------------------------------------------ */
/* Memory: the loop's budget and stats, shared bytes                   */
/* ------------------------------------------------------------------ */

/* What a loop's chats hold (evc_loop_stats). */
struct evc_loop_stats {
    size_t input_bytes;       /* read and not yet delivered, and partial frames collected */
    size_t output_bytes;      /* queued output the queues hold copies of (and producers' staging) */
    size_t referenced_bytes;  /* queued output held by reference (push_ref, push_shared,
                               * push_incoming), once per queue: not in the budget */
    size_t chats;             /* open chats */
    size_t dispatchers;       /* every dispatcher of the loop, the chats' and listeners' included */
    size_t budget;            /* evc_loop_set_memory_budget; 0: none */
    uint64_t budget_closes;   /* chats closed for the budget so far */
};

/* Caps input_bytes + output_bytes of the loop's chats (0: no cap, the default).  Past it
 * the chats holding the most get handle_error(-ENOBUFS) and are closed, until the rest
 * fit.  Lasts while the loop has a dispatcher.  0, -ENOENT (no dispatcher yet), -EINVAL. */
EVC_EXPORT int evc_loop_set_memory_budget(struct ev_loop *loop, size_t bytes);
/* Fills *out with what the loop's chats hold now (exact; O(chats)).  All zero for a loop
 * without dispatchers.  0 or -EINVAL. */
EVC_EXPORT int evc_loop_stats(struct ev_loop *loop, struct evc_loop_stats *out);

/* Bytes that many chats may queue without a copy each (a broadcast). */
typedef struct evc_shared evc_shared;
/* A reference-counted copy of len bytes, the caller holding one reference.  NULL + errno
 * (ENOMEM, EINVAL). */
EVC_EXPORT evc_shared *evc_shared_new(const void *bytes, size_t len);
/* Queues the shared bytes on c, which holds its own reference until they are written or
 * discarded.  0 or the errors of evc_chat_push (nothing queued, the caller's reference kept). */
EVC_EXPORT int evc_chat_push_shared(evc_chat *c, evc_shared *sh);
/* Drops the caller's reference; the bytes go with the last one.  NULL: nothing. */
EVC_EXPORT void evc_shared_release(evc_shared *sh);
/* The bytes and *len, which never change. */
EVC_EXPORT const void *evc_shared_bytes(const evc_shared *sh, size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* EVCHAT_H */

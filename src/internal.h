/*
 * Declarations shared between evchat's source files; never installed.
 *
 * Data flows one way: socket -> evc_buf -> evc_scanner -> user callbacks ->
 * evc_outq -> socket.  The scanner, buffer, queue and producers know nothing
 * of libev; only the dispatcher files, oob.c and server.c include <ev.h>.
 */
#ifndef EVC_INTERNAL_H
#define EVC_INTERNAL_H

#include "evchat.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>

#define EVC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------ */
/* Byte buffer (buf.c): bytes data[off, off+len) of a cap-byte block.  */
/* ------------------------------------------------------------------ */

/* A reference-counted block of bytes a buffer reads into; private to buf.c. */
typedef struct evc_block evc_block;

/* A chat's read block, and how many spare ones a block source keeps. */
#define EVC_READ_BLOCK ((size_t)65536)
#define EVC_POOL_BLOCKS 8

/*
 * Where a buffer's blocks come from (after h2o's buffer prototype): the size
 * of the block a buffer starts with, and up to EVC_POOL_BLOCKS spare blocks of
 * that size, reused before malloc is asked.  One per loop (the registry keeps
 * it), used only from that loop's thread: no lock.
 */
typedef struct evc_block_source {
    size_t block_size;
    size_t nspare;
    evc_block *spare[EVC_POOL_BLOCKS];
} evc_block_source;

typedef struct evc_buf {
    char *data;   /* block->bytes, or NULL */
    size_t off;   /* first unconsumed byte */
    size_t len;   /* unconsumed bytes */
    size_t cap;   /* bytes in the block */
    evc_block *block;          /* the block, which the buffer holds one reference to */
    size_t written;            /* end of the bytes written into the block so far */
    evc_block_source *source;  /* where blocks come from; NULL: malloc */
} evc_buf;

/* A zeroed evc_buf is empty, owns nothing and has no block source. */
#define EVC_BUF_INIT {NULL, 0, 0, 0, NULL, 0, NULL}

/* Makes at least min_free bytes writable after the content, moving the content
 * to the front or growing the block; a block referenced elsewhere is left as it
 * is and the content moves to a fresh one.  0 or -ENOMEM (content kept). */
int evc__buf_reserve(evc_buf *, size_t min_free);
/* The writable tail after the content; *avail gets its size. */
char *evc__buf_tail(evc_buf *, size_t *avail);
/* Marks n bytes written into the tail as content. */
void evc__buf_commit(evc_buf *, size_t n);
/* Drops n bytes from the front of the content (n <= len). */
void evc__buf_consume(evc_buf *, size_t n);
/* evc__buf_consume inline, for per-frame loops. */
static inline void evc__buf_consume_inline(evc_buf *b, size_t n)
{
    b->len -= n;
    b->off = b->len == 0 ? 0 : b->off + n;
}
/* Appends a copy of the bytes.  0 or -ENOMEM (content kept). */
int evc__buf_append(evc_buf *, const void *, size_t);
/* The content. */
static inline const char *evc__buf_head(const evc_buf *b) { return b->data ? b->data + b->off : NULL; }
/* Drops the content; keeps the block. */
void evc__buf_clear(evc_buf *);
/* Drops the block when the buffer is empty (as evc__buf_free), or shrinks it to the
 * content when the block is more than four times what the content needs (idle
 * channels stay small). */
void evc__buf_trim(evc_buf *);
/* Drops the content and the buffer's reference to its block (which goes back to
 * its source, or is freed, once nobody else references it).  The source stays. */
void evc__buf_free(evc_buf *);
/* An empty buffer whose blocks come from source (NULL: from malloc). */
void evc__buf_init(evc_buf *, evc_block_source *source);
/* Takes a reference to the block holding len bytes at `bytes`, which must lie
 * within what was written into the buffer's block: the block, which stays
 * unchanged until evc__block_release, or NULL when the bytes are not there. */
evc_block *evc__buf_ref(evc_buf *, const void *bytes, size_t len);
/* References to the buffer's block, its own included (0: no block).  For tests. */
unsigned evc__buf_refs(const evc_buf *);
/* Drops a reference from evc__buf_ref (a void * for release callbacks); the last
 * one frees the block or gives it back to its source. */
void evc__block_release(void *block);
/* A source of block_size-byte blocks with no spares yet. */
void evc__block_source_init(evc_block_source *, size_t block_size);
/* Frees the spare blocks.  Blocks still referenced must not come back afterwards. */
void evc__block_source_fini(evc_block_source *);

/* ------------------------------------------------------------------ */
/* Framing engine (scanner.c): pure; bytes in, frames out.            */
/* ------------------------------------------------------------------ */

#include "scanner.h"

/* ------------------------------------------------------------------ */
/* Producers (producer.c)                                              */
/* ------------------------------------------------------------------ */

struct evc_producer {
    const struct evc_producer_ops *ops;
    void *data;
    evc_chat *chat;      /* the chat it was pushed to (evc_producer_chat); NULL before */
};

/* ------------------------------------------------------------------ */
/* Output queue (outq.c): the push FIFO.  Pure: no fd, no loop.       */
/* ------------------------------------------------------------------ */

typedef struct evc_chunk evc_chunk;

typedef struct evc_outq {
    evc_chunk *head;
    evc_chunk *tail;
    size_t bytes;        /* bytes queued in copies, refs and producer staging, unsent:
                          * exact at every moment, and written only by outq.c and the
                          * inline reserve/commit below */
    /* The reserve: the free room [room, room_end) at the end of the tail copy chunk
     * (both NULL when the tail is not one), cut so that filling it keeps `bytes`
     * within append_limit.  While a copy chunk is the tail, `room` is its fill. */
    char *room;
    char *room_end;
    size_t append_limit;
    /* TLS (chat_tls.c): the bytes are transformed on their way out, so a producer
     * with send_to_fd is pulled with more() like any other, never sendfile'd. */
    bool direct_off;
    size_t ref_bytes;    /* of `bytes`, those in reference chunks (the caller's memory,
                          * or bytes queued on other queues too): exact like `bytes` */
} evc_outq;

#define EVC_OUTQ_INIT {NULL, NULL, 0, NULL, NULL, SIZE_MAX, false, 0}

/* Bytes queued and not yet consumed (producers count what they handed out). */
static inline size_t evc__outq_bytes(const evc_outq *q)
{
    return q->bytes;
}

/* Of evc__outq_bytes, those queued by reference (evc__outq_push_ref). */
static inline size_t evc__outq_ref_bytes(const evc_outq *q)
{
    return q->ref_bytes;
}

/* The free room at the tail that evc__outq_commit may fill (*avail bytes, 0 when
 * none); like evc__buf_tail.  Nothing is queued until the commit. */
static inline char *evc__outq_reserve(evc_outq *q, size_t *avail)
{
    *avail = (size_t)(q->room_end - q->room);
    return q->room;
}

/* Queues n bytes written into the room evc__outq_reserve gave (n <= its avail). */
static inline void evc__outq_commit(evc_outq *q, size_t n)
{
    q->room += n;
    q->bytes += n;
}

/* A 16-byte unit for evc__outq_append: the compiler moves it with one load and one store. */
typedef struct evc_block16 { char b[16]; } evc_block16;

/* memcpy, with the short replies of line protocols (16 to 64 bytes) copied
 * inline by overlapping 16-byte moves instead of a call into libc. */
static inline void evc__copy_short(char *dst, const char *src, size_t len)
{
    if (len - 16 > 48) {
        memcpy(dst, src, len);
        return;
    }
    evc_block16 first, last;
    memcpy(&first, src, 16);
    memcpy(&last, src + len - 16, 16);
    if (len > 32) {
        evc_block16 second, before_last;
        memcpy(&second, src + 16, 16);
        memcpy(&before_last, src + len - 32, 16);
        memcpy(dst + 16, &second, 16);
        memcpy(dst + len - 32, &before_last, 16);
    }
    memcpy(dst, &first, 16);
    memcpy(dst + len - 16, &last, 16);
}

/* The common push: a copy into the reserve when 1 <= len <= the room there.
 * False (nothing done) otherwise: then use evc__outq_push_copy. */
static inline bool evc__outq_append(evc_outq *q, const void *bytes, size_t len)
{
    char *dst = q->room;
    if (len - 1 >= (size_t)(q->room_end - dst))
        return false;
    /* Counted before the copy, so that nothing of the queue is live across a
     * call to memcpy: the caller's fast path then needs no stack frame. */
    evc__outq_commit(q, len);
    evc__copy_short(dst, bytes, len);
    return true;
}

/* The byte count the reserve never lets the queue pass (SIZE_MAX: none; 0: no
 * reserve at all).  Pushes through evc__outq_push_copy and the others are not limited. */
void evc__outq_set_append_limit(evc_outq *, size_t limit);

/* Why evc__outq_iov stopped filling. */
typedef enum evc_outq_state {
    EVC_OUTQ_MORE = 0,      /* iovecs full; more bytes follow */
    EVC_OUTQ_EMPTY,         /* queue empty */
    EVC_OUTQ_NOT_YET,       /* a producer answered EVC_NOT_YET */
    EVC_OUTQ_CLOSE,         /* a close_when_done marker is next */
    EVC_OUTQ_DIRECT,        /* a producer with send_to_fd is next (use evc__outq_send_direct) */
    EVC_OUTQ_ERROR          /* a producer failed: *err has its -errno */
} evc_outq_state;

/* Queues a copy (small pushes coalesce into the tail chunk).  0 or -ENOMEM. */
int evc__outq_push_copy(evc_outq *, const void *, size_t);
/* Queues bytes by reference; release(arg) runs after they are sent or discarded.  0 or -ENOMEM. */
int evc__outq_push_ref(evc_outq *, const void *, size_t, void (*release)(void *), void *arg);
/* Queues a producer (owned on 0).  0 or -ENOMEM. */
int evc__outq_push_producer(evc_outq *, evc_producer *);
/* Queues a close_when_done marker.  0 or -ENOMEM. */
int evc__outq_push_close(evc_outq *);
/*
 * Fills up to max iovecs with the bytes at the front of the queue; *nbytes gets
 * the total.  A producer is asked for bytes (more()) only when it is at the very
 * front, everything queued before it having been consumed: reached behind
 * unwritten bytes, filling stops there (EVC_OUTQ_MORE).  Returns why it stopped
 * after the bytes it described (EVC_OUTQ_MORE if iov ran out).
 */
evc_outq_state evc__outq_iov(evc_outq *, struct iovec *iov, int max, int *niov, size_t *nbytes,
                             int *err);
/* Drops n bytes that were written from the front (releasing refs, finishing producers). */
void evc__outq_consume(evc_outq *, size_t n);
/* With EVC_OUTQ_DIRECT next: lets that producer write into fd.  >0 bytes, 0 it finished
 * (removed), -EAGAIN fd full, other -errno. */
ssize_t evc__outq_send_direct(evc_outq *, int fd, size_t max);
/* Removes a close marker at the front (the caller is about to close). */
void evc__outq_pop_close(evc_outq *);
/* Drops everything: refs released, producers destroyed, markers removed. */
void evc__outq_clear(evc_outq *);
/* True when nothing at all is queued (no bytes, producers or markers). */
static inline bool evc__outq_empty(const evc_outq *q) { return q->head == NULL; }

/* ------------------------------------------------------------------ */
/* Plain I/O without SIGPIPE (io.c)                                    */
/* ------------------------------------------------------------------ */

/* read(2), retrying EINTR.  >0, 0 EOF, -errno (-EAGAIN would block). */
ssize_t evc__io_read(int fd, void *, size_t);
/* writev(2) that never raises SIGPIPE (sendmsg MSG_NOSIGNAL on sockets, SIGPIPE
 * blocked and consumed around pipes), retrying EINTR.  >=0 bytes or -errno. */
ssize_t evc__io_writev(int fd, bool is_socket, const struct iovec *, int n);
/* True when fd is a socket. */
bool evc__io_is_socket(int fd);

/*
 * The one list of errors that mean the peer went away: a close, not an error
 * (asyncore's rule), for dispatchers and chats alike.  ETIMEDOUT is among them:
 * the kernel gave up on a peer that stopped answering (keepalive or
 * retransmission), so the connection is gone just as after a reset, and a chat
 * or dispatcher closes by default instead of reporting a failure it cannot act on.
 */
static inline bool evc__io_peer_gone(int err)
{
    return err == -ECONNRESET || err == -EPIPE || err == -ENOTCONN || err == -ESHUTDOWN ||
           err == -ECONNABORTED || err == -ETIMEDOUT;
}

/* SIGPIPE held off around a write that cannot say MSG_NOSIGNAL (pipes, sendfile). */
typedef struct evc_sigpipe_guard {
    sigset_t old_mask;
    bool was_pending;    /* a SIGPIPE pending before the write is not ours to consume */
} evc_sigpipe_guard;
/* Blocks SIGPIPE in this thread.  0 or -errno (then write nothing). */
int evc__sigpipe_hold(evc_sigpipe_guard *);
/* Consumes a SIGPIPE the write raised (whatever it returned) and restores the mask. */
void evc__sigpipe_release(evc_sigpipe_guard *);

/* ------------------------------------------------------------------ */
/* Dispatcher hooks for the chat and server layers (dispatcher.c)     */
/* ------------------------------------------------------------------ */

/*
 * The state the chat layer reads on every frame and push.  It is the first
 * member of struct evc_dispatcher, so these reads are inline loads instead of
 * calls into another file.  Only dispatcher.c writes it.
 */
typedef struct evc_dispatcher_head {
    int fd;
    bool closed;          /* the one "closed" of a dispatcher and of the chat over it */
    bool is_socket;
    bool connecting;
} evc_dispatcher_head;

static inline const evc_dispatcher_head *evc__dispatcher_head(const evc_dispatcher *d)
{
    return (const evc_dispatcher_head *)(const void *)d;
}

/* A read or write result: the peer is gone (EOF, or an error evc__io_peer_gone names). */
#define EVC_IO_GONE (-10002)
/* The chat's reads: read(2).  >0 bytes (the idle timer is refreshed), EVC_IO_GONE,
 * -EAGAIN, or another -errno (an error). */
ssize_t evc__dispatcher_read(evc_dispatcher *, void *, size_t);
/* The chat's writes: writev without SIGPIPE.  >=0 bytes (the idle timer is refreshed
 * when >0), EVC_IO_GONE, -EAGAIN, or another -errno (an error). */
ssize_t evc__dispatcher_writev(evc_dispatcher *, const struct iovec *, int n);
/* shutdown(SHUT_WR) of the socket.  0 or -errno (-ENOTSOCK for a pipe). */
int evc__dispatcher_shutdown_write(evc_dispatcher *);
/* Arms the idle timer as an absolute deadline: I/O no longer pushes it back.
 * handle_timeout follows after seconds. */
void evc__dispatcher_set_deadline(evc_dispatcher *, double seconds);
/* Takes fd, which the caller knows is open and non-blocking (evc_dispatcher_set_socket
 * without its fcntl calls).  0 or -errno; on failure the caller keeps fd. */
int evc__dispatcher_adopt(evc_dispatcher *, int fd);

/* Calls handle_write once before the loop next blocks (ev_prepare), if not closed.
 * This is how pushes made outside a channel's own callbacks get written. */
void evc__dispatcher_schedule_write(evc_dispatcher *);
/* True when the dispatcher's fd is a socket (decides send vs write). */
bool evc__dispatcher_is_socket(const evc_dispatcher *);
/* True while a connect is in progress. */
bool evc__dispatcher_connecting(const evc_dispatcher *);
/* Marks I/O activity now (resets the idle timeout). */
void evc__dispatcher_touch(evc_dispatcher *);
/* The chat's frame deadline, kept on the dispatcher's one timer: expired(d, data)
 * runs once a frame begun (evc__dispatcher_frame_begin) is not over `seconds`
 * later (0: never), and the frame gets another period unless it ends. */
void evc__dispatcher_set_frame_deadline(evc_dispatcher *, double seconds,
                                        void (*expired)(evc_dispatcher *, void *data));
/* A frame's first byte arrived now. */
void evc__dispatcher_frame_begin(evc_dispatcher *);
/* No frame is in progress (the timer, if armed for one, finds nothing due). */
void evc__dispatcher_frame_end(evc_dispatcher *);
/* True between frame_begin and frame_end. */
bool evc__dispatcher_frame_open(const evc_dispatcher *);
/* The idle timeout in seconds (0: none), for a layer that replaces it for a while. */
double evc__dispatcher_timeout(const evc_dispatcher *);

/* ------------------------------------------------------------------ */
/* Per-loop registry (registry.c): the loop table                     */
/* ------------------------------------------------------------------ */

/* A dispatcher's place in its loop's list; embedded in the dispatcher. */
typedef struct evc_reg_link {
    struct evc_reg_link *prev, *next;
    evc_dispatcher *owner;
} evc_reg_link;

/* One loop's bookkeeping; private to registry.c. */
typedef struct evc_loop_entry evc_loop_entry;
/* A loop's cross-thread posts and work pool; private to loop_post.c. */
typedef struct evc_posts evc_posts;
/* A loop's urgent-data watcher; private to oob.c. */
typedef struct evc_oob evc_oob;

/* Links a new dispatcher into its loop's list, creating the loop's entry when
 * it is the first.  The entry, or NULL with errno ENOMEM. */
evc_loop_entry *evc__registry_attach(struct ev_loop *, evc_reg_link *);
/* Unlinks a destroyed dispatcher; frees the entry (and the loop's urgent-data
 * watcher and spare blocks) with its last dispatcher. */
void evc__registry_detach(evc_loop_entry *, evc_reg_link *);
/* The loop's source of read blocks (EVC_READ_BLOCK bytes, shared by its chats). */
evc_block_source *evc__registry_blocks(evc_loop_entry *);
/* The loop's urgent-data watcher, made on first use; NULL with errno when that fails. */
evc_oob *evc__registry_oob(evc_loop_entry *);
/* Sets the loop's posts (loop thread), creating the loop's entry when it has none;
 * the entry then stays, whatever its dispatchers do, until evc__registry_unpin_posts.
 * The entry, or NULL when out of memory. */
evc_loop_entry *evc__registry_pin_posts(struct ev_loop *, evc_posts *);
/* Clears the loop's posts (loop thread): from now on no other thread finds them.
 * Frees the entry if the loop has no dispatcher left. */
void evc__registry_unpin_posts(evc_loop_entry *);
/* Any thread: the loop's posts with their mutex held (evc__posts_unlock), or NULL. */
evc_posts *evc__registry_lock_posts(struct ev_loop *);
/* The loop's thread: the loop's posts, or NULL (only that thread frees them). */
evc_posts *evc__registry_posts(struct ev_loop *);
/* The dispatcher's loop entry (dispatcher.c). */
evc_loop_entry *evc__dispatcher_entry(const evc_dispatcher *);

/* Which dispatcher takes over an accepted fd (server.c counts connections this
 * way): between claim_begin and claim_end, the first dispatcher of the loop to
 * adopt fd is remembered (evc__registry_adopted, from the dispatcher). */
void evc__registry_claim_begin(evc_loop_entry *, int fd);
/* The dispatcher that adopted the claimed fd, or NULL; ends the claim. */
evc_dispatcher *evc__registry_claim_end(evc_loop_entry *);
/* d adopted fd (dispatcher_socket.c). */
void evc__registry_adopted(evc_loop_entry *, int fd, evc_dispatcher *d);
/* hook(arg) runs once, when d closes (its fd is closed then).  false when d is
 * already closed or has a hook. */
bool evc__dispatcher_set_close_hook(evc_dispatcher *d, void (*hook)(void *), void *arg);

/* ------------------------------------------------------------------ */
/* Urgent data (oob.c): one epoll fd per loop, watched for EPOLLPRI    */
/* ------------------------------------------------------------------ */

/* A watcher for the loop's urgent data (not started).  NULL with errno on failure. */
evc_oob *evc__oob_new(struct ev_loop *);
/* Frees it; every fd must have been removed. */
void evc__oob_free(evc_oob *);
/* Watches fd for urgent (TCP out-of-band) data: evc__dispatcher_expt(link->owner)
 * follows each arrival.  0 or -errno. */
int evc__oob_add(evc_oob *, int fd, evc_reg_link *);
/* Stops watching fd for urgent data; call before closing fd. */
void evc__oob_del(evc_oob *, int fd);
/* Urgent data arrived on the dispatcher's fd (dispatcher.c). */
void evc__dispatcher_expt(evc_dispatcher *);

/* ------------------------------------------------------------------ */
/* Threads: cross-thread posts (loop_post.c), the work pool            */
/* (work_pool.c), chat references (chat_ref.c)                         */
/* ------------------------------------------------------------------ */

/* One queued call.  evc_loop_post's nodes come from the posts' spare list;
 * the library's own (a finished work item) are embedded in their owner. */
typedef struct evc_post_node {
    struct evc_post_node *next;
    void (*fn)(void *);
    void *arg;
    bool spare;          /* from the spare list: goes back there once run */
} evc_post_node;

/* A loop's pool of worker threads; private to work_pool.c. */
typedef struct evc_pool evc_pool;

/* Locks and unlocks the posts' mutex (registry.c hands them out locked). */
void evc__posts_lock(evc_posts *);
void evc__posts_unlock(evc_posts *);
/* Loop thread: the loop's posts, made if needed, held until evc__posts_release.
 * Held posts keep ev_run running and take evc__posts_push.  NULL + errno. */
evc_posts *evc__posts_hold(struct ev_loop *);
/* Loop thread: drops a hold; the posts go once neither holds nor the user's
 * evc_loop_open_posts keep them. */
void evc__posts_release(evc_posts *);
/* Any thread, while the caller's hold lasts: queues node (never refused). */
void evc__posts_push(evc_posts *, evc_post_node *);
/* Loop thread: the posts' pool, started on first use.  NULL + errno. */
evc_pool *evc__posts_pool(evc_posts *);

/* A pool with up to max threads, none started yet; its finished work is
 * posted to posts.  NULL + errno. */
evc_pool *evc__pool_new(evc_posts *, unsigned max);
/* Raises or lowers the number of threads the pool may start. */
void evc__pool_set_max(evc_pool *, unsigned max);
/* Stops and joins the pool's threads (nothing may be queued) and frees it. */
void evc__pool_free(evc_pool *);

/* The chat was destroyed: its references see that, its pending name
 * resolution is dropped (chat_ref.c). */
void evc__chat_threads_destroyed(evc_chat *);

/* Like evc_addr_parse, but never asks a name server: -EAGAIN when the host is a
 * name that needs one (addr.c). */
int evc__addr_parse_numeric(const char *text, struct sockaddr_storage *, socklen_t *);
/* Worker loops (workers.c, workers_fork.c) and what they use          */
/* ------------------------------------------------------------------ */

/* Dispatchers the loop still has, closed ones not yet destroyed included
 * (registry.c; workers run a stopping loop until this is 0). */
size_t evc__registry_dispatchers(struct ev_loop *);
/* Removes the unix socket at the path when it is a socket nobody listens on
 * (server.c; workers bind unix addresses the same way). */
struct sockaddr_un;
void evc__remove_stale_unix_socket(const struct sockaddr_un *, socklen_t);

/* ------------------------------------------------------------------ */
/* Memory: large blocks (bigmem.c) and the loop's account (chat_memory.c) */
/* ------------------------------------------------------------------ */

/* Blocks of this many bytes and more are mapped from the kernel and unmapped
 * when freed, so their pages go back at once (bigmem.c says why, and why only
 * shared buffers use it). */
#define EVC_BIG_MIN ((size_t)128 << 10)
/* malloc for small sizes, mmap from EVC_BIG_MIN on.  NULL when out of memory. */
void *evc__big_alloc(size_t size);
/* Frees a block of evc__big_alloc; size is the size it was allocated (or last
 * reallocated) with.  NULL is ignored. */
void evc__big_free(void *, size_t size);
/* Resizes a block of evc__big_alloc (contents kept up to the smaller size);
 * NULL when out of memory, the old block then unchanged. */
void *evc__big_realloc(void *, size_t old_size, size_t new_size);

/*
 * One loop's memory account: what its chats hold, kept as sums of what each
 * chat held when it was last accounted (chat_memory.c), and the budget.  It
 * lives in the loop's registry entry, zeroed with it; only chat_memory.c
 * writes it, from the loop's thread.
 */
typedef struct evc_loop_memory {
    size_t budget;            /* input + output bytes allowed; 0: no budget */
    size_t input_bytes;       /* in the chats' input: partial frames, undelivered bytes */
    size_t output_bytes;      /* in the chats' output queues' own copies and staging */
    size_t referenced_bytes;  /* queued by reference (counted once per queue) */
    size_t doomed_bytes;      /* of input + output, held by chats picked to be closed */
    uint64_t budget_closes;   /* chats closed for the budget */
    size_t released;          /* peaks of the chats gone since the heap was last trimmed */
    evc_chat *first;          /* the chats, linked through their mem_next */
} evc_loop_memory;

/* The loop's memory account (registry.c). */
evc_loop_memory *evc__registry_memory(evc_loop_entry *);
/* The loop's entry, or NULL when it has no dispatcher (registry.c). */
evc_loop_entry *evc__registry_find(struct ev_loop *);

#endif /* EVC_INTERNAL_H */

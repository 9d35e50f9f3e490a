/*
 * The dispatcher's state and the calls between its two files: dispatcher.c
 * (events, predicates, lifetime) and dispatcher_socket.c (the socket calls
 * and send/recv).  Never installed; like dispatcher.c it sees libev.
 */
#ifndef EVC_DISPATCHER_INTERNAL_H
#define EVC_DISPATCHER_INTERNAL_H

#include "internal.h"

#include <errno.h>

#include <ev.h>

typedef struct evc_accept_backoff evc_accept_backoff;

struct evc_dispatcher {
    evc_dispatcher_head h;   /* fd, closed, is_socket, connecting: first, read inline by chat.c */
    struct ev_loop *loop;
    const struct evc_dispatcher_ops *ops;
    void *data;
    int reserve_fd;          /* listening: /dev/null, given up to shed a connection on EMFILE */
    int io_events;           /* the events io is started with; 0 when stopped */
    ev_io io;
    ev_timer timer;          /* idle timeout: checks last_activity when it fires */
    ev_prepare writer;       /* evc__dispatcher_schedule_write */
    ev_check destroyer;      /* never started; fed by close */
    double timeout;          /* idle seconds, 0 for none */
    ev_tstamp last_activity;
    evc_reg_link link;
    evc_loop_entry *entry;
    unsigned depth;          /* callbacks of this dispatcher on the stack */
    bool listening;
    bool unconnected;        /* a fresh stream socket: no events until connect or listen */
    bool oob_watched;
    bool destroy_fed;
    bool deadline;           /* the timeout is absolute: I/O does not push it back */
    /* Listening: the pause after accept errors (dispatcher_accept.c); NULL otherwise. */
    evc_accept_backoff *backoff;
    /* The chat's frame deadline, on `timer` too (evc__dispatcher_frame_*). */
    double frame_limit;      /* seconds, 0 for none */
    ev_tstamp frame_started; /* when the frame in progress began; 0: none */
    void (*frame_expired)(evc_dispatcher *, void *data);
    /* evc__dispatcher_set_close_hook: an accepted connection the server counts. */
    void (*close_hook)(void *arg);
    void *close_hook_arg;
};

/* Sets the ev_io to what readable()/writable() want now (no-op when closed). */
void evc__dispatcher_update_events(evc_dispatcher *d);
/* Reopens the EMFILE reserve fd; false when even that fails. */
bool evc__dispatcher_reopen_reserve(evc_dispatcher *d);
/* handle_close (NULL: close); false when the dispatcher is now closed. */
bool evc__dispatcher_call_close(evc_dispatcher *d);
/* handle_error(err) (NULL: close); false when the dispatcher is now closed. */
bool evc__dispatcher_call_error(evc_dispatcher *d, int err);

/* dispatcher_accept.c: accept errors and the listener's back-off. */
/* Gives a listener its back-off state.  0 or -ENOMEM. */
int evc__accept_backoff_init(evc_dispatcher *d);
/* accept failed with err (not EAGAIN): report or close as the errno calls for,
 * then, if still open, stop watching the listener for a growing pause. */
void evc__accept_failed(evc_dispatcher *d, int err);
/* A connection was accepted: the next error starts the pauses over. */
void evc__accept_succeeded(evc_dispatcher *d);
/* True while the listener pauses after an error: its fd is not watched. */
bool evc__accept_paused(const evc_dispatcher *d);
/* Stops the pause and frees the state (at close). */
void evc__accept_backoff_free(evc_dispatcher *d);

#endif /* EVC_DISPATCHER_INTERNAL_H */

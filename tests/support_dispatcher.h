/*
 * Helpers for the dispatcher test programs (support_dispatcher.c): a recording
 * dispatcher user, whose handlers count every event and check the lifetime
 * promises (no handler after close, on_destroy once and never from inside a
 * handler), and loopback sockets for IPv4, IPv6 and unix addresses.
 */
#ifndef EVC_TEST_SUPPORT_DISPATCHER_H
#define EVC_TEST_SUPPORT_DISPATCHER_H

#include "support.h"

#include <sys/socket.h>

/* The events a recording user counts, one per handle_* callback. */
enum evt_devent {
    EVT_D_READ, EVT_D_WRITE, EVT_D_EXPT, EVT_D_CONNECT, EVT_D_ACCEPT, EVT_D_ACCEPTED,
    EVT_D_CLOSE, EVT_D_ERROR, EVT_D_TIMEOUT, EVT_D_NKINDS, EVT_D_NONE = -1
};

/* A recording dispatcher user: the data pointer its handlers get. */
typedef struct evt_drec {
    evc_dispatcher *d;
    int n[EVT_D_NKINDS];
    int total;              /* all handle_* calls */
    int pred_calls;
    int destroys;
    int depth;              /* our handlers on the stack */
    int destroyed_in_cb;    /* on_destroy while a handler ran: must stay 0 */
    int after_close;        /* handlers entered after close: must stay 0 */
    int close_on;           /* close (twice) inside this handler kind */
    int last_err;
    bool readable, writable;
    char data[1 << 17];
    int len;                /* bytes in data (an int, so the run helpers can wait for it) */
    const char *to_send;
    int send_len, sent;
    struct evt_drec *other; /* for a test's handler that closes another dispatcher */
    int accepted_fd;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    bool read_oob;
    int oob;
} evt_drec;

/* A zeroed recorder, readable, closing nowhere, with no accepted fd; asserts. */
evt_drec *evt_drec_new(void);
/* The start of a handler: counts event k on d and notes a call after close. */
void evt_drec_begin(evt_drec *r, evc_dispatcher *d, enum evt_devent k);
/* The end of a handler: closes (twice) when k is r->close_on. */
void evt_drec_end(evt_drec *r, enum evt_devent k);
/* A handle_accept that accepts with evc_dispatcher_accept into accepted_fd and peer. */
void evt_drec_accept(evc_dispatcher *d, void *data);
/* Asserts the lifetime promises for a recorder whose dispatcher is gone: on_destroy
 * once, never inside a handler, and no handler after close. */
void evt_drec_assert_done(const evt_drec *r);

/* Every handler but handle_accept set (so the library accepts); NULL predicates. */
extern const struct evc_dispatcher_ops evt_drec_ops;
/* As evt_drec_ops without handle_expt, with both predicates answered from the recorder. */
extern const struct evc_dispatcher_ops evt_drec_pred_ops;

/* An address and its length. */
typedef struct evt_taddr {
    struct sockaddr_storage ss;
    socklen_t len;
} evt_taddr;

/* A loopback address of family (port 0), or a fresh unix socket path under /tmp. */
void evt_any_addr(int family, evt_taddr *a);
/* Removes a unix address's socket file; nothing for the others. */
void evt_forget_addr(const evt_taddr *a);
/* A listening dispatcher on a fresh loopback address; *a gets the bound address. */
evc_dispatcher *evt_listen_on(struct ev_loop *loop, int family, const struct evc_dispatcher_ops *ops,
                              evt_drec *r, evt_taddr *a);
/* A blocking client socket connected to a; asserts. */
int evt_raw_connect(const evt_taddr *a);
/* A dispatcher over fd with ops and r; asserts. */
evc_dispatcher *evt_adopt(struct ev_loop *loop, int fd, const struct evc_dispatcher_ops *ops,
                          evt_drec *r);
/* Waits for listener recorder lr's next accepted connection and adopts it into sr. */
evc_dispatcher *evt_accept_one(struct ev_loop *loop, evt_drec *lr,
                               const struct evc_dispatcher_ops *ops, evt_drec *sr);

/* The address families, for cmocka's prestate (which wants a non-const pointer). */
extern const int evt_family_inet, evt_family_inet6, evt_family_unix;
#define EVT_PER_FAMILY(t) \
    cmocka_unit_test_prestate(t, (void *)&evt_family_inet), \
    cmocka_unit_test_prestate(t, (void *)&evt_family_inet6), \
    cmocka_unit_test_prestate(t, (void *)&evt_family_unix)
#define EVT_PER_INET(t) \
    cmocka_unit_test_prestate(t, (void *)&evt_family_inet), \
    cmocka_unit_test_prestate(t, (void *)&evt_family_inet6)

#endif

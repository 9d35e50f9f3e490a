/*
 * What server.c and server_limits.c share: the connection counts behind the
 * server's caps.  Never installed.
 */
#ifndef EVC_SERVER_INTERNAL_H
#define EVC_SERVER_INTERNAL_H

#include "internal.h"

#include <errno.h>

typedef struct evc_server_limits evc_server_limits;

/* The counts of server s (no caps yet).  NULL on ENOMEM. */
evc_server_limits *evc__limits_new(evc_server *s);
/* The server is destroyed: connections still counted keep the counts alive. */
void evc__limits_server_gone(evc_server_limits *);
/* The caps (0: none). */
void evc__limits_set(evc_server_limits *, unsigned max_total, unsigned max_per_peer);
/* At the total cap: accept nothing more for now. */
bool evc__limits_full(const evc_server_limits *);
/* Connections counted now. */
unsigned evc__limits_total(const evc_server_limits *);
/* The peer at sa already has its cap of connections. */
bool evc__limits_peer_full(const evc_server_limits *, const struct sockaddr *sa, socklen_t len);
/* Counts a connection from sa that adopter took over, until adopter closes.
 * 0, -ENOMEM or -EBADF (adopter already closed): then it is not counted. */
int evc__limits_count(evc_server_limits *, evc_dispatcher *adopter, const struct sockaddr *sa,
                      socklen_t len);
/* A counted connection ended while the server was at its cap (server.c). */
void evc__server_limits_changed(evc_server *s);

#endif /* EVC_SERVER_INTERNAL_H */

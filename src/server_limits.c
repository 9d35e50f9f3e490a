/*
 * A server's connection count, in total and per peer address, for its caps
 * (evc_server_set_max_connections, evc_server_set_max_per_peer).
 *
 * How the server learns that a connection ended, without the user's help: a
 * connection is counted when a dispatcher of the loop (a chat's included)
 * adopts the accepted fd inside handle_accepted, and uncounted by a hook that
 * dispatcher runs when it closes.  Nothing to call, so nothing to forget or to
 * call twice.  An fd the user keeps raw, or hands to another loop, is not
 * counted (evc_server(3)).
 *
 * The counts outlive the server when connections do: each counted connection
 * holds a reference, and the server's own is dropped at its destroy.
 */
#include "server_internal.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define PEER_KEY 17          /* family byte + up to 16 address bytes */
#define FIRST_BUCKETS 64

typedef struct peer_count {
    struct peer_count *next;
    unsigned n;
    unsigned char key[PEER_KEY];
} peer_count;

struct evc_server_limits {
    unsigned refs;           /* the server's, and one per counted connection */
    evc_server *server;      /* NULL once the server is destroyed */
    unsigned max_total, max_per_peer;   /* 0: no cap */
    unsigned total;
    peer_count **buckets;
    size_t nbuckets, npeers;
};

/* What a counted connection's close hook needs. */
typedef struct counted {
    evc_server_limits *lim;
    peer_count *peer;        /* NULL: no address to count (a unix socket) */
} counted;

evc_server_limits *evc__limits_new(evc_server *s)
{
    evc_server_limits *lim = calloc(1, sizeof *lim);
    if (!lim)
        return NULL;
    lim->refs = 1;
    lim->server = s;
    return lim;
}

static void unref(evc_server_limits *lim)
{
    if (--lim->refs > 0)
        return;
    /* No connection is counted any more, so every peer entry is gone. */
    free(lim->buckets);
    free(lim);
}

void evc__limits_server_gone(evc_server_limits *lim)
{
    lim->server = NULL;
    unref(lim);
}

void evc__limits_set(evc_server_limits *lim, unsigned max_total, unsigned max_per_peer)
{
    lim->max_total = max_total;
    lim->max_per_peer = max_per_peer;
}

bool evc__limits_full(const evc_server_limits *lim)
{
    return lim->max_total > 0 && lim->total >= lim->max_total;
}

unsigned evc__limits_total(const evc_server_limits *lim)
{
    return lim->total;
}

/* The peer's address as a key: IPv4 (also when mapped into IPv6) or IPv6.
 * False for addresses that name nobody in particular (unix sockets). */
static bool peer_key(const struct sockaddr *sa, socklen_t len, unsigned char key[PEER_KEY])
{
    memset(key, 0, PEER_KEY);
    if (sa && sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        key[0] = 4;
        memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa && sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            key[0] = 4;
            memcpy(key + 1, a->s6_addr + 12, 4);
        } else {
            key[0] = 6;
            memcpy(key + 1, a->s6_addr, 16);
        }
        return true;
    }
    return false;
}

static size_t bucket_of(const evc_server_limits *lim, const unsigned char key[PEER_KEY])
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (size_t i = 0; i < PEER_KEY; i++)
        h = (h ^ key[i]) * 16777619u;
    return h & (lim->nbuckets - 1);
}

static peer_count *find_peer(const evc_server_limits *lim, const unsigned char key[PEER_KEY])
{
    if (!lim->buckets)
        return NULL;
    for (peer_count *p = lim->buckets[bucket_of(lim, key)]; p; p = p->next)
        if (memcmp(p->key, key, PEER_KEY) == 0)
            return p;
    return NULL;
}

/* More buckets once peers outnumber them twice over.  False on ENOMEM (the
 * table still works, only slower). */
static bool grow(evc_server_limits *lim)
{
    size_t n = lim->nbuckets ? lim->nbuckets * 2 : FIRST_BUCKETS;
    peer_count **b = calloc(n, sizeof *b);
    if (!b)
        return false;
    peer_count **old = lim->buckets;
    size_t oldn = lim->nbuckets;
    lim->buckets = b;
    lim->nbuckets = n;
    for (size_t i = 0; i < oldn; i++) {
        for (peer_count *p = old[i], *next; p; p = next) {
            next = p->next;
            size_t k = bucket_of(lim, p->key);
            p->next = b[k];
            b[k] = p;
        }
    }
    free(old);
    return true;
}

static void drop_peer(evc_server_limits *lim, peer_count *peer)
{
    for (peer_count **pp = &lim->buckets[bucket_of(lim, peer->key)]; *pp; pp = &(*pp)->next) {
        if (*pp == peer) {
            *pp = peer->next;
            break;
        }
    }
    free(peer);
    lim->npeers--;
}

bool evc__limits_peer_full(const evc_server_limits *lim, const struct sockaddr *sa, socklen_t len)
{
    unsigned char key[PEER_KEY];
    if (lim->max_per_peer == 0 || !peer_key(sa, len, key))
        return false;
    const peer_count *p = find_peer(lim, key);
    return p && p->n >= lim->max_per_peer;
}

static void released(void *arg)
{
    counted *c = arg;
    evc_server_limits *lim = c->lim;
    bool was_full = evc__limits_full(lim);
    lim->total--;
    if (c->peer && --c->peer->n == 0)
        drop_peer(lim, c->peer);
    free(c);
    /* A server stopped at its cap watches its socket again. */
    if (was_full && lim->server)
        evc__server_limits_changed(lim->server);
    unref(lim);
}

int evc__limits_count(evc_server_limits *lim, evc_dispatcher *adopter, const struct sockaddr *sa,
                      socklen_t len)
{
    counted *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    unsigned char key[PEER_KEY];
    if (peer_key(sa, len, key)) {
        peer_count *p = find_peer(lim, key);
        if (!p) {
            if (lim->npeers >= 2 * lim->nbuckets && !grow(lim) && !lim->buckets) {
                free(c);
                return -ENOMEM;
            }
            p = calloc(1, sizeof *p);
            if (!p) {
                free(c);
                return -ENOMEM;
            }
            memcpy(p->key, key, PEER_KEY);
            size_t k = bucket_of(lim, key);
            p->next = lim->buckets[k];
            lim->buckets[k] = p;
            lim->npeers++;
        }
        p->n++;
        c->peer = p;
    }
    c->lim = lim;
    if (!evc__dispatcher_set_close_hook(adopter, released, c)) {
        if (c->peer && --c->peer->n == 0)
            drop_peer(lim, c->peer);
        free(c);
        return -EBADF;
    }
    lim->total++;
    lim->refs++;
    return 0;
}

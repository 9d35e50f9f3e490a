/*
 * The key space of examples/resp_server: binary-safe keys mapped to
 * binary-safe string values, each with an optional expiry time.  Knows
 * nothing of the network or of RESP.  Times are milliseconds on a monotonic
 * clock (resp_store_now_ms), so expiries survive changes of the wall clock.
 */
#ifndef EVC_EXAMPLE_RESP_STORE_H
#define EVC_EXAMPLE_RESP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct resp_store resp_store;

/* A value as the store hands it out: valid until the next call that changes the store. */
typedef struct resp_value {
    const char *bytes;
    size_t len;
} resp_value;

/* An empty store, or NULL when out of memory. */
resp_store *resp_store_new(void);
/* Frees the store and everything in it.  NULL is a no-op. */
void resp_store_free(resp_store *);
/* Milliseconds on the monotonic clock: the time base of every expiry. */
int64_t resp_store_now_ms(void);

/* Looks key up; an expired key is removed and reported missing.  true if found. */
bool resp_store_get(resp_store *, const char *key, size_t klen, int64_t now, resp_value *out);
/* Whether key exists and has not expired (expired keys are removed on the way). */
bool resp_store_exists(resp_store *, const char *key, size_t klen, int64_t now);
/* expire_at for resp_store_set: keep the key's expiry as it is (INCR does). */
#define RESP_KEEP_TTL (-1)

/* Stores value under key.  The store takes `value` (malloc'd, len bytes) on success and
 * on failure alike.  expire_at is an absolute time in ms, 0 for none (a SET without
 * expiry clears an old one, as redis does) or RESP_KEEP_TTL.  0 or -ENOMEM. */
int resp_store_set(resp_store *, const char *key, size_t klen, char *value, size_t len,
                   int64_t expire_at);
/* Removes key.  true if it existed (and had not expired). */
bool resp_store_del(resp_store *, const char *key, size_t klen, int64_t now);
/* Sets the expiry of an existing key (absolute ms).  true if the key existed. */
bool resp_store_expire(resp_store *, const char *key, size_t klen, int64_t expire_at,
                       int64_t now);
/* Milliseconds left before key expires: -2 no such key, -1 no expiry. */
int64_t resp_store_ttl_ms(resp_store *, const char *key, size_t klen, int64_t now);
/* Removes every key whose time has come; returns how many went. */
size_t resp_store_purge_expired(resp_store *, int64_t now);
/* Keys in the store (expired ones are purged first, so the count is exact). */
size_t resp_store_count(resp_store *, int64_t now);
/* Removes every key. */
void resp_store_clear(resp_store *);

#endif

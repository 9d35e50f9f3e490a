/*
 * The key space as a uthash table (Debian's uthash-dev, header only): a
 * well-tested open hash with incremental doubling, rather than one more
 * hand-written table.  Each entry holds its key inline and its value in a
 * separate allocation, so a SET that replaces a value keeps the entry and
 * takes the value buffer the protocol layer already filled (no copy).
 *
 * Expiry is lazy and periodic, as in redis: every lookup removes an expired
 * key it meets, and resp_store_purge_expired (called from a timer) removes
 * the ones nobody asks for, so memory does not hold dead keys for long.
 */
#include "resp_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A failed allocation inside uthash is reported to the caller instead of exiting:
 * the add in resp_store_set raises its local out_of_memory flag. */
#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(obj) (out_of_memory = true)
#include <uthash.h>

struct entry {
    UT_hash_handle hh;
    char *value;        /* malloc'd, len bytes (at least one byte allocated) */
    size_t len;
    int64_t expire_at;  /* absolute ms on the monotonic clock; 0: never */
    size_t klen;
    char key[];         /* klen bytes, not NUL-terminated: keys are binary */
};

struct resp_store {
    struct entry *table;   /* uthash's head pointer: NULL while empty */
    size_t volatile_keys;  /* entries with an expiry: the purge skips its walk when 0 */
};

resp_store *resp_store_new(void)
{
    return calloc(1, sizeof(resp_store));
}

int64_t resp_store_now_ms(void)
{
    struct timespec ts;
    /* The coarse clock (a few ms of resolution) costs less than the precise one,
     * and is read for every command. */
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void remove_entry(resp_store *s, struct entry *e)
{
    HASH_DEL(s->table, e);
    if (e->expire_at)
        s->volatile_keys--;
    free(e->value);
    free(e);
}

/* The live entry for key, or NULL; an expired one is removed on the way. */
static struct entry *find_live(resp_store *s, const char *key, size_t klen, int64_t now)
{
    struct entry *e;
    HASH_FIND(hh, s->table, key, klen, e);
    if (e && e->expire_at && e->expire_at <= now) {
        remove_entry(s, e);
        return NULL;
    }
    return e;
}

static void set_expiry(resp_store *s, struct entry *e, int64_t expire_at)
{
    s->volatile_keys += (expire_at != 0) - (e->expire_at != 0);
    e->expire_at = expire_at;
}

bool resp_store_get(resp_store *s, const char *key, size_t klen, int64_t now, resp_value *out)
{
    struct entry *e = find_live(s, key, klen, now);
    if (!e)
        return false;
    out->bytes = e->value;
    out->len = e->len;
    return true;
}

bool resp_store_exists(resp_store *s, const char *key, size_t klen, int64_t now)
{
    return find_live(s, key, klen, now) != NULL;
}

int resp_store_set(resp_store *s, const char *key, size_t klen, char *value, size_t len,
                   int64_t expire_at)
{
    struct entry *e;
    HASH_FIND(hh, s->table, key, klen, e);
    if (!e) {
        e = malloc(sizeof *e + klen);
        if (!e) {
            free(value);
            return -ENOMEM;
        }
        memcpy(e->key, key, klen);
        e->klen = klen;
        e->value = NULL;
        e->expire_at = 0;
        bool out_of_memory = false;
        HASH_ADD_KEYPTR(hh, s->table, e->key, klen, e);
        if (out_of_memory) {
            free(e);
            free(value);
            return -ENOMEM;
        }
    }
    free(e->value);
    e->value = value;
    e->len = len;
    if (expire_at != RESP_KEEP_TTL)
        set_expiry(s, e, expire_at);
    return 0;
}

bool resp_store_del(resp_store *s, const char *key, size_t klen, int64_t now)
{
    struct entry *e = find_live(s, key, klen, now);
    if (!e)
        return false;
    remove_entry(s, e);
    return true;
}

bool resp_store_expire(resp_store *s, const char *key, size_t klen, int64_t expire_at,
                       int64_t now)
{
    struct entry *e = find_live(s, key, klen, now);
    if (!e)
        return false;
    set_expiry(s, e, expire_at);
    return true;
}

int64_t resp_store_ttl_ms(resp_store *s, const char *key, size_t klen, int64_t now)
{
    struct entry *e = find_live(s, key, klen, now);
    if (!e)
        return -2;
    return e->expire_at ? e->expire_at - now : -1;
}

size_t resp_store_purge_expired(resp_store *s, int64_t now)
{
    size_t removed = 0;
    if (s->volatile_keys == 0)
        return 0;
    struct entry *e, *next;
    HASH_ITER(hh, s->table, e, next) {
        if (e->expire_at && e->expire_at <= now) {
            remove_entry(s, e);
            removed++;
        }
    }
    return removed;
}

size_t resp_store_count(resp_store *s, int64_t now)
{
    resp_store_purge_expired(s, now);
    return HASH_COUNT(s->table);
}

void resp_store_clear(resp_store *s)
{
    struct entry *e, *next;
    HASH_ITER(hh, s->table, e, next)
        remove_entry(s, e);
}

void resp_store_free(resp_store *s)
{
    if (!s)
        return;
    resp_store_clear(s);
    free(s);
}

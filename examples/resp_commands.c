/*
 * The command table and the commands.  Replies and error texts follow redis
 * 7 word for word, so that clients and scripts written against redis read
 * them the same way.  Every reply is pushed as a copy: the FIFO coalesces
 * small pushes, so a pipeline of GETs leaves in a few large writes.
 */
#include "resp_commands.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ERR_NOT_INTEGER "value is not an integer or out of range"
#define ERR_SYNTAX "syntax error"
#define ERR_OVERFLOW "increment or decrement would overflow"

/* Longest decimal text of an int64_t, sign included. */
#define INT64_TEXT_MAX 20

struct command {
    const char *name;   /* lower case, as redis names it in its errors */
    int arity;          /* argc exactly, or at least -arity when negative (redis' convention) */
    bool (*run)(evc_chat *c, resp_store *store, resp_arg *argv, size_t argc);
};

/* ---------------------------------------------------------------- replies */

/* A reply that cannot be queued (out of memory) leaves the client without the answers
 * it waits for: drop the connection rather than let replies go out of order. */
static void push(evc_chat *c, const void *bytes, size_t len)
{
    if (evc_chat_push(c, bytes, len) < 0)
        evc_chat_close(c);
}

void resp_reply_error(evc_chat *c, const char *text)
{
    if (evc_chat_pushf(c, "-ERR %s\r\n", text) < 0)
        evc_chat_close(c);
}

/* A status reply is a constant: "+OK\r\n". */
#define reply_status(c, constant) push(c, constant, sizeof constant - 1)

/* Writes n in decimal ending at end (exclusive); returns where the text starts. */
static char *format_int64(char *end, int64_t n)
{
    uint64_t magnitude = n < 0 ? 0 - (uint64_t)n : (uint64_t)n;
    do
        *--end = (char)('0' + magnitude % 10);
    while ((magnitude /= 10) > 0);
    if (n < 0)
        *--end = '-';
    return end;
}

/* Integer replies come with every INCR and DEL: formatted by hand, not by printf. */
static void reply_integer(evc_chat *c, int64_t n)
{
    char text[INT64_TEXT_MAX + 3];
    char *end = text + sizeof text - 2;
    memcpy(end, "\r\n", 2);
    char *start = format_int64(end, n);
    *--start = ':';
    push(c, start, (size_t)(text + sizeof text - start));
}

static void reply_nil(evc_chat *c)
{
    push(c, "$-1\r\n", 5);
}

static void reply_array_header(evc_chat *c, size_t n)
{
    if (evc_chat_pushf(c, "*%zu\r\n", n) < 0)
        evc_chat_close(c);
}

/* "$<len>\r\n<bytes>\r\n": small values are framed in one buffer and pushed once. */
static void reply_bulk(evc_chat *c, const char *bytes, size_t len)
{
    char frame[1024];
    char digits[INT64_TEXT_MAX];
    char *start = format_int64(digits + sizeof digits, (int64_t)len);
    size_t ndigits = (size_t)(digits + sizeof digits - start);
    frame[0] = '$';
    memcpy(frame + 1, start, ndigits);
    memcpy(frame + 1 + ndigits, "\r\n", 2);
    size_t head = ndigits + 3;
    if (head + len + 2 <= sizeof frame) {
        memcpy(frame + head, bytes, len);
        memcpy(frame + head + len, "\r\n", 2);
        push(c, frame, head + len + 2);
        return;
    }
    push(c, frame, head);
    push(c, bytes, len);
    push(c, "\r\n", 2);
}

static bool reply_wrong_arity(evc_chat *c, const char *name)
{
    char text[128];
    snprintf(text, sizeof text, "wrong number of arguments for '%s' command", name);
    resp_reply_error(c, text);
    return false;
}

/* ---------------------------------------------------------------- integers */

/* Parses the whole of text as a base-10 int64_t the way redis does: an optional '-',
 * no '+', no spaces, no leading zeros ("0" itself is fine, "-0" is not). */
static bool parse_int64(const char *text, size_t len, int64_t *out)
{
    if (len == 0 || len > INT64_TEXT_MAX)
        return false;
    size_t i = 0;
    bool negative = text[0] == '-';
    if (negative && ++i == len)
        return false;
    if (text[i] == '0')
        return len == 1 && (*out = 0, true);
    uint64_t magnitude = 0;
    for (; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        unsigned digit = (unsigned)(text[i] - '0');
        if (magnitude > (UINT64_MAX - digit) / 10)
            return false;
        magnitude = magnitude * 10 + digit;
    }
    if (negative) {
        if (magnitude > (uint64_t)INT64_MAX + 1)
            return false;
        *out = magnitude == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)magnitude;
    } else {
        if (magnitude > INT64_MAX)
            return false;
        *out = (int64_t)magnitude;
    }
    return true;
}

static bool arg_int64(evc_chat *c, const resp_arg *arg, int64_t *out)
{
    if (parse_int64(arg->p, arg->len, out))
        return true;
    resp_reply_error(c, ERR_NOT_INTEGER);
    return false;
}

static bool arg_is(const resp_arg *arg, const char *word)
{
    size_t n = strlen(word);
    return arg->len == n && strncasecmp(arg->p, word, n) == 0;
}

/* The argument's bytes in a malloc'd buffer for the store: its own buffer when it has
 * one, else a copy.  NULL when out of memory. */
static char *take(resp_arg *arg)
{
    if (!arg->owned) {
        char *copy = malloc(arg->len ? arg->len : 1);
        return copy ? memcpy(copy, arg->p, arg->len) : NULL;
    }
    char *p = arg->p;
    arg->p = NULL;
    return p;
}

/* ---------------------------------------------------------------- commands */

static bool cmd_ping(evc_chat *c, resp_store *store, resp_arg *argv, size_t argc)
{
    (void)store;
    if (argc > 2)
        return reply_wrong_arity(c, "ping");
    if (argc == 2)
        reply_bulk(c, argv[1].p, argv[1].len);
    else
        reply_status(c, "+PONG\r\n");
    return false;
}

static bool cmd_echo(evc_chat *c, resp_store *store, resp_arg *argv, size_t argc)
{
    (void)store, (void)argc;
    reply_bulk(c, argv[1].p, argv[1].len);
    return false;
}

/* SET key value [NX | XX] [EX seconds | PX milliseconds], options in any order. */
static bool cmd_set(evc_chat *c, resp_store *store, resp_arg *argv, size_t argc)
{
    bool nx = false, xx = false, ex = false, px = false;
    int64_t amount = 0;
    for (size_t i = 3; i < argc; i++) {
        if (arg_is(&argv[i], "nx") && !xx) {
            nx = true;
        } else if (arg_is(&argv[i], "xx") && !nx) {
            xx = true;
        } else if ((arg_is(&argv[i], "ex") || arg_is(&argv[i], "px")) && !ex && !px &&
                   i + 1 < argc) {
            *(arg_is(&argv[i], "ex") ? &ex : &px) = true;
            if (!arg_int64(c, &argv[++i], &amount))
                return false;
        } else {
            resp_reply_error(c, ERR_SYNTAX);
            return false;
        }
    }
    int64_t now = resp_store_now_ms();
    int64_t expire_at = 0;
    if (ex || px) {
        int64_t ms = amount;
        if (amount <= 0 || (ex && __builtin_mul_overflow(amount, 1000, &ms)) ||
            __builtin_add_overflow(ms, now, &expire_at)) {
            resp_reply_error(c, "invalid expire time in 'set' command");
            return false;
        }
    }
    if (nx || xx) {
        bool exists = resp_store_exists(store, argv[1].p, argv[1].len, now);
        if (exists != xx) {
            reply_nil(c);
            return false;
        }
    }
    size_t len = argv[2].len;
    char *value = take(&argv[2]);
    if (!value || resp_store_set(store, argv[1].p, argv[1].len, value, len, expire_at) < 0)
        evc_chat_close(c);
    else
        reply_status(c, "+OK\r\n");
    return false;
}

static bool cmd_get(evc_chat *c, resp_store *store, resp_arg *argv, size_t argc)
{
    (void)argc;
    resp_value v;
    if (resp_store_get(store, argv[1].p, argv[1].len, resp_store_now_ms(), &v))
        reply_bulk(c, v.bytes, v.len);
    else
        reply_nil(c);
    return false;
}

static bool cmd_del(evc_chat *c, resp_store *store, resp_arg *argv, size_t argc)
{
    int64_t now = resp_store_now_ms(), removed = 0;
    for (size_t i = 1; i < argc; i++)
        removed += resp_store_del(store, argv[i].p, argv[i].len, now);
    reply_integer(c, removed);
    return false;
}

/* Counts a key named twice twice, as redis does. */
static bool cmd_exists(evc_chat *c, resp_store *store, resp_arg *argv, size_t argc)
{
    int64_t now = resp_store_now_ms(), found = 0;
    for (size_t i = 1; i < argc; i++)
        found += resp_store_exists(store, argv[i].p, argv[i].len, now);
    reply_integer(c, found);
    return false;
}

/* INCR, DECR and INCRBY: a missing key counts as 0; the key keeps its expiry. */
static void increment(evc_chat *c, resp_store *store, const resp_arg *key, int64_t by)
{
    int64_t now = resp_store_now_ms(), value = 0;
    resp_value old;
    if (resp_store_get(store, key->p, key->len, now, &old) &&
        !parse_int64(old.bytes, old.len, &value)) {
        resp_reply_error(c, ERR_NOT_INTEGER);
        return;
    }
    if (__builtin_add_overflow(value, by, &value)) {
        resp_reply_error(c, ERR_OVERFLOW);
        return;
    }
    char digits[INT64_TEXT_MAX];
    char *start = format_int64(digits + sizeof digits, value);
    size_t len = (size_t)(digits + sizeof digits - start);
    char *text = malloc(len);
    if (!text) {
        evc_chat_close(c);
        return;
    }
    memcpy(text, start, len);
    if (resp_store_set(store, key->p, key->len, text, len, RESP_KEEP_TTL) < 0)
        evc_chat_close(c);
    else
        reply_integer(c, value);
}

static bool cmd_incr(evc_chat *c, resp_store *store, resp_arg *argv, size_t argc)
{
    (void)argc;
    increment(c, store, &argv[1], 1);
    return false;
}

static bool cmd_decr(evc_chat *c, resp_store *store, resp_arg *argv, size_t argc)
{
    (void)argc;
    increment(c, store, &argv[1], -1);
    return false;
}

static bool cmd_incrby(evc_chat *c, resp_store *store, resp_arg *argv, size_t argc)
{
    (void)argc;
    int64_t by;
    if (arg_int64(c, &argv[2], &by))
        increment(c, store, &argv[1], by);
    return false;
}

static bool cmd_mget(evc_chat *c, resp_store *store, resp_arg *argv, size_t argc)
{
    int64_t now = resp_store_now_ms();
    reply_array_header(c, argc - 1);
    for (size_t i = 1; i < argc; i++) {
        resp_value v;
        if (resp_store_get(store, argv[i].p, argv[i].len, now, &v))
            reply_bulk(c, v.bytes, v.len);
        else
            reply_nil(c);
    }
    return false;
}

static bool cmd_mset(evc_chat *c, resp_store *store, resp_arg *argv, size_t argc)
{
    if (argc % 2 == 0)
        return reply_wrong_arity(c, "mset");
    for (size_t i = 1; i < argc; i += 2) {
        size_t len = argv[i + 1].len;
        char *value = take(&argv[i + 1]);
        if (!value || resp_store_set(store, argv[i].p, argv[i].len, value, len, 0) < 0) {
            evc_chat_close(c);
            return false;
        }
    }
    reply_status(c, "+OK\r\n");
    return false;
}

/* A time in the past (zero or negative seconds) deletes the key at once, as in redis. */
static bool cmd_expire(evc_chat *c, resp_store *store, resp_arg *argv, size_t argc)
{
    (void)argc;
    int64_t seconds, ms, expire_at, now = resp_store_now_ms();
    if (!arg_int64(c, &argv[2], &seconds))
        return false;
    if (__builtin_mul_overflow(seconds, 1000, &ms) ||
        __builtin_add_overflow(ms, now, &expire_at)) {
        resp_reply_error(c, "invalid expire time in 'expire' command");
        return false;
    }
    bool found = seconds <= 0 ? resp_store_del(store, argv[1].p, argv[1].len, now)
                              : resp_store_expire(store, argv[1].p, argv[1].len, expire_at, now);
    reply_integer(c, found);
    return false;
}

/* Seconds left, rounded to the nearest as redis does; -2 no key, -1 no expiry. */
static bool cmd_ttl(evc_chat *c, resp_store *store, resp_arg *argv, size_t argc)
{
    (void)argc;
    int64_t ms = resp_store_ttl_ms(store, argv[1].p, argv[1].len, resp_store_now_ms());
    reply_integer(c, ms < 0 ? ms : (ms + 500) / 1000);
    return false;
}

static bool cmd_dbsize(evc_chat *c, resp_store *store, resp_arg *argv, size_t argc)
{
    (void)argv, (void)argc;
    reply_integer(c, (int64_t)resp_store_count(store, resp_store_now_ms()));
    return false;
}

/* FLUSHALL [ASYNC | SYNC]: both flush at once here. */
static bool cmd_flushall(evc_chat *c, resp_store *store, resp_arg *argv, size_t argc)
{
    if (argc > 2 || (argc == 2 && !arg_is(&argv[1], "async") && !arg_is(&argv[1], "sync"))) {
        resp_reply_error(c, ERR_SYNTAX);
        return false;
    }
    resp_store_clear(store);
    reply_status(c, "+OK\r\n");
    return false;
}

static bool cmd_quit(evc_chat *c, resp_store *store, resp_arg *argv, size_t argc)
{
    (void)store, (void)argv, (void)argc;
    reply_status(c, "+OK\r\n");
    return true;
}

/* COMMAND and its subcommands (redis-cli asks for COMMAND DOCS): an empty array,
 * which clients read as "no command documentation", not as an error. */
static bool cmd_command(evc_chat *c, resp_store *store, resp_arg *argv, size_t argc)
{
    (void)store, (void)argv, (void)argc;
    reply_array_header(c, 0);
    return false;
}

/* INFO [section]: what the server's loop holds for its clients (evc_loop_stats), in
 * redis's "# Section" and "key:value" lines; every section is given whatever is asked. */
static bool cmd_info(evc_chat *c, resp_store *store, resp_arg *argv, size_t argc)
{
    (void)store, (void)argv, (void)argc;
    struct evc_loop_stats st;
    if (evc_loop_stats(evc_dispatcher_loop(evc_chat_dispatcher(c)), &st) < 0)
        memset(&st, 0, sizeof st);
    char text[512];
    int n = snprintf(text, sizeof text,
                     "# Clients\r\nconnected_clients:%zu\r\n"
                     "# Memory\r\nclients_input_bytes:%zu\r\nclients_output_bytes:%zu\r\n"
                     "clients_referenced_bytes:%zu\r\nclients_memory_budget:%zu\r\n"
                     "clients_closed_for_budget:%llu\r\n",
                     st.chats, st.input_bytes, st.output_bytes, st.referenced_bytes, st.budget,
                     (unsigned long long)st.budget_closes);
    reply_bulk(c, text, n > 0 && (size_t)n < sizeof text ? (size_t)n : 0);
    return false;
}

static const struct command commands[] = {
    {"get", 2, cmd_get},
    {"set", -3, cmd_set},
    {"ping", -1, cmd_ping},
    {"echo", 2, cmd_echo},
    {"del", -2, cmd_del},
    {"exists", -2, cmd_exists},
    {"incr", 2, cmd_incr},
    {"decr", 2, cmd_decr},
    {"incrby", 3, cmd_incrby},
    {"mget", -2, cmd_mget},
    {"mset", -3, cmd_mset},
    {"expire", 3, cmd_expire},
    {"ttl", 2, cmd_ttl},
    {"dbsize", 1, cmd_dbsize},
    {"flushall", -1, cmd_flushall},
    {"quit", -1, cmd_quit},
    {"command", -1, cmd_command},
    {"info", -1, cmd_info},
};

/* Copies at most max bytes of arg into buf for an error text, with CR and LF (which
 * would end the error line early) shown as spaces, as redis does. */
static void quote_for_error(char *buf, size_t cap, const resp_arg *arg, size_t max)
{
    size_t n = arg->len < max ? arg->len : max;
    if (n >= cap)
        n = cap - 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = arg->p[i] == '\r' || arg->p[i] == '\n' ? ' ' : arg->p[i];
    buf[n] = '\0';
}

/* "unknown command 'x', with args beginning with: 'a' 'b' ", as redis 7 words it. */
static void reply_unknown(evc_chat *c, const resp_arg *argv, size_t argc)
{
    char text[1024], piece[130];
    quote_for_error(piece, sizeof piece, &argv[0], 128);
    int len = snprintf(text, sizeof text, "unknown command '%s', with args beginning with: ",
                       piece);
    for (size_t i = 1; i < argc && len >= 0 && (size_t)len < sizeof text; i++) {
        quote_for_error(piece, sizeof piece, &argv[i], 128);
        len += snprintf(text + len, sizeof text - (size_t)len, "'%s' ", piece);
    }
    resp_reply_error(c, text);
}

bool resp_execute(evc_chat *c, resp_store *store, resp_arg *argv, size_t argc)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const struct command *cmd = &commands[i];
        if (!arg_is(&argv[0], cmd->name))
            continue;
        if (cmd->arity >= 0 ? argc != (size_t)cmd->arity : argc < (size_t)-cmd->arity)
            return reply_wrong_arity(c, cmd->name);
        return cmd->run(c, store, argv, argc);
    }
    reply_unknown(c, argv, argc);
    return false;
}

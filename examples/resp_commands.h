/*
 * The commands of examples/resp_server: each takes a parsed argument vector,
 * works on the key space and pushes its RESP2 reply on the chat.  Nothing here
 * reads from the network: resp_server.c frames and parses the requests.
 */
#ifndef EVC_EXAMPLE_RESP_COMMANDS_H
#define EVC_EXAMPLE_RESP_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include "evchat.h"
#include "resp_store.h"

/* One argument of a request, len bytes at p.  When owned, p is a malloc'd buffer (at
 * least one byte allocated) that a command may take for the store, leaving p NULL;
 * otherwise p points into the chat's input and is valid only during the call. */
typedef struct resp_arg {
    char *p;
    size_t len;
    bool owned;
} resp_arg;

/* Runs the command argv[0] (argc >= 1) and pushes its reply, an error reply included.
 * Returns true when the connection must close once the reply is written (QUIT). */
bool resp_execute(evc_chat *c, resp_store *store, resp_arg *argv, size_t argc);

/* Pushes "-ERR <text>\r\n"; the text must hold no CR or LF. */
void resp_reply_error(evc_chat *c, const char *text);

#endif

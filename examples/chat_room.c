/*
 * chat_room: the multi-user chat server of the select/asyncore tutorials.
 *
 * Python's versions (the select() "chat server" recipe, asyncore's
 * ChatServer/ChatHandler pair) keep a list of connected sockets and, for each
 * line one of them sends, write "[host:port] line" to every other one.  Here
 * each member is a chat with terminator "\n" in a doubly linked list, and a
 * line from one member is broadcast to all the others as
 *
 *     2026-11-22 05:56:00 127.0.0.1:40123 say: hello
 *
 * (local time, then the sender's address from evc_chat_peer_address +
 * evc_addr_format).  A line "exit" makes the server say goodbye to that member
 * and close it once the goodbye is written (close_when_done).  A member that
 * vanishes (EOF or reset) is dropped by the default handle_close, and nobody
 * else notices.
 *
 * What Python's versions get wrong and this one does not: a member that stops
 * reading (stalled, or just slow) makes the server queue every broadcast for
 * it, forever.  Here each member has an output limit of 1 MiB
 * (evc_chat_set_output_limit); once that much waits for it, the next push
 * fails with -ENOBUFS and the member is dropped (closed).  The server's memory
 * is therefore bounded by about 1 MiB per member, whatever anybody does.
 *
 * A line is formatted once and queued on every member as one shared buffer
 * (evc_shared): a thousand members cost one copy of it, not a thousand, and
 * the buffer goes when the last member has been sent it.
 *
 * Try it: run chat_room, then several `chat_client`.
 */
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define OUTPUT_LIMIT (1u << 20)   /* per member: queued broadcasts past this drop it */
#define MAX_LINE (64u << 10)      /* longer lines are an error: the member is closed */
#define IDLE_TIMEOUT 1800.0       /* seconds a member may stay silent (lurkers are welcome) */
#define LINE_DEADLINE 60.0        /* seconds from a line's first byte to its newline */

struct member;

struct room {
    struct member *first;
};

struct member {
    struct room *room;
    evc_chat *chat;
    struct member *prev, *next;
    char name[EVC_ADDRSTRLEN];    /* "host:port", fixed at accept: the socket may die first */
};

/* Sends text to every live member except the sender; drops those that cannot keep up. */
static void broadcast(struct room *room, const struct member *sender, evc_shared *text)
{
    for (struct member *m = room->first; m; m = m->next) {
        if (m == sender || evc_chat_closed(m->chat))
            continue;
        int rc = evc_chat_push_shared(m->chat, text);
        if (rc == -ENOBUFS || rc == -ENOMEM) {
            fprintf(stderr, "chat_room: dropping %s: %s\n", m->name, evc_strerror(rc));
            /* Closing another member here is safe: it stays in the list until
             * its on_destroy, which runs later from the loop. */
            evc_chat_close(m->chat);
        }
    }
}

static void handle_line(evc_chat *chat, void *data)
{
    struct member *me = data;
    size_t len;
    const char *line = evc_chat_incoming(chat, &len);
    if (!line)
        line = "";              /* an empty line */
    if (len > 0 && line[len - 1] == '\r')
        len--;   /* telnet and nc -C send "\r\n" */
    if (len == 4 && memcmp(line, "exit", 4) == 0) {
        evc_chat_push_str(chat, "goodbye\n");
        evc_chat_close_when_done(chat);
        return;
    }

    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));
    char *text = NULL;
    int n = asprintf(&text, "%s %s say: %.*s\n", stamp, me->name, (int)len, line);
    if (n < 0)
        return;
    evc_shared *shared = evc_shared_new(text, (size_t)n);
    free(text);
    if (!shared)
        return;
    broadcast(me->room, me, shared);
    evc_shared_release(shared);   /* the members' queues hold it now */
}

static void forget_member(evc_chat *chat, void *data)
{
    (void)chat;
    struct member *m = data;
    if (m->prev)
        m->prev->next = m->next;
    else
        m->room->first = m->next;
    if (m->next)
        m->next->prev = m->prev;
    free(m);
}

static const struct evc_chat_ops member_ops = {
    .found_terminator = handle_line,   /* the default collector keeps the line */
    .on_destroy = forget_member,
};

static void accept_member(evc_server *server, int fd, const struct sockaddr *peer, socklen_t len,
                          void *data)
{
    struct room *room = data;
    struct member *m = calloc(1, sizeof *m);
    if (!m) {
        close(fd);
        return;
    }
    if (evc_addr_format(peer, len, m->name, sizeof m->name) < 0)
        snprintf(m->name, sizeof m->name, "?");
    struct ev_loop *loop = evc_server_loop(server);
    m->room = room;
    m->chat = evc_chat_new(loop, fd, &member_ops, m);
    if (!m->chat) {
        free(m);
        close(fd);
        return;
    }
    evc_chat_set_terminator(m->chat, "\n");
    evc_chat_set_max_frame(m->chat, MAX_LINE);
    evc_chat_set_output_limit(m->chat, OUTPUT_LIMIT);
    evc_chat_set_timeout(m->chat, IDLE_TIMEOUT);
    evc_chat_set_frame_deadline(m->chat, LINE_DEADLINE);
    m->next = room->first;
    if (room->first)
        room->first->prev = m;
    room->first = m;
}

static const struct evc_server_ops room_server_ops = {
    .handle_accepted = accept_member,
};

int main(int argc, char **argv)
{
    example_opts opts;
    example_parse(&opts, argc, argv, "127.0.0.1", 33333, "");

    struct room room = {NULL};
    return example_serve(&opts, &room_server_ops, &room);
}

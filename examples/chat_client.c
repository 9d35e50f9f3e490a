/*
 * chat_client: a client for chat_room that reads the keyboard and the socket
 * in one loop, with no threads.
 *
 * Python's select() chat client puts sys.stdin and the socket in the same
 * select() call; asyncore's file_dispatcher does the same for any fd.  Here
 * both are chats with terminator "\n":
 *
 *   - the socket chat connects asynchronously (lines typed before the
 *     connection completes are queued and go out when it does) and prints
 *     every line the room sends;
 *   - the stdin chat (evc_chat_new adopts any fd: a pipe, a tty) pushes each
 *     typed line into the socket chat.  Its output queue is never used.
 *
 * Typing "exit" sends it: the room answers "goodbye" and closes, which ends
 * the client.  End of input (Ctrl-D) sends what is left, closes the socket
 * once it is written (close_when_done), and ends the client too.
 * Exit status: 0 after a normal end, 1 if the connection failed.
 */
#include "common.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct client {
    evc_chat *room;      /* the socket; NULL once destroyed */
    evc_chat *input;     /* stdin; NULL once destroyed */
    int status;
};

/* --- the socket ---------------------------------------------------- */

static void print_line(evc_chat *chat, void *data)
{
    (void)data;
    size_t len;
    const char *line = evc_chat_incoming(chat, &len);
    if (!line)
        line = "";              /* an empty line */
    if (len > 0 && line[len - 1] == '\r')
        len--;
    printf("%.*s\n", (int)len, line);
    fflush(stdout);
}

static void room_error(evc_chat *chat, int err, void *data)
{
    struct client *client = data;
    fprintf(stderr, "chat_client: %s\n", evc_strerror(err));
    client->status = 1;
    evc_chat_close(chat);
}

static void room_gone(evc_chat *chat, void *data)
{
    struct client *client = data;
    client->room = NULL;
    /* Without a room there is nothing to type into: stop reading stdin too. */
    if (client->input)
        evc_chat_close(client->input);
    (void)chat;
}

static const struct evc_chat_ops room_ops = {
    .found_terminator = print_line,
    .handle_error = room_error,
    .on_destroy = room_gone,
};

/* --- stdin --------------------------------------------------------- */

static void send_line(evc_chat *chat, void *data)
{
    struct client *client = data;
    size_t len;
    const char *line = evc_chat_incoming(chat, &len);
    if (!line)
        line = "";              /* an empty line */
    if (!client->room)
        return;
    evc_chat_push(client->room, line, len);
    evc_chat_push_str(client->room, "\n");
    /* After "exit" the room says goodbye and closes; nothing more to send. */
    if (len == 4 && memcmp(line, "exit", 4) == 0)
        evc_chat_close(chat);
}

static void input_ended(evc_chat *chat, void *data)
{
    struct client *client = data;
    /* A last line without "\n" was collected but never terminated: send it. */
    size_t len;
    const char *rest = evc_chat_incoming(chat, &len);
    if (client->room) {
        if (len > 0) {
            evc_chat_push(client->room, rest, len);
            evc_chat_push_str(client->room, "\n");
        }
        evc_chat_close_when_done(client->room);
    }
    evc_chat_close(chat);
}

static void input_gone(evc_chat *chat, void *data)
{
    struct client *client = data;
    (void)chat;
    client->input = NULL;
}

static const struct evc_chat_ops input_ops = {
    .found_terminator = send_line,
    .handle_close = input_ended,
    .on_destroy = input_gone,
};

int main(int argc, char **argv)
{
    example_opts opts;
    example_parse(&opts, argc, argv, "127.0.0.1", 33333, "");
    struct sockaddr_storage ss;
    socklen_t len;
    example_resolve(&opts, &ss, &len);

    struct ev_loop *loop = ev_default_loop(0);
    struct client client = {.status = 0};
    client.room = evc_chat_new(loop, -1, &room_ops, &client);
    if (!client.room) {
        perror("chat_client");
        return 1;
    }
    evc_chat_set_terminator(client.room, "\n");
    int rc = evc_chat_connect(client.room, (struct sockaddr *)&ss, len);
    if (rc < 0) {
        fprintf(stderr, "chat_client: connect: %s\n", evc_strerror(rc));
        client.status = 1;
        evc_chat_close(client.room);
        ev_run(loop, 0);
        ev_loop_destroy(loop);
        return 1;
    }

    /* The chat makes its fd non-blocking, and a tty's flags are shared with the
     * shell: give it a duplicate and put fd 0's flags back at the end. */
    int stdin_flags = fcntl(STDIN_FILENO, F_GETFL);
    int in_fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
    client.input = in_fd >= 0 ? evc_chat_new(loop, in_fd, &input_ops, &client) : NULL;
    if (!client.input) {
        perror("chat_client: stdin");
        if (in_fd >= 0)
            close(in_fd);
        client.status = 1;
        evc_chat_close(client.room);
    } else {
        evc_chat_set_terminator(client.input, "\n");
    }

    ev_signal stop[2];
    example_stop_on_signals(loop, stop);
    ev_run(loop, 0);

    evc_close_all(loop);
    ev_run(loop, 0);
    ev_loop_destroy(loop);
    if (stdin_flags >= 0)
        fcntl(STDIN_FILENO, F_SETFL, stdin_flags);
    return client.status;
}

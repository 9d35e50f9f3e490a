/*
 * blocking_echo: socketserver's ThreadingTCPServer, where each connection's
 * handler may block, on one loop and a pool of threads.
 *
 * Python's socketserver gives every connection a thread whose handler reads
 * a line, does whatever it likes (block on a database, sleep), and writes an
 * answer.  Here the loop does all the socket work and only the handler runs
 * on a pool thread (evc_work_queue), so a blocked handler stalls its own
 * client and nobody else:
 *
 *   - each line is handed to handle_line() on a pool thread: "sleep N" blocks
 *     that thread N seconds (at most 30) and answers "slept N"; any other line
 *     is echoed;
 *   - the chat stops reading while its line is being handled and resumes once
 *     the answer is pushed, so one client's lines are handled one at a time
 *     and in order, as by one handler thread;
 *   - the answer comes back on the loop's thread (the work's done callback),
 *     through an evc_chat_ref: if the client left meanwhile, the answer is
 *     dropped and nothing touches the closed chat;
 *   - THREADS (default 8) bounds the handlers that block at once; lines past
 *     that wait in the pool's queue.
 *
 * Try it:   examples/blocking_echo &
 *           python3 -c 'import socket; s=socket.create_connection(("127.0.0.1",5557)); s.sendall(b"sleep 3\n"); print(s.recv(64))' &
 *           python3 -c 'import socket; s=socket.create_connection(("127.0.0.1",5557)); s.sendall(b"hi\n"); print(s.recv(64))'
 * The second client is answered at once, while the first one's handler sleeps.
 */
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLEEP_MAX 30
#define LINE_MAX_BYTES 4096

/* One line on its way through the pool and back. */
struct job {
    evc_chat_ref *ref;     /* the client, valid on any thread even after it left */
    char reply[LINE_MAX_BYTES + 32];
    size_t reply_len;
    size_t line_len;
    char line[];
};

/* The blocking handler: runs on a pool thread and touches nothing but its job. */
static void handle_line(void *arg)
{
    struct job *j = arg;
    unsigned seconds;
    char extra;
    if (sscanf(j->line, "sleep %u%c", &seconds, &extra) == 1) {
        if (seconds > SLEEP_MAX)
            seconds = SLEEP_MAX;
        sleep(seconds);
        j->reply_len = (size_t)snprintf(j->reply, sizeof j->reply, "slept %u\n", seconds);
    } else {
        memcpy(j->reply, j->line, j->line_len);
        j->reply[j->line_len] = '\n';
        j->reply_len = j->line_len + 1;
    }
}

/* Back on the loop's thread: answer, and read the client's next line. */
static void line_handled(void *arg, int status)
{
    struct job *j = arg;
    evc_chat *chat = evc_chat_ref_get(j->ref);   /* NULL: the client left meanwhile */
    if (chat && status == 0) {
        if (evc_chat_push(chat, j->reply, j->reply_len) < 0)
            evc_chat_close(chat);
        else
            evc_chat_resume_reading(chat);
    }
    evc_chat_ref_release(j->ref);
    free(j);
}

static void found_line(evc_chat *chat, void *data)
{
    (void)data;
    size_t len;
    const char *line = evc_chat_incoming(chat, &len);
    if (len > 0 && line[len - 1] == '\r')
        len--;
    struct job *j = malloc(sizeof *j + len + 1);
    if (!j) {
        evc_chat_close(chat);
        return;
    }
    memcpy(j->line, line, len);
    j->line[len] = '\0';
    j->line_len = len;
    j->ref = evc_chat_ref_new(chat);
    struct ev_loop *loop = evc_dispatcher_loop(evc_chat_dispatcher(chat));
    if (!j->ref || !evc_work_queue(loop, handle_line, line_handled, j)) {
        evc_chat_ref_release(j->ref);
        free(j);
        evc_chat_close(chat);
        return;
    }
    /* One line at a time per client, as one handler thread would take them. */
    evc_chat_pause_reading(chat);
}

static void line_too_long(evc_chat *chat, void *data)
{
    (void)data;
    evc_chat_push_str(chat, "line too long\n");
    evc_chat_close_when_done(chat);
}

static const struct evc_chat_ops handler_ops = {
    .found_terminator = found_line,
    .frame_too_long = line_too_long,
};

static void accept_client(evc_server *server, int fd, const struct sockaddr *peer, socklen_t len,
                          void *data)
{
    (void)peer, (void)len, (void)data;
    evc_chat *chat = evc_chat_new(evc_server_loop(server), fd, &handler_ops, NULL);
    if (!chat) {
        close(fd);
        return;
    }
    evc_chat_set_max_frame(chat, LINE_MAX_BYTES);
    if (evc_chat_set_terminator(chat, "\n") < 0)
        evc_chat_close(chat);
}

static const struct evc_server_ops server_ops = {
    .handle_accepted = accept_client,
};

int main(int argc, char **argv)
{
    example_opts opts;
    example_parse(&opts, argc, argv, "127.0.0.1", 5557, " [THREADS]");
    example_refuse_workers(&opts, argv[0]);
    unsigned threads = 8;
    if (opts.argc > 0) {
        char *end;
        long n = strtol(opts.argv[0], &end, 10);
        if (*end != '\0' || n < 1 || n > 256) {
            fprintf(stderr, "blocking_echo: THREADS must be 1..256\n");
            return 2;
        }
        threads = (unsigned)n;
    }

    struct ev_loop *loop = ev_default_loop(0);
    /* The pool's size lives with the loop's posts, so open them first. */
    int rc = evc_loop_open_posts(loop);
    if (rc == 0)
        rc = evc_loop_set_pool_size(loop, threads);
    if (rc < 0) {
        fprintf(stderr, "blocking_echo: %s\n", evc_strerror(rc));
        return 1;
    }
    char address[EVC_ADDRSTRLEN + 16];
    example_address(&opts, address, sizeof address);
    evc_server *server = evc_server_new(loop, address, 0, &server_ops, NULL);
    if (!server) {
        perror(address);
        evc_loop_close_posts(loop);
        return 1;
    }
    /* Signals first: a SIGTERM sent as soon as the line is read must find them. */
    ev_signal stop[2];
    example_stop_on_signals(loop, stop);
    example_announce(evc_dispatcher_fd(evc_server_dispatcher(server)));
    ev_run(loop, 0);

    /* Handlers still blocking are waited for (pending work keeps ev_run going);
     * their answers find their clients closed and are dropped. */
    evc_close_all(loop);
    ev_run(loop, 0);
    evc_loop_close_posts(loop);
    ev_loop_destroy(loop);
    return 0;
}

/*
 * The server the worker tests run (see workers_who.h): each line gets
 * "INDEX PID\n", which worker in which process served it; "q" closes.
 */
#include "workers_who.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

evc_workers *who_signalled;

void who_stop_on_signal(int sig)
{
    (void)sig;
    evc_workers_stop(who_signalled);
}

typedef struct worker_state {
    report *rep;
    unsigned index;
    int open_chats;     /* touched only on the worker's thread */
} worker_state;

typedef struct conn {
    worker_state *ws;
} conn;

static void on_line(evc_chat *c, void *data)
{
    conn *k = data;
    size_t len;
    const char *line = evc_chat_incoming(c, &len);
    if (len == 1 && line[0] == 'q') {
        evc_chat_close_when_done(c);
        return;
    }
    evc_chat_pushf(c, "%u %ld\n", k->ws->index, (long)getpid());
}

static void on_conn_destroy(evc_chat *c, void *data)
{
    (void)c;
    conn *k = data;
    k->ws->open_chats--;
    free(k);
}

static const struct evc_chat_ops who_ops = {
    .found_terminator = on_line,
    .on_destroy = on_conn_destroy,
};

static int who_setup(struct ev_loop *loop, unsigned index, void *data, void **worker_data)
{
    (void)loop;
    report *rep = data;
    assert_ptr_equal(*worker_data, data);   /* preset to the user's data */
    if (index == rep->fail_setup_of)
        return -EIO;
    worker_state *ws = calloc(1, sizeof *ws);
    assert_non_null(ws);
    ws->rep = rep;
    ws->index = index;
    pthread_mutex_lock(&rep->lock);
    rep->setups++;
    rep->setup_thread[index] = pthread_self();
    pthread_mutex_unlock(&rep->lock);
    *worker_data = ws;
    return 0;
}

static void who_accepted(struct ev_loop *loop, int fd, const struct sockaddr *sa, socklen_t len,
                         void *worker_data)
{
    (void)sa, (void)len;
    worker_state *ws = worker_data;
    conn *k = calloc(1, sizeof *k);
    assert_non_null(k);
    k->ws = ws;
    evc_chat *c = evc_chat_new(loop, fd, &who_ops, k);
    assert_non_null(c);
    ws->open_chats++;
    evc_chat_set_terminator(c, "\n");
}

static void who_teardown(struct ev_loop *loop, unsigned index, void *worker_data, void *data)
{
    (void)loop;
    report *rep = data;
    worker_state *ws = worker_data;
    assert_int_equal(ws->index, index);
    pthread_mutex_lock(&rep->lock);
    rep->teardowns++;
    rep->teardown_thread[index] = pthread_self();
    rep->open_at_teardown[index] = ws->open_chats;
    pthread_mutex_unlock(&rep->lock);
    if (rep->teardown_pipe >= 0) {
        char line[16];
        int n = snprintf(line, sizeof line, "T%u\n", index);
        assert_int_equal(write(rep->teardown_pipe, line, (size_t)n), n);
    }
    free(ws);
}

const struct evc_worker_ops who_worker_ops = {
    .setup = who_setup,
    .handle_accepted = who_accepted,
    .teardown = who_teardown,
};

void who_report_init(report *rep)
{
    memset(rep, 0, sizeof *rep);
    pthread_mutex_init(&rep->lock, NULL);
    rep->fail_setup_of = MAX_WORKERS;
    rep->teardown_pipe = -1;
}

int who_address_port(evc_workers *w)
{
    char text[EVC_ADDRSTRLEN];
    assert_true(evc_workers_address(w, text, sizeof text) > 0);
    const char *colon = strrchr(text, ':');
    assert_non_null(colon);
    return atoi(colon + 1);
}

/* One request on a fresh connection: which worker (and process) served it, or
 * UINT_MAX when no answer came (in 10 s). */
unsigned who_ask(int port, long *pid)
{
    int fd = evt_connect("127.0.0.1", port);
    evt_send_all(fd, "who\n", 4);
    char reply[64];
    size_t n = evt_recv_until(fd, reply, sizeof reply - 1, "\n");
    reply[n] = '\0';
    unsigned index;
    long p;
    if (sscanf(reply, "%u %ld", &index, &p) != 2) {
        close(fd);
        return UINT_MAX;
    }
    evt_send_all(fd, "q\n", 2);
    close(fd);
    if (pid)
        *pid = p;
    return index;
}

/*
 * Integration tests of the tutorial examples: upper_server, chat_room,
 * chat_client and writable_time_server run as real processes and are talked
 * to over loopback sockets (and, for chat_client, pipes).  Every server is
 * stopped with SIGTERM (or SIGINT) and must exit 0.
 */
#include "support.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/*
 * Each test gets its server from a setup function and the teardown stops it:
 * a failing test never leaves a server behind, and every test also checks
 * that the server exits 0 on SIGTERM (or SIGINT) after what the test did.
 */
static int start(void **state, const char *name)
{
    evt_proc *p = calloc(1, sizeof *p);
    assert_non_null(p);
    *state = p;
    evt_spawn_server(p, name, NULL);
    return 0;
}

static int stop(void **state, int sig)
{
    evt_proc *p = *state;
    int status = p->pid > 0 ? evt_stop_server(p, sig) : -1;
    free(p);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int start_upper(void **state) { return start(state, "upper_server"); }
static int start_room(void **state) { return start(state, "chat_room"); }
static int start_time(void **state) { return start(state, "writable_time_server"); }
static int stop_term(void **state) { return stop(state, SIGTERM); }
static int stop_int(void **state) { return stop(state, SIGINT); }

/* chat_room for the memory test: ASan's quarantine would hold on to every
 * freed byte and hide the bound, so it is made small (other builds ignore it). */
static int start_room_small_quarantine(void **state)
{
    const char *asan = getenv("ASAN_OPTIONS");
    char *saved = asan ? strdup(asan) : NULL;
    char opts[512];
    snprintf(opts, sizeof opts, "%s%squarantine_size_mb=1", asan ? asan : "", asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    int rc = start(state, "chat_room");
    if (saved)
        setenv("ASAN_OPTIONS", saved, 1);
    else
        unsetenv("ASAN_OPTIONS");
    free(saved);
    return rc;
}

/* A line reader over a blocking fd (sockets have 10 s timeouts; pipes are polled). */
typedef struct lines {
    int fd;
    size_t off, len;    /* unread bytes are buf[off, off+len) */
    char buf[1 << 16];
} lines;

static void lines_init(lines *l, int fd)
{
    l->fd = fd;
    l->off = l->len = 0;
}

/* Next line without its "\n" into out; false on EOF, error or a 10 s silence. */
static bool next_line(lines *l, char *out, size_t cap)
{
    for (;;) {
        char *start = l->buf + l->off;
        char *nl = memchr(start, '\n', l->len);
        if (nl) {
            size_t n = (size_t)(nl - start);
            assert_true(n < cap);
            memcpy(out, start, n);
            out[n] = '\0';
            l->off += n + 1;
            l->len -= n + 1;
            return true;
        }
        memmove(l->buf, start, l->len);
        l->off = 0;
        assert_true(l->len < sizeof l->buf);
        struct pollfd pfd = {.fd = l->fd, .events = POLLIN};
        if (poll(&pfd, 1, 10000) <= 0)
            return false;
        ssize_t r = read(l->fd, l->buf + l->len, sizeof l->buf - l->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        l->len += (size_t)r;
    }
}

static void expect_line(lines *l, char *out, size_t cap)
{
    if (!next_line(l, out, cap))
        fail_msg("expected a line on fd %d", l->fd);
}

/* "127.0.0.1:PORT" of our end of fd: what the room calls us. */
static void local_name(int fd, char *buf, size_t cap)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    snprintf(buf, cap, "127.0.0.1:%d", ntohs(sin.sin_port));
}

/* Asserts line is "YYYY-MM-DD HH:MM:SS <sender> say: <text>"; a NULL sender
 * stands for any "127.0.0.1:PORT". */
static void assert_said(const char *line, const char *sender, const char *text)
{
    char any[64];
    int port = 0, used = 0;
    if (!sender) {
        if (strlen(line) < 20 || sscanf(line + 20, "127.0.0.1:%d%n", &port, &used) != 1 ||
            port <= 0 || port > 65535)
            fail_msg("no sender address in '%s'", line);
        snprintf(any, sizeof any, "127.0.0.1:%d", port);
        sender = any;
    }
    regex_t re;
    assert_int_equal(regcomp(&re, "^[0-9]{4}-[0-1][0-9]-[0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] ",
                             REG_EXTENDED | REG_NOSUB), 0);
    int rc = regexec(&re, line, 0, NULL, 0);
    regfree(&re);
    if (rc != 0)
        fail_msg("no timestamp in '%s'", line);
    char rest[2048];
    snprintf(rest, sizeof rest, "%s say: %s", sender, text);
    assert_string_equal(line + 20, rest);
}

/* Reads until EOF or reset; true if that came within the socket timeout. */
static bool drained_to_eof(int fd, size_t *total)
{
    char sink[65536];
    *total = 0;
    for (;;) {
        ssize_t n = recv(fd, sink, sizeof sink, 0);
        if (n > 0) {
            *total += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n == 0 || errno == ECONNRESET;
    }
}

static long vm_rss_kib(pid_t pid)
{
    char path[64], row[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    long kib = -1;
    while (fgets(row, sizeof row, f))
        if (sscanf(row, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    assert_true(kib > 0);
    return kib;
}

/* utime + stime of pid, in clock ticks. */
static long cpu_ticks(pid_t pid)
{
    char path[64], stat[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *p = strrchr(stat, ')');   /* the command name may hold spaces */
    assert_non_null(p);
    unsigned long utime = 0, stime = 0;
    /* Fields after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    assert_int_equal(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                            &utime, &stime), 2);
    return (long)(utime + stime);
}

/* ------------------------------------------------------------------ */
/* upper_server                                                        */
/* ------------------------------------------------------------------ */

static void upper_server_answers_each_client_its_own_text(void **state)
{
    const evt_proc *p = *state;
    enum { CLIENTS = 5, ROUNDS = 4 };
    int fds[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        fds[i] = evt_connect(p->host, p->port);
    /* Interleaved messages: each client must get back only its own, in order. */
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < CLIENTS; i++) {
            char msg[64];
            snprintf(msg, sizeof msg, "client %d, message %d: MiXeD cAsE!\n", i, r);
            evt_send_all(fds[i], msg, strlen(msg));
        }
    }
    for (int i = 0; i < CLIENTS; i++) {
        char want[1024] = "", got[1024];
        for (int r = 0; r < ROUNDS; r++)
            snprintf(want + strlen(want), sizeof want - strlen(want),
                     "CLIENT %d, MESSAGE %d: MIXED CASE!\n", i, r);
        assert_int_equal(evt_recv_all(fds[i], got, strlen(want)), strlen(want));
        assert_memory_equal(got, want, strlen(want));
    }
    /* A client that closes its side right after a message still gets the
     * answer, then EOF. */
    evt_send_all(fds[0], "bye\n", 4);
    shutdown(fds[0], SHUT_WR);
    char rest[16];
    assert_int_equal(evt_recv_all(fds[0], rest, sizeof rest), 4);
    assert_memory_equal(rest, "BYE\n", 4);
    for (int i = 0; i < CLIENTS; i++)
        close(fds[i]);
}

/* Sends out and receives the same number of bytes into in, concurrently. */
static void pump(int fd, const char *out, char *in, size_t len)
{
    size_t sent = 0, got = 0;
    time_t deadline = time(NULL) + 20;
    while (got < len) {
        assert_true(time(NULL) < deadline);
        struct pollfd pfd = {.fd = fd, .events = POLLIN | (sent < len ? POLLOUT : 0)};
        assert_true(poll(&pfd, 1, 10000) > 0);
        if (pfd.revents & POLLOUT) {
            ssize_t n = send(fd, out + sent, len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            assert_true(n > 0 || errno == EAGAIN);
            if (n > 0)
                sent += (size_t)n;
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(fd, in + got, len - got, MSG_DONTWAIT);
            assert_true(n > 0 || errno == EAGAIN);
            if (n > 0)
                got += (size_t)n;
        }
    }
}

static void upper_server_big_messages_pass_through_whole(void **state)
{
    const evt_proc *p = *state;
    /* Bigger than the high-water mark and the socket buffers together, so the
     * server has to stop reading and resume while the client drains. */
    const size_t len = 8u << 20;
    char *out = malloc(len), *in = malloc(len);
    assert_non_null(out);
    assert_non_null(in);
    srand(7);
    for (size_t i = 0; i < len; i++)
        out[i] = (char)(rand() & 0xff);
    int a = evt_connect(p->host, p->port), b = evt_connect(p->host, p->port);
    pump(a, out, in, len);
    for (size_t i = 0; i < len; i++)
        if (in[i] != (char)toupper((unsigned char)out[i]))
            fail_msg("byte %zu: sent %02x, got %02x", i, (unsigned char)out[i], (unsigned char)in[i]);
    /* The other client was not disturbed. */
    evt_send_all(b, "still here\n", 11);
    char reply[32];
    assert_int_equal(evt_recv_until(b, reply, sizeof reply, "\n"), 11);
    assert_memory_equal(reply, "STILL HERE\n", 11);
    close(a);
    close(b);
    free(out);
    free(in);
}

/* ------------------------------------------------------------------ */
/* chat_room                                                           */
/* ------------------------------------------------------------------ */

typedef struct member {
    int fd;
    char name[64];
    lines in;
} member;

/*
 * Joins n members one at a time.  Each newcomer says "joined" and every
 * earlier member must hear it: that proves the room has accepted them all
 * before the test goes on (a connect completes before the server accepts).
 */
static void join(const evt_proc *p, member *m, int n)
{
    char line[512];
    for (int i = 0; i < n; i++) {
        m[i].fd = evt_connect(p->host, p->port);
        local_name(m[i].fd, m[i].name, sizeof m[i].name);
        lines_init(&m[i].in, m[i].fd);
        if (i == 0)
            continue;
        evt_send_all(m[i].fd, "joined\n", 7);
        for (int j = 0; j < i; j++) {
            expect_line(&m[j].in, line, sizeof line);
            assert_said(line, m[i].name, "joined");
        }
    }
}

static void chat_room_broadcasts_to_others_not_the_sender(void **state)
{
    const evt_proc *p = *state;
    member m[3];
    join(p, m, 3);
    char line[512];

    evt_send_all(m[0].fd, "hello, room\r\n", 13);   /* "\r\n" is accepted too */
    expect_line(&m[1].in, line, sizeof line);
    assert_said(line, m[0].name, "hello, room");
    expect_line(&m[2].in, line, sizeof line);
    assert_said(line, m[0].name, "hello, room");

    /* Had the sender been sent its own line, it would come before this one. */
    evt_send_all(m[1].fd, "hi", 2);
    evt_send_all(m[1].fd, " there\n", 7);
    expect_line(&m[0].in, line, sizeof line);
    assert_said(line, m[1].name, "hi there");
    expect_line(&m[2].in, line, sizeof line);
    assert_said(line, m[1].name, "hi there");

    for (int i = 0; i < 3; i++)
        close(m[i].fd);
}

static void chat_room_exit_says_goodbye_and_leaves(void **state)
{
    const evt_proc *p = *state;
    member m[3];
    join(p, m, 3);
    char line[512];

    evt_send_all(m[0].fd, "exit\n", 5);
    expect_line(&m[0].in, line, sizeof line);
    assert_string_equal(line, "goodbye");
    assert_false(next_line(&m[0].in, line, sizeof line));   /* then EOF */

    evt_send_all(m[1].fd, "after exit\n", 11);
    expect_line(&m[2].in, line, sizeof line);
    assert_said(line, m[1].name, "after exit");

    for (int i = 0; i < 3; i++)
        close(m[i].fd);
}

static void chat_room_vanished_member_does_not_disturb_the_rest(void **state)
{
    const evt_proc *p = *state;
    member m[3];
    join(p, m, 3);
    char line[512];

    /* Lines are queued for member 0, which vanishes with a reset unread. */
    for (int i = 0; i < 50; i++)
        evt_send_all(m[1].fd, "to everybody\n", 13);
    evt_close_reset(m[0].fd);
    for (int i = 0; i < 50; i++) {
        expect_line(&m[2].in, line, sizeof line);
        assert_said(line, m[1].name, "to everybody");
    }
    evt_send_all(m[2].fd, "anyone?\n", 8);
    expect_line(&m[1].in, line, sizeof line);
    assert_said(line, m[2].name, "anyone?");

    /* And the room still takes newcomers. */
    member late[1];
    join(p, late, 1);
    evt_send_all(late[0].fd, "late\n", 5);
    expect_line(&m[1].in, line, sizeof line);
    assert_said(line, late[0].name, "late");

    close(m[1].fd);
    close(m[2].fd);
    close(late[0].fd);
}

static void chat_room_drops_a_stalled_member_and_stays_small(void **state)
{
    const evt_proc *p = *state;
    member m[3];   /* 0 floods, 1 reads everything, 2 never reads */
    join(p, m, 3);
    long rss_before = vm_rss_kib(p->pid);

    enum { PAYLOAD = 1000, BATCH = 64, BATCHES = 384 };   /* 24 MB of lines */
    char batch[BATCH * (PAYLOAD + 1)], want[PAYLOAD + 1], line[2048];
    memset(want, 'x', PAYLOAD);
    want[PAYLOAD] = '\0';
    const size_t said_len = 20 + strlen(m[0].name) + strlen(" say: ") + PAYLOAD;
    for (int i = 0; i < BATCH; i++) {
        memset(batch + i * (PAYLOAD + 1), 'x', PAYLOAD);
        batch[i * (PAYLOAD + 1) + PAYLOAD] = '\n';
    }
    /* The reader stays at most LAG batches behind the flood, so only the
     * stalled member falls far behind.  (Reading in strict lock step would
     * wait on Nagle and delayed ACKs at the end of every batch.) */
    enum { LAG = 4 };
    for (int b = 0; b < BATCHES + LAG; b++) {
        if (b < BATCHES)
            evt_send_all(m[0].fd, batch, sizeof batch);
        if (b < LAG)
            continue;
        for (int i = 0; i < BATCH; i++) {
            if (!next_line(&m[1].in, line, sizeof line))
                fail_msg("the reader lost the room at batch %d line %d", b, i);
            if (i == 0)
                assert_said(line, m[0].name, want);
            else if (strlen(line) != said_len || memcmp(line + said_len - PAYLOAD, want, PAYLOAD))
                fail_msg("batch %d line %d: '%.60s...'", b, i, line);
        }
    }
    long rss_after = vm_rss_kib(p->pid);

    /* Without the output limit the room would have queued most of the 24 MB. */
    if (rss_after - rss_before > 8 * 1024)
        fail_msg("RSS grew from %ld to %ld KiB", rss_before, rss_after);
    /* The stalled member was dropped: it gets what the kernel held, then EOF. */
    size_t got;
    assert_true(drained_to_eof(m[2].fd, &got));
    assert_true(got < (size_t)BATCHES * BATCH * PAYLOAD / 2);

    /* The others carry on. */
    evt_send_all(m[1].fd, "survived\n", 9);
    expect_line(&m[0].in, line, sizeof line);
    assert_said(line, m[1].name, "survived");

    for (int i = 0; i < 3; i++)
        close(m[i].fd);
}

/* ------------------------------------------------------------------ */
/* chat_client                                                         */
/* ------------------------------------------------------------------ */

static void spawn_client(evt_child *c, const evt_proc *room)
{
    char port[16];
    snprintf(port, sizeof port, "%d", room->port);
    const char *args[] = {"-b", room->host, "-p", port, NULL};
    evt_spawn_client(c, "chat_client", args, false);
}

static void chat_client_sends_typed_lines_and_prints_the_room(void **state)
{
    const evt_proc *p = *state;
    member m[1];
    join(p, m, 1);
    evt_child c;
    spawn_client(&c, p);
    lines out;
    lines_init(&out, c.from_stdout);
    char line[512];

    /* What is typed reaches the room; this also proves the client has joined. */
    evt_type(&c, "typed in\n");
    expect_line(&m[0].in, line, sizeof line);
    assert_said(line, NULL, "typed in");

    evt_send_all(m[0].fd, "to the client\n", 14);
    expect_line(&out, line, sizeof line);
    assert_said(line, m[0].name, "to the client");

    evt_type(&c, "exit\n");
    expect_line(&out, line, sizeof line);
    assert_string_equal(line, "goodbye");
    int status = evt_wait_child(&c);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    close(m[0].fd);
}

static void chat_client_ends_at_end_of_input(void **state)
{
    const evt_proc *p = *state;
    member m[1];
    join(p, m, 1);
    evt_child c;
    spawn_client(&c, p);
    char line[512];

    /* The last line has no "\n": it is still sent when input ends. */
    evt_type(&c, "first\nlast words");
    close(c.to_stdin);
    c.to_stdin = -1;
    expect_line(&m[0].in, line, sizeof line);
    assert_said(line, NULL, "first");
    expect_line(&m[0].in, line, sizeof line);
    assert_said(line, NULL, "last words");
    int status = evt_wait_child(&c);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    close(m[0].fd);
}

/* ------------------------------------------------------------------ */
/* writable_time_server                                                */
/* ------------------------------------------------------------------ */

static void assert_time_line(const char *reply, size_t len)
{
    assert_int_equal(len, 26);
    assert_memory_equal(reply + 24, "\r\n", 2);
    char text[32];
    memcpy(text, reply, 24);
    text[24] = '\0';
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(text, "%a %b %d %H:%M:%S %Y", &tm);
    assert_non_null(end);
    assert_int_equal(*end, '\0');
}

static void writable_time_server_answers_each_message(void **state)
{
    const evt_proc *p = *state;
    int a = evt_connect(p->host, p->port), b = evt_connect(p->host, p->port);
    char reply[64];
    for (int i = 0; i < 3; i++) {
        evt_send_all(a, "what time?\n", 11);
        assert_time_line(reply, evt_recv_until(a, reply, sizeof reply, "\r\n"));
        evt_send_all(b, "and here?\n", 10);
        assert_time_line(reply, evt_recv_until(b, reply, sizeof reply, "\r\n"));
    }

    /* Between answers writable() is false: an idle connection costs no CPU.
     * A dispatcher polled for writability would spin at 100% here. */
    long before = cpu_ticks(p->pid);
    usleep(500000);
    long used = cpu_ticks(p->pid) - before;
    if (used > 10)
        fail_msg("an idle server used %ld ticks in 0.5 s", used);

    /* Nothing is sent unasked. */
    struct pollfd pfd = {.fd = a, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 100), 0);

    close(a);
    close(b);
}

/* ------------------------------------------------------------------ */
/* Every program: --help                                               */
/* ------------------------------------------------------------------ */

static void help_exits_zero(void **state)
{
    (void)state;
    const char *names[] = {"upper_server", "chat_room", "chat_client", "writable_time_server"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[512];
        evt_example_path(names[i], path, sizeof path);
        int out[2];
        assert_int_equal(pipe2(out, O_CLOEXEC), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            dup2(out[1], STDOUT_FILENO);
            execl(path, path, "--help", (char *)NULL);
            _exit(127);
        }
        close(out[1]);
        char text[1024];
        size_t n = 0;
        ssize_t r;
        while (n < sizeof text - 1 && (r = read(out[0], text + n, sizeof text - 1 - n)) > 0)
            n += (size_t)r;
        text[n] = '\0';
        close(out[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_non_null(strstr(text, "usage:"));
        assert_non_null(strstr(text, "-p"));
    }
}

int main(void)
{
    /* Writing to a client that has already exited must fail, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(upper_server_answers_each_client_its_own_text,
                                        start_upper, stop_term),
        cmocka_unit_test_setup_teardown(upper_server_big_messages_pass_through_whole,
                                        start_upper, stop_int),
        cmocka_unit_test_setup_teardown(chat_room_broadcasts_to_others_not_the_sender,
                                        start_room, stop_term),
        cmocka_unit_test_setup_teardown(chat_room_exit_says_goodbye_and_leaves,
                                        start_room, stop_term),
        cmocka_unit_test_setup_teardown(chat_room_vanished_member_does_not_disturb_the_rest,
                                        start_room, stop_int),
        cmocka_unit_test_setup_teardown(chat_room_drops_a_stalled_member_and_stays_small,
                                        start_room_small_quarantine, stop_term),
        cmocka_unit_test_setup_teardown(chat_client_sends_typed_lines_and_prints_the_room,
                                        start_room, stop_term),
        cmocka_unit_test_setup_teardown(chat_client_ends_at_end_of_input,
                                        start_room, stop_term),
        cmocka_unit_test_setup_teardown(writable_time_server_answers_each_message,
                                        start_time, stop_term),
        cmocka_unit_test(help_exits_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

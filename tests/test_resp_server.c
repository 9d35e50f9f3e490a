/*
 * Integration tests of examples/resp_server, driven two ways: by redis-cli
 * and redis-benchmark (Debian's redis-tools), as users drive a redis server,
 * and by a raw-socket client that writes requests byte for byte (pipelines,
 * binary payloads, one byte at a time, malformed requests) and checks every
 * reply byte for byte.  Each test gets its own server from a setup function;
 * the teardown stops it with SIGTERM and requires a clean exit.
 */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Servers                                                             */
/* ------------------------------------------------------------------ */

static int start_with(void **state, const char *const *args)
{
    evt_proc *p = calloc(1, sizeof *p);
    assert_non_null(p);
    *state = p;
    evt_spawn_server(p, "resp_server", args);
    return 0;
}

static int start(void **state) { return start_with(state, NULL); }

/* --collect 0: every event handled at once (the interval's off switch still serves). */
static int start_without_collect(void **state)
{
    static const char *const args[] = {"--collect", "0", NULL};
    return start_with(state, args);
}

/* A 1 KiB argument limit, for the -m test. */
static int start_small_bulk(void **state)
{
    static const char *const args[] = {"-m", "1k", NULL};
    return start_with(state, args);
}

/* For the sweep test, which watches the server's resident memory: under
 * AddressSanitizer, freed blocks wait in a quarantine instead of going back to the
 * system, so that server runs without one.  Without ASan the variable is ignored. */
static int start_without_quarantine(void **state)
{
    const char *old = getenv("ASAN_OPTIONS");
    char *saved = old ? strdup(old) : NULL;
    char options[1024];
    snprintf(options, sizeof options, "%s%squarantine_size_mb=0", saved ? saved : "",
             saved && *saved ? ":" : "");
    setenv("ASAN_OPTIONS", options, 1);
    int rc = start(state);
    if (saved)
        setenv("ASAN_OPTIONS", saved, 1);
    else
        unsetenv("ASAN_OPTIONS");
    free(saved);
    return rc;
}

static int stop(void **state)
{
    evt_proc *p = *state;
    int status = p->pid > 0 ? evt_stop_server(p, SIGTERM) : -1;
    free(p);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* A raw RESP client                                                   */
/* ------------------------------------------------------------------ */

typedef struct client {
    int fd;
    size_t off, len;    /* unread bytes are buf[off, off + len) */
    char buf[1 << 16];
} client;

static client *connect_to(const evt_proc *p)
{
    client *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->fd = evt_connect(p->host, p->port);
    return c;
}

static void disconnect(client *c)
{
    close(c->fd);
    free(c);
}

/* Reads more into the buffer; false on EOF or the socket's 10 s timeout. */
static bool fill(client *c)
{
    if (c->off > 0) {
        memmove(c->buf, c->buf + c->off, c->len);
        c->off = 0;
    }
    if (c->len == sizeof c->buf)
        return true;
    ssize_t n;
    do
        n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    return true;
}

/* Moves n bytes into out; fails the test if the server closes first. */
static void take_bytes(client *c, evt_bytes *out, size_t n)
{
    while (n > 0) {
        if (c->len == 0 && !fill(c))
            fail_msg("the server closed (or went silent) with %zu bytes of a reply to come", n);
        size_t k = c->len < n ? c->len : n;
        evt_bytes_add(out, c->buf + c->off, k);
        c->off += k;
        c->len -= k;
        n -= k;
    }
}

/* Moves one CRLF-terminated line into out; returns its offset in out. */
static size_t take_line(client *c, evt_bytes *out)
{
    size_t start = out->len;
    for (;;) {
        if (c->len == 0 && !fill(c))
            fail_msg("the server closed (or went silent) in the middle of a reply line");
        char ch = c->buf[c->off];
        take_bytes(c, out, 1);
        if (ch == '\n' && out->len - start >= 2 && out->p[out->len - 2] == '\r')
            return start;
    }
}

/* Appends one whole reply (nested arrays included), exactly as it came, to out. */
static void read_reply_into(client *c, evt_bytes *out)
{
    size_t at = take_line(c, out);
    char type = out->p[at];
    long long n = strtoll(out->p + at + 1, NULL, 10);
    if (type == '$' && n >= 0)
        take_bytes(c, out, (size_t)n + 2);
    else if (type == '*')
        for (long long i = 0; i < n; i++)
            read_reply_into(c, out);
    else
        assert_true(type == '+' || type == '-' || type == ':' || type == '$' || type == '*');
}

/* Reads one reply and checks it is exactly `want` (len bytes). */
static void expect_bytes(client *c, const char *want, size_t len)
{
    evt_bytes got = {0};
    read_reply_into(c, &got);
    if (got.len != len || memcmp(got.p, want, len) != 0)
        fail_msg("reply '%.*s' (%zu bytes), wanted '%.*s'", (int)(got.len > 200 ? 200 : got.len),
                 got.p, got.len, (int)(len > 200 ? 200 : len), want);
    evt_bytes_free(&got);
}

static void expect(client *c, const char *want)
{
    expect_bytes(c, want, strlen(want));
}

/* True once the server has closed the connection (nothing more comes). */
static bool closed_by_server(client *c)
{
    return c->len == 0 && !fill(c);
}

/* Appends a multibulk request of argc arguments (binary, with their lengths). */
static void add_request(evt_bytes *b, int argc, const char *const *argv, const size_t *lens)
{
    char head[32];
    snprintf(head, sizeof head, "*%d\r\n", argc);
    evt_bytes_adds(b, head);
    for (int i = 0; i < argc; i++) {
        size_t len = lens ? lens[i] : strlen(argv[i]);
        snprintf(head, sizeof head, "$%zu\r\n", len);
        evt_bytes_adds(b, head);
        evt_bytes_add(b, argv[i], len);
        evt_bytes_adds(b, "\r\n");
    }
}

/* Sends one request of C-string arguments (NULL-terminated). */
static void send_args(client *c, const char *first, ...)
{
    const char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && argc < 32; a = va_arg(ap, const char *))
        argv[argc++] = a;
    va_end(ap);
    evt_bytes b = {0};
    add_request(&b, argc, argv, NULL);
    evt_send_all(c->fd, b.p, b.len);
    evt_bytes_free(&b);
}

#define CALL(c, want, ...) do { send_args(c, __VA_ARGS__, (const char *)NULL); expect(c, want); } while (0)

static void send_text(client *c, const char *text)
{
    evt_send_all(c->fd, text, strlen(text));
}

/* ------------------------------------------------------------------ */
/* redis-cli and redis-benchmark                                       */
/* ------------------------------------------------------------------ */

/* Runs `prog -h HOST -p PORT args...` with input on its stdin; its stdout and stderr
 * go into out (NUL-terminated).  Returns the exit status; fails if it cannot start
 * or takes over 20 s. */
static int run_tool(const evt_proc *p, const char *prog, const char *input, size_t input_len,
                    char *out, size_t cap, const char *const *args)
{
    char port[16];
    snprintf(port, sizeof port, "%d", p->port);
    const char *argv[40] = {prog, "-h", p->host, "-p", port};
    size_t argc = 5;
    for (size_t i = 0; args[i]; i++) {
        assert_true(argc + 1 < 40);
        argv[argc++] = args[i];
    }
    argv[argc] = NULL;
    char path[64];
    snprintf(path, sizeof path, "/usr/bin/%s", prog);
    if (access(path, X_OK) != 0)
        fail_msg("%s is missing: it comes with Debian's redis-tools (./setup installs it)", path);

    int in[2], from[2];
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    assert_int_equal(pipe2(from, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(from[1], STDOUT_FILENO);
        dup2(from[1], STDERR_FILENO);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(from[1]);
    /* Inputs are small: they fit the pipe, so writing them all first cannot block. */
    if (input_len > 0)
        assert_int_equal(write(in[1], input, input_len), (ssize_t)input_len);
    close(in[1]);
    size_t got = 0;
    time_t deadline = time(NULL) + 20;
    for (;;) {
        struct pollfd pfd = {.fd = from[0], .events = POLLIN};
        if (time(NULL) > deadline || poll(&pfd, 1, 1000) < 0)
            break;
        if (pfd.revents == 0)
            continue;
        ssize_t n = read(from[0], out + got, cap - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == cap - 1)
            break;
    }
    out[got] = '\0';
    close(from[0]);
    int status;
    if (waitpid(pid, &status, WNOHANG) != pid) {
        for (int i = 0; i < 100 && waitpid(pid, &status, WNOHANG) != pid; i++)
            usleep(20000);
        if (kill(pid, 0) == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("%s did not finish", prog);
        }
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Runs redis-cli with its human-readable replies (--no-raw) and checks the output. */
static void cli(const evt_proc *p, const char *want, const char *const *args)
{
    const char *argv[40] = {"--no-raw"};
    size_t argc = 1;
    for (size_t i = 0; args[i]; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    char out[4096];
    int status = run_tool(p, "redis-cli", NULL, 0, out, sizeof out, argv);
    if (strcmp(out, want) != 0)
        fail_msg("redis-cli %s...: got '%s', wanted '%s'", args[0], out, want);
    assert_int_equal(status, 0);
}

#define CLI(p, want, ...) cli(p, want, (const char *const[]){__VA_ARGS__, NULL})

static void redis_cli_runs_every_command(void **state)
{
    evt_proc *p = *state;
    CLI(p, "PONG\n", "ping");
    CLI(p, "\"hello there\"\n", "ping", "hello there");
    CLI(p, "\"echoed\"\n", "echo", "echoed");
    CLI(p, "OK\n", "set", "k", "v1");
    CLI(p, "\"v1\"\n", "get", "k");
    CLI(p, "(nil)\n", "set", "k", "v2", "nx");
    CLI(p, "OK\n", "set", "k", "v3", "xx");
    CLI(p, "(nil)\n", "set", "fresh", "v", "xx");
    CLI(p, "OK\n", "set", "fresh", "v", "NX", "EX", "100");
    CLI(p, "(integer) 100\n", "ttl", "fresh");
    CLI(p, "(integer) -1\n", "ttl", "k");
    CLI(p, "(integer) -2\n", "ttl", "nosuchkey");
    CLI(p, "(integer) 1\n", "incr", "counter");
    CLI(p, "(integer) 11\n", "incrby", "counter", "10");
    CLI(p, "(integer) 10\n", "decr", "counter");
    CLI(p, "(integer) -5\n", "incrby", "counter", "-15");
    CLI(p, "OK\n", "mset", "a", "1", "b", "2");
    CLI(p, "1) \"1\"\n2) \"2\"\n3) (nil)\n", "mget", "a", "b", "c");
    CLI(p, "(integer) 3\n", "exists", "a", "b", "c", "a");
    CLI(p, "(integer) 1\n", "expire", "a", "50");
    CLI(p, "(integer) 50\n", "ttl", "a");
    CLI(p, "(integer) 0\n", "expire", "c", "50");
    CLI(p, "(integer) 5\n", "dbsize");
    CLI(p, "(integer) 2\n", "del", "a", "b", "c");
    CLI(p, "(integer) 3\n", "dbsize");
    CLI(p, "OK\n", "flushall");
    CLI(p, "(integer) 0\n", "dbsize");
    CLI(p, "(empty array)\n", "command");
    CLI(p, "OK\n", "quit");
    CLI(p, "(error) ERR unknown command 'nosuch', with args beginning with: 'x' \n", "nosuch", "x");
    CLI(p, "(error) ERR wrong number of arguments for 'get' command\n", "get");
}

/* redis-cli -x reads the value from stdin, --raw prints it as it is. */
static void redis_cli_stores_binary_values(void **state)
{
    evt_proc *p = *state;
    static const char value[] = "line one\r\nline\0two\r\n\xff\x80";
    char out[256];
    run_tool(p, "redis-cli", value, sizeof value - 1, out, sizeof out,
             (const char *const[]){"-x", "set", "bin", NULL});
    assert_string_equal(out, "OK\n");
    /* The NUL would end the text redis-cli prints: read the value back raw. */
    client *c = connect_to(p);
    send_args(c, "GET", "bin", (const char *)NULL);
    char want[64];
    int head = snprintf(want, sizeof want, "$%zu\r\n", sizeof value - 1);
    memcpy(want + head, value, sizeof value - 1);
    memcpy(want + head + sizeof value - 1, "\r\n", 2);
    expect_bytes(c, want, (size_t)head + sizeof value - 1 + 2);
    disconnect(c);
}

/* redis-cli's mass-insertion mode writes raw protocol as fast as it can and ends with an
 * ECHO of its own to know every reply came back. */
static void redis_cli_pipe_mode(void **state)
{
    evt_proc *p = *state;
    evt_bytes in = {0};
    for (int i = 0; i < 1000; i++) {
        char key[32];
        snprintf(key, sizeof key, "key:%d", i);
        add_request(&in, 3, (const char *const[]){"SET", key, "value"}, NULL);
    }
    char out[1024];
    int status = run_tool(p, "redis-cli", in.p, in.len, out, sizeof out,
                          (const char *const[]){"--pipe", NULL});
    evt_bytes_free(&in);
    if (status != 0 || !strstr(out, "errors: 0, replies: 1000"))
        fail_msg("redis-cli --pipe: status %d, output '%s'", status, out);
    CLI(p, "(integer) 1000\n", "dbsize");
}

static void redis_benchmark_runs(void **state)
{
    evt_proc *p = *state;
    char out[8192];
    int status = run_tool(p, "redis-benchmark", NULL, 0, out, sizeof out,
                          (const char *const[]){"-t", "ping,set,get", "-n", "2000", "-c", "4",
                                                "-P", "4", "-q", NULL});
    assert_int_equal(status, 0);
    assert_non_null(strstr(out, "SET: "));
    assert_non_null(strstr(out, "GET: "));
    assert_non_null(strstr(out, "PING_MBULK: "));
    assert_null(strstr(out, "ERR"));
}

/* ------------------------------------------------------------------ */
/* Raw protocol                                                        */
/* ------------------------------------------------------------------ */

static void binary_keys_and_values(void **state)
{
    client *c = connect_to(*state);
    static const char key[] = "k\r\ney\0with\r\nCRLF";
    static const char value[] = "\r\n\0\r\n$3\r\n*1\r\n\0";
    const char *argv[] = {"SET", key, value};
    size_t lens[] = {3, sizeof key - 1, sizeof value - 1};
    evt_bytes b = {0};
    add_request(&b, 3, argv, lens);
    add_request(&b, 2, (const char *const[]){"GET", key}, (size_t[]){3, sizeof key - 1});
    add_request(&b, 2, (const char *const[]){"GET", "k"}, NULL);
    evt_send_all(c->fd, b.p, b.len);
    expect(c, "+OK\r\n");
    evt_bytes want = {0};
    char head[32];
    snprintf(head, sizeof head, "$%zu\r\n", sizeof value - 1);
    evt_bytes_adds(&want, head);
    evt_bytes_add(&want, value, sizeof value - 1);
    evt_bytes_adds(&want, "\r\n");
    expect_bytes(c, want.p, want.len);
    expect(c, "$-1\r\n");
    evt_bytes_free(&want);
    evt_bytes_free(&b);
    disconnect(c);
}

static void empty_values_and_keys(void **state)
{
    client *c = connect_to(*state);
    send_text(c, "*3\r\n$3\r\nSET\r\n$0\r\n\r\n$0\r\n\r\n");
    expect(c, "+OK\r\n");
    send_text(c, "*2\r\n$3\r\nGET\r\n$0\r\n\r\n");
    expect(c, "$0\r\n\r\n");
    CALL(c, "$0\r\n\r\n", "ECHO", "");
    CALL(c, ":1\r\n", "EXISTS", "");
    disconnect(c);
}

static void ten_megabyte_value(void **state)
{
    client *c = connect_to(*state);
    size_t len = 10u << 20;
    char *value = evt_random_body(len, 11);
    /* Line breaks and NULs all through the value. */
    for (size_t i = 0; i + 2 < len; i += 4093) {
        memcpy(value + i, "\r\n", 2);
        value[i + 2] = '\0';
    }
    evt_bytes b = {0};
    add_request(&b, 3, (const char *const[]){"SET", "big", value}, (size_t[]){3, 3, len});
    evt_send_all(c->fd, b.p, b.len);
    expect(c, "+OK\r\n");
    evt_bytes_reset(&b);
    evt_bytes_adds(&b, "$10485760\r\n");
    evt_bytes_add(&b, value, len);
    evt_bytes_adds(&b, "\r\n");
    send_args(c, "GET", "big", (const char *)NULL);
    expect_bytes(c, b.p, b.len);
    evt_bytes_free(&b);
    free(value);
    disconnect(c);
}

/* 20,000 requests in one write, multibulk and inline mixed: 20,000 replies in order. */
static void twenty_thousand_pipelined(void **state)
{
    client *c = connect_to(*state);
    enum { N = 20000 };
    evt_bytes b = {0};
    for (int i = 0; i < N; i++) {
        char key[32], value[32];
        snprintf(key, sizeof key, "key:%d", i / 4);
        snprintf(value, sizeof value, "value:%d", i);
        switch (i % 4) {
        case 0: add_request(&b, 3, (const char *const[]){"SET", key, value}, NULL); break;
        case 1: add_request(&b, 2, (const char *const[]){"GET", key}, NULL); break;
        case 2: add_request(&b, 2, (const char *const[]){"INCR", "counter"}, NULL); break;
        case 3: evt_bytes_adds(&b, "PING\r\n"); break;
        }
    }
    /* One send call: the kernel may still split it, as it splits any large write. */
    evt_send_all(c->fd, b.p, b.len);
    evt_bytes_free(&b);
    for (int i = 0; i < N; i++) {
        char want[64];
        switch (i % 4) {
        case 0: snprintf(want, sizeof want, "+OK\r\n"); break;
        case 1: {
            char value[32];
            int n = snprintf(value, sizeof value, "value:%d", i - 1);
            snprintf(want, sizeof want, "$%d\r\n%s\r\n", n, value);
            break;
        }
        case 2: snprintf(want, sizeof want, ":%d\r\n", i / 4 + 1); break;
        case 3: snprintf(want, sizeof want, "+PONG\r\n"); break;
        }
        expect(c, want);
    }
    CALL(c, ":5001\r\n", "DBSIZE");   /* key:0 to key:4999, and the counter */
    disconnect(c);
}

/* Pipelined requests whose replies outgrow the output high-water mark (1 MiB): all
 * answered, in order, however the server splits the batch. */
static void pipelined_big_replies(void **state)
{
    client *c = connect_to(*state);
    enum { VALUE = 200 * 1000, GETS = 40 };
    char *value = evt_random_body(VALUE, 5);
    evt_bytes b = {0};
    add_request(&b, 3, (const char *const[]){"SET", "v", value}, (size_t[]){3, 1, VALUE});
    for (int i = 0; i < GETS; i++) {
        char key[16];
        snprintf(key, sizeof key, "%d", i);
        add_request(&b, 2, (const char *const[]){"GET", i % 2 ? "v" : key}, NULL);
    }
    evt_send_all(c->fd, b.p, b.len);
    expect(c, "+OK\r\n");
    evt_bytes_reset(&b);
    evt_bytes_adds(&b, "$200000\r\n");
    evt_bytes_add(&b, value, VALUE);
    evt_bytes_adds(&b, "\r\n");
    for (int i = 0; i < GETS; i++) {
        if (i % 2)
            expect_bytes(c, b.p, b.len);
        else
            expect(c, "$-1\r\n");
    }
    evt_bytes_free(&b);
    free(value);
    disconnect(c);
}

/* Every byte in its own segment, with a pause, so the server meets every split. */
static void one_byte_at_a_time(void **state)
{
    client *c = connect_to(*state);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    static const char input[] =
        "*3\r\n$3\r\nSET\r\n$4\r\nk\r\n1\r\n$6\r\nv\0\r\n\r\n\r\n"
        "*2\r\n$3\r\nGET\r\n$4\r\nk\r\n1\r\n"
        "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"
        "set \"q k\" 'it\\'s'\r\n"
        "get \"q\\x20k\"\n"
        "\r\n"   /* a blank line, which redis-cli --pipe sends before its last ECHO */
        "PING\r\n"
        "set k 'it''s'\r\n";
    for (size_t i = 0; i < sizeof input - 1; i++) {
        evt_send_all(c->fd, input + i, 1);
        usleep(300);
    }
    expect(c, "+OK\r\n");
    expect_bytes(c, "$6\r\nv\0\r\n\r\n\r\n", 12);
    expect(c, "$0\r\n\r\n");
    expect(c, "+OK\r\n");
    expect(c, "$4\r\nit's\r\n");
    expect(c, "+PONG\r\n");
    expect(c, "-ERR Protocol error: unbalanced quotes in request\r\n");
    assert_true(closed_by_server(c));
    disconnect(c);
}

static void inline_commands(void **state)
{
    client *c = connect_to(*state);
    send_text(c, "PING\r\nPING\n\r\n  \r\nset  \"two words\"   'single \\'quoted\\''\r\n"
                 "get \"two\\x20words\"\r\nECHO \"tab\\there\"\n");
    expect(c, "+PONG\r\n");
    expect(c, "+PONG\r\n");
    expect(c, "+OK\r\n");
    expect(c, "$15\r\nsingle 'quoted'\r\n");
    expect(c, "$8\r\ntab\there\r\n");
    disconnect(c);
}

static void command_errors(void **state)
{
    client *c = connect_to(*state);
    CALL(c, "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n", "FOO", "a", "b");
    CALL(c, "-ERR unknown command 'x  y', with args beginning with: \r\n", "x\r\ny");
    CALL(c, "-ERR wrong number of arguments for 'get' command\r\n", "GET");
    CALL(c, "-ERR wrong number of arguments for 'set' command\r\n", "SET", "k");
    CALL(c, "-ERR wrong number of arguments for 'echo' command\r\n", "ECHO", "a", "b");
    CALL(c, "-ERR wrong number of arguments for 'ping' command\r\n", "PING", "a", "b");
    CALL(c, "-ERR wrong number of arguments for 'mset' command\r\n", "MSET", "a", "1", "b");
    CALL(c, "-ERR wrong number of arguments for 'del' command\r\n", "DEL");
    CALL(c, "-ERR wrong number of arguments for 'exists' command\r\n", "EXISTS");
    CALL(c, "-ERR wrong number of arguments for 'incr' command\r\n", "INCR");
    CALL(c, "-ERR wrong number of arguments for 'decr' command\r\n", "DECR", "a", "b");
    CALL(c, "-ERR wrong number of arguments for 'incrby' command\r\n", "INCRBY", "a");
    CALL(c, "-ERR wrong number of arguments for 'mget' command\r\n", "MGET");
    CALL(c, "-ERR wrong number of arguments for 'expire' command\r\n", "EXPIRE", "a");
    CALL(c, "-ERR wrong number of arguments for 'ttl' command\r\n", "TTL");
    CALL(c, "-ERR wrong number of arguments for 'dbsize' command\r\n", "DBSIZE", "x");
    CALL(c, "+OK\r\n", "SET", "word", "abc");
    CALL(c, "-ERR value is not an integer or out of range\r\n", "INCR", "word");
    CALL(c, "-ERR value is not an integer or out of range\r\n", "INCRBY", "n", "1.5");
    CALL(c, "-ERR value is not an integer or out of range\r\n", "INCRBY", "n", "01");
    CALL(c, "-ERR value is not an integer or out of range\r\n", "INCRBY", "n",
         "9223372036854775808");
    CALL(c, "-ERR value is not an integer or out of range\r\n", "SET", "k", "v", "EX", "ten");
    CALL(c, "-ERR value is not an integer or out of range\r\n", "EXPIRE", "word", "x");
    CALL(c, "-ERR invalid expire time in 'set' command\r\n", "SET", "k", "v", "PX", "0");
    CALL(c, "-ERR invalid expire time in 'set' command\r\n", "SET", "k", "v", "EX", "-1");
    CALL(c, "-ERR syntax error\r\n", "SET", "k", "v", "NX", "XX");
    CALL(c, "-ERR syntax error\r\n", "SET", "k", "v", "EX");
    CALL(c, "-ERR syntax error\r\n", "SET", "k", "v", "EX", "1", "PX", "1");
    CALL(c, "-ERR syntax error\r\n", "FLUSHALL", "now");
    CALL(c, "+OK\r\n", "SET", "max", "9223372036854775807");
    CALL(c, "-ERR increment or decrement would overflow\r\n", "INCR", "max");
    CALL(c, ":-9223372036854775808\r\n", "INCRBY", "min", "-9223372036854775808");
    CALL(c, "-ERR increment or decrement would overflow\r\n", "DECR", "min");
    /* None of the failed commands changed anything. */
    CALL(c, "$3\r\nabc\r\n", "GET", "word");
    CALL(c, ":3\r\n", "DBSIZE");
    disconnect(c);
}

/* A protocol error answers "-ERR Protocol error: ...", after the replies to every
 * request before it, then closes; requests after it never run. */
static void check_protocol_error(const evt_proc *p, const char *input, size_t len,
                                 const char *error)
{
    client *c = connect_to(p);
    send_text(c, "PING\r\n");
    evt_send_all(c->fd, input, len);
    send_text(c, "*3\r\n$3\r\nSET\r\n$5\r\nafter\r\n$1\r\nx\r\n");
    expect(c, "+PONG\r\n");
    char want[200];
    snprintf(want, sizeof want, "-ERR Protocol error: %s\r\n", error);
    expect(c, want);
    if (!closed_by_server(c))
        fail_msg("still open after '%s'", error);
    disconnect(c);
    c = connect_to(p);
    CALL(c, ":0\r\n", "EXISTS", "after");
    disconnect(c);
}

#define PROTOCOL_ERROR(p, input, error) check_protocol_error(p, input, sizeof input - 1, error)

static void protocol_errors(void **state)
{
    evt_proc *p = *state;
    PROTOCOL_ERROR(p, "*abc\r\n", "invalid multibulk length");
    PROTOCOL_ERROR(p, "*1x\r\n", "invalid multibulk length");
    PROTOCOL_ERROR(p, "*99999999999\r\n", "invalid multibulk length");
    PROTOCOL_ERROR(p, "*1\r\nPING\r\n", "expected '$', got 'P'");
    /* A multibulk's lines end in CRLF, however the request is split. */
    PROTOCOL_ERROR(p, "*1\n$4\r\nPING\r\n", "invalid multibulk length");
    PROTOCOL_ERROR(p, "*1\r\n$4\nPING\r\n", "invalid bulk length");
    PROTOCOL_ERROR(p, "*1\r\n$x\r\n", "invalid bulk length");
    PROTOCOL_ERROR(p, "*1\r\n$-1\r\n", "invalid bulk length");
    /* One byte over the default limit, 512 MiB: refused before any of it is read. */
    PROTOCOL_ERROR(p, "*2\r\n$3\r\nSET\r\n$536870913\r\n", "invalid bulk length");
    PROTOCOL_ERROR(p, "*1\r\n$4\r\nPINGxx\r\n", "expected CRLF after bulk string");
    PROTOCOL_ERROR(p, "*1\r\n$4\r\nPING\n", "expected CRLF after bulk string");
    PROTOCOL_ERROR(p, "get \"unterminated\r\n", "unbalanced quotes in request");
    PROTOCOL_ERROR(p, "get \"a\"b\r\n", "unbalanced quotes in request");

    char *line = malloc(70000);
    assert_non_null(line);
    memset(line, 'a', 70000);
    check_protocol_error(p, line, 70000, "too big inline request");
    memcpy(line, "*1\r\n$", 5);
    check_protocol_error(p, line, 70000, "too big bulk count string");
    free(line);
}

/* -m bounds every argument; an argument at the limit is fine. */
static void bulk_limit_option(void **state)
{
    evt_proc *p = *state;
    char *value = evt_random_body(1024, 3);
    client *c = connect_to(p);
    evt_bytes b = {0};
    add_request(&b, 3, (const char *const[]){"SET", "k", value}, (size_t[]){3, 1, 1024});
    evt_send_all(c->fd, b.p, b.len);   /* 1024 bytes: the limit */
    evt_bytes_free(&b);
    expect(c, "+OK\r\n");
    disconnect(c);
    free(value);
    PROTOCOL_ERROR(p, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1025\r\n", "invalid bulk length");
}

static void expiry_is_real(void **state)
{
    client *c = connect_to(*state);
    CALL(c, "+OK\r\n", "SET", "short", "v", "PX", "100");
    CALL(c, "+OK\r\n", "SET", "long", "v", "EX", "100");
    CALL(c, "+OK\r\n", "SET", "swept", "v", "PX", "100");
    CALL(c, "+OK\r\n", "SET", "plain", "v");
    CALL(c, ":1\r\n", "EXPIRE", "plain", "1");
    CALL(c, "$1\r\nv\r\n", "GET", "short");
    CALL(c, ":4\r\n", "DBSIZE");
    usleep(250 * 1000);
    CALL(c, "$-1\r\n", "GET", "short");
    CALL(c, ":0\r\n", "EXISTS", "short");
    CALL(c, ":-2\r\n", "TTL", "short");
    CALL(c, ":2\r\n", "DBSIZE");   /* "swept" is not counted, though nobody asked for it */
    CALL(c, ":100\r\n", "TTL", "long");
    /* A SET without EX clears the old expiry; INCR keeps it. */
    CALL(c, "+OK\r\n", "SET", "long", "1");
    CALL(c, ":-1\r\n", "TTL", "long");
    CALL(c, "+OK\r\n", "SET", "n", "1", "EX", "100");
    CALL(c, ":2\r\n", "INCR", "n");
    CALL(c, ":100\r\n", "TTL", "n");
    /* A time in the past deletes at once. */
    CALL(c, ":1\r\n", "EXPIRE", "n", "0");
    CALL(c, ":0\r\n", "EXISTS", "n");
    usleep(1100 * 1000);
    CALL(c, "$-1\r\n", "GET", "plain");
    disconnect(c);
}

/* Inline commands pipelined in one write, mixed with a multibulk, blank lines, quotes
 * and a line of many words: all answered in order, as when they come one by one. */
static void pipelined_inline_commands(void **state)
{
    client *c = connect_to(*state);
    send_text(c, "PING\r\nSET a b\r\nGET a\r\n\r\n\nECHO  x\r\n"
                 "set q 'hi there'\r\nget q\r\n*1\r\n$4\r\nPING\r\n"
                 "EXISTS a a a a a a a a a a a a a a a a a a a a\r\n"
                 "\tMGET a q nope \n"
                 "NOSUCH x\r\nDBSIZE\r\n");
    expect(c, "+PONG\r\n");
    expect(c, "+OK\r\n");
    expect(c, "$1\r\nb\r\n");
    expect(c, "$1\r\nx\r\n");
    expect(c, "+OK\r\n");
    expect(c, "$8\r\nhi there\r\n");
    expect(c, "+PONG\r\n");
    expect(c, ":20\r\n");
    expect(c, "*3\r\n$1\r\nb\r\n$8\r\nhi there\r\n$-1\r\n");
    expect(c, "-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n");
    expect(c, ":2\r\n");
    disconnect(c);
}

/* The server's resident memory in KiB (VmRSS in /proc/PID/status). */
static long server_rss_kib(const evt_proc *p)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)p->pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    assert_true(kib > 0);
    return kib;
}

/* Keys that expire are removed by the sweep once a second even when no request
 * touches them (nor DBSIZE, which counts only the living): their memory comes back
 * while the client says nothing at all. */
static void expired_keys_are_swept_unasked(void **state)
{
    evt_proc *p = *state;
    client *c = connect_to(p);
    enum { KEYS = 16, VALUE = 1 << 20 };   /* large enough that free() unmaps each */
    char *value = evt_random_body(VALUE, 7);
    long before = server_rss_kib(p);
    for (int i = 0; i < KEYS; i++) {
        char key[16];
        snprintf(key, sizeof key, "big%d", i);
        evt_bytes b = {0};
        add_request(&b, 5, (const char *const[]){"SET", key, value, "PX", "200"},
                    (size_t[]){3, strlen(key), VALUE, 2, 3});
        evt_send_all(c->fd, b.p, b.len);
        evt_bytes_free(&b);
        expect(c, "+OK\r\n");
    }
    long full = server_rss_kib(p);
    assert_true(full - before > KEYS * 1024 * 3 / 4);
    usleep(1600 * 1000);   /* past the expiry and at least one sweep; no request */
    long swept = server_rss_kib(p);
    if (full - swept < KEYS * 1024 * 3 / 4)
        fail_msg("VmRSS %ld kB with the keys, %ld kB after they expired: not swept", full, swept);
    CALL(c, ":0\r\n", "DBSIZE");
    free(value);
    disconnect(c);
}

/* A client that pipelines many GETs of a large value and reads nothing must not make
 * the server queue every reply: a batch run from the input buffer stops at the output
 * high-water mark, and then the library stops reading.  Every reply still arrives. */
static void unread_big_replies_stay_bounded(void **state)
{
    evt_proc *p = *state;
    client *c = connect_to(p);
    enum { VALUE = 1 << 20, GETS = 100 };
    char *value = evt_random_body(VALUE, 9);
    evt_bytes b = {0};
    add_request(&b, 3, (const char *const[]){"SET", "v", value}, (size_t[]){3, 1, VALUE});
    evt_send_all(c->fd, b.p, b.len);
    expect(c, "+OK\r\n");
    long before = server_rss_kib(p);
    evt_bytes_reset(&b);
    for (int i = 0; i < GETS; i++)   /* 2 KiB of requests, in one write: one batch */
        add_request(&b, 2, (const char *const[]){"GET", "v"}, NULL);
    evt_send_all(c->fd, b.p, b.len);
    usleep(300 * 1000);   /* the server runs what it will before the client reads */
    long queued = server_rss_kib(p) - before;
    if (queued > 16 * 1024)
        fail_msg("%ld kB more resident with %d MiB of replies unread: not bounded", queued, GETS);
    evt_bytes_reset(&b);
    evt_bytes_adds(&b, "$1048576\r\n");
    evt_bytes_add(&b, value, VALUE);
    evt_bytes_adds(&b, "\r\n");
    for (int i = 0; i < GETS; i++)
        expect_bytes(c, b.p, b.len);
    evt_bytes_free(&b);
    free(value);
    disconnect(c);
}

/* QUIT answers +OK and closes; what was pipelined after it never runs. */
static void quit_closes_after_reply(void **state)
{
    client *c = connect_to(*state);
    send_text(c, "*1\r\n$4\r\nQUIT\r\n*3\r\n$3\r\nSET\r\n$1\r\nq\r\n$1\r\nx\r\n");
    expect(c, "+OK\r\n");
    assert_true(closed_by_server(c));
    disconnect(c);
    c = connect_to(*state);
    send_text(c, "EXISTS q\r\nquit\r\n");
    expect(c, ":0\r\n");
    expect(c, "+OK\r\n");
    assert_true(closed_by_server(c));
    disconnect(c);
}

/* Empty requests ("*0", "*-1", blank lines) get no reply, as in redis. */
static void empty_requests_are_ignored(void **state)
{
    client *c = connect_to(*state);
    send_text(c, "*0\r\n*-1\r\n\r\n*1\r\n$4\r\nPING\r\n");
    expect(c, "+PONG\r\n");
    disconnect(c);
}

/* The clients_input_bytes figure of an INFO reply; -1 when missing. */
static long held_input(const char *info)
{
    const char *p = strstr(info, "clients_input_bytes:");
    return p ? strtol(p + strlen("clients_input_bytes:"), NULL, 10) : -1;
}

/* INFO reports the loop's memory account: the clients and what they hold. */
static void info_reports_client_memory(void **state)
{
    client *other = connect_to(*state);
    send_text(other, "SET partial");   /* a partial line, held by the server */
    client *c = connect_to(*state);
    evt_bytes reply = {0};
    /* The other client's bytes reach the server in their own time: ask until they did. */
    for (int tries = 0; tries < 200; tries++) {
        evt_bytes_reset(&reply);
        send_text(c, "INFO\r\n");
        read_reply_into(c, &reply);
        evt_bytes_add(&reply, "", 1);
        if (held_input(reply.p) >= 11)
            break;
        usleep(10000);
    }
    assert_non_null(strstr(reply.p, "connected_clients:2\r\n"));
    /* The partial line, and whatever of INFO's own request is still in its buffer. */
    assert_true(held_input(reply.p) >= 11);
    assert_true(held_input(reply.p) <= 11 + 6);
    assert_non_null(strstr(reply.p, "clients_memory_budget:"));
    evt_bytes_free(&reply);
    disconnect(c);
    disconnect(other);
}

/* --collect takes a plain number of seconds from 0 to 1; anything else is a usage
 * error before the server listens. */
static void collect_option_is_checked(void **state)
{
    (void)state;
    static const char *const bad[] = {"abc", "-1", "nan", "inf", "2", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[512];
        const char *args[] = {"--collect", bad[i], NULL};
        int status = evt_run_example("resp_server", args, out, sizeof out);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 2)
            fail_msg("--collect '%s': status %d, said: %s", bad[i], status, out);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(redis_cli_runs_every_command, start, stop),
        cmocka_unit_test_setup_teardown(redis_cli_stores_binary_values, start, stop),
        cmocka_unit_test_setup_teardown(redis_cli_pipe_mode, start, stop),
        cmocka_unit_test_setup_teardown(redis_benchmark_runs, start, stop),
        cmocka_unit_test_setup_teardown(binary_keys_and_values, start, stop),
        cmocka_unit_test_setup_teardown(empty_values_and_keys, start, stop),
        cmocka_unit_test_setup_teardown(ten_megabyte_value, start, stop),
        cmocka_unit_test_setup_teardown(twenty_thousand_pipelined, start, stop),
        cmocka_unit_test_setup_teardown(pipelined_big_replies, start, stop),
        cmocka_unit_test_setup_teardown(one_byte_at_a_time, start, stop),
        cmocka_unit_test_setup_teardown(inline_commands, start, stop),
        cmocka_unit_test_setup_teardown(pipelined_inline_commands, start, stop),
        cmocka_unit_test_setup_teardown(command_errors, start, stop),
        cmocka_unit_test_setup_teardown(protocol_errors, start, stop),
        cmocka_unit_test_setup_teardown(bulk_limit_option, start_small_bulk, stop),
        cmocka_unit_test_setup_teardown(expiry_is_real, start, stop),
        cmocka_unit_test_setup_teardown(expired_keys_are_swept_unasked, start_without_quarantine,
                                        stop),
        cmocka_unit_test_setup_teardown(unread_big_replies_stay_bounded, start, stop),
        cmocka_unit_test_setup_teardown(quit_closes_after_reply, start, stop),
        cmocka_unit_test_setup_teardown(empty_requests_are_ignored, start, stop),
        cmocka_unit_test_setup_teardown(info_reports_client_memory, start, stop),
        cmocka_unit_test_setup_teardown(inline_commands, start_without_collect, stop),
        cmocka_unit_test(collect_option_is_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

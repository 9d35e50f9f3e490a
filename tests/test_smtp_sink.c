/*
 * Integration tests of examples/smtp_sink with real clients: Python's smtplib
 * (tests/smtp_client.py) and swaks deliver messages that must arrive byte for
 * byte, printed as smtpd.DebuggingServer prints them or in a Maildir; raw
 * sockets check pipelining, the framing corner cases and every error reply.
 */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define OUT_MAX (1u << 20)

/* The server of the current test and a scratch directory, both cleaned up by the
 * teardown even when an assertion failed. */
static evt_proc server = {.pid = -1};
static char scratch[64];
static char host[256];   /* the name the server's replies carry: this host's */
/* What the server printed while a tool ran: a server that prints a large message
 * must not block on a full pipe while the test waits for the client. */
static evt_bytes printed_early;

static int teardown(void **state)
{
    (void)state;
    /* The server must exit 0 on SIGTERM: a crash, or a leak under the sanitizers,
     * fails the test that ran it. */
    int status = 0;
    if (server.pid > 0)
        status = evt_stop_server(&server, SIGTERM);
    server.pid = -1;
    if (status != 0)
        fprintf(stderr, "# smtp_sink ended with status %#x\n", (unsigned)status);
    evt_bytes_free(&printed_early);
    if (scratch[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
        if (system(cmd) != 0)
            return -1;
        scratch[0] = '\0';
    }
    return status == 0 ? 0 : -1;
}

static int setup(void **state)
{
    (void)state;
    if (gethostname(host, sizeof host) < 0)
        return -1;
    host[sizeof host - 1] = '\0';
    snprintf(scratch, sizeof scratch, "/tmp/evc-smtp-XXXXXX");
    return mkdtemp(scratch) ? 0 : -1;
}

static void start(const char *const *args)
{
    evt_spawn_server(&server, "smtp_sink", args);
}

static const char *src_path(const char *rel, char *buf, size_t cap)
{
    const char *srcdir = getenv("EVC_SRCDIR");
    snprintf(buf, cap, "%s/%s", srcdir ? srcdir : ".", rel);
    return buf;
}

/* Runs argv (a tool such as python3 or swaks) with stdout into out (NUL-terminated),
 * stderr to ours, keeping what the server prints meanwhile in printed_early; kills
 * the tool after 30 s.  Returns its exit status, -1 if it was killed. */
static int run_tool(const char *const *argv, char *out, size_t cap, size_t *out_len)
{
    int pipefd[2];
    assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], STDOUT_FILENO);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    size_t got = 0;
    for (int waited = 0; got + 1 < cap && waited < 30000;) {
        struct pollfd pfd[2] = {{.fd = pipefd[0], .events = POLLIN},
                                {.fd = server.out_fd, .events = POLLIN}};
        int r = poll(pfd, 2, 100);
        if (r == 0) {
            waited += 100;
            continue;
        }
        if (pfd[1].revents & POLLIN) {
            char buf[65536];
            ssize_t n = read(server.out_fd, buf, sizeof buf);
            if (n > 0)
                evt_bytes_add(&printed_early, buf, (size_t)n);
        }
        if (pfd[0].revents) {
            ssize_t n = read(pipefd[0], out + got, cap - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
    }
    out[got] = '\0';
    if (out_len)
        *out_len = got;
    close(pipefd[0]);
    int status;
    for (int i = 0; i < 3000; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

/* Reads up to n bytes of the server's stdout, waiting 10 s at most for each piece;
 * returns how many came. */
static size_t read_server_output(char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd pfd = {.fd = server.out_fd, .events = POLLIN};
        if (poll(&pfd, 1, 10000) <= 0)
            break;
        ssize_t r = read(server.out_fd, buf + got, n - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* Asserts that the server printed exactly `expected` and nothing more (yet). */
static void assert_printed(const char *expected, size_t len)
{
    char *got = malloc(len + printed_early.len + 1);
    assert_non_null(got);
    size_t n = printed_early.len;
    if (n)
        memcpy(got, printed_early.p, n);
    evt_bytes_free(&printed_early);
    if (n < len)
        n += read_server_output(got + n, len - n);
    got[n] = '\0';
    if (n != len || memcmp(got, expected, len) != 0) {
        fprintf(stderr, "# expected %zu bytes:\n%s\n# got %zu:\n%s\n", len, expected, n, got);
        free(got);
        fail_msg("the printed messages differ");
    }
    free(got);
    struct pollfd pfd = {.fd = server.out_fd, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 100), 0);
}

/* Replaces each "%H" of a template with the host name. */
static char *with_host(const char *template)
{
    size_t cap = strlen(template) * 2 + 64 * strlen(host) + 1;
    char *out = malloc(cap), *o = out;
    assert_non_null(out);
    for (const char *t = template; *t;) {
        if (t[0] == '%' && t[1] == 'H') {
            o += sprintf(o, "%s", host);
            t += 2;
        } else {
            *o++ = *t++;
        }
    }
    *o = '\0';
    return out;
}

/* Sends the whole script in one write, then reads the replies until the server
 * closes; asserts they are exactly `expected` (with "%H" for the host name) and
 * that the stream ended in order. */
static void converse(const char *script, const char *expected)
{
    int fd = evt_connect(server.host, server.port);
    evt_send_all(fd, script, strlen(script));
    char *got = malloc(OUT_MAX);
    assert_non_null(got);
    size_t n = 0;
    ssize_t r;
    while ((r = recv(fd, got + n, OUT_MAX - 1 - n, 0)) > 0 || (r < 0 && errno == EINTR))
        n += r > 0 ? (size_t)r : 0;
    int recv_errno = r < 0 ? errno : 0;
    got[n] = '\0';
    close(fd);
    char *want = with_host(expected);
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "# sent:\n%s# expected:\n%s# got:\n%s", script, want, got);
        free(got);
        free(want);
        fail_msg("the replies differ");
    }
    free(got);
    free(want);
    /* The server always ends with a FIN after its last reply, never with a reset. */
    assert_int_equal(recv_errno, 0);
}

#define GREETING "220 %H ESMTP evchat smtp_sink\r\n"
#define EHLO_REPLY "250-%H Hello c\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n250 PIPELINING\r\n"
#define OK "250 OK\r\n"
#define GO_AHEAD "354 Start mail input; end with <CRLF>.<CRLF>\r\n"
#define BYE "221 %H Service closing transmission channel\r\n"
#define FOLLOWS "---------- MESSAGE FOLLOWS ----------\n"
#define END "------------ END MESSAGE ------------\n"

/* ------------------------------------------------------------- smtplib */

static void smtplib_messages_print_as_debugging_server(void **state)
{
    (void)state;
    start(NULL);
    char script[512], port[16];
    snprintf(port, sizeof port, "%d", server.port);
    const char *argv[] = {"python3", src_path("tests/smtp_client.py", script, sizeof script),
                          "stdout", server.host, port, NULL};
    char *expected = malloc(OUT_MAX);
    assert_non_null(expected);
    size_t len;
    int status = run_tool(argv, expected, OUT_MAX, &len);
    if (status != 0)
        free(expected);
    assert_int_equal(status, 0);
    assert_true(len > 1000);
    assert_printed(expected, len);
    free(expected);
}

static void smtplib_messages_arrive_in_maildir(void **state)
{
    (void)state;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/Maildir", scratch);
    start((const char *const[]){"-d", dir, NULL});
    char script[512], port[16], out[4096];
    snprintf(port, sizeof port, "%d", server.port);
    const char *argv[] = {"python3", src_path("tests/smtp_client.py", script, sizeof script),
                          "maildir", server.host, port, dir, NULL};
    assert_int_equal(run_tool(argv, out, sizeof out, NULL), 0);
    assert_string_equal(out, "ok\n");
    /* Nothing is printed in Maildir mode. */
    struct pollfd pfd = {.fd = server.out_fd, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 100), 0);
}

static void smtplib_sees_both_size_refusals(void **state)
{
    (void)state;
    start((const char *const[]){"-s", "1000", NULL});
    char script[512], port[16], out[4096];
    snprintf(port, sizeof port, "%d", server.port);
    const char *argv[] = {"python3", src_path("tests/smtp_client.py", script, sizeof script),
                          "size", server.host, port, "1000", NULL};
    assert_int_equal(run_tool(argv, out, sizeof out, NULL), 0);
    assert_string_equal(out, "ok\n");
    /* Only the message at the limit was printed. */
    char printed[2048];
    size_t n = (size_t)sprintf(printed, FOLLOWS "Subject: fits\nX-Peer: 127.0.0.1\n\n");
    memset(printed + n, 'y', 981);
    n += 981;
    n += (size_t)sprintf(printed + n, "\n" END);
    assert_printed(printed, n);
}

/* --------------------------------------------------------------- swaks */

/* tests/smtp_message.eml as swaks sends it: its LFs become CRLFs, and the CRLF of
 * swaks' "\r\n.\r\n" after the file's own last line break makes one empty line more. */
static char *swaks_message(size_t *len)
{
    char path[512];
    FILE *f = fopen(src_path("tests/smtp_message.eml", path, sizeof path), "rb");
    assert_non_null(f);
    char *msg = malloc(OUT_MAX);
    assert_non_null(msg);
    size_t n = 0;
    int c;
    while ((c = getc(f)) != EOF && n + 4 < OUT_MAX) {
        if (c == '\n')
            msg[n++] = '\r';
        msg[n++] = (char)c;
    }
    fclose(f);
    memcpy(msg + n, "\r\n", 2);
    *len = n + 2;
    return msg;
}

static int run_swaks(const char *extra, char *out, size_t cap)
{
    char data[600], port[16];
    snprintf(data, sizeof data, "@");
    src_path("tests/smtp_message.eml", data + 1, sizeof data - 1);
    snprintf(port, sizeof port, "%d", server.port);
    const char *argv[] = {"swaks", "--server", server.host, "--port", port,
                          "--from", "sender@example.org", "--to", "one@example.org,two@example.org",
                          "--data", data, extra, NULL};
    return run_tool(argv, out, cap, NULL);
}

static void swaks_pipelined_message_prints_byte_exact(void **state)
{
    (void)state;
    start(NULL);
    char *out = malloc(OUT_MAX);
    assert_non_null(out);
    int status = run_swaks("--pipeline", out, OUT_MAX);
    /* swaks shows the pipelined group: the commands go out before their replies. */
    bool pipelined = strstr(out, " -> DATA\n<-  250 OK") != NULL;
    free(out);
    assert_int_equal(status, 0);
    assert_true(pipelined);

    char path[512];
    FILE *f = fopen(src_path("tests/smtp_message.printed", path, sizeof path), "rb");
    assert_non_null(f);
    char expected[8192];
    size_t len = fread(expected, 1, sizeof expected, f);
    fclose(f);
    assert_printed(expected, len);
}

static void swaks_message_arrives_in_maildir(void **state)
{
    (void)state;
    char dir[128], new_dir[160];
    snprintf(dir, sizeof dir, "%s/Maildir", scratch);
    snprintf(new_dir, sizeof new_dir, "%s/new", dir);
    start((const char *const[]){"-d", dir, NULL});
    char *out = malloc(OUT_MAX);
    assert_non_null(out);
    int status = run_swaks("--pipeline", out, OUT_MAX);
    free(out);
    assert_int_equal(status, 0);

    DIR *d = opendir(new_dir);
    assert_non_null(d);
    struct dirent *e;
    char name[512] = "";
    int files = 0;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(name, sizeof name, "%s/%s", new_dir, e->d_name);
            files++;
        }
    closedir(d);
    assert_int_equal(files, 1);
    size_t want_len;
    char *want = swaks_message(&want_len);
    char *got = malloc(OUT_MAX);
    FILE *f = fopen(name, "rb");
    size_t got_len = f ? fread(got, 1, OUT_MAX, f) : 0;
    if (f)
        fclose(f);
    bool same = got_len == want_len && memcmp(got, want, want_len) == 0;
    free(got);
    free(want);
    assert_true(same);
}

/* ------------------------------------------------- pipelining and framing */

static void whole_session_in_one_write_is_answered_in_order(void **state)
{
    (void)state;
    start(NULL);
    /* Even the message rides in the same write as the commands around it: the
     * framing switches on bytes already read. */
    converse("EHLO c\r\nMAIL FROM:<a@x> SIZE=40 BODY=8BITMIME\r\nRCPT TO:<b@y>\r\n"
             "RCPT TO:<c@z>\r\nDATA\r\nSubject: p\r\n\r\n..dot\r\n.\r\n"
             "NOOP\r\nMAIL FROM:<>\r\nRCPT TO:<d@w>\r\nRSET\r\nQUIT\r\n",
             GREETING EHLO_REPLY OK OK OK GO_AHEAD OK OK OK OK OK BYE);
    const char printed[] = FOLLOWS "Subject: p\nX-Peer: 127.0.0.1\n\n.dot\n" END;
    assert_printed(printed, sizeof printed - 1);
}

static void message_ends_wherever_the_dot_line_is(void **state)
{
    (void)state;
    start(NULL);
    /* An empty message: the "." comes right after DATA's line.  Then lines ending
     * in a dot, a dot line right after such a line, and a CR before the final dot. */
    converse("HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n.\r\n"
             "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nA: b\r\n\r\nend.\r\nx..\r\n.\r\n"
             "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n.\r\n.\r\n"
             "QUIT\r\n",
             GREETING "250 %H\r\n" OK OK GO_AHEAD OK OK OK GO_AHEAD OK OK OK GO_AHEAD OK
             "500 Syntax error, command unrecognized\r\n" BYE);
    const char printed[] = FOLLOWS END FOLLOWS "A: b\nX-Peer: 127.0.0.1\n\nend.\nx..\n" END
                           FOLLOWS END;
    assert_printed(printed, sizeof printed - 1);
}

static void message_sent_one_byte_at_a_time(void **state)
{
    (void)state;
    start(NULL);
    const char *script = "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"
                         "S: 1\r\n\r\n..\r\nq.\r\n\r\n.\r\nQUIT\r\n";
    int fd = evt_connect(server.host, server.port);
    for (const char *p = script; *p; p++) {
        evt_send_all(fd, p, 1);
        usleep(500);
    }
    char got[4096];
    size_t n = evt_recv_all(fd, got, sizeof got - 1);
    got[n] = '\0';
    close(fd);
    char *want = with_host(GREETING EHLO_REPLY OK OK GO_AHEAD OK BYE);
    assert_string_equal(got, want);
    free(want);
    /* ".." is a stuffed "."; "q." ends a line, not the message. */
    const char printed[] = FOLLOWS "S: 1\nX-Peer: 127.0.0.1\n\n.\nq.\n" END;
    assert_printed(printed, sizeof printed - 1);
}

static void commands_after_quit_are_not_answered(void **state)
{
    (void)state;
    start(NULL);
    /* Everything, even a message, after QUIT is read and dropped; the 221 arrives
     * whole, followed by an orderly end of stream, not a reset. */
    char *script = malloc(300000);
    assert_non_null(script);
    size_t n = (size_t)sprintf(script, "EHLO c\r\nQUIT\r\nNOOP\r\nMAIL FROM:<a@x>\r\n"
                                       "RCPT TO:<b@y>\r\nDATA\r\n");
    memset(script + n, 'q', 250000);
    strcpy(script + n + 250000, "\r\n.\r\nNOOP\r\n");
    converse(script, GREETING EHLO_REPLY BYE);
    free(script);
    struct pollfd pfd = {.fd = server.out_fd, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 100), 0);
}

static void silent_client_gets_421(void **state)
{
    (void)state;
    start((const char *const[]){"-t", "200", NULL});
    /* A transaction left half done is dropped with the client. */
    converse("EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nSubject: unfinished\r\n",
             GREETING EHLO_REPLY OK OK GO_AHEAD
             "421 %H Service not available, closing transmission channel\r\n");
    struct pollfd pfd = {.fd = server.out_fd, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 100), 0);
}

/* ------------------------------------------------------------- errors */

static void commands_out_of_sequence_get_503(void **state)
{
    (void)state;
    start(NULL);
    converse("MAIL FROM:<a@x>\r\n"       /* before HELO */
             "EHLO c\r\nRCPT TO:<b@y>\r\n" /* before MAIL */
             "DATA\r\n"                    /* before MAIL */
             "MAIL FROM:<a@x>\r\nMAIL FROM:<a@x>\r\n" /* nested */
             "DATA\r\n"                    /* before RCPT */
             "RSET\r\nRCPT TO:<b@y>\r\n"   /* RSET ended the transaction */
             "MAIL FROM:<a@x>\r\nEHLO c\r\nRCPT TO:<b@y>\r\n" /* so does EHLO */
             "QUIT\r\n",
             GREETING "503 Bad sequence of commands\r\n" EHLO_REPLY
             "503 Bad sequence of commands\r\n503 Bad sequence of commands\r\n" OK
             "503 Bad sequence of commands\r\n503 Bad sequence of commands\r\n" OK
             "503 Bad sequence of commands\r\n" OK EHLO_REPLY "503 Bad sequence of commands\r\n"
             BYE);
}

static void syntax_errors_and_unsupported_commands(void **state)
{
    (void)state;
    start(NULL);
    converse("FOO\r\n\r\nHELO\r\nEHLO\r\nVRFY\r\nVRFY someone\r\nEXPN list\r\nNOOP x\r\nHELP\r\n"
             "EHLO c\r\nMAIL FROM:a@x\r\nMAIL TO:<a@x>\r\nMAIL FROM:<a@x> FOO=1\r\n"
             "MAIL FROM:<a@x> SIZE=1k\r\nMAIL FROM:<a@x>\r\nRCPT TO:<>\r\nRCPT TO:b@y\r\n"
             "RCPT TO:<b@y> NOTIFY=NEVER\r\nRCPT TO:<b@y>\r\nDATA now\r\nRSET x\r\n"
             "HELO c\r\nMAIL FROM:<a@x> SIZE=10\r\nQUIT\r\n",
             GREETING "500 Syntax error, command unrecognized\r\n"
             "500 Syntax error, command unrecognized\r\n"
             "501 Syntax: HELO hostname\r\n501 Syntax: EHLO hostname\r\n"
             "501 Syntax: VRFY <address>\r\n"
             "252 Cannot VRFY user, but will accept message and attempt delivery\r\n"
             "502 Command not implemented\r\n" OK
             "214 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY QUIT\r\n" EHLO_REPLY
             "501 Syntax: MAIL FROM:<address>\r\n501 Syntax: MAIL FROM:<address>\r\n"
             "555 MAIL FROM/RCPT TO parameters not recognized or not implemented\r\n"
             "501 Syntax error in parameters or arguments\r\n" OK
             "501 Syntax: RCPT TO:<address>\r\n501 Syntax: RCPT TO:<address>\r\n"
             "555 MAIL FROM/RCPT TO parameters not recognized or not implemented\r\n" OK
             "501 Syntax error in parameters or arguments\r\n"
             "501 Syntax error in parameters or arguments\r\n"
             "250 %H\r\n"   /* after plain HELO, MAIL takes no parameters */
             "555 MAIL FROM/RCPT TO parameters not recognized or not implemented\r\n" BYE);
}

static void size_over_the_limit_is_552(void **state)
{
    (void)state;
    start((const char *const[]){"-s", "100", NULL});
    char body[300];
    memset(body, 'z', sizeof body);
    memcpy(body + sizeof body - 6, "\r\n.\r\n", 6);   /* its NUL included */
    char script[1024];
    snprintf(script, sizeof script,
             "EHLO c\r\nMAIL FROM:<a@x> SIZE=101\r\nMAIL FROM:<a@x> SIZE=100\r\n"
             "RCPT TO:<b@y>\r\nDATA\r\n%s"   /* declared 100, sends 296: refused at the end */
             "RCPT TO:<b@y>\r\n"              /* the 552 ended the transaction */
             "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nS: ok\r\n\r\nfits\r\n.\r\nQUIT\r\n",
             body);
    converse(script, GREETING
             "250-%H Hello c\r\n250-SIZE 100\r\n250-8BITMIME\r\n250 PIPELINING\r\n"
             "552 Message size exceeds fixed maximum message size\r\n" OK OK GO_AHEAD
             "552 Message size exceeds fixed maximum message size\r\n"
             "503 Bad sequence of commands\r\n" OK OK GO_AHEAD OK BYE);
    const char printed[] = FOLLOWS "S: ok\nX-Peer: 127.0.0.1\n\nfits\n" END;
    assert_printed(printed, sizeof printed - 1);
}

static void long_line_gets_500_and_the_session_ends(void **state)
{
    (void)state;
    start(NULL);
    /* 536 bytes before the CRLF is the longest command (512 + 26 for SIZE=). */
    char script[2048], longest[537], too_long[700];
    memset(longest, 'n', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    memcpy(longest, "NOOP ", 5);
    memset(too_long, 'x', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    snprintf(script, sizeof script, "%s\r\nNOOP\r\n%s\r\nNOOP\r\n", longest, too_long);
    converse(script, GREETING OK OK "500 Line too long\r\n");
}

static void hundred_recipients_then_452(void **state)
{
    (void)state;
    start(NULL);
    char *script = malloc(8192), *expected = malloc(8192);
    assert_non_null(script);
    assert_non_null(expected);
    size_t s = (size_t)sprintf(script, "HELO c\r\nMAIL FROM:<a@x>\r\n");
    size_t e = (size_t)sprintf(expected, "%s%s%s", GREETING, "250 %H\r\n", OK);
    for (int i = 0; i < 101; i++) {
        s += (size_t)sprintf(script + s, "RCPT TO:<r%d@y>\r\n", i);
        e += (size_t)sprintf(expected + e, "%s", i < 100 ? OK : "452 Too many recipients\r\n");
    }
    sprintf(script + s, "DATA\r\n.\r\nQUIT\r\n");
    sprintf(expected + e, "%s%s%s", GO_AHEAD, OK, BYE);
    converse(script, expected);
    free(script);
    free(expected);
    const char printed[] = FOLLOWS END;
    assert_printed(printed, sizeof printed - 1);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(smtplib_messages_print_as_debugging_server, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(smtplib_messages_arrive_in_maildir, setup, teardown),
        cmocka_unit_test_setup_teardown(smtplib_sees_both_size_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(swaks_pipelined_message_prints_byte_exact, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(swaks_message_arrives_in_maildir, setup, teardown),
        cmocka_unit_test_setup_teardown(whole_session_in_one_write_is_answered_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(message_ends_wherever_the_dot_line_is, setup, teardown),
        cmocka_unit_test_setup_teardown(message_sent_one_byte_at_a_time, setup, teardown),
        cmocka_unit_test_setup_teardown(commands_after_quit_are_not_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(silent_client_gets_421, setup, teardown),
        cmocka_unit_test_setup_teardown(commands_out_of_sequence_get_503, setup, teardown),
        cmocka_unit_test_setup_teardown(syntax_errors_and_unsupported_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(size_over_the_limit_is_552, setup, teardown),
        cmocka_unit_test_setup_teardown(long_line_gets_500_and_the_session_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(hundred_recipients_then_452, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

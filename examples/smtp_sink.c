/*
 * smtp_sink: Python's smtpd.DebuggingServer -- the standard library's own
 * asynchat program -- on evchat.  It speaks enough ESMTP (RFC 5321, with SIZE,
 * 8BITMIME and PIPELINING) for any client to hand it mail, and prints each
 * message the way DebuggingServer does, or with -d DIR delivers it into a
 * Maildir.  Nothing is relayed.
 *
 * The chat does the framing in two modes, switched from found_terminator:
 *
 *   - commands: lines (EVC_EOL_CRLF_OR_LF), at most COMMAND_MAX bytes; a longer
 *     line reaches frame_too_long, which answers "500 Line too long" (the replies
 *     of the commands before it are written first), and the chat closes;
 *   - after DATA's 354: the message, ended by the "." line.  The bytes go to a
 *     collector of our own that dot-unstuffs them as they come and stops keeping
 *     them past the SIZE limit, so an oversized message costs no memory and is
 *     answered 552 once its end is seen.
 *
 * Pipelined commands need nothing special: each line is answered as it is
 * framed, in order, and a framing switch applies to bytes already read.
 *
 * Try it:   examples/smtp_sink &
 *           swaks --server 127.0.0.1:8025 --to you@example.org --pipeline
 *           python3 -c 'import smtplib; smtplib.SMTP("127.0.0.1", 8025).sendmail(
 *               "me@x", ["you@y"], "Subject: hi\r\n\r\n.dot\r\n")'
 */
#include "common.h"
#include "smtp_body.h"
#include "smtp_deliver.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* RFC 5321 4.5.3.1.4: a command line is at most 512 bytes with its CRLF; RFC 1870
 * lets MAIL grow by 26 for SIZE=.  The frame limit counts the line without CRLF. */
#define COMMAND_MAX (512 + 26 - 2)
#define DEFAULT_SIZE_LIMIT 33554432u   /* DebuggingServer's data_size_limit, 32 MiB */
#define MAX_RECIPIENTS 100             /* RFC 5321 4.5.3.1.8: at least 100 must be accepted */
#define IDLE_MS 300000u                /* RFC 5321 4.5.3.2.7: the server timeout, 5 minutes */
#define LINGER_SECONDS 2.0             /* after the last reply: the wait for the client's FIN */

/* What the whole server shares: read-only once serving starts, except the Maildir's
 * delivery count. */
struct sink {
    char host[256];           /* the name the greeting and replies carry */
    uint64_t size_limit;      /* longest message accepted (SIZE) */
    double idle_seconds;      /* a client silent this long gets 421 */
    smtp_maildir maildir;     /* with -d */
    bool to_maildir;
};

struct session {
    struct sink *sink;
    char peer[NI_MAXHOST];    /* the client's address, for X-Peer */
    bool greeted;             /* HELO or EHLO seen */
    bool extended;            /* ... and it was EHLO: MAIL parameters allowed */
    bool in_transaction;      /* MAIL accepted */
    unsigned recipients;      /* RCPTs accepted in this transaction */
    bool in_data;             /* between 354 and the "." line */
    smtp_body body;
    bool tls;                 /* STARTTLS done: the rest of the session is over TLS */
};

/* ------------------------------------------------------------------ replies */

/* Every reply is one push: pipelined commands get their replies in order because
 * each is queued before the next line is even framed.  A failed push (no memory,
 * output limit) leaves the session unable to answer: drop it. */
static void reply(evc_chat *chat, const char *fmt, ...) EVC_PRINTF(2, 3);
static void reply(evc_chat *chat, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text - 2, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n > sizeof text - 3)
        n = (int)sizeof text - 3;
    memcpy(text + n, "\r\n", 2);
    if (evc_chat_push(chat, text, (size_t)n + 2) < 0)
        evc_chat_close(chat);
}

/* The texts are RFC 5321's (4.2.2, 4.2.3), RFC 1870's for SIZE. */
#define R_DONE "250 OK"
#define R_UNRECOGNIZED "500 Syntax error, command unrecognized"
#define R_SYNTAX "501 Syntax error in parameters or arguments"
#define R_NOT_IMPLEMENTED "502 Command not implemented"
#define R_SEQUENCE "503 Bad sequence of commands"
#define R_TOO_MANY "452 Too many recipients"
#define R_LOCAL_ERROR "451 Requested action aborted: local error in processing"
#define R_TOO_BIG "552 Message size exceeds fixed maximum message size"
#define R_PARAMS "555 MAIL FROM/RCPT TO parameters not recognized or not implemented"

/* ------------------------------------------------------------ the framings */

/* The end of the message is a line holding only ".": "\r\n.\r\n" in the byte
 * stream, whose leading CRLF ends the message's last line.  An empty message is
 * the exception: its "." line comes right after the CRLF of "DATA", which the
 * command framing has already consumed, so "\r\n.\r\n" alone would miss it and
 * swallow the commands after it.  Hence a delimiter set: "\r\n.\r\n" (index 0),
 * and ".\r\n" (index 1) for a "." line whose CRLF before it was consumed
 * earlier.  The set takes the longest of matches ending at the same byte, so
 * ".\r\n" wins only where no CRLF precedes it in the frame; found_terminator
 * then knows from the collector's line_start whether it really began a line
 * (empty message, or right after a spurious match) or ended a line of text
 * ("Regards.\r\n"), which it hands back to the message and goes on.  Seeding
 * the framing with a CRLF the client never sent would need a way to push bytes
 * back into the input, which the chat rightly does not offer. */
enum { END_AFTER_CRLF = 0, END_AT_LINE_START = 1 };

static int expect_message(evc_chat *chat)
{
    static const char *const ends[] = {"\r\n.\r\n", ".\r\n"};
    static const size_t lens[] = {5, 3};
    /* The collector bounds memory by SIZE; no frame limit applies to a message. */
    evc_chat_set_max_frame(chat, 0);
    return evc_chat_set_terminator_any(chat, ends, lens, 2);
}

static int expect_commands(evc_chat *chat)
{
    evc_chat_set_max_frame(chat, COMMAND_MAX);
    return evc_chat_set_terminator_line(chat, EVC_EOL_CRLF_OR_LF);
}

/* ---------------------------------------------------------------- commands */

static void end_transaction(struct session *s)
{
    s->in_transaction = false;
    s->recipients = 0;
    s->in_data = false;
    smtp_body_reset(&s->body, s->sink->size_limit);
}

/* "FROM:" or "TO:" (any case), spaces, then "<path>": returns the text after the
 * '>' and the path in *path and *path_len, or NULL when the argument is malformed. */
static const char *parse_path(const char *arg, const char *keyword, const char **path,
                              size_t *path_len)
{
    size_t k = strlen(keyword);
    if (strncasecmp(arg, keyword, k) != 0)
        return NULL;
    arg += k;
    while (*arg == ' ')
        arg++;
    if (*arg != '<')
        return NULL;
    const char *close = strchr(arg, '>');
    if (!close)
        return NULL;
    *path = arg + 1;
    *path_len = (size_t)(close - arg - 1);
    return close + 1;
}

/* MAIL's ESMTP parameters: SIZE=<digits> (RFC 1870) and BODY=7BIT|8BITMIME
 * (RFC 6152), only after EHLO.  Returns the reply to give, NULL when all is well. */
static const char *check_mail_params(const struct session *s, const char *params)
{
    char copy[COMMAND_MAX + 1];
    snprintf(copy, sizeof copy, "%s", params);
    char *save = NULL;
    for (char *p = strtok_r(copy, " ", &save); p; p = strtok_r(NULL, " ", &save)) {
        if (!s->extended)
            return R_PARAMS;
        if (strncasecmp(p, "SIZE=", 5) == 0) {
            const char *digits = p + 5;
            if (*digits == '\0' || strspn(digits, "0123456789") != strlen(digits))
                return R_SYNTAX;
            errno = 0;
            unsigned long long size = strtoull(digits, NULL, 10);
            if (errno == ERANGE || size > s->sink->size_limit)
                return R_TOO_BIG;
        } else if (strcasecmp(p, "BODY=7BIT") != 0 && strcasecmp(p, "BODY=8BITMIME") != 0) {
            return R_PARAMS;
        }
    }
    return NULL;
}

static void cmd_helo(evc_chat *chat, struct session *s, const char *arg, bool extended)
{
    if (*arg == '\0') {
        reply(chat, "501 Syntax: %s hostname", extended ? "EHLO" : "HELO");
        return;
    }
    /* RFC 5321 4.1.4: a second HELO or EHLO resets the session as RSET does. */
    end_transaction(s);
    s->greeted = true;
    s->extended = extended;
    if (!extended) {
        reply(chat, "250 %s", s->sink->host);
        return;
    }
    reply(chat, "250-%s Hello %s", s->sink->host, arg);
    reply(chat, "250-SIZE %llu", (unsigned long long)s->sink->size_limit);
    reply(chat, "250-8BITMIME");
    if (example_tls_enabled() && !s->tls)
        reply(chat, "250-STARTTLS");
    reply(chat, "250 PIPELINING");
}

/* RFC 3207: "220", then TLS.  The reply goes out in the clear, and whatever the
 * client pipelined after the command is dropped by evc_chat_start_tls, never
 * read as if it had come over TLS.  The session starts over: the client
 * greets again. */
static void cmd_starttls(evc_chat *chat, struct session *s, const char *arg)
{
    if (!example_tls_enabled()) {
        reply(chat, R_UNRECOGNIZED);
        return;
    }
    if (*arg) {
        reply(chat, "501 Syntax: STARTTLS");
        return;
    }
    if (s->tls) {
        reply(chat, "503 TLS already active");
        return;
    }
    reply(chat, "220 2.0.0 Ready to start TLS");
    if (evc_chat_closed(chat))
        return;
    int rc = example_tls_start(chat, NULL);
    if (rc < 0) {
        fprintf(stderr, "smtp_sink: STARTTLS: %s\n", evc_strerror(rc));
        evc_chat_close(chat);
        return;
    }
    s->tls = true;
    end_transaction(s);
    s->greeted = false;
    s->extended = false;
}

static void cmd_mail(evc_chat *chat, struct session *s, const char *arg)
{
    if (!s->greeted || s->in_transaction) {
        reply(chat, R_SEQUENCE);
        return;
    }
    const char *path;
    size_t path_len;
    const char *params = parse_path(arg, "FROM:", &path, &path_len);
    if (!params) {
        reply(chat, "501 Syntax: MAIL FROM:<address>");
        return;
    }
    const char *refusal = check_mail_params(s, params);
    if (refusal) {
        reply(chat, "%s", refusal);
        return;
    }
    s->in_transaction = true;   /* "<>", the null reverse-path, is allowed */
    reply(chat, R_DONE);
}

static void cmd_rcpt(evc_chat *chat, struct session *s, const char *arg)
{
    if (!s->in_transaction) {
        reply(chat, R_SEQUENCE);
        return;
    }
    const char *path;
    size_t path_len;
    const char *params = parse_path(arg, "TO:", &path, &path_len);
    if (!params || path_len == 0) {
        reply(chat, "501 Syntax: RCPT TO:<address>");
        return;
    }
    if (params[strspn(params, " ")] != '\0') {
        reply(chat, R_PARAMS);
        return;
    }
    if (s->recipients >= MAX_RECIPIENTS) {
        reply(chat, R_TOO_MANY);
        return;
    }
    s->recipients++;
    reply(chat, R_DONE);
}

static void cmd_data(evc_chat *chat, struct session *s, const char *arg)
{
    if (*arg != '\0') {
        reply(chat, R_SYNTAX);
        return;
    }
    if (!s->in_transaction || s->recipients == 0) {
        reply(chat, R_SEQUENCE);
        return;
    }
    if (expect_message(chat) < 0) {
        evc_chat_close(chat);
        return;
    }
    smtp_body_reset(&s->body, s->sink->size_limit);
    s->in_data = true;
    reply(chat, "354 Start mail input; end with <CRLF>.<CRLF>");
}

/* Ends the session once the last reply is written.  Nothing after QUIT is answered:
 * the pause keeps frames already read from being delivered, and the lingering
 * close reads and drops what the client still sends, since closing with unread
 * input would reset the connection and could destroy the reply before the client
 * reads it. */
static void say_goodbye(evc_chat *chat)
{
    evc_chat_pause_reading(chat);
    if (evc_chat_shutdown_when_done(chat, LINGER_SECONDS) < 0)
        evc_chat_close(chat);
}

static void cmd_quit(evc_chat *chat, struct session *s)
{
    reply(chat, "221 %s Service closing transmission channel", s->sink->host);
    say_goodbye(chat);
}

static void run_command(evc_chat *chat, struct session *s, char *line)
{
    char *arg = line + strcspn(line, " ");
    if (*arg)
        *arg++ = '\0';
    while (*arg == ' ')
        arg++;
    /* Trailing spaces are no part of an argument ("RSET \r\n" is RSET). */
    for (size_t n = strlen(arg); n > 0 && arg[n - 1] == ' '; n--)
        arg[n - 1] = '\0';

    if (strcasecmp(line, "HELO") == 0 || strcasecmp(line, "EHLO") == 0) {
        cmd_helo(chat, s, arg, strcasecmp(line, "EHLO") == 0);
    } else if (strcasecmp(line, "MAIL") == 0) {
        cmd_mail(chat, s, arg);
    } else if (strcasecmp(line, "RCPT") == 0) {
        cmd_rcpt(chat, s, arg);
    } else if (strcasecmp(line, "DATA") == 0) {
        cmd_data(chat, s, arg);
    } else if (strcasecmp(line, "RSET") == 0) {
        if (*arg) {
            reply(chat, R_SYNTAX);
            return;
        }
        end_transaction(s);
        reply(chat, R_DONE);
    } else if (strcasecmp(line, "NOOP") == 0) {
        reply(chat, R_DONE);   /* RFC 5321 4.1.1.9: a parameter is allowed and ignored */
    } else if (strcasecmp(line, "VRFY") == 0) {
        if (*arg == '\0')
            reply(chat, "501 Syntax: VRFY <address>");
        else
            reply(chat, "252 Cannot VRFY user, but will accept message and attempt delivery");
    } else if (strcasecmp(line, "EXPN") == 0) {
        reply(chat, R_NOT_IMPLEMENTED);
    } else if (strcasecmp(line, "HELP") == 0) {
        reply(chat, "214 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY QUIT");
    } else if (strcasecmp(line, "QUIT") == 0) {
        cmd_quit(chat, s);
    } else if (strcasecmp(line, "STARTTLS") == 0) {
        cmd_starttls(chat, s, arg);
    } else {
        reply(chat, R_UNRECOGNIZED);
    }
}

/* ------------------------------------------------------------ the channel */

static void finish_message(evc_chat *chat, struct session *s)
{
    struct sink *sink = s->sink;
    if (smtp_body_too_big(&s->body)) {
        reply(chat, R_TOO_BIG);
    } else {
        /* smtp_sink is a debugging tool: it writes where it runs, in the loop. */
        int rc = sink->to_maildir
                     ? smtp_maildir_deliver(&sink->maildir, s->body.p, s->body.len)
                     : smtp_print_message(stdout, s->peer, s->body.p, s->body.len);
        if (rc < 0)
            fprintf(stderr, "smtp_sink: delivery failed: %s\n", evc_strerror(rc));
        reply(chat, rc < 0 ? R_LOCAL_ERROR : R_DONE);
    }
    end_transaction(s);
    if (expect_commands(chat) < 0)
        evc_chat_close(chat);
}

static void collect(evc_chat *chat, const char *bytes, size_t len, void *data)
{
    struct session *s = data;
    /* Command lines go to the library's collector, which enforces COMMAND_MAX
     * (-EMSGSIZE is followed by frame_too_long); message bytes to ours. */
    int rc = s->in_data ? smtp_body_take(&s->body, bytes, len)
                        : evc_chat_collect(chat, bytes, len);
    if (rc < 0 && rc != -EMSGSIZE)
        evc_chat_close(chat);
}

static void found_terminator(evc_chat *chat, void *data)
{
    struct session *s = data;
    if (s->in_data) {
        if (evc_chat_terminator_matched(chat) == END_AT_LINE_START && !s->body.line_start) {
            /* ".\r\n" ended a line of text, not the message: it is message bytes. */
            if (smtp_body_take(&s->body, ".\r\n", 3) < 0)
                evc_chat_close(chat);
            return;
        }
        /* The CRLF of "\r\n.\r\n" ends the message's last line. */
        if (evc_chat_terminator_matched(chat) == END_AFTER_CRLF &&
            smtp_body_take(&s->body, "\r\n", 2) < 0) {
            evc_chat_close(chat);
            return;
        }
        finish_message(chat, s);
        return;
    }

    size_t len;
    const char *bytes = evc_chat_incoming(chat, &len);
    char line[COMMAND_MAX + 1];
    if (len == 0 || memchr(bytes, '\0', len)) {
        reply(chat, R_UNRECOGNIZED);
        return;
    }
    memcpy(line, bytes, len);
    line[len] = '\0';
    run_command(chat, s, line);
}

static void line_too_long(evc_chat *chat, void *data)
{
    (void)data;
    /* The chat closes once this is written: the rest of the line cannot be told
     * from the commands after it. */
    reply(chat, "500 Line too long");
}

static void idle_timeout(evc_chat *chat, void *data)
{
    struct session *s = data;
    reply(chat, "421 %s Service not available, closing transmission channel", s->sink->host);
    say_goodbye(chat);
}

static void session_destroy(evc_chat *chat, void *data)
{
    (void)chat;
    struct session *s = data;
    smtp_body_reset(&s->body, s->sink->size_limit);
    free(s);
}

static const struct evc_chat_ops smtp_channel = {
    .collect_incoming_data = collect,
    .found_terminator = found_terminator,
    .frame_too_long = line_too_long,
    .handle_timeout = idle_timeout,
    .on_destroy = session_destroy,
};

static void accept_client(evc_server *server, int fd, const struct sockaddr *peer,
                          socklen_t peer_len, void *data)
{
    struct ev_loop *loop = evc_server_loop(server);
    struct session *s = calloc(1, sizeof *s);
    if (!s) {
        close(fd);
        return;
    }
    s->sink = data;
    smtp_body_reset(&s->body, s->sink->size_limit);
    /* X-Peer is the address alone, as DebuggingServer prints peer[0]. */
    if (peer->sa_family == AF_UNIX ||
        getnameinfo(peer, peer_len, s->peer, sizeof s->peer, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(s->peer, sizeof s->peer, "%s", peer->sa_family == AF_UNIX ? "unix" : "?");

    evc_chat *chat = evc_chat_new(loop, fd, &smtp_channel, s);
    if (!chat) {
        free(s);
        close(fd);
        return;
    }
    evc_chat_set_timeout(chat, s->sink->idle_seconds);
    /* A command line, or a whole DATA body, must be complete within twice the
     * idle time (10 minutes by default: RFC 5321's DATA termination timeout),
     * however slowly it trickles in; the same 421 answers it. */
    evc_chat_set_frame_deadline(chat, 2 * s->sink->idle_seconds);
    if (expect_commands(chat) < 0) {
        evc_chat_close(chat);   /* on_destroy frees s */
        return;
    }
    reply(chat, "220 %s ESMTP evchat smtp_sink", s->sink->host);
}

static const struct evc_server_ops smtp_server_ops = {
    .handle_accepted = accept_client,
};

static void usage(const char *argv0)
{
    printf("usage: %s [-b ADDR] [-p PORT] [-d DIR] [-s BYTES] [-t MS]\n"
           "  an SMTP sink: prints every message it is sent, like Python's smtpd.DebuggingServer\n"
           "  -b, --bind ADDR      address (host, IP or unix:/path; default 127.0.0.1)\n"
           "  -p, --port PORT      port (default 8025; 0 picks a free one)\n"
           "  -d, --maildir DIR    deliver into the Maildir DIR instead of printing\n"
           "  -s, --size BYTES     largest message accepted (default %u)\n"
           "  -t, --timeout MS     idle time before a client is dropped with 421 (default %u)\n"
           EXAMPLE_LOOP_HELP
           "  --cert FILE --key FILE  offer STARTTLS with this certificate (chain) and key\n"
           "  -h, --help           this text\n",
           argv0, DEFAULT_SIZE_LIMIT, IDLE_MS);
}

static unsigned long long parse_number(const char *argv0, const char *what, const char *text,
                                       unsigned long long min, unsigned long long max)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(text, &end, 10);
    if (*text == '\0' || *text == '-' || *end != '\0' || errno || n < min || n > max) {
        fprintf(stderr, "%s: bad %s '%s'\n", argv0, what, text);
        exit(2);
    }
    return n;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},       {"bind", required_argument, NULL, 'b'},
        {"port", required_argument, NULL, 'p'}, {"maildir", required_argument, NULL, 'd'},
        {"size", required_argument, NULL, 's'}, {"timeout", required_argument, NULL, 't'},
        EXAMPLE_LOOP_LONGOPTS,
        EXAMPLE_TLS_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    example_opts opts = {.host = "127.0.0.1", .port = 8025};
    static struct sink sink = {.size_limit = DEFAULT_SIZE_LIMIT, .idle_seconds = IDLE_MS / 1000.0};
    const char *maildir = NULL;
    int c;
    example_tls_offer();
    while ((c = getopt_long(argc, argv, "hb:p:d:s:t:" EXAMPLE_LOOP_SHORTOPTS, longopts, NULL)) != -1) {
        if (example_tls_option(c, optarg) || example_loop_option(&opts, c, optarg, argv[0]))
            continue;
        switch (c) {
        case 'h':
            usage(argv[0]);
            return 0;
        case 'b':
            opts.host = optarg;
            break;
        case 'p':
            opts.port = (int)parse_number(argv[0], "port", optarg, 0, 65535);
            break;
        case 'd':
            maildir = optarg;
            break;
        case 's':
            sink.size_limit = parse_number(argv[0], "size", optarg, 1, UINT32_MAX);
            break;
        case 't':
            sink.idle_seconds =
                (double)parse_number(argv[0], "timeout", optarg, 1, 86400000) / 1000;
            break;
        default:
            fprintf(stderr, "try '%s --help'\n", argv[0]);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "%s: unexpected operand '%s'\n", argv[0], argv[optind]);
        return 2;
    }
    example_loop_start(&opts, argv[0]);
    example_tls_ready(argv[0]);
    if (gethostname(sink.host, sizeof sink.host) < 0)
        snprintf(sink.host, sizeof sink.host, "localhost");
    sink.host[sizeof sink.host - 1] = '\0';
    if (maildir) {
        int rc = smtp_maildir_open(&sink.maildir, maildir);
        if (rc < 0) {
            fprintf(stderr, "%s: cannot use Maildir %s: %s\n", argv[0], maildir, evc_strerror(rc));
            return 1;
        }
        sink.to_maildir = true;
    }
    return example_serve(&opts, &smtp_server_ops, &sink);
}

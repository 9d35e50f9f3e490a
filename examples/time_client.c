/*
 * time_client: asks the time server for the time, asynchronously.
 *
 * A chat made without an fd connects with evc_chat_connect; the request is
 * pushed before the connection completes and goes out when it does.  The
 * reply is one "\r\n"-terminated line, which the default collector keeps for
 * evc_chat_incoming().  Exit status: 0 with a reply printed, 1 otherwise.
 */
#include "common.h"

#include <stdio.h>
#include <string.h>

struct client {
    int status;          /* the process exit status */
};

static void print_reply(evc_chat *chat, void *data)
{
    struct client *client = data;
    size_t len;
    const char *line = evc_chat_incoming(chat, &len);
    if (!line)
        line = "";              /* an empty reply */
    printf("%.*s\n", (int)len, line);
    client->status = 0;
    evc_chat_close(chat);
}

static void report_error(evc_chat *chat, int err, void *data)
{
    (void)data;
    char why[256];
    if (evc_chat_tls_error(chat, why, sizeof why) > 0)
        fprintf(stderr, "time_client: TLS: %s\n", why);
    fprintf(stderr, "time_client: %s\n", evc_strerror(err));
    evc_chat_close(chat);
}

static void report_close(evc_chat *chat, void *data)
{
    (void)data;
    fprintf(stderr, "time_client: the server closed without a reply\n");
    evc_chat_close(chat);
}

static const struct evc_chat_ops client_ops = {
    .found_terminator = print_reply,
    .handle_error = report_error,
    .handle_close = report_close,
};

int main(int argc, char **argv)
{
    example_opts opts;
    example_tls_offer();   /* --cert/--key, --tls */
    example_parse(&opts, argc, argv, "127.0.0.1", 10001, " [REQUEST_TEXT]");
    struct sockaddr_storage ss;
    socklen_t len;
    example_resolve(&opts, &ss, &len);

    struct ev_loop *loop = ev_default_loop(0);
    struct client client = {.status = 1};
    evc_chat *chat = evc_chat_new(loop, -1, &client_ops, &client);
    if (!chat) {
        perror("time_client");
        return 1;
    }
    evc_chat_set_terminator(chat, "\r\n");
    evc_chat_set_timeout(chat, 10.0);
    int rc = evc_chat_connect(chat, (struct sockaddr *)&ss, len);
    if (rc < 0) {
        fprintf(stderr, "time_client: connect: %s\n", evc_strerror(rc));
        evc_chat_close(chat);
    } else if ((rc = example_tls_start(chat, opts.host)) < 0) {
        /* --tls: the handshake follows the connect; the request waits for it. */
        fprintf(stderr, "time_client: TLS: %s\n", evc_strerror(rc));
        evc_chat_close(chat);
    } else {
        evc_chat_pushf(chat, "%s\r\n\r\n", opts.argc > 0 ? opts.argv[0] : "what time is it?");
    }
    ev_run(loop, 0);
    ev_loop_destroy(loop);
    example_tls_cleanup();
    return client.status;
}

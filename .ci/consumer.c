/*
 * A program built against the installed libevchat-dev package with nothing but
 * `pkg-config --cflags --libs evchat` (see .ci/run): an echo of one line over
 * loopback, a server chat and a client chat on one loop.  It checks that the
 * library it runs with is the release whose header it was compiled with.
 * Exits 0 when the line came back.
 */
#include <ev.h>
#include <evchat.h>

#include <stdio.h>
#include <string.h>

static char echoed[64];

/* Server side: each line goes back with its terminator. */
static void server_found(evc_chat *c, void *data)
{
    (void)data;
    size_t len;
    const char *line = evc_chat_incoming(c, &len);
    evc_chat_push(c, line, len);
    evc_chat_push_str(c, "\r\n");
    evc_chat_close_when_done(c);
}

static const struct evc_chat_ops server_chat = {.found_terminator = server_found};

static void accepted(evc_server *s, int fd, const struct sockaddr *a, socklen_t l, void *data)
{
    (void)a, (void)l, (void)data;
    evc_chat *c = evc_chat_new(evc_server_loop(s), fd, &server_chat, NULL);
    if (c)
        evc_chat_set_terminator(c, "\r\n");
}

/* Client side: the echoed line ends the run. */
static void client_found(evc_chat *c, void *server)
{
    size_t len;
    const char *line = evc_chat_incoming(c, &len);
    snprintf(echoed, sizeof echoed, "%.*s", (int)len, line);
    evc_chat_close(c);
    evc_server_close(server);
}

static const struct evc_chat_ops client_chat = {.found_terminator = client_found};

int main(void)
{
    char built[32];
    snprintf(built, sizeof built, "%d.%d.%d", EVC_VERSION_MAJOR, EVC_VERSION_MINOR, EVC_VERSION_PATCH);
    if (strcmp(built, evc_version()) != 0) {
        fprintf(stderr, "consumer: compiled with evchat %s, running %s\n", built, evc_version());
        return 1;
    }
    struct ev_loop *loop = ev_default_loop(0);
    static const struct evc_server_ops server_ops = {.handle_accepted = accepted};
    evc_server *s = evc_server_new(loop, "127.0.0.1:0", 0, &server_ops, NULL);
    char addr[EVC_ADDRSTRLEN];
    if (!s || evc_server_address(s, addr, sizeof addr) < 0) {
        perror("consumer: evc_server_new");
        return 1;
    }
    evc_chat *c = evc_chat_new(loop, -1, &client_chat, s);
    int err = c ? evc_chat_connect_addr(c, addr) : -1;
    if (err < 0) {
        fprintf(stderr, "consumer: connect %s: %s\n", addr, evc_strerror(err));
        return 1;
    }
    evc_chat_set_terminator(c, "\r\n");
    evc_chat_push_str(c, "hello evchat\r\n");
    ev_run(loop, 0);
    if (strcmp(echoed, "hello evchat") != 0) {
        fprintf(stderr, "consumer: echoed \"%s\"\n", echoed);
        return 1;
    }
    printf("consumer: evchat %s echoed \"%s\" over %s\n", evc_version(), echoed, addr);
    return 0;
}

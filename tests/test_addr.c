/* Tests of address text: parse and format round trips for v4, v6 and unix, every
 * rejection, and formatting into buffers of exact sizes without overflow. */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

/* A name the DNS root guarantees never exists (RFC 6761), answered locally. */
#define NO_SUCH_HOST "no-such-host.invalid"

/* Formats ss and asserts the text and the returned length. */
static void assert_formats_as(const struct sockaddr_storage *ss, socklen_t len, const char *want)
{
    char text[EVC_ADDRSTRLEN];
    int n = evc_addr_format((const struct sockaddr *)ss, len, text, sizeof text);
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(text, want);
}

/* Parses text, formats the result and expects the same text back. */
static void assert_round_trip(const char *text)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    assert_int_equal(evc_addr_parse(text, &ss, &len), 0);
    assert_formats_as(&ss, len, text);
}

static void test_parse_ipv4(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    assert_int_equal(evc_addr_parse("127.0.0.1:5556", &ss, &len), 0);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
    assert_int_equal(sin->sin_family, AF_INET);
    assert_int_equal(ntohs(sin->sin_port), 5556);
    assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
    assert_formats_as(&ss, len, "127.0.0.1:5556");
}

static void test_parse_ipv6(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    assert_int_equal(evc_addr_parse("[::1]:80", &ss, &len), 0);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
    assert_int_equal(sin6->sin6_family, AF_INET6);
    assert_int_equal(ntohs(sin6->sin6_port), 80);
    assert_memory_equal(&sin6->sin6_addr, &in6addr_loopback, sizeof in6addr_loopback);
    assert_formats_as(&ss, len, "[::1]:80");
}

static void test_round_trips(void **state)
{
    (void)state;
    assert_round_trip("0.0.0.0:0");
    assert_round_trip("255.255.255.255:65535");
    assert_round_trip("10.1.2.3:8080");
    assert_round_trip("[::]:0");
    assert_round_trip("[2001:db8::42]:65535");
    assert_round_trip("[::ffff:1.2.3.4]:7");
    assert_round_trip("unix:/tmp/evchat.sock");
    assert_round_trip("unix:relative.sock");
    assert_round_trip("unix:@abstract-name");
}

static void test_parse_unix_path(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    assert_int_equal(evc_addr_parse("unix:/run/x.sock", &ss, &len), 0);
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&ss;
    assert_int_equal(sun->sun_family, AF_UNIX);
    assert_string_equal(sun->sun_path, "/run/x.sock");
    /* The length counts the path and its NUL, as bind(2) expects. */
    assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + strlen("/run/x.sock") + 1);
}

static void test_parse_unix_abstract(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    assert_int_equal(evc_addr_parse("unix:@chat", &ss, &len), 0);
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&ss;
    assert_int_equal(sun->sun_family, AF_UNIX);
    /* Abstract: a leading NUL, then exactly the name; no terminator is counted. */
    assert_int_equal(sun->sun_path[0], '\0');
    assert_memory_equal(sun->sun_path + 1, "chat", 4);
    assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 1 + 4);
}

static void test_unix_path_limits(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    size_t cap = sizeof(((struct sockaddr_un *)0)->sun_path);
    char text[256];

    /* The longest pathname that fits leaves one byte of sun_path for its NUL. */
    memcpy(text, "unix:/", 6);
    memset(text + 6, 'p', cap - 2);
    text[6 + cap - 2] = '\0';
    assert_int_equal(strlen(text) - 5, cap - 1);
    assert_int_equal(evc_addr_parse(text, &ss, &len), 0);
    assert_round_trip(text);
    assert_true(strlen(text) < EVC_ADDRSTRLEN);
    /* One more byte does not fit. */
    memcpy(text + 6 + cap - 2, "p", 2);
    assert_int_equal(evc_addr_parse(text, &ss, &len), -EINVAL);
    assert_int_equal(evc_addr_from_host_port(text, 0, &ss, &len), -EINVAL);

    /* An abstract name has no NUL, so it may fill sun_path after its leading NUL. */
    memcpy(text, "unix:@", 6);
    memset(text + 6, 'a', cap - 1);
    text[6 + cap - 1] = '\0';
    assert_int_equal(evc_addr_parse(text, &ss, &len), 0);
    assert_int_equal(len, sizeof(struct sockaddr_un));
    assert_round_trip(text);
    assert_true(strlen(text) < EVC_ADDRSTRLEN);
    memcpy(text + 6 + cap - 1, "a", 2);
    assert_int_equal(evc_addr_parse(text, &ss, &len), -EINVAL);
}

static void test_parse_name(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    assert_int_equal(evc_addr_parse("localhost:25", &ss, &len), 0);
    /* localhost may be either family; whichever comes first, it is loopback. */
    char text[EVC_ADDRSTRLEN];
    assert_true(evc_addr_format((struct sockaddr *)&ss, len, text, sizeof text) > 0);
    assert_true(strcmp(text, "127.0.0.1:25") == 0 || strcmp(text, "[::1]:25") == 0);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",                       /* nothing */
        ":80",                    /* empty host */
        "[]:80",                  /* empty v6 host */
        "127.0.0.1",              /* missing port */
        "127.0.0.1:",             /* empty port */
        "[::1]",                  /* missing port */
        "[::1]:",                 /* empty port */
        "[::1]80",                /* no colon after the bracket */
        "[::1:80",                /* unclosed bracket */
        "::1:80",                 /* unbracketed v6 is ambiguous */
        "127.0.0.1:65536",        /* port too big */
        "127.0.0.1:99999999999999999999999", /* port overflows any integer */
        "127.0.0.1:-1",           /* negative port */
        "127.0.0.1:+80",          /* sign */
        "127.0.0.1: 80",          /* space before */
        "127.0.0.1:80 ",          /* junk after */
        "127.0.0.1:80x",          /* junk after */
        "127.0.0.1:0x50",         /* not decimal */
        "127.0.0.1:80:81",        /* two ports */
        "[::1]:80x",              /* junk after a v6 port */
        "unix:",                  /* empty path */
        "unix:@",                 /* empty abstract name */
    };
    for (size_t i = 0; i < EVC_ARRAY_LEN(bad); i++) {
        struct sockaddr_storage ss;
        socklen_t len = 0;
        int rc = evc_addr_parse(bad[i], &ss, &len);
        if (rc != -EINVAL)
            fail_msg("evc_addr_parse(\"%s\") = %d, want -EINVAL", bad[i], rc);
    }
}

static void test_parse_null_arguments(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(evc_addr_parse(NULL, &ss, &len), -EINVAL);
    assert_int_equal(evc_addr_parse("127.0.0.1:1", NULL, &len), -EINVAL);
    assert_int_equal(evc_addr_parse("127.0.0.1:1", &ss, NULL), -EINVAL);
}

static void test_unknown_host(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(evc_addr_parse(NO_SUCH_HOST ":80", &ss, &len), -ENOENT);
    assert_int_equal(evc_addr_from_host_port(NO_SUCH_HOST, 80, &ss, &len), -ENOENT);
}

static void test_from_host_port(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    assert_int_equal(evc_addr_from_host_port("127.0.0.1", 0, &ss, &len), 0);
    assert_formats_as(&ss, len, "127.0.0.1:0");
    assert_int_equal(evc_addr_from_host_port("192.168.1.2", 65535, &ss, &len), 0);
    assert_formats_as(&ss, len, "192.168.1.2:65535");
    /* A bare v6 literal needs no brackets here (there is no port to confuse). */
    assert_int_equal(evc_addr_from_host_port("::1", 443, &ss, &len), 0);
    assert_formats_as(&ss, len, "[::1]:443");
    assert_int_equal(evc_addr_from_host_port("[::1]", 443, &ss, &len), 0);
    assert_formats_as(&ss, len, "[::1]:443");
    /* A unix path ignores the port, even one that would otherwise be refused. */
    assert_int_equal(evc_addr_from_host_port("unix:/tmp/s", -7, &ss, &len), 0);
    assert_formats_as(&ss, len, "unix:/tmp/s");
    assert_int_equal(evc_addr_from_host_port("localhost", 9, &ss, &len), 0);
    assert_true(ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
}

static void test_from_host_port_rejects(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(evc_addr_from_host_port(NULL, 80, &ss, &len), -EINVAL);
    assert_int_equal(evc_addr_from_host_port("127.0.0.1", 80, NULL, &len), -EINVAL);
    assert_int_equal(evc_addr_from_host_port("127.0.0.1", 80, &ss, NULL), -EINVAL);
    assert_int_equal(evc_addr_from_host_port("", 80, &ss, &len), -EINVAL);
    assert_int_equal(evc_addr_from_host_port("[]", 80, &ss, &len), -EINVAL);
    assert_int_equal(evc_addr_from_host_port("127.0.0.1", -1, &ss, &len), -EINVAL);
    assert_int_equal(evc_addr_from_host_port("127.0.0.1", 65536, &ss, &len), -EINVAL);
    assert_int_equal(evc_addr_from_host_port("unix:", 0, &ss, &len), -EINVAL);
    char huge[400];
    memset(huge, 'h', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    assert_int_equal(evc_addr_from_host_port(huge, 80, &ss, &len), -EINVAL);
}

/* Formats into a heap block of exactly cap bytes (so ASan and valgrind see any
 * write past it) and checks the answer. */
static void format_exact(const struct sockaddr_storage *ss, socklen_t len, const char *want)
{
    size_t n = strlen(want);
    for (size_t cap = 0; cap <= n + 1; cap++) {
        char *buf = malloc(cap ? cap : 1);
        assert_non_null(buf);
        memset(buf, 'X', cap ? cap : 1);
        int rc = evc_addr_format((const struct sockaddr *)ss, len, buf, cap);
        if (cap <= n) {
            assert_int_equal(rc, -ENOSPC);
            /* Whatever was written is a terminated empty string, never a cut-off address. */
            if (cap > 0)
                assert_int_equal(buf[0], '\0');
        } else {
            assert_int_equal(rc, (int)n);
            assert_string_equal(buf, want);
        }
        free(buf);
    }
}

static void test_format_exact_sizes(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(evc_addr_parse("10.20.30.40:5556", &ss, &len), 0);
    format_exact(&ss, len, "10.20.30.40:5556");
    assert_int_equal(evc_addr_parse("[fe80::1:2]:65535", &ss, &len), 0);
    format_exact(&ss, len, "[fe80::1:2]:65535");
    assert_int_equal(evc_addr_parse("unix:/tmp/sock", &ss, &len), 0);
    format_exact(&ss, len, "unix:/tmp/sock");
    assert_int_equal(evc_addr_parse("unix:@abs", &ss, &len), 0);
    format_exact(&ss, len, "unix:@abs");
}

static void test_format_rejects(void **state)
{
    (void)state;
    char buf[EVC_ADDRSTRLEN];
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(evc_addr_parse("127.0.0.1:1", &ss, &len), 0);
    assert_int_equal(evc_addr_format(NULL, len, buf, sizeof buf), -EINVAL);
    assert_int_equal(evc_addr_format((struct sockaddr *)&ss, len, NULL, sizeof buf), -EINVAL);
    /* A length too short for the family is a bad argument, not a read past it. */
    assert_int_equal(evc_addr_format((struct sockaddr *)&ss, len - 1, buf, sizeof buf), -EINVAL);
    assert_int_equal(evc_addr_parse("[::1]:1", &ss, &len), 0);
    assert_int_equal(evc_addr_format((struct sockaddr *)&ss, sizeof(struct sockaddr_in), buf,
                                     sizeof buf), -EINVAL);
    memset(&ss, 0, sizeof ss);
    ss.ss_family = AF_UNSPEC;
    assert_int_equal(evc_addr_format((struct sockaddr *)&ss, sizeof ss, buf, sizeof buf),
                     -EAFNOSUPPORT);
}

static void test_format_v6_scope(void **state)
{
    (void)state;
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(80),
                                .sin6_scope_id = 1};
    assert_int_equal(inet_pton(AF_INET6, "fe80::1", &sin6.sin6_addr), 1);
    char text[EVC_ADDRSTRLEN];
    assert_int_equal(evc_addr_format((struct sockaddr *)&sin6, sizeof sin6, text, sizeof text),
                     (int)strlen("[fe80::1%1]:80"));
    assert_string_equal(text, "[fe80::1%1]:80");
    /* And back: the scope survives. */
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(evc_addr_parse(text, &ss, &len), 0);
    assert_int_equal(((struct sockaddr_in6 *)&ss)->sin6_scope_id, 1);
}

/* What getsockname reports for real sockets formats as what was bound. */
static void test_format_bound_sockets(void **state)
{
    (void)state;
    struct sockaddr_storage ss, got;
    socklen_t len, got_len = sizeof got;
    char text[EVC_ADDRSTRLEN], again[EVC_ADDRSTRLEN];

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(evc_addr_parse("127.0.0.1:0", &ss, &len), 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&ss, len), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&got, &got_len), 0);
    assert_true(evc_addr_format((struct sockaddr *)&got, got_len, text, sizeof text) > 0);
    assert_int_equal(strncmp(text, "127.0.0.1:", 10), 0);
    assert_int_not_equal(strcmp(text, "127.0.0.1:0"), 0);
    /* The text names the same address: parse it and format again. */
    assert_int_equal(evc_addr_parse(text, &ss, &len), 0);
    assert_int_equal(evc_addr_format((struct sockaddr *)&ss, len, again, sizeof again),
                     (int)strlen(text));
    assert_string_equal(again, text);
    close(fd);

    char path[64];
    snprintf(path, sizeof path, "unix:/tmp/evc-test-addr-%d.sock", (int)getpid());
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(evc_addr_parse(path, &ss, &len), 0);
    unlink(path + 5);
    assert_int_equal(bind(fd, (struct sockaddr *)&ss, len), 0);
    got_len = sizeof got;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&got, &got_len), 0);
    assert_formats_as(&got, got_len, path);
    unlink(path + 5);
    close(fd);

    /* An unnamed unix socket (one end of a socketpair) has no path at all. */
    int pair[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    got_len = sizeof got;
    assert_int_equal(getsockname(pair[0], (struct sockaddr *)&got, &got_len), 0);
    assert_formats_as(&got, got_len, "unix:");
    close(pair[0]);
    close(pair[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ipv4),
        cmocka_unit_test(test_parse_ipv6),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_parse_unix_path),
        cmocka_unit_test(test_parse_unix_abstract),
        cmocka_unit_test(test_unix_path_limits),
        cmocka_unit_test(test_parse_name),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_parse_null_arguments),
        cmocka_unit_test(test_unknown_host),
        cmocka_unit_test(test_from_host_port),
        cmocka_unit_test(test_from_host_port_rejects),
        cmocka_unit_test(test_format_exact_sizes),
        cmocka_unit_test(test_format_rejects),
        cmocka_unit_test(test_format_v6_scope),
        cmocka_unit_test(test_format_bound_sockets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

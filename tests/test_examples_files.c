/*
 * Integration tests of examples/udp_echo, udp_echo_client, file_server and
 * file_client: real processes, real loopback sockets, real files in a
 * mkdtemp directory that the group teardown removes.
 */
#include "support.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MiB (1024u * 1024u)
#define MAX_UDP_PAYLOAD 65507

/* The served tree, made once for the whole group. */
static char tmpdir[64];        /* tmpdir/root is served; tmpdir/secret is outside it */
static char root[96];

static void path_in(char *buf, size_t cap, const char *rel)
{
    snprintf(buf, cap, "%s/%s", tmpdir, rel);
}

/* Writes size pseudo-random bytes (xorshift, so reordered blocks would show). */
static void make_file(const char *rel, size_t size)
{
    char path[256];
    path_in(path, sizeof path, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    static uint64_t block[MiB / 8];
    uint64_t x = 0x9e3779b97f4a7c15u ^ size;
    for (size_t done = 0; done < size;) {
        for (size_t i = 0; i < MiB / 8; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            block[i] = x;
        }
        size_t n = size - done < MiB ? size - done : MiB;
        assert_int_equal(write(fd, block, n), (ssize_t)n);
        done += n;
    }
    close(fd);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/evc-files-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(root, sizeof root, "%s/root", tmpdir);
    char path[256], target[256];
    if (mkdir(root, 0755) < 0)
        return -1;
    path_in(path, sizeof path, "root/sub");
    mkdir(path, 0755);
    path_in(path, sizeof path, "outside");
    mkdir(path, 0755);
    make_file("root/empty", 0);
    make_file("root/one", 1);
    make_file("root/mib", MiB);
    make_file("root/big", 100 * MiB);
    make_file("root/sub/inner", 1000);
    make_file("secret", 100);
    make_file("outside/x", 10);
    path_in(path, sizeof path, "root/link_out");
    path_in(target, sizeof target, "secret");
    if (symlink(target, path) < 0)
        return -1;
    path_in(path, sizeof path, "root/link_dir");
    if (symlink("../outside", path) < 0)
        return -1;
    path_in(path, sizeof path, "root/link_rel");
    return symlink("../secret", path) < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static bool same_files(const char *a, const char *b)
{
    int fa = open(a, O_RDONLY | O_CLOEXEC), fb = open(b, O_RDONLY | O_CLOEXEC);
    bool same = fa >= 0 && fb >= 0;
    static char ba[MiB], bb[MiB];
    while (same) {
        ssize_t na = read(fa, ba, sizeof ba), nb = read(fb, bb, sizeof bb);
        same = na == nb && na >= 0 && memcmp(ba, bb, (size_t)na) == 0;
        if (na <= 0)
            break;
    }
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
    return same;
}

/* Runs an example to completion: stdin from `in` (NULL: /dev/null), stdout and
 * stderr into tmpdir/out.txt and tmpdir/err.txt.  Returns the exit status. */
static int run_program(const char *name, const char *const *args, const char *in)
{
    char path[512], in_path[256], out_path[256], err_path[256];
    evt_example_path(name, path, sizeof path);
    path_in(in_path, sizeof in_path, "in.txt");
    path_in(out_path, sizeof out_path, "out.txt");
    path_in(err_path, sizeof err_path, "err.txt");
    FILE *f = fopen(in_path, "w");
    assert_non_null(f);
    fputs(in ? in : "", f);
    fclose(f);
    const char *argv[16] = {path};
    for (int i = 0; args[i] && i < 14; i++)
        argv[i + 1] = args[i];
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fi = open(in_path, O_RDONLY), fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fi, STDIN_FILENO), dup2(fo, STDOUT_FILENO), dup2(fe, STDERR_FILENO);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* The text a run_program left in tmpdir/NAME (out.txt or err.txt). */
static const char *output_of(const char *which)
{
    static char text[4096];
    char path[256];
    path_in(path, sizeof path, which);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    text[n > 0 ? n : 0] = '\0';
    return text;
}

/* ------------------------------------------------------------------ */
/* udp_echo                                                            */
/* ------------------------------------------------------------------ */

static int udp_setup(void **state)
{
    evt_proc *p = calloc(1, sizeof *p);
    evt_spawn_server(p, "udp_echo", NULL);
    *state = p;
    return 0;
}

static int server_teardown(void **state)
{
    evt_proc *p = *state;
    int status = evt_stop_server(p, SIGTERM);
    free(p);
    /* Every test also proves the server survived it and exits 0 on SIGTERM. */
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* A UDP socket connected to the server, with a 5 s receive timeout. */
static int udp_socket(const evt_proc *p)
{
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *res = NULL;
    char service[16];
    snprintf(service, sizeof service, "%d", p->port);
    assert_int_equal(getaddrinfo(p->host, service, &hints, &res), 0);
    int fd = socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, res->ai_addr, res->ai_addrlen), 0);
    freeaddrinfo(res);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Sends len bytes of a pattern, checks the reply is "echo:" + them, cut at the limit. */
static void udp_round_trip(const evt_proc *p, size_t len)
{
    int fd = udp_socket(p);
    static char out[65536], in[65536 + 16];
    for (size_t i = 0; i < len; i++)
        out[i] = (char)('a' + i % 26);
    assert_int_equal(send(fd, out, len, 0), (ssize_t)len);
    ssize_t n = recv(fd, in, sizeof in, 0);
    size_t want = len + 5 > MAX_UDP_PAYLOAD ? MAX_UDP_PAYLOAD : len + 5;
    assert_int_equal(n, (ssize_t)want);
    assert_memory_equal(in, "echo:", 5);
    assert_memory_equal(in + 5, out, want - 5);
    close(fd);
}

static void udp_small_datagram(void **state) { udp_round_trip(*state, 5); }
static void udp_empty_datagram(void **state) { udp_round_trip(*state, 0); }
static void udp_60000_byte_datagram(void **state) { udp_round_trip(*state, 60000); }

/* The largest datagram: its reply would be 5 bytes too long, so it is cut. */
static void udp_largest_datagram_reply_is_truncated(void **state)
{
    udp_round_trip(*state, MAX_UDP_PAYLOAD);
    udp_round_trip(*state, MAX_UDP_PAYLOAD - 5);   /* exactly fits: nothing cut */
    udp_round_trip(*state, 5);                     /* and the server still answers */
}

static void udp_burst_from_many_sockets(void **state)
{
    enum { N = 100 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = udp_socket(*state);
        char msg[16];
        int len = snprintf(msg, sizeof msg, "m%d", i);
        assert_int_equal(send(fds[i], msg, (size_t)len, 0), len);
    }
    for (int i = 0; i < N; i++) {
        char want[24], got[64];
        int len = snprintf(want, sizeof want, "echo:m%d", i);
        assert_int_equal(recv(fds[i], got, sizeof got, 0), len);
        assert_memory_equal(got, want, (size_t)len);
        close(fds[i]);
    }
}

static void udp_over_ipv6(void **state)
{
    (void)state;
    int probe = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool have_v6 = probe >= 0 && bind(probe, (struct sockaddr *)&sin6, sizeof sin6) == 0;
    if (probe >= 0)
        close(probe);
    if (!have_v6)
        skip();
    evt_proc p;
    const char *args[] = {"-b", "::1", NULL};
    evt_spawn_server(&p, "udp_echo", args);
    assert_string_equal(p.host, "::1");
    udp_round_trip(&p, 100);
    udp_round_trip(&p, 65527);     /* IPv6's largest: cut to the same limit */
    int status = evt_stop_server(&p, SIGINT);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void udp_client_sends_its_arguments(void **state)
{
    const evt_proc *p = *state;
    char port[16];
    snprintf(port, sizeof port, "%d", p->port);
    const char *args[] = {"-b", p->host, "-p", port, "one", "", "two words", NULL};
    assert_int_equal(run_program("udp_echo_client", args, NULL), 0);
    assert_string_equal(output_of("out.txt"), "echo:one\necho:\necho:two words\n");
}

static void udp_client_sends_stdin_lines(void **state)
{
    const evt_proc *p = *state;
    char port[16];
    snprintf(port, sizeof port, "%d", p->port);
    const char *args[] = {"-b", p->host, "-p", port, NULL};
    assert_int_equal(run_program("udp_echo_client", args, "alpha\nbeta\n"), 0);
    assert_string_equal(output_of("out.txt"), "echo:alpha\necho:beta\n");
}

static void udp_client_fails_when_nobody_answers(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);   /* a port that was just free */
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    char port[16];
    snprintf(port, sizeof port, "%d", ntohs(sin.sin_port));
    const char *args[] = {"-p", port, "anyone?", NULL};
    assert_int_not_equal(run_program("udp_echo_client", args, NULL), 0);
    assert_string_equal(output_of("out.txt"), "");
    assert_true(strlen(output_of("err.txt")) > 0);
}

/* ------------------------------------------------------------------ */
/* file_server and file_client                                         */
/* ------------------------------------------------------------------ */

static int file_setup(void **state)
{
    evt_proc *p = calloc(1, sizeof *p);
    const char *args[] = {root, NULL};
    evt_spawn_server(p, "file_server", args);
    *state = p;
    return 0;
}

/* Runs file_client NAME tmpdir/got; returns its exit status. */
static int fetch(const evt_proc *p, const char *name)
{
    char port[16], out[256];
    snprintf(port, sizeof port, "%d", p->port);
    path_in(out, sizeof out, "got");
    unlink(out);
    const char *args[] = {"-b", p->host, "-p", port, name, out, NULL};
    return run_program("file_client", args, NULL);
}

static void fetch_and_compare(const evt_proc *p, const char *name)
{
    char want[256], got[256];
    snprintf(want, sizeof want, "%s/%s", root, name);
    path_in(got, sizeof got, "got");
    assert_int_equal(fetch(p, name), 0);
    assert_true(same_files(want, got));
    unlink(got);
}

static void transfers_an_empty_file(void **state) { fetch_and_compare(*state, "empty"); }
static void transfers_a_one_byte_file(void **state) { fetch_and_compare(*state, "one"); }
static void transfers_a_mebibyte(void **state) { fetch_and_compare(*state, "mib"); }
static void transfers_from_a_subdirectory(void **state) { fetch_and_compare(*state, "sub/inner"); }

static void transfers_100_mebibytes_in_seconds(void **state)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fetch_and_compare(*state, "big");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(took < 10.0);
}

/* What a raw client sees: the header, and how many content bytes followed. */
struct reply {
    json_t *header;
    size_t content;
};

static struct reply raw_request(const evt_proc *p, const char *request)
{
    int fd = evt_connect(p->host, p->port);
    evt_send_all(fd, request, strlen(request));
    static char buf[2 * MiB];
    size_t n = evt_recv_all(fd, buf, sizeof buf);
    close(fd);
    assert_true(n >= 2);
    size_t hlen = (size_t)(unsigned char)buf[0] << 8 | (unsigned char)buf[1];
    assert_true(n >= 2 + hlen);
    json_error_t err;
    struct reply r = {json_loadb(buf + 2, hlen, 0, &err), n - 2 - hlen};
    assert_non_null(r.header);
    return r;
}

static void header_describes_the_content(void **state)
{
    struct reply r = raw_request(*state, "mib\n");
    assert_int_equal(json_integer_value(json_object_get(r.header, "content-length")), MiB);
    assert_int_equal(r.content, MiB);
    assert_null(json_object_get(r.header, "error"));
    const char *order = json_string_value(json_object_get(r.header, "byteorder"));
    assert_non_null(order);
    assert_true(strcmp(order, "little") == 0 || strcmp(order, "big") == 0);
    assert_non_null(json_string_value(json_object_get(r.header, "content-type")));
    assert_non_null(json_string_value(json_object_get(r.header, "content-encoding")));
    json_decref(r.header);
}

static void crlf_request_line_is_accepted(void **state)
{
    struct reply r = raw_request(*state, "one\r\n");
    assert_int_equal(json_integer_value(json_object_get(r.header, "content-length")), 1);
    assert_int_equal(r.content, 1);
    json_decref(r.header);
}

static void assert_refused(const evt_proc *p, const char *name, const char *why)
{
    char request[512];
    snprintf(request, sizeof request, "%s\n", name);
    struct reply r = raw_request(p, request);
    const char *error = json_string_value(json_object_get(r.header, "error"));
    if (!error)
        fail_msg("'%s' was served", name);
    if (why)
        assert_string_equal(error, why);
    assert_int_equal(json_integer_value(json_object_get(r.header, "content-length")), 0);
    assert_true(json_is_integer(json_object_get(r.header, "content-length")));
    assert_int_equal(r.content, 0);
    json_decref(r.header);
}

static void missing_file_gets_an_error_header(void **state)
{
    assert_refused(*state, "no-such-file", "no such file");
    char got[256];
    path_in(got, sizeof got, "got");
    assert_int_not_equal(fetch(*state, "no-such-file"), 0);
    assert_non_null(strstr(output_of("err.txt"), "no such file"));
    assert_int_equal(access(got, F_OK), -1);    /* no output file made */
}

static void names_escaping_the_directory_are_refused(void **state)
{
    const evt_proc *p = *state;
    char absolute[256];
    path_in(absolute, sizeof absolute, "secret");
    assert_refused(p, "../secret", "forbidden");
    assert_refused(p, "sub/../../secret", "forbidden");
    assert_refused(p, "./../secret", "forbidden");
    assert_refused(p, "..", "forbidden");
    assert_refused(p, absolute, "forbidden");
    assert_refused(p, "/etc/passwd", "forbidden");
    assert_refused(p, "link_out", "forbidden");      /* absolute symlink out */
    assert_refused(p, "link_rel", "forbidden");      /* relative symlink out */
    assert_refused(p, "link_dir/x", "forbidden");    /* symlinked directory out */
    assert_refused(p, "sub", NULL);                  /* not a regular file */
    assert_refused(p, "", "forbidden");
    assert_int_not_equal(fetch(p, "link_out"), 0);
    assert_non_null(strstr(output_of("err.txt"), "forbidden"));
    fetch_and_compare(p, "one");                     /* and the server still serves */
}

/* A trailing slash after a regular file is refused, as open(2) refuses it. */
static void trailing_slash_on_a_file_is_refused(void **state)
{
    const evt_proc *p = *state;
    assert_refused(p, "one/", strerror(ENOTDIR));
    assert_refused(p, "sub/inner/", strerror(ENOTDIR));
    assert_refused(p, "sub/inner//", strerror(ENOTDIR));
    fetch_and_compare(p, "sub/inner");               /* without it, served */
}

/* A request line followed by more than the 4 KiB frame limit of extra bytes: the
 * reply already queued is still sent whole, then the connection closes. */
static void extra_bytes_after_the_request_keep_the_reply(void **state)
{
    const evt_proc *p = *state;
    static const size_t extra[] = {5000, 100000};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        for (int big = 0; big < 2; big++) {
            const char *name = big ? "mib\n" : "one\n";
            char *request = malloc(4 + extra[i] + 1);
            assert_non_null(request);
            memcpy(request, name, 4);
            memset(request + 4, 'x', extra[i]);
            request[4 + extra[i]] = '\0';
            struct reply r = raw_request(p, request);
            free(request);
            assert_null(json_object_get(r.header, "error"));
            assert_int_equal(r.content, big ? MiB : 1);
            json_decref(r.header);
        }
    }
    fetch_and_compare(p, "one");
}

static void overlong_request_line_closes_the_connection(void **state)
{
    const evt_proc *p = *state;
    int fd = evt_connect(p->host, p->port);
    static char name[8192];
    memset(name, 'a', sizeof name);
    evt_send_all(fd, name, sizeof name);
    char reply[64];
    assert_int_equal(evt_recv_all(fd, reply, sizeof reply), 0);   /* closed, no header */
    close(fd);
    fetch_and_compare(p, "one");
}

static int count_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *dir = opendir(path);
    assert_non_null(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)))
        n += e->d_name[0] != '.';
    closedir(dir);
    return n;
}

static bool fds_return_to(pid_t pid, int baseline, double seconds)
{
    for (int i = 0; i < (int)(seconds * 100); i++) {
        if (count_fds(pid) == baseline)
            return true;
        usleep(10000);
    }
    return false;
}

/* The server's fd count once it stops changing: a connection that just
 * finished may still be lingering for its peer's close for a moment. */
static int settled_fd_count(pid_t pid)
{
    int last = count_fds(pid), same = 0;
    for (int i = 0; i < 300 && same < 10; i++) {
        usleep(10000);
        int now = count_fds(pid);
        same = now == last ? same + 1 : 0;
        last = now;
    }
    return last;
}

/* A client that reads a little of a big file, then goes away. */
static int start_big_download(const evt_proc *p)
{
    int fd = evt_connect(p->host, p->port);
    evt_send_all(fd, "big\n", 4);
    static char buf[256 * 1024];
    assert_true(evt_recv_until(fd, buf, sizeof buf, "never") > 0);
    return fd;
}

static void client_leaving_mid_transfer_costs_nothing(void **state)
{
    const evt_proc *p = *state;
    fetch_and_compare(p, "one");              /* whatever the first client sets up */
    int baseline = settled_fd_count(p->pid);
    int quitters[4];
    for (int i = 0; i < 4; i++)
        quitters[i] = start_big_download(p);
    /* Each transfer holds a socket and a file: the count must see them. */
    assert_true(count_fds(p->pid) >= baseline + 8);
    fetch_and_compare(p, "mib");              /* served while four transfers stall */
    close(quitters[0]);
    evt_close_reset(quitters[1]);
    shutdown(quitters[2], SHUT_RDWR);
    close(quitters[2]);
    evt_close_reset(quitters[3]);
    assert_true(fds_return_to(p->pid, baseline, 5.0));
    fetch_and_compare(p, "mib");
    assert_int_equal(count_fds(p->pid), baseline);
}

static void clients_leaving_right_away_do_not_kill_the_server(void **state)
{
    /* Closing while sendfile is mid-call makes the kernel raise SIGPIPE, which
     * must not reach a program that left SIGPIPE at its default (fatal). */
    const evt_proc *p = *state;
    fetch_and_compare(p, "one");
    int baseline = settled_fd_count(p->pid);
    for (int i = 0; i < 30; i++) {
        int fd = evt_connect(p->host, p->port);
        evt_send_all(fd, "big\n", 4);
        char buf[65536];
        assert_true(recv(fd, buf, sizeof buf, 0) > 0);
        close(fd);
    }
    fetch_and_compare(p, "mib");
    assert_true(fds_return_to(p->pid, baseline, 5.0));
}

static void sigterm_mid_transfer_exits_cleanly(void **state)
{
    (void)state;
    evt_proc p;
    const char *args[] = {root, NULL};
    evt_spawn_server(&p, "file_server", args);
    int fd = start_big_download(&p);
    int status = evt_stop_server(&p, SIGTERM);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(fd);
}

static void client_needs_name_and_outfile(void **state)
{
    (void)state;
    const char *args[] = {"only-a-name", NULL};
    assert_int_equal(run_program("file_client", args, NULL), 2);
}

static void help_for_every_program(void **state)
{
    (void)state;
    const char *help[] = {"--help", NULL};
    const char *names[] = {"udp_echo", "udp_echo_client", "file_server", "file_client"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        assert_int_equal(run_program(names[i], help, NULL), 0);
        assert_non_null(strstr(output_of("out.txt"), "-p, --port"));
    }
}

int main(void)
{
    /* SIGPIPE stays at its default, fatal disposition, which the example servers
     * inherit: a server killed by it fails the test (our own sockets use
     * MSG_NOSIGNAL and never write to a pipe). */
    signal(SIGPIPE, SIG_DFL);
#define UDP(t) cmocka_unit_test_setup_teardown(t, udp_setup, server_teardown)
#define FILES(t) cmocka_unit_test_setup_teardown(t, file_setup, server_teardown)
    const struct CMUnitTest tests[] = {
        UDP(udp_small_datagram),
        UDP(udp_empty_datagram),
        UDP(udp_60000_byte_datagram),
        UDP(udp_largest_datagram_reply_is_truncated),
        UDP(udp_burst_from_many_sockets),
        cmocka_unit_test(udp_over_ipv6),
        UDP(udp_client_sends_its_arguments),
        UDP(udp_client_sends_stdin_lines),
        cmocka_unit_test(udp_client_fails_when_nobody_answers),
        FILES(transfers_an_empty_file),
        FILES(transfers_a_one_byte_file),
        FILES(transfers_a_mebibyte),
        FILES(transfers_from_a_subdirectory),
        FILES(transfers_100_mebibytes_in_seconds),
        FILES(header_describes_the_content),
        FILES(crlf_request_line_is_accepted),
        FILES(missing_file_gets_an_error_header),
        FILES(names_escaping_the_directory_are_refused),
        FILES(overlong_request_line_closes_the_connection),
        FILES(trailing_slash_on_a_file_is_refused),
        FILES(extra_bytes_after_the_request_keep_the_reply),
        FILES(client_leaving_mid_transfer_costs_nothing),
        FILES(clients_leaving_right_away_do_not_kill_the_server),
        cmocka_unit_test(sigterm_mid_transfer_exits_cleanly),
        cmocka_unit_test(client_needs_name_and_outfile),
        cmocka_unit_test(help_for_every_program),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

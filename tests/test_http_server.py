#!/usr/bin/env python3
"""Integration tests of examples/http_server, driven by curl, Python's
http.client and raw sockets (for what real clients never send: garbage,
pipelined bursts, slow heads).  The server serves a temporary directory;
each class starts its own server and stops it (SIGTERM, exit 0) at the end."""

import email.utils
import hashlib
import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_tap import TIMEOUT, Reader, Server, connect, main, recv_all  # noqa: E402

MiB = 1 << 20


def curl(*args):
    """Runs curl (silent, fails on no HTTP error by itself); returns (status, stdout)."""
    proc = subprocess.run(["curl", "-sS", "--max-time", "30", *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return proc.returncode, proc.stdout


def make_tree():
    root = tempfile.mkdtemp(prefix="evc-http-")
    pub = os.path.join(root, "pub")
    os.makedirs(os.path.join(pub, "sub"))
    os.makedirs(os.path.join(pub, "noindex"))
    with open(os.path.join(pub, "hello.txt"), "wb") as f:
        f.write(b"hello, world\n")      # 13 bytes, the benchmark's file
    with open(os.path.join(pub, "page.html"), "wb") as f:
        f.write(b"<p>hi</p>\n")
    with open(os.path.join(pub, "data.json"), "wb") as f:
        f.write(b"{}\n")
    with open(os.path.join(pub, "sub", "index.html"), "wb") as f:
        f.write(b"<h1>index</h1>\n")
    with open(os.path.join(pub, "empty"), "wb"):
        pass
    with open(os.path.join(pub, "mib.bin"), "wb") as f:
        f.write(os.urandom(MiB))
    with open(os.path.join(root, "secret"), "wb") as f:
        f.write(b"outside\n")
    os.symlink(os.path.join(root, "secret"), os.path.join(pub, "escape"))
    return root, pub


class HttpServerTest(unittest.TestCase):
    """One server for the ordinary behaviour; errors close their connection only."""

    @classmethod
    def setUpClass(cls):
        cls.root, cls.pub = make_tree()
        cls.server = Server("http_server", "-m", "100000", cls.pub)

    @classmethod
    def tearDownClass(cls):
        status, cls.log = cls.server.stop()
        shutil.rmtree(cls.root)
        assert status == 0, "http_server exited %r" % status

    def client(self):
        return http.client.HTTPConnection(self.server.host, self.server.port, timeout=TIMEOUT)

    def raw(self, data, read=True):
        """Sends data on a new connection; returns (socket, Reader)."""
        sock = connect(self.server)
        self.addCleanup(sock.close)
        sock.sendall(data)
        return sock, Reader(sock)

    # ---------------------------------------------------------- files
    def test_curl_gets_a_file_with_its_headers(self):
        rc, out = curl("-i", self.server.url + "/hello.txt")
        self.assertEqual(rc, 0)
        head, body = out.split(b"\r\n\r\n", 1)
        self.assertTrue(head.startswith(b"HTTP/1.1 200 OK\r\n"), head)
        self.assertIn(b"Content-Length: 13\r\n", head)
        self.assertIn(b"Content-Type: text/plain; charset=utf-8\r\n", head)
        self.assertIn(b"Last-Modified: ", head)
        self.assertEqual(body, b"hello, world\n")

    def test_content_type_follows_the_extension(self):
        conn = self.client()
        for path, ctype in [("/page.html", "text/html; charset=utf-8"),
                            ("/data.json", "application/json"),
                            ("/mib.bin", "application/octet-stream"),
                            ("/empty", "application/octet-stream")]:
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.getheader("Content-Type"), ctype, path)
        conn.close()

    def test_a_mib_file_comes_whole(self):
        conn = self.client()
        conn.request("GET", "/mib.bin")
        r = conn.getresponse()
        with open(os.path.join(self.pub, "mib.bin"), "rb") as f:
            self.assertEqual(r.read(), f.read())
        conn.close()

    def test_head_sends_the_headers_only(self):
        conn = self.client()
        conn.request("HEAD", "/mib.bin")
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("Content-Length"), str(MiB))
        self.assertEqual(r.read(), b"")
        # The connection is still in step: the next answer is the next request's.
        conn.request("GET", "/hello.txt")
        self.assertEqual(conn.getresponse().read(), b"hello, world\n")
        conn.close()

    def test_a_directory_serves_its_index_or_404(self):
        rc, out = curl(self.server.url + "/sub/")
        self.assertEqual(out, b"<h1>index</h1>\n")
        rc, out = curl("-o", "/dev/null", "-w", "%{http_code} %{content_type}",
                       self.server.url + "/sub")
        self.assertEqual(out, b"200 text/html; charset=utf-8")
        rc, out = curl("-o", "/dev/null", "-w", "%{http_code}", self.server.url + "/noindex/")
        self.assertEqual(out, b"404")
        rc, out = curl("-o", "/dev/null", "-w", "%{http_code}", self.server.url + "/nothing")
        self.assertEqual(out, b"404")

    def test_names_outside_the_directory_are_refused(self):
        for target in ["/../secret", "/sub/../../secret", "/%2e%2e/secret", "/escape",
                       "/sub/%2E%2E/%2e%2e/secret"]:
            _, reader = self.raw(b"GET " + target.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            r = reader.response()
            self.assertEqual(r.status, 403, target)
            self.assertNotIn(b"outside", r.body)

    def test_percent_decoded_names_and_queries(self):
        rc, out = curl(self.server.url + "/hell%6f.txt?x=1")
        self.assertEqual(out, b"hello, world\n")

    def test_a_range_gets_206_and_an_unsatisfiable_one_416(self):
        conn = self.client()
        cases = [("bytes=0-4", 206, b"hello", "bytes 0-4/13"),
                 ("bytes=7-", 206, b"world\n", "bytes 7-12/13"),
                 ("bytes=-3", 206, b"ld\n", "bytes 10-12/13"),
                 ("bytes=5-100", 206, b", world\n", "bytes 5-12/13"),
                 ("bytes=13-", 416, b"", "bytes */13"),
                 ("bytes=0-1,3-4", 200, b"hello, world\n", None),
                 ("lines=1-2", 200, b"hello, world\n", None)]
        for value, status, body, content_range in cases:
            conn.request("GET", "/hello.txt", headers={"Range": value})
            r = conn.getresponse()
            self.assertEqual((r.status, r.read()), (status, body), value)
            self.assertEqual(r.getheader("Content-Range"), content_range, value)
        conn.close()

    def test_if_modified_since_gets_304(self):
        mtime = os.stat(os.path.join(self.pub, "hello.txt")).st_mtime
        conn = self.client()
        conn.request("GET", "/hello.txt",
                     headers={"If-Modified-Since": email.utils.formatdate(mtime + 60, usegmt=True)})
        r = conn.getresponse()
        self.assertEqual((r.status, r.read()), (304, b""))
        self.assertEqual(r.getheader("Last-Modified"), email.utils.formatdate(int(mtime), usegmt=True))
        conn.request("GET", "/hello.txt",
                     headers={"If-Modified-Since": email.utils.formatdate(mtime - 60, usegmt=True)})
        r = conn.getresponse()
        self.assertEqual((r.status, r.read()), (200, b"hello, world\n"))
        conn.close()

    # ---------------------------------------------------------- bodies
    def test_post_echo_with_content_length_including_zero(self):
        conn = self.client()
        for body in [b"hello", b"", os.urandom(50000)]:
            conn.request("POST", "/echo", body=body)
            r = conn.getresponse()
            self.assertEqual((r.status, r.read()), (200, body))
        conn.close()

    def test_chunked_uploads(self):
        body = os.urandom(70000)
        path = os.path.join(self.root, "upload")
        with open(path, "wb") as f:
            f.write(body)
        rc, out = curl("-H", "Transfer-Encoding: chunked", "--data-binary", "@" + path,
                       self.server.url + "/echo")
        self.assertEqual((rc, out), (0, body))
        # http.client sends an iterable body chunked.
        conn = self.client()
        conn.request("POST", "/echo", body=iter([b"abc", b"", b"defg", b"h" * 5000]),
                     encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
        r = conn.getresponse()
        self.assertEqual(r.read(), b"abcdefg" + b"h" * 5000)
        conn.close()

    def test_chunk_extensions_and_trailers_are_accepted(self):
        _, reader = self.raw(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"3;name=value\r\nabc\r\nA ; x\r\n0123456789\r\n0\r\n"
                             b"X-Checksum: 1\r\nX-Other: 2\r\n\r\n"
                             b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        r = reader.response()
        self.assertEqual((r.status, r.body), (200, b"abc0123456789"))
        self.assertEqual(reader.response().body, b"hello, world\n")

    def test_post_elsewhere_is_405(self):
        conn = self.client()
        conn.request("POST", "/hello.txt", body=b"x")
        r = conn.getresponse()
        self.assertEqual(r.status, 405)
        r.read()
        conn.close()

    # ---------------------------------------------------------- connections
    def test_http11_keeps_the_connection(self):
        conn = self.client()
        conn.request("GET", "/hello.txt")
        conn.getresponse().read()
        sock = conn.sock
        for _ in range(5):
            conn.request("GET", "/hello.txt")
            self.assertEqual(conn.getresponse().read(), b"hello, world\n")
        self.assertIs(conn.sock, sock)
        conn.close()

    def test_http10_closes_unless_keep_alive(self):
        _, reader = self.raw(b"GET /hello.txt HTTP/1.0\r\n\r\n")
        r = reader.response()
        self.assertEqual((r.status, r.body), (200, b"hello, world\n"))
        self.assertEqual(r.header("Connection"), "close")
        self.assertTrue(reader.at_eof())
        sock, reader = self.raw(b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = reader.response()
        self.assertEqual(r.header("Connection"), "keep-alive")
        sock.sendall(b"GET /page.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        self.assertEqual(reader.response().body, b"<p>hi</p>\n")

    def test_connection_close_is_honoured(self):
        _, reader = self.raw(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                             b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        r = reader.response()
        self.assertEqual((r.status, r.header("Connection")), (200, "close"))
        self.assertTrue(reader.at_eof())

    def test_a_bare_lf_request_is_answered(self):
        _, reader = self.raw(b"GET /hello.txt HTTP/1.1\nHost: x\n\n")
        self.assertEqual(reader.response().body, b"hello, world\n")

    def test_a_burst_of_1000_pipelined_requests_in_one_write(self):
        requests = []
        for i in range(1000):
            if i % 3 == 0:
                body = b"request %d" % i
                requests.append(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                                % (len(body), body))
            elif i % 3 == 1:
                requests.append(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            else:
                requests.append(b"GET /stream?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (i % 7))
        _, reader = self.raw(b"".join(requests))
        for i in range(1000):
            r = reader.response()
            self.assertEqual(r.status, 200)
            if i % 3 == 0:
                self.assertEqual(r.body, b"request %d" % i)
            elif i % 3 == 1:
                self.assertEqual(r.body, b"hello, world\n")
            else:
                n = i % 7
                self.assertEqual(r.body, b"".join(b"chunk %d of %d\n" % (k + 1, n)
                                                  for k in range(n)))

    def test_stream_is_chunked_for_http11_and_close_delimited_for_http10(self):
        rc, out = curl("--raw", self.server.url + "/stream?n=3")
        self.assertEqual(out, b"d\r\nchunk 1 of 3\n\r\nd\r\nchunk 2 of 3\n\r\nd\r\nchunk 3 of 3\n\r\n"
                              b"0\r\n\r\n")
        _, reader = self.raw(b"GET /stream?n=2 HTTP/1.0\r\n\r\n")
        r = reader.response()
        self.assertIsNone(r.header("Transfer-Encoding"))
        self.assertEqual(r.body, b"chunk 1 of 2\nchunk 2 of 2\n")
        conn = self.client()
        conn.request("GET", "/stream?n=1000")
        r = conn.getresponse()
        self.assertEqual(r.getheader("Transfer-Encoding"), "chunked")
        self.assertEqual(r.read().count(b"\n"), 1000)
        conn.close()

    # ---------------------------------------------------------- bad input
    def assert_refused(self, data, status, before=()):
        """data gets the answers `before` (statuses), then status, then the close."""
        _, reader = self.raw(data)
        for earlier in before:
            self.assertEqual(reader.response().status, earlier)
        r = reader.response()
        self.assertEqual(r.status, status, data[:80])
        self.assertEqual(r.header("Connection"), "close")
        self.assertTrue(reader.at_eof(), "not closed after %d" % status)

    def test_garbage_request_line_is_400(self):
        self.assert_refused(b"hello there\r\n\r\n", 400)
        self.assert_refused(b"GET /x\r\n\r\n", 400)
        self.assert_refused(b"GET /x HTTP/1.1 extra\r\n\r\n", 400)
        self.assert_refused(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400)

    def test_bad_headers_are_400(self):
        self.assert_refused(b"GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n", 400)
        self.assert_refused(b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400)
        self.assert_refused(b"GET / HTTP/1.1\r\n\r\n", 400)   # 1.1 without Host
        self.assert_refused(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\n", 400)
        self.assert_refused(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400)

    def test_unknown_method_is_501(self):
        self.assert_refused(b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", 501)
        self.assert_refused(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
                            501)

    def test_unsupported_version_is_505(self):
        self.assert_refused(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505)
        self.assert_refused(b"GET / HTTP/3.0\r\n\r\n", 505)

    def test_a_header_block_over_8k_is_431(self):
        many = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 100) for i in range(100))
        self.assert_refused(b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n", 431)
        self.assert_refused(b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"v" * 9000 + b"\r\n\r\n",
                            431)
        self.assert_refused(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414)
        rc, out = curl("-o", "/dev/null", "-w", "%{http_code}", "-H", "X-Big: " + "b" * 9000,
                       self.server.url + "/hello.txt")
        self.assertEqual(out, b"431")

    def test_a_body_over_the_limit_is_413(self):
        self.assert_refused(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100001\r\n\r\n", 413)
        self.assert_refused(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"10000\r\n" + b"a" * 65536 + b"\r\n10000\r\n", 413)
        # curl asks with Expect: 100-continue and gets 413 before sending the body.
        path = os.path.join(self.root, "toobig")
        with open(path, "wb") as f:
            f.write(b"z" * 200000)
        rc, out = curl("-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "@" + path,
                       self.server.url + "/echo")
        self.assertEqual(out, b"413")

    def test_a_refused_body_does_not_reset_the_answer(self):
        # The client sends its whole body without waiting for 100 Continue: it
        # still reads the 413, then the close.
        for _ in range(2):
            sock = connect(self.server)
            self.addCleanup(sock.close)
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n")
            time.sleep(0.05)    # the 413 is sent and the server would close now
            try:
                sock.sendall(b"b" * 2000000)
            except OSError:
                pass
            reader = Reader(sock)
            r = reader.response()
            self.assertEqual(r.status, 413)
            self.assertTrue(reader.at_eof())

    def test_a_slow_reader_gets_the_whole_answer_before_the_close(self):
        # The answers (a MiB file, then the 400) are still in the server's send
        # buffer when it finishes writing, and unread junk sits in its receive
        # buffer.  A plain close would reset the connection and drop the unsent
        # tail; the lingering close sends it all, then FIN.
        sock = socket.socket()
        self.addCleanup(sock.close)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.settimeout(TIMEOUT)
        sock.connect((self.server.host, self.server.port))
        sock.sendall(b"GET /mib.bin HTTP/1.1\r\nHost: x\r\n\r\ngarbage\r\n\r\n" + b"j" * 100000)
        time.sleep(0.5)
        reader = Reader(sock)
        r = reader.response()
        self.assertEqual((r.status, len(r.body)), (200, MiB))
        self.assertEqual(reader.response().status, 400)
        self.assertTrue(reader.at_eof())

    def test_a_chunk_without_its_crlf_is_400(self):
        self.assert_refused(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"3\r\nabcX\r\n0\r\n\r\n", 400)
        self.assert_refused(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"zz\r\n", 400)

    def test_answers_queued_before_an_error_are_delivered(self):
        self.assert_refused(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                            b"GET /mib.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                            b"garbage\r\n\r\n"
                            b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", 400, before=(200, 200))
        self.assert_refused(b"GET /mib.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                            b"GET /x HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 10000 + b"\r\n\r\n",
                            431, before=(200,))


class HttpTimeoutTest(unittest.TestCase):
    """A server with one-second timeouts and no access log."""

    @classmethod
    def setUpClass(cls):
        cls.root, cls.pub = make_tree()
        # More than the kernel's socket buffers hold, so an answer stays queued.
        with open(os.path.join(cls.pub, "huge.bin"), "wb") as f:
            f.write(os.urandom(MiB) * 16)
        cls.server = Server("http_server", "-q", "-T", "1", "-k", "1", cls.pub)

    @classmethod
    def tearDownClass(cls):
        status, cls.log = cls.server.stop()
        shutil.rmtree(cls.root)
        assert status == 0, "http_server exited %r" % status
        assert cls.log == b"", "-q still logged %r" % cls.log[:200]

    def test_a_slow_header_block_gets_408(self):
        sock = connect(self.server)
        self.addCleanup(sock.close)
        start = time.monotonic()
        sock.sendall(b"GET /hello.txt HTTP/1.1\r\n")
        for _ in range(6):      # slowloris: a byte now and then, never the end
            time.sleep(0.25)
            try:
                sock.sendall(b"X")
            except OSError:
                break
        reader = Reader(sock)
        r = reader.response()
        self.assertEqual(r.status, 408)
        self.assertTrue(reader.at_eof())
        self.assertLess(time.monotonic() - start, 5)

    def test_a_slow_body_that_keeps_coming_is_answered(self):
        # The header timeout bounds the head only: an upload that takes longer
        # than -T but keeps sending is a slow client, not a slowloris.
        sock = connect(self.server)
        self.addCleanup(sock.close)
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
        for piece in (b"ab", b"cd", b"ef", b"gh"):
            time.sleep(0.5)
            sock.sendall(piece)
        r = Reader(sock).response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"abcdefgh")

    def test_an_idle_connection_is_closed_silently(self):
        sock = connect(self.server)
        self.addCleanup(sock.close)
        sock.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = Reader(sock)
        self.assertEqual(reader.response().status, 200)
        start = time.monotonic()
        self.assertTrue(reader.at_eof(5))
        self.assertGreater(time.monotonic() - start, 0.5)

    def test_a_long_download_is_not_idle(self):
        # 16 MiB is more than the socket buffers of both ends hold (shrinking the
        # receive buffer of a connected socket can stall its window for minutes).
        sock = connect(self.server)
        self.addCleanup(sock.close)
        sock.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(2)       # the answer waits in the queue past the idle timeout
        r = Reader(sock).response()
        self.assertEqual(len(r.body), 16 * MiB)


class HttpResumeTest(unittest.TestCase):
    """curl -C - resumes a 100 MB download with a Range request."""

    def test_curl_resumes_a_100mb_download(self):
        root = tempfile.mkdtemp(prefix="evc-http-")
        self.addCleanup(shutil.rmtree, root)
        block = os.urandom(MiB)
        path = os.path.join(root, "big.bin")
        digest = hashlib.sha256()
        with open(path, "wb") as f:
            for i in range(100):
                piece = i.to_bytes(4, "big") + block[4:]
                f.write(piece)
                digest.update(piece)
        server = Server("http_server", "-q", root)
        self.addCleanup(server.stop)
        out = os.path.join(root, "out.bin")
        # An interrupted download: the first 37 MB and a few bytes arrived.
        with open(path, "rb") as src, open(out, "wb") as dst:
            dst.write(src.read(37 * MiB + 5))
        rc, stdout = curl("-C", "-", "-o", out, "-w", "%{http_code}", server.url + "/big.bin")
        self.assertEqual((rc, stdout), (0, b"206"))
        with open(out, "rb") as f:
            got = hashlib.sha256()
            for piece in iter(lambda: f.read(MiB), b""):
                got.update(piece)
        self.assertEqual(got.hexdigest(), digest.hexdigest())


class HttpCliTest(unittest.TestCase):
    def test_help_and_sigterm(self):
        proc = subprocess.run([os.path.join(os.environ.get("EVC_EXAMPLES", "examples"),
                                            "http_server"), "--help"],
                              stdout=subprocess.PIPE, timeout=TIMEOUT)
        self.assertEqual(proc.returncode, 0)
        self.assertIn(b"usage:", proc.stdout)
        server = Server("http_server", "/")
        self.assertEqual(server.stop()[0], 0)

    def test_the_access_log_is_common_log_format(self):
        root, pub = make_tree()
        self.addCleanup(shutil.rmtree, root)
        server = Server("http_server", pub)
        conn = http.client.HTTPConnection(server.host, server.port, timeout=TIMEOUT)
        conn.request("GET", "/hello.txt")
        conn.getresponse().read()
        conn.request("GET", "/nothing")
        conn.getresponse().read()
        conn.close()
        sock = connect(server)
        sock.sendall(b"bad \"request\r\n\r\n")
        recv_all(sock)
        sock.close()
        status, log = server.stop()
        self.assertEqual(status, 0)
        lines = log.decode().splitlines()
        self.assertEqual(len(lines), 3, lines)
        clf = re.compile(r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "(.*)" '
                         r'(\d{3}) (\d+)$')
        parsed = [clf.match(line).groups() for line in lines]
        self.assertEqual(parsed, [("GET /hello.txt HTTP/1.1", "200", "13"),
                                  ("GET /nothing HTTP/1.1", "404", "14"),
                                  ("bad ?request", "400", "16")])


if __name__ == "__main__":
    main(sys.modules[__name__])

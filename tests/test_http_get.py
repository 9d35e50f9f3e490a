#!/usr/bin/env python3
"""Integration tests of examples/http_get against examples/http_server and
against Python's http.server (a handler in this process, on a thread), plus a
raw listener that checks requests are pipelined on one connection."""

import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_tap import TIMEOUT, Server, example, main  # noqa: E402


def http_get(*args):
    """Runs http_get; returns (exit status, stdout, stderr)."""
    proc = subprocess.run([example("http_get"), *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


BIG = os.urandom(300000)


class Handler(http.server.BaseHTTPRequestHandler):
    """Answers with each body framing HTTP has; HTTP/1.1 so connections persist."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/length":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BIG)))
            self.end_headers()
            self.wfile.write(BIG)
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in [b"one ", b"two ", BIG[:70000]]:
                self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")
        elif self.path == "/close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until the close\n")
            self.close_connection = True
        elif self.path == "/empty":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/moved":
            self.send_response(301)
            self.send_header("Location", "/length")
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"moved\n")
        else:
            self.send_error(404)


class HttpGetPythonServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        cls.thread = threading.Thread(target=cls.httpd.serve_forever, daemon=True)
        cls.thread.start()
        cls.url = "http://127.0.0.1:%d" % cls.httpd.server_address[1]

    @classmethod
    def tearDownClass(cls):
        cls.httpd.shutdown()
        cls.httpd.server_close()
        cls.thread.join(TIMEOUT)

    def test_content_length_chunked_and_close_delimited_bodies(self):
        rc, out, err = http_get(self.url + "/length", self.url + "/chunked", self.url + "/empty",
                                self.url + "/close")
        self.assertEqual((rc, err), (0, b""))
        self.assertEqual(out, BIG + b"one two " + BIG[:70000] + b"until the close\n")

    def test_no_redirect_is_followed_and_the_status_goes_to_stderr(self):
        rc, out, err = http_get(self.url + "/moved")
        self.assertEqual((rc, out), (1, b""))
        self.assertIn(b"301", err)
        rc, out, err = http_get(self.url + "/missing", self.url + "/empty")
        self.assertEqual(rc, 1)
        self.assertIn(b"/missing: 404", err)

    def test_output_file(self):
        root = tempfile.mkdtemp(prefix="evc-http-get-")
        self.addCleanup(shutil.rmtree, root)
        path = os.path.join(root, "out")
        rc, out, err = http_get("-o", path, self.url + "/length")
        self.assertEqual((rc, out), (0, b""))
        with open(path, "rb") as f:
            self.assertEqual(f.read(), BIG)


class HttpGetHttpServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="evc-http-get-")
        with open(os.path.join(cls.root, "a.txt"), "wb") as f:
            f.write(b"hello, world\n")
        with open(os.path.join(cls.root, "big"), "wb") as f:
            f.write(BIG)
        cls.server = Server("http_server", cls.root)

    @classmethod
    def tearDownClass(cls):
        status, _ = cls.server.stop()
        shutil.rmtree(cls.root)
        assert status == 0

    def test_files_and_a_chunked_stream_in_order(self):
        u = self.server.url
        rc, out, err = http_get(u + "/a.txt", u + "/stream?n=3", u + "/big", u + "/a.txt")
        self.assertEqual((rc, err), (0, b""))
        self.assertEqual(out, b"hello, world\nchunk 1 of 3\nchunk 2 of 3\nchunk 3 of 3\n" + BIG
                         + b"hello, world\n")

    def test_a_404_among_others(self):
        u = self.server.url
        rc, out, err = http_get(u + "/a.txt", u + "/nothing", u + "/a.txt")
        self.assertEqual(rc, 1)
        self.assertEqual(out, b"hello, world\nhello, world\n")
        self.assertIn(b"/nothing: 404 Not Found", err)


class HttpGetPipeliningTest(unittest.TestCase):
    def test_urls_on_one_host_are_pipelined_on_one_connection(self):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.settimeout(TIMEOUT)
        self.addCleanup(listener.close)
        url = "http://127.0.0.1:%d" % listener.getsockname()[1]
        proc = subprocess.Popen([example("http_get"), url + "/1", url + "/2", url + "/3"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            conn, _ = listener.accept()
            conn.settimeout(TIMEOUT)
            got = b""
            # All three requests arrive before any answer is sent.
            while got.count(b"\r\n\r\n") < 3:
                data = conn.recv(65536)
                self.assertTrue(data, "closed after %r" % got)
                got += data
            self.assertEqual([line.split(b" ")[1] for line in got.split(b"\r\n")
                              if line.startswith(b"GET ")], [b"/1", b"/2", b"/3"])
            conn.sendall(b"".join(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n%d\n" % i
                                  for i in (1, 2, 3)))
            out, err = proc.communicate(timeout=TIMEOUT)
            conn.close()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self.assertEqual((proc.returncode, out, err), (0, b"1\n2\n3\n", b""))


if __name__ == "__main__":
    main(sys.modules[__name__])

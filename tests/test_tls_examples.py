#!/usr/bin/env python3
"""TLS through the example programs (evc_tls(3)): curl and http_get against
http_server --cert, a 100 MB file byte-exact with the server's memory bounded,
a plaintext client at the HTTPS port, time_server/time_client, echo_server
with Python's ssl, smtplib's starttls() against smtp_sink, and plaintext
pipelined after STARTTLS (dropped).  Certificates are made with the openssl
command in a temporary directory.  Skipped when evchat was built without
OpenSSL."""

import hashlib
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_tap import TIMEOUT, Server, example, main  # noqa: E402

BIG = 100 * 1024 * 1024


def built_with_tls():
    out = subprocess.run([example("time_client"), "--tls", "-p", "1"], capture_output=True,
                         timeout=TIMEOUT)
    return b"built without TLS" not in out.stderr


def make_certificates(where):
    """A CA, and a certificate for localhost and 127.0.0.1 signed by it."""
    key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes".split()
    run = lambda *a: subprocess.run(["openssl", *a], cwd=where, check=True,  # noqa: E731
                                    capture_output=True)
    run("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=test-ca",
        "-days", "2")
    run("req", *key, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=localhost")
    with open(os.path.join(where, "san"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.crt", "-days", "2", "-extfile", "san")


@unittest.skipUnless(built_with_tls(), "built without OpenSSL")
class TlsExamples(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="evc-tls-")
        make_certificates(cls.dir)
        cls.ca = os.path.join(cls.dir, "ca.crt")
        cls.cert = ["--cert", os.path.join(cls.dir, "srv.crt"),
                    "--key", os.path.join(cls.dir, "srv.key")]
        cls.root = os.path.join(cls.dir, "www")
        os.mkdir(cls.root)
        with open(os.path.join(cls.root, "hello.txt"), "w") as f:
            f.write("hello, world\n")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def server(self, name, *args):
        s = Server(name, *args)
        self.addCleanup(lambda: s.proc.poll() is None and s.stop())
        return s

    def context(self):
        ctx = ssl.create_default_context(cafile=self.ca)
        return ctx

    # ------------------------------------------------------------ HTTPS

    def test_curl_gets_a_file_over_https(self):
        s = self.server("http_server", "-q", *self.cert, self.root)
        url = "https://localhost:%d/hello.txt" % s.port
        out = subprocess.run(["curl", "-sS", "--cacert", self.ca, url, url],
                             capture_output=True, timeout=TIMEOUT)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, b"hello, world\n" * 2)
        # Without the CA, curl refuses the certificate.
        bad = subprocess.run(["curl", "-sS", url], capture_output=True, timeout=TIMEOUT)
        self.assertNotEqual(bad.returncode, 0)
        self.assertEqual(s.stop()[0], 0)

    def test_a_plaintext_client_at_the_https_port(self):
        s = self.server("http_server", "-q", *self.cert, self.root)
        sock = socket.create_connection((s.host, s.port), timeout=TIMEOUT)
        sock.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        sock.close()
        self.assertNotIn(b"hello, world", data)
        # The server goes on.
        out = subprocess.run(["curl", "-sS", "--cacert", self.ca,
                              "https://127.0.0.1:%d/hello.txt" % s.port],
                             capture_output=True, timeout=TIMEOUT)
        self.assertEqual(out.stdout, b"hello, world\n")
        self.assertEqual(s.stop()[0], 0)

    def test_a_100_mb_file_byte_exact_with_bounded_memory(self):
        path = os.path.join(self.root, "big.bin")
        digest = hashlib.sha256()
        with open(path, "wb") as f:
            block = os.urandom(1 << 20)
            for i in range(BIG >> 20):
                piece = bytes([i & 0xff]) + block[1:]
                f.write(piece)
                digest.update(piece)
        self.addCleanup(os.unlink, path)
        s = self.server("http_server", "-q", *self.cert, self.root)
        started = time.monotonic()
        out = subprocess.run(["curl", "-sS", "--cacert", self.ca, "-o", "-",
                              "https://localhost:%d/big.bin" % s.port],
                             capture_output=True, timeout=120)
        seconds = time.monotonic() - started
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(len(out.stdout), BIG)
        self.assertEqual(hashlib.sha256(out.stdout).hexdigest(), digest.hexdigest())
        with open("/proc/%d/status" % s.proc.pid) as f:
            hwm = [line for line in f if line.startswith("VmHWM:")][0]
        peak_kb = int(hwm.split()[1])
        sys.stderr.write("# 100 MB over TLS in %.2f s, server peak RSS %d kB\n"
                         % (seconds, peak_kb))
        # AddressSanitizer keeps freed memory in quarantine: no bound to check there.
        with open("/proc/%d/maps" % s.proc.pid) as f:
            sanitized = "libasan" in f.read()
        if not sanitized:
            self.assertLess(peak_kb, 32 * 1024)
        self.assertEqual(s.stop()[0], 0)

    def test_http_get_over_tls(self):
        s = self.server("http_server", "-q", *self.cert, self.root)
        url = "https://localhost:%d/hello.txt" % s.port
        out = subprocess.run([example("http_get"), "--ca", self.ca, url, url],
                             capture_output=True, timeout=TIMEOUT)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, b"hello, world\n" * 2)
        plain_url = "http://127.0.0.1:%d/hello.txt" % s.port
        out = subprocess.run([example("http_get"), "--tls", "-k", plain_url],
                             capture_output=True, timeout=TIMEOUT)
        self.assertEqual(out.stdout, b"hello, world\n")
        # Not trusted: refused, and said why.
        out = subprocess.run([example("http_get"), url], capture_output=True, timeout=TIMEOUT)
        self.assertEqual(out.returncode, 1)
        self.assertIn(b"certificate verify failed", out.stderr)
        self.assertEqual(s.stop()[0], 0)

    # ------------------------------------------------------ time, echo

    def test_time_client_and_server(self):
        s = self.server("time_server", *self.cert)
        out = subprocess.run([example("time_client"), "-b", "localhost", "-p", str(s.port),
                              "--tls", "--ca", self.ca], capture_output=True, timeout=TIMEOUT)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout.decode(), r"^\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4}\n$")
        out = subprocess.run([example("time_client"), "-b", "localhost", "-p", str(s.port),
                              "--tls"], capture_output=True, timeout=TIMEOUT)
        self.assertEqual(out.returncode, 1)
        out = subprocess.run(["openssl", "s_client", "-quiet", "-CAfile", self.ca,
                              "-verify_return_error", "-connect", "127.0.0.1:%d" % s.port],
                             input=b"hi\r\n\r\n", capture_output=True, timeout=TIMEOUT)
        self.assertRegex(out.stdout.decode(), r"\d\d:\d\d:\d\d \d{4}\r\n$")
        self.assertEqual(s.stop()[0], 0)

    def test_echo_server_over_tls_ends_with_close_notify(self):
        s = self.server("echo_server", *self.cert)
        raw = socket.create_connection((s.host, s.port), timeout=TIMEOUT)
        sock = self.context().wrap_socket(raw, server_hostname="localhost")
        sock.sendall(b"hello\nsecond line\nBYE\nafter\n")
        data = b""
        while True:
            chunk = sock.recv(4096)   # SSLEOFError on a close without close_notify
            if not chunk:
                break
            data += chunk
        sock.close()
        self.assertEqual(data, b"hello\nsecond line\n")   # BYE closes, not echoed
        self.assertEqual(s.stop()[0], 0)

    # ------------------------------------------------------------- SMTP

    def test_smtplib_starttls(self):
        s = self.server("smtp_sink", *self.cert)
        with smtplib.SMTP(s.host, s.port, timeout=TIMEOUT) as smtp:
            smtp.ehlo()
            self.assertTrue(smtp.has_extn("starttls"))
            code, _ = smtp.starttls(context=self.context())
            self.assertEqual(code, 220)
            smtp.ehlo()
            self.assertFalse(smtp.has_extn("starttls"))
            smtp.sendmail("a@example.org", ["b@example.org"],
                          "Subject: over TLS\r\n\r\nsecret body\r\n")
        status, out = s.stop()
        self.assertEqual(status, 0)
        self.assertIn(b"secret body", out)
        self.assertIn(b"Subject: over TLS", out)

    def test_plaintext_pipelined_after_starttls_is_dropped(self):
        s = self.server("smtp_sink", *self.cert)
        raw = socket.create_connection((s.host, s.port), timeout=TIMEOUT)
        f = raw.makefile("rb")
        self.assertTrue(f.readline().startswith(b"220 "))
        # The injection: a command after STARTTLS in the same segment.
        raw.sendall(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n")
        self.assertTrue(f.readline().startswith(b"220 2.0.0"))
        sock = self.context().wrap_socket(raw, server_hostname="localhost")
        sock.sendall(b"EHLO me\r\nMAIL FROM:<good@example.org>\r\nQUIT\r\n")
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        sock.close()
        codes = [line[:4] for line in data.split(b"\r\n") if line]
        # EHLO's lines, MAIL accepted (it would be "503" after an injected MAIL), 221.
        self.assertEqual(codes[-2:], [b"250 ", b"221 "], data)
        self.assertNotIn(b"503", data)
        self.assertEqual(s.stop()[0], 0)


if __name__ == "__main__":
    main(sys.modules[__name__])

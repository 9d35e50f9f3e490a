"""What the HTTP integration tests share: running an example server on port 0,
raw sockets with deadlines, and a unittest runner that speaks TAP (the test
driver of `make check`).  Every helper is bounded in time; every process a
test starts is stopped by the fixture that started it, even when an
assertion fails."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

TIMEOUT = 10.0


def example(name):
    """Path of an example program ($EVC_EXAMPLES/name, else ./examples/name)."""
    return os.path.join(os.environ.get("EVC_EXAMPLES", "examples"), name)


class Server:
    """An example server started with "-p 0"; address from its first line."""

    def __init__(self, name, *args):
        self.proc = subprocess.Popen([example(name), "-p", "0", *args],
                                     stdout=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening on "):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("%s did not start: %r" % (name, line))
        self.host, port = line.split()[-1].rsplit(":", 1)
        self.port = int(port)
        self.url = "http://%s:%d" % (self.host, self.port)
        # The access log is read as it comes: a full pipe would stop the server.
        self.output = []
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self):
        for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):
            self.output.append(chunk)

    def stop(self):
        """SIGTERM; returns (exit status, the rest of stdout).  Kills after 10 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            status = -1
        self.reader.join(TIMEOUT)
        self.proc.stdout.close()
        return status, b"".join(self.output)


def connect(server):
    sock = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
    sock.settimeout(TIMEOUT)
    return sock


def recv_all(sock, deadline=TIMEOUT):
    """Reads until EOF (or the deadline passes: then what came)."""
    chunks = []
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            data = sock.recv(1 << 20)
        except socket.timeout:
            break
        except ConnectionResetError:
            chunks.append(b"<RST>")
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        return self.headers.get(name.lower())


class Reader:
    """Reads HTTP/1.1 responses one after the other from a raw socket, as a
    strict client would: status line, headers, then a Content-Length,
    chunked or close-delimited body."""

    def __init__(self, sock):
        self.sock, self.buf, self.eof = sock, b"", False

    def _fill(self):
        if self.eof:
            raise EOFError("connection closed")
        data = self.sock.recv(1 << 20)
        if not data:
            self.eof = True
            raise EOFError("connection closed")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response(self, head_request=False):
        parts = self._line().split(b" ", 2)
        status = int(parts[1])
        headers = {}
        while True:
            line = self._line()
            if not line:
                break
            name, value = line.split(b":", 1)
            headers[name.decode().lower()] = value.strip().decode()
        if head_request or status in (100, 204, 304):
            return Response(status, headers, b"")
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                body += self._take(size)
                assert self._take(2) == b"\r\n"
            return Response(status, headers, body)
        if "content-length" in headers:
            return Response(status, headers, self._take(int(headers["content-length"])))
        while not self.eof:
            try:
                self._fill()
            except EOFError:
                pass
        body, self.buf = self.buf, b""
        return Response(status, headers, body)

    def at_eof(self, deadline=TIMEOUT):
        """True when the peer closes with nothing more to read."""
        if self.buf:
            return False
        self.sock.settimeout(deadline)
        try:
            data = self.sock.recv(1 << 16)
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        self.buf += data
        return not data


class TapResult(unittest.TestResult):
    """Prints one TAP line per test as it ends."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.number = 0

    def _report(self, test, ok, why=""):
        self.number += 1
        print("%s %d - %s" % ("ok" if ok else "not ok", self.number, test.id()), flush=True)
        for line in why.splitlines():
            print("# " + line, flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._report(test, True)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._report(test, False, self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._report(test, False, self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.number += 1
        print("ok %d - %s # SKIP %s" % (self.number, test.id(), reason), flush=True)


def main(module):
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    print("1..%d" % suite.countTestCases(), flush=True)
    result = TapResult()
    suite.run(result)
    # A class fixture that failed is reported once more, as its own line.
    for test, err in result.errors:
        if not hasattr(test, "_testMethodName"):
            print("not ok - %s\n# %s" % (test, err.replace("\n", "\n# ")), flush=True)
    sys.exit(0 if result.wasSuccessful() else 1)

#!/usr/bin/env python3
"""Checks the program doc/porting-from-asynchat.md ports both ways: its C side
is a verbatim excerpt of examples/time_server.c (so the page cannot drift from
the example the other tests run), and its Python side is a working asynchat
server that examples/time_client gets the time from.  The Python side needs
asynchat (Python 3.11 or earlier, or the pyasynchat backport); without it that
test is skipped."""

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_tap import TIMEOUT, example, main  # noqa: E402

SRCDIR = os.environ.get("EVC_SRCDIR", ".")
DOC = os.path.join(SRCDIR, "doc", "porting-from-asynchat.md")
CTIME = re.compile(rb"^[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \d{4}\n$")


def block_after(marker):
    """The text of the fenced code block that follows the marker comment."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    at = text.index("<!-- porting-doc: %s" % marker)
    start = text.index("```", at)
    start = text.index("\n", start) + 1
    return text[start:text.index("\n```", start) + 1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortingDocTest(unittest.TestCase):
    def test_the_c_side_is_an_excerpt_of_the_real_example(self):
        excerpt = block_after("c excerpt of examples/time_server.c")
        with open(os.path.join(SRCDIR, "examples", "time_server.c"), encoding="utf-8") as f:
            source = f.read()
        self.assertGreater(excerpt.count("\n"), 20)
        self.assertIn(excerpt, source, "the page's C differs from examples/time_server.c: "
                      "copy the changed lines into the page")

    @unittest.skipUnless(importlib.util.find_spec("asynchat"), "no asynchat in this Python")
    def test_the_python_side_answers_time_client(self):
        port = free_port()
        program = block_after("python").replace('"127.0.0.1", 10001', '"127.0.0.1", %d' % port)
        self.assertIn(str(port), program)
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(program)
        self.addCleanup(os.unlink, f.name)
        server = subprocess.Popen([sys.executable, "-W", "ignore", f.name],
                                  stderr=subprocess.PIPE)
        self.addCleanup(server.wait)
        self.addCleanup(server.send_signal, signal.SIGKILL)
        deadline = time.monotonic() + TIMEOUT
        reply = None
        while time.monotonic() < deadline and server.poll() is None:
            proc = subprocess.run([example("time_client"), "-p", str(port)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  timeout=TIMEOUT)
            if proc.returncode == 0:
                reply = proc.stdout
                break
            time.sleep(0.1)   # the interpreter is still starting
        self.assertIsNotNone(reply, "time_client never got an answer")
        self.assertRegex(reply, CTIME)


if __name__ == "__main__":
    main(sys.modules[__name__])

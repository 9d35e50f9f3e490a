#!/usr/bin/env python3
"""Drives examples/smtp_sink with Python's smtplib, for tests/test_smtp_sink.c.

    smtp_client.py stdout HOST PORT      sends the messages below; prints (bytes) what
                                         smtpd.DebuggingServer would print for them
    smtp_client.py maildir HOST PORT DIR sends them; checks DIR/new holds each one byte
                                         for byte and tmp/ is empty; prints "ok"
    smtp_client.py size HOST PORT LIMIT  the two SIZE refusals (MAIL SIZE=, then a
                                         message over LIMIT with plain HELO); prints "ok"

Any failure raises, so the exit status is not 0 and the traceback says why.
"""
import email.generator
import email.message
import io
import os
import smtplib
import sys


def wire_form(data):
    """What the server must store for a bytes message smtplib sends: the bytes as
    they are (smtplib fixes line ends only in str messages), ending with a CRLF,
    which smtplib adds when the last line has none."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def printed_form(peer, stored):
    """smtpd.DebuggingServer's output for a message: its found_terminator drops the
    final CRLF (part of "\\r\\n.\\r\\n"), joins the CRLF-separated lines with "\\n",
    and process_message prints data.splitlines() with X-Peer before the first empty
    line, between the two marker lines."""
    data = b"\n".join(stored[:-2].split(b"\r\n"))
    out = [b"---------- MESSAGE FOLLOWS ----------"]
    in_headers = True
    for line in data.splitlines():
        if in_headers and not line:
            out.append(b"X-Peer: " + peer.encode())
            in_headers = False
        out.append(line)
    out.append(b"------------ END MESSAGE ------------")
    return b"".join(line + b"\n" for line in out)


def send_all(host, port):
    """Sends every message of the test over one connection; returns the messages as
    the server must store them, in order."""
    stored = []
    smtp = smtplib.SMTP(host, port, timeout=10)
    code, _ = smtp.ehlo()
    assert code == 250
    for ext in ("size", "8bitmime", "pipelining"):
        assert smtp.has_extn(ext), ext

    # send_message: lines that start with a dot (smtplib stuffs them, the server must
    # unstuff them), a line that is just ".", two To recipients and a Bcc one that
    # send_message strips from the headers but still sends to.
    msg = email.message.EmailMessage()
    msg["From"] = "sender@example.org"
    msg["To"] = "one@example.org, two@example.org"
    msg["Bcc"] = "hidden@example.org"
    msg["Subject"] = "dots"
    msg.set_content(".leading dot\n..two dots\n.\nmiddle.\n. space\n...\nlast\n")
    refused = smtp.send_message(msg)
    assert refused == {}, refused
    flat = io.BytesIO()
    email.generator.BytesGenerator(flat).flatten(msg, linesep="\r\n")
    # flatten() keeps the Bcc header; send_message drops it before flattening.
    lines = flat.getvalue().split(b"\r\n")
    stored.append(wire_form(b"\r\n".join(l for l in lines if not l.startswith(b"Bcc:"))))

    # A transaction abandoned with RSET leaves nothing behind.
    assert smtp.mail("dropped@example.org")[0] == 250
    assert smtp.rcpt("nobody@example.org")[0] == 250
    assert smtp.rset()[0] == 250

    # 8-bit text, a body whose first line is a dot, a last line without CRLF.
    body = "Subject: 8bit\r\n\r\n.first\r\nüñï©ødé\r\nno end".encode()
    assert smtp.sendmail("a@example.org", ["b@example.org"], body,
                         mail_options=["BODY=8BITMIME"]) == {}
    stored.append(wire_form(body))

    # Headers only: no empty line, so DebuggingServer prints no X-Peer.
    body = b"Subject: headers only\r\nX-Count: 1\r\n"
    assert smtp.sendmail("a@example.org", ["b@example.org", "c@example.org"], body) == {}
    stored.append(wire_form(body))

    # 300 KiB with a dot line every few lines: the end and the dots cross reads.
    lines = [b"Subject: big", b""]
    for i in range(6000):
        lines.append(b"." * (i % 4) + b"line %d of the big message" % i)
    body = b"\r\n".join(lines) + b"\r\n"
    assert smtp.sendmail("a@example.org", ["b@example.org"], body) == {}
    stored.append(wire_form(body))

    # A CR alone and a CR before a CRLF go through as they are; DebuggingServer
    # prints the first as a line break and the second as none.
    body = b"Subject: cr\r\n\r\na\rb\r\r\nc\r\r\r\nd\n\re\r\n"
    assert smtp.sendmail("a@example.org", ["b@example.org"], body) == {}
    stored.append(wire_form(body))

    assert smtp.quit()[0] == 221
    return stored


def check_maildir(directory, stored):
    new = os.path.join(directory, "new")
    names = sorted(os.listdir(new))
    got = []
    for name in names:
        with open(os.path.join(new, name), "rb") as f:
            got.append(f.read())
    missing = [m[:60] for m in stored if m not in got]
    unexpected = [m[:60] for m in got if m not in stored]
    assert not missing and not unexpected, "missing %r, unexpected %r" % (missing, unexpected)
    assert len(got) == len(stored), "%d messages, %d sent" % (len(got), len(stored))
    assert len(set(names)) == len(stored)
    assert os.listdir(os.path.join(directory, "tmp")) == []
    assert os.listdir(os.path.join(directory, "cur")) == []


def check_size(host, port, limit):
    smtp = smtplib.SMTP(host, port, timeout=10)
    smtp.ehlo()
    assert smtp.esmtp_features["size"] == str(limit)
    too_big = b"Subject: big\r\n\r\n" + b"x" * limit + b"\r\n"
    # After EHLO smtplib declares SIZE= in MAIL, and the server refuses at once.
    try:
        smtp.sendmail("a@example.org", ["b@example.org"], too_big)
        raise AssertionError("MAIL SIZE= over the limit was accepted")
    except smtplib.SMTPSenderRefused as e:
        assert e.smtp_code == 552, e
    smtp.quit()
    # After HELO there is no SIZE=: the message is read, discarded, then refused.
    smtp = smtplib.SMTP(host, port, timeout=10)
    smtp.helo()
    try:
        smtp.sendmail("a@example.org", ["b@example.org"], too_big)
        raise AssertionError("a message over the limit was accepted")
    except smtplib.SMTPDataError as e:
        assert e.smtp_code == 552, e
    # The session goes on: a message at the limit exactly is taken.
    at_limit = b"Subject: fits\r\n\r\n"
    at_limit += b"y" * (limit - len(at_limit) - 2) + b"\r\n"
    assert len(at_limit) == limit
    assert smtp.sendmail("a@example.org", ["b@example.org"], at_limit) == {}
    smtp.quit()


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "stdout":
        stored = send_all(host, port)
        sys.stdout.buffer.write(b"".join(printed_form(host, m) for m in stored))
    elif mode == "maildir":
        check_maildir(sys.argv[4], send_all(host, port))
        print("ok")
    elif mode == "size":
        check_size(host, port, int(sys.argv[4]))
        print("ok")
    else:
        raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    main()

"""Session limits and the defects a hostile client found: per-address limits, slow clients, the size edge,
pipelined excess recipients, NUL bytes; for ferry-smtpd, ferry-popd and ferry-mda."""
import os
import select
import socket
import subprocess
import time
import uuid

import pytest

from ferry_harness import LineConn, binary, wait_until

DEMO = "demo@example.test"


class Conn(LineConn):
    """A raw SMTP or POP3 connection from a chosen loopback source address."""

    def line(self):
        return self.raw_line().decode("latin-1")

    def reply(self):
        """One whole SMTP reply: (code, last line)."""
        while True:
            line = self.line()
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), line

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def readable(self):
        return bool(select.select([self.s], [], [], 0)[0])


def trickle(conn, data, interval, limit):
    """Sends `data` one byte per `interval` s until the server answers; (seconds taken, bytes sent)."""
    t0 = time.time()
    sent = 0
    while time.time() - t0 < limit:
        if conn.readable():
            return time.time() - t0, sent
        try:
            conn.send(data[sent % len(data):sent % len(data) + 1])
        except (BrokenPipeError, ConnectionResetError):
            return time.time() - t0, sent
        sent += 1
        time.sleep(interval)
    raise AssertionError(f"still connected after {limit} s and {sent} bytes")


def smtp_held(port, source, n):
    """n SMTP connections from `source` that got their 220."""
    held = []
    for _ in range(n):
        c = Conn(port, source)
        assert c.reply()[0] == 220
        held.append(c)
    return held


# ---- per-address limits ----

def test_smtpd_per_address_limit_n_allowed_n_plus_1_refused_other_address_served(host):
    host.set(smtpd_max_sessions_per_ip=4, smtpd_max_sessions=20)
    host.start("smtpd")
    port = host.port("smtp")
    held = smtp_held(port, "127.0.0.2", 4)
    over = Conn(port, "127.0.0.2")
    code, text = over.reply()
    assert code == 421 and "4.7.0" in text and "too many connections from your address" in text
    assert over.closed()
    host.wait_log("smtpd", r"connect from \[127\.0\.0\.2\] on smtp refused: .*smtpd_max_sessions_per_ip")
    other = Conn(port, "127.0.0.3")
    assert other.reply()[0] == 220
    assert other.cmd("EHLO other.test")[0] == 250
    # The held sessions still work, and closing one frees its place for the same address.
    assert held[0].cmd("NOOP")[0] == 250
    held[0].close()
    host.wait_log("smtpd", r"disconnect from \[127\.0\.0\.2\]")
    again = Conn(port, "127.0.0.2")
    assert again.reply()[0] == 220
    for c in held[1:] + [over, other, again]:
        c.close()


def test_smtpd_default_limits_let_another_address_in_while_one_floods(host):
    """With the defaults, one address opening 120 connections still leaves room for another."""
    host.start("smtpd")
    port = host.port("smtp")
    flood, codes = [], []
    for _ in range(120):
        c = Conn(port, "127.0.0.2")
        codes.append(c.reply()[0])
        flood.append(c)
    assert codes.count(220) == 50 and codes.count(421) == 70, "the default smtpd_max_sessions_per_ip is 50"
    other = Conn(port, "127.0.0.3")
    assert other.reply()[0] == 220
    assert other.cmd("EHLO other.test")[0] == 250
    for c in flood + [other]:
        c.close()


def test_popd_per_address_limit(host):
    host.set(popd_max_sessions_per_ip=3)
    host.start("popd")
    port = host.port("pop3")
    held = [Conn(port, "127.0.0.2") for _ in range(3)]
    assert all(c.line().startswith("+OK") for c in held)
    over = Conn(port, "127.0.0.2")
    line = over.line()
    assert line.startswith("-ERR [SYS/TEMP]") and "too many connections from your address" in line
    assert over.closed()
    host.wait_log("popd", r"refusing connection from 127\.0\.0\.2: too many connections from your address")
    other = Conn(port, "127.0.0.3")
    assert other.line().startswith("+OK")
    for c in held + [over, other]:
        c.close()


# ---- slow clients: deadlines and lifetime ----

def test_smtpd_data_one_byte_per_second_is_cut_off_at_the_rate_limit(host):
    # The idle timer (2 s) never fires: a byte comes every 0.3 s. 10 bytes/s are needed.
    host.set(smtpd_timeout="2s", smtpd_min_data_rate=10)
    host.start("smtpd")
    c = Conn(host.port("smtp"))
    assert c.reply()[0] == 220
    assert c.cmd("EHLO slow.test")[0] == 250
    assert c.cmd("MAIL FROM:<slow@outside.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<{DEMO}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    took, sent = trickle(c, b"Subject: slow\r\n\r\nxxxxxxxxxxxx\r\n", 0.3, 20)
    code, text = c.reply()
    assert code == 421 and "4.4.2" in text
    assert 2.5 < took < 8, took  # 2 s + about a third of a second for each ten bytes
    assert c.closed()
    host.wait_log("smtpd", r"S\w+: deadline exceeded after DATA from \[127\.0\.0\.1\]")
    assert host.spool_ids("queue") == [] and host.spool_ids("incoming") == []


def test_smtpd_command_line_trickle_is_cut_off(host):
    host.set(smtpd_timeout="2s")
    host.start("smtpd")
    c = Conn(host.port("smtp"))
    assert c.reply()[0] == 220
    took, _ = trickle(c, b"NOOP " + b"x" * 200, 0.3, 20)
    assert c.reply()[0] == 421
    assert 1.5 < took < 6, took
    host.wait_log("smtpd", r"deadline exceeded after CONNECT")


def test_smtpd_noop_every_half_second_is_cut_off_at_the_session_lifetime(host):
    host.set(smtpd_timeout="2s", smtpd_session_lifetime="3s")
    host.start("smtpd")
    c = Conn(host.port("smtp"))
    assert c.reply()[0] == 220
    t0 = time.time()
    while True:
        assert time.time() - t0 < 15, "a NOOP every 0.5 s held the session past its lifetime"
        code, text = c.cmd("NOOP")
        if code != 250:
            break
        time.sleep(0.5)
    assert code == 421 and "session lifetime exceeded" in text
    assert 2.5 < time.time() - t0 < 6
    host.wait_log("smtpd", r"S\w+: session lifetime exceeded after NOOP from \[127\.0\.0\.1\]")


def test_popd_noop_loop_ends_at_the_session_lifetime_and_a_trickled_line_at_the_deadline(host):
    host.set(popd_session_lifetime="3s", popd_command_deadline="1s", popd_idle_timeout="2s")
    host.start("popd")
    port = host.port("pop3")
    c = Conn(port)
    assert c.line().startswith("+OK")
    t0 = time.time()
    while True:
        assert time.time() - t0 < 15, "a NOOP every 0.5 s held the POP3 session past its lifetime"
        c.send("CAPA\r\n")
        line = c.line()
        if line.startswith("-ERR"):
            break
        while c.line() != ".":
            pass
        time.sleep(0.5)
    assert line.startswith("-ERR [SYS/TEMP]") and "lifetime" in line
    assert 2.5 < time.time() - t0 < 6
    assert c.closed()

    slow = Conn(port)
    assert slow.line().startswith("+OK")
    took, _ = trickle(slow, b"USER " + b"y" * 100, 0.3, 20)
    assert slow.line().startswith("-ERR") and 0.8 < took < 4, took
    host.wait_log("popd", r"P\w+: command not complete within popd_command_deadline")


# ---- size limit: accepted means deliverable ----

def sized_message(limit, tok):
    head = f"From: a@outside.test\r\nTo: {DEMO}\r\nSubject: edge {tok}\r\n\r\n"
    line = "x" * 76 + "\r\n"
    msg = head + line * ((limit - len(head) - 200) // len(line))
    msg += "y" * (limit - len(msg) - 2) + "\r\n"
    assert len(msg) == limit
    return msg


def send_data(port, msg):
    c = Conn(port)
    assert c.reply()[0] == 220
    assert c.cmd("EHLO size.test")[0] == 250
    assert c.cmd("MAIL FROM:<a@outside.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<{DEMO}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(msg + ".\r\n")
    reply = c.reply()
    c.cmd("QUIT")
    c.close()
    return reply


@pytest.mark.parametrize("under", [0, 1])
def test_message_of_exactly_the_advertised_size_is_delivered_with_its_received_header(host, under):
    host.set(message_size_limit=20000)
    host.start("mda", "qmgr", "smtpd")
    c = Conn(host.port("smtp"))
    c.reply()
    c.send("EHLO x.test\r\n")
    ehlo = []
    while True:
        line = c.line()
        ehlo.append(line)
        if line[3] == " ":
            break
    c.close()
    assert "250-SIZE 20000" in ehlo or "250 SIZE 20000" in ehlo
    tok = uuid.uuid4().hex
    code, text = send_data(host.port("smtp"), sized_message(20000 - under, tok))
    assert code == 250, text
    files = host.wait_mail(DEMO)
    data = open(files[0], "rb").read()
    assert tok.encode() in data and data.startswith(b"Return-Path:")
    assert b"\nReceived: from x.test" in data or b"Received: from size.test" in data
    assert "bounce" not in host.log("qmgr").lower()


def test_message_one_byte_over_the_size_is_refused_at_data(host):
    host.set(message_size_limit=20000)
    host.start("mda", "qmgr", "smtpd")
    code, text = send_data(host.port("smtp"), sized_message(20001, "over"))
    assert code == 552 and "5.3.4" in text
    assert host.spool_ids("queue") == []


# ---- pipelining more recipients than the limit ----

def test_150_pipelined_recipients_give_100_250_and_50_452_and_the_data_is_delivered_once(host):
    host.start("mda", "qmgr", "smtpd")
    c = Conn(host.port("smtp"))
    assert c.reply()[0] == 220
    c.send("EHLO pipe.test\r\n")
    while c.line()[3] != " ":
        pass
    tok = uuid.uuid4().hex
    rcpts = "".join(f"RCPT TO:<{DEMO}>\r\n" for _ in range(150))
    c.send(f"MAIL FROM:<p@outside.test>\r\n{rcpts}DATA\r\n")
    assert c.reply()[0] == 250
    codes = [c.reply()[0] for _ in range(150)]
    assert codes.count(250) == 100 and codes.count(452) == 50 and codes[:100] == [250] * 100
    assert c.reply()[0] == 354
    c.send(f"Subject: many {tok}\r\n\r\n{tok}\r\n.\r\n")
    assert c.reply()[0] == 250
    assert c.cmd("QUIT")[0] == 221
    files = host.wait_mail(DEMO)
    wait_until(lambda: host.spool_ids("queue") == [], 20, "the message to leave the queue")
    files = host.mail(DEMO)
    assert len([f for f in files if tok.encode() in open(f, "rb").read()]) == 1


# ---- NUL bytes ----

def test_nul_in_smtp_data_is_refused_and_never_ends_the_data(host):
    host.start("mda", "qmgr", "smtpd")
    c = Conn(host.port("smtp"))
    assert c.reply()[0] == 220
    assert c.cmd("EHLO nul.test")[0] == 250
    assert c.cmd("MAIL FROM:<n@outside.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<{DEMO}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    # A line of NUL then "." (the end of data for a C-string reader), then a smuggled transaction.
    c.send(b"Subject: nul\r\n\r\nbefore\r\n\x00.\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<" + DEMO.encode() +
           b">\r\nDATA\r\nsmuggled\r\n.\r\n")
    code, text = c.reply()
    assert code == 554 and "5.6.0" in text
    assert c.cmd("NOOP")[0] == 250  # the session goes on, nothing was read as a command
    host.wait_log("smtpd", r"discarded: .*NUL")
    assert host.spool_ids("queue") == [] and host.spool_ids("incoming") == []
    assert host.mail(DEMO) == []


def test_nul_in_lmtp_and_lda_input_is_refused(host):
    host.start("mda")
    sock = os.path.join(host.keys["run_dir"], "lmtp.sock")
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(sock)
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline().decode()
            assert line, "connection closed"
            if line[3] == " ":
                return line

    assert reply().startswith("220")
    s.sendall(f"LHLO q.test\r\nMAIL FROM:<n@outside.test>\r\nRCPT TO:<{DEMO}>\r\nDATA\r\n".encode())
    assert reply().startswith("250") and reply().startswith("250") and reply().startswith("250")
    assert reply().startswith("354")
    s.sendall(b"Subject: nul\r\n\r\n\x00.\r\n.\r\n")
    line = reply()
    assert line.startswith("554 5.6.0"), line
    s.close()

    p = subprocess.run([binary("mda"), "-c", host.conf, "-d", DEMO], input=b"Subject: x\n\nab\x00c\n",
                       capture_output=True, timeout=30)
    assert p.returncode == 65, p.stderr
    assert host.mail(DEMO) == []


# ---- graceful stop ----

def test_smtpd_sigterm_lets_a_message_in_data_finish_and_closes_idle_sessions(host):
    host.start("smtpd")
    port = host.port("smtp")
    idle = Conn(port)
    assert idle.reply()[0] == 220
    assert idle.cmd("EHLO idle.test")[0] == 250
    busy = Conn(port)
    assert busy.reply()[0] == 220
    assert busy.cmd("EHLO busy.test")[0] == 250
    assert busy.cmd("MAIL FROM:<b@outside.test>")[0] == 250
    assert busy.cmd(f"RCPT TO:<{DEMO}>")[0] == 250
    assert busy.cmd("DATA")[0] == 354
    busy.send("Subject: in flight\r\n\r\nfirst half\r\n")
    host.procs["smtpd"].terminate()
    code, text = idle.reply()
    assert code == 421 and "4.3.2" in text
    assert idle.closed()
    host.wait_log("smtpd", r"stopping once the sessions are done")
    assert host.procs["smtpd"].poll() is None  # still serving the message in DATA
    busy.send("second half\r\n.\r\n")
    assert busy.reply()[0] == 250
    assert busy.reply()[0] == 421
    assert host.procs["smtpd"].wait(timeout=10) == 0
    assert len(host.spool_ids("queue")) == 1


def test_popd_sigterm_closes_sessions_without_deleting(host):
    host.start("popd")
    c = Conn(host.port("pop3"))
    assert c.line().startswith("+OK")
    host.procs["popd"].terminate()
    line = c.line()
    assert line.startswith("-ERR [SYS/TEMP]") and "shutting down" in line
    assert c.closed()
    assert host.procs["popd"].wait(timeout=10) == 0

"""ferry-smtpd CHUNKING (RFC 3030): BDAT sessions over a raw socket and with TLS, and the Received: loop limit."""
import os
import re
import shutil
import socket
import ssl
import subprocess

import pytest

from ferry_harness import SmtpClient, wait_until

DEMO = "demo@example.test"


@pytest.fixture
def host(ferry):
    ferry.add_domain("example.test")
    ferry.add_account(DEMO, "demo-secret")
    return ferry


@pytest.fixture
def smtpd(host):
    """smtpd alone: accepted messages stay in spool/queue, where the test reads them."""
    host.set(message_size_limit="2k")
    host.start("smtpd")
    return host


def queued(f):
    """The data of every queued message (ferry-spool(5)): the bytes between the data record and END."""
    out = []
    for path in f.spool_files("queue"):
        with open(path, "rb") as fp:
            raw = fp.read()
        head, _, rest = raw.partition(b"\ndata\n")
        body, _, end = rest.rpartition(b"\nend ")
        data, late, checksum = end.split()  # no late fields here; the checksum is 8 hex digits
        assert int(data) == len(body) and int(late) == 0 and re.fullmatch(rb"[0-9a-f]{8}", checksum)
        out.append((head.decode(), body))
    return out


def transaction(c, rcpt=DEMO):
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<a@outside.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<{rcpt}>")[0] == 250


def test_ehlo_offers_chunking_but_not_binarymime(smtpd):
    c = SmtpClient(smtpd.port("smtp"))
    code, lines = c.cmd("EHLO client.test")
    assert code == 250
    assert "CHUNKING" in lines and "BINARYMIME" not in lines


def test_bdat_chunks_spooled_as_data_would_be(smtpd):
    c = SmtpClient(smtpd.port("smtp"))
    transaction(c)
    part1 = b"Subject: chunks\r\nX-A: 1\r\n\r\n.leading dot\r\n"
    part2 = b"..two dots\r\n.\r\nlast line\r\n"
    c.send(b"BDAT %d\r\n" % len(part1) + part1)
    assert c.reply() == (250, ["2.0.0 %d octets received" % len(part1)])
    c.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
    code, text = c.reply()
    assert code == 250 and "queued as" in text[0]
    [(head, body)] = queued(smtpd)
    # LF line ends in the spool; BDAT data is never dot-unstuffed; the Received: header on top.
    assert body.startswith(b"Received: from client.test")
    assert body.endswith(b"Subject: chunks\nX-A: 1\n\n.leading dot\n..two dots\n.\nlast line\n")
    assert "\nrcpt demo@example.test" in head
    assert c.cmd("QUIT")[0] == 221


def test_pipelined_bdat_then_quit_and_zero_length_chunks(smtpd):
    c = SmtpClient(smtpd.port("smtp"))
    assert c.cmd("EHLO client.test")[0] == 250
    msg = b"Subject: pipelined\r\n\r\nbody\r\n"
    c.send(b"MAIL FROM:<a@outside.test>\r\nRCPT TO:<demo@example.test>\r\nBDAT 0\r\nBDAT %d\r\n%sBDAT 0 LAST\r\nQUIT\r\n"
           % (len(msg), msg))
    assert c.reply()[0] == 250  # MAIL
    assert c.reply()[0] == 250  # RCPT
    assert c.reply() == (250, ["2.0.0 0 octets received"])
    assert c.reply() == (250, ["2.0.0 %d octets received" % len(msg)])
    code, text = c.reply()
    assert code == 250 and "queued as" in text[0]
    assert c.reply()[0] == 221
    [(_, body)] = queued(smtpd)
    assert body.endswith(b"Subject: pipelined\n\nbody\n")


def test_bdat_0_last_alone_queues_an_empty_message(smtpd):
    c = SmtpClient(smtpd.port("smtp"))
    transaction(c)
    code, text = c.cmd("BDAT 0 LAST")
    assert code == 250 and "queued as" in text[0]
    [(_, body)] = queued(smtpd)
    assert body.startswith(b"Received: ") and body.count(b"\n\t") >= 1


def test_bdat_out_of_sequence_is_503_and_its_chunk_is_skipped(smtpd):
    c = SmtpClient(smtpd.port("smtp"))
    assert c.cmd("EHLO client.test")[0] == 250
    # Before MAIL: the chunk holds what looks like commands; none of them may run.
    evil = b"MAIL FROM:<x@outside.test>\r\nRCPT TO:<demo@example.test>\r\n"
    c.send(b"BDAT %d\r\n" % len(evil) + evil + b"NOOP\r\n")
    code, text = c.reply()
    assert code == 503, text
    assert c.reply() == (250, ["2.0.0 Ok"])  # NOOP, the next command after the chunk
    assert c.cmd("MAIL FROM:<a@outside.test>")[0] == 250  # no nested MAIL: the chunk's MAIL never ran
    # Before RCPT.
    c.send(b"BDAT 4 LAST\r\nabcdNOOP\r\n")
    assert c.reply()[0] == 503
    assert c.reply()[0] == 250
    assert c.cmd("RCPT TO:<demo@example.test>")[0] == 250
    # DATA, or another RCPT, after BDAT in one transaction.
    c.send(b"BDAT 3\r\nx\r\n")
    assert c.reply()[0] == 250
    assert c.cmd("DATA")[0] == 503
    assert c.cmd("RCPT TO:<postmaster@example.test>")[0] == 503
    c.send(b"BDAT 2 LAST\r\n\r\n")
    assert c.reply()[0] == 250
    assert len(queued(smtpd)) == 1


def test_bdat_over_the_size_limit_is_552_and_the_session_goes_on(smtpd):
    c = SmtpClient(smtpd.port("smtp"))
    transaction(c)
    big = b"Subject: big\r\n\r\n" + b"x" * 1200 + b"\r\n"
    c.send(b"BDAT %d\r\n" % len(big) + big)
    assert c.reply()[0] == 250
    c.send(b"BDAT %d\r\n" % len(big) + big)  # 2k reached in this chunk: the rest of it is read and dropped
    code, text = c.reply()
    assert (code, text[0][:5]) == (552, "5.3.4"), text
    # The transaction failed (RFC 3030 3): a pipelined chunk after it is dropped with a 503.
    c.send(b"BDAT 5 LAST\r\nabcde")
    assert c.reply()[0] == 503
    assert c.cmd("NOOP")[0] == 250
    assert queued(smtpd) == []
    assert smtpd.spool_ids("incoming") == []
    transaction(c)
    c.send(b"BDAT 2 LAST\r\n\r\n")
    assert c.reply()[0] == 250
    assert len(queued(smtpd)) == 1


def test_bdat_size_that_does_not_parse_closes_the_session(smtpd):
    for bad in ("BDAT ten", "BDAT 99999999999999999999", "BDAT 10 NEXT"):
        c = SmtpClient(smtpd.port("smtp"))
        transaction(c)
        c.send(bad + "\r\n0123456789NOOP\r\n")
        code, _ = c.reply()
        assert code == 501, bad
        assert c.reply()[0] == 421
        assert c.read_all() == b""  # closed; the bytes after it were never taken for NOOP
    assert queued(smtpd) == []


def test_connection_drop_mid_chunk_leaves_nothing(smtpd):
    c = SmtpClient(smtpd.port("smtp"))
    transaction(c)
    c.send(b"BDAT 10\r\n0123456789")
    assert c.reply()[0] == 250
    c.send(b"BDAT 1000 LAST\r\nSubject: cut\r\n")
    c.sock.shutdown(socket.SHUT_RDWR)
    c.close()
    smtpd.wait_log("smtpd", r"discarded: connection lost during DATA or BDAT")
    wait_until(lambda: smtpd.spool_ids("incoming") == [], what="incoming/ empty")
    assert queued(smtpd) == []
    # The daemon carries on.
    c = SmtpClient(smtpd.port("smtp"))
    transaction(c)
    assert c.cmd("BDAT 0 LAST")[0] == 250


def test_tls_close_notify_mid_chunk(host):
    host.tls()
    host.start("smtpd")
    for cut in ("mid-chunk", "between-chunks"):
        c = SmtpClient(host.port("smtp"), timeout=15)
        assert c.cmd("EHLO client.test")[0] == 250
        assert c.cmd("STARTTLS")[0] == 220
        c.sock = ssl._create_unverified_context().wrap_socket(c.sock, server_hostname="mx.test")
        transaction(c)
        if cut == "mid-chunk":
            c.send(b"BDAT 5000 LAST\r\nSubject: tls\r\n\r\npartial")
        else:
            c.send(b"BDAT 9\r\nSubject: \r\n")
            assert c.reply()[0] == 250
        plain = c.sock.unwrap()  # close_notify in the middle of the message
        plain.close()
    host.wait_log("smtpd", r"discarded: connection lost during DATA or BDAT")
    wait_until(lambda: host.spool_ids("incoming") == [], what="incoming/ empty")
    assert queued(host) == []
    c = SmtpClient(host.port("smtp"))
    transaction(c)
    assert c.cmd("BDAT 0 LAST")[0] == 250
    assert host.procs["smtpd"].poll() is None


def received_flood(n):
    return "".join(f"Received: from hop{i}.test by hop{i + 1}.test; Fri, 27 Nov 2026 10:00:00 +0000\r\n"
                   for i in range(n))


@pytest.mark.parametrize("verb", ["DATA", "BDAT"])
def test_more_than_50_received_headers_is_554_5_4_6(host, verb):
    host.start("smtpd")
    for n, want in ((50, 250), (51, 554)):
        c = SmtpClient(host.port("smtp"))
        transaction(c)
        msg = (received_flood(n) + "Subject: loop\r\n\r\nbody\r\n").encode()
        if verb == "DATA":
            assert c.cmd("DATA")[0] == 354
            c.send(msg + b".\r\n")
        else:
            c.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
        code, text = c.reply()
        assert code == want, text
        if want == 554:
            assert text[0].startswith("5.4.6")
        assert c.cmd("NOOP")[0] == 250
    assert len(queued(host)) == 1  # only the one with 50
    assert host.spool_ids("incoming") == []


def test_smtpd_max_received_is_a_key(host):
    host.set(smtpd_max_received="2")
    host.start("smtpd")
    c = SmtpClient(host.port("smtp"))
    transaction(c)
    msg = (received_flood(3) + "\r\nx\r\n").encode()
    c.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
    assert c.reply()[0] == 554


@pytest.mark.skipif(not shutil.which("swaks"), reason="swaks is not installed")
def test_swaks_delivers(host):
    """swaks as a real client; with BDAT when this swaks has it (older ones lack --bdat)."""
    host.start("mda", "qmgr", "smtpd")
    helptext = subprocess.run(["swaks", "--help"], capture_output=True, text=True).stdout
    args = ["swaks", "--server", "127.0.0.1", "--port", str(host.port("smtp")), "--from", "a@outside.test",
            "--to", DEMO, "--header", "Subject: swaks", "--body", "via swaks"]
    if "bdat" in helptext.lower():
        args.append("--bdat")
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    [path] = host.wait_mail(DEMO)
    with open(path, "rb") as fp:
        assert b"via swaks" in fp.read()

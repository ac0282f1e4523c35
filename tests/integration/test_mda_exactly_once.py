"""ferry-mda delivers exactly once: its delivery record across repeated transactions, kills and disk faults,
and per-recipient replies from the worker pool while another mailbox is slow."""
import os
import random
import re
import smtplib
import socket
import threading
import time
import uuid

import pytest

from ferry_harness import BUILD, wait_until

DEMO = "demo@example.test"
OTHER = "other@example.test"
SLOW = "slow@example.test"
SENDER = "a@outside.test"
SHIM = os.path.join(BUILD, "tests", "tools", "fault-inject.so")


@pytest.fixture
def mda(ferry):
    ferry.add_domain("example.test")
    for account in (DEMO, OTHER, SLOW):
        ferry.add_account(account, "pw")
    return ferry


def fresh_qid():
    """A queue id as ferry-smtpd makes them: 13 hex digits of microseconds, 3 random ones."""
    usec = int(time.time() * 1e6) & ((1 << 52) - 1)
    return f"{usec:013X}{random.randrange(4096):03X}"


def message(qid, tok):
    received = (f"Received: from client.test (client.test [127.0.0.1])\r\n"
                f"\tby mx.test (ferry) with ESMTP id {qid};\r\n\tFri, 27 Nov 2026 12:00:00 +0000\r\n")
    return (received if qid else "") + f"From: {SENDER}\r\nSubject: {tok}\r\n\r\nbody {tok}\r\n"


def copies(f, address, tok):
    return [p for p in f.mail(address) if f"body {tok}\n".encode() in open(p, "rb").read()]


class Lmtp:
    """A raw LMTP client on ferry-mda's Unix socket: exact control of when each reply is read."""

    def __init__(self, f, timeout=30):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(os.path.join(f.keys["run_dir"], "lmtp.sock"))
        self.buf = b""
        assert self.reply()[0] == 220

    def reply(self):
        while True:
            lines = self.buf.split(b"\r\n")
            for i, line in enumerate(lines[:-1]):
                if re.match(rb"^\d{3} ", line):
                    self.buf = b"\r\n".join(lines[i + 1:])
                    return int(line[:3]), line[4:].decode()
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError(self.buf)
            self.buf += chunk

    def cmd(self, line):
        self.s.sendall(line.encode() + b"\r\n")
        return self.reply()

    def send_message(self, rcpts, msg):
        """LHLO, MAIL, RCPT..., DATA and the message with its final dot; the replies are read later."""
        assert self.cmd("LHLO qmgr.test")[0] == 250
        assert self.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        for r in rcpts:
            assert self.cmd(f"RCPT TO:<{r}>")[0] == 250
        assert self.cmd("DATA")[0] == 354
        self.s.sendall(msg.encode() + b".\r\n")

    def transaction(self, rcpts, msg):
        self.send_message(rcpts, msg)
        return [self.reply() for _ in rcpts]

    def close(self):
        self.s.close()


def transaction(f, rcpts, msg):
    c = Lmtp(f)
    try:
        return c.transaction(rcpts, msg)
    finally:
        c.close()


def base(path):
    return re.split(r"[,:]", os.path.basename(path))[0]


def test_a_repeated_transaction_gets_250_and_no_second_copy(mda):
    mda.start("mda")
    qid, tok = fresh_qid(), uuid.uuid4().hex
    first = transaction(mda, [DEMO, OTHER], message(qid, tok))
    assert first == [(250, f"2.0.0 <{DEMO}> delivered as {qid}"), (250, f"2.0.0 <{OTHER}> delivered as {qid}")]
    [demo], [other] = copies(mda, DEMO, tok), copies(mda, OTHER, tok)
    # The client lost the replies and tries again, with the same Received: header (the same queue id).
    again = transaction(mda, [DEMO, OTHER], message(qid, tok))
    assert again == [(250, f"2.0.0 <{DEMO}> already delivered as {base(demo)}"),
                     (250, f"2.0.0 <{OTHER}> already delivered as {base(other)}")]
    assert copies(mda, DEMO, tok) == [demo] and copies(mda, OTHER, tok) == [other]
    mda.wait_log("mda", rf"{qid}: to=<{DEMO}> already delivered to maildir as {re.escape(base(demo))}$")
    # A reader moving the message to cur/ changes nothing; a recipient new to the queue id is delivered.
    os.rename(demo, os.path.join(mda.maildir(DEMO), "cur", os.path.basename(demo) + ":2,S"))
    third = transaction(mda, [SLOW, DEMO], message(qid, tok))
    assert third == [(250, f"2.0.0 <{SLOW}> delivered as {qid}"),
                     (250, f"2.0.0 <{DEMO}> already delivered as {base(demo)}")]
    assert len(copies(mda, DEMO, tok)) == 1 and len(copies(mda, SLOW, tok)) == 1
    # Another message (another queue id) with the same content is delivered: the record is per queue id.
    assert transaction(mda, [DEMO], message(fresh_qid(), tok))[0][0] == 250
    assert len(copies(mda, DEMO, tok)) == 2


def test_a_large_header_arriving_in_pieces_still_gives_the_queue_id_and_one_copy(mda):
    """ferry-mda keeps only the header section of a message: it must be whole however the bytes arrive."""
    mda.start("mda")
    qid, tok = fresh_qid(), uuid.uuid4().hex
    filler = "".join(f"X-Filler-{i}: {'f' * 90}\r\n" for i in range(200))  # about 20 KB of header
    head = message(qid, tok).split("\r\n\r\n")[0] + "\r\n" + filler + f"X-Last: {tok}\r\n"
    body = "".join(f"line {i} of the body {tok}\r\n" for i in range(5000))  # about 200 KB
    msg = head + "\r\n" + f"body {tok}\r\n" + body

    def deliver():
        c = Lmtp(mda)
        try:
            for line, code in (("LHLO qmgr.test", 250), (f"MAIL FROM:<{SENDER}>", 250), (f"RCPT TO:<{DEMO}>", 250),
                               ("DATA", 354)):
                assert c.cmd(line)[0] == code
            # The Received: field split mid-line, the header in 1,000-octet pieces, the empty line that
            # ends it split between its CR LF and the one before it, then the body in one go.
            cut = head.index(qid) + 5
            pieces = [head[:cut]] + [head[i:i + 1000] for i in range(cut, len(head), 1000)]
            pieces += ["\r\n" + f"body {tok}\r\n" + body + ".\r\n"]
            for p in pieces:
                c.s.sendall(p.encode())
                time.sleep(0.005)
            return c.reply()
        finally:
            c.close()

    assert deliver() == (250, f"2.0.0 <{DEMO}> delivered as {qid}")
    [copy] = copies(mda, DEMO, tok)
    assert open(copy, "rb").read().endswith(msg.replace("\r\n", "\n").encode())  # after Return-Path: and the like
    code, text = deliver()
    assert (code, text) == (250, f"2.0.0 <{DEMO}> already delivered as {base(copy)}")
    assert copies(mda, DEMO, tok) == [copy]


def test_the_record_survives_a_restart(mda):
    mda.start("mda")
    qid, tok = fresh_qid(), uuid.uuid4().hex
    assert transaction(mda, [DEMO], message(qid, tok))[0][0] == 250
    mda.kill("mda")
    mda.start("mda")
    [(code, text)] = transaction(mda, [DEMO], message(qid, tok))
    assert code == 250 and "already delivered" in text, text
    assert len(copies(mda, DEMO, tok)) == 1


def test_without_a_ferry_queue_id_no_record_is_kept(mda):
    mda.start("mda")
    tok = uuid.uuid4().hex
    for _ in range(2):
        [(code, text)] = transaction(mda, [DEMO], message("", tok))
        assert code == 250 and "already" not in text, text
    assert len(copies(mda, DEMO, tok)) == 2  # at-least-once, as before: nothing to recognise it by


def test_a_second_mda_on_the_same_state_dir_refuses_to_start(mda):
    mda.start("mda")
    first = mda.procs["mda"]
    mda.set(mda_socket=os.path.join(mda.keys["run_dir"], "second.sock"))
    try:
        with pytest.raises(RuntimeError, match="another ferry-mda holds the lock"):
            mda.start("mda")
        assert mda.procs["mda"].returncode == 75
    finally:
        mda.procs["mda"] = first
        mda.set(mda_socket=os.path.join(mda.keys["run_dir"], "lmtp.sock"))
    # The first one keeps its socket and delivers.
    assert not os.path.exists(os.path.join(mda.keys["run_dir"], "second.sock"))
    assert transaction(mda, [DEMO], message(fresh_qid(), "still"))[0][0] == 250


# Kill ferry-mda at each point of the commit, restart it, and let ferry-qmgr retry: one copy each.
@pytest.mark.parametrize("point", ["mda-after-intent", "mda-after-tmp", "mda-after-link", "mda-before-reply"])
def test_mda_killed_at_each_commit_point_delivers_exactly_once(mda, point):
    mda.set(**{"mda.test_pause_at": point})
    mda.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    with smtplib.SMTP("127.0.0.1", mda.port("smtp"), timeout=30) as s:
        s.sendmail(SENDER, [DEMO, OTHER], message("", tok))
    qid = mda.wait_log("mda", rf"(\w+): paused at {point}").group(1)
    linked = point in ("mda-after-link", "mda-before-reply")
    # The first recipient's copy is in new/ exactly when the pause came after its link.
    assert len(copies(mda, DEMO, tok)) == (1 if linked else 0)
    mda.kill("mda")
    mda.set(**{"mda.test_pause_at": ""})
    mda.start("mda")
    wait_until(lambda: mda.spool_ids("queue") == [] and mda.spool_ids("state") == [], timeout=30,
               what="queue emptied")
    assert len(copies(mda, DEMO, tok)) == 1, mda.log("mda")
    assert len(copies(mda, OTHER, tok)) == 1, mda.log("mda")
    if linked:
        mda.wait_log("mda", rf"{qid}: to=<{DEMO}> already delivered")
    assert not re.search(r"status=(bounced|failed)", mda.log("qmgr"))


FAULTS = [("write", "ENOSPC", "tmp"), ("write", "EIO", "tmp"), ("fsync", "ENOSPC", "tmp"), ("fsync", "EIO", "tmp"),
          ("fsync", "ENOSPC", "new"), ("fsync", "EIO", "new")]


@pytest.mark.parametrize("call,err,sub", FAULTS)
def test_a_disk_fault_gives_4xx_and_no_copy_then_one_copy_once_it_clears(mda, call, err, sub):
    assert os.path.exists(SHIM), SHIM
    md = mda.maildir(DEMO)
    mda.start("mda", env={"LD_PRELOAD": SHIM, "FERRY_FAULT_PREFIX": f"{md}/{sub}", "FERRY_FAULT_CALL": call,
                          "FERRY_FAULT_ERRNO": err})
    qid, tok = fresh_qid(), uuid.uuid4().hex
    msg = message(qid, tok) + "a line of the body\r\n" * 2000
    [(code, text)] = transaction(mda, [DEMO], msg)
    assert 400 <= code < 500, (code, text)
    reason = {"ENOSPC": "No space left on device", "EIO": "Input/output error"}[err]
    mda.wait_log("mda", rf"{qid}: to=<{DEMO}> not delivered: .*{reason}")
    # The client's view and the disk agree: a 4xx left no copy anywhere a reader looks.
    assert mda.mail(DEMO) == []
    mda.restart("mda")
    [(code, text)] = transaction(mda, [DEMO], msg)
    assert (code, text) == (250, f"2.0.0 <{DEMO}> delivered as {qid}")
    assert len(copies(mda, DEMO, tok)) == 1


def test_a_failed_fdatasync_of_the_intent_records_links_no_copy_and_the_retry_delivers_once(mda):
    # The intent records' fdatasync runs on the record's own thread beside the copies' fsyncs; a
    # copy is linked only once it succeeded, so its failure leaves nothing a reader sees.
    record_dir = os.path.join(mda.keys["state_dir"], "mda") + "/"
    mda.start("mda", env={"LD_PRELOAD": SHIM, "FERRY_FAULT_PREFIX": record_dir, "FERRY_FAULT_CALL": "fsync",
                          "FERRY_FAULT_ERRNO": "EIO", "FERRY_FAULT_TIMES": "1"})
    qid, tok = fresh_qid(), uuid.uuid4().hex
    msg = message(qid, tok)
    replies = transaction(mda, [DEMO, OTHER], msg)
    assert [code for code, _ in replies] == [451, 451], replies
    assert all("delivery record" in text for _, text in replies), replies
    mda.wait_log("mda", rf"{qid}: to=<{DEMO}> not delivered: .*Input/output error")
    assert mda.mail(DEMO) == [] and mda.mail(OTHER) == []
    # The disk is well again: the retry finds the intents of the first attempt and makes one copy each.
    replies = transaction(mda, [DEMO, OTHER], msg)
    assert replies == [(250, f"2.0.0 <{DEMO}> delivered as {qid}"), (250, f"2.0.0 <{OTHER}> delivered as {qid}")]
    assert len(copies(mda, DEMO, tok)) == 1 and len(copies(mda, OTHER, tok)) == 1
    # And once more: answered from the record, no third copy.
    replies = transaction(mda, [DEMO, OTHER], msg)
    assert [code for code, _ in replies] == [250, 250], replies
    assert len(copies(mda, DEMO, tok)) == 1 and len(copies(mda, OTHER, tok)) == 1


def test_eio_on_the_fsync_of_new_again_and_again_through_the_queue_gives_one_copy(mda):
    md = mda.maildir(DEMO)
    mda.start("mda", env={"LD_PRELOAD": SHIM, "FERRY_FAULT_PREFIX": f"{md}/new", "FERRY_FAULT_CALL": "fsync",
                          "FERRY_FAULT_ERRNO": "EIO", "FERRY_FAULT_TIMES": "6"})
    mda.start("qmgr", "smtpd")
    tok = uuid.uuid4().hex
    with smtplib.SMTP("127.0.0.1", mda.port("smtp"), timeout=30) as s:
        s.sendmail(SENDER, [DEMO], message("", tok))
    wait_until(lambda: mda.spool_ids("queue") == [] and mda.spool_ids("state") == [], timeout=30,
               what="queue emptied")
    # Each failed attempt (a 451 to qmgr) left nothing; the one that worked left the only copy.
    failed = len(re.findall(r"not delivered: .*Input/output error", mda.log("mda")))
    assert failed >= 3 and len(re.findall(r"status=deferred \(451 ", mda.log("qmgr"))) == failed
    assert len(copies(mda, DEMO, tok)) == 1
    assert not re.search(r"status=(bounced|failed)", mda.log("qmgr"))


def slow_mda(f, delay_ms=3000):
    """ferry-mda whose fsyncs in SLOW's Maildir each take delay_ms, as on a slow or stalled disk."""
    f.start("mda", env={"LD_PRELOAD": SHIM, "FERRY_FAULT_PREFIX": f.maildir(SLOW) + "/", "FERRY_FAULT_CALL": "fsync",
                        "FERRY_FAULT_ERRNO": "none", "FERRY_FAULT_DELAY_MS": str(delay_ms)})


def test_a_slow_mailbox_does_not_hold_up_another_session(mda):
    slow_mda(mda)
    slow_qid, tok = fresh_qid(), uuid.uuid4().hex
    slow = Lmtp(mda)
    slow.send_message([SLOW], message(slow_qid, tok))
    mda.wait_log("mda", rf"{slow_qid}: from=<{SENDER}>")  # its delivery has started
    started = time.time()
    assert transaction(mda, [DEMO], message(fresh_qid(), tok))[0][0] == 250
    # The other session was answered while the slow one (two fsyncs of 3 s) is still on its way.
    assert time.time() - started < 3
    assert not re.search(rf"to=<{SLOW}> delivered", mda.log("mda"))
    assert slow.reply() == (250, f"2.0.0 <{SLOW}> delivered as {slow_qid}")
    slow.close()


def test_each_recipient_is_answered_as_soon_as_its_copy_is_durable(mda):
    slow_mda(mda)
    qid, tok = fresh_qid(), uuid.uuid4().hex
    c = Lmtp(mda)
    c.send_message([DEMO, SLOW], message(qid, tok))
    assert c.reply() == (250, f"2.0.0 <{DEMO}> delivered as {qid}")
    # The first reply came before the second recipient's copy was durable, not with it.
    assert not re.search(rf"to=<{SLOW}> delivered", mda.log("mda"))
    assert c.reply() == (250, f"2.0.0 <{SLOW}> delivered as {qid}")
    assert c.cmd("QUIT")[0] == 221
    c.close()
    assert len(copies(mda, DEMO, tok)) == 1 and len(copies(mda, SLOW, tok)) == 1


def test_a_client_that_hangs_up_while_its_delivery_is_stalled_is_answered_from_the_record(mda):
    slow_mda(mda, delay_ms=1500)
    qid, tok = fresh_qid(), uuid.uuid4().hex
    c = Lmtp(mda)
    c.send_message([SLOW], message(qid, tok))
    mda.wait_log("mda", rf"{qid}: from=<{SENDER}>")
    c.close()  # a client whose timeout ran out
    # The retry comes while the first attempt still runs: it is told to wait (451), never given a
    # second copy, and once the first attempt is done it is answered from the record.
    def retried():
        [(code, text)] = transaction(mda, [SLOW], message(qid, tok))
        assert code in (250, 451), (code, text)
        return code == 250
    wait_until(retried, timeout=30, what="the retry answered 250")
    assert len(copies(mda, SLOW, tok)) == 1
    mda.wait_log("mda", rf"{qid}: to=<{SLOW}> already delivered|Delivery in progress in another session")


def test_a_mailbox_slower_than_the_lmtp_timeout_gets_every_message_once(mda):
    # Each fsync in DEMO's Maildir takes 1.5 s, qmgr waits 1 s for a reply: every first attempt
    # times out while ferry-mda goes on, and the retries find the delivery in progress or done.
    mda.set(qmgr_lmtp_timeout="1s")
    mda.start("mda", env={"LD_PRELOAD": SHIM, "FERRY_FAULT_PREFIX": mda.maildir(DEMO) + "/",
                          "FERRY_FAULT_CALL": "fsync", "FERRY_FAULT_ERRNO": "none", "FERRY_FAULT_DELAY_MS": "1500"})
    mda.start("qmgr", "smtpd")
    toks = [uuid.uuid4().hex for _ in range(4)]
    with smtplib.SMTP("127.0.0.1", mda.port("smtp"), timeout=30) as s:
        for tok in toks:
            s.sendmail(SENDER, [DEMO], message("", tok))
    wait_until(lambda: mda.spool_ids("queue") == [] and mda.spool_ids("state") == [], timeout=90,
               what="queue emptied")
    assert [len(copies(mda, DEMO, tok)) for tok in toks] == [1] * len(toks), mda.log("mda")[-3000:]
    assert re.search(r"already delivered|Delivery in progress in another session", mda.log("mda"))
    assert not re.search(r"status=(bounced|failed)", mda.log("qmgr"))

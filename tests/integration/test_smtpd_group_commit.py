"""ferry-smtpd's group commit: several sessions' messages made durable in one batch, 250 only after it."""
import os
import re
import signal
import threading
import uuid

import pytest

from ferry_harness import BUILD, SmtpClient, wait_until

DEMO = "demo@example.test"
SHIM = os.path.join(BUILD, "tests", "tools", "fault-inject.so")


def message(tok):
    return f"From: a@outside.test\r\nTo: {DEMO}\r\nSubject: batch {tok}\r\n\r\nbody {tok}\r\n"


def copies(f, tok):
    return len([p for p in f.mail(DEMO) if f"body {tok}\n".encode() in open(p, "rb").read()])


def stopped(pid):
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] == "T"


class Sender:
    """One session sending one message in a thread; `reply` is the reply to its final dot, or
    `error` says the connection ended without one."""

    def __init__(self, f, tok=None):
        self.tok = tok or uuid.uuid4().hex
        self.reply = None
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(f.port("smtp"),))
        self.thread.start()

    def _run(self, port):
        try:
            c = SmtpClient(port)
            for cmd in ("EHLO batch.test", "MAIL FROM:<a@outside.test>", f"RCPT TO:<{DEMO}>"):
                assert c.cmd(cmd)[0] == 250, cmd
            assert c.cmd("DATA")[0] == 354
            c.send(message(self.tok).encode() + b".\r\n")
            self.reply = c.reply()
            c.close()
        except (OSError, AssertionError) as e:
            self.error = repr(e)

    def join(self):
        self.thread.join(30)
        assert not self.thread.is_alive()
        return self

    def code(self):
        return self.reply[0] if self.reply else None


class Pauses:
    """smtpd's stops at one pause point, in turn: next() waits for the next one (its "paused at" line
    and the stopped process) and gives its queue id; cont() lets it go on."""

    def __init__(self, f, point):
        self.f, self.point, self.seen = f, point, 0

    def next(self):
        def hits():
            return re.findall(rf"(\w+): paused at {self.point}$", self.f.log("smtpd"), re.M)
        wait_until(lambda: len(hits()) > self.seen, what=f"pause {self.seen + 1} at {self.point}")
        qid = hits()[self.seen]
        self.seen += 1
        wait_until(lambda: stopped(self.f.pid("smtpd")), what="smtpd stopped")
        return qid

    def cont(self):
        os.kill(self.f.pid("smtpd"), signal.SIGCONT)

    def pass_one(self):
        qid = self.next()
        self.cont()
        return qid


BATCH = 4


@pytest.mark.parametrize("where", ["first-fsync", "second-fsync"])
def test_smtpd_killed_in_the_middle_of_a_batch(host, where):
    """A batch of several sessions' messages, SIGKILLed once all are linked into queue/ and wait for
    the fsync of queue/ that began after their links: while the one before it still runs
    (`first-fsync`, which holds a message linked earlier too) or once it was answered and theirs runs
    (`second-fsync`). None of them had its 250; one fsync of queue/ answers the whole batch; after the
    restart each is absent or delivered once and none is quarantined (a killed process leaves its
    files whole), and each message answered 250 before is delivered once."""
    holds = os.path.join(host.root, "holds")
    gate = os.path.join(host.root, "hold-queue-fsync")
    os.makedirs(holds)
    spool = host.keys["spool_dir"]
    host.set(**{"smtpd.test_pause_at": "smtpd-after-publish"})
    host.start("mda", "qmgr")
    # fsyncs of queue/ wait for the test (held.<n> in `holds`) while `gate` exists.
    host.start("smtpd", env={"LD_PRELOAD": SHIM, "FERRY_FAULT_PREFIX": spool + "/queue", "FERRY_FAULT_CALL": "fsync",
                             "FERRY_FAULT_ERRNO": "none", "FERRY_FAULT_WHILE": gate, "FERRY_FAULT_HOLD_DIR": holds})
    pauses = Pauses(host, "smtpd-after-publish")

    accepted = []
    for _ in range(2):  # answered 250 before the kill: must be delivered exactly once
        s = Sender(host)
        pauses.pass_one()
        accepted.append(s.join())
        assert s.code() == 250, (s.reply, s.error)

    open(gate, "w").close()
    first = Sender(host)  # linked; the fsync of queue/ that answers it is held
    first_id = pauses.pass_one()
    wait_until(lambda: os.path.exists(os.path.join(holds, "held.1")), what="the first fsync of queue/ held")
    batch = [Sender(host) for _ in range(BATCH)]
    ids = [pauses.pass_one() for _ in batch]  # each linked, then waits for the next fsync of queue/
    queued = host.spool_ids("queue")
    assert first_id in queued and set(ids) <= set(queued), "not linked before the fsyncs"
    assert all(s.thread.is_alive() for s in [first, *batch]), "a reply before the commit was over"

    if where == "second-fsync":
        os.remove(os.path.join(holds, "held.1"))  # began before the batch's links: it answers `first` only
        assert first.join().code() == 250, (first.reply, first.error)
        accepted.append(first)
        wait_until(lambda: os.path.exists(os.path.join(holds, "held.2")), what="the batch's fsync of queue/ held")
        assert all(s.thread.is_alive() for s in batch), "a reply before the fsync of queue/ after its link"
        batch_senders = batch
    else:
        batch_senders = [first, *batch]
    assert not os.path.exists(os.path.join(holds, "held.3")), "more than one fsync of queue/ for the batch"

    host.kill("smtpd")
    for s in batch_senders:
        s.join()
        assert s.code() is None, f"{s.tok} answered {s.reply} although its commit was cut short"

    os.remove(gate)
    host.set(**{"smtpd.test_pause_at": ""})
    host.start("smtpd")
    host.restart("qmgr")  # its start-up removes incoming/ leftovers and finds what is in queue/
    marker = Sender(host).join()
    assert marker.code() == 250
    wait_until(lambda: copies(host, marker.tok) == 1, what="the marker delivered")
    wait_until(lambda: host.spool_ids("queue") == [] and host.spool_ids("state") == [], what="queue emptied")
    assert host.spool_ids("incoming") == []
    for s in accepted:
        assert copies(host, s.tok) == 1, s.tok
    for s in batch_senders:
        assert copies(host, s.tok) in (0, 1), s.tok
    assert host.spool_ids("corrupt") == []


def test_twenty_sessions_each_find_their_queue_file_at_their_250(host):
    """20 sessions end DATA together; at the moment each reads its 250 its file is in queue/, whole,
    and its incoming/ name is gone. (No qmgr runs, so nothing takes the file away meanwhile.)"""
    host.start("smtpd")
    spool = host.keys["spool_dir"]
    n = 20
    ready = threading.Barrier(n)
    seen = [None] * n

    def run(i):
        tok = uuid.uuid4().hex
        try:
            c = SmtpClient(host.port("smtp"))
            for cmd in ("EHLO many.test", "MAIL FROM:<a@outside.test>", f"RCPT TO:<{DEMO}>"):
                assert c.cmd(cmd)[0] == 250
            assert c.cmd("DATA")[0] == 354
            c.send(message(tok).encode() + b"x" * 2000 + b"\r\n")
            ready.wait(20)
            c.send(b".\r\n")
            code, text = c.reply()
            qid = re.search(r"queued as (\w+)", text[0]).group(1) if code == 250 else None
            # Checked before anything else is read or sent.
            path = os.path.join(spool, "queue", qid) if qid else None
            whole = path and os.path.exists(path) and f"body {tok}\n".encode() in open(path, "rb").read()
            gone = qid and not os.path.exists(os.path.join(spool, "incoming", qid))
            seen[i] = (code, bool(whole), bool(gone), qid)
            c.cmd("QUIT")
            c.close()
        except (OSError, AssertionError, threading.BrokenBarrierError) as e:
            seen[i] = repr(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(isinstance(s, tuple) and s[:3] == (250, True, True) for s in seen), seen
    assert sorted(s[3] for s in seen) == host.spool_ids("queue")
    assert len(host.spool_ids("queue")) == n


def test_pipelined_commands_after_the_end_of_data_wait_for_its_reply(host):
    """Commands sent with the final dot (and after BDAT LAST) are answered after the commit's 250,
    in order, each with its own code."""
    host.start("smtpd")
    c = SmtpClient(host.port("smtp"))
    assert c.cmd("EHLO flood.test")[0] == 250
    assert c.cmd("MAIL FROM:<a@outside.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<{DEMO}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    flood = ("MAIL FROM:<b@outside.test>\r\n" + f"RCPT TO:<{DEMO}>\r\n" + "RCPT TO:<nobody@example.test>\r\n"
             + "NOOP\r\n" * 40 + "BOGUS\r\n" + "RSET\r\n" + "MAIL FROM:<c@outside.test>\r\n"
             + f"RCPT TO:<{DEMO}>\r\n" + "DATA\r\n")
    c.send(message("one").encode() + b".\r\n" + flood.encode())
    expected = [250, 250, 250, 550] + [250] * 40 + [500, 250, 250, 250, 354]
    replies = [c.reply() for _ in expected]
    assert [r[0] for r in replies] == expected, replies
    assert replies[0][1][0].startswith("2.0.0 Ok: queued as ")
    body = message("three").encode()
    bdat = f"BDAT {len(body)} LAST\r\n".encode() + body
    c.send(message("two").encode() + b".\r\n" + b"MAIL FROM:<d@outside.test>\r\n" + f"RCPT TO:<{DEMO}>\r\n".encode()
           + bdat + b"NOOP\r\nQUIT\r\n")
    expected = [250, 250, 250, 250, 250, 221]
    more = [c.reply() for _ in expected]
    assert [r[0] for r in more] == expected, more
    c.close()
    queued = [re.search(r"queued as (\w+)", r[1][0]).group(1) for r in (replies[0], more[0], more[3])]
    assert sorted(queued) == host.spool_ids("queue"), queued


@pytest.mark.parametrize("then", ["running", "sigterm"])
def test_a_session_gone_during_its_commit_leaves_a_queued_and_notified_message(host, then):
    """The session's lifetime ends (421, closed, released) while its message's fsync of queue/ is
    held: the commit completes without it, is logged as queued, and qmgr, told, delivers it once;
    also when smtpd is stopping meanwhile (SIGTERM waits for such commits)."""
    holds = os.path.join(host.root, "holds")
    gate = os.path.join(host.root, "hold-queue-fsync")
    os.makedirs(holds)
    open(gate, "w").close()
    spool = host.keys["spool_dir"]
    host.set(smtpd_session_lifetime="3s")
    host.start("mda", "qmgr")
    host.start("smtpd", env={"LD_PRELOAD": SHIM, "FERRY_FAULT_PREFIX": spool + "/queue", "FERRY_FAULT_CALL": "fsync",
                             "FERRY_FAULT_ERRNO": "none", "FERRY_FAULT_WHILE": gate, "FERRY_FAULT_HOLD_DIR": holds})
    s = Sender(host)
    wait_until(lambda: os.path.exists(os.path.join(holds, "held.1")), what="the fsync of queue/ held")
    s.join()
    assert s.code() == 421, (s.reply, s.error)
    host.wait_log("smtpd", r"session lifetime exceeded")
    host.wait_log("smtpd", r"disconnect from")
    if then == "sigterm":
        os.kill(host.pid("smtpd"), signal.SIGTERM)
        assert host.procs["smtpd"].poll() is None
    os.remove(gate)
    os.remove(os.path.join(holds, "held.1"))
    host.wait_log("smtpd", r": from=<a@outside\.test> .*\(queued\)")
    if then == "sigterm":
        assert host.procs["smtpd"].wait(10) == 0
    # qmgr_scan_interval is an hour: only smtpd's notice brings the delivery.
    wait_until(lambda: copies(host, s.tok) == 1, what="delivered")
    wait_until(lambda: host.spool_ids("queue") == [], what="queue emptied")
    assert copies(host, s.tok) == 1
    assert (host.procs["smtpd"].poll() is None) == (then == "running")

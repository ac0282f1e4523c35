"""ferry-qmgr: spool recovery, retries while the mda is down, aliases, external mail, restarts, bad peers."""
import os
import re
import smtplib
import socket
import time
import uuid

import pytest

from ferry_harness import text_of, wait_until

DEMO = "demo@example.test"


# The spool as ferry-smtpd writes it (common/spool/spool.cpp, ferry-spool(5)): incoming/, then rename to queue/.

def queue_id():
    return uuid.uuid4().hex[:16].upper()


def queue_file(qid, sender, rcpts, data, late=""):
    head = f"ferry-queue 1\nid {qid}\narrival {int(time.time())}\nsender {sender}\nclient 127.0.0.1\nhelo test\n"
    head += "".join(f"rcpt {r}\n" for r in rcpts) + "data\n"
    if late:  # header fields found after the data: "end <data> <late>" (ferry-spool(5))
        return (head + data + late + f"\nend {len(data.encode())} {len(late.encode())}\n").encode()
    return (head + data + f"\nend {len(data.encode())}\n").encode()


def inject(f, rcpts, data=None, sender="a@outside.test", notify=True, late=""):
    """Commits a queue file as smtpd does and (optionally) sends NEW over qmgr_socket; returns the id."""
    qid = queue_id()
    data = data if data is not None else f"Subject: {qid}\n\nbody {qid}\n"
    spool = f.keys["spool_dir"]
    for d in ("incoming", "queue"):
        os.makedirs(os.path.join(spool, d), exist_ok=True)
    tmp = os.path.join(spool, "incoming", qid)
    with open(tmp, "wb") as fp:
        fp.write(queue_file(qid, sender, rcpts, data, late))
        fp.flush()
        os.fsync(fp.fileno())
    os.rename(tmp, os.path.join(spool, "queue", qid))
    if notify:
        with notifier(f) as s:
            s.sendall(f"VERSION ferry-qmgr 1 0\nNEW {qid}\n".encode())
    return qid


def notifier(f):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(os.path.join(f.keys["run_dir"], "qmgr.sock"))
    return s



def with_token(f, address, tok):
    return [p for p in f.mail(address) if tok.encode() in open(p, "rb").read()]



def test_late_header_fields_of_a_queue_file_are_delivered_before_the_message(host):
    # ferry-smtpd's checks of a whole message store their fields after it; every reader puts them first.
    host.start("mda", "qmgr")
    late = "X-Spam-Score: 0.5\nAuthentication-Results: mx.example.test;\n\tdkim=none\n"
    qid = inject(host, [DEMO], data="Received: from x\nSubject: late\n\nbody\n", late=late)
    host.wait_log("qmgr", rf"{qid}: removed$")
    [path] = host.mail(DEMO)
    text = open(path).read()
    assert text.index(late) < text.index("Received: from x\nSubject: late\n\nbody\n"), text
    assert text.endswith("Received: from x\nSubject: late\n\nbody\n"), text


def test_message_queued_while_mda_is_down_is_delivered_when_it_starts(host):
    host.start("qmgr", "smtpd")
    tok = uuid.uuid4().hex
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as s:
        s.sendmail("a@outside.test", [DEMO], f"Subject: {tok}\r\n\r\nbody {tok}\r\n")
    m = host.wait_log("qmgr", r"^.*: (\w+): to=<demo@example\.test> orig_to=<demo@example\.test> relay=local "
                              r"status=deferred \(cannot connect to .*\)$")
    qid = m.group(1)
    assert host.spool_ids("queue") == [qid]
    state_path = os.path.join(host.keys["spool_dir"], "state", qid)
    # The log line comes just before the state file is renamed into place.
    wait_until(lambda: os.path.exists(state_path), what="state file")
    state = open(state_path).read()
    assert re.search(r"^rcpt\t0\tdeferred\t[1-9]", state, re.M), state
    host.wait_log("qmgr", rf"{qid}: to=<demo@example\.test> .*status=deferred.*\n(.*\n)*.*{qid}: to=<demo@example\.test> "
                          r".*status=deferred", timeout=10)  # retried on the 1s schedule
    host.start("mda")
    host.wait_mail(DEMO, 1)
    host.wait_log("qmgr", rf"{qid}: to=<demo@example\.test> orig_to=<demo@example\.test> relay=local status=sent \(250")
    host.wait_log("qmgr", rf"{qid}: removed$")
    assert len(with_token(host, DEMO, tok)) == 1
    assert host.spool_ids("queue") == [] and host.spool_ids("state") == []


def test_alias_with_two_targets_delivers_to_both_maildirs(host):
    host.add_account("ann@example.test", "pw-ann")
    host.add_account("bob@example.test", "pw-bob")
    host.admin("alias", "add", "team@example.test", "ann@example.test", "bob@example.test")
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as s:
        s.sendmail("a@outside.test", ["team@example.test"], f"Subject: {tok}\r\n\r\nbody {tok}\r\n")
    host.wait_mail("ann@example.test", 1)
    host.wait_mail("bob@example.test", 1)
    host.wait_log("qmgr", r"to=<ann@example\.test> orig_to=<team@example\.test> relay=local status=sent")
    host.wait_log("qmgr", r"to=<bob@example\.test> orig_to=<team@example\.test> relay=local status=sent")
    host.wait_log("qmgr", r": removed$")
    assert len(with_token(host, "ann@example.test", tok)) == 1
    assert len(with_token(host, "bob@example.test", tok)) == 1
    assert host.mail("team@example.test") == []


def test_unknown_member_of_an_alias_bounces_alone(host):
    host.admin("alias", "add", "list@example.test", DEMO, "ghost@example.test")
    host.start("mda", "qmgr")
    qid = inject(host, ["list@example.test"])
    host.wait_mail(DEMO, 1)
    host.wait_log("qmgr", rf"{qid}: to=<ghost@example\.test> orig_to=<list@example\.test> relay=local status=bounced \(5")
    host.wait_log("qmgr", rf"{qid}: removed$")


def test_external_recipient_stays_in_the_queue(host):
    host.set(qmgr_scan_interval="1s")  # queue scans meanwhile must not deliver the local copy again
    host.start("mda", "qmgr")
    qid = inject(host, ["someone@remote.test", DEMO])
    host.wait_mail(DEMO, 1)
    host.wait_log("qmgr", rf"{qid}: to=<someone@remote\.test> orig_to=<someone@remote\.test> relay=none "
                          r"status=deferred \(no relay transport configured\)")
    state_path = os.path.join(host.keys["spool_dir"], "state", qid)
    # Several retries on the 1s schedule, and queue scans between them.
    wait_until(lambda: re.search(r"^rcpt\t0\tdeferred\t([3-9]|\d\d+)\t", text_of(state_path), re.M),
               what="three retries")
    assert host.spool_ids("queue") == [qid]
    state = open(state_path).read()
    assert re.search(r"^rcpt\t0\tdeferred\t([3-9]|\d\d+)\t\d+\tsomeone@remote\.test\tsomeone@remote\.test\t"
                     r"no relay transport configured$", state, re.M), state
    assert re.search(r"^rcpt\t1\tdelivered\t0\t", state, re.M), state
    assert len(host.mail(DEMO)) == 1  # the local copy went once, not on every retry
    assert f"{qid}: removed" not in host.log("qmgr")


def test_restart_delivers_queued_messages_exactly_once(host):
    host.add_account("ann@example.test", "pw-ann")
    host.start("mda")
    os.makedirs(os.path.join(host.keys["run_dir"]), exist_ok=True)
    # Three messages committed while no qmgr runs, so nobody is told: the start-up scan must find them.
    ids = [inject(host, [DEMO], notify=False) for _ in range(3)]
    # One more whose first recipient was already delivered before a crash, as its state file says.
    done_id = inject(host, [DEMO, "ann@example.test"], notify=False)
    os.makedirs(os.path.join(host.keys["spool_dir"], "state"), exist_ok=True)
    with open(os.path.join(host.keys["spool_dir"], "state", done_id), "w") as fp:
        fp.write(f"ferry-state 1\nid {done_id}\nrcpt\t0\tdone\t0\t0\t{DEMO}\t{DEMO}\t250 2.0.0 ok\nend 1\n")
    host.start("qmgr")
    host.wait_mail(DEMO, 3)
    host.wait_mail("ann@example.test", 1)
    for qid in ids + [done_id]:
        host.wait_log("qmgr", rf"{qid}: removed$")
    host.restart("qmgr")  # with the queue empty, its start-up scan has nothing to deliver again
    for qid in ids:
        assert len(with_token(host, DEMO, qid)) == 1
    assert with_token(host, DEMO, done_id) == []
    assert len(with_token(host, "ann@example.test", done_id)) == 1
    assert host.spool_ids("queue") == [] and host.spool_ids("state") == []


def test_start_up_recovers_every_spool_state(host):
    spool = host.keys["spool_dir"]
    for d in ("incoming", "queue", "state"):
        os.makedirs(os.path.join(spool, d), exist_ok=True)
    # incoming/: never accepted; removed.
    open(os.path.join(spool, "incoming", queue_id()), "wb").write(b"ferry-queue 1\nid X\n")
    # queue/ without an END record: moved to corrupt/, never deleted, never delivered.
    bad = queue_id()
    open(os.path.join(spool, "queue", bad), "wb").write(queue_file(bad, "a@b.test", [DEMO], "x\n")[:-8])
    # a half-written state file and an orphaned one (its queue file was removed): both removed.
    open(os.path.join(spool, "state", queue_id() + ".tmp"), "w").write("ferry-state 1\n")
    open(os.path.join(spool, "state", queue_id()), "w").write("ferry-state 1\nid X\nend 0\n")
    # a good message with a truncated state file: the state goes to corrupt/, the message is delivered.
    good = inject(host, [DEMO], notify=False)
    open(os.path.join(spool, "state", good), "w").write(f"ferry-state 1\nid {good}\nrcpt\t0\tdo")
    host.start("mda", "qmgr")
    host.wait_mail(DEMO, 1)
    host.wait_log("qmgr", rf"{good}: removed$")
    assert host.spool_ids("incoming") == []
    assert host.spool_ids("queue") == []
    assert host.spool_ids("state") == []
    assert sorted(host.spool_ids("corrupt")) == sorted([bad, good + ".state"])
    assert re.search(rf"{bad}: corrupt queue file", host.log("qmgr"))
    assert with_token(host, DEMO, bad) == []


def test_start_up_reads_found_files_whole_and_quarantines_a_torn_one(host):
    """Queue files ferry-smtpd wrote carry a checksum in their END record (ferry-spool(5)); a file
    ferry-qmgr finds at start-up is read whole against it. One whose data never reached the disk
    whole (same length, other bytes) goes to corrupt/ and is never delivered; the others are."""
    host.start("smtpd")
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as c:
        for tag in ("whole", "torn"):
            c.sendmail("a@outside.test", [DEMO], f"Subject: {tag}\n\n{tag}-body\n" + "x" * 5000 + "\n")
    host.stop_one("smtpd")
    ids = host.spool_ids("queue")
    assert len(ids) == 2
    spool = host.keys["spool_dir"]
    texts = {qid: open(os.path.join(spool, "queue", qid), "rb").read() for qid in ids}
    assert all(re.search(rb"\nend \d+ \d+ [0-9a-f]{8}\n$", t) for t in texts.values())
    [torn] = [qid for qid, t in texts.items() if b"torn-body" in t]
    [whole] = [qid for qid in ids if qid != torn]
    text = texts[torn]
    at = text.index(b"x" * 4096)
    with open(os.path.join(spool, "queue", torn), "r+b") as fp:  # a page of zeros, as after a crash
        fp.seek(at)
        fp.write(b"\0" * 4096)
    host.start("mda", "qmgr")
    host.wait_mail(DEMO, 1)
    host.wait_log("qmgr", rf"{whole}: removed$")
    host.wait_log("qmgr", rf"{torn}: corrupt queue file: checksum in END record does not match")
    assert host.spool_ids("corrupt") == [torn]
    assert host.spool_ids("queue") == []
    assert with_token(host, DEMO, "torn-body") == []
    assert len(with_token(host, DEMO, "whole-body")) == 1



def test_removed_queue_files_are_reused_and_every_message_arrives_whole_once(host):
    """qmgr keeps the files of removed messages in spare/; smtpd writes the next messages over them
    (ferry-spool(5)). Each message must still arrive once, with its own bytes only."""
    host.start("mda", "qmgr", "smtpd")
    spare = os.path.join(host.keys["spool_dir"], "spare")

    def send(tag, n, size):
        with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as c:
            for i in range(n):
                body = f"{tag}-{i}\n" + "x" * size
                c.sendmail("a@outside.test", [DEMO], f"Subject: {tag}-{i}\n\n{body}\n")

    send("first", 20, 20000)  # large, so a reused file holds more than the next message needs
    host.wait_mail(DEMO, 20)
    wait_until(lambda: host.spool_ids("queue") == [], 10, "queue empty")
    kept = {os.stat(p).st_ino for p in host.spool_files("spare")}
    # Messages delivered early in the batch may have served later ones already: 20 files at most.
    assert 0 < len(kept) <= 20
    send("second", 20, 10)
    host.wait_mail(DEMO, 40)
    wait_until(lambda: host.spool_ids("queue") == [], 10, "queue empty")
    for i in range(20):
        [path] = with_token(host, DEMO, f"second-{i}\n")
        text = open(path, "rb").read()
        assert b"x" * 11 not in text and text.count(b"second-") == 2  # Subject and body, nothing old
    for i in range(20):
        assert len(with_token(host, DEMO, f"first-{i}\n")) == 1
    # The second batch wrote into the first one's files: without reuse spare/ would hold 40.
    now = {os.stat(p).st_ino for p in host.spool_files("spare")}
    assert kept <= now and len(now) < 40
    assert host.spool_ids("corrupt") == []


def test_bad_notifications_drop_the_peer_not_qmgr(host):
    host.start("mda", "qmgr")
    pid = host.pid("qmgr")
    cases = [
        (b"GARBAGE\n", r"unknown notification"),
        (b"NEW 0123\n", r"NEW before VERSION"),
        (b"VERSION ferry-qmgr 2 0\n", r"protocol 2\.0, this qmgr speaks 1\.\d+"),
        (b"VERSION ferry-qmgr 1 0\nNEW ../../etc/passwd\n", r"bad queue id in NEW line"),
        (b"VERSION ferry-qmgr 1 0\n" + b"N" * 5000, r"line longer than 1024 bytes"),
        (b"\x00\xff\r\n", r"unknown notification"),
    ]
    for payload, logged in cases:
        with notifier(host) as s:
            s.sendall(payload)
            assert s.recv(100) == b""  # qmgr closed this peer
        host.wait_log("qmgr", logged)
    assert host.procs["qmgr"].poll() is None and host.pid("qmgr") == pid
    # A well-behaved peer, with a newer minor and extra fields, still gets its message delivered.
    qid = inject(host, [DEMO], notify=False)
    with notifier(host) as s:
        s.sendall(f"VERSION ferry-qmgr 1 7 extra\nNEW {qid} extra\n".encode())
        host.wait_mail(DEMO, 1)
    host.wait_log("qmgr", rf"{qid}: removed$")


def test_data_is_dot_stuffed_and_arrives_intact(host):
    host.start("mda", "qmgr")
    body = ".\n..\n.leading dot\nplain\n"
    qid = inject(host, [DEMO], data=f"Subject: dots\n\n{body}")
    [path] = host.wait_mail(DEMO, 1)
    text = open(path, "rb").read().decode()
    assert text.endswith(body), text
    assert "\r" not in text
    host.wait_log("qmgr", rf"{qid}: removed$")


def test_mda_rejection_of_an_unknown_user_bounces(host):
    host.start("mda", "qmgr")
    qid = inject(host, ["nobody@example.test", DEMO])
    host.wait_mail(DEMO, 1)
    host.wait_log("qmgr", rf"{qid}: .*status=bounced \(550 5\.1\.1 .*nobody@example\.test")
    host.wait_log("qmgr", rf"{qid}: removed$")


def test_scan_interval_finds_unannounced_messages(host):
    host.set(qmgr_scan_interval="1s")
    host.start("mda", "qmgr")
    qid = inject(host, [DEMO], notify=False)
    host.wait_mail(DEMO, 1, timeout=5)
    host.wait_log("qmgr", rf"{qid}: removed$")


class ScriptedLmtp:
    """A scripted LMTP server on mda_socket: records each transaction, answers per recipient from `answers`."""

    def __init__(self, path, answers):
        import threading
        self.answers = answers          # address -> (rcpt reply, data reply); default 250s
        self.data_reply = "354 go"      # the reply to DATA itself
        self.transactions = []          # (recipients, data bytes)
        self.connections = 0            # accepted so far
        self.drop_mail_after = None     # hang up at the MAIL after this many transactions on a connection
        self.dropped = 0                # connections hung up so
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                self.session(conn.makefile("rwb", buffering=0))

    def session(self, fp):
        fp.write(b"220 fake LMTP\r\n")
        rcpts, accepted = [], []
        done_here = 0
        while True:
            line = fp.readline()
            if not line:
                return
            cmd = line.decode().strip()
            verb = cmd.split(":")[0].split(" ")[0].upper()
            if verb == "LHLO":
                fp.write(b"250-fake\r\n250 PIPELINING\r\n")
            elif verb == "MAIL":
                if self.drop_mail_after is not None and done_here >= self.drop_mail_after:
                    self.dropped += 1
                    return  # as an agent that closed an idle connection just as the client used it
                rcpts, accepted = [], []
                fp.write(b"250 2.1.0 ok\r\n")
            elif verb == "RCPT":
                addr = cmd[cmd.index("<") + 1:cmd.index(">")]
                rcpts.append(addr)
                reply = self.answers.get(addr, ("250 2.1.5 ok", None))[0]
                if reply.startswith("2"):
                    accepted.append(addr)
                fp.write(reply.encode() + b"\r\n")
            elif verb == "DATA":
                fp.write(self.data_reply.encode() + b"\r\n")
                if not self.data_reply.startswith("354"):
                    self.transactions.append((rcpts, None))  # no body was sent
                    continue
                data = b""
                while True:
                    l = fp.readline()
                    if l == b".\r\n" or not l:
                        break
                    data += l
                self.transactions.append((rcpts, data))
                done_here += 1
                for a in accepted:
                    reply = self.answers.get(a, (None, None))[1] or f"250 2.0.0 <{a}> ok"
                    fp.write(reply.encode() + b"\r\n")
            elif verb == "QUIT":
                fp.write(b"221 bye\r\n")
                return
            else:
                fp.write(b"500 what\r\n")

    def close(self):
        self.sock.close()


def test_per_recipient_lmtp_replies_decide_each_recipient(host):
    for who in ("ann", "bob", "carl", "dora"):
        host.add_account(f"{who}@example.test", "pw")
    lmtp = ScriptedLmtp(os.path.join(host.keys["run_dir"], "lmtp.sock"), {
        "bob@example.test": ("250 2.1.5 ok", "451 4.2.0 try later"),
        "carl@example.test": ("250 2.1.5 ok", "552 5.2.2 over quota"),
        "dora@example.test": ("550 5.1.1 no such user", None),
    })
    try:
        host.start("qmgr")
        rcpts = [f"{w}@example.test" for w in ("ann", "bob", "carl", "dora")]
        qid = inject(host, rcpts, data="Subject: t\n\n.hidden\nend\n")
        host.wait_log("qmgr", rf"{qid}: to=<ann@example\.test> .*relay=local status=sent \(250 2\.0\.0 <ann@example\.test> ok\)")
        host.wait_log("qmgr", rf"{qid}: to=<bob@example\.test> .*relay=local status=deferred \(451 4\.2\.0 try later\)")
        host.wait_log("qmgr", rf"{qid}: to=<carl@example\.test> .*relay=local status=bounced \(552 5\.2\.2 over quota\)")
        host.wait_log("qmgr", rf"{qid}: to=<dora@example\.test> .*relay=local status=bounced \(550 5\.1\.1 no such user\)")
        rcpts0, data0 = lmtp.transactions[0]
        assert rcpts0 == rcpts
        assert data0 == b"Subject: t\r\n\r\n..hidden\r\nend\r\n"  # CRLF and dot-stuffed on the wire
        # Every retry (1s schedule, in whole seconds of the clock: the first may come before the answer
        # changes) goes to bob alone; then the message is done.
        lmtp.answers["bob@example.test"] = ("250 2.1.5 ok", None)
        host.wait_log("qmgr", rf"{qid}: to=<bob@example\.test> .*status=sent")
        host.wait_log("qmgr", rf"{qid}: removed$")
        retries = [t[0] for t in lmtp.transactions[1:]]
        assert retries and all(r == ["bob@example.test"] for r in retries), retries
    finally:
        lmtp.close()


def test_lmtp_server_that_hangs_up_defers_and_nothing_is_lost(host):
    path = os.path.join(host.keys["run_dir"], "lmtp.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    host.start("qmgr")
    qid = inject(host, [DEMO])
    conn, _ = srv.accept()
    conn.sendall(b"220 x\r\n")
    conn.recv(100)        # LHLO
    conn.sendall(b"250 x\r\n" + b"garbage reply line\r\n")
    host.wait_log("qmgr", rf"{qid}: to=<demo@example\.test> .*status=deferred \(lost connection to the delivery "
                          r"agent: protocol error: malformed reply line")
    conn.close()
    srv.close()
    os.unlink(path)
    host.start("mda")
    host.wait_mail(DEMO, 1)
    host.wait_log("qmgr", rf"{qid}: removed$")


def test_qmgr_max_deliveries_bounds_concurrent_transactions(host):
    import threading
    path = os.path.join(host.keys["run_dir"], "lmtp.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(16)
    conns = []

    def accept_all():  # accepts every connection and stays silent, so each transaction stays open
        while True:
            try:
                conns.append(srv.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept_all, daemon=True).start()
    host.set(qmgr_max_deliveries="2", qmgr_lmtp_timeout="30s")
    host.start("qmgr")
    for _ in range(4):
        inject(host, [DEMO])
    wait_until(lambda: len(conns) >= 2, what="two transactions")
    time.sleep(1.5)
    assert len(conns) == 2
    conns[0].close()  # that one is deferred, which frees a slot for a waiting message
    wait_until(lambda: len(conns) >= 3, what="a third transaction after a slot freed up")
    time.sleep(0.5)
    assert len(conns) == 3
    srv.close()
    for c in conns:
        c.close()


def test_lmtp_server_answering_data_with_250_gets_no_delivery_claimed(host):
    """A 2xx to DATA (instead of 354) is a protocol error: deferred, never taken as a delivery."""
    lmtp = ScriptedLmtp(os.path.join(host.keys["run_dir"], "lmtp.sock"), {})
    lmtp.data_reply = "250 2.0.0 whatever"
    try:
        host.start("qmgr")
        qid = inject(host, [DEMO])
        host.wait_log("qmgr", rf"{qid}: to=<demo@example\.test> .*relay=local status=deferred \(protocol error: "
                              r"DATA answered with 250 2\.0\.0 whatever\)")
        assert "status=sent" not in host.log("qmgr")
        assert host.spool_ids("queue") == [qid]
        assert lmtp.transactions == [([DEMO], None)]
        # Once the server behaves, the retry (1s schedule) delivers the body.
        lmtp.data_reply = "354 go"
        host.wait_log("qmgr", rf"{qid}: to=<demo@example\.test> .*relay=local status=sent")
        host.wait_log("qmgr", rf"{qid}: removed$")
        assert lmtp.transactions[-1][1] == f"Subject: {qid}\r\n\r\nbody {qid}\r\n".encode()
    finally:
        lmtp.close()


def test_queue_file_unreadable_for_lack_of_descriptors_is_retried_not_quarantined(host):
    import subprocess
    host.set(qmgr_scan_interval="1s")
    host.start("mda", "qmgr")
    pid = host.pid("qmgr")
    peer = notifier(host)
    peer.sendall(b"VERSION ferry-qmgr 1 0\n")
    time.sleep(0.3)
    used = len(os.listdir(f"/proc/{pid}/fd"))
    soft = subprocess.run(["prlimit", f"--pid={pid}", "--nofile", "--output=SOFT", "--noheadings", "--raw"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # Three more connections take qmgr to its (soft) limit: it can accept them, then open nothing else.
    subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={used + 3}:"], check=True)
    hogs = [notifier(host) for _ in range(3)]
    wait_until(lambda: len(os.listdir(f"/proc/{pid}/fd")) >= used + 3, what="qmgr at its descriptor limit")
    qid = inject(host, [DEMO], notify=False)
    peer.sendall(f"NEW {qid}\n".encode())
    host.wait_log("qmgr", rf"{qid}: cannot open .*{qid} \(Too many open files\); trying again at the next queue scan")
    # Later scans (each second) fail the same way, and quarantine nothing.
    failed_scan = rf"(queue scan|{qid}): cannot open .*Too many open files"
    wait_until(lambda: len(re.findall(failed_scan, host.log("qmgr"))) >= 3, what="two more scans")
    assert host.spool_ids("queue") == [qid]
    assert host.spool_ids("corrupt") == []
    assert not re.search(r"corrupt queue file|: moved .* to ", host.log("qmgr"))  # nothing quarantined
    for h in hogs:
        h.close()
    peer.close()
    subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={soft}:"], check=True)
    host.wait_mail(DEMO, 1)
    host.wait_log("qmgr", rf"{qid}: removed$")
    assert host.spool_ids("corrupt") == []


def test_qmgr_restart_spares_a_message_smtpd_is_still_receiving(host):
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    with socket.create_connection(("127.0.0.1", host.port("smtp")), timeout=30) as s:
        fp = s.makefile("rb")

        def cmd(line):
            if line is not None:
                s.sendall(line.encode() + b"\r\n")
            while True:
                reply = fp.readline().decode()
                if reply[3:4] != "-":
                    return reply
        assert cmd(None).startswith("220")
        assert cmd("EHLO client.test").startswith("250")
        assert cmd("MAIL FROM:<a@outside.test>").startswith("250")
        assert cmd(f"RCPT TO:<{DEMO}>").startswith("250")
        assert cmd("DATA").startswith("354")
        s.sendall(f"Subject: {tok}\r\n\r\nbody {tok}\r\n".encode())
        wait_until(lambda: host.spool_ids("incoming"), what="the message in incoming/")
        [incoming] = host.spool_ids("incoming")
        host.restart("qmgr")
        assert host.spool_ids("incoming") == [incoming]
        host.wait_log("qmgr", rf"{incoming}: incoming/{incoming} is still being received; left to its writer")
        reply = cmd(".")
        assert reply.startswith("250 2.0.0 Ok: queued as "), reply
        qid = reply.split()[-1]
        cmd("QUIT")
    host.wait_mail(DEMO, 1)
    host.wait_log("qmgr", rf"{qid}: removed$")
    assert len(with_token(host, DEMO, tok)) == 1
    assert host.spool_ids("incoming") == [] and host.spool_ids("queue") == []


def test_qmgr_lmtp_timeout_zero_is_refused_at_start(host):
    host.set(qmgr_lmtp_timeout="0")
    with pytest.raises(RuntimeError, match=r"ferry-qmgr exited 78"):
        host.start("qmgr")
    assert re.search(r"qmgr_lmtp_timeout must be at least 1s", host.log("qmgr"))


def log_time(line):
    """The wall-clock time of a log line (its leading ISO 8601 stamp, UTC, to the millisecond)."""
    from datetime import datetime
    return datetime.strptime(line.split(" ", 1)[0], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def test_messages_announced_while_nothing_is_in_flight_wait_the_gather_delay_and_start_together(host):
    host.set(qmgr_gather_delay_ms=1000)
    host.start("mda", "qmgr", "smtpd")
    toks = [uuid.uuid4().hex for _ in range(3)]
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as s:
        for tok in toks:
            s.sendmail("a@outside.test", [DEMO], f"Subject: {tok}\r\n\r\nbody {tok}\r\n")
    host.wait_mail(DEMO, 3)
    # ferry-mda logs a delivery once its batch is committed, a moment after the file is in new/.
    wait_until(lambda: host.log("mda").count("delivered to maildir") == 3, 20, "three deliveries logged")
    queued = [log_time(l) for l in host.log("smtpd").splitlines() if "(queued)" in l]
    delivered = [log_time(l) for l in host.log("mda").splitlines() if "delivered to maildir" in l]
    assert len(queued) == 3 and len(delivered) == 3, host.log("mda")[-2000:]
    # The first message waited the whole delay, and the two announced meanwhile waited with it.
    assert min(delivered) - queued[0] >= 0.95, (queued, delivered)
    for tok in toks:
        assert len(with_token(host, DEMO, tok)) == 1


@pytest.mark.parametrize("value, complaint", [("-1", "bad value \"-1\" for qmgr_gather_delay_ms"),
                                              ("1001", "qmgr_gather_delay_ms must be between 0 and 1000")])
def test_qmgr_gather_delay_ms_out_of_range_is_refused_at_start(host, value, complaint):
    host.set(qmgr_gather_delay_ms=value)
    with pytest.raises(RuntimeError, match=r"ferry-qmgr exited 78"):
        host.start("qmgr")
    assert complaint in host.log("qmgr")


def test_lmtp_transactions_carry_at_most_qmgr_lmtp_max_recipients(host):
    members = [f"m{i}@example.test" for i in range(5)]
    for m in members:
        host.add_account(m, "pw")
    host.admin("alias", "add", "all@example.test", *members)
    host.set(qmgr_lmtp_max_recipients=2)
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as s:
        s.sendmail("a@outside.test", ["all@example.test"], f"Subject: {tok}\r\n\r\nbody {tok}\r\n")
    for m in members:
        host.wait_mail(m, 1)
        assert len(with_token(host, m, tok)) == 1, m
    counts = sorted(int(n) for n in re.findall(r": from=<a@outside\.test> size=\d+ nrcpt=(\d+)", host.log("mda")))
    assert counts == [1, 2, 2], host.log("mda")[-2000:]


def test_a_second_qmgr_on_the_same_spool_refuses_and_the_first_keeps_working(host):
    import subprocess
    from ferry_harness import binary
    host.start("mda", "qmgr")
    sock = os.path.join(host.keys["run_dir"], "qmgr.sock")
    inode = os.stat(sock).st_ino
    second = subprocess.run([binary("qmgr"), "-c", host.conf], capture_output=True, text=True, timeout=30)
    assert second.returncode == 75, (second.returncode, second.stderr)  # EX_TEMPFAIL
    lock = os.path.join(host.keys["spool_dir"], "qmgr.lock")
    assert f"another ferry-qmgr holds {lock} (pid {host.pid('qmgr')})" in second.stdout + second.stderr
    assert os.stat(sock).st_ino == inode  # the first one's socket was not touched
    # The first keeps its socket and its spool: a notified message is delivered once.
    qid = inject(host, [DEMO])
    host.wait_log("qmgr", rf"{qid}: removed$")
    assert len(with_token(host, DEMO, f"body {qid}")) == 1
    assert host.procs["qmgr"].poll() is None


def test_a_state_file_that_cannot_be_saved_stops_work_on_the_message_until_it_can(host):
    # Every write under state/ fails (ENOSPC) while the switch file exists: nothing is handed off,
    # as a hand-off that could not be recorded would be repeated or forgotten after a crash. A first
    # attempt records nothing (ferry-spool(5)): ferry-mda is down for it, so the deferral needs a save.
    from ferry_harness import BUILD
    shim = os.path.join(BUILD, "tests", "tools", "fault-inject.so")
    assert os.path.exists(shim), shim
    switch = os.path.join(host.root, "disk-full")
    open(switch, "w").close()
    host.start("qmgr", env={"LD_PRELOAD": shim, "FERRY_FAULT_PREFIX": host.keys["spool_dir"] + "/state/",
                            "FERRY_FAULT_CALL": "write", "FERRY_FAULT_WHILE": switch})
    qid = inject(host, [DEMO])
    host.wait_log("qmgr", rf"{qid}: cannot save recipient state, no work on the message until it is saved")
    host.start("mda")
    time.sleep(2)  # the window in which a hand-off would show: none may come
    assert with_token(host, DEMO, f"body {qid}") == []
    assert "from=<" not in host.log("mda")
    assert host.spool_ids("queue") == [qid]
    os.unlink(switch)  # the disk has room again: the save is retried on its timer, then the delivery
    host.wait_log("qmgr", rf"{qid}: recipient state saved$", timeout=15)
    host.wait_log("qmgr", rf"{qid}: removed$")
    assert len(with_token(host, DEMO, f"body {qid}")) == 1


LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def test_wall_clock_steps_change_no_retry_and_send_no_early_delay_warning(host):
    # Only the daemon's wall clock moves (libfaketime, re-reading its offset from a file on each
    # call; the monotonic clock is left alone), never the machine's: a day back, then a day forward.
    assert os.path.exists(LIBFAKETIME), "libfaketime is needed for this test (./dev test installs faketime)"
    offset = os.path.join(host.root, "faketime")
    with open(offset, "w") as fp:
        fp.write("+0\n")
    host.set(maximal_queue_lifetime="5d", delay_warning_time="4h")  # retries every 1s (the harness)
    host.start("qmgr", env={"LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": offset,
                            "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    qid = inject(host, ["far@remote.test"])
    deferred = rf"{qid}: to=<far@remote\.test> .*status=deferred \(no relay transport configured\)"

    def retries():
        return len(re.findall(deferred, host.log("qmgr")))

    for step in ("-1d", "+1d"):
        wait_until(lambda: retries() >= 2, what="retries")
        before = retries()
        with open(offset, "w") as fp:
            fp.write(step + "\n")
        # On the monotonic schedule the retries go on every second; on the wall clock a step back
        # would park the recipient for a day.
        wait_until(lambda: retries() >= before + 3, timeout=10, what=f"retries after a step of {step}")
    log = host.log("qmgr")
    # A day forward is not a day in the queue: no delay warning (due after 4h), no expiry.
    assert "delay notification" not in log, log[-2000:]
    assert "status=expired" not in log
    assert host.spool_ids("queue") == [qid]


def test_local_deliveries_reuse_one_lmtp_connection(host):
    """After a clean transaction the connection to the delivery agent waits for the next one:
    three messages one after another make one connection, each its own MAIL transaction."""
    lmtp = ScriptedLmtp(os.path.join(host.keys["run_dir"], "lmtp.sock"), {})
    try:
        host.start("qmgr")
        for n in range(3):
            qid = inject(host, [DEMO])
            host.wait_log("qmgr", rf"{qid}: to=<demo@example\.test> .*relay=local status=sent")
        assert len(lmtp.transactions) == 3
        assert lmtp.connections == 1
    finally:
        lmtp.close()


def test_idle_lmtp_connection_the_agent_closed_is_replaced_without_a_deferral(host):
    """The agent hangs up an idle connection just as qmgr starts the next transaction on it (no reply
    to MAIL): qmgr connects again at once and delivers; nothing is deferred."""
    lmtp = ScriptedLmtp(os.path.join(host.keys["run_dir"], "lmtp.sock"), {})
    lmtp.drop_mail_after = 1
    try:
        host.start("qmgr")
        first = inject(host, [DEMO])
        host.wait_log("qmgr", rf"{first}: to=<demo@example\.test> .*status=sent")
        second = inject(host, [DEMO])
        host.wait_log("qmgr", rf"{second}: to=<demo@example\.test> .*relay=local status=sent")
        assert not re.search(rf"{second}: .*status=deferred", host.log("qmgr"))
        assert lmtp.dropped == 1, "the second message did not start on the first connection"
        assert len(lmtp.transactions) == 2 and lmtp.connections == 2
    finally:
        lmtp.close()


def test_mda_restart_between_deliveries_loses_and_defers_nothing(host):
    """ferry-mda restarts while qmgr keeps an idle connection to it: the next message is delivered
    at once over a new connection."""
    host.start("mda", "qmgr")
    first = inject(host, [DEMO])
    host.wait_mail(DEMO, 1)
    host.wait_log("qmgr", rf"{first}: removed$")
    host.restart("mda")
    second = inject(host, [DEMO])
    host.wait_mail(DEMO, 2)
    host.wait_log("qmgr", rf"{second}: removed$")
    assert not re.search(rf"{second}: .*status=deferred", host.log("qmgr"))

"""Durability at the system-call level: the commit order traced with strace, and disk faults injected under smtpd."""
import imaplib
import os
import re
import shutil
import signal
import smtplib
import threading
import uuid

import pytest

from ferry_harness import BUILD, SmtpClient, wait_until

DEMO = "demo@example.test"
TRACED = "write,writev,sendto,sendmsg,fsync,fdatasync,link,linkat,rename,renameat,renameat2"



@pytest.fixture
def host(ferry):
    ferry.add_domain("example.test")
    ferry.add_account(DEMO, "demo-secret")
    yield ferry
    # Under strace the harness holds strace's pid: end the traced daemons first, strace follows.
    for name, p in ferry.procs.items():
        for child in traced_children(p.pid):
            os.kill(child, signal.SIGKILL)


def traced_children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def start_traced(f, name, strings=64):
    assert shutil.which("strace"), "strace is needed for this test (./dev test installs it)"
    trace = os.path.join(f.root, f"{name}.trace")
    f.start(name, wrapper=("strace", "-f", "-qq", "-y", "-s", str(strings), "-o", trace, "-e", "trace=" + TRACED))
    return trace


# One system call per line: "pid name(args) = result"; an interrupted one is read from its first line.
CALL = re.compile(r"^\d+\s+(\w+)\((.*?)(?:\) += (-?\d+)| <unfinished \.\.\.>)")


def calls(trace):
    out = []
    with open(trace, errors="replace") as fh:
        for line in fh:
            m = CALL.match(line)
            if m:
                out.append((m.group(1), m.group(2), m.group(3)))
    return out


def fd_path(args):
    """The path strace -y prints for the first argument, "5</dir/file>" -> "/dir/file"."""
    m = re.match(r"\d+<(.*?)>", args)
    return m.group(1) if m else ""


def is_socket(args):
    return bool(re.match(r"\d+<(?:TCP|TCPv6|UNIX|UNIX-STREAM|socket):", args)) or "socket:[" in args.split(",")[0]


def commit_order(trace, file_dir, target_dir):
    """Indexes of: the last write of the message file (under file_dir), its fsync, its link or rename
    into target_dir, the fsync of target_dir, and the first 250 written to a socket after the file's
    last write (replies to pipelined commands before the data may be written after its first). Asserts
    each exists."""
    seq = calls(trace)
    writes = [i for i, (n, a, _) in enumerate(seq) if n in ("write", "writev") and fd_path(a).startswith(file_dir + "/")]
    assert writes, f"no write to a file in {file_dir}:\n" + open(trace).read()[-3000:]
    name = fd_path(seq[writes[-1]][1])
    fd = re.match(r"\d+", seq[writes[-1]][1]).group(0)
    last = writes[-1]
    # An unnamed file (O_TMPFILE) is linked through /proc/self/fd.
    moved = [i for i, (n, a, _) in enumerate(seq) if n in ("link", "linkat", "rename", "renameat", "renameat2")
             and (name in a or f'"/proc/self/fd/{fd}"' in a) and target_dir + "/" in a]
    assert moved, f"{name} never linked or renamed into {target_dir}"
    link = moved[0]
    file_syncs = [i for i, (n, a, r) in enumerate(seq) if n in ("fsync", "fdatasync") and fd_path(a) == name and r in ("0", None)]
    assert file_syncs, f"{name} never fsync'd"
    dir_syncs = [i for i, (n, a, r) in enumerate(seq) if n in ("fsync", "fdatasync") and fd_path(a) == target_dir
                 and r in ("0", None) and i > link]
    assert dir_syncs, f"{target_dir} never fsync'd after the link"
    replies = [i for i, (n, a, _) in enumerate(seq) if i > last and n in ("write", "writev", "sendto", "sendmsg")
               and is_socket(a) and re.search(r'"250[ -]', a)]
    assert replies, "no 250 written to a socket after the message"
    file_sync = max(i for i in file_syncs if i < link) if any(i < link for i in file_syncs) else file_syncs[0]
    return last, file_sync, link, dir_syncs[0], replies[0]


def test_smtpd_commit_order_write_link_then_both_fsyncs_then_250(host):
    """ferry-smtpd links the whole file (END record and checksum written) into queue/ first, then
    fsyncs the file and queue/ side by side (ferry-spool(5), COMMIT PROTOCOL): both come after the
    link and before the 250."""
    trace = start_traced(host, "smtpd")
    spool = host.keys["spool_dir"]
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as s:
        s.sendmail("a@outside.test", [DEMO], "Subject: durable\r\n\r\n" + "line of the body\r\n" * 5000)
    wait_until(lambda: host.spool_ids("queue"), what="queued")
    write, fsync_file, link, fsync_dir, reply = commit_order(trace, spool + "/incoming", spool + "/queue")
    assert write < link < fsync_file < reply, (write, link, fsync_file, reply)
    assert link < fsync_dir < reply, (link, fsync_dir, reply)
    [qid] = host.spool_ids("queue")
    assert re.search(rb"\nend \d+ \d+ [0-9a-f]{8}\n$", open(os.path.join(spool, "queue", qid), "rb").read())


def test_mda_commit_order_write_fsync_link_fsync_dir_then_250(host):
    trace = start_traced(host, "mda")
    host.start("qmgr", "smtpd")
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as s:
        s.sendmail("a@outside.test", [DEMO], "Subject: durable\r\n\r\nbody\r\n")
    host.wait_mail(DEMO, 1)
    host.wait_log("qmgr", r"status=sent")
    md = os.path.realpath(host.maildir(DEMO))
    write, fsync_file, link, fsync_dir, reply = commit_order(trace, md + "/tmp", md + "/new")
    assert write < fsync_file < link < fsync_dir < reply, (write, fsync_file, link, fsync_dir, reply)


def deliver_one(host, subject):
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as s:
        s.sendmail("a@outside.test", [DEMO], f"Subject: {subject}\r\n\r\nbody\r\n")


def select_inbox(host):
    """SELECT INBOX as a client: (UIDVALIDITY, the UIDs shown)."""
    c = imaplib.IMAP4("127.0.0.1", host.port("imap"), timeout=10)
    c.login(DEMO, "demo-secret")
    c.select("INBOX")
    validity = int(c.response("UIDVALIDITY")[1][0])
    typ, data = c.uid("SEARCH", "ALL")
    c.logout()
    return validity, [int(u) for u in data[0].split()]


def test_mda_appends_the_uid_unsynced_and_imapd_syncs_the_index_before_a_client_sees_it(host):
    """ferry-mailstore(5), DURABILITY: ferry-mda writes the A record and a mark in the lock file, no
    sync of ferry-index; the first reader fdatasyncs the index before it shows the message."""
    mda = start_traced(host, "mda")
    imapd = start_traced(host, "imapd", strings=4096)
    host.start("qmgr", "smtpd")
    assert select_inbox(host)[1] == []  # the index exists: ferry-mda takes its append path
    deliver_one(host, "unsynced uid")
    host.wait_mail(DEMO, 1)
    host.wait_log("qmgr", r"status=sent")
    md = os.path.realpath(host.maildir(DEMO))
    index, lock = md + "/ferry-index", md + "/ferry-index.lock"
    wait_until(lambda: open(lock).read().startswith("unsynced "), what="the mark of an unsynced append")
    assert not [c for c in calls(mda) if c[0] in ("fsync", "fdatasync") and fd_path(c[1]) == index]
    assert select_inbox(host)[1] == [1]
    seq = calls(imapd)
    syncs = [i for i, (n, a, r) in enumerate(seq) if n in ("fsync", "fdatasync") and fd_path(a) == index and r == "0"]
    shown = [i for i, (n, a, _) in enumerate(seq) if n in ("write", "writev", "sendto", "sendmsg") and is_socket(a)
             and "* 1 EXISTS" in a]
    assert syncs and shown and syncs[0] < shown[0], (syncs, shown)
    assert open(lock).read() == ""  # synced: the next reader has nothing to sync


def test_a_reader_whose_index_sync_fails_gives_a_new_uidvalidity_and_loses_no_message(host):
    shim = os.path.join(BUILD, "tests", "tools", "fault-inject.so")
    host.start("mda", "qmgr", "smtpd", "imapd")
    deliver_one(host, "first")
    host.wait_mail(DEMO, 1)
    validity, uids = select_inbox(host)
    assert uids == [1]
    md = os.path.realpath(host.maildir(DEMO))
    host.restart("imapd", env={"LD_PRELOAD": shim, "FERRY_FAULT_PREFIX": md + "/ferry-index",
                               "FERRY_FAULT_CALL": "fsync", "FERRY_FAULT_ERRNO": "EIO", "FERRY_FAULT_TIMES": "1"})
    deliver_one(host, "second")
    host.wait_mail(DEMO, 2)
    wait_until(lambda: open(md + "/ferry-index.lock").read().startswith("unsynced "), what="an unsynced append")
    # The records past the last sync may not be on disk: none of their UIDs is shown under the old
    # UIDVALIDITY, and every message is there under the new one.
    after, uids = select_inbox(host)
    host.wait_log("imapd", r"cannot sync the index: Input/output error; rebuilding with a new UIDVALIDITY")
    assert after > validity
    assert uids == [1, 2]


FAULTS = [("write", "ENOSPC", 20000), ("write", "EIO", 20000), ("write", "ENOSPC", 0),
          ("fsync", "EIO", 0), ("fsync", "ENOSPC", 0)]


@pytest.mark.parametrize("call,err,after", FAULTS)
def test_disk_fault_during_the_spool_write_gives_4xx_and_leaves_nothing(host, call, err, after):
    shim = os.path.join(BUILD, "tests", "tools", "fault-inject.so")
    assert os.path.exists(shim), shim
    spool = host.keys["spool_dir"]
    host.start("mda", "qmgr")
    host.start("smtpd", env={"LD_PRELOAD": shim, "FERRY_FAULT_PREFIX": spool + "/incoming/",
                             "FERRY_FAULT_CALL": call, "FERRY_FAULT_ERRNO": err, "FERRY_FAULT_AFTER": str(after)})
    tok = uuid.uuid4().hex
    c = SmtpClient(host.port("smtp"))
    for cmd in ("EHLO fault.test", "MAIL FROM:<a@outside.test>", f"RCPT TO:<{DEMO}>"):
        assert c.cmd(cmd)[0] == 250
    code, text = c.cmd("DATA")
    if code == 354:  # a fault at the first write may refuse DATA itself
        c.send(f"Subject: {tok}\r\n\r\n".encode() + b"a line of the message body\r\n" * 4000 + b".\r\n")
        code, text = c.reply()
    assert 400 <= code < 500, (code, text)
    assert c.cmd("QUIT")[0] == 221
    c.close()
    reason = {"ENOSPC": "No space left on device", "EIO": "Input/output error"}[err]
    host.wait_log("smtpd", re.escape(reason))
    # Nothing half-visible: no queue file, no incoming leftover, and so nothing to deliver.
    assert host.spool_ids("queue") == [] and host.spool_ids("incoming") == []
    # The same pipeline without the fault delivers: the refused message would have come first.
    host.restart("smtpd")
    ok = uuid.uuid4().hex
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as s:
        s.sendmail("a@outside.test", [DEMO], f"Subject: {ok}\r\n\r\nbody\r\n")
    [path] = host.wait_mail(DEMO, 1)
    assert ok in open(path).read()
    wait_until(lambda: host.spool_ids("queue") == [], what="queue emptied")
    assert len(host.mail(DEMO)) == 1


# Where the fault hits in smtpd's commit: (FERRY_FAULT_PREFIX under the spool, calls, errno, bytes
# before writes fail), and what the client must be told.
SPOOL_FAULTS = {
    "write-ENOSPC": ("/incoming/", "write", "ENOSPC", 20000, 4),
    "write-EIO": ("/incoming/", "write", "EIO", 20000, 4),
    "fsync-file-ENOSPC": ("/incoming/", "fsync", "ENOSPC", 0, 4),
    "fsync-file-EIO": ("/incoming/", "fsync", "EIO", 0, 4),
    "fsync-queue-dir-ENOSPC": ("/queue", "fsync", "ENOSPC", 0, 4),
    "fsync-queue-dir-EIO": ("/queue", "fsync", "EIO", 0, 4),
    # The fsync of queue/ fails and so does the unlink that would take the message back: accepted.
    "fsync-queue-dir-EIO-and-unlink-fails": ("/queue", "fsync,unlink", "EIO", 0, 2),
}


def send_token(host, tok):
    """One transaction with a message carrying `tok`; the reply to its final dot."""
    c = SmtpClient(host.port("smtp"))
    for cmd in ("EHLO fault.test", "MAIL FROM:<a@outside.test>", f"RCPT TO:<{DEMO}>"):
        assert c.cmd(cmd)[0] == 250
    code, text = c.cmd("DATA")
    if code == 354:
        c.send(f"Subject: {tok}\r\nMessage-ID: <{tok}@fault.test>\r\n\r\n".encode()
               + b"a line of the message body\r\n" * 4000 + b".\r\n")
        code, text = c.reply()
    assert c.cmd("QUIT")[0] == 221
    c.close()
    return code, text


def copies(host, tok):
    return sum(1 for p in host.mail(DEMO) if tok in open(p, errors="replace").read())


@pytest.mark.parametrize("case", list(SPOOL_FAULTS))
def test_disk_fault_in_smtpd_client_reply_and_deliveries_agree(host, case):
    """A 4xx leaves nothing that is ever delivered (the client's retry after the fault clears gives
    the one copy); a 250 gives exactly one delivery. qmgr and mda run throughout."""
    sub, calls_, err, after, klass = SPOOL_FAULTS[case]
    shim = os.path.join(BUILD, "tests", "tools", "fault-inject.so")
    spool = host.keys["spool_dir"]
    host.start("mda", "qmgr")
    host.start("smtpd", env={"LD_PRELOAD": shim, "FERRY_FAULT_PREFIX": spool + sub, "FERRY_FAULT_CALL": calls_,
                             "FERRY_FAULT_ERRNO": err, "FERRY_FAULT_AFTER": str(after)})
    tok = uuid.uuid4().hex
    code, text = send_token(host, tok)
    assert code // 100 == klass, (code, text)
    reason = {"ENOSPC": "No space left on device", "EIO": "Input/output error"}[err]
    host.wait_log("smtpd", re.escape(reason))
    if klass == 2:
        host.wait_log("smtpd", r"queued although .* cannot be removed")
        host.wait_mail(DEMO, 1)
    else:
        assert host.spool_ids("queue") == [] and host.spool_ids("incoming") == []
    # The fault clears; qmgr's start-up scan would find anything left in queue/.
    host.restart("smtpd")
    host.restart("qmgr")
    if klass == 4:
        assert send_token(host, tok)[0] == 250  # the client's retry
    # A second message, delivered after anything queued before it, marks the end of the deliveries.
    marker = uuid.uuid4().hex
    assert send_token(host, marker)[0] == 250
    wait_until(lambda: copies(host, marker) == 1, what="marker delivered")
    wait_until(lambda: host.spool_ids("queue") == [], what="queue emptied")
    assert copies(host, tok) == 1, host.all_logs()[-3000:]
    assert len(host.mail(DEMO)) == 2


def test_qmgr_leaves_a_queue_file_alone_while_its_writer_decides(host):
    """Between its link into queue/ and the end of the commit smtpd may still take the file back;
    qmgr's scan skips a file whose writer holds its lock, and the notification brings it later."""
    host.set(**{"smtpd.test_pause_at": "smtpd-after-link"})
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    result = {}
    t = threading.Thread(target=lambda: result.update(reply=send_token(host, tok)))
    t.start()
    qid = host.wait_log("smtpd", r"(\w+): paused at smtpd-after-link").group(1)
    assert host.spool_ids("queue") == [qid]
    host.restart("qmgr")  # its start-up scan, done before "ready", meets the locked file
    assert not re.search(rf"{qid}: from=", host.log("qmgr")), host.log("qmgr")
    assert host.mail(DEMO) == []
    os.kill(host.pid("smtpd"), signal.SIGCONT)
    t.join(30)
    assert result.get("reply", (0,))[0] == 250, result
    wait_until(lambda: copies(host, tok) == 1, what="delivered")
    wait_until(lambda: host.spool_ids("queue") == [], what="queue emptied")
    assert len(host.mail(DEMO)) == 1

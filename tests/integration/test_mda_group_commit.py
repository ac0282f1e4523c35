"""ferry-mda's group commit: concurrent LMTP transactions share one fsync of a folder's new/, every reply
comes after its file is in new/, and a kill with a batch linked but unanswered still gives each copy once."""
import imaplib
import os
import re
import smtplib
import threading
import uuid

import pytest

from ferry_harness import wait_until
from test_mda_exactly_once import DEMO, OTHER, SENDER, SHIM, Lmtp, copies, fresh_qid, message


@pytest.fixture
def mda(ferry):
    ferry.add_domain("example.test")
    for account in (DEMO, OTHER):
        ferry.add_account(account, "pw")
    return ferry


def slow_new_dir(f, delay_ms):
    """The environment of a ferry-mda whose fsyncs of DEMO's new/ each take delay_ms: while one batch
    waits for it, the copies that sync meanwhile gather for the next batch."""
    assert os.path.exists(SHIM), SHIM
    return {"LD_PRELOAD": SHIM, "FERRY_FAULT_PREFIX": os.path.join(f.maildir(DEMO), "new"),
            "FERRY_FAULT_CALL": "fsync", "FERRY_FAULT_ERRNO": "none", "FERRY_FAULT_DELAY_MS": str(delay_ms)}


def in_new(f, address, tok):
    new = os.path.join(f.maildir(address), "new")
    return [n for n in os.listdir(new) if f"body {tok}\n".encode() in open(os.path.join(new, n), "rb").read()]


def test_concurrent_deliveries_to_one_folder_are_each_answered_after_the_file_is_in_new(mda):
    mda.start("mda", env=slow_new_dir(mda, 300))
    sent = [(fresh_qid(), uuid.uuid4().hex) for _ in range(8)]
    clients = [Lmtp(mda) for _ in sent]
    # Every message is sent before any reply is read: the transactions are in flight together.
    for c, (qid, tok) in zip(clients, sent):
        c.send_message([DEMO], message(qid, tok))
    seen = {}

    def read(c, qid, tok):
        reply = c.reply()
        seen[qid] = (reply, in_new(mda, DEMO, tok))  # looked at right when the reply came

    readers = [threading.Thread(target=read, args=(c, qid, tok)) for c, (qid, tok) in zip(clients, sent)]
    for t in readers:
        t.start()
    for t in readers:
        t.join(30)
    for c in clients:
        c.close()
    for qid, tok in sent:
        reply, files = seen[qid]
        assert reply == (250, f"2.0.0 <{DEMO}> delivered as {qid}")
        assert len(files) == 1, (qid, files)
        assert len(copies(mda, DEMO, tok)) == 1
    # Each copy got its UID at delivery, all different, whichever batch it was in.
    mda.start("imapd")
    with imaplib.IMAP4("127.0.0.1", mda.port("imap"), timeout=10) as m:
        m.login(DEMO, "pw")
        typ, data = m.select("INBOX")
        assert typ == "OK" and int(data[0]) == len(sent)
        typ, data = m.uid("FETCH", "1:*", "(UID)")
        uids = sorted(int(re.search(rb"UID (\d+)", d).group(1)) for d in data)
        assert uids == list(range(1, len(sent) + 1))


def test_mda_killed_with_a_batch_linked_but_unanswered_delivers_each_message_once(mda):
    # The first message's batch waits on the slow fsync of new/; the next ones come from ferry-qmgr
    # over further LMTP sessions meanwhile and share a batch, where ferry-mda stops and is killed.
    mda.set(**{"mda.test_pause_at": "mda-batch-linked"})
    mda.start("mda", env=slow_new_dir(mda, 1000))
    mda.start("qmgr", "smtpd")
    toks = [uuid.uuid4().hex for _ in range(6)]
    with smtplib.SMTP("127.0.0.1", mda.port("smtp"), timeout=30) as s:
        for tok in toks:
            s.sendmail(SENDER, [DEMO, OTHER], message("", tok))
    qid = mda.wait_log("mda", r"(\w+): paused at mda-batch-linked", timeout=30).group(1)
    # Several copies of the batch are in new/ (the stop comes after the link and the fsync of new/),
    # and the transaction that stopped has not been answered for them.
    linked = [tok for tok in toks if in_new(mda, DEMO, tok)]
    assert len(linked) >= 2, linked  # at least the two of the batch
    assert not re.search(rf"{qid}: to=<{DEMO}> .*status=sent", mda.log("qmgr"))
    mda.kill("mda")
    mda.set(**{"mda.test_pause_at": ""})
    mda.start("mda")
    wait_until(lambda: mda.spool_ids("queue") == [] and mda.spool_ids("state") == [], timeout=60,
               what="queue emptied")
    for tok in toks:
        assert len(copies(mda, DEMO, tok)) == 1, (tok, mda.log("mda")[-3000:])
        assert len(copies(mda, OTHER, tok)) == 1, (tok, mda.log("mda")[-3000:])
    # The retry of the stopped transaction was answered from the record, without a second copy.
    mda.wait_log("mda", rf"{qid}: to=<{DEMO}> already delivered")
    assert not re.search(r"status=(bounced|failed)", mda.log("qmgr"))

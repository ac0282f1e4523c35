"""What the DSN and bounce tests share: the host with two accounts, queue files injected as ferry-smtpd
writes them, and reading the RFC 3464 reports that land in a Maildir."""
import email
import email.policy
import os
import time
import uuid

import pytest

from ferry_harness import wait_until

ALICE = "alice@example.test"
DEMO = "demo@example.test"


@pytest.fixture
def host(ferry):
    """ferry with example.test, alice and demo, and a queue scan every second (for injected files)."""
    ferry.set(qmgr_scan_interval="1s")
    ferry.add_domain("example.test")
    ferry.add_account(ALICE, "alice-secret")
    ferry.add_account(DEMO, "demo-secret")
    return ferry


def inject(f, rcpts, data, sender=ALICE, extra=""):
    """A queue file as ferry-smtpd writes it (ferry-spool(5)), for senders and recipients smtpd would not
    take; each of rcpts is an address or (address, [records after it]); `extra`: records before them.
    Returns the queue id; qmgr finds the file by its queue scan."""
    qid = uuid.uuid4().hex[:16].upper()
    head = f"ferry-queue 1\nid {qid}\narrival {int(time.time())}\nsender {sender}\nclient 127.0.0.1\nhelo test\n{extra}"
    for r in rcpts:
        address, records = (r, []) if isinstance(r, str) else r
        head += f"rcpt {address}\n" + "".join(rec + "\n" for rec in records)
    head += "data\n"
    spool = f.keys["spool_dir"]
    for d in ("incoming", "queue"):
        os.makedirs(os.path.join(spool, d), exist_ok=True)
    tmp = os.path.join(spool, "incoming", qid)
    with open(tmp, "wb") as fp:
        fp.write((head + data + f"\nend {len(data.encode())}\n").encode())
        fp.flush()
        os.fsync(fp.fileno())
    os.rename(tmp, os.path.join(spool, "queue", qid))
    return qid


def alias_to_nobody(f, alias, ghost):
    """An alias whose target is an address of a hosted domain without an account: 550 at delivery."""
    p = f.admin("alias", "add", alias, ghost, check=False)
    if p.returncode != 0:  # ferry-admin refuses unknown targets: make the account, alias, remove it
        f.add_account(ghost, "pw")
        f.admin("alias", "add", alias, ghost)
        f.admin("account", "remove", ghost)


def parse(path):
    with open(path, "rb") as fp:
        return email.message_from_binary_file(fp, policy=email.policy.compat32)


def report(msg):
    """(human text, per-message fields, [per-recipient fields], third part) of a multipart/report."""
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts[:2]] == ["text/plain", "message/delivery-status"]
    blocks = parts[1].get_payload()  # email parses each field block of message/delivery-status as a message
    return parts[0].get_payload(), blocks[0], blocks[1:], parts[2]


def reports(f, address):
    """The multipart/report messages in address's Maildir."""
    return [parse(p) for p in f.mail(address) if parse(p).get_content_type() == "multipart/report"]


def wait_reports(f, address, what):
    wait_until(lambda: reports(f, address), what=what)
    return reports(f, address)

"""batch_scheduling (ferry.conf(5)): ferry-qmgr, ferry-relay and ferry-mda, every thread of them and the
filters ferry-mda starts, run under SCHED_BATCH; ferry-smtpd, ferry-popd and ferry-imapd, whose clients
wait on each reply, never do; `no` leaves every daemon under the normal policy."""
import os
import shutil
import smtplib
import tempfile
import uuid

import pytest

from ferry_harness import wait_until

BACKGROUND = ("mda", "qmgr", "relay")
INTERACTIVE = ("smtpd", "popd", "imapd")
DEMO = "demo@example.test"


def policies(f, name):
    """The scheduling policy of each thread of a running daemon."""
    tids = os.listdir(f"/proc/{f.pid(name)}/task")
    assert tids
    return {os.sched_getscheduler(int(t)) for t in tids}


@pytest.fixture
def policy_filter(host):
    """A delivery filter that writes the policy it runs under into a header of the message."""
    d = tempfile.mkdtemp(prefix="fysched-", dir="/tmp")
    os.chmod(d, 0o755)
    path = os.path.join(d, "policy")
    with open(path, "w") as out:
        out.write("#!/bin/sh\nprintf 'X-Policy: %s\\n' \"$(chrt -p $$ | sed -n 's/.*policy: //p')\"\nexec cat\n")
    os.chmod(path, 0o755)
    host.set(mda_filters=path)
    yield host
    shutil.rmtree(d, ignore_errors=True)


def deliver_one(f):
    tok = uuid.uuid4().hex
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=30) as s:
        s.sendmail("someone@outside.test", [DEMO], f"Subject: {tok}\r\n\r\n{tok}\r\n")
    wait_until(lambda: any(tok.encode() in open(p, "rb").read() for p in f.mail(DEMO)), timeout=15)
    [data] = [open(p, "rb").read() for p in f.mail(DEMO) if tok.encode() in open(p, "rb").read()]
    return data


def test_the_delivery_daemons_and_their_filters_run_as_batch_and_the_reply_daemons_do_not(policy_filter):
    f = policy_filter
    f.start(*BACKGROUND, *INTERACTIVE)
    data = deliver_one(f)
    for name in BACKGROUND:
        assert policies(f, name) == {os.SCHED_BATCH}, name
    for name in INTERACTIVE:
        assert policies(f, name) == {os.SCHED_OTHER}, name
    assert b"X-Policy: SCHED_BATCH\n" in data, data[:400]


def test_batch_scheduling_no_leaves_every_daemon_normal(policy_filter):
    f = policy_filter
    f.set(batch_scheduling="no")
    f.start(*BACKGROUND, *INTERACTIVE)
    data = deliver_one(f)
    for name in BACKGROUND + INTERACTIVE:
        assert policies(f, name) == {os.SCHED_OTHER}, name
    assert b"X-Policy: SCHED_OTHER\n" in data, data[:400]

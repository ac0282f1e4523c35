"""ferry-mda's administrator pipe filters (ferry-mda(8), FILTERS): a filter rewrites the message, rejects it
with its text (a 550 over LMTP, a bounce through the queue), discards it, hangs (killed, deferred, delivered
once when fixed), crashes (deferred) or prints nothing (the message unchanged)."""
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import uuid

import pytest

from ferry_harness import binary, wait_until
from test_mda_exactly_once import fresh_qid
from test_mda_sieve import DEMO, OTHER, lmtp, message, with_token


@pytest.fixture
def filters(host):
    """A directory the mail user can read, for the filter scripts, and a helper that writes one."""
    host.add_account(OTHER, "pw")
    d = tempfile.mkdtemp(prefix="fyfilter-", dir="/tmp")
    os.chmod(d, 0o755)

    def write(name, body):
        path = os.path.join(d, name)
        with open(path + ".tmp", "w") as out:
            out.write("#!/bin/sh\n" + body)
        os.chmod(path + ".tmp", 0o755)
        os.rename(path + ".tmp", path)
        return path

    host.filter = write
    yield host
    shutil.rmtree(d, ignore_errors=True)


def smtp_send(f, sender, rcpt, subject, tok):
    msg = f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nbody {tok}\r\n"
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=30) as s:
        s.sendmail(sender, [rcpt], msg)


def test_a_chain_rewrites_the_subject_and_sees_the_envelope(filters):
    sed = filters.filter("subject", "exec sed -e '1,/^$/s/^Subject: /Subject: [filtered] /'\n")
    env = filters.filter("env", 'printf "X-Filter-Env: %s|%s|%s|%s|%s|%s\\n" "$SENDER" "$RECIPIENT" "$ORIGINAL_RECIPIENT" '
                                '"$QUEUE_ID" "$CLIENT_ADDRESS" "${FERRY_TEST_LEAK-clean}"\nexec cat\n')
    filters.set(mda_filters=f"{sed} {env}")
    filters.start("mda", env={"FERRY_TEST_LEAK": "leaked"})
    tok = uuid.uuid4().hex
    qid = fresh_qid()
    [(code, text)] = lmtp(filters, [DEMO], message(tok, "hello", qid=qid))
    assert code == 250, text
    [path] = with_token(filters.mail(DEMO), tok)
    data = open(path, "rb").read()
    assert b"\nSubject: [filtered] hello\n" in data, data
    assert b"Subject: hello" not in data
    # The second filter saw the first one's output, and the envelope in a clean environment.
    m = re.search(rb"X-Filter-Env: (.*)\n", data)
    assert m.group(1).decode().split("|") == ["a@outside.test", DEMO, DEMO, qid, "127.0.0.1", "clean"], m.group(0)
    assert data.endswith(f"\n\nbody {tok}\n".encode()), data


def test_a_filter_that_prints_nothing_leaves_the_message_unchanged(filters):
    quiet = filters.filter("quiet", "cat >/dev/null\nexit 0\n")
    filters.set(mda_filters=quiet)
    filters.start("mda")
    tok = uuid.uuid4().hex
    [(code, text)] = lmtp(filters, [DEMO], message(tok, "untouched"))
    assert code == 250, text
    [path] = with_token(filters.mail(DEMO), tok)
    data = open(path, "rb").read()
    assert data.endswith(f"From: a@outside.test\nSubject: untouched\n\nbody {tok}\n".encode()), data


def test_reject_is_a_550_with_the_filters_text_and_a_bounce_through_the_queue(filters):
    # Only the header section: the bounce quotes the original's header, and goes through the filter too.
    no = filters.filter("reject", 'if sed -n "1,/^\\$/p" | grep -q "^Subject: .*offer"; then echo "Offers are not welcome here"; '
                                  'echo "second line"; exit 77; fi\nexit 0\n')
    filters.set(mda_filters=no)
    filters.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    [(code, text)] = lmtp(filters, [DEMO], message(tok, "an offer"))
    assert code == 550 and text.startswith("5.7.1") and "Offers are not welcome here" in text, (code, text)
    assert "second line" not in text
    tok2 = uuid.uuid4().hex
    smtp_send(filters, OTHER, DEMO, "another offer", tok2)
    wait_until(lambda: any(b"Offers are not welcome here" in open(p, "rb").read() for p in filters.mail(OTHER)),
               timeout=30, what="bounce to the sender")
    assert with_token(filters.mail(DEMO), tok) == [] and with_token(filters.mail(DEMO), tok2) == []


def test_discard_stores_nothing(filters):
    drop = filters.filter("discard", "exit 99\n")
    filters.set(mda_filters=drop)
    filters.start("mda")
    tok = uuid.uuid4().hex
    [(code, text)] = lmtp(filters, [DEMO], message(tok))
    assert code == 250 and "discarded" in text, text
    assert with_token(filters.mail(DEMO), tok) == []


def test_a_crash_defers(filters):
    crash = filters.filter("crash", "kill -SEGV $$\n")
    filters.set(mda_filters=crash)
    filters.start("mda")
    tok = uuid.uuid4().hex
    [(code, text)] = lmtp(filters, [DEMO], message(tok))
    assert code == 451 and text.startswith("4.3.0"), (code, text)
    assert with_token(filters.mail(DEMO), tok) == []
    # The shell may run the script in a child of its own: then it reports the signal as 128+11.
    assert re.search(r"deferred the message: (signal=11|exit=139)", filters.log("mda")), filters.log("mda")


def test_output_larger_than_message_size_limit_defers(filters):
    big = filters.filter("big", "cat\nyes 'a line of padding' | head -c 200000\n")
    filters.set(mda_filters=big, message_size_limit="2000")
    filters.start("mda")
    tok = uuid.uuid4().hex
    [(code, text)] = lmtp(filters, [DEMO], message(tok))
    assert code == 451 and text.startswith("4.3.0"), (code, text)
    assert with_token(filters.mail(DEMO), tok) == []
    assert "deferred the message: output too large" in filters.log("mda")


def hung_sleepers(mark):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if mark.encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                found.append(pid)
        except OSError:
            pass
    return found


def test_a_hung_filter_is_killed_the_message_deferred_then_delivered_once_when_fixed(filters):
    mark = str(100000 + uuid.uuid4().int % 800000)
    hang = filters.filter("hang", f"sleep {mark} &\nwait\n")
    filters.set(mda_filters=hang, mda_filter_timeout="1s")
    filters.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    [(code, text)] = lmtp(filters, [DEMO], message(tok))
    assert code == 451 and text.startswith("4.3.0"), (code, text)
    assert "timeout" in filters.log("mda")
    # The whole process group went, the sleep the script started too.
    wait_until(lambda: hung_sleepers(mark) == [], timeout=10, what="the filter's children killed")
    # Through the queue: deferred while the filter hangs, delivered once when it is fixed.
    tok2 = uuid.uuid4().hex
    smtp_send(filters, OTHER, DEMO, "retry me", tok2)
    wait_until(lambda: filters.log("mda").count("deferred the message: timeout") >= 2, timeout=30,
               what="a deferral through the queue")
    filters.filter("hang", "exit 0\n")
    wait_until(lambda: with_token(filters.mail(DEMO), tok2), timeout=30, what="delivery once the filter is fixed")
    assert len(with_token(filters.mail(DEMO), tok2)) == 1
    assert not any(tok2.encode() in open(p, "rb").read() for p in filters.mail(OTHER))  # no bounce


def test_lda_mode_runs_the_filters(filters):
    sed = filters.filter("subject", "exec sed -e '1,/^$/s/^Subject: /Subject: [filtered] /'\n")
    no = filters.filter("reject", 'if grep -q "^Subject: .*nope"; then echo "Not this one" >&2; exit 67; fi\n')
    filters.set(mda_filters=f"{no},{sed}")
    tok = uuid.uuid4().hex
    lda = [binary("mda"), "-c", filters.conf, "-d", DEMO, "-f", "a@outside.test"]
    p = subprocess.run(lda, input=message(tok, "hi").encode(), capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    [path] = with_token(filters.mail(DEMO), tok)
    assert b"\nSubject: [filtered] hi\n" in open(path, "rb").read()
    tok2 = uuid.uuid4().hex
    p = subprocess.run(lda, input=message(tok2, "nope").encode(), capture_output=True, timeout=30)
    assert p.returncode == 77 and b"Not this one" in p.stderr, p
    assert with_token(filters.mail(DEMO), tok2) == []
    crash = filters.filter("crash", "kill -SEGV $$\n")
    filters.set(mda_filters=crash)
    p = subprocess.run(lda, input=message(tok2, "x").encode(), capture_output=True, timeout=30)
    assert p.returncode == 75, p
    assert with_token(filters.mail(DEMO), tok2) == []

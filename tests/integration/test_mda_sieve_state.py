"""What ferry-mda's Sieve remembers between deliveries: the duplicate test's memory (RFC 7352) across
deliveries, its expiry and a restart; and redirects sent only once the delivery intent is durable, each
exactly once whatever point ferry-mda is killed at."""
import os
import re
import smtplib
import subprocess
import time
import uuid

import pytest

from ferry_harness import binary, wait_until
from test_mda_exactly_once import SHIM, fresh_qid
from test_mda_sieve import folder_files, lmtp, message, put_script, with_token

DEMO = "demo@example.test"
OTHER = "other@example.test"
SENDER = "a@outside.test"


@pytest.fixture
def mda(ferry):
    ferry.add_domain("example.test")
    for account in (DEMO, OTHER):
        ferry.add_account(account, "pw")
    return ferry


def with_id(tok, mid, qid=None):
    return message(tok, "dup test", extra=f"Message-ID: {mid}\r\n", qid=qid)


DISCARD_DUPLICATES = 'require "duplicate";\nif duplicate { discard; }\n'


def test_the_same_message_id_twice_is_filed_once_and_remembered_across_a_restart(mda):
    mda.start("mda")
    put_script(mda, DEMO, DISCARD_DUPLICATES)
    mid, toks = f"<{uuid.uuid4().hex}@outside.test>", [uuid.uuid4().hex for _ in range(4)]
    [(code, text)] = lmtp(mda, [DEMO], with_id(toks[0], mid, fresh_qid()))
    assert code == 250 and "delivered as" in text, text
    [(code, text)] = lmtp(mda, [DEMO], with_id(toks[1], mid, fresh_qid()))
    assert (code, text) == (250, f"2.0.0 <{DEMO}> discarded by Sieve")
    # Another Message-ID is not a duplicate.
    assert lmtp(mda, [DEMO], with_id(toks[2], f"<{uuid.uuid4().hex}@outside.test>", fresh_qid()))[0][0] == 250
    mda.restart("mda")
    [(code, text)] = lmtp(mda, [DEMO], with_id(toks[3], mid, fresh_qid()))
    assert (code, text) == (250, f"2.0.0 <{DEMO}> discarded by Sieve")
    inbox = folder_files(mda, DEMO)
    assert [len(with_token(inbox, t)) for t in toks] == [1, 0, 1, 0], mda.log("mda")
    # The memory holds a hash of the id, not the id.
    memory = open(os.path.join(mda.maildir(DEMO), "sieve", ".duplicate")).read()
    assert memory.startswith("ferry-duplicate 1\n") and mid not in memory


def test_a_duplicate_is_kept_again_once_its_seconds_are_over(mda):
    mda.start("mda")
    put_script(mda, DEMO, 'require "duplicate";\nif duplicate :seconds 2 { discard; }\n')
    mid, toks = f"<{uuid.uuid4().hex}@outside.test>", [uuid.uuid4().hex for _ in range(3)]
    before = time.time()
    assert lmtp(mda, [DEMO], with_id(toks[0], mid, fresh_qid()))[0][0] == 250
    after = time.time()
    # Remembered at a whole second between `before` and `after`, until two seconds later.
    [(code, text)] = lmtp(mda, [DEMO], with_id(toks[1], mid, fresh_qid()))
    assert code == 250 and ("discarded" in text or time.time() >= before + 1), text
    wait_until(lambda: time.time() > after + 2.2, what="the period over")
    [(code, text)] = lmtp(mda, [DEMO], with_id(toks[2], mid, fresh_qid()))
    assert code == 250 and "delivered as" in text, text
    assert len(with_token(folder_files(mda, DEMO), toks[2])) == 1


def test_a_failed_delivery_does_not_remember_the_id(mda):
    """A reject (or any failure) is no successful delivery: the id is not tracked (RFC 7352 3)."""
    mda.start("mda")
    put_script(mda, DEMO, 'require ["duplicate", "reject"];\n'
                          'if duplicate { discard; stop; }\n'
                          'if header :contains "subject" "reject me" { reject "no"; }\n')
    mid, tok = f"<{uuid.uuid4().hex}@outside.test>", uuid.uuid4().hex
    [(code, _)] = lmtp(mda, [DEMO], message(tok, "reject me", extra=f"Message-ID: {mid}\r\n", qid=fresh_qid()))
    assert code == 550
    [(code, text)] = lmtp(mda, [DEMO], with_id(tok, mid, fresh_qid()))
    assert code == 250 and "delivered as" in text, text


def test_a_delivery_repeated_after_a_kill_is_no_duplicate_of_itself(mda):
    """Killed after the id was remembered but before the done record: the retry of the same queue id
    decides as the first attempt did (its copy is there: already delivered), not "discard"."""
    mda.set(**{"mda.test_pause_at": "mda-after-track"})
    mda.start("mda", "qmgr", "smtpd")
    put_script(mda, DEMO, DISCARD_DUPLICATES)
    tok, mid = uuid.uuid4().hex, f"<{uuid.uuid4().hex}@outside.test>"
    with smtplib.SMTP("127.0.0.1", mda.port("smtp"), timeout=30) as s:
        s.sendmail(SENDER, [DEMO], f"From: {SENDER}\r\nMessage-ID: {mid}\r\nSubject: once\r\n\r\nbody {tok}\r\n")
    qid = mda.wait_log("mda", r"(\w+): paused at mda-after-track").group(1)
    mda.kill("mda")
    mda.set(**{"mda.test_pause_at": ""})
    mda.start("mda")
    wait_until(lambda: mda.spool_ids("queue") == [] and mda.spool_ids("state") == [], timeout=30,
               what="queue emptied")
    assert len(with_token(folder_files(mda, DEMO), tok)) == 1, mda.log("mda")
    mda.wait_log("mda", rf"{qid}: to=<{DEMO}> already delivered")
    assert not re.search(rf"{qid}: to=<{DEMO}> discarded", mda.log("mda"))


# Killed at each point from the durable intent to the reply, ferry-mda is started again and ferry-qmgr
# retries: the redirect (to a local account, through the queue) arrives exactly once, and the :copy
# kept exactly once. OTHER's fsyncs are slowed so that the redirected copy's own delivery never
# reaches a pause point before DEMO's does.
@pytest.mark.parametrize("point,copy", [("mda-after-intent", False), ("mda-after-send", False),
                                        ("mda-after-intent", True), ("mda-after-send", True),
                                        ("mda-after-link", True), ("mda-before-reply", True)])
def test_mda_killed_around_a_redirect_sends_it_exactly_once(mda, point, copy):
    mda.set(**{"mda.test_pause_at": point})
    mda.start("mda", env={"LD_PRELOAD": SHIM, "FERRY_FAULT_PREFIX": mda.maildir(OTHER) + "/",
                          "FERRY_FAULT_CALL": "fsync", "FERRY_FAULT_ERRNO": "none", "FERRY_FAULT_DELAY_MS": "1500"})
    mda.start("qmgr", "smtpd")
    put_script(mda, DEMO, f'require "copy";\nredirect :copy "{OTHER}";\nkeep;\n' if copy else f'redirect "{OTHER}";\n')
    tok = uuid.uuid4().hex
    with smtplib.SMTP("127.0.0.1", mda.port("smtp"), timeout=30) as s:
        s.sendmail(SENDER, [DEMO], f"From: {SENDER}\r\nSubject: away\r\n\r\nbody {tok}\r\n")
    qid = mda.wait_log("mda", rf"(\w+): paused at {point}").group(1)
    assert re.search(rf"{qid}: to=<{DEMO}> sieve:", mda.log("mda")), "paused in another delivery"
    sent_before = point != "mda-after-intent"
    assert bool(re.search(rf"{qid}: redirected to <{OTHER}>", mda.log("mda"))) == sent_before
    mda.kill("mda")
    mda.set(**{"mda.test_pause_at": ""})
    mda.start("mda")
    wait_until(lambda: mda.spool_ids("queue") == [] and mda.spool_ids("state") == [] and
               mda.spool_ids("incoming") == [], timeout=45, what="queue emptied")
    redirected = with_token(mda.mail(OTHER), tok)
    assert len(redirected) == 1, mda.log("mda")
    assert f"X-Ferry-Redirected: {DEMO}" in open(redirected[0], errors="replace").read()
    assert len(with_token(mda.mail(DEMO), tok)) == (1 if copy else 0), mda.log("mda")
    log = mda.log("mda")
    assert len(re.findall(rf"{qid}: redirected to <{OTHER}>", log)) == 1, log
    if sent_before:
        assert re.search(rf"{qid}: to=<{DEMO}> redirect to <{OTHER}> sent already by an earlier attempt", log) or \
            re.search(rf"{qid}: to=<{DEMO}> already delivered", log), log
    assert not re.search(r"status=(bounced|failed)", mda.log("qmgr"))


def test_lda_mode_remembers_duplicates_too(mda):
    put_script(mda, DEMO, DISCARD_DUPLICATES)
    mid, toks = f"<{uuid.uuid4().hex}@outside.test>", [uuid.uuid4().hex for _ in range(2)]
    for tok in toks:
        p = subprocess.run([binary("mda"), "-c", mda.conf, "-d", DEMO, "-f", SENDER],
                           input=with_id(tok, mid).encode(), capture_output=True, timeout=30)
        assert p.returncode == 0, p.stderr
    inbox = folder_files(mda, DEMO)
    assert [len(with_token(inbox, t)) for t in toks] == [1, 0]

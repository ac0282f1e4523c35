"""An IDLEing ferry-imapd session hears, within a second or so, what ferry-mda, ferry-popd, other sessions and
mutt-like Maildir readers change in its folder (inotify, ferry-mailstore(5) CHANGE NOTIFICATION)."""
import os
import poplib
import smtplib
import time

from ferry_harness import wait_until
from test_imapd import MESSAGE, PASSWORD, USER, Raw, deliver, idle_until, logged_in, start

# Notification takes 50 ms plus a sync; the bound is generous for a loaded test machine, and still far
# below what a client would notice (the old per-session poll took up to a second).
HEARD_WITHIN = 2.5


def idling(f, folder="INBOX"):
    """A raw session logged in, with `folder` selected, in IDLE."""
    r = Raw(start(f))
    r.raw_line()
    assert r.command(f"a1 LOGIN {USER} {PASSWORD}", "a1")[-1].startswith("a1 OK")
    assert r.command(f"a2 SELECT {folder}", "a2")[-1].startswith("a2 OK")
    r.send("a3 IDLE\r\n")
    assert r.raw_line() == b"+ idling"
    return r


def heard(r, pattern, since):
    """Waits for an untagged line matching `pattern`; returns the seconds since `since`."""
    idle_until(r, pattern, timeout=20)
    return time.monotonic() - since


def files(f, sub="new"):
    d = os.path.join(f.maildir(USER), sub)
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_idle_hears_a_delivery_through_smtpd_quickly(mailhost):
    r = idling(mailhost)
    with smtplib.SMTP("127.0.0.1", mailhost.port("smtp"), timeout=30) as s:
        s.sendmail("sender@example.org", [USER], MESSAGE)
    # Measured from the message's arrival in the Maildir: the queue's own latency is not the store's.
    wait_until(lambda: files(mailhost), timeout=20, what="delivery into new/")
    assert heard(r, r"^\* 1 EXISTS$", time.monotonic()) < HEARD_WITHIN
    r.send("DONE\r\n")
    assert idle_until(r, r"^a3 ")[-1] == "a3 OK IDLE terminated"
    assert "polled every" not in mailhost.log("imapd")


def test_idle_hears_a_pop3_dele(host):
    for i in range(2):
        deliver(host, MESSAGE.replace("hello there", f"hello {i + 1}"))
    r = idling(host)
    host.start("popd")
    p = poplib.POP3("127.0.0.1", host.port("pop3"), timeout=10)
    p.user(USER)
    p.pass_(PASSWORD)
    p.dele(1)
    t0 = time.monotonic()
    p.quit()
    assert heard(r, r"^\* 1 EXPUNGE$", t0) < HEARD_WITHIN
    assert r.command("DONE", "a3")[-1] == "a3 OK IDLE terminated"
    assert r.command("a4 FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])", "a4")[1] == "Subject: hello 2"


def test_idle_hears_a_flag_change_by_another_session(host):
    deliver(host, MESSAGE)
    r = idling(host)
    other = logged_in(host)
    other.select("INBOX")
    t0 = time.monotonic()
    other.store("1", "+FLAGS", "(\\Flagged)")
    assert heard(r, r"^\* 1 FETCH \(FLAGS \(\\Flagged \\Recent\)\)$", t0) < HEARD_WITHIN
    other.store("1", "+FLAGS", "(\\Deleted)")
    t0 = time.monotonic()
    other.expunge()
    assert heard(r, r"^\* 1 EXPUNGE$", t0) < HEARD_WITHIN
    other.logout()


def test_idle_hears_a_mutt_style_rename(host):
    deliver(host, MESSAGE)
    c = logged_in(host)
    c.select("INBOX")
    c.fetch("1", "(FLAGS)")
    c.logout()
    r = idling(host)
    md = host.maildir(USER)
    [name] = files(host, "new") or files(host, "cur")
    src = os.path.join(md, "new" if files(host, "new") else "cur", name)
    base = name.split(":")[0]
    t0 = time.monotonic()
    os.rename(src, os.path.join(md, "cur", base + ":2,FS"))  # mutt marks it read and flagged
    line = idle_until(r, r"^\* 1 FETCH ", timeout=20)[-1]
    assert time.monotonic() - t0 < HEARD_WITHIN
    assert "\\Flagged" in line and "\\Seen" in line


def test_many_idle_sessions_on_one_folder_all_hear_a_delivery(host):
    """Many sessions IDLE on one folder: one delivery reaches every one of them."""
    deliver(host, MESSAGE)
    sessions = [idling(host) for _ in range(15)]
    t0 = time.monotonic()
    deliver(host, MESSAGE.replace("hello there", "second"))
    for r in sessions:
        assert heard(r, r"^\* 2 EXISTS$", t0) < HEARD_WITHIN * 2
    for r in sessions:
        assert r.command("DONE", "a3")[-1] == "a3 OK IDLE terminated"

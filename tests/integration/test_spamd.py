"""SpamAssassin's own spamd (Debian's spamd) behind ferry-smtpd: GTUBE scored by spamd alone (ferry's
built-in GTUBE rule scored 0) lands in Junk, a clean message in INBOX. The tests start spamd on
127.0.0.1 with a free port, as nobody, with a private site config (no network tests, no DNS, no
Bayes, no auto-learning, no user preferences) and stop it by its PID; they skip when spamd is not
installed. The error paths (a silent spamd) are in test_spam.py with a fake one."""
import glob
import os
import pwd
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time

import pytest

from test_spam import GTUBE, delivered, spam_fields
from ferry_harness import wait_until

# spamd takes long to start: one worker runs the file, so that one spamd serves every test in it.
pytestmark = pytest.mark.xdist_group("spamd")

SPAMD = shutil.which("spamd") or "/usr/sbin/spamd"

# The site config replaces /etc/spamassassin: only plugins that look at the message itself are loaded
# (none of DNS lists, SPF, DKIM, Razor, Pyzor, Bayes), and every test that could reach the network is
# off; the rules are the distribution's own (/usr/share/spamassassin).
PLUGINS = ["Check", "HTTPSMismatch", "URIDetail", "BodyEval", "HTMLEval", "HeaderEval", "MIMEEval", "RelayEval",
           "URIEval", "WLBLEval", "MIMEHeader", "ReplaceTags", "ImageInfo", "FreeMail"]
SITE_CONFIG = """\
dns_available no
skip_rbl_checks 1
use_bayes 0
bayes_auto_learn 0
required_score 5.0
report_safe 0
lock_method flock
"""


def ping(port):
    """True when spamd answers PING (SPAMC/1.5) on `port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"PING SPAMC/1.5\r\n\r\n")
            s.shutdown(socket.SHUT_WR)
            reply = b""
            while True:
                d = s.recv(1024)
                if not d:
                    break
                reply += d
            return b" PONG" in reply
    except OSError:
        return False


@pytest.fixture(scope="module")
def spamd():
    """A running spamd: its address; stopped (by PID) after the module."""
    if not os.access(SPAMD, os.X_OK):
        pytest.skip("spamd (Debian packages spamassassin and spamd) is not installed")
    d = tempfile.mkdtemp(prefix="ferry-spamd-")
    nobody = pwd.getpwnam("nobody")
    os.chown(d, nobody.pw_uid, nobody.pw_gid)  # spamd's children run as nobody: their home, the site config
    site = os.path.join(d, "site")
    os.makedirs(site)
    with open(os.path.join(site, "init.pre"), "w") as f:
        f.write("".join(f"loadplugin Mail::SpamAssassin::Plugin::{p}\n" for p in PLUGINS))
    with open(os.path.join(site, "local.cf"), "w") as f:
        f.write(SITE_CONFIG)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    log = open(os.path.join(d, "spamd.log"), "w")
    started = time.monotonic()
    p = subprocess.Popen([SPAMD, "--siteconfigpath", site, "--listen", f"127.0.0.1:{port}", "--allowed-ips",
                          "127.0.0.1", "--username", "nobody", "--nouser-config", "--helper-home-dir", d,
                          "--max-children", "2", "--syslog", "stderr"],
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: p.poll() is not None or ping(port), 180, "spamd answers PING")
        if p.poll() is not None:
            pytest.fail("spamd exited: " + open(os.path.join(d, "spamd.log")).read()[-2000:])
        print(f"spamd answered PING after {time.monotonic() - started:.1f}s")
        yield f"127.0.0.1:{port}"
    finally:
        p.terminate()
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def mx(host, spamd):
    """ferry with the spam check on, spamd asked, and ferry's own GTUBE rule scored 0."""
    rules = os.path.join(host.root, "spam.rules")
    with open(rules, "w") as r:
        r.write("score GTUBE 0\n")
    del host.keys["spam_filter"]
    host.set(spam_rules_file=rules, spamd_address=spamd, spamd_timeout="60s", spam_timeout="90s")
    host.start("mda", "qmgr", "smtpd")
    return host


def send(f, token, body):
    msg = (f"From: Ann <ann@outside.test>\r\nTo: demo@example.test\r\nSubject: {token}\r\n"
           f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
           f"Message-ID: <{token}@outside.test>\r\n\r\n{body}\r\n")
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), local_hostname="client.test", timeout=120) as s:
        s.sendmail("ann@outside.test", ["demo@example.test"], msg)


def in_junk(f, token):
    return any(token in open(p, errors="replace").read()
               for p in glob.glob(os.path.join(f.maildir("demo@example.test"), ".Junk", "*", "*")))


def score_of(fields):
    m = re.fullmatch(r"X-Spam-Score: (-?[0-9.]+)", fields[0])
    assert m, fields
    return float(m.group(1))


def test_gtube_through_spamd_lands_in_junk(mx):
    send(mx, "sa-gtube-1", f"This is the GTUBE, the\n{GTUBE}\n")
    fields = spam_fields(delivered(mx, "sa-gtube-1"))
    # spamd scores GTUBE 1000, give or take its other rules (ALL_TRUSTED: -1); ours adds nothing.
    assert 900 <= score_of(fields) <= 1100
    assert re.fullmatch(r"X-Spam-Status: Yes, score=[0-9.]+ required=5\.0 tests=GTUBE,SPAMD", fields[1])
    assert in_junk(mx, "sa-gtube-1")


def test_clean_message_through_spamd_lands_in_inbox(mx):
    send(mx, "sa-clean-1", "Hello Demo,\n\nlunch on Thursday at noon, as agreed?\n\nAnn\n")
    fields = spam_fields(delivered(mx, "sa-clean-1"))
    assert score_of(fields) < 5
    assert re.fullmatch(r"X-Spam-Status: No, score=-?[0-9.]+ required=5\.0 tests=.*SPAMD", fields[1])
    assert not in_junk(mx, "sa-clean-1")
    assert "spam: spamd:" not in mx.log("smtpd")  # spamd answered every time

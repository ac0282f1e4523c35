"""ferry-admin: round trips of every command, its errors and exit codes, and readers that keep
answering while a writer is SIGKILLed in the middle of rebuilding the account database."""
import glob
import os
import select
import signal
import smtplib
import subprocess
import threading
import time

import pytest

from ferry_harness import binary, wait_until

# openssl passwd -6 -salt saltsalt secret
SHA512_SECRET = ("$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN."
                 "Pq.H91p5hVO1")


def run(f, *args, input=None):
    return f.admin(*args, input=input, check=False)


def lines(p):
    return p.stdout.splitlines()


def lookup(f, address):
    """The lookup answer as a dict: kind, quota, forward, and the list of recipients."""
    p = run(f, "lookup", address)
    out = {"rc": p.returncode, "recipients": [], "stderr": p.stderr}
    for line in lines(p):
        name, _, value = line.partition(" ")
        if name == "recipient":
            out["recipients"].append(value)
        else:
            out[name] = value
    return out


def stopped(pid):
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] == "T"


def wait_stopped(pid, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if stopped(pid):
            return
        time.sleep(0.02)
    raise TimeoutError(f"ferry-admin {pid} did not stop at its pause point")


def test_domain_round_trip(ferry):
    assert run(ferry, "domain", "add", "Example.TEST").returncode == 0
    assert run(ferry, "domain", "add", "other.test").returncode == 0
    assert lines(run(ferry, "domain", "list")) == ["example.test", "other.test"]
    dup = run(ferry, "domain", "add", "example.test")
    assert dup.returncode == 1
    assert "example.test is already hosted" in dup.stderr
    for bad in ("bad_domain.test", "x-.test", "a..test", "a" * 64 + ".test"):
        p = run(ferry, "domain", "add", bad)
        assert p.returncode == 1, bad
        assert "not a valid domain" in p.stderr
    dash = run(ferry, "domain", "add", "--", "-x.test")
    assert dash.returncode == 1 and "not a valid domain" in dash.stderr
    assert run(ferry, "domain", "remove", "other.test").returncode == 0
    assert lines(run(ferry, "domain", "list")) == ["example.test"]
    gone = run(ferry, "domain", "remove", "other.test")
    assert gone.returncode == 1
    assert "not hosted" in gone.stderr


def test_utf8_addresses_only_with_the_flag(ferry):
    """The address grammar is SMTP's: ASCII unless --utf8 asks for the RFC 6531 form, and the
    domain limit is RFC 5321's 255 octets."""
    idn = "b\u00fccher.test"
    plain = run(ferry, "domain", "add", idn)
    assert plain.returncode == 1 and "--utf8" in plain.stderr
    assert run(ferry, "domain", "add", idn, "--utf8").returncode == 0
    assert run(ferry, "domain", "add", "example.test").returncode == 0
    rene = "ren\u00e9@example.test"
    refused = run(ferry, "account", "add", rene, input="pw\n")
    assert refused.returncode == 1 and "--utf8" in refused.stderr
    assert run(ferry, "account", "add", rene, "--utf8", input="pw\n").returncode == 0
    assert run(ferry, "account", "add", "demo@" + idn, input="pw\n").returncode == 1
    assert lines(run(ferry, "account", "list")) == [rene]
    # Malformed UTF-8 is no address in either form.
    broken = subprocess.run([binary("admin"), "-c", ferry.conf, "account", "add", b"r\xc3@example.test", "--utf8"],
                            input=b"pw\n", capture_output=True)
    assert broken.returncode == 1 and b"not a valid address" in broken.stderr
    assert run(ferry, "lookup", rene).returncode == 0
    assert run(ferry, "account", "remove", rene).returncode == 0
    # 255 octets of domain name are allowed, 256 are not.
    d255 = ".".join(["d" * 63] * 3 + ["d" * 63])
    assert len(d255) == 255
    assert run(ferry, "domain", "add", d255).returncode == 0
    too_long = run(ferry, "domain", "add", "d" + d255)
    assert too_long.returncode == 1 and "not a valid domain" in too_long.stderr


def test_account_round_trip_and_errors(ferry):
    unknown = run(ferry, "account", "add", "demo@example.org", input="pw\n")
    assert unknown.returncode == 1
    assert ("domain example.org is not hosted; add it with: ferry-admin domain add example.org"
            in unknown.stderr)
    ferry.add_domain("example.test")
    assert run(ferry, "account", "add", "Demo@Example.test", input="first-secret\n").returncode == 0
    dup = run(ferry, "account", "add", "demo@example.test", input="x\n")
    assert dup.returncode == 1
    assert "account demo@example.test already exists" in dup.stderr
    bad = run(ferry, "account", "add", "not-an-address", input="x\n")
    assert bad.returncode == 1
    assert "not a valid address" in bad.stderr
    empty = run(ferry, "account", "add", "empty@example.test", input="\n")
    assert empty.returncode == 1
    assert "empty password" in empty.stderr
    no_input = run(ferry, "account", "add", "empty@example.test", input="")
    assert no_input.returncode == 1
    argv = run(ferry, "account", "add", "argv@example.test", "argv-secret", input="x\n")
    assert argv.returncode == 1
    assert "never taken from the command line" in argv.stderr
    assert lines(run(ferry, "account", "list")) == ["demo@example.test"]

    assert run(ferry, "account", "verify", "demo@example.test", input="first-secret\n").returncode == 0
    wrong = run(ferry, "account", "verify", "demo@example.test", input="first-secreT\n")
    assert wrong.returncode == 1
    assert "does not match" in wrong.stderr
    # only the first line of stdin is the password
    assert run(ferry, "account", "passwd", "demo@example.test", input="second\nignored\n").returncode == 0
    assert run(ferry, "account", "verify", "demo@example.test", input="first-secret\n").returncode == 1
    assert run(ferry, "account", "verify", "demo@example.test", input="second\r\n").returncode == 0
    assert run(ferry, "account", "passwd", "nobody@example.test", input="x\n").returncode == 1

    assert run(ferry, "account", "add", "two@example.test", input="pw2\n").returncode == 0
    assert lines(run(ferry, "account", "list", "example.test")) == ["demo@example.test", "two@example.test"]
    refused = run(ferry, "domain", "remove", "example.test")
    assert refused.returncode == 1
    assert "still has 2 account(s)" in refused.stderr and "--force" in refused.stderr
    assert run(ferry, "account", "remove", "two@example.test").returncode == 0
    assert run(ferry, "account", "remove", "two@example.test").returncode == 1
    assert lookup(ferry, "two@example.test")["kind"] == "unknown"
    assert run(ferry, "domain", "remove", "example.test", "--force").returncode == 0
    assert lines(run(ferry, "domain", "list")) == []
    assert lines(run(ferry, "account", "list")) == []


def test_hash_import(host):
    f = host
    hashes = [SHA512_SECRET]
    try:
        made = subprocess.run(["openssl", "passwd", "-5", "secret"], capture_output=True, text=True, check=True)
        hashes.append(made.stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        pass
    for i, h in enumerate(hashes):
        addr = f"imported{i}@example.test"
        # Dovecot's passdb form carries a scheme prefix, /etc/shadow's does not
        value = "{SHA512-CRYPT}" + h if i == 0 else h
        p = run(f, "account", "add", addr, "--hash", value)
        assert p.returncode == 0, p.stderr
        assert run(f, "account", "verify", addr, input="secret\n").returncode == 0
        assert run(f, "account", "verify", addr, input="Secret\n").returncode == 1
    for bad in ("plain", "{PLAIN}secret", "$6$saltsalt$short", "with space", "!" + SHA512_SECRET):
        p = run(f, "account", "add", "bad@example.test", "--hash", bad)
        assert p.returncode == 1, bad
    assert lookup(f, "bad@example.test")["kind"] == "unknown"
    # passwd can import too
    assert run(f, "account", "passwd", "demo@example.test", "--hash", "{CRYPT}" + SHA512_SECRET).returncode == 0
    assert run(f, "account", "verify", "demo@example.test", input="secret\n").returncode == 0


def test_alias_round_trip_and_lookup(host):
    f = host
    assert run(f, "account", "add", "bob@example.test", input="b\n").returncode == 0
    assert run(f, "alias", "add", "team@example.test", "demo@example.test", "bob@example.test").returncode == 0
    assert run(f, "alias", "add", "team@example.test", "far@remote.test", "BOB@example.test").returncode == 0
    assert run(f, "alias", "add", "@example.test", "demo@example.test").returncode == 0
    assert run(f, "alias", "add", "list@example.test", "team@example.test", "ext@remote.test").returncode == 0
    assert lines(run(f, "alias", "list")) == [
        "@example.test: demo@example.test",
        "list@example.test: team@example.test, ext@remote.test",
        "team@example.test: demo@example.test, bob@example.test, far@remote.test",
    ]
    team = lookup(f, "team@example.test")
    assert team["kind"] == "alias"
    assert team["recipients"] == ["demo@example.test", "bob@example.test", "far@remote.test"]
    assert lookup(f, "list@example.test")["recipients"] == [
        "demo@example.test", "bob@example.test", "far@remote.test", "ext@remote.test"]
    other = lookup(f, "whoever@example.test")
    assert other["kind"] == "catch-all" and other["recipients"] == ["demo@example.test"]
    ext = lookup(f, "someone@remote.test")
    assert ext["kind"] == "external" and ext["recipients"] == ["someone@remote.test"]

    # an account with an alias entry forwards; listing itself keeps a copy
    assert run(f, "alias", "add", "bob@example.test", "bob@example.test", "bob@home.test").returncode == 0
    bob = lookup(f, "bob@example.test")
    assert bob["kind"] == "account" and bob["forward"] == "bob@example.test, bob@home.test"
    assert bob["recipients"] == ["bob@example.test", "bob@home.test"]

    # a loop without any account in it is refused with 5.4.6
    assert run(f, "alias", "add", "ping@example.test", "pong@example.test").returncode == 0
    assert run(f, "alias", "add", "pong@example.test", "ping@example.test").returncode == 0
    loop = run(f, "lookup", "ping@example.test")
    assert loop.returncode == 1 and "5.4.6" in loop.stderr

    # limits come from ferry.conf
    f.set(alias_max_targets="2")
    limited = run(f, "lookup", "list@example.test")
    assert limited.returncode == 1 and "5.5.3" in limited.stderr
    f.set(alias_max_targets="1000", alias_max_depth="1")
    deep = run(f, "lookup", "list@example.test")
    assert deep.returncode == 1 and "5.4.6" in deep.stderr
    f.set(alias_max_depth="10")

    assert run(f, "alias", "remove", "team@example.test", "far@remote.test").returncode == 0
    assert lookup(f, "team@example.test")["recipients"] == ["demo@example.test", "bob@example.test", "bob@home.test"]
    assert run(f, "alias", "remove", "team@example.test", "nobody@remote.test").returncode == 1
    assert run(f, "alias", "remove", "@example.test").returncode == 0
    assert lookup(f, "whoever@example.test")["kind"] == "unknown"
    assert run(f, "alias", "remove", "@example.test").returncode == 1
    assert lines(run(f, "alias", "list", "remote.test")) == []

    unhosted = run(f, "alias", "add", "x@example.org", "demo@example.test")
    assert unhosted.returncode == 1 and "ferry-admin domain add example.org" in unhosted.stderr
    assert run(f, "alias", "add", "x@example.test", "not an address").returncode == 1
    assert run(f, "alias", "add", "x@example.test").returncode == 1


def test_quota(host):
    f = host
    assert lookup(f, "demo@example.test")["quota"] == "0 0"
    assert run(f, "quota", "set", "demo@example.test", "10M", "100").returncode == 0
    assert lookup(f, "demo@example.test")["quota"] == "10485760 100"
    assert run(f, "quota", "set", "demo@example.test", "0", "0").returncode == 0
    assert lookup(f, "demo@example.test")["quota"] == "0 0"
    assert run(f, "quota", "set", "demo@example.test", "ten", "1").returncode == 1
    assert run(f, "quota", "set", "demo@example.test", "1M", "-1").returncode == 1
    assert run(f, "quota", "set", "nobody@example.test", "1M", "1").returncode == 1
    # the password survives a quota change
    assert run(f, "account", "verify", "demo@example.test", input="demo-secret\n").returncode == 0


def test_config_and_usage(ferry):
    set_only = run(ferry, "config", "-n")
    assert set_only.returncode == 0
    assert f"account_db = {ferry.keys['account_db']}" in lines(set_only)
    assert not any(l.startswith("smtpd_timeout =") for l in lines(set_only))
    full = run(ferry, "config")
    assert any(l.startswith("smtpd_timeout = ") for l in lines(full))
    assert any(l.startswith("alias_max_depth = ") for l in lines(full))
    assert run(ferry, "frobnicate").returncode == 1
    assert run(ferry, "domain", "add").returncode == 1
    assert run(ferry, "domain", "add", "a.test", "--bogus").returncode == 1
    missing = subprocess.run([binary("admin"), "-c", ferry.root + "/nope.conf", "domain", "list"],
                             capture_output=True, text=True)
    assert missing.returncode == 78


def test_missing_database_means_no_domains(ferry):
    p = run(ferry, "lookup", "demo@example.test")
    assert p.returncode == 0
    assert "kind external" in p.stdout
    assert "does not exist" in p.stderr
    assert lines(run(ferry, "domain", "list")) == []


def test_lock_held_by_a_live_writer_gives_75(host):
    f = host
    writer = subprocess.Popen([binary("admin"), "-c", f.conf, "-o", "test_pause_at=admin-mid-write",
                               "domain", "add", "paused.test"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_stopped(writer.pid)
        t0 = time.time()
        busy = subprocess.run([binary("admin"), "-c", f.conf, "-w", "1", "domain", "add", "other.test"],
                              capture_output=True, text=True, timeout=30)
        assert busy.returncode == 75
        assert "locked by another ferry-admin" in busy.stderr
        assert time.time() - t0 >= 0.9
        # readers do not wait for the lock
        assert lookup(f, "demo@example.test")["kind"] == "account"
        os.kill(writer.pid, signal.SIGCONT)
        writer.wait(timeout=10)
        assert writer.returncode == 0
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert lines(run(f, "domain", "list")) == ["example.test", "paused.test"]


class Readers:
    """Threads that keep asking the database (ferry-admin lookup, and RCPT over SMTP when smtpd runs)
    and record every answer that is not the expected one."""

    def __init__(self, f, smtp_port=None):
        self.f = f
        self.smtp_port = smtp_port
        self.stop = threading.Event()
        self.wrong = []
        self.counts = {"lookup": 0, "smtp": 0}
        self.threads = [threading.Thread(target=self.lookups, args=(i,)) for i in range(2)]
        if smtp_port:
            self.threads.append(threading.Thread(target=self.rcpts))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def keep_going(self, n=3):
        """Waits until every kind of reader has asked n more times (answers recorded in `wrong`)."""
        before = dict(self.counts)
        kinds = ["lookup"] + (["smtp"] if self.smtp_port else [])
        wait_until(lambda: all(self.counts[k] >= before[k] + n for k in kinds), timeout=30,
                   what=f"readers asking {n} more times")

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)

    def lookups(self, i):
        while not self.stop.is_set():
            a = lookup(self.f, "demo@example.test")
            b = lookup(self.f, f"user{i * 7}@example.test")
            c = lookup(self.f, "team@example.test")
            if a.get("kind") != "account" or a["recipients"] != ["demo@example.test"]:
                self.wrong.append(("demo", a))
            if b.get("kind") != "account":
                self.wrong.append(("user", b))
            if c.get("kind") != "alias" or c["recipients"] != ["demo@example.test", "far@remote.test"]:
                self.wrong.append(("team", c))
            self.counts["lookup"] += 1

    def rcpts(self):
        while not self.stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=10) as s:
                    s.ehlo("reader.test")
                    for _ in range(20):
                        if self.stop.is_set():
                            break
                        s.mail("someone@remote.test")
                        good = s.rcpt("demo@example.test")[0]
                        alias = s.rcpt("team@example.test")[0]
                        bad = s.rcpt("nobody@example.test")[0]
                        if good != 250 or alias != 250 or bad < 500:
                            self.wrong.append(("smtp", good, alias, bad))
                        s.rset()
                        self.counts["smtp"] += 1
            except (OSError, smtplib.SMTPException) as e:
                self.wrong.append(("smtp error", repr(e)))
                time.sleep(0.1)


def smtpd_available():
    try:
        binary("smtpd")
        return True
    except FileNotFoundError:
        return False


def test_readers_survive_writer_sigkilled_mid_write(host):
    f = host
    # enough records that "half of them" is a real point inside the file
    for i in range(40):
        assert run(f, "account", "add", f"user{i}@example.test", "--hash", SHA512_SECRET).returncode == 0
    assert run(f, "alias", "add", "team@example.test", "demo@example.test", "far@remote.test").returncode == 0
    smtp_port = None
    if smtpd_available():
        f.set(account_db_check_interval="0")
        f.start("smtpd")
        smtp_port = f.port("smtp")
    db = f.keys["account_db"]
    before = open(db, "rb").read()

    with Readers(f, smtp_port) as readers:
        readers.keep_going()
        writer = subprocess.Popen([binary("admin"), "-c", f.conf, "-o", "test_pause_at=admin-mid-write",
                                   "account", "add", "killed@example.test"], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        writer.stdin.write("killed-writer-secret\n")
        writer.stdin.close()
        wait_stopped(writer.pid)
        # the password went through stdin, never the command line
        with open(f"/proc/{writer.pid}/cmdline", "rb") as fh:
            assert b"killed-writer-secret" not in fh.read()
        temps = glob.glob(db + ".tmp.*")
        assert temps == [f"{db}.tmp.{writer.pid}"]
        readers.keep_going()  # against the paused writer
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=10)
        readers.keep_going()  # and against the leftovers of the dead one
        assert open(db, "rb").read() == before  # the live file was never touched
        nxt = subprocess.run([binary("admin"), "-c", f.conf, "-w", "0", "account", "add", "next@example.test"],
                             input="next-secret\n", capture_output=True, text=True, timeout=30)
        assert nxt.returncode == 0, nxt.stderr  # -w 0: no stale lock to wait for
        assert "left by an interrupted writer" in nxt.stderr
        readers.keep_going()

    assert not readers.wrong, readers.wrong[:5]
    assert readers.counts["lookup"] >= 5
    if smtp_port:
        assert readers.counts["smtp"] >= 5
    assert glob.glob(db + ".tmp.*") == []
    accounts = lines(run(f, "account", "list"))
    assert "killed@example.test" not in accounts
    assert "next@example.test" in accounts
    assert len(accounts) == 42  # demo, user0..39, next
    assert lookup(f, "killed@example.test")["kind"] == "unknown"
    assert run(f, "account", "verify", "next@example.test", input="next-secret\n").returncode == 0
    assert run(f, "account", "verify", "user39@example.test", input="secret\n").returncode == 0
    if smtp_port:
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as s:
            s.ehlo("after.test")
            s.mail("someone@remote.test")
            assert s.rcpt("next@example.test")[0] == 250
            assert s.rcpt("killed@example.test")[0] >= 500


def test_password_from_a_terminal_without_echo(host):
    """On a terminal the password is asked twice with echo off; a mismatch changes nothing."""
    import pty

    def on_tty(args, answers):
        master, slave = pty.openpty()
        p = subprocess.Popen([binary("admin"), "-c", host.conf, *args], stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        seen = b""
        try:
            for answer in answers:
                end = time.time() + 10
                while not seen.rstrip().lower().endswith(b"password:") and time.time() < end:
                    if select.select([master], [], [], 0.5)[0]:
                        seen += os.read(master, 1024)
                assert seen.rstrip().lower().endswith(b"password:"), seen
                seen += b"|"
                os.write(master, answer + b"\n")
            p.wait(timeout=10)
            try:
                while True:
                    chunk = os.read(master, 1024)
                    if not chunk:
                        break
                    seen += chunk
            except OSError:
                pass
        finally:
            os.close(master)
            if p.poll() is None:
                p.kill()
        return p.returncode, seen

    rc, out = on_tty(["account", "add", "tty@example.test"], [b"tty-secret", b"tty-secret"])
    assert rc == 0, out
    assert b"tty-secret" not in out  # never echoed
    assert run(host, "account", "verify", "tty@example.test", input="tty-secret\n").returncode == 0
    rc, out = on_tty(["account", "passwd", "tty@example.test"], [b"new-one", b"new-typo"])
    assert rc == 1 and b"do not match" in out
    assert run(host, "account", "verify", "tty@example.test", input="tty-secret\n").returncode == 0
    rc, out = on_tty(["account", "verify", "tty@example.test"], [b"tty-secret"])
    assert rc == 0 and b"password matches" in out


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the database to mail_user's group")
def test_new_database_is_readable_by_mail_users_group(ferry):
    import pwd
    import stat as st
    ferry.set(mail_user="nobody")
    ferry.add_domain("example.test")
    info = os.stat(ferry.keys["account_db"])
    assert st.S_IMODE(info.st_mode) == 0o640
    assert info.st_gid == pwd.getpwnam("nobody").pw_gid
    # A later rebuild keeps mode and group.
    ferry.add_account("demo@example.test", "pw")
    info2 = os.stat(ferry.keys["account_db"])
    assert (st.S_IMODE(info2.st_mode), info2.st_gid) == (0o640, info.st_gid)

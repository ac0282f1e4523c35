#!/usr/bin/python3
"""Soak test (not part of ./dev test): mail from several SMTP sessions through ferry-smtpd,
ferry-qmgr and ferry-mda while a loop SIGKILLs one of them at random moments and starts it again at
once. The daemons run from the build directory in a private temporary root with their own config
(as the integration tests run them), so a kill costs milliseconds, not a `./dev up`.

Every message carries a unique token (Subject and Message-ID). At the end, after the queue drained,
the Maildir is counted: lost (a 250 seen, never delivered), once, twice or more. A client resends a
message whose transaction failed (4xx, or the connection dropped); "resent after an unanswered
DATA" counts the messages where a 250 may have been lost with a killed smtpd, the one duplicate
SMTP itself allows. Exits 1 when a message is lost."""
import argparse
import glob
import os
import random
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("FERRY_BUILD", os.path.join(TOP, "build"))
PROGRAMS = {
    "smtpd": "mta/smtpd/ferry-smtpd",
    "qmgr": "mta/qmgr/ferry-qmgr",
    "mda": "mda/ferry-mda",
    "admin": "common/admin/ferry-admin",
}
DAEMONS = ("mda", "qmgr", "smtpd")
DEMO = "demo@example.test"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemons:
    """The three daemons of one private installation, each started again at once when killed."""

    def __init__(self, root):
        self.root = root
        self.port = free_port()
        self.conf = os.path.join(root, "ferry.conf")
        self.keys = {
            "hostname": "mx.test",
            "log_level": "info",
            "spool_dir": os.path.join(root, "spool"),
            "mail_dir": os.path.join(root, "mail"),
            "run_dir": os.path.join(root, "run"),
            "state_dir": os.path.join(root, "state"),
            "account_db": os.path.join(root, "accounts.db"),
            "smtpd_listen": f"127.0.0.1:{self.port}",
            "qmgr_retry_schedule": "1s",
            "qmgr_scan_interval": "5s",
        }
        os.makedirs(self.keys["run_dir"])
        with open(self.conf, "w") as f:
            for k, v in self.keys.items():
                f.write(f"{k} = {v}\n")
        self.procs = {}
        self.lock = threading.Lock()

    def admin(self, *args, input=None):
        subprocess.run([os.path.join(BUILD, PROGRAMS["admin"]), "-c", self.conf, *args], input=input,
                       text=True, check=True, capture_output=True, timeout=60)

    def log_path(self, name):
        return os.path.join(self.root, f"{name}.log")

    def start(self, name, timeout=20):
        """Starts `name` and waits for its "ready" line (the listener of smtpd is up then)."""
        path = self.log_path(name)
        end = time.time() + timeout
        while time.time() < end:
            before = os.path.getsize(path) if os.path.exists(path) else 0
            with open(path, "a") as log:
                p = subprocess.Popen([os.path.join(BUILD, PROGRAMS[name]), "-c", self.conf], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            self.procs[name] = p
            while time.time() < end and p.poll() is None:
                with open(path, errors="replace") as f:
                    f.seek(before)
                    if re.search(r": ready$", f.read(), re.M):
                        return
                time.sleep(0.005)
            # Exited before it was ready (a restart can race what the killed one left): again.
            time.sleep(0.05)
        raise RuntimeError(f"ferry-{name} not ready; see {path}")

    def kill(self, name):
        p = self.procs[name]
        p.send_signal(signal.SIGKILL)
        p.wait()

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    def maildir(self):
        local, domain = DEMO.split("@")
        return os.path.join(self.keys["mail_dir"], domain, local, "Maildir")


class Soak:
    def __init__(self, d, args, run_id):
        self.d, self.a, self.run_id = d, args, run_id
        self.lock = threading.Lock()
        self.next_n = 0
        self.sent = 0            # messages whose sending was attempted
        self.accepted = set()    # tokens that got a 250
        self.unanswered = set()  # tokens where a DATA went without a reply (and were resent)
        self.refused = 0         # transactions answered 4xx (then resent)
        self.kills = {n: 0 for n in DAEMONS}
        self.stop = threading.Event()  # time is up: no new messages, no more kills
        self.senders_done = threading.Event()
        self.backlogged = threading.Event()  # more than --max-backlog files in queue/

    def token(self, n):
        return f"soak{self.run_id}x{n:07d}"

    def take(self):
        # A queue far behind would make every qmgr restart a scan of all of it: wait for it.
        while self.backlogged.is_set() and not self.stop.is_set():
            time.sleep(0.01)
        with self.lock:
            if self.next_n >= self.a.messages or self.stop.is_set():
                return None
            self.next_n += 1
            self.sent += 1
            return self.next_n - 1

    def sender(self):
        s = None
        while True:
            n = self.take()
            if n is None:
                break
            tok = self.token(n)
            body = (f"From: soak@outside.test\r\nTo: {DEMO}\r\nSubject: {tok}\r\n"
                    f"Message-ID: <{tok}@soak.test>\r\n\r\n{tok}\r\n").encode()
            for _ in range(500):  # bounded retries while smtpd is down
                try:
                    if s is None:
                        s = smtplib.SMTP("127.0.0.1", self.d.port, timeout=30)
                        s.ehlo("soak.test")
                    s.mail("soak@outside.test")
                    code, _ = s.rcpt(DEMO)
                    if code != 250:
                        raise smtplib.SMTPRecipientsRefused({DEMO: (code, b"")})
                    try:
                        s.data(body)
                    except smtplib.SMTPDataError:
                        with self.lock:
                            self.refused += 1
                        raise
                    except (OSError, smtplib.SMTPServerDisconnected):
                        with self.lock:
                            self.unanswered.add(tok)
                        raise
                    with self.lock:
                        self.accepted.add(tok)
                    break
                except (OSError, smtplib.SMTPException):
                    try:
                        if s is not None:
                            s.close()
                    except OSError:
                        pass
                    s = None
                    time.sleep(0.02)
        if s is not None:
            try:
                s.quit()
            except (OSError, smtplib.SMTPException):
                pass

    def killer(self):
        total = 0
        while total < self.a.kills and not self.stop.is_set() and not self.senders_done.is_set():
            time.sleep(random.uniform(0, 2 * self.a.kill_every))
            name = random.choice(DAEMONS)
            self.d.kill(name)
            self.kills[name] += 1
            total += 1
            self.d.start(name)
        # Messages sent after the last kill prove nothing more: the senders stop too.
        self.stop.set()

    def watch_backlog(self):
        queue = os.path.join(self.d.keys["spool_dir"], "queue")
        while not self.senders_done.is_set():
            if len(os.listdir(queue)) > self.a.max_backlog:
                self.backlogged.set()
            else:
                self.backlogged.clear()
            time.sleep(0.05)

    def run(self):
        t0 = time.time()
        timer = threading.Timer(self.a.max_seconds, self.stop.set)
        timer.daemon = True
        timer.start()
        threads = [threading.Thread(target=self.sender, daemon=True) for _ in range(self.a.sessions)]
        k = threading.Thread(target=self.killer, daemon=True)
        threading.Thread(target=self.watch_backlog, daemon=True).start()
        for t in threads:
            t.start()
        k.start()
        for t in threads:
            t.join()
        self.senders_done.set()
        k.join()
        timer.cancel()
        sending = time.time() - t0
        drained = self.drain()
        return sending, drained

    def drain(self, timeout=300):
        """Waits for an empty queue/ (and no Maildir growth for a moment); False on timeout."""
        queue = os.path.join(self.d.keys["spool_dir"], "queue")
        end = time.time() + timeout
        last = -1
        while time.time() < end:
            n = len(self.mail_files())
            if not os.listdir(queue) and n == last:
                return True
            last = n
            time.sleep(1)
        return False

    def mail_files(self):
        md = self.d.maildir()
        return glob.glob(os.path.join(md, "new", "*")) + glob.glob(os.path.join(md, "cur", "*"))

    def count(self):
        seen = {}
        pat = re.compile(rb"Message-ID: <(soak" + self.run_id.encode() + rb"x\d{7})@soak\.test>", re.I)
        for path in self.mail_files():
            try:
                with open(path, "rb") as f:
                    m = pat.search(f.read())
            except OSError:
                continue
            if m:
                tok = m.group(1).decode()
                seen[tok] = seen.get(tok, 0) + 1
        return seen


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=1000, help="SIGKILLs in all (default 1000)")
    ap.add_argument("--messages", type=int, default=200000,
                    help="messages at most; sending also stops after the last kill (default 200000)")
    ap.add_argument("--sessions", type=int, default=10, help="SMTP sessions sending at once (default 10)")
    ap.add_argument("--max-seconds", type=float, default=600, help="no new message nor kill after this (default 600)")
    ap.add_argument("--kill-every", type=float, default=0.05, help="mean seconds between kills (default 0.05)")
    ap.add_argument("--max-backlog", type=int, default=1000,
                    help="senders wait while queue/ holds more files than this (default 1000)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary root (logs, spool, Maildir)")
    a = ap.parse_args()
    for name in DAEMONS + ("admin",):
        if not os.path.exists(os.path.join(BUILD, PROGRAMS[name])):
            sys.exit(f"soak: no {PROGRAMS[name]} under {BUILD} (build first, or set FERRY_BUILD)")
    root = tempfile.mkdtemp(prefix="ferry-soak-")
    d = Daemons(root)
    try:
        d.admin("domain", "add", "example.test")
        d.admin("account", "add", DEMO, input="soak-secret\n")
        for name in DAEMONS:
            d.start(name)
        soak = Soak(d, a, str(int(time.time())))
        sending, drained = soak.run()
        seen = soak.count()
    finally:
        d.stop()
        if a.keep:
            print(f"soak: files kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    acc = soak.accepted
    lost = sorted(t for t in acc if t not in seen)
    once = sum(1 for t in seen.values() if t == 1)
    twice = sum(1 for t in seen.values() if t == 2)
    more = sum(1 for t in seen.values() if t > 2)
    dup = [t for t, c in seen.items() if c > 1]
    dup_resent = sum(1 for t in dup if t in soak.unanswered)
    not_accepted = sum(1 for t in seen if t not in acc)
    kills = sum(soak.kills.values())
    print(f"soak: {soak.sent} sent, {len(acc)} accepted in {sending:.0f}s by {a.sessions} sessions; "
          f"{kills} kills (smtpd {soak.kills['smtpd']}, qmgr {soak.kills['qmgr']}, mda {soak.kills['mda']})")
    print(f"soak: {len(lost)} lost, {once} once, {twice} twice, {more} more than twice "
          f"({dup_resent} of the {len(dup)} duplicates were resent after an unanswered DATA); "
          f"{soak.refused} transactions answered 4xx, {not_accepted} delivered without a 250 seen"
          + ("" if drained else "; the queue did not drain"))
    if lost:
        print("lost:", " ".join(lost[:20]))
    sys.exit(1 if lost or not drained else 0)


if __name__ == "__main__":
    main()

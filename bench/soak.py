#!/usr/bin/python3
"""Soak test (not part of ./dev test): 10,000 messages from 20 sessions through the ./dev up
suite while a loop SIGKILLs a random daemon every few seconds and `./dev up` restarts it.
At the end every accepted message must be in the Maildir once, or twice after a hand-off crash;
none may be missing. Prints the counts; exits 1 when a message is missing or tripled."""
import argparse
import glob
import os
import random
import signal
import smtplib
import subprocess
import sys
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEV = os.path.join(TOP, ".dev")
DEMO = "demo@example.test"
DAEMONS = ("smtpd", "qmgr", "mda")


def dev(cmd):
    subprocess.run([os.path.join(TOP, "dev"), cmd], check=True, stdout=subprocess.DEVNULL)


def pid_of(name):
    try:
        with open(os.path.join(DEV, "pids", name + ".pid")) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


class Soak:
    def __init__(self, messages, sessions, kill_every, run_id):
        self.messages, self.sessions, self.kill_every, self.run_id = messages, sessions, kill_every, run_id
        self.accepted = set()   # tokens that got a 250
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.kills = 0
        self.restart_lock = threading.Lock()

    def token(self, n):
        return f"soak-{self.run_id}-{n:06d}-end"

    def sender(self, first, count):
        for n in range(first, first + count):
            tok = self.token(n)
            body = f"From: soak@outside.test\r\nTo: {DEMO}\r\nSubject: {tok}\r\n\r\n{tok}\r\n"
            for _ in range(200):  # bounded retries while a daemon is down
                try:
                    with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as s:
                        s.sendmail("soak@outside.test", [DEMO], body)
                    with self.lock:
                        self.accepted.add(tok)
                    break
                except (OSError, smtplib.SMTPException):
                    time.sleep(0.2)

    def killer(self):
        deadline = time.time() + 3600
        while not self.done.wait(self.kill_every * random.uniform(0.5, 1.5)) and time.time() < deadline:
            name = random.choice(DAEMONS)
            pid = pid_of(name)
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                    self.kills += 1
                except ProcessLookupError:
                    pass
            with self.restart_lock:
                try:
                    dev("up")
                except subprocess.CalledProcessError as e:
                    print(f"soak: ./dev up failed ({e}); retrying at the next round", file=sys.stderr)

    def run(self):
        per = self.messages // self.sessions
        threads = [threading.Thread(target=self.sender, args=(i * per, per)) for i in range(self.sessions)]
        k = threading.Thread(target=self.killer)
        t0 = time.time()
        k.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.done.set()
        k.join()
        dev("up")  # everything running for the drain
        self.drain()
        return time.time() - t0

    def drain(self, timeout=600):
        end = time.time() + timeout
        while time.time() < end:
            if not glob.glob(os.path.join(DEV, "spool", "queue", "*")):
                return
            time.sleep(1)

    def count(self):
        seen = {}
        for path in glob.glob(os.path.join(DEV, "mail", "example.test", "demo", "Maildir", "*", "*")):
            try:
                data = open(path, "rb").read()
            except OSError:
                continue
            i = data.find(f"soak-{self.run_id}-".encode())
            if i >= 0:
                tok = data[i:i + len(self.token(0))].decode()
                seen[tok] = seen.get(tok, 0) + 1
        return seen


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--kill-every", type=float, default=3.0, help="seconds between kills (randomised)")
    a = ap.parse_args()
    dev("up")
    soak = Soak(a.messages, a.sessions, a.kill_every, str(int(time.time())))
    secs = soak.run()
    seen = soak.count()
    once = sum(1 for t in soak.accepted if seen.get(t) == 1)
    twice = sum(1 for t in soak.accepted if seen.get(t) == 2)
    missing = sorted(t for t in soak.accepted if t not in seen)
    more = sorted(t for t in soak.accepted if seen.get(t, 0) > 2)
    unaccepted_delivered = sum(1 for t in seen if t not in soak.accepted)
    print(f"soak: {len(soak.accepted)} accepted in {secs:.0f}s with {soak.kills} kills: "
          f"{once} once, {twice} twice, {len(missing)} missing, {len(more)} more than twice, "
          f"{unaccepted_delivered} delivered without a 250 seen")
    if missing:
        print("missing:", " ".join(missing[:20]))
    sys.exit(1 if missing or more else 0)


if __name__ == "__main__":
    main()

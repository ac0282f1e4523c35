#!/usr/bin/python3
"""SMTP-to-Maildir throughput: smtp-source sends N messages of 4 KB at concurrency 1 and 20;
prints messages/s (accepted and delivered) and daemon CPU seconds per message."""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from ferry_harness import Ferry  # noqa: E402

DAEMONS = ("mda", "qmgr", "smtpd")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(concurrency, messages, size):
    f = Ferry()
    try:
        f.set(log_level="info", qmgr_max_deliveries=20)
        f.add_domain("example.test")
        f.add_account("bench@example.test", "bench-secret")
        f.start(*DAEMONS)
        cpu0 = {d: cpu_seconds(f.pid(d)) for d in DAEMONS}
        t0 = time.time()
        subprocess.run(["/usr/sbin/smtp-source", "-c", "-l", str(size), "-m", str(messages),
                        "-s", str(concurrency), "-f", "sender@bench.test", "-t", "bench@example.test",
                        f"127.0.0.1:{f.port('smtp')}"], check=True, stdout=subprocess.DEVNULL)
        t_accept = time.time() - t0
        f.wait_mail("bench@example.test", count=messages, timeout=600)
        t_deliver = time.time() - t0
        cpu = sum(cpu_seconds(f.pid(d)) - cpu0[d] for d in DAEMONS)
        print(f"concurrency {concurrency:2d}: {messages} x {size} B  accepted {messages / t_accept:8.1f} msg/s  "
              f"delivered {messages / t_deliver:8.1f} msg/s  cpu {1000 * cpu / messages:6.3f} ms/msg")
    finally:
        f.cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--concurrency", type=int, nargs="*", default=[1, 20])
    a = ap.parse_args()
    for c in a.concurrency:
        run(c, a.messages, a.size)


if __name__ == "__main__":
    main()

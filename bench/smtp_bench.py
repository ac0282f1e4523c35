#!/usr/bin/python3
"""SMTP-to-Maildir throughput: smtp-source sends N messages of 4 KB at concurrency 1 and 20;
prints messages/s (accepted and delivered) and daemon CPU seconds per message, and beside them the
sync calls per message of each daemon (fsync, fdatasync, sync_file_range, syncfs, msync), counted by
strace attached to every daemon in a second run of the same workload (--sync-messages of them; 0 for
none): tracing slows the daemons, so that run's throughput is not the one printed."""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from ferry_harness import Ferry  # noqa: E402
from dovecot_instance import cpu_seconds  # noqa: E402
from measure import SyncCounter  # noqa: E402
from workload import smtp_source  # noqa: E402

DAEMONS = ("mda", "qmgr", "smtpd")


def run(concurrency, messages, size, count_syncs=False):
    """Messages/s and CPU ms per message; with count_syncs, {daemon: syncs} for the run instead."""
    f = Ferry()
    try:
        f.set(log_level="info", qmgr_max_deliveries=20)
        f.add_domain("example.test")
        f.add_account("bench@example.test", "bench-secret")
        f.start(*DAEMONS)
        counter = SyncCounter({d: f.pid(d) for d in DAEMONS}) if count_syncs else None
        cpu0 = {d: cpu_seconds([f.pid(d)]) for d in DAEMONS}
        t0 = time.time()
        smtp_source(f.port("smtp"), "bench@example.test", messages, size, concurrency)
        t_accept = time.time() - t0
        f.wait_mail("bench@example.test", count=messages, timeout=600)
        t_deliver = time.time() - t0
        cpu = sum(cpu_seconds([f.pid(d)]) - cpu0[d] for d in DAEMONS)
        if counter:
            # qmgr removes a message after its Maildir copy is in: wait for the queue to empty.
            end = time.time() + 60
            while f.spool_ids("queue") and time.time() < end:
                time.sleep(0.1)
            return {d: sum(c.values()) for d, c in counter.stop().items()}
        return messages / t_accept, messages / t_deliver, 1000 * cpu / messages
    finally:
        f.cleanup()


def report(concurrency, messages, size, sync_messages):
    accepted, delivered, cpu_ms = run(concurrency, messages, size)
    line = (f"concurrency {concurrency:2d}: {messages} x {size} B  accepted {accepted:8.1f} msg/s  "
            f"delivered {delivered:8.1f} msg/s  cpu {cpu_ms:6.3f} ms/msg")
    if sync_messages > 0:
        syncs = run(concurrency, sync_messages, size, count_syncs=True)
        per = {d: n / sync_messages for d, n in syncs.items()}
        line += "  syncs/msg " + " ".join(f"{d} {per[d]:.2f}" for d in DAEMONS) + f"  total {sum(per.values()):.2f}"
    print(line, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--concurrency", type=int, nargs="*", default=[1, 20])
    ap.add_argument("--sync-messages", type=int, default=1000,
                    help="messages of the strace run that counts syncs (0: no count)")
    a = ap.parse_args()
    for c in a.concurrency:
        report(c, a.messages, a.size, min(a.sync_messages, a.messages))


if __name__ == "__main__":
    main()

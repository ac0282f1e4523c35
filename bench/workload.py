"""What the SMTP benchmarks share: smtp-source runs spread over recipients, waiting for a count, and one measured run."""
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from dovecot_instance import cpu_seconds
from measure import PeakPss, wait_quiet

SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"


def require_tools(*tools, who="bench"):
    for tool in tools:
        if not os.path.exists(tool):
            sys.exit(f"{who}: {tool} is missing (Debian package postfix; ./dev installs it)")


def spread(messages, recipients):
    """[(recipient, count)]: `messages` spread evenly over `recipients` (those that get none left out)."""
    n = len(recipients)
    jobs = [(r, messages // n + (1 if i < messages % n else 0)) for i, r in enumerate(recipients)]
    return [(r, c) for r, c in jobs if c]


def smtp_source(port, recipient, count, size, sessions=1, timeout=1800, sender="sender@bench.test", message_file=None):
    """smtp-source's own message of `size` bytes, or with `message_file` that file as it is (-F)."""
    body = ["-F", message_file] if message_file else ["-l", str(size)]
    # timeout(1) bounds the run, not subprocess.run(timeout=): Python waits for a child with a
    # timeout by polling, up to 50 ms late, and at one session each late reap is time no message
    # is sent (a fifth of ferry's one-session figure, a fifteenth of the anchor's).
    subprocess.run(["timeout", "-k", "10", str(int(timeout)), SMTP_SOURCE, "-c", *body, "-m", str(count),
                    "-s", str(sessions), "-f", sender, "-t", recipient, f"127.0.0.1:{port}"],
                   check=True, stdout=subprocess.DEVNULL)


def inject(port, jobs, size, parallel, timeout=1800, sender="sender@bench.test", message_file=None):
    """One smtp-source (one session) per (recipient, count) job, `parallel` of them at a time: so
    `parallel` SMTP sessions stay open while the jobs last, each for one recipient."""
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda job: smtp_source(port, job[0], job[1], size, 1, timeout, sender, message_file), jobs))


def wait_count(count, want, timeout, alive, what="messages"):
    """Polls count() until it reaches want; raises when a server process dies or the time is up."""
    end = time.time() + timeout
    while True:
        n = count()
        if n >= want:
            return
        if time.time() > end:
            raise TimeoutError(f"{n} of {want} {what} after {timeout} s")
        if not alive():
            raise RuntimeError(f"a server process died ({n} of {want} {what})")
        time.sleep(0.05)


def measured_run(send, delivered, want, pids, alive, max_load, max_wait, timeout):
    """Waits for a quiet machine, then times send() until delivered() reaches want, with the CPU
    (what the processes `pids()` names used, with their reaped children) and peak PSS of the server.
    Returns rate (msg/s), cpu_ms per message, pss_mib, the load seen before and the seconds taken."""
    load = wait_quiet(max_load, max_wait)
    cpu0 = cpu_seconds(pids())
    peak = PeakPss(pids)
    peak.start()
    t0 = time.time()
    try:
        send()
        wait_count(delivered, want, timeout, alive)
    finally:
        pss = peak.stop()
    took = time.time() - t0
    # Postfix and Dovecot fork and reap workers: count those still running and what their parents collected.
    cpu = cpu_seconds(pids()) - cpu0
    return dict(rate=want / took, cpu_ms=1000 * cpu / want, pss_mib=pss / 1024, load=load, seconds=took)


def write_queue_files(spool_dir, n, rcpt_of, sender, body=1000):
    """n committed queue files, as ferry-smtpd leaves them (time-ordered 16-hex-digit ids), the i-th
    for recipient rcpt_of(i)."""
    queue = os.path.join(spool_dir, "queue")
    os.makedirs(queue, exist_ok=True)
    base = int(time.time() * 1e6) - 10 * n
    now = int(time.time())
    data = "Subject: bench\n\n" + "x" * body + "\n"
    for i in range(n):
        qid = f"{base + 10 * i:013X}{i % 4096:03X}"
        with open(os.path.join(queue, qid), "w") as fp:
            fp.write(f"ferry-queue 1\nid {qid}\narrival {now}\nsender {sender}\nclient 127.0.0.1\nhelo bench\n"
                     f"rcpt {rcpt_of(i)}\ndata\n{data}\nend {len(data)}\n")

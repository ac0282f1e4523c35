"""What the benchmarks measure with: waiting for a quiet machine, the peak PSS of a set of processes, and their sync calls."""
import os
import signal
import subprocess
import tempfile
import threading
import time

from dovecot_instance import pss_kib


def wait_quiet(max_load, max_wait):
    """Writes back what the run before left dirty (so that no run pays for another's page cache), then
    waits (at most max_wait s) for the 1-minute load average to fall under max_load; returns it."""
    os.sync()
    end = time.time() + max_wait
    load = os.getloadavg()[0]
    while load > max_load and time.time() < end:
        time.sleep(2)
        load = os.getloadavg()[0]
    return load


def own_block_groups(prefix="fyb-"):
    """A new directory under /tmp whose subdirectories ext4 places as it places top-level ones (chattr
    +T: each in block groups with the fewest directories, so away from one another and from what
    the machine deleted lately). On ext4 without a journal, an inode freed in the last minutes is
    passed over when a file is created, each creation testing every such inode of its block group
    again: a run whose files share block groups with the files another run just deleted (Postfix's
    queue files, a test suite's directories) spends much of its CPU there. Elsewhere (another file
    system, chattr missing) it is a plain directory."""
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(path, 0o755)  # the servers' own users reach their directories below it
    subprocess.run(["chattr", "+T", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return path


class PeakPss(threading.Thread):
    """Samples the PSS of the processes `pids()` names until stopped; `peak` is the highest sum seen."""

    def __init__(self, pids, period=0.05):
        super().__init__(daemon=True)
        self.pids, self.period, self.peak = pids, period, pss_kib(pids())
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(self.period):
            self.peak = max(self.peak, pss_kib(self.pids()))

    def stop(self):
        self.done.set()
        self.join()
        return max(self.peak, pss_kib(self.pids()))


SYNC_CALLS = ("fsync", "fdatasync", "sync_file_range", "syncfs", "msync")


class SyncCounter:
    """Counts the sync system calls of running processes: one `strace -f -c` attached to each (all its
    threads), stopped with SIGINT for its summary. Tracing slows the process: count in a run of its
    own, not in the one that measures throughput."""

    def __init__(self, pids):
        self.procs = {}
        for name, pid in pids.items():
            self.procs[name] = subprocess.Popen(
                ["strace", "-f", "-c", "-e", "trace=" + ",".join(SYNC_CALLS), "-p", str(pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)  # strace attaches every thread before the run starts

    def stop(self):
        """{name: {call: count}} of the calls made while attached."""
        out = {}
        for name, p in self.procs.items():
            p.send_signal(signal.SIGINT)
        for name, p in self.procs.items():
            try:
                _, err = p.communicate(timeout=30)
            except Exception:  # noqa: BLE001 -- a stuck strace must not hang the bench
                p.kill()
                _, err = p.communicate()
            counts = {}
            for line in err.splitlines():
                parts = line.split()
                # "% time  seconds  usecs/call  calls  [errors]  syscall"
                if len(parts) >= 5 and parts[-1] in SYNC_CALLS:
                    try:
                        counts[parts[-1]] = int(parts[3])
                    except ValueError:
                        pass
            out[name] = counts
        return out

"""What the benchmarks measure with: waiting for a quiet machine, and the peak PSS of a set of processes."""
import os
import threading
import time

from dovecot_instance import pss_kib


def wait_quiet(max_load, max_wait):
    """Waits (at most max_wait s) for the 1-minute load average to fall under max_load; returns it."""
    end = time.time() + max_wait
    load = os.getloadavg()[0]
    while load > max_load and time.time() < end:
        time.sleep(2)
        load = os.getloadavg()[0]
    return load


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

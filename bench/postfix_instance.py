"""A private Postfix (Debian's package) for the benchmarks: own config_directory, queue and loopback port, stopped by PID.

    from postfix_instance import Postfix
    with Postfix(transport={"d1.test": "[127.0.0.1]:2525", "d2.test": "lmtp:[127.0.0.1]:2424"}) as p:
        p.smtp_port, p.pids(), p.pss_kib()

It writes main.cf and master.cf (Debian's master.cf with chroot off and smtpd on 127.0.0.1:<free port>)
into a temporary config_directory, with its own queue_directory and data_directory, relays for
127.0.0.0/8 by the given transport map (texthash, so no postmap), never looks up DNS, and runs
`postfix -c <dir> start-fg`. Its safety defaults stay on: the queue file is fsync'd before the 250.
The system's Postfix (never started here) and /etc/postfix are not touched.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from dovecot_instance import cpu_seconds, descendants, free_port, pss_kib

POSTFIX = "/usr/sbin/postfix"
MASTER_CF = "/usr/share/postfix/master.cf.dist"

MAIN_CF = """\
# Private Postfix for ferry's bench/ (not the system's instance).
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-bench.test
mydomain = postfix-bench.test
myorigin = postfix-bench.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
transport_maps = texthash:{etc}/transport
smtp_dns_support_level = disabled
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file = {root}/postfix.log
maillog_file_prefixes = {root}
biff = no
message_size_limit = 20480000
default_process_limit = 200
"""


class Postfix:
    """One private Postfix instance; start() runs it, stop() ends it (also on with-exit)."""

    def __init__(self, transport, parent=None):
        self.transport = transport
        self.parent = parent  # where its root goes (None: the temporary directory)
        self.root = None
        self.proc = None
        self.smtp_port = 0

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        if not os.path.exists(POSTFIX):
            raise RuntimeError("postfix is not installed (./dev installs it for smtp-source)")
        self.root = tempfile.mkdtemp(prefix="ferry-bench-postfix-", dir=self.parent)
        os.chmod(self.root, 0o755)
        etc = f"{self.root}/etc"
        os.makedirs(etc)
        for d in ("queue", "data"):
            os.makedirs(f"{self.root}/{d}")
        shutil.chown(f"{self.root}/data", "postfix")
        self.smtp_port = free_port()
        with open(f"{etc}/main.cf", "w") as f:
            f.write(MAIN_CF.format(root=self.root, etc=etc))
        with open(f"{etc}/master.cf", "w") as f:
            f.write(self._master_cf())
        with open(f"{etc}/transport", "w") as f:
            for domain, nexthop in self.transport.items():
                # "[host]:port" goes out by SMTP; "lmtp:[host]:port" names its transport itself.
                f.write(f"{domain} {nexthop if nexthop.startswith(('smtp:', 'lmtp:')) else 'smtp:' + nexthop}\n")
        env = dict(os.environ, MAIL_CONFIG=etc)
        subprocess.run([POSTFIX, "-c", etc, "set-permissions"], env=env, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        subprocess.run([POSTFIX, "-c", etc, "check"], env=env, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        self.proc = subprocess.Popen([POSTFIX, "-c", etc, "start-fg"], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postfix exited at start: " + self.log()[-500:])
            try:
                import socket
                with socket.create_connection(("127.0.0.1", self.smtp_port), timeout=1) as s:
                    if s.recv(100).startswith(b"220"):
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("postfix did not answer on its port: " + self.log()[-500:])

    def _master_cf(self):
        out = []
        for line in open(MASTER_CF):
            fields = line.split()
            if line[:1].isalnum() and len(fields) >= 8:
                if fields[0] == "smtp" and fields[1] == "inet":
                    fields[0] = f"127.0.0.1:{self.smtp_port}"
                fields[4] = "n"  # no chroot: the private queue has no copy of /etc
                line = " ".join(fields[:8]) + (" " + " ".join(fields[8:]) if len(fields) > 8 else "") + "\n"
            out.append(line)
        return "".join(out)

    def pids(self):
        return [self.proc.pid] + descendants(self.proc.pid) if self.proc and self.proc.poll() is None else []

    def pss_kib(self):
        return pss_kib(self.pids())

    def cpu_seconds(self):
        return cpu_seconds(self.pids())

    def queued(self):
        """Messages still in the private queue (incoming, active, deferred)."""
        n = 0
        for d in ("incoming", "active", "deferred", "maildrop"):
            for _, _, files in os.walk(f"{self.root}/queue/{d}"):
                n += len(files)
        return n

    def log(self):
        try:
            return open(f"{self.root}/postfix.log", errors="replace").read()
        except (OSError, TypeError):
            return ""

    def stop(self, remove=True):
        """Stops every process; removes the instance's directory unless `remove` is false."""
        if self.proc and self.proc.poll() is None:
            pids = descendants(self.proc.pid)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc = None
        if self.root and remove:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def sent_lines(log):
    return len(re.findall(r"status=sent", log))

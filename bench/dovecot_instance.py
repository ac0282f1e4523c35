"""A private Dovecot (Debian's package) for the benchmarks: own config, dirs and loopback ports, stopped by PID.

    from dovecot_instance import Dovecot
    with Dovecot(users={"a@example.test": hash}) as d:   # hash: a crypt(3) string, "$6$..." or "$y$..."
        d.imap_port, d.lmtp_port, d.pop3_port, d.maildir("a@example.test"), d.pss_kib(), d.processes()

It installs dovecot-imapd, dovecot-lmtpd and dovecot-pop3d with apt-get when they are missing (with a policy-rc.d that
stops the package from starting the system's service), writes its own dovecot.conf in a temporary
directory (base_dir, state_dir, log, Maildirs; ssl = no; mail_fsync = optimized; users in a
passwd-file, mail owned by nobody), runs `dovecot -c <conf> -F` on 127.0.0.1 high free ports, and
stops the master and every process it forked by PID. The system's Dovecot is never touched.
"""
import os
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PACKAGES = ("dovecot-imapd", "dovecot-lmtpd", "dovecot-pop3d")
BINARY = "/usr/sbin/dovecot"
POLICY_RC = "/usr/sbin/policy-rc.d"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_installed():
    """apt-get install the packages when a binary is missing; no service may start meanwhile."""
    if all(os.path.exists(p) for p in (BINARY, "/usr/lib/dovecot/imap", "/usr/lib/dovecot/lmtp", "/usr/lib/dovecot/pop3")):
        return
    own_policy = not os.path.exists(POLICY_RC)
    if own_policy:
        with open(POLICY_RC, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(POLICY_RC, 0o755)
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES], env=env, check=True,
                       timeout=900, stdout=subprocess.DEVNULL)
    finally:
        if own_policy:
            os.unlink(POLICY_RC)


def _start_time(pid):
    """Field 22 of /proc/PID/stat: tells a process from a later one that got the same PID."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def descendants(root):
    """PIDs of every live process below `root` (one pass over /proc)."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def pss_kib(pids):
    """Sum of the Pss lines of /proc/PID/smaps_rollup over `pids` (processes gone meanwhile count 0)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def cpu_seconds(pids):
    """User + system CPU of `pids`, with what they collected from children already reaped."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def raise_nofile():
    """Soft RLIMIT_NOFILE up to the hard limit, for this process and what it starts."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


CONF = """\
# Private Dovecot for ferry's bench/ (not the system's instance).
base_dir = {run}
state_dir = {state}
instance_name = ferry-bench-{tag}
protocols = imap lmtp pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {root}/dovecot.log
mail_location = maildir:{mail}/%d/%n/Maildir
mail_fsync = optimized
first_valid_uid = {uid}
passdb {{
  driver = passwd-file
  args = scheme=CRYPT username_format=%Lu {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail}/%d/%n
}}
default_process_limit = {procs}
default_client_limit = {clients}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  service_count = 0
  process_min_avail = 1
  process_limit = 4
  client_limit = {clients}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
  service_count = 0
  process_min_avail = 1
}}
service imap-urlauth-login {{
  process_limit = 1
}}
service auth {{
  client_limit = {clients3}
}}
service anvil {{
  client_limit = {clients3}
}}
protocol pop3 {{
  mail_max_userip_connections = {clients}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
  process_limit = 20
}}
service imap {{
  process_limit = {procs}
  unix_listener imap-master {{
    mode = 0666
  }}
}}
protocol imap {{
  mail_max_userip_connections = {clients}
  imap_hibernate_timeout = {hibernate}
}}
# For hibernation (imap_hibernate_timeout above 0): the imap processes run as the mail user.
service imap-hibernate {{
  unix_listener imap-hibernate {{
    mode = 0666
  }}
}}
"""


class Dovecot:
    """One private Dovecot instance; start() runs it, stop() ends it (also on with-exit)."""

    def __init__(self, users, max_connections=1000, hibernate="0", mail_user="nobody", parent="/tmp"):
        ensure_installed()
        self.root = tempfile.mkdtemp(prefix="fy-dovecot-", dir=parent)
        os.chmod(self.root, 0o755)  # the login and mail users reach base_dir and the Maildirs below it
        pw = pwd.getpwnam(mail_user)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.mail = os.path.join(self.root, "mail")
        os.makedirs(self.mail)
        os.chown(self.mail, self.uid, self.gid)
        self.imap_port, self.lmtp_port, self.pop3_port = free_port(), free_port(), free_port()
        self.users = dict(users)
        self._write_passwd()
        self.conf = os.path.join(self.root, "dovecot.conf")
        self._params = dict(root=self.root, run=os.path.join(self.root, "run"), state=os.path.join(self.root, "state"),
                            tag=os.path.basename(self.root), mail=self.mail, uid=self.uid, gid=self.gid,
                            imap_port=self.imap_port, lmtp_port=self.lmtp_port, pop3_port=self.pop3_port, procs=max_connections + 100,
                            clients=max_connections + 100, clients3=3 * max_connections + 300)
        self.set_hibernate(hibernate)
        self.proc = None
        self._known = {}  # pid -> start time of every process seen below the master

    def set_hibernate(self, timeout):
        """imap_hibernate_timeout ("0": never); takes effect at the next start()."""
        with open(self.conf, "w") as f:
            f.write(CONF.format(hibernate=timeout, **self._params))

    def _write_passwd(self):
        with open(os.path.join(self.root, "passwd"), "w") as f:
            for user, hashed in self.users.items():
                f.write(f"{user.lower()}:{hashed}\n")

    def add_user(self, user, hashed):
        self.users[user] = hashed
        self._write_passwd()  # passwd-file is read again when it changes

    def maildir(self, user):
        """The user's Maildir, created (cur/new/tmp) and owned by the mail user."""
        local, domain = user.lower().split("@", 1)
        md = os.path.join(self.mail, domain, local, "Maildir")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(md, sub), exist_ok=True)
        for path in (os.path.join(self.mail, domain), os.path.dirname(md), md,
                     *(os.path.join(md, sub) for sub in ("cur", "new", "tmp"))):
            os.chown(path, self.uid, self.gid)
        return md

    def chown(self, path):
        os.chown(path, self.uid, self.gid)

    def start(self, timeout=30):
        raise_nofile()
        log = open(os.path.join(self.root, "master.out"), "w")
        self.proc = subprocess.Popen([BINARY, "-c", self.conf, "-F"], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.imap_port), timeout=2) as s:
                    if s.recv(200).startswith(b"* OK"):
                        s.sendall(b"a LOGOUT\r\n")
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"dovecot did not greet on port {self.imap_port}:\n{self.log()[-3000:]}")

    def log(self):
        text = ""
        for name in ("master.out", "dovecot.log"):
            try:
                with open(os.path.join(self.root, name), errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return text

    def processes(self):
        """PIDs of the master and every process below it (and remembers them for stop())."""
        if not self.proc or self.proc.poll() is not None:
            return []
        pids = [self.proc.pid] + descendants(self.proc.pid)
        for pid in pids:
            self._known.setdefault(pid, _start_time(pid))
        return pids

    def imap_processes(self):
        return [p for p in self.processes() if comm(p) == "imap"]

    def pss_kib(self):
        return pss_kib(self.processes())

    def cpu_seconds(self):
        return cpu_seconds(self.processes())

    def stop(self, timeout=20):
        """SIGTERM to the master, then SIGKILL to whatever of ours (by PID and start time) still runs."""
        if self.proc is None:
            return
        self.processes()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        end = time.time() + timeout
        while time.time() < end:
            alive = [p for p, st in self._known.items() if st is not None and _start_time(p) == st]
            if not alive:
                break
            for pid in alive:
                if time.time() > end - timeout / 2:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            time.sleep(0.1)
        self.proc = None

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

"""Runs real ferry daemons in a private temp root on loopback, for the integration tests."""
import contextlib
import glob
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("FERRY_BUILD", os.path.join(REPO, "build"))

PROGRAMS = {
    "smtpd": "mta/smtpd/ferry-smtpd",
    "qmgr": "mta/qmgr/ferry-qmgr",
    "mda": "mda/ferry-mda",
    "relay": "mta/relay/ferry-relay",
    "popd": "popd/ferry-popd",
    "imapd": "imapd/ferry-imapd",
    "managesieve": "mda/managesieve/ferry-managesieve",
    "admin": "common/admin/ferry-admin",
}


def binary(name):
    """Path of a built program, e.g. binary("smtpd") or binary("tls-echo")."""
    if name in PROGRAMS:
        path = os.path.join(BUILD, PROGRAMS[name])
        if os.path.exists(path):
            return path
    hits = glob.glob(os.path.join(BUILD, "**", "ferry-" + name), recursive=True) + \
        glob.glob(os.path.join(BUILD, "**", name), recursive=True)
    hits = [h for h in hits if os.path.isfile(h) and os.access(h, os.X_OK)]
    if not hits:
        raise FileNotFoundError(f"no built program for {name} under {BUILD}")
    return hits[0]


def tmp_files(pid, under):
    """The message files process `pid` holds open in a tmp/ directory below `under`, as
    /proc/<pid>/fd paths (readable while open): ferry-mda's tmp/ files have no name (O_TMPFILE)."""
    prefix = os.path.realpath(under).rstrip("/") + "/"
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        path = f"/proc/{pid}/fd/{fd}"
        try:
            target = os.readlink(path)
            if target.startswith(prefix) and "/tmp/" in target[len(prefix) - 1:]:
                out.setdefault(os.stat(path).st_ino, path)  # a file held twice (a reader's dup) counts once
        except OSError:
            continue
    return list(out.values())


def wait_until(cond, timeout=15, what="condition"):
    """Polls cond() until it is true; TimeoutError naming `what` otherwise."""
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(0.1)
    raise TimeoutError(what)


def text_of(path):
    """The file's text, or "" while it does not exist yet (a daemon saves it on a thread of its own)."""
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def proc_ids(pid):
    """The Uid, Gid (real, effective, saved, filesystem) and Groups lines of /proc/<pid>/status."""
    ids = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                ids[key] = value.split()
    return ids


class LineConn:
    """A raw CRLF line connection (SMTP or POP3) from a chosen loopback source address; EOF raises."""

    def __init__(self, port, source="127.0.0.1", timeout=10):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        self.buf = b""

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def raw_line(self):
        """One line as bytes, without its CRLF; EOFError when the server closes first."""
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exactly(self, n):
        """The next n bytes (an IMAP literal); EOFError when the server closes first."""
        while len(self.buf) < n:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def closed(self, timeout=5):
        """True once the server has closed the connection (after any last bytes), False on timeout."""
        self.s.settimeout(timeout)
        try:
            while True:
                data = self.s.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (ConnectionResetError, socket.timeout):
            return False

    def close(self):
        self.s.close()


class SmtpClient:
    """A raw SMTP client over a socket, for exact control of the bytes sent; EOF raises."""

    def __init__(self, port, timeout=30, wrap=None):
        self.timeout = timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if wrap:
            self.sock = wrap(self.sock)  # implicit TLS
        self.buf = b""
        self.banner = self.reply()

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def line(self):
        """One line without its line end; ConnectionError when the server closes first."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed; buffered %r" % self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("latin-1").rstrip("\r")

    def reply(self):
        """One whole reply: (code, [text lines])."""
        lines = []
        while True:
            line = self.line()
            lines.append(line[4:])
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), lines

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def read_all(self):
        """Everything up to the server's close."""
        data, self.buf = self.buf, b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return data
            data += chunk

    def close(self):
        self.sock.close()


def make_cert(directory, name="mx.test"):
    """A self-signed certificate and key made with certtool; returns (cert, key)."""
    key = os.path.join(directory, "tls.key")
    cert = os.path.join(directory, "tls.crt")
    tmpl = os.path.join(directory, "cert.tmpl")
    with open(tmpl, "w") as f:
        f.write(f'cn = "{name}"\ndns_name = "{name}"\nip_address = "127.0.0.1"\n'
                "expiration_days = 30\ntls_www_server\nencryption_key\nsigning_key\n")
    subprocess.run(["certtool", "--generate-privkey", "--key-type=ecdsa", "--outfile", key],
                   check=True, capture_output=True)
    subprocess.run(["certtool", "--generate-self-signed", "--load-privkey", key, "--template", tmpl,
                    "--outfile", cert], check=True, capture_output=True)
    return cert, key


class Ferry:
    """One ferry installation: config, spool, mail store, account db, and the daemons started."""

    def __init__(self, parent="/tmp"):
        self.root = tempfile.mkdtemp(prefix="fy-", dir=parent)
        self.conf = os.path.join(self.root, "ferry.conf")
        self.keys = {
            "hostname": "mx.test",
            "log_level": "debug",
            "spool_dir": os.path.join(self.root, "spool"),
            "mail_dir": os.path.join(self.root, "mail"),
            "run_dir": os.path.join(self.root, "run"),
            "state_dir": os.path.join(self.root, "state"),
            "account_db": os.path.join(self.root, "accounts.db"),
            # Daemons see a ferry-admin change at their next lookup, so tests never race the check timer.
            "account_db_check_interval": "0",
            "smtpd_listen": "127.0.0.1:0",
            "popd_listen": "127.0.0.1:0",
            "imapd_listen": "127.0.0.1:0",
            "managesieve_listen": "127.0.0.1:0",
            # imaps needs a certificate: tests that want it call ferry.tls() and set a port.
            "imapd_tls_listen": "",
            "qmgr_retry_schedule": "1s",
            # Delivery must follow smtpd's notification; only tests about the queue scan shorten this.
            "qmgr_scan_interval": "1h",
            "auth_failure_delay": "1s",
            # No DNS server answers here: tests about SPF and DKIM turn them on with their own dnsmasq.
            "smtpd_spf_policy": "off",
            # Tests that compare messages byte for byte expect no X-Spam-* fields: tests about the
            # spam check turn it on (it is on by default).
            "spam_filter": "no",
            "smtpd_dkim_verify": "no",
        }
        os.makedirs(self.keys["run_dir"])
        self.procs = {}
        self.logs = {}
        self._write_conf()

    # configuration and accounts

    def set(self, **keys):
        for k, v in keys.items():
            self.keys[k] = str(v)
        self._write_conf()

    def _write_conf(self):
        with open(self.conf, "w") as f:
            for k, v in self.keys.items():
                f.write(f"{k} = {v}\n")

    def tls(self):
        """Makes a self-signed certificate and points tls_cert_file/tls_key_file at it."""
        cert, key = make_cert(self.root)
        self.set(tls_cert_file=cert, tls_key_file=key)
        return cert, key

    def admin(self, *args, input=None, check=True, timeout=30):
        p = subprocess.run([binary("admin"), "-c", self.conf, *args], input=input, text=True,
                           capture_output=True, timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError(f"ferry-admin {' '.join(args)} exited {p.returncode}: {p.stderr}")
        return p

    def add_domain(self, domain):
        return self.admin("domain", "add", domain)

    def add_account(self, address, password):
        return self.admin("account", "add", address, input=password + "\n")

    def maildir(self, address):
        local, domain = address.lower().split("@", 1)
        return os.path.join(self.keys["mail_dir"], domain, local, "Maildir")

    def mail(self, address):
        md = self.maildir(address)
        return sorted(glob.glob(os.path.join(md, "new", "*")) + glob.glob(os.path.join(md, "cur", "*")))

    def spool_ids(self, sub):
        """Sorted names in a spool subdirectory: queue ids in incoming/, queue/, state/, corrupt/."""
        return sorted(os.path.basename(p) for p in glob.glob(os.path.join(self.keys["spool_dir"], sub, "*")))

    def spool_files(self, sub):
        """Sorted paths of the files in a spool subdirectory."""
        return sorted(glob.glob(os.path.join(self.keys["spool_dir"], sub, "*")))

    def wait_mail(self, address, count=1, timeout=15):
        end = time.time() + timeout
        while time.time() < end:
            files = self.mail(address)
            if len(files) >= count:
                return files
            time.sleep(0.1)
        raise TimeoutError(f"{address}: {len(self.mail(address))} messages, wanted {count}\n"
                           + self.all_logs()[-3000:])

    # daemons

    def start(self, *names, extra_args=(), wait=True, wrapper=(), env=None):
        """Starts daemons; `wrapper` goes before the program (strace ...), `env` adds variables."""
        for name in names:
            log_path = os.path.join(self.root, f"{name}.log")
            self.logs[name] = log_path
            before = self._ready_count(name)
            log = open(log_path, "a")
            self.procs[name] = subprocess.Popen([*wrapper, binary(name), "-c", self.conf, *extra_args],
                                                stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL,
                                                env=dict(os.environ, **env) if env else None)
            log.close()
            if wait:
                self.wait_ready(name, before)

    def _ready_count(self, name):
        return len(re.findall(r": ready$", self.log(name), re.M))

    def wait_ready(self, name, before=0, timeout=15):
        end = time.time() + timeout
        while time.time() < end:
            if self._ready_count(name) > before:
                return
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"ferry-{name} exited {self.procs[name].returncode}:\n{self.log(name)[-2000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"ferry-{name} not ready:\n{self.log(name)[-2000:]}")

    def restart(self, name, **kw):
        self.stop_one(name)
        self.start(name, **kw)

    def pid(self, name):
        return self.procs[name].pid

    def kill(self, name, sig=signal.SIGKILL):
        p = self.procs[name]
        if p.poll() is None:
            os.kill(p.pid, sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait()

    def stop_one(self, name):
        p = self.procs.get(name)
        if p and p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop(self):
        for name in list(self.procs):
            self.stop_one(name)

    def log(self, name):
        path = self.logs.get(name, os.path.join(self.root, f"{name}.log"))
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def all_logs(self):
        return "".join(f"--- {n}\n{self.log(n)}" for n in self.logs)

    def wait_log(self, name, regex, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            m = re.search(regex, self.log(name), re.M)
            if m:
                return m
            time.sleep(0.05)
        raise TimeoutError(f"{regex!r} not in ferry-{name} log:\n{self.log(name)[-2000:]}")

    def port(self, service):
        """The TCP port of a listener, from the last "listening on <service> host:port" line."""
        for name in self.logs:
            hits = re.findall(rf"listening on {re.escape(service)} \S+:(\d+)$", self.log(name), re.M)
            if hits:
                return int(hits[-1])
        raise KeyError(f"no daemon logged a {service} listener")

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# Remote peers for ferry-relay's tests: each is a "host" on its own loopback address, port 25.

def loopback_host():
    """A random 127.x.y.z (x >= 100) whose port 25 is free: a separate host for one test."""
    import random
    for _ in range(100):
        addr = f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.{random.randint(2, 254)}"
        s = socket.socket()
        try:
            s.bind((addr, 25))
            return addr
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free loopback address for port 25")


def wait_port(addr, port=25, timeout=10):
    def up():
        try:
            socket.create_connection((addr, port), timeout=1).close()
            return True
        except OSError:
            return False
    wait_until(up, timeout, f"{addr}:{port} listening")


class SmtpSink:
    """Postfix's smtp-sink on addr:25, dumping each message into its own file under `directory`."""

    def __init__(self, addr=None, options=()):
        self.addr = addr or loopback_host()
        # smtp-sink writes as nobody: its directory must be reachable for that user.
        self.dir = directory = tempfile.mkdtemp(prefix="sink-", dir="/tmp")
        os.chmod(directory, 0o777)
        self.proc = subprocess.Popen(["/usr/sbin/smtp-sink", *options, "-u", "nobody", "-d",
                                      os.path.join(directory, "%H%M%S."), f"{self.addr}:25", "64"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.addr)

    def messages(self):
        """The dumped messages, oldest first, as bytes."""
        files = sorted(glob.glob(os.path.join(self.dir, "*")), key=os.path.getmtime)
        return [open(f, "rb").read() for f in files]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def transport_map(f, table, data_done_timeout="30s"):
    """table: {domain: "addr:port"}, written as ferry-relay's transport map; relay timeouts made short."""
    path = os.path.join(f.root, "transport")
    with open(path, "w") as fp:
        for domain, hop in table.items():
            addr, port = hop.rsplit(":", 1)
            fp.write(f"{domain}  [{addr}]:{port}\n")
    f.set(relay_transport_map=path, relay_connect_timeout="3s", relay_greeting_timeout="5s",
          relay_mail_timeout="5s", relay_rcpt_timeout="5s", relay_data_timeout="5s",
          relay_data_block_timeout="5s", relay_data_done_timeout=data_done_timeout)


class Peers:
    """Outside peers a test starts (ScriptedPeer, SmtpSink, ...): peers(kind, *args) makes one; stop() ends all."""

    def __init__(self):
        self.started = []

    def __call__(self, kind, *args, **kw):
        p = kind(*args, **kw)
        self.started.append(p)
        return p

    def stop(self):
        for p in self.started:
            p.stop()


class ScriptedPeer:
    """A small SMTP server on addr:25 run by a Python function per connection: handler(conn, peer),
    usually smtp_dialogue(...); a raw function for peers that speak no SMTP at all.

    `peer.readline(conn)` reads command lines; `peer.log` records what each connection said;
    `peer.messages`, `peer.rcpts` and `peer.auth` are what smtp_dialogue saw."""

    def __init__(self, handler, addr=None):
        self.addr = addr or loopback_host()
        self.handler = handler
        self.log = []
        self.connections = 0
        self.messages = []  # each message's bytes (DATA unstuffed, or the BDAT chunks joined)
        self.rcpts = 0      # RCPT commands over all connections
        self.auth = None    # (over TLS?, decoded AUTH PLAIN response) of the last AUTH
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.addr, 25))
        self.sock.listen(16)
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        try:
            conn.settimeout(60)
            self.handler(conn, self)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def readline(self, conn):
        """One command line without CRLF, or None at EOF."""
        buf = b""
        while not buf.endswith(b"\r\n"):
            c = conn.recv(1)
            if not c:
                return None
            buf += c
        line = buf[:-2].decode("utf-8", "replace")
        self.log.append(line)
        return line

    def read_data(self, conn):
        """The message after a 354, up to the final dot, dot-stuffing removed, CRLF kept."""
        data = b""
        while True:
            line = b""
            while not line.endswith(b"\r\n"):
                c = conn.recv(1)
                if not c:
                    return None
                line += c
            if line == b".\r\n":
                return data
            data += line[1:] if line.startswith(b".") else line

    def read_bdat(self, conn, first):
        """The chunks of a BDAT transaction starting with command `first`, each answered 250;
        None when the connection ends first."""
        data, line = b"", first
        while True:
            words = line.split()
            size = int(words[1])
            chunk = b""
            while len(chunk) < size:
                more = conn.recv(size - len(chunk))
                if not more:
                    return None
                chunk += more
            data += chunk
            conn.sendall(f"250 2.0.0 {size} octets\r\n".encode())
            if len(words) > 2 and words[2].upper() == "LAST":
                return data
            line = self.readline(conn)
            if line is None:
                return None

    def stop(self):
        self.stopped = True
        self.sock.close()


DROP = "DROP"  # as a scripted reply: close the connection instead of answering


def smtp_dialogue(name="peer.test", ehlo=("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"),
                  rcpt_reply=lambda n: "250 2.1.5 Ok", data_reply=lambda n: "250 2.0.0 Ok: queued",
                  after_dot=None, starttls=None, require_auth=False, other_reply="502 5.5.2 Unknown command"):
    """A ScriptedPeer handler that speaks SMTP as told:
    - ehlo: the EHLO keywords after the name (STARTTLS added when `starttls` is set), or a function
      (peer, over_tls) giving them all; "CHUNKING" among them makes BDAT work and DATA get 503;
    - rcpt_reply(n) / data_reply(n): the reply to the n-th RCPT of the peer (1 first) / to the n-th
      message, after it was read (a data_reply may take its time: the session waits); DROP closes;
    - after_dot(conn, peer): called instead of the data reply, and the session ends after it;
    - starttls: STARTTLS is offered (before TLS); an ssl.SSLContext wraps the connection after "220",
      a function (conn, peer) does what it likes there (returning a connection to go on with, or None);
    - AUTH is answered 235 and recorded in peer.auth; with require_auth, MAIL before it gets 530;
    - any other verb gets other_reply."""
    def keywords(peer, tls):
        if callable(ehlo):
            return list(ehlo(peer, tls))
        return (["STARTTLS"] if starttls and not tls else []) + list(ehlo)

    def send(conn, reply):
        if reply is DROP:
            return False
        conn.sendall((reply + "\r\n").encode())
        return True

    def handler(conn, peer):
        conn.sendall(f"220 {name} ESMTP\r\n".encode())
        accepted, tls = 0, False
        while True:
            line = peer.readline(conn)
            if line is None:
                return
            verb = line.split(" ", 1)[0].upper()
            chunking = "CHUNKING" in keywords(peer, tls)
            if verb == "EHLO":
                lines = [name, *keywords(peer, tls)]
                conn.sendall("".join(f"250{'-' if i < len(lines) - 1 else ' '}{l}\r\n"
                                     for i, l in enumerate(lines)).encode())
            elif verb == "STARTTLS" and starttls and not tls and "STARTTLS" in keywords(peer, tls):
                conn.sendall(b"220 2.0.0 Ready to start TLS\r\n")
                conn = starttls(conn, peer) if callable(starttls) else starttls.wrap_socket(conn, server_side=True)
                if conn is None:
                    return
                tls, accepted = True, 0
            elif verb == "AUTH":
                import base64
                peer.auth = (tls, base64.b64decode(line.split()[2]))
                conn.sendall(b"235 2.7.0 Authentication successful\r\n")
            elif verb == "MAIL" and require_auth and not peer.auth:
                conn.sendall(b"530 5.7.0 Authentication required\r\n")
            elif verb in ("MAIL", "RSET", "NOOP", "HELO"):
                accepted = 0
                conn.sendall(b"250 2.0.0 Ok\r\n")
            elif verb == "RCPT":
                peer.rcpts += 1
                reply = rcpt_reply(peer.rcpts)
                if not send(conn, reply):
                    return
                accepted += reply.startswith("2")
            elif verb == "BDAT" and chunking:
                data = peer.read_bdat(conn, line)
                if data is None:
                    return
                peer.messages.append(data)
            elif verb == "DATA" and chunking:
                conn.sendall(b"503 5.5.1 use BDAT\r\n")
            elif verb == "DATA" and not accepted:
                conn.sendall(b"554 5.5.1 Error: no valid recipients\r\n")
            elif verb == "DATA":
                conn.sendall(b"354 go ahead\r\n")
                data = peer.read_data(conn)
                if data is None:
                    return
                peer.messages.append(data)
                if after_dot:
                    after_dot(conn, peer)
                    return
                if not send(conn, data_reply(len(peer.messages))):
                    return
            elif verb == "QUIT":
                conn.sendall(b"221 2.0.0 Bye\r\n")
                return
            else:
                conn.sendall((other_reply + "\r\n").encode())
    return handler


class PostfixServer:
    """Postfix's own smtpd on addr:25 with STARTTLS, in a private config_directory (its own queue and
    log); mail for `domain` is put on hold, so each message stays readable with postcat."""

    def __init__(self, domain, addr=None):
        self.addr = addr or loopback_host()
        self.root = tempfile.mkdtemp(prefix="pf-", dir="/tmp")
        os.chmod(self.root, 0o755)
        etc, queue, data = (os.path.join(self.root, d) for d in ("etc", "queue", "data"))
        for d in (etc, queue, data):
            os.makedirs(d)
        shutil.chown(data, "postfix")
        self.cert, self.key = make_cert(etc, "mx.postfix.test")
        self.maillog = os.path.join(self.root, "maillog")
        with open(os.path.join(etc, "main.cf"), "w") as f:
            f.write(f"""compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = mx.postfix.test
mydestination =
relay_domains = {domain}
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = check_recipient_access inline:{{{domain}=HOLD}}, permit_mynetworks, reject_unauth_destination
smtpd_tls_cert_file = {self.cert}
smtpd_tls_key_file = {self.key}
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
maillog_file = {self.maillog}
maillog_file_prefixes = {self.root}
alias_maps =
alias_database =
biff = no
""")
        master = open("/etc/postfix/master.cf").read()
        # The smtp service on this host's own address only (inet_interfaces checks local interfaces).
        master = re.sub(r"^smtp(\s+inet\s)", f"{self.addr}:25\\1", master, count=1, flags=re.M)
        with open(os.path.join(etc, "master.cf"), "w") as f:
            f.write(master)
        self.etc = etc
        subprocess.run(["postfix", "-c", etc, "start"], check=True, capture_output=True, timeout=60)
        wait_port(self.addr)

    def held(self):
        """The messages on hold, each as postcat shows its header and body."""
        hold = os.path.join(self.root, "queue", "hold")
        out = []
        for qid in sorted(os.listdir(hold)) if os.path.isdir(hold) else []:
            p = subprocess.run(["postcat", "-c", self.etc, "-bh", "-q", qid], capture_output=True, timeout=30)
            out.append(p.stdout)
        return out

    def log(self):
        try:
            return open(self.maillog, errors="replace").read()
        except FileNotFoundError:
            return ""

    def stop(self):
        subprocess.run(["postfix", "-c", self.etc, "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


def free_udp_port(ip):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def dns_answers(ip, port, name):
    """True once a DNS server answers an MX query for `name` at ip:port."""
    q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 15, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        try:
            s.sendto(q, (ip, port))
            return s.recv(512)[:2] == b"\x42\x42"
        except OSError:
            return False


def start_dnsmasq(zone):
    """dnsmasq (Debian's dnsmasq-base) serving `zone` on a random 127.0.0.x and a free port, for
    `dns_servers`: (process, ip, port, dir). The caller terminates the process and removes dir."""
    import pytest
    if not shutil.which("dnsmasq"):
        pytest.skip("dnsmasq (Debian package dnsmasq-base) is not installed")
    d = tempfile.mkdtemp(prefix="ferry-dns-")
    for _ in range(5):
        ip = f"127.0.0.{random.randint(100, 250)}"
        port = free_udp_port(ip)
        conf = os.path.join(d, "dnsmasq.conf")
        with open(conf, "w") as f:
            f.write(f"port={port}\nlisten-address={ip}\nbind-interfaces\nno-resolv\nno-hosts\n"
                    f"local=/test/\nuser=root\npid-file=\nlog-facility={d}/dnsmasq.log\n"
                    f"host-record=probe.test,127.0.0.1\n{zone}")
        p = subprocess.Popen(["dnsmasq", "-k", "-C", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: p.poll() is not None or dns_answers(ip, port, "probe.test"), 10, "dnsmasq answers")
        except TimeoutError:
            p.kill()
            p.wait()
            continue
        if p.poll() is None:
            return p, ip, port, d
    pytest.fail("dnsmasq did not start")


@contextlib.contextmanager
def dnsmasq(zone):
    """start_dnsmasq for a `with`: gives (ip, port), and stops the server and removes its directory after."""
    p, ip, port, d = start_dnsmasq(zone)
    try:
        yield ip, port
    finally:
        p.terminate()
        p.wait(5)
        shutil.rmtree(d, ignore_errors=True)

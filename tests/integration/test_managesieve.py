"""ferry-managesieve (RFC 5804) against raw sockets and Debian's sieve-connect: STARTTLS, SASL,
PUTSCRIPT/CHECKSCRIPT through mda/sieve's compiler, the active script, limits and garbage."""
import base64
import os
import re
import shutil
import socket
import ssl
import subprocess

import pytest

USER = "demo@example.test"
PASSWORD = "demo-secret"

FILEINTO = 'require ["fileinto"];\r\nif header :contains "subject" "[list]" {\r\n  fileinto "Lists";\r\n}\r\n'
# Line 3 lacks its ';': the error is found at the '}' on line 4.
BROKEN = 'require "fileinto";\r\nif header :is "x" "y" {\r\n  fileinto "A"\r\n}\r\n'


class Sieve:
    """A ManageSieve client at the byte level: lines, literals in responses, STARTTLS."""

    def __init__(self, port, timeout=10):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.status, self.caps = self.response()
        assert self.status.startswith("OK"), self.status

    def _fill(self):
        chunk = self.s.recv(65536)
        if not chunk:
            raise EOFError(self.buf)
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def logical_line(self):
        """A line with the literals it announces spliced in."""
        out = self.line()
        while (m := re.search(r"\{(\d+)\+?\}$", out)):
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill()
            data, self.buf = self.buf[:n], self.buf[n:]
            out = out[:m.start()] + data.decode("utf-8", "replace") + self.line()
        return out

    def response(self):
        """(the OK/NO/BYE line, the lines before it)."""
        items = []
        while True:
            line = self.logical_line()
            if re.match(r"^(OK|NO|BYE)\b", line):
                return line, items
            items.append(line)

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def cmd(self, line, literal=None):
        if literal is not None:
            data = literal.encode() if isinstance(literal, str) else literal
            self.send(f"{line} {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
        else:
            self.send(line + "\r\n")
        return self.response()

    def starttls(self):
        status, _ = self.cmd("STARTTLS")
        assert status.startswith("OK"), status
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.s = ctx.wrap_socket(self.s)
        # RFC 5804 section 2.2: the capabilities again, then OK.
        self.status, self.caps = self.response()
        assert self.status.startswith("OK"), self.status

    def login(self, user=USER, password=PASSWORD):
        cred = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return self.cmd(f'AUTHENTICATE "PLAIN" "{cred}"')[0]

    def closed(self, timeout=5):
        self.s.settimeout(timeout)
        try:
            while True:
                data = self.s.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (ConnectionResetError, socket.timeout):
            return False


def cap(caps, name):
    """The value of a capability line ("" when it has none), None when absent."""
    for line in caps:
        m = re.match(r'^"([^"]+)"(?: "(.*)")?$', line)
        if m and m.group(1).upper() == name:
            return m.group(2) or ""
    return None


def sieve_dir(f):
    return os.path.join(f.maildir(USER), "sieve")


@pytest.fixture
def ms(host):
    host.tls()
    return host


def start(f, **keys):
    if keys:
        f.set(**keys)
    f.start("managesieve")
    return f.port("sieve")


def test_starttls_login_and_the_whole_script_cycle(ms):
    port = start(ms, plaintext_auth="never")
    c = Sieve(port)
    assert cap(c.caps, "VERSION") == "1.0"
    assert cap(c.caps, "STARTTLS") == ""
    assert cap(c.caps, "IMPLEMENTATION")
    assert cap(c.caps, "SASL") == "", "logins offered before TLS with plaintext_auth = never"
    sieve_caps = cap(c.caps, "SIEVE").split()
    assert {"fileinto", "vacation", "mailbox", "imap4flags"} <= set(sieve_caps)
    assert "enotify" not in sieve_caps and cap(c.caps, "NOTIFY") is None
    assert cap(c.caps, "MAXREDIRECTS").isdigit()
    assert c.login().startswith("NO (ENCRYPT-NEEDED)")

    c.starttls()
    assert "PLAIN" in cap(c.caps, "SASL").split()
    assert cap(c.caps, "STARTTLS") is None
    assert c.login(password="wrong").startswith("NO")
    assert c.login().startswith("OK")

    assert c.cmd('PUTSCRIPT "lists"', FILEINTO)[0] == "OK"
    assert c.cmd('PUTSCRIPT "other"', "keep;\r\n")[0] == "OK"
    with open(os.path.join(sieve_dir(ms), "lists.sieve"), newline="") as fh:
        assert fh.read() == FILEINTO
    status, names = c.cmd("LISTSCRIPTS")
    assert status == "OK" and sorted(names) == ['"lists"', '"other"']

    assert c.cmd('SETACTIVE "lists"')[0] == "OK"
    assert os.readlink(os.path.join(sieve_dir(ms), "active")) == "lists.sieve"
    assert sorted(c.cmd("LISTSCRIPTS")[1]) == ['"lists" ACTIVE', '"other"']
    status, items = c.cmd('GETSCRIPT "lists"')
    assert status == "OK" and items == [FILEINTO]
    assert c.cmd('GETSCRIPT "nope"')[0].startswith("NO (NONEXISTENT)")

    # The active script keeps being active under its new name; a taken name is refused.
    assert c.cmd('RENAMESCRIPT "lists" "other"')[0].startswith("NO (ALREADYEXISTS)")
    assert c.cmd('RENAMESCRIPT "lists" "mailing lists"')[0] == "OK"
    assert sorted(c.cmd("LISTSCRIPTS")[1]) == ['"mailing lists" ACTIVE', '"other"']
    assert os.readlink(os.path.join(sieve_dir(ms), "active")) == "mailing lists.sieve"

    assert c.cmd('DELETESCRIPT "mailing lists"')[0].startswith("NO (ACTIVE)")
    assert c.cmd('DELETESCRIPT "nope"')[0].startswith("NO (NONEXISTENT)")
    assert c.cmd('SETACTIVE "nope"')[0].startswith("NO (NONEXISTENT)")
    assert c.cmd('SETACTIVE ""')[0] == "OK"
    assert not os.path.lexists(os.path.join(sieve_dir(ms), "active"))
    assert c.cmd('DELETESCRIPT "mailing lists"')[0] == "OK"
    assert c.cmd("LISTSCRIPTS")[1] == ['"other"']
    assert c.cmd('NOOP "t1"')[0] == 'OK (TAG "t1") "done"'
    assert c.cmd("UNAUTHENTICATE")[0] == "OK"
    assert c.cmd("LISTSCRIPTS")[0].startswith("NO")
    assert c.cmd("LOGOUT")[0].startswith("OK")
    assert c.closed()


def test_putscript_and_checkscript_compile_first_and_name_the_line(ms):
    port = start(ms)
    c = Sieve(port)
    assert c.login().startswith("OK")  # loopback: plaintext_auth = loopback allows it without TLS
    status, _ = c.cmd("CHECKSCRIPT", BROKEN)
    assert status.startswith("NO") and re.search(r"line 4\b", status), status
    status, _ = c.cmd('PUTSCRIPT "broken"', BROKEN)
    assert status.startswith("NO") and "line 4" in status, status
    assert c.cmd("LISTSCRIPTS")[1] == [], "a script that does not compile was stored"
    assert not os.path.exists(os.path.join(sieve_dir(ms), "broken.sieve"))
    # An extension mda/sieve does not have is a compile error, not a silent keep.
    status, _ = c.cmd("CHECKSCRIPT", 'require "enotify";\r\n')
    assert status.startswith("NO") and "line 1" in status, status
    assert c.cmd("CHECKSCRIPT", FILEINTO)[0] == "OK"
    # A quoted script and the {n} literal form are read as well as {n+}.
    assert c.cmd('CHECKSCRIPT "keep;"')[0] == "OK"
    c.send(b'PUTSCRIPT "sync" {5}\r\nkeep;\r\n')
    assert c.response()[0] == "OK"
    assert c.cmd('GETSCRIPT "sync"')[1] == ["keep;"]


def test_sasl_exchange_with_a_challenge_and_a_cancel(ms):
    port = start(ms)
    c = Sieve(port)
    c.send('AUTHENTICATE "PLAIN"\r\n')
    assert c.line() == '""'  # the empty challenge of PLAIN
    c.send('"*"\r\n')
    assert c.response()[0].startswith("NO")
    c.send('AUTHENTICATE "PLAIN"\r\n')
    assert c.line() == '""'
    cred = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode())
    c.send(b"{%d+}\r\n" % len(cred) + cred + b"\r\n")
    assert c.response()[0].startswith("OK")
    assert c.cmd('AUTHENTICATE "PLAIN" "x"')[0].startswith("NO")  # already logged in
    assert c.cmd("LISTSCRIPTS")[0] == "OK"


def test_limits_hit_exactly(ms):
    port = start(ms, managesieve_max_scripts=2, managesieve_max_script_size=100, managesieve_max_line_length=300)
    c = Sieve(port)
    assert c.login().startswith("OK")
    exact = "keep;\r\n" + "#" * 91 + "\r\n"
    assert len(exact) == 100
    assert c.cmd('HAVESPACE "a" 100')[0] == "OK"
    assert c.cmd('HAVESPACE "a" 101')[0].startswith("NO (QUOTA/MAXSIZE)")
    assert c.cmd('PUTSCRIPT "a"', exact)[0] == "OK"
    # One octet over: refused, the literal skipped unread, and the connection goes on.
    assert c.cmd('PUTSCRIPT "b"', exact + "#")[0].startswith("NO (QUOTA/MAXSIZE)")
    assert c.cmd('CHECKSCRIPT', exact + "#")[0].startswith("NO (QUOTA/MAXSIZE)")
    assert c.cmd("NOOP")[0] == 'OK "done"'
    assert c.cmd('PUTSCRIPT "b"', "keep;")[0] == "OK"
    assert c.cmd('HAVESPACE "c" 1')[0].startswith("NO (QUOTA/MAXSCRIPTS)")
    assert c.cmd('PUTSCRIPT "c"', "keep;")[0].startswith("NO (QUOTA/MAXSCRIPTS)")
    assert c.cmd('PUTSCRIPT "b"', "discard;")[0] == "OK", "replacing a script is not a new one"
    assert c.cmd('HAVESPACE "b" 100')[0] == "OK"
    assert sorted(c.cmd("LISTSCRIPTS")[1]) == ['"a"', '"b"']
    # A line of exactly managesieve_max_line_length octets (CRLF included) is read; one more is not.
    line = 'NOOP "' + "x" * (300 - len('NOOP ""') - 2) + '"'
    assert len(line) + 2 == 300
    assert c.cmd(line)[0].startswith("OK (TAG")
    assert c.cmd('NOOP "' + "x" * (300 - len('NOOP ""') - 1) + '"')[0] == 'NO "line too long"'
    assert c.cmd("NOOP")[0] == 'OK "done"'


def test_garbage_and_over_long_lines_get_no_or_bye_never_a_crash(ms):
    port = start(ms, managesieve_max_line_length=1000, managesieve_max_errors=5)
    c = Sieve(port)
    for bad in ['FOO', 'PUTSCRIPT', 'PUTSCRIPT "a" "b" "c" "d" "e"', 'GETSCRIPT "unterminated',
                'NOOP "bad \\x escape"', 'NOOP  "two spaces"', 'HAVESPACE "a" 99999999999', '{3+}',
                '\x00\x01\x02\xff', 'PUTSCRIPT "a" {12']:
        status, _ = c.cmd(bad)
        assert status.startswith("NO"), (bad, status)
        assert c.cmd("NOOP")[0] == 'OK "done"', bad
    # A flood without a line end: one NO, the rest of the line skipped.
    c.send(b"A" * 5000)
    c.send(b"B" * 5000 + b"\r\n")
    assert c.response()[0] == 'NO "line too long"'
    assert c.cmd("NOOP")[0] == 'OK "done"'
    # A literal far past the limit is refused at once (its octets are then skipped, not stored).
    c.send(b'PUTSCRIPT "big" {4000000000+}\r\n')
    assert c.response()[0].startswith("NO (QUOTA/MAXSIZE)")
    c.s.close()
    # The managesieve_max_errors-th bad command in a row ends the connection with BYE; a good one resets the count.
    c = Sieve(port)
    c.send(b"junk\r\n" * 3 + b"NOOP\r\n" + b"junk\r\n" * 10)
    replies = []
    while True:
        status, _ = c.response()
        replies.append(status)
        if status.startswith("BYE"):
            break
    assert replies == ['NO "unknown command"'] * 3 + ['OK "done"'] + ['NO "unknown command"'] * 4 + \
        ['BYE "too many bad commands"'], replies
    assert c.closed()
    assert ms.procs["managesieve"].poll() is None
    assert Sieve(port).login().startswith("OK")


def sieve_connect(port, *args, password=PASSWORD, stdin=None):
    """Debian's sieve-connect (a Perl ManageSieve client) over STARTTLS, the password on a pipe."""
    r, w = os.pipe()
    os.write(w, (password + "\n").encode())
    os.close(w)
    try:
        return subprocess.run(["sieve-connect", "-s", "127.0.0.1", "-p", str(port), "-u", USER,
                               "--passwordfd", str(r), "--notlsverify", "--noclearchan", *args],
                              pass_fds=(r,), capture_output=True, text=True, timeout=60, input=stdin)
    finally:
        os.close(r)


@pytest.mark.skipif(shutil.which("sieve-connect") is None, reason="sieve-connect is not installed (./dev installs it)")
def test_sieve_connect_uploads_activates_downloads_and_deletes(ms, tmp_path):
    port = start(ms, plaintext_auth="never")
    script = tmp_path / "rules.sieve"
    script.write_text(FILEINTO)
    broken = tmp_path / "broken.sieve"
    broken.write_text(BROKEN)

    p = sieve_connect(port, "--upload", "--localsieve", str(script), "--remotesieve", "rules")
    assert p.returncode == 0, p.stdout + p.stderr
    p = sieve_connect(port, "--activate", "--remotesieve", "rules")
    assert p.returncode == 0, p.stdout + p.stderr
    p = sieve_connect(port, "--list")
    assert p.returncode == 0 and re.search(r'^"rules" ACTIVE$', p.stdout, re.M), p.stdout + p.stderr
    out = tmp_path / "back.sieve"
    p = sieve_connect(port, "--download", "--remotesieve", "rules", "--localsieve", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    assert out.read_bytes() == FILEINTO.encode()
    assert re.search(r"login user=demo@example.test from \S+ \(TLS\)", ms.log("managesieve")), "not over STARTTLS"

    p = sieve_connect(port, "--checkscript", "--localsieve", str(broken))
    assert p.returncode != 0 and "line 4" in p.stdout + p.stderr, p.stdout + p.stderr
    p = sieve_connect(port, "--upload", "--localsieve", str(broken), "--remotesieve", "broken")
    assert p.returncode != 0 and "line 4" in p.stdout + p.stderr, p.stdout + p.stderr

    p = sieve_connect(port, "--delete", "--remotesieve", "rules")
    assert p.returncode != 0, "the active script was deleted"
    p = sieve_connect(port, "--deactivate")
    assert p.returncode == 0, p.stdout + p.stderr
    p = sieve_connect(port, "--delete", "--remotesieve", "rules")
    assert p.returncode == 0, p.stdout + p.stderr
    assert not os.path.exists(os.path.join(sieve_dir(ms), "rules.sieve"))
    p = sieve_connect(port, "--list", password="wrong")
    assert p.returncode != 0


def test_nesting_and_redirect_limits_are_ferry_mdas(ms):
    """Uploads are held to what ferry-mda compiles (sieve_max_nesting), and MAXREDIRECTS announces
    the limit ferry-mda applies (sieve_max_redirects)."""
    port = start(ms, sieve_max_nesting=2, sieve_max_redirects=7)
    c = Sieve(port)
    assert cap(c.caps, "MAXREDIRECTS") == "7"
    assert c.login().startswith("OK")
    two = 'if true {\r\n  if true { keep; }\r\n}\r\n'
    three = 'if true {\r\n  if true {\r\n    if true { keep; }\r\n  }\r\n}\r\n'
    assert c.cmd("CHECKSCRIPT", two)[0] == "OK"
    status, _ = c.cmd('PUTSCRIPT "deep"', three)
    assert status.startswith("NO") and "nested deeper than 2" in status and "line 3" in status, status
    assert not os.path.exists(os.path.join(sieve_dir(ms), "deep.sieve"))

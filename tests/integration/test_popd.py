"""ferry-popd against real POP3 clients: poplib, curl, fetchmail, and raw sockets."""
import os
import poplib
import re
import socket
import ssl
import stat
import subprocess
import time

import pytest

from ferry_harness import LineConn, binary, wait_until

USER = "demo@example.test"
PASSWORD = "demo-secret"


def message(n, body_extra=""):
    return (f"From: sender@example.org\nTo: {USER}\nSubject: test {n}\n"
            f"Message-ID: <m{n}@example.org>\n\nbody of message {n}\n"
            ".a line that starts with a dot\n..two dots\n.\n" + body_extra + "last line\n")


def deliver(f, text, rcpt=USER):
    p = subprocess.run([binary("mda"), "-c", f.conf, "-d", rcpt], input=text.encode(),
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr.decode()


def base_name(path):
    """The Maildir base name: the file name before the first ',' (S=, W=) or ':' (flags)."""
    return re.split(r"[,:]", os.path.basename(path), maxsplit=1)[0]


def stored(f, rcpt=USER):
    """{base name (the UIDL): bytes} of the messages in the Maildir."""
    out = {}
    for path in f.mail(rcpt):
        with open(path, "rb") as fh:
            out[base_name(path)] = fh.read()
    return out


def crlf(data):
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


@pytest.fixture
def pop(ferry):
    ferry.add_domain("example.test")
    ferry.add_account(USER, PASSWORD)
    ferry.tls()
    ferry.set(popd_tls_listen="127.0.0.1:0")
    return ferry


def start(f, **keys):
    if keys:
        f.set(**keys)
    f.start("popd")
    return f.port("pop3")


def login(port):
    c = poplib.POP3("127.0.0.1", port, timeout=10)
    c.user(USER)
    c.pass_(PASSWORD)
    return c


class Raw(LineConn):
    """A POP3 connection at the byte level."""

    def __init__(self, port, greet=True):
        super().__init__(port)
        if greet:
            assert self.line().startswith(b"+OK")

    def line(self):
        return self.raw_line()

    def multi(self):
        lines = []
        while True:
            line = self.line()
            if line == b".":
                return lines
            lines.append(line[1:] if line.startswith(b".") else line)

    def cmd(self, text):
        self.send(text.encode() + b"\r\n")
        return self.line()

    def login(self):
        assert self.cmd(f"USER {USER}").startswith(b"+OK")
        return self.cmd(f"PASS {PASSWORD}")


def test_poplib_whole_session_byte_exact(pop):
    for n in range(1, 4):
        deliver(pop, message(n, ("x" * 70 + "\n") * 50 * n))
    files = stored(pop)
    assert len(files) == 3
    port = start(pop)
    c = login(port)
    count, octets = c.stat()
    assert count == 3
    assert octets == sum(len(crlf(d)) for d in files.values())
    # UIDL ids are the Maildir base names.
    resp, uidl, _ = c.uidl()
    ids = {int(line.split()[0]): line.split()[1].decode() for line in uidl}
    assert set(ids.values()) == set(files)
    resp, listing, _ = c.list()
    sizes = {int(line.split()[0]): int(line.split()[1]) for line in listing}
    for n, uid in ids.items():
        assert sizes[n] == len(crlf(files[uid]))
        # RETR gives the stored message byte for byte (poplib undoes the dot-stuffing).
        resp, lines, nbytes = c.retr(n)
        assert b"\r\n".join(lines) + b"\r\n" == crlf(files[uid])
        assert resp.startswith(b"+OK")
    # TOP: header, blank line, n body lines; n past the end gives the whole message.
    resp, lines, _ = c.top(1, 2)
    head, body = files[ids[1]].split(b"\n\n", 1)
    assert lines == head.split(b"\n") + [b""] + body.split(b"\n")[:2]
    resp, lines, _ = c.top(1, 100000)
    assert b"\r\n".join(lines) + b"\r\n" == crlf(files[ids[1]])
    assert c.uidl(2).split()[2].decode() == ids[2]
    c.dele(1)
    with pytest.raises(poplib.error_proto, match="already deleted"):
        c.retr(1)
    assert c.stat()[0] == 2
    c.rset()
    assert c.stat()[0] == 3
    c.dele(2)
    with pytest.raises(poplib.error_proto, match="no such message"):
        c.retr(4)
    assert c.quit().startswith(b"+OK")
    left = stored(pop)
    assert set(left) == {ids[1], ids[3]}
    # The next session sees the same UIDLs for what is left.
    c = login(port)
    resp, uidl, _ = c.uidl()
    assert [line.split()[1].decode() for line in uidl] == [ids[1], ids[3]]
    c.quit()


def is_valid_uidl(uid):
    """RFC 1939 section 7: 1 to 70 characters in the range 0x21 to 0x7E."""
    return 1 <= len(uid) <= 70 and all(0x21 <= b <= 0x7E for b in uid)


def test_uidl_is_short_printable_and_stable_with_a_long_hostname(pop):
    host = "mail-gateway-01.eu-central.example-company.co.uk.relay.test"
    host += "x" * (60 - len(host))
    assert len(host) == 60
    pop.set(hostname=host)
    for n in range(1, 4):
        deliver(pop, message(n))
    md = pop.maildir(USER)
    # Another MDA's name whose base alone is over 70 characters, with bytes outside 0x21..0x7E.
    foreign = "1700000000.M999999P4194304Q1." + "h" * 50 + "\x01 y,S=2"
    with open(os.path.join(md, "new", foreign), "wb") as fh:
        fh.write(b"x\n\n")
    os.utime(os.path.join(md, "new", foreign), (2000000000, 2000000000))  # listed last
    port = start(pop)
    c = login(port)
    ids = [line.split()[1] for line in c.uidl()[1]]
    c.quit()
    assert len(ids) == 4 and len(set(ids)) == 4
    for uid in ids:
        assert is_valid_uidl(uid), uid
    files = stored(pop)
    del files[base_name(foreign)]
    assert set(uid.decode() for uid in ids[:3]) == set(files)
    assert all(host[:10] in uid.decode() for uid in ids[:3])
    # Another reader moving the messages to cur/ with flags changes no UIDL, nor does a new session.
    for path in pop.mail(USER):
        if os.path.dirname(path).endswith("new"):
            os.rename(path, os.path.join(md, "cur", os.path.basename(path) + ":2,S"))
    c = login(port)
    assert [line.split()[1] for line in c.uidl()[1]] == ids
    assert c.uidl(4).split()[2] == ids[3]
    c.quit()


def retr_octets(r, n):
    """RETR n over a Raw connection: (the size its +OK line announces, the message octets sent before the
    terminating dot line, with the byte-stuffing undone)."""
    r.send(f"RETR {n}\r\n".encode())
    first = r.line()
    assert first.startswith(b"+OK "), first
    announced = int(first.split()[1])
    while b"\r\n.\r\n" not in b"\r\n" + r.buf:
        chunk = r.s.recv(65536)
        assert chunk, r.buf
        r.buf += chunk
    end = (b"\r\n" + r.buf).index(b"\r\n.\r\n")
    body, r.buf = r.buf[:end], r.buf[end + 3:]
    body = re.sub(rb"(^|\r\n)\.", rb"\1", body)
    return announced, len(body), body


def test_list_size_is_what_retr_sends_when_the_last_line_has_no_newline(pop):
    md = pop.maildir(USER)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    # Placed by another MDA: no S= or W= in the names, no LF at the end.
    plain = {"1700000000.M1P1.other": b"Subject: a\n\nlast line without newline",
             "1700000001.M1P1.other": b"Subject: b\n\nends in a bare CR\r",
             "1700000002.M1P1.other": b"Subject: c\n\n.dot line\nfinal"}
    for i, (name, data) in enumerate(plain.items()):
        with open(os.path.join(md, "new", name), "wb") as fh:
            fh.write(data)
        os.utime(os.path.join(md, "new", name), (1700000000 + i, 1700000000 + i))
    # Delivered by ferry-mda without a final newline: it stores one, and S=/W= count it.
    deliver(pop, "Subject: d\n\nno newline from the MTA either")
    mine = [p for p in pop.mail(USER) if ".other" not in p]
    assert len(mine) == 1 and open(mine[0], "rb").read().endswith(b"either\n")
    port = start(pop)
    r = Raw(port)
    assert r.login().startswith(b"+OK")
    assert r.cmd("STAT").startswith(b"+OK 4 ")
    total = int(r.cmd("STAT").split()[2])
    sent = 0
    for n in range(1, 5):
        listed = int(r.cmd(f"LIST {n}").split()[2])
        announced, octets, body = retr_octets(r, n)
        assert listed == announced == octets, (n, listed, announced, octets, body)
        sent += octets
    assert total == sent
    r.cmd("QUIT")


def test_capa_and_response_codes(pop):
    port = start(pop, popd_expire="0", popd_login_delay="1s")
    r = Raw(port)
    r.send(b"CAPA\r\n")
    assert r.line().startswith(b"+OK")
    caps = r.multi()
    for cap in (b"TOP", b"UIDL", b"USER", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING",
                b"SASL PLAIN LOGIN SCRAM-SHA-256", b"STLS", b"EXPIRE 0", b"LOGIN-DELAY 1"):
        assert cap in caps, caps
    assert any(c.startswith(b"IMPLEMENTATION") for c in caps)
    assert r.cmd("USER " + USER).startswith(b"+OK")
    assert r.cmd("PASS wrong").startswith(b"-ERR [AUTH]")
    assert r.login().startswith(b"+OK")
    r.send(b"CAPA\r\n")
    r.line()
    caps = r.multi()
    assert b"USER" not in caps and b"STLS" not in caps
    assert r.cmd("QUIT").startswith(b"+OK")
    # LOGIN-DELAY: a second login within a second is refused with the code.
    r = Raw(port)
    assert r.login().startswith(b"-ERR [LOGIN-DELAY]")
    time.sleep(1.2)
    assert r.login().startswith(b"+OK")
    r.cmd("QUIT")


def test_commands_out_of_their_state_are_refused_byte_exact(pop):
    deliver(pop, message(1))
    r = Raw(start(pop))
    for verb in ("STAT", "LIST", "UIDL 1", "RETR 1", "TOP 1 0", "DELE 1", "NOOP", "RSET"):
        assert r.cmd(verb) == b"-ERR command not valid before login", verb
    assert r.login().startswith(b"+OK")
    for verb in ("USER " + USER, "PASS x", "AUTH PLAIN", "STLS"):
        assert r.cmd(verb) == b"-ERR command not valid after login", verb
    # CAPA and QUIT are valid in both states; the refusals changed nothing.
    r.send(b"CAPA\r\n")
    assert r.line().startswith(b"+OK")
    r.multi()
    assert r.cmd("STAT").startswith(b"+OK 1 ")
    assert r.cmd("QUIT").startswith(b"+OK")


def test_expire_0_removes_retrieved_messages(pop):
    deliver(pop, message(1))
    deliver(pop, message(2))
    files = stored(pop)
    port = start(pop, popd_expire="0")
    c = login(port)
    retrieved = c.uidl(1).split()[2].decode()
    c.retr(1)
    c.quit()
    # The retrieved message is the one removed; the other is kept as it was.
    assert set(stored(pop)) == set(files) - {retrieved}
    assert len(stored(pop)) == 1


def test_sasl_plain_and_login(pop):
    import base64
    deliver(pop, message(1))
    port = start(pop)
    r = Raw(port)
    ir = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    assert r.cmd("AUTH PLAIN " + ir).startswith(b"+OK")
    assert r.cmd("STAT").startswith(b"+OK 1 ")
    r.cmd("QUIT")
    r = Raw(port)
    assert r.cmd("AUTH LOGIN") == b"+ " + base64.b64encode(b"Username:")
    assert r.cmd(base64.b64encode(USER.encode()).decode()) == b"+ " + base64.b64encode(b"Password:")
    assert r.cmd(base64.b64encode(PASSWORD.encode()).decode()).startswith(b"+OK")
    r.cmd("QUIT")
    r = Raw(port)
    assert r.cmd("AUTH PLAIN") == b"+ "
    assert r.cmd("*").startswith(b"-ERR")
    assert r.cmd("AUTH CRAM-MD5").startswith(b"-ERR")
    bad = base64.b64encode(f"\0{USER}\0nope".encode()).decode()
    assert r.cmd("AUTH PLAIN " + bad).startswith(b"-ERR [AUTH]")
    r.cmd("QUIT")


def test_curl_pop3_and_pop3s(pop):
    deliver(pop, message(1))
    deliver(pop, message(2))
    port = start(pop)
    tls_port = pop.port("pop3s")
    files = stored(pop)
    cert = pop.keys["tls_cert_file"]
    auth = ["-u", f"{USER}:{PASSWORD}", "-s", "-S", "--max-time", "20"]

    def curl(url, *extra):
        p = subprocess.run(["curl", *auth, *extra, url], capture_output=True, timeout=30)
        assert p.returncode == 0, p.stderr.decode()
        return p.stdout

    listing = curl(f"pop3://127.0.0.1:{port}/")
    lines = listing.decode().split("\r\n")
    assert lines[0].startswith("1 ") and lines[1].startswith("2 ")
    c = login(port)
    uid1 = c.uidl(1).split()[2].decode()
    c.quit()
    assert curl(f"pop3://127.0.0.1:{port}/1") == crlf(files[uid1])
    assert curl(f"pop3s://127.0.0.1:{tls_port}/1", "--cacert", cert) == crlf(files[uid1])
    # STLS with certificate verification, then DELE (no body: -I).
    curl(f"pop3://127.0.0.1:{port}/1", "--ssl-reqd", "--cacert", cert, "-X", "DELE", "-I")
    assert uid1 not in stored(pop)
    assert len(stored(pop)) == 1
    listing = curl(f"pop3s://127.0.0.1:{tls_port}/", "--cacert", cert)
    assert listing.decode().count("\r\n") == 1


def write_fetchmailrc(f, port, keep):
    # fetchmail sees STLS in CAPA and upgrades on its own; it verifies our self-signed certificate.
    home = os.path.join(f.root, "fmhome")
    os.makedirs(home, exist_ok=True)
    out = os.path.join(home, "out")
    rc = os.path.join(home, ".fetchmailrc")
    with open(rc, "w") as fh:
        fh.write(f'poll 127.0.0.1 protocol pop3 port {port} uidl\n'
                 f'  user "{USER}" password "{PASSWORD}" is "{os.environ.get("USER", "root")}" here\n'
                 f'  {"keep" if keep else "nokeep"} fetchall\n'
                 f'  sslcertck sslcertfile "{f.keys["tls_cert_file"]}" sslcommonname "mx.test"\n'
                 f'  mda "cat >> {out}; echo ===END=== >> {out}"\n')
    os.chmod(rc, stat.S_IRUSR | stat.S_IWUSR)
    return home, rc, out


def run_fetchmail(home, rc):
    env = dict(os.environ, HOME=home)
    p = subprocess.run(["fetchmail", "-f", rc, "--nodetach", "--nosyslog", "-v", "--pidfile",
                        os.path.join(home, "pid"), "--idfile", os.path.join(home, "ids")],
                       env=env, capture_output=True, text=True, timeout=60)
    # 0: mail fetched, 1: no mail.
    assert p.returncode in (0, 1), p.stdout + p.stderr
    return p


@pytest.mark.parametrize("keep", [True, False])
def test_fetchmail(pop, keep):
    for n in range(1, 4):
        deliver(pop, message(n))
    port = start(pop)
    home, rc, out = write_fetchmailrc(pop, port, keep)
    run_fetchmail(home, rc)
    with open(out, "rb") as fh:
        fetched = fh.read().split(b"===END===\n")[:-1]
    assert len(fetched) == 3
    for n in range(1, 4):
        assert any(f"Subject: test {n}".encode() in m and b"\n..two dots\n" in m for m in fetched)
    assert len(stored(pop)) == (3 if keep else 0)


def test_pipelining_garbage_long_line_and_in_use(pop):
    for n in range(1, 3):
        deliver(pop, message(n))
    port = start(pop)
    r = Raw(port)
    # Everything in one write: the replies come back in order.
    r.send(f"USER {USER}\r\nPASS {PASSWORD}\r\nSTAT\r\nLIST\r\nUIDL 1\r\nRETR 2\r\nNOOP\r\n".encode())
    assert r.line().startswith(b"+OK")
    assert r.line().startswith(b"+OK maildrop has 2")
    assert r.line().startswith(b"+OK 2 ")
    assert r.line().startswith(b"+OK")
    assert len(r.multi()) == 2
    assert r.line().startswith(b"+OK 1 ")
    assert r.line().startswith(b"+OK")
    assert b"Subject: test 2" in b"\n".join(r.multi())
    assert r.line() == b"+OK"
    # Garbage, binary, and a 10,000-character line: -ERR each, and the session goes on.
    for junk in (b"HELLO WORLD", b"\x00\x01\x02\xff", b"RETR", b"RETR 99", b"TOP 1", b"LIST x", b"USER x"):
        r.send(junk + b"\r\n")
        assert r.line().startswith(b"-ERR"), junk
    r.send(b"X" * 10000 + b"\r\n")
    assert r.line() == b"-ERR line too long"
    assert r.cmd("STAT").startswith(b"+OK 2 ")
    # A second login to the same mailbox while this one holds it.
    r2 = Raw(port)
    assert r2.login().startswith(b"-ERR [IN-USE]")
    r2.cmd("QUIT")
    assert r.cmd("QUIT").startswith(b"+OK")
    r3 = Raw(port)
    assert r3.login().startswith(b"+OK")
    r3.cmd("QUIT")


def test_dropped_connection_and_killed_server_delete_nothing(pop):
    for n in range(1, 3):
        deliver(pop, message(n))
    port = start(pop)
    r = Raw(port)
    assert r.login().startswith(b"+OK")
    assert r.cmd("DELE 1").startswith(b"+OK")
    assert r.cmd("DELE 2").startswith(b"+OK")
    r.close()  # no QUIT
    pop.wait_log("popd", r"no messages deleted")
    assert len(stored(pop)) == 2
    # The server is killed in the middle of a session: nothing deleted, and no stale lock after restart.
    r = Raw(port)
    assert r.login().startswith(b"+OK")
    assert r.cmd("DELE 1").startswith(b"+OK")
    pop.kill("popd")
    r.close()
    assert len(stored(pop)) == 2
    pop.start("popd")
    port = pop.port("pop3")
    c = login(port)
    assert c.stat()[0] == 2
    c.quit()


def test_delivery_during_session_shows_in_the_next(pop):
    deliver(pop, message(1))
    port = start(pop)
    c = login(port)
    assert c.stat()[0] == 1
    deliver(pop, message(2))
    assert c.stat()[0] == 1
    assert len(c.uidl()[1]) == 1
    c.dele(1)
    c.quit()
    c = login(port)
    assert c.stat()[0] == 1
    assert b"Subject: test 2" in b"\n".join(c.retr(1)[1])
    c.quit()


def test_plaintext_never_needs_stls(pop):
    deliver(pop, message(1))
    port = start(pop, plaintext_auth="never")
    r = Raw(port)
    r.send(b"CAPA\r\n")
    r.line()
    caps = r.multi()
    assert b"USER" not in caps and b"STLS" in caps and not any(c.startswith(b"SASL") for c in caps)
    reply = r.cmd("USER " + USER)
    assert reply.startswith(b"-ERR") and b"STLS" in reply
    assert r.cmd("AUTH PLAIN AHVAZABw").startswith(b"-ERR")
    r.cmd("QUIT")
    c = poplib.POP3("127.0.0.1", port, timeout=10)
    ctx = ssl.create_default_context(cafile=pop.keys["tls_cert_file"])
    c.stls(context=ctx)
    assert "USER" in c.capa()
    c.user(USER)
    c.pass_(PASSWORD)
    assert c.stat()[0] == 1
    c.quit()
    # Implicit TLS (pop3s) also allows the login.
    c = poplib.POP3_SSL("127.0.0.1", pop.port("pop3s"), context=ctx, timeout=10)
    c.user(USER)
    c.pass_(PASSWORD)
    assert c.stat()[0] == 1
    c.quit()


def test_limits_idle_sessions_per_ip_and_failed_logins(pop):
    port = start(pop, popd_idle_timeout="1s", popd_max_sessions_per_ip="2", auth_max_failures="2",
                 auth_failure_delay="1s")
    r = Raw(port)
    t = time.time()
    assert r.closed(timeout=5)
    assert b"autologout" in r.buf
    assert time.time() - t < 4
    a, b = Raw(port), Raw(port)
    c = Raw(port, greet=False)
    assert c.line().startswith(b"-ERR [SYS/TEMP]")
    disconnects = len(re.findall(r": disconnect from ", pop.log("popd")))
    a.close(), b.close(), c.close()
    wait_until(lambda: len(re.findall(r": disconnect from ", pop.log("popd"))) >= disconnects + 2,
               what="the server sees both closes")
    r = Raw(port)
    t = time.time()
    r.cmd("USER " + USER)
    assert r.cmd("PASS wrong").startswith(b"-ERR [AUTH]")
    assert time.time() - t >= 0.9  # the failure delay, from a timer
    r.cmd("USER " + USER)
    assert r.cmd("PASS wrong").startswith(b"-ERR [AUTH]")
    r.cmd("USER " + USER)
    assert r.cmd(f"PASS {PASSWORD}").startswith(b"-ERR [AUTH]")  # refused: too many failures
    assert r.closed()


def test_failure_delay_does_not_block_other_sessions(pop):
    port = start(pop, auth_failure_delay="3s")
    slow = Raw(port)
    slow.cmd("USER " + USER)
    slow.send(b"PASS wrong\r\n")
    t = time.time()
    c = login(port)
    c.stat()
    c.quit()
    assert time.time() - t < 2.5
    assert slow.line().startswith(b"-ERR [AUTH]")


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as fh:
        return int(re.search(r"VmHWM:\s+(\d+)", fh.read()).group(1))


def test_client_that_does_not_read_pauses_output_and_resumes(pop):
    # 200 pipelined RETRs of a 200 KB message are 40 MB of replies; popd must stop taking
    # commands while the client reads nothing, keep its memory bounded, and resume as it reads.
    body = "".join(f"line {i:06d} of a long message\n" for i in range(7000))
    deliver(pop, message(1, body))
    port = start(pop)
    hwm_before = vm_hwm_kib(pop.pid("popd"))
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    f = s.makefile("rb")
    assert f.readline().startswith(b"+OK")
    s.sendall(f"USER {USER}\r\nPASS {PASSWORD}\r\n".encode() + b"RETR 1\r\n" * 200 + b"QUIT\r\n")
    time.sleep(1.5)  # read nothing: the server's output backs up
    grown_kib = vm_hwm_kib(pop.pid("popd")) - hwm_before
    assert grown_kib < 16 * 1024, f"popd grew by {grown_kib} KiB while the client read nothing"
    assert f.readline().startswith(b"+OK") and f.readline().startswith(b"+OK")
    retrieved = 0
    while True:
        line = f.readline()
        assert line, "connection closed before QUIT was answered"
        if line.startswith(b"+OK") and b"octets" in line:
            retrieved += 1
        elif line.startswith(b"+OK") and retrieved == 200:
            break  # the reply to QUIT
    assert retrieved == 200
    s.close()


def index_records(f, rcpt=USER):
    """The records of the folder's mailbox index (ferry-mailstore(5)), each checked against its frame."""
    import zlib
    out = []
    with open(os.path.join(f.maildir(rcpt), "ferry-index"), "rb") as fh:
        for line in fh.read().split(b"\n")[:-1]:
            length, crc, payload = int(line[:8], 16), int(line[9:17], 16), line[18:]
            assert len(payload) == length and zlib.crc32(payload) == crc, line
            out.append(payload.decode().split(" "))
    return out


def test_delivery_gives_uids_and_dele_is_recorded_in_the_index(pop):
    # ferry-mda (LDA mode here) numbers each message as it delivers it; popd's UPDATE records the
    # expunge; the UIDLs stay the Maildir base names.
    port = start(pop)
    for n in range(3):
        deliver(pop, message(n))
    by_uid = {int(r[3]): r[5] for r in index_records(pop) if r[0] == "A"}
    assert sorted(by_uid) == [1, 2, 3]
    assert sorted(by_uid.values()) == sorted(base_name(p) for p in pop.mail(USER))
    for folder in (".Drafts", ".Sent", ".Trash", ".Junk", ".Archive"):
        assert os.path.isdir(os.path.join(pop.maildir(USER), folder, "cur")), folder
    c = login(port)
    uidls = {int(n): u for n, u in (l.decode().split() for l in c.uidl()[1])}
    assert sorted(uidls.values()) == sorted(by_uid.values())
    gone = uidls[2]
    c.dele(2)
    c.quit()
    expunged = [int(r[3]) for r in index_records(pop) if r[0] == "X"]
    assert [by_uid[u] for u in expunged] == [gone]

"""Many logins at once from one address, against ferry-imapd and ferry-popd: correct ones wait their
turn and all succeed, parallel guesses still stop at auth_max_failures, and a flood beyond
auth_max_queued gets a temporary error, not "too many failed logins"."""
import re

from ferry_harness import LineConn

USER = "demo@example.test"
PASSWORD = "demo-secret"
N = 50
TIMEOUT = 60  # seconds a client waits for each answer: checks queue behind a slow crypt on a loaded machine


def imap_logins(host, passwords, **keys):
    """Opens one IMAP connection per password, sends every LOGIN before reading any answer, and
    returns the tagged answers in order."""
    host.set(imapd_max_sessions_per_ip="0", **keys)
    host.start("imapd")
    port = host.port("imap")
    conns = [LineConn(port, timeout=TIMEOUT) for _ in passwords]
    for c in conns:
        assert c.raw_line().startswith(b"* OK")
    for i, (c, pw) in enumerate(zip(conns, passwords)):
        c.send(f"a{i} LOGIN {USER} {pw}\r\n")
    answers = []
    for i, c in enumerate(conns):
        line = c.raw_line()
        while not line.startswith(f"a{i} ".encode()):
            line = c.raw_line()
        answers.append(line.decode())
    for c in conns:
        c.close()
    return answers


def pop_logins(host, passwords, **keys):
    """As imap_logins, over POP3 USER/PASS: returns each PASS answer."""
    host.set(popd_max_sessions_per_ip="0", **keys)
    host.start("popd")
    port = host.port("pop3")
    conns = [LineConn(port, timeout=TIMEOUT) for _ in passwords]
    for c in conns:
        assert c.raw_line().startswith(b"+OK")
        c.send(f"USER {USER}\r\n")
        assert c.raw_line().startswith(b"+OK")
    for c, pw in zip(conns, passwords):
        c.send(f"PASS {pw}\r\n")
    answers = [c.raw_line().decode() for c in conns]
    for c in conns:
        c.close()
    return answers


def test_imapd_parallel_correct_logins_from_one_address_all_succeed(host):
    # Default auth_max_failures (10): 50 clients behind one address, as imaptest runs them.
    answers = imap_logins(host, [PASSWORD] * N)
    bad = [a for a in answers if not re.match(r"a\d+ OK ", a)]
    assert not bad, bad
    assert "too many failed logins" not in host.log("imapd")


def pop_verified(answer):
    """The password was accepted: logged in, or told the maildrop is held by the session that was first
    (POP3 allows one session per maildrop; the lock is taken only after the password check)."""
    return answer.startswith("+OK") or answer.startswith("-ERR [IN-USE]")


def test_popd_parallel_correct_logins_from_one_address_all_succeed(host):
    answers = pop_logins(host, [PASSWORD] * N)
    bad = [a for a in answers if not pop_verified(a)]
    assert not bad, bad
    assert any(a.startswith("+OK") for a in answers), answers
    assert "too many failed logins" not in host.log("popd")


def assert_guesses_stopped(answers, failed, refused, ok):
    """Exactly auth_max_failures (5) guesses were checked and failed; every other login was refused,
    but the right password when its turn came before the fifth failure. Its connection, the last
    one, may be served early on a loaded machine; a success does not count against the allowance,
    so a sixth check then runs, and fails."""
    assert len(failed) == 5, answers
    assert len(ok) <= 1, answers
    assert len(refused) == N - 5 - len(ok), answers


def test_imapd_parallel_guesses_stop_at_auth_max_failures(host):
    answers = imap_logins(host, [f"guess{i}" for i in range(N - 1)] + [PASSWORD],
                          auth_max_failures="5", auth_failure_delay="0")
    failed = [a for a in answers if a.endswith("NO [AUTHENTICATIONFAILED] authentication failed")]
    refused = [a for a in answers if "too many failed logins" in a]
    ok = [a for a in answers if re.match(r"a\d+ OK ", a)]
    assert_guesses_stopped(answers, failed, refused, ok)


def test_popd_parallel_guesses_stop_at_auth_max_failures(host):
    answers = pop_logins(host, [f"guess{i}" for i in range(N - 1)] + [PASSWORD],
                         auth_max_failures="5", auth_failure_delay="0")
    failed = [a for a in answers if a == "-ERR [AUTH] authentication failed"]
    refused = [a for a in answers if "too many failed logins" in a]
    ok = [a for a in answers if pop_verified(a)]
    assert_guesses_stopped(answers, failed, refused, ok)


def test_imapd_more_waiting_logins_than_auth_max_queued_get_a_temporary_error(host):
    # One worker: the first login's crypt is still running while all 20 arrive. Two may run
    # (auth_max_failures), three wait, the rest are told to come back, and none is a "failure".
    answers = imap_logins(host, [PASSWORD] * 20, auth_max_failures="2", auth_max_queued="3", auth_workers="1")
    ok = [a for a in answers if re.match(r"a\d+ OK ", a)]
    busy = [a for a in answers if a.endswith("NO [UNAVAILABLE] authentication temporarily unavailable")]
    assert len(ok) + len(busy) == 20, answers
    assert len(busy) >= 10 and len(ok) >= 5, answers
    assert "too many failed logins" not in host.log("imapd")
    assert "too many password checks waiting from 127.0.0.1" in host.log("imapd")


def test_popd_more_waiting_logins_than_auth_max_queued_get_a_temporary_error(host):
    answers = pop_logins(host, [PASSWORD] * 20, auth_max_failures="2", auth_max_queued="3", auth_workers="1")
    ok = [a for a in answers if pop_verified(a)]
    busy = [a for a in answers if a.startswith("-ERR [SYS/TEMP]")]
    assert len(ok) + len(busy) == 20, answers
    assert len(busy) >= 10 and len(ok) >= 5, answers
    assert "too many failed logins" not in host.log("popd")

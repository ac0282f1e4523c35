"""Privilege dropping (common/program/privs.cpp): started as root with mail_user, a server runs as that user."""
import os
import pwd
import subprocess

import pytest

from ferry_harness import proc_ids
from test_tls import EchoServer, recv_exactly, tls_connect

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")


def test_drops_to_mail_user_after_binding():
    nobody = pwd.getpwnam("nobody")
    s = EchoServer()
    os.chmod(s.key, 0o600)  # root-only key: loaded before the switch
    s.start("-o", "mail_user=nobody")
    try:
        ids = proc_ids(s.proc.pid)
        assert ids["Uid"] == [str(nobody.pw_uid)] * 4  # real, effective, saved, filesystem
        assert ids["Gid"] == [str(nobody.pw_gid)] * 4
        assert "0" not in ids["Groups"]
        assert f"running as nobody (uid {nobody.pw_uid}" in s.log()
        # Still serving TLS with the root-only key it read before the switch.
        with tls_connect(s.port) as c:
            c.sendall(b"as nobody\n")
            assert recv_exactly(c, 10) == b"as nobody\n"
    finally:
        s.stop()


def test_empty_mail_user_stays_root():
    s = EchoServer().start()
    try:
        assert proc_ids(s.proc.pid)["Uid"] == ["0"] * 4
    finally:
        s.stop()


@pytest.mark.parametrize("user,message", [
    ("no-such-user-ferry", 'mail_user "no-such-user-ferry" does not exist'),
    ("root", 'mail_user "root" is root'),
])
def test_bad_mail_user_is_a_startup_error(user, message):
    s = EchoServer()
    try:
        p = subprocess.run(s.cmd("-o", "mail_user=" + user), capture_output=True, timeout=10)
        assert p.returncode == 75
        err = p.stderr.decode()
        assert message in err, err
        assert "ready" not in err
    finally:
        s.stop()

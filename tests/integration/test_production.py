"""Production mode: every daemon started as root with mail_user set creates what it needs, drops to
mail_user, and the suite still takes mail in over SMTP, delivers it and serves it over POP3."""
import os
import poplib
import pwd
import smtplib
import stat
import subprocess
import time
import uuid

import pytest

from ferry_harness import Ferry, binary, proc_ids

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a user and switch to it")

USER = "ferrytest"
ADDRESS = "alice@prod.test"
PASSWORD = "alice-secret"
DAEMONS = ("mda", "qmgr", "smtpd", "popd")
SPOOL_SUBDIRS = ("incoming", "queue", "spare", "state", "corrupt")  # ferry-spool(5), DIRECTORY LAYOUT


def mail_user():
    """The unprivileged user the test runs the daemons as, created once and left for the next run."""
    # Tests running beside each other may both find it missing: the loser's useradd fails (user exists,
    # or /etc/passwd locked), so each tries until the user is there, not until its own useradd succeeds.
    for _ in range(50):
        if subprocess.run(["id", USER], capture_output=True).returncode == 0:
            return pwd.getpwnam(USER)
        r = subprocess.run(["useradd", "-r", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", USER],
                           capture_output=True, text=True)
        if r.returncode != 0:
            time.sleep(0.1)
    raise AssertionError(f"cannot create user {USER}: {r.stderr}")


def prod_host(user):
    """A Ferry whose spool, mail, run and database directories do not exist yet, under a root that
    mail_user can traverse (mkdtemp makes it 0700)."""
    f = Ferry()
    os.chmod(f.root, 0o755)
    os.rmdir(f.keys["run_dir"])  # the harness makes it for the tests that run as one user
    f.set(mail_user=user.pw_name,
          spool_dir=os.path.join(f.root, "var", "spool"),  # its parent is missing too
          mail_dir=os.path.join(f.root, "mail"),
          account_db=os.path.join(f.root, "db", "accounts.db"),
          postmaster_address=ADDRESS)
    for key in ("spool_dir", "mail_dir", "run_dir"):
        assert not os.path.exists(f.keys[key])
    assert not os.path.exists(os.path.dirname(f.keys["account_db"]))
    return f


@pytest.fixture
def prod(request):
    user = mail_user()
    f = prod_host(user)
    yield f, user
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print(f.all_logs()[-6000:])
    f.cleanup()


def add_accounts(f):
    f.add_domain("prod.test")
    f.add_account(ADDRESS, PASSWORD)


def owner_and_mode(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def send_and_fetch(f):
    """SMTP in, delivered into the Maildir, read back over POP3; returns the Maildir file."""
    token = uuid.uuid4().hex
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=20) as s:
        s.sendmail("someone@outside.test", [ADDRESS], f"Subject: prod {token}\r\n\r\n{token}\r\n")
    files = f.wait_mail(ADDRESS)
    c = poplib.POP3("127.0.0.1", f.port("pop3"), timeout=20)
    try:
        c.user(ADDRESS)
        c.pass_(PASSWORD)
        count, _ = c.stat()
        assert count == 1
        body = b"\n".join(c.retr(1)[1])
    finally:
        c.quit()
    assert token.encode() in body
    return files[0]


def check_runs_as(f, user):
    for name in DAEMONS:
        ids = proc_ids(f.pid(name))
        assert ids["Uid"] == [str(user.pw_uid)] * 4, f"ferry-{name}: Uid {ids['Uid']}"  # real, effective, saved, fs
        assert ids["Gid"] == [str(user.pw_gid)] * 4, f"ferry-{name}: Gid {ids['Gid']}"
        assert "0" not in ids["Groups"], f"ferry-{name} kept root's group"
        assert f"running as {user.pw_name} (uid {user.pw_uid}" in f.log(name)
        assert "cannot connect to it" not in f.log(name)  # the peer-socket check at start


def check_layout(f, user, message):
    """Owners and modes as ferry-spool(5), ferry-mda(8) and ferry-admin(8) promise them."""
    uid, gid = user.pw_uid, user.pw_gid
    spool = f.keys["spool_dir"]
    assert owner_and_mode(spool) == (uid, gid, 0o750)
    for sub in SPOOL_SUBDIRS:
        assert owner_and_mode(os.path.join(spool, sub)) == (uid, gid, 0o750), sub
    run = f.keys["run_dir"]
    assert owner_and_mode(run) == (0, gid, 0o755)
    for sock in ("lmtp.sock", "qmgr.sock"):
        path = os.path.join(run, sock)
        assert stat.S_ISSOCK(os.lstat(path).st_mode), sock
        assert owner_and_mode(path) == (uid, gid, 0o660), sock
    assert owner_and_mode(f.keys["mail_dir"]) == (uid, gid, 0o700)
    maildir = f.maildir(ADDRESS)
    for d in (os.path.dirname(maildir), maildir, *(os.path.join(maildir, s) for s in ("new", "cur", "tmp"))):
        assert owner_and_mode(d) == (uid, gid, 0o700), d
    assert owner_and_mode(message)[:2] == (uid, gid)
    db = f.keys["account_db"]
    assert owner_and_mode(os.path.dirname(db)) == (0, gid, 0o750)
    assert owner_and_mode(db) == (0, gid, 0o640)


def test_daemons_started_as_root_create_what_they_need_and_run_as_mail_user(prod):
    f, user = prod
    add_accounts(f)  # as an administrator would: ferry-admin as root, before the daemons
    f.start(*DAEMONS)
    check_runs_as(f, user)
    message = send_and_fetch(f)
    check_layout(f, user, message)


def test_whichever_daemon_starts_first_creates_the_directories(prod):
    """popd first, mda last, and ferry-admin after them: the database directory is then a daemon's."""
    f, user = prod
    f.start(*reversed(DAEMONS))
    assert owner_and_mode(os.path.dirname(f.keys["account_db"])) == (0, user.pw_gid, 0o750)
    assert "created " + f.keys["mail_dir"] + " " in f.log("popd")
    assert "created " + f.keys["spool_dir"] + " " in f.log("smtpd")
    assert "created " + f.keys["run_dir"] + " " in f.log("qmgr")
    add_accounts(f)
    check_runs_as(f, user)
    message = send_and_fetch(f)
    check_layout(f, user, message)


@pytest.mark.parametrize("key,mode,complaint", [
    ("spool_dir", 0o755, "cannot write to it"),         # made by hand, left to root
    ("account_db", 0o750, "cannot enter it"),           # root:root, as ferry-admin made it before
])
def test_a_directory_mail_user_cannot_use_stops_the_start(prod, key, mode, complaint):
    f, _ = prod
    path = f.keys[key] if key != "account_db" else os.path.dirname(f.keys[key])
    os.makedirs(path)
    os.chmod(path, mode)
    p = subprocess.run([binary("smtpd"), "-c", f.conf], capture_output=True, text=True, timeout=20)
    assert p.returncode == 75, p.stderr  # EX_TEMPFAIL
    assert f"{key} {path}: {USER} {complaint} (owner 0:0, mode {mode:04o})" in p.stderr, p.stderr
    assert "ready" not in p.stderr


def test_empty_mail_user_keeps_the_invoking_user(prod):
    f, _ = prod
    f.set(mail_user="")
    add_accounts(f)
    f.start(*DAEMONS)
    for name in DAEMONS:
        assert proc_ids(f.pid(name))["Uid"] == ["0"] * 4
    send_and_fetch(f)
    assert owner_and_mode(f.keys["spool_dir"]) == (0, 0, 0o750)
    assert owner_and_mode(os.path.join(f.keys["run_dir"], "lmtp.sock")) == (0, 0, 0o660)
    assert owner_and_mode(os.path.dirname(f.keys["account_db"])) == (0, 0, 0o750)


def test_a_run_without_mail_user_leaves_nothing_mail_user_cannot_use(prod):
    """state_dir is shared by default (/var/lib/ferry): the delivery records that another installation
    running as root wrote there are given back to mail_user at the next start as root."""
    f, user = prod
    shared = os.path.join(f.root, "shared-state")
    other = Ferry()
    try:
        other.set(mail_user="", state_dir=shared)
        other.add_domain("prod.test")
        other.add_account(ADDRESS, PASSWORD)
        other.start(*DAEMONS)
        send_and_fetch(other)
        other.stop()
    finally:
        other.cleanup()
    records = os.path.join(shared, "mda")
    left = [os.path.join(records, n) for n in os.listdir(records)]
    assert left and all(owner_and_mode(p)[:2] == (0, 0) for p in left + [records])
    trap = os.path.join(f.root, "not-ferrys")
    open(trap, "w").close()
    os.symlink(trap, os.path.join(records, "link.rec"))  # a link is never followed

    f.set(state_dir=shared)
    add_accounts(f)
    f.start(*DAEMONS)
    check_runs_as(f, user)
    assert "files of another user given to mail_user" in f.log("mda")
    for p in left + [records]:
        assert owner_and_mode(p)[:2] == (user.pw_uid, user.pw_gid), p
    assert owner_and_mode(trap)[:2] == (0, 0)
    send_and_fetch(f)


def test_managesieve_runs_as_mail_user_and_its_scripts_belong_to_it(prod):
    """ferry-managesieve declares mail_dir and the account database as ferry-popd does; the scripts
    it writes into the account's Maildir are mail_user's, so ferry-mda can replace and read them."""
    from test_managesieve import Sieve
    f, user = prod
    add_accounts(f)
    f.start("managesieve")
    ids = proc_ids(f.pid("managesieve"))
    assert ids["Uid"] == [str(user.pw_uid)] * 4 and ids["Gid"] == [str(user.pw_gid)] * 4
    assert owner_and_mode(f.keys["mail_dir"]) == (user.pw_uid, user.pw_gid, 0o700)
    c = Sieve(f.port("sieve"))
    assert c.login(ADDRESS, PASSWORD).startswith("OK")
    assert c.cmd('PUTSCRIPT "rules"', "keep;\r\n")[0] == "OK"
    assert c.cmd('SETACTIVE "rules"')[0] == "OK"
    sieve = os.path.join(f.maildir(ADDRESS), "sieve")
    for path in (f.maildir(ADDRESS), sieve, os.path.join(sieve, "rules.sieve"), os.path.join(sieve, "active")):
        assert owner_and_mode(path)[:2] == (user.pw_uid, user.pw_gid), path

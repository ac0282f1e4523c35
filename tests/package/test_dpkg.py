"""dpkg -i of the built packages on this machine, then dpkg --purge (Debian policy 6, 9.2, 9.3): the install
creates the system user ferry and puts every file where ferry.conf(5) says, starts and enables no daemon,
and its units pass systemd-analyze verify; the purge removes the configuration, the state and the user
(debian/ferry-common.README.Debian) and leaves nothing of ferry behind.

This changes the machine it runs on, so it runs only with FERRY_PACKAGE_TESTS=1 (.ci/run, on a fresh
machine), as root, and never where a ferry is installed or has left its user, configuration or state;
whatever happens, it purges what it installed. ferry-mta is installed only when no other MTA is (it
Conflicts: mail-transport-agent, and the tests use Postfix's tools)."""
import os
import pwd
import grp
import re
import shutil
import stat
import subprocess

import pytest

pytestmark = pytest.mark.skipif(os.environ.get("FERRY_PACKAGE_TESTS") != "1",
                                reason="changes the machine: dpkg -i/--purge runs in .ci/run (FERRY_PACKAGE_TESTS=1)")

# ferry.conf(5), DIRECTORIES AND SOCKETS: the default directories, their owners and modes.
DIRECTORIES = {
    "/var/spool/ferry": ("ferry", "ferry", 0o750),
    "/var/mail/ferry": ("ferry", "ferry", 0o700),
    "/run/ferry": ("root", "ferry", 0o755),
    "/var/lib/ferry": ("root", "ferry", 0o750),
}
# Where a ferry leaves traces on a machine; a path under these that names ferry must be gone after purge.
LOOK_IN = ["/etc", "/usr/sbin", "/usr/bin", "/usr/share/man", "/usr/share/doc", "/usr/lib/sysusers.d",
           "/usr/lib/tmpfiles.d", "/lib/systemd", "/var/lib", "/var/spool", "/var/mail", "/run"]


def dpkg(*args, check=True):
    r = subprocess.run(["dpkg", *args], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    assert not check or r.returncode == 0, f"dpkg {' '.join(args)}: {r.stdout[-3000:]}{r.stderr[-3000:]}"
    return r


def known_packages():
    """Every package dpkg knows, with its status abbreviation ("ii", "rc", ...) and what it provides."""
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${db:Status-Abbrev}\t${Provides}\n"],
                         capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line.count("\t") == 2]


def existing_ferry():
    """Why this machine already has a ferry (which a purge would destroy), or None."""
    for name, status, _ in known_packages():
        if name.startswith("ferry-") and not status.startswith(("un", "pn")):
            return f"the package {name} is on this machine (status {status.strip()})"
    for path in ["/etc/ferry", *DIRECTORIES]:
        if os.path.lexists(path):
            return f"{path} exists"
    for db, what in ((pwd.getpwnam, "user"), (grp.getgrnam, "group")):
        try:
            db("ferry")
            return f"a {what} ferry exists"
        except KeyError:
            pass
    return None


def another_mta():
    return any(status.startswith("ii") and "mail-transport-agent" in provides
               for _, status, provides in known_packages())


def traces():
    """Paths on this machine that name ferry (files, links, directories), and links that point at one."""
    found = set()
    for top in LOOK_IN:
        for root, dirs, files in os.walk(top):
            for path in (os.path.join(root, n) for n in dirs + files):
                if "ferry" in path or (os.path.islink(path) and "ferry" in os.readlink(path)):
                    found.add(path)
    return found


def purge(packages):
    # Every package in one call: dpkg orders the removal so that nothing depends on what goes first.
    return dpkg("--purge", *packages, check=False)


@pytest.fixture(scope="module")
def machine(debs):
    if os.geteuid() != 0:
        pytest.skip("dpkg -i needs root")
    reason = existing_ferry()
    if reason:
        pytest.skip(f"not touching a machine where a ferry may be in use: {reason}")
    found, _ = debs
    packages = ["ferry-common", "ferry-mda", "ferry-popd", "ferry-imapd"]
    if not another_mta():
        packages.append("ferry-mta")
    before = traces()
    try:
        dpkg("-i", *[found[p] for p in packages])
        yield {"packages": packages, "before": before}
    finally:
        purge(packages)
        left = sorted(traces() - before)
        # A failed purge leaves dpkg state to clean up by hand; say so plainly.
        print(f"after the final purge: {len(left)} ferry paths left {left[:20]}")


def test_the_install_creates_the_system_user_ferry(machine):
    user = pwd.getpwnam("ferry")
    assert user.pw_uid < 1000, "ferry must be a system user"
    assert user.pw_shell in ("/usr/sbin/nologin", "/bin/false"), user.pw_shell
    assert user.pw_dir == "/var/lib/ferry"
    assert grp.getgrgid(user.pw_gid).gr_name == "ferry"


def test_the_files_are_where_ferry_conf_5_says(machine):
    assert "/etc/ferry/ferry.conf" in dpkg("-s", "ferry-common").stdout  # a conffile: kept on upgrade
    out = subprocess.run(["/usr/sbin/ferry-admin", "config"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    settings = dict(line.split(" = ", 1) for line in out.stdout.splitlines() if " = " in line)
    assert settings["mail_user"] == "ferry"
    assert settings["account_db"] == "/var/lib/ferry/accounts.db"
    for key, path in (("spool_dir", "/var/spool/ferry"), ("mail_dir", "/var/mail/ferry"), ("run_dir", "/run/ferry"),
                      ("state_dir", "/var/lib/ferry")):
        assert settings[key] == path
        owner, group, mode = DIRECTORIES[path]
        st = os.stat(path)
        assert stat.S_ISDIR(st.st_mode), path
        got = (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, stat.S_IMODE(st.st_mode))
        assert got == (owner, group, mode), f"{path}: {got}, ferry.conf(5) says {(owner, group, oct(mode))}"
    for package in machine["packages"]:
        for path in dpkg("-L", package).stdout.split():
            if re.match(r"/usr/sbin/ferry-", path):
                assert os.access(path, os.X_OK), path
                name = os.path.basename(path)
                assert os.path.exists(f"/usr/share/man/man8/{name}.8.gz"), f"{name} has no man page"


def test_no_daemon_is_started_or_enabled_at_install(machine):
    running = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if exe.startswith("/usr/sbin/ferry-"):
            running.append((pid, exe))
    assert not running, f"daemons started at install: {running}"
    enabled = [p for p in traces() if p.startswith("/etc/systemd/system/") and os.path.islink(p)]
    assert not enabled, f"units enabled at install: {enabled}"


def test_systemd_analyze_verify_accepts_the_installed_units(machine):
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze is not installed (Debian package systemd)")
    units = [p for p in traces() if p.startswith("/lib/systemd/system/") and p.endswith((".service", ".target"))]
    assert "/lib/systemd/system/ferry.target" in units and "/lib/systemd/system/ferry-mda.service" in units, units
    for unit in sorted(units):
        r = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True, timeout=60)
        out = r.stdout + r.stderr
        # ferry.target may want daemons of packages not installed here (ferry-mta beside Postfix).
        out = "\n".join(line for line in out.splitlines() if not re.search(r"ferry-\w+\.service: .*not found", line))
        assert r.returncode == 0 or "not found" in r.stdout + r.stderr, f"{unit}: {out}"
        assert not re.search(r"(?i)error|invalid|unknown|failed", out), f"{unit}: {out}"


def test_purge_removes_configuration_state_and_user_and_leaves_nothing_behind(machine):
    # State worth removing: a hosted domain in the account database, an edited configuration.
    r = subprocess.run(["/usr/sbin/ferry-admin", "domain", "add", "purge.test"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert os.path.exists("/var/lib/ferry/accounts.db")
    with open("/etc/ferry/ferry.conf", "a") as f:
        f.write("hostname = mail.purge.test\n")
    r = purge(machine["packages"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    left = sorted(traces() - machine["before"])
    assert not left, f"left behind by dpkg --purge: {left}"
    for package in machine["packages"]:
        status = dpkg("-s", package, check=False)
        assert status.returncode != 0 or "Status: deinstall ok not-installed" in status.stdout, status.stdout
    assert existing_ferry() is None, existing_ferry()


def test_purge_never_removes_mail_and_then_keeps_its_owner(machine, debs):
    found, _ = debs
    dpkg("-i", *[found[p] for p in machine["packages"]])
    mail = "/var/mail/ferry/purge.test/alice/Maildir/new/1.M1P1.mx"
    try:
        os.makedirs(os.path.dirname(mail))
        with open(mail, "w") as f:
            f.write("Subject: kept\n\nmail that a purge must not take\n")
        user = pwd.getpwnam("ferry")
        os.chown(mail, user.pw_uid, user.pw_gid)
        r = purge(machine["packages"])
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert open(mail).read().endswith("mail that a purge must not take\n")
        assert pwd.getpwnam("ferry").pw_uid == user.pw_uid, "the mail's owner went away"
        assert not os.path.exists("/etc/ferry") and not os.path.exists("/var/lib/ferry")
    finally:
        # What the administrator does once the mail is moved away (README.Debian).
        shutil.rmtree("/var/mail/ferry", ignore_errors=True)
        subprocess.run(["deluser", "--quiet", "--system", "ferry"], capture_output=True)
        subprocess.run(["delgroup", "--quiet", "--system", "ferry"], capture_output=True)
    assert not sorted(traces() - machine["before"])

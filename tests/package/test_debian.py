"""The Debian packages: dpkg-buildpackage builds the five binary packages from a copy of the tree, lintian
finds no error, each package holds what it should, and the programs unpacked from them (dpkg-deb -x, since
ferry-mta conflicts with the Postfix the tests use) carry a message from SMTP to POP3.

Slow (a whole build of the programs): it runs only when FERRY_PACKAGE_TESTS=1, as .ci/run sets it."""
import glob
import os
import poplib
import re
import shutil
import smtplib
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
import ferry_harness  # noqa: E402
from ferry_harness import REPO, Ferry  # noqa: E402

pytestmark = pytest.mark.skipif(os.environ.get("FERRY_PACKAGE_TESTS") != "1",
                                reason="slow: the Debian package build runs in .ci/run (FERRY_PACKAGE_TESTS=1)")

PACKAGES = ["ferry-common", "ferry-mta", "ferry-mda", "ferry-popd", "ferry-imapd"]


def field(deb, name):
    return subprocess.run(["dpkg-deb", "-f", deb, name], capture_output=True, text=True, check=True).stdout.strip()


def contents(deb):
    out = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, check=True).stdout
    return {line.split()[5].lstrip(".") for line in out.splitlines()}


def test_the_five_packages_are_built(debs):
    found, _ = debs
    assert sorted(p for p in found if not p.endswith("-dbgsym")) == sorted(PACKAGES)


def test_each_package_holds_its_programs_and_declares_its_relations(debs):
    found, _ = debs
    version = field(found["ferry-common"], "Version")
    common = contents(found["ferry-common"])
    assert {"/usr/sbin/ferry-admin", "/etc/ferry/ferry.conf", "/usr/share/man/man5/ferry.conf.5.gz",
            "/lib/systemd/system/ferry.target", "/usr/lib/tmpfiles.d/ferry.conf"} <= common
    conffiles = subprocess.run(["dpkg-deb", "-I", found["ferry-common"], "conffiles"], capture_output=True,
                               text=True).stdout
    assert "/etc/ferry/ferry.conf" in conffiles
    mta = contents(found["ferry-mta"])
    for prog in ("smtpd", "qmgr", "relay", "sendmail"):
        assert f"/usr/sbin/ferry-{prog}" in mta
    for unit in ("smtpd", "qmgr", "relay"):
        assert f"/lib/systemd/system/ferry-{unit}.service" in mta
    assert "/usr/sbin/sendmail" not in mta, "sendmail comes from update-alternatives"
    assert "mail-transport-agent" in field(found["ferry-mta"], "Provides")
    assert "imap-server" in field(found["ferry-imapd"], "Provides")
    mda = contents(found["ferry-mda"])
    assert {"/usr/sbin/ferry-managesieve", "/lib/systemd/system/ferry-managesieve.service"} <= mda
    for p in PACKAGES[1:]:
        prog = "ferry-" + p.split("-")[1] if p != "ferry-mta" else "ferry-smtpd"
        assert f"/usr/sbin/{prog}" in contents(found[p])
        assert f"ferry-common (= {version})" in field(found[p], "Depends")
    scripts = subprocess.run(["dpkg-deb", "-I", found["ferry-mta"], "postinst"], capture_output=True, text=True).stdout
    assert "update-alternatives --install /usr/sbin/sendmail sendmail /usr/sbin/ferry-sendmail" in scripts
    assert "adduser" in subprocess.run(["dpkg-deb", "-I", found["ferry-common"], "postinst"], capture_output=True,
                                       text=True).stdout


def test_each_package_holds_what_its_install_file_lists(debs):
    """debian/*.install, which tests/package/test_programs.py checks against the build, is what ships."""
    found, _ = debs
    for path in glob.glob(os.path.join(REPO, "debian", "*.install")):
        package = os.path.basename(path)[:-len(".install")]
        have = contents(found[package])
        for line in open(path):
            if line.strip() and not line.startswith("#"):
                want = "/" + line.split()[0] + (".gz" if "/share/man/" in line else "")
                assert want in have, f"{package} lacks {want}"


def test_lintian_finds_no_error(debs):
    found, _ = debs
    if not shutil.which("lintian"):
        pytest.fail("lintian is not installed")
    r = subprocess.run(["lintian", "--tag-display-limit", "0", *found.values()], capture_output=True, text=True,
                       timeout=900)
    errors = [line for line in r.stdout.splitlines() if line.startswith("E:")]
    assert not errors, "\n".join(errors)


def test_the_unpacked_programs_carry_a_message_from_smtp_to_pop3(debs, monkeypatch):
    found, work = debs
    root = os.path.join(work, "root")
    for p in PACKAGES:
        subprocess.run(["dpkg-deb", "-x", found[p], root], check=True)
    programs = {name: os.path.join(root, "usr", "sbin", f"ferry-{name}")
                for name in ("smtpd", "qmgr", "relay", "mda", "popd", "imapd", "admin")}
    monkeypatch.setattr(ferry_harness, "binary", lambda name: programs[name])
    f = Ferry()
    try:
        f.add_domain("example.test")
        f.add_account("demo@example.test", "demo-secret")
        f.start("mda", "relay", "qmgr", "smtpd", "popd")
        with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=30) as s:
            s.sendmail("sender@outside.test", ["demo@example.test"],
                       "From: sender@outside.test\r\nSubject: packaged\r\n\r\nfrom the packages\r\n")
        f.wait_mail("demo@example.test")
        pop = poplib.POP3("127.0.0.1", f.port("pop3"), timeout=10)
        pop.user("demo@example.test")
        pop.pass_("demo-secret")
        assert pop.stat()[0] == 1
        body = b"\n".join(pop.retr(1)[1])
        pop.quit()
        assert b"from the packages" in body and re.search(rb"^Subject: packaged$", body, re.M)
        for name in ("mda", "qmgr", "smtpd", "popd"):
            assert f.procs[name].poll() is None
    finally:
        f.cleanup()

"""The one list of programs (ferry_programs in the top-level meson.build) against the build and the packages:
every program built is installed with its man page, each daemon with its systemd unit that ferry.target
wants, and every file meson installs belongs to exactly one debian/*.install, a program together with its
man page and unit. Adding a program is then one line of that list plus the files it names.

Fast (meson's introspection of the build directory and the files of the tree): it runs in every suite."""
import glob
import json
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from ferry_harness import BUILD, REPO  # noqa: E402


def introspect(what):
    r = subprocess.run(["meson", "introspect", BUILD, "--" + what], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def option(options, name):
    return next(o["value"] for o in options if o["name"] == name)


@pytest.fixture(scope="module")
def build():
    """What the build directory installs: programs (name -> installed path) and every installed path."""
    targets = introspect("targets")
    programs = {t["name"]: t["install_filename"][0] for t in targets if t["type"] == "executable" and t["installed"]}
    # Only real files: the sendmail/mailq links (-Dsendmail_links) are alternatives in the packages.
    installed = [dest for src, dest in introspect("installed").items() if os.path.isabs(src)]
    # The default ferry.conf is put in place by a script (dist/install-config), which keeps an edited one.
    options = introspect("buildoptions")
    installed.append(os.path.join(option(options, "prefix"), option(options, "sysconfdir"), "ferry", "ferry.conf"))
    return programs, installed, options


def debian_path(path, build):
    """Where an installed file of this build lands in the packages (prefix /usr, sysconfdir /etc,
    units in /lib/systemd/system as debian/rules says): the form debian/*.install names it in."""
    _, installed, options = build
    prefix = option(options, "prefix")
    sysconfdir = os.path.join(prefix, option(options, "sysconfdir"))
    unitdir = next(os.path.dirname(p) for p in installed if p.endswith("/ferry.target"))
    for here, there in ((unitdir, "lib/systemd/system"), (sysconfdir, "etc"), (prefix, "usr")):
        if path.startswith(here + "/"):
            return there + path[len(here):]
    return path.lstrip("/")


def install_files():
    """debian/<package>.install: package -> the paths it lists."""
    lists = {}
    for path in sorted(glob.glob(os.path.join(REPO, "debian", "*.install"))):
        package = os.path.basename(path)[:-len(".install")]
        lists[package] = [line.split()[0] for line in open(path) if line.strip() and not line.startswith("#")]
    return lists


def target_wants():
    path = os.path.join(BUILD, "dist", "ferry.target")
    wants = re.search(r"^Wants=(.*)$", open(path).read(), re.M)
    return set(wants.group(1).split()) if wants else set()


def test_every_program_built_is_installed_with_its_man_page(build):
    programs, installed, _ = build
    assert "ferry-smtpd" in programs and "ferry-admin" in programs, sorted(programs)
    for name, path in programs.items():
        pages = [p for p in installed if re.search(r"/man([1-8])/" + re.escape(name) + r"\.\1$", p)]
        assert len(pages) == 1, f"{name} has no man page: add it to ferry_programs in meson.build and man/"
        assert os.path.exists(os.path.join(REPO, "man", os.path.basename(pages[0])))


def test_each_daemon_has_its_unit_and_ferry_target_wants_every_unit(build):
    programs, installed, options = build
    units = {os.path.basename(p): p for p in installed if p.endswith(".service")}
    assert units, "no systemd unit is installed"
    assert target_wants() == set(units), "ferry.target wants another set of daemons than the units installed"
    sbindir = os.path.join(option(options, "prefix"), option(options, "sbindir"))
    for unit in units:
        program = unit[:-len(".service")]
        assert program in programs, f"{unit} runs no program that the build installs"
        text = open(os.path.join(BUILD, "dist", unit)).read()
        assert re.search(r"^ExecStart=" + re.escape(os.path.join(sbindir, program)) + " ", text, re.M), unit
    # The programs without a unit are the tools, not daemons that something else would have to start.
    tools = set(programs) - {u[:-len(".service")] for u in units}
    assert {"ferry-admin", "ferry-sendmail"} <= tools, tools


def test_every_installed_file_is_in_exactly_one_debian_package(build):
    _, installed, _ = build
    lists = install_files()
    listed = [path for paths in lists.values() for path in paths]
    want = sorted(debian_path(p, build) for p in installed)
    for path in want:
        assert listed.count(path) == 1, f"{path} is in {listed.count(path)} of debian/*.install, not one"
    stale = sorted(set(listed) - set(want))
    assert not stale, f"debian/*.install names files that meson does not install: {stale}"


def test_each_program_shares_its_package_with_its_man_page_and_unit(build):
    programs, installed, _ = build
    owner = {path: package for package, paths in install_files().items() for path in paths}
    for name, path in programs.items():
        package = owner.get(debian_path(path, build))
        assert package, f"{name} is in no debian/*.install"
        companions = [p for p in installed if re.search(r"/man([1-8])/" + re.escape(name) + r"\.\1$", p)
                      or os.path.basename(p) == name + ".service"]
        for p in companions:
            assert owner.get(debian_path(p, build)) == package, f"{os.path.basename(p)} is not in {package} with {name}"


def test_the_check_can_fail(build, monkeypatch):
    """A program dropped from an install file, or listed twice, is caught by the checks above."""
    lists = install_files()
    dropped = {k: [p for p in v if p != "usr/sbin/ferry-popd"] for k, v in lists.items()}
    monkeypatch.setattr(sys.modules[__name__], "install_files", lambda: dropped)
    with pytest.raises(AssertionError, match="ferry-popd is in 0 of debian"):
        test_every_installed_file_is_in_exactly_one_debian_package(build)
    doubled = dict(lists, **{"ferry-imapd": lists["ferry-imapd"] + ["usr/sbin/ferry-popd"]})
    monkeypatch.setattr(sys.modules[__name__], "install_files", lambda: doubled)
    with pytest.raises(AssertionError, match="ferry-popd is in 2 of debian"):
        test_every_installed_file_is_in_exactly_one_debian_package(build)

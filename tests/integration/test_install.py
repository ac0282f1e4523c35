"""meson install into a temp dir: every program, man page, the default ferry.conf and the systemd units land
where ferry.conf(5) and the units say; a second install keeps an edited ferry.conf; systemd-analyze accepts
every unit."""
import glob
import json
import os
import re
import shutil
import subprocess

import pytest

from ferry_harness import BUILD, PROGRAMS, REPO

# Each `meson install` writes the build dir's install log: one worker runs the file, and installs once.
pytestmark = pytest.mark.xdist_group("install")


def built_daemons():
    """The daemons of the list of programs in meson.build: the units the build's ferry.target wants."""
    text = open(os.path.join(BUILD, "dist", "ferry.target")).read()
    wants = re.search(r"^Wants=(.*)$", text, re.M).group(1).split()
    return [w[len("ferry-"):-len(".service")] for w in wants]


DAEMONS = built_daemons()
DIR_KEYS = ["spool_dir", "mail_dir", "run_dir", "state_dir", "account_db"]


def build_option(name):
    with open(os.path.join(BUILD, "meson-info", "intro-buildoptions.json")) as f:
        return next(o["value"] for o in json.load(f) if o["name"] == name)


def under(root, path):
    return os.path.join(root, path.lstrip("/"))


def install(dest):
    r = subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild", "--destdir", dest],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    dest = str(tmp_path_factory.mktemp("destdir"))
    install(dest)
    prefix = build_option("prefix")
    dirs = {k: os.path.join(prefix, build_option(k)) for k in ("sbindir", "bindir", "mandir", "sysconfdir")}
    yield dest, dirs
    shutil.rmtree(dest, ignore_errors=True)


def defaults():
    """What the programs use when ferry.conf sets nothing: `ferry-admin config` with an empty file."""
    r = subprocess.run([os.path.join(BUILD, PROGRAMS["admin"]), "-c", "/dev/null", "config"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return dict(line.split(" = ", 1) for line in r.stdout.splitlines() if " = " in line)


def unit_files(dest):
    return {os.path.basename(p): p for p in glob.glob(os.path.join(dest, "**", "ferry*.service"), recursive=True)
            + glob.glob(os.path.join(dest, "**", "ferry.target"), recursive=True)}


def unit_settings(path):
    settings = {}
    for line in open(path):
        if "=" in line and not line.startswith("#"):
            key, value = line.rstrip("\n").split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_every_program_and_man_page_is_installed(installed):
    dest, dirs = installed
    for name in PROGRAMS.values():
        path = under(dest, os.path.join(dirs["sbindir"], os.path.basename(name)))
        assert os.access(path, os.X_OK), f"{os.path.basename(name)} not installed in {dirs['sbindir']}"
    pages = [os.path.basename(p) for p in glob.glob(os.path.join(REPO, "man", "*.[0-9]"))]
    assert len(pages) >= 11
    for page in pages:
        path = under(dest, os.path.join(dirs["mandir"], "man" + page[-1], page))
        assert os.path.exists(path), f"man page {page} not installed"


def test_the_default_config_and_the_man_page_name_the_paths_the_programs_use(installed):
    dest, dirs = installed
    conf = under(dest, os.path.join(dirs["sysconfdir"], "ferry", "ferry.conf"))
    assert os.path.exists(conf), "no ferry.conf in sysconfdir/ferry"
    r = subprocess.run([os.path.join(BUILD, PROGRAMS["admin"]), "-c", conf, "config", "-n"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "mail_user = ferry" in r.stdout
    want = defaults()
    localstate = os.path.join(build_option("prefix"), build_option("localstatedir"))
    assert want["spool_dir"] == os.path.join(localstate, "spool", "ferry")
    assert want["state_dir"] == os.path.join(localstate, "lib", "ferry")
    assert want["run_dir"] == os.path.join(build_option("runstatedir"), "ferry")
    page = open(under(dest, os.path.join(dirs["mandir"], "man5", "ferry.conf.5"))).read()
    text = open(conf).read()
    for key in DIR_KEYS:
        m = re.search(r'^\.BR ' + key + r' " \(default: ([^)]*)\)"', page, re.M)
        assert m and m.group(1) == want[key], f"ferry.conf(5) says {key} defaults to {m and m.group(1)}, not {want[key]}"
        assert f"#{key} = {want[key]}\n" in text, f"the default ferry.conf does not show {key} = {want[key]}"
    assert os.path.join(dirs["sysconfdir"], "ferry", "ferry.conf") in page


def test_the_units_start_the_installed_programs_and_may_write_only_their_directories(installed):
    dest, dirs = installed
    units = unit_files(dest)
    assert set(units) == {f"ferry-{d}.service" for d in DAEMONS} | {"ferry.target"}, sorted(units)
    want = defaults()
    conf = os.path.join(dirs["sysconfdir"], "ferry", "ferry.conf")
    for d in DAEMONS:
        s = unit_settings(units[f"ferry-{d}.service"])
        argv = s["ExecStart"][0].split()
        assert argv == [os.path.join(dirs["sbindir"], f"ferry-{d}"), "-c", conf]
        assert os.access(under(dest, argv[0]), os.X_OK)
        assert s["Restart"] == ["on-failure"] and s["ProtectSystem"] == ["strict"]
        assert s["NoNewPrivileges"] == ["yes"] and s["PrivateTmp"] == ["yes"] and s["ProtectHome"] == ["yes"]
        writable = {p.lstrip("-") for p in s["ReadWritePaths"][0].split()}
        assert writable and writable <= {want[k] for k in ("spool_dir", "mail_dir", "run_dir", "state_dir")}, writable
        assert s["PartOf"] == ["ferry.target"] and s["WantedBy"] == ["multi-user.target"]
        caps = s["CapabilityBoundingSet"][0].split()
        assert ("CAP_NET_BIND_SERVICE" in caps) == (d in ("smtpd", "popd", "imapd")), (d, caps)
        assert "ExecReload" not in s, "no ferry daemon rereads its configuration on SIGHUP"
    order = {d: unit_settings(units[f"ferry-{d}.service"]).get("After", [""])[0].split() for d in DAEMONS}
    assert {"ferry-mda.service", "ferry-relay.service"} <= set(order["qmgr"])
    assert "ferry-qmgr.service" in order["smtpd"]
    target = unit_settings(units["ferry.target"])
    assert set(target["Wants"][0].split()) == {f"ferry-{d}.service" for d in DAEMONS}


def test_systemd_analyze_verify_accepts_every_unit(installed, tmp_path):
    dest, dirs = installed
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze is not installed (Debian package systemd)")
    units = unit_files(dest)
    # The units name the programs where they will be installed; verify checks the copies under dest.
    for name, path in units.items():
        text = open(path).read().replace("ExecStart=" + dirs["sbindir"], "ExecStart=" + under(dest, dirs["sbindir"]))
        (tmp_path / name).write_text(text)
    for name in units:
        r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / name)], capture_output=True, text=True,
                           timeout=60)
        out = r.stdout + r.stderr
        assert r.returncode == 0 and not re.search(r"(?i)error|invalid|unknown|failed|not found", out), f"{name}: {out}"


def test_a_second_install_keeps_an_edited_config(tmp_path):
    dest = str(tmp_path / "d")
    install(dest)
    conf = under(dest, os.path.join(build_option("prefix"), build_option("sysconfdir"), "ferry", "ferry.conf"))
    with open(conf, "a") as f:
        f.write("hostname = mail.edited.test\n")
    edited = open(conf).read()
    install(dest)
    assert open(conf).read() == edited

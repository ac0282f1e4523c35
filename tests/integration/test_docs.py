"""Every program has a man page, every config key is in ferry.conf(5), and the README stays true."""
import glob
import os
import re

from ferry_harness import REPO


# Programs that must be found in the build files: a parser that misses them checks nothing.
KNOWN_PROGRAMS = {"ferry-smtpd", "ferry-qmgr", "ferry-mda", "ferry-popd", "ferry-imapd", "ferry-admin",
                  "ferry-sendmail", "ferry-managesieve", "ferry-sieve"}


def config_keys():
    src = open(os.path.join(REPO, "common", "program", "config.cpp")).read()
    table = src[src.index("config_keys()"):]
    table = table[:table.index("};")]
    keys = re.findall(r'\{"([a-z0-9_]+)",', table)
    # Every entry of the table must be read, or a key of an unexpected shape would go unchecked.
    assert len(keys) == table.count('{"'), "config key table entries the test cannot parse"
    return keys


def programs():
    names = set()
    for path in glob.glob(os.path.join(REPO, "**", "meson.build"), recursive=True):
        if "/build" in path[len(REPO):]:
            continue
        names.update(re.findall(r"executable\(\s*'(ferry-[a-z0-9-]+)'", open(path).read()))
    return names


def test_every_config_key_is_documented():
    page = open(os.path.join(REPO, "man", "ferry.conf.5")).read()
    keys = config_keys()
    assert {"hostname", "spool_dir", "qmgr_scan_interval", "test_pause_at"} <= set(keys), keys
    missing = [k for k in keys if not re.search(r"^\.BR? " + re.escape(k.replace("_", r"_")) + r"\b", page, re.M)]
    assert not missing, f"keys without an entry in man/ferry.conf.5: {missing}"


def test_every_program_has_a_man_page():
    progs = programs()
    assert KNOWN_PROGRAMS <= progs, f"programs not found in the meson files: {KNOWN_PROGRAMS - progs}"
    missing = [p for p in progs if not glob.glob(os.path.join(REPO, "man", p + ".[0-9]"))]
    assert not missing, f"programs without a man page: {missing}"


def test_readme_names_the_two_commands():
    readme = open(os.path.join(REPO, "README.md")).read()
    assert "./dev up" in readme and "./dev test" in readme

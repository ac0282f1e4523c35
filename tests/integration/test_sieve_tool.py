"""ferry-sieve(1): compile errors as file:line:col, the actions a script takes on a message, exit statuses;
and the same scripts and messages through Pigeonhole's sieve-test (Debian's dovecot-sieve) where it is
installed, which must take the same actions."""
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from ferry_harness import binary

MESSAGE = ("Return-Path: <carol@example.net>\n"
           "From: Carol <carol@example.net>\n"
           "To: alice@example.test\n"
           "Cc: list@lists.example.org\n"
           "Subject: Quarterly report [work]\n"
           "Message-ID: <q1@example.net>\n"
           "Date: Tue, 14 Nov 2023 10:00:00 +0100\n"
           "\n"
           "The numbers are in. Invoice attached.\n")


def sieve(*args, cwd=None):
    return subprocess.run([binary("sieve"), *args], capture_output=True, text=True, timeout=30, cwd=cwd)


@pytest.fixture
def files(tmp_path):
    def write(name, text):
        p = tmp_path / name
        p.write_text(text)
        return str(p)
    write("message.eml", MESSAGE)
    return write


def test_compile_reports_file_line_and_column(files):
    good = files("good.sieve", 'require "fileinto";\nif header :contains "subject" "work" { fileinto "Work"; }\n')
    r = sieve("compile", good)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""

    bad = files("bad.sieve", 'require "fileinto";\nif true {\n  fileinto "x"\n}\n')
    r = sieve("compile", bad)
    assert r.returncode == 1
    assert re.fullmatch(re.escape(bad) + r":4:1: .*'\}'\n", r.stderr), r.stderr

    unknown = files("unknown.sieve", '# a comment\nrequire ["fileinto", "nosuch"];\n')
    r = sieve("compile", unknown)
    assert r.returncode == 1
    assert r.stderr == f"{unknown}:2:9: unknown extension 'nosuch'\n"  # the string list that names it

    not_required = files("notreq.sieve", 'keep;\n  fileinto "x";\n')
    r = sieve("compile", not_required)
    assert r.returncode == 1
    assert r.stderr.startswith(f"{not_required}:2:3: "), r.stderr


def test_test_prints_the_actions_one_a_line(files):
    script = files("rules.sieve", """require ["fileinto", "copy", "imap4flags", "vacation", "envelope"];
if envelope :is "from" "carol@example.net" {
    fileinto :flags "\\\\Flagged" "Reports";
    redirect :copy "archive@example.test";
}
if header :contains "cc" "lists.example.org" { addflag "\\\\Seen"; }
vacation :days 3 :subject "Away" "I am away.";
""")
    msg = files("message.eml", MESSAGE)
    r = sieve("test", script, msg, "-r", "alice@example.test")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == 'fileinto "Reports" :flags "\\\\Flagged"'
    assert lines[1] == 'redirect "archive@example.test" :copy'
    assert lines[2].startswith('vacation to "carol@example.net" :days 3 :subject "Away" ')
    assert len(lines) == 3  # fileinto cancelled the implicit keep

    flags = files("flags.sieve", 'require "imap4flags";\nif header :contains "cc" "lists.example.org" { addflag "\\\\Seen"; }\n')
    r = sieve("test", flags, msg)
    assert r.stdout == 'keep (implicit) :flags "\\\\Seen"\n'
    r = sieve("test", flags, msg, "--mailbox", "Archive")
    assert r.stdout == 'keep (implicit) :flags "\\\\Seen" into "Archive"\n'

    # Another envelope sender (the Return-Path was the default), the null sender.
    r = sieve("test", script, msg, "-r", "alice@example.test", "-f", "dave@example.org")
    assert r.stdout.splitlines()[0].startswith('vacation to "dave@example.org"')
    assert r.stdout.splitlines()[1] == 'keep (implicit) :flags "\\\\Seen"'
    r = sieve("test", script, msg, "-r", "alice@example.test", "-f", "")
    assert "(suppressed: null sender)" in r.stdout
    # The user is not among the recipients: no vacation.
    r = sieve("test", script, msg, "-r", "bob@example.test")
    assert "(suppressed: the user is not in To, Cc or Bcc)" in r.stdout
    r = sieve("test", script, msg, "-r", "bob@example.test", "-a", "alice@example.test")
    assert "suppressed" not in r.stdout


def test_run_time_errors_usage_and_missing_files(files):
    msg = files("message.eml", MESSAGE)
    many = files("many.sieve", "".join(f'redirect "r{i}@example.test";\n' for i in range(10)))
    r = sieve("test", many, msg)
    assert r.returncode == 1
    assert "run-time error" in r.stderr
    assert r.stdout == 'keep (implicit, after the error) into "INBOX"\n'
    assert sieve().returncode == 64
    assert sieve("frobnicate", many).returncode == 64
    assert sieve("test", many).returncode == 64
    assert sieve("test", many, msg, "-f").returncode == 64
    r = sieve("test", many, msg + ".missing")
    assert r.returncode == 66 and "No such file" in r.stderr
    r = sieve("compile", msg + ".missing.sieve")
    assert r.returncode == 1 and "No such file" in r.stderr


# Pigeonhole as the oracle: scripts x messages, compared as the multiset of (store folder | redirect | discard | vacation).
ORACLE_SCRIPTS = [
    'keep;',
    'discard;',
    'require "fileinto";\nif header :contains "subject" "[work]" { fileinto "Work"; }',
    'require "fileinto";\nif address :domain :is "from" "example.net" { fileinto "Net"; stop; }\nkeep;',
    'require ["fileinto", "copy"];\nfileinto :copy "A";\nredirect "x@example.test";',
    'if size :over 100K { discard; } elsif exists "x-spam" { discard; } else { redirect "y@example.test"; }',
    'require ["body", "fileinto"];\nif body :text :contains "invoice" { fileinto "Invoices"; }',
    'require ["variables", "fileinto"];\nif header :matches "subject" "* report *" { fileinto "R-${1}"; }',
    'require ["relational", "comparator-i;ascii-numeric", "fileinto"];\n'
    'if header :count "ge" :comparator "i;ascii-numeric" "to" "1" { fileinto "Counted"; }',
    'require ["envelope", "subaddress", "fileinto"];\nif envelope :detail "to" "lists" { fileinto "Lists"; }',
    'require "vacation";\nvacation :days 2 "gone";',
    'require "vacation";\nif header :contains "cc" "lists" { vacation "gone"; }',
]
ORACLE_MESSAGES = [
    MESSAGE,
    MESSAGE.replace("Cc: list@lists.example.org\n", "X-Spam: yes\nPrecedence: bulk\n").replace("Invoice", "No"),
]


def ours(script, message, sender, recipient):
    r = sieve("test", script, message, "-f", sender, "-r", recipient)
    assert r.returncode == 0, r.stderr
    acts = []
    for line in r.stdout.splitlines():
        if line.startswith("keep"):
            acts.append(("store", "INBOX"))
        elif line.startswith("fileinto "):
            acts.append(("store", re.match(r'fileinto "((?:[^"\\]|\\.)*)"', line).group(1)))
        elif line.startswith("redirect "):
            acts.append(("redirect", re.match(r'redirect "([^"]*)"', line).group(1)))
        elif line == "discard":
            acts.append(("discard",))
        elif line.startswith("vacation "):
            # sieve-test lists a vacation before the checks of RFC 5230 4.5-4.6, which Pigeonhole makes
            # only when it sends: so a suppressed one counts here too (suppression is tested above).
            acts.append(("vacation",))
    return sorted(acts)


def pigeonhole(workdir, script, message, sender, recipient):
    r = subprocess.run(["su", "nobody", "-s", "/bin/sh", "-c",
                        "exec sieve-test -o mail_uid=nobody -o first_valid_uid=0 \"$0\" \"$1\" -f \"$2\" -r \"$3\"",
                        script, message, sender, recipient],
                       capture_output=True, text=True, timeout=60, cwd=workdir, env={"HOME": workdir, "PATH": os.environ["PATH"]})
    assert r.returncode == 0, r.stdout + r.stderr
    acts = []
    for line in r.stdout.splitlines():
        m = re.match(r" \* (.*)$", line)
        if not m:
            continue
        what = m.group(1)
        if what.startswith("store message in folder: "):
            acts.append(("store", what.split(": ", 1)[1]))
        elif what.startswith("redirect message to: "):
            acts.append(("redirect", what.split(": ", 1)[1].strip("<>")))
        elif what == "discard":
            acts.append(("discard",))
        elif what.startswith("send vacation message"):
            acts.append(("vacation",))
    return sorted(acts)


@pytest.mark.skipif(shutil.which("sieve-test") is None, reason="Pigeonhole's sieve-test (dovecot-sieve) is not installed")
def test_the_same_actions_as_pigeonhole():
    if os.geteuid() != 0 or shutil.which("su") is None:
        pytest.skip("sieve-test refuses root; the comparison runs it as nobody through su")
    work = tempfile.mkdtemp(prefix="fy-sieve-", dir="/tmp")  # nobody must reach it
    try:
        os.chmod(work, 0o777)
        compare_with_pigeonhole(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compare_with_pigeonhole(work):
    messages = []
    for i, text in enumerate(ORACLE_MESSAGES):
        p = os.path.join(work, f"m{i}.eml")
        with open(p, "w") as fh:
            fh.write(text)
        os.chmod(p, 0o644)
        messages.append(p)
    for i, text in enumerate(ORACLE_SCRIPTS):
        script = os.path.join(work, f"s{i}.sieve")
        with open(script, "w") as fh:
            fh.write(text + "\n")
        os.chmod(script, 0o644)
        for message in messages:
            for sender, recipient in [("carol@example.net", "alice@example.test"),
                                      ("carol@example.net", "alice+lists@example.test")]:
                want = pigeonhole(work, script, message, sender, recipient)
                got = ours(script, message, sender, recipient)
                assert got == want, f"script {text!r}, {os.path.basename(message)}, to {recipient}"

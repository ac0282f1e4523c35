"""ferry-imapd's Junk learning hook: a command fed each message a client moves into or out of Junk."""
import glob
import os
import re

from ferry_harness import wait_until
from test_imapd import USER, deliver, logged_in, start


def learner(f, name):
    """A learning command that keeps each message it is fed as <dir>/<n>.eml and the account as <n>.user."""
    d = os.path.join(f.root, name)
    os.makedirs(d)
    script = os.path.join(f.root, name + ".sh")
    with open(script, "w") as s:
        s.write(f'#!/bin/sh\nn=$(mktemp "{d}/m.XXXXXX")\ncat > "$n.eml"\necho "$FERRY_USER" > "$n.user"\n')
    os.chmod(script, 0o755)
    return d, script


def learned(d):
    """The messages a learning command was fed: their Subject lines, sorted."""
    out = []
    for path in glob.glob(os.path.join(d, "*.eml")):
        with open(path) as f:
            m = re.search(r"^Subject: (.*)$", f.read(), re.M)
            out.append(m.group(1) if m else "")
    return sorted(out)


def message(subject):
    return f"From: a@example.org\nTo: {USER}\nSubject: {subject}\n\nbody of {subject}\n"


def learn_lines(f, kind):
    return re.findall(rf"learn {kind} user=\S+ folder=\S+ uid=\d+ \S+$", f.log("imapd"), re.M)


def test_moves_into_junk_learn_spam_and_out_of_it_ham_but_not_into_trash(host):
    spam_dir, spam = learner(host, "spam")
    ham_dir, ham = learner(host, "ham")
    # One worker: commands run in the order the moves were made.
    start(host, imapd_spam_learn_command=spam, imapd_ham_learn_command=ham, imapd_learn_processes="1")
    marker = os.path.join(host.root, "injected")
    for subject in ("one", "two", f"three $(touch {marker}) `touch {marker}`", "four"):
        deliver(host, message(subject))
    c = logged_in(host)
    c.select("INBOX")
    assert c.uid("MOVE", "1", "Junk")[0] == "OK"
    assert c.copy("1:2", "Junk")[0] == "OK"  # INBOX holds UIDs 2, 3, 4 now: "two" and "three"
    assert c.copy("3", "Archive")[0] == "OK"  # elsewhere: nothing to learn
    wait_until(lambda: len(learn_lines(host, "spam")) == 3, what="three spam lines")
    assert learned(spam_dir) == sorted(["one", "two", f"three $(touch {marker}) `touch {marker}`"])
    assert all(open(p).read() == USER + "\n" for p in glob.glob(os.path.join(spam_dir, "*.user")))
    assert not os.path.exists(marker)  # the message is data on stdin, never part of a command line
    fed = next(open(p).read() for p in glob.glob(os.path.join(spam_dir, "*.eml")) if "Subject: one\n" in open(p).read())
    stored = [open(p).read() for p in glob.glob(os.path.join(host.maildir(USER), ".Junk", "*", "*"))]
    assert fed.endswith(message("one")) and fed in stored  # the message as stored, whole

    c.select("Junk")
    assert c.uid("MOVE", "1", "Trash")[0] == "OK"  # deleting spam says nothing of it
    assert c.copy("1", "Junk")[0] == "OK"  # within Junk: nothing
    assert c.uid("MOVE", "2", "INBOX")[0] == "OK"  # a false positive: ham
    wait_until(lambda: learn_lines(host, "ham"), what="a ham line")
    assert learned(ham_dir) == ["two"]
    assert len(learn_lines(host, "spam")) == 3
    assert all(line.endswith("exit=0") for line in learn_lines(host, "spam") + learn_lines(host, "ham"))
    # The moves themselves were done whatever the commands do.
    c.select("INBOX")
    assert c.search(None, "ALL")[1][0].split() == [b"1", b"2", b"3", b"4"]
    c.logout()


def test_a_failing_or_hanging_command_is_logged_and_killed_and_the_move_stands(host):
    pidfile = os.path.join(host.root, "sleeper.pid")
    # The command starts a child that outlives the shell's own wait: the timeout must kill the group.
    start(host, imapd_spam_learn_command=f"sleep 300 & echo $! > {pidfile}; wait",
          imapd_ham_learn_command="cat > /dev/null; exit 3", imapd_learn_timeout="2s")
    deliver(host, message("slow"))
    c = logged_in(host)
    c.select("INBOX")
    assert c.uid("MOVE", "1", "Junk")[0] == "OK"
    host.wait_log("imapd", r"learn spam user=demo@example\.test folder=Junk uid=1 timeout$", timeout=15)
    pid = int(open(pidfile).read())
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or
               open(f"/proc/{pid}/stat").read().split(") ")[1].startswith("Z"), what="the sleeper killed")
    c.select("Junk")
    assert c.uid("MOVE", "1", "Archive")[0] == "OK"
    host.wait_log("imapd", r"learn ham user=demo@example\.test folder=Archive uid=1 exit=3$")
    c.select("Archive")
    assert c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1][0][1] == b"Subject: slow\r\n\r\n"
    assert c.noop()[0] == "OK"
    c.logout()


def test_no_command_no_learning(host):
    deliver(host, message("plain"))
    c = logged_in(host)
    c.select("INBOX")
    assert c.uid("MOVE", "1", "Junk")[0] == "OK"
    c.logout()
    assert "learn " not in host.log("imapd")


def test_a_big_copy_into_junk_queues_a_bounded_number_and_says_how_many_it_skipped(host):
    # One slow command: the first message runs, the rest wait, and the queue holds 256 at most.
    start(host, imapd_spam_learn_command="sleep 60", imapd_learn_processes="1", imapd_learn_timeout="2m")
    deliver(host, message("first"))
    new = os.path.join(host.maildir(USER), "new")
    for i in range(2, 301):
        with open(os.path.join(new, f"17000{i:05d}.M{i}.mx.test"), "w") as f:
            f.write(message(f"number {i}"))
    c = logged_in(host)
    assert c.select("INBOX")[1] == [b"300"]
    typ, data = c.copy("1:*", "Junk")
    assert typ == "OK", data
    host.wait_log("imapd", r"learn spam user=demo@example\.test folder=Junk: 44 messages skipped, 256 wait already$")
    assert b"(MESSAGES 300)" in c.status("Junk", "(MESSAGES)")[1][0]
    c.logout()
    # Stopping the daemon kills the command running and drops the rest: it does not wait for them.
    host.stop_one("imapd")
    assert host.procs["imapd"].returncode == 0  # a clean exit within the harness's wait, not a kill
    assert "learn spam user=demo@example.test folder=Junk uid=1 " not in host.log("imapd")

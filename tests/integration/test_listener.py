"""Every daemon's listener out of file descriptors: it backs off quietly and serves again afterwards."""
import os
import re
import resource
import socket
import time


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def open_fds(pid):
    return [int(n) for n in os.listdir(f"/proc/{pid}/fd")]


def unix_client(path):
    def connect():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(path)
        return s
    return connect


def tcp_client(port):
    def connect():
        return socket.create_connection(("127.0.0.1", port), timeout=5)
    return connect


def greets(prefix):
    def check(s):
        return s.recv(512).startswith(prefix)
    return check


def qmgr_drops_nonsense(s):
    """qmgr says nothing first; a line that is not VERSION makes it close the connection."""
    s.sendall(b"HELLO\n")
    try:
        return s.recv(512) == b""
    except ConnectionResetError:
        return True


def accept_lines(log):
    return [line for line in log.splitlines() if re.search("accept", line, re.I)]


def exhaust_and_recover(f, name, connect, served):
    pid = f.pid(name)
    fds = open_fds(pid)
    # Room for exactly `free` more descriptors: the gaps below the limit plus two.
    limit = max(fds) + 3
    free = limit - len(fds)
    log_before = len(accept_lines(f.log(name)))
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
    fillers = [connect() for _ in range(free)]
    end = time.time() + 5
    while len(open_fds(pid)) < limit and time.time() < end:
        time.sleep(0.05)
    assert len(open_fds(pid)) == limit, "the daemon did not take the filler connections"

    # Linux fails accept() with EMFILE once the table is full even with no connection waiting, so the
    # listener may have backed off already; this one waits in the backlog meanwhile.
    pending = connect()
    time.sleep(0.3)
    c0 = cpu_seconds(pid)
    time.sleep(2)
    used = cpu_seconds(pid) - c0
    assert used < 0.3, f"ferry-{name} used {used:.2f} s of CPU in 2 s with a connection it cannot accept"
    lines = accept_lines(f.log(name))[log_before:]
    assert 1 <= len(lines) <= 3, f"ferry-{name} logged {len(lines)} accept lines:\n" + "\n".join(lines[:10])
    assert "Too many open files" in lines[0]

    for s in fillers:
        s.close()
    assert served(pending), f"ferry-{name} did not serve the waiting connection after fds were freed"
    pending.close()
    f.wait_log(name, r"accept on .* works again", timeout=5)
    # And new connections as usual.
    fresh = connect()
    assert served(fresh)
    fresh.close()


def test_qmgr_backs_off_when_out_of_fds(ferry):
    ferry.start("qmgr")
    exhaust_and_recover(ferry, "qmgr", unix_client(os.path.join(ferry.keys["run_dir"], "qmgr.sock")),
                        qmgr_drops_nonsense)


def test_mda_backs_off_when_out_of_fds(ferry):
    ferry.start("mda")
    exhaust_and_recover(ferry, "mda", unix_client(os.path.join(ferry.keys["run_dir"], "lmtp.sock")),
                        greets(b"220 "))


def test_smtpd_backs_off_when_out_of_fds(ferry):
    ferry.add_domain("example.test")
    ferry.start("smtpd")
    exhaust_and_recover(ferry, "smtpd", tcp_client(ferry.port("smtp")), greets(b"220 "))


def test_popd_backs_off_when_out_of_fds(ferry):
    ferry.add_domain("example.test")
    ferry.start("popd")
    exhaust_and_recover(ferry, "popd", tcp_client(ferry.port("pop3")), greets(b"+OK"))

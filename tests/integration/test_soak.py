"""bench/soak.py in small: it starts the daemons itself, kills and restarts them, and counts the Maildir
(sending stops after the last kill, so --messages is only a bound)."""
import os
import re
import subprocess
import sys

from ferry_harness import BUILD, REPO


def test_soak_kills_restarts_and_counts_every_accepted_message():
    p = subprocess.run([sys.executable, os.path.join(REPO, "bench", "soak.py"), "--kills", "12", "--messages", "100000",
                        "--sessions", "4", "--max-seconds", "60", "--kill-every", "0.05"],
                       env=dict(os.environ, FERRY_BUILD=BUILD), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.search(r"soak: (\d+) sent, (\d+) accepted in \d+s by 4 sessions; (\d+) kills \(smtpd (\d+), qmgr (\d+), mda (\d+)\)",
                  p.stdout)
    assert m, p.stdout
    sent, accepted, kills = int(m.group(1)), int(m.group(2)), int(m.group(3))
    assert kills == 12 and kills == sum(int(m.group(i)) for i in (4, 5, 6))
    assert 0 < accepted == sent
    c = re.search(r"soak: (\d+) lost, (\d+) once, (\d+) twice, (\d+) more than twice", p.stdout)
    assert c, p.stdout
    lost, once, twice, more = map(int, c.groups())
    assert lost == 0
    assert once + twice + more == accepted  # every accepted message found by its token

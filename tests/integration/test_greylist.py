"""Greylisting in ferry-smtpd with the real daemons: a first attempt gets 451 4.7.1, an early retry
too, a retry after greylist_delay is taken and delivered and the triplet passes at once from then on;
the state survives a restart; a domain with greylisting off, a client in greylist_networks, a message
that passes DMARC (SPF aligned, published by a real dnsmasq) and a client on a DNS allow list are
not greylisted."""
import os
import re
import smtplib
import time

import pytest

from ferry_harness import dnsmasq

DEMO = "demo@example.test"
QUIET = "carol@quiet.test"
DELAY = 3


def attempt(f, sender, rcpts, token, from_header=None):
    """One SMTP transaction; returns (code, text) of the reply to DATA (250 when taken)."""
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), local_hostname="client.test", timeout=30) as s:
        try:
            s.sendmail(sender, rcpts, f"From: {from_header or sender}\r\nSubject: {token}\r\n\r\n{token}\r\n")
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()
    return 250, ""


def deferred_for(reply):
    """The wait a 451 4.7.1 greylisting reply names."""
    code, text = reply
    assert code == 451, reply
    m = re.fullmatch(r"4\.7\.1 Greylisted, try again in (\d+) seconds", text)
    assert m, text
    return int(m.group(1))


def holds(f, address, token):
    return any(token in open(p, errors="replace").read() for p in f.mail(address))


@pytest.fixture
def grey(host):
    """host with greylisting on for every domain, a delay of DELAY seconds; nothing started."""
    host.set(greylist="yes", greylist_delay=f"{DELAY}s", greylist_retry_window="1h", greylist_expire="1d")
    return host


def test_first_attempt_deferred_early_retry_deferred_retry_after_delay_delivered_then_known(grey):
    grey.start("mda", "qmgr", "smtpd")
    first = attempt(grey, "alice@sender.test", [DEMO], "grey-1")
    seen = time.time()
    assert deferred_for(first) == DELAY
    early = deferred_for(attempt(grey, "alice@sender.test", [DEMO], "grey-1"))
    assert 1 <= early <= DELAY
    log = grey.log("smtpd")
    assert re.search(r"^.*: S\w+: [0-9A-F]{16}: greylist: deferred \[127\.0\.0\.0/24\] from=<alice@sender\.test> "
                     r"to=<demo@example\.test>: first seen, retry in 3s$", log, re.M), log
    assert re.search(r": [0-9A-F]{16}: greylist: deferred .*: retry too early, retry in [123]s$", log, re.M), log
    assert re.search(r": [0-9A-F]{16}: refused by greylist: from=<alice@sender\.test> .*Greylisted", log, re.M)
    assert grey.mail(DEMO) == [] and grey.spool_ids("queue") == []
    # The server counts whole seconds from the first attempt: one more than it asked for is surely past.
    time.sleep(max(0.0, seen + DELAY + 1 - time.time()))
    assert attempt(grey, "alice@sender.test", [DEMO], "grey-1") == (250, "")
    grey.wait_mail(DEMO, 1)
    assert holds(grey, DEMO, "grey-1")
    assert re.search(r": [0-9A-F]{16}: greylist: passed \[127\.0\.0\.0/24\] from=<alice@sender\.test> "
                     r"to=<demo@example\.test>: retry after [3-9]s$", grey.log("smtpd"), re.M)
    # The same triplet passes at once from now on; another sender is still new.
    assert attempt(grey, "ALICE@sender.test", [DEMO], "grey-2") == (250, "")
    grey.wait_mail(DEMO, 2)
    assert re.search(r"greylist: passed .* from=<ALICE@sender\.test> to=<demo@example\.test>: known$",
                     grey.log("smtpd"), re.M)
    assert deferred_for(attempt(grey, "bob@sender.test", [DEMO], "grey-3")) == DELAY


def test_the_state_survives_a_restart(grey):
    grey.start("mda", "qmgr", "smtpd")
    deferred_for(attempt(grey, "dora@sender.test", [DEMO], "restart-1"))
    seen = time.time()
    grey.restart("smtpd")
    # The first attempt is still known after the restart: too early, not "first seen" again.
    assert deferred_for(attempt(grey, "dora@sender.test", [DEMO], "restart-1")) <= DELAY
    assert re.search(r"greylist: deferred .* from=<dora@sender\.test> .*: retry too early", grey.log("smtpd"))
    time.sleep(max(0.0, seen + DELAY + 1 - time.time()))
    assert attempt(grey, "dora@sender.test", [DEMO], "restart-1") == (250, "")
    grey.restart("smtpd")
    assert attempt(grey, "dora@sender.test", [DEMO], "restart-2") == (250, "")
    grey.wait_mail(DEMO, 2)
    assert re.search(r"greylist: passed .* from=<dora@sender\.test> .*: known$", grey.log("smtpd"), re.M)
    assert os.path.exists(os.path.join(grey.keys["state_dir"], "greylist", "greylist.db"))


def test_domain_map_turns_greylisting_on_and_off(host):
    host.add_domain("quiet.test")
    host.add_account(QUIET, "carol-secret")
    gmap = os.path.join(host.root, "greylist_map")
    with open(gmap, "w") as fp:
        fp.write("# greylisted here\nexample.test yes\nquiet.test no\n")
    host.set(greylist="no", greylist_map=gmap, greylist_delay="1h")
    host.start("mda", "qmgr", "smtpd")
    assert attempt(host, "eve@sender.test", [QUIET], "quiet-1") == (250, "")
    host.wait_mail(QUIET, 1)
    assert deferred_for(attempt(host, "eve@sender.test", [DEMO], "map-1")) == 3600
    # One DATA has one answer: a greylisted recipient among others defers the whole message.
    assert deferred_for(attempt(host, "eve@sender.test", [QUIET, DEMO], "map-2")) <= 3600
    assert not holds(host, QUIET, "map-2")
    log = host.log("smtpd")
    assert re.search(r"greylist: deferred .* to=<demo@example\.test>: first seen", log)
    assert not re.search(r"greylist: .*to=<carol@quiet\.test>", log), log


def test_greylisting_is_off_by_default(host):
    host.start("mda", "qmgr", "smtpd")
    assert attempt(host, "eve@sender.test", [DEMO], "default-1") == (250, "")
    host.wait_mail(DEMO, 1)
    assert ": greylist: " not in host.log("smtpd")
    assert not os.path.exists(os.path.join(host.keys["state_dir"], "greylist", "greylist.db"))


def test_clients_in_greylist_networks_and_logged_in_users_pass(grey):
    grey.set(greylist_networks="10.0.0.0/8, 127.0.0.0/8")
    grey.start("mda", "qmgr", "smtpd")
    assert attempt(grey, "eve@sender.test", [DEMO], "net-1") == (250, "")
    assert re.search(r"greylist: passed \[127\.0\.0\.1\] from=<eve@sender\.test>: client in greylist_networks",
                     grey.log("smtpd"))
    grey.set(greylist_networks="10.0.0.0/8")
    grey.restart("smtpd")
    with smtplib.SMTP("127.0.0.1", grey.port("smtp"), timeout=30) as s:
        s.login(DEMO, "demo-secret")
        s.sendmail(DEMO, [DEMO], "From: demo@example.test\r\nSubject: own-1\r\n\r\nown-1\r\n")
    grey.wait_mail(DEMO, 2)
    assert deferred_for(attempt(grey, "eve@sender.test", [DEMO], "net-2")) == DELAY


ZONE = "".join([
    # SPF pass for 127.0.0.1 and a DMARC record: mail From: this domain passes DMARC through SPF alone.
    'txt-record=aligned.test,"v=spf1 ip4:127.0.0.0/8 -all"\n',
    'txt-record=_dmarc.aligned.test,"v=DMARC1; p=none"\n',
    # SPF pass but no DMARC record: dmarc=none, no reason to skip greylisting.
    'txt-record=nopolicy.test,"v=spf1 ip4:127.0.0.0/8 -all"\n',
    # 127.0.0.1 on an allow list.
    "host-record=1.0.0.127.wl.test,127.0.0.9\n",
])


@pytest.fixture(scope="module")
def dns():
    with dnsmasq(ZONE) as server:
        yield server


def test_a_message_that_passes_dmarc_is_not_greylisted(grey, dns):
    ip, port = dns
    grey.set(dns_servers=f"{ip}:{port}", dns_timeout="2s", smtpd_spf_policy="record", smtpd_spf_timeout="5s",
             smtpd_dkim_verify="yes", smtpd_dmarc="record", smtpd_dkim_timeout="5s")
    grey.start("mda", "qmgr", "smtpd")
    assert attempt(grey, "news@aligned.test", [DEMO], "dmarc-1") == (250, "")
    grey.wait_mail(DEMO, 1)
    text = open(grey.mail(DEMO)[0]).read()
    assert "dmarc=pass" in text
    assert re.search(r": [0-9A-F]{16}: greylist: passed \[127\.0\.0\.1\] from=<news@aligned\.test>: dmarc=pass$",
                     grey.log("smtpd"), re.M)
    # SPF passes for this one too, but without a DMARC record nothing vouches for the From: domain;
    # and a From: that SPF's domain does not align with fails DMARC: both are greylisted.
    assert deferred_for(attempt(grey, "news@nopolicy.test", [DEMO], "dmarc-2")) == DELAY
    assert deferred_for(attempt(grey, "news@nopolicy.test", [DEMO], "dmarc-3", from_header="x@aligned.test")) <= DELAY


def test_a_client_on_a_dns_allow_list_is_not_greylisted(grey, dns):
    ip, port = dns
    grey.set(dns_servers=f"{ip}:{port}", dns_timeout="2s", spam_filter="yes", spam_dnsbl_zones="wl.test:-2")
    grey.start("mda", "qmgr", "smtpd")
    assert attempt(grey, "eve@sender.test", [DEMO], "dnswl-1") == (250, "")
    grey.wait_mail(DEMO, 1)
    assert re.search(r"greylist: passed \[127\.0\.0\.1\] from=<eve@sender\.test>: DNSWL_wl\.test$",
                     grey.log("smtpd"), re.M)
    grey.set(spam_dnsbl_zones="")
    grey.restart("smtpd")
    assert deferred_for(attempt(grey, "eve@sender.test", [DEMO], "dnswl-2")) == DELAY


def test_a_bad_greylist_map_stops_the_start(host):
    gmap = os.path.join(host.root, "greylist_map")
    with open(gmap, "w") as fp:
        fp.write("example.test yes\nquiet.test perhaps\n")
    host.set(greylist_map=gmap)
    with pytest.raises(RuntimeError) as e:
        host.start("smtpd")
    assert "greylist_map" in str(e.value) and "line 2" in str(e.value)

"""DKIM: ferry-admin's keys and records, ferry-relay signing mail on its way out (SMTP submission and
ferry-sendmail), and ferry-smtpd verifying it on another ferry with the key published by a real dnsmasq."""
import os
import re
import shutil
import smtplib
import stat
import subprocess

import pytest

from ferry_harness import Ferry, binary, loopback_host, start_dnsmasq, wait_port

DEMO = "demo@example.test"
BOB = "bob@remote.test"


def record_value(output):
    """The TXT value printed by `dkim generate|show`: its quoted strings joined."""
    return "".join(re.findall(r'"([^"]*)"', output))


def test_generate_prints_the_record_and_keeps_the_key(host):
    p = host.admin("dkim", "generate", "prot.test", "bar")
    assert p.returncode == 0
    assert "v=DKIM1" in p.stdout and "p=" in p.stdout
    assert p.stdout.count("bar._domainkey.prot.test. IN TXT (") == 1
    assert all(len(s) <= 255 for s in re.findall(r'"([^"]*)"', p.stdout))
    value = record_value(p.stdout)
    assert value.startswith("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA")  # RSA 2048 SPKI
    key = os.path.join(host.keys["state_dir"], "dkim", "prot.test", "bar.key")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o640
    assert open(key).read().startswith("-----BEGIN PRIVATE KEY-----")
    # An existing selector is kept unless --force.
    again = host.admin("dkim", "generate", "prot.test", "bar", check=False)
    assert again.returncode == 1 and "exists" in again.stderr
    assert record_value(host.admin("dkim", "show", "prot.test").stdout) == value
    forced = host.admin("dkim", "generate", "prot.test", "bar", "--force")
    assert record_value(forced.stdout) != value
    # A second selector waits for activate; dns prints the active one.
    ed = host.admin("dkim", "generate", "prot.test", "ed", "--ed25519")
    assert "not active yet" in ed.stdout and "k=ed25519; p=" in ed.stdout
    assert host.admin("dkim", "list").stdout.splitlines() == ["prot.test bar rsa active", "prot.test ed ed25519"]
    assert "bar._domainkey.prot.test." in host.admin("dns", "prot.test").stdout
    host.admin("dkim", "activate", "prot.test", "ed")
    dns = host.admin("dns", "prot.test").stdout
    assert "ed._domainkey.prot.test." in dns and "k=ed25519" in dns
    assert host.admin("dkim", "generate", "prot.test", "bad_selector!", check=False).returncode == 1


def zone_line(name, value):
    parts = ",".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))
    return f"txt-record={name},{parts}\n"


@pytest.fixture
def world(host):
    """The sending ferry (example.test with a DKIM key per test), a receiving ferry for remote.test
    that verifies DKIM with a dnsmasq publishing the key; returns (host, receiver, publish)."""
    made = {}

    def publish(selector, *flags, dmarc="", **keys):
        out = host.admin("dkim", "generate", "example.test", selector, *flags).stdout
        zone = zone_line(f"{selector}._domainkey.example.test", record_value(out))
        if dmarc:
            zone += zone_line("_dmarc.example.test", dmarc)
        p, ip, port, d = start_dnsmasq(zone)
        made["dns"] = (p, d)
        receiver = Ferry()
        made["receiver"] = receiver
        receiver.addr = loopback_host()
        receiver.set(hostname="mx.remote.test", smtpd_listen=f"{receiver.addr}:25", smtpd_dkim_verify="yes",
                     dns_servers=f"{ip}:{port}", dns_timeout="2s", smtpd_dkim_timeout="5s", **keys)
        receiver.add_domain("remote.test")
        receiver.add_account(BOB, "bob-secret")
        receiver.start("mda", "qmgr", "smtpd")
        wait_port(receiver.addr)
        transport = os.path.join(host.root, "transport")
        with open(transport, "w") as fp:
            fp.write(f"remote.test  [{receiver.addr}]:25\n")
        host.set(relay_transport_map=transport, relay_connect_timeout="3s", relay_greeting_timeout="5s",
                 relay_mail_timeout="5s", relay_rcpt_timeout="5s", relay_data_timeout="5s",
                 relay_data_block_timeout="5s", relay_data_done_timeout="10s")
        host.start("mda", "relay", "qmgr", "smtpd")
        return receiver
    yield publish
    if "receiver" in made:
        made["receiver"].cleanup()
    if "dns" in made:
        p, d = made["dns"]
        p.terminate()
        p.wait(5)
        shutil.rmtree(d, ignore_errors=True)


def submit(f, msg):
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=30) as s:
        s.login(DEMO, "demo-secret")
        s.sendmail(DEMO, [BOB], msg.replace("\n", "\r\n").encode())


def header_of(text):
    return text.split("\n\n", 1)[0].replace("\n\t", " ").replace("\n ", " ").splitlines()


def dkim_results(text):
    return [h for h in header_of(text) if h.startswith("Authentication-Results: mx.remote.test;") and "dkim=" in h]


MESSAGE = "From: Demo <demo@example.test>\nTo: bob@remote.test\nSubject: signed\n\nHello  Bob,\n\nsee you.\n"


@pytest.mark.parametrize("flags", [(), ("--ed25519",)], ids=["rsa", "ed25519"])
def test_submitted_mail_is_signed_and_verifies_at_the_receiver(host, world, flags):
    receiver = world("s1", *flags)
    submit(host, MESSAGE)
    [path] = receiver.wait_mail(BOB, 1, timeout=30)
    got = open(path).read()
    assert dkim_results(got) == [
        "Authentication-Results: mx.remote.test; dkim=pass header.d=example.test header.s=s1 header.b="
        + re.search(r"\bb=([A-Za-z0-9+/]{8})", got.split("DKIM-Signature:", 1)[1]).group(1)
        + "; dmarc=none header.from=example.test"]  # no _dmarc record published
    assert re.search(r"dkim: signed d=example\.test s=s1", host.log("relay"))


def test_sendmail_mail_is_signed_too(host, world):
    receiver = world("s2")
    p = subprocess.run([binary("sendmail"), "-C", host.conf, "-t"], input=MESSAGE, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    [path] = receiver.wait_mail(BOB, 1, timeout=30)
    [result] = dkim_results(open(path).read())
    assert "dkim=pass header.d=example.test header.s=s2" in result


def test_changed_body_or_header_fails(host, world):
    receiver = world("s3")
    submit(host, MESSAGE)
    [path] = receiver.wait_mail(BOB, 1, timeout=30)
    signed = open(path).read()
    # The message as the sender's relay sent it: from its DKIM-Signature on.
    sent = signed[signed.index("DKIM-Signature:"):]
    tampered_body = sent.replace("see you.", "see you never.")
    tampered_header = sent.replace("Subject: signed", "Subject: changed")
    with smtplib.SMTP(receiver.addr, 25, timeout=30) as s:
        s.sendmail("x@other.test", [BOB], tampered_body.replace("\n", "\r\n").encode())
        s.sendmail("x@other.test", [BOB], tampered_header.replace("\n", "\r\n").encode())
        s.sendmail("x@other.test", [BOB], "From: x@other.test\r\nSubject: plain\r\n\r\nunsigned\r\n")
    paths = receiver.wait_mail(BOB, 4, timeout=30)
    texts = [open(p).read() for p in paths]
    body_changed = next(t for t in texts if "see you never." in t)
    header_changed = next(t for t in texts if "Subject: changed" in t)
    unsigned = next(t for t in texts if "unsigned" in t)
    assert "dkim=fail (body hash mismatch) header.d=example.test header.s=s3" in dkim_results(body_changed)[0]
    assert "dkim=fail (signature does not verify) header.d=example.test" in dkim_results(header_changed)[0]
    assert dkim_results(unsigned)[0].startswith("Authentication-Results: mx.remote.test; dkim=none")


def test_dmarc_pass_fail_and_reject(host, world):
    receiver = world("s4", dmarc="v=DMARC1; p=reject", smtpd_dmarc="reject")
    submit(host, MESSAGE)
    [path] = receiver.wait_mail(BOB, 1, timeout=30)
    signed = open(path).read()
    [result] = dkim_results(signed)
    assert result.endswith("; dmarc=pass (p=reject) header.from=example.test"), result
    sent = signed[signed.index("DKIM-Signature:"):]
    with smtplib.SMTP(receiver.addr, 25, timeout=30) as s:
        # A changed body: DKIM fails, SPF is not checked here, so DMARC fails and p=reject refuses it.
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("x@other.test", [BOB], sent.replace("see you.", "pay me.").replace("\n", "\r\n").encode())
        assert e.value.smtp_code == 550 and b"5.7.1" in e.value.smtp_error and b"DMARC" in e.value.smtp_error
        # A domain without a record: dmarc=none, taken.
        s.sendmail("x@other.test", [BOB], "From: x@other.test\r\nSubject: plain\r\n\r\nno policy\r\n")
    [_, path2] = receiver.wait_mail(BOB, 2, timeout=30)
    texts = [open(p).read() for p in receiver.mail(BOB)]
    plain = next(t for t in texts if "no policy" in t)
    assert dkim_results(plain) == ["Authentication-Results: mx.remote.test; dkim=none; dmarc=none header.from=other.test"]
    assert not any("pay me." in t for t in texts)

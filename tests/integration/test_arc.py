"""ARC: ferry-smtpd verifies the ARC chain (RFC 8617) of a message sent to it, with the sealer's key
published by a real dnsmasq; the chain is sealed here with an RSA key made by openssl."""
import base64
import hashlib
import re
import shutil
import smtplib
import subprocess

import pytest

from ferry_harness import Ferry, loopback_host, start_dnsmasq, wait_port

BOB = "bob@remote.test"
MESSAGE = ("From: Ann <ann@origin.test>\nTo: list@forwarder.test\nSubject: via the list\n\n"
           "Hello  list,  \n\nsee you.\n\n\n")


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


def relaxed_field(field):
    """RFC 6376 3.4.2 for a one-line field: lower-case name, whitespace runs made one space, CRLF."""
    name, value = field.split(":", 1)
    return name.strip().lower() + ":" + re.sub(r"[ \t]+", " ", value).strip() + "\r\n"


def relaxed_body(body):
    lines = [re.sub(r"[ \t]+", " ", line).rstrip(" ") for line in body.split("\n")]
    while lines and lines[-1] == "":
        lines.pop()
    return "".join(line + "\r\n" for line in lines)


def seal(message, key, instance=1, cv="none"):
    """`message` with ARC set `instance` on top: AAR, an AMS over From, To, Subject and the body,
    and an AS over the ARC fields of this set (only instance 1 is made here)."""
    assert instance == 1
    header, body = message.split("\n\n", 1)
    fields = header.split("\n")
    sign = lambda data: base64.b64encode(openssl("dgst", "-sha256", "-sign", key, data=data.encode())).decode()
    aar = f"ARC-Authentication-Results: i=1; mx.forwarder.test; spf=pass smtp.mailfrom=origin.test"
    bh = base64.b64encode(hashlib.sha256(relaxed_body(body).encode()).digest()).decode()
    ams = ("ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=forwarder.test; s=arc1;"
           f" t=1700000000; h=from:to:subject; bh={bh}; b=")
    signed = "".join(relaxed_field(next(f for f in fields if f.lower().startswith(n + ":")))
                     for n in ("from", "to", "subject"))
    ams += sign(signed + relaxed_field(ams)[:-2])
    seal_field = f"ARC-Seal: i=1; a=rsa-sha256; cv={cv}; d=forwarder.test; s=arc1; t=1700000000; b="
    seal_field += sign(relaxed_field(aar) + relaxed_field(ams) + relaxed_field(seal_field)[:-2])
    return "\n".join([seal_field, ams, aar, message])


@pytest.fixture
def receiver(tmp_path):
    """A ferry for remote.test that verifies DKIM and ARC, the sealer's key published by dnsmasq;
    returns (receiver, key file)."""
    key = str(tmp_path / "arc.pem")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key)
    public = base64.b64encode(openssl("pkey", "-in", key, "-pubout", "-outform", "DER")).decode()
    value = f"v=DKIM1; k=rsa; p={public}"
    parts = ",".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))
    p, ip, port, d = start_dnsmasq(f"txt-record=arc1._domainkey.forwarder.test,{parts}\n")
    f = Ferry()
    try:
        f.addr = loopback_host()
        f.set(hostname="mx.remote.test", smtpd_listen=f"{f.addr}:25", smtpd_dkim_verify="yes",
              dns_servers=f"{ip}:{port}", dns_timeout="2s", smtpd_dkim_timeout="5s", smtpd_dmarc="off")
        f.add_domain("remote.test")
        f.add_account(BOB, "bob-secret")
        f.start("mda", "qmgr", "smtpd")
        wait_port(f.addr)
        yield f, key
    finally:
        f.cleanup()
        p.terminate()
        p.wait(5)
        shutil.rmtree(d, ignore_errors=True)


def results_field(text):
    header = text.split("\n\n", 1)[0].replace("\n\t", " ").replace("\n ", " ").splitlines()
    [field] = [h for h in header if h.startswith("Authentication-Results: mx.remote.test;")]
    return field


def send(f, *messages):
    with smtplib.SMTP(f.addr, 25, timeout=30) as s:
        for m in messages:
            s.sendmail("list@forwarder.test", [BOB], m.replace("\n", "\r\n").encode())
    paths = f.wait_mail(BOB, len(messages), timeout=30)
    return [open(p).read() for p in paths]


def test_a_sealed_message_passes_and_a_changed_one_fails(receiver):
    f, key = receiver
    sealed = seal(MESSAGE, key)
    changed = sealed.replace("see you.", "see you never.")
    texts = send(f, sealed, changed, MESSAGE)
    passed = results_field(next(t for t in texts if "see you.\n" in t and "ARC-Seal" in t))
    failed = results_field(next(t for t in texts if "see you never." in t))
    plain = results_field(next(t for t in texts if "ARC-Seal" not in t))
    assert re.search(r"; arc=pass \(i=1 d=forwarder\.test\) smtp\.remote-ip=127\.", passed), passed
    assert "dkim=none" in passed
    assert re.search(r"; arc=fail \(i=1 d=forwarder\.test: body hash mismatch\) smtp\.remote-ip=127\.", failed), failed
    assert "arc=" not in plain


def test_a_broken_seal_or_cv_fail_fails(receiver):
    f, key = receiver
    sealed = seal(MESSAGE, key)
    broken = sealed.replace("spf=pass smtp.mailfrom", "spf=fail smtp.mailfrom")
    cv_fail = seal(MESSAGE.replace("see you.", "cv fail."), key, cv="fail")
    texts = send(f, broken, cv_fail)
    assert "arc=fail (i=1 d=forwarder.test: ARC-Seal 1: " in results_field(next(t for t in texts if "spf=fail" in t))
    assert "arc=fail (i=1 d=forwarder.test: the newest seal says cv=fail)" in results_field(
        next(t for t in texts if "cv fail." in t))


def test_arc_verify_off(receiver):
    f, key = receiver
    f.set(smtpd_arc_verify="no")
    f.restart("smtpd")
    wait_port(f.addr)
    [text] = send(f, seal(MESSAGE, key))
    assert "arc=" not in results_field(text)

"""ferry-relay to a second ferry: a real ferry-smtpd on its own loopback host, plain and over STARTTLS."""
import os
import re
import smtplib
import time

import pytest

from ferry_harness import Ferry, loopback_host, wait_port, wait_until

DEMO = "demo@example.test"
BOB = "bob@remote.test"


@pytest.fixture
def receiver():
    """A second ferry hosting remote.test, its smtpd on <random 127.x.y.z>:25."""
    f = Ferry()
    addr = loopback_host()
    f.addr = addr
    f.set(hostname="mx.remote.test", smtpd_listen=f"{addr}:25")
    f.add_domain("remote.test")
    f.add_account(BOB, "bob-secret")
    yield f
    f.cleanup()


def start_sender(host, receiver, **keys):
    transport = os.path.join(host.root, "transport")
    with open(transport, "w") as fp:
        fp.write(f"remote.test  [{receiver.addr}]:25\n")
    host.set(relay_transport_map=transport, relay_connect_timeout="3s", relay_greeting_timeout="5s",
             relay_mail_timeout="5s", relay_rcpt_timeout="5s", relay_data_timeout="5s",
             relay_data_block_timeout="5s", relay_data_done_timeout="10s", **keys)
    host.start("mda", "relay", "qmgr", "smtpd")


def submit(f, rcpts, msg):
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=30) as s:
        s.login(DEMO, "demo-secret")
        s.sendmail(DEMO, rcpts, msg.replace("\n", "\r\n").encode())


def test_delivered_into_the_other_ferrys_maildir(host, receiver):
    receiver.start("mda", "qmgr", "smtpd")
    wait_port(receiver.addr)
    start_sender(host, receiver)
    body = "Subject: across\nX-Check: one\n\nline\n.dot\nend\n"
    submit(host, [BOB], body)
    [path] = receiver.wait_mail(BOB, 1, timeout=30)
    got = open(path).read()
    # ferry-mda's Return-Path: and Delivered-To:, the receiver's Received: on top of the sender's,
    # then the message as it was submitted.
    assert got.startswith("Return-Path: <demo@example.test>\nDelivered-To: bob@remote.test\nReceived: from mx.test ")
    assert got.endswith(body)
    assert got.count("Received: ") == 2
    host.wait_log("qmgr", r"to=<bob@remote\.test> .*status=sent")
    wait_until(lambda: host.spool_ids("queue") == [], what="sender queue empty")


def test_starttls_to_the_other_ferry(host, receiver):
    receiver.tls()
    receiver.start("mda", "qmgr", "smtpd")
    wait_port(receiver.addr)
    start_sender(host, receiver, relay_tls_policy="encrypt")
    submit(host, [BOB], "Subject: secret\n\nover TLS\n")
    [path] = receiver.wait_mail(BOB, 1, timeout=30)
    got = open(path).read()
    # The receiving smtpd names the protocol in its Received: header (RFC 3848: ESMTPS over TLS).
    first = got.split("Received: ", 2)[1]
    assert "ESMTPS" in first or "ESMTPSA" in first, first
    assert re.search(r"connected to host .* with TLS", host.log("relay"))


def test_verify_with_an_untrusted_certificate_is_deferred_and_never_sent(host, receiver):
    receiver.tls()
    receiver.start("mda", "qmgr", "smtpd")
    wait_port(receiver.addr)
    policy = os.path.join(host.root, "tls_policy")
    with open(policy, "w") as fp:
        fp.write("# remote.test must show a trusted certificate for its own name\nremote.test  verify\n")
    start_sender(host, receiver, relay_tls_policy_map=policy)
    submit(host, [BOB], "Subject: verify\n\nnot to an impostor\n")
    host.wait_log("qmgr", r"to=<bob@remote\.test> .*status=deferred .*4\.7\.5", timeout=30)
    time.sleep(0.5)
    assert receiver.mail(BOB) == []
    assert "from=<demo@example.test>" not in receiver.log("qmgr")


def test_postfix_smtpd_takes_mail_over_starttls(host):
    from ferry_harness import PostfixServer
    pf = PostfixServer("remote.test")
    try:
        start_sender(host, pf, relay_tls_policy="encrypt")
        # A complete header: Postfix adds none of its own, so the message arrives exactly as sent.
        body = ("From: demo@example.test\nDate: Fri, 27 Nov 2026 10:00:00 +0000\nMessage-ID: <pf-1@mx.test>\n"
                "Subject: to postfix\n\nfirst line\n.dot line\nlast\n")
        submit(host, [BOB], body)
        wait_until(lambda: pf.held(), timeout=30, what="message held by Postfix")
        got = pf.held()[0].decode()
        top = got.split("Received: ", 2)[1]
        assert "by mx.postfix.test (Postfix) with ESMTPS id" in top, top
        assert got.endswith(body), repr(got)
        assert re.search(r"TLS connection established from \S+\[127\.0\.0\.1\]", pf.log())
        host.wait_log("qmgr", r"to=<bob@remote\.test> .*status=sent")
    finally:
        pf.stop()


UTF8_BOB = "j\u00f6rg@remote.test"


def test_smtputf8_to_a_utf8_account_at_the_other_ferry(host, receiver):
    receiver.admin("account", "add", UTF8_BOB, "--utf8", input="pw-secret\n")
    receiver.start("mda", "qmgr", "smtpd")
    wait_port(receiver.addr)
    start_sender(host, receiver)
    msg = f"From: <{DEMO}>\r\nTo: <{UTF8_BOB}>\r\nSubject: gr\u00fc\u00dfe\r\n\r\nGr\u00fc\u00dfe\r\n".encode()
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as s:
        s.login(DEMO, "demo-secret")
        assert s.sendmail(DEMO, [UTF8_BOB], msg, mail_options=["SMTPUTF8"]) == {}
    [path] = receiver.wait_mail(UTF8_BOB, 1, timeout=30)
    got = open(path, "rb").read()
    assert got.endswith(msg.replace(b"\r\n", b"\n"))
    # The receiving smtpd took it with SMTPUTF8 (RFC 6531 4.3: "with UTF8SMTP" in its Received:).
    top = got.split(b"Received: ", 2)[1]
    assert b"with UTF8SMTP" in top, top
    host.wait_log("qmgr", r"status=sent")


def test_the_other_ferry_reports_the_delivery_with_the_senders_dsn_parameters(host, receiver):
    import email
    import email.policy
    import uuid
    start_sender(host, receiver)
    # The receiver sends its report back to example.test, at the sender's smtpd.
    back = os.path.join(receiver.root, "transport")
    with open(back, "w") as fp:
        fp.write(f"example.test  [127.0.0.1]:{host.port('smtp')}\n")
    receiver.set(relay_transport_map=back)
    receiver.start("mda", "relay", "qmgr", "smtpd")
    wait_port(receiver.addr)
    tok = uuid.uuid4().hex
    msg = f"From: <{DEMO}>\r\nSubject: dsn {tok}\r\nX-Token: {tok}\r\n\r\nbody\r\n".encode()
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as s:
        s.login(DEMO, "demo-secret")
        assert s.sendmail(DEMO, [BOB], msg, mail_options=[f"ENVID=e+2B{tok}"],
                          rcpt_options=["NOTIFY=SUCCESS", "ORCPT=rfc822;Robert@Remote.test"]) == {}
    receiver.wait_mail(BOB, 1, timeout=30)
    [path] = host.wait_mail(DEMO, 1, timeout=60)
    with open(path, "rb") as fp:
        report = email.message_from_binary_file(fp, policy=email.policy.compat32)
    assert report.get_content_type() == "multipart/report"
    blocks = report.get_payload()[1].get_payload()
    assert blocks[0]["Reporting-MTA"] == "dns; mx.remote.test"
    assert blocks[0]["Original-Envelope-Id"] == "e+" + tok
    [r] = blocks[1:]
    assert r["Action"] == "delivered"
    assert r["Original-Recipient"] == "rfc822; Robert@Remote.test"
    # The sending ferry leaves the report to the receiver, which offers DSN.
    assert "notification" not in host.log("qmgr")

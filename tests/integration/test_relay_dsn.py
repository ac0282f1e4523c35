"""ferry-relay passes DSN (RFC 3461) and SMTPUTF8 (RFC 6531) on, and sends to address literals."""
import email
import email.policy
import re
import smtplib
import time
import uuid

from ferry_harness import smtp_dialogue, wait_until
from test_relay import DEMO, peers, route_to, sender  # noqa: F401 (fixtures)

DSN_EHLO = ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "DSN")
PLAIN_EHLO = ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES")


def send(f, rcpts, tok, mail_options=(), rcpt_options=(), headers=""):
    msg = f"From: <{DEMO}>\r\nSubject: dsn {tok}\r\nX-Token: {tok}\r\n{headers}\r\nbody {tok}\r\n"
    with smtplib.SMTP("127.0.0.1", f.port("smtp"), timeout=30) as s:
        s.login(DEMO, "demo-secret")
        assert s.sendmail(DEMO, rcpts, msg.encode(), mail_options=list(mail_options),
                          rcpt_options=list(rcpt_options)) == {}


def lines(peer, verb):
    return [line for line in peer.log if line.upper().startswith(verb)]


def reports(f):
    out = []
    for path in f.mail(DEMO):
        with open(path, "rb") as fp:
            msg = email.message_from_binary_file(fp, policy=email.policy.compat32)
        if msg.get_content_type() == "multipart/report":
            out.append(msg)
    return out


def one_report(f, what):
    wait_until(lambda: reports(f), timeout=30, what=what)
    [msg] = reports(f)
    parts = msg.get_payload()
    blocks = parts[1].get_payload()
    return msg, blocks[0], blocks[1:], parts[2]


def field(block, name):
    """A header field's value as one line (a field with UTF-8 in it comes back as a Header)."""
    return " ".join(str(block[name]).split())


def settled(f):
    wait_until(lambda: f.spool_ids("queue") == [], timeout=30, what="queue empty")


def test_dsn_parameters_reach_a_peer_that_offers_dsn(sender, peers):
    peer = peers(smtp_dialogue(ehlo=DSN_EHLO))
    domain = route_to(sender, peer.addr)
    tok = uuid.uuid4().hex
    send(sender, [f"bob@{domain}"], tok, mail_options=["RET=HDRS", f"ENVID=env+2B{tok}"],
         rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Bob+2B1@Orig.test"])
    wait_until(lambda: getattr(peer, "messages", []), timeout=30, what="message at the peer")
    [mail] = lines(peer, "MAIL")
    assert " RET=HDRS" in mail and f" ENVID=env+2B{tok}" in mail, mail
    [rcpt] = lines(peer, "RCPT")
    assert rcpt == f"RCPT TO:<bob@{domain}> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob+2B1@Orig.test"
    sender.wait_log("qmgr", rf"to=<bob@{re.escape(domain)}> .*status=sent")
    settled(sender)
    # The peer offers DSN: the success report is its to send, not ours.
    assert reports(sender) == []
    assert "notification" not in sender.log("qmgr")


def test_no_orcpt_is_made_up_and_nothing_is_passed_without_notify(sender, peers):
    peer = peers(smtp_dialogue(ehlo=DSN_EHLO))
    domain = route_to(sender, peer.addr)
    send(sender, [f"plain@{domain}"], "plain")
    wait_until(lambda: getattr(peer, "messages", []), timeout=30, what="message at the peer")
    assert lines(peer, "RCPT") == [f"RCPT TO:<plain@{domain}>"]
    assert "RET=" not in lines(peer, "MAIL")[0] and "ENVID=" not in lines(peer, "MAIL")[0]


def test_notify_success_to_a_peer_without_dsn_gives_a_relayed_report(sender, peers):
    peer = peers(smtp_dialogue(ehlo=PLAIN_EHLO, data_reply=lambda n: "250 2.0.0 Ok: queued as R1"))
    domain = route_to(sender, peer.addr)
    tok = uuid.uuid4().hex
    send(sender, [f"bob@{domain}", f"quiet@{domain}"], tok, mail_options=[f"ENVID={tok}"],
         rcpt_options=["NOTIFY=SUCCESS"])
    wait_until(lambda: getattr(peer, "messages", []), timeout=30, what="message at the peer")
    # Nothing of DSN goes to a peer that did not offer it.
    assert not [line for line in peer.log if "NOTIFY=" in line or "ENVID=" in line or "RET=" in line]
    msg, per_msg, rcpts, third = one_report(sender, "relayed report")
    assert msg["Subject"] == "Successful Mail Delivery Report"
    assert per_msg["Original-Envelope-Id"] == tok
    assert sorted(r["Final-Recipient"] for r in rcpts) == [f"rfc822; bob@{domain}", f"rfc822; quiet@{domain}"]
    for r in rcpts:
        assert r["Action"] == "relayed"
        assert r["Status"].startswith("2.")
        diagnostic = field(r, "Diagnostic-Code")
        assert "Relayed to a server without DSN" in diagnostic
        assert "250 2.0.0 Ok: queued as R1" in diagnostic
    assert f"X-Token: {tok}" in third.get_payload()
    sender.wait_log("qmgr", r"sender relay notification: \w+$")


def test_notify_failure_only_to_a_peer_without_dsn_gives_no_report(sender, peers):
    peer = peers(smtp_dialogue(ehlo=PLAIN_EHLO))
    domain = route_to(sender, peer.addr)
    send(sender, [f"bob@{domain}"], "f", rcpt_options=["NOTIFY=FAILURE"])
    sender.wait_log("qmgr", rf"to=<bob@{re.escape(domain)}> .*status=sent")
    settled(sender)
    assert reports(sender) == []


def test_notify_never_and_a_remote_550_give_no_bounce(sender, peers):
    peer = peers(smtp_dialogue(ehlo=PLAIN_EHLO, rcpt_reply=lambda n: "550 5.1.1 no such user"))
    domain = route_to(sender, peer.addr)
    send(sender, [f"nobody@{domain}"], "never", rcpt_options=["NOTIFY=NEVER"])
    qid = sender.wait_log("qmgr", rf"(\w+): to=<nobody@{re.escape(domain)}>: no bounce: NOTIFY=NEVER$").group(1)
    sender.wait_log("qmgr", rf"{qid}: removed$")
    assert sender.mail(DEMO) == []
    assert "non-delivery notification" not in sender.log("qmgr")


def test_ret_hdrs_and_a_remote_550_give_a_headers_only_report_with_the_remote_text(sender, peers):
    peer = peers(smtp_dialogue(ehlo=DSN_EHLO, rcpt_reply=lambda n: "550 5.1.1 no such user here"))
    domain = route_to(sender, peer.addr)
    tok = uuid.uuid4().hex
    send(sender, [f"nobody@{domain}"], tok, mail_options=["RET=HDRS"], rcpt_options=["NOTIFY=FAILURE"])
    msg, _, [r], third = one_report(sender, "bounce")
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert r["Action"] == "failed" and r["Status"] == "5.1.1"
    assert f"host {peer.addr}[{peer.addr}] said: 550 5.1.1 no such user here" in field(r, "Diagnostic-Code")
    assert third.get_content_type() == "text/rfc822-headers"
    assert f"X-Token: {tok}" in third.get_payload()
    raw = open(sender.mail(DEMO)[0], "rb").read().decode()
    assert f"body {tok}" not in raw
    [mail] = lines(peer, "MAIL")
    assert " RET=HDRS" in mail


UTF8_RCPT = "j\u00f6rg"


def test_smtputf8_message_to_a_peer_without_smtputf8_bounces_553_5_6_7(sender, peers):
    peer = peers(smtp_dialogue(ehlo=PLAIN_EHLO))
    domain = route_to(sender, peer.addr)
    send(sender, [f"{UTF8_RCPT}@{domain}"], "utf8", mail_options=["SMTPUTF8"])
    msg, _, [r], _ = one_report(sender, "bounce")
    assert r["Status"] == "5.6.7"
    assert "553 5.6.7" in field(r, "Diagnostic-Code") and "SMTPUTF8" in field(r, "Diagnostic-Code")
    assert not lines(peer, "MAIL")


def test_smtputf8_message_with_a_utf8_header_needs_smtputf8_too(sender, peers):
    peer = peers(smtp_dialogue(ehlo=PLAIN_EHLO))
    domain = route_to(sender, peer.addr)
    send(sender, [f"ascii@{domain}"], "hdr", mail_options=["SMTPUTF8"], headers="To: J\u00f6rg <ascii@x.test>\r\n")
    _, _, [r], _ = one_report(sender, "bounce")
    assert r["Status"] == "5.6.7"
    assert "UTF-8 header" in field(r, "Diagnostic-Code")
    assert not lines(peer, "MAIL")


def test_smtputf8_message_needing_nothing_of_it_goes_to_a_peer_without_smtputf8(sender, peers):
    peer = peers(smtp_dialogue(ehlo=PLAIN_EHLO))
    domain = route_to(sender, peer.addr)
    send(sender, [f"ascii@{domain}"], "ascii", mail_options=["SMTPUTF8"])
    wait_until(lambda: getattr(peer, "messages", []), timeout=30, what="message at the peer")
    assert "SMTPUTF8" not in lines(peer, "MAIL")[0]


def test_smtputf8_parameter_goes_to_a_peer_that_offers_it(sender, peers):
    peer = peers(smtp_dialogue(ehlo=PLAIN_EHLO + ("SMTPUTF8",)))
    domain = route_to(sender, peer.addr)
    send(sender, [f"ascii@{domain}"], "hdr", mail_options=["SMTPUTF8"], headers="To: J\u00f6rg <ascii@x.test>\r\n")
    wait_until(lambda: getattr(peer, "messages", []), timeout=30, what="message at the peer")
    assert lines(peer, "MAIL")[0].endswith(" SMTPUTF8")
    assert "J\u00f6rg".encode() in peer.messages[0]


def test_address_literal_recipient_goes_to_that_host(sender, peers):
    peer = peers(smtp_dialogue(ehlo=PLAIN_EHLO))
    rcpt = f"bob@[{peer.addr}]"
    send(sender, [rcpt], "literal")
    wait_until(lambda: getattr(peer, "messages", []), timeout=30, what="message at the literal's host")
    assert lines(peer, "RCPT") == [f"RCPT TO:<{rcpt}>"]
    sender.wait_log("qmgr", rf"to=<{re.escape(rcpt)}> .*status=sent")
    settled(sender)
    assert sender.mail(DEMO) == []


def test_qmgr_waits_qmgr_relay_timeout_for_a_slow_transfer(sender, peers):
    """The peer takes longer than qmgr_lmtp_timeout to answer the final dot: within the relay's own
    timeouts that is no failure, and qmgr must not give up on the relay (the recipient would be left
    unknown and sent again)."""
    def slow(conn, peer):
        time.sleep(3)  # the peer's slowness is what is tested, not a wait for a condition
        conn.sendall(b"250 2.0.0 Ok: queued late\r\n")
        peer.readline(conn)

    sender.set(qmgr_lmtp_timeout="1s", qmgr_relay_timeout="60s", relay_data_done_timeout="30s")
    sender.restart("qmgr")
    peer = peers(smtp_dialogue(ehlo=PLAIN_EHLO, after_dot=slow))
    domain = route_to(sender, peer.addr)
    send(sender, [f"slow@{domain}"], "slow")
    sender.wait_log("qmgr", rf"to=<slow@{re.escape(domain)}> .*status=sent .*queued late", timeout=30)
    settled(sender)
    assert len(peer.messages) == 1
    assert "status=unknown" not in sender.log("qmgr")

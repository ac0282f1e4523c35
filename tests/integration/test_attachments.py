"""The attachment policy with the real daemons: an .exe attached plain, base64-encoded, quoted-printable,
or inside a zip (ZIP64 and self-extracting too) is refused with 550 5.7.1 at the end of DATA and never
delivered; a PDF, a clean zip and a text part pass; the per-domain map turns it off; a bad map stops
ferry-smtpd at start. Under strip the message is accepted and ferry-mda stores it with each refused file
replaced by a text note, the other parts byte for byte as sent."""
import base64
import email
import email.policy
import imaplib
import io
import re
import smtplib
import subprocess
import uuid
import zipfile

import pytest

from ferry_harness import binary

DEMO = "demo@example.test"


def message(tok, parts):
    """A multipart/mixed message with a text part holding `tok`, then (headers, body) `parts`."""
    out = (f"From: a@outside.test\r\nTo: {DEMO}\r\nSubject: {tok}\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n"
           f"{tok}\r\n")
    for headers, body in parts:
        out += f"--b1\r\n{headers}\r\n\r\n{body}\r\n"
    return out + "--b1--\r\n"


def b64(data):
    return base64.encodebytes(data).decode().replace("\n", "\r\n")


def zip_of(names, force_zip64=False):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for n in names:
            with z.open(n, "w", force_zip64=force_zip64) as f:
                f.write(b"MZ" + b"\0" * 200)
    return buf.getvalue()


def send(host, msg):
    """None when accepted, else the (code, text) of the refusal."""
    try:
        with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as s:
            s.sendmail("a@outside.test", [DEMO], msg)
        return None
    except smtplib.SMTPDataError as e:
        return e.smtp_code, e.smtp_error.decode()


def delivered(host, tok):
    return [p for p in host.mail(DEMO) if tok.encode() in open(p, "rb").read()]


@pytest.fixture
def mx(host):
    host.start("mda", "qmgr", "smtpd")
    return host


REFUSED = {
    "plain": ('Content-Type: application/octet-stream; name="run.exe"', "MZ plain bytes"),
    "base64": ('Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="Invoice.EXE"\r\n'
               "Content-Transfer-Encoding: base64", b64(b"MZ" + b"\0" * 100)),
    "rfc2231": ("Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=utf-8''r%C3%A9.scr",
                "x"),
    "by type": ("Content-Type: application/x-msdownload", "MZ"),
    "in zip": ('Content-Type: application/zip; name="docs.zip"\r\nContent-Transfer-Encoding: base64',
               b64(zip_of(["readme.txt", "tools/setup.exe"]))),
    "in zip64": ('Content-Type: application/octet-stream; name="big.ZIP"\r\nContent-Transfer-Encoding: base64',
                 b64(zip_of(["a.txt", "b.js"], force_zip64=True))),
    "in self-extractor": ('Content-Type: application/zip; name="sfx.zip"\r\nContent-Transfer-Encoding: base64',
                          b64(b"stub code " * 50 + zip_of(["x.vbs"]))),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_refused_file_type_gets_550_and_is_not_delivered(mx, case):
    tok = uuid.uuid4().hex
    refusal = send(mx, message(tok, [REFUSED[case]]))
    assert refusal is not None, f"{case}: accepted"
    code, text = refusal
    assert code == 550 and text.startswith("5.7.1 Message refused"), refusal
    mx.wait_log("smtpd", r"refused by attachments: from=<a@outside\.test>")
    # Nothing was queued: the spool holds no file for it and no copy ever arrives.
    assert mx.spool_ids("queue") == [] and mx.spool_ids("incoming") == []
    assert not delivered(mx, tok)


@pytest.mark.parametrize("size", [1_000, 64 * 1024 - 2_000, 64 * 1024 + 2_000, 3_000_000])
def test_small_messages_and_large_ones_get_the_same_answer(mx, size):
    # Up to 64 KiB the scan runs on ferry-smtpd's loop, above on a worker: the answer is the same.
    tok = uuid.uuid4().hex
    filler = ("Content-Type: text/plain", ("x" * 76 + "\r\n") * (size // 78))
    refusal = send(mx, message(tok, [filler, REFUSED["in zip"]]))
    assert refusal is not None and refusal[0] == 550 and "tools/setup.exe" in refusal[1], (size, refusal)
    assert send(mx, message(tok, [filler, REFUSED["in zip"][:1] + (b64(zip_of(["readme.txt"])),)])) is None
    mx.wait_mail(DEMO, 1)
    assert len(delivered(mx, tok)) == 1


def test_a_large_single_part_message_is_refused_as_a_file_and_accepted_as_text(mx):
    # Above 64 KiB a message whose first 16 KB show no file is answered without the whole scan.
    tok = uuid.uuid4().hex
    body = ("x" * 76 + "\r\n") * 3000
    head = f"From: a@outside.test\r\nTo: {DEMO}\r\nSubject: {tok}\r\nMIME-Version: 1.0\r\n"
    refusal = send(mx, head + 'Content-Type: application/octet-stream; name="setup.exe"\r\n\r\n' + body)
    assert refusal is not None and refusal[0] == 550 and "setup.exe" in refusal[1], refusal
    assert send(mx, head + "Content-Type: text/plain\r\n\r\n" + tok + "\r\n" + body) is None
    mx.wait_mail(DEMO, 1)
    assert len(delivered(mx, tok)) == 1


def test_the_refusal_names_the_file_and_the_archive(mx):
    _, text = send(mx, message(uuid.uuid4().hex, [REFUSED["in zip"]]))
    assert '"tools/setup.exe" in archive "docs.zip" (extension .exe)' in text, text


def test_allowed_files_pass(mx):
    tok = uuid.uuid4().hex
    parts = [('Content-Type: application/pdf; name="report.pdf"\r\nContent-Transfer-Encoding: base64', b64(b"%PDF-1.4 x")),
             ('Content-Type: application/zip; name="photos.zip"\r\nContent-Transfer-Encoding: base64',
              b64(zip_of(["a.jpg", "notes.exe.txt"]))),
             ('Content-Type: text/plain; name="setup.exe.txt"', "a note"),
             ('Content-Type: application/zip; name="broken.zip"', "not a zip at all")]
    assert send(mx, message(tok, parts)) is None
    mx.wait_mail(DEMO, 1)
    assert len(delivered(mx, tok)) == 1
    mx.wait_log("smtpd", r"attachment broken\.zip: unreadable zip archive")


def test_a_message_after_a_refused_one_in_the_same_session_is_accepted(mx):
    tok1, tok2 = uuid.uuid4().hex, uuid.uuid4().hex
    with smtplib.SMTP("127.0.0.1", mx.port("smtp"), timeout=30) as s:
        with pytest.raises(smtplib.SMTPDataError):
            s.sendmail("a@outside.test", [DEMO], message(tok1, [REFUSED["plain"]]))
        s.sendmail("a@outside.test", [DEMO], message(tok2, []))
    mx.wait_mail(DEMO, 1)
    assert not delivered(mx, tok1) and len(delivered(mx, tok2)) == 1


def test_the_domain_map_and_the_policy_key_turn_it_off(host, tmp_path):
    host.add_domain("open.test")
    host.add_account("x@open.test", "pw-x-123456")
    (tmp_path / "map").write_text("# executables welcome here\nopen.test  off\n")
    host.set(attachment_policy_map=str(tmp_path / "map"))
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as s:
        s.sendmail("a@outside.test", ["x@open.test"], message(tok, [REFUSED["plain"]]))
        # One message, two domains: the stricter one decides.
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("a@outside.test", ["x@open.test", DEMO], message(uuid.uuid4().hex, [REFUSED["plain"]]))
        assert e.value.smtp_code == 550
    host.wait_mail("x@open.test", 1)
    assert tok.encode() in open(host.mail("x@open.test")[0], "rb").read()


def test_policy_off_accepts_everything(host):
    host.set(attachment_policy="off")
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    assert send(host, message(tok, [REFUSED["in zip"], REFUSED["plain"]])) is None
    host.wait_mail(DEMO, 1)


def test_a_bad_map_line_stops_smtpd_at_start_naming_the_line(host, tmp_path):
    (tmp_path / "map").write_text("ok.test off\nbad.test maybe\n")
    host.set(attachment_policy_map=str(tmp_path / "map"))
    r = subprocess.run([binary("ferry-smtpd"), "-c", host.conf], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "attachment_policy_map" in r.stderr and "line 2" in r.stderr, r.stderr


PDF = ('Content-Type: application/pdf; name="report.pdf"\r\nContent-Transfer-Encoding: base64', b64(b"%PDF-1.4 x" * 20))


def stored(host, address, tok):
    [path] = [p for p in host.wait_mail(address, 1) if tok.encode() in open(p, "rb").read()]
    return open(path, "rb").read()


def as_stored(headers, body):
    """A part as the Maildir holds it: LF line ends."""
    return f"--b1\r\n{headers}\r\n\r\n{body}\r\n".replace("\r\n", "\n").encode()


def notes_of(data):
    """The parts of a stored message, parsed as a mail client would."""
    return list(email.message_from_bytes(data, policy=email.policy.default).iter_parts())


def test_strip_replaces_each_refused_file_by_a_note_and_keeps_the_rest(host):
    host.set(attachment_policy="strip")
    host.start("mda", "qmgr", "smtpd", "imapd")
    tok = uuid.uuid4().hex
    sent = [REFUSED["plain"], PDF, REFUSED["base64"], REFUSED["in zip"]]
    assert send(host, message(tok, sent)) is None
    data = stored(host, DEMO, tok)
    parts = notes_of(data)
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/plain", "application/pdf", "text/plain",
                                                     "text/plain"]
    assert tok in parts[0].get_content()
    plain, b64note, zipnote = parts[1].get_content(), parts[3].get_content(), parts[4].get_content()
    assert "File:   run.exe" in plain and "Type:   application/octet-stream" in plain, plain
    assert 'Reason: attachment "run.exe" (extension .exe) is a file type not accepted here' in plain, plain
    assert "Policy: attachment_policy strip" in plain, plain
    assert "File:   Invoice.EXE" in b64note, b64note
    assert "File:   docs.zip" in zipnote and '"tools/setup.exe" in archive "docs.zip"' in zipnote, zipnote
    # The other parts, the text and the PDF, are byte for byte as sent; nothing of the files is left.
    assert as_stored(*PDF) in data
    assert f"--b1\nContent-Type: text/plain\n\n{tok}\n".encode() in data
    assert b"MZ plain bytes" not in data
    for headers, body in (REFUSED["base64"], REFUSED["in zip"]):
        assert body.split("\r\n")[0].encode() not in data
    assert data.endswith(b"--b1--\n")
    host.wait_log("mda", r'attachment "run\.exe" \(extension \.exe\) replaced by a note \(attachment_policy strip\)')
    # An IMAP client sees the same structure.
    im = imaplib.IMAP4("127.0.0.1", host.port("imap"))
    try:
        im.login(DEMO, "demo-secret")
        im.select("INBOX")
        typ, got = im.fetch("1", "(BODYSTRUCTURE)")
        assert typ == "OK"
        structure = got[0].decode() if isinstance(got[0], bytes) else got[0][0].decode()
        kinds = re.findall(r'\("(TEXT|APPLICATION)" "(PLAIN|PDF)"', structure, re.I)
        assert [k[1].upper() for k in kinds] == ["PLAIN", "PLAIN", "PDF", "PLAIN", "PLAIN"], structure
        assert '"MIXED"' in structure.upper()
    finally:
        im.logout()


def test_strip_per_domain_leaves_the_other_recipients_copy_alone(host, tmp_path):
    for d in ("open.test", "strip.test"):
        host.add_domain(d)
    host.add_account("x@open.test", "pw-x-123456")
    host.add_account("y@strip.test", "pw-y-123456")
    (tmp_path / "map").write_text("open.test off\nstrip.test strip\n")
    host.set(attachment_policy_map=str(tmp_path / "map"))
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    msg = message(tok, [PDF, REFUSED["plain"]])
    with smtplib.SMTP("127.0.0.1", host.port("smtp"), timeout=30) as s:
        s.sendmail("a@outside.test", ["x@open.test", "y@strip.test"], msg)
        # The default (reject) for the third domain still decides for a message that includes it.
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("a@outside.test", ["y@strip.test", DEMO], message(uuid.uuid4().hex, [REFUSED["plain"]]))
        assert e.value.smtp_code == 550
    kept, rewritten = stored(host, "x@open.test", tok), stored(host, "y@strip.test", tok)
    assert b"MZ plain bytes" in kept and b"attachment_policy strip" not in kept
    assert b"MZ plain bytes" not in rewritten and b"File:   run.exe" in rewritten
    assert as_stored(*PDF) in kept and as_stored(*PDF) in rewritten


def test_strip_in_lda_mode(host):
    host.set(attachment_policy="strip")
    tok = uuid.uuid4().hex
    msg = message(tok, [REFUSED["in zip"], PDF]).replace("\r\n", "\n")
    p = subprocess.run([binary("mda"), "-c", host.conf, "-d", DEMO, "-f", "a@outside.test"], input=msg.encode(),
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    data = stored(host, DEMO, tok)
    parts = notes_of(data)
    assert [x.get_content_type() for x in parts] == ["text/plain", "text/plain", "application/pdf"]
    assert '"tools/setup.exe" in archive "docs.zip"' in parts[1].get_content()
    assert as_stored(*PDF) in data


def test_a_message_with_nothing_refused_is_stored_as_it_came_under_strip(host):
    host.set(attachment_policy="strip")
    host.start("mda", "qmgr", "smtpd")
    tok = uuid.uuid4().hex
    msg = message(tok, [PDF])
    assert send(host, msg) is None
    data = stored(host, DEMO, tok)
    assert data.endswith(msg.replace("\r\n", "\n").encode())

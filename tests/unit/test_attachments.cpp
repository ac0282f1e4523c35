// Unit tests of the attachment list and policy: named parts, zip directories (ZIP64, prefixed, damaged), rules.
#include <catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "common/mail/attachment_policy.hpp"
#include "common/mail/attachments.hpp"
#include "common/mail/mime.hpp"

using namespace ferry;

namespace {

void put16(std::string& s, uint16_t v) {
    s += static_cast<char>(v & 0xff);
    s += static_cast<char>(v >> 8);
}
void put32(std::string& s, uint32_t v) {
    put16(s, static_cast<uint16_t>(v & 0xffff));
    put16(s, static_cast<uint16_t>(v >> 16));
}
void put64(std::string& s, uint64_t v) {
    put32(s, static_cast<uint32_t>(v & 0xffffffff));
    put32(s, static_cast<uint32_t>(v >> 32));
}

// A stored (uncompressed) zip of `names`, each holding "x", as APPNOTE lays it out; `zip64` writes
// the ZIP64 end records with 0xffff/0xffffffff in the classic one, as large archives do.
std::string make_zip(const std::vector<std::string>& names, bool zip64 = false, const std::string& comment = "") {
    std::string z, cd;
    for (const auto& n : names) {
        uint32_t offset = static_cast<uint32_t>(z.size());
        put32(z, 0x04034b50);
        z += std::string(22, '\0');
        put16(z, static_cast<uint16_t>(n.size()));
        put16(z, 0);
        z += n + "x";
        put32(cd, 0x02014b50);
        cd += std::string(24, '\0');
        put16(cd, static_cast<uint16_t>(n.size()));
        put16(cd, 0);
        put16(cd, 0);
        cd += std::string(8, '\0');
        put32(cd, offset);
        cd += n;
    }
    uint64_t cd_at = z.size();
    z += cd;
    if (zip64) {
        uint64_t rec = z.size();
        put32(z, 0x06064b50);
        put64(z, 44);
        z += std::string(4 + 8, '\0');
        put64(z, names.size());
        put64(z, names.size());
        put64(z, cd.size());
        put64(z, cd_at);
        put32(z, 0x07064b50);
        put32(z, 0);
        put64(z, rec);
        put32(z, 1);
    }
    put32(z, 0x06054b50);
    put32(z, 0);
    put16(z, zip64 ? 0xffff : static_cast<uint16_t>(names.size()));
    put16(z, zip64 ? 0xffff : static_cast<uint16_t>(names.size()));
    put32(z, zip64 ? 0xffffffff : static_cast<uint32_t>(cd.size()));
    put32(z, zip64 ? 0xffffffff : static_cast<uint32_t>(cd_at));
    put16(z, static_cast<uint16_t>(comment.size()));
    z += comment;
    return z;
}

}  // namespace

TEST_CASE("attachments: zip entry names from the central directory", "[attachments]") {
    std::vector<std::string> names = {"readme.txt", "dir/setup.exe", "b.pdf"};
    SECTION("plain") { CHECK(mail::zip_entry_names(make_zip(names)).value() == names); }
    SECTION("with a comment that holds an end signature") {
        CHECK(mail::zip_entry_names(make_zip(names, false, "PK\x05\x06 not the end")).value() == names);
    }
    SECTION("ZIP64") { CHECK(mail::zip_entry_names(make_zip(names, true)).value() == names); }
    SECTION("data in front, as a self-extractor has") {
        CHECK(mail::zip_entry_names("MZ stub code" + make_zip(names)).value() == names);
    }
    SECTION("empty archive") { CHECK(mail::zip_entry_names(make_zip({})).value().empty()); }
    SECTION("the entry limit") {
        CHECK_FALSE(mail::zip_entry_names(make_zip(names), 2).ok());
        CHECK(mail::zip_entry_names(make_zip(names), 3).ok());
    }
    SECTION("every truncation is an error or a shorter list, never a crash") {
        std::string z = make_zip(names);
        for (size_t cut = 0; cut < z.size(); ++cut) {
            auto r = mail::zip_entry_names(std::string_view(z).substr(0, cut));
            CHECK_FALSE(r.ok());
        }
    }
    SECTION("a directory larger than the archive") {
        std::string z = make_zip(names);
        z[z.size() - 10] = '\x7f';  // cd size high byte
        CHECK_FALSE(mail::zip_entry_names(z).ok());
    }
    SECTION("not a zip") { CHECK_FALSE(mail::zip_entry_names(std::string(100, 'a')).ok()); }
}

TEST_CASE("attachments: the named parts of a message", "[attachments]") {
    std::string msg =
        "Subject: s\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n"
        "--b\nContent-Type: text/plain\n\nhello\n"
        "--b\nContent-Type: application/octet-stream; name=\"a.EXE\"\nContent-Transfer-Encoding: base64\n\nTVo=\n"
        "--b\nContent-Type: application/pdf\nContent-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf\n\n%PDF\n"
        "--b\nContent-Type: text/plain; name=\"=?utf-8?q?notes.js?=\"\n\nx\n"
        "--b\nContent-Type: image/png\n\nPNG\n"
        "--b--\n";
    auto root = mail::parse_mime(msg);
    auto files = mail::file_parts(root);
    REQUIRE(files.size() == 4);
    CHECK(files[0].attachment.name == "a.EXE");
    CHECK(files[0].attachment.content_type == "application/octet-stream");
    CHECK(files[1].attachment.name == "résumé.pdf");
    CHECK(files[2].attachment.name == "notes.js");
    CHECK(files[3].attachment.name == "");
    CHECK(files[3].attachment.content_type == "image/png");
}

TEST_CASE("attachments: the rules", "[attachments]") {
    auto rules = mail::AttachmentRules::parse("exe, .scr js", "application/x-msdownload application/vnd.ms-*");
    CHECK(rules.extensions == std::vector<std::string>{"exe", "scr", "js"});
    auto refused = [&](std::string name, std::string type, std::string archive = "") {
        return mail::refused_attachment({name, type, archive}, rules);
    };
    CHECK(refused("a.exe", "application/octet-stream").value() == "attachment \"a.exe\" (extension .exe)");
    CHECK(refused("A.ExE", "application/octet-stream"));
    CHECK(refused("a.exe.", "application/octet-stream"));   // Windows drops the trailing dot
    CHECK(refused("a.exe  ", "application/octet-stream"));
    CHECK(refused("x/y\\run.scr", ""));
    CHECK(refused("setup.exe", "", "b.zip").value() == "\"setup.exe\" in archive \"b.zip\" (extension .exe)");
    CHECK_FALSE(refused("report.pdf", "application/pdf"));
    CHECK_FALSE(refused("exe", "application/octet-stream"));   // no extension at all
    CHECK_FALSE(refused("a.exe.pdf", "application/pdf"));
    CHECK(refused("", "application/x-msdownload").value() == "attachment \"\" (type application/x-msdownload)");
    CHECK(refused("m.xlsm", "application/vnd.ms-excel.sheet.macroenabled.12"));
    CHECK_FALSE(refused("x.bin", "application/x-msdownload", "a.zip"));  // a zip entry has no type
    CHECK(mail::AttachmentRules::parse("", "").empty());
    CHECK(mail::is_zip({"a.ZIP", "application/octet-stream", ""}));
    CHECK(mail::is_zip({"", "application/zip", ""}));
    CHECK_FALSE(mail::is_zip({"a.pdf", "application/pdf", ""}));
}

namespace {

// The message with each refused part replaced by its note, as ferry-mda's strip splices it.
std::string stripped(const std::string& msg, const mail::AttachmentSettings& s, mail::AttachmentScan* out = nullptr) {
    mail::MessageReader read = [&msg](uint64_t at, char* buf, size_t len) -> Result<size_t> {
        if (at >= msg.size()) return size_t{0};
        size_t n = std::min(len, msg.size() - static_cast<size_t>(at));
        msg.copy(buf, n, static_cast<size_t>(at));
        return n;
    };
    auto scan = mail::scan_attachments(read, s, true);
    REQUIRE(scan.ok());
    std::string result;
    size_t at = 0;
    for (const auto& p : scan->parts) {
        result += msg.substr(at, p.start - at);
        result += mail::replacement_part(msg.substr(p.start, p.header_end - p.start), p, "attachment_policy strip",
                                         msg[p.end - 1] == '\n');
        at = p.end;
    }
    if (out) *out = std::move(scan.value());
    return result + msg.substr(at);
}

mail::AttachmentSettings strip_settings() {
    mail::AttachmentSettings s;
    s.fallback = mail::AttachmentPolicy::strip;
    s.rules = mail::AttachmentRules::parse("exe js", "application/x-msdownload");
    return s;
}

}  // namespace

TEST_CASE("attachments: the policy per domain and its map", "[attachments]") {
    auto map = mail::AttachmentSettings::parse_map("# comment\nopen.test off\nStrip.Test strip\nhard.test reject\n");
    REQUIRE(map.ok());
    mail::AttachmentSettings s;
    s.domains = *map;
    s.rules = mail::AttachmentRules::parse("exe", "");
    CHECK(s.policy_for("a@open.test") == mail::AttachmentPolicy::off);
    CHECK(s.policy_for("a@STRIP.test") == mail::AttachmentPolicy::strip);
    CHECK(s.policy_for("a@other.test") == mail::AttachmentPolicy::reject);  // the fallback
    CHECK(s.strips("x@strip.test"));
    CHECK_FALSE(s.strips("x@hard.test"));
    CHECK_FALSE(s.applies({"a@strip.test", "b@open.test"}));  // ferry-smtpd refuses for reject only
    CHECK(s.applies({"a@strip.test", "b@hard.test"}));
    auto bad = mail::AttachmentSettings::parse_map("ok.test strip\nbad.test maybe\n");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().what().find("line 2") != std::string::npos);
    CHECK(mail::parse_attachment_policy("strip") == mail::AttachmentPolicy::strip);
    CHECK_FALSE(mail::parse_attachment_policy("Strip"));
}

TEST_CASE("attachments: strip replaces each refused part by a note, every other octet kept", "[attachments]") {
    std::string head = "From: a@b.test\nSubject: s\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\npreamble\n";
    std::string text = "--b\nContent-Type: text/plain\n\nhello\n";
    std::string exe = "--b\nContent-Type: application/octet-stream; name=\"run.exe\"\nX-Attachment-Id: 7\n"
                      "Content-Transfer-Encoding: base64\n\nTVqQAAMAAAAEAAAA\nAAAA\n";
    std::string pdf = "--b\nContent-Type: application/pdf; name=\"r.pdf\"\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQ=\n";
    std::string zip = "--b\nContent-Type: application/zip; name=\"docs.zip\"\n\n" + make_zip({"a.txt", "tools/setup.exe"}) + "\n";
    std::string tail = "--b--\nepilogue\n";
    std::string msg = head + text + exe + pdf + zip + tail;

    mail::AttachmentScan scan;
    std::string out = stripped(msg, strip_settings(), &scan);
    REQUIRE(scan.parts.size() == 2);
    CHECK(scan.parts[0].why == "attachment \"run.exe\" (extension .exe)");
    CHECK(scan.parts[1].why == "\"tools/setup.exe\" in archive \"docs.zip\" (extension .exe)");
    CHECK(scan.parts[1].file.name == "docs.zip");
    std::string note_exe = "--b\nX-Attachment-Id: 7\nContent-Type: text/plain; charset=utf-8\n"
                           "Content-Transfer-Encoding: 7bit\nContent-Disposition: inline\n\n"
                           "This attachment was removed by the mail server's attachment policy.\n\n"
                           "File:   run.exe\nType:   application/octet-stream\n"
                           "Reason: attachment \"run.exe\" (extension .exe) is a file type not accepted here\n"
                           "Policy: attachment_policy strip\n";
    CHECK(out.substr(0, head.size() + text.size()) == head + text);
    CHECK(out.substr(head.size() + text.size(), note_exe.size()) == note_exe);
    CHECK(out.find(pdf) != std::string::npos);
    CHECK(out.ends_with("Policy: attachment_policy strip\n" + tail));
    CHECK(out.find("TVqQ") == std::string::npos);
    CHECK(out.find("setup.exe\" in archive \"docs.zip\"") != std::string::npos);

    // The rewritten message has the same structure, the notes as text/plain, and nothing refused.
    auto root = mail::parse_mime(out);
    REQUIRE(root.children.size() == 4);
    CHECK(root.children[1].type == "text");
    CHECK(root.children[1].subtype == "plain");
    CHECK(root.children[2].subtype == "pdf");
    CHECK(root.children[3].type == "text");
    mail::AttachmentScan again;
    CHECK(stripped(out, strip_settings(), &again) == out);
    CHECK(again.parts.empty());
}

TEST_CASE("attachments: strip of a whole message, CRLF, and an unsafe name", "[attachments]") {
    // A message that is itself the refused file keeps its other header fields.
    std::string msg = "From: a@b.test\r\nContent-Type: application/x-msdownload\r\nSubject: s\r\n\r\nMZ\r\n";
    std::string out = stripped(msg, strip_settings());
    CHECK(out.starts_with("From: a@b.test\r\nSubject: s\r\nContent-Type: text/plain; charset=utf-8\r\n"));
    CHECK(out.ends_with("Policy: attachment_policy strip\r\n"));
    CHECK(out.find("MZ") == std::string::npos);
    // A name with a line break in it cannot start a boundary line in the note; UTF-8 makes it 8bit.
    std::string evil = "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: application/octet-stream\n"
                       "Content-Disposition: attachment; filename*=utf-8''%0A--b%0Ar%C3%A9.exe\n\nx\n--b--\n";
    std::string clean = stripped(evil, strip_settings());
    CHECK(clean.find("File:   ?--b?r\xc3\xa9.exe\n") != std::string::npos);
    CHECK(clean.find("Content-Transfer-Encoding: 8bit") != std::string::npos);
    CHECK(mail::parse_mime(clean).children.size() == 1);
    // Nothing refused: nothing replaced.
    std::string fine = "Content-Type: application/pdf; name=a.pdf\n\n%PDF\n";
    mail::AttachmentScan none;
    CHECK(stripped(fine, strip_settings(), &none) == fine);
    CHECK(none.parts.empty());
}

namespace {

// A scan of `msg` that counts the octets it read.
struct CountedScan {
    mail::AttachmentScan scan;
    uint64_t read = 0;
};

CountedScan counted_scan(const std::string& msg, const mail::AttachmentSettings& s) {
    CountedScan out;
    mail::MessageReader read = [&msg, &out](uint64_t at, char* buf, size_t len) -> Result<size_t> {
        if (at >= msg.size()) return size_t{0};
        size_t n = std::min(len, msg.size() - static_cast<size_t>(at));
        msg.copy(buf, n, static_cast<size_t>(at));
        out.read += n;
        return n;
    };
    auto scan = mail::scan_attachments(read, s, true);
    REQUIRE(scan.ok());
    out.scan = std::move(scan.value());
    return out;
}

std::string lines_of(size_t octets) {
    std::string out;
    while (out.size() < octets) out += "a line of text that is not a boundary and names no file.exe\r\n";
    return out;
}

}  // namespace

TEST_CASE("attachments: the scan stops reading once no file can follow, and finds every file before that",
          "[attachments]") {
    auto s = strip_settings();
    const std::string big = lines_of(1 << 20);

    // A plain text message: its first piece settles the structure, the rest of its megabyte is not read.
    auto plain = counted_scan("From: a@b.test\r\nSubject: text\r\n\r\n" + big, s);
    CHECK_FALSE(plain.scan.refused);
    CHECK(plain.read < 200 * 1024);

    // A whole message that is a refused file: its range runs to the very end.
    std::string exe = "Content-Type: application/x-msdownload; name=\"x.exe\"\r\n\r\n" + big;
    auto whole = counted_scan(exe, s);
    REQUIRE(whole.scan.parts.size() == 1);
    CHECK(whole.scan.parts[0].end == exe.size());
    CHECK(whole.read == exe.size());

    // A refused file after a megabyte of text inside a multipart is found.
    std::string late = "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\r\n" + big +
                       "--b\r\nContent-Type: application/octet-stream; name=\"late.js\"\r\n\r\nxx\r\n--b--\r\n";
    auto found = counted_scan(late, s);
    REQUIRE(found.scan.parts.size() == 1);
    CHECK(found.scan.parts[0].file.name == "late.js");

    // After the close delimiter only the epilogue follows: a multipart of text stops there.
    std::string closed = "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\r\ntext\r\n--b--\r\n" + big;
    auto epilogue = counted_scan(closed, s);
    CHECK(epilogue.scan.parts.empty());
    CHECK(epilogue.read < 200 * 1024);

    // A message/rfc822 whose inner message is plain text settles after the inner header.
    auto forwarded = counted_scan("Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\n" + big, s);
    CHECK(forwarded.scan.parts.empty());
    CHECK(forwarded.read < 200 * 1024);

}

TEST_CASE("mime: the structure is settled only when no part can follow", "[mime]") {
    mail::MimeParser p;
    p.feed("Content-Type: multipart/mixed; boundary=\"b\"\r\n");
    CHECK_FALSE(p.settled());  // still in the header
    p.feed("\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n");
    CHECK_FALSE(p.settled());  // a boundary may still open another part
    CHECK(p.tree_so_far().children.size() == 1);
    p.feed("--b--\r\nepilogue\r\n");
    CHECK(p.settled());
    CHECK(p.tree_so_far().children.size() == 1);

    mail::MimeParser plain;
    plain.feed("Subject: x\r\n");
    CHECK_FALSE(plain.settled());
    plain.feed("\r\nbody\r\n");
    CHECK(plain.settled());
}

TEST_CASE("attachments: the first piece settles a message without files, and only such a message", "[attachments]") {
    auto settled = [](const std::string& msg) {
        mail::MessageReader read = [&msg](uint64_t at, char* buf, size_t len) -> Result<size_t> {
            if (at >= msg.size()) return size_t{0};
            size_t n = std::min(len, msg.size() - static_cast<size_t>(at));
            msg.copy(buf, n, static_cast<size_t>(at));
            return n;
        };
        auto r = mail::settled_without_files(read);
        REQUIRE(r.ok());
        return *r;
    };
    const std::string big = lines_of(300 * 1024);
    CHECK(settled("Subject: plain\r\n\r\n" + big));
    CHECK(settled("Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\r\ntext\r\n--b--\r\n" + big));
    // A file, or a structure still open, is left to the whole scan.
    CHECK_FALSE(settled("Content-Type: application/pdf; name=\"a.pdf\"\r\n\r\n" + big));
    CHECK_FALSE(settled("Content-Type: text/plain; name=\"notes.txt\"\r\n\r\n" + big));
    CHECK_FALSE(settled("Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\r\n" + big));
    CHECK_FALSE(settled("Subject: " + std::string(20 * 1024, 'x') + "\r\n\r\nbody\r\n"));  // header past the piece
}

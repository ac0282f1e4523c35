// Unit tests of the attachment list and policy: named parts, zip directories (ZIP64, prefixed, damaged), rules.
#include <catch.hpp>

#include <string>
#include <vector>

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

// Unit tests of the MIME parser's limits (each at the limit and one past it) and of section addressing.
#include <catch.hpp>

#include <string>

#include "common/mail/imap_body.hpp"
#include "common/mail/mime.hpp"
#include "common/mail/mime_section.hpp"
#include "mime_util.hpp"

using namespace ferry::mail;
using ferry::Result;
using ferry::mail::test::bytewise;
using ferry::mail::test::dump;

namespace {

// A multipart nested `levels` deep, with one text part inside the innermost.
std::string nested(int levels) {
    std::string head, tail;
    for (int i = 0; i < levels; ++i) {
        std::string b = "b" + std::to_string(i);
        head += "Content-Type: multipart/mixed; boundary=" + b + "\n\n--" + b + "\n";
        tail = "\n--" + b + "--" + tail;
    }
    return head + "\ninner" + tail + "\n";
}

size_t depth_of(const MimePart& p) {
    size_t d = p.depth;
    for (const auto& c : p.children) d = std::max(d, depth_of(c));
    return d;
}

// Both ways of feeding agree, and the tree is returned.
MimePart parse_both(const std::string& m, MimeLimits limits) {
    MimePart whole = parse_mime(m, limits);
    CHECK(dump(whole) == dump(bytewise(m, limits)));
    return whole;
}

}  // namespace

TEST_CASE("mime limits: nesting depth", "[mime]") {
    std::string m = nested(3);  // multiparts at depth 0, 1, 2; the text part at depth 3
    MimeLimits at;
    at.max_depth = 3;
    CHECK(depth_of(parse_both(m, at)) == 3);
    MimeLimits below;
    below.max_depth = 2;
    MimePart root = parse_both(m, below);
    CHECK(depth_of(root) == 2);  // the multipart at depth 2 is not opened
    const MimePart& leaf = root.children.at(0).children.at(0);
    CHECK(leaf.is_multipart());
    CHECK(leaf.children.empty());
    CHECK(root.header.size + root.body.size == m.size());
    // message/rfc822 counts as a level too.
    std::string msg = "Content-Type: message/rfc822\n\nContent-Type: message/rfc822\n\nSubject: deep\n\nx\n";
    MimeLimits one;
    one.max_depth = 1;
    MimePart r = parse_both(msg, one);
    REQUIRE(r.children.size() == 1);
    CHECK(r.children[0].children.empty());
    CHECK(imap_bodystructure(r) ==
          "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 52 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) "
          "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 20 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) "
          "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) 3 NIL NIL NIL NIL) 5 NIL NIL NIL NIL)");
}

TEST_CASE("mime limits: part count", "[mime]") {
    std::string m = "Content-Type: multipart/mixed; boundary=b\n\n";
    for (int i = 0; i < 5; ++i) m += "--b\n\npart " + std::to_string(i) + "\n";
    m += "--b--\n";
    MimeLimits at;
    at.max_parts = 6;  // the message and its five parts
    CHECK(parse_both(m, at).children.size() == 5);
    MimeLimits below;
    below.max_parts = 5;
    MimePart root = parse_both(m, below);
    REQUIRE(root.children.size() == 4);
    CHECK(m.substr(root.children[3].body.offset, root.children[3].body.size) == "part 3");
    CHECK(root.header.size + root.body.size == m.size());
}

TEST_CASE("mime limits: header section size", "[mime]") {
    std::string header = "Subject: s\nContent-Type: text/html\n\n";
    std::string m = header + "body\n";
    MimeLimits at;
    at.max_header_size = header.size();
    MimePart ok = parse_both(m, at);
    CHECK(ok.header.size == header.size());
    CHECK(ok.subtype == "html");
    CHECK_FALSE(ok.header_truncated);
    MimeLimits below;
    below.max_header_size = header.size() - 1;  // the blank line no longer fits
    MimePart cut = parse_both(m, below);
    CHECK(cut.header_truncated);
    CHECK(cut.header.size == header.size() - 1);
    CHECK(cut.body.size == 6);
    CHECK(cut.subtype == "html");
}

TEST_CASE("mime limits: header line length", "[mime]") {
    std::string line = "Subject: " + std::string(100, 'x');
    std::string m = line + "\nContent-Type: text/html\n\nbody\n";
    MimeLimits at;
    at.max_line_length = line.size();
    MimePart ok = parse_both(m, at);
    CHECK_FALSE(ok.header_truncated);
    CHECK(ok.envelope->subject->size() == 100);
    CHECK(ok.subtype == "html");
    MimeLimits below;
    below.max_line_length = line.size() - 1;
    MimePart cut = parse_both(m, below);
    CHECK(cut.header_truncated);
    CHECK(cut.header.size == 0);
    CHECK_FALSE(cut.envelope->subject);
    CHECK(cut.subtype == "plain");  // the Content-Type after the long line is body now
    CHECK(cut.body.size == m.size());
}

TEST_CASE("mime limits: a long body line holds no more than the line limit", "[mime]") {
    MimeLimits small;
    small.max_line_length = 48;  // the Content-Type line fits
    std::string m = "Content-Type: multipart/mixed; boundary=b\n\n--b\n\n" + std::string(100000, 'y') + "\n--b--\n";
    MimePart root = parse_both(m, small);
    REQUIRE(root.children.size() == 1);
    CHECK(root.children[0].body.size == 100000);
}

TEST_CASE("mime limits: header field count", "[mime]") {
    std::string m = "A: 1\nB: 2\n continued\nContent-Type: text/html\n\nbody\n";
    MimeLimits at;
    at.max_header_fields = 3;
    MimePart ok = parse_both(m, at);
    CHECK_FALSE(ok.header_truncated);
    CHECK(ok.subtype == "html");
    MimeLimits below;
    below.max_header_fields = 2;
    MimePart cut = parse_both(m, below);
    CHECK(cut.header_truncated);
    CHECK(m.substr(cut.body.offset, 13) == "Content-Type:");
    CHECK(cut.subtype == "plain");
}

TEST_CASE("mime: defaults of the limits", "[mime]") {
    MimeLimits d;
    CHECK(d.max_depth == 50);
    CHECK(d.max_parts == 10000);
    CHECK(d.max_header_size == 256 * 1024);
    CHECK(d.max_line_length == 64 * 1024);
    CHECK(d.max_header_fields == 1000);
    // A deep message at the default: no crash, depth stops at the limit.
    std::string deep = nested(200);
    CHECK(depth_of(parse_mime(deep)) == 50);
}

namespace {

const char kMessage[] =
    "Subject: top\n"
    "Content-Type: multipart/mixed; boundary=\"o\"\n"
    "\n"
    "--o\n"
    "Content-Type: text/plain\n"
    "\n"
    "one\n"
    "--o\n"
    "Content-Type: multipart/alternative; boundary=i\n"
    "\n"
    "--i\n"
    "\n"
    "two.one\n"
    "--i\n"
    "X-Part: 2.2\n"
    "\n"
    "two.two\n"
    "--i--\n"
    "--o\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "Subject: inner\n"
    "Content-Type: multipart/mixed; boundary=m\n"
    "\n"
    "--m\n"
    "\n"
    "three.one\n"
    "--m--\n"
    "--o\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "Subject: flat\n"
    "\n"
    "four body\n"
    "--o--\n";

}  // namespace

TEST_CASE("mime sections: parse and resolve", "[mime]") {
    std::string m = kMessage;
    MimePart root = parse_mime(m);
    struct Row {
        const char* spec;
        const char* bytes;  // nullptr: an error
    };
    const Row rows[] = {
        {"1", "one"},
        {"1.MIME", "Content-Type: text/plain\n\n"},
        {"2.1", "two.one"},
        {"2.2", "two.two"},
        {"2.2.MIME", "X-Part: 2.2\n\n"},
        {"3.HEADER", "Subject: inner\nContent-Type: multipart/mixed; boundary=m\n\n"},
        {"3.TEXT", "--m\n\nthree.one\n--m--"},
        {"3.1", "three.one"},
        {"3.1.MIME", "\n"},
        {"4", "Subject: flat\n\nfour body"},
        {"4.1", "four body"},
        {"4.TEXT", "four body"},
        {"4.header", "Subject: flat\n\n"},
        {"TEXT", nullptr},  // checked below: the top body
        {"5", nullptr},
        {"0", nullptr},
        {"1.HEADER", nullptr},
        {"1.1", nullptr},
        {"MIME", nullptr},
        {"2.", nullptr},
        {"2.3", nullptr},
        {"HEADER.FIELDS ()", nullptr},
        {"HEADER.FIELDS", nullptr},
        {"1x", nullptr},
        {"BODY", nullptr},
    };
    for (const auto& r : rows) {
        INFO(r.spec);
        auto s = parse_section(r.spec);
        Result<MimeRange> range = s ? resolve_section(root, *s) : Result<MimeRange>(s.error());
        if (!r.bytes) {
            if (std::string_view(r.spec) != "TEXT") CHECK_FALSE(range.ok());
            continue;
        }
        REQUIRE(range.ok());
        CHECK(m.substr(range->offset, range->size) == r.bytes);
    }
    auto whole = resolve_section(root, *parse_section(""));
    CHECK(whole->offset == 0);
    CHECK(whole->size == m.size());
    auto header = resolve_section(root, *parse_section("HEADER"));
    CHECK(m.substr(header->offset, header->size) == "Subject: top\nContent-Type: multipart/mixed; boundary=\"o\"\n\n");
    auto text = resolve_section(root, *parse_section("TEXT"));
    CHECK(text->offset == header->size);
    CHECK(text->size == m.size() - header->size);
    // A message that is not multipart: its body is part 1.
    MimePart flat = parse_mime("Subject: x\n\nbody\n");
    auto one = resolve_section(flat, *parse_section("1"));
    CHECK(one->offset == 12);
    CHECK(one->size == 5);
}

TEST_CASE("mime sections: HEADER.FIELDS", "[mime]") {
    auto s = parse_section("1.HEADER.FIELDS.NOT (Subject \"X-A\" from)");
    REQUIRE(s.ok());
    CHECK(s->part == std::vector<uint32_t>{1});
    CHECK(s->text == Section::Text::header_fields_not);
    CHECK(s->fields == std::vector<std::string>{"Subject", "X-A", "from"});
    auto t = parse_section("header.fields (DATE)");
    REQUIRE(t.ok());
    CHECK(t->text == Section::Text::header_fields);
    std::string header = "From: a@x\nSubject: one\n two\nX-A: 1\nDate: today\nsubject : dup\n\n";
    CHECK(filter_header_fields(header, {"subject", "DATE"}, false) ==
          "Subject: one\r\n two\r\nDate: today\r\nsubject : dup\r\n\r\n");
    CHECK(filter_header_fields(header, {"subject", "DATE"}, true) == "From: a@x\r\nX-A: 1\r\n\r\n");
    CHECK(filter_header_fields(header, {"none"}, false) == "\r\n");
    CHECK(filter_header_fields("A: 1\r\nB: 2\r\n\r\nbody", {"b"}, false) == "B: 2\r\n\r\n");
}

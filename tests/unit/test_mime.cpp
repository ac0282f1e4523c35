// Unit tests of the MIME parser: BODYSTRUCTURE, BODY and ENVELOPE of tricky messages, fed whole, byte by byte and with CRLF.
#include <catch.hpp>

#include <string>

#include "common/mail/imap_body.hpp"
#include "common/mail/mime.hpp"
#include "mime_util.hpp"

using namespace ferry::mail;
using ferry::mail::test::bytewise;
using ferry::mail::test::crlf;
using ferry::mail::test::dump;

namespace {

const char kNested[] =
    "From: a@b.test\n"
    "Subject: nested\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\n"
    "\n"
    "preamble\n"
    "--outer\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "caf=C3=A9\n"
    "--outer\n"
    "Content-Type: multipart/alternative; boundary=inner\n"
    "\n"
    "--inner\n"
    "\n"
    "plain\n"
    "--inner\n"
    "Content-Type: text/html\n"
    "\n"
    "<p>html</p>\n"
    "--inner--\n"
    "--outer\n"
    "Content-Type: message/rfc822\n"
    "Content-Disposition: attachment; filename=\"fwd.eml\"\n"
    "\n"
    "From: c@d.test\n"
    "Subject: inner\n"
    "\n"
    "body line 1\n"
    "body line 2\n"
    "--outer--\n"
    "epilogue\n";

const std::string kPlainUsAscii = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" ";

struct Case {
    const char* name;
    std::string message;
    std::string bodystructure;
    std::string body;  // "" when not checked
};

const Case kCases[] = {
    {"simple", "Subject: x\n\nHi.\n", kPlainUsAscii + "5 1 NIL NIL NIL NIL)", kPlainUsAscii + "5 1)"},
    {"nested multiparts with message/rfc822", kNested,
     "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 9 1 NIL NIL NIL NIL)"
     "(" + kPlainUsAscii + "5 1 NIL NIL NIL NIL)"
     "(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 1 NIL NIL NIL NIL)"
     " \"alternative\" (\"boundary\" \"inner\") NIL NIL NIL)"
     "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 58"
     " (NIL \"inner\" ((NIL NIL \"c\" \"d.test\")) ((NIL NIL \"c\" \"d.test\")) ((NIL NIL \"c\" \"d.test\")) NIL NIL NIL NIL NIL) "
     + kPlainUsAscii + "24 2 NIL NIL NIL NIL) 5 NIL (\"attachment\" (\"filename\" \"fwd.eml\")) NIL NIL)"
     " \"mixed\" (\"boundary\" \"outer\") NIL NIL NIL)",
     "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 9 1)"
     "(" + kPlainUsAscii + "5 1)(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 1) \"alternative\")"
     "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 58"
     " (NIL \"inner\" ((NIL NIL \"c\" \"d.test\")) ((NIL NIL \"c\" \"d.test\")) ((NIL NIL \"c\" \"d.test\")) NIL NIL NIL NIL NIL) "
     + kPlainUsAscii + "24 2) 5) \"mixed\")"},
    {"no body", "Subject: x\n", kPlainUsAscii + "0 0 NIL NIL NIL NIL)", ""},
    {"empty message", "", kPlainUsAscii + "0 0 NIL NIL NIL NIL)", ""},
    {"no blank line after the header", "Subject: x\nno colon here\n", kPlainUsAscii + "0 0 NIL NIL NIL NIL)", ""},
    {"multipart without boundary parameter", "Content-Type: multipart/mixed\n\n--x\n\nhello\n",
     "(" + kPlainUsAscii + "0 0 NIL NIL NIL NIL) \"mixed\" NIL NIL NIL NIL)", ""},
    {"boundary that never comes", "Content-Type: multipart/mixed; boundary=b\n\nhello\n--c\n",
     "(" + kPlainUsAscii + "0 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)", ""},
    {"unterminated multipart", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nhello\n",
     "(" + kPlainUsAscii + "7 1 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)", ""},
    {"part without blank line before the next boundary",
     "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/x-a\n--b\n\nz\n--b--\n",
     "((\"text\" \"x-a\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)" + kPlainUsAscii +
         "1 1 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)", ""},
    {"boundary with trailing garbage and white space",
     "Content-Type: multipart/mixed; boundary=b\n\n--b  \n\none\n--b--junk\n",
     "(" + kPlainUsAscii + "3 1 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)", ""},
    {"inner boundary closing the outer part's part",
     "Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: multipart/mixed; boundary=i\n\n--i\n\nx\n--o\n\ny\n--o--\n",
     "((" + kPlainUsAscii + "1 1 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"i\") NIL NIL NIL)" + kPlainUsAscii +
         "1 1 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"o\") NIL NIL NIL)", ""},
    {"an inner boundary that is a prefix of the outer one",
     "Content-Type: multipart/mixed; boundary=ab\n\n--ab\nContent-Type: multipart/mixed; boundary=a\n\n--a\n\nx\n--ab\n\ny\n--ab--\n",
     "((" + kPlainUsAscii + "1 1 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"a\") NIL NIL NIL)" + kPlainUsAscii +
         "1 1 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"ab\") NIL NIL NIL)", ""},
    {"content type without subtype", "Content-Type: text; charset=iso-8859-1\n\nx",
     "(\"text\" \"plain\" (\"charset\" \"iso-8859-1\") NIL NIL \"7bit\" 1 1 NIL NIL NIL NIL)", ""},
    {"content type unknown without subtype", "Content-Type: foo\n\nx", kPlainUsAscii + "1 1 NIL NIL NIL NIL)", ""},
    {"duplicate content type: the first counts",
     "Content-Type: image/png\nContent-Type: text/html\nContent-Transfer-Encoding: base64\n\nAAAA\n",
     "(\"image\" \"png\" NIL NIL NIL \"base64\" 6 NIL NIL NIL NIL)", "(\"image\" \"png\" NIL NIL NIL \"base64\" 6)"},
    {"unknown transfer encoding and extension fields",
     "Content-Type: application/x-thing; name=\"a b\"\nContent-Transfer-Encoding: X-UUEncode\nContent-ID: <id@x>\n"
     "Content-Description: a thing\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\nContent-Language: en, de\n"
     "Content-Location: http://x.test/a\nContent-Disposition: inline\n\nbody",
     "(\"application\" \"x-thing\" (\"name\" \"a b\") \"<id@x>\" \"a thing\" \"x-uuencode\" 4 \"Q2hlY2sgSW50ZWdyaXR5IQ==\""
     " (\"inline\" NIL) (\"en\" \"de\") \"http://x.test/a\")", ""},
    {"RFC 2231 continuations and charset",
     "Content-Type: application/pdf; name*0*=utf-8''%E2%82%AC; name*1=\" rate.pdf\"\n\nx",
     "(\"application\" \"pdf\" (\"name*\" \"utf-8''%E2%82%AC%20rate.pdf\") NIL NIL \"7bit\" 1 NIL NIL NIL NIL)", ""},
    {"multipart/digest parts default to message/rfc822",
     "Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: s\n\nb\n--d--\n",
     "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 15 (NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL) " + kPlainUsAscii +
         "1 1 NIL NIL NIL NIL) 3 NIL NIL NIL NIL) \"digest\" (\"boundary\" \"d\") NIL NIL NIL)", ""},
    {"8-bit parameter value is a literal", "Content-Type: text/plain; name=\"caf\xc3\xa9\"\n\n",
     "(\"text\" \"plain\" (\"name\" {5}\r\ncaf\xc3\xa9) NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)", ""},
};

}  // namespace

TEST_CASE("mime: BODYSTRUCTURE and BODY of tricky messages", "[mime]") {
    for (const auto& c : kCases) {
        INFO(c.name);
        MimePart root = parse_mime(c.message);
        CHECK(imap_bodystructure(root) == c.bodystructure);
        if (!c.body.empty()) CHECK(imap_body(root) == c.body);
    }
}

TEST_CASE("mime: byte by byte, and with CRLF line ends, the tree is the same", "[mime]") {
    for (const auto& c : kCases) {
        INFO(c.name);
        MimePart whole = parse_mime(c.message);
        MimePart bytes = bytewise(c.message);
        CHECK(dump(whole) == dump(bytes));
        MimePart with_crlf = bytewise(crlf(c.message));
        CHECK(imap_bodystructure(with_crlf) == c.bodystructure);
        CHECK(imap_envelope(with_crlf) == imap_envelope(whole));
        CHECK(with_crlf.body.crlf_size == whole.body.crlf_size);
        CHECK(with_crlf.body.size == whole.body.crlf_size);
    }
}

// A body no boundary can end has its lines counted in bulk (MimeParser::count_lines): fed in one
// piece, in pieces cut anywhere, or byte by byte (where each line goes through take_line), the
// tree is the same, line ends of either kind, lone CRs and a last line without its LF included.
TEST_CASE("mime: lines counted in bulk give the tree of lines taken one by one", "[mime]") {
    std::string body;
    for (int i = 0; i < 300; ++i)
        body += std::string(static_cast<size_t>(i % 97), 'x') + (i % 3 == 0 ? "\r\n" : i % 7 == 0 ? "\r\r\n" : "\n");
    body += "a lone\rCR\n\n\r\n";
    const std::string messages[] = {
        "Subject: single\n\n" + body,
        "Subject: single, no final LF\n\n" + body + "last",
        "Subject: ends in CR\n\n" + body + "last\r",
        "Content-Type: multipart/mixed; boundary=b\n\npre\n--b\n\n" + body + "--b--\n" + body + "epilogue",
        "Content-Type: message/rfc822\n\nSubject: inner\n\n" + body,
        "Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: multipart/mixed; boundary=i\n\n--i\n\n" +
            body + "--i--\n" + body + "--o\n\n" + body + "--o--\n" + body,
    };
    for (const auto& m : messages) {
        CAPTURE(m.substr(0, 40));
        std::string expected = dump(bytewise(m));
        CHECK(dump(parse_mime(m)) == expected);
        for (size_t step : {size_t{2}, size_t{7}, size_t{64}, size_t{1000}}) {
            CAPTURE(step);
            MimeParser parser;
            for (size_t at = 0; at < m.size(); at += step) parser.feed(std::string_view(m).substr(at, step));
            CHECK(dump(parser.finish()) == expected);
        }
        CHECK(dump(parse_mime(crlf(m))) == dump(bytewise(crlf(m))));
    }
}

TEST_CASE("mime: byte ranges of the nested message", "[mime]") {
    std::string m = kNested;
    MimePart root = parse_mime(m);
    auto text = [&](const MimeRange& r) { return m.substr(r.offset, r.size); };
    REQUIRE(root.children.size() == 3);
    CHECK(text(root.header).substr(0, 15) == "From: a@b.test\n");
    CHECK(text(root.header).back() == '\n');
    CHECK(text(root.body).substr(0, 9) == "preamble\n");
    CHECK(text(root.body).substr(text(root.body).size() - 9) == "epilogue\n");
    CHECK(text(root.children[0].body) == "caf=C3=A9");
    CHECK(text(root.children[0].header) == "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n");
    const MimePart& alt = root.children[1];
    REQUIRE(alt.children.size() == 2);
    CHECK(text(alt.children[0].header) == "\n");
    CHECK(text(alt.children[0].body) == "plain");
    CHECK(text(alt.children[1].body) == "<p>html</p>");
    CHECK(text(alt.body).substr(text(alt.body).size() - 9) == "--inner--");
    const MimePart& msg = root.children[2];
    REQUIRE(msg.children.size() == 1);
    CHECK(text(msg.body) == "From: c@d.test\nSubject: inner\n\nbody line 1\nbody line 2");
    CHECK(text(msg.children[0].header) == "From: c@d.test\nSubject: inner\n\n");
    CHECK(text(msg.children[0].body) == "body line 1\nbody line 2");
    CHECK(msg.children[0].depth == 2);
    CHECK(root.header.crlf_size == root.header.size + 5);  // five header lines with CRLF
    CHECK(root.body.lines == 28);
    CHECK(root.header.size + root.body.size == m.size());
}

TEST_CASE("mime: ENVELOPE", "[mime]") {
    struct Env {
        const char* header;
        const char* envelope;
    };
    const Env cases[] = {
        {"From: \"Joe Q. Public\" <john.q.public@example.com>\n"
         "To: Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>\n"
         "Cc: <boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>\n"
         "Subject: =?utf-8?Q?caf=C3=A9?= time\n"
         "Date: Tue, 1 Jul 2003 10:52:37 +0200\n"
         "Message-ID: <5678.21-Nov-1997@example.com>\n\n",
         "(\"Tue, 1 Jul 2003 10:52:37 +0200\" \"=?utf-8?Q?caf=C3=A9?= time\""
         " ((\"Joe Q. Public\" NIL \"john.q.public\" \"example.com\"))"
         " ((\"Joe Q. Public\" NIL \"john.q.public\" \"example.com\"))"
         " ((\"Joe Q. Public\" NIL \"john.q.public\" \"example.com\"))"
         " ((\"Mary Smith\" NIL \"mary\" \"x.test\")(NIL NIL \"jdoe\" \"example.org\")(\"Who?\" NIL \"one\" \"y.test\"))"
         " ((NIL NIL \"boss\" \"nil.test\")(\"Giant; \\\"Big\\\" Box\" NIL \"sysservices\" \"example.net\"))"
         " NIL NIL \"<5678.21-Nov-1997@example.com>\")"},
        {"From: a@x.test\nSender: s@x.test\nReply-To: \nTo: undisclosed-recipients:;\n\n",
         "(NIL NIL ((NIL NIL \"a\" \"x.test\")) ((NIL NIL \"s\" \"x.test\")) ((NIL NIL \"a\" \"x.test\"))"
         " ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) NIL NIL NIL NIL)"},
        {"To: A Group:a@x.test, \"B\" <b@y.test>;, c@z.test\nBcc: Open Group: d@w.test\n\n",
         "(NIL NIL NIL NIL NIL"
         " ((NIL NIL \"A Group\" NIL)(NIL NIL \"a\" \"x.test\")(\"B\" NIL \"b\" \"y.test\")(NIL NIL NIL NIL)(NIL NIL \"c\" \"z.test\"))"
         " NIL ((NIL NIL \"Open Group\" NIL)(NIL NIL \"d\" \"w.test\")(NIL NIL NIL NIL)) NIL NIL)"},
        {"From: root\nTo: user@host (Real Name), <@r1,@r2:x@y.test>, <>\n\n",
         "(NIL NIL ((NIL NIL \"root\" \"MISSING_DOMAIN\")) ((NIL NIL \"root\" \"MISSING_DOMAIN\"))"
         " ((NIL NIL \"root\" \"MISSING_DOMAIN\"))"
         " ((\"Real Name\" NIL \"user\" \"host\")(NIL \"@r1,@r2\" \"x\" \"y.test\")(NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))"
         " NIL NIL NIL NIL)"},
        {"Subject: caf\xc3\xa9\n  folded\nSubject: second\nIn-Reply-To: <a@b>\nFrom: =?utf-8?B?w6k=?= <e@x.test>\n\n",
         "(NIL {13}\r\ncaf\xc3\xa9  folded ((\"=?utf-8?B?w6k=?=\" NIL \"e\" \"x.test\")) ((\"=?utf-8?B?w6k=?=\" NIL \"e\" \"x.test\"))"
         " ((\"=?utf-8?B?w6k=?=\" NIL \"e\" \"x.test\")) NIL NIL NIL \"<a@b>\" NIL)"},
        {"Subject:\n\n", "(NIL \"\" NIL NIL NIL NIL NIL NIL NIL NIL)"},
    };
    for (const auto& c : cases) {
        INFO(c.header);
        CHECK(imap_envelope(parse_mime(c.header)) == c.envelope);
        CHECK(imap_envelope(bytewise(crlf(c.header))) == c.envelope);
    }
}

TEST_CASE("mime: the envelope of a message/rfc822 part is its message's", "[mime]") {
    MimePart root = parse_mime(kNested);
    CHECK(imap_envelope(root.children[2].children[0]).substr(0, 12) == "(NIL \"inner\"");
    CHECK_FALSE(root.children[0].envelope);
    CHECK(imap_envelope(root).substr(0, 13) == "(NIL \"nested\"");
}

TEST_CASE("mime: parameters", "[mime]") {
    MimePart p = parse_mime(
        "Content-Type: text/plain; charset=\"UTF-8\" (comment); format=flowed\n"
        "Content-Disposition: attachment; filename*=iso-8859-1'fr'caf%E9.txt; size=3\n\nx");
    REQUIRE(p.params.size() == 2);
    CHECK(p.params[0].name == "charset");
    CHECK(p.params[0].value == "UTF-8");
    CHECK(p.param("FORMAT")->value == "flowed");
    REQUIRE(p.disposition_params.size() == 2);
    const MimeParam& f = p.disposition_params[0];
    CHECK(f.extended);
    CHECK(f.charset == "iso-8859-1");
    CHECK(f.language == "fr");
    CHECK(f.decoded == "caf\xc3\xa9.txt");
    CHECK(imap_bodystructure(p) ==
          "(\"text\" \"plain\" (\"charset\" \"UTF-8\" \"format\" \"flowed\") NIL NIL \"7bit\" 1 1 NIL"
          " (\"attachment\" (\"filename*\" \"iso-8859-1'fr'caf%E9.txt\" \"size\" \"3\")) NIL NIL)");
    // Sections out of order join in order; a missing section ends the value there.
    auto params = parse_params("; a*1=two; a*0=one; b*0=x; b*2=z");
    REQUIRE(params.size() == 2);
    CHECK(params[0].value == "onetwo");
    CHECK(params[1].value == "x");
}

TEST_CASE("mime: an IMAP string is quoted or a literal", "[mime]") {
    auto s = [](std::string_view v, bool utf8 = false) {
        std::string out;
        append_imap_string(out, v, utf8);
        return out;
    };
    CHECK(s("") == "\"\"");
    CHECK(s("a \"b\" \\c") == "\"a \\\"b\\\" \\\\c\"");
    CHECK(s("caf\xc3\xa9") == "{5}\r\ncaf\xc3\xa9");
    CHECK(s("caf\xc3\xa9", true) == "\"caf\xc3\xa9\"");
    CHECK(s(std::string_view("a\r\nb\0c", 6)) == "\"abc\"");
}

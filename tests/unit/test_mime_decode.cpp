// Unit tests of MIME decoding: quoted-printable, base64, charsets, RFC 2047 words, case-insensitive UTF-8 search.
#include <catch.hpp>

#include <string>

#include "common/mail/mime_decode.hpp"

using namespace ferry::mail;

namespace {

template <class Decoder>
std::string bytewise(std::string_view in) {
    Decoder d;
    std::string out;
    for (char c : in) d.feed(std::string_view(&c, 1), out);
    d.finish(out);
    return out;
}

}  // namespace

TEST_CASE("mime decode: quoted-printable", "[mime]") {
    struct Row {
        const char* in;
        const char* out;
    };
    const Row rows[] = {
        {"caf=C3=A9", "caf\xc3\xa9"},
        {"caf=c3=a9", "caf\xc3\xa9"},                   // lower-case hex is tolerated
        {"soft=\nbreak", "softbreak"},
        {"soft=\r\nbreak", "softbreak"},
        {"soft=  \nbreak", "softbreak"},                 // white space after a soft break's "="
        {"trailing   \nspace\t\r\nx", "trailing\nspace\r\nx"},
        {"inner  space", "inner  space"},
        {"bad =ZZ and =4", "bad =ZZ and =4"},            // not an escape: kept
        {"end=", "end"},
        {"end=4", "end=4"},
        {"a=3D=3d", "a=="},
        {"x  ", "x"},
        {"", ""},
    };
    for (const auto& r : rows) {
        INFO(r.in);
        CHECK(decode_quoted_printable(r.in) == r.out);
        CHECK(bytewise<QpDecoder>(r.in) == r.out);
    }
}

TEST_CASE("mime decode: base64", "[mime]") {
    struct Row {
        const char* in;
        const char* out;
    };
    const Row rows[] = {
        {"aGVsbG8=", "hello"},
        {"aGVs\nbG8h\r\n", "hello!"},
        {"aGVsbG8", "hello"},          // padding missing
        {"aG Vs*bG8=", "hello"},       // junk skipped
        {"YQ==", "a"},
        {"YWI=", "ab"},
        {"Y", ""},
        {"", ""},
    };
    for (const auto& r : rows) {
        INFO(r.in);
        CHECK(decode_base64(r.in) == r.out);
        CHECK(bytewise<Base64Decoder>(r.in) == r.out);
    }
    CHECK(transfer_encoding_of("BASE64") == TransferEncoding::base64);
    CHECK(transfer_encoding_of("Quoted-Printable") == TransferEncoding::quoted_printable);
    CHECK(transfer_encoding_of("8bit") == TransferEncoding::identity);
    CHECK(transfer_encoding_of("x-uuencode") == TransferEncoding::unknown);
}

TEST_CASE("mime decode: charsets to UTF-8", "[mime]") {
    CHECK(to_utf8("iso-8859-1", "caf\xe9") == "caf\xc3\xa9");
    CHECK(to_utf8("ISO-8859-15", "\xa4") == "\xe2\x82\xac");
    CHECK(to_utf8("windows-1252", "\x80") == "\xe2\x82\xac");
    CHECK(to_utf8("utf-8", "ok\xff") == "ok\xef\xbf\xbd");  // invalid becomes U+FFFD
    CHECK(to_utf8("us-ascii", "caf\xc3\xa9") == "caf\xc3\xa9");
    CHECK_FALSE(to_utf8("x-no-such-charset", "abc"));
    CHECK(sanitize_utf8("a\xc3") == "a\xef\xbf\xbd");
    CHECK(sanitize_utf8("\xed\xa0\x80") == "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // a surrogate
    // A sequence split between two parts is joined.
    CharsetConverter conv("utf-16be");
    std::string out;
    conv.feed(std::string_view("\x00", 1), out);
    conv.feed(std::string_view("a\x00", 2), out);
    conv.feed("b", out);
    conv.finish(out);
    CHECK(out == "ab");
    CharsetConverter utf8("UTF-8");
    std::string split;
    utf8.feed("caf\xc3", split);
    utf8.feed("\xa9", split);
    utf8.finish(split);
    CHECK(split == "caf\xc3\xa9");
    CharsetConverter unknown("x-unknown");
    CHECK_FALSE(unknown.known());
}

TEST_CASE("mime decode: RFC 2047 encoded words", "[mime]") {
    struct Row {
        const char* in;
        const char* out;
    };
    const Row rows[] = {
        {"=?utf-8?Q?caf=C3=A9?=", "caf\xc3\xa9"},
        {"=?ISO-8859-1?B?Y2Fm6Q==?=", "caf\xc3\xa9"},
        {"=?utf-8?q?a?= =?utf-8?q?b?=", "ab"},                      // space between words goes
        {"a =?utf-8?q?x_y?= b", "a x y b"},
        {"=?utf-8?B?w6k=?=\r\n =?iso-8859-1?q?=E9?=", "\xc3\xa9\xc3\xa9"},
        {"=?utf-8?Q?=C3?= =?utf-8?Q?=A9?=", "\xc3\xa9"},           // a character split between words
        {"=?x-unknown?Q?a?=", "=?x-unknown?Q?a?="},                 // unknown charset: left
        {"=?utf-8?X?a?=", "=?utf-8?X?a?="},                         // unknown encoding: left
        {"=?utf-8?Q?a b?=", "=?utf-8?Q?a b?="},                     // white space inside: not a word
        {"=?utf-8*en?Q?hi?=", "hi"},                                // RFC 2231 language
        {"plain caf\xc3\xa9", "plain caf\xc3\xa9"},
        {"latin caf\xe9", "latin caf\xef\xbf\xbd"},
        {"=?utf-8?Q?unterminated", "=?utf-8?Q?unterminated"},
    };
    for (const auto& r : rows) {
        INFO(r.in);
        CHECK(decode_header_value(r.in) == r.out);
    }
}

TEST_CASE("mime decode: case-insensitive UTF-8 search", "[mime]") {
    CHECK(contains_ci("Un CAF\xc3\x89 noir", "caf\xc3\xa9"));
    CHECK(contains_ci("\xce\xa3\xce\x9f\xce\xa6\xce\x99\xce\x91", "\xcf\x83\xce\xbf\xcf\x86"));  // Greek
    CHECK(contains_ci("\xd0\x9c\xd0\x9e\xd0\xa1\xd0\x9a\xd0\x92\xd0\x90", "\xd0\xbc\xd0\xbe\xd1\x81"));  // Cyrillic
    CHECK(contains_ci("anything", ""));
    CHECK_FALSE(contains_ci("cafe", "caf\xc3\xa9"));
    CHECK_FALSE(contains_ci("ab", "abc"));
    CHECK(utf8_fold("HeLLo \xc3\x84") == "hello \xc3\xa4");
    // A match split between parts, a character split too.
    Utf8Search s("needle");
    for (std::string_view part : {"hay NE", "E", "DLE hay"}) s.feed(part);
    CHECK(s.found());
    Utf8Search e("\xc3\xa9t\xc3\xa9");
    e.feed("un \xc3");
    e.feed("\x89T\xc3");
    CHECK_FALSE(e.found());
    e.feed("\x89");
    CHECK(e.found());
    Utf8Search n("xyz");
    n.feed("xy");
    n.feed("zz");
    CHECK(n.found());
}

TEST_CASE("mime decode: a part's text for SEARCH", "[mime]") {
    PartTextDecoder d("quoted-printable", "iso-8859-1");
    std::string out;
    for (char c : std::string_view("caf=E9 au l=\nait\n")) d.feed(std::string_view(&c, 1), out);
    d.finish(out);
    CHECK(out == "caf\xc3\xa9 au lait\n");
    PartTextDecoder b("base64", "utf-8");
    std::string b_out;
    b.feed("Y2Fmw6k=", b_out);
    b.finish(b_out);
    CHECK(b_out == "caf\xc3\xa9");
}

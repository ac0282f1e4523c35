// Unit tests of the 8-bit to 7-bit converter (RFC 6152): whole, byte by byte, and the refusals.
#include <catch.hpp>

#include "common/mail/seven_bit.hpp"

using ferry::mail::SevenBitEncoder;
using ferry::mail::to_seven_bit;

namespace {

std::string convert(const std::string& in) {
    auto r = to_seven_bit(in);
    REQUIRE(r);
    return r.value();
}

std::string byte_by_byte(const std::string& in) {
    SevenBitEncoder e;
    std::string out;
    for (char c : in) REQUIRE(e.feed(std::string_view(&c, 1), out));
    REQUIRE(e.finish(out));
    return out;
}

}  // namespace

TEST_CASE("a plain 8-bit message becomes MIME quoted-printable", "[seven_bit]") {
    std::string in = "Subject: hi\n\ncaf\xc3\xa9 = ok \nsecond line\n";
    std::string out = convert(in);
    CHECK(out ==
          "Subject: hi\nMIME-Version: 1.0\nContent-Transfer-Encoding: quoted-printable\n\n"
          "caf=C3=A9 =3D ok=20\nsecond line\n");
    CHECK(byte_by_byte(in) == out);
    CHECK_FALSE(ferry::mail::has_8bit(out));
}

TEST_CASE("an 8bit label is replaced, folded lines included", "[seven_bit]") {
    std::string in =
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding:\n 8bit\n\n\xc3\xa9\n";
    CHECK(convert(in) ==
          "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
          "Content-Transfer-Encoding: quoted-printable\n\n=C3=A9\n");
}

TEST_CASE("long lines get soft line breaks of at most 76 characters", "[seven_bit]") {
    std::string body(200, 'x');
    std::string out = convert("A: b\n\n" + body + "\n");
    size_t start = out.find("\n\n") + 2;
    std::string text = out.substr(start);
    size_t pos = 0, lines = 0;
    while (pos < text.size()) {
        size_t lf = text.find('\n', pos);
        CHECK(lf - pos <= 76);
        pos = lf + 1;
        ++lines;
    }
    CHECK(lines == 3);
    std::string joined;
    for (char c : text)
        if (c != '\n' && c != '=') joined += c;
    CHECK(joined == body);
}

TEST_CASE("multipart: only the identity-encoded leaves are re-encoded", "[seven_bit]") {
    std::string in =
        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\nContent-Transfer-Encoding: 8bit\n\n"
        "preamble \xff\n--b1\nContent-Type: text/plain\nContent-Transfer-Encoding: 8bit\n\n\xc3\xa9t\xc3\xa9\n"
        "--b1\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAAA\n--b1--\nepilogue\n";
    std::string out = convert(in);
    CHECK(out ==
          "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\nContent-Transfer-Encoding: 7bit\n\n"
          "preamble ?\n--b1\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n=C3=A9t=C3=A9\n"
          "--b1\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAAA\n--b1--\nepilogue\n");
    CHECK(byte_by_byte(in) == out);
}

TEST_CASE("an attached message is walked into", "[seven_bit]") {
    std::string in =
        "Content-Type: multipart/mixed; boundary=x\nMIME-Version: 1.0\n\n--x\nContent-Type: message/rfc822\n\n"
        "Subject: inner\n\n\xc3\xa9\n--x--\n";
    std::string out = convert(in);
    CHECK(out ==
          "Content-Type: multipart/mixed; boundary=x\nMIME-Version: 1.0\n\n--x\nContent-Type: message/rfc822\n\n"
          "Subject: inner\nMIME-Version: 1.0\nContent-Transfer-Encoding: quoted-printable\n\n=C3=A9\n--x--\n");
}

TEST_CASE("what cannot be converted is refused", "[seven_bit]") {
    auto header = to_seven_bit("Subject: caf\xc3\xa9\n\nbody \xc3\xa9\n");
    REQUIRE_FALSE(header);
    CHECK(header.error().code == 554);
    CHECK(header.error().enhanced == "5.6.3");
    CHECK_FALSE(to_seven_bit("Content-Type: multipart/signed; boundary=s\n\n--s\n\n\xc3\xa9\n--s--\n"));
    CHECK_FALSE(to_seven_bit("Content-Transfer-Encoding: base64\n\n\xc3\xa9\n"));
    CHECK_FALSE(to_seven_bit("Content-Type: multipart/mixed\n\n\xc3\xa9\n"));
    ferry::mail::SevenBitLimits small;
    small.max_depth = 2;
    CHECK_FALSE(to_seven_bit("Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: multipart/mixed; "
                             "boundary=b\n\n--b\nContent-Type: multipart/mixed; boundary=c\n\n--c\n\nx\n",
                             small));
    small.max_line = 10;
    CHECK_FALSE(to_seven_bit("A: b\n\n" + std::string(11, 'x') + "\n", small));
}

TEST_CASE("a last line without LF and CRLF line ends", "[seven_bit]") {
    CHECK(convert("A: b\r\n\r\n\xe9") == "A: b\nMIME-Version: 1.0\nContent-Transfer-Encoding: quoted-printable\n\n=E9\n");
}

// SASL: strict base64, PLAIN (RFC 4616) decoding at its limits, the LOGIN state machine.
#include <catch.hpp>

#include <string>

#include "common/auth/sasl.hpp"

using namespace ferry;
using namespace ferry::sasl;
using namespace std::string_literals;

TEST_CASE("base64 RFC 4648 test vectors", "[sasl][base64]") {
    const std::pair<std::string, std::string> vectors[] = {
        {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
        {"\0user\0pass"s, "AHVzZXIAcGFzcw=="}, {"\xff\xfe\xfd"s, "//79"},
    };
    for (const auto& [raw, enc] : vectors) {
        CAPTURE(enc);
        CHECK(base64_encode(raw) == enc);
        auto d = base64_decode(enc);
        REQUIRE(d.ok());
        CHECK(d.value() == raw);
    }
}

TEST_CASE("base64 round trip of every byte value and length", "[sasl][base64]") {
    std::string all;
    for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
    for (size_t len = 0; len <= all.size(); len += 7) {
        auto d = base64_decode(base64_encode(all.substr(0, len)));
        REQUIRE(d.ok());
        CHECK(d.value() == all.substr(0, len));
    }
}

TEST_CASE("base64 decoding is strict", "[sasl][base64]") {
    const char* bad[] = {
        "Zg",         // no padding
        "Zg=",        // short padding
        "Zm9v\r\n",   // line break
        "Zm 9v",      // space
        "Zm9v====",   // padding only block
        "Z===",       // three pad characters
        "Zg==Zg==",   // padding in the middle
        "Zh==",       // non-zero unused bits
        "Zm9=",       // non-zero unused bits (one pad)
        "Zm9v!A==",   // character outside the alphabet
        "Zm9-",       // base64url alphabet
        "=Zg=",
    };
    for (const char* b : bad) {
        CAPTURE(b);
        auto d = base64_decode(b);
        REQUIRE_FALSE(d.ok());
        CHECK(d.error().code == 501);
        CHECK(d.error().enhanced == "5.5.2");
    }
}

TEST_CASE("PLAIN message decoding table", "[sasl][plain]") {
    struct Row {
        std::string msg;
        bool ok;
        std::string authcid, password;
    };
    const Row rows[] = {
        {"\0tim\0tanstaaftanstaaf"s, true, "tim", "tanstaaftanstaaf"},
        {"tim\0tim\0secret"s, true, "tim", "secret"},                  // authzid equal to authcid
        {"\0demo@example.test\0p\xc3\xa4ss w0rd"s, true, "demo@example.test", "p\xc3\xa4ss w0rd"},
        {"Ursel\0Kurt\0xipj3plmq"s, false, "", ""},                      // proxy login refused
        {"tim tanstaaf"s, false, "", ""},                                // no NUL
        {"\0tim tanstaaf"s, false, "", ""},                              // one NUL
        {"\0\0secret"s, false, "", ""},                                  // empty authcid
        {"\0tim\0"s, false, "", ""},                                     // empty password
        {"\0tim\0pa\0ss"s, false, "", ""},                               // extra NUL
        {"\0ti\nm\0secret"s, false, "", ""},                             // LF in authcid
        {"t\rim\0t\rim\0secret"s, false, "", ""},                       // CR in authzid
        {"\0tim\0pa\nss\x7f"s, true, "tim", "pa\nss\x7f"},              // a password is never logged
        {""s, false, "", ""},
    };
    for (const auto& r : rows) {
        CAPTURE(base64_encode(r.msg));
        auto c = parse_plain(r.msg);
        REQUIRE(c.ok() == r.ok);
        if (r.ok) {
            CHECK(c->authcid == r.authcid);
            CHECK(c->password == r.password);
        } else {
            CHECK(c.error().code == 535);
            CHECK(c.error().enhanced == "5.7.8");
        }
    }
}

TEST_CASE("PLAIN limits: 255-octet identities and the password limit", "[sasl][plain]") {
    std::string id255(255, 'a'), id256(256, 'a');
    std::string pw1024(1024, 'p'), pw1025(1025, 'p');
    CHECK(parse_plain(id255 + '\0' + id255 + '\0' + pw1024).ok());
    CHECK_FALSE(parse_plain("\0"s + id256 + '\0' + "pw").ok());
    CHECK_FALSE(parse_plain(id256 + '\0' + id256 + '\0' + "pw").ok());
    CHECK_FALSE(parse_plain("\0u\0"s + pw1025).ok());

    // decode_plain: the largest valid message decodes; text longer than any valid one is refused unread.
    auto biggest = base64_encode(id255 + '\0' + id255 + '\0' + pw1024);
    CHECK(decode_plain(biggest).ok());
    CHECK_FALSE(decode_plain(biggest + "AAAA").ok());
    Limits small{8, 8};
    CHECK(decode_plain(base64_encode("\0user\0password"s), small).ok());
    CHECK_FALSE(decode_plain(base64_encode("\0username1\0pass"s), small).ok());
    auto bad64 = decode_plain("AHVzZXIAcGFzcw");
    REQUIRE_FALSE(bad64.ok());
    CHECK(bad64.error().code == 501);
}

// Identities are logged: a control byte in one could forge log lines (LF, CR) or hide text.
TEST_CASE("identities with control bytes are refused", "[sasl][plain][login]") {
    const std::string forged = "x\n2026-01-01T00:00:00.000Z ferry-smtpd[1]: info: AUTH PLAIN user=boss ok";
    for (int b : {0x01, 0x08, 0x09, 0x0a, 0x0d, 0x1b, 0x1f, 0x7f}) {
        std::string id = "de" + std::string(1, static_cast<char>(b)) + "mo@example.test";
        CAPTURE(b);
        auto plain = parse_plain("\0"s + id + '\0' + "pw");
        REQUIRE_FALSE(plain.ok());
        CHECK(plain.error().reply() == "535 5.7.8 Authentication credentials invalid");
        CHECK(plain.error().detail == "PLAIN identity with a control character");
        CHECK_FALSE(parse_plain(id + '\0' + id + '\0' + "pw").ok());

        Exchange ex(Mechanism::login);
        Step s = ex.start(std::string_view(base64_encode(id)));
        REQUIRE(s.kind == Step::Kind::error);
        CHECK(s.error.reply() == "535 5.7.8 Authentication credentials invalid");
        CHECK(s.error.detail == "LOGIN user name with a control character");
        CHECK(ex.finished());
    }
    CHECK_FALSE(decode_plain(base64_encode("\0"s + forged + "\0pw")).ok());
    // The edges that stay allowed: space, "~", and 8-bit (UTF-8) octets.
    CHECK(parse_plain("\0a b~\xc3\xa4@example.test\0pw"s).ok());
    Exchange ok(Mechanism::login);
    CHECK(ok.start(std::string_view(base64_encode("a b~\xc3\xa4@example.test"))).kind == Step::Kind::challenge);
}

TEST_CASE("mechanism names are case-insensitive", "[sasl]") {
    CHECK(parse_mechanism("PLAIN") == Mechanism::plain);
    CHECK(parse_mechanism("plain") == Mechanism::plain);
    CHECK(parse_mechanism("Login") == Mechanism::login);
    CHECK_FALSE(parse_mechanism("CRAM-MD5").has_value());
    CHECK_FALSE(parse_mechanism("PLAINX").has_value());
    CHECK_FALSE(parse_mechanism("").has_value());
}

TEST_CASE("PLAIN exchange with and without initial response", "[sasl][plain]") {
    std::string ir = base64_encode("\0demo\0secret"s);
    {
        Exchange ex(Mechanism::plain);
        Step s = ex.start(std::string_view(ir));
        REQUIRE(s.kind == Step::Kind::done);
        CHECK(s.creds.authcid == "demo");
        CHECK(s.creds.password == "secret");
        CHECK(ex.finished());
    }
    {
        Exchange ex(Mechanism::plain);
        Step s = ex.start(std::nullopt);
        REQUIRE(s.kind == Step::Kind::challenge);
        CHECK(s.challenge.empty());  // "334 " / "+ "
        s = ex.next(ir);
        REQUIRE(s.kind == Step::Kind::done);
        CHECK(s.creds.password == "secret");
        // Nothing more is expected.
        CHECK(ex.next(ir).kind == Step::Kind::error);
    }
    {
        Exchange ex(Mechanism::plain);
        Step s = ex.start(std::string_view("="));  // empty initial response: invalid PLAIN
        CHECK(s.kind == Step::Kind::error);
    }
    {
        Exchange ex(Mechanism::plain);
        REQUIRE(ex.start(std::nullopt).kind == Step::Kind::challenge);
        Step s = ex.next("*");
        CHECK(s.kind == Step::Kind::cancelled);
        CHECK(s.error.reply() == "501 5.7.0 Authentication cancelled");
    }
}

TEST_CASE("LOGIN state machine", "[sasl][login]") {
    SECTION("two challenges") {
        Exchange ex(Mechanism::login);
        Step s = ex.start(std::nullopt);
        REQUIRE(s.kind == Step::Kind::challenge);
        CHECK(s.challenge == "VXNlcm5hbWU6");  // "Username:"
        s = ex.next(base64_encode("demo@example.test"));
        REQUIRE(s.kind == Step::Kind::challenge);
        CHECK(s.challenge == "UGFzc3dvcmQ6");  // "Password:"
        s = ex.next(base64_encode("secret"));
        REQUIRE(s.kind == Step::Kind::done);
        CHECK(s.creds.authcid == "demo@example.test");
        CHECK(s.creds.password == "secret");
        CHECK(s.creds.authzid.empty());
    }
    SECTION("initial response is the user name") {
        Exchange ex(Mechanism::login);
        Step s = ex.start(std::string_view(base64_encode("demo")));
        REQUIRE(s.kind == Step::Kind::challenge);
        CHECK(s.challenge == "UGFzc3dvcmQ6");
        s = ex.next(base64_encode("pw"));
        REQUIRE(s.kind == Step::Kind::done);
        CHECK(s.creds.authcid == "demo");
    }
    SECTION("cancel at the password prompt") {
        Exchange ex(Mechanism::login);
        REQUIRE(ex.start(std::nullopt).kind == Step::Kind::challenge);
        REQUIRE(ex.next(base64_encode("demo")).kind == Step::Kind::challenge);
        Step s = ex.next("*");
        CHECK(s.kind == Step::Kind::cancelled);
        CHECK(s.error.code == 501);
        CHECK(ex.finished());
    }
    SECTION("bad base64 user name") {
        Exchange ex(Mechanism::login);
        REQUIRE(ex.start(std::nullopt).kind == Step::Kind::challenge);
        Step s = ex.next("not base64!");
        CHECK(s.kind == Step::Kind::error);
        CHECK(s.error.reply() == "501 5.5.2 Cannot decode response");
    }
    SECTION("empty user name and NUL in the password") {
        Exchange a(Mechanism::login);
        CHECK(a.start(std::string_view("=")).kind == Step::Kind::error);
        Exchange b(Mechanism::login);
        REQUIRE(b.start(std::string_view(base64_encode("u"))).kind == Step::Kind::challenge);
        CHECK(b.next(base64_encode("p\0w"s)).kind == Step::Kind::error);
    }
    SECTION("limits") {
        Exchange a(Mechanism::login);
        REQUIRE(a.start(std::string_view(base64_encode(std::string(255, 'u')))).kind == Step::Kind::challenge);
        CHECK(a.next(base64_encode(std::string(1024, 'p'))).kind == Step::Kind::done);
        Exchange b(Mechanism::login);
        CHECK(b.start(std::string_view(base64_encode(std::string(256, 'u')))).kind == Step::Kind::error);
        Exchange c(Mechanism::login);
        REQUIRE(c.start(std::string_view(base64_encode("u"))).kind == Step::Kind::challenge);
        CHECK(c.next(base64_encode(std::string(1025, 'p'))).kind == Step::Kind::error);
    }
    SECTION("a response with no challenge outstanding") {
        Exchange ex(Mechanism::login);
        CHECK(ex.next("ZGVtbw==").kind == Step::Kind::error);
    }
}

TEST_CASE("SASL exchange fed responses byte-exact from a real client transcript", "[sasl][plain]") {
    // From RFC 4954 section 4's example: AUTH PLAIN dGVzdAB0ZXN0ADEyMzQ= ("test\0test\01234").
    Exchange ex(Mechanism::plain);
    Step s = ex.start(std::string_view("dGVzdAB0ZXN0ADEyMzQ="));
    REQUIRE(s.kind == Step::Kind::done);
    CHECK(s.creds.authzid == "test");
    CHECK(s.creds.authcid == "test");
    CHECK(s.creds.password == "1234");
}

// Unit tests of ferry-relay's pure parts: the EHLO reply, the TLS policy map, the relayhost password file.
#include <catch.hpp>

#include "mta/relay/capabilities.hpp"
#include "mta/relay/passwords.hpp"
#include "mta/relay/tls_policy.hpp"

using namespace ferry::relay;

namespace {

ferry::smtp::Reply ehlo(std::vector<std::string> lines) {
    ferry::smtp::Reply r;
    r.code = 250;
    r.lines = std::move(lines);
    return r;
}

}  // namespace

TEST_CASE("EHLO keywords become capabilities", "[relay]") {
    auto c = parse_ehlo(ehlo({"mx.example.org Hello", "PIPELINING", "size 1000000", "8BITMIME", "STARTTLS",
                              "SMTPUTF8", "CHUNKING", "DSN", "AUTH LOGIN PLAIN", "X-UNKNOWN thing"}));
    CHECK(c.esmtp);
    CHECK(c.pipelining);
    CHECK(c.size == 1000000u);
    CHECK(c.eightbitmime);
    CHECK(c.starttls);
    CHECK(c.smtputf8);
    CHECK(c.chunking);
    CHECK(c.dsn);
    CHECK(c.auth_plain);
    CHECK(c.auth_login);
    auto bare = parse_ehlo(ehlo({"mx", "SIZE", "AUTH CRAM-MD5"}));
    CHECK_FALSE(bare.size);
    CHECK_FALSE(bare.auth_plain);
    CHECK_FALSE(bare.starttls);
    // The greeting line names the server, never an extension.
    CHECK_FALSE(parse_ehlo(ehlo({"STARTTLS"})).starttls);
    CHECK_FALSE(parse_ehlo(ehlo({"mx", "SIZE 12x"})).size);
}

TEST_CASE("the TLS policy map", "[relay]") {
    auto map = TlsPolicyMap::parse("# comment\n\nExample.ORG  encrypt\nbank.test verify # trailing\n", TlsPolicy::may);
    REQUIRE(map);
    CHECK(map->lookup("example.org") == TlsPolicy::encrypt);
    CHECK(map->lookup("bank.test") == TlsPolicy::verify);
    CHECK(map->lookup("other.test") == TlsPolicy::may);
    auto bad = TlsPolicyMap::parse("a.test may\nb.test sometimes\n", TlsPolicy::may);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().text.find("line 2") != std::string::npos);
    CHECK_FALSE(TlsPolicyMap::parse("a.test\n", TlsPolicy::may));
    CHECK_FALSE(TlsPolicyMap::parse("a.test may extra\n", TlsPolicy::may));
}

TEST_CASE("the relayhost password file", "[relay]") {
    auto map = PasswordMap::parse("# provider\n[SMTP.Provider.example]:587 alice s3cret\n");
    REQUIRE(map);
    auto c = map->lookup("smtp.provider.example", 587);
    REQUIRE(c);
    CHECK(c->user == "alice");
    CHECK(c->password == "s3cret");
    CHECK_FALSE(map->lookup("smtp.provider.example", 25));
    auto bad = PasswordMap::parse("smtp.provider.example:587 alice pw\n");
    REQUIRE_FALSE(bad);
    // The error never repeats the line: it holds a password.
    CHECK(bad.error().text.find("pw") == std::string::npos);
    CHECK_FALSE(PasswordMap::parse("[h]:25 onlyuser\n"));
}

TEST_CASE("what a peer cannot take is refused before the message is sent", "[relay]") {
    OutboundMessage m;
    m.data.length = 500;
    Capabilities caps = parse_ehlo(ehlo({"mx", "SIZE 100", "8BITMIME"}));
    auto big = peer_refusal(caps, m, "host mx[192.0.2.1]");
    REQUIRE(big);
    CHECK(big->reply() == "552 5.3.4 message size 500 exceeds the limit of 100 bytes of host mx[192.0.2.1]");
    caps.size.reset();
    CHECK_FALSE(peer_refusal(caps, m, "p"));
    m.utf8_envelope = true;
    auto utf8 = peer_refusal(caps, m, "p");
    REQUIRE(utf8);
    CHECK(utf8->code == 553);
    CHECK(utf8->enhanced == "5.6.7");
    caps.smtputf8 = true;
    CHECK_FALSE(peer_refusal(caps, m, "p"));
    m.eight_bit = true;
    m.no_seven_bit = "8-bit octets in a header cannot be converted to 7 bit";
    CHECK_FALSE(peer_refusal(caps, m, "p"));  // the peer takes 8BITMIME
    caps.eightbitmime = false;
    auto eight = peer_refusal(caps, m, "p");
    REQUIRE(eight);
    CHECK(eight->code == 554);
    CHECK(eight->enhanced == "5.6.3");
    m.no_seven_bit.clear();
    CHECK_FALSE(peer_refusal(caps, m, "p"));  // converted on the way
}

TEST_CASE("SMTPUTF8 is needed for a UTF-8 address, or a UTF-8 header of an SMTPUTF8 message", "[relay]") {
    auto written = [](std::vector<std::string> chunks, bool smtputf8) {
        MessageWriter w;
        REQUIRE(w.open("/tmp").ok());
        for (const auto& c : chunks) REQUIRE(w.append(c).ok());
        OutboundMessage m;
        m.params.smtputf8 = smtputf8;
        REQUIRE(w.finish(m).ok());
        return m;
    };
    CHECK(needs_smtputf8(written({"To: J\xc3\xb6rg <a@b>\n\nbody\n"}, true)));
    CHECK_FALSE(needs_smtputf8(written({"To: J\xc3\xb6rg <a@b>\n\nbody\n"}, false)));  // 8BITMIME's business
    // UTF-8 only in the body, the header's end split across chunks: not needed.
    CHECK_FALSE(needs_smtputf8(written({"Subject: x\n", "\n", "Gr\xc3\xbc\xc3\x9f" "e\n"}, true)));
    CHECK(needs_smtputf8(written({"Subject: x\n", "X-A: \xc3\xbc\n\nbody\n"}, true)));
    OutboundMessage m = written({"Subject: x\n\nbody\n"}, true);
    CHECK_FALSE(needs_smtputf8(m));
    m.utf8_envelope = true;
    CHECK(needs_smtputf8(m));
    Capabilities caps = parse_ehlo(ehlo({"mx", "8BITMIME"}));
    auto refused = peer_refusal(caps, m, "p");
    REQUIRE(refused);
    CHECK(refused->reply().rfind("553 5.6.7 ", 0) == 0);
}

// The DNS answer parsers over hand-built packets: statuses, CNAME chains, null MX, malformed input.
#include <catch.hpp>

#include <string>

#include "common/event/resolver_answer.hpp"
#include "tests/unit/test_resolver_packet.hpp"

using namespace ferry;
using dns::Status;
using test::DnsPacket;

TEST_CASE("an MX answer gives its records in lower case without the trailing dot", "[dns]") {
    DnsPacket p("Example.ORG", DnsPacket::MX);
    p.mx("example.org", 20, "MX2.Example.org").mx("example.org", 10, "mx1.example.org");
    auto r = dns::parse_mx_answer(p.bytes, "example.org");
    REQUIRE(r.answer.status == Status::ok);
    REQUIRE(r.follow.empty());
    REQUIRE(r.answer.records.size() == 2);
    CHECK(r.answer.records[0].preference == 20);
    CHECK(r.answer.records[0].exchange == "mx2.example.org");
    CHECK(r.answer.records[1].exchange == "mx1.example.org");
}

TEST_CASE("NXDOMAIN, NODATA and server errors get their own status", "[dns]") {
    CHECK(dns::parse_mx_answer(DnsPacket("gone.example", DnsPacket::MX, 3).bytes, "gone.example").answer.status == Status::nxdomain);
    auto nodata = dns::parse_mx_answer(DnsPacket("a.example", DnsPacket::MX).bytes, "a.example");
    CHECK(nodata.answer.status == Status::nodata);
    CHECK(nodata.follow.empty());
    auto servfail = dns::parse_mx_answer(DnsPacket("a.example", DnsPacket::MX, 2).bytes, "a.example");
    CHECK(servfail.answer.status == Status::temporary);
    CHECK(servfail.answer.error.find("SERVFAIL") != std::string::npos);
    CHECK(dns::parse_mx_answer(DnsPacket("a.example", DnsPacket::MX, 5).bytes, "a.example").answer.status == Status::temporary);
    // An A record where MX was asked for is not an MX: NODATA, not ok.
    DnsPacket wrong("a.example", DnsPacket::MX);
    wrong.a("a.example", "192.0.2.1");
    CHECK(dns::parse_mx_answer(wrong.bytes, "a.example").answer.status == Status::nodata);
}

TEST_CASE("a truncated or malformed answer is a temporary failure", "[dns]") {
    DnsPacket tc("a.example", DnsPacket::MX, 0, true);
    tc.mx("a.example", 10, "mx.a.example");
    auto r = dns::parse_mx_answer(tc.bytes, "a.example");
    CHECK(r.answer.status == Status::temporary);
    CHECK(r.answer.error.find("truncated") != std::string::npos);

    DnsPacket full("a.example", DnsPacket::MX);
    full.mx("a.example", 10, "mx.a.example");
    for (size_t cut = 0; cut < full.bytes.size(); ++cut) {
        auto part = dns::parse_mx_answer(full.bytes.substr(0, cut), "a.example");
        INFO("cut at " << cut);
        CHECK(part.answer.status == Status::temporary);
        CHECK(part.answer.records.empty());
    }
    CHECK(dns::parse_mx_answer("", "a.example").answer.status == Status::temporary);
    CHECK(dns::parse_mx_answer(std::string(300, '\xff'), "a.example").answer.status == Status::temporary);

    // A query instead of an answer, and an answer to another name.
    std::string query = full.bytes;
    query[2] = 0x01;
    CHECK(dns::parse_mx_answer(query, "a.example").answer.status == Status::temporary);
    auto other = dns::parse_mx_answer(full.bytes, "b.example");
    CHECK(other.answer.status == Status::temporary);
    CHECK(other.answer.error.find("another question") != std::string::npos);

    // A compression pointer to itself in the answer's owner name.
    DnsPacket loop("a.example", DnsPacket::MX);
    std::string bytes = loop.bytes;
    size_t at = bytes.size();
    bytes += static_cast<char>(0xc0 | (at >> 8));
    bytes += static_cast<char>(at & 0xff);
    bytes += std::string("\x00\x0f\x00\x01\x00\x00\x00\x10\x00\x00", 10);
    bytes[7] = 1;
    CHECK(dns::parse_mx_answer(bytes, "a.example").answer.status == Status::temporary);

    // MX data that does not fill its record exactly.
    DnsPacket bad("a.example", DnsPacket::MX);
    bad.rr("a.example", DnsPacket::MX, std::string("\x00\x0a\x02mx\x00junk", 9));
    CHECK(dns::parse_mx_answer(bad.bytes, "a.example").answer.status == Status::temporary);
}

TEST_CASE("a CNAME chain is followed inside the answer, and asked for when it ends early", "[dns]") {
    DnsPacket chain("alias.example", DnsPacket::MX);
    chain.cname("alias.example", "mid.example").cname("mid.example", "real.example").mx("real.example", 5, "mx.real.example");
    auto r = dns::parse_mx_answer(chain.bytes, "alias.example");
    REQUIRE(r.answer.status == Status::ok);
    REQUIRE(r.answer.records.size() == 1);
    CHECK(r.answer.records[0].exchange == "mx.real.example");

    DnsPacket only("alias.example", DnsPacket::MX);
    only.cname("alias.example", "Real.Example.");
    auto f = dns::parse_mx_answer(only.bytes, "alias.example");
    CHECK(f.answer.status == Status::ok);
    CHECK(f.follow == "real.example");
    CHECK(f.answer.records.empty());

    // Records of a name not on the chain are not ours.
    DnsPacket stray("alias.example", DnsPacket::MX);
    stray.cname("alias.example", "real.example").mx("other.example", 5, "mx.other.example");
    auto s = dns::parse_mx_answer(stray.bytes, "alias.example");
    CHECK(s.follow == "real.example");
    CHECK(s.answer.records.empty());
}

TEST_CASE("a CNAME loop or an over-long chain is a temporary failure", "[dns]") {
    DnsPacket loop("a.example", DnsPacket::A);
    loop.cname("a.example", "b.example").cname("b.example", "a.example");
    auto r = dns::parse_address_answer(loop.bytes, "a.example", false);
    CHECK(r.answer.status == Status::temporary);
    CHECK(r.answer.error.find("CNAME loop") != std::string::npos);
    CHECK(r.follow.empty());

    DnsPacket longer("c0.example", DnsPacket::A);
    for (int i = 0; i < dns::kMaxCnameHops + 1; ++i)
        longer.cname("c" + std::to_string(i) + ".example", "c" + std::to_string(i + 1) + ".example");
    longer.a("c" + std::to_string(dns::kMaxCnameHops + 1) + ".example", "192.0.2.9");
    auto l = dns::parse_address_answer(longer.bytes, "c0.example", false);
    CHECK(l.answer.status == Status::temporary);
    CHECK(l.answer.error.find("longer") != std::string::npos);
}

TEST_CASE("the null MX is kept as an empty exchange", "[dns]") {
    DnsPacket p("nullmx.example", DnsPacket::MX);
    p.mx("nullmx.example", 0, "");
    auto r = dns::parse_mx_answer(p.bytes, "nullmx.example");
    REQUIRE(r.answer.status == Status::ok);
    REQUIRE(r.answer.records.size() == 1);
    CHECK(r.answer.records[0].exchange.empty());
    CHECK(r.answer.records[0].preference == 0);
}

TEST_CASE("an MX naming an IP address is skipped, and alone it is a temporary failure", "[dns]") {
    DnsPacket mixed("a.example", DnsPacket::MX);
    mixed.mx("a.example", 10, "192.0.2.1").mx("a.example", 20, "mx.a.example");
    auto r = dns::parse_mx_answer(mixed.bytes, "a.example");
    REQUIRE(r.answer.status == Status::ok);
    REQUIRE(r.answer.records.size() == 1);
    CHECK(r.answer.records[0].exchange == "mx.a.example");

    DnsPacket only("a.example", DnsPacket::MX);
    only.mx("a.example", 10, "192.0.2.1");
    auto o = dns::parse_mx_answer(only.bytes, "a.example");
    CHECK(o.answer.status == Status::temporary);
    CHECK(o.answer.records.empty());
}

TEST_CASE("an MX pointing at a CNAME is kept; the address lookup follows the alias", "[dns]") {
    DnsPacket mx("a.example", DnsPacket::MX);
    mx.mx("a.example", 10, "alias.a.example");
    auto r = dns::parse_mx_answer(mx.bytes, "a.example");
    REQUIRE(r.answer.status == Status::ok);
    CHECK(r.answer.records.at(0).exchange == "alias.a.example");

    DnsPacket a("alias.a.example", DnsPacket::A);
    a.cname("alias.a.example", "host.a.example").a("host.a.example", "192.0.2.7").a("host.a.example", "192.0.2.8");
    auto addrs = dns::parse_address_answer(a.bytes, "alias.a.example", false);
    REQUIRE(addrs.answer.status == Status::ok);
    CHECK(addrs.answer.addresses == std::vector<std::string>{"192.0.2.7", "192.0.2.8"});
}

TEST_CASE("A and AAAA answers give numeric addresses; a record of the wrong size is malformed", "[dns]") {
    DnsPacket six("h.example", DnsPacket::AAAA);
    six.aaaa("h.example", "2001:db8::1");
    auto r = dns::parse_address_answer(six.bytes, "h.example", true);
    REQUIRE(r.answer.status == Status::ok);
    CHECK(r.answer.addresses == std::vector<std::string>{"2001:db8::1"});
    // An A answer read as AAAA is another question.
    CHECK(dns::parse_address_answer(six.bytes, "h.example", false).answer.status == Status::temporary);

    DnsPacket bad("h.example", DnsPacket::A);
    bad.rr("h.example", DnsPacket::A, "abc");
    CHECK(dns::parse_address_answer(bad.bytes, "h.example", false).answer.status == Status::temporary);
}

TEST_CASE("query names and numeric addresses are recognised", "[dns]") {
    CHECK(dns::valid_query_name("mx1.example.org"));
    CHECK(dns::valid_query_name("_smtp.x-y.example"));
    CHECK_FALSE(dns::valid_query_name(""));
    CHECK_FALSE(dns::valid_query_name("a..b"));
    CHECK_FALSE(dns::valid_query_name(".a"));
    CHECK_FALSE(dns::valid_query_name("[192.0.2.1]"));
    CHECK_FALSE(dns::valid_query_name("a b.example"));
    CHECK_FALSE(dns::valid_query_name(std::string(64, 'a') + ".example"));
    CHECK_FALSE(dns::valid_query_name(std::string(250, 'a').replace(60, 1, ".").replace(120, 1, ".").replace(180, 1, ".") + ".example"));
    CHECK(dns::numeric_address("192.0.2.1") == "192.0.2.1");
    CHECK(dns::numeric_address("2001:DB8:0::1") == "2001:db8::1");
    CHECK(dns::numeric_address("1.2.3").empty());
    CHECK(dns::numeric_address("mx.example").empty());
    CHECK(dns::normalize_name("MX.Example.") == "mx.example");
}

TEST_CASE("a TXT answer joins each record's strings; a PTR answer gives names", "[dns]") {
    DnsPacket t("spf.example", 16);
    t.rr("spf.example", 16, std::string("\x07v=spf1 ", 8) + std::string("\x04-all", 5));
    t.rr("spf.example", 16, std::string("\x05hello", 6));
    auto r = dns::parse_txt_answer(t.bytes, "spf.example");
    REQUIRE(r.answer.status == Status::ok);
    REQUIRE(r.answer.records.size() == 2);
    CHECK(r.answer.records[0] == "v=spf1 -all");
    CHECK(r.answer.records[1] == "hello");
    DnsPacket bad("spf.example", 16);
    bad.rr("spf.example", 16, std::string("\x09short", 6));  // a string longer than its record
    CHECK(dns::parse_txt_answer(bad.bytes, "spf.example").answer.status == Status::temporary);
    CHECK(dns::parse_txt_answer(DnsPacket("none.example", 16, 3).bytes, "none.example").answer.status == Status::nxdomain);

    DnsPacket p("1.2.0.192.in-addr.arpa", 12);
    p.rr("1.2.0.192.in-addr.arpa", 12, DnsPacket::encode("Host.Example.ORG"));
    auto names = dns::parse_ptr_answer(p.bytes, "1.2.0.192.in-addr.arpa");
    REQUIRE(names.answer.status == Status::ok);
    REQUIRE(names.answer.records.size() == 1);
    CHECK(names.answer.records[0] == "host.example.org");
}

// SPF (common/verify/spf): records, macros, every mechanism, the limits and every result over scripted DNS answers.
#include <catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "common/verify/spf.hpp"

using namespace ferry::verify::spf;

namespace {

// A zone as tables; a name without an entry is NXDOMAIN. `asked` counts the queries.
struct Zone {
    std::map<Query, Answer> table;
    std::vector<Query> asked;

    void txt(const std::string& name, std::vector<std::string> records) { table[{QueryType::txt, name}] = {DnsStatus::ok, std::move(records)}; }
    void a(const std::string& name, std::vector<std::string> addrs) { table[{QueryType::a, name}] = {DnsStatus::ok, std::move(addrs)}; }
    void aaaa(const std::string& name, std::vector<std::string> addrs) { table[{QueryType::aaaa, name}] = {DnsStatus::ok, std::move(addrs)}; }
    void mx(const std::string& name, std::vector<std::string> hosts) { table[{QueryType::mx, name}] = {DnsStatus::ok, std::move(hosts)}; }
    void ptr(const std::string& name, std::vector<std::string> names) { table[{QueryType::ptr, name}] = {DnsStatus::ok, std::move(names)}; }
    void error(QueryType t, const std::string& name) { table[{t, name}] = {DnsStatus::error, {}}; }

    Verdict run(Request req) {
        asked.clear();
        Check c(std::move(req));
        for (int i = 0; i < 1000; ++i) {
            auto s = c.step();
            if (auto* v = std::get_if<Verdict>(&s)) return *v;
            const Query& q = std::get<Query>(s);
            for (const auto& seen : asked) REQUIRE_FALSE(seen == q);  // every query is asked once
            asked.push_back(q);
            auto it = table.find(q);
            c.answer(q, it != table.end() ? it->second : Answer{DnsStatus::nxdomain, {}});
        }
        FAIL("the check does not end");
        return {};
    }

    Result check(const std::string& ip, const std::string& sender, const std::string& helo = "mail.example.com") {
        return run(Request{ip, sender, helo, "mx.example.org", 1700000000}).result;
    }
};

}  // namespace

TEST_CASE("spf: record syntax", "[spf]") {
    CHECK(parse_record("v=spf1"));
    CHECK(parse_record("v=spf1 -all"));
    CHECK(parse_record("V=SPF1 +A/24//64 MX:example.com/30 ~ip4:192.0.2.0/24 ?ip6:2001:db8::/32 ptr exists:%{i}.x.example.com include:_spf.example.com -all"));
    CHECK(parse_record("v=spf1 redirect=_spf.example.com foo=bar%{d}"));
    CHECK(parse_record("v=spf1   ip4:192.0.2.1   -all  "));
    CHECK_FALSE(parse_record("v=spf10 -all"));
    CHECK_FALSE(parse_record("v=spf1 -al"));                 // unknown mechanism
    CHECK_FALSE(parse_record("v=spf1 ip4:192.0.2.1/33"));    // CIDR too long
    CHECK_FALSE(parse_record("v=spf1 ip4:192.0.2.1/08"));    // leading zero
    CHECK_FALSE(parse_record("v=spf1 ip6:2001:db8::/129"));
    CHECK_FALSE(parse_record("v=spf1 ip4:192.0.2"));
    CHECK_FALSE(parse_record("v=spf1 a:foo.1"));              // numeric top label
    CHECK_FALSE(parse_record("v=spf1 a:"));
    CHECK_FALSE(parse_record("v=spf1 include"));
    CHECK_FALSE(parse_record("v=spf1 redirect=a.example redirect=b.example"));
    CHECK_FALSE(parse_record("v=spf1 exp=a.example exp=b.example"));
    CHECK_FALSE(parse_record("v=spf1 -redirect=a.example"));  // a modifier has no qualifier
    CHECK_FALSE(parse_record("v=spf1 all:foo"));
    CHECK_FALSE(parse_record("v=spf1 exists:%{x}.example.com"));  // unknown macro letter
    CHECK_FALSE(parse_record("v=spf1 exists:%{c}.example.com"));  // c only in explanations
    CHECK_FALSE(parse_record("v=spf1 a:%{d0}.example.com"));
    CHECK_FALSE(parse_record("v=spf1 a:100%.example.com"));
    CHECK_FALSE(parse_record("v=spf1 " + std::string(kMaxRecordLength, 'a')));
    std::string many = "v=spf1";
    for (size_t i = 0; i <= kMaxTerms; ++i) many += " ?all";
    CHECK_FALSE(parse_record(many));
    auto r = parse_record("v=spf1 a/24//64 mx:m.example.com/28");
    REQUIRE(r);
    CHECK(r->terms[0].cidr4 == 24);
    CHECK(r->terms[0].cidr6 == 64);
    CHECK(r->terms[1].domain == "m.example.com");
    CHECK(r->terms[1].cidr4 == 28);
}

TEST_CASE("spf: macro expansion (RFC 7208 7.4 examples)", "[spf]") {
    MacroValues v;
    v.sender = "strong-bad@email.example.com";
    v.local = "strong-bad";
    v.domain_of_sender = "email.example.com";
    v.domain = "email.example.com";
    v.ip = "192.0.2.3";
    v.ip_text = "192.0.2.3";
    v.helo = "mx.example.org";
    v.receiver = "mx.example.org";
    v.now = 1234;
    CHECK(*expand("%{s}", v, false) == "strong-bad@email.example.com");
    CHECK(*expand("%{o}", v, false) == "email.example.com");
    CHECK(*expand("%{d}", v, false) == "email.example.com");
    CHECK(*expand("%{d4}", v, false) == "email.example.com");
    CHECK(*expand("%{d3}", v, false) == "email.example.com");
    CHECK(*expand("%{d2}", v, false) == "example.com");
    CHECK(*expand("%{d1}", v, false) == "com");
    CHECK(*expand("%{dr}", v, false) == "com.example.email");
    CHECK(*expand("%{d2r}", v, false) == "example.email");
    CHECK(*expand("%{l}", v, false) == "strong-bad");
    CHECK(*expand("%{l-}", v, false) == "strong.bad");
    CHECK(*expand("%{lr}", v, false) == "strong-bad");
    CHECK(*expand("%{lr-}", v, false) == "bad.strong");
    CHECK(*expand("%{l1r-}", v, false) == "strong");
    CHECK(*expand("%{ir}.%{v}._spf.%{d2}", v, false) == "3.2.0.192.in-addr._spf.example.com");
    CHECK(*expand("%{lr-}.lp._spf.%{d2}", v, false) == "bad.strong.lp._spf.example.com");
    CHECK(*expand("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", v, false) == "bad.strong.lp.3.2.0.192.in-addr._spf.example.com");
    CHECK(*expand("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", v, false) == "3.2.0.192.in-addr.strong.lp._spf.example.com");
    CHECK(*expand("%{d2}.trusted-domains.example.net", v, false) == "example.com.trusted-domains.example.net");
    CHECK(*expand("%%%_%-", v, false) == "% %20");
    CHECK(*expand("%{S}", v, false) == "strong-bad%40email.example.com");
    CHECK(*expand("%{c} %{r} %{t}", v, true) == "192.0.2.3 mx.example.org 1234");
    CHECK_FALSE(expand("%{c}", v, false));
    CHECK_FALSE(expand("%{d", v, false));
    CHECK_FALSE(expand("%x", v, false));
    CHECK_FALSE(expand("%", v, false));
    v.ipv6 = true;
    v.ip = "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1";
    CHECK(*expand("%{v}", v, false) == "ip6");
}

TEST_CASE("spf: ip4, ip6, all and the qualifiers give every result", "[spf]") {
    Zone z;
    z.txt("pass.example", {"v=spf1 ip4:192.0.2.0/24 -all"});
    z.txt("soft.example", {"v=spf1 ~all"});
    z.txt("neutral.example", {"v=spf1 ?all"});
    z.txt("empty.example", {"v=spf1"});
    z.txt("six.example", {"v=spf1 ip6:2001:db8::/32 -all"});
    z.txt("other.example", {"some text", "google-site-verification=x"});
    CHECK(z.check("192.0.2.10", "a@pass.example") == Result::pass);
    CHECK(z.check("198.51.100.1", "a@pass.example") == Result::fail);
    CHECK(z.check("198.51.100.1", "a@soft.example") == Result::softfail);
    CHECK(z.check("198.51.100.1", "a@neutral.example") == Result::neutral);
    CHECK(z.check("198.51.100.1", "a@empty.example") == Result::neutral);
    CHECK(z.check("2001:db8::5", "a@six.example") == Result::pass);
    CHECK(z.check("2001:db9::5", "a@six.example") == Result::fail);
    CHECK(z.check("::ffff:192.0.2.10", "a@pass.example") == Result::pass);  // IPv4-mapped is IPv4
    CHECK(z.check("192.0.2.10", "a@six.example") == Result::fail);            // ip6 never matches IPv4
    CHECK(z.check("192.0.2.10", "a@other.example") == Result::none);
    CHECK(z.check("192.0.2.10", "a@missing.example") == Result::none);        // NXDOMAIN
    CHECK(z.check("192.0.2.10", "a@localhost") == Result::none);              // not a multi-label domain
}

TEST_CASE("spf: HELO identity for the null reverse-path; postmaster for an empty local-part", "[spf]") {
    Zone z;
    z.txt("mail.example.com", {"v=spf1 ip4:192.0.2.1 -all"});
    z.txt("x.example", {"v=spf1 exists:%{l}.x.example -all"});
    z.a("postmaster.x.example", {"127.0.0.2"});
    Verdict v = z.run({"192.0.2.1", "", "mail.example.com", "mx", 0});
    CHECK(v.result == Result::pass);
    CHECK(v.identity == "helo");
    CHECK(v.sender == "postmaster@mail.example.com");
    CHECK(z.check("192.0.2.9", "") == Result::fail);
    CHECK(z.check("192.0.2.9", "@x.example") == Result::pass);
}

TEST_CASE("spf: a and mx with CIDR lengths, null MX, too many MX", "[spf]") {
    Zone z;
    z.txt("a.example", {"v=spf1 a -all"});
    z.a("a.example", {"192.0.2.1"});
    z.txt("a24.example", {"v=spf1 a:host.a.example/24 -all"});
    z.a("host.a.example", {"192.0.2.200"});
    z.txt("a6.example", {"v=spf1 a//64 -all"});
    z.aaaa("a6.example", {"2001:db8:1:1::1"});
    z.txt("mx.example", {"v=spf1 mx -all"});
    z.mx("mx.example", {"mx1.mx.example", "mx2.mx.example"});
    z.a("mx1.mx.example", {"198.51.100.1"});
    z.a("mx2.mx.example", {"198.51.100.2"});
    z.txt("mx28.example", {"v=spf1 mx:mx.example/28 -all"});
    z.txt("nullmx.example", {"v=spf1 mx -all"});
    z.mx("nullmx.example", {""});
    z.txt("manymx.example", {"v=spf1 mx -all"});
    std::vector<std::string> eleven;
    for (int i = 0; i < 11; ++i) eleven.push_back("m" + std::to_string(i) + ".manymx.example");
    z.mx("manymx.example", eleven);
    CHECK(z.check("192.0.2.1", "x@a.example") == Result::pass);
    CHECK(z.check("192.0.2.2", "x@a.example") == Result::fail);
    CHECK(z.check("192.0.2.7", "x@a24.example") == Result::pass);
    CHECK(z.check("192.0.3.7", "x@a24.example") == Result::fail);
    CHECK(z.check("2001:db8:1:1::99", "x@a6.example") == Result::pass);
    CHECK(z.check("2001:db8:1:2::1", "x@a6.example") == Result::fail);
    CHECK(z.check("198.51.100.2", "x@mx.example") == Result::pass);
    CHECK(z.check("198.51.100.3", "x@mx.example") == Result::fail);
    CHECK(z.check("198.51.100.14", "x@mx28.example") == Result::pass);
    CHECK(z.check("198.51.100.1", "x@nullmx.example") == Result::fail);
    CHECK(z.check("198.51.100.1", "x@manymx.example") == Result::permerror);
}

TEST_CASE("spf: ptr validates the name forward and back", "[spf]") {
    Zone z;
    z.txt("ptr.example", {"v=spf1 ptr -all"});
    z.ptr("1.2.0.192.in-addr.arpa", {"bogus.other.example", "host.ptr.example"});
    z.a("host.ptr.example", {"192.0.2.1"});
    z.a("bogus.other.example", {"192.0.2.1"});
    z.ptr("2.2.0.192.in-addr.arpa", {"liar.ptr.example"});
    z.a("liar.ptr.example", {"203.0.113.1"});  // does not point back
    CHECK(z.check("192.0.2.1", "x@ptr.example") == Result::pass);
    CHECK(z.check("192.0.2.2", "x@ptr.example") == Result::fail);
    CHECK(z.check("192.0.2.3", "x@ptr.example") == Result::fail);  // no PTR at all
    z.txt("p.example", {"v=spf1 exists:%{p}.names.p.example -all"});
    z.a("bogus.other.example.names.p.example", {"127.0.0.2"});  // no name in p.example: the first validated one
    CHECK(z.check("192.0.2.1", "x@p.example") == Result::pass);
    z.ptr("4.2.0.192.in-addr.arpa", {"Mixed.PTR.Example."});  // a PTR answer in any case, with the root dot
    z.a("mixed.ptr.example", {"192.0.2.4"});
    CHECK(z.check("192.0.2.4", "x@ptr.example") == Result::pass);
}

TEST_CASE("spf: include and redirect", "[spf]") {
    Zone z;
    z.txt("inc.example", {"v=spf1 include:_spf.inc.example -all"});
    z.txt("_spf.inc.example", {"v=spf1 ip4:192.0.2.0/24 -all"});
    z.txt("incnone.example", {"v=spf1 include:nothing.example -all"});
    z.txt("inctemp.example", {"v=spf1 include:broken.example -all"});
    z.error(QueryType::txt, "broken.example");
    z.txt("red.example", {"v=spf1 redirect=_spf.inc.example"});
    z.txt("rednone.example", {"v=spf1 redirect=nothing.example"});
    z.txt("redall.example", {"v=spf1 ?all redirect=_spf.inc.example"});
    CHECK(z.check("192.0.2.1", "x@inc.example") == Result::pass);
    CHECK(z.check("203.0.113.1", "x@inc.example") == Result::fail);  // the inner fail is no match
    CHECK(z.check("192.0.2.1", "x@incnone.example") == Result::permerror);
    CHECK(z.check("192.0.2.1", "x@inctemp.example") == Result::temperror);
    CHECK(z.check("192.0.2.1", "x@red.example") == Result::pass);
    CHECK(z.check("203.0.113.1", "x@red.example") == Result::fail);
    CHECK(z.check("192.0.2.1", "x@rednone.example") == Result::permerror);
    CHECK(z.check("192.0.2.1", "x@redall.example") == Result::neutral);  // all wins over redirect
}

TEST_CASE("spf: exists and the explanation of a fail", "[spf]") {
    Zone z;
    z.txt("ex.example", {"v=spf1 exists:%{ir}.list.ex.example -all exp=why.ex.example"});
    z.a("1.2.0.192.list.ex.example", {"127.0.0.2"});
    z.txt("why.ex.example", {"%{i} is not one of %{d}'s designated mail servers (%{s})"});
    CHECK(z.check("192.0.2.1", "x@ex.example") == Result::pass);
    Verdict v = z.run({"192.0.2.9", "x@ex.example", "h.example", "mx", 0});
    CHECK(v.result == Result::fail);
    CHECK(v.explanation == "192.0.2.9 is not one of ex.example's designated mail servers (x@ex.example)");
    z.txt("noexp.example", {"v=spf1 -all exp=missing.example"});
    v = z.run({"192.0.2.9", "x@noexp.example", "h.example", "mx", 0});
    CHECK(v.result == Result::fail);
    CHECK(v.explanation.empty());
}

TEST_CASE("spf: multiple records, syntax errors and DNS errors", "[spf]") {
    Zone z;
    z.txt("two.example", {"v=spf1 -all", "v=spf1 +all"});
    z.txt("bad.example", {"v=spf1 ip4:192.0.2.1 -all foo:bar"});
    z.error(QueryType::txt, "temp.example");
    z.txt("atemp.example", {"v=spf1 a -all"});
    z.error(QueryType::a, "atemp.example");
    z.txt("late.example", {"v=spf1 ip4:192.0.2.1 bogus -all"});  // a syntax error after the match still counts
    CHECK(z.check("192.0.2.1", "x@two.example") == Result::permerror);
    CHECK(z.check("192.0.2.1", "x@bad.example") == Result::permerror);
    CHECK(z.check("192.0.2.1", "x@temp.example") == Result::temperror);
    CHECK(z.check("192.0.2.1", "x@atemp.example") == Result::temperror);
    CHECK(z.check("192.0.2.1", "x@late.example") == Result::permerror);
}

TEST_CASE("spf: the 10 DNS-term limit and the 2 void-lookup limit", "[spf]") {
    Zone z;
    // A chain of 11 includes: the 11th DNS-querying term is one too many.
    for (int i = 0; i < 12; ++i)
        z.txt("i" + std::to_string(i) + ".example", {"v=spf1 include:i" + std::to_string(i + 1) + ".example -all"});
    z.txt("i12.example", {"v=spf1 +all"});
    Verdict v = z.run({"192.0.2.1", "x@i0.example", "h.example", "mx", 0});
    CHECK(v.result == Result::permerror);
    CHECK(v.reason.find("10") != std::string::npos);
    // Ten are fine.
    z.txt("i2.example", {"v=spf1 include:i3.example -all"});
    z.txt("j0.example", {"v=spf1 a:a1.example a:a2.example a:a3.example a:a4.example a:a5.example a:a6.example "
                         "a:a7.example a:a8.example a:a9.example ip4:192.0.2.1 -all"});
    for (int i = 1; i < 10; ++i) z.a("a" + std::to_string(i) + ".example", {"203.0.113.1"});
    CHECK(z.check("192.0.2.1", "x@j0.example") == Result::pass);
    z.txt("j1.example", {"v=spf1 a:a1.example a:a2.example a:a3.example a:a4.example a:a5.example a:a6.example "
                         "a:a7.example a:a8.example a:a9.example mx:a1.example a ip4:192.0.2.1 -all"});
    CHECK(z.check("192.0.2.1", "x@j1.example") == Result::permerror);
    // Two void lookups are fine, the third is a permerror.
    z.txt("v2.example", {"v=spf1 a:n1.example exists:n2.example ip4:192.0.2.1 -all"});
    z.txt("v3.example", {"v=spf1 a:n1.example exists:n2.example mx:n3.example ip4:192.0.2.1 -all"});
    CHECK(z.check("192.0.2.1", "x@v2.example") == Result::pass);
    CHECK(z.check("192.0.2.1", "x@v3.example") == Result::permerror);
    // ip4 and all cost nothing: many of them stay within the limits.
    z.txt("cheap.example", {"v=spf1 ip4:10.0.0.1 ip4:10.0.0.2 ip4:10.0.0.3 ip4:10.0.0.4 ip4:10.0.0.5 ip4:10.0.0.6 "
                            "ip4:10.0.0.7 ip4:10.0.0.8 ip4:10.0.0.9 ip4:10.0.0.10 ip4:10.0.0.11 -all"});
    CHECK(z.check("10.0.0.11", "x@cheap.example") == Result::pass);
}

TEST_CASE("spf: a loop of includes ends in permerror, not forever", "[spf]") {
    Zone z;
    z.txt("loop.example", {"v=spf1 include:loop.example -all"});
    CHECK(z.check("192.0.2.1", "x@loop.example") == Result::permerror);
    z.txt("rloop.example", {"v=spf1 redirect=rloop.example"});
    CHECK(z.check("192.0.2.1", "x@rloop.example") == Result::permerror);
}

TEST_CASE("spf: the verdict says which term matched, for the header comment", "[spf]") {
    Zone z;
    z.txt("why.example", {"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a:h.why.example -all"});
    z.a("h.why.example", {"198.51.100.7"});
    CHECK(z.run({"192.0.2.1", "x@why.example", "h", "mx", 0}).reason == "matched +ip4:192.0.2.0/24");
    CHECK(z.run({"2001:db8::1", "x@why.example", "h", "mx", 0}).reason == "matched +ip6:2001:db8::/32");
    CHECK(z.run({"198.51.100.7", "x@why.example", "h", "mx", 0}).reason == "matched +a:h.why.example");
    CHECK(z.run({"203.0.113.1", "x@why.example", "h", "mx", 0}).reason == "matched -all");
}

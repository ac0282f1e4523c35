// DMARC as a table: alignment (relaxed, strict), sp= for subdomains, pct= sampling and the disposition, public suffix edge cases; ferry-mda's reading of the verdict.
#include <catch.hpp>

#include <string>
#include <vector>

#include "common/verify/dmarc.hpp"
#include "mda/sieve_plan.hpp"

namespace dmarc = ferry::verify::dmarc;
using dmarc::Policy;
using dmarc::Result;

namespace {

struct Case {
    const char* what;
    const char* from;                 // the From: domain
    const char* spf;                  // the domain SPF passed for, "" for none
    std::vector<std::string> dkim;    // d= of passing signatures
    const char* record;               // the DMARC record
    const char* record_domain;        // where it was found (_dmarc.<this>)
    int sample;                       // the pct= draw, 0..99
    Result result;
    Policy policy;
    Policy disposition;
};

const std::vector<Case> kCases = {
    // Relaxed alignment (the default): the same organisational domain.
    {"spf, same domain", "example.org", "example.org", {}, "v=DMARC1; p=reject", "example.org", 0, Result::pass, Policy::reject, Policy::none},
    {"spf, bounce subdomain, relaxed", "example.org", "bounce.example.org", {}, "v=DMARC1; p=reject", "example.org", 0, Result::pass, Policy::reject, Policy::none},
    {"dkim, parent of the From: domain, relaxed", "mail.example.org", "", {"example.org"}, "v=DMARC1; p=reject", "example.org", 0, Result::pass, Policy::reject, Policy::none},
    {"dkim of another domain only", "example.org", "", {"esp.example"}, "v=DMARC1; p=reject", "example.org", 0, Result::fail, Policy::reject, Policy::reject},
    {"spf of another domain only", "example.org", "example.net", {}, "v=DMARC1; p=quarantine", "example.org", 0, Result::fail, Policy::quarantine, Policy::quarantine},
    {"no identity at all", "example.org", "", {}, "v=DMARC1; p=none", "example.org", 0, Result::fail, Policy::none, Policy::none},
    // Strict alignment: the very domain.
    {"aspf=s, bounce subdomain", "example.org", "bounce.example.org", {}, "v=DMARC1; p=reject; aspf=s", "example.org", 0, Result::fail, Policy::reject, Policy::reject},
    {"aspf=s, same domain", "example.org", "EXAMPLE.org.", {}, "v=DMARC1; p=reject; aspf=s", "example.org", 0, Result::pass, Policy::reject, Policy::none},
    {"adkim=s, parent domain", "mail.example.org", "", {"example.org"}, "v=DMARC1; p=reject; adkim=s", "mail.example.org", 0, Result::fail, Policy::reject, Policy::reject},
    {"adkim=s, but relaxed SPF aligns", "mail.example.org", "example.org", {"example.org"}, "v=DMARC1; p=reject; adkim=s", "mail.example.org", 0, Result::pass, Policy::reject, Policy::none},
    {"aspf=s, but relaxed DKIM aligns", "example.org", "bounce.example.org", {"news.example.org"}, "v=DMARC1; p=reject; aspf=s", "example.org", 0, Result::pass, Policy::reject, Policy::none},
    // sp= applies to a subdomain whose policy came from the organisational domain's record.
    {"subdomain through the org record: sp=", "a.example.org", "", {}, "v=DMARC1; p=reject; sp=quarantine", "example.org", 0, Result::fail, Policy::quarantine, Policy::quarantine},
    {"subdomain, sp=none", "a.example.org", "", {}, "v=DMARC1; p=reject; sp=none", "example.org", 0, Result::fail, Policy::none, Policy::none},
    {"subdomain without sp=: p=", "a.example.org", "", {}, "v=DMARC1; p=quarantine", "example.org", 0, Result::fail, Policy::quarantine, Policy::quarantine},
    {"the org domain itself: p=, not sp=", "example.org", "", {}, "v=DMARC1; p=reject; sp=none", "example.org", 0, Result::fail, Policy::reject, Policy::reject},
    {"subdomain with its own record: its p=", "a.example.org", "", {}, "v=DMARC1; p=quarantine; sp=none", "a.example.org", 0, Result::fail, Policy::quarantine, Policy::quarantine},
    // pct=: the sampled share gets the policy, the rest the next lower one (RFC 7489 6.6.4).
    {"pct=50, sampled: reject", "example.org", "", {}, "v=DMARC1; p=reject; pct=50", "example.org", 49, Result::fail, Policy::reject, Policy::reject},
    {"pct=50, not sampled: reject becomes quarantine", "example.org", "", {}, "v=DMARC1; p=reject; pct=50", "example.org", 50, Result::fail, Policy::reject, Policy::quarantine},
    {"pct=0, quarantine becomes none", "example.org", "", {}, "v=DMARC1; p=quarantine; pct=0", "example.org", 0, Result::fail, Policy::quarantine, Policy::none},
    {"pct=100 samples all", "example.org", "", {}, "v=DMARC1; p=quarantine; pct=100", "example.org", 99, Result::fail, Policy::quarantine, Policy::quarantine},
    {"pct=50 with sp=: sp= is what is lowered", "a.example.org", "", {}, "v=DMARC1; p=none; sp=reject; pct=50", "example.org", 80, Result::fail, Policy::reject, Policy::quarantine},
    // Public suffixes: two-label suffixes, a domain that is itself one, siblings under one.
    {"deep subdomain under co.uk aligns relaxed", "example.co.uk", "a.b.example.co.uk", {}, "v=DMARC1; p=reject", "example.co.uk", 0, Result::pass, Policy::reject, Policy::none},
    {"deep subdomain under co.uk, strict", "example.co.uk", "a.b.example.co.uk", {}, "v=DMARC1; p=reject; aspf=s", "example.co.uk", 0, Result::fail, Policy::reject, Policy::reject},
    {"siblings under co.uk do not align", "example.co.uk", "other.co.uk", {"other.co.uk"}, "v=DMARC1; p=reject", "example.co.uk", 0, Result::fail, Policy::reject, Policy::reject},
    {"a registrable domain does not align with its public suffix", "co.uk", "example.co.uk", {}, "v=DMARC1; p=reject", "co.uk", 0, Result::fail, Policy::reject, Policy::reject},
    {"a public suffix aligns only with itself", "co.uk", "co.uk", {}, "v=DMARC1; p=reject", "co.uk", 0, Result::pass, Policy::reject, Policy::none},
    {"a public suffix's own record: p=, not sp=", "co.uk", "", {}, "v=DMARC1; p=quarantine; sp=reject", "co.uk", 0, Result::fail, Policy::quarantine, Policy::quarantine},
    {"the public suffix does not align down", "example.co.uk", "co.uk", {"uk"}, "v=DMARC1; p=reject", "example.co.uk", 0, Result::fail, Policy::reject, Policy::reject},
};

}  // namespace

TEST_CASE("dmarc: the verdict table", "[dmarc]") {
    for (const auto& c : kCases) {
        INFO(c.what);
        auto rec = dmarc::parse_record(c.record);
        REQUIRE(rec);
        auto v = dmarc::evaluate({c.from, c.spf, c.dkim}, *rec, c.record_domain, c.sample);
        CHECK(dmarc::result_name(v.result) == std::string(dmarc::result_name(c.result)));
        CHECK(dmarc::policy_name(v.policy) == std::string(dmarc::policy_name(c.policy)));
        CHECK(dmarc::policy_name(v.disposition) == std::string(dmarc::policy_name(c.disposition)));
    }
}

TEST_CASE("dmarc: organisational domains of the public suffix list", "[dmarc]") {
    struct {
        const char* domain;
        const char* org;
    } table[] = {
        {"example.org", "example.org"},
        {"a.b.c.example.org", "example.org"},
        {"a.b.example.co.uk", "example.co.uk"},
        {"example.co.uk", "example.co.uk"},
        {"co.uk", "co.uk"},                  // a public suffix is its own
        {"uk", "uk"},
        {"a.b.example.test", "example.test"},  // a TLD the list does not know: the "*" rule
        {"www.city.kawasaki.jp", "city.kawasaki.jp"},  // an exception rule (!city.kawasaki.jp)
        {"a.b.kawasaki.jp", "a.b.kawasaki.jp"},        // under the wildcard *.kawasaki.jp
        {"MAIL.Example.ORG.", "example.org"},
    };
    for (const auto& t : table) {
        INFO(t.domain);
        CHECK(dmarc::organizational_domain(t.domain) == t.org);
    }
    CHECK(dmarc::aligned("a.b.example.co.uk", "example.co.uk", false));
    CHECK_FALSE(dmarc::aligned("example.co.uk", "co.uk", false));
    CHECK_FALSE(dmarc::aligned("x.kawasaki.jp", "y.kawasaki.jp", false));
}

TEST_CASE("mda: a DMARC quarantine in our own Authentication-Results field", "[dmarc]") {
    using ferry::mda::dmarc_quarantined;
    const std::string body = "\nhello\n";
    CHECK(dmarc_quarantined("Authentication-Results: mx.test;\n\tdkim=none;\n\tdmarc=fail (p=quarantine) "
                            "header.from=example.org policy.dmarc=quarantine\nFrom: a@example.org\n" + body, "mx.test"));
    CHECK(dmarc_quarantined("Received: x\nAuthentication-Results: MX.TEST 1; spf=pass smtp.mailfrom=a@example.org\n"
                            "Authentication-Results: mx.test; dmarc=fail header.from=example.org\n\t"
                            "policy.dmarc=quarantine\n" + body, "mx.test"));
    // Another authserv-id, a pass, another method's property, or the text in a comment: no.
    CHECK_FALSE(dmarc_quarantined("Authentication-Results: other.test; dmarc=fail policy.dmarc=quarantine\n" + body, "mx.test"));
    CHECK_FALSE(dmarc_quarantined("Authentication-Results: mx.test; dmarc=fail (p=reject) header.from=example.org\n" + body, "mx.test"));
    CHECK_FALSE(dmarc_quarantined("Authentication-Results: mx.test; dkim=fail policy.dmarc=quarantine\n" + body, "mx.test"));
    CHECK_FALSE(dmarc_quarantined("Authentication-Results: mx.test; dmarc=fail (policy.dmarc=quarantine; x) header.from=a.org\n" + body, "mx.test"));
    CHECK_FALSE(dmarc_quarantined("Authentication-Results: mx.test.example; dmarc=fail policy.dmarc=quarantine\n" + body, "mx.test"));
    // Only the header counts.
    CHECK_FALSE(dmarc_quarantined("Subject: x\n\nAuthentication-Results: mx.test; dmarc=fail policy.dmarc=quarantine\n", "mx.test"));
}

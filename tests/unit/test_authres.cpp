// Authentication-Results parsing (RFC 8601): the RFC's examples, comments and folding, "none", and values at and past the limits.
#include <catch.hpp>

#include <string>

#include "common/verify/authres.hpp"

using namespace ferry::verify;

TEST_CASE("the examples of RFC 8601 appendix B parse", "[authres]") {
    // B.2: no results.
    auto none = authres::parse(" example.org 1; none");
    REQUIRE(none);
    CHECK(none->authserv_id == "example.org");
    CHECK(none->version == "1");
    CHECK(none->results.empty());

    // B.4: SPF and sender ID with comments in between.
    auto spf = authres::parse(" example.com;\r\n          spf=pass smtp.mailfrom=example.net\r\n"
                              "          (sender 192.0.2.200 is authorized) ");
    REQUIRE(spf);
    REQUIRE(spf->results.size() == 1);
    CHECK(spf->results[0].method == "spf");
    CHECK(spf->results[0].result == "pass");
    CHECK(spf->results[0].property("smtp", "mailfrom") == "example.net");

    // B.6: several methods, a versioned one, and an address value.
    auto several = authres::parse(
        " example.com;\r\n              dkim=pass (good signature) header.d=mail-router.example.net;\r\n"
        "              dkim/1=fail (bad signature) header.d=newyork.example.com;\r\n"
        "              auth=pass (cram-md5) smtp.auth=sender@example.net");
    REQUIRE(several);
    REQUIRE(several->results.size() == 3);
    CHECK(several->results[1].method == "dkim");
    CHECK(several->results[1].version == "1");
    CHECK(several->results[1].result == "fail");
    CHECK(several->results[2].property("smtp", "auth") == "sender@example.net");
    CHECK(authres::find(*several, "DKIM") == &several->results[0]);
    CHECK(authres::find(*several, "dmarc") == nullptr);
}

TEST_CASE("what ferry-smtpd writes reads back, case and quotes aside", "[authres]") {
    auto r = authres::parse(" mx.example.net;\n\tspf=pass smtp.mailfrom=ann@example.org;\n\tdkim=pass header.d=example.org"
                            " header.s=sel;\n\tDMARC=Fail (p=quarantine) header.from=example.org policy.dmarc=quarantine;\n"
                            "\tarc=none reason=\"no ARC set\"");
    REQUIRE(r);
    CHECK(r->authserv_id == "mx.example.net");
    const auto* d = authres::find(*r, "dmarc");
    REQUIRE(d);
    CHECK(d->result == "fail");
    CHECK(d->property("Policy", "DMARC") == "quarantine");
    CHECK(d->property("header", "from") == "example.org");
    CHECK(authres::find(*r, "arc")->reason == "no ARC set");
    // A quoted local part before the "@".
    auto q = authres::parse("h; auth=pass smtp.auth=\"a b\"@example.org");
    REQUIRE(q);
    CHECK(q->results[0].property("smtp", "auth") == "\"a b\"@example.org");
    // A quoted authserv-id.
    auto id = authres::parse("\"mx one\"; spf=none");
    REQUIRE(id);
    CHECK(id->authserv_id == "mx one");
}

TEST_CASE("malformed values do not parse", "[authres]") {
    for (const char* bad : {"", "   ", "example.com", "example.com;", "example.com; spf", "example.com; spf=",
                            "example.com; spf=pass smtp", "example.com; spf=pass smtp.mailfrom",
                            "example.com; spf=pass smtp.mailfrom=", "example.com; spf=pass (unclosed",
                            "example.com; spf=pass; ;", "example.com; spf=pass reason=", "(x) ; spf=pass",
                            "example.com; =pass", "example.com; spf/=pass", "\"\"; spf=pass"}) {
        INFO(bad);
        CHECK_FALSE(authres::parse(bad));
    }
}

TEST_CASE("authres limits hold at their value and fail past it", "[authres]") {
    std::string many = "h";
    for (size_t i = 0; i < authres::kMaxResults; ++i) many += "; spf=pass";
    CHECK(authres::parse(many));
    CHECK_FALSE(authres::parse(many + "; spf=pass"));

    std::string props = "h; spf=pass";
    for (size_t i = 0; i < authres::kMaxProperties; ++i) props += " smtp.mailfrom=a";
    CHECK(authres::parse(props));
    CHECK_FALSE(authres::parse(props + " smtp.mailfrom=a"));

    std::string deep = "h; spf=pass " + std::string(authres::kMaxCommentDepth, '(') + std::string(authres::kMaxCommentDepth, ')');
    CHECK(authres::parse(deep));
    CHECK_FALSE(authres::parse("h; spf=pass " + std::string(authres::kMaxCommentDepth + 1, '(') +
                               std::string(authres::kMaxCommentDepth + 1, ')')));

    std::string big = "h; spf=pass reason=\"" + std::string(authres::kMaxValue - 20, 'x') + "\"";
    big.resize(authres::kMaxValue - 1);
    big += "\"";
    CHECK(big.size() == authres::kMaxValue);
    CHECK(authres::parse(big));
    CHECK_FALSE(authres::parse(big + " "));
}

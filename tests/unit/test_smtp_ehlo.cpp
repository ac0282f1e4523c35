// Unit tests of what ferry-smtpd's EHLO offers: STARTTLS and AUTH by TLS state and plaintext_auth.
#include <catch.hpp>

#include <string>
#include <vector>

#include "common/auth/auth.hpp"
#include "mta/smtpd/extensions.hpp"

using namespace ferry;
using namespace ferry::smtpd;

TEST_CASE("smtp ehlo: STARTTLS and AUTH offers", "[smtp][smtp_ehlo]") {
    struct Row {
        const char* policy;
        bool cert, tls, loopback;
        bool starttls, auth;
    };
    const Row rows[] = {
        // policy      cert   tls    loopback  starttls auth
        {"loopback", true, false, true, true, true},     // the default, a local client
        {"loopback", true, false, false, true, false},   // a remote client: TLS first
        {"loopback", true, true, false, false, true},    // after STARTTLS, or on smtps
        {"never", true, false, true, true, false},       // not even on loopback
        {"never", true, true, true, false, true},
        {"always", true, false, false, true, true},
        {"never", false, false, false, false, false},    // no certificate: nothing to offer
        {"loopback", false, false, true, false, true},
        {"bogus", true, false, true, true, false},       // an unknown policy fails closed
    };
    for (const auto& r : rows) {
        INFO(r.policy << " cert=" << r.cert << " tls=" << r.tls << " loopback=" << r.loopback);
        Offers o = offers(r.cert, r.tls, plaintext_allowed(r.policy, r.tls, r.loopback));
        CHECK(o.starttls == r.starttls);
        CHECK(o.auth == r.auth);
    }
}

TEST_CASE("smtp ehlo: reply lines", "[smtp][smtp_ehlo]") {
    using V = std::vector<std::string>;
    const V tail = {"PIPELINING", "SIZE 1048576", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "SMTPUTF8", "DSN"};
    auto with = [&](V head) {
        head.insert(head.end(), tail.begin(), tail.end());
        return head;
    };
    CHECK(ehlo_lines("mx.test", 1048576, Offers{}) == with({"mx.test"}));
    CHECK(ehlo_lines("mx.test", 1048576, Offers{true, false}) == with({"mx.test", "STARTTLS"}));
    CHECK(ehlo_lines("mx.test", 1048576, Offers{false, true}) == with({"mx.test", "AUTH PLAIN LOGIN SCRAM-SHA-256"}));
    CHECK(ehlo_lines("mx.test", 1048576, Offers{true, true}) == with({"mx.test", "STARTTLS", "AUTH PLAIN LOGIN SCRAM-SHA-256"}));
    CHECK(ehlo_lines("mx.test", 0, Offers{})[2] == "SIZE 0");  // RFC 1870: no fixed limit
}

TEST_CASE("smtp ehlo: listener kinds", "[smtp][smtp_ehlo]") {
    CHECK(std::string(kind_name(ListenerKind::smtp)) == "smtp");
    CHECK(std::string(kind_name(ListenerKind::submission)) == "submission");
    CHECK(std::string(kind_name(ListenerKind::smtps)) == "smtps");
    CHECK_FALSE(requires_auth(ListenerKind::smtp));
    CHECK(requires_auth(ListenerKind::submission));
    CHECK(requires_auth(ListenerKind::smtps));
}

// ferry-admin check's verdicts and dns's listen ports: address blocks, SPF terms, MX names, certificates, DKIM, probe trails.
#include <catch2/catch.hpp>

#include "common/admin/mail_setup.hpp"
#include "common/admin/probe_trail.hpp"
#include "common/admin/self_check.hpp"

using namespace ferry::admin;

TEST_CASE("admin check: an address in a block", "[admin]") {
    struct Row { const char* address; const char* block; bool in; };
    const Row rows[] = {
        {"192.0.2.10", "192.0.2.0/24", true},   {"192.0.3.10", "192.0.2.0/24", false},
        {"192.0.2.10", "192.0.2.10", true},     {"192.0.2.11", "192.0.2.10", false},
        {"192.0.2.10", "0.0.0.0/0", true},      {"192.0.2.129", "192.0.2.128/25", true},
        {"192.0.2.127", "192.0.2.128/25", false}, {"2001:db8::1", "2001:db8::/32", true},
        {"2001:db9::1", "2001:db8::/32", false}, {"192.0.2.10", "2001:db8::/32", false},
        {"192.0.2.10", "192.0.2.0/33", false},  {"192.0.2.10", "192.0.2.0/x", false},
    };
    for (const auto& r : rows) {
        INFO(r.address << " in " << r.block);
        CHECK(address_in_block(r.address, r.block) == r.in);
    }
}

TEST_CASE("admin check: SPF covers the host through mx, a, a:host or an ip block", "[admin]") {
    const std::vector<std::string> host_addrs = {"192.0.2.10"};
    struct Row { const char* record; bool mx_ok; bool covered; };
    const Row rows[] = {
        {"v=spf1 mx -all", true, true},           {"v=spf1 mx -all", false, false},
        {"v=spf1 +mx -all", true, true},          {"v=spf1 -mx -all", true, false},
        {"v=spf1 ~mx -all", true, false},         {"v=spf1 a:mx.example.org -all", false, true},
        {"v=spf1 ip4:192.0.2.0/24 -all", false, true}, {"v=spf1 ip4:198.51.100.0/24 -all", false, false},
        {"v=spf1 a -all", false, true},           {"V=SPF1 MX -all", true, true},
        {"v=spf10 mx -all", true, false},
    };
    for (const auto& r : rows) {
        INFO(r.record);
        auto v = judge_spf("example.org", "mx.example.org", host_addrs, r.mx_ok, {"192.0.2.10"}, {"other", r.record});
        CHECK(v.ok == r.covered);
        if (!v.ok) CHECK(!v.fix.empty());
    }
    CHECK(judge_spf("example.org", "mx.example.org", host_addrs, true, {}, {}).detail == "example.org has no SPF record");
    auto two = judge_spf("example.org", "mx.example.org", host_addrs, true, {}, {"v=spf1 mx -all", "v=spf1 a -all"});
    CHECK(!two.ok);
    CHECK(two.detail.find("2 SPF records") != std::string::npos);
}

TEST_CASE("admin check: MX names the host, DMARC exists", "[admin]") {
    CHECK(judge_mx("example.org", "mx.example.org", {{10, "MX.Example.org."}}).ok);
    CHECK(judge_mx("example.org", "mx.example.org", {{10, "other.example.org"}, {20, "mx.example.org"}}).ok);
    auto wrong = judge_mx("example.org", "mx.example.org", {{10, "other.example.org"}});
    CHECK(!wrong.ok);
    CHECK(wrong.detail == "the MX records name 10 other.example.org, not mx.example.org");
    CHECK(judge_mx("example.org", "mx.example.org", {}).detail == "example.org has no MX record");
    CHECK(judge_dmarc("example.org", {"v=DMARC1; p=none"}).ok);
    CHECK(!judge_dmarc("example.org", {"v=spf1 mx -all"}).ok);
}

TEST_CASE("admin check: the certificate's name and remaining days", "[admin]") {
    CertFacts good{true, "", true, "CN=mx.example.org", 1000 + 30 * 86400};
    CHECK(judge_certificate("mx.example.org", good, 1000).ok);
    CertFacts soon = good;
    soon.not_after = 1000 + 13 * 86400;
    CHECK(judge_certificate("mx.example.org", soon, 1000).detail == "the certificate expires in 13 days");
    CertFacts other = good;
    other.matches_host = false;
    CHECK(!judge_certificate("mx.example.org", other, 1000).ok);
    CHECK(!judge_certificate("mx.example.org", CertFacts{false, "tls_cert_file is not set", false, "", 0}, 1000).ok);
}

TEST_CASE("admin dns: the port of a listen key, public ones only when asked", "[admin]") {
    CHECK(listen_port("*:587") == 587);
    CHECK(listen_port("0.0.0.0:143, [::]:143") == 143);
    CHECK(listen_port("[::]:993") == 993);
    CHECK(listen_port("") == 0);
    CHECK(listen_port("[::1]") == 0);
    CHECK(listen_port("127.0.0.1:110") == 110);
    CHECK(listen_port("127.0.0.1:110", true) == 0);
    CHECK(listen_port("[::1]:110", true) == 0);
    CHECK(listen_port("192.0.2.1:110", true) == 110);
}

TEST_CASE("admin check: the probe's headers as a remote receiver sees them", "[admin]") {
    const std::string good =
        "Return-Path: <postmaster@example.org>\n"
        "Delivered-To: postmaster@example.org\n"
        "Authentication-Results: mx.example.org;\n\tspf=pass (mx matches)\n\tsmtp.mailfrom=postmaster@example.org\n"
        "Received: from mx.example.org (unknown [192.0.2.1])\n\t(using TLS1.3-X.509-ECDSA-SECP256R1-AES-256-GCM)\n"
        "\tby mx.example.org (ferry) with ESMTPS id 0A1B2C\n\tfor <postmaster@example.org>; Sat, 28 Nov 2026 00:00:00 +0000\n"
        "Subject: probe\n";
    CHECK(header_field(good, "authentication-results", "MX.example.org;") ==
          "mx.example.org; spf=pass (mx matches) smtp.mailfrom=postmaster@example.org");
    CHECK(header_field(good, "Received").find("by mx.example.org (ferry) with ESMTPS id 0A1B2C for") != std::string::npos);
    CHECK(header_field(good, "X-Missing").empty());
    auto v = judge_probe_headers("mx.example.org", true, good);
    REQUIRE(v.size() == 3);
    for (const auto& each : v) CHECK(each.ok);

    // Another receiver's name, no TLS recorded, and each SPF result but pass, are faults with a fix.
    std::string other = good;
    other.replace(other.find("by mx.example.org (ferry) with ESMTPS"), 37, "by localhost (ferry) with ESMTP");
    v = judge_probe_headers("mx.example.org", true, other);
    CHECK(!v[0].ok);
    CHECK(v[0].fix.find("hostname = mx.example.org") != std::string::npos);
    CHECK(!v[1].ok);
    CHECK(judge_probe_headers("mx.example.org", false, other).size() == 2);
    for (const char* result : {"fail", "softfail", "none", "temperror", "permerror", "neutral"}) {
        std::string h = good;
        h.replace(h.find("spf=pass"), 8, std::string("spf=") + result);
        auto spf = judge_probe_headers("mx.example.org", true, h).back();
        CHECK(!spf.ok);
        CHECK(spf.detail.rfind(std::string("spf=") + result + ":", 0) == 0);
        CHECK(!spf.fix.empty());
    }
    // Results from another authserv-id do not count.
    std::string foreign = good;
    foreign.replace(foreign.find("Authentication-Results: mx.example.org;"), 39, "Authentication-Results: evil.example;");
    CHECK(judge_probe_headers("mx.example.org", true, foreign).back().detail == "no Authentication-Results: field from mx.example.org");
}

TEST_CASE("admin check: an unknown recipient is refused at RCPT", "[admin]") {
    CHECK(judge_unknown_recipient("x@example.org", "550 5.1.1 <x@example.org>: Recipient address rejected\r\n").ok);
    Verdict accepted = judge_unknown_recipient("x@example.org", "250 2.1.5 Ok\r\n");
    CHECK(!accepted.ok);
    CHECK(accepted.fix.find("catch-all") != std::string::npos);
    CHECK(!judge_unknown_recipient("x@example.org", "451 4.3.0 try later\r\n").ok);
    CHECK(!judge_unknown_recipient("x@example.org", "").ok);
}

TEST_CASE("admin check: the DKIM record publishes the key held", "[admin]") {
    const HeldDkimKey held{"f202611", "rsa", "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAx", "f202611._domainkey.example.org. IN TXT (...)\n"};
    const char* what = "DKIM record at f202611._domainkey.example.org";
    struct Row { std::vector<std::string> txt; bool ok; const char* detail; };
    const Row rows[] = {
        {{"v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAx"}, true, "k=rsa, p= matches the key held"},
        {{"v=DKIM1; p=MIIBIjANBgkqhkiG9w0BAQEF AAOCAQ8AMIIBCgKCAQEAx"}, true, "k=rsa, p= matches the key held"},  // white space, k= rsa by default
        {{"some other text", "k=RSA ; p = MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAx;"}, true, "k=rsa, p= matches the key held"},
        {{}, false, "no record published"},
        {{"v=spf1 mx -all"}, false, "no record published"},
        {{"v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAy"}, false,
         "record does not match the key held: p= is another key than the one held"},
        {{"v=DKIM1; k=rsa; p="}, false, "record does not match the key held: the record revokes the key (empty p=)"},
        {{"v=DKIM1; k=ed25519; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAx"}, false,
         "record does not match the key held: k=ed25519, the key held is rsa"},
    };
    for (const auto& r : rows) {
        INFO(r.detail);
        Verdict v = judge_dkim("example.org", held, r.txt);
        CHECK(v.ok == r.ok);
        CHECK(v.what == what);
        CHECK(v.detail == r.detail);
        if (!r.ok) CHECK(v.fix == "publish the record that `ferry-admin dkim show example.org` prints:\n" + held.record);
    }
}

TEST_CASE("admin check: a probe's Received: trail, hop by hop", "[admin]") {
    const std::string headers =
        "Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=postmaster@example.org\n"
        "Received: from out.example.org (unknown [192.0.2.1])\n\t(using TLS1.3)\n"
        "\tby mx.example.org (ferry) with ESMTPS id 0A1B2C\n\tfor <postmaster@example.org>; Sat, 28 Nov 2026 00:00:03 +0000\n"
        "Received: by out.example.org (ferry) with LMTP id 9F; Sat, 28 Nov 2026 01:00:01 +0100\n"
        "Received: from broken; no date here\n"
        "Date: Fri, 27 Nov 2026 23:59:58 +0000\n";
    auto hops = received_trail(headers);
    REQUIRE(hops.size() == 3);
    CHECK(hops[0].from == "broken");
    CHECK(!hops[0].at);
    CHECK(hops[1].by == "out.example.org");
    CHECK(hops[1].with == "LMTP");
    CHECK(hops[2].from == "out.example.org");
    CHECK(hops[2].by == "mx.example.org");
    CHECK(hops[2].with == "ESMTPS");
    auto lines = hop_lines(hops, 1795823998);  // the Date: above
    REQUIRE(lines.size() == 3);
    CHECK(lines[0] == "hop 1: by ? (from broken), no readable date");
    CHECK(lines[1] == "hop 2: by out.example.org (with LMTP), +3 s");
    CHECK(lines[2] == "hop 3: by mx.example.org (from out.example.org, with ESMTPS), +2 s");
    CHECK(hop_lines({}, 0).empty());
    CHECK(hop_lines(hops, std::nullopt)[1] == "hop 2: by out.example.org (with LMTP), time of the previous hop unknown");
}

TEST_CASE("admin check: a bounce's diagnostic", "[admin]") {
    const std::string dsn =
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\nSubject: Undelivered Mail Returned to Sender\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n--b\n"
        "Content-Type: text/plain\n\nAction: failed (in the human part: not read)\n--b\n"
        "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n"
        "Final-Recipient: rfc822; ok@example.org\nAction: delivered\nStatus: 2.0.0\n\n"
        "Final-Recipient: rfc822; probe@example.org\nAction: failed\nStatus: 5.2.2\n"
        "Diagnostic-Code: smtp; 552 5.2.2 Mailbox full\n\tprobe@example.org: over quota\n\n--b--\n";
    Bounce b = read_bounce(dsn);
    CHECK(b.found);
    CHECK(b.status == "5.2.2");
    CHECK(b.diagnostic == "552 5.2.2 Mailbox full probe@example.org: over quota");
    std::string bare = dsn;
    bare.erase(bare.find("Diagnostic-Code:"), bare.find("\n\n--b--") - bare.find("Diagnostic-Code:"));
    CHECK(read_bounce(bare).diagnostic == "Action: failed, Status: 5.2.2");
    CHECK(!read_bounce("Subject: hello\n\nAction: failed\n").found);
    std::string delayed = dsn;
    delayed.replace(delayed.find("Action: failed\nStatus"), 14, "Action: delayed");
    CHECK(!read_bounce(delayed).found);
}

// ARC: chains sealed here from the DKIM pieces verify; a changed body, a broken seal, a missing set and cv=fail fail.
#include <catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "common/verify/arc.hpp"

using namespace ferry::verify;
using dkim::Algorithm;
using dkim::Canon;
using dkim::PrivateKey;

namespace {

const std::string kMessage =
    "From: Ann <ann@example.org>\nTo: bob@example.net\nSubject: forwarded\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n"
    "\nHello Bob,  \n\tsee you at noon.\n\n";

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// RFC 6376 3.4.2 for the one-line fields the sealer writes: lower-case name, no space after the colon, CRLF.
std::string relaxed_line(const std::string& field) {
    size_t colon = field.find(':');
    std::string value = field.substr(colon + 1);
    value = value.substr(value.find_first_not_of(' '));
    if (!value.empty() && value.back() == '\n') value.pop_back();
    return lower(field.substr(0, colon)) + ":" + value + "\r\n";
}

// The ARC fields of `header` (one line each, as add_set writes them) with instance `i`, AAR then AMS then AS.
std::vector<std::string> set_fields(const std::string& header, int i) {
    std::vector<std::string> out;
    for (const char* name : {"ARC-Authentication-Results: i=", "ARC-Message-Signature: i=", "ARC-Seal: i="}) {
        std::string start = std::string(name) + std::to_string(i) + ";";
        size_t at = header.find(start);
        if (at != std::string::npos) out.push_back(header.substr(at, header.find('\n', at) + 1 - at));
    }
    return out;
}

// Adds ARC set `i` with `cv` on top of `message`, sealed as RFC 8617 5.1 says: the AMS is a DKIM
// signature over From, To, Subject and the body; the AS signs sets 1..i, relaxed, its own b= empty.
std::string add_set(const std::string& message, const PrivateKey& key, int i, const std::string& cv,
                    const std::string& domain = "example.org") {
    size_t end = message.find("\n\n");
    std::string header = message.substr(0, end + 1), body = message.substr(end + 2);
    std::string n = std::to_string(i), a = std::string("a=") + dkim::algorithm_name(key.algorithm()) + "; ";
    std::string aar = "ARC-Authentication-Results: i=" + n + "; mx" + n + "." + domain + "; spf=pass smtp.mailfrom=example.org\n";

    dkim::BodyHash bh(Canon::relaxed, std::nullopt);
    bh.feed(body);
    std::string ams = "ARC-Message-Signature: i=" + n + "; " + a + "c=relaxed/relaxed; d=" + domain +
                      "; s=arc; t=1700000000; h=from:to:subject; bh=" + dkim::encode_base64(bh.finish()) + "; b=";
    auto fields = dkim::split_header(aar + header);
    auto sig = key.sign(dkim::header_hash_input(fields, {"from", "to", "subject"}, ams, Canon::relaxed));
    REQUIRE(sig);
    ams += dkim::encode_base64(*sig) + "\n";

    std::string as = "ARC-Seal: i=" + n + "; " + a + "cv=" + cv + "; d=" + domain + "; s=arc; t=1700000000; b=";
    std::string data;
    for (int j = 1; j < i; ++j)
        for (const auto& f : set_fields(header, j)) data += relaxed_line(f);
    data += relaxed_line(aar) + relaxed_line(ams) + relaxed_line(as);
    data.resize(data.size() - 2);
    auto seal = key.sign(data);
    REQUIRE(seal);
    as += dkim::encode_base64(*seal) + "\n";
    return as + ams + aar + message;
}

dkim::KeyAnswer record(const PrivateKey& key) {
    auto p = key.public_key_base64();
    REQUIRE(p);
    std::string k = key.algorithm() == Algorithm::ed25519_sha256 ? "ed25519" : "rsa";
    return {dkim::KeyAnswer::Status::ok, {"v=DKIM1; k=" + k + "; p=" + *p}};
}

arc::ChainResult verify(const std::string& message, const dkim::KeyAnswer& key, size_t step = 4096) {
    arc::Verifier v(1700000100);
    for (size_t i = 0; i < message.size(); i += step) v.feed(std::string_view(message).substr(i, step));
    v.finish();
    for (const auto& name : v.key_names()) {
        CHECK(name == "arc._domainkey.example.org");
        v.key_answer(name, key);
    }
    return v.result();
}

PrivateKey ed() {
    auto k = PrivateKey::generate(Algorithm::ed25519_sha256);
    REQUIRE(k);
    return std::move(*k);
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
    size_t at = s.find(from);
    REQUIRE(at != std::string::npos);
    return s.replace(at, from.size(), to);
}

}  // namespace

// The ARC test suite's signing case message_body_eol_wsp (one set by the RFC 6376 example key,
// example.org selector dummy), written here as the fields a sealer puts on top of the message.
// The seal signs the AMS with its b= value as one unbroken word: folding inside b= would add a
// space after relaxed canonicalisation (RFC 6376 3.4.2) and break the seal, not the AMS.
const std::string kSuiteMessage =
    "ARC-Seal: a=rsa-sha256;\n"
    " b=Pg8Yyk1AgYy2l+kb6iy+mY106AXm5EdgDwJhLP7+XyT6yaS38ZUho+bmgSDorV+LyARH4A\n"
    " 967A/oWMX3coyC7pAGyI+hA3+JifL7P3/aIVP4ooRJ/WUgT79snPuulxE15jg6FgQE68ObA1\n"
    " /hy77BxdbD9EQxFGNcr/wCKQoeKJ8=; cv=none; d=example.org; i=1; s=dummy;\n"
    " t=12345\n"
    "ARC-Message-Signature: a=rsa-sha256;\n"
    " b=XWeK9DxQ8MUm+Me5GLZ5lQ3L49RdoFv7m7VlrAkKb3/C7jjw33TrTY0KYI5lkowvEGnAtm"
    "5lAqLz67FxA/VrJc2JiYFQR/mBoJLLz/hh9y77byYmSO9tLfIDe2A83+6QsXHO3K6PxTz7+v"
    "rCB4wHD9GADeUKVfHzmpZhFuYOa88=;\n"
    " bh=KWSe46TZKCcDbH4klJPo+tjk5LWJnVRlP5pvjXFZYLQ=; c=relaxed/relaxed;\n"
    " d=example.org; h=mime-version:date:from:to:subject;\n"
    " i=1; s=dummy; t=12345\n"
    "ARC-Authentication-Results: i=1; lists.example.org; arc=none;\n"
    " spf=pass smtp.mfrom=jqd@d1.example;\n"
    " dkim=pass (1024-bit key) header.i=@d1.example;\n"
    " dmarc=pass\n"
    "Authentication-Results: lists.example.org (test); arc=none;\n"
    "  spf=pass smtp.mfrom=jqd@d1.example;\n"
    "  dkim=pass (1024-bit key) header.i=@d1.example;\n"
    "  dmarc=pass\n"
    "MIME-Version: 1.0\n"
    "Return-Path: <jqd@d1.example.org>\n"
    "Received: by 10.157.14.6 with HTTP; Tue, 3 Jan 2017 12:22:54 -0800 (PST)\n"
    "Message-ID: <54B84785.1060301@d1.example.org>\n"
    "Date: Thu, 14 Jan 2015 15:00:01 -0800\n"
    "From: John Q Doe <jqd@d1.example.org>\n"
    "To: arc@dmarc.org\n"
    "Subject: Example 1\n"
    "\n"
    "Hey gang,  \n"
    "This is a test message.\n"
    "--J.\n";
const std::string kSuiteKey =
    "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/"
    "J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB";

TEST_CASE("arc: the ARC test suite's signing vector verifies, seal included", "[arc]") {
    auto fields = dkim::split_header(kSuiteMessage.substr(0, kSuiteMessage.find("\n\n") + 1));
    REQUIRE(fields[1].name == "arc-message-signature");
    int instance = 0;
    auto ams = arc::parse_message_signature(fields[1].raw.substr(fields[1].raw.find(':') + 1), &instance);
    REQUIRE(ams);
    CHECK(instance == 1);
    dkim::BodyHash bh(ams->body_canon, std::nullopt);
    bh.feed(kSuiteMessage.substr(kSuiteMessage.find("\n\n") + 2));
    CHECK(bh.finish() == ams->body_hash);
    auto key = dkim::parse_key_record(kSuiteKey);
    REQUIRE(key);
    std::string why;
    std::string data = dkim::header_hash_input(fields, ams->headers, fields[1].raw, ams->header_canon);
    CHECK(dkim::verify_signature(ams->algorithm, key->key, data, ams->signature, &why));
    CHECK_FALSE(dkim::verify_signature(ams->algorithm, key->key, replace(data, "Example 1", "Example 2"), ams->signature, &why));
    // RFC 8617 5.1.1's input over the suite's AAR, AMS and AS.
    auto seal = arc::parse_seal(fields[0].raw.substr(fields[0].raw.find(':') + 1));
    REQUIRE(seal);
    std::string sealed = arc::seal_hash_input({fields[2].raw, fields[1].raw, fields[0].raw});
    CHECK(dkim::verify_signature(seal->algorithm, key->key, sealed, seal->signature, &why));
    arc::Verifier v(1700000000);
    v.feed(kSuiteMessage);
    v.finish();
    REQUIRE(v.key_names() == std::vector<std::string>{"dummy._domainkey.example.org"});
    v.key_answer("dummy._domainkey.example.org", {dkim::KeyAnswer::Status::ok, {kSuiteKey}});
    auto r = v.result();
    CHECK(r.status == arc::Status::pass);
    CHECK(r.reason == "");
    // The same AMS with its b= folded: the AMS still verifies, the seal does not.
    std::string folded = replace(kSuiteMessage, "GnAtm5lAq", "GnAtm\n 5lAq");
    arc::Verifier w(1700000000);
    w.feed(folded);
    w.finish();
    w.key_answer("dummy._domainkey.example.org", {dkim::KeyAnswer::Status::ok, {kSuiteKey}});
    CHECK(w.result().reason.find("ARC-Seal 1:") == 0);
}

TEST_CASE("arc: a message without ARC sets is none", "[arc]") {
    auto r = verify(kMessage, {});
    CHECK(r.status == arc::Status::none);
    CHECK(arc::result_text(r) == "arc=none");
}

TEST_CASE("arc: one and two sealed instances pass", "[arc]") {
    PrivateKey key = ed();
    std::string one = add_set(kMessage, key, 1, "none");
    auto r = verify(one, record(key));
    CHECK(r.reason == "");
    CHECK(r.status == arc::Status::pass);
    CHECK(r.instances == 1);
    CHECK(arc::result_text(r) == "arc=pass (i=1 d=example.org)");
    CHECK(verify(one, record(key), 7).status == arc::Status::pass);  // fed in small slices

    std::string two = add_set(one, key, 2, "pass");
    r = verify(two, record(key));
    CHECK(r.reason == "");
    CHECK(r.status == arc::Status::pass);
    CHECK(r.instances == 2);

    auto rsa = PrivateKey::generate(Algorithm::rsa_sha256);
    REQUIRE(rsa);
    CHECK(verify(add_set(kMessage, *rsa, 1, "none"), record(*rsa)).status == arc::Status::pass);
}

TEST_CASE("arc: a changed body fails the newest AMS", "[arc]") {
    PrivateKey key = ed();
    std::string two = add_set(add_set(kMessage, key, 1, "none"), key, 2, "pass");
    auto r = verify(replace(two, "see you at noon", "see you at one"), record(key));
    CHECK(r.status == arc::Status::fail);
    CHECK(r.reason == "body hash mismatch");
    // A signed header field changed: the AMS signature does not verify.
    r = verify(replace(two, "Subject: forwarded", "Subject: changed"), record(key));
    CHECK(r.status == arc::Status::fail);
    CHECK(r.reason.find("ARC-Message-Signature 2") == 0);
}

TEST_CASE("arc: a broken seal fails", "[arc]") {
    PrivateKey key = ed();
    std::string two = add_set(add_set(kMessage, key, 1, "none"), key, 2, "pass");
    // The AAR of instance 1 is signed by both seals only.
    auto r = verify(replace(two, "mx1.example.org; spf=pass", "mx1.example.org; spf=fail"), record(key));
    CHECK(r.status == arc::Status::fail);
    CHECK(r.reason.find("ARC-Seal 2") == 0);
    // Another key: every signature fails, the AMS first.
    CHECK(verify(two, record(ed())).status == arc::Status::fail);
    // An instance-1 seal from another key under the same name, the rest re-sealed on top: seal 1 fails.
    std::string other = add_set(add_set(kMessage, ed(), 1, "none"), key, 2, "pass");
    r = verify(other, record(key));
    CHECK(r.status == arc::Status::fail);
    CHECK(r.reason.find("ARC-Seal 1") == 0);
}

TEST_CASE("arc: structural faults fail", "[arc]") {
    PrivateKey key = ed();
    std::string one = add_set(kMessage, key, 1, "none");
    // A set without its instance 1.
    auto r = verify(add_set(kMessage, key, 2, "pass"), record(key));
    CHECK(r.status == arc::Status::fail);
    CHECK(r.reason == "instance 1 is incomplete");
    // A set missing its AS.
    r = verify(one.substr(one.find('\n') + 1), record(key));
    CHECK(r.status == arc::Status::fail);
    CHECK(r.reason == "instance 1 is incomplete");
    // The newest says cv=fail.
    r = verify(add_set(one, key, 2, "fail"), record(key));
    CHECK(r.status == arc::Status::fail);
    CHECK(r.reason == "the newest seal says cv=fail");
    // cv=pass on instance 1, cv=none on 2.
    CHECK(verify(add_set(kMessage, key, 1, "pass"), record(key)).reason == "instance 1 has cv=pass");
    CHECK(verify(add_set(one, key, 2, "none"), record(key)).reason == "instance 2 has cv=none");
    // A repeated set.
    std::string first_set = one.substr(0, one.size() - kMessage.size());
    CHECK(verify(first_set + one, record(key)).reason == "instance 1 has a repeated ARC field");
    // No key published.
    r = verify(one, {dkim::KeyAnswer::Status::nxdomain, {}});
    CHECK(r.status == arc::Status::fail);
    CHECK(r.reason == "ARC-Message-Signature: no key record");
}

TEST_CASE("arc: field parsing", "[arc]") {
    int i = 0;
    std::string why;
    CHECK(arc::aar_instance(" i=3; mx.example.org; dkim=pass") == 3);
    CHECK(arc::aar_instance(" mx.example.org; i=3") == 0);
    CHECK(arc::aar_instance(" i=51; mx.example.org") == 0);
    auto seal = arc::parse_seal(" i=2; a=rsa-sha256; cv=Pass; d=Example.ORG; s=s1; t=1; b=AAAA", &why);
    REQUIRE(seal);
    CHECK(seal->instance == 2);
    CHECK(seal->cv == "pass");
    CHECK(seal->domain == "example.org");
    CHECK_FALSE(arc::parse_seal(" i=2; a=rsa-sha256; cv=maybe; d=e.org; s=s1; b=AAAA", &why));
    CHECK_FALSE(arc::parse_seal(" i=2; a=rsa-sha256; cv=none; d=e.org; s=s1; h=from; b=AAAA", &why));
    CHECK_FALSE(arc::parse_seal(" i=0; a=rsa-sha256; cv=none; d=e.org; s=s1; b=AAAA", &why));
    CHECK_FALSE(arc::parse_seal(" i=1; a=rsa-sha1; cv=none; d=e.org; s=s1; b=AAAA", &why));
    auto ams = arc::parse_message_signature(" i=4; a=rsa-sha256; c=relaxed/relaxed; d=e.org; s=s1; h=from:to; bh=AAAA; b=AAAA",
                                            &i, &why);
    REQUIRE(ams);
    CHECK(i == 4);
    CHECK(ams->domain == "e.org");
    CHECK(ams->headers == std::vector<std::string>{"from", "to"});
    CHECK_FALSE(arc::parse_message_signature(" i=1; v=1; a=rsa-sha256; d=e.org; s=s1; h=from; bh=AAAA; b=AAAA", &i, &why));
    CHECK_FALSE(arc::parse_message_signature(" i=1; a=rsa-sha256; d=e.org; s=s1; h=from:arc-seal; bh=AAAA; b=AAAA", &i, &why));
    CHECK_FALSE(arc::parse_message_signature(" a=rsa-sha256; d=e.org; s=s1; h=from; bh=AAAA; b=AAAA", &i, &why));
}

// DKIM: tag-list and key-record parsing, canonicalisation, RFC 8463's signed example, sign-then-verify round trips.
#include <catch.hpp>

#include <string>

#include "common/verify/dkim.hpp"

using namespace ferry::verify::dkim;

namespace {

// RFC 8463 appendix A: one message with an Ed25519 and an RSA signature.
const std::string kRfc8463 =
    "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\n"
    " d=football.example.com; i=@football.example.com;\n"
    " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\n"
    " subject : date : message-id : from : subject : date;\n"
    " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\n"
    " b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\n"
    " Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\n"
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\n"
    " d=football.example.com; i=@football.example.com;\n"
    " q=dns/txt; s=test; t=1528637909; h=from : to : subject :\n"
    " date : message-id : from : subject : date;\n"
    " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\n"
    " b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3\n"
    " DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz\n"
    " dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=\n"
    "From: Joe SixPack <joe@football.example.com>\n"
    "To: Suzie Q <suzie@shopping.example.net>\n"
    "Subject: Is dinner ready?\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\n"
    "\n"
    "Hi.\n"
    "\n"
    "We lost the game.  Are you hungry yet?\n"
    "\n"
    "Joe.\n";
const std::string kEdKey = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
const std::string kRsaKey =
    "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/"
    "J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB";
const std::string kEdPrivate =
    "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n";

KeyAnswer txt(std::string record) { return {KeyAnswer::Status::ok, {std::move(record)}}; }

// Verifies `message` fed in chunks of `step` octets, answering every key with `key`.
std::vector<SignatureResult> verify(const std::string& message, const KeyAnswer& key, size_t step = 4096,
                                    std::time_t now = 1528637999) {
    Verifier v(now);
    for (size_t i = 0; i < message.size(); i += step) v.feed(std::string_view(message).substr(i, step));
    v.finish();
    std::vector<SignatureResult> out;
    for (size_t i = 0; i < v.count(); ++i) {
        if (!v.key_name(i).empty()) v.key_answer(i, key);
        out.push_back(v.result(i));
    }
    return out;
}

std::string body_hash(Canon c, const std::string& body, size_t step = 1000) {
    BodyHash h(c, std::nullopt);
    for (size_t i = 0; i < body.size(); i += step) h.feed(std::string_view(body).substr(i, step));
    return encode_base64(h.finish());
}

std::string sign(const PrivateKey& key, const std::string& message, Canon hc = Canon::relaxed, Canon bc = Canon::relaxed) {
    Signer s(key, {"example.org", "sel", default_signed_headers(), hc, bc, 1700000000});
    s.feed(message);
    auto field = s.finish();
    REQUIRE(field);
    return *field + message;
}

const std::string kMessage =
    "From: Ann <ann@example.org>\nTo: bob@example.net\nSubject: lunch\n  folded   here \nDate: Mon, 1 Jan 2024 10:00:00 +0000\n"
    "\nHello Bob,  \n\tsee you at noon.\n\n\n";

}  // namespace

TEST_CASE("dkim: RFC 8463 example verifies with both keys", "[dkim]") {
    Verifier v(1528637999);
    v.feed(kRfc8463);
    v.finish();
    REQUIRE(v.count() == 2);
    REQUIRE(v.key_name(0) == "brisbane._domainkey.football.example.com");
    REQUIRE(v.key_name(1) == "test._domainkey.football.example.com");
    v.key_answer(0, txt(kEdKey));
    v.key_answer(1, txt(kRsaKey));
    CHECK(v.result(0).status == Status::pass);
    CHECK(v.result(0).reason == "");
    CHECK(v.result(1).status == Status::pass);
    CHECK(v.result(1).reason == "");
    CHECK(result_text(v.result(0)) == "dkim=pass header.d=football.example.com header.s=brisbane header.b=/gCrinpc");
}

TEST_CASE("dkim: RFC 8463 example fed byte by byte and with CRLF", "[dkim]") {
    for (const auto& r : verify(kRfc8463, txt(kEdKey), 1)) (void)r;
    auto res = verify(kRfc8463, txt(kEdKey), 1);
    CHECK(res[0].status == Status::pass);
    std::string crlf;
    for (char c : kRfc8463) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
    CHECK(verify(crlf, txt(kEdKey), 7)[0].status == Status::pass);
    CHECK(verify(crlf, txt(kRsaKey), 7)[1].status == Status::pass);
}

TEST_CASE("dkim: RFC 8463 body hash and Ed25519 signature are reproduced", "[dkim]") {
    CHECK(body_hash(Canon::relaxed, "Hi.\n\nWe lost the game.  Are you hungry yet?\n\nJoe.\n") ==
          "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
    auto key = PrivateKey::from_pem(kEdPrivate);
    REQUIRE(key);
    CHECK(key->algorithm() == Algorithm::ed25519_sha256);
    CHECK(*key->public_key_base64() == "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
    // Ed25519 is deterministic: signing the example's header hash input gives its b= again.
    std::string header = kRfc8463.substr(0, kRfc8463.find("\n\n"));
    auto fields = split_header(header);
    auto sig = parse_signature(fields[0].raw.substr(15));
    REQUIRE(sig);
    auto b = key->sign(header_hash_input(fields, sig->headers, fields[0].raw, Canon::relaxed));
    REQUIRE(b);
    CHECK(encode_base64(*b) == "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==");
}

TEST_CASE("dkim: tampering fails", "[dkim]") {
    std::string body = kRfc8463;
    body.replace(body.find("hungry"), 6, "Hungry");
    auto res = verify(body, txt(kEdKey));
    CHECK(res[0].status == Status::fail);
    CHECK(res[0].reason == "body hash mismatch");
    std::string header = kRfc8463;
    header.replace(header.find("dinner"), 6, "Dinner");
    res = verify(header, txt(kEdKey));
    CHECK(res[0].status == Status::fail);
    CHECK(res[0].reason == "signature does not verify");
    // The RSA signature checked with the Ed25519 key: the key type does not fit.
    CHECK(verify(kRfc8463, txt(kEdKey))[1].status == Status::permerror);
}

TEST_CASE("dkim: key answers", "[dkim]") {
    CHECK(verify(kRfc8463, {KeyAnswer::Status::error, {}})[0].status == Status::temperror);
    CHECK(verify(kRfc8463, {KeyAnswer::Status::nxdomain, {}})[0].status == Status::permerror);
    CHECK(verify(kRfc8463, txt("v=DKIM1; k=ed25519; p="))[0].reason == "key revoked");
    CHECK(verify(kRfc8463, txt("v=DKIM1; k=ed25519; h=sha1; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="))[0].status ==
          Status::permerror);
    auto testing = verify(kRfc8463, txt("v=DKIM1; k=ed25519; t=y; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="))[0];
    CHECK(testing.status == Status::pass);
    CHECK(testing.testing);
    CHECK(verify(kRfc8463, txt("k=ed25519; v=DKIM1; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="))[0].status ==
          Status::permerror);  // v= not first
}

TEST_CASE("dkim: relaxed and simple body canonicalisation", "[dkim]") {
    // Trailing whitespace, runs of WSP, trailing empty lines, CRLF and LF alike.
    CHECK(body_hash(Canon::relaxed, "a  b \t\n\n\n") == body_hash(Canon::relaxed, "a b\r\n"));
    CHECK(body_hash(Canon::relaxed, "a b") == body_hash(Canon::relaxed, "a b\n"));
    // RFC 6376 3.4.5: WSP at the start of a body line stays, as one space (OpenDKIM agrees).
    CHECK(body_hash(Canon::relaxed, " C \r\nD \t E\r\n\r\n\r\n") == body_hash(Canon::simple, " C\r\nD E\r\n"));
    CHECK(body_hash(Canon::relaxed, "\t\tC\n") != body_hash(Canon::relaxed, "C\n"));
    CHECK(body_hash(Canon::simple, "a  b\n") != body_hash(Canon::simple, "a b\n"));
    CHECK(body_hash(Canon::simple, "a\n\n\n") == body_hash(Canon::simple, "a\r\n"));
    // Empty bodies: simple hashes one CRLF, relaxed nothing (RFC 6376 3.4.3, 3.4.4).
    CHECK(body_hash(Canon::simple, "") == "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
    CHECK(body_hash(Canon::simple, "\n\n") == "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
    CHECK(body_hash(Canon::relaxed, "") == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    CHECK(body_hash(Canon::relaxed, " \n\t\n") == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    // Chunk boundaries inside a CRLF or a line do not matter.
    std::string b = "line one  \r\n\r\nline\ttwo\r\n\r\n";
    CHECK(body_hash(Canon::relaxed, b, 1) == body_hash(Canon::relaxed, b));
    CHECK(body_hash(Canon::simple, b, 1) == body_hash(Canon::simple, b));
}

TEST_CASE("dkim: l= limits the hashed body", "[dkim]") {
    BodyHash h(Canon::simple, 5);
    h.feed("abc\ndef\n");
    CHECK(encode_base64(h.finish()) == encode_base64(sha256("abc\r\n")));
    BodyHash h2(Canon::simple, 6);
    h2.feed("abc\ndef\n");
    CHECK(encode_base64(h2.finish()) == encode_base64(sha256("abc\r\nd")));
}

TEST_CASE("dkim: header canonicalisation", "[dkim]") {
    CHECK(canon_header("SubJect : A  \r\n\t b  ", Canon::relaxed) == "subject:A b\r\n");
    CHECK(canon_header("SubJect : A  \r\n\t b  ", Canon::simple) == "SubJect : A  \r\n\t b  \r\n");
    auto fields = split_header("From: a\nX: 1\n continued\nfrom: b\n");
    REQUIRE(fields.size() == 3);
    CHECK(fields[1].raw == "X: 1\r\n continued");
    // Bottom-up: the first "from" takes the last From field; a third one signs nothing.
    CHECK(header_hash_input(fields, {"from", "from", "from"}, "DKIM-Signature: b=xyz; d=a", Canon::relaxed) ==
          "from:b\r\nfrom:a\r\ndkim-signature:b=; d=a");
    CHECK(without_b_value("DKIM-Signature: bh=1; b=ab\r\n cd; d=x") == "DKIM-Signature: bh=1; b=; d=x");
    CHECK(without_b_value("DKIM-Signature: a=1; b = ab") == "DKIM-Signature: a=1; b =");
}

TEST_CASE("dkim: signature field parsing", "[dkim]") {
    std::string why;
    auto s = parse_signature(" v=1; a=rsa-sha256; d=Example.ORG; s=sel; c=relaxed; h=From : To; bh=YQ==; b=Yg==; l=10; t=5; x=9", &why);
    REQUIRE(s);
    CHECK(s->domain == "example.org");
    CHECK(s->identity == "@example.org");
    CHECK(s->header_canon == Canon::relaxed);
    CHECK(s->body_canon == Canon::simple);
    CHECK(s->headers == std::vector<std::string>{"from", "to"});
    CHECK(*s->length == 10);
    const char* bad[] = {
        "v=1; a=rsa-sha1; d=a; s=b; h=from; bh=YQ==; b=Yg==",         // SHA-1 is gone (RFC 8301)
        "v=2; a=rsa-sha256; d=a; s=b; h=from; bh=YQ==; b=Yg==",
        "v=1; a=rsa-sha256; d=a; s=b; h=to; bh=YQ==; b=Yg==",         // From unsigned
        "v=1; a=rsa-sha256; d=a; s=b; h=from; bh=YQ==",               // no b=
        "v=1; a=rsa-sha256; d=a; s=b; h=from; bh=YQ==; b=Yg==; i=x@other",
        "v=1; a=rsa-sha256; d=a; s=b; h=from; bh=YQ==; b=Yg==; t=10; x=9",
        "v=1; a=rsa-sha256; d=a; d=a; s=b; h=from; bh=YQ==; b=Yg==",  // repeated tag
        "v=1; a=rsa-sha256; d=a; s=b; h=from; bh=Y!==; b=Yg==",
        "v=1; a=rsa-sha256; d=a; s=b; h=from; bh=YQ==; b=Yg==; l=-1",
        "v=1;; a=rsa-sha256",
        "v=1; 9x=1",
    };
    for (const char* b : bad) {
        INFO(b);
        CHECK(!parse_signature(b));
    }
    CHECK(parse_signature("v=1; a=rsa-sha256; d=a.b; s=b; h=from; bh=YQ==; b=Yg==; i=u@x.a.b;"));
    CHECK(!parse_tag_list(std::string(kMaxTagListLength + 1, 'a')));
}

TEST_CASE("dkim: expired signatures fail", "[dkim]") {
    auto key = PrivateKey::generate(Algorithm::ed25519_sha256);
    REQUIRE(key);
    Signer s(*key, {"example.org", "sel", {"from"}, Canon::relaxed, Canon::relaxed, 1000});
    s.feed(kMessage);
    std::string field = *s.finish();
    field.insert(field.find("t=1000;") + 7, " x=2000;");
    CHECK(verify(field + kMessage, txt("v=DKIM1; k=ed25519; p=" + *key->public_key_base64()), 4096, 3000)[0].reason ==
          "signature expired");
}

TEST_CASE("dkim: sign and verify round trips", "[dkim]") {
    auto rsa = PrivateKey::generate(Algorithm::rsa_sha256);
    auto ed = PrivateKey::generate(Algorithm::ed25519_sha256);
    REQUIRE(rsa);
    REQUIRE(ed);
    auto rsa_back = PrivateKey::from_pem(*rsa->pem());
    REQUIRE(rsa_back);
    for (auto* key : {&*rsa_back, &*ed}) {
        std::string record = std::string("v=DKIM1; k=") + (key->algorithm() == Algorithm::rsa_sha256 ? "rsa" : "ed25519") +
                             "; p=" + *key->public_key_base64();
        for (Canon hc : {Canon::simple, Canon::relaxed})
            for (Canon bc : {Canon::simple, Canon::relaxed}) {
                std::string signed_message = sign(*key, kMessage, hc, bc);
                auto res = verify(signed_message, txt(record), 3);
                REQUIRE(res.size() == 1);
                INFO(signed_message);
                CHECK(res[0].status == Status::pass);
                CHECK(res[0].domain == "example.org");
                std::string tampered = signed_message;
                tampered.replace(tampered.find("noon"), 4, "nine");
                CHECK(verify(tampered, txt(record))[0].status == Status::fail);
            }
    }
    // Every folded line of the field stays short.
    std::string field = sign(*rsa, kMessage);
    field.resize(field.find("From:"));
    for (size_t pos = 0, nl; (nl = field.find('\n', pos)) != std::string::npos; pos = nl + 1) CHECK(nl - pos <= 78);
}

TEST_CASE("dkim: a message without a body or header end", "[dkim]") {
    auto key = PrivateKey::generate(Algorithm::ed25519_sha256);
    std::string record = "v=DKIM1; k=ed25519; p=" + *key->public_key_base64();
    std::string m = sign(*key, "From: a@example.org\nSubject: x\n");
    CHECK(verify(m, txt(record))[0].status == Status::pass);
    CHECK(verify("From: a@example.org\n\nno signature\n", txt(record)).empty());
}

#include "common/verify/dmarc.hpp"

namespace dmarc = ferry::verify::dmarc;

TEST_CASE("dmarc: record parsing", "[dmarc]") {
    auto r = dmarc::parse_record("v=DMARC1; p=quarantine; sp=reject; pct=20; adkim=s; rua=mailto:x@example.org");
    REQUIRE(r);
    CHECK(r->p == dmarc::Policy::quarantine);
    CHECK(*r->sp == dmarc::Policy::reject);
    CHECK(r->pct == 20);
    CHECK(r->strict_dkim);
    CHECK(!r->strict_spf);
    CHECK(!dmarc::parse_record("p=reject; v=DMARC1"));  // v= first
    CHECK(!dmarc::parse_record("v=DMARC1; p=bogus"));
    CHECK(!dmarc::parse_record("v=DMARC1"));
    CHECK(dmarc::parse_record("v=DMARC1; p=none; pct=abc")->pct == 100);
    CHECK(dmarc::is_dmarc_record("v=DMARC1; p=none"));
    CHECK(!dmarc::is_dmarc_record("v=DMARC10; p=none"));
    CHECK(!dmarc::is_dmarc_record("v=spf1 -all"));
}

TEST_CASE("dmarc: organisational domain and alignment", "[dmarc]") {
    CHECK(dmarc::organizational_domain("mail.example.com") == "example.com");
    CHECK(dmarc::organizational_domain("a.b.example.co.uk") == "example.co.uk");
    CHECK(dmarc::organizational_domain("Example.COM.") == "example.com");
    CHECK(dmarc::organizational_domain("co.uk") == "co.uk");  // a public suffix stays itself
    CHECK(dmarc::aligned("mail.example.com", "example.com", false));
    CHECK(!dmarc::aligned("mail.example.com", "example.com", true));
    CHECK(!dmarc::aligned("example.co.uk", "other.co.uk", false));  // siblings under a public suffix
    CHECK(!dmarc::aligned("", "example.com", false));
}

TEST_CASE("dmarc: verdicts", "[dmarc]") {
    dmarc::Record rec = *dmarc::parse_record("v=DMARC1; p=reject; sp=quarantine");
    auto v = dmarc::evaluate({"example.com", "", {"mail.example.com"}}, rec, "example.com", 0);
    CHECK(v.result == dmarc::Result::pass);
    CHECK(v.reason == "dkim");
    v = dmarc::evaluate({"example.com", "bounce.example.com", {"other.org"}}, rec, "example.com", 0);
    CHECK(v.result == dmarc::Result::pass);
    CHECK(v.reason == "spf");
    v = dmarc::evaluate({"example.com", "other.org", {"other.org"}}, rec, "example.com", 0);
    CHECK(v.result == dmarc::Result::fail);
    CHECK(v.policy == dmarc::Policy::reject);
    CHECK(v.enforce);
    // A subdomain found through the organisational domain's record gets sp=.
    v = dmarc::evaluate({"sub.example.com", "", {}}, rec, "example.com", 0);
    CHECK(v.policy == dmarc::Policy::quarantine);
    // pct=: only the sampled share is enforced.
    dmarc::Record half = *dmarc::parse_record("v=DMARC1; p=reject; pct=50");
    CHECK(dmarc::evaluate({"example.com", "", {}}, half, "example.com", 49).enforce);
    CHECK(!dmarc::evaluate({"example.com", "", {}}, half, "example.com", 50).enforce);
    // Strict DKIM alignment wants the very domain.
    dmarc::Record strict = *dmarc::parse_record("v=DMARC1; p=reject; adkim=s");
    CHECK(dmarc::evaluate({"example.com", "", {"mail.example.com"}}, strict, "example.com", 0).result == dmarc::Result::fail);
}

TEST_CASE("dmarc: the From: domain", "[dmarc]") {
    CHECK(dmarc::from_domain(" Ann <ann@Example.ORG>") == "example.org");
    CHECK(dmarc::from_domain(" ann@example.org (Ann)") == "example.org");
    CHECK(dmarc::from_domain(" a@x.org, b@y.org") == "");
    CHECK(dmarc::from_domain(" <a@x.org>, <b@y.org>") == "");
    CHECK(dmarc::from_domain(" undisclosed") == "");
}

TEST_CASE("dkim: a signer's public key is decoded once and then reused", "[dkim][dkim_key_cache]") {
    auto key = PrivateKey::generate(Algorithm::ed25519_sha256);
    REQUIRE(key);
    std::string record = "v=DKIM1; k=ed25519; p=" + *key->public_key_base64();
    std::string signed_message = sign(*key, kMessage);
    auto before = public_key_cache_stats();
    for (int i = 0; i < 3; ++i) REQUIRE(verify(signed_message, txt(record))[0].status == Status::pass);
    auto after = public_key_cache_stats();
    CHECK(after.imports - before.imports == 1);
    CHECK(after.hits - before.hits == 2);
    // The cached key still tells a bad signature from a good one.
    std::string tampered = signed_message;
    tampered.replace(tampered.find("noon"), 4, "nine");
    CHECK(verify(tampered, txt(record))[0].status == Status::fail);
    // A key that cannot be used is not kept: asked again, decoded again, still refused.
    std::string bad = "v=DKIM1; k=ed25519; p=AAAA";
    auto b1 = public_key_cache_stats();
    CHECK(verify(signed_message, txt(bad))[0].status != Status::pass);
    CHECK(verify(signed_message, txt(bad))[0].status != Status::pass);
    CHECK(public_key_cache_stats().imports - b1.imports == 2);
}

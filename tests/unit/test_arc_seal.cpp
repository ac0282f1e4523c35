// ARC sealing: the plan read from the header as received, sets sealed here verifying with the chain verifier, and the sealing domain.
#include <catch.hpp>

#include <string>
#include <vector>

#include "common/verify/arc.hpp"
#include "common/verify/arc_seal.hpp"
#include "mta/relay/arc_seal.hpp"
#include "mta/relay/message.hpp"
#include "scratch.hpp"

using namespace ferry::verify;
using dkim::PrivateKey;

namespace {

// The RFC 6376 example key (appendix C), fixed so that a failure repeats.
const char* const kKeyPem =
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIICXQIBAAKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQi\n"
    "Y/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqM\n"
    "KrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB\n"
    "AoGAH0cxOhFZDgzXWhDhnAJDw5s4roOXN4OhjiXa8W7Y3rhX3FJqmJSPuC8N9vQm\n"
    "6SVbaLAE4SG5mLMueHlh4KXffEpuLEiNp9Ss3O4YfLiQpbRqE7Tm5SxKjvvQoZZe\n"
    "zHorimOaChRL2it47iuWxzxSiRMv4c+j70GiWdxXnxe4UoECQQDzJB/0U58W7RZy\n"
    "6enGVj2kWF732CoWFZWzi1FicudrBFoy63QwcowpoCazKtvZGMNlPWnC7x/6o8Gc\n"
    "uSe0ga2xAkEA8C7PipPm1/1fTRQvj1o/dDmZp243044ZNyxjg+/OPN0oWCbXIGxy\n"
    "WvmZbXriOWoSALJTjExEgraHEgnXssuk7QJBALl5ICsYMu6hMxO73gnfNayNgPxd\n"
    "WFV6Z7ULnKyV7HSVYF0hgYOHjeYe9gaMtiJYoo0zGN+L3AAtNP9huqkWlzECQE1a\n"
    "licIeVlo1e+qJ6Mgqr0Q7Aa7falZ448ccbSFYEPD6oFxiOl9Y9se9iYHZKKfIcst\n"
    "o7DUw1/hz2Ck4N5JrgUCQQCyKveNvjzkkd8HjYs0SwM0fPjK16//5qDZ2UiDGnOe\n"
    "uEzxBDAr518Z8VFbR41in3W4Y3yCDgQlLlcETrS+zYcL\n"
    "-----END RSA PRIVATE KEY-----\n";

const std::string kReceived =
    "Received: from mail.origin.test (mail.origin.test [192.0.2.1])\n\tby mx.forwarder.test (ferry) with ESMTP id 4XyZ\n"
    "\tfor <list@forwarder.test>; Mon, 1 Jan 2024 10:00:00 +0000\n"
    "Authentication-Results: mx.forwarder.test;\n\tspf=pass smtp.mailfrom=ann@origin.test\n"
    "Authentication-Results: mx.forwarder.test;\n\tdkim=pass header.d=origin.test header.s=s1 header.b=AbCdEfGh;\n"
    "\tdmarc=pass (p=reject) header.from=origin.test\n"
    "Authentication-Results: mx.elsewhere.test; dkim=fail\n";
const std::string kMessage =
    "From: Ann <ann@origin.test>\nTo: list@forwarder.test\nSubject: forwarded\nDate: Mon, 1 Jan 2024 09:59:00 +0000\n"
    "\nHello  list,  \n\tsee you at noon.\n\n";

PrivateKey fixed_key() {
    auto k = PrivateKey::from_pem(kKeyPem);
    REQUIRE(k);
    return std::move(*k);
}

std::vector<dkim::HeaderField> header_of(const std::string& message) {
    return dkim::split_header(message.substr(0, message.find("\n\n") + 1));
}

// `message` with a set sealed on top by `authserv_id`'s results, d=domain s=arc.
std::string seal(const std::string& message, const PrivateKey& key, const std::string& authserv_id,
                 const std::string& domain = "forwarder.test") {
    auto plan = arc::plan_seal(header_of(message), authserv_id);
    REQUIRE(plan);
    arc::Sealer s(key, {domain, "arc", {"from", "to", "subject", "date"}, 1700000000}, std::move(plan.value()));
    for (size_t i = 0; i < message.size(); i += 7) s.feed(std::string_view(message).substr(i, 7));
    auto fields = s.finish();
    REQUIRE(fields);
    return *fields + message;
}

arc::ChainResult verify(const std::string& message, const PrivateKey& key) {
    auto p = key.public_key_base64();
    REQUIRE(p);
    arc::Verifier v(1700000100);
    v.feed(message);
    v.finish();
    for (const auto& name : v.key_names()) v.key_answer(name, {dkim::KeyAnswer::Status::ok, {"v=DKIM1; k=rsa; p=" + *p}});
    return v.result();
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
    size_t at = s.find(from);
    REQUIRE(at != std::string::npos);
    return s.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("arc seal: our results are read, others' are not", "[arc_seal]") {
    auto fields = header_of(kReceived + kMessage);
    CHECK(arc::trusted_results(fields, "MX.forwarder.test") ==
          "MX.forwarder.test;\n\tspf=pass smtp.mailfrom=ann@origin.test;\n\tdkim=pass header.d=origin.test header.s=s1"
          " header.b=AbCdEfGh;\n\tdmarc=pass (p=reject) header.from=origin.test");
    CHECK(arc::trusted_results(fields, "mx.other.test") == "");
    CHECK(arc::trusted_results(header_of("Authentication-Results: (x) mx.test; none\n\nbody\n"), "mx.test") == "mx.test; none");
    CHECK(arc::recorded_arc("mx.test; dkim=pass; arc=pass (i=1 d=a.test; odd) smtp.remote-ip=192.0.2.1") == "pass");
    CHECK(arc::recorded_arc("mx.test; dkim=pass header.d=arc.test; ARC = Fail") == "fail");
    CHECK(arc::recorded_arc("mx.test; dkim=pass (arc=pass)") == "");
}

TEST_CASE("arc seal: the plan", "[arc_seal]") {
    auto plan = arc::plan_seal(header_of(kReceived + kMessage), "mx.forwarder.test");
    REQUIRE(plan);
    CHECK(plan->instance == 1);
    CHECK(plan->cv == "none");
    CHECK(plan->prior.empty());
    // Mail of our own users carries no results of ours.
    auto own = arc::plan_seal(header_of(kMessage), "mx.forwarder.test");
    REQUIRE_FALSE(own);
    CHECK(own.error().what().find("no Authentication-Results of ours") == 0);
    // ARC sets without a recorded result, or with arc=fail, are not continued.
    auto key = fixed_key();
    std::string once = seal(kReceived + kMessage, key, "mx.forwarder.test");
    std::string unchecked = "Authentication-Results: mx2.test; dkim=none\n" + once;
    CHECK(arc::plan_seal(header_of(unchecked), "mx2.test").error().what() == "ARC sets without a recorded arc= result");
    std::string failed = "Authentication-Results: mx2.test; arc=fail (i=1)\n" + once;
    CHECK(arc::plan_seal(header_of(failed), "mx2.test").error().what() == "the chain came in with arc=fail");
    std::string passed = "Authentication-Results: mx2.test; arc=pass (i=1 d=forwarder.test)\n" + once;
    auto next = arc::plan_seal(header_of(passed), "mx2.test");
    REQUIRE(next);
    CHECK(next->instance == 2);
    CHECK(next->cv == "pass");
    CHECK(next->prior.size() == 3);
    CHECK(next->prior[0].rfind("ARC-Authentication-Results: i=1;", 0) == 0);
    CHECK(next->prior[1].rfind("ARC-Message-Signature: i=1;", 0) == 0);
    CHECK(next->prior[2].rfind("ARC-Seal: i=1;", 0) == 0);
    // An incomplete set.
    std::string broken = "Authentication-Results: mx2.test; arc=pass\n" + replace(once, "ARC-Seal: i=1;", "X-Seal: i=1;");
    CHECK(arc::plan_seal(header_of(broken), "mx2.test").error().what() == "ARC instance 1 is incomplete");
}

TEST_CASE("arc seal: one and two sets sealed here verify, a changed set does not", "[arc_seal]") {
    auto key = fixed_key();
    std::string once = seal(kReceived + kMessage, key, "mx.forwarder.test");
    CHECK(once.rfind("ARC-Seal: i=1; a=rsa-sha256; cv=none; d=forwarder.test; s=arc; t=1700000000;\n\tb=", 0) == 0);
    CHECK(once.find("\nARC-Authentication-Results: i=1; mx.forwarder.test;\n\tspf=pass smtp.mailfrom=ann@origin.test;\n") !=
          std::string::npos);
    for (const auto& line : [&] {
             std::vector<std::string> lines;
             for (size_t at = 0, nl; (nl = once.find('\n', at)) != std::string::npos && nl != at; at = nl + 1)
                 lines.push_back(once.substr(at, nl - at));
             return lines;
         }())
        CHECK(line.size() <= 78);
    auto r = verify(once, key);
    CHECK(r.status == arc::Status::pass);
    CHECK(r.instances == 1);
    CHECK(r.reason == "");
    // The same input and time seal the same way (RSA PKCS#1 v1.5 is deterministic).
    CHECK(seal(kReceived + kMessage, key, "mx.forwarder.test") == once);

    std::string twice = seal("Authentication-Results: mx2.test; arc=pass (i=1 d=forwarder.test)\n" + once, key, "mx2.test",
                             "second.test");
    CHECK(twice.rfind("ARC-Seal: i=2; a=rsa-sha256; cv=pass; d=second.test;", 0) == 0);
    r = verify(twice, key);
    CHECK(r.status == arc::Status::pass);
    CHECK(r.instances == 2);

    auto changed = verify(replace(twice, "spf=pass smtp.mailfrom=ann", "spf=fail smtp.mailfrom=ann"), key);
    CHECK(changed.status == arc::Status::fail);
    CHECK(changed.reason.find("ARC-Seal 2:") == 0);  // the newest seal signs the AAR of instance 1 too
    auto body = verify(replace(twice, "see you at noon.", "see you never."), key);
    CHECK(body.reason == "body hash mismatch");
}

TEST_CASE("arc seal: an all-header message and an Ed25519 key", "[arc_seal]") {
    auto ed = PrivateKey::generate(dkim::Algorithm::ed25519_sha256);
    REQUIRE(ed);
    std::string headonly = "Authentication-Results: mx.test; dkim=none\nFrom: a@b.test\nSubject: x\n";
    auto plan = arc::plan_seal(dkim::split_header(headonly), "mx.test");
    REQUIRE(plan);
    arc::Sealer s(*ed, {"b.test", "arc", {"from"}, 1700000000}, std::move(plan.value()));
    s.feed(headonly);
    auto fields = s.finish();
    REQUIRE(fields);
    CHECK(fields->find("a=ed25519-sha256; cv=none;") != std::string::npos);
    auto p = ed->public_key_base64();
    REQUIRE(p);
    arc::Verifier v(1700000100);
    v.feed(*fields + headonly);
    v.finish();
    for (const auto& name : v.key_names()) v.key_answer(name, {dkim::KeyAnswer::Status::ok, {"v=DKIM1; k=ed25519; p=" + *p}});
    CHECK(v.result().status == arc::Status::pass);
}

TEST_CASE("arc seal: the sealing domain", "[arc_seal]") {
    auto fields = header_of("X-Ferry-Redirected: Alice@Hosted.test\n" + kReceived +
                            "Received: from a by b for <x@other.test>; date\n" + kMessage);
    CHECK(ferry::relay::seal_domains(fields, "") == std::vector<std::string>{"hosted.test", "forwarder.test", "other.test"});
    CHECK(ferry::relay::seal_domains(fields, "Seal.TEST") == std::vector<std::string>{"seal.test"});
    CHECK(ferry::relay::seal_domains(fields, "../etc").empty());
    CHECK(ferry::relay::seal_domains(header_of(kMessage), "").empty());
}

TEST_CASE("arc seal: ferry-relay's writer puts the ARC set above its DKIM signature", "[arc_seal]") {
    ferry::test::TempDir dir;
    std::string keys = dir.path + "/dkim";
    std::filesystem::create_directories(keys + "/forwarder.test");
    ferry::test::write_text(keys + "/forwarder.test/fw1.key", kKeyPem);
    ferry::test::write_text(keys + "/forwarder.test/active", "fw1\n");
    ferry::relay::DkimSettings dkim_settings{true, keys, {"from", "to", "subject"}};
    ferry::relay::ArcSettings arc_settings{true, "", "mx.forwarder.test", keys, {"from", "to", "subject"}};
    // One of our own domain's people writing from outside: signed (From: is ours) and sealed (forwarded).
    std::string message = replace(kReceived + kMessage, "From: Ann <ann@origin.test>", "From: Ann <ann@forwarder.test>");
    ferry::relay::MessageWriter w;
    REQUIRE(w.open(dir.path, &dkim_settings, &arc_settings));
    for (size_t i = 0; i < message.size(); i += 100) REQUIRE(w.append(std::string_view(message).substr(i, 100)));
    ferry::relay::OutboundMessage m;
    m.log_id = "test";
    REQUIRE(w.finish(m));
    std::string sent(m.data.length, '\0');
    for (size_t at = 0; at < sent.size();) {  // the late fields and the data come in separate reads
        auto n = m.data.read(at, sent.data() + at, sent.size() - at);
        REQUIRE(n);
        REQUIRE(*n > 0);
        at += *n;
    }
    CHECK(sent.rfind("ARC-Seal: i=1; a=rsa-sha256; cv=none; d=forwarder.test; s=fw1;", 0) == 0);
    size_t ams = sent.find("\nARC-Message-Signature: i=1;"), aar = sent.find("\nARC-Authentication-Results: i=1;"),
           sig = sent.find("\nDKIM-Signature: v=1;");
    CHECK((ams < aar && aar < sig && sig != std::string::npos));
    CHECK(sent.substr(sent.size() - message.size()) == message);
    CHECK(verify(sent, fixed_key()).status == arc::Status::pass);

    // Mail of our own users (no results of ours on it) is signed, not sealed.
    ferry::relay::MessageWriter own;
    REQUIRE(own.open(dir.path, &dkim_settings, &arc_settings));
    REQUIRE(own.append(replace(kMessage, "ann@origin.test", "ann@forwarder.test")));
    ferry::relay::OutboundMessage m2;
    REQUIRE(own.finish(m2));
    std::string head(m2.data.late, '\0');
    REQUIRE(m2.data.read(0, head.data(), head.size()));
    CHECK(head.rfind("DKIM-Signature: v=1;", 0) == 0);
}

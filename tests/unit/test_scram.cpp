// Unit tests of SCRAM-SHA-256: the RFC 7677 exchange, stored keys, and every refusal of the server side.
#include <catch.hpp>

#include "common/auth/sasl.hpp"
#include "common/auth/scram.hpp"

using namespace ferry;
using namespace ferry::sasl;

namespace {

// RFC 7677 section 3.
constexpr const char* kClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr const char* kServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr const char* kServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr const char* kClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr const char* kServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

ScramKeys vector_keys(const char* password = "pencil") {
    auto salt = base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==");
    REQUIRE(salt);
    auto k = scram_derive(password, *salt, 4096);
    REQUIRE(k);
    return *k;
}

}  // namespace

TEST_CASE("scram: the RFC 7677 test vector, as the server side sees it", "[sasl]") {
    ScramKeys keys = vector_keys();
    ScramServer s(kServerNonce);
    auto user = s.client_first(kClientFirst);
    REQUIRE(user);
    CHECK(*user == "user");
    CHECK(s.server_first(keys) == kServerFirst);
    REQUIRE(s.client_final(kClientFinal));
    CHECK(s.verify(keys));
    CHECK(s.server_final(keys) == kServerFinal);
    // Another password's keys do not match the proof.
    CHECK(!s.verify(vector_keys("pencil2")));
    CHECK(!s.verify(scram_dummy("user")));
}

TEST_CASE("scram: stored keys round-trip through the account field, and bad fields are refused", "[sasl]") {
    ScramKeys keys = vector_keys();
    std::string text = scram_encode(keys);
    CHECK(text.starts_with("SCRAM-SHA-256:4096:W22ZaJ0SNY7soEsUEjb6gQ==:"));
    auto back = scram_decode(text);
    REQUIRE(back);
    CHECK(back->stored_key == keys.stored_key);
    CHECK(back->server_key == keys.server_key);
    for (const char* bad : {"", "SCRAM-SHA-1:4096:AAAA:AAAA:AAAA", "SCRAM-SHA-256:0:W22ZaJ0SNY7soEsUEjb6gQ==:x:y",
                            "SCRAM-SHA-256:4096:W22ZaJ0SNY7soEsUEjb6gQ==:AAAA:AAAA"})
        CHECK(!scram_decode(bad));
    auto fresh = scram_new("pencil");
    REQUIRE(fresh);
    CHECK(fresh->salt.size() == 16);
    CHECK(fresh->salt != scram_new("pencil")->salt);
    CHECK(scram_dummy("nobody").salt == scram_dummy("nobody").salt);  // the same to every try
}

TEST_CASE("scram: what the server refuses in the client's messages", "[sasl]") {
    struct Case {
        const char* first;
        int code;
    };
    for (auto c : {Case{"p=tls-unique,,n=user,r=abc", 535}, Case{"n,a=other,n=user,r=abc", 535},
                   Case{"n,,m=ext,n=user,r=abc", 535}, Case{"x,,n=user,r=abc", 501}, Case{"n,,n=user", 501},
                   Case{"n,,r=abc,n=user", 501}, Case{"n,,n=us=3Cer,r=abc", 501}, Case{"n,,n=,r=abc", 501},
                   Case{"n,,n=user,r=", 501}, Case{"nonsense", 501}}) {
        ScramServer s("srv");
        auto r = s.client_first(c.first);
        INFO(c.first);
        REQUIRE(!r);
        CHECK(r.error().code == c.code);
    }
    ScramServer big("srv");
    CHECK(!big.client_first("n,,n=user,r=" + std::string(kScramMaxMessage, 'a')));
    // The same user with a matching authzid and an escaped name are fine.
    ScramServer ok("srv");
    auto u = ok.client_first("y,a=us=2Cer,n=us=2Cer,r=abc");
    REQUIRE(u);
    CHECK(*u == "us,er");

    ScramKeys keys = vector_keys();
    auto final_for = [&](const std::string& msg) {
        ScramServer s(kServerNonce);
        REQUIRE(s.client_first(kClientFirst));
        s.server_first(keys);
        return s.client_final(msg);
    };
    std::string proof = ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    CHECK(final_for("c=biws,r=rOprNGfwEbeRWgbNEkqOwrongnonce" + proof).error().code == 535);
    CHECK(final_for("c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" + proof).error().code == 535);
    CHECK(final_for("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0").error().code == 501);
    CHECK(final_for("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA").error().code == 501);
    CHECK(final_for("r=x" + proof).error().code == 501);
    CHECK(!final_for(std::string(kScramMaxMessage + 1, 'c')));
}

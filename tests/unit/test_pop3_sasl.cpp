// Unit tests of SASL as ferry-popd uses it (RFC 5034): PLAIN and LOGIN, with and without initial response.
#include <catch.hpp>

#include <string>

#include "common/auth/sasl.hpp"
#include "popd/command.hpp"

using namespace ferry;

namespace {

// What the session does with "AUTH <mech> [ir]": parse the command, start the exchange.
sasl::Step start(const std::string& line, std::unique_ptr<sasl::Exchange>& ex) {
    auto cmd = pop3::parse_command(line, pop3::Limits{});
    REQUIRE(cmd.ok());
    REQUIRE(cmd->verb == pop3::Verb::auth);
    auto mech = sasl::parse_mechanism(cmd->args.at(0));
    REQUIRE(mech);
    ex = std::make_unique<sasl::Exchange>(*mech);
    std::optional<std::string_view> ir;
    if (cmd->args.size() > 1) ir = cmd->args[1];
    return ex->start(ir);
}

}  // namespace

TEST_CASE("pop3 sasl: AUTH PLAIN with initial response", "[pop3]") {
    std::unique_ptr<sasl::Exchange> ex;
    auto ir = sasl::base64_encode(std::string("\0demo@example.test\0secret pw", 28));
    auto s = start("AUTH PLAIN " + ir, ex);
    REQUIRE(s.kind == sasl::Step::Kind::done);
    CHECK(s.creds.authcid == "demo@example.test");
    CHECK(s.creds.password == "secret pw");
}

TEST_CASE("pop3 sasl: AUTH PLAIN without initial response gets an empty challenge", "[pop3]") {
    std::unique_ptr<sasl::Exchange> ex;
    auto s = start("AUTH plain", ex);
    REQUIRE(s.kind == sasl::Step::Kind::challenge);
    CHECK(s.challenge.empty());  // the session sends "+ " (RFC 5034 section 4)
    s = ex->next(sasl::base64_encode(std::string("\0u@d\0p", 6)));
    REQUIRE(s.kind == sasl::Step::Kind::done);
    CHECK(s.creds.authcid == "u@d");
    CHECK(s.creds.password == "p");
}

TEST_CASE("pop3 sasl: AUTH LOGIN asks for user and password", "[pop3]") {
    std::unique_ptr<sasl::Exchange> ex;
    auto s = start("AUTH LOGIN", ex);
    REQUIRE(s.kind == sasl::Step::Kind::challenge);
    CHECK(s.challenge == sasl::base64_encode("Username:"));
    s = ex->next(sasl::base64_encode("demo@example.test"));
    REQUIRE(s.kind == sasl::Step::Kind::challenge);
    CHECK(s.challenge == sasl::base64_encode("Password:"));
    s = ex->next(sasl::base64_encode("pw"));
    REQUIRE(s.kind == sasl::Step::Kind::done);
    CHECK(s.creds.authcid == "demo@example.test");
    CHECK(s.creds.password == "pw");
}

TEST_CASE("pop3 sasl: AUTH LOGIN with the user name as initial response", "[pop3]") {
    std::unique_ptr<sasl::Exchange> ex;
    auto s = start("AUTH LOGIN " + sasl::base64_encode("demo@example.test"), ex);
    REQUIRE(s.kind == sasl::Step::Kind::challenge);
    CHECK(s.challenge == sasl::base64_encode("Password:"));
    s = ex->next(sasl::base64_encode("pw"));
    REQUIRE(s.kind == sasl::Step::Kind::done);
}

TEST_CASE("pop3 sasl: cancel and garbage end the exchange with an error", "[pop3]") {
    std::unique_ptr<sasl::Exchange> ex;
    auto s = start("AUTH LOGIN", ex);
    s = ex->next("*");
    CHECK(s.kind == sasl::Step::Kind::cancelled);
    CHECK_FALSE(s.error.text.empty());
    s = start("AUTH PLAIN", ex);
    s = ex->next("!!!not base64");
    CHECK(s.kind == sasl::Step::Kind::error);
    CHECK_FALSE(sasl::parse_mechanism("CRAM-MD5"));
}

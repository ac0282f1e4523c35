// Unit tests of alias expansion: a table of aliases, accounts and catch-alls against expected recipients.
#include <catch.hpp>

#include <map>
#include <set>
#include <unistd.h>

#include "common/auth/accounts_db.hpp"
#include "common/auth/aliases.hpp"

using namespace ferry;
using aliases::AddressInfo;

namespace {

// An in-memory directory: hosted domains, accounts, and alias entries ("@domain" = catch-all).
struct Directory {
    std::set<std::string> domains{"example.test", "lists.test"};
    std::set<std::string> accounts{"alice@example.test", "bob@example.test", "carol@lists.test"};
    std::map<std::string, std::vector<std::string>> entries;
    int lookups = 0;

    aliases::Lookup lookup() {
        return [this](const std::string& a) -> Result<AddressInfo> {
            ++lookups;
            AddressInfo info;
            info.hosted = domains.count(domain_of(a)) > 0;
            info.account = accounts.count(a) > 0;
            if (auto it = entries.find(a); it != entries.end()) info.exact = it->second;
            if (auto it = entries.find("@" + domain_of(a)); it != entries.end()) info.catch_all = it->second;
            return info;
        };
    }
    Result<std::vector<std::string>> expand(const std::string& a, int depth = 10, size_t targets = 1000) {
        return aliases::expand(a, lookup(), aliases::Limits{depth, targets});
    }
};

using V = std::vector<std::string>;

}  // namespace

TEST_CASE("aliases: expansion table", "[aliases]") {
    Directory d;
    d.entries = {
        {"team@example.test", {"alice@example.test", "bob@example.test"}},
        {"ext@example.test", {"someone@remote.test", "Alice@Example.TEST"}},
        {"all@lists.test", {"team@example.test", "carol@lists.test", "ext@example.test"}},
        {"fwd-alice@example.test", {"alice@example.test"}},
        {"bob@example.test", {"bob@example.test", "bob@home.test"}},  // an account keeping a copy
        {"@lists.test", {"carol@lists.test"}},
        {"ping@example.test", {"pong@example.test"}},
        {"pong@example.test", {"ping@example.test"}},
        {"half@example.test", {"ping@example.test", "alice@example.test"}},
        {"stale@example.test", {"gone@example.test", "alice@example.test"}},
    };
    struct Row { const char* in; V out; };
    const Row rows[] = {
        {"alice@example.test", {"alice@example.test"}},                                   // account: final
        {"ALICE@example.test", {"alice@example.test"}},                                   // normalized
        {"someone@remote.test", {"someone@remote.test"}},                                 // external: final
        {"team@example.test", {"alice@example.test", "bob@example.test", "bob@home.test"}},  // two targets, bob forwards
        {"ext@example.test", {"someone@remote.test", "alice@example.test"}},              // external target
        {"all@lists.test", {"alice@example.test", "bob@example.test", "bob@home.test", "carol@lists.test",
                            "someone@remote.test"}},                                      // recursion, duplicates once
        {"fwd-alice@example.test", {"alice@example.test"}},
        {"bob@example.test", {"bob@example.test", "bob@home.test"}},                      // loop back to an account stops
        {"anyone@lists.test", {"carol@lists.test"}},                                      // catch-all
        {"carol@lists.test", {"carol@lists.test"}},                                       // account beats catch-all
        {"half@example.test", {"alice@example.test"}},                                    // the looping branch gives nothing
        {"stale@example.test", {"gone@example.test", "alice@example.test"}},              // deep unknown stays, bounces alone
    };
    for (const auto& r : rows) {
        INFO(r.in);
        auto got = d.expand(r.in);
        REQUIRE(got.ok());
        CHECK(*got == r.out);
    }
}

TEST_CASE("aliases: errors", "[aliases]") {
    Directory d;
    d.entries = {{"ping@example.test", {"pong@example.test"}}, {"pong@example.test", {"ping@example.test"}}};

    auto loop = d.expand("ping@example.test");
    REQUIRE_FALSE(loop.ok());
    CHECK(loop.error().code == 554);
    CHECK(loop.error().enhanced == "5.4.6");

    auto unknown = d.expand("nobody@example.test");
    REQUIRE_FALSE(unknown.ok());
    CHECK(unknown.error().code == 550);
    CHECK(unknown.error().enhanced == "5.1.1");

    auto bad = d.expand("not an address");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().enhanced == "5.1.3");

    // An address literal is no mailbox of ours but a valid recipient: it passes through to the relay.
    auto literal = d.expand("Bob@[127.0.0.5]");
    REQUIRE(literal.ok());
    CHECK(*literal == V{"bob@[127.0.0.5]"});
    CHECK_FALSE(d.expand("bob@[127.0.0.5").ok());

    auto failing = [](const std::string&) -> Result<AddressInfo> { return make_error(451, "4.3.0", "db down"); };
    auto down = aliases::expand("alice@example.test", failing, {});
    REQUIRE_FALSE(down.ok());
    CHECK(down.error().code == 451);
}

TEST_CASE("aliases: depth limit, exactly at and one past", "[aliases][limits]") {
    Directory d;
    // l0 -> l1 -> l2 -> l3 -> alice: four levels of aliases below l0's own address
    for (int i = 0; i < 3; ++i)
        d.entries["l" + std::to_string(i) + "@example.test"] = {"l" + std::to_string(i + 1) + "@example.test"};
    d.entries["l3@example.test"] = {"alice@example.test"};
    auto ok = d.expand("l0@example.test", 4);
    REQUIRE(ok.ok());
    CHECK(*ok == V{"alice@example.test"});
    auto deep = d.expand("l0@example.test", 3);
    REQUIRE_FALSE(deep.ok());
    CHECK(deep.error().code == 554);
    CHECK(deep.error().enhanced == "5.4.6");
    CHECK(d.expand("alice@example.test", 0).ok());  // no alias at all needs no depth
}

TEST_CASE("aliases: target limit, exactly at and one past", "[aliases][limits]") {
    Directory d;
    V many;
    for (int i = 0; i < 50; ++i) many.push_back("u" + std::to_string(i) + "@remote.test");
    d.entries["list@example.test"] = many;
    auto at = d.expand("list@example.test", 10, 50);
    REQUIRE(at.ok());
    CHECK(at->size() == 50);
    auto past = d.expand("list@example.test", 10, 49);
    REQUIRE_FALSE(past.ok());
    CHECK(past.error().code == 552);
    CHECK(past.error().enhanced == "5.5.3");
}

TEST_CASE("aliases: a wide diamond is looked up once per address", "[aliases][limits]") {
    Directory d;
    // each level lists the next level twice: without deduplication this is 2^20 lookups
    for (int i = 0; i < 20; ++i) {
        std::string next = "n" + std::to_string(i + 1) + "@example.test";
        d.entries["n" + std::to_string(i) + "@example.test"] = {next, next};
    }
    d.entries["n20@example.test"] = {"alice@example.test"};
    auto r = d.expand("n0@example.test", 30);
    REQUIRE(r.ok());
    CHECK(*r == V{"alice@example.test"});
    CHECK(d.lookups < 100);
}

TEST_CASE("aliases: expansion over the Berkeley DB store", "[aliases][db]") {
    char tmpl[] = "/tmp/ferry-alias-XXXXXX";
    std::string dir = mkdtemp(tmpl);
    std::string path = dir + "/accounts.db";
    accountdb::Records r;
    r[accountdb::domain_key("example.test")] = "1";
    Account a;
    a.address = "alice@example.test";
    a.password_hash = "x";
    r[accountdb::account_key(a.address)] = accountdb::encode_account(a);
    a.address = "bob@example.test";
    r[accountdb::account_key(a.address)] = accountdb::encode_account(a);
    r[accountdb::alias_key("team@example.test")] = accountdb::encode_targets({"alice@example.test", "far@remote.test"});
    r[accountdb::alias_key("alice@example.test")] = accountdb::encode_targets({"alice@example.test", "bob@example.test"});
    r[accountdb::alias_key("@example.test")] = accountdb::encode_targets({"bob@example.test"});
    REQUIRE(accountdb::rebuild(path, r).ok());
    auto store = open_account_db(path);
    aliases::Limits limits;
    CHECK(*aliases::expand("team@example.test", *store, limits) ==
          V{"alice@example.test", "bob@example.test", "far@remote.test"});
    CHECK(*aliases::expand("bob@example.test", *store, limits) == V{"bob@example.test"});
    CHECK(*aliases::expand("whoever@example.test", *store, limits) == V{"bob@example.test"});
    CHECK(*aliases::expand("x@remote.test", *store, limits) == V{"x@remote.test"});
    unlink(path.c_str());
    rmdir(dir.c_str());
}

TEST_CASE("aliases: subaddresses over the Berkeley DB store (recipient_delimiter)", "[aliases][db]") {
    char tmpl[] = "/tmp/ferry-alias-XXXXXX";
    std::string dir = mkdtemp(tmpl);
    std::string path = dir + "/accounts.db";
    accountdb::Records r;
    r[accountdb::domain_key("example.test")] = "1";
    for (const char* address : {"alice@example.test", "a@example.test", "a+b@example.test"}) {
        Account a;
        a.address = address;
        a.password_hash = "x";
        r[accountdb::account_key(a.address)] = accountdb::encode_account(a);
    }
    r[accountdb::alias_key("team@example.test")] = accountdb::encode_targets({"alice@example.test", "a@example.test"});
    r[accountdb::alias_key("alice+fwd@example.test")] = accountdb::encode_targets({"far@remote.test"});
    REQUIRE(accountdb::rebuild(path, r).ok());
    auto store = open_account_db(path);
    store->set_recipient_delimiter("+");
    aliases::Limits limits;
    auto expand = [&](const char* a) { return aliases::expand(a, *store, limits); };
    auto account_of = [&](const char* a) {
        auto acc = recipient_account(*store, a);
        REQUIRE(acc.ok());
        return acc->has_value() ? (*acc)->address : std::string("none");
    };

    // The subaddress stays the final recipient as written; its mailbox is the base account's.
    CHECK(*expand("alice+lists@example.test") == V{"alice+lists@example.test"});
    CHECK(account_of("alice+lists@example.test") == "alice@example.test");
    // An exact account wins over its base; an exact alias over the base's account.
    CHECK(*expand("a+b@example.test") == V{"a+b@example.test"});
    CHECK(account_of("a+b@example.test") == "a+b@example.test");
    CHECK(account_of("a+c@example.test") == "a@example.test");
    CHECK(*expand("alice+fwd@example.test") == V{"far@remote.test"});
    // An alias's subaddress expands as the alias.
    CHECK(*expand("team+x@example.test") == V{"alice@example.test", "a@example.test"});
    // An unknown base stays unknown.
    auto unknown = expand("nobody+x@example.test");
    REQUIRE_FALSE(unknown.ok());
    CHECK(unknown.error().code == 550);
    CHECK(account_of("nobody+x@example.test") == "none");

    // Off: only exact addresses.
    store->set_recipient_delimiter("");
    CHECK_FALSE(expand("alice+lists@example.test").ok());
    CHECK(account_of("alice+lists@example.test") == "none");
    CHECK(account_of("a+b@example.test") == "a+b@example.test");
    unlink(path.c_str());
    rmdir(dir.c_str());
}

// Unit tests of ferry-smtpd's sender ownership rule: which MAIL FROM an authenticated account may use.
#include <catch.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "mta/smtpd/policy.hpp"

using namespace ferry;
using aliases::AddressInfo;

namespace {

// Hosted domains, accounts and alias entries ("@domain" = catch-all), as the account database holds them.
struct Directory {
    std::set<std::string> domains{"example.test"};
    std::set<std::string> accounts{"alice@example.test", "bob@example.test"};
    std::map<std::string, std::vector<std::string>> entries{
        {"info@example.test", {"alice@example.test"}},
        {"team@example.test", {"info@example.test", "bob@example.test"}},  // nested: reaches alice
        {"sales@example.test", {"bob@example.test"}},
        {"fwd@example.test", {"alice@remote.test"}},                       // alice elsewhere: not alice
        {"ping@example.test", {"pong@example.test"}},
        {"pong@example.test", {"ping@example.test"}},                      // a loop
        {"deep1@example.test", {"deep2@example.test"}},
        {"deep2@example.test", {"deep3@example.test"}},
        {"deep3@example.test", {"alice@example.test"}},
        {"@example.test", {"alice@example.test"}},                         // the catch-all
    };
    bool broken = false;

    aliases::Lookup lookup() {
        return [this](const std::string& a) -> Result<AddressInfo> {
            if (broken) return make_error(451, "4.3.0", "account database unreadable");
            AddressInfo info;
            info.hosted = domains.count(domain_of(a)) > 0;
            info.account = accounts.count(a) > 0;
            if (auto it = entries.find(a); it != entries.end()) info.exact = it->second;
            if (auto it = entries.find("@" + domain_of(a)); it != entries.end()) info.catch_all = it->second;
            return info;
        };
    }
};

}  // namespace

TEST_CASE("smtp sender: own address, own aliases, nothing else", "[smtp][smtp_sender]") {
    Directory d;
    struct Row {
        const char* sender;
        bool owned;
    };
    const Row rows[] = {
        {"alice@example.test", true},
        {"Alice@EXAMPLE.test", true},       // addresses compare normalized
        {"", true},                         // the null sender
        {"info@example.test", true},        // an alias of alice
        {"team@example.test", true},        // an alias whose expansion reaches alice through another
        {"deep1@example.test", true},       // three levels down, within the depth limit
        {"bob@example.test", false},        // another account
        {"sales@example.test", false},      // someone else's alias
        {"fwd@example.test", false},        // forwards to an outside address, not to the account
        {"nobody@example.test", false},     // only the catch-all: gives no one every address
        {"ping@example.test", false},       // a loop
        {"alice@remote.test", false},       // another domain
        {"Postmaster", false},              // RFC 5321's domain-less special case
        {"not an address", false},
    };
    for (const auto& r : rows) {
        INFO(r.sender);
        auto owned = smtpd::sender_owned(r.sender, "alice@example.test", d.lookup(), aliases::Limits{});
        REQUIRE(owned);
        CHECK(owned.value() == r.owned);
    }
}

TEST_CASE("smtp sender: the alias limits apply", "[smtp][smtp_sender]") {
    Directory d;
    auto owned = smtpd::sender_owned("deep1@example.test", "alice@example.test", d.lookup(), aliases::Limits{2, 1000});
    REQUIRE(owned);
    CHECK_FALSE(owned.value());  // nested too deeply: an error of the address, not of the database
}

TEST_CASE("smtp sender: a lookup failure is an error, not a verdict", "[smtp][smtp_sender]") {
    Directory d;
    d.broken = true;
    auto owned = smtpd::sender_owned("info@example.test", "alice@example.test", d.lookup(), aliases::Limits{});
    REQUIRE_FALSE(owned);
    CHECK(owned.error().code == 451);
    // The own address needs no lookup at all.
    CHECK(smtpd::sender_owned("alice@example.test", "alice@example.test", d.lookup(), aliases::Limits{}).value());
}

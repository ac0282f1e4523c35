// An account's Sieve scripts: names, put/get/list, the active symlink, rename and remove rules.
#include <catch.hpp>

#include <unistd.h>

#include "common/store/sieve_scripts.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;
using store::SieveScripts;

TEST_CASE("sieve scripts: valid names as RFC 5804 allows them", "[store][sieve]") {
    CHECK(SieveScripts::valid_name("main"));
    CHECK(SieveScripts::valid_name("räume auf"));
    CHECK(SieveScripts::valid_name(std::string(128, 'a')));
    CHECK_FALSE(SieveScripts::valid_name(std::string(129, 'a')));
    CHECK_FALSE(SieveScripts::valid_name(""));
    CHECK_FALSE(SieveScripts::valid_name(".hidden"));
    CHECK_FALSE(SieveScripts::valid_name("a/b"));
    CHECK_FALSE(SieveScripts::valid_name("tab\there"));
    CHECK_FALSE(SieveScripts::valid_name("\xc0\xaf"));   // overlong
    CHECK_FALSE(SieveScripts::valid_name("\xed\xa0\x80"));  // surrogate
    CHECK_FALSE(SieveScripts::valid_name("\xe2\x82"));   // truncated
}

TEST_CASE("sieve scripts: put, list, activate, rename, remove", "[store][sieve]") {
    test::TempDir dir;
    SieveScripts s(dir.path);
    REQUIRE(s.list()->empty());
    REQUIRE(!s.active().value());
    REQUIRE(s.put("b", "keep;\r\n"));
    REQUIRE(s.put("a", "discard;\r\n"));
    auto all = s.list();
    REQUIRE(all->size() == 2);
    CHECK((*all)[0].name == "a");
    CHECK_FALSE((*all)[0].active);
    CHECK(s.get("a").value() == std::optional<std::string>("discard;\r\n"));
    CHECK(!s.get("zzz").value());

    CHECK(s.set_active("missing").error().enhanced == "NONEXISTENT");
    REQUIRE(s.set_active("b"));
    auto act = s.active();
    REQUIRE(act.value());
    CHECK((*act)->name == "b");
    CHECK((*act)->text == "keep;\r\n");
    CHECK(s.remove("b").error().enhanced == "ACTIVE");

    CHECK(s.rename("a", "b").error().enhanced == "ALREADYEXISTS");
    REQUIRE(s.rename("b", "c"));  // the active script keeps being active under its new name
    CHECK(s.active().value()->name == "c");
    CHECK(!s.get("b").value());

    REQUIRE(s.put("c", "stop;\r\n"));  // replacing the active script's text
    CHECK(s.active().value()->text == "stop;\r\n");
    REQUIRE(s.set_active(""));
    CHECK(!s.active().value());
    REQUIRE(s.remove("c"));
    CHECK(s.remove("c").error().enhanced == "NONEXISTENT");
    CHECK(s.list()->size() == 1);
    CHECK(s.total_size().value() == std::string("discard;\r\n").size());
}

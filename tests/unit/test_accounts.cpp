// Unit tests of the account database: addresses, record format, password hashes, reader and writer.
#include <catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "common/auth/accounts.hpp"
#include "common/auth/accounts_db.hpp"
#include "common/auth/scram.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;

namespace {

// A private directory under /tmp, removed at the end of the test.
using test::TempDir;

accountdb::Records sample_table() {
    accountdb::Records r;
    r[accountdb::domain_key("example.test")] = "1";
    Account a;
    a.address = "demo@example.test";
    a.password_hash = "$6$saltsalt$x";
    a.quota_bytes = 1024;
    a.quota_messages = 7;
    r[accountdb::account_key(a.address)] = accountdb::encode_account(a);
    r[accountdb::alias_key("info@example.test")] = accountdb::encode_targets({"demo@example.test", "x@other.test"});
    r[accountdb::alias_key("@example.test")] = accountdb::encode_targets({"demo@example.test"});
    return r;
}

}  // namespace

TEST_CASE("accounts: address normalization", "[accounts]") {
    struct Row { const char* in; const char* norm; const char* local; const char* domain; };
    const Row rows[] = {
        {"Local@Example.TEST", "local@example.test", "local", "example.test"},
        {" <Demo@Example.Test> ", "demo@example.test", "demo", "example.test"},
        {"a@b@c.test", "a@b@c.test", "a@b", "c.test"},
        {"Plain@Example.Test", "plain@example.test", "plain", "example.test"},
        {"@example.test", "@example.test", "", "example.test"},
        {"nodomain", "nodomain", "nodomain", ""},
    };
    for (const auto& r : rows) {
        INFO(r.in);
        CHECK(normalize_address(r.in) == r.norm);
        CHECK(local_part_of(normalize_address(r.in)) == r.local);
        CHECK(domain_of(normalize_address(r.in)) == r.domain);
    }
}

TEST_CASE("accounts: address and domain syntax, at the limits", "[accounts]") {
    CHECK(valid_address("demo@example.test"));
    CHECK(valid_address("first.last+tag@sub.example.test"));
    CHECK(valid_address("o'brien@localhost"));
    CHECK_FALSE(valid_address("demo"));
    CHECK_FALSE(valid_address("@example.test"));
    CHECK_FALSE(valid_address("demo@"));
    CHECK_FALSE(valid_address(".demo@example.test"));
    CHECK_FALSE(valid_address("de..mo@example.test"));
    CHECK_FALSE(valid_address("de mo@example.test"));
    CHECK_FALSE(valid_address("de\tmo@example.test"));
    CHECK_FALSE(valid_address("\"quoted\"@example.test"));
    CHECK_FALSE(valid_address("demo@-bad.test"));
    CHECK_FALSE(valid_address("demo@bad..test"));
    CHECK_FALSE(valid_address("demo@under_score.test"));
    // local part: 64 octets allowed, 65 not
    CHECK(valid_address(std::string(64, 'a') + "@example.test"));
    CHECK_FALSE(valid_address(std::string(65, 'a') + "@example.test"));
    // labels: 63 allowed, 64 not
    CHECK(valid_domain(std::string(63, 'b') + ".test"));
    CHECK_FALSE(valid_domain(std::string(64, 'b') + ".test"));
    // whole address: 254 octets allowed, 255 not
    std::string domain = std::string(63, 'c') + "." + std::string(63, 'c') + "." + std::string(57, 'c');  // 185
    CHECK(valid_domain(domain));
    CHECK(valid_address(std::string(64, 'a') + "@" + domain + "zzzz"));  // 64 + 1 + 189 = 254
    CHECK_FALSE(valid_address(std::string(64, 'a') + "@" + domain + "zzzzz"));
    CHECK_FALSE(valid_domain(""));
    CHECK_FALSE(valid_domain(std::string(254, 'a')));
}

TEST_CASE("accounts: record encoding round trip and refusals", "[accounts]") {
    Account a;
    a.address = "demo@example.test";
    a.password_hash = "$y$j9T$abc$def";
    a.quota_bytes = 10485760;
    a.quota_messages = 500;
    auto back = accountdb::decode_account("Demo@Example.test", accountdb::encode_account(a));
    REQUIRE(back.ok());
    CHECK(back->address == "demo@example.test");
    CHECK(back->password_hash == a.password_hash);
    CHECK(back->quota_bytes == 10485760);
    CHECK(back->quota_messages == 500);

    CHECK_FALSE(accountdb::decode_account("a@b.test", "2\th\t0\t0").ok());   // unknown version
    CHECK_FALSE(accountdb::decode_account("a@b.test", "1\th\t0").ok());      // missing field
    CHECK_FALSE(accountdb::decode_account("a@b.test", "1\th\t0\t0\tx").ok()); // a fifth field that is no SCRAM keys
    CHECK_FALSE(accountdb::decode_account("a@b.test", "1\th\t0\t0\t\t").ok());
    // The optional fifth field: SCRAM-SHA-256 keys, kept as written.
    a.scram = sasl::scram_encode(*sasl::scram_new("pencil"));
    auto with_scram = accountdb::decode_account("demo@example.test", accountdb::encode_account(a));
    REQUIRE(with_scram.ok());
    CHECK(with_scram->scram == a.scram);
    CHECK(with_scram->password_hash == a.password_hash);
    CHECK_FALSE(accountdb::decode_account("a@b.test", "1\th\t-1\t0").ok());
    CHECK_FALSE(accountdb::decode_account("a@b.test", "").ok());
    CHECK(accountdb::decode_account("a@b.test", "3").error().code == 451);  // a reader answers "try later"

    auto t = accountdb::decode_targets(accountdb::encode_targets({"a@b.test", "c@d.test"}));
    REQUIRE(t.ok());
    CHECK(*t == std::vector<std::string>{"a@b.test", "c@d.test"});
    CHECK_FALSE(accountdb::decode_targets("9\ta@b.test").ok());
}

TEST_CASE("accounts: yescrypt hash and verify", "[accounts][password]") {
    auto h = hash_password("correct horse");
    REQUIRE(h.ok());
    CHECK(h->rfind("$y$", 0) == 0);
    CHECK(verify_password("correct horse", *h));
    CHECK_FALSE(verify_password("correct horsE", *h));
    CHECK_FALSE(verify_password("", *h));
    CHECK_FALSE(verify_password(std::string("correct horse\0x", 15), *h));
    auto h2 = hash_password("correct horse");
    REQUIRE(h2.ok());
    CHECK(*h2 != *h);  // fresh salt every time
    CHECK_FALSE(hash_password("").ok());
    CHECK_FALSE(hash_password(std::string("a\0b", 3)).ok());
    CHECK(valid_password_hash(*h));
}

TEST_CASE("accounts: known crypt(3) vectors from other tools", "[accounts][password]") {
    // openssl passwd -6 -salt saltsalt secret
    const std::string sha512 = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
    // openssl passwd -5 -salt saltsalt secret
    const std::string sha256 = "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA";
    // Openwall crypt_blowfish test vector ("U*U"), with the $2b$ prefix of current bcrypt
    const std::string bcrypt = "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
    CHECK(verify_password("secret", sha512));
    CHECK_FALSE(verify_password("Secret", sha512));
    CHECK(verify_password("secret", sha256));
    CHECK_FALSE(verify_password("secret ", sha256));
    CHECK(verify_password("U*U", bcrypt));
    CHECK_FALSE(verify_password("U*V", bcrypt));
    for (const auto& h : {sha512, sha256, bcrypt}) CHECK(valid_password_hash(h));
    // locked, empty, malformed and truncated hashes never match
    CHECK_FALSE(verify_password("secret", "!" + sha512));
    CHECK_FALSE(verify_password("secret", "*"));
    CHECK_FALSE(verify_password("secret", ""));
    CHECK_FALSE(verify_password("secret", sha512.substr(0, sha512.size() - 1)));
    CHECK_FALSE(valid_password_hash(""));
    CHECK_FALSE(valid_password_hash("plain text"));
    CHECK_FALSE(valid_password_hash("demo:$6$x$y"));
}

TEST_CASE("accounts: reader over a rebuilt Berkeley DB file", "[accounts][db]") {
    TempDir dir;
    std::string path = dir.path + "/accounts.db";
    auto store = open_account_db(path);

    SECTION("a missing file hosts nothing") {
        auto d = store->has_domain("example.test");
        REQUIRE(d.ok());
        CHECK_FALSE(*d);
        auto a = store->account("demo@example.test");
        REQUIRE(a.ok());
        CHECK_FALSE(a->has_value());
    }

    REQUIRE(accountdb::rebuild(path, sample_table()).ok());
    CHECK(*store->has_domain("Example.TEST"));
    CHECK_FALSE(*store->has_domain("other.test"));
    auto a = store->account("DEMO@example.test");
    REQUIRE(a.ok());
    REQUIRE(a->has_value());
    CHECK((*a)->password_hash == "$6$saltsalt$x");
    CHECK((*a)->quota_bytes == 1024);
    CHECK((*a)->quota_messages == 7);
    CHECK(*store->alias("info@example.test") == std::vector<std::string>{"demo@example.test", "x@other.test"});
    CHECK(*store->alias("nobody@example.test") == std::vector<std::string>{"demo@example.test"});  // catch-all
    CHECK(store->exact_alias("nobody@example.test")->empty());
    CHECK(*store->exact_alias("@example.test") == std::vector<std::string>{"demo@example.test"});
    CHECK(store->alias("x@other.test")->empty());

    SECTION("a rebuild is seen by an open reader") {
        auto t = sample_table();
        t.erase(accountdb::account_key("demo@example.test"));
        t[accountdb::domain_key("other.test")] = "1";
        REQUIRE(accountdb::rebuild(path, t).ok());
        CHECK(*store->has_domain("other.test"));
        CHECK_FALSE(store->account("demo@example.test")->has_value());
    }
    SECTION("the check interval delays the reopen") {
        auto slow = open_account_db(path, std::chrono::hours(1));
        CHECK(*slow->has_domain("example.test"));
        auto t = sample_table();
        t[accountdb::domain_key("other.test")] = "1";
        REQUIRE(accountdb::rebuild(path, t).ok());
        CHECK_FALSE(*slow->has_domain("other.test"));  // still the old file, consistent
        CHECK(*open_account_db(path)->has_domain("other.test"));
    }
    SECTION("a removed file reads as no domains, and a new one is picked up") {
        REQUIRE(unlink(path.c_str()) == 0);
        CHECK_FALSE(*store->has_domain("example.test"));
        REQUIRE(accountdb::rebuild(path, sample_table()).ok());
        CHECK(*store->has_domain("example.test"));
    }
    SECTION("a file that is not a database is a temporary error, not a crash") {
        { std::ofstream(path + ".junk") << "not a btree"; }
        REQUIRE(rename((path + ".junk").c_str(), path.c_str()) == 0);
        auto d = store->has_domain("example.test");
        REQUIRE_FALSE(d.ok());
        CHECK(d.error().code == 451);
        CHECK(d.error().enhanced == "4.3.0");
    }
}

TEST_CASE("accounts: writer lock, stale temp files, full read back", "[accounts][db]") {
    TempDir dir;
    std::string path = dir.path + "/accounts.db";
    auto t = sample_table();
    int calls = 0;
    REQUIRE(accountdb::rebuild(path, t, [&]() { ++calls; }).ok());
    CHECK(calls == 1);
    auto back = accountdb::read_records(path);
    REQUIRE(back.ok());
    t[accountdb::kFormatKey] = accountdb::kFormatValue;
    CHECK(*back == t);
    CHECK(accountdb::read_records(dir.path + "/none.db")->empty());

    struct stat st;
    REQUIRE(stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0640);  // it holds password hashes
    CHECK(access((path + ".tmp." + std::to_string(getpid())).c_str(), F_OK) != 0);

    auto lock = accountdb::WriterLock::acquire(path, std::chrono::milliseconds(0));
    REQUIRE(lock.ok());
    auto second = accountdb::WriterLock::acquire(path, std::chrono::milliseconds(50));
    CHECK_FALSE(second.ok());

    { std::ofstream(path + ".tmp.99999") << "half"; }
    { std::ofstream(dir.path + "/unrelated.tmp.1") << "keep"; }
    REQUIRE(accountdb::remove_stale_temp_files(path).ok());
    CHECK(access((path + ".tmp.99999").c_str(), F_OK) != 0);
    CHECK(access((dir.path + "/unrelated.tmp.1").c_str(), F_OK) == 0);
}

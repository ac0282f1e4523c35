// Unit tests of ferry-mda's quota rule and Maildir usage count.
#include <catch.hpp>

#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "common/store/maildir.hpp"
#include "mda/delivery.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;
using mda::Deliverer;

namespace {

using test::TempDir;

Account with_quota(uint64_t bytes, uint64_t messages) {
    Account a;
    a.address = "demo@example.test";
    a.quota_bytes = bytes;
    a.quota_messages = messages;
    return a;
}

}  // namespace

TEST_CASE("mda quota: the rule at its limits", "[mda]") {
    struct Row {
        uint64_t quota_bytes, quota_messages, used_bytes, used_messages, size;
        int code;  // 0 = fits
    };
    const Row rows[] = {
        {0, 0, 1u << 30, 100000, 1u << 20, 0},       // unlimited
        {1000, 0, 600, 3, 400, 0},                   // exactly full fits
        {1000, 0, 600, 3, 401, 552},                 // one byte over
        {1000, 0, 0, 0, 1001, 552},                  // the message alone is over
        {1000, 0, 1200, 3, 1, 552},                  // already over (quota lowered)
        {0, 3, 0, 2, 10, 0},                         // the third message fits
        {0, 3, 0, 3, 10, 552},                       // the fourth does not
        {UINT64_MAX, 0, UINT64_MAX - 5, 1, 10, 552}, // no overflow in the sum
        {1000, 5, 100, 5, 10, 552},                  // bytes fit, count does not
    };
    for (const auto& row : rows) {
        INFO(row.quota_bytes << " " << row.quota_messages << " " << row.used_bytes << " " << row.used_messages << " "
                             << row.size);
        Deliverer::Usage used{row.used_bytes, row.used_messages};
        auto refusal = Deliverer::over_quota(with_quota(row.quota_bytes, row.quota_messages), used, row.size, false);
        if (row.code == 0) {
            CHECK_FALSE(refusal.has_value());
        } else {
            REQUIRE(refusal.has_value());
            CHECK(refusal->reply() == "552 5.2.2 Mailbox full");
            CHECK(refusal->detail.find("demo@example.test: ") == 0);
        }
    }
    auto temp = Deliverer::over_quota(with_quota(10, 0), Deliverer::Usage{5, 1}, 6, true);
    REQUIRE(temp.has_value());
    CHECK(temp->reply() == "452 4.2.2 Mailbox full");
}

TEST_CASE("mda quota: usage counts new/ and cur/ by S=, tmp/ not at all", "[mda]") {
    TempDir dir;
    std::string md = dir.path + "/Maildir";
    auto empty = Deliverer::usage(md);  // not created yet: empty
    REQUIRE(empty.ok());
    CHECK(empty->bytes == 0);
    CHECK(empty->messages == 0);
    REQUIRE(maildir::ensure(md).ok());
    REQUIRE(maildir::deliver(md, "Subject: a\n\n12345\n").ok());       // 18 bytes
    REQUIRE(maildir::deliver(md, "Subject: b\n\n1234567890\n").ok());  // 23 bytes
    // A name without S= is counted by the file's size; a name whose S= differs is taken at its word.
    std::ofstream(md + "/cur/1700000000.M1P1.host:2,S") << "0123456789";
    std::ofstream(md + "/cur/1700000001.M1P1.host,S=1000:2,") << "x";
    std::ofstream(md + "/tmp/1700000002.M1P1.host") << "in tmp, not counted";
    std::ofstream(md + "/new/.hidden") << "dot files are not messages";
    auto u = Deliverer::usage(md);
    REQUIRE(u.ok());
    CHECK(u->messages == 4);
    CHECK(u->bytes == 18 + 23 + 10 + 1000);
}

TEST_CASE("mda quota: a failed stat of a name without S= is not a readdir error", "[mda]") {
    // stat() leaves errno set; readdir() tells its end from an error only by errno, so the end of
    // cur/ read as an error and every delivery into this mailbox got a 451.
    TempDir dir;
    std::string md = dir.path + "/Maildir";
    REQUIRE(maildir::ensure(md).ok());
    REQUIRE(symlink("/nonexistent", (md + "/cur/1700000000.M1P1.gone:2,S").c_str()) == 0);
    auto u = Deliverer::usage(md);
    REQUIRE(u.ok());
    CHECK(u->messages == 0);
    CHECK(u->bytes == 0);
    // Also when a counted message follows or precedes it.
    std::ofstream(md + "/cur/1700000001.M1P1.host:2,S") << "0123456789";
    REQUIRE(symlink("/nonexistent", (md + "/new/1700000002.M1P1.gone").c_str()) == 0);
    u = Deliverer::usage(md);
    REQUIRE(u.ok());
    CHECK(u->messages == 1);
    CHECK(u->bytes == 10);
}

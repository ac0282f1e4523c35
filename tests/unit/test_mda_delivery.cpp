// Unit tests of ferry-mda's Maildir write: the stored bytes and the S=/W= sizes of the name.
#include <catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/program/config.hpp"
#include "common/store/index.hpp"
#include "common/store/maildir.hpp"
#include "mda/delivery.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;

namespace {

using test::TempDir;

// Deliverer::write does not look accounts up; the store is only needed to construct it.
class NoAccounts : public AccountStore {
public:
    Result<bool> has_domain(std::string_view) override { return false; }
    Result<std::optional<Account>> account(std::string_view) override { return std::optional<Account>{}; }
    Result<std::vector<std::string>> alias(std::string_view) override { return std::vector<std::string>{}; }
};

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

TEST_CASE("mda delivery: a last line without LF is stored with one, and S=/W= count it", "[mda]") {
    TempDir dir;
    auto config = Config::parse("mail_dir = " + dir.path + "\nhostname = mx.test\n", "test.conf", "mda");
    REQUIRE(config.ok());
    NoAccounts accounts;
    mda::Deliverer deliverer(*config, accounts);
    Account account;
    account.address = "demo@example.test";
    account.quota_bytes = 1000;  // the quota check sees the size that is stored
    auto md = deliverer.prepare(account);
    REQUIRE(md.ok());
    const std::string headers = "Return-Path: <a@b.test>\nDelivered-To: demo@example.test\n";
    struct Row { const char* message; const char* stored; };
    const Row rows[] = {
        {"Subject: a\n\nno final newline", "Subject: a\n\nno final newline\n"},
        {"Subject: b\nX: header only", "Subject: b\nX: header only\n"},
        {"Subject: c\n\nbare CR\r", "Subject: c\n\nbare CR\r\n"},
        {"Subject: d\n\nfine\n", "Subject: d\n\nfine\n"},
        {"", ""},
    };
    for (const auto& r : rows) {
        INFO(r.message);
        auto name = deliverer.write("QID", account, *md, "a@b.test", r.message);
        REQUIRE(name.ok());
        std::string data = slurp(*md + "/new/" + *name);
        CHECK(data == headers + r.stored);
        auto info = maildir::parse_name(*name);
        REQUIRE(info.ok());
        CHECK(info->size == data.size());
        CHECK(info->vsize == maildir::crlf_size(data));
        CHECK(maildir::unterminated_octets(data) == 0);
    }
}

TEST_CASE("mda delivery: each delivery gets the next UID; a new account gets its default folders", "[mda][store]") {
    TempDir dir;
    auto config = Config::parse("mail_dir = " + dir.path + "\nhostname = mx.test\n", "test.conf", "mda");
    REQUIRE(config.ok());
    NoAccounts accounts;
    mda::Deliverer deliverer(*config, accounts);
    Account account;
    account.address = "demo@example.test";
    auto md = deliverer.prepare(account);
    REQUIRE(md.ok());
    CHECK(test::present(*md + "/.Sent/cur"));
    CHECK(test::present(*md + "/.Trash/maildirfolder"));
    std::vector<std::string> names;
    for (int i = 0; i < 3; ++i) {
        auto name = deliverer.write("QID", account, *md, "a@b.test", "Subject: n\n\nx\n");
        REQUIRE(name.ok());
        names.push_back(*name);
    }
    auto ix = store::Index::open(*md);
    REQUIRE(ix.ok());
    REQUIRE(ix->messages().size() == 3);  // without a sync: the UIDs came with the deliveries
    for (size_t i = 0; i < 3; ++i) {
        CHECK(ix->messages()[i].uid == i + 1);
        CHECK(ix->messages()[i].base == maildir::parse_name(names[i])->base);
    }
    // An index that cannot be written never fails a delivery; the next sync catches up.
    REQUIRE(unlink((*md + "/" + store::kIndexFile).c_str()) == 0);
    REQUIRE(mkdir((*md + "/" + store::kIndexFile).c_str(), 0700) == 0);  // not a file at all
    REQUIRE(deliverer.write("QID", account, *md, "a@b.test", "Subject: n\n\nx\n").ok());
}

// common/base: the stable hash, CRC-32C, the group fsync of a directory, and the durable file
// (write, fsync, link or rename, fsync directory).
#include <catch.hpp>

#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "common/base/crc32c.hpp"
#include "common/base/group_sync.hpp"
#include "common/base/fs.hpp"
#include "common/base/hash.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;

TEST_CASE("fnv1a gives the published FNV-1a values", "[base]") {
    struct Case {
        std::string_view text;
        uint32_t h32;
        uint64_t h64;
    };
    // Test vectors of the FNV reference (draft-eastlake-fnv, section 8).
    const Case cases[] = {
        {"", 0x811c9dc5u, 0xcbf29ce484222325ull},
        {"a", 0xe40c292cu, 0xaf63dc4c8601ec8cull},
        {"foobar", 0xbf9cf968u, 0x85944171f73967e8ull},
    };
    for (const auto& c : cases) {
        INFO(c.text);
        CHECK(fnv1a32(c.text) == c.h32);
        CHECK(fnv1a64(c.text) == c.h64);
    }
    // Octets above 0x7f hash as unsigned, the same whatever the signedness of char.
    CHECK(fnv1a32("\xff") == ((0x811c9dc5u ^ 0xffu) * 16777619u));
}

// RFC 3720, B.4, and the common check value.
TEST_CASE("crc32c gives the published CRC-32C values", "[base]") {
    std::string zeros(32, '\0'), ones(32, '\xFF'), up(32, '\0');
    for (size_t i = 0; i < up.size(); ++i) up[i] = static_cast<char>(i);
    CHECK(crc32c(0, "123456789") == 0xE3069283u);
    CHECK(crc32c(0, zeros) == 0x8A9136AAu);
    CHECK(crc32c(0, ones) == 0x62A8AB43u);
    CHECK(crc32c(0, up) == 0x46DD794Eu);
    CHECK(crc32c(0, "") == 0u);
    CHECK(crc32c_portable(0, "123456789", 9) == 0xE3069283u);
}

TEST_CASE("crc32c: chained pieces, both paths, any alignment give one answer", "[base]") {
    std::mt19937 rng(7);
    std::string data(5008, '\0');
    for (char& c : data) c = static_cast<char>(rng());
    for (size_t len : {0, 1, 7, 8, 9, 63, 64, 65, 4095, 4999})
        for (size_t at : {0, 1, 3}) {
            std::string_view piece(data.data() + at, len);
            uint32_t whole = crc32c(0, piece);
            CHECK(crc32c_portable(0, piece.data(), piece.size()) == whole);
            size_t cut = len / 3;
            CHECK(crc32c(crc32c(0, piece.substr(0, cut)), piece.substr(cut)) == whole);
        }
    std::string flipped = data;
    flipped[2500] ^= 1;
    CHECK(crc32c(0, flipped) != crc32c(0, data));
}

TEST_CASE("GroupSync: each request answered by a sync begun after it, shared by those asked together", "[base][fs]") {
    test::TempDir dir;
    GroupSync sync(GroupSync::directory(dir.path));
    CHECK(sync.syncs() == 0);
    REQUIRE(sync.sync().ok());
    CHECK(sync.syncs() == 1);
    REQUIRE(sync.sync().ok());  // asked after the first ended: a second one
    CHECK(sync.syncs() == 2);
    // Many at once: never more syncs than requests, every request answered ok.
    constexpr int kCallers = 16, kEach = 20;
    std::vector<std::thread> callers;
    std::atomic<int> failed{0};
    for (int i = 0; i < kCallers; ++i)
        callers.emplace_back([&] {
            for (int k = 0; k < kEach; ++k)
                if (!sync.sync()) ++failed;
        });
    for (auto& t : callers) t.join();
    CHECK(failed == 0);
    CHECK(sync.syncs() >= 3);
    CHECK(sync.syncs() <= 2 + kCallers * kEach);
    // A ticket taken, then waited for later: still answered.
    uint64_t ticket = sync.request();
    CHECK(sync.wait(ticket).ok());

    GroupSync gone(GroupSync::directory(dir.path + "/missing"));  // the outcome of the fsync is the answer
    auto r = gone.sync();
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().what().find(dir.path + "/missing") != std::string::npos);
}

TEST_CASE("GroupSync: a failed sync fails the requests it answers, even after a later one succeeded", "[base][fs]") {
    std::mutex mu;
    std::condition_variable cv;
    int calls = 0;
    bool release_first = false;
    // The first sync fails, once released; every later one succeeds.
    GroupSync sync([&]() -> Result<void> {
        std::unique_lock lock(mu);
        int n = ++calls;
        cv.notify_all();
        if (n > 1) return {};
        cv.wait(lock, [&] { return release_first; });
        return make_error(0, "", "disk gone");
    });
    uint64_t first = sync.request();
    {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return calls == 1; });  // the first sync runs (and holds)
    }
    uint64_t second = sync.request();  // made while it runs: answered by the next one
    CHECK(second == first + 1);
    {
        std::lock_guard lock(mu);
        release_first = true;
    }
    cv.notify_all();
    CHECK_FALSE(sync.wait(first).ok());
    auto later = sync.wait(second);
    CHECK(later.ok());  // its own sync began after the failure and succeeded
    // A ticket whose sync failed stays failed although a later sync succeeded.
    CHECK(sync.wait(first).error().what() == "disk gone");
    CHECK(sync.sync().ok());
}

TEST_CASE("DurableFile: publish by link, never over an existing file", "[base][fs]") {
    test::TempDir dir;
    std::string tmp = dir.path + "/tmp-name", final_path = dir.path + "/final";
    {
        auto file = DurableFile::create(tmp, 0600);
        REQUIRE(file.ok());
        REQUIRE(file->has_value());
        REQUIRE((*file)->write("hello ").ok());
        REQUIRE((*file)->write("world\n").ok());
        CHECK_FALSE(test::present(final_path));  // nothing visible before the commit
        auto published = (*file)->publish(final_path, DurableFile::Publish::link);
        REQUIRE(published.ok());
        CHECK(*published);
        CHECK_FALSE((*file)->pending());
    }
    CHECK(test::read_text(final_path) == "hello world\n");
    CHECK_FALSE(test::present(tmp));  // the temporary name went after the directory fsync

    // A second file for the same final name: link refuses, nothing changes, the caller decides.
    auto second = DurableFile::create(tmp, 0600);
    REQUIRE(second.ok());
    REQUIRE((*second)->write("other\n").ok());
    auto taken = (*second)->publish(final_path, DurableFile::Publish::link);
    REQUIRE(taken.ok());
    CHECK_FALSE(*taken);
    CHECK((*second)->pending());
    CHECK(test::read_text(final_path) == "hello world\n");
    (*second)->discard();
    CHECK_FALSE(test::present(tmp));
}

TEST_CASE("DurableFile: an unpublished file leaves nothing behind", "[base][fs]") {
    test::TempDir dir;
    std::string tmp = dir.path + "/t";
    {
        auto file = DurableFile::create(tmp, 0600);
        REQUIRE(file.ok());
        REQUIRE((*file)->write("x").ok());
        CHECK(test::present(tmp));
        // The name is taken while it lives: create says so instead of failing.
        auto again = DurableFile::create(tmp, 0600);
        REQUIRE(again.ok());
        CHECK_FALSE(again->has_value());
    }
    CHECK_FALSE(test::present(tmp));
    // A failed link (no such directory) publishes nothing and keeps the temporary file to discard.
    auto file = DurableFile::create(tmp, 0600);
    REQUIRE(file.ok());
    auto failed = (*file)->publish(dir.path + "/missing/final", DurableFile::Publish::link);
    CHECK_FALSE(failed.ok());
    CHECK((*file)->pending());
}

TEST_CASE("DurableFile: move_temp and write_at, as the spool renumbers a file", "[base][fs]") {
    test::TempDir dir;
    auto file = DurableFile::create(dir.path + "/a", 0600);
    REQUIRE(file.ok());
    REQUIRE((*file)->write("id AAAA\n").ok());
    std::ofstream(dir.path + "/b") << "taken";
    auto blocked = (*file)->move_temp(dir.path + "/b");
    REQUIRE(blocked.ok());
    CHECK_FALSE(*blocked);
    auto moved = (*file)->move_temp(dir.path + "/c");
    REQUIRE(moved.ok());
    CHECK(*moved);
    CHECK_FALSE(test::present(dir.path + "/a"));
    REQUIRE((*file)->write_at("CCCC", 3).ok());
    REQUIRE((*file)->publish(dir.path + "/final", DurableFile::Publish::link).ok());
    CHECK(test::read_text(dir.path + "/final") == "id CCCC\n");
    CHECK_FALSE(test::present(dir.path + "/c"));
    CHECK(test::read_text(dir.path + "/b") == "taken");
}

TEST_CASE("write_file_durably replaces the file and a leftover temporary", "[base][fs]") {
    test::TempDir dir;
    std::string path = dir.path + "/state";
    std::ofstream(path) << "old";
    std::ofstream(path + ".tmp") << "leftover of a crash, longer than the new text";
    REQUIRE(write_file_durably(path, "new\n", 0640).ok());
    CHECK(test::read_text(path) == "new\n");
    CHECK_FALSE(test::present(path + ".tmp"));
    struct stat st {};
    REQUIRE(stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0640);
    CHECK_FALSE(write_file_durably(dir.path + "/missing/state", "x", 0640).ok());
}

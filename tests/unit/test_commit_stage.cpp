// The commit stage: sync, publish and settle per item off the loop, one directory fsync per batch.
#include <catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "common/event/commit_stage.hpp"
#include "common/event/event.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;

namespace {

bool run_until(event_base* base, const std::function<bool()>& done) {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
        if (std::chrono::steady_clock::now() > end) return false;
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

// An item that writes `name` under tmp/, fsyncs it, links it into new/ and unlinks the tmp/ name.
CommitStage::Item file_item(const std::string& root, const std::string& name, std::vector<Result<void>>& out,
                            size_t slot) {
    auto tmp = root + "/tmp/" + name, fin = root + "/new/" + name;
    test::write_text(tmp, "message " + name + "\n");
    CommitStage::Item item;
    item.sync = [tmp]() -> Result<void> {
        Fd fd(::open(tmp.c_str(), O_RDONLY | O_CLOEXEC));
        if (!fd.valid() || ::fsync(fd.get()) != 0) return sys_error("fsync " + tmp);
        return {};
    };
    item.publish = [tmp, fin, root]() -> Result<std::string> {
        if (::link(tmp.c_str(), fin.c_str()) != 0) return sys_error("link " + fin);
        return root + "/new";
    };
    item.settle = [tmp, fin](const Result<void>& dir) -> Result<void> {
        if (!dir) {
            ::unlink(fin.c_str());
            return dir;
        }
        ::unlink(tmp.c_str());
        return {};
    };
    item.done = [&out, slot](Result<void> r) { out[slot] = std::move(r); };
    return item;
}

struct Fixture {
    test::TempDir dir;
    EventBase base{event_base_new()};
    Fixture() {
        ::mkdir((dir.path + "/tmp").c_str(), 0700);
        ::mkdir((dir.path + "/new").c_str(), 0700);
    }
};

}  // namespace

TEST_CASE("commit stage: a lone item is synced, published, settled and done, one directory fsync", "[event][commit]") {
    Fixture f;
    CommitStage stage(f.base.get(), 2);
    std::vector<Result<void>> out(1, make_error(0, "", "not done"));
    stage.submit(file_item(f.dir.path, "a", out, 0));
    CHECK(stage.pending() == 1);
    REQUIRE(run_until(f.base.get(), [&] { return stage.pending() == 0; }));
    CHECK(out[0].ok());
    CHECK(test::read_text(f.dir.path + "/new/a") == "message a\n");
    CHECK(::access((f.dir.path + "/tmp/a").c_str(), F_OK) != 0);
    CHECK(stage.stats().batches == 1);
    CHECK(stage.stats().dir_syncs == 1);
}

TEST_CASE("commit stage: items that sync while a batch runs share the next batch and its directory fsync",
          "[event][commit]") {
    Fixture f;
    CommitStage stage(f.base.get(), 4);
    constexpr size_t kItems = 12;
    std::vector<Result<void>> out(kItems, make_error(0, "", "not done"));
    // The first item's publish waits until the others have all synced.
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
    std::atomic<int> synced{0};
    std::atomic<bool> first_publishing{false};
    auto first = file_item(f.dir.path, "m0", out, 0);
    auto publish = first.publish;
    first.publish = [&, publish]() -> Result<std::string> {
        first_publishing = true;
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return open; });
        return publish();
    };
    stage.submit(std::move(first));
    // The first batch (of the first item alone) is running before the others are submitted.
    REQUIRE(run_until(f.base.get(), [&] { return first_publishing.load(); }));
    for (size_t i = 1; i < kItems; ++i) {
        auto item = file_item(f.dir.path, "m" + std::to_string(i), out, i);
        auto sync = item.sync;
        item.sync = [&, sync] {
            auto r = sync();
            ++synced;
            return r;
        };
        stage.submit(std::move(item));
    }
    // The loop has seen every sync completion while the first batch still runs.
    REQUIRE(run_until(f.base.get(), [&] { return stage.ready() == kItems - 1; }));
    CHECK(synced == static_cast<int>(kItems - 1));
    {
        std::lock_guard lock(mu);
        open = true;
    }
    cv.notify_all();
    REQUIRE(run_until(f.base.get(), [&] { return stage.pending() == 0; }));
    for (size_t i = 0; i < kItems; ++i) {
        INFO(i);
        CHECK(out[i].ok());
        CHECK(::access((f.dir.path + "/new/m" + std::to_string(i)).c_str(), F_OK) == 0);
    }
    CHECK(stage.stats().batches == 2);
    CHECK(stage.stats().dir_syncs == 2);
    CHECK(stage.stats().items == kItems);
}

TEST_CASE("commit stage: a failed sync or publish fails only its item; a failed directory fsync reaches settle",
          "[event][commit]") {
    Fixture f;
    CommitStage stage(f.base.get(), 2);
    std::vector<Result<void>> out(4, make_error(0, "", "not done"));
    bool settled_bad_publish = false;

    auto bad_sync = file_item(f.dir.path, "s", out, 0);
    bad_sync.sync = [] { return Result<void>(make_error(451, "4.3.0", "sync failed")); };
    bool published_bad_sync = false;
    auto pub = bad_sync.publish;
    bad_sync.publish = [&, pub] {
        published_bad_sync = true;
        return pub();
    };
    stage.submit(std::move(bad_sync));

    auto bad_publish = file_item(f.dir.path, "p", out, 1);
    bad_publish.publish = []() -> Result<std::string> { return make_error(451, "4.3.0", "publish failed"); };
    bad_publish.settle = [&](const Result<void>&) -> Result<void> {
        settled_bad_publish = true;
        return {};
    };
    stage.submit(std::move(bad_publish));

    auto bad_dir = file_item(f.dir.path, "d", out, 2);
    bad_dir.publish = [root = f.dir.path]() -> Result<std::string> { return root + "/missing-dir"; };
    stage.submit(std::move(bad_dir));

    stage.submit(file_item(f.dir.path, "ok", out, 3));
    REQUIRE(run_until(f.base.get(), [&] { return stage.pending() == 0; }));
    CHECK(out[0].error().text == "sync failed");
    CHECK_FALSE(published_bad_sync);
    CHECK(out[1].error().text == "publish failed");
    CHECK_FALSE(settled_bad_publish);
    CHECK_FALSE(out[2].ok());  // settle passed the directory's failure on
    CHECK(out[3].ok());
    CHECK(::access((f.dir.path + "/new/ok").c_str(), F_OK) == 0);
}

TEST_CASE("commit stage: a lone item's batch runs on the worker that synced it, without a trip through the loop",
          "[event][commit]") {
    Fixture f;
    CommitStage stage(f.base.get(), 4);
    constexpr size_t kItems = 20;
    std::vector<Result<void>> out(kItems, make_error(0, "", "not done"));
    std::vector<std::thread::id> synced_on(kItems), published_on(kItems);
    for (size_t i = 0; i < kItems; ++i) {
        auto item = file_item(f.dir.path, "l" + std::to_string(i), out, i);
        auto sync = item.sync;
        auto publish = item.publish;
        item.sync = [&, i, sync] {
            synced_on[i] = std::this_thread::get_id();
            return sync();
        };
        item.publish = [&, i, publish] {
            published_on[i] = std::this_thread::get_id();
            return publish();
        };
        stage.submit(std::move(item));
        // One at a time: each is alone, as a single session's messages are.
        REQUIRE(run_until(f.base.get(), [&] { return stage.pending() == 0; }));
        CHECK(out[i].ok());
        CHECK(published_on[i] == synced_on[i]);
    }
    CHECK(stage.stats().batches == kItems);
    CHECK(stage.stats().dir_syncs == kItems);
}

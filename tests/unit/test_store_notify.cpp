// Unit tests of the folder change watcher: inotify events, coalescing, shared watches, the poll fallback.
#include <catch.hpp>

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>

#include "common/event/event.hpp"
#include "common/store/index.hpp"
#include "common/store/maildir.hpp"
#include "common/store/notify.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;
using namespace ferry::store;
using test::TempDir;
using Clock = std::chrono::steady_clock;

namespace {

struct Counter final : FolderListener {
    int calls = 0;
    std::function<void()> also;
    void on_folder_changed() noexcept override {
        ++calls;
        if (also) also();
    }
};

// Runs the loop until `cond` holds or `limit` passes; true when it held.
bool run_until(event_base* base, const std::function<bool()>& cond, std::chrono::milliseconds limit) {
    for (auto end = Clock::now() + limit; Clock::now() < end;) {
        if (cond()) return true;
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        timeval tv{0, 2000};
        select(0, nullptr, nullptr, nullptr, &tv);
    }
    return cond();
}

// Runs the loop for `span`, whatever happens.
void run_for(event_base* base, std::chrono::milliseconds span) { run_until(base, [] { return false; }, span); }

std::string folder(const TempDir& t, const std::string& name = "INBOX") {
    std::string md = t.path + "/" + name;
    REQUIRE(Index::open(md));  // creates the Maildir and its index
    return md;
}

}  // namespace

TEST_CASE("watcher: a delivery into new/ is heard once for a burst", "[store][notify]") {
    TempDir t;
    std::string md = folder(t);
    EventBase base{event_base_new()};
    FolderWatcher w(base.get(), {.coalesce = 0.05});
    Counter a;
    auto watch = w.watch(md, &a);
    REQUIRE(w.inotify_watches() == 3);
    for (int i = 0; i < 20; ++i) REQUIRE(maildir::deliver(md, "Subject: x\n\nbody\n"));
    REQUIRE(run_until(base.get(), [&] { return a.calls > 0; }, std::chrono::milliseconds(2000)));
    run_for(base.get(), std::chrono::milliseconds(200));
    CHECK(a.calls == 1);
}

TEST_CASE("watcher: renames in cur/, unlinks and index appends are heard", "[store][notify]") {
    TempDir t;
    std::string md = folder(t);
    auto name = maildir::deliver(md, "Subject: x\n\nbody\n");
    REQUIRE(name);
    EventBase base{event_base_new()};
    FolderWatcher w(base.get(), {.coalesce = 0.01});
    Counter a;
    auto watch = w.watch(md, &a);
    auto step = [&](const std::function<void()>& change) {
        int before = a.calls;
        change();
        return run_until(base.get(), [&] { return a.calls > before; }, std::chrono::milliseconds(2000));
    };
    std::string cur = md + "/cur/" + *name + ":2,S";
    CHECK(step([&] { REQUIRE(std::rename((md + "/new/" + *name).c_str(), cur.c_str()) == 0); }));
    CHECK(step([&] { REQUIRE(std::rename(cur.c_str(), (cur + "F").c_str()) == 0); }));  // mutt flags it
    CHECK(step([&] { REQUIRE(std::remove((cur + "F").c_str()) == 0); }));               // a POP3 DELE
    // Another process appends to ferry-index (ferry-mda numbering its delivery): the folder watch
    // hears that file, not the lock file.
    std::optional<std::string> second;
    CHECK(step([&] { second = maildir::deliver(md, "Subject: y\n\nbody\n").value(); }));
    CHECK(step([&] { REQUIRE(append_delivered(md, *second)); }));
    int before = a.calls;
    test::write_text(md + "/unrelated-file", "x");
    run_for(base.get(), std::chrono::milliseconds(150));
    CHECK(a.calls == before);
}

TEST_CASE("watcher: listeners on one folder share its watches, removed with the last", "[store][notify]") {
    TempDir t;
    std::string inbox = folder(t), sent = folder(t, ".Sent");
    EventBase base{event_base_new()};
    FolderWatcher w(base.get(), {.coalesce = 0.01});
    Counter a, b, c;
    auto wa = w.watch(inbox, &a);
    auto wb = w.watch(inbox, &b);
    {
        auto wc = w.watch(sent, &c);
        CHECK(w.folders() == 2);
        CHECK(w.inotify_watches() == 6);
    }
    CHECK(w.folders() == 1);
    CHECK(w.inotify_watches() == 3);
    REQUIRE(maildir::deliver(inbox, "Subject: x\n\nbody\n"));
    REQUIRE(run_until(base.get(), [&] { return a.calls == 1 && b.calls == 1; }, std::chrono::milliseconds(2000)));
    CHECK(c.calls == 0);
    wa.reset();
    auto moved = std::move(wb);
    CHECK(w.folders() == 1);
    moved.reset();
    CHECK(w.folders() == 0);
    CHECK(w.inotify_watches() == 0);
}

TEST_CASE("watcher: a listener may drop its own and another's watch while notified", "[store][notify]") {
    TempDir t;
    std::string md = folder(t);
    EventBase base{event_base_new()};
    FolderWatcher w(base.get(), {.coalesce = 0.01});
    Counter a, b;
    FolderWatch wa = w.watch(md, &a), wb = w.watch(md, &b);
    a.also = [&] { wa.reset(); wb.reset(); };
    b.also = [&] { wa.reset(); wb.reset(); };
    REQUIRE(maildir::deliver(md, "Subject: x\n\nbody\n"));
    REQUIRE(run_until(base.get(), [&] { return a.calls + b.calls > 0; }, std::chrono::milliseconds(2000)));
    CHECK(a.calls + b.calls == 1);
    CHECK(w.folders() == 0);
}

TEST_CASE("watcher: without inotify a folder is polled", "[store][notify]") {
    TempDir t;
    std::string md = folder(t);
    EventBase base{event_base_new()};
    FolderWatcher w(base.get(), {.coalesce = 0.01, .poll_interval = 0.1, .use_inotify = false});
    Counter a;
    auto watch = w.watch(md, &a);
    CHECK(w.inotify_watches() == 0);
    CHECK(w.polled() == 1);
    CHECK(run_until(base.get(), [&] { return a.calls >= 2; }, std::chrono::milliseconds(2000)));
    watch.reset();
    CHECK(w.polled() == 0);
}

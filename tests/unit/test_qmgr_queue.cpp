// Unit tests of qmgr's view of the spool: what load() quarantines (only what does not decode or, when
// asked to verify, does not match its checksum; never a file it could not read), and what recover()
// removes from incoming/ (never a live writer's file).
#include <catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "common/base/fs.hpp"
#include "common/spool/spool.hpp"
#include "mta/qmgr/queue.hpp"
#include "mta/qmgr/spool_lock.hpp"
#include "common/spool/state.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;
using qmgr::RcptStatus;

namespace {

using test::TempDir;

using test::names_in;

using test::present;

using test::NoFreeFds;

// A committed message for two recipients, the first already delivered as its state file says.
std::string queue_half_done(const qmgr::Queue& q) {
    spool::Envelope env;
    env.arrival = 1700000000;
    env.sender = "a@b.test";
    env.recipients = {"x@example.test", "y@example.test"};
    auto w = spool::Writer::create(q.dir(), env);
    REQUIRE(w.ok());
    REQUIRE(w->append("Subject: t\n\nbody\n").ok());
    REQUIRE(w->commit().ok());
    qmgr::MessageState st{w->id(), {}};
    st.rcpts.push_back({0, RcptStatus::delivered, 0, 0, "x@example.test", "x@example.test", "250 ok"});
    qmgr::SaveSlot slot;
    REQUIRE(q.save_state(st, slot, 1).ok());
    return w->id();
}

// A fresh queue with two such messages; in the second, a block of the data that never reached the
// disk: the same length, other bytes.
struct WholeAndTorn {
    TempDir dir;
    qmgr::Queue q{dir.path + "/spool"};
    std::string good, torn, path;

    WholeAndTorn() {
        REQUIRE(q.recover().ok());
        good = queue_half_done(q);
        torn = queue_half_done(q);
        path = q.dir() + "/queue/" + torn;
        std::string text = test::read_text(path);
        size_t at = text.find("body");
        REQUIRE(at != std::string::npos);
        text.replace(at, 4, std::string(4, '\0'));
        test::write_text(path, text);
    }
};

}  // namespace

TEST_CASE("qmgr queue: an I/O error quarantines nothing, a decode error does", "[qmgr]") {
    TempDir dir;
    qmgr::Queue q(dir.path + "/spool");
    REQUIRE(q.recover().ok());
    std::string id = queue_half_done(q);
    std::string corrupt_dir = q.dir() + "/" + qmgr::kCorruptDir;

    SECTION("out of descriptors: an error; later the message loads with its state") {
        std::optional<Result<std::optional<qmgr::Loaded>>> starved;
        {
            NoFreeFds hog;
            starved.emplace(q.load(id));
        }
        CHECK_FALSE(starved->ok());
        CHECK(names_in(corrupt_dir).empty());
        auto l = q.load(id);
        REQUIRE(l.ok());
        REQUIRE(l->has_value());
        REQUIRE((*l)->state.rcpts.size() == 1);
        CHECK((*l)->state.rcpts[0].status == RcptStatus::delivered);  // x is not delivered again
    }
    SECTION("a state file that cannot be read (EISDIR): an error, the state stays") {
        REQUIRE(unlink(q.state_path(id).c_str()) == 0);
        REQUIRE(mkdir(q.state_path(id).c_str(), 0750) == 0);
        auto l = q.load(id);
        CHECK_FALSE(l.ok());
        CHECK(names_in(corrupt_dir).empty());
        CHECK(present(q.state_path(id)));
        CHECK(present(q.queue_path(id)));
    }
    SECTION("a queue file that cannot be read (EISDIR): an error, it stays") {
        REQUIRE(unlink(q.queue_path(id).c_str()) == 0);
        REQUIRE(mkdir(q.queue_path(id).c_str(), 0750) == 0);
        auto l = q.load(id);
        CHECK_FALSE(l.ok());
        CHECK(names_in(corrupt_dir).empty());
        CHECK(present(q.queue_path(id)));
    }
    SECTION("a state file that does not decode: quarantined, the message starts over") {
        std::ofstream(q.state_path(id)) << "ferry-state 1\nid " << id << "\nrcpt\t0\tdo";
        auto l = q.load(id);
        REQUIRE(l.ok());
        REQUIRE(l->has_value());
        CHECK((*l)->state.rcpts.empty());
        CHECK(names_in(corrupt_dir) == std::vector<std::string>{id + ".state"});
    }
    SECTION("a queue file that does not decode: quarantined") {
        std::ofstream(q.queue_path(id)) << "ferry-queue 1\nid " << id << "\n";
        auto l = q.load(id);
        REQUIRE(l.ok());
        CHECK_FALSE(l->has_value());
        CHECK(names_in(corrupt_dir) == std::vector<std::string>{id});
    }
    SECTION("a queue file that is gone: nothing, no error") {
        REQUIRE(q.remove(id).ok());
        auto l = q.load(id);
        REQUIRE(l.ok());
        CHECK_FALSE(l->has_value());
        CHECK_FALSE(q.exists(id));
    }
}

TEST_CASE("qmgr queue: recover leaves a live writer's incoming file alone", "[qmgr]") {
    TempDir dir;
    qmgr::Queue q(dir.path + "/spool");
    REQUIRE(q.recover().ok());
    spool::Envelope env;
    env.sender = "a@b.test";
    env.recipients = {"x@example.test"};
    auto w = spool::Writer::create(q.dir(), env);
    REQUIRE(w.ok());
    std::string leftover = q.dir() + "/incoming/00000000000000DD";  // a killed writer's: no lock
    std::ofstream(leftover) << "ferry-queue 1\nid 00000000000000DD\n";

    REQUIRE(q.recover().ok());  // a qmgr restart while the message is being received
    CHECK(names_in(q.dir() + "/incoming") == std::vector<std::string>{w->id()});
    REQUIRE(w->append("body\n").ok());
    REQUIRE(w->commit().ok());
    CHECK(names_in(q.dir() + "/queue") == std::vector<std::string>{w->id()});
    auto l = q.load(w->id());
    REQUIRE(l.ok());
    CHECK(l->has_value());
}

TEST_CASE_METHOD(WholeAndTorn, "qmgr queue: a file found by a scan is read whole against its checksum", "[qmgr]") {
    auto announced = q.load(torn);  // announced by its writer after the commit: not read whole
    REQUIRE(announced.ok());
    CHECK(announced->has_value());
    auto scanned = q.load(torn, true);
    REQUIRE(scanned.ok());
    CHECK_FALSE(scanned->has_value());
    CHECK(present(q.dir() + "/" + qmgr::kCorruptDir + "/" + torn));
    CHECK_FALSE(present(path));
    auto whole = q.load(good, true);
    REQUIRE(whole.ok());
    REQUIRE(whole->has_value());
    CHECK((*whole)->envelope.id == good);
}

TEST_CASE_METHOD(WholeAndTorn, "qmgr queue: verify() alone, as the scan's worker runs it", "[qmgr]") {
    auto ok = q.verify(good);
    REQUIRE(ok.ok());
    CHECK(*ok);
    CHECK(present(q.dir() + "/queue/" + good));
    auto bad = q.verify(torn);
    REQUIRE(bad.ok());
    CHECK_FALSE(*bad);
    CHECK(present(q.dir() + "/" + qmgr::kCorruptDir + "/" + torn));
    CHECK_FALSE(present(path));
    // Nothing to check here: gone, or not decoding (load() moves that one, with its own line).
    auto gone = q.verify(torn);
    REQUIRE(gone.ok());
    CHECK(*gone);
    std::string junk = q.dir() + "/queue/66141081F8479626";
    test::write_text(junk, "not a queue file\n");
    auto undecoded = q.verify("66141081F8479626");
    REQUIRE(undecoded.ok());
    CHECK(*undecoded);
    CHECK(present(junk));
    // Out of descriptors: an error, nothing moved.
    {
        NoFreeFds no_fds;
        auto r = q.verify(good);
        CHECK_FALSE(r.ok());
    }
    CHECK(present(q.dir() + "/queue/" + good));
}

TEST_CASE("qmgr queue: one qmgr per spool through qmgr.lock", "[qmgr]") {
    test::TempDir dir;
    std::string path = dir.path + "/" + qmgr::kLockFile;
    auto first = qmgr::lock_spool(path);
    REQUIRE(first.ok());
    // A second open file description is refused while the first holds it, and names its pid.
    auto second = qmgr::lock_spool(path);
    REQUIRE_FALSE(second.ok());
    CHECK(second.error().what() == "another ferry-qmgr holds " + path + " (pid " + std::to_string(getpid()) + ")");
    first->reset();  // the holder is gone: the lock is free again
    CHECK(qmgr::lock_spool(path).ok());
}

// Runs a commit-stage item's steps in order on this thread, as one batch of one.
Result<void> run_item(CommitStage::Item& item) {
    if (auto r = item.sync(); !r) return r;
    auto dir = item.publish();
    if (!dir) return dir.error();
    return dir->empty() ? Result<void>() : fsync_dir(*dir);
}

TEST_CASE("qmgr queue: a state save never replaces a newer one, nor comes back after a removal", "[qmgr]") {
    TempDir dir;
    qmgr::Queue q(dir.path + "/spool");
    REQUIRE(q.recover().ok());
    std::string id = queue_half_done(q);
    auto slot = std::make_shared<qmgr::SaveSlot>();
    qmgr::MessageState older{id, {}}, newer{id, {}};
    older.rcpts.push_back({0, RcptStatus::deferred, 1, 0, "x@example.test", "x@example.test", "451 older"});
    newer.rcpts.push_back({0, RcptStatus::deferred, 2, 0, "x@example.test", "x@example.test", "451 newer"});
    auto first = q.state_item(older, slot, 2);
    auto second = q.state_item(newer, slot, 3);
    std::string state_dir = q.dir() + "/" + qmgr::kStateDir;

    SECTION("the newer one published first: the older one is dropped, its temporary file too") {
        REQUIRE(run_item(second).ok());
        REQUIRE(run_item(first).ok());
        auto text = spool::read_bytes(q.state_path(id));
        REQUIRE(text.ok());
        REQUIRE(text->has_value());
        CHECK((*text)->find("451 newer") != std::string::npos);
        CHECK(names_in(state_dir) == std::vector<std::string>{id});
    }
    SECTION("a save on the loop after both were synced wins over both") {
        REQUIRE(first.sync().ok());
        qmgr::MessageState held = newer;
        held.held = 1700000001;
        REQUIRE(q.save_state(held, *slot, 4).ok());
        REQUIRE(first.publish().ok());
        auto text = spool::read_bytes(q.state_path(id));
        REQUIRE(text.ok());
        CHECK((*text)->find("held 1700000001") != std::string::npos);
        CHECK(names_in(state_dir) == std::vector<std::string>{id});
    }
    SECTION("after end_saves nothing is published") {
        REQUIRE(unlink(q.state_path(id).c_str()) == 0);
        qmgr::Queue::end_saves(*slot);
        REQUIRE(run_item(second).ok());
        CHECK(names_in(state_dir).empty());
    }
}

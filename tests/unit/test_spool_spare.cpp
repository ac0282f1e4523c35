// Unit tests of spare queue files: a removed message's file is kept and reused by the next message,
// which overwrites it and cuts it at its own end; never while it has another name or another
// holder; spare/ stays bounded in count and size.
#include <catch.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "common/spool/spare.hpp"
#include "common/spool/spool.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;
using test::names_in;
using test::present;
using test::read_text;
using test::write_text;

namespace {

// Each test lays out its spares, then commits a first message (prime): its commit lists spare/,
// and once its fsync of queue/ is done the next Writer may take them.
struct Spool {
    test::TempDir dir;
    std::string path = dir.path;
    Spool() { REQUIRE(spool::ensure_layout(path).ok()); }
    std::string at(const std::string& rel) const { return path + "/" + rel; }
};

ino_t inode(const std::string& path) {
    struct stat st;
    REQUIRE(stat(path.c_str(), &st) == 0);
    return st.st_ino;
}

off_t size_of(const std::string& path) {
    struct stat st;
    REQUIRE(stat(path.c_str(), &st) == 0);
    return st.st_size;
}

spool::Envelope envelope() {
    spool::Envelope env;
    env.arrival = 1700000000;
    env.sender = "a@b.test";
    env.client = "127.0.0.1";
    env.helo = "client.test";
    env.recipients = {"x@example.test"};
    return env;
}

void prime(const Spool& s) {
    spool::Envelope env = envelope();
    auto w = spool::Writer::create(s.path, env);
    REQUIRE(w.ok());
    REQUIRE(w->append("Subject: first\n\nbody\n").ok());
    REQUIRE(w->commit().ok());
}

// A message committed through a Writer that found a spare: its queue file decodes to what was written.
void commit_and_check(const Spool& s, spool::Writer& w, const std::string& data) {
    REQUIRE(w.append(data).ok());
    REQUIRE(w.commit().ok());
    auto m = spool::read_file(s.at("queue/" + w.id()));
    REQUIRE(m.ok());
    CHECK(m->envelope.id == w.id());
    CHECK(m->data == data);
}

}  // namespace

TEST_CASE("spool spare: a removed queue file is kept and the next message is written into it", "[spool]") {
    Spool s;
    const std::string old_id = "00000000000000A1";
    write_text(s.at("queue/" + old_id), std::string(5000, 'o'));
    REQUIRE(spool::retire_queue_file(s.path, old_id).ok());
    CHECK_FALSE(present(s.at("queue/" + old_id)));
    REQUIRE(names_in(s.at("spare")) == std::vector<std::string>{old_id});
    CHECK(size_of(s.at("spare/" + old_id)) == 5000);  // kept as it is: no blocks freed and allocated again
    ino_t kept = inode(s.at("spare/" + old_id));

    prime(s);
    spool::Envelope env = envelope();
    auto w = spool::Writer::create(s.path, env);
    REQUIRE(w.ok());
    CHECK(inode(s.at("incoming/" + w->id())) == kept);
    CHECK(names_in(s.at("spare")).empty());
    // Locked like a new file: qmgr's start-up leaves it to its writer.
    auto live = spool::remove_abandoned(s.at("incoming/" + w->id()));
    REQUIRE(live.ok());
    CHECK_FALSE(*live);
    commit_and_check(s, *w, "Subject: reused\n\nbody\n");
    CHECK(inode(s.at("queue/" + w->id())) == kept);
    CHECK(read_text(s.at("queue/" + w->id())).find("oooo") == std::string::npos);  // cut at its END record

    // With spare/ used up, the next message gets a file of its own.
    spool::Envelope env2 = envelope();
    auto w2 = spool::Writer::create(s.path, env2);
    REQUIRE(w2.ok());
    CHECK(inode(s.at("incoming/" + w2->id())) != kept);
}

TEST_CASE("spool spare: a message written into a longer spare ends at its own END record", "[spool]") {
    Spool s;
    // Longer than the new message, with an END record of its own further on.
    write_text(s.at("spare/00000000000000B1"), std::string(20000, 'x') + "\nend 3\n");
    prime(s);
    spool::Envelope env = envelope();
    auto w = spool::Writer::create(s.path, env);
    REQUIRE(w.ok());
    CHECK(names_in(s.at("spare")).empty());
    commit_and_check(s, *w, "Subject: short\n\nb\n");
    CHECK(read_text(s.at("queue/" + w->id())).find("xxxx") == std::string::npos);
}

TEST_CASE("spool spare: a spare with a second name is never written", "[spool]") {
    Spool s;
    // A crash that undid half of a rename left one file under a queue name and a spare name.
    const std::string queued = s.at("queue/00000000000000C1");
    write_text(queued, "the queued message\n");
    REQUIRE(link(queued.c_str(), s.at("spare/00000000000000C1").c_str()) == 0);
    prime(s);
    spool::Envelope env = envelope();
    auto w = spool::Writer::create(s.path, env);
    REQUIRE(w.ok());
    CHECK(inode(s.at("incoming/" + w->id())) != inode(queued));
    CHECK(read_text(queued) == "the queued message\n");
    commit_and_check(s, *w, "Subject: mine\n\nbody\n");
    CHECK(read_text(queued) == "the queued message\n");
}

TEST_CASE("spool spare: a spare another process holds locked is left to it", "[spool]") {
    Spool s;
    const std::string spare = s.at("spare/00000000000000D1");
    write_text(spare, "");
    int held = open(spare.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(held >= 0);
    REQUIRE(flock(held, LOCK_EX) == 0);
    prime(s);
    spool::Envelope env = envelope();
    auto w = spool::Writer::create(s.path, env);
    REQUIRE(w.ok());
    CHECK(inode(s.at("incoming/" + w->id())) != inode(spare));
    CHECK(present(spare));
    close(held);
}

TEST_CASE("spool spare: a queue file larger than kSpareMaxSize is unlinked, not kept", "[spool]") {
    Spool s;
    const std::string id = "00000000000000E1";
    write_text(s.at("queue/" + id), std::string(spool::kSpareMaxSize + 1, 'q'));
    REQUIRE(spool::retire_queue_file(s.path, id).ok());
    CHECK_FALSE(present(s.at("queue/" + id)));
    CHECK(names_in(s.at("spare")).empty());
    const std::string at_limit = "00000000000000E2";
    write_text(s.at("queue/" + at_limit), std::string(spool::kSpareMaxSize, 'q'));
    REQUIRE(spool::retire_queue_file(s.path, at_limit).ok());
    CHECK(names_in(s.at("spare")) == std::vector<std::string>{at_limit});
    // Removing a file that is gone already is no error.
    CHECK(spool::retire_queue_file(s.path, id).ok());
}

TEST_CASE("spool spare: spare/ keeps at most kSpareMax files; the rest are unlinked", "[spool]") {
    Spool s;
    const size_t n = spool::kSpareMax + 5;
    for (size_t i = 0; i < n; ++i) {
        char id[17];
        snprintf(id, sizeof id, "%016zX", i + 1);
        write_text(s.at(std::string("queue/") + id), "queued\n");
        REQUIRE(spool::retire_queue_file(s.path, id).ok());
    }
    CHECK(names_in(s.at("queue")).empty());
    CHECK(names_in(s.at("spare")).size() == spool::kSpareMax);
}

TEST_CASE("spool spare: a full spare/ takes files again once writers have taken some", "[spool]") {
    Spool s;
    auto retire = [&s](size_t i) {
        char id[17];
        snprintf(id, sizeof id, "%016zX", i + 1);
        write_text(s.at(std::string("queue/") + id), "queued\n");
        REQUIRE(spool::retire_queue_file(s.path, id).ok());
    };
    for (size_t i = 0; i < spool::kSpareMax; ++i) retire(i);
    REQUIRE(names_in(s.at("spare")).size() == spool::kSpareMax);
    // Writers take files without telling the remover: it counts spare/ again when it seems full,
    // so a busy queue keeps its files instead of unlinking every one past the first kSpareMax.
    auto spares = names_in(s.at("spare"));
    for (size_t i = 0; i < 100; ++i) REQUIRE(unlink(s.at("spare/" + spares[i]).c_str()) == 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    for (size_t i = spool::kSpareMax; i < spool::kSpareMax + 100; ++i) retire(i);
    CHECK(names_in(s.at("queue")).empty());
    CHECK(names_in(s.at("spare")).size() == spool::kSpareMax);
}

TEST_CASE("spool spare: spares listed in a commit are taken only once its fsync of queue/ succeeded", "[spool]") {
    Spool s;
    const std::string spare = s.at("spare/00000000000000G1");
    write_text(spare, "old\n");
    spool::Envelope env = envelope();
    auto first = spool::Writer::create(s.path, env);
    REQUIRE(first.ok());
    REQUIRE(first->append("Subject: first\n\nbody\n").ok());
    REQUIRE(first->sync().ok());
    REQUIRE(first->publish().ok());  // lists spare/
    spool::Envelope env2 = envelope();
    auto during = spool::Writer::create(s.path, env2);  // the fsync of queue/ is not done yet
    REQUIRE(during.ok());
    CHECK(inode(s.at("incoming/" + during->id())) != inode(spare));

    SECTION("the fsync failed: nothing is offered") {
        CHECK_FALSE(first->settle(sys_error("fsync queue", EIO)).ok());
        spool::Envelope env3 = envelope();
        auto after = spool::Writer::create(s.path, env3);
        REQUIRE(after.ok());
        CHECK(inode(s.at("incoming/" + after->id())) != inode(spare));
        CHECK(present(spare));
    }
    SECTION("the fsync succeeded: the next writer takes it") {
        ino_t kept = inode(spare);
        REQUIRE(first->settle(Result<void>()).ok());
        spool::Envelope env3 = envelope();
        auto after = spool::Writer::create(s.path, env3);
        REQUIRE(after.ok());
        CHECK(inode(s.at("incoming/" + after->id())) == kept);
        CHECK_FALSE(present(spare));
    }
}

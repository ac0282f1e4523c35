// Unit tests of spare queue files: a removed message's file is kept empty and reused by the next
// message, never while it has another name or another holder, and spare/ stays bounded.
#include <catch.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "common/spool/spare.hpp"
#include "common/spool/spool.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;
using test::names_in;
using test::present;
using test::read_text;
using test::write_text;

namespace {

// Each test lays out its spares before the first Writer of its spool, which lists spare/.
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

TEST_CASE("spool spare: a removed queue file is kept empty and the next message takes its inode", "[spool]") {
    Spool s;
    const std::string old_id = "00000000000000A1";
    write_text(s.at("queue/" + old_id), std::string(5000, 'o'));
    REQUIRE(spool::retire_queue_file(s.path, old_id).ok());
    CHECK_FALSE(present(s.at("queue/" + old_id)));
    REQUIRE(names_in(s.at("spare")) == std::vector<std::string>{old_id});
    CHECK(size_of(s.at("spare/" + old_id)) == 0);  // emptied at once: no old message lingers
    ino_t kept = inode(s.at("spare/" + old_id));

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

    // With spare/ used up, the next message gets a file of its own.
    spool::Envelope env2 = envelope();
    auto w2 = spool::Writer::create(s.path, env2);
    REQUIRE(w2.ok());
    CHECK(inode(s.at("incoming/" + w2->id())) != kept);
}

TEST_CASE("spool spare: a writer empties a spare that still holds bytes before it writes", "[spool]") {
    Spool s;
    // A spare whose emptying a crash undid: longer than the new message, with a forged END record.
    write_text(s.at("spare/00000000000000B1"), std::string(20000, 'x') + "\nend 3\n");
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
    spool::Envelope env = envelope();
    auto w = spool::Writer::create(s.path, env);
    REQUIRE(w.ok());
    CHECK(inode(s.at("incoming/" + w->id())) != inode(spare));
    CHECK(present(spare));
    close(held);
}

TEST_CASE("spool spare: a queue file locked by its writer is unlinked, not kept", "[spool]") {
    Spool s;
    const std::string id = "00000000000000E1";
    write_text(s.at("queue/" + id), "queued\n");
    int held = open(s.at("queue/" + id).c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(held >= 0);
    REQUIRE(flock(held, LOCK_EX) == 0);
    REQUIRE(spool::retire_queue_file(s.path, id).ok());
    CHECK_FALSE(present(s.at("queue/" + id)));
    CHECK(names_in(s.at("spare")).empty());
    close(held);
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

TEST_CASE("spool spare: an empty queue file is told apart from a corrupt one", "[spool]") {
    Spool s;
    write_text(s.at("queue/00000000000000F1"), "");
    auto m = spool::open_message(s.at("queue/00000000000000F1"));
    REQUIRE(m.ok());
    CHECK(m->status == spool::OpenedMessage::Status::empty);
    write_text(s.at("queue/00000000000000F2"), "ferry-queue 1\n");
    auto c = spool::open_message(s.at("queue/00000000000000F2"));
    REQUIRE(c.ok());
    CHECK(c->status == spool::OpenedMessage::Status::corrupt);
}

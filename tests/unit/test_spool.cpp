// Unit tests of the queue file format and its writer: round trip, refusal of incomplete files and
// of torn ones (checksum), read errors told from corrupt files, id collisions at commit, the
// writer's lock and moves.
#include <catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <vector>

#include "common/base/crc32c.hpp"
#include "common/base/group_sync.hpp"
#include "common/spool/spool.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;

TEST_CASE("spool: encode and decode round trip") {
    spool::Envelope env;
    env.id = "0123456789ABCDEF";
    env.arrival = 1700000000;
    env.sender = "a@b.test";
    env.client = "127.0.0.1";
    env.helo = "client.test";
    env.recipients = {"x@example.test", "y@example.test"};
    std::string data = "Subject: hi\n\nbody\nend 3\n";
    std::string file = spool::encode_header(env) + data + spool::encode_trailer(data.size());
    auto m = spool::decode(file);
    REQUIRE(m.ok());
    CHECK(m->envelope.id == env.id);
    CHECK(m->envelope.sender == "a@b.test");
    CHECK(m->envelope.recipients == env.recipients);
    CHECK(m->data == data);

    SECTION("every truncation is refused") {
        for (size_t cut = 0; cut < file.size(); ++cut) {
            INFO(cut);
            CHECK_FALSE(spool::decode(std::string_view(file).substr(0, cut)).ok());
        }
    }
    SECTION("an END length that is no plain number is refused, not wrapped around") {
        // "end -1" once matched the END line's own offset: the file decoded, its data the END line.
        std::string head = spool::encode_header(env);
        for (const char* end : {"end -1\n", "end 18446744073709551615\n", "end +0\n", "end  0\n"}) {
            INFO(end);
            CHECK_FALSE(spool::decode(head + end).ok());
        }
        CHECK_FALSE(spool::decode(head + "x\nend +1\n").ok());
        CHECK(spool::decode(head + "x\nend 1\n").ok());
    }
    SECTION("ESMTP parameter records survive, and a file without them reads as none") {
        spool::Envelope full = env;
        full.smtputf8 = true;
        full.body = "8BITMIME";
        full.ret = "HDRS";
        full.envid = "QQ+2B1";
        full.rcpt_dsn = {{"", ""}, {"SUCCESS,DELAY", "rfc822;y+2Bz@example.test"}};
        auto m2 = spool::decode(spool::encode_header(full) + data + spool::encode_trailer(data.size()));
        REQUIRE(m2.ok());
        const auto& e = m2->envelope;
        CHECK(e.recipients == env.recipients);
        CHECK(e.smtputf8);
        CHECK(e.body == "8BITMIME");
        CHECK(e.ret == "HDRS");
        CHECK(e.envid == "QQ+2B1");
        CHECK(e.dsn_of(0).notify.empty());
        CHECK(e.dsn_of(1).notify == "SUCCESS,DELAY");
        CHECK(e.dsn_of(1).orcpt == "rfc822;y+2Bz@example.test");
        CHECK(e.dsn_of(7).notify.empty());
        // As ferry-spool(5) shows: notify and orcpt follow their rcpt record.
        CHECK(spool::encode_header(full).find("rcpt y@example.test\nnotify SUCCESS,DELAY\norcpt rfc822;") !=
              std::string::npos);
        auto old = spool::decode("ferry-queue 1\nid 0123456789ABCDEF\nsender a@b.test\nrcpt x@example.test\ndata\nx\nend 1\n");
        REQUIRE(old.ok());
        CHECK_FALSE(old->envelope.smtputf8);
        CHECK(old->envelope.ret.empty());
        CHECK(old->envelope.dsn_of(0).notify.empty());
    }
    SECTION("a null sender survives") {
        env.sender.clear();
        auto m2 = spool::decode(spool::encode_header(env) + spool::encode_trailer(0));
        REQUIRE(m2.ok());
        CHECK(m2->envelope.sender.empty());
        CHECK(m2->data.empty());
    }
}

TEST_CASE("spool: queue ids are unique and fixed-length") {
    std::string a = spool::new_queue_id(), b = spool::new_queue_id();
    CHECK(a.size() == 16);
    CHECK(a != b);
}

namespace {

struct TempSpool {
    std::string path;
    TempSpool() {
        char tmpl[] = "/tmp/ferry-spool-XXXXXX";
        path = mkdtemp(tmpl);
        REQUIRE(spool::ensure_layout(path).ok());
    }
    ~TempSpool() { (void)!system(("rm -rf '" + path + "'").c_str()); }
};

using test::write_text;

using test::read_text;

using test::present;

using test::names_in;

using test::NoFreeFds;

spool::Envelope envelope() {
    spool::Envelope env;
    env.arrival = 1700000000;
    env.sender = "a@b.test";
    env.recipients = {"x@example.test"};
    return env;
}

}  // namespace

TEST_CASE("spool: read_bytes tells a missing or unreadable file from a corrupt one", "[spool]") {
    TempSpool dir;
    spool::Envelope env = envelope();
    env.id = "0123456789ABCDEF";
    std::string good = dir.path + "/good", bad = dir.path + "/bad";
    write_text(good, spool::encode_header(env) + "body\n" + spool::encode_trailer(5));
    write_text(bad, spool::encode_header(env) + "body\n");  // no END record

    SECTION("missing: no bytes and no error; read_file refuses it") {
        auto r = spool::read_bytes(dir.path + "/nope");
        REQUIRE(r.ok());
        CHECK_FALSE(r->has_value());
        CHECK_FALSE(spool::read_file(dir.path + "/nope").ok());
    }
    SECTION("corrupt: the bytes read fine, decode refuses them") {
        auto r = spool::read_bytes(bad);
        REQUIRE(r.ok());
        REQUIRE(r->has_value());
        CHECK_FALSE(spool::decode(**r).ok());
        auto f = spool::read_file(bad);
        REQUIRE_FALSE(f.ok());
        CHECK(f.error().what().find("corrupt queue file") != std::string::npos);
    }
    SECTION("a read error (EISDIR) is an error, not a corrupt file") {
        auto r = spool::read_bytes(dir.path + "/queue");
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().what().find("cannot read") != std::string::npos);
        CHECK(r.error().what().find("corrupt") == std::string::npos);
    }
    SECTION("out of descriptors (EMFILE) is an error; the same file reads once they are back") {
        std::optional<Result<std::optional<std::string>>> starved;
        {
            NoFreeFds hog;
            starved.emplace(spool::read_bytes(good));
        }
        REQUIRE_FALSE(starved->ok());
        CHECK(starved->error().what().find("Too many open files") != std::string::npos);
        auto m = spool::read_file(good);
        REQUIRE(m.ok());
        CHECK(m->data == "body\n");
    }
    if (geteuid() != 0) {
        SECTION("permission denied (EACCES) is an error") {
            chmod(good.c_str(), 0);
            auto r = spool::read_bytes(good);
            CHECK_FALSE(r.ok());
        }
    }
}

TEST_CASE("spool: commit never replaces a queue file with the same id", "[spool]") {
    TempSpool dir;
    spool::Envelope env = envelope();
    const std::string forced = "00000000000000AA";
    auto w = spool::Writer::create(dir.path, env, forced);
    REQUIRE(w.ok());
    REQUIRE(w->id() == forced);
    REQUIRE(env.id == forced);
    // Another message takes queue/<id> meanwhile (a clock stepped back, another writer).
    std::string other = dir.path + "/queue/" + forced;
    write_text(other, "the other message\n");
    REQUIRE(w->append("Subject: mine\n\nbody\n").ok());
    REQUIRE(w->commit().ok());

    CHECK(read_text(other) == "the other message\n");
    std::string id = w->id();
    CHECK(id != forced);
    CHECK(id.size() == forced.size());
    auto m = spool::read_file(dir.path + "/queue/" + id);
    REQUIRE(m.ok());
    CHECK(m->envelope.id == id);  // the id record follows the new name, and the checksum the id record
    CHECK(m->envelope.sender == "a@b.test");
    CHECK(m->data == "Subject: mine\n\nbody\n");
    auto opened = spool::open_message(dir.path + "/queue/" + id);
    REQUIRE(opened.ok());
    CHECK(opened->checksum.has_value());
    CHECK(spool::checksum_matches(*opened).value());
    CHECK(names_in(dir.path + "/incoming").empty());
    CHECK(names_in(dir.path + "/queue") == std::vector<std::string>{std::min(id, forced), std::max(id, forced)});
}

TEST_CASE("spool: create skips an id that is still in queue/", "[spool]") {
    TempSpool dir;
    const std::string forced = "00000000000000BB";
    write_text(dir.path + "/queue/" + forced, "queued\n");
    spool::Envelope env = envelope();
    auto w = spool::Writer::create(dir.path, env, forced);
    REQUIRE(w.ok());
    CHECK(w->id() != forced);
    CHECK(env.id == w->id());
    CHECK(names_in(dir.path + "/incoming") == std::vector<std::string>{w->id()});
}

TEST_CASE("spool: a moved-from Writer leaves the live file alone", "[spool]") {
    TempSpool dir;
    spool::Envelope env = envelope();
    auto w = spool::Writer::create(dir.path, env);
    REQUIRE(w.ok());
    std::string id = w->id();
    std::string path = dir.path + "/incoming/" + id;
    std::optional<spool::Writer> moved;
    {
        spool::Writer tmp(std::move(w.value()));  // w's destructor runs later, on a moved-from Writer
        moved.emplace(std::move(tmp));            // tmp's destructor runs here
    }
    CHECK(present(path));
    CHECK(moved->id() == id);
    // Move-assignment discards the target's own file first, then takes the source's.
    spool::Envelope env2 = envelope();
    auto second = spool::Writer::create(dir.path, env2);
    REQUIRE(second.ok());
    std::string second_path = dir.path + "/incoming/" + second->id();
    *second = std::move(*moved);
    CHECK_FALSE(present(second_path));
    CHECK(present(path));
    REQUIRE(second->append("x\n").ok());
    REQUIRE(second->commit().ok());
    CHECK(present(dir.path + "/queue/" + id));
    CHECK_FALSE(present(path));
}

TEST_CASE("spool: an incoming file is locked while its writer lives", "[spool]") {
    TempSpool dir;
    spool::Envelope env = envelope();
    auto w = spool::Writer::create(dir.path, env);
    REQUIRE(w.ok());
    std::string path = dir.path + "/incoming/" + w->id();
    auto live = spool::remove_abandoned(path);
    REQUIRE(live.ok());
    CHECK_FALSE(*live);
    CHECK(present(path));

    // A leftover nobody holds (its writer was killed) goes; so does a name already gone.
    std::string leftover = dir.path + "/incoming/00000000000000CC";
    write_text(leftover, "ferry-queue 1\nid 00000000000000CC\n");
    auto gone = spool::remove_abandoned(leftover);
    REQUIRE(gone.ok());
    CHECK(*gone);
    CHECK_FALSE(present(leftover));
    auto missing = spool::remove_abandoned(leftover);
    REQUIRE(missing.ok());
    CHECK(*missing);

    // The lock lasts to the end of commit: the writer's file is never seen unlocked in incoming/.
    REQUIRE(w->commit().ok());
    CHECK_FALSE(present(path));
    CHECK(present(dir.path + "/queue/" + w->id()));
}

TEST_CASE("spool: open_message decodes the envelope and leaves the data on disk, read in chunks") {
    test::TempDir dir;
    spool::Envelope env;
    env.id = "0123456789ABCDEF";
    env.sender = "a@b.test";
    env.recipients = {"x@example.test"};
    std::string data;
    for (int i = 0; data.size() < 100000; ++i) data += "line " + std::to_string(i) + "\nend 3\n";
    std::string file = spool::encode_header(env) + data + spool::encode_trailer(data.size());
    std::string path = dir.path + "/msg";
    test::write_text(path, file);

    auto m = spool::open_message(path);
    REQUIRE(m.ok());
    REQUIRE(m->status == spool::OpenedMessage::Status::ok);
    CHECK(m->envelope.recipients == env.recipients);
    CHECK(m->data.length == data.size());
    std::string back;
    char buf[7000];
    for (;;) {
        auto n = m->data.read(back.size(), buf, sizeof buf);
        REQUIRE(n.ok());
        if (*n == 0) break;
        back.append(buf, *n);
    }
    CHECK(back == data);

    SECTION("missing") {
        auto gone = spool::open_message(dir.path + "/nope");
        REQUIRE(gone.ok());
        CHECK(gone->status == spool::OpenedMessage::Status::missing);
    }
    SECTION("every truncation is corrupt, as decode says") {
        for (size_t cut : {size_t{0}, size_t{5}, size_t{40}, file.size() / 2, file.size() - 2, file.size() - 1}) {
            INFO(cut);
            test::write_text(path, file.substr(0, cut));
            auto t = spool::open_message(path);
            REQUIRE(t.ok());
            CHECK(t->status == spool::OpenedMessage::Status::corrupt);
            CHECK_FALSE(spool::decode(file.substr(0, cut)).ok());
        }
    }
    SECTION("a file cut after it was opened is a read error, not a short message") {
        REQUIRE(truncate(path.c_str(), static_cast<off_t>(file.size() / 2)) == 0);
        uint64_t at = 0;
        Result<size_t> r = m->data.read(at, buf, sizeof buf);
        while (r && *r > 0) {
            at += *r;
            r = m->data.read(at, buf, sizeof buf);
        }
        CHECK_FALSE(r.ok());
        CHECK(at == file.size() / 2 - (file.size() - data.size() - spool::encode_trailer(data.size()).size()));
    }
}

TEST_CASE("spool: a queue id never names a leftover in state/ or corrupt/", "[spool]") {
    TempSpool dir;
    REQUIRE(mkdir((dir.path + "/state").c_str(), 0750) == 0);
    REQUIRE(mkdir((dir.path + "/corrupt").c_str(), 0750) == 0);
    const std::string forced = "00000000000000DD";
    std::string leftover = GENERATE(std::string("state/00000000000000DD"), std::string("state/00000000000000DD.tmp"),
                                    std::string("corrupt/00000000000000DD"), std::string("corrupt/00000000000000DD.state"));
    CAPTURE(leftover);

    SECTION("create skips it") {
        write_text(dir.path + "/" + leftover, "old\n");
        spool::Envelope env = envelope();
        auto w = spool::Writer::create(dir.path, env, forced);
        REQUIRE(w.ok());
        CHECK(w->id() != forced);
        CHECK(env.id == w->id());
        REQUIRE(w->commit().ok());
        CHECK_FALSE(present(dir.path + "/queue/" + forced));
        CHECK(present(dir.path + "/queue/" + w->id()));
    }
    SECTION("commit renames the message when the leftover appears after create") {
        spool::Envelope env = envelope();
        auto w = spool::Writer::create(dir.path, env, forced);
        REQUIRE(w.ok());
        REQUIRE(w->id() == forced);
        write_text(dir.path + "/" + leftover, "old\n");
        REQUIRE(w->append("Subject: new\n\nbody\n").ok());
        REQUIRE(w->commit().ok());
        std::string id = w->id();
        CHECK(id != forced);
        CHECK(names_in(dir.path + "/queue") == std::vector<std::string>{id});
        CHECK(names_in(dir.path + "/incoming").empty());
        CHECK(read_text(dir.path + "/" + leftover) == "old\n");
        auto m = spool::read_file(dir.path + "/queue/" + id);
        REQUIRE(m.ok());
        CHECK(m->envelope.id == id);
        CHECK(m->data == "Subject: new\n\nbody\n");
    }
}

TEST_CASE("spool: queue ids never repeat or go back when the clock steps back", "[spool]") {
    std::string first = spool::new_queue_id();
    uint64_t now = std::stoull(first.substr(0, 13), nullptr, 16);
    std::string same = spool::new_queue_id(now);                      // the same microsecond again
    std::string back = spool::new_queue_id(now - 86400ULL * 1000000);  // a day back
    std::string again = spool::new_queue_id(now);
    CHECK(first < same);
    CHECK(same < back);
    CHECK(back < again);
    CHECK(first.substr(0, 13) != same.substr(0, 13));
    for (const auto& id : {same, back, again}) CHECK(id.size() == 16);
    // Later ids from the real clock still sort after every one of these.
    CHECK(again < spool::new_queue_id());
}

TEST_CASE("spool: a writer holds its lock on the queue file until the commit is decided", "[spool]") {
    TempSpool dir;
    spool::Envelope env = envelope();
    auto w = spool::Writer::create(dir.path, env);
    REQUIRE(w.ok());
    std::string queued = dir.path + "/queue/" + w->id();
    auto before = spool::writer_active(queued);
    REQUIRE(before.ok());
    CHECK_FALSE(*before);  // no such file
    auto incoming = spool::writer_active(dir.path + "/incoming/" + w->id());
    REQUIRE(incoming.ok());
    CHECK(*incoming);
    std::optional<bool> while_linked;
    REQUIRE(w->commit([&] {
        auto a = spool::writer_active(queued);
        if (a.ok()) while_linked = *a;
    }).ok());
    REQUIRE(while_linked.has_value());
    CHECK(*while_linked);  // qmgr would leave it alone here
    auto after = spool::writer_active(queued);
    REQUIRE(after.ok());
    CHECK_FALSE(*after);
}

TEST_CASE("spool: the commit in steps: synced is not queued, published is, settle decides", "[spool]") {
    TempSpool dir;
    spool::Envelope env = envelope();
    auto w = spool::Writer::create(dir.path, env);
    REQUIRE(w.ok());
    REQUIRE(w->append("Subject: steps\n\nbody\n").ok());
    std::string queued = dir.path + "/queue/" + w->id();
    std::string incoming = dir.path + "/incoming/" + w->id();
    REQUIRE(w->sync().ok());
    CHECK(access(queued.c_str(), F_OK) != 0);
    CHECK_FALSE(w->append("more").ok());  // the END record is written
    auto published = w->publish();
    REQUIRE(published.ok());
    CHECK(*published == dir.path + "/queue");
    CHECK(access(queued.c_str(), F_OK) == 0);
    CHECK(access(incoming.c_str(), F_OK) == 0);

    SECTION("a synced directory: accepted, the incoming name gone") {
        REQUIRE(w->settle(Result<void>()).ok());
        CHECK(access(incoming.c_str(), F_OK) != 0);
        auto m = spool::read_file(queued);
        REQUIRE(m.ok());
        CHECK(m->data == "Subject: steps\n\nbody\n");
    }
    SECTION("a failed directory fsync: the queue name goes again, the error stands") {
        auto r = w->settle(sys_error("fsync queue", EIO));
        CHECK_FALSE(r.ok());
        CHECK(access(queued.c_str(), F_OK) != 0);
        CHECK(access(incoming.c_str(), F_OK) != 0);
    }
}

TEST_CASE("spool: sync_linked links first, then fsyncs the file beside queue/", "[spool]") {
    TempSpool dir;
    spool::Envelope env = envelope();
    auto w = spool::Writer::create(dir.path, env);
    REQUIRE(w.ok());
    REQUIRE(w->append("Subject: linked\n\nbody\n").ok());
    std::string queued = dir.path + "/queue/" + w->id();
    std::string incoming = dir.path + "/incoming/" + w->id();

    SECTION("both fsyncs done: accepted, publish has nothing left, settle drops the incoming name") {
        GroupSync queue_dir(GroupSync::directory(dir.path + "/queue"));
        bool seen = false;
        REQUIRE(w->sync_linked(queue_dir, [&] {
                    // Whole (END record, checksum) and linked before either fsync.
                    seen = spool::read_file(queued).ok() && access(incoming.c_str(), F_OK) == 0 &&
                           queue_dir.syncs() == 0;
                }).ok());
        CHECK(seen);
        CHECK(queue_dir.syncs() == 1);
        auto more = w->publish();
        REQUIRE(more.ok());
        CHECK(more->empty());  // no directory left to fsync
        REQUIRE(w->settle(Result<void>()).ok());
        CHECK(access(incoming.c_str(), F_OK) != 0);
        auto m = spool::read_file(queued);
        REQUIRE(m.ok());
        CHECK(m->data == "Subject: linked\n\nbody\n");
    }
    SECTION("a failed fsync of queue/: the queue name goes again, the error stands") {
        GroupSync nowhere(GroupSync::directory(dir.path + "/no-such-directory"));
        auto r = w->sync_linked(nowhere);
        CHECK_FALSE(r.ok());
        CHECK(access(queued.c_str(), F_OK) != 0);
        CHECK(names_in(dir.path + "/queue").empty());
        w->discard();
        CHECK(names_in(dir.path + "/incoming").empty());
    }
    SECTION("twice is refused") {
        GroupSync queue_dir(GroupSync::directory(dir.path + "/queue"));
        REQUIRE(w->sync_linked(queue_dir).ok());
        CHECK_FALSE(w->sync_linked(queue_dir).ok());
    }
}

TEST_CASE("spool: sync_linked on an id taken meanwhile moves the message and its checksum", "[spool]") {
    TempSpool dir;
    spool::Envelope env = envelope();
    const std::string forced = "00000000000000AB";
    auto w = spool::Writer::create(dir.path, env, forced);
    REQUIRE(w.ok());
    write_text(dir.path + "/queue/" + forced, "the other message\n");
    REQUIRE(w->append("Subject: moved\n\nbody\n").ok());
    GroupSync queue_dir(GroupSync::directory(dir.path + "/queue"));
    REQUIRE(w->sync_linked(queue_dir).ok());
    REQUIRE(w->settle(Result<void>()).ok());
    CHECK(w->id() != forced);
    CHECK(read_text(dir.path + "/queue/" + forced) == "the other message\n");
    auto m = spool::read_file(dir.path + "/queue/" + w->id());  // decode checks the checksum
    REQUIRE(m.ok());
    CHECK(m->envelope.id == w->id());
    CHECK(m->data == "Subject: moved\n\nbody\n");
}

TEST_CASE("spool: late header fields are read before the data, from the queue file and by decode", "[spool]") {
    TempSpool dir;
    spool::Envelope env;
    env.sender = "a@b.test";
    env.recipients = {"x@example.test"};
    auto w = spool::Writer::create(dir.path, env);
    REQUIRE(w.ok());
    const std::string data = "Received: from x\nSubject: hi\n\nbody\n";
    const std::string late = "X-Spam-Score: 1000.0\nAuthentication-Results: h; dkim=pass\n";
    REQUIRE(w->append(data).ok());

    auto seen = w->reader();
    REQUIRE(seen.ok());
    std::string before(seen->length, '\0');
    REQUIRE(seen->read(0, before.data(), before.size()).ok());
    CHECK(before == data);  // a check reads the message as it arrived

    REQUIRE(w->add_header(late).ok());
    CHECK_FALSE(w->append("more\n").ok());  // no data after the late fields
    CHECK(w->size() == late.size() + data.size());
    REQUIRE(w->commit().ok());

    std::string path = dir.path + "/queue/" + w->id();
    auto m = spool::open_message(path);
    REQUIRE(m.ok());
    REQUIRE(m->status == spool::OpenedMessage::Status::ok);
    CHECK(m->data.length == late.size() + data.size());
    CHECK(m->data.late == late.size());
    // Read in pieces that straddle the join of the late fields and the data.
    std::string back;
    char buf[7];
    for (;;) {
        auto n = m->data.read(back.size(), buf, sizeof buf);
        REQUIRE(n.ok());
        if (*n == 0) break;
        back.append(buf, *n);
    }
    CHECK(back == late + data);
    auto d = spool::read_file(path);
    REQUIRE(d.ok());
    CHECK(d->data == late + data);

    SECTION("an END record whose lengths do not add up is corrupt") {
        std::string head = spool::encode_header(m->envelope);
        for (std::string trailer : {"\nend 3 4\n", "\nend 99 0\n", "\nend 5 -1\n", "\nend 5 \n", "\nend  5\n"}) {
            INFO(trailer);
            CHECK_FALSE(spool::decode(head + "abcde" + trailer).ok());
        }
        CHECK(spool::decode(head + "abcde" + "\nend 3 2\n").ok());
        CHECK(spool::decode(head + "abcde" + "\nend 3 2\n")->data == "deabc");
    }
}

TEST_CASE("spool: the END record's checksum tells a whole file from a torn or damaged one", "[spool]") {
    TempSpool dir;
    spool::Envelope env = envelope();
    auto w = spool::Writer::create(dir.path, env);
    REQUIRE(w.ok());
    const std::string data = "Subject: sum\n\nbody\n";
    const std::string late = "X-Spam-Score: 1.0\n";
    REQUIRE(w->append(data).ok());
    REQUIRE(w->add_header(late).ok());
    REQUIRE(w->commit().ok());
    std::string path = dir.path + "/queue/" + w->id();
    const std::string whole = read_text(path);
    size_t end_at = whole.rfind("\nend ");
    REQUIRE(end_at != std::string::npos);
    char sum[16];
    snprintf(sum, sizeof sum, "%08x", crc32c(0, std::string_view(whole).substr(0, end_at)));
    CHECK(whole.substr(end_at) == "\nend " + std::to_string(data.size()) + " " + std::to_string(late.size()) + " " +
                                       sum + "\n");  // every byte before the END record
    REQUIRE(spool::decode(whole).ok());
    auto opened = spool::open_message(path);
    REQUIRE(opened.ok());
    CHECK(opened->checksum.has_value());
    CHECK(spool::checksum_matches(*opened).value());

    // One byte changed in the envelope, the data or the late fields: the lengths still agree,
    // only the checksum tells. open_message reads no data and still opens it.
    for (const std::string& what : {std::string("a@b.test"), std::string("body"), std::string("1.0")}) {
        std::string bad = whole;
        size_t at = bad.find(what);
        REQUIRE(at < end_at);
        bad[at] ^= 0x20;
        auto d = spool::decode(bad);
        REQUIRE_FALSE(d.ok());
        CHECK(d.error().what().find("checksum") != std::string::npos);
        write_text(path, bad);
        auto m = spool::open_message(path);
        REQUIRE(m.ok());
        REQUIRE(m->status == spool::OpenedMessage::Status::ok);
        CHECK_FALSE(spool::checksum_matches(*m).value());
    }

    // Files written without a checksum are read as before, and have nothing to check.
    size_t data_at = whole.find("data\n") + 5;
    std::string body = whole.substr(data_at, end_at - data_at);
    for (const std::string& trailer : {spool::encode_trailer(body.size()), spool::encode_trailer(data.size(), late.size())}) {
        std::string old = whole.substr(0, end_at) + trailer;
        REQUIRE(spool::decode(old).ok());
        write_text(path, old);
        auto m = spool::open_message(path);
        REQUIRE(m.ok());
        CHECK_FALSE(m->checksum.has_value());
        CHECK(spool::checksum_matches(*m).value());
    }

    // A checksum field that is not 8 hex digits makes the END record bad.
    const std::string lengths = "\nend " + std::to_string(data.size()) + " " + std::to_string(late.size()) + " ";
    for (const char* field : {"1234567", "123456789", "1234567g", "-1234567", "", "12345678 9"}) {
        auto d = spool::decode(whole.substr(0, end_at) + lengths + field + "\n");
        CHECK_FALSE(d.ok());
    }
    // A file cut short of what its END record says is not whole either.
    write_text(path, whole);
    auto m = spool::open_message(path);
    REQUIRE(m.ok());
    REQUIRE(truncate(path.c_str(), 10) == 0);
    CHECK_FALSE(spool::checksum_matches(*m).value());
}

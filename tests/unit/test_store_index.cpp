// Unit tests of the per-folder mailbox index: UIDs, sync with the Maildir, flags, cache, compaction, crashes.
#include <catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "common/store/index.hpp"
#include "common/store/maildir.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;
using namespace ferry::store;
using test::TempDir;

namespace {

std::string deliver(const std::string& md, const std::string& text = "Subject: x\n\nbody\n") {
    auto name = maildir::deliver(md, text);
    REQUIRE(name);
    return *name;
}

std::string base_of(const std::string& name) { return maildir::parse_name(name)->base; }

std::string index_path(const std::string& md) { return md + "/" + kIndexFile; }

void check_ascending(const Index& ix) {
    std::set<std::string> bases;
    for (size_t i = 0; i < ix.messages().size(); ++i) {
        const auto& m = ix.messages()[i];
        if (i > 0) REQUIRE(ix.messages()[i - 1].uid < m.uid);
        REQUIRE(m.uid < ix.uidnext());
        REQUIRE(m.modseq <= ix.highest_modseq());
        REQUIRE(bases.insert(m.base).second);
    }
}

// Every message file of the Maildir has exactly one UID in the index.
void check_matches_maildir(const Index& ix, const std::string& md) {
    std::set<std::string> on_disk;
    for (const char* sub : {"/new", "/cur"})
        for (const auto& n : test::names_in(md + sub)) on_disk.insert(base_of(n));
    std::set<std::string> indexed;
    for (const auto& m : ix.messages()) indexed.insert(m.base);
    CHECK(indexed == on_disk);
}

template <typename F>
bool wait_until(F f, int ms = 10000) {
    for (int i = 0; i < ms / 5; ++i) {
        if (f()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return f();
}

}  // namespace

TEST_CASE("store index: a new folder starts at UID 1 and sync numbers what is there", "[store]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    auto ix = Index::open(md);
    REQUIRE(ix);
    CHECK(ix->uidvalidity() != 0);
    CHECK(ix->uidnext() == 1);
    CHECK(ix->messages().empty());
    std::string a = deliver(md), b = deliver(md), c = deliver(md);
    auto s = ix->sync();
    REQUIRE(s);
    CHECK(s->added == 3);
    REQUIRE(ix->messages().size() == 3);
    CHECK(ix->uidnext() == 4);
    CHECK(ix->highest_modseq() == 3);
    check_ascending(*ix);
    check_matches_maildir(*ix, md);
    // Another process opening it sees the same UIDs; a second sync finds nothing to do.
    auto again = Index::open(md);
    REQUIRE(again);
    CHECK(again->uidvalidity() == ix->uidvalidity());
    for (size_t i = 0; i < 3; ++i) CHECK(again->messages()[i].base == ix->messages()[i].base);
    auto s2 = again->sync();
    REQUIRE(s2);
    CHECK(s2->added + s2->expunged + s2->changed == 0);
}

TEST_CASE("store index: new base names get UIDs in mtime order, then by name", "[store]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    REQUIRE(maildir::ensure(md));
    const char* names[] = {"300.a.host", "100.z.host", "200.b.host", "100.y.host"};
    int64_t mtimes[] = {3000, 1000, 2000, 1000};
    for (size_t i = 0; i < 4; ++i) {
        std::string p = md + "/new/" + names[i];
        test::write_text(p, "x\n");
        struct timeval tv[2] = {{mtimes[i], 0}, {mtimes[i], 0}};
        REQUIRE(utimes(p.c_str(), tv) == 0);
    }
    auto ix = Index::open(md);
    REQUIRE(ix);
    REQUIRE(ix->sync());
    std::vector<std::string> order;
    for (const auto& m : ix->messages()) order.push_back(m.base);
    CHECK(order == std::vector<std::string>{"100.y.host", "100.z.host", "200.b.host", "300.a.host"});
}

TEST_CASE("store index: names of one mtime tick get UIDs in the order they were made, past a power of ten", "[store]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    REQUIRE(maildir::ensure(md));
    // Three deliveries within one tick of the file system's clock, the microseconds crossing 100000
    // and the counter crossing 10: as text these would sort 2, 3, 1.
    const char* names[] = {"1700000000.M99998P42Q9.host", "1700000000.M100001P42Q10.host",
                           "1700000000.M100001P42Q11.host"};
    for (const char* n : names) {
        std::string p = md + "/new/" + n;
        test::write_text(p, "x\n");
        struct timespec ts[2] = {{1700000000, 5000}, {1700000000, 5000}};
        REQUIRE(utimensat(AT_FDCWD, p.c_str(), ts, 0) == 0);
    }
    auto ix = Index::open(md);
    REQUIRE(ix);
    REQUIRE(ix->sync());
    std::vector<std::string> order;
    for (const auto& m : ix->messages()) order.push_back(m.base);
    CHECK(order == std::vector<std::string>(std::begin(names), std::end(names)));
    auto listed = maildir::list(md);
    REQUIRE(listed);
    std::vector<std::string> listed_order;
    for (const auto& e : *listed) listed_order.push_back(e.name);
    CHECK(listed_order == std::vector<std::string>(std::begin(names), std::end(names)));
}

TEST_CASE("store index: files added, renamed and removed behind the index are picked up", "[store]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    auto ix = Index::open(md);
    REQUIRE(ix);
    std::string a = deliver(md), b = deliver(md), c = deliver(md);
    REQUIRE(ix->sync());
    uint32_t uid_c = ix->messages()[2].uid;
    uint64_t ms = ix->highest_modseq();
    // mutt reads a and flags it; popd deletes c; another MDA delivers d.
    REQUIRE(rename((md + "/new/" + a).c_str(), (md + "/cur/" + a + ":2,FS").c_str()) == 0);
    REQUIRE(unlink((md + "/new/" + c).c_str()) == 0);
    std::string d = deliver(md);
    auto s = ix->sync();
    REQUIRE(s);
    CHECK(s->added == 1);
    CHECK(s->expunged == 1);
    CHECK(s->changed == 1);
    REQUIRE(ix->messages().size() == 3);
    CHECK(ix->messages()[0].flags == "FS");
    CHECK(ix->messages()[0].modseq > ms);
    CHECK(ix->messages()[0].file == "cur/" + a + ":2,FS");
    CHECK(ix->find(uid_c) == nullptr);
    // The expunged UID is never given again: d comes after it.
    CHECK(ix->messages()[2].base == base_of(d));
    CHECK(ix->messages()[2].uid > uid_c);
    CHECK(ix->highest_modseq() == ms + 3);
    // Expunging the highest UID leaves UIDNEXT where it was.
    uint32_t next = ix->uidnext();
    REQUIRE(unlink((md + "/new/" + d).c_str()) == 0);
    REQUIRE(ix->sync());
    CHECK(ix->uidnext() == next);
    auto reopened = Index::open(md);
    REQUIRE(reopened);
    CHECK(reopened->uidnext() == next);
    check_matches_maildir(*reopened, md);
}

namespace {

// Sets the mtime of new/ and cur/ to one moment long past: a listing older than the clock's granularity.
void settle_dirs(const std::string& md) {
    struct timespec times[2] = {{1700000000, 0}, {1700000000, 0}};
    for (const char* sub : {"/new", "/cur"}) REQUIRE(utimensat(AT_FDCWD, (md + sub).c_str(), times, 0) == 0);
}

}  // namespace

TEST_CASE("store index: a sync with settled directories skips the listing, and any change ends that", "[store]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    auto ix = Index::open(md);
    REQUIRE(ix);
    std::string a = deliver(md), b = deliver(md);
    settle_dirs(md);
    REQUIRE(ix->sync());
    REQUIRE(ix->messages().size() == 2);
    // A name put in while the directory keeps its mtime is not listed: the listing was skipped.
    std::string c = deliver(md);
    settle_dirs(md);
    auto s = ix->sync();
    REQUIRE(s);
    CHECK(s->added == 0);
    // A rename (mutt flagging a message) changes cur/'s mtime: the next sync lists again, and finds c too.
    REQUIRE(rename((md + "/new/" + a).c_str(), (md + "/cur/" + a + ":2,S").c_str()) == 0);
    s = ix->sync();
    REQUIRE(s);
    CHECK(s->changed == 1);
    CHECK(s->added == 1);
    // Just listed with fresh mtimes: not trusted, so a delivery right after is seen at once.
    std::string d = deliver(md);
    s = ix->sync();
    REQUIRE(s);
    CHECK(s->added == 1);
    // A removal behind the index, once settled again, also shows.
    settle_dirs(md);
    REQUIRE(ix->sync());
    REQUIRE(unlink((md + "/new/" + b).c_str()) == 0);
    s = ix->sync();
    REQUIRE(s);
    CHECK(s->expunged == 1);
    check_matches_maildir(*ix, md);
}

TEST_CASE("store index: flag changes rename the file and bump MODSEQ; keywords live in the index", "[store]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    auto ix = Index::open(md);
    REQUIRE(ix);
    std::string a = deliver(md), b = deliver(md);
    REQUIRE(ix->sync());
    uint32_t ua = ix->messages()[0].uid, ub = ix->messages()[1].uid;
    std::vector<uint32_t> both{ua, ub};
    auto ch = ix->store_flags(both, FlagMode::add, "S", {"$Label1", "Work"});
    REQUIRE(ch);
    CHECK(ch->size() == 2);
    CHECK(test::present(md + "/cur/" + a + ":2,S"));
    CHECK(ix->find(ua)->modseq == ix->highest_modseq() - 1);
    CHECK(ix->keywords() == std::vector<std::string>{"$Label1", "Work"});
    CHECK(ix->find(ub)->keywords == std::vector<uint32_t>{0, 1});
    // Storing what is already there changes nothing.
    uint64_t ms = ix->highest_modseq();
    auto none = ix->store_flags(both, FlagMode::add, "S", {"work"});
    REQUIRE(none);
    CHECK(none->empty());
    CHECK(ix->highest_modseq() == ms);
    std::vector<uint32_t> one{ua};
    REQUIRE(ix->store_flags(one, FlagMode::replace, "TF", {}));
    CHECK(test::present(md + "/cur/" + a + ":2,FT"));
    CHECK(ix->find(ua)->keywords.empty());
    REQUIRE(ix->store_flags(one, FlagMode::remove, "F", {}));
    CHECK(ix->find(ua)->flags == "T");
    CHECK(flag_letter("\\seen") == 'S');
    CHECK(flag_letter("\\Recent") == '\0');
    CHECK(std::string(imap_flag('T')) == "\\Deleted");
    // Another process sees it all, and the name agrees with the index at its next sync.
    auto other = Index::open(md);
    REQUIRE(other);
    CHECK(other->find(ua)->flags == "T");
    CHECK(other->find(ub)->flags == "S");
    CHECK(other->keywords().size() == 2);
    auto s = other->sync();
    REQUIRE(s);
    CHECK(s->changed == 0);
    // Expunge removes the file and the UID.
    auto gone = other->expunge(one);
    REQUIRE(gone);
    CHECK(gone->size() == 1);
    CHECK_FALSE(test::present(md + "/cur/" + a + ":2,T"));
    REQUIRE(ix->refresh());
    CHECK(ix->find(ua) == nullptr);
    CHECK(ix->messages().size() == 1);
}

TEST_CASE("store index: a flag change finds a file another reader renamed", "[store]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    auto ix = Index::open(md);
    REQUIRE(ix);
    std::string a = deliver(md);
    REQUIRE(ix->sync());
    REQUIRE(rename((md + "/new/" + a).c_str(), (md + "/cur/" + a + ":2,R").c_str()) == 0);
    uint32_t ua = ix->messages()[0].uid;
    REQUIRE(ix->store_flags(std::vector<uint32_t>{ua}, FlagMode::add, "S"));
    CHECK(test::names_in(md + "/cur") == std::vector<std::string>{a + ":2,RS"});  // mutt's R stays
    CHECK(ix->find(ua)->flags == "RS");
    CHECK(ix->open_message(ua));
}

TEST_CASE("store index: cached values by UID survive reopening and compaction", "[store]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    auto ix = Index::open(md);
    REQUIRE(ix);
    deliver(md);
    deliver(md);
    REQUIRE(ix->sync());
    uint32_t u = ix->messages()[1].uid;
    std::string env = "(\"date\" \"subject with spaces\" NIL)\r\n";
    REQUIRE(ix->set_cache(u, "envelope", env));
    REQUIRE(ix->set_cache(u, "size", "1234"));
    REQUIRE(ix->set_cache(u, "size", "1235"));
    CHECK(*ix->cache(u, "size") == "1235");
    CHECK(!ix->cache(u, "bodystructure"));
    REQUIRE(ix->compact());
    auto other = Index::open(md);
    REQUIRE(other);
    REQUIRE(other->cache(u, "envelope"));
    CHECK(*other->cache(u, "envelope") == env);
    CHECK(*other->cache(u, "size") == "1235");
}

TEST_CASE("store index: cached values live in their own file, which opening never reads", "[store]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    auto ix = Index::open(md);
    REQUIRE(ix);
    deliver(md);
    REQUIRE(ix->sync());
    uint32_t u = ix->messages()[0].uid;
    std::string index_before = test::read_text(index_path(md));
    REQUIRE(ix->set_cache(u, "envelope", "(NIL \"x\")"));
    CHECK(test::read_text(index_path(md)) == index_before);  // the index and its watchers do not see cache writes
    std::string cache_path = md + "/" + kCacheFile;
    REQUIRE(unlink(cache_path.c_str()) == 0);
    REQUIRE(mkdir(cache_path.c_str(), 0700) == 0);  // unreadable as a file: opening and syncing must not care
    auto other = Index::open(md);
    REQUIRE(other);
    REQUIRE(other->sync());
    CHECK(other->messages().size() == 1);
    CHECK(!other->cache(u, "envelope"));
    REQUIRE(rmdir(cache_path.c_str()) == 0);
    // A missing file is simply made again by the next write.
    REQUIRE(other->set_cache(u, "envelope", "again"));
    REQUIRE(ix->sync());
    CHECK(*ix->cache(u, "envelope") == "again");
}

TEST_CASE("store index: a torn or damaged cache file loses values only, and is repaired by the next write", "[store]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    auto ix = Index::open(md);
    REQUIRE(ix);
    for (int i = 0; i < 3; ++i) deliver(md);
    REQUIRE(ix->sync());
    std::vector<uint32_t> uids;
    for (auto& m : ix->messages()) uids.push_back(m.uid);
    for (uint32_t u : uids) REQUIRE(ix->set_cache(u, "k", "value of " + std::to_string(u)));
    std::string cache_path = md + "/" + kCacheFile;
    std::string whole = test::read_text(cache_path);
    uint32_t validity = ix->uidvalidity();
    // A writer killed in its write: half a record at the end.
    {
        std::ofstream out(cache_path, std::ios::app | std::ios::binary);
        out << whole.substr(whole.rfind('\n', whole.size() - 2) + 1, 20);
    }
    auto reader = Index::open(md);
    REQUIRE(reader);
    for (uint32_t u : uids) CHECK(*reader->cache(u, "k") == "value of " + std::to_string(u));
    REQUIRE(reader->set_cache(uids[0], "k2", "v"));
    CHECK(test::read_text(cache_path).size() > whole.size());
    CHECK(test::read_text(cache_path).substr(0, whole.size()) == whole);  // cut, then appended
    // A flipped byte inside the second value: that value is gone, the others stay.
    std::string damaged = test::read_text(cache_path);
    size_t at = damaged.find("value of " + std::to_string(uids[1]));
    REQUIRE(at != std::string::npos);
    damaged[at] = 'V';
    test::write_text(cache_path, damaged);
    auto third = Index::open(md);
    REQUIRE(third);
    CHECK(*third->cache(uids[0], "k") == "value of " + std::to_string(uids[0]));
    CHECK(!third->cache(uids[1], "k"));
    CHECK(*third->cache(uids[2], "k") == "value of " + std::to_string(uids[2]));
    CHECK(*third->cache(uids[0], "k2") == "v");
    CHECK(third->uidvalidity() == validity);  // cache damage never touches the index
}

TEST_CASE("store index: an index with cache records of an earlier version is compacted without them", "[store]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    auto ix = Index::open(md);
    REQUIRE(ix);
    deliver(md);
    REQUIRE(ix->sync());
    uint32_t u = ix->messages()[0].uid;
    uint32_t validity = ix->uidvalidity();
    Record c;
    c.type = RecordType::cache;
    c.uidnext = ix->uidnext();
    c.highest_modseq = ix->highest_modseq();
    c.uid = u;
    c.key = "imap.info.1";
    c.value = "old value";
    {
        std::ofstream out(index_path(md), std::ios::app | std::ios::binary);
        out << encode(c);
    }
    auto reopened = Index::open(md);
    REQUIRE(reopened);
    CHECK(reopened->uidvalidity() == validity);
    CHECK(reopened->messages().size() == 1);
    CHECK(test::read_text(index_path(md)).find("old%20value") == std::string::npos);
    CHECK(!reopened->cache(u, "imap.info.1"));
}

TEST_CASE("store index: a new UIDVALIDITY drops the cache of the old UIDs", "[store]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    auto ix = Index::open(md);
    REQUIRE(ix);
    deliver(md);
    deliver(md);
    REQUIRE(ix->sync());
    uint32_t u2 = ix->messages()[1].uid;
    REQUIRE(ix->set_cache(u2, "k", "second"));
    uint32_t old_validity = ix->uidvalidity();
    REQUIRE(unlink(index_path(md).c_str()) == 0);  // made again: new UIDVALIDITY, UIDs given afresh
    auto fresh = Index::open(md, old_validity);
    REQUIRE(fresh);
    REQUIRE(fresh->sync());
    REQUIRE(fresh->uidvalidity() != old_validity);
    for (auto& m : fresh->messages()) CHECK(!fresh->cache(m.uid, "k"));
    // A value computed under the old UIDVALIDITY is not written for the new one.
    CacheValue late{u2, "k", "late", old_validity};
    REQUIRE(fresh->set_cache(std::span<const CacheValue>(&late, 1)));
    CHECK(!fresh->cache(u2, "k"));
}

TEST_CASE("store index: the log is compacted into a snapshot, and readers follow", "[store]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    auto ix = Index::open(md);
    REQUIRE(ix);
    for (int i = 0; i < 5; ++i) deliver(md);
    REQUIRE(ix->sync());
    auto reader = Index::open(md);
    REQUIRE(reader);
    struct stat before;
    REQUIRE(stat(index_path(md).c_str(), &before) == 0);
    std::vector<uint32_t> uids;
    for (auto& m : ix->messages()) uids.push_back(m.uid);
    for (int i = 0; i < 300; ++i) REQUIRE(ix->store_flags(uids, i % 2 ? FlagMode::remove : FlagMode::add, "F"));
    struct stat after;
    REQUIRE(stat(index_path(md).c_str(), &after) == 0);
    CHECK(after.st_ino != before.st_ino);  // replaced by a rename
    CHECK(ix->records() < 1100);
    CHECK(ix->highest_modseq() == 5 + 300 * 5);
    REQUIRE(reader->refresh());
    CHECK(reader->highest_modseq() == ix->highest_modseq());
    CHECK(reader->uidvalidity() == ix->uidvalidity());
    REQUIRE(reader->messages().size() == 5);
    for (size_t i = 0; i < 5; ++i) {
        CHECK(reader->messages()[i].uid == ix->messages()[i].uid);
        CHECK(reader->messages()[i].modseq == ix->messages()[i].modseq);
        CHECK(reader->messages()[i].flags == ix->messages()[i].flags);
    }
}

TEST_CASE("store index: a torn last record is cut and nothing acknowledged is lost", "[store]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    auto ix = Index::open(md);
    REQUIRE(ix);
    std::string a = deliver(md);
    REQUIRE(ix->sync());
    uint32_t ua = ix->messages()[0].uid;
    std::string before = test::read_text(index_path(md));
    uint32_t next_before = ix->uidnext();
    // The flag change is acknowledged; the delivery after it is what a crash cuts.
    std::string with_flag;
    {
        REQUIRE(ix->store_flags(std::vector<uint32_t>{ua}, FlagMode::add, "S"));
        with_flag = test::read_text(index_path(md));
    }
    std::string b = deliver(md);
    REQUIRE(append_delivered(md, b));
    std::string full = test::read_text(index_path(md));
    REQUIRE(full.size() > with_flag.size());
    for (size_t cut = with_flag.size() + 1; cut < full.size(); ++cut) {
        test::write_text(index_path(md), full.substr(0, cut));
        auto re = Index::open(md);
        REQUIRE(re);
        INFO("cut at " << cut);
        CHECK(re->find(ua)->flags == "S");
        CHECK(re->uidnext() == next_before);
        CHECK(test::read_text(index_path(md)) == with_flag);  // the torn bytes are gone
        auto s = re->sync();
        REQUIRE(s);
        CHECK(s->added == 1);  // the delivery itself was not lost: sync numbers it
        check_ascending(*re);
        check_matches_maildir(*re, md);
    }
    (void)before;
}

TEST_CASE("store index: damage inside the file gives a new UIDVALIDITY and loses no message", "[store]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    uint32_t validity = 0;
    {
        auto ix = Index::open(md);
        REQUIRE(ix);
        for (int i = 0; i < 4; ++i) deliver(md);
        REQUIRE(ix->sync());
        REQUIRE(ix->store_flags(std::vector<uint32_t>{1}, FlagMode::add, "S"));
        validity = ix->uidvalidity();
    }
    std::string data = test::read_text(index_path(md));
    size_t second = data.find('\n') + 1;
    data[second + 30] ^= 0x04;  // inside the first append record
    test::write_text(index_path(md), data);
    auto re = Index::open(md);
    REQUIRE(re);
    CHECK(re->uidvalidity() > validity);
    REQUIRE(re->sync());
    CHECK(re->messages().size() == 4);
    check_ascending(*re);
    check_matches_maildir(*re, md);
}

TEST_CASE("store index: ferry-mda's append reads the tail only and never rewrites the file", "[store]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    auto ix = Index::open(md);
    REQUIRE(ix);
    std::string a = deliver(md);
    REQUIRE(ix->sync());
    struct stat before;
    REQUIRE(stat(index_path(md).c_str(), &before) == 0);
    std::string b = deliver(md);
    auto u = append_delivered(md, b);
    REQUIRE(u);
    CHECK(*u == 2);
    struct stat after;
    REQUIRE(stat(index_path(md).c_str(), &after) == 0);
    CHECK(after.st_ino == before.st_ino);
    CHECK(after.st_size > before.st_size);
    REQUIRE(ix->refresh());
    CHECK(ix->messages().size() == 2);
    CHECK(ix->messages()[1].base == base_of(b));
    // A sync racing the delivery numbered it first: the second append leaves it alone.
    std::string c = deliver(md);
    REQUIRE(ix->sync());
    uint32_t uc = ix->messages().back().uid;
    REQUIRE(append_delivered(md, c));
    REQUIRE(ix->refresh());
    CHECK(ix->messages().back().uid == uc);
    CHECK(ix->messages().size() == 3);
    CHECK(ix->uidnext() == uc + 2);  // the UID that append took stays unused
    // With no index yet, the first delivery creates it.
    std::string md2 = t.path + "/Other";
    std::string d = deliver(md2);
    auto ud = append_delivered(md2, d);
    REQUIRE(ud);
    CHECK(*ud == 1);
}

TEST_CASE("store index: a batch of deliveries gets consecutive UIDs in its order from one append", "[store]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    auto ix = Index::open(md);
    REQUIRE(ix);
    deliver(md);
    REQUIRE(ix->sync());
    std::vector<std::string> batch = {deliver(md), deliver(md), deliver(md)};
    auto uids = append_delivered(md, batch);
    REQUIRE(uids);
    CHECK(*uids == std::vector<uint32_t>{2, 3, 4});
    REQUIRE(ix->refresh());
    REQUIRE(ix->messages().size() == 4);
    for (size_t i = 0; i < batch.size(); ++i) {
        CHECK(ix->messages()[i + 1].base == base_of(batch[i]));
        CHECK(ix->messages()[i + 1].uid == i + 2);
    }
    CHECK(ix->uidnext() == 5);
    check_matches_maildir(*ix, md);
    // With no index yet, the batch creates it, numbered in its order.
    std::string md2 = t.path + "/Other";
    std::vector<std::string> first = {deliver(md2), deliver(md2)};
    auto u2 = append_delivered(md2, first);
    REQUIRE(u2);
    CHECK(*u2 == std::vector<uint32_t>{1, 2});
    CHECK(append_delivered(md2, std::vector<std::string>{})->empty());
}

// The lock file's mark after ferry-mda's append (ferry-mailstore(5), DURABILITY).
std::string lock_text(const std::string& md) { return test::read_text(md + "/" + kIndexLockFile); }

std::string mark_of(const std::string& md, uint64_t offset) {
    struct stat st;
    REQUIRE(::stat(index_path(md).c_str(), &st) == 0);
    char buf[64];
    std::snprintf(buf, sizeof buf, "unsynced %016llx %016llx\n", static_cast<unsigned long long>(st.st_ino),
                  static_cast<unsigned long long>(offset));
    return buf;
}

TEST_CASE("store index: ferry-mda's append is not synced, and the first reader syncs before it uses the UIDs",
          "[store]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    auto ix = Index::open(md);
    REQUIRE(ix);
    deliver(md);
    REQUIRE(ix->sync());
    int reader_syncs = 0;
    set_pause_hook([&](const char* point) { reader_syncs += std::string(point) == "index-reader-sync"; });
    // Unhooked however the test ends: a failed REQUIRE must not leave a hook on this frame's counter.
    struct Unhook {
        ~Unhook() { set_pause_hook(nullptr); }
    } unhook;
    CHECK(lock_text(md).empty());

    uint64_t before = test::read_text(index_path(md)).size();
    std::string b = deliver(md);
    REQUIRE(append_delivered(md, b));
    CHECK(lock_text(md) == mark_of(md, before));  // the first record that may not be on disk
    REQUIRE(ix->refresh());
    CHECK(reader_syncs == 1);
    CHECK(ix->messages().size() == 2);
    CHECK(lock_text(md).empty());  // synced: no other reader syncs for it again
    REQUIRE(Index::open(md));
    CHECK(reader_syncs == 1);

    // Two appends before any reader: the mark keeps the first one's offset, one sync covers both.
    before = test::read_text(index_path(md)).size();
    std::string c = deliver(md), d = deliver(md);
    REQUIRE(append_delivered(md, c));
    REQUIRE(append_delivered(md, d));
    CHECK(lock_text(md) == mark_of(md, before));
    auto fresh = Index::open(md);
    REQUIRE(fresh);
    CHECK(reader_syncs == 2);
    CHECK(fresh->messages().size() == 4);
    REQUIRE(ix->refresh());
    CHECK(reader_syncs == 2);
    CHECK(ix->messages().size() == 4);

    // A writer catching up syncs too; a mark naming another file (the index was compacted) costs nothing.
    std::string e = deliver(md);
    REQUIRE(append_delivered(md, e));
    REQUIRE(ix->store_flags(std::vector<uint32_t>{1}, FlagMode::add, "S"));
    CHECK(reader_syncs == 3);
    CHECK(ix->find(5) != nullptr);
    REQUIRE(ix->compact());
    std::string f = deliver(md);
    REQUIRE(append_delivered(md, f));
    std::string mark = lock_text(md);
    REQUIRE(ix->compact());  // syncs what it reads first, then replaces the file
    CHECK(reader_syncs == 4);
    test::write_text(md + "/" + kIndexLockFile, mark);  // names the file before the compaction
    REQUIRE(Index::open(md));
    CHECK(reader_syncs == 4);
    check_ascending(*ix);
    check_matches_maildir(*ix, md);
}

TEST_CASE("store index: an append that never reached the disk (a NUL tail) is cut like a torn record", "[store]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    auto ix = Index::open(md);
    REQUIRE(ix);
    deliver(md);
    REQUIRE(ix->sync());
    REQUIRE(ix->store_flags(std::vector<uint32_t>{1}, FlagMode::add, "S"));
    uint32_t validity = ix->uidvalidity();
    std::string synced = test::read_text(index_path(md));
    std::string b = deliver(md);
    REQUIRE(append_delivered(md, b));
    std::string full = test::read_text(index_path(md));
    // After a crash the unsynced append reads as zeros, wholly or from some point of it on.
    for (size_t keep : {synced.size(), synced.size() + 5, full.size() - 1}) {
        INFO("record bytes kept " << keep - synced.size());
        test::write_text(index_path(md), full.substr(0, keep) + std::string(full.size() + 100 - keep, '\0'));
        auto re = Index::open(md);
        REQUIRE(re);
        CHECK(re->uidvalidity() == validity);
        CHECK(re->find(1)->flags == "S");
        CHECK(test::read_text(index_path(md)) == synced);
        auto s = re->sync();
        REQUIRE(s);
        CHECK(s->added == 1);  // the delivery itself is numbered again
        check_matches_maildir(*re, md);
        test::write_text(index_path(md), synced);
    }
    // NULs followed by anything else are damage, not a lost append.
    test::write_text(index_path(md), synced + std::string(30, '\0') + std::string(30, 'x'));
    auto re = Index::open(md);
    REQUIRE(re);
    CHECK(re->uidvalidity() > validity);
}

TEST_CASE("store index: opening a 100,000-message folder reads the index, not the messages", "[store][slow]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    std::vector<std::string> names;
    for (int i = 0; i < 100000; ++i) names.push_back(std::to_string(1700000000 + i) + ".M1P1Q" + std::to_string(i) + ".host,S=10,W=11:2,S");
    {
        auto ix = Index::open(md);
        REQUIRE(ix);
        auto uids = ix->add(names);
        REQUIRE(uids);
        CHECK(uids->back() == 100000);
    }
    // No message file exists: what open returns can only come from the index (its speed is a
    // benchmark's business, not this test's).
    auto ix = Index::open(md);
    REQUIRE(ix);
    CHECK(ix->messages().size() == 100000);
    CHECK(ix->messages().back().flags == "S");
    // One more delivery appends one record to the same file: no rewrite of the index.
    struct stat before;
    REQUIRE(stat(index_path(md).c_str(), &before) == 0);
    std::string n = deliver(md);
    REQUIRE(append_delivered(md, n));
    struct stat after;
    REQUIRE(stat(index_path(md).c_str(), &after) == 0);
    CHECK(after.st_ino == before.st_ino);
    CHECK(static_cast<size_t>(after.st_size - before.st_size) < 200);
}

TEST_CASE("store index: SIGKILL of a writer at any point reuses no UID and loses no message", "[store][slow]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    REQUIRE(Index::open(md));
    std::map<uint32_t, std::string> seen;  // every UID -> base any view showed
    for (int round = 0; round < 8; ++round) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            auto ix = Index::open(md);
            for (int i = 0;; ++i) {
                auto name = maildir::deliver(md, "Subject: crash\n\nx\n");
                if (name) (void)append_delivered(md, *name);
                if (ix && !ix->messages().empty()) {
                    std::vector<uint32_t> u{ix->messages()[i % ix->messages().size()].uid};
                    (void)ix->store_flags(u, i % 2 ? FlagMode::add : FlagMode::remove, "S");
                    if (i % 7 == 0) (void)ix->expunge(u);
                }
                if (ix) (void)ix->sync();
            }
        }
        auto watch = Index::open(md);
        REQUIRE(watch);
        uint32_t start_next = watch->uidnext();
        // Let the child get going, then kill it at whatever point it has reached.
        CHECK(wait_until([&] { return watch->refresh() && watch->uidnext() > start_next + 3 + round; }));
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        for (const auto& m : watch->messages()) seen.emplace(m.uid, m.base);
        auto re = Index::open(md);
        REQUIRE(re);
        REQUIRE(re->sync());
        check_ascending(*re);
        check_matches_maildir(*re, md);
        CHECK(re->uidnext() >= watch->uidnext());
        for (const auto& m : re->messages()) {
            auto [it, fresh] = seen.emplace(m.uid, m.base);
            INFO("UID " << m.uid);
            CHECK(it->second == m.base);  // a UID never names another message
        }
    }
}

TEST_CASE("store index: several processes append, flag and expunge at once and agree", "[store][slow]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    REQUIRE(Index::open(md));
    std::string report = t.path + "/report";
    constexpr int kWorkers = 4;
    std::vector<pid_t> pids;
    for (int w = 0; w < kWorkers; ++w) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            int bad = 0;
            std::string out;
            auto ix = Index::open(md);
            for (int i = 0; ix && i < 40; ++i) {
                auto name = maildir::deliver(md, "Subject: w\n\nx\n");
                if (!name) ++bad;
                auto uid = name ? append_delivered(md, *name) : Result<uint32_t>(Error{});
                if (uid) out += std::to_string(*uid) + " " + maildir::parse_name(*name)->base + "\n";
                if (!ix->sync()) ++bad;
                const auto& ms = ix->messages();
                for (size_t k = 1; k < ms.size(); ++k)
                    if (ms[k - 1].uid >= ms[k].uid) ++bad;
                if (!ms.empty()) {
                    std::vector<uint32_t> u{ms[(i * 7 + w) % ms.size()].uid};
                    if (!ix->store_flags(u, FlagMode::add, i % 2 ? "F" : "S", {"k" + std::to_string(w)})) ++bad;
                    if (i % 5 == w % 5 && !ix->expunge(u)) ++bad;
                }
            }
            test::write_text(report + std::to_string(w), out);
            _exit(bad == 0 && ix ? 0 : 1);
        }
        pids.push_back(pid);
    }
    for (pid_t pid : pids) {
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    }
    std::map<uint32_t, std::string> given;
    for (int w = 0; w < kWorkers; ++w) {
        std::istringstream in(test::read_text(report + std::to_string(w)));
        uint32_t uid;
        std::string base;
        while (in >> uid >> base) {
            auto [it, fresh] = given.emplace(uid, base);
            INFO("UID " << uid);
            CHECK(it->second == base);  // no UID went to two messages
        }
    }
    CHECK(given.size() == kWorkers * 40);
    auto ix = Index::open(md);
    REQUIRE(ix);
    auto s = ix->sync();
    REQUIRE(s);
    CHECK(s->added + s->expunged + s->changed == 0);  // every change went through the index
    check_ascending(*ix);
    check_matches_maildir(*ix, md);
    for (const auto& m : ix->messages()) {
        // A sync that numbered a delivery before ferry-mda's append leaves that append's UID unused.
        auto it = given.find(m.uid);
        if (it != given.end()) CHECK(it->second == m.base);
    }
}

TEST_CASE("store index: a holder of the lock that dies blocks nobody", "[store]") {
    TempDir t;
    std::string md = t.path + "/Maildir";
    REQUIRE(Index::open(md));
    int ready[2];
    REQUIRE(pipe(ready) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int fd = open((md + "/" + kIndexLockFile).c_str(), O_RDWR);
        if (fd < 0 || flock(fd, LOCK_EX) != 0) _exit(1);
        (void)!write(ready[1], "L", 1);
        pause();
        _exit(0);
    }
    char c = 0;
    REQUIRE(read(ready[0], &c, 1) == 1);
    int probe = open((md + "/" + kIndexLockFile).c_str(), O_RDWR);
    CHECK(flock(probe, LOCK_EX | LOCK_NB) != 0);  // held by the child now
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    CHECK(flock(probe, LOCK_EX | LOCK_NB) == 0);   // gone with it
    flock(probe, LOCK_UN);
    close(probe);
    close(ready[0]);
    close(ready[1]);
    deliver(md);
    auto ix = Index::open(md);
    REQUIRE(ix);
    REQUIRE(ix->sync());
    CHECK(ix->messages().size() == 1);
}

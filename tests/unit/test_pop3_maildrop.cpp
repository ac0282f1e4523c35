// Unit tests of the POP3 maildrop: lock, snapshot, marks, renames by other readers and UPDATE.
#include <catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "common/store/index.hpp"
#include "common/store/maildir.hpp"
#include "popd/maildrop.hpp"
#include "popd/response.hpp"

using namespace ferry;
using namespace ferry::pop3;

namespace {

struct TempMaildir {
    std::string root, path;
    TempMaildir() {
        char tmpl[] = "/tmp/ferry-pop3-XXXXXX";
        root = mkdtemp(tmpl);
        path = root + "/example.test/demo/Maildir";
    }
    ~TempMaildir() { (void)system(("rm -rf '" + root + "'").c_str()); }
    std::string deliver(const std::string& text) {
        auto name = maildir::deliver(path, text, "host");
        REQUIRE(name.ok());
        return *name;
    }
};

std::string base_of(const std::string& name) { return name.substr(0, name.find_first_of(",:")); }

// What RETR sends for a stored message before the terminating ".\r\n", byte-stuffing undone.
uint64_t octets_sent(const std::string& stored) {
    std::string sent = encode_message(stored);
    sent.resize(sent.size() - 3);
    uint64_t stuffed = (!sent.empty() && sent[0] == '.') ? 1 : 0;
    for (size_t at = sent.find("\r\n."); at != std::string::npos; at = sent.find("\r\n.", at + 3)) ++stuffed;
    return sent.size() - stuffed;
}

}  // namespace

TEST_CASE("pop3 maildrop: one session per maildrop, the lock goes with the session", "[pop3]") {
    TempMaildir md;
    md.deliver("Subject: 1\n\none\n");
    LockSet locks;
    {
        auto a = Maildrop::open(md.path, locks);
        REQUIRE(a.ok());
        CHECK(a->size() == 1);
        auto b = Maildrop::open(md.path, locks);
        REQUIRE_FALSE(b.ok());
        CHECK(b.error().enhanced == kInUse);
        // Another process's (or another set's) attempt is refused by the flock itself.
        LockSet other;
        auto c = Maildrop::open(md.path, other);
        REQUIRE_FALSE(c.ok());
        CHECK(c.error().enhanced == kInUse);
    }
    CHECK_FALSE(locks.contains(md.path));
    CHECK(Maildrop::open(md.path, locks).ok());
}

TEST_CASE("pop3 maildrop: sizes, UIDLs, a snapshot that ignores later deliveries", "[pop3]") {
    TempMaildir md;
    std::string n1 = md.deliver("Subject: 1\n\none\n");
    LockSet locks;
    auto drop = Maildrop::open(md.path, locks);
    REQUIRE(drop.ok());
    md.deliver("Subject: 2\n\ntwo\n");
    REQUIRE(drop->size() == 1);
    CHECK(drop->messages()[0].base == base_of(n1));
    CHECK(drop->messages()[0].uidl == base_of(n1));
    CHECK(drop->messages()[0].vsize == maildir::crlf_size("Subject: 1\n\none\n"));
    auto [n, octets] = drop->totals();
    CHECK(n == 1);
    CHECK(octets == 19);  // 16 bytes, 3 LF
}

TEST_CASE("pop3 maildrop: DELE marks, RSET unmarks, UPDATE removes", "[pop3]") {
    TempMaildir md;
    md.deliver("a\n");
    md.deliver("b\n");
    md.deliver("c\n");
    LockSet locks;
    {
        auto drop = Maildrop::open(md.path, locks);
        REQUIRE(drop.ok());
        drop->find(1)->deleted = true;
        CHECK(drop->find(1) == nullptr);
        CHECK(drop->totals().first == 2);
        drop->reset();
        CHECK(drop->totals().first == 3);
        drop->find(2)->deleted = true;
        // Dropped without commit (a lost connection): nothing happens.
    }
    {
        auto drop = Maildrop::open(md.path, locks);
        REQUIRE(drop.ok());
        REQUIRE(drop->size() == 3);
        drop->find(2)->deleted = true;
        auto r = drop->commit(false);
        CHECK(r.removed == 1);
        CHECK(r.failed == 0);
    }
    auto drop = Maildrop::open(md.path, locks);
    REQUIRE(drop.ok());
    CHECK(drop->size() == 2);
}

TEST_CASE("pop3 maildrop: a message renamed by an IMAP reader is still read and deleted", "[pop3]") {
    TempMaildir md;
    std::string name = md.deliver("Subject: r\n\nrenamed\n");
    LockSet locks;
    auto drop = Maildrop::open(md.path, locks);
    REQUIRE(drop.ok());
    // Another reader moves it to cur/ and sets flags.
    std::string moved = md.path + "/cur/" + name + ":2,S";
    REQUIRE(rename((md.path + "/new/" + name).c_str(), moved.c_str()) == 0);
    MaildropMessage* m = drop->find(1);
    REQUIRE(m);
    auto data = drop->read(*m);
    REQUIRE(data.ok());
    CHECK(*data == "Subject: r\n\nrenamed\n");
    REQUIRE(rename(moved.c_str(), (md.path + "/cur/" + name + ":2,RS").c_str()) == 0);
    m->deleted = true;
    auto r = drop->commit(false);
    CHECK(r.removed == 1);
    CHECK(access((md.path + "/cur/" + name + ":2,RS").c_str(), F_OK) != 0);
}

TEST_CASE("pop3 maildrop: a message already removed elsewhere counts as deleted", "[pop3]") {
    TempMaildir md;
    std::string name = md.deliver("x\n");
    LockSet locks;
    auto drop = Maildrop::open(md.path, locks);
    REQUIRE(drop.ok());
    REQUIRE(unlink((md.path + "/new/" + name).c_str()) == 0);
    auto data = drop->read(*drop->find(1));
    CHECK_FALSE(data.ok());
    drop->find(1)->deleted = true;
    auto r = drop->commit(false);
    CHECK(r.removed == 1);
    CHECK(r.failed == 0);
}

TEST_CASE("pop3 maildrop: EXPIRE 0 removes retrieved messages at UPDATE", "[pop3]") {
    TempMaildir md;
    md.deliver("x\n");
    md.deliver("y\n");
    LockSet locks;
    {
        auto drop = Maildrop::open(md.path, locks);
        REQUIRE(drop.ok());
        drop->find(2)->retrieved = true;
        CHECK(drop->commit(true).removed == 1);
    }
    auto drop = Maildrop::open(md.path, locks);
    REQUIRE(drop.ok());
    CHECK(drop->size() == 1);
}

TEST_CASE("pop3 maildrop: a removal that fails is reported", "[pop3]") {
    TempMaildir md;
    std::string name = md.deliver("x\n");
    LockSet locks;
    auto drop = Maildrop::open(md.path, locks);
    REQUIRE(drop.ok());
    drop->find(1)->deleted = true;
    // unlink(2) of a directory fails (EISDIR) even for root: stands in for EIO or EACCES.
    std::string path = md.path + "/new/" + name;
    REQUIRE(unlink(path.c_str()) == 0);
    REQUIRE(mkdir(path.c_str(), 0700) == 0);
    auto r = drop->commit(false);
    CHECK(r.failed == 1);
    CHECK(r.removed == 0);
}

TEST_CASE("pop3 maildrop: UIDLs are base names, valid RFC 1939 unique-ids, stable across renames", "[pop3]") {
    TempMaildir md;
    std::string n1 = md.deliver("x\n");
    // Names of other MDAs: no S=/W=; one whose base is over 70 characters; one with a space in it.
    std::string long_base = "1700000000.M1P1." + std::string(60, 'h');
    std::string spaced = "1700000001.M1P1.a host";
    for (const auto& n : {long_base + ",S=2", spaced})
        REQUIRE(system(("printf 'y\\n' > '" + md.path + "/new/" + n + "'").c_str()) == 0);
    LockSet locks;
    std::vector<std::string> first;
    {
        auto drop = Maildrop::open(md.path, locks);
        REQUIRE(drop.ok());
        REQUIRE(drop->size() == 3);
        for (const auto& m : drop->messages()) {
            INFO(m.base);
            CHECK(m.uidl.size() >= 1);
            CHECK(m.uidl.size() <= kMaxUidlLength);
            for (char c : m.uidl) CHECK((c >= 0x21 && c <= 0x7E));
            first.push_back(m.uidl);
        }
        std::set<std::string> distinct(first.begin(), first.end());
        CHECK(distinct.size() == 3);
        CHECK(std::count(first.begin(), first.end(), base_of(n1)) == 1);
    }
    // Another reader moves every message to cur/ and sets flags: the UIDLs stay.
    REQUIRE(system(("cd '" + md.path + "' && for f in new/*; do mv \"$f\" \"cur/${f#new/}:2,S\"; done").c_str()) == 0);
    auto drop = Maildrop::open(md.path, locks);
    REQUIRE(drop.ok());
    REQUIRE(drop->size() == 3);
    std::vector<std::string> again;
    for (const auto& m : drop->messages()) again.push_back(m.uidl);
    std::sort(first.begin(), first.end());
    std::sort(again.begin(), again.end());
    CHECK(again == first);
    // And a message found again by its base name after a rename is read.
    for (size_t i = 1; i <= drop->size(); ++i) CHECK(drop->read(*drop->find(i)).ok());
}

TEST_CASE("pop3 maildrop: uidl_for at the RFC 1939 limits", "[pop3]") {
    CHECK(uidl_for("1700000000.M1P2Q3.host") == "1700000000.M1P2Q3.host");
    std::string at_limit(kMaxUidlLength, 'u');
    CHECK(uidl_for(at_limit) == at_limit);
    for (const std::string& bad : {at_limit + "u", std::string("a b"), std::string("a\x7f"), std::string("\x01"),
                                   std::string("caf\xc3\xa9"), std::string()}) {
        std::string u = uidl_for(bad);
        INFO(bad);
        CHECK(u.size() == 17);
        CHECK(u[0] == 'H');
        CHECK(u.find_first_not_of("0123456789abcdef", 1) == std::string::npos);
        CHECK(u == uidl_for(bad));  // the same in every session
    }
    CHECK(uidl_for(at_limit + "u") != uidl_for(at_limit + "v"));
}

TEST_CASE("pop3 maildrop: sizes are the octets RETR sends, also without W= and without a final LF", "[pop3]") {
    TempMaildir md;
    md.deliver("Subject: a\n\nbody\n");
    REQUIRE(maildir::ensure(md.path).ok());
    const std::string plain[] = {"Subject: b\n\nno final newline", "Subject: c\n\nbare CR at the end\r",
                                 "Subject: d\r\n\r\n.dot\r\nlast", "", "ends well\n"};
    int i = 0;
    for (const auto& text : plain) {
        std::string path = md.path + "/new/17000000" + std::to_string(10 + i++) + ".M1P1.other";
        FILE* f = fopen(path.c_str(), "wb");
        REQUIRE(f);
        REQUIRE(fwrite(text.data(), 1, text.size(), f) == text.size());
        fclose(f);
    }
    LockSet locks;
    auto drop = Maildrop::open(md.path, locks);
    REQUIRE(drop.ok());
    REQUIRE(drop->size() == 6);
    uint64_t total = 0;
    for (size_t n = 1; n <= drop->size(); ++n) {
        MaildropMessage* m = drop->find(n);
        auto data = drop->read(*m);
        REQUIRE(data.ok());
        INFO(*data);
        CHECK(m->vsize == octets_sent(*data));
        total += octets_sent(*data);
    }
    CHECK(drop->totals().second == total);
}

TEST_CASE("pop3 maildrop: UPDATE keeps the mailbox index true", "[pop3][store]") {
    TempMaildir md;
    md.deliver("a\n");
    std::string b = md.deliver("b\n");
    md.deliver("c\n");
    auto ix = store::Index::open(md.path);
    REQUIRE(ix.ok());
    REQUIRE(ix->sync().ok());
    uint64_t modseq = ix->highest_modseq();
    LockSet locks;
    {
        auto drop = Maildrop::open(md.path, locks);
        REQUIRE(drop.ok());
        for (size_t i = 1; i <= drop->size(); ++i)
            if (drop->find(i)->base == base_of(b)) drop->find(i)->deleted = true;
        CHECK(drop->commit(false).removed == 1);
    }
    // Read without a sync of our own: popd recorded the expunge.
    REQUIRE(ix->refresh().ok());
    REQUIRE(ix->messages().size() == 2);
    for (const auto& m : ix->messages()) CHECK(m.base != base_of(b));
    CHECK(ix->highest_modseq() == modseq + 1);
    CHECK(ix->uidnext() == 4);
}

TEST_CASE("pop3 maildrop: a scan holds the lock until it is adopted or dropped", "[pop3]") {
    TempMaildir md;
    md.deliver("Subject: 1\n\none\n");
    md.deliver("Subject: 2\n\ntwo\n");
    LockSet locks;
    {
        auto scan = Maildrop::scan(md.path);  // what a worker thread does at login
        REQUIRE(scan.ok());
        CHECK(scan->messages.size() == 2);
        CHECK_FALSE(locks.contains(md.path));  // the set is the loop's: a scan never touches it
        auto second = Maildrop::scan(md.path);
        REQUIRE_FALSE(second.ok());
        CHECK(second.error().enhanced == kInUse);
        auto drop = Maildrop::adopt(std::move(scan.value()), locks);
        REQUIRE(drop.ok());
        CHECK(locks.contains(md.path));
        CHECK(drop->totals().first == 2);
        CHECK(Maildrop::open(md.path, locks).error().enhanced == kInUse);
    }
    CHECK_FALSE(locks.contains(md.path));
    { auto dropped = Maildrop::scan(md.path); REQUIRE(dropped.ok()); }  // a session gone before adopting it
    CHECK(Maildrop::open(md.path, locks).ok());
}

TEST_CASE("pop3 maildrop: open_file follows a rename in a copy of the message only", "[pop3]") {
    TempMaildir md;
    std::string name = md.deliver("Subject: 1\n\none\n");
    LockSet locks;
    auto drop = Maildrop::open(md.path, locks);
    REQUIRE(drop.ok());
    MaildropMessage copy = drop->messages()[0];
    std::string before = copy.path;
    REQUIRE(::rename(before.c_str(), (md.path + "/cur/" + name + ":2,S").c_str()) == 0);
    auto fd = Maildrop::open_file(md.path, copy);
    REQUIRE(fd.ok());
    CHECK(copy.path == md.path + "/cur/" + name + ":2,S");
    CHECK(drop->messages()[0].path == before);
}

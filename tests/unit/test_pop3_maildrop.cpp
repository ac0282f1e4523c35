// Unit tests of the POP3 maildrop: lock, snapshot, marks, renames by other readers and UPDATE.
#include <catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/maildir.hpp"
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

std::string unique_of(const std::string& name) { return name.substr(0, name.find(':')); }

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
    CHECK(drop->messages()[0].unique == unique_of(n1));
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

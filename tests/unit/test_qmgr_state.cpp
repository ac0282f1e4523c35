// Unit tests of qmgr's recipient state file: round trip, limits, and refusal of incomplete files.
#include <catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "common/spool/state.hpp"

using namespace ferry;
using qmgr::RcptStatus;

namespace {

qmgr::MessageState sample() {
    qmgr::MessageState s;
    s.id = "0123456789ABCDEF";
    s.rcpts.push_back({0, RcptStatus::delivered, 0, 0, "team@example.test", "ann@example.test", "250 2.0.0 Ok"});
    s.rcpts.push_back({0, RcptStatus::failed, 0, 0, "team@example.test", "bob@example.test", "550 5.1.1 no such user"});
    s.rcpts.push_back({1, RcptStatus::deferred, 3, 1700000900, "x@remote.test", "x@remote.test",
                       "no relay transport configured"});
    s.rcpts.push_back({2, RcptStatus::queued, 0, 0, "p@example.test", "p@example.test", ""});
    return s;
}

}  // namespace

TEST_CASE("qmgr state: encode and decode round trip", "[qmgr]") {
    auto s = sample();
    std::string text = qmgr::encode_state(s);
    auto d = qmgr::decode_state(text);
    REQUIRE(d.ok());
    CHECK(d->id == s.id);
    REQUIRE(d->rcpts.size() == 4);
    for (size_t i = 0; i < 4; ++i) {
        INFO(i);
        CHECK(d->rcpts[i].index == s.rcpts[i].index);
        CHECK(d->rcpts[i].status == s.rcpts[i].status);
        CHECK(d->rcpts[i].attempts == s.rcpts[i].attempts);
        CHECK(d->rcpts[i].next_try == s.rcpts[i].next_try);
        CHECK(d->rcpts[i].orig == s.rcpts[i].orig);
        CHECK(d->rcpts[i].to == s.rcpts[i].to);
        CHECK(d->rcpts[i].reply == s.rcpts[i].reply);
    }
    CHECK_FALSE(d->all_final());
    CHECK(d->has_index(2));
    CHECK_FALSE(d->has_index(3));
    CHECK(qmgr::encode_state(*d) == text);

    SECTION("every truncation is refused") {
        for (size_t cut = 0; cut < text.size(); ++cut) {
            INFO(cut);
            CHECK_FALSE(qmgr::decode_state(std::string_view(text).substr(0, cut)).ok());
        }
    }
    SECTION("data after END is refused") { CHECK_FALSE(qmgr::decode_state(text + "rcpt\t0\n").ok()); }
}

TEST_CASE("qmgr state: TAB, CR and LF in values cannot forge records", "[qmgr]") {
    qmgr::MessageState s;
    s.id = "AB";
    s.rcpts.push_back({0, RcptStatus::failed, 1, 0, "a@b.test", "a@b.test", "550 bad\r\nend 0\trcpt"});
    auto d = qmgr::decode_state(qmgr::encode_state(s));
    REQUIRE(d.ok());
    REQUIRE(d->rcpts.size() == 1);
    CHECK(d->rcpts[0].reply == "550 bad  end 0 rcpt");
}

TEST_CASE("qmgr state: newer records and extra fields are ignored", "[qmgr]") {
    std::string text =
        "ferry-state 1\nid AB\nwarned 1700000000\n"
        "rcpt\t0\tdeferred\t2\t99\ta@b.test\tc@b.test\t451 later\tdsn-notified\n"
        "end 1\n";
    auto d = qmgr::decode_state(text);
    REQUIRE(d.ok());
    CHECK(d->rcpts.at(0).to == "c@b.test");
    CHECK(d->rcpts.at(0).reply == "451 later");
}

TEST_CASE("qmgr state: malformed files are refused", "[qmgr]") {
    const char* cases[] = {
        "",
        "ferry-state 2\nid AB\nend 0\n",
        "ferry-state 1\nend 0\n",                                               // no id
        "ferry-state 1\nid AB\nend 1\n",                                        // count mismatch
        "ferry-state 1\nid AB\nrcpt\t0\tdone\t0\t0\ta@b\ta@b\nend 1\n",          // 7 fields
        "ferry-state 1\nid AB\nrcpt\tx\tdone\t0\t0\ta@b\ta@b\t\nend 1\n",        // bad index
        "ferry-state 1\nid AB\nrcpt\t0\tsent\t0\t0\ta@b\ta@b\t\nend 1\n",        // bad status
        "ferry-state 1\nid AB\nrcpt\t0\tdone\t-1\t0\ta@b\ta@b\t\nend 1\n",       // negative attempts
        "ferry-state 1\nid AB\nrcpt\t0\tdone\t0\tsoon\ta@b\ta@b\t\nend 1\n",     // bad time
        "ferry-state 1\nid AB\nrcpt\t0\tdone\t0\t0\t\ta@b\t\nend 1\n",           // empty orig
        "ferry-state 1\nid AB\nend 0",                                          // no final LF
    };
    for (const char* c : cases) {
        INFO(c);
        CHECK_FALSE(qmgr::decode_state(c).ok());
    }
}

TEST_CASE("qmgr state: record length limit", "[qmgr]") {
    // A state file whose one rcpt record is exactly `len` bytes long.
    auto make = [](size_t len) {
        std::string line = "rcpt\t0\tdeferred\t1\t0\ta@b\ta@b\t";
        line += std::string(len - line.size(), 'r');
        return "ferry-state 1\nid AB\n" + line + "\nend 1\n";
    };
    CHECK(qmgr::decode_state(make(qmgr::kMaxStateLine)).ok());
    CHECK_FALSE(qmgr::decode_state(make(qmgr::kMaxStateLine + 1)).ok());

    qmgr::MessageState s;
    s.id = "AB";
    s.rcpts.push_back({0, RcptStatus::deferred, 1, 0, std::string(100000, 'o'), std::string(100000, 't'),
                       std::string(100000, 'r')});
    auto d = qmgr::decode_state(qmgr::encode_state(s));
    REQUIRE(d.ok());  // encode cuts fields so that what it writes always decodes
    CHECK(d->rcpts[0].reply.size() == qmgr::kMaxReplyText);
}

TEST_CASE("qmgr state: atomic write and read back", "[qmgr]") {
    char tmpl[] = "/tmp/ferry-qmgr-state-XXXXXX";
    REQUIRE(mkdtemp(tmpl));
    std::string dir = tmpl;
    auto missing = qmgr::read_state(dir + "/NOPE");
    REQUIRE(missing.ok());
    CHECK_FALSE(missing->has_value());

    auto s = sample();
    REQUIRE(qmgr::write_state(dir, s).ok());
    CHECK(access((dir + "/" + s.id + ".tmp").c_str(), F_OK) != 0);
    auto back = qmgr::read_state(dir + "/" + s.id);
    REQUIRE(back.ok());
    REQUIRE(back->has_value());
    CHECK((*back)->rcpts.size() == 4);

    SECTION("a truncated file on disk is refused") {
        std::string text = qmgr::encode_state(s);
        std::ofstream(dir + "/" + s.id, std::ios::binary | std::ios::trunc) << text.substr(0, text.size() - 3);
        CHECK_FALSE(qmgr::read_state(dir + "/" + s.id).ok());
    }
    unlink((dir + "/" + s.id).c_str());
    rmdir(dir.c_str());
}

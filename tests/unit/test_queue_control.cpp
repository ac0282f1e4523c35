// Unit tests of the queue tools' pieces: qmgr's control lines, the held record of the state file, the listing.
#include <catch.hpp>

#include "common/proto/qmgr.hpp"
#include "common/spool/queue_listing.hpp"
#include "common/spool/state.hpp"
#include "mta/qmgr/pickup.hpp"

namespace qp = ferry::proto::qmgr;
using namespace ferry;

TEST_CASE("qmgr control: lines decode to their commands", "[qmgr]") {
    struct Case {
        const char* line;
        qp::Message::Type type;
        const char* arg;
    };
    for (const Case& c : {Case{"FLUSH", qp::Message::flush, ""}, Case{"FLUSH example.org", qp::Message::flush, "example.org"},
                          Case{"HOLD 0123ABCD", qp::Message::hold, "0123ABCD"},
                          Case{"RELEASE 0123ABCD", qp::Message::release, "0123ABCD"},
                          Case{"DELETE 0123ABCD", qp::Message::remove, "0123ABCD"},
                          Case{"REQUEUE 0123ABCD extra", qp::Message::requeue, "0123ABCD"}}) {
        INFO(c.line);
        auto m = qp::decode(c.line);
        REQUIRE(m.ok());
        CHECK(m->type == c.type);
        CHECK(m->id == c.arg);
    }
    CHECK(qp::encode_control(qp::Message::remove, "AB12") == "DELETE AB12\n");
    CHECK(qp::encode_control(qp::Message::flush, "") == "FLUSH\n");
    for (const char* bad : {"HOLD", "HOLD ../x", "DELETE a/b", "RELEASE", "REQUEUE x-y"}) {
        INFO(bad);
        CHECK_FALSE(qp::decode(bad).ok());
    }
}

TEST_CASE("qmgr control: replies round trip; an unknown status is an error", "[qmgr]") {
    for (auto st : {qp::Reply::ok, qp::Reply::unknown, qp::Reply::busy, qp::Reply::error}) {
        std::string line = qp::encode_reply({st, "some text\nwith a newline"});
        REQUIRE(line.back() == '\n');
        CHECK(line.find('\n') == line.size() - 1);
        auto r = qp::decode_reply(line.substr(0, line.size() - 1));
        CHECK(r.status == st);
        CHECK(r.text == "some text with a newline");
    }
    CHECK(qp::decode_reply("WHAT now").status == qp::Reply::error);
}

TEST_CASE("qmgr state: the held record round trips; files without it are not held", "[qmgr]") {
    qmgr::MessageState s{"ABC123", {}};
    s.held = 1700000000;
    s.rcpts.push_back(qmgr::RcptState{0, qmgr::RcptStatus::deferred, 1, 1700000100, "a@x.test", "a@x.test", "451 busy"});
    auto text = qmgr::encode_state(s);
    CHECK(text.find("\nheld 1700000000\n") != std::string::npos);
    auto back = qmgr::decode_state(text);
    REQUIRE(back.ok());
    CHECK(back->held == 1700000000);
    s.held = 0;
    auto plain = qmgr::decode_state(qmgr::encode_state(s));
    REQUIRE(plain.ok());
    CHECK(plain->held == 0);
    // An older file (no held record) loads; a broken one does not.
    CHECK(qmgr::decode_state("ferry-state 1\nid X1\nend 0\n").ok());
    CHECK_FALSE(qmgr::decode_state("ferry-state 1\nid X1\nheld soon\nend 0\n").ok());
}

TEST_CASE("queue listing: held mark, recipient states and last replies", "[qmgr]") {
    spool::QueueEntry e;
    e.envelope.id = "0123456789ABCDEF";
    e.envelope.arrival = 1700000000;
    e.envelope.sender = "";
    e.envelope.recipients = {"a@far.test", "b@x.test"};
    e.size = 2048;
    e.state = qmgr::MessageState{"0123456789ABCDEF", {}};
    e.state->held = 1700000050;
    e.state->rcpts.push_back(qmgr::RcptState{0, qmgr::RcptStatus::deferred, 2, 1700000100, "a@far.test", "a@far.test",
                                             "no relay transport configured"});
    std::string out = spool::format_listing({e});
    CHECK(out.find("0123456789ABCDEF!") != std::string::npos);
    CHECK(out.find("<>") != std::string::npos);
    CHECK(out.find("deferred  a@far.test, 2 attempts: no relay transport configured") != std::string::npos);
    CHECK(out.find("queued  b@x.test") != std::string::npos);
    CHECK(out.find("-- 2 Kbytes in 1 Request.") != std::string::npos);
    CHECK(spool::format_listing({}) == "Mail queue is empty\n");
}

TEST_CASE("local submission: the Received header records uid and user, one recipient named", "[qmgr]") {
    qmgr::LocalUser u{1000, "alice"};
    std::string one = qmgr::local_received_header(u, "mx.test", "ABC123", {"bob@x.test"}, 1700000000);
    CHECK(one.rfind("Received: from local (uid 1000, user alice)\n\tby mx.test (ferry-sendmail) id ABC123\n"
                    "\tfor <bob@x.test>; ", 0) == 0);
    CHECK(one.back() == '\n');
    std::string two = qmgr::local_received_header(u, "mx.test", "ABC123", {"a@x", "b@x"}, 1700000000);
    CHECK(two.find("for <") == std::string::npos);
    CHECK(two.find("id ABC123; ") != std::string::npos);
    // A user name cannot end the comment or add a line.
    qmgr::LocalUser odd{7, "ev)il\nX-Forged: 1"};
    std::string h = qmgr::local_received_header(odd, "mx.test", "Q1", {"a@x"}, 1700000000);
    CHECK(h.find("X-Forged: 1") == std::string::npos);
    CHECK(h.find("(uid 7, user ev?il?X-Forged:?1)") != std::string::npos);
}

// Unit tests of what mailq shows a local user through ferry-qmgr's submit_socket (XQUEUE).
#include <catch.hpp>

#include "mta/qmgr/pickup.hpp"

using namespace ferry;

namespace {

spool::QueueEntry entry(const char* id, const char* client, const char* helo) {
    spool::QueueEntry e;
    e.envelope.id = id;
    e.envelope.arrival = 1700000000;
    e.envelope.sender = "someone@mx.test";
    e.envelope.client = client;
    e.envelope.helo = helo;
    e.envelope.recipients = {"far@far.test"};
    e.size = 1000;
    return e;
}

}  // namespace

TEST_CASE("local submission: a message is the user's only when submitted locally under that uid", "[qmgr]") {
    CHECK(qmgr::submitted_by(entry("A", "local", "uid 1000").envelope, 1000));
    CHECK_FALSE(qmgr::submitted_by(entry("A", "local", "uid 1000").envelope, 100));
    CHECK_FALSE(qmgr::submitted_by(entry("A", "local", "uid 10000").envelope, 1000));
    // An SMTP client may say anything in HELO: it is never a local user's message.
    CHECK_FALSE(qmgr::submitted_by(entry("A", "127.0.0.1", "uid 1000").envelope, 1000));
}

TEST_CASE("local submission: mailq shows a user its own messages, root and mail_user the whole queue", "[qmgr]") {
    std::vector<spool::QueueEntry> q = {entry("AAAA1", "local", "uid 1000"), entry("BBBB2", "local", "uid 1001"),
                                        entry("CCCC3", "127.0.0.1", "uid 1000")};
    std::string mine = qmgr::listing_for(q, 1000, false);
    CHECK(mine.find("AAAA1") != std::string::npos);
    CHECK(mine.find("BBBB2") == std::string::npos);
    CHECK(mine.find("CCCC3") == std::string::npos);
    CHECK(mine.find("-- 1 Kbytes in 1 Request.\n") != std::string::npos);
    CHECK(mine.find("\n(2 messages of other senders not shown: ") != std::string::npos);
    std::string none = qmgr::listing_for(q, 1002, false);
    CHECK(none.rfind("Mail queue is empty\n(3 messages of other senders not shown: ", 0) == 0);
    std::string all = qmgr::listing_for(q, 0, true);
    CHECK(all == spool::format_listing(q));
    CHECK(qmgr::listing_for({}, 1000, false) == "Mail queue is empty\n");
}

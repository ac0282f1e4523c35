// Unit tests of the queue file format: round trip, and refusal of incomplete files.
#include <catch.hpp>

#include "common/spool.hpp"

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

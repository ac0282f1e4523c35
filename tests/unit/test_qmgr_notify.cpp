// Unit tests of the smtpd-to-qmgr notify protocol (common/proto/qmgr.hpp): what decodes and what not.
#include <catch.hpp>

#include "common/proto/qmgr.hpp"

namespace qp = ferry::proto::qmgr;

TEST_CASE("qmgr notify: lines decode as the protocol header says", "[qmgr]") {
    auto v = qp::decode("VERSION ferry-qmgr 1 0");
    REQUIRE(v.ok());
    CHECK(v->type == qp::Message::version);
    CHECK((v->major == 1 && v->minor == 0));
    auto later = qp::decode("VERSION ferry-qmgr 1 7 more fields");
    REQUIRE(later.ok());
    CHECK(later->minor == 7);
    auto n = qp::decode(qp::encode_new("0123456789ABCDEF").substr(0, 20));
    REQUIRE(n.ok());
    CHECK(n->type == qp::Message::new_message);
    CHECK(n->id == "0123456789ABCDEF");
}

TEST_CASE("qmgr notify: a version that is no plain number is refused", "[qmgr]") {
    // atoi read "4294967297" as 1: a client from an unknown future passed as major 1.
    for (const char* line : {"VERSION ferry-qmgr 4294967297 0", "VERSION ferry-qmgr 1 x", "VERSION ferry-qmgr -1 0",
                             "VERSION ferry-qmgr 1x 0", "VERSION ferry-qmgr 1", "VERSION other 1 0"}) {
        INFO(line);
        CHECK_FALSE(qp::decode(line).ok());
    }
    CHECK_FALSE(qp::decode("NEW ../etc").ok());
    CHECK_FALSE(qp::decode("NEW").ok());
}

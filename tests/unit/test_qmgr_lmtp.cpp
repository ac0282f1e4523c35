// Unit tests of qmgr's LMTP client pieces: reply reading at its limits, and the DATA encoding.
#include <catch.hpp>

#include "mta/qmgr/lmtp_client.hpp"

using namespace ferry;
using qmgr::ReplyReader;

TEST_CASE("qmgr lmtp: single and multi-line replies", "[qmgr]") {
    ReplyReader r;
    CHECK(r.feed("250-mda.test") == ReplyReader::Status::more);
    CHECK(r.feed("250-PIPELINING") == ReplyReader::Status::more);
    CHECK(r.feed("250 ENHANCEDSTATUSCODES") == ReplyReader::Status::done);
    auto rep = r.take();
    CHECK(rep.code == 250);
    CHECK(rep.ok());
    CHECK(rep.text == "250 mda.test PIPELINING ENHANCEDSTATUSCODES");

    CHECK(r.feed("550 5.1.1 <x@y.test> no such user") == ReplyReader::Status::done);
    rep = r.take();
    CHECK(rep.permanent());
    CHECK(rep.text == "550 5.1.1 <x@y.test> no such user");
    CHECK(r.feed("354") == ReplyReader::Status::done);
    CHECK(r.take().code == 354);
}

TEST_CASE("qmgr lmtp: malformed replies are errors", "[qmgr]") {
    const char* bad[] = {"", "25", "abc text", "250x", "650 out of range", "150 too low", "25O typo"};
    for (const char* line : bad) {
        INFO(line);
        ReplyReader r;
        CHECK(r.feed(line) == ReplyReader::Status::error);
    }
    ReplyReader r;
    REQUIRE(r.feed("250-one") == ReplyReader::Status::more);
    CHECK(r.feed("451 two") == ReplyReader::Status::error);
}

TEST_CASE("qmgr lmtp: reply limits", "[qmgr]") {
    ReplyReader r;
    std::string at_limit = "250 " + std::string(ReplyReader::kMaxLine - 4, 'x');
    CHECK(r.feed(at_limit) == ReplyReader::Status::done);
    r.take();
    CHECK(r.feed(at_limit + "x") == ReplyReader::Status::error);

    ReplyReader many;
    for (size_t i = 1; i < ReplyReader::kMaxLines; ++i) REQUIRE(many.feed("250-line") == ReplyReader::Status::more);
    CHECK(many.feed("250 last") == ReplyReader::Status::done);
    many.take();
    for (size_t i = 0; i < ReplyReader::kMaxLines; ++i) REQUIRE(many.feed("250-line") == ReplyReader::Status::more);
    CHECK(many.feed("250 one too many") == ReplyReader::Status::error);
}

TEST_CASE("qmgr lmtp: DATA is CRLF, dot-stuffed and terminated", "[qmgr]") {
    struct Case { const char* in; const char* out; };
    const Case cases[] = {
        {"", ".\r\n"},
        {"a\n", "a\r\n.\r\n"},
        {"a", "a\r\n.\r\n"},
        {"Subject: x\n\n.\n..two\n.end", "Subject: x\r\n\r\n..\r\n...two\r\n..end\r\n.\r\n"},
        {"mid.dot\n", "mid.dot\r\n.\r\n"},
        {"already\r\n", "already\r\n.\r\n"},
        {"\n\n", "\r\n\r\n.\r\n"},
    };
    for (const auto& c : cases) {
        INFO(c.in);
        CHECK(qmgr::lmtp_data(c.in) == c.out);
    }
}

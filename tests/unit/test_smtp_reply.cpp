// Unit tests of the SMTP/LMTP reply reader: multi-line replies, enhanced codes, framing at any split, limits.
#include <catch.hpp>

#include <string>

#include "common/smtp/reply.hpp"

using ferry::smtp::Reply;
using ferry::smtp::ReplyLimits;
using ferry::smtp::ReplyReader;
using Status = ReplyReader::Status;

namespace {

// Feeds `input` in pieces of `step` bytes; the replies read, and the final status.
std::pair<std::vector<Reply>, Status> read_all(std::string_view input, size_t step, ReplyLimits limits = {}) {
    ReplyReader r(limits);
    std::vector<Reply> replies;
    Status last = Status::need_more;
    size_t pos = 0;
    while (pos < input.size()) {
        std::string_view piece = input.substr(pos, std::min(step, input.size() - pos));
        auto s = r.feed(piece);
        REQUIRE(s.consumed <= piece.size());
        last = s.status;
        if (s.status == Status::error) return {replies, last};
        if (s.status == Status::done) replies.push_back(r.take());
        else REQUIRE(s.consumed == piece.size());
        pos += s.consumed;
    }
    return {replies, last};
}

}  // namespace

TEST_CASE("smtp reply: single and multi-line replies, with and without enhanced codes", "[smtp]") {
    std::string wire =
        "250-mda.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n"
        "550 5.1.1 <x@y.test> no such user\r\n"
        "354\r\n"
        "452-4.5.3 too many\r\n452 4.5.3 recipients\r\n"
        "250 2.0.0\r\n"
        "421 5.0.0 class differs from the code\n";  // a bare LF ends a line too
    for (size_t step : {size_t{1}, size_t{2}, size_t{7}, wire.size()}) {
        INFO("step " << step);
        auto [replies, status] = read_all(wire, step);
        CHECK(status == Status::done);
        REQUIRE(replies.size() == 6);
        CHECK(replies[0].code == 250);
        CHECK(replies[0].ok());
        CHECK(replies[0].enhanced.empty());
        CHECK(replies[0].text == "250 mda.test PIPELINING ENHANCEDSTATUSCODES");
        CHECK(replies[0].lines == std::vector<std::string>{"mda.test", "PIPELINING", "ENHANCEDSTATUSCODES"});
        CHECK(replies[1].permanent());
        CHECK(replies[1].enhanced == "5.1.1");
        CHECK(replies[1].text == "550 5.1.1 <x@y.test> no such user");
        CHECK(replies[2].code == 354);
        CHECK(replies[2].text == "354");
        CHECK(replies[3].enhanced == "4.5.3");
        CHECK(replies[3].text == "452 4.5.3 too many 4.5.3 recipients");
        CHECK(replies[4].enhanced == "2.0.0");
        CHECK(replies[5].enhanced.empty());
    }
}

TEST_CASE("smtp reply: enhanced codes", "[smtp]") {
    struct Case { const char* text; char klass; const char* code; };
    const Case cases[] = {
        {"2.1.5 Ok", '2', "2.1.5"}, {"5.7.1", '5', "5.7.1"}, {"4.123.456 x", '4', "4.123.456"},
        {"4.1234.5 x", '4', ""}, {"2.1.5x", '2', ""}, {"2.1 x", '2', ""}, {"2..5 x", '2', ""},
        {"5.1.1 x", '4', ""}, {"", '2', ""}, {"Ok", '2', ""},
    };
    for (const auto& c : cases) {
        INFO(c.text);
        CHECK(ferry::smtp::enhanced_code(c.text, c.klass) == c.code);
    }
}

TEST_CASE("smtp reply: malformed replies are errors and the reader stays failed", "[smtp]") {
    const char* bad[] = {"\r\n", "25\r\n", "abc text\r\n", "250x\r\n", "650 out of range\r\n",
                         "150 too low\r\n", "25O typo\r\n", "250-one\r\n451 two\r\n"};
    for (const char* wire : bad) {
        INFO(wire);
        CHECK(read_all(wire, 1).second == Status::error);
        ReplyReader r;
        auto s = r.feed(wire);
        REQUIRE(s.status == Status::error);
        CHECK_FALSE(r.error().empty());
        CHECK(r.feed("250 ok\r\n").status == Status::error);
    }
}

TEST_CASE("smtp reply: limits on line length and line count", "[smtp]") {
    ReplyLimits limits;
    std::string at_limit = "250 " + std::string(limits.max_line - 4, 'x');
    CHECK(read_all(at_limit + "\r\n", 3).second == Status::done);
    CHECK(read_all(at_limit + "x\r\n", 3).second == Status::error);
    // An endless line is refused before it is all in memory.
    ReplyReader r;
    std::string chunk(1000, 'x');
    Status s = r.feed("250 ").status;
    for (int i = 0; i < 10 && s == Status::need_more; ++i) s = r.feed(chunk).status;
    CHECK(s == Status::error);

    std::string many;
    for (size_t i = 1; i < limits.max_lines; ++i) many += "250-line\r\n";
    CHECK(read_all(many + "250 last\r\n", 5).second == Status::done);
    CHECK(read_all(many + "250-line\r\n250 one too many\r\n", 5).second == Status::error);
}

// The line framer: a table of inputs fed whole and one byte at a time, with the limit at its edge.
#include <catch.hpp>

#include <string>
#include <vector>

#include "common/event/event.hpp"
#include "common/event/line_framer.hpp"

using namespace ferry;

namespace {

// What the framer reports for `input` given in chunks of `chunk` bytes: "L:<line>" or "TOO_LONG".
std::vector<std::string> frame(const std::string& input, size_t max_line, size_t chunk) {
    EvBuffer buf(evbuffer_new());
    LineFramer framer(max_line);
    std::vector<std::string> out;
    for (size_t i = 0; i < input.size(); i += chunk) {
        evbuffer_add(buf.get(), input.data() + i, std::min(chunk, input.size() - i));
        for (;;) {
            auto step = framer.next(buf.get());
            if (step.status == LineFramer::Status::need_more) break;
            out.push_back(step.status == LineFramer::Status::line ? "L:" + step.line : "TOO_LONG");
        }
    }
    return out;
}

struct FrameCase {
    std::string input;
    std::vector<std::string> expected;
};

}  // namespace

TEST_CASE("line framer: lines, limits and over-long tails, whole and byte by byte", "[event][framer]") {
    const size_t max = 10;  // 8 octets of text plus CRLF
    const std::vector<FrameCase> cases = {
        {"a\r\nb\n", {"L:a", "L:b"}},
        {"\r\n\n", {"L:", "L:"}},
        {"12345678\r\n", {"L:12345678"}},                 // exactly at the limit
        {"12345678\n", {"L:12345678"}},                   // a bare LF counts as CRLF would
        {"123456789\r\nnext\r\n", {"TOO_LONG", "L:next"}},  // one past
        {"123456789\nnext\n", {"TOO_LONG", "L:next"}},
        {std::string(50, 'x') + "\r\nnext\r\n", {"TOO_LONG", "L:next"}},  // once, and the tail is no command
        {std::string(50, 'x') + "QUIT\r\n", {"TOO_LONG"}},
        {"a\rb\r\n", {"L:a\rb"}},                         // only a CR before LF is dropped
        {"partial", {}},
        {std::string(9, 'y'), {}},                        // may still end in LF at index 9
    };
    for (const auto& c : cases) {
        INFO("input: " << c.input);
        CHECK(frame(c.input, max, c.input.size() + 1) == c.expected);
        CHECK(frame(c.input, max, 1) == c.expected);
        CHECK(frame(c.input, max, 3) == c.expected);
    }
}

TEST_CASE("line framer: discard_line drops the rest of the current line", "[event][framer]") {
    EvBuffer buf(evbuffer_new());
    LineFramer framer(512);
    evbuffer_add(buf.get(), "tail of a line", 14);
    framer.discard_line();
    CHECK(framer.next(buf.get()).status == LineFramer::Status::need_more);
    CHECK(framer.discarding());
    evbuffer_add(buf.get(), " still\r\nNOOP\r\n", 14);
    auto step = framer.next(buf.get());
    REQUIRE(step.status == LineFramer::Status::line);
    CHECK(step.line == "NOOP");
    CHECK(evbuffer_get_length(buf.get()) == 0);
}

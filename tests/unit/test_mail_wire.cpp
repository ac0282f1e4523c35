// Unit tests of the CRLF/dot-stuffing wire encoder: a table fed whole, split at every point and byte by byte.
#include <catch.hpp>

#include "common/mail/wire.hpp"

using ferry::mail::WireEncoder;
using ferry::mail::wire_encode;

namespace {

struct Case {
    const char* stored;
    const char* wire;
};

const Case kCases[] = {
    {"", ".\r\n"},
    {"a\n", "a\r\n.\r\n"},
    {"a", "a\r\n.\r\n"},                                  // a last line without LF is ended
    {"a\nb\n", "a\r\nb\r\n.\r\n"},
    {"a\r\nb\r\n", "a\r\nb\r\n.\r\n"},                    // CRLF stays CRLF
    {".\n", "..\r\n.\r\n"},                               // a line of one dot is not the end
    {"x\n.\n..y\n", "x\r\n..\r\n...y\r\n.\r\n"},
    {"Subject: x\n\n.\n..two\n.end", "Subject: x\r\n\r\n..\r\n...two\r\n..end\r\n.\r\n"},
    {"mid.dot\n", "mid.dot\r\n.\r\n"},                    // only a dot at a line start is stuffed
    {"\n\n", "\r\n\r\n.\r\n"},
    {"a\rb\n", "a\rb\r\n.\r\n"},                          // a lone CR is data
    {"ends in CR\r", "ends in CR\r\n.\r\n"},              // a final CR gets its LF
    {"\r\n.\r\n", "\r\n..\r\n.\r\n"},                     // a stored CRLF.CRLF cannot end the data
    {".", "..\r\n.\r\n"},
    {"\r.\n", "\r.\r\n.\r\n"},                            // after a lone CR the line goes on
};

std::string bytewise(std::string_view stored) {
    std::string out;
    WireEncoder enc;
    for (char c : stored) enc.feed(std::string_view(&c, 1), out);
    enc.finish(out);
    return out;
}

}  // namespace

TEST_CASE("mail wire: LF becomes CRLF, dots are stuffed, the end is marked", "[mail]") {
    for (const auto& c : kCases) {
        INFO(c.stored);
        CHECK(wire_encode(c.stored) == c.wire);
        CHECK(bytewise(c.stored) == c.wire);
    }
}

TEST_CASE("mail wire: a message split at any point gives the same bytes", "[mail]") {
    for (const auto& c : kCases) {
        std::string_view stored = c.stored;
        for (size_t cut = 0; cut <= stored.size(); ++cut) {
            std::string out;
            WireEncoder enc;
            enc.feed(stored.substr(0, cut), out);
            enc.feed(stored.substr(cut), out);
            enc.finish(out);
            INFO(c.stored << " cut at " << cut);
            CHECK(out == c.wire);
        }
    }
}

TEST_CASE("mail wire: the encoder starts over after finish", "[mail]") {
    WireEncoder enc;
    std::string out;
    enc.feed("no end", out);
    enc.finish(out);
    enc.feed(".next\n", out);
    enc.finish(out);
    CHECK(out == "no end\r\n.\r\n..next\r\n.\r\n");
}

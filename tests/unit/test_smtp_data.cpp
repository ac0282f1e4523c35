// Unit tests of the DATA reader: end detection, dot-unstuffing, bare LF/CR (smuggling) and limits,
// each fed whole and one byte at a time.
#include <catch.hpp>

#include <string>
#include <vector>

#include "common/smtp/smtp_proto.hpp"

using namespace ferry;

namespace {

struct Outcome {
    bool done = false;
    size_t consumed = 0;    // bytes of the input taken through the final CRLF.CRLF
    std::string message;    // what the reader output
    int code = 0;           // error reply code, 0 when none
    std::string enhanced;
};

Outcome run(const std::string& input, size_t chunk, const smtp::DataLimits& limits = {}) {
    smtp::DataReader reader(limits);
    Outcome o;
    size_t pos = 0;
    while (pos < input.size()) {
        std::string_view piece = std::string_view(input).substr(pos, chunk);
        auto step = reader.feed(piece, o.message);
        pos += step.consumed;
        if (step.status == smtp::DataReader::Status::done) {
            o.done = true;
            break;
        }
        REQUIRE(step.consumed == piece.size());
    }
    o.consumed = pos;
    if (reader.error()) {
        o.code = reader.error()->code;
        o.enhanced = reader.error()->enhanced;
    }
    return o;
}

// Whole, byte by byte and in 7-byte chunks all give the same outcome.
Outcome run_all_ways(const std::string& input, const smtp::DataLimits& limits = {}) {
    Outcome whole = run(input, input.size() + 1, limits);
    for (size_t chunk : {size_t(1), size_t(2), size_t(7)}) {
        INFO("chunk " << chunk);
        Outcome o = run(input, chunk, limits);
        CHECK(o.done == whole.done);
        CHECK(o.consumed == whole.consumed);
        CHECK(o.message == whole.message);
        CHECK(o.code == whole.code);
    }
    return whole;
}

struct DataCase {
    std::string input;
    bool done;
    size_t consumed;  // npos: the whole input
    std::string message;
};

}  // namespace

TEST_CASE("smtp data: end detection and dot-unstuffing", "[smtp]") {
    const size_t all = std::string::npos;
    const std::vector<DataCase> cases = {
        {".\r\n", true, 3, ""},
        {"a\r\n.\r\n", true, 6, "a\n"},
        {"Subject: x\r\n\r\nbody\r\n.\r\nMAIL FROM:<>\r\n", true, 23, "Subject: x\n\nbody\n"},
        {"..\r\n.\r\n", true, 7, ".\n"},
        {"...\r\n.\r\n", true, 8, "..\n"},
        {"..x\r\n.\r\n", true, 8, ".x\n"},
        {".x\r\n.\r\n", true, 7, "x\n"},  // a lone leading dot is deleted (4.5.2)
        {"a.\r\n.\r\n", true, 7, "a.\n"},
        {"a\r\n. \r\n.\r\n", true, 10, "a\n \n"},
        {"a\r\n.\r", false, all, "a\n"},
        {"a\r\n.", false, all, "a\n"},
        {"a\r\n", false, all, "a\n"},
        {"a\r\n..\r\n", false, all, "a\n.\n"},
        {"\r\n\r\n.\r\n", true, 7, "\n\n"},
        {"8bit \xc3\xa9\r\n.\r\n", true, 12, "8bit \xc3\xa9\n"},
    };
    for (const auto& c : cases) {
        INFO(c.input);
        Outcome o = run_all_ways(c.input);
        CHECK(o.done == c.done);
        CHECK(o.consumed == (c.consumed == all ? c.input.size() : c.consumed));
        CHECK(o.message == c.message);
        CHECK(o.code == 0);
    }
}

TEST_CASE("smtp data: bare LF and bare CR are errors and never end the data", "[smtp]") {
    const std::string smuggled = "MAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nevil\r\n";
    // Each fake terminator is followed by a smuggled transaction; only the real CRLF.CRLF ends it.
    for (std::string fake : {"\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r", ".\n", "\n\n"}) {
        std::string input = "Subject: s\r\n\r\nhello" + fake + smuggled + ".\r\nQUIT\r\n";
        INFO("fake terminator " << (fake == "\n.\n" ? "LF.LF" : fake == "\r\n.\n" ? "CRLF.LF" : fake == "\n.\r\n" ? "LF.CRLF" : fake == "\r.\r\n" ? "CR.CRLF" : "other"));
        Outcome o = run_all_ways(input);
        CHECK(o.done);
        CHECK(o.consumed == input.size() - 6);  // through the real ".\r\n", QUIT left over
        CHECK(o.code == 554);
        CHECK(o.enhanced == "5.6.11");
        CHECK(o.message.find("MAIL FROM") == std::string::npos);  // nothing after the error is output
    }
    SECTION("bare CR and bare LF in the middle of lines") {
        for (std::string bad : {"a\rb\r\n.\r\n", "a\nb\r\n.\r\n", "\n.\r\n.\r\n", "\r\r\n.\r\n", "a\r\n\n.\r\n.\r\n"}) {
            Outcome o = run_all_ways(bad);
            CHECK(o.done);
            CHECK(o.consumed == bad.size());
            CHECK(o.code == 554);
        }
    }
    SECTION("after a bare LF, a line started by it is not a line start") {
        // "\n.\r\n" is not an end: the dot after a bare LF is an ordinary byte.
        Outcome o = run_all_ways("x\n.\r\nmore\r\n");
        CHECK_FALSE(o.done);
        CHECK(o.code == 554);
    }
}

TEST_CASE("smtp data: a NUL byte refuses the message and never ends the data", "[smtp]") {
    using namespace std::string_literals;
    // A line of NUL then "." (a C-string reader would see ".\r\n"), a NUL in a header, in the body,
    // alone on a line and right after a stuffing dot: each is refused with 554 5.6.0, nothing kept.
    for (std::string bad : {"Subject: s\r\n\r\n\0.\r\nMAIL FROM:<x@y>\r\n.\r\n"s, "Subject: a\0b\r\n\r\nx\r\n.\r\n"s,
                            "Subject: s\r\n\r\nbody\0\r\n.\r\n"s, "\0\r\n.\r\n"s, "..\0\r\n.\r\n"s}) {
        INFO("case of " << bad.size() << " bytes");
        Outcome o = run_all_ways(bad + "QUIT\r\n");
        CHECK(o.done);
        CHECK(o.consumed == bad.size());  // only the real CRLF.CRLF ends it
        CHECK(o.code == 554);
        CHECK(o.enhanced == "5.6.0");
        CHECK(o.message.find('\0') == std::string::npos);
    }
    SECTION("the bytes before the NUL are output as whole and byte-by-byte feeding agree") {
        Outcome o = run_all_ways(std::string("nul\0byte\r\n.\r\n", 13));
        CHECK(o.done);
        CHECK(o.consumed == 13);
        CHECK(o.code == 554);
        CHECK(o.message == "nul");
    }
    SECTION("a message without NUL is untouched") {
        Outcome o = run_all_ways("Subject: s\r\n\r\n.0\r\n.\r\n");
        CHECK(o.code == 0);
        CHECK(o.message == "Subject: s\n\n0\n");
    }
}

TEST_CASE("smtp data: message size limit, exactly at and one past", "[smtp]") {
    smtp::DataLimits limits;
    limits.max_message_size = 20;  // counted with CRLF, after unstuffing
    std::string at = "0123456789012345\r\n\r\n.\r\n";  // 16 + 2 + 2 = 20
    Outcome ok = run_all_ways(at, limits);
    CHECK(ok.done);
    CHECK(ok.code == 0);
    CHECK(ok.message == "0123456789012345\n\n");
    Outcome stuffed = run_all_ways("..23456789012345\r\n\r\n.\r\n", limits);  // the stuffing dot is not counted
    CHECK(stuffed.code == 0);
    std::string past = "01234567890123456\r\n\r\n.\r\nNOOP\r\n";
    Outcome big = run_all_ways(past, limits);
    CHECK(big.done);
    CHECK(big.consumed == past.size() - 6);
    CHECK(big.code == 552);
    CHECK(big.enhanced == "5.3.4");
    CHECK(big.message.size() <= 20);  // the reader stops keeping bytes
}

TEST_CASE("smtp data: line length limit, exactly at and one past", "[smtp]") {
    smtp::DataLimits limits;
    limits.max_line_length = 10;  // including CRLF
    Outcome ok = run_all_ways("12345678\r\n.\r\n", limits);
    CHECK(ok.code == 0);
    Outcome okdot = run_all_ways("..345678\r\n.\r\n", limits);  // the stuffing dot counts on the wire
    CHECK(okdot.code == 0);
    CHECK(okdot.message == ".345678\n");
    Outcome bad = run_all_ways("123456789\r\n.\r\n", limits);
    CHECK(bad.done);
    CHECK(bad.code == 552);
    CHECK(bad.enhanced == "5.3.4");
    Outcome baddot = run_all_ways("..3456789\r\n.\r\n", limits);
    CHECK(baddot.code == 552);
}

TEST_CASE("smtp data: header size limit, exactly at and one past", "[smtp]") {
    smtp::DataLimits limits;
    limits.max_header_size = 16;  // header lines with CRLF, plus the empty line
    // "A: 1234567\r\n" = 12, "B\r\n" = 3, "\r\n" = 2 -> 17: one past.
    Outcome past = run_all_ways("A: 1234567\r\nB\r\n\r\n.\r\n", limits);
    CHECK(past.done);
    CHECK(past.code == 552);
    CHECK(past.enhanced == "5.3.4");
    Outcome at = run_all_ways("A: 123456\r\nB\r\n\r\n.\r\n", limits);  // 11 + 3 + 2 = 16
    CHECK(at.code == 0);
    CHECK(at.message == "A: 123456\nB\n\n");
    // The body does not count towards the header limit.
    Outcome body = run_all_ways("A: 1\r\n\r\n" + std::string(100, 'b') + "\r\n.\r\n", limits);
    CHECK(body.code == 0);
    // A header section that never ends is caught too.
    Outcome endless = run_all_ways(std::string(40, 'h') + "\r\n.\r\n", limits);
    CHECK(endless.code == 552);
}

TEST_CASE("smtp data: a large message streams through with bounded output per feed", "[smtp]") {
    smtp::DataLimits limits;
    limits.max_message_size = 1 << 20;
    smtp::DataReader reader(limits);
    std::string line = std::string(70, 'x') + "\r\n";
    std::string out;
    size_t fed = 0;
    while (fed < (2u << 20)) {
        auto step = reader.feed(line, out);
        REQUIRE(step.status == smtp::DataReader::Status::need_more);
        fed += line.size();
        out.clear();  // a caller writes each piece to the spool and drops it
    }
    auto end = reader.feed(".\r\n", out);
    CHECK(end.status == smtp::DataReader::Status::done);
    REQUIRE(reader.error());
    CHECK(reader.error()->code == 552);
}

TEST_CASE("smtp data: body lines taken whole agree with the octet path at every limit", "[smtp]") {
    smtp::DataLimits limits;
    limits.max_line_length = 10;  // including CRLF
    limits.max_message_size = 40;
    const std::string head = "A: 1\r\n\r\n";  // 8 octets of header section
    Outcome at = run_all_ways(head + "12345678\r\n.\r\n", limits);
    CHECK(at.code == 0);
    CHECK(at.message == "A: 1\n\n12345678\n");
    CHECK(run_all_ways(head + "123456789\r\n.\r\n", limits).code == 552);
    // 8 + 10 + 10 + 10 + 2 = 40: at the size limit; one more octet is past it.
    Outcome full = run_all_ways(head + "12345678\r\n12345678\r\n12345678\r\n\r\n.\r\n", limits);
    CHECK(full.code == 0);
    CHECK(run_all_ways(head + "12345678\r\n12345678\r\n12345678\r\n1\r\n.\r\n", limits).code == 552);

    // Random bodies of ordinary lines among every kind of line the octet path handles: each fed
    // whole (where lines go in runs), one octet at a time and in 2- and 7-octet pieces.
    const std::vector<std::string> kinds = {"plain text", "", ".", "..dot", ".x", "bare\rcr", "bare\nlf", std::string("nul\0x", 5),
                                            "12345678", "123456789", "\r", "x\r\r", "Received: x"};
    uint32_t seed = 12345;
    auto next = [&seed] { return seed = seed * 1103515245u + 12345u, (seed >> 16) & 0x7fff; };
    for (int n = 0; n < 400; ++n) {
        std::string body = head;
        for (int lines = 1 + next() % 8; lines > 0; --lines) {
            const std::string& k = kinds[next() % kinds.size()];
            body += next() % 3 ? std::string("ordinary") : k;
            body += "\r\n";
        }
        body += ".\r\n";
        INFO("message " << n);
        run_all_ways(body, limits);
        run_all_ways(body);  // with the default limits
    }
}

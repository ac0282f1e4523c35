// Unit tests of the ESMTP extensions' pure pieces: BDAT's argument and chunked reading (RFC 3030),
// SMTPUTF8 paths (RFC 6531), DSN parameters and xtext (RFC 3461), and the Received: loop limit.
#include <catch.hpp>

#include <string>
#include <vector>

#include "common/mail/dsn.hpp"
#include "common/smtp/smtp_proto.hpp"

using namespace ferry;

namespace {

struct Chunked {
    std::string message;
    int code = 0;
    std::string enhanced;
};

// Feeds `chunks` to a chunked reader, each cut into pieces of `piece` bytes, then ends it.
Chunked read_chunks(const std::vector<std::string>& chunks, size_t piece, const smtp::DataLimits& limits = {}) {
    smtp::DataReader reader(limits, smtp::DataReader::Framing::chunked);
    Chunked c;
    for (const auto& chunk : chunks) {
        for (size_t at = 0; at < chunk.size(); at += piece) {
            std::string_view p = std::string_view(chunk).substr(at, piece);
            auto step = reader.feed(p, c.message);
            REQUIRE(step.status == smtp::DataReader::Status::need_more);
            REQUIRE(step.consumed == p.size());
        }
    }
    reader.end_chunks();
    if (reader.error()) {
        c.code = reader.error()->code;
        c.enhanced = reader.error()->enhanced;
    }
    return c;
}

Chunked read_all_ways(const std::vector<std::string>& chunks, const smtp::DataLimits& limits = {}) {
    Chunked whole = read_chunks(chunks, 1 << 20, limits);
    for (size_t piece : {size_t(1), size_t(3)}) {
        INFO("piece " << piece);
        Chunked c = read_chunks(chunks, piece, limits);
        CHECK(c.message == whole.message);
        CHECK(c.code == whole.code);
    }
    return whole;
}

std::string received_lines(int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += (i % 2 ? "received: from h" : "Received: from h") + std::to_string(i) + "\r\n";
    return s;
}

}  // namespace

TEST_CASE("bdat: argument parsed, size and LAST", "[smtp][bdat]") {
    auto a = smtp::parse_command("BDAT 1000");
    REQUIRE(a.ok());
    CHECK(a->bdat.size == 1000);
    CHECK_FALSE(a->bdat.last);
    auto b = smtp::parse_command("BDAT 0 LAST");
    REQUIRE(b.ok());
    CHECK(b->bdat.size == 0);
    CHECK(b->bdat.last);
    auto at_max = smtp::parse_command("BDAT " + std::to_string(smtp::kMaxBdatChunk));
    REQUIRE(at_max.ok());
    CHECK(at_max->bdat.size == smtp::kMaxBdatChunk);
    for (std::string bad : std::vector<std::string>{"BDAT", "BDAT x", "BDAT 1 LAST x", "BDAT 1x", "BDAT +1",
                            "BDAT " + std::to_string(smtp::kMaxBdatChunk + 1)}) {
        INFO(bad);
        auto r = smtp::parse_command(bad);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().code == 501);
        CHECK(smtp::bdat_unsynchronised(r.error()));  // the session cannot find the chunk's end
    }
    auto other = smtp::parse_command("MAIL FROM:<a@b.test> SIZE=x");
    REQUIRE_FALSE(other.ok());
    CHECK_FALSE(smtp::bdat_unsynchronised(other.error()));
}

TEST_CASE("bdat: chunked data keeps dots, stores LF line ends, spans chunks", "[smtp][bdat]") {
    auto c = read_all_ways({"Subject: x\r\n\r\n.\r\n..b", "ody\r", "\n.\r\n"});
    CHECK(c.code == 0);
    CHECK(c.message == "Subject: x\n\n.\n..body\n.\n");  // no dot-unstuffing, no end marker
    auto empty = read_all_ways({});
    CHECK(empty.code == 0);
    CHECK(empty.message.empty());
    auto no_final_crlf = read_all_ways({"a: b\r\n\r\ntail"});
    CHECK(no_final_crlf.code == 0);
    CHECK(no_final_crlf.message == "a: b\n\ntail");
}

TEST_CASE("bdat: bare LF, final bare CR, NUL and size are refused as with DATA", "[smtp][bdat]") {
    CHECK(read_all_ways({"a\nb\r\n"}).code == 554);
    auto cr = read_all_ways({"a: b\r\n\r\nx\r"});
    CHECK(cr.code == 554);
    CHECK(cr.enhanced == "5.6.11");
    CHECK(read_all_ways({std::string("a\0b\r\n", 5)}).enhanced == "5.6.0");
    // 10 octets: a limit of 10 takes them, 9 does not.
    CHECK(read_all_ways({"0123456\r\n", "7"}, {10, 1000, 102400, 0}).code == 0);
    auto over = read_all_ways({"0123456\r\n", "7"}, {9, 1000, 102400, 0});
    CHECK(over.code == 552);
    CHECK(over.enhanced == "5.3.4");
}

TEST_CASE("received limit: more than max_received Received: fields is 554 5.4.6", "[smtp][loop]") {
    smtp::DataLimits limits;
    limits.max_received = 50;
    auto fifty = read_all_ways({received_lines(50) + "\r\nbody\r\n"}, limits);
    CHECK(fifty.code == 0);
    auto fiftyone = read_all_ways({received_lines(51) + "\r\nbody\r\n"}, limits);
    CHECK(fiftyone.code == 554);
    CHECK(fiftyone.enhanced == "5.4.6");
    // In the body, in a continuation line or under another name they do not count.
    auto body = read_all_ways({received_lines(50) + " received: folded\r\nX-Received: y\r\n\r\n" + received_lines(5)},
                              limits);
    CHECK(body.code == 0);
    // DATA counts the same, byte by byte or whole.
    for (size_t piece : {size_t(1), size_t(1000000)}) {
        smtp::DataReader reader(limits);
        std::string out, in = received_lines(51) + "\r\n.\r\n";
        for (size_t at = 0; at < in.size(); at += piece) reader.feed(std::string_view(in).substr(at, piece), out);
        REQUIRE(reader.finished());
        REQUIRE(reader.error());
        CHECK(reader.error()->enhanced == "5.4.6");
    }
    limits.max_received = 0;  // no limit
    CHECK(read_all_ways({received_lines(200)}, limits).code == 0);
}

TEST_CASE("smtputf8: UTF-8 paths are parsed and flagged", "[smtp][smtputf8]") {
    auto mail = smtp::parse_command("MAIL FROM:<j\xc3\xb6rg@b\xc3\xbc" "cher.test> SMTPUTF8");
    REQUIRE(mail.ok());
    CHECK(mail->path.utf8);
    CHECK(mail->params.smtputf8);
    CHECK(mail->path.mailbox() == "j\xc3\xb6rg@b\xc3\xbc" "cher.test");
    auto rcpt = smtp::parse_command("RCPT TO:<\xe7\x94\xa8\xe6\x88\xb7@example.test>");
    REQUIRE(rcpt.ok());
    CHECK(rcpt->path.utf8);
    auto ascii = smtp::parse_command("RCPT TO:<user@example.test>");
    REQUIRE(ascii.ok());
    CHECK_FALSE(ascii->path.utf8);
    auto refused = smtp::parse_command("MAIL FROM:<j\xc3\xb6rg@b.test>");
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == 553);
    CHECK(refused.error().enhanced == "5.6.7");
}

TEST_CASE("dsn: MAIL and RCPT parameters parsed", "[smtp][dsn]") {
    auto mail = smtp::parse_command("MAIL FROM:<a@b.test> RET=HDRS ENVID=QQ+2B314159");
    REQUIRE(mail.ok());
    CHECK(mail->params.ret == dsn::Ret::hdrs);
    CHECK(mail->params.envid.value_or("") == "QQ+314159");
    auto rcpt = smtp::parse_command("RCPT TO:<x@example.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;x+2By@example.test");
    REQUIRE(rcpt.ok());
    CHECK(rcpt->rcpt.notify == (dsn::notify::success | dsn::notify::delay));
    REQUIRE(rcpt->rcpt.orcpt);
    CHECK(rcpt->rcpt.orcpt->type == "rfc822");
    CHECK(rcpt->rcpt.orcpt->address == "x+y@example.test");
    auto none = smtp::parse_command("RCPT TO:<x@example.test>");
    REQUIRE(none.ok());
    CHECK(none->rcpt.notify == 0);
    CHECK_FALSE(none->rcpt.orcpt);
}

TEST_CASE("dsn: xtext encodes and decodes every octet", "[dsn]") {
    std::string all;
    for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
    std::string x = dsn::xtext_encode(all);
    for (char c : x) CHECK((c >= 33 && c <= 126 && c != '='));
    CHECK(dsn::xtext_decode(x).value_or("?") == all);
    CHECK(dsn::xtext_encode("a+b=c d") == "a+2Bb+3Dc+20d");
    CHECK(dsn::xtext_decode("a+2Bb+3Dc+20d").value_or("") == "a+b=c d");
    CHECK(dsn::xtext_decode("").value_or("x").empty());
    for (const char* bad : {"+", "+2", "a+2g", "+2b", "a b", "a=b", "\x7f", "\xc3\xa9"}) {
        INFO(bad);
        CHECK_FALSE(dsn::xtext_decode(bad));
    }
}

TEST_CASE("dsn: NOTIFY, ORCPT and ENVID values", "[dsn]") {
    CHECK(dsn::parse_notify("NEVER").value_or(0) == dsn::notify::never);
    CHECK(dsn::parse_notify("delay,Failure").value_or(0) == (dsn::notify::delay | dsn::notify::failure));
    for (const char* bad : {"", ",", "NEVER,DELAY", "SUCCESS,,DELAY", "DELAY,DELAY", "ALWAYS"}) {
        INFO(bad);
        CHECK_FALSE(dsn::parse_notify(bad));
    }
    CHECK(dsn::notify_text(dsn::notify::success | dsn::notify::failure | dsn::notify::delay) == "SUCCESS,FAILURE,DELAY");
    CHECK(dsn::notify_text(dsn::notify::never) == "NEVER");
    CHECK(dsn::notify_text(0).empty());
    CHECK(dsn::wants_failure(0));
    CHECK(dsn::wants_delay(0));
    CHECK_FALSE(dsn::wants_success(0));
    CHECK_FALSE(dsn::wants_failure(dsn::notify::never));
    CHECK_FALSE(dsn::wants_failure(dsn::notify::success | dsn::notify::delay));
    CHECK_FALSE(dsn::wants_delay(dsn::notify::failure));
    CHECK(dsn::wants_success(dsn::notify::success));

    auto o = dsn::parse_orcpt("utf-8;j+C3+B6rg@example.test");
    REQUIRE(o);
    CHECK(o->address == "j\xc3\xb6rg@example.test");
    CHECK(dsn::orcpt_text(*o) == "utf-8;j+C3+B6rg@example.test");
    CHECK(dsn::parse_orcpt("rfc822;" + std::string(500, 'a')));
    CHECK_FALSE(dsn::parse_orcpt("rfc822;" + std::string(501, 'a')));
    CHECK(dsn::parse_envid(std::string(100, 'e')));
    CHECK_FALSE(dsn::parse_envid(std::string(101, 'e')));
    CHECK_FALSE(dsn::parse_envid(""));
}

// Unit tests of POP3 replies: response codes, dot-stuffing, CRLF output and TOP line counting.
#include <catch.hpp>

#include <string>

#include "common/store/maildir.hpp"
#include "popd/response.hpp"

using namespace ferry::pop3;

TEST_CASE("pop3 replies carry RFC 2449 response codes", "[pop3]") {
    CHECK(ok("") == "+OK\r\n");
    CHECK(ok("2 320") == "+OK 2 320\r\n");
    CHECK(err("", "no such message") == "-ERR no such message\r\n");
    CHECK(err(kInUse, "locked") == "-ERR [IN-USE] locked\r\n");
    CHECK(err(kAuth, "authentication failed") == "-ERR [AUTH] authentication failed\r\n");
    CHECK(err(kSysTemp, "x") == "-ERR [SYS/TEMP] x\r\n");
    CHECK(err(kSysPerm, "x") == "-ERR [SYS/PERM] x\r\n");
    CHECK(err(kLoginDelay, "x") == "-ERR [LOGIN-DELAY] x\r\n");
    CHECK(err(pop_error(kInUse, "busy", "detail for the log")) == "-ERR [IN-USE] busy\r\n");
}

TEST_CASE("pop3 encoder: LF becomes CRLF, CRLF stays, dots are stuffed", "[pop3]") {
    struct Case { const char* stored; const char* sent; };
    const Case cases[] = {
        {"a\nb\n", "a\r\nb\r\n.\r\n"},
        {"a\r\nb\r\n", "a\r\nb\r\n.\r\n"},
        {".\n", "..\r\n.\r\n"},
        {"x\n.\n..y\n", "x\r\n..\r\n...y\r\n.\r\n"},
        {"no newline at end", "no newline at end\r\n.\r\n"},
        {"", ".\r\n"},
        {"a\rb\n", "a\rb\r\n.\r\n"},
        {"mid.dot\n", "mid.dot\r\n.\r\n"},
        {"\n\n", "\r\n\r\n.\r\n"},
    };
    for (const auto& c : cases) {
        INFO(c.stored);
        CHECK(encode_message(c.stored) == c.sent);
    }
}

TEST_CASE("pop3 encoder: the octets sent before stuffing are the CRLF size plus the final line end", "[pop3]") {
    // LIST and RETR announce crlf_size + unterminated_octets (W= for ferry-mda's files, which always end
    // in LF): it must be exactly what is sent, also when the last line has no LF.
    struct Case { const char* stored; uint64_t sent; };
    const Case cases[] = {
        {"Subject: x\n\nbody\n", 20}, {"a\r\nb\nc", 9}, {"\n\n\n", 6}, {"x\r\r\n", 4}, {"", 0},
        {"no newline", 12}, {"ends in CR\r", 12}, {"a\nb\r", 6},
    };
    for (const auto& c : cases) {
        INFO(c.stored);
        std::string sent = encode_message(c.stored);
        sent.resize(sent.size() - 3);  // the ".\r\n" terminator
        CHECK(sent.size() == c.sent);
        CHECK(sent.size() == ferry::maildir::crlf_size(c.stored) + ferry::maildir::unterminated_octets(c.stored));
    }
}

TEST_CASE("pop3 encoder: parts split anywhere give the same bytes", "[pop3]") {
    std::string stored = "Subject: t\r\n\r\n.a\n..b\r\nc\rd\n.\n";
    std::string whole = encode_message(stored);
    for (size_t cut = 0; cut <= stored.size(); ++cut) {
        std::string out;
        MessageEncoder enc;
        enc.feed(std::string_view(stored).substr(0, cut), out);
        enc.feed(std::string_view(stored).substr(cut), out);
        enc.finish(out);
        INFO(cut);
        CHECK(out == whole);
    }
    std::string bytewise;
    MessageEncoder enc;
    for (char c : stored) enc.feed(std::string_view(&c, 1), bytewise);
    enc.finish(bytewise);
    CHECK(bytewise == whole);
}

TEST_CASE("pop3 encoder: TOP sends the header, the blank line and n body lines", "[pop3]") {
    std::string m = "From: a\nSubject: b\n\nline1\n.line2\nline3\n";
    CHECK(encode_message(m, 0) == "From: a\r\nSubject: b\r\n\r\n.\r\n");
    CHECK(encode_message(m, 1) == "From: a\r\nSubject: b\r\n\r\nline1\r\n.\r\n");
    CHECK(encode_message(m, 2) == "From: a\r\nSubject: b\r\n\r\nline1\r\n..line2\r\n.\r\n");
    CHECK(encode_message(m, 3) == encode_message(m));
    CHECK(encode_message(m, 1000) == encode_message(m));  // past the end: the whole message
    // No blank line: everything is header.
    CHECK(encode_message("A: 1\nB: 2\n", 0) == "A: 1\r\nB: 2\r\n.\r\n");
    // CRLF-stored header end, and a last body line without LF.
    CHECK(encode_message("A: 1\r\n\r\nx\ny", 5) == "A: 1\r\n\r\nx\r\ny\r\n.\r\n");
    MessageEncoder enc(1);
    std::string out;
    enc.feed("H: v\n\nb1\n", out);
    CHECK(enc.done());
    enc.feed("b2\n", out);
    enc.finish(out);
    CHECK(out == "H: v\r\n\r\nb1\r\n.\r\n");
}

TEST_CASE("pop3 encoder: chunks of a file read piece by piece, special bytes on the edges", "[pop3]") {
    // ferry-popd feeds a message in reads of a fixed size: every edge case at a chunk edge.
    struct Case { const char* name; std::string stored; };
    const Case cases[] = {
        {"CRLF split", std::string("a\r") + "\nb\n"},
        {"bare CR then dot", std::string("a\r") + ".b\n"},
        {"LF then dot", std::string("a\n") + ".b\n"},
        {"LF then dot then LF", std::string("a\n") + ".\n"},
        {"NUL", std::string("a\0b\n\0\n", 6)},
        {"CR at the very end", std::string("x\r")},
        {"no final LF", std::string("x\ny")},
    };
    for (const auto& c : cases) {
        std::string whole = encode_message(c.stored);
        for (size_t chunk = 1; chunk <= c.stored.size(); ++chunk) {
            MessageEncoder enc;
            std::string out;
            for (size_t at = 0; at < c.stored.size(); at += chunk)
                enc.feed(std::string_view(c.stored).substr(at, chunk), out);
            enc.finish(out);
            INFO(c.name << " chunk " << chunk);
            CHECK(out == whole);
        }
    }
    CHECK(encode_message(std::string("a\0b\n", 4)) == std::string("a\0b\r\n.\r\n", 8));
    CHECK(encode_message("a\r.b\n") == "a\r.b\r\n.\r\n");  // a dot after a bare CR is not at a line start
    CHECK(encode_message("x\r") == "x\r\n.\r\n");
}

TEST_CASE("pop3 encoder: TOP counts lines across chunk edges and stops in the chunk where it ends", "[pop3]") {
    std::string m = "H: v\r\n\r\nb1\r\n.b2\nb3\n";
    for (uint64_t n = 0; n <= 4; ++n) {
        std::string whole = encode_message(m, n);
        for (size_t chunk = 1; chunk <= m.size(); ++chunk) {
            MessageEncoder enc(n);
            std::string out;
            for (size_t at = 0; at < m.size() && !enc.done(); at += chunk) enc.feed(std::string_view(m).substr(at, chunk), out);
            enc.finish(out);
            INFO("lines " << n << " chunk " << chunk);
            CHECK(out == whole);
        }
    }
    CHECK(encode_message(m, 2) == "H: v\r\n\r\nb1\r\n..b2\r\n.\r\n");
}

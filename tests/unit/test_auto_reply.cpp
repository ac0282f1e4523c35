// AutoReply's pure pieces (the vacation reply, the redirect marker and loop check, RFC 2047 words, the
// vacation memory with a given clock) and AutoReply itself against a small LMTP listener standing in for ferry-qmgr.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "common/mail/header_words.hpp"
#include "common/mail/mime_decode.hpp"
#include "common/smtp/submit_client.hpp"
#include "mda/auto_reply.hpp"
#include "mda/auto_reply_mail.hpp"
#include "mda/vacation_memory.hpp"
#include "scratch.hpp"

using namespace ferry;
using namespace ferry::mda;

namespace {

std::vector<std::string> header_lines(const std::string& message) {
    std::vector<std::string> lines;
    size_t start = 0;
    for (;;) {
        size_t nl = message.find('\n', start);
        std::string line = message.substr(start, nl - start);
        if (line.empty() || nl == std::string::npos) break;
        lines.push_back(line);
        start = nl + 1;
    }
    return lines;
}

std::string body_of(const std::string& message) {
    size_t p = message.find("\n\n");
    return p == std::string::npos ? "" : message.substr(p + 2);
}

}  // namespace

TEST_CASE("encoded words: ASCII stays, the rest is q-encoded in words of at most 75 octets", "[auto_reply]") {
    CHECK(mail::encode_header_words("Auto: hello") == "Auto: hello");
    CHECK(mail::encode_header_words("a\r\nBcc: x") == "a  Bcc: x");
    std::string e = mail::encode_header_words("Auto: Grüße");
    CHECK(e == "=?utf-8?q?Auto=3A_Gr=C3=BC=C3=9Fe?=");
    CHECK(mail::decode_header_value(e) == "Auto: Grüße");
    // "=?" in plain text would be read as a word: it is encoded too.
    CHECK(mail::decode_header_value(mail::encode_header_words("a =?x?= b")) == "a =?x?= b");

    std::string long_text;
    for (int i = 0; i < 40; ++i) long_text += "ü€ ";
    std::string enc = mail::encode_header_words(long_text);
    size_t start = 0, words = 0;
    while (start < enc.size()) {
        size_t end = enc.find("\n ", start);
        std::string word = enc.substr(start, end == std::string::npos ? std::string::npos : end - start);
        CHECK(word.size() <= 75);
        CHECK(word.rfind("=?utf-8?q?", 0) == 0);
        ++words;
        if (end == std::string::npos) break;
        start = end + 2;
    }
    CHECK(words > 1);
    // No word splits a UTF-8 sequence: decoding the unfolded value gives the text back.
    std::string unfolded = enc;
    for (size_t p; (p = unfolded.find("\n ")) != std::string::npos;) unfolded.replace(p, 2, " ");
    CHECK(mail::decode_header_value(unfolded) == long_text.substr(0, long_text.size() - 1) + " ");
}

TEST_CASE("vacation reply: fields of RFC 5230 5 and RFC 3834, a UTF-8 text body", "[auto_reply]") {
    VacationReply r;
    r.from = "alice@example.test";
    r.to = "carol@example.net";
    r.subject = "Auto: Ferien – bis Montag";
    r.reason = "Ich bin weg.\r\nBis bald – Grüße.";
    r.original_message_id = "<m1@example.net>";
    r.original_references = "<m0@example.net>";
    r.now = 1700000000;
    r.message_id = "<x.vacation@mx.test>";
    std::string m = compose_vacation_reply(r);
    auto h = header_lines(m);
    auto has = [&](const std::string& line) { return std::find(h.begin(), h.end(), line) != h.end(); };
    CHECK(has("From: alice@example.test"));
    CHECK(has("To: <carol@example.net>"));
    CHECK(has("Auto-Submitted: auto-replied"));
    CHECK(has("In-Reply-To: <m1@example.net>"));
    CHECK(has("References: <m0@example.net>"));
    CHECK(has(" <m1@example.net>"));
    CHECK(has("Message-ID: <x.vacation@mx.test>"));
    CHECK(has("MIME-Version: 1.0"));
    CHECK(has("Content-Type: text/plain; charset=utf-8"));
    CHECK(has("Content-Transfer-Encoding: 8bit"));
    CHECK(std::any_of(h.begin(), h.end(), [](const std::string& l) { return l.rfind("Date: ", 0) == 0; }));
    auto subject = std::find_if(h.begin(), h.end(), [](const std::string& l) { return l.rfind("Subject: ", 0) == 0; });
    REQUIRE(subject != h.end());
    CHECK(mail::decode_header_value(subject->substr(9)) == "Auto: Ferien – bis Montag");
    for (const auto& line : h)
        for (unsigned char c : line) CHECK(c < 0x80);  // the header is 7-bit
    CHECK(body_of(m) == "Ich bin weg.\nBis bald – Grüße.\n");
}

TEST_CASE("vacation reply: no thread fields without a Message-ID, :mime reason as it is, no injected lines", "[auto_reply]") {
    VacationReply r;
    r.from = "Alice Müller <alice@example.test>";
    r.to = "carol@example.net";
    r.subject = "Away\nBcc: victim@example.org";
    r.reason = "Content-Type: text/plain; charset=us-ascii\n\nAway.\n";
    r.mime = true;
    r.message_id = "<y@mx.test>";
    std::string m = compose_vacation_reply(r);
    CHECK(m.find("In-Reply-To:") == std::string::npos);
    CHECK(m.find("References:") == std::string::npos);
    CHECK(m.find("\nBcc:") == std::string::npos);
    CHECK(m.find("Subject: Away Bcc: victim@example.org\n") != std::string::npos);
    CHECK(m.find("Content-Type: text/plain; charset=us-ascii\n\nAway.\n") != std::string::npos);
    CHECK(m.find("charset=utf-8") == std::string::npos);
    CHECK(m.find("From: =?utf-8?q?Alice_M=C3=BCller?= <alice@example.test>\n") != std::string::npos);
}

TEST_CASE("redirect: the marker goes on top; the same account or too many Delivered-To is a loop", "[auto_reply]") {
    std::string msg = "Delivered-To: a@x.test\nSubject: hi\n\nbody\n";
    CHECK(redirected_message(msg, "alice@example.test") == "X-Ferry-Redirected: alice@example.test\n" + msg);
    CHECK_FALSE(redirect_loop(msg, "alice@example.test", 10));
    std::string again = redirected_message(msg, "Alice@Example.TEST");
    REQUIRE(redirect_loop(again, "alice@example.test", 10));
    CHECK(redirect_loop(again, "alice@example.test", 10)->find("loop") != std::string::npos);
    CHECK_FALSE(redirect_loop(again, "bob@example.test", 10));
    std::string hops;
    for (int i = 0; i < 3; ++i) hops += "Delivered-To: h" + std::to_string(i) + "@x.test\n";
    CHECK(redirect_loop(hops + "\nbody\n", "bob@example.test", 3));
    CHECK_FALSE(redirect_loop(hops + "\nbody\n", "bob@example.test", 4));
    CHECK_FALSE(redirect_loop(hops + "\nbody\n", "bob@example.test", 0));
    // A field in the body is not a header field.
    CHECK_FALSE(redirect_loop("Subject: x\n\nX-Ferry-Redirected: bob@example.test\n", "bob@example.test", 10));
}

TEST_CASE("vacation memory: once per handle and sender per period, with a given clock", "[auto_reply]") {
    std::vector<VacationEntry> e;
    const int64_t day = 86400, t0 = 1700000000;
    CHECK_FALSE(vacation_answered(e, "h", "carol@example.net", t0));
    vacation_remember(e, "h", "Carol@Example.NET", t0 + 7 * day, t0, 100);
    CHECK(vacation_answered(e, "h", "carol@example.net", t0 + 1));
    CHECK(vacation_answered(e, "h", "CAROL@example.net", t0 + 7 * day - 1));
    CHECK_FALSE(vacation_answered(e, "h", "carol@example.net", t0 + 7 * day));
    CHECK_FALSE(vacation_answered(e, "other handle", "carol@example.net", t0 + 1));
    CHECK_FALSE(vacation_answered(e, "h", "dave@example.net", t0 + 1));
    // Round trip through the file format.
    auto back = parse_vacation_memory(format_vacation_memory(e));
    REQUIRE(back.size() == 1);
    CHECK(vacation_answered(back, "h", "carol@example.net", t0 + 1));
    // Renewing replaces; expired entries go at the next write.
    vacation_remember(e, "h", "carol@example.net", t0 + 20 * day, t0 + 10 * day, 100);
    vacation_remember(e, "h", "dave@example.net", t0 + 30 * day, t0 + 10 * day, 100);
    CHECK(e.size() == 2);
    vacation_remember(e, "h", "erin@example.net", t0 + 40 * day, t0 + 25 * day, 100);
    CHECK(e.size() == 2);  // carol's entry expired at t0 + 20 days
    CHECK_FALSE(vacation_answered(e, "h", "carol@example.net", t0 + 25 * day));
}

TEST_CASE("vacation memory: bounded; damaged lines and other versions are skipped", "[auto_reply]") {
    std::vector<VacationEntry> e;
    for (int i = 0; i < 10; ++i) vacation_remember(e, "h", "s" + std::to_string(i) + "@x.test", 1000 + i, 0, 4);
    CHECK(e.size() == 4);
    CHECK(vacation_answered(e, "h", "s9@x.test", 0));
    CHECK_FALSE(vacation_answered(e, "h", "s0@x.test", 0));  // the first to expire went
    std::string text = "ferry-vacation 1\n1000 abc s@x.test\ngarbage\n12x abc t@x.test\n2000 abc u@x.test\n3000 abc";
    auto parsed = parse_vacation_memory(text);
    REQUIRE(parsed.size() == 2);  // the last line has no LF: not written whole
    CHECK(parsed[1].value == "u@x.test");
    CHECK(parse_vacation_memory("ferry-vacation 2\n1000 abc s@x.test\n").empty());
}

TEST_CASE("vacation memory on disk: kept across opens, the lock serialises two holders", "[auto_reply]") {
    test::TempDir tmp;
    std::string dir = tmp.path + "/sieve";
    {
        auto m = VacationMemory::open(dir);
        REQUIRE(m.ok());
        CHECK_FALSE(m->answered("h", "carol@example.net", 100));
        REQUIRE(m->remember("h", "carol@example.net", 1000, 100, 10).ok());
    }
    auto again = VacationMemory::open(dir);
    REQUIRE(again.ok());
    CHECK(again->answered("h", "carol@example.net", 500));
    CHECK_FALSE(again->answered("h", "carol@example.net", 1000));

    std::atomic<bool> second_has_it{false};
    bool second_sees_dave = false;  // Catch2 assertions stay on the test's thread
    std::thread t([&] {
        auto m = VacationMemory::open(dir);
        second_has_it = true;
        second_sees_dave = m.ok() && m->answered("h", "dave@example.net", 500);
    });
    usleep(100000);
    CHECK_FALSE(second_has_it.load());  // blocked on the lock held by `again`
    REQUIRE(again->remember("h", "dave@example.net", 1000, 100, 10).ok());
    again = make_error(0, "", "released");  // closing the lock lets the other holder in
    t.join();
    CHECK(second_has_it.load());
    CHECK(second_sees_dave);  // it read what the first holder wrote
}

namespace {

// A stand-in for ferry-qmgr's submit_socket: accepts connections, answers LMTP, keeps each transaction.
class FakeQmgr {
public:
    struct Transaction {
        std::string mail_from;
        std::vector<std::string> rcpt_to;
        std::string data;  // as sent, CRLF and dot-stuffed
    };

    FakeQmgr(std::string path, int mail_reply = 250) : path_(std::move(path)), mail_reply_(mail_reply) {
        fd_ = socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        snprintf(a.sun_path, sizeof a.sun_path, "%s", path_.c_str());
        REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(listen(fd_, 8) == 0);
        thread_ = std::thread([this] { serve(); });
    }
    ~FakeQmgr() {
        shutdown(fd_, SHUT_RDWR);
        close(fd_);
        thread_.join();
    }
    std::vector<Transaction> transactions() {
        std::lock_guard<std::mutex> l(mu_);
        return done_;
    }

private:
    void serve() {
        for (;;) {
            int c = accept(fd_, nullptr, nullptr);
            if (c < 0) return;
            session(c);
            close(c);
        }
    }
    static bool read_line(int c, std::string& buf, std::string& line) {
        for (;;) {
            size_t p = buf.find("\r\n");
            if (p != std::string::npos) {
                line = buf.substr(0, p);
                buf.erase(0, p + 2);
                return true;
            }
            char chunk[4096];
            ssize_t n = read(c, chunk, sizeof chunk);
            if (n <= 0) return false;
            buf.append(chunk, static_cast<size_t>(n));
        }
    }
    static void say(int c, const std::string& s) { (void)!write(c, s.data(), s.size()); }
    void session(int c) {
        std::string buf, line;
        Transaction t;
        say(c, "220 fake LMTP\r\n");
        while (read_line(c, buf, line)) {
            if (line.rfind("LHLO", 0) == 0) say(c, "250-fake\r\n250 PIPELINING\r\n");
            else if (line.rfind("MAIL FROM:", 0) == 0) {
                t.mail_from = line.substr(10);
                say(c, mail_reply_ == 250 ? "250 2.1.0 Ok\r\n" : "451 4.3.0 try later\r\n");
            } else if (line.rfind("RCPT TO:", 0) == 0) {
                t.rcpt_to.push_back(line.substr(8));
                say(c, "250 2.1.5 Ok\r\n");
            } else if (line == "DATA") {
                say(c, "354 go\r\n");
                while (read_line(c, buf, line) && line != ".") t.data += line + "\r\n";
                for (size_t i = 0; i < t.rcpt_to.size(); ++i) say(c, "250 2.0.0 Ok: queued as Q1\r\n");
                std::lock_guard<std::mutex> l(mu_);
                done_.push_back(t);
            } else if (line == "QUIT") {
                say(c, "221 bye\r\n");
                return;
            } else say(c, "500 what\r\n");
        }
    }

    std::string path_;
    int mail_reply_;
    int fd_ = -1;
    std::thread thread_;
    std::mutex mu_;
    std::vector<Transaction> done_;
};

Config config_with_socket(const std::string& path) {
    Config c = Config::defaults("mda");
    REQUIRE(c.set("submit_socket", path).ok());
    REQUIRE(c.set("hostname", "mx.test").ok());
    REQUIRE(c.set("sieve_submit_timeout", "5s").ok());
    return c;
}

const std::string kOriginal =
    "From: Carol <carol@example.net>\nTo: alice@example.test\nSubject: Lunch?\nMessage-ID: <m1@example.net>\n\nHi\n.dot\n";

}  // namespace

TEST_CASE("AutoReply vacation: one reply per sender per period, from <>, through submit_socket", "[auto_reply]") {
    test::TempDir tmp;
    FakeQmgr qmgr(tmp.path + "/submit.sock");
    Config config = config_with_socket(tmp.path + "/submit.sock");
    AutoReply ar(config);
    Original m{kOriginal, "carol@example.net", "alice@example.test", "Q0"};
    sieve::Vacation v;
    v.reason = "Away until Monday.";
    v.subject = "Auto: Lunch?";
    v.handle = "h1";
    v.to = "carol@example.net";
    v.days = 7;

    std::filesystem::create_directory(tmp.path + "/Maildir");  // delivered there first
    auto first = ar.vacation(m, tmp.path + "/Maildir", v);
    REQUIRE(first.ok());
    CHECK(*first);
    auto second = ar.vacation(m, tmp.path + "/Maildir", v);
    REQUIRE(second.ok());
    CHECK_FALSE(*second);
    auto tx = qmgr.transactions();
    REQUIRE(tx.size() == 1);
    CHECK(tx[0].mail_from == "<>");
    CHECK(tx[0].rcpt_to == std::vector<std::string>{"<carol@example.net>"});
    CHECK(tx[0].data.find("Auto-Submitted: auto-replied\r\n") != std::string::npos);
    CHECK(tx[0].data.find("In-Reply-To: <m1@example.net>\r\n") != std::string::npos);
    CHECK(tx[0].data.find("From: alice@example.test\r\n") != std::string::npos);
    CHECK(tx[0].data.find("\r\n\r\nAway until Monday.\r\n") != std::string::npos);

    // Another handle is another conversation; a suppressed vacation sends nothing.
    v.handle = "h2";
    CHECK(*ar.vacation(m, tmp.path + "/Maildir", v));
    v.handle = "h3";
    v.suppressed = "list message (List-Id)";
    CHECK_FALSE(*ar.vacation(m, tmp.path + "/Maildir", v));
    CHECK(qmgr.transactions().size() == 2);
}

TEST_CASE("AutoReply redirect: marker, original sender, loop refused; qmgr down is an error", "[auto_reply]") {
    test::TempDir tmp;
    FakeQmgr qmgr(tmp.path + "/submit.sock");
    Config config = config_with_socket(tmp.path + "/submit.sock");
    AutoReply ar(config);
    Original m{kOriginal, "carol@example.net", "alice@example.test", "Q0"};
    REQUIRE(ar.redirect(m, "bob@example.org").ok());
    auto tx = qmgr.transactions();
    REQUIRE(tx.size() == 1);
    CHECK(tx[0].mail_from == "<carol@example.net>");
    CHECK(tx[0].rcpt_to == std::vector<std::string>{"<bob@example.org>"});
    CHECK(tx[0].data.rfind("X-Ferry-Redirected: alice@example.test\r\nFrom: Carol", 0) == 0);
    CHECK(tx[0].data.find("\r\n..dot\r\n") != std::string::npos);  // dot-stuffed on the wire

    std::string looped = redirected_message(kOriginal, "alice@example.test");
    Original back{looped, "carol@example.net", "alice@example.test", "Q1"};
    auto refused = ar.redirect(back, "bob@example.org");
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == 554);
    CHECK(qmgr.transactions().size() == 1);

    REQUIRE(config.set("sieve_redirect_envelope_from", "recipient").ok());
    REQUIRE(ar.redirect(m, "bob@example.org").ok());
    CHECK(qmgr.transactions().back().mail_from == "<alice@example.test>");

    Config nowhere = config_with_socket(tmp.path + "/missing.sock");
    AutoReply down(nowhere);
    auto r = down.redirect(m, "bob@example.org");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == 451);
    sieve::Vacation v;
    v.to = "carol@example.net";
    v.handle = "h";
    std::filesystem::create_directory(tmp.path + "/Maildir2");
    CHECK_FALSE(down.vacation(m, tmp.path + "/Maildir2", v).ok());
    // Not sent, so not remembered: the next message gets its reply once qmgr is back.
    AutoReply up(config);
    auto later = up.vacation(m, tmp.path + "/Maildir2", v);
    REQUIRE(later.ok());
    CHECK(*later);
}

TEST_CASE("submit client: a refused sender is a temporary failure and nothing is queued", "[auto_reply]") {
    test::TempDir tmp;
    FakeQmgr qmgr(tmp.path + "/submit.sock", 451);
    smtp::Submission s{"", {"x@example.org"}, "Subject: t\n\nbody\n"};
    smtp::SubmitOutcome o = smtp::submit(tmp.path + "/submit.sock", "mx.test", s, false, 5);
    CHECK(o.exit_code == EX_TEMPFAIL);
    CHECK(o.error.find("try later") != std::string::npos);
    CHECK(qmgr.transactions().empty());
}

TEST_CASE("duplicate memory: first or last seen, expiry, the same delivery again, bounded", "[auto_reply]") {
    std::vector<MemoryEntry> e;
    const int64_t t0 = 1700000000;
    std::string k = duplicate_key("", "<a@example.org>");
    CHECK(k.size() == 32);
    CHECK(k != duplicate_key("h", "<a@example.org>"));  // the handle keeps the memories apart
    CHECK(k.find("example") == std::string::npos);      // the id itself is not stored
    CHECK_FALSE(duplicate_seen(e, k, "Q1", t0));
    duplicate_remember(e, k, "Q1", 100, false, t0, 10);
    CHECK(duplicate_seen(e, k, "Q2", t0 + 50));
    CHECK_FALSE(duplicate_seen(e, k, "Q1", t0 + 50));  // the delivery that recorded it, tried again
    // Without :last the first time counts: seeing it again at t0 + 50 does not extend the period.
    duplicate_remember(e, k, "Q2", 100, false, t0 + 50, 10);
    CHECK_FALSE(duplicate_seen(e, k, "Q3", t0 + 100));
    // With :last each time seen starts the period anew.
    duplicate_remember(e, k, "Q3", 100, false, t0 + 100, 10);  // expired: recorded anew
    duplicate_remember(e, k, "Q4", 100, true, t0 + 150, 10);
    CHECK(duplicate_seen(e, k, "Q5", t0 + 240));
    CHECK_FALSE(duplicate_seen(e, k, "Q5", t0 + 250));
    // Round trip through the file, and the bound keeps those that expire last.
    auto back = parse_memory(format_memory(e, kDuplicateVersion), kDuplicateVersion);
    REQUIRE(back.size() == 1);
    CHECK(duplicate_seen(back, k, "Q5", t0 + 240));
    CHECK(parse_memory(format_memory(e, kDuplicateVersion), kVacationVersion).empty());
    std::vector<MemoryEntry> many;
    for (int i = 0; i < 10; ++i) duplicate_remember(many, duplicate_key("", std::to_string(i)), "Q", 100 + i, false, 0, 3);
    CHECK(many.size() == 3);
    CHECK(duplicate_seen(many, duplicate_key("", "9"), "R", 0));
    CHECK_FALSE(duplicate_seen(many, duplicate_key("", "0"), "R", 0));
}

TEST_CASE("duplicate memory: kept on disk under its lock", "[auto_reply]") {
    test::TempDir tmp;
    std::string dir = tmp.path + "/sieve";
    {
        auto f = MemoryFile::open(dir, kDuplicateName, kDuplicateVersion);
        REQUIRE(f.ok());
        duplicate_remember(f->entries(), duplicate_key("", "<m@x>"), "Q1", 3600, false, 1000, 10);
        REQUIRE(f->write().ok());
    }
    auto again = MemoryFile::read(dir, kDuplicateName, kDuplicateVersion);
    REQUIRE(again.ok());
    CHECK(duplicate_seen(*again, duplicate_key("", "<m@x>"), "Q2", 2000));
    auto vacation = VacationMemory::open(dir);  // another file in the same directory
    REQUIRE(vacation.ok());
    CHECK(vacation->entries().empty());
}

// The LMTP server's protocol half against a recording backend: scripted dialogues over a socketpair.
#include <catch.hpp>

#include <event2/event.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <thread>

#include "common/event/event.hpp"
#include "common/mail/wire.hpp"
#include "common/smtp/lmtp_server.hpp"

using namespace ferry;

namespace {

// What the backend saw; it outlives the session (which owns and destroys the backend).
struct Record {
    std::string sender, data;
    size_t chunks = 0, largest_chunk = 0, starts = 0, resets = 0;
    smtp::MailParams mail;                    // as the session gave them to the backend
    std::vector<smtp::RcptParams> rcpt_params;
};

// Accepts every recipient but nobody@; answers the end of data from a timer (asynchronously), one
// recipient per tick as ferry-mda does, the second recipient's copy refused.
struct FakeBackend final : smtp::LmtpBackend {
    Record& rec;
    std::vector<std::string> rcpts;
    ReplyFn pending;
    size_t answered = 0;
    EventPtr timer;

    FakeBackend(event_base* base, Record& r) : rec(r) { timer.reset(evtimer_new(base, on_tick, this)); }

    static void on_tick(evutil_socket_t, short, void* arg) {
        auto* self = static_cast<FakeBackend*>(arg);
        size_t i = self->answered++;
        bool last = self->answered == self->rcpts.size();
        // The last reply resets the backend: nothing of it is touched after that one.
        ReplyFn reply = last ? std::exchange(self->pending, nullptr) : self->pending;
        if (!last) {
            timeval tv{0, 5000};
            event_add(self->timer.get(), &tv);
        }
        if (i == 1) reply(make_error(452, "4.2.2", "Mailbox full"));
        else reply("<" + self->rcpts[i] + "> ok");
    }
    void begin(std::string_view s) override { rec.sender = s; }
    // As ferry-relay does: the parameters kept, then the plain calls.
    void mail(std::string_view s, const smtp::MailParams& p) override {
        rec.mail = p;
        begin(s);
    }
    std::optional<Error> rcpt(std::string_view a, const smtp::RcptParams& p) override {
        rec.rcpt_params.push_back(p);
        return recipient(a);
    }
    std::optional<Error> recipient(std::string_view a) override {
        if (a.starts_with("nobody@")) return make_error(550, "5.1.1", "No such user here");
        rcpts.emplace_back(a);
        return std::nullopt;
    }
    void data_start() override { ++rec.starts; }
    void data(std::string_view chunk) override {
        ++rec.chunks;
        rec.largest_chunk = std::max(rec.largest_chunk, chunk.size());
        rec.data += chunk;
    }
    void end_of_data(const std::optional<Error>& refused, ReplyFn reply) override {
        if (refused) {
            for (size_t i = rcpts.size(); i > 0; --i) reply(*refused);
            return;
        }
        pending = std::move(reply);
        timeval tv{0, 20000};
        event_add(timer.get(), &tv);
    }
    void reset() override {
        ++rec.resets;
        rcpts.clear();
        answered = 0;
    }
    // XECHO is served, later (from a timer), as ferry-qmgr serves XQUEUE from its workers.
    AnswerFn echo;
    std::string echo_text;
    EventPtr echo_timer;
    static void on_echo(evutil_socket_t, short, void* arg) {
        auto* self = static_cast<FakeBackend*>(arg);
        std::exchange(self->echo, nullptr)("250-echo\r\n250 " + self->echo_text + "\r\n");
    }
    bool private_command(std::string_view line, AnswerFn answer) override {
        if (!line.starts_with("XECHO")) return false;
        echo = std::move(answer);
        echo_text = line;
        if (!echo_timer) echo_timer.reset(evtimer_new(event_get_base(timer.get()), on_echo, this));
        timeval tv{0, 20000};
        event_add(echo_timer.get(), &tv);
        return true;
    }
};

struct Owner final : smtp::LmtpSession::Owner {
    event_base* base = nullptr;
    std::unique_ptr<smtp::LmtpSession> session;
    void session_closed(smtp::LmtpSession*) override {
        session.reset();
        event_base_loopbreak(base);
    }
};

// One session: a client thread writes `script` and reads until the server closes; returns what it read.
std::string dialogue(const std::string& script, Record& rec, smtp::LmtpSessionSettings settings = {}) {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    EventBase base(event_base_new());
    settings.hostname = "mda.test";
    settings.greeting = "ferry-mda LMTP ready";
    Owner owner;
    owner.base = base.get();
    owner.session = std::make_unique<smtp::LmtpSession>(base.get(), Fd(sv[0]), "L1", settings,
                                                        std::make_unique<FakeBackend>(base.get(), rec), owner);
    std::string got;
    std::thread client([&] {
        for (size_t pos = 0; pos < script.size();) {
            ssize_t n = write(sv[1], script.data() + pos, script.size() - pos);
            if (n <= 0) break;
            pos += static_cast<size_t>(n);
        }
        char buf[4096];
        for (ssize_t n; (n = read(sv[1], buf, sizeof buf)) > 0;) got.append(buf, static_cast<size_t>(n));
    });
    timeval limit{20, 0};
    event_base_loopexit(base.get(), &limit);
    event_base_dispatch(base.get());
    owner.session.reset();
    shutdown(sv[1], SHUT_RDWR);
    client.join();
    close(sv[1]);
    return got;
}

const char* kGreeting =
    "220 mda.test ferry-mda LMTP ready\r\n"
    "250-mda.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-SIZE 10240000\r\n"
    "250-SMTPUTF8\r\n250 DSN\r\n";

}  // namespace

TEST_CASE("lmtp server: one reply per recipient after the dot, in RCPT order, given later", "[smtp]") {
    std::string message = "Subject: big\n\n";
    for (int i = 0; message.size() < 1000000; ++i) message += (i % 3 == 0 ? "." : "") + std::to_string(i) + "\n";
    std::string script = "LHLO qmgr.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@mda.test>\r\nRCPT TO:<nobody@mda.test>\r\n"
                         "RCPT TO:<y@mda.test>\r\nDATA\r\n" + mail::wire_encode(message) + "NOOP\r\nQUIT\r\n";
    Record rec;
    std::string got = dialogue(script, rec);
    CHECK(got == std::string(kGreeting) +
                     "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 No such user here\r\n250 2.1.5 Ok\r\n"
                     "354 Start mail input; end with <CRLF>.<CRLF>\r\n"
                     "250 2.0.0 <x@mda.test> ok\r\n452 4.2.2 Mailbox full\r\n"
                     "250 2.0.0 Ok\r\n"  // the NOOP pipelined behind the dot waited for the replies
                     "221 2.0.0 mda.test closing connection\r\n");
    CHECK(rec.sender == "a@b.test");
    CHECK(rec.starts == 1);
    // The message came unstuffed, with LF line ends, in many bounded chunks: never held whole.
    CHECK(rec.data == message);
    CHECK(rec.chunks > 10);
    CHECK(rec.largest_chunk <= 65536);
}

TEST_CASE("lmtp server: a message over the size limit is refused for every recipient", "[smtp]") {
    smtp::LmtpSessionSettings settings;
    settings.message_size_limit = 100;
    settings.data_limits.max_message_size = 100;
    std::string script = "LHLO q\r\nMAIL FROM:<>\r\nRCPT TO:<x@mda.test>\r\nRCPT TO:<y@mda.test>\r\nDATA\r\n" +
                         std::string(50, 'a') + "\r\n" + std::string(60, 'b') + "\r\n.\r\nQUIT\r\n";
    Record rec;
    std::string got = dialogue(script, rec, settings);
    CHECK(got.find("354 ") != std::string::npos);
    size_t refused = 0;
    for (size_t at = 0; (at = got.find("552 5.3.4", at)) != std::string::npos; ++at) ++refused;
    CHECK(refused == 2);
    CHECK(got.ends_with("221 2.0.0 mda.test closing connection\r\n"));
}

TEST_CASE("lmtp server: sequence errors and RSET", "[smtp]") {
    std::string script = "MAIL FROM:<a@b.test>\r\nLHLO q\r\nRCPT TO:<x@mda.test>\r\nDATA\r\nMAIL FROM:<a@b.test>\r\n"
                         "MAIL FROM:<a@b.test>\r\nDATA\r\nRSET\r\nRCPT TO:<x@mda.test>\r\nEHLO q\r\nQUIT\r\n";
    Record rec;
    std::string got = dialogue(script, rec);
    CHECK(got == "220 mda.test ferry-mda LMTP ready\r\n503 5.5.1 Send LHLO first\r\n" +
                     std::string(kGreeting).substr(std::string("220 mda.test ferry-mda LMTP ready\r\n").size()) +
                     "503 5.5.1 Need MAIL command\r\n503 5.5.1 Need MAIL command\r\n250 2.1.0 Ok\r\n"
                     "503 5.5.1 Nested MAIL command\r\n503 5.5.1 No valid recipients\r\n250 2.0.0 Ok\r\n"
                     "503 5.5.1 Need MAIL command\r\n500 5.5.1 This is an LMTP server: use LHLO\r\n"
                     "221 2.0.0 mda.test closing connection\r\n");
    CHECK(rec.starts == 0);
}

TEST_CASE("lmtp server: SMTPUTF8 and DSN parameters reach the backend", "[smtp][dsn]") {
    std::string script = "LHLO q\r\nMAIL FROM:<a@b.test> SMTPUTF8 BODY=8BITMIME RET=FULL ENVID=e+2B1\r\n"
                         "RCPT TO:<x@mda.test> NOTIFY=SUCCESS ORCPT=rfc822;X@mda.test\r\n"
                         "RCPT TO:<j\xc3\xb6rg@mda.test>\r\nRSET\r\n"
                         "MAIL FROM:<a@b.test>\r\nRCPT TO:<j\xc3\xb6rg@mda.test>\r\n"
                         "RCPT TO:<y@mda.test> NOTIFY=BOGUS\r\nQUIT\r\n";
    Record rec;
    std::string got = dialogue(script, rec);
    CHECK(got == std::string(kGreeting) + "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n"
                                          "250 2.1.0 Ok\r\n"
                                          "553 5.6.7 UTF-8 addresses need the SMTPUTF8 parameter of MAIL FROM (RFC 6531)\r\n"
                                          "501 5.5.4 NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY\r\n"
                                          "221 2.0.0 mda.test closing connection\r\n");
    REQUIRE(rec.rcpt_params.size() == 2);
    CHECK(rec.rcpt_params[0].notify == dsn::notify::success);
    REQUIRE(rec.rcpt_params[0].orcpt);
    CHECK(rec.rcpt_params[0].orcpt->address == "X@mda.test");
    CHECK(rec.rcpt_params[1].notify == 0);
}

TEST_CASE("lmtp server: a private command the backend serves is answered before the next command", "[smtp]") {
    Record rec;
    std::string got = dialogue("XECHO one\r\nNOOP\r\nXOTHER\r\nxecho two\r\nQUIT\r\n", rec);
    CHECK(got == "220 mda.test ferry-mda LMTP ready\r\n250-echo\r\n250 XECHO one\r\n250 2.0.0 Ok\r\n"
                 "500 5.5.1 Command unrecognized\r\n500 5.5.1 Command unrecognized\r\n"
                 "221 2.0.0 mda.test closing connection\r\n");
}

// Unit tests of qmgr's LMTP client: whole transactions against a scripted server on a Unix socket,
// the message streamed from a queue file.
#include <catch.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <thread>

#include "common/event/event.hpp"
#include "mta/qmgr/lmtp_client.hpp"
#include "scratch.hpp"

using namespace ferry;

namespace {

// A scripted LMTP server on a real Unix socket, in a thread: answers DATA with `data_reply`, and
// RCPT from `rcpt_replies` (default 250). Records every line it gets.
struct ScriptedServer {
    std::string dir, path;
    int listen_fd = -1;
    std::string data_reply;
    std::map<std::string, std::string> rcpt_replies;
    std::string lhlo_reply = "250 ok";
    std::vector<std::string> got;
    bool body_sent = false;
    size_t answer_after_dot = 1000;  // how many recipients get their reply after the dot; then it hangs up
    int reply_gap_ms = 0;            // pause before each reply after the dot
    std::string body;  // the DATA lines before the final dot, as sent
    std::thread thread;

    explicit ScriptedServer(std::string reply_to_data, std::map<std::string, std::string> rcpts = {})
        : data_reply(std::move(reply_to_data)), rcpt_replies(std::move(rcpts)) {
        char tmpl[] = "/tmp/ferry-lmtp-XXXXXX";
        dir = mkdtemp(tmpl);
        path = dir + "/lmtp.sock";
        sockaddr_un sun{};
        sun.sun_family = AF_UNIX;
        std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
        listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(bind(listen_fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0);
        REQUIRE(listen(listen_fd, 4) == 0);
        thread = std::thread([this] { serve(); });
    }
    ~ScriptedServer() {
        if (thread.joinable()) thread.join();
        close(listen_fd);
        unlink(path.c_str());
        rmdir(dir.c_str());
    }

    static std::string read_line(int fd) {
        std::string line;
        char c;
        while (read(fd, &c, 1) == 1) {
            line += c;
            if (c == '\n') break;
        }
        return line;
    }
    static void send(int fd, const std::string& s) { (void)!write(fd, s.data(), s.size()); }

    void serve() {
        int fd = accept(listen_fd, nullptr, nullptr);
        if (fd < 0) return;
        timeval tv{5, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        send(fd, "220 scripted LMTP\r\n");
        size_t accepted = 0;
        for (std::string line; !(line = read_line(fd)).empty();) {
            got.push_back(line);
            std::string verb = line.substr(0, 4);
            if (verb == "LHLO") {
                send(fd, lhlo_reply + "\r\n");
            } else if (verb == "MAIL") {
                send(fd, "250 ok\r\n");
            } else if (verb == "RCPT") {
                std::string addr = line.substr(line.find('<') + 1, line.find('>') - line.find('<') - 1);
                std::string reply = rcpt_replies.count(addr) ? rcpt_replies[addr] : "250 2.1.5 ok";
                if (reply[0] == '2') ++accepted;
                send(fd, reply + "\r\n");
            } else if (verb == "DATA") {
                send(fd, data_reply + "\r\n");
                if (data_reply.rfind("354", 0) != 0) continue;
                while (true) {
                    std::string l = read_line(fd);
                    if (l.empty() || l == ".\r\n") break;
                    body_sent = true;
                    body += l;
                }
                for (size_t i = 0; i < accepted && i < answer_after_dot; ++i) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(reply_gap_ms));
                    send(fd, "250 2.0.0 delivered\r\n");
                }
                if (accepted > answer_after_dot) break;
            } else if (verb == "QUIT") {
                send(fd, "221 bye\r\n");
                break;
            }
        }
        close(fd);
    }
};

struct Recorder final : qmgr::LmtpClient::Owner {
    event_base* base = nullptr;
    std::vector<qmgr::LmtpReply> replies;
    std::vector<int> after_dot;  // per recipient: -1 not reported, else whether the dot was sent
    int calls = 0;
    bool twice = false, after_close = false;
    bool closed = false;
    void lmtp_reply(qmgr::LmtpClient&, size_t i, const qmgr::LmtpReply& r, bool dot) override {
        ++calls;
        after_close |= closed;
        if (replies.size() <= i) {
            replies.resize(i + 1);
            after_dot.resize(i + 1, -1);
        }
        twice |= after_dot[i] != -1;
        replies[i] = r;
        after_dot[i] = dot;
    }
    void lmtp_closed(qmgr::LmtpClient&) override {
        closed = true;
        event_base_loopbreak(base);
    }
    // Every one of `n` recipients reported exactly once, before the close.
    bool each_once(size_t n) const {
        return closed && !twice && !after_close && calls == static_cast<int>(n) && replies.size() == n;
    }
};

// One transaction of the real client against `server`, to its end (or 10 s).
Recorder run_transaction(ScriptedServer& server, std::vector<std::string> rcpts,
                         const std::string& data = "Subject: t\n\nbody\n", double timeout = 5,
                         const smtp::MailParams& mail = {}, const std::vector<smtp::RcptParams>& rcpt_params = {}) {
    EventBase base(event_base_new());
    Recorder rec;
    rec.base = base.get();
    test::TempDir dir;
    std::string file = dir.path + "/message";
    // The data sits between other bytes, as in a queue file.
    test::write_text(file, "header\n" + data + "\nend\n");
    qmgr::LmtpJob job{"0123456789ABCDEF", "a@b.test", std::move(rcpts), {}};
    job.data = spool::MessageData{Fd(open(file.c_str(), O_RDONLY | O_CLOEXEC)), 7, data.size()};
    job.mail = mail;
    job.rcpt_params = rcpt_params;
    auto client = qmgr::LmtpClient::start(base.get(), server.path, "qmgr.test", timeout, std::move(job), &rec);
    REQUIRE(client.ok());
    timeval limit = to_timeval(10);
    event_base_loopexit(base.get(), &limit);
    event_base_dispatch(base.get());
    client->reset();
    return rec;
}

}  // namespace

TEST_CASE("qmgr lmtp: the DATA reply decides the message before any body is sent", "[qmgr]") {
    struct Case {
        const char* data_reply;
        int code;                 // what each accepted recipient gets
        const char* text_starts;
    };
    const Case cases[] = {
        {"354 go ahead", 250, "250 2.0.0 delivered"},
        // A 2xx to DATA claims a delivery of a body never sent: a protocol error, deferred.
        {"250 2.0.0 whatever", 0, "protocol error: DATA answered with 250 2.0.0 whatever"},
        {"220 ok", 0, "protocol error: DATA answered with 220"},
        {"334 what", 0, "protocol error: DATA answered with 334"},
        {"451 4.3.0 try later", 451, "451 4.3.0 try later"},
        {"554 5.6.0 no", 554, "554 5.6.0 no"},
    };
    for (const auto& c : cases) {
        INFO(c.data_reply);
        ScriptedServer server(c.data_reply, {{"refused@example.test", "550 5.1.1 no such user"}});
        Recorder rec = run_transaction(server, {"x@example.test", "refused@example.test", "y@example.test"});
        REQUIRE(rec.each_once(3));
        for (size_t i : {size_t{0}, size_t{2}}) {
            CHECK(rec.replies[i].code == c.code);
            CHECK(rec.after_dot[i] == (c.code == 250));
            CHECK(rec.replies[i].text.rfind(c.text_starts, 0) == 0);
            CHECK_FALSE(rec.replies[i].ok() != (c.code == 250));
        }
        CHECK(rec.replies[1].text == "550 5.1.1 no such user");  // its own RCPT reply stays
        CHECK(rec.after_dot[1] == 0);
        server.thread.join();
        CHECK(server.body_sent == (c.code == 250));
        CHECK(server.got.back() == "QUIT\r\n");
    }
}

TEST_CASE("qmgr lmtp: a large message is streamed whole from its queue file", "[qmgr]") {
    std::string data;
    for (int i = 0; data.size() < (1 << 20); ++i) data += (i % 7 == 0 ? ".dotted line " : "line ") + std::to_string(i) + "\n";
    data += "last line without newline";
    ScriptedServer server("354 go ahead");
    Recorder rec = run_transaction(server, {"x@example.test"}, data);
    REQUIRE(rec.each_once(1));
    CHECK(rec.replies[0].code == 250);
    server.thread.join();
    CHECK(server.body + ".\r\n" == mail::wire_encode(data));
}

TEST_CASE("qmgr lmtp: no reply after the final dot is told apart from none before it", "[qmgr]") {
    // The agent answers the first recipient after the data, then hangs up: the second one may have
    // been delivered (after_dot), unlike a recipient of a transaction that ended before the dot.
    ScriptedServer server("354 go ahead");
    server.answer_after_dot = 1;
    Recorder rec = run_transaction(server, {"x@example.test", "y@example.test"});
    REQUIRE(rec.each_once(2));
    CHECK(rec.replies[0].code == 250);
    CHECK(rec.after_dot[0] == 1);
    CHECK(rec.replies[1].code == 0);
    CHECK(rec.after_dot[1] == 1);
    CHECK(rec.replies[1].text.rfind("lost connection to the delivery agent", 0) == 0);

    ScriptedServer refused("452 4.3.1 out of memory");
    Recorder before = run_transaction(refused, {"x@example.test"});
    REQUIRE(before.each_once(1));
    CHECK(before.replies[0].code == 452);
    CHECK(before.after_dot[0] == 0);
}

TEST_CASE("qmgr lmtp: each reply starts the timeout again", "[qmgr]") {
    // Three replies 0.6 s apart take longer than the 1 s timeout in all, never between two of them:
    // an agent that answers each recipient as it becomes durable is not cut off.
    ScriptedServer server("354 go ahead");
    server.reply_gap_ms = 600;
    Recorder rec = run_transaction(server, {"x@example.test", "y@example.test", "z@example.test"},
                                   "Subject: t\n\nbody\n", 1);
    REQUIRE(rec.each_once(3));
    for (const auto& r : rec.replies) CHECK(r.code == 250);
}

TEST_CASE("qmgr lmtp: DSN, SMTPUTF8 and BODY parameters go on only where LHLO offers them", "[qmgr][dsn]") {
    spool::Envelope env;
    env.recipients = {"x@example.test", "y@example.test"};
    env.smtputf8 = true;
    env.body = "8BITMIME";
    env.ret = "HDRS";
    env.envid = "id+2B1";
    env.rcpt_dsn = {{"SUCCESS,DELAY", "rfc822;x+2Bo@example.test"}};  // y: none recorded (an older file)
    smtp::MailParams mail = qmgr::mail_params(env);
    CHECK(mail.envid.value_or("") == "id+1");
    std::vector<smtp::RcptParams> rcpts = {qmgr::rcpt_params(env, 0), qmgr::rcpt_params(env, 1)};
    CHECK(rcpts[0].notify == (dsn::notify::success | dsn::notify::delay));
    CHECK(rcpts[1].notify == 0);
    CHECK_FALSE(rcpts[1].orcpt);

    SECTION("offered") {
        ScriptedServer server("354 go ahead");
        server.lhlo_reply = "250-mda.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 DSN";
        Recorder rec = run_transaction(server, env.recipients, "Subject: t\n\nx\n", 5, mail, rcpts);
        REQUIRE(rec.each_once(2));
        server.thread.join();
        CHECK(server.got[1] == "MAIL FROM:<a@b.test> BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2B1\r\n");
        CHECK(server.got[2] == "RCPT TO:<x@example.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;x+2Bo@example.test\r\n");
        CHECK(server.got[3] == "RCPT TO:<y@example.test>\r\n");
    }
    SECTION("not offered") {
        ScriptedServer server("354 go ahead");
        server.lhlo_reply = "250-mda.test\r\n250 PIPELINING";
        Recorder rec = run_transaction(server, env.recipients, "Subject: t\n\nx\n", 5, mail, rcpts);
        REQUIRE(rec.each_once(2));
        server.thread.join();
        CHECK(server.got[1] == "MAIL FROM:<a@b.test>\r\n");
        CHECK(server.got[2] == "RCPT TO:<x@example.test>\r\n");
    }
}

TEST_CASE("qmgr lmtp: LHLO keywords read case-insensitively, the host name line skipped", "[qmgr][dsn]") {
    smtp::Reply r;
    r.lines = {"DSN", "pipelining", "dsn", "SMTPUTF8 x", "8BITMIMEX"};
    auto o = qmgr::lmtp_offers(r);
    CHECK(o.dsn);
    CHECK(o.smtputf8);
    CHECK_FALSE(o.eight_bit_mime);
    r.lines = {"DSN"};  // only the host name
    CHECK_FALSE(qmgr::lmtp_offers(r).dsn);
}

TEST_CASE("qmgr lmtp: with PIPELINING the RCPTs and DATA follow MAIL unasked, replies read in order", "[qmgr]") {
    ScriptedServer server("354 go", {{"b@x.test", "550 5.1.1 no such user"}});
    server.lhlo_reply = "250-scripted\r\n250 PIPELINING";
    auto rec = run_transaction(server, {"a@x.test", "b@x.test", "c@x.test"});
    REQUIRE(rec.each_once(3));
    CHECK(rec.replies[0].code == 250);
    CHECK(rec.after_dot[0] == 1);
    CHECK(rec.replies[1].code == 550);
    CHECK(rec.after_dot[1] == 0);
    CHECK(rec.replies[2].code == 250);
    CHECK(rec.after_dot[2] == 1);
    REQUIRE(server.got.size() >= 6);
    CHECK(server.got[1].rfind("MAIL FROM:<a@b.test>", 0) == 0);
    CHECK(server.got[2] == "RCPT TO:<a@x.test>\r\n");
    CHECK(server.got[4] == "RCPT TO:<c@x.test>\r\n");
    CHECK(server.got[5] == "DATA\r\n");
    CHECK(server.body == "Subject: t\r\n\r\nbody\r\n");
}

TEST_CASE("qmgr lmtp: with PIPELINING a refusal of every RCPT sends no body, whatever DATA got", "[qmgr]") {
    ScriptedServer server("503 5.5.1 no valid recipients", {{"a@x.test", "550 5.1.1 no such user"}});
    server.lhlo_reply = "250-scripted\r\n250 PIPELINING";
    auto rec = run_transaction(server, {"a@x.test"});
    REQUIRE(rec.each_once(1));
    CHECK(rec.replies[0].code == 550);
    CHECK_FALSE(server.body_sent);
}

// Unit tests of qmgr's bounces and delay warnings: status from replies, reports, the queued file, state.
#include <catch.hpp>

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>

#include "common/spool/spool.hpp"
#include "mta/qmgr/bounce.hpp"
#include "common/spool/state.hpp"
#include "tests/unit/scratch.hpp"

using namespace ferry;
using qmgr::RcptState;
using qmgr::RcptStatus;

namespace {

using test::TempDir;

size_t count_files(const std::string& dir) {
    size_t n = 0;
    if (DIR* d = opendir(dir.c_str())) {
        while (dirent* e = readdir(d))
            if (e->d_name[0] != '.') ++n;
        closedir(d);
    }
    return n;
}

spool::Envelope original() {
    spool::Envelope env;
    env.id = "0123456789ABCDEF";
    env.arrival = 1700000000;
    env.sender = "alice@example.test";
    env.recipients = {"team@example.test", "far@remote.test"};
    return env;
}

const char* kData = "Received: from x by mx.test with ESMTP id 0123456789ABCDEF;\n\tdate\nSubject: hello\n\nsecret body\n";

}  // namespace

TEST_CASE("qmgr bounce: the status a reply carries", "[qmgr]") {
    struct Row {
        const char* reply;
        const char* fallback;
        const char* status;
    };
    const Row rows[] = {
        {"550 5.1.1 no such user", "5.0.0", "5.1.1"},
        {"552 5.2.2 Mailbox full", "5.0.0", "5.2.2"},
        {"554 5.4.6 alias loop", "5.0.0", "5.4.6"},
        {"451 4.3.0 try later", "4.0.0", "4.3.0"},
        {"452-4.2.2 first line", "4.0.0", "4.2.2"},
        {"550 no status here", "5.0.0", "5.0.0"},
        {"550", "4.0.0", "5.0.0"},
        {"550 4.1.1 class differs from the code", "5.0.0", "5.0.0"},
        {"421 4.4.2 timeout", "4.0.0", "4.4.2"},
        {"550 5.1.123456789012345 too long", "5.0.0", "5.0.0"},
        {"no relay transport configured", "4.0.0", "4.0.0"},
        {"cannot connect to /run/ferry/lmtp.sock", "4.4.1", "4.4.1"},
        {"", "5.0.0", "5.0.0"},
        {"5501 5.1.1 four digits", "5.0.0", "5.0.0"},
        {"650 6.1.1 no such class", "5.0.0", "5.0.0"},
    };
    for (const auto& row : rows) {
        INFO(row.reply);
        CHECK(qmgr::status_of_reply(row.reply, row.fallback) == row.status);
    }
}

TEST_CASE("qmgr bounce: durations as the log and the report say them", "[qmgr]") {
    CHECK(qmgr::duration_text(5 * 86400) == "5d");
    CHECK(qmgr::duration_text(4 * 3600) == "4h");
    CHECK(qmgr::duration_text(90) == "90s");
    CHECK(qmgr::duration_text(120) == "2m");
    CHECK(qmgr::duration_text(3) == "3s");
    CHECK(qmgr::duration_text(0) == "0s");
}

TEST_CASE("qmgr bounce: a report from the recipient state", "[qmgr]") {
    RcptState failed{0, RcptStatus::failed, 0, 0, "team@example.test", "ghost@example.test", "550 5.1.1 No such user here"};
    failed.dsn_status = "5.1.1";
    RcptState expired{1, RcptStatus::failed, 4, 0, "far@remote.test", "far@remote.test",
                      "message expired after 3s in the queue (last error: no relay transport configured)"};
    expired.dsn_status = "4.4.7";
    auto env = original();
    auto report = qmgr::make_report(env, kData, {&failed, &expired}, dsn::Action::failed, "mx.test", 0, 1700000100);
    CHECK(report.original_sender == "alice@example.test");
    CHECK(report.queue_id == env.id);
    CHECK(report.original_message.find("secret body") == std::string::npos);
    CHECK(report.original_message.find("Subject: hello\n") != std::string::npos);
    REQUIRE(report.recipients.size() == 2);
    CHECK(report.recipients[0].final_recipient == "ghost@example.test");
    CHECK(report.recipients[0].original_recipient == "team@example.test");
    CHECK(report.recipients[0].status == "5.1.1");
    CHECK(report.recipients[1].status == "4.4.7");
    CHECK(report.recipients[1].action == dsn::Action::failed);
    std::string text = dsn::build(report);
    CHECK(text.find("\nFinal-Recipient: rfc822; far@remote.test\nAction: failed\nStatus: 4.4.7\n"
                    "Diagnostic-Code: X-Ferry; message expired after 3s") != std::string::npos);

    SECTION("a failed recipient without a stored status takes its reply's") {
        failed.dsn_status.clear();
        failed.reply = "552 5.2.2 Mailbox full";
        auto r = qmgr::make_report(env, kData, {&failed}, dsn::Action::failed, "mx.test", 0, 1700000100);
        CHECK(r.recipients.at(0).status == "5.2.2");
    }
    SECTION("a delay warning says until when") {
        RcptState waiting{1, RcptStatus::deferred, 2, 1700000200, "far@remote.test", "far@remote.test",
                          "451 4.4.1 no answer"};
        auto r = qmgr::make_report(env, kData, {&waiting}, dsn::Action::delayed, "mx.test", 1700432000, 1700000100);
        REQUIRE(r.recipients.size() == 1);
        CHECK(r.recipients[0].action == dsn::Action::delayed);
        CHECK(r.recipients[0].status == "4.4.1");
        CHECK(r.recipients[0].retry_until == 1700432000);
        CHECK(dsn::build(r).find("Will-Retry-Until: ") != std::string::npos);
    }
}

TEST_CASE("qmgr bounce: the report is committed into queue/ from <> to the sender", "[qmgr]") {
    TempDir dir;
    REQUIRE(spool::ensure_layout(dir.path).ok());
    RcptState failed{0, RcptStatus::failed, 0, 0, "team@example.test", "ghost@example.test", "550 5.1.1 No such user here"};
    auto report = qmgr::make_report(original(), kData, {&failed}, dsn::Action::failed, "mx.test", 0, 1700000100);
    auto id = qmgr::queue_report(dir.path, report, spool::new_queue_id());
    REQUIRE(id.ok());
    CHECK(*id != original().id);
    CHECK(count_files(dir.path + "/incoming") == 0);
    auto m = spool::read_file(dir.path + "/queue/" + *id);
    REQUIRE(m.ok());
    CHECK(m->envelope.id == *id);
    CHECK(m->envelope.sender.empty());
    CHECK(m->envelope.recipients == std::vector<std::string>{"alice@example.test"});
    CHECK(m->envelope.arrival == 1700000100);
    CHECK(m->data.rfind("Received: by mx.test (ferry-qmgr) id " + *id + ";\n\t", 0) == 0);
    CHECK(m->data.find("\nMessage-ID: <" + *id + ".bounce@mx.test>\n") != std::string::npos);
    CHECK(m->data.find("Content-Type: multipart/report; report-type=delivery-status;") != std::string::npos);
    CHECK(m->data.find("X-Ferry-Queue-ID: 0123456789ABCDEF\n") != std::string::npos);

    SECTION("a second round is a second message with its own Message-ID") {
        auto again = qmgr::queue_report(dir.path, report, spool::new_queue_id());
        REQUIRE(again.ok());
        CHECK(*again != *id);
        CHECK(count_files(dir.path + "/queue") == 2);
    }
    SECTION("under the id it is given; a taken id is replaced and told before the commit") {
        std::string chosen = spool::new_queue_id();
        std::vector<std::string> told;
        auto record = [&](const std::string& taken) -> Result<void> {
            told.push_back(taken);
            return {};
        };
        auto own = qmgr::queue_report(dir.path, report, chosen, record);
        REQUIRE(own.ok());
        CHECK(*own == chosen);
        CHECK(told == std::vector<std::string>{chosen});
        // The same id again is taken (by the first report): another one, told before it is committed.
        told.clear();
        auto other = qmgr::queue_report(dir.path, report, chosen, record);
        REQUIRE(other.ok());
        CHECK(*other != chosen);
        CHECK(told == std::vector<std::string>{*other});
        CHECK(count_files(dir.path + "/queue") == 3);
    }
    SECTION("a refusal before the commit queues nothing") {
        auto refuse = [](const std::string&) -> Result<void> { return make_error(0, "", "cannot save"); };
        auto none = qmgr::queue_report(dir.path, report, spool::new_queue_id(), refuse);
        REQUIRE_FALSE(none.ok());
        CHECK(none.error().what() == "cannot save");
        CHECK(count_files(dir.path + "/queue") == 1);
        CHECK(count_files(dir.path + "/incoming") == 0);
    }
    SECTION("a spool that cannot be written is an error, and leaves nothing behind") {
        auto bad = qmgr::queue_report(dir.path + "/missing", report, spool::new_queue_id());
        CHECK_FALSE(bad.ok());
    }
}

TEST_CASE("qmgr state: bounced recipients, DSN status and the delay warning round trip", "[qmgr]") {
    qmgr::MessageState s;
    s.id = "AB12";
    s.warned = 1700000500;
    RcptState a{0, RcptStatus::failed, 0, 0, "a@b.test", "a@b.test", "550 5.1.1 no"};
    a.dsn_status = "5.1.1";
    RcptState b{1, RcptStatus::bounced, 3, 0, "c@remote.test", "c@remote.test", "message expired"};
    b.dsn_status = "4.4.7";
    RcptState c{2, RcptStatus::deferred, 1, 1700000900, "d@remote.test", "d@remote.test", "451 4.4.1 later"};
    s.rcpts = {a, b, c};
    std::string text = qmgr::encode_state(s);
    CHECK(text.find("\nwarned 1700000500\n") != std::string::npos);
    CHECK(text.find("\trcpt") == std::string::npos);
    CHECK(text.find("\tbounced\t3\t0\tc@remote.test\tc@remote.test\tmessage expired\t4.4.7\n") != std::string::npos);
    auto d = qmgr::decode_state(text);
    REQUIRE(d.ok());
    CHECK(d->warned == 1700000500);
    REQUIRE(d->rcpts.size() == 3);
    CHECK(d->rcpts[0].status == RcptStatus::failed);
    CHECK(d->rcpts[0].dsn_status == "5.1.1");
    CHECK(d->rcpts[1].status == RcptStatus::bounced);
    CHECK(d->rcpts[1].dsn_status == "4.4.7");
    CHECK(d->rcpts[2].dsn_status.empty());
    CHECK(qmgr::encode_state(*d) == text);

    // failed waits for its bounce; bounced and done are final.
    CHECK_FALSE(qmgr::is_final(RcptStatus::failed));
    CHECK(qmgr::is_final(RcptStatus::bounced));
    CHECK(qmgr::is_final(RcptStatus::delivered));
    qmgr::MessageState two{"X", {a, b}, 0};
    CHECK_FALSE(two.all_final());
    two.rcpts[0].status = RcptStatus::bounced;
    CHECK(two.all_final());

    SECTION("a file without the DSN field (an older qmgr's) reads with an empty status") {
        auto old = qmgr::decode_state("ferry-state 1\nid AB\nrcpt\t0\tfailed\t0\t0\ta@b.test\ta@b.test\t550 no\nend 1\n");
        REQUIRE(old.ok());
        CHECK(old->rcpts.at(0).dsn_status.empty());
        CHECK(old->warned == 0);
    }
    SECTION("a bad warned record is refused") {
        CHECK_FALSE(qmgr::decode_state("ferry-state 1\nid AB\nwarned soon\nend 0\n").ok());
        CHECK_FALSE(qmgr::decode_state("ferry-state 1\nid AB\nwarned -5\nend 0\n").ok());
    }
    SECTION("a DSN status that is none is not written") {
        s.rcpts[0].dsn_status = "5.1.1\tforged";
        CHECK(qmgr::encode_state(s).find("forged") == std::string::npos);
    }
}

TEST_CASE("qmgr state: DSN status syntax", "[qmgr]") {
    for (const char* good : {"5.1.1", "4.4.7", "2.0.0", "5.123.999", "4.10.1"}) {
        INFO(good);
        CHECK(qmgr::valid_dsn_status(good));
    }
    for (const char* bad : {"", "5", "5.1", "5.1.", "3.1.1", "5..1", "5.1.1.1", "a.b.c", "5.1.1 ", "5.1234.1", "5.1.1234", ".5.1.1"}) {
        INFO(bad);
        CHECK_FALSE(qmgr::valid_dsn_status(bad));
    }
}

namespace {

// The header section read_header gives for `data` queued as a message of `dir`.
std::string queued_header(const std::string& dir, const std::string& data, size_t max = qmgr::kMaxQuotedHeader) {
    spool::Envelope env = original();
    auto w = spool::Writer::create(dir, env);
    REQUIRE(w.ok());
    REQUIRE(w->append(data).ok());
    REQUIRE(w->commit().ok());
    auto opened = spool::open_message(dir + "/queue/" + w->id());
    REQUIRE(opened.ok());
    REQUIRE(opened->status == spool::OpenedMessage::Status::ok);
    auto head = qmgr::read_header(opened->data, max);
    REQUIRE(head.ok());
    return *head;
}

}  // namespace

TEST_CASE("qmgr bounce: the quoted header section is read from the queue file alone", "[qmgr]") {
    TempDir dir;
    REQUIRE(spool::ensure_layout(dir.path).ok());
    CHECK(queued_header(dir.path, kData) == "Received: from x by mx.test with ESMTP id 0123456789ABCDEF;\n\tdate\nSubject: hello\n");
    CHECK(queued_header(dir.path, "A: 1\n") == "A: 1\n");
    CHECK(queued_header(dir.path, "\nbody only\n").empty());
    CHECK(queued_header(dir.path, "").empty());
    // The empty line falls across two of the pieces it is read in.
    std::string long_field = "X-Long: " + std::string(16384 - 9, 'a') + "\n";
    CHECK(queued_header(dir.path, long_field + "\nbody\n") == long_field);
    // A header section longer than the limit is cut after its last whole line that fits.
    std::string big = "A: 1\n" + std::string(200, 'b') + "\n\nbody\n";
    CHECK(queued_header(dir.path, big, 100) == "A: 1\n");
    CHECK(queued_header(dir.path, std::string(300, 'c'), 100) == std::string(100, 'c') + "\n");
    // A large body is never part of it.
    CHECK(queued_header(dir.path, "Subject: big\n\n" + std::string(1 << 20, 'x')) == "Subject: big\n");
}

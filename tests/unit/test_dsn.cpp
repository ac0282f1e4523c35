// Unit tests of RFC 3464 delivery status notifications.
#include <catch.hpp>

#include "common/dsn.hpp"

using namespace ferry;

namespace {

dsn::Report sample(dsn::Action action) {
    dsn::Report r;
    r.reporting_mta = "mx.test";
    r.queue_id = "ABC123";
    r.original_sender = "alice@sender.test";
    r.arrival = 1700000000;
    r.now = 1700000100;
    r.original_message = "Subject: hello\nFrom: alice@sender.test\n\nsecret body\n";
    dsn::RecipientStatus rc;
    rc.final_recipient = "nobody@example.test";
    rc.original_recipient = "team@example.test";
    rc.action = action;
    rc.status = action == dsn::Action::failed ? "5.1.1" : "4.4.1";
    rc.diagnostic = "550 5.1.1 <nobody@example.test>: no such user";
    rc.last_attempt = 1700000099;
    rc.retry_until = 1700432000;
    r.recipients.push_back(rc);
    return r;
}

}  // namespace

TEST_CASE("dsn: a failure report is an RFC 3464 multipart/report") {
    std::string m = dsn::build(sample(dsn::Action::failed));
    CHECK(m.find("Content-Type: multipart/report; report-type=delivery-status;") != std::string::npos);
    CHECK(m.find("To: <alice@sender.test>\n") != std::string::npos);
    CHECK(m.find("Auto-Submitted: auto-replied\n") != std::string::npos);
    CHECK(m.find("Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.test\n") != std::string::npos);
    CHECK(m.find("\nFinal-Recipient: rfc822; nobody@example.test\n") != std::string::npos);
    CHECK(m.find("\nOriginal-Recipient: rfc822; team@example.test\n") != std::string::npos);
    CHECK(m.find("\nAction: failed\nStatus: 5.1.1\n") != std::string::npos);
    CHECK(m.find("Diagnostic-Code: smtp; 550 5.1.1") != std::string::npos);
    CHECK(m.find("Content-Type: text/rfc822-headers\n\nSubject: hello\nFrom: alice@sender.test\n") != std::string::npos);
    CHECK(m.find("secret body") == std::string::npos);  // headers only are returned
    CHECK(m.find("Subject: Undelivered Mail Returned to Sender") != std::string::npos);
    // Three body parts and a closing boundary.
    std::string b = "--ABC123/mx.test";
    size_t count = 0;
    for (size_t p = m.find(b); p != std::string::npos; p = m.find(b, p + 1)) ++count;
    CHECK(count == 4);
    CHECK(m.find(b + "--\n") != std::string::npos);
    CHECK(m.find('\r') == std::string::npos);
}

TEST_CASE("dsn: a delay warning says delayed and until when") {
    std::string m = dsn::build(sample(dsn::Action::delayed));
    CHECK(m.find("\nAction: delayed\nStatus: 4.4.1\n") != std::string::npos);
    CHECK(m.find("Will-Retry-Until: ") != std::string::npos);
    CHECK(m.find("Subject: Delayed Mail (still being retried)") != std::string::npos);
}

TEST_CASE("dsn: never to the null sender") {
    CHECK_FALSE(dsn::should_report(""));
    CHECK(dsn::should_report("a@b.test"));
}

TEST_CASE("dsn: header_of and dates") {
    CHECK(dsn::header_of("A: 1\nB: 2\n\nbody\n") == "A: 1\nB: 2\n");
    CHECK(dsn::header_of("A: 1\n") == "A: 1\n");
    CHECK(dsn::header_of("\nbody only\n").empty());
    CHECK(dsn::rfc5322_date(0) == "Thu, 01 Jan 1970 00:00:00 +0000");
}

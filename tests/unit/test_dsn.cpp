// Unit tests of RFC 3464 delivery status notifications.
#include <catch.hpp>

#include "common/mail/dsn.hpp"

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

TEST_CASE("dsn: header_of") {
    CHECK(dsn::header_of("A: 1\nB: 2\n\nbody\n") == "A: 1\nB: 2\n");
    CHECK(dsn::header_of("A: 1\n") == "A: 1\n");
    CHECK(dsn::header_of("\nbody only\n").empty());
}

TEST_CASE("dsn: Diagnostic-Code type is smtp for a reply, X-Ferry for a reason of ferry's own") {
    CHECK(std::string(dsn::diagnostic_type("550 5.1.1 no such user")) == "smtp");
    CHECK(std::string(dsn::diagnostic_type("451-4.3.0 first line")) == "smtp");
    CHECK(std::string(dsn::diagnostic_type("552")) == "smtp");
    CHECK(std::string(dsn::diagnostic_type("no relay transport configured")) == "X-Ferry");
    CHECK(std::string(dsn::diagnostic_type("55 short")) == "X-Ferry");
    CHECK(std::string(dsn::diagnostic_type("5500 too long")) == "X-Ferry");
    CHECK(std::string(dsn::diagnostic_type("")) == "X-Ferry");
    auto r = sample(dsn::Action::failed);
    r.recipients[0].diagnostic = "message expired after 5d in the queue (last error: x)";
    std::string m = dsn::build(r);
    CHECK(m.find("\nDiagnostic-Code: X-Ferry; message expired after 5d") != std::string::npos);
}

TEST_CASE("dsn: a report may carry its own Message-ID") {
    CHECK(dsn::build(sample(dsn::Action::failed)).find("\nMessage-ID: <ABC123.bounce@mx.test>\n") != std::string::npos);
    CHECK(dsn::build(sample(dsn::Action::delayed)).find("\nMessage-ID: <ABC123.delay@mx.test>\n") != std::string::npos);
    auto r = sample(dsn::Action::failed);
    r.message_id = "<NEW1.bounce@mx.test>";
    std::string m = dsn::build(r);
    CHECK(m.find("\nMessage-ID: <NEW1.bounce@mx.test>\n") != std::string::npos);
    CHECK(m.find("ABC123.bounce") == std::string::npos);
}

TEST_CASE("dsn: every recipient of a round is in one report") {
    auto r = sample(dsn::Action::failed);
    auto second = r.recipients[0];
    second.final_recipient = "ghost@example.test";
    second.original_recipient = "ghost@example.test";
    second.status = "5.2.2";
    second.diagnostic = "552 5.2.2 Mailbox full";
    r.recipients.push_back(second);
    std::string m = dsn::build(r);
    CHECK(m.find("\nFinal-Recipient: rfc822; nobody@example.test\n") != std::string::npos);
    CHECK(m.find("\nFinal-Recipient: rfc822; ghost@example.test\nAction: failed\nStatus: 5.2.2\n") != std::string::npos);
    CHECK(m.find("<ghost@example.test>: 552 5.2.2 Mailbox full\n") != std::string::npos);
    // Per-recipient fields are separated from the per-message ones and from each other by a blank line.
    size_t status_part = m.find("Content-Type: message/delivery-status\n\n");
    REQUIRE(status_part != std::string::npos);
    size_t headers_part = m.find("Content-Type: text/rfc822-headers");
    std::string fields = m.substr(status_part, headers_part - status_part);
    CHECK(fields.find("X-Ferry-Queue-ID: ABC123\nArrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\n") != std::string::npos);
    CHECK(fields.find("\n\nFinal-Recipient: rfc822; nobody@example.test\n") != std::string::npos);
    CHECK(fields.find("\n\nFinal-Recipient: rfc822; ghost@example.test\n") != std::string::npos);
}

TEST_CASE("dsn: RET=FULL returns the whole message, ENVID and ORCPT come back", "[dsn]") {
    dsn::Report r = sample(dsn::Action::failed);
    r.full_message = true;
    r.envid = "QQ314159";
    r.recipients[0].orcpt = dsn::Orcpt{"rfc822", "Team@Example.test"};
    std::string m = dsn::build(r);
    CHECK(m.find("Content-Type: message/rfc822\n\nSubject: hello\nFrom: alice@sender.test\n\nsecret body\n") !=
          std::string::npos);
    CHECK(m.find("text/rfc822-headers") == std::string::npos);
    CHECK(m.find("\nOriginal-Envelope-Id: QQ314159\n") != std::string::npos);
    // ORCPT as the sender gave it wins over the alias the recipient expanded from.
    CHECK(m.find("\nOriginal-Recipient: rfc822; Team@Example.test\n") != std::string::npos);
    CHECK(m.find("team@example.test\n") == std::string::npos);
}

TEST_CASE("dsn: success reports say delivered or relayed", "[dsn]") {
    for (auto action : {dsn::Action::delivered, dsn::Action::relayed, dsn::Action::expanded}) {
        dsn::Report r = sample(action);
        r.recipients[0].status = "2.0.0";
        std::string m = dsn::build(r);
        INFO(dsn::action_name(action));
        CHECK(m.find(std::string("\nAction: ") + dsn::action_name(action) + "\nStatus: 2.0.0\n") != std::string::npos);
        CHECK(m.find("Subject: Successful Mail Delivery Report") != std::string::npos);
        CHECK(m.find("Message-ID: <ABC123.success@mx.test>") != std::string::npos);
        CHECK(m.find("Content-Type: text/rfc822-headers\n\nSubject: hello") != std::string::npos);
        CHECK(m.find("Will-Retry-Until") == std::string::npos);
    }
}

TEST_CASE("dsn: ferry-relay's marker for a recipient relayed to a server without DSN", "[dsn]") {
    CHECK(dsn::relayed_without_dsn("250 2.0.0 Relayed to a server without DSN: <a@b>: host mx[192.0.2.1]: 250 Ok"));
    CHECK(dsn::relayed_without_dsn("250 Relayed to a server without DSN: <a@b>"));
    // Only at its place: a peer's text or an address that contains it later does not count.
    CHECK_FALSE(dsn::relayed_without_dsn("250 2.0.0 <a@b>: delivered to host mx: 250 Relayed to a server without DSN: x"));
    CHECK_FALSE(dsn::relayed_without_dsn("550 5.1.1 Relayed to a server without DSN: <a@b>"));
    CHECK_FALSE(dsn::relayed_without_dsn("250"));
    CHECK_FALSE(dsn::relayed_without_dsn(""));
}

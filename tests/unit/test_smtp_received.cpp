// Unit tests of ferry-smtpd's Received: header and RFC 5322 date.
#include <catch.hpp>

#include <cstdlib>
#include <ctime>
#include <string>

#include "common/mail/date.hpp"
#include "common/smtp/smtp_proto.hpp"
#include "mta/smtpd/received.hpp"

using namespace ferry::smtpd;
namespace mail = ferry::mail;

namespace {

// Sets TZ for one test and puts the old value back.
struct ScopedTz {
    explicit ScopedTz(const char* tz) {
        if (const char* old = getenv("TZ")) saved = old, had = true;
        set(tz);
    }
    ~ScopedTz() {
        if (had) setenv("TZ", saved.c_str(), 1);
        else unsetenv("TZ");
        tzset();
    }
    static void set(const char* tz) {
        setenv("TZ", tz, 1);
        tzset();
    }
    std::string saved;
    bool had = false;
};

}  // namespace

TEST_CASE("smtp received: header form, protocol names and the for clause", "[smtp]") {
    ScopedTz tz("UTC0");
    TraceInfo t;
    t.helo = "client.test";
    t.client_ip = "192.0.2.7";
    t.hostname = "mx.test";
    t.esmtp = true;
    t.queue_id = "0123456789ABCDEF";
    t.recipients = {"demo@example.test"};
    t.when = 1700000000;  // Tue, 14 Nov 2023 22:13:20 UTC
    CHECK(received_header(t) ==
          "Received: from client.test (unknown [192.0.2.7])\n"
          "\tby mx.test (ferry) with ESMTP id 0123456789ABCDEF\n"
          "\tfor <demo@example.test>; Tue, 14 Nov 2023 22:13:20 +0000\n");

    t.recipients.push_back("other@example.test");  // several: no "for", nobody learns the others
    t.client_ip = "::1";
    CHECK(received_header(t) ==
          "Received: from client.test (unknown [IPv6:::1])\n"
          "\tby mx.test (ferry) with ESMTP id 0123456789ABCDEF; Tue, 14 Nov 2023 22:13:20 +0000\n");

    t.helo = "evil\r\nX-Injected: 1";
    CHECK(received_header(t).find("\nX-Injected") == std::string::npos);

    CHECK(with_protocol(TraceInfo{}) == "SMTP");
    t.tls = true;
    CHECK(with_protocol(t) == "ESMTPS");
    t.authenticated = true;
    CHECK(with_protocol(t) == "ESMTPSA");
    t.tls = false;
    CHECK(with_protocol(t) == "ESMTPA");
}

TEST_CASE("smtp received: TLS and the login are recorded as comments before by", "[smtp]") {
    ScopedTz tz("UTC0");
    TraceInfo t;
    t.helo = "client.test";
    t.client_ip = "192.0.2.7";
    t.hostname = "mx.test";
    t.esmtp = true;
    t.tls = true;
    t.tls_description = "TLS1.3 with AES-256-GCM";
    t.authenticated = true;
    t.auth_user = "demo@example.test";
    t.queue_id = "0123456789ABCDEF";
    t.recipients = {"friend@elsewhere.test"};
    t.when = 1700000000;
    CHECK(received_header(t) ==
          "Received: from client.test (unknown [192.0.2.7])\n"
          "\t(using TLS1.3 with AES-256-GCM)\n"
          "\t(authenticated as demo@example.test)\n"
          "\tby mx.test (ferry) with ESMTPSA id 0123456789ABCDEF\n"
          "\tfor <friend@elsewhere.test>; Tue, 14 Nov 2023 22:13:20 +0000\n");

    t.authenticated = false;  // TLS only
    CHECK(received_header(t).find("authenticated") == std::string::npos);
    CHECK(received_header(t).find("with ESMTPS id") != std::string::npos);

    // Nothing can close the comment early or start a new line.
    t.tls_description = "TLS1.3) (x\nX-Injected: 1";
    t.authenticated = true;
    t.auth_user = "a)b\r\nX-Evil: 1";
    std::string h = received_header(t);
    CHECK(h.find("\nX-") == std::string::npos);
    CHECK(h.find("(using TLS1.3? ?x?X-Injected: 1)\n") != std::string::npos);
    CHECK(h.find("(authenticated as a?b??X-Evil: 1)\n") != std::string::npos);
}

TEST_CASE("mail date: RFC 5322 dates with offsets in local time", "[smtp][mail]") {
    ScopedTz tz("EST5EDT");  // a negative offset, with daylight saving
    CHECK(mail::rfc5322_date(1700000000) == "Tue, 14 Nov 2023 17:13:20 -0500");
    CHECK(mail::rfc5322_date(1690000000) == "Sat, 22 Jul 2023 00:26:40 -0400");
    ScopedTz::set("IST-5:30");  // a half-hour offset, as a POSIX TZ string (no tzdata needed)
    CHECK(mail::rfc5322_date(1700000000) == "Wed, 15 Nov 2023 03:43:20 +0530");
    CHECK(mail::rfc5322_date(1700000000, mail::Zone::utc) == "Tue, 14 Nov 2023 22:13:20 +0000");
    CHECK(mail::rfc5322_date(1704067200, mail::Zone::utc) == "Mon, 1 Jan 2024 00:00:00 +0000");
}

TEST_CASE("smtp received: the longest header fits the trace allowance of the delivery agent", "[smtp]") {
    // ferry-mda takes message_size_limit + kTraceAllowance, so a message smtpd accepted at exactly
    // the limit is delivered with this header on top, whatever the client sent in EHLO.
    TraceInfo t;
    t.helo = std::string(65536, 'h');
    t.client_ip = "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff";
    t.hostname = std::string(255, 'm');
    t.esmtp = t.tls = t.authenticated = true;
    t.tls_description = std::string(1000, 't');
    t.auth_user = std::string(1000, 'u');
    t.queue_id = std::string(64, 'Q');
    t.recipients = {std::string(1000, 'r')};
    t.when = 0;
    std::string h = received_header(t);
    CHECK(h.size() < ferry::smtp::kTraceAllowance / 4);
    CHECK(h.find(std::string(600, 'h')) == std::string::npos);  // the EHLO argument is cut
}

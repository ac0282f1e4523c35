// Delivery status notifications (RFC 3464 multipart/report) for bounces and delay warnings.
#include "common/mail/dsn.hpp"

#include "common/mail/date.hpp"

namespace ferry::dsn {

namespace {

// DSN dates are in UTC so that a report reads the same wherever the queue runs.
std::string date(int64_t unix_seconds) { return mail::rfc5322_date(unix_seconds, mail::Zone::utc); }

}  // namespace

bool should_report(const std::string& original_sender) { return !original_sender.empty(); }

std::string header_of(const std::string& message) {
    if (message.rfind("\n", 0) == 0) return "";
    size_t end = message.find("\n\n");
    return end == std::string::npos ? message : message.substr(0, end + 1);
}

const char* diagnostic_type(const std::string& d) {
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    bool reply = d.size() >= 3 && digit(d[0]) && digit(d[1]) && digit(d[2]) && (d.size() == 3 || d[3] == ' ' || d[3] == '-');
    return reply ? "smtp" : "X-Ferry";
}

namespace {

bool any_failed(const Report& r) {
    for (const auto& rc : r.recipients)
        if (rc.action == Action::failed) return true;
    return false;
}

std::string human_part(const Report& r, bool failed) {
    std::string out;
    out += "This is the mail system at host " + r.reporting_mta + ".\n\n";
    if (failed) {
        out += "I'm sorry to have to inform you that your message could not\n"
               "be delivered to one or more recipients. The details are below.\n\n";
    } else {
        out += "Your message could not be delivered yet to one or more recipients.\n"
               "The mail system will keep trying; you do not need to send it again.\n\n";
    }
    for (const auto& rc : r.recipients) {
        out += "<" + rc.final_recipient + ">";
        if (!rc.original_recipient.empty() && rc.original_recipient != rc.final_recipient)
            out += " (expanded from <" + rc.original_recipient + ">)";
        out += ": " + rc.diagnostic + "\n";
        if (rc.action == Action::delayed && rc.retry_until)
            out += "    will be retried until " + date(rc.retry_until) + "\n";
    }
    return out;
}

std::string status_part(const Report& r) {
    std::string out;
    out += "Reporting-MTA: dns; " + r.reporting_mta + "\n";
    out += "X-Ferry-Queue-ID: " + r.queue_id + "\n";
    if (r.arrival) out += "Arrival-Date: " + date(r.arrival) + "\n";
    for (const auto& rc : r.recipients) {
        out += "\n";
        out += "Final-Recipient: rfc822; " + rc.final_recipient + "\n";
        if (!rc.original_recipient.empty() && rc.original_recipient != rc.final_recipient)
            out += "Original-Recipient: rfc822; " + rc.original_recipient + "\n";
        out += std::string("Action: ") + (rc.action == Action::failed ? "failed" : "delayed") + "\n";
        out += "Status: " + rc.status + "\n";
        if (!rc.diagnostic.empty())
            out += std::string("Diagnostic-Code: ") + diagnostic_type(rc.diagnostic) + "; " + rc.diagnostic + "\n";
        if (rc.last_attempt) out += "Last-Attempt-Date: " + date(rc.last_attempt) + "\n";
        if (rc.action == Action::delayed && rc.retry_until)
            out += "Will-Retry-Until: " + date(rc.retry_until) + "\n";
    }
    return out;
}

}  // namespace

std::string build(const Report& r) {
    bool failed = any_failed(r);
    std::string boundary = r.queue_id + "/" + r.reporting_mta;
    std::string out;
    out += "From: Mail Delivery System <MAILER-DAEMON@" + r.reporting_mta + ">\n";
    out += "To: <" + r.original_sender + ">\n";
    out += failed ? "Subject: Undelivered Mail Returned to Sender\n"
                  : "Subject: Delayed Mail (still being retried)\n";
    out += "Date: " + date(r.now) + "\n";
    if (!r.message_id.empty()) out += "Message-ID: " + r.message_id + "\n";
    else out += "Message-ID: <" + r.queue_id + (failed ? ".bounce@" : ".delay@") + r.reporting_mta + ">\n";
    out += "Auto-Submitted: auto-replied\n";
    out += "MIME-Version: 1.0\n";
    out += "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"" + boundary + "\"\n";
    out += "\nThis is a MIME-encapsulated message.\n\n";
    out += "--" + boundary + "\n";
    out += "Content-Description: Notification\nContent-Type: text/plain; charset=us-ascii\n\n";
    out += human_part(r, failed) + "\n";
    out += "--" + boundary + "\n";
    out += "Content-Description: Delivery report\nContent-Type: message/delivery-status\n\n";
    out += status_part(r) + "\n";
    out += "--" + boundary + "\n";
    out += "Content-Description: Undelivered Message Headers\nContent-Type: text/rfc822-headers\n\n";
    out += header_of(r.original_message) + "\n";
    out += "--" + boundary + "--\n";
    return out;
}

}  // namespace ferry::dsn

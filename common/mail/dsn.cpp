// Delivery status notifications (RFC 3464 multipart/report) for bounces and delay warnings.
#include "common/mail/dsn.hpp"

#include "common/mail/date.hpp"

#include <utility>

namespace ferry::dsn {

namespace {

// DSN dates are in UTC so that a report reads the same wherever the queue runs.
std::string date(int64_t unix_seconds) { return mail::rfc5322_date(unix_seconds, mail::Zone::utc); }

}  // namespace

std::string xtext_encode(std::string_view text) {
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    for (char ch : text) {
        auto c = static_cast<unsigned char>(ch);
        if (c >= 33 && c <= 126 && c != '+' && c != '=') {
            out.push_back(ch);
        } else {
            out.push_back('+');
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 15]);
        }
    }
    return out;
}

std::optional<std::string> xtext_decode(std::string_view x) {
    auto hexval = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
    std::string out;
    for (size_t i = 0; i < x.size(); ++i) {
        auto c = static_cast<unsigned char>(x[i]);
        if (c == '+') {
            if (i + 2 >= x.size()) return std::nullopt;
            int hi = hexval(x[i + 1]), lo = hexval(x[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (c >= 33 && c <= 126 && c != '=') {
            out.push_back(static_cast<char>(c));
        } else {
            return std::nullopt;
        }
    }
    return out;
}

namespace {

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        char x = a[i] >= 'a' && a[i] <= 'z' ? static_cast<char>(a[i] - 32) : a[i];
        if (x != b[i]) return false;
    }
    return true;
}

}  // namespace

std::optional<unsigned> parse_notify(std::string_view value) {
    static const struct {
        const char* name;
        unsigned bit;
    } words[] = {{"NEVER", notify::never}, {"SUCCESS", notify::success}, {"FAILURE", notify::failure},
                 {"DELAY", notify::delay}};
    unsigned bits = 0;
    while (true) {
        size_t comma = value.find(',');
        std::string_view w = value.substr(0, comma);
        unsigned bit = 0;
        for (const auto& k : words)
            if (iequals(w, k.name)) bit = k.bit;
        if (bit == 0 || (bits & bit)) return std::nullopt;
        bits |= bit;
        if (comma == std::string_view::npos) break;
        value.remove_prefix(comma + 1);
    }
    if ((bits & notify::never) && bits != notify::never) return std::nullopt;  // RFC 3461 4.1
    return bits;
}

std::string notify_text(unsigned bits) {
    if (bits & notify::never) return "NEVER";
    std::string out;
    for (auto [bit, name] : {std::pair{notify::success, "SUCCESS"}, std::pair{notify::failure, "FAILURE"},
                             std::pair{notify::delay, "DELAY"}})
        if (bits & bit) out += (out.empty() ? "" : ",") + std::string(name);
    return out;
}

std::optional<Orcpt> parse_orcpt(std::string_view value) {
    size_t semi = value.find(';');
    if (semi == 0 || semi == std::string_view::npos) return std::nullopt;
    std::string_view type = value.substr(0, semi);
    for (char c : type)  // RFC 3461 4.2: addr-type is an atom
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')) return std::nullopt;
    auto address = xtext_decode(value.substr(semi + 1));
    if (!address || address->empty() || address->size() > 500) return std::nullopt;
    return Orcpt{std::string(type), std::move(*address)};
}

std::string orcpt_text(const Orcpt& o) { return o.type + ";" + xtext_encode(o.address); }

std::optional<std::string> parse_envid(std::string_view value) {
    auto id = xtext_decode(value);
    if (!id || id->empty() || id->size() > 100) return std::nullopt;
    for (char c : *id)
        if (c < 32 || c > 126) return std::nullopt;
    return id;
}

bool wants_failure(unsigned bits) { return bits == 0 || (bits & notify::failure); }
bool wants_delay(unsigned bits) { return bits == 0 || (bits & notify::delay); }
bool wants_success(unsigned bits) { return (bits & notify::success) != 0; }

const char* action_name(Action a) {
    switch (a) {
    case Action::failed: return "failed";
    case Action::delayed: return "delayed";
    case Action::delivered: return "delivered";
    case Action::relayed: return "relayed";
    case Action::expanded: return "expanded";
    }
    return "failed";
}

bool should_report(const std::string& original_sender) { return !original_sender.empty(); }

bool relayed_without_dsn(std::string_view reply) {
    if (reply.size() < 4 || reply[0] != '2' || reply[3] != ' ') return false;
    std::string_view rest = reply.substr(4);
    if (size_t sp = rest.find(' '); sp != std::string_view::npos && rest[0] == '2' && rest.find('.') < sp)
        rest = rest.substr(sp + 1);  // the enhanced code
    return rest.substr(0, kRelayedWithoutDsn.size()) == kRelayedWithoutDsn;
}

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

Action kind_of(const Report& r) { return r.recipients.empty() ? Action::failed : r.recipients.front().action; }

std::string human_part(const Report& r, Action kind) {
    std::string out;
    out += "This is the mail system at host " + r.reporting_mta + ".\n\n";
    switch (kind) {
    case Action::failed:
        out += "I'm sorry to have to inform you that your message could not\n"
               "be delivered to one or more recipients. The details are below.\n\n";
        break;
    case Action::delayed:
        out += "Your message could not be delivered yet to one or more recipients.\n"
               "The mail system will keep trying; you do not need to send it again.\n\n";
        break;
    case Action::delivered:
    case Action::expanded:
        out += "Your message was successfully delivered to the destination(s)\n"
               "listed below, as you asked to be told.\n\n";
        break;
    case Action::relayed:
        out += "Your message was successfully passed on to the destination(s) listed\n"
               "below, which will not confirm its delivery.\n\n";
        break;
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
    if (!r.envid.empty()) out += "Original-Envelope-Id: " + r.envid + "\n";
    out += "X-Ferry-Queue-ID: " + r.queue_id + "\n";
    if (r.arrival) out += "Arrival-Date: " + date(r.arrival) + "\n";
    for (const auto& rc : r.recipients) {
        out += "\n";
        out += "Final-Recipient: rfc822; " + rc.final_recipient + "\n";
        if (rc.orcpt)  // RFC 3464 2.3.1: the ORCPT the sender gave, as given
            out += "Original-Recipient: " + rc.orcpt->type + "; " + rc.orcpt->address + "\n";
        else if (!rc.original_recipient.empty() && rc.original_recipient != rc.final_recipient)
            out += "Original-Recipient: rfc822; " + rc.original_recipient + "\n";
        out += std::string("Action: ") + action_name(rc.action) + "\n";
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

const char* message_id_tag(Action kind) {
    switch (kind) {
    case Action::failed: return ".bounce@";
    case Action::delayed: return ".delay@";
    default: return ".success@";
    }
}

std::string build(const Report& r) {
    Action kind = kind_of(r);
    bool failed = kind == Action::failed;
    std::string boundary = r.queue_id + "/" + r.reporting_mta;
    std::string out;
    out += "From: Mail Delivery System <MAILER-DAEMON@" + r.reporting_mta + ">\n";
    out += "To: <" + r.original_sender + ">\n";
    out += failed                     ? "Subject: Undelivered Mail Returned to Sender\n"
           : kind == Action::delayed ? "Subject: Delayed Mail (still being retried)\n"
                                     : "Subject: Successful Mail Delivery Report\n";
    out += "Date: " + date(r.now) + "\n";
    if (!r.message_id.empty()) out += "Message-ID: " + r.message_id + "\n";
    else out += "Message-ID: <" + r.queue_id + message_id_tag(kind) + r.reporting_mta + ">\n";
    out += "Auto-Submitted: auto-replied\n";
    out += "MIME-Version: 1.0\n";
    out += "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"" + boundary + "\"\n";
    out += "\nThis is a MIME-encapsulated message.\n\n";
    out += "--" + boundary + "\n";
    out += "Content-Description: Notification\nContent-Type: text/plain; charset=us-ascii\n\n";
    out += human_part(r, kind) + "\n";
    out += "--" + boundary + "\n";
    out += "Content-Description: Delivery report\nContent-Type: message/delivery-status\n\n";
    out += status_part(r) + "\n";
    out += "--" + boundary + "\n";
    if (r.full_message) {
        out += "Content-Description: Undelivered Message\nContent-Type: message/rfc822\n\n";
        out += r.original_message;
        if (!r.original_message.empty() && r.original_message.back() != '\n') out += "\n";
        out += "\n";
    } else {
        out += std::string("Content-Description: ") + (failed ? "Undelivered" : "") + (failed ? " " : "") +
               "Message Headers\nContent-Type: text/rfc822-headers\n\n";
        out += header_of(r.original_message) + "\n";
    }
    out += "--" + boundary + "--\n";
    return out;
}

}  // namespace ferry::dsn

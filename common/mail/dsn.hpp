// Delivery status notifications (RFC 3464 multipart/report) for bounces and delay warnings.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ferry::dsn {

enum class Action { failed, delayed };

struct RecipientStatus {
    std::string final_recipient;     // the address delivery was attempted to
    std::string original_recipient;  // the address the sender used, when an alias changed it
    Action action = Action::failed;
    std::string status;              // RFC 3463 status, "5.1.1"
    std::string diagnostic;          // the remote reply, "550 5.1.1 <x@y>: no such user", or a reason
                                     // (Diagnostic-Code type "smtp" for a reply, "X-Ferry" for a reason)
    int64_t last_attempt = 0;        // unix seconds
    int64_t retry_until = 0;         // for delayed: when ferry gives up
};

struct Report {
    std::string reporting_mta;       // our host name
    std::string queue_id;            // of the original message
    std::string original_sender;     // receives the report
    int64_t arrival = 0;
    std::vector<RecipientStatus> recipients;
    std::string original_message;    // LF line ends; its header is quoted in the report
    int64_t now = 0;
    std::string message_id;          // "<id@host>"; empty: "<queue_id.bounce@reporting_mta>" (or .delay)
};

// A bounce goes to the envelope sender, never to the null sender <>: that is how
// a bounce of a bounce, and mail loops between two servers, are avoided (RFC 5321 4.5.5).
bool should_report(const std::string& original_sender);

// The whole report message, LF line ends, ready for the spool (sender <>, recipient original_sender).
std::string build(const Report& report);

// The header section of a message (up to the first empty line), LF line ends.
std::string header_of(const std::string& message);

// The Diagnostic-Code type for a diagnostic: "smtp" when it is an SMTP reply (three digits, then a
// space, a '-' or nothing), "X-Ferry" for a reason of ferry's own (RFC 3464 2.3.6).
const char* diagnostic_type(const std::string& diagnostic);

}  // namespace ferry::dsn

// Delivery status notifications (RFC 3464 multipart/report) for bounces and delay warnings.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::dsn {

// ---- RFC 3461 parameters: what the sender asked for, as smtpd takes them and the queue file keeps them ----

// MAIL FROM ... RET=FULL|HDRS (RFC 3461 4.3): what a failure report returns of the message.
enum class Ret { unspecified, full, hdrs };

// RCPT TO ... NOTIFY= (RFC 3461 4.1), a set of these bits; 0 means the parameter was absent
// (ferry then reports failures and delays, as without DSN). NEVER stands alone.
namespace notify {
inline constexpr unsigned never = 1, success = 2, failure = 4, delay = 8;
}

// RCPT TO ... ORCPT=addr-type;xtext (RFC 3461 4.2), decoded: {"rfc822", "a@example.org"}.
struct Orcpt {
    std::string type;     // the addr-type as sent ("rfc822", "utf-8")
    std::string address;  // xtext decoded
};

// RFC 3461 4: xtext is printable ASCII but "+" and "=", and "+XX" (two upper-case hex digits) for
// any other octet. decode refuses anything else (lower-case hex, a lone "+", a space, a control).
std::string xtext_encode(std::string_view text);
std::optional<std::string> xtext_decode(std::string_view xtext);

// "SUCCESS,DELAY" -> bits; NEVER with anything else, an unknown or repeated keyword, or an empty
// list -> nullopt. Case-insensitive.
std::optional<unsigned> parse_notify(std::string_view value);
// Bits -> "SUCCESS,FAILURE,DELAY" or "NEVER"; "" for 0.
std::string notify_text(unsigned bits);
// "rfc822;a@b" with the address in xtext; an addr-type that is not an atom, an address that does
// not decode, or one longer than 500 octets -> nullopt.
std::optional<Orcpt> parse_orcpt(std::string_view value);
// The value again, address xtext-encoded: "rfc822;a+2Bb@c".
std::string orcpt_text(const Orcpt& orcpt);
// ENVID (RFC 3461 4.4): xtext decoding to 1-100 printable ASCII characters; nullopt otherwise.
std::optional<std::string> parse_envid(std::string_view value);

// Whether a recipient with NOTIFY bits `bits` (0: absent) wants a report of this kind.
bool wants_failure(unsigned bits);
bool wants_delay(unsigned bits);
bool wants_success(unsigned bits);

// ferry-relay's reply to qmgr for a recipient with NOTIFY=SUCCESS whose next hop offers no DSN
// starts its text, after the enhanced code, with this; qmgr then sends a "relayed" report (RFC 3461
// 5.2.1): "250 2.0.0 Relayed to a server without DSN: <a@b>: host ...: 250 Ok".
inline constexpr std::string_view kRelayedWithoutDsn = "Relayed to a server without DSN: ";
// Whether a reply's whole text ("250 2.0.0 Relayed ...") is such a reply.
bool relayed_without_dsn(std::string_view reply);

// ---- RFC 3464 reports ----

// failed, delayed: ferry's bounces and delay warnings. delivered: NOTIFY=SUCCESS after the final
// delivery. relayed: NOTIFY=SUCCESS and the next hop offers no DSN. expanded: delivered to an alias
// whose expansion goes on (RFC 3461 6.2.7.3). The last two are for ferry-relay's reports.
enum class Action { failed, delayed, delivered, relayed, expanded };
const char* action_name(Action action);

struct RecipientStatus {
    std::string final_recipient;     // the address delivery was attempted to
    std::string original_recipient;  // the address the sender used, when an alias changed it
    std::optional<Orcpt> orcpt;      // ORCPT as the sender gave it: Original-Recipient then says so
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
    bool full_message = false;       // RET=FULL on a failure: original_message is the whole message
    std::string envid;               // ENVID, decoded: Original-Envelope-Id
    int64_t now = 0;
    std::string message_id;          // "<id@host>"; empty: "<queue_id.bounce@reporting_mta>" (or .delay)
};

// ".bounce@", ".delay@" or ".success@": what a report's Message-ID says of its kind.
const char* message_id_tag(Action kind);

// A bounce goes to the envelope sender, never to the null sender <>: that is how
// a bounce of a bounce, and mail loops between two servers, are avoided (RFC 5321 4.5.5).
bool should_report(const std::string& original_sender);

// The whole report message, LF line ends. Subject and human text follow the first recipient's
// action (one report holds one kind). The original goes in as text/rfc822-headers, or as
// message/rfc822 when full_message. Ready for the spool (sender <>, recipient original_sender).
std::string build(const Report& report);

// The header section of a message (up to the first empty line), LF line ends.
std::string header_of(const std::string& message);

// The Diagnostic-Code type for a diagnostic: "smtp" when it is an SMTP reply (three digits, then a
// space, a '-' or nothing), "X-Ferry" for a reason of ferry's own (RFC 3464 2.3.6).
const char* diagnostic_type(const std::string& diagnostic);

}  // namespace ferry::dsn

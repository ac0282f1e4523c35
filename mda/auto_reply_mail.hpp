// The messages AutoReply sends, built from their inputs (pure): the vacation reply, the redirected copy and its loop check.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ferry::mda {

// The header field that marks a message ferry-mda redirected, one per account it passed
// (ferry-mda(8), REDIRECT): "X-Ferry-Redirected: alice@example.org".
inline constexpr std::string_view kRedirectedField = "X-Ferry-Redirected";

// Why redirecting `message` for `account` would loop: it carries our marker for this account
// already, or `max_delivered_to` Delivered-To fields or more (each ferry-mda delivery adds one;
// 0: no such limit). Nothing when it may go.
std::optional<std::string> redirect_loop(std::string_view message, std::string_view account, size_t max_delivered_to);

// The message as it is redirected: the marker for `account` on top, the rest unchanged (LF line ends).
std::string redirected_message(std::string_view message, std::string_view account);

// What a vacation reply is made of (RFC 5230 5).
struct VacationReply {
    std::string from;                  // the From: value: an address, or "Name <address>"
    std::string to;                    // the sender answered (an address)
    std::string subject;               // UTF-8; encoded (RFC 2047) when it is not ASCII
    std::string reason;                // the text; with `mime`, a MIME entity (its header, a blank line, its body)
    bool mime = false;
    std::string original_message_id;   // the original's Message-ID ("<...>"), "" without
    std::string original_references;   // the original's References, "" without
    int64_t now = 0;                   // for Date:
    std::string message_id;            // this reply's, "<...@host>"
};

// The reply with LF line ends: From, To, Subject, Date, Message-ID, In-Reply-To and References
// (RFC 5230 5.8), Auto-Submitted: auto-replied (RFC 3834 5), MIME-Version and a UTF-8 text/plain
// body, or the `mime` entity as it is. CR and LF inside the one-line values become spaces.
std::string compose_vacation_reply(const VacationReply& r);

// The first Message-ID and References values of a message, unfolded ("" when absent).
struct ThreadIds {
    std::string message_id;
    std::string references;
};
ThreadIds thread_ids(std::string_view message);

}  // namespace ferry::mda

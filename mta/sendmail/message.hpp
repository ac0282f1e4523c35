// The message as ferry-sendmail submits it: read from stdin, headers completed, -t recipients taken out. Pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::sendmail {

// Input as it comes on stdin, LF or CRLF line ends. Without `ignore_dots` a line holding only "."
// ends the message (sendmail's rule). The result has LF line ends and no terminating dot line.
class InputReader {
public:
    explicit InputReader(bool ignore_dots) : ignore_dots_(ignore_dots) {}
    // Feeds bytes; returns false once the message has ended (the rest of the input is not used).
    bool feed(std::string_view bytes);
    // The end of the input: a last line without its line end is kept.
    void finish();
    const std::string& message() const { return message_; }
    bool ended() const { return ended_; }

private:
    void line(std::string_view l);
    bool ignore_dots_;
    bool ended_ = false;
    std::string partial_;
    std::string message_;
};

// One header field: its name as written and its whole text (name, colon, value, folded lines, final LF).
struct HeaderField {
    std::string name;
    std::string text;
    std::string value() const;  // unfolded, after the colon, surrounding spaces trimmed
};

struct ParsedMessage {
    std::vector<HeaderField> header;
    std::string body;  // after the empty line (none when the message had no body)
};

// Splits a message with LF line ends. A leading "From " line (mbox) is dropped. The header section
// ends at the first empty line, or at the first line that is neither a field nor a folded
// continuation (that line starts the body).
ParsedMessage parse_message(std::string_view message);

// The addresses of an RFC 5322 address-list ("A <a@x>, b@y (B), group: c@z;"), in order.
std::vector<std::string> parse_address_list(std::string_view value);

struct Completion {
    bool extract = false;          // -t: recipients from To, Cc, Bcc
    std::string from_address;      // for a From: header when there is none
    std::string full_name;         // -F, or the user's name: its display name
    std::string hostname;          // for the Message-ID
    int64_t now = 0;               // for Date: (unix seconds)
    std::string message_id_local;  // left of "@" in a new Message-ID (unique per message)
};

struct Prepared {
    std::string message;                  // LF line ends, header completed, Bcc removed
    std::vector<std::string> recipients;  // from the header when `extract`, in header order, no duplicates
};

// Adds From:, Date: and Message-ID: when missing and removes every Bcc: field (after -t read it).
Prepared complete_message(std::string_view message, const Completion& c);

// "Name <addr>" with the name quoted when it needs to be (RFC 5322 3.2.5 phrase).
std::string mailbox_with_name(const std::string& name, const std::string& address);

}  // namespace ferry::sendmail

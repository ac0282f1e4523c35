// IMAP ENVELOPE, BODY and BODYSTRUCTURE of a parsed message (RFC 3501 7.4.2, RFC 9051 7.5.2), as IMAP strings.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/mail/mime.hpp"

namespace ferry::mail {

// Appends `s` as an IMAP string (RFC 3501 9 "string"): quoted, with '"' and '\' escaped, when it
// is 7-bit text; otherwise a literal "{n}\r\n..." (with utf8_quoted, as after ENABLE UTF8=ACCEPT,
// 8-bit text stays quoted). CR, LF and NUL are dropped first: they cannot be in a header value
// that was unfolded, and no client expects them in a structure.
void append_imap_string(std::string& out, std::string_view s, bool utf8_quoted = false);
// NIL for an absent value, the string otherwise.
void append_imap_nstring(std::string& out, const std::optional<std::string>& s, bool utf8_quoted = false);

// One address of an ENVELOPE address list (RFC 3501 7.4.2): a group starts with a mailbox of the
// group's name and no host, and ends with all four NIL.
struct ImapAddress {
    std::optional<std::string> name, adl, mailbox, host;
};

// Parses an RFC 5322 address-list (obsolete forms tolerated), as Dovecot does for ENVELOPE: the
// display name unquoted, encoded words left as they are, a comment standing in for a missing
// name; a mailbox without "@domain" gets host "MISSING_DOMAIN", an empty one "MISSING_MAILBOX";
// an unterminated group is ended. Never fails; what is not an address is skipped.
std::vector<ImapAddress> parse_address_list(std::string_view value);

// "(date subject from sender reply-to to cc bcc in-reply-to message-id)": raw unfolded values
// (encoded words left as they are); sender and reply-to fall back to from when absent or empty.
std::string imap_envelope(const MimeEnvelope& envelope, bool utf8_quoted = false);
std::string imap_envelope(const MimePart& message, bool utf8_quoted = false);

// BODYSTRUCTURE (with the extension data: md5, disposition, language, location; a multipart's
// parameters, disposition, language, location) and BODY (without) of a message, message/rfc822
// parts with their envelope, body and lines. Sizes count line ends as CRLF. A text part without
// parameters shows ("charset" "us-ascii"); a multipart without parts shows one empty text/plain
// part, as Dovecot does, since the grammar needs one.
std::string imap_bodystructure(const MimePart& message, bool utf8_quoted = false);
std::string imap_body(const MimePart& message, bool utf8_quoted = false);

}  // namespace ferry::mail

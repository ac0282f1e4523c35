// The CRLF/dot-stuffing wire encoder: a stored message (LF line ends) as SMTP/LMTP DATA or a POP3 multi-line reply.
#pragma once

#include <string>
#include <string_view>

namespace ferry::mail {

// Pure and incremental: each bare LF becomes CRLF (a CRLF stays as it is), a '.' starting a line
// gets one more (RFC 5321 4.5.2, RFC 1939 section 3), and finish() ends a last line that has no
// line end and appends ".\r\n". Parts may split anywhere, between a CR and its LF too: feeding a
// message whole or one byte at a time gives the same bytes.
class WireEncoder {
public:
    // Appends the wire form of the next part of the message to `out`.
    void feed(std::string_view in, std::string& out);
    // Appends the end of the message; the encoder then starts over for the next one.
    void finish(std::string& out);

private:
    bool at_line_start_ = true;
    bool last_cr_ = false;  // the last byte fed was CR, so an LF right after it already ends a CRLF
};

// The whole wire form of a stored message, for small messages and tests.
std::string wire_encode(std::string_view lf_message);

}  // namespace ferry::mail

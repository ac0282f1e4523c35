// 8-bit to 7-bit MIME conversion for a peer without 8BITMIME (RFC 6152 section 3): quoted-printable leaf parts.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"

namespace ferry::mail {

struct SevenBitLimits {
    size_t max_line = 1 << 20;      // bytes of one line, LF excluded
    size_t max_header = 1 << 20;    // bytes of one entity's header section
    size_t max_depth = 32;          // nested multiparts and message/rfc822 parts
};

// Pure and incremental, over a stored message (LF line ends), giving LF line ends. Each leaf part
// labelled 7bit, 8bit or binary (or not labelled) is re-encoded quoted-printable and relabelled;
// multipart and message/rfc822 parts are relabelled 7bit and walked into; base64 and
// quoted-printable parts pass as they are. A message that cannot be made 7-bit fails (RFC 6152:
// then it is bounced): 8-bit octets in a header, a multipart/signed part (converting would break
// the signature), 8-bit octets in a base64 or quoted-printable part, or a limit broken.
class SevenBitEncoder {
public:
    explicit SevenBitEncoder(const SevenBitLimits& limits = {}) : limits_(limits) {}

    // Appends the converted form of the next part of the message; false once it failed.
    bool feed(std::string_view in, std::string& out);
    // Ends the message (a last line without LF included); false when it failed.
    bool finish(std::string& out);
    // Why it failed, for the bounce ("554 5.6.3 ...").
    const std::string& error() const { return error_; }
    bool failed() const { return !error_.empty(); }

private:
    enum class Mode { header, copy, encode, text };  // text: a preamble or epilogue
    struct Frame {
        std::string boundary;  // a multipart's; empty for message/rfc822
        bool digest = false;   // multipart/digest: a part's default type is message/rfc822
    };

    void line(std::string_view l, std::string& out);
    bool boundary_line(std::string_view l, std::string& out);
    void end_header(std::string& out);
    void body_line(std::string_view l, std::string& out);
    void fail(std::string why);

    SevenBitLimits limits_;
    std::string partial_;               // a line not yet ended
    std::vector<std::string> header_;   // the current entity's header lines
    size_t header_bytes_ = 0;
    std::vector<Frame> frames_;         // the multiparts we are inside, outermost first
    Mode mode_ = Mode::header;
    bool top_ = true;                   // the header being read is the message's own
    bool message_ = false;              // the header being read is a message/rfc822 part's message
    bool in_digest_ = false;            // a part's default type is message/rfc822 (multipart/digest)
    std::string error_;
};

// The whole converted message, for tests and small messages; the error is the reason.
Result<std::string> to_seven_bit(std::string_view lf_message, const SevenBitLimits& limits = {});

// Whether `text` has an octet above 127.
bool has_8bit(std::string_view text);

// One line (without its line end) as quoted-printable (RFC 2045 6.7): lines of at most 76
// characters joined by soft line breaks ("=\n"), trailing white space encoded.
void quoted_printable_line(std::string_view line, std::string& out);

}  // namespace ferry::mail

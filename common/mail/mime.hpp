// MIME structure of a message (RFC 5322, RFC 2045-2046): a pure, streaming parser building a tree of byte ranges.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::mail {

// What the parser may spend on one message. Past a limit it never fails and never grows: like
// Dovecot's message parser, it stops looking for structure there and treats the rest as an opaque
// body (each case is named at its field). The message itself is never buffered: only the current
// line (up to max_line_length) and the header fields the tree keeps (Content-*, and the ENVELOPE
// fields of message headers), each within one header section of at most max_header_size.
struct MimeLimits {
    // A part this deep (the message is depth 0) is a leaf: a multipart or message/rfc822 there is
    // not opened, its body is opaque.
    size_t max_depth = 50;
    // Parts in the whole tree, the message included. A boundary that would start one more part
    // ends structure: the rest of the message is the body of the multipart whose boundary it was.
    size_t max_parts = 10000;
    // Octets of one header section, line ends included. The line that would pass it ends the
    // header (Part::header_truncated): it and the rest of that part are the part's opaque body.
    size_t max_header_size = 256 * 1024;
    // Octets of one header line (line end excluded); a longer line ends the header as above.
    // Body lines may be of any length; only their first max_line_length octets are held (enough
    // to recognise a boundary: a boundary longer than that is never found).
    size_t max_line_length = 64 * 1024;
    // Header fields in one header section; the field past it ends the header as above.
    size_t max_header_fields = 1000;
};

// A byte range of the message as fed (LF or CRLF line ends) and the same range as IMAP counts it,
// every line end as CRLF (RFC 3501 RFC822.SIZE, body-fld-octets).
struct MimeRange {
    uint64_t offset = 0;       // in the message as fed
    uint64_t size = 0;         // octets as fed
    uint64_t crlf_offset = 0;  // in the message with every line end CRLF
    uint64_t crlf_size = 0;    // octets with every line end CRLF
    uint64_t lines = 0;        // line ends inside the range, plus one for a last line without one
};

// A Content-Type or Content-Disposition parameter, RFC 2231 continuations already joined.
struct MimeParam {
    std::string name;     // lower case, without the "*" and section numbers of RFC 2231
    std::string value;    // as on the wire: quotes removed; for an extended one "charset'lang'%XX..."
    bool extended = false;  // RFC 2231 "name*=" form (value still percent-encoded)
    std::string charset;  // of an extended value, as given ("" when none)
    std::string language;
    // The value decoded to UTF-8: RFC 2231 percent-decoding and charset conversion for an extended
    // one (invalid sequences become U+FFFD), the plain value otherwise.
    std::string decoded;
};

// A header field value as it was, unfolded (line ends removed) and trimmed of white space around it.
using MimeField = std::optional<std::string>;

// The header fields of a message header (the top level and each message/rfc822 part's message)
// that ENVELOPE is made of, raw and unfolded; the first of duplicate fields counts.
struct MimeEnvelope {
    MimeField date, subject, from, sender, reply_to, to, cc, bcc, in_reply_to, message_id;
};

// One part of the tree. Offsets, not bodies: a FETCH of one part reads just its range later.
struct MimePart {
    MimeRange header;  // the header section, its blank line included when there is one
    MimeRange body;    // everything after it up to the line end before the next boundary (RFC 2046 5.1.1)
    size_t depth = 0;  // 0 for the message

    // Content-Type, lower-cased type and subtype. Absent, or without a valid type, it is
    // text/plain; charset=us-ascii (message/rfc822 inside multipart/digest). A type without subtype
    // takes the usual one (text/plain, multipart/mixed, application/octet-stream) or, for any other
    // type, counts as absent.
    bool has_content_type = false;
    std::string type = "text";
    std::string subtype = "plain";
    std::vector<MimeParam> params;  // as given, in order (BODYSTRUCTURE adds charset=us-ascii to text without any)

    MimeField content_id, description, encoding, md5, location;  // raw unfolded values
    std::optional<std::string> disposition;  // lower-cased type of Content-Disposition
    std::vector<MimeParam> disposition_params;
    std::vector<std::string> languages;      // Content-Language, split at commas
    std::optional<MimeEnvelope> envelope;    // set on message headers only

    bool header_truncated = false;  // a limit ended the header (see MimeLimits)
    bool header_complete = false;   // the header ended with a blank line
    std::vector<MimePart> children;  // multipart: its parts; message/rfc822: the one message

    bool is_multipart() const { return type == "multipart"; }
    // message/rfc822 and message/global (RFC 6532) carry a message.
    bool is_message() const { return type == "message" && (subtype == "rfc822" || subtype == "global"); }
    // The value of a parameter (decoded), or nullptr.
    const MimeParam* param(std::string_view name) const;
    // Content-Transfer-Encoding lower-cased, "7bit" when absent.
    std::string transfer_encoding() const;
};

// Parses one message fed in parts that may split anywhere (between CR and LF too): feeding a
// message whole or byte by byte gives the same tree. Never fails: damaged structure (missing,
// bad or unterminated boundaries, no blank line after the header, no body, 8-bit or broken header
// lines, duplicate fields, unknown encodings) gives the tree Dovecot would see. A header line
// without a colon is kept in the header and ignored; a boundary line is "--" + boundary at the
// start of a line, whatever follows it, checked for every open multipart: the longest boundary
// that matches wins, the innermost of equal ones (as Dovecot does: "--ab" is not a line of "a").
class MimeParser {
public:
    explicit MimeParser(MimeLimits limits = {});
    MimeParser(const MimeParser&) = delete;  // the open-part stack points into the tree it owns
    MimeParser& operator=(const MimeParser&) = delete;

    void feed(std::string_view data);
    // Ends the message and returns its tree; the parser then is spent.
    MimePart finish();

    // Octets fed so far.
    uint64_t size() const { return raw_pos_ + line_len_; }
    // True once nothing still to come can open a part or add a header field: every part the tree
    // will have is in tree_so_far() with its Content-* fields, only the open ones' ranges grow.
    bool settled() const { return can_count_lines(); }
    // The tree as fed so far; the ranges of parts still open are not final.
    const MimePart& tree_so_far() const { return root_; }

private:
    // A position in the message: offsets as fed and as CRLF, LFs before it, whether an LF is right before it.
    struct Pos {
        uint64_t raw = 0, crlf = 0, lf = 0;
        bool after_lf = true;
    };
    struct Open {
        MimePart* part;
        std::string boundary;  // of a multipart whose closing delimiter has not come yet
        Pos header_start, body_start;
        bool seen_type = false;  // the first Content-Type counts
    };
    bool can_count_lines() const;
    size_t count_lines(std::string_view data);
    void take_line(bool terminated);
    void header_line(std::string_view content, uint64_t content_len, uint64_t raw_len);
    void end_field();
    void end_header(Pos body_start, bool truncated);
    void body_line(std::string_view content);
    int find_boundary(std::string_view content) const;
    void boundary_line(size_t index, std::string_view content);
    void close_above(size_t keep, Pos end);
    void finish_entry(Open& entry, Pos end);
    void open_part(MimePart& part, Pos start, bool message_header, bool digest_child);
    Pos here() const { return Pos{raw_pos_, crlf_pos_, lf_count_, true}; }

    MimeLimits limits_;
    MimePart root_;
    std::vector<Open> open_;
    size_t parts_ = 0;
    bool in_header_ = true;
    bool finished_ = false;
    Pos next_;  // the start of the line after the one being handled
    bool opaque_ = false;  // a part limit ended structure

    std::string line_;      // the current line's first octets (at most max_line_length + 1)
    uint64_t line_len_ = 0; // octets of the current line so far
    bool line_cr_ = false;  // its last octet so far is CR
    bool field_open_ = false;

    std::string field_;     // the current header field, unfolded (bounded by max_header_size)
    size_t header_bytes_ = 0, header_fields_ = 0;

    uint64_t raw_pos_ = 0, crlf_pos_ = 0, lf_count_ = 0;  // at the start of the current line
    // The end of the previous line's content (before its line end), where a body ends when a boundary follows.
    uint64_t prev_raw_end_ = 0, prev_crlf_end_ = 0;
    bool prev_empty_ = true;  // the previous line had no content
};

// The whole tree of a message in memory, for small messages and tests.
MimePart parse_mime(std::string_view message, MimeLimits limits = {});

// Header value helpers, pure (also used by the renderer and by tests).
// Unfolds and trims a raw field value.
std::string unfold_value(std::string_view raw);
// "type/subtype; a=b; c*0=..." into the part's type fields (RFC 2045 5.1, RFC 2231).
void parse_content_type(std::string_view value, MimePart& part);
// "attachment; filename=..." (RFC 2183).
void parse_disposition(std::string_view value, MimePart& part);
// The parameters after the first ";" of a structured value; RFC 2231 continuations joined in
// section order, a section missing or repeated ends that parameter where the run breaks.
std::vector<MimeParam> parse_params(std::string_view rest);

}  // namespace ferry::mail

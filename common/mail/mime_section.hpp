// IMAP section addressing (RFC 3501 6.4.5): "1.2", "1.2.HEADER", "HEADER.FIELDS (A B)", "3.MIME", "TEXT", "" to byte ranges.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"
#include "common/mail/mime.hpp"

namespace ferry::mail {

struct Section {
    enum class Text { none, header, header_fields, header_fields_not, text, mime };
    std::vector<uint32_t> part;  // "1.2" is {1, 2}; empty for the message itself
    Text text = Text::none;
    std::vector<std::string> fields;  // HEADER.FIELDS names as given (compared case-insensitively)
};

// Parses the text between "[" and "]" of BODY[...] / BINARY[...] (RFC 3501 9 "section-spec");
// keywords in any case, field names as atoms or quoted strings. An error names what is wrong.
Result<Section> parse_section(std::string_view spec);

// Where a section's bytes are in the message the tree was parsed from. The caller reads that
// range (and, for HEADER.FIELDS[.NOT], passes it through filter_header_fields) and then applies
// a partial <start.count> itself. "" is the whole message; a part number of a non-multipart
// message's body is 1; N.MIME is part N's own header, N.HEADER/N.TEXT those of the message a
// message/rfc822 part N carries (and N.1 the first part of that message). Errors: a part that
// does not exist, HEADER/TEXT of a part that carries no message, MIME without a part number.
Result<MimeRange> resolve_section(const MimePart& message, const Section& section);

// The part that part numbers name, as resolve_section numbers parts; nullptr when there is none.
// An empty list is the message itself.
const MimePart* find_part(const MimePart& message, const std::vector<uint32_t>& part);

// The fields of a header section whose names are (or, with exclude, are not) in `names`,
// case-insensitively, each with its continuation lines, in the order of the header, then the
// blank line (RFC 3501 6.4.5); every line end CRLF. `header` is the bytes of a header range.
std::string filter_header_fields(std::string_view header, const std::vector<std::string>& names, bool exclude);

}  // namespace ferry::mail

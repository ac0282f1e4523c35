// RFC 2047 encoded words for header values ferry writes from UTF-8 text (a vacation Subject, an added header).
#pragma once

#include <string>
#include <string_view>

namespace ferry::mail {

// `utf8` as an unstructured header value (RFC 5322 3.2.5): as it is when it is printable ASCII
// and holds no "=?"; else as "=?utf-8?q?...?=" words (RFC 2047 4.2), each at most 75 octets and
// none splitting a UTF-8 sequence, joined by "\n " (folding, LF line ends as stored). CR and LF in
// the text become spaces, so the value never adds a header line.
std::string encode_header_words(std::string_view utf8);

}  // namespace ferry::mail

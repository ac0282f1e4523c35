// What FETCH and SEARCH keep of a message in the index cache (ferry-mailstore(5)), and the pure pieces of streaming it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/mail/mime.hpp"
#include "common/mail/mime_section.hpp"

namespace ferry::imap {

// The cache key of a MessageInfo; the trailing number is the format version, so a later format
// uses a new key and old values are simply not read.
inline constexpr const char* kInfoCacheKey = "imap.info.1";

// A message as FETCH answers it without reading it: computed once, stored with Index::set_cache.
struct MessageInfo {
    int64_t internal_date = 0;  // seconds since the epoch: the file's mtime when first parsed
    uint64_t size = 0;          // octets of the file
    uint64_t crlf_size = 0;     // RFC822.SIZE: every line end CRLF
    std::string envelope, bodystructure, body;
    // The part tree with ranges, types and transfer encodings only (no parameters, no envelope):
    // enough for resolve_section and for BINARY to read one part's byte range.
    mail::MimePart layout;
};

// The info of a parsed message; `size` is the octets fed to the parser.
MessageInfo info_of(const mail::MimePart& tree, int64_t internal_date, uint64_t size);

// The cache value: netstrings ("<len>:<bytes>") of the fields in order, the layout last as
// space-separated tokens per part, depth first. decode_info rejects anything else (nullopt).
std::string encode_info(const MessageInfo& info);
std::optional<MessageInfo> decode_info(std::string_view value);

// The part that a BINARY section names (RFC 3516: part numbers only): common/mail/mime_section.hpp.
using mail::find_part;

// Every line end as CRLF, over input fed in chunks that may split anywhere: an LF gets a CR
// before it unless one is there already, also when that CR ended the previous chunk.
class CrlfConverter {
public:
    void feed(std::string_view in, std::string& out);
    // The same into `out`, which has room for 2 * in.size() octets (the worst case: every octet an
    // LF); returns the octets written.
    size_t convert(std::string_view in, char* out);

private:
    bool after_cr_ = false;
};

// The window <start.count> of a stream of octets fed in chunks (RFC 9051 partial): what of each
// chunk falls inside it.
class PartialWindow {
public:
    PartialWindow(uint64_t start, uint64_t count) : start_(start), count_(count) {}
    // The part of `chunk` inside the window.
    std::string_view take(std::string_view chunk);
    bool done() const { return pos_ >= start_ + count_; }

private:
    uint64_t start_, count_;
    uint64_t pos_ = 0;
};

}  // namespace ferry::imap

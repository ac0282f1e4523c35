// DKIM canonicalisation (RFC 6376 3.4), the streaming body hash and the header hash input (3.7, 5.4.2).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/verify/dkim_key.hpp"
#include "common/verify/dkim_sig.hpp"

namespace ferry::verify::dkim {

// One header field as it appears in the message, lines joined with CRLF (ferry stores LF; DKIM
// hashes CRLF), without the line end after its last line.
struct HeaderField {
    std::string name;  // lower case, without surrounding whitespace
    std::string raw;
};

// Limits of the header block a verifier or signer keeps in memory.
inline constexpr size_t kMaxHeaderBytes = 1 << 20;
inline constexpr size_t kMaxHeaderFields = 1000;

// Splits a header block (LF or CRLF line ends, the empty line excluded) into fields; lines before
// the first field that start with whitespace, and lines without a colon, are skipped.
std::vector<HeaderField> split_header(std::string_view block);

// A field in canonical form with its CRLF.
std::string canon_header(std::string_view raw, Canon c);

// The canonical body hash, fed the body in chunks (LF or CRLF line ends); `limit` is l=.
class BodyHash {
public:
    BodyHash(Canon c, std::optional<uint64_t> limit) : canon_(c), limit_(limit) {}
    void feed(std::string_view chunk);
    std::string finish();           // the SHA-256 digest
    uint64_t length() const { return hashed_; }  // octets of canonical body hashed so far

private:
    void line(std::string_view text);
    void emit(std::string_view bytes);
    Canon canon_;
    std::optional<uint64_t> limit_;
    Sha256 hash_;
    std::string partial_;         // the line not yet ended
    uint64_t empty_lines_ = 0;    // held back: trailing empty lines are not hashed
    uint64_t hashed_ = 0;
    bool any_ = false;            // a non-empty line was seen
};

// The data whose signature b= is: the fields named in `names` picked bottom-up (5.4.2), each
// canonical, then the signature field itself with its b= value emptied and no final CRLF.
std::string header_hash_input(const std::vector<HeaderField>& fields, const std::vector<std::string>& names,
                              std::string_view signature_raw, Canon c);

// The raw field with the value of its b= tag removed (3.7), whitespace inside the tag list kept.
std::string without_b_value(std::string_view raw);

}  // namespace ferry::verify::dkim

// Decoding what MIME encodes, for SEARCH and BINARY: transfer encodings, charsets, RFC 2047 words, case-insensitive match.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace ferry::mail {

// Content-Transfer-Encoding (RFC 2045 6): 7bit, 8bit and binary are identity.
enum class TransferEncoding { identity, quoted_printable, base64, unknown };
TransferEncoding transfer_encoding_of(std::string_view cte);

// Streaming decoders. Input may be split anywhere; output is the same as for the whole input.
// Both are tolerant the way Dovecot's are: they never fail, whatever the input.
// Quoted-printable (RFC 2045 6.7): "=XX" (either case) decodes, "=" before a line end is a soft
// line break, white space at the end of a line is dropped; an "=" not followed by two hex digits
// is kept as it is. Line ends come out as they went in (LF or CRLF).
class QpDecoder {
public:
    void feed(std::string_view in, std::string& out);
    void finish(std::string& out);

private:
    std::string pending_;  // an undecided "=", "=X", "=<white space>" or trailing white space (bounded)
};

// Base64 (RFC 2045 6.8): characters outside the alphabet (line ends, junk) are skipped, "=" ends
// nothing; a last incomplete group yields the whole octets it holds.
class Base64Decoder {
public:
    void feed(std::string_view in, std::string& out);
    void finish(std::string& out);

private:
    uint32_t bits_ = 0;
    int count_ = 0;
};

// One of the two above, or identity, chosen by the encoding (unknown decodes as identity).
class TransferDecoder {
public:
    explicit TransferDecoder(TransferEncoding encoding) : encoding_(encoding) {}
    void feed(std::string_view in, std::string& out);
    void finish(std::string& out);

private:
    TransferEncoding encoding_;
    QpDecoder qp_;
    Base64Decoder b64_;
};

std::string decode_quoted_printable(std::string_view in);
std::string decode_base64(std::string_view in);

// Converts a charset to UTF-8 with glibc's iconv, streaming (a sequence split between parts is
// kept for the next one). Invalid input becomes U+FFFD, never an error. An unknown charset (and
// us-ascii, whose 8-bit octets are common) is read as UTF-8: known() says which it was.
class CharsetConverter {
public:
    explicit CharsetConverter(std::string_view charset);
    bool known() const { return known_; }
    void feed(std::string_view in, std::string& out);
    void finish(std::string& out);

private:
    struct Close {
        void operator()(void* cd) const;
    };
    std::unique_ptr<void, Close> cd_;
    bool known_ = false;
    std::string pending_;  // an incomplete sequence at the end of the last part (a few octets)
};

// The whole of `bytes` in UTF-8, or nullopt for an unknown charset.
std::optional<std::string> to_utf8(std::string_view charset, std::string_view bytes);
// Valid UTF-8 as it is; each invalid octet becomes U+FFFD.
std::string sanitize_utf8(std::string_view bytes);
// Appends a code point (at most U+10FFFF) as UTF-8.
void append_utf8(std::string& out, char32_t cp);

// A header value with its RFC 2047 encoded words decoded, in UTF-8 (RFC 2047 6.2: white space
// between two encoded words goes; a word in an unknown charset or with bad encoding stays as it
// is; 8-bit text outside words is read as UTF-8).
std::string decode_header_value(std::string_view raw);

// Simple case folding of UTF-8 (the C.UTF-8 locale's towlower), for SEARCH's case-insensitive match.
std::string utf8_fold(std::string_view utf8);

// Looks for one string in UTF-8 text fed in parts, case-insensitively (RFC 3501 6.4.4); a match
// split between parts is found. Memory: the needle and one needle's length of text.
class Utf8Search {
public:
    explicit Utf8Search(std::string_view needle);
    void feed(std::string_view utf8);
    bool found() const { return found_; }

private:
    std::u32string needle_, window_;
    std::string pending_;  // an incomplete UTF-8 sequence at the end of the last part
    bool found_ = false;
};

bool contains_ci(std::string_view haystack, std::string_view needle);

// A part's body as SEARCH reads it: transfer decoding, then its charset to UTF-8.
class PartTextDecoder {
public:
    PartTextDecoder(std::string_view transfer_encoding, std::string_view charset)
        : transfer_(transfer_encoding_of(transfer_encoding)), charset_(charset) {}
    void feed(std::string_view raw, std::string& utf8);
    void finish(std::string& utf8);

private:
    TransferDecoder transfer_;
    CharsetConverter charset_;
    std::string buf_;
};

}  // namespace ferry::mail

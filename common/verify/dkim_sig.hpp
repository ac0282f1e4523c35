// DKIM (RFC 6376) tag lists: the DKIM-Signature field (3.5) and the key record (3.6.1), pure parsers with limits.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferry::verify::dkim {

// Parser limits: a longer field or record, or one with more tags or signed fields, is a permerror.
inline constexpr size_t kMaxTagListLength = 16384;
inline constexpr size_t kMaxTags = 64;
inline constexpr size_t kMaxSignedFields = 128;

enum class Algorithm { rsa_sha256, ed25519_sha256 };
enum class Canon { simple, relaxed };
const char* algorithm_name(Algorithm a);

// RFC 6376 3.2: "name=value" pairs; names as written (case-sensitive), values with their folding
// whitespace kept inside and trimmed at both ends. nullopt for a syntax error or a repeated name.
using Tag = std::pair<std::string, std::string>;
std::optional<std::vector<Tag>> parse_tag_list(std::string_view text, std::string* why = nullptr);

struct Signature {
    Algorithm algorithm = Algorithm::rsa_sha256;
    Canon header_canon = Canon::simple;
    Canon body_canon = Canon::simple;
    std::string domain;                 // d=, lower case
    std::string selector;               // s=
    std::string identity;               // i=, "@" + d= when absent
    std::vector<std::string> headers;   // h=, lower case, in order
    std::string body_hash;              // bh=, decoded
    std::string signature;              // b=, decoded
    std::string b_text;                 // b= as written, whitespace removed (header.b= uses its start)
    std::optional<uint64_t> length;     // l=
    std::optional<int64_t> timestamp;   // t=
    std::optional<int64_t> expiry;      // x=
};

// Parses the value of a DKIM-Signature field (after the colon). nullopt is a permerror: a missing
// or malformed required tag, v other than 1, an unknown algorithm (rsa-sha1 included, RFC 8301),
// h= without From, i= outside d=, x= before t=. `why` says which.
std::optional<Signature> parse_signature(std::string_view value, std::string* why = nullptr);

struct KeyRecord {
    std::string type = "rsa";   // k=
    std::string key;            // p=, decoded; empty: the key was revoked
    bool testing = false;       // t=y
    bool strict = false;        // t=s: i= must be in d= itself, not a subdomain
    std::vector<std::string> hashes;  // h=; empty means any
};

// Parses one TXT record at <selector>._domainkey.<domain>; nullopt when it is not a usable key record.
std::optional<KeyRecord> parse_key_record(std::string_view txt, std::string* why = nullptr);

// Base64 (RFC 4648) with whitespace ignored, as DKIM writes it; nullopt on other bad input.
std::optional<std::string> decode_base64(std::string_view text);
std::string encode_base64(std::string_view bytes);

}  // namespace ferry::verify::dkim

// Pure functions over raw DNS answers (RFC 1035 wire format): what an MX or A/AAAA answer says.
#pragma once

#include <string>
#include <string_view>

#include "common/event/resolver.hpp"

namespace ferry::dns {

// Longest CNAME chain followed, within one answer and across the queries of one lookup.
inline constexpr int kMaxCnameHops = 8;

// The result of one answer packet. `follow` is set (and `answer` not final) when the answer holds
// only a CNAME chain whose last target has no records here: the caller queries that name next.
struct MxParse {
    MxAnswer answer;
    std::string follow;
};

struct AddressParse {
    AddressAnswer answer;
    std::string follow;
};

// `qname` is the name asked for (any case, no trailing dot). Truncated, malformed, SERVFAIL,
// REFUSED, an answer to another question and a CNAME loop are Status::temporary; NXDOMAIN is
// nxdomain; NOERROR without records of the type is nodata. MX exchanges are lower case without
// the trailing dot; the null MX "." is kept as "" (RFC 7505); an exchange that is an IP address is
// dropped with a log line (RFC 5321 5.1 wants names), and temporary when nothing else is left.
MxParse parse_mx_answer(std::string_view packet, const std::string& qname);

// `ipv6`: the answer to an AAAA query, else to an A query.
AddressParse parse_address_answer(std::string_view packet, const std::string& qname, bool ipv6);

struct TextParse {
    TextAnswer answer;
    std::string follow;
};

// TXT: each record's character-strings joined into one string. PTR: the names, normalized.
TextParse parse_txt_answer(std::string_view packet, const std::string& qname);
TextParse parse_ptr_answer(std::string_view packet, const std::string& qname);

// A name that may be asked for: 1..253 characters, labels of 1..63 letters, digits, '-' or '_'.
bool valid_query_name(std::string_view name);

// A numeric IPv4 or IPv6 address ("192.0.2.1", "2001:db8::1"), in its canonical form; "" if not.
std::string numeric_address(std::string_view s);

// The name in lower case without a trailing dot.
std::string normalize_name(std::string_view name);

}  // namespace ferry::dns

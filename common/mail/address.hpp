// Mail addresses: the one grammar (RFC 5321 4.1.2, RFC 6531 UTF-8 form), normal form and parts.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/result.hpp"

namespace ferry {

// RFC 5321 4.5.3.1 size limits, in octets.
inline constexpr size_t kMaxLocalPart = 64;  // 4.5.3.1.1
inline constexpr size_t kMaxDomain = 255;    // 4.5.3.1.2
inline constexpr size_t kMaxPath = 256;      // 4.5.3.1.3, "<" and ">" included
inline constexpr size_t kMaxAddress = kMaxPath - 2;  // local@domain inside a path

// ascii: RFC 5321 as it stands. utf8: RFC 6531 3.3, where atext, qtextSMTP and sub-domain also
// take well-formed UTF-8 beyond ASCII (a sub-domain as a U-label); what SMTPUTF8 carries.
enum class AddressForm { ascii, utf8 };

// RFC 5321 Mailbox: a Dot-string or Quoted-string local part, "@", a domain or address literal.
struct MailboxParts {
    std::string local;   // a quoted local part stays quoted unless its content is a Dot-string
    std::string domain;  // as given, "[127.0.0.1]" for an address literal
};

// Parses "local@domain" as it stands inside an SMTP path (no angle brackets). Errors are
// 553 5.1.3 with a text saying which part is wrong or too long.
Result<MailboxParts> parse_mailbox(std::string_view text, AddressForm form = AddressForm::ascii);

// The addresses ferry stores (accounts, aliases) and delivers to: a Dot-string local part of at
// most 64 octets, a domain name (no address literal), at most 254 octets in all. A quoted local
// part is refused: it parses in SMTP, but no mailbox of ferry's is named so.
bool valid_address(std::string_view address, AddressForm form = AddressForm::ascii);
// A domain name: dot-separated labels of letters, digits and inner hyphens (1-63 octets each; in
// the utf8 form also a U-label of well-formed UTF-8), at most 255 octets in all.
bool valid_domain(std::string_view domain, AddressForm form = AddressForm::ascii);
// RFC 5321 4.1.3 address literal: "[192.0.2.1]", "[IPv6:2001:db8::1]", "[tag:content]".
bool is_address_literal(std::string_view text);

// "Local@Example.TEST" -> "local@example.test"; local parts are compared case-insensitively
// (ASCII letters only; UTF-8 octets are kept as they are).
std::string normalize_address(std::string_view address);
std::string domain_of(std::string_view address);
std::string local_part_of(std::string_view address);

// RFC 5233 subaddress: the address without its detail, the local part cut at its first character
// found in `delimiters` (recipient_delimiter, each character a delimiter): "user+tag@d" -> "user@d".
// nullopt when there is none, when `delimiters` is empty, or when the local part starts with one
// (there is no base to deliver to).
std::optional<std::string> subaddress_base(std::string_view address, std::string_view delimiters);

}  // namespace ferry

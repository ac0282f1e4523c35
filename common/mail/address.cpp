// Mail addresses: the one grammar (RFC 5321 4.1.2, RFC 6531 UTF-8 form), normal form and parts.
#include "common/mail/address.hpp"

#include <arpa/inet.h>

#include <algorithm>

namespace ferry {

namespace {

Error bad_address(std::string text) { return make_error(553, "5.1.3", std::move(text)); }

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_let_dig(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c); }

bool in(unsigned char c, unsigned char lo, unsigned char hi) { return c >= lo && c <= hi; }

// Length of the well-formed UTF-8 non-ASCII character at s[i] (RFC 3629 4: no overlong forms,
// no surrogates, nothing above U+10FFFF), 0 when there is none.
size_t utf8_non_ascii(std::string_view s, size_t i) {
    auto at = [&](size_t k) -> unsigned char { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0; };
    unsigned char c = at(0);
    auto tail = [&](size_t k) { return in(at(k), 0x80, 0xBF); };
    if (in(c, 0xC2, 0xDF)) return tail(1) ? 2 : 0;
    if (c == 0xE0) return in(at(1), 0xA0, 0xBF) && tail(2) ? 3 : 0;
    if (in(c, 0xE1, 0xEC) || in(c, 0xEE, 0xEF)) return tail(1) && tail(2) ? 3 : 0;
    if (c == 0xED) return in(at(1), 0x80, 0x9F) && tail(2) ? 3 : 0;
    if (c == 0xF0) return in(at(1), 0x90, 0xBF) && tail(2) && tail(3) ? 4 : 0;
    if (in(c, 0xF1, 0xF3)) return tail(1) && tail(2) && tail(3) ? 4 : 0;
    if (c == 0xF4) return in(at(1), 0x80, 0x8F) && tail(2) && tail(3) ? 4 : 0;
    return 0;
}

// Octets of the character at s[i] that `ascii_ok` or, in the utf8 form, UTF8-non-ascii admits; 0 if none.
template <typename Pred>
size_t char_length(std::string_view s, size_t i, AddressForm form, Pred ascii_ok) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) return ascii_ok(static_cast<char>(c)) ? 1 : 0;
    return form == AddressForm::utf8 ? utf8_non_ascii(s, i) : 0;
}

// RFC 5322 atext (RFC 6531: plus UTF8-non-ascii).
bool is_atext(char c) {
    return is_let_dig(c) || std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

// RFC 5321 qtextSMTP: printable ASCII but '"' and '\'.
bool is_qtext(char c) { return c == 32 || c == 33 || (c >= 35 && c <= 91) || (c >= 93 && c <= 126); }

// RFC 5321 Dot-string: atoms of atext joined by single dots.
bool is_dot_string(std::string_view s, AddressForm form) {
    if (s.empty() || s.front() == '.' || s.back() == '.') return false;
    for (size_t i = 0; i < s.size();) {
        if (s[i] == '.') {
            if (s[i + 1] == '.') return false;  // back() is not '.', so i + 1 is in range
            ++i;
            continue;
        }
        size_t n = char_length(s, i, form, is_atext);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

// Length of the RFC 5321 Quoted-string at the start of s, 0 when there is none; its content,
// quoted pairs undone, goes to `content`.
size_t quoted_length(std::string_view s, AddressForm form, std::string& content) {
    if (s.empty() || s[0] != '"') return 0;
    for (size_t i = 1; i < s.size();) {
        if (s[i] == '"') return i + 1;
        if (s[i] == '\\') {  // quoted-pairSMTP: "\" followed by %d32-126
            if (i + 1 >= s.size() || s[i + 1] < 32 || s[i + 1] > 126) return 0;
            content.push_back(s[i + 1]);
            i += 2;
            continue;
        }
        size_t n = char_length(s, i, form, is_qtext);
        if (n == 0) return 0;
        content.append(s.substr(i, n));
        i += n;
    }
    return 0;
}

// RFC 5321 sub-domain: Let-dig [Ldh-str], at most 63 octets (RFC 1035 2.3.4). In the utf8 form a
// label with UTF-8 in it is taken as a U-label (RFC 5890): the same shape, UTF-8 counted as letters.
bool valid_label(std::string_view label, AddressForm form) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (size_t i = 0; i < label.size();) {
        size_t n = char_length(label, i, form, [](char c) { return is_let_dig(c) || c == '-'; });
        if (n == 0) return false;
        i += n;
    }
    return true;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) return false;
    for (size_t i = 0; i < prefix.size(); ++i)
        if (lower(s[i]) != lower(prefix[i])) return false;
    return true;
}

bool is_domain_or_literal(std::string_view domain, AddressForm form) {
    return domain.front() == '[' ? is_address_literal(domain) : valid_domain(domain, form);
}

}  // namespace

bool is_address_literal(std::string_view text) {
    if (text.size() < 3 || text.front() != '[' || text.back() != ']') return false;
    std::string inner(text.substr(1, text.size() - 2));
    unsigned char buf[16];
    if (starts_with_ci(inner, "IPv6:")) return inet_pton(AF_INET6, inner.c_str() + 5, buf) == 1;
    if (is_digit(inner[0]) && inner.find(':') == std::string::npos) return inet_pton(AF_INET, inner.c_str(), buf) == 1;
    // General-address-literal: Standardized-tag ":" 1*dcontent.
    size_t colon = inner.find(':');
    if (colon == std::string::npos || colon + 1 >= inner.size()) return false;
    if (!valid_label(std::string_view(inner).substr(0, colon), AddressForm::ascii)) return false;
    for (size_t i = colon + 1; i < inner.size(); ++i) {
        char c = inner[i];
        if (!((c >= 33 && c <= 90) || (c >= 94 && c <= 126))) return false;
    }
    return true;
}

bool valid_domain(std::string_view domain, AddressForm form) {
    if (domain.empty() || domain.size() > kMaxDomain) return false;
    while (true) {
        size_t dot = domain.find('.');
        if (!valid_label(domain.substr(0, dot), form)) return false;
        if (dot == std::string_view::npos) return true;
        domain.remove_prefix(dot + 1);
    }
}

Result<MailboxParts> parse_mailbox(std::string_view text, AddressForm form) {
    MailboxParts parts;
    size_t local_len = 0;
    if (!text.empty() && text.front() == '"') {
        std::string content;
        local_len = quoted_length(text, form, content);
        if (local_len == 0) return bad_address("Syntax error in quoted local part");
        // A quoted Dot-string is the same mailbox as the unquoted one (RFC 5321 4.1.2).
        parts.local = is_dot_string(content, form) ? content : std::string(text.substr(0, local_len));
    } else {
        local_len = std::min(text.find('@'), text.size());
        parts.local = std::string(text.substr(0, local_len));
        if (!is_dot_string(parts.local, form)) return bad_address("Syntax error in local part of address");
    }
    if (local_len > kMaxLocalPart) return bad_address("Local part of address too long");
    if (local_len >= text.size() || text[local_len] != '@') return bad_address("Address must have a domain");
    std::string_view domain = text.substr(local_len + 1);
    if (domain.size() > kMaxDomain) return bad_address("Domain of address too long");
    if (domain.empty() || !is_domain_or_literal(domain, form)) return bad_address("Syntax error in domain of address");
    parts.domain = std::string(domain);
    return parts;
}

bool valid_address(std::string_view address, AddressForm form) {
    if (address.size() > kMaxAddress || address.empty() || address.front() == '"') return false;
    auto parts = parse_mailbox(address, form);
    return parts.ok() && parts->domain.front() != '[';
}

std::string normalize_address(std::string_view address) {
    while (!address.empty() && (address.front() == ' ' || address.front() == '\t')) address.remove_prefix(1);
    while (!address.empty() && (address.back() == ' ' || address.back() == '\t')) address.remove_suffix(1);
    if (address.size() >= 2 && address.front() == '<' && address.back() == '>') address = address.substr(1, address.size() - 2);
    std::string out(address);
    for (char& c : out) c = lower(c);
    return out;
}

std::string domain_of(std::string_view address) {
    auto at = address.rfind('@');
    if (at == std::string_view::npos) return {};
    std::string out(address.substr(at + 1));
    for (char& c : out) c = lower(c);
    return out;
}

std::string local_part_of(std::string_view address) {
    auto at = address.rfind('@');
    return std::string(at == std::string_view::npos ? address : address.substr(0, at));
}

std::optional<std::string> subaddress_base(std::string_view address, std::string_view delimiters) {
    if (delimiters.empty()) return std::nullopt;
    auto at = address.rfind('@');
    if (at == std::string_view::npos) return std::nullopt;
    auto cut = address.substr(0, at).find_first_of(delimiters);
    if (cut == std::string_view::npos || cut == 0) return std::nullopt;
    return std::string(address.substr(0, cut)) + std::string(address.substr(at));
}

}  // namespace ferry

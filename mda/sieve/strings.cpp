// Small string helpers of the Sieve library: case, names, time zones, encoded-character.
#include "mda/sieve/strings.hpp"

#include <cstdint>

#include "common/mail/address.hpp"
#include "common/mail/mime_decode.hpp"

namespace ferry::sieve {

namespace {

bool alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool digit(char c) { return c >= '0' && c <= '9'; }
int hex(char c) {
    if (digit(c)) return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
bool space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// The content of one "${hex:...}" or "${unicode:...}", decoded; nullopt when malformed.
std::optional<std::string> decode_one(std::string_view kind, std::string_view body) {
    std::string out;
    size_t i = 0;
    bool any = false;
    while (i < body.size()) {
        if (space(body[i])) {
            ++i;
            continue;
        }
        uint32_t v = 0;
        size_t n = 0;
        while (i < body.size() && hex(body[i]) >= 0) {
            if (++n > 8) return std::nullopt;
            v = v * 16 + static_cast<uint32_t>(hex(body[i++]));
        }
        if (n == 0) return std::nullopt;
        if (kind == "hex") {
            if (n > 2) return std::nullopt;
            out += static_cast<char>(v);
        } else {
            // RFC 5228 2.4.2.4: surrogates and values past U+10FFFF are errors; left as they are here.
            if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return std::nullopt;
            mail::append_utf8(out, static_cast<char32_t>(v));
        }
        any = true;
    }
    if (!any) return std::string();
    return out;
}

}  // namespace

std::string ascii_lower(std::string_view s) {
    std::string r(s);
    for (auto& c : r)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return r;
}

std::string ascii_upper(std::string_view s) {
    std::string r(s);
    for (auto& c : r)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return r;
}

bool valid_variable_name(std::string_view name, bool numbered) {
    if (name.empty()) return false;
    if (numbered && digit(name[0])) {
        for (char c : name)
            if (!digit(c)) return false;
        return true;
    }
    if (!alpha(name[0])) return false;
    for (char c : name)
        if (!alpha(c) && !digit(c)) return false;
    return true;
}

bool is_address_field(std::string_view name) {
    // RFC 5228 5.1: From, To, Cc, Bcc, Sender, Resent-From, Resent-To at least, and the other address-list fields.
    static const char* const fields[] = {
        "from", "sender", "reply-to", "to", "cc", "bcc", "resent-from", "resent-sender", "resent-reply-to",
        "resent-to", "resent-cc", "resent-bcc", "return-path", "return-receipt-to", "disposition-notification-to",
        "delivered-to", "errors-to", "envelope-to", "x-original-to", "x-envelope-to", "x-delivered-to",
        "apparently-to", "approved", "original-recipient", "mail-followup-to", "mail-reply-to", "original-from"};
    std::string n = ascii_lower(name);
    for (const char* f : fields)
        if (n == f) return true;
    return false;
}

std::optional<std::string> redirect_address(std::string_view text) {
    std::string_view a = text;
    if (size_t lt = a.find('<'); lt != std::string_view::npos && !a.empty() && a.back() == '>')
        a = a.substr(lt + 1, a.size() - lt - 2);
    if (!parse_mailbox(a, AddressForm::utf8)) return std::nullopt;
    return std::string(a);
}

bool valid_field_name(std::string_view name) {
    if (name.empty()) return false;
    for (char c : name)
        if (c < 33 || c > 126 || c == ':') return false;
    return true;
}

std::optional<int> parse_zone(std::string_view z) {
    if (z.size() != 5 || (z[0] != '+' && z[0] != '-')) return std::nullopt;
    for (size_t i = 1; i < 5; ++i)
        if (!digit(z[i])) return std::nullopt;
    int h = (z[1] - '0') * 10 + (z[2] - '0'), m = (z[3] - '0') * 10 + (z[4] - '0');
    if (m > 59) return std::nullopt;
    int minutes = h * 60 + m;
    return z[0] == '-' ? -minutes : minutes;
}

size_t utf8_length(unsigned char c) {
    if (c >= 0xF0 && c < 0xF8) return 4;
    if (c >= 0xE0 && c < 0xF0) return 3;
    if (c >= 0xC0 && c < 0xE0) return 2;
    return 1;
}

std::string decode_encoded_characters(std::string_view s) {
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
        size_t start = s.find("${", i);
        if (start == std::string_view::npos) break;
        out.append(s.substr(i, start - i));
        size_t colon = s.find(':', start + 2), close = s.find('}', start + 2);
        if (colon == std::string_view::npos || close == std::string_view::npos || colon > close) {
            out += "${";
            i = start + 2;
            continue;
        }
        std::string kind = ascii_lower(s.substr(start + 2, colon - start - 2));
        std::optional<std::string> decoded;
        if (kind == "hex" || kind == "unicode") decoded = decode_one(kind, s.substr(colon + 1, close - colon - 1));
        if (decoded) {
            out += *decoded;
            i = close + 1;
        } else {
            out += "${";
            i = start + 2;
        }
    }
    out.append(s.substr(i));
    return out;
}

}  // namespace ferry::sieve

// Modified UTF-7 (RFC 3501 section 5.1.3): pure encoder and strict decoder.
#include "imapd/mutf7.hpp"

#include <cstdint>
#include <vector>

namespace ferry::imap {

namespace {

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

int b64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == ',') return 63;
    return -1;
}

// Next code point of well-formed UTF-8, or -1.
int32_t next_utf8(std::string_view s, size_t& i) {
    unsigned char c = s[i];
    size_t n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : 4;
    if (n == 4 || i + n >= s.size()) return -1;
    uint32_t cp = n == 0 ? c : n == 1 ? (c & 0x1f) : n == 2 ? (c & 0x0f) : (c & 0x07);
    for (size_t k = 1; k <= n; k++) {
        unsigned char d = s[i + k];
        if ((d & 0xc0) != 0x80) return -1;
        cp = (cp << 6) | (d & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    i += n + 1;
    return int32_t(cp);
}

void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xc0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += char(0xe0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3f));
        out += char(0x80 | (cp & 0x3f));
    } else {
        out += char(0xf0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3f));
        out += char(0x80 | ((cp >> 6) & 0x3f));
        out += char(0x80 | (cp & 0x3f));
    }
}

void flush_run(std::string& out, std::vector<uint16_t>& units) {
    if (units.empty()) return;
    out += '&';
    uint32_t bits = 0;
    int nbits = 0;
    for (uint16_t u : units) {
        bits = (bits << 16) | u;
        nbits += 16;
        while (nbits >= 6) {
            nbits -= 6;
            out += kB64[(bits >> nbits) & 0x3f];
        }
    }
    if (nbits > 0) out += kB64[(bits << (6 - nbits)) & 0x3f];
    out += '-';
    units.clear();
}

// Decodes one base64 run into UTF-16 units; false on a bad letter or padding.
bool decode_run(std::string_view run, std::vector<uint16_t>& units) {
    uint32_t bits = 0;
    int nbits = 0;
    for (char c : run) {
        int v = b64_value(c);
        if (v < 0) return false;
        bits = (bits << 6) | uint32_t(v);
        nbits += 6;
        if (nbits >= 16) {
            nbits -= 16;
            units.push_back(uint16_t(bits >> nbits));
            bits &= (1u << nbits) - 1;
        }
    }
    return nbits < 6 && bits == 0;
}

}  // namespace

std::optional<std::string> mutf7_encode(std::string_view s) {
    std::string out;
    std::vector<uint16_t> units;
    size_t i = 0;
    while (i < s.size()) {
        int32_t cp = next_utf8(s, i);
        if (cp < 0) return std::nullopt;
        if (cp >= 0x20 && cp <= 0x7e) {
            flush_run(out, units);
            out += cp == '&' ? "&-" : std::string(1, char(cp));
        } else if (cp >= 0x10000) {
            uint32_t v = uint32_t(cp) - 0x10000;
            units.push_back(uint16_t(0xd800 | (v >> 10)));
            units.push_back(uint16_t(0xdc00 | (v & 0x3ff)));
        } else {
            units.push_back(uint16_t(cp));
        }
    }
    flush_run(out, units);
    return out;
}

std::optional<std::string> mutf7_decode(std::string_view s) {
    std::string out;
    bool after_run = false;  // the previous bytes were an encoded run
    size_t i = 0;
    while (i < s.size()) {
        unsigned char c = s[i];
        if (c < 0x20 || c > 0x7e) return std::nullopt;
        if (c != '&') {
            out += char(c);
            after_run = false;
            i++;
            continue;
        }
        size_t dash = s.find('-', i + 1);
        if (dash == std::string_view::npos) return std::nullopt;
        if (dash == i + 1) {
            out += '&';
            after_run = false;
            i += 2;
            continue;
        }
        if (after_run) return std::nullopt;
        std::vector<uint16_t> units;
        if (!decode_run(s.substr(i + 1, dash - i - 1), units) || units.empty()) return std::nullopt;
        for (size_t k = 0; k < units.size(); k++) {
            uint32_t u = units[k];
            if (u >= 0xd800 && u <= 0xdbff) {
                if (k + 1 >= units.size() || units[k + 1] < 0xdc00 || units[k + 1] > 0xdfff) return std::nullopt;
                u = 0x10000 + ((u - 0xd800) << 10) + (units[++k] - 0xdc00);
            } else if (u >= 0xdc00 && u <= 0xdfff) {
                return std::nullopt;
            } else if (u >= 0x20 && u <= 0x7e) {
                return std::nullopt;  // printable ASCII must stand for itself
            }
            put_utf8(out, u);
        }
        after_run = true;
        i = dash + 1;
    }
    return out;
}

}  // namespace ferry::imap

// ASCII helpers the MIME files share: white space, case, hex digits (header names and tokens are ASCII).
#pragma once

#include <string>
#include <string_view>

namespace ferry::mail {

inline bool is_wsp(char c) { return c == ' ' || c == '\t'; }

inline char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

inline std::string ascii_lower(std::string_view s) {
    std::string r(s);
    for (auto& c : r) c = ascii_lower(c);
    return r;
}

inline bool ascii_iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
}

// The value of a hex digit, -1 for anything else.
inline int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace ferry::mail

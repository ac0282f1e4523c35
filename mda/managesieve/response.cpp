// ManageSieve responses (RFC 5804 section 1.3 and 4): strings as quoted or literal, OK/NO/BYE lines with codes.
#include "mda/managesieve/response.hpp"

namespace ferry::managesieve {

std::string string_token(std::string_view s) {
    bool plain = s.size() <= 1024;
    for (char c : s)
        if (c == '\r' || c == '\n' || c == '\0') plain = false;
    if (!plain) return "{" + std::to_string(s.size()) + "}\r\n" + std::string(s);
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

std::string response(std::string_view kind, std::string_view code, std::string_view text) {
    std::string out(kind);
    if (!code.empty()) out += " (" + std::string(code) + ")";
    if (!text.empty()) out += " " + string_token(text);
    return out + "\r\n";
}

}  // namespace ferry::managesieve

// RFC 2047 encoded words for header values ferry writes from UTF-8 text (a vacation Subject, an added header).
#include "common/mail/header_words.hpp"

#include <cctype>

namespace ferry::mail {

namespace {

constexpr size_t kMaxWord = 75;  // RFC 2047 2
constexpr std::string_view kOpen = "=?utf-8?q?";
constexpr std::string_view kClose = "?=";

bool plain(std::string_view s) {
    for (unsigned char c : s)
        if (c < 0x20 || c > 0x7e) return false;
    return s.find("=?") == std::string_view::npos;
}

// The octets of the UTF-8 sequence starting at s[i] (1 for a stray continuation byte).
size_t sequence_length(std::string_view s, size_t i) {
    size_t n = 1;
    while (i + n < s.size() && (static_cast<unsigned char>(s[i + n]) & 0xC0) == 0x80 && n < 4) ++n;
    return n;
}

// RFC 2047 5(3): in a "q" word only letters, digits and "!*+-/" stand for themselves; space is "_".
void append_q(std::string& out, unsigned char c) {
    static const char hex[] = "0123456789ABCDEF";
    if (c == ' ') out += '_';
    else if (isalnum(c) || c == '!' || c == '*' || c == '+' || c == '-' || c == '/') out += static_cast<char>(c);
    else {
        out += '=';
        out += hex[c >> 4];
        out += hex[c & 15];
    }
}

}  // namespace

std::string encode_header_words(std::string_view utf8) {
    std::string text(utf8);
    for (char& c : text)
        if (c == '\r' || c == '\n') c = ' ';
    if (plain(text)) return text;
    std::string out, word;
    auto flush = [&] {
        if (word.empty()) return;
        if (!out.empty()) out += "\n ";
        out += std::string(kOpen) + word + std::string(kClose);
        word.clear();
    };
    for (size_t i = 0; i < text.size();) {
        size_t n = sequence_length(text, i);
        std::string piece;
        for (size_t k = 0; k < n; ++k) append_q(piece, static_cast<unsigned char>(text[i + k]));
        if (kOpen.size() + word.size() + piece.size() + kClose.size() > kMaxWord) flush();
        word += piece;
        i += n;
    }
    flush();
    return out;
}

}  // namespace ferry::mail

// The Sieve lexer: identifiers, tags, numbers with K/M/G, quoted and text: strings, comments (RFC 5228 2.2-2.4, 8.1).
#include "mda/sieve/lexer.hpp"

#include <cctype>

namespace ferry::sieve {

namespace {

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

void Lexer::advance(size_t n) {
    for (size_t i = 0; i < n && pos_ < in_.size(); ++i, ++pos_) {
        if (in_[pos_] == '\n') {
            ++at_.line;
            at_.column = 1;
        } else {
            ++at_.column;
        }
    }
}

Token Lexer::error(Pos at, std::string message) {
    failed_ = Token{Token::Kind::error, at, std::move(message), 0};
    return *failed_;
}

bool Lexer::line_end_here(size_t& len) const {
    if (peek() == '\n') return len = 1, true;
    if (peek() == '\r' && peek(1) == '\n') return len = 2, true;
    return false;
}

std::optional<std::string> Lexer::skip_space() {
    for (;;) {
        char c = peek();
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            advance();
        } else if (c == '#') {
            while (!at_end() && peek() != '\n') advance();
        } else if (c == '/' && peek(1) == '*') {
            size_t end = in_.find("*/", pos_ + 2);
            if (end == std::string_view::npos) {
                comment_at_ = at_;
                return "unterminated /* comment";
            }
            advance(end + 2 - pos_);
        } else {
            return std::nullopt;
        }
    }
}

Token Lexer::next() {
    if (failed_) return *failed_;
    if (auto bad = skip_space()) return error(comment_at_, *bad);
    Pos start = at_;
    if (at_end()) return Token{Token::Kind::end, start, {}, 0};
    char c = peek();
    if (c == '"') return quoted(start);
    if (is_digit(c)) return number(start);
    if (c == ':' && is_alpha(peek(1))) {
        advance();
        return word(start, true);
    }
    if (is_alpha(c)) {
        // "text:" starts a multi-line string (RFC 5228 8.1); any other identifier is a word.
        if (in_.substr(pos_, 5).size() == 5 && lower(c) == 't' && lower(peek(1)) == 'e' && lower(peek(2)) == 'x' &&
            lower(peek(3)) == 't' && peek(4) == ':')
            return multiline(start);
        return word(start, false);
    }
    if (std::string_view("[](),;{}").find(c) != std::string_view::npos) {
        advance();
        return Token{Token::Kind::punct, start, std::string(1, c), 0};
    }
    return error(start, std::string("unexpected character '") +
                            (std::isprint(static_cast<unsigned char>(c)) ? std::string(1, c) : "\\x" + std::to_string(
                                static_cast<unsigned char>(c))) + "'");
}

Token Lexer::word(Pos start, bool tag) {
    std::string w;
    while (is_alpha(peek()) || is_digit(peek())) {
        w += lower(peek());
        advance();
    }
    return Token{tag ? Token::Kind::tag : Token::Kind::identifier, start, std::move(w), 0};
}

Token Lexer::number(Pos start) {
    uint64_t n = 0;
    while (is_digit(peek())) {
        uint64_t d = static_cast<uint64_t>(peek() - '0');
        if (n > (UINT64_MAX - d) / 10) return error(start, "number too large");
        n = n * 10 + d;
        advance();
    }
    int shift = 0;
    switch (lower(peek())) {
        case 'k': shift = 10; break;
        case 'm': shift = 20; break;
        case 'g': shift = 30; break;
        default: break;
    }
    if (shift) {
        if (n > (UINT64_MAX >> shift)) return error(start, "number too large");
        n <<= shift;
        advance();
    }
    if (is_alpha(peek())) return error(at_, "a number must be followed by white space or punctuation");
    return Token{Token::Kind::number, start, {}, n};
}

Token Lexer::quoted(Pos start) {
    advance();  // the opening quote
    std::string s;
    for (;;) {
        if (at_end()) return error(start, "unterminated string");
        char c = peek();
        if (c == '"') break;
        if (c == '\\') {
            // RFC 5228 2.4.2: "\\" and "\"" are escapes; a backslash before anything else goes.
            advance();
            if (at_end()) return error(start, "unterminated string");
            c = peek();
        }
        s += c;
        advance();
        if (s.size() > max_string_) return error(start, "string longer than " + std::to_string(max_string_) + " octets");
    }
    advance();
    return Token{Token::Kind::string, start, std::move(s), 0};
}

Token Lexer::multiline(Pos start) {
    advance(5);  // "text:"
    while (peek() == ' ' || peek() == '\t') advance();
    if (peek() == '#') {
        while (!at_end() && peek() != '\n') advance();
    }
    size_t len = 0;
    if (!line_end_here(len)) return error(at_, "expected a line end after text:");
    advance(len);
    std::string s;
    for (;;) {
        if (at_end()) return error(start, "unterminated text: string (a line with a single '.' ends it)");
        size_t eol = in_.find('\n', pos_);
        size_t end = eol == std::string_view::npos ? in_.size() : eol + 1;
        std::string_view line = in_.substr(pos_, end - pos_);
        std::string_view content = line;
        if (!content.empty() && content.back() == '\n') content.remove_suffix(1);
        if (!content.empty() && content.back() == '\r') content.remove_suffix(1);
        if (content == ".") {
            advance(line.size());
            break;
        }
        // Dot-stuffing: a line starting with "." had one added (RFC 5228 8.1). Lines end in CRLF
        // whatever the script file used, as in a message (and as Pigeonhole reads them).
        if (!content.empty() && content[0] == '.') content.remove_prefix(1);
        s += content;
        s += "\r\n";
        if (s.size() > max_string_) return error(start, "string longer than " + std::to_string(max_string_) + " octets");
        advance(end - pos_);
        if (eol == std::string_view::npos)
            return error(start, "unterminated text: string (a line with a single '.' ends it)");
    }
    return Token{Token::Kind::multiline, start, std::move(s), 0};
}

}  // namespace ferry::sieve

// The Sieve lexer (RFC 5228 section 8.1): tokens over the script's bytes, with positions and a string length limit.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mda/sieve/script.hpp"

namespace ferry::sieve {

struct Token {
    enum class Kind { end, identifier, tag, number, string, multiline, punct, error };
    Kind kind = Kind::end;
    Pos pos;
    std::string text;  // identifier or tag (lower-cased, no ':'), string contents, punctuation, error message
    uint64_t number = 0;
};

// Reads one token at a time; comments and white space are skipped. After an error token the lexer
// keeps returning it.
class Lexer {
public:
    Lexer(std::string_view text, size_t max_string_length) : in_(text), max_string_(max_string_length) {}
    Token next();

private:
    char peek(size_t ahead = 0) const { return pos_ + ahead < in_.size() ? in_[pos_ + ahead] : '\0'; }
    bool at_end() const { return pos_ >= in_.size(); }
    void advance(size_t n = 1);
    std::optional<std::string> skip_space();  // an error message for an unterminated comment
    Token error(Pos at, std::string message);
    Token quoted(Pos start);
    Token multiline(Pos start);
    Token number(Pos start);
    Token word(Pos start, bool tag);
    bool line_end_here(size_t& len) const;

    std::string_view in_;
    size_t max_string_;
    size_t pos_ = 0;
    Pos at_;
    Pos comment_at_;  // where an unterminated comment starts
    std::optional<Token> failed_;
};

}  // namespace ferry::sieve

// POP3 replies: +OK/-ERR lines with RFC 2449 response codes, and what RETR and TOP send of a message.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/result.hpp"
#include "common/mail/wire.hpp"

namespace ferry::pop3 {

// RFC 2449 section 8 and RFC 3206. For POP3 errors, Error::enhanced holds the code ("IN-USE").
inline constexpr const char* kInUse = "IN-USE";
inline constexpr const char* kLoginDelay = "LOGIN-DELAY";
inline constexpr const char* kAuth = "AUTH";          // the credentials were wrong
inline constexpr const char* kSysTemp = "SYS/TEMP";   // try again later
inline constexpr const char* kSysPerm = "SYS/PERM";   // an administrator must act

std::string ok(std::string_view text);
// "-ERR [CODE] text\r\n", or "-ERR text\r\n" when code is empty.
std::string err(std::string_view code, std::string_view text);
std::string err(const Error& e);
// A POP3 error value for functions returning Result<T>.
Error pop_error(std::string code, std::string text, std::string detail = {});

// How much of a stored message TOP sends (RFC 1939 section 7): the header, the blank line ending
// it and that many body lines; without a count, everything. Pure and incremental over LF lines.
class TopLimit {
public:
    explicit TopLimit(std::optional<uint64_t> top_lines = std::nullopt) : limit_(top_lines) {}
    // How many leading bytes of the next part of the message are sent: all of them until done().
    size_t take(std::string_view in);
    bool done() const { return done_; }

private:
    void end_line();

    std::optional<uint64_t> limit_;
    bool done_ = false;
    bool in_header_ = true;
    bool last_cr_ = false;     // the current line so far ends in CR
    size_t line_length_ = 0;   // bytes of the current line, a trailing CR included
    uint64_t body_lines_ = 0;
};

// A message stored with LF line ends as the body of a multi-line reply: the wire encoder
// (common/mail/wire.hpp) fed what TopLimit lets through.
class MessageEncoder {
public:
    explicit MessageEncoder(std::optional<uint64_t> top_lines = std::nullopt) : top_(top_lines) {}
    // Appends the encoding of the next part of the stored message to `out`; parts may split anywhere.
    void feed(std::string_view in, std::string& out) { wire_.feed(in.substr(0, top_.take(in)), out); }
    void finish(std::string& out) { wire_.finish(out); }
    // True when TOP has sent all it will: the rest of the file need not be read.
    bool done() const { return top_.done(); }

private:
    TopLimit top_;
    mail::WireEncoder wire_;
};

// The whole multi-line reply body for a stored message (for tests and small messages).
std::string encode_message(std::string_view stored, std::optional<uint64_t> top_lines = std::nullopt);

}  // namespace ferry::pop3

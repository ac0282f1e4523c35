// POP3 replies: +OK/-ERR lines with RFC 2449 response codes, and the dot-stuffed CRLF message encoder.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/result.hpp"

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

// Turns a message stored with LF line ends into the body of a multi-line reply (RFC 1939 section 3):
// every bare LF becomes CRLF (CRLF stays), a line starting with '.' gets one more, and finish()
// ends the last line if needed and adds ".\r\n". With top_lines set it sends the header, the blank
// line and that many body lines (TOP); a count past the end sends the whole message.
class MessageEncoder {
public:
    explicit MessageEncoder(std::optional<uint64_t> top_lines = std::nullopt) : limit_(top_lines) {
        if (limit_ && *limit_ == 0) limit_zero_ = true;
    }
    // Appends the encoding of the next part of the stored message to `out`; parts may split anywhere.
    void feed(std::string_view in, std::string& out);
    void finish(std::string& out);
    // True when TOP has sent all it will: the rest of the file need not be read.
    bool done() const { return done_; }

private:
    void end_line(std::string& out);

    std::optional<uint64_t> limit_;
    bool limit_zero_ = false;
    bool done_ = false;
    bool in_header_ = true;
    bool at_line_start_ = true;
    bool last_cr_ = false;       // the last byte sent was CR (so an LF after it is already CRLF)
    size_t line_length_ = 0;     // bytes of the current line, a trailing CR included
    uint64_t body_lines_ = 0;
};

// The whole multi-line reply body for a stored message (for tests and small messages).
std::string encode_message(std::string_view stored, std::optional<uint64_t> top_lines = std::nullopt);

}  // namespace ferry::pop3

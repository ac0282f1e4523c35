// The SMTP/LMTP reply reader (RFC 5321 4.2, RFC 2034): multi-line replies, code, enhanced code and text, with limits.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::smtp {

// A reply as the server gave it. Code 0 is never read from the wire: a client uses it for "no
// reply" (connection refused or lost), with `text` saying why.
struct Reply {
    int code = 0;
    std::string enhanced;            // "2.1.5" when the first line carries one of the reply's class, else empty
    std::string text;                // "250 2.1.5 Ok": the first line, continuation texts joined by a space
    std::vector<std::string> lines;  // each line's text after "ddd-" / "ddd " (EHLO keywords, for a client)
    bool ok() const { return code >= 200 && code < 300; }
    bool permanent() const { return code >= 500 && code < 600; }
};

struct ReplyLimits {
    size_t max_lines = 100;   // lines of one multi-line reply
    size_t max_line = 4096;   // bytes of one reply line, CRLF excluded
};

// Pure and incremental: fed any chunks of a server's output, it finds one reply at a time.
// "ddd-text" continues a reply, "ddd text" or "ddd" ends it; a line ends at LF (a CR before it is
// dropped). Malformed lines, a code changing inside a reply and limit breaches are errors, after
// which the reader stays failed: the caller drops the connection.
class ReplyReader {
public:
    enum class Status { need_more, done, error };
    struct Step {
        Status status = Status::need_more;
        size_t consumed = 0;  // bytes of the input used: all of it when need_more, through the reply's LF when done
    };
    explicit ReplyReader(const ReplyLimits& limits = {}) : limits_(limits) {}

    Step feed(std::string_view input);
    // After done: the finished reply; the reader starts over for the next one.
    Reply take();
    const std::string& error() const { return error_; }

private:
    Status line(std::string_view line);
    Status fail(std::string why);

    ReplyLimits limits_;
    std::string partial_;  // a line not yet ended, at most max_line + 1 bytes
    Reply reply_;
    bool failed_ = false;
    std::string error_;
};

// The enhanced status code (RFC 3463) at the start of `text` when it has one of class `klass`
// ('2', '4' or '5'), followed by a space or the end; else empty.
std::string enhanced_code(std::string_view text, char klass);

}  // namespace ferry::smtp

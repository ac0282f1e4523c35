// POP3 replies: +OK/-ERR lines with RFC 2449 response codes, and what RETR and TOP send of a message.
#include "popd/response.hpp"

namespace ferry::pop3 {

std::string ok(std::string_view text) {
    std::string r = "+OK";
    if (!text.empty()) {
        r += ' ';
        r += text;
    }
    r += "\r\n";
    return r;
}

std::string err(std::string_view code, std::string_view text) {
    std::string r = "-ERR ";
    if (!code.empty()) {
        r += '[';
        r += code;
        r += "] ";
    }
    r += text;
    r += "\r\n";
    return r;
}

std::string err(const Error& e) { return err(e.enhanced, e.text); }

Error pop_error(std::string code, std::string text, std::string detail) {
    return Error{0, std::move(code), std::move(text), std::move(detail)};
}

size_t TopLimit::take(std::string_view in) {
    if (!limit_) return in.size();
    size_t pos = 0;
    while (pos < in.size() && !done_) {
        size_t nl = in.find('\n', pos);
        size_t end = nl == std::string_view::npos ? in.size() : nl;
        if (end > pos) {
            line_length_ += end - pos;
            last_cr_ = in[end - 1] == '\r';
        }
        if (nl == std::string_view::npos) return in.size();
        pos = nl + 1;
        end_line();
    }
    return pos;
}

void TopLimit::end_line() {
    bool blank = line_length_ == 0 || (line_length_ == 1 && last_cr_);
    last_cr_ = false;
    line_length_ = 0;
    if (in_header_) {
        // The blank line ending the header belongs to what TOP always sends (RFC 1939 section 7).
        if (blank) {
            in_header_ = false;
            if (*limit_ == 0) done_ = true;
        }
        return;
    }
    if (++body_lines_ >= *limit_) done_ = true;
}

std::string encode_message(std::string_view stored, std::optional<uint64_t> top_lines) {
    std::string out;
    out.reserve(stored.size() + stored.size() / 32 + 8);
    MessageEncoder enc(top_lines);
    enc.feed(stored, out);
    enc.finish(out);
    return out;
}

}  // namespace ferry::pop3

// The SMTP/LMTP reply reader (RFC 5321 4.2, RFC 2034): multi-line replies, code, enhanced code and text, with limits.
#include "common/smtp/reply.hpp"

#include <utility>

namespace ferry::smtp {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool is_reply_line(std::string_view line) {
    if (line.size() < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2])) return false;
    return line[0] >= '2' && line[0] <= '5' && (line.size() == 3 || line[3] == ' ' || line[3] == '-');
}

// 1 to `max` digits at `pos`; returns how many.
size_t digits(std::string_view s, size_t pos, size_t max) {
    size_t n = 0;
    while (pos + n < s.size() && n < max && is_digit(s[pos + n])) ++n;
    return n;
}

}  // namespace

std::string enhanced_code(std::string_view text, char klass) {
    // class "." subject "." detail: subject and detail 1 to 3 digits (RFC 3463 section 2).
    if (text.size() < 5 || text[0] != klass || text[1] != '.') return "";
    size_t subject = digits(text, 2, 3);
    if (subject == 0 || 2 + subject >= text.size() || text[2 + subject] != '.') return "";
    size_t detail_at = 3 + subject;
    size_t detail = digits(text, detail_at, 3);
    size_t end = detail_at + detail;
    if (detail == 0 || (end < text.size() && text[end] != ' ')) return "";
    return std::string(text.substr(0, end));
}

ReplyReader::Step ReplyReader::feed(std::string_view input) {
    if (failed_) return {Status::error, 0};
    size_t pos = 0;
    while (pos < input.size()) {
        size_t nl = input.find('\n', pos);
        size_t end = nl == std::string_view::npos ? input.size() : nl;
        // One more byte than a line may have is kept, so a CR before the LF still fits.
        if (partial_.size() + (end - pos) > limits_.max_line + 1)
            return {fail("reply line longer than " + std::to_string(limits_.max_line) + " bytes"), pos};
        partial_.append(input.data() + pos, end - pos);
        if (nl == std::string_view::npos) return {Status::need_more, input.size()};
        pos = nl + 1;
        std::string text = std::exchange(partial_, {});
        if (!text.empty() && text.back() == '\r') text.pop_back();
        Status st = line(text);
        if (st != Status::need_more) return {st, pos};
    }
    return {Status::need_more, pos};
}

ReplyReader::Status ReplyReader::line(std::string_view line) {
    if (line.size() > limits_.max_line)
        return fail("reply line longer than " + std::to_string(limits_.max_line) + " bytes");
    if (!is_reply_line(line)) return fail("malformed reply line \"" + std::string(line.substr(0, 80)) + "\"");
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (!reply_.lines.empty() && code != reply_.code) return fail("reply code changed inside a multi-line reply");
    if (reply_.lines.size() >= limits_.max_lines)
        return fail("reply longer than " + std::to_string(limits_.max_lines) + " lines");
    std::string_view rest = line.size() > 4 ? line.substr(4) : std::string_view();
    if (reply_.lines.empty()) {
        reply_.code = code;
        reply_.text = std::string(line.substr(0, 3));
        reply_.enhanced = enhanced_code(rest, line[0]);
    }
    if (!rest.empty()) reply_.text += " " + std::string(rest);
    reply_.lines.emplace_back(rest);
    return line.size() > 3 && line[3] == '-' ? Status::need_more : Status::done;
}

ReplyReader::Status ReplyReader::fail(std::string why) {
    failed_ = true;
    error_ = std::move(why);
    return Status::error;
}

Reply ReplyReader::take() { return std::exchange(reply_, Reply{}); }

}  // namespace ferry::smtp

// MIME structure of a message: the streaming parser and the Content-* value grammar (RFC 2045, 2183, 2231).
#include "common/mail/mime.hpp"

#include <algorithm>
#include <cstring>

#include "common/mail/mime_decode.hpp"
#include "common/mail/mime_text.hpp"

namespace ferry::mail {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (is_wsp(s.front()) || s.front() == '\r' || s.front() == '\n')) s.remove_prefix(1);
    while (!s.empty() && (is_wsp(s.back()) || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
    return s;
}

// A cursor over a structured field value (RFC 2045 tokens, quoted strings, comments).
struct Lexer {
    std::string_view s;
    size_t i = 0;

    bool end() const { return i >= s.size(); }
    char peek() const { return end() ? '\0' : s[i]; }
    void skip_cfws() {
        while (!end()) {
            if (is_wsp(s[i]) || s[i] == '\r' || s[i] == '\n') { ++i; continue; }
            if (s[i] != '(') return;
            int nest = 0;
            for (; !end(); ++i) {
                if (s[i] == '\\' && i + 1 < s.size()) { ++i; continue; }  // a final backslash escapes nothing
                if (s[i] == '(') ++nest;
                if (s[i] == ')' && --nest == 0) { ++i; break; }
            }
        }
    }
    static bool tspecial(char c) { return std::strchr("()<>@,;:\\\"/[]?=", c) != nullptr; }
    std::string_view token() {
        size_t start = i;
        while (!end() && !tspecial(s[i]) && static_cast<unsigned char>(s[i]) > ' ' && s[i] != 0x7f) ++i;
        return s.substr(start, i - start);
    }
    // A quoted string's content, quoted pairs resolved; an unterminated one runs to the end.
    std::string quoted() {
        std::string r;
        for (++i; !end() && s[i] != '"'; ++i) {
            if (s[i] == '\\' && i + 1 < s.size()) ++i;
            if (s[i] != '\r' && s[i] != '\n') r += s[i];
        }
        if (!end()) ++i;
        return r;
    }
    // A parameter value: a token, a quoted string, or (tolerated) anything up to the next ";".
    std::string value() {
        if (peek() == '"') return quoted();
        std::string_view t = token();
        if (!t.empty()) return std::string(t);
        size_t start = i;
        while (!end() && s[i] != ';') ++i;
        return std::string(trim(s.substr(start, i - start)));
    }
};

struct RawParam {
    std::string base;
    int section = -1;
    bool extended = false;
    std::string value;
};

std::string percent_decode(std::string_view s) {
    std::string r;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0) {
            r += static_cast<char>(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
            i += 2;
        } else {
            r += s[i];
        }
    }
    return r;
}

// attribute-char of RFC 2231: what an extended value may carry without percent-encoding.
std::string percent_encode(std::string_view s) {
    static const char* hex = "0123456789ABCDEF";
    std::string r;
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c > ' ' && c < 0x7f && !Lexer::tspecial(ch) && ch != '*' && ch != '\'' && ch != '%') {
            r += ch;
        } else {
            r += '%';
            r += hex[c >> 4];
            r += hex[c & 15];
        }
    }
    return r;
}

// "name", "name*", "name*2", "name*2*" into its base name, section and extended flag.
RawParam split_name(std::string name, std::string value) {
    RawParam p;
    p.value = std::move(value);
    if (!name.empty() && name.back() == '*') {
        p.extended = true;
        name.pop_back();
    }
    size_t star = name.rfind('*');
    if (star != std::string::npos && star + 1 < name.size() &&
        std::all_of(name.begin() + static_cast<std::ptrdiff_t>(star) + 1, name.end(),
                    [](char c) { return c >= '0' && c <= '9'; }) && name.size() - star <= 4) {
        p.section = std::stoi(name.substr(star + 1));
        name.resize(star);
    }
    p.base = std::move(name);
    return p;
}

// Joins the sections of one extended or continued parameter (RFC 2231 3-4).
MimeParam join_sections(const std::vector<const RawParam*>& run) {
    MimeParam m;
    m.name = run.front()->base;
    for (const RawParam* r : run) m.extended = m.extended || r->extended;
    if (!m.extended) {
        for (const RawParam* r : run) m.value += r->value;
        m.decoded = sanitize_utf8(m.value);
        return m;
    }
    std::string data;
    for (size_t k = 0; k < run.size(); ++k) {
        std::string_view v = run[k]->value;
        if (k == 0 && run[k]->extended) {
            size_t q1 = v.find('\'');
            size_t q2 = q1 == std::string_view::npos ? q1 : v.find('\'', q1 + 1);
            if (q2 != std::string_view::npos) {
                m.charset = std::string(v.substr(0, q1));
                m.language = std::string(v.substr(q1 + 1, q2 - q1 - 1));
                v.remove_prefix(q2 + 1);
            }
        }
        data += run[k]->extended ? std::string(v) : percent_encode(v);
    }
    m.value = m.charset + "'" + m.language + "'" + data;
    std::string bytes = percent_decode(data);
    auto utf8 = to_utf8(m.charset.empty() ? std::string_view("utf-8") : std::string_view(m.charset), bytes);
    m.decoded = utf8 ? *utf8 : sanitize_utf8(bytes);
    return m;
}

// Groups the raw parameters: a plain one stands alone, sections of one base join in order 0, 1, ...
std::vector<MimeParam> merge_params(const std::vector<RawParam>& raw) {
    std::vector<MimeParam> out;
    std::vector<bool> used(raw.size(), false);
    for (size_t i = 0; i < raw.size(); ++i) {
        if (used[i]) continue;
        used[i] = true;
        if (raw[i].section < 0) {
            out.push_back(join_sections({&raw[i]}));
            continue;
        }
        std::vector<const RawParam*> run;
        for (int want = 0;; ++want) {
            size_t found = raw.size();
            for (size_t j = 0; j < raw.size() && found == raw.size(); ++j)
                if (raw[j].section == want && raw[j].base == raw[i].base) found = j;
            if (found == raw.size()) break;
            used[found] = true;
            run.push_back(&raw[found]);
        }
        for (size_t j = i; j < raw.size(); ++j)
            if (raw[j].section >= 0 && raw[j].base == raw[i].base) used[j] = true;
        if (!run.empty()) out.push_back(join_sections(run));
    }
    return out;
}

}  // namespace

std::vector<MimeParam> parse_params(std::string_view rest) {
    std::vector<RawParam> raw;
    Lexer lx{rest};
    while (!lx.end() && raw.size() < 1000) {
        lx.skip_cfws();
        if (lx.peek() == ';') { ++lx.i; continue; }
        std::string_view name = lx.token();
        lx.skip_cfws();
        if (name.empty() || lx.peek() != '=') {
            while (!lx.end() && lx.peek() != ';') ++lx.i;
            continue;
        }
        ++lx.i;
        lx.skip_cfws();
        std::string value = lx.value();
        raw.push_back(split_name(ascii_lower(name), std::move(value)));
    }
    return merge_params(raw);
}

void parse_content_type(std::string_view value, MimePart& part) {
    Lexer lx{value};
    lx.skip_cfws();
    std::string type = ascii_lower(lx.token());
    lx.skip_cfws();
    std::string subtype;
    if (lx.peek() == '/') {
        ++lx.i;
        lx.skip_cfws();
        subtype = ascii_lower(lx.token());
    }
    if (subtype.empty()) {
        if (type == "text") subtype = "plain";
        else if (type == "multipart") subtype = "mixed";
        else if (type == "application") subtype = "octet-stream";
        else return;  // invalid: the default stays (RFC 2045 5.2)
    }
    part.has_content_type = true;
    part.type = std::move(type);
    part.subtype = std::move(subtype);
    lx.skip_cfws();
    part.params = parse_params(lx.s.substr(std::min(lx.i, lx.s.size())));
}

void parse_disposition(std::string_view value, MimePart& part) {
    Lexer lx{value};
    lx.skip_cfws();
    std::string type = ascii_lower(lx.token());
    if (type.empty()) return;
    part.disposition = std::move(type);
    lx.skip_cfws();
    part.disposition_params = parse_params(lx.s.substr(std::min(lx.i, lx.s.size())));
}

std::string unfold_value(std::string_view raw) {
    std::string r;
    for (char c : trim(raw))
        if (c != '\r' && c != '\n') r += c;
    return r;
}

const MimeParam* MimePart::param(std::string_view name) const {
    for (const auto& p : params)
        if (ascii_iequals(p.name, name)) return &p;
    return nullptr;
}

std::string MimePart::transfer_encoding() const {
    if (!encoding) return "7bit";
    Lexer lx{*encoding};
    lx.skip_cfws();
    std::string t = ascii_lower(lx.token());
    return t.empty() ? "7bit" : t;
}

MimeParser::MimeParser(MimeLimits limits) : limits_(limits) {
    open_part(root_, Pos{}, true, false);
}

void MimeParser::open_part(MimePart& part, Pos start, bool message_header, bool digest_child) {
    ++parts_;
    part.depth = open_.empty() ? 0 : open_.back().part->depth + 1;
    if (digest_child) {
        part.type = "message";
        part.subtype = "rfc822";
    }
    if (message_header) part.envelope.emplace();
    open_.push_back(Open{&part, {}, start, start});
    in_header_ = true;
    header_bytes_ = 0;
    header_fields_ = 0;
    field_.clear();
    field_open_ = false;
}

void MimeParser::feed(std::string_view data) {
    const size_t cap = limits_.max_line_length + 2;
    while (!data.empty()) {
        if (line_len_ == 0 && can_count_lines()) {
            size_t taken = count_lines(data);
            data.remove_prefix(taken);
            if (data.empty()) return;
        }
        const void* nl = std::memchr(data.data(), '\n', data.size());
        size_t seg = nl ? static_cast<size_t>(static_cast<const char*>(nl) - data.data()) : data.size();
        if (line_.size() < cap) line_.append(data.substr(0, std::min(seg, cap - line_.size())));
        if (seg > 0) line_cr_ = data[seg - 1] == '\r';
        line_len_ += seg;
        if (!nl) return;
        line_len_ += 1;
        take_line(true);
        data.remove_prefix(seg + 1);
    }
}

namespace {

// Occurrences of `c` in [p, p + n), eight octets at a time (std::count is a loop of single
// octets at -O2): each matching octet becomes a zero octet, and the zero octets are counted.
uint64_t count_octet(const char* p, size_t n, char c) {
    constexpr uint64_t ones = 0x0101010101010101ULL, low7 = 0x7f7f7f7f7f7f7f7fULL;
    const uint64_t pattern = ones * static_cast<unsigned char>(c);
    uint64_t total = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        w ^= pattern;
        uint64_t zero = ~(((w & low7) + low7) | w | low7);  // the high bit of exactly each zero octet
        total += ((zero >> 7) * ones) >> 56;                // the sum of those bits, one per octet
    }
    for (; i < n; ++i) total += p[i] == c;
    return total;
}

}  // namespace

// In a body that no boundary can end (a single part, an epilogue, past the part limit) a line
// changes nothing but the position: whole lines are counted, not looked at one by one.
bool MimeParser::can_count_lines() const {
    if (in_header_) return false;
    return opaque_ || std::all_of(open_.begin(), open_.end(), [](const Open& o) { return o.boundary.empty(); });
}

// The complete lines at the start of `data` (at a line start), as take_line would leave the
// position after them; returns the octets taken.
size_t MimeParser::count_lines(std::string_view data) {
    const char* p = data.data();
    const void* last_lf = memrchr(p, '\n', data.size());
    if (!last_lf) return 0;
    size_t len = static_cast<size_t>(static_cast<const char*>(last_lf) - p) + 1;
    uint64_t lines = count_octet(p, len, '\n');
    uint64_t crlf_ends = 0;  // lines ending in CRLF; the others grow by one octet as CRLF
    for (const char* cr = p; (cr = static_cast<const char*>(std::memchr(cr, '\r', len - static_cast<size_t>(cr - p))));) {
        if (++cr < p + len && *cr == '\n') ++crlf_ends;
    }
    // The last line, for the "previous line" a boundary would look back to.
    const void* before = len > 1 ? memrchr(p, '\n', len - 1) : nullptr;
    size_t last_start = before ? static_cast<size_t>(static_cast<const char*>(before) - p) + 1 : 0;
    bool last_crlf = len - last_start >= 2 && p[len - 2] == '\r';
    uint64_t last_content = len - 1 - last_start - (last_crlf ? 1 : 0);
    uint64_t bare = lines - crlf_ends;
    uint64_t crlf_at_last = crlf_pos_ + last_start + (bare - (last_crlf ? 0 : 1));
    prev_raw_end_ = raw_pos_ + last_start + last_content;
    prev_crlf_end_ = crlf_at_last + last_content;
    prev_empty_ = last_content == 0;
    raw_pos_ += len;
    crlf_pos_ += len + bare;
    lf_count_ += lines;
    next_ = here();
    line_cr_ = false;
    return len;
}

void MimeParser::take_line(bool terminated) {
    uint64_t content_len = line_len_ - (terminated ? 1 : 0) - (terminated && line_cr_ ? 1 : 0);
    std::string_view content(line_.data(), std::min<uint64_t>(line_.size(), content_len));
    uint64_t crlf_len = content_len + (terminated ? 2 : 0);
    next_ = Pos{raw_pos_ + line_len_, crlf_pos_ + crlf_len, lf_count_ + (terminated ? 1 : 0), terminated};
    if (in_header_) header_line(content, content_len, line_len_);
    else body_line(content);
    prev_raw_end_ = raw_pos_ + content_len;
    prev_crlf_end_ = crlf_pos_ + content_len;
    prev_empty_ = content_len == 0;
    raw_pos_ = next_.raw;
    crlf_pos_ = next_.crlf;
    lf_count_ = next_.lf;
    line_.clear();
    line_len_ = 0;
    line_cr_ = false;
}

void MimeParser::header_line(std::string_view content, uint64_t content_len, uint64_t raw_len) {
    if (find_boundary(content) >= 0) {
        end_field();
        body_line(content);  // ends this part with no blank line after its header
        return;
    }
    bool blank = content_len == 0;
    bool continuation = !blank && is_wsp(content.front());
    bool too_many = !blank && !continuation && header_fields_ + 1 > limits_.max_header_fields;
    if (content_len > limits_.max_line_length || header_bytes_ + raw_len > limits_.max_header_size || too_many) {
        end_field();
        end_header(here(), true);
        return;
    }
    header_bytes_ += raw_len;
    if (blank) {
        end_field();
        end_header(next_, false);
        return;
    }
    if (continuation) {
        if (field_open_) field_.append(content);
        return;
    }
    end_field();
    ++header_fields_;
    field_.assign(content);
    field_open_ = true;
}

void MimeParser::end_field() {
    if (!field_open_) return;
    field_open_ = false;
    size_t colon = field_.find(':');
    if (colon == std::string::npos) return;
    std::string name = ascii_lower(trim(std::string_view(field_).substr(0, colon)));
    std::string value = unfold_value(std::string_view(field_).substr(colon + 1));
    Open& o = open_.back();
    MimePart& p = *o.part;
    auto set = [&](MimeField& f) {
        if (!f) f = value;
    };
    if (name == "content-type") {
        if (!o.seen_type) parse_content_type(value, p);
        o.seen_type = true;
    } else if (name == "content-transfer-encoding") set(p.encoding);
    else if (name == "content-id") set(p.content_id);
    else if (name == "content-description") set(p.description);
    else if (name == "content-md5") set(p.md5);
    else if (name == "content-location") set(p.location);
    else if (name == "content-disposition") {
        if (!p.disposition) parse_disposition(value, p);
    } else if (name == "content-language") {
        if (p.languages.empty()) {
            Lexer lx{value};
            while (!lx.end()) {
                lx.skip_cfws();
                std::string_view t = lx.token();
                if (!t.empty()) p.languages.emplace_back(t);
                else if (!lx.end()) ++lx.i;
            }
        }
    } else if (p.envelope) {
        MimeEnvelope& e = *p.envelope;
        if (name == "date") set(e.date);
        else if (name == "subject") set(e.subject);
        else if (name == "from") set(e.from);
        else if (name == "sender") set(e.sender);
        else if (name == "reply-to") set(e.reply_to);
        else if (name == "to") set(e.to);
        else if (name == "cc") set(e.cc);
        else if (name == "bcc") set(e.bcc);
        else if (name == "in-reply-to") set(e.in_reply_to);
        else if (name == "message-id") set(e.message_id);
    }
    field_.clear();
}

// The header ends at body_start; the part becomes a multipart frame, opens its message, or stays a leaf.
void MimeParser::end_header(Pos body_start, bool truncated) {
    Open& o = open_.back();
    MimePart& p = *o.part;
    o.body_start = body_start;
    p.header_truncated = truncated;
    p.header_complete = !truncated;
    in_header_ = false;
    bool room = p.depth < limits_.max_depth && !truncated && !opaque_;
    if (room && p.is_multipart()) {
        const MimeParam* b = p.param("boundary");
        if (b && !b->value.empty() && b->value.size() + 2 <= limits_.max_line_length) o.boundary = b->value;
    } else if (room && p.is_message() && parts_ < limits_.max_parts) {
        p.children.emplace_back();
        open_part(p.children.back(), body_start, true, false);
    }
}

int MimeParser::find_boundary(std::string_view content) const {
    if (opaque_ || content.size() < 3 || content[0] != '-' || content[1] != '-') return -1;
    std::string_view rest = content.substr(2);
    int best = -1;
    for (size_t i = open_.size(); i-- > 0;) {
        const std::string& b = open_[i].boundary;
        bool longer = best < 0 || b.size() > open_[static_cast<size_t>(best)].boundary.size();
        if (!b.empty() && longer && rest.substr(0, b.size()) == b) best = static_cast<int>(i);
    }
    return best;
}

void MimeParser::body_line(std::string_view content) {
    int index = find_boundary(content);
    if (index >= 0) boundary_line(static_cast<size_t>(index), content);
}

// A boundary of open_[index]: the parts inside it end at the line end before it; a delimiter
// opens the next part, a close delimiter starts the epilogue.
void MimeParser::boundary_line(size_t index, std::string_view content) {
    Open& frame = open_[index];
    bool close = content.substr(2 + frame.boundary.size(), 2) == "--";
    Pos end{prev_raw_end_, prev_crlf_end_, lf_count_ > 0 ? lf_count_ - 1 : 0, prev_empty_};
    close_above(index, end);
    in_header_ = false;
    Open& multipart = open_.back();
    if (close) {
        multipart.boundary.clear();
        return;
    }
    if (parts_ >= limits_.max_parts) {
        opaque_ = true;  // the rest of the message is this multipart's body
        return;
    }
    MimePart& parent = *multipart.part;
    bool digest = parent.subtype == "digest";
    parent.children.emplace_back();
    open_part(parent.children.back(), next_, false, digest);
}

// Ends every open part above open_[keep] at `end` (clamped to where each one's body starts).
void MimeParser::close_above(size_t keep, Pos end) {
    while (open_.size() > keep + 1) {
        finish_entry(open_.back(), end);
        open_.pop_back();
    }
}

void MimeParser::finish_entry(Open& o, Pos end) {
    MimePart& p = *o.part;
    if (in_header_ && &o == &open_.back()) {
        o.body_start = end.raw < o.header_start.raw ? o.header_start : end;
        in_header_ = false;
    }
    auto range = [](Pos a, Pos b) {
        if (b.raw < a.raw) b = a;
        MimeRange r{a.raw, b.raw - a.raw, a.crlf, b.crlf - a.crlf, b.lf - a.lf};
        if (r.size > 0 && !b.after_lf) ++r.lines;
        return r;
    };
    p.header = range(o.header_start, o.body_start);
    p.body = range(o.body_start, end);
}

MimePart MimeParser::finish() {
    if (finished_) return {};
    finished_ = true;
    bool partial = line_len_ > 0;
    if (partial) take_line(false);
    if (in_header_) end_field();
    Pos end{raw_pos_, crlf_pos_, lf_count_, !partial};
    close_above(0, end);
    finish_entry(open_.front(), end);
    open_.clear();
    return std::move(root_);
}

MimePart parse_mime(std::string_view message, MimeLimits limits) {
    MimeParser parser(limits);
    parser.feed(message);
    return parser.finish();
}

}  // namespace ferry::mail

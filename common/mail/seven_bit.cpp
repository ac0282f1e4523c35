// 8-bit to 7-bit MIME conversion for a peer without 8BITMIME (RFC 6152 section 3): quoted-printable leaf parts.
#include "common/mail/seven_bit.hpp"

#include <algorithm>
#include <cctype>

namespace ferry::mail {

namespace {

std::string lower(std::string_view s) {
    std::string r(s);
    for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return r;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

bool continuation(std::string_view l) { return !l.empty() && (l[0] == ' ' || l[0] == '\t'); }

// The header fields of one entity: lower-case name and unfolded value.
struct Field {
    std::string name;
    std::string value;
    size_t first = 0, last = 0;  // its lines in the header, [first, last)
};

std::vector<Field> fields_of(const std::vector<std::string>& lines) {
    std::vector<Field> fields;
    for (size_t i = 0; i < lines.size(); ++i) {
        const std::string& l = lines[i];
        if (continuation(l) && !fields.empty()) {
            fields.back().value += " " + std::string(trim(l));
            fields.back().last = i + 1;
            continue;
        }
        size_t colon = l.find(':');
        if (colon == std::string::npos) continue;
        fields.push_back({lower(trim(std::string_view(l).substr(0, colon))), std::string(trim(std::string_view(l).substr(colon + 1))), i, i + 1});
    }
    return fields;
}

const Field* find_field(const std::vector<Field>& fields, std::string_view name) {
    for (const auto& f : fields)
        if (f.name == name) return &f;
    return nullptr;
}

// "multipart/mixed; boundary=..." -> "multipart/mixed".
std::string media_type(std::string_view value) {
    return lower(trim(value.substr(0, value.find(';'))));
}

// The boundary parameter, quoted or not; empty when there is none.
std::string boundary_of(std::string_view value) {
    std::string low = lower(value);
    size_t at = 0;
    while ((at = low.find("boundary", at)) != std::string::npos) {
        size_t p = at + 8;
        bool param_start = at > 0 && (low[at - 1] == ';' || low[at - 1] == ' ' || low[at - 1] == '\t');
        while (p < low.size() && (low[p] == ' ' || low[p] == '\t')) ++p;
        if (!param_start || p >= low.size() || low[p] != '=') {
            at = p;
            continue;
        }
        ++p;
        while (p < value.size() && (value[p] == ' ' || value[p] == '\t')) ++p;
        if (p < value.size() && value[p] == '"') {
            size_t end = value.find('"', p + 1);
            return std::string(value.substr(p + 1, end == std::string_view::npos ? end : end - p - 1));
        }
        size_t end = value.find_first_of("; \t", p);
        return std::string(value.substr(p, end == std::string_view::npos ? end : end - p));
    }
    return "";
}

}  // namespace

bool has_8bit(std::string_view text) {
    return std::any_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) > 127; });
}

void quoted_printable_line(std::string_view line, std::string& out) {
    static const char kHex[] = "0123456789ABCDEF";
    size_t column = 0;
    for (size_t i = 0; i < line.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(line[i]);
        bool last = i + 1 == line.size();
        char token[4] = {static_cast<char>(c), 0, 0, 0};
        size_t n = 1;
        bool literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last);
        if (!literal) {
            token[0] = '=';
            token[1] = kHex[c >> 4];
            token[2] = kHex[c & 15];
            n = 3;
        }
        // 76 characters at most, the "=" of a soft break included (RFC 2045 6.7 rule 5).
        size_t room = last ? 76 : 75;
        if (column + n > room) {
            out += "=\n";
            column = 0;
        }
        out.append(token, n);
        column += n;
    }
}

void SevenBitEncoder::fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
}

bool SevenBitEncoder::feed(std::string_view in, std::string& out) {
    while (!in.empty() && !failed()) {
        size_t lf = in.find('\n');
        if (lf == std::string_view::npos) {
            partial_.append(in);
            if (partial_.size() > limits_.max_line) fail("a line is longer than " + std::to_string(limits_.max_line) + " bytes");
            break;
        }
        if (partial_.empty()) {
            line(in.substr(0, lf), out);
        } else {
            partial_.append(in.substr(0, lf));
            std::string l = std::move(partial_);
            partial_.clear();
            line(l, out);
        }
        in.remove_prefix(lf + 1);
    }
    return !failed();
}

bool SevenBitEncoder::finish(std::string& out) {
    if (!partial_.empty() && !failed()) {
        std::string l = std::move(partial_);
        partial_.clear();
        line(l, out);
    }
    if (!failed() && mode_ == Mode::header && !header_.empty()) end_header(out);
    return !failed();
}

void SevenBitEncoder::line(std::string_view l, std::string& out) {
    if (l.size() > limits_.max_line) return fail("a line is longer than " + std::to_string(limits_.max_line) + " bytes");
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    if (mode_ == Mode::header) {
        if (l.empty()) return end_header(out);
        if (has_8bit(l)) return fail("8-bit octets in a header cannot be converted to 7 bit");
        header_bytes_ += l.size() + 1;
        if (header_bytes_ > limits_.max_header) return fail("a header section is too large");
        header_.emplace_back(l);
        return;
    }
    if (boundary_line(l, out)) return;
    body_line(l, out);
}

// A delimiter of an enclosing multipart (innermost first): it ends the part it is in.
bool SevenBitEncoder::boundary_line(std::string_view l, std::string& out) {
    if (l.size() < 2 || l[0] != '-' || l[1] != '-') return false;
    for (size_t i = frames_.size(); i-- > 0;) {
        const std::string& b = frames_[i].boundary;
        if (b.empty() || l.size() < 2 + b.size() || l.substr(2, b.size()) != b) continue;
        std::string_view rest = l.substr(2 + b.size());
        bool close = rest.size() >= 2 && rest.substr(0, 2) == "--";
        if (!trim(close ? rest.substr(2) : rest).empty()) continue;
        out.append(l);
        out += '\n';
        in_digest_ = frames_[i].digest;
        frames_.resize(close ? i : i + 1);
        mode_ = close ? Mode::text : Mode::header;
        top_ = false;
        message_ = false;
        return true;
    }
    return false;
}

void SevenBitEncoder::body_line(std::string_view l, std::string& out) {
    switch (mode_) {
        case Mode::encode:
            quoted_printable_line(l, out);
            break;
        case Mode::copy:
            if (has_8bit(l)) return fail("8-bit octets in a base64 or quoted-printable part");
            out.append(l);
            break;
        case Mode::text:  // a preamble or epilogue is not shown to anyone: 8-bit octets become '?'
            for (char c : l) out += static_cast<unsigned char>(c) > 127 ? '?' : c;
            break;
        case Mode::header:
            return;
    }
    out += '\n';
}

// The entity's header is complete: decide how its body is carried and write the header out.
void SevenBitEncoder::end_header(std::string& out) {
    auto fields = fields_of(header_);
    const Field* ct = find_field(fields, "content-type");
    const Field* cte = find_field(fields, "content-transfer-encoding");
    std::string type = ct ? media_type(ct->value) : (in_digest_ ? "message/rfc822" : "text/plain");
    std::string encoding = cte ? lower(trim(cte->value)) : "7bit";
    bool is_message = message_ || top_;
    std::string new_cte;  // replaces the Content-Transfer-Encoding field when set
    bool add_version = false;
    if (type.rfind("multipart/", 0) == 0) {
        if (type == "multipart/signed") return fail("a multipart/signed message cannot be converted to 7 bit");
        std::string b = boundary_of(ct->value);
        if (b.empty()) return fail("a multipart part without a boundary");
        if (frames_.size() >= limits_.max_depth) return fail("MIME parts nested too deeply");
        frames_.push_back({b, type == "multipart/digest"});
        if (encoding != "7bit") new_cte = "7bit";
        mode_ = Mode::text;
    } else if (type == "message/rfc822") {
        if (frames_.size() >= limits_.max_depth) return fail("MIME parts nested too deeply");
        frames_.push_back({"", false});
        if (encoding != "7bit") new_cte = "7bit";
        mode_ = Mode::header;
    } else if (type == "message/global") {
        return fail("a message/global part cannot be converted to 7 bit");
    } else if (encoding == "base64" || encoding == "quoted-printable") {
        mode_ = Mode::copy;
    } else {
        new_cte = "quoted-printable";
        add_version = is_message && !find_field(fields, "mime-version");
        mode_ = Mode::encode;
    }
    std::vector<bool> drop(header_.size(), false);
    if (!new_cte.empty() && cte)
        for (const auto& f : fields)
            if (f.name == "content-transfer-encoding") std::fill(drop.begin() + f.first, drop.begin() + f.last, true);
    for (size_t i = 0; i < header_.size(); ++i)
        if (!drop[i]) out += header_[i] + "\n";
    if (add_version) out += "MIME-Version: 1.0\n";
    if (!new_cte.empty()) out += "Content-Transfer-Encoding: " + new_cte + "\n";
    out += '\n';
    header_.clear();
    header_bytes_ = 0;
    top_ = false;
    // The body of a message/rfc822 part is a message with a header of its own.
    message_ = type == "message/rfc822";
    in_digest_ = false;
}

Result<std::string> to_seven_bit(std::string_view lf_message, const SevenBitLimits& limits) {
    SevenBitEncoder e(limits);
    std::string out;
    if (!e.feed(lf_message, out) || !e.finish(out)) return make_error(554, "5.6.3", e.error());
    return out;
}

}  // namespace ferry::mail

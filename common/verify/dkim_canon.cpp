// DKIM canonicalisation (RFC 6376 3.4), the streaming body hash and the header hash input.
#include "common/verify/dkim_canon.hpp"

#include <cctype>
#include <map>

namespace ferry::verify::dkim {

namespace {

bool wsp(char c) { return c == ' ' || c == '\t'; }

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// Runs of WSP become one space, WSP at the end goes (3.4.2 and 3.4.4); WSP at the start goes in a
// header value (3.4.2) but stays as one space on a body line (3.4.4, the example in 3.4.5).
std::string squeeze(std::string_view s, bool keep_leading = false) {
    std::string out;
    bool space = false;
    for (char c : s) {
        if (wsp(c)) {
            space = true;
            continue;
        }
        if (space && (keep_leading || !out.empty())) out += ' ';
        space = false;
        out += c;
    }
    return out;
}

std::string_view without_cr(std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
}

}  // namespace

std::vector<HeaderField> split_header(std::string_view block) {
    std::vector<HeaderField> fields;
    size_t pos = 0;
    while (pos < block.size()) {
        size_t end = block.find('\n', pos);
        std::string_view line = without_cr(block.substr(pos, end == std::string_view::npos ? end : end - pos));
        pos = end == std::string_view::npos ? block.size() : end + 1;
        if (!line.empty() && wsp(line[0])) {
            if (!fields.empty()) fields.back().raw.append("\r\n").append(line);
            continue;
        }
        size_t colon = line.find(':');
        if (colon == std::string_view::npos || fields.size() == kMaxHeaderFields) continue;
        std::string_view name = line.substr(0, colon);
        while (!name.empty() && wsp(name.back())) name.remove_suffix(1);
        fields.push_back({lower(name), std::string(line)});
    }
    return fields;
}

std::string canon_header(std::string_view raw, Canon c) {
    if (c == Canon::simple) return std::string(raw) + "\r\n";
    size_t colon = raw.find(':');
    std::string name = lower(raw.substr(0, colon));
    while (!name.empty() && wsp(name.back())) name.pop_back();
    std::string value;
    for (char ch : raw.substr(colon == std::string_view::npos ? raw.size() : colon + 1))
        if (ch != '\r' && ch != '\n') value += ch;  // unfold
    return name + ":" + squeeze(value) + "\r\n";
}

void BodyHash::feed(std::string_view chunk) {
    while (!chunk.empty()) {
        size_t nl = chunk.find('\n');
        if (nl == std::string_view::npos) {
            partial_.append(chunk);
            return;
        }
        if (partial_.empty()) {
            line(without_cr(chunk.substr(0, nl)));
        } else {
            partial_.append(chunk.substr(0, nl));
            line(without_cr(partial_));
            partial_.clear();
        }
        chunk.remove_prefix(nl + 1);
    }
}

void BodyHash::line(std::string_view text) {
    std::string relaxed;
    if (canon_ == Canon::relaxed) text = relaxed = squeeze(text, true);
    if (text.empty()) {
        ++empty_lines_;
        return;
    }
    for (; empty_lines_ > 0; --empty_lines_) emit("\r\n");
    any_ = true;
    emit(text);
    emit("\r\n");
}

void BodyHash::emit(std::string_view bytes) {
    if (limit_) {
        if (hashed_ >= *limit_) return;
        if (bytes.size() > *limit_ - hashed_) bytes = bytes.substr(0, *limit_ - hashed_);
    }
    hash_.update(bytes);
    hashed_ += bytes.size();
}

std::string BodyHash::finish() {
    if (!partial_.empty()) {
        std::string last = std::move(partial_);
        partial_.clear();
        line(last);  // a body without a final line end gets one (3.4.3, 3.4.4)
    }
    // An empty simple body is one CRLF; an empty relaxed body is nothing (3.4.3, 3.4.4).
    if (!any_ && canon_ == Canon::simple) emit("\r\n");
    return hash_.finish();
}

std::string without_b_value(std::string_view raw) {
    size_t colon = raw.find(':');
    if (colon == std::string_view::npos) return std::string(raw);
    std::string out(raw.substr(0, colon + 1));
    size_t pos = colon + 1;
    while (pos <= raw.size()) {
        size_t end = raw.find(';', pos);
        std::string_view spec = raw.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
        size_t eq = spec.find('=');
        std::string_view name = eq == std::string_view::npos ? spec : spec.substr(0, eq);
        while (!name.empty() && (wsp(name.front()) || name.front() == '\r' || name.front() == '\n')) name.remove_prefix(1);
        while (!name.empty() && (wsp(name.back()) || name.back() == '\r' || name.back() == '\n')) name.remove_suffix(1);
        out.append(name == "b" ? spec.substr(0, eq + 1) : spec);
        if (end == std::string_view::npos) break;
        out += ';';
        pos = end + 1;
    }
    return out;
}

std::string header_hash_input(const std::vector<HeaderField>& fields, const std::vector<std::string>& names,
                              std::string_view signature_raw, Canon c) {
    std::map<std::string, size_t> used;  // per name: how many instances, from the bottom, are taken
    std::string data;
    for (const auto& name : names) {
        size_t& skip = used[name];
        size_t seen = 0;
        for (auto it = fields.rbegin(); it != fields.rend(); ++it) {
            if (it->name != name || seen++ < skip) continue;
            data += canon_header(it->raw, c);
            break;
        }
        ++skip;  // a name listed more often than it occurs signs nothing (the null string)
    }
    std::string self = canon_header(without_b_value(signature_raw), c);
    self.resize(self.size() - 2);  // without its CRLF
    return data + self;
}

}  // namespace ferry::verify::dkim

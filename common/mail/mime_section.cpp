// IMAP section addressing: the section-spec grammar, its byte range in a parsed message, header field filtering.
#include "common/mail/mime_section.hpp"

#include <cstring>

#include "common/mail/mime_text.hpp"

namespace ferry::mail {

namespace {

Error section_error(std::string text) { return make_error(0, {}, std::move(text)); }

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// ASTRING-CHAR of RFC 3501 9: ATOM-CHAR or "]".
bool astring_char(char c) {
    auto u = static_cast<unsigned char>(c);
    return u > ' ' && u < 0x7f && !std::strchr("(){%*\"\\", c);
}

// " (name name ...)" after HEADER.FIELDS[.NOT].
Result<std::vector<std::string>> field_list(std::string_view s) {
    if (s.size() < 3 || s[0] != ' ' || s[1] != '(' || s.back() != ')') return section_error("expected a list of header field names");
    std::vector<std::string> names;
    s = s.substr(2, s.size() - 3);
    for (size_t i = 0; i < s.size();) {
        if (!names.empty()) {
            if (s[i] != ' ') return section_error("expected a space between header field names");
            ++i;
        }
        std::string name;
        if (i < s.size() && s[i] == '"') {
            for (++i; i < s.size() && s[i] != '"'; ++i) {
                if (s[i] == '\\' && i + 1 < s.size()) ++i;
                name += s[i];
            }
            if (i >= s.size()) return section_error("unterminated quoted header field name");
            ++i;
        } else {
            while (i < s.size() && astring_char(s[i]) && s[i] != ')') name += s[i++];
        }
        if (name.empty()) return section_error("empty header field name");
        names.push_back(std::move(name));
    }
    if (names.empty()) return section_error("expected a list of header field names");
    return names;
}

Result<Section> parse_text(std::string_view rest, Section s) {
    using T = Section::Text;
    if (ascii_iequals(rest, "HEADER")) s.text = T::header;
    else if (ascii_iequals(rest, "TEXT")) s.text = T::text;
    else if (ascii_iequals(rest, "MIME") && !s.part.empty()) s.text = T::mime;
    else {
        const std::string_view fields = "HEADER.FIELDS", not_ = ".NOT";
        if (rest.size() < fields.size() || !ascii_iequals(rest.substr(0, fields.size()), fields)) return section_error("unknown section");
        rest.remove_prefix(fields.size());
        s.text = T::header_fields;
        if (rest.size() >= not_.size() && ascii_iequals(rest.substr(0, not_.size()), not_)) {
            rest.remove_prefix(not_.size());
            s.text = T::header_fields_not;
        }
        auto names = field_list(rest);
        if (!names) return names.error();
        s.fields = std::move(names.value());
    }
    return s;
}

using PartList = std::vector<const MimePart*>;

// The numbered parts inside `p`; a message that is not multipart has its own body as part 1.
PartList subparts(const MimePart& p, bool is_message) {
    PartList out;
    if (p.is_multipart()) {
        for (const auto& c : p.children) out.push_back(&c);
    } else if (is_message) {
        out.push_back(&p);
    } else if (p.is_message() && !p.children.empty()) {
        return subparts(p.children.front(), true);
    }
    return out;
}

MimeRange join(const MimeRange& a, const MimeRange& b) {
    return MimeRange{a.offset, a.size + b.size, a.crlf_offset, a.crlf_size + b.crlf_size, a.lines + b.lines};
}

}  // namespace

Result<Section> parse_section(std::string_view spec) {
    Section s;
    size_t i = 0;
    while (i < spec.size() && is_digit(spec[i])) {
        if (spec[i] == '0') return section_error("part numbers start at 1");
        uint64_t n = 0;
        for (; i < spec.size() && is_digit(spec[i]); ++i) {
            n = n * 10 + static_cast<uint64_t>(spec[i] - '0');
            if (n > 0xffffffffu) return section_error("part number too large");
        }
        s.part.push_back(static_cast<uint32_t>(n));
        if (i == spec.size()) return s;
        if (spec[i] != '.') return section_error("expected \".\" after a part number");
        if (++i == spec.size()) return section_error("nothing after \".\"");
    }
    if (i == spec.size()) return s;
    return parse_text(spec.substr(i), std::move(s));
}

const MimePart* find_part(const MimePart& message, const std::vector<uint32_t>& part) {
    const MimePart* node = &message;
    bool is_message = true;
    for (uint32_t n : part) {
        PartList list = subparts(*node, is_message);
        if (n == 0 || n > list.size()) return nullptr;
        node = list[n - 1];
        is_message = false;
    }
    return node;
}

Result<MimeRange> resolve_section(const MimePart& message, const Section& section) {
    using T = Section::Text;
    const MimePart* node = find_part(message, section.part);
    if (!node) return section_error("no such part");
    if (section.text == T::none) return section.part.empty() ? join(node->header, node->body) : node->body;
    if (section.text == T::mime) {
        if (section.part.empty()) return section_error("MIME needs a part number");
        return node->header;
    }
    if (!section.part.empty()) {
        if (!node->is_message() || node->children.empty()) return section_error("the part carries no message");
        node = &node->children.front();
    }
    return section.text == T::text ? node->body : node->header;
}

std::string filter_header_fields(std::string_view header, const std::vector<std::string>& names, bool exclude) {
    std::string out;
    bool keep = false;
    while (!header.empty()) {
        size_t nl = header.find('\n');
        std::string_view line = header.substr(0, nl);
        header.remove_prefix(nl == std::string_view::npos ? header.size() : nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) break;
        if (line[0] != ' ' && line[0] != '\t') {
            size_t colon = line.find(':');
            std::string_view name = line.substr(0, colon);
            while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
            bool listed = false;
            for (const auto& n : names) listed = listed || ascii_iequals(n, name);
            keep = colon != std::string_view::npos && listed != exclude;
        }
        if (!keep) continue;
        out += line;
        out += "\r\n";
    }
    out += "\r\n";
    return out;
}

}  // namespace ferry::mail

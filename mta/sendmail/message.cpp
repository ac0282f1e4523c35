// The message as ferry-sendmail submits it: read from stdin, headers completed, -t recipients taken out. Pure functions.
#include "mta/sendmail/message.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>

#include "common/mail/address.hpp"
#include "common/mail/date.hpp"

namespace ferry::sendmail {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// RFC 5322 3.6.8 field name: printable ASCII but the colon, at least one.
size_t field_name_length(std::string_view line) {
    size_t n = 0;
    while (n < line.size() && line[n] > 32 && line[n] < 127 && line[n] != ':') ++n;
    return n < line.size() && line[n] == ':' ? n : 0;
}

// Comments "(...)" (nested, with quoted-pairs) removed, quoted strings kept as they are.
std::string strip_comments(std::string_view s) {
    std::string out;
    int depth = 0;
    bool quoted = false;
    for (size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (c == '\\' && i + 1 < s.size()) {
            if (depth == 0) out += s.substr(i, 2);
            ++i;
        } else if (quoted) {
            out += c;
            if (c == '"') quoted = false;
        } else if (c == '(') {
            ++depth;
        } else if (c == ')' && depth > 0) {
            --depth;
        } else if (depth == 0) {
            if (c == '"') quoted = true;
            out += c;
        }
    }
    return out;
}

// The address of one mailbox: inside <...> when there is one, else the addr-spec with spaces removed.
std::string mailbox_address(std::string_view m) {
    size_t lt = m.rfind('<');
    if (lt != std::string_view::npos) {
        size_t gt = m.find('>', lt);
        std::string_view inner = m.substr(lt + 1, gt == std::string_view::npos ? std::string_view::npos : gt - lt - 1);
        // A route ("<@a,@b:u@d>") is dropped as RFC 5322 4.4 obs-route allows.
        if (!inner.empty() && inner[0] == '@') inner = inner.substr(std::min(inner.size(), inner.find(':') + 1));
        return std::string(trim(inner));
    }
    std::string out;
    for (char c : m)
        if (!std::isspace(static_cast<unsigned char>(c))) out += c;
    return out;
}

}  // namespace

bool InputReader::feed(std::string_view bytes) {
    while (!ended_ && !bytes.empty()) {
        size_t nl = bytes.find('\n');
        if (nl == std::string_view::npos) {
            partial_.append(bytes);
            return true;
        }
        partial_.append(bytes.substr(0, nl));
        bytes.remove_prefix(nl + 1);
        std::string l = std::move(partial_);
        partial_.clear();
        if (!l.empty() && l.back() == '\r') l.pop_back();
        line(l);
    }
    return !ended_;
}

void InputReader::finish() {
    if (ended_ || partial_.empty()) return;
    std::string l = std::move(partial_);
    partial_.clear();
    if (!l.empty() && l.back() == '\r') l.pop_back();
    line(l);
}

void InputReader::line(std::string_view l) {
    if (!ignore_dots_ && l == ".") {
        ended_ = true;
        return;
    }
    message_.append(l);
    message_ += '\n';
}

std::string HeaderField::value() const {
    std::string_view v(text);
    v.remove_prefix(std::min(v.size(), name.size() + 1));
    std::string out;
    for (char c : v)
        if (c != '\n' && c != '\r') out += c;
    return std::string(trim(out));
}

ParsedMessage parse_message(std::string_view message) {
    ParsedMessage p;
    if (message.substr(0, 5) == "From ") {
        size_t nl = message.find('\n');
        message.remove_prefix(nl == std::string_view::npos ? message.size() : nl + 1);
    }
    while (!message.empty()) {
        size_t nl = message.find('\n');
        std::string_view line = message.substr(0, nl == std::string_view::npos ? message.size() : nl + 1);
        if (line == "\n") {
            message.remove_prefix(1);
            break;
        }
        bool folded = (line[0] == ' ' || line[0] == '\t') && !p.header.empty();
        size_t name = field_name_length(line);
        if (!folded && name == 0) break;  // no field: the body starts here
        if (folded) p.header.back().text.append(line);
        else p.header.push_back(HeaderField{std::string(line.substr(0, name)), std::string(line)});
        if (p.header.back().text.back() != '\n') p.header.back().text += '\n';
        message.remove_prefix(line.size());
    }
    p.body = std::string(message);
    return p;
}

std::vector<std::string> parse_address_list(std::string_view value) {
    std::string text = strip_comments(value);
    std::vector<std::string> out;
    std::string cur;
    bool quoted = false, angle = false;
    auto take = [&]() {
        std::string_view m = trim(cur);
        // "group:" before a group's first mailbox, ";" after its last (RFC 5322 3.4).
        if (!angle) {
            size_t colon = std::string_view::npos;
            bool q = false;
            for (size_t k = 0; k < m.size(); ++k) {
                if (m[k] == '"') q = !q;
                else if (!q && m[k] == '<') break;
                else if (!q && m[k] == ':') {
                    colon = k;
                    break;
                }
            }
            if (colon != std::string_view::npos) m = trim(m.substr(colon + 1));
        }
        if (!m.empty() && m.back() == ';') m = trim(m.substr(0, m.size() - 1));
        if (!m.empty()) {
            std::string a = mailbox_address(m);
            if (!a.empty()) out.push_back(std::move(a));
        }
        cur.clear();
    };
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '\\' && i + 1 < text.size()) {
            cur += text.substr(i, 2);
            ++i;
            continue;
        }
        if (c == '"') quoted = !quoted;
        else if (!quoted && c == '<') angle = true;
        else if (!quoted && c == '>') angle = false;
        if (!quoted && !angle && (c == ',' || c == ';')) {
            if (c == ';') cur += c;
            take();
            continue;
        }
        cur += c;
    }
    take();
    return out;
}

std::string mailbox_with_name(const std::string& name, const std::string& address) {
    std::string clean;
    for (char c : name)
        if (c != '\n' && c != '\r') clean += c;
    std::string_view n = trim(clean);
    if (n.empty()) return "<" + address + ">";
    bool atoms = std::all_of(n.begin(), n.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == ' ' || (c & 0x80) ||
               std::strchr("!#$%&'*+-/=?^_`{|}~", c);
    });
    if (atoms) return std::string(n) + " <" + address + ">";
    std::string q = "\"";
    for (char c : n) {
        if (c == '"' || c == '\\') q += '\\';
        q += c;
    }
    return q + "\" <" + address + ">";
}

Prepared complete_message(std::string_view message, const Completion& c) {
    ParsedMessage p = parse_message(message);
    Prepared out;
    std::set<std::string> seen;
    bool has_from = false, has_date = false, has_id = false;
    std::string header;
    for (const auto& f : p.header) {
        std::string name = lower(f.name);
        if (c.extract && (name == "to" || name == "cc" || name == "bcc")) {
            for (auto& a : parse_address_list(f.value()))
                if (seen.insert(normalize_address(a)).second) out.recipients.push_back(a);
        }
        if (name == "bcc") continue;  // never passed on: it would tell every recipient who else got it
        has_from |= name == "from";
        has_date |= name == "date";
        has_id |= name == "message-id";
        header += f.text;
    }
    if (!has_from) header += "From: " + mailbox_with_name(c.full_name, c.from_address) + "\n";
    if (!has_date) header += "Date: " + mail::rfc5322_date(c.now) + "\n";
    if (!has_id) header += "Message-ID: <" + c.message_id_local + "@" + c.hostname + ">\n";
    out.message = header + "\n" + p.body;
    return out;
}

}  // namespace ferry::sendmail

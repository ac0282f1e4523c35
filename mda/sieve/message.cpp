// The message as Sieve tests see it: header fields, addresses, decoded body parts and RFC 5322 dates.
#include "mda/sieve/message.hpp"

#include <cctype>
#include <cstdio>
#include <cstdlib>

#include "common/mail/imap_body.hpp"
#include "common/mail/mime.hpp"
#include "common/mail/mime_decode.hpp"
#include "mda/sieve/strings.hpp"

namespace ferry::sieve {

namespace {

bool wsp(char c) { return c == ' ' || c == '\t'; }

std::string unfold_trim(std::string_view raw) {
    std::string s;
    for (char c : raw)
        if (c != '\r' && c != '\n') s += c;
    size_t a = 0, b = s.size();
    while (a < b && wsp(s[a])) ++a;
    while (b > a && wsp(s[b - 1])) --b;
    return s.substr(a, b - a);
}

}  // namespace

MessageView::MessageView(std::string_view m) : message(m) {
    size_t pos = 0;
    while (pos < m.size()) {
        size_t eol = m.find('\n', pos);
        size_t next = eol == std::string_view::npos ? m.size() : eol + 1;
        std::string_view line = m.substr(pos, next - pos);
        std::string_view content = line;
        if (!content.empty() && content.back() == '\n') content.remove_suffix(1);
        if (!content.empty() && content.back() == '\r') content.remove_suffix(1);
        if (content.empty()) {
            body = m.substr(next);
            return;
        }
        if (wsp(content[0])) {
            if (!fields.empty()) fields.back().raw.append(line);
        } else if (size_t colon = content.find(':'); colon != std::string_view::npos) {
            std::string_view name = content.substr(0, colon);
            while (!name.empty() && wsp(name.back())) name.remove_suffix(1);
            fields.push_back(HeaderField{std::string(name), std::string(line.substr(colon + 1))});
        }
        pos = next;
    }
}

std::vector<std::string> MessageView::values(std::string_view name) const {
    std::vector<std::string> out;
    for (const auto& f : fields)
        if (ascii_lower(f.name) == ascii_lower(name)) out.push_back(mail::decode_header_value(unfold_trim(f.raw)));
    return out;
}

bool MessageView::exists(std::string_view name) const {
    for (const auto& f : fields)
        if (ascii_lower(f.name) == ascii_lower(name)) return true;
    return false;
}

std::optional<std::string> address_part(std::string_view a, AddressPart part, std::string_view delimiters) {
    size_t at = a.rfind('@');
    std::string_view local = at == std::string_view::npos ? a : a.substr(0, at);
    std::string_view domain = at == std::string_view::npos ? std::string_view() : a.substr(at + 1);
    size_t plus = delimiters.empty() ? std::string_view::npos : local.find_first_of(delimiters);
    switch (part) {
        case AddressPart::all: return std::string(a);
        case AddressPart::localpart: return std::string(local);
        case AddressPart::domain: return std::string(domain);
        case AddressPart::user: return std::string(local.substr(0, plus));
        case AddressPart::detail:
            if (plus == std::string_view::npos) return std::nullopt;
            return std::string(local.substr(plus + 1));
    }
    return std::nullopt;
}

std::vector<std::string> header_addresses(std::string_view value) {
    std::vector<std::string> out;
    for (const auto& a : mail::parse_address_list(value)) {
        if (!a.mailbox || !a.host || *a.mailbox == "MISSING_MAILBOX") continue;  // group markers
        out.push_back(*a.host == "MISSING_DOMAIN" ? *a.mailbox : *a.mailbox + "@" + *a.host);
    }
    return out;
}

namespace {

bool type_matches(const mail::MimePart& p, const std::vector<std::string>& types) {
    for (const auto& t : types) {
        std::string want = ascii_lower(t);
        if (want.empty() || want == p.type || want == p.type + "/" + p.subtype) return true;
    }
    return false;
}

// RFC 5173 5.2 :text: HTML as the text a reader sees, tags dropped and the common entities decoded.
std::string html_text(std::string_view html) {
    static const std::pair<std::string_view, std::string_view> entities[] = {
        {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}, {"&nbsp;", " "}};
    std::string out;
    for (size_t i = 0; i < html.size();) {
        if (html[i] == '<') {
            size_t end = html.find('>', i);
            if (end == std::string_view::npos) break;
            i = end + 1;
            continue;
        }
        bool replaced = false;
        if (html[i] == '&')
            for (const auto& [name, text] : entities)
                if (html.substr(i, name.size()) == name) {
                    out += text;
                    i += name.size();
                    replaced = true;
                    break;
                }
        if (!replaced) out += html[i++];
    }
    return out;
}

void collect(std::string_view message, const mail::MimePart& p, const std::vector<std::string>& types,
             std::vector<std::string>& out, Budget& budget, bool as_text) {
    if (!p.children.empty()) {
        for (const auto& c : p.children) collect(message, c, types, out, budget, as_text);
        return;
    }
    if (!type_matches(p, types) || p.body.offset >= message.size()) return;
    std::string_view raw = message.substr(p.body.offset, p.body.size);
    if (!budget.spend(1 + raw.size() / 16)) return;
    std::string text;
    if (p.type == "text") {
        const mail::MimeParam* cs = p.param("charset");
        mail::PartTextDecoder d(p.transfer_encoding(), cs ? cs->decoded : "us-ascii");
        d.feed(raw, text);
        d.finish(text);
        if (as_text && p.subtype == "html") text = html_text(text);
    } else {
        mail::TransferDecoder d(mail::transfer_encoding_of(p.transfer_encoding()));
        d.feed(raw, text);
        d.finish(text);
    }
    out.push_back(std::move(text));
}

}  // namespace

std::vector<std::string> body_texts(std::string_view message, BodyTransform transform,
                                    const std::vector<std::string>& types, Budget& budget) {
    if (transform == BodyTransform::raw) {
        MessageView v(message);
        return {std::string(v.body)};
    }
    if (!budget.spend(1 + message.size() / 16)) return {};
    mail::MimePart root = mail::parse_mime(message);
    std::vector<std::string> out;
    bool text = transform == BodyTransform::text;
    collect(message, root, text ? std::vector<std::string>{"text"} : types, out, budget, text);
    return out;
}

namespace {

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2);
}

const char* const kMonths[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
const char* const kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};

// The words of a date-time: comments dropped, split at white space, ',' and ':' kept as words.
std::vector<std::string> date_words(std::string_view v) {
    std::vector<std::string> w;
    std::string cur;
    int depth = 0;
    auto flush = [&] {
        if (!cur.empty()) w.push_back(std::move(cur));
        cur.clear();
    };
    for (char c : v) {
        if (c == '(') ++depth, flush();
        else if (c == ')' && depth > 0) --depth;
        else if (depth > 0) continue;
        else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') flush();
        else if (c == ',' || c == ':') flush(), w.emplace_back(1, c);
        else cur += c;
    }
    flush();
    return w;
}

std::optional<int> small_number(const std::string& s, size_t max_digits) {
    if (s.empty() || s.size() > max_digits) return std::nullopt;
    int n = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + (c - '0');
    }
    return n;
}

std::optional<int> zone_of(const std::string& z) {
    if (auto n = parse_zone(z)) return n;
    static const std::pair<const char*, int> names[] = {{"ut", 0}, {"gmt", 0}, {"z", 0}, {"est", -300},
        {"edt", -240}, {"cst", -360}, {"cdt", -300}, {"mst", -420}, {"mdt", -360}, {"pst", -480}, {"pdt", -420}};
    for (const auto& [name, off] : names)
        if (ascii_lower(z) == name) return off;
    if (z.size() == 1 && std::isalpha(static_cast<unsigned char>(z[0]))) return 0;  // military zones: unknown, RFC 5322 4.3
    return std::nullopt;
}

}  // namespace

std::optional<DateTime> parse_date_time(std::string_view value) {
    std::vector<std::string> w = date_words(value);
    size_t i = 0;
    if (w.size() > 1 && w[1] == ",") i = 2;  // the day name
    if (w.size() < i + 7) return std::nullopt;
    auto day = small_number(w[i], 2);
    int month = 0;
    for (int m = 0; m < 12; ++m)
        if (ascii_lower(w[i + 1]).substr(0, 3) == kMonths[m]) month = m + 1;
    auto year = small_number(w[i + 2], 4);
    auto hour = small_number(w[i + 3], 2);
    std::optional<int> minute;
    if (w[i + 4] == ":") minute = small_number(w[i + 5], 2);
    if (!day || !month || !year || !hour || !minute) return std::nullopt;
    size_t z = i + 6;
    int second = 0;
    if (w.size() > z + 1 && w[z] == ":") {
        auto s = small_number(w[z + 1], 2);
        if (!s) return std::nullopt;
        second = *s;
        z += 2;
    }
    if (z >= w.size()) return std::nullopt;
    auto zone = zone_of(w[z]);
    int y = *year;
    if (w[i + 2].size() == 2) y += y < 50 ? 2000 : 1900;
    else if (w[i + 2].size() == 3) y += 1900;
    if (!zone || *day < 1 || *day > 31 || *hour > 23 || *minute > 59 || second > 60) return std::nullopt;
    int64_t days = days_from_civil(y, static_cast<unsigned>(month), static_cast<unsigned>(*day));
    int64_t secs = days * 86400 + *hour * 3600 + *minute * 60 + second - int64_t{*zone} * 60;
    return DateTime{secs, *zone};
}

std::optional<std::string> date_part(int64_t seconds, int zone, std::string_view part_name) {
    std::string part = ascii_lower(part_name);
    int64_t local = seconds + int64_t{zone} * 60;
    int64_t days = local >= 0 ? local / 86400 : (local - 86399) / 86400;
    int64_t in_day = local - days * 86400;
    int64_t y = 0;
    unsigned m = 0, d = 0;
    civil_from_days(days, y, m, d);
    int hh = static_cast<int>(in_day / 3600), mm = static_cast<int>(in_day / 60 % 60), ss = static_cast<int>(in_day % 60);
    int weekday = static_cast<int>(((days % 7) + 11) % 7);  // 1970-01-01 was a Thursday
    char z[16];
    std::snprintf(z, sizeof z, "%c%02d%02d", zone < 0 ? '-' : '+', std::abs(zone) / 60, std::abs(zone) % 60);
    char buf[64];
    if (part == "year") std::snprintf(buf, sizeof buf, "%04lld", static_cast<long long>(y));
    else if (part == "month") std::snprintf(buf, sizeof buf, "%02u", m);
    else if (part == "day") std::snprintf(buf, sizeof buf, "%02u", d);
    else if (part == "date") std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u", static_cast<long long>(y), m, d);
    else if (part == "julian") std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(days + 40587));
    else if (part == "hour") std::snprintf(buf, sizeof buf, "%02d", hh);
    else if (part == "minute") std::snprintf(buf, sizeof buf, "%02d", mm);
    else if (part == "second") std::snprintf(buf, sizeof buf, "%02d", ss);
    else if (part == "time") std::snprintf(buf, sizeof buf, "%02d:%02d:%02d", hh, mm, ss);
    else if (part == "iso8601")  // RFC 3339 5.6 time-offset: "Z" for UTC, as Pigeonhole writes it
        std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02d%s", static_cast<long long>(y), m, d, hh, mm, ss,
                      zone == 0 ? "Z" : (std::string(z, 3) + ":" + std::string(z + 3, 2)).c_str());
    else if (part == "std11") {
        static const char* const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        std::snprintf(buf, sizeof buf, "%s, %02u %s %04lld %02d:%02d:%02d %s", kDays[weekday], d, mon[m - 1],
                      static_cast<long long>(y), hh, mm, ss, z);
    } else if (part == "zone") std::snprintf(buf, sizeof buf, "%s", z);
    else if (part == "weekday") std::snprintf(buf, sizeof buf, "%d", weekday);
    else return std::nullopt;
    return std::string(buf);
}

}  // namespace ferry::sieve

// Greylisting's pure decisions: the triplet of a delivery attempt, its record, and whether it passes now.
#include "mta/smtpd/greylist.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/program/domain_map.hpp"

namespace ferry::smtpd {

namespace {

// A passed triplet's last_seen is rewritten at most this often: not every message costs a write.
constexpr int64_t kRefreshEvery = 60;

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::optional<int64_t> number(std::string_view s) {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v < 0) return std::nullopt;
    return v;
}

std::optional<bool> parse_switch(std::string_view w) {
    if (w == "yes" || w == "on") return true;
    if (w == "no" || w == "off") return false;
    return std::nullopt;
}

GreylistVerdict first_seen(int64_t now, const GreylistTimes& t, std::string reason) {
    GreylistVerdict v;
    v.wait = std::max<int64_t>(1, t.delay);
    v.reason = std::move(reason);
    v.entry = {now, 0, now};
    v.store = true;
    return v;
}

// The fields of a header block, unfolded (a line break before white space is dropped).
std::vector<std::string> unfolded_fields(std::string_view text) {
    std::vector<std::string> out;
    size_t at = 0;
    while (at < text.size()) {
        size_t nl = text.find('\n', at);
        std::string_view line = text.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at);
        at = nl == std::string_view::npos ? text.size() : nl + 1;
        if (!line.empty() && (line[0] == ' ' || line[0] == '\t') && !out.empty())
            out.back() += " " + std::string(line.substr(1));
        else if (!line.empty())
            out.emplace_back(line);
    }
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// RFC 8601 2.2: resinfo items are separated by ';', each "method=result" then its properties.
bool dmarc_passed(std::string_view value) {
    size_t at = 0;
    while (at <= value.size()) {
        size_t semi = value.find(';', at);
        std::string_view item = trim(value.substr(at, semi == std::string_view::npos ? std::string_view::npos : semi - at));
        std::string_view method = item.substr(0, item.find_first_of(" \t("));
        if (lower(method) == "dmarc=pass") return true;
        if (semi == std::string_view::npos) break;
        at = semi + 1;
    }
    return false;
}

// The first DNSWL_ test of an X-Spam-Status value ("No, score=-1.0 required=5.0 tests=A,B").
std::string allow_listed(std::string_view value) {
    size_t tests = value.find("tests=");
    if (tests == std::string_view::npos) return "";
    std::string_view list = value.substr(tests + 6);
    while (!list.empty()) {
        size_t comma = list.find(',');
        std::string_view test = trim(list.substr(0, comma));
        if (test.rfind("DNSWL_", 0) == 0) return std::string(test);
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return "";
}

}  // namespace

std::string encode_greylist_entry(const GreylistEntry& e) {
    return "1\t" + std::to_string(e.first_seen) + "\t" + std::to_string(e.passed) + "\t" + std::to_string(e.last_seen);
}

std::optional<GreylistEntry> decode_greylist_entry(std::string_view value) {
    std::vector<std::string_view> parts;
    size_t at = 0;
    for (size_t tab; (tab = value.find('\t', at)) != std::string_view::npos; at = tab + 1)
        parts.push_back(value.substr(at, tab - at));
    parts.push_back(value.substr(at));
    if (parts.size() != 4 || parts[0] != "1") return std::nullopt;
    auto first = number(parts[1]), passed = number(parts[2]), last = number(parts[3]);
    if (!first || !passed || !last) return std::nullopt;
    return GreylistEntry{*first, *passed, *last};
}

std::string client_block(std::string_view address) {
    std::string a(address);
    unsigned char b[16];
    char text[INET6_ADDRSTRLEN];
    if (inet_pton(AF_INET, a.c_str(), b) == 1) {
        b[3] = 0;
        return std::string(inet_ntop(AF_INET, b, text, sizeof text)) + "/24";
    }
    if (inet_pton(AF_INET6, a.c_str(), b) != 1) return "";
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(b, mapped, sizeof mapped) == 0) {
        b[15] = 0;
        return std::string(inet_ntop(AF_INET, b + 12, text, sizeof text)) + "/24";
    }
    std::memset(b + 8, 0, 8);
    return std::string(inet_ntop(AF_INET6, b, text, sizeof text)) + "/64";
}

std::string triplet_key(std::string_view block, std::string_view sender, std::string_view recipient) {
    return "t:" + std::string(block) + "\t" + (sender.empty() ? std::string("<>") : lower(sender)) + "\t" +
           lower(recipient);
}

GreylistVerdict greylist_decide(const std::optional<GreylistEntry>& stored, int64_t now, const GreylistTimes& t) {
    if (!stored) return first_seen(now, t, "first seen");
    const GreylistEntry& e = *stored;
    if (!greylist_alive(e, now, t)) return first_seen(now, t, "first seen (the earlier record had expired)");
    if (e.first_seen > now) return first_seen(now, t, "first seen (the record was from the future)");
    GreylistVerdict v;
    v.entry = e;
    if (e.passed != 0) {
        v.pass = true;
        v.reason = "known";
        if (now - e.last_seen >= kRefreshEvery) {
            v.entry.last_seen = now;
            v.store = true;
        }
        return v;
    }
    if (now < e.first_seen + t.delay) {
        v.wait = e.first_seen + t.delay - now;
        v.reason = "retry too early";
        return v;
    }
    v.pass = true;
    v.reason = "retry after " + std::to_string(now - e.first_seen) + "s";
    v.entry.passed = now;
    v.entry.last_seen = now;
    v.store = true;
    return v;
}

bool greylist_alive(const GreylistEntry& e, int64_t now, const GreylistTimes& t) {
    if (e.passed != 0) return now <= e.last_seen + t.expire;
    return now <= e.first_seen + t.delay + t.retry_window;
}

std::string greylist_known_good(std::string_view fields) {
    for (const auto& f : unfolded_fields(fields)) {
        size_t colon = f.find(':');
        if (colon == std::string::npos) continue;
        std::string name = lower(trim(std::string_view(f).substr(0, colon)));
        std::string_view value = std::string_view(f).substr(colon + 1);
        if (name == "authentication-results") {
            size_t semi = value.find(';');  // after the authserv-id
            if (semi != std::string_view::npos && dmarc_passed(value.substr(semi + 1))) return "dmarc=pass";
        } else if (name == "x-spam-status") {
            if (auto test = allow_listed(value); !test.empty()) return test;
        }
    }
    return "";
}

bool GreylistSettings::applies(std::string_view recipient) const {
    size_t at = recipient.rfind('@');
    if (at == std::string_view::npos) return fallback;
    auto it = domains.find(lower(recipient.substr(at + 1)));
    return it == domains.end() ? fallback : it->second;
}

bool GreylistSettings::any() const {
    return fallback || std::any_of(domains.begin(), domains.end(), [](const auto& d) { return d.second; });
}

Result<std::map<std::string, bool>> GreylistSettings::parse_map(std::string_view text) {
    auto words = parse_domain_map(text, [](std::string_view w) { return parse_switch(w).has_value(); }, "domain yes|no");
    if (!words) return words.error();
    std::map<std::string, bool> map;
    for (const auto& [domain, word] : *words) map[domain] = *parse_switch(word);
    return map;
}

Result<GreylistSettings> GreylistSettings::from(const Config& config) {
    GreylistSettings s;
    s.fallback = config.boolean("greylist");
    s.times.delay = config.duration("greylist_delay").count();
    s.times.retry_window = config.duration("greylist_retry_window").count();
    s.times.expire = config.duration("greylist_expire").count();
    s.db_path = config.str("greylist_db");
    s.max_entries = static_cast<size_t>(std::max<int64_t>(1, config.integer("greylist_max_entries")));
    auto networks = net::parse_networks(config.str("greylist_networks"));
    if (!networks) return make_error(0, "", "greylist_networks: " + networks.error().what());
    s.networks = std::move(networks.value());
    if (std::string path = config.str("greylist_map"); !path.empty()) {
        std::ifstream f(path);
        if (!f) return sys_error("cannot read greylist_map " + path);
        std::stringstream text;
        text << f.rdbuf();
        auto map = parse_map(text.str());
        if (!map) return make_error(0, "", "greylist_map " + path + ": " + map.error().what());
        s.domains = std::move(map.value());
    }
    if (s.any() && s.db_path.empty()) return make_error(0, "", "greylist is on for some domain but greylist_db is empty");
    return s;
}

}  // namespace ferry::smtpd

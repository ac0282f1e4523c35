// spf-zone: ferry's SPF check_host() against a zone read from stdin, for the RFC 7208 test suite (test_spf_suite.py).
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "common/verify/spf.hpp"

using namespace ferry::verify::spf;

namespace {

// One zone entry of a name, in the order given: type "TIMEOUT" with no data times out every query.
struct Entry {
    std::string type;
    std::vector<std::string> data;
};

using Zone = std::map<std::string, std::vector<Entry>>;

// A field with its escapes undone: \\ \t \n stand for a backslash, a tab and a newline.
std::string unescape(const std::string& f) {
    std::string out;
    for (size_t i = 0; i < f.size(); ++i) {
        if (f[i] != '\\' || i + 1 == f.size()) { out += f[i]; continue; }
        char c = f[++i];
        out += c == 't' ? '\t' : c == 'n' ? '\n' : c;
    }
    return out;
}

std::vector<std::string> split_tabs(const std::string& line) {
    std::vector<std::string> out;
    size_t pos = 0;
    for (;;) {
        size_t tab = line.find('\t', pos);
        out.push_back(unescape(line.substr(pos, tab == std::string::npos ? std::string::npos : tab - pos)));
        if (tab == std::string::npos) return out;
        pos = tab + 1;
    }
}

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    return s;
}

// The suite's conventions for a name: a label over 63 octets is a DNS error, empty labels drop out.
bool normalise(const std::string& name, std::string& out) {
    out.clear();
    size_t pos = 0;
    while (pos <= name.size()) {
        size_t dot = name.find('.', pos);
        if (dot == std::string::npos) dot = name.size();
        std::string label = name.substr(pos, dot - pos);
        if (label.size() > 63) return false;
        if (!label.empty()) out += (out.empty() ? "" : ".") + label;
        pos = dot + 1;
    }
    out = lower(out);
    return true;
}

// Answers one query from the zone; a CNAME is followed one level as a resolver would.
Answer resolve(const Zone& zone, const std::string& qname, const std::string& type, int level = 0) {
    std::string name;
    if (!normalise(qname, name)) return {DnsStatus::error, {}};
    auto it = zone.find(name);
    if (it == zone.end()) return {name.rfind("error.", 0) == 0 ? DnsStatus::error : DnsStatus::nxdomain, {}};
    Answer ans{DnsStatus::nodata, {}};
    bool seen_type = false;
    for (const auto& e : it->second) {
        if (e.type == "TIMEOUT" && e.data.empty()) {
            if (!seen_type) return {DnsStatus::error, {}};
            break;
        }
        if (e.type == type) seen_type = true;
        if (e.data.size() == 1 && e.data[0] == "TIMEOUT") {
            if (e.type == type) return {DnsStatus::error, {}};
            continue;
        }
        if (e.type == type) {
            std::string joined;  // several character-strings make one record (RFC 7208 3.3)
            for (const auto& s : e.data) joined += s;
            ans.records.push_back(joined);
        } else if (e.type == "CNAME" && level == 0 && !e.data.empty()) {
            Answer target = resolve(zone, e.data[0], type, 1);
            if (target.status == DnsStatus::error) return target;
            for (auto& r : target.records) ans.records.push_back(std::move(r));
        }
    }
    if (!ans.records.empty()) ans.status = DnsStatus::ok;
    return ans;
}

}  // namespace

// Reads "TYPE<tab>name<tab>data..." lines (fields escaped as unescape() undoes) and one "CHECK<tab>ip<tab>mailfrom<tab>helo" line;
// prints "result<tab>explanation<tab>reason".
int main() {
    Zone zone;
    Request req;
    req.receiver = "unknown";
    req.now = 1700000000;
    bool have_check = false;
    std::string line;
    while (std::getline(std::cin, line)) {
        if (line.empty()) continue;
        auto f = split_tabs(line);
        if (f[0] == "CHECK" && f.size() == 4) {
            req.ip = f[1];
            req.sender = f[2];
            req.helo = f[3];
            have_check = true;
        } else if (f.size() >= 2) {
            std::string name;
            if (!normalise(f[1], name)) name = lower(f[1]);
            zone[name].push_back({f[0], std::vector<std::string>(f.begin() + 2, f.end())});
        } else {
            fprintf(stderr, "spf-zone: bad line: %s\n", line.c_str());
            return 2;
        }
    }
    if (!have_check) {
        fprintf(stderr, "spf-zone: no CHECK line\n");
        return 2;
    }
    Check check(req);
    for (int i = 0; i < 10000; ++i) {
        auto s = check.step();
        if (auto* v = std::get_if<Verdict>(&s)) {
            printf("%s\t%s\t%s\n", result_name(v->result), v->explanation.c_str(), v->reason.c_str());
            return 0;
        }
        const Query& q = std::get<Query>(s);
        check.answer(q, resolve(zone, q.name, query_type_name(q.type)));
    }
    fprintf(stderr, "spf-zone: the check does not end\n");
    return 1;
}

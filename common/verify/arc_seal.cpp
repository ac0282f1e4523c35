// ARC sealing (RFC 8617 5.1): the plan from the header as received, then the AAR, the AMS and the AS.
#include "common/verify/arc_seal.hpp"

#include <strings.h>

#include <algorithm>
#include <array>
#include <cctype>

#include "common/verify/arc.hpp"

namespace ferry::verify::arc {

namespace {

bool space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Runs of white space (line ends included) made one space, none at either end.
std::string squeeze(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (space(c)) {
            if (!out.empty() && out.back() != ' ') out += ' ';
            continue;
        }
        out += c;
    }
    if (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}

// The ";"-separated parts of a results value, a ";" inside a comment kept (RFC 8601 2.2).
std::vector<std::string> parts(std::string_view v) {
    std::vector<std::string> out;
    std::string cur;
    int depth = 0;
    for (char c : v) {
        if (c == '(') ++depth;
        if (c == ')' && depth > 0) --depth;
        if (c == ';' && depth == 0) {
            out.push_back(squeeze(cur));
            cur.clear();
            continue;
        }
        cur += c;
    }
    out.push_back(squeeze(cur));
    return out;
}

// The authserv-id that opens a results value: its first word, comments before it skipped.
std::string_view authserv_id_of(std::string_view v) {
    for (;;) {
        while (!v.empty() && space(v[0])) v.remove_prefix(1);
        if (v.empty() || v[0] != '(') break;
        size_t close = v.find(')');
        v.remove_prefix(close == std::string_view::npos ? v.size() : close + 1);
    }
    size_t end = 0;
    while (end < v.size() && v[end] != ';' && v[end] != '(' && !space(v[end])) ++end;
    return v.substr(0, end);
}

std::string_view value_of(const dkim::HeaderField& f) { return std::string_view(f.raw).substr(f.raw.find(':') + 1); }

// The i= of an ARC field: AAR's opens it, the AMS and AS have it as a tag; 0 when missing or out of range.
int instance_of(const dkim::HeaderField& f) {
    if (f.name == "arc-authentication-results") return aar_instance(value_of(f));
    auto tags = dkim::parse_tag_list(value_of(f));
    if (!tags) return 0;
    for (const auto& [name, value] : *tags) {
        if (name != "i") continue;
        if (value.empty() || value.size() > 2 || !std::all_of(value.begin(), value.end(), [](unsigned char c) { return std::isdigit(c); })) return 0;
        int n = std::stoi(value);
        return n >= 1 && n <= kMaxInstances ? n : 0;
    }
    return 0;
}

// The raw fields of the sets in the header, in seal order; an error for a broken structure.
Result<std::vector<std::string>> chain_fields(const std::vector<dkim::HeaderField>& fields, int& highest) {
    std::vector<std::array<const dkim::HeaderField*, 3>> sets(kMaxInstances);  // value-initialised: null
    highest = 0;
    for (const auto& f : fields) {
        int slot = f.name == "arc-authentication-results" ? 0 : f.name == "arc-message-signature" ? 1 : f.name == "arc-seal" ? 2 : -1;
        if (slot < 0) continue;
        int i = instance_of(f);
        if (i == 0) return make_error(0, "", "an ARC field without a valid i=");
        if (sets[i - 1][slot]) return make_error(0, "", "ARC instance " + std::to_string(i) + " has a repeated field");
        sets[i - 1][slot] = &f;
        highest = std::max(highest, i);
    }
    std::vector<std::string> out;
    for (int i = 1; i <= highest; ++i)
        for (const auto* f : sets[i - 1]) {
            if (!f) return make_error(0, "", "ARC instance " + std::to_string(i) + " is incomplete");
            out.push_back(f->raw);
        }
    return out;
}

}  // namespace

std::string trusted_results(const std::vector<dkim::HeaderField>& fields, std::string_view authserv_id) {
    bool found = false;
    std::string joined;
    for (const auto& f : fields) {
        if (f.name != "authentication-results") continue;
        std::string_view id = authserv_id_of(value_of(f));
        if (id.size() != authserv_id.size() || strncasecmp(id.data(), authserv_id.data(), id.size()) != 0) continue;
        found = true;
        auto items = parts(value_of(f));
        for (size_t k = 1; k < items.size(); ++k)
            if (!items[k].empty() && items[k] != "none") joined += ";\n\t" + items[k];
    }
    if (!found) return "";
    return std::string(authserv_id) + (joined.empty() ? "; none" : joined);
}

std::string recorded_arc(std::string_view results) {
    for (const auto& item : parts(results)) {
        if (item.size() < 4 || strncasecmp(item.data(), "arc", 3) != 0) continue;
        size_t at = 3;
        while (at < item.size() && item[at] == ' ') ++at;
        if (at >= item.size() || item[at] != '=') continue;
        ++at;
        while (at < item.size() && item[at] == ' ') ++at;
        size_t end = at;
        while (end < item.size() && std::isalpha(static_cast<unsigned char>(item[end]))) ++end;
        std::string r = item.substr(at, end - at);
        std::transform(r.begin(), r.end(), r.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        return r;
    }
    return "";
}

Result<SealPlan> plan_seal(const std::vector<dkim::HeaderField>& fields, std::string_view authserv_id) {
    SealPlan plan;
    plan.results = trusted_results(fields, authserv_id);
    if (plan.results.empty()) return make_error(0, "", "no Authentication-Results of ours: it did not come in from outside");
    int highest = 0;
    auto chain = chain_fields(fields, highest);
    if (!chain) return chain.error();
    std::string arc = recorded_arc(plan.results);
    if (highest >= kMaxInstances) return make_error(0, "", "the chain has 50 sets already");  // 5.1 step 2
    if (highest == 0) {
        if (!arc.empty() && arc != "none") return make_error(0, "", "arc=" + arc + " recorded, but no ARC sets");
        plan.cv = "none";
        return plan;
    }
    if (arc.empty()) return make_error(0, "", "ARC sets without a recorded arc= result");
    if (arc != "pass") return make_error(0, "", "the chain came in with arc=" + arc);
    plan.instance = highest + 1;
    plan.cv = "pass";
    plan.prior = std::move(chain.value());
    return plan;
}

void Sealer::feed(std::string_view chunk) {
    if (in_body_) return body_.feed(chunk);
    std::string body;
    if (!dkim::take_header(header_, chunk, body)) return;
    in_body_ = true;
    body_.feed(body);
}

Result<std::string> Sealer::finish() {
    in_body_ = true;
    std::vector<dkim::HeaderField> fields = dkim::split_header(header_);
    std::string n = std::to_string(plan_.instance), alg = dkim::algorithm_name(key_.algorithm());
    std::string aar = "ARC-Authentication-Results: i=" + n + "; " + plan_.results;

    // 4.1.2: a DKIM signature without v=, its i= the instance; it never signs ARC-Seal.
    auto headers = o_.headers;
    headers.erase(std::remove(headers.begin(), headers.end(), "arc-seal"), headers.end());
    std::vector<std::string> names = dkim::names_to_sign(fields, headers);
    std::string value;
    size_t column = 22;  // "ARC-Message-Signature:"
    for (const auto& t : {"i=" + n + ";", "a=" + alg + ";", std::string("c=relaxed/relaxed;"), "d=" + o_.domain + ";",
                          "s=" + o_.selector + ";", "t=" + std::to_string(o_.now) + ";"})
        dkim::fold_append(value, column, t, true);
    for (size_t i = 0; i < names.size(); ++i)
        dkim::fold_append(value, column, (i == 0 ? "h=" : "") + names[i] + (i + 1 == names.size() ? ";" : ":"), i == 0);
    dkim::fold_append(value, column, "bh=" + dkim::encode_base64(body_.finish()) + ";", true);
    dkim::fold_append(value, column, "b=", true);
    auto sig = key_.sign(dkim::header_hash_input(fields, names, "ARC-Message-Signature:" + value, dkim::Canon::relaxed));
    if (!sig) return sig.error();
    dkim::fold_base64(value, column, dkim::encode_base64(*sig));
    std::string ams = "ARC-Message-Signature:" + value;

    // 5.1.1: the seal signs every set in instance order, this one last with its b= empty.
    value.clear();
    column = 9;  // "ARC-Seal:"
    for (const auto& t : {"i=" + n + ";", "a=" + alg + ";", "cv=" + plan_.cv + ";", "d=" + o_.domain + ";",
                          "s=" + o_.selector + ";", "t=" + std::to_string(o_.now) + ";", std::string("b=")})
        dkim::fold_append(value, column, t, true);
    std::vector<std::string> sealed = plan_.prior;
    sealed.insert(sealed.end(), {aar, ams, "ARC-Seal:" + value});
    sig = key_.sign(seal_hash_input(sealed));
    if (!sig) return sig.error();
    dkim::fold_base64(value, column, dkim::encode_base64(*sig));
    return "ARC-Seal:" + value + "\n" + ams + "\n" + aar + "\n";
}

}  // namespace ferry::verify::arc

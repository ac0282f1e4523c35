// What a probe that came back shows: its Received: trail hop by hop, or the diagnostic of its bounce.
#include "common/admin/probe_trail.hpp"

#include <strings.h>

#include <algorithm>
#include <cstdio>

#include "common/admin/self_check.hpp"
#include "common/mail/date.hpp"

namespace ferry::admin {

namespace {

// The words of a Received: field's clauses, comments in parentheses left out.
std::vector<std::string> words_outside_comments(const std::string& text) {
    std::vector<std::string> words;
    std::string word;
    int depth = 0;
    for (char c : text + " ") {
        if (c == '(') ++depth;
        if (depth == 0 && c != ' ' && c != '\t' && c != ')') word += c;
        else if (!word.empty()) words.push_back(std::move(word)), word.clear();
        if (c == ')' && depth > 0) --depth;
    }
    return words;
}

// The field after "name:" in a status block that starts at `from`; "" when absent.
std::string status_field(const std::string& message, size_t from, const std::string& name) {
    size_t at = message.find("\n" + name + ":", from);
    return at == std::string::npos ? "" : header_field(message.substr(at + 1), name);
}

}  // namespace

Hop parse_received(const std::string& value) {
    Hop h;
    size_t semi = value.rfind(';');
    if (semi != std::string::npos) h.at = mail::parse_rfc5322_time(value.substr(semi + 1));
    auto words = words_outside_comments(value.substr(0, semi));
    for (size_t i = 0; i + 1 < words.size(); ++i) {
        std::string* slot = strcasecmp(words[i].c_str(), "from") == 0 ? &h.from
                          : strcasecmp(words[i].c_str(), "by") == 0   ? &h.by
                          : strcasecmp(words[i].c_str(), "with") == 0 ? &h.with
                                                                      : nullptr;
        if (slot && slot->empty()) *slot = words[++i];
    }
    return h;
}

std::vector<Hop> received_trail(const std::string& headers) {
    std::vector<Hop> hops;
    for (const auto& value : header_fields(headers, "Received")) hops.push_back(parse_received(value));
    std::reverse(hops.begin(), hops.end());
    return hops;
}

std::vector<std::string> hop_lines(const std::vector<Hop>& hops, std::optional<int64_t> sent) {
    std::vector<std::string> lines;
    std::optional<int64_t> previous = sent;
    for (size_t i = 0; i < hops.size(); ++i) {
        const Hop& h = hops[i];
        std::string line = "hop " + std::to_string(i + 1) + ": by " + (h.by.empty() ? "?" : h.by);
        std::string extra = (h.from.empty() ? "" : "from " + h.from) + (!h.from.empty() && !h.with.empty() ? ", " : "") +
                            (h.with.empty() ? "" : "with " + h.with);
        if (!extra.empty()) line += " (" + extra + ")";
        if (h.at && previous) line += ", +" + std::to_string(std::max<int64_t>(0, *h.at - *previous)) + " s";
        else line += h.at ? ", time of the previous hop unknown" : ", no readable date";
        if (h.at) previous = h.at;
        lines.push_back(std::move(line));
    }
    return lines;
}

Bounce read_bounce(const std::string& message) {
    Bounce b;
    size_t part = message.find("message/delivery-status");
    if (part == std::string::npos) return b;
    size_t body = message.find("\n\n", part);  // the part's own header ends; the status fields follow
    if (body == std::string::npos) return b;
    for (size_t at = message.find("\nAction:", body); at != std::string::npos; at = message.find("\nAction:", at + 1)) {
        if (header_field(message.substr(at + 1), "Action").rfind("failed", 0) != 0) continue;
        size_t block = message.rfind("\n\n", at);  // the recipient's block starts after a blank line
        b.found = true;
        b.status = status_field(message, block, "Status");
        std::string code = status_field(message, block, "Diagnostic-Code");
        size_t semi = code.find(';');
        size_t start = semi == std::string::npos ? 0 : code.find_first_not_of(' ', semi + 1);
        b.diagnostic = start == std::string::npos ? "" : code.substr(start);
        if (b.diagnostic.empty()) b.diagnostic = "Action: failed, Status: " + b.status;
        return b;
    }
    return b;
}

}  // namespace ferry::admin

// Drops fields of a message that only we may write (for ferry-smtpd and ferry-qmgr's submit socket): Authentication-Results: claiming our authserv-id (RFC 8601 5), X-Spam-*, our X-Virus-Scanned:.
#include "common/verify/forged_fields.hpp"

#include <strings.h>

#include <cctype>

#include "common/verify/clamd.hpp"

namespace ferry::verify {

namespace {

constexpr std::string_view kName = "authentication-results:";

bool blank_line(std::string_view l) { return l == "\n" || l == "\r\n"; }

}  // namespace

// The field's authserv-id is its first word after the colon (RFC 8601 2.2), compared without case;
// a comment before it ("(...)") is skipped.
bool ForgedResultsFilter::forged(std::string_view field) const {
    if (field.size() < kName.size() || strncasecmp(field.data(), kName.data(), kName.size()) != 0) return false;
    std::string_view v = field.substr(kName.size());
    auto skip = [&] {
        for (;;) {
            while (!v.empty() && std::isspace(static_cast<unsigned char>(v[0]))) v.remove_prefix(1);
            if (v.empty() || v[0] != '(') return;
            size_t close = v.find(')');
            v.remove_prefix(close == std::string_view::npos ? v.size() : close + 1);
        }
    };
    skip();
    size_t end = 0;
    while (end < v.size() && v[end] != ';' && !std::isspace(static_cast<unsigned char>(v[end])) && v[end] != '(') ++end;
    std::string_view id = v.substr(0, end);
    return !id.empty() && id.size() == id_.size() && strncasecmp(id.data(), id_.data(), id.size()) == 0;
}

bool ForgedResultsFilter::spam_field(std::string_view field) {
    for (std::string_view name : {"x-spam-score", "x-spam-status", "x-spam-flag"}) {
        if (field.size() < name.size() || strncasecmp(field.data(), name.data(), name.size()) != 0) continue;
        // White space may stand between the name and the colon (RFC 5322 4.5.3, obsolete syntax).
        std::string_view rest = field.substr(name.size());
        while (!rest.empty() && (rest[0] == ' ' || rest[0] == '\t')) rest.remove_prefix(1);
        if (!rest.empty() && rest[0] == ':') return true;
    }
    return false;
}

void ForgedResultsFilter::end_field(std::string& out) {
    if (forged(field_)) ++dropped_;
    else if (spam_field(field_)) ++spam_dropped_;
    else if (scan::is_scanned_field(field_, id_)) ++virus_dropped_;
    else out += field_;
    field_.clear();
}

void ForgedResultsFilter::feed(std::string_view in, std::string& out) {
    if (body_) {
        out.append(in);
        return;
    }
    while (!in.empty()) {
        size_t nl = in.find('\n');
        if (nl == std::string_view::npos) {
            line_.append(in);
            return;
        }
        line_.append(in.substr(0, nl + 1));
        in.remove_prefix(nl + 1);
        bool continuation = line_[0] == ' ' || line_[0] == '\t';
        if (!continuation) end_field(out);
        if (blank_line(line_) || (!continuation && line_.find(':') == std::string::npos)) {
            // The header section ends here (or was never one): everything after passes as is.
            out += line_;
            line_.clear();
            body_ = true;
            out.append(in);
            return;
        }
        field_ += line_;
        line_.clear();
    }
}

void ForgedResultsFilter::finish(std::string& out) {
    if (!body_ && !line_.empty() && (line_[0] == ' ' || line_[0] == '\t')) {
        field_ += line_;  // the message ends inside a folded field: the fold belongs to it
        line_.clear();
    }
    if (!body_) end_field(out);
    out += line_;
    line_.clear();
    body_ = true;
}

}  // namespace ferry::verify

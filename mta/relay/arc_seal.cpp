// ARC sealing in ferry-relay: decides at the end of the header whether the message is forwarded and whose key seals, then streams the body.
#include "mta/relay/arc_seal.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>

#include "common/mail/address.hpp"
#include "mta/relay/dkim_sign.hpp"

namespace ferry::relay {

namespace dkim = verify::dkim;

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

std::string trimmed(std::string_view v) {
    while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.remove_prefix(1);
    while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.remove_suffix(1);
    return std::string(v);
}

// The address in a Received: field's "for <...>" clause (RFC 5321 4.4), "" without one.
std::string received_for(const std::string& raw) {
    size_t at = lower(raw).find("for <");
    if (at == std::string::npos) return "";
    size_t end = raw.find('>', at);
    return end == std::string::npos ? "" : raw.substr(at + 5, end - at - 5);
}

}  // namespace

std::vector<std::string> seal_domains(const std::vector<dkim::HeaderField>& fields, const std::string& configured) {
    std::vector<std::string> out;
    if (!configured.empty()) {
        if (valid_domain(configured)) out.push_back(lower(configured));  // also keeps it a plain directory name
        return out;
    }
    auto add = [&](const std::string& address) {
        std::string d = lower(domain_of(address));
        if (valid_domain(d) && std::find(out.begin(), out.end(), d) == out.end()) out.push_back(d);
    };
    for (const auto& f : fields)
        if (f.name == "x-ferry-redirected") add(trimmed(std::string_view(f.raw).substr(f.raw.find(':') + 1)));
    for (const auto& f : fields)
        if (f.name == "received") add(received_for(f.raw));
    return out;
}

void ArcSealing::feed(std::string_view chunk) {
    if (!settings_.enabled) return;
    if (sealer_) return sealer_->feed(chunk);
    if (decided_) return;
    header_.append(chunk);
    auto end = header_end(header_);
    if (!end && header_.size() < dkim::kMaxHeaderBytes) return;
    start(std::string_view(header_).substr(0, end ? *end : header_.size()));
    if (sealer_) sealer_->feed(header_);
    header_.clear();
}

// RFC 8617 5.1: only a message that came in from outside (our results on it) and goes out again is
// sealed, continuing the chain it came with; the first domain with a DKIM key seals.
void ArcSealing::start(std::string_view header) {
    decided_ = true;
    auto fields = dkim::split_header(header);
    auto plan = verify::arc::plan_seal(fields, settings_.authserv_id);
    if (!plan) {
        // Mail of our own users is not forwarded mail: nothing to say about it.
        if (!verify::arc::trusted_results(fields, settings_.authserv_id).empty()) note_ = "not sealed: " + plan.error().what();
        return;
    }
    auto domains = seal_domains(fields, settings_.domain);
    for (const auto& d : domains) {
        auto key = dkim::load_active_key(settings_.key_dir, d);
        if (!key) {
            note_ = "not sealed: " + key.error().what();
            return;
        }
        if (!*key) continue;
        domain_ = d;
        key_ = std::move(**key);
        break;
    }
    if (!key_) {
        note_ = domains.empty() ? "not sealed: no forwarding domain found (set arc_seal_domain)"
                                : "not sealed: no DKIM key for " + domains.front();
        return;
    }
    verify::arc::SealOptions o{domain_, key_->selector, settings_.headers, std::time(nullptr)};
    note_ = "sealed i=" + std::to_string(plan->instance) + " cv=" + plan->cv + " d=" + domain_ + " s=" + key_->selector;
    sealer_ = std::make_unique<verify::arc::Sealer>(key_->key, std::move(o), std::move(plan.value()));
}

std::string ArcSealing::finish(std::string& note) {
    if (settings_.enabled && !decided_) start(header_);  // a message that is all header
    if (sealer_ && !header_.empty()) sealer_->feed(header_);
    header_.clear();
    note = note_;
    if (!sealer_) return "";
    auto fields = sealer_->finish();
    sealer_.reset();
    if (!fields) {
        note = "not sealed: " + fields.error().what();
        return "";
    }
    return *fields;
}

}  // namespace ferry::relay

// DKIM signing in ferry-relay: picks the key of the From: domain at the end of the header, then streams the body.
#include "mta/relay/dkim_sign.hpp"

#include <ctime>

#include "common/mail/address.hpp"
#include "common/verify/dmarc.hpp"

namespace ferry::relay {

namespace dkim = verify::dkim;

std::optional<size_t> header_end(const std::string& text) {
    for (size_t i = text.find('\n'); i != std::string::npos; i = text.find('\n', i + 1))
        if (i == 0 || text[i - 1] == '\n' || (text[i - 1] == '\r' && (i == 1 || text[i - 2] == '\n'))) return i;
    return std::nullopt;
}

void DkimSigning::feed(std::string_view chunk) {
    if (!settings_.enabled) return;
    if (signer_) return signer_->feed(chunk);
    if (decided_) return;
    header_.append(chunk);
    auto end = header_end(header_);
    if (!end && header_.size() < dkim::kMaxHeaderBytes) return;
    start(std::string_view(header_).substr(0, end ? *end : header_.size()));
    if (signer_) signer_->feed(header_);
    header_.clear();
}

void DkimSigning::start(std::string_view header) {
    decided_ = true;
    std::string value;
    int froms = 0;
    for (const auto& f : dkim::split_header(header))
        if (f.name == "from" && ++froms == 1) value = f.raw.substr(f.raw.find(':') + 1);
    if (froms != 1) return;
    domain_ = verify::dmarc::from_domain(value);
    if (!valid_domain(domain_)) return;  // also keeps the name a plain directory under key_dir
    auto key = dkim::load_active_key(settings_.key_dir, domain_);
    if (!key) {
        error_ = key.error().what();
        return;
    }
    if (!*key) return;
    key_ = std::move(**key);
    signer_ = std::make_unique<dkim::Signer>(
        key_->key, dkim::SignOptions{domain_, key_->selector, settings_.headers, dkim::Canon::relaxed, dkim::Canon::relaxed,
                                     std::time(nullptr)});
}

std::string DkimSigning::finish(std::string& note) {
    if (settings_.enabled && !decided_) start(header_);  // a message that is all header
    if (signer_ && !header_.empty()) signer_->feed(header_);
    header_.clear();
    if (!signer_) {
        note = error_.empty() ? "" : "not signed: " + error_;
        return "";
    }
    auto field = signer_->finish();
    signer_.reset();
    if (!field) {
        note = "not signed: " + field.error().what();
        return "";
    }
    note = "signed d=" + domain_ + " s=" + key_->selector;
    return *field;
}

}  // namespace ferry::relay

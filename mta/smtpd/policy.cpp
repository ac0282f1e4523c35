// ferry-smtpd's acceptance policy: which recipients and message sizes it takes, and the reply when not.
#include "mta/smtpd/policy.hpp"

namespace ferry::smtpd {

namespace {

Error lookup_failure(const std::string& address, const Error& e) {
    return make_error(451, "4.3.0", "<" + address + ">: Temporary lookup failure, try again later", e.what());
}

// An expansion error with a 4xx code, or none, is the database failing; 5xx is about the address.
bool is_lookup_failure(const Error& e) { return e.code < 500; }

}  // namespace

Result<bool> sender_owned(std::string_view sender, std::string_view user, const aliases::Lookup& lookup,
                          const aliases::Limits& limits) {
    if (sender.empty()) return true;
    std::string address = normalize_address(sender);
    if (address == user) return true;
    if (!valid_address(address, AddressForm::utf8)) return false;
    auto info = lookup(address);
    if (!info) return info.error();
    if (!info->hosted || info->exact.empty()) return false;  // a catch-all gives no one every address
    auto targets = aliases::expand(address, lookup, limits);
    if (!targets) {
        if (is_lookup_failure(targets.error())) return targets.error();
        return false;
    }
    for (const auto& t : *targets)
        if (t == user) return true;
    return false;
}

Result<void> Policy::sender(const smtp::Path& path, const std::string& user) {
    std::string given = path.mailbox();
    auto owned = sender_owned(given, user, aliases::store_lookup(accounts_), alias_limits_);
    if (!owned) return lookup_failure(given, owned.error());
    if (!owned.value())
        return make_error(553, "5.7.1", "<" + given + ">: Sender address rejected: not owned by user " + user);
    return {};
}

Result<std::string> Policy::recipient(const smtp::Path& path, bool authenticated, AddressForm form) {
    std::string given = path.domain.empty() ? postmaster_ : path.mailbox();
    std::string address = normalize_address(given);
    std::string domain = domain_of(address);
    auto hosted = accounts_.has_domain(domain);
    if (!hosted) return lookup_failure(given, hosted.error());
    if (!hosted.value()) {
        // Mail for elsewhere is relayed only for a client that logged in.
        if (authenticated) return given;
        return make_error(554, "5.7.1", "<" + given + ">: Relay access denied");
    }
    // qmgr's alias expansion refuses what valid_address refuses (a quoted local part, say), and a
    // bounce then goes to a sender that may be forged: refuse here instead, where the client hears it.
    if (!valid_address(address, form))
        return make_error(553, "5.1.3", "<" + given + ">: Recipient address rejected: bad address syntax");
    // An account (a subaddress "user+tag" of one too, queued as written), else an alias entry of
    // its own or of its base address, else the domain's catch-all.
    auto info = aliases::store_lookup(accounts_)(address);
    if (!info) return lookup_failure(given, info.error());
    if (info->account) return address;
    if (info->exact.empty() && info->catch_all.empty())
        return make_error(550, "5.1.1", "<" + given + ">: Recipient address rejected: User unknown");
    return expandable(given, address);
}

// An alias or catch-all recipient is accepted only when qmgr's expansion of it will succeed (no
// loop with no account in it, within the depth and fan-out limits), so it never becomes a bounce.
Result<std::string> Policy::expandable(const std::string& given, const std::string& address) {
    auto expanded = aliases::expand(address, aliases::store_lookup(accounts_), alias_limits_);
    if (expanded) return address;
    const Error& e = expanded.error();
    if (is_lookup_failure(e)) return lookup_failure(given, e);
    return make_error(e.code, e.enhanced, "<" + given + ">: Recipient address rejected: " + e.text, e.detail);
}

Result<void> Policy::declared_size(uint64_t size) const {
    if (size_limit_ != 0 && size > size_limit_)
        return make_error(552, "5.3.4", "Message size exceeds fixed limit of " + std::to_string(size_limit_) + " bytes");
    return {};
}

}  // namespace ferry::smtpd

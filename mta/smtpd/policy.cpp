// ferry-smtpd's acceptance policy: which recipients and message sizes it takes, and the reply when not.
#include "mta/smtpd/policy.hpp"

namespace ferry::smtpd {

namespace {

Error lookup_failure(const std::string& address, const Error& e) {
    return make_error(451, "4.3.0", "<" + address + ">: Temporary lookup failure, try again later", e.what());
}

}  // namespace

Result<std::string> Policy::recipient(const smtp::Path& path, bool authenticated) {
    std::string given = path.domain.empty() ? path.local + "@" + hostname_ : path.mailbox();
    std::string address = normalize_address(given);
    std::string domain = domain_of(address);
    auto hosted = accounts_.has_domain(domain);
    if (!hosted) return lookup_failure(given, hosted.error());
    if (!hosted.value()) {
        // Mail for elsewhere is relayed only for a client that logged in.
        if (authenticated) return given;
        return make_error(554, "5.7.1", "<" + given + ">: Relay access denied");
    }
    auto account = accounts_.account(address);
    if (!account) return lookup_failure(given, account.error());
    if (account.value()) return address;
    auto targets = accounts_.alias(address);  // the exact entry, else the domain's catch-all
    if (!targets) return lookup_failure(given, targets.error());
    if (!targets->empty()) return address;
    return make_error(550, "5.1.1", "<" + given + ">: Recipient address rejected: User unknown");
}

Result<void> Policy::declared_size(uint64_t size) const {
    if (size_limit_ != 0 && size > size_limit_)
        return make_error(552, "5.3.4", "Message size exceeds fixed limit of " + std::to_string(size_limit_) + " bytes");
    return {};
}

}  // namespace ferry::smtpd

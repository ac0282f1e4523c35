// Mail ferry-mda sends because of a user's rules: Sieve redirects and vacation replies, queued through ferry-qmgr.
#include "mda/auto_reply.hpp"

namespace ferry::mda {

AutoReply::AutoReply(const Config& config) : config_(config) {}

Result<void> AutoReply::redirect(const Original&, const std::string&) {
    return make_error(451, "4.3.0", "Sieve redirect is not available yet");
}

Result<bool> AutoReply::vacation(const Original&, const std::string&, const sieve::Vacation&) {
    return make_error(451, "4.3.0", "Sieve vacation is not available yet");
}

}  // namespace ferry::mda

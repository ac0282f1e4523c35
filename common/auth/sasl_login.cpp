// One SASL login of a mail reader's session (ferry-popd, ferry-managesieve, ferry-imapd): the exchange, then the password check off the loop.
#include "common/auth/sasl_login.hpp"

#include "common/base/log.hpp"

namespace ferry {

std::optional<SaslLogin::Next> SaslLogin::start(std::string_view mechanism, std::optional<std::string_view> initial) {
    auto mech = sasl::parse_mechanism(mechanism, true);
    if (!mech) return std::nullopt;
    exchange_ = std::make_unique<sasl::Exchange>(*mech, sasl::Limits{},
                                                 [this](const std::string& user) { return auth_.scram_keys(user); });
    return step(exchange_->start(initial));
}

SaslLogin::Next SaslLogin::respond(std::string_view line) {
    if (!exchange_) log::panic("SASL response without an exchange");
    return step(exchange_->next(line));
}

SaslLogin::Next SaslLogin::step(const sasl::Step& s) {
    switch (s.kind) {
        case sasl::Step::Kind::challenge:
            send_(s.challenge);
            return Next::respond;
        case sasl::Step::Kind::done:
            exchange_.reset();
            check_.check_password(s.creds.authcid, s.creds.password, s.scram);
            return Next::checking;
        case sasl::Step::Kind::cancelled:
        case sasl::Step::Kind::error:
            break;
    }
    exchange_.reset();
    error_ = s.error;
    cancelled_ = s.kind == sasl::Step::Kind::cancelled;
    return Next::failed;
}

}  // namespace ferry

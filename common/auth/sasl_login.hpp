// One SASL login of a mail reader's session (ferry-popd, ferry-managesieve, ferry-imapd): the exchange, then the password check off the loop.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/auth/auth.hpp"
#include "common/auth/sasl.hpp"

namespace ferry {

// The AUTH/AUTHENTICATE dialogue of a session, in one place for every protocol: the mechanism
// (PLAIN, LOGIN, SCRAM-SHA-256), the initial response, each continuation and the client's cancel
// ("*"), all through sasl::Exchange; the credentials it ends with go to the session's LoginCheck
// (on a worker, with the failure limits), whose callback gives the answer. Only the framing of a
// continuation differs between protocols: "+ <base64>" (POP3, IMAP), a quoted string (ManageSieve).
class SaslLogin {
public:
    using SendChallenge = std::function<void(const std::string& base64)>;
    // What the session does next.
    enum class Next {
        respond,   // a continuation was sent: the next client line goes to respond()
        checking,  // the credentials are being checked: LoginCheck's callback answers
        failed,    // cancelled or refused: error() says why, the session answers in its own syntax
    };

    SaslLogin(Authenticator& auth, LoginCheck& check, SendChallenge send)
        : auth_(auth), check_(check), send_(std::move(send)) {}

    // The command's mechanism name and its initial response (nullopt when absent); nullopt when the
    // mechanism is not one ferry offers.
    std::optional<Next> start(std::string_view mechanism, std::optional<std::string_view> initial);
    // The client's line (without its line end, unquoted) after a continuation.
    Next respond(std::string_view line);
    // The client's line could not be read (too long, malformed): the exchange ends.
    void abort() { exchange_.reset(); }
    bool in_exchange() const { return exchange_ != nullptr; }
    const Error& error() const { return error_; }
    // After Next::failed: the client cancelled with "*" (IMAP answers BAD with its own text).
    bool cancelled() const { return cancelled_; }

private:
    Next step(const sasl::Step& s);

    Authenticator& auth_;
    LoginCheck& check_;
    SendChallenge send_;
    std::unique_ptr<sasl::Exchange> exchange_;
    Error error_;
    bool cancelled_ = false;
};

}  // namespace ferry

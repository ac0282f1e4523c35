// ARC sealing of forwarded mail on its way out: a message carrying ferry-smtpd's own Authentication-Results came in from outside.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/verify/arc_seal.hpp"
#include "common/verify/dkim_store.hpp"

namespace ferry::relay {

struct ArcSettings {
    bool enabled = true;               // arc_seal
    std::string domain;                // arc_seal_domain; empty: the forwarding recipient's domain
    std::string authserv_id;           // ferry-smtpd's (hostname): whose Authentication-Results are ours
    std::string key_dir;               // dkim_key_dir
    std::vector<std::string> headers;  // dkim_sign_headers, lower case: what the AMS signs
};

// The domains whose key may seal, in order: `configured` alone when set, else the account of the
// Sieve redirect (X-Ferry-Redirected:) and the recipients our Received: fields name ("for <...>").
std::vector<std::string> seal_domains(const std::vector<verify::dkim::HeaderField>& fields, const std::string& configured);

// Fed the message as it arrives; at the header's end it decides whether the message is forwarded
// (verify::arc::plan_seal) and with whose key, then seals the rest on the way.
class ArcSealing {
public:
    explicit ArcSealing(const ArcSettings& s) : settings_(s) {}
    void feed(std::string_view chunk);
    // The ARC set for the top of the message; "" when it is not sealed. `note` says why for the log
    // (sealed with which key, or why not when it was forwarded mail), empty for mail that is not.
    std::string finish(std::string& note);

private:
    void start(std::string_view header);
    const ArcSettings& settings_;
    std::string header_;
    bool decided_ = false;
    std::string domain_;
    std::string note_;
    std::optional<verify::dkim::SigningKey> key_;
    std::unique_ptr<verify::arc::Sealer> sealer_;
};

}  // namespace ferry::relay

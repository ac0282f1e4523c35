// ARC sealing (RFC 8617 5.1): the set a forwarder adds on top of a message, from the DKIM pieces (pure, no DNS).
#pragma once

#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"
#include "common/verify/dkim.hpp"

namespace ferry::verify::arc {

// What the new set continues, read from the message's header (5.1 steps 2 to 4).
struct SealPlan {
    int instance = 1;                // i= of the new set
    std::string cv;                  // "none" (no chain came in) or "pass"
    std::string results;             // our Authentication-Results, "authserv-id; resinfo; ...", for the AAR
    std::vector<std::string> prior;  // the raw fields of sets 1..instance-1, each set's AAR, AMS, AS
};

// The results of every Authentication-Results field naming `authserv_id` (ours: ferry-smtpd writes
// them and drops arriving ones that claim the name), joined into one value; "" when there is none.
std::string trusted_results(const std::vector<dkim::HeaderField>& fields, std::string_view authserv_id);

// The result an "arc=" method records in a results value ("pass", "fail"); "" when there is none.
std::string recorded_arc(std::string_view results);

// The plan for sealing a message whose header is `fields`; an error saying why it is not sealed: no
// results of ours (it did not come in from outside), a chain that failed or was not checked, 50 sets.
Result<SealPlan> plan_seal(const std::vector<dkim::HeaderField>& fields, std::string_view authserv_id);

struct SealOptions {
    std::string domain, selector;      // d= and s= of the AMS and the AS
    std::vector<std::string> headers;  // the fields the AMS signs (lower case; From is always added, ARC-Seal never)
    std::time_t now = 0;               // t=
};

// Sealing: feed() the message (LF or CRLF), then finish() gives "ARC-Seal: ...\nARC-Message-Signature:
// ...\nARC-Authentication-Results: ...\n" to put on top (LF line ends, folded under 80 columns).
class Sealer {
public:
    Sealer(const dkim::PrivateKey& key, SealOptions o, SealPlan plan)
        : key_(key), o_(std::move(o)), plan_(std::move(plan)), body_(dkim::Canon::relaxed, std::nullopt) {}
    void feed(std::string_view chunk);
    Result<std::string> finish();

private:
    const dkim::PrivateKey& key_;
    SealOptions o_;
    SealPlan plan_;
    std::string header_;
    bool in_body_ = false;
    dkim::BodyHash body_;
};

}  // namespace ferry::verify::arc

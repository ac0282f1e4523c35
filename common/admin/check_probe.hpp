// ferry-admin check's probe: a message sent in as a remote sender sends it, then found in the mailbox.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/admin/self_check.hpp"
#include "common/program/config.hpp"

namespace ferry::admin {

struct ProbePlan {
    std::string address;     // where to connect: the MX name's address, or --via
    int port = 25;
    std::string source;      // the local address to send from ("" = any): the host's own, so SPF sees it
    std::string host;        // hostname: the EHLO name, the TLS server name, the name in Received:
    std::string domain;      // the hosted domain under test
    std::string recipient;   // the probe address (postmaster@domain unless --probe names another)
    std::chrono::seconds wait{30};
};

// Talks SMTP to plan.address:port (STARTTLS when offered), tries an unknown recipient (expects 5xx),
// sends the probe to plan.recipient, waits for it in the Maildir of each account the address reaches,
// and judges its headers. One verdict per step; it stops at the first step that makes the rest moot.
std::vector<Verdict> probe_round_trip(const Config& config, const ProbePlan& plan);

}  // namespace ferry::admin

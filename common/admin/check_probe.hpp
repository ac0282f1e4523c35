// ferry-admin check's probes: a message sent in as a remote sender sends it, and one sent out through ferry-relay and back.
#pragma once

#include <chrono>
#include <ctime>
#include <functional>
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
    std::string relay_socket;  // the probe out: ferry-relay's LMTP socket
};

// Talks SMTP to plan.address:port (STARTTLS when offered), tries an unknown recipient (expects 5xx),
// sends the probe to plan.recipient, waits for it in the Maildir of each account the address reaches,
// and judges its headers. One verdict per step; it stops at the first step that makes the rest moot.
std::vector<Verdict> probe_round_trip(const Config& config, const ProbePlan& plan);

// The probe out and back (check_probe_out.cpp): handed to ferry-relay over relay_socket, as
// ferry-qmgr hands over mail for other domains (qmgr itself would deliver a hosted domain's mail
// here without sending it out), from postmaster@domain, so that it goes to the domain's MX found in
// DNS. Then, when plan.recipient has a mailbox on this host, awaited there and its Received: trail
// reported hop by hop with Authentication-Results:, or the bounce that came back to the sender's
// mailbox instead quoted. A refusal while ferry-relay sends it is quoted there and then.
std::vector<Verdict> probe_out(const Config& config, const ProbePlan& plan);

// Shared by both probes (check_probe.cpp).
std::string probe_token();
// The Maildirs of the accounts `address` reaches through aliases; `error` says why there are none.
std::vector<std::string> probe_mailboxes(const Config& config, const std::string& address, std::string& error);
// The first 64 KiB of a message in new/ or cur/ of any folder of `maildir`, changed since `since`,
// that `wanted` accepts; "" when there is none. `where` is its path.
std::string find_message(const std::string& maildir, time_t since, const std::function<bool(const std::string&)>& wanted,
                         std::string& where);
// The header block of a message's text (through the blank line).
std::string header_block(const std::string& text);

}  // namespace ferry::admin

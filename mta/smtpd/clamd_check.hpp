// The virus check of a received message: clamd's INSTREAM protocol on a worker thread, every step within clamd_timeout.
#pragma once

#include <memory>
#include <string>

#include "common/event/worker_pool.hpp"
#include "common/verify/clamd.hpp"
#include "mta/smtpd/message_check.hpp"

namespace ferry::smtpd {

using scan::ClamdVerdict;
using scan::parse_clamd_reply;

struct ClamdSettings {
    std::string address;     // clamd_address: a Unix socket path (it starts with "/") or host:port
    double timeout = 30;     // clamd_timeout, seconds
    bool fail_open = false;  // virus_scan_fail_open: clamd unavailable lets the message pass, marked
    std::string hostname;    // names this host in the X-Virus-Scanned: field ferry-mda trusts
};

std::unique_ptr<MessageCheck> make_clamd_check(WorkerPool& pool, ClamdSettings settings);

}  // namespace ferry::smtpd

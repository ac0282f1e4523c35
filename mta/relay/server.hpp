// The LMTP listener of ferry-relay: accepts qmgr's connections on relay_socket and owns the sessions.
#pragma once

#include <memory>
#include <string>

#include "common/program/config.hpp"
#include "common/smtp/lmtp_listener.hpp"
#include "mta/relay/transfer.hpp"

namespace ferry::relay {

class RelayServer {
public:
    RelayServer(RelayContext& ctx, const Config& config);

    // Binds relay_socket and logs "listening on lmtp <path>".
    Result<void> listen() { return listener_.listen(); }

private:
    RelayContext& ctx_;
    smtp::LmtpSessionSettings settings_;
    smtp::LmtpListener listener_;  // last: its sessions use the rest
};

}  // namespace ferry::relay

// The LMTP listener of ferry-relay: accepts qmgr's connections on relay_socket and owns the sessions.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include "common/event/session_set.hpp"
#include "common/program/config.hpp"
#include "common/smtp/lmtp_server.hpp"
#include "mta/relay/transfer.hpp"

namespace ferry::relay {

class RelayServer final : public smtp::LmtpSession::Owner {
public:
    RelayServer(RelayContext& ctx, const Config& config);
    ~RelayServer() override;

    // Binds relay_socket and logs "listening on lmtp <path>".
    Result<void> listen();
    void session_closed(smtp::LmtpSession* session) override;

private:
    struct Held;
    std::unique_ptr<ServedSession> make_session(SessionSet::Accepted& a);

    RelayContext& ctx_;
    smtp::LmtpSessionSettings settings_;
    std::string path_;
    std::unordered_map<smtp::LmtpSession*, ServedSession*> held_;
    SessionSet sessions_;  // last: sessions go before what they use
};

}  // namespace ferry::relay

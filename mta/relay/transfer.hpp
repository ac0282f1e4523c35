// One message to one destination domain: route it, try the hosts in order, and turn the peer's replies into LMTP replies.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/smtp/lmtp_server.hpp"
#include "mta/relay/connection_cache.hpp"
#include "mta/relay/message.hpp"
#include "mta/relay/routing.hpp"
#include "mta/relay/settings.hpp"
#include "mta/relay/smtp_client.hpp"

namespace ferry::relay {

// What every transfer shares, owned by main().
struct RelayContext {
    event_base* base;
    const RelaySettings& settings;
    Router& router;
    ConnectionCache& cache;
};

class Transfer final : public SmtpConnection::Owner {
public:
    // One reply per recipient of the message, in its order (a value: "250 2.0.0 <text>").
    using Done = std::function<void(std::vector<smtp::LmtpBackend::Reply>)>;

    // `m` outlives the transfer. `done` runs once, from the loop; it may destroy the transfer.
    Transfer(RelayContext& ctx, const OutboundMessage& m, std::string domain, Done done);
    ~Transfer() override;
    void start();

    void smtp_ready(SmtpConnection& c) override;
    void smtp_failed(SmtpConnection& c, int code, const std::string& enhanced, const std::string& why) override;
    void smtp_done(SmtpConnection& c, TransactionResult result) override;

private:
    void routed(Destination d);
    void try_next();
    void all_failed();
    void finish_all(const Error& e);
    std::vector<smtp::LmtpBackend::Reply> replies_from(const SmtpConnection& c, const TransactionResult& r) const;
    void finish(std::vector<smtp::LmtpBackend::Reply> replies);

    RelayContext& ctx_;
    const OutboundMessage& msg_;
    std::string domain_;
    Done done_;
    Destination dest_;
    size_t next_ = 0;                       // the next target to try
    std::unique_ptr<SmtpConnection> conn_;
    bool reused_ = false;                   // conn_ came from the cache
    Error last_failure_ = make_error(451, "4.4.1", "no host to try");
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ferry::relay

// Idle SMTP connections kept per destination domain for relay_connection_reuse_time, for the next message there.
#pragma once

#include <event2/event.h>

#include <map>
#include <memory>
#include <string>

#include "common/event/event.hpp"
#include "mta/relay/smtp_client.hpp"

namespace ferry::relay {

class ConnectionCache final : public SmtpConnection::Owner {
public:
    ConnectionCache(event_base* base, double reuse_time, size_t max_messages);
    ~ConnectionCache() override;

    // An idle connection to `domain` (the caller becomes its owner), or null.
    std::unique_ptr<SmtpConnection> take(const std::string& domain);
    // After a transaction: kept while it may carry more messages and reuse is on, else closed.
    void put(const std::string& domain, std::unique_ptr<SmtpConnection> c);
    // Ends it with QUIT; destroyed once closed.
    void retire(std::unique_ptr<SmtpConnection> c);
    size_t idle_count() const { return idle_.size(); }

    void smtp_ready(SmtpConnection&) override {}
    void smtp_failed(SmtpConnection& c, int, const std::string&, const std::string& why) override;
    void smtp_done(SmtpConnection&, TransactionResult) override {}

private:
    struct Idle {
        ConnectionCache* cache;
        std::string domain;
        std::unique_ptr<SmtpConnection> conn;
        EventPtr timer;
    };
    static void on_expired(evutil_socket_t, short, void* arg) noexcept;

    event_base* base_;
    double reuse_time_;
    size_t max_messages_;
    std::map<SmtpConnection*, std::unique_ptr<Idle>> idle_;
    std::map<SmtpConnection*, std::unique_ptr<SmtpConnection>> closing_;
};

}  // namespace ferry::relay

// One message to one destination domain: route it, try the hosts in order, and turn the peer's replies into LMTP replies.
#include "mta/relay/transfer.hpp"

#include <cctype>

#include "common/base/log.hpp"
#include "common/mail/dsn.hpp"

namespace ferry::relay {

namespace {

// "556 5.1.10 Recipient address has null MX" as an Error.
Error error_from_reply_text(const std::string& text) {
    int code = 451;
    if (text.size() >= 3 && std::isdigit(static_cast<unsigned char>(text[0]))) code = std::stoi(text.substr(0, 3));
    std::string rest = text.size() > 4 ? text.substr(4) : "";
    std::string enhanced = smtp::enhanced_code(rest, text.empty() ? '4' : text[0]);
    if (!enhanced.empty()) rest = rest.size() > enhanced.size() ? rest.substr(enhanced.size() + 1) : "";
    if (code < 400 || code > 599) code = 451;
    if (enhanced.empty()) enhanced = code >= 500 ? "5.4.4" : "4.4.3";
    return make_error(code, enhanced, rest.empty() ? text : rest);
}

}  // namespace

Transfer::Transfer(RelayContext& ctx, const OutboundMessage& m, std::string domain, Done done)
    : ctx_(ctx), msg_(m), domain_(std::move(domain)), done_(std::move(done)) {}

Transfer::~Transfer() { *alive_ = false; }

void Transfer::start() {
    // An idle connection to the same domain first: no DNS, no handshake.
    conn_ = ctx_.cache.take(domain_);
    if (conn_) {
        reused_ = true;
        conn_->set_owner(this, msg_.log_id);
        log::debug("%s: reusing the connection to %s", msg_.log_id.c_str(), conn_->peer_name().c_str());
        return smtp_ready(*conn_);
    }
    std::weak_ptr<bool> alive = alive_;
    ctx_.router.route(domain_, [this, alive](Destination d) {
        if (auto a = alive.lock(); a && *a) routed(std::move(d));
    });
}

void Transfer::routed(Destination d) {
    dest_ = std::move(d);
    if (dest_.kind != Destination::Kind::ok) {
        log::info("%s: domain %s: %s", msg_.log_id.c_str(), domain_.c_str(), dest_.reply.c_str());
        return finish_all(error_from_reply_text(dest_.reply));
    }
    next_ = 0;
    try_next();
}

void Transfer::try_next() {
    conn_.reset();
    reused_ = false;
    if (next_ >= dest_.targets.size()) return all_failed();
    const Target& t = dest_.targets[next_++];
    TlsPolicy policy = ctx_.settings.tls_policy.lookup(domain_);
    std::optional<Credentials> creds;
    if (dest_.via_relayhost) creds = ctx_.settings.passwords.lookup(t.host, t.port);
    conn_ = std::make_unique<SmtpConnection>(ctx_.base, ctx_.settings, t, policy, std::move(creds), msg_.log_id, this);
}

void Transfer::smtp_ready(SmtpConnection& c) {
    if (auto refused = c.refusal(msg_)) {
        log::info("%s: %s", msg_.log_id.c_str(), refused->what().c_str());
        ctx_.cache.put(domain_, std::move(conn_));
        return finish_all(*refused);
    }
    c.transact(msg_);
}

void Transfer::smtp_failed(SmtpConnection& c, int code, const std::string& enhanced, const std::string& why) {
    log::info("%s: %s", msg_.log_id.c_str(), why.c_str());
    if (reused_) {
        // The cached connection was closed meanwhile: route afresh, as if there had been none.
        conn_.reset();
        reused_ = false;
        std::weak_ptr<bool> alive = alive_;
        ctx_.router.route(domain_, [this, alive](Destination d) {
            if (auto a = alive.lock(); a && *a) routed(std::move(d));
        });
        return;
    }
    if (c.tls_failed() && c.policy() == TlsPolicy::may) {
        // Opportunistic TLS that fails must not stop the mail: the same host again, in the clear.
        log::info("%s: %s: trying again without TLS", msg_.log_id.c_str(), c.peer_name().c_str());
        Target t = c.target();
        conn_ = std::make_unique<SmtpConnection>(ctx_.base, ctx_.settings, std::move(t), TlsPolicy::none,
                                                 std::nullopt, msg_.log_id, this);
        return;
    }
    // A TLS policy failure says more than a later host's connect failure: it is kept.
    if (last_failure_.enhanced.rfind("4.7.", 0) != 0 || enhanced.rfind("4.7.", 0) == 0)
        last_failure_ = make_error(code ? code : 451, enhanced, why);
    try_next();
}

void Transfer::all_failed() {
    log::info("%s: domain %s deferred: %s", msg_.log_id.c_str(), domain_.c_str(), last_failure_.text.c_str());
    finish_all(last_failure_);
}

void Transfer::smtp_done(SmtpConnection& c, TransactionResult result) {
    bool untouched = result.connection_lost && !result.data_sent;
    for (const auto& r : result.replies) untouched = untouched && r.code == 0;
    if (untouched) {
        // Nothing was answered: the message was not taken, so the next host may take it.
        return smtp_failed(c, 451, "4.4.2", result.why);
    }
    auto replies = replies_from(c, result);
    if (c.idle()) ctx_.cache.put(domain_, std::move(conn_));
    else conn_.reset();
    finish(std::move(replies));
}

std::vector<smtp::LmtpBackend::Reply> Transfer::replies_from(const SmtpConnection& c, const TransactionResult& r) const {
    std::vector<smtp::LmtpBackend::Reply> out;
    std::string peer = c.peer_name();
    for (size_t i = 0; i < r.replies.size(); ++i) {
        const smtp::Reply& reply = r.replies[i];
        std::string who = "<" + msg_.recipients[i] + ">: ";
        if (reply.ok()) {
            log::info("%s: to=<%s> relay=%s status=sent (%s)", msg_.log_id.c_str(), msg_.recipients[i].c_str(), peer.c_str(),
                      reply.text.c_str());
            // RFC 3461 5.2.1: a peer without DSN cannot report the delivery; qmgr says "relayed".
            bool relayed = !c.capabilities().dsn && i < msg_.rcpt_params.size() &&
                           (msg_.rcpt_params[i].notify & dsn::notify::success);
            out.emplace_back(relayed ? std::string(dsn::kRelayedWithoutDsn) + who + peer + ": " + reply.text
                                     : who + "delivered to " + peer + ": " + reply.text);
            continue;
        }
        Error e = reply.code >= 400 && reply.code <= 599
                      ? make_error(reply.code, reply.enhanced.empty() ? (reply.permanent() ? "5.0.0" : "4.0.0") : reply.enhanced,
                                   who + peer + " said: " + reply.text)
                      : make_error(451, "4.4.2", who + (reply.text.empty() ? "no reply from " + peer : reply.text));
        log::info("%s: to=<%s> relay=%s status=%s (%s)", msg_.log_id.c_str(), msg_.recipients[i].c_str(), peer.c_str(),
                  e.code >= 500 ? "bounced" : "deferred", e.reply().c_str());
        out.emplace_back(std::move(e));
    }
    return out;
}

void Transfer::finish_all(const Error& e) {
    std::vector<smtp::LmtpBackend::Reply> out;
    for (const auto& r : msg_.recipients) {
        Error each = e;
        each.text = "<" + r + ">: " + e.text;
        out.emplace_back(std::move(each));
    }
    finish(std::move(out));
}

void Transfer::finish(std::vector<smtp::LmtpBackend::Reply> replies) {
    auto done = std::move(done_);
    done_ = nullptr;
    if (done) done(std::move(replies));  // may destroy this transfer: nothing after
}

}  // namespace ferry::relay

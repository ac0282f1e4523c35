// The DKIM, ARC and DMARC check of a received message: common/verify over the spooled bytes, keys and policies from DNS, within smtpd_dkim_timeout.
#pragma once

#include <event2/event.h>

#include <memory>
#include <string>

#include "common/event/resolver.hpp"
#include "mta/smtpd/message_check.hpp"

namespace ferry::smtpd {

// smtpd_dkim_verify: each signature's result goes into our one Authentication-Results field (RFC 8601),
// after the SPF verdict of MAIL FROM; no message is refused for it. Mail from relay clients (on its way out) is not checked.
// smtpd_dmarc: off; record (DMARC's verdict joins the same field); reject (as record, and a
// fail under p=reject, within pct=, is refused with 550 5.7.1; a fail under p=quarantine, or
// p=reject outside pct=, gets policy.dmarc=quarantine in the field, which ferry-mda files into Junk).
// smtpd_arc_verify: a message with ARC sets gets the chain's result (RFC 8617) in the same field.
enum class DmarcMode { off, record, reject };

class DkimCheck final : public MessageCheck {
public:
    DkimCheck(event_base* base, dns::Resolver& resolver, std::string authserv_id, double timeout, DmarcMode dmarc,
              bool arc)
        : base_(base), resolver_(resolver), authserv_id_(std::move(authserv_id)), timeout_(timeout), dmarc_(dmarc), arc_(arc) {}
    const char* name() const override { return "dkim"; }
    std::unique_ptr<CheckRun> start(std::shared_ptr<const CheckedMessage> m, Done done) override;

private:
    event_base* base_;
    dns::Resolver& resolver_;
    std::string authserv_id_;
    double timeout_;
    DmarcMode dmarc_;
    bool arc_;
};

}  // namespace ferry::smtpd

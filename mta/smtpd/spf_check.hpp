// The SPF check at MAIL FROM: common/verify's evaluator driven by the c-ares resolver, within smtpd_spf_timeout.
#pragma once

#include <event2/event.h>

#include <functional>
#include <memory>
#include <string>

#include "common/event/resolver.hpp"
#include "common/verify/spf.hpp"

namespace ferry::smtpd {

// smtpd_spf_policy: off (no check), record (the result goes into Authentication-Results),
// reject_fail (as record, and a fail is refused with 550 5.7.23).
enum class SpfPolicy { off, record, reject_fail };

// One running check. Dropping the handle cancels it: `done` is then never called.
class SpfRun {
public:
    virtual ~SpfRun() = default;
};

// Starts the check of `req`; `done` runs later on the loop, exactly once, unless the handle is
// dropped first. After `timeout` seconds the verdict is temperror.
std::unique_ptr<SpfRun> start_spf(event_base* base, dns::Resolver& resolver, verify::spf::Request req, double timeout,
                                  std::function<void(verify::spf::Verdict)> done);

// "Authentication-Results: host; spf=pass (reason) smtp.mailfrom=x@example.org\n" (RFC 8601, RFC 7208 9.1),
// folded, with LF line ends as the spool stores messages.
std::string authentication_results(const std::string& authserv_id, const verify::spf::Verdict& v);

// The text of the 550 5.7.23 reply for a fail: the domain's explanation, or a default one.
std::string spf_fail_text(const verify::spf::Verdict& v);

}  // namespace ferry::smtpd

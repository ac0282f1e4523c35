// The SPF check at MAIL FROM: common/verify's evaluator driven by the c-ares resolver, within smtpd_spf_timeout.
#pragma once

#include <event2/event.h>

#include <functional>
#include <memory>
#include <optional>
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

// The SPF resinfo of an Authentication-Results field: "spf=pass (reason)\n\tsmtp.mailfrom=x@example.org"
// (RFC 8601 2.7.2, RFC 7208 9.1), folded with LF line ends as the spool stores messages.
std::string spf_resinfo(const verify::spf::Verdict& v);

// Our one Authentication-Results field (RFC 8601): the SPF verdict first when there is one, then
// `others` (DKIM, DMARC, ARC resinfos joined by ";\n\t", "" for none); "none" without any result.
// "Authentication-Results: host;\n\tspf=pass (reason)\n\tsmtp.mailfrom=x@example.org;\n\tdkim=none\n"
std::string authentication_results(const std::string& authserv_id, const std::optional<verify::spf::Verdict>& spf,
                                   const std::string& others);

// The text of the 550 5.7.23 reply for a fail: the domain's explanation, or a default one.
std::string spf_fail_text(const verify::spf::Verdict& v);

}  // namespace ferry::smtpd

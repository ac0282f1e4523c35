// ferry-admin check's verdicts: pure judgements of what DNS, the certificate and the listeners showed.
#pragma once

#include <ctime>
#include <string>
#include <utility>
#include <vector>

namespace ferry::admin {

// One line of the report: what was checked, whether it holds, and when not, the fault and its fix.
struct Verdict {
    bool ok = false;
    std::string what;
    std::string detail;  // the fault (or, for ok, what was found)
    std::string fix;     // empty for ok
    std::vector<std::string> notes;  // lines printed under it (a probe's hops)
};

// The MX records of `domain` name `host` (case and a trailing dot aside).
Verdict judge_mx(const std::string& domain, const std::string& host, const std::vector<std::pair<int, std::string>>& mx);

// The one SPF record among `txt` lets `host` (with `addresses`) send for `domain`: through mx (when
// `mx_names_host`), a, a:host, or an ip4:/ip6: block holding an address of the host.
Verdict judge_spf(const std::string& domain, const std::string& host, const std::vector<std::string>& addresses,
                  bool mx_names_host, const std::vector<std::string>& domain_addresses,
                  const std::vector<std::string>& txt);

// A DMARC policy record (v=DMARC1) at _dmarc.<domain>.
Verdict judge_dmarc(const std::string& domain, const std::vector<std::string>& txt);

// The DKIM key ferry holds for a domain (its active selector) and the record to publish for it.
struct HeldDkimKey {
    std::string selector;
    std::string type;        // k= of the record: "rsa" or "ed25519"
    std::string public_key;  // base64
    std::string record;      // the zone-file text `ferry-admin dkim show` prints
};

// The TXT records at <selector>._domainkey.<domain> (`txt`) publish the key held: one of them has
// the same p= (white space aside) and k= (rsa when absent).
Verdict judge_dkim(const std::string& domain, const HeldDkimKey& held, const std::vector<std::string>& txt);

// Whether `address` lies in `block` ("192.0.2.0/24", "2001:db8::/32", or one address).
bool address_in_block(const std::string& address, const std::string& block);

// The certificate facts from tls_cert_file: valid for the MX name and not expiring within 14 days.
struct CertFacts {
    bool loaded = false;
    std::string error;
    bool matches_host = false;
    std::string subject;
    time_t not_after = 0;
};
Verdict judge_certificate(const std::string& host, const CertFacts& cert, time_t now);
CertFacts read_certificate(const std::string& path, const std::string& host);

// The probe's copy as the mailbox holds it: `headers` is its header block. A remote receiver sees the
// Received: field that ferry-smtpd put on top (by `host`, with ESMTPS when the probe used TLS) and the
// SPF result in the Authentication-Results: field of `host`. One verdict for each.
std::vector<Verdict> judge_probe_headers(const std::string& host, bool sent_over_tls, const std::string& headers);

// The reply to RCPT TO an address that does not exist: a 5xx there, not a bounce later (backscatter).
Verdict judge_unknown_recipient(const std::string& address, const std::string& reply);

// Every field `name` of a header block, top first, unfolded, without its name.
std::vector<std::string> header_fields(const std::string& headers, const std::string& name);
// The first field `name` of a header block, unfolded, without its name; "" when there is none.
std::string header_field(const std::string& headers, const std::string& name, const std::string& starts_with = "");

}  // namespace ferry::admin

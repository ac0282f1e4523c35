// The spam check of a received message: rules on a worker thread, DNS lists through the resolver, X-Spam-* fields.
#pragma once

#include <event2/event.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "common/event/resolver.hpp"
#include "common/event/worker_pool.hpp"
#include "common/program/config.hpp"
#include "common/verify/spam_rules.hpp"
#include "mta/smtpd/message_check.hpp"

namespace ferry::smtpd {

// One DNS list of spam_dnsbl_zones: a positive weight is a block list, a negative one an allow list.
struct DnsList {
    std::string zone;
    double weight = 0;
};

struct SpamSettings {
    verify::spam::RuleSet rules;        // built-ins and spam_rules_file
    size_t max_bytes = 256 * 1024;      // spam_max_body_bytes: the text rules read no further
    double junk_score = 5.0;            // spam_junk_score: X-Spam-Status says Yes from here on
    std::optional<double> reject_score; // spam_reject_score: refused from here on; empty: never
    std::vector<DnsList> lists;         // spam_dnsbl_zones
    bool score_relay_clients = false;   // spam_score_relay_clients
    double timeout = 30;                // spam_timeout, seconds: the check answers by then
    std::string spamd_address;          // spamd_address: SpamAssassin's spamd, whose score joins ours
    double spamd_timeout = 15;          // spamd_timeout, seconds
    std::string rspamd_address;         // rspamd_address: rspamd's /checkv2, whose score joins ours
    double rspamd_timeout = 15;         // rspamd_timeout, seconds
};

// "zen.example:3.5" items of spam_dnsbl_zones; an error names the item.
Result<std::vector<DnsList>> parse_dns_lists(const std::vector<std::string>& items);
// Every spam_* key, the rule file read and parsed; an error says which key (exit 78 at start).
Result<SpamSettings> spam_settings(const Config& config);
// The name asked of a DNS list for `ip`: "127.0.0.2" -> "2.0.0.127", IPv6 by nibbles (RFC 5782 2.1, 2.4).
std::string reversed_ip(const std::string& ip);

// The check. `resolver` may be null when there are no DNS lists; both outlive the check.
std::unique_ptr<MessageCheck> make_spam_check(event_base* base, WorkerPool& pool, dns::Resolver* resolver,
                                              SpamSettings settings);

}  // namespace ferry::smtpd

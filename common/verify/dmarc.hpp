// DMARC (RFC 7489): the policy record, the organisational domain (public suffix list, libpsl), identifier alignment and the verdict.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::verify::dmarc {

enum class Policy { none, quarantine, reject };
const char* policy_name(Policy p);

// The tags of a DMARC record that the receiver acts on (RFC 7489 6.3).
struct Record {
    Policy p = Policy::none;
    std::optional<Policy> sp;   // for subdomains of the organisational domain
    int pct = 100;              // share of failing mail the policy applies to
    bool strict_dkim = false;   // adkim=s
    bool strict_spf = false;    // aspf=s
};

// True for a TXT string that starts "v=DMARC1" (then ';' or whitespace or nothing).
bool is_dmarc_record(std::string_view txt);
// Parses a record; nullopt when it is not a valid DMARC record (no v=DMARC1 first, no valid p=).
// An invalid sp=, pct=, adkim= or aspf= is ignored as RFC 7489 6.3 allows.
std::optional<Record> parse_record(std::string_view txt, std::string* why = nullptr);

// The organisational domain (RFC 7489 3.2): the registrable domain under the public suffix list;
// the domain itself when it is a public suffix or unknown to the list. Lower case, no trailing dot.
std::string organizational_domain(const std::string& domain);

// Identifier alignment (RFC 7489 3.1): equal in strict mode; same organisational domain in relaxed.
bool aligned(const std::string& a, const std::string& b, bool strict);

enum class Result { none, pass, fail, temperror, permerror };
const char* result_name(Result r);

// What the evaluation needs: the From: domain and the authenticated identities.
struct Identities {
    std::string from_domain;
    std::string spf_domain;                 // the domain SPF passed for; "" when SPF did not pass
    std::vector<std::string> dkim_domains;  // d= of each passing DKIM signature
};

struct Verdict {
    Result result = Result::none;
    Policy policy = Policy::none;  // the policy of the applicable record (sp= for a subdomain)
    bool enforce = false;          // fail, and the pct= sample picks this message
    // What the receiver applies to a fail (RFC 7489 6.6.4): the policy when the pct= sample picks
    // the message, else the next lower one (reject -> quarantine -> none); none for a pass.
    Policy disposition = Policy::none;
    std::string reason;            // "spf", "dkim" (what aligned), or why not
};

// The verdict for `ids` under `rec`, found at _dmarc.<record_domain>; `sample` is a number in
// 0..99 drawn per message (the pct= sampling, RFC 7489 6.6.4).
Verdict evaluate(const Identities& ids, const Record& rec, const std::string& record_domain, int sample);

// The From: field's one domain for DMARC (RFC 7489 6.6.1); "" when the field holds no address or
// several (such a message gets no DMARC verdict).
std::string from_domain(std::string_view from_value);

}  // namespace ferry::verify::dmarc

// What this ferry offers a hosted domain, and the DNS records and client configuration that advertise it.
#pragma once

#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "common/program/config.hpp"

namespace ferry::admin {

// A client service (RFC 6186 names) and the port ferry listens on for it; port 0 when it is not offered.
struct ClientService {
    std::string name;  // "submission", "submissions", "imap", "imaps", "pop3", "pop3s"
    int port = 0;
    bool implicit_tls = false;
};

struct MailSetup {
    std::string domain;                  // the hosted domain, lower case, no trailing dot
    std::string host;                    // the MX name: `hostname`
    std::vector<std::string> addresses;  // the MX name's public addresses (A/AAAA), when the MX is in the domain
    std::vector<ClientService> services;
    std::string dkim_selector;           // "" while ferry holds no DKIM key for the domain
    std::string dkim_public_key;         // base64 of the public key
    std::string dkim_key_type = "rsa";   // k= of the record: "rsa" or "ed25519"
    std::string report_address() const { return "postmaster@" + domain; }
};

// The port of the first `host:port` in a listen key's value; 0 when the key is empty, or when
// `public_only` and that host is a loopback address (nobody outside can reach it).
int listen_port(const std::string& listen_value, bool public_only = false);

// The setup of `domain` under `config`; an error when the domain or the hostname is not a domain name.
Result<MailSetup> mail_setup(const Config& config, const std::string& domain, std::vector<std::string> addresses);

// Zone-file records (absolute names, TTL and class given) to paste into the domain's zone (dns_records.cpp).
std::string dns_zone_text(const MailSetup& setup, const std::string& mta_sts_id);

// A DKIM key record as `ferry-admin dkim show` prints it: the TXT value split into strings of at
// most 255 octets (RFC 1035 3.3.14), one a line inside parentheses (dns_records.cpp).
std::string dkim_show_record(const std::string& domain, const std::string& selector, const std::string& key_type,
                             const std::string& public_key);

// Thunderbird's autoconfig file, served at https://autoconfig.<domain>/mail/config-v1.1.xml (client_config.cpp).
std::string thunderbird_autoconfig(const MailSetup& setup);

// Apple's configuration profile (DOMAIN.mobileconfig, unsigned) with one com.apple.mail.managed payload: the
// first offered IMAP (else POP3) server and submission server; an error when either is missing (client_config.cpp).
Result<std::string> apple_mobileconfig(const MailSetup& setup);

// Outlook's POX Autodiscover response, served (to a POST) at https://autodiscover.<domain>/autodiscover/autodiscover.xml;
// one Protocol entry per offered type (IMAP, POP3, SMTP), implicit TLS preferred (client_config.cpp).
std::string outlook_autodiscover(const MailSetup& setup);

}  // namespace ferry::admin

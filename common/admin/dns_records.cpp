// The DNS records a hosted domain publishes, as zone-file lines: MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, SRV.
#include <cstdio>
#include <string>

#include "common/admin/mail_setup.hpp"

namespace ferry::admin {

namespace {

constexpr int kTtl = 3600;

std::string record(const std::string& name, const std::string& type, const std::string& data) {
    char line[1024];
    snprintf(line, sizeof line, "%-36s %d IN %-5s %s\n", (name + ".").c_str(), kTtl, type.c_str(), data.c_str());
    return line;
}

// A TXT value as quoted strings of at most 255 octets each (RFC 1035 3.3.14), as long DKIM keys need.
std::string txt(const std::string& value) {
    std::string out;
    for (size_t i = 0; i < value.size(); i += 255) out += (out.empty() ? "\"" : " \"") + value.substr(i, 255) + "\"";
    return out;
}

bool in_domain(const std::string& host, const std::string& domain) {
    return host == domain || (host.size() > domain.size() && host.compare(host.size() - domain.size(), domain.size(), domain) == 0 &&
                              host[host.size() - domain.size() - 1] == '.');
}

std::string mail_records(const MailSetup& s) {
    std::string out = "; Mail for " + s.domain + " goes to " + s.host + ", which alone may send it (SPF).\n";
    out += record(s.domain, "MX", "10 " + s.host + ".");
    if (in_domain(s.host, s.domain)) {
        for (const auto& a : s.addresses) out += record(s.host, a.find(':') == std::string::npos ? "A" : "AAAA", a);
        if (s.addresses.empty())
            out += "; " + s.host + " needs A/AAAA records with this host's public addresses (or give --address).\n";
    }
    out += record(s.domain, "TXT", txt("v=spf1 mx -all"));
    return out;
}

std::string dkim_records(const MailSetup& s) {
    if (s.dkim_selector.empty()) return "; DKIM: ferry holds no signing key for " + s.domain + " yet, so no DKIM record.\n";
    return "; DKIM: the public half of the signing key (selector " + s.dkim_selector + ").\n" +
           record(s.dkim_selector + "._domainkey." + s.domain, "TXT", txt("v=DKIM1; k=" + s.dkim_key_type + "; p=" + s.dkim_public_key));
}

std::string policy_records(const MailSetup& s, const std::string& mta_sts_id) {
    std::string rua = "mailto:" + s.report_address();
    std::string out = "; DMARC: start with p=none and read the reports; then p=quarantine or p=reject.\n";
    out += record("_dmarc." + s.domain, "TXT", txt("v=DMARC1; p=none; rua=" + rua));
    out += "; MTA-STS (RFC 8461): publish the record, serve the policy below at\n"
           ";   https://mta-sts." + s.domain + "/.well-known/mta-sts.txt\n"
           ";   version: STSv1\n;   mode: testing\n;   mx: " + s.host + "\n;   max_age: 604800\n"
           "; and change the id whenever the policy changes.\n";
    out += record("_mta-sts." + s.domain, "TXT", txt("v=STSv1; id=" + mta_sts_id));
    out += "; TLS reporting (RFC 8460): where senders report failed TLS.\n";
    out += record("_smtp._tls." + s.domain, "TXT", txt("v=TLSRPTv1; rua=" + rua));
    return out;
}

// RFC 6186 (and RFC 8314 for submissions): "0 0 0 ." says a service is not offered.
std::string srv_records(const MailSetup& s) {
    std::string out = "; Mail clients find the servers (RFC 6186, RFC 8314).\n";
    for (const auto& svc : s.services) {
        std::string data = svc.port ? "0 1 " + std::to_string(svc.port) + " " + s.host + "." : "0 0 0 .";
        out += record("_" + svc.name + "._tcp." + s.domain, "SRV", data);
    }
    return out;
}

}  // namespace

std::string dkim_show_record(const std::string& domain, const std::string& selector, const std::string& key_type,
                             const std::string& public_key) {
    std::string value = "v=DKIM1; k=" + key_type + "; p=" + public_key;
    std::string out = selector + "._domainkey." + domain + ". IN TXT (";
    for (size_t at = 0; at < value.size(); at += 255) out += "\n  \"" + value.substr(at, 255) + "\"";
    return out + " )\n";
}

std::string dns_zone_text(const MailSetup& s, const std::string& mta_sts_id) {
    return "; DNS records for " + s.domain + " (ferry-admin dns): paste them into its zone.\n" + mail_records(s) +
           dkim_records(s) + policy_records(s, mta_sts_id) + srv_records(s);
}

}  // namespace ferry::admin

// ferry-admin check's verdicts on MX, SPF, DMARC and the certificate, each with the fault and the fix.
#include "common/admin/self_check.hpp"

#include <arpa/inet.h>
#include <gnutls/x509.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "common/program/config.hpp"

namespace ferry::admin {

namespace {

std::string canonical(std::string name) {
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    if (!name.empty() && name.back() == '.') name.pop_back();
    return name;
}

std::string joined(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
    return out.empty() ? "none" : out;
}

Verdict pass(const std::string& what, const std::string& found) { return {true, what, found, ""}; }
Verdict fault(const std::string& what, const std::string& why, const std::string& fix) { return {false, what, why, fix}; }

bool starts_with_nocase(const std::string& text, const std::string& prefix) {
    return text.size() >= prefix.size() && strncasecmp(text.c_str(), prefix.c_str(), prefix.size()) == 0;
}

// The mechanism of an SPF term without its qualifier; "" for a term that never passes (-, ~, ?).
std::string passing_mechanism(std::string term) {
    if (!term.empty() && (term[0] == '-' || term[0] == '~' || term[0] == '?')) return "";
    if (!term.empty() && term[0] == '+') term.erase(0, 1);
    std::transform(term.begin(), term.end(), term.begin(), [](unsigned char c) { return std::tolower(c); });
    return term;
}

bool any_in_block(const std::vector<std::string>& addresses, const std::string& block) {
    return std::any_of(addresses.begin(), addresses.end(), [&](const auto& a) { return address_in_block(a, block); });
}

// The SPF term that lets the host send, or "".
std::string covering_term(const std::string& record, const std::string& host, const std::vector<std::string>& addresses,
                          bool mx_names_host, const std::vector<std::string>& domain_addresses) {
    std::istringstream terms(record);
    std::string term;
    terms >> term;  // v=spf1
    while (terms >> term) {
        std::string m = passing_mechanism(term);
        bool covers = (m == "mx" && mx_names_host) || (m == "a:" + host) ||
                      (m == "a" && std::any_of(addresses.begin(), addresses.end(), [&](const auto& a) {
                           return std::find(domain_addresses.begin(), domain_addresses.end(), a) != domain_addresses.end();
                       })) ||
                      ((m.rfind("ip4:", 0) == 0 || m.rfind("ip6:", 0) == 0) && any_in_block(addresses, m.substr(4)));
        if (covers) return term;
    }
    return "";
}

}  // namespace

bool address_in_block(const std::string& address, const std::string& block) {
    std::string net = block;
    int bits = -1;
    if (size_t slash = block.find('/'); slash != std::string::npos) {
        auto n = parse_integer(std::string_view(block).substr(slash + 1));
        if (!n) return false;
        bits = static_cast<int>(*n);
        net = block.substr(0, slash);
    }
    unsigned char a[16], b[16];
    int family = address.find(':') == std::string::npos ? AF_INET : AF_INET6;
    int size = family == AF_INET ? 4 : 16;
    if (inet_pton(family, address.c_str(), a) != 1 || inet_pton(family, net.c_str(), b) != 1) return false;
    if (bits < 0) bits = size * 8;
    if (bits > size * 8) return false;
    for (int i = 0; i < size && bits > 0; ++i, bits -= 8) {
        unsigned char mask = bits >= 8 ? 0xff : static_cast<unsigned char>(0xff << (8 - bits));
        if ((a[i] & mask) != (b[i] & mask)) return false;
    }
    return true;
}

Verdict judge_mx(const std::string& domain, const std::string& host, const std::vector<std::pair<int, std::string>>& mx) {
    std::string what = "MX of " + domain + " points at " + host;
    std::vector<std::string> names;
    for (const auto& [pref, name] : mx) names.push_back(std::to_string(pref) + " " + canonical(name));
    for (const auto& [pref, name] : mx)
        if (canonical(name) == canonical(host)) return pass(what, joined(names));
    std::string why = mx.empty() ? domain + " has no MX record" : "the MX records name " + joined(names) + ", not " + host;
    return fault(what, why, "publish \"" + domain + ". IN MX 10 " + host + ".\" (ferry-admin dns " + domain + ")");
}

Verdict judge_spf(const std::string& domain, const std::string& host, const std::vector<std::string>& addresses,
                  bool mx_names_host, const std::vector<std::string>& domain_addresses,
                  const std::vector<std::string>& txt) {
    std::string what = "SPF of " + domain + " lets " + host + " send";
    std::vector<std::string> spf;
    for (const auto& t : txt)
        if (starts_with_nocase(t, "v=spf1") && (t.size() == 6 || t[6] == ' ')) spf.push_back(t);
    std::string fix = "publish \"" + domain + ". IN TXT \\\"v=spf1 mx -all\\\"\" (with the MX above)";
    if (spf.empty()) return fault(what, domain + " has no SPF record", fix);
    if (spf.size() > 1) return fault(what, domain + " has " + std::to_string(spf.size()) + " SPF records (a permerror)", "keep one");
    std::string term = covering_term(spf[0], canonical(host), addresses, mx_names_host, domain_addresses);
    if (!term.empty()) return pass(what, "\"" + spf[0] + "\" covers it with " + term);
    return fault(what, "\"" + spf[0] + "\" does not cover " + host + " (" + joined(addresses) + ")",
                 "add mx, a:" + host + " or ip4:/ip6: with its address before the all term");
}

Verdict judge_dmarc(const std::string& domain, const std::vector<std::string>& txt) {
    std::string what = "DMARC policy at _dmarc." + domain;
    for (const auto& t : txt)
        if (starts_with_nocase(t, "v=DMARC1")) return pass(what, "\"" + t + "\"");
    return fault(what, "_dmarc." + domain + " has no v=DMARC1 record",
                 "publish \"_dmarc." + domain + ". IN TXT \\\"v=DMARC1; p=none; rua=mailto:postmaster@" + domain + "\\\"\"");
}

namespace {

// The tags of a DKIM key record (RFC 6376 3.6.1), names lower-cased, values without white space.
std::map<std::string, std::string> dkim_tags(const std::string& record) {
    std::map<std::string, std::string> tags;
    std::istringstream in(record);
    std::string item;
    while (std::getline(in, item, ';')) {
        size_t eq = item.find('=');
        if (eq == std::string::npos) continue;
        std::string name, value;
        for (char c : item.substr(0, eq))
            if (!std::isspace(static_cast<unsigned char>(c))) name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        for (char c : item.substr(eq + 1))
            if (!std::isspace(static_cast<unsigned char>(c))) value += c;
        tags.emplace(name, value);
    }
    return tags;
}

}  // namespace

Verdict judge_dkim(const std::string& domain, const HeldDkimKey& held, const std::vector<std::string>& txt) {
    std::string name = held.selector + "._domainkey." + domain;
    std::string what = "DKIM record at " + name;
    std::string fix = "publish the record that `ferry-admin dkim show " + domain + "` prints:\n" + held.record;
    std::vector<std::map<std::string, std::string>> records;
    for (const auto& t : txt) {
        auto tags = dkim_tags(t);
        if (tags.count("p") || (tags.count("v") && tags["v"] == "DKIM1")) records.push_back(std::move(tags));
    }
    if (records.empty()) return fault(what, "no record published", fix);
    for (auto& tags : records) {
        std::string k = tags.count("k") ? canonical(tags["k"]) : "rsa";
        if (tags["p"] == held.public_key && k == held.type) return pass(what, "k=" + k + ", p= matches the key held");
    }
    auto& first = records.front();
    std::string why = first["p"].empty() ? "the record revokes the key (empty p=)"
                    : first["p"] != held.public_key ? "p= is another key than the one held"
                    : "k=" + (first.count("k") ? first["k"] : std::string("rsa (by default)")) + ", the key held is " + held.type;
    return fault(what, "record does not match the key held: " + why, fix);
}

Verdict judge_certificate(const std::string& host, const CertFacts& cert, time_t now) {
    std::string what = "TLS certificate is valid for " + host + " beyond 14 days";
    if (!cert.loaded) return fault(what, cert.error, "set tls_cert_file and tls_key_file to a certificate for " + host);
    if (!cert.matches_host)
        return fault(what, "the certificate is for " + cert.subject + ", not " + host,
                     "get a certificate for " + host + " (the MX name) and name it in tls_cert_file");
    long days = static_cast<long>((cert.not_after - now) / 86400);
    if (cert.not_after - now < 14 * 86400)
        return fault(what, cert.not_after <= now ? "the certificate has expired" : "the certificate expires in " + std::to_string(days) + " days",
                     "renew it, then restart the daemons that serve TLS");
    return pass(what, cert.subject + ", " + std::to_string(days) + " days left");
}

CertFacts read_certificate(const std::string& path, const std::string& host) {
    CertFacts f;
    if (path.empty()) return f.error = "tls_cert_file is not set: no listener offers TLS", f;
    std::ifstream in(path, std::ios::binary);
    std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in && pem.empty()) return f.error = "cannot read " + path + ": " + std::strerror(errno), f;
    gnutls_x509_crt_t crt;
    gnutls_x509_crt_init(&crt);
    gnutls_datum_t data{reinterpret_cast<unsigned char*>(pem.data()), static_cast<unsigned>(pem.size())};
    if (gnutls_x509_crt_import(crt, &data, GNUTLS_X509_FMT_PEM) < 0) {
        gnutls_x509_crt_deinit(crt);
        return f.error = path + " holds no PEM certificate", f;
    }
    f.loaded = true;
    f.matches_host = gnutls_x509_crt_check_hostname(crt, host.c_str()) != 0;
    f.not_after = gnutls_x509_crt_get_expiration_time(crt);
    char dn[512];
    size_t size = sizeof dn;
    f.subject = gnutls_x509_crt_get_dn(crt, dn, &size) == 0 ? dn : "an unreadable subject";
    gnutls_x509_crt_deinit(crt);
    return f;
}

}  // namespace ferry::admin

namespace ferry::admin {

namespace {

std::string unfolded(const std::string& value) {
    std::string out;
    for (char c : value) {
        if (c == '\r') continue;
        if (c == '\n' || c == '\t') c = ' ';
        if (c == ' ' && !out.empty() && out.back() == ' ') continue;
        out += c;
    }
    size_t a = out.find_first_not_of(' '), b = out.find_last_not_of(' ');
    return a == std::string::npos ? "" : out.substr(a, b - a + 1);
}

// The word after "spf=" in an Authentication-Results value: pass, fail, softfail, none, ...
std::string spf_result(const std::string& results) {
    size_t at = results.find("spf=");
    if (at == std::string::npos) return "";
    size_t end = results.find_first_of(" ;(", at + 4);
    return results.substr(at + 4, end == std::string::npos ? std::string::npos : end - at - 4);
}

Verdict judge_spf_result(const std::string& host, const std::string& results) {
    std::string what = "probe's SPF result at " + host;
    if (results.empty())
        return fault(what, "no Authentication-Results: field from " + host,
                     "set smtpd_spf_policy = record (or reject_fail) so that senders are checked");
    std::string spf = spf_result(results);
    if (spf == "pass") return pass(what, "spf=pass");
    std::string fix = spf == "none" ? "publish an SPF record for the domain (ferry-admin dns prints one)"
                    : spf == "temperror" ? "check that the domain's DNS servers answer, and dns_servers"
                    : spf == "permerror" ? "repair the domain's SPF record: it does not parse, or needs too many lookups"
                    : "let this host send for the domain: add mx (or its address as ip4:/ip6:) to the SPF record";
    return fault(what, "spf=" + (spf.empty() ? std::string("missing") : spf) + ": " + results, fix);
}

}  // namespace

std::vector<std::string> header_fields(const std::string& headers, const std::string& name) {
    std::vector<std::string> values;
    size_t pos = 0;
    while (pos < headers.size()) {
        size_t end = pos;
        do end = headers.find('\n', end + 1);  // a field runs on over lines that start with white space
        while (end != std::string::npos && end + 1 < headers.size() && (headers[end + 1] == ' ' || headers[end + 1] == '\t'));
        std::string field = headers.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        if (field.size() > name.size() && field[name.size()] == ':' && starts_with_nocase(field, name))
            values.push_back(unfolded(field.substr(name.size() + 1)));
        if (end == std::string::npos) break;
        pos = end + 1;
    }
    return values;
}

std::string header_field(const std::string& headers, const std::string& name, const std::string& starts_with) {
    for (auto& value : header_fields(headers, name))
        if (starts_with_nocase(value, starts_with)) return value;
    return "";
}

std::vector<Verdict> judge_probe_headers(const std::string& host, bool sent_over_tls, const std::string& headers) {
    std::vector<Verdict> out;
    std::string received = header_field(headers, "Received");
    std::string what = "probe's Received: field is by " + host;
    std::string by = " by " + canonical(host) + " ";
    std::string lower = canonical(received);
    if (received.empty()) out.push_back(fault(what, "the message has no Received: field", "ferry-smtpd adds one: is something else listening on the port?"));
    else if (lower.find(by) == std::string::npos)
        out.push_back(fault(what, "\"" + received + "\"", "set hostname = " + host + " in ferry.conf, then restart ferry-smtpd"));
    else out.push_back(pass(what, "\"" + received + "\""));
    if (sent_over_tls) {
        std::string tls_what = "probe's Received: field records TLS";
        bool esmtps = lower.find(" with esmtps") != std::string::npos || lower.find(" with utf8smtps") != std::string::npos;
        out.push_back(esmtps ? pass(tls_what, received.substr(received.find("(using") == std::string::npos ? 0 : received.find("(using")))
                             : fault(tls_what, "the probe used STARTTLS but the field does not say ESMTPS",
                                     "something between this host and ferry-smtpd ends TLS: connect it straight to ferry-smtpd"));
    }
    out.push_back(judge_spf_result(host, header_field(headers, "Authentication-Results", canonical(host) + ";")));
    return out;
}

Verdict judge_unknown_recipient(const std::string& address, const std::string& reply) {
    std::string what = "mail to an unknown user is refused at RCPT";
    std::string line = reply.substr(0, reply.find_first_of("\r\n"));
    if (!line.empty() && line[0] == '5') return pass(what, "RCPT TO:<" + address + ">: " + line);
    if (line.empty()) return fault(what, "no answer to RCPT TO:<" + address + ">", "check the ferry-smtpd log");
    if (line[0] == '4')
        return fault(what, "RCPT TO:<" + address + ">: " + line, "the account database could not be read: check the ferry-smtpd log");
    return fault(what, "RCPT TO:<" + address + "> was accepted: " + line,
                 "remove the catch-all alias @domain (ferry-admin alias list): accepting every address means "
                 "bouncing later to senders that spammers forge");
}

}  // namespace ferry::admin

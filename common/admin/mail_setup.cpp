// What this ferry offers a hosted domain: the MX name, the client ports from the listen keys, the DKIM key.
#include "common/admin/mail_setup.hpp"

#include <algorithm>
#include <cctype>

#include "common/mail/address.hpp"
#include "common/program/daemon.hpp"
#include "common/verify/dkim_store.hpp"

namespace ferry::admin {

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

std::string without_dot(std::string s) {
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
}

// The domain's active DKIM key (ferry-admin dkim generate), when it has one that can be read.
void add_dkim_key(const Config& config, MailSetup& s) {
    auto key = verify::dkim::load_active_key(config.str("dkim_key_dir"), s.domain);
    if (!key || !*key) return;
    auto p = (*key)->key.public_key_base64();
    if (!p) return;
    s.dkim_selector = (*key)->selector;
    s.dkim_public_key = *p;
    s.dkim_key_type = (*key)->key.algorithm() == verify::dkim::Algorithm::rsa_sha256 ? "rsa" : "ed25519";
}

}  // namespace

int listen_port(const std::string& listen_value, bool public_only) {
    auto items = split_list(listen_value);
    if (items.empty()) return 0;
    const std::string& first = items.front();
    size_t colon = first.rfind(':'), bracket = first.rfind(']');  // "[::1]:587": the colon after the bracket
    if (colon == std::string::npos || (bracket != std::string::npos && colon < bracket)) return 0;
    std::string host = first.substr(0, colon);
    if (public_only && (host.rfind("127.", 0) == 0 || host == "[::1]" || host == "localhost")) return 0;
    auto port = parse_integer(std::string_view(first).substr(colon + 1));
    return port && *port > 0 && *port < 65536 ? static_cast<int>(*port) : 0;
}

Result<MailSetup> mail_setup(const Config& config, const std::string& domain, std::vector<std::string> addresses) {
    MailSetup s;
    s.domain = lower(without_dot(domain));
    if (!valid_domain(s.domain)) return make_error(0, "", "not a domain name: " + domain);
    s.host = lower(without_dot(my_hostname(config)));
    if (!valid_domain(s.host)) return make_error(0, "", "hostname \"" + s.host + "\" is not a domain name; set hostname in ferry.conf");
    s.addresses = std::move(addresses);
    s.services = {
        {"submission", listen_port(config.str("smtpd_submission_listen"), true), false},
        {"submissions", listen_port(config.str("smtpd_smtps_listen"), true), true},
        {"imap", listen_port(config.str("imapd_listen"), true), false},
        {"imaps", listen_port(config.str("imapd_tls_listen"), true), true},
        {"pop3", listen_port(config.str("popd_listen"), true), false},
        {"pop3s", listen_port(config.str("popd_tls_listen"), true), true},
    };
    add_dkim_key(config, s);
    return s;
}

}  // namespace ferry::admin

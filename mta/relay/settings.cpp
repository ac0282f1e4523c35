// ferry-relay's settings, read from the configuration once at start (before privileges are dropped).
#include "mta/relay/settings.hpp"

#include <algorithm>
#include <cctype>

#include "common/mail/address.hpp"
#include "common/program/daemon.hpp"

namespace ferry::relay {

namespace {

double seconds(const Config& config, const char* key) {
    return static_cast<double>(std::max<int64_t>(1, config.duration(key).count()));
}

}  // namespace

Result<RelaySettings> relay_settings(const Config& config) {
    RelaySettings s;
    s.hostname = my_hostname(config);
    s.timeouts.connect = seconds(config, "relay_connect_timeout");
    s.timeouts.greeting = seconds(config, "relay_greeting_timeout");
    s.timeouts.mail = seconds(config, "relay_mail_timeout");
    s.timeouts.rcpt = seconds(config, "relay_rcpt_timeout");
    s.timeouts.data = seconds(config, "relay_data_timeout");
    s.timeouts.data_block = seconds(config, "relay_data_block_timeout");
    s.timeouts.data_done = seconds(config, "relay_data_done_timeout");
    s.reuse_time = static_cast<double>(config.duration("relay_connection_reuse_time").count());
    s.max_messages_per_connection =
        static_cast<size_t>(std::max<int64_t>(1, config.integer("relay_max_messages_per_connection")));
    auto fallback = parse_tls_policy(config.str("relay_tls_policy"));
    if (!fallback) return make_error(0, "", "relay_tls_policy: want none, may, encrypt or verify");
    auto map = TlsPolicyMap::load(config.str("relay_tls_policy_map"), *fallback);
    if (!map) return map.error();
    s.tls_policy = std::move(map.value());
    auto tls = TlsContext::client_context(config.str("relay_tls_ca_file"));
    if (!tls) return tls.error();
    s.tls = std::move(tls.value());
    auto passwords = PasswordMap::load(config.str("relayhost_password_file"));
    if (!passwords) return passwords.error();
    s.passwords = std::move(passwords.value());
    s.temp_dir = config.str("state_dir") + "/relay";
    s.dkim.enabled = config.boolean("dkim_sign");
    s.dkim.key_dir = config.str("dkim_key_dir");
    for (auto h : config.list("dkim_sign_headers")) {
        for (char& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        s.dkim.headers.push_back(std::move(h));
    }
    s.arc.enabled = config.boolean("arc_seal");
    s.arc.domain = config.str("arc_seal_domain");
    if (!s.arc.domain.empty() && !valid_domain(s.arc.domain)) return make_error(0, "", "arc_seal_domain: not a domain name");
    s.arc.authserv_id = s.hostname;
    s.arc.key_dir = s.dkim.key_dir;
    s.arc.headers = s.dkim.headers;
    return s;
}

}  // namespace ferry::relay

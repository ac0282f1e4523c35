// ferry.conf parsing, validation against the key table, and typed access.
#include "common/program/config.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "common/base/log.hpp"
#include "common/program/paths.hpp"

namespace ferry {

namespace {

const char* const kPrograms[] = {"smtpd", "qmgr", "relay", "mda", "popd", "imapd", "managesieve", "admin", "sendmail"};

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

Error config_error(const std::string& where, const std::string& why) {
    return make_error(0, "", where + ": " + why);
}

}  // namespace

const std::vector<KeyDef>& config_keys() {
    using K = KeyType;
    static const std::vector<KeyDef> keys = {
        // General
        {"hostname", "", K::string, nullptr},
        {"log_target", "stderr", K::choice, "stderr|syslog|both"},
        {"log_level", "info", K::choice, "debug|info|warning|error"},
        {"mail_user", "", K::string, nullptr},
        {"spool_dir", FERRY_SPOOL_DIR, K::path, nullptr},
        {"mail_dir", FERRY_MAIL_DIR, K::path, nullptr},
        {"run_dir", FERRY_RUN_DIR, K::path, nullptr},
        {"state_dir", FERRY_STATE_DIR, K::path, nullptr},
        {"account_db", FERRY_STATE_DIR "/accounts.db", K::path, nullptr},
        {"account_db_check_interval", "1s", K::duration, nullptr},
        {"message_size_limit", "10240000", K::size, nullptr},
        {"postmaster_address", "", K::string, nullptr},
        {"qmgr_socket", "${run_dir}/qmgr.sock", K::path, nullptr},
        {"submit_socket", "${run_dir}/submit.sock", K::path, nullptr},
        {"mda_socket", "${run_dir}/lmtp.sock", K::path, nullptr},
        {"relay_socket", "${run_dir}/relay.sock", K::path, nullptr},
        {"alias_max_depth", "10", K::integer, nullptr},
        {"alias_max_targets", "1000", K::integer, nullptr},
        {"recipient_delimiter", "+", K::string, nullptr},
        {"shutdown_timeout", "10s", K::duration, nullptr},
        {"batch_scheduling", "yes", K::boolean, nullptr},
        // TLS and authentication
        {"tls_cert_file", "", K::path, nullptr},
        {"tls_key_file", "", K::path, nullptr},
        {"tls_handshake_timeout", "30s", K::duration, nullptr},
        {"plaintext_auth", "loopback", K::choice, "never|loopback|always"},
        {"auth_failure_delay", "2s", K::duration, nullptr},
        {"auth_max_failures", "10", K::integer, nullptr},
        {"auth_failure_window", "10m", K::duration, nullptr},
        {"auth_max_queued", "64", K::integer, nullptr},
        {"auth_workers", "2", K::integer, nullptr},
        // ferry-smtpd
        {"smtpd_listen", "127.0.0.1:25", K::list, nullptr},
        {"smtpd_submission_listen", "", K::list, nullptr},
        {"smtpd_smtps_listen", "", K::list, nullptr},
        {"smtpd_timeout", "300s", K::duration, nullptr},
        {"smtpd_max_sessions", "1000", K::integer, nullptr},
        {"smtpd_max_sessions_per_ip", "50", K::integer, nullptr},
        {"smtpd_session_lifetime", "1h", K::duration, nullptr},
        {"smtpd_min_data_rate", "500", K::integer, nullptr},
        {"smtpd_max_command_length", "4096", K::size, nullptr},
        {"smtpd_max_line_length", "65536", K::size, nullptr},
        {"smtpd_max_header_size", "102400", K::size, nullptr},
        {"smtpd_max_recipients", "100", K::integer, nullptr},
        {"smtpd_max_received", "50", K::integer, nullptr},
        {"smtpd_relay_networks", "", K::string, nullptr},
        {"smtpd_max_errors", "20", K::integer, nullptr},
        {"smtpd_commit_threads", "8", K::integer, nullptr},
        {"smtpd_spf_policy", "record", K::choice, "off|record|reject_fail"},
        {"smtpd_spf_timeout", "20s", K::duration, nullptr},
        {"smtpd_check_workers", "2", K::integer, nullptr},
        {"attachment_policy", "reject", K::choice, "off|reject|strip"},
        {"attachment_policy_map", "", K::path, nullptr},
        {"attachment_refuse_extensions",
         "ade adp app application bat chm cmd com cpl exe hta inf ins isp jar jse js lib lnk mde msc msi msp mst "
         "pif ps1 reg scr sct shb shs sys vb vbe vbs vxd wsc wsf wsh",
         K::string, nullptr},
        {"attachment_refuse_types", "application/x-msdownload application/x-msdos-program application/x-ms-installer "
         "application/vnd.ms-word.document.macroenabled.12 application/vnd.ms-excel.sheet.macroenabled.12 "
         "application/vnd.ms-powerpoint.presentation.macroenabled.12",
         K::string, nullptr},
        {"attachment_max_archive_size", "20971520", K::size, nullptr},
        // ferry-smtpd: the spam check (ferry-smtpd(8), SPAM; ferry-spam-rules(5))
        {"spam_filter", "yes", K::boolean, nullptr},
        {"spam_rules_file", "", K::path, nullptr},
        {"spam_max_body_bytes", "256k", K::size, nullptr},
        {"spam_junk_score", "5.0", K::string, nullptr},  // ferry-mda files into Junk from this score on
        {"spam_reject_score", "", K::string, nullptr},
        {"spam_dnsbl_zones", "", K::list, nullptr},
        {"spam_score_relay_clients", "no", K::boolean, nullptr},
        {"spam_workers", "2", K::integer, nullptr},
        {"spam_timeout", "30s", K::duration, nullptr},
        {"spamd_address", "", K::string, nullptr},
        {"spamd_timeout", "15s", K::duration, nullptr},
        {"rspamd_address", "", K::string, nullptr},
        {"rspamd_timeout", "15s", K::duration, nullptr},
        // ferry-smtpd: the virus check (ferry-smtpd(8), VIRUSES)
        {"clamd_address", "", K::string, nullptr},
        {"clamd_timeout", "30s", K::duration, nullptr},
        {"clamd_workers", "4", K::integer, nullptr},
        {"virus_scan_fail_open", "no", K::boolean, nullptr},
        // ferry-mda: mail ferry-smtpd did not scan (ferry-mda(8), VIRUSES)
        {"mda_virus_action", "reject", K::choice, "reject|quarantine"},
        {"smtpd_dkim_verify", "yes", K::boolean, nullptr},
        {"smtpd_dkim_timeout", "20s", K::duration, nullptr},
        {"smtpd_arc_verify", "yes", K::boolean, nullptr},
        {"smtpd_dmarc", "record", K::choice, "off|record|reject"},
        {"dkim_key_dir", "${state_dir}/dkim", K::path, nullptr},
        {"dkim_sign", "yes", K::boolean, nullptr},
        {"dkim_sign_headers", "from, reply-to, subject, date, to, cc, resent-date, resent-from, resent-to, resent-cc, in-reply-to, references, list-id, list-help, list-unsubscribe, list-subscribe, list-post, list-owner, list-archive, message-id, mime-version, content-type, content-transfer-encoding", K::string, nullptr},
        {"arc_seal", "yes", K::boolean, nullptr},
        {"arc_seal_domain", "", K::string, nullptr},
        // ferry-smtpd: greylisting (ferry-smtpd(8), GREYLISTING)
        {"greylist", "no", K::boolean, nullptr},
        {"greylist_map", "", K::path, nullptr},
        {"greylist_delay", "5m", K::duration, nullptr},
        {"greylist_retry_window", "2d", K::duration, nullptr},
        {"greylist_expire", "35d", K::duration, nullptr},
        {"greylist_networks", "", K::string, nullptr},
        {"greylist_db", "${state_dir}/greylist/greylist.db", K::path, nullptr},
        {"greylist_max_entries", "100000", K::integer, nullptr},
        // ferry-qmgr
        {"qmgr_retry_schedule", "1m, 5m, 15m, 30m, 1h, 2h, 4h", K::duration_list, nullptr},
        {"qmgr_scan_interval", "5m", K::duration, nullptr},
        {"qmgr_max_deliveries", "20", K::integer, nullptr},
        {"qmgr_gather_delay_ms", "5", K::integer, nullptr},
        {"qmgr_commit_threads", "4", K::integer, nullptr},
        {"qmgr_lmtp_timeout", "10m", K::duration, nullptr},
        {"qmgr_relay_timeout", "1h", K::duration, nullptr},
        {"qmgr_lmtp_max_recipients", "100", K::integer, nullptr},
        {"qmgr_destination_concurrency", "20", K::integer, nullptr},
        {"qmgr_destination_rate_delay", "0", K::duration, nullptr},
        {"maximal_queue_lifetime", "5d", K::duration, nullptr},
        {"delay_warning_time", "4h", K::duration, nullptr},
        // ferry-relay: routing and DNS
        {"relayhost", "", K::string, nullptr},
        {"relay_transport_map", "", K::path, nullptr},
        {"relay_max_mx_hosts", "5", K::integer, nullptr},
        {"dns_servers", "", K::string, nullptr},
        {"dns_timeout", "10s", K::duration, nullptr},
        {"dns_cache_size", "10000", K::integer, nullptr},
        {"dns_cache_max_ttl", "1h", K::duration, nullptr},
        // ferry-mda
        {"mda_timeout", "10m", K::duration, nullptr},
        {"mda_max_sessions", "100", K::integer, nullptr},
        {"mda_max_recipients", "1000", K::integer, nullptr},
        {"mda_max_command_length", "4096", K::size, nullptr},
        {"mda_max_line_length", "65536", K::size, nullptr},
        {"quota_exceeded_temporary", "no", K::boolean, nullptr},
        {"maildir_tmp_max_age", "36h", K::duration, nullptr},
        {"mda_workers", "4", K::integer, nullptr},
        {"mda_commit_threads", "4", K::integer, nullptr},
        {"mda_delivery_record_lifetime", "6d", K::duration, nullptr},
        {"mda_quota_dsn_allowance", "1M", K::size, nullptr},
        {"mda_filters", "", K::list, nullptr},
        {"mda_filter_timeout", "60s", K::duration, nullptr},
        // ferry-mda: Sieve at delivery (ferry-mda(8), SIEVE) and junk filing
        {"sieve_before", "", K::path, nullptr},
        {"sieve_after", "", K::path, nullptr},
        {"sieve_max_script_size", "1M", K::size, nullptr},
        {"sieve_max_nesting", "32", K::integer, nullptr},
        {"sieve_max_actions", "32", K::integer, nullptr},
        {"sieve_max_redirects", "4", K::integer, nullptr},
        {"sieve_max_steps", "1000000", K::integer, nullptr},
        {"sieve_max_body_bytes", "1M", K::size, nullptr},
        {"sieve_duplicate_period", "12h", K::duration, nullptr},
        {"sieve_duplicate_max_period", "2d", K::duration, nullptr},
        {"sieve_duplicate_max_entries", "10000", K::integer, nullptr},
        {"spam_junk_score", "5.0", K::string, nullptr},
        {"spam_junk_score_map", "", K::path, nullptr},
        // ferry-mda: mail sent because of a user's Sieve rules (redirect, vacation), through submit_socket
        {"sieve_redirect_envelope_from", "sender", K::choice, "sender|recipient"},
        {"sieve_redirect_max_delivered_to", "10", K::integer, nullptr},
        {"sieve_vacation_max_entries", "1000", K::integer, nullptr},
        {"sieve_submit_timeout", "1m", K::duration, nullptr},
        // ferry-relay: the SMTP client
        {"relay_lmtp_timeout", "1h", K::duration, nullptr},
        {"relay_max_sessions", "100", K::integer, nullptr},
        {"relay_connect_timeout", "30s", K::duration, nullptr},
        {"relay_greeting_timeout", "5m", K::duration, nullptr},
        {"relay_mail_timeout", "5m", K::duration, nullptr},
        {"relay_rcpt_timeout", "5m", K::duration, nullptr},
        {"relay_data_timeout", "2m", K::duration, nullptr},
        {"relay_data_block_timeout", "3m", K::duration, nullptr},
        {"relay_data_done_timeout", "10m", K::duration, nullptr},
        {"relay_connection_reuse_time", "5s", K::duration, nullptr},
        {"relay_max_messages_per_connection", "100", K::integer, nullptr},
        {"relay_tls_policy", "may", K::choice, "none|may|encrypt|verify"},
        {"relay_tls_policy_map", "", K::path, nullptr},
        {"relay_tls_ca_file", "", K::path, nullptr},
        {"relayhost_password_file", "", K::path, nullptr},
        // ferry-popd
        {"popd_listen", "127.0.0.1:110", K::list, nullptr},
        {"popd_tls_listen", "", K::list, nullptr},
        {"popd_idle_timeout", "10m", K::duration, nullptr},
        {"popd_max_line_length", "512", K::size, nullptr},
        {"popd_max_sessions_per_ip", "10", K::integer, nullptr},
        {"popd_max_sessions", "1000", K::integer, nullptr},
        {"popd_session_lifetime", "2h", K::duration, nullptr},
        {"popd_command_deadline", "1m", K::duration, nullptr},
        {"popd_expire", "", K::string, nullptr},
        {"popd_login_delay", "0", K::duration, nullptr},
        {"popd_workers", "2", K::integer, nullptr},
        // ferry-imapd
        {"imapd_listen", "0.0.0.0:143", K::list, nullptr},
        {"imapd_tls_listen", "", K::list, nullptr},
        {"imapd_max_sessions", "1000", K::integer, nullptr},
        {"imapd_max_sessions_per_ip", "20", K::integer, nullptr},
        {"imapd_idle_timeout", "30m", K::duration, nullptr},
        {"imapd_command_deadline", "1m", K::duration, nullptr},
        {"imapd_session_lifetime", "0", K::duration, nullptr},
        {"imapd_spam_learn_command", "", K::string, nullptr},
        {"imapd_ham_learn_command", "", K::string, nullptr},
        {"imapd_learn_timeout", "30s", K::duration, nullptr},
        {"imapd_learn_processes", "2", K::integer, nullptr},
        // ferry-managesieve
        {"managesieve_listen", "0.0.0.0:4190", K::list, nullptr},
        {"managesieve_tls_listen", "", K::list, nullptr},
        {"managesieve_max_sessions", "1000", K::integer, nullptr},
        {"managesieve_max_sessions_per_ip", "10", K::integer, nullptr},
        {"managesieve_session_lifetime", "1h", K::duration, nullptr},
        {"managesieve_idle_timeout", "30m", K::duration, nullptr},
        {"managesieve_command_deadline", "1m", K::duration, nullptr},
        {"managesieve_max_line_length", "8192", K::size, nullptr},
        {"managesieve_max_script_size", "1M", K::size, nullptr},
        {"managesieve_max_scripts", "20", K::integer, nullptr},
        {"managesieve_max_errors", "20", K::integer, nullptr},
        // Test hooks: pause at a named point so crash tests can kill a daemon exactly there.
        {"test_pause_at", "", K::string, nullptr},
    };
    return keys;
}

// Daemons look keys up per message (most are left at their default): a hash, not a walk of the table.
const KeyDef* find_key(std::string_view name) {
    static const std::unordered_map<std::string_view, const KeyDef*> by_name = [] {
        std::unordered_map<std::string_view, const KeyDef*> m;
        for (const auto& k : config_keys()) m.emplace(k.name, &k);
        return m;
    }();
    auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : it->second;
}

bool is_program_name(std::string_view name) {
    return std::find(std::begin(kPrograms), std::end(kPrograms), name) != std::end(kPrograms);
}

std::optional<int64_t> parse_integer(std::string_view v) {
    v = trim(v);
    int64_t n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || p != v.data() + v.size() || v.empty()) return std::nullopt;
    return n;
}

static std::optional<uint64_t> scaled(std::string_view v, std::string_view units, const uint64_t* factors) {
    v = trim(v);
    if (v.empty()) return std::nullopt;
    uint64_t factor = 1;
    auto pos = units.find(v.back());
    if (pos != std::string_view::npos) {
        factor = factors[pos];
        v.remove_suffix(1);
    }
    uint64_t n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || p != v.data() + v.size() || v.empty()) return std::nullopt;
    if (n > UINT64_MAX / factor) return std::nullopt;
    return n * factor;
}

std::optional<uint64_t> parse_size(std::string_view v) {
    static const uint64_t f[] = {1024, 1024, 1024 * 1024, 1024 * 1024 * 1024ULL};
    return scaled(v, "kKMG", f);
}

std::optional<std::chrono::seconds> parse_duration(std::string_view v) {
    static const uint64_t f[] = {1, 60, 3600, 86400, 604800};
    auto n = scaled(v, "smhdw", f);
    if (!n || *n > (1ULL << 40)) return std::nullopt;
    return std::chrono::seconds(static_cast<int64_t>(*n));
}

std::optional<bool> parse_bool(std::string_view v) {
    v = trim(v);
    if (v == "yes" || v == "true" || v == "on" || v == "1") return true;
    if (v == "no" || v == "false" || v == "off" || v == "0") return false;
    return std::nullopt;
}

std::vector<std::string> split_list(std::string_view v) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : v) {
        if (c == ',' || std::isspace(static_cast<unsigned char>(c))) {
            if (!cur.empty()) out.push_back(std::move(cur));
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (!cur.empty()) out.push_back(std::move(cur));
    return out;
}

Result<void> validate_value(const KeyDef& key, std::string_view value) {
    auto bad = [&](const std::string& why) -> Result<void> {
        return make_error(0, "", "bad value \"" + std::string(value) + "\" for " + key.name + ": " + why);
    };
    // Values that reference other keys are checked after expansion by the typed getters' callers.
    if (value.find("${") != std::string_view::npos) return {};
    switch (key.type) {
        case KeyType::string:
        case KeyType::path:
        case KeyType::list:
            return {};
        case KeyType::integer:
            if (auto n = parse_integer(value); !n || *n < 0) return bad("expected a non-negative integer");
            return {};
        case KeyType::size:
            if (!parse_size(value)) return bad("expected a size in bytes, optionally with k, M or G");
            return {};
        case KeyType::duration:
            if (!parse_duration(value)) return bad("expected a duration such as 30s, 5m, 4h or 5d");
            return {};
        case KeyType::duration_list:
            for (const auto& item : split_list(value))
                if (!parse_duration(item)) return bad("expected durations such as 1m, 5m, 1h");
            return {};
        case KeyType::boolean:
            if (!parse_bool(value)) return bad("expected yes or no");
            return {};
        case KeyType::choice: {
            std::string_view choices = key.choices;
            size_t start = 0;
            while (start <= choices.size()) {
                size_t end = choices.find('|', start);
                if (end == std::string_view::npos) end = choices.size();
                if (choices.substr(start, end - start) == trim(value)) return {};
                start = end + 1;
            }
            return bad(std::string("expected one of ") + key.choices);
        }
    }
    return {};
}

namespace {
// ${} references one value may make in all, and the longest expansion: "a = ${a}${a}${a}" would
// otherwise grow exponentially with the depth (six references made 600 MB).
constexpr int kMaxReferences = 1000;
constexpr size_t kMaxExpanded = 65536;
}  // namespace

Result<Config> Config::parse(std::string_view text, const std::string& file, const std::string& program) {
    Config c = defaults(program);
    c.file_ = file;
    std::map<std::string, std::string, std::less<>> base, overrides;
    size_t lineno = 0;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) nl = text.size();
        std::string_view line = text.substr(pos, nl - pos);
        pos = nl + 1;
        ++lineno;
        std::string where = file + ":" + std::to_string(lineno);
        line = trim(line);
        if (line.empty() || line.front() == '#') continue;
        size_t eq = line.find('=');
        if (eq == std::string_view::npos) return config_error(where, "expected `key = value`");
        std::string_view name = trim(line.substr(0, eq));
        std::string_view value = trim(line.substr(eq + 1));
        std::string_view prefix;
        if (size_t dot = name.find('.'); dot != std::string_view::npos) {
            prefix = name.substr(0, dot);
            name = name.substr(dot + 1);
            if (!is_program_name(prefix))
                return config_error(where, "unknown program \"" + std::string(prefix) + "\" in \"" +
                                               std::string(prefix) + "." + std::string(name) + "\"");
        }
        const KeyDef* key = find_key(name);
        if (!key) return config_error(where, "unknown key \"" + std::string(name) + "\"");
        if (auto r = validate_value(*key, value); !r) return config_error(where, r.error().text);
        if (prefix.empty()) base[std::string(name)] = std::string(value);
        else if (prefix == program) overrides[std::string(name)] = std::string(value);
    }
    for (auto& [k, v] : base) c.values_[k] = v;
    for (auto& [k, v] : overrides) c.values_[k] = v;
    for (const auto& [k, v] : c.values_) {
        int budget = kMaxReferences;
        if (c.expand(v, 0, budget).size() > kMaxExpanded || budget < 0)
            return config_error(file, "\"" + k + "\" expands to too much: too many ${} references");
    }
    return c;
}

Result<Config> Config::load(const std::string& path, const std::string& program) {
    std::ifstream in(path);
    if (!in) return sys_error("cannot read configuration file " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    return parse(ss.str(), path, program);
}

Config Config::defaults(const std::string& program) {
    Config c;
    c.program_ = program;
    return c;
}

std::string Config::raw(std::string_view key) const {
    if (auto it = values_.find(key); it != values_.end()) return it->second;
    const KeyDef* def = find_key(key);
    if (!def) log::panic("program asked for unknown configuration key %.*s", static_cast<int>(key.size()), key.data());
    return def->default_value;
}

std::string Config::expand(const std::string& value, int depth, int& budget) const {
    if (depth > 8 || value.find("${") == std::string::npos) return value;
    std::string out;
    size_t pos = 0;
    while (pos < value.size()) {
        size_t start = value.find("${", pos);
        size_t end = start == std::string::npos ? std::string::npos : value.find('}', start);
        if (end == std::string::npos) {
            out += value.substr(pos);
            break;
        }
        out += value.substr(pos, start - pos);
        std::string name = value.substr(start + 2, end - start - 2);
        if (--budget < 0 || out.size() > kMaxExpanded) {
            budget = -1;
            break;
        }
        out += find_key(name) ? expand(raw(name), depth + 1, budget) : "";
        pos = end + 1;
    }
    return out;
}

std::string Config::str(std::string_view key) const {
    int budget = kMaxReferences;
    return expand(raw(key), 0, budget);
}

int64_t Config::integer(std::string_view key) const { return parse_integer(str(key)).value_or(0); }

uint64_t Config::size(std::string_view key) const { return parse_size(str(key)).value_or(0); }

std::chrono::seconds Config::duration(std::string_view key) const {
    return parse_duration(str(key)).value_or(std::chrono::seconds(0));
}

bool Config::boolean(std::string_view key) const { return parse_bool(str(key)).value_or(false); }

std::vector<std::string> Config::list(std::string_view key) const { return split_list(str(key)); }

std::vector<std::chrono::seconds> Config::durations(std::string_view key) const {
    std::vector<std::chrono::seconds> out;
    for (const auto& item : list(key))
        if (auto d = parse_duration(item)) out.push_back(*d);
    return out;
}

Result<void> Config::set(const std::string& key, const std::string& value) {
    const KeyDef* def = find_key(key);
    if (!def) return make_error(0, "", "unknown key \"" + key + "\"");
    if (auto r = validate_value(*def, value); !r) return r;
    values_[key] = value;
    return {};
}

bool Config::is_default(std::string_view key) const { return values_.find(key) == values_.end(); }

std::string Config::dump(bool only_set) const {
    std::string out;
    for (const auto& k : config_keys()) {
        if (only_set && is_default(k.name)) continue;
        out += std::string(k.name) + " = " + raw(k.name) + "\n";
    }
    return out;
}

}  // namespace ferry

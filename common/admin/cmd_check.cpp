// ferry-admin check: DNS (MX, SPF, DKIM, DMARC), the certificate, every listener, open relaying and the probes, each judged.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "common/admin/admin.hpp"
#include "common/admin/check_net.hpp"
#include "common/admin/check_probe.hpp"
#include "common/admin/dns_query.hpp"
#include "common/admin/mail_setup.hpp"
#include "common/admin/self_check.hpp"
#include "common/base/fd.hpp"
#include "common/event/net.hpp"
#include "common/program/daemon.hpp"

namespace ferry::admin {

namespace {

constexpr const char* kCheckHelp =
    "usage: ferry-admin check [domain] [--resolver IP[:PORT]] [--via HOST:PORT] [--probe ADDRESS]\n"
    "       [--probe-path in|out|both] [--probe-wait SECONDS] [--no-probe]\n"
    "Checks, from the outside in, that this host can receive and send mail for <domain> (each hosted\n"
    "domain when none is given), and prints for each fault what is wrong and how to fix it:\n"
    "  DNS: the domain's MX points at hostname; its SPF record covers this host; a DMARC record\n"
    "       exists; the DKIM record of the active selector publishes the key ferry holds;\n"
    "  TLS: tls_cert_file is valid for the MX name and does not expire within 14 days;\n"
    "  listeners: every configured port answers at the MX name's address with its greeting;\n"
    "  relay: port 25 refuses to relay for a stranger;\n"
    "  probe in: a message sent in to port 25 as another server sends it (STARTTLS when offered,\n"
    "       from this host's address) to postmaster@<domain> or --probe ADDRESS: an unknown user is\n"
    "       refused at RCPT, the probe arrives in the Maildir, and its Received: and\n"
    "       Authentication-Results: fields say what a receiver sees (TLS, SPF). --via sends it to\n"
    "       HOST:PORT instead of the MX name's address and smtpd_listen's port;\n"
    "  probe out: a message handed to ferry-relay, which sends it to the domain's MX found in DNS;\n"
    "       it must come back to the mailbox (each hop of its Received: trail is shown with the\n"
    "       time it took, and its Authentication-Results:), or the bounce's diagnostic is quoted.\n"
    "--probe-path chooses the probes: in, out or both (the default when ferry-relay listens at\n"
    "relay_socket, else in). --probe-wait is how long to wait for a probe in the mailbox (30 s);\n"
    "--no-probe leaves them out. --resolver asks that DNS server instead of dns_servers or\n"
    "/etc/resolv.conf. Exit status 0 when everything holds, 1 otherwise.\n";

// A fix of several lines (a record to publish) indented under "fix: ".
std::string indented(std::string text) {
    while (!text.empty() && text.back() == '\n') text.pop_back();
    for (size_t at = text.find('\n'); at != std::string::npos; at = text.find('\n', at + 1)) text.insert(at + 1, 10, ' ');
    return text;
}

struct Report {
    int ok = 0, failed = 0, skipped = 0;

    void add(const Verdict& v) {
        ++(v.ok ? ok : failed);
        printf("%s %s: %s\n", v.ok ? "ok  " : "FAIL", v.what.c_str(), v.detail.c_str());
        if (!v.ok) printf("     fix: %s\n", indented(v.fix).c_str());
        for (const auto& note : v.notes) printf("     %s\n", note.c_str());
    }
    // Not a fault, but something the administrator may want to change.
    void info(const std::string& what, const std::string& detail, const std::string& fix) {
        ++skipped;
        printf("info %s: %s\n     fix: %s\n", what.c_str(), detail.c_str(), indented(fix).c_str());
    }
    void skip(const std::string& what, const std::string& why) {
        ++skipped;
        printf("skip %s: %s\n", what.c_str(), why.c_str());
    }
};

struct Listener {
    const char* key;
    const char* service;
    const char* greeting;  // what the first line starts with; nullptr for implicit TLS (connect only)
};

constexpr Listener kListeners[] = {
    {"smtpd_listen", "SMTP", "220"},           {"smtpd_submission_listen", "submission", "220"},
    {"smtpd_smtps_listen", "SMTPS", nullptr},  {"popd_listen", "POP3", "+OK"},
    {"popd_tls_listen", "POP3S", nullptr},     {"imapd_listen", "IMAP", "* OK"},
    {"imapd_tls_listen", "IMAPS", nullptr},
};

void check_listeners(const Config& config, const std::string& host, const std::string& address, Report& report) {
    for (const auto& l : kListeners) {
        int port = listen_port(config.str(l.key));
        if (!port) continue;
        std::string what = std::string(l.service) + " answers at " + host + " (" + address + ") port " + std::to_string(port);
        Fd fd = connect_to(address, port, 5000);
        if (!fd.valid()) {
            report.add({false, what, std::string("cannot connect: ") + strerror(errno),
                        std::string("start the daemon, check ") + l.key + " and open the port in the firewall"});
            continue;
        }
        std::string greeting = l.greeting ? first_line(read_reply(fd.get(), 5000)) : "connected (TLS from the first byte)";
        bool ok = !l.greeting || greeting.rfind(l.greeting, 0) == 0;
        report.add({ok, what, greeting.empty() ? "no greeting within 5 s" : greeting,
                    ok ? "" : "something other than ferry answers there; check " + std::string(l.key)});
    }
}

// RCPT TO a stranger's address without AUTH must be refused: an open relay is abused within hours.
void check_relay(const Config& config, const std::string& host, const std::string& address, Report& report) {
    int port = listen_port(config.str("smtpd_listen"));
    if (!port) return;
    std::string what = "port " + std::to_string(port) + " refuses to relay for strangers";
    Fd fd = connect_to(address, port, 5000);
    if (!fd.valid()) return report.skip(what, "cannot connect");
    read_reply(fd.get(), 5000);
    std::string answer;
    for (const char* line : {"EHLO relay-check.invalid\r\n", "MAIL FROM:<check@relay-check.invalid>\r\n",
                             "RCPT TO:<check@relay-check.invalid>\r\n"}) {
        if (write(fd.get(), line, strlen(line)) < 0) break;
        answer = first_line(read_reply(fd.get(), 10000));
    }
    if (write(fd.get(), "QUIT\r\n", 6) < 0) {}
    bool refused = !answer.empty() && (answer[0] == '5' || answer[0] == '4');
    report.add({refused, what, answer.empty() ? "no answer to RCPT" : "RCPT TO a stranger: " + answer,
                refused ? "" : host + " relays for anyone: empty smtpd_relay_networks or narrow it"});
}

// The DKIM record of the active selector publishes the key ferry signs with.
void check_dkim(DnsClient& dns, const MailSetup& s, Report& report) {
    if (s.dkim_selector.empty())
        return report.info("DKIM of " + s.domain, "no key held: mail from it goes out unsigned",
                           "ferry-admin dkim generate " + s.domain + ", then publish the record it prints");
    std::string name = s.dkim_selector + "._domainkey." + s.domain;
    auto txt = dns.txt(name);
    if (!txt) return report.add({false, "DKIM record at " + name, txt.error().what(), "check the DNS server"});
    HeldDkimKey held{s.dkim_selector, s.dkim_key_type, s.dkim_public_key,
                     dkim_show_record(s.domain, s.dkim_selector, s.dkim_key_type, s.dkim_public_key)};
    report.add(judge_dkim(s.domain, held, *txt));
}

void check_domain(DnsClient& dns, const MailSetup& s, const std::vector<std::string>& host_addresses, Report& report) {
    auto mx = dns.mx(s.domain);
    if (!mx) return report.add({false, "MX of " + s.domain, mx.error().what(), "check the DNS server"});
    Verdict mx_verdict = judge_mx(s.domain, s.host, *mx);
    report.add(mx_verdict);
    auto spf = dns.txt(s.domain);
    auto domain_addresses = dns.addresses(s.domain);
    if (!spf) report.add({false, "SPF of " + s.domain, spf.error().what(), "check the DNS server"});
    else report.add(judge_spf(s.domain, s.host, host_addresses, mx_verdict.ok,
                              domain_addresses ? *domain_addresses : std::vector<std::string>{}, *spf));
    check_dkim(dns, s, report);
    auto dmarc = dns.txt("_dmarc." + s.domain);
    if (!dmarc) report.add({false, "DMARC of " + s.domain, dmarc.error().what(), "check the DNS server"});
    else report.add(judge_dmarc(s.domain, *dmarc));
}

std::string domain_of(const std::string& address) {
    size_t at = address.rfind('@');
    std::string d = at == std::string::npos ? "" : address.substr(at + 1);
    for (auto& c : d) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    return d;
}

// --via HOST:PORT ("[v6]:port" for IPv6) as an address and a port; HOST may be a name, asked of `dns`.
bool via_target(const std::string& via, DnsClient& dns, ProbePlan& plan) {
    size_t colon = via.rfind(':');
    if (colon == std::string::npos) return false;
    std::string host = via.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    auto port = parse_integer(via.substr(colon + 1));
    if (host.empty() || !port || *port <= 0 || *port > 65535) return false;
    plan.port = static_cast<int>(*port);
    if (host.find_first_not_of("0123456789.:abcdefABCDEF") == std::string::npos) return plan.address = host, true;
    auto found = dns.addresses(host);
    if (!found || found->empty()) return false;
    return plan.address = found->front(), true;
}

// The probe in for `domain`: into the MX name's address and port 25's listener, or --via.
void probe_in(const Context& ctx, const Args& args, DnsClient& dns, const std::vector<std::string>& host_addresses,
              ProbePlan plan, Report& report) {
    std::string what = "probe round trip to " + plan.recipient;
    if (args.via) {
        if (!via_target(*args.via, dns, plan)) return report.skip(what, "--via wants HOST:PORT, a host with an address");
    } else {
        plan.port = listen_port(ctx.config.str("smtpd_listen"));
        if (!plan.port) return report.skip(what, "smtpd_listen is empty: no port for mail from other servers");
        if (host_addresses.empty()) return report.skip(what, plan.host + " has no address; give --via HOST:PORT");
        plan.address = plan.source = host_addresses.front();
    }
    for (const auto& v : probe_round_trip(ctx.config, plan)) report.add(v);
}

// The probes for `domain`: in (as another server sends), out through ferry-relay and back, or both;
// both by default when ferry-relay listens, else in alone.
void probe(const Context& ctx, const Args& args, DnsClient& dns, const std::string& host,
           const std::vector<std::string>& host_addresses, const std::string& domain, Report& report) {
    ProbePlan plan{.host = host, .domain = domain, .recipient = args.probe ? *args.probe : "postmaster@" + domain};
    plan.relay_socket = ctx.config.str("relay_socket");
    std::string what = "probe round trip to " + plan.recipient;
    if (args.probe_wait) {
        auto secs = parse_integer(*args.probe_wait);
        if (!secs || *secs < 1 || *secs > 3600) return report.skip(what, "--probe-wait wants seconds, 1-3600");
        plan.wait = std::chrono::seconds(*secs);
    }
    bool relay_listens = net::connect_unix(plan.relay_socket).ok();
    std::string path = args.probe_path ? *args.probe_path : relay_listens ? "both" : "in";
    if (path != "out") probe_in(ctx, args, dns, host_addresses, plan, report);
    if (path == "in" && !args.probe_path)
        report.skip("probe out", "ferry-relay does not listen at " + plan.relay_socket + " (--probe-path out asks for it)");
    if (path != "in")
        for (const auto& v : probe_out(ctx.config, plan)) report.add(v);
}

std::vector<std::string> domains_to_check(const Context& ctx, const Args& args) {
    if (!args.words.empty()) return args.words;
    auto records = snapshot(ctx);
    return records ? list_domains(*records) : std::vector<std::string>{};
}

}  // namespace

int check_command(const Context& ctx, const Args& args) {
    if (args.help) return printf("%s", kCheckHelp), kExitOk;
    if (args.words.size() > 1) return fail(kExitUser, kCheckHelp);
    if (args.probe_path && *args.probe_path != "in" && *args.probe_path != "out" && *args.probe_path != "both")
        return fail(kExitUser, "--probe-path wants in, out or both");
    auto domains = domains_to_check(ctx, args);
    if (domains.empty()) return fail(kExitUser, "no domain to check: name one, or add one with ferry-admin domain add");
    auto dns = DnsClient::open(args.resolver ? *args.resolver : ctx.config.str("dns_servers"), std::chrono::seconds(3));
    if (!dns) return fail(kExitUser, dns.error().what());
    Report report;
    std::string host = my_hostname(ctx.config);
    auto addresses = dns->addresses(host);
    if (!addresses || addresses->empty())
        report.add({false, host + " has an address in DNS", addresses ? "no A or AAAA record" : addresses.error().what(),
                    "publish A/AAAA records for " + host + " (ferry-admin dns --address)"});
    for (const auto& d : domains) {
        auto setup = mail_setup(ctx.config, d, {});
        if (!setup) return fail(kExitUser, setup.error().what());
        check_domain(*dns, *setup, addresses ? *addresses : std::vector<std::string>{}, report);
    }
    report.add(judge_certificate(host, read_certificate(ctx.config.str("tls_cert_file"), host), time(nullptr)));
    if (addresses && !addresses->empty()) {
        check_listeners(ctx.config, host, addresses->front(), report);
        check_relay(ctx.config, host, addresses->front(), report);
    }
    if (args.no_probe) report.skip("probe round trip", "--no-probe");
    else
        for (const auto& d : args.probe ? std::vector<std::string>{domain_of(*args.probe)} : domains)
            probe(ctx, args, *dns, host, addresses ? *addresses : std::vector<std::string>{}, d, report);
    printf("check: %d ok, %d failed, %d skipped\n", report.ok, report.failed, report.skipped);
    return report.failed ? kExitUser : kExitOk;
}

}  // namespace ferry::admin

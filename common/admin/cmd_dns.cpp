// ferry-admin dns|autoconfig: what to publish for a hosted domain (DNS records, mail client settings).
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <fstream>

#include "common/admin/admin.hpp"
#include "common/admin/mail_setup.hpp"

namespace ferry::admin {

namespace {

constexpr const char* kDnsHelp =
    "usage: ferry-admin dns <domain> [--address IP]...\n"
    "Prints the records to publish for <domain>, ready to paste into its zone: MX (pointing at\n"
    "hostname), SPF, DKIM (once ferry holds a key), DMARC, MTA-STS, TLS-RPT and the RFC 6186 SRV\n"
    "records of the client services that ferry.conf's listen keys offer. --address gives the\n"
    "public addresses of hostname when its A/AAAA records belong in the same zone.\n";

constexpr const char* kAutoconfigHelp =
    "usage: ferry-admin autoconfig <domain> [--output DIR]\n"
    "Prints Thunderbird's config-v1.1.xml for <domain>, or writes it as DIR/mail/config-v1.1.xml\n"
    "for a web server to serve at https://autoconfig.<domain>/mail/config-v1.1.xml.\n";

// The id of an MTA-STS policy: when it was made, which changes whenever the advice is printed anew.
std::string policy_id() {
    char buf[32];
    time_t now = time(nullptr);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, sizeof buf, "%Y%m%dT%H%M%S", &tm);
    return buf;
}

Result<void> write_file(const std::string& dir, const std::string& text) {
    for (std::string d : {dir, dir + "/mail"})
        if (mkdir(d.c_str(), 0755) != 0 && errno != EEXIST) return sys_error("cannot create " + d);
    std::string path = dir + "/mail/config-v1.1.xml";
    std::ofstream out(path, std::ios::trunc);
    out << text;
    out.close();
    if (!out) return sys_error("cannot write " + path);
    printf("wrote %s\n", path.c_str());
    return {};
}

}  // namespace

int dns_command(const Context& ctx, const Args& args) {
    if (args.help) return printf("%s", kDnsHelp), kExitOk;
    if (args.words.size() != 1) return fail(kExitUser, kDnsHelp);
    auto setup = mail_setup(ctx.config, args.words[0], args.addresses);
    if (!setup) return fail(kExitUser, setup.error().what());
    fputs(dns_zone_text(*setup, policy_id()).c_str(), stdout);
    return kExitOk;
}

int autoconfig_command(const Context& ctx, const Args& args) {
    if (args.help) return printf("%s", kAutoconfigHelp), kExitOk;
    if (args.words.size() != 1) return fail(kExitUser, kAutoconfigHelp);
    auto setup = mail_setup(ctx.config, args.words[0], {});
    if (!setup) return fail(kExitUser, setup.error().what());
    std::string text = thunderbird_autoconfig(*setup);
    if (!args.output) return fputs(text.c_str(), stdout), kExitOk;
    if (auto r = write_file(*args.output, text); !r) return fail(kExitTemp, r.error().what());
    return kExitOk;
}

}  // namespace ferry::admin

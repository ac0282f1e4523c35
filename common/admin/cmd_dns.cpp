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
    "usage: ferry-admin autoconfig <domain> [--output DIR | --format thunderbird|apple|outlook]\n"
    "Prints Thunderbird's config-v1.1.xml for <domain> (--format: Apple's .mobileconfig profile or\n"
    "Outlook's autodiscover.xml instead), or writes all three under DIR for a web server to serve:\n"
    "DIR/mail/config-v1.1.xml (https://autoconfig.<domain>/mail/config-v1.1.xml),\n"
    "DIR/<domain>.mobileconfig (unsigned; users open it on Apple devices) and\n"
    "DIR/autodiscover/autodiscover.xml (the answer to Outlook's POST to\n"
    "https://autodiscover.<domain>/autodiscover/autodiscover.xml).\n";

// The id of an MTA-STS policy: when it was made, which changes whenever the advice is printed anew.
std::string policy_id() {
    char buf[32];
    time_t now = time(nullptr);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, sizeof buf, "%Y%m%dT%H%M%S", &tm);
    return buf;
}

// Writes `text` as dir/name, making the folders in `name` as needed.
Result<void> write_file(const std::string& dir, const std::string& name, const std::string& text) {
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return sys_error("cannot create " + dir);
    if (auto slash = name.find('/'); slash != std::string::npos) {
        std::string sub = dir + "/" + name.substr(0, slash);
        if (mkdir(sub.c_str(), 0755) != 0 && errno != EEXIST) return sys_error("cannot create " + sub);
    }
    std::string path = dir + "/" + name;
    std::ofstream out(path, std::ios::trunc);
    out << text;
    out.close();
    if (!out) return sys_error("cannot write " + path);
    printf("wrote %s\n", path.c_str());
    return {};
}

// Writes the three files under `dir`; the Apple profile is left out (with a warning) when it cannot be complete.
int write_all(const MailSetup& setup, const std::string& dir) {
    if (auto r = write_file(dir, "mail/config-v1.1.xml", thunderbird_autoconfig(setup)); !r)
        return fail(kExitTemp, r.error().what());
    if (auto apple = apple_mobileconfig(setup); !apple)
        fprintf(stderr, "ferry-admin: %s.mobileconfig not written: %s\n", setup.domain.c_str(), apple.error().what().c_str());
    else if (auto r = write_file(dir, setup.domain + ".mobileconfig", *apple); !r)
        return fail(kExitTemp, r.error().what());
    if (auto r = write_file(dir, "autodiscover/autodiscover.xml", outlook_autodiscover(setup)); !r)
        return fail(kExitTemp, r.error().what());
    return kExitOk;
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
    std::string format = args.format.value_or("thunderbird");
    if (args.words.size() != 1 || (args.output && args.format) ||
        (format != "thunderbird" && format != "apple" && format != "outlook"))
        return fail(kExitUser, kAutoconfigHelp);
    auto setup = mail_setup(ctx.config, args.words[0], {});
    if (!setup) return fail(kExitUser, setup.error().what());
    if (args.output) return write_all(*setup, *args.output);
    std::string text;
    if (format == "thunderbird") text = thunderbird_autoconfig(*setup);
    if (format == "outlook") text = outlook_autodiscover(*setup);
    if (format == "apple") {
        auto apple = apple_mobileconfig(*setup);
        if (!apple) return fail(kExitUser, apple.error().what());
        text = *apple;
    }
    fputs(text.c_str(), stdout);
    return kExitOk;
}

}  // namespace ferry::admin

// ferry-admin: manages domains, accounts, aliases and quotas in the account database, and the mail queue.
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "common/admin/admin.hpp"
#include "common/base/log.hpp"
#include "common/program/paths.hpp"

using namespace ferry;
using namespace ferry::admin;

namespace {

constexpr const char* kUsage =
    "usage: ferry-admin [-c ferry.conf] [-o key=value]... [-w seconds] <object> <verb> [args]\n"
    "  domain add <domain> [--utf8]              domain remove <domain> [--force]\n"
    "  domain list\n"
    "  account add <address> [--hash HASH] [--utf8]\n"
    "  account passwd <address> [--hash HASH]\n"
    "  account remove <address>                  account list [domain]\n"
    "  account verify <address>\n"
    "  alias add <address|@domain> <target>... [--utf8]\n"
    "  alias remove <address|@domain> [target]...\n"
    "  alias list [domain]                       quota set <address> <bytes> <messages>\n"
    "  lookup <address>                          config [-n]\n"
    "  queue list                                queue show <id>\n"
    "  queue flush [domain]                      queue hold|release|delete|requeue <id>\n"
    "  dns <domain> [--address IP]...            autoconfig <domain> [--output DIR | --format F]\n"
    "  check [domain] [--resolver IP[:PORT]] [--via HOST:PORT] [--probe ADDRESS]\n"
    "        [--probe-path in|out|both] [--probe-wait SECONDS] [--no-probe]\n"
    "                                            (each command with --help)\n"
    "  dkim generate <domain> [selector] [--ed25519] [--force]\n"
    "  dkim list                                 dkim show <domain> [selector]\n"
    "  dkim activate <domain> <selector>         (each with --help)\n"
    "Passwords are read from the terminal, or from the first line of standard input.\n";

int usage(int status) {
    fputs(kUsage, status == 0 ? stdout : stderr);
    return status;
}

// Splits what follows `<object> [verb]` into words and flags.
bool parse_args(char** begin, char** end, Args& args) {
    bool options = true;
    for (char** p = begin; p != end; ++p) {
        std::string a = *p;
        if (options && a == "--") options = false;
        else if (options && a == "--force") args.force = true;
        else if (options && a == "-n") args.only_set = true;
        else if (options && a == "--utf8") args.utf8 = true;
        else if (options && a == "--help") args.help = true;
        else if (options && a == "--ed25519") args.ed25519 = true;
        else if (options && a == "--address" && p + 1 != end) args.addresses.push_back(*++p);
        else if (options && a == "--output" && p + 1 != end) args.output = *++p;
        else if (options && a == "--format" && p + 1 != end) args.format = *++p;
        else if (options && a == "--resolver" && p + 1 != end) args.resolver = *++p;
        else if (options && a == "--via" && p + 1 != end) args.via = *++p;
        else if (options && a == "--probe" && p + 1 != end) args.probe = *++p;
        else if (options && a == "--no-probe") args.no_probe = true;
        else if (options && a == "--probe-wait" && p + 1 != end) args.probe_wait = *++p;
        else if (options && a == "--probe-path" && p + 1 != end) args.probe_path = *++p;
        else if (options && a == "--hash" && p + 1 != end) args.hash = *++p;
        else if (options && a.rfind("--hash=", 0) == 0) args.hash = a.substr(7);
        else if (options && a.size() > 1 && a[0] == '-') return false;
        else args.words.push_back(a);
    }
    return true;
}

int dispatch(const Context& ctx, const std::string& object, char** rest, char** end) {
    bool no_verb = object == "lookup" || object == "config" || object == "dns" || object == "autoconfig" || object == "check";
    std::string verb = (no_verb || rest == end) ? "" : *rest++;
    Args args;
    if (!parse_args(rest, end, args)) return usage(kExitUser);
    if (object == "domain") return domain_command(ctx, verb, args);
    if (object == "account") return account_command(ctx, verb, args);
    if (object == "alias") return alias_command(ctx, verb, args);
    if (object == "quota") return quota_command(ctx, verb, args);
    if (object == "lookup") return lookup_command(ctx, args);
    if (object == "queue") return queue_command(ctx, verb, args);
    if (object == "dns") return dns_command(ctx, args);
    if (object == "autoconfig") return autoconfig_command(ctx, args);
    if (object == "check") return check_command(ctx, args);
    if (object == "dkim") return dkim_command(ctx, verb, args);
    if (object == "config" && args.words.empty()) {
        std::cout << ctx.config.dump(args.only_set);
        return kExitOk;
    }
    return usage(kExitUser);
}

}  // namespace

int main(int argc, char** argv) {
    std::string config_path;
    std::vector<std::pair<std::string, std::string>> overrides;
    Context ctx;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; ++i) {
        std::string a = argv[i];
        if (a == "-h" || a == "--help") return usage(kExitOk);
        if (i + 1 >= argc) return usage(kExitUser);
        if (a == "-c") config_path = argv[++i];
        else if (a == "-w") {
            auto secs = parse_integer(argv[++i]);
            if (!secs || *secs < 0 || *secs > 86400) return fail(kExitUser, "bad -w value (seconds, 0-86400)");
            ctx.lock_wait = std::chrono::seconds(*secs);
        } else if (a == "-o") {
            std::string kv = argv[++i];
            auto eq = kv.find('=');
            if (eq == std::string::npos) return usage(kExitUser);
            overrides.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
        } else return usage(kExitUser);
    }
    if (i >= argc) return usage(kExitUser);
    if (config_path.empty()) config_path = getenv("FERRY_CONFIG") ? getenv("FERRY_CONFIG") : FERRY_CONFIG_FILE;
    auto cfg = Config::load(config_path, "admin");
    if (!cfg) return fail(kExitConfig, cfg.error().what());
    ctx.config = std::move(cfg.value());
    for (auto& [k, v] : overrides)
        if (auto r = ctx.config.set(k, v); !r) return fail(kExitUser, "-o " + k + ": " + r.error().what());
    log::init("ferry-admin", ctx.config.str("log_target"), ctx.config.str("log_level"));
    return dispatch(ctx, argv[i], argv + i + 1, argv + argc);
}

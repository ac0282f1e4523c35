// ferry-admin dkim: signing keys per domain (generate, list, show, activate) and the TXT record to publish.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "common/admin/admin.hpp"
#include "common/admin/mail_setup.hpp"
#include "common/base/fs.hpp"
#include "common/program/declaration.hpp"
#include "common/verify/dkim_store.hpp"

namespace ferry::admin {

namespace dkim = verify::dkim;

namespace {

constexpr const char* kHelp =
    "usage: ferry-admin dkim generate <domain> [selector] [--ed25519] [--force]\n"
    "       ferry-admin dkim list | show <domain> [selector] | activate <domain> <selector>\n"
    "generate makes a signing key (RSA 2048 bits, or Ed25519) under dkim_key_dir/<domain>/<selector>.key\n"
    "and prints the TXT record to publish; the selector defaults to fYYYYMM (this month). The first\n"
    "key of a domain becomes its active one; later ones wait for `activate` (see ferry-admin(8),\n"
    "Key rotation). --force replaces an existing key of that selector.\n";

// The key directory itself (FILES in ferry-admin(8)): root's, entered by mail_user's group.
const Declaration kDeclaration{
    .user = "mail_user",
    .directories = {{.key = "dkim_key_dir", .owner = Owner::root, .mode = 0750}},
    .sockets = {},
    .peers = {},
};

std::string default_selector() {
    char buf[16];
    time_t now = time(nullptr);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, sizeof buf, "f%Y%m", &tm);
    return buf;
}

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
}

// Gives `path` to root with mail_user's group, so that ferry-relay (as mail_user) can read it.
void give_to_mail_group(const Context& ctx, const std::string& path) {
    std::string user = ctx.config.str("mail_user");
    if (user.empty() || geteuid() != 0) return;
    if (const passwd* pw = getpwnam(user.c_str())) {
        if (chown(path.c_str(), 0, pw->pw_gid) != 0) fprintf(stderr, "ferry-admin: chown %s: %s\n", path.c_str(), strerror(errno));
    }
}

// The TXT record in zone-file form (dkim_show_record).
std::string txt_record(const std::string& domain, const std::string& selector, const dkim::PrivateKey& key) {
    auto p = key.public_key_base64();
    return dkim_show_record(domain, selector, key.algorithm() == dkim::Algorithm::rsa_sha256 ? "rsa" : "ed25519", p ? *p : "");
}

Result<void> write_key(const Context& ctx, const std::string& dir, const std::string& domain, const std::string& selector,
                       const std::string& pem) {
    if (auto r = create_directories(kDeclaration, ctx.config); !r) return r;
    std::string ddir = dkim::domain_dir(dir, domain);
    if (mkdir(ddir.c_str(), 0750) != 0 && errno != EEXIST) return sys_error("cannot create " + ddir);
    give_to_mail_group(ctx, ddir);
    std::string path = dkim::key_path(dir, domain, selector);
    if (auto r = write_file_durably(path, pem, 0640); !r) return r;
    give_to_mail_group(ctx, path);
    return {};
}

Result<void> set_active(const Context& ctx, const std::string& dir, const std::string& domain, const std::string& selector) {
    std::string path = dkim::domain_dir(dir, domain) + "/active";
    if (auto r = write_file_durably(path, selector + "\n", 0640); !r) return r;
    give_to_mail_group(ctx, path);
    return {};
}

int generate(const Context& ctx, const Args& args, bool ed25519) {
    if (args.words.empty() || args.words.size() > 2) return fail(kExitUser, kHelp);
    std::string domain = lower(args.words[0]);
    std::string selector = args.words.size() == 2 ? lower(args.words[1]) : default_selector();
    if (!valid_domain(domain)) return fail(kExitUser, "not a domain name: " + args.words[0]);
    if (!dkim::valid_selector(selector)) return fail(kExitUser, "not a selector (DNS labels): " + selector);
    std::string dir = ctx.config.str("dkim_key_dir");
    std::string path = dkim::key_path(dir, domain, selector);
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && !args.force)
        return fail(kExitUser, path + " exists; choose another selector, or --force to replace it");
    auto key = dkim::PrivateKey::generate(ed25519 ? dkim::Algorithm::ed25519_sha256 : dkim::Algorithm::rsa_sha256);
    if (!key) return fail(kExitTemp, key.error().what());
    auto pem = key->pem();
    if (!pem) return fail(kExitTemp, pem.error().what());
    if (auto r = write_key(ctx, dir, domain, selector, *pem); !r) return fail(kExitTemp, r.error().what());
    auto active = dkim::active_selector(dir, domain);
    bool first = active && active->empty();
    if (first)
        if (auto r = set_active(ctx, dir, domain, selector); !r) return fail(kExitTemp, r.error().what());
    printf("; key %s, %s\n", path.c_str(), first || (active && *active == selector) ? "active" : "not active yet");
    fputs(txt_record(domain, selector, *key).c_str(), stdout);
    return kExitOk;
}

int show(const Context& ctx, const Args& args) {
    if (args.words.empty() || args.words.size() > 2) return fail(kExitUser, kHelp);
    std::string dir = ctx.config.str("dkim_key_dir"), domain = lower(args.words[0]);
    std::string selector;
    if (args.words.size() == 2) selector = lower(args.words[1]);
    else if (auto a = dkim::active_selector(dir, domain); a) selector = *a;
    else return fail(kExitTemp, a.error().what());
    if (selector.empty()) return fail(kExitUser, "no active DKIM key for " + domain);
    auto key = dkim::load_key(dir, domain, selector);
    if (!key) return fail(kExitUser, key.error().what());
    fputs(txt_record(domain, selector, *key).c_str(), stdout);
    return kExitOk;
}

int list(const Context& ctx) {
    std::string dir = ctx.config.str("dkim_key_dir");
    for (const auto& domain : dkim::key_domains(dir)) {
        auto active = dkim::active_selector(dir, domain);
        for (const auto& selector : dkim::key_selectors(dir, domain)) {
            auto key = dkim::load_key(dir, domain, selector);
            const char* type = !key ? "unreadable" : key->algorithm() == dkim::Algorithm::rsa_sha256 ? "rsa" : "ed25519";
            printf("%s %s %s%s\n", domain.c_str(), selector.c_str(), type, active && *active == selector ? " active" : "");
        }
    }
    return kExitOk;
}

int activate(const Context& ctx, const Args& args) {
    if (args.words.size() != 2) return fail(kExitUser, kHelp);
    std::string dir = ctx.config.str("dkim_key_dir"), domain = lower(args.words[0]), selector = lower(args.words[1]);
    if (auto key = dkim::load_key(dir, domain, selector); !key) return fail(kExitUser, key.error().what());
    if (auto r = set_active(ctx, dir, domain, selector); !r) return fail(kExitTemp, r.error().what());
    printf("%s now signs with selector %s\n", domain.c_str(), selector.c_str());
    return kExitOk;
}

}  // namespace

int dkim_command(const Context& ctx, const std::string& verb, const Args& args) {
    if (args.help) return printf("%s", kHelp), kExitOk;
    if (verb == "generate") return generate(ctx, args, args.ed25519);
    if (verb == "show") return show(ctx, args);
    if (verb == "list" && args.words.empty()) return list(ctx);
    if (verb == "activate") return activate(ctx, args);
    return fail(kExitUser, kHelp);
}

}  // namespace ferry::admin

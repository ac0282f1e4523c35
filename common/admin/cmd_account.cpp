// ferry-admin account add|remove|list|passwd and quota set.
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "common/admin/admin.hpp"

namespace ferry::admin {

namespace {

// The hash to store: an imported one (--hash), or a yescrypt hash of a password read from tty/stdin.
Result<std::string> new_hash(const Args& args) {
    if (args.hash) return imported_hash(*args.hash);
    auto pw = read_password();
    if (!pw) return pw;
    auto hash = hash_password(*pw);
    std::memset(pw->data(), 0, pw->size());
    return hash;
}

int with_hash(const Context& ctx, const Args& args,
              const std::function<Result<void>(Records&, const std::string&, const std::string&)>& edit) {
    auto hash = new_hash(args);
    if (!hash) return fail(kExitUser, hash.error().what());
    return update(ctx, [&](Records& r) { return edit(r, args.words[0], *hash); });
}

int list(const Context& ctx, const std::string& domain) {
    auto r = snapshot(ctx);
    if (!r) return kExitTemp;
    for (const auto& a : list_accounts(*r, domain)) printf("%s\n", a.address.c_str());
    return kExitOk;
}

// Checks a password given on the terminal or stdin against the stored hash (as doveadm auth test).
int verify(const Context& ctx, const std::string& address) {
    auto store = open_account_db(ctx.config.str("account_db"));
    auto acc = store->account(address);
    if (!acc) return fail(kExitTemp, acc.error().what());
    if (!*acc) return fail(kExitUser, "no account " + normalize_address(address));
    auto pw = read_password(false);
    if (!pw) return fail(kExitUser, pw.error().what());
    bool ok = verify_password(*pw, (*acc)->password_hash);
    std::memset(pw->data(), 0, pw->size());
    if (!ok) return fail(kExitUser, "password does not match for " + (*acc)->address);
    printf("password matches for %s\n", (*acc)->address.c_str());
    return kExitOk;
}

}  // namespace

int account_command(const Context& ctx, const std::string& verb, const Args& args) {
    const auto& w = args.words;
    if (verb == "add" && w.size() == 1) {
        // Check the address and domain before asking for a password nobody can use.
        if (auto r = snapshot(ctx); !r) return kExitTemp;
        else if (auto a = hosted_address(*r, w[0], args.form()); !a) return fail(kExitUser, a.error().what());
        auto add = [&](Records& r, const std::string& a, const std::string& h) { return add_account(r, a, h, args.form()); };
        return with_hash(ctx, args, add);
    }
    if (verb == "passwd" && w.size() == 1) return with_hash(ctx, args, set_password);
    if (verb == "remove" && w.size() == 1)
        return update(ctx, [&](Records& r) { return remove_account(r, w[0]); });
    if (verb == "list" && w.size() <= 1) return list(ctx, w.empty() ? "" : w[0]);
    if (verb == "verify" && w.size() == 1) return verify(ctx, w[0]);
    if ((verb == "add" || verb == "passwd" || verb == "verify") && w.size() > 1)
        return fail(kExitUser, "passwords are never taken from the command line: give it on the terminal or "
                               "on standard input, or import a hash with --hash");
    return fail(kExitUser, "usage: ferry-admin account add|passwd <address> [--hash HASH], account remove <address>, "
                           "account verify <address>, or account list [domain]");
}

int quota_command(const Context& ctx, const std::string& verb, const Args& args) {
    const auto& w = args.words;
    if (verb != "set" || w.size() != 3)
        return fail(kExitUser, "usage: ferry-admin quota set <address> <bytes, e.g. 10M> <messages> (0 = unlimited)");
    auto bytes = parse_size(w[1]);
    if (!bytes) return fail(kExitUser, "bad size '" + w[1] + "' (a number of bytes, or with k, M or G)");
    auto messages = parse_integer(w[2]);
    if (!messages || *messages < 0) return fail(kExitUser, "bad message count '" + w[2] + "'");
    return update(ctx, [&](Records& r) {
        return set_quota(r, w[0], *bytes, static_cast<uint64_t>(*messages));
    });
}

}  // namespace ferry::admin

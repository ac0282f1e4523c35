// ferry-admin account add|remove|list|passwd and quota set.
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "common/admin/admin.hpp"
#include "common/auth/accounts_db.hpp"
#include "common/auth/scram.hpp"

namespace ferry::admin {

namespace {

struct Secrets {
    std::string hash;   // crypt(3)
    std::string scram;  // sasl::scram_encode(), empty for an imported hash
};

// What to store: an imported hash (--hash: no SCRAM keys, as the password is not known), or a
// yescrypt hash and SCRAM-SHA-256 keys of a password read from tty/stdin, which is then wiped.
Result<Secrets> new_secrets(const Args& args) {
    if (args.hash) {
        auto h = imported_hash(*args.hash);
        if (!h) return h.error();
        return Secrets{*h, {}};
    }
    auto pw = read_password();
    if (!pw) return pw.error();
    auto hash = hash_password(*pw);
    auto keys = sasl::scram_new(*pw);
    std::memset(pw->data(), 0, pw->size());
    if (!hash) return hash.error();
    if (!keys) return keys.error();
    return Secrets{*hash, sasl::scram_encode(*keys)};
}

// The account's SCRAM field, after `edit` wrote its hash: set, or cleared with an imported hash.
Result<void> set_scram(Records& r, const std::string& address, AddressForm form, const std::string& scram) {
    std::string a = normalize_address(address);
    if (auto hosted = hosted_address(r, address, form); hosted && r.count(accountdb::account_key(*hosted))) a = *hosted;
    auto it = r.find(accountdb::account_key(a));
    if (it == r.end()) return make_error(0, "", "no account " + a);
    auto acc = accountdb::decode_account(a, it->second);
    if (!acc) return acc.error();
    acc->scram = scram;
    it->second = accountdb::encode_account(*acc);
    return {};
}

int with_hash(const Context& ctx, const Args& args,
              const std::function<Result<void>(Records&, const std::string&, const std::string&)>& edit) {
    auto secrets = new_secrets(args);
    if (!secrets) return fail(kExitUser, secrets.error().what());
    return update(ctx, [&](Records& r) -> Result<void> {
        if (auto e = edit(r, args.words[0], secrets->hash); !e) return e;
        return set_scram(r, args.words[0], args.form(), secrets->scram);
    });
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

// ferry-admin alias add|remove|list, and lookup: what the database says about one address.
#include <cinttypes>
#include <cstdio>

#include "common/admin/admin.hpp"
#include "common/auth/aliases.hpp"

namespace ferry::admin {

namespace {

std::string joined(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
    return out;
}

const char* kind_of(const aliases::AddressInfo& info) {
    if (!info.hosted) return "external";
    if (info.account) return "account";
    if (!info.exact.empty()) return "alias";
    if (!info.catch_all.empty()) return "catch-all";
    return "unknown";
}

// A database failure is 75; an expansion refused (loop, limits) is the user's data: 1.
int expansion_error(const Error& e) { return fail(e.code == 451 ? kExitTemp : kExitUser, e.reply() + (e.detail.empty() ? "" : " (" + e.detail + ")")); }

}  // namespace

int alias_command(const Context& ctx, const std::string& verb, const Args& args) {
    const auto& w = args.words;
    if (verb == "add" && w.size() >= 2) {
        std::vector<std::string> targets(w.begin() + 1, w.end());
        return update(ctx, [&](Records& r) { return add_alias(r, w[0], targets, args.form()); });
    }
    if (verb == "remove" && !w.empty()) {
        std::vector<std::string> targets(w.begin() + 1, w.end());
        return update(ctx, [&](Records& r) { return remove_alias(r, w[0], targets); });
    }
    if (verb == "list" && w.size() <= 1) {
        auto r = snapshot(ctx);
        if (!r) return kExitTemp;
        for (const auto& [source, targets] : list_aliases(*r, w.empty() ? "" : w[0]))
            printf("%s: %s\n", source.c_str(), joined(targets).c_str());
        return kExitOk;
    }
    return fail(kExitUser, "usage: ferry-admin alias add <address|@domain> <target>..., "
                           "alias remove <address|@domain> [target]..., or alias list [domain]");
}

// Output, one "name value" per line: address, kind (account, alias, catch-all, external, unknown),
// quota <bytes> <messages> and forward <targets> for accounts, then one recipient line per final recipient.
int lookup_command(const Context& ctx, const Args& args) {
    if (args.words.size() != 1) return fail(kExitUser, "usage: ferry-admin lookup <address>");
    std::string address = normalize_address(args.words[0]);
    if (!valid_address(address, AddressForm::utf8)) return fail(kExitUser, "'" + args.words[0] + "' is not a valid address (local@domain)");
    auto store = open_account_db(ctx.config.str("account_db"));
    store->set_recipient_delimiter(ctx.config.str("recipient_delimiter"));  // answers as delivery would
    auto lookup = aliases::store_lookup(*store);
    auto info = lookup(address);
    if (!info) return expansion_error(info.error());
    printf("address %s\nkind %s\n", address.c_str(), kind_of(*info));
    if (info->account) {
        auto acc = recipient_account(*store, address);
        if (!acc || !*acc) return expansion_error(acc ? make_error(451, "4.3.0", "account vanished") : acc.error());
        printf("quota %" PRIu64 " %" PRIu64 "\n", (*acc)->quota_bytes, (*acc)->quota_messages);
        if (!info->exact.empty()) printf("forward %s\n", joined(info->exact).c_str());
    }
    if (!info->hosted || info->account || !info->exact.empty() || !info->catch_all.empty()) {
        aliases::Limits limits{static_cast<int>(ctx.config.integer("alias_max_depth")),
                               static_cast<size_t>(ctx.config.integer("alias_max_targets"))};
        auto rcpts = aliases::expand(address, lookup, limits);
        if (!rcpts) return expansion_error(rcpts.error());
        for (const auto& r : *rcpts) printf("recipient %s\n", r.c_str());
    }
    return kExitOk;
}

}  // namespace ferry::admin

// ferry-admin domain add|remove|list.
#include <cstdio>

#include "common/admin/admin.hpp"

namespace ferry::admin {

int domain_command(const Context& ctx, const std::string& verb, const Args& args) {
    const auto& w = args.words;
    if (verb == "add" && w.size() == 1)
        return update(ctx, [&](Records& r) { return add_domain(r, w[0], args.form()); });
    if (verb == "remove" && w.size() == 1)
        return update(ctx, [&](Records& r) { return remove_domain(r, w[0], args.force); });
    if (verb == "list" && w.empty()) {
        auto r = snapshot(ctx);
        if (!r) return kExitTemp;
        for (const auto& d : list_domains(*r)) printf("%s\n", d.c_str());
        return kExitOk;
    }
    return fail(kExitUser, "usage: ferry-admin domain add|remove <domain> [--force], or domain list");
}

}  // namespace ferry::admin

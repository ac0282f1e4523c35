// Alias expansion: a depth-first walk over alias entries with loop, depth and fan-out limits.
#include "common/auth/aliases.hpp"

#include <algorithm>
#include <set>

#include "common/mail/address.hpp"

namespace ferry::aliases {

namespace {

class Expander {
public:
    Expander(const Lookup& lookup, Limits limits, std::string root)
        : lookup_(lookup), limits_(limits), root_(std::move(root)) {}

    Result<std::vector<std::string>> run() {
        if (auto r = visit(root_, 0); !r) return r.error();
        if (out_.empty())
            return make_error(554, "5.4.6", "alias loop for <" + root_ + ">", "every expansion path of " + root_ + " loops");
        return std::move(out_);
    }

private:
    Result<void> visit(const std::string& address, int depth) {
        if (depth > limits_.max_depth)
            return make_error(554, "5.4.6", "alias expansion of <" + root_ + "> is nested too deeply",
                              "more than " + std::to_string(limits_.max_depth) + " levels at " + address);
        auto info = lookup_(address);
        if (!info) return info.error();
        if (std::find(path_.begin(), path_.end(), address) != path_.end())
            return info->account ? add_final(address) : Result<void>{};  // a loop: stops at an account
        if (!seen_.insert(address).second) return {};                    // met before on another branch
        if (!info->hosted) return add_final(address);
        if (!info->exact.empty()) return visit_all(address, info->exact, depth);
        if (info->account) return add_final(address);
        if (!info->catch_all.empty()) return visit_all(address, info->catch_all, depth);
        if (depth == 0) return make_error(550, "5.1.1", "<" + address + ">: user unknown");
        return add_final(address);  // a stale list member bounces alone at delivery
    }

    Result<void> visit_all(const std::string& address, const std::vector<std::string>& targets, int depth) {
        path_.push_back(address);
        for (const auto& t : targets)
            if (auto r = visit(normalize_address(t), depth + 1); !r) return r;
        path_.pop_back();
        return {};
    }

    Result<void> add_final(const std::string& address) {
        if (std::find(out_.begin(), out_.end(), address) != out_.end()) return {};
        if (out_.size() >= limits_.max_targets)
            return make_error(552, "5.5.3", "alias <" + root_ + "> has too many recipients",
                              "more than " + std::to_string(limits_.max_targets) + " targets");
        out_.push_back(address);
        return {};
    }

    const Lookup& lookup_;
    Limits limits_;
    std::string root_;
    std::vector<std::string> path_;  // the aliases being expanded, outermost first
    std::set<std::string> seen_;
    std::vector<std::string> out_;
};

}  // namespace

Result<std::vector<std::string>> expand(std::string_view address, const Lookup& lookup, Limits limits) {
    std::string root = normalize_address(address);
    // Either form: SMTP has already held the address to its transaction's form, ferry-admin to --utf8.
    // An address literal (RFC 5321 4.1.3) is never hosted: it passes through to the relay.
    if (is_address_literal(domain_of(root)) && parse_mailbox(root, AddressForm::utf8)) return std::vector<std::string>{root};
    if (!valid_address(root, AddressForm::utf8)) return make_error(501, "5.1.3", "bad address syntax <" + std::string(address) + ">");
    return Expander(lookup, limits, root).run();
}

Lookup store_lookup(AccountStore& store) {
    return [&store](const std::string& address) -> Result<AddressInfo> {
        AddressInfo info;
        std::string domain = domain_of(address);
        auto hosted = store.has_domain(domain);
        if (!hosted) return hosted.error();
        info.hosted = *hosted;
        if (!info.hosted) return info;
        auto account = store.account(address);
        if (!account) return account.error();
        info.account = account->has_value();
        auto exact = store.exact_alias(address);
        if (!exact) return exact.error();
        info.exact = std::move(exact.value());
        // RFC 5233: "user+tag" without an account of its own is user's: its account, and its alias
        // entry unless "user+tag" has one. The address itself stays the final recipient.
        if (auto base = subaddress_base(address, store.recipient_delimiter()); base && !info.account) {
            auto base_account = store.account(*base);
            if (!base_account) return base_account.error();
            info.account = base_account->has_value();
            if (info.exact.empty()) {
                auto base_exact = store.exact_alias(*base);
                if (!base_exact) return base_exact.error();
                info.exact = std::move(base_exact.value());
            }
        }
        auto catch_all = store.exact_alias("@" + domain);
        if (!catch_all) return catch_all.error();
        info.catch_all = std::move(catch_all.value());
        return info;
    };
}

Result<std::vector<std::string>> expand(std::string_view address, AccountStore& store, Limits limits) {
    return expand(address, store_lookup(store), limits);
}

}  // namespace ferry::aliases

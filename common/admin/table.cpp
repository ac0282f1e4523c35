// ferry-admin's edits of the account table in memory, with the checks that make each one safe.
#include <algorithm>

#include "common/admin/admin.hpp"

namespace ferry::admin {

namespace {

using accountdb::account_key;
using accountdb::alias_key;
using accountdb::domain_key;

Error user_error(std::string text) { return make_error(0, "", std::move(text)); }

bool has_prefix(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// Keys of one kind ("a:" or "l:") whose address is in `domain`; "@domain" counts as in it.
std::vector<std::string> keys_in_domain(const Records& r, std::string_view kind, const std::string& domain) {
    std::vector<std::string> out;
    for (auto it = r.lower_bound(kind); it != r.end() && has_prefix(it->first, kind); ++it)
        if (domain.empty() || domain_of(it->first) == domain) out.push_back(it->first);
    return out;
}

Result<std::string> valid_domain_arg(const std::string& domain, AddressForm form) {
    std::string d = normalize_address(domain);
    if (valid_domain(d, form)) return d;
    if (form == AddressForm::ascii && valid_domain(d, AddressForm::utf8))
        return user_error("'" + domain + "' is a UTF-8 domain name: add it with --utf8 (RFC 6531)");
    return user_error("'" + domain + "' is not a valid domain name");
}

Result<Account> existing_account(const Records& r, const std::string& address) {
    std::string a = normalize_address(address);
    auto it = r.find(account_key(a));
    if (it == r.end()) return user_error("no account " + a);
    return accountdb::decode_account(a, it->second);
}

}  // namespace

Result<std::string> hosted_address(const Records& r, const std::string& address, AddressForm form) {
    std::string a = normalize_address(address);
    bool catch_all = !a.empty() && a.front() == '@';
    auto valid = [&](AddressForm f) { return catch_all ? valid_domain(a.substr(1), f) : valid_address(a, f); };
    if (!valid(form) && form == AddressForm::ascii && valid(AddressForm::utf8))
        return user_error("'" + address + "' is a UTF-8 address: add it with --utf8 (RFC 6531)");
    if (!valid(form))
        return user_error("'" + address + "' is not a valid address (local@domain, or @domain for a catch-all)");
    std::string d = domain_of(a);
    if (!r.count(domain_key(d))) return user_error("domain " + d + " is not hosted; add it with: ferry-admin domain add " + d);
    return a;
}

Result<void> add_domain(Records& r, const std::string& domain, AddressForm form) {
    auto d = valid_domain_arg(domain, form);
    if (!d) return d.error();
    if (!r.emplace(domain_key(*d), "1").second) return user_error("domain " + *d + " is already hosted");
    return {};
}

Result<void> remove_domain(Records& r, const std::string& domain, bool force) {
    auto d = valid_domain_arg(domain, AddressForm::utf8);
    if (!d) return d.error();
    if (!r.count(domain_key(*d))) return user_error("domain " + *d + " is not hosted");
    auto accounts = keys_in_domain(r, "a:", *d), aliases = keys_in_domain(r, "l:", *d);
    if (!force && (!accounts.empty() || !aliases.empty()))
        return user_error("domain " + *d + " still has " + std::to_string(accounts.size()) + " account(s) and " +
                          std::to_string(aliases.size()) + " alias(es); remove them first, or use --force to remove them all");
    for (const auto& k : accounts) r.erase(k);
    for (const auto& k : aliases) r.erase(k);
    r.erase(domain_key(*d));
    return {};
}

std::vector<std::string> list_domains(const Records& r) {
    std::vector<std::string> out;
    for (auto it = r.lower_bound("d:"); it != r.end() && has_prefix(it->first, "d:"); ++it) out.push_back(it->first.substr(2));
    return out;
}

Result<void> add_account(Records& r, const std::string& address, const std::string& hash, AddressForm form) {
    auto a = hosted_address(r, address, form);
    if (!a) return a.error();
    if (a->front() == '@') return user_error("an account needs a local part: " + *a);
    if (r.count(account_key(*a))) return user_error("account " + *a + " already exists");
    Account acc;
    acc.address = *a;
    acc.password_hash = hash;
    r[account_key(*a)] = accountdb::encode_account(acc);
    return {};
}

Result<void> remove_account(Records& r, const std::string& address) {
    std::string a = normalize_address(address);
    if (!r.erase(account_key(a))) return user_error("no account " + a);
    return {};
}

Result<void> set_password(Records& r, const std::string& address, const std::string& hash) {
    auto acc = existing_account(r, address);
    if (!acc) return acc.error();
    acc->password_hash = hash;
    r[account_key(acc->address)] = accountdb::encode_account(*acc);
    return {};
}

Result<void> set_quota(Records& r, const std::string& address, uint64_t bytes, uint64_t messages) {
    auto acc = existing_account(r, address);
    if (!acc) return acc.error();
    acc->quota_bytes = bytes;
    acc->quota_messages = messages;
    r[account_key(acc->address)] = accountdb::encode_account(*acc);
    return {};
}

std::vector<Account> list_accounts(const Records& r, const std::string& domain) {
    std::vector<Account> out;
    for (const auto& k : keys_in_domain(r, "a:", normalize_address(domain)))
        if (auto acc = accountdb::decode_account(k.substr(2), r.at(k))) out.push_back(std::move(acc.value()));
    return out;
}

Result<void> add_alias(Records& r, const std::string& source, const std::vector<std::string>& targets,
                       AddressForm form) {
    auto s = hosted_address(r, source, form);
    if (!s) return s.error();
    if (targets.empty()) return user_error("alias add needs at least one target");
    std::vector<std::string> list;
    if (auto it = r.find(alias_key(*s)); it != r.end())
        if (auto old = accountdb::decode_targets(it->second)) list = std::move(old.value());
    for (const auto& t : targets) {
        std::string n = normalize_address(t);
        if (!valid_address(n, form)) return user_error("target '" + t + "' is not a valid address (local@domain)");
        if (std::find(list.begin(), list.end(), n) == list.end()) list.push_back(n);
    }
    r[alias_key(*s)] = accountdb::encode_targets(list);
    return {};
}

Result<void> remove_alias(Records& r, const std::string& source, const std::vector<std::string>& targets) {
    std::string s = normalize_address(source);
    auto it = r.find(alias_key(s));
    if (it == r.end()) return user_error("no alias " + s);
    if (targets.empty()) {
        r.erase(it);
        return {};
    }
    auto list = accountdb::decode_targets(it->second);
    if (!list) return list.error();
    for (const auto& t : targets) {
        auto pos = std::find(list->begin(), list->end(), normalize_address(t));
        if (pos == list->end()) return user_error("alias " + s + " has no target " + normalize_address(t));
        list->erase(pos);
    }
    if (list->empty()) r.erase(it);
    else it->second = accountdb::encode_targets(*list);
    return {};
}

std::vector<std::pair<std::string, std::vector<std::string>>> list_aliases(const Records& r, const std::string& domain) {
    std::vector<std::pair<std::string, std::vector<std::string>>> out;
    for (const auto& k : keys_in_domain(r, "l:", normalize_address(domain)))
        if (auto t = accountdb::decode_targets(r.at(k))) out.emplace_back(k.substr(2), std::move(t.value()));
    return out;
}

}  // namespace ferry::admin

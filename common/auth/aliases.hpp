// Alias expansion: from one recipient address to the final recipients mail for it goes to.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/auth/accounts.hpp"
#include "common/base/result.hpp"

namespace ferry::aliases {

// What expansion needs to know about one address (already normalized).
struct AddressInfo {
    bool hosted = false;                 // its domain is one of ours
    bool account = false;                // it has a mailbox
    std::vector<std::string> exact;      // targets of its own alias entry
    std::vector<std::string> catch_all;  // targets of "@domain", used only without account and exact entry
};
using Lookup = std::function<Result<AddressInfo>(const std::string& address)>;

struct Limits {
    int max_depth = 10;        // alias levels below the address asked for (alias_max_depth)
    size_t max_targets = 1000; // final recipients of one expansion (alias_max_targets)
};

// The rules, in order, for each address met:
//  - outside the hosted domains: final (external; the relay sends it on);
//  - with an exact alias entry: replaced by the entry's targets, even when it is also an account
//    (forwarding, as Postfix's virtual_alias_maps); list the account among its own targets to keep a copy;
//  - an account: final;
//  - else the domain's catch-all "@domain" when there is one: replaced by its targets;
//  - else unknown: for the address asked for, an Error 550 5.1.1; deeper in an expansion it stays in
//    the result as final, so only that member bounces at delivery instead of the whole list.
// An address met again on its own expansion path is a loop: an account stops there (is final),
// anything else contributes nothing; when nothing at all is left, the Error is 554 5.4.6.
// Duplicates appear once, in first-seen order. Too deep: 554 5.4.6; too many targets: 552 5.5.3.
Result<std::vector<std::string>> expand(std::string_view address, const Lookup& lookup, Limits limits);
Result<std::vector<std::string>> expand(std::string_view address, AccountStore& store, Limits limits);

// An AccountStore as a Lookup. With the store's recipient_delimiter (RFC 5233), an address without
// an account of its own takes its base address's account ("user+tag@d" counts as an account when
// "user@d" is one, and stays the final recipient as written), and its alias entry unless it has one.
Lookup store_lookup(AccountStore& store);

}  // namespace ferry::aliases

// Greylisting's pure decisions: the triplet of a delivery attempt, its record, and whether it passes now.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"
#include "common/event/net.hpp"
#include "common/program/config.hpp"

namespace ferry::smtpd {

// The times of greylisting, in seconds (greylist_delay, greylist_retry_window, greylist_expire).
struct GreylistTimes {
    int64_t delay = 300;           // a first-seen triplet waits this long before a retry passes
    int64_t retry_window = 172800;  // after the delay, a retry must come within this, or it starts over
    int64_t expire = 3024000;      // a passed triplet is remembered this long after its last message
};

// What is stored of one triplet (ferry-smtpd(8), GREYLISTING): "1\t<first seen>\t<passed>\t<last seen>",
// times in seconds since the epoch, <passed> 0 until a retry passed.
struct GreylistEntry {
    int64_t first_seen = 0;
    int64_t passed = 0;
    int64_t last_seen = 0;
};
std::string encode_greylist_entry(const GreylistEntry& e);
std::optional<GreylistEntry> decode_greylist_entry(std::string_view value);

// The client's part of a triplet: its IPv4 /24 or IPv6 /64 ("192.0.2.0/24", "2001:db8:1:2::/64"),
// since a sender's retries may come from another host of the same farm. An IPv4-mapped IPv6 address
// counts as IPv4; "" when `address` is not numeric.
std::string client_block(std::string_view address);
// The database key of (block, sender, recipient): "t:<block>\t<sender>\t<recipient>", addresses in
// lower case, "<>" for the null sender.
std::string triplet_key(std::string_view block, std::string_view sender, std::string_view recipient);

// What one attempt of one triplet gets.
struct GreylistVerdict {
    bool pass = false;
    int64_t wait = 0;              // when deferred: seconds until a retry passes
    std::string reason;            // for the log: "first seen", "retry too early", "retry after 312s", "known"
    GreylistEntry entry;           // the record after this attempt
    bool store = false;            // whether `entry` differs from the stored one
};
// The decision for a triplet whose record is `stored` (nullopt: never seen), at `now`.
GreylistVerdict greylist_decide(const std::optional<GreylistEntry>& stored, int64_t now, const GreylistTimes& t);
// Whether the record is still worth keeping at `now` (pruning drops the others).
bool greylist_alive(const GreylistEntry& e, int64_t now, const GreylistTimes& t);

// Why a message skips greylisting from what the checks before this one found (their header
// fields, "Name: value\n" each): "dmarc=pass" from our Authentication-Results field (SPF or DKIM
// aligned with the From: domain), "DNSWL_<zone>" from our X-Spam-Status field; "" when neither.
std::string greylist_known_good(std::string_view fields);

// greylist, greylist_map and the rest, read once at start.
struct GreylistSettings {
    bool fallback = false;                 // greylist: for domains not in the map
    std::map<std::string, bool> domains;   // greylist_map: lower-case recipient domain -> on
    GreylistTimes times;
    std::vector<net::Network> networks;    // greylist_networks: never greylisted
    std::string db_path;                   // greylist_db
    size_t max_entries = 100000;           // greylist_max_entries

    // Whether mail to `recipient` is greylisted.
    bool applies(std::string_view recipient) const;
    // Whether any domain at all is: otherwise ferry-smtpd opens no database and adds no check.
    bool any() const;

    static Result<GreylistSettings> from(const Config& config);
    // The greylist_map file's text: lines "domain yes|no", # comments; errors name the line.
    static Result<std::map<std::string, bool>> parse_map(std::string_view text);
};

}  // namespace ferry::smtpd

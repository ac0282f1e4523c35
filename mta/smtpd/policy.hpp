// ferry-smtpd's acceptance policy: which recipients and message sizes it takes, and the reply when not.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "common/auth/accounts.hpp"
#include "common/auth/aliases.hpp"
#include "common/base/result.hpp"
#include "common/smtp/smtp_proto.hpp"

namespace ferry::smtpd {

// Whether the authenticated account `user` (normalized) may use `sender` in MAIL FROM: its own
// address, or an address with an alias entry of its own (not a domain catch-all) whose expansion
// reaches `user`. The null sender is anyone's (bounces, vacation replies). An error only when a
// lookup failed; an address that expands to nothing usable is simply not owned.
Result<bool> sender_owned(std::string_view sender, std::string_view user, const aliases::Lookup& lookup,
                          const aliases::Limits& limits);

class Policy {
public:
    // message_size_limit: 0 means no limit.
    // postmaster: the address RCPT TO:<Postmaster> (no domain, RFC 5321 4.5.1) stands for.
    Policy(AccountStore& accounts, std::string postmaster, uint64_t message_size_limit,
           aliases::Limits alias_limits = {})
        : accounts_(accounts), postmaster_(std::move(postmaster)), size_limit_(message_size_limit),
          alias_limits_(alias_limits) {}

    // MAIL FROM of an authenticated client: fine when sender_owned(), else
    //   553 5.7.1 <sender>: Sender address rejected: not owned by user <user>;
    //   the account database failing -> 451 4.3.0.
    Result<void> sender(const smtp::Path& path, const std::string& user);

    // RCPT TO: the address to queue, or the reply:
    //   hosted domain, an account, an alias or under the domain's catch-all -> accepted (normalized);
    //   hosted domain, "user+tag" (recipient_delimiter) of an account or alias -> accepted as written;
    //   hosted domain, none of these                                        -> 550 5.1.1;
    //   hosted domain, an address valid_address() refuses (quoted local part) -> 553 5.1.3;
    //   an alias or catch-all whose expansion fails (loop, limits)          -> its 5xx (554 5.4.6, 552 5.5.3);
    //   any other domain, client not authenticated                          -> 554 5.7.1 (no open relay);
    //   the account database failing                                        -> 451 4.3.0.
    // A domain-less <Postmaster> (RFC 5321 4.5.1) means postmaster@<hostname>.
    // `form`: utf8 in a transaction with SMTPUTF8 (RFC 6531): a UTF-8 address is then looked up as
    // it stands (octet for octet, ASCII letters lower-cased; no Unicode normalisation).
    Result<std::string> recipient(const smtp::Path& path, bool authenticated, AddressForm form = AddressForm::ascii);

    // MAIL ... SIZE=n beyond message_size_limit -> 552 5.3.4 (RFC 1870).
    Result<void> declared_size(uint64_t size) const;

    // The DATA reader's message size limit; no limit reads as the largest size.
    uint64_t size_limit() const { return size_limit_ == 0 ? UINT64_MAX : size_limit_; }
    // The value EHLO advertises after SIZE (0: no fixed limit, RFC 1870).
    uint64_t advertised_size() const { return size_limit_; }

private:
    Result<std::string> expandable(const std::string& given, const std::string& address);

    AccountStore& accounts_;
    std::string postmaster_;
    uint64_t size_limit_;
    aliases::Limits alias_limits_;
};

}  // namespace ferry::smtpd

// What a Sieve script decides for a message: keep, fileinto, redirect, discard, reject, vacation, header edits.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ferry::sieve {

struct Vacation {
    std::string reason;
    std::string subject;  // :subject, else "Auto: " and the message's subject (RFC 5230 4.5)
    std::string from;     // :from, "" for the recipient's own address
    std::vector<std::string> addresses;  // :addresses
    bool mime = false;
    uint64_t days = 7;    // held between the RunLimits bounds
    std::string handle;   // :handle, else computed from reason, subject, from and mime (RFC 5230 4.2)
    std::string to;       // whom to answer: the envelope sender
    // Why no reply may go (RFC 5230 4.5-4.6: null or list sender, Auto-Submitted, Precedence,
    // List-*, the user not a visible recipient); empty when ferry-mda may answer, once per :days
    // for this handle and sender.
    std::string suppressed;
};

struct Action {
    enum class Type { keep, fileinto, redirect, discard, reject, ereject, vacation, addheader, deleteheader };
    Type type = Type::keep;
    std::string mailbox;              // fileinto; "INBOX" for keep
    std::vector<std::string> flags;   // keep, fileinto (RFC 5232)
    bool create = false;              // fileinto :create (RFC 5490)
    bool copy = false;                // fileinto, redirect :copy (RFC 3894)
    bool implicit = false;            // the implicit keep
    std::string address;              // redirect
    std::string text;                 // reject/ereject reason
    Vacation vacation;
    std::string field;                // addheader, deleteheader
    std::string value;                // addheader: UTF-8; ferry-mda encodes it (RFC 2047) when it writes the field
    bool last = false;                // addheader :last
    std::vector<size_t> occurrences;  // deleteheader: 1-based among that field's occurrences when it ran
};

// "keep" / "fileinto "Work" :flags \Seen" / ... one line per action, for tests and ferry-sieve.
std::string describe(const Action& action);

}  // namespace ferry::sieve

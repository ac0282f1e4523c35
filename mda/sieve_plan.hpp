// What ferry-mda does with a message once its Sieve scripts ran: folders, flags, header edits, junk filing (pure).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mda/sieve/actions.hpp"
#include "mda/sieve/interpreter.hpp"

namespace ferry::mda {

// One copy to store: the account's INBOX or one of its folders.
struct FolderCopy {
    std::string folder;     // "INBOX", or a folder name with '/' between levels
    std::string flags;      // Maildir info letters, sorted ("FS"); keywords are not stored at delivery
    bool create = false;    // fileinto :create (RFC 5490), or the Junk folder of the implicit keep
    bool implicit = false;  // the implicit keep
};

struct DeliveryPlan {
    std::vector<FolderCopy> copies;         // one per folder, in the order the script gave them
    std::optional<std::string> reject;      // reject/ereject: the reason (nothing is stored)
    std::vector<sieve::Action> redirects;   // redirect actions (:copy or not)
    std::vector<sieve::Vacation> vacations;
    std::vector<sieve::Action> edits;       // addheader/deleteheader, in the order they ran
    bool discard = false;                   // discard: nothing stored, and no error
    std::vector<sieve::DuplicateQuery> duplicates;  // ids to remember once the delivery succeeded (RFC 7352)
};

// The plain delivery: the implicit keep into INBOX (or into `junk` when given).
DeliveryPlan keep_plan(const std::optional<std::string>& junk = std::nullopt);

// The Maildir info letters of IMAP flags (RFC 5232 -> Maildir: \Seen S, \Flagged F, \Answered R,
// \Deleted T, \Draft D), sorted; keywords and unknown flags are left out.
std::string maildir_flags(const std::vector<std::string>& flags);

// The actions of the scripts run in sequence (site before scripts, the user's, site after scripts)
// as one list: the explicit actions of each in order, and one implicit keep at the end when no
// script cancelled it (with the last script's flags).
std::vector<sieve::Action> combine(const std::vector<sieve::Outcome>& outcomes);

// The plan for a list of actions. The implicit keep goes to `junk` (created when missing) when given;
// an explicit keep or fileinto goes where it says. Copies to one folder are one copy (flags joined).
DeliveryPlan make_plan(const std::vector<sieve::Action>& actions, const std::optional<std::string>& junk = std::nullopt);

// Adds INBOX to the plan (a plain redirect that could not be sent, a fileinto to a missing folder):
// its flags joined when INBOX is there already.
void add_inbox(DeliveryPlan& plan, const std::string& flags = {});

// The header section of `message` (LF line ends) after the edits, ending with its empty line, and
// the octets of the original header section it replaces (the body follows them).
struct EditedHeader {
    std::string header;
    size_t replaced = 0;
};
EditedHeader apply_edits(std::string_view message, const std::vector<sieve::Action>& edits);

// The value of the message's first X-Spam-Score field, when there is one and it is a number.
std::optional<double> spam_score(std::string_view message);

// True when an Authentication-Results field of `message` naming `authserv_id` (ours: ferry-smtpd
// drops such fields from outside) has a dmarc result with policy.dmarc=quarantine.
bool dmarc_quarantined(std::string_view message, std::string_view authserv_id);

// "example.org 7.5" lines (blank lines and '#' comments skipped): the score of `domain`, nullopt when
// the map has no line for it.
std::optional<double> junk_threshold_of(std::string_view map_text, std::string_view domain);

}  // namespace ferry::mda

// The attachment policy shared by ferry-smtpd (reject) and ferry-mda (strip): settings per recipient domain, the scan of a message, the note that replaces a refused part.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"
#include "common/mail/attachments.hpp"

namespace ferry {
class Config;
}

namespace ferry::mail {

// off: let every file through; reject: ferry-smtpd refuses the message (550 5.7.1); strip:
// accepted, and ferry-mda replaces each refused file by a text/plain note.
enum class AttachmentPolicy { off, reject, strip };

std::optional<AttachmentPolicy> parse_attachment_policy(std::string_view word);
const char* attachment_policy_name(AttachmentPolicy p);

// attachment_policy and its per-domain overrides (attachment_policy_map: "domain off|reject|strip").
struct AttachmentSettings {
    AttachmentPolicy fallback = AttachmentPolicy::reject;
    std::map<std::string, AttachmentPolicy> domains;  // lower-case recipient domain -> policy
    AttachmentRules rules;                            // attachment_refuse_extensions, _types
    uint64_t max_archive_size = 20 << 20;             // attachment_max_archive_size: larger zips are not opened
    // The policy for mail to `address` (by its domain).
    AttachmentPolicy policy_for(std::string_view address) const;
    // Whether any recipient's domain rejects: the strictest recipient decides for the whole
    // message (one DATA has one answer).
    bool applies(const std::vector<std::string>& recipients) const;
    // Whether mail to `address` has its refused files replaced at delivery.
    bool strips(std::string_view address) const { return !rules.empty() && policy_for(address) == AttachmentPolicy::strip; }

    static Result<AttachmentSettings> from(const Config& config);
    // The map file's text; errors name the line.
    static Result<std::map<std::string, AttachmentPolicy>> parse_map(std::string_view text);
};

// Up to `len` bytes of a message from `at`; 0 at its end.
using MessageReader = std::function<Result<size_t>(uint64_t at, char* buf, size_t len)>;

// A refused file part: its octets [start, end) in the message (its header section up to
// header_end, then its body up to the line end before the next boundary), and why.
struct RefusedPart {
    uint64_t start = 0, header_end = 0, end = 0;
    Attachment file;  // the part itself (name and type), also when the refused file is inside it
    std::string why;  // "attachment \"x.exe\" (extension .exe)", "\"a.exe\" in archive \"b.zip\" (...)"
};

// What the scan of a message found: the refused files, and zips it could not read (logged).
struct AttachmentScan {
    std::optional<std::string> refused;  // why the first refused file is
    std::vector<RefusedPart> parts;      // with `every`: each refused part, in message order
    std::vector<std::string> unread;     // "b.zip: unreadable zip archive: ..."
};
// Reads the message in pieces (its MIME structure, then each zip part's body, decoded, within
// max_archive_size): never the whole message in memory. Stops at the first refused file unless
// `every`, and once the structure is settled with no file in it (a plain text message is read
// only as far as its first piece). Blocking: for a worker thread.
Result<AttachmentScan> scan_attachments(const MessageReader& read, const AttachmentSettings& s, bool every = false);
// True when the message's first piece (one read of at most 16 KB) settles its structure with no
// file in it: scan_attachments would find nothing. Cheap enough for an event loop.
Result<bool> settled_without_files(const MessageReader& read);

// The part that takes a refused one's place: the fields of its header section other than
// Content-* kept as written, a text/plain Content-Type (UTF-8, 7bit or 8bit), then the note naming
// the file, its type, why and `policy`. Line ends as in `header`; no line end after the last line
// unless `final_newline` (the line end before the next boundary stays where it was).
std::string replacement_part(std::string_view header, const RefusedPart& part, std::string_view policy,
                             bool final_newline);

}  // namespace ferry::mail

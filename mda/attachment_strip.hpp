// attachment_policy strip at delivery (ferry-mda(8), ATTACHMENTS): the message with each refused file replaced by a note.
#pragma once

#include <optional>
#include <string>

#include "common/base/result.hpp"
#include "common/mail/attachment_policy.hpp"
#include "mda/delivery.hpp"

namespace ferry::mda {

// The message of `src` with each part the rules refuse (by extension, type, or a refused name in a
// zip) replaced by mail::replacement_part, every other octet as it was, in a memory file; nullopt
// when nothing is refused (the message is stored as it came). What was replaced, and zips that
// could not be read, are logged under `qid`.
// Blocking: for a worker thread.
Result<std::optional<Deliverer::Source>> strip_attachments(const mail::AttachmentSettings& settings,
                                                           const Deliverer::Source& src, const std::string& qid);

}  // namespace ferry::mda

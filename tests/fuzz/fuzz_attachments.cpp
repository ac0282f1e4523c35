// Fuzz target: the zip central directory reader and the list of a message's files, with the attachment rules.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/mail/attachments.hpp"
#include "common/mail/mime.hpp"

using namespace ferry::mail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    static const AttachmentRules rules = AttachmentRules::parse("exe js scr", "application/x-msdownload application/vnd.ms-*");
    // The input as an archive, and as a message whose parts are checked, zip entries included.
    if (auto names = zip_entry_names(in, 1000))
        for (const auto& n : *names) (void)refused_attachment({n, "", "a.zip"}, rules);
    MimeLimits limits;
    limits.max_parts = 200;
    MimePart root = parse_mime(in, limits);
    for (const auto& f : file_parts(root)) {
        (void)refused_attachment(f.attachment, rules);
        if (is_zip(f.attachment) && f.part->body.offset <= in.size() &&
            f.part->body.size <= in.size() - f.part->body.offset)
            (void)zip_entry_names(in.substr(f.part->body.offset, f.part->body.size), 1000);
    }
    return 0;
}

// What files a message carries (named MIME parts, and the entries of zip archives one level deep) and the policy that refuses some of them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"
#include "common/mail/mime.hpp"

namespace ferry::mail {

// One file of a message: a MIME part with a name or a type that is not text, or an entry of a zip
// archive attached to it.
struct Attachment {
    std::string name;          // the file name (Content-Disposition filename, else Content-Type name), UTF-8; may be ""
    std::string content_type;  // "type/subtype", lower case; "" for a zip entry
    std::string archive;       // the name of the zip archive it is in, "" for a part
};

// The parts of `root` that are files: leaves with a file name, or whose type is not text,
// multipart or message. Their entries are not opened here (see zip_entry_names).
struct FilePart {
    const MimePart* part;
    Attachment attachment;
};
std::vector<FilePart> file_parts(const MimePart& root);

// Whether a part is (probably) a zip archive: by name (.zip) or type (application/zip,
// application/x-zip-compressed).
bool is_zip(const Attachment& a);

// The names in a zip archive's central directory (APPNOTE 4.3.12-4.3.16, ZIP64 included), read
// from the end of the archive as unzip does. At most `max_entries`; an archive whose directory
// cannot be found or read is an error (the caller decides what that means).
Result<std::vector<std::string>> zip_entry_names(std::string_view zip, size_t max_entries = 10000);

// Which files a domain refuses: file name extensions (lower case, without the dot) and content
// types ("application/x-msdownload", or "type/*"; a type matches a part only, an extension any file).
struct AttachmentRules {
    std::vector<std::string> extensions;
    std::vector<std::string> content_types;
    bool empty() const { return extensions.empty() && content_types.empty(); }
    // "exe scr js" and "application/x-msdownload application/vnd.ms-*" as the config keys give
    // them (space- or comma-separated).
    static AttachmentRules parse(std::string_view extensions, std::string_view content_types);
};

// Why `a` is refused, or nullopt: "attachment \"x.exe\" (extension .exe)", "\"a.exe\" in archive \"b.zip\"".
std::optional<std::string> refused_attachment(const Attachment& a, const AttachmentRules& rules);

}  // namespace ferry::mail

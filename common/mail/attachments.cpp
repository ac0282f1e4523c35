// What files a message carries (named MIME parts, and the entries of zip archives one level deep) and the policy that refuses some of them.
#include "common/mail/attachments.hpp"

#include <algorithm>
#include <cstring>

#include "common/mail/mime_decode.hpp"

namespace ferry::mail {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

void collect(const MimePart& p, std::vector<FilePart>& out) {
    for (const auto& c : p.children) collect(c, out);
    if (!p.children.empty() || p.is_multipart() || p.is_message()) return;
    std::string name;
    if (const MimeParam* fn = nullptr; p.disposition) {
        for (const auto& d : p.disposition_params)
            if (d.name == "filename") fn = &d;
        if (fn) name = fn->decoded;
    }
    if (name.empty())
        if (const MimeParam* n = p.param("name")) name = n->decoded;
    // RFC 2047 words in a parameter are not standard, but every mail client writes them.
    if (name.find("=?") != std::string::npos) name = decode_header_value(name);
    if (name.empty() && p.type == "text") return;
    out.push_back({&p, Attachment{name, p.type + "/" + p.subtype, ""}});
}

uint16_t le16(std::string_view z, size_t at) {
    return static_cast<uint16_t>(static_cast<unsigned char>(z[at]) | static_cast<unsigned char>(z[at + 1]) << 8);
}
uint32_t le32(std::string_view z, size_t at) { return le16(z, at) | static_cast<uint32_t>(le16(z, at + 2)) << 16; }
uint64_t le64(std::string_view z, size_t at) { return le32(z, at) | static_cast<uint64_t>(le32(z, at + 4)) << 32; }

Error bad_zip(const std::string& why) { return make_error(0, "", "unreadable zip archive: " + why); }

// The last name segment's extension after the final dot, lower case; names like "a.exe." and
// "a.exe " count as ".exe", as Windows reads them.
std::string extension_of(std::string_view name) {
    size_t slash = name.find_last_of("/\\");
    if (slash != std::string_view::npos) name.remove_prefix(slash + 1);
    while (!name.empty() && (name.back() == '.' || name.back() == ' ')) name.remove_suffix(1);
    size_t dot = name.rfind('.');
    if (dot == std::string_view::npos) return "";
    return lower(name.substr(dot + 1));
}

std::vector<std::string> words(std::string_view list) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < list.size()) {
        while (i < list.size() && (list[i] == ' ' || list[i] == ',' || list[i] == '\t')) ++i;
        size_t start = i;
        while (i < list.size() && list[i] != ' ' && list[i] != ',' && list[i] != '\t') ++i;
        if (i > start) out.push_back(lower(list.substr(start, i - start)));
    }
    return out;
}

}  // namespace

std::vector<FilePart> file_parts(const MimePart& root) {
    std::vector<FilePart> out;
    collect(root, out);
    return out;
}

bool is_zip(const Attachment& a) {
    return extension_of(a.name) == "zip" || a.content_type == "application/zip" ||
           a.content_type == "application/x-zip-compressed" || a.content_type == "application/x-zip";
}

Result<std::vector<std::string>> zip_entry_names(std::string_view z, size_t max_entries) {
    constexpr size_t kEocd = 22;
    if (z.size() < kEocd) return bad_zip("too short");
    // The end record is in the last 64 KiB + 22 octets (its comment is at most 65535 octets).
    size_t lowest = z.size() > kEocd + 65535 ? z.size() - kEocd - 65535 : 0;
    size_t eocd = std::string_view::npos;
    for (size_t at = z.size() - kEocd + 1; at-- > lowest;)
        if (le32(z, at) == 0x06054b50 && at + kEocd + le16(z, at + 20) == z.size()) {
            eocd = at;
            break;
        }
    if (eocd == std::string_view::npos) return bad_zip("no end of central directory");
    uint64_t entries = le16(z, eocd + 10);
    uint64_t cd_size = le32(z, eocd + 12);
    uint64_t cd_end = eocd;
    if (entries == 0xffff || cd_size == 0xffffffff || le32(z, eocd + 16) == 0xffffffff) {
        // ZIP64: the locator right before the end record points at the ZIP64 end record.
        if (eocd < 20 || le32(z, eocd - 20) != 0x07064b50) return bad_zip("ZIP64 locator missing");
        uint64_t at = le64(z, eocd - 20 + 8);
        if (at > z.size() || z.size() - at < 56 || le32(z, static_cast<size_t>(at)) != 0x06064b50)
            return bad_zip("ZIP64 end record missing");
        entries = le64(z, static_cast<size_t>(at) + 32);
        cd_size = le64(z, static_cast<size_t>(at) + 40);
        cd_end = at;
    }
    // The directory ends where the end records start; counting back from there (rather than
    // trusting its offset) also reads archives with data in front, such as self-extractors.
    if (cd_size > cd_end) return bad_zip("central directory larger than the archive");
    size_t pos = static_cast<size_t>(cd_end - cd_size);
    std::vector<std::string> names;
    for (uint64_t i = 0; i < entries; ++i) {
        if (names.size() == max_entries) return bad_zip("more than " + std::to_string(max_entries) + " entries");
        if (cd_end - pos < 46 || le32(z, pos) != 0x02014b50) return bad_zip("damaged central directory");
        size_t name_len = le16(z, pos + 28), extra = le16(z, pos + 30), comment = le16(z, pos + 32);
        if (cd_end - pos - 46 < name_len + extra + comment) return bad_zip("damaged central directory");
        names.emplace_back(z.substr(pos + 46, name_len));
        pos += 46 + name_len + extra + comment;
    }
    return names;
}

AttachmentRules AttachmentRules::parse(std::string_view extensions, std::string_view content_types) {
    AttachmentRules r;
    for (auto& e : words(extensions)) r.extensions.push_back(e.starts_with('.') ? e.substr(1) : e);
    r.content_types = words(content_types);
    return r;
}

std::optional<std::string> refused_attachment(const Attachment& a, const AttachmentRules& rules) {
    std::string where = a.archive.empty() ? "attachment \"" + a.name + "\""
                                          : "\"" + a.name + "\" in archive \"" + a.archive + "\"";
    std::string ext = extension_of(a.name);
    if (!ext.empty() && std::find(rules.extensions.begin(), rules.extensions.end(), ext) != rules.extensions.end())
        return where + " (extension ." + ext + ")";
    if (!a.archive.empty() || a.content_type.empty()) return std::nullopt;
    for (const auto& t : rules.content_types) {
        bool match = t.ends_with("*") ? a.content_type.starts_with(std::string_view(t).substr(0, t.size() - 1))
                                      : a.content_type == t;
        if (match) return where + " (type " + a.content_type + ")";
    }
    return std::nullopt;
}

}  // namespace ferry::mail

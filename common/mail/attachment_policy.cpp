// The attachment policy shared by ferry-smtpd (reject) and ferry-mda (strip): settings per recipient domain, the scan of a message, the note that replaces a refused part.
#include "common/mail/attachment_policy.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "common/mail/mime_decode.hpp"
#include "common/program/config.hpp"
#include "common/program/domain_map.hpp"

namespace ferry::mail {

namespace {

constexpr size_t kChunk = 64 * 1024;
constexpr size_t kFirstPiece = 16 * 1024;

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// The decoded body of a zip part, or nullopt when it is larger than `max`.
Result<std::optional<std::string>> read_part(const MessageReader& read, const MimePart& part, uint64_t max) {
    TransferDecoder decoder(transfer_encoding_of(part.transfer_encoding()));
    std::string out, buf(kChunk, '\0');
    for (uint64_t at = part.body.offset, end = part.body.offset + part.body.size; at < end;) {
        auto n = read(at, buf.data(), static_cast<size_t>(std::min<uint64_t>(kChunk, end - at)));
        if (!n) return n.error();
        if (*n == 0) break;
        decoder.feed(std::string_view(buf.data(), *n), out);
        if (out.size() > max) return std::optional<std::string>();
        at += *n;
    }
    decoder.finish(out);
    if (out.size() > max) return std::optional<std::string>();
    return std::optional<std::string>(std::move(out));
}

// Why a zip part is refused for one of its entries; nullopt when none is (or it cannot be read:
// noted in `unread`, and let through).
Result<std::optional<std::string>> zip_refusal(const MessageReader& read, const FilePart& f, const AttachmentSettings& s,
                                               std::vector<std::string>& unread) {
    auto body = read_part(read, *f.part, s.max_archive_size);
    if (!body) return body.error();
    if (!*body) {
        unread.push_back(f.attachment.name + ": larger than attachment_max_archive_size, not opened");
        return std::optional<std::string>();
    }
    auto names = zip_entry_names(**body);
    if (!names) {
        unread.push_back(f.attachment.name + ": " + names.error().what());
        return std::optional<std::string>();
    }
    for (const auto& name : *names)
        if (auto why = refused_attachment({name, "", f.attachment.name}, s.rules)) return why;
    return std::optional<std::string>();
}

// Text for the note: control characters (a CR or LF from an encoded file name) shown as '?'.
std::string printable(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    return out;
}

// The header section's fields other than Content-*, as written (continuation lines kept with
// their field); the blank line that ends the section is left out.
std::string kept_fields(std::string_view header) {
    std::string out;
    bool keep = true;
    for (size_t pos = 0; pos < header.size();) {
        size_t eol = header.find('\n', pos);
        size_t next = eol == std::string_view::npos ? header.size() : eol + 1;
        std::string_view line = header.substr(pos, next - pos);
        pos = next;
        if (line == "\n" || line == "\r\n") break;
        if (line[0] != ' ' && line[0] != '\t') keep = !lower(line.substr(0, 8)).starts_with("content-");
        if (keep) out.append(line);
    }
    return out;
}

}  // namespace

std::optional<AttachmentPolicy> parse_attachment_policy(std::string_view w) {
    if (w == "off") return AttachmentPolicy::off;
    if (w == "reject") return AttachmentPolicy::reject;
    if (w == "strip") return AttachmentPolicy::strip;
    return std::nullopt;
}

const char* attachment_policy_name(AttachmentPolicy p) {
    switch (p) {
        case AttachmentPolicy::off: return "off";
        case AttachmentPolicy::reject: return "reject";
        case AttachmentPolicy::strip: return "strip";
    }
    return "?";
}

AttachmentPolicy AttachmentSettings::policy_for(std::string_view address) const {
    size_t at = address.rfind('@');
    auto it = at == std::string_view::npos ? domains.end() : domains.find(lower(address.substr(at + 1)));
    return it == domains.end() ? fallback : it->second;
}

bool AttachmentSettings::applies(const std::vector<std::string>& recipients) const {
    return std::any_of(recipients.begin(), recipients.end(),
                       [this](const std::string& r) { return policy_for(r) == AttachmentPolicy::reject; });
}

Result<std::map<std::string, AttachmentPolicy>> AttachmentSettings::parse_map(std::string_view text) {
    auto words = parse_domain_map(
        text, [](std::string_view w) { return parse_attachment_policy(w).has_value(); }, "domain off|reject|strip");
    if (!words) return words.error();
    std::map<std::string, AttachmentPolicy> map;
    for (const auto& [domain, word] : *words) map[domain] = *parse_attachment_policy(word);
    return map;
}

Result<AttachmentSettings> AttachmentSettings::from(const Config& config) {
    AttachmentSettings s;
    s.fallback = parse_attachment_policy(config.str("attachment_policy")).value_or(AttachmentPolicy::reject);
    s.rules = AttachmentRules::parse(config.str("attachment_refuse_extensions"), config.str("attachment_refuse_types"));
    s.max_archive_size = config.size("attachment_max_archive_size");
    if (std::string path = config.str("attachment_policy_map"); !path.empty()) {
        std::ifstream f(path);
        if (!f) return sys_error("cannot read attachment_policy_map " + path);
        std::stringstream text;
        text << f.rdbuf();
        auto map = parse_map(text.str());
        if (!map) return make_error(0, "", "attachment_policy_map " + path + ": " + map.error().what());
        s.domains = std::move(map.value());
    }
    return s;
}

Result<AttachmentScan> scan_attachments(const MessageReader& read, const AttachmentSettings& s, bool every) {
    MimeParser parser;
    std::string buf(kChunk, '\0');
    bool settled = false;  // once settled with a file in it, the rest is read whatever it holds
    for (uint64_t at = 0;;) {
        // A first piece that holds most header sections: a message without files is read no further.
        auto n = read(at, buf.data(), at == 0 ? kFirstPiece : buf.size());
        if (!n) return n.error();
        if (*n == 0) break;
        parser.feed(std::string_view(buf.data(), *n));
        at += *n;
        // Most mail carries no file: once no part can follow, the rest of its body is not read.
        if (!settled && parser.settled()) {
            if (file_parts(parser.tree_so_far()).empty()) return AttachmentScan{};
            settled = true;
        }
    }
    MimePart root = parser.finish();
    AttachmentScan scan;
    for (const auto& f : file_parts(root)) {
        auto why = refused_attachment(f.attachment, s.rules);
        if (!why && is_zip(f.attachment)) {
            auto inside = zip_refusal(read, f, s, scan.unread);
            if (!inside) return inside.error();
            why = std::move(inside.value());
        }
        if (!why) continue;
        if (!scan.refused) scan.refused = why;
        const MimePart& p = *f.part;
        scan.parts.push_back({p.header.offset, p.body.offset, p.body.offset + p.body.size, f.attachment, *why});
        if (!every) break;
    }
    return scan;
}

Result<bool> settled_without_files(const MessageReader& read) {
    MimeParser parser;
    std::string buf(kFirstPiece, '\0');
    auto n = read(0, buf.data(), buf.size());
    if (!n) return n.error();
    parser.feed(std::string_view(buf.data(), *n));
    return parser.settled() && file_parts(parser.tree_so_far()).empty();
}

std::string replacement_part(std::string_view header, const RefusedPart& part, std::string_view policy,
                             bool final_newline) {
    std::string eol = header.find("\r\n") != std::string_view::npos ? "\r\n" : "\n";
    std::string name = part.file.name.empty() ? "(no name)" : printable(part.file.name);
    std::vector<std::string> lines = {
        "This attachment was removed by the mail server's attachment policy.",
        "",
        "File:   " + name,
        "Type:   " + printable(part.file.content_type),
        "Reason: " + printable(part.why) + " is a file type not accepted here",
        "Policy: " + printable(policy),
    };
    std::string note;
    for (size_t i = 0; i < lines.size(); ++i) note += (i ? eol : "") + lines[i];
    if (final_newline) note += eol;
    bool eight_bit = std::any_of(note.begin(), note.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
    return kept_fields(header) + "Content-Type: text/plain; charset=utf-8" + eol +
           "Content-Transfer-Encoding: " + (eight_bit ? "8bit" : "7bit") + eol + "Content-Disposition: inline" + eol +
           eol + note;
}

}  // namespace ferry::mail

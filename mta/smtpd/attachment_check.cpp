// The attachment policy of ferry-smtpd: a message carrying a refused file type (plain, or in a zip one level deep) gets 550 5.7.1.
#include "mta/smtpd/attachment_check.hpp"

#include <fstream>
#include <sstream>

#include "common/base/log.hpp"
#include "common/mail/mime_decode.hpp"

namespace ferry::smtpd {

namespace {

constexpr size_t kChunk = 64 * 1024;

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::optional<AttachmentPolicy> parse_policy(std::string_view w) {
    if (w == "off") return AttachmentPolicy::off;
    if (w == "reject") return AttachmentPolicy::reject;
    return std::nullopt;
}

// The decoded body of a zip part, or nullopt when it is larger than `max`.
Result<std::optional<std::string>> read_part(const spool::MessageData& data, const mail::MimePart& part, uint64_t max) {
    mail::TransferDecoder decoder(mail::transfer_encoding_of(part.transfer_encoding()));
    std::string out, buf(kChunk, '\0');
    for (uint64_t at = part.body.offset, end = part.body.offset + part.body.size; at < end;) {
        auto n = data.read(at, buf.data(), static_cast<size_t>(std::min<uint64_t>(kChunk, end - at)));
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

// Cancels a run: the completion checks the flag on the loop, where the drop happens too.
class Run final : public CheckRun {
public:
    explicit Run(std::shared_ptr<bool> alive) : alive_(std::move(alive)) {}
    ~Run() override { *alive_ = false; }

private:
    std::shared_ptr<bool> alive_;
};

}  // namespace

bool AttachmentSettings::applies(const std::vector<std::string>& recipients) const {
    for (const auto& r : recipients) {
        size_t at = r.rfind('@');
        auto it = at == std::string::npos ? domains.end() : domains.find(lower(r.substr(at + 1)));
        if ((it == domains.end() ? fallback : it->second) == AttachmentPolicy::reject) return true;
    }
    return false;
}

Result<std::map<std::string, AttachmentPolicy>> AttachmentSettings::parse_map(std::string_view text) {
    std::map<std::string, AttachmentPolicy> map;
    std::istringstream in{std::string(text)};
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
        if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
        auto words = split_list(line);
        if (words.empty()) continue;
        auto policy = words.size() == 2 ? parse_policy(words[1]) : std::nullopt;
        if (!policy) return make_error(0, "", "line " + std::to_string(n) + ": want \"domain off|reject\"");
        map[lower(words[0])] = *policy;
    }
    return map;
}

Result<AttachmentSettings> AttachmentSettings::from(const Config& config) {
    AttachmentSettings s;
    s.fallback = config.str("attachment_policy") == "off" ? AttachmentPolicy::off : AttachmentPolicy::reject;
    s.rules = mail::AttachmentRules::parse(config.str("attachment_refuse_extensions"),
                                           config.str("attachment_refuse_types"));
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

Result<AttachmentScan> scan_attachments(const spool::MessageData& data, const AttachmentSettings& s) {
    mail::MimeParser parser;
    std::string buf(kChunk, '\0');
    for (uint64_t at = 0;;) {
        auto n = data.read(at, buf.data(), buf.size());
        if (!n) return n.error();
        if (*n == 0) break;
        parser.feed(std::string_view(buf.data(), *n));
        at += *n;
    }
    mail::MimePart root = parser.finish();
    AttachmentScan scan;
    for (const auto& f : mail::file_parts(root)) {
        if ((scan.refused = mail::refused_attachment(f.attachment, s.rules))) return scan;
        if (!mail::is_zip(f.attachment)) continue;
        auto body = read_part(data, *f.part, s.max_archive_size);
        if (!body) return body.error();
        if (!*body) {
            scan.unread.push_back(f.attachment.name + ": larger than attachment_max_archive_size, not opened");
            continue;
        }
        auto names = mail::zip_entry_names(**body);
        if (!names) {
            scan.unread.push_back(f.attachment.name + ": " + names.error().what());
            continue;
        }
        for (const auto& name : *names)
            if ((scan.refused = mail::refused_attachment({name, "", f.attachment.name}, s.rules))) return scan;
    }
    return scan;
}

std::unique_ptr<CheckRun> AttachmentCheck::start(std::shared_ptr<const CheckedMessage> m, Done done) {
    auto alive = std::make_shared<bool>(true);
    if (!settings_.applies(m->recipients) || settings_.rules.empty()) {
        // Nothing to look for; the answer still comes from the loop, never from within start().
        pool_.submit([] {}, [alive, done] {
            if (*alive) done(Finding{});
        });
        return std::make_unique<Run>(alive);
    }
    auto result = std::make_shared<Result<AttachmentScan>>(AttachmentScan{});
    pool_.submit([m, result, this] { *result = scan_attachments(m->data, settings_); },
                 [m, result, alive, done] {
                     if (!*alive) return;
                     Finding f;
                     if (!*result) {
                         log::errorx("%s: %s: attachment check failed: %s", m->session.c_str(), m->id.c_str(),
                                     result->error().what().c_str());
                         f.refusal = make_error(451, "4.3.0", "Temporary failure checking the message",
                                                result->error().what());
                         return done(std::move(f));
                     }
                     for (const auto& u : (*result)->unread)
                         log::info("%s: %s: attachment %s", m->session.c_str(), m->id.c_str(), u.c_str());
                     if ((*result)->refused)
                         f.refusal = make_error(550, "5.7.1",
                                                "Message refused: " + *(*result)->refused +
                                                    " is a file type not accepted here",
                                                *(*result)->refused);
                     done(std::move(f));
                 });
    return std::make_unique<Run>(alive);
}

}  // namespace ferry::smtpd

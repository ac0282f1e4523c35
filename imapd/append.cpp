// APPEND, COPY and MOVE of a session: messages written into a folder, with UIDPLUS answers (RFC 4315).
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/auth/sasl.hpp"
#include "common/base/log.hpp"
#include "common/mail/mime.hpp"
#include "common/store/folders.hpp"
#include "common/store/maildir.hpp"
#include "imapd/server.hpp"
#include "imapd/session.hpp"

namespace ferry::imap {

namespace {

// Maildir keeps LF line ends; a client sends CRLF.
std::string to_lf(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i)
        if (!(s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n')) out += s[i];
    return out;
}

// A header section with its Content-Transfer-Encoding field (folded lines too) saying base64.
std::string header_with_base64(std::string_view header) {
    std::string out;
    bool in_field = false;
    for (size_t pos = 0; pos < header.size();) {
        size_t end = header.find('\n', pos);
        end = end == std::string_view::npos ? header.size() : end + 1;
        std::string_view line = header.substr(pos, end - pos);
        pos = end;
        if (in_field && (line[0] == ' ' || line[0] == '\t')) continue;
        in_field = line.size() > 26 && strncasecmp(line.data(), "Content-Transfer-Encoding:", 26) == 0;
        out += in_field ? std::string_view("Content-Transfer-Encoding: base64\r\n") : line;
    }
    return out;
}

void binary_parts(const mail::MimePart& p, std::vector<const mail::MimePart*>& out) {
    for (const auto& c : p.children) binary_parts(c, out);
    if (p.children.empty() && !p.is_multipart() && p.transfer_encoding() == "binary") out.push_back(&p);
}

// RFC 3516 section 4.3: a literal8 APPEND may carry binary parts, which IMAP cannot send as BODY[];
// each is stored base64-encoded (as Dovecot does), so BINARY[] gives back its exact octets.
std::string base64_binary_parts(std::string_view msg) {
    mail::MimeParser parser;
    parser.feed(msg);
    mail::MimePart tree = parser.finish();
    std::vector<const mail::MimePart*> parts;
    binary_parts(tree, parts);
    std::string out;
    size_t at = 0;
    for (const auto* p : parts) {  // in message order: children before their (non-binary) parents
        out.append(msg.substr(at, p->header.offset - at));
        out += header_with_base64(msg.substr(p->header.offset, p->header.size));
        std::string b64 = sasl::base64_encode(msg.substr(p->body.offset, p->body.size));
        for (size_t i = 0; i < b64.size(); i += 76) out += b64.substr(i, 76) + "\r\n";
        at = p->body.offset + p->body.size;
        if (!b64.empty() && at < msg.size()) out.resize(out.size() - 2);  // the part's own line end follows
    }
    out.append(msg.substr(at));
    return out;
}

std::string uid_set(const std::vector<uint32_t>& uids) {
    std::string out;
    for (size_t i = 0; i < uids.size();) {
        size_t j = i;
        while (j + 1 < uids.size() && uids[j + 1] == uids[j] + 1) ++j;
        out += (out.empty() ? "" : ",") + std::to_string(uids[i]);
        if (j > i) out += ":" + std::to_string(uids[j]);
        i = j + 1;
    }
    return out;
}

// Writes one message into the folder's Maildir and gives it the next UID, its flags and date. A
// message with flags goes straight into cur/ with its letters in the name: no rename, and no
// second index record with its own fdatasync for them; keywords are recorded after.
Result<uint32_t> store_message(store::Index& index, std::string_view lf, const std::string& letters,
                               const std::vector<std::string>& keywords, std::optional<int64_t> date) {
    std::string info = letters;
    std::sort(info.begin(), info.end());
    info.erase(std::unique(info.begin(), info.end()), info.end());
    auto d = maildir::Delivery::create(index.maildir());
    if (!d) return d.error();
    d->set_flags(info);
    if (auto r = d->append(lf); !r) return r.error();
    if (auto r = d->sync(); !r) return r.error();
    auto name = d->commit();
    if (!name) return name.error();
    if (date) {
        struct timeval tv[2] = {{static_cast<time_t>(*date), 0}, {static_cast<time_t>(*date), 0}};
        (void)::utimes((index.maildir() + (info.empty() ? "/new/" : "/cur/") + *name).c_str(), tv);
    }
    auto uid = index.add(*name);
    if (!uid) return uid.error();
    if (!keywords.empty()) {
        uint32_t u = *uid;
        if (auto r = index.store_flags({&u, 1}, store::FlagMode::add, "", keywords); !r) return r.error();
    }
    return *uid;
}

}  // namespace

// The index of a folder other than the selected one (or that one), opened for a write: the one
// other sessions hold when they do, so that what is written shows in their next report at once.
Result<store::Index*> Session::target_index(const std::string& name, std::shared_ptr<store::Index>& other) {
    if (index_ && name == mailbox_) return &*index_;
    auto path = store::folder_path(root_, name);
    if (!path) return path.error();
    other = server_.held_index(*path);
    if (other) return other.get();
    auto index = store::Index::open(*path);
    if (!index) return index.error();
    other = std::make_shared<store::Index>(std::move(index.value()));
    return other.get();
}

// What copying from the selected folder into `target` teaches a learning filter, when its command is set.
std::optional<Verdict> Session::learning(const std::string& target) {
    Learner& learner = server_.learner();
    if (!learner.enabled()) return std::nullopt;
    auto v = learn_verdict(mailbox_, target, store::special_use_folder(root_, "\\Junk"),
                           store::special_use_folder(root_, "\\Trash"));
    if (!v || !learner.enabled(*v)) return std::nullopt;
    return v;
}

void Session::cmd_append(const Command& cmd) {
    const auto& a = std::get<AppendArgs>(cmd.args);
    auto name = folder_name(a.mailbox);
    if (!name) return;
    if (!folder_exists(*name)) return tagged("NO", "[TRYCREATE] no such mailbox");
    std::shared_ptr<store::Index> other;
    auto index = target_index(*name, other);
    if (!index) return tagged("NO", "[SERVERBUG] cannot open the mailbox");
    std::vector<uint32_t> uids;
    for (const auto& m : a.messages) {
        std::string letters;
        std::vector<std::string> keywords;
        for (const auto& f : m.flags) {
            if (char c = store::flag_letter(f)) letters += c;
            else if (f.empty() || f[0] != '\\') keywords.push_back(f);
        }
        std::sort(letters.begin(), letters.end());
        std::optional<int64_t> date;
        if (m.date) date = m.date->unix_time();
        auto uid = store_message(**index, to_lf(m.binary ? base64_binary_parts(m.data) : m.data), letters, keywords, date);
        if (!uid) {
            log::warnx("%s: APPEND %s: %s", id_.c_str(), name->c_str(), uid.error().what().c_str());
            return tagged("NO", "[SERVERBUG] cannot store the message");
        }
        uids.push_back(*uid);
    }
    if (state_ == State::selected && *name == mailbox_) report_changes(false);
    tagged("OK", "[APPENDUID " + std::to_string((*index)->uidvalidity()) + " " + uid_set(uids) + "] APPEND completed");
}

void Session::cmd_copy(const Command& cmd) {
    const auto& a = std::get<CopyArgs>(cmd.args);
    bool move = cmd.verb == Verb::move;
    if (move && read_only_) return tagged("NO", "[READ-ONLY] mailbox is read-only");
    auto uids = resolve_uids(a.set, cmd.uid);
    if (!uids) return tagged("BAD", "invalid message sequence number");
    auto name = folder_name(a.mailbox);
    if (!name) return;
    if (!folder_exists(*name)) return tagged("NO", "[TRYCREATE] no such mailbox");
    std::shared_ptr<store::Index> other;
    auto target = target_index(*name, other);
    if (!target) return tagged("NO", "[SERVERBUG] cannot open the mailbox");
    std::optional<Verdict> verdict = learning(*name);
    size_t unlearned = 0;  // copies the learner had no room for
    // Every copy is made (hard links where possible), then one fsync and one index append for all.
    std::vector<uint32_t> from;
    std::vector<Fd> files;
    std::vector<maildir::CopySource> sources;
    std::vector<std::vector<std::string>> keywords_of;
    for (uint32_t uid : *uids) {
        const store::Message* m = index_->find(uid);
        if (!m) continue;
        auto fd = index_->open_message(uid);
        if (!fd) {
            log::warnx("%s: %s to %s: %s", id_.c_str(), cmd.name.c_str(), name->c_str(), fd.error().what().c_str());
            return tagged("NO", "[SERVERBUG] cannot copy the messages");
        }
        std::vector<std::string> keywords;
        for (uint32_t k : m->keywords)
            if (k < index_->keywords().size()) keywords.push_back(index_->keywords()[k]);
        std::string file = m->file.size() > 4 ? m->file.substr(4) : m->base;  // "new/" or "cur/" dropped
        sources.push_back({fd->get(), std::move(file), m->flags});
        files.push_back(std::move(fd.value()));
        keywords_of.push_back(std::move(keywords));
        from.push_back(uid);
    }
    std::vector<uint32_t> to;
    if (!sources.empty()) {
        auto made = maildir::copy_messages((*target)->maildir(), sources);
        auto uids_made = made ? (*target)->add(*made) : Result<std::vector<uint32_t>>(made.error());
        if (!uids_made) {
            if (made)  // durable copies without UIDs: taken back, so that the client's retry makes the only ones
                for (const auto& n : *made) (void)::unlink(((*target)->maildir() + "/cur/" + n).c_str());
            log::warnx("%s: %s to %s: %s", id_.c_str(), cmd.name.c_str(), name->c_str(), uids_made.error().what().c_str());
            return tagged("NO", "[SERVERBUG] cannot copy the messages");
        }
        to = std::move(uids_made.value());
    }
    for (size_t i = 0; i < to.size(); ++i) {
        if (!keywords_of[i].empty())
            if (auto r = (*target)->store_flags({&to[i], 1}, store::FlagMode::add, "", keywords_of[i]); !r)
                log::warnx("%s: %s to %s: keywords not copied: %s", id_.c_str(), cmd.name.c_str(), name->c_str(),
                           r.error().what().c_str());
        // Queued only: the command runs on the learner's workers, whatever the reply does meanwhile.
        if (verdict && !server_.learner().submit(*verdict, std::move(files[i]), id_, login_, *name, to[i]))
            ++unlearned;
    }
    if (unlearned > 0)
        log::warnx("%s: learn %s user=%s folder=%s: %zu messages skipped, %zu wait already", id_.c_str(),
                   verdict_name(*verdict), login_.c_str(), name->c_str(), unlearned, Learner::kMaxPending);
    std::string code = from.empty() ? "" : "[COPYUID " + std::to_string((*target)->uidvalidity()) + " " +
                                               uid_set(from) + " " + uid_set(to) + "] ";
    if (!move) {
        if (*name == mailbox_) report_changes(false);
        return tagged("OK", code + cmd.name + " completed");
    }
    // RFC 6851 section 4.3: COPYUID comes untagged, before the EXPUNGEs.
    if (!code.empty()) reply("* OK " + code + "moved\r\n");
    if (auto r = index_->expunge(from); !r) {
        log::warnx("%s: MOVE %s: %s", id_.c_str(), mailbox_.c_str(), r.error().what().c_str());
        return tagged("NO", "[SERVERBUG] messages copied but not removed");
    }
    report_changes(true);
    tagged("OK", cmd.name + " completed");
}

}  // namespace ferry::imap

// The spool as qmgr sees it: recovery at start, listing and loading queue files, quarantine, removal.
#include "mta/qmgr/queue.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <memory>

#include "common/base/fs.hpp"
#include "common/base/log.hpp"
#include "common/spool/spare.hpp"

namespace ferry::qmgr {

namespace {

using DirPtr = std::unique_ptr<DIR, int (*)(DIR*)>;

// Names of the plain entries of `dir` (no ".", "..").
Result<std::vector<std::string>> list_dir(const std::string& dir) {
    DirPtr d(opendir(dir.c_str()), closedir);
    if (!d) return sys_error("cannot open directory " + dir);
    std::vector<std::string> names;
    errno = 0;
    while (dirent* e = readdir(d.get())) {
        std::string name = e->d_name;
        if (name != "." && name != "..") names.push_back(std::move(name));
    }
    if (errno != 0) return sys_error("cannot read directory " + dir);
    return names;
}

// A state file must describe the recipients of its own queue file, by position and address.
bool state_matches(const MessageState& state, const spool::Envelope& env) {
    if (state.id != env.id) return false;
    for (const auto& r : state.rcpts)
        if (r.index >= env.recipients.size() || env.recipients[r.index] != r.orig) return false;
    return true;
}

}  // namespace

bool valid_queue_id(std::string_view id) {
    if (id.empty() || id.size() > 64) return false;
    for (char c : id)
        if (!std::isalnum(static_cast<unsigned char>(c))) return false;
    return true;
}

Queue::Queue(std::string spool_dir) : dir_(std::move(spool_dir)) {}

std::string Queue::queue_path(const std::string& id) const { return dir_ + "/" + spool::kQueue + "/" + id; }
std::string Queue::state_path(const std::string& id) const { return dir_ + "/" + kStateDir + "/" + id; }

// Only ENOENT says the file is gone: after EACCES or EIO it may well be there.
bool Queue::exists(const std::string& id) const {
    struct stat st;
    return stat(queue_path(id).c_str(), &st) == 0 || errno != ENOENT;
}

Result<void> Queue::recover() {
    if (auto r = spool::ensure_layout(dir_); !r) return r;
    for (const char* sub : {kStateDir, kCorruptDir}) {
        std::string d = dir_ + "/" + sub;
        if (mkdir(d.c_str(), 0750) != 0 && errno != EEXIST) return sys_error("cannot create " + d);
    }
    if (auto r = remove_incoming(); !r) return r;
    return tidy_state_dir();
}

Result<void> Queue::remove_incoming() const {
    std::string dir = dir_ + "/" + spool::kIncoming;
    auto names = list_dir(dir);
    if (!names) return names.error();
    // The client of such a file never got its 250: removing it loses nothing accepted. A file
    // whose writer (a running smtpd) still holds its lock is being received: it stays.
    for (const auto& name : *names) {
        auto removed = spool::remove_abandoned(dir + "/" + name);
        if (!removed)
            log::warnx("%s: cannot remove incoming/%s: %s", name.c_str(), name.c_str(), removed.error().what().c_str());
        else if (*removed)
            log::info("%s: removed incomplete file from incoming/ (never accepted)", name.c_str());
        else
            log::info("%s: incoming/%s is still being received; left to its writer", name.c_str(), name.c_str());
    }
    return {};
}

Result<void> Queue::tidy_state_dir() const {
    std::string dir = dir_ + "/" + kStateDir;
    auto names = list_dir(dir);
    if (!names) return names.error();
    for (const auto& name : *names) {
        bool tmp = name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0;
        // A state file outlives its queue file only when a crash came between the two unlinks.
        bool orphan = !tmp && !exists(name);
        if (!tmp && !orphan) continue;
        if (unlink((dir + "/" + name).c_str()) == 0)
            log::info("%s: removed %s state file", name.c_str(), tmp ? "half-written" : "orphaned");
        else
            log::warn("%s: cannot remove state/%s", name.c_str(), name.c_str());
    }
    return {};
}

Result<std::vector<std::string>> Queue::list() const {
    auto names = list_dir(dir_ + "/" + spool::kQueue);
    if (!names) return names.error();
    std::vector<std::string> ids;
    for (auto& n : *names) {
        if (valid_queue_id(n)) ids.push_back(std::move(n));
        else log::warnx("ignoring queue/%s: not a queue id", n.c_str());
    }
    return ids;
}

void Queue::quarantine(const std::string& from, const std::string& name) const {
    std::string to = dir_ + "/" + kCorruptDir + "/" + name;
    if (rename(from.c_str(), to.c_str()) == 0) {
        log::warnx("%s: moved %s to %s", name.c_str(), from.c_str(), to.c_str());
        (void)fsync_dir(dir_ + "/" + kCorruptDir);
    } else {
        log::error("%s: cannot move %s to %s", name.c_str(), from.c_str(), to.c_str());
    }
}

// An I/O error (EMFILE, EIO, EACCES...) says nothing about a file: it is an error, and the next
// scan tries again. Only a file that was read and does not decode goes to corrupt/.
Result<std::optional<Loaded>> Queue::load(const std::string& id, bool verify) {
    std::string path = queue_path(id);
    // smtpd may still unlink a file it holds locked (spool::writer_active): its notify or the next scan brings it back.
    auto writing = spool::writer_active(path);
    if (!writing) return writing.error();
    if (*writing) return std::optional<Loaded>{};
    // Only the envelope is read: the data stays on disk until a delivery streams it.
    auto msg = spool::open_message(path);
    if (!msg) return msg.error();
    if (msg->status == spool::OpenedMessage::Status::missing) return std::optional<Loaded>{};  // removed meanwhile (ferry-admin)
    if (msg->status == spool::OpenedMessage::Status::corrupt) {
        log::errorx("%s: %s", id.c_str(), msg->why.c_str());
        quarantine(path, id);
        return std::optional<Loaded>{};
    }
    if (msg->envelope.id != id) {
        log::errorx("%s: queue file names queue id %s", id.c_str(), msg->envelope.id.c_str());
        quarantine(path, id);
        return std::optional<Loaded>{};
    }
    if (verify) {
        auto whole = matches_checksum(*msg, path, id);
        if (!whole) return whole.error();
        if (!*whole) return std::optional<Loaded>{};
    }
    Loaded l{std::move(msg->envelope), MessageState{id, {}}};
    auto text = spool::read_bytes(state_path(id));
    if (!text) return text.error();  // never "no state": its recipients done would be delivered again
    if (!text->has_value()) return std::optional<Loaded>(std::move(l));
    auto st = decode_state(**text);
    if (st && state_matches(*st, l.envelope)) {
        l.state = std::move(*st);
        l.state_file = true;
    } else {
        log::errorx("%s: %s; delivering to every recipient again", id.c_str(),
                    st ? "state file does not match its queue file" : st.error().what().c_str());
        quarantine(state_path(id), id + ".state");
    }
    return std::optional<Loaded>(std::move(l));
}

// A file that does not match goes to corrupt/ (false).
Result<bool> Queue::matches_checksum(const spool::OpenedMessage& msg, const std::string& path,
                                     const std::string& id) const {
    auto whole = spool::checksum_matches(msg);
    if (!whole) return whole.error();
    if (*whole) return true;
    log::errorx("%s: corrupt queue file: checksum in END record does not match (a torn or damaged file)", id.c_str());
    quarantine(path, id);
    return false;
}

Result<bool> Queue::verify(const std::string& id) const {
    std::string path = queue_path(id);
    auto writing = spool::writer_active(path);
    if (!writing) return writing.error();
    if (*writing) return true;
    auto msg = spool::open_message(path);
    if (!msg) return msg.error();
    if (msg->status != spool::OpenedMessage::Status::ok || msg->envelope.id != id) return true;
    return matches_checksum(*msg, path, id);
}

Result<spool::OpenedMessage> Queue::open_message(const std::string& id) const {
    return spool::open_message(queue_path(id));
}

Result<void> Queue::save_state(const MessageState& state, SaveSlot& slot, uint64_t gen) const {
    std::lock_guard<std::mutex> lock(slot.mu);
    if (slot.removed || gen < slot.published) return {};
    if (auto r = write_state(dir_ + "/" + kStateDir, state); !r) return r;
    slot.published = gen;
    return {};
}

CommitStage::Item Queue::state_item(const MessageState& state, std::shared_ptr<SaveSlot> slot, uint64_t gen) const {
    std::string final_path = state_path(state.id);
    std::string temp = final_path + "." + std::to_string(gen) + ".tmp";
    auto data = std::make_shared<std::string>(encode_state(state));
    CommitStage::Item item;
    item.sync = [temp, data]() -> Result<void> {
        Fd fd(open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
        if (!fd.valid()) return sys_error("cannot create " + temp);
        auto r = write_all(fd.get(), data->data(), data->size());
        if (r && fsync(fd.get()) != 0) r = sys_error("cannot fsync " + temp);
        if (!r) unlink(temp.c_str());
        return r;
    };
    std::string dir = dir_ + "/" + kStateDir;
    item.publish = [temp, final_path, dir, slot, gen]() -> Result<std::string> {
        std::lock_guard<std::mutex> lock(slot->mu);
        if (slot->removed || gen < slot->published) {
            unlink(temp.c_str());  // superseded: the newer file is durable before this item is done
            return std::string();
        }
        if (rename(temp.c_str(), final_path.c_str()) != 0) {
            auto e = sys_error("cannot rename " + temp + " to " + final_path);
            unlink(temp.c_str());
            return e;
        }
        slot->published = gen;
        return dir;
    };
    return item;
}

void Queue::end_saves(SaveSlot& slot) {
    std::lock_guard<std::mutex> lock(slot.mu);
    slot.removed = true;
}

Result<void> Queue::remove(const std::string& id) const {
    if (auto r = retire_queue_file(id); !r) return r;
    return sync_and_unlink_state(id);
}

Result<void> Queue::retire_queue_file(const std::string& id) const {
    return spool::retire_queue_file(dir_, id);
}

Result<void> Queue::sync_and_unlink_state(const std::string& id) const {
    if (auto r = fsync_dir(dir_ + "/" + spool::kQueue); !r) return r;
    std::string s = state_path(id);
    if (unlink(s.c_str()) != 0 && errno != ENOENT) return sys_error("cannot remove " + s);
    return {};
}

// Should the queue file come back after a crash (its unlink not yet on disk), with or without its
// state file, the next attempt gets ferry-mda's "already delivered" for each recipient: no copy.
Result<void> Queue::remove_unsynced(const std::string& id) const {
    if (auto r = retire_queue_file(id); !r) return r;
    std::string s = state_path(id);
    if (unlink(s.c_str()) != 0 && errno != ENOENT) return sys_error("cannot remove " + s);
    return {};
}

}  // namespace ferry::qmgr

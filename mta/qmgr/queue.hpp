// The spool as qmgr sees it: recovery at start, listing and loading queue files, quarantine, removal.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "common/event/commit_stage.hpp"
#include "common/spool/spool.hpp"
#include "common/spool/state.hpp"

namespace ferry::qmgr {

// Where a queue file that cannot be decoded goes: kept for the administrator, never deleted.
inline constexpr const char* kCorruptDir = "corrupt";

// A queued message as the scheduler keeps it: the envelope (the data is re-read at delivery) and
// the recipient state, fresh when no state file exists yet.
struct Loaded {
    spool::Envelope envelope;
    MessageState state;
    bool state_file = false;  // state/<id> was there and read
};

// The order of one message's state saves: each save has a number, and one older than the state
// file in place is never put over it (saves run on the loop and on commit threads side by side); a
// removal stops every later publication, so a save still in flight leaves no orphan behind.
struct SaveSlot {
    std::mutex mu;
    uint64_t published = 0;  // the number of the save in state/<id>
    bool removed = false;
};

class Queue {
public:
    explicit Queue(std::string spool_dir);

    // At start: creates the layout, removes incoming/ files (never accepted) but those a live
    // writer still holds locked (spool::remove_abandoned), half-written state
    // files and state files whose queue file is gone (removed after its last recipient).
    Result<void> recover();

    // Queue ids of the files in queue/.
    Result<std::vector<std::string>> list() const;

    // Reads queue/<id> and state/<id>. A queue file that does not decode is moved to corrupt/ and
    // an empty optional returned; so is a state file that does not decode or does not match its
    // queue file (the message then starts over: at-least-once, never lost). An I/O error reading
    // either file (EMFILE, EIO, EACCES...) quarantines nothing: it is returned, to try again later.
    // `verify` reads the whole queue file against its END record's checksum (a file found by a
    // scan, not announced by its writer after its commit): one that does not match goes to corrupt/.
    Result<std::optional<Loaded>> load(const std::string& id, bool verify = false);
    // The checksum part of load(verify) alone, for a worker thread: false when queue/<id> does not
    // match its END record's checksum (moved to corrupt/); true when it matches, or when there is
    // nothing to check here (being written, gone, not decoding, an older END record: load() decides);
    // an I/O error reading it.
    Result<bool> verify(const std::string& id) const;
    // The queue file opened for a delivery, its data left on disk (spool::open_message).
    Result<spool::OpenedMessage> open_message(const std::string& id) const;

    // Save number `gen` of the message, on the loop: written, fsync'd, renamed, state/ fsync'd.
    Result<void> save_state(const MessageState& state, SaveSlot& slot, uint64_t gen) const;
    // The same as a commit-stage item: sync writes and fsyncs state/<id>.<gen>.tmp (on a commit
    // thread), publish renames it over state/<id> unless a newer save or a removal came first, and
    // the batch fsyncs state/ once. `done` is left to the caller.
    CommitStage::Item state_item(const MessageState& state, std::shared_ptr<SaveSlot> slot, uint64_t gen) const;
    // No save publishes after this (the message is being removed).
    static void end_saves(SaveSlot& slot);
    // Every recipient is final: the queue file goes first, then the state file.
    Result<void> remove(const std::string& id) const;
    // The two halves of a removal whose queue-file removal must be on disk before the state file
    // goes (ferry-spool(5), COMMIT PROTOCOL): the queue file out of queue/ (into spare/, or
    // unlinked: spool::retire_queue_file), on the loop; then, on a worker, the fsync of queue/ and
    // the unlink of the state file.
    Result<void> retire_queue_file(const std::string& id) const;
    Result<void> sync_and_unlink_state(const std::string& id) const;
    // The unlinks alone, for a message every copy of which a repeated delivery finds already made.
    Result<void> remove_unsynced(const std::string& id) const;
    // False only when queue/<id> is known to be gone (ENOENT).
    bool exists(const std::string& id) const;

    const std::string& dir() const { return dir_; }
    std::string queue_path(const std::string& id) const;
    std::string state_path(const std::string& id) const;

private:
    void quarantine(const std::string& from, const std::string& name) const;
    Result<bool> matches_checksum(const spool::OpenedMessage& msg, const std::string& path, const std::string& id) const;
    Result<void> remove_incoming() const;
    Result<void> tidy_state_dir() const;

    std::string dir_;
};

// A queue id as smtpd makes them: only letters and digits, so it is safe as a file name.
bool valid_queue_id(std::string_view id);

}  // namespace ferry::qmgr

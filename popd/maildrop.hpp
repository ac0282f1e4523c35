// One POP3 session's view of a Maildir: the exclusive lock, the snapshot at login, marks, and UPDATE.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/fd.hpp"
#include "common/base/result.hpp"

namespace ferry::pop3 {

// The Maildirs locked by this process. flock alone would do (a second open file description
// conflicts even within one process); the set answers without touching the disk and makes the
// rule visible. The kernel drops the flock when a process dies, so a crash leaves no stale lock.
class LockSet {
public:
    bool try_add(const std::string& maildir) { return held_.insert(maildir).second; }
    void remove(const std::string& maildir) { held_.erase(maildir); }
    bool contains(const std::string& maildir) const { return held_.count(maildir) != 0; }

private:
    std::set<std::string> held_;
};

// The lock file in the Maildir's top directory (not a dot file: Maildir++ folders are dot directories).
inline constexpr const char* kLockFile = "ferry-pop3.lock";

// RFC 1939 section 7: a unique-id is 1 to 70 characters in the range 0x21 to 0x7E.
inline constexpr size_t kMaxUidlLength = 70;

// The UIDL of a message with this Maildir base name (maildir::NameInfo::base): the base itself,
// stable across flag changes and S=/W= hints; names made by ferry-mda always qualify. A base that
// is not a valid unique-id (another MDA's name) gets 'H' and 16 hex digits of a hash of it instead.
std::string uidl_for(std::string_view base);

struct MaildropMessage {
    std::string base;      // the Maildir base name (before the first ',' or ':')
    std::string uidl;      // uidl_for(base)
    std::string path;      // where it was at login; found again by `base` if another reader renamed it
    uint64_t vsize = 0;    // octets as sent (CRLF line ends, a final line end added, before byte-stuffing)
    bool deleted = false;  // DELE in this session
    bool retrieved = false;  // RETR in this session (for EXPIRE 0)
};

// A login's scan of a Maildir, made off the event loop: the lock taken and new/ and cur/ listed.
struct MaildropScan {
    std::string maildir;
    Fd lock;
    std::vector<MaildropMessage> messages;
};

struct UpdateResult {
    size_t removed = 0;
    size_t failed = 0;     // messages marked deleted that are still there
};

class Maildrop {
public:
    // Locks `maildir` (creating it if needed) and lists new/ and cur/. Messages delivered later
    // are not part of this session. Errors carry POP3 response codes: IN-USE or SYS/TEMP.
    static Result<Maildrop> open(const std::string& maildir, LockSet& locks);
    // open() in two steps: scan() touches only the disk (no LockSet), so it may run on a worker
    // thread; adopt() then takes the scan over on the loop.
    static Result<MaildropScan> scan(const std::string& maildir);
    static Result<Maildrop> adopt(MaildropScan scan, LockSet& locks);
    Maildrop(Maildrop&& o) noexcept;
    Maildrop& operator=(Maildrop&&) = delete;
    Maildrop(const Maildrop&) = delete;
    ~Maildrop();

    const std::string& maildir() const { return maildir_; }
    size_t size() const { return messages_.size(); }
    // 1-based number -> message, nullptr when out of range or deleted (RFC 1939: no such message).
    MaildropMessage* find(uint64_t number);
    // STAT: messages and octets, deleted ones not counted.
    std::pair<size_t, uint64_t> totals() const;
    const std::vector<MaildropMessage>& messages() const { return messages_; }

    void reset();  // RSET: unmark all
    // The message file opened for reading (LF line ends), following a rename by another Maildir reader.
    Result<Fd> open_message(MaildropMessage& m) { return open_file(maildir_, m); }
    // The same for a copy of a message taken off the loop: updates that copy's path only.
    static Result<Fd> open_file(const std::string& maildir, MaildropMessage& m);
    // The whole stored message, for tests and small uses (RETR streams from open_message).
    Result<std::string> read(MaildropMessage& m);
    // UPDATE state (RFC 1939 section 6): removes the marked messages, and with `expire_retrieved`
    // (EXPIRE 0) the retrieved ones too. A message already gone counts as removed.
    UpdateResult commit(bool expire_retrieved);

private:
    Maildrop(std::string maildir, LockSet& locks, Fd lock_fd) : maildir_(std::move(maildir)), locks_(&locks), lock_fd_(std::move(lock_fd)) {}
    // The current path of the message with this base name in cur/ or new/, if any.
    static std::optional<std::string> locate(const std::string& maildir, const std::string& base);
    bool remove(MaildropMessage& m);
    void sync_index();

    std::string maildir_;
    LockSet* locks_;
    Fd lock_fd_;
    std::vector<MaildropMessage> messages_;
};

}  // namespace ferry::pop3

// Maildir store: unique names, durable delivery (tmp -> fsync -> new -> fsync dir), listing and tmp cleanup.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/fs.hpp"
#include "common/base/result.hpp"

namespace ferry::maildir {

// Layout (https://cr.yp.to/proto/maildir.html): <maildir>/{tmp,new,cur}. A message is written in tmp/,
// fsync'd, linked into new/, and new/ is fsync'd; readers move it to cur/ and append ":2,<flags>".
//
// Names follow Dovecot's convention:
//   <sec>.M<usec>P<pid>Q<counter>.<host>,S=<stored size>,W=<size with CRLF line ends>[:2,<flags>]
// S= is the file's size (LF line ends), W= the size POP3 and IMAP report (RFC 1939 counts CRLF).
// The base name (before the first ',' or ':') is the unique id proper: S=/W= are hints appended to
// it and flags change, so POP3 UIDLs are base names. unique_name keeps the base within
// kMaxBaseLength, which leaves room under RFC 1939's 70-character UIDL limit.

inline constexpr size_t kMaxNameLength = 255;   // NAME_MAX
inline constexpr size_t kMaxBaseLength = 60;    // of names made by unique_name
inline constexpr std::chrono::hours kStaleTmpAge{36};  // the spec's rule for tmp/

struct NameInfo {
    std::string unique;              // everything before ':' (base name plus S=/W= and other fields)
    std::string base;                // everything before the first ',' or ':' (the unique id proper)
    std::optional<uint64_t> size;    // S=
    std::optional<uint64_t> vsize;   // W=
    bool has_info = false;           // ":2," present
    std::string flags;               // letters after ":2,", as stored
};

// Pure parser of a file name in new/ or cur/. Rejects empty names or base names, names with '/',
// dot files, names longer than kMaxNameLength and malformed S=/W= values (non-digits, overflow, empty).
Result<NameInfo> parse_name(std::string_view name);

// The host part of a name: '/' -> "\057", ':' -> "\072", ',' -> "\054" (',' separates the S=/W= fields),
// and NUL and other control bytes likewise as a backslash and three octal digits.
std::string escape_host(std::string_view host);

// The host part unique_name uses when `room` characters are left for it: the escaped host, or when
// that is longer, its leading characters plus '-' and 8 hex digits of a hash of the whole host name
// (so two long names that share a prefix still differ).
std::string short_host(std::string_view host, size_t room);

// The size a message stored with LF line ends has when each bare LF becomes CRLF.
uint64_t crlf_size(std::string_view lf_message);

// What a sender that ends every line adds after a message whose last line has no LF (POP3 RETR,
// RFC 1939 section 3): 2 (CRLF), 1 after a final bare CR (LF), 0 for an empty message or a final LF.
uint64_t unterminated_octets(std::string_view lf_message);

// A fresh unique name for a message of `size` bytes (LF) and `vsize` bytes (CRLF), without ":2,".
// Its base name is at most kMaxBaseLength characters (the host part is shortened to fit).
// `host` empty means gethostname().
std::string unique_name(uint64_t size, uint64_t vsize, std::string_view host = {});

// The base part of a fresh unique name (unique_name without ",S=...,W=..."), for a message whose
// size is not known yet: the name a delivery can be recorded under before its file is written.
std::string unique_base(std::string_view host = {});

// Orders two names of one mtime tick as they were made: runs of digits compare as numbers, so
// "1.M99999P7Q9" comes before "1.M100003P7Q10" (as text it would not).
bool made_before(std::string_view a, std::string_view b);

// Whether the file name `name` is the message with base name `base` (followed by nothing, by
// ",S=..." or by ":2,flags").
bool has_base(std::string_view name, std::string_view base);

// The name in new/ or cur/ whose base name is `base`, with the subdirectory ("new/<name>" or
// "cur/<name>"); nullopt when neither holds one. Reads both directories (no file is opened).
Result<std::optional<std::string>> find_base(const std::string& maildir, std::string_view base);

// <mail_dir>/<domain>/<local part>/Maildir for "local@domain" (normalised to lower case).
// Local parts that could escape the tree ("..", "/", empty) give an error.
Result<std::string> account_maildir(const std::string& mail_dir, std::string_view address);

// Creates the Maildir (and missing parents) with cur/ new/ tmp/, mode 0700.
Result<void> ensure(const std::string& maildir);

// One message being delivered: begin() writes tmp/<name> and fsyncs it; commit() links it into new/,
// fsyncs new/ and removes the tmp/ name (or link() and settle() around an fsync of new/ shared with
// other deliveries). The file stays open until commit; destroying
// an uncommitted Delivery removes the tmp/ file. Where the kernel allows, the file in tmp/ has no
// name at all (O_TMPFILE): the link into new/ is its first, and nothing is left to remove.
class Delivery {
public:
    // `parts` are concatenated: e.g. added header lines, then the message (LF line ends).
    static Result<Delivery> begin(const std::string& maildir, std::span<const std::string_view> parts,
                                  std::string_view host = {});
    // The same in pieces, for a message that arrives while it is written: create() makes the tmp/
    // file, append() adds to it, sync() fsyncs and closes it (begin's state); the name in new/ gets
    // S= and W= from what was written.
    static Result<Delivery> create(const std::string& maildir, std::string_view host = {});
    // The same under a base name chosen before (unique_base); an error when tmp/ already holds it.
    static Result<Delivery> create_named(const std::string& maildir, const std::string& base);
    Result<void> append(std::string_view data);
    // Reads back what was appended, until sync() (another copy of the message is made from it).
    Result<size_t> read_at(uint64_t at, char* buf, size_t len) const;
    // A second descriptor of the file, for reading it after the commit (the file never changes then).
    Result<Fd> reader() const;
    Result<void> sync();
    // Info flags (Maildir letters, e.g. "FS") the message is delivered with, set before sync(): it
    // then goes to cur/ as "<name>:2,<flags>" (new/ holds only messages without info).
    void set_flags(std::string letters) { flags_ = std::move(letters); }
    // Stores the message in another folder of the same Maildir++ tree (one file system): the tmp/
    // file stays where it was written and link() makes its name in that folder, so a message a
    // Sieve script files away is not written a second time.
    void retarget(std::string maildir) { maildir_ = std::move(maildir); }
    Delivery(Delivery&& o) noexcept;
    Delivery& operator=(Delivery&& o) noexcept;
    Delivery(const Delivery&) = delete;
    Delivery& operator=(const Delivery&) = delete;
    ~Delivery();

    const std::string& name() const { return name_; }
    // The unique id proper: the tmp/ name before sync(), the part of name() before the first ','.
    const std::string& base() const { return tmp_name_; }
    uint64_t size() const { return size_; }
    // After this returns ok the message is in new/ durably; the value is its name. An error leaves
    // nothing in new/: when the fsync of new/ fails after the link, the new/ name is removed again,
    // so a temporary failure never leaves a copy that counts. If a reader has already moved it to
    // cur/ by then, the message was delivered: ok, and `note` (when given) says what happened.
    Result<std::string> commit(std::string* note = nullptr);
    // commit() in the two halves a commit stage runs around one fsync of new/ for several messages:
    // link() puts the synced file into new/ (never over another) and names the directory to fsync;
    // settle() takes that fsync's outcome and ends as commit() does (the tmp/ name removed on
    // success, the new/ name removed again on failure).
    Result<std::string> link();
    Result<std::string> settle(const Result<void>& dir_synced, std::string* note = nullptr);

private:
    Delivery() = default;
    std::string maildir_;
    std::string name_;      // in new/ (in cur/ with flags)
    std::string tmp_name_;  // in tmp/: the same, or only the base name while the size is unknown
    std::string flags_;     // set_flags: info letters; non-empty puts the message in cur/
    uint64_t size_ = 0;
    uint64_t vsize_ = 0;
    char last_ = '\0';
    bool linked_ = false;  // link() made the new/ name, settle() has not run yet
    std::optional<DurableFile> file_;  // tmp/<tmp_name_>; empty once committed
};

// Whether deliveries write unnamed files in tmp/ where they can (the default); tests turn it off
// to run the named path that file systems without O_TMPFILE take.
void use_unnamed_tmp_files(bool on);

// begin + commit in one call; ensures the Maildir first.
Result<std::string> deliver(const std::string& maildir, std::string_view message, std::string_view host = {});

// A message file COPY or MOVE takes into another folder: open for reading, its file name (for its
// S= and W=) and the info letters the copy gets.
struct CopySource {
    int fd = -1;
    std::string name;
    std::string letters;
};

// The copies of `sources` in the Maildir `to` (a folder of the same Maildir++ tree), each under a
// fresh unique name in cur/ ("<unique>:2,<letters>"): a hard link to the same file where the file
// system allows (a message file never changes; its flags live in its name, and the link keeps its
// mtime, the INTERNALDATE), else a written and fsync'd copy given the source's mtime. One fsync of
// cur/ then makes them all durable: a copy costs no fsync of its own. An error removes the copies
// made so far. Returns the new file names, in order.
Result<std::vector<std::string>> copy_messages(const std::string& to, std::span<const CopySource> sources,
                                               std::string_view host = {});

struct Entry {
    std::string name;    // file name (with ":2,flags" in cur/)
    std::string path;    // full path
    bool in_new = false;
    NameInfo info;       // parsed name
    uint64_t size = 0;   // bytes on disk
    uint64_t vsize = 0;  // CRLF size: from W= or, when absent, computed from the file
    // Without W= only (the file is read then): unterminated_octets of the file. ferry-mda stores every
    // message with a final LF, so its names with W= need none.
    uint64_t unterminated = 0;
    int64_t mtime = 0;   // delivery time (seconds)
    int64_t mtime_ns = 0;  // the same in nanoseconds: orders deliveries within one second
};

// Every message in new/ and cur/ (dot files and unparsable names skipped), sorted by mtime in
// nanoseconds, then (within one tick of the file system's clock) by made_before of the names.
// A message moved between new/ and cur/ by another reader during the scan may be missing from the list.
Result<std::vector<Entry>> list(const std::string& maildir);

// Removes files in tmp/ untouched (atime and mtime) for `age`; returns how many were removed.
size_t cleanup_tmp(const std::string& maildir, std::chrono::seconds age = kStaleTmpAge);

}  // namespace ferry::maildir

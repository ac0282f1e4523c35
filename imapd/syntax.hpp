// Shared pieces of the IMAP argument grammar (RFC 9051 section 9): atoms, astrings, numbers, a cursor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "imapd/reader.hpp"
#include "imapd/sequence.hpp"

namespace ferry::imap {

struct Command;

// RFC 7162 mod-sequence-value: 1..2^63-1.
constexpr uint64_t kMaxModseq = 9223372036854775807ull;

enum class AtomKind {
    atom,     // ATOM-CHAR only
    astring,  // ASTRING-CHAR: ATOM-CHAR and "]"
    list,     // list-char: ASTRING-CHAR and "%", "*"
    flag,     // "\" atom or atom (flag-keyword)
};
bool atom_ok(std::string_view s, AtomKind kind);
// A tagged BAD's text as an Error.
Error bad(std::string text);
// An atom of digits in [min, max].
bool number_of(const Arg& a, uint64_t& v, uint64_t min, uint64_t max);
// list-mailbox: a string or an atom of list-chars.
bool list_mailbox(const Arg& a, std::string& out);

// Walks the arguments of one command or list.
class Cursor {
public:
    explicit Cursor(const std::vector<Arg>& args) : args_(args) {}
    const Arg* peek() const { return i_ < args_.size() ? &args_[i_] : nullptr; }
    const Arg* next() { return i_ < args_.size() ? &args_[i_++] : nullptr; }
    Result<void> end() const;                        // BAD when arguments are left over
    bool astring(std::string& out);
    bool mailbox(std::string& out, bool normalize = true);  // an astring; INBOX in any case is "INBOX"
    bool number(uint64_t& v, uint64_t min, uint64_t max);
    bool sequence_set(SequenceSet& set);

private:
    const std::vector<Arg>& args_;
    size_t i_ = 0;
};

Result<void> parse_search_command(Cursor& c, Command& cmd, const Limits& limits);
Result<void> parse_fetch_command(Cursor& c, Command& cmd, const Limits& limits);

}  // namespace ferry::imap

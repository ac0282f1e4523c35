// Typed IMAP commands (RFC 3501, RFC 9051 and the extensions ferry-imapd speaks) parsed from a RawCommand.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "common/base/result.hpp"
#include "imapd/imap_date.hpp"
#include "imapd/reader.hpp"
#include "imapd/sequence.hpp"

namespace ferry::imap {

enum class Verb {
    capability, noop, logout, starttls, authenticate, login, enable, select, examine, create, delete_,
    rename, subscribe, unsubscribe, list, lsub, namespace_, status, append, check, close, unselect,
    expunge, search, fetch, store, copy, move, idle, id,
};

struct AuthenticateArgs {
    std::string mechanism;                         // upper-cased
    std::optional<std::string> initial_response;   // RFC 4959 SASL-IR, base64 as sent ("=" is empty)
};
struct LoginArgs {
    std::string user, password;
};
struct EnableArgs {
    std::vector<std::string> capabilities;         // upper-cased
};
// RFC 7162: SELECT (CONDSTORE) and (QRESYNC (uidvalidity modseq [known-uids [(seqs uids)]])).
struct Qresync {
    uint32_t uidvalidity = 0;
    uint64_t modseq = 0;
    std::optional<SequenceSet> known_uids;
    std::optional<std::pair<SequenceSet, SequenceSet>> seq_match;
};
struct SelectArgs {
    std::string mailbox;
    bool condstore = false;
    std::optional<Qresync> qresync;
};
// CREATE, DELETE, SUBSCRIBE, UNSUBSCRIBE (and STATUS/APPEND/COPY targets): names as sent, in
// modified UTF-7, except that any case of INBOX is "INBOX".
struct MailboxArgs {
    std::string mailbox;
    std::vector<std::string> use;                  // CREATE ... (USE (\Sent)) (RFC 6154)
};
struct RenameArgs {
    std::string from, to;
};
enum class StatusItem { messages, recent, uidnext, uidvalidity, unseen, deleted, size, highestmodseq, appendlimit };
// LIST (RFC 9051 section 6.3.9, RFC 5258 LIST-EXTENDED, RFC 6154, RFC 5819 LIST-STATUS).
struct ListArgs {
    bool subscribed = false, remote = false, recursive_match = false, special_use_sel = false;
    std::string reference;
    std::vector<std::string> patterns;
    bool ret_subscribed = false, ret_children = false, ret_special_use = false;
    std::vector<StatusItem> ret_status;
    bool extended = false;                         // selection or return options were given
};
struct LsubArgs {
    std::string reference, pattern;
};
struct StatusArgs {
    std::string mailbox;
    std::vector<StatusItem> items;
};
struct AppendMessage {
    std::vector<std::string> flags;
    std::optional<DateTime> date;
    std::string data;
    bool binary = false;                           // literal8 (RFC 3516)
};
struct AppendArgs {
    std::string mailbox;
    std::vector<AppendMessage> messages;           // more than one: MULTIAPPEND (RFC 3502)
};

// SEARCH keys (RFC 3501 section 6.4.4, RFC 9051 section 6.4.4, RFC 7162 MODSEQ, RFC 5032 OLDER/YOUNGER).
struct SearchKey {
    enum class Op {
        all, and_, or_, not_, answered, deleted, draft, flagged, seen, recent, new_, old, unanswered,
        undeleted, undraft, unflagged, unseen, keyword, unkeyword, bcc, body, cc, from, subject, text, to,
        header, before, on, since, sentbefore, senton, sentsince, larger, smaller, uid, seqset, modseq,
        older, younger,
    };
    Op op = Op::all;
    std::string str, str2;                         // KEYWORD flag; string; HEADER field-name and value
    Date date;
    uint64_t number = 0;                           // LARGER/SMALLER octets, MODSEQ, OLDER/YOUNGER seconds
    SequenceSet set;                               // UID and sequence-set keys
    std::vector<SearchKey> children;               // and_ (a list or the top level), or_ (2), not_ (1)
};
struct SearchArgs {
    std::optional<std::string> charset;            // upper-cased
    bool esearch = false;                          // RETURN (...) was given (RFC 4731 / RFC 9051)
    bool ret_min = false, ret_max = false, ret_all = false, ret_count = false, ret_save = false;
    SearchKey key;                                 // an and_ of the keys given
};

// FETCH items (RFC 9051 section 6.4.5, RFC 3516 BINARY, RFC 7162 MODSEQ).
struct Section {
    enum class Text { none, header, header_fields, header_fields_not, text, mime };
    std::vector<uint32_t> part;                    // "1.2" is {1, 2}; empty for the whole message
    Text text = Text::none;
    std::vector<std::string> fields;               // HEADER.FIELDS (...), upper-cased
    bool operator==(const Section&) const = default;
};
struct FetchItem {
    enum class Kind {
        envelope, flags, internaldate, rfc822, rfc822_header, rfc822_size, rfc822_text, body,
        bodystructure, uid, body_section, binary, binary_size, modseq,
    };
    Kind kind = Kind::flags;
    bool peek = false;                             // BODY.PEEK / BINARY.PEEK
    Section section;
    std::optional<std::pair<uint64_t, uint64_t>> partial;  // <offset.length>
};
struct FetchArgs {
    SequenceSet set;
    std::vector<FetchItem> items;                  // macros expanded
    std::optional<uint64_t> changed_since;         // RFC 7162
    bool vanished = false;                         // RFC 7162 QRESYNC, UID FETCH only
};
struct StoreArgs {
    SequenceSet set;
    enum class Mode { replace, add, remove } mode = Mode::replace;
    bool silent = false;
    std::vector<std::string> flags;
    std::optional<uint64_t> unchanged_since;       // RFC 7162
};
struct CopyArgs {                                  // COPY and MOVE (RFC 6851)
    SequenceSet set;
    std::string mailbox;
};
struct ExpungeArgs {
    std::optional<SequenceSet> uids;               // UID EXPUNGE (RFC 4315)
};
struct IdArgs {                                    // RFC 2971; NIL gives no fields
    std::vector<std::pair<std::string, std::optional<std::string>>> fields;
};
struct NoArgs {};

struct Command {
    std::string tag;
    std::string name;                              // as logged: "FETCH", "UID FETCH"
    Verb verb = Verb::noop;
    bool uid = false;
    std::variant<NoArgs, AuthenticateArgs, LoginArgs, EnableArgs, SelectArgs, MailboxArgs, RenameArgs, ListArgs,
                 LsubArgs, StatusArgs, AppendArgs, SearchArgs, FetchArgs, StoreArgs, CopyArgs, ExpungeArgs, IdArgs>
        args;
};

// Parses a framed command. The error's text is for "<tag> BAD <text>" (RFC 9051 section 7.1.3),
// "Unknown command" for a name ferry does not know. State checks are the session's job.
Result<Command> parse_command(RawCommand raw, const Limits& limits = {});

// The line ending IDLE (RFC 2177): "DONE" in any case.
bool is_idle_done(std::string_view line);
// A mailbox name as the commands carry it: INBOX in any case becomes "INBOX".
std::string normalize_mailbox(std::string name);

}  // namespace ferry::imap

// One IMAP connection: not authenticated, authenticated and logout states (RFC 9051 section 3) on a ferry::Stream.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/auth/auth.hpp"
#include "common/auth/sasl_login.hpp"
#include "common/event/event.hpp"
#include "common/event/session_set.hpp"
#include "common/event/deadline.hpp"
#include "common/event/stream.hpp"
#include "common/store/index.hpp"
#include "common/store/notify.hpp"
#include "imapd/command.hpp"
#include "imapd/fetch_cache.hpp"
#include "imapd/learn.hpp"
#include "imapd/reader.hpp"
#include "imapd/uid_list.hpp"

namespace ferry::imap {

class Server;

// "1:3,7" from ascending UID ranges; the ranges of ascending numbers (imapd/condstore.cpp).
std::string uid_set_text(const store::UidRanges& ranges);
// A mailbox name as the wire spells it: modified UTF-7, quoted (imapd/mailboxes.cpp).
std::string wire_name(const std::string& utf8);
store::UidRanges ranges_of(const std::vector<uint32_t>& sorted);
// The MIME tree of the message file at `fd`, read a chunk at a time, never whole (imapd/fetch_run.cpp);
// nullopt on a read error. `size` gets the octets read.
std::optional<mail::MimePart> parse_message_file(int fd, uint64_t& size);

class Session final : public Stream::Handler, public ServedSession, public store::FolderListener {
public:
    Session(Server& server, Fd fd, bool implicit_tls, std::string id);
    ~Session() override;
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Greets, or starts the TLS handshake first on an imaps connection.
    void start();

    void on_input(Stream& stream) noexcept override;
    void on_close(Stream& stream, const std::string& reason) noexcept override;
    void on_timeout(Stream& stream) noexcept override;
    void on_lifetime_expired() override;
    void on_stop() override;
    void on_output_low(Stream& stream) noexcept override;
    void on_folder_changed() noexcept override;

private:
    enum class State { handshake, not_authenticated, sasl, checking, authenticated, selected, idle, logout };

    void greet();
    void read_commands();
    void on_read_error(const ReadError& e);
    void dispatch(const Command& cmd);
    void bye(const std::string& text, const std::string& reason);
    std::string capabilities() const;
    bool plaintext_ok() const;

    void cmd_capability(const Command& cmd);
    void cmd_logout(const Command& cmd);
    void cmd_starttls(const Command& cmd);
    void cmd_login(const Command& cmd);
    void cmd_authenticate(const Command& cmd);
    void cmd_enable(const Command& cmd);
    void cmd_id(const Command& cmd);
    void cmd_namespace(const Command& cmd);
    void after_sasl(SaslLogin::Next next);
    bool open_account();

    // Mailbox commands (imapd/mailboxes.cpp).
    void cmd_list(const Command& cmd);
    void cmd_lsub(const Command& cmd);
    void cmd_create(const Command& cmd);
    void cmd_delete(const Command& cmd);
    void cmd_rename(const Command& cmd);
    void cmd_subscribe(const Command& cmd, bool on);
    void cmd_status(const Command& cmd);
    std::string status_items(const store::Index& index, const std::vector<StatusItem>& wanted) const;
    std::string list_status(const std::string& name, const std::vector<StatusItem>& items);
    bool list_matches(const ListArgs& a, const std::string& utf8) const;
    // A wire name (modified UTF-7) as the store spells it (UTF-8); answers NO and returns nothing when it is bad.
    std::optional<std::string> folder_name(const std::string& wire);
    bool folder_exists(const std::string& name);
    // The folder's index, synced with its Maildir and shared with the other sessions (SELECT, EXAMINE, STATUS).
    Result<std::shared_ptr<store::Index>> open_synced(const std::string& name);

    // Selected state (imapd/selected.cpp).
    bool selected() const;
    void cmd_select(const Command& cmd);
    void cmd_store(const Command& cmd);
    void cmd_expunge(const Command& cmd);
    void close_mailbox(bool expunge);
    // `sync`: false when the shared index was synced for this notification already.
    void report_changes(bool expunges, bool sync = true);
    std::optional<std::vector<uint32_t>> resolve_uids(const SequenceSet& set, bool uid);
    std::string flags_of(const store::Message& m) const;
    std::string flags_responses();
    std::string new_keywords();

    // FETCH (imapd/fetch_run.cpp): responses made message by message while the output stays under
    // a bound, a Slice per turn of the loop; input waits meanwhile.
    struct FetchJob;
    struct FetchJobDelete {
        void operator()(FetchJob* job) const;
    };
    void cmd_fetch(const Command& cmd);
    void fetch_produce();
    // Ends a slice of FETCH: waits for on_output_low when the output is over its bound, else for resume_ev_.
    void fetch_yield(FetchJob& job);
    void fetch_finish(std::string_view status, const std::string& text);
    // Ends a FETCH in progress; true when it was in the middle of a message, where no BYE can go.
    bool fetch_cut(const std::string& reason);
    void fetch_piece_step(FetchJob& job);
    size_t take_chunk(FetchJob& job, std::string_view raw, bool from_start);
    void fetch_flush(FetchJob& job);
    bool fetch_message(FetchJob& job, uint32_t uid);
    void fetch_response(FetchJob& job, const store::Message& m, const MessageInfo* info, bool add_flags);
    void fetch_literal(FetchJob& job, const FetchItem& item, const MessageInfo& info);
    std::string binary_size(FetchJob& job, const FetchItem& item, const MessageInfo& info);
    // ENVELOPE, sizes, date and part layout from the cache, or parsed from the file (opened into
    // `file`) and queued in `pending` for flush_cache (also used by SEARCH).
    std::optional<MessageInfo> message_info(uint32_t uid, Fd& file, std::vector<store::CacheValue>& pending);
    std::optional<MessageInfo> info_from_name(uint32_t uid, Fd& file);
    void flush_cache(std::vector<store::CacheValue>& pending);
    // CONDSTORE and QRESYNC (imapd/condstore.cpp).
    store::UidRanges vanished_since(uint64_t since, const std::vector<Span>& within) const;
    std::string fetch_extras(const store::Message& m, bool with_uid) const;
    void qresync_select(const Qresync& q);
    void enable_condstore();
    bool fetch_vanished(const Command& cmd, const FetchArgs& a);
    // \Recent (RFC 3501): takes the messages no session has seen yet; how many of uids_ are recent.
    void take_recent();
    size_t recent_count() const;
    bool is_recent(uint32_t uid) const;
    // "$" (RFC 5182) as spans of UIDs or of sequence numbers of the messages still there.
    std::vector<Span> saved_spans(bool uid) const;

    // APPEND, COPY, MOVE (imapd/append.cpp).
    void cmd_append(const Command& cmd);
    void cmd_copy(const Command& cmd);
    std::optional<Verdict> learning(const std::string& target);
    // SEARCH (imapd/search_run.cpp): messages looked at a Slice per turn of the loop; input waits meanwhile.
    struct SearchJob;
    struct SearchJobDelete {
        void operator()(SearchJob* job) const;
    };
    void cmd_search(const Command& cmd);
    void search_step();
    void search_message(SearchJob& job, size_t i);
    void search_finish(SearchJob& job);
    // Drops a SEARCH in progress (the session ends); nothing of it has been written.
    void search_cut(const std::string& reason);
    struct Candidate;  // one message as a search looks at it
    bool search_match(const SearchKey& k, const Candidate& c);
    void save_result(const SearchArgs& a, const std::vector<uint32_t>& uids);

    // IDLE (RFC 2177): the server's FolderWatcher reports changes to the selected folder until DONE.
    void cmd_idle(const Command& cmd);
    void idle_line(std::string_view line);
    // imapd_command_deadline runs while a command is partly read.
    void track_deadline();
    // A FETCH or SEARCH is in progress: its slices run, no further command is read.
    bool busy() const { return fetch_ || search_; }
    // The next slice of a FETCH or SEARCH, from a clean stack on the next turn of the loop.
    void resume_later();
    static void on_resume(evutil_socket_t, short, void* arg) noexcept;

    Result<store::Index*> target_index(const std::string& name, std::shared_ptr<store::Index>& other);
    void login_ok(const std::string& user);
    void on_auth_result(const AuthResult& r);

    void reply(std::string_view text) { stream_.write(text); }
    void tagged(const std::string& status, std::string_view text);

    Server& server_;
    Stream stream_;
    std::string id_;
    bool implicit_tls_;
    State state_ = State::handshake;
    CommandReader reader_;
    std::string pending_;       // input taken from the stream; the reader has consumed it up to pending_at_
    size_t pending_at_ = 0;
    std::string tag_;           // the command in progress (AUTHENTICATE, a password check)
    LoginCheck login_check_;
    SaslLogin sasl_;            // after login_check_, which it uses
    std::string login_;         // the authenticated address
    std::string root_;          // the account's Maildir (INBOX), its folders beside
    // The selected mailbox: its index and the UIDs the client knows, sequence number = position + 1.
    // Shared by the sessions of this process that selected the same folder (Server::share_index).
    std::shared_ptr<store::Index> index_;
    UidList uids_;
    std::string mailbox_;
    bool read_only_ = false;
    uint64_t modseq_seen_ = 0;  // flag changes up to this MODSEQ have been reported
    bool condstore_ = false;    // RFC 7162: enabled, or used by a CONDSTORE-enabling command
    bool qresync_ = false;      // ENABLE QRESYNC: VANISHED instead of EXPUNGE
    bool rev2_ = false;         // ENABLE IMAP4rev2: RFC 9051 responses (ESEARCH, no RECENT)
    store::UidRanges recent_;   // UIDs \Recent to this session (RFC 3501 section 2.3.2)
    std::vector<uint32_t> saved_;  // UIDs of SEARCH RETURN (SAVE), "$" (RFC 5182); reset at SELECT
    size_t keywords_announced_ = 0;  // the index's keywords the last FLAGS response named
    State idle_from_ = State::authenticated;
    std::unique_ptr<FetchJob, FetchJobDelete> fetch_;  // the FETCH in progress
    std::unique_ptr<SearchJob, SearchJobDelete> search_;  // the SEARCH in progress
    EventPtr resume_ev_;             // zero-delay timer: the next slice of fetch_ or search_
    store::FolderWatch idle_watch_;  // while IDLE in the selected state
    bool backlogged_ = false;        // input paused until the client reads our output
    RequestDeadline deadline_;
};

}  // namespace ferry::imap

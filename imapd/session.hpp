// One IMAP connection: not authenticated, authenticated and logout states (RFC 9051 section 3) on a ferry::Stream.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/auth/auth.hpp"
#include "common/auth/sasl.hpp"
#include "common/event/event.hpp"
#include "common/event/session_set.hpp"
#include "common/event/deadline.hpp"
#include "common/event/stream.hpp"
#include "common/store/index.hpp"
#include "common/store/notify.hpp"
#include "imapd/command.hpp"
#include "imapd/reader.hpp"

namespace ferry::imap {

class Server;

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
    void sasl_step(const sasl::Step& step);
    bool open_account();

    // Mailbox commands (imapd/mailboxes.cpp).
    void cmd_list(const Command& cmd);
    void cmd_lsub(const Command& cmd);
    void cmd_create(const Command& cmd);
    void cmd_delete(const Command& cmd);
    void cmd_rename(const Command& cmd);
    void cmd_subscribe(const Command& cmd, bool on);
    void cmd_status(const Command& cmd);
    // A wire name (modified UTF-7) as the store spells it (UTF-8); answers NO and returns nothing when it is bad.
    std::optional<std::string> folder_name(const std::string& wire);
    bool folder_exists(const std::string& name);
    // The folder's index, opened and synced with its Maildir (SELECT, EXAMINE, STATUS).
    Result<store::Index> open_synced(const std::string& name);

    // Selected state (imapd/selected.cpp).
    bool selected() const;
    void cmd_select(const Command& cmd);
    void cmd_fetch(const Command& cmd);
    bool fetch_one(size_t seq, uint32_t uid, const FetchArgs& a, bool by_uid, std::string& out);
    void cmd_store(const Command& cmd);
    void cmd_expunge(const Command& cmd);
    void close_mailbox(bool expunge);
    // `sync`: false when the shared index was synced for this notification already.
    void report_changes(bool expunges, bool sync = true);
    std::optional<std::vector<uint32_t>> resolve_uids(const SequenceSet& set, bool uid);
    std::string flags_of(const store::Message& m) const;

    // APPEND, COPY, MOVE (imapd/append.cpp).
    void cmd_append(const Command& cmd);
    void cmd_copy(const Command& cmd);
    // SEARCH (imapd/search_run.cpp).
    void cmd_search(const Command& cmd);
    struct Candidate;  // one message as a search looks at it
    bool search_match(const SearchKey& k, const Candidate& c);

    // IDLE (RFC 2177): the server's FolderWatcher reports changes to the selected folder until DONE.
    void cmd_idle(const Command& cmd);
    void idle_line(std::string_view line);
    // imapd_command_deadline runs while a command is partly read.
    void track_deadline();

    Result<store::Index*> target_index(const std::string& name, std::optional<store::Index>& other);
    void check_password(std::string user, std::string password);
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
    std::unique_ptr<sasl::Exchange> sasl_;
    AuthTicket ticket_;
    std::string login_;         // the authenticated address
    std::string root_;          // the account's Maildir (INBOX), its folders beside
    // The selected mailbox: its index and the UIDs the client knows, sequence number = position + 1.
    // Shared by the sessions of this process that selected the same folder (Server::share_index).
    std::shared_ptr<store::Index> index_;
    std::vector<uint32_t> uids_;
    std::string mailbox_;
    bool read_only_ = false;
    uint64_t modseq_seen_ = 0;  // flag changes up to this MODSEQ have been reported
    State idle_from_ = State::authenticated;
    store::FolderWatch idle_watch_;  // while IDLE in the selected state
    bool backlogged_ = false;        // input paused until the client reads our output
    RequestDeadline deadline_;
};

}  // namespace ferry::imap

// Local submission: ferry-sendmail's LMTP on submit_socket, each message committed into the spool as smtpd commits it.
#include "mta/qmgr/pickup.hpp"

#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ctime>
#include <sstream>

#include "common/base/log.hpp"
#include "common/event/net.hpp"
#include "common/mail/address.hpp"
#include "common/mail/date.hpp"
#include "common/program/daemon.hpp"
#include "common/smtp/smtp_proto.hpp"

namespace ferry::qmgr {

namespace {

constexpr size_t kFlushSize = 64 * 1024;  // message bytes gathered before a write

Error write_failure(const Error& e) {
    return make_error(451, "4.3.0", "Error: queue file write error, try again later", e.what());
}

// Text inside a header: printable ASCII without parentheses, so it can neither fold nor end the comment.
std::string comment_text(const std::string& s) {
    std::string r;
    for (char c : s.substr(0, 64)) r += (c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '\\') ? c : '?';
    return r.empty() ? "unknown" : r;
}

LocalUser peer_user(int fd) {
    LocalUser u;
    ucred cred{};
    socklen_t len = sizeof cred;
    // A Unix socket always has its peer's credentials; without them the connection is nobody's.
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        log::warn("submit: no peer credentials");
        u.uid = static_cast<uid_t>(-1);
        u.name = "unknown";
        return u;
    }
    u.uid = cred.uid;
    passwd pw, *found = nullptr;
    char buf[4096];
    u.name = getpwuid_r(cred.uid, &pw, buf, sizeof buf, &found) == 0 && found ? found->pw_name : "unknown";
    return u;
}

}  // namespace

std::string local_received_header(const LocalUser& user, const std::string& hostname, const std::string& queue_id,
                                  const std::vector<std::string>& recipients, int64_t when) {
    std::string h = "Received: from local (uid " + std::to_string(user.uid) + ", user " + comment_text(user.name) + ")\n";
    h += "\tby " + comment_text(hostname) + " (ferry-sendmail) id " + queue_id;
    if (recipients.size() == 1) h += "\n\tfor <" + comment_text(recipients.front()) + ">";
    h += "; " + mail::rfc5322_date(when) + "\n";
    return h;
}

bool submitted_by(const spool::Envelope& env, uid_t uid) {
    return env.client == "local" && env.helo == "uid " + std::to_string(uid);
}

std::string listing_for(const std::vector<spool::QueueEntry>& entries, uid_t uid, bool all) {
    if (all) return spool::format_listing(entries);
    std::vector<spool::QueueEntry> own;
    for (const auto& e : entries)
        if (submitted_by(e.envelope, uid)) own.push_back(e);
    std::string out = spool::format_listing(own);
    if (size_t others = entries.size() - own.size(); others > 0)
        out += "(" + std::to_string(others) + (others == 1 ? " message" : " messages") +
               " of other senders not shown: only root and the mail system's user see the whole queue)\n";
    return out;
}

PickupBackend::PickupBackend(const Config& config, WorkerPool& pool, OnQueued on_queued, LocalUser user,
                             std::string session_id)
    : config_(config), pool_(pool), on_queued_(std::move(on_queued)), user_(std::move(user)),
      session_id_(std::move(session_id)) {}

PickupBackend::~PickupBackend() {
    *alive_ = false;
    reset();
}

void PickupBackend::begin(std::string_view sender) { sender_ = sender; }

// Only addresses qmgr can route: a quoted local part or an address literal has no mailbox here.
std::optional<Error> PickupBackend::recipient(std::string_view address) {
    if (!valid_address(address, AddressForm::utf8))
        return make_error(553, "5.1.3", "Bad recipient address syntax: <" + std::string(address) + ">");
    recipients_.emplace_back(address);
    return std::nullopt;
}

void PickupBackend::data_start() {
    spool::Envelope env;
    env.arrival = std::time(nullptr);
    env.sender = sender_;
    env.client = "local";
    env.helo = "uid " + std::to_string(user_.uid);
    env.auth = user_.name;  // the kernel vouches for the local user (SO_PEERCRED)
    env.recipients = recipients_;
    auto writer = spool::Writer::create(config_.str("spool_dir"), env);
    if (!writer) {
        error_ = write_failure(writer.error());
        return;
    }
    writer_.emplace(std::move(writer.value()));
    pending_ = local_received_header(user_, my_hostname(config_), writer_->id(), recipients_, env.arrival);
    // Root and qmgr's own user are ferry's daemons (ferry-mda's redirects keep their results).
    if (user_.uid != 0 && user_.uid != geteuid()) filter_.emplace(my_hostname(config_));
}

void PickupBackend::data(std::string_view chunk) {
    size_ += chunk.size();
    if (!writer_) return;
    if (filter_) filter_->feed(chunk, pending_);
    else pending_.append(chunk);
    if (pending_.size() >= kFlushSize) write_out();
}

void PickupBackend::write_out() {
    if (writer_ && !pending_.empty() && !error_)
        if (auto r = writer_->append(pending_); !r) error_ = write_failure(r.error());
    pending_.clear();
}

void PickupBackend::answer_all(const ReplyFn& reply, const Error& e) {
    size_t n = recipients_.size();
    for (size_t i = 0; i < n; ++i) reply(e);  // the last call may reset() this transaction
}

// What the filter removed, for the log line of the queued message ("" when nothing).
std::string PickupBackend::removed_fields() const {
    if (!filter_) return "";
    std::string host = my_hostname(config_), r;
    auto add = [&](size_t n, const std::string& what) {
        if (n) r += "; removed " + std::to_string(n) + " " + what;
    };
    add(filter_->dropped(), "Authentication-Results header(s) claiming " + host);
    add(filter_->spam_dropped(), "X-Spam-* header(s) from a local user");
    add(filter_->virus_dropped(), "X-Virus-Scanned header(s) claiming " + host);
    return r.empty() ? r : r.substr(2);
}

void PickupBackend::end_of_data(const std::optional<Error>& refused, ReplyFn reply) {
    if (filter_ && writer_) filter_->finish(pending_);
    write_out();
    std::string id = writer_ ? writer_->id() : "NOQUEUE";
    if (refused || error_) {
        Error e = refused ? *refused : *error_;
        log::info("%s: %s: discarded: from=<%s> uid=%u: %s", session_id_.c_str(), id.c_str(), sender_.c_str(),
                  static_cast<unsigned>(user_.uid), e.what().c_str());
        if (writer_) writer_->discard();
        writer_.reset();
        return answer_all(reply, e);
    }
    // The commit's fsyncs run on a worker: the scheduler's loop never waits for the disk here.
    auto writer = std::make_shared<spool::Writer>(std::move(*writer_));
    writer_.reset();
    auto result = std::make_shared<Result<void>>(Result<void>{});
    std::weak_ptr<bool> alive = alive_;
    OnQueued on_queued = on_queued_;
    std::string log_line = "from=<" + sender_ + "> size=" + std::to_string(size_) + " nrcpt=" +
                           std::to_string(recipients_.size()) + " uid=" + std::to_string(user_.uid) + " user=" + user_.name;
    std::string sid = session_id_, removed = removed_fields();
    pool_.submit([writer, result]() { *result = writer->commit(); },
        [this, writer, result, alive, on_queued, log_line, sid, removed, reply]() {
            if (!*result) {
                log::errorx("%s: %s: not queued: %s", sid.c_str(), writer->id().c_str(), result->error().what().c_str());
                if (!alive.expired()) answer_all(reply, write_failure(result->error()));
                return;
            }
            std::string queued = writer->id();  // a taken id makes the commit choose another
            if (!removed.empty()) log::info("%s: %s: %s", sid.c_str(), queued.c_str(), removed.c_str());
            log::info("%s: %s: %s (queued)", sid.c_str(), queued.c_str(), log_line.c_str());
            on_queued(queued);
            if (alive.expired()) return;  // the client went away: the message is queued all the same
            size_t n = recipients_.size();
            for (size_t i = 0; i < n; ++i) reply(std::string("Ok: queued as " + queued));
        });
}

void PickupBackend::reset() {
    if (writer_) writer_->discard();
    writer_.reset();
    pending_.clear();
    filter_.reset();
    error_.reset();
    recipients_.clear();
    sender_.clear();
    size_ = 0;
}

// The listing is read off the loop: a queue of 100,000 files must not stall the scheduler.
bool PickupBackend::private_command(std::string_view line, AnswerFn answer) {
    std::string verb(line.substr(0, line.find(' ')));
    for (char& c : verb) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
    if (verb != "XQUEUE") return false;
    if (line.size() > verb.size()) {
        answer(smtp::reply(501, "5.5.4", "Syntax: XQUEUE"));
        return true;
    }
    bool all = user_.uid == 0 || user_.uid == geteuid();
    auto listing = std::make_shared<Result<std::string>>(std::string());
    pool_.submit(
        [listing, spool_dir = config_.str("spool_dir"), uid = user_.uid, all]() {
            auto entries = spool::read_queue(spool_dir);
            if (entries) *listing = listing_for(*entries, uid, all);
            else *listing = entries.error();
        },
        [listing, answer, sid = session_id_, uid = user_.uid]() {
            if (!*listing) {
                log::warnx("%s: queue listing for uid %u: %s", sid.c_str(), static_cast<unsigned>(uid),
                           listing->error().what().c_str());
                return answer(smtp::reply(451, "4.3.0", "Cannot read the queue, try again later"));
            }
            std::vector<std::string> lines;
            std::istringstream in(listing->value());
            for (std::string l; std::getline(in, l);) lines.push_back(std::move(l));
            log::info("%s: queue listing for uid %u", sid.c_str(), static_cast<unsigned>(uid));
            answer(smtp::reply_lines(250, lines));
        });
    return true;
}

namespace {

// Local submission takes ferry-smtpd's limits: a message a script sends is held to what a client's would be.
smtp::LmtpSessionSettings pickup_settings(const Config& config) {
    smtp::LmtpSessionSettings s;
    s.hostname = my_hostname(config);
    s.greeting = "ferry-qmgr local submission ready";
    s.timeout = static_cast<double>(config.duration("smtpd_timeout").count());
    s.max_recipients = static_cast<size_t>(config.integer("smtpd_max_recipients"));
    s.message_size_limit = config.size("message_size_limit");
    s.limits.max_command_length = std::max<size_t>(512, config.size("smtpd_max_command_length"));
    s.data_limits.max_message_size = s.message_size_limit;
    s.data_limits.max_line_length = std::max<size_t>(1000, config.size("smtpd_max_line_length"));
    s.data_limits.max_header_size = config.size("smtpd_max_header_size");
    return s;
}

}  // namespace

PickupServer::PickupServer(event_base* base, const Config& config, PickupBackend::OnQueued on_queued)
    : config_(config),
      settings_(pickup_settings(config)),
      on_queued_(std::move(on_queued)),
      listener_(base,
                {config.str("submit_socket"), 0666, static_cast<size_t>(config.integer("smtpd_max_sessions")), "S",
                 "submit", "smtpd_max_sessions"},
                settings_, [this](SessionSet::Accepted& a) { return make_backend(a); }) {}

std::unique_ptr<smtp::LmtpBackend> PickupServer::make_backend(SessionSet::Accepted& a) {
    if (!pool_) log::panic("submit: a session before the worker pool");
    LocalUser user = peer_user(a.fd.get());
    log::info("%s: local submission from uid %u (%s)", a.id.c_str(), static_cast<unsigned>(user.uid), user.name.c_str());
    return std::make_unique<PickupBackend>(config_, *pool_, on_queued_, std::move(user), a.id);
}

}  // namespace ferry::qmgr

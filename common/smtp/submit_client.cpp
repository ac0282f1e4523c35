// Local submission as a client (ferry-sendmail, ferry-mda): LMTP over submit_socket to ferry-qmgr, blocking; and the queue listing there.
#include "common/smtp/submit_client.hpp"

#include <sys/socket.h>
#include <sys/time.h>
#include <sysexits.h>

#include <cerrno>
#include <cstdio>
#include <variant>

#include "common/base/fs.hpp"
#include "common/event/net.hpp"
#include "common/mail/wire.hpp"

namespace ferry::smtp {

namespace {

class Client {
public:
    Client(Fd fd, bool verbose, const ReplyLimits& limits = {})
        : fd_(std::move(fd)), verbose_(verbose), reader_(limits) {}

    bool send_line(const std::string& line) {
        if (verbose_) fprintf(stderr, ">>> %s\n", line.c_str());
        return send_raw(line + "\r\n");
    }
    bool send_raw(const std::string& bytes) { return write_all(fd_.get(), bytes.data(), bytes.size()).ok(); }

    // One reply; code 0 with the reason when the connection failed.
    Reply read_reply() {
        for (;;) {
            if (!buf_.empty()) {
                auto step = reader_.feed(buf_);
                buf_.erase(0, step.consumed);
                if (step.status == ReplyReader::Status::done) {
                    Reply r = reader_.take();
                    if (verbose_)
                        for (size_t i = 0; i < r.lines.size(); ++i)
                            fprintf(stderr, "<<< %d%c%s\n", r.code, i + 1 < r.lines.size() ? '-' : ' ', r.lines[i].c_str());
                    return r;
                }
                if (step.status == ReplyReader::Status::error) return lost("bad reply: " + reader_.error());
            }
            char chunk[4096];
            ssize_t n = read(fd_.get(), chunk, sizeof chunk);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return lost("ferry-qmgr did not answer in time");
            if (n <= 0) return lost("ferry-qmgr closed the connection");
            buf_.append(chunk, static_cast<size_t>(n));
        }
    }

    Reply command(const std::string& line) {
        if (!send_line(line)) return lost("cannot write to ferry-qmgr");
        return read_reply();
    }

private:
    static Reply lost(const std::string& why) {
        Reply r;
        r.text = why;
        return r;
    }

    Fd fd_;
    bool verbose_;
    std::string buf_;
    ReplyReader reader_;
};

SubmitOutcome failed(int code, const Reply& r, const std::string& what) {
    SubmitOutcome o;
    o.reply = r;
    if (r.code == 0 || (r.code >= 400 && r.code < 500)) o.exit_code = EX_TEMPFAIL;
    else o.exit_code = code;
    o.error = what + ": " + (r.code ? r.text : r.text.empty() ? "no reply" : r.text);
    if (r.code == 0) {
        o.reply.code = 451;
        o.reply.enhanced = "4.3.0";
        o.reply.text = "451 4.3.0 " + r.text;
    }
    return o;
}

// The socket with both timeouts set, or why not.
Result<Fd> connect_qmgr(const std::string& socket_path, int timeout_seconds) {
    auto fd = net::connect_unix(socket_path);
    if (!fd) return make_error(0, "", "ferry-qmgr is not running or not reachable (" + fd.error().what() + ")");
    timeval tv{timeout_seconds, 0};
    setsockopt(fd->get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd->get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return std::move(fd.value());
}

// 452 4.5.3: this transaction takes no more recipients (RFC 5321 4.5.3.1.10), the rest go in another.
bool too_many_recipients(const Reply& r) { return r.code == 452 && r.enhanced == "4.5.3"; }

// One transaction on its own connection, open up to DATA.
struct Transaction {
    Client client;
    std::vector<std::string> recipients;
};

// A connection greeted, with LHLO and MAIL FROM accepted; else the outcome that ends the command.
std::variant<Transaction, SubmitOutcome> open_transaction(const std::string& socket_path, const std::string& helo,
                                                    const Submission& s, bool verbose, int timeout_seconds) {
    auto fd = connect_qmgr(socket_path, timeout_seconds);
    if (!fd) {
        Reply r;
        r.text = fd.error().text;
        return failed(EX_TEMPFAIL, r, "cannot submit");
    }
    Transaction t{Client(std::move(fd.value()), verbose), {}};
    Reply r = t.client.read_reply();
    if (r.code != 220) return failed(EX_TEMPFAIL, r, "ferry-qmgr greeting");
    if (r = t.client.command("LHLO " + helo); !r.ok()) return failed(EX_SOFTWARE, r, "LHLO");
    if (r = t.client.command("MAIL FROM:<" + s.sender + ">"); !r.ok())
        return failed(EX_DATAERR, r, "sender <" + s.sender + ">");
    return t;
}

void quit_all(std::vector<Transaction>& txs) {
    for (auto& t : txs) (void)t.client.command("QUIT");
}

// DATA, the message, then one reply per recipient of the transaction.
SubmitOutcome send_message(Transaction& t, const std::string& wire, bool verbose) {
    Reply r = t.client.command("DATA");
    if (r.code != 354) return failed(EX_DATAERR, r, "DATA");
    if (verbose) fprintf(stderr, ">>> (message, %zu bytes)\n>>> .\n", wire.size());
    if (!t.client.send_raw(wire)) return failed(EX_TEMPFAIL, Reply{}, "cannot write the message to ferry-qmgr");
    SubmitOutcome o;
    for (const auto& to : t.recipients) {
        r = t.client.read_reply();
        if (!r.ok()) return failed(EX_DATAERR, r, "message for <" + to + ">");
        o.reply = r;
    }
    (void)t.client.command("QUIT");
    o.exit_code = EX_OK;
    return o;
}

}  // namespace

// Recipients beyond qmgr's limit per transaction (smtpd_max_recipients) go into further
// transactions, each on a connection of its own, all held open until every recipient is accepted:
// a refused recipient still leaves nothing queued. Only then does each transaction send the message.
SubmitOutcome submit(const std::string& socket_path, const std::string& helo, const Submission& s, bool verbose,
               int timeout_seconds) {
    std::vector<Transaction> txs;
    bool next = true;  // the recipient goes into a new transaction
    for (const auto& to : s.recipients) {
        for (;;) {
            if (next) {
                auto t = open_transaction(socket_path, helo, s, verbose, timeout_seconds);
                if (auto* o = std::get_if<SubmitOutcome>(&t)) {
                    quit_all(txs);
                    return *o;
                }
                txs.push_back(std::move(std::get<Transaction>(t)));
                next = false;
            }
            Reply r = txs.back().client.command("RCPT TO:<" + to + ">");
            if (r.ok()) {
                txs.back().recipients.push_back(to);
                break;
            }
            if (!too_many_recipients(r) || txs.back().recipients.empty()) {
                quit_all(txs);
                return failed(EX_NOUSER, r, "recipient <" + to + ">");
            }
            next = true;
        }
    }
    std::string wire = mail::wire_encode(s.message);
    SubmitOutcome o;
    size_t queued = 0;
    for (auto& t : txs) {
        o = send_message(t, wire, verbose);
        if (o.exit_code != EX_OK) {
            if (queued > 0)
                o.error += " (queued already for the first " + std::to_string(queued) + " of " +
                           std::to_string(s.recipients.size()) + " recipients)";
            return o;
        }
        queued += t.recipients.size();
    }
    return o;
}

QueueListing queue_listing(const std::string& socket_path, bool verbose, int timeout_seconds) {
    QueueListing l;
    auto fd = connect_qmgr(socket_path, timeout_seconds);
    if (!fd) {
        l.error = fd.error().text;
        l.unreachable = true;
        return l;
    }
    // A listing has a line or more per message: no cap of a reply from a stranger applies here.
    Client c(std::move(fd.value()), verbose, ReplyLimits{50'000'000, 65536});
    Reply r = c.read_reply();
    if (r.code != 220) {
        l.error = "ferry-qmgr greeting: " + (r.text.empty() ? "no reply" : r.text);
        return l;
    }
    r = c.command("XQUEUE");
    (void)c.command("QUIT");
    if (!r.ok()) {
        l.error = "ferry-qmgr: " + (r.text.empty() ? "no reply" : r.text);
        return l;
    }
    for (const auto& line : r.lines) l.text += line + "\n";
    return l;
}

}  // namespace ferry::smtp

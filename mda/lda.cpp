// LDA mode: `ferry-mda -d user@domain [-f sender] < message`, for Postfix, Exim or procmail-style callers.
#include "mda/lda.hpp"

#include <unistd.h>

#include <cerrno>

#include "common/auth/accounts.hpp"
#include "common/program/daemon.hpp"
#include "common/base/log.hpp"
#include "common/smtp/smtp_proto.hpp"
#include "common/spool/spool.hpp"
#include "mda/delivery.hpp"
#include "mda/trace_headers.hpp"

namespace ferry::mda {

namespace {

// Reads all of `fd`, at most `limit` + 1 bytes so an oversized message is known without storing it.
Result<std::string> read_message(int fd, uint64_t limit) {
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return sys_error("cannot read the message from standard input");
        if (n == 0) return out;
        if (out.size() + static_cast<size_t>(n) > limit) {
            out.append(buf, static_cast<size_t>(limit + 1 - out.size()));
            return out;
        }
        out.append(buf, static_cast<size_t>(n));
    }
}

// "user@domain" or "<user@domain>" as a path; `allow_null` accepts "" and "<>".
Result<smtp::Path> parse_address(std::string text, bool allow_null) {
    if (text.empty() || text.front() != '<') text = "<" + text + ">";
    return smtp::parse_path(text, allow_null);
}

}  // namespace

int run_lda(const Config& config, const std::string& recipient, const std::optional<std::string>& sender, int in_fd) {
    auto rcpt = parse_address(recipient, false);
    if (!rcpt) {
        log::errorx("-d %s: %s", recipient.c_str(), rcpt.error().what().c_str());
        return kExitUsage;
    }
    auto from = parse_address(sender.value_or(""), true);
    if (!from) {
        log::errorx("-f %s: %s", sender.value_or("").c_str(), from.error().what().c_str());
        return kExitUsage;
    }
    std::string from_mailbox = from->null ? "" : from->mailbox();

    auto accounts = open_account_db(config.str("account_db"));
    Deliverer deliverer(config, *accounts);
    auto account = deliverer.find_account(rcpt->mailbox());
    if (!account) {
        log::errorx("to=<%s>: %s", rcpt->mailbox().c_str(), account.error().what().c_str());
        return account.error().code == 550 ? kExitNoUser : kExitTempFail;
    }

    uint64_t limit = smtp::delivery_size_limit(config.size("message_size_limit"));
    auto raw = read_message(in_fd, limit);
    if (!raw) {
        log::errorx("%s", raw.error().what().c_str());
        return kExitTempFail;
    }
    std::string message = to_lf(*raw);
    if (raw->size() > limit) {
        log::errorx("to=<%s>: message larger than message_size_limit (%llu bytes)", account->address.c_str(),
                    static_cast<unsigned long long>(limit));
        return kExitDataErr;
    }
    // The rule of the SMTP and LMTP DATA reader (smtp::nul_error): a NUL is refused, never stored.
    if (raw->find('\0') != std::string::npos) {
        log::errorx("to=<%s>: message refused: %s", account->address.c_str(), smtp::nul_error().text.c_str());
        return kExitDataErr;
    }
    std::string qid = queue_id_from_received(message);
    if (qid.empty()) qid = spool::new_queue_id();

    auto maildir = deliverer.prepare(*account);
    if (!maildir) {
        log::errorx("%s: to=<%s> not delivered: %s", qid.c_str(), account->address.c_str(), maildir.error().what().c_str());
        // Only a permanent error (the address cannot name a Maildir) may bounce; a disk error is the
        // 451 4.3.0 LMTP would answer, so the MTA keeps the message and tries again.
        return maildir.error().code >= 500 ? kExitCantCreat : kExitTempFail;
    }
    auto name = deliverer.write(qid, *account, *maildir, from_mailbox, message);
    if (!name) {
        log::errorx("%s: to=<%s> not delivered: %s", qid.c_str(), account->address.c_str(), name.error().what().c_str());
        return name.error().code >= 500 ? kExitCantCreat : kExitTempFail;
    }
    log::info("%s: to=<%s> delivered to maildir as %s", qid.c_str(), account->address.c_str(), name->c_str());
    test_pause_point(config, "mda-before-reply", qid);
    return kExitOk;
}

}  // namespace ferry::mda

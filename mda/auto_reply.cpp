// Mail ferry-mda sends because of a user's rules: Sieve redirects and vacation replies, queued through ferry-qmgr.
#include "mda/auto_reply.hpp"

#include <sysexits.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <random>

#include "common/base/log.hpp"
#include "common/program/daemon.hpp"
#include "common/smtp/submit_client.hpp"
#include "mda/auto_reply_mail.hpp"
#include "mda/vacation_memory.hpp"

namespace ferry::mda {

namespace {

constexpr int64_t kDay = 86400;

// "<5f3a1c2b.1a2b3c4d5e6f7a8b.vacation@mx.example>": unique without any state.
std::string new_message_id(const std::string& hostname, int64_t now) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    char buf[64];
    snprintf(buf, sizeof buf, "%llx.%016llx", static_cast<unsigned long long>(now),
             static_cast<unsigned long long>(rng()));
    return "<" + std::string(buf) + ".vacation@" + hostname + ">";
}

}  // namespace

AutoReply::AutoReply(const Config& config) : config_(config) {}

Result<void> AutoReply::submit(const std::string& qid, const std::string& sender, const std::string& to,
                               std::string message) {
    smtp::Submission s{sender, {to}, std::move(message)};
    int timeout = static_cast<int>(std::max<int64_t>(1, config_.duration("sieve_submit_timeout").count()));
    smtp::SubmitOutcome o = smtp::submit(config_.str("submit_socket"), my_hostname(config_), s, false, timeout);
    if (o.exit_code == EX_OK) return {};
    log::warnx("%s: cannot queue a message to <%s>: %s", qid.c_str(), to.c_str(), o.error.c_str());
    return make_error(451, "4.3.0", "cannot queue the message through ferry-qmgr", o.error);
}

// RFC 5228 4.2; the envelope sender per sieve_redirect_envelope_from, as Pigeonhole's key of that name.
Result<void> AutoReply::redirect(const Original& m, const std::string& to) {
    size_t max_hops = static_cast<size_t>(std::max<int64_t>(0, config_.integer("sieve_redirect_max_delivered_to")));
    if (auto loop = redirect_loop(m.message, m.recipient, max_hops)) {
        log::warnx("%s: redirect to <%s> for <%s> refused: %s", m.qid.c_str(), to.c_str(), m.recipient.c_str(),
                   loop->c_str());
        return make_error(554, "5.4.6", "Sieve redirect refused: " + *loop);
    }
    std::string sender = config_.str("sieve_redirect_envelope_from") == "recipient" ? m.recipient : m.sender;
    if (auto r = submit(m.qid, sender, to, redirected_message(m.message, m.recipient)); !r) return r.error();
    log::info("%s: redirected to <%s> for <%s> from=<%s>", m.qid.c_str(), to.c_str(), m.recipient.c_str(),
              sender.c_str());
    return {};
}

// RFC 5230 4.2 and 5: one reply per handle and sender within :days, from the null sender (5.1).
Result<bool> AutoReply::vacation(const Original& m, const std::string& maildir, const sieve::Vacation& v) {
    std::string to = v.to.empty() ? m.sender : v.to;
    std::string why = !v.suppressed.empty() ? v.suppressed : to.empty() ? "the null sender" : "";
    if (!why.empty()) {
        log::info("%s: vacation for <%s>: no reply to <%s>: %s", m.qid.c_str(), m.recipient.c_str(), to.c_str(),
                  why.c_str());
        return false;
    }
    auto memory = VacationMemory::open(maildir + "/sieve");
    if (!memory) {
        log::warnx("%s: vacation for <%s>: %s", m.qid.c_str(), m.recipient.c_str(), memory.error().what().c_str());
        return memory.error();
    }
    int64_t now = time(nullptr);
    if (memory->answered(v.handle, to, now)) {
        log::info("%s: vacation for <%s>: <%s> was answered within %llu days already", m.qid.c_str(),
                  m.recipient.c_str(), to.c_str(), static_cast<unsigned long long>(v.days));
        return false;
    }
    std::string reply = vacation_reply(m, v, to, now);
    if (auto r = submit(m.qid, "", to, std::move(reply)); !r) return r.error();
    uint64_t days = std::max<uint64_t>(1, v.days);
    size_t max_entries = static_cast<size_t>(std::max<int64_t>(1, config_.integer("sieve_vacation_max_entries")));
    if (auto r = memory->remember(v.handle, to, now + static_cast<int64_t>(days) * kDay, now, max_entries); !r)
        log::warnx("%s: vacation for <%s>: reply to <%s> queued but not remembered: %s", m.qid.c_str(),
                   m.recipient.c_str(), to.c_str(), r.error().what().c_str());
    log::info("%s: vacation reply to <%s> for <%s> queued", m.qid.c_str(), to.c_str(), m.recipient.c_str());
    return true;
}

std::string AutoReply::vacation_reply(const Original& m, const sieve::Vacation& v, const std::string& to,
                                      int64_t now) const {
    ThreadIds ids = thread_ids(m.message);
    VacationReply r;
    r.from = v.from.empty() ? m.recipient : v.from;
    r.to = to;
    r.subject = v.subject.empty() ? "Automated reply" : v.subject;
    r.reason = v.reason;
    r.mime = v.mime;
    r.original_message_id = ids.message_id;
    r.original_references = ids.references;
    r.now = now;
    r.message_id = new_message_id(my_hostname(config_), now);
    return compose_vacation_reply(r);
}

}  // namespace ferry::mda

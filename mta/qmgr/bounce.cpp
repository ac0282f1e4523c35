// Bounces and delay warnings: RFC 3464 reports built from the recipient state, queued as new messages.
#include "mta/qmgr/bounce.hpp"

#include <cctype>

#include "common/base/log.hpp"
#include "common/mail/date.hpp"

namespace ferry::qmgr {

namespace {

bool digit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }

}  // namespace

std::string status_of_reply(std::string_view reply, const std::string& fallback) {
    // RFC 5321 4.2: a reply is three digits, then a space or '-' (or nothing), then the text;
    // RFC 2034 puts the enhanced status first in the text.
    if (reply.size() < 3 || !digit(reply[0]) || !digit(reply[1]) || !digit(reply[2])) return fallback;
    if (reply.size() > 3 && reply[3] != ' ' && reply[3] != '-') return fallback;
    char cls = reply[0];
    if (cls != '2' && cls != '4' && cls != '5') return fallback;
    std::string_view rest = reply.size() > 4 ? reply.substr(4) : std::string_view{};
    std::string_view token = rest.substr(0, rest.find(' '));
    if (valid_dsn_status(token) && token[0] == cls) return std::string(token);
    return std::string(1, cls) + ".0.0";
}

dsn::Report make_report(const spool::Envelope& env, std::string_view data, const std::vector<const RcptState*>& rcpts,
                        dsn::Action action, const std::string& reporting_mta, int64_t retry_until, int64_t now) {
    dsn::Report report;
    report.reporting_mta = reporting_mta;
    report.queue_id = env.id;
    report.original_sender = env.sender;
    report.arrival = env.arrival;
    // RFC 3461 4.3: RET=FULL returns the whole message with a failure; otherwise the header only.
    report.full_message = returns_full(env, action);
    report.original_message = report.full_message ? std::string(data) : dsn::header_of(std::string(data));
    if (auto envid = dsn::xtext_decode(env.envid); envid && !env.envid.empty()) report.envid = *envid;
    report.now = now;
    for (const RcptState* r : rcpts) {
        dsn::RecipientStatus rc;
        rc.final_recipient = r->to;
        rc.original_recipient = r->orig;
        rc.orcpt = dsn::parse_orcpt(env.dsn_of(r->index).orcpt);
        rc.action = action;
        rc.diagnostic = r->reply;
        if (action == dsn::Action::failed) {
            rc.status = r->dsn_status.empty() ? status_of_reply(r->reply, "5.0.0") : r->dsn_status;
            rc.last_attempt = now;
        } else if (action != dsn::Action::delayed) {
            rc.status = status_of_reply(r->reply, "2.0.0");
            rc.last_attempt = now;
        } else {
            rc.status = status_of_reply(r->reply, "4.0.0");
            rc.retry_until = retry_until;
        }
        report.recipients.push_back(std::move(rc));
    }
    return report;
}

bool returns_full(const spool::Envelope& env, dsn::Action action) {
    return action == dsn::Action::failed && env.ret == "FULL";
}

unsigned notify_bits(const spool::Envelope& env, size_t index) {
    auto bits = dsn::parse_notify(env.dsn_of(index).notify);
    return bits ? *bits : 0;  // none recorded (or unreadable): as without NOTIFY
}

Result<std::string> read_message(const spool::MessageData& data) {
    std::string all;
    char buf[65536];
    for (uint64_t at = 0; at < data.length;) {
        auto n = data.read(at, buf, sizeof buf);
        if (!n) return n.error();
        if (*n == 0) break;
        all.append(buf, *n);
        at += *n;
    }
    return all;
}

Result<std::string> read_header(const spool::MessageData& data, size_t max) {
    std::string head;
    char buf[16384];
    uint64_t at = 0;
    while (at < data.length && head.size() <= max) {
        auto n = data.read(at, buf, sizeof buf);
        if (!n) return n.error();
        if (*n == 0) break;
        // The search starts one byte back, as "\n\n" may span two pieces.
        size_t from = head.empty() ? 0 : head.size() - 1;
        head.append(buf, *n);
        at += *n;
        if (head.rfind('\n', 0) == 0) return std::string();  // no header section at all
        if (size_t end = head.find("\n\n", from); end != std::string::npos) {
            head.resize(end + 1);
            break;
        }
    }
    if (head.size() > max) {
        size_t nl = head.rfind('\n', max - 1);
        if (max > 0 && nl != std::string::npos) head.resize(nl + 1);
        else head = head.substr(0, max) + "\n";
    }
    return head;
}

Result<std::string> queue_report(const std::string& spool_dir, dsn::Report report, const std::string& id,
                                 const std::function<Result<void>(const std::string&)>& before_commit) {
    // The caller decides whether a report is due; being asked for one that is not is a bug: abort.
    if (report.recipients.empty() || !dsn::should_report(report.original_sender))
        log::panic("%s: a report without recipients or to the null sender", report.queue_id.c_str());
    spool::Envelope env;
    env.arrival = report.now;
    env.sender = "";  // a report is never reported on: RFC 5321 4.5.5, RFC 3464 2
    env.helo = report.reporting_mta;
    env.recipients.push_back(report.original_sender);
    auto w = spool::Writer::create(spool_dir, env, id);
    if (!w) return w.error();
    if (before_commit)
        if (auto r = before_commit(w->id()); !r) return r.error();
    // Distinct per report: two rounds of bounces for one message are two messages.
    report.message_id = "<" + w->id() + dsn::message_id_tag(report.recipients.front().action) + report.reporting_mta + ">";
    std::string text = "Received: by " + report.reporting_mta + " (ferry-qmgr) id " + w->id() + ";\n\t" +
                       mail::rfc5322_date(report.now, mail::Zone::utc) + "\n" + dsn::build(report);
    if (auto r = w->append(text); !r) return r.error();
    if (auto r = w->commit(); !r) return r.error();
    return w->id();
}

std::string duration_text(int64_t seconds) {
    static const struct {
        int64_t size;
        char unit;
    } units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}};
    for (const auto& u : units)
        if (seconds > 0 && seconds % u.size == 0) return std::to_string(seconds / u.size) + u.unit;
    return std::to_string(seconds) + "s";
}

}  // namespace ferry::qmgr

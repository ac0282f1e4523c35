// ferry-admin check's probe out and back: through ferry-relay to the domain's MX found in DNS, then awaited in the mailbox.
#include <cstdio>
#include <ctime>
#include <thread>

#include "common/admin/check_probe.hpp"
#include "common/admin/probe_trail.hpp"
#include "common/event/net.hpp"
#include "common/mail/date.hpp"
#include "common/smtp/submit_client.hpp"

namespace ferry::admin {

namespace {

std::string out_message(const ProbePlan& plan, const std::string& token, const std::string& sender, time_t now) {
    return "From: ferry-admin check <" + sender + ">\nTo: <" + plan.recipient + ">\n"
           "Subject: ferry-admin check probe out " + token + "\n"
           "Date: " + mail::rfc5322_date(now) + "\nMessage-ID: <" + token + ".probe-out@" + plan.host + ">\n"
           "X-Ferry-Probe: " + token + "\n\n"
           "ferry-admin check sent this message out through ferry-relay to the domain's MX, to see\n"
           "that mail from this host arrives there. It may be deleted.\n";
}

// What to change when the probe bounced with the enhanced status `status` (RFC 3463).
std::string bounce_fix(const std::string& status, const ProbePlan& plan) {
    auto is = [&](const char* prefix) { return status.rfind(prefix, 0) == 0; };
    if (status == "5.1.10")
        return plan.domain + " publishes a null MX: publish \"" + plan.domain + ". IN MX 10 " + plan.host + ".\"";
    if (is("5.1.")) return "give " + plan.recipient + " a mailbox at the MX (ferry-admin account add or alias add), or probe another address with --probe";
    if (is("5.2.")) return "the mailbox of " + plan.recipient + " is full or disabled: ferry-admin quota set, or empty it";
    if (is("5.7.")) return "the MX refuses " + plan.domain + " or this host: point the MX at " + plan.host + ", or let the MX accept the domain and this host";
    if (is("4.")) return "the MX could not be reached or put it off: check the MX records, port 25 at the MX, and the ferry-relay log";
    return "read the reply, then the ferry-relay log and the MX's log";
}

// Hands the probe to ferry-relay; a failing verdict when it was not sent, else the ok one.
Verdict hand_to_relay(const ProbePlan& plan, const std::string& sender, const std::string& message) {
    std::string what = "probe out sent through ferry-relay to the MX of " + plan.domain;
    if (auto fd = net::connect_unix(plan.relay_socket); !fd)
        return {false, what, "ferry-relay does not listen at " + plan.relay_socket + ": " + fd.error().what(),
                "start ferry-relay, or name its socket in relay_socket"};
    smtp::Submission s{sender, {plan.recipient}, message};
    int limit = static_cast<int>(plan.wait.count()) + 60;  // ferry-relay answers once the MX has answered
    auto o = smtp::submit(plan.relay_socket, plan.host, s, false, limit);
    if (o.exit_code == 0) return {true, what, o.reply.text, ""};
    std::string status = !o.reply.enhanced.empty() ? o.reply.enhanced : o.reply.code >= 500 ? "5.0.0" : "4.0.0";
    return {false, what, (o.reply.code >= 500 ? "bounced: " : "not sent: ") + o.reply.text, bounce_fix(status, plan)};
}

// The probe (by its X-Ferry-Probe: field) or a bounce quoting it, whichever comes first.
struct Arrival {
    std::string probe, bounce, where;
};

Arrival await(const ProbePlan& plan, const std::vector<std::string>& inboxes, const std::vector<std::string>& sender_boxes,
              const std::string& token, time_t since) {
    Arrival a;
    auto is_probe = [&](const std::string& text) { return header_field(header_block(text), "X-Ferry-Probe") == token; };
    auto is_bounce = [&](const std::string& text) {
        return text.find("X-Ferry-Probe: " + token) != std::string::npos && read_bounce(text).found;
    };
    auto begin = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - begin < plan.wait) {
        for (const auto& dir : inboxes)
            if (a.probe.empty()) a.probe = find_message(dir, since, is_probe, a.where);
        for (const auto& dir : sender_boxes)
            if (a.probe.empty() && a.bounce.empty()) a.bounce = find_message(dir, since, is_bounce, a.where);
        if (!a.probe.empty() || !a.bounce.empty()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return a;
}

Verdict arrived(const ProbePlan& plan, const Arrival& a, double seconds) {
    std::string what = "probe out came back to the mailbox of " + plan.recipient;
    if (!a.bounce.empty()) {
        Bounce b = read_bounce(a.bounce);
        return {false, what, "it bounced after the MX took it: " + b.diagnostic + " (" + a.where + ")", bounce_fix(b.status, plan)};
    }
    if (a.probe.empty())
        return {false, what, "not there after " + std::to_string(plan.wait.count()) + " s, and no bounce either",
                "follow it in the logs (grep " + plan.recipient + "): the MX's queue, then ferry-mda; ferry-admin queue list"};
    char took[32];
    snprintf(took, sizeof took, "%.1f s", seconds);
    std::string headers = header_block(a.probe);
    Verdict v{true, what, std::string("in ") + took + ", " + a.where, ""};
    v.notes = hop_lines(received_trail(headers), mail::parse_rfc5322_time(header_field(headers, "Date")));
    for (const auto& results : header_fields(headers, "Authentication-Results")) v.notes.push_back("Authentication-Results: " + results);
    return v;
}

}  // namespace

std::vector<Verdict> probe_out(const Config& config, const ProbePlan& plan) {
    std::string sender = "postmaster@" + plan.domain, token = probe_token();
    time_t start = time(nullptr);
    Verdict sent = hand_to_relay(plan, sender, out_message(plan, token, sender, start));
    if (!sent.ok) return {sent};
    std::string error, ignored;
    auto inboxes = probe_mailboxes(config, plan.recipient, error);
    if (inboxes.empty()) {
        sent.notes.push_back("not awaited: " + error);
        return {sent};
    }
    auto begin = std::chrono::steady_clock::now();
    Arrival a = await(plan, inboxes, probe_mailboxes(config, sender, ignored), token, start);
    return {sent, arrived(plan, a, std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count())};
}

}  // namespace ferry::admin

// The queue as mailq, `sendmail -bp` and `ferry-admin queue list|show` print it, read from the spool files only.
#include "common/spool/queue_listing.hpp"

#include <dirent.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <memory>

#include "common/proto/qmgr.hpp"

namespace ferry::spool {

namespace {

std::string local_time(int64_t t, const char* format) {
    if (t <= 0) return "-";
    time_t tt = static_cast<time_t>(t);
    tm parts{};
    localtime_r(&tt, &parts);
    char buf[64];
    strftime(buf, sizeof buf, format, &parts);
    return buf;
}

std::string sender_text(const std::string& sender) { return sender.empty() ? "<>" : sender; }

// What the listing says of a recipient's state.
const char* state_text(qmgr::RcptStatus s) {
    switch (s) {
        case qmgr::RcptStatus::queued: return "queued";
        case qmgr::RcptStatus::handed_off: return "in flight";
        case qmgr::RcptStatus::delivered: return "delivered";
        case qmgr::RcptStatus::deferred: return "deferred";
        case qmgr::RcptStatus::unknown: return "unknown (maybe delivered, retried)";
        case qmgr::RcptStatus::failed: return "failed (bounce pending)";
        case qmgr::RcptStatus::bounced: return "bounced";
        case qmgr::RcptStatus::unresolved: return "deferred (alias expansion)";
    }
    return "?";
}

// One line per recipient: its expanded records when there are some, else the queue file's address.
std::vector<std::string> recipient_lines(const QueueEntry& e, bool detail) {
    std::vector<std::string> out;
    const auto& rcpts = e.envelope.recipients;
    for (size_t i = 0; i < rcpts.size(); ++i) {
        bool any = false;
        if (e.state) {
            for (const auto& r : e.state->rcpts) {
                if (r.index != i) continue;
                any = true;
                std::string line = std::string(state_text(r.status)) + "  " + r.to;
                if (r.to != r.orig) line += " (for " + r.orig + ")";
                if (r.attempts) line += ", " + std::to_string(r.attempts) + (r.attempts == 1 ? " attempt" : " attempts");
                if (detail && r.next_try && !qmgr::is_final(r.status))
                    line += ", next try " + local_time(r.next_try, "%Y-%m-%d %H:%M:%S");
                if (!r.reply.empty()) line += ": " + r.reply;
                out.push_back(std::move(line));
            }
        }
        if (!any) out.push_back("queued  " + rcpts[i]);
    }
    return out;
}

}  // namespace

Result<std::optional<QueueEntry>> read_queue_entry(const std::string& spool_dir, const std::string& id) {
    auto opened = open_message(spool_dir + "/" + kQueue + "/" + id);
    if (!opened) return opened.error();
    if (opened->status == OpenedMessage::Status::missing) return std::optional<QueueEntry>{};
    QueueEntry e;
    if (opened->status == OpenedMessage::Status::corrupt) {
        e.envelope.id = id;
        e.problem = opened->why;
        return std::optional<QueueEntry>(std::move(e));
    }
    e.envelope = std::move(opened->envelope);
    e.size = opened->data.length;
    auto text = read_bytes(spool_dir + "/" + kState + "/" + id);
    if (!text) return text.error();
    if (text->has_value()) {
        auto st = qmgr::decode_state(**text);
        if (st) e.state = std::move(st.value());
        else e.problem = st.error().what();
    }
    return std::optional<QueueEntry>(std::move(e));
}

Result<std::vector<QueueEntry>> read_queue(const std::string& spool_dir) {
    std::string dir = spool_dir + "/" + kQueue;
    std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
    if (!d) return sys_error("cannot read the queue " + dir);
    std::vector<std::string> ids;
    errno = 0;
    while (dirent* ent = readdir(d.get()))
        if (proto::qmgr::valid_queue_id(ent->d_name)) ids.emplace_back(ent->d_name);
    if (errno != 0) return sys_error("cannot read the queue " + dir);
    std::sort(ids.begin(), ids.end());
    std::vector<QueueEntry> out;
    for (const auto& id : ids) {
        auto e = read_queue_entry(spool_dir, id);
        if (!e) return e.error();
        if (e->has_value()) out.push_back(std::move(**e));
    }
    return out;
}

std::string format_listing(const std::vector<QueueEntry>& entries) {
    if (entries.empty()) return "Mail queue is empty\n";
    std::string out = "-Queue ID-        --Size-- ----Arrival Time---- -Sender/Recipient-------\n";
    uint64_t total = 0;
    for (const auto& e : entries) {
        char head[256];
        snprintf(head, sizeof head, "%-16s%c %8llu %-20s ", e.envelope.id.c_str(), e.held() ? '!' : ' ',
                 static_cast<unsigned long long>(e.size), local_time(e.envelope.arrival, "%a %b %e %H:%M:%S").c_str());
        out += head + sender_text(e.envelope.sender) + "\n";
        if (e.held()) out += "                  (held by the administrator)\n";
        if (!e.problem.empty()) out += "                  (" + e.problem + ")\n";
        for (const auto& line : recipient_lines(e, false)) out += "                  " + line + "\n";
        out += "\n";
        total += e.size;
    }
    out += "-- " + std::to_string((total + 1023) / 1024) + " Kbytes in " + std::to_string(entries.size()) +
           (entries.size() == 1 ? " Request.\n" : " Requests.\n");
    return out;
}

std::string format_entry(const QueueEntry& e, const std::string& header) {
    std::string out = "queue id: " + e.envelope.id + "\n";
    out += "arrival:  " + local_time(e.envelope.arrival, "%Y-%m-%d %H:%M:%S %z") + "\n";
    out += "sender:   " + sender_text(e.envelope.sender) + "\n";
    out += "client:   " + e.envelope.client + (e.envelope.helo.empty() ? "" : " (" + e.envelope.helo + ")") + "\n";
    if (!e.envelope.auth.empty()) out += "auth:     " + e.envelope.auth + "\n";
    out += "size:     " + std::to_string(e.size) + "\n";
    out += "held:     " + (e.held() ? "yes, since " + local_time(e.state->held, "%Y-%m-%d %H:%M:%S %z") : std::string("no")) + "\n";
    if (e.state && e.state->warned) out += "warned:   " + local_time(e.state->warned, "%Y-%m-%d %H:%M:%S %z") + "\n";
    if (!e.problem.empty()) out += "problem:  " + e.problem + "\n";
    out += "recipients:\n";
    for (const auto& line : recipient_lines(e, true)) out += "  " + line + "\n";
    out += "header:\n" + header;
    if (!header.empty() && header.back() != '\n') out += "\n";
    return out;
}

Result<std::string> read_header_section(const std::string& spool_dir, const std::string& id, size_t max) {
    auto opened = open_message(spool_dir + "/" + kQueue + "/" + id);
    if (!opened) return opened.error();
    if (opened->status != OpenedMessage::Status::ok) return std::string();
    std::string out;
    char buf[16384];
    while (out.size() < max) {
        auto n = opened->data.read(out.size(), buf, std::min(sizeof buf, max - out.size()));
        if (!n) return n.error();
        if (*n == 0) break;
        out.append(buf, *n);
        if (size_t end = out.find("\n\n"); end != std::string::npos) return out.substr(0, end + 1);
        if (out.rfind('\n', 0) == 0) return std::string();  // no header section at all
    }
    return out;
}

}  // namespace ferry::spool

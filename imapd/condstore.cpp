// CONDSTORE and QRESYNC (RFC 7162) of a session: QRESYNC SELECT, VANISHED, MODSEQ in FETCH and SEARCH, conditional STORE.
#include <algorithm>

#include "common/base/log.hpp"
#include "imapd/session.hpp"

namespace ferry::imap {

// "1:3,7" from ascending ranges (RFC 9051 sequence-set).
std::string uid_set_text(const store::UidRanges& ranges) {
    std::string out;
    for (const auto& [lo, hi] : ranges) {
        if (!out.empty()) out += ',';
        out += std::to_string(lo);
        if (hi != lo) out += ':' + std::to_string(hi);
    }
    return out;
}

// Ranges of the ascending numbers given.
store::UidRanges ranges_of(const std::vector<uint32_t>& sorted) {
    store::UidRanges out;
    for (uint32_t n : sorted) {
        if (!out.empty() && out.back().second + 1 == n) out.back().second = n;
        else out.emplace_back(n, n);
    }
    return out;
}

namespace {

store::UidRanges intersect(const store::UidRanges& a, const std::vector<Span>& b) {
    store::UidRanges out;
    for (const auto& [lo, hi] : a)
        for (const Span& s : b) {
            uint32_t l = std::max(lo, s.lo), h = std::min(hi, s.hi);
            if (l <= h) out.emplace_back(l, h);
        }
    return store::merge_ranges(std::move(out));
}

}  // namespace

// The UIDs within `within` expunged after `since`. When the index has forgotten that far back,
// every UID below UIDNEXT that it does not hold (RFC 7162 section 3.2.5.2 allows the superset).
store::UidRanges Session::vanished_since(uint64_t since, const std::vector<Span>& within) const {
    if (auto exact = index_->expunged_since(since)) return intersect(*exact, within);
    store::UidRanges gone;
    uint32_t next = 1;
    for (const auto& m : index_->messages()) {
        if (m.uid > next) gone.emplace_back(next, m.uid - 1);
        next = m.uid + 1;
    }
    if (next < index_->uidnext()) gone.emplace_back(next, index_->uidnext() - 1);
    return intersect(gone, within);
}

// The MODSEQ item of an untagged FETCH once CONDSTORE is on (RFC 7162 section 3.1.4), and the UID
// once QRESYNC is on (section 3.2.4), each with a leading space.
std::string Session::fetch_extras(const store::Message& m, bool with_uid) const {
    std::string out;
    if (with_uid || qresync_) out += " UID " + std::to_string(m.uid);
    if (condstore_) out += " MODSEQ (" + std::to_string(m.modseq) + ")";
    return out;
}

// After SELECT (QRESYNC ...): what vanished and what changed since the client's MODSEQ
// (RFC 7162 section 3.2.5), only when its UIDVALIDITY is still the folder's.
// RFC 7162 section 3.1: the first CONDSTORE-enabling command in a selected mailbox announces HIGHESTMODSEQ.
void Session::enable_condstore() {
    if (condstore_) return;
    condstore_ = true;
    if (index_) reply("* OK [HIGHESTMODSEQ " + std::to_string(index_->highest_modseq()) + "] highest\r\n");
}

void Session::qresync_select(const Qresync& q) {
    if (q.uidvalidity != index_->uidvalidity()) return;
    uint32_t top = std::max<uint32_t>(index_->uidnext() - 1, uids_.empty() ? 0 : uids_.back());
    std::vector<Span> known{{1, top}};
    if (q.known_uids) {
        auto spans = resolve(*q.known_uids, top, true);
        known = spans ? *spans : std::vector<Span>{};
    }
    std::string out;
    if (top > 0) {
        auto gone = vanished_since(q.modseq, known);
        if (!gone.empty()) out += "* VANISHED (EARLIER) " + uid_set_text(gone) + "\r\n";
    }
    for (size_t i = 0; i < uids_.size(); ++i) {
        const store::Message* m = index_->find(uids_[i]);
        if (!m || m->modseq <= q.modseq || !contains(known, m->uid)) continue;
        out += "* " + std::to_string(i + 1) + " FETCH (FLAGS " + flags_of(*m) + fetch_extras(*m, true) + ")\r\n";
    }
    if (!out.empty()) reply(out);
}

// UID FETCH ... (CHANGEDSINCE n VANISHED): the UIDs of the set expunged since n, before the FETCH
// responses (RFC 7162 section 3.2.6). False when the command was refused.
bool Session::fetch_vanished(const Command& cmd, const FetchArgs& a) {
    if (!qresync_) {
        tagged("BAD", "VANISHED needs ENABLE QRESYNC");
        return false;
    }
    if (!cmd.uid || !a.changed_since) {
        tagged("BAD", "VANISHED needs UID FETCH with CHANGEDSINCE");
        return false;
    }
    uint32_t top = std::max<uint32_t>(index_->uidnext() - 1, uids_.empty() ? 0 : uids_.back());
    auto spans = resolve(a.set, top, true);
    if (!spans) {
        tagged("BAD", "invalid UID set");
        return false;
    }
    auto gone = vanished_since(*a.changed_since, *spans);
    if (!gone.empty()) reply("* VANISHED (EARLIER) " + uid_set_text(gone) + "\r\n");
    return true;
}

void Session::take_recent() {
    if (rev2_) return;  // RFC 9051 has no \Recent
    uint32_t below = index_->recent_upto();
    if (!read_only_) {
        // EXAMINE sees \Recent without taking it (RFC 3501 section 6.3.2).
        if (auto r = index_->claim_recent()) below = *r;
        else log::warnx("%s: \\Recent of %s: %s", id_.c_str(), mailbox_.c_str(), r.error().what().c_str());
    }
    uint32_t top = uids_.empty() ? 0 : uids_.back();
    if (top <= below) return;
    recent_.emplace_back(below + 1, top);
    recent_ = store::merge_ranges(std::move(recent_));
}

bool Session::is_recent(uint32_t uid) const {
    auto it = std::upper_bound(recent_.begin(), recent_.end(), uid,
                               [](uint32_t u, const std::pair<uint32_t, uint32_t>& r) { return u < r.first; });
    return it != recent_.begin() && std::prev(it)->second >= uid;
}

size_t Session::recent_count() const {
    return static_cast<size_t>(std::count_if(uids_.begin(), uids_.end(), [&](uint32_t u) { return is_recent(u); }));
}

std::vector<Span> Session::saved_spans(bool uid) const {
    std::vector<Span> out;
    for (uint32_t u : saved_) {
        auto pos = uids_.find(u);
        if (!pos) continue;
        uint32_t n = uid ? u : static_cast<uint32_t>(*pos) + 1;
        if (!out.empty() && out.back().hi + 1 == n) out.back().hi = n;
        else out.push_back({n, n});
    }
    return out;
}

}  // namespace ferry::imap

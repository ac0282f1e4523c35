// The recipient state file (qmgr's, read by the queue tools too): per-recipient delivery results beside the immutable queue file.
#include "common/spool/state.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include "common/base/fd.hpp"
#include "common/spool/spool.hpp"

namespace ferry::qmgr {

namespace {

// Fields are TAB-separated single lines; a TAB, CR or LF inside one would forge fields or records.
std::string clean(std::string_view v, size_t max = kMaxStateLine / 4) {
    std::string out(v.substr(0, max));
    for (char& c : out)
        if (c == '\t' || c == '\n' || c == '\r') c = ' ';
    return out;
}

Error corrupt(const std::string& why) { return make_error(0, "", "corrupt state file: " + why); }

std::vector<std::string_view> split_tabs(std::string_view line) {
    std::vector<std::string_view> out;
    for (;;) {
        size_t tab = line.find('\t');
        out.push_back(line.substr(0, tab));
        if (tab == std::string_view::npos) return out;
        line.remove_prefix(tab + 1);
    }
}

template <class T>
bool parse_number(std::string_view s, T& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

std::optional<RcptStatus> parse_status(std::string_view s) {
    for (RcptStatus st : {RcptStatus::queued, RcptStatus::handed_off, RcptStatus::delivered, RcptStatus::deferred,
                          RcptStatus::unknown, RcptStatus::failed, RcptStatus::bounced, RcptStatus::unresolved})
        if (s == status_name(st)) return st;
    // The names of earlier versions.
    if (s == "pending") return RcptStatus::queued;
    if (s == "done") return RcptStatus::delivered;
    return std::nullopt;
}

bool valid_bounce_id(std::string_view id) {
    if (id.empty() || id.size() > 64) return false;
    return std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    });
}

Result<RcptState> decode_rcpt(std::string_view line) {
    auto f = split_tabs(line);
    if (f.size() < 8) return corrupt("rcpt record with " + std::to_string(f.size()) + " fields");
    RcptState r;
    auto status = parse_status(f[2]);
    if (!parse_number(f[1], r.index)) return corrupt("bad recipient index");
    if (!status) return corrupt("unknown status \"" + std::string(f[2]) + "\"");
    if (!parse_number(f[3], r.attempts) || r.attempts < 0 || r.attempts > kMaxAttempts)
        return corrupt("bad attempt count");
    if (!parse_number(f[4], r.next_try)) return corrupt("bad next try time");
    r.status = *status;
    r.orig = f[5];
    r.to = f[6];
    r.reply = f[7];
    // A ninth field that is no RFC 3463 status is some later version's: ignored, like further fields.
    if (f.size() > 8 && valid_dsn_status(f[8])) r.dsn_status = f[8];
    if (f.size() > 9 && valid_bounce_id(f[9]) && (r.status == RcptStatus::failed || r.status == RcptStatus::bounced))
        r.bounce_id = f[9];
    if (r.orig.empty() || r.to.empty()) return corrupt("empty recipient");
    return r;
}

}  // namespace

// RFC 3463 2: class "." subject "." detail, subject and detail 1 to 3 digits.
bool valid_dsn_status(std::string_view s) {
    if (s.size() < 5 || s.size() > kMaxDsnStatus) return false;
    if ((s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
    s.remove_prefix(2);
    for (int part = 0; part < 2; ++part) {
        size_t n = 0;
        while (n < s.size() && s[n] >= '0' && s[n] <= '9') ++n;
        if (n == 0 || n > 3) return false;
        s.remove_prefix(n);
        if (part == 0) {
            if (s.empty() || s[0] != '.') return false;
            s.remove_prefix(1);
        }
    }
    return s.empty();
}

const char* status_name(RcptStatus s) {
    switch (s) {
        case RcptStatus::queued: return "queued";
        case RcptStatus::handed_off: return "handed_off";
        case RcptStatus::delivered: return "delivered";
        case RcptStatus::deferred: return "deferred";
        case RcptStatus::unknown: return "unknown";
        case RcptStatus::failed: return "failed";
        case RcptStatus::bounced: return "bounced";
        case RcptStatus::unresolved: return "unresolved";
    }
    return "?";
}

bool is_final(RcptStatus s) { return s == RcptStatus::delivered || s == RcptStatus::bounced; }

bool MessageState::all_final() const {
    return std::all_of(rcpts.begin(), rcpts.end(), [](const RcptState& r) { return is_final(r.status); });
}

bool MessageState::has_index(size_t index) const {
    return std::any_of(rcpts.begin(), rcpts.end(), [index](const RcptState& r) { return r.index == index; });
}

std::string encode_state(const MessageState& state) {
    std::string out = std::string(kStateMagic) + "\n";
    out += "id " + clean(state.id) + "\n";
    if (state.warned) out += "warned " + std::to_string(state.warned) + "\n";
    if (state.held) out += "held " + std::to_string(state.held) + "\n";
    for (const auto& r : state.rcpts) {
        out += "rcpt\t" + std::to_string(r.index) + "\t" + status_name(r.status) + "\t" + std::to_string(r.attempts) +
               "\t" + std::to_string(r.next_try) + "\t" + clean(r.orig) + "\t" + clean(r.to) + "\t" +
               clean(r.reply, kMaxReplyText);
        // Only failed and bounced recipients have them: other records keep the eight fields.
        bool bounce = valid_bounce_id(r.bounce_id);
        if (valid_dsn_status(r.dsn_status)) out += "\t" + r.dsn_status;
        else if (bounce) out += "\t5.0.0";
        if (bounce) out += "\t" + r.bounce_id;
        out += "\n";
    }
    out += "end " + std::to_string(state.rcpts.size()) + "\n";
    return out;
}

Result<MessageState> decode_state(std::string_view text) {
    MessageState state;
    size_t pos = 0;
    bool first = true, ended = false;
    while (pos < text.size()) {
        if (ended) return corrupt("data after the END record");
        size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) return corrupt("last record has no line end");
        std::string_view line = text.substr(pos, nl - pos);
        pos = nl + 1;
        if (line.size() > kMaxStateLine) return corrupt("record longer than " + std::to_string(kMaxStateLine));
        if (first) {
            if (line != kStateMagic) return corrupt("missing \"" + std::string(kStateMagic) + "\" header");
            first = false;
        } else if (line.substr(0, 3) == "id ") {
            state.id = line.substr(3);
        } else if (line.substr(0, 7) == "warned ") {
            if (!parse_number(line.substr(7), state.warned) || state.warned < 0) return corrupt("bad warned time");
        } else if (line.substr(0, 5) == "held ") {
            if (!parse_number(line.substr(5), state.held) || state.held <= 0) return corrupt("bad held time");
        } else if (line.substr(0, 5) == "rcpt\t") {
            auto r = decode_rcpt(line);
            if (!r) return r.error();
            state.rcpts.push_back(std::move(r.value()));
        } else if (line.substr(0, 4) == "end ") {
            size_t n = 0;
            if (!parse_number(line.substr(4), n) || n != state.rcpts.size())
                return corrupt("count in END record does not match");
            ended = true;
        }
        // Other records are skipped: a newer writer may add some.
    }
    if (first) return corrupt("empty file");
    if (!ended) return corrupt("no END record");
    if (state.id.empty()) return corrupt("no id record");
    return state;
}

Result<std::optional<MessageState>> read_state(const std::string& path) {
    auto text = spool::read_bytes(path);
    if (!text) return text.error();
    if (!text->has_value()) return std::optional<MessageState>{};
    auto state = decode_state(**text);
    if (!state) return state.error();
    return std::optional<MessageState>(std::move(state.value()));
}

// "<id>.tmp", fsync, rename over the old state, fsync of the directory (a leftover .tmp is replaced).
Result<void> write_state(const std::string& dir, const MessageState& state) {
    return write_file_durably(dir + "/" + state.id, encode_state(state), 0640);
}

}  // namespace ferry::qmgr

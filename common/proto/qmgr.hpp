// The qmgr_socket protocol: smtpd's notices and the queue tools' control lines, versioned text lines (ferry-qmgr(8)).
#pragma once

#include <cctype>
#include <charconv>
#include <string>
#include <string_view>
#include <utility>

#include "common/base/result.hpp"

namespace ferry::proto::qmgr {

inline constexpr std::string_view kService = "ferry-qmgr";
inline constexpr int kMajor = 1;
inline constexpr int kMinor = 1;  // 1: FLUSH, HOLD, RELEASE, DELETE, REQUEUE and their replies

// A client opens with "VERSION ferry-qmgr 1 1", then sends one "NEW <queue id>" line per committed
// message. qmgr answers nothing to NEW: a lost notice only delays delivery until the next queue scan.
// The control lines (minor 1) are each answered by one reply line (encode_reply):
//   FLUSH [<domain>]   deferred recipients (of that domain only) are due now
//   HOLD <queue id>    never attempted until released; kept in the state file
//   RELEASE <queue id> the hold ends
//   DELETE <queue id>  queue and state file removed, no bounce; refused while a delivery is in flight
//   REQUEUE <queue id> every waiting recipient due now, alias expansion and routing done again
struct Message {
    enum Type { version, new_message, flush, hold, release, remove, requeue } type;
    std::string id;      // queue id for new_message, hold, release, remove, requeue; the domain for flush ("" = all)
    int major = 0, minor = 0;
};

// A control line's answer: "<STATUS> <text>", STATUS one of OK, UNKNOWN (no such message), BUSY
// (a delivery of it is in flight: try again), ERROR (bad line, or qmgr could not do it).
struct Reply {
    enum Status { ok, unknown, busy, error } status = error;
    std::string text;
};

inline const char* control_verb(Message::Type t) {
    switch (t) {
        case Message::flush: return "FLUSH";
        case Message::hold: return "HOLD";
        case Message::release: return "RELEASE";
        case Message::remove: return "DELETE";
        case Message::requeue: return "REQUEUE";
        default: return "";
    }
}

inline std::string encode_version() {
    return "VERSION " + std::string(kService) + " " + std::to_string(kMajor) + " " + std::to_string(kMinor) + "\n";
}

inline std::string encode_new(const std::string& id) { return "NEW " + id + "\n"; }

// A queue id as the spool names files: 1 to 64 letters or digits (so it is safe as a file name).
inline bool valid_queue_id(std::string_view id) {
    if (id.empty() || id.size() > 64) return false;
    for (char c : id)
        if (!isalnum(static_cast<unsigned char>(c))) return false;
    return true;
}

// "HOLD <id>\n", "FLUSH\n", "FLUSH <domain>\n".
inline std::string encode_control(Message::Type t, const std::string& arg) {
    return std::string(control_verb(t)) + (arg.empty() ? "" : " " + arg) + "\n";
}

inline std::string encode_reply(const Reply& r) {
    static const char* const names[] = {"OK", "UNKNOWN", "BUSY", "ERROR"};
    std::string text;
    for (char c : r.text.substr(0, 900)) text += (c == '\n' || c == '\r') ? ' ' : c;
    return std::string(names[r.status]) + " " + text + "\n";
}

// One reply line (without its LF); an unknown status reads as ERROR with the whole line as text.
inline Reply decode_reply(std::string_view line) {
    static const std::pair<std::string_view, Reply::Status> names[] = {
        {"OK", Reply::ok}, {"UNKNOWN", Reply::unknown}, {"BUSY", Reply::busy}, {"ERROR", Reply::error}};
    size_t sp = line.find(' ');
    std::string_view word = line.substr(0, sp);
    std::string_view rest = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
    for (const auto& [name, status] : names)
        if (word == name) return Reply{status, std::string(rest)};
    return Reply{Reply::error, std::string(line)};
}

// Decodes one line (without its LF). Extra trailing fields are ignored, as newer minors may add them.
inline Result<Message> decode(std::string_view line) {
    auto word = [&line]() {
        while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
        size_t sp = line.find(' ');
        std::string_view w = line.substr(0, sp);
        line.remove_prefix(sp == std::string_view::npos ? line.size() : sp);
        return w;
    };
    std::string_view verb = word();
    if (verb == "VERSION") {
        std::string_view service = word(), major = word(), minor = word();
        Message m{Message::version, "", 0, 0};
        // Digits that fit an int: atoi would read "4294967297" as major 1.
        auto number = [](std::string_view text, int& out) {
            auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
            return !text.empty() && text[0] != '-' && ec == std::errc() && end == text.data() + text.size();
        };
        if (service != kService || !number(major, m.major) || !number(minor, m.minor))
            return make_error(0, "", "bad VERSION line");
        return m;
    }
    if (verb == "NEW") {
        std::string_view id = word();
        if (id.empty() || id.size() > 64) return make_error(0, "", "bad NEW line");
        if (!valid_queue_id(id)) return make_error(0, "", "bad queue id in NEW line");
        return Message{Message::new_message, std::string(id)};
    }
    if (verb == "FLUSH") {
        std::string_view domain = word();
        if (domain.size() > 255) return make_error(0, "", "bad FLUSH line");
        for (char c : domain)
            if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return make_error(0, "", "bad domain in FLUSH line");
        return Message{Message::flush, std::string(domain)};
    }
    for (Message::Type t : {Message::hold, Message::release, Message::remove, Message::requeue}) {
        if (verb != control_verb(t)) continue;
        std::string_view id = word();
        if (!valid_queue_id(id)) return make_error(0, "", "bad queue id in " + std::string(verb) + " line");
        return Message{t, std::string(id)};
    }
    return make_error(0, "", "unknown notification \"" + std::string(verb) + "\"");
}

}  // namespace ferry::proto::qmgr

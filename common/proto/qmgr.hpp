// The smtpd-to-qmgr notification protocol: versioned text lines over qmgr_socket (ferry-qmgr(8)).
#pragma once

#include <charconv>
#include <string>
#include <string_view>

#include "common/base/result.hpp"

namespace ferry::proto::qmgr {

inline constexpr std::string_view kService = "ferry-qmgr";
inline constexpr int kMajor = 1;
inline constexpr int kMinor = 0;

// A client opens with "VERSION ferry-qmgr 1 0", then sends one "NEW <queue id>" line per committed
// message. qmgr answers nothing: a lost notice only delays delivery until the next queue scan.
struct Message {
    enum Type { version, new_message } type;
    std::string id;      // queue id for new_message
    int major = 0, minor = 0;
};

inline std::string encode_version() {
    return "VERSION " + std::string(kService) + " " + std::to_string(kMajor) + " " + std::to_string(kMinor) + "\n";
}

inline std::string encode_new(const std::string& id) { return "NEW " + id + "\n"; }

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
        for (char c : id)
            if (!isalnum(static_cast<unsigned char>(c))) return make_error(0, "", "bad queue id in NEW line");
        return Message{Message::new_message, std::string(id)};
    }
    return make_error(0, "", "unknown notification \"" + std::string(verb) + "\"");
}

}  // namespace ferry::proto::qmgr

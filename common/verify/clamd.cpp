// A client of clamd's INSTREAM command (blocking, within a deadline; for worker threads and ferry-mda -d), shared by ferry-smtpd and ferry-mda.
#include "common/verify/clamd.hpp"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <utility>
#include <cerrno>
#include <cstring>

#include "common/verify/scanner_socket.hpp"

namespace ferry::scan {

namespace {

ClamdVerdict error(std::string why) { return {ClamdVerdict::Kind::error, std::move(why)}; }

// Printable ASCII only (anything else becomes '?'), at most 200 characters: for logs and replies.
std::string printable(std::string_view s) {
    std::string out(s.substr(0, std::min<size_t>(s.size(), 200)));
    for (auto& c : out)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
    return out;
}

}  // namespace

ClamdVerdict parse_clamd_reply(std::string_view r) {
    while (!r.empty() && (r.back() == '\0' || r.back() == '\n' || r.back() == '\r')) r.remove_suffix(1);
    std::string_view body = r;
    if (size_t colon = r.find(": "); colon != std::string_view::npos) body = r.substr(colon + 2);
    if (body == "OK") return {ClamdVerdict::Kind::clean, ""};
    if (body.size() > 6 && body.ends_with(" FOUND")) return {ClamdVerdict::Kind::found, printable(body.substr(0, body.size() - 6))};
    std::string why = printable(r);
    return error(why.empty() ? "no answer" : "answered \"" + why + "\"");
}

namespace {

// clamd's reply, up to its NUL.
ClamdVerdict read_reply(int fd, double deadline) {
    std::string reply;
    char in[512];
    while (reply.find('\0') == std::string::npos && reply.size() < 4096) {
        ssize_t r = ::recv(fd, in, sizeof in, MSG_DONTWAIT);
        if (r > 0) reply.append(in, static_cast<size_t>(r));
        else if (r == 0) break;
        else if (errno != EAGAIN && errno != EINTR) return error(std::string("recv: ") + std::strerror(errno));
        else if (!wait_for(fd, POLLIN, deadline)) return error("no answer within clamd_timeout");
    }
    return parse_clamd_reply(reply.substr(0, reply.find('\0')));
}

// A send that failed: clamd may have said why before it closed ("INSTREAM size limit exceeded").
ClamdVerdict send_failed(int fd) {
    ClamdVerdict v = read_reply(fd, now() + 1);
    if (v.kind == ClamdVerdict::Kind::error && (v.text.rfind("recv", 0) == 0 || v.text.rfind("no answer", 0) == 0))
        return error("INSTREAM: send failed or timed out");
    return v;
}

}  // namespace

ClamdVerdict clamd_instream(int fd, const ReadAt& read, double deadline, size_t chunk) {
    static const char kCommand[] = "zINSTREAM";
    if (!send_all(fd, kCommand, sizeof kCommand, deadline)) return send_failed(fd);
    std::string buf(4 + chunk, '\0');
    for (uint64_t at = 0;;) {
        auto n = read(at, buf.data() + 4, chunk);
        if (!n) return error("message not read: " + n.error().what());
        uint32_t len = htonl(static_cast<uint32_t>(n.value()));
        std::memcpy(buf.data(), &len, 4);
        // A chunk of length 0 ends the stream.
        if (!send_all(fd, buf.data(), 4 + n.value(), deadline)) return send_failed(fd);
        if (n.value() == 0) break;
        at += n.value();
    }
    return read_reply(fd, deadline);
}

ClamdVerdict clamd_scan(const std::string& address, const ReadAt& read, double timeout) {
    double deadline = now() + timeout;
    auto fd = connect_to(address, deadline);
    if (!fd) return error("cannot connect to " + address + ": " + fd.error().what());
    return clamd_instream(fd->get(), read, deadline);
}

}  // namespace ferry::scan

namespace ferry::scan {

namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// The name of a field ("" when the line has no colon) and its value, continuation lines joined.
std::pair<std::string_view, std::string> split_field(std::string_view field) {
    size_t colon = field.find(':');
    if (colon == std::string_view::npos) return {};
    std::string value;
    for (char c : field.substr(colon + 1)) value += (c == '\r' || c == '\n') ? ' ' : c;
    return {trim(field.substr(0, colon)), value};
}

// Calls `each` with every field of the header section (folded lines included) until it returns false.
template <typename F>
void for_each_field(std::string_view message, F each) {
    size_t pos = 0;
    while (pos < message.size()) {
        size_t end = pos;
        do {
            size_t nl = message.find('\n', end);
            end = nl == std::string_view::npos ? message.size() : nl + 1;
        } while (end < message.size() && (message[end] == ' ' || message[end] == '\t'));
        std::string_view field = message.substr(pos, end - pos);
        if (field == "\n" || field == "\r\n" || field.find(':') == std::string_view::npos) return;
        if (!each(field)) return;
        pos = end;
    }
}

}  // namespace

std::string scanned_field(std::string_view host) { return "X-Virus-Scanned: clamd at " + std::string(host) + "\n"; }

std::string unscanned_field(std::string_view host) {
    return "X-Virus-Status: unscanned (clamd unavailable) at " + std::string(host) + "\n";
}

bool is_scanned_field(std::string_view field, std::string_view host) {
    auto [name, value] = split_field(field);
    if (!iequals(name, "X-Virus-Scanned")) return false;
    std::string_view v = trim(value);
    constexpr std::string_view kPrefix = "clamd at ";
    return !host.empty() && v.size() > kPrefix.size() && iequals(v.substr(0, kPrefix.size()), kPrefix) &&
           iequals(trim(v.substr(kPrefix.size())), host);
}

bool scanned_by_smtpd(std::string_view message, std::string_view host) {
    bool mark = false, ours = false;
    for_each_field(message, [&](std::string_view field) {
        auto [name, value] = split_field(field);
        if (iequals(name, "Received")) {
            std::string by = " by " + std::string(host) + " (ferry) with ";
            std::string v;
            for (char c : value) v += c == '\t' ? ' ' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            for (char& c : by) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            ours = v.find(by) != std::string::npos;
            return false;  // only the fields above the first Received: count
        }
        mark = mark || is_scanned_field(field, host);
        return true;
    });
    return mark && ours;
}

}  // namespace ferry::scan

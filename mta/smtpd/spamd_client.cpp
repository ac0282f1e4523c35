// A client of SpamAssassin's spamd (the SPAMC/1.5 protocol's CHECK), blocking within a deadline, for a worker thread.
#include "mta/smtpd/spamd_client.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <strings.h>

#include <cerrno>
#include <cstring>
#include <cmath>
#include <cstdlib>

#include "common/verify/spam_rules.hpp"
#include "mta/smtpd/scanner_socket.hpp"

namespace ferry::smtpd {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

SpamdAnswer failed(std::string why) { return {std::nullopt, std::move(why)}; }

}  // namespace

std::optional<double> parse_spamd_reply(std::string_view r) {
    size_t eol = r.find('\n');
    std::string_view status = trim(r.substr(0, eol));
    // "SPAMD/1.1 0 EX_OK": the protocol, then 0 for success.
    if (status.substr(0, 6) != "SPAMD/" || status.find(" 0 ") == std::string_view::npos) return std::nullopt;
    while (eol != std::string_view::npos) {
        r.remove_prefix(eol + 1);
        eol = r.find('\n');
        std::string_view line = trim(r.substr(0, eol));
        if (line.empty()) break;  // the end of the reply's header
        if (line.size() < 5 || strncasecmp(line.data(), "Spam:", 5) != 0) continue;
        std::string_view v = line.substr(5);
        size_t semi = v.find(';'), slash = v.find('/');
        if (semi == std::string_view::npos || slash == std::string_view::npos || slash < semi) return std::nullopt;
        double score = 0;
        if (!verify::spam::parse_score(trim(v.substr(semi + 1, slash - semi - 1)), score)) return std::nullopt;
        return score;
    }
    return std::nullopt;
}

SpamdAnswer spamd_check(const std::string& address, const spool::MessageData& data, size_t max_bytes,
                        double deadline) {
    auto fd = connect_to(address, deadline);
    if (!fd) return failed("cannot connect to " + address + ": " + fd.error().what());
    uint64_t length = std::min<uint64_t>(data.length, max_bytes);
    std::string head = "CHECK SPAMC/1.5\r\nContent-length: " + std::to_string(length) + "\r\n\r\n";
    if (!send_all(fd->get(), head.data(), head.size(), deadline)) return failed("send failed or timed out");
    std::string buf(64 * 1024, '\0');
    for (uint64_t at = 0; at < length;) {
        auto n = data.read(at, buf.data(), static_cast<size_t>(std::min<uint64_t>(buf.size(), length - at)));
        if (!n) return failed("message not read: " + n.error().what());
        if (n.value() == 0) return failed("message shorter than its length");
        if (!send_all(fd->get(), buf.data(), n.value(), deadline)) return failed("send failed or timed out");
        at += n.value();
    }
    ::shutdown(fd->get(), SHUT_WR);  // spamd reads to the Content-length; older ones to the end
    std::string reply;
    char in[1024];
    while (reply.find("\r\n\r\n") == std::string::npos && reply.find("\n\n") == std::string::npos && reply.size() < 8192) {
        ssize_t r = ::recv(fd->get(), in, sizeof in, MSG_DONTWAIT);
        if (r > 0) reply.append(in, static_cast<size_t>(r));
        else if (r == 0) break;
        else if (errno != EAGAIN && errno != EINTR) return failed(std::string("recv: ") + std::strerror(errno));
        else if (!wait_for(fd->get(), POLLIN, deadline)) return failed("no answer within spamd_timeout");
    }
    auto score = parse_spamd_reply(reply);
    if (!score) return failed("unexpected answer \"" + reply.substr(0, std::min<size_t>(reply.find('\n'), 100)) + "\"");
    return {score, ""};
}

}  // namespace ferry::smtpd

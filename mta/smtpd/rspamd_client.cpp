// A client of rspamd's HTTP protocol (POST /checkv2), blocking within a deadline, for a worker thread.
#include "mta/smtpd/rspamd_client.hpp"

#include <poll.h>
#include <strings.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>

#include "mta/smtpd/scanner_socket.hpp"

namespace ferry::smtpd {

namespace {

// A reply larger than this is not read on: the JSON reader's own limit and a header.
constexpr size_t kMaxReply = verify::spam::RspamdLimits{}.max_bytes + 64 * 1024;

bool clean(std::string_view v) {
    for (char c : v)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
    return true;
}

void field(std::string& out, const char* name, std::string_view value) {
    if (value.empty() || value.size() > 1000 || !clean(value)) return;
    out.append(name).append(": ").append(value).append("\r\n");
}

// The header section of an HTTP reply (through its empty line) and whether it is complete.
size_t header_end(std::string_view raw) {
    size_t e = raw.find("\r\n\r\n");
    return e == std::string_view::npos ? e : e + 4;
}

// The value of the header field `name` in `head` (its lines after the status line), trimmed; nullopt without one.
std::optional<std::string_view> header_value(std::string_view head, std::string_view name) {
    size_t at = head.find("\r\n");
    while (at != std::string_view::npos && at + 2 < head.size()) {
        size_t start = at + 2, end = head.find("\r\n", start);
        std::string_view line = head.substr(start, end == std::string_view::npos ? end : end - start);
        at = end;
        if (line.size() <= name.size() || line[name.size()] != ':' || strncasecmp(line.data(), name.data(), name.size()) != 0)
            continue;
        std::string_view v = line.substr(name.size() + 1);
        while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
        while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
        return v;
    }
    return std::nullopt;
}

// Content-Length of a complete header: nullopt without one, SIZE_MAX when it is no number.
std::optional<size_t> content_length(std::string_view head) {
    auto v = header_value(head, "Content-Length");
    if (!v) return std::nullopt;
    size_t n = 0;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
    if (v->empty() || ec != std::errc() || end != v->data() + v->size()) return SIZE_MAX;
    return n;
}

RspamdAnswer failed(std::string why) { return {std::nullopt, std::move(why)}; }

}  // namespace

std::string rspamd_request_head(const std::string& address, const RspamdEnvelope& e, uint64_t length) {
    std::string host = address[0] == '/' ? "localhost" : address;
    std::string out = "POST /checkv2 HTTP/1.1\r\n";
    field(out, "Host", host);
    out += "Content-Length: " + std::to_string(length) + "\r\nConnection: close\r\n";
    field(out, "Queue-Id", e.queue_id);
    field(out, "IP", e.client);
    field(out, "Helo", e.helo);
    field(out, "From", e.sender);
    for (const auto& r : e.recipients) field(out, "Rcpt", r);
    field(out, "User", e.user);
    return out + "\r\n";
}

std::optional<std::string_view> http_reply_body(std::string_view raw, std::string* why) {
    auto refuse = [&](std::string text) -> std::optional<std::string_view> {
        if (why) *why = std::move(text);
        return std::nullopt;
    };
    size_t end = header_end(raw);
    if (end == std::string_view::npos) return refuse("no complete HTTP header");
    std::string_view head = raw.substr(0, end - 2), status = raw.substr(0, raw.find("\r\n"));
    // "HTTP/1.1 200 OK"
    if (status.size() < 12 || status.substr(0, 7) != "HTTP/1." || status[8] != ' ')
        return refuse("not an HTTP reply: \"" + std::string(status.substr(0, 60)) + "\"");
    if (status.substr(9, 3) != "200" || (status.size() > 12 && status[12] != ' '))
        return refuse("HTTP status \"" + std::string(status.substr(9, 60)) + "\"");
    if (auto te = header_value(head, "Transfer-Encoding"); te && strcasecmp(std::string(*te).c_str(), "identity") != 0)
        return refuse("Transfer-Encoding " + std::string(te->substr(0, 40)) + " is not read");
    std::string_view body = raw.substr(end);
    auto length = content_length(head);
    if (length && *length == SIZE_MAX) return refuse("bad Content-Length");
    if (length && body.size() < *length) return refuse("reply shorter than its Content-Length");
    return length ? body.substr(0, *length) : body;
}

RspamdAnswer rspamd_check(const std::string& address, const RspamdEnvelope& e, const spool::MessageData& data,
                          size_t max_bytes, double deadline) {
    auto fd = connect_to(address, deadline);
    if (!fd) return failed("cannot connect to " + address + ": " + fd.error().what());
    uint64_t length = std::min<uint64_t>(data.length, max_bytes);
    std::string head = rspamd_request_head(address, e, length);
    if (!send_all(fd->get(), head.data(), head.size(), deadline)) return failed("send failed or timed out");
    std::string buf(64 * 1024, '\0');
    for (uint64_t at = 0; at < length;) {
        auto n = data.read(at, buf.data(), static_cast<size_t>(std::min<uint64_t>(buf.size(), length - at)));
        if (!n) return failed("message not read: " + n.error().what());
        if (n.value() == 0) return failed("message shorter than its length");
        if (!send_all(fd->get(), buf.data(), n.value(), deadline)) return failed("send failed or timed out");
        at += n.value();
    }
    std::string reply;
    while (reply.size() < kMaxReply) {
        if (size_t end = header_end(reply); end != std::string::npos) {
            auto want = content_length(std::string_view(reply).substr(0, end - 2));
            if (want && *want != SIZE_MAX && reply.size() - end >= *want) break;
        }
        ssize_t r = ::recv(fd->get(), buf.data(), buf.size(), MSG_DONTWAIT);
        if (r > 0) reply.append(buf.data(), static_cast<size_t>(r));
        else if (r == 0) break;
        else if (errno != EAGAIN && errno != EINTR) return failed(std::string("recv: ") + std::strerror(errno));
        else if (!wait_for(fd->get(), POLLIN, deadline)) return failed("no answer within rspamd_timeout");
    }
    if (reply.size() >= kMaxReply) return failed("reply over " + std::to_string(kMaxReply) + " octets");
    std::string why;
    auto body = http_reply_body(reply, &why);
    if (!body) return failed(why);
    auto parsed = verify::spam::parse_rspamd_reply(*body, &why);
    if (!parsed) return failed("unexpected answer: " + why);
    return {std::move(parsed), ""};
}

}  // namespace ferry::smtpd

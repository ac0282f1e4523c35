// The header lines ferry-mda adds and reads: Return-Path, Delivered-To, and the queue id in Received.
#include "mda/trace_headers.hpp"

#include <cctype>
#include <strings.h>

namespace ferry::mda {

namespace {

std::string one_line(std::string_view v) {
    std::string out(v);
    for (char& c : out)
        if (c == '\r' || c == '\n') c = ' ';
    return out;
}

bool is_id_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// The first Received: field of the header section, continuation lines joined; empty when none.
std::string first_received(std::string_view message) {
    size_t pos = 0;
    std::string field;
    bool in_received = false;
    while (pos < message.size()) {
        size_t nl = message.find('\n', pos);
        std::string_view line = message.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
        pos = nl == std::string_view::npos ? message.size() : nl + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) break;  // end of the header section
        bool continuation = line.front() == ' ' || line.front() == '\t';
        if (in_received) {
            if (!continuation) break;
            field += ' ';
            field += line;
            continue;
        }
        size_t colon = line.find(':');
        if (!continuation && colon != std::string_view::npos && iequals(line.substr(0, colon), "Received")) {
            in_received = true;
            field = std::string(line.substr(colon + 1));
        }
    }
    return field;
}

}  // namespace

std::string delivery_headers(std::string_view sender, std::string_view recipient) {
    return "Return-Path: <" + one_line(sender) + ">\nDelivered-To: " + one_line(recipient) + "\n";
}

std::string queue_id_from_received(std::string_view message) {
    std::string field = first_received(message);
    std::string_view rest = field;
    bool after_id = false;
    while (!rest.empty()) {
        size_t start = 0;
        while (start < rest.size() && std::isspace(static_cast<unsigned char>(rest[start]))) ++start;
        size_t end = start;
        while (end < rest.size() && !std::isspace(static_cast<unsigned char>(rest[end]))) ++end;
        std::string_view token = rest.substr(start, end - start);
        rest.remove_prefix(end);
        if (token.empty()) break;
        if (after_id) {
            while (!token.empty() && (token.back() == ';' || token.back() == ',')) token.remove_suffix(1);
            if (token.empty() || token.size() > kMaxQueueIdLength) return "";
            for (char c : token)
                if (!is_id_char(c)) return "";
            return std::string(token);
        }
        after_id = iequals(token, "id");
    }
    return "";
}

std::string client_address_from_received(std::string_view message) {
    if (queue_id_from_received(message).empty()) return "";
    std::string field = first_received(message);
    size_t by = field.find(" by ");
    std::string_view from = std::string_view(field).substr(0, by);
    size_t open = from.find('[');
    size_t close = open == std::string_view::npos ? open : from.find(']', open);
    if (close == std::string_view::npos) return "";
    std::string_view addr = from.substr(open + 1, close - open - 1);
    if (addr.size() > 5 && iequals(addr.substr(0, 5), "IPv6:")) addr.remove_prefix(5);
    if (addr.empty() || addr.size() > 45) return "";
    for (char c : addr)
        if (!std::isxdigit(static_cast<unsigned char>(c)) && c != '.' && c != ':') return "";
    return std::string(addr);
}

std::string to_lf(std::string_view message) {
    std::string out;
    out.reserve(message.size());
    for (size_t i = 0; i < message.size(); ++i) {
        if (message[i] == '\r' && i + 1 < message.size() && message[i + 1] == '\n') continue;
        out += message[i];
    }
    return out;
}

}  // namespace ferry::mda

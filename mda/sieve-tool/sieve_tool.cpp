// ferry-sieve: compile a Sieve script and report its errors, or run it on a message file and print the actions.
#include "mda/sieve-tool/sieve_tool.hpp"

#include <sysexits.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <optional>
#include <sstream>

#include "mda/sieve/interpreter.hpp"
#include "mda/sieve/message.hpp"
#include "mda/sieve/script.hpp"

namespace ferry::sieve_tool {

namespace {

constexpr size_t kMaxMessage = 256 * 1024 * 1024;

std::optional<std::string> read_file(const std::string& path, size_t limit, std::string& why) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        why = path + ": " + strerror(errno);
        return std::nullopt;
    }
    std::ostringstream s;
    s << in.rdbuf();
    std::string text = s.str();
    if (text.size() > limit) {
        why = path + ": larger than " + std::to_string(limit) + " octets";
        return std::nullopt;
    }
    return text;
}

// "<a@b>" or "a@b" -> "a@b"; "<>" -> "".
std::string bare(std::string v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '<')) v.erase(0, 1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '>')) v.pop_back();
    return v;
}

std::string first_value(const sieve::MessageView& view, std::string_view field) {
    auto v = view.values(field);
    return v.empty() ? "" : bare(v.front());
}

sieve::Envelope envelope_of(const Options& o, std::string_view message) {
    sieve::MessageView view(message);
    sieve::Envelope e;
    e.from = o.null_sender ? "" : !o.sender.empty() ? bare(o.sender) : first_value(view, "Return-Path");
    if (!o.null_sender && e.from.empty() && view.values("Return-Path").empty()) e.from = "sender@example.com";
    e.to = !o.recipient.empty() ? bare(o.recipient) : first_value(view, "Delivered-To");
    if (e.to.empty()) e.to = "recipient@example.com";
    e.original_to = e.to;
    return e;
}

std::map<std::string, std::string> environment() {
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    std::string h = host;
    size_t dot = h.find('.');
    return {{"domain", dot == std::string::npos ? h : h.substr(dot + 1)},
            {"host", h},
            {"location", "MDA"},
            {"name", "ferry"},
            {"phase", "during"},
            {"version", "1"}};
}

int local_zone(time_t now) {
    struct tm tm {};
    localtime_r(&now, &tm);
    return static_cast<int>(tm.tm_gmtoff / 60);
}

// The script compiled, or the error printed "file:line:col: message".
std::optional<sieve::Script> compiled(const Options& o, FILE* err) {
    std::string why;
    sieve::CompileLimits limits;
    auto text = read_file(o.script, limits.max_script_size, why);
    if (!text) {
        fprintf(err, "ferry-sieve: %s\n", why.c_str());
        return std::nullopt;
    }
    auto r = sieve::compile(*text, limits);
    if (r.error) {
        fprintf(err, "%s:%u:%u: %s\n", o.script.c_str(), r.error->pos.line, r.error->pos.column,
                r.error->message.c_str());
        return std::nullopt;
    }
    return std::move(*r.script);
}

int test(const Options& o, const sieve::Script& script, FILE* out, FILE* err) {
    std::string why;
    auto message = read_file(o.message, kMaxMessage, why);
    if (!message) {
        fprintf(err, "ferry-sieve: %s\n", why.c_str());
        return EX_NOINPUT;
    }
    sieve::RunInput in;
    in.message = *message;
    in.envelope = envelope_of(o, *message);
    in.environment = environment();
    in.now = time(nullptr);
    in.local_zone = local_zone(in.now);
    in.own_addresses = o.addresses;
    in.mailbox_exists = [&](std::string_view mb) {
        return mb == "INBOX" || mb == o.mailbox || std::find(o.mailboxes.begin(), o.mailboxes.end(), mb) != o.mailboxes.end();
    };
    auto r = sieve::run(script, in);
    if (!r) {
        fprintf(err, "%s: run-time error: %s\n", o.script.c_str(), r.error().what().c_str());
        fprintf(out, "keep (implicit, after the error) into \"%s\"\n", o.mailbox.c_str());
        return 1;
    }
    for (const auto& a : r->actions) {
        std::string line = sieve::describe(a);
        if (a.type == sieve::Action::Type::keep && o.mailbox != "INBOX") line += " into \"" + o.mailbox + "\"";
        fprintf(out, "%s\n", line.c_str());
    }
    return EX_OK;
}

}  // namespace

Parsed parse_options(const std::vector<std::string>& args) {
    Parsed p;
    Options& o = p.options;
    std::vector<std::string> positional;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto value = [&](std::string& into) {
            if (i + 1 >= args.size()) return p.error = a + " needs a value", false;
            into = args[++i];
            return true;
        };
        if (a == "-f") {
            if (!value(o.sender)) return p;
            o.null_sender = o.sender.empty() || o.sender == "<>";
        } else if (a == "-r") {
            if (!value(o.recipient)) return p;
        } else if (a == "-m" || a == "--mailbox") {
            if (!value(o.mailbox)) return p;
        } else if (a == "-a" || a == "-e") {
            std::string v;
            if (!value(v)) return p;
            (a == "-a" ? o.addresses : o.mailboxes).push_back(v);
        } else if (a.size() > 1 && a[0] == '-') {
            p.error = "unknown option " + a;
            return p;
        } else {
            positional.push_back(a);
        }
    }
    if (positional.empty()) return p.error = "no command", p;
    o.command = positional[0];
    size_t want = o.command == "compile" ? 2 : o.command == "test" ? 3 : 0;
    if (want == 0) return p.error = "unknown command " + o.command, p;
    if (positional.size() != want) return p.error = "wrong number of arguments for " + o.command, p;
    o.script = positional[1];
    if (want == 3) o.message = positional[2];
    return p;
}

int run(const Options& o, FILE* out, FILE* err) {
    auto script = compiled(o, err);
    if (!script) return 1;
    if (o.command == "compile") return EX_OK;
    return test(o, *script, out, err);
}

}  // namespace ferry::sieve_tool

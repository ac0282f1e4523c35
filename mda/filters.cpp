// Administrator pipe filters (ferry-mda(8), FILTERS): external commands that see each message before Sieve and may rewrite, reject, discard or defer it.
#include "mda/filters.hpp"

#include <pwd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "common/base/command.hpp"
#include "common/base/fs.hpp"
#include "common/program/config.hpp"
#include "common/smtp/smtp_proto.hpp"

namespace ferry::mda {

FilterSettings filter_settings(const Config& config) {
    FilterSettings s;
    s.commands = config.list("mda_filters");
    s.timeout = static_cast<double>(config.duration("mda_filter_timeout").count());
    // The limit ferry-mda takes over LMTP (trace headers allowed for); 0: none.
    s.max_size = smtp::delivery_size_limit(config.size("message_size_limit"));
    if (s.max_size == 0) s.max_size = UINT64_MAX;
    if (s.commands.empty()) return s;  // read per delivery: no password file lookup when there is nothing to run
    passwd pw{};
    passwd* found = nullptr;
    char buf[4096];
    if (::getpwuid_r(::geteuid(), &pw, buf, sizeof buf, &found) == 0 && found && pw.pw_dir) s.home = pw.pw_dir;
    return s;
}

std::string filter_reply_text(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '\n' || c == '\r' || out.size() >= 200) break;
        if (c == '\t') c = ' ';
        if (c >= 0x20 && c < 0x7f) out += c;
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}

namespace {

// A file in memory for a message between filters (bounded by message_size_limit).
Fd memory_file() { return Fd(::memfd_create("ferry-mda-filter", MFD_CLOEXEC)); }

bool copy_range(int from, uint64_t start, uint64_t end, int to) {
    char buf[65536];
    for (uint64_t at = start; at < end;) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(sizeof buf, end - at));
        ssize_t n = ::pread(from, buf, want, static_cast<off_t>(at));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        if (!write_all(to, buf, static_cast<size_t>(n))) return false;
        at += static_cast<uint64_t>(n);
    }
    return true;
}

// The clean environment: the envelope, HOME and a standard PATH, nothing of the daemon's own.
struct Environment {
    std::vector<std::string> vars;
    std::vector<char*> ptrs;
    Environment(const FilterSettings& s, const FilterEnvelope& e) {
        vars = {"PATH=/usr/local/bin:/usr/bin:/bin", "SENDER=" + e.sender, "RECIPIENT=" + e.recipients,
                "ORIGINAL_RECIPIENT=" + e.original_recipients, "CLIENT_ADDRESS=" + e.client_address,
                "QUEUE_ID=" + e.queue_id};
        if (!s.home.empty()) vars.push_back("HOME=" + s.home);
        for (auto& v : vars) ptrs.push_back(v.data());
        ptrs.push_back(nullptr);
    }
};

std::string first_bytes(int fd, size_t n) {
    std::string s(n, '\0');
    ssize_t got = ::pread(fd, s.data(), n, 0);
    s.resize(got > 0 ? static_cast<size_t>(got) : 0);
    return s;
}

}  // namespace

FilterResult run_filters(const FilterSettings& settings, const FilterEnvelope& envelope, int fd, uint64_t start,
                         uint64_t end) {
    FilterResult result;
    auto tempfail = [&](const std::string& which, std::string why) {
        result.action = FilterResult::Action::tempfail;
        result.which = which;
        result.text = std::move(why);
        result.message.reset();
        return std::move(result);
    };
    if (!settings.enabled()) return result;
    Fd input = memory_file();
    if (!input.valid() || !copy_range(fd, start, end, input.get())) return tempfail("", "cannot copy the message for the filters");
    Environment env(settings, envelope);
    bool replaced = false;
    uint64_t size = end - start;
    for (const auto& command : settings.commands) {
        Fd output = memory_file();
        if (!output.valid()) return tempfail(command, "cannot make a file for its output");
        std::string err;
        CommandCapture capture{output.get(), settings.max_size, 0, &err, 4096};
        CommandOutcome outcome = run_command(command, input.get(), env.ptrs.data(), settings.timeout, -1, &capture);
        if (outcome.kind != CommandOutcome::Kind::exited) return tempfail(command, outcome.text());
        switch (outcome.code) {
            case 0:
                if (capture.out_size > 0) {
                    result.which = command;  // the last one that rewrote it, for the log
                    input = std::move(output);
                    size = capture.out_size;
                    replaced = true;
                }
                continue;
            case kFilterReject:
            case kFilterNoUser: {
                std::string text = filter_reply_text(first_bytes(output.get(), 1024));
                if (text.empty()) text = filter_reply_text(err);
                result.action = FilterResult::Action::reject;
                result.which = command;
                result.text = text.empty() ? "Rejected by a mail filter" : text;
                return result;
            }
            case kFilterDiscard:
                result.action = FilterResult::Action::discard;
                result.which = command;
                return result;
            default: {
                std::string text = filter_reply_text(err);
                return tempfail(command, outcome.text() + (text.empty() ? "" : ": " + text));
            }
        }
    }
    if (replaced) {
        result.action = FilterResult::Action::replaced;
        result.message = std::move(input);
        result.size = size;
    }
    return result;
}

}  // namespace ferry::mda

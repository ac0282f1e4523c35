// Which senders a vacation handle answered, and until when: <maildir>/sieve/.vacation, kept across restarts.
#include "mda/vacation_memory.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>

#include "common/base/fs.hpp"
#include "common/base/hash.hpp"

namespace ferry::mda {

namespace {

constexpr std::string_view kVersionLine = "ferry-vacation 1";

std::optional<VacationEntry> parse_line(std::string_view line) {
    size_t a = line.find(' ');
    if (a == std::string_view::npos) return std::nullopt;
    size_t b = line.find(' ', a + 1);
    if (b == std::string_view::npos || b + 1 >= line.size()) return std::nullopt;
    VacationEntry e;
    auto [p, ec] = std::from_chars(line.data(), line.data() + a, e.until);
    if (ec != std::errc() || p != line.data() + a) return std::nullopt;
    e.handle = std::string(line.substr(a + 1, b - a - 1));
    e.sender = std::string(line.substr(b + 1));
    if (e.handle.empty()) return std::nullopt;
    return e;
}

}  // namespace

std::vector<VacationEntry> parse_vacation_memory(std::string_view text) {
    std::vector<VacationEntry> entries;
    size_t nl = text.find('\n');
    if (text.substr(0, nl) != kVersionLine) return entries;
    while (nl != std::string_view::npos) {
        size_t start = nl + 1;
        nl = text.find('\n', start);
        if (nl == std::string_view::npos) break;  // a last line without its LF was not written whole
        if (auto e = parse_line(text.substr(start, nl - start))) entries.push_back(std::move(*e));
    }
    return entries;
}

std::string format_vacation_memory(const std::vector<VacationEntry>& entries) {
    std::string out = std::string(kVersionLine) + "\n";
    for (const auto& e : entries) out += std::to_string(e.until) + " " + e.handle + " " + e.sender + "\n";
    return out;
}

std::string vacation_handle_key(std::string_view handle) {
    char buf[17];
    snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fnv1a64(handle)));
    return buf;
}

std::string vacation_sender_key(std::string_view sender) {
    std::string s;
    for (char c : sender) {
        if (c == '\n' || c == '\r') c = ' ';
        s += static_cast<char>(tolower(static_cast<unsigned char>(c)));
    }
    return s;
}

bool vacation_answered(const std::vector<VacationEntry>& entries, std::string_view handle, std::string_view sender,
                       int64_t now) {
    std::string h = vacation_handle_key(handle), s = vacation_sender_key(sender);
    return std::any_of(entries.begin(), entries.end(),
                       [&](const VacationEntry& e) { return e.until > now && e.handle == h && e.sender == s; });
}

void vacation_remember(std::vector<VacationEntry>& entries, std::string_view handle, std::string_view sender,
                       int64_t until, int64_t now, size_t max_entries) {
    std::string h = vacation_handle_key(handle), s = vacation_sender_key(sender);
    std::erase_if(entries, [&](const VacationEntry& e) { return e.until <= now || (e.handle == h && e.sender == s); });
    entries.push_back(VacationEntry{until, h, s});
    if (max_entries == 0) max_entries = 1;
    if (entries.size() > max_entries) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const VacationEntry& a, const VacationEntry& b) { return a.until > b.until; });
        entries.resize(max_entries);
    }
}

Result<VacationMemory> VacationMemory::open(const std::string& dir) {
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return sys_error("cannot create " + dir);
    std::string lock_path = dir + "/.vacation.lock";
    Fd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!lock.valid()) return sys_error("cannot open " + lock_path);
    while (flock(lock.get(), LOCK_EX) != 0)
        if (errno != EINTR) return sys_error("cannot lock " + lock_path);
    VacationMemory m(dir + "/.vacation", std::move(lock));
    auto text = read_small_file(m.path_);  // only ferry-mda writes it, bounded by max_entries
    if (!text) return text.error();
    if (*text) m.entries_ = parse_vacation_memory(**text);
    return m;
}

bool VacationMemory::answered(std::string_view handle, std::string_view sender, int64_t now) const {
    return vacation_answered(entries_, handle, sender, now);
}

Result<void> VacationMemory::remember(std::string_view handle, std::string_view sender, int64_t until, int64_t now,
                                      size_t max_entries) {
    vacation_remember(entries_, handle, sender, until, now, max_entries);
    return write_file_durably(path_, format_vacation_memory(entries_), 0600);
}

}  // namespace ferry::mda

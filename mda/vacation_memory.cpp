// What an account's Sieve rules remember across restarts: vacation answers (<maildir>/sieve/.vacation) and seen message ids (.duplicate).
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
#include "common/verify/dkim_key.hpp"

namespace ferry::mda {

namespace {

std::optional<MemoryEntry> parse_line(std::string_view line) {
    size_t a = line.find(' ');
    if (a == std::string_view::npos) return std::nullopt;
    size_t b = line.find(' ', a + 1);
    if (b == std::string_view::npos || b + 1 >= line.size()) return std::nullopt;
    MemoryEntry e;
    auto [p, ec] = std::from_chars(line.data(), line.data() + a, e.until);
    if (ec != std::errc() || p != line.data() + a) return std::nullopt;
    e.key = std::string(line.substr(a + 1, b - a - 1));
    e.value = std::string(line.substr(b + 1));
    if (e.key.empty()) return std::nullopt;
    return e;
}

std::string one_line(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c == '\n' || c == '\r') c = ' ';
    return out;
}

}  // namespace

std::vector<MemoryEntry> parse_memory(std::string_view text, std::string_view version) {
    std::vector<MemoryEntry> entries;
    size_t nl = text.find('\n');
    if (text.substr(0, nl) != version) return entries;
    while (nl != std::string_view::npos) {
        size_t start = nl + 1;
        nl = text.find('\n', start);
        if (nl == std::string_view::npos) break;  // a last line without its LF was not written whole
        if (auto e = parse_line(text.substr(start, nl - start))) entries.push_back(std::move(*e));
    }
    return entries;
}

std::string format_memory(const std::vector<MemoryEntry>& entries, std::string_view version) {
    std::string out = std::string(version) + "\n";
    for (const auto& e : entries) out += std::to_string(e.until) + " " + e.key + " " + one_line(e.value) + "\n";
    return out;
}

void prune_memory(std::vector<MemoryEntry>& entries, int64_t now, size_t max_entries) {
    std::erase_if(entries, [&](const MemoryEntry& e) { return e.until <= now; });
    if (max_entries == 0) max_entries = 1;
    if (entries.size() > max_entries) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const MemoryEntry& a, const MemoryEntry& b) { return a.until > b.until; });
        entries.resize(max_entries);
    }
}

Result<MemoryFile> MemoryFile::open(const std::string& dir, std::string_view name, std::string_view version) {
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return sys_error("cannot create " + dir);
    std::string lock_path = dir + "/." + std::string(name) + ".lock";
    Fd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!lock.valid()) return sys_error("cannot open " + lock_path);
    while (flock(lock.get(), LOCK_EX) != 0)
        if (errno != EINTR) return sys_error("cannot lock " + lock_path);
    auto entries = read(dir, name, version);
    if (!entries) return entries.error();
    MemoryFile m(dir + "/." + std::string(name), std::string(version), std::move(lock));
    m.entries_ = std::move(*entries);
    return m;
}

Result<std::vector<MemoryEntry>> MemoryFile::read(const std::string& dir, std::string_view name,
                                                   std::string_view version) {
    auto text = read_small_file(dir + "/." + std::string(name));  // only ferry-mda writes it, bounded by its max
    if (!text) return text.error();
    if (!*text) return std::vector<MemoryEntry>();
    return parse_memory(**text, version);
}

Result<void> MemoryFile::write() const { return write_file_durably(path_, format_memory(entries_, version_), 0600); }

std::vector<VacationEntry> parse_vacation_memory(std::string_view text) { return parse_memory(text, kVacationVersion); }

std::string format_vacation_memory(const std::vector<VacationEntry>& entries) {
    return format_memory(entries, kVacationVersion);
}

std::string vacation_handle_key(std::string_view handle) {
    char buf[17];
    snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fnv1a64(handle)));
    return buf;
}

std::string vacation_sender_key(std::string_view sender) {
    std::string s;
    for (char c : one_line(sender)) s += static_cast<char>(tolower(static_cast<unsigned char>(c)));
    return s;
}

bool vacation_answered(const std::vector<VacationEntry>& entries, std::string_view handle, std::string_view sender,
                       int64_t now) {
    std::string h = vacation_handle_key(handle), s = vacation_sender_key(sender);
    return std::any_of(entries.begin(), entries.end(),
                       [&](const VacationEntry& e) { return e.until > now && e.key == h && e.value == s; });
}

void vacation_remember(std::vector<VacationEntry>& entries, std::string_view handle, std::string_view sender,
                       int64_t until, int64_t now, size_t max_entries) {
    std::string h = vacation_handle_key(handle), s = vacation_sender_key(sender);
    std::erase_if(entries, [&](const VacationEntry& e) { return e.key == h && e.value == s; });
    entries.push_back(VacationEntry{until, h, s});
    prune_memory(entries, now, max_entries);
}

Result<VacationMemory> VacationMemory::open(const std::string& dir) {
    auto f = MemoryFile::open(dir, "vacation", kVacationVersion);
    if (!f) return f.error();
    return VacationMemory(std::move(f.value()));
}

bool VacationMemory::answered(std::string_view handle, std::string_view sender, int64_t now) const {
    return vacation_answered(file_.entries(), handle, sender, now);
}

Result<void> VacationMemory::remember(std::string_view handle, std::string_view sender, int64_t until, int64_t now,
                                      size_t max_entries) {
    vacation_remember(file_.entries(), handle, sender, until, now, max_entries);
    return file_.write();
}

std::string duplicate_key(std::string_view handle, std::string_view id) {
    // SHA-256, not FNV: a sender must not be able to make its message collide with another's id.
    std::string digest = verify::dkim::sha256(std::string(handle) + '\0' + std::string(id));
    std::string hex;
    for (size_t i = 0; i < 16 && i < digest.size(); ++i) {
        char b[3];
        snprintf(b, sizeof b, "%02x", static_cast<unsigned char>(digest[i]));
        hex += b;
    }
    return hex;
}

bool duplicate_seen(const std::vector<MemoryEntry>& entries, std::string_view key, std::string_view qid, int64_t now) {
    return std::any_of(entries.begin(), entries.end(), [&](const MemoryEntry& e) {
        return e.until > now && e.key == key && (qid.empty() || e.value != qid);
    });
}

void duplicate_remember(std::vector<MemoryEntry>& entries, std::string_view key, std::string_view qid, int64_t period,
                        bool last, int64_t now, size_t max_entries) {
    std::string self = qid.empty() ? std::string("-") : one_line(qid);
    auto it = std::find_if(entries.begin(), entries.end(), [&](const MemoryEntry& e) { return e.key == key; });
    bool first_counts = it != entries.end() && it->until > now && !last && it->value != self;
    if (!first_counts) {
        if (it != entries.end()) entries.erase(it);
        entries.push_back(MemoryEntry{now + std::max<int64_t>(period, 1), std::string(key), self});
    }
    prune_memory(entries, now, max_entries);
}

}  // namespace ferry::mda

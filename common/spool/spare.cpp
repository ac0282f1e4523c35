// Spare queue files: the files of removed messages kept in spare/ for reuse, so that accepting a message allocates no inode.
#include "common/spool/spare.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "common/base/fs.hpp"
#include "common/spool/spool.hpp"

namespace ferry::spool {

namespace {

using Clock = std::chrono::steady_clock;

// What this process knows of one spool's spare/: names writers may take (listed, then synced out
// of queue/), and how many files are there at most (the remover's count, taken from the directory
// when it seems full).
struct SpareDir {
    std::vector<std::string> names;
    Clock::time_point listed{};
    size_t count = 0;
    bool counted = false;
    Clock::time_point recounted{};
};

std::mutex mu;
std::map<std::string, SpareDir>& dirs() {
    static std::map<std::string, SpareDir> d;
    return d;
}

// Calls `each` with the names in `dir` (no dot files) until it returns false.
template <class F>
void for_names(const std::string& dir, F each) {
    DIR* d = opendir(dir.c_str());
    if (!d) return;
    while (struct dirent* e = readdir(d))
        if (e->d_name[0] != '.' && !each(e->d_name)) break;
    closedir(d);
}

// The next name to try, from what earlier commits listed and synced.
std::optional<std::string> next_name(const std::string& spool_dir) {
    std::lock_guard<std::mutex> lock(mu);
    SpareDir& s = dirs()[spool_dir];
    if (s.names.empty()) return std::nullopt;
    std::string name = std::move(s.names.back());
    s.names.pop_back();
    return name;
}

// Whether spare/ may take one more file. The count only grows here (writers take files without
// telling), so when it reaches the limit the directory is counted again, at most every 20 ms: any
// slower and a busy queue unlinks most files while writers empty spare/ (and every unlinked inode
// slows the next file creations on the filesystem, ferry-mda's too).
bool has_room(const std::string& spool_dir) {
    std::lock_guard<std::mutex> lock(mu);
    SpareDir& s = dirs()[spool_dir];
    auto now = Clock::now();
    if (!s.counted || (s.count >= kSpareMax && now - s.recounted >= std::chrono::milliseconds(20))) {
        s.count = 0;
        for_names(spool_dir + "/" + kSpare, [&s](const char*) {
            ++s.count;
            return true;
        });
        s.counted = true;
        s.recounted = now;
    }
    if (s.count >= kSpareMax) return false;
    ++s.count;
    return true;
}

}  // namespace

Result<void> retire_queue_file(const std::string& spool_dir, const std::string& id) {
    std::string queued = spool_dir + "/" + kQueue + "/" + id;
    struct stat st;
    if (stat(queued.c_str(), &st) == 0 && S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) <= kSpareMaxSize &&
        has_room(spool_dir) && rename(queued.c_str(), (spool_dir + "/" + kSpare + "/" + id).c_str()) == 0)
        return {};
    if (unlink(queued.c_str()) != 0 && errno != ENOENT) return sys_error("cannot remove " + queued);
    return {};
}

std::vector<std::string> list_spares(const std::string& spool_dir) {
    {
        std::lock_guard<std::mutex> lock(mu);
        SpareDir& s = dirs()[spool_dir];
        auto now = Clock::now();
        if (s.names.size() >= kSpareListed / 4 || now - s.listed < std::chrono::milliseconds(50)) return {};
        s.listed = now;
    }
    std::vector<std::string> names;
    for_names(spool_dir + "/" + kSpare, [&names](const char* n) {
        names.emplace_back(n);
        return names.size() < kSpareListed;
    });
    return names;
}

void offer_spares(const std::string& spool_dir, std::vector<std::string> names) {
    if (names.empty()) return;
    std::lock_guard<std::mutex> lock(mu);
    SpareDir& s = dirs()[spool_dir];
    for (auto& n : names)
        if (s.names.size() < kSpareListed) s.names.push_back(std::move(n));
}

Fd take_spare(const std::string& spool_dir, const std::string& incoming_path) {
    while (auto name = next_name(spool_dir)) {
        std::string spare = spool_dir + "/" + kSpare + "/" + *name;
        Fd fd(open(spare.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
        if (!fd.valid()) continue;  // taken by another writer
        if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0 || !same_file(fd.get(), spare)) continue;
        // RENAME_NOREPLACE: like O_EXCL, an incoming file of that id is never replaced.
        if (renameat2(AT_FDCWD, spare.c_str(), AT_FDCWD, incoming_path.c_str(), RENAME_NOREPLACE) != 0) return Fd{};
        // A file with a second name (a crash undid half of a rename) may still be a queue file.
        struct stat st;
        if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
            unlink(incoming_path.c_str());
            return Fd{};
        }
        return fd;
    }
    return Fd{};
}

}  // namespace ferry::spool

// An account's Sieve scripts on disk: ManageSieve writes them, ferry-mda reads the active one.
#include "common/store/sieve_scripts.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/base/fd.hpp"
#include "common/base/fs.hpp"
#include "common/mail/mime_decode.hpp"

namespace ferry::store {

namespace {

constexpr std::string_view kSuffix = ".sieve";
constexpr const char* kActive = "active";

Result<void> ensure_dir(const std::string& dir) {
    if (::mkdir(dir.c_str(), 0700) == 0) return fsync_dir(dir_of(dir));
    if (errno == EEXIST) return {};
    return sys_error("mkdir " + dir);
}

}  // namespace

SieveScripts::SieveScripts(std::string maildir) : dir_(std::move(maildir) + "/sieve") {}

bool SieveScripts::valid_name(std::string_view name) {
    if (name.empty() || name.size() > 128 || name[0] == '.') return false;
    for (unsigned char c : name)
        if (c < 0x20 || c == 0x7f || c == '/') return false;
    return mail::sanitize_utf8(name) == name;  // well-formed UTF-8: no overlong form, no surrogate
}

std::string SieveScripts::path_of(std::string_view name) const { return dir_ + "/" + std::string(name) + std::string(kSuffix); }

Result<std::optional<std::string>> SieveScripts::active_name() const {
    char buf[512];
    std::string link = dir_ + "/" + kActive;
    ssize_t n = ::readlink(link.c_str(), buf, sizeof buf);
    if (n < 0) {
        if (errno == ENOENT || errno == ENOTDIR) return std::optional<std::string>();
        return sys_error("readlink " + link);
    }
    std::string target(buf, static_cast<size_t>(n));
    if (target.size() <= kSuffix.size() || target.compare(target.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0)
        return std::optional<std::string>();  // not ours: treated as no active script
    return std::optional<std::string>(target.substr(0, target.size() - kSuffix.size()));
}

Result<std::vector<SieveScripts::Entry>> SieveScripts::list() const {
    std::vector<Entry> out;
    DIR* d = ::opendir(dir_.c_str());
    if (!d) {
        if (errno == ENOENT) return out;
        return sys_error("opendir " + dir_);
    }
    auto active = active_name();
    while (dirent* e = ::readdir(d)) {
        std::string_view f = e->d_name;
        if (f.size() <= kSuffix.size() || f.substr(f.size() - kSuffix.size()) != kSuffix) continue;
        std::string name(f.substr(0, f.size() - kSuffix.size()));
        if (!valid_name(name)) continue;
        bool is_active = active && *active && **active == name;
        out.push_back(Entry{std::move(name), is_active});
    }
    ::closedir(d);
    if (!active) return active.error();
    std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
    return out;
}

Result<std::optional<std::string>> SieveScripts::get(std::string_view name) const {
    if (!valid_name(name)) return std::optional<std::string>();
    return read_small_file(path_of(name));
}

Result<void> SieveScripts::put(std::string_view name, std::string_view text) {
    if (!valid_name(name)) return make_error(0, "", "invalid script name");
    if (auto r = ensure_dir(dir_); !r) return r;
    return write_file_durably(path_of(name), text, 0600);
}

Result<void> SieveScripts::remove(std::string_view name) {
    auto active = active_name();
    if (!active) return active.error();
    if (*active && **active == name) return make_error(0, "ACTIVE", "the script is active");
    if (!valid_name(name)) return make_error(0, "NONEXISTENT", "no such script");
    std::string path = path_of(name);
    if (::unlink(path.c_str()) != 0) {
        if (errno == ENOENT) return make_error(0, "NONEXISTENT", "no such script");
        return sys_error("unlink " + path);
    }
    return fsync_dir(dir_);
}

Result<void> SieveScripts::rename(std::string_view from, std::string_view to) {
    if (!valid_name(to)) return make_error(0, "", "invalid script name");
    if (!valid_name(from)) return make_error(0, "NONEXISTENT", "no such script");
    std::string src = path_of(from), dst = path_of(to);
    struct stat st;
    if (::stat(src.c_str(), &st) != 0) return make_error(0, "NONEXISTENT", "no such script");
    // link fails on an existing name, so `to` is never replaced.
    if (::link(src.c_str(), dst.c_str()) != 0) {
        if (errno == EEXIST) return make_error(0, "ALREADYEXISTS", "a script of that name exists");
        return sys_error("link " + dst);
    }
    auto active = active_name();
    if (active && *active && **active == from) {
        if (auto r = set_active(to); !r) return r;
    }
    if (::unlink(src.c_str()) != 0 && errno != ENOENT) return sys_error("unlink " + src);
    return fsync_dir(dir_);
}

Result<void> SieveScripts::set_active(std::string_view name) {
    std::string link = dir_ + "/" + kActive;
    if (name.empty()) {
        if (::unlink(link.c_str()) != 0) {
            if (errno == ENOENT || errno == ENOTDIR) return {};
            return sys_error("unlink " + link);
        }
        return fsync_dir(dir_);
    }
    struct stat st;
    if (!valid_name(name) || ::stat(path_of(name).c_str(), &st) != 0)
        return make_error(0, "NONEXISTENT", "no such script");
    std::string tmp = link + ".tmp";
    ::unlink(tmp.c_str());
    std::string target = std::string(name) + std::string(kSuffix);
    if (::symlink(target.c_str(), tmp.c_str()) != 0) return sys_error("symlink " + tmp);
    if (::rename(tmp.c_str(), link.c_str()) != 0) return sys_error("rename " + link);
    return fsync_dir(dir_);
}

Result<std::optional<SieveScripts::Active>> SieveScripts::active() const {
    auto name = active_name();
    if (!name) return name.error();
    if (!*name) return std::optional<Active>();
    auto text = read_small_file(path_of(**name));
    if (!text) return text.error();
    if (!*text) return std::optional<Active>();
    return std::optional<Active>(Active{**name, std::move(**text)});
}

Result<uint64_t> SieveScripts::total_size() const {
    auto all = list();
    if (!all) return all.error();
    uint64_t total = 0;
    for (auto& e : *all) {
        struct stat st;
        if (::stat(path_of(e.name).c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_size);
    }
    return total;
}

}  // namespace ferry::store

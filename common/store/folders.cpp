// The folders of one account (Maildir++): names, list, create, delete, rename, subscriptions, SPECIAL-USE.
#include "common/store/folders.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <sstream>
#include <utility>

#include "common/base/fs.hpp"
#include "common/store/index.hpp"
#include "common/store/maildir.hpp"

namespace ferry::store {

namespace {

Error folder_error(std::string text, std::string detail = {}) { return make_error(0, "", std::move(text), std::move(detail)); }

// The length of the UTF-8 sequence at the front of `s`, 0 when it is not one (overlong forms,
// surrogates and values above U+10FFFF included).
size_t utf8_length(std::string_view s) {
    auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
    unsigned char c = b(0);
    if (c < 0x80) return 1;
    size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (n == 0 || c > 0xF4 || s.size() < n) return 0;
    for (size_t i = 1; i < n; ++i)
        if ((b(i) & 0xC0) != 0x80) return 0;
    if (n == 3 && ((c == 0xE0 && b(1) < 0xA0) || (c == 0xED && b(1) >= 0xA0))) return 0;
    if (n == 4 && ((c == 0xF0 && b(1) < 0x90) || (c == 0xF4 && b(1) >= 0x90))) return 0;
    return n;
}

std::string disk_name(std::string_view name) {
    std::string d = ".";
    for (char c : name) d += c == kDelimiter ? '.' : c;
    return d;
}

// A flock on the account's folder lock file for the length of one change.
class FoldersLock {
public:
    static Result<FoldersLock> take(const std::string& root) {
        std::string path = root + "/" + kFoldersLockFile;
        Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
        if (!fd.valid()) return sys_error("cannot open " + path);
        while (flock(fd.get(), LOCK_EX) != 0)
            if (errno != EINTR) return sys_error("cannot lock " + path);
        return FoldersLock(std::move(fd));
    }

private:
    explicit FoldersLock(Fd fd) : fd_(std::move(fd)) {}
    Fd fd_;  // closing it drops the lock
};

bool exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<std::string> read_lines(const std::string& path) {
    std::vector<std::string> out;
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return out;
    std::string data;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd.get(), buf, sizeof buf)) > 0;) data.append(buf, static_cast<size_t>(n));
    std::istringstream in(data);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) out.push_back(line);
    return out;
}

// Written whole under a temporary name, then renamed; fsync'd only when `durable`.
Result<void> write_lines(const std::string& path, const std::vector<std::string>& lines, bool durable = true) {
    std::string data;
    for (const auto& l : lines) data += l + "\n";
    if (durable) return write_file_durably(path, data, 0600);
    std::string temp = path + ".tmp";
    Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd.valid()) return sys_error("cannot create " + temp);
    if (auto w = write_all(fd.get(), data.data(), data.size()); !w) return w;
    if (::rename(temp.c_str(), path.c_str()) != 0) return sys_error("cannot rename " + temp);
    return {};
}

// SPECIAL-USE attribute -> folder name.
std::vector<std::pair<std::string, std::string>> read_special_use(const std::string& root) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& line : read_lines(root + "/" + kSpecialUseFile)) {
        size_t tab = line.find('\t');
        if (tab != std::string::npos) out.emplace_back(line.substr(0, tab), line.substr(tab + 1));
    }
    return out;
}

Result<void> write_special_use(const std::string& root, const std::vector<std::pair<std::string, std::string>>& uses,
                               bool durable = true) {
    std::vector<std::string> lines;
    for (const auto& [attr, name] : uses) lines.push_back(attr + "\t" + name);
    return write_lines(root + "/" + kSpecialUseFile, lines, durable);
}

// The folder directory's Maildir and the Maildir++ marker; fsync'd into place when `durable`.
Result<void> make_folder_dir(const std::string& path, bool durable = true) {
    if (::mkdir(path.c_str(), 0700) != 0) {
        if (errno == EEXIST) return folder_error("folder already exists");
        return sys_error("cannot create " + path);
    }
    for (const char* sub : {"/cur", "/new", "/tmp"})
        if (::mkdir((path + sub).c_str(), 0700) != 0 && errno != EEXIST) return sys_error("cannot create " + path + sub);
    Fd marker(::open((path + "/" + kMaildirFolderFile).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    if (!marker.valid()) return sys_error("cannot create " + path + "/" + kMaildirFolderFile);
    if (!durable) return {};
    if (auto r = fsync_dir(path); !r) return r;
    return fsync_dir(dir_of(path));
}

uint32_t uidvalidity_used(const std::string& root) {
    auto lines = read_lines(root + "/" + kUidvalidityFile);
    return lines.empty() ? 0 : static_cast<uint32_t>(std::strtoul(lines[0].c_str(), nullptr, 10));
}

// RFC 9051 section 2.3.1.1: a folder created again under a name must not repeat the UIDVALIDITY
// the name had, so the folder's leaves its mark before it goes. Called under the folders lock.
Result<void> remember_uidvalidity(const std::string& root, const std::string& path) {
    auto ix = Index::open(path);
    if (!ix || ix->uidvalidity() <= uidvalidity_used(root)) return {};
    return write_lines(root + "/" + kUidvalidityFile, {std::to_string(ix->uidvalidity())}, true);
}

Result<void> create_locked(const std::string& root, std::string_view name, std::string_view special_use) {
    if (is_inbox(name)) return folder_error("INBOX exists already");
    auto path = folder_path(root, name);
    if (!path) return path.error();
    if (auto r = make_folder_dir(*path); !r) return r;
    if (uint32_t used = uidvalidity_used(root); used != 0) {
        auto ix = Index::open(*path, used);
        if (!ix) return ix.error();
        if (auto r = ix->sync(); !r) return r.error();
    }
    if (special_use.empty()) return {};
    auto uses = read_special_use(root);
    std::erase_if(uses, [&](auto& u) { return strcasecmp(u.first.c_str(), std::string(special_use).c_str()) == 0; });
    uses.emplace_back(std::string(special_use), std::string(name));
    return write_special_use(root, uses);
}

// Moves every message of INBOX's new/ and cur/ into the folder at `to`.
Result<void> move_inbox_messages(const std::string& root, const std::string& to) {
    for (const char* sub : {"new", "cur"}) {
        std::string dir = root + "/" + sub;
        std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
        if (!d) continue;
        while (dirent* de = readdir(d.get())) {
            if (de->d_name[0] == '.') continue;
            std::string target = to + "/" + sub + "/" + de->d_name;
            if (::rename((dir + "/" + de->d_name).c_str(), target.c_str()) != 0 && errno != ENOENT)
                return sys_error("cannot move " + std::string(de->d_name));
        }
        if (auto r = fsync_dir(dir); !r) return r;
        if (auto r = fsync_dir(to + "/" + sub); !r) return r;
    }
    return {};
}

}  // namespace

bool is_inbox(std::string_view name) { return name.size() == 5 && strncasecmp(name.data(), "INBOX", 5) == 0; }

Result<void> check_folder_name(std::string_view name) {
    if (name.empty() || name.size() > kMaxFolderName) return folder_error("folder name empty or too long");
    if (name.front() == kDelimiter || name.back() == kDelimiter || name.find("//") != std::string_view::npos)
        return folder_error("folder name has an empty level");
    if (name.find('.') != std::string_view::npos) return folder_error("folder names cannot contain '.'");
    for (size_t i = 0; i < name.size();) {
        unsigned char c = static_cast<unsigned char>(name[i]);
        if (c < 0x20 || c == 0x7F) return folder_error("folder name has a control character");
        size_t n = utf8_length(name.substr(i));
        if (n == 0) return folder_error("folder name is not UTF-8");
        i += n;
    }
    return {};
}

Result<std::string> folder_path(const std::string& root, std::string_view name) {
    if (is_inbox(name)) return root;
    if (auto r = check_folder_name(name); !r) return r.error();
    return root + "/" + disk_name(name);
}

Result<std::vector<Folder>> list_folders(const std::string& root) {
    std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(root.c_str()), closedir);
    if (!d) return sys_error("cannot read " + root);
    std::vector<Folder> out;
    while (dirent* de = readdir(d.get())) {
        std::string_view n = de->d_name;
        // ".." prefixes mark a folder being deleted (as Dovecot's "..DOVECOT-TRASHED").
        if (n.size() < 2 || n[0] != '.' || n[1] == '.') continue;
        std::string name(n.substr(1));
        std::replace(name.begin(), name.end(), '.', kDelimiter);
        if (!check_folder_name(name) || !exists(root + "/" + std::string(n))) continue;
        out.push_back(Folder{name, {}, false});
    }
    std::sort(out.begin(), out.end(), [](const Folder& a, const Folder& b) { return a.name < b.name; });
    out.insert(out.begin(), Folder{"INBOX", {}, false});
    auto uses = read_special_use(root);
    auto subs = read_lines(root + "/" + kSubscriptionsFile);
    for (auto& f : out) {
        for (const auto& [attr, name] : uses)
            if (name == f.name) f.special_use = attr;
        f.subscribed = std::find(subs.begin(), subs.end(), f.name) != subs.end();
    }
    return out;
}

std::string special_use_folder(const std::string& root, std::string_view attribute) {
    for (const auto& [attr, name] : read_special_use(root))
        if (attr.size() == attribute.size() && strncasecmp(attr.data(), attribute.data(), attr.size()) == 0) return name;
    return "";
}

Result<void> create_folder(const std::string& root, std::string_view name, std::string_view special_use) {
    if (auto r = maildir::ensure(root); !r) return r;
    auto lock = FoldersLock::take(root);
    if (!lock) return lock.error();
    return create_locked(root, name, special_use);
}

Result<void> delete_folder(const std::string& root, std::string_view name) {
    if (is_inbox(name)) return folder_error("INBOX cannot be deleted");
    auto path = folder_path(root, name);
    if (!path) return path.error();
    auto lock = FoldersLock::take(root);
    if (!lock) return lock.error();
    if (!exists(*path)) return folder_error("no such folder");
    if (auto r = remember_uidvalidity(root, *path); !r) return r;
    // One rename takes it out of every listing; the removal of its files may then take its time.
    std::string doomed = root + "/..ferry-deleted." + std::to_string(getpid()) + "." + std::to_string(time(nullptr));
    if (::rename(path->c_str(), doomed.c_str()) != 0) return sys_error("cannot delete " + *path);
    (void)fsync_dir(root);
    std::error_code ec;
    std::filesystem::remove_all(doomed, ec);
    auto uses = read_special_use(root);
    if (std::erase_if(uses, [&](auto& u) { return u.second == name; }) > 0) return write_special_use(root, uses);
    return {};
}

Result<void> rename_folder(const std::string& root, std::string_view from, std::string_view to) {
    if (is_inbox(to)) return folder_error("INBOX exists already");
    auto from_path = folder_path(root, from);
    if (!from_path) return from_path.error();
    auto to_path = folder_path(root, to);
    if (!to_path) return to_path.error();
    auto lock = FoldersLock::take(root);
    if (!lock) return lock.error();
    if (exists(*to_path)) return folder_error("folder already exists");
    if (is_inbox(from)) {
        if (auto r = make_folder_dir(*to_path); !r) return r;
        return move_inbox_messages(root, *to_path);
    }
    if (!exists(*from_path)) return folder_error("no such folder");
    if (auto r = remember_uidvalidity(root, *from_path); !r) return r;
    // The children first, then the folder itself: ".A.x" -> ".B.x".
    std::string prefix = disk_name(from) + ".";
    std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(root.c_str()), closedir);
    std::vector<std::string> children;
    if (!d) return sys_error("cannot read " + root);
    while (dirent* de = readdir(d.get()))
        if (std::string_view(de->d_name).starts_with(prefix)) children.push_back(de->d_name);
    for (const auto& c : children) {
        std::string target = root + "/" + disk_name(to) + c.substr(prefix.size() - 1);
        if (::rename((root + "/" + c).c_str(), target.c_str()) != 0) return sys_error("cannot rename " + c);
    }
    if (::rename(from_path->c_str(), to_path->c_str()) != 0) return sys_error("cannot rename " + *from_path);
    (void)fsync_dir(root);
    auto uses = read_special_use(root);
    bool changed = false;
    for (auto& [attr, name] : uses) {
        if (name == from) name = std::string(to), changed = true;
        else if (name.starts_with(std::string(from) + "/")) name = std::string(to) + name.substr(from.size()), changed = true;
    }
    return changed ? write_special_use(root, uses) : Result<void>();
}

Result<std::vector<std::string>> subscriptions(const std::string& root) { return read_lines(root + "/" + kSubscriptionsFile); }

Result<void> subscribe(const std::string& root, std::string_view name, bool on) {
    std::string canonical = is_inbox(name) ? "INBOX" : std::string(name);
    if (!is_inbox(name))
        if (auto r = check_folder_name(name); !r) return r;
    if (auto r = maildir::ensure(root); !r) return r;
    auto lock = FoldersLock::take(root);
    if (!lock) return lock.error();
    auto subs = read_lines(root + "/" + kSubscriptionsFile);
    auto it = std::find(subs.begin(), subs.end(), canonical);
    if (on == (it != subs.end())) return {};
    if (on) subs.push_back(canonical);
    else subs.erase(it);
    return write_lines(root + "/" + kSubscriptionsFile, subs);
}

Result<void> ensure_account(const std::string& root) {
    std::string marker = root + "/" + kSpecialUseFile;
    if (::access(marker.c_str(), F_OK) == 0) return {};
    if (auto r = maildir::ensure(root); !r) return r;
    auto lock = FoldersLock::take(root);
    if (!lock) return lock.error();
    if (::access(marker.c_str(), F_OK) == 0) return {};  // another process was first
    // No fsync here: ferry-mda calls this on its event loop, and a crash that loses the defaults
    // (with the marker, written last) only means the next call makes them again.
    std::vector<std::pair<std::string, std::string>> uses;
    auto subs = read_lines(root + "/" + kSubscriptionsFile);
    for (const auto& f : kDefaultFolders) {
        auto path = folder_path(root, f.name);
        if (!exists(*path))
            if (auto r = make_folder_dir(*path, false); !r) return r;
        uses.emplace_back(f.special_use, f.name);
        if (std::find(subs.begin(), subs.end(), f.name) == subs.end()) subs.push_back(f.name);
    }
    if (std::find(subs.begin(), subs.end(), "INBOX") == subs.end()) subs.insert(subs.begin(), "INBOX");
    if (auto r = write_lines(root + "/" + kSubscriptionsFile, subs, false); !r) return r;
    // The marker goes last: a crash before it only means the next call checks again.
    return write_special_use(root, uses, false);
}

}  // namespace ferry::store

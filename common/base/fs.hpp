// Filesystem durability helpers shared by the spool, the Maildir store and the account database.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <functional>
#include <string>
#include <string_view>

#include "common/base/fd.hpp"
#include "common/base/result.hpp"

namespace ferry {

// fsync(2) of a directory, so a file created, renamed or linked into it survives a crash.
Result<void> fsync_dir(const std::string& dir);

// Writes all bytes, retrying on EINTR; for blocking sockets and files.
Result<void> write_all(int fd, const char* data, size_t len);

// A file written under a temporary name, then published durably, the commit of ferry-spool(5) and
// of the Maildir spec: write -> fsync(file) -> link or rename to the final name -> fsync(directory).
// Nothing is visible under the final name before the file is complete on disk; an unpublished
// file loses its temporary name when discarded or destroyed.
class DurableFile {
public:
    enum class Publish { link, rename };   // link never replaces a file; rename does, atomically
    enum class Existing { fail, replace };  // what create does when the temporary name is taken

    // Creates `temp_path` with `mode` (less the umask). An empty optional says the name is taken
    // (EEXIST) and the caller picks another; Existing::replace first removes a leftover.
    static Result<std::optional<DurableFile>> create(std::string temp_path, mode_t mode,
                                                     Existing existing = Existing::fail);
    // An unnamed file in directory `dir` (O_TMPFILE): its first name is the one publish() or
    // link_to() gives it, so no temporary name is made or removed, and a crash leaves nothing. An
    // empty optional where the kernel or the file system has no O_TMPFILE, or /proc (the link
    // goes through /proc/self/fd) is not mounted: the caller then makes a named file.
    static Result<std::optional<DurableFile>> create_unnamed(const std::string& dir, mode_t mode);
    // Takes over a file the caller created (and perhaps locked) at `temp_path`.
    DurableFile(Fd fd, std::string temp_path) : fd_(std::move(fd)), temp_(std::move(temp_path)) {}
    DurableFile(DurableFile&& o) noexcept;
    DurableFile& operator=(DurableFile&& o) noexcept;
    DurableFile(const DurableFile&) = delete;
    DurableFile& operator=(const DurableFile&) = delete;
    ~DurableFile() { discard(); }

    int fd() const { return fd_.get(); }
    const std::string& temp_path() const { return temp_; }
    // Not yet published nor discarded: the file has its temporary name only.
    bool pending() const { return !temp_.empty(); }
    // Appends bytes (write_all), or overwrites bytes already written at `offset`.
    Result<void> write(std::string_view data);
    Result<void> write_at(std::string_view data, off_t offset);
    // fsync(2) of the file: what was written survives a crash, still under the temporary name.
    Result<void> sync();
    // link(2) of the pending file (by its temporary name, or the unnamed file itself) to `path`,
    // which it never replaces: false when `path` is taken.
    Result<bool> link_to(const std::string& path) const;
    // Gives the unpublished file another temporary name (link, then unlink of the old name);
    // false when `temp_path` is taken. Not for an unnamed file.
    Result<bool> move_temp(std::string temp_path);
    // The commit: sync() when something was written since the last one, link(2) or rename(2) to
    // `final_path`, fsync(2) of its directory, then (link) unlink of the temporary name and close.
    // false, with nothing changed, when link finds `final_path` taken. An error before the link or
    // rename leaves nothing under the final name; an error of the directory fsync leaves the
    // complete file published there, but not known to be durable. `published` runs after the
    // directory fsync, before the unlink (crash tests stop there).
    Result<bool> publish(const std::string& final_path, Publish how, const std::function<void()>& published = {});
    // Removes the temporary name of an unpublished file, then closes it (a lock on it goes last).
    void discard();

private:
    Fd fd_;
    std::string temp_;     // empty once published or discarded; "<dir>/(unnamed)" for an unnamed file
    bool synced_ = false;  // nothing written since the last fsync
    bool unnamed_ = false;  // create_unnamed: temp_ names no file
};

// The whole of `data` into `path` through DurableFile: "<path>.tmp", then rename over `path`.
Result<void> write_file_durably(const std::string& path, std::string_view data, mode_t mode);

// The whole of a small file: an empty optional when it does not exist; an error when it cannot be
// read or is larger than `max_size` octets.
Result<std::optional<std::string>> read_small_file(const std::string& path, size_t max_size = SIZE_MAX);

// Whether `fd` is still the file named `path`: a lock taken after the name was removed or given
// to another file guards nothing.
bool same_file(int fd, const std::string& path);

// The directory part of a path: "a/b" -> "a", "b" -> ".", "/b" -> "/".
std::string dir_of(const std::string& path);

}  // namespace ferry

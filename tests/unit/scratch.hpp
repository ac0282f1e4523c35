// Scratch files for unit tests: a temporary directory, small file helpers, and an fd-exhaustion guard.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace ferry::test {

// A fresh directory under /tmp, removed with everything in it at the end of the test.
struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/ferry-test-XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

inline void write_text(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
}

inline std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

inline bool present(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// A domain name of exactly n octets in labels of at most 63, for tests at RFC 5321's 255 limit.
inline std::string domain_of_length(size_t n) {
    std::string d;
    while (d.size() < n) {
        if (!d.empty()) d += '.';
        size_t room = n - d.size();
        size_t label = room > 63 ? 63 : room;
        if (room > 63 && room - 63 == 1) label = 61;  // never end on a lone dot
        d += std::string(label, 'd');
    }
    return d;
}

// The names in a directory, without dot files, sorted.
inline std::vector<std::string> names_in(const std::string& dir) {
    std::vector<std::string> out;
    if (DIR* d = opendir(dir.c_str())) {
        while (dirent* e = readdir(d))
            if (e->d_name[0] != '.') out.push_back(e->d_name);
        closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}

// Holds every free descriptor (soft limit lowered to at most 256) until destroyed: EMFILE on demand.
struct NoFreeFds {
    rlimit old{};
    std::vector<int> fds;
    NoFreeFds() {
        getrlimit(RLIMIT_NOFILE, &old);
        rlimit low = old;
        low.rlim_cur = std::min<rlim_t>(old.rlim_cur, 256);
        setrlimit(RLIMIT_NOFILE, &low);
        int base = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (base >= 0) fds.push_back(base);
        for (int fd; base >= 0 && (fd = dup(base)) >= 0;) fds.push_back(fd);
    }
    ~NoFreeFds() {
        for (int fd : fds) close(fd);
        setrlimit(RLIMIT_NOFILE, &old);
    }
    NoFreeFds(const NoFreeFds&) = delete;
    NoFreeFds& operator=(const NoFreeFds&) = delete;
};

}  // namespace ferry::test

// Runs a fuzz target without libFuzzer: every corpus input as it is, then random mutations of them.
//
// Each `./dev test` runs every target this way with g++ (and again under ASan/UBSan), so a crash,
// an abort or a sanitizer report fails the run. The random seed changes from run to run and is
// printed first; `--seed S -n N` (or FERRY_FUZZ_SEED=S) replays exactly the same N inputs.
//
//   fuzz-replay-<target> [--seed S] [-n MAX_INPUTS] [-t MAX_SECONDS] CORPUS_DIR_OR_FILE...
//
// A file argument instead of a directory runs that one input (a crash file written below).
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

constexpr size_t kMaxLen = 4096;

// Bytes that matter to ferry's text formats: line ends, separators, quoting, NUL, high bytes.
constexpr std::string_view kSpecial("\r\n\t .:;<>@\"\\=,[]()+-/*\0\x7f\x80\xff" "0129AZaz", 32);
// Numbers at the edges of the integer types the parsers convert to.
const char* const kNumbers[] = {"0", "-1", "1", "00", "255", "256", "65535", "65536", "2147483647",
                                "2147483648", "-2147483649", "4294967295", "4294967296",
                                "9223372036854775807", "9223372036854775808", "18446744073709551616",
                                "99999999999999999999999"};

// The input being run, for the crash handler to save (a plain buffer: async-signal-safe to read).
char g_current[kMaxLen];
size_t g_current_len = 0;
char g_crash_path[256] = "fuzz-crash";

void save_current(int sig) {
    int fd = ::open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ssize_t n = ::write(fd, g_current, g_current_len);
        (void)n;
        ::close(fd);
    }
    static const char msg[] = "fuzz-replay: the crashing input is saved in ";
    ssize_t n = ::write(2, msg, sizeof msg - 1);
    n = ::write(2, g_crash_path, std::strlen(g_crash_path));
    n = ::write(2, "\n", 1);
    (void)n;
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

void run(const std::string& in) {
    g_current_len = std::min(in.size(), kMaxLen);
    std::memcpy(g_current, in.data(), g_current_len);
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(g_current), g_current_len);
}

bool read_file(const std::string& path, std::string& out) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return false;
    std::ostringstream ss;
    ss << f.rdbuf();
    out = ss.str();
    return true;
}

// Every regular file of a directory (sorted, for a stable order), or the file itself.
bool load(const std::string& path, std::vector<std::string>& corpus) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return false;
    std::vector<std::string> files;
    if (S_ISDIR(st.st_mode)) {
        DIR* d = ::opendir(path.c_str());
        if (!d) return false;
        while (dirent* e = ::readdir(d))
            if (e->d_name[0] != '.') files.push_back(path + "/" + e->d_name);
        ::closedir(d);
        std::sort(files.begin(), files.end());
    } else {
        files.push_back(path);
    }
    for (const auto& f : files) {
        std::string s;
        if (!read_file(f, s)) return false;
        corpus.push_back(s.substr(0, kMaxLen));
    }
    return true;
}

class Mutator {
public:
    Mutator(const std::vector<std::string>& corpus, uint64_t seed) : corpus_(corpus), rng_(seed) {}

    // A corpus input with 1 to 5 stacked mutations (few mutations keep most inputs near-valid).
    std::string next() {
        std::string s = corpus_[pick(corpus_.size())];
        int ops = 1 + static_cast<int>(pick(4)) * static_cast<int>(pick(3) + 1) / 2;
        for (int i = 0; i < ops; ++i) mutate(s);
        if (s.size() > kMaxLen) s.resize(kMaxLen);
        return s;
    }

private:
    size_t pick(size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng_() % n); }
    char special() { return kSpecial[pick(kSpecial.size())]; }

    // [begin, end) of one line of s around a random position (without its LF).
    std::pair<size_t, size_t> line_at(const std::string& s) {
        size_t pos = pick(s.size() + 1);
        size_t b = s.rfind('\n', pos == 0 ? 0 : pos - 1);
        b = (b == std::string::npos || pos == 0) ? 0 : b + 1;
        size_t e = s.find('\n', b);
        return {b, e == std::string::npos ? s.size() : e};
    }

    void mutate(std::string& s) {
        size_t pos = pick(s.size() + 1);
        switch (pick(12)) {
            case 0: if (pos < s.size()) s[pos] = static_cast<char>(rng_()); break;
            case 1: if (pos < s.size()) s[pos] = special(); break;
            case 2: s.insert(pos, 1, special()); break;
            case 3: if (pos < s.size()) s.erase(pos, 1 + pick(8)); break;
            case 4: if (!s.empty()) s.insert(pos, s.substr(pick(s.size()), 1 + pick(64))); break;
            case 5: {  // splice in a piece of another input
                const std::string& o = corpus_[pick(corpus_.size())];
                if (!o.empty()) s.insert(pos, o.substr(pick(o.size()), 1 + pick(128)));
                break;
            }
            case 6: {  // a number at an integer type's edge replaces the digits at pos (or is inserted)
                size_t b = pos;
                while (b < s.size() && std::isdigit(static_cast<unsigned char>(s[b]))) ++b;
                s.replace(pos, b - pos, kNumbers[pick(std::size(kNumbers))]);
                break;
            }
            case 7: {  // duplicate a line
                auto [b, e] = line_at(s);
                s.insert(b, s.substr(b, e - b) + "\n");
                break;
            }
            case 8: {  // delete a line
                auto [b, e] = line_at(s);
                s.erase(b, e - b + (e < s.size() ? 1 : 0));
                break;
            }
            case 9: {  // swap a line with the one before
                auto [b, e] = line_at(s);
                if (b == 0) break;  // the first line: none before it
                size_t pb = b >= 2 ? s.rfind('\n', b - 2) : std::string::npos;
                pb = pb == std::string::npos ? 0 : pb + 1;
                std::string prev = s.substr(pb, b - pb), cur = s.substr(b, e - b) + "\n";
                s.replace(pb, e - pb + (e < s.size() ? 1 : 0), cur + prev);
                break;
            }
            case 10: s.resize(pick(s.size() + 1)); break;  // truncate
            case 11: s.insert(pos, std::string(1 + pick(300), special())); break;  // a long run
        }
    }

    const std::vector<std::string>& corpus_;
    std::mt19937_64 rng_;
};

int usage() {
    std::fprintf(stderr, "usage: fuzz-replay-TARGET [--seed S] [-n MAX_INPUTS] [-t MAX_SECONDS] CORPUS...\n");
    return 64;
}

}  // namespace

int main(int argc, char** argv) {
    std::random_device entropy;
    uint64_t seed = (static_cast<uint64_t>(entropy()) << 32 | entropy()) % 1000000000000;
    if (const char* env = std::getenv("FERRY_FUZZ_SEED"); env && *env) seed = std::strtoull(env, nullptr, 10);
    long max_inputs = 100000;
    double max_seconds = 3;
    std::vector<std::string> corpus;
    bool only_files = true;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if ((a == "--seed" || a == "-n" || a == "-t") && i + 1 < argc) {
            const char* v = argv[++i];
            if (a == "--seed") seed = std::strtoull(v, nullptr, 10);
            else if (a == "-n") max_inputs = std::atol(v);
            else max_seconds = std::atof(v);
        } else if (!a.empty() && a[0] == '-') {
            return usage();
        } else {
            struct stat st {};
            if (::stat(a.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) only_files = false;
            if (!load(a, corpus)) {
                std::fprintf(stderr, "fuzz-replay: cannot read %s\n", a.c_str());
                return 66;
            }
        }
    }
    if (corpus.empty()) return usage();
    if (only_files) {  // replaying crash files: nothing new to save
        for (const auto& in : corpus) run(in);
        std::printf("%zu inputs replayed, no crash\n", corpus.size());
        return 0;
    }
    std::snprintf(g_crash_path, sizeof g_crash_path, "fuzz-crash-%s-%llu",
                  std::strrchr(argv[0], '/') ? std::strrchr(argv[0], '/') + 1 : argv[0],
                  static_cast<unsigned long long>(seed));
    // Sanitizers report and then abort (abort_on_error=1); their own SIGSEGV handler must stay.
    ::signal(SIGABRT, save_current);
#ifndef __SANITIZE_ADDRESS__
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL}) ::signal(sig, save_current);
#endif
    for (const auto& in : corpus) run(in);
    std::printf("seed %llu (replay with --seed %llu -n N)\n", static_cast<unsigned long long>(seed),
                static_cast<unsigned long long>(seed));
    std::fflush(stdout);
    Mutator mutator(corpus, seed);
    auto start = std::chrono::steady_clock::now();
    long n = 0;
    for (; n < max_inputs; ++n) {
        if (n % 256 == 0 && std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > max_seconds)
            break;
        run(mutator.next());
    }
    std::printf("%zu corpus inputs and %ld mutations, no crash\n", corpus.size(), n);
    return 0;
}

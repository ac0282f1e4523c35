// What the session fuzzers share: a private temp dir per process, and driving one server session
// over a socketpair: the input in a few pieces, then EOF, the loop run until the server hangs up.
#pragma once

#include <crypt.h>
#include <event2/event.h>
#include <ftw.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/auth/accounts_db.hpp"
#include "common/base/fd.hpp"
#include "common/event/net.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define FERRY_FUZZ_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FERRY_FUZZ_LSAN 1
#endif
#endif
#ifdef FERRY_FUZZ_LSAN
#include <sanitizer/lsan_interface.h>
#endif

namespace fuzz {

// Leak checking off for what is allocated while this lives. Berkeley DB keeps an open handle's
// memory where LeakSanitizer does not look, so the account database, opened once per process
// while this lives, would look leaked at libFuzzer's check after every input that allocates.
struct LeakCheckPause {
#ifdef FERRY_FUZZ_LSAN
    LeakCheckPause() { __lsan_disable(); }
    ~LeakCheckPause() { __lsan_enable(); }
#else
    LeakCheckPause() {}
    ~LeakCheckPause() {}
#endif
};

// A directory made once per process and removed at exit: in tmpfs (/dev/shm) where there is one,
// since every message committed costs fsyncs, which a disk makes the slowest part of a run.
inline const std::string& temp_dir() {
    static std::string dir = [] {
        const char* base = std::getenv("TMPDIR");
        std::string parent = base && *base ? base : "/tmp";
        if (::access("/dev/shm", W_OK | X_OK) == 0) parent = "/dev/shm";
        std::string tmpl = parent + "/ferry-fuzz-XXXXXX";
        if (!::mkdtemp(tmpl.data())) {
            std::perror("mkdtemp");
            std::abort();
        }
        static std::string removed_at_exit = tmpl;
        std::atexit([] {
            ::nftw(removed_at_exit.c_str(), [](const char* p, const struct stat*, int, FTW*) { return ::remove(p); },
                   16, FTW_DEPTH | FTW_PHYS);
        });
        return tmpl;
    }();
    return dir;
}

// Removes every entry of `dir` (the messages a run queued), keeping the directory.
inline void empty_dir(const std::string& dir) {
    ::nftw(dir.c_str(), [](const char* p, const struct stat*, int, FTW* f) { return f->level > 0 ? ::remove(p) : 0; },
           16, FTW_DEPTH | FTW_PHYS);
}

// An account database at `path`: the domain example.test, the account demo@example.test with the
// password "secret" (a cheap SHA-512-crypt hash) and postmaster@example.test as its alias.
inline void write_accounts(const std::string& path) {
    ferry::accountdb::Records r;
    r[ferry::accountdb::domain_key("example.test")] = "1";
    ferry::Account a;
    a.address = "demo@example.test";
    a.password_hash = ::crypt("secret", "$6$rounds=1000$fuzzsalt$");
    r[ferry::accountdb::account_key(a.address)] = ferry::accountdb::encode_account(a);
    r[ferry::accountdb::alias_key("postmaster@example.test")] = ferry::accountdb::encode_targets({a.address});
    if (auto w = ferry::accountdb::rebuild(path, r); !w) {
        std::fprintf(stderr, "session fuzzer: accounts: %s\n", w.error().what().c_str());
        std::abort();
    }
}

// A connected pair: [0] for the server's session, [1] the fuzzer's client end (non-blocking).
struct SocketPair {
    ferry::Fd server, client;
};

inline SocketPair socket_pair() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        std::perror("socketpair");
        std::abort();
    }
    SocketPair p{ferry::Fd(sv[0]), ferry::Fd(sv[1])};
    (void)ferry::net::set_nonblocking(p.client.get());
    return p;
}

// Seconds a session may take to end after its input; longer counts as a hang (abort).
inline constexpr double kSessionSeconds = 5;

// Writes `input` into `client` in three pieces with a loop pass after each (so the server sees
// partial lines and pipelined batches), shuts down the write side and runs the loop until the
// server closes its end. Returns everything the server wrote.
inline std::string drive(event_base* base, const ferry::Fd& client, std::string_view input) {
    struct State {
        event_base* base;
        int fd;
        std::string out;
        bool eof = false;
    } st{base, client.get(), {}};
    auto on_read = [](evutil_socket_t fd, short, void* arg) {
        auto* s = static_cast<State*>(arg);
        char buf[4096];
        for (;;) {
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n > 0) {
                s->out.append(buf, static_cast<size_t>(n));
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
            s->eof = true;  // EOF, or ECONNRESET when the server aborted
            event_base_loopbreak(s->base);
            return;
        }
    };
    event* rev = event_new(base, client.get(), EV_READ | EV_PERSIST, on_read, &st);
    event_add(rev, nullptr);
    size_t cut[] = {0, input.size() / 3, input.size() * 2 / 3, input.size()};
    for (int i = 0; i < 3 && !st.eof; ++i) {
        std::string_view piece = input.substr(cut[i], cut[i + 1] - cut[i]);
        while (!piece.empty() && !st.eof) {  // the socket buffer holds far more than one input
            ssize_t n = ::send(client.get(), piece.data(), piece.size(), MSG_NOSIGNAL);
            if (n <= 0) break;  // the server hung up already
            piece.remove_prefix(static_cast<size_t>(n));
        }
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
    ::shutdown(client.get(), SHUT_WR);
    auto start = std::chrono::steady_clock::now();
    while (!st.eof) {
        timeval tick{0, 100000};
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
        if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > kSessionSeconds) {
            std::fprintf(stderr, "session fuzzer: the session did not end within %.0f s of its input's end\n",
                         kSessionSeconds);
            std::abort();
        }
    }
    event_free(rev);
    // The session's on_close runs from the loop after its fd is shut down.
    for (int i = 0; i < 3; ++i) event_base_loop(base, EVLOOP_NONBLOCK);
    if (std::getenv("FERRY_FUZZ_TRACE")) std::fwrite(st.out.data(), 1, st.out.size(), stderr);  // writing a corpus
    return st.out;
}

// Every line ends in CRLF and starts with a 3-digit code 2xx-5xx and a space or '-'; the lines of
// one multi-line reply share their code (RFC 5321 4.2). `what` names the protocol in the abort.
inline void check_smtp_replies(std::string_view out, const char* what) {
    std::string_view prev_code;
    bool continued = false;
    while (!out.empty()) {
        size_t end = out.find("\r\n");
        std::string_view line = out.substr(0, end);
        bool ok = end != std::string_view::npos && line.size() >= 4 && line[0] >= '2' && line[0] <= '5' &&
                  line[1] >= '0' && line[1] <= '9' && line[2] >= '0' && line[2] <= '9' &&
                  (line[3] == ' ' || line[3] == '-') && line.find('\n') == std::string_view::npos &&
                  (!continued || line.substr(0, 3) == prev_code);
        if (!ok) {
            std::fprintf(stderr, "%s session fuzzer: bad reply line: \"%.*s\"\n", what, static_cast<int>(line.size()),
                         line.data());
            std::abort();
        }
        continued = line[3] == '-';
        prev_code = line.substr(0, 3);
        out.remove_prefix(end + 2);
    }
    if (continued) {
        std::fprintf(stderr, "%s session fuzzer: the last reply line says more lines follow\n", what);
        std::abort();
    }
}

}  // namespace fuzz

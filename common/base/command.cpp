// Runs a shell command off the event loop: stdin from a file, bounded stdout and stderr, its own process group, a timeout.
#include "common/base/command.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/base/fd.hpp"
#include "common/base/fs.hpp"

namespace ferry {

std::string CommandOutcome::text() const {
    switch (kind) {
        case Kind::exited: return "exit=" + std::to_string(code);
        case Kind::signalled: return "signal=" + std::to_string(code);
        case Kind::timed_out: return "timeout";
        case Kind::stopped: return "stopped";
        case Kind::too_large: return "output too large";
        case Kind::not_started: break;
    }
    return std::string("error=") + std::strerror(code);
}

namespace {

double now() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// The spawned shell: stdin the message, stdout and stderr the pipes given (else /dev/null),
// nothing else open, no signal blocked or ignored (the daemon ignores SIGPIPE, its workers block
// all), its own process group so a timeout kills whatever the shell started too. Returns 0 or the
// errno of the failure.
int spawn_shell(const std::string& command, int input, int out, int err, char* const env[], pid_t& pid) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_adddup2(&fa, input, 0);
    if (out >= 0) posix_spawn_file_actions_adddup2(&fa, out, 1);
    else posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (err >= 0) posix_spawn_file_actions_adddup2(&fa, err, 2);
    else posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    const char* argv[] = {"sh", "-c", command.c_str(), nullptr};
    int e = posix_spawn(&pid, "/bin/sh", &fa, &attr, const_cast<char* const*>(argv), env);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return e;
}

CommandOutcome outcome_of(int status) {
    if (WIFSIGNALED(status)) return {CommandOutcome::Kind::signalled, WTERMSIG(status)};
    return {CommandOutcome::Kind::exited, WEXITSTATUS(status)};
}

// The command's stdout and stderr as it runs: each a pipe read until EOF.
struct Reader {
    Fd out, err;
    CommandCapture* capture = nullptr;
    bool overflow = false;
    int write_error = 0;

    // Reads what `fd` holds now; false at EOF (or an error), when it is closed.
    void drain(Fd& fd, bool is_out) {
        char buf[65536];
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
        if (n <= 0) return fd.reset();
        size_t got = static_cast<size_t>(n);
        if (!is_out) {
            std::string& e = *capture->err;
            if (e.size() < capture->err_limit) e.append(buf, std::min(got, capture->err_limit - e.size()));
            return;
        }
        if (overflow || write_error) return;
        if (capture->out_size + got > capture->out_limit) {
            overflow = true;
            return;
        }
        if (auto r = write_all(capture->out, buf, got); !r) write_error = EIO;
        capture->out_size += got;
    }
};

// Waits until the shell ends, the deadline passes, `stop_fd` is readable or the output grows too
// large, reading the pipes meanwhile; then the group is killed, the pipes read to their end and
// the shell reaped.
CommandOutcome wait_child(pid_t pid, double deadline, int stop_fd, Reader& rd) {
    Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    CommandOutcome end{CommandOutcome::Kind::timed_out, 0};
    bool exited = false;
    for (;;) {
        siginfo_t info{};
        if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid) {
            exited = true;
            break;
        }
        if (rd.overflow) {
            end = {CommandOutcome::Kind::too_large, 0};
            break;
        }
        double left = deadline > 0 ? deadline - now() : 3600;
        if (left <= 0) break;
        pollfd fds[4] = {{stop_fd, POLLIN, 0}, {pidfd.get(), POLLIN, 0}, {rd.out.get(), POLLIN, 0}, {rd.err.get(), POLLIN, 0}};
        int ms = static_cast<int>(std::min(left, 3600.0) * 1000) + 1;
        if (!pidfd.valid()) ms = std::min(ms, 20);
        (void)::poll(fds, 4, ms);  // a negative fd is skipped; EINTR or not, the loop looks again
        if (fds[2].revents) rd.drain(rd.out, true);
        if (fds[3].revents) rd.drain(rd.err, false);
        if (stop_fd >= 0 && (fds[0].revents & POLLIN)) {
            end = {CommandOutcome::Kind::stopped, 0};
            break;
        }
    }
    // Not reaped yet, so the group's id cannot be reused: what the shell left behind goes too.
    ::kill(-pid, SIGKILL);
    while (rd.out.valid() || rd.err.valid()) {
        pollfd fds[2] = {{rd.out.get(), POLLIN, 0}, {rd.err.get(), POLLIN, 0}};
        if (::poll(fds, 2, 1000) == 0) break;  // a descriptor passed outside the group: give up on it
        if (fds[0].revents) rd.drain(rd.out, true);
        if (fds[1].revents) rd.drain(rd.err, false);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (!exited) return end;
    if (rd.overflow) return {CommandOutcome::Kind::too_large, 0};
    if (rd.write_error) return {CommandOutcome::Kind::not_started, rd.write_error};
    return outcome_of(status);
}

}  // namespace

CommandOutcome run_command(const std::string& command, int input, char* const env[], double timeout, int stop_fd,
                           CommandCapture* capture) {
    if (::lseek(input, 0, SEEK_SET) < 0) return {CommandOutcome::Kind::not_started, errno};
    double deadline = timeout > 0 ? now() + timeout : 0;
    Reader rd;
    rd.capture = capture;
    Fd out_w, err_w;
    if (capture) {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) < 0) return {CommandOutcome::Kind::not_started, errno};
        rd.out.reset(p[0]);
        out_w.reset(p[1]);
        if (capture->err) {
            if (::pipe2(p, O_CLOEXEC) < 0) return {CommandOutcome::Kind::not_started, errno};
            rd.err.reset(p[0]);
            err_w.reset(p[1]);
        }
    }
    pid_t pid = 0;
    int e = spawn_shell(command, input, out_w.valid() ? out_w.get() : -1, err_w.valid() ? err_w.get() : -1, env, pid);
    out_w.reset();  // the child holds the write ends now: EOF once it (and its group) ends
    err_w.reset();
    if (e != 0) return {CommandOutcome::Kind::not_started, e};
    return wait_child(pid, deadline, stop_fd, rd);
}

}  // namespace ferry

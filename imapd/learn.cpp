// The Junk learning hook (ferry-imapd(8)): a message copied into Junk goes to a spam command, one out of it to a ham command.
#include "imapd/learn.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "common/base/log.hpp"
#include "common/program/config.hpp"

extern char** environ;

namespace ferry::imap {

const char* verdict_name(Verdict v) { return v == Verdict::spam ? "spam" : "ham"; }

std::optional<Verdict> learn_verdict(std::string_view from, std::string_view to, std::string_view junk,
                                     std::string_view trash) {
    if (junk.empty() || from == to) return std::nullopt;
    if (to == junk) return Verdict::spam;
    if (from == junk && to != trash) return Verdict::ham;
    return std::nullopt;
}

std::string CommandOutcome::text() const {
    switch (kind) {
        case Kind::exited: return "exit=" + std::to_string(code);
        case Kind::signalled: return "signal=" + std::to_string(code);
        case Kind::timed_out: return "timeout";
        case Kind::stopped: return "stopped";
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

// The spawned shell: stdin the message, nothing else open, no signal blocked or ignored (the
// daemon ignores SIGPIPE, its workers block all), its own process group so a timeout kills
// whatever the shell started too. Returns 0 or the errno of the failure.
int spawn_shell(const std::string& command, int input, char* const env[], pid_t& pid) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_adddup2(&fa, input, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
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
    int err = posix_spawn(&pid, "/bin/sh", &fa, &attr, const_cast<char* const*>(argv), env);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return err;
}

CommandOutcome outcome_of(int status) {
    if (WIFSIGNALED(status)) return {CommandOutcome::Kind::signalled, WTERMSIG(status)};
    return {CommandOutcome::Kind::exited, WEXITSTATUS(status)};
}

// Waits for `pid` (through a pidfd when the kernel has them, polling otherwise) until it ends, the
// deadline passes or `stop_fd` is readable; then the group is killed and reaped.
CommandOutcome wait_child(pid_t pid, double deadline, int stop_fd) {
    Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    for (;;) {
        int status = 0;
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) return outcome_of(status);
        if (r < 0 && errno != EINTR) return {CommandOutcome::Kind::not_started, errno};
        double left = deadline > 0 ? deadline - now() : 3600;
        CommandOutcome::Kind end = CommandOutcome::Kind::timed_out;
        if (left > 0) {
            pollfd fds[2] = {{stop_fd, POLLIN, 0}, {pidfd.get(), POLLIN, 0}};
            int ms = static_cast<int>(std::min(left, 3600.0) * 1000) + 1;
            if (!pidfd.valid()) ms = std::min(ms, 20);
            (void)::poll(fds, pidfd.valid() ? 2 : 1, ms);  // EINTR or not, the loop looks again
            if (!(fds[0].revents & POLLIN)) continue;
            end = CommandOutcome::Kind::stopped;
        }
        ::kill(-pid, SIGKILL);
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        return {end, 0};
    }
}

}  // namespace

CommandOutcome run_command(const std::string& command, int input, char* const env[], double timeout, int stop_fd) {
    if (::lseek(input, 0, SEEK_SET) < 0) return {CommandOutcome::Kind::not_started, errno};
    double deadline = timeout > 0 ? now() + timeout : 0;
    pid_t pid = 0;
    if (int err = spawn_shell(command, input, env, pid); err != 0) return {CommandOutcome::Kind::not_started, err};
    return wait_child(pid, deadline, stop_fd);
}

LearnSettings learn_settings(const Config& config) {
    LearnSettings s;
    s.spam_command = config.str("imapd_spam_learn_command");
    s.ham_command = config.str("imapd_ham_learn_command");
    s.timeout = static_cast<double>(config.duration("imapd_learn_timeout").count());
    s.processes = static_cast<int>(std::max<int64_t>(1, config.integer("imapd_learn_processes")));
    return s;
}

Learner::Learner(event_base* base, LearnSettings settings) : settings_(std::move(settings)) {
    if (settings_.spam_command.empty() && settings_.ham_command.empty()) return;
    // The daemon has dropped to mail_user by now; its HOME may still be root's.
    if (const passwd* pw = ::getpwuid(::geteuid()); pw && pw->pw_dir) home_ = pw->pw_dir;
    stop_.reset(::eventfd(0, EFD_CLOEXEC));
    pool_ = std::make_unique<WorkerPool>(base, settings_.processes);
}

Learner::~Learner() {
    if (!pool_) return;
    uint64_t one = 1;
    (void)!::write(stop_.get(), &one, sizeof one);
    pool_.reset();  // joins the workers once their commands are killed
}

namespace {

// The daemon's environment with HOME and FERRY_USER (the account that moved the message) set.
struct Environment {
    std::vector<std::string> vars;
    std::vector<char*> ptrs;
    Environment(const std::string& home, const std::string& user) {
        for (char** e = environ; *e; ++e)
            if (std::strncmp(*e, "HOME=", 5) != 0 && std::strncmp(*e, "FERRY_USER=", 11) != 0) vars.emplace_back(*e);
        if (!home.empty()) vars.push_back("HOME=" + home);
        vars.push_back("FERRY_USER=" + user);
        for (auto& v : vars) ptrs.push_back(v.data());
        ptrs.push_back(nullptr);
    }
};

}  // namespace

bool Learner::submit(Verdict v, Fd message, const std::string& session, const std::string& user,
                     const std::string& folder, uint32_t uid) {
    if (!pool_ || !enabled(v)) return true;
    if (pending_ >= kMaxPending) return false;
    const char* name = verdict_name(v);
    struct Job {
        Fd message;
        CommandOutcome outcome;
    };
    auto job = std::make_shared<Job>(Job{std::move(message), {}});
    std::string line = session + ": learn " + name + " user=" + user + " folder=" + folder + " uid=" + std::to_string(uid);
    ++pending_;
    pool_->submit(
        [job, cmd = command(v), home = home_, user, timeout = settings_.timeout, stop = stop_.get()] {
            Environment env(home, user);
            job->outcome = run_command(cmd, job->message.get(), env.ptrs.data(), timeout, stop);
            job->message.reset();
        },
        [this, job, line] {
            --pending_;
            if (job->outcome.ok()) log::info("%s %s", line.c_str(), job->outcome.text().c_str());
            else log::warnx("%s %s", line.c_str(), job->outcome.text().c_str());
        });
    return true;
}

}  // namespace ferry::imap

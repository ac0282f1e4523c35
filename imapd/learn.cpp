// The Junk learning hook (ferry-imapd(8)): a message copied into Junk goes to a spam command, one out of it to a ham command.
#include "imapd/learn.hpp"

#include <pwd.h>
#include <sys/eventfd.h>
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

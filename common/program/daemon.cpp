// What every ferry program does first: parse -c/-o/-n, load ferry.conf, set up logging and signals.
#include "common/program/daemon.hpp"

#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <sysexits.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>

#include "common/base/log.hpp"
#include "common/program/paths.hpp"

namespace ferry {

Options start_program(int argc, char** argv, const std::string& program, const char* usage_extra) {
    Options opt;
    std::vector<std::pair<std::string, std::string>> overrides;
    std::string prog = "ferry-" + program;
    auto usage = [&]() {
        fprintf(stderr, "usage: %s [-c ferry.conf] [-o key=value]... [-n]%s\n", prog.c_str(), usage_extra);
        exit(EX_USAGE);
    };
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-c" && i + 1 < argc) opt.config_path = argv[++i];
        else if (a == "-o" && i + 1 < argc) {
            std::string kv = argv[++i];
            size_t eq = kv.find('=');
            if (eq == std::string::npos) usage();
            overrides.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
        } else if (a == "-n") opt.print_config = true;
        else usage();
    }
    if (opt.config_path.empty()) {
        if (const char* env = getenv("FERRY_CONFIG")) opt.config_path = env;
        else opt.config_path = FERRY_CONFIG_FILE;
    }
    auto cfg = Config::load(opt.config_path, program);
    if (!cfg) {
        fprintf(stderr, "%s: %s\n", prog.c_str(), cfg.error().what().c_str());
        exit(EX_CONFIG);
    }
    opt.config = std::move(cfg.value());
    for (auto& [k, v] : overrides) {
        if (auto r = opt.config.set(k, v); !r) {
            fprintf(stderr, "%s: -o %s: %s\n", prog.c_str(), k.c_str(), r.error().what().c_str());
            exit(EX_USAGE);
        }
    }
    if (opt.print_config) {
        std::cout << opt.config.dump(true);
        exit(EX_OK);
    }
    log::init(prog, opt.config.str("log_target"), opt.config.str("log_level"));
    signal(SIGPIPE, SIG_IGN);
    // Message pieces of 64 to 256 KiB are allocated and freed all day (DATA buffers, stream
    // chunks): with malloc's default thresholds they are mmap'd or trimmed off the heap again and
    // page-fault afresh each time, a tenth of a daemon's CPU at 100 KB messages. Kept on the heap,
    // with at most 2 MiB free at its top, they reuse warm memory.
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    mallopt(M_TRIM_THRESHOLD, 2 << 20);
    return opt;
}

SignalEvents install_signal_handlers(event_base* base) {
    auto stop = [](evutil_socket_t sig, short, void* arg) noexcept {
        log::info("signal %d received, stopping", static_cast<int>(sig));
        event_base_loopbreak(static_cast<event_base*>(arg));
    };
    SignalEvents ev;
    ev.term.reset(evsignal_new(base, SIGTERM, stop, base));
    ev.intr.reset(evsignal_new(base, SIGINT, stop, base));
    event_add(ev.term.get(), nullptr);
    event_add(ev.intr.get(), nullptr);
    return ev;
}

namespace {

struct GracefulStop {
    event_base* base;
    std::function<void()> graceful;
    bool asked = false;
};

}  // namespace

SignalEvents install_signal_handlers(event_base* base, std::function<void()> graceful) {
    auto state = std::make_shared<GracefulStop>(GracefulStop{base, std::move(graceful)});
    auto on_signal = [](evutil_socket_t sig, short, void* arg) noexcept {
        auto* s = static_cast<GracefulStop*>(arg);
        if (s->asked) {
            log::info("signal %d received again, stopping now", static_cast<int>(sig));
            event_base_loopbreak(s->base);
            return;
        }
        s->asked = true;
        log::info("signal %d received, stopping once the sessions are done", static_cast<int>(sig));
        s->graceful();
    };
    SignalEvents ev;
    ev.term.reset(evsignal_new(base, SIGTERM, on_signal, state.get()));
    ev.intr.reset(evsignal_new(base, SIGINT, on_signal, state.get()));
    event_add(ev.term.get(), nullptr);
    event_add(ev.intr.get(), nullptr);
    ev.state = std::move(state);
    return ev;
}

void enter_batch_scheduling(const Config& config) {
    if (!config.boolean("batch_scheduling")) return;
    // A batch task keeps its full share of the CPU, but its wake-ups do not preempt the task
    // running: ferry-smtpd's 250 is not held up while the message it just queued is delivered.
    sched_param param{};
    if (sched_setscheduler(0, SCHED_BATCH, &param) != 0)
        log::warn("batch_scheduling: sched_setscheduler(SCHED_BATCH)");
}

// SIGSTOP stops every thread, whichever raises it (worker threads block signals, but not that one).
// Threads that reach a pause point together take turns, so each "paused at" line is one stop and a
// test continues each with one SIGCONT; the stop takes effect before raise returns.
void test_pause_point(const Config& config, const char* point, const std::string& id) {
    if (config.is_default("test_pause_at") || config.str("test_pause_at") != point) return;  // per message: cheap when unset
    static std::mutex turn;
    std::lock_guard<std::mutex> lock(turn);
    log::info("%s%spaused at %s", id.c_str(), id.empty() ? "" : ": ", point);
    raise(SIGSTOP);
}

std::string my_hostname(const Config& config) {
    std::string h = config.str("hostname");
    if (!h.empty()) return h;
    char buf[256] = "";
    gethostname(buf, sizeof buf - 1);
    return buf[0] ? buf : "localhost";
}

}  // namespace ferry

// What every ferry program does first: parse -c/-o/-n, load ferry.conf, set up logging and signals.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/program/config.hpp"
#include "common/event/event.hpp"

namespace ferry {

struct Options {
    std::string config_path;   // -c PATH
    bool print_config = false; // -n: print the effective non-default configuration and exit
    Config config = Config::defaults("");
};

// Parses `prog -c PATH [-o key=value]... [-n]` and loads the configuration for `program`
// ("smtpd", "qmgr", ...). On error prints a clear message to stderr and exits EX_CONFIG (78) or EX_USAGE (64).
Options start_program(int argc, char** argv, const std::string& program, const char* usage_extra = "");

// SIGTERM/SIGINT end the loop; SIGPIPE is ignored. The returned events must live as long as the loop.
struct SignalEvents {
    EventPtr term, intr;
    std::shared_ptr<void> state;  // what the handlers point to, for the graceful form below
};
SignalEvents install_signal_handlers(event_base* base);
// The graceful form: the first SIGTERM/SIGINT calls `graceful` (which ends the loop once its
// sessions are done, e.g. SessionSet::stop); a second one ends the loop at once.
SignalEvents install_signal_handlers(event_base* base, std::function<void()> graceful);

// For the daemons that work through queued mail (ferry-qmgr, ferry-relay, ferry-mda): with
// batch_scheduling on, puts the process under Linux's SCHED_BATCH policy. Its threads, and the
// processes it starts, inherit it. Call before any thread is started.
void enter_batch_scheduling(const Config& config);

// test_pause_at: when the configured value equals `point`, logs "paused at <point>" and stops the
// process with SIGSTOP, so a crash test can SIGKILL it in exactly that state. Any thread may call
// it (a commit stage's workers do); concurrent callers pause one after the other.
void test_pause_point(const Config& config, const char* point, const std::string& id = "");

// The host name for banners and Received: headers: `hostname`, else gethostname().
std::string my_hostname(const Config& config);

}  // namespace ferry

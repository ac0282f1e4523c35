// Runs a shell command off the event loop: stdin from a file, bounded stdout and stderr, its own process group, a timeout.
#pragma once

#include <cstdint>
#include <string>

namespace ferry {

// How a command ended.
struct CommandOutcome {
    enum class Kind { exited, signalled, timed_out, stopped, too_large, not_started } kind = Kind::not_started;
    int code = 0;       // the exit status, the signal, or the errno of the failed start
    bool ok() const { return kind == Kind::exited && code == 0; }
    // "exit=0", "signal=9", "timeout", "stopped", "output too large", "error=<strerror>": for a log line.
    std::string text() const;
};

// Where a command's output goes: stdout into `out` (a file open for writing; -1: /dev/null), at
// most `out_limit` octets of it (past that the command is killed: Kind::too_large); the first
// `err_limit` octets of stderr into `err` (the rest read and dropped; null: /dev/null).
struct CommandCapture {
    int out = -1;
    uint64_t out_limit = 0;
    uint64_t out_size = 0;  // written to `out`
    std::string* err = nullptr;
    size_t err_limit = 4096;
};

// Runs `/bin/sh -c command` with `input` (rewound) as its stdin, stdout and stderr as `capture`
// says (none: /dev/null), no other descriptor, `env` ("NAME=value", null-terminated) as its
// environment, in a process group of its own. The group is killed when `timeout` seconds pass
// (0: no limit) or `stop_fd` becomes readable (-1: never), and when the shell ends (what it left
// running in the background goes with it). Blocks until the command has ended: for a worker thread.
CommandOutcome run_command(const std::string& command, int input, char* const env[], double timeout, int stop_fd,
                           CommandCapture* capture = nullptr);

}  // namespace ferry

// Telling ferry-qmgr about a committed message: "NEW <queue id>" over qmgr_socket (common/proto/qmgr.hpp).
#pragma once

#include <string>
#include <utility>

#include "common/base/fd.hpp"
#include "common/base/result.hpp"

namespace ferry::smtpd {

// Keeps one connection to qmgr, opened on first use and reopened once when it broke (qmgr
// restarted). Never blocks the event loop: the socket is non-blocking and a notice that cannot be
// sent at once is dropped with a warning. That is safe: the message is already in the spool and
// qmgr finds it at its next scan (qmgr_scan_interval) or start.
class QmgrNotifier {
public:
    explicit QmgrNotifier(std::string socket_path) : path_(std::move(socket_path)) {}
    void notify(const std::string& queue_id);

private:
    Result<void> connect();
    Result<void> send(const std::string& line);

    std::string path_;
    Fd fd_;
};

}  // namespace ferry::smtpd

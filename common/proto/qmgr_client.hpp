// A blocking client of qmgr_socket's control lines, for ferry-admin queue and ferry-sendmail -q.
#pragma once

#include <string>

#include "common/base/result.hpp"
#include "common/proto/qmgr.hpp"

namespace ferry::proto::qmgr {

// Connects to `socket_path`, sends VERSION and the one control line, and reads its reply line
// (at most `timeout_seconds`). An error (code 0, text saying why) when qmgr is not running or does
// not answer: the caller reports it and exits EX_TEMPFAIL.
Result<Reply> send_control(const std::string& socket_path, Message::Type type, const std::string& arg,
                           int timeout_seconds = 60);

}  // namespace ferry::proto::qmgr

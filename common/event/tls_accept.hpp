// The server side of a TLS handshake on a Stream (implicit TLS or STARTTLS), with the log lines the readers write.
#pragma once

#include <functional>
#include <string>

#include "common/event/stream.hpp"
#include "common/event/tls.hpp"

namespace ferry {

// Starts TLS on `stream`, allowing `timeout` seconds of silence for the handshake; input buffered
// before it is dropped (Stream::start_tls). A failure is logged as "<id>: <error>" and the stream
// closes (its on_close follows); success is logged as "<id>: <how>: <session description>", then `done` runs.
void accept_tls(Stream& stream, const TlsContext& tls, double timeout, const std::string& id, const char* how,
                std::function<void()> done);

}  // namespace ferry

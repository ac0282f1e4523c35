// The server side of a TLS handshake on a Stream (implicit TLS or STARTTLS), with the log lines the readers write.
#include "common/event/tls_accept.hpp"

#include "common/base/log.hpp"

namespace ferry {

void accept_tls(Stream& stream, const TlsContext& tls, double timeout, const std::string& id, const char* how,
                std::function<void()> done) {
    stream.set_idle_timeout(timeout);
    stream.start_tls(tls.server(stream.fd()), [&stream, id, how, done = std::move(done)](Result<void> r) {
        if (!r) {
            log::info("%s: %s", id.c_str(), r.error().what().c_str());
            return;
        }
        log::info("%s: %s: %s", id.c_str(), how, stream.tls_description().c_str());
        done();
    });
}

}  // namespace ferry

// TLS through GnuTLS on the event loop: credentials (TlsContext) and a Stream Transport per connection.
//
// libevent's bufferevent TLS layer is OpenSSL-only, so this is our own glue: a Stream (common/event/stream.hpp)
// keeps doing the non-blocking I/O scheduling and a GnuTLS session does the record layer on the same fd.
//
// How a daemon uses it:
//   * at start-up, before dropping privileges (the key is usually root-only):
//       auto tls = tls_from_config(config);   // common/program/tls_config.hpp,   // Result<std::optional<TlsContext>>
//     nullopt means tls_cert_file is empty: do not offer STARTTLS/STLS and refuse implicit-TLS listeners.
//   * implicit TLS (smtps 465, pop3s 995), right after accept:
//       stream.set_idle_timeout(handshake_timeout);      // the idle timer bounds the handshake
//       stream.start_tls(tls->server(stream.fd()), [..](Result<void> r) { if (r) { set session timeout; greet } });
//   * STARTTLS/STLS: write the "220 Ready to start TLS" / "+OK Begin TLS" reply, then the same two calls;
//     Stream::start_tls flushes that reply in the clear and discards pipelined input.
//   The handshake timeout: while a Stream is handshaking, its idle timer aborts the connection
//   ("timeout") when it fires, so set it to tls_handshake_timeout before start_tls and back to the
//   session's own idle timeout in the done callback. On failure done() gets the error (already
//   logged nowhere: log it) and on_close follows; no other connection is affected.
#pragma once

#include <gnutls/gnutls.h>

#include <memory>
#include <optional>
#include <string>

#include "common/base/result.hpp"
#include "common/event/stream.hpp"

namespace ferry {

// Only TLS 1.2 and 1.3; the server's cipher order wins.
inline constexpr const char* kTlsPriority = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE";

// Credentials and priorities shared by every session of a process. Cheap to copy (shared handles);
// sessions keep the handles alive, so a TlsContext may go away before its connections do.
class TlsContext {
public:
    // Server credentials from a PEM certificate chain and key. The error names the file that is
    // missing, unreadable or invalid (for a clear start-up message).
    static Result<TlsContext> load(const std::string& cert_file, const std::string& key_file);

    // Client-only credentials (ferry-relay, tests): trust anchors from `ca_file` (PEM), or the
    // system trust store when empty.
    static Result<TlsContext> client_context(const std::string& ca_file = "");

    // A server-side Transport on an accepted, non-blocking socket. The fd stays owned by the Stream.
    std::unique_ptr<Transport> server(int fd) const;

    // A client-side Transport. server_name goes into SNI (unless it is an IP literal); with `verify`
    // the handshake fails unless the peer's chain is trusted and matches server_name. Without it
    // (opportunistic TLS) any certificate is accepted.
    std::unique_ptr<Transport> client(int fd, const std::string& server_name, bool verify) const;

    struct Shared;  // GnuTLS credentials + priority cache, defined in tls.cpp

private:
    explicit TlsContext(std::shared_ptr<const Shared> shared) : shared_(std::move(shared)) {}
    std::shared_ptr<const Shared> shared_;
};

}  // namespace ferry

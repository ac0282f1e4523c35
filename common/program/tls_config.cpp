// The TLS credentials a daemon serves with, from tls_cert_file and tls_key_file in ferry.conf.
#include "common/program/tls_config.hpp"

namespace ferry {

Result<std::optional<TlsContext>> tls_from_config(const Config& config) {
    std::string cert = config.str("tls_cert_file"), key = config.str("tls_key_file");
    if (cert.empty() && key.empty()) return std::optional<TlsContext>();
    if (cert.empty() || key.empty())
        return make_error(0, "", "tls_cert_file and tls_key_file must be set together");
    auto ctx = TlsContext::load(cert, key);
    if (!ctx) return ctx.error();
    return std::optional<TlsContext>(std::move(ctx.value()));
}

}  // namespace ferry

// The TLS credentials a daemon serves with, from tls_cert_file and tls_key_file in ferry.conf.
#pragma once

#include <optional>

#include "common/base/result.hpp"
#include "common/event/tls.hpp"
#include "common/program/config.hpp"

namespace ferry {

// nullopt when both keys are empty (TLS not configured), an error when only one of the two is set
// or loading fails.
Result<std::optional<TlsContext>> tls_from_config(const Config& config);

}  // namespace ferry

// relayhost_password_file: the credentials ferry-relay gives a relay host, by "[host]:port".
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/result.hpp"

namespace ferry::relay {

struct Credentials {
    std::string user;
    std::string password;
};

class PasswordMap {
public:
    // "[host]:port user password" per line; '#' starts a comment line. The error names the line
    // (never its content: it holds a password).
    static Result<PasswordMap> parse(std::string_view text);
    // Read once at start, before privileges are dropped (the file is root-only).
    static Result<PasswordMap> load(const std::string& path);

    // For "[smtp.example.org]:587" (host lower case); nullopt when there is no entry.
    std::optional<Credentials> lookup(const std::string& host, uint16_t port) const;

private:
    std::map<std::string, Credentials> entries_;
};

}  // namespace ferry::relay

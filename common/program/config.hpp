// ferry.conf: `key = value` lines, `program.key = value` overrides, compiled-in defaults.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"

namespace ferry {

enum class KeyType { string, path, integer, size, duration, boolean, choice, list, duration_list };

struct KeyDef {
    const char* name;
    const char* default_value;
    KeyType type;
    const char* choices;  // for KeyType::choice: "never|loopback|always"
};

// Every key every ferry program reads; ferry.conf(5) documents each one.
const std::vector<KeyDef>& config_keys();
const KeyDef* find_key(std::string_view name);

// Programs that accept `program.key = value` overrides.
bool is_program_name(std::string_view name);

// Pure value parsers, shared by validation and by the typed getters.
std::optional<int64_t> parse_integer(std::string_view v);
std::optional<uint64_t> parse_size(std::string_view v);                        // 10240000, 10M, 64k
std::optional<std::chrono::seconds> parse_duration(std::string_view v);        // 30, 30s, 5m, 4h, 5d
std::optional<bool> parse_bool(std::string_view v);                            // yes/no/true/false/on/off/1/0
std::vector<std::string> split_list(std::string_view v);                       // commas and/or spaces
Result<void> validate_value(const KeyDef& key, std::string_view value);

class Config {
public:
    // Parses `text` (named `file` in errors) for `program` ("smtpd", "qmgr", ...).
    static Result<Config> parse(std::string_view text, const std::string& file, const std::string& program);
    static Result<Config> load(const std::string& path, const std::string& program);
    // Defaults only: for unit tests and for programs started without -c.
    static Config defaults(const std::string& program);

    // The effective value of a key, with ${other_key} references expanded.
    std::string str(std::string_view key) const;
    int64_t integer(std::string_view key) const;
    uint64_t size(std::string_view key) const;
    std::chrono::seconds duration(std::string_view key) const;
    bool boolean(std::string_view key) const;
    std::vector<std::string> list(std::string_view key) const;
    std::vector<std::chrono::seconds> durations(std::string_view key) const;

    // Overrides a key in memory (command-line -o key=value); validated.
    Result<void> set(const std::string& key, const std::string& value);
    bool is_default(std::string_view key) const;
    const std::string& program() const { return program_; }
    const std::string& file() const { return file_; }

    // `key = value` lines of the effective configuration, like postconf; only_set hides defaults.
    std::string dump(bool only_set) const;

private:
    std::string raw(std::string_view key) const;
    // `budget`: ${} references left for this expansion; below zero once it ran out.
    std::string expand(const std::string& value, int depth, int& budget) const;

    std::string program_;
    std::string file_;
    std::map<std::string, std::string, std::less<>> values_;  // effective, explicitly set
};

}  // namespace ferry

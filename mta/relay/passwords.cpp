// relayhost_password_file: the credentials ferry-relay gives a relay host, by "[host]:port".
#include "mta/relay/passwords.hpp"

#include <cctype>
#include <fstream>
#include <sstream>

namespace ferry::relay {

namespace {

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

}  // namespace

Result<PasswordMap> PasswordMap::parse(std::string_view text) {
    PasswordMap map;
    std::istringstream in{std::string(text)};
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
        std::istringstream words(line);
        std::string where, user, password, extra;
        if (!(words >> where) || where[0] == '#') continue;
        if (!(words >> user >> password) || (words >> extra) || where.front() != '[' ||
            where.find("]:") == std::string::npos)
            return make_error(0, "", "line " + std::to_string(n) + ": want \"[host]:port user password\"");
        map.entries_[lower(where)] = Credentials{user, password};
    }
    return map;
}

Result<PasswordMap> PasswordMap::load(const std::string& path) {
    if (path.empty()) return PasswordMap();
    std::ifstream f(path);
    if (!f) return sys_error("cannot read relayhost_password_file " + path);
    std::stringstream text;
    text << f.rdbuf();
    auto map = parse(text.str());
    if (!map) return make_error(0, "", path + ": " + map.error().what());
    return map;
}

std::optional<Credentials> PasswordMap::lookup(const std::string& host, uint16_t port) const {
    auto it = entries_.find("[" + lower(host) + "]:" + std::to_string(port));
    if (it == entries_.end()) return std::nullopt;
    return it->second;
}

}  // namespace ferry::relay

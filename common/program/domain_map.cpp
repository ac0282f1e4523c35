// Per-domain map files: one parser for attachment_policy_map, relay_tls_policy_map, spam_junk_score_map and the like.
#include "common/program/domain_map.hpp"

#include <cctype>
#include <fstream>
#include <sstream>

#include "common/program/config.hpp"

namespace ferry {

Result<DomainMap> parse_domain_map(std::string_view text, const std::function<bool(std::string_view)>& valid,
                                   std::string_view want) {
    DomainMap map;
    std::istringstream in{std::string(text)};
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
        if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
        auto words = split_list(line);
        if (words.empty()) continue;
        if (words.size() != 2 || !valid(words[1]))
            return make_error(0, "", "line " + std::to_string(n) + ": want \"" + std::string(want) + "\"");
        std::string domain = words[0];
        for (char& c : domain) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        map[domain] = words[1];
    }
    return map;
}

Result<DomainMap> read_domain_map(std::string_view key, const std::string& path,
                                  const std::function<bool(std::string_view)>& valid, std::string_view want) {
    if (path.empty()) return DomainMap{};
    std::ifstream f(path);
    if (!f) return sys_error("cannot read " + std::string(key) + " " + path);
    std::stringstream text;
    text << f.rdbuf();
    auto map = parse_domain_map(text.str(), valid, want);
    if (!map) return make_error(0, "", std::string(key) + " " + path + ": " + map.error().what());
    return map;
}

}  // namespace ferry

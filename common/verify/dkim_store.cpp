// DKIM signing keys on disk: one directory per domain, one PEM file per selector, a file naming the active one.
#include "common/verify/dkim_store.hpp"

#include <dirent.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <fstream>
#include <sstream>

namespace ferry::verify::dkim {

namespace {

std::vector<std::string> entries(const std::string& dir, bool dirs, const std::string& suffix) {
    std::vector<std::string> out;
    DIR* d = opendir(dir.c_str());
    if (!d) return out;
    while (dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name[0] == '.') continue;
        bool is_dir = e->d_type == DT_DIR;
        if (dirs && is_dir) out.push_back(name);
        else if (!dirs && !is_dir && name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
            out.push_back(name.substr(0, name.size() - suffix.size()));
    }
    closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

// The whole file; nullopt when it does not exist.
Result<std::optional<std::string>> read_whole(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        if (errno == ENOENT) return std::optional<std::string>();
        return sys_error("cannot read " + path);
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return std::optional<std::string>(ss.str());
}

}  // namespace

bool valid_selector(const std::string& s) {
    if (s.empty() || s.size() > 63 || s.front() == '.' || s.back() == '.' || s.find("..") != std::string::npos) return false;
    return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.'; });
}

std::string domain_dir(const std::string& key_dir, const std::string& domain) { return key_dir + "/" + domain; }

std::string key_path(const std::string& key_dir, const std::string& domain, const std::string& selector) {
    return domain_dir(key_dir, domain) + "/" + selector + ".key";
}

std::vector<std::string> key_domains(const std::string& key_dir) { return entries(key_dir, true, ""); }

std::vector<std::string> key_selectors(const std::string& key_dir, const std::string& domain) {
    return entries(domain_dir(key_dir, domain), false, ".key");
}

Result<std::string> active_selector(const std::string& key_dir, const std::string& domain) {
    auto text = read_whole(domain_dir(key_dir, domain) + "/active");
    if (!text) return text.error();
    if (!*text) return std::string();
    std::string s = **text;
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    if (!valid_selector(s)) return make_error(0, "", domain_dir(key_dir, domain) + "/active does not name a selector");
    return s;
}

Result<PrivateKey> load_key(const std::string& key_dir, const std::string& domain, const std::string& selector) {
    std::string path = key_path(key_dir, domain, selector);
    auto pem = read_whole(path);
    if (!pem) return pem.error();
    if (!*pem) return make_error(0, "", path + " does not exist");
    auto key = PrivateKey::from_pem(**pem);
    if (!key) return make_error(0, "", path + ": " + key.error().what());
    return key;
}

Result<std::optional<SigningKey>> load_active_key(const std::string& key_dir, const std::string& domain) {
    auto selector = active_selector(key_dir, domain);
    if (!selector) return selector.error();
    if (selector->empty()) return std::optional<SigningKey>();
    auto key = load_key(key_dir, domain, *selector);
    if (!key) return key.error();
    return std::optional<SigningKey>(SigningKey{*selector, std::move(*key)});
}

}  // namespace ferry::verify::dkim

// DKIM signing of mail on its way out: the From: domain's active key signs the message as ferry-relay stores it.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/verify/dkim.hpp"
#include "common/verify/dkim_store.hpp"

namespace ferry::relay {

struct DkimSettings {
    bool enabled = true;               // dkim_sign
    std::string key_dir;               // dkim_key_dir
    std::vector<std::string> headers;  // dkim_sign_headers, lower case
};

// Where the header block of what was fed so far ends (its empty line), once it came; nullopt before that.
std::optional<size_t> header_end(const std::string& text);

// Fed the message as it arrives; at the header's end it looks up the key of the From: domain
// (<key_dir>/<domain>/active) and, when there is one, signs the rest on the way.
class DkimSigning {
public:
    explicit DkimSigning(const DkimSettings& s) : settings_(s) {}
    void feed(std::string_view chunk);
    // The "DKIM-Signature: ...\n" field for the top of the message; "" when it is not signed.
    // `note` says why for the log (signed with which key, or the error).
    std::string finish(std::string& note);

private:
    void start(std::string_view header);
    const DkimSettings& settings_;
    std::string header_;
    bool decided_ = false;
    std::string domain_;
    std::string error_;
    std::optional<verify::dkim::SigningKey> key_;
    std::unique_ptr<verify::dkim::Signer> signer_;
};

}  // namespace ferry::relay

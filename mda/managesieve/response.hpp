// ManageSieve responses (RFC 5804 section 1.3 and 4): strings as quoted or literal, OK/NO/BYE lines with codes.
#pragma once

#include <string>
#include <string_view>

namespace ferry::managesieve {

// A string as the server sends it: quoted when short and plain, else a literal {n}CRLF... (RFC 5804 section 4).
std::string string_token(std::string_view s);

// "OK", "NO" or "BYE", an optional response code "(CODE)" and an optional human-readable string, CRLF.
std::string response(std::string_view kind, std::string_view code, std::string_view text);
inline std::string ok(std::string_view text = {}, std::string_view code = {}) { return response("OK", code, text); }
inline std::string no(std::string_view code, std::string_view text) { return response("NO", code, text); }
inline std::string bye(std::string_view code, std::string_view text) { return response("BYE", code, text); }

}  // namespace ferry::managesieve

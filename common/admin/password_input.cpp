// Reading a new password without it ever touching argv: the terminal with echo off, or stdin's first line.
#include <termios.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstring>

#include "common/admin/admin.hpp"

namespace ferry::admin {

namespace {

constexpr size_t kMaxPassword = 1024;  // longer input is refused, not silently cut

Error user_error(std::string text) { return make_error(0, "", std::move(text)); }

// One line from fd 0, read byte by byte so that nothing after the first line is consumed.
Result<std::string> read_line() {
    std::string line;
    char c;
    while (true) {
        ssize_t n = read(0, &c, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return sys_error("cannot read the password");
        if (n == 0 || c == '\n') break;
        if (line.size() >= kMaxPassword) return user_error("password longer than 1024 bytes");
        line += c;
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
}

// Restores the terminal's echo on every path out, including errors.
class EchoOff {
public:
    EchoOff() {
        if (tcgetattr(0, &saved_) != 0) return;
        termios t = saved_;
        t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        active_ = tcsetattr(0, TCSAFLUSH, &t) == 0;
    }
    ~EchoOff() {
        if (active_) tcsetattr(0, TCSAFLUSH, &saved_);
    }
    EchoOff(const EchoOff&) = delete;
    EchoOff& operator=(const EchoOff&) = delete;

private:
    termios saved_{};
    bool active_ = false;
};

// Echo goes off before the prompt shows, so nothing typed after the prompt can be echoed.
Result<std::string> prompt(const char* text) {
    EchoOff quiet;
    fputs(text, stderr);
    fflush(stderr);
    auto line = read_line();
    fputs("\n", stderr);
    return line;
}

}  // namespace

Result<std::string> read_password(bool confirm) {
    Result<std::string> pw = std::string();
    if (isatty(0)) {
        pw = prompt(confirm ? "New password: " : "Password: ");
        if (!pw || !confirm) return pw;
        auto again = prompt("Retype new password: ");
        if (!again) return again;
        bool same = *again == *pw;
        std::memset(again->data(), 0, again->size());
        if (!same) return user_error("the passwords do not match");
    } else {
        pw = read_line();
        if (!pw) return pw;
    }
    if (pw->empty()) return user_error("empty password refused");
    return pw;
}

Result<std::string> imported_hash(const std::string& text) {
    std::string h = text;
    // Dovecot passdb entries carry a scheme: {CRYPT}, {SHA512-CRYPT}, {BLF-CRYPT}, ... all crypt(3) strings.
    if (!h.empty() && h.front() == '{') {
        auto close = h.find('}');
        std::string scheme = close == std::string::npos ? "" : h.substr(1, close - 1);
        for (char& c : scheme) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
        if (scheme.size() < 5 || scheme.compare(scheme.size() - 5, 5, "CRYPT") != 0)
            return user_error("unsupported password scheme {" + scheme + "}: only crypt(3) hashes can be imported");
        h.erase(0, close + 1);
    }
    if (!valid_password_hash(h)) return user_error("'" + text + "' is not a crypt(3) hash that libxcrypt accepts");
    return h;
}

}  // namespace ferry::admin

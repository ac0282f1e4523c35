// Result<T>: errors as values, carrying what a protocol reply and a log line need.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

#include "common/base/log.hpp"

namespace ferry {

// An error that can become an SMTP/LMTP reply (code, enhanced status, client text)
// and a log line (detail), in the way of mox's smtpError.
struct Error {
    int code = 0;              // protocol reply code, 0 when not a protocol error
    std::string enhanced;      // RFC 3463 status such as "5.1.1", may be empty
    std::string text;          // what the peer is told
    std::string detail;        // what the log says (may name paths, errno)

    std::string reply() const {
        std::string r = std::to_string(code);
        r += ' ';
        if (!enhanced.empty()) r += enhanced + ' ';
        r += text;
        return r;
    }
    std::string what() const { return detail.empty() ? text : text + " (" + detail + ")"; }
};

inline Error make_error(int code, std::string enhanced, std::string text, std::string detail = {}) {
    return Error{code, std::move(enhanced), std::move(text), std::move(detail)};
}

// A system-call failure: errno goes into the detail.
inline Error sys_error(std::string what, int err = errno) {
    return Error{0, {}, std::move(what), std::strerror(err)};
}

template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}
    Result(Error e) : v_(std::move(e)) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    // Reading the wrong alternative is a caller's bug: it aborts (log::panic) rather than throw
    // std::bad_variant_access, which would unwind through the event loop's C frames.
    T& value() & { return *checked<T>(std::get_if<0>(&v_)); }
    T&& value() && { return std::move(*checked<T>(std::get_if<0>(&v_))); }
    const T& value() const& { return *checked<const T>(std::get_if<0>(&v_)); }
    T& operator*() { return value(); }
    T* operator->() { return &value(); }
    const Error& error() const { return *checked<const Error>(std::get_if<1>(&v_)); }

private:
    template <class U>
    static U* checked(U* p) {
        if (!p) log::panic("Result: value() of an error, or error() of a value");
        return p;
    }

    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error e) : err_(std::move(e)), ok_(false) {}
    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    // error() of a success returns an empty Error: nothing to abort for.
    const Error& error() const { return err_; }

private:
    Error err_;
    bool ok_ = true;
};

}  // namespace ferry

// Test helper for the Sieve library: compile and run a script on a message, the actions as one line each.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "mda/sieve/interpreter.hpp"
#include "mda/sieve/script.hpp"

namespace ferry::sieve::test {

inline const char* const kPlain =
    "Return-Path: <ann@example.org>\r\n"
    "From: \"Ann Example\" <ann+lists@Example.org>\r\n"
    "To: me@example.com, \"Other\" <other@example.net>\r\n"
    "Cc: group: carl@example.com, dora@example.com;\r\n"
    "Subject: [acme-users] [fwd] version 1.0 is out\r\n"
    "Date: Tue, 14 Nov 2023 10:30:15 +0100\r\n"
    "Message-ID: <abc@example.org>\r\n"
    "X-Count: 12\r\n"
    "Received: from a by b; Tue, 14 Nov 2023 10:30:10 +0100\r\n"
    "Received: from c by d; Tue, 14 Nov 2023 10:29:00 +0100\r\n"
    "\r\n"
    "Hello world, this is the body.\r\n";

inline const char* const kMime =
    "From: bob@example.net\r\n"
    "To: me@example.com\r\n"
    "Subject: =?utf-8?q?Caf=C3=A9?= menu\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=xyz\r\n"
    "\r\n"
    "--xyz\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Le caf=E9 est pr=EAt.\r\n"
    "--xyz\r\n"
    "Content-Type: text/html\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "PGI+U3BlY2lhbCBvZmZlcjwvYj4=\r\n"
    "--xyz\r\n"
    "Content-Type: application/octet-stream\r\n"
    "\r\n"
    "secret-binary\r\n"
    "--xyz--\r\n";

inline Envelope default_envelope() { return Envelope{"ann+lists@example.org", "me@example.com", "me@example.com", ""}; }

inline RunInput default_input(std::string_view message) {
    RunInput in;
    in.message = message;
    in.envelope = default_envelope();
    in.environment = {{"domain", "example.com"}, {"host", "mx.example.com"}, {"name", "ferry"}, {"phase", "during"}};
    in.now = 1700000000;  // 2023-11-14 22:13:20 UTC
    in.local_zone = 0;
    in.mailbox_exists = [](std::string_view m) { return m == "INBOX" || m == "Work"; };
    return in;
}

// The actions as describe() prints them, or "compile error: ..." / "run error: ...".
inline std::vector<std::string> run_lines(std::string_view script, const RunInput& in, const RunLimits& limits = {}) {
    CompileResult c = compile(script);
    if (!c.script) return {"compile error: " + c.error->text()};
    auto out = run(*c.script, in, limits);
    if (!out) return {"run error: " + out.error().text};
    std::vector<std::string> lines;
    for (const auto& a : out->actions) lines.push_back(describe(a));
    return lines;
}

inline std::vector<std::string> run_lines(std::string_view script, std::string_view message = kPlain) {
    return run_lines(script, default_input(message));
}

// The error text of a script that must not compile ("" when it compiles).
inline std::string compile_error(std::string_view script, const CompileLimits& limits = {}) {
    CompileResult c = compile(script, limits);
    return c.error ? c.error->text() : std::string();
}

}  // namespace ferry::sieve::test

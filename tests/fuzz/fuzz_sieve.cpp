// Fuzz target: the Sieve parser and validator, then the interpreter over a fixed message; errors point inside the script.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mda/sieve/interpreter.hpp"
#include "mda/sieve/script.hpp"

using namespace ferry::sieve;

namespace {

constexpr std::string_view kMessage =
    "Return-Path: <a@example.org>\r\n"
    "From: \"Ann\" <ann+lists@example.org>, bob@example.net\r\n"
    "To: me@example.com\r\n"
    "Subject: =?utf-8?q?caf=C3=A9?= [list] hello\r\n"
    "Date: Tue, 14 Nov 2023 10:00:00 +0100\r\n"
    "Message-ID: <1@example.org>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/alternative; boundary=b\r\n"
    "\r\n"
    "--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    "Hello =C3=A9 world\r\n"
    "--b\r\nContent-Type: text/html\r\n\r\n<p>Hello</p>\r\n--b--\r\n";

void check_error(const CompileError& e, std::string_view script) {
    size_t lines = static_cast<size_t>(std::count(script.begin(), script.end(), '\n')) + 1;
    if (e.pos.line < 1 || e.pos.line > lines || e.pos.column < 1 || e.message.empty()) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view script(reinterpret_cast<const char*>(data), size);
    ParseResult parsed = parse(script);
    CompileResult compiled = compile(script);
    if (parsed.error) {
        check_error(*parsed.error, script);
        if (!compiled.error) abort();  // what does not parse cannot compile
    }
    if (compiled.error) check_error(*compiled.error, script);
    CompileLimits tight{256, 3, 16, 8};
    CompileResult small = compile(script, tight);
    if (small.error) check_error(*small.error, script);
    if (!compiled.script) return 0;
    RunInput in;
    in.message = kMessage;
    in.envelope = {"ann+lists@example.org", "me@example.com", "me@example.com", ""};
    in.environment = {{"domain", "example.com"}, {"name", "ferry"}};
    in.now = 1700000000;
    in.mailbox_exists = [](std::string_view m) { return m == "INBOX"; };
    in.duplicate = [](const DuplicateQuery& q) { return q.id.size() % 2 == 0; };
    RunLimits limits;
    limits.max_steps = 20000;
    auto out = run(*compiled.script, in, limits);
    if (out) {
        if (out->actions.size() > limits.max_actions) abort();
        for (const auto& a : out->actions) describe(a);
    } else if (out.error().text.rfind("line ", 0) != 0) {
        abort();
    }
    return 0;
}

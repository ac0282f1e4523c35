// Test helper: feeds IMAP input to a CommandReader whole or one byte at a time and records every step.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "imapd/command.hpp"
#include "imapd/reader.hpp"

namespace ferry::imap::test {

// One argument tree as text: atoms bare, strings quoted, literals as {n}, lists in parentheses.
inline std::string describe(const std::vector<Arg>& args) {
    std::string out;
    for (const Arg& a : args) {
        if (!out.empty()) out += ' ';
        switch (a.type) {
        case Arg::Type::atom: out += a.value; break;
        case Arg::Type::quoted: out += '"' + a.value + '"'; break;
        case Arg::Type::literal: out += (a.literal8 ? "~{" : "{") + a.value + "}"; break;
        case Arg::Type::list: out += "(" + describe(a.list) + ")"; break;
        }
    }
    return out;
}

// Every step other than need_more, as text: "command <tag> <NAME> <args>", "continuation",
// "error <tag> <kind> <action> <text>", "line <text>".
inline std::string describe(const Step& st) {
    switch (st.kind) {
    case Step::Kind::command: return "command " + st.command.tag + " " + st.command.name + (st.command.args.empty() ? "" : " ") + describe(st.command.args);
    case Step::Kind::continuation: return "continuation";
    case Step::Kind::line: return "line " + st.line;
    case Step::Kind::error:
        return "error " + st.error.tag + (st.error.kind == ReadError::Kind::too_big ? " too_big" : " bad") +
               (st.error.action == ReadError::Action::close ? " close " : " resync ") + st.error.text;
    case Step::Kind::need_more: break;
    }
    return "need_more";
}

inline std::vector<std::string> run(CommandReader& r, std::string_view input, bool bytewise) {
    std::vector<std::string> out;
    bool closed = false;
    auto drain = [&](std::string_view chunk) {
        while (!closed) {
            Step st = r.next(chunk);
            if (st.kind == Step::Kind::need_more) {
                if (chunk.empty()) return;
                continue;
            }
            out.push_back(describe(st));
            closed = st.kind == Step::Kind::error && st.error.action == ReadError::Action::close;
        }
    };
    if (!bytewise) {
        drain(input);
    } else {
        for (size_t i = 0; i < input.size() && !closed; i++) drain(input.substr(i, 1));
    }
    return out;
}

// The steps for `input` fed whole; the same input fed byte by byte must give the same steps.
inline std::vector<std::string> steps(std::string_view input, Limits limits = {}, LiteralMode mode = LiteralMode::literal_plus) {
    CommandReader whole(limits, mode), bytes(limits, mode);
    auto a = run(whole, input, false);
    auto b = run(bytes, input, true);
    if (a != b) return {"MISMATCH between whole and bytewise feeding"};
    return a;
}

// Frames exactly one command from `input` (whole and byte by byte) and parses it.
inline Result<Command> parse(std::string_view input, Limits limits = {}) {
    CommandReader whole(limits), bytes(limits);
    std::vector<RawCommand> got[2];
    for (int pass = 0; pass < 2; pass++) {
        CommandReader& r = pass == 0 ? whole : bytes;
        auto take = [&](std::string_view chunk) {
            while (true) {
                Step st = r.next(chunk);
                if (st.kind == Step::Kind::command) got[pass].push_back(std::move(st.command));
                else if (st.kind == Step::Kind::error) return false;
                else if (st.kind == Step::Kind::need_more && chunk.empty()) return true;
            }
        };
        bool ok = true;
        if (pass == 0) ok = take(input);
        else for (size_t i = 0; ok && i < input.size(); i++) ok = take(input.substr(i, 1));
        if (!ok) return make_error(0, {}, "framing error");
    }
    if (got[0].size() != 1 || got[1].size() != 1) return make_error(0, {}, "not exactly one command");
    if (describe(got[0][0].args) != describe(got[1][0].args) || got[0][0].tag != got[1][0].tag)
        return make_error(0, {}, "whole and bytewise feeding differ");
    return parse_command(std::move(got[0][0]), limits);
}

}  // namespace ferry::imap::test

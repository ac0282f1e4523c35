// Table-driven command dispatch for the daemons: per verb the states it is allowed in, a check, a proceed.
#pragma once

#include <functional>
#include <iterator>
#include <optional>
#include <type_traits>
#include <utility>

#include "common/base/result.hpp"

namespace ferry {

// Session states as bits, so that one spec names every state its verb is allowed in.
using StateMask = unsigned;
template <class State>
constexpr StateMask state_bit(State s) {
    return StateMask{1} << static_cast<unsigned>(s);
}
inline constexpr StateMask kAnyState = ~StateMask{0};

// One verb. `check` decides without acting (a function or member function pointer returning
// Result<T> or Result<void>, nullptr when there is nothing to check): an Error is the reply, a
// value is what `proceed` needs. `proceed` acts and sends the success reply; it may take the checked value.
template <class Key, class Check, class Proceed>
struct CommandSpec {
    Key verb;
    StateMask states;
    Check check;
    Proceed proceed;
};

// The replies the table gives itself; each daemon words them its own way.
struct DispatchReplies {
    Error unknown;      // no spec for the verb
    Error wrong_state;  // a spec, but not for the session's current state
};

// The spec for `verb`, nullptr when the table has none.
template <class Table, class Key>
auto find_spec(const Table& table, const Key& verb) -> decltype(&*std::begin(table)) {
    for (const auto& spec : table)
        if (spec.verb == verb) return &spec;
    return nullptr;
}

// Runs one command through `table`: nullopt when proceed ran, else the reply to send instead.
// `state` is the session's current state as a bit (state_bit), kAnyState where there are none.
template <class Table, class Key, class Session, class Command>
std::optional<Error> dispatch(const Table& table, const Key& verb, StateMask state, Session& session,
                              const Command& cmd, const DispatchReplies& replies) {
    const auto* spec = find_spec(table, verb);
    if (!spec) return replies.unknown;
    if (!(spec->states & state)) return replies.wrong_state;
    using Checked = decltype(std::invoke(spec->check, session, cmd));
    if constexpr (std::is_same_v<Checked, Result<void>>) {
        if (spec->check) {
            if (auto r = std::invoke(spec->check, session, cmd); !r) return r.error();
        }
        std::invoke(spec->proceed, session, cmd);
    } else {
        using Value = std::remove_cvref_t<decltype(std::declval<Checked&>().value())>;
        auto checked = spec->check ? std::invoke(spec->check, session, cmd) : Checked(Value{});
        if (!checked) return checked.error();
        if constexpr (std::is_invocable_v<decltype(spec->proceed), Session&, const Command&, const Value&>)
            std::invoke(spec->proceed, session, cmd, std::as_const(checked.value()));
        else
            std::invoke(spec->proceed, session, cmd);
    }
    return std::nullopt;
}

}  // namespace ferry

// The command table's dispatch: unknown verb, wrong state, refused check and proceed, as a table.
#include <catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "common/base/command_table.hpp"

using namespace ferry;

namespace {

enum class State { greeting, ready, busy };

struct Toy {
    State state = State::greeting;
    std::vector<std::string> acted;  // what proceed did, in order

    Result<std::string> check_take(const std::string& arg) {
        if (arg.empty()) return make_error(501, "5.5.4", "Syntax: TAKE thing");
        return "thing:" + arg;
    }
    void take(const std::string&, const std::string& checked) { acted.push_back("take " + checked); }
};

Result<std::string> check_hello(Toy& t, const std::string&) {
    if (t.state == State::ready) return make_error(503, "5.5.1", "Already greeted");
    return std::string();
}
void hello(Toy& t, const std::string&, const std::string&) {
    t.state = State::ready;
    t.acted.push_back("hello");
}
Result<std::string> check_take(Toy& t, const std::string& arg) { return t.check_take(arg); }
void take(Toy& t, const std::string& arg, const std::string& checked) { t.take(arg, checked); }
void noop(Toy& t, const std::string&, const std::string&) { t.acted.push_back("noop"); }

using Spec = CommandSpec<std::string_view, Result<std::string> (*)(Toy&, const std::string&),
                         void (*)(Toy&, const std::string&, const std::string&)>;
const Spec kTable[] = {
    {"HELLO", state_bit(State::greeting) | state_bit(State::ready), check_hello, hello},
    {"TAKE", state_bit(State::ready), check_take, take},
    {"NOOP", kAnyState, nullptr, noop},
};

const DispatchReplies kReplies{make_error(500, "5.5.2", "Unknown"), make_error(503, "5.5.1", "Not now")};

struct Case {
    State state;
    std::string verb;
    std::string arg;
    std::string reply;  // "" when proceed ran
    std::vector<std::string> acted;
};

}  // namespace

TEST_CASE("dispatch: unknown, wrong state, refused, proceeded", "[command_table]") {
    const Case cases[] = {
        {State::greeting, "BOGUS", "", "500 5.5.2 Unknown", {}},
        {State::greeting, "hello", "", "500 5.5.2 Unknown", {}},  // the table matches exactly: callers fold case
        {State::greeting, "TAKE", "x", "503 5.5.1 Not now", {}},
        {State::busy, "HELLO", "", "503 5.5.1 Not now", {}},
        {State::ready, "HELLO", "", "503 5.5.1 Already greeted", {}},
        {State::ready, "TAKE", "", "501 5.5.4 Syntax: TAKE thing", {}},
        {State::greeting, "HELLO", "", "", {"hello"}},
        {State::ready, "TAKE", "box", "", {"take thing:box"}},
        {State::busy, "NOOP", "", "", {"noop"}},  // no check, any state
    };
    for (const auto& c : cases) {
        CAPTURE(static_cast<int>(c.state), c.verb, c.arg);
        Toy toy;
        toy.state = c.state;
        auto refusal = dispatch(kTable, std::string_view(c.verb), state_bit(c.state), toy, c.arg, kReplies);
        CHECK((refusal ? refusal->reply() : std::string()) == c.reply);
        CHECK(toy.acted == c.acted);
    }
}

TEST_CASE("dispatch: member functions, and a proceed that takes no checked value", "[command_table]") {
    using MemberSpec = CommandSpec<std::string_view, Result<std::string> (Toy::*)(const std::string&),
                                   void (*)(Toy&, const std::string&)>;
    static const MemberSpec table[] = {
        {"TAKE", kAnyState, &Toy::check_take, [](Toy& t, const std::string& arg) { t.acted.push_back("bare " + arg); }},
    };
    Toy toy;
    CHECK(dispatch(table, std::string_view("TAKE"), kAnyState, toy, std::string("a"), kReplies) == std::nullopt);
    CHECK(toy.acted == std::vector<std::string>{"bare a"});
    auto refusal = dispatch(table, std::string_view("TAKE"), kAnyState, toy, std::string(), kReplies);
    REQUIRE(refusal);
    CHECK(refusal->reply() == "501 5.5.4 Syntax: TAKE thing");
    CHECK(toy.acted.size() == 1);
    CHECK(find_spec(table, std::string_view("NOPE")) == nullptr);
}

TEST_CASE("dispatch: a check that only decides (Result<void>)", "[command_table]") {
    struct Gate {
        bool open = false;
        int passed = 0;
        Result<void> check(const std::string&) {
            if (!open) return make_error(554, "5.7.1", "Closed");
            return {};
        }
        void pass(const std::string&) { ++passed; }
    };
    using GateSpec = CommandSpec<std::string_view, Result<void> (Gate::*)(const std::string&),
                                 void (Gate::*)(const std::string&)>;
    static const GateSpec table[] = {
        {"PASS", state_bit(State::ready), &Gate::check, &Gate::pass},
        {"PEEK", kAnyState, nullptr, &Gate::pass},
    };
    Gate gate;
    auto refusal = dispatch(table, std::string_view("PASS"), state_bit(State::ready), gate, std::string(), kReplies);
    REQUIRE(refusal);
    CHECK(refusal->reply() == "554 5.7.1 Closed");
    CHECK(dispatch(table, std::string_view("PEEK"), state_bit(State::busy), gate, std::string(), kReplies) == std::nullopt);
    gate.open = true;
    CHECK(dispatch(table, std::string_view("PASS"), state_bit(State::ready), gate, std::string(), kReplies) == std::nullopt);
    CHECK(gate.passed == 2);
}

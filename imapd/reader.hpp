// IMAP command framing: an incremental reader that cuts tagged commands (lines and literals) into argument trees.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::imap {

// Limits of one command; each is checked exactly (a value equal to the limit is accepted).
struct Limits {
    size_t max_line = 65536;                 // one line between literals, CRLF included
    uint64_t max_literal = 64u << 20;        // one literal's announced size
    uint64_t max_command = 80u << 20;        // lines and literals of one command together
    size_t max_depth = 16;                   // nesting of parentheses (and of SEARCH NOT/OR)
    size_t max_args = 4096;                  // arguments of one command, list members included
    uint64_t max_literal_minus = 4096;       // RFC 7888: largest {n+} when only LITERAL- is offered
};

// Which non-synchronising literals the server advertised (RFC 7888).
enum class LiteralMode { sync_only, literal_plus, literal_minus };

// One argument of a command: an atom (NIL included; flags and sequence sets are atoms too),
// a quoted string (unescaped), a literal (literal8 for ~{n}) or a parenthesised list.
struct Arg {
    enum class Type { atom, quoted, literal, list };
    Type type = Type::atom;
    std::string value;
    bool literal8 = false;
    std::vector<Arg> list;

    bool is_string() const { return type == Type::quoted || type == Type::literal; }
    bool is_atom(std::string_view upper) const;  // an atom equal to `upper`, ignoring case
};

// A framed command: its tag, its name upper-cased and its arguments.
struct RawCommand {
    std::string tag;
    std::string name;
    std::vector<Arg> args;
};

// Why a command was refused: `tag` is empty when none could be read (answer untagged BAD).
struct ReadError {
    // too_big: answer with the TOOBIG response code (RFC 9051 section 7.1): NO for a refused
    // synchronising literal, BAD for a non-synchronising one (RFC 7888 section 4).
    enum class Kind { bad, too_big };
    enum class Action { resync, close };     // resync: the reader skips the rest itself; close: drop the connection
    Kind kind = Kind::bad;
    Action action = Action::resync;
    std::string tag;
    std::string text;
};

// What one call of CommandReader::next found.
struct Step {
    enum class Kind {
        need_more,     // all of the input was consumed; call again with more
        command,       // `command` is complete
        continuation,  // a synchronising literal is pending: send "+ Ready" and go on reading
        error,         // `error`: answer it; the reader already skips or wants the connection closed
        line,          // read_line(): `line` holds one line (AUTHENTICATE responses, IDLE's DONE)
    };
    Kind kind = Kind::need_more;
    RawCommand command;
    ReadError error;
    std::string line;
};

// Reads commands from bytes as they arrive. Feed it whatever came in; it takes what it uses from
// the front of `in` and keeps partial input itself, so the caller may drop what it consumed.
class CommandReader {
public:
    explicit CommandReader(Limits limits = {}, LiteralMode mode = LiteralMode::literal_plus)
        : limits_(limits), mode_(mode) {}

    Step next(std::string_view& in);
    // The next Step::line (or error) is one plain line, for an AUTHENTICATE exchange or IDLE.
    void read_line() { want_line_ = true; }
    void set_literal_mode(LiteralMode mode) { mode_ = mode; }
    const Limits& limits() const { return limits_; }
    // No command (or line) is partly read: nothing is owed by the client (for the command deadline).
    bool between_commands() const { return state_ == State::line && buf_.empty() && !started_; }

private:
    enum class State { line, literal, skip_line, skip_literal, closed };

    Step take_line(std::string_view& in, std::string& line, bool& got);
    Step on_line(std::string line);
    Step head(std::string_view& s);
    Step refused(Step st, std::string_view line);
    Step on_literal_done();
    Step fail(ReadError::Kind kind, ReadError::Action action, std::string text);
    Step tokenize(std::string_view seg);
    std::vector<Arg>& current();
    void reset();

    Limits limits_;
    LiteralMode mode_;
    bool want_line_ = false;
    State state_ = State::line;
    std::string buf_;           // the line read so far
    // The command being built.
    bool started_ = false;
    bool sep_ok_ = true;        // the next argument may start here (after a space or "(")
    RawCommand cmd_;
    std::vector<std::vector<Arg>*> stack_;
    size_t nargs_ = 0;
    uint64_t total_ = 0;
    // The literal being read.
    uint64_t literal_left_ = 0;
    Arg literal_;
    // Skipping: bytes of a refused non-synchronising literal still to drop.
    uint64_t skip_left_ = 0;
};

// Upper-cases ASCII letters.
std::string upper(std::string_view s);
// True for an IMAP tag (RFC 9051: 1*<any ASTRING-CHAR except "+">).
bool valid_tag(std::string_view s);

}  // namespace ferry::imap

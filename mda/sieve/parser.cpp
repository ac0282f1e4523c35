// The Sieve parser (RFC 5228 section 8.2): commands, arguments, tests and blocks into a raw tree, within limits.
#include <utility>

#include "mda/sieve/lexer.hpp"
#include "mda/sieve/script.hpp"

namespace ferry::sieve {

std::string CompileError::text() const {
    return "line " + std::to_string(pos.line) + ", column " + std::to_string(pos.column) + ": " + message;
}

namespace {

class Parser {
public:
    Parser(std::string_view text, const CompileLimits& limits)
        : lex_(text, limits.max_string_length), limits_(limits) {
        tok_ = lex_.next();
    }

    ParseResult run() {
        ParseResult r;
        commands(r.commands, 0);
        if (!failed_ && tok_.kind != Token::Kind::end) fail(tok_.pos, "expected a command, found " + describe(tok_));
        if (failed_) r.error = error_;
        return r;
    }

private:
    static std::string describe(const Token& t) {
        switch (t.kind) {
            case Token::Kind::end: return "the end of the script";
            case Token::Kind::identifier: return "'" + t.text + "'";
            case Token::Kind::tag: return "':" + t.text + "'";
            case Token::Kind::number: return "a number";
            case Token::Kind::string:
            case Token::Kind::multiline: return "a string";
            case Token::Kind::punct: return "'" + t.text + "'";
            case Token::Kind::error: return t.text;
        }
        return "?";
    }
    void fail(Pos at, std::string message) {
        if (failed_) return;
        failed_ = true;
        error_ = CompileError{at, std::move(message)};
    }
    void advance() { tok_ = lex_.next(); }
    bool punct(char c) const { return tok_.kind == Token::Kind::punct && tok_.text[0] == c; }
    bool check_token() {
        if (tok_.kind == Token::Kind::error) fail(tok_.pos, tok_.text);
        return !failed_;
    }
    bool count(Pos at) {
        if (++nodes_ > limits_.max_commands)
            fail(at, "more than " + std::to_string(limits_.max_commands) + " commands and tests");
        return !failed_;
    }
    bool deeper(size_t depth, Pos at) {
        if (depth > limits_.max_nesting) fail(at, "nested deeper than " + std::to_string(limits_.max_nesting) + " levels");
        return !failed_;
    }

    void commands(std::vector<RawNode>& out, size_t depth) {
        while (check_token() && tok_.kind == Token::Kind::identifier) {
            out.emplace_back();
            command(out.back(), depth);
        }
    }

    void command(RawNode& node, size_t depth) {
        node.name = tok_.text;
        node.pos = tok_.pos;
        if (!count(node.pos)) return;
        advance();
        arguments(node, depth);
        if (failed_ || !check_token()) return;
        if (punct(';')) {
            advance();
        } else if (punct('{')) {
            if (!deeper(depth + 1, tok_.pos)) return;
            node.has_block = true;
            advance();
            commands(node.block, depth + 1);
            if (failed_) return;
            if (!punct('}')) return fail(tok_.pos, "expected '}' or a command, found " + describe(tok_));
            advance();
        } else {
            fail(tok_.pos, "expected ';' or '{' after the arguments of " + node.name + ", found " + describe(tok_));
        }
    }

    void arguments(RawNode& node, size_t depth) {
        while (check_token()) {
            if (tok_.kind == Token::Kind::tag) {
                node.args.push_back(Argument{Argument::Kind::tag, tok_.text, 0, {}, false, tok_.pos});
                advance();
            } else if (tok_.kind == Token::Kind::number) {
                node.args.push_back(Argument{Argument::Kind::number, {}, tok_.number, {}, false, tok_.pos});
                advance();
            } else if (tok_.kind == Token::Kind::string || tok_.kind == Token::Kind::multiline) {
                node.args.push_back(Argument{Argument::Kind::strings, {}, 0, {std::move(tok_.text)}, false, tok_.pos});
                advance();
            } else if (punct('[')) {
                string_list(node);
            } else {
                break;
            }
        }
        if (failed_) return;
        if (tok_.kind == Token::Kind::identifier) {
            if (!deeper(depth + 1, tok_.pos)) return;
            node.tests.emplace_back();
            test(node.tests.back(), depth + 1);
        } else if (punct('(')) {
            if (!deeper(depth + 1, tok_.pos)) return;
            node.test_list = true;
            advance();
            for (;;) {
                if (!check_token()) return;
                if (tok_.kind != Token::Kind::identifier) return fail(tok_.pos, "expected a test, found " + describe(tok_));
                node.tests.emplace_back();
                test(node.tests.back(), depth + 1);
                if (failed_ || !check_token()) return;
                if (punct(')')) break;
                if (!punct(',')) return fail(tok_.pos, "expected ',' or ')' in a test list, found " + describe(tok_));
                advance();
            }
            advance();
        }
    }

    void string_list(RawNode& node) {
        Argument a{Argument::Kind::strings, {}, 0, {}, true, tok_.pos};
        advance();
        for (;;) {
            if (!check_token()) return;
            if (tok_.kind != Token::Kind::string && tok_.kind != Token::Kind::multiline)
                return fail(tok_.pos, "expected a string in a string list, found " + describe(tok_));
            a.strings.push_back(std::move(tok_.text));
            advance();
            if (!check_token()) return;
            if (punct(']')) break;
            if (!punct(',')) return fail(tok_.pos, "expected ',' or ']' in a string list, found " + describe(tok_));
            advance();
        }
        advance();
        node.args.push_back(std::move(a));
    }

    void test(RawNode& node, size_t depth) {
        node.name = tok_.text;
        node.pos = tok_.pos;
        if (!count(node.pos)) return;
        advance();
        arguments(node, depth);
    }

    Lexer lex_;
    const CompileLimits& limits_;
    Token tok_;
    size_t nodes_ = 0;
    bool failed_ = false;
    CompileError error_;
};

}  // namespace

ParseResult parse(std::string_view text, const CompileLimits& limits) {
    if (text.size() > limits.max_script_size) {
        ParseResult r;
        r.error = CompileError{Pos{1, 1}, "script larger than " + std::to_string(limits.max_script_size) + " octets"};
        return r;
    }
    return Parser(text, limits).run();
}

}  // namespace ferry::sieve

// ferry-sendmail's command line: the sendmail options programs use, parsed as a pure function.
#include "mta/sendmail/options.hpp"

#include <cstring>

namespace ferry::sendmail {

namespace {

// Options whose value follows, attached ("-fuser") or as the next word ("-f user").
constexpr const char* kWithValue = "BCFNRVXOfhLredoq";
// Ignored flags without a value.
constexpr const char* kIgnoredFlags = "mnUGA";

struct Parser {
    const std::vector<std::string>& args;
    size_t i = 0;
    ParseResult out;

    bool fail(const std::string& why) {
        out.error = why;
        return false;
    }

    // The value of option `letter` whose word is args[i], starting at `rest` ("" when not attached).
    std::optional<std::string> value(char letter, const std::string& rest) {
        if (!rest.empty()) return rest;
        if (letter == 'q') return std::string();  // -q alone takes none
        if (i + 1 >= args.size()) return std::nullopt;
        return args[++i];
    }

    bool set_mode(Mode m) {
        if (out.options.mode != Mode::deliver && out.options.mode != m)
            return fail("only one of -bm, -bs, -bp and -q may be given");
        out.options.mode = m;
        return true;
    }

    bool option_b(const std::string& v) {
        if (v == "m") return set_mode(Mode::deliver);
        if (v == "s") return set_mode(Mode::smtp);
        if (v == "p") return set_mode(Mode::list_queue);
        return fail("-b" + v + " is not supported (only -bm, -bs and -bp)");
    }

    bool option_o(const std::string& v) {
        if (v == "i") out.options.ignore_dots = true;
        return true;  // -oem, -odi, -odb, -oQ..., -oA...: accepted and ignored
    }

    bool with_value(char c, const std::string& v) {
        Options& o = out.options;
        switch (c) {
            case 'b': return option_b(v);
            case 'C': o.config = v; return true;
            case 'F': o.full_name = v; return true;
            case 'f':
            case 'r': o.sender = (v == "<>") ? "" : v; return true;
            case 'o': return option_o(v);
            case 'q':
                if (!set_mode(Mode::flush)) return false;
                if (v.size() > 1 && (v[0] == 'R' || v[0] == 'S')) o.flush_domain = v.substr(1);
                return true;
            default: return true;  // B, N, R, V, X, O, h, L, e, d: accepted and ignored
        }
    }

    bool word(const std::string& a) {
        char c = a[1];
        std::string rest = a.substr(2);
        if (c == 'b') {
            auto v = value('b', rest);
            return v ? option_b(*v) : fail("-b needs a letter");
        }
        if (std::strchr(kWithValue, c)) {
            auto v = value(c, rest);
            if (!v) return fail(std::string("-") + c + " needs a value");
            return with_value(c, *v);
        }
        // Flags may be grouped ("-ti", "-oi" is an option with a value).
        for (char f : a.substr(1)) {
            if (f == 't') out.options.extract_recipients = true;
            else if (f == 'i') out.options.ignore_dots = true;
            else if (f == 'v') out.options.verbose = true;
            else if (!std::strchr(kIgnoredFlags, f)) return fail(std::string("unknown option -") + f);
        }
        return true;
    }

    void run(const std::string& program) {
        if (program == "mailq") out.options.mode = Mode::list_queue;
        for (; i < args.size(); ++i) {
            const std::string& a = args[i];
            if (a == "--") {
                ++i;
                break;
            }
            if (a.size() < 2 || a[0] != '-') break;
            if (!word(a)) return;
        }
        for (; i < args.size(); ++i) out.options.recipients.push_back(args[i]);
        if (out.options.mode != Mode::deliver && !out.options.recipients.empty() && out.options.mode != Mode::smtp)
            fail("recipients are only taken when a message is sent");
    }
};

}  // namespace

ParseResult parse_options(const std::vector<std::string>& args, const std::string& program) {
    Parser p{args};
    p.run(program);
    return std::move(p.out);
}

}  // namespace ferry::sendmail

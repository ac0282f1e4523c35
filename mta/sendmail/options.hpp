// ferry-sendmail's command line: the sendmail options programs use, parsed as a pure function.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace ferry::sendmail {

enum class Mode {
    deliver,     // -bm (the default): a message on stdin to the recipients
    smtp,        // -bs: SMTP on stdin and stdout
    list_queue,  // -bp, or called as mailq
    flush,       // -q: ask ferry-qmgr to run the queue now
};

struct Options {
    Mode mode = Mode::deliver;
    bool extract_recipients = false;     // -t
    bool ignore_dots = false;            // -i, -oi: a lone "." does not end the message
    bool verbose = false;                // -v: the LMTP dialogue on stderr
    std::optional<std::string> sender;   // -f, -r ("" or "<>": the null sender)
    std::optional<std::string> full_name;  // -F
    std::optional<std::string> config;   // -C
    std::string flush_domain;            // -qR<domain>
    std::vector<std::string> recipients;
};

struct ParseResult {
    Options options;
    std::string error;  // non-empty: a usage error (EX_USAGE), the text to print
};

// `args` without the program name; `program` is its base name ("mailq" means -bp). Options end at
// the first word that is not one, or at "--". Postfix's ignored options are taken silently: -B, -N,
// -R, -V, -X, -O, -h, -L, -e, -d, -o... with their values, -m, -n, -U, -G, -oem, -odi, -odb.
ParseResult parse_options(const std::vector<std::string>& args, const std::string& program);

}  // namespace ferry::sendmail

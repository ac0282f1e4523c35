// ferry-sieve: wires the command line to the Sieve compiler and interpreter (ferry-sieve(1)).
#include <sysexits.h>

#include <cstdio>

#include "mda/sieve-tool/sieve_tool.hpp"

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    auto parsed = ferry::sieve_tool::parse_options(args);
    if (!parsed.error.empty()) {
        fprintf(stderr, "ferry-sieve: %s\n"
                        "usage: ferry-sieve compile SCRIPT\n"
                        "       ferry-sieve test SCRIPT MESSAGE [-f sender] [-r recipient] [-m mailbox]\n"
                        "                        [-a address]... [-e mailbox]...\n",
                parsed.error.c_str());
        return EX_USAGE;
    }
    return ferry::sieve_tool::run(parsed.options, stdout, stderr);
}

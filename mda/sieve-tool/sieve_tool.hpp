// ferry-sieve: compile a Sieve script and report its errors, or run it on a message file and print the actions.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace ferry::sieve_tool {

// The command line: "compile SCRIPT" or "test SCRIPT MESSAGE [-f sender] [-r recipient] [-m mailbox]
// [-a address]... [-e mailbox]...", ferry-sieve(1).
struct Options {
    std::string command;  // "compile" or "test"
    std::string script;
    std::string message;
    std::string sender;      // -f; "" takes the message's Return-Path, else sender@example.com
    std::string recipient;   // -r; "" takes the message's Delivered-To, else recipient@example.com
    std::string mailbox = "INBOX";  // -m / --mailbox: where keep files the message
    std::vector<std::string> addresses;  // -a: the user's other addresses (vacation)
    std::vector<std::string> mailboxes;  // -e: mailboxes that exist (mailboxexists, fileinto without :create)
    bool null_sender = false;            // -f "" or -f "<>"
};

// The options, or an error text for the usage line.
struct Parsed {
    Options options;
    std::string error;
};
Parsed parse_options(const std::vector<std::string>& args);

// Runs the command: output to `out`, errors to `err`; the exit status (<sysexits.h>: EX_OK, 1 for
// a script that does not compile or fails at run time, EX_NOINPUT, EX_USAGE).
int run(const Options& o, FILE* out, FILE* err);

}  // namespace ferry::sieve_tool

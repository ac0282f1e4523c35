// ferry-sendmail (also sendmail and mailq): wires the options to local submission, -bs, the queue listing and -q.
#include <pwd.h>
#include <sysexits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <set>
#include <string>

#include "common/mail/address.hpp"
#include "common/program/config.hpp"
#include "common/program/daemon.hpp"
#include "common/program/paths.hpp"
#include "common/proto/qmgr_client.hpp"
#include "common/spool/queue_listing.hpp"
#include "mta/sendmail/message.hpp"
#include "mta/sendmail/options.hpp"
#include "mta/sendmail/smtp_stdio.hpp"
#include "common/smtp/submit_client.hpp"

using ferry::Config;
using ferry::Result;
using namespace ferry::sendmail;
namespace smtp = ferry::smtp;

namespace {

const char* g_prog = "sendmail";

constexpr const char* kUsage =
    "usage: sendmail [-t] [-i] [-f sender] [-F name] [-v] [-C ferry.conf] [recipient...] < message\n"
    "       sendmail -bs | -bp | -q[Rdomain]      mailq\n";

int error(int status, const std::string& text) {
    fprintf(stderr, "%s: %s\n", g_prog, text.c_str());
    return status;
}

struct LocalUser {
    std::string name;
    std::string full_name;  // the first field of the GECOS entry
};

LocalUser calling_user() {
    LocalUser u{"uid" + std::to_string(getuid()), ""};
    if (passwd* pw = getpwuid(getuid())) {
        u.name = pw->pw_name;
        std::string gecos = pw->pw_gecos ? pw->pw_gecos : "";
        u.full_name = gecos.substr(0, gecos.find(','));
    }
    return u;
}

// A bare local part ("root") is the local user of this host, as Postfix's myorigin makes it.
std::string qualified(const std::string& address, const std::string& hostname) {
    return address.find('@') == std::string::npos ? address + "@" + hostname : address;
}

std::string message_id_local() {
    std::random_device rd;
    char buf[64];
    snprintf(buf, sizeof buf, "%lx.%x.%08x", static_cast<long>(time(nullptr)), static_cast<unsigned>(getpid()), rd());
    return buf;
}

Completion completion(const Options& opt, const LocalUser& user, const std::string& hostname, const std::string& sender) {
    Completion c;
    c.extract = opt.extract_recipients;
    c.from_address = sender.empty() ? user.name + "@" + hostname : sender;
    c.full_name = opt.full_name ? *opt.full_name : user.full_name;
    c.hostname = hostname;
    c.now = time(nullptr);
    c.message_id_local = message_id_local();
    return c;
}

// An address named twice (in To: and on the command line, say) gets the message once: the split into
// several transactions would otherwise hand it a copy in each.
std::vector<std::string> each_once(std::vector<std::string> rcpts) {
    std::vector<std::string> out;
    std::set<std::string> seen;
    for (auto& a : rcpts)
        if (seen.insert(ferry::normalize_address(a)).second) out.push_back(std::move(a));
    return out;
}

Result<std::string> read_stdin(InputReader& in) {
    char buf[65536];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ferry::sys_error("cannot read the message from standard input");
        if (n == 0) break;
        if (!in.feed(std::string_view(buf, static_cast<size_t>(n)))) break;
    }
    in.finish();
    return in.message();
}

int deliver(const Options& opt, const Config& config) {
    LocalUser user = calling_user();
    std::string hostname = ferry::my_hostname(config);
    std::string sender = opt.sender ? *opt.sender : user.name + "@" + hostname;
    if (!sender.empty()) sender = qualified(sender, hostname);
    InputReader in(opt.ignore_dots);
    auto text = read_stdin(in);
    if (!text) return error(EX_NOINPUT, text.error().what());
    Prepared p = complete_message(*text, completion(opt, user, hostname, sender));
    std::vector<std::string> rcpts;
    for (const auto& arg : opt.recipients)
        for (const auto& a : parse_address_list(arg)) rcpts.push_back(qualified(a, hostname));
    for (const auto& a : p.recipients) rcpts.push_back(qualified(a, hostname));
    rcpts = each_once(std::move(rcpts));
    if (rcpts.empty())
        return opt.extract_recipients ? error(EX_DATAERR, "no recipients found in the To, Cc or Bcc header")
                                      : error(EX_USAGE, "no recipients given (name them, or use -t)");
    smtp::Submission s{sender, rcpts, std::move(p.message)};
    smtp::SubmitOutcome o = smtp::submit(config.str("submit_socket"), hostname, s, opt.verbose);
    if (o.exit_code != EX_OK) return error(o.exit_code, o.error);
    if (opt.verbose) fprintf(stderr, "%s: %s\n", g_prog, o.reply.text.c_str());
    return EX_OK;
}

int smtp_on_stdio(const Options& opt, const Config& config) {
    LocalUser user = calling_user();
    SmtpStdioSettings s;
    s.hostname = ferry::my_hostname(config);
    s.message_size_limit = config.size("message_size_limit");
    s.max_command_length = std::max<size_t>(512, config.size("smtpd_max_command_length"));
    std::string socket = config.str("submit_socket");
    run_smtp_stdio(0, 1, s, [&](smtp::Submission& sub) {
        sub.message = complete_message(sub.message, completion(opt, user, s.hostname, sub.sender)).message;
        return smtp::submit(socket, s.hostname, sub, opt.verbose);
    });
    return EX_OK;
}

// ferry-qmgr lists the queue for any local user, as Postfix's showq does; while it is down, the spool
// is read directly, which only root and mail_user can (as Postfix's postqueue falls back).
int list_queue(const Options& opt, const Config& config) {
    smtp::QueueListing l = smtp::queue_listing(config.str("submit_socket"), opt.verbose);
    if (l.error.empty()) {
        fputs(l.text.c_str(), stdout);
        return EX_OK;
    }
    if (!l.unreachable) return error(EX_TEMPFAIL, l.error);
    auto entries = ferry::spool::read_queue(config.str("spool_dir"));
    if (!entries) return error(EX_TEMPFAIL, l.error + "; reading the queue directly: " + entries.error().what());
    fprintf(stderr, "%s: warning: %s: reading the queue directly\n", g_prog, l.error.c_str());
    fputs(ferry::spool::format_listing(*entries).c_str(), stdout);
    return EX_OK;
}

int flush(const Options& opt, const Config& config) {
    namespace qp = ferry::proto::qmgr;
    auto reply = qp::send_control(config.str("qmgr_socket"), qp::Message::flush, opt.flush_domain);
    if (!reply) return error(EX_TEMPFAIL, reply.error().what());
    if (reply->status != qp::Reply::ok) return error(EX_TEMPFAIL, "ferry-qmgr: " + reply->text);
    if (opt.verbose) printf("%s\n", reply->text.c_str());
    return EX_OK;
}

}  // namespace

int main(int argc, char** argv) {
    std::string program = argc > 0 ? argv[0] : "sendmail";
    program = program.substr(program.rfind('/') + 1);
    g_prog = program == "mailq" ? "mailq" : "sendmail";
    auto parsed = parse_options(std::vector<std::string>(argv + std::min(argc, 1), argv + argc), program);
    if (!parsed.error.empty()) {
        fprintf(stderr, "%s: %s\n%s", g_prog, parsed.error.c_str(), kUsage);
        return EX_USAGE;
    }
    const Options& opt = parsed.options;
    std::string path = opt.config ? *opt.config : getenv("FERRY_CONFIG") ? getenv("FERRY_CONFIG") : FERRY_CONFIG_FILE;
    auto config = Config::load(path, "sendmail");
    if (!config) return error(EX_CONFIG, config.error().what());
    switch (opt.mode) {
        case Mode::list_queue: return list_queue(opt, *config);
        case Mode::flush: return flush(opt, *config);
        case Mode::smtp: return smtp_on_stdio(opt, *config);
        case Mode::deliver: return deliver(opt, *config);
    }
    return EX_SOFTWARE;
}

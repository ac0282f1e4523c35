// ferry-admin check's probe in: a message through the public SMTP port, as a remote sender sends it, then found in the Maildir.
#include "common/admin/check_probe.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <thread>

#include "common/admin/check_net.hpp"
#include "common/auth/accounts.hpp"
#include "common/auth/aliases.hpp"
#include "common/mail/date.hpp"
#include "common/store/maildir.hpp"

namespace ferry::admin {

std::string probe_token() {
    std::random_device rd;
    char buf[17];
    snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
    return buf;
}

namespace {

constexpr int kTimeoutMs = 20000;

std::string probe_message(const ProbePlan& plan, const std::string& token, const std::string& sender) {
    return "From: ferry-admin check <" + sender + ">\r\nTo: <" + plan.recipient + ">\r\n"
           "Subject: ferry-admin check probe " + token + "\r\n"
           "Date: " + mail::rfc5322_date(time(nullptr)) + "\r\nMessage-ID: <" + token + ".probe@" + plan.host + ">\r\n"
           "X-Ferry-Probe: " + token + "\r\n\r\n"
           "ferry-admin check sent this message through the public SMTP port, as mail from another\r\n"
           "server comes in, to see that it reaches this mailbox. It may be deleted.\r\n.\r\n";
}

bool positive(const std::string& reply, char first) { return !reply.empty() && reply[0] == first; }

// The reply's text after "queued as ", or "".
std::string queue_id(const std::string& reply) {
    size_t at = reply.find("queued as ");
    if (at == std::string::npos) return "";
    return first_line(reply.substr(at + 10));
}

// A refused MAIL or RCPT, with the change that lets the probe through.
Verdict refused(const std::string& what, const std::string& step, const std::string& reply, const std::string& fix) {
    return {false, what, step + ": " + (reply.empty() ? "no answer" : first_line(reply)), fix};
}

// EHLO, then STARTTLS when offered; the verdict on TLS. `tls` tells whether the rest runs over TLS.
Verdict hello(SmtpTalk& smtp, const ProbePlan& plan, bool& tls) {
    std::string what = "probe: STARTTLS at port " + std::to_string(plan.port);
    std::string ehlo = smtp.command("EHLO " + plan.host);
    tls = false;
    if (!positive(ehlo, '2')) return refused(what, "EHLO", ehlo, "check the ferry-smtpd log");
    if (ehlo.find("STARTTLS") == std::string::npos)
        return {false, what, "not offered: remote servers send in clear", "set tls_cert_file and tls_key_file"};
    std::string go = smtp.command("STARTTLS");
    if (!positive(go, '2')) return refused(what, "STARTTLS", go, "check tls_cert_file and tls_key_file");
    if (auto err = smtp.starttls(plan.host); !err.empty())
        return {false, what, "handshake failed: " + err, "check tls_cert_file, tls_key_file and tls_priority"};
    tls = true;
    if (!positive(smtp.command("EHLO " + plan.host), '2')) return {false, what, "no EHLO reply over TLS", "check the ferry-smtpd log"};
    return {true, what, smtp.tls_description(), ""};
}

// The SMTP transaction; the queue id of the accepted probe, or "" (with the failing verdict added).
std::string transact(SmtpTalk& smtp, const ProbePlan& plan, const std::string& token, std::vector<Verdict>& out) {
    std::string what = "probe accepted for " + plan.recipient;
    std::string sender = "postmaster@" + plan.domain;
    std::string mail = smtp.command("MAIL FROM:<" + sender + ">");
    if (!positive(mail, '2')) {
        std::string spf = mail.find("5.7.23") != std::string::npos ? "let this host send for " + plan.domain + " in its SPF record"
                                                                     : "check the ferry-smtpd log";
        out.push_back(refused(what, "MAIL FROM:<" + sender + ">", mail, spf));
        return "";
    }
    std::string unknown = "no-such-user-" + token + "@" + plan.domain;
    out.push_back(judge_unknown_recipient(unknown, smtp.command("RCPT TO:<" + unknown + ">")));
    std::string rcpt = smtp.command("RCPT TO:<" + plan.recipient + ">");
    if (!positive(rcpt, '2')) {
        out.push_back(refused(what, "RCPT TO", rcpt, "give " + plan.recipient + " a mailbox: ferry-admin account add or alias add"));
        return "";
    }
    std::string data = smtp.command("DATA");
    std::string done = positive(data, '3') && smtp.send(probe_message(plan, token, sender)) ? smtp.reply() : data;
    if (!positive(done, '2')) {
        out.push_back(refused(what, "DATA", done, "check the ferry-smtpd log"));
        return "";
    }
    out.push_back({true, what, first_line(done), ""});
    smtp.command("QUIT");
    std::string id = queue_id(done);
    return id.empty() ? "?" : id;
}

std::vector<std::string> entries(const std::string& dir) {
    std::vector<std::string> names;
    if (DIR* d = opendir(dir.c_str())) {
        while (dirent* e = readdir(d))
            if (e->d_name[0] != '.' || (e->d_name[1] != '\0' && strcmp(e->d_name, "..") != 0)) names.push_back(e->d_name);
        closedir(d);
    }
    return names;
}

}  // namespace

std::vector<std::string> probe_mailboxes(const Config& config, const std::string& address, std::string& error) {
    auto store = open_account_db(config);
    auto lookup = aliases::store_lookup(*store);
    aliases::Limits limits{static_cast<int>(config.integer("alias_max_depth")),
                           static_cast<size_t>(config.integer("alias_max_targets"))};
    auto targets = aliases::expand(address, lookup, limits);
    if (!targets) return error = targets.error().what(), std::vector<std::string>{};
    std::vector<std::string> dirs;
    for (const auto& t : *targets) {
        auto info = lookup(t);
        if (!info || !info->account) continue;
        if (auto dir = maildir::account_maildir(config.str("mail_dir"), t)) dirs.push_back(*dir);
    }
    if (dirs.empty()) error = address + " reaches no mailbox on this host";
    return dirs;
}

std::string header_block(const std::string& text) {
    size_t end = text.find("\n\n");
    return end == std::string::npos ? text : text.substr(0, end + 1);
}

// A user's rules may file the message into any folder, so every folder is looked at.
std::string find_message(const std::string& maildir, time_t since, const std::function<bool(const std::string&)>& wanted,
                         std::string& where) {
    std::vector<std::string> folders{maildir};
    for (const auto& name : entries(maildir))
        if (name[0] == '.') folders.push_back(maildir + "/" + name);
    for (const auto& folder : folders)
        for (const char* sub : {"/new", "/cur"})
            for (const auto& name : entries(folder + sub)) {
                std::string path = folder + sub + "/" + name;
                struct stat st;
                if (stat(path.c_str(), &st) != 0 || st.st_mtime + 5 < since) continue;
                std::ifstream in(path, std::ios::binary);
                std::string text(65536, '\0');
                in.read(text.data(), static_cast<std::streamsize>(text.size()));
                text.resize(static_cast<size_t>(in.gcount()));
                if (wanted(text)) return where = path, text;
            }
    return "";
}

std::vector<Verdict> probe_round_trip(const Config& config, const ProbePlan& plan) {
    std::vector<Verdict> out;
    std::string at = plan.address + " port " + std::to_string(plan.port);
    Fd fd = connect_to(plan.address, plan.port, 5000, plan.source);
    if (!fd.valid() && !plan.source.empty()) fd = connect_to(plan.address, plan.port, 5000);  // not an address of ours
    if (!fd.valid())
        return {{false, "probe: SMTP at " + at, std::string("cannot connect: ") + strerror(errno),
                 "start ferry-smtpd, check smtpd_listen and open the port in the firewall"}};
    SmtpTalk smtp(std::move(fd), kTimeoutMs);
    std::string greeting = smtp.reply();
    if (!positive(greeting, '2'))
        return {refused("probe: SMTP at " + at, "greeting", greeting, "something other than ferry-smtpd answers there")};
    bool tls = false;
    out.push_back(hello(smtp, plan, tls));
    std::string token = probe_token();
    time_t start = time(nullptr);
    std::string id = transact(smtp, plan, token, out);
    if (id.empty()) return out;
    std::string what = "probe delivered to the mailbox of " + plan.recipient;
    std::string error;
    auto dirs = probe_mailboxes(config, plan.recipient, error);
    if (dirs.empty()) return out.push_back({false, what, error, "probe an address with a mailbox here: --probe ADDRESS"}), out;
    auto begin = std::chrono::steady_clock::now();
    std::string headers, where;
    while (headers.empty() && std::chrono::steady_clock::now() - begin < plan.wait) {
        for (const auto& dir : dirs)
            if (headers.empty())
                headers = header_block(find_message(dir, start, [&](const std::string& text) {
                    return header_field(header_block(text), "X-Ferry-Probe") == token;
                }, where));
        if (headers.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (headers.empty())
        return out.push_back({false, what, "queue id " + id + " is not there after " + std::to_string(plan.wait.count()) + " s",
                              "follow it in the log (grep " + id + "): are ferry-qmgr and ferry-mda running? ferry-admin queue show " + id}), out;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    char took[32];
    snprintf(took, sizeof took, "%.1f s", secs);
    out.push_back({true, what, "queue id " + id + ", in " + took + ", " + where, ""});
    for (auto& v : judge_probe_headers(plan.host, tls, headers)) out.push_back(std::move(v));
    return out;
}

}  // namespace ferry::admin

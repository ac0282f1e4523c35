// Thunderbird's autoconfig file (config-v1.1.xml) for a hosted domain: the IMAP, POP3 and submission servers.
#include <string>

#include "common/admin/mail_setup.hpp"

namespace ferry::admin {

namespace {

// One <incomingServer> or <outgoingServer>; users log in with their whole address, over TLS.
std::string server(const MailSetup& s, const ClientService& svc) {
    bool outgoing = svc.name.rfind("submission", 0) == 0;
    std::string type = outgoing ? "smtp" : svc.name.substr(0, 4);
    std::string element = outgoing ? "outgoingServer" : "incomingServer";
    return "    <" + element + " type=\"" + type + "\">\n"
           "      <hostname>" + s.host + "</hostname>\n"
           "      <port>" + std::to_string(svc.port) + "</port>\n"
           "      <socketType>" + (svc.implicit_tls ? "SSL" : "STARTTLS") + "</socketType>\n"
           "      <username>%EMAILADDRESS%</username>\n"
           "      <authentication>password-cleartext</authentication>\n"
           "    </" + element + ">\n";
}

// Clients try servers in the order given: implicit TLS first (RFC 8314), IMAP before POP3.
std::string servers(const MailSetup& s, bool outgoing) {
    static const char* const kOrder[] = {"imaps", "imap", "pop3s", "pop3", "submissions", "submission"};
    std::string out;
    for (const char* name : kOrder)
        for (const auto& svc : s.services)
            if (svc.name == name && svc.port && (svc.name.rfind("submission", 0) == 0) == outgoing)
                out += server(s, svc);
    return out;
}

}  // namespace

std::string thunderbird_autoconfig(const MailSetup& s) {
    return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
           "<!-- Mail client settings for " + s.domain + " (ferry-admin autoconfig); serve at\n"
           "     https://autoconfig." + s.domain + "/mail/config-v1.1.xml -->\n"
           "<clientConfig version=\"1.1\">\n"
           "  <emailProvider id=\"" + s.domain + "\">\n"
           "    <domain>" + s.domain + "</domain>\n"
           "    <displayName>" + s.domain + " mail</displayName>\n"
           "    <displayShortName>" + s.domain + "</displayShortName>\n" +
           servers(s, false) + servers(s, true) +
           "  </emailProvider>\n"
           "</clientConfig>\n";
}

}  // namespace ferry::admin

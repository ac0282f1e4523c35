// Mail client settings for a hosted domain: Thunderbird's config-v1.1.xml, Apple's .mobileconfig, Outlook's autodiscover.xml.
#include <cstdio>
#include <initializer_list>
#include <string>

#include "common/admin/mail_setup.hpp"
#include "common/verify/dkim_key.hpp"

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

// The first of `names` that ferry offers, in that order; nullptr when none is.
const ClientService* first_offered(const MailSetup& s, std::initializer_list<const char*> names) {
    for (const char* name : names)
        for (const auto& svc : s.services)
            if (svc.name == name && svc.port) return &svc;
    return nullptr;
}

// A UUID made from a hash of `name` (RFC 9562 version 8), so that a rerun writes the same profile.
std::string stable_uuid(const std::string& name) {
    std::string h = verify::dkim::sha256("ferry-admin autoconfig " + name);
    h[6] = static_cast<char>((h[6] & 0x0f) | 0x80);
    h[8] = static_cast<char>((h[8] & 0x3f) | 0x80);
    std::string out;
    char buf[3];
    for (int i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
        snprintf(buf, sizeof buf, "%02X", static_cast<unsigned char>(h[i]));
        out += buf;
    }
    return out;
}

std::string plist_key(const std::string& key, const std::string& value_element) {
    return "\t\t\t<key>" + key + "</key>\n\t\t\t" + value_element + "\n";
}

std::string plist_string(const std::string& key, const std::string& value) {
    return plist_key(key, "<string>" + value + "</string>");
}

// One <Protocol> of a POX response. Encryption (which overrides SSL) tells STARTTLS ("TLS") from implicit
// TLS ("SSL"); LoginName is left out: a static file cannot name each user, and Outlook then logs in with
// the address the user typed, which is the user name ferry expects.
std::string pox_protocol(const MailSetup& s, const char* type, const ClientService& svc) {
    return std::string("      <Protocol>\n"
                       "        <Type>") + type + "</Type>\n"
           "        <Server>" + s.host + "</Server>\n"
           "        <Port>" + std::to_string(svc.port) + "</Port>\n"
           "        <DomainRequired>off</DomainRequired>\n"
           "        <SPA>off</SPA>\n"
           "        <SSL>on</SSL>\n"
           "        <Encryption>" + (svc.implicit_tls ? "SSL" : "TLS") + "</Encryption>\n"
           "        <AuthRequired>on</AuthRequired>\n"
           "      </Protocol>\n";
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

Result<std::string> apple_mobileconfig(const MailSetup& s) {
    const ClientService* in = first_offered(s, {"imaps", "imap", "pop3s", "pop3"});
    const ClientService* out = first_offered(s, {"submissions", "submission"});
    if (!in || !out) return make_error(0, "", "no public IMAP or POP3 listener and submission listener to name for " + s.domain);
    bool imap = in->name.rfind("imap", 0) == 0;
    // UseSSL true on a STARTTLS port makes Mail and iOS upgrade the connection with STARTTLS.
    std::string mail = plist_string("EmailAccountDescription", s.domain) +
                       plist_string("EmailAccountType", imap ? "EmailTypeIMAP" : "EmailTypePOP") +
                       plist_string("IncomingMailServerAuthentication", "EmailAuthPassword") +
                       plist_string("IncomingMailServerHostName", s.host) +
                       plist_key("IncomingMailServerPortNumber", "<integer>" + std::to_string(in->port) + "</integer>") +
                       plist_key("IncomingMailServerUseSSL", "<true/>") +
                       plist_string("OutgoingMailServerAuthentication", "EmailAuthPassword") +
                       plist_string("OutgoingMailServerHostName", s.host) +
                       plist_key("OutgoingMailServerPortNumber", "<integer>" + std::to_string(out->port) + "</integer>") +
                       plist_key("OutgoingMailServerUseSSL", "<true/>") +
                       plist_key("OutgoingPasswordSameAsIncomingPassword", "<true/>") +
                       plist_string("PayloadDisplayName", s.domain + " mail account") +
                       plist_string("PayloadIdentifier", "ferry.autoconfig." + s.domain + ".mail") +
                       plist_string("PayloadType", "com.apple.mail.managed") +
                       plist_string("PayloadUUID", stable_uuid(s.domain + " mail")) +
                       plist_key("PayloadVersion", "<integer>1</integer>");
    return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
           "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
           "<!-- Mail account profile for " + s.domain + " (ferry-admin autoconfig), unsigned -->\n"
           "<plist version=\"1.0\">\n"
           "<dict>\n"
           "\t<key>PayloadContent</key>\n"
           "\t<array>\n"
           "\t\t<dict>\n" + mail + "\t\t</dict>\n"
           "\t</array>\n"
           "\t<key>PayloadDisplayName</key>\n\t<string>" + s.domain + " mail</string>\n"
           "\t<key>PayloadIdentifier</key>\n\t<string>ferry.autoconfig." + s.domain + "</string>\n"
           "\t<key>PayloadRemovalDisallowed</key>\n\t<false/>\n"
           "\t<key>PayloadType</key>\n\t<string>Configuration</string>\n"
           "\t<key>PayloadUUID</key>\n\t<string>" + stable_uuid(s.domain + " profile") + "</string>\n"
           "\t<key>PayloadVersion</key>\n\t<integer>1</integer>\n"
           "</dict>\n"
           "</plist>\n";
}

std::string outlook_autodiscover(const MailSetup& s) {
    std::string protocols;
    if (auto* svc = first_offered(s, {"imaps", "imap"})) protocols += pox_protocol(s, "IMAP", *svc);
    if (auto* svc = first_offered(s, {"pop3s", "pop3"})) protocols += pox_protocol(s, "POP3", *svc);
    if (auto* svc = first_offered(s, {"submissions", "submission"})) protocols += pox_protocol(s, "SMTP", *svc);
    return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
           "<!-- Mail client settings for " + s.domain + " (ferry-admin autoconfig); answer POSTs to\n"
           "     https://autodiscover." + s.domain + "/autodiscover/autodiscover.xml with this file -->\n"
           "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n"
           "  <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\n"
           "    <Account>\n"
           "      <AccountType>email</AccountType>\n"
           "      <Action>settings</Action>\n" + protocols +
           "    </Account>\n"
           "  </Response>\n"
           "</Autodiscover>\n";
}

}  // namespace ferry::admin

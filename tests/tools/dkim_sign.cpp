// dkim-sign: ferry's DKIM signer over a message on stdin, with a chosen canonicalisation, for the interop tests.
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "common/verify/dkim.hpp"

using namespace ferry::verify::dkim;

namespace {

Canon canon_of(const std::string& s) { return s == "simple" ? Canon::simple : Canon::relaxed; }

std::string read_all(std::istream& in) {
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

}  // namespace

// dkim-sign KEY.pem DOMAIN SELECTOR HEADER-CANON/BODY-CANON < message: prints the DKIM-Signature: field.
int main(int argc, char** argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: dkim-sign KEY.pem DOMAIN SELECTOR simple|relaxed/simple|relaxed < message\n");
        return 64;
    }
    std::ifstream pem_file(argv[1]);
    auto key = PrivateKey::from_pem(read_all(pem_file));
    if (!key) return fprintf(stderr, "%s\n", key.error().what().c_str()), 1;
    std::string canon = argv[4];
    size_t slash = canon.find('/');
    SignOptions o{argv[2], argv[3], {"from", "to", "subject", "date", "message-id", "mime-version", "content-type"},
                  canon_of(canon.substr(0, slash)), canon_of(slash == std::string::npos ? "simple" : canon.substr(slash + 1)),
                  std::time(nullptr)};
    Signer signer(*key, o);
    signer.feed(read_all(std::cin));
    auto field = signer.finish();
    if (!field) return fprintf(stderr, "%s\n", field.error().what().c_str()), 1;
    fputs(field->c_str(), stdout);
    return 0;
}

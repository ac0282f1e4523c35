// Runs a fuzz target without libFuzzer: built-in seeds, then a fixed number of deterministic mutations,
// so every ./dev test exercises the fuzz targets with g++ (crash, abort or sanitizer report = failure).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

const std::vector<std::string> kSeeds = {
    "EHLO client.test\r\nMAIL FROM:<a@b.test> SIZE=100 BODY=8BITMIME\r\nRCPT TO:<\"x y\"@example.test>\r\nDATA\r\n",
    "RCPT TO:<@a.test,@b.test:user@[127.0.0.1]>\r\nVRFY x\r\nQUIT\r\n",
    "Subject: hi\r\n\r\n..dot\r\nbody\n.\nsmuggled\r\n.\r\n",
    "Subject: a\r\n\r\nx\r.\r\nMAIL FROM:<evil@x>\r\n.\r\n",
    "USER demo@example.test\r\nPASS secret\r\nLIST 1\r\nTOP 1 10\r\nAUTH PLAIN AGRlbW8Ac2VjcmV0\r\nQUIT\r\n",
    "ferry-queue 1\nid 0123456789ABCDEF\narrival 1\nsender a@b\nclient 1.2.3.4\nhelo h\nrcpt x@y\ndata\nhello\n\nend 6\n",
    "VERSION ferry-qmgr 1 0\nNEW ABCDEF0123\n",
    "spool_dir = /x\nsmtpd.smtpd_timeout = 5s\nbad line\n",
    "AGRlbW8Ac2VjcmV0",
};

std::string mutate(std::string s, std::mt19937& rng) {
    static const char alphabet[] = "\r\n.:<>@\"\\= ,[]\0AZaz09\xff";
    int ops = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < ops; ++i) {
        size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
        switch (rng() % 5) {
            case 0: if (!s.empty() && pos < s.size()) s[pos] = static_cast<char>(rng()); break;
            case 1: s.insert(pos, 1, alphabet[rng() % (sizeof alphabet - 1)]); break;
            case 2: if (pos < s.size()) s.erase(pos, 1 + rng() % 8); break;
            case 3: if (!s.empty()) s.insert(pos, s.substr(rng() % s.size(), rng() % 64)); break;
            case 4: s += kSeeds[rng() % kSeeds.size()].substr(0, rng() % 80); break;
        }
    }
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    long iterations = argc > 1 ? std::atol(argv[1]) : 20000;
    std::mt19937 rng(20261122);
    for (const auto& seed : kSeeds)
        LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(seed.data()), seed.size());
    std::string cur = kSeeds[0];
    for (long i = 0; i < iterations; ++i) {
        if (i % 50 == 0) cur = kSeeds[rng() % kSeeds.size()];
        cur = mutate(cur, rng);
        if (cur.size() > 4096) cur.resize(4096);
        LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(cur.data()), cur.size());
    }
    std::printf("%ld inputs, no crash\n", iterations + static_cast<long>(kSeeds.size()));
    return 0;
}

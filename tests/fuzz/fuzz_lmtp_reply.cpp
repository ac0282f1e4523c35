// Fuzz target: the SMTP/LMTP reply reader, fed line by line as ferry-qmgr's LMTP client reads replies.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mta/qmgr/lmtp_client.hpp"

using ferry::qmgr::ReplyReader;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    ReplyReader reader;
    while (!in.empty()) {
        size_t nl = in.find('\n');
        std::string_view line = in.substr(0, nl);
        in.remove_prefix(nl == std::string_view::npos ? in.size() : nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        switch (reader.feed(line)) {
            case ReplyReader::Status::more: break;
            case ReplyReader::Status::done: {
                auto reply = reader.take();
                // A finished reply has a code from 200 to 599 and its text starts with that code.
                if (reply.code < 200 || reply.code > 599) std::abort();
                if (reply.text.size() < 3 || std::atoi(reply.text.substr(0, 3).c_str()) != reply.code) std::abort();
                break;
            }
            case ReplyReader::Status::error:
                if (reader.error().empty()) std::abort();
                reader = ReplyReader();  // the client drops the connection: a fresh reader for the next
                break;
        }
    }
    return 0;
}

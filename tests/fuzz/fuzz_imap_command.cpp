// Fuzz target: IMAP command framing and typed parsing, as ferry-imapd reads its input.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "imapd/command.hpp"
#include "imapd/mutf7.hpp"
#include "imapd/reader.hpp"

namespace {

// Small limits, so that the fuzzer reaches every one of them within its input size.
ferry::imap::Limits fuzz_limits() {
    ferry::imap::Limits l;
    l.max_line = 512;
    l.max_literal = 256;
    l.max_command = 2048;
    l.max_depth = 8;
    l.max_args = 64;
    l.max_literal_minus = 128;
    return l;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace ferry::imap;
    std::string_view in(reinterpret_cast<const char*>(data), size);
    // The first byte picks the literal mode and whether the input arrives in small pieces.
    uint8_t mode = size > 0 ? data[0] : 0;
    if (size > 0) in.remove_prefix(1);
    CommandReader reader(fuzz_limits(), LiteralMode(mode % 3));
    size_t piece = (mode & 0x10) ? 1 + (mode >> 5) : in.size() + 1;
    while (!in.empty()) {
        std::string_view chunk = in.substr(0, piece);
        in.remove_prefix(chunk.size());
        for (;;) {
            Step st = reader.next(chunk);
            if (st.kind == Step::Kind::command) {
                bool idle = st.command.name == "IDLE" || st.command.name == "AUTHENTICATE";
                if (auto cmd = parse_command(std::move(st.command), reader.limits()); cmd.ok()) {
                    if (auto* a = std::get_if<MailboxArgs>(&cmd.value().args)) (void)mutf7_decode(a->mailbox);
                    if (auto* f = std::get_if<FetchArgs>(&cmd.value().args)) (void)resolve(f->set, 1000, (mode & 8) != 0);
                }
                if (idle) reader.read_line();
            } else if (st.kind == Step::Kind::line) {
                (void)is_idle_done(st.line);
                if (auto utf8 = mutf7_decode(st.line)) (void)mutf7_encode(*utf8);
            } else if (st.kind == Step::Kind::error && st.error.action == ReadError::Action::close) {
                return 0;
            } else if (st.kind == Step::Kind::need_more && chunk.empty()) {
                break;
            }
        }
    }
    return 0;
}

// The CRLF/dot-stuffing wire encoder: a stored message (LF line ends) as SMTP/LMTP DATA or a POP3 multi-line reply.
#include "common/mail/wire.hpp"

namespace ferry::mail {

void WireEncoder::feed(std::string_view in, std::string& out) {
    size_t pos = 0;
    while (pos < in.size()) {
        size_t nl = in.find('\n', pos);
        size_t end = nl == std::string_view::npos ? in.size() : nl;
        if (end > pos) {
            if (at_line_start_ && in[pos] == '.') out += '.';
            out.append(in.data() + pos, end - pos);
            last_cr_ = in[end - 1] == '\r';
            at_line_start_ = false;
        }
        if (nl == std::string_view::npos) return;
        out += last_cr_ ? "\n" : "\r\n";
        at_line_start_ = true;
        last_cr_ = false;
        pos = nl + 1;
    }
}

void WireEncoder::finish(std::string& out) {
    if (!at_line_start_) out += last_cr_ ? "\n" : "\r\n";
    out += ".\r\n";
    at_line_start_ = true;
    last_cr_ = false;
}

std::string wire_encode(std::string_view lf_message) {
    std::string out;
    out.reserve(lf_message.size() + lf_message.size() / 32 + 8);
    WireEncoder enc;
    enc.feed(lf_message, out);
    enc.finish(out);
    return out;
}

}  // namespace ferry::mail

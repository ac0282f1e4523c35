// ferry-relay behind the LMTP server: each transaction is one message for one destination domain, sent on over SMTP.
#include "mta/relay/backend.hpp"

#include "common/base/log.hpp"
#include "common/mail/address.hpp"

namespace ferry::relay {

namespace {

constexpr size_t kHeadBytes = 4096;  // enough for the Received: header smtpd put on top

// The queue id in the first "Received: ... id <qid>" line of the message, "" when there is none.
std::string queue_id_of(const std::string& head) {
    if (head.rfind("Received:", 0) != 0) return "";
    size_t end = 0;  // the end of the first field: a line end not followed by a folded line
    while ((end = head.find('\n', end)) != std::string::npos && end + 1 < head.size() &&
           (head[end + 1] == ' ' || head[end + 1] == '\t'))
        ++end;
    std::string field = head.substr(0, end);
    size_t at = field.find(" id ");
    if (at == std::string::npos) return "";
    size_t stop = field.find_first_of(" ;\t\r\n", at + 4);
    return field.substr(at + 4, stop == std::string::npos ? std::string::npos : stop - at - 4);
}

}  // namespace

RelayBackend::RelayBackend(RelayContext& ctx, std::string session_id)
    : ctx_(ctx), session_id_(std::move(session_id)), msg_(std::make_unique<OutboundMessage>()) {}

RelayBackend::~RelayBackend() = default;

void RelayBackend::begin(std::string_view sender) {
    reset();
    msg_ = std::make_unique<OutboundMessage>();
    msg_->sender = std::string(sender);
    msg_->utf8_envelope = is_utf8_address(sender);
}

std::optional<Error> RelayBackend::recipient(std::string_view address) {
    std::string domain = domain_of(address);
    if (domain.empty()) return make_error(550, "5.1.3", "<" + std::string(address) + ">: no domain to send to");
    if (domain_.empty()) domain_ = domain;
    // One destination per transaction (qmgr groups them so): another domain waits for the next one.
    if (domain != domain_) return make_error(452, "4.5.3", "Too many recipients: one destination domain per transaction");
    msg_->recipients.emplace_back(address);
    msg_->rcpt_params.emplace_back();
    msg_->utf8_envelope |= is_utf8_address(address);
    return std::nullopt;
}

void RelayBackend::mail(std::string_view sender, const smtp::MailParams& params) {
    begin(sender);
    msg_->params = params;
}

std::optional<Error> RelayBackend::rcpt(std::string_view address, const smtp::RcptParams& params) {
    auto refused = recipient(address);
    if (!refused) msg_->rcpt_params.back() = params;
    return refused;
}

void RelayBackend::data_start() {
    head_.clear();
    write_error_.reset();
    if (auto r = writer_.open(ctx_.settings.temp_dir, &ctx_.settings.dkim, &ctx_.settings.arc); !r) {
        log::errorx("%s: %s", session_id_.c_str(), r.error().what().c_str());
        write_error_ = make_error(451, "4.3.0", "Temporary failure storing the message");
    }
}

void RelayBackend::data(std::string_view chunk) {
    if (head_.size() < kHeadBytes) head_.append(chunk.substr(0, kHeadBytes - head_.size()));
    if (write_error_) return;
    if (auto r = writer_.append(chunk); !r) {
        log::errorx("%s: %s", session_id_.c_str(), r.error().what().c_str());
        write_error_ = make_error(451, "4.3.0", "Temporary failure storing the message");
    }
}

void RelayBackend::end_of_data(const std::optional<Error>& refused, ReplyFn reply) {
    std::optional<Error> failure = refused ? refused : write_error_;
    size_t n = msg_->recipients.size();
    if (failure) {
        log::info("%s: from=<%s> rejected: %s", session_id_.c_str(), msg_->sender.c_str(), failure->what().c_str());
        for (size_t i = n; i > 0; --i) reply(*failure);  // the last one may reset this backend
        return;
    }
    std::string qid = queue_id_of(head_);
    msg_->log_id = session_id_ + (qid.empty() ? "" : ": " + qid);
    (void)writer_.finish(*msg_);
    log::info("%s: from=<%s> size=%llu nrcpt=%zu domain=%s", msg_->log_id.c_str(), msg_->sender.c_str(),
              static_cast<unsigned long long>(msg_->data.length), n, domain_.c_str());
    transfer_ = std::make_unique<Transfer>(ctx_, *msg_, domain_, [reply](std::vector<smtp::LmtpBackend::Reply> replies) {
        // The last reply may reset this backend, destroying the transfer: `reply` is a copy.
        for (auto& r : replies) reply(std::move(r));
    });
    transfer_->start();
}

void RelayBackend::reset() {
    // Destroying a transfer in flight drops its connection: the peer sees the message abandoned.
    transfer_.reset();
    msg_ = std::make_unique<OutboundMessage>();
    domain_.clear();
    write_error_.reset();
}

}  // namespace ferry::relay

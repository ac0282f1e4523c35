// The qmgr_socket listener: smtpd's "NEW <queue id>" notices and the queue tools' control lines (common/proto/qmgr.hpp).
#include "mta/qmgr/notify_listener.hpp"

#include "common/base/log.hpp"
#include "common/event/line_framer.hpp"
#include "common/event/net.hpp"
#include "common/proto/qmgr.hpp"

namespace ferry::qmgr {

namespace proto = ferry::proto::qmgr;

// One notifying connection: a VERSION line first, then NEW or control lines. Anything else drops it, never qmgr.
class NotifyListener::Peer final : public Stream::Handler, public ServedSession {
public:
    Peer(NotifyListener& owner, Fd fd, std::string id)
        : owner_(owner), id_(std::move(id)), stream_(owner.base_, std::move(fd), this) {}

    void on_input(Stream& stream) noexcept override {
        while (!stream.closing()) {
            auto step = lines_.next(stream.input());
            if (step.status == LineFramer::Status::need_more) return;
            if (step.status == LineFramer::Status::too_long)
                return refuse("line longer than " + std::to_string(kMaxLine) + " bytes");
            handle(step.line);
        }
    }

    void on_close(Stream&, const std::string& reason) noexcept override {
        log::debug("%s: notify peer closed (%s)", id_.c_str(), reason.c_str());
        owner_.peers_.release(this);  // destroyed from the loop, after this returns
    }

    // smtpd may keep its connection open for as long as it runs (no idle timer, no lifetime).
    void on_timeout(Stream&) noexcept override {}
    void on_lifetime_expired() override {}
    void on_stop() override { stream_.close("qmgr stopping"); }

private:
    void handle(const std::string& line) {
        auto m = proto::decode(line);
        if (!m) return refuse(m.error().text + ": \"" + printable(line) + "\"");
        if (m->type == proto::Message::version) {
            if (m->major != proto::kMajor) {
                return refuse("peer speaks " + std::string(proto::kService) + " protocol " + std::to_string(m->major) +
                              "." + std::to_string(m->minor) + ", this qmgr speaks " + std::to_string(proto::kMajor) +
                              "." + std::to_string(proto::kMinor));
            }
            versioned_ = true;
            return;
        }
        if (!versioned_) return refuse("NEW before VERSION");
        if (m->type != proto::Message::new_message) return control(*m);
        log::debug("%s: %s: notified", id_.c_str(), m->id.c_str());
        owner_.on_new_(m->id);
    }

    void control(const proto::Message& m) {
        proto::Reply r{proto::Reply::error, "control commands are not served here"};
        if (owner_.on_control_) r = owner_.on_control_(m);
        stream_.write(proto::encode_reply(r));
    }

    void refuse(const std::string& why) {
        log::warnx("%s: notify peer: %s; closing the connection", id_.c_str(), why.c_str());
        stream_.abort(why);
    }

    static std::string printable(const std::string& s) {
        std::string out;
        for (char c : s.substr(0, 80)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
        return out;
    }

    NotifyListener& owner_;
    std::string id_;
    LineFramer lines_{kMaxLine + 2};  // kMaxLine octets before CR LF
    Stream stream_;
    bool versioned_ = false;
};

NotifyListener::NotifyListener(event_base* base, OnNew on_new, OnControl on_control)
    : base_(base), on_new_(std::move(on_new)), on_control_(std::move(on_control)),
      peers_(base, {kMaxPeers, 0, 0}, "N",
             [this](SessionSet::Accepted& a) -> std::unique_ptr<ServedSession> {
                 return std::make_unique<Peer>(*this, std::move(a.fd), a.id);
             },
             [this](const SessionSet::Accepted&, SessionSet::Refusal) {
                 log::warnx("notify: %zu connections already open; refusing another", peers_.size());
             }) {}

NotifyListener::~NotifyListener() = default;

Result<void> NotifyListener::listen(const std::string& path) {
    auto fd = net::listen_unix(path, 0660);
    if (!fd) return fd.error();
    if (auto r = peers_.listen(std::move(fd.value()), "qmgr " + path); !r) return r;
    peers_.enable();
    return {};
}

}  // namespace ferry::qmgr

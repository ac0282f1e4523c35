// The qmgr_socket listener: smtpd's "NEW <queue id>" notices (common/proto/qmgr.hpp, ferry-spool(5)).
#include "mta/qmgr/notify_listener.hpp"

#include "common/base/log.hpp"
#include "common/event/net.hpp"
#include "common/proto/qmgr.hpp"

namespace ferry::qmgr {

namespace proto = ferry::proto::qmgr;

// One notifying connection: a VERSION line first, then NEW lines. Anything else drops it, never qmgr.
class NotifyListener::Peer final : public Stream::Handler {
public:
    Peer(NotifyListener& owner, Fd fd, unsigned number)
        : owner_(owner), number_(number), stream_(owner.base_, std::move(fd), this) {}

    void on_input(Stream& stream) override {
        while (!stream.closing()) {
            size_t len = 0;
            char* raw = evbuffer_readln(stream.input(), &len, EVBUFFER_EOL_LF);
            if (!raw) {
                if (evbuffer_get_length(stream.input()) > kMaxLine) refuse("line longer than " + std::to_string(kMaxLine) + " bytes");
                return;
            }
            std::string line(raw, len);
            free(raw);
            if (line.size() > kMaxLine) return refuse("line longer than " + std::to_string(kMaxLine) + " bytes");
            if (!line.empty() && line.back() == '\r') line.pop_back();
            handle(line);
        }
    }

    void on_close(Stream&, const std::string& reason) override {
        log::debug("notify peer %u: closed (%s)", number_, reason.c_str());
        owner_.drop(this);  // destroys this
    }

    // smtpd may keep its connection open for as long as it runs.
    void on_timeout(Stream&) override {}

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
        log::debug("%s: notified by peer %u", m->id.c_str(), number_);
        owner_.on_new_(m->id);
    }

    void refuse(const std::string& why) {
        log::warnx("notify peer %u: %s; closing the connection", number_, why.c_str());
        stream_.abort(why);
    }

    static std::string printable(const std::string& s) {
        std::string out;
        for (char c : s.substr(0, 80)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
        return out;
    }

    NotifyListener& owner_;
    unsigned number_;
    Stream stream_;
    bool versioned_ = false;
};

NotifyListener::NotifyListener(event_base* base, OnNew on_new) : base_(base), on_new_(std::move(on_new)) {}

NotifyListener::~NotifyListener() {
    listener_.reset();
    peers_.clear();
}

Result<void> NotifyListener::listen(const std::string& path) {
    auto fd = net::listen_unix(path, 0660);
    if (!fd) return fd.error();
    auto l = AcceptListener::open(base_, std::move(fd.value()), "qmgr " + path, on_accept, this);
    if (!l) return l.error();
    listener_ = std::move(l.value());
    return {};
}

void NotifyListener::on_accept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
    auto* self = static_cast<NotifyListener*>(arg);
    Fd conn(fd);
    if (self->peers_.size() >= kMaxPeers) {
        log::warnx("notify: %zu connections already open; refusing another", self->peers_.size());
        return;
    }
    auto peer = std::make_unique<Peer>(*self, std::move(conn), ++self->next_peer_);
    Peer* p = peer.get();
    self->peers_.emplace(p, std::move(peer));
}

void NotifyListener::drop(Peer* peer) { peers_.erase(peer); }

}  // namespace ferry::qmgr

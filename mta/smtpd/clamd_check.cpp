// The virus check of a received message: clamd's INSTREAM protocol on a worker thread, every step within clamd_timeout.
#include "mta/smtpd/clamd_check.hpp"

#include "common/base/log.hpp"

namespace ferry::smtpd {

namespace {

class ClamdRun : public CheckRun {
public:
    ClamdRun(WorkerPool& pool, std::shared_ptr<bool> alive) : pool_(pool), alive_(std::move(alive)) {}
    ~ClamdRun() override {
        *alive_ = false;
        pool_.cancel(job_);
    }
    WorkerPool::JobId job_ = 0;

private:
    WorkerPool& pool_;
    std::shared_ptr<bool> alive_;  // read and written on the loop only
};

Finding finding_of(const ClamdVerdict& v, const CheckedMessage& m, const ClamdSettings& s) {
    Finding f;
    switch (v.kind) {
        case ClamdVerdict::Kind::clean:
            f.fields = scan::scanned_field(s.hostname);
            break;
        case ClamdVerdict::Kind::found:
            f.refusal = make_error(554, "5.7.1", "Message refused: virus found: " + v.text, "clamd: " + v.text + " FOUND");
            break;
        case ClamdVerdict::Kind::error:
            log::warnx("%s: %s: clamd: %s", m.session.c_str(), m.id.c_str(), v.text.c_str());
            if (s.fail_open) {
                log::warnx("%s: %s: accepted unscanned (virus_scan_fail_open)", m.session.c_str(), m.id.c_str());
                f.fields = scan::unscanned_field(s.hostname);
                break;
            }
            f.refusal = make_error(451, "4.7.1", "Virus scan unavailable, try again later", "clamd: " + v.text);
            break;
    }
    return f;
}

class ClamdCheck : public MessageCheck {
public:
    ClamdCheck(WorkerPool& pool, ClamdSettings settings) : pool_(pool), settings_(std::make_shared<ClamdSettings>(std::move(settings))) {}
    const char* name() const override { return "clamd"; }

    std::unique_ptr<CheckRun> start(std::shared_ptr<const CheckedMessage> m, Done done) override {
        auto alive = std::make_shared<bool>(true);
        auto run = std::make_unique<ClamdRun>(pool_, alive);
        auto verdict = std::make_shared<ClamdVerdict>();
        run->job_ = pool_.submit(
            [m, verdict, s = settings_] {
                auto read = [&data = m->data](uint64_t at, char* buf, size_t len) { return data.read(at, buf, len); };
                *verdict = scan::clamd_scan(s->address, read, s->timeout);
            },
            [m, verdict, alive, s = settings_, done = std::move(done)] {
                if (*alive) done(finding_of(*verdict, *m, *s));  // may drop the run: nothing after this
            });
        return run;
    }

private:
    WorkerPool& pool_;
    std::shared_ptr<const ClamdSettings> settings_;
};

}  // namespace

std::unique_ptr<MessageCheck> make_clamd_check(WorkerPool& pool, ClamdSettings settings) {
    return std::make_unique<ClamdCheck>(pool, std::move(settings));
}

}  // namespace ferry::smtpd

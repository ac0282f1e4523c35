// ferry-admin queue list|show (read from the spool) and flush|hold|release|delete|requeue (through ferry-qmgr).
#include <cstdio>

#include "common/admin/admin.hpp"
#include "common/proto/qmgr_client.hpp"
#include "common/spool/queue_listing.hpp"

namespace ferry::admin {

namespace {

namespace qp = proto::qmgr;

int list(const Context& ctx) {
    auto entries = spool::read_queue(ctx.config.str("spool_dir"));
    if (!entries) return fail(kExitTemp, entries.error().what());
    fputs(spool::format_listing(*entries).c_str(), stdout);
    return kExitOk;
}

int show(const Context& ctx, const std::string& id) {
    std::string dir = ctx.config.str("spool_dir");
    auto entry = spool::read_queue_entry(dir, id);
    if (!entry) return fail(kExitTemp, entry.error().what());
    if (!entry->has_value()) return fail(kExitUser, "no message " + id + " in the queue");
    auto header = spool::read_header_section(dir, id);
    if (!header) return fail(kExitTemp, header.error().what());
    fputs(spool::format_entry(**entry, *header).c_str(), stdout);
    return kExitOk;
}

// One control line to ferry-qmgr; its answer is printed, its status becomes the exit status.
int control(const Context& ctx, qp::Message::Type type, const std::string& arg) {
    auto reply = qp::send_control(ctx.config.str("qmgr_socket"), type, arg);
    if (!reply) return fail(kExitTemp, reply.error().what());
    switch (reply->status) {
        case qp::Reply::ok: printf("%s\n", reply->text.c_str()); return kExitOk;
        case qp::Reply::unknown: return fail(kExitUser, reply->text);
        case qp::Reply::busy: return fail(kExitTemp, reply->text);
        case qp::Reply::error: return fail(kExitTemp, "ferry-qmgr: " + reply->text);
    }
    return kExitTemp;
}

}  // namespace

int queue_command(const Context& ctx, const std::string& verb, const Args& args) {
    const auto& w = args.words;
    if (verb == "list" && w.empty()) return list(ctx);
    if (verb == "flush" && w.size() <= 1) return control(ctx, qp::Message::flush, w.empty() ? "" : w[0]);
    static const std::pair<const char*, qp::Message::Type> by_id[] = {
        {"hold", qp::Message::hold}, {"release", qp::Message::release}, {"delete", qp::Message::remove},
        {"requeue", qp::Message::requeue}};
    if (w.size() == 1 && (verb == "show" || verb == "hold" || verb == "release" || verb == "delete" || verb == "requeue")) {
        if (!qp::valid_queue_id(w[0])) return fail(kExitUser, "not a queue id: " + w[0]);
        if (verb == "show") return show(ctx, w[0]);
        for (const auto& [name, type] : by_id)
            if (verb == name) return control(ctx, type, w[0]);
    }
    return fail(kExitUser,
                "usage: ferry-admin queue list | show <id> | flush [domain] | hold|release|delete|requeue <id>");
}

}  // namespace ferry::admin

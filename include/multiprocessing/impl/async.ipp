// Out-of-line members of the classes in <multiprocessing/detail/async.hpp>: inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION
// (so other files neither parse nor instantiate them).
#pragma once

#include "multiprocessing/detail/async.hpp"

namespace multiprocessing::managers::detail {

MULTIPROCESSING_DECL async_channel::async_channel(std::unique_ptr<client_connection> c) : conn_(std::move(c)) {
    reader_ = std::thread([this] { read_loop(); });
    reader_.detach();  // channels live as long as the process; never joined
}

MULTIPROCESSING_DECL void async_channel::read_loop() {
    // Reading and sending touch disjoint state of the Connection, so
    // this thread reads while submitters write.
    try {
        for (;;) {
            auto f = conn_->conn.recv_frame(conn_->conn.max_frame());
            multiprocessing::detail::received_blocks_scope unclaimed_blocks;
            if (f.second < sizeof(ReplyHeader)) throw ProcessError("short reply");
            ReplyHeader h;
            std::memcpy(&h, f.first, sizeof h);
            completion done;
            {
                std::lock_guard<std::mutex> p(pending_mu_);
                if (pending_.empty() || pending_.front().first != h.request_id)
                    throw ProcessError("reply to an unknown request");
                done = std::move(pending_.front().second);
                pending_.pop_front();
            }
            reader body_rd{f.first + sizeof h, f.second - sizeof h};
            if (h.flags & reply_gives_refs) {
                if (conn_->owner) conn_->owner->take_given(body_rd);
                else endpoint::strip_given(body_rd);  // a channel cut off by fork: its session is gone
            }
            const char* body = body_rd.p;
            std::size_t n = body_rd.n;
            owed_scope unclaimed;  // the completion decodes here; what it leaves goes back
            if (h.flags & reply_wants_ack) {
                // Acknowledged before the future is set: see endpoint::roundtrip.
                try {
                    std::lock_guard<std::mutex> g(send_mu_);
                    std::vector<char> ack;
                    begin_request(ack, kind::ack, h.request_id, 0, 1);
                    conn_->conn.send_frame(ack);
                } catch (...) {
                    done->complete(nullptr, 0, std::current_exception());
                    throw;
                }
            }
            if (h.status == static_cast<std::uint8_t>(status::ok)) {
                done->complete(body, n, nullptr);
            } else {
                try {
                    throw_error(reader{body, n});
                } catch (...) {
                    done->complete(nullptr, 0, std::current_exception());
                }
            }
        }
    } catch (const std::exception& e) {
        // Under the send lock, so no submit can slip a request in
        // between failing the pending ones and closing.
        std::lock_guard<std::mutex> g(send_mu_);
        fail_all(std::make_exception_ptr(ConnectionError(std::string("lost connection to the manager: ") + e.what())));
        // The channel object lives on (see async_for); its socket need not.
        if (conn_->owner) conn_->owner->close_connection(*conn_);
        else conn_->conn.close();
    }
}

MULTIPROCESSING_DECL void async_channel::fail_all(std::exception_ptr e) {
    broken_ = true;
    std::deque<std::pair<std::uint64_t, completion>> doomed;
    {
        std::lock_guard<std::mutex> p(pending_mu_);
        doomed.swap(pending_);
    }
    for (auto& kv : doomed) kv.second->complete(nullptr, 0, e);
}

}  // namespace multiprocessing::managers::detail

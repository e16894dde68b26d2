// Pipelined calls: many requests in flight on one connection, replies
// matched to their futures by request id.
//
// Each process has one async connection per server (in the process's
// session, like every other connection), a sender side guarded by a mutex
// and a reader thread.  The server answers a connection's requests in
// order, so calls through one proxy keep their order.  After fork() the
// child makes its own; the parent's thread and socket are never touched.
#pragma once

#include "multiprocessing/detail/client.hpp"

#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace multiprocessing::managers::detail {

class async_channel {
public:
    using completion = std::function<void(const char* body, std::size_t n, std::exception_ptr error)>;

    explicit async_channel(std::unique_ptr<client_connection> c) : conn_(std::move(c)) {
        reader_ = std::thread([this] { read_loop(); });
        reader_.detach();  // channels live as long as the process; never joined
    }

    /// Sends one request (written by build) and registers its completion.
    template <class Build>
    void submit(Build&& build, completion done) {
        std::lock_guard<std::mutex> g(send_mu_);
        if (broken_) throw ConnectionError("lost connection to the manager");
        std::uint64_t rid = conn_->next_id++;
        build(conn_->obuf, rid);
        {
            std::lock_guard<std::mutex> p(pending_mu_);
            pending_.emplace(rid, std::move(done));
        }
        try {
            conn_->conn.send_frame(conn_->obuf);
        } catch (...) {
            std::lock_guard<std::mutex> p(pending_mu_);
            pending_.erase(rid);
            broken_ = true;
            throw;
        }
    }

    bool broken() const { return broken_; }

private:
    void read_loop() {
        // Reading and sending touch disjoint state of the Connection, so
        // this thread reads while submitters write.
        try {
            for (;;) {
                auto f = conn_->conn.recv_frame(conn_->conn.max_frame());
                if (f.second < sizeof(ReplyHeader)) throw ProcessError("short reply");
                ReplyHeader h;
                std::memcpy(&h, f.first, sizeof h);
                completion done;
                {
                    std::lock_guard<std::mutex> p(pending_mu_);
                    auto it = pending_.find(h.request_id);
                    if (it == pending_.end()) throw ProcessError("reply to an unknown request");
                    done = std::move(it->second);
                    pending_.erase(it);
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
                        done(nullptr, 0, std::current_exception());
                        throw;
                    }
                }
                if (h.status == static_cast<std::uint8_t>(status::ok)) {
                    done(body, n, nullptr);
                } else {
                    try {
                        throw_error(reader{body, n});
                    } catch (...) {
                        done(nullptr, 0, std::current_exception());
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

    void fail_all(std::exception_ptr e) {
        broken_ = true;
        std::unordered_map<std::uint64_t, completion> doomed;
        {
            std::lock_guard<std::mutex> p(pending_mu_);
            doomed.swap(pending_);
        }
        for (auto& kv : doomed) kv.second(nullptr, 0, e);
    }

    std::unique_ptr<client_connection> conn_;
    std::mutex send_mu_, pending_mu_;
    std::unordered_map<std::uint64_t, completion> pending_;
    std::atomic<bool> broken_{false};
    std::thread reader_;
};

/// The process's async channel to ep, made on first use and remade after
/// fork or after it broke.  Old channels are leaked on purpose: a forked
/// child must not join or destroy its parent's reader thread.
inline async_channel& async_for(endpoint& ep) {
    struct slot {
        endpoint* ep;
        unsigned generation, epoch;
        async_channel* ch;
    };
    static std::mutex mu;
    static std::vector<slot>* slots = new std::vector<slot>;
    // Replaced channels stay here, reachable (a leak checker would report
    // them otherwise): a broken one's reader thread may still be finishing.
    static std::vector<async_channel*>* retired = new std::vector<async_channel*>;
    unsigned gen = multiprocessing::detail::fork_state::instance().generation();
    std::lock_guard<std::mutex> g(mu);
    for (auto& s : *slots)
        if (s.ep == &ep) {
            if (s.generation == gen && s.epoch == ep.epoch() && !s.ch->broken()) return *s.ch;
            retired->push_back(s.ch);
            s = {&ep, gen, ep.epoch(), new async_channel(ep.new_connection())};
            return *s.ch;
        }
    slots->push_back({&ep, gen, ep.epoch(), new async_channel(ep.new_connection())});
    return *slots->back().ch;
}

}  // namespace multiprocessing::managers::detail

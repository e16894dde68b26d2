// Pipelined calls: many requests in flight on one connection, replies
// matched to their futures by request id.
//
// Each process has one async connection per server (in the process's
// session, like every other connection), a sender side guarded by a mutex
// and a reader thread.  The server answers a connection's requests in
// order, so calls through one proxy keep their order.  After fork() the
// child makes its own; the parent's thread and socket are never touched.
#pragma once

#include "multiprocessing/detail/config.hpp"
#include "multiprocessing/detail/client.hpp"

#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace multiprocessing::managers::detail {

class async_channel {
public:
    /// What a reply completes: one object per call (the caller's promise
    /// lives in it), so a call allocates this and its future's state only.
    struct pending_call {
        virtual ~pending_call() = default;
        /// The reply's body, or the error it carried or the loss of the
        /// connection.
        virtual void complete(const char* body, std::size_t n, std::exception_ptr error) = 0;
    };
    using completion = std::unique_ptr<pending_call>;

    explicit async_channel(std::unique_ptr<client_connection> c);

    /// Sends one request (written by build) and registers its completion.
    template <class Build>
    void submit(Build&& build, completion done) {
        std::lock_guard<std::mutex> g(send_mu_);
        if (broken_) throw ConnectionError("lost connection to the manager");
        std::uint64_t rid = conn_->next_id++;
        conn_->oblocks.clear();
        conn_->oblocks.buf = &conn_->obuf;
        try {
            multiprocessing::detail::aliasing_scope alias(&conn_->oblocks);
            build(conn_->obuf, rid);
        } catch (...) {
            conn_->oblocks.clear();  // they point into arguments about to die
            throw;
        }
        {
            std::lock_guard<std::mutex> p(pending_mu_);
            pending_.emplace_back(rid, std::move(done));
        }
        try {
            conn_->conn.send_frame(conn_->obuf, conn_->oblocks);
            conn_->oblocks.clear();
        } catch (...) {
            conn_->oblocks.clear();
            std::lock_guard<std::mutex> p(pending_mu_);
            // Still the newest: submits are serialized by send_mu_.
            if (!pending_.empty() && pending_.back().first == rid) pending_.pop_back();
            broken_ = true;
            throw;
        }
    }

    bool broken() const { return broken_; }

private:
    void read_loop();

    void fail_all(std::exception_ptr e);

    std::unique_ptr<client_connection> conn_;
    std::mutex send_mu_, pending_mu_;
    // In request order: the server answers a connection's requests in order.
    std::deque<std::pair<std::uint64_t, completion>> pending_;
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

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/async.ipp"
#endif

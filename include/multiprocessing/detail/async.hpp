// Pipelined calls: many requests in flight on one connection, replies
// matched to their calls by request id.
//
// Each process has one async connection per server (in the process's
// session, like every other connection).  Submitters write requests under a
// mutex.  Replies are read by the thread that waits for one (Future::get),
// so in a loop of calls and gets one thread does everything and no reply
// crosses threads; it reads what has already arrived too, so the next gets
// find their results ready.  One thread reads at a time; others wait for
// it.  A helper thread reads when calls are in flight and nobody has read
// for 2 ms (calls whose futures are dropped, a caller busy elsewhere), so
// replies never pile up and stall the server.  The server answers a
// connection's requests in order, so calls through one proxy keep their
// order.  After fork() the child makes its own channel; the parent's
// thread and connection are never touched.
#pragma once

#include "multiprocessing/detail/config.hpp"
#include "multiprocessing/detail/client.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

namespace multiprocessing::managers::detail {

class async_channel;

/// One call in flight: what its reply fills, shared by the channel (until
/// the reply) and the caller's Future.
struct pending_call {
    virtual ~pending_call() = default;
    /// Decodes the reply's body into the result, or keeps the error it
    /// carried or the loss of the connection.  Runs on whichever thread
    /// reads the reply.
    virtual void complete(const char* body, std::size_t n, std::exception_ptr error) noexcept = 0;
    bool done() const noexcept { return done_.load(std::memory_order_acquire); }

    std::atomic<bool> done_{false};
    std::exception_ptr error;
    async_channel* channel = nullptr;  // channels are never destroyed
    unsigned generation = 0;           // the fork generation it was made in
};

/// The calls in flight on a channel, in request order.  One thread at a
/// time pushes (the holder of the send lock) and one pops (the holder of the
/// reading role), so neither locks: a pipelined call used to take a mutex
/// twice for this list.  Entries live in blocks of 256, linked.
class inflight_queue {
public:
    struct entry {
        std::uint64_t rid = 0;
        std::shared_ptr<pending_call> call;
    };

    // A reply is read only after its request was sent, and the transport
    // orders the two (a socket's system calls, or the ring's
    // release/acquire), so the reader sees the push.
    inflight_queue() : head_(new block), tail_(head_) {}
    ~inflight_queue() {
        while (head_) delete std::exchange(head_, head_->next.load(std::memory_order_relaxed));
    }
    inflight_queue(const inflight_queue&) = delete;
    inflight_queue& operator=(const inflight_queue&) = delete;

    /// Producer only.
    void push(std::uint64_t rid, std::shared_ptr<pending_call> call) {
        if (tail_i_ == block_size) {
            block* b = new block;
            tail_->next.store(b, std::memory_order_release);
            tail_ = b;
            tail_i_ = 0;
        }
        tail_->e[tail_i_++] = entry{rid, std::move(call)};
        pushed_.store(pushed_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }
    /// Consumer only: the oldest call, or null if none.
    entry* front() {
        if (popped_.load(std::memory_order_relaxed) == pushed_.load(std::memory_order_acquire)) return nullptr;
        if (head_i_ == block_size) {
            // The producer linked the next block before it published the
            // entry in it, and no longer touches this one.
            delete std::exchange(head_, head_->next.load(std::memory_order_acquire));
            head_i_ = 0;
        }
        return &head_->e[head_i_];
    }
    /// Consumer only, after front() gave an entry.
    std::shared_ptr<pending_call> pop() {
        auto c = std::move(head_->e[head_i_++].call);
        popped_.store(popped_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
        return c;
    }
    /// Exact for the producer and the consumer; a snapshot for others.
    std::size_t size() const {
        std::uint64_t popped = popped_.load(std::memory_order_acquire);  // first: never above pushed_
        return static_cast<std::size_t>(pushed_.load(std::memory_order_acquire) - popped);
    }
    bool empty() const { return size() == 0; }

private:
    static constexpr std::size_t block_size = 256;
    struct block {
        entry e[block_size];
        std::atomic<block*> next{nullptr};
    };
    // The consumer's and the producer's on cache lines of their own.
    alignas(64) block* head_;
    std::size_t head_i_ = 0;
    std::atomic<std::uint64_t> popped_{0};
    alignas(64) block* tail_;
    std::size_t tail_i_ = 0;
    std::atomic<std::uint64_t> pushed_{0};
};

class async_channel {
public:
    using clock = std::chrono::steady_clock;

    explicit async_channel(std::unique_ptr<client_connection> c);

    /// Sends one request (written by build) and registers the call it
    /// completes.
    template <class Build>
    void submit(Build&& build, std::shared_ptr<pending_call> call) {
        std::size_t in_flight;
        std::uint64_t rid;
        {
            std::lock_guard<std::mutex> g(send_mu_);
            if (broken_) throw ConnectionError("lost connection to the manager");
            rid = conn_->next_id++;
            conn_->oblocks.clear();
            conn_->oblocks.buf = &conn_->obuf;
            try {
                multiprocessing::detail::aliasing_scope alias(&conn_->oblocks);
                build(conn_->obuf, rid);
            } catch (...) {
                conn_->oblocks.clear();  // they point into arguments about to die
                throw;
            }
            call->channel = this;
            call->generation = multiprocessing::detail::fork_state::instance().generation();
            pending_.push(rid, std::move(call));
            in_flight = pending_.size();
            // Pairs with helper_loop, which says it is idle, then looks at
            // pending_: one of the two sees the other.
            std::atomic_thread_fence(std::memory_order_seq_cst);
            if (helper_idle_.load(std::memory_order_relaxed)) {
                std::lock_guard<std::mutex> p(mu_);
                helper_idle_.store(false, std::memory_order_relaxed);
                helper_cv_.notify_one();
            }
            try {
                conn_->conn.send_frame(conn_->obuf, conn_->oblocks);
                conn_->oblocks.clear();
            } catch (...) {
                conn_->oblocks.clear();
                std::lock_guard<std::mutex> p(mu_);
                broken_ = true;
                // Part of a frame may have gone: whoever reads next sees EOF
                // and fails the calls still in flight.  This one stays
                // among them; its caller gets this exception, not a future.
                ::shutdown(conn_->conn.fileno(), SHUT_RDWR);
                helper_cv_.notify_all();
                throw;
            }
        }
        // Many calls and no gets: read the replies that are here, so the
        // server is never blocked writing them.
        if (in_flight >= 512 && (rid & 63) == 0) read_ready();
    }

    /// Waits until call is complete, reading replies on this thread while
    /// no other thread does.  False if the deadline passed first.
    bool wait(pending_call& call, const std::optional<clock::time_point>& deadline);

    bool broken() const { return broken_; }

    /// Replaced by a new channel: the helper thread ends once no call is in
    /// flight.
    void retire();

private:
    // Holds the reading role for a scope.
    struct role {
        async_channel& ch;
        ~role() { ch.release_role(); }
    };

    // Reads one reply and completes its call; throws if the connection
    // failed (then lost() must run).
    void read_one();
    // Reads until call is complete (or, with a deadline, it passed: false),
    // then whatever else has already arrived.  This thread holds the role.
    bool read_for(pending_call& call, const std::optional<clock::time_point>& deadline);
    // Takes the reading role if free and reads what has arrived.
    void read_ready();
    bool readable_now() { return conn_->conn.readable_now(); }
    void finish(pending_call& c) noexcept;
    // The connection failed: every call in flight fails, the socket closes.
    void lost(const char* why) noexcept;
    void release_role() noexcept;
    // The helper's idle check: the manager shut down or the channel was
    // replaced or broke, so nothing will come.
    bool finished();
    void helper_loop();

    std::unique_ptr<client_connection> conn_;
    std::mutex send_mu_;
    std::mutex mu_;  // reading_, retired_, the condition variables' waits
    std::condition_variable cv_;         // a call completed or the role was released, for waiters_
    std::condition_variable helper_cv_;  // calls went in flight, or retired
    // The server answers a connection's requests in order.
    inflight_queue pending_;
    bool reading_ = false;  // a thread holds the reading role
    std::atomic<bool> helper_idle_{false};
    bool retired_ = false;
    std::atomic<bool> closed_{false};
    std::atomic<int> waiters_{0};
    std::atomic<std::uint64_t> reads_{0};
    std::atomic<bool> broken_{false};
};

/// Which channel serves an endpoint in one process, for one manager epoch.
struct async_slot {
    endpoint* ep;
    unsigned generation, epoch;
    async_channel* ch;
    bool serves(const endpoint& e, unsigned gen) const {
        return ep == &e && generation == gen && epoch == e.epoch() && !ch->broken();
    }
};

/// async_for's slow path: the process's slots, under client_state's
/// channels lock (which fork takes first and gives the child unlocked).  It
/// is never held while connecting, which takes the endpoint's locks.
inline async_slot async_for_locked(endpoint& ep) {
    std::mutex* mu = &client_state::instance().channels_mutex();
    // Made under the lock, not as function statics: a static's guard that
    // another thread holds when this one forks stays held in the child.
    static std::vector<async_slot>* slots = nullptr;
    // Replaced channels stay here, reachable (a leak checker would report
    // them otherwise): futures may still wait on them.
    static std::vector<async_channel*>* retired = nullptr;
    unsigned gen = multiprocessing::detail::fork_state::instance().generation();
    auto find = [&]() -> async_slot* {
        for (auto& s : *slots)
            if (s.ep == &ep) return &s;
        return nullptr;
    };
    {
        std::lock_guard<std::mutex> g(*mu);
        if (!slots) {
            slots = new std::vector<async_slot>;
            retired = new std::vector<async_channel*>;
        }
        if (auto* s = find(); s && s->serves(ep, gen)) return *s;
    }
    // The epoch before connecting: if the manager restarts meanwhile, the
    // slot is stale at once and the next call replaces it.
    unsigned epoch = ep.epoch();
    auto conn = ep.new_connection();
    std::lock_guard<std::mutex> g(*mu);
    auto* s = find();
    if (s && s->serves(ep, gen)) return *s;  // another thread connected first; conn closes
    async_slot fresh{&ep, gen, epoch, new async_channel(std::move(conn))};
    if (!s) {
        slots->push_back(fresh);
        return fresh;
    }
    if (s->generation == gen) s->ch->retire();  // a parent's channel: its thread is not here
    retired->push_back(s->ch);
    *s = fresh;
    return fresh;
}

/// The process's async channel to ep for a proxy made in manager epoch
/// `epoch`, made on first use and remade after fork or after it broke;
/// ConnectionError if that manager has shut down (its ids may name other
/// objects in a new server at the same address).  Old channels are leaked
/// on purpose: a forked child must not touch its parent's threads or
/// locks, and futures still point at them.
inline async_channel& async_for(endpoint& ep, unsigned epoch) {
    // The slot this thread used last, checked without the lock.
    static thread_local async_slot last{nullptr, 0, 0, nullptr};
    if (last.epoch == epoch && last.serves(ep, multiprocessing::detail::fork_state::instance().generation()))
        return *last.ch;
    last = async_for_locked(ep);
    if (last.epoch != epoch) throw ConnectionError("the manager that owned this object has shut down");
    return *last.ch;
}

}  // namespace multiprocessing::managers::detail

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/async.ipp"
#endif

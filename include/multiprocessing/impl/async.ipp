// Out-of-line members of the classes in <multiprocessing/detail/async.hpp>: inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION
// (so other files neither parse nor instantiate them).
#pragma once

#include "multiprocessing/detail/async.hpp"

namespace multiprocessing::managers::detail {

MULTIPROCESSING_DECL async_channel::async_channel(std::unique_ptr<client_connection> c) : conn_(std::move(c)) {
    std::thread t([this] { helper_loop(); });
    ::pthread_setname_np(t.native_handle(), "mp-async");  // for ps, gdb and the tests
    t.detach();  // channels live as long as the process
}

MULTIPROCESSING_DECL void async_channel::read_one() {
    auto f = conn_->conn.recv_frame(conn_->conn.max_frame());
    multiprocessing::detail::received_blocks_scope unclaimed_blocks;
    reads_.fetch_add(1, std::memory_order_relaxed);
    if (f.second < sizeof(ReplyHeader)) throw ProcessError("short reply");
    ReplyHeader h;
    std::memcpy(&h, f.first, sizeof h);
    auto* front = pending_.front();
    if (!front || front->rid != h.request_id) throw ProcessError("reply to an unknown request");
    std::shared_ptr<pending_call> done = pending_.pop();
    try {
        reader body_rd{f.first + sizeof h, f.second - sizeof h};
        owed_scope unclaimed;  // the completion decodes here; what it leaves goes back
        if (h.flags & reply_gives_refs) {
            if (conn_->owner) conn_->owner->take_given(body_rd);
            else endpoint::strip_given(body_rd);  // a channel cut off by fork: its session is gone
        }
        if (h.flags & reply_wants_ack) {
            // Acknowledged before the call completes: see endpoint::roundtrip.
            std::lock_guard<std::mutex> g(send_mu_);
            std::vector<char> ack;
            begin_request(ack, kind::ack, h.request_id, 0, 1);
            conn_->conn.send_frame(ack);
        }
        if (h.status == static_cast<std::uint8_t>(status::ok)) {
            done->complete(body_rd.p, body_rd.n, nullptr);
        } else {
            try {
                throw_error(reader{body_rd.p, body_rd.n});
            } catch (...) {
                done->complete(nullptr, 0, std::current_exception());
            }
        }
    } catch (...) {
        // Off the list already, so lost() would not fail it.
        done->complete(nullptr, 0, std::current_exception());
        finish(*done);
        throw;
    }
    finish(*done);
}

MULTIPROCESSING_DECL void async_channel::finish(pending_call& c) noexcept {
    c.done_.store(true, std::memory_order_seq_cst);
    // Pairs with wait(): a waiter counts itself, then looks at done_.
    if (waiters_.load(std::memory_order_seq_cst) > 0) {
        std::lock_guard<std::mutex> g(mu_);
        cv_.notify_all();
    }
}

MULTIPROCESSING_DECL bool async_channel::read_for(pending_call& call,
                                                  const std::optional<clock::time_point>& deadline) {
    try {
        while (!call.done()) {
            if (deadline) {
                auto left = *deadline - clock::now();
                bool ready = left <= clock::duration::zero()
                                 ? readable_now()
                                 : conn_->conn.poll(std::min(std::chrono::duration<double>(left).count(), 86400.0));
                if (!ready) {
                    if (clock::now() >= *deadline) return false;
                    continue;  // a day passed
                }
            }
            read_one();
        }
        // What has arrived already, so that the next waits find it done;
        // bounded, as another thread may keep submitting.
        for (int i = 0; i < 4096 && !pending_.empty() && readable_now(); ++i) read_one();
    } catch (const std::exception& e) {
        lost(e.what());
    } catch (...) {
        lost("unknown error");
    }
    return call.done();
}

MULTIPROCESSING_DECL void async_channel::release_role() noexcept {
    std::lock_guard<std::mutex> g(mu_);
    reading_ = false;
    if (waiters_.load(std::memory_order_relaxed) > 0) cv_.notify_all();
}

MULTIPROCESSING_DECL bool async_channel::wait(pending_call& call, const std::optional<clock::time_point>& deadline) {
    if (call.done()) return true;
    if (call.generation != multiprocessing::detail::fork_state::instance().generation())
        throw ProcessError("a call made before fork() cannot be waited for in the child: its reply goes to the parent");
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
        if (call.done_.load(std::memory_order_seq_cst)) return true;
        if (!reading_) {
            reading_ = true;
            lk.unlock();
            role r{*this};
            return read_for(call, deadline);
        }
        // Another thread reads: it completes this call or gives the role
        // up.  Counted before looking at done_, as finish() stores done_
        // before looking at waiters_.
        waiters_.fetch_add(1, std::memory_order_seq_cst);
        bool timed_out = false;
        if (!call.done_.load(std::memory_order_seq_cst)) {
            if (deadline) timed_out = cv_.wait_until(lk, *deadline) == std::cv_status::timeout;
            else cv_.wait(lk);
        }
        waiters_.fetch_sub(1, std::memory_order_relaxed);
        if (timed_out) return call.done();
    }
}

MULTIPROCESSING_DECL void async_channel::read_ready() {
    {
        std::lock_guard<std::mutex> g(mu_);
        if (reading_ || broken_) return;
        reading_ = true;
    }
    role r{*this};
    try {
        for (int i = 0; i < 4096 && readable_now(); ++i) read_one();
    } catch (const std::exception& e) {
        lost(e.what());
    } catch (...) {
        lost("unknown error");
    }
}

MULTIPROCESSING_DECL void async_channel::lost(const char* why) noexcept {
    // Shut down first: a submitter blocked in a send (the server no longer
    // reads) gets an error and lets go of the send lock.
    ::shutdown(conn_->conn.fileno(), SHUT_RDWR);
    {
        // Under the send lock, so no submit can slip a request in between
        // marking the channel broken and closing; none comes after.
        std::lock_guard<std::mutex> g(send_mu_);
        {
            std::lock_guard<std::mutex> p(mu_);
            broken_ = true;
            helper_cv_.notify_all();  // the helper ends
        }
        if (!closed_.exchange(true)) {
            // The channel object lives on (see async_for); its socket need not.
            try {
                if (conn_->owner) conn_->owner->close_connection(*conn_);
                else conn_->conn.close();
            } catch (...) {
            }
        }
    }
    // Outside the lock: completing drops the proxies the calls kept, which
    // may call the manager.
    std::exception_ptr e;
    try {
        e = std::make_exception_ptr(ConnectionError(std::string("lost connection to the manager: ") + why));
    } catch (...) {
        e = std::current_exception();  // bad_alloc
    }
    // This thread holds the reading role: it alone takes from pending_.
    while (pending_.front()) {
        auto c = pending_.pop();
        c->complete(nullptr, 0, e);
        finish(*c);
    }
}

MULTIPROCESSING_DECL void async_channel::retire() {
    std::lock_guard<std::mutex> g(mu_);
    retired_ = true;
    helper_cv_.notify_all();
}

MULTIPROCESSING_DECL bool async_channel::finished() {
    if (retired_ || broken_) return true;
    if (conn_->owner && conn_->owner->epoch() != conn_->epoch) return true;  // the manager shut down
    pollfd p{conn_->conn.fileno(), POLLRDHUP, 0};
    return ::poll(&p, 1, 0) != 0;  // the server hung up (or the socket failed)
}

MULTIPROCESSING_DECL void async_channel::helper_loop() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
        if (closed_) return;
        if (pending_.empty()) {
            // Idle.  The next submit wakes us; once a second, look whether
            // anything will ever come, so a channel to a manager that shut
            // down does not keep this thread and its socket.
            // Said, then pending_ looked at again: see submit.
            helper_idle_.store(true, std::memory_order_relaxed);
            std::atomic_thread_fence(std::memory_order_seq_cst);
            bool woken = !pending_.empty() ||
                         helper_cv_.wait_for(lk, std::chrono::seconds(1)) == std::cv_status::no_timeout;
            helper_idle_.store(false, std::memory_order_relaxed);
            if (woken || !pending_.empty() || reading_ || !finished()) continue;
            reading_ = true;  // closing frees what a reader would use
            lk.unlock();
            role r{*this};
            lost("the channel is no longer used");
            return;
        }
        std::uint64_t seen = reads_.load(std::memory_order_relaxed);
        helper_cv_.wait_for(lk, std::chrono::milliseconds(2));
        if (pending_.empty() || reading_ || closed_ || reads_.load(std::memory_order_relaxed) != seen) continue;
        // Calls in flight and nobody read for 2 ms: read for them until
        // none is left or a waiter wants the role.
        reading_ = true;
        lk.unlock();
        {
            role r{*this};
            try {
                do read_one();
                while (!pending_.empty() && waiters_.load(std::memory_order_relaxed) == 0);
            } catch (const std::exception& e) {
                lost(e.what());
            } catch (...) {
                lost("unknown error");
            }
        }
        lk.lock();
    }
}

}  // namespace multiprocessing::managers::detail

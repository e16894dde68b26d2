// Fork bookkeeping shared by the process and client layers.
//
// A socket must never be used by two processes, so every per-process cache
// (connection pools, session ids) records the fork generation it was made
// in; the pthread_atfork child handler bumps the generation so stale entries
// are noticed with one integer compare instead of a getpid() syscall.
#pragma once

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <new>
#include <vector>

namespace multiprocessing::detail {

struct fork_hooks {
    std::function<void()> prepare, parent, child;
};

class fork_state {
public:
    static fork_state& instance() {
        // Leaked on purpose: atfork handlers may run during static destruction.
        static fork_state* s = new fork_state;
        return *s;
    }

    /// Incremented in every child right after fork().
    unsigned generation() const { return generation_.load(std::memory_order_relaxed); }

    /// Hooks run around every fork(), including ones the user makes directly.
    void add(fork_hooks h) {
        std::lock_guard<std::mutex> g(mu_);
        hooks_.push_back(std::move(h));
    }

    /// Fds the owner keeps private: children close them right after fork so
    /// that a server watching the other end sees EOF when the owner dies.
    void add_owner_fd(int fd) {
        std::lock_guard<std::mutex> g(mu_);
        owner_fds_.push_back(fd);
    }
    void remove_owner_fd(int fd) {
        std::lock_guard<std::mutex> g(mu_);
        for (auto it = owner_fds_.begin(); it != owner_fds_.end(); ++it)
            if (*it == fd) { owner_fds_.erase(it); break; }
    }

private:
    fork_state() { pthread_atfork(&on_prepare, &on_parent, &on_child); }

    static void on_prepare() {
        auto& s = instance();
        s.mu_.lock();
        for (auto& h : s.hooks_) if (h.prepare) h.prepare();
    }
    static void on_parent() {
        auto& s = instance();
        for (auto it = s.hooks_.rbegin(); it != s.hooks_.rend(); ++it) if (it->parent) it->parent();
        s.mu_.unlock();
    }
    static void on_child() {
        auto& s = instance();
        s.generation_.fetch_add(1, std::memory_order_relaxed);
        for (int fd : s.owner_fds_) ::close(fd);
        s.owner_fds_.clear();
        for (auto it = s.hooks_.rbegin(); it != s.hooks_.rend(); ++it) if (it->child) it->child();
        new (&s.mu_) std::mutex;  // fresh: the child's thread is not the one that locked it
    }

    std::mutex mu_;
    std::vector<fork_hooks> hooks_;
    std::vector<int> owner_fds_;
    std::atomic<unsigned> generation_{0};
};

}  // namespace multiprocessing::detail

// Fork bookkeeping shared by the process and client layers.
//
// A socket must never be used by two processes, so every per-process cache
// (connection pools, session ids) records the fork generation it was made
// in; the pthread_atfork child handler bumps the generation so stale entries
// are noticed with one integer compare instead of a getpid() syscall.
#pragma once

#include "multiprocessing/detail/config.hpp"

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
    static fork_state& instance();

    /// Incremented in every child right after fork().
    unsigned generation() const { return generation_.load(std::memory_order_relaxed); }

    /// Hooks run around every fork(), including ones the user makes directly.
    void add(fork_hooks h);

    /// Fds the owner keeps private: children close them right after fork so
    /// that a server watching the other end sees EOF when the owner dies.
    void add_owner_fd(int fd);
    void remove_owner_fd(int fd);

    /// Mutexes of tables a child may read at once (the exception and type
    /// registries): made anew in every child, so one that a parent thread
    /// held at the fork is not held forever there.  Only for leaf locks
    /// whose holders never leave the table half-changed by reading.
    void reset_in_child(std::mutex* m);
    void forget(std::mutex* m);

private:
    fork_state() { pthread_atfork(&on_prepare, &on_parent, &on_child); }

    static void on_prepare();
    static void on_parent();
    static void on_child();

    std::mutex mu_;
    std::vector<fork_hooks> hooks_;
    std::vector<int> owner_fds_;
    std::vector<std::mutex*> child_resets_;
    std::atomic<unsigned> generation_{0};
};

}  // namespace multiprocessing::detail

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/fork.ipp"
#endif

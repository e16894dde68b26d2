// Out-of-line members of the classes in <multiprocessing/detail/fork.hpp>: inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION
// (so other files neither parse nor instantiate them).
#pragma once

#include "multiprocessing/detail/fork.hpp"

#include <algorithm>

namespace multiprocessing::detail {

MULTIPROCESSING_DECL fork_state& fork_state::instance() {
    // Leaked on purpose: atfork handlers may run during static destruction.
    static fork_state* s = new fork_state;
    return *s;
}

MULTIPROCESSING_DECL void fork_state::add(fork_hooks h) {
    std::lock_guard<std::mutex> g(mu_);
    hooks_.push_back(std::move(h));
}

MULTIPROCESSING_DECL void fork_state::add_owner_fd(int fd) {
    std::lock_guard<std::mutex> g(mu_);
    owner_fds_.push_back(fd);
}

MULTIPROCESSING_DECL void fork_state::remove_owner_fd(int fd) {
    std::lock_guard<std::mutex> g(mu_);
    for (auto it = owner_fds_.begin(); it != owner_fds_.end(); ++it)
        if (*it == fd) { owner_fds_.erase(it); break; }
}

MULTIPROCESSING_DECL void fork_state::reset_in_child(std::mutex* m) {
    std::lock_guard<std::mutex> g(mu_);
    child_resets_.push_back(m);
}

MULTIPROCESSING_DECL void fork_state::forget(std::mutex* m) {
    std::lock_guard<std::mutex> g(mu_);
    child_resets_.erase(std::remove(child_resets_.begin(), child_resets_.end(), m), child_resets_.end());
}

MULTIPROCESSING_DECL void fork_state::on_prepare() {
    auto& s = instance();
    s.mu_.lock();
    for (auto& h : s.hooks_) if (h.prepare) h.prepare();
}

MULTIPROCESSING_DECL void fork_state::on_parent() {
    auto& s = instance();
    for (auto it = s.hooks_.rbegin(); it != s.hooks_.rend(); ++it) if (it->parent) it->parent();
    s.mu_.unlock();
}

MULTIPROCESSING_DECL void fork_state::on_child() {
    auto& s = instance();
    s.generation_.fetch_add(1, std::memory_order_relaxed);
    for (int fd : s.owner_fds_) ::close(fd);
    s.owner_fds_.clear();
    for (std::mutex* m : s.child_resets_) new (m) std::mutex;
    for (auto it = s.hooks_.rbegin(); it != s.hooks_.rend(); ++it) if (it->child) it->child();
    new (&s.mu_) std::mutex;  // fresh: the child's thread is not the one that locked it
}

}  // namespace multiprocessing::detail

// Out-of-line members of the classes in <multiprocessing/sharedctypes.hpp>: inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION
// (so other files neither parse nor instantiate them).
#pragma once

#include "multiprocessing/sharedctypes.hpp"

namespace multiprocessing {

MULTIPROCESSING_DECL RobustRLock::RobustRLock() {
    auto mem = detail::map_shared_anonymous(sizeof(detail::robust_block));
    init(mem.get());
    owner_ = std::move(mem);
    b_ = static_cast<detail::robust_block*>(owner_.get());
}

MULTIPROCESSING_DECL void RobustRLock::unlock() {
    if (b_->owner.load() != detail::current_tid())
        throw std::system_error(EPERM, std::generic_category(),
                                "attempt to release recursive lock not owned by thread");
    if (--b_->depth == 0) b_->owner.store(0);
    int rc = ::pthread_mutex_unlock(&b_->mutex);
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "pthread_mutex_unlock");
}

MULTIPROCESSING_DECL bool RobustRLock::acquire(bool block , std::optional<double> timeout) {
    if (!block) return try_lock();
    if (!timeout) { lock(); return true; }
    double t = *timeout < 0 ? 0.0 : *timeout;
    timespec ts{};
    ::clock_gettime(clock_id, &ts);
    double whole = std::floor(t);
    ts.tv_sec += static_cast<time_t>(whole);
    ts.tv_nsec += static_cast<long>((t - whole) * 1e9);
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec += 1; ts.tv_nsec -= 1000000000L; }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 30))
    return take(::pthread_mutex_clocklock(&b_->mutex, clock_id, &ts));
#else
    return take(::pthread_mutex_timedlock(&b_->mutex, &ts));
#endif
}

MULTIPROCESSING_DECL RobustRLock::RobustRLock(std::shared_ptr<void> owner, void* where) : owner_(std::move(owner)) {
    init(where);
    b_ = static_cast<detail::robust_block*>(where);
}

MULTIPROCESSING_DECL void RobustRLock::init(void* where) {
    auto* b = new (where) detail::robust_block;
    pthread_mutexattr_t a;
    ::pthread_mutexattr_init(&a);
    int rc = ::pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    if (!rc) rc = ::pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (!rc) rc = ::pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (!rc) rc = ::pthread_mutex_init(&b->mutex, &a);
    ::pthread_mutexattr_destroy(&a);
    if (rc) throw std::system_error(rc, std::generic_category(), "robust mutex init");
}

MULTIPROCESSING_DECL bool RobustRLock::take(int rc) {
    bool died = false;
    if (rc == EOWNERDEAD) {
        // The holder died: we hold it now.  Mark it usable again, and
        // forget the dead holder's recursion depth.
        ::pthread_mutex_consistent(&b_->mutex);
        b_->depth = 0;
        died = true;
    } else if (rc == EBUSY || rc == ETIMEDOUT) {
        return false;
    } else if (rc != 0) {
        throw std::system_error(rc, std::generic_category(), "robust mutex lock");
    }
    if (b_->depth++ == 0) {
        b_->owner.store(detail::current_tid());
        b_->owner_died = died;
    }
    return true;
}

}  // namespace multiprocessing

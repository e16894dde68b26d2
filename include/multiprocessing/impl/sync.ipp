// Out-of-line members of the classes in <multiprocessing/managers/sync.hpp>: inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION
// (so other files neither parse nor instantiate them).
#pragma once

#include "multiprocessing/managers/sync.hpp"

namespace multiprocessing::managers::detail {

MULTIPROCESSING_DECL std::uint64_t make_image_id() {
    std::random_device rd;
    return (std::uint64_t(rd()) << 32) ^ rd() ^ std::uint64_t(::getpid());
}

}  // namespace multiprocessing::managers::detail

namespace multiprocessing::managers {

MULTIPROCESSING_DECL bool ConditionRef::wait(double timeout) {
    Caller me = current_caller();
    std::uint64_t ticket;
    {
        std::lock_guard<std::mutex> lk(mu_);
        ticket = ++tickets_;
        waiting_.push_back(ticket);
    }
    int depth;
    try {
        depth = lock_->release_all(me);
    } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        bool had = is_notified(ticket);
        forget(ticket);
        if (had) pass_on_locked();
        throw;
    }
    bool notified;
    {
        std::unique_lock<std::mutex> lk(mu_);
        try {
            notified = detail::wait_sliced(cv_, lk, timeout, [&] { return is_notified(ticket); });
        } catch (...) {
            // A caller gone after being notified: the notify is not
            // wasted on it but goes to the next waiter.
            bool had = is_notified(ticket);
            forget(ticket);
            if (had) pass_on_locked();
            throw;
        }
        forget(ticket);
    }
    try {
        lock_->reacquire(me, depth);
    } catch (...) {
        if (notified) pass_on();
        throw;
    }
    if (notified) managers::hand_over([this] { pass_on(); });
    return notified;
}

MULTIPROCESSING_DECL void ConditionRef::notify(long long n) {
    if (!lock_->owned_by(current_caller())) throw std::runtime_error("cannot notify on un-acquired lock");
    std::lock_guard<std::mutex> lk(mu_);
    while (n-- > 0 && !waiting_.empty()) {
        notified_.push_back(waiting_.front());
        waiting_.pop_front();
    }
    cv_.notify_all();
}

MULTIPROCESSING_DECL void ConditionRef::pass_on() {
    std::lock_guard<std::mutex> lk(mu_);
    pass_on_locked();
}

MULTIPROCESSING_DECL void ConditionRef::pass_on_locked() {
    if (waiting_.empty()) return;
    notified_.push_back(waiting_.front());
    waiting_.pop_front();
    cv_.notify_all();
}

MULTIPROCESSING_DECL bool ConditionRef::is_notified(std::uint64_t t) const {
    for (auto x : notified_) if (x == t) return true;
    return false;
}

MULTIPROCESSING_DECL void ConditionRef::forget(std::uint64_t t) {
    for (auto it = waiting_.begin(); it != waiting_.end(); ++it) if (*it == t) { waiting_.erase(it); break; }
    for (auto it = notified_.begin(); it != notified_.end(); ++it) if (*it == t) { notified_.erase(it); break; }
}

}  // namespace multiprocessing::managers

namespace multiprocessing::managers {

MULTIPROCESSING_DECL BarrierRef::BarrierRef(long long parties, double timeout) : parties_(parties), timeout_(timeout) {
    if (parties < 1) throw ValueError("parties must be >= 1");
}

MULTIPROCESSING_DECL BarrierRef::BarrierRef(long long parties, const server_action& action, double timeout) : BarrierRef(parties, timeout) {
    action_ = action.resolve();
}

MULTIPROCESSING_DECL long long BarrierRef::wait(double timeout) {
    if (timeout == detail::forever) timeout = timeout_;  // None: the barrier's own
    std::unique_lock<std::mutex> lk(mu_);
    // Block while the barrier drains or resets.
    detail::wait_sliced(cv_, lk, -1, [&] { return state_ != draining && state_ != resetting; });
    if (state_ == broken) throw BrokenBarrierError();
    long long index = count_++;
    struct exit_guard {
        BarrierRef& b;
        ~exit_guard() {
            if (--b.count_ == 0 && (b.state_ == resetting || b.state_ == draining)) {
                b.state_ = filling;
                b.cv_.notify_all();
            }
        }
    } g{*this};
    if (index + 1 == parties_) {
        if (action_) {
            try {
                action_();
            } catch (...) {
                break_locked();
                throw;
            }
        }
        state_ = draining;
        cv_.notify_all();
    } else {
        bool ok;
        try {
            ok = detail::wait_sliced(cv_, lk, timeout, [&] { return state_ != filling; });
        } catch (const ConnectionError&) {
            // The caller died while waiting: its arrival is withdrawn
            // (the guard's decrement), and the live parties wait on for
            // a party that is really there, instead of breaking.
            throw;
        } catch (...) {
            break_locked();
            throw;
        }
        if (!ok) {
            break_locked();
            throw BrokenBarrierError();
        }
        if (state_ == broken || state_ == resetting) throw BrokenBarrierError();
    }
    return index;
}

MULTIPROCESSING_DECL void BarrierRef::reset() {
    std::lock_guard<std::mutex> lk(mu_);
    if (count_ > 0) {
        if (state_ == filling || state_ == broken) state_ = resetting;
    } else {
        state_ = filling;
    }
    cv_.notify_all();
}

MULTIPROCESSING_DECL void BarrierRef::abort() {
    std::lock_guard<std::mutex> lk(mu_);
    break_locked();
}

MULTIPROCESSING_DECL void BarrierRef::break_locked() {
    state_ = broken;
    cv_.notify_all();
}

}  // namespace multiprocessing::managers

namespace multiprocessing::managers {

MULTIPROCESSING_DECL bool LockRef::acquire(bool block, double timeout) {
    // Checked first, as CPython's locks do (an RLock its owner holds too).
    if (!block && timeout != detail::forever) throw ValueError("can't specify a timeout for a non-blocking call");
    Caller me = current_caller();
    std::unique_lock<std::mutex> lk(mu_);
    if (recursive_ && count_ > 0 && owner_.connection == me.connection) {
        ++count_;
        return true;
    }
    if (!block) timeout = 0;
    detail::require_non_negative(timeout, "timeout value must be a non-negative number");
    if (!detail::wait_sliced(cv_, lk, timeout, [&] { return count_ == 0; })) return false;
    count_ = 1;
    owner_ = me;
    // No hand_over: the disconnect hook below already frees a lock
    // whose owner's connection closed before it had the reply.
    return true;
}

MULTIPROCESSING_DECL void LockRef::release() {
    Caller me = current_caller();
    std::lock_guard<std::mutex> lk(mu_);
    if (recursive_) {
        if (count_ == 0 || owner_.connection != me.connection) throw std::runtime_error("cannot release un-acquired lock");
    } else if (count_ == 0) {
        throw std::runtime_error("release unlocked lock");
    }
    if (--count_ == 0) {
        owner_ = {};
        cv_.notify_one();
    }
}

MULTIPROCESSING_DECL bool LockRef::locked() const {
    std::lock_guard<std::mutex> lk(mu_);
    return count_ > 0;
}

MULTIPROCESSING_DECL void LockRef::_on_disconnect(std::uint64_t, std::uint64_t connection) {
    std::lock_guard<std::mutex> lk(mu_);
    if (count_ > 0 && owner_.connection == connection) {
        count_ = 0;
        owner_ = {};
        cv_.notify_one();
    }
}

MULTIPROCESSING_DECL bool LockRef::owned_by(Caller me) const {
    std::lock_guard<std::mutex> lk(mu_);
    return count_ > 0 && (!recursive_ || owner_.connection == me.connection);
}

MULTIPROCESSING_DECL int LockRef::release_all(Caller me) {
    std::lock_guard<std::mutex> lk(mu_);
    if (count_ == 0 || (recursive_ && owner_.connection != me.connection))
        throw std::runtime_error("cannot wait on un-acquired lock");
    int depth = count_;
    count_ = 0;
    owner_ = {};
    cv_.notify_one();
    return depth;
}

MULTIPROCESSING_DECL void LockRef::reacquire(Caller me, int depth) {
    std::unique_lock<std::mutex> lk(mu_);
    detail::wait_sliced(cv_, lk, -1, [&] { return count_ == 0; });
    count_ = depth;
    owner_ = me;
}

}  // namespace multiprocessing::managers

namespace multiprocessing::managers {

MULTIPROCESSING_DECL SemaphoreRef::SemaphoreRef(long long value, bool bounded) : value_(value), initial_(value), bounded_(bounded) {
    if (value < 0) throw ValueError("semaphore initial value must be >= 0");
}

MULTIPROCESSING_DECL bool SemaphoreRef::acquire(bool block, double timeout) {
    if (!block && timeout != detail::forever) throw ValueError("can't specify timeout for non-blocking acquire");
    std::unique_lock<std::mutex> lk(mu_);
    if (!block) timeout = 0;
    if (!detail::wait_sliced(cv_, lk, timeout, [&] { return value_ > 0; })) return false;
    --value_;
    // The permit comes back if the caller never receives it.
    managers::hand_over([this] {
        std::lock_guard<std::mutex> g(mu_);
        ++value_;
        cv_.notify_one();
    });
    return true;
}

MULTIPROCESSING_DECL void SemaphoreRef::release(long long n) {
    std::lock_guard<std::mutex> lk(mu_);
    if (n < 1) throw ValueError("n must be one or more");
    if (bounded_ && value_ + n > initial_) throw ValueError("Semaphore released too many times");
    value_ += n;
    cv_.notify_all();
}

MULTIPROCESSING_DECL long long SemaphoreRef::get_value() const {
    std::lock_guard<std::mutex> lk(mu_);
    return value_;
}

}  // namespace multiprocessing::managers

namespace multiprocessing::managers {

MULTIPROCESSING_DECL void EventRef::set() {
    std::lock_guard<std::mutex> lk(mu_);
    flag_ = true;
    cv_.notify_all();
}

MULTIPROCESSING_DECL void EventRef::clear() {
    std::lock_guard<std::mutex> lk(mu_);
    flag_ = false;
}

MULTIPROCESSING_DECL bool EventRef::is_set() const {
    std::lock_guard<std::mutex> lk(mu_);
    return flag_;
}

MULTIPROCESSING_DECL bool EventRef::wait(double timeout) {
    std::unique_lock<std::mutex> lk(mu_);
    return detail::wait_sliced(cv_, lk, timeout, [&] { return flag_; });
}

}  // namespace multiprocessing::managers

namespace multiprocessing::managers::detail {

MULTIPROCESSING_DECL action_table& action_table::instance() {
    static action_table* t = new action_table;
    return *t;
}

MULTIPROCESSING_DECL void action_table::add_named(const std::string& name, std::function<void()> f) {
    std::lock_guard<std::mutex> g(mu_);
    named_[name] = std::move(f);
}

MULTIPROCESSING_DECL void action_table::add_type(const std::string& key, action_maker m) {
    std::lock_guard<std::mutex> g(mu_);
    auto r = types_.emplace(key, m);
    // Two types with one name (local types of two translation units):
    // neither can be told apart, so both are refused.
    if (!r.second && r.first->second != m) r.first->second = nullptr;
}

MULTIPROCESSING_DECL std::function<void()> action_table::named(const std::string& name) {
    std::lock_guard<std::mutex> g(mu_);
    auto it = named_.find(name);
    if (it == named_.end()) throw ValueError("no action registered as '" + name + "' in the server");
    return it->second;
}

MULTIPROCESSING_DECL action_maker action_table::type(const std::string& key) {
    std::lock_guard<std::mutex> g(mu_);
    auto it = types_.find(key);
    if (it == types_.end())
        throw ValueError("the server's program does not have the action type " +
                         multiprocessing::detail::demangle(key.c_str()) + "; register it by name");
    if (!it->second)
        throw ValueError("two action types are named " + multiprocessing::detail::demangle(key.c_str()) +
                         "; register it by name");
    return it->second;
}

}  // namespace multiprocessing::managers::detail

namespace multiprocessing::managers {

MULTIPROCESSING_DECL bool Proxy<LockRef>::acquire(bool block, std::optional<double> timeout) const {
    return _call_exposed_<&R::acquire>("acquire", block, timeout.value_or(-1));
}

MULTIPROCESSING_DECL void Proxy<LockRef>::release() const { _call_exposed_<&R::release>("release"); }

MULTIPROCESSING_DECL bool Proxy<LockRef>::locked() const { return _call_exposed_<&R::locked>("locked"); }

MULTIPROCESSING_DECL void Proxy<LockRef>::lock() const { acquire(); }

MULTIPROCESSING_DECL void Proxy<LockRef>::unlock() const { release(); }

MULTIPROCESSING_DECL bool Proxy<LockRef>::try_lock() const { return acquire(false); }

}  // namespace multiprocessing::managers

namespace multiprocessing::managers {

MULTIPROCESSING_DECL bool Proxy<SemaphoreRef>::acquire(bool block, std::optional<double> timeout) const {
    return _call_exposed_<&R::acquire>("acquire", block, timeout.value_or(-1));
}

MULTIPROCESSING_DECL void Proxy<SemaphoreRef>::release(long long n) const { _call_exposed_<&R::release>("release", n); }

MULTIPROCESSING_DECL long long Proxy<SemaphoreRef>::get_value() const { return _call_exposed_<&R::get_value>("get_value"); }

MULTIPROCESSING_DECL void Proxy<SemaphoreRef>::lock() const { acquire(); }

MULTIPROCESSING_DECL void Proxy<SemaphoreRef>::unlock() const { release(); }

MULTIPROCESSING_DECL bool Proxy<SemaphoreRef>::try_lock() const { return acquire(false); }

}  // namespace multiprocessing::managers

namespace multiprocessing::managers {

MULTIPROCESSING_DECL void Proxy<EventRef>::set() const { _call_exposed_<&R::set>("set"); }

MULTIPROCESSING_DECL void Proxy<EventRef>::clear() const { _call_exposed_<&R::clear>("clear"); }

MULTIPROCESSING_DECL bool Proxy<EventRef>::is_set() const { return _call_exposed_<&R::is_set>("is_set"); }

MULTIPROCESSING_DECL bool Proxy<EventRef>::wait(std::optional<double> timeout) const {
    return _call_exposed_<&R::wait>("wait", timeout.value_or(-1));
}

}  // namespace multiprocessing::managers

namespace multiprocessing::managers {

MULTIPROCESSING_DECL bool Proxy<ConditionRef>::acquire(bool block, std::optional<double> timeout) const {
    return _call_exposed_<&R::acquire>("acquire", block, timeout.value_or(-1));
}

MULTIPROCESSING_DECL void Proxy<ConditionRef>::release() const { _call_exposed_<&R::release>("release"); }

MULTIPROCESSING_DECL void Proxy<ConditionRef>::lock() const { acquire(); }

MULTIPROCESSING_DECL void Proxy<ConditionRef>::unlock() const { release(); }

MULTIPROCESSING_DECL bool Proxy<ConditionRef>::try_lock() const { return acquire(false); }

MULTIPROCESSING_DECL bool Proxy<ConditionRef>::wait(std::optional<double> timeout) const {
    return _call_exposed_<&R::wait>("wait", timeout.value_or(-1));
}

MULTIPROCESSING_DECL void Proxy<ConditionRef>::notify(long long n) const { _call_exposed_<&R::notify>("notify", n); }

MULTIPROCESSING_DECL void Proxy<ConditionRef>::notify_all() const { _call_exposed_<&R::notify_all>("notify_all"); }

}  // namespace multiprocessing::managers

namespace multiprocessing::managers {

MULTIPROCESSING_DECL long long Proxy<BarrierRef>::wait(std::optional<double> timeout) const {
    return _call_exposed_<&R::wait>("wait", timeout.value_or(-1));
}

MULTIPROCESSING_DECL void Proxy<BarrierRef>::reset() const { _call_exposed_<&R::reset>("reset"); }

MULTIPROCESSING_DECL void Proxy<BarrierRef>::abort() const { _call_exposed_<&R::abort>("abort"); }

MULTIPROCESSING_DECL long long Proxy<BarrierRef>::parties() const { return _call_exposed_<&R::parties>("parties"); }

MULTIPROCESSING_DECL long long Proxy<BarrierRef>::n_waiting() const { return _call_exposed_<&R::n_waiting>("n_waiting"); }

MULTIPROCESSING_DECL bool Proxy<BarrierRef>::broken() const { return _call_exposed_<&R::broken_>("broken"); }

}  // namespace multiprocessing::managers

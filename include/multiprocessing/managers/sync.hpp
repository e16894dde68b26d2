// SyncManager's queues and synchronization primitives: Queue,
// JoinableQueue, Lock, RLock, Semaphore, BoundedSemaphore, Condition,
// Event, Barrier.
//
// They live in the server and do their own locking (self_locking), so a
// call blocked in one of them holds no lock other calls need.  Waits run in
// short slices and give up as soon as the caller's process is gone or the
// server stops, without taking anything: a killed waiter never swallows an
// item or a permit.
#pragma once

#include "multiprocessing/detail/config.hpp"
#include "multiprocessing/managers/base.hpp"
#include "multiprocessing/detail/registry.hpp"
#include "multiprocessing/exceptions.hpp"
#include "multiprocessing/object.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <new>
#include <random>
#include <deque>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace multiprocessing {

/// Python's queue.Empty.
class Empty : public std::runtime_error {
public:
    Empty() : std::runtime_error("Empty") {}
    using std::runtime_error::runtime_error;
};
/// Python's queue.Full.
class Full : public std::runtime_error {
public:
    Full() : std::runtime_error("Full") {}
    using std::runtime_error::runtime_error;
};
/// Python 3.13's queue.ShutDown.
class ShutDown : public std::runtime_error {
public:
    ShutDown() : std::runtime_error("ShutDown") {}
    using std::runtime_error::runtime_error;
};
/// Python's threading.BrokenBarrierError.
class BrokenBarrierError : public std::runtime_error {
public:
    BrokenBarrierError() : std::runtime_error("BrokenBarrierError") {}
    using std::runtime_error::runtime_error;
};

}  // namespace multiprocessing

namespace multiprocessing::managers {

namespace detail {

using clock = std::chrono::steady_clock;

/// What a proxy sends for Python's timeout=None.
constexpr double forever = -1;

/// The wait a timeout asks for: forever (None, -1 as for Python's locks, or
/// more than 10^9 s, which no clock arithmetic may overflow on), or at least
/// 0 (a negative one is spent already, as Python's Event.wait(-1) is);
/// ValueError for NaN, as Python's locks raise.
inline double checked_timeout(double timeout) {
    if (std::isnan(timeout)) throw ValueError("Invalid value NaN (not a number)");
    if (timeout == forever || timeout > 1e9) return forever;
    return timeout < 0 ? 0 : timeout;
}

/// Python's check of Queue.get/put's and Lock.acquire's timeout: ValueError
/// for a negative one other than None (-1 for a lock).
inline void require_non_negative(double timeout, const char* message) {
    if (timeout < 0 && timeout != forever) throw ValueError(message);
}

/// Waits on cv until pred holds, the timeout (seconds; see checked_timeout)
/// passes, or the caller is gone.  Returns pred's final value.  Slices keep
/// a dead caller from waiting forever.  A caller found gone, even at the
/// moment pred comes true, gets ConnectionError and takes nothing: the
/// wake-up it may have used is passed on to the next waiter.
template <class Pred>
bool wait_sliced(std::condition_variable& cv, std::unique_lock<std::mutex>& lk, double timeout, Pred pred) {
    timeout = checked_timeout(timeout);
    auto deadline = clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(timeout < 0 ? 0 : timeout));
    bool waited = false;
    auto gone = [&] {
        cv.notify_one();
        return ConnectionError("the caller is gone");
    };
    while (!pred()) {
        if (caller_gone()) throw gone();
        auto slice = clock::now() + std::chrono::milliseconds(50);
        if (timeout >= 0) {
            if (clock::now() >= deadline) return pred();
            if (deadline < slice) slice = deadline;
        }
        cv.wait_until(lk, slice);
        waited = true;
    }
    // Whatever made pred true may have come after the caller died (its
    // socket closes as the kernel tears the process down): look again.
    if (waited && caller_gone()) throw gone();
    return true;
}

}  // namespace detail

/// Referent of SyncManager::Queue<T>() and JoinableQueue<T>(): Python's
/// queue.Queue (FIFO, optional maxsize, task_done/join, 3.13 shutdown).
template <class T>
class QueueRef {
public:
    QueueRef() = default;
    explicit QueueRef(long long maxsize) : maxsize_(maxsize) {}

    /// timeout -1 (None) waits forever; another negative one is ValueError.
    void put(const T& item, bool block, double timeout) {
        std::unique_lock<std::mutex> lk(mu_);
        if (shutdown_) throw ShutDown();
        if (maxsize_ > 0) {
            if (!block) {
                if (full_locked()) throw Full();
            } else if (detail::require_non_negative(timeout, "'timeout' must be a non-negative number"),
                       !detail::wait_sliced(not_full_, lk, timeout, [&] { return shutdown_ || !full_locked(); })) {
                throw Full();
            }
            if (shutdown_) throw ShutDown();
        }
        items_.push_back(item);
        ++unfinished_;
        not_empty_.notify_one();
    }
    T get(bool block, double timeout) {
        std::unique_lock<std::mutex> lk(mu_);
        if (shutdown_ && (immediate_ || items_.empty())) throw ShutDown();
        if (!block) {
            if (items_.empty()) throw Empty();
        } else if (detail::require_non_negative(timeout, "'timeout' must be a non-negative number"),
                   !detail::wait_sliced(not_empty_, lk, timeout, [&] { return shutdown_ || !items_.empty(); })) {
            throw Empty();
        }
        if (items_.empty()) throw ShutDown();
        T item = std::move(items_.front());
        items_.pop_front();
        not_full_.notify_one();
        // Back to the head of the queue if the caller never receives it.
        managers::hand_over([this, back = item] {
            std::lock_guard<std::mutex> g(mu_);
            items_.push_front(back);
            not_empty_.notify_one();
        });
        return item;
    }
    std::size_t qsize() const {
        std::lock_guard<std::mutex> lk(mu_);
        return items_.size();
    }
    bool empty() const { return qsize() == 0; }
    bool full() const {
        std::lock_guard<std::mutex> lk(mu_);
        return full_locked();
    }
    void task_done() {
        std::lock_guard<std::mutex> lk(mu_);
        if (unfinished_ <= 0) throw ValueError("task_done() called too many times");
        if (--unfinished_ == 0) all_done_.notify_all();
    }
    void join(double timeout) {
        std::unique_lock<std::mutex> lk(mu_);
        detail::wait_sliced(all_done_, lk, timeout, [&] { return unfinished_ == 0; });
    }
    /// Python 3.13: puts fail from now on; gets fail once the queue is empty
    /// (at once with immediate, which also drops what is queued).
    void shutdown(bool immediate) {
        std::lock_guard<std::mutex> lk(mu_);
        shutdown_ = true;
        if (immediate) {
            immediate_ = true;
            unfinished_ -= static_cast<long long>(items_.size());
            items_.clear();
            if (unfinished_ <= 0) { unfinished_ = 0; all_done_.notify_all(); }
        }
        not_empty_.notify_all();
        not_full_.notify_all();
    }

private:
    bool full_locked() const { return maxsize_ > 0 && static_cast<long long>(items_.size()) >= maxsize_; }
    mutable std::mutex mu_;
    std::condition_variable not_empty_, not_full_, all_done_;
    std::deque<T> items_;
    long long maxsize_ = 0;
    long long unfinished_ = 0;
    bool shutdown_ = false, immediate_ = false;
};

/// Referent of Lock() and RLock().  The owner is the calling process and
/// thread (managers::current_caller()).  An RLock is re-entrant and only its
/// owner may release it.  When the owner's process dies, its connection
/// closes and the lock is released for the next waiter; Python's managers
/// leave such a lock held forever.  A plain Lock records its owner only for
/// that purpose: like Python's, any caller may release it.
class LockRef {
public:
    LockRef() = default;
    explicit LockRef(bool recursive) : recursive_(recursive) {}

    bool acquire(bool block, double timeout);
    void release();
    bool locked() const;
    /// Called by the server when a client connection closes.
    void _on_disconnect(std::uint64_t, std::uint64_t connection);

    // The steps of a Condition's wait (server side, not exposed).  As in
    // Python, a plain Lock counts as owned by whoever asks while it is held.
    bool owned_by(Caller me) const;
    /// Releases every level the caller holds; returns how many.
    int release_all(Caller me);
    /// Takes the lock back at that depth (ConnectionError if the caller goes).
    void reacquire(Caller me, int depth);


private:
    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool recursive_ = false;
    int count_ = 0;
    Caller owner_;
};

/// Referent of Semaphore(n) and BoundedSemaphore(n).  A permit handed to a
/// process that dies before it receives it comes back; one it received is
/// its own (a semaphore has no owner, as in Python).
class SemaphoreRef {
public:
    SemaphoreRef() = default;
    SemaphoreRef(long long value, bool bounded);
    bool acquire(bool block, double timeout);
    void release(long long n);
    long long get_value() const;

private:
    mutable std::mutex mu_;
    std::condition_variable cv_;
    long long value_ = 1, initial_ = 1;
    bool bounded_ = false;
};

/// Referent of Event().
class EventRef {
public:
    void set();
    void clear();
    bool is_set() const;
    bool wait(double timeout);

private:
    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool flag_ = false;
};

/// Referent of Condition() and Condition(lock): a lock (its own RLock, as
/// in Python, or a Lock/RLock of the same manager) plus a wait queue.
/// wait() must be called by the lock's owner; it releases the lock, waits
/// for notify, and takes the lock back.
class ConditionRef {
public:
    ConditionRef() : lock_(std::make_shared<LockRef>(true)) {}
    /// Python's Condition(lock): uses the Lock or RLock that token names,
    /// which must belong to this manager (ValueError otherwise).
    explicit ConditionRef(const Token& lock) : lock_(local_referent<LockRef>(lock)) {}

    bool acquire(bool block, double timeout) { return lock_->acquire(block, timeout); }
    void release() { lock_->release(); }
    bool wait(double timeout);
    void notify(long long n);
    void notify_all() { notify(std::numeric_limits<long long>::max()); }
    // An outside lock gets this call too, as an object of its own:
    // releasing twice is harmless (the second finds it free or re-taken).
    void _on_disconnect(std::uint64_t session, std::uint64_t connection) { lock_->_on_disconnect(session, connection); }

private:
    void pass_on();
    void pass_on_locked();
    bool is_notified(std::uint64_t t) const;
    void forget(std::uint64_t t);
    std::shared_ptr<LockRef> lock_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::uint64_t> waiting_, notified_;
    std::uint64_t tickets_ = 0;
};

namespace detail {

/// Differs between two runs of a program, is the same in its forked
/// children: a function pointer means the same code only where it matches.
MULTIPROCESSING_DECL std::uint64_t make_image_id();
// Set before a file's later globals (a server_action among them) read it.
inline const std::uint64_t image_id = make_image_id();

using action_maker = std::function<void()> (*)(const std::vector<char>& payload);

/// The server-side half of server_action: named actions, and one maker per
/// callable type this program sends (filled before main(), like the
/// constructor table, so a forked server knows them all).
class action_table {
public:
    static action_table& instance();
    void add_named(const std::string& name, std::function<void()> f);
    void add_type(const std::string& key, action_maker m);
    std::function<void()> named(const std::string& name);
    action_maker type(const std::string& key);

private:
    std::mutex mu_;
    std::unordered_map<std::string, std::function<void()>> named_;
    std::unordered_map<std::string, action_maker> types_;
};

template <class F>
struct action_type {
    static constexpr bool serialized = has_member_serialize<F>::value;
    static std::function<void()> make(const std::vector<char>& payload) {
        if constexpr (serialized) {
            static_assert(std::is_default_constructible_v<F>, "multiprocessing: a serializable action needs a default constructor");
            F f;
            multiprocessing::detail::memory_source src(payload.data(), payload.size());
            multiprocessing::detail::iarchive ia(src);
            ia >> f;
            return f;
        } else {
            // A stateless or trivially copyable callable: its bytes are it.
            if (payload.size() != sizeof(F)) throw ValueError("action payload of the wrong size");
            alignas(F) unsigned char buf[sizeof(F)];
            std::memcpy(buf, payload.data(), sizeof(F));
            F f = *std::launder(reinterpret_cast<F*>(buf));
            return [f]() mutable { f(); };
        }
    }
    static bool add() {
        action_table::instance().add_type(typeid(F).name(), &make);
        return true;
    }
    static const bool registered;
};
template <class F>
const bool action_type<F>::registered = action_type<F>::add();

}  // namespace detail

/// Python's action= argument of Barrier: code for the server to run.
/// Either a name given to register_action() in the server's program, or a
/// callable the server's program also has, which is sent as data:
/// - a stateless callable (a lambda without captures, an empty functor);
/// - a functor with a Boost serialize() member (proxies in it travel as
///   proxies), default-constructible;
/// - a plain function pointer, only to a server forked from this program
///   (a function's address means nothing in another run of it).
/// A lambda with captures cannot be sent (a captured reference would point
/// into the server's memory); write a serializable functor instead.
class server_action {
public:
    server_action() = default;
    server_action(std::string name) : kind_(named), key_(std::move(name)) {}
    server_action(const char* name) : server_action(std::string(name)) {}
    template <class F, class D = std::decay_t<F>,
              class = std::enable_if_t<std::is_invocable_v<D&> && !std::is_convertible_v<F, std::string> &&
                                       !std::is_same_v<D, server_action>>>
    server_action(F&& f) : kind_(typed), key_(typeid(D).name()) {
        constexpr bool pointer = std::is_pointer_v<D> && std::is_function_v<std::remove_pointer_t<D>>;
        constexpr bool stateless = std::is_empty_v<D> && std::is_trivially_copyable_v<D>;
        constexpr bool serialized = detail::action_type<D>::serialized;
        static_assert(pointer || stateless || serialized,
                      "multiprocessing: an action must be a function pointer, a lambda without captures, "
                      "or a functor with a Boost serialize() member");
        (void)&detail::action_type<D>::registered;
        if constexpr (serialized) {
            multiprocessing::detail::vector_sink sink(payload_);
            multiprocessing::detail::oarchive oa(sink);
            const D& cf = f;
            oa << cf;
        } else {
            D copy = f;
            if constexpr (pointer) {
                if (!copy) throw ValueError("null action");
                image_ = detail::image_id;
            }
            payload_.resize(sizeof(D));
            std::memcpy(payload_.data(), static_cast<const void*>(&copy), sizeof(D));
        }
    }
    /// True when no action was given.
    bool empty() const { return kind_ == none; }

    /// Server side: the callable it names (ValueError if the server cannot
    /// run it).
    std::function<void()> resolve() const {
        switch (kind_) {
        case named: return detail::action_table::instance().named(key_);
        case typed:
            if (image_ != 0 && image_ != detail::image_id)
                throw ValueError("a function pointer action can only go to a server forked from this program; "
                                 "register it by name or send a lambda without captures");
            return detail::action_table::instance().type(key_)(payload_);
        default: return {};
        }
    }

    template <class Ar>
    void serialize(Ar& ar, unsigned) { ar & kind_ & key_ & payload_ & image_; }

private:
    enum : std::uint8_t { none, named, typed };
    std::uint8_t kind_ = none;
    std::string key_;
    std::vector<char> payload_;
    std::uint64_t image_ = 0;
};

/// Makes `name` an action a Barrier created with server_action(name) runs.
/// Register it in the server's program before the server starts (a
/// manager's server is forked at start(): later registrations in the
/// client are not in it).  Python passes the callable itself, pickled by
/// reference.
inline void register_action(const std::string& name, std::function<void()> f) {
    detail::action_table::instance().add_named(name, std::move(f));
}

/// Referent of Barrier(parties, action, timeout): Python's
/// threading.Barrier.  The action runs in the server, once per cycle, in the
/// thread of the last party to arrive and before any party is released; if
/// it throws, that party gets the exception and the others
/// BrokenBarrierError.  As in Python the barrier's lock is held meanwhile,
/// so the action must not call wait(), reset() or abort() on its barrier.
class BarrierRef {
public:
    BarrierRef() = default;
    BarrierRef(long long parties, double timeout);
    BarrierRef(long long parties, const server_action& action, double timeout);
    /// Returns the arrival index, 0 for the first to arrive.
    long long wait(double timeout);
    /// Back to the initial state; threads waiting now get BrokenBarrierError.
    void reset();
    void abort();
    long long parties() const { return parties_; }
    // Without the lock, as in Python: an action may ask while it holds it.
    long long n_waiting() const { return state_ == filling ? count_.load() : 0; }
    bool broken_() const { return state_ == broken; }

private:
    // Python's states: filling 0, draining 1, resetting -1, broken -2.
    enum state_t { filling, draining, resetting, broken };
    void break_locked();
    mutable std::mutex mu_;
    std::condition_variable cv_;
    long long parties_ = 1;
    double timeout_ = -1;
    std::function<void()> action_;
    std::atomic<long long> count_{0};    // written under mu_
    std::atomic<state_t> state_{filling};  // written under mu_
};

namespace detail {
inline pk::value py_true() { return pk::value::boolean(true); }
inline pk::value py_false() { return pk::value::boolean(false); }
inline pk::value py_forever() { return pk::value::floating(-1); }  // timeout None
inline void add_py_acquire(type_entry& e) {
    add_py_method(e, "acquire", "acquire", {"blocking", "timeout"}, {py_true(), py_forever()});
}
template <class T>
struct python_defaults<QueueRef<T>> {
    static void apply(type_entry& e) {
        add_py_method(e, "put", "put", {"obj", "block", "timeout"}, {py_true(), py_forever()});
        add_py_method(e, "get", "get", {"block", "timeout"}, {py_true(), py_forever()});
        add_py_method(e, "put_nowait", "put", {"obj"}, {}, {py_false(), py_forever()});
        add_py_method(e, "get_nowait", "get", {}, {}, {py_false(), py_forever()});
        add_py_method(e, "join", "join", {"timeout"}, {py_forever()});
        add_py_method(e, "shutdown", "shutdown", {"immediate"}, {py_false()});
    }
};
template <>
struct python_defaults<LockRef> {
    static void apply(type_entry& e) { add_py_acquire(e); }
};
template <>
struct python_defaults<SemaphoreRef> {
    static void apply(type_entry& e) {
        add_py_acquire(e);
        add_py_method(e, "release", "release", {"n"}, {pk::value::integer(1)});
    }
};
template <>
struct python_defaults<EventRef> {
    static void apply(type_entry& e) { add_py_method(e, "wait", "wait", {"timeout"}, {py_forever()}); }
};
template <>
struct python_defaults<ConditionRef> {
    static void apply(type_entry& e) {
        add_py_acquire(e);
        add_py_method(e, "wait", "wait", {"timeout"}, {py_forever()});
        add_py_method(e, "notify", "notify", {"n"}, {pk::value::integer(1)});
    }
};
template <>
struct python_defaults<BarrierRef> {
    static void apply(type_entry& e) { add_py_method(e, "wait", "wait", {"timeout"}, {py_forever()}); }
};
}  // namespace detail

template <class T> struct self_locking<QueueRef<T>> : std::true_type {};
template <> struct self_locking<LockRef> : std::true_type {};
template <> struct self_locking<SemaphoreRef> : std::true_type {};
template <> struct self_locking<EventRef> : std::true_type {};
template <> struct self_locking<ConditionRef> : std::true_type {};
template <> struct self_locking<BarrierRef> : std::true_type {};

/// Python's Queue proxy: put/get with block and timeout (seconds; none =
/// forever), the _nowait forms, qsize/empty/full, task_done/join (useful on
/// a JoinableQueue) and 3.13's shutdown().
template <class T>
class Proxy<QueueRef<T>> : public ProxyBase<QueueRef<T>> {
    using R = QueueRef<T>;

public:
    using ProxyBase<R>::ProxyBase;
    /// Full if no room within timeout (or at once with block = false).
    void put(const T& item, bool block = true, std::optional<double> timeout = std::nullopt) const {
        this->template _call_exposed_<&R::put>("put", item, block, timeout.value_or(-1));
    }
    /// Empty if nothing arrives within timeout (or at once with block = false).
    T get(bool block = true, std::optional<double> timeout = std::nullopt) const {
        return this->template _call_exposed_<&R::get>("get", block, timeout.value_or(-1));
    }
    void put_nowait(const T& item) const { put(item, false); }
    T get_nowait() const { return get(false); }
    std::size_t qsize() const { return this->template _call_exposed_<&R::qsize>("qsize"); }
    bool empty() const { return this->template _call_exposed_<&R::empty>("empty"); }
    bool full() const { return this->template _call_exposed_<&R::full>("full"); }
    void task_done() const { this->template _call_exposed_<&R::task_done>("task_done"); }
    void join(std::optional<double> timeout = std::nullopt) const {
        this->template _call_exposed_<&R::join>("join", timeout.value_or(-1));
    }
    void shutdown(bool immediate = false) const { this->template _call_exposed_<&R::shutdown>("shutdown", immediate); }
    template <class MpSelf = R>  // lazy: built only where used
    static auto _exposed_() {
        using detail::method_desc;
        using R = MpSelf;
        return std::make_tuple(method_desc<&R::put>{"put"}, method_desc<&R::get>{"get"}, method_desc<&R::qsize>{"qsize"},
                               method_desc<&R::empty>{"empty"}, method_desc<&R::full>{"full"},
                               method_desc<&R::task_done>{"task_done"}, method_desc<&R::join>{"join"},
                               method_desc<&R::shutdown>{"shutdown"});
    }
};

/// Python's AcquirerProxy for Lock and RLock; also a C++ Lockable, so
/// std::lock_guard and std::unique_lock work on it.
template <>
class Proxy<LockRef> : public ProxyBase<LockRef> {
    using R = LockRef;

public:
    using ProxyBase<R>::ProxyBase;
    bool acquire(bool block = true, std::optional<double> timeout = std::nullopt) const;
    void release() const;
    /// Python 3.14's locked().
    bool locked() const;
    void lock() const;
    void unlock() const;
    bool try_lock() const;
    template <class MpSelf = R>  // lazy: built only where used
    static auto _exposed_() {
        using detail::method_desc;
        using R = MpSelf;
        return std::make_tuple(method_desc<&R::acquire>{"acquire"}, method_desc<&R::release>{"release"},
                               method_desc<&R::locked>{"locked"});
    }
};

/// Python's AcquirerProxy for Semaphore and BoundedSemaphore.
template <>
class Proxy<SemaphoreRef> : public ProxyBase<SemaphoreRef> {
    using R = SemaphoreRef;

public:
    using ProxyBase<R>::ProxyBase;
    bool acquire(bool block = true, std::optional<double> timeout = std::nullopt) const;
    void release(long long n = 1) const;
    /// The current counter (Python's private _value; handy in tests).
    long long get_value() const;
    void lock() const;
    void unlock() const;
    bool try_lock() const;
    template <class MpSelf = R>  // lazy: built only where used
    static auto _exposed_() {
        using detail::method_desc;
        using R = MpSelf;
        return std::make_tuple(method_desc<&R::acquire>{"acquire"}, method_desc<&R::release>{"release"},
                               method_desc<&R::get_value>{"get_value"});
    }
};

/// Python's EventProxy.
template <>
class Proxy<EventRef> : public ProxyBase<EventRef> {
    using R = EventRef;

public:
    using ProxyBase<R>::ProxyBase;
    void set() const;
    void clear() const;
    bool is_set() const;
    bool wait(std::optional<double> timeout = std::nullopt) const;
    template <class MpSelf = R>  // lazy: built only where used
    static auto _exposed_() {
        using detail::method_desc;
        using R = MpSelf;
        return std::make_tuple(method_desc<&R::set>{"set"}, method_desc<&R::clear>{"clear"},
                               method_desc<&R::is_set>{"is_set"}, method_desc<&R::wait>{"wait"});
    }
};

/// Python's ConditionProxy: acquire/release, wait, wait_for, notify.
template <>
class Proxy<ConditionRef> : public ProxyBase<ConditionRef> {
    using R = ConditionRef;

public:
    using ProxyBase<R>::ProxyBase;
    bool acquire(bool block = true, std::optional<double> timeout = std::nullopt) const;
    void release() const;
    void lock() const;
    void unlock() const;
    bool try_lock() const;
    /// Releases the lock, waits for a notify (or the timeout), re-acquires.
    bool wait(std::optional<double> timeout = std::nullopt) const;
    /// Python's wait_for: the predicate runs here, re-checked after each wakeup.
    template <class Pred>
    bool wait_for(Pred predicate, std::optional<double> timeout = std::nullopt) const {
        auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout.value_or(0));
        bool result = predicate();
        while (!result) {
            std::optional<double> left;
            if (timeout) {
                left = std::chrono::duration<double>(end - std::chrono::steady_clock::now()).count();
                if (*left <= 0) break;
            }
            wait(left);
            result = predicate();
        }
        return result;
    }
    void notify(long long n = 1) const;
    void notify_all() const;
    template <class MpSelf = R>  // lazy: built only where used
    static auto _exposed_() {
        using detail::method_desc;
        using R = MpSelf;
        return std::make_tuple(method_desc<&R::acquire>{"acquire"}, method_desc<&R::release>{"release"},
                               method_desc<&R::wait>{"wait"}, method_desc<&R::notify>{"notify"},
                               method_desc<&R::notify_all>{"notify_all"});
    }
};

/// Python's BarrierProxy.
template <>
class Proxy<BarrierRef> : public ProxyBase<BarrierRef> {
    using R = BarrierRef;

public:
    using ProxyBase<R>::ProxyBase;
    /// The arrival index; BrokenBarrierError on timeout, abort or reset.
    long long wait(std::optional<double> timeout = std::nullopt) const;
    void reset() const;
    void abort() const;
    long long parties() const;
    long long n_waiting() const;
    bool broken() const;
    template <class MpSelf = R>  // lazy: built only where used
    static auto _exposed_() {
        using detail::method_desc;
        using R = MpSelf;
        return std::make_tuple(method_desc<&R::wait>{"wait"}, method_desc<&R::reset>{"reset"},
                               method_desc<&R::abort>{"abort"}, method_desc<&R::parties>{"parties"},
                               method_desc<&R::n_waiting>{"n_waiting"}, method_desc<&R::broken_>{"broken"});
    }
};

template <class T = object>
using QueueProxy = Proxy<QueueRef<T>>;
using AcquirerProxy = Proxy<LockRef>;
using SemaphoreProxy = Proxy<SemaphoreRef>;
using EventProxy = Proxy<EventRef>;
using ConditionProxy = Proxy<ConditionRef>;
using BarrierProxy = Proxy<BarrierRef>;

namespace detail {

template <class R> struct sync_names;
template <class T> struct sync_names<QueueRef<T>> { static constexpr const char* value[] = {"Queue", "JoinableQueue"}; };
template <> struct sync_names<LockRef> { static constexpr const char* value[] = {"Lock", "RLock"}; };
template <> struct sync_names<SemaphoreRef> { static constexpr const char* value[] = {"Semaphore", "BoundedSemaphore"}; };
template <> struct sync_names<EventRef> { static constexpr const char* value[] = {"Event"}; };
template <> struct sync_names<ConditionRef> { static constexpr const char* value[] = {"Condition"}; };
template <> struct sync_names<BarrierRef> { static constexpr const char* value[] = {"Barrier"}; };

/// Mixin of SyncManager: the factory methods for queues and locks.
template <class Manager>
class sync_factories {
public:
    /// Python's manager.Queue(maxsize); Queue<T>() is the typed form.
    template <class T = object>
    Proxy<QueueRef<T>> Queue(long long maxsize = 0) { return make<QueueRef<T>>("Queue", maxsize); }
    /// Python's manager.JoinableQueue(maxsize): the same queue; use
    /// task_done() and join().
    template <class T = object>
    Proxy<QueueRef<T>> JoinableQueue(long long maxsize = 0) { return make<QueueRef<T>>("JoinableQueue", maxsize); }
    Proxy<LockRef> Lock() { return make<LockRef>("Lock", false); }
    Proxy<LockRef> RLock() { return make<LockRef>("RLock", true); }
    Proxy<SemaphoreRef> Semaphore(long long value = 1) { return make<SemaphoreRef>("Semaphore", value, false); }
    Proxy<SemaphoreRef> BoundedSemaphore(long long value = 1) { return make<SemaphoreRef>("BoundedSemaphore", value, true); }
    Proxy<EventRef> Event() { return make<EventRef>("Event"); }
    Proxy<ConditionRef> Condition() { return make<ConditionRef>("Condition"); }
    /// Python's manager.Condition(lock): a condition on a Lock or RLock of
    /// this manager, which it uses itself (acquiring either is the same).
    Proxy<ConditionRef> Condition(const Proxy<LockRef>& lock) { return make<ConditionRef>("Condition", lock._token()); }
    /// Python's manager.Barrier(parties, timeout).
    Proxy<BarrierRef> Barrier(long long parties, std::optional<double> timeout = std::nullopt) {
        return make<BarrierRef>("Barrier", parties, timeout.value_or(-1));
    }
    /// Python's manager.Barrier(parties, action, timeout): the action runs in
    /// the server once per cycle (see server_action for what can be sent).
    Proxy<BarrierRef> Barrier(long long parties, server_action action, std::optional<double> timeout = std::nullopt) {
        return make<BarrierRef>("Barrier", parties, std::move(action), timeout.value_or(-1));
    }

protected:
    static void register_sync_types() {
        register_exception<Empty>();
        register_exception<Full>();
        register_exception<ShutDown>();
        register_exception<BrokenBarrierError>();
        // Known to a server program that never makes them itself (one
        // serving SyncManager types from get_server()).
        (void)&constructor_registrar<ConditionRef, Token>::registered;
        (void)&constructor_registrar<BarrierRef, long long, server_action, double>::registered;
    }
    // What a CPython client may create (SyncManager::register_python_types).
    template <class M>
    static void register_python_sync_types() {
        (void)&M::template sync_registered<QueueRef<object>>::done;
        (void)&M::template sync_registered<LockRef>::done;
        (void)&M::template sync_registered<SemaphoreRef>::done;
        (void)&M::template sync_registered<EventRef>::done;
        (void)&M::template sync_registered<ConditionRef>::done;
        (void)&M::template sync_registered<BarrierRef>::done;
        (void)&constructor_registrar<QueueRef<object>, long long>::registered;
        (void)&constructor_registrar<LockRef, bool>::registered;
        (void)&constructor_registrar<SemaphoreRef, long long, bool>::registered;
        (void)&constructor_registrar<EventRef>::registered;
        (void)&constructor_registrar<ConditionRef>::registered;
        (void)&constructor_registrar<BarrierRef, long long, double>::registered;
    }

    template <class R>
    struct sync_registered;

private:
    template <class R, class... A>
    Proxy<R> make(const char* name, A&&... args) {
        std::string tid = std::string(name) + "[" + multiprocessing::detail::type_name<R>() + "]";
        (void)&sync_registered<R>::done;
        return static_cast<Manager&>(*this).template create_as<R>(tid, std::forward<A>(args)...);
    }
};

// Registered before main() (like the containers) under every name the
// factories use, so a server forked later knows them.
template <class Manager>
template <class R>
struct sync_factories<Manager>::sync_registered {
    static bool add() {
        for (const char* n : sync_names<R>::value)
            Manager::template register_type<R>(std::string(n) + "[" + multiprocessing::detail::type_name<R>() + "]");
        return true;
    }
    static bool done;  // not const: see constructor_registrar::registered
};

template <class Manager>
template <class R>
bool sync_factories<Manager>::sync_registered<R>::done = sync_factories<Manager>::sync_registered<R>::add();

}  // namespace detail
}  // namespace multiprocessing::managers

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/sync.ipp"
#endif

// Python's multiprocessing.sharedctypes (fork context): Value<T> and
// Array<T> in anonymous shared memory, inherited by forked children, each
// guarded by a process-shared recursive lock that survives its holder's
// death.
//
// Differences from Python, for the whole header:
//  - Typed: Value<int> instead of Value('i', ...); no typecode strings.
//    T is any trivially copyable type (what ctypes can hold), so a plain
//    struct stands in for a ctypes Structure.
//  - Memory is shared with children forked after construction (Process,
//    or fork() directly) — not with unrelated processes, and not through
//    pickling; that is Python's fork-context behaviour too.
//  - Value and Array are handles: copies share the same memory and lock.
//    The memory is unmapped in a process when its last handle there dies.
//  - Each Value/Array maps its own pages (Python packs them into a heap).
#pragma once

#include "multiprocessing/detail/config.hpp"
#include "multiprocessing/exceptions.hpp"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace multiprocessing {

namespace detail {

/// An anonymous MAP_SHARED|MAP_ANONYMOUS mapping, zero-filled: shared with
/// every child forked afterwards.  The pointer munmaps when the last copy
/// in this process goes.
inline std::shared_ptr<void> map_shared_anonymous(std::size_t bytes) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap");
    return std::shared_ptr<void>(p, [bytes](void* q) { ::munmap(q, bytes); });
}

/// The lock's state in shared memory.  `owner`, `depth` and `owner_died`
/// are written only by the thread holding `mutex`; `owner` is atomic
/// because release() by a non-holder reads it to refuse.
struct robust_block {
    pthread_mutex_t mutex;
    std::atomic<long> owner{0};  // kernel tid of the holder, 0 if free
    long depth = 0;              // recursion depth of the holder
    bool owner_died = false;     // the holder recovered the lock from a dead one
};

inline long current_tid() noexcept { return static_cast<long>(::syscall(SYS_gettid)); }

/// Bytes before the first T when the lock shares the T's mapping.
template <class T>
constexpr std::size_t lock_space(bool own_lock) {
    constexpr std::size_t a = alignof(T) < alignof(std::max_align_t) ? alignof(std::max_align_t) : alignof(T);
    return own_lock ? (sizeof(robust_block) + a - 1) / a * a : 0;
}

}  // namespace detail

/// Python's RLock for sharedctypes (the default lock of Value and Array):
/// a recursive, process-shared pthread mutex in shared memory, usable with
/// std::lock_guard / std::unique_lock (lock, try_lock, unlock) and with
/// Python's acquire(block, timeout) / release().
///
/// Robust, unlike Python's semaphore-based RLock (and Boost 1.74's
/// interprocess_mutex): if the holder dies while holding it (SIGKILL,
/// crash, _exit), the next process to lock gets the lock instead of
/// waiting forever, and previous_owner_died() is true for it.  The data
/// the dead holder guarded may then be half-updated; check or repair it
/// before releasing.  Waiters already blocked are woken the same way.
///
/// A handle: copies refer to the same lock.  Lives in its own anonymous
/// shared mapping (or inside a Value/Array's), so it is shared with
/// children forked after it is made.
class RobustRLock {
public:
    /// A new, unlocked lock.
    RobustRLock();

    /// Blocks until held (recursive: the holder may lock again).
    void lock() { (void)take(::pthread_mutex_lock(&b_->mutex)); }
    /// Takes the lock if free or already ours; false if another holds it.
    bool try_lock() { return take(::pthread_mutex_trylock(&b_->mutex)); }
    /// Releases one level.  std::system_error(EPERM) if this thread does
    /// not hold it (Python raises AssertionError).
    void unlock();

    /// Python's acquire(block=True, timeout=None): true once held.  With
    /// block=false it only tries; a timeout in seconds bounds the wait (a
    /// negative one means 0, as in Python's SemLock).
    bool acquire(bool block = true, std::optional<double> timeout = std::nullopt);
    /// Python's release().
    void release() { unlock(); }

    /// True while the caller holds the lock it got from a holder that died
    /// holding it (at the outermost acquire).  Only meaningful when held.
    bool previous_owner_died() const noexcept { return b_->owner_died; }

    /// Same lock (Python's `lock == val.get_lock()`).
    friend bool operator==(const RobustRLock& a, const RobustRLock& b) noexcept { return a.b_ == b.b_; }
    friend bool operator!=(const RobustRLock& a, const RobustRLock& b) noexcept { return a.b_ != b.b_; }

private:
    template <class T> friend class Value;
    template <class T> friend class Array;

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 30))
    static constexpr clockid_t clock_id = CLOCK_MONOTONIC;  // immune to clock changes
#else
    static constexpr clockid_t clock_id = CLOCK_REALTIME;
#endif

    RobustRLock(std::shared_ptr<void> owner, void* where);

    static void init(void* where);

    // Interprets a lock call's result; true if the lock is now held.
    bool take(int rc);

    std::shared_ptr<void> owner_;  // keeps the mapping alive
    detail::robust_block* b_ = nullptr;
};

/// Python's lock=False: a Value or Array without a lock (Python's
/// RawValue/RawArray).  get_lock() then throws AttributeError.
struct lock_false_t {
    explicit constexpr lock_false_t() = default;
};
inline constexpr lock_false_t lock_false{};

/// The `lock` argument of Value and Array, as in Python: omitted (a new
/// lock), lock_false (none), or an existing RobustRLock to share.
class LockOption {
public:
    LockOption() = default;
    LockOption(lock_false_t) : none_(true) {}
    LockOption(RobustRLock l) : lock_(std::move(l)) {}

private:
    template <class T> friend class Value;
    template <class T> friend class Array;
    bool none_ = false;
    std::optional<RobustRLock> lock_;
};

/// Python's multiprocessing.Value(typecode, value, lock=True) for a C++
/// type T: one T in shared memory plus a lock.
///
/// value() and set() take the lock, like Python's synchronized wrapper;
/// `v.set(v.value() + 1)` is therefore two separate locked steps — hold
/// get_lock() around both for an atomic update (the lock is recursive, so
/// value()/set() inside still work), as in Python's
/// `with v.get_lock(): v.value += 1`.
///
/// Differs from Python: a handle (copies share the memory), and set() is
/// const for that reason.  value() copies T out.
template <class T>
class Value {
    static_assert(std::is_trivially_copyable_v<T>, "Value<T> needs a trivially copyable T");

public:
    /// Value(T{}) / Value(v) with a new lock, Value(v, lock_false) without,
    /// Value(v, some_lock) sharing one.
    explicit Value(const T& v = T{}, LockOption lock = {}) {
        std::size_t at = detail::lock_space<T>(!lock.none_ && !lock.lock_);
        mem_ = detail::map_shared_anonymous(at + sizeof(T));
        if (lock.lock_) lock_ = lock.lock_;
        else if (!lock.none_) lock_ = RobustRLock(mem_, mem_.get());
        obj_ = new (static_cast<char*>(mem_.get()) + at) T(v);
    }

    /// The value, read under the lock (if any).
    T value() const {
        if (!lock_) return *obj_;
        std::lock_guard<RobustRLock> g(*lock_);
        return *obj_;
    }
    /// Stores v under the lock (if any).
    void set(const T& v) const {
        if (!lock_) { *obj_ = v; return; }
        std::lock_guard<RobustRLock> g(*lock_);
        *obj_ = v;
    }

    /// The lock; AttributeError for a lock_false Value (Python: no such
    /// attribute).
    RobustRLock& get_lock() const {
        if (!lock_) throw AttributeError("'Value' made with lock_false has no attribute 'get_lock'");
        return *lock_;
    }
    bool has_lock() const noexcept { return lock_.has_value(); }
    /// The shared T itself, unlocked (Python's get_obj()).
    T& get_obj() const noexcept { return *obj_; }

private:
    std::shared_ptr<void> mem_;
    mutable std::optional<RobustRLock> lock_;
    T* obj_ = nullptr;
};

/// Python's RawValue(typecode, value): a Value without a lock.
template <class T>
Value<T> RawValue(const T& v = T{}) { return Value<T>(v, lock_false); }

/// Python's multiprocessing.Array(typecode, size_or_initializer, lock=True)
/// for a C++ type T: a fixed number of T in shared memory plus a lock.
///
/// get(i), set(i, v), tolist() and assign() take the lock (Python's
/// synchronized arr[i], arr[i] = v, arr[:], arr[:] = ...).  operator[],
/// begin()/end() and get_obj() are raw, unlocked access to the shared
/// elements — hold get_lock() around them when others may write.
///
/// Differs from Python: a handle (copies share the memory); no slicing;
/// like std::vector, Array<int>{10} holds one element 10 while
/// Array<int>(10) holds ten zeros.
template <class T>
class Array {
    static_assert(std::is_trivially_copyable_v<T>, "Array<T> needs a trivially copyable T");

public:
    /// n zero-filled elements (Python's Array('i', n)).
    explicit Array(std::size_t n, LockOption lock = {}) { allocate(n, std::move(lock)); }
    /// A copy of `init` (Python's Array('i', [1, 2, 3])).
    Array(std::initializer_list<T> init, LockOption lock = {}) {
        allocate(init.size(), std::move(lock));
        std::size_t i = 0;
        for (const T& v : init) new (data_ + i++) T(v);
    }
    explicit Array(const std::vector<T>& init, LockOption lock = {}) {
        allocate(init.size(), std::move(lock));
        for (std::size_t i = 0; i < init.size(); ++i) new (data_ + i) T(init[i]);
    }

    /// len(arr).
    std::size_t size() const noexcept { return n_; }

    /// arr[i] under the lock; negative i counts from the end; IndexError
    /// when out of range.
    T get(std::ptrdiff_t i) const {
        std::size_t p = position(i);
        if (!lock_) return data_[p];
        std::lock_guard<RobustRLock> g(*lock_);
        return data_[p];
    }
    /// arr[i] = v under the lock.
    void set(std::ptrdiff_t i, const T& v) const {
        std::size_t p = position(i);
        if (!lock_) { data_[p] = v; return; }
        std::lock_guard<RobustRLock> g(*lock_);
        data_[p] = v;
    }
    /// list(arr[:]): a snapshot taken under the lock.
    std::vector<T> tolist() const {
        if (!lock_) return std::vector<T>(data_, data_ + n_);
        std::lock_guard<RobustRLock> g(*lock_);
        return std::vector<T>(data_, data_ + n_);
    }
    /// arr[:] = values under the lock; ValueError unless the sizes match
    /// (Python: "Can only assign sequence of same size").
    void assign(const std::vector<T>& values) const {
        if (values.size() != n_) throw ValueError("Can only assign sequence of same size");
        if (!lock_) { std::copy(values.begin(), values.end(), data_); return; }
        std::lock_guard<RobustRLock> g(*lock_);
        std::copy(values.begin(), values.end(), data_);
    }

    /// Raw, unchecked, unlocked element access.
    T& operator[](std::size_t i) const noexcept { return data_[i]; }
    T* begin() const noexcept { return data_; }
    T* end() const noexcept { return data_ + n_; }
    T* data() const noexcept { return data_; }
    /// The shared elements themselves, unlocked (Python's get_obj()).
    T* get_obj() const noexcept { return data_; }

    /// The lock; AttributeError for a lock_false Array.
    RobustRLock& get_lock() const {
        if (!lock_) throw AttributeError("'Array' made with lock_false has no attribute 'get_lock'");
        return *lock_;
    }
    bool has_lock() const noexcept { return lock_.has_value(); }

private:
    void allocate(std::size_t n, LockOption lock) {
        std::size_t at = detail::lock_space<T>(!lock.none_ && !lock.lock_);
        // Indexes are ptrdiff_t, and the size must not wrap.
        if (n > (static_cast<std::size_t>(PTRDIFF_MAX) - at) / sizeof(T)) throw OverflowError("array too large");
        // An empty array still maps a page, so data_ is never null.
        mem_ = detail::map_shared_anonymous(at + (n ? n : 1) * sizeof(T));
        if (lock.lock_) lock_ = lock.lock_;
        else if (!lock.none_) lock_ = RobustRLock(mem_, mem_.get());
        data_ = reinterpret_cast<T*>(static_cast<char*>(mem_.get()) + at);
        n_ = n;
    }
    std::size_t position(std::ptrdiff_t i) const {
        auto n = static_cast<std::ptrdiff_t>(n_);
        if (i < 0) i += n;
        if (i < 0 || i >= n) throw IndexError("invalid index");
        return static_cast<std::size_t>(i);
    }

    std::shared_ptr<void> mem_;
    mutable std::optional<RobustRLock> lock_;
    T* data_ = nullptr;
    std::size_t n_ = 0;
};

/// Python's RawArray(typecode, size): an Array without a lock.
template <class T>
Array<T> RawArray(std::size_t n) { return Array<T>(n, lock_false); }
template <class T>
Array<T> RawArray(const std::vector<T>& init) { return Array<T>(init, lock_false); }

}  // namespace multiprocessing

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/sharedctypes.ipp"
#endif

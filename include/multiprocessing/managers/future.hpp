// managers::Future: the result of a pipelined call (managers::call_async).
#pragma once

#include "multiprocessing/detail/config.hpp"
#include "multiprocessing/detail/async.hpp"

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

namespace multiprocessing::managers {

namespace detail {
template <class T>
struct async_result : pending_call {
    std::optional<T> value;
};
template <>
struct async_result<void> : pending_call {};
}  // namespace detail

/// The result of managers::call_async, to come: the members of
/// std::future (get, wait, wait_for, wait_until, valid) and Python's
/// AsyncResult.ready().  Unlike std::future, waiting reads the replies on
/// the waiting thread (no hand-off between threads), and a future made
/// before fork() cannot be waited for in the child (ProcessError), where a
/// std::future would wait forever.  The thread that waits may decode
/// other calls' replies on the way, so a wait with a deadline can overrun
/// it by a frame's reading.  Move-only; get() once.
template <class T>
class Future {
public:
    Future() noexcept = default;
    explicit Future(std::shared_ptr<detail::async_result<T>> s) noexcept : s_(std::move(s)) {}
    Future(Future&&) noexcept = default;
    Future& operator=(Future&&) noexcept = default;
    Future(const Future&) = delete;
    Future& operator=(const Future&) = delete;

    /// Whether this refers to a call (false once get() took its result).
    bool valid() const noexcept { return s_ != nullptr; }

    /// Whether the reply is here: get() will not wait.  Reads replies that
    /// have already arrived (a frame begun is read to its end), but never
    /// waits for one to begin.
    bool ready() const {
        check();
        return s_->done() || s_->channel->wait(*s_, detail::async_channel::clock::now());
    }

    /// Waits for the reply.
    void wait() const {
        check();
        s_->channel->wait(*s_, std::nullopt);
    }

    template <class Rep, class Period>
    std::future_status wait_for(const std::chrono::duration<Rep, Period>& d) const {
        if (d > std::chrono::hours(24 * 365 * 100)) {  // "forever": the sum below would overflow
            check();
            wait();
            return std::future_status::ready;
        }
        return wait_until(std::chrono::steady_clock::now() + d);
    }

    template <class Clock, class Duration>
    std::future_status wait_until(const std::chrono::time_point<Clock, Duration>& t) const {
        check();
        auto now = Clock::now();
        if (t > now && t - now > std::chrono::hours(24 * 365 * 100)) {  // "forever": the sum below would overflow
            wait();
            return std::future_status::ready;
        }
        auto dl = detail::async_channel::clock::now() +
                  std::chrono::duration_cast<detail::async_channel::clock::duration>(t - now);
        return s_->channel->wait(*s_, dl) ? std::future_status::ready : std::future_status::timeout;
    }

    /// Waits, then returns the result or throws what the call raised (or
    /// ConnectionError if the server was lost).  Leaves the future invalid.
    T get() {
        wait();
        auto s = std::move(s_);
        if (!s->done()) throw ConnectionError("lost connection to the manager");  // never: wait() completes it
        if (s->error) std::rethrow_exception(s->error);
        if constexpr (!std::is_void_v<T>) return std::move(*s->value);
    }

private:
    void check() const {
        if (!s_) throw std::future_error(std::future_errc::no_state);
    }

    std::shared_ptr<detail::async_result<T>> s_;
};

}  // namespace multiprocessing::managers

// SyncManager's Pool: a process pool that lives in the manager's server
// process, as CPython's `SyncManager.register('Pool', pool.Pool)` does.
//
// Functions cross by name: each program registers them (register_function
// or MP_REGISTER_FUNCTION) before the manager starts, so the server and the
// workers it forks know them.  A request carries the name, a signature hash
// and the arguments as one archive per item; the pool hands chunks of items
// to idle workers over socket pairs and collects one outcome per item.
//
// Workers are forked by the pool's own dispatcher thread, so their
// PR_SET_PDEATHSIG (which follows the forking thread) kills them with the
// pool or the server, however either ends.  A worker that dies while it runs
// a task fails that task's items with ProcessError and is replaced; CPython's
// pool leaves such a task unfinished forever.
#pragma once

#include "multiprocessing/detail/config.hpp"
#include "multiprocessing/detail/registry.hpp"
#include "multiprocessing/managers/sync.hpp"
#include "multiprocessing/exceptions.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace multiprocessing::managers::detail {

/// One function a pool can run: its signature and how to call it on an
/// argument archive, writing the result archive.
struct pool_function {
    std::uint64_t sig = 0;
    std::string text;  // "int(int, double)", for error messages
    std::function<void(const char*, std::size_t, std::string&)> call;
};

template <class R, class... P>
std::uint64_t function_signature() {
    static const std::uint64_t h = signature_hash<R, P...>("function");
    return h;
}

/// The functions registered in this process, by name and (for plain
/// functions) by address, so `pool.apply(square, 7)` finds "square".
class function_table {
public:
    static function_table& instance();
    void add(const std::string& name, std::shared_ptr<const pool_function> f, const std::string& key);
    std::shared_ptr<const pool_function> find(const std::string& name) const;
    std::string name_of(const std::string& key) const;

    /// In a new worker: another server thread may have held the lock at
    /// fork() (a fork hook would order it against every other fork lock).
    void after_fork() { new (&mu_) std::mutex; }

private:
    mutable std::mutex mu_;
    std::unordered_map<std::string, std::shared_ptr<const pool_function>> by_name_;
    std::unordered_map<std::string, std::string> by_key_;
};

/// The lookup key of a function pointer: its type and its bytes.
template <class F>
std::string function_key(F* f) {
    std::string k = typeid(F*).name();
    k += '@';
    k.append(reinterpret_cast<const char*>(&f), sizeof f);
    return k;
}

/// What became of one item: its result archive, or an exception's type
/// name and message.  The type is rebuilt where it is raised again, so a
/// worker never touches the exception table (whose lock another server
/// thread may have held when the worker was forked).
struct pool_outcome {
    bool ok = false;
    std::string value;  // ok: result archive; error: message
    std::string type;

    /// The library's and the registered types come back as themselves,
    /// others as RemoteError naming the type.
    [[noreturn]] void rethrow() const { exception_table::instance().rethrow(type, value); }
    static pool_outcome error(const std::exception& e) {
        pool_outcome o;
        if (auto* r = dynamic_cast<const RemoteError*>(&e)) {
            o.type = r->type_name();
            o.value = r->message();
        } else {
            o.type = multiprocessing::detail::demangle(typeid(e).name());
            o.value = e.what();
        }
        return o;
    }
    static pool_outcome process_error(std::string message) {
        pool_outcome o;
        o.type = multiprocessing::detail::type_name<ProcessError>();
        o.value = std::move(message);
        return o;
    }
};

/// Results of one apply/map/imap call, filled in by the dispatcher.
struct pool_job {
    enum mode_t { all, ordered, unordered };
    pool_job(mode_t m, std::size_t n) : mode(m), total(n), items(m == unordered ? 0 : n), have(m == unordered ? 0 : n) {}

    std::mutex mu;
    std::condition_variable cv;
    const mode_t mode;
    const std::size_t total;
    std::size_t done = 0;
    std::vector<pool_outcome> items;    // all, ordered: by index
    std::vector<char> have;             // all, ordered: arrived yet?
    std::deque<pool_outcome> arrived;   // unordered: in arrival order
    std::size_t next = 0;               // ordered, unordered: items handed out
    std::optional<pool_outcome> failure;  // all: the first error to arrive

    /// A chunk's outcomes, from index first on: one lock, one wake-up.
    void deliver(std::size_t first, std::vector<pool_outcome> os) {
        std::lock_guard<std::mutex> g(mu);
        for (std::size_t i = 0; i < os.size(); ++i) deliver_locked(first + i, std::move(os[i]));
        cv.notify_all();
    }
    void deliver_locked(std::size_t index, pool_outcome o) {
        if (mode == unordered) {
            arrived.push_back(std::move(o));
        } else {
            if (index >= total || have[index]) return;
            if (!o.ok && !failure) failure = o;
            items[index] = std::move(o);
            have[index] = 1;
        }
        ++done;
    }
    /// Python's ready(): every item done, or (map) one failed: fail fast.
    bool ready_locked() const { return done == total || (mode == all && failure); }
};

/// A chunk of one job's items for one worker.
struct pool_task {
    std::shared_ptr<pool_job> job;
    std::string fname;
    std::size_t first = 0;
    std::vector<std::string> args;
};

// ---- framing between the dispatcher and a worker (u32 length + bytes) ----

inline bool pool_read_full(int fd, char* p, std::size_t n) {
    while (n > 0) {
        ssize_t r = ::read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}
inline bool pool_write_full(int fd, const char* p, std::size_t n) {
    while (n > 0) {
        ssize_t r = ::send(fd, p, n, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}
inline bool pool_read_frame(int fd, std::string& s) {
    std::uint32_t n = 0;
    if (!pool_read_full(fd, reinterpret_cast<char*>(&n), sizeof n)) return false;
    s.resize(n);
    return pool_read_full(fd, &s[0], n);
}
inline void pool_put_u32(std::string& s, std::uint32_t v) { s.append(reinterpret_cast<const char*>(&v), sizeof v); }
inline void pool_put_str(std::string& s, const std::string& v) {
    pool_put_u32(s, static_cast<std::uint32_t>(v.size()));
    s += v;
}
inline bool pool_write_frame(int fd, std::string& body) {  // body starts with 4 bytes reserved for the length
    std::uint32_t n = static_cast<std::uint32_t>(body.size() - 4);
    std::memcpy(&body[0], &n, sizeof n);
    return pool_write_full(fd, body.data(), body.size());
}

/// A worker's life: read a chunk, run each item, send the outcomes, until
/// the dispatcher closes the socket.  Never returns.
[[noreturn]] inline void pool_worker_main(int fd) {
    std::string in, out;
    for (;;) {
        if (!pool_read_frame(fd, in)) ::_exit(0);
        reader r{in.data(), in.size()};
        std::string fname = r.str();
        auto count = r.pod<std::uint32_t>();
        auto f = function_table::instance().find(fname);
        out.assign(4, '\0');
        pool_put_u32(out, count);
        std::string result;
        for (std::uint32_t i = 0; i < count; ++i) {
            std::string args = r.str();
            pool_outcome o;
            try {
                if (!f) throw AttributeError("no function registered as '" + fname + "' in the pool's process");
                result.clear();
                f->call(args.data(), args.size(), result);
                o.ok = true;
                o.value.swap(result);
            } catch (const std::exception& e) {
                o = pool_outcome::error(e);
            } catch (...) {
                o.type = "unknown";
                if (const std::type_info* t = abi::__cxa_current_exception_type())
                    o.type = multiprocessing::detail::demangle(t->name());
                o.value = "exception of type " + o.type;
            }
            out += static_cast<char>(o.ok ? 1 : 0);
            if (!o.ok) pool_put_str(out, o.type);
            pool_put_str(out, o.value);
        }
        // The worker ends with _exit(): what the function printed must not
        // wait in a buffer for an exit that never flushes it.
        std::cout.flush();
        std::fflush(nullptr);
        if (!pool_write_frame(fd, out)) ::_exit(0);
    }
}

/// The pool itself: task queue, workers and the dispatcher thread that
/// forks them, feeds them and collects their outcomes.
class pool_core : public std::enable_shared_from_this<pool_core> {
public:
    enum state_t { run, closing, terminating };

    explicit pool_core(std::size_t processes);
    ~pool_core();
    /// Starts the dispatcher and waits until it has forked the workers.
    void start();

    std::size_t size() const { return size_; }

    void submit(std::vector<pool_task> tasks);
    void close();
    void terminate();
    /// Waits for every worker to be reaped (after close or terminate).
    bool join(double timeout);
    /// Stops the dispatcher (terminating the workers) and waits for it.
    void stop();
    std::vector<long long> pids() const;

private:
    struct worker {
        pid_t pid = -1;
        int fd = -1;
        std::optional<pool_task> task;  // the chunk it runs
    };

    void wake();

    // Forked from the dispatcher thread: PDEATHSIG follows that thread.
    bool spawn();

    // Python's _maintain_pool: back to full strength after a worker died
    // (or a fork failed: retried at the next turn).
    void maintain();

    // A retired worker exits on EOF; one stuck anyway is killed.
    static void reap(pid_t pid);
    static std::optional<int> wait_pid_for(pid_t pid, double seconds);

    static std::string describe(int status);

    void fail(const pool_task& t, const std::string& why);

    // Reads one worker's outcomes; false if the worker is gone.
    bool collect(worker& w);

    void dispatch();

    worker* find_worker(int fd);

    // An idle worker after close(): EOF tells it to exit.
    void retire_worker(int fd);

    void worker_died(int fd);

    // terminate(): every worker ends, every unfinished item fails.
    void shutdown_workers();

    const std::size_t size_;
    mutable std::mutex mu_;
    std::condition_variable done_cv_;
    std::deque<pool_task> queue_;
    std::vector<worker> workers_;
    state_t state_ = run;
    bool finished_ = false;
    bool spawned_ = false;
    int wake_[2] = {-1, -1};
    std::thread thread_;
};

/// Waits on a job until pred holds; TimeoutError when timeout (>= 0) passes.
template <class Pred>
void wait_job(pool_job& j, std::unique_lock<std::mutex>& lk, double timeout, Pred pred) {
    if (!wait_sliced(j.cv, lk, timeout, pred)) throw TimeoutError("");
}

}  // namespace multiprocessing::managers::detail

namespace multiprocessing::managers {

/// Referent of the proxy apply_async()/map_async() return: Python's
/// pool.AsyncResult, served by the manager.  get() gives the result
/// archives (one for apply_async, one per item for map_async).
class AsyncResultRef {
public:
    explicit AsyncResultRef(std::shared_ptr<detail::pool_job> j) : job_(std::move(j)) {}

    /// timeout < 0 waits forever; TimeoutError when it passes.
    std::vector<std::string> get(double timeout);
    /// True if ready when it returns (Python's wait() returns None).
    bool wait(double timeout);
    bool ready() const;
    bool successful() const;

private:
    std::shared_ptr<detail::pool_job> job_;
};

/// Referent of the proxy imap()/imap_unordered() return: Python's
/// IMapIterator, served by the manager.
class IteratorRef {
public:
    explicit IteratorRef(std::shared_ptr<detail::pool_job> j) : job_(std::move(j)) {}

    /// The next result archive; StopIteration after the last, TimeoutError
    /// if none comes within timeout (< 0: forever), the item's own
    /// exception if it failed.
    std::string next(double timeout) { return std::move(next_batch(1, timeout).front()); }

    /// Up to max results at once (at least one): those ready now, in the
    /// iterator's order, stopping before a failed item, whose exception the
    /// next call raises.  Saves a round trip per item.
    std::vector<std::string> next_batch(long long max, double timeout);

private:
    std::shared_ptr<detail::pool_job> job_;
};

/// Referent of SyncManager::Pool(): Python's multiprocessing.pool.Pool,
/// living in the manager's server process.  Functions are named, arguments
/// and results are archives; PoolProxy gives the typed interface.
class PoolRef {
public:
    /// given = false: one worker per CPU, like Python's processes=None.
    PoolRef(bool given, long long processes);
    ~PoolRef() { core_->stop(); }
    PoolRef(const PoolRef&) = delete;
    PoolRef& operator=(const PoolRef&) = delete;

    std::string apply(const std::string& fname, std::uint64_t sig, const std::string& args);
    std::shared_ptr<AsyncResultRef> apply_async(const std::string& fname, std::uint64_t sig, const std::string& args);
    std::vector<std::string> map(const std::string& fname, std::uint64_t sig, std::vector<std::string> items,
                                 long long chunksize);
    std::shared_ptr<AsyncResultRef> map_async(const std::string& fname, std::uint64_t sig, std::vector<std::string> items,
                                              long long chunksize);
    // starmap is map on the wire: the client packs each tuple as the arguments.
    std::vector<std::string> starmap(const std::string& fname, std::uint64_t sig, std::vector<std::string> items,
                                     long long chunksize);
    std::shared_ptr<AsyncResultRef> starmap_async(const std::string& fname, std::uint64_t sig,
                                                  std::vector<std::string> items, long long chunksize);
    std::shared_ptr<IteratorRef> imap(const std::string& fname, std::uint64_t sig, std::vector<std::string> items,
                                      long long chunksize);
    std::shared_ptr<IteratorRef> imap_unordered(const std::string& fname, std::uint64_t sig,
                                                std::vector<std::string> items, long long chunksize);
    void close() { core_->close(); }
    void terminate() { core_->terminate(); }
    bool join(double timeout) { return core_->join(timeout); }
    /// The workers' pids (Python's pool._pool, as pids).
    std::vector<long long> pids() const { return core_->pids(); }

private:
    // Python's defaults: map splits into about 4 chunks per worker, imap
    // sends items one by one.
    long long map_chunksize(long long requested, long long dflt) const;

    std::shared_ptr<detail::pool_job> submit(const std::string& fname, std::uint64_t sig,
                                             std::vector<std::string> items, long long chunksize,
                                             detail::pool_job::mode_t mode);

    std::shared_ptr<detail::pool_core> core_;
};

template <> struct self_locking<PoolRef> : std::true_type {};
template <> struct self_locking<AsyncResultRef> : std::true_type {};
template <> struct self_locking<IteratorRef> : std::true_type {};

}  // namespace multiprocessing::managers

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/pool.ipp"
#endif

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
    static function_table& instance() {
        static function_table* t = new function_table;  // leaked: used by forked workers at exit
        return *t;
    }
    void add(const std::string& name, std::shared_ptr<const pool_function> f, const std::string& key) {
        std::lock_guard<std::mutex> g(mu_);
        by_name_[name] = std::move(f);
        if (!key.empty()) by_key_[key] = name;
    }
    std::shared_ptr<const pool_function> find(const std::string& name) const {
        std::lock_guard<std::mutex> g(mu_);
        auto it = by_name_.find(name);
        return it == by_name_.end() ? nullptr : it->second;
    }
    std::string name_of(const std::string& key) const {
        std::lock_guard<std::mutex> g(mu_);
        auto it = by_key_.find(key);
        return it == by_key_.end() ? std::string() : it->second;
    }

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

    explicit pool_core(std::size_t processes) : size_(processes) {
        if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) throw ProcessError("pipe failed");
    }
    ~pool_core() {
        ::close(wake_[0]);
        ::close(wake_[1]);
    }
    /// Starts the dispatcher and waits until it has forked the workers.
    void start() {
        thread_ = std::thread([self = shared_from_this()] { self->dispatch(); });
        std::unique_lock<std::mutex> lk(mu_);
        done_cv_.wait(lk, [&] { return spawned_; });
    }

    std::size_t size() const { return size_; }

    void submit(std::vector<pool_task> tasks) {
        std::lock_guard<std::mutex> g(mu_);
        if (state_ != run) throw ValueError("Pool not running");
        for (auto& t : tasks) queue_.push_back(std::move(t));
        wake();
    }
    void close() {
        std::lock_guard<std::mutex> g(mu_);
        if (state_ == run) state_ = closing;
        wake();
    }
    void terminate() {
        std::lock_guard<std::mutex> g(mu_);
        state_ = terminating;
        wake();
    }
    /// Waits for every worker to be reaped (after close or terminate).
    bool join(double timeout) {
        std::unique_lock<std::mutex> lk(mu_);
        if (state_ == run) throw ValueError("Pool is still running");
        return wait_sliced(done_cv_, lk, timeout, [&] { return finished_; });
    }
    /// Stops the dispatcher (terminating the workers) and waits for it.
    void stop() {
        terminate();
        if (thread_.joinable()) thread_.join();
    }
    std::vector<long long> pids() const {
        std::lock_guard<std::mutex> g(mu_);
        std::vector<long long> v;
        for (auto& w : workers_) v.push_back(w.pid);
        return v;
    }

private:
    struct worker {
        pid_t pid = -1;
        int fd = -1;
        std::optional<pool_task> task;  // the chunk it runs
    };

    void wake() {
        char c = 1;
        [[maybe_unused]] auto w = ::write(wake_[1], &c, 1);
    }

    // Forked from the dispatcher thread: PDEATHSIG follows that thread.
    bool spawn() {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return false;
        std::cout.flush();
        std::cerr.flush();
        std::fflush(nullptr);
        pid_t parent = ::getpid();
        pid_t pid = ::fork();
        if (pid < 0) {
            ::close(sv[0]);
            ::close(sv[1]);
            return false;
        }
        if (pid == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) ::_exit(1);
            // The server's signal handlers and mask are not the worker's:
            // terminate() sends SIGTERM, Ctrl-C belongs to the owner.  All
            // are blocked until then (the dispatcher blocks them).
            ::signal(SIGTERM, SIG_DFL);
            ::signal(SIGHUP, SIG_DFL);
            ::signal(SIGINT, SIG_IGN);
            sigset_t none;
            sigemptyset(&none);
            ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
            // Keep only the pool socket: a worker must not hold the server's
            // listener or its clients' connections open.
            int fd = sv[1];
            if (fd != 3) {
                ::dup2(fd, 3);  // dup2 clears FD_CLOEXEC on the copy
                fd = 3;
            }
            if (::syscall(SYS_close_range, 4u, ~0u, 0u) != 0)
                for (int i = 4; i < 65536; ++i) ::close(i);
            function_table::instance().after_fork();
            pool_worker_main(fd);
        }
        ::close(sv[1]);
        std::lock_guard<std::mutex> g(mu_);
        workers_.push_back(worker{pid, sv[0], std::nullopt});
        return true;
    }

    // Python's _maintain_pool: back to full strength after a worker died
    // (or a fork failed: retried at the next turn).
    void maintain() {
        for (;;) {
            {
                std::lock_guard<std::mutex> g(mu_);
                bool needed = state_ == run || (state_ == closing && !queue_.empty());
                if (!needed || workers_.size() >= size_) return;
            }
            if (!spawn()) return;
        }
    }

    // A retired worker exits on EOF; one stuck anyway is killed.
    static void reap(pid_t pid) {
        auto st = wait_pid_for(pid, 5.0);
        if (!st) {
            ::kill(pid, SIGKILL);
            wait_pid_for(pid, 10.0);
        }
    }
    static std::optional<int> wait_pid_for(pid_t pid, double seconds) {
        auto end = clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds));
        for (;;) {
            int status = 0;
            pid_t r = ::waitpid(pid, &status, WNOHANG);
            if (r == pid) return status;
            if (r < 0 && errno != EINTR) return 0;
            if (clock::now() >= end) return std::nullopt;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }

    static std::string describe(int status) {
        if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
        return "exited with code " + std::to_string(WEXITSTATUS(status));
    }

    void fail(const pool_task& t, const std::string& why) {
        t.job->deliver(t.first, std::vector<pool_outcome>(t.args.size(), pool_outcome::process_error(why)));
    }

    // Reads one worker's outcomes; false if the worker is gone.
    bool collect(worker& w) {
        std::string in;
        if (!pool_read_frame(w.fd, in)) return false;
        pool_task t = std::move(*w.task);
        w.task.reset();
        try {
            reader r{in.data(), in.size()};
            auto count = r.pod<std::uint32_t>();
            if (count != t.args.size()) throw ProcessError("wrong number of outcomes");
            std::vector<pool_outcome> os(count);
            for (auto& o : os) {
                o.ok = r.pod<std::uint8_t>() != 0;
                if (!o.ok) o.type = r.str();
                o.value = r.str();
            }
            t.job->deliver(t.first, std::move(os));
        } catch (const std::exception& e) {
            fail(t, std::string("bad reply from a pool worker: ") + e.what());
        }
        return true;
    }

    void dispatch() {
        // Signals go to the server's other threads; a worker must not run
        // the server's handlers between fork() and resetting them.
        sigset_t all;
        sigfillset(&all);
        ::pthread_sigmask(SIG_BLOCK, &all, nullptr);
        maintain();
        {
            std::lock_guard<std::mutex> g(mu_);
            spawned_ = true;
            done_cv_.notify_all();
        }
        std::vector<pollfd> pfds;
        for (;;) {
            maintain();
            std::vector<std::pair<int, std::string>> sends;
            std::vector<int> retire;
            {
                std::lock_guard<std::mutex> g(mu_);
                if (state_ == terminating) break;
                for (auto& w : workers_) {
                    if (w.task || queue_.empty()) continue;
                    w.task = std::move(queue_.front());
                    queue_.pop_front();
                    std::string body(4, '\0');
                    pool_put_str(body, w.task->fname);
                    pool_put_u32(body, static_cast<std::uint32_t>(w.task->args.size()));
                    for (auto& a : w.task->args) pool_put_str(body, a);
                    sends.emplace_back(w.fd, std::move(body));
                }
                if (state_ == closing && queue_.empty()) {
                    for (auto& w : workers_)
                        if (!w.task && w.fd >= 0) retire.push_back(w.fd);
                }
            }
            // A failed send shows up as EOF below.
            for (auto& s : sends) pool_write_frame(s.first, s.second);
            for (int fd : retire) retire_worker(fd);
            {
                std::lock_guard<std::mutex> g(mu_);
                if (state_ == closing && queue_.empty() && workers_.empty()) break;
            }
            pfds.clear();
            pfds.push_back(pollfd{wake_[0], POLLIN, 0});
            {
                std::lock_guard<std::mutex> g(mu_);
                for (auto& w : workers_) pfds.push_back(pollfd{w.fd, POLLIN, 0});
            }
            int n = ::poll(pfds.data(), pfds.size(), 1000);
            if (n < 0 && errno != EINTR) break;
            if (n <= 0) continue;
            if (pfds[0].revents) {
                char buf[64];
                while (::read(wake_[0], buf, sizeof buf) > 0) {
                }
            }
            for (std::size_t i = 1; i < pfds.size(); ++i) {
                if (!pfds[i].revents) continue;
                worker* w = find_worker(pfds[i].fd);
                if (!w) continue;
                if (w->task && collect(*w)) continue;
                worker_died(pfds[i].fd);
            }
        }
        shutdown_workers();
    }

    worker* find_worker(int fd) {
        std::lock_guard<std::mutex> g(mu_);
        for (auto& w : workers_)
            if (w.fd == fd) return &w;  // workers_ only changes on this thread
        return nullptr;
    }

    // An idle worker after close(): EOF tells it to exit.
    void retire_worker(int fd) {
        pid_t pid = -1;
        {
            std::lock_guard<std::mutex> g(mu_);
            for (auto it = workers_.begin(); it != workers_.end(); ++it)
                if (it->fd == fd) {
                    pid = it->pid;
                    workers_.erase(it);
                    break;
                }
        }
        ::close(fd);
        if (pid > 0) reap(pid);
    }

    void worker_died(int fd) {
        worker w;
        {
            std::lock_guard<std::mutex> g(mu_);
            for (auto it = workers_.begin(); it != workers_.end(); ++it)
                if (it->fd == fd) {
                    w = std::move(*it);
                    workers_.erase(it);
                    break;
                }
        }
        ::close(fd);
        if (w.pid <= 0) return;
        int status = 0;
        auto st = wait_pid_for(w.pid, 1.0);
        if (!st) {
            ::kill(w.pid, SIGKILL);
            st = wait_pid_for(w.pid, 10.0);
        }
        if (st) status = *st;
        if (w.task)
            fail(*w.task, "a Pool worker (pid " + std::to_string(w.pid) + ") " + describe(status) + " while running '" +
                              w.task->fname + "'");
    }

    // terminate(): every worker ends, every unfinished item fails.
    void shutdown_workers() {
        std::vector<worker> ws;
        std::deque<pool_task> left;
        {
            std::lock_guard<std::mutex> g(mu_);
            ws.swap(workers_);
            left.swap(queue_);
        }
        for (auto& w : ws) {
            ::kill(w.pid, SIGTERM);
            ::close(w.fd);
        }
        // One second for all of them, then SIGKILL for the rest.
        auto end = clock::now() + std::chrono::seconds(1);
        for (auto& w : ws) {
            double left = std::chrono::duration<double>(end - clock::now()).count();
            if (!wait_pid_for(w.pid, left > 0 ? left : 0)) {
                ::kill(w.pid, SIGKILL);
                wait_pid_for(w.pid, 10.0);
            }
            if (w.task) fail(*w.task, "the Pool was terminated");
        }
        for (auto& t : left) fail(t, "the Pool was terminated");
        std::lock_guard<std::mutex> g(mu_);
        finished_ = true;
        done_cv_.notify_all();
    }

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
    std::vector<std::string> get(double timeout) {
        std::unique_lock<std::mutex> lk(job_->mu);
        detail::wait_job(*job_, lk, timeout, [&] { return job_->ready_locked(); });
        if (job_->failure) job_->failure->rethrow();
        std::vector<std::string> v;
        v.reserve(job_->items.size());
        for (auto& o : job_->items) v.push_back(o.value);
        return v;
    }
    /// True if ready when it returns (Python's wait() returns None).
    bool wait(double timeout) {
        std::unique_lock<std::mutex> lk(job_->mu);
        return detail::wait_sliced(job_->cv, lk, timeout, [&] { return job_->ready_locked(); });
    }
    bool ready() const {
        std::lock_guard<std::mutex> g(job_->mu);
        return job_->ready_locked();
    }
    bool successful() const {
        std::lock_guard<std::mutex> g(job_->mu);
        if (!job_->ready_locked()) throw ValueError("AsyncResult not ready");
        return !job_->failure;
    }

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
    std::vector<std::string> next_batch(long long max, double timeout) {
        std::unique_lock<std::mutex> lk(job_->mu);
        auto& j = *job_;
        if (j.next >= j.total) throw StopIteration();
        bool unordered = j.mode == detail::pool_job::unordered;
        detail::wait_job(j, lk, timeout, [&] { return unordered ? !j.arrived.empty() : j.have[j.next] != 0; });
        std::vector<std::string> out;
        while (j.next < j.total && static_cast<long long>(out.size()) < (max < 1 ? 1 : max)) {
            detail::pool_outcome* o;
            if (unordered) {
                if (j.arrived.empty()) break;
                o = &j.arrived.front();
            } else {
                if (!j.have[j.next]) break;
                o = &j.items[j.next];
            }
            if (!o->ok && !out.empty()) break;  // raised by the next call
            detail::pool_outcome taken = std::move(*o);
            if (unordered) j.arrived.pop_front();
            ++j.next;
            if (!taken.ok) taken.rethrow();
            out.push_back(std::move(taken.value));
        }
        return out;
    }

private:
    std::shared_ptr<detail::pool_job> job_;
};

/// Referent of SyncManager::Pool(): Python's multiprocessing.pool.Pool,
/// living in the manager's server process.  Functions are named, arguments
/// and results are archives; PoolProxy gives the typed interface.
class PoolRef {
public:
    /// given = false: one worker per CPU, like Python's processes=None.
    PoolRef(bool given, long long processes) {
        if (!given) {
            long n = ::sysconf(_SC_NPROCESSORS_ONLN);
            processes = n > 0 ? n : 1;
        }
        if (processes < 1) throw ValueError("Number of processes must be at least 1");
        core_ = std::make_shared<detail::pool_core>(static_cast<std::size_t>(processes));
        core_->start();
    }
    ~PoolRef() { core_->stop(); }
    PoolRef(const PoolRef&) = delete;
    PoolRef& operator=(const PoolRef&) = delete;

    std::string apply(const std::string& fname, std::uint64_t sig, const std::string& args) {
        AsyncResultRef r(submit(fname, sig, {args}, 1, detail::pool_job::all));
        return std::move(r.get(-1).front());
    }
    std::shared_ptr<AsyncResultRef> apply_async(const std::string& fname, std::uint64_t sig, const std::string& args) {
        return std::make_shared<AsyncResultRef>(submit(fname, sig, {args}, 1, detail::pool_job::all));
    }
    std::vector<std::string> map(const std::string& fname, std::uint64_t sig, std::vector<std::string> items,
                                 long long chunksize) {
        return AsyncResultRef(submit(fname, sig, std::move(items), map_chunksize(chunksize, 0), detail::pool_job::all)).get(-1);
    }
    std::shared_ptr<AsyncResultRef> map_async(const std::string& fname, std::uint64_t sig, std::vector<std::string> items,
                                              long long chunksize) {
        return std::make_shared<AsyncResultRef>(
            submit(fname, sig, std::move(items), map_chunksize(chunksize, 0), detail::pool_job::all));
    }
    // starmap is map on the wire: the client packs each tuple as the arguments.
    std::vector<std::string> starmap(const std::string& fname, std::uint64_t sig, std::vector<std::string> items,
                                     long long chunksize) {
        return map(fname, sig, std::move(items), chunksize);
    }
    std::shared_ptr<AsyncResultRef> starmap_async(const std::string& fname, std::uint64_t sig,
                                                  std::vector<std::string> items, long long chunksize) {
        return map_async(fname, sig, std::move(items), chunksize);
    }
    std::shared_ptr<IteratorRef> imap(const std::string& fname, std::uint64_t sig, std::vector<std::string> items,
                                      long long chunksize) {
        return std::make_shared<IteratorRef>(
            submit(fname, sig, std::move(items), map_chunksize(chunksize, 1), detail::pool_job::ordered));
    }
    std::shared_ptr<IteratorRef> imap_unordered(const std::string& fname, std::uint64_t sig,
                                                std::vector<std::string> items, long long chunksize) {
        return std::make_shared<IteratorRef>(
            submit(fname, sig, std::move(items), map_chunksize(chunksize, 1), detail::pool_job::unordered));
    }
    void close() { core_->close(); }
    void terminate() { core_->terminate(); }
    bool join(double timeout) { return core_->join(timeout); }
    /// The workers' pids (Python's pool._pool, as pids).
    std::vector<long long> pids() const { return core_->pids(); }

private:
    // Python's defaults: map splits into about 4 chunks per worker, imap
    // sends items one by one.
    long long map_chunksize(long long requested, long long dflt) const {
        if (requested >= 0) {
            if (requested < 1) throw ValueError("Chunksize must be 1+, not " + std::to_string(requested));
            return requested;
        }
        return dflt;  // 0: computed from the item count in submit()
    }

    std::shared_ptr<detail::pool_job> submit(const std::string& fname, std::uint64_t sig,
                                             std::vector<std::string> items, long long chunksize,
                                             detail::pool_job::mode_t mode) {
        auto f = detail::function_table::instance().find(fname);
        if (!f) throw AttributeError("no function registered as '" + fname + "' in the manager's process");
        if (f->sig != sig)
            throw TypeError("function '" + fname + "' is registered as " + f->text +
                            "; the call used other argument or result types");
        std::size_t n = items.size();
        if (chunksize == 0) {
            std::size_t per = core_->size() * 4;
            chunksize = static_cast<long long>(n / per + (n % per ? 1 : 0));
            if (chunksize < 1) chunksize = 1;
        }
        auto job = std::make_shared<detail::pool_job>(mode, n);
        std::vector<detail::pool_task> tasks;
        auto cs = static_cast<std::size_t>(chunksize);
        for (std::size_t i = 0; i < n; i += cs) {
            detail::pool_task t;
            t.job = job;
            t.fname = fname;
            t.first = i;
            for (std::size_t k = i; k < n && k < i + cs; ++k) t.args.push_back(std::move(items[k]));
            tasks.push_back(std::move(t));
        }
        core_->submit(std::move(tasks));
        return job;
    }

    std::shared_ptr<detail::pool_core> core_;
};

template <> struct self_locking<PoolRef> : std::true_type {};
template <> struct self_locking<AsyncResultRef> : std::true_type {};
template <> struct self_locking<IteratorRef> : std::true_type {};

}  // namespace multiprocessing::managers

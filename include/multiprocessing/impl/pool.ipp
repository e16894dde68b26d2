// Out-of-line members of the classes in <multiprocessing/detail/pool.hpp>: inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION
// (so other files neither parse nor instantiate them).
#pragma once

#include "multiprocessing/detail/pool.hpp"

namespace multiprocessing::managers::detail {

MULTIPROCESSING_DECL pool_core::pool_core(std::size_t processes) : size_(processes) {
    if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) throw ProcessError("pipe failed");
}

MULTIPROCESSING_DECL pool_core::~pool_core() {
    ::close(wake_[0]);
    ::close(wake_[1]);
}

MULTIPROCESSING_DECL void pool_core::start() {
    thread_ = std::thread([self = shared_from_this()] { self->dispatch(); });
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [&] { return spawned_; });
}

MULTIPROCESSING_DECL void pool_core::submit(std::vector<pool_task> tasks) {
    std::lock_guard<std::mutex> g(mu_);
    if (state_ != run) throw ValueError("Pool not running");
    for (auto& t : tasks) queue_.push_back(std::move(t));
    wake();
}

MULTIPROCESSING_DECL void pool_core::close() {
    std::lock_guard<std::mutex> g(mu_);
    if (state_ == run) state_ = closing;
    wake();
}

MULTIPROCESSING_DECL void pool_core::terminate() {
    std::lock_guard<std::mutex> g(mu_);
    state_ = terminating;
    wake();
}

MULTIPROCESSING_DECL bool pool_core::join(double timeout) {
    std::unique_lock<std::mutex> lk(mu_);
    if (state_ == run) throw ValueError("Pool is still running");
    return wait_sliced(done_cv_, lk, timeout, [&] { return finished_; });
}

MULTIPROCESSING_DECL void pool_core::stop() {
    terminate();
    if (thread_.joinable()) thread_.join();
}

MULTIPROCESSING_DECL std::vector<long long> pool_core::pids() const {
    std::lock_guard<std::mutex> g(mu_);
    std::vector<long long> v;
    for (auto& w : workers_) v.push_back(w.pid);
    return v;
}

MULTIPROCESSING_DECL void pool_core::wake() {
    char c = 1;
    [[maybe_unused]] auto w = ::write(wake_[1], &c, 1);
}

MULTIPROCESSING_DECL bool pool_core::spawn() {
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

MULTIPROCESSING_DECL void pool_core::maintain() {
    for (;;) {
        {
            std::lock_guard<std::mutex> g(mu_);
            bool needed = state_ == run || (state_ == closing && !queue_.empty());
            if (!needed || workers_.size() >= size_) return;
        }
        if (!spawn()) return;
    }
}

MULTIPROCESSING_DECL void pool_core::reap(pid_t pid) {
    auto st = wait_pid_for(pid, 5.0);
    if (!st) {
        ::kill(pid, SIGKILL);
        wait_pid_for(pid, 10.0);
    }
}

MULTIPROCESSING_DECL std::optional<int> pool_core::wait_pid_for(pid_t pid, double seconds) {
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

MULTIPROCESSING_DECL std::string pool_core::describe(int status) {
    if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
    return "exited with code " + std::to_string(WEXITSTATUS(status));
}

MULTIPROCESSING_DECL void pool_core::fail(const pool_task& t, const std::string& why) {
    t.job->deliver(t.first, std::vector<pool_outcome>(t.args.size(), pool_outcome::process_error(why)));
}

MULTIPROCESSING_DECL bool pool_core::collect(worker& w) {
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

MULTIPROCESSING_DECL void pool_core::dispatch() {
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

MULTIPROCESSING_DECL auto pool_core::find_worker(int fd) -> worker* {
    std::lock_guard<std::mutex> g(mu_);
    for (auto& w : workers_)
        if (w.fd == fd) return &w;  // workers_ only changes on this thread
    return nullptr;
}

MULTIPROCESSING_DECL void pool_core::retire_worker(int fd) {
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

MULTIPROCESSING_DECL void pool_core::worker_died(int fd) {
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

MULTIPROCESSING_DECL void pool_core::shutdown_workers() {
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

}  // namespace multiprocessing::managers::detail

namespace multiprocessing::managers::detail {

MULTIPROCESSING_DECL function_table& function_table::instance() {
    static function_table* t = new function_table;  // leaked: used by forked workers at exit
    return *t;
}

MULTIPROCESSING_DECL void function_table::add(const std::string& name, std::shared_ptr<const pool_function> f, const std::string& key) {
    std::lock_guard<std::mutex> g(mu_);
    by_name_[name] = std::move(f);
    if (!key.empty()) by_key_[key] = name;
}

MULTIPROCESSING_DECL std::shared_ptr<const pool_function> function_table::find(const std::string& name) const {
    std::lock_guard<std::mutex> g(mu_);
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
}

MULTIPROCESSING_DECL std::string function_table::name_of(const std::string& key) const {
    std::lock_guard<std::mutex> g(mu_);
    auto it = by_key_.find(key);
    return it == by_key_.end() ? std::string() : it->second;
}

}  // namespace multiprocessing::managers::detail

namespace multiprocessing::managers {

MULTIPROCESSING_DECL PoolRef::PoolRef(bool given, long long processes) {
    if (!given) {
        long n = ::sysconf(_SC_NPROCESSORS_ONLN);
        processes = n > 0 ? n : 1;
    }
    if (processes < 1) throw ValueError("Number of processes must be at least 1");
    core_ = std::make_shared<detail::pool_core>(static_cast<std::size_t>(processes));
    core_->start();
}

MULTIPROCESSING_DECL std::string PoolRef::apply(const std::string& fname, std::uint64_t sig, const std::string& args) {
    AsyncResultRef r(submit(fname, sig, {args}, 1, detail::pool_job::all));
    return std::move(r.get(-1).front());
}

MULTIPROCESSING_DECL std::shared_ptr<AsyncResultRef> PoolRef::apply_async(const std::string& fname, std::uint64_t sig, const std::string& args) {
    return std::make_shared<AsyncResultRef>(submit(fname, sig, {args}, 1, detail::pool_job::all));
}

MULTIPROCESSING_DECL std::vector<std::string> PoolRef::map(const std::string& fname, std::uint64_t sig, std::vector<std::string> items,
                                 long long chunksize) {
    return AsyncResultRef(submit(fname, sig, std::move(items), map_chunksize(chunksize, 0), detail::pool_job::all)).get(-1);
}

MULTIPROCESSING_DECL std::shared_ptr<AsyncResultRef> PoolRef::map_async(const std::string& fname, std::uint64_t sig, std::vector<std::string> items,
                                              long long chunksize) {
    return std::make_shared<AsyncResultRef>(
        submit(fname, sig, std::move(items), map_chunksize(chunksize, 0), detail::pool_job::all));
}

MULTIPROCESSING_DECL std::vector<std::string> PoolRef::starmap(const std::string& fname, std::uint64_t sig, std::vector<std::string> items,
                                     long long chunksize) {
    return map(fname, sig, std::move(items), chunksize);
}

MULTIPROCESSING_DECL std::shared_ptr<AsyncResultRef> PoolRef::starmap_async(const std::string& fname, std::uint64_t sig,
                                                  std::vector<std::string> items, long long chunksize) {
    return map_async(fname, sig, std::move(items), chunksize);
}

MULTIPROCESSING_DECL std::shared_ptr<IteratorRef> PoolRef::imap(const std::string& fname, std::uint64_t sig, std::vector<std::string> items,
                                      long long chunksize) {
    return std::make_shared<IteratorRef>(
        submit(fname, sig, std::move(items), map_chunksize(chunksize, 1), detail::pool_job::ordered));
}

MULTIPROCESSING_DECL std::shared_ptr<IteratorRef> PoolRef::imap_unordered(const std::string& fname, std::uint64_t sig,
                                                std::vector<std::string> items, long long chunksize) {
    return std::make_shared<IteratorRef>(
        submit(fname, sig, std::move(items), map_chunksize(chunksize, 1), detail::pool_job::unordered));
}

MULTIPROCESSING_DECL long long PoolRef::map_chunksize(long long requested, long long dflt) const {
    if (requested >= 0) {
        if (requested < 1) throw ValueError("Chunksize must be 1+, not " + std::to_string(requested));
        return requested;
    }
    return dflt;  // 0: computed from the item count in submit()
}

MULTIPROCESSING_DECL std::shared_ptr<detail::pool_job> PoolRef::submit(const std::string& fname, std::uint64_t sig,
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

}  // namespace multiprocessing::managers

namespace multiprocessing::managers {

MULTIPROCESSING_DECL std::vector<std::string> IteratorRef::next_batch(long long max, double timeout) {
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

}  // namespace multiprocessing::managers

namespace multiprocessing::managers {

MULTIPROCESSING_DECL std::vector<std::string> AsyncResultRef::get(double timeout) {
    std::unique_lock<std::mutex> lk(job_->mu);
    detail::wait_job(*job_, lk, timeout, [&] { return job_->ready_locked(); });
    if (job_->failure) job_->failure->rethrow();
    std::vector<std::string> v;
    v.reserve(job_->items.size());
    for (auto& o : job_->items) v.push_back(o.value);
    return v;
}

MULTIPROCESSING_DECL bool AsyncResultRef::wait(double timeout) {
    std::unique_lock<std::mutex> lk(job_->mu);
    return detail::wait_sliced(job_->cv, lk, timeout, [&] { return job_->ready_locked(); });
}

MULTIPROCESSING_DECL bool AsyncResultRef::ready() const {
    std::lock_guard<std::mutex> g(job_->mu);
    return job_->ready_locked();
}

MULTIPROCESSING_DECL bool AsyncResultRef::successful() const {
    std::lock_guard<std::mutex> g(job_->mu);
    if (!job_->ready_locked()) throw ValueError("AsyncResult not ready");
    return !job_->failure;
}

}  // namespace multiprocessing::managers

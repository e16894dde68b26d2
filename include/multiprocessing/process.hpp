// multiprocessing.Process and current_process(), fork-based.
#pragma once

#include "multiprocessing/detail/config.hpp"
#include "multiprocessing/detail/demangle.hpp"
#include "multiprocessing/detail/fork.hpp"
#include "multiprocessing/detail/random.hpp"
#include "multiprocessing/exceptions.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace multiprocessing {

/// Throw from a Process target to end the child with this exit code, like
/// Python's sys.exit(code); nothing is printed.
struct SystemExit {
    int code = 0;
};

/// What Python's current_process() tells about this process: its name, pid
/// and authkey.  The authkey is 32 random bytes made once in the main
/// process and inherited by forked children, as in Python.
class CurrentProcess {
public:
    const std::string& name() const { return name_; }
    void set_name(std::string n) { name_ = std::move(n); }
    pid_t pid() const { return ::getpid(); }
    const std::string& authkey() {
        if (authkey_.empty()) authkey_ = detail::random_bytes(32);
        return authkey_;
    }
    void set_authkey(std::string k) { authkey_ = std::move(k); }

    /// Python's _identity: (1,) for Process-1, (1, 2) for its second child.
    const std::vector<int>& identity() const { return identity_; }

private:
    friend class Process;
    std::string name_ = "MainProcess";
    std::string authkey_;
    std::vector<int> identity_;
    int children_started_ = 0;
};

/// Python's current_process().
inline CurrentProcess& current_process() {
    static CurrentProcess* p = new CurrentProcess;  // leaked: used during exit
    return *p;
}

namespace detail {

/// Lets the managers layer make a new child re-register the proxies it
/// inherited before the parent may drop its own (no race on lifetime).
struct child_hooks {
    std::function<bool()> child_needs_sync;  // parent side, before fork
    std::function<void()> in_child;          // child side, before the target runs
    static child_hooks& instance() {
        static child_hooks* h = new child_hooks;
        return *h;
    }
};

inline int pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

}  // namespace detail

/// Python's Process(target, args), always with the fork start method.
///
/// Differs from Python: the target is any callable plus arguments, bound at
/// construction; there is no run() to override.  A child ends with _exit(),
/// so it never runs the parent's destructors or atexit handlers.  An
/// exception escaping the target is printed to stderr and gives exit code 1.
/// Destroying a started, unjoined Process leaves the child running unless it
/// is a daemon, which is then terminated and reaped.
class Process {
public:
    template <class F, class... A,
              class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, Process>>>
    explicit Process(F&& f, A&&... args)
        : target_([f = std::forward<F>(f), tup = std::make_tuple(std::forward<A>(args)...)]() mutable {
              std::apply(f, tup);
          }) {}

    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;
    Process(Process&& o) noexcept { *this = std::move(o); }
    Process& operator=(Process&& o) noexcept;
    ~Process() { cleanup(); }

    const std::string& name() const { return name_; }
    void set_name(std::string n) { name_ = std::move(n); }
    bool daemon() const { return daemon_; }
    /// A daemon child is terminated when its Process object is destroyed.
    void set_daemon(bool d) { daemon_ = d; }
    /// The child's pid, or -1 before start().
    pid_t pid() const { return pid_; }

    /// Forks and runs the target in the child.
    void start();

    /// Python's join(timeout): waits for the child to end, at most timeout
    /// seconds.  Returns true if it has ended.  ProcessError in any process
    /// but the one that started it (Python: AssertionError).
    bool join(std::optional<double> timeout = std::nullopt);

    /// Whether the child runs.  ProcessError in any process but the one
    /// that started it (Python: AssertionError).
    bool is_alive();

    /// Python's exitcode: nullopt while running, the exit status when done,
    /// or minus the signal number if a signal ended it.  Also nullopt for a
    /// child that ended but was reaped by someone else (SIGCHLD ignored, a
    /// waitpid(-1) elsewhere), as in Python; join() then returns.
    std::optional<int> exitcode();

    /// Python's sentinel: a file descriptor that becomes readable when the
    /// child ends, for connection::wait() or poll().  It stays valid until
    /// this Process is destroyed.  ValueError before start(); here a pidfd
    /// (Linux 5.3+; ProcessError without one), where Python uses a pipe.
    int sentinel();

    /// Sends SIGTERM.
    void terminate() { signal(SIGTERM); }
    /// Sends SIGKILL.
    void kill() { signal(SIGKILL); }

private:
    void signal(int sig);

    bool poll_exit();

    void cleanup();

    std::function<void()> target_;
    std::string name_;
    pid_t pid_ = -1;
    pid_t parent_ = -1;  // the process that started it
    int pidfd_ = -1;
    bool sentinel_given_ = false;  // then pidfd_ stays open until destruction
    std::optional<int> exitcode_;
    bool gone_ = false;  // ended, and reaped by someone else: no exit status
    bool daemon_ = false;
};

}  // namespace multiprocessing

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/process.ipp"
#endif

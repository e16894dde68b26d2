// Out-of-line members of the classes in <multiprocessing/process.hpp>: inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION
// (so other files neither parse nor instantiate them).
#pragma once

#include "multiprocessing/process.hpp"

namespace multiprocessing {

MULTIPROCESSING_DECL Process& Process::operator=(Process&& o) noexcept {
    if (this != &o) {
        cleanup();
        target_ = std::move(o.target_);
        name_ = std::move(o.name_);
        pid_ = std::exchange(o.pid_, -1);
        parent_ = o.parent_;
        pidfd_ = std::exchange(o.pidfd_, -1);
        exitcode_ = o.exitcode_;
        gone_ = o.gone_;
        daemon_ = o.daemon_;
        sentinel_given_ = o.sentinel_given_;
    }
    return *this;
}

MULTIPROCESSING_DECL void Process::start() {
    if (pid_ != -1) throw ProcessError("cannot start a process twice");
    auto& cp = current_process();
    std::vector<int> ident = cp.identity_;
    ident.push_back(++cp.children_started_);
    if (name_.empty()) {
        name_ = "Process-";
        for (std::size_t i = 0; i < ident.size(); ++i)
            name_ += (i ? ":" : "") + std::to_string(ident[i]);
    }
    auto& hooks = detail::child_hooks::instance();
    bool sync = hooks.child_needs_sync && hooks.child_needs_sync();
    int ready[2] = {-1, -1};
    if (sync && ::pipe2(ready, O_CLOEXEC) != 0) sync = false;

    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);  // or the child would print the parent's buffered output again
    pid_t pid = ::fork();
    if (pid < 0) throw ProcessError("fork failed");
    if (pid == 0) {
        cp.name_ = name_;
        cp.identity_ = ident;
        cp.children_started_ = 0;
        int code = 0;
        try {
            if (hooks.in_child) hooks.in_child();
        } catch (...) {
        }
        if (sync) {
            char b = 1;
            [[maybe_unused]] auto w = ::write(ready[1], &b, 1);
            ::close(ready[0]);
            ::close(ready[1]);
        }
        try {
            target_();
        } catch (const SystemExit& e) {
            code = e.code;
        } catch (const std::exception& e) {
            std::cerr << "Process " << name_ << ":\n"
                      << detail::demangle(typeid(e).name()) << ": " << e.what() << std::endl;
            code = 1;
        } catch (...) {
            std::cerr << "Process " << name_ << ":\nunknown exception" << std::endl;
            code = 1;
        }
        std::cout.flush();
        std::cerr.flush();
        std::fflush(nullptr);
        ::_exit(code);
    }
    pid_ = pid;
    parent_ = ::getpid();
    pidfd_ = detail::pidfd_open(pid);
    if (sync) {
        ::close(ready[1]);
        pollfd p{ready[0], POLLIN, 0};
        ::poll(&p, 1, 10000);  // the child writes once it holds its references
        ::close(ready[0]);
    }
}

MULTIPROCESSING_DECL bool Process::join(std::optional<double> timeout) {
    if (pid_ == -1) throw ProcessError("can only join a started process");
    if (::getpid() != parent_) throw ProcessError("can only join a child process");
    if (exitcode_ || gone_) return true;
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                        std::chrono::duration<double>(timeout.value_or(0)));
    for (;;) {
        if (poll_exit()) return true;
        int ms = -1;
        if (timeout) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now()).count();
            if (left <= 0) return poll_exit();
            ms = static_cast<int>(left);
        }
        if (pidfd_ >= 0) {
            pollfd p{pidfd_, POLLIN, 0};
            ::poll(&p, 1, ms);
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(ms < 0 || ms > 5 ? 5 : ms));
        }
    }
}

MULTIPROCESSING_DECL bool Process::is_alive() {
    if (pid_ == -1) return false;
    if (::getpid() != parent_) throw ProcessError("can only test a child process");
    return !poll_exit();
}

MULTIPROCESSING_DECL std::optional<int> Process::exitcode() {
    if (pid_ != -1) poll_exit();
    return exitcode_;
}

MULTIPROCESSING_DECL void Process::signal(int sig) {
    if (pid_ != -1 && !exitcode_ && !gone_) ::kill(pid_, sig);
}

MULTIPROCESSING_DECL bool Process::poll_exit() {
    if (exitcode_ || gone_) return true;
    if (::getpid() != parent_) return false;  // not ours to reap: no exit status here
    int status = 0;
    pid_t r;
    do { r = ::waitpid(pid_, &status, WNOHANG); } while (r < 0 && errno == EINTR);
    if (r == pid_) {
        exitcode_ = WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
    } else if (r < 0 && errno == ECHILD) {
        // Reaped already (SIGCHLD ignored, or a waitpid(-1) elsewhere): it
        // has ended if its pidfd says so (or, without one, if the pid is gone).
        pollfd p{pidfd_, POLLIN, 0};
        bool ended = pidfd_ >= 0 ? ::poll(&p, 1, 0) > 0 : (::kill(pid_, 0) != 0 && errno == ESRCH);
        if (!ended) return false;
        gone_ = true;
    } else {
        return false;
    }
    if (pidfd_ >= 0 && !sentinel_given_) {
        ::close(pidfd_);
        pidfd_ = -1;
    }
    return true;
}

MULTIPROCESSING_DECL int Process::sentinel() {
    if (pid_ == -1) throw ValueError("process not started");
    if (pidfd_ < 0 && (exitcode_ || gone_)) {
        // Reaped, and its pidfd closed: a pipe whose writer is gone reads
        // as ready, as the sentinel of an ended child must.
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0) throw ProcessError(std::string("pipe: ") + std::strerror(errno));
        ::close(p[1]);
        pidfd_ = p[0];
    }
    if (pidfd_ < 0) throw ProcessError("no sentinel: this kernel has no pidfd_open (Linux 5.3+)");
    sentinel_given_ = true;
    return pidfd_;
}

MULTIPROCESSING_DECL void Process::cleanup() {
    if (pid_ != -1 && !exitcode_ && !gone_ && daemon_ && ::getpid() == parent_) {
        terminate();
        if (!join(1.0)) { kill(); join(5.0); }
    }
    if (pidfd_ >= 0) ::close(pidfd_);
    pidfd_ = -1;
}

}  // namespace multiprocessing

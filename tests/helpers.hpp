// Shared by the tests: bounded waits and reaping, so no test hangs or
// leaves a process behind.
#pragma once

#include <multiprocessing.hpp>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace test {

/// Polls pred until it holds or `seconds` pass; returns its last value.
inline bool wait_until(const std::function<bool()>& pred, double seconds = 10.0) {
    auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return pred();
}

/// Prints every thread's stack of a process that should have ended to
/// stderr (eu-stack, from elfutils, which scripts/setup installs), so a hang
/// seen once in CI can be diagnosed from the log.
inline void dump_stacks(pid_t pid) {
    std::string cmd = "command -v eu-stack >/dev/null && eu-stack -p " + std::to_string(pid) + " 1>&2";
    std::fprintf(stderr, "process %d did not end in time; its threads:\n", static_cast<int>(pid));
    [[maybe_unused]] int rc = std::system(cmd.c_str());
}

/// Joins with a timeout; a child still running then has its stacks printed
/// and is killed and reaped.  Returns the exit code.
inline int join_or_kill(multiprocessing::Process& p, double seconds = 30.0) {
    if (!p.join(seconds)) {
        dump_stacks(p.pid());
        p.kill();
        p.join(5.0);
    }
    return p.exitcode().value_or(-999);
}

/// A child's body that waits to be killed.  SIGTERM gets its default
/// action back: the child inherits Catch2's handler, which would report
/// the signal as a failure of the parent's test.
struct Channel;
[[noreturn]] void forever(Channel* up = nullptr);

/// Is a process with this pid still running (not a zombie)?
inline bool pid_alive(pid_t pid) {
    int status;
    if (::waitpid(pid, &status, WNOHANG) == pid) return false;  // reaped it just now
    return ::kill(pid, 0) == 0;
}

/// CPU time a process has used (user + system), in clock ticks.
inline long cpu_ticks(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::istringstream fields(s.substr(s.rfind(')') + 2));
    std::string f;
    long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && (fields >> f); ++i) {
        if (i == 14) utime = std::stol(f);
        if (i == 15) stime = std::stol(f);
    }
    return utime + stime;
}

/// Orphans of this test (a killed owner's server) are re-parented to us,
/// so pid_alive() can reap them.
inline void become_subreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 1); }

/// A pipe for a child to report a number or a line to its parent.
struct Channel {
    int fd[2];
    Channel() { if (::pipe(fd) != 0) throw std::runtime_error("pipe"); }
    ~Channel() { ::close(fd[0]); ::close(fd[1]); }
    void write_line(const std::string& s) {
        std::string l = s + "\n";
        [[maybe_unused]] auto w = ::write(fd[1], l.data(), l.size());
    }
    /// Reads one line, waiting at most `seconds`; "" on timeout.
    std::string read_line(double seconds = 10.0) {
        std::string s;
        auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
        char c;
        while (std::chrono::steady_clock::now() < end) {
            pollfd p{fd[0], POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            if (::read(fd[0], &c, 1) != 1) break;
            if (c == '\n') return s;
            s += c;
        }
        return s;
    }
};

[[noreturn]] inline void forever(Channel* up) {
    ::signal(SIGTERM, SIG_DFL);
    if (up) up->write_line("up");
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}

}  // namespace test

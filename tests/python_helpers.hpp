// What the tests against a real CPython 3.13 share: running python3 (as
// PYENV_VERSION=3.13.0, bounded by `timeout 30`), skipping without it, and
// tests/python/py_manager_server.py, a CPython SyncManager in its own
// process, killed and reaped on scope exit.
#pragma once

#include "helpers.hpp"

#include <multiprocessing.hpp>

#include <catch2/catch.hpp>

#include <spawn.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace test::python {

inline const std::string script_dir = std::string(MP_TEST_DATA) + "/../python";
inline const std::string authkey = "py-and-cpp";

// Runs a command through sh with PYENV_VERSION=3.13.0; returns its stdout.
inline std::string run(const std::string& cmd) {
    std::string full = "PYENV_VERSION=3.13.0 timeout 30 " + cmd + " 2>&1";
    std::unique_ptr<FILE, int (*)(FILE*)> p(::popen(full.c_str(), "r"), ::pclose);
    std::string out;
    std::array<char, 4096> buf;
    std::size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p.get())) > 0) out.append(buf.data(), n);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

inline bool have_python313() { return run("python3 -c 'import sys; print(sys.version_info >= (3, 13))'") == "True"; }

// Joins a thread when the test leaves its scope, even by an exception (a
// joinable std::thread's destructor would end the process).  The threads
// these tests start run a bounded python3 (run() gives it 30 s).
struct joiner {
    std::thread& t;
    ~joiner() {
        if (t.joinable()) t.join();
    }
};

// py_manager_server.py in its own process, killed and reaped on scope exit.
struct PythonServer {
    pid_t pid = -1;
    std::string address, dir;

    unsigned short port = 0;  // with tcp: the port the server chose

    explicit PythonServer(bool tcp = false) {
        char tmpl[] = "/tmp/mpt-pyXXXXXX";
        dir = ::mkdtemp(tmpl);
        address = tcp ? "0.0.0.0:0" : dir + "/manager.sock";
        std::string log = dir + "/server.log";
        std::string server = script_dir + "/py_manager_server.py";
        std::vector<std::string> args{"/bin/sh", "-c",
                                      "PYENV_VERSION=3.13.0 exec python3 '" + server + "' '" + address + "' '" + authkey +
                                          "' >'" + log + "' 2>&1"};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        REQUIRE(::posix_spawn(&pid, "/bin/sh", nullptr, nullptr, argv.data(), environ) == 0);
        // Not the socket file: it exists from bind(), before listen(), and a
        // connect in between is refused.  The server prints once it listens.
        auto text_of = [&] {
            std::ifstream f(log);
            return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        };
        bool up = test::wait_until([&] { return text_of().rfind("ready", 0) == 0; }, 20.0);
        if (!up) {
            std::string text = text_of();
            stop();  // FAIL throws, and a constructor that throws gets no destructor
            FAIL("the CPython server did not start: " << text);
        }
        if (tcp) {  // "ready ('0.0.0.0', 41234)"
            auto text = text_of();
            auto comma = text.find(", ");
            REQUIRE(comma != std::string::npos);
            port = static_cast<unsigned short>(std::stoi(text.substr(comma + 2)));
        }
    }
    ~PythonServer() { stop(); }
    void stop() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            int status;
            ::waitpid(pid, &status, 0);
            pid = -1;
        }
        ::unlink(address.c_str());
        ::unlink((dir + "/server.log").c_str());
        ::rmdir(dir.c_str());
    }
    // A plain Python client of this server (py_manager_client.py).
    std::string python(const std::string& what) const {
        std::string where = port ? "127.0.0.1:" + std::to_string(port) : address;
        return run("python3 '" + script_dir + "/py_manager_client.py' '" + where + "' '" + authkey + "' " + what);
    }
};

}  // namespace test::python

#define NEED_PYTHON()                                                     \
    if (!have_python313()) {                                              \
        WARN("PYENV_VERSION=3.13.0 python3 is not CPython 3.13: skipped"); \
        return;                                                           \
    }

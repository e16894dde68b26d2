// connection::wait() and Process::sentinel: CPython's TestWait, ported.
// Every child is a daemon Process (terminated and reaped by its destructor
// if a check fails first) and every wait has a timeout.
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace mp = multiprocessing;
namespace conn = multiprocessing::connection;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void pause_randomly(bool slow) {
    static thread_local std::mt19937 rng(static_cast<unsigned>(::getpid()));
    if (slow) std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 100));
}

// _TestWait.test_wait: four children write ten messages each down their
// own pipe; wait() tells which pipes to read until each gives EOF.
void wait_on_pipes(bool slow) {
    std::vector<std::unique_ptr<conn::Connection>> readers;
    std::vector<std::unique_ptr<mp::Process>> procs;
    for (int i = 0; i < 4; ++i) {
        auto [r, w] = conn::Pipe();
        auto writer = std::make_shared<conn::Connection>(std::move(w));
        auto p = std::make_unique<mp::Process>([writer, slow] {
            for (int k = 0; k < 10; ++k) {
                pause_randomly(slow);
                writer->send_bytes(std::to_string(k) + " " + std::to_string(::getpid()));
            }
            writer->close();
        });
        p->set_daemon(true);
        p->start();
        writer->close();  // the child's copy is the only writer left
        readers.push_back(std::make_unique<conn::Connection>(std::move(r)));
        procs.push_back(std::move(p));
    }
    std::vector<std::string> messages;
    while (!readers.empty()) {
        std::vector<conn::Waitable> objects;
        for (auto& r : readers) objects.emplace_back(*r);
        auto ready = conn::wait(objects, 60);
        REQUIRE_FALSE(ready.empty());  // a child went quiet without closing
        for (auto& w : ready) {
            auto it = std::find_if(readers.begin(), readers.end(), [&](auto& r) { return w == *r; });
            REQUIRE(it != readers.end());
            try {
                messages.push_back((*it)->recv_bytes());
            } catch (const mp::EOFError&) {
                readers.erase(it);
            }
        }
    }
    std::vector<std::string> expected;
    for (auto& p : procs) {
        CHECK(p->join(30));
        for (int k = 0; k < 10; ++k) expected.push_back(std::to_string(k) + " " + std::to_string(p->pid()));
    }
    std::sort(messages.begin(), messages.end());
    std::sort(expected.begin(), expected.end());
    CHECK(messages == expected);
}

// _TestWait.test_wait_socket: the same over plain TCP sockets, waited on
// by file descriptor.
void wait_on_sockets(bool slow) {
    int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(l >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t n = sizeof a;
    REQUIRE(::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(l, 8) == 0);
    REQUIRE(::getsockname(l, reinterpret_cast<sockaddr*>(&a), &n) == 0);
    std::vector<std::unique_ptr<mp::Process>> procs;
    for (int i = 0; i < 4; ++i) {
        auto p = std::make_unique<mp::Process>([a, l, slow] {
            ::close(l);
            int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (::connect(s, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) throw mp::SystemExit{2};
            for (int k = 0; k < 10; ++k) {
                pause_randomly(slow);
                std::string line = std::to_string(k) + "\n";
                if (::send(s, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size()))
                    throw mp::SystemExit{3};
            }
            ::close(s);
        });
        p->set_daemon(true);
        p->start();
        procs.push_back(std::move(p));
    }
    std::vector<int> readers;
    std::map<int, std::string> got;
    for (int i = 0; i < 4; ++i) {
        auto ready = conn::wait({l}, 60);
        REQUIRE(ready.size() == 1);
        int s = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
        REQUIRE(s >= 0);
        readers.push_back(s);
    }
    ::close(l);
    while (!readers.empty()) {
        auto ready = conn::wait(std::vector<conn::Waitable>(readers.begin(), readers.end()), 60);
        REQUIRE_FALSE(ready.empty());
        for (auto& w : ready) {
            CHECK(w.connection() == nullptr);
            char buf[32];
            ssize_t r = ::recv(w.fileno(), buf, sizeof buf, 0);
            if (r <= 0) {
                ::close(w.fileno());
                readers.erase(std::find(readers.begin(), readers.end(), w.fileno()));
            } else {
                got[w.fileno()].append(buf, static_cast<std::size_t>(r));
            }
        }
    }
    std::string expected;
    for (int k = 0; k < 10; ++k) expected += std::to_string(k) + "\n";
    CHECK(got.size() == 4);
    for (auto& kv : got) CHECK(kv.second == expected);
    for (auto& p : procs) {
        CHECK(p->join(30));
        CHECK(p->exitcode() == 0);
    }
}

}  // namespace

TEST_CASE("TestWait.test_wait", "[connection][wait]") { wait_on_pipes(false); }

TEST_CASE("TestWait.test_wait_slow", "[connection][wait]") { wait_on_pipes(true); }

TEST_CASE("TestWait.test_wait_socket", "[connection][wait]") { wait_on_sockets(false); }

TEST_CASE("TestWait.test_wait_socket_slow", "[connection][wait]") { wait_on_sockets(true); }

TEST_CASE("TestWait.test_wait_timeout", "[connection][wait]") {
    const double timeout = 0.5;  // CPython waits 5 s
    auto [a, b] = conn::Pipe();
    auto t0 = Clock::now();
    auto res = conn::wait({a, b}, timeout);
    double delta = seconds_since(t0);
    CHECK(res.empty());
    CHECK(delta > timeout - 0.01);
    b.send_bytes("x");
    res = conn::wait({a, b}, 20);
    CHECK(res == std::vector<conn::Waitable>{a});
}

TEST_CASE("TestWait.test_wait_integer: a Process's sentinel is ready when it ends", "[connection][wait]") {
    const double expected = 1.0;  // how long the child sleeps (CPython's: 3 s)
    auto started = conn::Pipe();  // not a structured binding: a lambda captures it
    auto& started_r = started.first;
    auto& started_w = started.second;
    auto [a, b] = conn::Pipe();
    mp::Process p([&started_w, expected] {
        started_w.send_bytes("go");
        std::this_thread::sleep_for(std::chrono::duration<double>(expected));
    });
    p.set_daemon(true);
    CHECK_THROWS_MATCHES(p.sentinel(), mp::ValueError, Catch::Matchers::Message("process not started"));
    p.start();
    int sentinel = p.sentinel();
    CHECK(sentinel >= 0);
    REQUIRE(started_r.poll(20));
    CHECK(started_r.recv_bytes() == "go");

    auto res = conn::wait({a, sentinel, b}, expected + 20);
    CHECK(res == std::vector<conn::Waitable>{sentinel});
    CHECK_FALSE(p.is_alive());  // ready because the child ended, not before

    a.send_bytes("x");
    res = conn::wait({a, sentinel, b}, 20);
    CHECK(res == std::vector<conn::Waitable>{sentinel, b});

    b.send_bytes("y");
    res = conn::wait({a, sentinel, b}, 20);
    CHECK(res == std::vector<conn::Waitable>{a, sentinel, b});

    CHECK(p.join(20));
    CHECK(p.exitcode() == 0);
    CHECK(p.sentinel() == sentinel);  // valid until the Process goes
    CHECK(conn::wait({sentinel}, 0).size() == 1);
}

TEST_CASE("sentinel of a child reaped before anyone asked for it is ready", "[connection][wait]") {
    mp::Process p([] {});
    p.start();
    REQUIRE(p.join(20));
    int s = p.sentinel();
    CHECK(conn::wait({s}, 20) == std::vector<conn::Waitable>{s});
    CHECK(p.sentinel() == s);
}

TEST_CASE("TestWait.test_neg_timeout", "[connection][wait]") {
    auto [a, b] = conn::Pipe();
    auto t0 = Clock::now();
    auto res = conn::wait({a}, -1);
    CHECK(res.empty());
    CHECK(seconds_since(t0) < 20);  // CPython: < 1 s; it only looks
    CHECK(conn::wait({a}, -1e300).empty());
    a.close();
    b.close();
}

TEST_CASE("wait: buffered frames, EOF, a closed connection, NaN and a bad descriptor", "[connection][wait]") {
    auto [a, b] = conn::Pipe();
    b.send_bytes("one");
    b.send_bytes("two");
    REQUIRE(conn::wait({a}, 20).size() == 1);
    CHECK(a.recv_bytes() == "one");  // "two" may now sit in a's buffer, unseen by poll()
    CHECK(conn::wait({a}, 0) == std::vector<conn::Waitable>{a});
    CHECK(a.recv_bytes() == "two");
    CHECK(conn::wait({a}, 0).empty());
    b.close();
    CHECK(conn::wait({a}, 20) == std::vector<conn::Waitable>{a});  // EOF is ready
    CHECK_THROWS_AS(a.recv_bytes(), mp::EOFError);
    CHECK_THROWS_MATCHES(conn::wait({b}, 0), mp::ConnectionError, Catch::Matchers::Message("handle is closed"));
    CHECK_THROWS_MATCHES(conn::wait({-1}, 0), mp::ValueError, Catch::Matchers::Message("Invalid file descriptor: -1"));
    CHECK_THROWS_AS(conn::wait({a}, std::nan("")), mp::ValueError);
    CHECK(conn::wait({}, 0).empty());
}

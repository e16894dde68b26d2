// multiprocessing::Process: fork-based, Python's semantics for join,
// exitcode, terminate/kill, names, and errors in the child.
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <thread>

#include <sys/socket.h>

namespace mp = multiprocessing;

TEST_CASE("start, join and exitcode", "[process]") {
    mp::Process p([](int a, int b) { if (a + b != 5) throw std::runtime_error("bad args"); }, 2, 3);
    CHECK(p.pid() == -1);
    CHECK_FALSE(p.is_alive());
    CHECK_FALSE(p.exitcode().has_value());
    p.start();
    CHECK(p.pid() > 0);
    CHECK(p.join(30));
    CHECK(p.exitcode() == 0);
    CHECK_FALSE(p.is_alive());
    CHECK_THROWS_AS(p.start(), mp::ProcessError);
}

TEST_CASE("an exception in the child prints and gives exit code 1", "[process]") {
    mp::Process p([] { throw mp::ValueError("child failed"); });
    p.start();
    p.join(30);
    CHECK(p.exitcode() == 1);
}

TEST_CASE("SystemExit sets the exit code", "[process]") {
    mp::Process p([] { throw mp::SystemExit{3}; });
    p.start();
    p.join(30);
    CHECK(p.exitcode() == 3);
}

TEST_CASE("join with a timeout returns while the child runs, and terminate and kill", "[process]") {
    test::Channel up;
    mp::Process p([&up] { test::forever(&up); });
    p.start();
    REQUIRE(up.read_line() == "up");
    auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(p.join(0.2));
    auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(waited >= std::chrono::milliseconds(190));  // never early
    CHECK(p.is_alive());
    CHECK_FALSE(p.exitcode().has_value());
    p.terminate();
    CHECK(p.join(10));
    CHECK(p.exitcode() == -SIGTERM);

    mp::Process q([] { test::forever(); });
    q.start();
    q.kill();
    CHECK(q.join(10));
    CHECK(q.exitcode() == -SIGKILL);
}

TEST_CASE("names follow Python: Process-N, and N:M in children", "[process]") {
    CHECK(mp::current_process().name() == "MainProcess");
    mp::Process a([] {});
    mp::Process b([] {
        if (mp::current_process().name().rfind("Process-", 0) != 0) throw mp::SystemExit{2};
        mp::Process grandchild([] {});
        grandchild.start();
        grandchild.join(10);
        std::string want = mp::current_process().name() + ":1";
        if (grandchild.name() != want) throw mp::SystemExit{3};
    });
    a.start();
    b.start();
    CHECK(a.name().rfind("Process-", 0) == 0);
    CHECK(a.name() != b.name());
    CHECK(test::join_or_kill(a) == 0);
    CHECK(test::join_or_kill(b) == 0);
}

TEST_CASE("the child inherits the authkey and never runs the parent's atexit handlers", "[process]") {
    static std::string marker = "/tmp/mp-atexit-" + std::to_string(::getpid());
    ::unlink(marker.c_str());
    static bool installed = false;
    if (!installed) {
        std::atexit([] {
            if (mp::current_process().name() != "MainProcess") std::ofstream(marker) << "ran";
        });
        installed = true;
    }
    std::string key = mp::current_process().authkey();
    CHECK(key.size() == 32);
    mp::Process p([key] {
        if (mp::current_process().authkey() != key) throw mp::SystemExit{4};
    });
    p.start();
    CHECK(test::join_or_kill(p) == 0);
    CHECK(::access(marker.c_str(), F_OK) != 0);
}

TEST_CASE("buffered output is not duplicated in the child", "[process]") {
    test::Channel ch;
    std::string path = "/tmp/mp-out-" + std::to_string(::getpid());
    FILE* f = std::fopen(path.c_str(), "w");
    std::fprintf(f, "parent\n");  // buffered, not yet written
    std::fflush(f);
    mp::Process p([f] { std::fprintf(f, "child\n"); });
    p.start();
    CHECK(test::join_or_kill(p) == 0);
    std::fclose(f);
    std::ifstream in(path);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(all == "parent\nchild\n");
    ::unlink(path.c_str());
}

TEST_CASE("a daemon child is terminated when its Process is destroyed", "[process]") {
    pid_t pid;
    test::Channel up;
    {
        mp::Process p([&up] { test::forever(&up); });
        p.set_daemon(true);
        p.start();
        pid = p.pid();
        REQUIRE(up.read_line() == "up");
    }
    CHECK_FALSE(test::pid_alive(pid));
}

// Library locks a child may need at once (Asio's reactor, the random
// generator, the manager's tables) must not be inherited held by a parent
// thread that was using them when another thread forked.
TEST_CASE("children forked while other threads connect and authenticate start and make calls", "[process][fork]") {
    namespace conn = mp::connection;
    std::atomic<bool> stop{false};
    std::atomic<long> connects{0};
    // A listener and a thread connecting to it in a loop: without an
    // authkey (connecting only) and with one (random challenges, HMACs).
    struct pair {
        conn::Listener l;
        std::atomic<bool>* stop;
        std::thread acceptor, connector;
        ~pair() {  // also when the test throws: threads are never left joinable
            *stop = true;
            ::shutdown(l.fileno(), SHUT_RDWR);  // accept() and a connect waiting for it fail now
            if (acceptor.joinable()) acceptor.join();
            if (connector.joinable()) connector.join();
        }
    };
    auto make = [&](std::string path, std::optional<std::string> key) {
        auto p = std::unique_ptr<pair>(new pair{conn::Listener(conn::Address(path), key), &stop, {}, {}});
        p->acceptor = std::thread([&stop, l = &p->l] {
            while (!stop) {
                try {
                    l->accept();
                } catch (...) {
                }
            }
        });
        p->connector = std::thread([&stop, &connects, path, key] {
            while (!stop) {
                try {
                    conn::Client(conn::Address(path), key);
                    ++connects;
                } catch (...) {
                }
            }
        });
        return p;
    };
    std::string base = "/tmp/mp-forkconn-" + std::to_string(::getpid());
    auto plain = make(base + "-plain", std::nullopt);
    auto keyed = make(base + "-keyed", std::string("key"));
    auto manager = mp::Manager();
    auto d = manager.dict();
    int failures = 0;
    for (int i = 0; i < 300; ++i) {
        // Each child connects afresh (a new socket, a handshake) and has
        // the server make an object and raise a KeyError.
        mp::Process p([d, &manager] {
            auto l2 = manager.list();
            l2.append(1);
            try {
                (void)static_cast<mp::object>(d["missing"]);
            } catch (const mp::KeyError&) {
                return;
            }
            throw mp::SystemExit{3};
        });
        p.start();
        if (test::join_or_kill(p, 20.0) != 0) ++failures;
    }
    stop = true;
    plain.reset();
    keyed.reset();
    CHECK(failures == 0);
    CHECK(connects > 0);
}

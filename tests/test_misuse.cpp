// An unlucky user's mistakes: each raises, or does what Python does,
// instead of hanging, crashing or corrupting memory.  Each case failed
// before its fix (found by a review that tried them).
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <new>
#include <string>

namespace mp = multiprocessing;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

TEST_CASE("join() returns for a child reaped by someone else, with no exit code, as in Python", "[misuse][process]") {
    struct sigaction old {};
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    ::sigaction(SIGCHLD, &ign, &old);  // the kernel reaps every child at once
    mp::Process p([] {});
    p.start();
    bool joined = p.join(30);
    ::sigaction(SIGCHLD, &old, nullptr);
    CHECK(joined);
    CHECK_FALSE(p.exitcode().has_value());
    CHECK_FALSE(p.is_alive());
}

TEST_CASE("join() and is_alive() from a process that did not start the child raise", "[misuse][process]") {
    test::Channel up;
    mp::Process sibling([&up] { test::forever(&up); });
    sibling.start();
    REQUIRE(up.read_line() == "up");
    mp::Process other([&sibling] {
        int raised = 0;
        try {
            sibling.join(1);
        } catch (const mp::ProcessError&) {
            ++raised;
        }
        try {
            (void)sibling.is_alive();
        } catch (const mp::ProcessError&) {
            ++raised;
        }
        if (raised != 2) throw mp::SystemExit{3};
    });
    other.start();
    CHECK(test::join_or_kill(other) == 0);
    sibling.kill();
    CHECK(sibling.join(30));
}

TEST_CASE("l *= n and l * n for a huge n: an empty list stays empty at once, a full one is MemoryError",
          "[misuse][containers]") {
    mp::managers::SyncManager manager;
    manager.start();
    auto empty = manager.list<int>();
    auto t0 = Clock::now();
    empty *= 1000000000000000000LL;
    CHECK(empty.size() == 0);
    CHECK((empty * 1000000000000000000LL).empty());
    auto l = manager.list<int>(std::vector<int>{1, 2});
    CHECK_THROWS_AS(l *= 6000000000000000000LL, std::bad_alloc);
    CHECK(l.size() == 2);  // unchanged, and its lock free again
    CHECK_THROWS_AS(l * 6000000000000000000LL, std::bad_alloc);
    l *= -3;
    CHECK(l.size() == 0);
    CHECK(seconds_since(t0) < 30);  // not a loop of 10^18 rounds
}

TEST_CASE("negative, NaN and huge timeouts behave as in Python", "[misuse][sync]") {
    mp::managers::SyncManager manager;
    manager.start();
    auto q = manager.Queue();
    CHECK_THROWS_WITH(q.get(true, -0.001), Catch::Contains("'timeout' must be a non-negative number"));
    CHECK_THROWS_AS(q.get(true, std::nan("")), mp::ValueError);
    q.put(mp::object(1), true, 1e300);
    CHECK(q.get(true, 1e300) == mp::object(1));
    auto bounded = manager.Queue(1);
    bounded.put(mp::object(1));
    CHECK_THROWS_AS(bounded.put(mp::object(2), true, -0.5), mp::ValueError);

    auto e = manager.Event();
    auto t0 = Clock::now();
    CHECK_FALSE(e.wait(-0.001));  // spent already: False at once
    CHECK(seconds_since(t0) < 20);
    e.set();
    CHECK(e.wait(std::numeric_limits<double>::infinity()));

    auto lock = manager.Lock();
    CHECK_THROWS_WITH(lock.acquire(true, -0.5), Catch::Contains("timeout value must be a non-negative number"));
    CHECK_THROWS_AS(lock.acquire(true, std::nan("")), mp::ValueError);
    CHECK(lock.acquire(true, -1));  // -1 is None, as for Python's locks
    lock.release();
    // A timeout with block=false is ValueError (0 too), checked before
    // anything else, as CPython's manager raises it; -1 (None) is no timeout.
    auto rlock = manager.RLock();
    auto cond = manager.Condition();
    CHECK(rlock.acquire());
    for (double t : {0.0, 1.0}) {
        CHECK_THROWS_MATCHES(lock.acquire(false, t), mp::ValueError,
                             Catch::Matchers::Message("can't specify a timeout for a non-blocking call"));
        CHECK_THROWS_MATCHES(rlock.acquire(false, t), mp::ValueError,
                             Catch::Matchers::Message("can't specify a timeout for a non-blocking call"));
        CHECK_THROWS_MATCHES(cond.acquire(false, t), mp::ValueError,
                             Catch::Matchers::Message("can't specify a timeout for a non-blocking call"));
    }
    CHECK(lock.acquire(false, -1));
    lock.release();
    CHECK(rlock.acquire(false, -1));  // the owner, one level deeper
    rlock.release();
    rlock.release();

    auto s = manager.Semaphore(0);
    t0 = Clock::now();
    CHECK_FALSE(s.acquire(true, -0.5));
    CHECK(seconds_since(t0) < 20);
}

TEST_CASE("d[k] and l[i] from a temporary proxy may be kept", "[misuse][containers]") {
    mp::managers::SyncManager manager;
    manager.start();
    auto d = manager.dict<std::string, int>();
    auto l = manager.list<int>(std::vector<int>{5});
    auto counters = [&] { return d; };  // a proxy by value, gone at the end of each statement
    auto items = [&] { return l; };
    counters()["hits"] = 1;
    auto hits = counters()["hits"];
    hits = 2;
    CHECK(static_cast<int>(hits) == 2);
    auto first = items()[0];
    CHECK(static_cast<int>(first) == 5);
    first = 6;
    CHECK(l[0].get() == 6);
}

TEST_CASE("an Array too large for memory is OverflowError, not a small mapping", "[misuse][sharedctypes]") {
    CHECK_THROWS_AS(mp::Array<int>((std::size_t(1) << 62) + 16), mp::OverflowError);
    CHECK_THROWS_AS(mp::RawArray<int>(SIZE_MAX), mp::OverflowError);
}

TEST_CASE("SharedMemoryManager::enter() starts and shuts down the SharedMemoryManager", "[misuse][smm]") {
    mp::managers::SharedMemoryManager smm;
    std::string name;
    {
        auto with = smm.enter();  // Python's `with SharedMemoryManager() as smm:`
        auto shm = smm.SharedMemory(64);
        name = shm.name();
        CHECK(::access(("/dev/shm/" + name).c_str(), F_OK) == 0);
    }
    CHECK(::access(("/dev/shm/" + name).c_str(), F_OK) != 0);  // unlinked by the shutdown
}

TEST_CASE("d[a] = d[b] and l[i] = l[j] copy values, as in Python", "[misuse][containers]") {
    mp::managers::SyncManager manager;
    manager.start();
    auto d = manager.dict<std::string, int>();
    d["b"] = 7;
    d["a"] = d["b"];
    CHECK(d.at("a") == 7);
    auto l = manager.list<int>(std::vector<int>{1, 2});
    l[0] = l[1];
    CHECK(l[0].get() == 2);
}

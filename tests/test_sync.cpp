// SyncManager's queues and locks across processes: ports of CPython's
// _TestQueue, _TestLock, _TestSemaphore, _TestCondition, _TestEvent and
// _TestBarrier (manager mode), plus what happens when a holder or a waiter
// is killed.
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <mutex>

namespace mp = multiprocessing;
using namespace std::chrono;

static double since(steady_clock::time_point t0) { return duration<double>(steady_clock::now() - t0).count(); }

TEST_CASE("_TestQueue.test_put and test_get", "[sync][queue]") {
    auto manager = mp::Manager();
    const int MAXSIZE = 6;
    auto queue = manager.Queue<int>(MAXSIZE);
    CHECK(queue.empty());
    CHECK_FALSE(queue.full());
    queue.put(1);
    queue.put(2, true);
    queue.put(3, true, std::nullopt);
    queue.put(4, false);
    queue.put(5, false, std::nullopt);
    queue.put_nowait(6);
    CHECK(queue.qsize() == 6);
    CHECK(queue.full());
    CHECK_THROWS_AS(queue.put(7, false), mp::Full);
    auto t0 = steady_clock::now();
    CHECK_THROWS_AS(queue.put(7, true, 0.2), mp::Full);
    CHECK(since(t0) >= 0.2);  // never early
    CHECK(queue.get() == 1);
    CHECK(queue.get(true) == 2);
    CHECK(queue.get(true, std::nullopt) == 3);
    CHECK(queue.get(false) == 4);
    CHECK(queue.get_nowait() == 5);
    CHECK(queue.get(true, 1.0) == 6);
    CHECK(queue.empty());
    CHECK_THROWS_AS(queue.get(false), mp::Empty);
    t0 = steady_clock::now();
    CHECK_THROWS_AS(queue.get(true, 0.2), mp::Empty);
    CHECK(since(t0) >= 0.2);
}

TEST_CASE("_TestQueue.test_fork: items put by a child before it exits are all there", "[sync][queue][fork]") {
    auto manager = mp::Manager();
    auto queue = manager.Queue<int>();
    mp::Process p([queue] {
        for (int i = 0; i < 10; ++i) queue.put(i);
    });
    p.start();
    CHECK(test::join_or_kill(p) == 0);
    std::vector<int> got;
    for (int i = 0; i < 10; ++i) got.push_back(queue.get(true, 5.0));
    CHECK(got == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    CHECK_THROWS_AS(queue.get(false), mp::Empty);
}

TEST_CASE("_TestQueue.test_qsize", "[sync][queue]") {
    auto manager = mp::Manager();
    auto q = manager.Queue();
    CHECK(q.qsize() == 0);
    q.put(1);
    CHECK(q.qsize() == 1);
    q.put("two");
    CHECK(q.qsize() == 2);
    CHECK(q.get() == mp::object(1));
    CHECK(q.qsize() == 1);
    CHECK(q.get() == mp::object("two"));
    CHECK(q.qsize() == 0);
}

TEST_CASE("_TestQueue.test_task_done with workers", "[sync][queue][fork]") {
    auto manager = mp::Manager();
    auto queue = manager.JoinableQueue<int>();
    std::vector<mp::Process> workers;
    for (int i = 0; i < 4; ++i)
        workers.emplace_back([queue] {
            for (;;) {
                int obj = queue.get();
                if (obj < 0) { queue.task_done(); return; }
                queue.task_done();
            }
        });
    for (auto& w : workers) w.start();
    for (int i = 0; i < 10; ++i) queue.put(i);
    queue.join(30.0);
    CHECK(queue.qsize() == 0);
    for (int i = 0; i < 4; ++i) queue.put(-1);
    queue.join(30.0);
    for (auto& w : workers) CHECK(test::join_or_kill(w) == 0);
    CHECK_THROWS_MATCHES(queue.task_done(), mp::ValueError, Catch::Matchers::Message("task_done() called too many times"));
}

TEST_CASE("Queue.shutdown (Python 3.13)", "[sync][queue]") {
    auto manager = mp::Manager();
    auto q = manager.Queue<int>();
    q.put(1);
    q.shutdown();
    CHECK_THROWS_AS(q.put(2), mp::ShutDown);
    CHECK(q.get() == 1);  // drains first
    CHECK_THROWS_AS(q.get(), mp::ShutDown);
    auto r = manager.Queue<int>();
    r.put(1);
    r.shutdown(true);
    CHECK_THROWS_AS(r.get(), mp::ShutDown);
}

TEST_CASE("a get() blocked in one process does not block a put() from another", "[sync][queue][fork]") {
    auto manager = mp::Manager();
    auto q = manager.Queue<std::string>();
    auto other = manager.list<int>();
    test::Channel ch;
    mp::Process getter([q, &ch] { ch.write_line(q.get(true, 20.0)); });
    getter.start();
    std::this_thread::sleep_for(milliseconds(100));
    other.append(1);  // other objects stay usable
    q.put("hello");
    CHECK(ch.read_line() == "hello");
    CHECK(test::join_or_kill(getter) == 0);
}

TEST_CASE("a getter killed while blocked takes nothing with it", "[sync][queue][faults]") {
    auto manager = mp::Manager();
    auto q = manager.Queue<int>();
    mp::Process getter([q] { q.get(); });
    getter.start();
    std::this_thread::sleep_for(milliseconds(200));
    getter.kill();
    test::join_or_kill(getter);
    std::this_thread::sleep_for(milliseconds(150));  // the server notices within a wait slice
    q.put(42);
    CHECK(q.get(true, 5.0) == 42);
    CHECK(q.qsize() == 0);
}

TEST_CASE("_TestLock.test_lock and test_rlock", "[sync][lock]") {
    auto manager = mp::Manager();
    auto lock = manager.Lock();
    CHECK(lock.acquire());
    CHECK(lock.locked());
    CHECK_FALSE(lock.acquire(false));
    lock.release();
    CHECK_FALSE(lock.locked());
    CHECK_THROWS_AS(lock.release(), std::runtime_error);

    auto rlock = manager.RLock();
    CHECK(rlock.acquire());
    CHECK(rlock.acquire());
    CHECK(rlock.acquire());
    rlock.release();
    rlock.release();
    rlock.release();
    CHECK_THROWS_AS(rlock.release(), std::runtime_error);
}

TEST_CASE("_TestLock.test_lock_context: std::lock_guard across processes", "[sync][lock][fork]") {
    auto manager = mp::Manager();
    auto lock = manager.Lock();
    auto v = manager.Value(0);
    std::vector<mp::Process> ps;
    for (int i = 0; i < 4; ++i)
        ps.emplace_back([lock, v]() mutable {
            for (int k = 0; k < 100; ++k) {
                std::lock_guard<decltype(lock)> g(lock);
                v.set(v.get() + 1);  // read-modify-write, made atomic by the lock
            }
        });
    for (auto& p : ps) p.start();
    for (auto& p : ps) CHECK(test::join_or_kill(p) == 0);
    CHECK(v.get() == 400);
}

TEST_CASE("an RLock only its owner may release; its holder's death releases it", "[sync][lock][faults]") {
    auto manager = mp::Manager();
    auto rlock = manager.RLock();
    test::Channel ch;
    mp::Process holder([rlock, &ch] {
        rlock.acquire();
        ch.write_line("held");
        test::forever();
    });
    holder.start();
    REQUIRE(ch.read_line() == "held");
    CHECK_FALSE(rlock.acquire(false));
    CHECK_THROWS_AS(rlock.release(), std::runtime_error);  // not the owner
    holder.kill();
    test::join_or_kill(holder);
    CHECK(rlock.acquire(true, 5.0));  // released when its owner died
    rlock.release();
}

TEST_CASE("_TestSemaphore: semaphore, bounded semaphore, timeout", "[sync][semaphore]") {
    auto manager = mp::Manager();
    auto sem = manager.Semaphore(2);
    CHECK(sem.get_value() == 2);
    CHECK(sem.acquire());
    CHECK(sem.get_value() == 1);
    CHECK(sem.acquire());
    CHECK(sem.get_value() == 0);
    CHECK_FALSE(sem.acquire(false));
    sem.release();
    CHECK(sem.get_value() == 1);
    sem.release();
    CHECK(sem.get_value() == 2);
    sem.release();  // an unbounded semaphore may go above its start
    CHECK(sem.get_value() == 3);

    auto bsem = manager.BoundedSemaphore(2);
    bsem.acquire();
    bsem.release();
    CHECK_THROWS_MATCHES(bsem.release(), mp::ValueError, Catch::Matchers::Message("Semaphore released too many times"));

    auto z = manager.Semaphore(0);
    auto t0 = steady_clock::now();
    CHECK_FALSE(z.acquire(true, 0.2));
    CHECK(since(t0) >= 0.2);
    CHECK_FALSE(z.acquire(false));
}

TEST_CASE("_TestEvent.test_event", "[sync][event][fork]") {
    auto manager = mp::Manager();
    auto event = manager.Event();
    CHECK_FALSE(event.is_set());
    auto t0 = steady_clock::now();
    CHECK_FALSE(event.wait(0.2));
    CHECK(since(t0) >= 0.2);
    event.set();
    CHECK(event.is_set());
    CHECK(event.wait());
    CHECK(event.wait(0.0));
    event.clear();
    CHECK_FALSE(event.is_set());
    mp::Process p([event] {
        std::this_thread::sleep_for(milliseconds(100));
        event.set();
    });
    p.start();
    CHECK(event.wait(20.0));
    CHECK(test::join_or_kill(p) == 0);
}

TEST_CASE("_TestCondition: notify, notify_all, notify_n, timeout, wait_for", "[sync][condition][fork]") {
    auto manager = mp::Manager();
    auto cond = manager.Condition();
    auto woken = manager.Semaphore(0);
    auto sleeping = manager.Semaphore(0);
    auto start = [&](int n) {
        std::vector<std::unique_ptr<mp::Process>> ps;
        for (int i = 0; i < n; ++i) {
            ps.push_back(std::make_unique<mp::Process>([cond, sleeping, woken]() mutable {
                std::lock_guard<decltype(cond)> g(cond);
                sleeping.release();
                cond.wait(20.0);
                woken.release();
            }));
            ps.back()->start();
        }
        for (int i = 0; i < n; ++i) REQUIRE(sleeping.acquire(true, 20.0));
        return ps;
    };
    {
        auto ps = start(3);
        std::this_thread::sleep_for(milliseconds(100));
        CHECK(woken.get_value() == 0);
        {
            std::lock_guard<decltype(cond)> g(cond);
            cond.notify();
        }
        CHECK(woken.acquire(true, 10.0));
        CHECK(woken.get_value() == 0);
        {
            std::lock_guard<decltype(cond)> g(cond);
            cond.notify(2);  // notify_n
        }
        CHECK(woken.acquire(true, 10.0));
        CHECK(woken.acquire(true, 10.0));
        for (auto& p : ps) CHECK(test::join_or_kill(*p) == 0);
    }
    {
        auto ps = start(3);
        {
            std::lock_guard<decltype(cond)> g(cond);
            cond.notify_all();
        }
        for (int i = 0; i < 3; ++i) CHECK(woken.acquire(true, 10.0));
        for (auto& p : ps) CHECK(test::join_or_kill(*p) == 0);
    }
    // timeout: wait returns false, never early
    cond.acquire();
    auto t0 = steady_clock::now();
    CHECK_FALSE(cond.wait(0.2));
    CHECK(since(t0) >= 0.2);
    cond.release();
    CHECK_THROWS_AS(cond.notify(), std::runtime_error);  // notify without the lock
    // wait_for
    auto state = manager.Value(0);
    mp::Process setter([cond, state]() mutable {
        for (int i = 0; i < 4; ++i) {
            std::this_thread::sleep_for(milliseconds(20));
            std::lock_guard<decltype(cond)> g(cond);
            state.set(state.get() + 1);
            cond.notify();
        }
    });
    setter.start();
    {
        std::lock_guard<decltype(cond)> g(cond);
        CHECK(cond.wait_for([&] { return state.get() == 4; }, 20.0));
        CHECK_FALSE(cond.wait_for([&] { return state.get() == 5; }, 0.1));
    }
    CHECK(test::join_or_kill(setter) == 0);
}

TEST_CASE("_TestBarrier: barrier, wait_return, abort, reset, timeout, single party", "[sync][barrier][fork]") {
    auto manager = mp::Manager();
    const int N = 3;
    {
        auto barrier = manager.Barrier(N);
        CHECK(barrier.parties() == N);
        auto results = manager.list<long long>();
        std::vector<std::unique_ptr<mp::Process>> ps;
        for (int i = 0; i < N - 1; ++i) {
            ps.push_back(std::make_unique<mp::Process>([barrier, results] { results.append(barrier.wait(20.0)); }));
            ps.back()->start();
        }
        results.append(barrier.wait(20.0));
        for (auto& p : ps) CHECK(test::join_or_kill(*p) == 0);
        auto got = results.copy();
        std::sort(got.begin(), got.end());
        CHECK(got == std::vector<long long>{0, 1, 2});  // wait_return: one of each index
        CHECK(barrier.n_waiting() == 0);
        CHECK_FALSE(barrier.broken());
    }
    {
        auto barrier = manager.Barrier(N);
        auto t0 = steady_clock::now();
        CHECK_THROWS_AS(barrier.wait(0.2), mp::BrokenBarrierError);  // timeout breaks it
        CHECK(since(t0) >= 0.2);
        CHECK(barrier.broken());
        CHECK_THROWS_AS(barrier.wait(), mp::BrokenBarrierError);
        barrier.reset();
        CHECK_FALSE(barrier.broken());
    }
    {
        auto barrier = manager.Barrier(N, 0.2);  // default timeout
        CHECK_THROWS_AS(barrier.wait(), mp::BrokenBarrierError);
    }
    {
        auto barrier = manager.Barrier(N);
        mp::Process waiter([barrier] {
            try {
                barrier.wait(20.0);
            } catch (const mp::BrokenBarrierError&) {
                throw mp::SystemExit{5};
            }
        });
        waiter.start();
        REQUIRE(test::wait_until([&] { return barrier.n_waiting() == 1; }));
        barrier.abort();
        CHECK(test::join_or_kill(waiter) == 5);
        CHECK(barrier.broken());
        barrier.reset();
        CHECK_FALSE(barrier.broken());
    }
    {
        auto barrier = manager.Barrier(N);
        mp::Process waiter([barrier] {
            try {
                barrier.wait(20.0);
            } catch (const mp::BrokenBarrierError&) {
                throw mp::SystemExit{6};
            }
        });
        waiter.start();
        REQUIRE(test::wait_until([&] { return barrier.n_waiting() == 1; }));
        barrier.reset();  // waiting parties get BrokenBarrierError
        CHECK(test::join_or_kill(waiter) == 6);
        CHECK_FALSE(barrier.broken());
    }
    {
        auto single = manager.Barrier(1);
        CHECK(single.wait() == 0);
        CHECK(single.wait() == 0);
    }
}

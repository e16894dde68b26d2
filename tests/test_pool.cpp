// manager.Pool(): ports of CPython's _TestPool (the cases it runs in
// 'manager' mode) and TestSyncManagerTypes.test_pool, plus what a C++ pool
// does beyond CPython's (worker death, reaping, calls by name).
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <thread>

namespace mp = multiprocessing;

namespace {

int sqr(int x) { return x * x; }
int sqr_wait(int x, double wait) {
    std::this_thread::sleep_for(std::chrono::duration<double>(wait));
    return x * x;
}
int mul(int x, int y) { return x * y; }
double sleep_for(double s) {
    std::this_thread::sleep_for(std::chrono::duration<double>(s));
    return s;
}
int raise_large_valuerror(double wait) {
    std::this_thread::sleep_for(std::chrono::duration<double>(wait));
    throw mp::ValueError(std::string(1024 * 1024, 'x'));
}
int raising() { throw mp::KeyError("key"); }
int wrapped_exception() { throw std::runtime_error("foo"); }
struct Custom {};
int raise_custom() { throw Custom{}; }
struct OwnError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
int raise_own() { throw OwnError("own"); }
int int_of(std::string s) {
    try {
        std::size_t used = 0;
        int v = std::stoi(s, &used);
        if (used == s.size()) return v;
    } catch (const std::exception&) {
    }
    throw mp::ValueError("invalid literal for int() with base 10: '" + s + "'");
}
int fail_at_3(int x) {
    if (x == 3) throw mp::ValueError("three");
    return x * x;
}
std::string identity(std::string s) { return s; }
// Marks that it started (a file), then sleeps: a worker to kill mid-task.
int announce_and_sleep(std::string path) {
    std::ofstream(path) << ::getpid();
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return 0;
}
void nothing() {}
int not_registered(int x) { return x; }

}  // namespace

MP_REGISTER_FUNCTION(sqr)
MP_REGISTER_FUNCTION(sqr_wait)
MP_REGISTER_FUNCTION(mul)
MP_REGISTER_FUNCTION(sleep_for)
MP_REGISTER_FUNCTION(raise_large_valuerror)
MP_REGISTER_FUNCTION(raising)
MP_REGISTER_FUNCTION(wrapped_exception)
MP_REGISTER_FUNCTION(raise_custom)
MP_REGISTER_FUNCTION(raise_own)
MP_REGISTER_FUNCTION(int_of)
MP_REGISTER_FUNCTION(fail_at_3)
MP_REGISTER_FUNCTION(identity)
MP_REGISTER_FUNCTION(announce_and_sleep)
MP_REGISTER_FUNCTION(nothing)

[[maybe_unused]] static const bool lambda_registered = (mp::managers::register_function("add3", [](int a, int b, int c) { return a + b + c; }), true);

static std::vector<int> range(int a, int b) {
    std::vector<int> v;
    for (int i = a; i < b; ++i) v.push_back(i);
    return v;
}
static std::vector<int> squares(int n) {
    std::vector<int> v;
    for (int i = 0; i < n; ++i) v.push_back(i * i);
    return v;
}
static std::vector<std::pair<int, int>> zipped(int n) {
    std::vector<std::pair<int, int>> v;
    for (int i = 0; i < n; ++i) v.emplace_back(i, n - 1 - i);
    return v;
}
static std::vector<int> products(int n) {
    std::vector<int> v;
    for (int i = 0; i < n; ++i) v.push_back(i * (n - 1 - i));
    return v;
}

constexpr double TIMEOUT1 = 0.1;

TEST_CASE("_TestPool.test_apply", "[pool]") {
    auto manager = mp::Manager();
    auto pool = manager.Pool(4);
    CHECK(pool.apply(sqr, 5) == 25);
    CHECK(pool.apply<int>("sqr", 3) == 9);
    CHECK(pool.apply(mul, 6, 7) == 42);
    CHECK(pool.apply<int>("add3", 1, 2, 3) == 6);
    pool.apply(nothing);
    pool.apply_async(nothing).get(30);
    CHECK(pool.apply(identity, "abc") == "abc");
    pool.terminate();
    CHECK(pool.join(30));
}

TEST_CASE("_TestPool.test_map", "[pool]") {
    auto manager = mp::Manager();
    auto pool = manager.Pool(4);
    CHECK(pool.map(sqr, range(0, 10)) == squares(10));
    CHECK(pool.map(sqr, range(0, 100), 20) == squares(100));
    CHECK(pool.map<int>("sqr", range(0, 10)) == squares(10));
}

TEST_CASE("_TestPool.test_starmap", "[pool]") {
    auto manager = mp::Manager();
    auto pool = manager.Pool(4);
    CHECK(pool.starmap(mul, zipped(10)) == products(10));
    CHECK(pool.starmap(mul, zipped(100), 20) == products(100));
    std::vector<std::tuple<int, int>> tuples{{2, 3}, {4, 5}};
    CHECK(pool.starmap<int>("mul", tuples) == std::vector<int>{6, 20});
}

TEST_CASE("_TestPool.test_starmap_async", "[pool]") {
    auto manager = mp::Manager();
    auto pool = manager.Pool(4);
    CHECK(pool.starmap_async(mul, zipped(100)).get(30) == products(100));
}

TEST_CASE("_TestPool.test_map_async", "[pool]") {
    auto manager = mp::Manager();
    auto pool = manager.Pool(4);
    CHECK(pool.map_async(sqr, range(0, 10)).get(30) == squares(10));
    CHECK(pool.map_async<int>("sqr", range(0, 10)).get(30) == squares(10));
}

// No callbacks here (code cannot run in the caller from the server); the
// same outcomes through get() and successful().
TEST_CASE("_TestPool.test_map_async_callbacks", "[pool]") {
    auto manager = mp::Manager();
    auto pool = manager.Pool(4);
    auto ok = pool.map_async(int_of, std::vector<std::string>{"1"});
    CHECK(ok.wait(30));
    CHECK(ok.successful());
    CHECK(ok.get() == std::vector<int>{1});
    auto bad = pool.map_async(int_of, std::vector<std::string>{"a"});
    CHECK(bad.wait(30));
    CHECK_FALSE(bad.successful());
    CHECK_THROWS_AS(bad.get(), mp::ValueError);
}

TEST_CASE("_TestPool.test_map_chunksize", "[pool]") {
    auto manager = mp::Manager();
    auto pool = manager.Pool(4);
    CHECK(pool.map_async(sqr, std::vector<int>{}, 1).get(TIMEOUT1 * 50).empty());
    CHECK_THROWS_AS(pool.map(sqr, range(0, 3), 0), mp::ValueError);
}

TEST_CASE("_TestPool.test_async", "[pool]") {
    auto manager = mp::Manager();
    auto pool = manager.Pool(4);
    auto res = pool.apply_async(sqr_wait, 7, TIMEOUT1);
    CHECK(res.get(30) == 49);
    CHECK(res.ready());
    CHECK(res.successful());
}

TEST_CASE("_TestPool.test_async_timeout", "[pool]") {
    auto manager = mp::Manager();
    auto p = manager.Pool(3);
    auto res = p.apply_async(sqr_wait, 6, 30.0);
    CHECK_THROWS_AS(res.get(0.2), mp::TimeoutError);
    CHECK_FALSE(res.ready());
    CHECK_THROWS_AS(res.successful(), mp::ValueError);
    p.terminate();
    CHECK(p.join(30));
}

TEST_CASE("_TestPool.test_imap", "[pool]") {
    auto manager = mp::Manager();
    auto pool = manager.Pool(4);
    std::vector<int> got;
    for (int v : pool.imap(sqr, range(0, 10))) got.push_back(v);
    CHECK(got == squares(10));

    auto it = pool.imap(sqr, range(0, 10));
    for (int i = 0; i < 10; ++i) CHECK(it.next(30) == i * i);
    CHECK_THROWS_AS(it.next(), mp::StopIteration);

    auto it2 = pool.imap(sqr, range(0, 1000), 100);
    for (int i = 0; i < 1000; ++i) REQUIRE(it2.next(30) == i * i);
    CHECK_THROWS_AS(it2.next(), mp::StopIteration);

    auto by_name = pool.imap<int>("sqr", range(0, 5));
    CHECK(std::vector<int>(by_name.begin(), by_name.end()) == squares(5));
}

TEST_CASE("_TestPool.test_imap_unordered", "[pool]") {
    auto manager = mp::Manager();
    auto pool = manager.Pool(4);
    auto it = pool.imap_unordered(sqr, range(0, 10));
    std::vector<int> got(it.begin(), it.end());
    std::sort(got.begin(), got.end());
    CHECK(got == squares(10));

    auto it2 = pool.imap_unordered(sqr, range(0, 1000), 100);
    std::vector<int> got2(it2.begin(), it2.end());
    std::sort(got2.begin(), got2.end());
    CHECK(got2 == squares(1000));
}

// CPython raises RemoteError here (the ValueError is wrapped by the
// manager's create); here the ValueError itself arrives.
TEST_CASE("_TestPool.test_make_pool", "[pool]") {
    auto manager = mp::Manager();
    CHECK_THROWS_AS(manager.Pool(-1), mp::ValueError);
    CHECK_THROWS_WITH(manager.Pool(0), "Number of processes must be at least 1");
    auto p = manager.Pool(3);
    CHECK(p.pids().size() == 3);
    p.close();
    CHECK(p.join(30));
}

TEST_CASE("_TestPool.test_terminate", "[pool]") {
    auto manager = mp::Manager();
    auto p = manager.Pool(3);
    std::vector<double> args(10000, 60.0);
    auto result = p.map_async(sleep_for, args, 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // give some tasks a chance to start
    p.terminate();
    CHECK(p.join(30));
    // CPython's result never arrives; here it fails.
    CHECK_THROWS_AS(result.get(30), mp::ProcessError);
}

TEST_CASE("_TestPool.test_empty_iterable", "[pool]") {
    auto manager = mp::Manager();
    auto p = manager.Pool(1);
    CHECK(p.map(sqr, std::vector<int>{}).empty());
    auto it = p.imap(sqr, std::vector<int>{});
    CHECK(it.begin() == it.end());
    auto it2 = p.imap_unordered(sqr, std::vector<int>{});
    CHECK(it2.begin() == it2.end());
    CHECK(p.map_async(sqr, std::vector<int>{}).get(30).empty());
    p.close();
    CHECK(p.join(30));
}

TEST_CASE("_TestPool.test_wrapped_exception", "[pool]") {
    auto manager = mp::Manager();
    auto p = manager.Pool(1);
    try {
        p.apply(wrapped_exception);
        FAIL("expected std::runtime_error");
    } catch (const std::runtime_error& e) {
        CHECK(typeid(e) == typeid(std::runtime_error));
        CHECK(std::string(e.what()) == "foo");
    }
    p.close();
    CHECK(p.join(30));
}

TEST_CASE("_TestPool.test_map_no_failfast", "[pool]") {
    auto manager = mp::Manager();
    auto p = manager.Pool(2);
    CHECK_THROWS_AS(p.map(raise_large_valuerror, std::vector<double>{0, 1}), mp::ValueError);
    p.close();
    CHECK(p.join(30));
}

TEST_CASE("TestSyncManagerTypes.test_pool", "[pool][fork]") {
    auto manager = mp::Manager();
    auto o = manager.Pool(4);
    mp::Process child([o] {
        o.terminate();  // what Python's `with obj: pass` does on exit
    });
    child.start();
    CHECK(test::join_or_kill(child) == 0);
    CHECK(o.join(30));
}

TEST_CASE("pool: worker exceptions come back as their own type", "[pool]") {
    auto manager = mp::Manager();
    auto p = manager.Pool(2);
    CHECK_THROWS_AS(p.apply(raising), mp::KeyError);
    auto r = p.apply_async(raising);
    CHECK_THROWS_AS(r.get(30), mp::KeyError);
    CHECK(r.ready());
    CHECK_FALSE(r.successful());
    try {
        p.apply(raise_custom);
        FAIL("expected RemoteError");
    } catch (const mp::managers::RemoteError& e) {
        CHECK(e.type_name().find("Custom") != std::string::npos);
    }
    try {
        p.apply(raise_own);
        FAIL("expected RemoteError");
    } catch (const mp::managers::RemoteError& e) {
        CHECK(e.type_name().find("OwnError") != std::string::npos);
        CHECK(e.message() == "own");
    }
}

TEST_CASE("pool: imap raises a failed item's exception at its place and goes on", "[pool]") {
    auto manager = mp::Manager();
    auto p = manager.Pool(2);
    auto it = p.imap(fail_at_3, range(0, 6));
    for (int i = 0; i < 3; ++i) CHECK(it.next(30) == i * i);
    CHECK_THROWS_AS(it.next(30), mp::ValueError);
    CHECK(it.next(30) == 16);
    CHECK(it.next(30) == 25);
    CHECK_THROWS_AS(it.next(30), mp::StopIteration);
    CHECK_THROWS_AS(p.map(fail_at_3, range(0, 6)), mp::ValueError);
}

TEST_CASE("pool: unknown names and wrong types and unregistered functions are refused", "[pool]") {
    auto manager = mp::Manager();
    auto p = manager.Pool(1);
    CHECK_THROWS_AS(p.apply<int>("no_such_function", 1), mp::AttributeError);
    CHECK_THROWS_AS(p.apply<int>("sqr", 1.5), mp::TypeError);   // sqr takes an int
    CHECK_THROWS_AS(p.apply<long>("sqr", 1), mp::TypeError);    // and returns one
    CHECK_THROWS_AS(p.apply(not_registered, 1), mp::ValueError);
    CHECK(p.apply(sqr, 4) == 16);  // the pool is fine
}

TEST_CASE("pool: close() refuses new work and join() needs close() or terminate()", "[pool]") {
    auto manager = mp::Manager();
    auto p = manager.Pool(2);
    CHECK_THROWS_WITH(p.join(1), "Pool is still running");
    auto r = p.apply_async(sqr_wait, 5, 0.2);
    p.close();
    CHECK_THROWS_WITH(p.apply(sqr, 1), "Pool not running");
    CHECK(p.join(30));  // the queued task still ran
    CHECK(r.get(1) == 25);
    CHECK(p.pids().empty());
}

TEST_CASE("pool: a worker killed mid-task fails that task and is replaced", "[pool][faults]") {
    auto manager = mp::Manager();
    auto p = manager.Pool(1);
    std::string mark = "/tmp/mp-pool-mark-" + std::to_string(::getpid());
    ::unlink(mark.c_str());
    auto r = p.apply_async(announce_and_sleep, mark);
    REQUIRE(test::wait_until([&] { return ::access(mark.c_str(), F_OK) == 0; }, 30));
    long long victim = 0;
    REQUIRE(test::wait_until([&] { return (std::ifstream(mark) >> victim) && victim > 0; }, 10));
    ::unlink(mark.c_str());
    CHECK(p.pids() == std::vector<long long>{victim});
    ::kill(static_cast<pid_t>(victim), SIGKILL);
    try {
        r.get(30);  // CPython's pool waits forever here
        FAIL("expected ProcessError");
    } catch (const mp::ProcessError& e) {
        CHECK(std::string(e.what()).find("killed by signal 9") != std::string::npos);
    }
    CHECK(p.apply(sqr, 3) == 9);  // a new worker took its place
    auto now = p.pids();
    REQUIRE(now.size() == 1);
    CHECK(now[0] != victim);
}

TEST_CASE("pool: workers are reaped when the manager shuts down", "[pool][lifetime]") {
    std::vector<long long> pids;
    {
        auto manager = mp::Manager();
        auto p = manager.Pool(3);
        CHECK(p.apply(sqr, 2) == 4);
        pids = p.pids();
        auto busy = p.apply_async(sleep_for, 60.0);  // one worker busy at shutdown
        (void)busy;
        manager.shutdown();
        CHECK(manager.exitcode() == 0);
    }
    REQUIRE(pids.size() == 3);
    for (auto pid : pids) CHECK(test::wait_until([&] { return ::kill(static_cast<pid_t>(pid), 0) != 0; }, 10));
}

TEST_CASE("pool: workers die with a SIGKILLed server", "[pool][lifetime]") {
    test::become_subreaper();  // the orphaned workers come to us
    auto manager = mp::Manager();
    auto p = manager.Pool(2);
    CHECK(p.apply(sqr, 2) == 4);
    auto pids = p.pids();
    auto busy = p.apply_async(sleep_for, 60.0);
    (void)busy;
    ::kill(manager.pid(), SIGKILL);
    for (auto pid : pids) CHECK(test::wait_until([&] { return !test::pid_alive(static_cast<pid_t>(pid)); }, 10));
    manager.shutdown();
}

TEST_CASE("pool: a client that connects by address calls functions by name", "[pool][remote]") {
    auto manager = mp::Manager();
    auto pool = manager.Pool(2);
    std::string addr = manager.address().path(), key = manager.authkey();
    auto tok = pool._token();
    mp::Process client([addr, key, tok] {
        mp::managers::SyncManager other(addr, key);
        other.connect();
        // By name and result type only, as a program without the code would.
        auto own = other.Pool(1);
        if (own.apply<int>("sqr", 7) != 49) throw mp::SystemExit{2};
        if (own.map<int>("sqr", std::vector<int>{1, 2, 3}) != std::vector<int>{1, 4, 9}) throw mp::SystemExit{3};
        auto shared = mp::managers::RebuildProxy<mp::managers::PoolRef>(tok);
        if (shared.starmap<int>("mul", std::vector<std::pair<int, int>>{{3, 4}}) != std::vector<int>{12})
            throw mp::SystemExit{4};
        own.terminate();
        if (!own.join(30)) throw mp::SystemExit{5};
    });
    client.start();
    CHECK(test::join_or_kill(client) == 0);
    CHECK(pool.apply(sqr, 5) == 25);
}

TEST_CASE("pool: a forked child uses its parent's pool", "[pool][fork]") {
    auto manager = mp::Manager();
    auto pool = manager.Pool(2);
    auto r = pool.apply_async(sqr, 9);
    mp::Process child([pool, r] {
        if (pool.apply(mul, 2, 21) != 42) throw mp::SystemExit{2};
        if (r.get(30) != 81) throw mp::SystemExit{3};
    });
    child.start();
    CHECK(test::join_or_kill(child) == 0);
    CHECK(r.get(30) == 81);
}

TEST_CASE("pool: dropping the last proxy ends the pool and its workers", "[pool][lifetime]") {
    auto manager = mp::Manager();
    std::vector<long long> pids;
    mp::managers::AsyncResult<double> pending;
    {
        auto p = manager.Pool(2);
        pids = p.pids();
        pending = p.apply_async(sleep_for, 60.0);
    }
    // The AsyncResult outlives its pool: it fails instead of waiting forever.
    CHECK_THROWS_AS(pending.get(30), mp::ProcessError);
    for (auto pid : pids) CHECK(test::wait_until([&] { return ::kill(static_cast<pid_t>(pid), 0) != 0; }, 10));
    pending = {};
    CHECK(test::wait_until([&] { return manager.number_of_objects() == 0; }));
}

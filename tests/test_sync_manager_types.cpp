// CPython's TestSyncManagerTypes: each SyncManager type made in the parent,
// used by a worker process, and checked again in the parent.  test_pool is
// ported with the Pool (tests of the pool helper).
#include "helpers.hpp"

#include <catch2/catch.hpp>

namespace mp = multiprocessing;

namespace {

// Raises in the worker (exit code 1), like CPython's assert.
void expect(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string("expectation failed: ") + what);
}
#define EXPECT(...) expect((__VA_ARGS__), #__VA_ARGS__)

// setUp/tearDown: a started SyncManager, shut down at the end.
struct Fixture {
    mp::managers::SyncManager manager;
    Fixture() { manager.start(); }
    ~Fixture() { manager.shutdown(); }

    /// CPython's run_worker: the worker runs in a child; exit code 0.
    template <class F>
    void run_worker(F worker) {
        mp::Process proc(worker);
        proc.start();
        CHECK(test::join_or_kill(proc) == 0);
    }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "TestSyncManagerTypes.test_event", "[sync_types][fork]") {
    auto o = manager.Event();
    o.set();
    run_worker([o] {
        EXPECT(o.is_set());
        o.wait();
        o.clear();
        o.wait(0.001);
    });
    CHECK_FALSE(o.is_set());
    CHECK_FALSE(o.wait(0.001));
}

TEST_CASE_METHOD(Fixture, "TestSyncManagerTypes.test_lock", "[sync_types][fork]") {
    auto o = manager.Lock();
    run_worker([o] { o.acquire(); });
    // CPython: the worker's lock stays held, the parent releases it, and a
    // second release raises.  Here a lock whose holder died is released by
    // the server, so the first release already finds it unlocked.
    CHECK(test::wait_until([&] { return !o.locked(); }));
    CHECK_THROWS_MATCHES(o.release(), std::runtime_error, Catch::Matchers::Message("release unlocked lock"));
}

TEST_CASE_METHOD(Fixture, "TestSyncManagerTypes.test_rlock", "[sync_types][fork]") {
    auto o = manager.Lock();  // CPython passes lname="Lock" here too
    run_worker([o] {
        o.acquire();
        o.release();
    });
    CHECK_FALSE(o.locked());
}

TEST_CASE_METHOD(Fixture, "TestSyncManagerTypes.test_semaphore", "[sync_types][fork]") {
    auto o = manager.Semaphore();
    run_worker([o] { o.acquire(); });
    o.release();  // a semaphore has no owner: the worker's permit stays taken
    CHECK(o.get_value() == 1);
}

TEST_CASE_METHOD(Fixture, "TestSyncManagerTypes.test_bounded_semaphore", "[sync_types][fork]") {
    auto o = manager.BoundedSemaphore();
    run_worker([o] { o.acquire(); });
    o.release();
    CHECK(o.get_value() == 1);
}

TEST_CASE_METHOD(Fixture, "TestSyncManagerTypes.test_condition", "[sync_types][fork]") {
    auto o = manager.Condition();
    run_worker([o] {
        o.acquire();
        o.release();
    });
    CHECK(o.acquire(false));
    o.release();
}

TEST_CASE_METHOD(Fixture, "TestSyncManagerTypes.test_barrier", "[sync_types][fork]") {
    auto o = manager.Barrier(5);
    run_worker([o] {
        EXPECT(o.parties() == 5);
        o.reset();
    });
    CHECK_FALSE(o.broken());
}

static void check_queue(mp::managers::SyncManager& manager, bool joinable, Fixture& f) {
    auto o = joinable ? manager.JoinableQueue(2) : manager.Queue(2);
    o.put(5);
    o.put(6);
    f.run_worker([o] {
        EXPECT(o.qsize() == 2);
        EXPECT(o.full());
        EXPECT(!o.empty());
        EXPECT(o.get() == mp::object(5));
        EXPECT(!o.empty());
        EXPECT(o.get() == mp::object(6));
        EXPECT(o.empty());
    });
    CHECK(o.empty());
    CHECK_FALSE(o.full());
}

TEST_CASE_METHOD(Fixture, "TestSyncManagerTypes.test_queue", "[sync_types][fork]") { check_queue(manager, false, *this); }

TEST_CASE_METHOD(Fixture, "TestSyncManagerTypes.test_joinable_queue", "[sync_types][fork]") {
    check_queue(manager, true, *this);
}

TEST_CASE_METHOD(Fixture, "TestSyncManagerTypes.test_list", "[sync_types][fork]") {
    auto o = manager.list();
    o.append(5);
    run_worker([o] {
        EXPECT(o.at(0) == mp::object(5));
        EXPECT(o.count(5) == 1);
        EXPECT(o.index(5) == 0);
        o.sort();
        o.reverse();
        for (auto& x : o) (void)x;
        EXPECT(o.size() == 1);
        EXPECT(o.pop(0) == mp::object(5));
    });
    CHECK(o);
    CHECK(o.size() == 0);
}

TEST_CASE_METHOD(Fixture, "TestSyncManagerTypes.test_dict", "[sync_types][fork]") {
    auto o = manager.dict();
    o["foo"] = 5;
    run_worker([o] {
        using kv = std::pair<mp::object, mp::object>;
        EXPECT(o.size() == 1);
        EXPECT(o.at("foo") == mp::object(5));
        EXPECT(o.get("foo") == mp::object(5));
        EXPECT(o.items() == std::vector<kv>{{"foo", 5}});
        EXPECT(o.keys() == std::vector<mp::object>{"foo"});
        EXPECT(o.values() == std::vector<mp::object>{5});
        EXPECT(o.copy().items() == std::vector<kv>{{"foo", 5}});
        EXPECT(o.popitem() == kv{"foo", 5});
    });
    CHECK(o);
    CHECK(o.size() == 0);
}

TEST_CASE_METHOD(Fixture, "TestSyncManagerTypes.test_value", "[sync_types][fork]") {
    auto o = manager.Value("i", 1);
    run_worker([o] {
        EXPECT(o.value() == 1);
        EXPECT(o.get() == 1);
        o.set(2);
    });
    CHECK(o.value() == 2);
    CHECK(o.get() == 2);
}

TEST_CASE_METHOD(Fixture, "TestSyncManagerTypes.test_array", "[sync_types][fork]") {
    auto o = manager.Array("i", std::vector<int>{0, 1});
    run_worker([o] {
        EXPECT(o.at(0) == 0);
        EXPECT(o.at(1) == 1);
        EXPECT(o.size() == 2);
        EXPECT(o.copy() == std::vector<int>{0, 1});
    });
}

TEST_CASE_METHOD(Fixture, "TestSyncManagerTypes.test_namespace", "[sync_types][fork]") {
    auto o = manager.Namespace();
    o.setattr("x", 0);
    o.setattr("y", 1);
    run_worker([o] {
        EXPECT(o.getattr("x") == mp::object(0));
        EXPECT(o.getattr("y") == mp::object(1));
    });
}

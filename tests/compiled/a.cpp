// The library built with MULTIPROCESSING_SEPARATE_COMPILATION (linked
// through multiprocessing::compiled): SyncManager's built-in types, whose
// server side this file does not instantiate, and exceptions rebuilt by the
// compiled exception table.
#include "shared.hpp"
#include "../helpers.hpp"

#include <catch2/catch.hpp>

namespace mp = multiprocessing;

#if !defined(MULTIPROCESSING_SEPARATE_COMPILATION)
#error "test_compiled must be built against multiprocessing::compiled"
#endif

TEST_CASE("compiled: Manager() serves dict, list, Queue, Lock, Value and Namespace", "[compiled]") {
    auto manager = mp::Manager();
    auto d = manager.dict();
    d["k"] = 1;
    CHECK(mp::detail::py_repr(d.copy()) == "{'k': 1}");
    CHECK(bump(d, "k") == 2);
    CHECK(bump(d, "new") == 1);
    CHECK_THROWS_AS(d["missing"].get(), mp::KeyError);

    auto l = manager.list();
    l.append(mp::object("x"));
    l.append(mp::object(2.5));
    CHECK(mp::detail::py_repr(l.copy()) == "['x', 2.5]");
    CHECK_THROWS_AS(l.pop(7), mp::IndexError);

    auto q = manager.Queue();
    q.put(mp::object(7));
    CHECK(q.get() == mp::object(7));
    CHECK_THROWS_AS(q.get(false), mp::Empty);

    auto lock = manager.Lock();
    CHECK(lock.acquire());
    CHECK_FALSE(lock.acquire(false));
    lock.release();

    auto v = manager.Value("i", 5);
    v.set(6);
    CHECK(v.get() == 6);

    auto ns = manager.Namespace();
    ns.setattr("name", mp::object("value"));
    CHECK(ns.getattr("name") == mp::object("value"));
}

TEST_CASE("compiled: a proxy used in a forked child", "[compiled]") {
    auto manager = mp::Manager();
    auto d = manager.dict();
    mp::Process child([d] {
        if (bump(d, "child") != 1) throw mp::SystemExit{3};
    });
    child.start();
    CHECK(test::join_or_kill(child) == 0);
    CHECK(d["child"].get() == mp::object(1));
}

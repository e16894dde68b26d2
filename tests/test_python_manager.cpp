// Issue 16, item 3: a C++ client of a manager served by CPython 3.13
// (PythonManager, PythonProxy).  Each test starts tests/python/
// py_manager_server.py under PYENV_VERSION=3.13.0 python3, calls it from
// C++, and where a value crosses, has a plain Python client print it with
// Python's own repr.  The server is killed and reaped at the end of each test.
#include "python_helpers.hpp"

#include <multiprocessing.hpp>

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>

#include <array>
#include <atomic>
#include <thread>
#include <fstream>
#include <memory>

namespace mp = multiprocessing;
using mp::managers::PythonManager;
using mp::managers::PythonProxy;
using mp::object;

using namespace test::python;

TEST_CASE("PythonManager: connect checks the authkey against a CPython server", "[python]") {
    NEED_PYTHON();
    PythonServer srv;
    PythonManager bad(srv.address, "wrong key");
    CHECK_THROWS_AS(bad.connect(), mp::AuthenticationError);
    PythonManager m(srv.address, authkey);
    CHECK_NOTHROW(m.connect());
    CHECK(m._number_of_objects() == 0);
}

TEST_CASE("PythonManager: a SyncManager's dict and list, called from C++", "[python]") {
    NEED_PYTHON();
    PythonServer srv;
    PythonManager m(srv.address, authkey);
    m.connect();
    {
        PythonProxy d = m.create("dict");
        CHECK(d.typeid_() == "dict");
        CHECK(std::count(d._exposed().begin(), d._exposed().end(), "keys") == 1);
        d._callmethod("__setitem__", {"k", object::list({1, "x", 2.5, nullptr, true})});
        d._callmethod("update", {object::dict({{"b", mp::bytes{"\xff"}}, {1, object::tuple({1, 2})}})});
        CHECK(repr(d._callmethod("__getitem__", {"k"})) == "[1, 'x', 2.5, None, True]");
        CHECK(d._callmethod("__len__").as_int() == 3);
        CHECK(repr(d._callmethod("copy")) == "{'k': [1, 'x', 2.5, None, True], 'b': b'\\xff', 1: (1, 2)}");
        CHECK_THROWS_WITH(d._callmethod("__getitem__", {"missing"}), "'missing'");
        CHECK_THROWS_AS(d._callmethod("__getitem__", {"missing"}), mp::KeyError);
        CHECK(d._callmethod("get", {"missing", 5}).as_int() == 5);

        PythonProxy l = m.create("list", {object::list({3, 1, 2})});
        l._callmethod("append", {"z"});
        CHECK_THROWS_WITH(l._callmethod("sort"), Catch::Contains("'<' not supported between instances of 'str' and 'int'"));
        l._callmethod("remove", {"z"});
        l._callmethod("sort", {}, {{"reverse", true}});
        CHECK(l._callmethod("__getitem__", {0}).as_int() == 3);
        CHECK(l._callmethod("__getitem__", {-1}).as_int() == 1);
        CHECK(l._callmethod("__len__").as_int() == 3);
        CHECK_THROWS_AS(l._callmethod("__getitem__", {7}), mp::IndexError);
        CHECK_THROWS_WITH(l._callmethod("__getitem__", {object::tuple()}), "list indices must be integers or slices, not tuple");
    }
    // Both proxies are gone: their references were released.
    CHECK(test::wait_until([&] { return m._number_of_objects() == 0; }, 5.0));
}

TEST_CASE("PythonManager: values C++ leaves in a Python object print with Python's repr", "[python]") {
    NEED_PYTHON();
    PythonServer srv;
    PythonManager m(srv.address, authkey);
    m.connect();
    PythonProxy shared = m.create("get_shared");
    shared._callmethod("__setitem__", {"ints", object::list({0, -1, std::int64_t(1) << 40, INT64_MIN})});
    shared._callmethod("__setitem__", {"floats", object::tuple({1e16, 0.1, -0.0})});
    shared._callmethod("__setitem__", {"text", "é中\U0001f600'\""});
    shared._callmethod("__setitem__", {"nested", object::dict({{"a", object::list({object::dict(), object::tuple()})}})});
    CHECK(srv.python("shared-repr") ==
          "{'ints': [0, -1, 1099511627776, -9223372036854775808], 'floats': (1e+16, 0.1, -0.0), "
          "'text': 'é中\U0001f600\\'\"', 'nested': {'a': [{}, ()]}}");
    CHECK(repr(shared._callmethod("copy")) ==
          "{'ints': [0, -1, 1099511627776, -9223372036854775808], 'floats': (1e+16, 0.1, -0.0), "
          "'text': 'é中\U0001f600\\'\"', 'nested': {'a': [{}, ()]}}");
}

TEST_CASE("PythonManager: a registered queue shared by a C++ and a Python client", "[python]") {
    NEED_PYTHON();
    PythonServer srv;
    PythonManager m(srv.address, authkey);  // Python: QueueManager.register('get_queue'); m.connect()
    m.connect();
    PythonProxy q = m.create("get_queue");
    q._callmethod("put", {object::list({1, "two", object::tuple({3.0})})});
    CHECK(srv.python("queue-get") == "[1, 'two', (3.0,)]");
    CHECK(srv.python("queue-put \"{'from': 'python', 'n': [1, 2]}\"") == "put");
    CHECK(repr(q._callmethod("get", {}, {{"timeout", 10}})) == "{'from': 'python', 'n': [1, 2]}");
    // queue.Empty from CPython's queue module arrives as managers::Empty.
    CHECK_THROWS_AS(q._callmethod("get", {true, 0.05}), mp::Empty);
}

TEST_CASE("PythonManager: SyncManager's Value, Namespace and Lock", "[python]") {
    NEED_PYTHON();
    PythonServer srv;
    PythonManager m(srv.address, authkey);
    PythonProxy v = m.create("Value", {"i", 5});
    CHECK(v._callmethod("get").as_int() == 5);
    v._callmethod("set", {6});
    CHECK(v._callmethod("get").as_int() == 6);
    PythonProxy ns = m.create("Namespace", {}, {{"x", 1}});
    ns._callmethod("__setattr__", {"y", "why"});
    CHECK(ns._callmethod("__getattribute__", {"x"}).as_int() == 1);
    CHECK(ns._callmethod("__getattribute__", {"y"}).as_str() == "why");
    CHECK_THROWS_AS(ns._callmethod("__getattribute__", {"nope"}), mp::AttributeError);
    PythonProxy lock = m.create("Lock");
    CHECK(lock._callmethod("acquire", {false}).as_bool());
    CHECK_FALSE(lock._callmethod("acquire", {false}).as_bool());
    lock._callmethod("release");
    CHECK(lock._callmethod("acquire", {false}).as_bool());
}

TEST_CASE("PythonManager: a registered class's exceptions and unsupported values", "[python]") {
    NEED_PYTHON();
    PythonServer srv;
    PythonManager m(srv.address, authkey);
    PythonProxy t = m.create("Thing");
    CHECK(repr(t._callmethod("echo", {1, "a"}, {{"k", nullptr}})) == "[[1, 'a'], {'k': None}]");
    try {
        t._callmethod("fail");
        FAIL("no exception");
    } catch (const mp::managers::RemoteError& e) {
        CHECK(e.type_name() == "Boom");
        CHECK(e.message() == "('custom', 7)");
    }
    CHECK_THROWS_AS(t._callmethod("keyerror"), mp::KeyError);
    CHECK_THROWS_WITH(t._callmethod("empty"), Catch::Contains("set cannot be held"));
    CHECK_THROWS_AS(t._callmethod("no_such_method"), mp::managers::RemoteError);
    // The connection is still usable after each error.
    CHECK(t._callmethod("echo").items().size() == 2);
}

TEST_CASE("PythonManager: a forked child uses an inherited proxy through its own connection", "[python][fork]") {
    NEED_PYTHON();
    PythonServer srv;
    PythonManager m(srv.address, authkey);
    {
        PythonProxy d = m.create("dict");
        d._callmethod("__setitem__", {"parent", 1});
        mp::Process child([d] {
            d._callmethod("__setitem__", {"child", 2});
            if (d._callmethod("__len__").as_int() != 2) throw std::runtime_error("the child sees another dict");
        });
        child.start();
        CHECK(test::join_or_kill(child) == 0);
        CHECK(repr(d._callmethod("copy")) == "{'parent': 1, 'child': 2}");
        CHECK(m._number_of_objects() == 1);  // the child borrowed the parent's reference
    }
    CHECK(test::wait_until([&] { return m._number_of_objects() == 0; }, 5.0));
}

TEST_CASE("PythonManager: a method returning a shared object, through _callmethod_proxy", "[python]") {
    NEED_PYTHON();
    // A server on all interfaces puts '0.0.0.0' in its tokens: the new
    // proxy must use the address this client reached it by, as CPython's does.
    PythonServer srv(true);
    PythonManager m(mp::connection::Address("127.0.0.1", srv.port), authkey);
    {
        PythonProxy t = m.create("Thing");
        PythonProxy c = t._callmethod_proxy("child");
        CHECK(c.typeid_() == "Child");
        CHECK(c.address() == m.address());
        CHECK(repr(c._callmethod("echo", {1})) == "[[1], {}]");
        CHECK(m._number_of_objects() == 2);
        // _callmethod on it: TypeError, and the object the server made is released.
        CHECK_THROWS_WITH(t._callmethod("child"), Catch::Contains("call _callmethod_proxy"));
        CHECK(m._number_of_objects() == 2);
        CHECK_THROWS_AS(t._callmethod_proxy("echo"), mp::TypeError);
    }
    CHECK(test::wait_until([&] { return m._number_of_objects() == 0; }, 5.0));
}

TEST_CASE("PythonManager: a call blocked in one thread does not hold up another's", "[python][threads]") {
    NEED_PYTHON();
    PythonServer srv;
    PythonManager m(srv.address, authkey);
    PythonProxy q = m.create("get_queue");
    std::atomic<bool> got{false};
    std::string item;
    std::thread getter([&] {
        item = repr(q._callmethod("get", {}, {{"timeout", 20}}));  // blocks until the put below
        got = true;
    });
    joiner join_at_exit{getter};  // the get is bounded (timeout=20)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let it block in the server
    PythonProxy copy = q;
    copy._callmethod("put", {"from another thread"});
    CHECK(test::wait_until([&] { return got.load(); }, 10.0));
    getter.join();
    CHECK(item == "'from another thread'");
}

TEST_CASE("PythonManager: proxies passed to a CPython manager and back", "[python]") {
    NEED_PYTHON();
    PythonServer srv;
    PythonManager m(srv.address, authkey);
    {
        PythonProxy shared = m.create("get_shared");
        PythonProxy l = m.create("list", {object::list({1, 2})});
        PythonProxy t = m.create("Thing");
        CHECK(l.type_name() == "ListProxy");
        CHECK(t.type_name() == "AutoProxy[Thing]");
        // Python's shared['l'] = l: the server keeps a proxy of its own object.
        shared._callmethod("__setitem__", {"l", l});
        shared._callmethod("__setitem__", {"t", t});
        shared._callmethod("__setitem__", {"nested", object::list({l, object::dict({{"t", t}})})});
        CHECK(srv.python("shared-call l _getvalue") == "ListProxy [1, 2]");
        CHECK(srv.python("shared-call t echo") == "AutoProxy[Thing] [[], {}]");

        // Read back: an object holding a proxy of the same shared object.
        object got = shared._callmethod("__getitem__", {"l"});
        REQUIRE(got.is_proxy());
        CHECK(got.type_name() == "ListProxy");
        CHECK(got == object(l));
        CHECK(!(got == object(t)));
        CHECK_THROWS_AS(got.as_proxy<mp::managers::ListProxy<>>(), mp::TypeError);
        PythonProxy l2 = got.as_proxy<PythonProxy>();
        CHECK(l2.id() == l.id());
        CHECK(l2.address() == m.address());
        CHECK(std::count(l2._exposed().begin(), l2._exposed().end(), "append") == 1);
        l2._callmethod("append", {3});
        CHECK(l._callmethod("__len__").as_int() == 3);
        object nested = shared._callmethod("__getitem__", {"nested"});
        CHECK(repr(nested.items()[0].as_proxy<PythonProxy>()._callmethod("__getitem__", {2})) == "3");
        PythonProxy t2 = nested.items()[1]["t"].as_proxy<PythonProxy>();
        CHECK(t2.type_name() == "AutoProxy[Thing]");
        CHECK(repr(t2._callmethod("echo", {"x"})) == "[['x'], {}]");

        // A proxy a Python client made and dropped: the dict's copy keeps the
        // object, and C++ takes a reference of its own when it reads it.
        CHECK(srv.python("shared-put-list p") == "put");
        PythonProxy p = shared._callmethod("__getitem__", {"p"}).as_proxy<PythonProxy>();
        CHECK(p.type_name() == "ListProxy");
        CHECK(std::count(p._exposed().begin(), p._exposed().end(), "__len__") == 1);
        p._callmethod("append", {"cpp"});
        CHECK(srv.python("shared-call p _getvalue") == "ListProxy [1, 'py', 'cpp']");
    }
    // Every C++ reference is released (the server's dict still holds its
    // own proxies, which Python does not count).
    CHECK(test::wait_until([&] { return m._number_of_objects() == 0; }, 5.0));
}

TEST_CASE("PythonManager: proxies passed back to a CPython manager over TCP", "[python]") {
    NEED_PYTHON();
    // A server on all interfaces writes '0.0.0.0' in its Tokens, and this
    // client reaches it at 127.0.0.1.
    PythonServer srv(true);
    PythonManager m(mp::connection::Address("127.0.0.1", srv.port), authkey);
    {
        PythonProxy shared = m.create("get_shared");
        PythonProxy t = m.create("Thing");
        // A proxy whose Token the server wrote: the server knows it as its own.
        PythonProxy c = t._callmethod_proxy("child");
        shared._callmethod("__setitem__", {"c", c});
        CHECK(srv.python("shared-call c echo") == "AutoProxy[Child] [[], {}]");
        // Read back, its Token says '0.0.0.0': the new proxy uses this
        // client's address for that server.
        PythonProxy c2 = shared._callmethod("__getitem__", {"c"}).as_proxy<PythonProxy>();
        CHECK(c2.address() == m.address());
        CHECK(c2.id() == c.id());
        CHECK(repr(c2._callmethod("echo", {1})) == "[[1], {}]");
        // A proxy from create() carries the address this client used, as
        // in CPython, and the server does not take 127.0.0.1 for its own
        // '0.0.0.0': it tries to connect there with its own process's
        // authkey and fails, as it does for a CPython client.
        PythonProxy l = m.create("list");
        CHECK_THROWS_AS(shared._callmethod("__setitem__", {"l", l}), mp::managers::RemoteError);
        CHECK(shared._callmethod("__len__").as_int() == 1);
    }
    CHECK(test::wait_until([&] { return m._number_of_objects() == 0; }, 5.0));
}

TEST_CASE("PythonManager: a proxy cannot cross between a CPython and a C++ manager", "[python]") {
    NEED_PYTHON();
    PythonServer srv;
    PythonManager m(srv.address, authkey);
    mp::managers::SyncManager cpp;
    cpp.start();
    {
        PythonProxy d = m.create("dict");
        auto cl = cpp.list();
        CHECK_THROWS_WITH(d._callmethod("__setitem__", {"x", object(cl)}),
                          "a proxy of a C++ manager's object cannot be sent to a CPython manager");
        CHECK_THROWS_WITH(cl.append(object(d)),
                          "a proxy of a CPython manager's object cannot be sent to a C++ manager or process");
        CHECK(cl.size() == 0);
        CHECK(d._callmethod("__len__").as_int() == 0);  // both connections still in step
    }
    cpp.shutdown();
    CHECK(test::wait_until([&] { return m._number_of_objects() == 0; }, 5.0));
}

// Port of CPython's _TestMyManager (test/_test_multiprocessing.py): a
// custom manager with a class registered twice with different exposed
// methods, an exception from a method, and an iterator-like object.
#include "helpers.hpp"

#include <catch2/catch.hpp>

namespace mp = multiprocessing;
using mp::managers::RemoteError;

class FooBar {
public:
    std::string f() { return "f()"; }
    std::string g() { throw mp::ValueError(""); }
    std::string _h() { return "_h()"; }
};

// Python's baz(): a generator of squares, served behind IteratorProxy.
class Squares {
public:
    int __next__() {
        if (i_ >= 10) throw mp::StopIteration();
        int v = i_ * i_;
        ++i_;
        return v;
    }

private:
    int i_ = 0;
};

// 'Foo' exposes the public methods f and g (Python's default).
MP_EXPOSE(FooBar, f, g)
// 'Bar' is registered with exposed=('f', '_h').
MP_PROXY(BarProxy, FooBar, f, _h);
// IteratorProxy exposes __next__ and makes the proxy iterable.
MP_PROXY(SquaresProxyBase, Squares, __next__);
using IteratorProxy = mp::managers::IteratorProxy<SquaresProxyBase>;

struct MyManager : mp::managers::BaseManager<MyManager> {};

static const bool registered = [] {
    MyManager::register_type<FooBar>("Foo");
    MyManager::register_type<FooBar, BarProxy>("Bar");
    MyManager::register_type<Squares, IteratorProxy>("baz", [] { return Squares(); });
    return true;
}();

static void common(MyManager& manager) {
    auto foo = manager.create<FooBar>();
    auto bar = manager.create<BarProxy>();
    auto baz = manager.create<IteratorProxy>();

    // foo_methods == ['f', 'g'] and bar_methods == ['f', '_h'] is checked at
    // compile time: tests/compile_fail/unexposed_method.cpp and
    // unexposed_in_custom_proxy.cpp do not build.
    CHECK(foo.f() == "f()");
    CHECK_THROWS_AS(foo.g(), mp::ValueError);
    CHECK(foo._callmethod<std::string>("f") == "f()");
    CHECK_THROWS_AS(foo._callmethod<std::string>("_h"), RemoteError);

    CHECK(bar.f() == "f()");
    CHECK(bar._h() == "_h()");
    CHECK(bar._callmethod<std::string>("f") == "f()");
    CHECK(bar._callmethod<std::string>("_h") == "_h()");

    std::vector<int> squares;
    for (int i = 0; i < 10; ++i) squares.push_back(i * i);
    CHECK(std::vector<int>(baz.begin(), baz.end()) == squares);  // list(baz)
}

TEST_CASE("_TestMyManager.test_mymanager", "[mymanager]") {
    MyManager manager;
    manager.start();
    common(manager);
    manager.shutdown();
    CHECK(manager.exitcode() == 0);
}

TEST_CASE("_TestMyManager.test_mymanager_context", "[mymanager]") {
    // Python's `with manager:` is manager.enter()'s scope: it starts the
    // manager and shuts it down at its end, and the exit code stays
    // readable after it (Python's manager._process.exitcode).
    MyManager manager;
    pid_t server;
    {
        auto with = manager.enter();
        server = manager.pid();
        common(manager);
    }
    CHECK_FALSE(test::pid_alive(server));
    CHECK(manager.exitcode() == 0);
    CHECK(manager.state() == MyManager::State::shutdown);
    CHECK_THROWS_AS(manager.enter(), mp::ProcessError);  // Python: "Unable to start server"
}

TEST_CASE("manager: a scope alone shuts the server down", "[mymanager]") {
    pid_t server;
    {
        MyManager manager;
        manager.start();
        server = manager.pid();
        common(manager);
    }
    CHECK_FALSE(test::pid_alive(server));
}

TEST_CASE("_TestMyManager.test_mymanager_context_prestarted", "[mymanager]") {
    MyManager manager;
    manager.start();
    pid_t server = manager.pid();
    {
        auto with = manager.enter();  // already started: used as it is
        CHECK(manager.pid() == server);
        common(manager);
    }
    CHECK(manager.exitcode() == 0);
}

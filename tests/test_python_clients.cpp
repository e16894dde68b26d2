// Issue 16, item 2: CPython 3.13 clients of a C++ manager.  Each test starts
// a C++ SyncManager (forked server, Unix socket) and runs the plain Python
// client tests/python/py_client_of_cpp.py against it under
// PYENV_VERSION=3.13.0 python3; what Python prints is Python's own repr.
// The 'sync' scenario is also run against a CPython server, whose output
// must be the same.  Every Python run is bounded by `timeout 30`, and the
// manager is shut down and reaped as each test ends.
#include "python_helpers.hpp"

#include <multiprocessing.hpp>

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>

#include <array>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

namespace mp = multiprocessing;
namespace pk = mp::detail::pickle;
using mp::managers::SyncManager;

using namespace test::python;

namespace {

/// A class served to Python through AutoProxy.
class Counter {
public:
    explicit Counter(long long start = 0) : n_(start) {}
    long long add(long long k) { return n_ += k; }
    long long value() const { return n_; }
    std::vector<std::string> names(const std::map<std::string, int>& m) const {
        std::vector<std::string> v;
        for (auto& kv : m) v.push_back(kv.first);
        return v;
    }
    std::vector<double> scale(const std::vector<long long>& xs, double f) const {
        std::vector<double> v;
        for (auto x : xs) v.push_back(static_cast<double>(x) * f);
        return v;
    }
    std::tuple<std::string, long long, bool> pair(const std::string& k, long long n) const { return {k, n * 2, n > 1}; }
    std::optional<long long> maybe(std::optional<long long> x) const {
        if (!x) return std::nullopt;
        return *x + 1;
    }
    std::vector<char> blob(std::vector<char> b) const {
        std::reverse(b.begin(), b.end());
        return b;
    }
    std::shared_ptr<Counter> child() { return std::make_shared<Counter>(n_ * 10); }
    void fail(const std::string& k) { throw mp::KeyError(mp::detail::py_repr(mp::object(k))); }
    void boom() { throw std::runtime_error("boom"); }
    void toss() { throw 7; }  // not a std::exception
    friend std::ostream& operator<<(std::ostream& os, const Counter& c) { return os << "Counter(" << c.n_ << ")"; }

private:
    long long n_;
};

}  // namespace

MP_EXPOSE(Counter, add, value, names, scale, pair, maybe, blob, child, fail, boom, toss)

namespace {

struct Served {
    std::string dir, address;
    SyncManager m;
    Served() : dir(make_dir()), address(dir + "/manager.sock"), m(mp::connection::Address(address), authkey) {
        static const bool once = [] {
            SyncManager::register_type<Counter>("Counter", [](long long start) { return Counter(start); });
            SyncManager::register_type<mp::managers::QueueRef<mp::object>>(
                "get_queue", [] {
                    static auto q = std::make_shared<mp::managers::QueueRef<mp::object>>(0);
                    return q;
                });
            SyncManager::register_python_types();
            return true;
        }();
        (void)once;
        m.start();
    }
    ~Served() {
        m.shutdown();
        ::unlink(address.c_str());
        ::rmdir(dir.c_str());
    }
    static std::string make_dir() {
        char tmpl[] = "/tmp/mpt-pycXXXXXX";
        return ::mkdtemp(tmpl);
    }
    std::string python(const std::string& what, const std::string& key = authkey) const {
        return run("python3 '" + script_dir + "/py_client_of_cpp.py' '" + address + "' '" + key + "' " + what);
    }
};

// One pickled request on an authenticated connection; the reply decoded.
pk::value ask(mp::connection::Connection& c, const std::string& raw) {
    c.send_bytes(raw);
    pk::limits lim;
    lim.allowed = [](std::string_view, std::string_view) { return true; };
    return pk::loads(c.recv_bytes(), lim);
}
std::string request(const std::string& method, std::vector<pk::value> args = {}) {
    return pk::dumps(pk::value::seq(pk::value::kind::tuple,
                                    {pk::value(), pk::value::str(method), pk::value::seq(pk::value::kind::tuple, args),
                                     pk::value::seq(pk::value::kind::dict, {})}));
}
std::string kind_of(const pk::value& reply) {
    REQUIRE(reply.k == pk::value::kind::tuple);
    REQUIRE(reply.items.size() == 2);
    return reply.items[0].s;
}

}  // namespace

TEST_CASE("CPython client: SyncManager's types on a C++ server print what they print on a CPython one", "[python]") {
    NEED_PYTHON();
    std::string from_python;
    {
        PythonServer py;
        from_python = run("python3 '" + script_dir + "/py_client_of_cpp.py' '" + py.address + "' '" + authkey + "' sync");
    }
    Served s;
    std::string from_cpp = s.python("sync");
    CHECK(from_cpp == from_python);
    // A few lines spelled out, so that a broken oracle cannot pass alone.
    CHECK(from_cpp.find("[1, 'x', 2.5, None, True] {'a': (1, 2.5), 'b': b'\\xff'} 2 True False None 7\n") == 0);
    CHECK(from_cpp.find("KeyError KeyError('missing')") != std::string::npos);
    CHECK(from_cpp.find("Empty <class '_queue.Empty'> Empty()") != std::string::npos);
    CHECK(from_cpp.find("AttributeError 'Namespace' object has no attribute 'z'") != std::string::npos);
    CHECK(from_cpp.substr(from_cpp.rfind('\n') + 1) == "objects 0");
    CHECK(s.m.number_of_objects() == 0);
}

TEST_CASE("CPython client: ranges, slices at the ends of 64 bits, bad slices, and iter(d) on a C++ server", "[python]") {
    NEED_PYTHON();
    Served s;
    // The slices are what CPython's list gives; a range is expanded up to
    // 2**20 items per request (the second call's two ranges total more),
    // even inside a value; iter(d) walks the keys it began with.
    CHECK(s.python("limits") ==
          "ValueError a range of 1000000000000 items is more than a C++ server expands (1048576 per request)\n"
          "ValueError a range of 2 items is more than a C++ server expands (1048576 per request)\n"
          "[2] [2] [0] [[0, 1], ([0],)]\n"
          "ValueError slice step cannot be zero\n"
          "TypeError slice indices must be integers or None or have an __index__ method\n"
          "TypeError slice indices must be integers or None or have an __index__ method\n"
          "[1] [1, 3]\n"
          "objects 0");
    CHECK(s.m.number_of_objects() == 0);
}

TEST_CASE("CPython client: a registered C++ class through AutoProxy, its errors and a method returning a shared object",
          "[python]") {
    NEED_PYTHON();
    Served s;
    std::string out = s.python("custom");
    const char* expected =
        "AutoProxy[Counter] 8 8 ['a', 'b']\n"
        "[2.5, 5.0] ('k', 4, True) None 5 b'\\xff\\x00'\n"
        "AutoProxy[Counter] 80 81\n"
        "KeyError KeyError('kk')\n"
        "TypeError fail(): expected str, got 'int'\n"
        "RemoteError std::runtime_error: boom\n"
        "TypeError add(): expected int, got 'str'\n"
        "TypeError add() of 'Counter' takes no 2 positional arguments\n"
        "OverflowError int beyond 64 bits: C++ methods take 64-bit ints\n"
        "AttributeError 'AutoProxy[Counter]' object has no attribute 'nope'\n"
        "AttributeError method 'nope' of 'Counter' object is not in exposed=('add', 'value', 'names', 'scale', "
        "'pair', 'maybe', 'blob', 'child', 'fail', 'boom', 'toss')\n"
        "Counter(8)\n"
        "AutoProxy[Counter] 9 9\n"
        "objects 3\n"
        "objects 0";
    CHECK(out == expected);
    CHECK(s.m.number_of_objects() == 0);
}

TEST_CASE("CPython client: a wrong authkey is refused", "[python]") {
    NEED_PYTHON();
    Served s;
    std::string out = s.python("count", "wrong key");
    CHECK(out.find("AuthenticationError") != std::string::npos);
    CHECK(s.python("count") == "0");
}

TEST_CASE("CPython and C++ clients on one server at once: a queue between them", "[python]") {
    NEED_PYTHON();
    Served s;
    auto q = s.m.create_as<mp::managers::QueueRef<mp::object>>("get_queue");
    q.put(1);
    q.put(mp::object::list({"two", 3.5}));
    q.put(mp::object::dict({{"k", mp::object::tuple({nullptr, true})}}));
    CHECK(s.python("get 3") == "[1, ['two', 3.5], {'k': (None, True)}]");
    // Python blocks in get() while C++ keeps calling; then C++ puts.
    std::string got;
    std::thread t([&] { got = s.python("get 1"); });
    joiner join_at_exit{t};
    auto d = s.m.dict();
    for (int i = 0; i < 20; ++i) d[mp::object(i)] = i;  // not held up by the blocked get
    CHECK(d.size() == 20);
    // Python's proxy holds its reference (its process's session) before it
    // calls get(); this process holds two.
    CHECK(test::wait_until([&] { return s.m.debug_info().find(" objects=1\n") != std::string::npos; }, 20.0));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    q.put(mp::bytes{"\x01"});
    t.join();
    CHECK(got == "[b'\\x01']");
    CHECK(s.python("put \"{'from': 'python'}\" '(1, 2.5)' None") == "");
    CHECK(repr(q.get(true, 10.0)) == "{'from': 'python'}");
    CHECK(repr(q.get(true, 10.0)) == "(1, 2.5)");
    CHECK(repr(q.get(true, 10.0)) == "None");
}

TEST_CASE("CPython and C++ clients pass proxies to each other through a shared queue", "[python]") {
    NEED_PYTHON();
    Served s;
    auto q = s.m.create_as<mp::managers::QueueRef<mp::object>>("get_queue");
    std::string got;
    std::thread t([&] { got = s.python("put_proxy"); });
    joiner join_at_exit{t};
    // Python's m.list() arrives as a C++ ListProxy of the same list.
    mp::object item = q.get(true, 20.0);
    REQUIRE(item.is_proxy());
    auto lst = item.as_proxy<mp::managers::ListProxy<>>();
    lst.append("from c++");
    // A C++ dict proxy arrives in Python as a DictProxy.
    auto d = s.m.dict();
    d["k"] = 1;
    q.put(mp::object(d));
    CHECK(test::wait_until([&] { return d.contains("seen by python"); }, 20.0));
    t.join();
    CHECK(got == "['from python', 'from c++']\nDictProxy [('k', 1)]");
    CHECK(lst.size() == 2);
}

TEST_CASE("CPython client killed while holding references: the server releases them", "[python]") {
    NEED_PYTHON();
    Served s;
    auto mine = s.m.dict();  // a C++ client's object stays
    mine["k"] = 1;
    std::string out = s.python("die");
    CHECK(out.rfind("4 1", 0) == 0);  // then SIGKILL: no decref comes
    CHECK(test::wait_until([&] { return s.m.number_of_objects() == 1; }, 20.0));
    CHECK(s.m.number_of_objects() == 1);
    CHECK(mine.size() == 1);
}

TEST_CASE("CPython protocol: a bad request gets an error reply and the connection keeps serving", "[python]") {
    Served s;
    mp::connection::Connection c = mp::connection::Client(mp::connection::Address(s.address), authkey);
    // Not a pickle the server reads: a forbidden global, a truncated pickle,
    // a length beyond the data, deep nesting, a request of the wrong shape.
    std::string os_system = "\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R.";
    std::string truncated = request("dummy").substr(0, 10);
    std::string huge = std::string("\x80\x04\x8d") + std::string("\xff\xff\xff\xff\xff\xff\xff\x0f", 8) + "ab.";
    std::string deep = "\x80\x04" + std::string(100000, ']') + std::string(99999, 'a') + ".";  // lists in lists
    std::string shape = pk::dumps(pk::value::str("dummy"));
    for (const std::string& bad : {os_system, truncated, huge, deep, shape}) {
        pk::value r = ask(c, bad);
        CHECK(kind_of(r) != "#RETURN");
        CHECK(kind_of(ask(c, request("dummy"))) == "#RETURN");
    }
    // Unknown public methods, objects and typeids, wrong arguments.
    CHECK(kind_of(ask(c, request("nope"))) == "#ERROR");
    CHECK(kind_of(ask(c, request("incref", {pk::value::str("ffff")}))) == "#ERROR");
    CHECK(kind_of(ask(c, request("incref", {pk::value::integer(1)}))) == "#ERROR");
    CHECK(kind_of(ask(c, request("create", {pk::value::str("no such typeid")}))) == "#ERROR");
    CHECK(kind_of(ask(c, request("create", {pk::value::str("dict"), pk::value::integer(5)}))) == "#ERROR");
    pk::value made = ask(c, request("create", {pk::value::str("Counter"), pk::value::integer(2)}));
    REQUIRE(kind_of(made) == "#RETURN");
    std::string id = made.items[1].items[0].s;
    auto call = [&](const std::string& method, std::vector<pk::value> args) {
        return ask(c, pk::dumps(pk::value::seq(pk::value::kind::tuple,
                                               {pk::value::str(id), pk::value::str(method),
                                                pk::value::seq(pk::value::kind::tuple, std::move(args)),
                                                pk::value::seq(pk::value::kind::dict, {})})));
    };
    pk::value added = call("add", {pk::value::integer(3)});
    REQUIRE(kind_of(added) == "#RETURN");
    CHECK(added.items[1].i == 5);
    CHECK(kind_of(call("add", {pk::value::str("x")})) == "#ERROR");
    CHECK(kind_of(call("#GETVALUE", {})) == "#ERROR");  // Counter has no Python form
    // A thrown int is a RemoteError for Python (it ended the server).
    pk::value tossed = call("toss", {});
    REQUIRE(kind_of(tossed) == "#TRACEBACK");
    CHECK(tossed.items[1].s.find("int: 7") != std::string::npos);
    CHECK(call("add", {pk::value::integer(0)}).items[1].i == 5);
    CHECK(s.m.number_of_objects() == 1);
    CHECK(kind_of(ask(c, request("decref", {pk::value::str(id)}))) == "#RETURN");
    CHECK(s.m.number_of_objects() == 0);
    // C++ clients are served as before.
    auto d = s.m.dict();
    d["k"] = 1;
    std::ostringstream os;
    os << d;
    CHECK(os.str() == "{'k': 1}");
}

TEST_CASE("CPython client: a server without register_python_types says what to call", "[python]") {
    // A plain BaseManager knows no Python names.
    struct Plain : mp::managers::BaseManager<Plain> {
        using BaseManager::BaseManager;
    };
    char tmpl[] = "/tmp/mpt-pycXXXXXX";
    std::string dir = ::mkdtemp(tmpl);
    std::string address = dir + "/manager.sock";
    {
        Plain m(mp::connection::Address(address), authkey);
        m.start();
        mp::connection::Connection c = mp::connection::Client(mp::connection::Address(address), authkey);
        pk::value r = ask(c, request("create", {pk::value::str("dict")}));
        CHECK(kind_of(r) == "#ERROR");
        m.shutdown();
    }
    ::unlink(address.c_str());
    ::rmdir(dir.c_str());
}

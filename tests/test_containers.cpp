// SyncManager's shared data: ports of CPython's _TestContainers and
// TestSyncManagerTypes cases for typed containers.
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <sstream>

namespace mp = multiprocessing;
using mp::managers::Proxy;

template <class P>
static std::string str(const P& p) {
    std::ostringstream os;
    os << p;
    return os.str();
}

static std::vector<int> range(int a, int b) {
    std::vector<int> v;
    for (int i = a; i < b; ++i) v.push_back(i);
    return v;
}

TEST_CASE("_TestContainers.test_list", "[containers]") {
    auto manager = mp::Manager();
    auto a = manager.list(range(0, 10));
    CHECK(a.copy() == range(0, 10));
    auto b = manager.list<int>();
    CHECK(b.copy().empty());
    b.extend(range(0, 5));
    CHECK(b.copy() == range(0, 5));
    CHECK(b.at(2) == 2);
    CHECK(b.slice(2, 10) == std::vector<int>{2, 3, 4});
    b *= 2;
    CHECK(b.copy() == std::vector<int>{0, 1, 2, 3, 4, 0, 1, 2, 3, 4});
    CHECK(b + std::vector<int>{5, 6} == std::vector<int>{0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6});
    CHECK(a.copy() == range(0, 10));
    // a list holding lists: here typed nesting of plain vectors
    auto d = manager.list<std::vector<int>>({range(0, 3)});
    CHECK(d.at(0) == range(0, 3));
    auto e = manager.list<std::vector<int>>();
    e.append(range(0, 2));
    e.append(range(0, 2));
    CHECK(e.copy() == std::vector<std::vector<int>>{{0, 1}, {0, 1}});
    CHECK(str(e) == "[[0, 1], [0, 1]]");
    auto f = manager.list<std::string>({std::string("a")});
    CHECK(str(f) == "['a']");
}

TEST_CASE("_TestContainers.test_list_iter", "[containers]") {
    auto manager = mp::Manager();
    auto a = manager.list(range(0, 10));
    auto it = a.begin();
    CHECK(std::vector<int>(it, a.end()) == range(0, 10));
    CHECK(std::vector<int>(it, a.end()).empty());  // exhausted
    // list modified during iteration
    it = a.begin();
    a[0] = 100;
    CHECK(*it == 100);
}

TEST_CASE("list iteration is live: it sees changes and ends where the list ends", "[containers][iter]") {
    // Each case printed by CPython 3.13 for the same steps on a ListProxy.
    auto manager = mp::Manager();
    auto l = manager.list(range(0, 5));
    auto it = l.begin();
    CHECK(*it == 0);
    ++it;
    l[1] = 100;
    CHECK(*it == 100);
    ++it;
    l.erase(4);
    l.erase(3);
    l.erase(2);
    CHECK(it == l.end());  // shrunk under the iterator: StopIteration
    l.extend({7, 8, 9});
    CHECK(it == l.end());  // and it stays exhausted
    auto l2 = manager.list(range(1, 4));
    auto j = l2.begin();
    CHECK(*j == 1);
    ++j;
    l2.insert(0, 0);
    CHECK(*j == 1);  // by index: the inserted 0 moved 1 to index 1
    auto l3 = manager.list(range(1, 4));
    std::vector<int> seen;
    for (int x : l3) {
        seen.push_back(x);
        if (x == 1) l3.append(4);  // appended during the loop: seen
    }
    CHECK(seen == range(1, 5));
    // copy() is the one-call snapshot
    std::vector<int> snap;
    for (int x : l3.copy()) {
        snap.push_back(x);
        if (x == 1) l3.append(5);
    }
    CHECK(snap == range(1, 5));
}

TEST_CASE("_TestContainers.test_list_proxy_in_list", "[containers][nested]") {
    auto manager = mp::Manager();
    auto base = manager.number_of_objects();
    {
        std::vector<Proxy<mp::managers::List<int>>> inner;
        for (int i = 0; i < 3; ++i) inner.push_back(manager.list(range(0, 3)));
        auto a = manager.list(inner);
        a.at(0).at(-1);
        a.at(0).append(7);  // a write through a nested proxy is seen everywhere
        CHECK(inner[0].copy() == std::vector<int>{0, 1, 2, 7});
        CHECK(a.at(0).copy() == std::vector<int>{0, 1, 2, 7});
        auto b = manager.list<Proxy<mp::managers::List<int>>>();
        b.append(inner[1]);
        auto c = b.at(0);
        c.append(9);
        CHECK(inner[1].copy() == std::vector<int>{0, 1, 2, 9});
        CHECK(manager.number_of_objects() == base + 5);
    }
    // no leak: nested proxies go with their holders (CPython gh-103136)
    CHECK(test::wait_until([&] { return manager.number_of_objects() == base; }, 5));
}

TEST_CASE("_TestContainers.test_dict", "[containers]") {
    auto manager = mp::Manager();
    auto d = manager.dict<int, char>();
    std::vector<int> indices = range(65, 70);
    for (int i : indices) d[i] = static_cast<char>(i);
    CHECK(d.copy().items() == std::vector<std::pair<int, char>>{{65, 'A'}, {66, 'B'}, {67, 'C'}, {68, 'D'}, {69, 'E'}});
    CHECK(d.keys() == indices);
    CHECK(d.values() == std::vector<char>{'A', 'B', 'C', 'D', 'E'});
    CHECK(d.items().size() == 5);
    CHECK(str(d) == "{65: 'A', 66: 'B', 67: 'C', 68: 'D', 69: 'E'}");
}

TEST_CASE("_TestContainers.test_dict_iter", "[containers]") {
    auto manager = mp::Manager();
    auto d = manager.dict<int, char>();
    std::vector<int> indices = range(65, 70);
    for (int i : indices) d[i] = static_cast<char>(i);
    auto it = d.begin();
    CHECK(std::vector<int>(it, d.end()) == indices);
    CHECK(std::vector<int>(it, d.end()).empty());  // exhausted
    // dictionary changed size during iteration
    it = d.begin();
    d.clear();
    CHECK_THROWS_AS(*it, std::runtime_error);
}

TEST_CASE("dict iteration is live, with CPython's RuntimeErrors", "[containers][iter]") {
    // Each case printed by CPython 3.13 for the same steps on a DictProxy.
    auto manager = mp::Manager();
    auto d = manager.dict<int, std::string>({{1, "a"}, {2, "b"}, {3, "c"}});
    auto it = d.begin();
    CHECK(*it == 1);
    d[4] = "d";
    ++it;
    CHECK_THROWS_WITH(*it, "dictionary changed size during iteration");
    CHECK_THROWS_WITH(*it, "dictionary changed size during iteration");  // sticky
    d.erase(4);
    CHECK_THROWS_WITH(*it, "dictionary changed size during iteration");  // even once the size is back
    bool thrown = false;
    try {
        for (int k : d)
            if (k == 2) d[9] = "x";
    } catch (const std::runtime_error& e) {
        thrown = std::string(e.what()) == "dictionary changed size during iteration";
    }
    CHECK(thrown);
    d.erase(9);

    // a value changed: fine
    it = d.begin();
    ++it;
    d[1] = "z";
    CHECK(*it == 2);
    // same size, keys changed: the walk goes on by position...
    it = d.begin();
    ++it;
    d.erase(2);
    d[2] = "x";
    CHECK(*it == 3);
    ++it;
    CHECK(*it == 2);
    ++it;
    CHECK(it == d.end());
    // ...and finding more keys than it started with is an error, then the end
    auto e = manager.dict<int, std::string>({{1, "a"}, {2, "b"}, {3, "c"}});
    auto k = e.begin();
    CHECK(*k == 1);
    e.erase(1);
    e[4] = "d";
    ++k;
    CHECK(*k == 2);
    ++k;
    CHECK(*k == 3);
    ++k;
    CHECK_THROWS_WITH(*k, "dictionary keys changed during iteration");
    CHECK(k == e.end());
    // cleared and refilled to the same size: positions start again
    auto f = manager.dict<int, int>({{1, 0}, {2, 0}, {3, 0}});
    auto m = f.begin();
    CHECK(*m == 1);
    ++m;
    f.clear();
    f.update({{7, 0}, {8, 0}, {9, 0}});
    CHECK(*m == 8);
    // the size is compared at each step, not in between
    auto g = manager.dict<int, int>({{1, 0}, {2, 0}, {3, 0}});
    auto n = g.begin();
    g[4] = 0;
    g.erase(4);
    CHECK(*n == 1);
    // an empty dict ends at once; keys() is the one-call snapshot
    CHECK(manager.dict<int, int>().begin() == manager.dict<int, int>().end());
    std::vector<int> ks;
    for (int key : g.keys()) {
        ks.push_back(key);
        if (key == 1) g[5] = 0;
    }
    CHECK(ks == range(1, 4));
}

TEST_CASE("set iteration is live, with CPython's RuntimeError", "[containers][iter]") {
    auto manager = mp::Manager();
    auto s = manager.set<int>({1, 2, 3});
    auto it = s.begin();
    CHECK(*it == 1);
    s.add(4);
    ++it;
    CHECK_THROWS_WITH(*it, "Set changed size during iteration");
    std::vector<int> seen;
    for (int x : s) seen.push_back(x);
    CHECK(seen == range(1, 5));
}

TEST_CASE("array iteration is live, as CPython's over an ArrayProxy", "[containers][iter]") {
    auto manager = mp::Manager();
    auto a = manager.Array<int>({1, 2, 3});
    auto it = a.begin();
    a[0] = 10;
    CHECK(*it == 10);
    std::vector<int> seen(it, a.end());
    CHECK(seen == std::vector<int>{10, 2, 3});
}

TEST_CASE("an untyped dict's iteration is live too", "[containers][iter]") {
    auto manager = mp::Manager();
    auto d = manager.dict();
    d[1] = "1";
    d["2"] = 2;
    d[0.25] = mp::None;
    std::vector<std::string> keys;
    for (auto& k : d) keys.push_back(mp::repr(k));
    CHECK(keys == std::vector<std::string>{"1", "'2'", "0.25"});
    auto l = manager.list(mp::range(3));
    std::vector<std::string> items;
    for (auto& x : l) items.push_back(mp::repr(x));
    CHECK(items == std::vector<std::string>{"0", "1", "2"});
}

TEST_CASE("_TestContainers.test_dict_proxy_nested", "[containers][nested]") {
    auto manager = mp::Manager();
    auto pets = manager.dict<std::string, int>({{"ferrets", 2}, {"hamsters", 4}});
    auto supplies = manager.dict<std::string, int>({{"water", 10}, {"feed", 3}});
    auto d = manager.dict<std::string, Proxy<mp::managers::Dict<std::string, int>>>({{"pets", pets}, {"supplies", supplies}});
    CHECK(d.at("pets").at("ferrets") == 2);
    CHECK(d.at("supplies").at("water") == 10);
    d.at("pets")["marmots"] = 1;
    CHECK(pets.at("marmots") == 1);
    CHECK(d.at("pets").at("marmots") == 1);
    pets["ferrets"] = 3;
    CHECK(d.at("pets").at("ferrets") == 3);
    auto base = manager.number_of_objects();
    d.clear();
    pets = {};
    CHECK(test::wait_until([&] { return manager.number_of_objects() == base - 1; }, 5));
    CHECK(supplies.at("feed") == 3);
}

TEST_CASE("_TestContainers.test_nested_queue", "[containers][nested]") {
    auto manager = mp::Manager();
    using Q = Proxy<mp::managers::QueueRef<int>>;
    auto a = manager.list<Q>();  // a queue inside a list
    a.append(manager.Queue<int>());
    a.at(0).put(123);
    CHECK(a.at(0).get() == 123);
    auto b = manager.dict<int, Q>();  // a queue inside a dict
    b[0] = manager.Queue<int>();
    b.at(0).put(456);
    CHECK(b.at(0).get() == 456);
}

TEST_CASE("a queue holding a queue holding a dict is freed, with no server thread waiting on another", "[containers][nested][lifetime]") {
    // A queue is freed where its last reference drops (it is not looked
    // into for cycles); the proxy it holds is released from there while the
    // thread that serves the server's own releases frees the next queue,
    // which releases the dict: that thread must not wait for the first.
    auto manager = mp::Manager();
    mp::managers::call_timeout limit(30.0);
    using D = decltype(manager.dict<std::string, int>());
    using Q2 = decltype(manager.Queue<D>());
    for (int round = 0; round < 3; ++round) {
        {
            auto q1 = manager.Queue<Q2>();
            auto q2 = manager.Queue<D>();
            auto d = manager.dict<std::string, int>();
            d["k"] = round;
            q2.put(d);
            q1.put(q2);
        }
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (manager.number_of_objects() != 0 && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        CHECK(manager.number_of_objects() == 0);
    }
}

TEST_CASE("_TestContainers.test_namespace", "[containers]") {
    auto manager = mp::Manager();
    auto n = manager.Namespace();
    n.setattr("name", "Bob");
    n.setattr("job", "Builder");
    // Python keeps _hidden on the proxy itself; here it is shared, and
    // left out of the repr as Python's Namespace does
    n.setattr("_hidden", "hidden");
    CHECK(n.getattr("name") == mp::object("Bob"));
    CHECK(n.getattr("job") == mp::object("Builder"));
    n.delattr("job");
    CHECK(str(n) == "Namespace(name='Bob')");
    CHECK(n.hasattr("name"));
    CHECK_FALSE(n.hasattr("job"));
    CHECK_THROWS_MATCHES(n.getattr("job"), mp::AttributeError,
                         Catch::Matchers::Message("'Namespace' object has no attribute 'job'"));
}

// Python's isinstance(a, MutableSequence) plus callable(getattr(a, name)):
// here every MutableSequence method compiles and does its job.
TEST_CASE("_TestContainers.test_list_isinstance", "[containers]") {
    auto manager = mp::Manager();
    auto a = manager.list<int>();
    a.append(1);                          // append
    a.extend({2, 3});                     // extend
    a += {4};                             // __iadd__
    a.insert(0, 0);                       // insert
    a[4] = 40;                            // __setitem__
    CHECK(a[4] == 40);                    // __getitem__
    CHECK(a.size() == 5);                 // __len__
    CHECK(a.contains(40));                // __contains__
    CHECK(a.count(40) == 1);              // count
    CHECK(a.index(40) == 4);              // index
    CHECK(a.reversed() == std::vector<int>{40, 3, 2, 1, 0});  // __reversed__
    a.reverse();                          // reverse
    a.erase(0);                           // __delitem__
    a.remove(0);                          // remove
    CHECK(a.pop() == 1);                  // pop
    CHECK(a.copy() == std::vector<int>{3, 2});
    a.clear();                            // clear
    CHECK(a.empty());
}

// Python's isinstance(d, MutableMapping) plus its methods.
TEST_CASE("_TestContainers.test_dict_isinstance", "[containers]") {
    auto manager = mp::Manager();
    auto d = manager.dict<std::string, int>();
    d["a"] = 1;                                        // __setitem__
    CHECK(d["a"] == 1);                                // __getitem__
    CHECK(d.contains("a"));                            // __contains__
    CHECK(d.size() == 1);                              // __len__
    d.update({{"b", 2}});                              // update
    CHECK(d.setdefault("c", 3) == 3);                  // setdefault
    CHECK(d.get("c") == 3);                            // get
    CHECK(d.keys() == std::vector<std::string>{"a", "b", "c"});  // keys, __iter__
    CHECK(std::vector<std::string>(d.begin(), d.end()) == d.keys());
    CHECK(d.values() == std::vector<int>{1, 2, 3});    // values
    CHECK(d.items().size() == 3);                      // items
    CHECK(d.pop("c") == 3);                            // pop
    CHECK(d.popitem() == std::make_pair(std::string("b"), 2));  // popitem
    d.erase("a");                                      // __delitem__
    auto same = d;
    CHECK(same == d);                                  // __eq__, __ne__ (Python: identity)
    CHECK_FALSE(same != d);
    d["x"] = 0;
    d.clear();                                         // clear
    CHECK(d.empty());
}

TEST_CASE("dict: Python's methods and errors", "[containers]") {
    auto manager = mp::Manager();
    auto d = manager.dict<std::string, int>();
    CHECK_THROWS_MATCHES(d.at("missing"), mp::KeyError, Catch::Matchers::Message("'missing'"));
    CHECK_THROWS_AS(d.erase("missing"), mp::KeyError);
    d["a"] = 1;
    d["b"] = 2;
    CHECK(d.contains("a"));
    CHECK_FALSE(d.contains("z"));
    CHECK(d.size() == 2);
    CHECK(d.get("a") == 1);
    CHECK_FALSE(d.get("z").has_value());
    CHECK(d.get("z", 9) == 9);
    CHECK(d.setdefault("c", 3) == 3);
    CHECK(d.setdefault("c", 4) == 3);
    CHECK(d.pop("c") == 3);
    CHECK(d.pop("c", -1) == -1);
    CHECK(d.popitem() == std::make_pair(std::string("b"), 2));
    d |= {{"x", 10}, {"y", 20}};
    CHECK(d.keys() == std::vector<std::string>{"a", "x", "y"});
    CHECK(d.reversed() == std::vector<std::string>{"y", "x", "a"});
    auto merged = d | std::vector<std::pair<std::string, int>>{{"a", 100}};
    CHECK(merged.getitem("a") == 100);
    CHECK(d.at("a") == 1);  // | makes a copy
    CHECK(d.fromkeys({"p", "q"}, 0).keys() == std::vector<std::string>{"p", "q"});
    d["x"] += 5;  // one atomic call
    CHECK(d.at("x") == 15);
    CHECK_THROWS_AS(d["nope"] += 1, mp::KeyError);
    d.erase("x");
    CHECK(str(d) == "{'a': 1, 'y': 20}");
    d.clear();
    CHECK(d.empty());
    CHECK(str(d) == "{}");
}

TEST_CASE("dict: d[k] += 1 from many processes loses nothing (gh-137233)", "[containers]") {
    auto manager = mp::Manager();
    auto d = manager.dict<std::string, int>({{"n", 0}});
    std::vector<mp::Process> ps;
    for (int i = 0; i < 4; ++i)
        ps.emplace_back([d] {
            for (int k = 0; k < 250; ++k) d["n"] += 1;
        });
    for (auto& p : ps) p.start();
    for (auto& p : ps) CHECK(test::join_or_kill(p) == 0);
    CHECK(d.at("n") == 1000);
}

TEST_CASE("list: Python's methods and errors", "[containers]") {
    auto manager = mp::Manager();
    auto l = manager.list<int>({3, 1, 2});
    CHECK_THROWS_MATCHES(l.at(5), mp::IndexError, Catch::Matchers::Message("list index out of range"));
    CHECK(l[-1] == 2);
    l[0] = 30;
    CHECK(l.at(0) == 30);
    l.insert(0, 7);
    l.insert(-100, 6);
    l.insert(100, 8);
    CHECK(l.copy() == std::vector<int>{6, 7, 30, 1, 2, 8});
    CHECK(l.pop() == 8);
    CHECK(l.pop(0) == 6);
    CHECK(l.index(30) == 1);
    CHECK_THROWS_MATCHES(l.index(99), mp::ValueError, Catch::Matchers::Message("99 is not in list"));
    l.append(1);
    CHECK(l.count(1) == 2);
    l.remove(1);
    CHECK(l.copy() == std::vector<int>{7, 30, 2, 1});
    CHECK_THROWS_AS(l.remove(99), mp::ValueError);
    l.sort();
    CHECK(l.copy() == std::vector<int>{1, 2, 7, 30});
    l.reverse();
    CHECK(l.reversed() == std::vector<int>{1, 2, 7, 30});
    l += {5};
    CHECK(l.size() == 5);
    CHECK(l.contains(5));
    l.erase(-1);
    CHECK(str(l) == "[30, 7, 2, 1]");
    CHECK(l * 2 == std::vector<int>{30, 7, 2, 1, 30, 7, 2, 1});
    l.clear();
    CHECK_THROWS_MATCHES(l.pop(), mp::IndexError, Catch::Matchers::Message("pop from empty list"));
}

TEST_CASE("TestSyncManagerTypes: list, dict, set, Value, Array shared with a child", "[containers][fork]") {
    auto manager = mp::Manager();
    auto l = manager.list<int>();
    auto d = manager.dict<int, int>();
    auto s = manager.set<int>();
    auto v = manager.Value("i", 0);
    auto a = manager.Array("i", std::vector<int>{0, 0});
    mp::Process p([=] {
        // _test_list / _test_dict / _test_set / _test_value / _test_array
        l.append(5);
        d[0] = 5;
        d[1] = 6;
        s.add(3);
        s.add(1);
        v.set(1);
        a[0] = 1;
        a[1] = 2;
    });
    p.start();
    CHECK(test::join_or_kill(p) == 0);
    CHECK(l.copy() == std::vector<int>{5});
    CHECK(d.items() == std::vector<std::pair<int, int>>{{0, 5}, {1, 6}});
    CHECK(s.size() == 2);
    CHECK(s.contains(1));
    CHECK(v.value() == 1);
    CHECK(a.copy() == std::vector<int>{1, 2});
    CHECK(str(v) == "Value('i', 1)");
    CHECK(str(a) == "array('i', [1, 2])");
}

TEST_CASE("set: Python 3.14's SetProxy methods", "[containers]") {
    auto manager = mp::Manager();
    auto s = manager.set<int>({1, 2, 3});
    CHECK(s.size() == 3);
    s.add(4);
    s.discard(10);
    CHECK_THROWS_AS(s.remove(10), mp::KeyError);
    s.remove(4);
    CHECK(s.issubset({1, 2, 3, 4}));
    CHECK(s.issuperset({1, 2}));
    CHECK(s.isdisjoint({7, 8}));
    CHECK(s.union_({5}).len() == 4);
    CHECK(s.intersection({2, 3, 9}).items() == std::vector<int>{2, 3});
    CHECK(s.difference({1}).items() == std::vector<int>{2, 3});
    CHECK(s.symmetric_difference({3, 4}).items() == std::vector<int>{1, 2, 4});
    s |= {9};
    s -= {1};
    s &= {2, 3, 9};
    s ^= {3, 5};
    std::vector<int> seen;
    for (int x : s) seen.push_back(x);
    CHECK(seen == std::vector<int>{9, 2, 5});  // CPython's table order
    CHECK(str(s) == "{9, 2, 5}");
    s.clear();
    CHECK(str(s) == "set()");
    CHECK_THROWS_AS(s.pop(), mp::KeyError);
}

TEST_CASE("Value and Array: typecodes and typed forms", "[containers]") {
    auto manager = mp::Manager();
    auto v = manager.Value(2.5);
    CHECK(str(v) == "Value('d', 2.5)");
    v.set(1e16);
    CHECK(str(v) == "Value('d', 1e+16)");
    auto c = manager.Value("c", 'x');
    CHECK(c.get() == 'x');
    auto arr = manager.Array(std::vector<double>{0.25, 1.0});
    CHECK(arr.size() == 2);
    CHECK(str(arr) == "array('d', [0.25, 1.0])");
    CHECK_THROWS_AS(arr.at(2), mp::IndexError);
}

// ---- issue 18: the untyped proxies agree with CPython's Manager() ----

namespace {
using mp::object;
const object nan_value = std::nan("");
object L(std::vector<object> v) { return object::list(std::move(v)); }
}  // namespace

TEST_CASE("issue 18 cause 1: d[[1]] = 2 raises and leaves the dict empty", "[containers][issue18]") {
    auto manager = mp::Manager();
    auto d = manager.dict();
    CHECK_THROWS_MATCHES(d[L({1})] = 2, mp::TypeError, Catch::Matchers::Message("unhashable type: 'list'"));
    CHECK(str(d) == "{}");
    CHECK_THROWS_AS(d.setdefault(L({1}), 2), mp::TypeError);
    CHECK_THROWS_AS(d.update({{1, 1}, {L({1}), 2}}), mp::TypeError);  // stops at the bad pair, as CPython
    CHECK(str(d) == "{1: 1}");
    // a typed dict whose key hashes cannot fail is untouched by the change
    auto t = manager.dict<std::string, int>();
    t["a"] = 1;
    CHECK(str(t) == "{'a': 1}");
}

TEST_CASE("issue 18 cause 2: an unhashable key raises TypeError in an empty dict too", "[containers][issue18]") {
    auto manager = mp::Manager();
    auto d = manager.dict();
    auto msg = Catch::Matchers::Message("unhashable type: 'list'");
    CHECK_THROWS_MATCHES(d.contains(L({1})), mp::TypeError, msg);
    CHECK_THROWS_MATCHES(d.get(L({1})), mp::TypeError, msg);
    CHECK_THROWS_MATCHES(d.at(L({1})), mp::TypeError, msg);
    CHECK_THROWS_MATCHES(d.erase(L({1})), mp::TypeError, msg);
    // CPython's dict.pop alone returns early when the dict is empty
    CHECK_THROWS_MATCHES(d.pop(L({1})), mp::KeyError, Catch::Matchers::Message("[1]"));
    CHECK(d.pop(L({1}), 7) == object(7));
    d[1] = 1;
    CHECK_THROWS_MATCHES(d.pop(L({1})), mp::TypeError, msg);
}

TEST_CASE("issue 18 cause 3: l.count(2.0**53) is 0 after l.append(2**53 + 1)", "[containers][issue18]") {
    auto manager = mp::Manager();
    auto l = manager.list();
    const std::int64_t big = (std::int64_t{1} << 53) + 1;
    const double f53 = 9007199254740992.0;
    l.append(big);
    CHECK(l.count(f53) == 0);
    CHECK_FALSE(l.contains(f53));
    CHECK_THROWS_MATCHES(l.index(f53), mp::ValueError, Catch::Matchers::Message("9007199254740992.0 is not in list"));
    CHECK_THROWS_AS(l.remove(f53), mp::ValueError);
    l.append(f53);
    l.sort();
    CHECK(str(l) == "[9007199254740992.0, 9007199254740993]");
}

TEST_CASE("issue 18 cause 4: d.get(-2.0**63) finds d[-2**63]", "[containers][issue18]") {
    auto manager = mp::Manager();
    auto d = manager.dict();
    d[INT64_MIN] = "int";
    CHECK(d.get(-9223372036854775808.0) == std::optional<object>("int"));
    d[18446744073709551616.0] = "2.0**64";  // hashes like 2**64 would: no int64 collides by equality
    CHECK(d.size() == 2);
    CHECK(str(d) == "{-9223372036854775808: 'int', 1.8446744073709552e+19: '2.0**64'}");
}

TEST_CASE("issue 18 cause 5: a nan key is found by its own entry", "[containers][issue18]") {
    auto manager = mp::Manager();
    auto d = manager.dict();
    CHECK(d.setdefault(nan_value, 1) == object(1));
    CHECK(str(d) == "{nan: 1}");
    auto kv = d.popitem();
    CHECK(repr(kv.first) == "nan");
    CHECK(kv.second == object(1));
    CHECK(str(d) == "{}");
    // a nan sent again is another object: never equal, so a second key
    d[nan_value] = 1;
    d[nan_value] = 2;
    CHECK(str(d) == "{nan: 1, nan: 2}");
    CHECK_THROWS_MATCHES(d.at(nan_value), mp::KeyError, Catch::Matchers::Message("nan"));
}

TEST_CASE("issue 18 cause 6: [2, 1, nan] sorts to [1, nan, 2] as CPython's timsort", "[containers][issue18]") {
    auto manager = mp::Manager();
    auto l = manager.list({2, 1, nan_value});
    l.sort();
    CHECK(str(l) == "[1, nan, 2]");
    auto m = manager.list({3, "a", 1, 2});
    CHECK_THROWS_AS(m.sort(), mp::TypeError);
    CHECK(str(m) == "[3, 'a', 1, 2]");  // the permutation CPython leaves
    auto typed = manager.list<int>({3, 1, 2});
    typed.sort();
    CHECK(typed.copy() == std::vector<int>{1, 2, 3});
}

TEST_CASE("issue 18: Namespace repr sorts, set intersection keeps the argument's items", "[containers][issue18]") {
    auto manager = mp::Manager();
    auto ns = manager.Namespace();
    ns.setattr("b", 1);
    ns.setattr("a", "x");
    CHECK(str(ns) == "Namespace(a='x', b=1)");
    auto s = manager.set({1});
    s.intersection_update({1.0, 2});
    CHECK(repr(s.items().at(0)) == "1.0");
    CHECK(s.issubset({1, L({2})}));  // CPython stops reading once every item is found
    CHECK_THROWS_AS(s.issubset({2, L({2})}), mp::TypeError);
    auto d = manager.dict();
    d["k"] = object::list({1});
    d["k"] += "ab";  // d[k] += v: Python's +=, one atomic call
    CHECK(str(d) == "{'k': [1, 'a', 'b']}");
    CHECK_THROWS_MATCHES(d["k"] += 1, mp::TypeError, Catch::Matchers::Message("'int' object is not iterable"));
    d["n"] = INT64_MAX;
    CHECK_THROWS_AS(d["n"] += 1, mp::OverflowError);
    CHECK(d.at("n") == object(INT64_MAX));
}

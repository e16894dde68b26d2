// Proxies held by dynamic objects (d['x'] = manager.list()) and the
// server's collection of reference cycles between shared objects.
#include <catch2/catch.hpp>

#include "helpers.hpp"

#include <atomic>
#include <chrono>
#include <future>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

namespace mp = multiprocessing;
using mp::object;
using mp::managers::DictProxy;
using mp::managers::ListProxy;
using mp::managers::NamespaceProxy;
using mp::managers::Proxy;

// A user class holding proxies: with _gc_traverse the collector sees them.
class Holder {
public:
    void hold(const object& o) { held_.push_back(o); }
    void clear() { held_.clear(); }
    std::size_t size() const { return held_.size(); }
    object first_after(double seconds) const {
        std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
        return held_.at(0);
    }
    void _gc_traverse(const mp::managers::gc_visitor& v) const { mp::managers::gc_visit(held_, v); }

private:
    std::vector<object> held_;
};
MP_EXPOSE(Holder, hold, clear, size, first_after)

// The same without _gc_traverse: what it holds is never garbage.
class OpaqueHolder {
public:
    void hold(const object& o) { held_.push_back(o); }
    void clear() { held_.clear(); }

private:
    std::vector<object> held_;
};
MP_EXPOSE(OpaqueHolder, hold, clear)

struct HolderManager : mp::managers::BaseManager<HolderManager> {};

namespace {

// A proxy's repr with its id replaced, for comparing with CPython's output.
std::string no_ids(const std::string& s) { return std::regex_replace(s, std::regex("at 0x[0-9a-f]+"), "at 0x?"); }

template <class P>
std::string str_of(const P& p) {
    std::ostringstream os;
    os << p;
    return os.str();
}

bool objects_back_to(mp::managers::SyncManager& m, std::size_t base) {
    return test::wait_until([&] { return m.number_of_objects() == base; }, 10);
}

}  // namespace

TEST_CASE("_TestContainers.test_list_proxy_in_list, untyped", "[object-proxy][containers]") {
    auto manager = mp::Manager();
    auto base = manager.number_of_objects();
    {
        std::vector<object> inner;
        for (int i = 0; i < 3; ++i) inner.emplace_back(manager.list(mp::range(3)));
        auto a = manager.list(inner);
        inner.clear();
        for (int i = 0; i < 3; ++i)
            CHECK(a.at(i).as_proxy<ListProxy<>>().slice(0, 3) == std::vector<object>{0, 1, 2});
        a.at(0).as_proxy<ListProxy<>>()[-1] = 55;
        CHECK(a.at(0).as_proxy<ListProxy<>>().copy() == std::vector<object>{0, 1, 55});
        for (int i = 1; i < 3; ++i) CHECK(a.at(i).as_proxy<ListProxy<>>().copy() == std::vector<object>{0, 1, 2});
        CHECK(a.at(1).as_proxy<ListProxy<>>().pop() == 2);
        CHECK(a.at(1).as_proxy<ListProxy<>>().size() == 2);
        for (int i = 0; i < 3; i += 2) CHECK(a.at(i).as_proxy<ListProxy<>>().size() == 3);
        CHECK(manager.number_of_objects() == base + 4);
    }
    CHECK(objects_back_to(manager, base));
    {
        auto b = manager.list();
        b.append(b);
    }
    // CPython's server frees this cycle with its garbage collector.
    CHECK(objects_back_to(manager, base));
}

TEST_CASE("_TestContainers.test_dict_proxy_nested, untyped", "[object-proxy][containers]") {
    auto manager = mp::Manager();
    auto base = manager.number_of_objects();
    {
        std::optional<DictProxy<>> pets = manager.dict({{"ferrets", 2}, {"hamsters", 4}});
        std::optional<DictProxy<>> supplies = manager.dict({{"water", 10}, {"feed", 3}});
        auto d = manager.dict({{"pets", *pets}, {"supplies", *supplies}});
        auto sub = [&](const char* k) { return d.at(k).as_proxy<DictProxy<>>(); };

        CHECK(supplies->at("water") == 10);
        CHECK(sub("supplies").at("water") == 10);
        sub("supplies")["blankets"] = 5;
        CHECK(supplies->at("blankets") == 5);
        CHECK(sub("supplies").at("blankets") == 5);
        sub("supplies")["water"] = 7;
        CHECK(supplies->at("water") == 7);
        CHECK(sub("supplies").at("water") == 7);

        pets.reset();
        supplies.reset();
        CHECK(sub("pets").at("ferrets") == 2);
        sub("supplies")["blankets"] = 11;
        CHECK(sub("supplies").at("blankets") == 11);

        pets = sub("pets");
        supplies = sub("supplies");
        (*supplies)["water"] = 7;
        CHECK(supplies->at("water") == 7);
        CHECK(sub("supplies").at("water") == 7);

        d.clear();
        CHECK(d.size() == 0);
        CHECK(supplies->at("water") == 7);
        CHECK(pets->at("hamsters") == 4);

        auto l = manager.list({object(*pets), object(*supplies)});
        l.at(0).as_proxy<DictProxy<>>()["marmots"] = 1;
        CHECK(pets->at("marmots") == 1);
        CHECK(l.at(0).as_proxy<DictProxy<>>().at("marmots") == 1);

        pets.reset();
        supplies.reset();
        CHECK(l.at(0).as_proxy<DictProxy<>>().at("marmots") == 1);
        CHECK(manager.number_of_objects() == base + 4);
    }
    CHECK(objects_back_to(manager, base));
}

TEST_CASE("_TestContainers.test_nested_queue, untyped", "[object-proxy][containers]") {
    auto manager = mp::Manager();
    auto base = manager.number_of_objects();
    {
        auto a = manager.list();
        a.append(manager.Queue());
        a.at(0).as_proxy<mp::managers::QueueProxy<object>>().put(123);
        CHECK(a.at(0).as_proxy<mp::managers::QueueProxy<object>>().get() == 123);
        auto b = manager.dict();
        b[0] = manager.Queue();
        b.at(0).as_proxy<mp::managers::QueueProxy<object>>().put(456);
        CHECK(b.at(0).as_proxy<mp::managers::QueueProxy<object>>().get() == 456);
    }
    CHECK(objects_back_to(manager, base));
}

TEST_CASE("object holding a proxy: repr, equality, hash and errors as CPython", "[object-proxy]") {
    auto manager = mp::Manager();
    auto l = manager.list({1});
    auto d = manager.dict();
    d["x"] = l;
    // CPython 3.13: {'x': <ListProxy object, typeid 'list' at 0x7f...>}
    CHECK(no_ids(str_of(d)) == "{'x': <ListProxy object, typeid 'list' at 0x?>}");
    d["n"] = manager.Namespace();
    d["q"] = manager.Queue();
    d["v"] = manager.Value("i", 1);
    CHECK(no_ids(str_of(d)) ==
          "{'x': <ListProxy object, typeid 'list' at 0x?>, 'n': <NamespaceProxy object, typeid 'Namespace' at 0x?>, "
          "'q': <AutoProxy[Queue] object, typeid 'Queue' at 0x?>, 'v': <ValueProxy object, typeid 'Value' at 0x?>}");

    object a = d.at("x"), b = d.at("x"), other = d.at("n");
    CHECK(a.is_proxy());
    CHECK(a.type() == object::kind::proxy);
    CHECK(a.type_name() == "ListProxy");
    STATIC_REQUIRE(sizeof(object) <= 40);  // the proxy kind keeps its reference on the heap
    // Equal when they name one shared object (CPython: only the same proxy object).
    CHECK(a == b);
    CHECK(a == object(l));
    CHECK(a != other);
    CHECK(a != object(1));
    // Hashable, as CPython's proxies are (by identity there).
    CHECK(std::hash<object>{}(a) == std::hash<object>{}(b));
    auto keyed = object::dict({{a, 1}});
    CHECK(keyed[b] == 1);
    CHECK_THROWS_MATCHES(void(a < b), mp::TypeError,
                         Catch::Matchers::Message("'<' not supported between instances of 'ListProxy' and 'ListProxy'"));
    CHECK_THROWS_AS(a.as_proxy<DictProxy<>>(), mp::TypeError);
    CHECK_THROWS_AS(object(1).as_proxy<ListProxy<>>(), mp::TypeError);
    CHECK(a.as_proxy<ListProxy<>>() == l);
    // An empty proxy stores None.
    CHECK(object(ListProxy<>()).is_none());
    // A proxy inside nested values travels with them.
    d["t"] = object::tuple({a, object::list({a, 2})});
    CHECK(no_ids(repr(d.at("t"))) ==
          "(<ListProxy object, typeid 'list' at 0x?>, [<ListProxy object, typeid 'list' at 0x?>, 2])");
    d.at("t").items()[1].items()[0].as_proxy<ListProxy<>>().append(5);
    CHECK(l.copy() == std::vector<object>{1, 5});
}

TEST_CASE("object holding a proxy: references are counted", "[object-proxy]") {
    auto manager = mp::Manager();
    auto base = manager.number_of_objects();
    auto d = manager.dict();
    {
        auto l = manager.list();
        d["x"] = l;
        d["y"] = l;
    }
    // Held by d only.
    CHECK(manager.number_of_objects() == base + 2);
    auto held = d.at("x");  // this process's own reference
    d.erase("x");
    d.erase("y");
    CHECK(manager.number_of_objects() == base + 2);
    held.as_proxy<ListProxy<>>().append(1);
    held = mp::None;
    CHECK(objects_back_to(manager, base + 1));
    // Replacing a value and clearing drop their references too.
    d["z"] = manager.list();
    d["z"] = 1;
    d["w"] = object::list({manager.dict()});
    CHECK(manager.number_of_objects() == base + 2);
    d.clear();
    CHECK(objects_back_to(manager, base + 1));
}

TEST_CASE("object holding a proxy: copied to a forked child, which uses it after the parent dropped its copies",
          "[object-proxy][process]") {
    auto manager = mp::Manager();
    auto base = manager.number_of_objects();
    test::Channel ch;
    {
        auto d = manager.dict();
        d["x"] = manager.list();
        object held = d.at("x");
        mp::Process p([&ch, held] {
            ch.read_line();  // the parent has dropped everything
            auto l = held.as_proxy<ListProxy<>>();
            l.append(42);
            ch.write_line(std::to_string(l.size()));
        });
        p.start();
        held = mp::None;
        d = {};
        ch.write_line("go");
        CHECK(test::join_or_kill(p) == 0);
        CHECK(ch.read_line() == "1");
    }
    CHECK(objects_back_to(manager, base));
}

TEST_CASE("cycles: a list holding itself is freed", "[gc]") {
    auto manager = mp::Manager();
    auto base = manager.number_of_objects();
    {
        auto b = manager.list();
        b.append(b);
        CHECK(no_ids(str_of(b)) == "[<ListProxy object, typeid 'list' at 0x?>]");
    }
    CHECK(objects_back_to(manager, base));
}

TEST_CASE("cycles: two lists holding each other are both freed", "[gc]") {
    auto manager = mp::Manager();
    auto base = manager.number_of_objects();
    {
        auto a = manager.list();
        auto b = manager.list();
        a.append(b);
        b.append(a);
        auto c = manager.list({object(a)});  // c holds the cycle, is not in it
    }
    CHECK(objects_back_to(manager, base));
}

TEST_CASE("cycles: a cycle reachable from a live proxy is kept", "[gc]") {
    auto manager = mp::Manager();
    auto base = manager.number_of_objects();
    std::optional<ListProxy<>> root;
    {
        auto a = manager.list({1});
        auto b = manager.list({2});
        a.append(b);
        b.append(a);
        root = manager.list({object(a)});
    }
    CHECK(manager.collect() == 0);
    CHECK(manager.number_of_objects() == base + 3);
    // Still usable through the path from the live proxy.
    auto a = root->at(0).as_proxy<ListProxy<>>();
    auto b = a.at(1).as_proxy<ListProxy<>>();
    CHECK(b.at(0) == 2);
    CHECK(b.at(1).as_proxy<ListProxy<>>() == a);
    root.reset();
    CHECK(manager.collect() == 0);  // a and b are ours now
    CHECK(manager.number_of_objects() == base + 2);
    b = {};
    CHECK(manager.number_of_objects() == base + 2);
    a = {};
    CHECK(objects_back_to(manager, base));
}

TEST_CASE("cycles: through typed containers, a Namespace and nested objects", "[gc]") {
    auto manager = mp::Manager();
    auto base = manager.number_of_objects();
    {
        // typed list -> namespace -> (object) typed list
        auto ns = manager.Namespace();
        auto typed = manager.list<NamespaceProxy>();
        typed.append(ns);
        ns.setattr("back", typed);
        // dict -> tuple inside an object -> dict
        auto d1 = manager.dict();
        auto d2 = manager.dict();
        d1["t"] = object::tuple({1, object::list({d2})});
        d2[object::tuple({1, 2})] = object::dict({{"up", d1}});
        // typed dict of typed dicts cannot name itself; a Value of object can
        auto v = manager.Value(object());
        v.set(object::list({v}));
        CHECK(manager.number_of_objects() == base + 5);
    }
    CHECK(objects_back_to(manager, base));
}

TEST_CASE("cycles: collect() frees on demand what the automatic run would", "[gc]") {
    auto manager = mp::Manager();
    auto base = manager.number_of_objects();
    CHECK(manager.collect() == 0);
    {
        auto a = manager.list();
        a.append(a);
    }
    // The automatic run may come first; between them all of it goes.
    std::size_t freed = manager.collect();
    CHECK(freed <= 1);
    CHECK(objects_back_to(manager, base));
    CHECK(manager.collect() == 0);
}

TEST_CASE("cycles: the references of a SIGKILLed client", "[gc][process]") {
    test::become_subreaper();
    auto manager = mp::Manager();
    auto base = manager.number_of_objects();
    test::Channel ch;
    mp::Process p([&ch, &manager] {
        auto a = manager.dict();
        auto b = manager.list();
        a["b"] = b;
        b.append(a);
        auto self = manager.list();
        self.append(self);
        ch.write_line("made");
        test::forever();
    });
    p.start();
    REQUIRE(ch.read_line() == "made");
    CHECK(manager.number_of_objects() == base + 3);
    p.kill();
    test::join_or_kill(p);
    CHECK(objects_back_to(manager, base));
}

TEST_CASE("cycles: made and dropped by several processes and threads at once", "[gc][load]") {
    auto manager = mp::Manager();
    auto base = manager.number_of_objects();
    auto shared = manager.list();
    auto work = [&manager, shared](int rounds) {
        for (int i = 0; i < rounds; ++i) {
            auto a = manager.list();
            auto b = manager.dict();
            a.append(b);
            b["a"] = a;
            b["self"] = b;
            shared.append(a);  // reachable for a while
            if (i % 3 == 0) manager.collect();
            shared.pop(0);
        }
    };
    std::vector<mp::Process> procs;
    for (int i = 0; i < 2; ++i) procs.emplace_back([work] { work(20); });
    for (auto& p : procs) p.start();
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i) threads.emplace_back([work] { work(20); });
    for (auto& t : threads) t.join();
    for (auto& p : procs) CHECK(test::join_or_kill(p, 60) == 0);
    CHECK(shared.size() == 0);
    CHECK(objects_back_to(manager, base + 1));
}

TEST_CASE("cycles: through a user class that declares _gc_traverse, and not through one that does not", "[gc]") {
    HolderManager::register_type<Holder>("Holder");
    HolderManager::register_type<OpaqueHolder>("OpaqueHolder");
    HolderManager manager;
    manager.start();
    {
        auto h = manager.create<Holder>();
        h.hold(object::list({h}));
        CHECK(h.size() == 1);
    }
    CHECK(test::wait_until([&] { return manager.number_of_objects() == 0; }, 10));
    std::optional<Proxy<OpaqueHolder>> keep;
    {
        auto o = manager.create<OpaqueHolder>();
        o.hold(o);
        keep = o;  // to break the cycle by hand below
    }
    keep->clear();  // the cycle is gone; our reference is the last
    keep.reset();
    CHECK(test::wait_until([&] { return manager.number_of_objects() == 0; }, 10));
    {
        auto o = manager.create<OpaqueHolder>();
        o.hold(o);
    }
    // Invisible to the collector: kept, as documented.
    CHECK(manager.collect() == 0);
    CHECK(manager.number_of_objects() == 1);
    manager.shutdown();
}

TEST_CASE("object holding a proxy: nested three deep, freed without deadlock", "[object-proxy]") {
    auto manager = mp::Manager();
    mp::managers::call_timeout limit(20);  // a deadlocked server fails the test, never hangs it
    auto base = manager.number_of_objects();
    {
        auto d = manager.dict();
        auto l = manager.list();
        l.append(manager.dict({{"k", 1}}));
        d["x"] = l;
    }
    CHECK(objects_back_to(manager, base));
    {
        auto outer = manager.list<ListProxy<ListProxy<int>>>();
        {
            auto mid = manager.list<ListProxy<int>>();
            mid.append(manager.list<int>());
            outer.append(mid);
        }
    }
    CHECK(objects_back_to(manager, base));
    CHECK(manager.number_of_objects() == base);
}

TEST_CASE("a proxy popped out of a container it alone held is usable", "[object-proxy][containers]") {
    auto manager = mp::Manager();
    auto base = manager.number_of_objects();
    {
        // Typed: on main the server dropped its reference before the reply
        // reached the caller, whose incref then failed with KeyError.
        auto typed = manager.list<ListProxy<int>>();
        typed.append(manager.list<int>({1, 2}));
        auto x = typed.pop();
        CHECK(x.copy() == std::vector<int>{1, 2});
        auto d = manager.dict();
        d["k"] = manager.list({3});
        auto y = d.pop("k");
        CHECK(y.as_proxy<ListProxy<>>().copy() == std::vector<object>{3});
        CHECK(manager.number_of_objects() == base + 4);
    }
    CHECK(objects_back_to(manager, base));
}

TEST_CASE("cycles: through a set", "[gc]") {
    auto manager = mp::Manager();
    auto base = manager.number_of_objects();
    {
        auto s = manager.set();
        s.add(s);  // a proxy is hashable, as in CPython
        s.add(s);  // equal to itself: one element
        CHECK(s.size() == 1);
    }
    CHECK(objects_back_to(manager, base));
}

// One thread hands proxies over through a list and drops its own copy at
// once; others pop them.  A reply carrying a proxy that the receiving
// process also held when the reply left must stay valid after that process
// drops its other copy (it once raised KeyError: the server had counted on
// the process's reference, which another thread released in between).
TEST_CASE("object holding a proxy: popped by one thread while another drops its copy", "[object-proxy][load]") {
    auto manager = mp::Manager();
    auto base = manager.number_of_objects();
    auto shared = manager.list();
    std::atomic<bool> done{false};
    std::atomic<int> popped{0};
    constexpr int rounds = 300;
    std::thread producer([&] {
        for (int i = 0; i < rounds; ++i) {
            auto a = manager.list();
            a.append(i);
            shared.append(a);
        }  // each a dropped right after it is appended
        done = true;
    });
    std::vector<std::thread> consumers;
    std::atomic<int> errors{0};
    for (int t = 0; t < 2; ++t)
        consumers.emplace_back([&] {
            while (!done || shared.size() > 0) {
                try {
                    object o = shared.pop(0);
                    auto l = o.as_proxy<ListProxy<object>>();
                    if (l.size() != 1) errors += 1;
                    popped += 1;
                } catch (const mp::IndexError&) {
                    // empty for now
                } catch (const std::exception& e) {
                    errors += 1;
                    WARN(e.what());
                }
            }
        });
    producer.join();
    for (auto& c : consumers) c.join();
    CHECK(errors == 0);
    CHECK(popped == rounds);
    CHECK(objects_back_to(manager, base + 1));
}

// A reply's proxies are the caller's references from the moment the reply
// leaves; a caller that gave up waiting never takes them, and the server
// takes them back when the connection closes.
TEST_CASE("object holding a proxy: a reply the caller gave up on gives its references back", "[object-proxy]") {
    HolderManager::register_type<Holder>("Holder");
    HolderManager manager;
    manager.start();
    auto h = manager.create<Holder>();
    h.hold(manager.create<Holder>());  // h holds the only reference
    REQUIRE(manager.number_of_objects() == 2);
    {
        mp::managers::call_timeout limit(0.2);
        CHECK_THROWS_AS(h.first_after(1.0), mp::TimeoutError);
    }
    h.clear();  // waits for first_after to finish (the object's lock)
    CHECK(test::wait_until([&] { return manager.number_of_objects() == 1; }, 10));
    manager.shutdown();
}

TEST_CASE("object holding a proxy: pipelined replies carrying the same proxy", "[object-proxy][async]") {
    HolderManager::register_type<Holder>("Holder");
    HolderManager manager;
    manager.start();
    auto h = manager.create<Holder>();
    h.hold(manager.create<Holder>());
    {
        std::vector<mp::managers::Future<object>> fs;
        for (int i = 0; i < 200; ++i) fs.push_back(mp::managers::call_async<&Holder::first_after>(h, 0.0));
        std::vector<object> got;
        for (auto& f : fs) got.push_back(f.get());
        for (auto& o : got) CHECK(o.as_proxy<Proxy<Holder>>().size() == 0);
        h.clear();
        CHECK(manager.number_of_objects() == 2);  // the results hold it
    }
    CHECK(test::wait_until([&] { return manager.number_of_objects() == 1; }, 10));
    manager.shutdown();
}

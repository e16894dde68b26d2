// The operators of the container proxies against CPython's (3.13 for list,
// 3.14's SetProxy and DictProxy `|`): reflected forms, set algebra in both
// directions with CPython's result order, subset comparisons, set
// construction, and Array iteration.  Expected values printed by CPython.
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <sstream>

namespace mp = multiprocessing;
using mp::object;
using mp::managers::Dict;
using mp::managers::Set;

namespace {
template <class P>
std::string str(const P& p) {
    std::ostringstream os;
    os << p;
    return os.str();
}
}  // namespace

TEST_CASE("ListProxy: * and + in both directions, +=, *=, reversed, in", "[containers][operators]") {
    auto manager = mp::Manager();
    auto l = manager.list<int>({1, 2});
    CHECK(2 * l == std::vector<int>{1, 2, 1, 2});  // __rmul__
    CHECK(l * 2 == std::vector<int>{1, 2, 1, 2});
    CHECK(l * -1 == std::vector<int>{});
    CHECK(0 * l == std::vector<int>{});
    CHECK(l + std::vector<int>{3} == std::vector<int>{1, 2, 3});
    // CPython raises TypeError for [3] + l (no __radd__); here a plain list
    CHECK(std::vector<int>{3} + l == std::vector<int>{3, 1, 2});
    l += {5};
    l *= 2;
    CHECK(l.copy() == std::vector<int>{1, 2, 5, 1, 2, 5});
    CHECK(l.reversed() == std::vector<int>{5, 2, 1, 5, 2, 1});
    CHECK(l.contains(5));
    CHECK_FALSE(l.contains(7));
    // == compares proxies (Python: identity), not contents
    auto same = l;
    CHECK(same == l);
    CHECK(manager.list<int>({1, 2, 5, 1, 2, 5}) != l);
    auto dyn = manager.list({1, "a"});
    CHECK(repr(object::list(2 * dyn)) == "[1, 'a', 1, 'a']");
}

TEST_CASE("DictProxy: | in both directions and |= (Python 3.14)", "[containers][operators]") {
    auto manager = mp::Manager();
    auto d = manager.dict<int, std::string>({{1, "a"}});
    using D = Dict<int, std::string>;
    // CPython 3.14: {2: 'b'} | d == {2: 'b', 1: 'a'}; d | {2: 'b'} == {1: 'a', 2: 'b'}
    CHECK((D({{2, "b"}}) | d).repr() == "{2: 'b', 1: 'a'}");
    CHECK((d | D({{2, "b"}})).repr() == "{1: 'a', 2: 'b'}");
    // the left key keeps its place, the right value wins
    CHECK((D({{1, "x"}, {2, "b"}}) | d).repr() == "{1: 'a', 2: 'b'}");
    CHECK((std::vector<std::pair<int, std::string>>{{3, "c"}} | d).repr() == "{3: 'c', 1: 'a'}");
    d |= D({{4, "d"}});
    CHECK(str(d) == "{1: 'a', 4: 'd'}");
}

TEST_CASE("SetProxy: | & - ^ in both directions, in CPython's order", "[containers][operators][set]") {
    auto manager = mp::Manager();
    auto p = manager.set<int>({1, 2, 3, 40, 16});
    Set<int> b({3, 16, 5, 8, 100});
    // CPython: set(list(p OP b)), what a proxy receives through pickle
    CHECK((p | b).repr() == "{1, 2, 3, 100, 5, 40, 8, 16}");
    CHECK((b | p).repr() == "{1, 2, 3, 100, 5, 8, 40, 16}");
    CHECK((p & b).repr() == "{16, 3}");
    CHECK((b & p).repr() == "{16, 3}");
    CHECK((p - b).repr() == "{40, 1, 2}");
    CHECK((b - p).repr() == "{8, 100, 5}");
    CHECK((p ^ b).repr() == "{1, 2, 100, 5, 8, 40}");
    CHECK((b ^ p).repr() == "{1, 2, 100, 5, 40, 8}");
    auto q = manager.set<int>({3, 16, 5, 8, 100});
    CHECK((p | q).repr() == "{1, 2, 3, 100, 5, 40, 8, 16}");  // a proxy operand travels as its value
    CHECK(str(p) == "{1, 2, 3, 40, 16}");                     // the operators made copies

    auto check_inplace = [&](auto op, const char* want) {
        auto s = manager.set<int>({1, 2, 3, 40, 16});
        op(s);
        CHECK(str(s) == want);
    };
    check_inplace([&](auto& s) { s |= b; }, "{1, 2, 3, 100, 5, 40, 8, 16}");
    check_inplace([&](auto& s) { s &= b; }, "{16, 3}");
    check_inplace([&](auto& s) { s -= b; }, "{1, 2, 40}");
    check_inplace([&](auto& s) { s ^= b; }, "{1, 2, 100, 5, 40, 8}");
    check_inplace([&](auto& s) { s ^= q; }, "{1, 2, 100, 5, 40, 8}");
}

TEST_CASE("SetProxy: < <= > >= with a set or a proxy on either side", "[containers][operators][set]") {
    auto manager = mp::Manager();
    auto p = manager.set<int>({1, 2, 3, 40, 16});
    Set<int> bigger({1, 2, 3, 40, 16, 7}), smaller({1, 2}), other({3, 16, 5, 8, 100});
    CHECK_FALSE(p < other);
    CHECK(p <= bigger);
    CHECK(p < bigger);
    CHECK(p > smaller);
    CHECK(smaller < p);
    CHECK_FALSE(smaller >= p);
    CHECK(bigger >= p);
    CHECK_FALSE(bigger <= p);
    CHECK(p <= p);
    CHECK_FALSE(p < p);
    auto q = manager.set<int>({1, 2});
    CHECK(q < p);
    CHECK(p >= q);
}

TEST_CASE("set: made from a set, a list, a dict's keys, a proxy or a dynamic value", "[containers][set]") {
    auto manager = mp::Manager();
    // CPython orders these three differently: set(list), set(set) and
    // set(dict) size their tables differently
    std::vector<int> l{544, 464, 104, 3, 48, 8};
    CHECK(str(manager.set(l)) == "{544, 3, 104, 8, 48, 464}");
    // the set arrives as set(list(s)) (pickle's way), then set() merges it
    CHECK(str(manager.set(Set<int>(l))) == "{544, 48, 464, 3, 8, 104}");
    Dict<int, int> d;
    for (int k : l) d.setitem(k, 0);
    CHECK(str(manager.set(d)) == "{544, 464, 48, 3, 104, 8}");
    auto dp = manager.dict<int, int>();
    for (int k : l) dp[k] = 0;
    CHECK(str(manager.set(dp)) == "{544, 464, 48, 3, 104, 8}");
    auto sp = manager.set(l);
    // differs: CPython's server uses the proxy's referent itself, giving
    // {544, 48, 464, 3, 104, 8}; a proxy argument travels as its value
    CHECK(str(manager.set(sp)) == "{544, 48, 464, 3, 8, 104}");
    // a dynamic value is iterated at run time, as CPython does
    CHECK(manager.set(object("hello")).size() == 4);
    CHECK(str(manager.set(object::dict({{3, 1}, {1, 2}}))) == "{1, 3}");
    CHECK(str(manager.set(object::tuple({2, 1}))) == "{1, 2}");
    CHECK_THROWS_MATCHES(manager.set(object(5)), mp::TypeError, Catch::Matchers::Message("'int' object is not iterable"));
    CHECK_THROWS_MATCHES(manager.set({object::list({1})}), mp::TypeError,
                         Catch::Matchers::Message("unhashable type: 'list'"));
    // a typed argument that is not a sequence does not compile:
    // manager.set(5) has no overload
}

TEST_CASE("ArrayProxy iterates", "[containers][operators]") {
    auto manager = mp::Manager();
    auto a = manager.Array("i", std::vector<int>{1, 2, 3});
    CHECK(std::vector<int>(a.begin(), a.end()) == std::vector<int>{1, 2, 3});
    int sum = 0;
    for (int x : a) sum += x;
    CHECK(sum == 6);
    a[0] = 10;
    std::vector<int> seen;
    for (int x : a) seen.push_back(x);
    CHECK(seen == std::vector<int>{10, 2, 3});
}

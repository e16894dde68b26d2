// Set iteration order against CPython 3.13: random programs from
// tests/data/gen_set_order_cases.py replayed on the server's set referent
// (CPython's table: probes, dummies, resizes, merges, pop's finger), and
// through a SetProxy for the wire round trip.
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

namespace mp = multiprocessing;
using mp::object;
using Set = mp::managers::Set<object>;

namespace {

// gen_repr_cases.py's prefix code, for the values the set cases use.
object decode(const std::string& s, std::size_t& i) {
    char tag = s[i++];
    auto until = [&](char end) {
        std::size_t j = s.find(end, i);
        std::string r = s.substr(i, j - i);
        i = j + 1;
        return r;
    };
    switch (tag) {
    case 'N': return mp::None;
    case 'T': return true;
    case 'F': return false;
    case 'i': return object(static_cast<std::int64_t>(std::stoll(until(';'))));
    case 'f': {
        std::uint64_t bits = std::stoull(s.substr(i, 16), nullptr, 16);
        i += 16;
        double d;
        std::memcpy(&d, &bits, sizeof d);
        return d;
    }
    case 't': case 'l': {
        std::size_t n = std::stoul(until(':'));
        std::vector<object> v;
        for (std::size_t k = 0; k < n; ++k) v.push_back(decode(s, i));
        return tag == 't' ? object::tuple(v) : object::list(v);
    }
    }
    throw std::runtime_error("bad case: " + s);
}
object decode(const std::string& s) {
    std::size_t i = 0;
    return decode(s, i);
}

template <class P>
std::string str(const P& p) {
    std::ostringstream os;
    os << p;
    return os.str();
}

std::vector<std::string> split(const std::string& line) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string x;
    while (std::getline(ss, x, '\t')) f.push_back(x);
    return f;
}

std::string hex(std::uint64_t h) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

// One op of a generated program, applied to s; the popped repr, if any.
std::string apply(Set& s, const std::string& op, const std::string& arg) {
    using Op = std::function<Set(const Set&, const Set&)>;
    static const std::map<std::string, Op> binops = {
        {"or", [](const Set& a, const Set& b) { return a | b; }},
        {"and", [](const Set& a, const Set& b) { return a & b; }},
        {"sub", [](const Set& a, const Set& b) { return a - b; }},
        {"xor", [](const Set& a, const Set& b) { return a ^ b; }},
        {"ror", [](const Set& a, const Set& b) { return b | a; }},
        {"rand", [](const Set& a, const Set& b) { return b & a; }},
        {"rsub", [](const Set& a, const Set& b) { return b - a; }},
        {"rxor", [](const Set& a, const Set& b) { return b ^ a; }},
    };
    object a = arg == "-" ? mp::None : decode(arg);
    auto seq = [&] { return a.items(); };
    if (op == "add") s.add(a);
    else if (op == "discard") s.discard(a);
    else if (op == "pop") return repr(s.pop());
    else if (op == "clear") s.clear();
    else if (op == "copy") s = s.copy();
    else if (op == "rt") s = Set(s.items());
    else if (op == "update") s.update(seq());
    else if (op == "iu") s.intersection_update(seq());
    else if (op == "du") s.difference_update(seq());
    else if (op == "su") s.symmetric_difference_update(seq());
    else if (op == "union") s = s.union_(seq());
    else if (op == "inter") s = s.intersection(seq());
    else if (op == "diff") s = s.difference(seq());
    else if (op == "sym") s = s.symmetric_difference(seq());
    else if (op == "ior") s.update_set(Set(seq()));
    else if (op == "iand") s.intersection_update_set(Set(seq()));
    else if (op == "isub") s.difference_update_set(Set(seq()));
    else if (op == "ixor") s.symmetric_difference_update_set(Set(seq()));
    else if (op == "dict") {
        // dict.fromkeys keeps the first of equal keys, as the set would
        Set first(seq());
        std::vector<object> keys;
        for (auto& k : seq())
            if (first.contains(k)) {
                keys.push_back(k);
                first.discard(k);
            }
        s = Set(keys, mp::managers::detail::dict_keys_t{});
    } else s = binops.at(op)(s, Set(seq()));
    return "-";
}

}  // namespace

TEST_CASE("set: iteration order is CPython's over generated programs", "[containers][set][cpython]") {
    std::ifstream in(MP_TEST_DATA "/set_order_cases.txt");
    REQUIRE(in);
    std::string line;
    Set s;
    int programs = 0, ops = 0, bad = 0;
    std::string trace;
    while (std::getline(in, line)) {
        auto f = split(line);
        if (f[0] == "P") {
            s = Set(decode(f[1]).items());
            trace = line + "\n";
            ++programs;
        } else if (f[0] == "E") {
            if (s.repr() != f[1]) {
                ++bad;
                INFO(trace << "got      " << s.repr() << "\nexpected " << f[1]);
                CHECK(s.repr() == f[1]);
            }
        } else {
            ++ops;
            trace += line + "\n";
            std::string popped = apply(s, f[0], f[1]);
            bool ok = hex(mp::detail::fnv1a(s.repr())) == f[2] && popped == f[3];
            if (!ok && bad++ < 3) {
                INFO(trace << "got " << s.repr() << " popped " << popped);
                CHECK(ok);
            }
        }
    }
    CHECK(programs == 120);
    CHECK(ops > 3000);
    CHECK(bad == 0);
}

TEST_CASE("set: repr orders like CPython", "[containers][set]") {
    auto r = [](std::vector<object> v) { return Set(v).repr(); };
    // CPython: {0, 1, 2} for set([2, 0, 1])
    CHECK(r({2, 0, 1}) == "{0, 1, 2}");
    CHECK(r({-1, -2, 7, 8}) == "{8, 7, -1, -2}");   // hash(-1) == hash(-2) == -2
    CHECK(r({1.5, 0.5, mp::None, true}) == "{0.5, 1.5, None, True}");
    CHECK(r({16, 8, 0}) == "{16, 8, 0}");           // collisions probe linearly
    CHECK(r({1, 1.0, true}) == "{1}");              // equal: the first one stays
    CHECK(r({object::tuple({1, 2}), 3}) == "{3, (1, 2)}");
    std::vector<object> big;
    for (int i = 20; i > 0; --i) big.push_back(i * 3);
    CHECK(r(big) == "{3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36, 39, 42, 45, 48, 51, 54, 57, 60}");
    // typed sets hash as CPython too
    CHECK(mp::managers::Set<int>({5, 3, 64, 1}).repr() == "{64, 1, 3, 5}");
    CHECK(mp::managers::Set<double>({2.5, 0.25}).repr() == "{0.25, 2.5}");
    CHECK(mp::managers::Set<std::pair<int, int>>({{1, 2}, {3, 4}}).repr() == "{(1, 2), (3, 4)}");
}

TEST_CASE("set: the proxy keeps CPython's order across the wire", "[containers][set]") {
    auto manager = mp::Manager();
    auto s = manager.set({2, 0, 1});
    CHECK(str(s) == "{0, 1, 2}");
    for (int i = 100; i > 3; --i) s.add(i * 8);
    for (int i = 100; i > 50; --i) s.discard(i * 8);
    Set local({2, 0, 1});
    for (int i = 100; i > 3; --i) local.add(i * 8);
    for (int i = 100; i > 50; --i) local.discard(i * 8);
    CHECK(str(s) == local.repr());
    CHECK(s.items() == local.items());
    // copy() and the operators' results travel as set(list(result)), as
    // pickling does
    CHECK(s.copy().repr() == Set(local.copy().items()).repr());
    CHECK(s.pop() == local.pop());
    CHECK(s.pop() == local.pop());
    CHECK(str(s) == local.repr());
}

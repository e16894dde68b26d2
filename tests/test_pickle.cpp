// The pickle codec (detail/pickle.hpp) on inputs built by hand: what it
// must refuse, and the bounds it keeps.  Its agreement with CPython's own
// pickle is checked by pickle/pickle_interop.py (CTest: pickle.interop).
#include "multiprocessing/detail/pickle_object.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace pk = multiprocessing::detail::pickle;
using multiprocessing::object;

namespace {

using namespace std::string_literals;  // "..."s: literals may hold NUL bytes

std::string p4(const std::string& body) { return "\x80\x04"s + body + "."; }

std::string unhex(const std::string& h) {
    std::string out;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2) out += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
    return out;
}

std::string le(std::uint64_t v, int n) {
    std::string s;
    for (int k = 0; k < n; ++k) s += static_cast<char>(v >> (8 * k));
    return s;
}

// The reason a refused pickle gives.
std::string refusal(const std::string& data, const pk::limits& lim = {}) {
    try {
        pk::loads(data, lim);
    } catch (const pk::UnpicklingError& e) {
        return e.what();
    }
    return "(accepted)";
}

}  // namespace

TEST_CASE("pickle: values written by CPython 3.13 are read", "[pickle]") {
    // pickle.dumps([1, 'x', {'a': (None, True, 2.5)}, b'\xff', {3}], 4), as CPython writes it.
    std::string cpython = unhex(
        "80049529000000000000005d94284b018c0178947d948c0161944e884740040000000000008794734301ff948f94284b0390652e");
    pk::value v = pk::loads(cpython);
    REQUIRE(v.k == pk::value::kind::list);
    REQUIRE(v.items.size() == 5);
    CHECK(v.items[4].k == pk::value::kind::set);
    CHECK(v.items[4].items.at(0) == pk::value::integer(3));
    v.items.pop_back();
    CHECK(repr(pk::to_object(v)) == "[1, 'x', {'a': (None, True, 2.5)}, b'\\xff']");
}

TEST_CASE("pickle: every int width round-trips and reads back as the same int", "[pickle]") {
    for (std::int64_t i : {std::int64_t(0), std::int64_t(1), std::int64_t(-1), std::int64_t(255), std::int64_t(256),
                           std::int64_t(65535), std::int64_t(65536), std::int64_t(-128), std::int64_t(-129),
                           std::int64_t(INT32_MAX), std::int64_t(INT32_MIN), std::int64_t(INT32_MAX) + 1,
                           std::int64_t(INT32_MIN) - 1, std::int64_t(1) << 40, INT64_MAX, INT64_MIN}) {
        CAPTURE(i);
        CHECK(pk::loads(pk::dumps(pk::value::integer(i))) == pk::value::integer(i));
    }
    // LONG1 with redundant sign bytes is still the same int; one bit more is refused.
    CHECK(pk::loads(p4("\x8a\x0a"s + le(5, 8) + std::string(2, '\0'))) == pk::value::integer(5));
    CHECK(pk::loads(p4("\x8a\x09" + le(std::uint64_t(-7), 8) + "\xff")) == pk::value::integer(-7));
    CHECK_THAT(refusal(p4("\x8a\x09" + le(0, 8) + "\x01")), Catch::Contains("beyond 64 bits"));
    CHECK_THAT(refusal(p4("\x8a\x08" + le(0x8000000000000000ull, 8) + "")), !Catch::Contains("beyond"));
    CHECK_THAT(refusal(p4("\x8a\x09" + le(0x8000000000000000ull, 8) + std::string(1, '\0'))),
               Catch::Contains("beyond 64 bits"));
    CHECK_THAT(refusal(p4("L99999999999999999999L\n")), Catch::Contains("beyond 64 bits"));
    CHECK(pk::loads(p4("L-9223372036854775808L\n")) == pk::value::integer(INT64_MIN));
}

TEST_CASE("pickle: truncated pickles are refused at every length", "[pickle]") {
    pk::value v = pk::value::seq(pk::value::kind::list,
                                 {pk::value::str("key"), pk::value::floating(1.5), pk::value::bytes(std::string(300, 'b')),
                                  pk::value::seq(pk::value::kind::dict, {pk::value::integer(1 << 20), pk::value::none_()})});
    std::string full = pk::dumps(v);
    REQUIRE(pk::loads(full) == v);
    for (std::size_t n = 0; n < full.size(); ++n) {
        CAPTURE(n);
        CHECK_THROWS_AS(pk::loads(full.substr(0, n)), pk::UnpicklingError);
    }
}

TEST_CASE("pickle: a declared length larger than the data allocates nothing", "[pickle]") {
    for (std::string op : {std::string("\x8d") + le(std::uint64_t(1) << 62, 8), std::string("\x8e") + le(~0ull, 8),
                           std::string("\x96") + le(std::uint64_t(1) << 40, 8), "X" + le(0xffffffffu, 4),
                           "B" + le(0xfffffff0u, 4), std::string("\x8b") + le(0x7fffffffu, 4)}) {
        CHECK_THAT(refusal(p4(op + "abc")), Catch::Contains("truncated"));
    }
    CHECK_THAT(refusal(p4(std::string("\x8b") + le(0x80000000u, 4))), Catch::Contains("negative"));
}

TEST_CASE("pickle: globals outside the allowlist are refused, whatever the opcode", "[pickle]") {
    CHECK_THAT(refusal(p4("\x8c\x05posix\x8c\x06system\x93\x8c\x02id\x85R")), Catch::Contains("'posix.system' is forbidden"));
    CHECK_THAT(refusal("\x80\x02" "cos\nsystem\nX\x02\0\0\0id\x85R."s), Catch::Contains("'os.system' is forbidden"));
    CHECK_THAT(refusal(std::string("\x80\x02") + "c__builtin__\neval\n."), Catch::Contains("'builtins.eval' is forbidden"));
    CHECK_THAT(refusal(p4("\x8c\x18multiprocessing.managers\x8c\x0b" "BaseManager\x93")), Catch::Contains("forbidden"));
    CHECK_THAT(refusal(p4("\x8c\x03" "a b\x8c\x01" "c\x93")), Catch::Contains("space"));
    // Allowed ones are named, never called: KeyError('k') is an instance.
    pk::value e = pk::loads(p4("\x8c\x08" "builtins\x8c\x08KeyError\x93\x8c\x01k\x85R"));
    REQUIRE(e.k == pk::value::kind::instance);
    CHECK(std::string(e.cls().module()) == "builtins");
    CHECK(std::string(e.cls().name()) == "KeyError");
    CHECK(e.args() == pk::value::seq(pk::value::kind::tuple, {pk::value::str("k")}));
    CHECK_THROWS_AS(pk::to_object(e), multiprocessing::TypeError);
    // A caller's own allowlist replaces the default.
    pk::limits none;
    none.allowed = [](std::string_view, std::string_view) { return false; };
    CHECK_THAT(refusal(p4("\x8c\x08" "builtins\x8c\x08KeyError\x93"), none), Catch::Contains("forbidden"));
}

TEST_CASE("pickle: deep nesting is refused without exhausting the stack", "[pickle]") {
    // 100,000 nested lists: EMPTY_LIST x N, then APPEND x (N-1).
    const std::size_t n = 100000;
    std::string deep = p4(std::string(n, ']') + std::string(n - 1, 'a'));
    CHECK_THAT(refusal(deep), Catch::Contains("nested deeper than 512"));
    // The same depth through tuples (each built from the one before).
    std::string tuples = std::string("\x80\x04", 2) + ")";
    for (std::size_t k = 0; k < n; ++k) tuples += "\x85";
    CHECK_THAT(refusal(tuples + "."), Catch::Contains("nested deeper"));
    // 512 levels are fine.
    CHECK_NOTHROW(pk::loads(p4(std::string(512, ']') + std::string(511, 'a'))));
    // The writer refuses what the reader would.
    pk::value v;
    for (int k = 0; k < 600; ++k) v = pk::value::seq(pk::value::kind::list, {std::move(v)});
    CHECK_THROWS_AS(pk::dumps(v), pk::PicklingError);
}

TEST_CASE("pickle: recursive structures and memo expansion are refused", "[pickle]") {
    // l = []; l.append(l)
    CHECK_THAT(refusal(p4("]\x94h\x00" "a"s)), Catch::Contains("recursive"));
    // d = {}; d['x'] = [d]
    CHECK_THAT(refusal(p4("}\x94\x8c\x01xh\x00\x85s"s)), Catch::Contains("recursive"));
    // Shared references are copied, as a tree: [a, a] with a = [1, 2].
    pk::value shared = pk::loads(p4("](]\x94(K\x01K\x02" "eh\x00" "e"s));
    CHECK(repr(pk::to_object(shared)) == "[[1, 2], [1, 2]]");
    // But 30 levels of t = (t, t) would be 2**30 copies: refused, in bounded time.
    std::string laughs = std::string("\x80\x04", 2) + "N\x94";
    for (int k = 0; k < 30; ++k) laughs += "0h" + le(static_cast<std::uint64_t>(k), 1) + "h" + le(static_cast<std::uint64_t>(k), 1) + "\x86\x94";
    CHECK_THAT(refusal(laughs + "."), Catch::Contains("expand beyond the limit"));
    CHECK_THAT(refusal(p4("h\x07")), Catch::Contains("never stored"));
}

TEST_CASE("pickle: malformed streams name what is wrong", "[pickle]") {
    CHECK_THAT(refusal(std::string("\x80\x06N.")), Catch::Contains("protocol: 6"));
    CHECK_THAT(refusal(p4("NN")), Catch::Contains("2 items on the stack"));
    CHECK_THAT(refusal(p4("a")), Catch::Contains("underflow"));
    CHECK_THAT(refusal(p4("(Ne")), Catch::Contains("underflow"));
    CHECK_THAT(refusal(p4("Ne")), Catch::Contains("no MARK"));
    CHECK_THAT(refusal(p4("(N")), Catch::Contains("on the stack"));
    CHECK_THAT(refusal(p4("NK\x01" "a")), Catch::Contains("APPEND on a value that is not a list"));
    CHECK_THAT(refusal(p4("]NNs")), Catch::Contains("SETITEM on a value that is not a dict"));
    CHECK_THAT(refusal(p4("N)R")), Catch::Contains("not a global"));
    CHECK_THAT(refusal(p4("\x8c\x02\xc3\x28")), Catch::Contains("UTF-8"));
    CHECK_THAT(refusal(p4("\x8c\x04\xf4\x90\x80\x80")), Catch::Contains("UTF-8"));  // above U+10FFFF
    CHECK_THAT(refusal(p4("\x8c\x02\xc0\x80")), Catch::Contains("UTF-8"));          // overlong NUL
    CHECK_THAT(refusal(p4("U\x01\xe9")), Catch::Contains("ASCII"));
    CHECK_THAT(refusal(p4("P")), Catch::Contains("persistent"));
    CHECK_THAT(refusal(p4("\x97")), Catch::Contains("out-of-band"));
    CHECK_THAT(refusal(p4("N") + "N"), Catch::Contains("after STOP"));
    CHECK_THAT(refusal(p4("Fnot-a-float\n")), Catch::Contains("float"));
    // Encoded surrogates are accepted, as CPython's surrogatepass reads them.
    CHECK(pk::loads(p4("\x8c\x03\xed\xa0\x80")) == pk::value::str("\xed\xa0\x80"));
}

TEST_CASE("pickle: the writer refuses what CPython could not read", "[pickle]") {
    CHECK_THROWS_AS(pk::dumps(pk::value::str("\xff")), pk::PicklingError);
    pk::value odd = pk::value::seq(pk::value::kind::dict, {pk::value::integer(1)});
    CHECK_THROWS_AS(pk::dumps(odd), pk::PicklingError);
    pk::value inst = pk::value::instance(pk::value::str("not a global"), pk::value::seq(pk::value::kind::tuple, {}));
    CHECK_THROWS_AS(pk::dumps(inst), pk::PicklingError);
}

TEST_CASE("pickle: objects convert both ways, and sets and proxies are named as unsupported", "[pickle]") {
    object o = object::list({1, "x", 2.5, object::dict({{"a", nullptr}, {1, object::tuple({true})}}),
                             multiprocessing::bytes{"\x00"}});
    CHECK(pk::to_object(pk::loads(pk::dumps(pk::from_object(o)))) == o);
    // Duplicate keys in a pickled dict: the last wins, as in Python.
    pk::value d = pk::loads(p4("}(K\x01K\x02K\x01K\x03u"));
    CHECK(repr(pk::to_object(d)) == "{1: 3}");
    pk::value s = pk::loads(p4("\x8f(K\x01\x90"));
    CHECK_THROWS_WITH(pk::to_object(s), Catch::Contains("set cannot be held"));
    // An unhashable key: Python's loads raises TypeError too.
    CHECK_THROWS_AS(pk::to_object(pk::loads(p4("}]N" "s"))), multiprocessing::TypeError);
}

TEST_CASE("pickle: what the writer writes, the reader reads back within its budget", "[pickle]") {
    // 5,000 distinct empty lists: one unmemoized byte each on the wire.
    std::vector<pk::value> lists(5000, pk::value::seq(pk::value::kind::list, {}));
    pk::value v = pk::value::seq(pk::value::kind::list, lists);
    CHECK(pk::loads(pk::dumps(v)) == v);
    std::vector<pk::value> dicts(5000, pk::value::seq(pk::value::kind::dict, {}));
    pk::value d = pk::value::seq(pk::value::kind::tuple, dicts);
    CHECK(pk::loads(pk::dumps(d)) == d);
}

TEST_CASE("pickle: a long global name repeated by reference counts against the budget", "[pickle]") {
    // STACK_GLOBAL of a 20,000-byte allowed name, memoized, then 5,000 GETs:
    // each copy of the name in the tree is counted (it was not: 3,350x).
    std::string name(20000, 'A');  // the default allows 64 at most; a client reading replies allows any
    name += "Proxy";
    std::string body = "\x8c\x18multiprocessing.managers" "X"s + le(name.size(), 4) + name + "\x93\x94" "0](" "";
    for (int k = 0; k < 5000; ++k) body += "h\x00"s;
    body += "e";
    pk::limits any;
    any.allowed = [](std::string_view, std::string_view) { return true; };
    CHECK_THAT(refusal(p4(body), any), Catch::Contains("expand beyond the limit"));
    CHECK_THAT(refusal(p4(body)), Catch::Contains("forbidden"));
}

TEST_CASE("pickle: text opcodes read as CPython reads them", "[pickle]") {
    // 'I' is C's strtol(s, 0): octal and hex, and a 2-character 0 or 1 is a bool.
    CHECK(pk::loads(std::string("I010\n.")) == pk::value::integer(8));
    CHECK(pk::loads(std::string("I0x10\n.")) == pk::value::integer(16));
    CHECK(pk::loads(std::string("I+1\n.")) == pk::value::boolean(true));
    CHECK(pk::loads(std::string("I00\n.")) == pk::value::boolean(false));
    CHECK(pk::loads(std::string("I-5\n.")) == pk::value::integer(-5));
    CHECK_THAT(refusal("I99999999999999999999\n."), Catch::Contains("beyond 64 bits"));
    // 'L' is a Python literal: no leading zeros.
    CHECK_THAT(refusal("L010L\n."), Catch::Contains("leading zeros"));
    CHECK(pk::loads(std::string("L0x10L\n.")) == pk::value::integer(16));
    CHECK(pk::loads(std::string("L00L\n.")) == pk::value::integer(0));
    // 'F' in the "C" locale's format, with a sign; out of range is refused, as CPython does.
    CHECK(pk::loads(std::string("F+1.5\n.")) == pk::value::floating(1.5));
    CHECK(pk::loads(std::string("F-2.5e-3\n.")) == pk::value::floating(-2.5e-3));
    CHECK_THAT(refusal("F1e500\n."), Catch::Contains("out of range"));
    CHECK_THAT(refusal("F1,5\n."), Catch::Contains("malformed float"));
    // A negative PUT key is refused, as CPython refuses it.
    CHECK_THAT(refusal("Np-1\n."), Catch::Contains("negative PUT"));
}

TEST_CASE("a GLOBAL whose name is not UTF-8 is refused, as CPython refuses it", "[pickle]") {
    // Found by fuzz_pickle: accepted, it was written back as a str that no
    // reader accepts.
    std::string p = "\x80\x03" "cmultiprocessing.managers\nErro\xc8\xff\xff\xffoteProxy\nq\x00"s +
                    "X\x02\x00\x00\x00tbq\x01\x85q*Rq\x03."s;
    CHECK_THROWS_AS(pk::loads(p), pk::UnpicklingError);
    CHECK_THROWS_AS(pk::loads("\x80\x03" "cmultiprocessing.managers\xff\nRemoteError\n."s), pk::UnpicklingError);
}

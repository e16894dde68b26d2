// multiprocessing::object: a dynamic value for programs that mix types the
// way Python does (the default element type of SyncManager's dict() and
// list()).  None, bool, int, float, str, bytes, tuple, list and dict, with
// Python's equality, hashing (1 == 1.0 == True, one dict key), ordering
// rules, repr() and `+=`.  Ints and floats compare exactly (2**53 + 1 is not
// 2.0**53), and numbers hash with CPython's numeric hash, so equal values
// hash equal whatever their type.  An object can also hold a proxy
// (Python's d['x'] = manager.list()): see as_proxy().
#pragma once

#include "multiprocessing/detail/config.hpp"
#include "multiprocessing/detail/py_repr.hpp"
#include "multiprocessing/exceptions.hpp"

#include <boost/serialization/level.hpp>
#include <boost/serialization/split_member.hpp>
#include <boost/serialization/tracking.hpp>
#include <boost/serialization/string.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace multiprocessing {

/// Python's bytes: raw bytes that print as b'...'.
struct bytes {
    std::string data;
    friend bool operator==(const bytes& a, const bytes& b) { return a.data == b.data; }
    friend bool operator<(const bytes& a, const bytes& b) { return a.data < b.data; }
};

class object;

namespace detail {
std::size_t hash_object(const object& o);
std::int64_t py_hash(const object& o);
}

namespace managers::detail {
struct ref_entry;

/// A reference to an object a CPython manager owns (PythonProxy's shared
/// state), as an object holds it: object.hpp does not include that client.
struct python_ref {
    virtual ~python_ref() = default;
    virtual std::string type_name() const = 0;  // DictProxy, AutoProxy[Foo]...
    virtual std::string repr() const = 0;
    virtual bool same(const python_ref& other) const = 0;  // the same shared object
    virtual std::uint64_t hash_id() const = 0;
};

/// Whether P is a CPython manager's proxy type (has _from_python_ref).
template <class P, class = void>
struct is_python_proxy : std::false_type {};
template <class P>
struct is_python_proxy<P, std::void_t<decltype(P::_from_python_ref(std::shared_ptr<python_ref>()))>> : std::true_type {};

/// How an object holding a proxy reaches the managers code (object.hpp does
/// not include it): filled in by managers.hpp before main().
struct object_proxy_hooks {
    std::string (*type_name)(const ref_entry&) = nullptr;   // ListProxy, AutoProxy[Foo]...
    std::string (*repr)(const ref_entry&) = nullptr;
    std::uint64_t (*id)(const ref_entry&) = nullptr;
    bool (*same)(const ref_entry&, const ref_entry&) = nullptr;  // the same shared object
    void (*token)(const ref_entry&, std::string& typeid_, std::string& address, std::uint64_t& id) = nullptr;
    std::shared_ptr<ref_entry> (*acquire)(const std::string& typeid_, const std::string& address,
                                          std::uint64_t id) = nullptr;
    static object_proxy_hooks& instance() {
        static object_proxy_hooks h;
        return h;
    }
};
}  // namespace managers::detail

/// A dynamic, Python-like value.  Differs from Python: int is 64-bit (no
/// big integers: an int result out of range raises OverflowError), and a
/// dict keeps insertion order but deletes in O(n).  A held proxy is equal
/// to another naming the same shared object (Python: only to itself), and
/// len() or iteration on it raise TypeError (Python forwards them).
class object {
public:
    struct tuple_t { std::vector<object> items; };
    struct list_t { std::vector<object> items; };
    /// A dict's entries and their index, kept on the heap: inline they made
    /// every object 120 bytes, so a list of small values cost 30x its wire
    /// size in the server.  Copies are deep.
    struct dict_t {
        struct data {
            std::vector<std::pair<object, object>> items;
            std::unordered_map<object, std::size_t, std::function<std::size_t(const object&)>> index{
                0, [](const object& o) { return detail::hash_object(o); }};
        };
        dict_t() : p_(std::make_unique<data>()) {}
        dict_t(const dict_t& o) : p_(std::make_unique<data>(*o)) {}
        dict_t(dict_t&& o) noexcept = default;
        dict_t& operator=(const dict_t& o);
        dict_t& operator=(dict_t&& o) noexcept = default;
        // A moved-from dict reads as empty and comes back to life on a write.
        data* operator->();
        const data* operator->() const { return p_ ? p_.get() : &empty(); }
        const data& operator*() const { return *operator->(); }

    private:
        static const data& empty();
        std::unique_ptr<data> p_;
    };
    /// A proxy held as a value (Python's `d['x'] = manager.list()`): the
    /// shared reference its proxies use, on the heap so object stays small.
    /// Exactly one is set: ref for a C++ manager's object, py for a CPython
    /// manager's (managers::PythonProxy).
    struct proxy_t {
        std::shared_ptr<managers::detail::ref_entry> ref;
        std::shared_ptr<managers::detail::python_ref> py;
    };
    enum class kind { none, boolean, integer, floating, str, bytes, tuple, list, dict, proxy };

    object() = default;
    object(std::nullptr_t) {}
    object(bool b) : v_(b) {}
    template <class I, std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool> && !std::is_same_v<I, char>, int> = 0>
    object(I i) : v_(static_cast<std::int64_t>(i)) {}
    object(double d) : v_(d) {}
    object(float f) : v_(static_cast<double>(f)) {}
    object(const char* s) : v_(std::string(s)) {}
    object(std::string s) : v_(std::move(s)) {}
    object(multiprocessing::bytes b) : v_(std::move(b)) {}
    /// Refuses any other pointer at compile time: it would convert to bool
    /// (True), and what it points to cannot cross to another process.
    template <class P, std::enable_if_t<!std::is_same_v<std::remove_cv_t<P>, char>, int> = 0>
    object(P*) {
        static_assert(sizeof(P*) == 0,
                      "multiprocessing: a pointer cannot be sent to another process (it would arrive as True); "
                      "send the value it points to");
    }
    template <class M, class C>
    object(M C::*) {
        static_assert(sizeof(M C::*) == 0,
                      "multiprocessing: a pointer to member cannot be sent to another process (it would arrive as "
                      "True); send a value");
    }

    /// Python's (a, b, ...).
    static object tuple(std::vector<object> items = {}) { object o; o.v_ = tuple_t{std::move(items)}; return o; }
    /// Python's [a, b, ...].
    static object list(std::vector<object> items = {}) { object o; o.v_ = list_t{std::move(items)}; return o; }
    /// Python's {k: v, ...}; later duplicates of a key win, as in Python.
    static object dict(std::initializer_list<std::pair<object, object>> items = {});

    kind type() const { return static_cast<kind>(v_.index()); }
    /// Python's type(x).__name__ (a proxy's class name: ListProxy, ...).
    std::string type_name() const;
    bool is_none() const { return type() == kind::none; }
    bool is_bool() const { return type() == kind::boolean; }
    bool is_int() const { return type() == kind::integer; }
    bool is_float() const { return type() == kind::floating; }
    bool is_str() const { return type() == kind::str; }
    bool is_proxy() const { return type() == kind::proxy; }

    /// An object holding a proxy (what `d['x'] = manager.list()` stores).
    /// P is any proxy type, e.g. ListProxy<>; an empty proxy gives None.
    template <class P, std::enable_if_t<std::is_same_v<decltype(std::declval<const P&>().ref_),
                                                       std::shared_ptr<managers::detail::ref_entry>>, int> = 0>
    object(const P& proxy) {
        if (proxy.ref_) v_ = proxy_t{proxy.ref_, nullptr};
    }
    /// An object holding a proxy of a CPython manager's object (a
    /// managers::PythonProxy), to pass to that manager: Python's
    /// `d['x'] = manager.list()` is `d._callmethod("__setitem__", {"x", l})`.
    template <class P, std::enable_if_t<std::is_same_v<decltype(std::declval<const P&>()._python_ref()),
                                                       std::shared_ptr<managers::detail::python_ref>>, int> = 0>
    object(const P& proxy) {
        if (auto r = proxy._python_ref()) v_ = proxy_t{nullptr, std::move(r)};
    }
    /// The proxy this object holds, as proxy type P (e.g. ListProxy<>, or
    /// PythonProxy for a CPython manager's object):
    /// Python's `d['x'].append(1)` is `d["x"].get().as_proxy<ListProxy<>>().append(1)`.
    /// TypeError if it holds no proxy, a CPython manager's proxy as a C++
    /// one or the reverse, or (for the library's containers) a proxy of
    /// another type.
    template <class P>
    P as_proxy() const {
        const proxy_t& p = get<proxy_t>("proxy");
        if constexpr (managers::detail::is_python_proxy<P>::value) {
            if (!p.py) throw TypeError("this object holds a proxy of a C++ manager, not a PythonProxy");
            return P::_from_python_ref(p.py);
        } else {
            if (!p.ref) throw TypeError("this object holds a proxy of a CPython manager: take it as a PythonProxy");
            return P::template _from_entry<P>(p.ref);
        }
    }
    /// Internal: an object holding a proxy of the shared object (typeid_,
    /// address as the managers encode it, id); this process takes its own
    /// reference (Python's RebuildProxy).
    static object _proxy_of(const std::string& typeid_, const std::string& address, std::uint64_t id);
    /// Internal: the token of the held proxy (TypeError if none).
    void _proxy_token(std::string& typeid_, std::string& address, std::uint64_t& id) const;
    /// Internal: the reference of a held CPython manager's proxy, or null.
    const std::shared_ptr<managers::detail::python_ref>* python_ref() const;
    /// The shared reference of a held proxy, or null (used by the server's
    /// cycle collector).
    const std::shared_ptr<managers::detail::ref_entry>* proxy_ref() const;

    bool as_bool() const { return get<bool>("bool"); }
    std::int64_t as_int() const;
    double as_float() const;
    const std::string& as_str() const { return get<std::string>("str"); }
    const multiprocessing::bytes& as_bytes() const { return get<multiprocessing::bytes>("bytes"); }
    const std::vector<object>& items() const;
    std::vector<object>& items();
    const std::vector<std::pair<object, object>>& dict_items() const { return get<dict_t>("dict")->items; }

    /// len(x) for str, bytes, tuple, list and dict.
    std::size_t size() const;

    /// x[k] for a dict (KeyError) or x[i] for a tuple/list (IndexError).
    const object& operator[](const object& k) const;
    /// d[k] = v on a dict value.
    void setitem(const object& k, const object& v);

    friend bool operator==(const object& a, const object& b) { return equal(a, b); }
    friend bool operator!=(const object& a, const object& b) { return !equal(a, b); }
    /// Python's ordering; TypeError where Python raises it.  Each operator
    /// is Python's own (nan makes all four false; none is the negation of
    /// another).
    friend bool operator<(const object& a, const object& b) { return compare(a, b, op_lt); }
    friend bool operator>(const object& a, const object& b) { return compare(a, b, op_gt); }
    friend bool operator<=(const object& a, const object& b) { return compare(a, b, op_le); }
    friend bool operator>=(const object& a, const object& b) { return compare(a, b, op_ge); }

    /// Python's `x += y` (int, float and bool add; str, bytes and tuple
    /// concatenate; a list extends by any iterable), with Python's TypeError
    /// messages.  An int result outside 64 bits raises OverflowError.  On
    /// an exception x is unchanged.
    object& operator+=(const object& y);
    /// Python's `x + y`.
    friend object operator+(const object& x, const object& y) { return add(x, y, false); }

    /// Python's iter(x) materialized: the items of a tuple or list, the
    /// keys of a dict, the characters of a str, the byte values of bytes.
    std::vector<object> iterate() const;

    /// Python's repr(x).
    friend std::string repr(const object& o) { return o.repr_(); }
    friend std::ostream& operator<<(std::ostream& os, const object& o) { return os << o.repr_(); }

    template <class Ar>
    void save(Ar& ar, unsigned) const {
        int tag = static_cast<int>(v_.index());
        ar << tag;
        switch (type()) {
        case kind::none: break;
        case kind::boolean: { bool b = std::get<bool>(v_); ar << b; break; }
        case kind::integer: ar << std::get<std::int64_t>(v_); break;
        case kind::floating: ar << std::get<double>(v_); break;
        case kind::str: ar << std::get<std::string>(v_); break;
        case kind::bytes: ar << std::get<multiprocessing::bytes>(v_).data; break;
        case kind::tuple: case kind::list: {
            auto& v = items();
            std::uint64_t n = v.size();
            ar << n;
            for (auto& x : v) ar << x;
            break;
        }
        case kind::dict: {
            auto& d = dict_items();
            std::uint64_t n = d.size();
            ar << n;
            for (auto& kv : d) ar << kv.first << kv.second;
            break;
        }
        case kind::proxy: {
            // Its token; the receiving process takes its own reference.
            std::string tid, addr;
            std::uint64_t id = 0;
            hooks().token(cpp_ref(), tid, addr, id);
            ar << tid << addr << id;
            break;
        }
        }
    }
    template <class Ar>
    void load(Ar& ar, unsigned) {
        // Nesting is bounded so forged input cannot exhaust the stack.
        static thread_local int depth = 0;
        struct guard {
            guard() { if (++depth > 200) { --depth; throw ValueError("object nested too deeply"); } }
            ~guard() { --depth; }
        } g;
        int tag = 0;
        ar >> tag;
        switch (static_cast<kind>(tag)) {
        case kind::none: v_ = std::monostate{}; break;
        case kind::boolean: { bool b; ar >> b; v_ = b; break; }
        case kind::integer: { std::int64_t i; ar >> i; v_ = i; break; }
        case kind::floating: { double d; ar >> d; v_ = d; break; }
        case kind::str: { std::string s; ar >> s; v_ = std::move(s); break; }
        case kind::bytes: { std::string s; ar >> s; v_ = multiprocessing::bytes{std::move(s)}; break; }
        case kind::tuple: case kind::list: {
            std::uint64_t n;
            ar >> n;
            std::vector<object> v;
            for (std::uint64_t i = 0; i < n; ++i) { object x; ar >> x; v.push_back(std::move(x)); }
            if (static_cast<kind>(tag) == kind::tuple) v_ = tuple_t{std::move(v)};
            else v_ = list_t{std::move(v)};
            break;
        }
        case kind::dict: {
            std::uint64_t n;
            ar >> n;
            v_ = dict_t{};
            for (std::uint64_t i = 0; i < n; ++i) {
                object k, v;
                ar >> k >> v;
                setitem(k, v);
            }
            break;
        }
        case kind::proxy: {
            std::string tid, addr;
            std::uint64_t id = 0;
            ar >> tid >> addr >> id;
            if (!hooks().acquire) throw ValueError("an object holding a proxy needs <multiprocessing/managers.hpp>");
            v_ = proxy_t{hooks().acquire(tid, addr, id), nullptr};
            break;
        }
        default: throw ValueError("bad object tag " + std::to_string(tag));
        }
    }
    BOOST_SERIALIZATION_SPLIT_MEMBER()

private:
    static const managers::detail::object_proxy_hooks& hooks() { return managers::detail::object_proxy_hooks::instance(); }
    // The held proxy of a C++ manager: what crosses to one (a CPython
    // manager's proxy cannot, as its token means nothing there).
    const managers::detail::ref_entry& cpp_ref() const;
    template <class T>
    const T& get(const char* want) const {
        if (auto* p = std::get_if<T>(&v_)) return *p;
        throw TypeError("expected " + std::string(want) + ", got '" + type_name() + "'");
    }
    template <class T>
    T& get(const char* want) {
        if (auto* p = std::get_if<T>(&v_)) return *p;
        throw TypeError("expected " + std::string(want) + ", got '" + type_name() + "'");
    }
    bool is_number() const { return is_bool() || is_int() || is_float(); }

    enum cmp_op { op_lt, op_le, op_gt, op_ge };

    /// Three-way comparison of two numbers, exact across int and float as in
    /// Python; 2 when a nan makes them unordered.
    static int num_cmp(const object& a, const object& b);
    /// i <=> d with no rounding of i; 2 for nan.
    static int int_float_cmp(std::int64_t i, double d);

    static bool equal(const object& a, const object& b);

    template <class T>
    static bool apply(const T& x, const T& y, cmp_op op) {
        switch (op) {
        case op_lt: return x < y;
        case op_le: return !(y < x);
        case op_gt: return y < x;
        case op_ge: return !(x < y);
        }
        return false;
    }

    /// Python's rich comparison a OP b for <, <=, > and >=.
    static bool compare(const object& a, const object& b, cmp_op op);

    static object add(const object& a, const object& b, bool inplace);

    std::string repr_() const;

    std::variant<std::monostate, bool, std::int64_t, double, std::string, multiprocessing::bytes, tuple_t, list_t, dict_t,
                 proxy_t>
        v_;
};

/// Python's repr(x).
std::string repr(const object& o);

/// Python's None.
inline const object None{};

/// Python's range(stop) and range(start, stop): a list of ints.
inline std::vector<object> range(std::int64_t start, std::int64_t stop) {
    std::vector<object> v;
    for (std::int64_t i = start; i < stop; ++i) v.emplace_back(i);
    return v;
}
inline std::vector<object> range(std::int64_t stop) { return range(0, stop); }

namespace detail {

/// CPython's hash of an int (sys.hash_info: modulus 2**61 - 1).
inline std::int64_t py_hash_int(std::int64_t i) {
    constexpr std::uint64_t P = (std::uint64_t{1} << 61) - 1;
    std::uint64_t mag = i < 0 ? std::uint64_t{0} - static_cast<std::uint64_t>(i) : static_cast<std::uint64_t>(i);
    auto h = static_cast<std::int64_t>(mag % P);
    if (i < 0) h = -h;
    return h == -1 ? -2 : h;
}

/// CPython's hash of a float: the hash of the rational it is exactly, so
/// an integral float hashes like the equal int.  (CPython hashes nan by
/// identity; here every nan hashes 0.)
inline std::int64_t py_hash_float(double d) {
    if (std::isinf(d)) return d > 0 ? 314159 : -314159;
    if (std::isnan(d)) return 0;
    constexpr std::uint64_t P = (std::uint64_t{1} << 61) - 1;
    int e = 0;
    double m = std::frexp(std::fabs(d), &e);                          // |d| = m * 2**e, 0.5 <= m < 1
    auto mant = static_cast<std::uint64_t>(std::ldexp(m, 53));       // |d| = mant * 2**(e - 53), exactly
    int r = ((e - 53) % 61 + 61) % 61;                                // 2**61 == 1 (mod P)
    std::uint64_t x = mant;                                           // < 2**53 < P
    if (r) x = ((x << r) & P) | (x >> (61 - r));                      // x * 2**r (mod P)
    auto h = static_cast<std::int64_t>(x);
    if (d < 0) h = -h;
    return h == -1 ? -2 : h;
}

/// Python's hash(x): CPython's values for None, bool, int, float and
/// tuples of those (str and bytes hash differently, unrandomized); list
/// and dict are unhashable.
inline std::int64_t py_hash(const object& o) {
    switch (o.type()) {
    case object::kind::none: return 0xFCA86420;  // CPython 3.12+: a constant
    case object::kind::boolean: case object::kind::integer: return py_hash_int(o.as_int());
    case object::kind::floating: return py_hash_float(o.as_float());
    case object::kind::str: return static_cast<std::int64_t>(std::hash<std::string>{}(o.as_str()) >> 1);
    case object::kind::bytes: return static_cast<std::int64_t>((std::hash<std::string>{}(o.as_bytes().data) ^ 0x51ed27) >> 1);
    case object::kind::tuple: {
        // CPython's tuple hash (an xxHash variant over the items' hashes).
        constexpr std::uint64_t p1 = 11400714785074694791ULL, p2 = 14029467366897019727ULL,
                                p5 = 2870177450012600261ULL;
        std::uint64_t acc = p5;
        for (auto& x : o.items()) {
            acc += static_cast<std::uint64_t>(py_hash(x)) * p2;
            acc = (acc << 31) | (acc >> 33);
            acc *= p1;
        }
        acc += o.items().size() ^ (p5 ^ 3527539ULL);
        if (acc == ~std::uint64_t{0}) return 1546275796;
        return static_cast<std::int64_t>(acc);
    }
    case object::kind::proxy:  // by the shared object it names (Python: by identity)
        if (auto py = o.python_ref()) return py_hash_int(static_cast<std::int64_t>((*py)->hash_id()));
        return py_hash_int(static_cast<std::int64_t>(managers::detail::object_proxy_hooks::instance().id(**o.proxy_ref())));
    default: throw TypeError("unhashable type: '" + o.type_name() + "'");
    }
}

/// Equal values hash equal, across bool, int and float, as in Python;
/// list and dict are unhashable.
inline std::size_t hash_object(const object& o) { return static_cast<std::size_t>(py_hash(o)); }

}  // namespace detail
}  // namespace multiprocessing

// No class id, version or tracking on the wire: objects are plain values.
BOOST_CLASS_IMPLEMENTATION(multiprocessing::object, boost::serialization::object_serializable)
BOOST_CLASS_TRACKING(multiprocessing::object, boost::serialization::track_never)

// Lets object be a key of std::unordered_map (and of a shared dict).
// Doxygen cannot place a specialisation in std, so it skips this one.
/// \cond
template <>
struct std::hash<multiprocessing::object> {
    std::size_t operator()(const multiprocessing::object& o) const { return multiprocessing::detail::hash_object(o); }
};
/// \endcond

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/object.ipp"
#endif

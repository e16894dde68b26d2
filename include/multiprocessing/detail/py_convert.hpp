// Between pickle values (what a CPython client sends) and the typed C++
// values of exposed methods: how a C++ server serves Python clients.
//
// Each exposed signature gets two small functions: one turns the Python
// arguments into the request body the method's normal invoke reads, the
// other turns the normal reply body into a Python value.  So a Python call
// takes the same path to the object as a C++ call.
#pragma once

#include "multiprocessing/detail/archive.hpp"
#include "multiprocessing/detail/pickle_object.hpp"
#include "multiprocessing/exceptions.hpp"
#include "multiprocessing/object.hpp"

#include <cstdint>
#include <deque>
#include <limits>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace multiprocessing::detail::pickle {

/// py_conv<T>::ok says whether T has a Python form; from() reads one
/// (TypeError or OverflowError if the value does not fit), to() writes one.
/// A user type gets one by providing, found by argument-dependent lookup,
/// `pickle::value mp_to_python(const T&)` and
/// `T mp_from_python(std::type_identity-like tag<T>, const pickle::value&)`.
template <class T, class = void>
struct py_conv {
    static constexpr bool ok = false;
};

template <class T>
struct tag {};

inline const char* kind_name(value::kind k) {
    switch (k) {
        case value::kind::none: return "NoneType";
        case value::kind::boolean: return "bool";
        case value::kind::integer: return "int";
        case value::kind::floating: return "float";
        case value::kind::str: return "str";
        case value::kind::bytes: return "bytes";
        case value::kind::tuple: return "tuple";
        case value::kind::list: return "list";
        case value::kind::dict: return "dict";
        case value::kind::set: return "set";
        case value::kind::frozenset: return "frozenset";
        case value::kind::global: return "global";
        case value::kind::instance: return "instance";
    }
    return "?";
}

[[noreturn]] inline void py_type_error(const char* want, const value& v) {
    throw TypeError(std::string("expected ") + want + ", got '" + kind_name(v.k) + "'");
}

template <>
struct py_conv<bool> {
    static constexpr bool ok = true;
    static bool from(const value& v) {
        if (v.k == value::kind::boolean) return v.b;
        if (v.k == value::kind::integer) return v.i != 0;
        py_type_error("bool", v);
    }
    static value to(bool b) { return value::boolean(b); }
};

template <class I>
struct py_conv<I, std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool>>> {
    static constexpr bool ok = true;
    static I from(const value& v) {
        std::int64_t i;
        if (v.k == value::kind::integer) i = v.i;
        else if (v.k == value::kind::boolean) i = v.b;
        else py_type_error("int", v);
        if constexpr (std::is_unsigned_v<I>) {
            if (i < 0 || static_cast<std::uint64_t>(i) > std::numeric_limits<I>::max())
                throw OverflowError("int " + std::to_string(i) + " out of range for the C++ parameter");
        } else {
            if (i < std::numeric_limits<I>::min() || i > std::numeric_limits<I>::max())
                throw OverflowError("int " + std::to_string(i) + " out of range for the C++ parameter");
        }
        return static_cast<I>(i);
    }
    static value to(I i) {
        if constexpr (std::is_unsigned_v<I> && sizeof(I) >= sizeof(std::int64_t))
            if (i > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
                throw OverflowError("a result beyond 64-bit signed int has no Python form here");
        return value::integer(static_cast<std::int64_t>(i));
    }
};

template <class F>
struct py_conv<F, std::enable_if_t<std::is_floating_point_v<F>>> {
    static constexpr bool ok = true;
    static F from(const value& v) {
        if (v.k == value::kind::floating) return static_cast<F>(v.f);
        if (v.k == value::kind::integer) return static_cast<F>(v.i);
        if (v.k == value::kind::boolean) return static_cast<F>(v.b);
        py_type_error("float", v);
    }
    static value to(F f) { return value::floating(static_cast<double>(f)); }
};

template <>
struct py_conv<std::string> {
    static constexpr bool ok = true;
    static std::string from(const value& v) {
        if (v.k != value::kind::str) py_type_error("str", v);
        return v.s;
    }
    static value to(const std::string& s) {
        if (!detail_::valid_utf8(s)) return value::bytes(s);  // Python's str must be text
        return value::str(s);
    }
};

template <>
struct py_conv<multiprocessing::bytes> {
    static constexpr bool ok = true;
    static multiprocessing::bytes from(const value& v) {
        if (v.k != value::kind::bytes) py_type_error("bytes", v);
        return {v.s};
    }
    static value to(const multiprocessing::bytes& b) { return value::bytes(b.data); }
};

/// How this thread's conversions of `object` treat proxies (a Python
/// proxy's RebuildProxy, a held C++ proxy): set by the server around a
/// CPython client's call; unset, both are TypeErrors.
struct object_proxy_conversion {
    const instance_fn* from = nullptr;
    const proxy_fn* to = nullptr;
    static object_proxy_conversion& current() {
        static thread_local object_proxy_conversion c;
        return c;
    }
};

template <>
struct py_conv<object> {
    static constexpr bool ok = true;
    static object from(const value& v) { return to_object(v, object_proxy_conversion::current().from); }
    static value to(const object& o) { return from_object(o, object_proxy_conversion::current().to); }
};

template <class T>
struct py_conv<std::optional<T>, std::enable_if_t<py_conv<T>::ok>> {
    static constexpr bool ok = true;
    static std::optional<T> from(const value& v) {
        if (v.k == value::kind::none) return std::nullopt;
        return py_conv<T>::from(v);
    }
    static value to(const std::optional<T>& o) { return o ? py_conv<T>::to(*o) : value(); }
};

// A byte buffer is Python's bytes.
template <class C>
struct py_byte_buffer {
    static constexpr bool ok = true;
    static C from(const value& v) {
        if (v.k != value::kind::bytes) py_type_error("bytes", v);
        return C(v.s.begin(), v.s.end());
    }
    static value to(const C& c) { return value::bytes(std::string(c.begin(), c.end())); }
};
template <class A>
struct py_conv<std::vector<char, A>> : py_byte_buffer<std::vector<char, A>> {};
template <class A>
struct py_conv<std::vector<unsigned char, A>> : py_byte_buffer<std::vector<unsigned char, A>> {};

inline bool is_sequence(const value& v) { return v.k == value::kind::list || v.k == value::kind::tuple; }
inline bool is_setlike(const value& v) { return v.k == value::kind::set || v.k == value::kind::frozenset; }

template <class X> struct py_is_pair : std::false_type {};
template <class X, class Y> struct py_is_pair<std::pair<X, Y>> : std::true_type {};

// A sequence: from a list or tuple (a vector of pairs also from a dict's
// items), to a list.
template <class C, class E>
struct py_sequence {
    static constexpr bool ok = true;
    static C from(const value& v) {
        C c;
        if constexpr (py_is_pair<E>::value) {
            if (v.k == value::kind::dict) {
                for (std::size_t i = 0; i + 1 < v.items.size(); i += 2)
                    c.insert(c.end(), E(py_conv<std::remove_const_t<typename E::first_type>>::from(v.items[i]),
                                        py_conv<typename E::second_type>::from(v.items[i + 1])));
                return c;
            }
        }
        if (!is_sequence(v) && !is_setlike(v)) py_type_error("list", v);
        for (auto& x : v.items) c.insert(c.end(), py_conv<E>::from(x));
        return c;
    }
    static value to(const C& c) {
        std::vector<value> items;
        for (auto& x : c) items.push_back(py_conv<E>::to(x));
        return value::seq(value::kind::list, std::move(items));
    }
};
template <class T, class A>
struct py_conv<std::vector<T, A>, std::enable_if_t<py_conv<T>::ok && !std::is_same_v<T, char> &&
                                                    !std::is_same_v<T, unsigned char>>>
    : py_sequence<std::vector<T, A>, T> {};
template <class T, class A>
struct py_conv<std::deque<T, A>, std::enable_if_t<py_conv<T>::ok>> : py_sequence<std::deque<T, A>, T> {};
template <class T, class A>
struct py_conv<std::list<T, A>, std::enable_if_t<py_conv<T>::ok>> : py_sequence<std::list<T, A>, T> {};

// A set: from a set, frozenset, list or tuple, to a set.
template <class C, class E>
struct py_setlike {
    static constexpr bool ok = true;
    static C from(const value& v) {
        if (!is_sequence(v) && !is_setlike(v)) py_type_error("set", v);
        C c;
        for (auto& x : v.items) c.insert(py_conv<E>::from(x));
        return c;
    }
    static value to(const C& c) {
        std::vector<value> items;
        for (auto& x : c) items.push_back(py_conv<E>::to(x));
        return value::seq(value::kind::set, std::move(items));
    }
};
template <class T, class Cmp, class A>
struct py_conv<std::set<T, Cmp, A>, std::enable_if_t<py_conv<T>::ok>> : py_setlike<std::set<T, Cmp, A>, T> {};
template <class T, class H, class E, class A>
struct py_conv<std::unordered_set<T, H, E, A>, std::enable_if_t<py_conv<T>::ok>>
    : py_setlike<std::unordered_set<T, H, E, A>, T> {};

template <class C, class K, class V>
struct py_mapping {
    static constexpr bool ok = true;
    static C from(const value& v) {
        if (v.k != value::kind::dict) py_type_error("dict", v);
        C c;
        for (std::size_t i = 0; i + 1 < v.items.size(); i += 2)
            c[py_conv<K>::from(v.items[i])] = py_conv<V>::from(v.items[i + 1]);
        return c;
    }
    static value to(const C& c) {
        std::vector<value> items;
        for (auto& kv : c) {
            items.push_back(py_conv<K>::to(kv.first));
            items.push_back(py_conv<V>::to(kv.second));
        }
        return value::seq(value::kind::dict, std::move(items));
    }
};
template <class K, class V, class Cmp, class A>
struct py_conv<std::map<K, V, Cmp, A>, std::enable_if_t<py_conv<K>::ok && py_conv<V>::ok>>
    : py_mapping<std::map<K, V, Cmp, A>, K, V> {};
template <class K, class V, class H, class E, class A>
struct py_conv<std::unordered_map<K, V, H, E, A>, std::enable_if_t<py_conv<K>::ok && py_conv<V>::ok>>
    : py_mapping<std::unordered_map<K, V, H, E, A>, K, V> {};

template <class... T>
struct py_conv<std::tuple<T...>, std::enable_if_t<(py_conv<T>::ok && ...)>> {
    static constexpr bool ok = true;
    static std::tuple<T...> from(const value& v) {
        if (!is_sequence(v)) py_type_error("tuple", v);
        if (v.items.size() != sizeof...(T))
            throw TypeError("expected a tuple of " + std::to_string(sizeof...(T)) + " items, got " +
                            std::to_string(v.items.size()));
        return build(v, std::index_sequence_for<T...>{});
    }
    template <std::size_t... I>
    static std::tuple<T...> build(const value& v, std::index_sequence<I...>) {
        return std::tuple<T...>(py_conv<T>::from(v.items[I])...);
    }
    static value to(const std::tuple<T...>& t) {
        std::vector<value> items;
        std::apply([&](const auto&... x) { (items.push_back(py_conv<std::decay_t<decltype(x)>>::to(x)), ...); }, t);
        return value::tuple(std::move(items));
    }
};
template <class A, class B>
struct py_conv<std::pair<A, B>, std::enable_if_t<py_conv<A>::ok && py_conv<B>::ok>> {
    static constexpr bool ok = true;
    static std::pair<A, B> from(const value& v) {
        auto t = py_conv<std::tuple<A, B>>::from(v);
        return {std::move(std::get<0>(t)), std::move(std::get<1>(t))};
    }
    static value to(const std::pair<A, B>& p) {
        return value::tuple({py_conv<A>::to(p.first), py_conv<B>::to(p.second)});
    }
};

// A type with its own Python form (found by argument-dependent lookup).
template <class T>
struct py_conv<T, std::enable_if_t<std::is_same_v<decltype(mp_to_python(std::declval<const T&>())), value> &&
                                   std::is_same_v<decltype(mp_from_python(tag<T>{}, std::declval<const value&>())), T>>> {
    static constexpr bool ok = true;
    static T from(const value& v) { return mp_from_python(tag<T>{}, v); }
    static value to(const T& x) { return mp_to_python(x); }
};

/// Python positional arguments to a request body of wire types W...:
/// what the method's own invoke reads.
using args_fn = void (*)(const std::vector<value>& args, std::vector<char>& body);
/// A reply body of one result type to its Python value.
using result_fn = value (*)(const char* body, std::size_t n);

template <class... W, std::size_t... I>
void args_write(const std::vector<value>& args, std::vector<char>& body, std::index_sequence<I...>) {
    if constexpr (sizeof...(W) > 0) {
        std::tuple<W...> t{py_conv<W>::from(args[I])...};
        multiprocessing::detail::vector_sink sink(body);
        multiprocessing::detail::oarchive oa(sink);
        std::apply([&](const auto&... a) { (oa << ... << a); }, t);
    } else {
        (void)args;
        (void)body;
    }
}

template <class... W>
void args_to_body(const std::vector<value>& args, std::vector<char>& body) {
    if (args.size() != sizeof...(W))
        throw TypeError("takes " + std::to_string(sizeof...(W)) + " positional arguments but " +
                        std::to_string(args.size()) + " were given");
    args_write<W...>(args, body, std::index_sequence_for<W...>{});
}

template <class W>
value body_to_value(const char* body, std::size_t n) {
    if constexpr (std::is_void_v<W>) {
        (void)body;
        (void)n;
        return value();
    } else {
        W w{};
        multiprocessing::detail::memory_source src(body, n);
        multiprocessing::detail::iarchive ia(src);
        ia >> w;
        return py_conv<W>::to(w);
    }
}

template <class... W>
constexpr args_fn args_converter() {
    if constexpr ((py_conv<W>::ok && ...)) return &args_to_body<W...>;
    else return nullptr;
}
template <class W>
constexpr result_fn result_converter() {
    if constexpr (std::is_void_v<W>) return &body_to_value<void>;
    else if constexpr (py_conv<W>::ok) return &body_to_value<W>;
    else return nullptr;
}

}  // namespace multiprocessing::detail::pickle

// What a manager knows about its registered types: for each typeid, how to
// make the object, which methods are exposed, and how to invoke each one
// from a received request.
//
// Every method and constructor has a signature hash (of its result and
// parameter types) that travels with each request, so a client built with a
// different definition gets a clear error instead of a misparsed archive.
#pragma once

#include "multiprocessing/detail/config.hpp"
#include "multiprocessing/detail/archive.hpp"
#include "multiprocessing/detail/demangle.hpp"
#include "multiprocessing/detail/fork.hpp"
#include "multiprocessing/detail/protocol.hpp"
#include "multiprocessing/detail/py_convert.hpp"
#include "multiprocessing/object.hpp"

#include <boost/serialization/string.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <deque>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <unordered_set>
#include <variant>
#include <memory>
#include <mutex>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <type_traits>
#include <typeindex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "multiprocessing/managers/self_locking.hpp"

namespace multiprocessing::managers {

template <class T>
class Proxy;
class BaseProxy;

namespace detail {

struct ref_entry;

/// Visits the proxy references a referent holds: how the server's cycle
/// collector finds the edges between shared objects.
using gc_visitor = std::function<void(const std::shared_ptr<ref_entry>&)>;

/// gc_traverse<T>::run(x, visit) visits every proxy inside x; `holds` says
/// whether a T can hold one at all.  Specialized for proxies, object, the
/// standard containers and the library's shared containers; a user class
/// holding proxies declares `void _gc_traverse(const gc_visitor&) const`
/// (see managers::gc_visit; without it, what its proxies name is kept
/// alive, cycles included).
template <class T, class = void>
struct gc_traverse {
    static constexpr bool holds = false;
    static void run(const T&, const gc_visitor&) {}
};
template <class T>
struct gc_traverse<T, std::enable_if_t<std::is_base_of_v<BaseProxy, T>>> {
    static constexpr bool holds = true;
    static void run(const T& p, const gc_visitor& v) {
        if (p.ref_) v(p.ref_);
    }
};
template <class T>
struct gc_traverse<T, std::void_t<decltype(std::declval<const T&>()._gc_traverse(std::declval<const gc_visitor&>()))>> {
    static constexpr bool holds = true;
    static void run(const T& x, const gc_visitor& v) { x._gc_traverse(v); }
};
template <>
struct gc_traverse<object> {
    static constexpr bool holds = true;
    static void run(const object& o, const gc_visitor& v) {
        switch (o.type()) {
        case object::kind::proxy:
            if (auto r = o.proxy_ref()) v(*r);  // a CPython manager's proxy holds nothing here
            break;
        case object::kind::tuple: case object::kind::list:
            for (auto& x : o.items()) run(x, v);
            break;
        case object::kind::dict:
            for (auto& kv : o.dict_items()) {
                run(kv.first, v);
                run(kv.second, v);
            }
            break;
        default: break;
        }
    }
};
/// Any range of elements (vector, deque, list, set, map...).
template <class C, class E>
struct gc_range {
    static constexpr bool holds = gc_traverse<E>::holds;
    static void run(const C& c, const gc_visitor& v) {
        if constexpr (holds)
            for (auto& x : c) gc_traverse<E>::run(x, v);
    }
};
template <class T, class A> struct gc_traverse<std::vector<T, A>> : gc_range<std::vector<T, A>, T> {};
template <class T, class A> struct gc_traverse<std::deque<T, A>> : gc_range<std::deque<T, A>, T> {};
template <class T, class A> struct gc_traverse<std::list<T, A>> : gc_range<std::list<T, A>, T> {};
template <class T, class C, class A> struct gc_traverse<std::set<T, C, A>> : gc_range<std::set<T, C, A>, T> {};
template <class K, class V, class C, class A>
struct gc_traverse<std::map<K, V, C, A>> : gc_range<std::map<K, V, C, A>, std::pair<const K, V>> {};
template <class K, class V, class H, class E, class A>
struct gc_traverse<std::unordered_map<K, V, H, E, A>> : gc_range<std::unordered_map<K, V, H, E, A>, std::pair<const K, V>> {};
template <class A, class B>
struct gc_traverse<std::pair<A, B>> {
    static constexpr bool holds = gc_traverse<std::remove_const_t<A>>::holds || gc_traverse<B>::holds;
    static void run(const std::pair<A, B>& p, const gc_visitor& v) {
        gc_traverse<std::remove_const_t<A>>::run(p.first, v);
        gc_traverse<B>::run(p.second, v);
    }
};
template <class T>
struct gc_traverse<std::optional<T>> {
    static constexpr bool holds = gc_traverse<T>::holds;
    static void run(const std::optional<T>& o, const gc_visitor& v) {
        if (o) gc_traverse<T>::run(*o, v);
    }
};

/// Whether a token's typeid may be viewed through a proxy of referent T
/// (object::as_proxy); the shared containers specialize it.
template <class T>
struct proxy_typeid_check {
    static bool ok(const std::string&) { return true; }
};

/// The referent type of an MP_INTERFACE proxy: the class lives elsewhere.
template <class I>
struct interface_referent {};
template <class T> struct is_interface_referent : std::false_type {};
template <class I> struct is_interface_referent<interface_referent<I>> : std::true_type {};

template <class T> struct is_shared_ptr : std::false_type {};
template <class T> struct is_shared_ptr<std::shared_ptr<T>> : std::true_type {};

/// The type a value travels as: decayed, with C strings as std::string.
template <class T>
struct wire { using type = std::decay_t<T>; };
template <> struct wire<const char*> { using type = std::string; };
template <> struct wire<char*> { using type = std::string; };
template <> struct wire<std::string_view> { using type = std::string; };
template <class T>
using wire_t = typename wire<std::decay_t<T>>::type;

/// Converts an argument to its wire type without copying when it already is.
template <class W, class A>
decltype(auto) to_wire(A&& a) {
    if constexpr (std::is_same_v<std::decay_t<A>, W>) return static_cast<const W&>(a);
    else return W(std::forward<A>(a));
}

/// A received argument as the parameter type P: C strings and string_views
/// point into the received std::string, which outlives the call.
template <class P, class W>
decltype(auto) from_wire(W& w) {
    using D = std::decay_t<P>;
    if constexpr (std::is_same_v<W, std::string> && std::is_same_v<D, const char*>) return w.c_str();
    else if constexpr (std::is_same_v<W, std::string> && std::is_same_v<D, char*>) return w.data();
    else if constexpr (std::is_same_v<W, std::string> && std::is_same_v<D, std::string_view>) return std::string_view(w);
    else return static_cast<P&&>(w);
}

template <class... T>
struct type_list {};

/// A pointer other than a C string (or a pointer to member) as an argument:
/// refused, since only the address would travel (or it would become a bool).
template <class A, class D = std::decay_t<A>>
inline constexpr bool is_data_pointer_v =
    (std::is_pointer_v<D> && !std::is_same_v<std::remove_cv_t<std::remove_pointer_t<D>>, char>) ||
    std::is_member_pointer_v<D>;

/// A plain argument; a big string that is the caller's own is recorded in
/// blocks rather than copied (see write_args).
template <class W, class V>
void put_plain_arg(std::vector<char>& buf, multiprocessing::detail::frame_blocks* blocks, bool own, const V& v) {
    if constexpr (std::is_same_v<W, std::string>) {
        if (blocks && own && v.size() >= multiprocessing::detail::frame_blocks::min_bytes) {
            std::size_t n = v.size();
            const char* len = reinterpret_cast<const char*>(&n);
            buf.insert(buf.end(), len, len + sizeof n);
            blocks->add(buf.size(), v.data(), n, multiprocessing::detail::block_kind::string);
            return;
        }
    }
    multiprocessing::detail::put_plain<W>(buf, v);
}

/// Appends the arguments, converted to their wire types W, as one archive.
///
/// An argument already of its wire type, and only a string or a vector of
/// plain values, is written by reference when aliasing_target() names buf:
/// it is the caller's own object, which outlives the send.  A converted one
/// is a temporary, so it is copied.  The target is taken, not just read: a
/// call made while serializing (a proxy argument's reference) writes no
/// blocks here.
template <class... W, class... A>
void write_args(std::vector<char>& buf, type_list<W...>, A&&... args) {
    multiprocessing::detail::aliasing_scope taken(nullptr);
    auto* blocks = taken.previous() && taken.previous()->buf == &buf ? taken.previous() : nullptr;
    if constexpr (sizeof...(W) > 0 && (multiprocessing::detail::plain_wire_v<W> && ...)) {
        (put_plain_arg<W>(buf, blocks, std::is_same_v<std::decay_t<A>, W>, to_wire<W>(std::forward<A>(args))), ...);
    } else if constexpr (sizeof...(W) > 0) {
        multiprocessing::detail::vector_sink sink(buf, blocks);
        multiprocessing::detail::oarchive oa(sink);
        ((sink.alias(std::is_same_v<std::decay_t<A>, W> && multiprocessing::detail::aliasable_v<W>,
                     multiprocessing::detail::block_kind_of<W>::value),
          oa << to_wire<W>(std::forward<A>(args))),
         ...);
    } else {
        (void)buf;
        (void)blocks;
    }
}

template <class... T>
std::string type_names() {
    std::string s;
    ((s += (s.empty() ? "" : ", ") + multiprocessing::detail::type_name<T>()), ...);
    return s;
}

/// Hash of a signature: salt, result and parameter wire types.
template <class R, class... P>
std::uint64_t signature_hash(const char* salt) {
    std::string s = salt;
    s += '|';
    s += typeid(R).name();
    ((s += '|', s += typeid(P).name()), ...);
    return multiprocessing::detail::fnv1a(s);
}

template <class M>
struct method_traits;

#define MP_DETAIL_METHOD_TRAITS(CV, NOEXCEPT)                                         \
    template <class R, class C, class... P>                                          \
    struct method_traits<R (C::*)(P...) CV NOEXCEPT> {                               \
        using result_type = R;                                                       \
        using class_type = C;                                                        \
        using params = type_list<P...>;                                              \
        using wire_params = type_list<wire_t<P>...>;                                 \
        using args_tuple = std::tuple<wire_t<P>...>;                                 \
        static constexpr std::size_t arity = sizeof...(P);                           \
        template <class... A>                                                        \
        static constexpr bool accepts() {                                            \
            if constexpr (sizeof...(A) != sizeof...(P)) return false;                \
            else return (std::is_constructible_v<wire_t<P>, A&&> && ...);            \
        }                                                                            \
        template <class... A>                                                        \
        static constexpr bool arity_ok() { return sizeof...(A) == sizeof...(P); }   \
        static constexpr bool no_out_params =                                        \
            !((std::is_lvalue_reference_v<P> &&                                      \
               !std::is_const_v<std::remove_reference_t<P>>) || ...);                \
    };
MP_DETAIL_METHOD_TRAITS(, )
MP_DETAIL_METHOD_TRAITS(const, )
MP_DETAIL_METHOD_TRAITS(, noexcept)
MP_DETAIL_METHOD_TRAITS(const, noexcept)
#undef MP_DETAIL_METHOD_TRAITS

/// What a returned R travels as: a shared_ptr becomes a Token.
template <class R>
struct result_wire { using type = wire_t<R>; };
template <class U>
struct result_wire<std::shared_ptr<U>> { using type = Token; };

template <class M, class R, class... P>
std::uint64_t method_signature_impl(type_list<P...>) {
    return signature_hash<typename result_wire<R>::type, P...>("method");
}

/// Signature hash of a member function type MP (the class does not count).
template <class MP>
std::uint64_t method_signature_of() {
    using tr = method_traits<MP>;
    static const std::uint64_t h = method_signature_impl<MP, typename tr::result_type>(typename tr::wire_params{});
    return h;
}
/// Signature hash of an exposed member function.
template <auto M>
std::uint64_t method_signature() { return method_signature_of<decltype(M)>(); }

/// A member function type as people write it, for messages: `int(int, std::string)`.
template <class R, class... P>
std::string signature_text_impl(type_list<P...>) {
    std::string s = multiprocessing::detail::type_name<R>() + "(" + type_names<P...>() + ")";
    const std::string longer = "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >";
    for (auto i = s.find(longer); i != std::string::npos; i = s.find(longer, i)) s.replace(i, longer.size(), "std::string");
    return s;
}
template <class MP>
std::string signature_text() {
    using tr = method_traits<MP>;
    return signature_text_impl<typename tr::result_type>(typename tr::params{});
}

/// Server side of a call: registers a returned shared object and makes the
/// token for it; set for the duration of each dispatched call.
struct call_context {
    virtual ~call_context() = default;
    virtual Token share(std::shared_ptr<void> obj, const void* raw, std::type_index referent) = 0;
    virtual bool caller_gone() const = 0;
    virtual void hand_over(std::function<void()> take_back) = 0;
    /// The object with token t's id in this server if its referent type is
    /// `referent` and t names this server; null otherwise.
    virtual std::shared_ptr<void> local_object(const Token& t, std::type_index referent) const = 0;
    /// Keeps a proxy reference of the result alive, if the caller holds none
    /// yet, until the caller's incref (or its next request on the
    /// connection; CPython's server keeps its last result until then too):
    /// else a proxy popped out of a container, or a cycle collected
    /// meanwhile, would die in transit.
    virtual void keep(std::shared_ptr<ref_entry>) {}
    std::uint64_t session = 0;     // the calling process
    std::uint64_t connection = 0;  // the calling thread's connection
};
inline call_context*& current_call() {
    static thread_local call_context* c = nullptr;
    return c;
}

/// Writes a method's result into the reply buffer.
template <class R>
void save_result(std::vector<char>& out, R&& r) {
    using D = std::decay_t<R>;
    if constexpr (multiprocessing::detail::plain_wire_v<D>) {
        multiprocessing::detail::put_plain<D>(out, r);
        return;
    }
    multiprocessing::detail::vector_sink sink(out);
    multiprocessing::detail::oarchive oa(sink);
    if constexpr (is_shared_ptr<D>::value) {
        if (!r) throw ValueError("method returned a null shared_ptr");
        using U = typename D::element_type;
        Token t = current_call()->share(std::static_pointer_cast<void>(std::const_pointer_cast<std::remove_const_t<U>>(r)),
                                        r.get(), std::type_index(typeid(std::remove_const_t<U>)));
        oa << t;
    } else {
        const D& cr = r;
        oa << cr;
    }
}

/// save_result for a string or a vector of plain values the reply owns
/// (blocks.keep): a big one is recorded in blocks rather than copied.
template <class D>
void save_aliased(std::vector<char>& out, const D& r, multiprocessing::detail::frame_blocks& blocks) {
    if constexpr (std::is_same_v<D, std::string>) {
        put_plain_arg<std::string>(out, &blocks, true, r);
    } else {
        multiprocessing::detail::vector_sink sink(out, &blocks);
        sink.alias(true, multiprocessing::detail::block_kind_of<D>::value);
        multiprocessing::detail::oarchive oa(sink);
        oa << r;
    }
}

template <class Tuple>
struct all_plain;
template <class... T>
struct all_plain<std::tuple<T...>> : std::bool_constant<(multiprocessing::detail::plain_wire_v<T> && ...)> {};

template <class Tuple>
void load_args(const char* body, std::size_t n, Tuple& args) {
    if constexpr (std::tuple_size_v<Tuple> > 0 && all_plain<Tuple>::value) {
        multiprocessing::detail::plain_reader rd{body, n};
        std::apply([&](auto&... a) { (rd.get(a), ...); }, args);
    } else if constexpr (std::tuple_size_v<Tuple> > 0) {
        multiprocessing::detail::memory_source src(body, n);
        multiprocessing::detail::iarchive ia(src);
        std::apply([&](auto&... a) { (ia >> ... >> a); }, args);
    } else {
        (void)body;
        (void)n;
    }
}

/// Holds an object's lock for one call, unless this thread holds it
/// already: a method that calls its own object back through a proxy has
/// that call run in its own thread (see Server), which must not wait for
/// itself.  So the lock is re-entrant per thread, as CPython, which has no
/// per-object lock, lets such calls through.
///
/// A call back into another object (A's method calls B) could deadlock
/// with a thread doing the opposite (B's method calls A).  Such a call
/// waits without blocking, and if its wait would close a cycle of waiting
/// calls it fails with std::runtime_error instead (CPython would run both
/// methods interleaved; C++ objects cannot be used by two threads at once).
class object_lock {
public:
    explicit object_lock(std::mutex* mu);
    ~object_lock();
    object_lock(const object_lock&) = delete;
    object_lock& operator=(const object_lock&) = delete;

private:
    static std::vector<std::mutex*>& held();
    // Threads waiting for an object lock while holding others.  A waiting
    // thread's held list does not change until it leaves this list.
    struct waiter {
        const std::vector<std::mutex*>* held;
        std::mutex* wants;
    };
    struct wait_graph {
        std::mutex mu;
        std::vector<waiter> waiting;
    };
    static wait_graph& graph();
    static bool holds(const std::vector<std::mutex*>& h, const std::mutex* m);
    // Whether waiting for `wants` closes a cycle: its holder waits, through
    // other waiting holders, for a lock in `mine`.  Only waiting threads can
    // be in a cycle, so the waiters list is enough; the last one to join a
    // cycle sees it.
    static bool closes_cycle(const wait_graph& g, const std::vector<std::mutex*>& mine, std::mutex* wants);
    static void acquire_nested(std::mutex* mu, const std::vector<std::mutex*>& mine);
    std::mutex* mu_ = nullptr;
};

/// (object, request body, reply buffer, lock or null)
using invoke_fn = void (*)(void*, const char*, std::size_t, std::vector<char>&, std::mutex*);

/// Calls member function M.
template <auto M>
struct member_caller {
    template <class C, class... A>
    static decltype(auto) call(C& self, A&&... a) {
        // To the class that declares M first (a base, for an inherited
        // method): g++ warns of type punning on `derived.*base_member`.
        typename method_traits<decltype(M)>::class_type& declarer = self;
        return (declarer.*M)(std::forward<A>(a)...);
    }
};

template <class Caller, class C, class R, class... P, std::size_t... I>
void invoke_impl(void* obj, const char* body, std::size_t n, std::vector<char>& out, std::mutex* mu,
                 type_list<P...>, std::index_sequence<I...>) {
    std::tuple<wire_t<P>...> args;
    load_args(body, n, args);
    object_lock lock(mu);
    C& self = *static_cast<C*>(obj);
    if constexpr (std::is_void_v<R>) {
        Caller::call(self, from_wire<P>(std::get<I>(args))...);
    } else if constexpr (gc_traverse<std::decay_t<R>>::holds) {
        auto&& result = Caller::call(self, from_wire<P>(std::get<I>(args))...);
        save_result(out, result);
        if (auto* c = current_call())
            gc_traverse<std::decay_t<R>>::run(result, [c](const std::shared_ptr<ref_entry>& e) { c->keep(e); });
    } else {
        using D = std::decay_t<R>;
        if constexpr (!std::is_reference_v<R> && multiprocessing::detail::aliasable_v<D>) {
            // A big result is kept until its reply is sent and goes from
            // where it lies (the server loop names `out` as the target).
            D r = Caller::call(self, from_wire<P>(std::get<I>(args))...);
            auto* t = multiprocessing::detail::aliasing_target();
            if (t && t->buf == &out && r.size() * sizeof(r[0]) >= multiprocessing::detail::frame_blocks::min_bytes) {
                auto held = std::make_shared<const D>(std::move(r));
                t->keep.push_back(held);
                save_aliased(out, *held, *t);
            } else {
                save_result(out, std::move(r));
            }
        } else {
            save_result(out, Caller::call(self, from_wire<P>(std::get<I>(args))...));
        }
    }
}

/// Server side of one exposed method: read arguments, lock, call, reply.
/// obj points to a Self, the registered class: M may be a member of one of
/// its bases (&T::name names the base's), reached from Self as C++ would.
template <auto M, class Self = typename method_traits<decltype(M)>::class_type>
void invoke_method(void* obj, const char* body, std::size_t n, std::vector<char>& out, std::mutex* mu) {
    using tr = method_traits<decltype(M)>;
    invoke_impl<member_caller<M>, Self, typename tr::result_type>(
        obj, body, n, out, mu, typename tr::params{}, std::make_index_sequence<tr::arity>{});
}

/// The first K types of a type_list.
template <class L, class Idx>
struct first_of_impl;
template <class... P, std::size_t... I>
struct first_of_impl<type_list<P...>, std::index_sequence<I...>> {
    using type = type_list<std::tuple_element_t<I, std::tuple<P...>>...>;
};
template <class L, std::size_t K>
using first_of_t = typename first_of_impl<L, std::make_index_sequence<K>>::type;

/// R (C::*)(P...) for a type_list of P.
template <class R, class C, class L>
struct member_type;
template <class R, class C, class... P>
struct member_type<R, C, type_list<P...>> { using type = R (C::*)(P...); };

/// The member function type MP with only its first K parameters: what a
/// call that leaves the rest to their default arguments sends.
template <class MP, std::size_t K>
using truncated_t = typename member_type<typename method_traits<MP>::result_type, typename method_traits<MP>::class_type,
                                         first_of_t<typename method_traits<MP>::params, K>>::type;

/// Whether Caller::call(C&, P...) compiles.
template <class Caller, class C, class L, class = void>
struct callable_with : std::false_type {};
template <class Caller, class C, class... P>
struct callable_with<Caller, C, type_list<P...>,
                     std::void_t<decltype(Caller::call(std::declval<C&>(), std::declval<P>()...))>> : std::true_type {};
/// Whether method MP can be called by name (Caller) with only its first K
/// arguments, the class's default arguments supplying the rest.
template <class Caller, class MP, std::size_t K>
inline constexpr bool omits_ok_v =
    callable_with<Caller, typename method_traits<MP>::class_type, first_of_t<typename method_traits<MP>::params, K>>::value;

/// Server side of a call that gives only the first K arguments of method
/// M: Caller calls it by name, so C++ fills in the default arguments.
template <auto M, class Caller, std::size_t K, class Self>
void invoke_defaulted(void* obj, const char* body, std::size_t n, std::vector<char>& out, std::mutex* mu) {
    using tr = method_traits<decltype(M)>;
    invoke_impl<Caller, Self, typename tr::result_type>(
        obj, body, n, out, mu, first_of_t<typename tr::params, K>{}, std::make_index_sequence<K>{});
}

namespace pk = multiprocessing::detail::pickle;

struct method_entry {
    std::string_view name;
    std::uint64_t sig;
    invoke_fn invoke;  // null for a method an interface declares (see MP_INTERFACE)
    std::string (*text)();
    // For CPython clients (Server::serve_python): the Python arguments as
    // this method's request body, and its reply body as a Python value;
    // null where a parameter or the result has no Python form.
    pk::args_fn py_args = nullptr;
    pk::result_fn py_result = nullptr;
    bool returns_token = false;  // returns a shared object: '#PROXY' for Python
    std::size_t arity = 0;
};

/// Fills in the Python side of an entry for member function type MP.
template <class MP, class... W>
method_entry with_python(method_entry e, type_list<W...>) {
    using R = typename method_traits<MP>::result_type;
    e.arity = sizeof...(W);
    e.py_args = pk::args_converter<W...>();
    e.returns_token = is_shared_ptr<std::decay_t<R>>::value;
    if (!e.returns_token) e.py_result = pk::result_converter<typename result_wire<R>::type>();
    return e;
}
template <class MP>
method_entry with_python(method_entry e) {
    return with_python<MP>(e, typename method_traits<MP>::wire_params{});
}

/// One exposed method as written in MP_EXPOSE: its name and pointer, and
/// the registered class it is called on (see invoke_method).
template <auto M, class Self = typename method_traits<decltype(M)>::class_type>
struct method_desc {
    static constexpr auto pointer = M;
    const char* name;
    method_entry entry() const {
        using tr = method_traits<decltype(M)>;
        static_assert(tr::no_out_params,
                      "multiprocessing: an exposed method cannot take a non-const reference "
                      "(out-parameters do not travel back); return the value instead");
        return with_python<decltype(M)>(
            {name, method_signature<M>(), &invoke_method<M, Self>, &signature_text<decltype(M)>});
    }
    // The signature alone: what a client's fingerprint needs, without
    // instantiating the server's call of M.
    std::uint64_t sig() const { return method_signature<M>(); }
};

/// One method an interface declares (MP_INTERFACE): a name and a member
/// function type MP of the interface class; nothing to run.
template <class MP>
struct declared_desc {
    using pointer_type = MP;
    const char* name;
    method_entry entry() const {
        static_assert(method_traits<MP>::no_out_params,
                      "multiprocessing: an exposed method cannot take a non-const reference "
                      "(out-parameters do not travel back); return the value instead");
        return {name, method_signature_of<MP>(), nullptr, &signature_text<MP>};
    }
    std::uint64_t sig() const { return method_signature_of<MP>(); }
};
/// The declared_descs of the signatures Sigs (function types such as
/// `int(int) const`) of one method of interface I.
template <class I, class... Sigs>
auto declared_descs(const char* name) {
    return std::make_tuple(declared_desc<Sigs I::*>{name}...);
}

/// A call of method M with only its first K arguments (the others take
/// the method's default arguments): its own signature and server entry.
template <auto M, class Caller, std::size_t K, class Self>
struct defaulted_desc {
    static constexpr auto pointer = M;
    const char* name;
    method_entry entry() const {
        using MP = truncated_t<decltype(M), K>;
        return with_python<MP>(
            {name, method_signature_of<MP>(), &invoke_defaulted<M, Caller, K, Self>, &signature_text<MP>});
    }
    std::uint64_t sig() const { return method_signature_of<truncated_t<decltype(M), K>>(); }
};
template <bool Keep, class D>
auto tuple_if(D d) {
    if constexpr (Keep) return std::make_tuple(d);
    else return std::tuple<>();
}
template <auto M, class Caller, class Self, std::size_t... K>
auto defaulted_descs_impl(const char* name, std::index_sequence<K...>) {
    return std::tuple_cat(std::make_tuple(method_desc<M, Self>{name}),
                          tuple_if<omits_ok_v<Caller, decltype(M), K>>(defaulted_desc<M, Caller, K, Self>{name})...);
}
/// The method_desc of M, and one for each shorter call that M's default
/// arguments allow (Caller calls M by name; see MP_EXPOSE).
template <auto M, class Caller, class Self = typename method_traits<decltype(M)>::class_type>
auto defaulted_descs(const char* name) {
    return defaulted_descs_impl<M, Caller, Self>(name, std::make_index_sequence<method_traits<decltype(M)>::arity>{});
}

/// The method_descs of the overloads Sigs of one name: O::pointer<Sig>()
/// names each (see MP_EXPOSE).
template <class O, class... Sigs>
auto overload_descs(const char* name) {
    return std::make_tuple(method_desc<O::template pointer<Sigs>()>{name}...);
}

template <class P, class A, class = void>
struct same_decayed : std::false_type {};
template <class... P, class... A>
struct same_decayed<type_list<P...>, type_list<A...>, std::enable_if_t<sizeof...(P) == sizeof...(A)>>
    : std::bool_constant<(std::is_same_v<std::decay_t<P>, std::decay_t<A>> && ...)> {};

template <class P, class A, class = void>
struct brace_ok : std::false_type {};
template <class P, class A>
struct brace_ok<P, A, std::void_t<decltype(std::decay_t<P>{std::declval<A>()})>> : std::true_type {};
template <class P, class A, class = void>
struct no_narrowing : std::false_type {};
template <class... P, class... A>
struct no_narrowing<type_list<P...>, type_list<A...>, std::enable_if_t<sizeof...(P) == sizeof...(A)>>
    : std::bool_constant<(brace_ok<P, A>::value && ...)> {};

/// Which of the member pointer types M a call with arguments A picks: the
/// first whose parameters are A exactly, else the first A converts to
/// without narrowing (a float goes to double before int), else the first A
/// converts to at all; sizeof...(M) if none.
template <class Args, class... M>
struct overload_pick;
template <class... A, class... M>
struct overload_pick<type_list<A...>, M...> {
    static constexpr std::size_t value = [] {
        constexpr bool ok[] = {(method_traits<M>::template arity_ok<A...>() &&
                                method_traits<M>::template accepts<A...>())...,
                               false};
        constexpr bool exact[] = {same_decayed<typename method_traits<M>::params, type_list<A...>>::value..., false};
        constexpr bool wide[] = {no_narrowing<typename method_traits<M>::params, type_list<A...>>::value..., false};
        for (std::size_t i = 0; i < sizeof...(M); ++i)
            if (ok[i] && exact[i]) return i;
        for (std::size_t i = 0; i < sizeof...(M); ++i)
            if (ok[i] && wide[i]) return i;
        for (std::size_t i = 0; i < sizeof...(M); ++i)
            if (ok[i]) return i;
        return sizeof...(M);
    }();
};

// ---- optional capabilities of a referent type ----

template <class T, class = void>
struct is_ostreamable : std::false_type {};
template <class T>
struct is_ostreamable<T, std::void_t<decltype(std::declval<std::ostream&>() << std::declval<const T&>())>>
    : std::true_type {};

template <class T, class = void>
struct has_disconnect_hook : std::false_type {};
template <class T>
struct has_disconnect_hook<T, std::void_t<decltype(std::declval<T&>()._on_disconnect(std::uint64_t(), std::uint64_t()))>>
    : std::true_type {};

template <class T, class = void>
struct has_member_serialize : std::false_type {};
template <class T>
struct has_member_serialize<T, std::void_t<decltype(std::declval<T&>().serialize(
                                   std::declval<multiprocessing::detail::oarchive&>(), 0u))>>
    : std::true_type {};

}  // namespace detail

/// Whether T can be copied out of the server (Python's _getvalue()).  True
/// for arithmetic types, std::string, types with a serialize() member and
/// the std containers of such; specialize it for types serialized by free
/// functions.
template <class T, class = void>
struct serializable
    : std::bool_constant<std::is_arithmetic_v<T> || std::is_enum_v<T> ||
                         detail::has_member_serialize<T>::value> {};
template <>
struct serializable<std::string> : std::true_type {};
template <class T, class A>
struct serializable<std::vector<T, A>> : serializable<T> {};
template <class T, class A>
struct serializable<std::deque<T, A>> : serializable<T> {};
template <class T, class A>
struct serializable<std::list<T, A>> : serializable<T> {};
template <class T, class C, class A>
struct serializable<std::set<T, C, A>> : serializable<T> {};
template <class T, class H, class E, class A>
struct serializable<std::unordered_set<T, H, E, A>> : serializable<T> {};
template <class K, class V, class C, class A>
struct serializable<std::map<K, V, C, A>> : std::bool_constant<serializable<K>::value && serializable<V>::value> {};
template <class K, class V, class H, class E, class A>
struct serializable<std::unordered_map<K, V, H, E, A>>
    : std::bool_constant<serializable<K>::value && serializable<V>::value> {};
template <class A, class B>
struct serializable<std::pair<A, B>> : std::bool_constant<serializable<A>::value && serializable<B>::value> {};
template <class... T>
struct serializable<std::tuple<T...>> : std::bool_constant<(serializable<T>::value && ...)> {};
template <class T>
struct serializable<std::optional<T>> : serializable<T> {};
template <class... T>
struct serializable<std::variant<T...>> : std::bool_constant<(serializable<T>::value && ...)> {};

namespace detail {

template <class T>
void getvalue_impl(void* obj, const char*, std::size_t, std::vector<char>& out, std::mutex* mu) {
    object_lock lock(mu);
    save_result(out, *static_cast<const T*>(obj));
}

template <class T>
void str_impl(void* obj, const char*, std::size_t, std::vector<char>& out, std::mutex* mu) {
    object_lock lock(mu);
    std::ostringstream os;
    os << *static_cast<const T*>(obj);
    save_result(out, os.str());
}

template <class T>
std::uint64_t getvalue_signature() { return signature_hash<T>("#getvalue"); }
inline std::uint64_t str_signature() { return signature_hash<std::string>("#str"); }

using factory_fn = std::function<std::shared_ptr<void>(const char*, std::size_t)>;

/// Constructors that create<T>(args...) calls in this program may need,
/// keyed by the hash of (T, argument wire types).  Each create<T>(A...)
/// instantiation adds its own entry before main(), so a forked server knows
/// every constructor its clients can ask for.
class constructor_table {
public:
    static constructor_table& instance();
    void add(std::uint64_t sig, std::type_index referent, std::string text, factory_fn f,
             pk::args_fn py_args = nullptr);
    struct entry {
        std::type_index referent;
        std::string text;
        factory_fn make;
        pk::args_fn py_args;  // Python arguments to make's body; null: none
    };
    const entry* find(std::uint64_t sig);
    /// The constructors of referent that Python arguments can call.
    std::vector<const entry*> python_constructors(std::type_index referent);
    std::vector<std::string> signatures_for(std::type_index referent);

private:
    std::mutex mu_;
    std::unordered_map<std::uint64_t, entry> table_;
};

/// Hash of constructor arguments' wire types, without the class: what a
/// client that declares only an interface (MP_INTERFACE) can send.
template <class... A>
std::uint64_t arguments_signature() {
    static const std::uint64_t h = signature_hash<void, A...>("ctor");
    return h;
}
/// Key of a constructor: the class's (mangled) name and arguments_signature.
inline std::uint64_t constructor_key(const char* referent, std::uint64_t args) {
    return multiprocessing::detail::fnv1a(std::string(referent) + '|' + std::to_string(args));
}
template <class T, class... A>
std::uint64_t constructor_signature() {
    static const std::uint64_t h = constructor_key(typeid(T).name(), arguments_signature<A...>());
    return h;
}

template <class T, class... A>
struct constructor_registrar {
    static std::shared_ptr<void> make(const char* body, std::size_t n) {
        std::tuple<A...> args;
        load_args(body, n, args);
        return std::apply([](auto&... a) { return std::make_shared<T>(std::move(a)...); }, args);
    }
    static bool add() {
        constructor_table::instance().add(constructor_signature<T, A...>(), std::type_index(typeid(T)),
                                          multiprocessing::detail::type_name<T>() + "(" + type_names<A...>() + ")",
                                          &make, pk::args_converter<A...>());
        return true;
    }
    // Not const: a const bool is usable in constant expressions, so
    // compilers instantiate its initializer even under extern template.
    static bool registered;
};
template <class T, class... A>
bool constructor_registrar<T, A...>::registered = constructor_registrar<T, A...>::add();

/// Everything the server needs to serve one typeid.
struct type_entry {
    std::string typeid_;
    std::type_index referent = std::type_index(typeid(void));
    std::type_index proxy = std::type_index(typeid(void));
    std::string referent_name;
    std::uint64_t fingerprint = 0;
    std::vector<method_entry> methods;
    std::unordered_multimap<std::string_view, const method_entry*> by_name;  // overloads share a name
    factory_fn factory;        // from a registered callable; empty = use constructors
    std::uint64_t factory_sig = 0;
    std::string factory_text;
    pk::args_fn factory_py_args = nullptr;  // Python arguments to factory's body
    /// How Python calls a method of a built-in type, by the name Python
    /// uses: which exposed method it is, its parameter names (keyword
    /// arguments), the defaults of its trailing parameters (also used for a
    /// None there: a timeout of None), and values appended after them
    /// (put_nowait is put with block=False).
    struct py_method {
        std::string target;
        std::vector<std::string> names;
        std::vector<pk::value> defaults;
        std::vector<pk::value> fixed;
    };
    std::map<std::string, py_method, std::less<>> py_methods;
    /// The value's Python form, for Python's _getvalue(); null if none.
    pk::value (*py_getvalue)(void*, std::mutex*) = nullptr;
    bool self_locking = false;
    bool interface_only = false;  // registered with MP_INTERFACE: this process cannot make it
    invoke_fn getvalue = nullptr;
    std::uint64_t getvalue_sig = 0;
    invoke_fn str = nullptr;
    void (*on_disconnect)(void*, std::uint64_t session, std::uint64_t connection, std::mutex*) = nullptr;
    /// Visits the proxies an object holds (null: it holds none we can see).
    void (*traverse)(const void*, const gc_visitor&) = nullptr;

    /// The method name with signature sig; failing that, one of that name
    /// (whose signature the caller then finds wrong); null if none.
    const method_entry* find(std::string_view name, std::uint64_t sig) const;
    /// The names a Python AutoProxy of this type may call.
    std::vector<std::string> python_exposed() const;
    std::string exposed_list() const;
};

template <class ProxyT>
std::vector<method_entry> exposed_entries() {
    std::vector<method_entry> v;
    std::apply([&](auto... d) { (v.push_back(d.entry()), ...); }, ProxyT::_exposed_());
    return v;
}

/// Fingerprint of a registration: the referent type and every exposed
/// method's name and signature, as the proxy type sees them.
template <class ProxyT>
std::uint64_t fingerprint() {
    static const std::uint64_t h = [] {
        std::string s = multiprocessing::detail::type_name<typename ProxyT::referent_type>();
        std::apply([&](const auto&... d) { ((s += '|', s += d.name, s += ':', s += std::to_string(d.sig())), ...); },
                   ProxyT::_exposed_());
        return multiprocessing::detail::fnv1a(s);
    }();
    return h;
}

/// A manager class's registry (Python's BaseManager._registry).
class registry {
public:
    registry() { multiprocessing::detail::fork_state::instance().reset_in_child(&mu_); }
    ~registry() { multiprocessing::detail::fork_state::instance().forget(&mu_); }
    registry(const registry&) = delete;
    registry& operator=(const registry&) = delete;

    void add(std::shared_ptr<type_entry> e);
    std::shared_ptr<const type_entry> find(const std::string& typeid_) const;
    std::string typeid_for_proxy(std::type_index t) const;
    /// The entry a method's returned object of this referent type is
    /// shared under: its first registration (another type registered later
    /// under the same typeid does not displace it, so an object is never
    /// served through another type's methods).
    std::shared_ptr<const type_entry> find_referent(std::type_index t) const;
    std::vector<std::string> typeids() const;

    /// A name a Python client creates (SyncManager's 'dict', 'Lock'...) for
    /// a registered typeid: the defaults of the Python parameters, and
    /// values appended after them (Lock and RLock differ by one).
    struct python_alias {
        std::string typeid_;
        std::vector<pk::value> defaults;
        std::vector<pk::value> fixed;
    };
    void add_python_alias(const std::string& name, python_alias a);
    std::optional<python_alias> find_python_alias(const std::string& name) const;

    /// Work for the server process to do as its Server is destroyed, e.g.
    /// SharedMemoryManager's unlinking (Python overrides Server.shutdown).
    /// Hooks must not throw.
    void add_exit_hook(std::function<void()> f);
    void run_exit_hooks() const;

private:
    mutable std::mutex mu_;
    std::vector<std::function<void()>> exit_hooks_;
    std::map<std::string, std::shared_ptr<type_entry>> by_typeid_;
    std::map<std::string, python_alias> aliases_;
    std::unordered_map<std::type_index, std::string> typeid_by_proxy_;
    std::unordered_map<std::type_index, std::shared_ptr<type_entry>> by_referent_;
};

template <class F, class R, class... P>
factory_fn make_factory(F f, type_list<P...>) {
    return [f = std::move(f)](const char* body, std::size_t n) -> std::shared_ptr<void> {
        std::tuple<wire_t<P>...> args;
        load_args(body, n, args);
        auto r = std::apply(f, std::move(args));
        if constexpr (is_shared_ptr<decltype(r)>::value) {
            // The server casts the pointer back to R*: convert first, so a
            // derived object (any base offset) or another class cannot pass.
            constexpr bool is_r = std::is_convertible_v<typename decltype(r)::element_type*, R*>;
            static_assert(is_r, "multiprocessing: register_type<T>(typeid, callable): the callable must return a T, "
                                "a std::shared_ptr<T> or a std::shared_ptr to a class derived from T");
            if constexpr (is_r) return std::static_pointer_cast<void>(std::shared_ptr<R>(std::move(r)));
            else return nullptr;
        } else {
            return std::make_shared<R>(std::move(r));
        }
    };
}

// A signature's result and wire parameters; callable_traits takes them from
// a function pointer or a lambda's operator() (two names, not a template
// that derives from itself, which Doxygen reports as recursive).
template <class S>
struct signature_traits;
template <class R, class... P>
struct signature_traits<R (*)(P...)> {
    using result_type = R;
    using wire_params = type_list<wire_t<P>...>;
};
template <class R, class C, class... P>
struct signature_traits<R (C::*)(P...) const> : signature_traits<R (*)(P...)> {};
template <class R, class C, class... P>
struct signature_traits<R (C::*)(P...)> : signature_traits<R (*)(P...)> {};
template <class F, class = void>
struct callable_traits : signature_traits<F> {};
template <class F>
struct callable_traits<F, std::void_t<decltype(&F::operator())>> : signature_traits<decltype(&F::operator())> {};

template <class T, class... P>
std::uint64_t factory_signature(type_list<P...>) { return constructor_signature<T, P...>(); }
template <class... P>
std::string factory_text(type_list<P...>) { return type_names<P...>(); }
template <class... P>
constexpr pk::args_fn factory_py_args(type_list<P...>) { return pk::args_converter<P...>(); }

/// Python's default values for the trailing parameters of T's methods,
/// which a Python caller may leave out (a built-in type's C++ proxy fills
/// them in itself).  Specialized for the built-in types.
template <class T, class = void>
struct python_defaults {
    static void apply(type_entry&) {}
};

/// Adds how CPython's proxies call a method (see type_entry::py_methods).
inline void add_py_method(type_entry& e, const std::string& name, std::string target, std::vector<std::string> names,
                          std::vector<pk::value> defaults, std::vector<pk::value> fixed = {}) {
    e.py_methods[name] = {std::move(target), std::move(names), std::move(defaults), std::move(fixed)};
}

/// Builds the registry entry for referent T served through proxy type ProxyT.
template <class T, class ProxyT>
std::shared_ptr<type_entry> make_entry(const std::string& typeid_) {
    auto e = std::make_shared<type_entry>();
    e->typeid_ = typeid_;
    e->referent = std::type_index(typeid(T));
    e->proxy = std::type_index(typeid(ProxyT));
    e->referent_name = multiprocessing::detail::type_name<T>();
    e->fingerprint = fingerprint<ProxyT>();
    e->methods = exposed_entries<ProxyT>();
    for (auto& m : e->methods) e->by_name.emplace(m.name, &m);
    e->self_locking = self_locking<T>::value;
    e->interface_only = is_interface_referent<T>::value;
    if constexpr (serializable<T>::value) {
        e->getvalue = &getvalue_impl<T>;
        e->getvalue_sig = getvalue_signature<T>();
    }
    if constexpr (is_ostreamable<T>::value) e->str = &str_impl<T>;
    if constexpr (pk::py_conv<T>::ok)
        e->py_getvalue = [](void* obj, std::mutex* mu) {
            object_lock lock(mu);
            return pk::py_conv<T>::to(*static_cast<const T*>(obj));
        };
    python_defaults<T>::apply(*e);
    // A self-locking type cannot be read while calls run on it: its proxies
    // count as outside references (kept alive), never as garbage.
    if constexpr (gc_traverse<T>::holds && !self_locking<T>::value)
        e->traverse = [](const void* obj, const gc_visitor& v) { gc_traverse<T>::run(*static_cast<const T*>(obj), v); };
    if constexpr (has_disconnect_hook<T>::value)
        e->on_disconnect = [](void* obj, std::uint64_t sess, std::uint64_t conn, std::mutex* mu) {
            object_lock lock(mu);
            static_cast<T*>(obj)->_on_disconnect(sess, conn);
        };
    return e;
}

/// What a CPython client's iter(d) walks on a C++ server (typeid
/// 'Iterator', Python's IteratorProxy; registered by
/// SyncManager::register_python_types()): the dict's keys as they were when
/// the iteration began, one __next__ call each.  Differs from Python: a dict
/// changed meanwhile is not noticed (Python's iterator raises RuntimeError).
class PythonIterator {
public:
    explicit PythonIterator(std::vector<object> items) : items_(std::move(items)) {}
    /// Python's __next__: StopIteration after the last.
    object next_item() {
        if (pos_ >= items_.size()) throw StopIteration();
        return items_[pos_++];
    }

private:
    std::vector<object> items_;
    std::size_t pos_ = 0;
};

}  // namespace detail

}  // namespace multiprocessing::managers

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/registry.ipp"
#endif

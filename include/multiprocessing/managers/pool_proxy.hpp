// The client side of SyncManager's Pool: function registration, the typed
// PoolProxy, AsyncResult<R> and IMapIterator<R>, and manager.Pool().
#pragma once

#include "multiprocessing/detail/config.hpp"
#include "multiprocessing/managers/base.hpp"
#include "multiprocessing/detail/pool.hpp"

#include <cstring>
#include <deque>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace multiprocessing::managers {

namespace detail {

/// Result and wire parameter types of a function pointer or call operator.
template <class M>
struct fn_signature;
template <class R, class... P>
struct fn_signature<R (*)(P...)> {
    using result = R;
    using wire_params = type_list<wire_t<P>...>;
    static constexpr std::size_t arity = sizeof...(P);
    template <class... A>
    static constexpr bool accepts() {
        if constexpr (sizeof...(A) != sizeof...(P)) return false;
        else return (std::is_constructible_v<wire_t<P>, A&&> && ...);
    }
};
template <class R, class... P>
struct fn_signature<R (*)(P...) noexcept> : fn_signature<R (*)(P...)> {};
template <class R, class C, class... P>
struct fn_signature<R (C::*)(P...)> : fn_signature<R (*)(P...)> {};
template <class R, class C, class... P>
struct fn_signature<R (C::*)(P...) const> : fn_signature<R (*)(P...)> {};
template <class R, class C, class... P>
struct fn_signature<R (C::*)(P...) noexcept> : fn_signature<R (*)(P...)> {};
template <class R, class C, class... P>
struct fn_signature<R (C::*)(P...) const noexcept> : fn_signature<R (*)(P...)> {};

/// fn_signature of a function pointer or a non-generic lambda.
template <class F, class = void>
struct fn_traits : fn_signature<F> {};
template <class F>
struct fn_traits<F, std::void_t<decltype(&F::operator())>> : fn_signature<decltype(&F::operator())> {};

// Arithmetic values travel as their raw bytes, which is exactly what a
// Boost binary archive writes for them: the same bytes without the cost of
// an archive per item, so either end may take either path.
template <class... T>
constexpr bool all_arithmetic = (std::is_arithmetic_v<T> && ...);

template <class R, class... P>
std::uint64_t pool_signature(type_list<P...>) { return function_signature<wire_t<R>, P...>(); }

template <class F, class R, class... P>
std::shared_ptr<const pool_function> make_pool_function(F f, type_list<P...>) {
    static_assert(!is_shared_ptr<std::decay_t<R>>::value, "multiprocessing: a pool function cannot return a shared object");
    auto pf = std::make_shared<pool_function>();
    pf->sig = pool_signature<R>(type_list<P...>{});
    pf->text = multiprocessing::detail::type_name<wire_t<R>>() + "(" + type_names<P...>() + ")";
    pf->call = [f = std::move(f)](const char* p, std::size_t n, std::string& out) {
        std::tuple<P...> args;
        if constexpr (sizeof...(P) > 0 && all_arithmetic<P...>) {
            std::size_t at = 0;
            bool fits = true;
            std::apply([&](auto&... a) {
                ((fits = fits && at + sizeof a <= n, fits ? (std::memcpy(&a, p + at, sizeof a), at += sizeof a) : at), ...);
            }, args);
            if (!fits) throw multiprocessing::detail::archive_size_error("truncated pool arguments");
        } else {
            load_args(p, n, args);
        }
        if constexpr (std::is_void_v<R>) {
            std::apply(f, std::move(args));
            (void)out;
        } else if constexpr (std::is_arithmetic_v<wire_t<R>>) {
            const wire_t<R> r = std::apply(f, std::move(args));
            out.assign(reinterpret_cast<const char*>(&r), sizeof r);
        } else {
            const wire_t<R> r = std::apply(f, std::move(args));
            std::vector<char> buf;
            {
                multiprocessing::detail::vector_sink sink(buf);
                multiprocessing::detail::oarchive oa(sink);
                oa << r;
            }
            out.assign(buf.begin(), buf.end());
        }
    };
    return pf;
}

template <class... W, class... A>
std::string encode_args(type_list<W...>, A&&... args) {
    if constexpr (sizeof...(W) > 0 && all_arithmetic<W...>) {
        std::string s;
        s.reserve((sizeof(W) + ...));
        auto put = [&](auto v) { s.append(reinterpret_cast<const char*>(&v), sizeof v); };
        (put(to_wire<W>(std::forward<A>(args))), ...);
        return s;
    }
    std::vector<char> buf;
    write_args(buf, type_list<W...>{}, std::forward<A>(args)...);
    return std::string(buf.begin(), buf.end());
}

/// A result archive as the caller's type.
template <class R>
R decode_result(const std::string& s) {
    if constexpr (std::is_void_v<R>) {
        (void)s;
    } else if constexpr (std::is_arithmetic_v<R>) {
        if (s.size() != sizeof(R)) throw multiprocessing::detail::archive_size_error("pool result of the wrong size");
        R r;
        std::memcpy(&r, s.data(), sizeof r);
        return r;
    } else {
        multiprocessing::detail::memory_source src(s.data(), s.size());
        multiprocessing::detail::iarchive ia(src);
        R r{};
        ia >> r;
        return r;
    }
}
template <class R>
R decode_first(std::vector<std::string>&& v) { return decode_result<R>(v.at(0)); }
template <class V>
V decode_all(std::vector<std::string>&& v) {
    V out;
    out.reserve(v.size());
    for (auto& s : v) out.push_back(decode_result<typename V::value_type>(s));
    return out;
}

/// The wire parameter types of a tuple-like item (starmap by name).
template <class T, class I = std::make_index_sequence<std::tuple_size_v<T>>>
struct tuple_wire;
template <class T, std::size_t... I>
struct tuple_wire<T, std::index_sequence<I...>> {
    using type = type_list<wire_t<std::tuple_element_t<I, T>>...>;
};

template <class Range>
using range_value_t = std::decay_t<decltype(*std::begin(std::declval<const Range&>()))>;

/// The registered name of a function pointer, or ValueError.
template <class F>
std::string registered_name(F* f) {
    std::string n = function_table::instance().name_of(function_key(f));
    if (n.empty())
        throw ValueError("Pool: this function is not registered (use register_function or MP_REGISTER_FUNCTION)");
    return n;
}

}  // namespace detail

/// Makes a function callable by a manager's Pool under `name` (Python
/// pickles functions by qualified name; C++ needs them named once).  f is a
/// function or a non-generic lambda; its parameters and result must be
/// Boost-serializable.  Register in every program that uses the name
/// (server and clients alike), before the manager starts: the server and
/// its workers are forked and only know what was registered then.
template <class F>
void register_function(const std::string& name, F f) {
    using D = std::decay_t<F>;
    using tr = detail::fn_traits<D>;
    std::string key;
    if constexpr (std::is_pointer_v<D>) key = detail::function_key(static_cast<D>(f));
    detail::function_table::instance().add(
        name, detail::make_pool_function<D, typename tr::result>(D(std::move(f)), typename tr::wire_params{}), key);
}

#define MP_DETAIL_POOL_CAT2(a, b) a##b
#define MP_DETAIL_POOL_CAT(a, b) MP_DETAIL_POOL_CAT2(a, b)
/// Registers function f under its own spelling (`MP_REGISTER_FUNCTION(sqr)`
/// makes "sqr") before main(), at namespace scope.
#define MP_REGISTER_FUNCTION(f)                                                            \
    [[maybe_unused]] static const bool MP_DETAIL_POOL_CAT(mp_registered_function_, __COUNTER__) = \
        (::multiprocessing::managers::register_function(#f, &f), true);

/// Python's AutoProxy[AsyncResult], untyped: results as archives.  Use the
/// AsyncResult<R> that apply_async()/map_async() return.
template <>
class Proxy<AsyncResultRef> : public ProxyBase<AsyncResultRef> {
    using R = AsyncResultRef;

public:
    using ProxyBase<R>::ProxyBase;
    std::vector<std::string> get(std::optional<double> timeout = std::nullopt) const;
    bool wait(std::optional<double> timeout = std::nullopt) const;
    bool ready() const;
    bool successful() const;
    template <class MpSelf = R>  // lazy: built only where used
    static auto _exposed_() {
        using detail::method_desc;
        using R = MpSelf;
        return std::make_tuple(method_desc<&R::get>{"get"}, method_desc<&R::wait>{"wait"},
                               method_desc<&R::ready>{"ready"}, method_desc<&R::successful>{"successful"});
    }
};

/// Python's IteratorProxy, untyped.  Use IMapIterator<R>.
template <>
class Proxy<IteratorRef> : public ProxyBase<IteratorRef> {
    using R = IteratorRef;

public:
    using ProxyBase<R>::ProxyBase;
    std::string next(std::optional<double> timeout = std::nullopt) const;
    std::vector<std::string> next_batch(long long max, std::optional<double> timeout = std::nullopt) const;
    template <class MpSelf = R>  // lazy: built only where used
    static auto _exposed_() {
        using detail::method_desc;
        using R = MpSelf;
        return std::make_tuple(method_desc<&R::next>{"next"}, method_desc<&R::next_batch>{"next_batch"});
    }
};

/// Python's pool.AsyncResult (a proxy to the one in the manager): get,
/// wait, ready, successful.  R is the function's result type (for
/// map_async, a std::vector of it).  Differs from Python: wait() returns
/// whether the result is ready.
template <class R>
class AsyncResult {
public:
    AsyncResult() = default;
    AsyncResult(Proxy<AsyncResultRef> p, R (*decode)(std::vector<std::string>&&))
        : proxy_(std::move(p)), decode_(decode) {}

    /// The result, or the worker's exception raised again here;
    /// TimeoutError if not ready within timeout (seconds; none = forever).
    R get(std::optional<double> timeout = std::nullopt) const { return decode_(proxy_.get(timeout)); }
    /// Waits up to timeout; true if the result is ready.
    bool wait(std::optional<double> timeout = std::nullopt) const { return proxy_.wait(timeout); }
    bool ready() const { return proxy_.ready(); }
    /// Whether the call raised no exception; ValueError if not ready yet.
    bool successful() const { return proxy_.successful(); }
    /// The underlying proxy (to pass to another process and rewrap there).
    const Proxy<AsyncResultRef>& proxy() const { return proxy_; }

private:
    Proxy<AsyncResultRef> proxy_;
    R (*decode_)(std::vector<std::string>&&) = nullptr;
};

/// Python's IMapIterator (imap/imap_unordered): next(timeout), or a
/// range-for loop.  StopIteration after the last result; an item whose
/// call raised raises its exception at its position (imap) and the
/// iteration can go on past it, as in Python.  Differs from Python: each
/// round trip fetches every result already there (up to 1024), not one;
/// copies share that buffer.
template <class R>
class IMapIterator {
public:
    IMapIterator() = default;
    explicit IMapIterator(Proxy<IteratorRef> p) : proxy_(std::move(p)), buffer_(std::make_shared<std::deque<std::string>>()) {}

    /// Python's next(timeout): TimeoutError when nothing comes in time.
    R next(std::optional<double> timeout = std::nullopt) const {
        if (!buffer_) throw ValueError("empty IMapIterator");
        if (buffer_->empty()) {
            auto batch = proxy_.next_batch(1024, timeout);
            for (auto& s : batch) buffer_->push_back(std::move(s));
        }
        std::string s = std::move(buffer_->front());
        buffer_->pop_front();
        return detail::decode_result<R>(s);
    }

    class iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = R;
        using difference_type = std::ptrdiff_t;
        using pointer = const R*;
        using reference = const R&;
        iterator() = default;
        explicit iterator(const IMapIterator* it) : it_(it) { ++*this; }
        const R& operator*() const { return *cur_; }
        const R* operator->() const { return &*cur_; }
        iterator& operator++() {
            try {
                cur_ = it_->next();
            } catch (const StopIteration&) {
                it_ = nullptr;
                cur_.reset();
            }
            return *this;
        }
        friend bool operator==(const iterator& a, const iterator& b) { return a.it_ == b.it_; }
        friend bool operator!=(const iterator& a, const iterator& b) { return a.it_ != b.it_; }

    private:
        const IMapIterator* it_ = nullptr;
        std::optional<R> cur_;
    };
    iterator begin() const { return iterator(this); }
    iterator end() const { return iterator(); }
    const Proxy<IteratorRef>& proxy() const { return proxy_; }

private:
    Proxy<IteratorRef> proxy_;
    std::shared_ptr<std::deque<std::string>> buffer_;
};

/// Python's PoolProxy (manager.Pool()): the pool and its workers live in
/// the manager's server process.  Name the function itself for a checked,
/// typed call (`pool.apply(sqr, 7)`, the result type deduced), or by its
/// registered name with the result type given (`pool.apply<int>("sqr", 7)`),
/// which a remote client can use without the function's code.  A worker
/// killed while running a task fails that task with ProcessError (CPython's
/// pool hangs) and is replaced.
///
/// Differs from Python: no callback/error_callback, initializer or
/// maxtasksperchild; join(timeout) returns whether the workers are gone;
/// keyword arguments do not exist (pass every argument).
template <>
class Proxy<PoolRef> : public ProxyBase<PoolRef> {
    using Ref = PoolRef;
    template <class F>
    using if_function = std::enable_if_t<std::is_function_v<F>, int>;
    template <class R>
    using wire_result_t = detail::wire_t<R>;
    template <class F>
    using result_of = wire_result_t<typename detail::fn_traits<F*>::result>;

public:
    using ProxyBase<Ref>::ProxyBase;

    /// Python's apply(f, args): runs f(args...) in a worker and returns its result.
    template <class F, class... A, if_function<F> = 0>
    auto apply(F* f, A&&... args) const {
        using tr = detail::fn_traits<F*>;
        check_args<tr, A...>();
        using Res = wire_result_t<typename tr::result>;
        return detail::decode_result<Res>(_call_exposed_<&Ref::apply>(
            "apply", detail::registered_name(f), detail::pool_signature<typename tr::result>(typename tr::wire_params{}),
            detail::encode_args(typename tr::wire_params{}, std::forward<A>(args)...)));
    }
    /// apply() by registered name; R is the function's result type.
    template <class R = void, class... A>
    wire_result_t<R> apply(std::string_view name, A&&... args) const {
        using W = detail::type_list<detail::wire_t<A>...>;
        return detail::decode_result<wire_result_t<R>>(_call_exposed_<&Ref::apply>(
            "apply", std::string(name), detail::pool_signature<R>(W{}), detail::encode_args(W{}, std::forward<A>(args)...)));
    }

    /// Python's apply_async(f, args).
    template <class F, class... A, if_function<F> = 0>
    auto apply_async(F* f, A&&... args) const {
        using tr = detail::fn_traits<F*>;
        check_args<tr, A...>();
        using Res = wire_result_t<typename tr::result>;
        return AsyncResult<Res>(
            _call_exposed_<&Ref::apply_async>("apply_async", detail::registered_name(f),
                                              detail::pool_signature<typename tr::result>(typename tr::wire_params{}),
                                              detail::encode_args(typename tr::wire_params{}, std::forward<A>(args)...)),
            &detail::decode_first<Res>);
    }
    template <class R = void, class... A>
    AsyncResult<wire_result_t<R>> apply_async(std::string_view name, A&&... args) const {
        using W = detail::type_list<detail::wire_t<A>...>;
        return AsyncResult<wire_result_t<R>>(
            _call_exposed_<&Ref::apply_async>("apply_async", std::string(name), detail::pool_signature<R>(W{}),
                                              detail::encode_args(W{}, std::forward<A>(args)...)),
            &detail::decode_first<wire_result_t<R>>);
    }

    /// Python's map(f, items, chunksize): f(item) for each item, in order.
    template <class F, class Range, if_function<F> = 0>
    auto map(F* f, const Range& items, std::optional<long long> chunksize = std::nullopt) const {
        return many<&Ref::map, result_of<F>, false>("map", f, items, chunksize);
    }
    template <class R, class Range>
    std::vector<R> map(std::string_view name, const Range& items, std::optional<long long> chunksize = std::nullopt) const {
        return many_by_name<&Ref::map, R, false>("map", name, items, chunksize);
    }
    /// Python's map_async.
    template <class F, class Range, if_function<F> = 0>
    auto map_async(F* f, const Range& items, std::optional<long long> chunksize = std::nullopt) const {
        return many_async<&Ref::map_async, result_of<F>, false>("map_async", f, items, chunksize);
    }
    template <class R, class Range>
    AsyncResult<std::vector<R>> map_async(std::string_view name, const Range& items,
                                          std::optional<long long> chunksize = std::nullopt) const {
        return many_async_by_name<&Ref::map_async, R, false>("map_async", name, items, chunksize);
    }
    /// Python's starmap: items are tuples (or pairs) of arguments.
    template <class F, class Range, if_function<F> = 0>
    auto starmap(F* f, const Range& items, std::optional<long long> chunksize = std::nullopt) const {
        return many<&Ref::starmap, result_of<F>, true>("starmap", f, items, chunksize);
    }
    template <class R, class Range>
    std::vector<R> starmap(std::string_view name, const Range& items, std::optional<long long> chunksize = std::nullopt) const {
        return many_by_name<&Ref::starmap, R, true>("starmap", name, items, chunksize);
    }
    /// Python's starmap_async.
    template <class F, class Range, if_function<F> = 0>
    auto starmap_async(F* f, const Range& items, std::optional<long long> chunksize = std::nullopt) const {
        return many_async<&Ref::starmap_async, result_of<F>, true>("starmap_async", f, items, chunksize);
    }
    template <class R, class Range>
    AsyncResult<std::vector<R>> starmap_async(std::string_view name, const Range& items,
                                              std::optional<long long> chunksize = std::nullopt) const {
        return many_async_by_name<&Ref::starmap_async, R, true>("starmap_async", name, items, chunksize);
    }
    /// Python's imap(f, items, chunksize=1): results in order, as they come.
    template <class F, class Range, if_function<F> = 0>
    auto imap(F* f, const Range& items, std::optional<long long> chunksize = std::nullopt) const {
        return IMapIterator<result_of<F>>(many_raw<&Ref::imap, false>("imap", f, items, chunksize));
    }
    template <class R, class Range>
    IMapIterator<R> imap(std::string_view name, const Range& items, std::optional<long long> chunksize = std::nullopt) const {
        return IMapIterator<R>(many_raw_by_name<&Ref::imap, R, false>("imap", name, items, chunksize));
    }
    /// Python's imap_unordered: results in the order they finish.
    template <class F, class Range, if_function<F> = 0>
    auto imap_unordered(F* f, const Range& items, std::optional<long long> chunksize = std::nullopt) const {
        return IMapIterator<result_of<F>>(many_raw<&Ref::imap_unordered, false>("imap_unordered", f, items, chunksize));
    }
    template <class R, class Range>
    IMapIterator<R> imap_unordered(std::string_view name, const Range& items,
                                   std::optional<long long> chunksize = std::nullopt) const {
        return IMapIterator<R>(many_raw_by_name<&Ref::imap_unordered, R, false>("imap_unordered", name, items, chunksize));
    }

    /// Python's close(): no new tasks; workers exit once the queue is done.
    void close() const;
    /// Python's terminate(): workers are stopped now (SIGTERM, then
    /// SIGKILL); unfinished results fail with ProcessError instead of
    /// never arriving.
    void terminate() const;
    /// Python's join(): waits for the workers to exit after close() or
    /// terminate() (ValueError before); false if timeout passed first.
    bool join(std::optional<double> timeout = std::nullopt) const;
    /// The worker processes' pids (not in Python's proxy).
    std::vector<long long> pids() const;

    template <class MpSelf = Ref>  // lazy: built only where used
    static auto _exposed_() {
        using detail::method_desc;
        using Ref = MpSelf;
        return std::make_tuple(
            method_desc<&Ref::apply>{"apply"}, method_desc<&Ref::apply_async>{"apply_async"},
            method_desc<&Ref::map>{"map"}, method_desc<&Ref::map_async>{"map_async"},
            method_desc<&Ref::starmap>{"starmap"}, method_desc<&Ref::starmap_async>{"starmap_async"},
            method_desc<&Ref::imap>{"imap"}, method_desc<&Ref::imap_unordered>{"imap_unordered"},
            method_desc<&Ref::close>{"close"}, method_desc<&Ref::terminate>{"terminate"},
            method_desc<&Ref::join>{"join"}, method_desc<&Ref::pids>{"pids"});
    }

private:
    template <class tr, class... A>
    static constexpr void check_args() {
        static_assert(sizeof...(A) == tr::arity, "multiprocessing: wrong number of arguments for this pool function");
        static_assert(sizeof...(A) != tr::arity || tr::template accepts<A...>(),
                      "multiprocessing: argument types do not match the pool function's parameters");
    }

    template <class T, class = void>
    struct is_tuple_like : std::false_type {};
    template <class T>
    struct is_tuple_like<T, std::void_t<decltype(std::tuple_size<T>::value)>> : std::true_type {};

    // Each item as an argument archive: the item itself, or (starmap) a
    // tuple's elements.
    template <bool Star, class... W, class Range>
    static std::vector<std::string> encode_items(detail::type_list<W...> w, const Range& items) {
        std::vector<std::string> v;
        for (const auto& item : items) {
            if constexpr (Star)
                v.push_back(std::apply([&](const auto&... a) { return detail::encode_args(w, a...); }, item));
            else
                v.push_back(detail::encode_args(w, item));
        }
        return v;
    }

    // The wire parameters a by-name call sends for items of type T.
    template <bool Star, class T>
    struct item_params { using type = detail::type_list<detail::wire_t<T>>; };
    template <class T>
    struct item_params<true, T> { using type = typename detail::tuple_wire<T>::type; };

    static long long chunk(std::optional<long long> c);

    template <auto M, bool Star, class F, class Range>
    auto many_raw(const char* method, F* f, const Range& items, std::optional<long long> chunksize) const {
        using tr = detail::fn_traits<F*>;
        using T = detail::range_value_t<Range>;
        if constexpr (Star) {
            static_assert(is_tuple_like<T>::value, "multiprocessing: starmap needs tuples (or pairs) of arguments");
            static_assert(std::tuple_size<T>::value == tr::arity,
                          "multiprocessing: starmap's tuples do not match the pool function's parameters");
        } else {
            static_assert(tr::arity == 1, "multiprocessing: map needs a function of one argument (starmap for more)");
            static_assert(tr::arity != 1 || tr::template accepts<const T&>(),
                          "multiprocessing: the items do not convert to the pool function's parameter");
        }
        return _call_exposed_<M>(method, detail::registered_name(f),
                                 detail::pool_signature<typename tr::result>(typename tr::wire_params{}),
                                 encode_items<Star>(typename tr::wire_params{}, items), chunk(chunksize));
    }
    template <auto M, class R, bool Star, class Range>
    auto many_raw_by_name(const char* method, std::string_view name, const Range& items,
                          std::optional<long long> chunksize) const {
        using W = typename item_params<Star, detail::range_value_t<Range>>::type;
        return _call_exposed_<M>(method, std::string(name), detail::pool_signature<R>(W{}), encode_items<Star>(W{}, items),
                                 chunk(chunksize));
    }
    template <auto M, class Res, bool Star, class F, class Range>
    std::vector<Res> many(const char* method, F* f, const Range& items, std::optional<long long> chunksize) const {
        static_assert(!std::is_void_v<Res>, "multiprocessing: map needs a function that returns a value");
        return detail::decode_all<std::vector<Res>>(many_raw<M, Star>(method, f, items, chunksize));
    }
    template <auto M, class R, bool Star, class Range>
    std::vector<R> many_by_name(const char* method, std::string_view name, const Range& items,
                                std::optional<long long> chunksize) const {
        return detail::decode_all<std::vector<R>>(many_raw_by_name<M, R, Star>(method, name, items, chunksize));
    }
    template <auto M, class Res, bool Star, class F, class Range>
    AsyncResult<std::vector<Res>> many_async(const char* method, F* f, const Range& items,
                                             std::optional<long long> chunksize) const {
        static_assert(!std::is_void_v<Res>, "multiprocessing: map needs a function that returns a value");
        return AsyncResult<std::vector<Res>>(many_raw<M, Star>(method, f, items, chunksize),
                                             &detail::decode_all<std::vector<Res>>);
    }
    template <auto M, class R, bool Star, class Range>
    AsyncResult<std::vector<R>> many_async_by_name(const char* method, std::string_view name, const Range& items,
                                                   std::optional<long long> chunksize) const {
        return AsyncResult<std::vector<R>>(many_raw_by_name<M, R, Star>(method, name, items, chunksize),
                                           &detail::decode_all<std::vector<R>>);
    }
};

using PoolProxy = Proxy<PoolRef>;

namespace detail {

/// Mixin of SyncManager: manager.Pool(processes).
template <class Manager>
class pool_factories {
public:
    /// Python's manager.Pool(processes): none = one worker per CPU;
    /// ValueError below 1.
    Proxy<PoolRef> Pool(std::optional<long long> processes = std::nullopt) {
        (void)&pool_registered::done;
        return static_cast<Manager&>(*this).template create_as<PoolRef>("Pool", processes.has_value(),
                                                                         processes.value_or(0));
    }

protected:
    static void register_pool_types() { (void)pool_registered::done; }

private:
    // Registered before main() too, so a server forked later knows them.
    struct pool_registered {
        static bool add() {
            Manager::template register_type<PoolRef>("Pool");
            Manager::template register_type<AsyncResultRef>("AsyncResult");
            // Not CPython's 'Iterator' (iter() of a shared dict for Python
            // clients, another class here): one typeid names one class.
            Manager::template register_type<IteratorRef>("PoolIterator");
            (void)&constructor_registrar<PoolRef, bool, long long>::registered;
            register_exception<StopIteration>();
            return true;
        }
        static bool done;  // not const: see constructor_registrar::registered
    };
};

template <class Manager>
bool pool_factories<Manager>::pool_registered::done = pool_factories<Manager>::pool_registered::add();

}  // namespace detail
}  // namespace multiprocessing::managers

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/pool_proxy.ipp"
#endif

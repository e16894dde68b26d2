// The core of multiprocessing.managers: BaseManager, BaseProxy, Token and
// Proxy<T> (<multiprocessing/managers.hpp> includes it with the rest).
// A server process owns shared objects; other processes call their methods
// through typed proxies.
//
//   class Counter { public: int increment(); int value() const; ... };
//   MP_EXPOSE(Counter, increment, value)
//   struct MyManager : mp::managers::BaseManager<MyManager> {};
//   MyManager::register_type<Counter>("Counter");
//   MyManager m; m.start();
//   auto c = m.create<Counter>(0);   // Python: m.Counter(0)
//   c.increment();                   // runs in the server, atomically
#pragma once

#include "multiprocessing/detail/config.hpp"
#include "multiprocessing/connection.hpp"
#include "multiprocessing/detail/archive.hpp"
#include "multiprocessing/detail/async.hpp"
#include "multiprocessing/detail/client.hpp"
#include "multiprocessing/managers/expose.hpp"
#include "multiprocessing/managers/future.hpp"
#include "multiprocessing/detail/serialization/std.hpp"
#include "multiprocessing/detail/protocol.hpp"
#include "multiprocessing/detail/registry.hpp"
#include "multiprocessing/managers/server.hpp"
#include "multiprocessing/exceptions.hpp"
#include "multiprocessing/process.hpp"

#include <boost/serialization/split_member.hpp>

#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>

namespace multiprocessing::managers {

namespace detail {
struct from_ref_t {};
constexpr from_ref_t from_ref{};

template <class R>
struct client_result { using type = wire_t<R>; };
template <>
struct client_result<void> { using type = void; };
// A proxy class (MP_PROXY, MP_INTERFACE) stands for itself.
template <class T>
using proxy_for_t = std::conditional_t<std::is_base_of_v<BaseProxy, T>, T, Proxy<T>>;
template <class U>
struct client_result<std::shared_ptr<U>> { using type = proxy_for_t<std::remove_const_t<U>>; };
/// What a proxy call returns for a method returning R.
template <class R>
using client_result_t = typename client_result<R>::type;
}  // namespace detail

/// Python's BaseProxy: a handle on one shared object.  Copies share one
/// reference; the object lives while any proxy to it exists in any process.
///
/// Differs from Python: reference counting is per process (copying a proxy
/// costs no round trip), a proxy works in forked children over the child's
/// own connection, and it is serialized with Boost (as its Token) instead of
/// pickled.  Members keep Python's leading underscore so they never clash
/// with exposed method names.
class BaseProxy {
public:
    BaseProxy() = default;
    BaseProxy(detail::from_ref_t, std::shared_ptr<detail::ref_entry> r) : ref_(std::move(r)) {}

    /// False for a default-constructed (empty) proxy.
    explicit operator bool() const { return ref_ != nullptr; }

    /// Python's _token: typeid, server address and object id.
    const Token& _token() const { return entry().token; }

    /// Internal: this proxy's reference (its endpoint, token and the
    /// manager epoch it belongs to; what call_async sends through).  Throws
    /// as a call would if the proxy is empty or its manager shut down.
    const detail::ref_entry& _entry_() const { return entry(); }

    /// Python's _callmethod(name, args): calls a method by name, checked only
    /// at run time.  R must be the method's exact result type and the
    /// arguments its exact parameter types, or the server refuses the call.
    template <class R = void, class... A>
    detail::client_result_t<R> _callmethod(std::string_view name, A&&... args) const {
        static_assert(!(detail::is_data_pointer_v<A> || ...),
                      "multiprocessing: a pointer cannot be sent to another process; send the value it points to");
        std::uint64_t sig = detail::signature_hash<typename detail::result_wire<R>::type, detail::wire_t<A>...>("method");
        return _invoke<R>(name, sig, detail::type_list<detail::wire_t<A>...>{}, std::forward<A>(args)...);
    }

    /// Python's repr(proxy): <Proxy object, typeid 'Counter' at 0x1>.
    std::string _repr() const {
        if (!ref_) return "<empty proxy>";
        std::ostringstream os;
        os << "<Proxy object, typeid '" << ref_->token.typeid_ << "' at 0x" << std::hex << ref_->token.id << ">";
        return os.str();
    }

    friend bool operator==(const BaseProxy& a, const BaseProxy& b) {
        if (!a.ref_ || !b.ref_) return a.ref_ == b.ref_;
        return a.ref_->token == b.ref_->token;
    }
    friend bool operator!=(const BaseProxy& a, const BaseProxy& b) { return !(a == b); }

    // Travels as its Token; the receiving process takes its own reference.
    template <class Ar>
    void save(Ar& ar, unsigned) const {
        Token t = ref_ ? ref_->token : Token{};
        ar << t;
    }
    template <class Ar>
    void load(Ar& ar, unsigned) {
        Token t;
        ar >> t;
        if (t.id == 0) { ref_.reset(); return; }
        ref_ = detail::client_state::instance().get(t.address).acquire(t);
    }
    BOOST_SERIALIZATION_SPLIT_MEMBER()

protected:
    const detail::ref_entry& entry() const {
        if (!ref_) throw ValueError("empty proxy");
        if (ref_->epoch != ref_->ep->epoch())
            throw ConnectionError("the manager at " + ref_->token.address.str() + " that owned this object has shut down");
        return *ref_;
    }

    template <class R, class... W, class... A>
    detail::client_result_t<R> _invoke(std::string_view name, std::uint64_t sig, detail::type_list<W...>,
                                       A&&... args) const {
        const detail::ref_entry& e = entry();
        auto body = e.ep->call([&](std::vector<char>& buf, std::uint64_t rid) {
            detail::begin_request(buf, detail::kind::call, rid, e.token.id, sig, name.data(), name.size());
            detail::write_args(buf, detail::type_list<W...>{}, std::forward<A>(args)...);
        });
        return _read_result<R>(body.first, body.second);
    }

protected:

public:
    // Internal: proxy type P over a reference held by an object (object::as_proxy).
    template <class P>
    static P _from_entry(const std::shared_ptr<detail::ref_entry>& r) {
        if constexpr (!std::is_same_v<P, BaseProxy>) {
            if (!detail::proxy_typeid_check<typename P::referent_type>::ok(r->token.typeid_))
                throw TypeError("the object holds a proxy of typeid '" + r->token.typeid_ + "', not a " +
                                multiprocessing::detail::type_name<P>());
        }
        return P(detail::from_ref, r);
    }

    // Internal: decodes a reply body as the result of a method returning R.
    template <class R>
    static detail::client_result_t<R> _read_result(const char* p, std::size_t n) {
        using Res = detail::client_result_t<R>;
        multiprocessing::detail::received_blocks_scope unclaimed_blocks;  // a block the result did not take
        if constexpr (std::is_void_v<Res>) {
            (void)p;
            (void)n;
        } else {
            if constexpr (std::is_same_v<Res, std::decay_t<R>> && multiprocessing::detail::plain_wire_v<Res>) {
                Res r{};
                multiprocessing::detail::plain_reader{p, n}.get(r);
                return r;
            }
            detail::owed_scope unclaimed;  // what the reply gave and no proxy took goes back
            multiprocessing::detail::memory_source src(p, n);
            multiprocessing::detail::iarchive ia(src);
            if constexpr (detail::is_shared_ptr<std::decay_t<R>>::value) {
                Token t;
                ia >> t;
                return Res(detail::from_ref, detail::client_state::instance().get(t.address).adopt(t));
            } else {
                Res r{};
                ia >> r;
                return r;
            }
        }
    }

    std::shared_ptr<detail::ref_entry> ref_;
};

/// Base of every typed proxy of T: typed calls, _getvalue() and printing.
template <class T>
class ProxyBase : public BaseProxy {
public:
    using referent_type = T;
    using BaseProxy::BaseProxy;

    /// Python's _getvalue(): a copy of the referent (T must be serializable).
    T _getvalue() const {
        static_assert(serializable<T>::value,
                      "multiprocessing: _getvalue() needs a Boost-serializable referent type");
        return this->template _invoke<T>("#getvalue", detail::getvalue_signature<T>(), detail::type_list<>{});
    }

    /// Python's str(proxy): the referent printed with its operator<< when it
    /// has one, else the proxy's repr.
    friend std::ostream& operator<<(std::ostream& os, const ProxyBase& p) {
        if constexpr (detail::is_ostreamable<T>::value) {
            if (p) return os << p.template _invoke<std::string>("#str", detail::str_signature(), detail::type_list<>{});
        }
        return os << p._repr();
    }

protected:
    // Called by the member function MP_EXPOSE generates for overloads: O
    // names each overload (O::pointer<Sig>()); the arguments pick one.
    template <class O, class... Sigs, class... A>
    decltype(auto) _call_overload_(std::string_view name, A&&... args) const {
        constexpr std::size_t i =
            detail::overload_pick<detail::type_list<A...>, decltype(O::template pointer<Sigs>())...>::value;
        static_assert(i < sizeof...(Sigs),
                      "multiprocessing: no exposed overload of this method takes these arguments");
        if constexpr (i < sizeof...(Sigs)) {
            constexpr auto pointers = std::make_tuple(O::template pointer<Sigs>()...);
            return this->template _call_exposed_<std::get<i>(pointers)>(name, std::forward<A>(args)...);
        }
    }

    // Called by the member functions MP_EXPOSE generates: fewer arguments
    // than M takes leave the rest to M's default arguments, which the
    // server applies (Caller calls M by name).
    template <auto M, class Caller, class... A>
    decltype(auto) _call_defaulted_(std::string_view name, A&&... args) const {
        using MP = decltype(M);
        if constexpr (sizeof...(A) < detail::method_traits<MP>::arity) {
            constexpr bool ok = detail::omits_ok_v<Caller, MP, sizeof...(A)>;
            static_assert(ok,
                          "multiprocessing: wrong number of arguments for this exposed method (only "
                          "parameters with default arguments may be left out)");
            if constexpr (ok)
                return this->template _call_typed_<detail::truncated_t<MP, sizeof...(A)>>(name,
                                                                                         std::forward<A>(args)...);
        } else {
            return this->template _call_typed_<MP>(name, std::forward<A>(args)...);
        }
    }

    template <auto M, class... A>
    decltype(auto) _call_exposed_(std::string_view name, A&&... args) const {
        return this->template _call_typed_<decltype(M)>(name, std::forward<A>(args)...);
    }

    // A call of a method whose member function type is MP.
    template <class MP, class... A>
    decltype(auto) _call_typed_(std::string_view name, A&&... args) const {
        using tr = detail::method_traits<MP>;
        static_assert(tr::template arity_ok<A...>(),
                      "multiprocessing: wrong number of arguments for this exposed method");
        static_assert(!tr::template arity_ok<A...>() || tr::template accepts<A...>(),
                      "multiprocessing: argument types do not match the exposed method's parameters");
        static_assert(!(detail::is_data_pointer_v<A> || ...),
                      "multiprocessing: a pointer cannot be sent to another process (a parameter of type bool "
                      "would receive True); send the value it points to");
        if constexpr (tr::template accepts<A...>())
            return this->template _invoke<typename tr::result_type>(name, detail::method_signature_of<MP>(),
                                                                    typename tr::wire_params{},
                                                                    std::forward<A>(args)...);
    }
};

namespace detail {
/// The proxy of a class with no MP_EXPOSE: no methods.
template <class T>
class unexposed_proxy : public ProxyBase<T> {
public:
    using ProxyBase<T>::ProxyBase;
    static std::tuple<> _exposed_() { return {}; }
};
/// MP_EXPOSE's class for T, found by argument-dependent lookup.
template <class T, class = void>
struct exposed_proxy {
    using type = unexposed_proxy<T>;
};
template <class T>
struct exposed_proxy<T, std::void_t<decltype(multiprocessing_exposed_proxy(static_cast<T*>(nullptr),
                                                                           ::multiprocessing_expose_tag{}))>> {
    using type = std::remove_pointer_t<decltype(multiprocessing_exposed_proxy(static_cast<T*>(nullptr),
                                                                              ::multiprocessing_expose_tag{}))>;
};
}  // namespace detail

/// Python's AutoProxy: the proxy of T.  Without MP_EXPOSE(T, ...) it exposes
/// no methods (only _callmethod and _getvalue); with it, the methods listed.
template <class T>
class Proxy : public detail::exposed_proxy<T>::type {
    using base = typename detail::exposed_proxy<T>::type;

public:
    using base::base;
};

/// The base of a class MP_INTERFACE declares: the typed proxy of an object
/// whose class this program does not have, as a Python client registers
/// `register('get_queue')` with no callable.  Calls are checked at compile
/// time against the signatures declared, and the server's registration
/// against them when the manager connects (or at create()).
template <class I>
class InterfaceProxy : public ProxyBase<detail::interface_referent<I>> {
    using base = ProxyBase<detail::interface_referent<I>>;

public:
    using base::base;

protected:
    // Called by the member functions MP_INTERFACE generates: Sigs are the
    // function types declared for one name; the arguments pick one.
    template <class... Sigs, class... A>
    decltype(auto) _call_declared_(std::string_view name, A&&... args) const {
        if constexpr (sizeof...(Sigs) == 1) {
            return this->template _call_typed_<Sigs I::*...>(name, std::forward<A>(args)...);
        } else {
            constexpr std::size_t i = detail::overload_pick<detail::type_list<A...>, Sigs I::*...>::value;
            static_assert(i < sizeof...(Sigs),
                          "multiprocessing: no signature declared for this method takes these arguments");
            if constexpr (i < sizeof...(Sigs))
                return this->template _call_typed_<std::tuple_element_t<i, std::tuple<Sigs I::*...>>>(
                    name, std::forward<A>(args)...);
        }
    }
};

namespace detail {
template <class P>
inline constexpr bool is_interface_proxy_v = is_interface_referent<typename P::referent_type>::value;

template <auto M, class P>
const char* exposed_name() {
    const char* found = nullptr;
    std::apply([&](auto... d) {
        ((found = (!found && std::is_same_v<std::remove_const_t<decltype(d.pointer)>, decltype(M)> &&
                   [&] {
                       if constexpr (std::is_same_v<std::remove_const_t<decltype(d.pointer)>, decltype(M)>) return d.pointer == M;
                       else return false;
                   }())
                      ? d.name
                      : found),
         ...);
    }, P::_exposed_());
    return found;
}
}  // namespace detail

/// A pipelined call: sends at once and returns a managers::Future for the
/// result, so many calls can be in flight on one connection (Python has no
/// equivalent).  Checked at compile time like a normal call:
///   auto f = call_async<&Counter::add>(counter, 5);  f.get();
/// Calls through one proxy run in the order they were made; an exception
/// (or a lost server) arrives through the future.  A process's pipelined
/// calls to one manager share one connection, which the server answers in
/// order: a call that blocks there (an empty Queue's get) holds back the
/// pipelined calls made after it, though not synchronous calls.
template <auto M, class P, class... A>
auto call_async(const P& proxy, A&&... args) {
    using tr = detail::method_traits<decltype(M)>;
    static_assert(tr::template arity_ok<A...>(), "multiprocessing: wrong number of arguments for this exposed method");
    static_assert(!tr::template arity_ok<A...>() || tr::template accepts<A...>(),
                  "multiprocessing: argument types do not match the exposed method's parameters");
    static_assert(!(detail::is_data_pointer_v<A> || ...),
                  "multiprocessing: a pointer cannot be sent to another process (a parameter of type bool "
                  "would receive True); send the value it points to");
    using R = typename tr::result_type;
    using Res = detail::client_result_t<R>;
    const char* name = detail::exposed_name<M, P>();
    if (!name) throw ValueError("call_async: the method is not exposed by this proxy type");
    const detail::ref_entry& ref = proxy._entry_();
    std::uint64_t id = ref.token.id;
    // The result, and the proxy kept alive until the reply, in one block.
    struct call final : detail::async_result<Res> {
        explicit call(const P& p) : keep(p) {}
        std::optional<P> keep;
        void complete(const char* body, std::size_t n, std::exception_ptr err) noexcept override {
            if (err) {
                this->error = err;
            } else {
                try {
                    if constexpr (!std::is_void_v<Res>) this->value.emplace(BaseProxy::_read_result<R>(body, n));
                } catch (...) {
                    this->error = std::current_exception();
                }
            }
            keep.reset();
        }
    };
    auto c = std::make_shared<call>(proxy);
    Future<Res> fut(c);
    std::uint64_t sig = detail::method_signature<M>();
    detail::async_for(*ref.ep, ref.epoch).submit(
        [&](std::vector<char>& buf, std::uint64_t rid) {
            detail::begin_request(buf, detail::kind::call, rid, id, sig, name, std::strlen(name));
            detail::write_args(buf, typename tr::wire_params{}, std::forward<A>(args)...);
        },
        std::move(c));
    return fut;
}

/// A per-thread, per-scope call timeout (Python has none): while it lives,
/// every manager call this thread makes raises TimeoutError if no reply
/// comes within `seconds`, whatever ServerOptions::call_timeout says;
/// std::nullopt waits forever.  Scopes nest; the innermost wins.
///   { managers::call_timeout t(0.5); q.get(); }   // TimeoutError after 0.5 s
class call_timeout {
public:
    explicit call_timeout(std::optional<double> seconds)
        : value_(seconds), outer_(detail::scoped_call_timeout()) {
        detail::scoped_call_timeout() = &value_;
    }
    ~call_timeout() { detail::scoped_call_timeout() = outer_; }
    call_timeout(const call_timeout&) = delete;
    call_timeout& operator=(const call_timeout&) = delete;

private:
    std::optional<double> value_;
    const std::optional<double>* outer_;
};

namespace detail {

/// Lets multiprocessing::object hold proxies (object.hpp cannot include us).
MULTIPROCESSING_DECL bool install_object_proxy_hooks();
// In every file that includes this, so that its own later globals may already
// use proxies in objects (under separate compilation the function is compiled
// once; only this call is per file).
inline const bool object_proxy_hooks_installed = install_object_proxy_hooks();

}  // namespace detail

/// Python's RebuildProxy: the proxy for a Token received from another
/// process (over a pipe, a file, the network).  This process takes its own
/// reference; connect() a manager to the token's address first when the
/// authkey is not current_process().authkey().
template <class T>
detail::proxy_for_t<T> RebuildProxy(const Token& token) {
    return detail::proxy_for_t<T>(detail::from_ref, detail::client_state::instance().get(token.address).acquire(token));
}

namespace detail {

inline std::string random_hex(std::size_t bytes) {
    static const char* digits = "0123456789abcdef";
    std::string r = connection::detail::random_bytes(bytes), s;
    for (unsigned char c : r) { s += digits[c >> 4]; s += digits[c & 15]; }
    return s;
}

/// A fresh private directory (mode 0700) and a socket path inside it,
/// like Python's pymp-XXXX/listener-XXXX.
inline connection::Address private_address(std::string& dir) {
    const char* tmp = ::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/pymp-XXXXXX";
    if (!::mkdtemp(&tmpl[0])) throw connection::detail::sys_error("mkdtemp");
    dir = tmpl;
    return connection::Address(dir + "/listener-" + random_hex(4));
}

/// Waits up to timeout seconds for pid to end; its wait status, if it did.
inline std::optional<int> wait_pid(pid_t pid, double timeout) {
    int pfd = multiprocessing::detail::pidfd_open(pid);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
    for (;;) {
        int status = 0;
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) {
            if (pfd >= 0) ::close(pfd);
            return r == pid ? std::optional<int>(status) : std::optional<int>(0);
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
        if (left <= 0) break;
        if (pfd >= 0) {
            pollfd p{pfd, POLLIN, 0};
            ::poll(&p, 1, static_cast<int>(left));
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(left < 5 ? left : 5));
        }
    }
    if (pfd >= 0) ::close(pfd);
    return std::nullopt;
}


}  // namespace detail

/// A manager's authkey argument: a string, or none (std::nullopt, or left
/// out) for current_process().authkey(), like Python's authkey=None.
/// (Not a defaulted std::optional<std::string>: g++ 12 at -O2 warns about
/// that temporary in every program that makes a manager.)
class AuthKey {
public:
    AuthKey() = default;
    AuthKey(std::nullopt_t) {}
    AuthKey(std::string key) : key_(std::move(key)), given_(true) {}
    AuthKey(const char* key) : key_(key), given_(true) {}
    AuthKey(std::optional<std::string> key) : given_(key.has_value()) {
        if (key) key_ = std::move(*key);
    }
    /// The key, or the current process's when none was given.
    std::string value() && {
        return given_ ? std::move(key_) : multiprocessing::current_process().authkey();
    }

private:
    std::string key_;
    bool given_ = false;
};

namespace detail {
/// The forked server's life: runs initializer, serves reg at address (a
/// private Unix socket if empty), reports "OK<address>" or "ER<why>" on
/// ready_fd, and exits when the server stops or alive_fd's owner dies.
[[noreturn]] MULTIPROCESSING_DECL void serve_forked(int ready_fd, int alive_fd, const std::function<void()>& initializer,
                                                   std::shared_ptr<registry> reg, const connection::Address& address,
                                                   const std::string& authkey, const ServerOptions& options);
}  // namespace detail

/// Python's BaseManager.  Derive with your class as the template argument
/// (`struct M : BaseManager<M> {}`) so each manager class has its own
/// registry, as Python keeps one per class; `BaseManager<>` is the plain one.
///
/// Differs from Python: `register` is `register_type` (a C++ keyword);
/// objects are made with `create<T>(args...)` instead of a method named
/// after the typeid; the server exits when the owner process dies; the
/// destructor shuts down a server this process started (RAII for `with`).
template <class Derived = void>
class BaseManager {
public:
    using Address = connection::Address;
    /// Python's State values.
    enum class State { initial, started, shutdown };

    /// Python's BaseManager(address, authkey).  An empty address picks a
    /// private Unix socket; no authkey means current_process().authkey().
    explicit BaseManager(Address address = {}, AuthKey authkey = {}, ServerOptions options = {},
                         double shutdown_timeout = 1.0)
        : address_(std::move(address)),
          authkey_(std::move(authkey).value()),
          options_(options),
          shutdown_timeout_(shutdown_timeout) {}

    ~BaseManager() {
        try {
            if (state_ == State::started && owner_pid_ == ::getpid()) shutdown();
        } catch (...) {
        }
    }
    BaseManager(const BaseManager&) = delete;
    BaseManager& operator=(const BaseManager&) = delete;
    /// Moves ownership of the server; the moved-from manager owns nothing.
    BaseManager(BaseManager&& o) noexcept { take(o); }
    BaseManager& operator=(BaseManager&& o) noexcept {
        if (this != &o) {
            try {
                if (state_ == State::started && owner_pid_ == ::getpid()) shutdown();
            } catch (...) {
            }
            take(o);
        }
        return *this;
    }

    /// This manager class's registry (Python's _registry).
    static std::shared_ptr<detail::registry> registry() {
        static auto r = std::make_shared<detail::registry>();
        return r;
    }

    /// Python's register(typeid, proxytype=...): objects of T made with T's
    /// constructors.  T may be a referent class (served through Proxy<T>)
    /// or a proxy class made with MP_PROXY.
    template <class T, class ProxyT = detail::proxy_for_t<T>>
    static void register_type(const std::string& typeid_) {
        using R = typename ProxyT::referent_type;
        registry()->add(detail::make_entry<R, ProxyT>(typeid_));
    }

    /// Python's register(typeid, callable=...): objects made by callable,
    /// which returns a T or a std::shared_ptr<T> (the same shared_ptr each
    /// time hands out one shared object, as `lambda: queue` does in Python).
    template <class T, class ProxyT = detail::proxy_for_t<T>, class F>
    static void register_type(const std::string& typeid_, F callable) {
        using R = typename ProxyT::referent_type;
        using ct = detail::callable_traits<std::decay_t<F>>;
        auto e = detail::make_entry<R, ProxyT>(typeid_);
        e->factory = detail::make_factory<F, R>(std::move(callable), typename ct::wire_params{});
        e->factory_sig = detail::factory_signature<R>(typename ct::wire_params{});
        e->factory_text = detail::factory_text(typename ct::wire_params{});
        e->factory_py_args = detail::factory_py_args(typename ct::wire_params{});
        registry()->add(std::move(e));
    }

    /// Python's start(initializer): forks the server process and waits until
    /// it listens.
    void start(std::function<void()> initializer = {}) {
        if (state_ == State::started) throw ProcessError("Already started server");
        if (state_ == State::shutdown) throw ProcessError("Manager has shut down");
        int ready[2], alive[2];
        if (::pipe2(ready, O_CLOEXEC) != 0) throw connection::detail::sys_error("pipe");
        if (::pipe2(alive, O_CLOEXEC) != 0) {
            ::close(ready[0]);
            ::close(ready[1]);
            throw connection::detail::sys_error("pipe");
        }
        auto reg = registry();
        std::cout.flush();
        std::cerr.flush();
        std::fflush(nullptr);
#ifdef __GLIBC__
        // Hand the heap's free pages back to the kernel first: a server
        // forked from a program that has freed a lot would otherwise keep
        // them resident for its whole life (measured: 37 MB of PSS after
        // the parent freed 60 MB, 2.8 MB with this).
        ::malloc_trim(0);
#endif
        pid_t pid = ::fork();
        if (pid < 0) throw ProcessError("fork failed");
        if (pid == 0) run_server_child(ready, alive, initializer, reg);
        ::close(ready[1]);
        ::close(alive[0]);
        std::string msg = read_all(ready[0], 30.0);
        ::close(ready[0]);
        if (msg.size() < 2 || msg.compare(0, 2, "OK") != 0) {
            ::close(alive[1]);
            ::kill(pid, SIGKILL);
            detail::wait_pid(pid, 5.0);
            state_ = State::shutdown;
            throw ProcessError("manager server failed to start" + (msg.size() > 2 ? ": " + msg.substr(2) : std::string()));
        }
        if (address_.empty()) {
            Address a = detail::decode_address(msg.substr(2));
            auto_dir_ = a.path().substr(0, a.path().rfind('/'));
            address_ = a;
        } else {
            address_ = detail::decode_address(msg.substr(2));
        }
        alive_fd_ = alive[1];
        multiprocessing::detail::fork_state::instance().add_owner_fd(alive_fd_);
        server_pid_ = pid;
        owner_pid_ = ::getpid();
        state_ = State::started;
        ep_ = &detail::client_state::instance().get(address_, &authkey_, options_.max_frame, options_.spin_us,
                                                     &options_.call_timeout, options_.shared_memory ? 1 : 0);
        ep_->reset(false);  // a new server at this address: forget any old one
    }

    /// Python's connect(): attaches to a running manager at address().
    void connect() {
        // A handshake of its own with this manager's authkey first: this
        // process may already hold connections to the address (through
        // another manager object) that a pooled call would reuse unchecked,
        // and a wrong key would then be used for the address's new ones.
        (void)connection::Client(address_, authkey_, options_.max_frame);
        ep_ = &detail::client_state::instance().get(address_, &authkey_, options_.max_frame, options_.spin_us,
                                                     &options_.call_timeout, options_.shared_memory ? 1 : 0);
        if (ep_->dead()) ep_->reset(false);
        ep_->simple(detail::kind::dummy);
        state_ = State::started;
        checked_.clear();
        for (auto& tid : registry()->typeids()) {
            auto t = registry()->find(tid);
            if (t && t->interface_only) check_interface(*t);
        }
    }

    /// Python's shutdown(): stops the server and reaps it (terminating it if
    /// it does not exit within shutdown_timeout).  A connected manager asks
    /// the server to stop.  A no-op in a forked copy of the owner.
    void shutdown() {
        if (state_ != State::started) return;
        if (server_pid_ > 0 && owner_pid_ != ::getpid()) return;
        try {
            // Bounded: a frozen (SIGSTOPped) server must not hang shutdown;
            // ours is terminated below if it does not exit.
            std::optional<call_timeout> bound;
            if (server_pid_ > 0) bound.emplace(shutdown_timeout_ + 1.0);
            ep_->simple(detail::kind::shutdown);
        } catch (...) {
        }
        ep_->reset(true);
        state_ = State::shutdown;
        if (server_pid_ <= 0) return;
        auto st = detail::wait_pid(server_pid_, shutdown_timeout_);
        if (!st) {
            ::kill(server_pid_, SIGTERM);
            st = detail::wait_pid(server_pid_, 1.0);
        }
        if (!st) {
            ::kill(server_pid_, SIGKILL);
            st = detail::wait_pid(server_pid_, 5.0);
        }
        if (st) exitcode_ = WIFSIGNALED(*st) ? -WTERMSIG(*st) : WEXITSTATUS(*st);
        multiprocessing::detail::fork_state::instance().remove_owner_fd(alive_fd_);
        ::close(alive_fd_);
        alive_fd_ = -1;
        // A server killed before it could clean up leaves its socket behind.
        if (address_.is_unix() && !auto_dir_.empty()) {
            ::unlink(address_.path().c_str());
            ::rmdir(auto_dir_.c_str());
        }
    }

    /// Python's `with manager:` when the manager must outlive the block
    /// (to read exitcode() after it, as Python reads _process.exitcode):
    /// starts the manager if it is not started yet (Python's __enter__;
    /// ProcessError if it has shut down), and the returned guard shuts it
    /// down when its scope ends (__exit__).
    ///   { auto with = manager.enter(); ... }   // then manager.exitcode()
    [[nodiscard]] auto enter() {
        // Through Derived: a derived manager's own start() and shutdown()
        // (SharedMemoryManager's tracker) must run, as Python's do.
        auto* self = [this] {
            if constexpr (std::is_void_v<Derived>) return this;
            else return static_cast<Derived*>(this);
        }();
        if (state_ == State::initial) self->start();
        if (state_ != State::started) throw ProcessError("Unable to start server");
        using Self = std::remove_pointer_t<decltype(self)>;
        struct scope {
            Self* m;
            explicit scope(Self* mgr) : m(mgr) {}
            scope(const scope&) = delete;
            scope& operator=(const scope&) = delete;
            ~scope() {
                try {
                    m->shutdown();
                } catch (...) {
                }
            }
        };
        return scope(self);
    }

    /// Python's join(timeout): waits for the server process to end.
    bool join(std::optional<double> timeout = std::nullopt) {
        if (server_pid_ <= 0 || exitcode_) return true;
        auto st = detail::wait_pid(server_pid_, timeout.value_or(1e9));
        if (st) exitcode_ = WIFSIGNALED(*st) ? -WTERMSIG(*st) : WEXITSTATUS(*st);
        return st.has_value();
    }

    /// Python's get_server(): a Server for this manager's registry, in this
    /// process; call serve_forever() on it.
    Server get_server() {
        if (state_ != State::initial) throw ProcessError("manager already started or connected");
        std::string dir;
        Address a = address_.empty() ? detail::private_address(dir) : address_;
        return Server(registry(), a, authkey_, options_, dir);
    }

    /// Where the server listens (known after start()).
    const Address& address() const { return address_; }
    const std::string& authkey() const { return authkey_; }
    State state() const { return state_; }
    /// The server process's pid, or -1 if this object did not start it.
    pid_t pid() const { return server_pid_; }
    /// The server's exit code once it has been reaped (Python's _process.exitcode).
    std::optional<int> exitcode() const { return exitcode_; }

    /// Live objects in the server (Python's private _number_of_objects()).
    std::size_t number_of_objects() { return std::stoul(endpoint().simple(detail::kind::number_of_objects)); }
    /// One line per object and client session (Python's _debug_info()).
    std::string debug_info() { return endpoint().simple(detail::kind::debug_info); }
    /// Frees, now, the shared objects kept alive only by proxies held in
    /// other shared objects (reference cycles such as `l.append(l)`), and
    /// returns how many.  The server also does this by itself shortly after
    /// a decref leaves an object referenced only from inside the server, as
    /// CPython's server's garbage collector does; Python has no such call.
    std::size_t collect() { return std::stoul(endpoint().simple(detail::kind::collect)); }

    /// Python's manager.&lt;typeid&gt;(args): makes a shared object in the server
    /// and returns its proxy.  T is the referent or proxy type registered;
    /// the constructor (or registered callable) gets args.  Arguments no
    /// constructor of T takes fail to compile (use create_as for a callable).
    template <class T, class... A>
    detail::proxy_for_t<T> create(A&&... args) {
        using P = detail::proxy_for_t<T>;
        // Without arguments the type may come from a registered callable
        // (`lambda: queue`); with them, a constructor must take them.
        static_assert(sizeof...(A) == 0 || detail::is_interface_proxy_v<P> ||
                          std::is_constructible_v<typename P::referent_type, detail::wire_t<A>...>,
                      "multiprocessing: create<T>(args): T has no constructor taking these arguments "
                      "(for a registered callable that takes them, use create_as<T>(typeid, args...))");
        std::string tid = registry()->typeid_for_proxy(std::type_index(typeid(P)));
        if (tid.empty())
            throw ValueError(multiprocessing::detail::type_name<P>() + " is not registered with this manager");
        return create_as<T>(tid, std::forward<A>(args)...);
    }

    /// create() for a typeid given by name, for classes registered under
    /// several typeids.
    template <class T, class... A>
    detail::proxy_for_t<T> create_as(const std::string& typeid_, A&&... args) {
        using P = detail::proxy_for_t<T>;
        using R = typename P::referent_type;
        constexpr bool declared = detail::is_interface_proxy_v<P>;
        if constexpr (!declared && std::is_constructible_v<R, detail::wire_t<A>...>)
            (void)&detail::constructor_registrar<R, detail::wire_t<A>...>::registered;
        if constexpr (declared) {
            if (!checked_.count(typeid_)) {
                auto t = registry()->find(typeid_);
                if (t && t->interface_only) check_interface(*t);
            }
        }
        std::shared_ptr<detail::ref_entry> e;
        try {
            // An interface sends fingerprint 0 and only its arguments' hash:
            // the server adds the class it has.
            e = endpoint().create(typeid_, declared ? 0 : detail::fingerprint<P>(),
                                  declared ? detail::arguments_signature<detail::wire_t<A>...>()
                                           : detail::constructor_signature<R, detail::wire_t<A>...>(),
                                  [&](std::vector<char>& buf) {
                                      detail::write_args(buf, detail::type_list<detail::wire_t<A>...>{},
                                                         std::forward<A>(args)...);
                                  });
        } catch (const RemoteError& err) {
            // Known here, unknown to a server this process forked: it was
            // registered after start(), as Python would not say.
            if (server_pid_ > 0 && err.type_name() == "KeyError" &&
                err.message().rfind("unknown typeid", 0) == 0 && registry()->find(typeid_))
                throw RemoteError("KeyError", err.message() +
                                                  ": it was registered after start(), and the server (forked by "
                                                  "start()) has the registry of that moment; call register_type "
                                                  "before start()");
            throw;
        }
        return P(detail::from_ref, std::move(e));
    }

protected:
    /// True in the process that start()ed the server (not in forked copies).
    bool owns_server() const { return server_pid_ > 0 && owner_pid_ == ::getpid(); }

    detail::endpoint& endpoint() {
        if (state_ != State::started || !ep_) throw ProcessError("manager is not started or connected");
        return *ep_;
    }

private:
    // Compares the methods an interface (MP_INTERFACE) declares with the
    // server's registration of its typeid: each must be exposed there with
    // the same parameter and result types.
    void check_interface(const detail::type_entry& t) {
        std::string iface = multiprocessing::detail::demangle(t.proxy.name());
        std::string what = "interface " + iface + " of typeid '" + t.typeid_ + "'";
        std::string d;
        try {
            d = endpoint().simple(detail::kind::describe, t.typeid_);
        } catch (const RemoteError& e) {
            if (e.type_name() == "KeyError")
                throw TypeError(what + ": the server at " + address_.str() + " has no such typeid");
            throw;
        }
        struct served {
            std::string name, text;
            std::uint64_t sig;
        };
        std::vector<served> have;
        std::istringstream in(d);
        for (std::string line; std::getline(in, line);) {
            auto a = line.find('\t');
            auto b = a == std::string::npos ? a : line.find('\t', a + 1);
            std::uint64_t sig = 0;
            if (b == std::string::npos ||
                std::from_chars(line.data() + a + 1, line.data() + b, sig).ptr != line.data() + b)
                throw ProcessError(what + ": the server at " + address_.str() +
                                   " sent a malformed method list (line '" + line + "')");
            have.push_back({line.substr(0, a), line.substr(b + 1), sig});
        }
        for (auto& m : t.methods) {
            std::string theirs;
            bool named = false, same = false;
            for (auto& h : have) {
                if (h.name != m.name) continue;
                named = true;
                same = same || h.sig == m.sig;
                theirs += (theirs.empty() ? "" : " or ") + h.text;
            }
            if (!named)
                throw TypeError(what + ": the server does not expose method '" + std::string(m.name) + "'");
            if (!same)
                throw TypeError(what + ": method '" + std::string(m.name) + "' is declared " + m.text() +
                                " here, but the server's is " + theirs);
        }
        checked_.insert(t.typeid_);
    }

    void take(BaseManager& o) {
        address_ = std::move(o.address_);
        authkey_ = std::move(o.authkey_);
        options_ = o.options_;
        shutdown_timeout_ = o.shutdown_timeout_;
        state_ = std::exchange(o.state_, State::shutdown);
        ep_ = std::exchange(o.ep_, nullptr);
        server_pid_ = std::exchange(o.server_pid_, -1);
        owner_pid_ = std::exchange(o.owner_pid_, -1);
        alive_fd_ = std::exchange(o.alive_fd_, -1);
        exitcode_ = o.exitcode_;
        auto_dir_ = std::move(o.auto_dir_);
        checked_ = std::move(o.checked_);
    }

    [[noreturn]] void run_server_child(int ready[2], int alive[2], const std::function<void()>& initializer,
                                       std::shared_ptr<detail::registry> reg) {
        ::close(ready[0]);
        ::close(alive[1]);
        detail::serve_forked(ready[1], alive[0], initializer, std::move(reg), address_, authkey_, options_);
    }

    static std::string read_all(int fd, double timeout) {
        std::string s;
        auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
        char buf[4096];
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
            if (left <= 0) return s;
            pollfd p{fd, POLLIN, 0};
            int r = ::poll(&p, 1, static_cast<int>(left));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) return s;
            ssize_t n = ::read(fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return s;
            s.append(buf, static_cast<std::size_t>(n));
        }
    }

    Address address_;
    std::string authkey_;
    ServerOptions options_;
    double shutdown_timeout_;
    State state_ = State::initial;
    detail::endpoint* ep_ = nullptr;
    pid_t server_pid_ = -1;
    pid_t owner_pid_ = -1;
    int alive_fd_ = -1;
    std::optional<int> exitcode_;
    std::string auto_dir_;
    std::set<std::string> checked_;  // typeids whose interface the server matched
};

}  // namespace multiprocessing::managers

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/server.ipp"
#endif

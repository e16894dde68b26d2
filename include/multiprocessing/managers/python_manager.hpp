// A client for managers served by CPython: PythonManager connects to a
// Python BaseManager/SyncManager (serve_forever() or start()) and
// PythonProxy calls its objects, speaking CPython's own protocol (its
// frames, its HMAC handshake, pickled requests and replies).
#pragma once

#include "multiprocessing/detail/config.hpp"
#include "multiprocessing/connection.hpp"
#include "multiprocessing/detail/fork.hpp"
#include "multiprocessing/detail/pickle_object.hpp"
#include "multiprocessing/detail/py_token.hpp"
#include "multiprocessing/exceptions.hpp"
#include "multiprocessing/managers/sync.hpp"
#include "multiprocessing/managers/token.hpp"
#include "multiprocessing/object.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace multiprocessing::managers {

/// Keyword arguments of a call to a CPython server: Python's **kwds.
using Kwds = std::vector<std::pair<std::string, object>>;

class PythonProxy;

namespace detail::python {

namespace pk = multiprocessing::detail::pickle;


// A held PythonProxy as CPython's BaseProxy.__reduce__ writes it:
// RebuildProxy(func, Token, 'pickle', {'exposed': ...} for an AutoProxy),
// for a message to the server at dest (null: not known).
struct proxy_pickle {
    virtual ~proxy_pickle() = default;
    virtual pk::value reduce(const connection::Address* dest) const = 0;
};

inline pk::value to_pickle(const object& o, const connection::Address* dest) {
    const pk::proxy_fn on_proxy = [dest](const object& x) -> pk::value {
        if (auto py = x.python_ref()) return dynamic_cast<const proxy_pickle&>(**py).reduce(dest);
        throw TypeError("a proxy of a C++ manager's object cannot be sent to a CPython manager");
    };
    return pk::from_object(o, &on_proxy);
}

// (ident, methodname, args, kwds), as Python's dispatch() and _callmethod send it.
inline std::string request(const std::optional<std::string>& ident, const std::string& method,
                           const std::vector<pk::value>& args, const Kwds& kwds, const connection::Address* dest) {
    std::vector<pk::value> kw;
    for (auto& [k, v] : kwds) {
        kw.push_back(pk::value::str(k));
        kw.push_back(to_pickle(v, dest));
    }
    return pk::dumps(pk::value::tuple({ident ? pk::value::str(*ident) : pk::value(), pk::value::str(method), pk::value::tuple(args),
                            pk::value::seq(pk::value::kind::dict, std::move(kw))}));
}

// Replies come from an authenticated server, which the client trusts (as
// CPython's client does): any global may be named, since none is called.
inline pk::value reply(connection::Connection& c) {
    pk::limits lim;
    lim.allowed = [](std::string_view, std::string_view) { return true; };
    pk::value r = pk::loads(c.recv_bytes(), lim);
    if (r.k != pk::value::kind::tuple || r.items.size() != 2 || r.items[0].k != pk::value::kind::str)
        throw ProcessError("a CPython manager sent a reply that is not (kind, result)");
    return r;
}

// Python's str(exc) from its args.
inline std::string exception_message(const std::string& type, const pk::value& args) {
    if (args.items.empty()) return "";
    object a;
    try {
        a = args.items.size() == 1 ? pk::to_object(args.items[0]) : pk::to_object(args);
    } catch (const std::exception&) {
        return "(arguments of a type C++ cannot hold)";
    }
    if (args.items.size() == 1 && a.is_str() && type != "KeyError") return a.as_str();
    return repr(a);
}

// Raises what a '#ERROR' or '#TRACEBACK' reply stands for: the matching
// C++ type for Python's builtin exceptions (and queue.Empty/Full), else
// RemoteError with the type's name.
[[noreturn]] inline void raise(const pk::value& r) {
    const std::string& kind = r.items[0].s;
    const pk::value& res = r.items[1];
    if (kind == "#ERROR" && res.k == pk::value::kind::instance && res.args().k == pk::value::kind::tuple) {
        std::string module(res.cls().module()), type(res.cls().name());
        std::string msg = exception_message(type, res.args());
        if (module == "builtins") {
            if (type == "KeyError") throw KeyError(msg);
            if (type == "IndexError") throw IndexError(msg);
            if (type == "ValueError") throw ValueError(msg);
            if (type == "TypeError") throw TypeError(msg);
            if (type == "AttributeError") throw AttributeError(msg);
            if (type == "NotImplementedError") throw NotImplementedError(msg);
            if (type == "OverflowError") throw OverflowError(msg);
            if (type == "StopIteration") throw StopIteration(msg);
            if (type == "EOFError") throw EOFError(msg);
            if (type == "TimeoutError") throw TimeoutError(msg);
            if (type == "FileNotFoundError") throw FileNotFoundError(msg);
            if (type == "FileExistsError") throw FileExistsError(msg);
        }
        if ((module == "_queue" || module == "queue") && type == "Empty") throw multiprocessing::Empty(msg);
        if (module == "queue" && type == "Full") throw multiprocessing::Full(msg);
        if (module == "multiprocessing.managers" && type == "RemoteError") throw RemoteError("RemoteError", msg);
        throw RemoteError(type, msg);
    }
    if (kind == "#TRACEBACK" && res.k == pk::value::kind::str) throw RemoteError("Traceback", res.s);
    if (kind == "#UNSERIALIZABLE" && res.k == pk::value::kind::str) throw RemoteError("Unserializable", res.s);
    throw ProcessError("a CPython manager sent a reply of unknown kind '" + kind + "'");
}

// dispatch(conn, None, method, args, kwds): a request to the server itself.
inline pk::value dispatch(connection::Connection& c, const std::string& method, std::vector<pk::value> args,
                          const Kwds& kwds = {}, const connection::Address* dest = nullptr) {
    c.send_bytes(request(std::nullopt, method, args, kwds, dest));
    pk::value r = reply(c);
    if (r.items[0].s != "#RETURN") raise(r);
    return std::move(r.items[1]);
}

inline std::vector<std::string> names(const pk::value& v) {
    std::vector<std::string> out;
    if (v.k == pk::value::kind::none) return out;
    if (v.k != pk::value::kind::tuple && v.k != pk::value::kind::list)
        throw ProcessError("a CPython manager sent a list of exposed methods that is not a sequence");
    for (auto& n : v.items) {
        if (n.k != pk::value::kind::str) throw ProcessError("a CPython manager sent a method name that is not a str");
        out.push_back(n.s);
    }
    return out;
}

}  // namespace detail::python

/// A proxy of an object a CPython manager owns: Python's AutoProxy, untyped.
/// Arguments and results are multiprocessing::object (None, bool, int,
/// float, str, bytes, tuple, list, dict), exceptions come back as the
/// matching C++ type (KeyError, ValueError, queue's Empty, ...) or
/// RemoteError.  Copies share one reference, released (decref) when the
/// last copy goes.  Calls from several threads run at once, each on a
/// connection of its own (kept for reuse), as in Python.  Differs from
/// Python: a forked child uses an inherited proxy through connections of
/// its own but borrows the parent's reference (Python's child takes one,
/// which CPython's server leaks if the child dies before releasing it), so
/// the parent's proxy must outlive the child's use of it.
class PythonProxy {
public:
    PythonProxy() = default;

    /// Python's proxy._callmethod(name, args, kwds), for a method returning
    /// a value.  TypeError if it returns a shared object (use
    /// _callmethod_proxy) or a value object cannot hold (a set, an instance).
    /// A proxy inside the result (Python's d['x'] after d['x'] = m.list())
    /// arrives as an object holding a PythonProxy (as_proxy<PythonProxy>()),
    /// which takes a reference of its own, as Python's RebuildProxy does.
    object _callmethod(const std::string& name, std::vector<object> args = {}, const Kwds& kwds = {}) const;
    /// _callmethod for a method the server registered as returning a
    /// shared object (method_to_typeid: e.g. a Pool's apply_async).
    PythonProxy _callmethod_proxy(const std::string& name, std::vector<object> args = {}, const Kwds& kwds = {}) const;

    /// The methods the server exposes for this object (Python's _exposed_).
    const std::vector<std::string>& _exposed() const;
    /// Python's token.typeid, token.id, token.address.
    const std::string& typeid_() const;
    const std::string& id() const;
    const connection::Address& address() const;
    explicit operator bool() const;
    /// Python's type(proxy).__name__: the class the server's side pickles
    /// it as (DictProxy for a SyncManager's dict), or AutoProxy[typeid].
    const std::string& type_name() const;

    /// Python's repr(proxy) shape: <DictProxy object, typeid 'dict' at 0x...>.
    std::string repr() const;

    /// Internal: the reference an object holding this proxy shares.
    std::shared_ptr<managers::detail::python_ref> _python_ref() const;
    /// Internal: the proxy an object holds (object::as_proxy<PythonProxy>()).
    static PythonProxy _from_python_ref(const std::shared_ptr<managers::detail::python_ref>& r);

private:
    friend class PythonManager;
    struct shared_state final : managers::detail::python_ref, detail::python::proxy_pickle {
        std::string typeid_, id, authkey;
        connection::Address address;
        std::vector<std::string> exposed;
        // Python's class of the proxy (what RebuildProxy names when it is
        // passed back), and its Token as the server wrote it (its address
        // is the server's own view, which the server compares with its own).
        std::string cls;
        detail::python::pk::value token;

        std::string type_name() const override;
        std::string repr() const override;
        bool same(const managers::detail::python_ref& other) const override;
        std::uint64_t hash_id() const override;
        // The Token as the server wrote it goes back to that server (which
        // compares its address with its own); to another, the address this
        // process reaches the server by, as CPython's client rewrites it.
        detail::python::pk::value reduce(const connection::Address* dest) const override;
        std::string func_module = "multiprocessing.managers";
        // Fork generations (detail/fork.hpp), one compare instead of a
        // getpid() syscall: the process holding the reference, and the one
        // the idle connections belong to.
        unsigned owner = gen();
        // Idle connections (Python keeps one per thread): a call takes one
        // or opens one, and gives it back after a whole reply, so a call
        // that blocks (a queue's get) never holds up another thread's.
        std::mutex m;
        std::vector<connection::Connection> idle;
        unsigned idle_gen = gen();

        static unsigned gen();

        // decref (Python's BaseProxy._decref), best effort and bounded: the
        // server may be gone or hung, and a destructor must not throw.
        ~shared_state();
        connection::Connection take();
        void give_back(connection::Connection c);
    };

    const shared_state& state() const;

    static std::shared_ptr<shared_state> make(std::string typeid_, connection::Address address, std::string id,
                                              std::string authkey);

    // A RebuildProxy in a reply (a proxy the server's object holds, pickled
    // by BaseProxy.__reduce__): like Python's RebuildProxy in a client, a
    // new proxy that takes its own reference (incref) before the reply is
    // used.  Its server is the Token's address, this proxy's for a Token of
    // this server (its own view of its address may be '0.0.0.0').
    PythonProxy rebuild(const detail::python::pk::value& v) const;

    // A '#PROXY' reply, (exposed, Token): the server has made the object
    // with one reference for us, so the proxy owning it exists before
    // anything else is checked (an error then releases it).  The Token's
    // address is the server's own view ('0.0.0.0' for a server on all
    // interfaces): as in CPython, this proxy's address is used instead.
    PythonProxy adopt(const detail::python::pk::value& reply) const;

    detail::python::pk::value call(const std::string& name, const std::vector<object>& args, const Kwds& kwds) const;

    std::shared_ptr<shared_state> s_;
};

/// A client of a manager served by CPython (Python's BaseManager(address,
/// authkey).connect()).  create("get_queue") is Python's m.get_queue() for a
/// typeid the server registered, create("dict") a SyncManager's m.dict().
/// Differs from Python: no register() is needed on this side, since the
/// proxy is untyped (PythonProxy, calls by name).
class PythonManager {
public:
    PythonManager(connection::Address address, std::string authkey);

    /// Python's connect(): checks that the server answers and the authkey
    /// is right (AuthenticationError otherwise).
    void connect();

    /// A new shared object of the server's typeid, made with args and kwds.
    PythonProxy create(const std::string& typeid_, std::vector<object> args = {}, const Kwds& kwds = {});

    /// Python's _number_of_objects() (a debug helper of the server).
    std::int64_t _number_of_objects();

    /// Python's shutdown() for a server started with start(): asks it to stop.
    void shutdown();

    const connection::Address& address() const;

private:
    connection::Address address_;
    std::string authkey_;
};

}  // namespace multiprocessing::managers

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/python_manager.ipp"
#endif

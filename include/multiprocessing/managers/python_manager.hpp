// A client for managers served by CPython: PythonManager connects to a
// Python BaseManager/SyncManager (serve_forever() or start()) and
// PythonProxy calls its objects, speaking CPython's own protocol (its
// frames, its HMAC handshake, pickled requests and replies).
#pragma once

#include "multiprocessing/connection.hpp"
#include "multiprocessing/detail/fork.hpp"
#include "multiprocessing/detail/pickle_object.hpp"
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

inline pk::value tuple(std::vector<pk::value> items) { return pk::value::seq(pk::value::kind::tuple, std::move(items)); }

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

// Python's Token(typeid, address, id), as CPython pickles it (its
// __getstate__ tuple), the address a path or (host, port).
inline pk::value token(const std::string& typeid_, const connection::Address& a, const std::string& id) {
    pk::value where = a.is_tcp() ? tuple({pk::value::str(a.host()), pk::value::integer(a.port())}) : pk::value::str(a.path());
    pk::value state = tuple({pk::value::str(typeid_), std::move(where), pk::value::str(id)});
    return pk::value::instance(pk::value::global("multiprocessing.managers", "Token"), tuple({}), true, &state);
}

// (ident, methodname, args, kwds), as Python's dispatch() and _callmethod send it.
inline std::string request(const std::optional<std::string>& ident, const std::string& method,
                           const std::vector<pk::value>& args, const Kwds& kwds, const connection::Address* dest) {
    std::vector<pk::value> kw;
    for (auto& [k, v] : kwds) {
        kw.push_back(pk::value::str(k));
        kw.push_back(to_pickle(v, dest));
    }
    return pk::dumps(tuple({ident ? pk::value::str(*ident) : pk::value(), pk::value::str(method), tuple(args),
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
    object _callmethod(const std::string& name, std::vector<object> args = {}, const Kwds& kwds = {}) const {
        namespace pk = detail::python::pk;
        auto r = call(name, args, kwds);
        if (r.items[0].s == "#PROXY") {
            adopt(r.items[1]);  // released at once: the server made it for this call
            throw TypeError("method '" + name + "' of '" + s_->typeid_ + "' returns a shared object: call _callmethod_proxy");
        }
        const pk::instance_fn rebuild = [this](const pk::value& v) { return object(this->rebuild(v)); };
        return pk::to_object(r.items[1], &rebuild);
    }
    /// _callmethod for a method the server registered as returning a
    /// shared object (method_to_typeid: e.g. a Pool's apply_async).
    PythonProxy _callmethod_proxy(const std::string& name, std::vector<object> args = {}, const Kwds& kwds = {}) const {
        auto r = call(name, args, kwds);
        if (r.items[0].s != "#PROXY")
            throw TypeError("method '" + name + "' of '" + s_->typeid_ + "' returns a value, not a shared object");
        return adopt(r.items[1]);
    }

    /// The methods the server exposes for this object (Python's _exposed_).
    const std::vector<std::string>& _exposed() const { return state().exposed; }
    /// Python's token.typeid, token.id, token.address.
    const std::string& typeid_() const { return state().typeid_; }
    const std::string& id() const { return state().id; }
    const connection::Address& address() const { return state().address; }
    explicit operator bool() const { return static_cast<bool>(s_); }
    /// Python's type(proxy).__name__: the class the server's side pickles
    /// it as (DictProxy for a SyncManager's dict), or AutoProxy[typeid].
    const std::string& type_name() const { return state().cls; }

    /// Python's repr(proxy) shape: <DictProxy object, typeid 'dict' at 0x...>.
    std::string repr() const { return state().repr(); }

    /// Internal: the reference an object holding this proxy shares.
    std::shared_ptr<managers::detail::python_ref> _python_ref() const { return s_; }
    /// Internal: the proxy an object holds (object::as_proxy<PythonProxy>()).
    static PythonProxy _from_python_ref(const std::shared_ptr<managers::detail::python_ref>& r) {
        PythonProxy p;
        p.s_ = std::dynamic_pointer_cast<shared_state>(r);
        if (!p.s_) throw TypeError("the object holds no PythonProxy");
        return p;
    }

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

        std::string type_name() const override { return cls; }
        std::string repr() const override {
            char at[32];
            std::snprintf(at, sizeof at, "%#llx", static_cast<unsigned long long>(reinterpret_cast<std::uintptr_t>(this)));
            return "<" + cls + " object, typeid '" + typeid_ + "' at " + at + ">";
        }
        bool same(const managers::detail::python_ref& other) const override {
            auto* o = dynamic_cast<const shared_state*>(&other);
            return o && o->id == id && o->address == address;
        }
        std::uint64_t hash_id() const override { return std::hash<std::string>()(id); }
        // The Token as the server wrote it goes back to that server (which
        // compares its address with its own); to another, the address this
        // process reaches the server by, as CPython's client rewrites it.
        detail::python::pk::value reduce(const connection::Address* dest) const override {
            namespace pk = detail::python::pk;
            std::vector<pk::value> kwds;
            bool autoproxy = cls.rfind("AutoProxy", 0) == 0;
            if (autoproxy) {
                std::vector<pk::value> names;
                for (auto& n : exposed) names.push_back(pk::value::str(n));
                kwds.push_back(pk::value::str("exposed"));
                kwds.push_back(detail::python::tuple(std::move(names)));
            }
            return pk::value::instance(
                pk::value::global("multiprocessing.managers", "RebuildProxy"),
                detail::python::tuple({pk::value::global(func_module, autoproxy ? std::string("AutoProxy") : cls),
                                       dest && *dest == address ? token : detail::python::token(typeid_, address, id),
                                       pk::value::str("pickle"), pk::value::seq(pk::value::kind::dict, std::move(kwds))}));
        }
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

        static unsigned gen() { return multiprocessing::detail::fork_state::instance().generation(); }

        // decref (Python's BaseProxy._decref), best effort and bounded: the
        // server may be gone or hung, and a destructor must not throw.
        ~shared_state() {
            idle.clear();
            if (owner != gen()) return;  // the parent's reference; closing our fd copies is all
            try {
                auto c = connection::Client(address, authkey);
                c.set_deadline(std::chrono::steady_clock::now() + std::chrono::seconds(5));
                detail::python::dispatch(c, "decref", {detail::python::pk::value::str(id)});
            } catch (...) {
            }
        }
        connection::Connection take() {
            {
                std::lock_guard<std::mutex> lock(m);
                if (idle_gen != gen()) {  // a forked child: these sockets are the parent's
                    idle.clear();
                    idle_gen = gen();
                }
                if (!idle.empty()) {
                    auto c = std::move(idle.back());
                    idle.pop_back();
                    return c;
                }
            }
            auto c = connection::Client(address, authkey);
            detail::python::dispatch(c, "accept_connection", {detail::python::pk::value::str("C++|" + std::to_string(::getpid()))});
            return c;
        }
        void give_back(connection::Connection c) {
            std::lock_guard<std::mutex> lock(m);
            if (idle_gen == gen() && idle.size() < 16) idle.push_back(std::move(c));
        }
    };

    const shared_state& state() const {
        if (!s_) throw ValueError("an empty PythonProxy");
        return *s_;
    }

    static std::shared_ptr<shared_state> make(std::string typeid_, connection::Address address, std::string id,
                                              std::string authkey) {
        auto s = std::make_shared<shared_state>();
        s->cls = managers::detail::proxy_class_name(typeid_);
        if (s->cls == "SetProxy") s->cls = "AutoProxy[" + typeid_ + "]";  // CPython 3.13 has no SetProxy
        s->token = detail::python::token(typeid_, address, id);
        s->typeid_ = std::move(typeid_);
        s->address = std::move(address);
        s->id = std::move(id);
        s->authkey = std::move(authkey);
        return s;
    }

    // A RebuildProxy in a reply (a proxy the server's object holds, pickled
    // by BaseProxy.__reduce__): like Python's RebuildProxy in a client, a
    // new proxy that takes its own reference (incref) before the reply is
    // used.  Its server is the Token's address, this proxy's for a Token of
    // this server (its own view of its address may be '0.0.0.0').
    PythonProxy rebuild(const detail::python::pk::value& v) const {
        namespace pk = detail::python::pk;
        using K = pk::value::kind;
        if (v.cls().k != K::global || v.cls().module() != "multiprocessing.managers" || v.cls().name() != "RebuildProxy")
            throw TypeError("a pickled instance of '" + std::string(v.cls().module()) + "." +
                            std::string(v.cls().name()) + "' is not a value C++ takes");
        const pk::value& a = v.args();
        if (a.k != K::tuple || a.items.size() != 4 || a.items[0].k != K::global || a.items[1].k != K::instance ||
            !a.items[1].has_state() || a.items[1].state().k != K::tuple || a.items[1].state().items.size() != 3 ||
            a.items[1].state().items[0].k != K::str || a.items[1].state().items[2].k != K::str ||
            a.items[2].k != K::str || a.items[3].k != K::dict)
            throw ProcessError("a CPython manager sent a malformed RebuildProxy");
        if (a.items[2].s != "pickle")
            throw TypeError("a proxy with serializer '" + a.items[2].s + "': C++ speaks only 'pickle'");
        const auto& st = a.items[1].state().items;
        connection::Address where;
        if (st[1].k == K::str) {
            where = connection::Address(st[1].s);
        } else if (st[1].k == K::tuple && st[1].items.size() == 2 && st[1].items[0].k == K::str &&
                   st[1].items[1].k == K::integer && st[1].items[1].i > 0 && st[1].items[1].i < 65536) {
            where = connection::Address(st[1].items[0].s, static_cast<unsigned short>(st[1].items[1].i));
        } else {
            throw ProcessError("a CPython manager sent a Token whose address is neither a path nor (host, port)");
        }
        const auto& here = s_->address;
        if (where.is_tcp() ? here.is_tcp() && where.port() == here.port() &&
                                 (where.host() == here.host() || where.host() == "0.0.0.0" || where.host().empty())
                           : where == here)
            where = here;
        std::string authkey = s_->authkey;
        std::optional<std::vector<std::string>> exposed;
        bool incref = true;
        for (std::size_t k = 0; k + 1 < a.items[3].items.size(); k += 2) {
            const auto& key = a.items[3].items[k];
            const auto& val = a.items[3].items[k + 1];
            if (key.k != K::str) continue;
            if (key.s == "exposed") exposed = detail::python::names(val);
            else if (key.s == "incref" && val.k == K::boolean) incref = val.b;
            else if (key.s == "authkey" && val.k == K::bytes) authkey = val.s;
        }
        if (!incref) throw TypeError("a proxy pickled without a reference (incref=False) cannot be held by C++");
        // A connection per request: CPython's server closes one after it
        // answers a request other than accept_connection.
        auto request = [&](const char* method, pk::value arg) {
            auto c = connection::Client(where, authkey);
            c.set_deadline(std::chrono::steady_clock::now() + std::chrono::seconds(30));
            return detail::python::dispatch(c, method, {std::move(arg)});
        };
        // incref first: an object only a proxy inside the server holds is
        // back in the server's tables only after it (Python 3.13's incref).
        request("incref", pk::value::str(st[2].s));
        PythonProxy p;
        p.s_ = make(st[0].s, where, st[2].s, authkey);  // owns the reference from here
        p.s_->exposed = exposed ? std::move(*exposed) : detail::python::names(request("get_methods", a.items[1]));
        p.s_->token = a.items[1];
        const auto& func = a.items[0];
        if (func.module() == "multiprocessing.managers" && func.name() == "AutoProxy") {
            p.s_->cls = "AutoProxy[" + st[0].s + "]";
        } else {
            p.s_->cls = std::string(func.name());
            p.s_->func_module = std::string(func.module());
        }
        return p;
    }

    // A '#PROXY' reply, (exposed, Token): the server has made the object
    // with one reference for us, so the proxy owning it exists before
    // anything else is checked (an error then releases it).  The Token's
    // address is the server's own view ('0.0.0.0' for a server on all
    // interfaces): as in CPython, this proxy's address is used instead.
    PythonProxy adopt(const detail::python::pk::value& reply) const {
        namespace pk = detail::python::pk;
        const pk::value* token = reply.k == pk::value::kind::tuple && reply.items.size() == 2 ? &reply.items[1] : nullptr;
        if (!token || token->k != pk::value::kind::instance || !token->has_state() ||
            token->state().k != pk::value::kind::tuple || token->state().items.size() != 3 ||
            token->state().items[0].k != pk::value::kind::str || token->state().items[2].k != pk::value::kind::str)
            throw ProcessError("a CPython manager sent a malformed #PROXY reply");
        PythonProxy p;
        p.s_ = make(token->state().items[0].s, s_->address, token->state().items[2].s, s_->authkey);
        p.s_->exposed = detail::python::names(reply.items[0]);
        p.s_->token = *token;
        return p;
    }

    detail::python::pk::value call(const std::string& name, const std::vector<object>& args, const Kwds& kwds) const {
        namespace py = detail::python;
        auto& s = const_cast<shared_state&>(state());
        std::vector<py::pk::value> a;
        for (auto& x : args) a.push_back(py::to_pickle(x, &s.address));
        std::string req = py::request(s.id, name, a, kwds, &s.address);
        auto c = s.take();
        // Any failure before the whole reply is read drops the connection
        // (its stream may be out of step); a reply, even an error, keeps it.
        c.send_bytes(req);
        auto r = py::reply(c);
        s.give_back(std::move(c));
        const auto& kind = r.items[0].s;
        if (kind == "#RETURN" || kind == "#PROXY") return r;
        py::raise(r);
    }

    std::shared_ptr<shared_state> s_;
};

/// A client of a manager served by CPython (Python's BaseManager(address,
/// authkey).connect()).  create("get_queue") is Python's m.get_queue() for a
/// typeid the server registered, create("dict") a SyncManager's m.dict().
/// Differs from Python: no register() is needed on this side, since the
/// proxy is untyped (PythonProxy, calls by name).
class PythonManager {
public:
    PythonManager(connection::Address address, std::string authkey)
        : address_(std::move(address)), authkey_(std::move(authkey)) {}

    /// Python's connect(): checks that the server answers and the authkey
    /// is right (AuthenticationError otherwise).
    void connect() {
        auto c = connection::Client(address_, authkey_);
        detail::python::dispatch(c, "dummy", {});
    }

    /// A new shared object of the server's typeid, made with args and kwds.
    PythonProxy create(const std::string& typeid_, std::vector<object> args = {}, const Kwds& kwds = {}) {
        namespace py = detail::python;
        auto c = connection::Client(address_, authkey_);
        std::vector<py::pk::value> a{py::pk::value::str(typeid_)};
        for (auto& x : args) a.push_back(py::to_pickle(x, &address_));
        const auto res = py::dispatch(c, "create", std::move(a), kwds, &address_);  // (ident, exposed)
        if (res.k != py::pk::value::kind::tuple || res.items.size() != 2 || res.items[0].k != py::pk::value::kind::str)
            throw ProcessError("a CPython manager answered create with something other than (id, exposed)");
        PythonProxy p;
        p.s_ = PythonProxy::make(typeid_, address_, res.items[0].s, authkey_);  // owns the reference from here
        p.s_->exposed = py::names(res.items[1]);
        return p;
    }

    /// Python's _number_of_objects() (a debug helper of the server).
    std::int64_t _number_of_objects() {
        auto c = connection::Client(address_, authkey_);
        auto v = detail::python::dispatch(c, "number_of_objects", {});
        if (v.k != detail::python::pk::value::kind::integer) throw ProcessError("number_of_objects: not an int");
        return v.i;
    }

    /// Python's shutdown() for a server started with start(): asks it to stop.
    void shutdown() {
        auto c = connection::Client(address_, authkey_);
        detail::python::dispatch(c, "shutdown", {});
    }

    const connection::Address& address() const { return address_; }

private:
    connection::Address address_;
    std::string authkey_;
};

}  // namespace multiprocessing::managers

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

inline pk::value to_pickle(const object& o) { return pk::from_object(o); }

inline pk::value tuple(std::vector<pk::value> items) { return pk::value::seq(pk::value::kind::tuple, std::move(items)); }

// (ident, methodname, args, kwds), as Python's dispatch() and _callmethod send it.
inline std::string request(const std::optional<std::string>& ident, const std::string& method,
                           const std::vector<pk::value>& args, const Kwds& kwds) {
    std::vector<pk::value> kw;
    for (auto& [k, v] : kwds) {
        kw.push_back(pk::value::str(k));
        kw.push_back(to_pickle(v));
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
                          const Kwds& kwds = {}) {
    c.send_bytes(request(std::nullopt, method, args, kwds));
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
    object _callmethod(const std::string& name, std::vector<object> args = {}, const Kwds& kwds = {}) const {
        auto r = call(name, args, kwds);
        if (r.items[0].s == "#PROXY") {
            adopt(r.items[1]);  // released at once: the server made it for this call
            throw TypeError("method '" + name + "' of '" + s_->typeid_ + "' returns a shared object: call _callmethod_proxy");
        }
        return detail::python::pk::to_object(r.items[1]);
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

    /// Python's repr(proxy) shape: <AutoProxy[dict] object, typeid 'dict' at 0x...>.
    std::string repr() const {
        char at[32];
        std::snprintf(at, sizeof at, "%#llx", static_cast<unsigned long long>(reinterpret_cast<std::uintptr_t>(s_.get())));
        return "<AutoProxy[" + state().typeid_ + "] object, typeid '" + state().typeid_ + "' at " + at + ">";
    }

private:
    friend class PythonManager;
    struct shared_state {
        std::string typeid_, id, authkey;
        connection::Address address;
        std::vector<std::string> exposed;
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
        s->typeid_ = std::move(typeid_);
        s->address = std::move(address);
        s->id = std::move(id);
        s->authkey = std::move(authkey);
        return s;
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
        return p;
    }

    detail::python::pk::value call(const std::string& name, const std::vector<object>& args, const Kwds& kwds) const {
        namespace py = detail::python;
        auto& s = const_cast<shared_state&>(state());
        std::vector<py::pk::value> a;
        for (auto& x : args) a.push_back(py::to_pickle(x));
        std::string req = py::request(s.id, name, a, kwds);
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
        for (auto& x : args) a.push_back(py::to_pickle(x));
        const auto res = py::dispatch(c, "create", std::move(a), kwds);  // (ident, exposed)
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

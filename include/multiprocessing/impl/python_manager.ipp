// Out-of-line members of the classes in <multiprocessing/managers/python_manager.hpp>: inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION
// (so other files neither parse nor instantiate them).
#pragma once

#include "multiprocessing/managers/python_manager.hpp"

namespace multiprocessing::managers {

MULTIPROCESSING_DECL object PythonProxy::_callmethod(const std::string& name, std::vector<object> args , const Kwds& kwds) const {
    namespace pk = detail::python::pk;
    auto r = call(name, args, kwds);
    if (r.items[0].s == "#PROXY") {
        adopt(r.items[1]);  // released at once: the server made it for this call
        throw TypeError("method '" + name + "' of '" + s_->typeid_ + "' returns a shared object: call _callmethod_proxy");
    }
    const pk::instance_fn rebuild = [this](const pk::value& v) { return object(this->rebuild(v)); };
    return pk::to_object(r.items[1], &rebuild);
}

MULTIPROCESSING_DECL PythonProxy PythonProxy::_callmethod_proxy(const std::string& name, std::vector<object> args , const Kwds& kwds) const {
    auto r = call(name, args, kwds);
    if (r.items[0].s != "#PROXY")
        throw TypeError("method '" + name + "' of '" + s_->typeid_ + "' returns a value, not a shared object");
    return adopt(r.items[1]);
}

MULTIPROCESSING_DECL PythonProxy PythonProxy::_from_python_ref(const std::shared_ptr<managers::detail::python_ref>& r) {
    PythonProxy p;
    p.s_ = std::dynamic_pointer_cast<shared_state>(r);
    if (!p.s_) throw TypeError("the object holds no PythonProxy");
    return p;
}

MULTIPROCESSING_DECL std::string PythonProxy::shared_state::repr() const {
    char at[32];
    std::snprintf(at, sizeof at, "%#llx", static_cast<unsigned long long>(reinterpret_cast<std::uintptr_t>(this)));
    return "<" + cls + " object, typeid '" + typeid_ + "' at " + at + ">";
}

MULTIPROCESSING_DECL bool PythonProxy::shared_state::same(const managers::detail::python_ref& other) const {
    auto* o = dynamic_cast<const shared_state*>(&other);
    return o && o->id == id && o->address == address;
}

MULTIPROCESSING_DECL detail::python::pk::value PythonProxy::shared_state::reduce(const connection::Address* dest) const {
    namespace pk = detail::python::pk;
    std::vector<pk::value> kwds;
    bool autoproxy = cls.rfind("AutoProxy", 0) == 0;
    if (autoproxy) {
        std::vector<pk::value> names;
        for (auto& n : exposed) names.push_back(pk::value::str(n));
        kwds.push_back(pk::value::str("exposed"));
        kwds.push_back(pk::value::tuple(std::move(names)));
    }
    return pk::value::instance(
        pk::value::global("multiprocessing.managers", "RebuildProxy"),
        pk::value::tuple({pk::value::global(func_module, autoproxy ? std::string("AutoProxy") : cls),
                               dest && *dest == address ? token : detail::pickle_token(typeid_, address, id),
                               pk::value::str("pickle"), pk::value::seq(pk::value::kind::dict, std::move(kwds))}));
}

MULTIPROCESSING_DECL PythonProxy::shared_state::~shared_state() {
    idle.clear();
    if (owner != gen()) return;  // the parent's reference; closing our fd copies is all
    try {
        auto c = connection::Client(address, authkey);
        c.set_deadline(std::chrono::steady_clock::now() + std::chrono::seconds(5));
        detail::python::dispatch(c, "decref", {detail::python::pk::value::str(id)});
    } catch (...) {
    }
}

MULTIPROCESSING_DECL connection::Connection PythonProxy::shared_state::take() {
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

MULTIPROCESSING_DECL void PythonProxy::shared_state::give_back(connection::Connection c) {
    std::lock_guard<std::mutex> lock(m);
    if (idle_gen == gen() && idle.size() < 16) idle.push_back(std::move(c));
}

MULTIPROCESSING_DECL auto PythonProxy::state() const -> const shared_state& {
    if (!s_) throw ValueError("an empty PythonProxy");
    return *s_;
}

MULTIPROCESSING_DECL auto PythonProxy::make(std::string typeid_, connection::Address address, std::string id,
                                              std::string authkey) -> std::shared_ptr<shared_state> {
    auto s = std::make_shared<shared_state>();
    s->cls = managers::detail::proxy_class_name(typeid_);
    if (s->cls == "SetProxy") s->cls = "AutoProxy[" + typeid_ + "]";  // CPython 3.13 has no SetProxy
    s->token = detail::pickle_token(typeid_, address, id);
    s->typeid_ = std::move(typeid_);
    s->address = std::move(address);
    s->id = std::move(id);
    s->authkey = std::move(authkey);
    return s;
}

MULTIPROCESSING_DECL PythonProxy PythonProxy::rebuild(const detail::python::pk::value& v) const {
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
    auto parsed = detail::token_address(st[1]);
    if (!parsed) throw ProcessError("a CPython manager sent a Token whose address is neither a path nor (host, port)");
    connection::Address where = std::move(*parsed);
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

MULTIPROCESSING_DECL PythonProxy PythonProxy::adopt(const detail::python::pk::value& reply) const {
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

MULTIPROCESSING_DECL detail::python::pk::value PythonProxy::call(const std::string& name, const std::vector<object>& args, const Kwds& kwds) const {
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

}  // namespace multiprocessing::managers

namespace multiprocessing::managers {

MULTIPROCESSING_DECL void PythonManager::connect() {
    auto c = connection::Client(address_, authkey_);
    detail::python::dispatch(c, "dummy", {});
}

MULTIPROCESSING_DECL PythonProxy PythonManager::create(const std::string& typeid_, std::vector<object> args , const Kwds& kwds) {
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

MULTIPROCESSING_DECL std::int64_t PythonManager::_number_of_objects() {
    auto c = connection::Client(address_, authkey_);
    auto v = detail::python::dispatch(c, "number_of_objects", {});
    if (v.k != detail::python::pk::value::kind::integer) throw ProcessError("number_of_objects: not an int");
    return v.i;
}

MULTIPROCESSING_DECL void PythonManager::shutdown() {
    auto c = connection::Client(address_, authkey_);
    detail::python::dispatch(c, "shutdown", {});
}

}  // namespace multiprocessing::managers

namespace multiprocessing::managers {

MULTIPROCESSING_DECL const std::vector<std::string>& PythonProxy::_exposed() const { return state().exposed; }

MULTIPROCESSING_DECL const std::string& PythonProxy::typeid_() const { return state().typeid_; }

MULTIPROCESSING_DECL const std::string& PythonProxy::id() const { return state().id; }

MULTIPROCESSING_DECL const connection::Address& PythonProxy::address() const { return state().address; }

MULTIPROCESSING_DECL PythonProxy::operator bool() const { return static_cast<bool>(s_); }

MULTIPROCESSING_DECL const std::string& PythonProxy::type_name() const { return state().cls; }

MULTIPROCESSING_DECL std::string PythonProxy::repr() const { return state().repr(); }

MULTIPROCESSING_DECL std::shared_ptr<managers::detail::python_ref> PythonProxy::_python_ref() const { return s_; }

MULTIPROCESSING_DECL std::string PythonProxy::shared_state::type_name() const { return cls; }

MULTIPROCESSING_DECL std::uint64_t PythonProxy::shared_state::hash_id() const { return std::hash<std::string>()(id); }

MULTIPROCESSING_DECL unsigned PythonProxy::shared_state::gen() { return multiprocessing::detail::fork_state::instance().generation(); }

}  // namespace multiprocessing::managers

namespace multiprocessing::managers {

MULTIPROCESSING_DECL PythonManager::PythonManager(connection::Address address, std::string authkey) : address_(std::move(address)), authkey_(std::move(authkey)) {}

MULTIPROCESSING_DECL const connection::Address& PythonManager::address() const { return address_; }

}  // namespace multiprocessing::managers

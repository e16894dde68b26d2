// The Server's side of CPython clients (managers/server.hpp): requests and
// replies pickled as CPython's managers send them, on the same objects and
// through the same method calls as C++ clients.  Inline in header-only
// builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION.
#pragma once

#include "multiprocessing/managers/server.hpp"
#include "multiprocessing/detail/py_token.hpp"

#include <sys/socket.h>

#include <cctype>
#include <cstdio>
#include <limits>

namespace multiprocessing::managers {

namespace detail::python_server {

using pk::value;

inline value reply(const char* kind, value v) { return value::tuple({value::str(kind), std::move(v)}); }

// The items Python's range(...) may expand to in one request (each 72 bytes here).
constexpr std::int64_t max_range_items = 1 << 20;

inline std::string strip_namespace(std::string type) {
    for (const char* p : {"multiprocessing::managers::", "multiprocessing::"})
        if (type.rfind(p, 0) == 0) return type.substr(std::string(p).size());
    return type;
}

// KeyError's message here is the key's repr: back to the key for the
// simple keys (a str without quotes or escapes inside, an int).
inline value key_error_arg(const std::string& m) {
    if (m.size() >= 2 && (m.front() == '\'' || m.front() == '"') && m.back() == m.front() &&
        m.find_first_of("\\'\"", 1) == m.size() - 1)
        return value::str(m.substr(1, m.size() - 2));
    if (!m.empty() && m.size() < 19) {
        std::size_t i = m[0] == '-' ? 1 : 0;
        bool digits = i < m.size();
        for (std::size_t k = i; k < m.size(); ++k) digits = digits && std::isdigit(static_cast<unsigned char>(m[k]));
        if (digits) return value::integer(std::stoll(m));
    }
    return value::str(m);
}

/// The '#ERROR' reply that raises in Python what the C++ method threw: the
/// builtin exception of that name, queue's Empty and Full, threading's
/// BrokenBarrierError, multiprocessing's own; anything else is a
/// '#TRACEBACK', which Python raises as RemoteError.
inline value error_reply(const std::string& cpp_type, const std::string& message) {
    std::string type = strip_namespace(cpp_type);
    static const char* const builtin[] = {
        "KeyError", "IndexError", "ValueError", "TypeError", "AttributeError", "NotImplementedError",
        "OverflowError", "StopIteration", "EOFError", "TimeoutError", "ConnectionError", "FileNotFoundError",
        "FileExistsError", "RuntimeError", "ZeroDivisionError", "AssertionError", "PermissionError"};
    const char* module = nullptr;
    for (const char* b : builtin)
        if (type == b) module = "builtins";
    bool no_args = false;
    if (type == "StopIteration" && message == "StopIteration") no_args = true;  // an iterator's end, as Python's
    if (type == "Empty") module = "_queue", no_args = true;
    if (type == "Full") module = "queue", no_args = true;
    if (type == "BrokenBarrierError") module = "threading", no_args = true;
    if (type == "std::bad_alloc") module = "builtins", type = "MemoryError", no_args = true;
    if (type == "ProcessError" || type == "AuthenticationError" || type == "BufferTooShort") module = "multiprocessing";
    if (!module)
        return reply("#TRACEBACK", value::str("Traceback (most recent call last):\n  (in the C++ manager server)\n" +
                                              type + ": " + message + "\n"));
    std::vector<value> args;
    if (!no_args && !message.empty()) args.push_back(type == "KeyError" ? key_error_arg(message) : value::str(message));
    return reply("#ERROR", value::instance(value::global(module, type), value::tuple(std::move(args))));
}

inline value error_reply(const std::exception& e) {
    if (auto* r = dynamic_cast<const RemoteError*>(&e)) return error_reply(r->type_name(), r->message());
    if (dynamic_cast<const pk::UnpicklingError*>(&e)) {
        if (std::string(e.what()).find("beyond 64 bits") != std::string::npos)
            return error_reply("OverflowError", "int beyond 64 bits: C++ methods take 64-bit ints");
        return reply("#ERROR", value::instance(value::global("_pickle", "UnpicklingError"),
                                               value::tuple({value::str(e.what())})));
    }
    std::string name = detail::exception_table::instance().name_of(e);
    if (name.empty()) name = multiprocessing::detail::demangle(typeid(e).name());
    return error_reply(name, e.what());
}

inline std::uint64_t parse_ident(const value& v) {
    if (v.k != value::kind::str || v.s.empty() || v.s.size() > 16)
        throw KeyError("no shared object with id " + (v.k == value::kind::str ? v.s : std::string("of that type")));
    std::uint64_t id = 0;
    for (char ch : v.s) {
        int d = std::isdigit(static_cast<unsigned char>(ch)) ? ch - '0'
                : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10 : -1;
        if (d < 0) throw KeyError("no shared object with id '" + v.s + "'");
        id = id * 16 + static_cast<std::uint64_t>(d);
    }
    return id;
}

inline std::string ident(std::uint64_t id) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(id));
    return buf;
}

// Binds Python arguments to a built-in type's method (keywords, defaults,
// None for a defaulted parameter), then appends its fixed values.
inline std::vector<value> bind(const type_entry::py_method& m, std::vector<value> args, const value& kwds,
                               const std::string& name) {
    const std::size_t n = m.names.size(), first_default = n - m.defaults.size();
    if (args.size() > n)
        throw TypeError(name + "() takes " + std::to_string(n) + " positional arguments but " +
                        std::to_string(args.size()) + " were given");
    std::vector<char> given(n, 0);
    for (std::size_t i = 0; i < args.size(); ++i) given[i] = 1;
    args.resize(n);
    for (std::size_t k = 0; k + 1 < kwds.items.size(); k += 2) {
        const value& key = kwds.items[k];
        std::size_t i = 0;
        while (i < n && !(key.k == value::kind::str && key.s == m.names[i])) ++i;
        if (i == n)
            throw TypeError(name + "() got an unexpected keyword argument " +
                            (key.k == value::kind::str ? "'" + key.s + "'" : std::string("that is not a str")));
        if (given[i]) throw TypeError(name + "() got multiple values for argument '" + m.names[i] + "'");
        args[i] = kwds.items[k + 1];
        given[i] = 1;
    }
    for (std::size_t i = 0; i < n; ++i) {
        if (i >= first_default && (!given[i] || args[i].k == value::kind::none)) args[i] = m.defaults[i - first_default];
        else if (!given[i]) throw TypeError(name + "() missing required argument: '" + m.names[i] + "'");
    }
    for (auto& f : m.fixed) args.push_back(f);
    return args;
}

// Converts proxies both ways for the calls of one CPython request: a
// Python proxy argument (RebuildProxy) becomes a C++ proxy, a C++ proxy in
// a result becomes a RebuildProxy.
// Python's range(...) in a request (m.list(range(3))) as the list it
// stands for; at most max_items in all, since a pickled range is a few
// bytes whatever its length.
inline void expand_ranges(value& v, std::int64_t& budget) {
    if (v.k == value::kind::instance && v.cls().k == value::kind::global && v.cls().s == "builtins range") {
        const value& a = v.args();
        std::int64_t r[3] = {0, 0, 1};
        std::size_t n = a.k == value::kind::tuple ? a.items.size() : 0;
        if (n < 1 || n > 3) throw TypeError("range expected 1 to 3 arguments");
        for (std::size_t i = 0; i < n; ++i) {
            if (a.items[i].k != value::kind::integer && a.items[i].k != value::kind::boolean)
                throw TypeError("range() arguments must be integers");
            r[n == 1 ? 1 : i] = a.items[i].k == value::kind::boolean ? a.items[i].b : a.items[i].i;
        }
        if (r[2] == 0) throw ValueError("range() arg 3 must not be zero");
        // The length, in unsigned arithmetic: no overflow for any 64-bit bounds.
        auto span = [](std::int64_t lo, std::int64_t hi) { return static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo); };
        std::uint64_t len = 0;
        if (r[2] > 0 && r[0] < r[1]) len = (span(r[0], r[1]) - 1) / static_cast<std::uint64_t>(r[2]) + 1;
        if (r[2] < 0 && r[0] > r[1]) len = (span(r[1], r[0]) - 1) / (0 - static_cast<std::uint64_t>(r[2])) + 1;
        if (len > static_cast<std::uint64_t>(budget))
            throw ValueError("a range of " + std::to_string(len) + " items is more than a C++ server expands (" +
                             std::to_string(max_range_items) + " per request)");
        budget -= static_cast<std::int64_t>(len);
        std::vector<value> items;
        items.reserve(len);
        std::uint64_t x = static_cast<std::uint64_t>(r[0]);
        for (std::uint64_t i = 0; i < len; ++i, x += static_cast<std::uint64_t>(r[2]))
            items.push_back(value::integer(static_cast<std::int64_t>(x)));
        v = value::seq(value::kind::list, std::move(items));
        return;
    }
    for (auto& x : v.items) expand_ranges(x, budget);
}

// l[start:stop:step] over a list of n items, as Python's slice.indices
// and PySlice_AdjustIndices: the indices it picks.
inline std::vector<std::size_t> slice_picks(const value& start, const value& stop, const value& step, std::size_t n) {
    auto num = [](const value& v, std::int64_t none) -> std::int64_t {
        if (v.k == value::kind::none) return none;
        if (v.k == value::kind::integer) return v.i;
        if (v.k == value::kind::boolean) return v.b;
        throw TypeError("slice indices must be integers or None or have an __index__ method");
    };
    const std::int64_t big = std::numeric_limits<std::int64_t>::max(), len = static_cast<std::int64_t>(n);
    std::int64_t st = num(step, 1);
    if (st == 0) throw ValueError("slice step cannot be zero");
    if (st == std::numeric_limits<std::int64_t>::min()) st = -big;  // as CPython clamps it
    std::int64_t a = num(start, st < 0 ? big : 0), b = num(stop, st < 0 ? -big - 1 : big);
    auto adjust = [&](std::int64_t& i) {
        if (i < 0) {
            i = i < -len ? (st < 0 ? -1 : 0) : i + len;
        } else if (i >= len) {
            i = st < 0 ? len - 1 : len;
        }
    };
    adjust(a);
    adjust(b);
    // a and b are now in [-1, len]: the count cannot overflow, nor a + k*st.
    std::int64_t count = 0;
    if (st > 0 && a < b) count = (b - a - 1) / st + 1;
    if (st < 0 && b < a) count = (a - b - 1) / -st + 1;
    std::vector<std::size_t> picks;
    for (std::int64_t k = 0; k < count; ++k) picks.push_back(static_cast<std::size_t>(a + k * st));
    return picks;
}

struct proxy_scope {
    proxy_scope(pk::instance_fn f, pk::proxy_fn t)
        : from(std::move(f)), to(std::move(t)), saved(pk::object_proxy_conversion::current()) {
        pk::object_proxy_conversion::current() = {&from, &to};
    }
    ~proxy_scope() { pk::object_proxy_conversion::current() = saved; }
    proxy_scope(const proxy_scope&) = delete;
    proxy_scope& operator=(const proxy_scope&) = delete;
    pk::instance_fn from;
    pk::proxy_fn to;
    pk::object_proxy_conversion saved;
};

}  // namespace detail::python_server

MULTIPROCESSING_DECL object Server::python_rebuild(const detail::pk::value& v) {
    namespace ps = detail::python_server;
    using ps::value;
    auto name = v.cls().module() == "multiprocessing.managers" ? v.cls().name() : std::string_view();
    if (name != "RebuildProxy")
        throw TypeError("a pickled instance of '" + std::string(v.cls().module()) + "." +
                        std::string(v.cls().name()) + "' is not a value C++ takes");
    const value& a = v.args();
    if (a.items.size() != 4 || a.items[1].k != value::kind::instance || !a.items[1].has_state() ||
        a.items[1].state().k != value::kind::tuple || a.items[1].state().items.size() != 3 ||
        a.items[1].state().items[0].k != value::kind::str)
        throw TypeError("a RebuildProxy without a Token");
    const auto& st = a.items[1].state().items;
    auto parsed = detail::token_address(st[1]);
    if (!parsed) throw TypeError("a Token with an address that is neither a path nor (host, port)");
    const connection::Address& where = *parsed;
    // Only this server's objects (under any host name, for TCP): a client
    // must not make the server connect where it likes.
    const auto& here = address();
    if (!(here.is_tcp() ? where.is_tcp() && where.port() == here.port() : where == here))
        throw TypeError("a proxy of another manager (" + where.str() + ") cannot be passed to this one");
    // The id names the object; Python's typeid may be its Python name
    // ('list' for "list[List<object>]"), so the server's own is used.
    auto r = lookup(ps::parse_ident(st[2]));
    if (!r) throw KeyError("no shared object " + st[2].s);
    return object::_proxy_of(r->type->typeid_, detail::encode_address(here), ps::parse_ident(st[2]));
}

MULTIPROCESSING_DECL detail::pk::value Server::python_reduce(const object& o) const {
    namespace ps = detail::python_server;
    using ps::value;
    std::string tid, addr;
    std::uint64_t id = 0;
    o._proxy_token(tid, addr, id);
    Token t{tid, detail::decode_address(addr), id};
    // SyncManager's types as Python's own proxy classes (3.13 has no
    // SetProxy); others as AutoProxy with their exposed methods.
    std::string cls = detail::proxy_class_name(tid);
    std::vector<value> kwds;
    if (cls.rfind("AutoProxy", 0) == 0 || cls == "SetProxy") {
        cls = "AutoProxy";
        if (auto te = registry_->find(tid)) {
            kwds.push_back(value::str("exposed"));
            kwds.push_back(python_exposed(*te));
        }
    }
    return value::instance(value::global("multiprocessing.managers", "RebuildProxy"),
                           value::tuple({value::global("multiprocessing.managers", cls), python_token(t),
                                      value::str("pickle"), value::seq(value::kind::dict, std::move(kwds))}));
}

MULTIPROCESSING_DECL std::uint64_t Server::python_session_of(int fd) const {
    if (!address().is_unix()) return python_session;
    ucred cr{};
    socklen_t len = sizeof cr;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 || cr.pid <= 0) return python_session;
    return (static_cast<std::uint64_t>(cr.pid) << 2) | 2;  // even: never a C++ session, never 2
}

MULTIPROCESSING_DECL void Server::watch_python_process(std::uint64_t sess, pid_t pid) {
    int pidfd = multiprocessing::detail::pidfd_open(pid);
    if (pidfd < 0) return;  // no pidfds here: its references stay, as in CPython
    {
        std::lock_guard<std::mutex> g(mu_);
        ++live_threads_;
    }
    try {
        std::thread([this, sess, pidfd] {
            // Readable when the process exits; wake_ when the server stops.
            pollfd p[2] = {{pidfd, POLLIN, 0}, {wake_[0], POLLIN, 0}};
            while (::poll(p, 2, -1) < 0 && errno == EINTR) {
            }
            ::close(pidfd);
            if ((p[0].revents & POLLIN) && !stopping_.load()) python_process_gone(sess);
            std::lock_guard<std::mutex> g(mu_);
            if (--live_threads_ == 0) threads_done_.notify_all();
        }).detach();
    } catch (...) {
        ::close(pidfd);
        std::lock_guard<std::mutex> g(mu_);
        if (--live_threads_ == 0) threads_done_.notify_all();
    }
}

MULTIPROCESSING_DECL void Server::python_process_gone(std::uint64_t sess) {
    std::vector<std::shared_ptr<referent>> dead;
    {
        std::lock_guard<std::mutex> g(mu_);
        auto it = sessions_.find(sess);
        if (it == sessions_.end()) return;
        it->second.gone = true;
        if (it->second.connections > 0) return;  // the last one to close releases
        release_session_locked(it, dead);
    }
    reap(dead);
}

MULTIPROCESSING_DECL void Server::python_connection_closed(std::uint64_t sess) {
    bool release = false;
    {
        std::lock_guard<std::mutex> g(mu_);
        auto it = sessions_.find(sess);
        if (it == sessions_.end()) return;
        release = --it->second.connections <= 0 && it->second.gone;
    }
    if (release) python_process_gone(sess);
}

MULTIPROCESSING_DECL void Server::serve_python(connection::Connection& c, std::uint64_t conn_id, std::string first) {
    namespace ps = detail::python_server;
    using ps::value;
    const std::uint64_t sess = python_session_of(c.fileno());
    pid_t watch = 0;
    {
        std::lock_guard<std::mutex> g(mu_);
        auto& s = sessions_[sess];
        s.connections += 1;
        if (sess != python_session && s.pid == 0) s.pid = static_cast<std::uint64_t>(watch = static_cast<pid_t>(sess >> 2));
    }
    struct closing {
        Server& server;
        std::uint64_t sess;
        ~closing() { server.python_connection_closed(sess); }
    } on_return{*this, sess};
    if (watch) watch_python_process(sess, watch);
    std::string msg = std::move(first);
    // Proxies in the last reply, kept alive until the client's next request
    // on this connection: unpickling the reply increfs them first.
    std::vector<std::shared_ptr<detail::ref_entry>> kept;
    for (;;) {
        value out;
        bool stop = false;
        std::vector<handover> handed;
        try {
            // Only the manager's own globals, slice and range, none of them called.
            detail::pk::limits lim;
            lim.allowed = [](std::string_view module, std::string_view name) {
                return (module == "builtins" && (name == "slice" || name == "range")) ||
                       detail::pk::allow_manager_globals(module, name);
            };
            value req = detail::pk::loads(msg, lim);
            std::int64_t budget = ps::max_range_items;
            ps::expand_ranges(req, budget);
            if (req.k != value::kind::tuple || req.items.size() != 4 || req.items[1].k != value::kind::str ||
                (req.items[2].k != value::kind::tuple && req.items[2].k != value::kind::list) ||
                (req.items[3].k != value::kind::dict && req.items[3].k != value::kind::none))
                throw TypeError("a request must be (ident, methodname, args, kwds)");
            const value& kwds = req.items[3];
            if (req.items[0].k == value::kind::none)
                out = python_public(req.items[1].s, req.items[2].items, kwds, sess, conn_id, c.fileno(), stop);
            else
                out = python_call(req.items[0].k == value::kind::str ? req.items[0].s : std::string("?"),
                                  req.items[1].s, std::move(req.items[2].items), kwds, sess, conn_id, c.fileno(), handed, kept);
        } catch (const std::exception& e) {
            take_back_all(handed);  // the caller gets an error, not the thing
            out = ps::error_reply(e);
        } catch (...) {
            // A method or constructor threw something else (an int, a
            // struct): it must not end the server.
            take_back_all(handed);
            auto d = detail::describe_foreign_exception();
            out = ps::error_reply(d.first, d.second);
        }
        std::string bytes;
        try {
            bytes = detail::pk::dumps(out);
        } catch (const std::exception& e) {
            take_back_all(handed);
            bytes = detail::pk::dumps(ps::reply("#UNSERIALIZABLE", value::str(e.what())));
        }
        try {
            c.send_bytes(bytes);
        } catch (...) {
            take_back_all(handed);  // never delivered
            throw;
        }
        if (stop) {
            shutdown();
            return;
        }
        msg = c.recv_bytes(opts_.max_frame);
        kept.clear();
    }
}

MULTIPROCESSING_DECL detail::pk::value Server::python_public(const std::string& name,
                                                             std::vector<detail::pk::value>& args,
                                                             const detail::pk::value& kwds, std::uint64_t sess,
                                                             std::uint64_t conn_id, int fd, bool& stop) {
    namespace ps = detail::python_server;
    using ps::value;
    auto need = [&](std::size_t n) {
        if (args.size() != n || (name != "create" && !kwds.items.empty()))
            throw TypeError(name + "() takes " + std::to_string(n) + " arguments");
    };
    if (name == "create") {
        if (args.empty() || args[0].k != value::kind::str) throw TypeError("create() needs a typeid");
        std::string typeid_ = args[0].s;
        args.erase(args.begin());
        return ps::reply("#RETURN", python_create(typeid_, std::move(args), kwds, sess, conn_id, fd));
    }
    if (name == "incref" || name == "decref") {
        need(1);
        std::uint64_t id = ps::parse_ident(args[0]);
        std::vector<std::shared_ptr<referent>> dead;
        {
            std::lock_guard<std::mutex> g(mu_);
            auto it = objects_.find(id);
            if (it == objects_.end()) throw KeyError(ps::ident(id));
            if (name == "incref") {
                it->second->refcount += 1;
                sessions_[sess].refs[id] += 1;
            } else {
                drop_session_ref_locked(sess, id, 1, dead);
            }
        }
        reap(dead);
        return ps::reply("#RETURN", value());
    }
    if (name == "accept_connection" || name == "dummy") return ps::reply("#RETURN", value());
    if (name == "get_methods") {
        need(1);
        const value& t = args[0];
        if (t.k != value::kind::instance || !t.has_state() || t.state().k != value::kind::tuple ||
            t.state().items.size() != 3)
            throw TypeError("get_methods() needs a Token");
        auto r = lookup(ps::parse_ident(t.state().items[2]));
        if (!r) throw KeyError(t.state().items[2].s);
        return ps::reply("#RETURN", python_exposed(*r->type));
    }
    if (name == "number_of_objects") {
        need(0);
        return ps::reply("#RETURN", value::integer(static_cast<std::int64_t>(number_of_objects())));
    }
    if (name == "debug_info") {
        need(0);
        return ps::reply("#RETURN", value::str(debug_info()));
    }
    if (name == "shutdown") {
        need(0);
        stop = true;
        return ps::reply("#RETURN", value());
    }
    throw AttributeError("'Server' has no public method '" + name + "'");
}

MULTIPROCESSING_DECL detail::pk::value Server::python_exposed(const detail::type_entry& t) const {
    std::vector<detail::pk::value> names;
    for (auto& n : t.python_exposed()) names.push_back(detail::pk::value::str(n));
    return detail::pk::value::tuple(std::move(names));
}

MULTIPROCESSING_DECL detail::pk::value Server::python_token(const Token& t) const {
    return detail::pickle_token(t.typeid_, t.address, detail::python_server::ident(t.id));
}

MULTIPROCESSING_DECL detail::pk::value Server::python_create(const std::string& typeid_,
                                                             std::vector<detail::pk::value> args,
                                                             const detail::pk::value& kwds, std::uint64_t sess,
                                                             std::uint64_t conn_id, int fd) {
    namespace ps = detail::python_server;
    using ps::value;
    if (!kwds.items.empty())
        throw TypeError("create('" + typeid_ + "'): a C++ constructor takes no keyword arguments; pass them by position");
    auto t = registry_->find(typeid_);
    // Candidate argument lists: as given, then with the trailing defaults
    // of a Python name (SyncManager's 'dict', 'Lock'...), each made in args
    // itself in turn (they may be long: m.list(range(n))).
    std::optional<detail::registry::python_alias> alias;
    if (!t) {
        alias = registry_->find_python_alias(typeid_);
        if (!alias) throw KeyError("unknown typeid '" + typeid_ + "'");
        t = registry_->find(alias->typeid_);
        if (!t)
            throw KeyError("typeid '" + typeid_ + "' is not served to Python clients: the server program must call "
                           "SyncManager::register_python_types() before start() or get_server()");
    }
    const std::size_t given = args.size(), d = alias ? alias->defaults.size() : 0;
    if (t->interface_only)
        throw TypeError("typeid '" + typeid_ + "' is registered in the server with MP_INTERFACE only");
    ps::proxy_scope proxies([this](const value& v) { return python_rebuild(v); },
                            [this](const object& o) { return python_reduce(o); });
    context ctx;
    ctx.server = this;
    ctx.session = sess;
    ctx.connection = conn_id;
    ctx.fd = fd;
    struct guard {
        explicit guard(context& x) { detail::current_call() = &x; }
        ~guard() { detail::current_call() = nullptr; }
    } g(ctx);
    std::shared_ptr<void> obj;
    std::string why;
    for (std::size_t j = 0; j <= d; ++j) {
        if (alias) {
            args.resize(given);
            for (std::size_t k = d - j; k < d; ++k) args.push_back(alias->defaults[k]);
            for (auto& f : alias->fixed) args.push_back(f);
        }
        const std::vector<value>& a = args;
        std::vector<detail::pk::args_fn> ways;
        std::vector<detail::factory_fn> makes;
        if (t->factory) {
            if (t->factory_py_args) ways.push_back(t->factory_py_args), makes.push_back(t->factory);
            else why = "the callable of typeid '" + typeid_ + "' takes (" + t->factory_text + "), which Python cannot give";
        } else {
            for (auto* c : detail::constructor_table::instance().python_constructors(t->referent))
                ways.push_back(c->py_args), makes.push_back(c->make);
        }
        for (std::size_t i = 0; i < ways.size() && !obj; ++i) {
            std::vector<char> body;
            try {
                ways[i](a, body);
            } catch (const std::exception& e) {  // not this constructor's arguments
                why = e.what();
                continue;
            }
            obj = makes[i](body.data(), body.size());
        }
        if (obj) break;
    }
    if (!obj)
        throw TypeError("typeid '" + typeid_ + "' has no constructor for these arguments" +
                        (why.empty() ? std::string(" (none that Python can call is known to this server)")
                                     : " (" + why + ")"));
    const void* raw = obj.get();
    std::uint64_t id = add_object(std::move(obj), raw, t, sess);
    return value::tuple({value::str(ps::ident(id)), python_exposed(*t)});
}

MULTIPROCESSING_DECL detail::pk::value Server::python_call(const std::string& ident, const std::string& name,
                                                           std::vector<detail::pk::value> args,
                                                           const detail::pk::value& kwds, std::uint64_t sess,
                                                           std::uint64_t conn_id, int fd, std::vector<handover>& handed,
                                                           std::vector<std::shared_ptr<detail::ref_entry>>& kept) {
    namespace ps = detail::python_server;
    using ps::value;
    auto r = lookup(ps::parse_ident(value::str(ident)));
    if (!r) throw KeyError("no shared object with id '" + ident + "'");
    const detail::type_entry& t = *r->type;
    ps::proxy_scope proxies([this](const value& v) { return python_rebuild(v); },
                            [this](const object& o) { return python_reduce(o); });
    const std::size_t head = connection::Connection::header_room + sizeof(detail::ReplyHeader);
    if (name == "#GETVALUE") {
        if (!t.py_getvalue) throw TypeError("the value of a '" + t.typeid_ + "' has no Python form");
        return ps::reply("#RETURN", t.py_getvalue(r->obj.get(), t.self_locking ? nullptr : &r->mu));
    }
    // iter(d): Python's DictProxy asks for a proxy of typeid 'Iterator'
    // (its IteratorProxy); here one over a copy of the keys.
    auto keys_method = t.by_name.equal_range("keys");
    if (name == "__iter__" && args.empty() && kwds.items.empty() && t.by_name.count("__iter__") == 0 &&
        t.by_name.count("keys") == 1 && keys_method.first->second->arity == 0 &&
        !keys_method.first->second->returns_token) {
        auto it_type = registry_->find_referent(typeid(detail::PythonIterator));
        if (!it_type)
            throw AttributeError("iter() of a shared '" + t.typeid_ +
                                 "' needs SyncManager::register_python_types() in the server program");
        value keys = python_call(ident, "keys", {}, kwds, sess, conn_id, fd, handed, kept);
        const detail::pk::instance_fn rebuild = [this](const value& v) { return python_rebuild(v); };
        std::vector<object> items = detail::pk::to_object(keys.items.at(1), &rebuild).iterate();
        auto it = std::make_shared<detail::PythonIterator>(std::move(items));
        const void* raw = it.get();
        std::uint64_t id = add_object(std::move(it), raw, it_type, sess);  // the client increfs, then drops this one
        return ps::reply("#PROXY", value::tuple({python_exposed(*it_type), python_token(Token{it_type->typeid_, address(), id})}));
    }
    std::string target = name;
    // l[a:b] is __getslice__ here; with a step, the whole list's, then picked.
    std::optional<value> step_slice;
    if (name == "__getitem__" && args.size() == 1 && args[0].k == value::kind::instance &&
        args[0].cls().s == "builtins slice") {
        const value& sa = args[0].args();
        if (sa.k != value::kind::tuple || sa.items.size() != 3) throw TypeError("a slice is (start, stop, step)");
        for (auto& b : sa.items)
            if (b.k != value::kind::none && b.k != value::kind::integer && b.k != value::kind::boolean)
                throw TypeError("slice indices must be integers or None or have an __index__ method");
        auto bound = [](const value& b, std::int64_t none) {
            return b.k == value::kind::none ? value::integer(none) : b;
        };
        if (sa.items[2].k == value::kind::none) {
            args = {bound(sa.items[0], 0), bound(sa.items[1], std::numeric_limits<std::int64_t>::max())};
        } else {
            step_slice = sa;
            args = {value::integer(0), value::integer(std::numeric_limits<std::int64_t>::max())};
        }
        target = "__getslice__";
    }
    if (auto pm = t.py_methods.find(name); pm != t.py_methods.end()) {
        args = ps::bind(pm->second, std::move(args), kwds, name);
        target = pm->second.target;
    } else if (!kwds.items.empty()) {
        throw TypeError(name + "(): a C++ method takes no keyword arguments; pass them by position");
    }
    if ((name == "__repr__" || name == "__str__") && t.by_name.count(name) == 0 && t.str) {
        std::vector<char> out;
        run_call(r, t.str, nullptr, 0, sess, conn_id, fd, 0, out, handed, kept, nullptr);
        return ps::reply("#RETURN", detail::pk::body_to_value<std::string>(out.data() + head, out.size() - head));
    }
    // The methods of that name and arity (Python's get(k, d) is get_default here).
    std::vector<const detail::method_entry*> cands;
    bool named = false;
    for (const std::string& n : {target, target + "_default"}) {
        auto range = t.by_name.equal_range(n);
        for (auto it = range.first; it != range.second; ++it) {
            named = true;
            if (it->second->arity == args.size() && it->second->invoke) cands.push_back(it->second);
        }
    }
    if (cands.empty()) {
        if (!named)
            throw AttributeError("method '" + name + "' of '" + t.typeid_ + "' object is not in exposed=" +
                                 t.exposed_list());
        throw TypeError(name + "() of '" + t.typeid_ + "' takes no " + std::to_string(args.size()) +
                        " positional arguments");
    }
    std::string why;
    for (auto* m : cands) {
        if (!m->py_args || (!m->py_result && !m->returns_token)) {
            why = "method '" + name + "' of '" + t.typeid_ + "' has a parameter or result with no Python form: " +
                  m->text();
            continue;
        }
        std::vector<char> body;
        try {
            m->py_args(args, body);
        } catch (const std::exception& e) {
            why = name + "(): " + e.what();
            continue;
        }
        std::vector<char> out;
        run_call(r, m->invoke, body.data(), body.size(), sess, conn_id, fd, 0, out, handed, kept, nullptr);
        const char* p = out.data() + head;
        std::size_t n = out.size() - head;
        if (m->returns_token) {
            Token tok;
            {
                multiprocessing::detail::memory_source src(p, n);
                multiprocessing::detail::iarchive ia(src);
                ia >> tok;
            }
            // The reference the call made is the Python client's now: it
            // increfs for its proxy, then decrefs this one.
            auto nr = lookup(tok.id);
            if (!nr) throw KeyError("the shared object a method returned is gone");
            return ps::reply("#PROXY", value::tuple({python_exposed(*nr->type), python_token(tok)}));
        }
        value res = m->py_result(p, n);
        if (step_slice) {
            if (res.k != value::kind::list)
                throw TypeError("a slice with a step needs a list from '" + t.typeid_ + "'.__getslice__");
            std::vector<value> picked;
            for (std::size_t i : ps::slice_picks(step_slice->items[0], step_slice->items[1], step_slice->items[2],
                                                 res.items.size()))
                picked.push_back(std::move(res.items[i]));
            res.items = std::move(picked);
        }
        return ps::reply("#RETURN", std::move(res));
    }
    throw TypeError(why);
}

}  // namespace multiprocessing::managers

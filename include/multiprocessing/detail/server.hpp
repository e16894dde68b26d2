// managers.Server: owns the shared objects and serves each connection in its
// own thread.
//
// Differs from Python's Server: references are counted per client process
// (session) and released when that process's connections all close, however
// it died; calls on one object are serialized unless its type is
// self_locking; the server stops when its owner process dies.
#pragma once

#include "multiprocessing/connection.hpp"
#include "multiprocessing/detail/client.hpp"
#include "multiprocessing/detail/protocol.hpp"
#include "multiprocessing/detail/registry.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace multiprocessing::managers {

/// Tunables shared by BaseManager and Server.
struct ServerOptions {
    /// Largest frame either side accepts (Python has no limit).
    std::size_t max_frame = connection::default_max_frame;
    /// For TCP: a client silent this long (keepalive probes unanswered) is
    /// treated as gone and its references are released.
    int keepalive_idle = 10, keepalive_interval = 2, keepalive_count = 3;
    /// Print a line to stderr for each refused or broken connection.
    bool log_errors = true;
    /// Client side: busy-poll up to this many microseconds for a reply
    /// before sleeping.  Cuts a call to below the blocking socket round trip
    /// when the client has a core to itself, but costs throughput when
    /// processes outnumber cores, so it is off by default and backs off by
    /// itself while spinning does not pay.
    int spin_us = 0;
};

/// Python's managers.Server: serves the objects of one registry at one
/// address.  Obtain one from BaseManager::get_server().
class Server {
public:
    Server(std::shared_ptr<const detail::registry> reg, const connection::Address& address,
           std::string authkey, ServerOptions opts = {}, std::string owned_dir = {})
        : registry_(std::move(reg)), authkey_(std::move(authkey)), opts_(opts), owned_dir_(std::move(owned_dir)) {
        listener_ = connection::Listener(address, authkey_);
        if (::pipe2(wake_, O_CLOEXEC) != 0) throw connection::detail::sys_error("pipe");
        // Server-side proxies (objects holding proxies) talk back to us.
        detail::client_state::instance().get(listener_.address(), &authkey_, opts_.max_frame);
    }
    ~Server() {
        shutdown();
        registry_->run_exit_hooks();  // before the wait: a slow exit may be cut short by SIGKILL
        wait_for_threads(std::chrono::seconds(5));
        decltype(objects_) doomed;
        {
            std::lock_guard<std::mutex> g(mu_);
            if (live_threads_ == 0) doomed.swap(objects_);  // destroyed below, outside the lock
            else for (auto& kv : objects_) leaked_.push_back(kv.second);  // threads still use them
        }
        doomed.clear();
        listener_.close();
        if (!owned_dir_.empty()) ::rmdir(owned_dir_.c_str());  // the private pymp-* directory
        ::close(wake_[0]);
        ::close(wake_[1]);
    }
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// The address actually listened on (a TCP port 0 becomes the real port).
    const connection::Address& address() const { return listener_.address(); }

    /// Stop when this fd becomes readable or hangs up (the owner's pipe).
    void set_owner_fd(int fd) { owner_fd_ = fd; }

    /// Serves until shutdown() is called, a client sends a shutdown request,
    /// the owner process dies, or (with handle_signals) SIGINT, SIGTERM or
    /// SIGHUP arrives.
    void serve_forever(bool handle_signals = true) {
        int sfd = -1;
        sigset_t old;
        if (handle_signals) {
            sigset_t set;
            sigemptyset(&set);
            // An ignored SIGINT (a forked manager server's: Ctrl-C belongs to
            // the owner) stays ignored; blocking it would queue it for us.
            struct sigaction cur {};
            if (::sigaction(SIGINT, nullptr, &cur) != 0 || cur.sa_handler != SIG_IGN) sigaddset(&set, SIGINT);
            sigaddset(&set, SIGTERM);
            sigaddset(&set, SIGHUP);
            pthread_sigmask(SIG_BLOCK, &set, &old);  // connection threads inherit it
            sfd = ::signalfd(-1, &set, SFD_CLOEXEC);
        }
        while (!stopping_.load()) {
            pollfd p[4] = {{listener_.fileno(), POLLIN, 0}, {wake_[0], POLLIN, 0}, {owner_fd_, POLLIN, 0}, {sfd, POLLIN, 0}};
            int r = ::poll(p, 4, -1);
            if (r < 0) {
                if (errno == EINTR) continue;
                break;
            }
            if (p[1].revents || p[2].revents || p[3].revents) break;
            if (p[0].revents & POLLIN) {
                try {
                    auto c = std::make_shared<connection::Connection>(listener_.accept_raw(opts_.max_frame));
                    if (listener_.address().is_tcp())
                        connection::detail::set_keepalive(c->fileno(), opts_.keepalive_idle,
                                                          opts_.keepalive_interval, opts_.keepalive_count);
                    start_thread(std::move(c));
                } catch (const std::exception& e) {
                    log(std::string("accept failed: ") + e.what());
                }
            }
        }
        shutdown();
        listener_.close();
        wait_for_threads(std::chrono::seconds(1));
        if (sfd >= 0) {
            ::close(sfd);
            pthread_sigmask(SIG_SETMASK, &old, nullptr);
        }
    }

    /// Asks serve_forever() to return; wakes every connection thread.
    void shutdown() {
        if (stopping_.exchange(true)) return;
        char b = 1;
        [[maybe_unused]] auto w = ::write(wake_[1], &b, 1);
        std::lock_guard<std::mutex> g(mu_);
        for (int fd : conn_fds_) ::shutdown(fd, SHUT_RDWR);
    }

    /// Number of live shared objects (Python's private _number_of_objects).
    std::size_t number_of_objects() const {
        std::lock_guard<std::mutex> g(mu_);
        return objects_.size();
    }

    /// A line per object and per client session (Python's _debug_info).
    std::string debug_info() const {
        std::lock_guard<std::mutex> g(mu_);
        std::ostringstream os;
        for (auto& kv : objects_)
            os << "  " << std::hex << kv.first << std::dec << ": typeid='" << kv.second->type->typeid_
               << "' refcount=" << kv.second->refcount << "\n";
        for (auto& kv : sessions_)
            os << "  session " << std::hex << kv.first << std::dec << ": pid=" << kv.second.pid
               << " connections=" << kv.second.connections << " objects=" << kv.second.refs.size() << "\n";
        return os.str();
    }

    /// Connection threads currently running.
    std::size_t thread_count() const {
        std::lock_guard<std::mutex> g(mu_);
        return live_threads_;
    }

private:
    struct referent {
        std::shared_ptr<void> obj;
        std::shared_ptr<const detail::type_entry> type;
        std::mutex mu;
        std::int64_t refcount = 0;
        const void* raw = nullptr;
        std::pair<const void*, std::type_index> key() const { return {raw, type->referent}; }
    };
    struct session {
        int connections = 0;
        std::uint64_t pid = 0;
        std::unordered_map<std::uint64_t, std::int64_t> refs;
    };

    // Per-call context: registers objects returned by methods.
    struct context : detail::call_context {
        Server* server;
        int fd = -1;
        bool caller_gone() const override {
            if (server->stopping_.load()) return true;
            pollfd p{fd, POLLRDHUP, 0};
            return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
        }
        Token share(std::shared_ptr<void> obj, const void* raw, std::type_index referent) override {
            std::string tid = server->registry_->typeid_for_referent(referent);
            if (tid.empty())
                throw RemoteError("TypeError", "a method returned a shared object of unregistered type " +
                                                   multiprocessing::detail::demangle(referent.name()));
            auto type = server->registry_->find(tid);
            return Token{tid, server->address(), server->add_object(std::move(obj), raw, type, session)};
        }
    };

    void log(const std::string& s) {
        if (opts_.log_errors) std::fprintf(stderr, "[multiprocessing manager %d] %s\n", int(::getpid()), s.c_str());
    }

    void start_thread(std::shared_ptr<connection::Connection> c) {
        {
            std::lock_guard<std::mutex> g(mu_);
            ++live_threads_;
            conn_fds_.insert(c->fileno());
        }
        try {
            std::thread([this, c] {
                serve_client(*c);
                std::lock_guard<std::mutex> g(mu_);
                conn_fds_.erase(c->fileno());
                c->close();
                if (--live_threads_ == 0) threads_done_.notify_all();
            }).detach();
        } catch (...) {
            std::lock_guard<std::mutex> g(mu_);
            conn_fds_.erase(c->fileno());
            if (--live_threads_ == 0) threads_done_.notify_all();
            throw;
        }
    }

    void wait_for_threads(std::chrono::milliseconds limit) {
        std::unique_lock<std::mutex> g(mu_);
        threads_done_.wait_for(g, limit, [&] { return live_threads_ == 0; });
    }

    std::uint64_t add_object(std::shared_ptr<void> obj, const void* raw,
                             std::shared_ptr<const detail::type_entry> type, std::uint64_t sess) {
        std::lock_guard<std::mutex> g(mu_);
        std::uint64_t id;
        auto key = std::make_pair(raw, std::type_index(type->referent));
        auto pit = by_pointer_.find(key);
        if (pit != by_pointer_.end()) {
            id = pit->second;  // the same object handed out again keeps its id, as in Python
        } else {
            id = next_id_++;
            auto r = std::make_shared<referent>();
            r->obj = std::move(obj);
            r->type = std::move(type);
            r->raw = raw;
            objects_.emplace(id, r);
            by_pointer_.emplace(key, id);
        }
        objects_[id]->refcount += 1;
        sessions_[sess].refs[id] += 1;
        return id;
    }

    std::shared_ptr<referent> lookup(std::uint64_t id) {
        std::lock_guard<std::mutex> g(mu_);
        auto it = objects_.find(id);
        return it == objects_.end() ? nullptr : it->second;
    }

    // Drops n references; the object dies outside the lock, and only after
    // any call running on it has finished (that call holds a shared_ptr).
    void decref_locked(std::uint64_t id, std::int64_t n, std::vector<std::shared_ptr<referent>>& dead) {
        auto it = objects_.find(id);
        if (it == objects_.end()) return;
        it->second->refcount -= n;
        if (it->second->refcount <= 0) {
            by_pointer_.erase(it->second->key());
            dead.push_back(std::move(it->second));
            objects_.erase(it);
        }
    }

    void session_closed(std::uint64_t sess) {
        std::vector<std::shared_ptr<referent>> dead;
        {
            std::lock_guard<std::mutex> g(mu_);
            auto it = sessions_.find(sess);
            if (it == sessions_.end()) return;
            if (--it->second.connections > 0) return;
            for (auto& kv : it->second.refs) decref_locked(kv.first, kv.second, dead);
            sessions_.erase(it);
        }
    }

    void serve_client(connection::Connection& c) {
        std::uint64_t sess = 0;
        std::uint64_t conn_id;
        {
            std::lock_guard<std::mutex> g(mu_);
            conn_id = next_connection_++;
        }
        try {
            c.set_timeout(10.0);  // a silent peer must not hold a thread forever
            connection::deliver_challenge(c, authkey_);
            connection::answer_challenge(c, authkey_);
            c.set_timeout(std::nullopt);
        } catch (const std::exception& e) {
            log(std::string("refused a connection: ") + e.what());
            return;
        }
        std::vector<char> out, batch;
        try {
            for (;;) {
                auto f = c.recv_frame(opts_.max_frame);
                if (f.second < sizeof(detail::RequestHeader)) throw ProcessError("short request");
                detail::RequestHeader h;
                std::memcpy(&h, f.first, sizeof h);
                if (h.name_len > f.second - sizeof h) throw ProcessError("request name overruns the frame");
                std::string_view name(f.first + sizeof h, h.name_len);
                const char* body = f.first + sizeof h + h.name_len;
                std::size_t n = f.second - sizeof h - h.name_len;
                if (sess == 0) {
                    if (h.kind != static_cast<std::uint8_t>(detail::kind::hello))
                        throw ProcessError("expected hello");
                    if ((h.sig >> 32) != detail::protocol_version) {
                        detail::put_error(out, h.request_id, false, "ProtocolError",
                                          "client speaks protocol " + std::to_string(h.sig >> 32) +
                                              ", server speaks " + std::to_string(detail::protocol_version));
                        c.send_frame(out);
                        return;
                    }
                    sess = h.id ? h.id : 1;
                    {
                        std::lock_guard<std::mutex> g(mu_);
                        auto& s = sessions_[sess];
                        s.connections += 1;
                        s.pid = h.sig & 0xffffffffu;
                    }
                    detail::begin_reply(out, detail::status::ok, h.request_id);
                    c.send_frame(out);
                    continue;
                }
                bool stop = false;
                try {
                    stop = dispatch(h, name, body, n, sess, conn_id, c.fileno(), out);
                } catch (const std::exception& e) {
                    detail::put_exception(out, h.request_id, e);
                } catch (...) {
                    detail::put_error(out, h.request_id, false, "unknown", "non-standard exception");
                }
                // Replies to pipelined requests go out together, in one write.
                auto sealed = connection::Connection::seal_frame(out);
                if (!stop && c.frame_ready() && batch.size() < (256u << 10)) {
                    batch.insert(batch.end(), sealed.first, sealed.first + sealed.second);
                    continue;
                }
                if (!batch.empty()) {
                    batch.insert(batch.end(), sealed.first, sealed.first + sealed.second);
                    c.send_raw(batch.data(), batch.size());
                    batch.clear();
                } else {
                    c.send_raw(sealed.first, sealed.second);
                }
                if (stop) {
                    shutdown();
                    break;
                }
            }
        } catch (const connection::detail::truncated_frame& e) {
            if (!stopping_.load()) log(std::string("dropped a connection: ") + e.what());
        } catch (const EOFError&) {
            // the client went away
        } catch (const std::exception& e) {
            if (!stopping_.load()) log(std::string("dropped a connection: ") + e.what());
        }
        if (sess) {
            notify_disconnect(sess, conn_id);
            session_closed(sess);
        }
    }

    // Lets objects that track callers (an RLock's owner) forget this one.
    void notify_disconnect(std::uint64_t sess, std::uint64_t conn_id) {
        std::vector<std::shared_ptr<referent>> hooked;
        {
            std::lock_guard<std::mutex> g(mu_);
            for (auto& kv : objects_)
                if (kv.second->type->on_disconnect) hooked.push_back(kv.second);
        }
        for (auto& r : hooked) {
            try {
                r->type->on_disconnect(r->obj.get(), sess, conn_id, r->type->self_locking ? nullptr : &r->mu);
            } catch (const std::exception& e) {
                log(std::string("disconnect hook failed: ") + e.what());
            }
        }
    }

    // Fills `out` with the reply; returns true for a shutdown request.
    bool dispatch(const detail::RequestHeader& h, std::string_view name, const char* body, std::size_t n,
                  std::uint64_t sess, std::uint64_t conn_id, int fd, std::vector<char>& out) {
        using detail::kind;
        switch (static_cast<kind>(h.kind)) {
        case kind::call: {
            auto r = lookup(h.id);
            if (!r) throw RemoteError("KeyError", "no shared object with id " + std::to_string(h.id));
            const detail::type_entry& t = *r->type;
            detail::invoke_fn fn = nullptr;
            std::uint64_t expect = 0;
            if (auto* m = t.find(name)) {
                fn = m->invoke;
                expect = m->sig;
            } else if (name == "#getvalue" && t.getvalue) {
                fn = t.getvalue;
                expect = t.getvalue_sig;
            } else if (name == "#str" && t.str) {
                fn = t.str;
                expect = detail::str_signature();
            } else {
                throw RemoteError("AttributeError", "method '" + std::string(name) + "' of '" + t.typeid_ +
                                                        "' object is not in exposed=" + t.exposed_list());
            }
            if (expect != h.sig)
                throw RemoteError("TypeError", "method '" + std::string(name) + "' of '" + t.typeid_ +
                                                   "' was called with a signature the server does not have "
                                                   "(client and server disagree on the registration)");
            context ctx;
            ctx.server = this;
            ctx.session = sess;
            ctx.connection = conn_id;
            ctx.fd = fd;
            struct guard {
                guard(detail::call_context* c) { detail::current_call() = c; }
                ~guard() { detail::current_call() = nullptr; }
            } g(&ctx);
            detail::begin_reply(out, detail::status::ok, h.request_id);
            fn(r->obj.get(), body, n, out, t.self_locking ? nullptr : &r->mu);
            return false;
        }
        case kind::create: {
            std::string tid(name);
            auto t = registry_->find(tid);
            if (!t) throw RemoteError("KeyError", "unknown typeid '" + tid + "'");
            if (t->fingerprint != h.id)
                throw RemoteError("TypeError", "typeid '" + tid +
                                                   "' is registered differently by the client and the server "
                                                   "(exposed methods or their signatures differ)");
            std::shared_ptr<void> obj;
            if (t->factory) {
                if (h.sig != t->factory_sig)
                    throw RemoteError("TypeError", "typeid '" + tid + "' is made by a callable taking (" +
                                                       t->factory_text + "); the arguments given do not match");
                obj = t->factory(body, n);
            } else {
                auto* c = detail::constructor_table::instance().find(h.sig);
                if (!c || c->referent != t->referent) {
                    std::string known;
                    for (auto& s : detail::constructor_table::instance().signatures_for(t->referent))
                        known += "\n  " + s;
                    throw RemoteError("TypeError", "typeid '" + tid +
                                                       "' has no constructor for the arguments given; known:" + known);
                }
                obj = c->make(body, n);
            }
            const void* raw = obj.get();
            std::uint64_t id = add_object(std::move(obj), raw, t, sess);
            detail::begin_reply(out, detail::status::ok, h.request_id);
            detail::put_pod(out, id);
            return false;
        }
        case kind::incref: {
            bool tolerate = h.sig != 0;
            detail::reader rd{body, n};
            std::vector<std::uint8_t> found;
            {
                std::lock_guard<std::mutex> g(mu_);
                while (rd.n >= 8) {
                    auto id = rd.pod<std::uint64_t>();
                    auto it = objects_.find(id);
                    if (it == objects_.end()) {
                        if (!tolerate) throw RemoteError("KeyError", "no shared object with id " + std::to_string(id));
                        found.push_back(0);
                        continue;
                    }
                    it->second->refcount += 1;
                    sessions_[sess].refs[id] += 1;
                    found.push_back(1);
                }
            }
            detail::begin_reply(out, detail::status::ok, h.request_id);
            for (auto f : found) detail::put_pod(out, f);
            return false;
        }
        case kind::decref: {
            detail::reader rd{body, n};
            std::vector<std::shared_ptr<referent>> dead;
            {
                std::lock_guard<std::mutex> g(mu_);
                auto& s = sessions_[sess];
                while (rd.n >= 16) {
                    auto id = rd.pod<std::uint64_t>();
                    auto cnt = rd.pod<std::int64_t>();
                    auto it = s.refs.find(id);
                    if (it == s.refs.end()) continue;  // never more than the session holds
                    if (cnt > it->second) cnt = it->second;
                    it->second -= cnt;
                    if (it->second == 0) s.refs.erase(it);
                    decref_locked(id, cnt, dead);
                }
            }
            dead.clear();  // destroy outside the lock
            detail::begin_reply(out, detail::status::ok, h.request_id);
            return false;
        }
        case kind::number_of_objects: {
            detail::begin_reply(out, detail::status::ok, h.request_id);
            std::string s = std::to_string(number_of_objects());
            detail::put_raw(out, s.data(), s.size());
            return false;
        }
        case kind::debug_info: {
            detail::begin_reply(out, detail::status::ok, h.request_id);
            std::string s = debug_info();
            detail::put_raw(out, s.data(), s.size());
            return false;
        }
        case kind::dummy:
            detail::begin_reply(out, detail::status::ok, h.request_id);
            return false;
        case kind::shutdown:
            detail::begin_reply(out, detail::status::ok, h.request_id);
            return true;
        default:
            throw RemoteError("ProtocolError", "unknown request kind " + std::to_string(h.kind));
        }
    }

    std::shared_ptr<const detail::registry> registry_;
    std::string authkey_;
    ServerOptions opts_;
    std::string owned_dir_;
    connection::Listener listener_;
    int wake_[2] = {-1, -1};
    int owner_fd_ = -1;
    std::atomic<bool> stopping_{false};

    mutable std::mutex mu_;
    std::condition_variable threads_done_;
    std::size_t live_threads_ = 0;
    std::set<int> conn_fds_;
    std::unordered_map<std::uint64_t, std::shared_ptr<referent>> objects_;
    std::map<std::pair<const void*, std::type_index>, std::uint64_t> by_pointer_;
    std::unordered_map<std::uint64_t, session> sessions_;
    std::vector<std::shared_ptr<referent>> leaked_;
    std::uint64_t next_id_ = 1;
    std::uint64_t next_connection_ = 1;
};

}  // namespace multiprocessing::managers

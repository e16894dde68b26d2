// Out-of-line members of the classes in <multiprocessing/managers/server.hpp>: inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION
// (so other files neither parse nor instantiate them).
#pragma once

#include "multiprocessing/managers/server.hpp"

namespace multiprocessing::managers {

MULTIPROCESSING_DECL Server::Server(std::shared_ptr<const detail::registry> reg, const connection::Address& address,
           std::string authkey, ServerOptions opts , std::string owned_dir) : registry_(std::move(reg)), authkey_(std::move(authkey)), opts_(opts), owned_dir_(std::move(owned_dir)) {
    listener_ = connection::Listener(address, authkey_);
    if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) throw connection::detail::sys_error("pipe");
    // Server-side proxies (objects holding proxies) talk back to us.
    auto& self = detail::client_state::instance().get(listener_.address(), &authkey_, opts_.max_frame);
    self.set_local(this);
    self_ = &self;
}

MULTIPROCESSING_DECL Server::~Server() {
    self_->clear_local(this);
    shutdown();
    {
        // The collector thread, if any, ends at once on stopping_.
        std::unique_lock<std::mutex> g(mu_);
        threads_done_.wait_for(g, std::chrono::seconds(5), [&] { return !gc_thread_; });
    }
    registry_->run_exit_hooks();  // before the wait: a slow exit may be cut short by SIGKILL
    wait_for_threads(std::chrono::seconds(5));
    decltype(objects_) doomed;
    decltype(reap_) late;
    decltype(deferred_) work;
    {
        std::lock_guard<std::mutex> g(mu_);
        for (auto& kv : objects_) kv.second->live.store(false, std::memory_order_release);
        if (live_threads_ == 0) doomed.swap(objects_);  // destroyed below, outside the lock
        else for (auto& kv : objects_) leaked_.push_back(kv.second);  // threads still use them
        if (!gc_thread_) late.swap(reap_);
        // Decrefs serving threads left for housekeeping (to other
        // managers' objects too): sent here, where waiting is safe.
        if (!gc_thread_ && live_threads_ == 0) work.swap(deferred_);
    }
    doomed.clear();
    late.clear();
    for (auto& w : work) w();
    listener_.close();
    if (!owned_dir_.empty()) ::rmdir(owned_dir_.c_str());  // the private pymp-* directory
    ::close(wake_[0]);
    ::close(wake_[1]);
}

MULTIPROCESSING_DECL void Server::serve_forever(bool handle_signals) {
    // Handlers, not a blocked mask: a signal goes to any thread of the
    // process, including threads started before this call.  An ignored
    // SIGINT (a forked manager server's: Ctrl-C belongs to the owner)
    // stays ignored.  The previous handlers come back on return.
    std::optional<detail::stop_signals> signals;
    if (handle_signals) signals.emplace(wake_[1]);
    auto paused_until = clock::time_point::min();
    while (!stopping_.load()) {
        bool paused = clock::now() < paused_until;
        pollfd p[3] = {{paused ? -1 : listener_.fileno(), POLLIN, 0}, {wake_[0], POLLIN, 0}, {owner_fd_, POLLIN, 0}};
        int ms = paused ? static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                               paused_until - clock::now()).count()) + 1
                        : -1;
        int r = ::poll(p, 3, ms);
        if (r < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (p[1].revents || p[2].revents) break;
        if (p[0].revents & POLLIN) {
            int fd = ::accept4(listener_.fileno(), nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) {
                int e = errno;
                if (e == EINTR || e == ECONNABORTED || e == EAGAIN) continue;
                // Out of descriptors (or memory): shed the oldest silent
                // peer and stop accepting for a moment, rather than spin
                // on a listener that stays readable.
                shed_oldest_pending();
                paused_until = clock::now() + std::chrono::milliseconds(50);
                log_limited("accept", std::string("accept failed: ") + std::strerror(e));
                continue;
            }
            try {
                auto c = std::make_shared<connection::Connection>(fd, opts_.max_frame);
                if (listener_.address().is_tcp()) {
                    connection::detail::tune_tcp(fd);
                    connection::detail::set_keepalive(fd, opts_.keepalive_idle, opts_.keepalive_interval,
                                                      opts_.keepalive_count);
                }
                start_thread(std::move(c));
            } catch (const std::exception& e) {
                log_limited("thread", std::string("cannot serve a connection: ") + e.what());
            }
        }
    }
    shutdown();
    listener_.close();
    wait_for_threads(std::chrono::seconds(1));
}

MULTIPROCESSING_DECL void Server::shutdown() {
    if (stopping_.exchange(true)) return;
    char b = 1;
    [[maybe_unused]] auto w = ::write(wake_[1], &b, 1);
    std::lock_guard<std::mutex> g(mu_);
    for (int fd : conn_fds_) ::shutdown(fd, SHUT_RDWR);
    gc_cv_.notify_all();
}

MULTIPROCESSING_DECL std::size_t Server::collect() {
    if (stopping_.load()) return 0;
    std::lock_guard<std::mutex> one(gc_run_mu_);
    std::uint64_t self = detail::client_state::instance().session_id();
    const detail::endpoint* ep = self_;
    unsigned epoch = ep->epoch();
    struct node {
        std::uint64_t id;
        std::shared_ptr<referent> r;
        bool internal;                     // every reference is this process's
        bool busy = false;                 // locked by a call: treated as live
        std::vector<std::size_t> out;      // the objects its proxies name
        long held = 0;                     // proxies to it seen inside objects
        long uses = -1;                    // proxies to it in this process
    };
    std::vector<node> nodes;
    std::unordered_map<std::uint64_t, std::size_t> index;
    {
        std::lock_guard<std::mutex> g(mu_);
        auto sit = sessions_.find(self);
        if (sit == sessions_.end()) return 0;  // no object holds a proxy
        nodes.reserve(objects_.size());
        for (auto& kv : objects_) {
            auto it = sit->second.refs.find(kv.first);
            bool internal = it != sit->second.refs.end() && it->second == kv.second->refcount;
            index.emplace(kv.first, nodes.size());
            nodes.push_back({kv.first, kv.second, internal, false, {}, 0, -1});
        }
    }
    // The edges; each object read under its own lock, never waited for.
    auto scan = [&](std::size_t i, const std::function<void(std::size_t, long)>& edge) {
        auto& t = *nodes[i].r->type;
        if (!t.traverse) return;
        t.traverse(nodes[i].r->obj.get(), [&](const std::shared_ptr<detail::ref_entry>& e) {
            if (e->ep != ep || e->epoch != epoch) return;  // another server's object
            auto it = index.find(e->token.id);
            if (it != index.end()) edge(it->second, e.use_count());
        });
    };
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        auto& n = nodes[i];
        if (!n.r->type->traverse) continue;
        std::unique_lock<std::mutex> lk(n.r->mu, std::defer_lock);
        if (!n.r->type->self_locking && !lk.try_lock()) {
            n.busy = true;
            continue;
        }
        scan(i, [&](std::size_t j, long uses) {
            n.out.push_back(j);
            nodes[j].held += 1;
            nodes[j].uses = uses;
        });
    }
    auto candidate = [&](const node& n) {
        return n.internal && !n.busy && n.held > 0 && n.held == n.uses;
    };
    std::vector<char> live(nodes.size(), 0);
    std::vector<std::size_t> stack;
    for (std::size_t i = 0; i < nodes.size(); ++i)
        if (!candidate(nodes[i])) {
            live[i] = 1;
            stack.push_back(i);
        }
    while (!stack.empty()) {
        std::size_t i = stack.back();
        stack.pop_back();
        for (std::size_t j : nodes[i].out)
            if (!live[j]) {
                live[j] = 1;
                stack.push_back(j);
            }
    }
    std::vector<std::size_t> garbage;
    for (std::size_t i = 0; i < nodes.size(); ++i)
        if (!live[i]) garbage.push_back(i);
    if (garbage.empty()) return 0;

    // Check again with the garbage frozen: locked (an object a call is
    // using is not garbage), and this server's tables locked (lock order:
    // an object's lock, then mu_, as a call returning a new object does).
    std::vector<std::unique_lock<std::mutex>> locks;
    for (std::size_t i : garbage) {
        auto& r = *nodes[i].r;
        if (r.type->self_locking) continue;
        locks.emplace_back(r.mu, std::try_to_lock);
        if (!locks.back().owns_lock()) return 0;  // busy: the next run will see
    }
    std::vector<std::shared_ptr<referent>> dead;
    {
        std::lock_guard<std::mutex> g(mu_);
        if (stopping_.load()) return 0;
        auto sit = sessions_.find(self);
        if (sit == sessions_.end()) return 0;
        std::vector<char> in(nodes.size(), 0), ok(nodes.size(), 0);
        for (std::size_t i : garbage) {
            in[i] = 1;
            nodes[i].out.clear();
            nodes[i].held = 0;
            nodes[i].uses = -1;
            auto oit = objects_.find(nodes[i].id);
            auto sref = sit->second.refs.find(nodes[i].id);
            ok[i] = oit != objects_.end() && oit->second == nodes[i].r && sref != sit->second.refs.end() &&
                    sref->second == oit->second->refcount;
        }
        for (std::size_t i : garbage)
            scan(i, [&](std::size_t j, long uses) {
                nodes[i].out.push_back(j);
                if (!in[j]) return;
                nodes[j].held += 1;
                nodes[j].uses = uses;
            });
        // Whatever fails the check is live, and so is all it holds.
        for (bool changed = true; changed;) {
            changed = false;
            for (std::size_t i : garbage) {
                if (!in[i] || (ok[i] && nodes[i].held > 0 && nodes[i].held == nodes[i].uses)) continue;
                in[i] = 0;
                changed = true;
                for (std::size_t j : nodes[i].out)
                    if (in[j]) nodes[j].held -= 1;
            }
        }
        for (std::size_t i : garbage) {
            if (!in[i]) continue;
            by_pointer_.erase(nodes[i].r->key());
            retire_locked(nodes[i].r);
            nodes[i].r->live.store(false, std::memory_order_release);
            objects_.erase(nodes[i].id);
            dead.push_back(nodes[i].r);
        }
    }
    locks.clear();
    std::size_t freed = dead.size();
    nodes.clear();
    // Destroyed here, outside every lock: their proxies' decrefs come
    // back to this server through this process's own connection.
    dead.clear();
    return freed;
}

MULTIPROCESSING_DECL std::size_t Server::number_of_objects() const {
    std::lock_guard<std::mutex> g(mu_);
    return objects_.size();
}

MULTIPROCESSING_DECL std::string Server::debug_info() const {
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

MULTIPROCESSING_DECL std::uint64_t Server::shed_count() const {
    std::lock_guard<std::mutex> g(mu_);
    return shed_;
}

MULTIPROCESSING_DECL std::size_t Server::thread_count() const {
    std::lock_guard<std::mutex> g(mu_);
    return live_threads_;
}

MULTIPROCESSING_DECL void Server::context::keep(std::shared_ptr<detail::ref_entry> e) {
    if (kept) kept->push_back(std::move(e));
}

MULTIPROCESSING_DECL bool Server::context::caller_gone() const {
    if (server->stopping_.load()) return true;
    if (outer) return outer->caller_gone();
    pollfd p{fd, POLLRDHUP, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

MULTIPROCESSING_DECL std::shared_ptr<void> Server::context::local_object(const Token& t, std::type_index referent) const {
    // A TCP server may be reached under another host name than the
    // one it listens on: the port identifies it.
    const auto& here = server->address();
    bool same = here.is_tcp() ? t.address.is_tcp() && t.address.port() == here.port() : t.address == here;
    if (!same) return nullptr;
    auto r = server->lookup(t.id);
    if (!r || r->type->referent != referent) return nullptr;
    return r->obj;
}

MULTIPROCESSING_DECL Token Server::context::share(std::shared_ptr<void> obj, const void* raw, std::type_index referent) {
    auto type = server->registry_->find_referent(referent);
    if (!type)
        throw RemoteError("TypeError", "a method returned a shared object of unregistered type " +
                                           multiprocessing::detail::demangle(referent.name()));
    return Token{type->typeid_, server->address(), server->add_object(std::move(obj), raw, type, session)};
}

MULTIPROCESSING_DECL void Server::log(const std::string& s) {
    if (opts_.log_errors) std::fprintf(stderr, "[multiprocessing manager %d] %s\n", int(::getpid()), s.c_str());
}

MULTIPROCESSING_DECL void Server::log_limited(const std::string& kind, const std::string& s) {
    if (!opts_.log_errors) return;
    std::string line = s;
    {
        std::lock_guard<std::mutex> g(log_mu_);
        auto& st = log_state_[kind];
        auto now = clock::now();
        if (now >= st.window_end) {
            st.window_end = now + std::chrono::seconds(1);
            st.printed = 0;
        }
        if (st.printed >= 10) {
            ++st.suppressed;
            return;
        }
        ++st.printed;
        if (st.suppressed) line += " (" + std::to_string(st.suppressed) + " more like it not shown)";
        st.suppressed = 0;
    }
    log(line);
}

MULTIPROCESSING_DECL void Server::shed_oldest_pending() {
    std::lock_guard<std::mutex> g(mu_);
    shed_oldest_pending_locked();
}

MULTIPROCESSING_DECL void Server::shed_oldest_pending_locked() {
    if (pending_.empty()) return;
    ::shutdown(pending_.front().second, SHUT_RDWR);
    pending_.pop_front();
    ++shed_;
}

MULTIPROCESSING_DECL void Server::start_thread(std::shared_ptr<connection::Connection> c) {
    std::uint64_t conn_id;
    {
        std::lock_guard<std::mutex> g(mu_);
        ++live_threads_;
        conn_fds_.insert(c->fileno());
        conn_id = next_connection_++;
        // Over the cap: the oldest unauthenticated peer makes room.
        while (opts_.max_pending > 0 && pending_.size() >= opts_.max_pending) shed_oldest_pending_locked();
        pending_.emplace_back(conn_id, c->fileno());
    }
    try {
        std::thread([this, c, conn_id] {
            serve_client(*c, conn_id);
            // Free this thread's OpenSSL state (the handshake's random
            // generator) now, not in a thread-exit handler that may run
            // after serve_forever() has returned and the process exits.
            OPENSSL_thread_stop();
            std::lock_guard<std::mutex> g(mu_);
            authenticated_locked(conn_id);
            conn_fds_.erase(c->fileno());
            c->close();
            if (--live_threads_ == 0) threads_done_.notify_all();
        }).detach();
    } catch (...) {
        std::lock_guard<std::mutex> g(mu_);
        authenticated_locked(conn_id);
        conn_fds_.erase(c->fileno());
        if (--live_threads_ == 0) threads_done_.notify_all();
        throw;
    }
}

MULTIPROCESSING_DECL void Server::authenticated_locked(std::uint64_t conn_id) {
    for (auto it = pending_.begin(); it != pending_.end(); ++it)
        if (it->first == conn_id) {
            pending_.erase(it);
            return;
        }
}

MULTIPROCESSING_DECL void Server::wait_for_threads(std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> g(mu_);
    threads_done_.wait_for(g, limit, [&] { return live_threads_ == 0; });
}

MULTIPROCESSING_DECL std::uint64_t Server::add_object(std::shared_ptr<void> obj, const void* raw,
                             std::shared_ptr<const detail::type_entry> type, std::uint64_t sess) {
    std::lock_guard<std::mutex> g(mu_);
    std::uint64_t id;
    auto key = std::make_pair(raw, std::type_index(type->referent));
    auto pit = by_pointer_.find(key);
    if (pit != by_pointer_.end()) {
        id = pit->second;  // the same object handed out again keeps its id, as in Python
    } else {
        id = next_id_++;
        std::shared_ptr<referent> r;
        if (auto rit = retired_.find(key); rit != retired_.end()) {
            r = rit->second.lock();  // still in a call: its lock must stay the object's one lock
            retired_.erase(rit);
        }
        if (r) {
            r->refcount = 0;
            r->id.store(id, std::memory_order_relaxed);  // its old id stays dead, also in lookup's cache
            r->live.store(true, std::memory_order_release);
        } else {
            r = std::make_shared<referent>();
            r->obj = std::move(obj);
            r->type = std::move(type);
            r->raw = raw;
            r->id.store(id, std::memory_order_relaxed);
        }
        objects_.emplace(id, r);
        by_pointer_.emplace(key, id);
    }
    objects_[id]->refcount += 1;
    sessions_[sess].refs[id] += 1;
    return id;
}

MULTIPROCESSING_DECL auto Server::lookup(std::uint64_t id) -> std::shared_ptr<referent> {
    // The object this thread looked up last, checked without the lock (the
    // server's one lock, which every connection's thread takes): pipelined
    // and looping callers call one object many times.
    struct last_lookup {
        std::uint64_t server = 0, id = 0;
        std::weak_ptr<referent> r;
    };
    static thread_local last_lookup last;
    if (last.server == instance_ && last.id == id)
        if (auto r = last.r.lock(); r && r->live.load(std::memory_order_acquire) &&
            r->id.load(std::memory_order_relaxed) == id)
            return r;
    std::shared_ptr<referent> r;
    {
        std::lock_guard<std::mutex> g(mu_);
        auto it = objects_.find(id);
        if (it == objects_.end()) return nullptr;
        r = it->second;
    }
    last = {instance_, id, r};
    return r;
}

MULTIPROCESSING_DECL void Server::decref_locked(std::uint64_t id, std::int64_t n, std::vector<std::shared_ptr<referent>>& dead) {
    auto it = objects_.find(id);
    if (it == objects_.end()) return;
    it->second->refcount -= n;
    if (it->second->refcount <= 0) {
        by_pointer_.erase(it->second->key());
        retire_locked(it->second);
        it->second->live.store(false, std::memory_order_release);
        dead.push_back(std::move(it->second));
        objects_.erase(it);
        return;
    }
    // Referenced only from inside the server now: maybe a cycle.
    auto s = sessions_.find(detail::client_state::instance().session_id());
    if (s == sessions_.end()) return;
    auto held = s->second.refs.find(id);
    if (held != s->second.refs.end() && held->second == it->second->refcount) want_collect_locked();
}

MULTIPROCESSING_DECL void Server::retire_locked(const std::shared_ptr<referent>& r) {
    // Kept whether or not a call holds it now: one may take it from
    // lookup's per-thread cache until `live` is seen false.
    if (retired_.size() >= retired_sweep_at_) {
        for (auto it = retired_.begin(); it != retired_.end();) it = it->second.expired() ? retired_.erase(it) : std::next(it);
        retired_sweep_at_ = std::max<std::size_t>(64, 2 * retired_.size());
    }
    retired_[r->key()] = r;
}

MULTIPROCESSING_DECL void Server::reap(std::vector<std::shared_ptr<referent>>& dead) {
    std::vector<std::shared_ptr<void>> later;
    for (auto& r : dead)
        if (r->type->traverse) later.push_back(std::move(r));
    dead.clear();  // the others now, outside the lock
    if (later.empty()) return;
    std::lock_guard<std::mutex> g(mu_);
    for (auto& x : later) reap_.push_back(std::move(x));
    want_housekeeping_locked();
}

MULTIPROCESSING_DECL void Server::want_collect_locked() {
    gc_wanted_ = true;
    want_housekeeping_locked();
}

MULTIPROCESSING_DECL void Server::defer_work(void* server, std::function<void()> work) {
    auto* self = static_cast<Server*>(server);
    std::lock_guard<std::mutex> g(self->mu_);
    self->deferred_.push_back(std::move(work));
    self->want_housekeeping_locked();
}

MULTIPROCESSING_DECL void Server::want_housekeeping_locked() {
    if (gc_thread_ || stopping_.load()) return;
    gc_thread_ = true;
    try {
        std::thread([this] {
            std::unique_lock<std::mutex> g(mu_);
            for (;;) {
                while ((gc_wanted_ || !reap_.empty() || !deferred_.empty()) && !stopping_.load()) {
                    if (!deferred_.empty()) {
                        auto work = std::move(deferred_);
                        deferred_.clear();
                        g.unlock();
                        for (auto& w : work) w();  // noexcept (endpoint::send_decref)
                        work.clear();  // what they captured goes outside the lock too
                        g.lock();
                        continue;
                    }
                    if (!reap_.empty()) {
                        auto doomed = std::move(reap_);
                        reap_.clear();
                        g.unlock();
                        doomed.clear();
                        g.lock();
                        // Fewer proxies in this process: a cycle they
                        // kept alive may be garbage now, with no decref.
                        gc_wanted_ = true;
                        continue;
                    }
                    // A short pause gathers a burst of decrefs into one run.
                    gc_cv_.wait_for(g, std::chrono::milliseconds(5), [&] { return stopping_.load(); });
                    if (!reap_.empty()) continue;  // reap first: collect sees the result
                    gc_wanted_ = false;
                    g.unlock();
                    try {
                        collect();
                    } catch (const std::exception& e) {
                        log_limited("gc", std::string("cycle collection failed: ") + e.what());
                    } catch (...) {  // a _gc_traverse that threw something else
                        auto d = detail::describe_foreign_exception();
                        log_limited("gc", "cycle collection failed: " + d.first + ": " + d.second);
                    }
                    g.lock();
                }
                // As a connection thread does: OpenSSL state freed before
                // the thread counts as finished.
                g.unlock();
                OPENSSL_thread_stop();
                g.lock();
                if ((!gc_wanted_ && reap_.empty() && deferred_.empty()) || stopping_.load()) break;
            }
            gc_thread_ = false;
            threads_done_.notify_all();
        }).detach();
    } catch (...) {
        gc_thread_ = false;  // no thread now; the next decref tries again
    }
}

MULTIPROCESSING_DECL bool Server::give_refs(std::vector<char>& out, std::vector<std::shared_ptr<detail::ref_entry>>& kept,
                   std::uint64_t sess, std::uint64_t conn_id, std::vector<handover>& handed) {
    auto* rh = out.data() + connection::Connection::header_room;
    if (static_cast<std::uint8_t>(rh[offsetof(detail::ReplyHeader, status)]) !=
        static_cast<std::uint8_t>(detail::status::ok))
        return false;  // an error reply names no proxy
    std::vector<std::uint64_t> given;
    bool pinned = false;
    {
        std::lock_guard<std::mutex> g(mu_);
        for (auto& e : kept) {
            if (e->ep == self_ && e->epoch == self_->epoch()) {
                auto it = objects_.find(e->token.id);
                if (it == objects_.end()) continue;  // cannot be: e holds a reference
                it->second->refcount += 1;
                sessions_[sess].refs[e->token.id] += 1;
                given.push_back(e->token.id);
            } else {
                kept_[conn_id].push_back({sess, std::move(e)});
                pinned = true;
            }
        }
    }
    if (given.empty()) return pinned;
    for (auto id : given) detail::put_pod(out, id);
    detail::put_pod(out, static_cast<std::uint32_t>(given.size()));
    rh = out.data() + connection::Connection::header_room;
    rh[offsetof(detail::ReplyHeader, flags)] = static_cast<char>(
        static_cast<std::uint8_t>(rh[offsetof(detail::ReplyHeader, flags)]) | detail::reply_gives_refs);
    std::uint64_t rid;
    std::memcpy(&rid, rh + offsetof(detail::ReplyHeader, request_id), sizeof rid);
    handed.push_back({rid, nullptr, [this, sess, given = std::move(given)] {
                          std::vector<std::shared_ptr<referent>> dead;
                          {
                              std::lock_guard<std::mutex> g(mu_);
                              for (auto id : given) drop_session_ref_locked(sess, id, 1, dead);
                          }
                          reap(dead);
                      }});
    return pinned;
}

MULTIPROCESSING_DECL void Server::drop_session_ref_locked(std::uint64_t sess, std::uint64_t id, std::int64_t n,
                                 std::vector<std::shared_ptr<referent>>& dead) {
    auto s = sessions_.find(sess);
    if (s == sessions_.end()) return;
    auto it = s->second.refs.find(id);
    if (it == s->second.refs.end()) return;  // never more than the session holds
    if (n > it->second) n = it->second;
    it->second -= n;
    if (it->second == 0) s->second.refs.erase(it);
    decref_locked(id, n, dead);
}

MULTIPROCESSING_DECL void Server::session_closed(std::uint64_t sess) {
    std::vector<std::shared_ptr<referent>> dead;  // freed after the lock, on this ending thread
    std::lock_guard<std::mutex> g(mu_);
    auto it = sessions_.find(sess);
    if (it == sessions_.end()) return;
    if (--it->second.connections > 0) return;
    release_session_locked(it, dead);
}

MULTIPROCESSING_DECL void Server::unkeep(std::uint64_t conn_id, bool closing) {
    std::vector<kept_ref> doomed;
    {
        std::lock_guard<std::mutex> g(mu_);
        auto it = kept_.find(conn_id);
        if (it == kept_.end()) return;
        doomed.swap(it->second);
        kept_.erase(it);
        if (closing) want_collect_locked();
    }
}

MULTIPROCESSING_DECL void Server::take_back_all(std::vector<handover>& hs) {
    for (auto& h : hs) {
        try {
            h.take_back();
        } catch (...) {
            // a take-back that fails leaves the object as the call left it
        }
    }
    hs.clear();
}

MULTIPROCESSING_DECL void Server::serve_client(connection::Connection& c, std::uint64_t conn_id) {
    // Proxies released on this thread never wait for the client lock
    // (endpoint::release): this server's housekeeping thread sends them.
    struct serving_scope {
        explicit serving_scope(Server* s) { detail::this_thread_serves() = {s, &Server::defer_work}; }
        ~serving_scope() { detail::this_thread_serves() = {}; }
    } serving(this);
    std::uint64_t sess = 0;
    try {
        // One deadline for the whole handshake: a peer trickling bytes
        // cannot hold a thread past it.
        c.set_deadline(clock::now() + std::chrono::duration_cast<clock::duration>(
                                          std::chrono::duration<double>(opts_.handshake_timeout)));
        connection::deliver_challenge(c, authkey_);
        connection::answer_challenge(c, authkey_);
        c.set_deadline(std::nullopt);
    } catch (const std::exception& e) {
        if (!stopping_.load()) log_limited("refused", std::string("refused a connection: ") + e.what());
        return;
    }
    {
        std::lock_guard<std::mutex> g(mu_);
        authenticated_locked(conn_id);
    }
    std::vector<char> out, batch;
    multiprocessing::detail::frame_blocks out_blocks;  // a big result, sent from where it lies
    out_blocks.buf = &out;
    std::vector<handover> handovers;  // replies awaiting the client's ack
    std::vector<std::shared_ptr<detail::ref_entry>> kept;  // this call's, see call_context::keep
    bool kept_any = false;  // kept_ may hold some of this connection's (saves a lock per call)
    try {
        for (;;) {
            // Over shared memory a busy client never makes this thread
            // look at its socket, which shutdown() shut: look here.
            if (stopping_.load(std::memory_order_relaxed)) break;
            if (!batch.empty() && !c.frame_ready()) {
                c.send_raw(batch.data(), batch.size());
                batch.clear();
            }
            auto f = c.recv_frame(opts_.max_frame);
            multiprocessing::detail::received_blocks_scope unclaimed_blocks;  // e.g. a call refused before decoding
            if (sess == 0 && f.second > 0 && static_cast<unsigned char>(f.first[0]) == 0x80) {
                // A pickle (its PROTO opcode; no request kind is 0x80):
                // a CPython client, served in its own protocol.
                serve_python(c, conn_id, std::string(f.first, f.second));
                break;
            }
            if (f.second < sizeof(detail::RequestHeader)) throw ProcessError("short request");
            detail::RequestHeader h;
            std::memcpy(&h, f.first, sizeof h);
            if (h.name_len > f.second - sizeof h) throw ProcessError("request name overruns the frame");
            std::string_view name(f.first + sizeof h, h.name_len);
            const char* body = f.first + sizeof h + h.name_len;
            std::size_t n = f.second - sizeof h - h.name_len;
            if (sess != 0 && h.kind == static_cast<std::uint8_t>(detail::kind::ack)) {
                // No reply.  Taken: forget the take-back; refused: run it.
                std::vector<handover> done;
                for (auto it = handovers.begin(); it != handovers.end();) {
                    if (it->request_id == h.request_id) {
                        done.push_back(std::move(*it));
                        it = handovers.erase(it);
                    } else {
                        ++it;
                    }
                }
                if (h.sig == 0) take_back_all(done);
                continue;
            }
            if (sess != 0 && h.kind == static_cast<std::uint8_t>(detail::kind::shm_open)) {
                offer_shared_memory(c, h.request_id, out, batch);
                continue;
            }
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
            std::vector<handover> handed;
            if (kept_any) {
                unkeep(conn_id);  // the caller has its own references by now
                kept_any = false;
            }
            try {
                multiprocessing::detail::aliasing_scope alias(&out_blocks);
                stop = dispatch(h, name, body, n, sess, conn_id, c.fileno(), out, handed, kept);
            } catch (const std::exception& e) {
                out_blocks.clear();
                take_back_all(handed);  // the caller gets an error, not the thing
                detail::put_exception(out, h.request_id, e);
            } catch (...) {
                out_blocks.clear();
                take_back_all(handed);
                detail::put_foreign_exception(out, h.request_id);
            }
            if (!kept.empty()) {
                if (give_refs(out, kept, sess, conn_id, handed)) kept_any = true;
                kept.clear();  // outside the lock: dropping them may decref here
            }
            if (!handed.empty()) {
                out[connection::Connection::header_room + offsetof(detail::ReplyHeader, flags)] |=
                    static_cast<char>(detail::reply_wants_ack);
                for (auto& x : handed) handovers.push_back(std::move(x));
            }
            if (!out_blocks.v.empty()) {
                // Sent at once, after the batch: the result it refers to
                // is freed when the blocks are cleared.
                if (!batch.empty()) {
                    c.send_raw(batch.data(), batch.size());
                    batch.clear();
                }
                c.send_frame(out, out_blocks);
                out_blocks.clear();
            } else {
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
            }
            if (stop) {
                shutdown();
                break;
            }
        }
    } catch (const connection::detail::truncated_frame& e) {
        if (!stopping_.load()) log_limited("dropped", std::string("dropped a connection: ") + e.what());
    } catch (const ConnectionError&) {
        // the client went away (EOF, or its socket broke under a reply)
    } catch (const std::exception& e) {
        if (!stopping_.load()) log_limited("dropped", std::string("dropped a connection: ") + e.what());
    } catch (...) {
        // Nothing of another type may leave the thread (std::terminate
        // would end the server and every object in it).
        if (!stopping_.load()) {
            auto d = detail::describe_foreign_exception();
            log_limited("dropped", "dropped a connection: " + d.first + ": " + d.second);
        }
    }
    // What the client never acknowledged goes back, before the
    // disconnect hooks and the release of the session's references.
    take_back_all(handovers);
    kept.clear();
    if (kept_any) unkeep(conn_id, true);
    if (sess) {
        notify_disconnect(sess, conn_id);
        session_closed(sess);
    }
}

MULTIPROCESSING_DECL void Server::offer_shared_memory(connection::Connection& c, std::uint64_t request_id, std::vector<char>& out,
                             std::vector<char>& batch) {
    if (!batch.empty()) {  // replies to earlier frames go first, on the socket
        c.send_raw(batch.data(), batch.size());
        batch.clear();
    }
    int fd = -1;
    if (opts_.shared_memory && connection::detail::shared_memory_enabled() && !c.shared_memory() &&
        c.is_unix_socket())
        fd = connection::detail::shm_stream::create(ring_bytes);
    if (fd < 0) {
        detail::put_error(out, request_id, false, "OSError", "no shared-memory transport here");
        c.send_frame(out);
        return;
    }
    struct closer {
        int fd;
        ~closer() { if (fd >= 0) ::close(fd); }
    } own{fd};
    detail::begin_reply(out, detail::status::ok, request_id);
    c.send_frame(out, fd);
    own.fd = -1;
    c.use_shared_memory(fd, 1);
}

MULTIPROCESSING_DECL void Server::notify_disconnect(std::uint64_t sess, std::uint64_t conn_id) {
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
        } catch (...) {
            auto d = detail::describe_foreign_exception();
            log("disconnect hook failed: " + d.first + ": " + d.second);
        }
    }
}

MULTIPROCESSING_DECL bool Server::serving_this_thread() const {
    auto* c = dynamic_cast<const context*>(detail::current_call());
    return c && c->server == this && ::getpid() == pid_;  // not in a child a method forked
}

MULTIPROCESSING_DECL void Server::call_inline(const std::vector<char>& req, std::vector<char>& reply) {
    auto* outer = dynamic_cast<const context*>(detail::current_call());
    const std::size_t off = connection::Connection::header_room;
    detail::RequestHeader h;
    std::memcpy(&h, req.data() + off, sizeof h);
    std::string_view name(req.data() + off + sizeof h, h.name_len);
    const char* body = req.data() + off + sizeof h + h.name_len;
    std::size_t n = req.size() - off - sizeof h - h.name_len;
    static thread_local std::uint64_t conn_id = 0;  // this thread as a caller (an RLock's owner)
    if (conn_id == 0) {
        std::lock_guard<std::mutex> g(mu_);
        conn_id = next_connection_++;
    }
    std::vector<handover> handed;
    std::vector<std::shared_ptr<detail::ref_entry>> own_kept;
    // Proxies in the reply stay alive as long as the outer call: the
    // method decodes them after we return.
    struct stash {
        std::vector<std::shared_ptr<detail::ref_entry>>& from;
        const context* to;
        ~stash() {
            if (to)
                for (auto& e : from) to->inline_kept.push_back(std::move(e));
        }
    } keep_for_outer{own_kept, outer};
    auto& kept = own_kept;
    try {
        dispatch(h, name, body, n, detail::client_state::instance().session_id(), conn_id, -1, reply, handed,
                 kept, outer);
    } catch (const std::exception& e) {
        take_back_all(handed);
        detail::put_exception(reply, h.request_id, e);
    } catch (...) {
        take_back_all(handed);
        detail::put_foreign_exception(reply, h.request_id);
    }
}

MULTIPROCESSING_DECL void Server::run_call(const std::shared_ptr<referent>& r, detail::invoke_fn fn, const char* body, std::size_t n,
                  std::uint64_t sess, std::uint64_t conn_id, int fd, std::uint64_t request_id, std::vector<char>& out,
                  std::vector<handover>& handed, std::vector<std::shared_ptr<detail::ref_entry>>& kept,
                  const context* outer) {
    context ctx;
    ctx.server = this;
    ctx.session = sess;
    ctx.connection = conn_id;
    ctx.fd = fd;
    ctx.kept = &kept;
    ctx.outer = outer;
    struct guard {
        context& c;
        std::vector<handover>& handed;
        std::uint64_t rid;
        detail::call_context* prev;  // the call this one runs inside, if inline
        guard(context& x, std::vector<handover>& hs, std::uint64_t id)
            : c(x), handed(hs), rid(id), prev(detail::current_call()) {
            detail::current_call() = &c;
        }
        // Also on a throw, so the caller of dispatch can take back
        // what a failing call had already handed over.
        ~guard() {
            detail::current_call() = prev;
            for (auto& f : c.handed) handed.push_back({rid, c.target, std::move(f)});
        }
    } g(ctx, handed, request_id);
    ctx.target = r;
    detail::begin_reply(out, detail::status::ok, request_id);
    fn(r->obj.get(), body, n, out, r->type->self_locking ? nullptr : &r->mu);
}

MULTIPROCESSING_DECL bool Server::dispatch(const detail::RequestHeader& h, std::string_view name, const char* body, std::size_t n,
                  std::uint64_t sess, std::uint64_t conn_id, int fd, std::vector<char>& out,
                  std::vector<handover>& handed, std::vector<std::shared_ptr<detail::ref_entry>>& kept,
                  const context* outer) {
    using detail::kind;
    switch (static_cast<kind>(h.kind)) {
    case kind::call: {
        auto r = lookup(h.id);
        if (!r) throw RemoteError("KeyError", "no shared object with id " + std::to_string(h.id));
        const detail::type_entry& t = *r->type;
        detail::invoke_fn fn = nullptr;
        std::uint64_t expect = 0;
        if (auto* m = t.find(name, h.sig)) {
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
        run_call(r, fn, body, n, sess, conn_id, fd, h.request_id, out, handed, kept, outer);
        return false;
    }
    case kind::create: {
        std::string tid(name);
        auto t = registry_->find(tid);
        if (!t) throw RemoteError("KeyError", "unknown typeid '" + tid + "'");
        if (t->interface_only)
            throw RemoteError("TypeError", "typeid '" + tid +
                                               "' is registered in the server with MP_INTERFACE only; the "
                                               "server must register the class itself to make it");
        // Fingerprint 0: a client that declares only an interface; its
        // calls are checked one by one, and it sends only the arguments'
        // hash, to which the class is added here.
        const bool declared = h.id == 0;
        const std::uint64_t ctor = declared ? detail::constructor_key(t->referent.name(), h.sig) : h.sig;
        if (!declared && t->fingerprint != h.id)
            throw RemoteError("TypeError", "typeid '" + tid +
                                               "' is registered differently by the client and the server "
                                               "(exposed methods or their signatures differ)");
        // A constructor may look up objects of this server
        // (Condition(lock)), so it runs in a call context too.
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
        if (t->factory) {
            if (ctor != t->factory_sig)
                throw RemoteError("TypeError", "typeid '" + tid + "' is made by a callable taking (" +
                                                   t->factory_text + "); the arguments given do not match");
            obj = t->factory(body, n);
        } else {
            auto* c = detail::constructor_table::instance().find(ctor);
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
        // Checked whole before any of it applies: a count below 1 would
        // raise another session's object count or overflow.
        std::vector<std::pair<std::uint64_t, std::int64_t>> drops;
        for (detail::reader rd{body, n}; rd.n >= 16;) {
            auto id = rd.pod<std::uint64_t>();
            auto cnt = rd.pod<std::int64_t>();
            if (cnt < 1) throw ValueError("decref of object " + std::to_string(id) + " by " + std::to_string(cnt) +
                                          ": the count must be at least 1");
            drops.emplace_back(id, cnt);
        }
        std::vector<std::shared_ptr<referent>> dead;
        {
            std::lock_guard<std::mutex> g(mu_);
            for (auto [id, cnt] : drops) drop_session_ref_locked(sess, id, cnt, dead);
        }
        reap(dead);  // outside the lock
        detail::begin_reply(out, detail::status::ok, h.request_id);
        return false;
    }
    case kind::number_of_objects: {
        detail::begin_reply(out, detail::status::ok, h.request_id);
        std::string s = std::to_string(number_of_objects());
        detail::put_raw(out, s.data(), s.size());
        return false;
    }
    case kind::collect: {
        std::string s = std::to_string(collect());
        detail::begin_reply(out, detail::status::ok, h.request_id);
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
    case kind::describe: {
        std::string tid(name);
        auto t = registry_->find(tid);
        if (!t) throw RemoteError("KeyError", "unknown typeid '" + tid + "'");
        std::string s;
        for (auto& m : t->methods) {
            s += m.name;
            s += '\t' + std::to_string(m.sig) + '\t' + m.text() + '\n';
        }
        detail::begin_reply(out, detail::status::ok, h.request_id);
        detail::put_raw(out, s.data(), s.size());
        return false;
    }
    case kind::shutdown:
        detail::begin_reply(out, detail::status::ok, h.request_id);
        return true;
    default:
        throw RemoteError("ProtocolError", "unknown request kind " + std::to_string(h.kind));
    }
}

}  // namespace multiprocessing::managers

namespace multiprocessing::managers::detail {

MULTIPROCESSING_DECL stop_signals::stop_signals(int wake_fd) {
    fd() = wake_fd;
    struct sigaction sa {};
    sa.sa_handler = &on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int i = 0; i < 3; ++i) {
        installed_[i] = false;
        if (::sigaction(signals[i], nullptr, &old_[i]) != 0) continue;
        if (signals[i] == SIGINT && old_[i].sa_handler == SIG_IGN) continue;
        installed_[i] = ::sigaction(signals[i], &sa, nullptr) == 0;
    }
}

MULTIPROCESSING_DECL stop_signals::~stop_signals() {
    for (int i = 0; i < 3; ++i)
        if (installed_[i]) ::sigaction(signals[i], &old_[i], nullptr);
    fd() = -1;
}

MULTIPROCESSING_DECL std::atomic<int>& stop_signals::fd() {
    static std::atomic<int> f{-1};
    return f;
}

MULTIPROCESSING_DECL void stop_signals::on_signal(int) {
    int saved = errno;
    int f = fd().load();
    char b = 1;
    if (f >= 0) {
        ssize_t w = ::write(f, &b, 1);
        (void)w;
    }
    errno = saved;
}

}  // namespace multiprocessing::managers::detail

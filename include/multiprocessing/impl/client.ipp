// Out-of-line members of the classes in <multiprocessing/detail/client.hpp>: inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION
// (so other files neither parse nor instantiate them).
#pragma once

#include "multiprocessing/detail/client.hpp"

namespace multiprocessing::managers::detail {

MULTIPROCESSING_DECL void endpoint::set_call_timeout(std::optional<double> t) {
    std::lock_guard<std::mutex> p(pool_mu_);
    call_timeout_ = t;
}

MULTIPROCESSING_DECL client_connection& endpoint::thread_connection() {
    unsigned gen = multiprocessing::detail::fork_state::instance().generation();
    unsigned ep = epoch();
    auto& slots = tls().slots;
    for (auto& s : slots) {
        if (s.ep != this) continue;
        if (s.c && s.c->generation == gen && s.c->epoch == ep) return *s.c;
        discard(std::move(s.c));
        s.c = take_connection();
        return *s.c;
    }
    slots.push_back({this, take_connection()});
    return *slots.back().c;
}

MULTIPROCESSING_DECL void endpoint::drop_thread_connection() {
    auto& slots = tls().slots;
    for (auto it = slots.begin(); it != slots.end(); ++it)
        if (it->ep == this) {
            auto c = std::move(it->c);
            slots.erase(it);
            discard(std::move(c));
            return;
        }
}

MULTIPROCESSING_DECL std::pair<const char*, std::size_t> endpoint::roundtrip(client_connection& c) {
    std::uint64_t rid;
    std::memcpy(&rid, c.obuf.data() + connection::Connection::header_room + 8, sizeof rid);
    std::pair<const char*, std::size_t> f;
    ReplyHeader h;
    std::optional<double> timeout = call_timeout();
    struct deadline_scope {
        client_connection& c;
        ~deadline_scope() {
            c.conn.set_deadline(std::nullopt);
            c.oblocks.clear();  // they point into the caller's arguments
        }
    } scope{c};
    if (timeout)
        c.conn.set_deadline(std::chrono::steady_clock::now() +
                            std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                std::chrono::duration<double>(*timeout)));
    try {
        c.conn.send_frame(c.obuf, c.oblocks);
        for (;;) {
            f = c.conn.recv_frame(max_frame_);
            if (f.second < sizeof(ReplyHeader)) {
                close_connection(c);
                throw lost("short reply");
            }
            std::memcpy(&h, f.first, sizeof h);
            if (h.request_id == rid) break;
            if (h.request_id > rid) {
                close_connection(c);
                throw lost("reply does not match the request");
            }
            // A late reply to a call that timed out: if it handed
            // something over, refuse it so the server takes it back.
            if (h.flags & reply_wants_ack) send_ack(c, h.request_id, false);
        }
        // Acknowledge before the result reaches the caller: a process
        // killed before this line never had the thing, and the server
        // takes it back; after it, the thing is ours.
        if (h.flags & reply_wants_ack) send_ack(c, rid, true);
    } catch (const multiprocessing::TimeoutError&) {
        // The reply may still come; a closed connection is the one
        // state both ends agree on (the server sees the caller gone).
        close_connection(c);
        throw multiprocessing::TimeoutError("call to the manager at " + address_.str() + " timed out after " +
                                            std::to_string(*timeout) + " s");
    } catch (const ConnectionError& e) {
        close_connection(c);
        throw lost(e.what());
    } catch (const ProcessError& e) {
        close_connection(c);
        throw lost(e.what());
    }
    reader body{f.first + sizeof h, f.second - sizeof h};
    if (h.flags & reply_gives_refs) take_given(body);
    if (h.status != static_cast<std::uint8_t>(status::ok)) throw_error(body);
    return {body.p, body.n};
}

MULTIPROCESSING_DECL void endpoint::take_given(reader& body) {
    std::uint32_t cnt = strip_given(body);
    auto& o = owed_refs::mine();
    for (std::uint32_t i = 0; i < cnt; ++i) {
        std::uint64_t id;
        std::memcpy(&id, body.p + body.n + i * sizeof id, sizeof id);
        auto it = std::find_if(o.v.begin(), o.v.end(), [&](const owed_refs::owed& x) { return x.ep == this && x.id == id; });
        if (it != o.v.end()) it->n += 1;
        else o.v.push_back({this, id, 1});
    }
}

MULTIPROCESSING_DECL std::uint32_t endpoint::strip_given(reader& body) {
    std::uint32_t cnt = 0;
    if (body.n < sizeof cnt) throw ProcessError("truncated reply");
    std::memcpy(&cnt, body.p + body.n - sizeof cnt, sizeof cnt);
    std::size_t room = body.n - sizeof cnt;
    if (room / sizeof(std::uint64_t) < cnt) throw ProcessError("truncated reply");
    body.n = room - cnt * sizeof(std::uint64_t);
    return cnt;
}

MULTIPROCESSING_DECL void endpoint::give_back(std::uint64_t id, std::int64_t n) noexcept {
    try {
        std::lock_guard<std::recursive_mutex> g(mu_);
        if (auto e = find_locked(id)) {
            e->server_refs += n;
            return;
        }
        if (dead() || attached_generation_ != multiprocessing::detail::fork_state::instance().generation()) return;
        client_connection& c = control();
        begin_request(c.obuf, kind::decref, c.next_id++, 0, 0);
        put_pod(c.obuf, id);
        put_pod(c.obuf, n);
        control_roundtrip();
    } catch (...) {
        // The server is gone or unreachable; it has released everything already.
    }
}

MULTIPROCESSING_DECL void endpoint::close_connection(client_connection& c) {
    std::lock_guard<std::mutex> p(pool_mu_);
    c.conn.close();
}

MULTIPROCESSING_DECL std::optional<double> endpoint::call_timeout() {
    if (auto* t = scoped_call_timeout()) return *t;
    std::lock_guard<std::mutex> p(pool_mu_);
    return call_timeout_;
}

MULTIPROCESSING_DECL std::shared_ptr<ref_entry> endpoint::acquire(const Token& t) {
    std::lock_guard<std::recursive_mutex> g(mu_);
    attach_locked();
    std::int64_t given = claim_given(t.id);
    if (auto e = find_locked(t.id)) {
        e->server_refs += given;
        return e;
    }
    if (given > 0) {
        auto e = make_entry(t);
        e->server_refs = given;
        return e;
    }
    std::vector<char>& buf = control().obuf;
    begin_request(buf, kind::incref, control().next_id++, 0, 0);
    put_pod(buf, t.id);
    control_roundtrip();
    auto e = make_entry(t);
    e->server_refs = 1;
    return e;
}

MULTIPROCESSING_DECL std::shared_ptr<ref_entry> endpoint::adopt(const Token& t) {
    std::lock_guard<std::recursive_mutex> g(mu_);
    attach_locked();
    auto e = find_locked(t.id);
    if (!e) e = make_entry(t);
    e->server_refs += 1;
    return e;
}

MULTIPROCESSING_DECL std::string endpoint::simple(kind k, std::string_view name) {
    std::lock_guard<std::recursive_mutex> g(mu_);
    attach_locked();
    client_connection& c = control();
    begin_request(c.obuf, k, c.next_id++, 0, 0, name.data(), name.size());
    auto r = control_roundtrip();
    return std::string(r.first, r.second);
}

MULTIPROCESSING_DECL void endpoint::release(ref_entry* e) noexcept {
    try {
        std::unique_lock<std::recursive_mutex> g(mu_, std::defer_lock);
        const serving_hook& h = this_thread_serves();
        if (h.defer && !g.try_lock()) {
            // A thread serving a server's connection never waits for this
            // lock: its holder may be waiting for this thread's reply (an
            // object dying in this thread's decref held a proxy, and the
            // holder's own decref is what killed it).  The entry is ours
            // alone now (no proxy can find it), and the server's
            // housekeeping thread, which may wait, sends the decref.
            if (e->server_refs <= 0) return;
            try {
                h.defer(h.server, [this, id = e->token.id, n = e->server_refs, epoch = e->epoch] {
                    send_decref(id, n, epoch);
                });
                e->server_refs = 0;
                return;
            } catch (...) {
                // No memory to queue it: wait for the lock after all.
            }
        }
        if (!g.owns_lock()) g.lock();
        auto it = refs_.find(e->token.id);
        if (it != refs_.end() && it->second.expired()) refs_.erase(it);
        if (e->server_refs <= 0 || e->epoch != epoch() || dead()) return;
        if (attached_generation_ != multiprocessing::detail::fork_state::instance().generation())
            return;  // a forked child that never attached holds nothing
        client_connection& c = control();
        begin_request(c.obuf, kind::decref, c.next_id++, 0, 0);
        put_pod(c.obuf, e->token.id);
        put_pod(c.obuf, e->server_refs);
        e->server_refs = 0;
        control_roundtrip();
    } catch (...) {
        // The server is gone or unreachable; it has released everything already.
    }
}

MULTIPROCESSING_DECL void endpoint::send_decref(std::uint64_t id, std::int64_t n, unsigned epoch) noexcept {
    try {
        std::lock_guard<std::recursive_mutex> g(mu_);
        auto it = refs_.find(id);
        if (it != refs_.end() && it->second.expired()) refs_.erase(it);
        if (epoch != this->epoch() || dead()) return;
        if (attached_generation_ != multiprocessing::detail::fork_state::instance().generation()) return;
        client_connection& c = control();
        begin_request(c.obuf, kind::decref, c.next_id++, 0, 0);
        put_pod(c.obuf, id);
        put_pod(c.obuf, n);
        control_roundtrip();
    } catch (...) {
        // The server is gone or unreachable; it has released everything already.
    }
}

MULTIPROCESSING_DECL bool endpoint::attach() {
    std::lock_guard<std::recursive_mutex> g(mu_);
    try {
        attach_locked();
        return true;
    } catch (...) {
        return false;
    }
}

MULTIPROCESSING_DECL std::unique_ptr<client_connection> endpoint::new_connection() {
    if (dead()) throw ConnectionError("the manager at " + address_.str() + " has shut down");
    attach();
    return connect_new();
}

MULTIPROCESSING_DECL bool endpoint::has_live_refs() {
    std::lock_guard<std::recursive_mutex> g(mu_);
    for (auto& kv : refs_)
        if (!kv.second.expired()) return true;
    return false;
}

MULTIPROCESSING_DECL void endpoint::reset(bool dead) {
    std::lock_guard<std::recursive_mutex> g(mu_);
    epoch_.fetch_add(1, std::memory_order_acq_rel);
    dead_.store(dead, std::memory_order_release);
    control_.reset();
    refs_.clear();
    drop_thread_connection();  // this thread's, closed now
    decltype(pool_) doomed;  // destroyed after unlocking: ~client_connection locks pool_mu_
    std::lock_guard<std::mutex> p(pool_mu_);
    doomed.swap(pool_);
    // Connections other threads still hold (and the async channel's):
    // end their calls and let go of the server's socket now, leaving a
    // dead descriptor that the owner closes when it next looks.
    int dead_fd = dead_socket();
    for (auto* c : all_) {
        int fd = c->conn.fileno();
        if (fd < 0) continue;
        ::shutdown(fd, SHUT_RDWR);
        if (dead_fd >= 0) ::dup3(dead_fd, fd, O_CLOEXEC);
    }
}

MULTIPROCESSING_DECL void endpoint::fork_child() {
    // Close our copies of the parent's sockets (so the server sees EOF
    // when the parent dies) without touching the parent's use of them;
    // this includes connections of threads that do not exist here.
    for (auto* c : all_) {
        c->conn.close();
        c->owner = nullptr;
    }
    all_.clear();
    pool_.clear();
    control_.reset();
    for (auto& kv : refs_)
        if (auto e = kv.second.lock()) e->server_refs = 0;
    // The child's thread has a new tid, so a recursive mutex locked in
    // prepare cannot be unlocked here: make fresh ones instead.
    new (&pool_mu_) std::mutex;
    new (&mu_) std::recursive_mutex;
}

MULTIPROCESSING_DECL void endpoint::forget(client_connection* c) {
    std::lock_guard<std::mutex> p(pool_mu_);
    for (auto it = all_.begin(); it != all_.end(); ++it)
        if (*it == c) { all_.erase(it); break; }
}

MULTIPROCESSING_DECL std::vector<char>& endpoint::inline_reply() {
    static thread_local std::vector<char> r;
    return r;
}

MULTIPROCESSING_DECL endpoint::thread_slots::~thread_slots() {
    // A thread's connection goes back to the pool, not away: its
    // process still holds references through the session.
    for (auto& s : slots)
        if (s.c) s.ep->give_back(std::move(s.c));
}

MULTIPROCESSING_DECL auto endpoint::tls() -> thread_slots& {
    static thread_local thread_slots t;
    return t;
}

MULTIPROCESSING_DECL ConnectionError endpoint::lost(const std::string& why) const {
    return ConnectionError("lost connection to the manager at " + address_.str() + ": " + why);
}

MULTIPROCESSING_DECL std::unique_ptr<client_connection> endpoint::take_connection() {
    decltype(pool_) stale;  // destroyed after unlocking: ~client_connection locks pool_mu_
    {
        std::lock_guard<std::mutex> p(pool_mu_);
        unsigned gen = multiprocessing::detail::fork_state::instance().generation();
        while (!pool_.empty()) {
            auto c = std::move(pool_.back());
            pool_.pop_back();
            if (c->epoch == epoch() && c->generation == gen && !c->conn.closed()) return c;
            stale.push_back(std::move(c));
        }
    }
    if (dead()) throw ConnectionError("the manager at " + address_.str() + " has shut down");
    attach();
    ensure_control();
    return connect_new();
}

MULTIPROCESSING_DECL void endpoint::ensure_control() {
    std::lock_guard<std::recursive_mutex> g(mu_);
    control();
}

MULTIPROCESSING_DECL void endpoint::give_back(std::unique_ptr<client_connection> c) {
    if (c->generation != multiprocessing::detail::fork_state::instance().generation() ||
        c->epoch != epoch() || c->conn.closed())
        return;  // destroyed; fork_child already closed an inherited one
    std::lock_guard<std::mutex> p(pool_mu_);
    pool_.push_back(std::move(c));
}

MULTIPROCESSING_DECL client_connection& endpoint::control() {
    unsigned gen = multiprocessing::detail::fork_state::instance().generation();
    if (!control_ || control_->conn.closed() || control_->epoch != epoch() || control_->generation != gen) {
        if (control_) discard(std::move(control_));
        if (dead()) throw ConnectionError("the manager at " + address_.str() + " has shut down");
        control_ = connect_new();
    }
    return *control_;
}

MULTIPROCESSING_DECL void endpoint::send_ack(client_connection& c, std::uint64_t rid, bool taken) {
    std::vector<char> buf;
    begin_request(buf, kind::ack, rid, 0, taken ? 1 : 0);
    c.conn.send_frame(buf);
}

MULTIPROCESSING_DECL std::pair<const char*, std::size_t> endpoint::control_roundtrip() {
    try {
        return roundtrip(*control_);
    } catch (const ConnectionError&) {
        discard(std::move(control_));
        throw;
    }
}

MULTIPROCESSING_DECL std::int64_t endpoint::claim_given(std::uint64_t id) {
    auto& o = owed_refs::mine();
    for (auto it = o.v.begin(); it != o.v.end(); ++it)
        if (it->ep == this && it->id == id) {
            std::int64_t n = it->n;
            o.v.erase(it);
            return n;
        }
    return 0;
}

MULTIPROCESSING_DECL std::shared_ptr<ref_entry> endpoint::find_locked(std::uint64_t id) {
    auto it = refs_.find(id);
    return it == refs_.end() ? nullptr : it->second.lock();
}

MULTIPROCESSING_DECL std::shared_ptr<ref_entry> endpoint::make_entry(const Token& t) {
    auto e = std::make_shared<ref_entry>();
    e->ep = this;
    e->token = t;
    e->epoch = epoch();
    refs_[t.id] = e;
    return e;
}

MULTIPROCESSING_DECL void endpoint::attach_locked() {
    unsigned gen = multiprocessing::detail::fork_state::instance().generation();
    if (attached_generation_ == gen) return;
    std::vector<std::shared_ptr<ref_entry>> live;
    for (auto it = refs_.begin(); it != refs_.end();) {
        if (auto e = it->second.lock()) { live.push_back(std::move(e)); ++it; }
        else it = refs_.erase(it);
    }
    attached_generation_ = gen;
    if (live.empty() || dead()) return;
    client_connection& c = control();
    begin_request(c.obuf, kind::incref, c.next_id++, 0, 1 /* tolerate missing */);
    for (auto& e : live) put_pod(c.obuf, e->token.id);
    auto r = control_roundtrip();
    reader rd{r.first, r.second};
    for (auto& e : live) e->server_refs = rd.pod<std::uint8_t>() ? 1 : 0;
}

}  // namespace multiprocessing::managers::detail

namespace multiprocessing::managers::detail {

MULTIPROCESSING_DECL client_state& client_state::instance() {
    static client_state* s = new client_state;  // leaked: proxies may die during exit
    return *s;
}

MULTIPROCESSING_DECL endpoint& client_state::get(const connection::Address& a, const std::string* authkey ,
                  std::size_t max_frame , int spin_us ,
                  const std::optional<double>* call_timeout , int shared_memory) {
    std::lock_guard<std::mutex> g(mu_);
    std::string key = a.str();
    auto it = endpoints_.find(key);
    if (it == endpoints_.end()) {
        std::string k = authkey ? *authkey : multiprocessing::current_process().authkey();
        it = endpoints_.emplace(key, new endpoint(a, k, max_frame ? max_frame : connection::default_max_frame)).first;
    } else {
        if (authkey) it->second->set_authkey(*authkey);
        if (max_frame) it->second->set_max_frame(max_frame);
    }
    if (spin_us >= 0) it->second->set_spin(spin_us);
    if (call_timeout) it->second->set_call_timeout(*call_timeout);
    if (shared_memory >= 0) it->second->set_shared_memory(shared_memory != 0);
    return *it->second;
}

MULTIPROCESSING_DECL bool client_state::any_live_refs() {
    std::lock_guard<std::mutex> g(mu_);
    for (auto& kv : endpoints_)
        if (kv.second->has_live_refs()) return true;
    return false;
}

MULTIPROCESSING_DECL void client_state::attach_all() {
    std::vector<endpoint*> eps;
    {
        std::lock_guard<std::mutex> g(mu_);
        for (auto& kv : endpoints_) eps.push_back(kv.second);
    }
    for (auto* e : eps)
        if (e->has_live_refs()) e->attach();
}

MULTIPROCESSING_DECL client_state::client_state() : session_id_(new_session_id()) {
    auto& fs = multiprocessing::detail::fork_state::instance();
    // Endpoints are locked in one fixed order (by address in memory):
    // the map's own order changes as it grows, and two forks locking
    // two endpoints in opposite orders is a lock-order inversion.
    fs.add({[this] {
                channels_mu_.lock();
                mu_.lock();
                locked_ = in_lock_order();
                for (auto* e : locked_) e->fork_prepare();
            },
            [this] {
                for (auto* e : locked_) e->fork_parent();
                locked_.clear();
                mu_.unlock();
                channels_mu_.unlock();
            },
            [this] {
                session_id_ = new_session_id();
                for (auto* e : locked_) e->fork_child();
                locked_.clear();
                new (&mu_) std::mutex;
                new (&channels_mu_) std::mutex;
            }});
    auto& hooks = multiprocessing::detail::child_hooks::instance();
    hooks.child_needs_sync = [this] { return any_live_refs(); };
    hooks.in_child = [this] { attach_all(); };
}

MULTIPROCESSING_DECL std::vector<endpoint*> client_state::in_lock_order() const {
    std::vector<endpoint*> v;
    v.reserve(endpoints_.size());
    for (auto& kv : endpoints_) v.push_back(kv.second);
    std::sort(v.begin(), v.end(), std::less<endpoint*>());
    return v;
}

}  // namespace multiprocessing::managers::detail

namespace multiprocessing::managers::detail {

MULTIPROCESSING_DECL owed_refs& owed_refs::raw() {
    static thread_local owed_refs o;
    return o;
}

MULTIPROCESSING_DECL owed_refs& owed_refs::mine() {
    owed_refs& o = raw();
    if (o.pid != ::getpid()) {
        o.v.clear();
        o.pid = ::getpid();
    }
    return o;
}

}  // namespace multiprocessing::managers::detail

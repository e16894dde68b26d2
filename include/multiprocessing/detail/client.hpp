// The client side of every manager: one endpoint per server address, one
// connection per thread (pooled, reused for every call), and a table of the
// objects this process references.
//
// Reference counting is per process, not per proxy: copying a proxy only
// bumps a local shared_ptr, and the server hears one incref when a process
// first holds an object and one decref when it lets go of it.  The server
// ties those references to the process's session, so when the process ends
// in any way (its sockets close) the server releases them.  Connections stay
// open until the process exits, so a thread ending drops nothing.
#pragma once

#include "multiprocessing/detail/config.hpp"
#include "multiprocessing/connection.hpp"
#include "multiprocessing/detail/fork.hpp"
#include "multiprocessing/detail/protocol.hpp"
#include "multiprocessing/process.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <chrono>
#include <cstdint>
#include <optional>
#include <memory>
#include <new>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace multiprocessing::managers::detail {

class endpoint;

/// Set on a thread that serves one of a server's connections: how that
/// server runs work on its housekeeping thread (see endpoint::release).
struct serving_hook {
    void* server = nullptr;
    void (*defer)(void* server, std::function<void()> work) = nullptr;
};
inline serving_hook& this_thread_serves() {
    static thread_local serving_hook h;
    return h;
}

/// One object this process references; shared by all its proxies here.
struct ref_entry {
    endpoint* ep = nullptr;
    Token token;
    std::int64_t server_refs = 0;  // references the server counts for this process
    unsigned epoch = 0;            // endpoint epoch it was made in
    ~ref_entry();
};

struct client_connection {
    connection::Connection conn;
    std::vector<char> obuf;
    multiprocessing::detail::frame_blocks oblocks;  // obuf's big arguments, sent from the caller's objects
    std::uint64_t next_id = 1;
    unsigned epoch = 0;
    unsigned generation = 0;
    endpoint* owner = nullptr;  // tracks every live connection for fork_child
    ~client_connection();
};

/// References a reply gave this thread (reply_gives_refs) that no proxy
/// has claimed yet: acquire() claims them while the reply is decoded, and
/// what is left when the decoding ends goes back (give_back).
struct owed_refs {
    struct owed {
        endpoint* ep;
        std::uint64_t id;
        std::int64_t n;
    };
    std::vector<owed> v;
    pid_t pid = 0;  // a forked child owes nothing its parent was given

    /// This thread's list, unchecked after fork(): only for the test of
    /// emptiness every call makes (getpid() is a system call).
    static owed_refs& raw();
    static owed_refs& mine();
    void give_back() noexcept;
    ~owed_refs() { give_back(); }
};

/// Gives back, at the end of a scope that decoded a reply, the references
/// the reply gave and nothing claimed (a decoding that failed half way).
struct owed_scope {
    owed_scope() = default;
    owed_scope(const owed_scope&) = delete;
    owed_scope& operator=(const owed_scope&) = delete;
    ~owed_scope() {
        auto& o = owed_refs::raw();
        if (!o.v.empty()) o.give_back();
    }
};

/// The timeout a thread's managers::call_timeout scope sets, if any.
inline const std::optional<double>*& scoped_call_timeout() {
    static thread_local const std::optional<double>* t = nullptr;
    return t;
}

/// A socket that is shut down both ways: dup2()ed over a connection that
/// another thread may still be using, it ends that thread's call (EOF) and
/// releases the manager's socket without freeing the descriptor number
/// under it.
inline int dead_socket() {
    static const int fd = [] {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -1;
        ::shutdown(sv[0], SHUT_RDWR);
        ::close(sv[1]);
        return sv[0];
    }();
    return fd;
}

inline std::uint64_t new_session_id() {
    std::uint64_t v = 0;
    auto r = connection::detail::random_bytes(sizeof v);
    std::memcpy(&v, r.data(), sizeof v);
    return v | 1;  // never 0
}

class client_state;

/// A Server running in this process, seen from its own proxies: a call that
/// one of its methods makes on its objects runs at once in the calling
/// thread instead of over a socket, so it can take locks that thread holds.
struct local_server {
    virtual ~local_server() = default;
    /// Whether this thread is running one of this server's calls now.
    virtual bool serving_this_thread() const = 0;
    /// Runs the call request req (begun with begin_frame) and writes the
    /// reply frame into reply.
    virtual void call_inline(const std::vector<char>& req, std::vector<char>& reply) = 0;
};

/// A server this process talks to.  Never destroyed (proxies may outlive
/// everything else), only reset when its manager shuts down or restarts.
class endpoint {
public:
    endpoint(connection::Address a, std::string key, std::size_t max_frame)
        : address_(std::move(a)), authkey_(std::move(key)), max_frame_(max_frame) {}

    const connection::Address& address() const { return address_; }
    const std::string& authkey() const { return authkey_; }
    void set_authkey(std::string k) { authkey_ = std::move(k); }
    void set_max_frame(std::size_t n) { max_frame_.store(n, std::memory_order_relaxed); }
    void set_spin(int us) { spin_us_ = us; }
    /// Whether new connections ask for the shared-memory transport.
    void set_shared_memory(bool on) { shared_memory_.store(on, std::memory_order_relaxed); }
    void set_call_timeout(std::optional<double> t);
    unsigned epoch() const { return epoch_.load(std::memory_order_acquire); }
    /// The server at this address, when it runs in this process (or null).
    void set_local(local_server* s) { local_.store(s, std::memory_order_release); }
    void clear_local(local_server* s) { local_.compare_exchange_strong(s, nullptr, std::memory_order_acq_rel); }
    bool dead() const { return dead_.load(std::memory_order_acquire); }

    /// This thread's connection, made (or taken from the pool) on first use.
    client_connection& thread_connection();

    /// Forgets this thread's connection (after it failed, or at reset).
    void drop_thread_connection();

    /// Sends c.obuf and returns the reply body; a server-side error is
    /// re-thrown here.  A broken connection is closed and reported as
    /// ConnectionError naming the server.
    std::pair<const char*, std::size_t> roundtrip(client_connection& c);

    /// Strips a reply's trailer of references given to this process
    /// (reply_gives_refs) and owes them to this thread until its proxies
    /// claim them.
    void take_given(reader& body);

    /// Strips the trailer of reply_gives_refs; returns the count of ids,
    /// which follow the body's new end.
    static std::uint32_t strip_given(reader& body);

    /// A reference given to this process and never claimed: kept with the
    /// object's entry if this process has one, else handed back.
    void give_back(std::uint64_t id, std::int64_t n) noexcept;

    /// Closes one of this endpoint's connections.  Under pool_mu_, so that
    /// reset() never acts on a descriptor number already closed and reused.
    void close_connection(client_connection& c);

    /// The timeout for a call made now by this thread: its call_timeout
    /// scope's, else the manager's.
    std::optional<double> call_timeout();

    /// A call on this thread's connection.  build(buf, request_id) writes
    /// the request; returns the reply body view (valid until the next call
    /// on this thread).
    template <class Build>
    std::pair<const char*, std::size_t> call(Build&& build) {
        {
            auto& o = owed_refs::raw();  // left by a reply decoded without an owed_scope
            if (!o.v.empty()) o.give_back();
        }
        local_server* local = local_.load(std::memory_order_acquire);
        if (local && local->serving_this_thread()) return call_inline(*local, build);
        client_connection& c = thread_connection();
        c.oblocks.clear();
        c.oblocks.buf = &c.obuf;
        try {
            multiprocessing::detail::aliasing_scope alias(&c.oblocks);
            build(c.obuf, c.next_id++);
        } catch (...) {
            c.oblocks.clear();  // they point into arguments about to die
            throw;
        }
        try {
            return roundtrip(c);
        } catch (const ConnectionError&) {
            drop_thread_connection();
            throw;
        } catch (const multiprocessing::TimeoutError&) {
            drop_thread_connection();
            throw;
        }
    }

    /// Holds a reference for token's object in this process, asking the
    /// server for one only if this process holds none yet.
    std::shared_ptr<ref_entry> acquire(const Token& t);

    /// Takes over a reference the server already counted for this process
    /// (objects returned by create() or by methods returning shared_ptr).
    std::shared_ptr<ref_entry> adopt(const Token& t);

    /// Python's create: a new shared object; the reply's reference is ours.
    template <class Body>
    std::shared_ptr<ref_entry> create(const std::string& typeid_, std::uint64_t fingerprint,
                                      std::uint64_t ctor_sig, Body&& body) {
        std::lock_guard<std::recursive_mutex> g(mu_);
        attach_locked();
        client_connection& c = control();
        begin_request(c.obuf, kind::create, c.next_id++, fingerprint, ctor_sig, typeid_.data(), typeid_.size());
        body(c.obuf);
        auto r = control_roundtrip();
        reader rd{r.first, r.second};
        Token t{typeid_, address_, rd.pod<std::uint64_t>()};
        auto e = find_locked(t.id);
        if (!e) e = make_entry(t);
        e->server_refs += 1;
        return e;
    }

    /// A request with no object (number_of_objects, debug_info, shutdown,
    /// describe with a typeid as name...).
    std::string simple(kind k, std::string_view name = {});

    /// Drops a reference: called when the last proxy of an object in this
    /// process is destroyed.  Never throws (it runs in destructors).
    void release(ref_entry* e) noexcept;
    // release()'s decref, sent later by the thread that could not wait.
    void send_decref(std::uint64_t id, std::int64_t n, unsigned epoch) noexcept;

    /// Makes sure this process (a forked child, possibly) holds its own
    /// server references for every proxy it inherited.  Returns false if
    /// the server could not be reached.
    bool attach();

    /// A new connection in this process's session, not pooled (the async
    /// channel owns it).
    std::unique_ptr<client_connection> new_connection();

    bool has_live_refs();

    /// The server was shut down (or a new one took this address): every
    /// connection and reference made so far is void.
    void reset(bool dead);

    // fork handling, called from the atfork hooks of client_state
    void fork_prepare() { mu_.lock(); pool_mu_.lock(); }
    void fork_parent() { pool_mu_.unlock(); mu_.unlock(); }
    void fork_child();

    void forget(client_connection* c);

private:
    // A call from one of our own server's methods: run in this thread.  The
    // reply lives in a per-thread buffer until the next call, as a
    // connection's does; a nested call has its own until it returns.
    template <class Build>
    std::pair<const char*, std::size_t> call_inline(local_server& local, Build& build) {
        std::vector<char> req, reply;
        build(req, 0);
        local.call_inline(req, reply);
        std::vector<char>& last = inline_reply();
        last.swap(reply);
        std::size_t off = connection::Connection::header_room;
        ReplyHeader h;
        std::memcpy(&h, last.data() + off, sizeof h);
        reader body{last.data() + off + sizeof h, last.size() - off - sizeof h};
        if (h.status != static_cast<std::uint8_t>(status::ok)) throw_error(body);
        return {body.p, body.n};
    }

    static std::vector<char>& inline_reply();

    struct slot {
        endpoint* ep;
        std::unique_ptr<client_connection> c;
    };
    struct thread_slots {
        std::vector<slot> slots;
        ~thread_slots();
    };
    static thread_slots& tls();

    ConnectionError lost(const std::string& why) const;

    std::unique_ptr<client_connection> connect_new();
    bool open_shared_memory(client_connection& c);

    std::unique_ptr<client_connection> take_connection();

    // The session keeps its control connection for the process's life, so
    // closing a thread's connection (after a timeout) never leaves the
    // session without one, which would release its references.
    void ensure_control();

    void give_back(std::unique_ptr<client_connection> c);

    static void discard(std::unique_ptr<client_connection> c) { c.reset(); }

    client_connection& control();

    void send_ack(client_connection& c, std::uint64_t rid, bool taken);

    std::pair<const char*, std::size_t> control_roundtrip();

    // The references the reply this thread is decoding gave for id.
    std::int64_t claim_given(std::uint64_t id);

    std::shared_ptr<ref_entry> find_locked(std::uint64_t id);

    std::shared_ptr<ref_entry> make_entry(const Token& t);

    // In a new fork generation, takes this process's own reference on every
    // object it inherited proxies for, in one round trip.
    void attach_locked();

    connection::Address address_;
    std::string authkey_;
    std::atomic<std::size_t> max_frame_;  // set again by every proxy rebuilt here, from any thread
    int spin_us_ = 0;
    std::atomic<bool> shared_memory_{true};
    std::optional<double> call_timeout_;  // guarded by pool_mu_
    std::atomic<unsigned> epoch_{0};
    std::atomic<bool> dead_{false};
    std::atomic<local_server*> local_{nullptr};

    std::recursive_mutex mu_;  // refs_, control_, attached_generation_
    std::unique_ptr<client_connection> control_;
    std::unordered_map<std::uint64_t, std::weak_ptr<ref_entry>> refs_;
    unsigned attached_generation_ = 0;

    std::mutex pool_mu_;  // pool_, all_
    std::vector<std::unique_ptr<client_connection>> pool_;
    std::vector<client_connection*> all_;
};

/// Every endpoint of this process, plus its session id.
class client_state {
public:
    static client_state& instance();

    std::uint64_t session_id() const { return session_id_; }

    /// The endpoint for address; authkey and max_frame (if given) replace
    /// the ones it had.  (A proxy arriving in a message passes neither: it
    /// used to reset the manager's max_frame, racing with calls.)
    endpoint& get(const connection::Address& a, const std::string* authkey = nullptr,
                  std::size_t max_frame = 0, int spin_us = -1,
                  const std::optional<double>* call_timeout = nullptr, int shared_memory = -1);

    /// Whether a new child must re-register inherited proxies before its
    /// parent may go on (see Process::start).
    bool any_live_refs();

    void attach_all();

    /// The lock over the process's table of async channels (async_for):
    /// here so that fork takes it before any endpoint's locks, and the child
    /// gets it unlocked.
    std::mutex& channels_mutex() { return channels_mu_; }

private:
    client_state();

    std::vector<endpoint*> in_lock_order() const;

    std::mutex channels_mu_;
    std::mutex mu_;
    std::unordered_map<std::string, endpoint*> endpoints_;
    std::vector<endpoint*> locked_;  // between fork's prepare and parent/child
    std::uint64_t session_id_;
};

inline std::unique_ptr<client_connection> endpoint::connect_new() {
    auto c = std::make_unique<client_connection>();
    c->epoch = epoch();
    c->generation = multiprocessing::detail::fork_state::instance().generation();
    try {
        c->conn = connection::Client(address_, authkey_, max_frame_);
        c->conn.set_spin(spin_us_);
        // A server host that vanished must fail our calls, not hang them
        // (ServerOptions' default keepalive: about 16 s).
        if (address_.is_tcp()) connection::detail::set_keepalive(c->conn.fileno(), 10, 2, 3);
    } catch (const AuthenticationError&) {
        throw;
    } catch (const std::exception& e) {
        throw ConnectionError("cannot reach the manager at " + address_.str() + ": " + e.what());
    }
    {
        std::lock_guard<std::mutex> p(pool_mu_);
        all_.push_back(c.get());
        c->owner = this;
    }
    auto& cs = client_state::instance();
    std::uint64_t sig = (std::uint64_t(protocol_version) << 32) | std::uint32_t(::getpid());
    begin_request(c->obuf, kind::hello, c->next_id++, cs.session_id(), sig);
    roundtrip(*c);
    if (address_.is_unix() && shared_memory_.load(std::memory_order_relaxed) &&
        connection::detail::shared_memory_enabled() && !open_shared_memory(*c))
        return connect_new();  // this process cannot map segments: the socket from now on
    return c;
}

// Asks the server for a shared-memory segment; its descriptor comes with
// the reply, and from there on both ends use it.  A refusal leaves the
// connection on the socket.  False if the segment came but cannot be mapped
// here (address space or map count exhausted): the server has switched, so
// the connection is closed, and this endpoint asks no more.
inline bool endpoint::open_shared_memory(client_connection& c) {
    std::uint64_t rid = c.next_id++;
    begin_request(c.obuf, kind::shm_open, rid, 0, 0);
    int fd = -1;
    try {
        c.conn.set_deadline(std::chrono::steady_clock::now() + std::chrono::seconds(10));
        c.conn.send_frame(c.obuf);
        auto f = c.conn.recv_frame(max_frame_, &fd);
        c.conn.set_deadline(std::nullopt);
        ReplyHeader h;
        if (f.second < sizeof h) throw ProcessError("short reply");
        std::memcpy(&h, f.first, sizeof h);
        if (h.request_id != rid) throw ProcessError("reply does not match the request");
        // Ours sends a segment with every yes; a peer that says yes without
        // one (a stand-in server that answers anything) keeps the socket.
        if (h.status == static_cast<std::uint8_t>(status::ok) && fd >= 0) {
            int seg = std::exchange(fd, -1);
            try {
                c.conn.use_shared_memory(seg, 0);
            } catch (const ConnectionError&) {
                shared_memory_.store(false, std::memory_order_relaxed);
                close_connection(c);
                return false;
            }
        }
    } catch (const std::exception& e) {
        if (fd >= 0) ::close(fd);
        close_connection(c);
        throw lost(e.what());
    }
    if (fd >= 0) ::close(fd);
    return true;
}

inline client_connection::~client_connection() {
    if (owner) owner->forget(this);
}

inline ref_entry::~ref_entry() {
    if (ep) ep->release(this);
}

inline void owed_refs::give_back() noexcept {
    if (pid != ::getpid()) {
        v.clear();  // the parent's, inherited through fork()
        return;
    }
    auto left = std::move(v);
    v.clear();
    for (auto& x : left) x.ep->give_back(x.id, x.n);
}

}  // namespace multiprocessing::managers::detail

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/client.ipp"
#endif

// managers.Server: owns the shared objects and serves each connection in its
// own thread.
//
// Differs from Python's Server: references are counted per client process
// (session) and released when that process's connections all close, however
// it died; calls on one object are serialized unless its type is
// self_locking; the server stops when its owner process dies.
#pragma once

#include "multiprocessing/detail/config.hpp"
#include "multiprocessing/connection.hpp"
#include "multiprocessing/detail/client.hpp"
#include "multiprocessing/detail/protocol.hpp"
#include "multiprocessing/detail/registry.hpp"
#include "multiprocessing/managers/referent.hpp"
#include "multiprocessing/process.hpp"

#include <openssl/crypto.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <deque>
#include <functional>
#include <optional>
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

namespace detail {

/// While alive, SIGTERM, SIGHUP and (unless ignored) SIGINT write a byte to
/// a pipe instead of killing the process; the previous handlers come back
/// at destruction.  One at a time per process.
class stop_signals {
public:
    explicit stop_signals(int wake_fd);
    ~stop_signals();
    stop_signals(const stop_signals&) = delete;
    stop_signals& operator=(const stop_signals&) = delete;

private:
    static constexpr int signals[3] = {SIGINT, SIGTERM, SIGHUP};
    static std::atomic<int>& fd();
    static void on_signal(int);
    struct sigaction old_[3];
    bool installed_[3];
};

}  // namespace detail

/// Tunables shared by BaseManager and Server.
struct ServerOptions {
    /// Largest frame either side accepts (Python has no limit).
    std::size_t max_frame = connection::default_max_frame;
    /// For TCP: a client silent this long (keepalive probes unanswered) is
    /// treated as gone and its references are released.
    int keepalive_idle = 10, keepalive_interval = 2, keepalive_count = 3;
    /// Print a line to stderr for each refused or broken connection (at most
    /// one line a second of each kind; the rest are counted).
    bool log_errors = true;
    /// Seconds a new connection has to complete the authentication
    /// handshake, in all (not per read).
    double handshake_timeout = 10.0;
    /// Connections accepted but not yet authenticated.  One more closes the
    /// oldest of them at once, so a flood of silent peers cannot crowd out
    /// a client that authenticates promptly.
    std::size_t max_pending = 64;
    /// Client side, socket transport: busy-poll up to this many
    /// microseconds for a reply before sleeping.  Cuts a call to below the
    /// blocking socket round trip when the client has a core to itself, but
    /// costs throughput when processes outnumber cores, so it is off by
    /// default and backs off by itself while spinning does not pay.  Over
    /// shared memory (shared_memory below) both sides always spin first (the
    /// client this long if set, else 50 µs; the server 50 µs) and back off
    /// the same way.
    int spin_us = 0;
    /// Client side: a call through this manager's proxies that has no reply
    /// within this many seconds raises TimeoutError, and its connection is
    /// closed (the server sees the caller gone; the next call opens a new
    /// one).  Unset, the default, waits forever, as Python does.  A
    /// managers::call_timeout scope overrides it for one thread.
    std::optional<double> call_timeout;
    /// Same-machine connections (a Unix-socket manager) move their frames
    /// through a shared-memory ring instead of the socket: no system call
    /// per call while both sides are busy.  The socket stays for the
    /// handshake, as a doorbell for a side that sleeps, and to tell either
    /// side that the other died.  Falls back to the socket where it cannot
    /// be set up.  The environment variable MP_TRANSPORT=socket turns it off
    /// for a whole process.  Not in Python.
    bool shared_memory = true;
};

/// Python's managers.Server: serves the objects of one registry at one
/// address.  Obtain one from BaseManager::get_server().
///
/// A method may call back into this server through proxies (to its own
/// object or to others): such a call runs at once in the method's thread,
/// and the object locks that thread holds let it through.  Python's Server
/// serves it on another thread and has no per-object locks; here two calls
/// back in opposite orders at once (A's method calls B while B's calls A)
/// cannot both proceed, and the one that would close the cycle fails with a
/// "deadlock" std::runtime_error instead of hanging.
class Server : private detail::local_server {
public:
    Server(std::shared_ptr<const detail::registry> reg, const connection::Address& address,
           std::string authkey, ServerOptions opts = {}, std::string owned_dir = {});
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// The address actually listened on (a TCP port 0 becomes the real port).
    const connection::Address& address() const { return listener_.address(); }

    /// Stop when this fd becomes readable or hangs up (the owner's pipe).
    void set_owner_fd(int fd) { owner_fd_ = fd; }

    /// Serves until shutdown() is called, a client sends a shutdown request,
    /// the owner process dies, or (with handle_signals) SIGINT, SIGTERM or
    /// SIGHUP arrives.
    void serve_forever(bool handle_signals = true);

    /// Asks serve_forever() to return; wakes every connection thread.
    void shutdown();

    /// Frees the shared objects that only other shared objects' proxies keep
    /// alive and that no outside reference reaches (reference cycles: a list
    /// holding itself, two dicts holding each other); returns how many.
    ///
    /// Trial deletion over the graph whose edges are the proxies each object
    /// holds (type_entry::traverse): an object whose every reference comes
    /// from this server process's own proxies, all of them inside shared
    /// objects, is a candidate; candidates not reachable from any other
    /// object are garbage.  Calls keep running meanwhile, so the garbage is
    /// checked again with each of its objects locked (try_lock: a busy
    /// object is live) before anything is freed, and an object whose
    /// contents cannot be read (no traverse, self-locking) never counts as
    /// holding anything, which keeps what it holds alive.  Runs by itself
    /// after a decref leaves an object referenced only from inside the
    /// server; Python's server relies on CPython's garbage collector.
    std::size_t collect();

    /// Number of live shared objects (Python's private _number_of_objects).
    std::size_t number_of_objects() const;

    /// A line per object and per client session (Python's _debug_info).
    std::string debug_info() const;

    /// Unauthenticated connections closed to make room (ServerOptions::max_pending)
    /// or to free a descriptor.
    std::uint64_t shed_count() const;

    /// Connection threads currently running.
    std::size_t thread_count() const;

private:
    struct referent {
        std::shared_ptr<void> obj;
        std::shared_ptr<const detail::type_entry> type;
        std::mutex mu;
        std::int64_t refcount = 0;
        const void* raw = nullptr;
        // Its id in objects_ (a revived one gets a new one); atomic: lookup's
        // cache reads it without the lock.
        std::atomic<std::uint64_t> id{0};
        // In objects_: cleared under mu_ when it leaves, so lookup's
        // per-thread cache can trust what it holds without the lock.
        std::atomic<bool> live{true};
        std::pair<const void*, std::type_index> key() const { return {raw, type->referent}; }
    };
    struct session {
        int connections = 0;
        std::uint64_t pid = 0;
        bool gone = false;  // a Python client's process has exited
        std::unordered_map<std::uint64_t, std::int64_t> refs;
    };

    // Something a call handed to its caller, taken back unless the client
    // acknowledges the reply (see managers::hand_over).
    struct handover {
        std::uint64_t request_id;
        std::shared_ptr<referent> keep;  // the object outlives the take-back
        std::function<void()> take_back;
    };

    // Per-call context: registers objects returned by methods.
    struct context : detail::call_context {
        Server* server;
        int fd = -1;
        std::shared_ptr<referent> target;
        std::vector<std::function<void()>> handed;
        std::vector<std::shared_ptr<detail::ref_entry>>* kept = nullptr;
        const context* outer = nullptr;  // the call that made this one, run inline
        // Proxies in the replies of calls this one made inline: the method
        // decodes those replies after the inline call returns.
        mutable std::vector<std::shared_ptr<detail::ref_entry>> inline_kept;
        void hand_over(std::function<void()> take_back) override { handed.push_back(std::move(take_back)); }
        void keep(std::shared_ptr<detail::ref_entry> e) override;
        bool caller_gone() const override;
        std::shared_ptr<void> local_object(const Token& t, std::type_index referent) const override;
        Token share(std::shared_ptr<void> obj, const void* raw, std::type_index referent) override;
    };

    using clock = std::chrono::steady_clock;

    void log(const std::string& s);

    // At most 10 lines a second per kind: a flood of bad peers must not
    // become a flood of log lines.  The next line printed says how many
    // were left out.
    void log_limited(const std::string& kind, const std::string& s);

    // Closes the oldest connection still authenticating (its thread sees
    // EOF and ends).  Caller holds no lock.
    void shed_oldest_pending();
    void shed_oldest_pending_locked();

    void start_thread(std::shared_ptr<connection::Connection> c);

    // The connection left the pending list (authenticated, refused or shed).
    void authenticated_locked(std::uint64_t conn_id);

    void wait_for_threads(std::chrono::milliseconds limit);

    std::uint64_t add_object(std::shared_ptr<void> obj, const void* raw,
                             std::shared_ptr<const detail::type_entry> type, std::uint64_t sess);

    std::shared_ptr<referent> lookup(std::uint64_t id);

    // Drops n references; the object dies outside the lock, and only after
    // any call running on it has finished (that call holds a shared_ptr).
    void decref_locked(std::uint64_t id, std::int64_t n, std::vector<std::shared_ptr<referent>>& dead);

    // Objects freed by a decref that may hold proxies die on the
    // housekeeping thread, not in the decref's handler: their proxies'
    // decrefs come back to this server while this process's client lock is
    // held, and a handler that waited for them could be serving the very
    // thread that holds it (a dict holding a list holding a dict deadlocked).
    void reap(std::vector<std::shared_ptr<referent>>& dead);
    // Remembers an entry that left objects_ (see retired_).
    void retire_locked(const std::shared_ptr<referent>& r);

    void want_collect_locked();

    // Runs reaping and collect() soon on a thread of its own, so a decref's
    // reply never waits for them; requests that come meanwhile share one run.
    void want_housekeeping_locked();
    static void defer_work(void* server, std::function<void()> work);

    // The proxies of this server's objects in a reply become references of
    // the caller's session before the reply leaves, listed after the body
    // (reply_gives_refs).  Counting them later, when the caller's incref
    // came, raced: another thread of the caller could drop the reference
    // the server had counted on in between, and the object died in transit.
    // Unacknowledged (the caller timed out or died), they are dropped again.
    // Proxies of other servers' objects stay pinned here until the caller's
    // next request on this connection.  Returns true if any were pinned.
    bool give_refs(std::vector<char>& out, std::vector<std::shared_ptr<detail::ref_entry>>& kept,
                   std::uint64_t sess, std::uint64_t conn_id, std::vector<handover>& handed);

    // Drops up to n of the session's references to id.
    void drop_session_ref_locked(std::uint64_t sess, std::uint64_t id, std::int64_t n,
                                 std::vector<std::shared_ptr<referent>>& dead);

    void session_closed(std::uint64_t sess);

    // Drops every reference a session holds, and the session; the objects
    // that die go to dead, for the caller to free outside the lock.
    template <class It>
    void release_session_locked(It it, std::vector<std::shared_ptr<referent>>& dead) {
        for (auto& kv : it->second.refs) decref_locked(kv.first, kv.second, dead);
        sessions_.erase(it);
    }

    // Drops what the connection's last results kept (outside the lock:
    // the proxies' decrefs come back to this server).  At the end of a
    // connection, what a reply pinned may be left in a cycle: collect.
    void unkeep(std::uint64_t conn_id, bool closing = false);

    static void take_back_all(std::vector<handover>& hs);

    void serve_client(connection::Connection& c, std::uint64_t conn_id);

    // A client on this machine asks to move its frames through shared
    // memory: the segment's descriptor goes with the reply, and both ends
    // switch right after it.  Refused (an error reply) where it cannot be
    // made; the client then stays on the socket.
    void offer_shared_memory(connection::Connection& c, std::uint64_t request_id, std::vector<char>& out,
                             std::vector<char>& batch);
    static constexpr std::size_t ring_bytes = std::size_t(256) << 10;

    // Lets objects that track callers (an RLock's owner) forget this one.
    void notify_disconnect(std::uint64_t sess, std::uint64_t conn_id);

    bool serving_this_thread() const override;

    // A call one of our methods makes through a proxy to this server: run
    // here, in the caller's thread, as this process's session.  What it
    // hands over is taken at once (the taker is this thread).
    void call_inline(const std::vector<char>& req, std::vector<char>& reply) override;

    // CPython clients (impl/python_server.ipp).  Python's proxies incref
    // and decref over short connections of their own, so a Python client's
    // references cannot end with a connection.  On a Unix socket they
    // belong to the client's process (SO_PEERCRED), and are released when a
    // pidfd says it has exited and its last connection has closed.  Over
    // TCP all Python clients share session 2, which nothing releases: as in
    // CPython's server, a client that dies there leaves its references.
    static constexpr std::uint64_t python_session = 2;  // C++ sessions are odd
    std::uint64_t python_session_of(int fd) const;
    void watch_python_process(std::uint64_t sess, pid_t pid);
    void python_process_gone(std::uint64_t sess);
    void python_connection_closed(std::uint64_t sess);
    void serve_python(connection::Connection& c, std::uint64_t conn_id, std::string first);
    detail::pk::value python_public(const std::string& name, std::vector<detail::pk::value>& args,
                                    const detail::pk::value& kwds, std::uint64_t sess, std::uint64_t conn_id, int fd,
                                    bool& stop);
    detail::pk::value python_create(const std::string& typeid_, std::vector<detail::pk::value> args,
                                    const detail::pk::value& kwds, std::uint64_t sess, std::uint64_t conn_id, int fd);
    detail::pk::value python_call(const std::string& ident, const std::string& name,
                                  std::vector<detail::pk::value> args, const detail::pk::value& kwds,
                                  std::uint64_t sess, std::uint64_t conn_id, int fd, std::vector<handover>& handed,
                                  std::vector<std::shared_ptr<detail::ref_entry>>& kept);
    object python_rebuild(const detail::pk::value& v);
    detail::pk::value python_reduce(const object& o) const;
    detail::pk::value python_token(const Token& t) const;
    detail::pk::value python_exposed(const detail::type_entry& t) const;

    // Runs one exposed method (fn) of r's object in a call context; the
    // reply goes to `out`, what it hands over to `handed`.
    void run_call(const std::shared_ptr<referent>& r, detail::invoke_fn fn, const char* body, std::size_t n,
                  std::uint64_t sess, std::uint64_t conn_id, int fd, std::uint64_t request_id, std::vector<char>& out,
                  std::vector<handover>& handed, std::vector<std::shared_ptr<detail::ref_entry>>& kept,
                  const context* outer);

    // Fills `out` with the reply; returns true for a shutdown request.
    bool dispatch(const detail::RequestHeader& h, std::string_view name, const char* body, std::size_t n,
                  std::uint64_t sess, std::uint64_t conn_id, int fd, std::vector<char>& out,
                  std::vector<handover>& handed, std::vector<std::shared_ptr<detail::ref_entry>>& kept,
                  const context* outer = nullptr);

    std::shared_ptr<const detail::registry> registry_;
    std::string authkey_;
    ServerOptions opts_;
    detail::endpoint* self_ = nullptr;  // this process's client side of this server
    const pid_t pid_ = ::getpid();
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
    // Entries that left objects_ while a call still held them: the same
    // object handed out again takes its entry (and its lock) back, so two
    // entries never lock one object apart.  Expired ones are swept.
    std::map<std::pair<const void*, std::type_index>, std::weak_ptr<referent>> retired_;
    std::size_t retired_sweep_at_ = 64;
    std::unordered_map<std::uint64_t, session> sessions_;
    std::vector<std::shared_ptr<referent>> leaked_;
    std::uint64_t next_id_ = 1;  // ids are never reused by a server
    // Tells this server from an earlier one at the same address (lookup's cache).
    const std::uint64_t instance_ = next_instance();
    static std::uint64_t next_instance() {
        static std::atomic<std::uint64_t> n{0};
        return ++n;
    }
    std::uint64_t next_connection_ = 1;
    std::deque<std::pair<std::uint64_t, int>> pending_;  // (connection, fd) not yet authenticated, oldest first
    std::uint64_t shed_ = 0;
    // Proxy references of replies in transit, by connection (call_context::keep).
    struct kept_ref {
        std::uint64_t session = 0;
        std::shared_ptr<detail::ref_entry> ref;  // null once released
    };
    std::unordered_map<std::uint64_t, std::vector<kept_ref>> kept_;
    std::vector<std::shared_ptr<void>> reap_;  // to destroy on the housekeeping thread
    // Work a serving thread could not wait for (detail::serving_hook); not
    // run if the server stops first (the decrefs it would send die with it).
    std::vector<std::function<void()>> deferred_;
    bool gc_wanted_ = false;   // under mu_
    bool gc_thread_ = false;   // under mu_: the collector thread is running
    std::condition_variable gc_cv_;
    std::mutex gc_run_mu_;     // one collect() at a time

    struct log_state {
        clock::time_point window_end{};
        int printed = 0;
        std::uint64_t suppressed = 0;
    };
    std::mutex log_mu_;
    std::map<std::string, log_state> log_state_;
};

}  // namespace multiprocessing::managers

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/python_server.ipp"
#endif

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/server_methods.ipp"
#endif

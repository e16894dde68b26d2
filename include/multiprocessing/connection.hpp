// multiprocessing.connection: framed, authenticated byte connections over
// Unix sockets or TCP.  Managers use exactly this layer, so one codec and one
// frame format serve both transports.
//
// Frames are Python's: a 4-byte big-endian signed length (or -1 and an
// 8-byte length for frames over 2 GiB) then the payload.  The handshake is
// CPython 3.12+'s mutual HMAC-SHA256 challenge, so a CPython Client() can
// authenticate against our Listener and vice versa; what follows the
// handshake is this library's own protocol, not pickle.
#pragma once

#include "multiprocessing/detail/archive.hpp"
#include "multiprocessing/detail/config.hpp"
#include "multiprocessing/detail/random.hpp"
#include "multiprocessing/detail/shm_stream.hpp"
#include "multiprocessing/exceptions.hpp"

#include <boost/serialization/access.hpp>
#include <boost/serialization/string.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace multiprocessing::connection {

/// Where a listener listens: a Unix socket path or a TCP (host, port).
/// Python uses a str or a (host, port) tuple; this is the same choice as a type.
class Address {
public:
    enum class Family { none, unix_socket, tcp };

    Address() = default;
    Address(const char* path) : family_(Family::unix_socket), path_(path) {}
    Address(std::string path) : family_(Family::unix_socket), path_(std::move(path)) {}
    Address(std::string host, unsigned short port)
        : family_(Family::tcp), path_(std::move(host)), port_(port) {}

    Family family() const { return family_; }
    bool empty() const { return family_ == Family::none; }
    bool is_unix() const { return family_ == Family::unix_socket; }
    bool is_tcp() const { return family_ == Family::tcp; }
    /// Socket path (Unix) or host (TCP).
    const std::string& path() const { return path_; }
    const std::string& host() const { return path_; }
    unsigned short port() const { return port_; }

    /// Python's repr of the address: '/tmp/x' or ('127.0.0.1', 5000).
    std::string str() const {
        if (is_unix()) return "'" + path_ + "'";
        if (is_tcp()) return "('" + path_ + "', " + std::to_string(port_) + ")";
        return "None";
    }
    friend bool operator==(const Address& a, const Address& b) {
        return a.family_ == b.family_ && a.path_ == b.path_ && a.port_ == b.port_;
    }
    friend bool operator!=(const Address& a, const Address& b) { return !(a == b); }

    template <class Ar>
    void serialize(Ar& ar, unsigned) {
        int f = static_cast<int>(family_);
        ar & f & path_ & port_;
        if (f < 0 || f > 2) throw ValueError("bad address family");
        family_ = static_cast<Family>(f);
    }

private:
    Family family_ = Family::none;
    std::string path_;
    unsigned short port_ = 0;
};

/// Default limit on one frame; a peer announcing more is disconnected.
constexpr std::size_t default_max_frame = std::size_t(1) << 30;
/// Limit on handshake frames, read before the peer is authenticated.
constexpr std::size_t handshake_max_frame = 256;

namespace detail {

inline const std::string& challenge_tag() { static const std::string s = "#CHALLENGE#"; return s; }
inline const std::string& welcome_tag() { static const std::string s = "#WELCOME#"; return s; }
inline const std::string& failure_tag() { static const std::string s = "#FAILURE#"; return s; }

using multiprocessing::detail::random_bytes;

inline std::string hmac_sha256(const std::string& key, const std::string& msg) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
              reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &len))
        throw ProcessError("HMAC-SHA256 failed");
    return std::string(reinterpret_cast<char*>(out), len);
}

/// EOF after part of a frame: the peer broke off mid-message (a server
/// logs it; a clean EOF between frames is just a client leaving).
class truncated_frame : public EOFError {
public:
    using EOFError::EOFError;
};

inline std::system_error sys_error(const char* what) {
    return std::system_error(errno, std::generic_category(), what);
}

}  // namespace detail

/// Python's Connection: sends and receives whole frames over one socket.
///
/// Differs from Python: send()/recv() use Boost.Serialization instead of
/// pickle, and a frame larger than max_frame() is refused (the connection is
/// then unusable).  Not thread-safe; use one per thread, as managers do.
class Connection {
public:
    Connection() = default;
    explicit Connection(int fd, std::size_t max_frame = default_max_frame)
        : fd_(fd), max_frame_(max_frame) {}
    ~Connection() { close(); }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    Connection(Connection&& o) noexcept { *this = std::move(o); }
    Connection& operator=(Connection&& o) noexcept;

    int fileno() const { return fd_; }
    bool closed() const { return fd_ < 0 || broken_.load(std::memory_order_relaxed); }
    std::size_t max_frame() const { return max_frame_; }
    void set_max_frame(std::size_t n) { max_frame_ = n; }
    /// Busy-poll this many microseconds before sleeping in a receive
    /// (0, the default, never spins).
    void set_spin(int microseconds);
    /// Receive timeout in seconds for every later read; nullopt waits forever.
    void set_timeout(std::optional<double> seconds) { timeout_ = seconds; }
    /// One deadline for everything that follows (reads and writes), however
    /// many reads it takes: TimeoutError once it passes.  Unlike a per-read
    /// timeout, a peer trickling a byte at a time cannot extend it.
    void set_deadline(std::optional<std::chrono::steady_clock::time_point> when) { deadline_ = when; }

    void close();
    /// Drops the fd without closing it: for a forked child abandoning a
    /// socket whose other copy the parent still uses.
    void abandon();

    /// From now on, frames go through the shared-memory segment behind
    /// segment_fd (closed here) instead of the socket, which stays as the
    /// doorbell and the sign of the peer's death.  side: 0 for the end
    /// that connected, 1 for the end that accepted.  Both ends switch at
    /// the same point of the stream: managers switch after the reply that
    /// carried the descriptor.  Not in Python.
    void use_shared_memory(int segment_fd, int side);
    /// True if frames go through shared memory (use_shared_memory).
    bool shared_memory() const { return shm_ != nullptr; }
    /// True for a Unix socket (the peer is on this machine).
    bool is_unix_socket() const;

    /// Python's poll(timeout): true if a frame (or EOF) can be read within
    /// timeout seconds; std::nullopt (None) waits for as long as it takes,
    /// a negative timeout only looks, as in Python.  NaN is ValueError.
    bool poll(std::optional<double> timeout = 0.0) const;

    void send_bytes(const void* data, std::size_t n);
    void send_bytes(const std::string& s) { send_bytes(s.data(), s.size()); }

    /// Python's recv_bytes(maxlength): one whole frame.
    std::string recv_bytes(std::size_t maxlength = 0);
    /// Python's recv_bytes_into(buffer, offset): reads one message into
    /// the size bytes at buffer, starting offset bytes in, and returns its
    /// length in bytes.  ValueError for an offset past the end;
    /// BufferTooShort, holding the message, if it does not fit.
    std::size_t recv_bytes_into(void* buffer, std::size_t size, std::size_t offset = 0);
    /// The same into a contiguous container (std::vector, std::array,
    /// std::string); the offset and the result in bytes, as Python's are
    /// for an array.array.
    template <class Buffer, class = decltype(std::declval<Buffer&>().data())>
    std::size_t recv_bytes_into(Buffer& buffer, std::size_t offset = 0) {
        using E = std::remove_pointer_t<decltype(buffer.data())>;
        static_assert(std::is_trivially_copyable_v<E> && !std::is_const_v<E>,
                      "recv_bytes_into: the buffer must be writable and hold trivially copyable elements");
        return recv_bytes_into(static_cast<void*>(buffer.data()), buffer.size() * sizeof(E), offset);
    }

    /// Python's send(obj), with Boost.Serialization in place of pickle.
    template <class T>
    void send(const T& obj) {
        std::vector<char> buf;
        begin_frame(buf);
        {
            multiprocessing::detail::vector_sink sink(buf);
            multiprocessing::detail::oarchive oa(sink);
            oa << obj;
        }
        send_frame(buf);
    }
    /// Python's recv(): the next object sent with send<T>().
    template <class T>
    T recv() {
        auto f = recv_frame(max_frame_);
        multiprocessing::detail::memory_source src(f.first, f.second);
        multiprocessing::detail::iarchive ia(src);
        T obj;
        ia >> obj;
        return obj;
    }

    // ---- zero-copy frame API used by the managers' codec ----

    /// Room reserved at the front of an outgoing buffer for the length.
    static constexpr std::size_t header_room = 12;

    /// Starts a frame in buf: clears it and reserves the header room.  Big
    /// blocks recorded for buf (frame_blocks) are dropped with its old bytes.
    static void begin_frame(std::vector<char>& buf) {
        buf.assign(header_room, '\0');
        auto* t = multiprocessing::detail::aliasing_target();
        if (t && t->buf == &buf) t->clear();
    }

    /// Writes the length into buf (begun with begin_frame); returns the
    /// frame's bytes, header included.
    static std::pair<const char*, std::size_t> seal_frame(std::vector<char>& buf) {
        return seal_frame(buf, buf.size() - header_room);
    }
    /// The same for a frame of n bytes, of which buf holds only a part.
    static std::pair<const char*, std::size_t> seal_frame(std::vector<char>& buf, std::size_t n);

    /// Sends buf (begun with begin_frame) as one frame with one syscall.
    void send_frame(std::vector<char>& buf);

    /// Sends buf as one frame with the big blocks an archive wrote by
    /// reference (frame_blocks) in their places.
    void send_frame(std::vector<char>& buf, const multiprocessing::detail::frame_blocks& blocks);

    /// Sends bytes already framed (several sealed frames back to back).
    void send_raw(const char* p, std::size_t n) { send_all(p, n); }

    /// Sends buf as one frame over the socket with descriptor fd attached
    /// (SCM_RIGHTS; Unix sockets only).  The receiver takes it with
    /// recv_frame(limit, &fd).
    void send_frame(std::vector<char>& buf, int fd);

    /// Receives one frame and the descriptor sent with it (send_frame(buf,
    /// fd)); *fd is -1 if none came.  The caller owns the descriptor.
    std::pair<const char*, std::size_t> recv_frame(std::size_t limit, int* fd);

    /// True if a whole frame is already buffered, so recv_frame() will not
    /// block: lets a server batch its replies to pipelined requests.
    bool frame_ready() const;

    /// True if bytes (or EOF, or a failure) can be read now: never waits or
    /// spins, unlike poll(0), which may throw and catch inside.
    bool readable_now() const;

    /// Receives one frame; the view stays valid until the next receive.
    /// Over shared memory the view may lack big blocks that came apart from
    /// it (multiprocessing::detail::received_blocks, for this thread): read
    /// it through detail::memory_source on this thread, as recv_bytes() and
    /// recv() do, before this thread receives again.
    std::pair<const char*, std::size_t> recv_frame(std::size_t limit);

private:
    static void put_be32(char* p, std::uint32_t v);
    static void put_be64(char* p, std::uint64_t v);
    static std::uint32_t get_be32(const char* p);
    static std::uint64_t get_be64(const char* p);

    // The stream position is lost, so the connection cannot continue: it is
    // shut down and marked broken here, and closed by its owner (closing it
    // here would free the ring, or free the descriptor's number, under
    // another thread still writing: the async channel's submitters).
    [[noreturn]] void throw_bad_frame(const std::string& why);

    void ensure_open() const;

    bool wait_readable(double timeout) const;

    // Seconds left before the deadline (never negative), or -1 for none.
    double seconds_left() const;

    void send_all(const char* p, std::size_t n);

    // Makes at least `need` bytes available at rbuf_[rbeg_].  The buffer
    // grows without zero-filling: at 64 MB that memset and its page faults
    // cost more than the copy itself on this kind of VM.
    void fill(std::size_t need);

    // fill() through shared memory: the bytes are copied out of the ring
    // (never parsed in place, where the peer could change them).
    void fill_shared(std::size_t need);

    // Waits for ring bytes; the peer gone: truncated_frame if mid_frame,
    // else EOFError.
    void await_shared(bool mid_frame);

    // Over shared memory, a frame's big blocks of a kind the receiver can
    // hand over whole (multiprocessing::detail::block_kind) go after the
    // frame, each into a container of its own as it arrives
    // (multiprocessing::detail::received_blocks): the receiver's ring read
    // is then the only copy.  A table before the frame, after this tag
    // (never a length: its top bit is set), says where they were cut out.
    static constexpr std::uint32_t staged_tag = 0xfffffffeu;
    static constexpr std::uint32_t max_staged = 64;
    static constexpr std::size_t staged_first_room = std::size_t(64) << 20;
    void send_staged(std::vector<char>& buf, const multiprocessing::detail::frame_blocks& blocks);
    // The frame (sealed at its whole size) with its blocks in their places,
    // but for the first `staged` blocks of a kind other than bytes.
    void send_spliced(std::vector<char>& buf, const multiprocessing::detail::frame_blocks& blocks, std::uint32_t staged);
    std::pair<const char*, std::size_t> recv_staged(std::size_t limit);

    // The first read of a frame that carries a descriptor: recvmsg, so the
    // descriptor is not dropped (recv() discards it).
    void receive_with_descriptor(int* fd);

    // Reallocates the receive buffer to cap bytes, keeping [0, rend_).
    void grow(std::size_t cap);

    // Spin while spinning mostly pays off; otherwise (CPUs oversubscribed,
    // slow replies) only probe once in 32 receives.
    bool should_spin() { return spin_score_ >= 64 || (++spin_probe_ & 31) == 0; }

    // Polls without sleeping for up to spin_us_ microseconds: a reply that
    // comes back that fast then costs no sleep and cross-CPU wake-up.
    bool try_spin(std::size_t need);

    // A huge frame must not pin its buffer for the connection's lifetime,
    // but a run of bulk calls should not pay for a new one each time.
    void maybe_shrink();

    int fd_ = -1;
    std::size_t max_frame_ = default_max_frame;
    std::unique_ptr<char[]> rbuf_;
    std::size_t rcap_ = 0;
    std::size_t rbeg_ = 0, rend_ = 0;
    unsigned small_frames_ = 0;
    std::optional<double> timeout_;
    std::optional<std::chrono::steady_clock::time_point> deadline_;
    int spin_us_ = 0;
    int spin_score_ = 256;  // 0..256: how often spinning found the reply
    unsigned spin_probe_ = 0;
    std::unique_ptr<detail::shm_stream> shm_;
    std::atomic<bool> broken_{false};  // set by a reader thread, seen by writers
};

/// Python's deliver_challenge: proves the peer knows authkey (HMAC-SHA256).
/// Reads are capped at 256 bytes, so an unauthenticated peer cannot make us
/// allocate.
inline void deliver_challenge(Connection& c, const std::string& authkey) {
    std::string message = "{sha256}" + detail::random_bytes(40);
    c.send_bytes(detail::challenge_tag() + message);
    std::string response = c.recv_bytes(handshake_max_frame);
    std::string expected = "{sha256}" + detail::hmac_sha256(authkey, message);
    bool ok = response.size() == expected.size() &&
              CRYPTO_memcmp(response.data(), expected.data(), expected.size()) == 0;
    if (!ok) {
        c.send_bytes(detail::failure_tag());
        throw AuthenticationError("digest received was wrong");
    }
    c.send_bytes(detail::welcome_tag());
}

/// Python's answer_challenge: proves to the peer that we know authkey.
inline void answer_challenge(Connection& c, const std::string& authkey) {
    std::string message = c.recv_bytes(handshake_max_frame);
    const std::string& tag = detail::challenge_tag();
    if (message.compare(0, tag.size(), tag) != 0)
        throw AuthenticationError("protocol error, expected challenge");
    message.erase(0, tag.size());
    if (message.compare(0, 8, "{sha256}") != 0)
        throw AuthenticationError("unsupported digest in challenge (only sha256 is accepted)");
    c.send_bytes("{sha256}" + detail::hmac_sha256(authkey, message));
    if (c.recv_bytes(handshake_max_frame) != detail::welcome_tag())
        throw AuthenticationError("digest sent was rejected");
}

namespace detail {

inline void set_cloexec(int fd) { ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC); }

inline void tune_tcp(int fd) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/// Enables TCP keepalive so a vanished peer is noticed within about
/// idle + interval * count seconds.
inline void set_keepalive(int fd, int idle, int interval, int count) {
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
    int user_timeout_ms = (idle + interval * count) * 1000;
    ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
}

/// Connects a raw socket to address; throws ConnectionError on failure.
MULTIPROCESSING_DECL int connect_fd(const Address& address);

/// A listening socket bound to address (a Unix socket file made with mode
/// 0600); bound is the address actually bound (TCP port 0 becomes the
/// real port).  Throws ConnectionError on failure.
MULTIPROCESSING_DECL int listen_fd(const Address& address, int backlog, Address& bound);

}  // namespace detail

/// Python's Listener: a bound, listening socket that accepts authenticated
/// connections.
///
/// Differs from Python: a TCP listener refuses to start without an authkey
/// (Python allows an unauthenticated TCP listener), and a Unix socket is
/// created with mode 0600.
class Listener {
public:
    Listener() = default;
    Listener(const Address& address, std::optional<std::string> authkey = std::nullopt,
             int backlog = 128);
    ~Listener() { close(); }
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;
    Listener(Listener&& o) noexcept { *this = std::move(o); }
    Listener& operator=(Listener&& o) noexcept;

    const Address& address() const { return address_; }
    int fileno() const { return fd_; }

    /// Accepts one connection without authenticating it (the caller runs
    /// the handshake, in its own thread, so a slow peer cannot stall accept).
    Connection accept_raw(std::size_t max_frame = default_max_frame);

    /// Python's accept(): the next connection, authenticated if an authkey
    /// was given.
    Connection accept();

    /// Closes the socket and removes a Unix socket file.
    void close();
    /// Closes without unlinking: for a forked child that does not own it.
    void abandon();

private:
    int fd_ = -1;
    Address address_;
    std::optional<std::string> authkey_;
    bool unlink_on_close_ = false;
};

/// Python's Client(address, authkey): connects and, with an authkey, runs
/// the mutual challenge.
inline Connection Client(const Address& address, std::optional<std::string> authkey = std::nullopt,
                         std::size_t max_frame = default_max_frame) {
    Connection c(detail::connect_fd(address), max_frame);
    if (authkey) {
        c.set_deadline(std::chrono::steady_clock::now() + std::chrono::seconds(10));
        answer_challenge(c, *authkey);
        deliver_challenge(c, *authkey);
        c.set_deadline(std::nullopt);
    }
    return c;
}

/// Python's Pipe(): two connected Connections (always duplex here).
inline std::pair<Connection, Connection> Pipe() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw detail::sys_error("socketpair");
    return {Connection(sv[0]), Connection(sv[1])};
}

/// One object connection::wait() watches: a Connection, or a file
/// descriptor (a socket, a Listener's fileno(), Process::sentinel()).  It
/// holds a pointer to the Connection, which must outlive it (and wait()'s
/// result: pass named Connections, not temporaries).
class Waitable {
public:
    Waitable(const Connection& c) : conn_(&c) {}  // implicit, as wait({a, b}) reads
    Waitable(int fd) : fd_(fd) {}
    /// The Connection, or nullptr for a file descriptor.
    const Connection* connection() const { return conn_; }
    int fileno() const { return conn_ ? conn_->fileno() : fd_; }
    friend bool operator==(const Waitable& a, const Waitable& b) {
        return a.conn_ == b.conn_ && (a.conn_ || a.fd_ == b.fd_);
    }
    friend bool operator!=(const Waitable& a, const Waitable& b) { return !(a == b); }

private:
    const Connection* conn_ = nullptr;
    int fd_ = -1;
};

/// Python's connection.wait(object_list, timeout): waits until one or more
/// of the objects is ready (a Connection with a frame or EOF to read, a
/// readable descriptor, an ended Process's sentinel) and returns those, in
/// the order given; empty if the timeout passed.  std::nullopt (None) waits
/// for as long as it takes; a negative timeout only looks.  Differs from
/// Python: a closed Connection is ConnectionError (Python: OSError), a
/// negative descriptor ValueError as in Python.
MULTIPROCESSING_DECL std::vector<Waitable> wait(const std::vector<Waitable>& objects,
                                                std::optional<double> timeout = std::nullopt);

}  // namespace multiprocessing::connection

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/connection.ipp"
#endif

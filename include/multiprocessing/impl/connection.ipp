// The socket set-up behind connection.hpp, through Asio: inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION
// (so other files never parse Asio).
#pragma once

#include "multiprocessing/connection.hpp"
#include "multiprocessing/detail/fork.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <atomic>
#include <memory>

namespace multiprocessing::connection::detail {

inline boost::asio::io_context& io() {
    // Only used for connect/bind/accept and name resolution; sockets are
    // released to plain fds right away.  One per fork generation: the
    // reactor's and the service registry's mutexes may be held by a parent
    // thread when another forks, and a child connecting through them would
    // hang.  The parent's is left alone (leaked) in the child.
    struct per_generation {
        explicit per_generation(unsigned g) : generation(g) {}
        unsigned generation;
        boost::asio::io_context ctx;
    };
    static std::atomic<per_generation*> current{nullptr};  // constant-initialized: no guard to inherit
    unsigned gen = multiprocessing::detail::fork_state::instance().generation();
    per_generation* p = current.load(std::memory_order_acquire);
    while (!p || p->generation != gen) {
        auto fresh = std::make_unique<per_generation>(gen);
        if (current.compare_exchange_strong(p, fresh.get(), std::memory_order_acq_rel, std::memory_order_acquire))
            return fresh.release()->ctx;
        // Another thread made this generation's first: use it.
    }
    return p->ctx;
}

MULTIPROCESSING_DECL int connect_fd(const Address& address) {
    boost::system::error_code ec;
    if (address.is_unix()) {
        boost::asio::local::stream_protocol::socket s(io());
        s.connect(boost::asio::local::stream_protocol::endpoint(address.path()), ec);
        if (ec) throw ConnectionError("cannot connect to " + address.str() + ": " + ec.message());
        int fd = s.release();
        set_cloexec(fd);
        return fd;
    }
    if (address.is_tcp()) {
        boost::asio::ip::tcp::resolver r(io());
        auto eps = r.resolve(address.host(), std::to_string(address.port()), ec);
        if (ec) throw ConnectionError("cannot resolve " + address.str() + ": " + ec.message());
        boost::asio::ip::tcp::socket s(io());
        boost::asio::connect(s, eps, ec);
        if (ec) throw ConnectionError("cannot connect to " + address.str() + ": " + ec.message());
        int fd = s.release();
        set_cloexec(fd);
        tune_tcp(fd);
        return fd;
    }
    throw ValueError("cannot connect to an empty address");
}

MULTIPROCESSING_DECL int listen_fd(const Address& address, int backlog, Address& bound) {
    boost::system::error_code ec;
    int fd = -1;
    if (address.is_unix()) {
        boost::asio::local::stream_protocol::acceptor a(io());
        boost::asio::local::stream_protocol::endpoint ep(address.path());
        a.open(ep.protocol(), ec);
        mode_t old = ::umask(0177);  // socket file 0600
        if (!ec) a.bind(ep, ec);
        ::umask(old);
        if (!ec) a.listen(backlog, ec);
        if (ec) throw ConnectionError("cannot listen on " + address.str() + ": " + ec.message());
        fd = a.release();
        bound = address;
    } else if (address.is_tcp()) {
        boost::asio::ip::tcp::resolver r(io());
        auto eps = r.resolve(address.host(), std::to_string(address.port()),
                             boost::asio::ip::resolver_base::passive, ec);
        if (ec || eps.empty()) throw ConnectionError("cannot resolve " + address.str() + ": " + ec.message());
        auto ep = eps.begin()->endpoint();
        boost::asio::ip::tcp::acceptor a(io());
        a.open(ep.protocol(), ec);
        if (!ec) a.set_option(boost::asio::socket_base::reuse_address(true), ec);
        if (!ec) a.bind(ep, ec);
        if (!ec) a.listen(backlog, ec);
        if (ec) throw ConnectionError("cannot listen on " + address.str() + ": " + ec.message());
        auto local = a.local_endpoint();
        fd = a.release();
        // Report the real port when 0 asked for any free one.
        bound = Address(address.host(), local.port());
    } else {
        throw ValueError("Listener needs an address");
    }
    set_cloexec(fd);
    return fd;
}

}  // namespace multiprocessing::connection::detail

namespace multiprocessing::connection {

MULTIPROCESSING_DECL Connection& Connection::operator=(Connection&& o) noexcept {
    if (this != &o) {
        close();
        fd_ = std::exchange(o.fd_, -1);
        max_frame_ = o.max_frame_;
        rbuf_ = std::move(o.rbuf_);
        rcap_ = std::exchange(o.rcap_, 0);
        small_frames_ = o.small_frames_;
        rbeg_ = std::exchange(o.rbeg_, 0);
        rend_ = std::exchange(o.rend_, 0);
        timeout_ = o.timeout_;
        deadline_ = o.deadline_;
        spin_us_ = o.spin_us_;
        shm_ = std::move(o.shm_);
        broken_.store(o.broken_.load(std::memory_order_relaxed), std::memory_order_relaxed);
    }
    return *this;
}

MULTIPROCESSING_DECL void Connection::set_spin(int microseconds) {
    spin_us_ = microseconds;
    if (shm_) shm_->set_spin(microseconds);
}

MULTIPROCESSING_DECL void Connection::close() {
    // This thread's received blocks, if cut from our buffer (not created
    // here: close() also runs from destructors at thread exit).
    auto* staged = multiprocessing::detail::received_frame_live();
    if (staged && !staged->empty() && rbuf_) {
        auto lo = reinterpret_cast<std::uintptr_t>(staged->lo), b = reinterpret_cast<std::uintptr_t>(rbuf_.get());
        if (lo >= b && lo - b <= rcap_) staged->clear();
    }
    shm_.reset();
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    broken_.store(false, std::memory_order_relaxed);
}

MULTIPROCESSING_DECL void Connection::abandon() {
    shm_.reset();
    fd_ = -1;
}

MULTIPROCESSING_DECL void Connection::use_shared_memory(int segment_fd, int side) {
    if (fd_ < 0) {
        ::close(segment_fd);
        throw ConnectionError("connection is closed");
    }
    shm_ = std::make_unique<detail::shm_stream>(segment_fd, side, fd_);
    shm_->set_spin(spin_us_);
}

MULTIPROCESSING_DECL bool Connection::is_unix_socket() const {
    sockaddr_storage a{};
    socklen_t n = sizeof a;
    return fd_ >= 0 && ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &n) == 0 && a.ss_family == AF_UNIX;
}

MULTIPROCESSING_DECL bool Connection::poll(std::optional<double> timeout) const {
    if (timeout && std::isnan(*timeout)) throw ValueError("Invalid value NaN (not a number)");
    if (rend_ > rbeg_) return true;
    // More than 10^9 s is forever: no clock arithmetic overflows on it.
    if (!timeout || *timeout > 1e9) return wait_readable(-1);
    return wait_readable(*timeout < 0 ? 0 : *timeout);
}

MULTIPROCESSING_DECL void Connection::send_bytes(const void* data, std::size_t n) {
    std::vector<char> buf;
    begin_frame(buf);
    buf.insert(buf.end(), static_cast<const char*>(data), static_cast<const char*>(data) + n);
    send_frame(buf);
}

MULTIPROCESSING_DECL std::string Connection::recv_bytes(std::size_t maxlength) {
    auto f = recv_frame(maxlength ? maxlength : max_frame_);
    if (multiprocessing::detail::received_blocks().empty()) return std::string(f.first, f.second);
    multiprocessing::detail::memory_source src(f.first, f.second);  // staged blocks in their places
    std::string s(src.remaining(), '\0');
    src.sgetn(s.data(), static_cast<std::streamsize>(s.size()));
    return s;
}

MULTIPROCESSING_DECL std::size_t Connection::recv_bytes_into(void* buffer, std::size_t size, std::size_t offset) {
    if (offset > size) throw ValueError("offset too large");
    std::string m = recv_bytes();
    if (m.size() > size - offset) throw BufferTooShort("message of " + std::to_string(m.size()) + " bytes for " +
                                                           std::to_string(size - offset) + " bytes of buffer",
                                                       std::move(m));
    if (!m.empty()) std::memcpy(static_cast<char*>(buffer) + offset, m.data(), m.size());
    return m.size();
}

MULTIPROCESSING_DECL std::pair<const char*, std::size_t> Connection::seal_frame(std::vector<char>& buf, std::size_t n) {
    char* start;
    if (n > 0x7fffffffu) {
        start = buf.data();
        put_be32(start, 0xffffffffu);
        put_be64(start + 4, n);
    } else {
        start = buf.data() + 8;
        put_be32(start, static_cast<std::uint32_t>(n));
    }
    return {start, static_cast<std::size_t>(buf.data() + buf.size() - start)};
}

MULTIPROCESSING_DECL void Connection::send_frame(std::vector<char>& buf, const multiprocessing::detail::frame_blocks& blocks) {
    if (blocks.v.empty()) return send_frame(buf);
    // Recorded for another buffer, or before buf was cut: a library bug,
    // refused before any byte leaves.
    std::size_t last = 0;
    for (const auto& b : blocks.v) {
        if (blocks.buf != &buf || b.at < last || b.at > buf.size() || b.at < header_room)
            throw std::logic_error("frame blocks do not match the frame buffer");
        last = b.at;
    }
    if (shm_)
        for (const auto& b : blocks.v)
            if (b.kind != multiprocessing::detail::block_kind::bytes) return send_staged(buf, blocks);
    send_spliced(buf, blocks, 0);
}

MULTIPROCESSING_DECL void Connection::send_spliced(std::vector<char>& buf, const multiprocessing::detail::frame_blocks& blocks,
                                                   std::uint32_t staged) {
    const char* at = seal_frame(buf, buf.size() - header_room + blocks.bytes).first;
    std::uint32_t left_out = 0;
    for (const auto& b : blocks.v) {
        send_all(at, static_cast<std::size_t>(buf.data() + b.at - at));
        if (b.kind == multiprocessing::detail::block_kind::bytes || left_out == staged) send_all(b.p, b.n);
        else ++left_out;
        at = buf.data() + b.at;
    }
    send_all(at, static_cast<std::size_t>(buf.data() + buf.size() - at));
}

MULTIPROCESSING_DECL void Connection::send_staged(std::vector<char>& buf, const multiprocessing::detail::frame_blocks& blocks) {
    using multiprocessing::detail::block_kind;
    std::vector<char> table(8);
    std::uint32_t count = 0;
    std::size_t before = 0;  // bytes of earlier blocks: offsets are in the whole body
    for (const auto& b : blocks.v) {
        if (b.kind != block_kind::bytes) {
            if (count == max_staged) break;  // the rest is spliced in (honest frames have one or two)
            char e[17];
            put_be64(e, b.at - header_room + before);
            put_be64(e + 8, b.n);
            e[16] = static_cast<char>(b.kind);
            table.insert(table.end(), e, e + sizeof e);
            ++count;
        }
        before += b.n;
    }
    put_be32(table.data(), staged_tag);
    put_be32(table.data() + 4, count);
    send_all(table.data(), table.size());
    // The frame, with only its spliced blocks in place; then the staged
    // blocks, in order.
    send_spliced(buf, blocks, count);
    std::uint32_t staged = 0;
    for (const auto& b : blocks.v)
        if (b.kind != block_kind::bytes && staged < count) {
            send_all(b.p, b.n);
            ++staged;
        }
}

MULTIPROCESSING_DECL void Connection::send_frame(std::vector<char>& buf) {
    auto f = seal_frame(buf);
    send_all(f.first, f.second);
}

MULTIPROCESSING_DECL void Connection::send_frame(std::vector<char>& buf, int fd) {
    ensure_open();
    if (shm_) throw ValueError("descriptors cross only the socket");
    auto f = seal_frame(buf);
    iovec iov{const_cast<char*>(f.first), f.second};
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = sizeof ctl;
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    ssize_t w;
    do w = ::sendmsg(fd_, &m, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w < 0) {
        int e = errno;
        throw ConnectionError(std::string("send failed: ") + std::strerror(e));
    }
    if (static_cast<std::size_t>(w) < f.second) send_all(f.first + w, f.second - static_cast<std::size_t>(w));
}

MULTIPROCESSING_DECL std::pair<const char*, std::size_t> Connection::recv_frame(std::size_t limit, int* fd) {
    *fd = -1;
    if (rend_ == rbeg_ && !shm_) receive_with_descriptor(fd);
    return recv_frame(limit);
}

MULTIPROCESSING_DECL bool Connection::frame_ready() const {
    if (rend_ - rbeg_ < 4) return false;
    std::uint32_t h = get_be32(rbuf_.get() + rbeg_);
    if (h & 0x80000000u) return false;
    return rend_ - rbeg_ >= 4 + static_cast<std::size_t>(h);
}

MULTIPROCESSING_DECL bool Connection::readable_now() const {
    if (rend_ > rbeg_ || closed()) return true;
    if (shm_) return shm_->readable() != 0 || shm_->peer_closed();
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) != 0;  // an error too: the read that follows reports it
}

MULTIPROCESSING_DECL std::pair<const char*, std::size_t> Connection::recv_frame(std::size_t limit) {
    ensure_open();  // broken mid-frame: what is still buffered is no frame's start
    maybe_shrink();
    auto& staged = multiprocessing::detail::received_blocks();
    if (!staged.empty()) staged.clear();  // the last frame's, unclaimed
    fill(4);
    std::uint32_t h = get_be32(rbuf_.get() + rbeg_);
    if (h == staged_tag && shm_) return recv_staged(limit);
    std::size_t hdr = 4;
    std::uint64_t n = h;
    if (h == 0xffffffffu) {
        fill(12);
        n = get_be64(rbuf_.get() + rbeg_ + 4);
        hdr = 12;
    } else if (h & 0x80000000u) {
        throw_bad_frame("negative frame length");
    }
    if (n > limit)
        throw_bad_frame("frame of " + std::to_string(n) + " bytes exceeds the limit of " +
                        std::to_string(limit));
    fill(hdr + static_cast<std::size_t>(n));
    small_frames_ = n > (std::size_t(1) << 20) ? 0 : small_frames_ + 1;
    const char* p = rbuf_.get() + rbeg_ + hdr;
    rbeg_ += hdr + static_cast<std::size_t>(n);
    return {p, static_cast<std::size_t>(n)};
}

MULTIPROCESSING_DECL std::pair<const char*, std::size_t> Connection::recv_staged(std::size_t limit) {
    using multiprocessing::detail::block_kind;
    fill(8);
    std::uint32_t count = get_be32(rbuf_.get() + rbeg_ + 4);
    if (count == 0 || count > max_staged) throw_bad_frame("bad staged block count");
    std::size_t table = 8 + 17 * std::size_t(count);
    fill(table);
    struct entry {
        std::uint64_t off, n;
        block_kind kind;
    };
    std::vector<entry> es;
    es.reserve(count);
    for (std::uint32_t i = 0; i < count; ++i) {
        const char* e = rbuf_.get() + rbeg_ + 8 + 17 * std::size_t(i);
        auto k = static_cast<std::uint8_t>(e[16]);
        if (k < 1 || k > 3) throw_bad_frame("bad staged block kind");
        es.push_back({get_be64(e), get_be64(e + 8), static_cast<block_kind>(k)});
    }
    // Past the table, a failure leaves the stream in the middle of a frame:
    // the connection cannot go on (a retried read would take a block's
    // bytes for a header).
    rbeg_ += table;
    try {
        fill(4);
        std::uint32_t h = get_be32(rbuf_.get() + rbeg_);
        std::size_t hdr = 4;
        std::uint64_t n = h;
        if (h == 0xffffffffu) {
            fill(12);
            n = get_be64(rbuf_.get() + rbeg_ + 4);
            hdr = 12;
        } else if (h & 0x80000000u) {
            throw_bad_frame("negative frame length");
        }
        if (n > limit)
            throw_bad_frame("frame of " + std::to_string(n) + " bytes exceeds the limit of " +
                            std::to_string(limit));
        // In order, apart, inside the frame: the frame's own bytes are what is left.
        std::uint64_t end = 0, staged_bytes = 0;
        for (const auto& e : es) {
            if (e.n == 0 || e.off < end || e.n > n || e.off > n - e.n) throw_bad_frame("bad staged block table");
            end = e.off + e.n;
            staged_bytes += e.n;
        }
        std::size_t own = static_cast<std::size_t>(n - staged_bytes);
        fill(hdr + own);
        small_frames_ = 0;
        const char* p = rbuf_.get() + rbeg_ + hdr;
        rbeg_ += hdr + own;
        auto& out = multiprocessing::detail::received_blocks();
        out.lo = p;
        out.hi = p + own;
        std::uint64_t before = 0;
        for (const auto& e : es) {
            multiprocessing::detail::staged_block b{p + (e.off - before), static_cast<std::size_t>(e.n), e.kind, {}, {}, {}};
            before += e.n;
            // Room for up to 64 MiB at first, for the rest once that came: a
            // peer announcing a huge block and sending nothing makes us
            // reserve (not touch) 64 MiB, and an honest block is copied at
            // most once more.  Each new buffer is on huge pages before it is
            // first touched.
            auto grown = [&](auto& c, std::size_t k) {
                std::size_t need = c.size() + k;  // <= b.n
                if (need <= c.capacity()) return;
                std::remove_reference_t<decltype(c)> bigger;
                bigger.reserve(need <= staged_first_room ? std::min(b.n, staged_first_room) : b.n);
                multiprocessing::detail::advise_huge_pages(bigger.data(), bigger.capacity());
                bigger.insert(bigger.end(), c.begin(), c.end());
                c.swap(bigger);
            };
            auto put = [&](const char* q, std::size_t k) {
                switch (b.kind) {
                case block_kind::char_vector:
                    grown(b.chars, k);
                    b.chars.insert(b.chars.end(), q, q + k);
                    break;
                case block_kind::uchar_vector: {
                    grown(b.uchars, k);
                    auto* u = reinterpret_cast<const unsigned char*>(q);
                    b.uchars.insert(b.uchars.end(), u, u + k);
                    break;
                }
                default:
                    grown(b.str, k);
                    b.str.append(q, k);
                }
            };
            std::size_t left = b.n;
            std::size_t k = std::min(left, rend_ - rbeg_);  // read ahead into the buffer already
            put(rbuf_.get() + rbeg_, k);
            rbeg_ += k;
            left -= k;
            while (left) {
                std::size_t got = shm_->read_with(left, put);
                left -= got;
                if (!got) await_shared(true);
            }
            out.blocks.push_back(std::move(b));
        }
        detail::staged_frames_received().fetch_add(1, std::memory_order_relaxed);
        return {p, own};
    } catch (...) {
        multiprocessing::detail::received_blocks().clear();
        broken_.store(true, std::memory_order_relaxed);
        if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
        try {
            throw;
        } catch (const detail::truncated_frame&) {
            throw;
        } catch (const EOFError&) {
            throw detail::truncated_frame("connection closed by peer in the middle of a frame");
        }
    }
}

MULTIPROCESSING_DECL void Connection::put_be32(char* p, std::uint32_t v) {
    for (int i = 3; i >= 0; --i) { p[i] = static_cast<char>(v & 0xff); v >>= 8; }
}

MULTIPROCESSING_DECL void Connection::put_be64(char* p, std::uint64_t v) {
    for (int i = 7; i >= 0; --i) { p[i] = static_cast<char>(v & 0xff); v >>= 8; }
}

MULTIPROCESSING_DECL std::uint32_t Connection::get_be32(const char* p) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
}

MULTIPROCESSING_DECL std::uint64_t Connection::get_be64(const char* p) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
}

MULTIPROCESSING_DECL void Connection::throw_bad_frame(const std::string& why) {
        broken_.store(true, std::memory_order_relaxed);
        if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
        throw ProcessError("bad frame: " + why);
    }

MULTIPROCESSING_DECL void Connection::ensure_open() const {
    if (fd_ < 0 || broken_.load(std::memory_order_relaxed)) throw ConnectionError("connection is closed");
}

MULTIPROCESSING_DECL bool Connection::wait_readable(double timeout) const {
    ensure_open();
    if (shm_) {
        if (shm_->readable()) return true;
        std::optional<std::chrono::steady_clock::time_point> dl;
        if (timeout >= 0)
            dl = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                        std::chrono::duration<double>(timeout));
        try {
            shm_->wait_readable(dl);  // false: the peer closed, and EOF is readable
            return true;
        } catch (const multiprocessing::TimeoutError&) {
            return false;
        }
    }
    pollfd p{fd_, POLLIN, 0};
    // A signal's EINTR waits again for what is left, not the whole timeout.
    std::optional<std::chrono::steady_clock::time_point> dl;
    if (timeout >= 0)
        dl = std::chrono::steady_clock::now() +
             std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout));
    for (;;) {
        int ms = -1;
        if (dl) {
            double left = std::chrono::duration<double>(*dl - std::chrono::steady_clock::now()).count();
            ms = left <= 0 ? 0 : left > 1e6 ? 1000000000 : static_cast<int>(left * 1000.0 + 0.999);
        }
        int r = ::poll(&p, 1, ms);
        if (r >= 0) return r > 0;
        if (errno != EINTR) throw detail::sys_error("poll");
    }
}

MULTIPROCESSING_DECL double Connection::seconds_left() const {
    if (!deadline_) return -1;
    double left = std::chrono::duration<double>(*deadline_ - std::chrono::steady_clock::now()).count();
    return left > 0 ? left : 0;
}

MULTIPROCESSING_DECL void Connection::send_all(const char* p, std::size_t n) {
    ensure_open();
    if (shm_) {
        shm_->write(p, n, deadline_);
        return;
    }
    while (n) {
        // With a deadline, a peer that stops reading cannot hold us
        // in send() once its socket buffer is full.
        ssize_t w = ::send(fd_, p, n, MSG_NOSIGNAL | (deadline_ ? MSG_DONTWAIT : 0));
        if (w < 0) {
            if (errno == EINTR) continue;
            if (deadline_ && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                pollfd q{fd_, POLLOUT, 0};
                double left = seconds_left();
                if (left <= 0 || ::poll(&q, 1, static_cast<int>(left * 1000.0 + 0.999)) == 0)
                    throw multiprocessing::TimeoutError("timed out sending to the peer");
                continue;
            }
            int e = errno;
            throw ConnectionError(std::string("send failed: ") + std::strerror(e));
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}

MULTIPROCESSING_DECL void Connection::fill(std::size_t need) {
    if (rend_ - rbeg_ >= need) return;
    ensure_open();
    if (rbeg_ + need > rcap_) {
        std::size_t have = rend_ - rbeg_;
        if (rbeg_ && have) std::memmove(rbuf_.get(), rbuf_.get() + rbeg_, have);
        rbeg_ = 0;
        rend_ = have;
        if (rcap_ < 64 * 1024) grow(64 * 1024);
    }
    if (shm_) {
        fill_shared(need);
        return;
    }
    if (spin_us_ > 0 && should_spin()) {
        bool ok = try_spin(need);
        spin_score_ += ok ? (16 - spin_score_ / 16) : -(spin_score_ / 4);  // moving average
        if (ok) return;
    }
    while (rend_ - rbeg_ < need) {
        // Grow only as bytes arrive: a peer announcing a huge frame and
        // sending nothing must not make us allocate it.
        if (rend_ == rcap_) grow(std::min(rbeg_ + need, rcap_ * 2));
        if (timeout_ && !wait_readable(*timeout_))
            throw multiprocessing::TimeoutError("timed out waiting for the peer");
        if (deadline_ && !wait_readable(seconds_left()))
            throw multiprocessing::TimeoutError("timed out waiting for the peer");
        ssize_t r = ::recv(fd_, rbuf_.get() + rend_, rcap_ - rend_, 0);
        if (r > 0) { rend_ += static_cast<std::size_t>(r); continue; }
        if (r == 0) {
            if (rend_ > rbeg_)
                throw detail::truncated_frame("connection closed by peer in the middle of a frame");
            throw EOFError("connection closed by peer");
        }
        if (errno == EINTR) continue;
        int e = errno;
        throw ConnectionError(std::string("recv failed: ") + std::strerror(e));
    }
}

MULTIPROCESSING_DECL void Connection::fill_shared(std::size_t need) {
    while (rend_ - rbeg_ < need) {
        if (rend_ == rcap_) grow(std::min(rbeg_ + need, rcap_ * 2));
        std::size_t k = shm_->read_some(rbuf_.get() + rend_, rcap_ - rend_);
        if (k) {
            rend_ += k;
            continue;
        }
        await_shared(rend_ > rbeg_);
    }
}

MULTIPROCESSING_DECL void Connection::await_shared(bool mid_frame) {
    auto dl = deadline_;
    if (timeout_) {
        auto t = std::chrono::steady_clock::now() +
                 std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(*timeout_));
        if (!dl || t < *dl) dl = t;
    }
    if (!shm_->wait_readable(dl)) {
        if (mid_frame) throw detail::truncated_frame("connection closed by peer in the middle of a frame");
        throw EOFError("connection closed by peer");
    }
}

MULTIPROCESSING_DECL void Connection::receive_with_descriptor(int* fd) {
    ensure_open();
    maybe_shrink();
    rbeg_ = rend_ = 0;
    if (rcap_ < 64 * 1024) grow(64 * 1024);
    if (deadline_ && !wait_readable(seconds_left()))
        throw multiprocessing::TimeoutError("timed out waiting for the peer");
    iovec iov{rbuf_.get(), rcap_};
    alignas(cmsghdr) char ctl[CMSG_SPACE(4 * sizeof(int))];
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = sizeof ctl;
    ssize_t r;
    do r = ::recvmsg(fd_, &m, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        int e = errno;
        throw ConnectionError(std::string("recv failed: ") + std::strerror(e));
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < n; ++i) {
            int got;
            std::memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
            if (*fd < 0) *fd = got;
            else ::close(got);  // only one was asked for
        }
    }
    if (r == 0) {
        if (*fd >= 0) ::close(*fd);
        *fd = -1;
        throw EOFError("connection closed by peer");
    }
    rend_ = static_cast<std::size_t>(r);
}

MULTIPROCESSING_DECL void Connection::grow(std::size_t cap) {
    std::unique_ptr<char[]> bigger(new char[cap]);
    multiprocessing::detail::advise_huge_pages(bigger.get(), cap);
    if (rend_) std::memcpy(bigger.get(), rbuf_.get(), rend_);
    rbuf_ = std::move(bigger);
    rcap_ = cap;
}

MULTIPROCESSING_DECL bool Connection::try_spin(std::size_t need) {
    auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us_);
    do {
        ssize_t r = ::recv(fd_, rbuf_.get() + rend_, rcap_ - rend_, MSG_DONTWAIT);
        if (r > 0) {
            rend_ += static_cast<std::size_t>(r);
            if (rend_ - rbeg_ >= need) return true;
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return false;
    } while (std::chrono::steady_clock::now() < end);
    return false;
}

MULTIPROCESSING_DECL void Connection::maybe_shrink() {
    if (rcap_ > (std::size_t(4) << 20) && small_frames_ >= 16 && rend_ - rbeg_ < (64 * 1024)) {
        std::unique_ptr<char[]> small(new char[64 * 1024]);
        std::memcpy(small.get(), rbuf_.get() + rbeg_, rend_ - rbeg_);
        rend_ -= rbeg_;
        rbeg_ = 0;
        rbuf_ = std::move(small);
        rcap_ = 64 * 1024;
    }
}

}  // namespace multiprocessing::connection

namespace multiprocessing::connection {

MULTIPROCESSING_DECL Listener::Listener(const Address& address, std::optional<std::string> authkey ,
             int backlog) : authkey_(std::move(authkey)) {
    if (address.is_tcp() && (!authkey_ || authkey_->empty()))
        throw ValueError("a TCP listener needs a non-empty authkey");
    fd_ = detail::listen_fd(address, backlog, address_);
    unlink_on_close_ = address.is_unix();
}

MULTIPROCESSING_DECL Listener& Listener::operator=(Listener&& o) noexcept {
    if (this != &o) {
        close();
        fd_ = std::exchange(o.fd_, -1);
        address_ = std::move(o.address_);
        authkey_ = std::move(o.authkey_);
        unlink_on_close_ = std::exchange(o.unlink_on_close_, false);
    }
    return *this;
}

MULTIPROCESSING_DECL Connection Listener::accept_raw(std::size_t max_frame) {
    for (;;) {
        int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
            if (address_.is_tcp()) detail::tune_tcp(c);
            return Connection(c, max_frame);
        }
        if (errno == EINTR || errno == ECONNABORTED) continue;
        throw detail::sys_error("accept");
    }
}

MULTIPROCESSING_DECL Connection Listener::accept() {
    Connection c = accept_raw();
    if (authkey_) {
        c.set_deadline(std::chrono::steady_clock::now() + std::chrono::seconds(10));
        deliver_challenge(c, *authkey_);
        answer_challenge(c, *authkey_);
        c.set_deadline(std::nullopt);
    }
    return c;
}

MULTIPROCESSING_DECL void Listener::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (unlink_on_close_) ::unlink(address_.path().c_str());
    unlink_on_close_ = false;
}

MULTIPROCESSING_DECL void Listener::abandon() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    unlink_on_close_ = false;
}


MULTIPROCESSING_DECL std::vector<Waitable> wait(const std::vector<Waitable>& objects, std::optional<double> timeout) {
    if (timeout && std::isnan(*timeout)) throw ValueError("Invalid value NaN (not a number)");
    std::optional<std::chrono::steady_clock::time_point> dl;  // none: forever
    if (timeout && *timeout <= 1e9)
        dl = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                    std::chrono::duration<double>(*timeout < 0 ? 0 : *timeout));
    std::vector<pollfd> fds(objects.size());
    std::vector<bool> ready(objects.size());
    for (std::size_t i = 0; i < objects.size(); ++i) {
        int fd = objects[i].fileno();
        if (objects[i].connection() && fd < 0) throw ConnectionError("handle is closed");
        if (fd < 0) throw ValueError("Invalid file descriptor: " + std::to_string(fd));
    }
    for (;;) {
        // A Connection may have a frame buffered already, or come over
        // shared memory, which no descriptor shows: those are looked at
        // directly, and a slice of at most 1 ms is slept between looks.
        // A shared-memory one's socket still shows its peer going away
        // (not POLLIN: wake-up bytes cross it).
        bool any = false, shm = false;
        for (std::size_t i = 0; i < objects.size(); ++i) {
            const Connection* c = objects[i].connection();
            fds[i] = pollfd{objects[i].fileno(), POLLIN, 0};
            ready[i] = c && c->readable_now();
            any = any || ready[i];
            if (c && c->shared_memory()) {
                shm = true;
                fds[i].events = POLLRDHUP;
            }
        }
        int ms = -1;
        if (dl) {
            double left = std::chrono::duration<double>(*dl - std::chrono::steady_clock::now()).count();
            ms = left <= 0 ? 0 : left > 1e6 ? 1000000000 : static_cast<int>(left * 1000.0 + 0.999);
        }
        if (any) ms = 0;
        else if (shm && (ms < 0 || ms > 1)) ms = 1;
        int r = ::poll(fds.data(), static_cast<nfds_t>(fds.size()), ms);
        if (r < 0 && errno != EINTR) throw detail::sys_error("poll");
        std::vector<Waitable> out;
        for (std::size_t i = 0; i < objects.size(); ++i)
            if (ready[i] || (r > 0 && fds[i].revents != 0)) out.push_back(objects[i]);
        if (!out.empty()) return out;
        if (dl && std::chrono::steady_clock::now() >= *dl) return out;
    }
}

}  // namespace multiprocessing::connection

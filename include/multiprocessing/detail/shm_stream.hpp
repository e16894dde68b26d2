// A byte stream through shared memory, beside a connected Unix socket.
//
// Same-machine manager connections move their frames through two rings in
// one memfd segment (one ring each way) instead of the socket, so a call
// costs two memory copies and, while both sides are busy, no system call.
// The socket stays: it carried the handshake and the segment's descriptor,
// it is the doorbell that wakes a side sleeping for data, and its closing
// still tells each side that the other died.
//
// The segment has no name: it is created by the server after the client
// authenticated and reaches the client only as a descriptor passed over
// that socket, so no other process can open it.  Its size is sealed, so a
// client cannot shrink it under the server (which would fault the server).
// Each side keeps its own cursors privately and checks the peer's, so a
// peer writing garbage into the segment corrupts only its own stream.
#pragma once

#include "multiprocessing/exceptions.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <string>

namespace multiprocessing::connection::detail {

/// False if this process's environment says MP_TRANSPORT=socket: every
/// connection it makes or serves then stays on the socket (how the test
/// suite runs over both transports).
inline bool shared_memory_enabled() {
    static const bool on = [] {
        const char* t = std::getenv("MP_TRANSPORT");
        return !(t && std::string(t) == "socket");
    }();
    return on;
}

/// The segment's first page; the rings follow it.
struct shm_header {
    struct alignas(64) cursor {
        std::atomic<std::uint64_t> v;
    };
    std::uint64_t magic;
    std::uint64_t ring_bytes;
    cursor head[2];  // bytes written into ring i, by side i (0: client, 1: server)
    cursor tail[2];  // bytes of ring i read by the other side
    cursor sleeping[2];  // side i sleeps for data on the socket: a byte wakes it
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "cursors must be lock-free across processes");

class shm_stream {
public:
    using clock = std::chrono::steady_clock;
    static constexpr std::size_t header_bytes = 4096;
    static constexpr std::uint64_t magic = 0x31306d68732d706dull;  // "mp-shm01"
    /// Spin budget when the connection sets none: long enough for a peer
    /// that answers at once, far below 10 ms so an idle side sleeps.
    static constexpr int default_spin_us = 50;

    /// A new sealed segment with two rings of ring_bytes (a power of two);
    /// returns its descriptor, or -1 where memfd or sealing is missing.
    static int create(std::size_t ring_bytes) {
        int fd = static_cast<int>(::memfd_create("multiprocessing-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING));
        if (fd < 0) return -1;
        std::size_t size = header_bytes + 2 * ring_bytes;
        if (::ftruncate(fd, static_cast<off_t>(size)) != 0 ||
            ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
            ::close(fd);
            return -1;
        }
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            ::close(fd);
            return -1;
        }
        auto* h = new (p) shm_header{};
        h->magic = magic;
        h->ring_bytes = ring_bytes;
        ::munmap(p, size);
        return fd;
    }

    /// Maps the segment behind fd (closed here either way).  side 0 is the
    /// client, 1 the server; sock is the connection's socket.  Throws
    /// ConnectionError if the segment is not one create() made.
    shm_stream(int fd, int side, int sock) : side_(side), sock_(sock) {
        struct stat st {};
        bool ok = ::fstat(fd, &st) == 0 && static_cast<std::size_t>(st.st_size) > header_bytes;
        if (ok) {
            // The server sealed it; a client checks, the server made it itself.
            int seals = ::fcntl(fd, F_GET_SEALS);
            ok = seals >= 0 && (seals & F_SEAL_SHRINK);
        }
        if (ok) {
            size_ = static_cast<std::size_t>(st.st_size);
            void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (p == MAP_FAILED) ok = false;
            else base_ = static_cast<char*>(p);
        }
        ::close(fd);
        if (!ok) throw ConnectionError("cannot map the shared-memory ring");
        h_ = reinterpret_cast<shm_header*>(base_);
        cap_ = h_->ring_bytes;
        if (h_->magic != magic || cap_ == 0 || (cap_ & (cap_ - 1)) || header_bytes + 2 * cap_ != size_) {
            ::munmap(base_, size_);
            throw ConnectionError("not a shared-memory ring");
        }
        out_ = base_ + header_bytes + static_cast<std::size_t>(side_) * cap_;
        in_ = base_ + header_bytes + static_cast<std::size_t>(1 - side_) * cap_;
    }
    ~shm_stream() { ::munmap(base_, size_); }
    shm_stream(const shm_stream&) = delete;
    shm_stream& operator=(const shm_stream&) = delete;

    void set_spin(int us) { spin_us_ = us > 0 ? us : default_spin_us; }
    /// True once the peer's end of the socket is closed.
    bool peer_closed() const { return peer_closed_.load(std::memory_order_relaxed); }

    /// Bytes readable now.
    std::size_t readable() {
        std::uint64_t h = h_->head[1 - side_].v.load(std::memory_order_acquire);
        if (h < rtail_ || h - rtail_ > cap_) corrupt();
        return static_cast<std::size_t>(h - rtail_);
    }

    /// Copies up to max readable bytes into dst without waiting.
    std::size_t read_some(char* dst, std::size_t max) {
        std::size_t k = std::min(readable(), max);
        if (k == 0) return 0;
        std::size_t at = static_cast<std::size_t>(rtail_ & (cap_ - 1));
        std::size_t first = std::min(k, cap_ - at);
        std::memcpy(dst, in_ + at, first);
        if (first < k) std::memcpy(dst + first, in_, k - first);
        rtail_ += k;
        h_->tail[1 - side_].v.store(rtail_, std::memory_order_release);
        return k;
    }

    /// Writes all n bytes, waiting for room as the peer reads.  Peer gone:
    /// ConnectionError; deadline passed: TimeoutError.
    void write(const char* p, std::size_t n, const std::optional<clock::time_point>& deadline) {
        while (n) {
            // The peer's read cursor is read again only when the room last
            // seen is short: one cache miss fewer per small frame.
            std::size_t room = cap_ - static_cast<std::size_t>(whead_ - seen_tail_);
            if (room < n) room = cap_ - in_flight();
            if (room == 0) {
                wait_room(deadline);
                continue;
            }
            std::size_t k = std::min(room, n);
            std::size_t at = static_cast<std::size_t>(whead_ & (cap_ - 1));
            std::size_t first = std::min(k, cap_ - at);
            std::memcpy(out_ + at, p, first);
            if (first < k) std::memcpy(out_, p + first, k - first);
            whead_ += k;
            h_->head[side_].v.store(whead_, std::memory_order_release);
            p += k;
            n -= k;
            wake_peer();
        }
    }

    /// Waits until bytes are readable (true) or the peer has closed with
    /// none left (false).  Spins first while spinning pays, then sleeps on
    /// the socket.  deadline passed: TimeoutError.
    bool wait_readable(const std::optional<clock::time_point>& deadline) {
        if (readable()) return true;
        bool late = deadline && clock::now() >= *deadline;  // poll(0): look once, no spin
        if (!late && (score_ >= 64 || (++probe_ & 31) == 0)) {
            bool ok = spin([&] { return readable() != 0; });
            score_ += ok ? (16 - score_ / 16) : -(score_ / 4);  // moving average, 0..256
            if (ok) return true;
        }
        auto& flag = h_->sleeping[side_].v;
        for (;;) {
            flag.store(1, std::memory_order_seq_cst);
            std::atomic_thread_fence(std::memory_order_seq_cst);
            if (readable()) {
                flag.store(0, std::memory_order_relaxed);  // a doorbell may still come: harmless
                return true;
            }
            if (peer_closed_.load(std::memory_order_relaxed)) {
                flag.store(0, std::memory_order_relaxed);
                return false;
            }
            sleep_on_socket(deadline);
        }
    }

private:
    [[noreturn]] static void corrupt() { throw ConnectionError("the shared-memory ring was corrupted by the peer"); }

    std::size_t in_flight() {
        std::uint64_t t = h_->tail[side_].v.load(std::memory_order_acquire);
        if (t > whead_ || whead_ - t > cap_) corrupt();
        seen_tail_ = t;
        return static_cast<std::size_t>(whead_ - t);
    }

    // After data moved: wakes the peer if it sleeps for data.
    void wake_peer() {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        auto& f = h_->sleeping[1 - side_].v;
        if (f.load(std::memory_order_relaxed) && f.exchange(0, std::memory_order_acq_rel)) {
            char b = 0;
            (void)::send(sock_, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL);  // peer gone: its EOF tells the rest
        }
    }

    static void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }

    // Polls ready() for up to spin_us_, yielding the core between rounds so
    // a peer waiting for it can run.  A yield that took the core away (more
    // busy threads than cores) makes the rounds short: the peer then runs
    // as soon as possible, which measured 1.3-1.5x the throughput of long
    // rounds with 4 and 8 busy clients on 2 cores; a yield that returns at
    // once (the peer has a core of its own) makes them long again.
    template <class Ready>
    bool spin(Ready ready) {
        auto now = clock::now();
        auto end = now + std::chrono::microseconds(spin_us_);
        int pauses = pauses_.load(std::memory_order_relaxed);
        bool ok = false;
        do {
            for (int i = 0; i < pauses && !ok; ++i) {
                ok = ready();
                if (!ok) cpu_relax();
            }
            if (ok) break;
            ::sched_yield();
            auto after = clock::now();
            pauses = after - now > std::chrono::microseconds(2) ? 1 : std::min(pauses * 2, 64);
            now = after;
        } while (now < end);
        pauses_.store(pauses, std::memory_order_relaxed);
        return ok || ready();
    }

    // One sleep for a doorbell byte or the peer's EOF.
    void sleep_on_socket(const std::optional<clock::time_point>& deadline) {
        if (deadline) {
            // Rounded up, so the wait never ends before the deadline.
            auto us = std::chrono::duration_cast<std::chrono::microseconds>(*deadline - clock::now()).count();
            long long ms = us > 0 ? (us + 999) / 1000 : 0;
            pollfd p{sock_, POLLIN, 0};
            int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(ms, 1 << 30)));
            if (r == 0) {
                h_->sleeping[side_].v.store(0, std::memory_order_relaxed);
                throw multiprocessing::TimeoutError("timed out waiting for the peer");
            }
            if (r < 0) return;  // EINTR: look again
        }
        char b[64];
        ssize_t r = ::recv(sock_, b, sizeof b, deadline ? MSG_DONTWAIT : 0);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK))
            peer_closed_.store(true, std::memory_order_relaxed);
    }

    // The ring is full: the peer reads at its own pace (a big frame, or
    // many pipelined ones).  Spin, then back off up to 1 ms a look; the
    // socket's hang-up says the peer died.
    void wait_room(const std::optional<clock::time_point>& deadline) {
        auto has_room = [&] { return in_flight() < cap_; };
        if (spin(has_room)) return;
        long nap_us = 20;
        while (!has_room()) {
            pollfd p{sock_, POLLRDHUP, 0};
            if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) {
                peer_closed_.store(true, std::memory_order_relaxed);
                throw ConnectionError("send failed: the peer closed the connection");
            }
            if (deadline && clock::now() >= *deadline)
                throw multiprocessing::TimeoutError("timed out sending to the peer");
            timespec ts{0, nap_us * 1000};
            ::nanosleep(&ts, nullptr);
            nap_us = std::min(nap_us * 2, 1000L);
        }
    }

    int side_, sock_;
    char* base_ = nullptr;
    std::size_t size_ = 0, cap_ = 0;
    shm_header* h_ = nullptr;
    char* out_ = nullptr;
    char* in_ = nullptr;
    std::uint64_t whead_ = 0, rtail_ = 0;  // ours; the segment's copies are for the peer
    std::uint64_t seen_tail_ = 0;          // the peer's read cursor when last read (it only grows)
    int spin_us_ = default_spin_us;
    int score_ = 256;
    unsigned probe_ = 0;
    std::atomic<int> pauses_{64};  // pause rounds between yields (spin); both threads of the async channel spin
    std::atomic<bool> peer_closed_{false};  // the async channel reads and writes on two threads
};

}  // namespace multiprocessing::connection::detail

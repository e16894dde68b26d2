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
// Big writes and reads go a slice of the ring at a time, so the reader
// copies one slice out while the writer copies the next in.
#pragma once

#include "multiprocessing/detail/config.hpp"
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

/// Frames this process received with big blocks apart (staged blocks,
/// see Connection::recv_frame): lets tests see the path was taken.
inline std::atomic<std::uint64_t>& staged_frames_received() {
    static std::atomic<std::uint64_t> n{0};
    return n;
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
    static constexpr std::uint64_t magic = 0x32306d68732d706dull;  // "mp-shm02": frames may have staged blocks
    /// Spin budget when the connection sets none: long enough for a peer
    /// that answers at once, far below 10 ms so an idle side sleeps.
    static constexpr int default_spin_us = 50;

    /// A new sealed segment with two rings of ring_bytes (a power of two);
    /// returns its descriptor, or -1 where memfd or sealing is missing.
    static int create(std::size_t ring_bytes);

    /// Maps the segment behind fd (closed here either way).  side 0 is the
    /// client, 1 the server; sock is the connection's socket.  Throws
    /// ConnectionError if the segment is not one create() made.
    shm_stream(int fd, int side, int sock);
    ~shm_stream() { ::munmap(base_, size_); }
    shm_stream(const shm_stream&) = delete;
    shm_stream& operator=(const shm_stream&) = delete;

    void set_spin(int us) { spin_us_ = us > 0 ? us : default_spin_us; }
    /// True once the peer's end of the socket is closed.
    bool peer_closed() const { return peer_closed_.load(std::memory_order_relaxed); }

    /// Bytes readable now.
    std::size_t readable();

    /// Copies up to max readable bytes into dst without waiting.
    std::size_t read_some(char* dst, std::size_t max);

    /// Hands up to max readable bytes to sink(p, n), in at most two pieces,
    /// without waiting; returns how many.  sink must copy them: the peer may
    /// write there once this returns.
    template <class Sink>
    std::size_t read_with(std::size_t max, Sink&& sink) {
        std::size_t k = std::min({readable(), max, cap_ / 8});  // a piece at a time, as write() publishes
        if (k == 0) return 0;
        std::size_t at = static_cast<std::size_t>(rtail_ & (cap_ - 1));
        std::size_t first = std::min(k, cap_ - at);
        sink(in_ + at, first);
        if (first < k) sink(in_, k - first);
        rtail_ += k;
        h_->tail[1 - side_].v.store(rtail_, std::memory_order_release);
        return k;
    }

    /// Writes all n bytes, waiting for room as the peer reads.  Peer gone:
    /// ConnectionError; deadline passed: TimeoutError.
    void write(const char* p, std::size_t n, const std::optional<clock::time_point>& deadline);

    /// Waits until bytes are readable (true) or the peer has closed with
    /// none left (false).  Spins first while spinning pays, then sleeps on
    /// the socket.  deadline passed: TimeoutError.
    bool wait_readable(const std::optional<clock::time_point>& deadline);

private:
    [[noreturn]] static void corrupt() { throw ConnectionError("the shared-memory ring was corrupted by the peer"); }

    std::size_t in_flight();

    // After data moved: wakes the peer if it sleeps for data.
    void wake_peer();

    static void cpu_relax();

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
    void sleep_on_socket(const std::optional<clock::time_point>& deadline);

    // The ring is full: the peer reads at its own pace (a big frame, or
    // many pipelined ones).  Spin, then back off up to 1 ms a look; the
    // socket's hang-up says the peer died.
    void wait_room(const std::optional<clock::time_point>& deadline);

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

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/shm_stream.ipp"
#endif

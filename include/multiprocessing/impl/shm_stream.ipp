// Out-of-line members of the classes in <multiprocessing/detail/shm_stream.hpp>: inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION
// (so other files neither parse nor instantiate them).
#pragma once

#include "multiprocessing/detail/shm_stream.hpp"

namespace multiprocessing::connection::detail {

MULTIPROCESSING_DECL int shm_stream::create(std::size_t ring_bytes) {
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

MULTIPROCESSING_DECL shm_stream::shm_stream(int fd, int side, int sock) : side_(side), sock_(sock) {
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

MULTIPROCESSING_DECL std::size_t shm_stream::readable() {
    std::uint64_t h = h_->head[1 - side_].v.load(std::memory_order_acquire);
    if (h < rtail_ || h - rtail_ > cap_) corrupt();
    return static_cast<std::size_t>(h - rtail_);
}

MULTIPROCESSING_DECL std::size_t shm_stream::read_some(char* dst, std::size_t max) {
    return read_with(max, [&](const char* p, std::size_t n) {
        std::memcpy(dst, p, n);
        dst += n;
    });
}

MULTIPROCESSING_DECL void shm_stream::write(const char* p, std::size_t n, const std::optional<clock::time_point>& deadline) {
    while (n) {
        // The peer's read cursor is read again only when the room last
        // seen is short: one cache miss fewer per small frame.
        std::size_t room = cap_ - static_cast<std::size_t>(whead_ - seen_tail_);
        if (room < n) room = cap_ - in_flight();
        if (room == 0) {
            wait_room(deadline);
            continue;
        }
        std::size_t k = std::min({room, n, cap_ / 8});  // a slice: the reader copies it out meanwhile
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

MULTIPROCESSING_DECL bool shm_stream::wait_readable(const std::optional<clock::time_point>& deadline) {
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

MULTIPROCESSING_DECL std::size_t shm_stream::in_flight() {
    std::uint64_t t = h_->tail[side_].v.load(std::memory_order_acquire);
    if (t > whead_ || whead_ - t > cap_) corrupt();
    seen_tail_ = t;
    return static_cast<std::size_t>(whead_ - t);
}

MULTIPROCESSING_DECL void shm_stream::wake_peer() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    auto& f = h_->sleeping[1 - side_].v;
    if (f.load(std::memory_order_relaxed) && f.exchange(0, std::memory_order_acq_rel)) {
        char b = 0;
        (void)::send(sock_, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL);  // peer gone: its EOF tells the rest
    }
}

MULTIPROCESSING_DECL void shm_stream::cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

MULTIPROCESSING_DECL void shm_stream::sleep_on_socket(const std::optional<clock::time_point>& deadline) {
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

MULTIPROCESSING_DECL void shm_stream::wait_room(const std::optional<clock::time_point>& deadline) {
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

}  // namespace multiprocessing::connection::detail

// libFuzzer target: frame decoding (Connection::recv_frame / recv_bytes).
// The first input byte picks the frame limit (bits 0-1) and the transport
// (bit 2: the shared-memory ring instead of the socket; bit 3 with it: the
// peer also overwrites its write cursor with the input's last 8 bytes, as a
// client scribbling on the segment would); the rest is the peer's stream.
#include "common.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace conn = multiprocessing::connection;

volatile char sink;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    if (const char* dir = std::getenv("MP_FUZZ_WRITE_SEEDS")) {
        fuzz::write_seed(dir, "empty_frame", std::string(1, '\0') + fuzz::be32(0));
        fuzz::write_seed(dir, "two_frames", std::string(1, '\1') + fuzz::be32(3) + "abc" + fuzz::be32(1) + "z");
        fuzz::write_seed(dir, "long_form", std::string(1, '\2') + fuzz::be32(0xffffffffu) +
                                               std::string("\0\0\0\0\0\0\0\x05", 8) + "hello");
        fuzz::write_seed(dir, "truncated", std::string(1, '\1') + fuzz::be32(100) + "short");
        fuzz::write_seed(dir, "negative", std::string(1, '\1') + fuzz::be32(0x80000001u));
        fuzz::write_seed(dir, "shm_two_frames", std::string(1, '\5') + fuzz::be32(3) + "abc" + fuzz::be32(1) + "z");
        fuzz::write_seed(dir, "shm_truncated", std::string(1, '\5') + fuzz::be32(100) + "short");
        fuzz::write_seed(dir, "shm_cursor_far", std::string(1, '\15') + fuzz::be32(3) + "abc" +
                                                    std::string("\0\0\0\0\1\0\0\0", 8));
        fuzz::write_seed(dir, "shm_cursor_short", std::string(1, '\15') + fuzz::be32(3) + "abc" +
                                                      std::string("\2\0\0\0\0\0\0\0", 8));
        std::exit(0);
    }
    return 0;
}

// The stream written into a 64 KiB ring by a peer that then closes.
static std::pair<conn::Connection, int> shm_fed(const std::uint8_t* data, std::size_t n, bool scribble) {
    using conn::detail::shm_stream;
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
    int seg = shm_stream::create(1u << 16);
    if (seg < 0) std::abort();
    int mine = ::dup(seg);
    conn::Connection c(sv[0]), peer(sv[1]);
    peer.use_shared_memory(::dup(seg), 1);
    c.use_shared_memory(seg, 0);
    peer.send_raw(reinterpret_cast<const char*>(data), std::min<std::size_t>(n, 1u << 16));  // fits: never waits
    if (scribble && n >= 8) {
        void* p = ::mmap(nullptr, shm_stream::header_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, mine, 0);
        if (p == MAP_FAILED) std::abort();
        std::uint64_t v;
        std::memcpy(&v, data + n - 8, sizeof v);
        static_cast<conn::detail::shm_header*>(p)->head[1].v.store(v);
        ::munmap(p, shm_stream::header_bytes);
    }
    ::close(mine);
    peer.close();
    c.set_timeout(1.0);
    return {std::move(c), ::dup(sv[0])};  // the caller closes it, as for fuzz::fed
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1 || size > 65536) return 0;
    static const std::size_t limits[4] = {conn::handshake_max_frame, 4096, std::size_t(1) << 20,
                                          conn::default_max_frame};
    std::size_t limit = limits[data[0] & 3];
    auto [c, peer] = (data[0] & 4) ? shm_fed(data + 1, size - 1, (data[0] & 8) != 0) : fuzz::fed(data + 1, size - 1);
    try {
        for (int i = 0; i < 1000; ++i) {
            auto f = c.recv_frame(limit);
            if (f.second > limit) std::abort();  // the limit must hold
            char x = 0;
            for (std::size_t k = 0; k < f.second; ++k) x = static_cast<char>(x ^ f.first[k]);  // every byte readable
            sink = x;
        }
    } catch (const std::exception&) {
        // EOFError, bad frame, timeout: all fine; crashes and leaks are not
    }
    ::close(peer);
    return 0;
}

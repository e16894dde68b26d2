// libFuzzer target: frame decoding (Connection::recv_frame / recv_bytes).
// The first input byte picks the frame limit; the rest is the peer's stream.
#include "common.hpp"

#include <cstdlib>

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
        std::exit(0);
    }
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1 || size > 65536) return 0;
    static const std::size_t limits[4] = {conn::handshake_max_frame, 4096, std::size_t(1) << 20,
                                          conn::default_max_frame};
    std::size_t limit = limits[data[0] & 3];
    auto [c, peer] = fuzz::fed(data + 1, size - 1);
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

// Shared by the libFuzzer targets: feed bytes to a Connection through a
// socketpair, so the real recv path (fill, frame limits) is what is fuzzed.
#pragma once

#include <multiprocessing.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>

namespace fuzz {

/// A Connection whose peer has written `data` and then shut down writing.
/// Returns {connection, peer fd}; close the peer when done.  Inputs must fit
/// the socket buffer, so the targets cap their length.
inline std::pair<multiprocessing::connection::Connection, int> fed(const std::uint8_t* data, std::size_t n) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
    int big = 1 << 20;
    ::setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    ::setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    std::size_t off = 0;
    while (off < n) {
        ssize_t w = ::send(sv[1], data + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w <= 0) break;  // buffer full: fuzz what fit
        off += static_cast<std::size_t>(w);
    }
    ::shutdown(sv[1], SHUT_WR);
    multiprocessing::connection::Connection c(sv[0]);
    c.set_timeout(1.0);  // never wait on a peer that has nothing more to say
    return {std::move(c), sv[1]};
}

inline std::string be32(std::uint32_t v) {
    std::string s(4, '\0');
    for (int i = 3; i >= 0; --i) { s[i] = static_cast<char>(v & 0xff); v >>= 8; }
    return s;
}

/// Writes one seed file (used by the targets' MP_FUZZ_WRITE_SEEDS mode).
inline void write_seed(const std::string& dir, const std::string& name, const std::string& bytes) {
    std::string p = dir + "/" + name;
    if (FILE* f = std::fopen(p.c_str(), "wb")) {
        std::fwrite(bytes.data(), 1, bytes.size(), f);
        std::fclose(f);
    }
}

}  // namespace fuzz

// Random bytes for authkeys, challenges and session ids.
#pragma once

#include "multiprocessing/exceptions.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>

namespace multiprocessing::detail {

/// n bytes from the kernel's generator (getrandom(2)), not OpenSSL's
/// RAND_bytes: a forked child needs them at once (its session id, its
/// handshakes), and OpenSSL's generator has a lock that a parent thread may
/// hold at the fork, leaving the child hung.
inline std::string random_bytes(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t got = 0; got < n;) {
        ssize_t k = ::getrandom(&s[got], n - got, 0);
        if (k < 0) {
            if (errno == EINTR) continue;
            throw ProcessError(std::string("getrandom failed: ") + std::strerror(errno));
        }
        got += static_cast<std::size_t>(k);
    }
    return s;
}

}  // namespace multiprocessing::detail

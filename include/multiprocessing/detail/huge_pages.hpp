// Transparent huge pages for big buffers the library fills at once.
//
// A fresh 64 MB buffer costs about 28 ms to fill here, four times a memcpy
// into memory already mapped: 16,384 page faults, each zeroing a page and
// charging it to the memory cgroup.  Backed by 2 MB pages it costs about
// 8 ms.  madvise takes the address-space lock for writing, a few µs, once
// per buffer of 32 MB or more.  The kernel here gives huge pages only where asked
// (transparent_hugepage=madvise), so the buffers a frame is decoded into,
// serialized into or received into ask for them.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace multiprocessing::detail {

/// Smaller buffers keep 4 KB pages.  glibc may serve a block below 32 MB
/// from its heap (its mmap threshold rises up to 32 MB as big blocks are
/// freed), and advice there would outlive the block; a bigger one always
/// has a mapping of its own, which dies with it.
inline constexpr std::size_t huge_page_threshold = std::size_t(32) << 20;

/// Asks for huge pages over the whole 2 MB pages inside [p, p + n), before
/// they are first touched, if n reaches huge_page_threshold.  Only for
/// memory from malloc/new (not a user's allocator).  Advice only: where
/// refused, nothing changes.
inline void advise_huge_pages(const void* p, std::size_t n) noexcept {
#if defined(MADV_HUGEPAGE)
    if (n < huge_page_threshold) return;
    constexpr std::uintptr_t page = std::uintptr_t(2) << 20;
    std::uintptr_t b = (reinterpret_cast<std::uintptr_t>(p) + page - 1) & ~(page - 1);
    std::uintptr_t e = (reinterpret_cast<std::uintptr_t>(p) + n) & ~(page - 1);
    if (e > b) (void)::madvise(reinterpret_cast<void*>(b), e - b, MADV_HUGEPAGE);
#else
    (void)p;
    (void)n;
#endif
}

/// s = [p, p + n), a big string on huge pages (see advise_huge_pages).
inline void assign_string(std::string& s, const char* p, std::size_t n) {
    if (n >= huge_page_threshold && s.capacity() < n) {
        std::string fresh;
        fresh.reserve(n);
        advise_huge_pages(fresh.data(), n);
        fresh.assign(p, n);
        s.swap(fresh);
        return;
    }
    s.assign(p, n);
}

}  // namespace multiprocessing::detail

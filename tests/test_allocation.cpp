// Issue 13, item 4: what a server allocates for a frame with a forged
// element count.  Counts every allocation made while one request body is
// decoded (this program replaces operator new), for each container adapter,
// with the count set to the frame's size and the rest of the frame zeros:
// the most elements a forger can make the frame actually hold.
#include <multiprocessing.hpp>
#include <multiprocessing/detail/pickle.hpp>

#include <catch2/catch.hpp>

#include <malloc.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <list>
#include <map>
#include <new>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace {
std::atomic<long long> live_bytes{0}, peak_bytes{0};
std::atomic<bool> counting{false};
std::string last_error;
}  // namespace

// A sanitizer's runtime owns operator new (TSan's cannot even be
// replaced), so under one this program counts nothing and the test says so.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MP_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MP_SANITIZED 1
#endif
#endif

#ifndef MP_SANITIZED
// Sizes come from malloc_usable_size, so a block from another allocation
// function (nothrow, aligned, a sanitizer's) is still freed correctly.
void* operator new(std::size_t n) {
    void* p = std::malloc(n ? n : 1);
    if (!p) throw std::bad_alloc();
    if (counting.load(std::memory_order_relaxed)) {
        long long now = live_bytes += static_cast<long long>(::malloc_usable_size(p));
        long long peak = peak_bytes.load();
        while (now > peak && !peak_bytes.compare_exchange_weak(peak, now)) {
        }
    }
    return p;
}
void operator delete(void* p) noexcept {
    if (!p) return;
    if (counting.load(std::memory_order_relaxed)) live_bytes -= static_cast<long long>(::malloc_usable_size(p));
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
void* operator new[](std::size_t n) { return operator new(n); }
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { operator delete(p); }
#endif

namespace mp = multiprocessing;
namespace md = multiprocessing::managers::detail;

namespace {

constexpr std::size_t frame_bytes = 1 << 20;

template <class T>
std::vector<char> encoded(const T& v) {
    std::vector<char> out;
    mp::detail::vector_sink sink(out);
    mp::detail::oarchive oa(sink);
    oa << v;
    return out;
}

// An empty T as the codec writes it, then the count (and, for unordered
// containers, the bucket count) forged to about the frame's size, then
// zeros.  The count is where encodings of one and two elements differ.
template <class T>
std::vector<char> forged(bool unordered, const typename T::value_type& a, const typename T::value_type& b) {
    T one{a}, two{a, b};
    auto e1 = encoded(one), e2 = encoded(two);
    std::size_t at = 0;
    while (at < e1.size() && e1[at] == e2[at]) ++at;
    auto out = encoded(T{});
    REQUIRE(at + 8 <= out.size());
    std::uint64_t n = frame_bytes - 64;  // no more than the bytes left, so it passes the count check
    std::memcpy(out.data() + at, &n, 8);
    if (unordered) std::memcpy(out.data() + at + 8, &n, 8);
    out.resize(frame_bytes, '\0');
    return out;
}

// Peak bytes allocated while decoding the body as a T, per frame byte.
template <class T>
double amplification(bool unordered = false, typename T::value_type a = {}, typename T::value_type b = {}) {
    auto body = forged<T>(unordered, a, b);
    live_bytes = 0;
    peak_bytes = 0;
    counting = true;
    try {
        std::tuple<T> args;
        md::load_args(body.data(), body.size(), args);
    } catch (const std::exception& e) {
        // refused or truncated: what counts is what it allocated first
        last_error = e.what();
    }
    counting = false;
    return static_cast<double>(peak_bytes.load()) / static_cast<double>(body.size());
}

void row(const char* name, double ratio) {
    std::printf("[allocation] %-40s %7.2f bytes allocated per frame byte (%s)\n", name, ratio, last_error.c_str());
    last_error.clear();
}

}  // namespace

TEST_CASE("a forged element count never allocates ahead of the data", "[allocation]") {
#ifdef MP_SANITIZED
    WARN("allocations are not counted under a sanitizer");
    return;
#endif
    // Elements the frame really holds are decoded; nothing is sized to the
    // declared count.  Bitwise vectors are allocated only once their bytes
    // are known to be in the frame.  The ratio left is the decoded size of
    // what the zeros really encode (an empty string is 8 bytes on the wire
    // and 32 in memory), never the count.
    double r;
    r = amplification<std::vector<int>>(); row("vector<int>", r); CHECK(r <= 1.1);
    r = amplification<std::vector<double>>(); row("vector<double>", r); CHECK(r <= 1.1);
    r = amplification<std::vector<char>>(); row("vector<char>", r); CHECK(r <= 1.1);
    r = amplification<std::vector<bool>>(); row("vector<bool>", r); CHECK(r <= 1.1);
    r = amplification<std::string>(false, 'a', 'b'); row("string", r); CHECK(r <= 1.1);
    // 8 wire bytes (length 0) -> 32 bytes each, plus vector growth (1.5x)
    r = amplification<std::vector<std::string>>(); row("vector<string>", r); CHECK(r <= 4 * 1.6);
    r = amplification<std::deque<std::string>>(); row("deque<string>", r); CHECK(r <= 4 * 1.5 + 0.5);
    r = amplification<std::list<std::string>>(); row("list<string>", r); CHECK(r <= 7.5);  // a 48-byte node (56 with malloc's header) per 8 wire bytes
    r = amplification<std::vector<std::vector<int>>>(); row("vector<vector<int>>", r); CHECK(r <= 3 * 1.6);
    r = amplification<std::set<int>>(false, 1, 2); row("set<int>", r); CHECK(r <= 12.5);
    r = amplification<std::map<int, int>>(false, {1, 1}, {2, 2}); row("map<int, int>", r); CHECK(r <= 6.5);
    r = amplification<std::unordered_set<int>>(true, 1, 2); row("unordered_set<int>", r); CHECK(r <= 12.5);
    r = amplification<std::unordered_map<int, int>>(true, {1, 1}, {2, 2}); row("unordered_map<int, int>", r); CHECK(r <= 6.5);
    r = amplification<std::vector<std::pair<int, int>>>(); row("vector<pair<int, int>>", r); CHECK(r <= 1.1);
    r = amplification<std::vector<std::optional<int>>>(); row("vector<optional<int>>", r);
    r = amplification<std::vector<std::tuple<int, std::string>>>(); row("vector<tuple<int, string>>", r);
    r = amplification<std::vector<std::variant<int, std::string>>>(); row("vector<variant<int, string>>", r);
    // object: a 4-byte tag on the wire (None) and sizeof(object) in memory
    r = amplification<std::vector<mp::object>>(); row("vector<object>", r);
    CHECK(r <= static_cast<double>(sizeof(mp::object)) / 4 * 1.6);
    std::printf("[allocation] sizeof(object) = %zu\n", sizeof(mp::object));
}

namespace {

// Peak bytes allocated while the pickle reader reads `data` (and builds the
// tree it returns), per input byte.
double pickle_amplification(const std::string& data) {
    namespace pk = multiprocessing::detail::pickle;
    live_bytes = 0;
    peak_bytes = 0;
    counting = true;
    try {
        pk::value v = pk::loads(data);
    } catch (const std::exception& e) {
        last_error = e.what();
    }
    counting = false;
    return static_cast<double>(peak_bytes.load()) / static_cast<double>(data.size());
}

std::string pickle_of(const std::string& body) { return std::string("\x80\x04(", 3) + body + "t."; }

std::string repeat(const std::string& s, std::size_t n) {
    std::string out;
    out.reserve(s.size() * n);
    for (std::size_t k = 0; k < n; ++k) out += s;
    return out;
}

}  // namespace

TEST_CASE("a pickle never makes the reader allocate more than max_expansion times its size", "[allocation][pickle]") {
#ifdef MP_SANITIZED
    WARN("allocations are not counted under a sanitizer");
    return;
#endif
    namespace pk = multiprocessing::detail::pickle;
    const std::size_t n = 1 << 20;
    // The limit (160 per byte) covers what the reader counts; its stack of
    // indices (8 bytes per pushed item) comes on top.
    const double bound = static_cast<double>(pk::limits{}.max_expansion) + 8 + 65536.0 * 2 / n;
    double r;
    // The shapes CPython writes at 1-3 bytes an item.
    r = pickle_amplification(pickle_of(repeat("N", n))); row("pickle: tuple of None", r); CHECK(r <= bound);
    r = pickle_amplification(pickle_of(repeat(")", n))); row("pickle: tuple of ()", r); CHECK(r <= bound);
    r = pickle_amplification(pickle_of(repeat("K\x07", n))); row("pickle: tuple of small ints", r); CHECK(r <= bound);
    r = pickle_amplification(pickle_of(repeat("]\x94", n))); row("pickle: tuple of [] (memoized)", r); CHECK(r <= bound);
    r = pickle_amplification(pickle_of(repeat("]", n))); row("pickle: tuple of [] (not memoized)", r); CHECK(r <= bound);
    r = pickle_amplification(pickle_of(repeat(std::string("\x8c\x00", 2), n))); row("pickle: tuple of ''", r); CHECK(r <= bound);
    // References to one memoized value: each is a copy in the tree.
    r = pickle_amplification(pickle_of("]\x94" + repeat(std::string("h\x00", 2), n)));
    row("pickle: tuple of one [] by reference", r); CHECK(r <= bound);
    r = pickle_amplification(pickle_of("\x8c\xff" + std::string(255, 's') + "\x94" + repeat(std::string("h\x00", 2), n)));
    CHECK_THAT(last_error, Catch::Contains("expand beyond the limit"));  // 255 bytes per 2 read
    row("pickle: one 255-byte str by reference", r); CHECK(r <= bound);
    // A declared length beyond the data allocates nothing for it.
    r = pickle_amplification(std::string("\x80\x04\x8e", 3) + std::string("\xff\xff\xff\xff\xff\xff\xff\x0f", 8) +
                             std::string(n, 'x') + ".");
    row("pickle: BINBYTES8 declaring 2**60 bytes", r); CHECK(r <= 0.01);
}

// Live iteration (one call per element, as CPython) against the one-call
// snapshot, over a 10k-element list and dict.  Prints the round trips this
// process sent (counted by send() calls through an LD_PRELOAD-free
// interposer: the frames the client wrote) and the time per element.
#include <multiprocessing.hpp>

#include <chrono>
#include <cstdio>

namespace mp = multiprocessing;
using clk = std::chrono::steady_clock;

// Every request is one frame sent with one send(); count them.
static long frames_sent = 0;
extern "C" ssize_t send(int fd, const void* buf, size_t n, int flags) {
    ++frames_sent;
    return ::sendto(fd, buf, n, flags, nullptr, 0);
}

template <class F>
static void row(const char* what, std::size_t n, F&& f) {
    long before = frames_sent;
    auto t0 = clk::now();
    long sum = f();
    double ms = std::chrono::duration<double, std::milli>(clk::now() - t0).count();
    long trips = frames_sent - before;
    std::printf("%-34s %8.2f ms  %6ld round trips  %6.3f per element  %6.2f us per element  (sum %ld)\n", what, ms,
                trips, double(trips) / double(n), ms * 1000.0 / double(n), sum);
}

int main() {
    const int n = 10000;
    auto manager = mp::Manager();
    std::vector<int> v(n);
    for (int i = 0; i < n; ++i) v[i] = i;
    auto l = manager.list<int>(v);
    auto lo = manager.list(mp::range(n));
    std::vector<std::pair<int, int>> kv;
    for (int i = 0; i < n; ++i) kv.emplace_back(i, i);
    auto d = manager.dict<int, int>(kv);
    for (int rep = 0; rep < 2; ++rep) {
        std::printf("-- run %d (10k elements)\n", rep + 1);
        row("list<int>: for (x : l)  [live]", n, [&] { long s = 0; for (int x : l) s += x; return s; });
        row("list<int>: for (x : l.copy())", n, [&] { long s = 0; for (int x : l.copy()) s += x; return s; });
        row("list<object>: for (x : l)  [live]", n, [&] { long s = 0; for (auto& x : lo) s += x.as_int(); return s; });
        row("list<object>: for (x : l.copy())", n, [&] { long s = 0; for (auto& x : lo.copy()) s += x.as_int(); return s; });
        row("dict<int,int>: for (k : d)  [live]", n, [&] { long s = 0; for (int k : d) s += k; return s; });
        row("dict<int,int>: for (k : d.keys())", n, [&] { long s = 0; for (int k : d.keys()) s += k; return s; });
    }
}

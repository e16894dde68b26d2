// manager.Pool(): apply round trip and map throughput of 10k small items.
// Compare with bench/bench_pool_cpython.py (same work on CPython's manager Pool).
#include <multiprocessing.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace mp = multiprocessing;

static int sqr(int x) { return x * x; }
MP_REGISTER_FUNCTION(sqr)

static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

int main() {
    using clk = std::chrono::steady_clock;
    auto manager = mp::Manager();
    auto pool = manager.Pool(4);
    for (int i = 0; i < 200; ++i) pool.apply(sqr, i);  // warm up
    std::vector<double> rt;
    for (int i = 0; i < 2000; ++i) {
        auto t0 = clk::now();
        pool.apply(sqr, i);
        rt.push_back(std::chrono::duration<double, std::micro>(clk::now() - t0).count());
    }
    std::vector<int> items(10000);
    for (int i = 0; i < 10000; ++i) items[i] = i;
    std::vector<double> maps, imaps;
    for (int r = 0; r < 5; ++r) {
        auto t0 = clk::now();
        auto v = pool.map(sqr, items);
        maps.push_back(std::chrono::duration<double, std::milli>(clk::now() - t0).count());
        if (v.size() != items.size() || v[9999] != 9999 * 9999) return 1;
    }
    for (int r = 0; r < 3; ++r) {
        auto t0 = clk::now();
        long long sum = 0;
        for (int x : pool.imap(sqr, items, 100)) sum += x;
        imaps.push_back(std::chrono::duration<double, std::milli>(clk::now() - t0).count());
        if (sum == 0) return 1;
    }
    std::printf("apply round trip (us, median of 2000)        %.1f\n", median(rt));
    std::printf("map 10k ints (ms, median of 5)                %.2f  (%.0f items/s)\n", median(maps),
                10000 / (median(maps) / 1000));
    std::printf("imap 10k ints, chunksize 100 (ms, median of 3) %.2f\n", median(imaps));
}

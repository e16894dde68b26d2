// manager.Pool(): Python's
//
//   def sqr(x): return x * x
//   with Manager() as manager:
//       pool = manager.Pool(4)
//       print(pool.apply(sqr, (7,)))
//       print(pool.map(sqr, range(10)))
//       print(sorted(pool.imap_unordered(sqr, range(5))))
//       r = pool.apply_async(sqr, (8,)); print(r.get(timeout=5))
//
// prints 49, [0, 1, 4, ..., 81], [0, 1, 4, 9, 16] and 64, here as well.
#include <multiprocessing.hpp>

#include <algorithm>
#include <iostream>
#include <vector>

namespace mp = multiprocessing;

int sqr(int x) { return x * x; }
MP_REGISTER_FUNCTION(sqr)  // the name "sqr", known to the server and its workers

static std::vector<int> range(int n) {
    std::vector<int> v(n);
    for (int i = 0; i < n; ++i) v[i] = i;
    return v;
}

static void print(const std::vector<int>& v) {
    std::cout << '[';
    for (std::size_t i = 0; i < v.size(); ++i) std::cout << (i ? ", " : "") << v[i];
    std::cout << "]\n";
}

int main() {
    auto manager = mp::Manager();
    auto pool = manager.Pool(4);
    std::cout << pool.apply(sqr, 7) << '\n';
    print(pool.map(sqr, range(10)));
    auto it = pool.imap_unordered(sqr, range(5));
    std::vector<int> got(it.begin(), it.end());
    std::sort(got.begin(), got.end());
    print(got);
    auto r = pool.apply_async(sqr, 8);
    std::cout << r.get(5) << '\n';
}

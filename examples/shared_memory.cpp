// Four processes fill the quarters of one 64 MB array that lives in a
// SharedMemoryManager segment; the parent checks the sum.  No element is
// copied through a socket: each worker attaches to the segment by name.
//
// Python equivalent:
//   with SharedMemoryManager() as smm:
//       shm = smm.SharedMemory(size=64 * 2**20)
//       a = np.ndarray((n,), dtype=np.uint64, buffer=shm.buf)
//       workers = [Process(target=fill, args=(shm.name, w)) for w in range(4)]
//       ...
#include <multiprocessing.hpp>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace mp = multiprocessing;

constexpr std::size_t n = (64u << 20) / sizeof(std::uint64_t);  // 8,388,608 elements

// A worker: attach by name and write a[i] = i over one quarter.
void fill(const std::string& name, std::size_t quarter) {
    mp::shared_memory::SharedMemory shm(name);
    auto* a = reinterpret_cast<std::uint64_t*>(shm.buf().data());
    for (std::size_t i = quarter * n / 4; i < (quarter + 1) * n / 4; ++i) a[i] = i;
}

int main() {
    mp::managers::SharedMemoryManager smm;
    smm.start();
    auto shm = smm.SharedMemory(n * sizeof(std::uint64_t));

    std::vector<std::unique_ptr<mp::Process>> workers;
    for (std::size_t w = 0; w < 4; ++w) {
        std::string name = shm.name();
        workers.push_back(std::make_unique<mp::Process>([name, w] { fill(name, w); }));
        workers.back()->start();
    }
    int failed = 0;
    for (auto& p : workers) {
        if (!p->join(60.0)) {
            p->kill();
            p->join(5.0);
        }
        if (p->exitcode() != 0) ++failed;
    }

    const auto* a = reinterpret_cast<const std::uint64_t*>(shm.buf().data());
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += a[i];
    const std::uint64_t expected = std::uint64_t(n) * (n - 1) / 2;
    std::printf("%zu elements (%zu MB) filled by 4 processes\n", n, n * sizeof(std::uint64_t) >> 20);
    std::printf("sum = %llu, expected %llu: %s\n", static_cast<unsigned long long>(sum),
                static_cast<unsigned long long>(expected), sum == expected && !failed ? "ok" : "MISMATCH");
    // smm's destructor shuts the server down, which unlinks the segment.
    return sum == expected && !failed ? 0 : 1;
}

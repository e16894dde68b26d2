// libFuzzer target: the pickle reader (detail/pickle.hpp).  Anything it
// accepts must write back and read back as the same value; it may refuse
// only with UnpicklingError, and never allocate beyond its limit (the run's
// -rss_limit_mb catches that).  Seeds: CPython 3.13's pickles of manager
// values (tests/fuzz/corpus/fuzz_pickle, made by make_pickle_seeds.py).
#include "multiprocessing/detail/pickle_object.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>

namespace pk = multiprocessing::detail::pickle;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > 1 << 16) return 0;
    pk::value v;
    try {
        v = pk::loads(std::string(reinterpret_cast<const char*>(data), size));
    } catch (const pk::UnpicklingError&) {
        return 0;
    }
    std::string again = pk::dumps(v);  // must not throw: v came from a valid pickle
    // Read back without the size budget: the input may have been padded
    // (FRAME, unused memo) so as to afford more than the rewrite does.
    pk::limits unbounded;
    unbounded.max_expansion = std::size_t(1) << 20;
    if (pk::loads(again, unbounded) != v) std::abort();
    try {
        pk::value back = pk::from_object(pk::to_object(v));
        (void)back;
    } catch (const multiprocessing::TypeError&) {
        // sets, instances, unhashable keys: refused by name, not crashed on
    }
    return 0;
}

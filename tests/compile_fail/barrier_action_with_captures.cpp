// expect: an action must be a function pointer, a lambda without captures
#include <multiprocessing.hpp>
void f(multiprocessing::managers::SyncManager& m) {
    int n = 0;
    m.Barrier(2, [&n] { ++n; });  // n would be the server's copy, not this one
}
